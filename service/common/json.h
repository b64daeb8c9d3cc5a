#ifndef MASAD_COMMON_JSON_H
#define MASAD_COMMON_JSON_H
/*
 * Writing JSON with yajl_gen: UTF-8 validated, compact. Strings that are not
 * valid UTF-8 make yajl refuse them; json_str() then writes "\ufffd" so that
 * a log line or answer is never truncated by hostile bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_gen.h>

struct arena;

yajl_gen json_gen_new(void);
void json_str(yajl_gen g, const char *s);                  /* NULL writes null */
void json_strn(yajl_gen g, const char *s, size_t n);
void json_int(yajl_gen g, long long v);
void json_bool(yajl_gen g, int v);
void json_null(yajl_gen g);
void json_open(yajl_gen g);   /* { */
void json_close(yajl_gen g);  /* } */
void json_open_array(yajl_gen g);
void json_close_array(yajl_gen g);
/* "key": "value" in one call */
void json_kv_str(yajl_gen g, const char *key, const char *value);
void json_kv_int(yajl_gen g, const char *key, long long value);

/* Copies the generated text into the arena (NUL-terminated) and frees g. */
char *json_finish(yajl_gen g, struct arena *a, size_t *len);

#endif

/* ---- reading untrusted JSON ----
 * json_parse() builds a tree in an arena with yajl's event parser, refusing
 * what docs/management-api.md calls malformed before anything uses it: invalid UTF-8,
 * comments, trailing data, nesting deeper than max_depth, a duplicate key
 * in an object, and objects with more than JSON_MAX_MEMBERS members. */
#define JSON_MAX_MEMBERS 1024

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_value {
    enum json_type type;
    bool boolean;
    const char *text;            /* string value or number as written; NUL-terminated */
    size_t len;
    struct json_value **items;   /* array elements, or object values */
    const char **keys;           /* object keys, in document order */
    size_t count;
};

struct masad_error;
int json_parse(struct arena *a, const void *buf, size_t len, unsigned max_depth,
               struct json_value **out, struct masad_error *err);
/* The member `key` of an object, or NULL (also when v is not an object). */
const struct json_value *json_get(const struct json_value *v, const char *key);
const char *json_type_name(enum json_type t);
/* Writes a parsed value back out (numbers as written). */
void json_write_value(yajl_gen g, const struct json_value *v);
/* The same with every object's keys in byte order: one text per value. */
void json_write_canonical(yajl_gen g, const struct json_value *v);
