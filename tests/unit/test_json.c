/* The strict reader of untrusted JSON (docs/management-api.md, Conventions). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/arena.h"
#include "common/error.h"
#include "common/json.h"

static int parse(const char *text, struct json_value **v, char *why)
{
    static struct arena *a;
    if (!a)
        a = arena_new();
    struct masad_error err;
    int rc = json_parse(a, text, strlen(text), 32, v, &err);
    strcpy(why, rc ? err.message : "");
    return rc;
}

Test(json, objects_arrays_and_scalars)
{
    struct json_value *v;
    char why[600];
    cr_assert_eq(parse("{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\"], \"b\": {}}", &v, why), 0, "%s", why);
    cr_assert_eq(v->type, JSON_OBJECT);
    const struct json_value *arr = json_get(v, "a");
    cr_assert_eq(arr->count, 5);
    cr_assert_str_eq(arr->items[1]->text, "-2.5e3");
    cr_assert(arr->items[2]->boolean);
    cr_assert_eq(arr->items[3]->type, JSON_NULL);
    cr_assert_str_eq(arr->items[4]->text, "x\xc3\xa9");
    cr_assert_eq(json_get(v, "b")->type, JSON_OBJECT);
    cr_assert_null(json_get(v, "c"));
}

static void refused(const char *text, const char *reason)
{
    struct json_value *v;
    char why[600];
    cr_assert_eq(parse(text, &v, why), -1, "accepted: %s", text);
    cr_assert(strstr(why, reason), "%s: %s", text, why);
    cr_assert(!strncmp(why, "malformed JSON: ", 16), "%s", why);
}

Test(json, malformed_input_is_refused)
{
    refused("{\"a\": 1, \"a\": 2}", "duplicate key \"a\"");
    refused("{\"a\": {\"b\": 1, \"c\": 2, \"b\": 3}}", "duplicate key \"b\"");
    refused("{\"a\": 1} trailing", "trailing garbage");
    refused("{\"a\": 1 /* comment */}", "comments are not enabled");
    refused("", "the body is empty");
    refused("{\"a\": ", "premature EOF");
    char deep[200] = "", close[100] = "";
    for (int i = 0; i < 33; i++) {
        strcat(deep, "[");
        strcat(close, "]");
    }
    strcat(deep, close);
    refused(deep, "nested deeper than 32 levels");
    deep[1] = ' '; /* 32 levels are fine */
    deep[2 * 33 - 2] = ' ';
    struct json_value *v;
    char why[600];
    cr_assert_eq(parse(deep, &v, why), 0, "%s", why);
}

Test(json, objects_are_bounded)
{
    static char big[64 * 1100];
    strcpy(big, "{");
    for (int i = 0; i < 1025; i++)
        sprintf(big + strlen(big), "%s\"k%d\": 1", i ? "," : "", i);
    strcat(big, "}");
    refused(big, "an object has more than 1024 members");
}

Test(json, values_write_back_unchanged)
{
    struct json_value *v;
    char why[600];
    const char *text = "{\"a\":[1,-2.5e3,true,null,\"x\"],\"b\":{\"c\":\"d\"}}";
    cr_assert_eq(parse(text, &v, why), 0);
    yajl_gen g = json_gen_new();
    json_write_value(g, v);
    struct arena *a = arena_new();
    cr_assert_str_eq(json_finish(g, a, NULL), text);
    arena_free(a);
}

/* ---- invalid Unicode (RFC 8259 §8): 422 with the pointer of the string ---- */

static struct arena *test_arena(void)
{
    static struct arena *a;
    if (!a)
        a = arena_new();
    return a;
}

static void bad_unicode(const char *text, const char *pointer, const char *detail)
{
    struct json_value *v;
    struct json_fault fault;
    struct masad_error err;
    struct json_limits lim = {.max_depth = 32};
    cr_assert_eq(json_parse_bounded(test_arena(), text, strlen(text), &lim, &v, &fault, &err), -1,
                 "accepted: %s", text);
    cr_assert_eq(err.status, 422, "%s: %d %s", text, err.status, err.message);
    cr_assert_str_eq(err.code, "invalid-unicode", "%s", text);
    cr_assert_eq(fault.kind, JSON_FAULT_UNICODE, "%s", text);
    cr_assert_str_eq(fault.pointer, pointer, "%s", text);
    cr_assert_str_eq(fault.detail, detail, "%s", text);
    char *want = arena_printf(test_arena(), "a string is not valid Unicode at \"%s\": %s", pointer, detail);
    cr_assert_str_eq(err.message, want);
}

#define UNPAIRED "holds an unpaired UTF-16 surrogate escape"
#define NUL_ESCAPE "holds \\u0000 (NUL), which cannot be stored"
#define NOT_UTF8 "is not valid UTF-8"

