/*
 * The process-wide cache of parsed certificates (crypto/certcache.c): the
 * same DER gives the same shared X509, anything but exactly one certificate
 * is refused and not kept, the count stays bounded with the recently used
 * kept, and threads share it safely (run under ASan in scripts/test); and
 * a certification link's signature, remembered once verified, is still
 * refused for any other pair of certificates.
 */
#include <criterion/criterion.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

#define CERTS 32

static unsigned char *der[CERTS];
static size_t der_len[CERTS];

/* Distinct self-signed certificates (one key, serials 1..CERTS). */
static void make_certs(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    for (int i = 0; i < CERTS; i++) {
        X509 *x = X509_new();
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1);
        X509_NAME *name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"cache test",
                                   -1, -1, 0);
        X509_set_issuer_name(x, name);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
        der[i] = NULL;
        int n = i2d_X509(x, &der[i]);
        cr_assert(n > 0);
        der_len[i] = (size_t)n;
        X509_free(x);
    }
    EVP_PKEY_free(key);
}

static void setup(void)
{
    make_certs();
    crypto_cert_cache_configure(8);
}

static void teardown(void)
{
    crypto_cert_cache_clear();
    for (int i = 0; i < CERTS; i++)
        OPENSSL_free(der[i]);
}

static struct crypto_cert_cache_stats stats(void)
{
    struct crypto_cert_cache_stats s;
    crypto_cert_cache_stats(&s);
    return s;
}

static long serial_of(X509 *x) { return ASN1_INTEGER_get(X509_get0_serialNumber(x)); }

Test(certcache, same_der_same_certificate, .init = setup, .fini = teardown)
{
    X509 *first = crypto_cert_cache_get(der[0], der_len[0]);
    cr_assert_not_null(first);
    unsigned char *copy = malloc(der_len[0]); /* the key is the bytes, not the pointer */
    memcpy(copy, der[0], der_len[0]);
    X509 *again = crypto_cert_cache_get(copy, der_len[0]);
    free(copy);
    cr_assert_eq(again, first, "a second parse of the same DER");
    cr_assert_eq(serial_of(first), 1);
    struct crypto_cert_cache_stats s = stats();
    cr_assert_eq(s.misses, 1);
    cr_assert_eq(s.hits, 1);
    cr_assert_eq(s.entries, 1);
    X509_free(first);
    X509_free(again);
}

Test(certcache, distinct_certificates_miss, .init = setup, .fini = teardown)
{
    X509 *a = crypto_cert_cache_get(der[0], der_len[0]);
    X509 *b = crypto_cert_cache_get(der[1], der_len[1]);
    cr_assert(a && b && a != b);
    cr_assert_eq(serial_of(b), 2);
    struct crypto_cert_cache_stats s = stats();
    cr_assert_eq(s.misses, 2);
    cr_assert_eq(s.hits, 0);
    X509_free(a);
    X509_free(b);
}

Test(certcache, what_is_not_one_certificate_is_refused_and_not_kept, .init = setup, .fini = teardown)
{
    unsigned char junk[64];
    memset(junk, 0x30, sizeof(junk));
    cr_assert_null(crypto_cert_cache_get(junk, sizeof(junk)));
    cr_assert_null(crypto_cert_cache_get(der[0], der_len[0] - 1), "truncated");
    unsigned char *trailing = malloc(der_len[0] + 1);
    memcpy(trailing, der[0], der_len[0]);
    trailing[der_len[0]] = 0;
    cr_assert_null(crypto_cert_cache_get(trailing, der_len[0] + 1), "data after the certificate");
    free(trailing);
    cr_assert_null(crypto_cert_cache_get(NULL, 0));
    cr_assert_eq(stats().entries, 0);
}

Test(certcache, bounded_and_held_references_stay_valid, .init = setup, .fini = teardown)
{
    X509 *held[CERTS];
    for (int i = 0; i < CERTS; i++) {
        held[i] = crypto_cert_cache_get(der[i], der_len[i]);
        cr_assert_not_null(held[i]);
        cr_assert_leq(stats().entries, 8);
    }
    struct crypto_cert_cache_stats s = stats();
    cr_assert_eq(s.entries, 8);
    cr_assert_eq(s.capacity, 8);
    cr_assert_eq(s.evictions, CERTS - 8);
    for (int i = 0; i < CERTS; i++) { /* evicted ones too: the caller's reference keeps them */
        cr_assert_eq(serial_of(held[i]), i + 1);
        X509_free(held[i]);
    }
}

