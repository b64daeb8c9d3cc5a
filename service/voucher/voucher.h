#ifndef MASAD_VOUCHER_H
#define MASAD_VOUCHER_H
/*
 * voucher/: voucher artifacts (RFC 8366, RFC 8995 §3): reading voucher-
 * requests and issuing vouchers, shared by BRSKI and SZTP. Every document
 * from outside is validated against the YANG modules; what masad signs is
 * built valid against ietf-voucher (checked with libyang in test and debug
 * builds, MASAD_SELF_CHECK, and by tests/unit/test_voucher_issue.c). Never
 * touches the database.
 */
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/arena.h"
#include "common/error.h"

struct ly_ctx;
struct crypto_signer;

#define VOUCHER_OID "1.2.840.113549.1.9.16.1.40" /* id-ct-animaJSONVoucher, RFC 8366 §8.3 */
#define ID_DATA_OID "1.2.840.113549.1.7.1"

/* A voucher-request (RFC 8995 §3.3), its binary leaves decoded. */
struct voucher_request {
    const char *serial;
    const char *assertion;                    /* NULL when absent */
    const unsigned char *nonce;               /* NULL: nonceless */
    size_t nonce_len;
    const char *nonce_text;                   /* the nonce exactly as the sender wrote it */
    const unsigned char *prior_signed;        /* the PVR (DER CMS), or NULL */
    size_t prior_signed_len;
    const unsigned char *proximity_cert;      /* DER, or NULL */
    size_t proximity_cert_len;
    const unsigned char *idevid_issuer;       /* or NULL */
    size_t idevid_issuer_len;
    bool idevid_issuer_is_text;               /* sent as a printable name, not base64:
                                               * idevid_issuer holds its UTF-8 bytes */
    bool voucher_root;                        /* sent as ietf-voucher:voucher */
};

/* Reads a voucher-request. Tolerant of what deployed registrars and pledges
 * send where no check depends on it, each normalised before the document is
 * validated against ietf-voucher-request (docs/brski.md, Deployed clients):
 * the root ietf-voucher:voucher, unpadded base64url binary leaves, an
 * idevid-issuer written as a printable name, and a created-on without a
 * time of day. -1 with a sentence in why. */
int voucher_request_parse(const struct ly_ctx *yang, struct arena *a, const unsigned char *json,
                          size_t len, struct voucher_request *out, char *why, size_t why_len);

struct voucher_terms {
    const char *serial;
    const char *assertion;                    /* "verified", "logged", "proximity" */
    const unsigned char *pinned_cert;         /* DER of the pinned-domain-cert */
    size_t pinned_cert_len;
    const unsigned char *nonce;               /* NULL: a nonceless voucher */
    size_t nonce_len;
    time_t created_on;
    time_t expires_on;                        /* 0: none (only nonceless vouchers expire) */
    const unsigned char *idevid_issuer;       /* NULL: leave out */
    size_t idevid_issuer_len;
};

/* The voucher JSON for t, in `a`, built once in its final form: members in
 * the module's order, binary leaves in standard base64, times in RFC 3339
 * UTC; the nonce leaf as nonce_text when given (else the base64 of
 * t->nonce). */
const char *voucher_build(struct arena *a, const struct voucher_terms *t, const char *nonce_text);

/* Builds the voucher (validated against ietf-voucher in MASAD_SELF_CHECK
 * builds) and signs it with the signer as CMS (id-ct-animaJSONVoucher, the
 * signer's chain included). The CMS DER and the signed JSON are in `a`. */
int voucher_issue(const struct ly_ctx *yang, struct crypto_signer *signer, struct arena *a,
                  const struct voucher_terms *t, unsigned char **cms, size_t *cms_len,
                  const char **json, struct masad_error *err);
/* The same, with the nonce leaf signed as nonce_text (the pledge's own text
 * of t->nonce, unpadded base64url for instance); a self-check validates the
 * standard base64 of the same bytes, which libyang requires. */
int voucher_issue_echoing(const struct ly_ctx *yang, struct crypto_signer *signer,
                          struct arena *a, const struct voucher_terms *t, const char *nonce_text,
                          unsigned char **cms, size_t *cms_len, const char **json,
                          struct masad_error *err);

/* RFC 3339 UTC ("2026-11-23T14:05:09Z") into out (at least 21 bytes). */
void voucher_time(time_t t, char *out);

#endif
