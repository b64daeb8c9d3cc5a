#include "crypto/crypto.h"

#include <libp11.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "crypto/pkcs11_uri.h"

/* A PKCS#11 session that failed is re-opened (module, slots, login, key)
 * by whichever thread signs or probes next once the backoff has passed:
 * 250 ms after the failure, doubling up to 8 s. */
#define REOPEN_FIRST_MS 250
#define REOPEN_MAX_MS 8000

struct crypto_signer {
    /* fixed after open */
    X509 *cert;
    STACK_OF(X509) *chain;    /* the certificates after the signer's */
    bool hsm;
    char *uri, *module, *pin; /* kept to re-open the token; the PIN is wiped on free */
    pthread_rwlock_t lock;    /* signing holds it shared, re-opening exclusively */
    /* the token session: replaced by a re-open, under the exclusive lock */
    PKCS11_CTX *p11;          /* NULL for a file key or a closed session */
    bool module_loaded;       /* libp11 crashes unloading a module that failed to load */
    PKCS11_SLOT *slots;
    unsigned int slot_count;
    EVP_PKEY *key;            /* NULL while the token is unusable */
    atomic_bool failed;       /* the last use of the token failed */
    atomic_bool pin_refused;  /* never log in again: the HSM would lock the user */
    _Atomic long long reopen_at_ms;
    long backoff_ms;          /* under the exclusive lock */
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

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
        if (slot->token && slot->token->initialized && pkcs11_uri_matches_token(u, s->p11, slot))
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
    for (unsigned int i = 0; i < n; i++)
        if (pkcs11_uri_matches_key(u, &keys[i]))
            return &keys[i];
    return NULL;
}

/* Without MASAD_PKCS11_PIN: the URI's pin-source file, else its pin-value. */
static char *choose_pin(const struct pkcs11_uri *u)
{
    if (u->pin_source) {
        const char *path = strncmp(u->pin_source, "file:", 5) ? u->pin_source : u->pin_source + 5;
        return read_pin_source(path);
    }
    return u->pin_value ? strdup(u->pin_value) : NULL;
}

static void wipe(char *secret)
{
    if (secret) {
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    }
}

/* A login the token refused for its PIN: trying again would count against
 * the user's remaining attempts, and real HSMs lock the user after a few. */
static bool pin_refused(unsigned long e)
{
    unsigned long r = ERR_GET_REASON(e);
    return ERR_GET_LIB(e) == ERR_get_CKR_code() &&
           (r == CKR_PIN_INCORRECT || r == CKR_PIN_LOCKED || r == CKR_PIN_LEN_RANGE ||
            r == CKR_PIN_INVALID || r == CKR_PIN_EXPIRED);
}

static int login(struct crypto_signer *s, PKCS11_SLOT *slot, struct masad_error *err)
{
    int logged_in = 0;
    PKCS11_is_logged_in(slot, 0, &logged_in);
    if (logged_in)
        return 0;
    if (!s->pin) {
        atomic_store(&s->pin_refused, true);
        return error_set(err, 500, "hsm-pin",
                         "no PIN for PKCS#11 token \"%s\": set MASAD_PKCS11_PIN (or pin-source "
                         "in the key's URI)", slot->token->label);
    }
    ERR_clear_error();
    if (PKCS11_login(slot, 0, s->pin) == 0)
        return 0;
    if (pin_refused(ERR_peek_last_error())) {
        atomic_store(&s->pin_refused, true);
        error_set(err, 500, "hsm-pin",
                  "PKCS#11 login to token \"%s\" refused the PIN: check MASAD_PKCS11_PIN "
                  "(masad does not try a refused PIN again, so that the HSM does not lock "
                  "the user)", slot->token->label);
    } else
        error_set(err, 503, "hsm", "PKCS#11 login to token \"%s\" failed", slot->token->label);
    error_add_openssl(err);
    return -1;
}

