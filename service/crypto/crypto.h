#ifndef MASAD_CRYPTO_H
#define MASAD_CRYPTO_H
/*
 * crypto/: the signing key (PKCS#11 HSM through libp11, or a PEM file for
 * development) and CMS signatures made with it.
 *
 * A signer is opened once at start and shared by every job thread: libp11
 * keeps a pool of PKCS#11 sessions behind one key object, so signing is
 * thread-safe. The signer never touches the database.
 */
#include <openssl/cms.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/arena.h"
#include "common/config.h"
#include "common/error.h"

struct crypto_signer;

struct crypto_signer_options {
    const char *key;            /* "pkcs11:..." (RFC 7512) or a PEM key file path */
    const char *pkcs11_module;  /* used when the URI has no module-path */
    const char *certificate;    /* PEM: signer certificate, then its chain */
    const char *pin;            /* overrides the URI's pin-value / pin-source */
};

/* check-config: the key's PKCS#11 URI parses (RFC 7512) and names a key;
 * a sentence naming the faulty attribute otherwise. The token is not
 * opened. */
int crypto_key_uri_check(const char *uri, struct masad_error *err);

/* check-config (crypto/check.c): every file the configuration names
 * exists and parses (the TLS certificate chain and the key that matches
 * it, the IDevID trust anchors, the signer certificate, a PEM signing key
 * that matches it or a PKCS#11 URI that parses, the PKCS#11 module). Each
 * fault goes to err (config_fault); 0 when none. */
int crypto_check_config(const struct config *cfg, FILE *err);

/* Opens the key and checks, by signing and verifying, that it matches the
 * certificate. A file key is accepted with a loud warning (development). */
int crypto_signer_open(const struct crypto_signer_options *opts, struct crypto_signer **out,
                       struct masad_error *err);
void crypto_signer_free(struct crypto_signer *s);

bool crypto_signer_is_hsm(const struct crypto_signer *s);
X509 *crypto_signer_certificate(const struct crypto_signer *s);
STACK_OF(X509) *crypto_signer_chain(const struct crypto_signer *s);

/* Signs a fixed digest: 0 when the key is usable right now. A PKCS#11
 * token that failed (here or in crypto_cms_sign) is re-opened by the next
 * call after a backoff of 250 ms doubling to 8 s, logging in again with the
 * PIN the signer keeps; a PIN the token refused is never tried again. */
int crypto_signer_probe(struct crypto_signer *s);

/* A CMS SignedData over content with the given eContentType (dotted OID),
 * the content encapsulated, the signer's certificate and chain included.
 * The DER is allocated in `a`. */
int crypto_cms_sign(struct crypto_signer *s, struct arena *a, const void *content, size_t len,
                    const char *econtent_oid, unsigned char **der, size_t *der_len,
                    struct masad_error *err);

/* Reads every certificate of a PEM file, in order. */
STACK_OF(X509) *crypto_read_pem_certs(const char *path, struct masad_error *err);


/* ---- certificates from untrusted input (crypto/certs.c) ----
 * Each returns NULL / -1 with a sentence in `why` (at least 256 bytes). */

/* Exactly one PEM certificate and nothing else. */
X509 *crypto_cert_from_pem(const char *pem, size_t len, char *why);
/* SHA-256 of the DER certificate and of its SubjectPublicKeyInfo. */
void crypto_cert_digests(X509 *x, unsigned char cert_sha256[32], unsigned char spki_sha256[32]);
/* RFC 3339 UTC ("2026-11-23T14:05:09Z"); out holds at least 32 bytes. */
void crypto_time_rfc3339(const ASN1_TIME *t, char *out);
/* RFC 2253 subject, in `a`. */
const char *crypto_cert_subject(X509 *x, struct arena *a);
/* -1 when the certificate is outside its validity period now. */
int crypto_cert_current(X509 *x, char *why);
/* RFC 8995 §2.3.1, RFC 5280 §4.2.1.3/§4.2.1.9/§4.2.1.12: a device identity
 * presented for TLS client authentication is an end-entity certificate
 * (no basicConstraints, or CA:FALSE), with digitalSignature if it has
 * keyUsage and clientAuth if it has extendedKeyUsage. */
int crypto_cert_client_identity(X509 *x, char *why);
/* A DER CMS SignedData without signers holding 1 to max_certs certificates
 * and nothing after it (RFC 8572 §7.3 trust-anchor-cert, RFC 8572 §3.2). */
int crypto_certs_only_check(const unsigned char *der, size_t len, int max_certs, char *why);
/* chain[i] is issued and signed by chain[i+1], for every i. */
int crypto_chain_linked(STACK_OF(X509) *chain, char *why);
/* Verifies a CMS SignedData (DER) signed by chain[0] with a path to the last
 * certificate of chain (the trust anchor); gives its eContentType (dotted)
 * and the content, in `a`. */
int crypto_cms_verify_by_chain(const unsigned char *der, size_t len, STACK_OF(X509) *chain,
                               struct arena *a, char *oid, size_t oid_len,
                               unsigned char **content, size_t *content_len, char *why);

/* ---- signed objects from untrusted input (crypto/verify.c) ---- */

struct crypto_signed {
    X509 *signer;                /* the signer's certificate, from the CMS */
    STACK_OF(X509) *certs;       /* every certificate the CMS carries */
    unsigned char *content;      /* the encapsulated content, NUL-terminated */
    size_t content_len;
    char econtent_type[64];      /* dotted OID */
};

