/* Reading an SZTP request (service/sztp/restconf.c, sztp_read): the device
 * identity from the TLS client chain, without h2o, PostgreSQL or an HSM. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/yang.h"
#include "crypto/crypto.h"
#include "sztp/sztp_internal.h"

static struct arena *a;
static struct ly_ctx *yang;
static struct crypto_anchors *anchors;
static EVP_PKEY *key;
static X509 *ca, *device;

static X509 *cert(const char *field, const char *value, X509 *issuer, bool is_ca)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), is_ca ? 1 : 2);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), field, MBSTRING_ASC,
                               (const unsigned char *)value, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                            is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    X509_sign(x, key, EVP_sha256());
    return x;
}

static void setup(void)
{
    a = arena_new();
    struct masad_error err;
    cr_assert_eq(yang_context_new(&yang, &err), 0, "%s", err.message);
    key = EVP_EC_gen("P-256");
    ca = cert("CN", "test IDevID CA", NULL, true);
    device = cert("serialNumber", "SN-READ-1", ca, false);
    char path[] = "/tmp/test_sztp_read_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    PEM_write_X509(f, ca);
    fclose(f);
    struct crypto_anchor_spec spec = {"test", path, SERIAL_FROM_SERIAL_NUMBER};
    cr_assert_eq(crypto_anchors_new(&spec, 1, &anchors, &err), 0, "%s", err.message);
    unlink(path);
}

static void teardown(void)
{
    arena_free(a); /* the input trees first, while their context lives */
    crypto_anchors_free(anchors);
    X509_free(device);
    X509_free(ca);
    EVP_PKEY_free(key);
    ly_ctx_destroy(yang);
}

TestSuite(sztp_read, .init = setup, .fini = teardown);

static const char BODY[] = "{\"ietf-sztp-bootstrap-server:input\": {\"nonce\": \"AAECAwQFBgcICQoLDA0ODw==\"}}";

static struct sztp_refusal read_request(const struct der_cert *der, X509 *const *x509,
                                        const char **serial, const char **nonce)
{
    struct job_ctx ctx = {a, NULL, NULL, anchors, yang, NULL};
    struct masad_request req = {.method = "POST", .content_type = "application/yang-data+json",
                                .body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                                .peer = "192.0.2.1", .client_chain = der, .client_chain_len = 1,
                                .client_x509 = x509};
    struct masad_response res = {0};
    struct sztp_call c = {&ctx, a, &req, &res, SZTP_JSON, "get-bootstrapping-data", NULL, NULL};
    struct lyd_node *rpc = NULL;
    struct sztp_refusal r = sztp_read(&c, &rpc);
    *serial = c.serial;
    *nonce = rpc ? sztp_leaf(rpc, "nonce") : NULL;
    return r;
}

Test(sztp_read, identity_from_the_chain_tls_decoded)
{
    /* DER that does not parse: only TLS's own decoding can identify the device */
    static const unsigned char junk[] = {0x30, 0x00};
    struct der_cert der = {junk, sizeof(junk)};
    const char *serial, *nonce;
    struct sztp_refusal r = read_request(&der, &device, &serial, &nonce);
    cr_assert_eq(r.r.status, 0, "%s", r.r.sentence);
    cr_assert_str_eq(serial, "SN-READ-1");
    cr_assert_str_eq(nonce, "AAECAwQFBgcICQoLDA0ODw==");
}

Test(sztp_read, identity_from_der_when_tls_gave_none)
{
    size_t len;
    unsigned char *p = crypto_cert_der(device, a, &len);
    struct der_cert der = {p, len};
    const char *serial, *nonce;
    struct sztp_refusal r = read_request(&der, NULL, &serial, &nonce);
    cr_assert_eq(r.r.status, 0, "%s", r.r.sentence);
    cr_assert_str_eq(serial, "SN-READ-1");
}

Test(sztp_read, a_certificate_of_no_anchor_is_denied)
{
    X509 *stranger = cert("serialNumber", "SN-READ-2", NULL, false);
    size_t len;
    unsigned char *p = crypto_cert_der(stranger, a, &len);
    struct der_cert der = {p, len};
    const char *serial, *nonce;
    struct sztp_refusal r = read_request(&der, &stranger, &serial, &nonce);
    X509_free(stranger);
    cr_assert_eq(r.r.status, 401);
    cr_assert_str_eq(r.r.sentence, SZTP_DENIED);
    cr_assert_null(serial);
}
