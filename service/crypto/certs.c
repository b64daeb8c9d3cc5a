#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"

#define WHY 256

static void why_openssl(char *why, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char reason[160] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    snprintf(why, WHY, "%s%s%s", what, e ? ": " : "", reason);
    ERR_clear_error();
}

X509 *crypto_cert_from_pem(const char *pem, size_t len, char *why)
{
    BIO *in = BIO_new_mem_buf(pem, (int)len);
    X509 *x = PEM_read_bio_X509(in, NULL, NULL, NULL);
    if (!x) {
        why_openssl(why, "is not a PEM certificate");
        BIO_free(in);
        return NULL;
    }
    /* nothing but whitespace may follow the certificate */
    char rest[64];
    int n;
    bool trailing = false;
    while (!trailing && (n = BIO_read(in, rest, sizeof(rest))) > 0)
        for (int i = 0; i < n; i++)
            if (rest[i] != '\n' && rest[i] != '\r' && rest[i] != ' ' && rest[i] != '\t')
                trailing = true;
    BIO_free(in);
    ERR_clear_error();
    if (trailing) {
        snprintf(why, WHY, "holds more than one certificate");
        X509_free(x);
        return NULL;
    }
    return x;
}

void crypto_cert_digests(X509 *x, unsigned char cert_sha256[32], unsigned char spki_sha256[32])
{
    unsigned int n;
    X509_digest(x, EVP_sha256(), cert_sha256, &n);
    X509_pubkey_digest(x, EVP_sha256(), spki_sha256, &n);
}

void crypto_time_rfc3339(const ASN1_TIME *t, char *out)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
        strcpy(out, "(unreadable)");
        return;
    }
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *crypto_cert_subject(X509 *x, struct arena *a)
{
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    const char *s = arena_strndup(a, data, n > 0 ? (size_t)n : 0);
    BIO_free(b);
    return s;
}

int crypto_cert_current(X509 *x, char *why)
{
    char when[32];
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        crypto_time_rfc3339(X509_get0_notAfter(x), when);
        snprintf(why, WHY, "expired on %s", when);
        return -1;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        crypto_time_rfc3339(X509_get0_notBefore(x), when);
        snprintf(why, WHY, "is not valid before %s", when);
        return -1;
    }
    return 0;
}

int crypto_chain_linked(STACK_OF(X509) *chain, char *why)
{
    for (int i = 0; i + 1 < sk_X509_num(chain); i++) {
        if (!crypto_cert_issued_by(sk_X509_value(chain, i), sk_X509_value(chain, i + 1))) {
            snprintf(why, WHY, "certificate %d is not issued by certificate %d", i, i + 1);
            return -1;
        }
    }
    return 0;
}

static X509_STORE *anchor_store(X509 *anchor)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, anchor);
    /* the signer may be any end entity: the chain is what is checked */
    X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
    return store;
}

int crypto_cms_verify_by_chain(const unsigned char *der, size_t len, STACK_OF(X509) *chain,
                               struct arena *a, char *oid, size_t oid_len,
                               unsigned char **content, size_t *content_len, char *why)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (!cms || p != der + len) {
        CMS_ContentInfo_free(cms);
        why_openssl(why, "is not a DER CMS structure");
        return -1;
    }
    int rc = -1;
    X509_STORE *store = anchor_store(sk_X509_value(chain, sk_X509_num(chain) - 1));
    BIO *out = BIO_new(BIO_s_mem());
    STACK_OF(X509) *signers = NULL;
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
        snprintf(why, WHY, "is not CMS SignedData");
    else if (CMS_verify(cms, chain, store, NULL, out, CMS_BINARY) != 1)
        why_openssl(why, "signature does not verify with the owner certificate chain");
    else if (!(signers = CMS_get0_signers(cms)) || sk_X509_num(signers) != 1 ||
             X509_cmp(sk_X509_value(signers, 0), sk_X509_value(chain, 0)) != 0)
        snprintf(why, WHY, "is not signed by the first owner certificate");
    else {
        OBJ_obj2txt(oid, (int)oid_len, CMS_get0_eContentType(cms), 1);
        char *data;
        long n = BIO_get_mem_data(out, &data);
        *content = arena_memdup(a, data, n > 0 ? (size_t)n : 0);
        *content_len = n > 0 ? (size_t)n : 0;
        rc = 0;
    }
    sk_X509_free(signers);
    BIO_free(out);
    X509_STORE_free(store);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return rc;
}

int crypto_cert_client_identity(X509 *x, char *why)
{
    uint32_t flags = X509_get_extension_flags(x);
    const char *fault = NULL;
    if (flags & EXFLAG_INVALID)
        fault = "has malformed extensions";
    else if (flags & EXFLAG_CA)
        fault = "is a CA certificate (basicConstraints CA:TRUE)";
    else if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE))
        fault = "has a keyUsage without digitalSignature";
    else if ((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT))
        fault = "has an extendedKeyUsage without clientAuth";
    ERR_clear_error();
    if (!fault)
        return 0;
    snprintf(why, WHY, "the client certificate %s: it is not a device identity", fault);
    return -1;
}

int crypto_certs_only_check(const unsigned char *der, size_t len, int max_certs, char *why)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = len <= LONG_MAX ? d2i_CMS_ContentInfo(NULL, &p, (long)len) : NULL;
    STACK_OF(X509) *certs = NULL;
    int n = -1;
    if (!cms || p != der + len)
        snprintf(why, WHY, "is not a DER CMS structure");
    else if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
        snprintf(why, WHY, "is not a CMS SignedData");
    else if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 0)
        snprintf(why, WHY, "is signed: a certs-only structure has no signers");
    else if ((n = sk_X509_num(certs = CMS_get1_certs(cms))) < 1 || n > max_certs) {
        snprintf(why, WHY, "holds %d certificates: 1 to %d are allowed", n < 0 ? 0 : n, max_certs);
        n = -1;
    }
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return n < 0 ? -1 : 0;
}
