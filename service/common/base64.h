#ifndef MASAD_COMMON_BASE64_H
#define MASAD_COMMON_BASE64_H
/* Base64 (RFC 4648 §4) and base64url (§5) of untrusted text. */
#include <stdbool.h>
#include <stddef.h>

struct arena;

/* Decodes standard or URL-safe base64, padded or not; no whitespace. NULL
 * when the text is not base64. The result is in `a`, NUL-terminated. */
unsigned char *base64_decode(struct arena *a, const char *text, size_t text_len, size_t *len);
/* Standard base64 with padding, in `a`. */
char *base64_encode(struct arena *a, const unsigned char *data, size_t len);

#endif
