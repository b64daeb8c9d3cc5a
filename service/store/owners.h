#ifndef MASAD_STORE_OWNERS_H
#define MASAD_STORE_OWNERS_H
/* Owners (table owners) and their BRSKI domain certificates (table
 * owner_domain_certs, one owner per public key). */
#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

/* Locks the owner's row (FOR UPDATE): 1 when a live owner, 0 when none or
 * deleted, -1 on error. */
int store_owner_lock(struct store_conn *c, struct arena *a, const char *owner,
                     struct masad_error *err);

/* An owner as written. Byte fields are DER; NULL: none. */
struct store_owner_write {
    const char *owner_id, *display_name;
    const char *brski;                      /* JSON text */
    const unsigned char *const *owner_certs; /* the SZTP owner certificate chain */
    const size_t *owner_cert_lens;
    size_t owner_cert_count;
    const char *conveyed_information;       /* JSON text */
    const unsigned char *signed_conveyed;   /* CMS SignedData */
    size_t signed_conveyed_len;
    bool signed_onboarding;                 /* what the signed data holds */
};
/* Creates the owner, or replaces it (and revives a deleted one). */
int store_owner_upsert(struct store_conn *c, struct arena *a, const struct store_owner_write *o,
                       struct masad_error *err);

/* A domain certificate with its digests. */
struct store_domain_cert {
    const unsigned char *der;
    size_t der_len;
    unsigned char cert_sha256[32], spki_sha256[32];
    const char *subject, *not_after;        /* not_after RFC 3339 */
};
int store_owner_certs_clear(struct store_conn *c, struct arena *a, const char *owner,
                            struct masad_error *err);
int store_owner_certs_add(struct store_conn *c, struct arena *a, const char *owner,
                          const struct store_domain_cert *certs, size_t n,
                          struct masad_error *err);
/* A public key already registered to another owner. */
struct store_cert_taken {
    unsigned char spki_sha256[32];
    const char *owner_id;
};
/* Which of the n keys (SHA-256 of the SPKI) owners other than `owner` hold. */
int store_owner_certs_taken(struct store_conn *c, struct arena *a, const char *owner,
                            const unsigned char (*spki_sha256)[32], size_t n,
                            struct store_cert_taken **out, size_t *count,
                            struct masad_error *err);

/* An owner as the management API shows it. Certificates and the signed
 * CMS in base64 (RFC 4648 §4). */
struct store_owner {
    const char *owner_id, *display_name;
    const char *brski;                      /* JSON text, or NULL */
    const char **owner_certs_b64;
    size_t owner_cert_count;
    const char *conveyed_information;       /* JSON text, or NULL */
    const char *signed_conveyed_b64;        /* or NULL */
    const char *created_at, *updated_at;
};
/* 1 and *out for a live owner, 0 when none, -1 on error. */
int store_owner_get(struct store_conn *c, struct arena *a, const char *owner,
                    struct store_owner *out, struct masad_error *err);
/* Up to limit live owners after `after` ("" from the start), by id. */
int store_owner_list(struct store_conn *c, struct arena *a, const char *after, long limit,
                     struct store_owner **out, size_t *count, struct masad_error *err);
/* The number of devices the owner has now. */
int store_owner_devices_count(struct store_conn *c, struct arena *a, const char *owner,
                              long long *count, struct masad_error *err);
/* Marks the owner deleted. */
int store_owner_delete(struct store_conn *c, struct arena *a, const char *owner,
                       struct masad_error *err);

#endif
