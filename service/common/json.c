#include "common/json.h"

#include <stdlib.h>
#include <string.h>

#include "common/arena.h"

yajl_gen json_gen_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    yajl_gen_config(g, yajl_gen_beautify, 0);
    return g;
}

size_t json_utf8_char(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    /* RFC 3629 §4: the second byte's range excludes overlongs (E0, F0),
     * surrogates (ED) and code points above U+10FFFF (F4) */
    unsigned lo = 0x80, hi = 0xbf;
    size_t len;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

bool json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0, k; i < n; i += k)
        if (!p[i] || !(k = json_utf8_char(p + i, n - i)))
            return false;
    return true;
}

void json_strn(yajl_gen g, const char *s, size_t n)
{
    if (!s) {
        yajl_gen_null(g);
        return;
    }
    if (!json_utf8_valid(s, n) ||
        yajl_gen_string(g, (const unsigned char *)s, n) == yajl_gen_invalid_string)
        yajl_gen_string(g, (const unsigned char *)"\xef\xbf\xbd", 3);
}

void json_str(yajl_gen g, const char *s)
{
    json_strn(g, s, s ? strlen(s) : 0);
}

void json_int(yajl_gen g, long long v) { yajl_gen_integer(g, v); }
void json_bool(yajl_gen g, int v) { yajl_gen_bool(g, v); }
void json_null(yajl_gen g) { yajl_gen_null(g); }
void json_open(yajl_gen g) { yajl_gen_map_open(g); }
void json_close(yajl_gen g) { yajl_gen_map_close(g); }
void json_open_array(yajl_gen g) { yajl_gen_array_open(g); }
void json_close_array(yajl_gen g) { yajl_gen_array_close(g); }

void json_kv_str(yajl_gen g, const char *key, const char *value)
{
    json_str(g, key);
    json_str(g, value);
}

void json_kv_int(yajl_gen g, const char *key, long long value)
{
    json_str(g, key);
    json_int(g, value);
}

char *json_finish(yajl_gen g, struct arena *a, size_t *len)
{
    const unsigned char *buf;
    size_t n;
    yajl_gen_get_buf(g, &buf, &n);
    char *out = arena_strndup(a, (const char *)buf, n);
    if (len)
        *len = n;
    yajl_gen_free(g);
    return out;
}

static int key_order(const void *x, const void *y, void *keys)
{
    const char **k = keys;
    return strcmp(k[*(const size_t *)x], k[*(const size_t *)y]);
}

static void write_value(yajl_gen g, const struct json_value *v, bool sorted)
{
    switch (v->type) {
    case JSON_NULL: yajl_gen_null(g); break;
    case JSON_BOOL: yajl_gen_bool(g, v->boolean); break;
    case JSON_NUMBER: yajl_gen_number(g, v->text, v->len); break;
    case JSON_STRING: json_strn(g, v->text, v->len); break;
    case JSON_ARRAY:
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->count; i++)
            write_value(g, v->items[i], sorted);
        yajl_gen_array_close(g);
        break;
    case JSON_OBJECT: {
        size_t order[JSON_MAX_MEMBERS];
        for (size_t i = 0; i < v->count && i < JSON_MAX_MEMBERS; i++)
            order[i] = i;
        if (sorted)
            qsort_r(order, v->count, sizeof(order[0]), key_order, (void *)v->keys);
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->count && i < JSON_MAX_MEMBERS; i++) {
            json_str(g, v->keys[order[i]]);
            write_value(g, v->items[order[i]], sorted);
        }
        yajl_gen_map_close(g);
        break;
    }
    }
}

void json_write_value(yajl_gen g, const struct json_value *v) { write_value(g, v, false); }
void json_write_canonical(yajl_gen g, const struct json_value *v) { write_value(g, v, true); }
