/*
 * Owners through the management API: certificates parsed and checked,
 * conveyed information validated against ietf-sztp-conveyed-info, owner-
 * signed conveyed information verified, domain certificates one owner each.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct masad_proc proc;
static char *token;

static void start(void)
{
    cr_assert(masad_start(&proc, NULL), "%s", read_text(proc.stderr_path));
    token = make_token(&proc, "owners-test", "owners:read,owners:write,devices:write,ownership:write");
}

static void stop(void) { masad_stop_expect_clean(&proc); }

static struct http_result put_owner(const char *id, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/owners/%s", id);
    struct http_opts o = {.management = true, .method = "PUT", .body = body,
                          .body_len = strlen(body), .content_type = "application/json",
                          .bearer = token};
    return http(&proc, path, &o);
}

static char *pem_of(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

/* A self-signed P-256 certificate valid from `from` to `to` seconds from now. */
static X509 *make_cert(const char *cn, bool ca, long from, long to)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), rand());
    X509_gmtime_adj(X509_getm_notBefore(x), from);
    X509_gmtime_adj(X509_getm_notAfter(x), to);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, key, EVP_sha256());
    EVP_PKEY_free(key);
    return x;
}

static char *domain_body(const char *pem)
{
    char *body, *s = json_string_of(pem);
    cr_assert(asprintf(&body, "{\"display_name\": \"D\", \"brski\": {\"domain_certs\": [%s]}}", s) > 0);
    free(s);
    return body;
}

static void expect_refusal(struct http_result r, int status, const char *detail, const char *pointer,
                           const char *pointer_detail)
{
    cr_assert_eq(r.status, status, "%ld %s", r.status, r.body);
    cr_assert_str_eq(http_header(&r, "content-type"), "application/problem+json");
    char *want;
    cr_assert(asprintf(&want, "\"detail\":\"%s\"", detail) > 0);
    cr_assert(strstr(r.body, want), "%s", r.body);
    if (pointer) {
        cr_assert(asprintf(&want, "{\"pointer\":\"%s\",\"detail\":\"%s", pointer, pointer_detail) > 0);
        cr_assert(strstr(r.body, want), "want %s in %s", want, r.body);
    }
}

static const char *count(const char *sql) { return db_value(proc.db.owner_url, sql); }

Test(owners, create_replace_get_and_list, .init = start, .fini = stop, .timeout = 120)
{
    X509 *ca = make_cert("Example Corp domain CA", true, -60, 86400);
    char *body = domain_body(pem_of(ca));
    struct http_result r = put_owner("example-corp", body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert(strstr(r.body, "\"owner_id\":\"example-corp\",\"display_name\":\"D\",\"brski\":{\"domain_certs\":[\"-----BEGIN CERTIFICATE-----"), "%s", r.body);
    cr_assert(strstr(r.body, "\"sztp\":null"), "%s", r.body);
    r = put_owner("example-corp", body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(count("SELECT count(*) FROM owner_domain_certs"), "1");
    cr_assert_str_eq(count("SELECT subject FROM owner_domain_certs"), "CN=Example Corp domain CA");

    struct http_opts get = {.management = true, .bearer = token};
    r = http(&proc, "/api/v1/owners/example-corp", &get);
    cr_assert_eq(r.status, 200);
    r = http(&proc, "/api/v1/owners?limit=1", &get);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "{\"owners\":[{\"owner_id\":\"example-corp\""), "%s", r.body);
    cr_assert(strstr(r.body, "\"next\":null}"), "%s", r.body);
    r = http(&proc, "/api/v1/owners/nobody", &get);
    expect_refusal(r, 404, "no owner \\\"nobody\\\" exists", NULL, NULL);
    cr_assert_str_eq(count("SELECT action FROM audit_events WHERE outcome = 'ok' ORDER BY seq DESC LIMIT 1"), "owner.update");
}

