/*
 * The vouchers masad issues are valid against ietf-voucher (RFC 8366) in
 * every shape, whatever the build: release builds sign what voucher_build()
 * makes without a libyang round trip (meson_options.txt self_check), so this
 * suite is where that validity is checked. Each voucher is issued with a
 * throwaway P-256 file key (no HSM), its CMS opened and its content
 * validated.
 */
#include <criterion/criterion.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/encoding.h"
#include "common/json.h"
#include "common/yang.h"
#include "crypto/crypto.h"
#include "voucher/voucher.h"

static struct ly_ctx *ctx;
static struct crypto_signer *signer;
static struct arena *a;
static char dir[] = "/tmp/masad-test-voucher.XXXXXX";
static char key_path[64], cert_path[64];

/* A self-signed P-256 certificate and its key, as PEM files in dir. */
static void make_signer_files(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"test MASA", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(key_path, "w");
    cr_assert(f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    f = fopen(cert_path, "w");
    cr_assert(f && PEM_write_X509(f, x) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void setup(void)
{
    struct masad_error err;
    cr_assert(mkdtemp(dir));
    snprintf(key_path, sizeof(key_path), "%s/masa.key", dir);
    snprintf(cert_path, sizeof(cert_path), "%s/masa.crt", dir);
    make_signer_files();
    cr_assert_eq(yang_context_new(&ctx, &err), 0, "%s", err.message);
    struct crypto_signer_options o = {.key = key_path, .certificate = cert_path};
    cr_assert_eq(crypto_signer_open(&o, &signer, &err), 0, "%s", err.message);
    a = arena_new();
}

static void teardown(void)
{
    arena_free(a);
    crypto_signer_free(signer);
    ly_ctx_destroy(ctx);
    unlink(key_path);
    unlink(cert_path);
    rmdir(dir);
}

static const unsigned char pinned[] = "pinned domain certificate bytes";
static const unsigned char nonce[] = {0xfb, 0xff, 0x3e, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06};
static const unsigned char issuer[] = {0x04, 0x14, 0xfe, 0xed};

static struct voucher_terms terms(void)
{
    return (struct voucher_terms){.serial = "SN-0001", .assertion = "proximity",
                                  .pinned_cert = pinned, .pinned_cert_len = sizeof(pinned) - 1,
                                  .created_on = 1795010709 /* 2026-11-18T14:05:09Z */};
}

/* The CMS's content: exactly the JSON returned, id-ct-animaJSONVoucher. */
static struct json_value *signed_voucher(const unsigned char *cms, size_t cms_len, const char *json)
{
    struct crypto_signed s;
    char why[256];
    cr_assert_eq(crypto_cms_open(cms, cms_len, a, &s, why), 0, "%s", why);
    cr_assert_str_eq(s.econtent_type, VOUCHER_OID);
    cr_assert_eq(s.content_len, strlen(json));
    cr_assert_eq(memcmp(s.content, json, s.content_len), 0);
    struct json_value *doc;
    struct masad_error err;
    cr_assert_eq(json_parse(a, json, strlen(json), 8, &doc, &err), 0, "%s", err.message);
    const struct json_value *v = json_get(doc, "ietf-voucher:voucher");
    cr_assert(v && v->type == JSON_OBJECT, "%s", json);
    return (struct json_value *)v;
}

static void valid(const char *json)
{
    struct masad_error err;
    cr_assert_eq(yang_check_data(ctx, "ietf-voucher", "voucher-artifact", LYD_JSON, json, NULL, &err),
                 0, "%s: %s", json, err.message);
}

static const char *leaf(const struct json_value *v, const char *key)
{
    const struct json_value *l = json_get(v, key);
    return l && l->type == JSON_STRING ? l->text : NULL;
}

static void issue_valid(const struct voucher_terms *t, const char *nonce_text,
                        struct json_value **voucher, const char **json)
{
    unsigned char *cms;
    size_t cms_len;
    struct masad_error err;
    cr_assert_eq(voucher_issue_echoing(ctx, signer, a, t, nonce_text, &cms, &cms_len, json, &err),
                 0, "%s", err.message);
    *voucher = signed_voucher(cms, cms_len, *json);
}

Test(voucher_issue, nonced, .init = setup, .fini = teardown)
{
    struct voucher_terms t = terms();
    t.nonce = nonce;
    t.nonce_len = sizeof(nonce);
    struct json_value *v;
    const char *json;
    unsigned char *cms;
    size_t cms_len;
    struct masad_error err;
    cr_assert_eq(voucher_issue(ctx, signer, a, &t, &cms, &cms_len, &json, &err), 0, "%s", err.message);
    v = signed_voucher(cms, cms_len, json);
    valid(json);
    cr_assert_str_eq(leaf(v, "nonce"), base64_encode(a, nonce, sizeof(nonce)));
    cr_assert_str_eq(leaf(v, "created-on"), "2026-11-18T14:05:09Z");
    cr_assert_str_eq(leaf(v, "serial-number"), "SN-0001");
    cr_assert_str_eq(leaf(v, "assertion"), "proximity");
    cr_assert_str_eq(leaf(v, "pinned-domain-cert"), base64_encode(a, pinned, sizeof(pinned) - 1));
    cr_assert_null(leaf(v, "expires-on"), "RFC 8366 §5.3: no expires-on with a nonce");
    cr_assert_null(leaf(v, "idevid-issuer"));
}

Test(voucher_issue, nonceless_with_expires_on, .init = setup, .fini = teardown)
{
    struct voucher_terms t = terms();
    t.assertion = "logged";
    t.expires_on = t.created_on + 86400;
    struct json_value *v;
    const char *json;
    issue_valid(&t, NULL, &v, &json);
    valid(json);
    cr_assert_str_eq(leaf(v, "expires-on"), "2026-11-19T14:05:09Z");
    cr_assert_str_eq(leaf(v, "assertion"), "logged");
    cr_assert_null(leaf(v, "nonce"));
}

Test(voucher_issue, with_idevid_issuer, .init = setup, .fini = teardown)
{
    struct voucher_terms t = terms();
    t.assertion = "verified";
    t.nonce = nonce;
    t.nonce_len = sizeof(nonce);
    t.idevid_issuer = issuer;
    t.idevid_issuer_len = sizeof(issuer);
    struct json_value *v;
    const char *json;
    issue_valid(&t, NULL, &v, &json);
    valid(json);
    cr_assert_str_eq(leaf(v, "idevid-issuer"), base64_encode(a, issuer, sizeof(issuer)));
}

/* The pledge's own nonce text is signed as sent (docs/brski.md); the same
 * voucher with the standard base64 of those bytes is what libyang checks. */
Test(voucher_issue, echoed_nonce_text, .init = setup, .fini = teardown)
{
    struct voucher_terms t = terms();
    t.nonce = nonce;
    t.nonce_len = sizeof(nonce);
    const char *sent = base64url_encode(a, nonce, sizeof(nonce));
    cr_assert(strchr(sent, '-') || strchr(sent, '_'), "the sample must differ from base64: %s", sent);
    struct json_value *v;
    const char *json;
    issue_valid(&t, sent, &v, &json);
    cr_assert_str_eq(leaf(v, "nonce"), sent);
    valid(voucher_build(a, &t, NULL));
    /* the echoed document differs from the validated one in the nonce text only */
    const char *standard = base64_encode(a, nonce, sizeof(nonce));
    const char *at = strstr(json, sent);
    cr_assert(at);
    char *swapped = arena_printf(a, "%.*s%s%s", (int)(at - json), json, standard, at + strlen(sent));
    cr_assert_str_eq(swapped, voucher_build(a, &t, NULL));
}

/* Every leaf the builder writes is one the module knows, in its order: a
 * build that adds or reorders a leaf is caught here, not in production. */
Test(voucher_issue, canonical_member_order, .init = setup, .fini = teardown)
{
    struct voucher_terms t = terms();
    t.expires_on = t.created_on + 60;
    t.idevid_issuer = issuer;
    t.idevid_issuer_len = sizeof(issuer);
    const char *json = voucher_build(a, &t, NULL);
    valid(json);
    const char *order[] = {"created-on", "expires-on", "assertion", "serial-number",
                           "idevid-issuer", "pinned-domain-cert"};
    const char *last = json;
    for (size_t i = 0; i < sizeof(order) / sizeof(*order); i++) {
        const char *at = strstr(json, arena_printf(a, "\"%s\"", order[i]));
        cr_assert(at && at > last, "%s out of order in %s", order[i], json);
        last = at;
    }
}
