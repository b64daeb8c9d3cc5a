#ifndef MASAD_COMMON_JSON_H
#define MASAD_COMMON_JSON_H
/*
 * Writing JSON with yajl_gen: UTF-8 validated, compact. Strings that are not
 * valid UTF-8 make yajl refuse them; json_str() then writes "\ufffd" so that
 * a log line or answer is never truncated by hostile bytes.
 */
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
