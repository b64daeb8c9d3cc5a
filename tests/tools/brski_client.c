#include "brski_client.h"

#include <stdarg.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#define PVR_NONCE_LEN 16            /* RFC 8995 §3.3: nonce is binary, length 8..32 */
#define SERIAL_MAX 256
#define ANSWER_MAX (64u << 20)
#define POST_TIMEOUT_S 60L

static _Thread_local unsigned char last_nonce[BRSKI_NONCE_MAX];
static _Thread_local size_t last_nonce_len;
static _Thread_local bool last_has_nonce;
static _Thread_local char last_serial[SERIAL_MAX];
static _Thread_local char last_nonce_text[2 * BRSKI_NONCE_MAX];
static _Thread_local char last_post_error[CURL_ERROR_SIZE];

/* ------------------------------------------------------------------ errors */

static void openssl_reason(char *buf, size_t n)
{
    const char *data = NULL;
    int flags = 0;
    unsigned long e = ERR_peek_last_error_data(&data, &flags);

    buf[0] = '\0';
    if (e == 0)
        return;
    const char *reason = ERR_reason_error_string(e);
    bool text = data && *data && (flags & ERR_TXT_STRING);
    snprintf(buf, n, " (%s%s%s)", reason ? reason : "openssl error", text ? ": " : "",
             text ? data : "");
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    char what[512], why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    openssl_reason(why, sizeof why);
    ERR_clear_error();
    if (err && errlen)
        snprintf(err, errlen, "%s%s", what, why);
    return -1;
}

/* ------------------------------------------------------------------ encodings */

static char *base64_encode(const unsigned char *in, size_t len, bool url)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);

    if (!out)
        return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    out[n] = '\0';
    if (!url)
        return out;
    /* RFC 4648 §5, without padding */
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    char *pad = strchr(out, '=');
    if (pad)
        *pad = '\0';
    return out;
}

char *brski_base64(const unsigned char *in, size_t len)
{
    return base64_encode(in, len, false);
}

char *brski_base64_lines(const unsigned char *in, size_t len)
{
    char *flat = base64_encode(in, len, false);
    size_t n = flat ? strlen(flat) : 0;
    char *out = flat ? malloc(n + 2 * (n / 64 + 1) + 1) : NULL;
    size_t k = 0;

    for (size_t i = 0; out && i < n; i += 64) {
        size_t line = n - i < 64 ? n - i : 64;
        memcpy(out + k, flat + i, line);
        k += line;
        out[k++] = '\r';
        out[k++] = '\n';
    }
    if (out)
        out[k] = '\0';
    free(flat);
    return out;
}

