/* `masad check-config`, the files and keys a configuration names: each is
 * read and parsed as serve would, without opening the HSM. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"

/* A PEM file of certificates: it opens and holds at least one. */
static STACK_OF(X509) *check_certs(const struct config *c, FILE *err, const char *where,
                                   const char *path)
{
    if (access(path, R_OK) != 0) {
        config_fault(c, err, where, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct masad_error e;
    STACK_OF(X509) *certs = crypto_read_pem_certs(path, &e);
    if (!certs)
        config_fault(c, err, where, "%s", e.message);
    return certs;
}

/* A PEM private key that belongs to the first certificate of certs. */
static int check_key(const struct config *c, FILE *err, const char *where, const char *path,
                     STACK_OF(X509) *certs, const char *cert_where)
{
    BIO *in = BIO_new_file(path, "r");
    EVP_PKEY *key = in ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
    int errnum = errno, rc = -1;
    BIO_free(in);
    if (!in)
        config_fault(c, err, where, "cannot read %s: %s", path, strerror(errnum));
    else if (!key)
        config_fault(c, err, where, "%s holds no PEM private key", path);
    else if (certs && X509_check_private_key(sk_X509_value(certs, 0), key) != 1)
        config_fault(c, err, where, "the key in %s does not match the certificate of %s", path,
                     cert_where);
    else
        rc = 0;
    ERR_clear_error();
    EVP_PKEY_free(key);
    return rc;
}

static int check_tls(const struct config *c, FILE *err)
{
    const char *cert_where = "/masad-config:tls/certificate";
    STACK_OF(X509) *certs = check_certs(c, err, cert_where, c->tls_certificate);
    int rc = check_key(c, err, "/masad-config:tls/private-key", c->tls_private_key, certs,
                       cert_where);
    sk_X509_pop_free(certs, X509_free);
    return certs && rc == 0 ? 0 : -1;
}

static int check_anchors(const struct config *c, FILE *err)
{
    int rc = 0;
    for (size_t i = 0; i < c->idevid_anchor_count; i++) {
        char where[160];
        snprintf(where, sizeof(where), "/masad-config:idevid/trust-anchor[name='%.64s']/certificate",
                 c->idevid_anchors[i].name);
        STACK_OF(X509) *certs = check_certs(c, err, where, c->idevid_anchors[i].certificate);
        if (!certs)
            rc = -1;
        sk_X509_pop_free(certs, X509_free);
    }
    return rc;
}

/* The signer's certificate, and its key: a PEM file that matches it, or a
 * PKCS#11 URI that parses and a module that can be read. */
static int check_signer(const struct config *c, FILE *err)
{
    const char *cert_where = "/masad-config:signer/certificate";
    STACK_OF(X509) *certs = check_certs(c, err, cert_where, c->signer_certificate);
    int rc = certs ? 0 : -1;
    struct masad_error e;
    if (strncmp(c->signer_key, "pkcs11:", 7)) {
        if (check_key(c, err, "/masad-config:signer/key", c->signer_key, certs, cert_where))
            rc = -1;
    } else if (crypto_key_uri_check(c->signer_key, &e) != 0) {
        config_fault(c, err, "/masad-config:signer/key", "%s", e.message);
        rc = -1;
    }
    if (c->signer_pkcs11_module && access(c->signer_pkcs11_module, R_OK) != 0) {
        config_fault(c, err, "/masad-config:signer/pkcs11-module", "cannot read %s: %s",
                     c->signer_pkcs11_module, strerror(errno));
        rc = -1;
    }
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

int crypto_check_config(const struct config *cfg, FILE *err)
{
    int tls = check_tls(cfg, err), anchors = check_anchors(cfg, err);
    return tls | anchors | check_signer(cfg, err);
}
