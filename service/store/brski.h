#ifndef MASAD_STORE_BRSKI_H
#define MASAD_STORE_BRSKI_H
/* What the BRSKI MASA (service/brski/) reads from the database: devices and
 * their owners, the owners' domain certificates, the vouchers issued. */
#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"
#include "store/vouchers.h"

/* A registered domain certificate of a (not deleted) owner, with that
 * owner's BRSKI policy (docs/management-api.md, Create an owner). */
struct store_brski_domain_cert {
    const char *owner;
    const unsigned char *der;          /* the certificate, DER */
    size_t der_len;
    unsigned char spki_sha256[32];
    unsigned char cert_sha256[32];
    const char *registrar_auth;        /* "any", "tls-equals-signer", "tls-chains-to-domain" */
    bool pin_registrar;                /* pinning "registrar-ee" */
};

/* The domain certificates whose SPKI SHA-256 is one of the n in spki. */
int store_brski_domains_by_spki(struct store_conn *c, struct arena *a,
                                const unsigned char (*spki)[32], size_t n,
                                struct store_brski_domain_cert **rows, size_t *count,
                                struct masad_error *err);
/* The domain certificates whose subject (RFC 2253) is subject. */
int store_brski_domains_by_subject(struct store_conn *c, struct arena *a, const char *subject,
                                   struct store_brski_domain_cert **rows, size_t *count,
                                   struct masad_error *err);

/* RFC 8995 §5.5.1: a device's last BRSKI voucher, and whether its
 * ownership changed after that voucher was issued. */
struct store_brski_last_voucher {
    bool found;
    const char *owner;                 /* the voucher's owner, NULL: none (TOFU) */
    const char *assertion;
    unsigned char domain_cert_sha256[32];
    bool ownership_changed_since;
};

/* Every fact of a voucher decision, read in one statement without a
 * transaction (docs/brski.md, How a request is processed): the device, its
 * current owner and ownership stamp, its last voucher, and the domain
 * certificates whose SPKI SHA-256 is one of the n in spki or, only when
 * none is, whose subject is issuer. */
struct store_brski_facts {
    bool device_known;
    const char *owner;                 /* current, NULL: none */
    const char *ownership_stamp;       /* for store_brski_voucher_record */
    struct store_brski_last_voucher last;
    struct store_brski_domain_cert *domains;
    size_t domain_count;
    bool by_spki;                      /* the domains matched by SPKI, not by subject */
};
int store_brski_facts(struct store_conn *c, struct arena *a, const char *serial,
                      const unsigned char (*spki)[32], size_t n, const char *issuer,
                      struct store_brski_facts *out, struct masad_error *err);

/* Records the BRSKI voucher v and appends its voucher.issue event (actor,
 * detail: canonical JSON), in one statement that holds the device FOR SHARE.
 * *recorded false: nothing was recorded, the device is gone or its
 * ownership is no longer the one of stamp (the caller decides again). */
int store_brski_voucher_record(struct store_conn *c, struct arena *a,
                               const struct store_voucher *v, const char *stamp,
                               const char *actor, const char *detail, bool *recorded,
                               struct masad_error *err);

/* Whether owner owns or ever owned the device. */
int store_brski_owned_ever(struct store_conn *c, struct arena *a, const char *serial,
                           const char *owner, bool *out, struct masad_error *err);

/* One BRSKI voucher of a device as RFC 8995 §5.8.1's audit log shows it. */
struct store_brski_log_row {
    const char *date;                  /* RFC 3339 UTC, milliseconds */
    const char *domain_id;             /* "" when none was recorded */
    const char *nonce;                 /* base64, NULL: nonceless */
    const char *assertion;
};
/* The device's BRSKI vouchers, newest first (at most 100,000). */
int store_brski_voucher_log(struct store_conn *c, struct arena *a, const char *serial,
                            struct store_brski_log_row **rows, size_t *count,
                            struct masad_error *err);

#endif