/* Clock eviction gives a certificate used since the hand last passed a
 * second chance: the one asked for again survives, an unused one goes. */
Test(certcache, recently_used_is_kept, .init = setup, .fini = teardown)
{
    crypto_cert_cache_configure(2);
    X509_free(crypto_cert_cache_get(der[0], der_len[0]));
    X509_free(crypto_cert_cache_get(der[1], der_len[1]));
    X509_free(crypto_cert_cache_get(der[0], der_len[0])); /* a hit: used again */
    X509_free(crypto_cert_cache_get(der[2], der_len[2])); /* evicts der[1], not der[0] */
    struct crypto_cert_cache_stats before = stats();
    X509_free(crypto_cert_cache_get(der[0], der_len[0]));
    cr_assert_eq(stats().hits, before.hits + 1, "the recently used certificate was evicted");
    X509_free(crypto_cert_cache_get(der[1], der_len[1]));
    cr_assert_eq(stats().misses, before.misses + 1, "the unused certificate was kept");
}

#define THREADS 8
#define ROUNDS 3000

static void *hammer(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    for (int r = 0; r < ROUNDS; r++) {
        int i = (int)(rand_r(&seed) % CERTS);
        X509 *x = crypto_cert_cache_get(der[i], der_len[i]);
        if (!x || serial_of(x) != i + 1)
            return (void *)1;
        unsigned char *back = NULL;
        int n = i2d_X509(x, &back);
        bool same = n == (int)der_len[i] && !memcmp(back, der[i], der_len[i]);
        OPENSSL_free(back);
        X509_free(x);
        if (!same)
            return (void *)1;
    }
    return NULL;
}

/* More certificates than room, so threads evict what others hold. */
Test(certcache, threads_share_it, .init = setup, .fini = teardown)
{
    crypto_cert_cache_configure(CERTS / 2);
    pthread_t t[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)(i + 1)), 0);
    for (size_t i = 0; i < THREADS; i++) {
        void *failed;
        pthread_join(t[i], &failed);
        cr_assert_null(failed, "thread %zu got a wrong certificate", i);
    }
    struct crypto_cert_cache_stats s = stats();
    cr_assert_eq(s.hits + s.misses, (unsigned long long)THREADS * ROUNDS);
    cr_assert_leq(s.entries, CERTS / 2);
    cr_assert_gt(s.hits, 0);
}

/* ---- crypto_cert_issued_by: links verified once ---- */

static X509 *cert_signed(const char *subject, const char *issuer, EVP_PKEY *key, EVP_PKEY *by)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    static long serial = 100; /* distinct: the CMS finds its signer by issuer and serial */
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)subject, -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_issuer_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)issuer, -1, -1, 0);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    cr_assert(X509_sign(x, by, EVP_sha256()) > 0);
    return x;
}

/* A remembered good link does not vouch for another certificate with the
 * same names: the memo is keyed by the DER of both. */
Test(certcache, issued_by_checks_each_link_by_its_bytes, .init = setup, .fini = teardown)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256"),
             *leaf_key = EVP_EC_gen("P-256");
    X509 *ca = cert_signed("link CA", "link CA", ca_key, ca_key);
    X509 *leaf = cert_signed("link leaf", "link CA", leaf_key, ca_key);
    X509 *forged = cert_signed("link leaf", "link CA", leaf_key, other);
    X509 *stranger = cert_signed("link leaf", "another CA", leaf_key, ca_key);
    for (int round = 0; round < 2; round++) { /* the second round from the memo */
        cr_assert(crypto_cert_issued_by(leaf, ca), "round %d", round);
        cr_assert_not(crypto_cert_issued_by(forged, ca), "a signature by another key, round %d", round);
        cr_assert_not(crypto_cert_issued_by(stranger, ca), "another issuer name, round %d", round);
        cr_assert_not(crypto_cert_issued_by(ca, leaf), "upside down, round %d", round);
    }
    X509_free(ca);
    X509_free(leaf);
    X509_free(forged);
    X509_free(stranger);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other);
    EVP_PKEY_free(leaf_key);
}