static int login_and_find(struct crypto_signer *s, const struct pkcs11_uri *u,
                          struct masad_error *err)
{
    PKCS11_SLOT *slot = find_token(s, u);
    if (!slot)
        return error_set(err, 503, "hsm", "no PKCS#11 token labelled \"%s\" is present",
                         u->token ? u->token : "(any)");
    if (login(s, slot, err) != 0)
        return -1;
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

static void close_pkcs11(struct crypto_signer *s)
{
    EVP_PKEY_free(s->key);
    s->key = NULL;
    if (s->p11) {
        if (s->slots)
            PKCS11_release_all_slots(s->p11, s->slots, s->slot_count);
        if (s->module_loaded)
            PKCS11_CTX_unload(s->p11);
        PKCS11_CTX_free(s->p11);
    }
    s->p11 = NULL;
    s->slots = NULL;
    s->slot_count = 0;
    s->module_loaded = false;
}

static int open_pkcs11(struct crypto_signer *s, struct masad_error *err)
{
    struct pkcs11_uri u;
    if (pkcs11_uri_parse(s->uri, &u, err) != 0)
        return -1;
    const char *module = u.module_path ? u.module_path : s->module;
    int rc = -1;
    if (!module) {
        error_set(err, 500, "hsm", "no PKCS#11 module: set signer/pkcs11-module or module-path in the URI");
        goto out;
    }
    if (!s->pin)
        s->pin = choose_pin(&u);
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
    rc = login_and_find(s, &u, err);
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

int crypto_key_uri_check(const char *uri, struct masad_error *err)
{
    struct pkcs11_uri u;
    if (pkcs11_uri_parse(uri, &u, err) != 0)
        return -1;
    pkcs11_uri_clear(&u);
    return 0;
}

int crypto_signer_open(const struct crypto_signer_options *o, struct crypto_signer **out,
                       struct masad_error *err)
{
    struct crypto_signer *s = calloc(1, sizeof(*s));
    pthread_rwlock_init(&s->lock, NULL);
    STACK_OF(X509) *certs = crypto_read_pem_certs(o->certificate, err);
    if (!certs)
        goto fail;
    s->cert = sk_X509_shift(certs);
    s->chain = certs;
    s->hsm = strncmp(o->key, "pkcs11:", 7) == 0;
    s->uri = strdup(o->key);
    s->module = o->pkcs11_module ? strdup(o->pkcs11_module) : NULL;
    s->pin = o->pin ? strdup(o->pin) : NULL;
    log_capture_stderr_begin(); /* libp11 and modules write their complaints there */
    int rc = s->hsm ? open_pkcs11(s, err) : open_file(s, o->key, err);
    log_capture_stderr_end("pkcs11");
    if (rc != 0 || check_pair(s, err) != 0)
        goto fail;
    s->backoff_ms = REOPEN_FIRST_MS;
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
    log_capture_stderr_begin();
    close_pkcs11(s);
    log_capture_stderr_end("pkcs11");
    X509_free(s->cert);
    sk_X509_pop_free(s->chain, X509_free);
    free(s->uri);
    free(s->module);
    wipe(s->pin);
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

bool crypto_signer_is_hsm(const struct crypto_signer *s) { return s->hsm; }
X509 *crypto_signer_certificate(const struct crypto_signer *s) { return s->cert; }
STACK_OF(X509) *crypto_signer_chain(const struct crypto_signer *s) { return s->chain; }

/* Under the exclusive lock: a fresh module, session and login. */
static void reopen(struct crypto_signer *s)
{
    struct masad_error err;
    close_pkcs11(s);
    if (open_pkcs11(s, &err) == 0 && check_pair(s, &err) == 0) {
        atomic_store(&s->failed, false);
        s->backoff_ms = REOPEN_FIRST_MS;
        log_info("signer: the PKCS#11 token is usable again");
        return;
    }
    close_pkcs11(s);
    if (atomic_load(&s->pin_refused)) {
        log_error("signer: %s; the signing key stays unavailable until masad restarts",
                  err.message);
        return;
    }
    log_warn("signer: re-opening the PKCS#11 token failed: %s (next try in %ld ms)",
             err.message, s->backoff_ms);
    atomic_store(&s->reopen_at_ms, now_ms() + s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > REOPEN_MAX_MS ? REOPEN_MAX_MS : s->backoff_ms * 2;
}

/* Any thread about to sign re-opens a failed token once its backoff has
 * passed; it never waits for a thread that is signing. */
static void recover_if_due(struct crypto_signer *s)
{
    if (!s->hsm || !atomic_load(&s->failed) || atomic_load(&s->pin_refused) ||
        now_ms() < atomic_load(&s->reopen_at_ms) || pthread_rwlock_trywrlock(&s->lock) != 0)
        return;
    if (atomic_load(&s->failed) && now_ms() >= atomic_load(&s->reopen_at_ms))
        reopen(s);
    pthread_rwlock_unlock(&s->lock);
}

static void note_failure(struct crypto_signer *s)
{
    if (s->hsm && !atomic_exchange(&s->failed, true)) {
        atomic_store(&s->reopen_at_ms, now_ms() + REOPEN_FIRST_MS);
        log_warn("signer: the PKCS#11 token failed to sign; re-opening it");
    }
}

int crypto_signer_probe(struct crypto_signer *s)
{
    recover_if_due(s);
    unsigned char digest[32] = {0}, sig[512];
    size_t sig_len = sizeof(sig);
    pthread_rwlock_rdlock(&s->lock);
    int rc = s->key ? sign_digest(s->key, digest, sig, &sig_len) : -1;
    pthread_rwlock_unlock(&s->lock);
    ERR_clear_error();
    if (rc != 0)
        note_failure(s);
    return rc;
}

static int cms_sign(EVP_PKEY *key, X509 *cert, STACK_OF(X509) *chain, BIO *in, ASN1_OBJECT *oid,
                    unsigned char **buf)
{
    int n = -1;
    CMS_ContentInfo *cms =
        key ? CMS_sign(cert, key, chain, NULL, CMS_BINARY | CMS_PARTIAL | CMS_NOSMIMECAP) : NULL;
    if (cms && oid && in && CMS_set1_eContentType(cms, oid) == 1 &&
        CMS_final(cms, in, NULL, CMS_BINARY) == 1)
        n = i2d_CMS_ContentInfo(cms, buf);
    CMS_ContentInfo_free(cms);
    return n;
}

int crypto_cms_sign(struct crypto_signer *s, struct arena *a, const void *content, size_t len,
                    const char *econtent_oid, unsigned char **der, size_t *der_len,
                    struct masad_error *err)
{
    recover_if_due(s);
    struct timespec started, ended;
    clock_gettime(CLOCK_MONOTONIC, &started);
    BIO *in = BIO_new_mem_buf(content, (int)len);
    ASN1_OBJECT *oid = OBJ_txt2obj(econtent_oid, 1);
    unsigned char *buf = NULL;
    pthread_rwlock_rdlock(&s->lock);
    int n = cms_sign(s->key, s->cert, s->chain, in, oid, &buf);
    pthread_rwlock_unlock(&s->lock);
    ASN1_OBJECT_free(oid);
    BIO_free(in);
    clock_gettime(CLOCK_MONOTONIC, &ended);
    metrics_signer((ended.tv_sec - started.tv_sec) * 1000000LL +
                   (ended.tv_nsec - started.tv_nsec) / 1000);
    if (n <= 0) {
        note_failure(s);
        error_set(err, 503, "signer", "CMS signing failed");
        error_add_openssl(err);
        return -1;
    }
    *der = arena_memdup(a, buf, (size_t)n);
    *der_len = (size_t)n;
    OPENSSL_free(buf);
    return 0;
}