Test(json, invalid_unicode_is_refused_where_it_is)
{
    bad_unicode("{\"a\": \"a\\udfffb\"}", "/a", UNPAIRED);
    bad_unicode("{\"a\": [\"x\", \"\\ud800\"]}", "/a/1", UNPAIRED);
    bad_unicode("{\"a\": \"\\ud800x\"}", "/a", UNPAIRED);
    bad_unicode("{\"a\": \"\\ud800\\u0041\"}", "/a", UNPAIRED);
    bad_unicode("{\"a\": \"\\udbff\\ud800\"}", "/a", UNPAIRED);
    bad_unicode("{\"a\": \"\\u0000\"}", "/a", NUL_ESCAPE);
    bad_unicode("{\"a/b~c\": \"\xff\"}", "/a~1b~0c", NOT_UTF8);
    bad_unicode("{\"a\": \"\xc0\x80\"}", "/a", NOT_UTF8);          /* overlong NUL */
    bad_unicode("{\"a\": \"\xed\xbf\xbf\"}", "/a", NOT_UTF8);      /* a surrogate, encoded */
    bad_unicode("{\"a\": \"\xf4\x90\x80\x80\"}", "/a", NOT_UTF8);  /* above U+10FFFF */
    bad_unicode("{\"a\": \"\xe2\x82\"}", "/a", NOT_UTF8);          /* truncated */
    bad_unicode("\"\\udfff\"", "", UNPAIRED);
    /* member names: the pointer is the object's */
    bad_unicode("{\"a\\udfff\": 1}", "", "has a member name that " UNPAIRED);
    bad_unicode("{\"ok\": 1, \"o\": {\"k\\u0000\": 1}}", "/o", "has a member name that " NUL_ESCAPE);
    bad_unicode("{\"o\": [{\"\xff\": 1}]}", "/o/0", "has a member name that " NOT_UTF8);
    /* escaped quotes and backslashes before the fault do not mislead the scan */
    bad_unicode("{\"a\": \"x\\\"y\", \"b\\\\\": \"\\\\\", \"c\": \"\\udfff\"}", "/c", UNPAIRED);
}

Test(json, valid_unicode_is_kept)
{
    struct json_value *v;
    char why[600];
    cr_assert_eq(parse("{\"a\": \"\\ud83d\\ude00 \\u00e9 \xf0\x9f\x98\x80 \\uffff\"}", &v, why), 0, "%s", why);
    cr_assert_str_eq(json_get(v, "a")->text, "\xf0\x9f\x98\x80 \xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbf");
    cr_assert(json_utf8_valid("\xf4\x8f\xbf\xbf", 4));
    cr_assert(!json_utf8_valid("a\0b", 3));
    cr_assert(!json_utf8_valid("\xed\xa0\x80", 3));
}

Test(json, writer_replaces_what_postgresql_would_refuse)
{
    struct arena *a = arena_new();
    const char *bad[] = {"\xed\xbf\xbf", "\xc0\x80", "\xff", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        yajl_gen g = json_gen_new();
        json_str(g, bad[i]);
        cr_assert_str_eq(json_finish(g, a, NULL), "\"\xef\xbf\xbd\"", "%zu", i);
    }
    arena_free(a);
}

/* ---- bounded parsing of batches ---- */

static int parse_limited(const char *text, const struct json_limits *lim, struct json_value **v,
                         struct json_fault *fault, struct masad_error *err)
{
    return json_parse_bounded(test_arena(), text, strlen(text), lim, v, fault, err);
}

Test(json, batch_lists_stop_early)
{
    struct json_limits lim = {.max_depth = 32, .list = "devices", .list_max = 3, .list_bad_max = 2};
    struct json_value *v;
    struct json_fault fault;
    struct masad_error err;
    cr_assert_eq(parse_limited("{\"devices\": [{}, {}, {}, {}]}", &lim, &v, &fault, &err), -1);
    cr_assert_eq(err.status, 422);
    cr_assert_eq(fault.kind, JSON_FAULT_LIST);
    cr_assert_str_eq(fault.pointer, "/devices");
    /* two items that are not objects are kept, without their content */
    cr_assert_eq(parse_limited("{\"devices\": [0, [1, [2], {\"k\": 3}], {\"a\": 1}]}", &lim, &v,
                               &fault, &err), 0, "%s", err.message);
    const struct json_value *list = json_get(v, "devices");
    cr_assert_eq(list->count, 3);
    cr_assert_eq(list->items[0]->type, JSON_NUMBER);
    cr_assert_eq(list->items[1]->type, JSON_ARRAY);
    cr_assert_eq(list->items[1]->count, 0);
    cr_assert_str_eq(json_get(list->items[2], "a")->text, "1");
    /* the third is one too many: the first is named */
    lim.list_max = 10;
    cr_assert_eq(parse_limited("{\"devices\": [{}, 0, \"x\", null]}", &lim, &v, &fault, &err), -1);
    cr_assert_eq(err.status, 422);
    cr_assert_eq(fault.kind, JSON_FAULT_ITEM);
    cr_assert_str_eq(fault.pointer, "/devices/1");
    cr_assert_str_eq(fault.detail, "must be an object");
    /* invalid Unicode inside an item that is not kept names the item */
    cr_assert_eq(parse_limited("{\"devices\": [{}, [\"\\udfff\"]]}", &lim, &v, &fault, &err), -1);
    cr_assert_eq(fault.kind, JSON_FAULT_UNICODE);
    cr_assert_str_eq(fault.pointer, "/devices/1");
    /* only the root member is the list */
    cr_assert_eq(parse_limited("{\"x\": {\"devices\": [0, 0, 0, 0, 0]}, \"devices\": 1}", &lim, &v,
                               &fault, &err), 0, "%s", err.message);
}

Test(json, values_are_counted)
{
    struct json_limits lim = {.max_depth = 32, .max_values = 5};
    struct json_value *v;
    struct json_fault fault;
    struct masad_error err;
    cr_assert_eq(parse_limited("[1, 2, 3, 4]", &lim, &v, &fault, &err), 0, "%s", err.message);
    cr_assert_eq(parse_limited("[1, 2, [3], 4]", &lim, &v, &fault, &err), -1);
    cr_assert_eq(err.status, 400);
    cr_assert_str_eq(err.message, "malformed JSON: more than 5 values");
}