/* ---- crypto_cms_open takes the CMS's certificates from the cache ---- */

static unsigned char *signed_cms(X509 *signer, EVP_PKEY *key, X509 *extra, int flags, int *len)
{
    STACK_OF(X509) *more = sk_X509_new_null();
    if (extra)
        sk_X509_push(more, extra);
    BIO *in = BIO_new_mem_buf("{\"signed\": true}", -1);
    CMS_ContentInfo *cms = CMS_sign(signer, key, more, in, CMS_BINARY | flags);
    cr_assert_not_null(cms);
    unsigned char *der = NULL;
    *len = i2d_CMS_ContentInfo(cms, &der);
    cr_assert_gt(*len, 0);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    sk_X509_free(more);
    return der;
}

Test(certcache, cms_open_shares_cached_certificates, .init = setup, .fini = teardown)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *key = EVP_EC_gen("P-256");
    X509 *ca = cert_signed("cms CA", "cms CA", ca_key, ca_key);
    X509 *signer = cert_signed("cms signer", "cms CA", key, ca_key);
    int len;
    unsigned char *der = signed_cms(signer, key, ca, 0, &len);
    struct arena *a = arena_new();
    char why[256];
    for (int round = 0; round < 2; round++) {
        struct crypto_cert_cache_stats before = stats();
        struct crypto_signed s;
        cr_assert_eq(crypto_cms_open(der, (size_t)len, a, &s, why), 0, "%s", why);
        cr_assert_str_eq((char *)s.content, "{\"signed\": true}");
        cr_assert_str_eq(s.econtent_type, "1.2.840.113549.1.7.1");
        cr_assert_eq(sk_X509_num(s.certs), 2);
        cr_assert_eq(X509_cmp(s.signer, signer), 0);
        const unsigned char *p = der; /* the certificates in the order OpenSSL's own parse gives */
        CMS_ContentInfo *plain = d2i_CMS_ContentInfo(NULL, &p, len);
        STACK_OF(X509) *theirs = CMS_get1_certs(plain);
        for (int i = 0; i < 2; i++)
            cr_assert_eq(X509_cmp(sk_X509_value(s.certs, i), sk_X509_value(theirs, i)), 0,
                         "certificate %d", i);
        sk_X509_pop_free(theirs, X509_free);
        CMS_ContentInfo_free(plain);
        struct crypto_cert_cache_stats after = stats();
        cr_assert_eq(after.hits + after.misses - before.hits - before.misses, 2,
                     "both certificates through the cache, round %d", round);
        if (round == 1) {
            cr_assert_eq(after.hits - before.hits, 2, "parsed again");
            unsigned char *sd = NULL;
            int n = i2d_X509(signer, &sd);
            X509 *cached = crypto_cert_cache_get(sd, (size_t)n);
            cr_assert_eq(s.signer, cached, "the signer is the cached certificate");
            X509_free(cached);
            OPENSSL_free(sd);
        }
        arena_reset(a);
    }
    /* a changed content byte: the signature is still checked */
    unsigned char *at = memmem(der, (size_t)len, "true", 4);
    cr_assert_not_null(at);
    memcpy(at, "fals", 4);
    struct crypto_signed s;
    cr_assert_eq(crypto_cms_open(der, (size_t)len, a, &s, why), -1);
    cr_assert(!strncmp(why, "signature does not verify", 25), "%s", why);
    OPENSSL_free(der);
    /* without certificates (the slow path): refused as before */
    der = signed_cms(signer, key, NULL, CMS_NOCERTS, &len);
    cr_assert_eq(crypto_cms_open(der, (size_t)len, a, &s, why), -1);
    cr_assert_str_eq(why, "signature does not verify (signer certificate not found)");
    /* data after it */
    unsigned char *longer = OPENSSL_malloc((size_t)len + 1);
    memcpy(longer, der, (size_t)len);
    longer[len] = 0;
    cr_assert_eq(crypto_cms_open(longer, (size_t)len + 1, a, &s, why), -1);
    cr_assert_str_eq(why, "is not a DER CMS structure (data follows it)");
    OPENSSL_free(longer);
    OPENSSL_free(der);
    arena_free(a);
    X509_free(ca);
    X509_free(signer);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
}
