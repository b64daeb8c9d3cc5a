#ifndef MASAD_COMMON_BASE64_H
#define MASAD_COMMON_BASE64_H
/* Text encodings of bytes: base64 (RFC 4648 §4) and base64url (§5) of
 * untrusted text, and hexadecimal. */
#include <stdbool.h>
#include <stddef.h>

struct arena;

/* Decodes standard or URL-safe base64, padded or not; no whitespace. NULL
 * when the text is not base64. The result is in `a`, NUL-terminated. */
unsigned char *base64_decode(struct arena *a, const char *text, size_t text_len, size_t *len);
/* Standard base64 with padding, in `a`. */
char *base64_encode(struct arena *a, const unsigned char *data, size_t len);

#endif

/* Lower-case hexadecimal of n bytes, in `a`. */
char *hex_encode(struct arena *a, const unsigned char *data, size_t n);
/* The bytes of hexadecimal text, in `a`; NULL when it is not hex. */
unsigned char *hex_decode(struct arena *a, const char *text, size_t *len);
/* Lower-case hex of SHA-256(data), in `a`. */
char *hex_sha256(struct arena *a, const void *data, size_t len);
