#ifndef MASAD_CRYPTO_PKCS11_URI_H
#define MASAD_CRYPTO_PKCS11_URI_H
/* Folder-private: the parts of an RFC 7512 PKCS#11 URI that masad uses. */
#include <stddef.h>

#include "common/error.h"

struct pkcs11_uri {
    char *token;          /* token label */
    char *serial;         /* token serial */
    char *object;         /* key label */
    unsigned char id[128];/* key CKA_ID */
    size_t id_len;
    char *type;           /* "private" when given */
    char *module_path;    /* query attribute module-path */
    char *pin_value;      /* query attribute pin-value */
    char *pin_source;     /* query attribute pin-source (a file path) */
};

/* Parses uri; unknown attributes are ignored as RFC 7512 §2.3 allows for
 * those a consumer does not use, but a malformed URI is refused. */
int pkcs11_uri_parse(const char *uri, struct pkcs11_uri *out, struct masad_error *err);
void pkcs11_uri_clear(struct pkcs11_uri *u);

#endif
