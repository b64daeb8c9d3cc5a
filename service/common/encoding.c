#include "common/encoding.h"

#include <openssl/evp.h>
#include <string.h>

#include "common/arena.h"

unsigned char *base64_decode(struct arena *a, const char *text, size_t text_len, size_t *len)
{
    /* translate base64url to base64 and restore the padding */
    char *b = arena_alloc(a, text_len + 4);
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < text_len; i++) {
        char c = text[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/' || c == '-' || c == '_'))
            return NULL; /* padding only at the end; nothing but the alphabet */
        b[n++] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    if (n % 4 == 1 || pad > 2)
        return NULL;
    size_t missing = (4 - n % 4) % 4;
    if (pad && pad != missing)
        return NULL;
    for (size_t i = 0; i < missing; i++)
        b[n++] = '=';
    unsigned char *out = arena_alloc(a, n / 4 * 3 + 1);
    int got = n ? EVP_DecodeBlock(out, (const unsigned char *)b, (int)n) : 0;
    if (got < 0)
        return NULL;
    *len = (size_t)got - missing;
    out[*len] = 0;
    return out;
}

char *base64_encode(struct arena *a, const unsigned char *data, size_t len)
{
    char *out = arena_alloc(a, 4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

size_t base64url_encode_to(const unsigned char *data, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    size_t n = strcspn(out, "=");
    for (size_t i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[n] = 0;
    return n;
}

char *base64url_encode(struct arena *a, const unsigned char *data, size_t len)
{
    char *out = arena_alloc(a, base64_length(len) + 1);
    base64url_encode_to(data, len, out);
    return out;
}

int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void hex_encode_to(const unsigned char *data, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * n] = 0;
}

char *hex_encode(struct arena *a, const unsigned char *data, size_t n)
{
    char *out = arena_alloc(a, 2 * n + 1);
    hex_encode_to(data, n, out);
    return out;
}

long hex_decode_to(const char *text, unsigned char *out, size_t cap)
{
    size_t n = strlen(text);
    if (n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int h = hex_digit(text[2 * i]), l = hex_digit(text[2 * i + 1]);
        if (h < 0 || l < 0)
            return -1;
        out[i] = (unsigned char)(h * 16 + l);
    }
    return (long)(n / 2);
}

unsigned char *hex_decode(struct arena *a, const char *text, size_t *len)
{
    size_t cap = strlen(text) / 2;
    unsigned char *out = arena_alloc(a, cap + 1);
    long n = hex_decode_to(text, out, cap);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    out[n] = 0;
    return out;
}

void sha256_hex_to(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex_encode_to(md, 32, out);
}

char *hex_sha256(struct arena *a, const void *data, size_t len)
{
    char *out = arena_alloc(a, 65);
    sha256_hex_to(data, len, out);
    return out;
}

char *percent_decode(struct arena *a, const char *s, size_t n)
{
    char *out = arena_alloc(a, n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= n) /* needs s[i+1] and s[i+2] */
            return NULL;
        int h = hex_digit(s[i + 1]), l = hex_digit(s[i + 2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0))
            return NULL;
        *o++ = (char)(h * 16 + l);
        i += 2;
    }
    *o = 0;
    return out;
}

bool media_type_is(const char *value, const char *want)
{
    size_t n = strcspn(value, ";");
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        n--;
    return n == strlen(want) && !strncasecmp(value, want, n);
}
