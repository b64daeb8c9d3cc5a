#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "common/encoding.h"
#include "crypto/crypto.h"

int crypto_content_info(const char *oid, const void *data, size_t len, struct arena *a,
                        unsigned char **der, size_t *der_len)
{
    /* ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT OCTET STRING } */
    ASN1_OBJECT *type = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *octets = ASN1_OCTET_STRING_new();
    int rc = -1;
    if (type && octets && ASN1_OCTET_STRING_set(octets, data, (int)len) == 1) {
        int oid_len = i2d_ASN1_OBJECT(type, NULL), oct_len = i2d_ASN1_OCTET_STRING(octets, NULL);
        int explicit_len = ASN1_object_size(1, oct_len, 0);
        int seq_len = ASN1_object_size(1, oid_len + explicit_len, V_ASN1_SEQUENCE);
        unsigned char *buf = arena_alloc(a, (size_t)seq_len), *p = buf;
        ASN1_put_object(&p, 1, oid_len + explicit_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
        i2d_ASN1_OBJECT(type, &p);
        ASN1_put_object(&p, 1, oct_len, 0, V_ASN1_CONTEXT_SPECIFIC);
        i2d_ASN1_OCTET_STRING(octets, &p);
        *der = buf;
        *der_len = (size_t)(p - buf);
        rc = 0;
    }
    ASN1_OBJECT_free(type);
    ASN1_OCTET_STRING_free(octets);
    return rc;
}

int crypto_certs_only(STACK_OF(X509) *certs, struct arena *a, unsigned char **der, size_t *der_len)
{
    /* no signer, no key, no content (RFC 5652 §5.2: eContent absent): a
     * certificates-only SignedData */
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, certs, NULL, CMS_BINARY | CMS_PARTIAL | CMS_DETACHED);
    unsigned char *buf = NULL;
    int n = cms ? i2d_CMS_ContentInfo(cms, &buf) : -1;
    CMS_ContentInfo_free(cms);
    if (n <= 0)
        return -1;
    *der = arena_memdup(a, buf, (size_t)n);
    *der_len = (size_t)n;
    OPENSSL_free(buf);
    return 0;
}

void crypto_password_digest(const unsigned char *salt, size_t salt_len, const char *password,
                            unsigned char out[32])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned int n;
    EVP_DigestInit_ex(m, EVP_sha256(), NULL);
    EVP_DigestUpdate(m, salt, salt_len);
    EVP_DigestUpdate(m, password, strlen(password));
    EVP_DigestFinal_ex(m, out, &n);
    EVP_MD_CTX_free(m);
}

bool crypto_password_matches(const char *salt_hex, const char *hash_hex, const char *password)
{
    unsigned char salt[64] = {0}, stored[32] = {0}, md[32];
    int sn = salt_hex ? (int)hex_decode_to(salt_hex, salt, sizeof(salt)) : -1;
    bool shaped = sn > 0 && hash_hex && hex_decode_to(hash_hex, stored, sizeof(stored)) == 32;
    /* the digest is computed either way, so that an unknown device takes as long */
    crypto_password_digest(salt, sn > 0 ? (size_t)sn : 16, password, md);
    return CRYPTO_memcmp(md, stored, 32) == 0 && shaped;
}
