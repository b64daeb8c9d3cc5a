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
#include "common/error.h"

struct crypto_signer;

struct crypto_signer_options {
    const char *key;            /* "pkcs11:..." (RFC 7512) or a PEM key file path */
    const char *pkcs11_module;  /* used when the URI has no module-path */
    const char *certificate;    /* PEM: signer certificate, then its chain */
    const char *pin;            /* overrides the URI's pin-value / pin-source */
};

/* Opens the key and checks, by signing and verifying, that it matches the
 * certificate. A file key is accepted with a loud warning (development). */
int crypto_signer_open(const struct crypto_signer_options *opts, struct crypto_signer **out,
                       struct masad_error *err);
void crypto_signer_free(struct crypto_signer *s);

bool crypto_signer_is_hsm(const struct crypto_signer *s);
X509 *crypto_signer_certificate(const struct crypto_signer *s);
STACK_OF(X509) *crypto_signer_chain(const struct crypto_signer *s);

/* Signs a fixed digest: 0 when the key is usable right now. */
int crypto_signer_probe(struct crypto_signer *s);

/* A CMS SignedData over content with the given eContentType (dotted OID),
 * the content encapsulated, the signer's certificate and chain included.
 * The DER is allocated in `a`. */
int crypto_cms_sign(struct crypto_signer *s, struct arena *a, const void *content, size_t len,
                    const char *econtent_oid, unsigned char **der, size_t *der_len,
                    struct masad_error *err);

/* Reads every certificate of a PEM file, in order. */
STACK_OF(X509) *crypto_read_pem_certs(const char *path, struct masad_error *err);

#endif

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
/* chain[i] is issued and signed by chain[i+1], for every i. */
int crypto_chain_linked(STACK_OF(X509) *chain, char *why);
/* Verifies a CMS SignedData (DER) signed by chain[0] with a path to the last
 * certificate of chain (the trust anchor); gives its eContentType (dotted)
 * and the content, in `a`. */
int crypto_cms_verify_by_chain(const unsigned char *der, size_t len, STACK_OF(X509) *chain,
                               struct arena *a, char *oid, size_t oid_len,
                               unsigned char **content, size_t *content_len, char *why);