unsigned char *brski_unbase64(const unsigned char *text, size_t len, size_t *out_len)
{
    char *flat = malloc(len + 1);
    unsigned char *out = flat ? malloc(len / 4 * 3 + 3) : NULL;
    size_t n = 0;

    for (size_t i = 0; out && i < len; i++)
        if (!strchr(" \t\r\n", text[i]) || !text[i])
            flat[n++] = (char)text[i];
    int got = out && n % 4 == 0 ? EVP_DecodeBlock(out, (unsigned char *)flat, (int)n) : -1;
    if (got >= 0) {
        got -= n >= 1 && flat[n - 1] == '=';
        got -= n >= 2 && flat[n - 2] == '=';
        *out_len = (size_t)got;
    }
    free(flat);
    if (got < 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* RFC 6991 date-and-time in UTC, or a bare date for the created_on_date_only quirk. */
static void created_on(char *buf, size_t n, bool date_only)
{
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    if (date_only)
        strftime(buf, n, "%Y-%m-%d", &tm);
    else
        strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ------------------------------------------------------------------ PEM files */

struct signer {
    STACK_OF(X509) *certs;   /* every certificate of the file, leaf first (owned) */
    STACK_OF(X509) *chain;   /* the others, without duplicates (a view) */
    X509 *cert;              /* the leaf (a view) */
    EVP_PKEY *key;
};

static void signer_free(struct signer *s)
{
    sk_X509_free(s->chain);
    sk_X509_pop_free(s->certs, X509_free);
    EVP_PKEY_free(s->key);
    memset(s, 0, sizeof *s);
}

static bool in_stack(STACK_OF(X509) *sk, X509 *x)
{
    for (int i = 0; i < sk_X509_num(sk); i++)
        if (X509_cmp(sk_X509_value(sk, i), x) == 0)
            return true;
    return false;
}

static int read_certs(BIO *in, STACK_OF(X509) *certs)
{
    X509 *x;

    while ((x = PEM_read_bio_X509(in, NULL, NULL, NULL)))
        if (!sk_X509_push(certs, x)) {
            X509_free(x);
            return -1;
        }
    unsigned long e = ERR_peek_last_error();
    if (sk_X509_num(certs) == 0 || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        return -1;
    ERR_clear_error();
    return 0;
}

static int load_certs(struct signer *s, const char *path, char *err, size_t errlen)
{
    BIO *in = BIO_new_file(path, "r");

    s->certs = sk_X509_new_null();
    s->chain = sk_X509_new_null();
    int rc = in && s->certs && s->chain ? read_certs(in, s->certs) : -1;
    BIO_free(in);
    if (rc < 0)
        return fail(err, errlen, "cannot read PEM certificates from %s", path);
    s->cert = sk_X509_value(s->certs, 0);
    for (int i = 1; i < sk_X509_num(s->certs); i++) {
        X509 *x = sk_X509_value(s->certs, i);
        if (X509_cmp(x, s->cert) != 0 && !in_stack(s->chain, x) && !sk_X509_push(s->chain, x))
            return fail(err, errlen, "out of memory");
    }
    return 0;
}

static int load_key(struct signer *s, const char *path, char *err, size_t errlen)
{
    BIO *in = BIO_new_file(path, "r");

    s->key = in ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    if (!s->key)
        return fail(err, errlen, "cannot read a PEM private key from %s", path);
    if (s->cert && X509_check_private_key(s->cert, s->key) != 1)
        return fail(err, errlen, "the key in %s does not belong to the certificate", path);
    return 0;
}

static int signer_load(struct signer *s, const char *cert, const char *key, char *err, size_t errlen)
{
    if (load_certs(s, cert, err, errlen) < 0)
        return -1;
    return key ? load_key(s, key, err, errlen) : 0;
}

static int proximity_base64(const char *path, X509 *fallback, char **out, char *err, size_t errlen)
{
    struct signer file = {0};
    X509 *x = fallback;

    if (path) {
        if (load_certs(&file, path, err, errlen) < 0) {
            signer_free(&file);
            return -1;
        }
        x = file.cert;
    }
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    *out = n > 0 ? base64_encode(der, (size_t)n, false) : NULL;
    OPENSSL_free(der);
    signer_free(&file);
    return *out ? 0 : fail(err, errlen, "cannot encode the proximity-registrar-cert");
}

/* ------------------------------------------------------------------ JSON */

struct vr_leaves {             /* NULL: leaf left out; binary leaves already encoded */
    const char *created_on;
    const char *assertion;
    const char *serial;
    const char *idevid_issuer;
    const char *nonce;
    const char *prior_pvr;
    const char *proximity;
    bool voucher_root;         /* the quirk: root ietf-voucher:voucher */
};

static bool gen_text(yajl_gen g, const char *s)
{
    return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok;
}

static bool gen_leaf(yajl_gen g, const char *name, const char *value)
{
    return !value || (gen_text(g, name) && gen_text(g, value));
}

static bool gen_voucher_request(yajl_gen g, const struct vr_leaves *l)
{
    /* RFC 8995 §3.3: leaves in the order of the module */
    return yajl_gen_map_open(g) == yajl_gen_status_ok &&
           gen_text(g, l->voucher_root ? "ietf-voucher:voucher" : "ietf-voucher-request:voucher") &&
           yajl_gen_map_open(g) == yajl_gen_status_ok &&
           gen_leaf(g, "created-on", l->created_on) &&
           gen_leaf(g, "assertion", l->assertion) &&
           gen_leaf(g, "serial-number", l->serial) &&
           gen_leaf(g, "idevid-issuer", l->idevid_issuer) &&
           gen_leaf(g, "nonce", l->nonce) &&
           gen_leaf(g, "prior-signed-voucher-request", l->prior_pvr) &&
           gen_leaf(g, "proximity-registrar-cert", l->proximity) &&
           yajl_gen_map_close(g) == yajl_gen_status_ok &&
           yajl_gen_map_close(g) == yajl_gen_status_ok;
}

static char *vr_json(const struct vr_leaves *l, size_t *len)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *buf;
    char *out = NULL;

    if (!g)
        return NULL;
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    if (gen_voucher_request(g, l) && yajl_gen_get_buf(g, &buf, len) == yajl_gen_status_ok &&
        (out = malloc(*len + 1))) {
        memcpy(out, buf, *len);
        out[*len] = '\0';
    }
    yajl_gen_free(g);
    return out;
}

/* ------------------------------------------------------------------ CMS */

static int flip_signature(CMS_ContentInfo *cms)
{
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    ASN1_OCTET_STRING *sig = si ? CMS_SignerInfo_get0_signature(si) : NULL;
    int n = sig ? ASN1_STRING_length(sig) : 0;

    if (n <= 0)
        return -1;
    unsigned char *copy = OPENSSL_memdup(ASN1_STRING_get0_data(sig), (size_t)n);
    if (!copy)
        return -1;
    copy[n - 1] ^= 0x01;        /* the last byte: an ECDSA signature stays well-formed DER */
    int ok = ASN1_OCTET_STRING_set(sig, copy, n);
    OPENSSL_free(copy);
    return ok == 1 ? 0 : -1;
}

static int set_voucher_type(CMS_ContentInfo *cms)
{
    ASN1_OBJECT *oid = OBJ_txt2obj(BRSKI_ID_CT_VOUCHER, 1);
    int ok = oid && CMS_set1_eContentType(cms, oid) == 1;

    ASN1_OBJECT_free(oid);
    return ok ? 0 : -1;
}

static int cms_to_der(CMS_ContentInfo *cms, unsigned char **der, size_t *len)
{
    int n = i2d_CMS_ContentInfo(cms, NULL);

    if (n <= 0 || !(*der = malloc((size_t)n)))
        return -1;
    unsigned char *p = *der;
    if (i2d_CMS_ContentInfo(cms, &p) != n) {
        free(*der);
        *der = NULL;
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

struct sign_opts {
    bool id_data;
    bool corrupt;
};

/* RFC 8995 §3.2/§5.2: SignedData, encapsulated content id-ct-animaJSONVoucher */
static int cms_sign_json(const struct signer *s, const char *json, size_t json_len,
                         struct sign_opts so, unsigned char **der, size_t *der_len,
                         char *err, size_t errlen)
{
    BIO *in = BIO_new_mem_buf(json, (int)json_len);
    CMS_ContentInfo *cms = in ? CMS_sign(s->cert, s->key, s->chain, NULL,
                                         CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP) : NULL;
    int rc = -1;

    if (!cms)
        fail(err, errlen, "CMS signing failed");
    else if (!so.id_data && set_voucher_type(cms) < 0)
        fail(err, errlen, "cannot set the eContentType");
    else if (CMS_final(cms, in, NULL, CMS_BINARY) != 1)
        fail(err, errlen, "CMS signing failed");
    else if (so.corrupt && flip_signature(cms) < 0)
        fail(err, errlen, "cannot corrupt the signature");
    else if (cms_to_der(cms, der, der_len) < 0)
        fail(err, errlen, "cannot encode the CMS");
    else
        rc = 0;
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return rc;
}

static int sign_vr(const struct vr_leaves *l, const struct signer *s, struct sign_opts so,
                   unsigned char **der, size_t *len, char *err, size_t errlen)
{
    size_t json_len;
    char *json = vr_json(l, &json_len);

    if (!json)
        return fail(err, errlen, "cannot build the voucher-request JSON (invalid UTF-8?)");
    int rc = cms_sign_json(s, json, json_len, so, der, len, err, errlen);
    free(json);
    return rc;
}

/* ------------------------------------------------------------------ requests */

struct build {
    struct signer pledge;       /* pledge_cert: serial, AKI; key unless pvr_signer */
    struct signer pvr_signer;   /* only with pvr_signer_cert */
    struct signer registrar;
    char serial[SERIAL_MAX];
    unsigned char nonce[BRSKI_NONCE_MAX];
    size_t nonce_len;
    bool has_nonce;
    unsigned char *pvr;
    size_t pvr_len;
};

static void build_free(struct build *b)
{
    signer_free(&b->pledge);
    signer_free(&b->pvr_signer);
    signer_free(&b->registrar);
    free(b->pvr);
}

static int build_load(struct build *b, const struct brski_client_opts *o, char *err, size_t errlen)
{
    if (!o->pledge_cert || !o->registrar_cert || !o->registrar_key)
        return fail(err, errlen, "pledge_cert, registrar_cert and registrar_key are required");
    if (!o->pvr_signer_cert != !o->pvr_signer_key)
        return fail(err, errlen, "pvr_signer_cert and pvr_signer_key go together");
    if (!o->pvr_signer_cert && !o->pledge_key)
        return fail(err, errlen, "pledge_key is required");
    if (signer_load(&b->pledge, o->pledge_cert, o->pvr_signer_cert ? NULL : o->pledge_key,
                    err, errlen) < 0 ||
        signer_load(&b->registrar, o->registrar_cert, o->registrar_key, err, errlen) < 0)
        return -1;
    if (o->pvr_signer_cert)
        return signer_load(&b->pvr_signer, o->pvr_signer_cert, o->pvr_signer_key, err, errlen);
    return 0;
}

/* RFC 8995 §2.3.1: the serial number is the IDevID subject's serialNumber attribute */
static int subject_serial(X509 *cert, char *out, size_t n)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(name, NID_serialNumber, -1);
    unsigned char *utf8 = NULL;
    int len = i < 0 ? -1 : ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
                                                          X509_NAME_get_entry(name, i)));
    int rc = len >= 0 && (size_t)len < n && !memchr(utf8, 0, (size_t)len) ? 0 : -1;

    if (rc == 0) {
        memcpy(out, utf8, (size_t)len);
        out[len] = '\0';
    }
    OPENSSL_free(utf8);
    return rc;
}

static int pvr_serial(struct build *b, const struct brski_client_opts *o, char *err, size_t errlen)
{
    if (!o->pvr_serial) {
        if (subject_serial(b->pledge.cert, b->serial, sizeof b->serial) < 0)
            return fail(err, errlen, "%s: the subject has no usable serialNumber attribute",
                        o->pledge_cert);
        return 0;
    }
    if (strlen(o->pvr_serial) >= sizeof b->serial)
        return fail(err, errlen, "pvr_serial is longer than %d bytes", SERIAL_MAX - 1);
    strcpy(b->serial, o->pvr_serial);
    return 0;
}

static int pvr_nonce(struct build *b, const struct brski_client_opts *o, char *err, size_t errlen)
{
    if (o->nonceless)
        return 0;
    b->has_nonce = true;
    if (!o->nonce) {
        b->nonce_len = PVR_NONCE_LEN;
        return RAND_bytes(b->nonce, PVR_NONCE_LEN) == 1 ? 0 : fail(err, errlen, "no random bytes");
    }
    if (o->nonce_len > BRSKI_NONCE_MAX)
        return fail(err, errlen, "nonce_len is over %d", BRSKI_NONCE_MAX);
    memcpy(b->nonce, o->nonce, o->nonce_len);
    b->nonce_len = o->nonce_len;
    return 0;
}

static void remember_pvr(const struct build *b)
{
    memcpy(last_nonce, b->nonce, b->nonce_len);
    last_nonce_len = b->nonce_len;
    last_has_nonce = b->has_nonce;
    strcpy(last_serial, b->serial);
}

/* the serial-number in the other letter case, as some pledges write it */
static const char *pvr_serial_text(const struct build *b, const struct brski_client_opts *o,
                                   char *buf)
{
    if (!o->serial_case)
        return b->serial;
    size_t i = 0;
    for (; b->serial[i]; i++) {
        char ch = b->serial[i];
        buf[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    buf[i] = '\0';
    return buf;
}

static char *encode_nonce(const unsigned char *nonce, size_t len, const struct brski_client_opts *o)
{
    return base64_encode(nonce, len, o->nonce_base64url);
}

/* RFC 8995 §5.2: the pledge's voucher-request, with assertion "proximity" */
static int build_pvr(struct build *b, const struct brski_client_opts *o, char *err, size_t errlen)
{
    char when[32], serial[SERIAL_MAX];
    char *nonce = NULL, *prox = NULL;

    if (pvr_serial(b, o, err, errlen) < 0 || pvr_nonce(b, o, err, errlen) < 0)
        return -1;
    created_on(when, sizeof when, o->created_on_date_only);
    if (b->has_nonce && !(nonce = encode_nonce(b->nonce, b->nonce_len, o)))
        return fail(err, errlen, "out of memory");
    snprintf(last_nonce_text, sizeof last_nonce_text, "%s", nonce ? nonce : "");
    int rc = o->no_proximity ? 0 : proximity_base64(o->proximity_cert, b->registrar.cert, &prox,
                                               err, errlen);
    struct vr_leaves l = {.created_on = when, .assertion = "proximity",
                          .serial = pvr_serial_text(b, o, serial), .nonce = nonce,
                          .proximity = prox, .voucher_root = o->voucher_root};
    const struct signer *s = o->pvr_signer_cert ? &b->pvr_signer : &b->pledge;
    struct sign_opts so = {.id_data = o->econtent_id_data, .corrupt = o->corrupt_pvr_signature};
    if (rc == 0)
        rc = sign_vr(&l, s, so, &b->pvr, &b->pvr_len, err, errlen);
    free(nonce);
    free(prox);
    return rc;
}

static int rvr_idevid_issuer(const struct build *b, const struct brski_client_opts *o,
                             char **out, char *err, size_t errlen)
{
    const ASN1_OCTET_STRING *kid;

    *out = NULL;
    if (o->idevid_issuer_value && o->idevid_issuer_form == BRSKI_ISSUER_NAME_TEXT) {
        *out = strndup((const char *)o->idevid_issuer_value, o->idevid_issuer_len);
    } else if (o->idevid_issuer_value) {
        *out = base64_encode(o->idevid_issuer_value, o->idevid_issuer_len, false);
    } else if (o->idevid_issuer && o->idevid_issuer_form == BRSKI_ISSUER_NAME_DER) {
        unsigned char *der = NULL;
        int n = i2d_X509_NAME(X509_get_issuer_name(b->pledge.cert), &der);
        *out = n > 0 ? base64_encode(der, (size_t)n, false) : NULL;
        OPENSSL_free(der);
    } else if (o->idevid_issuer && o->idevid_issuer_form == BRSKI_ISSUER_NAME_TEXT) {
        BIO *mem = BIO_new(BIO_s_mem());
        char *data;
        long n = mem ? X509_NAME_print_ex(mem, X509_get_issuer_name(b->pledge.cert), 0,
                                          XN_FLAG_ONELINE) : -1;
        n = n >= 0 ? BIO_get_mem_data(mem, &data) : -1;
        *out = n >= 0 ? strndup(data, (size_t)n) : NULL;
        BIO_free(mem);
    } else if (o->idevid_issuer) {
        if (!(kid = X509_get0_authority_key_id(b->pledge.cert)))
            return fail(err, errlen, "%s: the IDevID has no Authority Key Identifier keyIdentifier",
                        o->pledge_cert);
        *out = base64_encode(ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid), false);
    } else {
        return 0;
    }
    return *out ? 0 : fail(err, errlen, "out of memory");
}

static int rvr_nonce(const struct build *b, const struct brski_client_opts *o, char **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    if (o->rvr_nonce) {
        if (o->rvr_nonce_len > BRSKI_NONCE_MAX)
            return fail(err, errlen, "rvr_nonce_len is over %d", BRSKI_NONCE_MAX);
        *out = encode_nonce(o->rvr_nonce, o->rvr_nonce_len, o);
    } else if (b->has_nonce && !o->registrar_omits_nonce) {
        *out = encode_nonce(b->nonce, b->nonce_len, o);
    } else {
        return 0;
    }
    return *out ? 0 : fail(err, errlen, "out of memory");
}

/* RFC 8995 §5.5: the registrar's voucher-request wraps the PVR */
static int build_rvr(const struct build *b, const struct brski_client_opts *o,
                     unsigned char **der, size_t *len, char *err, size_t errlen)
{
    char when[32];
    char *issuer = NULL, *nonce = NULL, *prior = base64_encode(b->pvr, b->pvr_len, false);

    if (!prior)
        return fail(err, errlen, "out of memory");
    created_on(when, sizeof when, o->created_on_date_only);
    int rc = rvr_idevid_issuer(b, o, &issuer, err, errlen);
    if (rc == 0)
        rc = rvr_nonce(b, o, &nonce, err, errlen);
    struct vr_leaves l = {.created_on = when, .serial = o->rvr_serial ? o->rvr_serial : b->serial,
                          .idevid_issuer = issuer, .nonce = nonce, .prior_pvr = prior,
                          .voucher_root = o->voucher_root};
    struct sign_opts so = {.id_data = o->econtent_id_data, .corrupt = o->corrupt_rvr_signature};
    if (rc == 0)
        rc = sign_vr(&l, &b->registrar, so, der, len, err, errlen);
    free(issuer);
    free(nonce);
    free(prior);
    return rc;
}

int brski_build_rvr(const struct brski_client_opts *o, unsigned char **der, size_t *len,
                    char *err, size_t errlen)
{
    struct build b = {0};

    *der = NULL;
    *len = 0;
    last_nonce_len = 0;
    last_has_nonce = false;
    last_serial[0] = '\0';
    last_nonce_text[0] = '\0';
    ERR_clear_error();
    int rc = build_load(&b, o, err, errlen);
    if (rc == 0)
        rc = build_pvr(&b, o, err, errlen);
    if (rc == 0)
        rc = build_rvr(&b, o, der, len, err, errlen);
    if (rc == 0)
        remember_pvr(&b);
    build_free(&b);
    return rc;
}

const unsigned char *brski_last_nonce(size_t *len)
{
    *len = last_nonce_len;
    return last_has_nonce ? last_nonce : NULL;
}

const char *brski_last_nonce_text(void)
{
    return last_has_nonce ? last_nonce_text : NULL;
}

const char *brski_last_serial(void)
{
    return last_serial;
}

/* ------------------------------------------------------------------ vouchers */

static int check_voucher_type(CMS_ContentInfo *cms, char *err, size_t errlen)
{
    char got[80];

    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
        return fail(err, errlen, "the voucher is not CMS SignedData");
    const ASN1_OBJECT *type = CMS_get0_eContentType(cms);
    ASN1_OBJECT *want = OBJ_txt2obj(BRSKI_ID_CT_VOUCHER, 1);
    int same = type && want && OBJ_cmp(type, want) == 0;
    ASN1_OBJECT_free(want);
    if (same)
        return 0;
    if (!type || OBJ_obj2txt(got, sizeof got, type, 1) <= 0)
        strcpy(got, "none");
    return fail(err, errlen, "the voucher's eContentType is %s, not id-ct-animaJSONVoucher (%s)",
                got, BRSKI_ID_CT_VOUCHER);
}

static X509_STORE *trust_store(const char *ca_file, char *err, size_t errlen)
{
    X509_STORE *st = X509_STORE_new();

    /* openssl cms -verify -purpose any: the MASA certificate needs no S/MIME purpose */
    if (st && X509_STORE_load_file(st, ca_file) == 1 &&
        X509_STORE_set_purpose(st, X509_PURPOSE_ANY) == 1)
        return st;
    X509_STORE_free(st);
    fail(err, errlen, "cannot load the MASA trust anchors from %s", ca_file);
    return NULL;
}

static int mem_text(BIO *mem, char **text, char *err, size_t errlen)
{
    char *data;
    long n = BIO_get_mem_data(mem, &data);

    if (n < 0 || memchr(data, 0, (size_t)n))
        return fail(err, errlen, "the voucher's content is not text");
    if (!(*text = malloc((size_t)n + 1)))
        return fail(err, errlen, "out of memory");
    memcpy(*text, data, (size_t)n);
    (*text)[n] = '\0';
    return 0;
}

static int verify_signed(CMS_ContentInfo *cms, const char *ca_file, char **json,
                         char *err, size_t errlen)
{
    X509_STORE *st = trust_store(ca_file, err, errlen);
    BIO *out = st ? BIO_new(BIO_s_mem()) : NULL;
    int rc = -1;

    if (out && CMS_verify(cms, NULL, st, NULL, out, CMS_BINARY) != 1)
        fail(err, errlen, "the voucher's signature does not verify against %s", ca_file);
    else if (out)
        rc = mem_text(out, json, err, errlen);
    else if (st)
        fail(err, errlen, "out of memory");
    BIO_free(out);
    X509_STORE_free(st);
    return rc;
}

int brski_verify_voucher(const unsigned char *der, size_t len, const char *masa_ca_file,
                         char **json, char *err, size_t errlen)
{
    const unsigned char *p = der;

    *json = NULL;
    ERR_clear_error();
    if (len > LONG_MAX)
        return fail(err, errlen, "the voucher is too large");
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    if (!cms)
        return fail(err, errlen, "the voucher is not DER CMS");
    int rc = p != der + len ? fail(err, errlen, "the voucher has bytes after its CMS") : 0;
    if (rc == 0)
        rc = check_voucher_type(cms, err, errlen);
    if (rc == 0)
        rc = verify_signed(cms, masa_ca_file, json, err, errlen);
    CMS_ContentInfo_free(cms);
    return rc;
}

char *brski_voucher_leaf(const char *json, const char *leaf)
{
    const char *path[] = {"ietf-voucher:voucher", leaf, NULL};
    yajl_val root = yajl_tree_parse(json, NULL, 0);
    yajl_val v = root ? yajl_tree_get(root, path, yajl_t_string) : NULL;
    char *value = v ? strdup(v->u.string) : NULL;

    yajl_tree_free(root);
    return value;
}

/* ------------------------------------------------------------------ HTTP */

struct answer_buf {
    unsigned char *data;
    size_t len, cap;
};

static size_t collect(char *ptr, size_t size, size_t n, void *user)
{
    struct answer_buf *b = user;
    size_t add = size * n;

    if (add > ANSWER_MAX - b->len - 1)
        return 0;
    if (b->len + add + 1 > b->cap) {
        size_t cap = (b->len + add + 1) * 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* "Name: value"; an empty value removes the header curl would add. */
static struct curl_slist *add_header(struct curl_slist *h, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    struct curl_slist *more = NULL;

    if (line) {
        snprintf(line, n, "%s:%s%s", name, *value ? " " : "", value);
        more = curl_slist_append(h, line);
        free(line);
    }
    if (!more)
        curl_slist_free_all(h);
    return more;
}

static struct curl_slist *post_headers(const char *content_type, const char *accept)
{
    struct curl_slist *h = add_header(NULL, "Content-Type",
                                      content_type ? content_type : BRSKI_VOUCHER_CMS);

    if (h)
        h = add_header(h, "Accept", accept ? accept : "");
    if (h)
        h = add_header(h, "Expect", "");
    return h;
}

struct post_target {
    const char *url, *tls_ca, *client_cert, *client_key;
};

static void post_setup(CURL *c, const struct post_target *t, struct curl_slist *h,
                       const unsigned char *body, size_t len, struct answer_buf *b)
{
    curl_easy_setopt(c, CURLOPT_URL, t->url);
    if (t->tls_ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, t->tls_ca);
    if (t->client_cert)
        curl_easy_setopt(c, CURLOPT_SSLCERT, t->client_cert);
    if (t->client_key)
        curl_easy_setopt(c, CURLOPT_SSLKEY, t->client_key);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, last_post_error);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, POST_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
}

static long post_oom(char **content_type)
{
    if (content_type) {
        free(*content_type);
        *content_type = NULL;
    }
    snprintf(last_post_error, sizeof last_post_error, "out of memory");
    return 0;
}

static long post_perform(CURL *c, char **content_type)
{
    long status = 0;
    char *type = NULL;
    CURLcode rc = curl_easy_perform(c);

    if (rc != CURLE_OK) {
        if (!last_post_error[0])
            snprintf(last_post_error, sizeof last_post_error, "%s", curl_easy_strerror(rc));
        return 0;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
    if (content_type && type && !(*content_type = strdup(type)))
        return post_oom(NULL);
    return status;
}

long brski_post(const char *url, const char *tls_ca, const char *client_cert, const char *client_key,
                const char *content_type, const char *accept, const unsigned char *body, size_t len,
                unsigned char **answer, size_t *answer_len, char **answer_content_type)
{
    struct post_target t = {url, tls_ca, client_cert, client_key};
    struct answer_buf b = {0};
    struct curl_slist *h = post_headers(content_type, accept);
    CURL *c = h ? curl_easy_init() : NULL;
    long status = 0;

    *answer = NULL;
    *answer_len = 0;
    if (answer_content_type)
        *answer_content_type = NULL;
    last_post_error[0] = '\0';
    if (c) {
        post_setup(c, &t, h, body, len, &b);
        status = post_perform(c, answer_content_type);
    } else {
        snprintf(last_post_error, sizeof last_post_error, "cannot start libcurl");
    }
    if (status != 0 && !b.data && !(b.data = calloc(1, 1)))
        status = post_oom(answer_content_type);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (status == 0) {
        free(b.data);
        return 0;
    }
    *answer = b.data;
    *answer_len = b.len;
    return status;
}

const char *brski_last_post_error(void)
{
    return last_post_error;
}
