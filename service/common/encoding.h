#ifndef MASAD_COMMON_ENCODING_H
#define MASAD_COMMON_ENCODING_H
/*
 * Text encodings of bytes, in one place: base64 (RFC 4648 §4) and base64url
 * (§5), hexadecimal, SHA-256 as hex, RFC 3986 percent-decoding and media
 * type comparison. Every decoder takes untrusted text and says NULL (or -1)
 * rather than guess.
 */
#include <stdbool.h>
#include <stddef.h>

struct arena;

/* Decodes standard or URL-safe base64, padded or not; no whitespace. NULL
 * when the text is not base64. The result is in `a`, NUL-terminated. */
unsigned char *base64_decode(struct arena *a, const char *text, size_t text_len, size_t *len);
/* Standard base64 with padding, in `a`. */
char *base64_encode(struct arena *a, const unsigned char *data, size_t len);
/* base64url without padding (RFC 4648 §5, as in URLs and tokens), in `a`. */
char *base64url_encode(struct arena *a, const unsigned char *data, size_t len);
/* The same into out, which holds at least base64_length(len) + 1 bytes;
 * returns the length written (NUL-terminated). */
size_t base64url_encode_to(const unsigned char *data, size_t len, char *out);
/* Characters of the padded base64 of len bytes. */
static inline size_t base64_length(size_t len) { return 4 * ((len + 2) / 3); }

/* The value of one hex digit (either case), or -1. */
int hex_digit(int c);
/* Lower-case hexadecimal of n bytes, in `a`. */
char *hex_encode(struct arena *a, const unsigned char *data, size_t n);
/* The same into out, which holds 2n + 1 bytes. */
void hex_encode_to(const unsigned char *data, size_t n, char *out);
/* The bytes of hexadecimal text, in `a`; NULL when it is not hex. */
unsigned char *hex_decode(struct arena *a, const char *text, size_t *len);
/* Hex text into out: the number of bytes, or -1 when the text is not hex
 * of at most cap bytes. */
long hex_decode_to(const char *text, unsigned char *out, size_t cap);

/* Lower-case hex of SHA-256(data), in `a`, or into out[65]. */
char *hex_sha256(struct arena *a, const void *data, size_t len);
void sha256_hex_to(const void *data, size_t len, char out[65]);

/* RFC 3986 §2.1 percent-decoding of s[0..n), in `a`; NULL for a bad escape
 * or an escaped NUL. */
char *percent_decode(struct arena *a, const char *s, size_t n);

/* Whether a Content-Type or Accept item names the media type `want`
 * ("type/subtype", case-insensitive, RFC 9110 §8.3.1); parameters after
 * ";" are ignored. */
bool media_type_is(const char *value, const char *want);

#endif
