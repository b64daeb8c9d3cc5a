#include "common/base64.h"

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

char *hex_encode(struct arena *a, const unsigned char *data, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *out = arena_alloc(a, 2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    return out;
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

unsigned char *hex_decode(struct arena *a, const char *text, size_t *len)
{
    size_t n = strlen(text);
    if (n % 2)
        return NULL;
    unsigned char *out = arena_alloc(a, n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int h = nibble(text[2 * i]), l = nibble(text[2 * i + 1]);
        if (h < 0 || l < 0)
            return NULL;
        out[i] = (unsigned char)(h * 16 + l);
    }
    *len = n / 2;
    return out;
}

char *hex_sha256(struct arena *a, const void *data, size_t len)
{
    unsigned char md[32];
    unsigned int n;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    return hex_encode(a, md, 32);
}
