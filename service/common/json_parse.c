#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "common/arena.h"
#include "common/error.h"
#include "common/json.h"

#define MAX_STACK 64

struct builder {
    struct arena *a;
    unsigned max_depth;
    struct json_value *root;
    struct json_value *stack[MAX_STACK];
    size_t caps[MAX_STACK];
    unsigned depth;
    const char *pending_key;   /* the key read for the current object */
    const char *refusal;       /* why the builder stopped the parse */
};

static struct json_value *node(struct builder *b, enum json_type t)
{
    struct json_value *v = arena_alloc(b->a, sizeof(*v));
    v->type = t;
    return v;
}

/* Appends v to the open container, growing its arrays by doubling. */
static int attach(struct builder *b, struct json_value *v)
{
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

static int open_container(struct builder *b, enum json_type t)
{
    if (b->depth >= b->max_depth || b->depth >= MAX_STACK) {
        b->refusal = "nested too deeply";
        return 0;
    }
    struct json_value *v = node(b, t);
    if (!attach(b, v))
        return 0;
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

static int on_null(void *ctx) { return attach(ctx, node(ctx, JSON_NULL)); }

static int on_boolean(void *ctx, int value)
{
    struct json_value *v = node(ctx, JSON_BOOL);
    v->boolean = value != 0;
    return attach(ctx, v);
}

static int on_number(void *ctx, const char *s, size_t len)
{
    struct builder *b = ctx;
    struct json_value *v = node(b, JSON_NUMBER);
    v->text = arena_strndup(b->a, s, len);
    v->len = len;
    return attach(b, v);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    struct builder *b = ctx;
    struct json_value *v = node(b, JSON_STRING);
    v->text = arena_strndup(b->a, (const char *)s, len);
    v->len = len;
    return attach(b, v);
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct builder *b = ctx;
    if (memchr(s, 0, len)) {
        b->refusal = "a key holds a NUL character";
        return 0;
    }
    b->pending_key = arena_strndup(b->a, (const char *)s, len);
    return 1;
}

static int on_start_map(void *ctx) { return open_container(ctx, JSON_OBJECT); }
static int on_start_array(void *ctx) { return open_container(ctx, JSON_ARRAY); }

static int on_end_map(void *ctx)
{
    struct builder *b = ctx;
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
    b->depth--;
    return 1;
}

static const yajl_callbacks callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string,
    on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

int json_parse(struct arena *a, const void *buf, size_t len, unsigned max_depth,
               struct json_value **out, struct masad_error *err)
{
    if (len == 0)
        return error_set(err, 400, "malformed-json", "malformed JSON: the body is empty");
    struct builder b;
    memset(&b, 0, sizeof(b));
    b.a = a;
    b.max_depth = max_depth;
    yajl_handle h = yajl_alloc(&callbacks, NULL, &b);
    yajl_config(h, yajl_allow_comments, 0);
    yajl_config(h, yajl_dont_validate_strings, 0);
    yajl_config(h, yajl_allow_trailing_garbage, 0);
    yajl_config(h, yajl_allow_multiple_values, 0);
    yajl_config(h, yajl_allow_partial_values, 0);
    yajl_status st = yajl_parse(h, buf, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    int rc = 0;
    if (st != yajl_status_ok || !b.root) {
        if (b.refusal && !strcmp(b.refusal, "nested too deeply"))
            rc = error_set(err, 400, "malformed-json", "malformed JSON: nested deeper than %u levels",
                           max_depth);
        else if (b.refusal)
            rc = error_set(err, 400, "malformed-json", "malformed JSON: %s", b.refusal);
        else {
            unsigned char *msg = yajl_get_error(h, 0, buf, len);
            size_t n = msg ? strlen((const char *)msg) : 0;
            while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) /* yajl ends with a newline */
                msg[--n] = 0;
            rc = error_set(err, 400, "malformed-json", "malformed JSON: %s",
                           msg ? (const char *)msg : "no value");
            yajl_free_error(h, msg);
        }
    }
    yajl_free(h);
    if (rc == 0)
        *out = b.root;
    return rc;
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