/* Parses a DER CMS SignedData with one signer and checks that signer's
 * signature with the certificate the CMS carries for it; no path to any
 * trust anchor is checked (the caller does that). Objects are freed with
 * the arena. -1 with a sentence in why (256 bytes) when it is not such a
 * structure or the signature is wrong. */
int crypto_cms_open(const unsigned char *der, size_t len, struct arena *a,
                    struct crypto_signed *out, char *why);

/* The certification path upward from leaf through the pool, each link's
 * signature checked, leaf first; stops at a self-issued certificate or
 * when no issuer is in the pool (at most 8 long). Freed with the arena. */
STACK_OF(X509) *crypto_path_up(X509 *leaf, STACK_OF(X509) *pool, struct arena *a);

/* Does x list the extended key usage nid (e.g. NID_cmcRA)? */
bool crypto_has_eku(X509 *x, int nid);
/* The keyIdentifier of x's Authority Key Identifier, or NULL. */
const ASN1_OCTET_STRING *crypto_authority_key_id(X509 *x);
/* DER of x, in `a`. */
unsigned char *crypto_cert_der(X509 *x, struct arena *a, size_t *len);

/* ---- parsed certificates, cached (crypto/certcache.c) ----
 * One process-wide cache, shared by every thread, of certificates parsed
 * from DER and keyed by the SHA-256 of the DER: a certificate that comes
 * again (a registrar's or owner's chain on every request, a domain
 * certificate read from the database) is parsed once. Bounded: at most
 * `capacity` entries (4096 unless configured), the least recently used
 * going first (clock eviction), so hostile input can churn the cache but
 * not grow it. A cached X509 is shared: callers read it, put it in stacks
 * and stores, and X509_free their reference, but never modify it. */

/* A new reference to the certificate whose DER is exactly der[0..len), or
 * NULL when it is not one certificate (nothing is cached then). */
X509 *crypto_cert_cache_get(const unsigned char *der, size_t len);
/* The same, the reference released with the arena. */
X509 *crypto_cert_cache_get_arena(struct arena *a, const unsigned char *der, size_t len);

struct crypto_cert_cache_stats {
    unsigned long long hits, misses, evictions;
    size_t entries, capacity;
};
void crypto_cert_cache_stats(struct crypto_cert_cache_stats *out);
/* Empties the cache and bounds it to n entries from now on (and zeroes the
 * counters); certificates callers hold stay valid. */
void crypto_cert_cache_configure(size_t n);
/* Empties the cache, freeing its memory (at exit; a later get starts again). */
void crypto_cert_cache_clear(void);
/* Is child issued by issuer (names and key identifiers, RFC 5280 §6.1.3)
 * and signed with its key? A link whose signature verified once is not
 * verified again (a bounded table of links keyed by both DERs' SHA-256). */
bool crypto_cert_issued_by(X509 *child, X509 *issuer);

/* ---- IDevID trust anchors (crypto/anchors.c) ---- */

enum crypto_serial_source {
    SERIAL_FROM_SERIAL_NUMBER,
    SERIAL_FROM_COMMON_NAME,
    SERIAL_FROM_HARDWARE_MODULE_NAME   /* RFC 4108 §5, in the subjectAltName */
};

struct crypto_anchor_spec {
    const char *name;
    const char *certificate;             /* PEM file: one or more CA certificates */
    enum crypto_serial_source serial_from;
};

struct crypto_anchors;

int crypto_anchors_new(const struct crypto_anchor_spec *specs, size_t count,
                       struct crypto_anchors **out, struct masad_error *err);
void crypto_anchors_free(struct crypto_anchors *a);
size_t crypto_anchors_count(const struct crypto_anchors *a);

/* Is s UTF-8 text of 1 to 64 characters without a control character (C0,
 * DEL, C1)? What masad takes as a serial number from an IDevID or a request. */
bool crypto_serial_acceptable(const char *s);

/* Verifies leaf, with the untrusted intermediates, to a configured anchor
 * (any configured certificate may be the anchor), and gives the device's
 * serial number by that anchor's rule (RFC 8995 §2.3.1: by default the
 * subject's serialNumber attribute): UTF-8 text of 1 to 64 characters
 * without control characters. Thread-safe. */
int crypto_idevid_identify(const struct crypto_anchors *anchors, X509 *leaf,
                           STACK_OF(X509) *untrusted, struct arena *a, const char **serial,
                           const char **anchor_name, char *why);

/* ---- SZTP artifacts and device passwords (crypto/artifacts.c) ---- */

/* A CMS ContentInfo of the given content type whose content is data as an
 * OCTET STRING (RFC 8572 §3.1: unsigned conveyed information). */
int crypto_content_info(const char *oid, const void *data, size_t len, struct arena *a,
                        unsigned char **der, size_t *der_len);
/* A degenerate CMS SignedData holding certificates only (RFC 8572 §3.2). */
int crypto_certs_only(STACK_OF(X509) *certs, struct arena *a, unsigned char **der, size_t *der_len);

/* docs/management-api.md: a device's SZTP password is kept as SHA-256(salt || password). */
void crypto_password_digest(const unsigned char *salt, size_t salt_len, const char *password,
                            unsigned char out[32]);
/* Compares in constant time; salt and hash as hex (either may be NULL). */
bool crypto_password_matches(const char *salt_hex, const char *hash_hex, const char *password);

#endif