Test(owners, domain_certificates_are_checked, .init = start, .fini = stop, .timeout = 120)
{
    const char *before = "SELECT count(*) FROM owners";
    struct http_result r = put_owner("bad-one", domain_body(pem_of(make_cert("leaf", false, -60, 86400))));
    expect_refusal(r, 422, "the owner is invalid", "/brski/domain_certs/0",
                   "is neither a CA certificate (basicConstraints CA:TRUE) nor a registrar "
                   "certificate (id-kp-cmcRA)");
    X509 *old = make_cert("old CA", true, -7200, -3600);
    char when[32];
    ASN1_TIME_print(BIO_new(BIO_s_null()), X509_get0_notAfter(old));
    struct tm tm;
    ASN1_TIME_to_tm(X509_get0_notAfter(old), &tm);
    strftime(when, sizeof(when), "expired on %Y-%m-%dT%H:%M:%SZ", &tm);
    r = put_owner("bad-one", domain_body(pem_of(old)));
    expect_refusal(r, 422, "the owner is invalid", "/brski/domain_certs/0", when);
    r = put_owner("bad-one", "{\"brski\": {\"domain_certs\": [\"-----BEGIN CERTIFICATE-----\\nnonsense\\n-----END CERTIFICATE-----\\n\"]}}");
    expect_refusal(r, 422, "the owner is invalid", "/brski/domain_certs/0", "is not a PEM certificate");
    char *two;
    cr_assert(asprintf(&two, "%s%s", pem_of(make_cert("a", true, -60, 86400)), pem_of(make_cert("b", true, -60, 86400))) > 0);
    r = put_owner("bad-one", domain_body(two));
    expect_refusal(r, 422, "the owner is invalid", "/brski/domain_certs/0", "holds more than one certificate");
    r = put_owner("bad-one", "{\"brski\": {\"domain_certs\": \"x\"}}");
    expect_refusal(r, 422, "the owner is invalid", "/brski/domain_certs", "must be an array of 1 to 16 PEM certificates");
    r = put_owner("Bad-One", "{}");
    expect_refusal(r, 422, "the owner_id in the path is invalid", "/owner_id", "must be 1 to 64 of a-z 0-9 . _ -");
    r = put_owner("bad-one", "{\"display_name\": \"x\", \"colour\": \"red\"}");
    expect_refusal(r, 422, "the owner is invalid", "/colour", "unknown field");
    cr_assert_str_eq(count(before), "0");
    cr_assert_str_eq(count("SELECT count(*) FROM audit_events WHERE outcome = 'refused' AND action = 'owner.put'"), "7");
}

Test(owners, a_domain_certificate_belongs_to_one_owner, .init = start, .fini = stop, .timeout = 120)
{
    char *body = domain_body(pem_of(make_cert("Shared CA", true, -60, 86400)));
    cr_assert_eq(put_owner("first", body).status, 201);
    struct http_result r = put_owner("second", body);
    expect_refusal(r, 409, "a domain certificate belongs to another owner", "/brski/domain_certs/0",
                   "is registered to owner \\\"first\\\"");
    cr_assert_str_eq(count("SELECT count(*) FROM owners WHERE owner_id = 'second'"), "0");
    /* deleting the first frees it */
    struct http_opts del = {.management = true, .method = "DELETE", .bearer = token};
    cr_assert_eq(http(&proc, "/api/v1/owners/first", &del).status, 204);
    cr_assert_eq(put_owner("second", body).status, 201);
}

static char *file_text(const char *path)
{
    char *t = read_text(path);
    cr_assert(*t, "cannot read %s", path);
    return t;
}

