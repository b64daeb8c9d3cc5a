#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"

#define WHY 256

static void free_x509(void *x) { X509_free(x); }
static void free_stack(void *s) { sk_X509_pop_free(s, X509_free); }
static void free_cms(void *c) { CMS_ContentInfo_free(c); }

int crypto_cms_open(const unsigned char *der, size_t len, struct arena *a,
                    struct crypto_signed *out, char *why)
{
    memset(out, 0, sizeof(*out));
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (!cms || p != der + len) {
        CMS_ContentInfo_free(cms);
        ERR_clear_error();
        snprintf(why, WHY, "is not a DER CMS structure%s", cms ? " (data follows it)" : "");
        return -1;
    }
    arena_defer(a, free_cms, cms);
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        snprintf(why, WHY, "is not CMS SignedData");
        return -1;
    }
    if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1) {
        snprintf(why, WHY, "must have exactly one signer");
        return -1;
    }
    BIO *content = BIO_new(BIO_s_mem());
    /* the signature only: whose key it is, is for the caller to judge */
    int ok = CMS_verify(cms, NULL, NULL, NULL, content, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY);
    if (ok == 1) {
        STACK_OF(X509) *signers = CMS_get0_signers(cms);
        out->signer = sk_X509_value(signers, 0);
        X509_up_ref(out->signer);
        arena_defer(a, free_x509, out->signer);
        sk_X509_free(signers);
        out->certs = CMS_get1_certs(cms);
        if (!out->certs)
            out->certs = sk_X509_new_null();
        arena_defer(a, free_stack, out->certs);
        char *data;
        long n = BIO_get_mem_data(content, &data);
        out->content = arena_memdup(a, data, n > 0 ? (size_t)n : 0);
        out->content_len = n > 0 ? (size_t)n : 0;
        OBJ_obj2txt(out->econtent_type, sizeof(out->econtent_type), CMS_get0_eContentType(cms), 1);
    } else {
        unsigned long e = ERR_peek_last_error();
        snprintf(why, WHY, "signature does not verify (%s)",
                 e ? ERR_reason_error_string(e) : "no signer certificate");
    }
    BIO_free(content);
    ERR_clear_error();
    return ok == 1 ? 0 : -1;
}

STACK_OF(X509) *crypto_path_up(X509 *leaf, STACK_OF(X509) *pool, struct arena *a)
{
    STACK_OF(X509) *path = sk_X509_new_null();
    arena_defer(a, free_stack, path);
    X509_up_ref(leaf);
    sk_X509_push(path, leaf);
    X509 *current = leaf;
    for (int depth = 0; depth < 8; depth++) {
        if (X509_check_issued(current, current) == X509_V_OK)
            break; /* self-issued: the top */
        X509 *issuer = NULL;
        for (int i = 0; i < sk_X509_num(pool) && !issuer; i++) {
            X509 *c = sk_X509_value(pool, i);
            if (c != current && X509_cmp(c, current) != 0 && crypto_cert_issued_by(current, c))
                issuer = c;
        }
        ERR_clear_error();
        if (!issuer)
            break;
        X509_up_ref(issuer);
        sk_X509_push(path, issuer);
        current = issuer;
    }
    return path;
}

bool crypto_has_eku(X509 *x, int nid)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    bool found = false;
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku) && !found; i++)
        found = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) == nid;
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

const ASN1_OCTET_STRING *crypto_authority_key_id(X509 *x)
{
    return X509_get0_authority_key_id(x);
}

unsigned char *crypto_cert_der(X509 *x, struct arena *a, size_t *len)
{
    unsigned char *buf = NULL;
    int n = i2d_X509(x, &buf);
    unsigned char *out = n > 0 ? arena_memdup(a, buf, (size_t)n) : NULL;
    *len = n > 0 ? (size_t)n : 0;
    OPENSSL_free(buf);
    return out;
}
