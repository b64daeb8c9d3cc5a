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
    refused("{\"a\": \"\xff\"}", "invalid bytes in UTF8 string");
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
