#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

#define WHY 256

struct anchor {
    char *name;
    enum crypto_serial_source serial_from;
    STACK_OF(X509) *certs;
};

struct crypto_anchors {
    X509_STORE *store;
    struct anchor *list;
    size_t count;
};

int crypto_anchors_new(const struct crypto_anchor_spec *specs, size_t count,
                       struct crypto_anchors **out, struct masad_error *err)
{
    struct crypto_anchors *a = calloc(1, sizeof(*a));
    a->store = X509_STORE_new();
    /* an IDevID issuing CA may be configured without its root */
    X509_STORE_set_flags(a->store, X509_V_FLAG_PARTIAL_CHAIN);
    X509_STORE_set_purpose(a->store, X509_PURPOSE_ANY);
    a->list = calloc(count ? count : 1, sizeof(*a->list));
    for (size_t i = 0; i < count; i++) {
        STACK_OF(X509) *certs = crypto_read_pem_certs(specs[i].certificate, err);
        if (!certs) {
            crypto_anchors_free(a);
            return -1;
        }
        for (int j = 0; j < sk_X509_num(certs); j++)
            X509_STORE_add_cert(a->store, sk_X509_value(certs, j));
        a->list[i] = (struct anchor){strdup(specs[i].name), specs[i].serial_from, certs};
        a->count++;
    }
    *out = a;
    return 0;
}

void crypto_anchors_free(struct crypto_anchors *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->count; i++) {
        free(a->list[i].name);
        sk_X509_pop_free(a->list[i].certs, X509_free);
    }
    free(a->list);
    X509_STORE_free(a->store);
    free(a);
}

size_t crypto_anchors_count(const struct crypto_anchors *a) { return a ? a->count : 0; }

static const struct anchor *anchor_of(const struct crypto_anchors *a, X509 *top)
{
    for (size_t i = 0; i < a->count; i++)
        for (int j = 0; j < sk_X509_num(a->list[i].certs); j++)
            if (X509_cmp(sk_X509_value(a->list[i].certs, j), top) == 0)
                return &a->list[i];
    return NULL;
}

static const char *subject_entry(X509 *x, int nid, struct arena *ar)
{
    X509_NAME *name = X509_get_subject_name(x);
    int at = X509_NAME_get_index_by_NID(name, nid, -1);
    if (at < 0 || X509_NAME_get_index_by_NID(name, nid, at) >= 0)
        return NULL; /* absent, or ambiguous */
    ASN1_STRING *value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, value);
    const char *s = n > 0 && !memchr(utf8, 0, (size_t)n) ? arena_strndup(ar, (char *)utf8, (size_t)n) : NULL;
    OPENSSL_free(utf8);
    return s;
}

int crypto_idevid_identify(const struct crypto_anchors *anchors, X509 *leaf,
                           STACK_OF(X509) *untrusted, struct arena *a, const char **serial,
                           const char **anchor_name, char *why)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = -1;
    if (!anchors || !anchors->count) {
        snprintf(why, WHY, "no IDevID trust anchor is configured");
    } else if (X509_STORE_CTX_init(ctx, anchors->store, leaf, untrusted) != 1 ||
               X509_verify_cert(ctx) != 1) {
        snprintf(why, WHY, "the IDevID certificate does not chain to a manufacturer trust anchor (%s)",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    } else {
        STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
        const struct anchor *anchor = anchor_of(anchors, sk_X509_value(chain, sk_X509_num(chain) - 1));
        /* RFC 8995 §2.3.1: the serial is the subject's serialNumber, unless
         * this manufacturer's older IDevIDs put it elsewhere (configured) */
        int nid = anchor && anchor->serial_from == SERIAL_FROM_COMMON_NAME ? NID_commonName
                                                                           : NID_serialNumber;
        *serial = subject_entry(leaf, nid, a);
        *anchor_name = anchor ? anchor->name : "";
        if (!*serial)
            snprintf(why, WHY, "the IDevID subject has no single %s attribute",
                     nid == NID_commonName ? "commonName" : "serialNumber");
        else
            rc = 0;
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}
