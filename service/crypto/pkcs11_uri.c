#include "crypto/pkcs11_uri.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 7512 §2.3: values are percent-encoded; decodes into a fresh buffer. */
static int decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (unsigned char)c;
    }
    out[o] = 0;
    *out_len = o;
    return 0;
}

static char *decode_str(const char *s, size_t n)
{
    unsigned char *buf = malloc(n + 1);
    size_t len;
    if (!buf || decode(s, n, buf, n + 1, &len) != 0 || memchr(buf, 0, len)) {
        free(buf);
        return NULL;
    }
    return (char *)buf;
}

static int set_attribute(struct pkcs11_uri *u, const char *name, size_t name_len,
                         const char *value, size_t value_len)
{
#define IS(lit) (name_len == sizeof(lit) - 1 && !memcmp(name, lit, name_len))
    char **slot = IS("token")       ? &u->token
                  : IS("serial")     ? &u->serial
                  : IS("object")     ? &u->object
                  : IS("type")       ? &u->type
                  : IS("module-path") ? &u->module_path
                  : IS("pin-value")  ? &u->pin_value
                  : IS("pin-source") ? &u->pin_source
                                     : NULL;
    if (IS("id")) {
        unsigned char buf[sizeof(u->id) + 1];
        if (decode(value, value_len, buf, sizeof(buf), &u->id_len) != 0)
            return -1;
        memcpy(u->id, buf, u->id_len);
        return 0;
    }
#undef IS
    if (!slot)
        return 0;
    if (*slot)
        return -1; /* RFC 7512 §2.3: an attribute may appear once */
    *slot = decode_str(value, value_len);
    return *slot ? 0 : -1;
}

static int parse_part(struct pkcs11_uri *u, const char *s, size_t n, char sep)
{
    while (n > 0) {
        const char *end = memchr(s, sep, n);
        size_t len = end ? (size_t)(end - s) : n;
        const char *eq = memchr(s, '=', len);
        if (!eq || eq == s)
            return -1;
        if (set_attribute(u, s, (size_t)(eq - s), eq + 1, len - (size_t)(eq - s) - 1) != 0)
            return -1;
        if (!end)
            break;
        n -= len + 1;
        s = end + 1;
    }
    return 0;
}

int pkcs11_uri_parse(const char *uri, struct pkcs11_uri *out, struct masad_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(uri, "pkcs11:", 7) != 0)
        return error_set(err, 500, "pkcs11-uri", "not a PKCS#11 URI: it must start with pkcs11:");
    const char *path = uri + 7;
    const char *q = strchr(path, '?');
    size_t path_len = q ? (size_t)(q - path) : strlen(path);
    if (parse_part(out, path, path_len, ';') != 0 || (q && parse_part(out, q + 1, strlen(q + 1), '&') != 0)) {
        pkcs11_uri_clear(out);
        return error_set(err, 500, "pkcs11-uri", "malformed PKCS#11 URI (RFC 7512)");
    }
    if (!out->object && !out->id_len) {
        pkcs11_uri_clear(out);
        return error_set(err, 500, "pkcs11-uri", "the PKCS#11 URI names no key: give object= or id=");
    }
    return 0;
}

void pkcs11_uri_clear(struct pkcs11_uri *u)
{
    free(u->token);
    free(u->serial);
    free(u->object);
    free(u->type);
    free(u->module_path);
    if (u->pin_value)
        OPENSSL_cleanse(u->pin_value, strlen(u->pin_value));
    free(u->pin_value);
    free(u->pin_source);
    memset(u, 0, sizeof(*u));
}
