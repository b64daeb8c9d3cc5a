#ifndef MASAD_CRYPTO_PKCS11_URI_H
#define MASAD_CRYPTO_PKCS11_URI_H
/* Folder-private: an RFC 7512 PKCS#11 URI, parsed by p11-kit, and the
 * matching of libp11's tokens and keys against it. */
#include <libp11.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

struct p11_kit_uri;

struct pkcs11_uri {
    struct p11_kit_uri *parsed;   /* owns the pointers below but token and object */
    char *token;                  /* token label, or NULL */
    char *object;                 /* key label, or NULL */
    const unsigned char *id;      /* key CKA_ID, or NULL */
    size_t id_len;
    const char *module_path;      /* query attribute module-path, or NULL */
    const char *pin_value;        /* query attribute pin-value, or NULL */
    const char *pin_source;       /* query attribute pin-source, or NULL */
};

/* Parses uri. Every attribute must be one p11-kit knows (RFC 7512 §2.3;
 * vendor query attributes "x-..." excepted) and appear once, and the URI
 * must name a key (object= or id=); otherwise -1 with a sentence naming the
 * attribute. On success release with pkcs11_uri_clear(). */
int pkcs11_uri_parse(const char *uri, struct pkcs11_uri *out, struct masad_error *err);
void pkcs11_uri_clear(struct pkcs11_uri *u);

/* Does the token in slot match the URI's token, slot and library attributes? */
bool pkcs11_uri_matches_token(const struct pkcs11_uri *u, PKCS11_CTX *ctx, PKCS11_SLOT *slot);
/* Does the private key match the URI's object attributes (object, id, type)? */
bool pkcs11_uri_matches_key(const struct pkcs11_uri *u, const PKCS11_KEY *key);

#endif
