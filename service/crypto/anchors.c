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

/* RFC 4108 §5: otherName id-on-hardwareModuleName ::= SEQUENCE { hwType
 * OBJECT IDENTIFIER, hwSerialNum OCTET STRING }; the serial when the
 * subjectAltName has exactly one. */
static const char *hardware_module_serial(X509 *x, struct arena *ar)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    ASN1_OBJECT *hmn = OBJ_txt2obj("1.3.6.1.5.5.7.8.4", 1);
    const char *serial = NULL;
    int found = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_OTHERNAME || OBJ_cmp(g->d.otherName->type_id, hmn) != 0)
            continue;
        found++;
        ASN1_TYPE *v = g->d.otherName->value;
        if (v->type != V_ASN1_SEQUENCE)
            continue;
        const unsigned char *p = v->value.sequence->data;
        ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, v->value.sequence->length);
        ASN1_TYPE *type = sk_ASN1_TYPE_value(seq, 0), *num = sk_ASN1_TYPE_value(seq, 1);
        if (sk_ASN1_TYPE_num(seq) == 2 && type->type == V_ASN1_OBJECT &&
            num->type == V_ASN1_OCTET_STRING)
            serial = arena_strndup(ar, (const char *)ASN1_STRING_get0_data(num->value.octet_string),
                                   (size_t)ASN1_STRING_length(num->value.octet_string));
        sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    }
    ASN1_OBJECT_free(hmn);
    GENERAL_NAMES_free(names);
    return found == 1 ? serial : NULL;
}

bool crypto_serial_acceptable(const char *s)
{
    size_t chars = 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 &&
                                             p[i + 1] <= 0x9f))
            return false;
        chars += (p[i] & 0xc0) != 0x80;
    }
    /* an OCTET STRING may hold anything: only valid UTF-8 goes on */
    ASN1_UTF8STRING *u = ASN1_UTF8STRING_new();
    unsigned char *copy = NULL;
    bool utf8 = u && ASN1_STRING_set(u, s, (int)n) == 1 && ASN1_STRING_to_UTF8(&copy, u) >= 0;
    OPENSSL_free(copy);
    ASN1_UTF8STRING_free(u);
    return utf8 && chars >= 1 && chars <= 64;
}

static const char *serial_by_rule(X509 *leaf, enum crypto_serial_source from, struct arena *a,
                                  char *why)
{
    const char *serial =
        from == SERIAL_FROM_HARDWARE_MODULE_NAME ? hardware_module_serial(leaf, a)
        : subject_entry(leaf, from == SERIAL_FROM_COMMON_NAME ? NID_commonName : NID_serialNumber, a);
    const char *where = from == SERIAL_FROM_HARDWARE_MODULE_NAME ? "subjectAltName has no single "
                                                                   "hardwareModuleName (RFC 4108 §5)"
                        : from == SERIAL_FROM_COMMON_NAME ? "subject has no single commonName attribute"
                                                          : "subject has no single serialNumber attribute";
    if (!serial)
        snprintf(why, WHY, "the IDevID %s", where);
    else if (!crypto_serial_acceptable(serial))
        snprintf(why, WHY, "the IDevID's serial number is not 1 to 64 characters of text without "
                           "control characters");
    else
        return serial;
    return NULL;
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
         * this manufacturer's IDevIDs put it elsewhere (configured) */
        *serial = serial_by_rule(leaf, anchor ? anchor->serial_from : SERIAL_FROM_SERIAL_NUMBER, a, why);
        *anchor_name = anchor ? anchor->name : "";
        rc = *serial ? 0 : -1;
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}
