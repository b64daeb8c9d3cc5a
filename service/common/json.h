#ifndef MASAD_COMMON_JSON_H
#define MASAD_COMMON_JSON_H
/*
 * Writing JSON with yajl_gen: UTF-8 validated, compact. A string that is not
 * valid UTF-8 (json_utf8_valid(), stricter than yajl's own check) is written
 * as "\ufffd", so that a log line, an answer or a stored audit detail is
 * never truncated or refused by hostile bytes.
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

/* RFC 3629 §4: the length (1-4) of the UTF-8 character at s, or 0 when the
 * bytes are not one: truncated, overlong, a surrogate (U+D800-DFFF) or above
 * U+10FFFF. PostgreSQL refuses all of these in text (SQLSTATE 22021). */
size_t json_utf8_char(const unsigned char *s, size_t n);
/* s[0..n) is valid UTF-8 without NUL: text PostgreSQL can store. */
bool json_utf8_valid(const char *s, size_t n);

/* Copies the generated text into the arena (NUL-terminated) and frees g. */
char *json_finish(yajl_gen g, struct arena *a, size_t *len);


/* ---- reading untrusted JSON ----
 * json_parse() builds a tree in an arena with yajl's event parser, refusing
 * what docs/management-api.md calls malformed before anything uses it: comments, trailing
 * data, nesting deeper than max_depth, a duplicate key in an object, and
 * objects with more than JSON_MAX_MEMBERS members (400, "malformed-json").
 * A string or member name that is not valid Unicode is refused too (422,
 * "invalid-unicode"): invalid UTF-8, an unpaired UTF-16 surrogate escape
 * (RFC 8259 §8.2; yajl 2.1 would turn it into '?' or into bytes PostgreSQL
 * refuses), or \u0000 (PostgreSQL text cannot hold NUL). */
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

/* Bounds for json_parse_bounded(); zero members mean "no bound". */
struct json_limits {
    unsigned max_depth;
    size_t max_values;      /* values in the whole document (400 beyond) */
    /* A batch: the root member `list`, an array of at most list_max objects.
     * Items that are not objects are kept without their content (the
     * caller names them); parsing stops at the list_max + 1st item or at
     * the list_bad_max + 1st item that is not an object, so that memory
     * stays bounded by the items accepted, not by the body. */
    const char *list;
    size_t list_max;
    size_t list_bad_max;
};

enum json_fault_kind { JSON_FAULT_NONE, JSON_FAULT_UNICODE, JSON_FAULT_LIST, JSON_FAULT_ITEM };
/* Where a 422 of json_parse_bounded() lies: a JSON pointer (RFC 6901) to the
 * string, to the object whose member name is at fault, to the list, or to
 * its first item that is not an object; and what is wrong there. */
struct json_fault {
    enum json_fault_kind kind;
    const char *pointer;
    const char *detail;
};

/* json_parse() with more bounds; on a 422 (err->code "invalid-unicode" or
 * "invalid-list") *fault says where. fault may be NULL. */
int json_parse_bounded(struct arena *a, const void *buf, size_t len, const struct json_limits *lim,
                       struct json_value **out, struct json_fault *fault, struct masad_error *err);
/* The member `key` of an object, or NULL (also when v is not an object). */
const struct json_value *json_get(const struct json_value *v, const char *key);
const char *json_type_name(enum json_type t);
/* Writes a parsed value back out (numbers as written). */
void json_write_value(yajl_gen g, const struct json_value *v);
/* The same with every object's keys in byte order: one text per value. */
void json_write_canonical(yajl_gen g, const struct json_value *v);

#endif
