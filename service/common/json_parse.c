#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "common/encoding.h"
#include "common/arena.h"
#include "common/error.h"
#include "common/json.h"

#define MAX_STACK 64
#define NO_FAULT SIZE_MAX

struct builder {
    struct arena *a;
    const struct json_limits *lim;
    yajl_handle h;
    struct json_value *root;
    struct json_value *stack[MAX_STACK];
    size_t caps[MAX_STACK];
    unsigned depth;
    const char *pending_key;   /* the key read for the current object */
    const char *refusal;       /* why the builder stopped the parse (400) */
    size_t values;
    /* the first string that is not valid Unicode: its offset in the text,
     * found before parsing, and what is wrong with it */
    size_t unicode_at;
    const char *unicode_what;
    struct json_fault fault;   /* set: the builder stopped the parse (422) */
    /* the batch list (lim->list), its items that are not objects, and the
     * depth below such an item whose content is being skipped */
    struct json_value *list;
    size_t list_bad, list_first_bad;
    unsigned skip;
};

/* ---- Unicode (RFC 8259 §8) ---- */

static int hex4(const unsigned char *s, size_t n)
{
    if (n < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(s[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The fault of the escape \u at s[0..n) (s after the 'u'), or NULL; *skip is
 * how many bytes after the 'u' belong to it. Malformed escapes are left to
 * yajl, which refuses them as syntax. */
static const char *escape_fault(const unsigned char *s, size_t n, size_t *skip)
{
    int cp = hex4(s, n);
    *skip = 0;
    if (cp < 0)
        return NULL;
    *skip = 4;
    if (cp == 0)
        return "holds \\u0000 (NUL), which cannot be stored";
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return "holds an unpaired UTF-16 surrogate escape";
    if (cp >= 0xd800 && cp <= 0xdbff) {
        int low = n >= 10 && s[4] == '\\' && s[5] == 'u' ? hex4(s + 6, n - 6) : -1;
        if (low < 0xdc00 || low > 0xdfff)
            return "holds an unpaired UTF-16 surrogate escape";
        *skip = 10;
    }
    return NULL;
}

/* One pass over the text, as a lexer of strings: the offset of the first
 * string byte that is not valid Unicode, or NO_FAULT. Bytes outside strings
 * are yajl's to judge. */
static size_t unicode_fault(const unsigned char *s, size_t n, const char **what)
{
    bool in_string = false;
    for (size_t i = 0; i < n;) {
        if (!in_string) {
            in_string = s[i++] == '"';
            continue;
        }
        if (s[i] == '"') {
            in_string = false;
            i++;
        } else if (s[i] == '\\' && i + 1 < n && s[i + 1] == 'u') {
            size_t skip;
            if ((*what = escape_fault(s + i + 2, n - i - 2, &skip)))
                return i;
            i += 2 + skip;
        } else if (s[i] == '\\')
            i += 2;
        else if (s[i] < 0x80)
            i++;
        else {
            size_t k = json_utf8_char(s + i, n - i);
            if (!k) {
                *what = "is not valid UTF-8";
                return i;
            }
            i += k;
        }
    }
    return NO_FAULT;
}

/* ---- where the parser is, as a JSON pointer (RFC 6901) ---- */

static void pointer_token(struct arena *a, char **p, const char *token)
{
    size_t n = strlen(*p), extra = 0;
    for (const char *t = token; *t; t++)
        extra += *t == '~' || *t == '/';
    char *out = arena_alloc(a, n + 1 + strlen(token) + extra + 1), *o = out + n;
    memcpy(out, *p, n);
    *o++ = '/';
    for (const char *t = token; *t; t++) {
        if (*t == '~' || *t == '/') {
            *o++ = '~';
            *o++ = *t == '~' ? '0' : '1';
        } else
            *o++ = *t;
    }
    *o = 0;
    *p = out;
}

/* The pointer of the value being read (or, with of_container, of the
 * innermost open object or array: whose member name is being read). */
static const char *pointer_here(struct builder *b, bool of_container)
{
    char *p = "";
    for (unsigned i = 0; i < b->depth; i++) {
        const struct json_value *v = b->stack[i];
        bool innermost = i + 1 == b->depth;
        if (innermost && of_container)
            break;
        size_t at = innermost ? v->count : v->count - 1;
        if (v->type == JSON_OBJECT)
            pointer_token(b->a, &p, innermost ? b->pending_key : v->keys[at]);
        else
            pointer_token(b->a, &p, arena_printf(b->a, "%zu", at));
    }
    return p;
}

static int stop(struct builder *b, enum json_fault_kind kind, const char *pointer,
                const char *detail)
{
    b->fault = (struct json_fault){kind, pointer, detail};
    return 0;
}

/* Called at every string token: the fault found before parsing belongs to
 * the first token that ends after it. */
static bool unicode_ok(struct builder *b, bool is_key)
{
    if (b->unicode_at == NO_FAULT || yajl_get_bytes_consumed(b->h) <= b->unicode_at)
        return true;
    if (b->skip) /* inside a list item whose content is not kept: the item */
        stop(b, JSON_FAULT_UNICODE,
             arena_printf(b->a, "%s/%zu", pointer_here(b, true), b->list->count - 1),
             b->unicode_what);
    else if (is_key)
        stop(b, JSON_FAULT_UNICODE, pointer_here(b, true),
             arena_printf(b->a, "has a member name that %s", b->unicode_what));
    else
        stop(b, JSON_FAULT_UNICODE, pointer_here(b, false), b->unicode_what);
    return false;
}

static struct json_value *node(struct builder *b, enum json_type t)
{
    struct json_value *v = arena_alloc(b->a, sizeof(*v));
    v->type = t;
    return v;
}

/* Appends v to the open container, growing its arrays by doubling. */
/* The batch list's rules (struct json_limits), checked as each item comes. */
static int list_item_ok(struct builder *b, struct json_value *list, const struct json_value *v)
{
    const struct json_limits *lim = b->lim;
    char *pointer = "";
    pointer_token(b->a, &pointer, lim->list);
    if (lim->list_max && list->count >= lim->list_max)
        return stop(b, JSON_FAULT_LIST, pointer, NULL);
    if (v->type == JSON_OBJECT)
        return 1;
    if (b->list_bad++ == 0)
        b->list_first_bad = list->count;
    if (lim->list_bad_max && b->list_bad > lim->list_bad_max)
        return stop(b, JSON_FAULT_ITEM, arena_printf(b->a, "%s/%zu", pointer, b->list_first_bad),
                    "must be an object");
    return 1;
}

static int attach(struct builder *b, struct json_value *v)
{
    if (b->lim->max_values && ++b->values > b->lim->max_values) {
        b->refusal = arena_printf(b->a, "more than %zu values", b->lim->max_values);
        return 0;
    }
    if (b->depth == 0) {
        b->root = v;
        return 1;
    }
    struct json_value *parent = b->stack[b->depth - 1];
    size_t *cap = &b->caps[b->depth - 1];
    if (parent->type == JSON_OBJECT && parent->count >= JSON_MAX_MEMBERS) {
        b->refusal = "an object has more than 1024 members";
        return 0;
    }
    if (parent == b->list && !list_item_ok(b, parent, v))
        return 0;
    if (parent->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        struct json_value **items = arena_alloc(b->a, ncap * sizeof(*items));
        if (parent->count)
            memcpy(items, parent->items, parent->count * sizeof(*items));
        parent->items = items;
        if (parent->type == JSON_OBJECT) {
            const char **keys = arena_alloc(b->a, ncap * sizeof(*keys));
            if (parent->count)
                memcpy(keys, parent->keys, parent->count * sizeof(*keys));
            parent->keys = keys;
        }
        *cap = ncap;
    }
    if (parent->type == JSON_OBJECT)
        parent->keys[parent->count] = b->pending_key;
    parent->items[parent->count++] = v;
    return 1;
}

static bool is_list(const struct builder *b, enum json_type t)
{
    return b->lim->list && b->depth == 1 && t == JSON_ARRAY && !b->list &&
           b->stack[0]->type == JSON_OBJECT && !strcmp(b->pending_key, b->lim->list);
}

static int open_container(struct builder *b, enum json_type t)
{
    if (b->skip) {
        b->skip++;
        return 1;
    }
    if (b->depth >= b->lim->max_depth || b->depth >= MAX_STACK) {
        b->refusal = "nested too deeply";
        return 0;
    }
    struct json_value *v = node(b, t);
    bool list_item = b->list && b->depth == 2 && b->stack[1] == b->list;
    if (!attach(b, v))
        return 0;
    if (list_item && t != JSON_OBJECT) { /* refused by the caller: its content is not kept */
        b->skip = 1;
        return 1;
    }
    if (is_list(b, t))
        b->list = v;
    b->caps[b->depth] = 0;
    b->stack[b->depth++] = v;
    return 1;
}

static int by_key(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Sorted copy, then neighbours: O(n log n) against hostile objects. */
static const char *duplicate_key(struct builder *b, const struct json_value *obj)
{
    if (obj->count < 2)
        return NULL;
    const char **sorted = arena_alloc(b->a, obj->count * sizeof(*sorted));
    memcpy(sorted, obj->keys, obj->count * sizeof(*sorted));
    qsort(sorted, obj->count, sizeof(*sorted), by_key);
    for (size_t i = 1; i < obj->count; i++)
        if (!strcmp(sorted[i - 1], sorted[i]))
            return sorted[i];
    return NULL;
}

static int on_null(void *ctx)
{
    struct builder *b = ctx;
    return b->skip || attach(b, node(b, JSON_NULL));
}

static int on_boolean(void *ctx, int value)
{
    struct builder *b = ctx;
    if (b->skip)
        return 1;
    struct json_value *v = node(b, JSON_BOOL);
    v->boolean = value != 0;
    return attach(b, v);
}

static int on_number(void *ctx, const char *s, size_t len)
{
    struct builder *b = ctx;
    if (b->skip)
        return 1;
    struct json_value *v = node(b, JSON_NUMBER);
    v->text = arena_strndup(b->a, s, len);
    v->len = len;
    return attach(b, v);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    struct builder *b = ctx;
    if (!unicode_ok(b, false))
        return 0;
    if (b->skip)
        return 1;
    struct json_value *v = node(b, JSON_STRING);
    v->text = arena_strndup(b->a, (const char *)s, len);
    v->len = len;
    return attach(b, v);
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct builder *b = ctx;
    if (!unicode_ok(b, true))
        return 0;
    if (b->skip)
        return 1;
    b->pending_key = arena_strndup(b->a, (const char *)s, len);
    return 1;
}

static int on_start_map(void *ctx) { return open_container(ctx, JSON_OBJECT); }
static int on_start_array(void *ctx) { return open_container(ctx, JSON_ARRAY); }

static int on_end_map(void *ctx)
{
    struct builder *b = ctx;
    if (b->skip) {
        b->skip--;
        return 1;
    }
    struct json_value *obj = b->stack[--b->depth];
    const char *dup = duplicate_key(b, obj);
    if (dup) {
        b->refusal = arena_printf(b->a, "duplicate key \"%.64s\"", dup);
        return 0;
    }
    return 1;
}

static int on_end_array(void *ctx)
{
    struct builder *b = ctx;
    if (b->skip) {
        b->skip--;
        return 1;
    }
    b->depth--;
    return 1;
}

static const yajl_callbacks callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string,
    on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

/* The error of a parse that failed: the builder's refusal, its fault, or yajl's message. */
static int parse_error(struct builder *b, const void *buf, size_t len, struct json_fault *fault,
                       struct masad_error *err)
{
    if (b->fault.kind != JSON_FAULT_NONE) {
        if (fault)
            *fault = b->fault;
        if (b->fault.kind == JSON_FAULT_UNICODE)
            return error_set(err, 422, "invalid-unicode", "a string is not valid Unicode at \"%s\": %s",
                             b->fault.pointer, b->fault.detail);
        return error_set(err, 422, "invalid-list", "the list at \"/%s\" is not an array of at most "
                         "%zu objects", b->lim->list, b->lim->list_max);
    }
    if (b->refusal && !strcmp(b->refusal, "nested too deeply"))
        return error_set(err, 400, "malformed-json", "malformed JSON: nested deeper than %u levels",
                         b->lim->max_depth);
    if (b->refusal)
        return error_set(err, 400, "malformed-json", "malformed JSON: %s", b->refusal);
    unsigned char *msg = yajl_get_error(b->h, 0, buf, len);
    size_t n = msg ? strlen((const char *)msg) : 0;
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) /* yajl ends with a newline */
        msg[--n] = 0;
    int rc = error_set(err, 400, "malformed-json", "malformed JSON: %s",
                       msg ? (const char *)msg : "no value");
    yajl_free_error(b->h, msg);
    return rc;
}

int json_parse_bounded(struct arena *a, const void *buf, size_t len, const struct json_limits *lim,
                       struct json_value **out, struct json_fault *fault, struct masad_error *err)
{
    if (fault)
        *fault = (struct json_fault){JSON_FAULT_NONE, NULL, NULL};
    if (len == 0)
        return error_set(err, 400, "malformed-json", "malformed JSON: the body is empty");
    struct builder b;
    memset(&b, 0, sizeof(b));
    b.a = a;
    b.lim = lim;
    b.unicode_at = unicode_fault(buf, len, &b.unicode_what);
    b.h = yajl_alloc(&callbacks, NULL, &b);
    yajl_config(b.h, yajl_allow_comments, 0);
    /* strings are checked by unicode_fault(), more strictly than yajl does */
    yajl_config(b.h, yajl_dont_validate_strings, 1);
    yajl_config(b.h, yajl_allow_trailing_garbage, 0);
    yajl_config(b.h, yajl_allow_multiple_values, 0);
    yajl_config(b.h, yajl_allow_partial_values, 0);
    yajl_status st = yajl_parse(b.h, buf, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(b.h);
    int rc = 0;
    if (st == yajl_status_ok && b.root && b.unicode_at != NO_FAULT) /* never reached a string */
        stop(&b, JSON_FAULT_UNICODE, "", b.unicode_what);
    if (st != yajl_status_ok || !b.root || b.fault.kind != JSON_FAULT_NONE)
        rc = parse_error(&b, buf, len, fault, err);
    yajl_free(b.h);
    if (rc == 0)
        *out = b.root;
    return rc;
}

int json_parse(struct arena *a, const void *buf, size_t len, unsigned max_depth,
               struct json_value **out, struct masad_error *err)
{
    struct json_limits lim = {.max_depth = max_depth};
    return json_parse_bounded(a, buf, len, &lim, out, NULL, err);
}

const struct json_value *json_get(const struct json_value *v, const char *key)
{
    if (!v || v->type != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < v->count; i++)
        if (!strcmp(v->keys[i], key))
            return v->items[i];
    return NULL;
}

const char *json_type_name(enum json_type t)
{
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return names[t];
}
