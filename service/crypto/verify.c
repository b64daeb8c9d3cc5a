#include <limits.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"

#define WHY 256

static void free_x509(void *x) { X509_free(x); }
static void free_stack(void *s) { sk_X509_pop_free(s, X509_free); }
static void free_cms(void *c) { CMS_ContentInfo_free(c); }

/* One DER TLV at *p (definite length, within end): its tag and class, the
 * content's start and length; *p moves past it. */
static bool tlv(const unsigned char **p, const unsigned char *end, int tag, int cls,
                const unsigned char **content, long *clen)
{
    const unsigned char *q = *p;
    int t, c;
    long n;
    int r = ASN1_get_object(&q, &n, &t, &c, end - *p);
    if ((r & 0x80) || r == 0x21 || t != tag || c != cls || n > end - q)
        return false; /* an error, or an indefinite length (BER): not this fast path */
    *content = q;
    *clen = n;
    *p = q + n;
    return true;
}

static size_t put_header(unsigned char *out, int constructed, long len, int tag, int cls)
{
    unsigned char *q = out;
    ASN1_put_object(&q, constructed, (int)len, tag, cls);
    return (size_t)(q - out);
}

/* RFC 5652 §5.1: the certificates of a DER SignedData repeat across
 * requests (a registrar's chain on every voucher-request), and OpenSSL 3.0
 * spends most of a CMS parse decoding their public keys. So the CMS is
 * parsed without its certificates field (no signature covers it), and the
 * certificates are added from the cache of parsed certificates, in their
 * order. NULL when the DER is not of the plain shape this handles (BER,
 * other certificate choices, a certificate twice): the caller parses it
 * as a whole. */
static CMS_ContentInfo *parse_with_cached_certs(const unsigned char *der, size_t len)
{
    const unsigned char *end = der + len, *p = der, *ci, *oid, *explicit, *sd, *field;
    long ci_len, oid_len, explicit_len, sd_len, field_len;
    if (len > INT_MAX / 2 || !tlv(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &ci, &ci_len) ||
        p != end)
        return NULL;
    p = ci;
    if (!tlv(&p, ci + ci_len, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, &oid, &oid_len) ||
        !tlv(&p, ci + ci_len, 0, V_ASN1_CONTEXT_SPECIFIC, &explicit, &explicit_len) ||
        p != ci + ci_len)
        return NULL;
    p = explicit;
    if (!tlv(&p, explicit + explicit_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &sd, &sd_len) ||
        p != explicit + explicit_len)
        return NULL;
    /* version, digestAlgorithms, encapContentInfo, then certificates [0] */
    const unsigned char *before = sd, *certs_at;
    p = sd;
    if (!tlv(&p, sd + sd_len, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, &field, &field_len) ||
        !tlv(&p, sd + sd_len, V_ASN1_SET, V_ASN1_UNIVERSAL, &field, &field_len) ||
        !tlv(&p, sd + sd_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &field, &field_len))
        return NULL;
    certs_at = p;
    const unsigned char *certs, *after;
    long certs_len;
    if (!tlv(&p, sd + sd_len, 0, V_ASN1_CONTEXT_SPECIFIC, &certs, &certs_len))
        return NULL;
    after = p;

    /* each certificate from the cache: an X509 is a SEQUENCE */
    STACK_OF(X509) *xs = sk_X509_new_null();
    const unsigned char *c = certs, *body;
    long body_len;
    while (xs && c < certs + certs_len) {
        const unsigned char *start = c;
        X509 *x = tlv(&c, certs + certs_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &body, &body_len)
                      ? crypto_cert_cache_get(start, (size_t)(c - start))
                      : NULL;
        if (!x || !sk_X509_push(xs, x)) {
            X509_free(x);
            sk_X509_pop_free(xs, X509_free);
            return NULL;
        }
    }
    if (!xs)
        return NULL;

    /* the same DER without the certificates field, every length above it shortened */
    long cut = (long)(after - certs_at);
    long new_sd = sd_len - cut;
    unsigned char sd_hdr[8], ex_hdr[8], ci_hdr[8];
    size_t sd_h = put_header(sd_hdr, 1, new_sd, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    long new_ex = (long)sd_h + new_sd;
    size_t ex_h = put_header(ex_hdr, 1, new_ex, 0, V_ASN1_CONTEXT_SPECIFIC);
    long oid_tlv = (long)(oid + oid_len - ci);
    long new_ci = oid_tlv + (long)ex_h + new_ex;
    size_t ci_h = put_header(ci_hdr, 1, new_ci, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    size_t total = ci_h + (size_t)new_ci;
    unsigned char *buf = OPENSSL_malloc(total), *w = buf;
    CMS_ContentInfo *cms = NULL;
    if (buf) {
        memcpy(w, ci_hdr, ci_h), w += ci_h;
        memcpy(w, ci, (size_t)oid_tlv), w += oid_tlv;
        memcpy(w, ex_hdr, ex_h), w += ex_h;
        memcpy(w, sd_hdr, sd_h), w += sd_h;
        memcpy(w, before, (size_t)(certs_at - before)), w += certs_at - before;
        memcpy(w, after, (size_t)(sd + sd_len - after)), w += sd + sd_len - after;
        const unsigned char *r = buf;
        cms = (size_t)(w - buf) == total ? d2i_CMS_ContentInfo(NULL, &r, (long)total) : NULL;
        if (cms && r != buf + total) {
            CMS_ContentInfo_free(cms);
            cms = NULL;
        }
    }
    OPENSSL_free(buf);
    /* CMS_add0_cert refuses a certificate twice: that CMS takes the slow path */
    for (int i = 0; cms && i < sk_X509_num(xs); i++) {
        X509 *x = sk_X509_value(xs, i);
        if (CMS_add0_cert(cms, x) != 1) {
            CMS_ContentInfo_free(cms);
            cms = NULL;
        } else
            sk_X509_set(xs, i, NULL); /* the CMS holds that reference now */
    }
    sk_X509_pop_free(xs, X509_free);
    ERR_clear_error();
    return cms;
}

int crypto_cms_open(const unsigned char *der, size_t len, struct arena *a,
                    struct crypto_signed *out, char *why)
{
    memset(out, 0, sizeof(*out));
    const unsigned char *p = der + len;
    CMS_ContentInfo *cms = parse_with_cached_certs(der, len);
    if (!cms) {
        p = der;
        cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    }
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
