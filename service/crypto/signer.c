#include "crypto/crypto.h"

#include <libp11.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "crypto/pkcs11_uri.h"

struct crypto_signer {
    PKCS11_CTX *p11;          /* NULL for a file key */
    bool module_loaded;       /* libp11 crashes unloading a module that failed to load */
    PKCS11_SLOT *slots;
    unsigned int slot_count;
    EVP_PKEY *key;
    X509 *cert;
    STACK_OF(X509) *chain;    /* the certificates after the signer's */
};

STACK_OF(X509) *crypto_read_pem_certs(const char *path, struct masad_error *err)
{
    BIO *in = BIO_new_file(path, "r");
    if (!in) {
        error_set(err, 500, "certificate", "cannot read %s", path);
        error_add_openssl(err);
        return NULL;
    }
    STACK_OF(X509) *certs = sk_X509_new_null();
    X509 *x;
    while ((x = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL)
        sk_X509_push(certs, x);
    ERR_clear_error(); /* the end of the file reads as an error */
    BIO_free(in);
    if (sk_X509_num(certs) == 0) {
        sk_X509_free(certs);
        error_set(err, 500, "certificate", "%s holds no PEM certificate", path);
        return NULL;
    }
    return certs;
}

static char *read_pin_source(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char buf[256];
    char *pin = NULL;
    if (fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\r\n")] = 0;
        pin = strdup(buf);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    fclose(f);
    return pin;
}

static PKCS11_SLOT *find_token(struct crypto_signer *s, const struct pkcs11_uri *u)
{
    for (unsigned int i = 0; i < s->slot_count; i++) {
        PKCS11_SLOT *slot = &s->slots[i];
        if (!slot->token || !slot->token->initialized)
            continue;
        if (u->token && strcmp(slot->token->label, u->token) != 0)
            continue;
        if (u->serial && strcmp(slot->token->serialnr, u->serial) != 0)
            continue;
        return slot;
    }
    return NULL;
}

static PKCS11_KEY *find_key(PKCS11_TOKEN *token, const struct pkcs11_uri *u)
{
    PKCS11_KEY *keys = NULL;
    unsigned int n = 0;
    if (PKCS11_enumerate_keys(token, &keys, &n) != 0)
        return NULL;
    for (unsigned int i = 0; i < n; i++) {
        if (u->object && (!keys[i].label || strcmp(keys[i].label, u->object) != 0))
            continue;
        if (u->id_len && (keys[i].id_len != u->id_len || memcmp(keys[i].id, u->id, u->id_len)))
            continue;
        return &keys[i];
    }
    return NULL;
}

static const char *choose_pin(const struct crypto_signer_options *o, const struct pkcs11_uri *u,
                              char **owned)
{
    *owned = NULL;
    if (o->pin)
        return o->pin;
    if (u->pin_source) {
        const char *path = strncmp(u->pin_source, "file:", 5) ? u->pin_source : u->pin_source + 5;
        *owned = read_pin_source(path);
        return *owned;
    }
    return u->pin_value;
}

static int login_and_find(struct crypto_signer *s, const struct crypto_signer_options *o,
                          const struct pkcs11_uri *u, struct masad_error *err)
{
    PKCS11_SLOT *slot = find_token(s, u);
    if (!slot)
        return error_set(err, 503, "hsm", "no PKCS#11 token labelled \"%s\" is present",
                         u->token ? u->token : "(any)");
    char *owned = NULL;
    const char *pin = choose_pin(o, u, &owned);
    int logged_in = 0;
    PKCS11_is_logged_in(slot, 0, &logged_in);
    int rc = logged_in ? 0 : PKCS11_login(slot, 0, pin);
    if (owned) {
        OPENSSL_cleanse(owned, strlen(owned));
        free(owned);
    }
    if (rc != 0) {
        error_set(err, 503, "hsm", "PKCS#11 login to token \"%s\" failed", slot->token->label);
        error_add_openssl(err);
        return -1;
    }
    PKCS11_KEY *key = find_key(slot->token, u);
    if (!key)
        return error_set(err, 503, "hsm", "token \"%s\" holds no private key \"%s\"",
                         slot->token->label, u->object ? u->object : "(by id)");
    s->key = PKCS11_get_private_key(key);
    if (!s->key) {
        error_set(err, 503, "hsm", "the PKCS#11 key cannot be used");
        error_add_openssl(err);
        return -1;
    }
    return 0;
}

static int open_pkcs11(struct crypto_signer *s, const struct crypto_signer_options *o,
                       struct masad_error *err)
{
    struct pkcs11_uri u;
    if (pkcs11_uri_parse(o->key, &u, err) != 0)
        return -1;
    const char *module = u.module_path ? u.module_path : o->pkcs11_module;
    int rc = -1;
    if (!module) {
        error_set(err, 500, "hsm", "no PKCS#11 module: set signer/pkcs11-module or module-path in the URI");
        goto out;
    }
    s->p11 = PKCS11_CTX_new();
    if (PKCS11_CTX_load(s->p11, module) != 0) {
        error_set(err, 503, "hsm", "cannot load the PKCS#11 module %s", module);
        error_add_openssl(err);
        goto out;
    }
    s->module_loaded = true;
    if (PKCS11_enumerate_slots(s->p11, &s->slots, &s->slot_count) != 0) {
        error_set(err, 503, "hsm", "cannot list the slots of %s", module);
        error_add_openssl(err);
        goto out;
    }
    rc = login_and_find(s, o, &u, err);
out:
    pkcs11_uri_clear(&u);
    return rc;
}

static int open_file(struct crypto_signer *s, const char *path, struct masad_error *err)
{
    BIO *in = BIO_new_file(path, "r");
    if (in)
        s->key = PEM_read_bio_PrivateKey(in, NULL, NULL, NULL);
    BIO_free(in);
    if (!s->key) {
        error_set(err, 500, "signer", "cannot read a private key from %s", path);
        error_add_openssl(err);
        return -1;
    }
    log_warn("the signing key is a PEM file (%s): for development only; "
             "production keys belong in an HSM (signer/key = pkcs11:...)", path);
    return 0;
}

static int sign_digest(EVP_PKEY *key, const unsigned char *digest, unsigned char *sig,
                       size_t *sig_len)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(key, NULL);
    int ok = pctx && EVP_PKEY_sign_init(pctx) == 1 &&
             EVP_PKEY_sign(pctx, sig, sig_len, digest, 32) == 1;
    EVP_PKEY_CTX_free(pctx);
    return ok ? 0 : -1;
}

/* Proves the key and the certificate belong together: sign, then verify. */
static int check_pair(struct crypto_signer *s, struct masad_error *err)
{
    unsigned char digest[32], sig[512];
    size_t sig_len = sizeof(sig);
    RAND_bytes(digest, sizeof(digest));
    if (sign_digest(s->key, digest, sig, &sig_len) != 0) {
        error_set(err, 503, "signer", "the signing key cannot sign");
        error_add_openssl(err);
        return -1;
    }
    EVP_PKEY_CTX *vctx = EVP_PKEY_CTX_new(X509_get0_pubkey(s->cert), NULL);
    int ok = vctx && EVP_PKEY_verify_init(vctx) == 1 &&
             EVP_PKEY_verify(vctx, sig, sig_len, digest, sizeof(digest)) == 1;
    EVP_PKEY_CTX_free(vctx);
    ERR_clear_error();
    if (!ok)
        return error_set(err, 500, "signer",
                         "the signing key does not match the signer certificate");
    return 0;
}

int crypto_signer_open(const struct crypto_signer_options *o, struct crypto_signer **out,
                       struct masad_error *err)
{
    struct crypto_signer *s = calloc(1, sizeof(*s));
    STACK_OF(X509) *certs = crypto_read_pem_certs(o->certificate, err);
    if (!certs)
        goto fail;
    s->cert = sk_X509_shift(certs);
    s->chain = certs;
    log_capture_stderr_begin(); /* libp11 and modules write their complaints there */
    int rc = strncmp(o->key, "pkcs11:", 7) == 0 ? open_pkcs11(s, o, err) : open_file(s, o->key, err);
    log_capture_stderr_end("pkcs11");
    if (rc != 0 || check_pair(s, err) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    crypto_signer_free(s);
    return -1;
}

void crypto_signer_free(struct crypto_signer *s)
{
    if (!s)
        return;
    EVP_PKEY_free(s->key);
    X509_free(s->cert);
    sk_X509_pop_free(s->chain, X509_free);
    if (s->p11) {
        log_capture_stderr_begin();
        if (s->slots)
            PKCS11_release_all_slots(s->p11, s->slots, s->slot_count);
        if (s->module_loaded)
            PKCS11_CTX_unload(s->p11);
        PKCS11_CTX_free(s->p11);
        log_capture_stderr_end("pkcs11");
    }
    free(s);
}

bool crypto_signer_is_hsm(const struct crypto_signer *s) { return s->p11 != NULL; }
X509 *crypto_signer_certificate(const struct crypto_signer *s) { return s->cert; }
STACK_OF(X509) *crypto_signer_chain(const struct crypto_signer *s) { return s->chain; }

int crypto_signer_probe(struct crypto_signer *s)
{
    unsigned char digest[32] = {0}, sig[512];
    size_t sig_len = sizeof(sig);
    int rc = sign_digest(s->key, digest, sig, &sig_len);
    ERR_clear_error();
    return rc;
}

int crypto_cms_sign(struct crypto_signer *s, struct arena *a, const void *content, size_t len,
                    const char *econtent_oid, unsigned char **der, size_t *der_len,
                    struct masad_error *err)
{
    struct timespec started, ended;
    clock_gettime(CLOCK_MONOTONIC, &started);
    BIO *in = BIO_new_mem_buf(content, (int)len);
    ASN1_OBJECT *oid = OBJ_txt2obj(econtent_oid, 1);
    unsigned char *buf = NULL;
    int n = -1;
    CMS_ContentInfo *cms =
        CMS_sign(s->cert, s->key, s->chain, NULL, CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP);
    if (cms && oid && in && CMS_set1_eContentType(cms, oid) == 1 &&
        CMS_final(cms, in, NULL, CMS_BINARY) == 1)
        n = i2d_CMS_ContentInfo(cms, &buf);
    CMS_ContentInfo_free(cms);
    ASN1_OBJECT_free(oid);
    BIO_free(in);
    clock_gettime(CLOCK_MONOTONIC, &ended);
    metrics_signer((ended.tv_sec - started.tv_sec) * 1000000LL +
                   (ended.tv_nsec - started.tv_nsec) / 1000);
    if (n <= 0) {
        error_set(err, 503, "signer", "CMS signing failed");
        error_add_openssl(err);
        return -1;
    }
    *der = arena_memdup(a, buf, (size_t)n);
    *der_len = (size_t)n;
    OPENSSL_free(buf);
    return 0;
}