Test(owners, conveyed_information_is_validated_against_the_yang_module, .init = start, .fini = stop,
     .timeout = 120)
{
    char *root = strdup(env_or_die("MASAD_TEST_ROOT")), *path, *body;
    cr_assert(asprintf(&path, "%s/tests/data/yang/conveyed-info-redirect-valid.json", root) > 0);
    cr_assert(asprintf(&body, "{\"sztp\": {\"conveyed_information\": %s}}", file_text(path)) > 0);
    struct http_result r = put_owner("sztp-corp", body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert(strstr(r.body, "\"sztp\":{\"conveyed_information\":{\"ietf-sztp-conveyed-info:redirect-information\":{\"bootstrap-server\":[{\"address\":\"sztp2.example.com\""), "%s", r.body);

    cr_assert(asprintf(&path, "%s/tests/data/yang/conveyed-info-invalid.json", root) > 0);
    cr_assert(asprintf(&body, "{\"sztp\": {\"conveyed_information\": %s}}", file_text(path)) > 0);
    r = put_owner("sztp-corp", body);
    expect_refusal(r, 422, "the owner is invalid",
                   "/sztp/conveyed_information/ietf-sztp-conveyed-info:onboarding-information/configuration-handling",
                   "Must condition \\\"../configuration\\\" not satisfied.");
    r = put_owner("sztp-corp", "{\"sztp\": {\"conveyed_information\": {\"ietf-sztp-conveyed-info:redirect-information\": {\"bootstrap-server\": [{\"port\": 1}]}}}}");
    cr_assert_eq(r.status, 422, "%s", r.body);
    cr_assert(strstr(r.body, "\"pointer\":\"/sztp/conveyed_information"), "%s", r.body);
    cr_assert_str_eq(count("SELECT sztp_conveyed_information->'ietf-sztp-conveyed-info:redirect-information'->'bootstrap-server'->0->>'address' FROM owners"), "sztp2.example.com");
}

/* The owner's chain and key from the test PKI: a registrar certificate and its domain CA. */
static void make_owner_chain(const char *name, char **leaf, char **ca, char **key)
{
    char *prefix = tmp_path("owner-%s", name), *out;
    cr_assert_eq(sh(&out, "%s/pki.sh registrar %s %s %s", env_or_die("MASAD_TEST_DEV"),
                    env_or_die("MASAD_TEST_PKI"), name, prefix), 0, "%s", out);
    cr_assert(asprintf(leaf, "%s.crt", prefix) > 0);
    cr_assert(asprintf(ca, "%s-ca.crt", prefix) > 0);
    cr_assert(asprintf(key, "%s.key", prefix) > 0);
}

static char *sign_conveyed(const char *content_file, const char *oid, const char *leaf, const char *key)
{
    char *der = tmp_path("signed-%s.der", oid), *b64;
    char *out;
    cr_assert_eq(sh(&out, "openssl cms -sign -binary -nodetach -outform DER -econtent_type %s "
                          "-signer %s -inkey %s -in %s -out %s",
                    oid, leaf, key, content_file, der), 0, "%s", out);
    cr_assert_eq(sh(&b64, "base64 -w0 %s", der), 0);
    return b64;
}

static char *signed_body(const char *leaf, const char *ca, const char *b64)
{
    char *body, *l = json_string_of(file_text(leaf)), *c = json_string_of(file_text(ca));
    cr_assert(asprintf(&body, "{\"sztp\": {\"owner_certificate\": [%s, %s], "
                              "\"signed_conveyed_information\": \"%s\"}}", l, c, b64) > 0);
    return body;
}

Test(owners, signed_conveyed_information_is_verified, .init = start, .fini = stop, .timeout = 120)
{
    char *leaf, *ca, *key, *content;
    make_owner_chain("signer-corp", &leaf, &ca, &key);
    cr_assert(asprintf(&content, "%s/tests/data/yang/conveyed-info-redirect-valid.json",
                       env_or_die("MASAD_TEST_ROOT")) > 0);
    char *good = sign_conveyed(content, "1.2.840.113549.1.9.16.1.43", leaf, key);
    struct http_result r = put_owner("signer-corp", signed_body(leaf, ca, good));
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert(strstr(r.body, "\"signed_conveyed_information\":\""), "%s", r.body);
    cr_assert(strstr(r.body, "\"owner_certificate\":[\"-----BEGIN CERTIFICATE-----\\n"), "%s", r.body);

    /* signed by a key that is not the first owner certificate's */
    char *other_leaf, *other_ca, *other_key;
    make_owner_chain("other-corp", &other_leaf, &other_ca, &other_key);
    char *foreign = sign_conveyed(content, "1.2.840.113549.1.9.16.1.43", other_leaf, other_key);
    r = put_owner("signer-corp", signed_body(leaf, ca, foreign));
    expect_refusal(r, 422, "the owner is invalid", "/sztp/signed_conveyed_information",
                   "signature does not verify with the owner certificate chain");
    /* the wrong content type (id-data) */
    char *data = sign_conveyed(content, "1.2.840.113549.1.7.1", leaf, key);
    r = put_owner("signer-corp", signed_body(leaf, ca, data));
    expect_refusal(r, 422, "the owner is invalid", "/sztp/signed_conveyed_information",
                   "has content type 1.2.840.113549.1.7.1, not id-ct-sztpConveyedInfoJSON or XML");
    /* content that breaks the YANG module */
    char *bad;
    cr_assert(asprintf(&bad, "%s/tests/data/yang/conveyed-info-invalid.json", env_or_die("MASAD_TEST_ROOT")) > 0);
    char *invalid = sign_conveyed(bad, "1.2.840.113549.1.9.16.1.43", leaf, key);
    r = put_owner("signer-corp", signed_body(leaf, ca, invalid));
    expect_refusal(r, 422, "the owner is invalid",
                   "/sztp/signed_conveyed_information/ietf-sztp-conveyed-info:onboarding-information/configuration-handling",
                   "Must condition");
    /* not base64 of CMS; no owner certificate */
    r = put_owner("signer-corp", signed_body(leaf, ca, "bm90IGNtcw=="));
    expect_refusal(r, 422, "the owner is invalid", "/sztp/signed_conveyed_information", "is not a DER CMS structure");
    char *no_chain;
    cr_assert(asprintf(&no_chain, "{\"sztp\": {\"signed_conveyed_information\": \"%s\"}}", good) > 0);
    r = put_owner("signer-corp", no_chain);
    expect_refusal(r, 422, "the owner is invalid", "/sztp/owner_certificate",
                   "is required with signed_conveyed_information");
    /* a chain in the wrong order */
    char *body, *l = json_string_of(file_text(leaf)), *c = json_string_of(file_text(ca));
    cr_assert(asprintf(&body, "{\"sztp\": {\"owner_certificate\": [%s, %s]}}", c, l) > 0);
    r = put_owner("signer-corp", body);
    expect_refusal(r, 422, "the owner is invalid", "/sztp/owner_certificate",
                   "certificate 0 is not issued by certificate 1");
    /* nothing but the first, good version was stored */
    cr_assert_str_eq(count("SELECT count(*) FROM owners"), "1");
    cr_assert_str_eq(count("SELECT translate(encode(sztp_signed_conveyed_info, 'base64'), E'\\n', '') FROM owners"), good);
}
