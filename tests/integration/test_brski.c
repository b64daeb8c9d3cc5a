/*
 * The BRSKI MASA (docs/brski.md, RFC 8995), black-box: a real masad, owners,
 * devices and sales records made through the management API, voucher-requests
 * built by tests/tools/brski_client.h (correct ones and ones with every fault),
 * vouchers checked with the client library and with the openssl command line,
 * and the database inspected for what was (not) stored and audited.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libgen.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "brski_client.h"
#include "harness.h"

#define VOUCHER_TYPE "application/voucher-cms+json"
#define TEXT_TYPE "text/plain; charset=utf-8"
#define LIFETIME 1209600 /* brski/nonceless-voucher-lifetime's default */
#define NOTHING_LEFT_OUT \
    "{\"nonced duplicates\":\"0\",\"nonceless duplicates\":\"0\",\"arbitrary\":\"0\"}"

static const char *no_proximity_sentence =
    "the device has no recorded owner and the pledge's voucher-request does not name this registrar "
    "(proximity, RFC 8995 §5.5.5)";

static const char *nonceless_sentence =
    "a nonceless voucher-request must come from a registrar of a registered domain (RFC 8995 §5.5.4)";

static struct masad_proc proc;
static char *token;
static int caller; /* the test's line that called a helper */

static void start_with(const char *extra)
{
    struct masad_opts o = {.extra_config = extra};
    cr_assert(masad_start(&proc, &o), "masad did not start: %s", read_text(proc.stderr_path));
    token = make_token(&proc, "brski-test",
                       "devices:read,devices:write,owners:read,owners:write,ownership:write,audit:read");
}

static void start(void) { start_with(NULL); }

static void start_logged(void)
{
    start_with("\"masad-config:brski\": {\"unowned-devices\": \"logged-with-proximity\"}");
}

static void start_truncating(void)
{
    start_with("\"masad-config:brski\": {\"audit-log\": {\"nonced-per-domain\": 2,"
               " \"nonceless-per-domain\": 1, \"max-events\": 3}}");
}

static void stop(void) { masad_stop_expect_clean(&proc); }

/* the first value of a query as the schema owner, "NULL" for none / SQL NULL */
#define q(...) owner_value(&proc, __VA_ARGS__)

/* ---- the test PKI ---- */

struct domain {
    char *name;
    char *chain, *key;              /* the registrar (cmcRA) and its domain CA */
    char *leaf;                     /* the registrar certificate alone */
    char *ca, *ca_key;              /* the domain CA */
    char *nocmcra_chain, *nocmcra_key;
};

struct device {
    char *serial;
    char *chain, *key;              /* the IDevID and the IDevID CA */
    char *leaf;
};

static char *unique(const char *what)
{
    static unsigned n;
    return fmt("%s-%d-%u", what, (int)getpid(), n++);
}

static struct domain make_domain(const char *what)
{
    struct domain d = {.name = unique(what)};
    char *prefix = tmp_path("dom-%s", d.name), *out;
    cr_assert_eq(sh(&out, "%s/pki.sh registrar %s %s %s", env_or_die("MASAD_TEST_DEV"),
                    env_or_die("MASAD_TEST_PKI"), d.name, prefix), 0, "%s", out);
    d.chain = fmt("%s-chain.crt", prefix);
    d.key = fmt("%s.key", prefix);
    d.leaf = fmt("%s.crt", prefix);
    d.ca = fmt("%s-ca.crt", prefix);
    d.ca_key = fmt("%s-ca.key", prefix);
    d.nocmcra_chain = fmt("%s-nocmcra-chain.crt", prefix);
    d.nocmcra_key = fmt("%s-nocmcra.key", prefix);
    return d;
}

static struct device make_device_in(const char *pki_dir, const char *serial)
{
    struct device v = {.serial = strdup(serial)};
    char *prefix = tmp_path("dev-%s-%s", serial, pki_dir == NULL ? "m" : "o"), *out;
    cr_assert_eq(sh(&out, "%s/pki.sh idevid %s %s %s", env_or_die("MASAD_TEST_DEV"),
                    pki_dir ? pki_dir : env_or_die("MASAD_TEST_PKI"), serial, prefix),
                 0, "%s", out);
    v.chain = fmt("%s-chain.crt", prefix);
    v.key = fmt("%s.key", prefix);
    v.leaf = fmt("%s.crt", prefix);
    return v;
}

static struct device make_device(const char *what) { return make_device_in(NULL, unique(what)); }

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert(x, "no certificate in %s", path);
    return x;
}

static char *cert_der_base64(const char *path)
{
    X509 *x = load_cert(path);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    cr_assert(n > 0);
    char *b64 = brski_base64(der, (size_t)n);
    OPENSSL_free(der);
    X509_free(x);
    return b64;
}

/* RFC 8995 §5.8.2: the domainID, the pinned certificate's subject key identifier */
static char *cert_ski_base64(const char *path)
{
    X509 *x = load_cert(path);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
    cr_assert(ski, "%s has no subject key identifier", path);
    char *b64 = brski_base64(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski));
    X509_free(x);
    return b64;
}

static time_t cert_not_after(const char *path)
{
    X509 *x = load_cert(path);
    struct tm tm;
    cr_assert(ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1);
    X509_free(x);
    return timegm(&tm);
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert(k, "no key in %s", path);
    return k;
}

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    cr_assert(ext, "extension %d=%s", nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
}

/* A certificate issued by ca for key, subject O=org (unless NULL), CN=cn,
 * valid from `from` to `to` seconds from now; v3 set for its extensions. */
static X509 *new_cert(X509 *ca, EVP_PKEY *key, const char *org, const char *cn, long from, long to,
                      X509V3_CTX *v3)
{
    X509 *x = X509_new();
    static long issued;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL) * 100 + issued++);
    X509_gmtime_adj(X509_getm_notBefore(x), from);
    X509_gmtime_adj(X509_getm_notAfter(x), to);
    if (org)
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "O", MBSTRING_UTF8,
                                   (const unsigned char *)org, -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509_set_pubkey(x, key);
    X509V3_set_ctx_nodb(v3);
    X509V3_set_ctx(v3, ca, x, NULL, NULL, 0);
    return x;
}

/* Another registrar certificate (cmcRA) of domain d for the registrar's key,
 * valid from `from` to `to` seconds from now; returns a PEM file of it and
 * the domain CA. */
static char *issue_registrar(const struct domain *d, const char *tag, long from, long to)
{
    X509 *ca = load_cert(d->ca);
    EVP_PKEY *ca_key = load_key(d->ca_key), *key = load_key(d->key);
    X509V3_CTX v3;
    X509 *x = new_cert(ca, key, d->name, fmt("%s %s registrar", d->name, tag), from, to, &v3);
    add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, &v3, NID_key_usage, "critical,digitalSignature");
    add_ext(x, &v3, NID_ext_key_usage, "clientAuth,serverAuth,1.3.6.1.5.5.7.3.28");
    add_ext(x, &v3, NID_subject_key_identifier, "hash");
    add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
    cr_assert(X509_sign(x, ca_key, EVP_sha256()) > 0);
    char *path = tmp_path("dom-%s-%s-chain.crt", d->name, tag);
    FILE *f = fopen(path, "w");
    cr_assert(f && PEM_write_X509(f, x) == 1 && PEM_write_X509(f, ca) == 1);
    fclose(f);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    return path;
}

/* the subject (or issuer) name of the certificate in path, printed with flags */
static char *cert_name(const char *path, bool issuer, unsigned long flags)
{
    X509 *x = load_cert(path);
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, issuer ? X509_get_issuer_name(x) : X509_get_subject_name(x), 0, flags);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *name = fmt("%.*s", (int)n, data);
    BIO_free(b);
    X509_free(x);
    return name;
}

static char *cert_actor(const char *path)
{
    return fmt("registrar:%s", cert_name(path, false, XN_FLAG_RFC2253));
}

static char *hex_of(const unsigned char *p, size_t n)
{
    char *out = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
    out[2 * n] = 0;
    return out;
}

static char *sha256_hex(const unsigned char *p, size_t n)
{
    unsigned char md[32];
    unsigned int len;
    cr_assert(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) == 1);
    return hex_of(md, len);
}

/* "YYYY-MM-DDTHH:MM:SSZ" → time_t */
static time_t parse_time(const char *s)
{
    struct tm tm = {0};
    cr_assert(s && strlen(s) == 20, "not a date-and-time: %s", s ? s : "(none)");
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cr_assert(end && !*end, "not a date-and-time: %s", s);
    return timegm(&tm);
}

static char *format_time(time_t t)
{
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return strdup(buf);
}

/* ---- the management API ---- */

static struct http_result api(const char *method, const char *path, const char *body)
{
    struct http_opts o = {.management = true, .method = method, .body = body,
                          .body_len = body ? strlen(body) : 0,
                          .content_type = body ? "application/json" : NULL, .bearer = token};
    return http(&proc, path, &o);
}

static void api_ok(const char *method, const char *path, const char *body)
{
    struct http_result r = api(method, path, body);
    cr_assert(r.status >= 200 && r.status < 300, "%s %s: %ld %s", method, path, r.status, r.body);
    http_result_free(&r);
}

static void put_owner(const char *id, const struct domain *d)
{
    char *body = fmt("{\"display_name\": \"%s\", \"brski\": {\"domain_certs\": [%s]}}", id,
                     json_string_of(read_text(d->ca)));
    api_ok("PUT", fmt("/api/v1/owners/%s", id), body);
}

static void put_device(const struct device *v)
{
    api_ok("PUT", fmt("/api/v1/devices/%s", v->serial), "{\"product\": \"p\"}");
}

static void assign(const struct device *v, const char *owner)
{
    api_ok("PUT", fmt("/api/v1/devices/%s/ownership", v->serial), fmt("{\"owner_id\": \"%s\"}", owner));
}

static void release(const struct device *v)
{
    api_ok("DELETE", fmt("/api/v1/devices/%s/ownership", v->serial), NULL);
}

/* ---- BRSKI requests ---- */

static struct brski_client_opts opts(const struct device *v, const struct domain *d)
{
    return (struct brski_client_opts){.pledge_cert = v->chain, .pledge_key = v->key,
                                      .registrar_cert = d->chain, .registrar_key = d->key};
}

struct answer {
    long status;
    unsigned char *body;
    size_t len;
    char *type;
};

static unsigned char *build(const struct brski_client_opts *o, size_t *len)
{
    unsigned char *der;
    char err[512];
    cr_assert_eq(brski_build_rvr(o, &der, len, err, sizeof(err)), 0, "building the RVR: %s", err);
    return der;
}

/* the TLS client certificate (PEM chain) and key every request presents
 * while set, as a registrar does (RFC 8995 §5.4); NULL: none */
static const char *tls_cert, *tls_key;

static struct answer post_to(const char *endpoint, const unsigned char *body, size_t len,
                             const char *content_type, const char *accept)
{
    struct answer a;
    char *url = fmt("https://127.0.0.1:%u/.well-known/brski/%s", proc.device_port, endpoint);
    char *ca = pki_path("root-ca.crt");
    a.status = brski_post(url, ca, tls_cert, tls_key, content_type, accept, body, len, &a.body,
                          &a.len, &a.type);
    cr_assert_neq(a.status, 0, "POST %s: %s", url, brski_last_post_error());
    free(url);
    free(ca);
    return a;
}

static struct answer post(const unsigned char *body, size_t len)
{
    return post_to("requestvoucher", body, len, NULL, VOUCHER_TYPE);
}

static long voucher_count(void) { return atol(q("SELECT count(*) FROM vouchers")); }

/* The last audit event is the refusal: action, outcome, status and sentence. */
static void expect_refusal_audited(const char *action, long status, const char *sentence)
{
    cr_assert_str_eq(q("SELECT action || ' ' || outcome || ' ' || (detail::json->>'status')"
                       " FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     fmt("%s refused %ld", action, status));
    cr_assert_str_eq(q("SELECT detail::json->>'reason' FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     sentence);
}

/* A refusal (docs/brski.md, Refusals): the status, one text/plain sentence,
 * a voucher.refuse audit event and no voucher stored. */
static void expect_refused_body_at(const unsigned char *body, size_t len, const char *content_type,
                                   const char *accept, long status, const char *sentence)
{
    long before = voucher_count();
    struct answer a = post_to("requestvoucher", body, len, content_type, accept);
    cr_assert_eq(a.status, status, "line %d: want %ld (%s), got %ld: %s", caller, status, sentence,
                 a.status, a.status == 200 ? "a voucher" : (char *)a.body);
    cr_assert_str_eq(a.type, TEXT_TYPE);
    cr_assert_str_eq((char *)a.body, fmt("%s\n", sentence));
    expect_refusal_audited("voucher.refuse", status, sentence);
    cr_assert_eq(voucher_count(), before, "a refused request stored a voucher");
}

static void expect_refused_at(const struct brski_client_opts *o, long status, const char *sentence)
{
    size_t len;
    unsigned char *der = build(o, &len);
    expect_refused_body_at(der, len, NULL, VOUCHER_TYPE, status, sentence);
    free(der);
}

/* What a voucher must say. */
struct expect {
    const char *assertion;
    const char *pinned;             /* PEM file of the pinned-domain-cert */
    const char *registrar;          /* PEM file of the registrar certificate (for expires-on) */
    const char *idevid_issuer;      /* base64, or NULL: none */
};

struct voucher {
    char *json;
    char *nonce;                    /* base64 of the PVR's nonce, or NULL */
    char *created_on;
    unsigned char *cms, *rvr;
    size_t cms_len, rvr_len;
};

static char *leaf(const char *json, const char *name) { return brski_voucher_leaf(json, name); }

/* openssl cms -verify, as docs/brski.md says a voucher verifies */
static void openssl_verifies(const unsigned char *cms, size_t len, const char *json)
{
    char *in = write_temp("voucher.der", cms, len), *out = fmt("%s.json", in), *text;
    char *ca = pki_path("root-ca.crt");
    cr_assert_eq(sh(&text, "openssl cms -verify -inform DER -in %s -binary -CAfile %s -purpose any"
                           " -out %s", in, ca, out), 0, "openssl cms -verify: %s", text);
    cr_assert(strstr(text, "Verification successful"), "%s", text);
    cr_assert_str_eq(read_text(out), json);
    cr_assert_eq(sh(&text, "openssl cms -cmsout -print -inform DER -in %s", in), 0, "%s", text);
    /* id-ct-animaJSONVoucher, which OpenSSL 3.0 has no name for */
    cr_assert(strstr(text, "eContentType: undefined (1.2.840.113549.1.9.16.1.40)\n"), "%s", text);
}

/* Posts the request of o, expects a voucher and checks every leaf. */
static struct voucher expect_voucher_at(const struct brski_client_opts *o, const struct expect *e)
{
    struct voucher v = {0};
    long before = voucher_count();
    time_t asked = time(NULL);
    v.rvr = build(o, &v.rvr_len);
    size_t nonce_len;
    const unsigned char *nonce = brski_last_nonce(&nonce_len);
    /* RFC 8995 §5.5: a registrar that leaves the nonce out asks nonceless */
    if (o->registrar_omits_nonce)
        nonce = NULL;
    v.nonce = nonce ? brski_base64(nonce, nonce_len) : NULL;
    char *nonce_text = nonce ? strdup(brski_last_nonce_text()) : NULL;
    const char *serial = brski_last_serial();
    struct answer a = post(v.rvr, v.rvr_len);
    cr_assert_eq(a.status, 200, "line %d: want a voucher, got %ld %s", caller, a.status,
                 a.status == 200 ? "" : (char *)a.body);
    cr_assert_str_eq(a.type, VOUCHER_TYPE);
    v.cms = a.body;
    v.cms_len = a.len;
    char err[512];
    cr_assert_eq(brski_verify_voucher(a.body, a.len, pki_path("root-ca.crt"), &v.json, err,
                                      sizeof(err)), 0, "%s", err);
    openssl_verifies(a.body, a.len, v.json);

    cr_assert(!strncmp(v.json, "{\"ietf-voucher:voucher\":{", 25), "%s", v.json);
    cr_assert_str_eq(leaf(v.json, "serial-number"), serial);
    cr_assert_str_eq(leaf(v.json, "assertion"), e->assertion);
    cr_assert_str_eq(leaf(v.json, "pinned-domain-cert"), cert_der_base64(e->pinned));
    v.created_on = leaf(v.json, "created-on");
    time_t created = parse_time(v.created_on);
    cr_assert(created >= asked - 1 && created <= time(NULL) + 1, "created-on %s", v.created_on);
    char *expires = leaf(v.json, "expires-on");
    if (v.nonce) {
        /* the pledge's own text: a pledge compares strings */
        cr_assert_str_eq(leaf(v.json, "nonce"), nonce_text);
        cr_assert_null(expires, "a nonced voucher has expires-on %s", expires);
    } else {
        cr_assert_null(leaf(v.json, "nonce"), "%s", v.json);
        cr_assert_not_null(expires, "a nonceless voucher has no expires-on: %s", v.json);
        /* the configured lifetime, never beyond the registrar certificate */
        time_t until = created + LIFETIME, not_after = cert_not_after(e->registrar);
        if (not_after < until)
            until = not_after;
        cr_assert_str_eq(expires, format_time(until));
        cr_assert(parse_time(expires) <= not_after);
    }
    if (e->idevid_issuer)
        cr_assert_str_eq(leaf(v.json, "idevid-issuer"), e->idevid_issuer);
    else
        cr_assert_null(leaf(v.json, "idevid-issuer"), "%s", v.json);

    /* stored with the request it answered, and audited */
    cr_assert_eq(voucher_count(), before + 1);
    const char *last = "FROM vouchers ORDER BY id DESC LIMIT 1";
    cr_assert_str_eq(q("SELECT serial_number || ' ' || protocol || ' ' || assertion %s", last),
                     fmt("%s brski %s", serial, e->assertion));
    cr_assert_str_eq(q("SELECT translate(encode(nonce, 'base64'), E'\\n', '') %s", last),
                     v.nonce ? v.nonce : "NULL");
    cr_assert_str_eq(q("SELECT encode(sha256(request), 'hex') %s", last),
                     sha256_hex(v.rvr, v.rvr_len));
    cr_assert_str_eq(q("SELECT encode(sha256(voucher), 'hex') %s", last),
                     sha256_hex(a.body, a.len));
    cr_assert_str_eq(q("SELECT domain_id %s", last), cert_ski_base64(e->pinned));
    char *subject = cert_actor(o->registrar_cert) + strlen("registrar:");
    char *registrar = q("SELECT registrar %s", last);
    cr_assert(strlen(registrar) >= strlen(subject) &&
              !strcmp(registrar + strlen(registrar) - strlen(subject), subject),
              "registrar %s, want the subject %s", registrar, subject);
    cr_assert_str_eq(q("SELECT expires_on IS NULL %s", last), v.nonce ? "t" : "f");
    cr_assert_str_eq(q("SELECT action || ' ' || outcome || ' ' || serial_number || ' ' || actor"
                       " FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     fmt("voucher.issue ok %s %s", serial, cert_actor(o->registrar_cert)));
    cr_assert_str_eq(q("SELECT detail::json->>'assertion' FROM audit_events"
                       " ORDER BY seq DESC LIMIT 1"), e->assertion);
    return v;
}

/* the line of the test that called, for the failure messages */
#define expect_refused_body(...) (caller = __LINE__, expect_refused_body_at(__VA_ARGS__))
#define expect_refused(...) (caller = __LINE__, expect_refused_at(__VA_ARGS__))
#define expect_voucher(...) (caller = __LINE__, expect_voucher_at(__VA_ARGS__))

static int audit_verify(char **out)
{
    char *ca = pki_path("root-ca.crt");
    const char *env[] = {"MASAD_DATABASE_URL", proc.db.app_url, NULL};
    const char *args[] = {"audit", "verify", "--ca", ca, NULL};
    return masad_run(out, env, args);
}

/* RFC 8995 §5.8 and docs/audit.md: every decision left the chain intact */
static void expect_audit_intact(void)
{
    char *out;
    cr_assert_eq(audit_verify(&out), 0, "%s", out);
    cr_assert(strstr(out, "audit log intact: "), "%s", out);
}

/* ---- 1, 2: vouchers for the owner ---- */

Test(brski, the_owner_gets_vouchers, .init = start, .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme");
    struct device dev = make_device("OWN");
    put_owner("acme", &acme);
    put_device(&dev);
    assign(&dev, "acme");
    struct brski_client_opts o = opts(&dev, &acme);
    struct expect e = {"proximity", acme.ca, acme.leaf, NULL};

    /* proximity: the pledge named this registrar */
    struct voucher v = expect_voucher(&o, &e);
    cr_assert_str_eq(q("SELECT owner_id FROM vouchers ORDER BY id DESC LIMIT 1"), "acme");
    cr_assert_str_eq(q("SELECT owner_id || ' ' || (detail::json->>'basis') || ' ' ||"
                       " (detail::json->>'proximity') FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "acme owner true");
    struct http_result r = api(NULL, fmt("/api/v1/devices/%s/vouchers", dev.serial), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, fmt("\"assertion\":\"proximity\",\"nonce\":\"%s\",\"owner_id\":\"acme\"",
                                 v.nonce)), "%s", r.body);
    cr_assert(strstr(r.body, "\"protocol\":\"brski\",\"format\":\"cms-json\"}"), "%s", r.body);
    cr_assert(strstr(r.body, "\"expires_on\":null"), "%s", r.body);
    http_result_free(&r);

    /* without proximity the owner's registrar is still the owner's: verified */
    o.no_proximity = true;
    e.assertion = "verified";
    expect_voucher(&o, &e);
    o.no_proximity = false;
    e.assertion = "proximity";

    /* nonceless: expires-on after the configured lifetime, no nonce */
    o.nonceless = true;
    expect_voucher(&o, &e);
    o.nonceless = false;

    /* a registrar certificate that ends tomorrow: the nonceless voucher ends with it */
    struct brski_client_opts shortlived = o;
    shortlived.registrar_cert = issue_registrar(&acme, "short", -60, 86400);
    shortlived.nonceless = true;
    struct expect es = {"proximity", acme.ca, shortlived.registrar_cert, NULL};
    v = expect_voucher(&shortlived, &es);
    cr_assert_str_eq(leaf(v.json, "expires-on"), format_time(cert_not_after(es.registrar)));

    /* 2: deployed clients' quirks are tolerated; the nonce is the same bytes */
    static const unsigned char odd[] = {0xfb, 0xff, 0xbf, 0x3e, 0x00, 0xfe,
                                        0x7f, 0x80, 0xff, 0xfa, 0x01};
    struct brski_client_opts quirk = o;
    quirk.econtent_id_data = true;
    expect_voucher(&quirk, &e);
    quirk = o;
    quirk.nonce_base64url = true;
    quirk.nonce = odd;
    quirk.nonce_len = sizeof(odd);
    v = expect_voucher(&quirk, &e);
    cr_assert_str_eq(v.nonce, "+/+/PgD+f4D/+gE=");
    /* echoed as the pledge wrote it (docs/brski.md, The voucher) */
    cr_assert_str_eq(leaf(v.json, "nonce"), "-_-_PgD-f4D_-gE");
    quirk = o;
    quirk.created_on_date_only = true;
    expect_voucher(&quirk, &e);

    /* idevid-issuer: the IDevID's authority key identifier is accepted and copied */
    X509 *idevid = load_cert(dev.leaf);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(idevid);
    cr_assert(aki);
    struct brski_client_opts issuer = o;
    issuer.idevid_issuer = true;
    struct expect ei = e;
    ei.idevid_issuer = brski_base64(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki));
    expect_voucher(&issuer, &ei);
    /* ... and so is RFC 8995's own reading, the issuer name (DER); the
     * voucher carries the authority key identifier all the same (RFC 8366 §5.3) */
    unsigned char *name = NULL;
    int name_len = i2d_X509_NAME(X509_get_issuer_name(idevid), &name);
    cr_assert(name_len > 0);
    issuer.idevid_issuer_value = name;
    issuer.idevid_issuer_len = (size_t)name_len;
    expect_voucher(&issuer, &ei);
    /* ... other bytes are refused */
    static const unsigned char wrong[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    issuer.idevid_issuer_value = wrong;
    issuer.idevid_issuer_len = sizeof(wrong);
    expect_refused(&issuer, 403, "idevid-issuer does not match the issuer of the pledge's IDevID");
    X509_free(idevid);

    cr_assert_str_eq(q("SELECT count(*) FROM vouchers WHERE serial_number = '%s'", dev.serial), "9");
    cr_assert_str_eq(q("SELECT count(*) FROM audit_events WHERE action = 'voucher.issue'"), "9");
    expect_audit_intact();
}

/* ---- 3: refusals ---- */

/* migrations/0010: a voucher is recorded, under the device's lock, only
 * while its ownership is the one the decision read; else nothing is */
Test(brski, a_voucher_is_recorded_only_for_the_ownership_it_was_decided_on, .init = start,
     .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme");
    struct device dev = make_device("STAMP");
    put_owner("acme", &acme);
    put_device(&dev);
    char *unowned = q("SELECT brski_ownership_stamp('%s')", dev.serial);
    assign(&dev, "acme");
    char *owned = q("SELECT brski_ownership_stamp('%s')", dev.serial);
    cr_assert_str_neq(unowned, owned);
    const char *record =
        "SELECT coalesce(brski_voucher_record('%s', '%s', 'acme', 'verified', NULL, 0, NULL,"
        " decode(repeat('00', 32), 'hex'), 'id', 'r', '\\x00', NULL, 'registrar:r', '{}',"
        " true)::text, 'none')";
    const char *vouchers = "SELECT count(*) FROM vouchers WHERE serial_number = '%s'";
    const char *events =
        "SELECT count(*) FROM audit_events WHERE action = 'voucher.issue' AND serial_number = '%s'";
    cr_assert_str_eq(q(record, unowned, dev.serial), "none");
    cr_assert_str_eq(q(vouchers, dev.serial), "0");
    cr_assert_str_eq(q(events, dev.serial), "0");
    cr_assert_str_neq(q(record, owned, dev.serial), "none");
    cr_assert_str_eq(q(vouchers, dev.serial), "1");
    cr_assert_str_eq(q(events, dev.serial), "1");
}

Test(brski, faulty_requests_are_refused, .init = start, .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme"), zenith = make_domain("zenith");
    struct device owned = make_device("REF"), theirs = make_device("THEIRS"),
                  unowned = make_device("NOBODY"), unknown = make_device("UNKNOWN");
    put_owner("acme", &acme);
    put_owner("zenith", &zenith);
    put_device(&owned);
    put_device(&theirs);
    put_device(&unowned);
    assign(&owned, "acme");
    assign(&theirs, "zenith");
    struct brski_client_opts o = opts(&owned, &acme), f;
    size_t len;
    unsigned char *good = build(&o, &len);

    /* the HTTP level */
    expect_refused_body(good, len, "text/plain", VOUCHER_TYPE, 415,
                        "the voucher-request must be sent as application/voucher-cms+json (RFC 8995 §5.5)");
    expect_refused_body(good, len, NULL, "application/json", 406,
                        "the answer is only available as application/voucher-cms+json (RFC 8995 §5.6)");
    size_t big_len = 65537; /* BRSKI_MAX_BODY + 1, below the edge's limit */
    unsigned char *big = malloc(big_len);
    memset(big, 0x30, big_len);
    expect_refused_body(big, big_len, NULL, VOUCHER_TYPE, 413,
                        "the voucher-request is larger than 65536 bytes");
    cr_assert_str_eq(q("SELECT actor FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "registrar:unidentified");
    static const char garbage[] = "this is not a CMS structure";
    expect_refused_body((const unsigned char *)garbage, strlen(garbage), NULL, VOUCHER_TYPE, 400,
                        "the registrar voucher-request is not a DER CMS structure");
    expect_refused_body(good, len / 2, NULL, VOUCHER_TYPE, 400,
                        "the registrar voucher-request is not a DER CMS structure");

    /* signatures and certificates */
    f = o;
    f.corrupt_rvr_signature = true;
    expect_refused(&f, 403, "the registrar voucher-request signature does not verify (verification failure)");
    f = o;
    f.corrupt_pvr_signature = true;
    expect_refused(&f, 403, "the pledge voucher-request signature does not verify (verification failure)");
    char *other_pki = tmp_path("other-manufacturer-%d", (int)getpid()), *out;
    cr_assert_eq(sh(&out, "env -u MASAD_PKCS11_URI -u MASAD_PKCS11_MODULE %s/pki.sh %s",
                    env_or_die("MASAD_TEST_DEV"), other_pki), 0, "%s", out);
    struct device impostor = make_device_in(other_pki, owned.serial);
    f = opts(&impostor, &acme);
    expect_refused(&f, 403, "the pledge voucher-request is not signed by a known device: the IDevID "
                            "certificate does not chain to a manufacturer trust anchor (unable to get "
                            "local issuer certificate)");
    f = o;
    f.registrar_cert = acme.nocmcra_chain;
    f.registrar_key = acme.nocmcra_key;
    expect_refused(&f, 403, "the registrar certificate lacks the id-kp-cmcRA extended key usage (RFC 8995 §5.5.4)");
    cr_assert_str_eq(q("SELECT actor FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     cert_actor(acme.nocmcra_chain));
    /* the registrar certificate must be within its validity period */
    f = o;
    f.registrar_cert = issue_registrar(&acme, "expired", -2 * 86400, -86400);
    expect_refused(&f, 403, fmt("the registrar certificate expired on %s",
                                format_time(cert_not_after(f.registrar_cert))));
    f.registrar_cert = issue_registrar(&acme, "future", 86400, 2 * 86400);
    X509 *future = load_cert(f.registrar_cert);
    struct tm tm;
    cr_assert(ASN1_TIME_to_tm(X509_get0_notBefore(future), &tm) == 1);
    X509_free(future);
    expect_refused(&f, 403, fmt("the registrar certificate is not valid before %s",
                                format_time(timegm(&tm))));

    /* one device, one nonce throughout (RFC 8995 §5.5.5, §5.5.6) */
    f = o;
    f.pvr_serial = "SOMEONE-ELSE";
    expect_refused(&f, 403, fmt("serial-number mismatch: the pledge voucher-request names "
                                "\"SOMEONE-ELSE\", its IDevID \"%s\"", owned.serial));
    f = o;
    f.rvr_serial = unowned.serial;
    expect_refused(&f, 403, fmt("serial-number mismatch: the registrar voucher-request names \"%s\", "
                                "the pledge's IDevID \"%s\"", unowned.serial, owned.serial));
    static const unsigned char other_nonce[16] = "another nonce!!";
    f = o;
    f.rvr_nonce = other_nonce;
    f.rvr_nonce_len = sizeof(other_nonce);
    expect_refused(&f, 403, "nonce mismatch: the registrar voucher-request's nonce differs from the "
                            "pledge's (RFC 8995 §5.5.6)");
    /* a nonce in the RVR when the pledge sent none */
    f = o;
    f.nonceless = true;
    f.rvr_nonce = other_nonce;
    f.rvr_nonce_len = sizeof(other_nonce);
    expect_refused(&f, 403, "nonce mismatch: the registrar voucher-request's nonce differs from the "
                            "pledge's (RFC 8995 §5.5.6)");

    /* the device and its owner */
    f = opts(&unknown, &acme);
    expect_refused(&f, 404, fmt("the MASA does not know the device \"%s\"", unknown.serial));
    f = opts(&theirs, &acme);
    expect_refused(&f, 403, "the device belongs to another owner than the registrar's domain");
    cr_assert_str_eq(q("SELECT serial_number FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     theirs.serial);
    f = opts(&unowned, &acme);
    expect_refused(&f, 403, "the device has no recorded owner");

    /* the registrar of an unknown domain, for an owned device */
    struct domain stranger = make_domain("stranger");
    f = opts(&owned, &stranger);
    expect_refused(&f, 403, "the device belongs to another owner than the registrar's domain");

    cr_assert_eq(voucher_count(), 0);
    cr_assert_str_eq(q("SELECT count(*) FROM audit_events WHERE action = 'voucher.refuse'"), "19");
    /* and the same request without a fault gets its voucher */
    struct expect e = {"proximity", acme.ca, acme.leaf, NULL};
    expect_voucher(&o, &e);
    expect_audit_intact();
}

/* ---- 3, 4: unowned devices, trust on first use, renewal ---- */

Test(brski, unowned_devices_logged_with_proximity_and_renewal, .init = start_logged, .fini = stop,
     .timeout = 120)
{
    struct domain tofu = make_domain("tofu");
    struct device first = make_device("TOFU"), shy = make_device("SHY");
    put_device(&first);
    put_device(&shy);
    struct domain someone = make_domain("someone");
    put_owner("someone", &someone);

    /* with proximity: logged, pinned to the top CA of the registrar's chain */
    struct brski_client_opts o = opts(&first, &tofu);
    struct expect e = {"logged", tofu.ca, tofu.leaf, NULL};
    expect_voucher(&o, &e);
    cr_assert_str_eq(q("SELECT owner_id FROM vouchers ORDER BY id DESC LIMIT 1"), "NULL");
    cr_assert_str_eq(q("SELECT detail::json->>'basis' FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "unowned-logged");

    /* without proximity, a device that never had a voucher is refused */
    struct brski_client_opts f = opts(&shy, &tofu);
    f.no_proximity = true;
    expect_refused(&f, 403, no_proximity_sentence);

    /* RFC 8995 §5.5.1: the same domain again, without proximity, is a renewal */
    o.no_proximity = true;
    expect_voucher(&o, &e);
    cr_assert_str_eq(q("SELECT detail::json->>'basis' FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "renewal");
    /* RFC 8995 §5.5.4: nonceless only to a registrar of a registered domain */
    o.nonceless = true;
    expect_refused(&o, 403, nonceless_sentence);
    o.nonceless = false;

    /* ... but not after an ownership change */
    assign(&first, "someone");
    release(&first);
    expect_refused(&o, 403, no_proximity_sentence);
    /* with proximity again it is trust on first use again */
    o.no_proximity = false;
    expect_voucher(&o, &e);
    cr_assert_str_eq(q("SELECT detail::json->>'basis' FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "unowned-logged");

    expect_audit_intact();
}

Test(brski, proximity_needs_the_registrars_signing_chain, .init = start_logged, .fini = stop,
     .timeout = 120)
{
    struct domain tofu = make_domain("tofu"), elsewhere = make_domain("elsewhere");
    struct device far = make_device("FAR");
    put_device(&far);
    /* the registrar's chain, and a certificate of another registrar beside it */
    char *padded = tmp_path("%s-padded.crt", tofu.name), *out;
    cr_assert_eq(sh(&out, "cat %s %s > %s", tofu.chain, elsewhere.leaf, padded), 0, "%s", out);
    struct brski_client_opts f = opts(&far, &tofu);
    f.registrar_cert = padded;
    f.proximity_cert = elsewhere.leaf;
    /* docs/brski.md: proximity holds when the public key of the pledge's
     * proximity-registrar-cert appears in the registrar's signing chain. A
     * certificate merely carried in the CMS (anyone can add one) is not in it. */
    expect_refused(&f, 403, no_proximity_sentence);
}

Test(brski, a_renewal_follows_the_devices_last_voucher, .init = start_logged, .fini = stop,
     .timeout = 120)
{
    struct domain first = make_domain("first"), second = make_domain("second");
    struct device dev = make_device("MOVED");
    put_device(&dev);
    /* trust on first use by one domain, then by another */
    struct brski_client_opts a = opts(&dev, &first), b = opts(&dev, &second);
    struct expect ea = {"logged", first.ca, first.leaf, NULL};
    struct expect eb = {"logged", second.ca, second.leaf, NULL};
    expect_voucher(&a, &ea);
    expect_voucher(&b, &eb);
    /* the domain of the last voucher renews without proximity */
    b.no_proximity = true;
    expect_voucher(&b, &eb);
    cr_assert_str_eq(q("SELECT detail::json->>'basis' FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "renewal");
    expect_audit_intact();
    /* docs/brski.md: a renewal is when "the last voucher pinned this same
     * certificate" (requestvoucher.c renewal(): "pinned to the same domain
     * certificate as the last one"); the device's last voucher pinned the
     * second domain, so the first domain gets no renewal. */
    a.no_proximity = true;
    expect_refused(&a, 403, no_proximity_sentence);
}

/* Sleeps until just after the start of the next second. */
static void next_second(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timespec wait = {0, 1000000000L - now.tv_nsec + 20000000L};
    if (wait.tv_nsec >= 1000000000L) {
        wait.tv_sec = 1;
        wait.tv_nsec -= 1000000000L;
    }
    nanosleep(&wait, NULL);
}

Test(brski, a_release_before_the_voucher_is_no_change_since, .init = start_logged, .fini = stop,
     .timeout = 120)
{
    struct domain acme = make_domain("acme");
    put_owner("acme", &acme);
    struct expect e = {"logged", acme.ca, acme.leaf, NULL};
    struct device dev = make_device("PREVSEC");
    put_device(&dev);
    assign(&dev, "acme");
    struct brski_client_opts o = opts(&dev, &acme);
    /* released, and a second later a logged voucher (trust on first use): the
     * same domain renews it without proximity */
    release(&dev);
    next_second();
    expect_voucher(&o, &e);
    o.no_proximity = true;
    expect_voucher(&o, &e);
    cr_assert_str_eq(q("SELECT detail::json->>'basis' FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "renewal");
    /* released, and within the same second a logged voucher (trust on first
     * use) pinned to the same domain certificate */
    for (int attempt = 0;; attempt++) {
        cr_assert(attempt < 10, "could not release and issue within one second");
        dev = make_device("SAMESEC");
        put_device(&dev);
        assign(&dev, "acme");
        o = opts(&dev, &acme);
        next_second();
        release(&dev);
        expect_voucher(&o, &e);
        if (!strcmp(q("SELECT date_trunc('second', valid_until) = (SELECT date_trunc('second', created_on)"
                      " FROM vouchers ORDER BY id DESC LIMIT 1) FROM ownership WHERE serial_number = '%s'",
                      dev.serial), "t"))
            break;
    }
    /* the release committed before the voucher's transaction began */
    cr_assert_str_eq(q("SELECT valid_until < (SELECT max(at) FROM audit_events WHERE action ="
                       " 'voucher.issue') FROM ownership WHERE serial_number = '%s'", dev.serial), "t");
    expect_audit_intact();
    /* docs/brski.md: with no ownership change since the last voucher, the same
     * domain renews without proximity, even when the change happened earlier
     * in the same second as the voucher (the times are compared to the
     * microsecond). */
    o.no_proximity = true;
    expect_voucher(&o, &e);
}

/* ---- 5: the audit log ---- */

static yajl_val parse_log(const struct answer *a)
{
    char err[256];
    yajl_val root = yajl_tree_parse((const char *)a->body, err, sizeof(err));
    cr_assert(root, "%s: %s", err, (char *)a->body);
    return root;
}

static const char *str_at(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val s = yajl_tree_get(v, path, yajl_t_any);
    cr_assert(s, "no %s", key);
    return YAJL_IS_NULL(s) ? NULL : YAJL_GET_STRING(s);
}

static yajl_val events_of(yajl_val root, size_t want)
{
    const char *path[] = {"events", NULL};
    yajl_val events = yajl_tree_get(root, path, yajl_t_array);
    cr_assert(events);
    cr_assert_eq(YAJL_GET_ARRAY(events)->len, want, "%zu events", YAJL_GET_ARRAY(events)->len);
    return events;
}

/* One event of the log: the voucher's date, domain, nonce, assertion and count. */
static void expect_event(yajl_val events, size_t i, const struct voucher *v, const char *domain_id,
                         const char *assertion, const char *truncated)
{
    yajl_val ev = YAJL_GET_ARRAY(events)->values[i];
    cr_assert(YAJL_IS_OBJECT(ev));
    cr_assert_eq(YAJL_GET_OBJECT(ev)->len, 5);
    /* RFC 3339 with milliseconds: the voucher's created-on to the second */
    cr_assert(!strncmp(str_at(ev, "date"), v->created_on, 19), "%s vs %s", str_at(ev, "date"),
              v->created_on);
    cr_assert_eq(strlen(str_at(ev, "date")), 24);
    cr_assert_str_eq(str_at(ev, "domainID"), domain_id);
    if (v->nonce)
        cr_assert_str_eq(str_at(ev, "nonce"), v->nonce);
    else
        cr_assert_null(str_at(ev, "nonce"));
    cr_assert_str_eq(str_at(ev, "assertion"), assertion);
    cr_assert_str_eq(str_at(ev, "truncated"), truncated);
}

static struct answer ask_log(const struct brski_client_opts *o)
{
    size_t len;
    unsigned char *der = build(o, &len);
    struct answer a = post_to("requestauditlog", der, len, NULL, "application/json");
    free(der);
    return a;
}

static yajl_val expect_log(const struct brski_client_opts *o, const char *truncation)
{
    struct answer a = ask_log(o);
    cr_assert_eq(a.status, 200, "%ld %s", a.status, (char *)a.body);
    cr_assert_str_eq(a.type, "application/json");
    const char *head = "{\"version\":\"1\",\"events\":[";
    cr_assert(!strncmp((char *)a.body, head, strlen(head)), "%s", (char *)a.body);
    char *tail = fmt("],\"truncation\":%s}", truncation);
    cr_assert(a.len > strlen(tail) && !strcmp((char *)a.body + a.len - strlen(tail), tail),
              "want %s at the end of %s", tail, (char *)a.body);
    return parse_log(&a);
}

Test(brski, the_audit_log_goes_to_the_owners_domain, .init = start, .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme"), zenith = make_domain("zenith"),
                  stranger = make_domain("stranger");
    struct device dev = make_device("LOG");
    put_owner("acme", &acme);
    put_owner("zenith", &zenith);
    put_device(&dev);
    assign(&dev, "acme");
    struct brski_client_opts o = opts(&dev, &acme);
    struct expect e = {"proximity", acme.ca, acme.leaf, NULL};
    struct voucher v1 = expect_voucher(&o, &e);
    o.no_proximity = true;
    e.assertion = "verified";
    struct voucher v2 = expect_voucher(&o, &e);
    o.no_proximity = false;

    yajl_val log = expect_log(&o, NOTHING_LEFT_OUT);
    cr_assert_str_eq(str_at(log, "version"), "1");
    yajl_val events = events_of(log, 2);
    char *id = cert_ski_base64(acme.ca);
    expect_event(events, 0, &v1, id, "proximity", "0");
    expect_event(events, 1, &v2, id, "verified", "0");

    /* it answers only application/json */
    size_t len;
    unsigned char *der = build(&o, &len);
    struct answer a = post_to("requestauditlog", der, len, NULL, VOUCHER_TYPE);
    cr_assert_eq(a.status, 406, "%ld %s", a.status, (char *)a.body);
    const char *json_only = "the answer is only available as application/json (RFC 8995 §5.6)";
    cr_assert_str_eq((char *)a.body, fmt("%s\n", json_only));
    expect_refusal_audited("auditlog.refuse", 406, json_only);

    /* another owner's registrar, and a registrar of no known domain: 404 */
    const char *sentence =
        fmt("no audit log of the device \"%s\" for this registrar's domain", dev.serial);
    struct domain *others[] = {&zenith, &stranger};
    for (int i = 0; i < 2; i++) {
        struct brski_client_opts other = opts(&dev, others[i]);
        a = ask_log(&other);
        cr_assert_eq(a.status, 404, "%ld %s", a.status, (char *)a.body);
        cr_assert_str_eq(a.type, TEXT_TYPE);
        cr_assert_str_eq((char *)a.body, fmt("%s\n", sentence));
        expect_refusal_audited("auditlog.refuse", 404, sentence);
    }
    /* the log checks the request as requestvoucher does */
    struct brski_client_opts f = o;
    f.corrupt_rvr_signature = true;
    a = ask_log(&f);
    cr_assert_eq(a.status, 403, "%ld %s", a.status, (char *)a.body);
    const char *bad = "the registrar voucher-request signature does not verify (verification failure)";
    cr_assert_str_eq((char *)a.body, fmt("%s\n", bad));
    expect_refusal_audited("auditlog.refuse", 403, bad);

    /* a former owner still reads it; the new owner reads it too */
    assign(&dev, "zenith");
    log = expect_log(&o, NOTHING_LEFT_OUT);
    events_of(log, 2);
    struct brski_client_opts z = opts(&dev, &zenith);
    log = expect_log(&z, NOTHING_LEFT_OUT);
    events_of(log, 2);
    expect_audit_intact();
}

Test(brski, the_audit_log_is_truncated_as_configured, .init = start_truncating, .fini = stop,
     .timeout = 120)
{
    struct domain acme = make_domain("acme"), zenith = make_domain("zenith");
    struct device dev = make_device("TRUNC");
    put_owner("acme", &acme);
    put_owner("zenith", &zenith);
    put_device(&dev);
    assign(&dev, "acme");
    struct brski_client_opts o = opts(&dev, &acme);
    struct expect e = {"proximity", acme.ca, acme.leaf, NULL};
    struct voucher n[4], l[2];
    for (int i = 0; i < 4; i++)
        n[i] = expect_voucher(&o, &e);
    o.nonceless = true;
    for (int i = 0; i < 2; i++)
        l[i] = expect_voucher(&o, &e);
    o.nonceless = false;

    /* per domain, the newest 2 nonced and the newest 1 nonceless; the oldest
     * kept of each kind counts the ones left out */
    char *acme_id = cert_ski_base64(acme.ca);
    yajl_val log = expect_log(&o, "{\"nonced duplicates\":\"2\",\"nonceless duplicates\":\"1\",\"arbitrary\":\"0\"}");
    yajl_val events = events_of(log, 3);
    expect_event(events, 0, &n[2], acme_id, "proximity", "2");
    expect_event(events, 1, &n[3], acme_id, "proximity", "0");
    expect_event(events, 2, &l[1], acme_id, "proximity", "1");

    /* a voucher for another domain: 4 events remain, beyond max-events 3 the
     * oldest goes as arbitrary (with the count it carried) */
    assign(&dev, "zenith");
    struct brski_client_opts z = opts(&dev, &zenith);
    struct expect ez = {"proximity", zenith.ca, zenith.leaf, NULL};
    struct voucher zv = expect_voucher(&z, &ez);
    log = expect_log(&o, "{\"nonced duplicates\":\"2\",\"nonceless duplicates\":\"1\",\"arbitrary\":\"1\"}");
    events = events_of(log, 3);
    expect_event(events, 0, &n[3], acme_id, "proximity", "0");
    expect_event(events, 1, &l[1], acme_id, "proximity", "1");
    expect_event(events, 2, &zv, cert_ski_base64(zenith.ca), "proximity", "0");
    expect_audit_intact();
}

/* ---- 6: deployed registrars and pledges (docs/brski.md, Deployed clients) ----
 * Each request is shaped as the field clients send it; each tolerance keeps
 * every check (signatures, the serial bound to the IDevID, the nonce). */

/* EST's habit: the body as base64 text of the DER CMS, in CRLF lines */
static struct http_result post_base64(const char *text, bool http2)
{
    struct http_opts o = {.method = "POST", .body = text, .body_len = strlen(text),
                          .content_type = VOUCHER_TYPE, .http2 = http2};
    return http(&proc, "/.well-known/brski/requestvoucher", &o);
}

Test(brski, a_base64_body_gets_a_base64_voucher, .init = start, .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme");
    struct device dev = make_device("B64");
    put_owner("acme", &acme);
    put_device(&dev);
    assign(&dev, "acme");
    struct brski_client_opts o = opts(&dev, &acme);
    size_t len;
    unsigned char *der = build(&o, &len);
    char *text = brski_base64_lines(der, len);
    cr_assert(!strncmp(text, "MI", 2));
    struct http_result r = post_base64(text, true);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(http_header(&r, "content-type"), VOUCHER_TYPE);
    cr_assert_str_eq(http_header(&r, "content-transfer-encoding"), "base64");
    size_t cms_len;
    unsigned char *cms = brski_unbase64((unsigned char *)r.body, r.body_len, &cms_len);
    cr_assert(cms, "not base64: %s", r.body);
    char *json, err[512];
    cr_assert_eq(brski_verify_voucher(cms, cms_len, pki_path("root-ca.crt"), &json, err,
                                      sizeof(err)), 0, "%s", err);
    openssl_verifies(cms, cms_len, json);
    cr_assert_str_eq(leaf(json, "serial-number"), dev.serial);
    cr_assert_str_eq(leaf(json, "nonce"), brski_last_nonce_text());
    /* the request stored is the DER the signature covers */
    cr_assert_str_eq(q("SELECT encode(sha256(request), 'hex') FROM vouchers ORDER BY id DESC LIMIT 1"),
                     sha256_hex(der, len));
    cr_assert_str_eq(q("SELECT encode(sha256(voucher), 'hex') FROM vouchers ORDER BY id DESC LIMIT 1"),
                     sha256_hex(cms, cms_len));
    http_result_free(&r);
    /* ... and over HTTP/1.1 */
    unsigned char *again = build(&o, &len); /* before len is read: argument order is unspecified */
    r = post_base64(brski_base64_lines(again, len), false);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(http_header(&r, "content-transfer-encoding"), "base64");
    http_result_free(&r);

    /* "MI" that is not base64, and base64 of what is no CMS */
    expect_refused_body((const unsigned char *)"MI*not base64*", 15, NULL, VOUCHER_TYPE, 400,
                        "the registrar voucher-request is neither DER nor base64 of DER");
    expect_refused_body((const unsigned char *)"MIIB", 4, NULL, VOUCHER_TYPE, 400,
                        "the registrar voucher-request is not a DER CMS structure");
    /* the size is bounded before anything is decoded */
    size_t big_len = 65537;
    unsigned char *big = malloc(big_len);
    memset(big, 'A', big_len);
    memcpy(big, "MI", 2);
    expect_refused_body(big, big_len, NULL, VOUCHER_TYPE, 413,
                        "the voucher-request is larger than 65536 bytes");
    /* a base64 body is checked as a DER one: a broken signature is refused */
    struct brski_client_opts f = o;
    f.corrupt_rvr_signature = true;
    unsigned char *bad = build(&f, &len);
    text = brski_base64_lines(bad, len);
    expect_refused_body((unsigned char *)text, strlen(text), NULL, VOUCHER_TYPE, 403,
                        "the registrar voucher-request signature does not verify (verification failure)");
    expect_audit_intact();
}

static char *aki_base64(const char *cert)
{
    X509 *x = load_cert(cert);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
    cr_assert(aki);
    char *b64 = brski_base64(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki));
    X509_free(x);
    return b64;
}

/* An owned device of a domain, for the deployed clients' requests; a
 * serial with hex letters, as the captured 00-D0-E5-02-00-2D. */
struct owned {
    struct domain d;
    struct device dev;
    struct brski_client_opts o;
    struct expect e;
};

static struct owned owned_device(void)
{
    struct owned w = {.d = make_domain("acme"), .dev = make_device("00-D0-E5")};
    put_owner("acme", &w.d);
    put_device(&w.dev);
    assign(&w.dev, "acme");
    w.o = opts(&w.dev, &w.d);
    w.e = (struct expect){"proximity", w.d.ca, w.d.leaf, NULL};
    return w;
}

Test(brski, the_voucher_root_in_requests_is_accepted, .init = start, .fini = stop, .timeout = 120)
{
    struct owned w = owned_device();
    /* the root ietf-voucher:voucher in the pledge's and the registrar's request */
    struct brski_client_opts f = w.o;
    f.voucher_root = true;
    expect_voucher(&f, &w.e);
    expect_audit_intact();
}

Test(brski, idevid_issuer_forms_and_the_vouchers_aki, .init = start, .fini = stop, .timeout = 120)
{
    struct owned w = owned_device();
    struct device dev = w.dev;
    struct brski_client_opts f;
    /* RFC 8366 §5.3: whichever form the registrar used, the voucher's
     * idevid-issuer is the IDevID's AKI; first the issuer Name DER */
    struct expect ei = w.e;
    ei.idevid_issuer = aki_base64(dev.leaf);
    f = w.o;
    f.idevid_issuer = true;
    f.idevid_issuer_form = BRSKI_ISSUER_NAME_DER;
    struct voucher v = expect_voucher(&f, &ei);
    cr_assert_str_eq(leaf(v.json, "idevid-issuer"), aki_base64(dev.leaf));
    /* the printable issuer name, accepted when it is the IDevID's */
    f.idevid_issuer_form = BRSKI_ISSUER_NAME_TEXT;
    expect_voucher(&f, &ei);
    /* another name (here the subject's), as text or as bytes, is refused */
    char *subject_text = cert_name(dev.leaf, false, XN_FLAG_ONELINE);
    cr_assert_str_neq(subject_text, cert_name(dev.leaf, true, XN_FLAG_ONELINE));
    f.idevid_issuer_form = BRSKI_ISSUER_NAME_TEXT;
    f.idevid_issuer_value = (const unsigned char *)subject_text;
    f.idevid_issuer_len = strlen(subject_text);
    expect_refused(&f, 403, "idevid-issuer does not match the issuer of the pledge's IDevID");
    f.idevid_issuer_form = BRSKI_ISSUER_AKI;
    expect_refused(&f, 403, "idevid-issuer does not match the issuer of the pledge's IDevID");
    /* the issuer's text in another spelling (RFC 2253) is not the one-line form */
    char *rfc2253 = cert_name(dev.leaf, true, XN_FLAG_RFC2253);
    f.idevid_issuer_form = BRSKI_ISSUER_NAME_TEXT;
    f.idevid_issuer_value = (const unsigned char *)rfc2253;
    f.idevid_issuer_len = strlen(rfc2253);
    expect_refused(&f, 403, "idevid-issuer does not match the issuer of the pledge's IDevID");
    expect_audit_intact();
}

Test(brski, the_pledges_nonce_text_is_echoed, .init = start, .fini = stop, .timeout = 120)
{
    struct owned w = owned_device();
    struct brski_client_opts f;
    struct voucher v;

    /* the nonce as unpadded base64url: compared as bytes, echoed as written */
    static const unsigned char nonce[] = {0xfb, 0xf5, 0xc4, 0xf7, 0x32, 0xbd, 0x3e, 0xff, 0x01};
    f = w.o;
    f.nonce_base64url = true;
    f.nonce = nonce;
    f.nonce_len = sizeof(nonce);
    v = expect_voucher(&f, &w.e);
    cr_assert_str_eq(leaf(v.json, "nonce"), "-_XE9zK9Pv8B");
    /* ... and a different nonce in the registrar's request is still refused */
    static const unsigned char other[] = {0xfb, 0xf5, 0xc4, 0xf7, 0x32, 0xbd, 0x3e, 0xff, 0x02};
    f.rvr_nonce = other;
    f.rvr_nonce_len = sizeof(other);
    expect_refused(&f, 403, "nonce mismatch: the registrar voucher-request's nonce differs from the "
                            "pledge's (RFC 8995 §5.5.6)");
    expect_audit_intact();
}

Test(brski, the_pledges_serial_may_differ_in_letter_case, .init = start, .fini = stop, .timeout = 120)
{
    struct owned w = owned_device();
    struct device dev = w.dev;
    struct brski_client_opts f;
    struct voucher v;
    /* the pledge writes its serial in lower case; the registrar's must be exact */
    f = w.o;
    f.serial_case = true;
    v = expect_voucher(&f, &w.e);
    cr_assert_str_eq(leaf(v.json, "serial-number"), dev.serial);
    char *lower = strdup(dev.serial);
    for (char *p = lower; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    cr_assert_str_neq(lower, dev.serial);
    f = w.o;
    f.pvr_serial = lower;
    f.rvr_serial = lower;
    expect_refused(&f, 403, fmt("serial-number mismatch: the registrar voucher-request names \"%s\", "
                                "the pledge's IDevID \"%s\"", lower, dev.serial));
    /* ... and another serial in the pledge's request is no case difference */
    f = w.o;
    f.pvr_serial = fmt("%sX", lower);
    expect_refused(&f, 403, fmt("serial-number mismatch: the pledge voucher-request names \"%sX\", "
                                "its IDevID \"%s\"", lower, dev.serial));
    expect_audit_intact();
}

Test(brski, a_registrar_may_leave_out_the_nonce, .init = start, .fini = stop, .timeout = 120)
{
    struct owned w = owned_device();
    /* RFC 8995 §5.5: the registrar leaves the pledge's nonce out; a
     * nonceless voucher for the owner's (authenticated) registrar */
    struct brski_client_opts f = w.o;
    f.registrar_omits_nonce = true;
    struct voucher v = expect_voucher(&f, &w.e);
    cr_assert_null(leaf(v.json, "nonce"));

    /* all the habits at once, as a field client (brski-client --field-client) */
    f = w.o;
    f.voucher_root = f.nonce_base64url = f.serial_case = f.econtent_id_data = true;
    f.idevid_issuer = true;
    f.idevid_issuer_form = BRSKI_ISSUER_NAME_TEXT;
    struct expect ei = w.e;
    ei.idevid_issuer = aki_base64(w.dev.leaf);
    v = expect_voucher(&f, &ei);
    cr_assert_str_eq(leaf(v.json, "nonce"), brski_last_nonce_text());
    cr_assert(!strchr(leaf(v.json, "nonce"), '='));
    expect_audit_intact();
}

Test(brski, nonceless_requests_need_a_registered_registrar, .init = start_logged, .fini = stop,
     .timeout = 120)
{
    struct domain tofu = make_domain("tofu");
    struct device dev = make_device("NONCELESS");
    put_device(&dev);
    struct brski_client_opts o = opts(&dev, &tofu);
    /* RFC 8995 §5.5.4: an unregistered registrar gets no 14-day voucher ... */
    o.nonceless = true;
    expect_refused(&o, 403, nonceless_sentence);
    cr_assert_str_eq(q("SELECT serial_number || ' ' || actor FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     fmt("%s %s", dev.serial, cert_actor(tofu.chain)));
    /* ... also when it leaves out the nonce the pledge sent */
    o.nonceless = false;
    o.registrar_omits_nonce = true;
    expect_refused(&o, 403, nonceless_sentence);
    cr_assert_eq(voucher_count(), 0);
    /* with the pledge's nonce it is trust on first use, as before */
    o.registrar_omits_nonce = false;
    struct expect e = {"logged", tofu.ca, tofu.leaf, NULL};
    expect_voucher(&o, &e);
    /* a registered domain's registrar gets a nonceless voucher for an unowned device */
    struct domain acme = make_domain("acme");
    put_owner("acme", &acme);
    struct device other = make_device("NONCELESS2");
    put_device(&other);
    struct brski_client_opts a = opts(&other, &acme);
    a.nonceless = true;
    struct expect ea = {"logged", acme.ca, acme.leaf, NULL};
    expect_voucher(&a, &ea);
}

Test(brski, early_refusals_name_the_claimed_serial_and_the_tls_client, .init = start, .fini = stop,
     .timeout = 120)
{
    struct domain acme = make_domain("acme");
    struct device dev = make_device("CLAIMED");
    put_owner("acme", &acme);
    put_device(&dev);
    assign(&dev, "acme");
    /* refused at the registrar's EKU, before its request is validated: the
     * serial it claims is recorded */
    struct brski_client_opts f = opts(&dev, &acme);
    f.registrar_cert = acme.nocmcra_chain;
    f.registrar_key = acme.nocmcra_key;
    expect_refused(&f, 403, "the registrar certificate lacks the id-kp-cmcRA extended key usage (RFC 8995 §5.5.4)");
    cr_assert_str_eq(q("SELECT serial_number FROM audit_events ORDER BY seq DESC LIMIT 1"), dev.serial);
    /* ... also under the root deployed clients use */
    f.voucher_root = true;
    expect_refused(&f, 403, "the registrar certificate lacks the id-kp-cmcRA extended key usage (RFC 8995 §5.5.4)");
    cr_assert_str_eq(q("SELECT serial_number FROM audit_events ORDER BY seq DESC LIMIT 1"), dev.serial);
    /* a body that is no CMS: the TLS client certificate names the actor */
    tls_cert = acme.chain;
    tls_key = acme.key;
    static const char garbage[] = "this is not a CMS structure";
    expect_refused_body((const unsigned char *)garbage, strlen(garbage), NULL, VOUCHER_TYPE, 400,
                        "the registrar voucher-request is not a DER CMS structure");
    cr_assert_str_eq(q("SELECT actor || ' ' || coalesce(serial_number, 'none') FROM audit_events"
                       " ORDER BY seq DESC LIMIT 1"),
                     fmt("registrar-tls:%s none", cert_actor(acme.chain) + strlen("registrar:")));
    tls_cert = tls_key = NULL;
}

/* ---- 7: per-owner registrar policy (docs/brski.md) ---- */

static void put_owner_brski(const char *id, const char *certs_pem, const char *policy)
{
    char *body = fmt("{\"brski\": {\"domain_certs\": [%s]%s%s}}", json_string_of(certs_pem),
                     policy ? ", " : "", policy ? policy : "");
    api_ok("PUT", fmt("/api/v1/owners/%s", id), body);
}

Test(brski, owners_require_registrar_tls_authentication, .init = start, .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme"), stranger = make_domain("stranger");
    struct device dev = make_device("POLICY");
    put_device(&dev);
    put_owner("acme", &acme);
    assign(&dev, "acme");
    struct brski_client_opts o = opts(&dev, &acme);
    struct expect e = {"proximity", acme.ca, acme.leaf, NULL};

    /* tls-equals-signer: no client certificate, or another one, is refused */
    put_owner_brski("acme", read_text(acme.ca), "\"registrar_auth\": \"tls-equals-signer\"");
    const char *not_signer = "the owner's registrars must present the voucher-request's signing "
                             "certificate as TLS client certificate (registrar_auth tls-equals-signer)";
    expect_refused(&o, 403, not_signer);
    tls_cert = issue_registrar(&acme, "tls", -60, 86400);
    tls_key = acme.key;
    expect_refused(&o, 403, not_signer);
    tls_cert = acme.chain;
    expect_voucher(&o, &e);

    /* tls-chains-to-domain: any registrar of the domain, no stranger */
    put_owner_brski("acme", read_text(acme.ca), "\"registrar_auth\": \"tls-chains-to-domain\"");
    tls_cert = issue_registrar(&acme, "tls2", -60, 86400);
    expect_voucher(&o, &e);
    tls_cert = stranger.chain;
    tls_key = stranger.key;
    expect_refused(&o, 403, "the owner's registrars must present a TLS client certificate that "
                            "chains to the owner's domain certificate (registrar_auth "
                            "tls-chains-to-domain)");
    tls_cert = tls_key = NULL;
    expect_refused(&o, 403, "the owner's registrars must present a TLS client certificate that "
                            "chains to the owner's domain certificate (registrar_auth "
                            "tls-chains-to-domain)");
    /* the audit log asks the same */
    size_t len;
    unsigned char *der = build(&o, &len);
    struct answer a = post_to("requestauditlog", der, len, NULL, "application/json");
    cr_assert_eq(a.status, 403, "%ld %s", a.status, (char *)a.body);
    expect_audit_intact();
}

Test(brski, owners_choose_what_vouchers_pin, .init = start, .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme");
    struct device dev = make_device("PINNING");
    put_device(&dev);
    put_owner("acme", &acme);
    assign(&dev, "acme");
    struct brski_client_opts o = opts(&dev, &acme);
    /* pinning registrar-ee: the voucher pins the registrar's own certificate */
    put_owner_brski("acme", read_text(acme.ca), "\"pinning\": \"registrar-ee\"");
    struct expect ee = {"proximity", acme.leaf, acme.leaf, NULL};
    expect_voucher(&o, &ee);

    /* an owner whose registrar sends its end-entity certificate only,
     * registered with that certificate */
    struct domain lone = make_domain("lone");
    struct device dev2 = make_device("LONE");
    put_device(&dev2);
    put_owner_brski("lone", read_text(lone.leaf), NULL);
    assign(&dev2, "lone");
    struct brski_client_opts l = opts(&dev2, &lone);
    l.registrar_cert = lone.leaf;
    struct expect el = {"proximity", lone.leaf, lone.leaf, NULL};
    expect_voucher(&l, &el);
    expect_audit_intact();
}

Test(brski, owners_brski_settings_are_checked, .init = start, .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme");
    struct device dev = make_device("SETTINGS");
    /* GET shows the defaults */
    put_owner("acme", &acme);
    struct http_result r = api(NULL, "/api/v1/owners/acme", NULL);
    cr_assert(strstr(r.body, "\"registrar_auth\":\"any\",\"pinning\":\"domain-ca\"}"), "%s", r.body);
    http_result_free(&r);
    put_owner_brski("acme", read_text(acme.ca),
                    "\"pinning\": \"registrar-ee\", \"registrar_auth\": \"tls-equals-signer\"");
    r = api(NULL, "/api/v1/owners/acme", NULL);
    cr_assert(strstr(r.body, "\"registrar_auth\":\"tls-equals-signer\",\"pinning\":\"registrar-ee\"}"),
              "%s", r.body);
    http_result_free(&r);

    /* refusals of the owner's brski settings */
    struct {
        const char *policy, *pointer, *detail;
    } bad[] = {
        {"\"registrar_auth\": \"mutual\"", "/brski/registrar_auth",
         "must be one of: any, tls-equals-signer, tls-chains-to-domain"},
        {"\"pinning\": \"root\"", "/brski/pinning", "must be one of: domain-ca, registrar-ee"},
        {"\"pinning\": 1", "/brski/pinning", "must be a string, not number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        r = api("PUT", "/api/v1/owners/acme",
                fmt("{\"brski\": {\"domain_certs\": [%s], %s}}", json_string_of(read_text(acme.ca)),
                    bad[i].policy));
        cr_assert_eq(r.status, 422, "%s: %ld %s", bad[i].policy, r.status, r.body);
        cr_assert(strstr(r.body, fmt("{\"pointer\":\"%s\",\"detail\":\"%s\"}", bad[i].pointer,
                                     bad[i].detail)), "%s", r.body);
        http_result_free(&r);
    }
    /* a certificate that is neither a CA nor a registrar's */
    r = api("PUT", "/api/v1/owners/nope",
            fmt("{\"brski\": {\"domain_certs\": [%s]}}", json_string_of(read_text(dev.leaf))));
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "{\"pointer\":\"/brski/domain_certs/0\",\"detail\":\"is neither a CA "
                             "certificate (basicConstraints CA:TRUE) nor a registrar certificate "
                             "(id-kp-cmcRA)\"}"), "%s", r.body);
    http_result_free(&r);
    expect_audit_intact();
}

/* ---- 8: serial numbers from the hardwareModuleName (RFC 4108 §5) ---- */

static void start_hardware_module_name(void)
{
    struct masad_opts o = {.idevid_extra = "\"serial-number-from\": \"hardware-module-name\""};
    cr_assert(masad_start(&proc, &o), "masad did not start: %s", read_text(proc.stderr_path));
    token = make_token(&proc, "brski-test", "devices:read,devices:write,owners:read,owners:write,"
                                            "ownership:write,audit:read");
}

/* SEQUENCE { hwType OID, hwSerialNum OCTET STRING } as an otherName */
static GENERAL_NAME *hardware_module_name(const char *hw_serial)
{
    ASN1_SEQUENCE_ANY *seq = sk_ASN1_TYPE_new_null();
    ASN1_TYPE *type = ASN1_TYPE_new(), *num = ASN1_TYPE_new(), *value = ASN1_TYPE_new();
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, (const unsigned char *)hw_serial, (int)strlen(hw_serial));
    ASN1_TYPE_set(type, V_ASN1_OBJECT, OBJ_txt2obj("1.3.6.1.4.1.46879.1.1", 1));
    ASN1_TYPE_set(num, V_ASN1_OCTET_STRING, os);
    sk_ASN1_TYPE_push(seq, type);
    sk_ASN1_TYPE_push(seq, num);
    unsigned char *der = NULL;
    int n = i2d_ASN1_SEQUENCE_ANY(seq, &der);
    cr_assert(n > 0);
    ASN1_STRING *s = ASN1_STRING_new();
    ASN1_STRING_set(s, der, n);
    ASN1_TYPE_set(value, V_ASN1_SEQUENCE, s);
    GENERAL_NAME *g = GENERAL_NAME_new();
    cr_assert(GENERAL_NAME_set0_othername(g, OBJ_txt2obj("1.3.6.1.5.5.7.8.4", 1), value) == 1);
    OPENSSL_free(der);
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    return g;
}

/* An IDevID from the test IDevID CA whose serial is only in its
 * subjectAltName, once per hw_serial given (two: an ambiguous one) */
static struct device issue_module_idevid(const char *tag, const char *hw_serial, const char *second)
{
    X509 *ca = load_cert(pki_path("idevid-ca.crt"));
    EVP_PKEY *ca_key = load_key(pki_path("idevid-ca.key")), *key = EVP_EC_gen("P-256");
    X509V3_CTX v3;
    X509 *x = new_cert(ca, key, NULL, tag, -60, 86400, &v3);
    add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    sk_GENERAL_NAME_push(names, hardware_module_name(hw_serial));
    if (second)
        sk_GENERAL_NAME_push(names, hardware_module_name(second));
    cr_assert(X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1);
    GENERAL_NAMES_free(names);
    cr_assert(X509_sign(x, ca_key, EVP_sha256()) > 0);
    struct device v = {.serial = strdup(hw_serial)};
    char *prefix = tmp_path("hmn-%s-%d", tag, (int)getpid());
    v.leaf = fmt("%s.crt", prefix);
    v.chain = fmt("%s-chain.crt", prefix);
    v.key = fmt("%s.key", prefix);
    FILE *f = fopen(v.chain, "w"), *l = fopen(v.leaf, "w"), *k = fopen(v.key, "w");
    cr_assert(f && l && k);
    cr_assert(PEM_write_X509(f, x) == 1 && PEM_write_X509(f, ca) == 1 && PEM_write_X509(l, x) == 1 &&
              PEM_write_PrivateKey(k, key, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    fclose(l);
    fclose(k);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    return v;
}

Test(brski, serial_numbers_from_the_hardware_module_name, .init = start_hardware_module_name,
     .fini = stop, .timeout = 120)
{
    struct domain acme = make_domain("acme");
    put_owner("acme", &acme);
    /* a UTF-8 serial outside PrintableString, as field devices have */
    char *serial = fmt("JADA_f2-%d", (int)getpid());
    struct device dev = issue_module_idevid("module", serial, NULL);
    put_device(&dev);
    assign(&dev, "acme");
    struct brski_client_opts o = opts(&dev, &acme);
    o.pvr_serial = serial;
    struct expect e = {"proximity", acme.ca, acme.leaf, NULL};
    struct voucher v = expect_voucher(&o, &e);
    cr_assert_str_eq(leaf(v.json, "serial-number"), serial);
    /* the serial is still bound to the IDevID: another one is refused */
    o.pvr_serial = o.rvr_serial = "JADA_f2-other";
    expect_refused(&o, 403, fmt("serial-number mismatch: the pledge voucher-request names "
                                "\"JADA_f2-other\", its IDevID \"%s\"", serial));
    /* an IDevID with two hardwareModuleNames names no single device */
    struct device twice = issue_module_idevid("twice", fmt("%s-a", serial), fmt("%s-b", serial));
    o = opts(&twice, &acme);
    o.pvr_serial = twice.serial;
    expect_refused(&o, 403, "the pledge voucher-request is not signed by a known device: the IDevID "
                            "subjectAltName has no single hardwareModuleName (RFC 4108 §5)");
    /* the subject's serialNumber is not used by this anchor */
    struct device plain = make_device("PLAIN");
    o = opts(&plain, &acme);
    expect_refused(&o, 403, "the pledge voucher-request is not signed by a known device: the IDevID "
                            "subjectAltName has no single hardwareModuleName (RFC 4108 §5)");
    /* a control character in hwSerialNum is no serial number */
    struct device ctl = issue_module_idevid("control", "JADA\x01", NULL);
    o = opts(&ctl, &acme);
    o.pvr_serial = "JADA";
    expect_refused(&o, 403, "the pledge voucher-request is not signed by a known device: the IDevID's "
                            "serial number is not 1 to 64 characters of text without control "
                            "characters");
    expect_audit_intact();
}

/* ---- 9: brski-client reproduces a field client in one command ---- */

static int brski_client_run(char **out, const struct owned *w, const char *flags)
{
    /* the build puts brski-client in tests/, beside the suites */
    char *bin = fmt("%s/../tests/brski-client", dirname(strdup(env_or_die("MASAD_TEST_BIN"))));
    char *ca = pki_path("root-ca.crt");
    return sh(out, "%s --masa https://127.0.0.1:%u --tls-ca %s --masa-ca %s --pledge-cert %s"
                   " --pledge-key %s --registrar-cert %s --registrar-key %s %s 2>&1",
              bin, proc.device_port, ca, ca, w->dev.chain, w->dev.key, w->d.chain, w->d.key, flags);
}

Test(brski, brski_client_acts_as_a_field_client, .init = start, .fini = stop, .timeout = 120)
{
    struct owned w = owned_device();
    char *out;
    cr_assert_eq(brski_client_run(&out, &w, "--field-client"), 0, "%s", out);
    cr_assert(strstr(out, "voucher OK: signed by the MASA, serial-number and nonce match"), "%s", out);
    cr_assert_eq(brski_client_run(&out, &w, "--registrar-omits-nonce --issuer-form der"), 0, "%s", out);
    cr_assert(strstr(out, "voucher OK"), "%s", out);
    cr_assert_str_eq(q("SELECT count(*) FROM vouchers WHERE serial_number = '%s'", w.dev.serial), "2");
    cr_assert_eq(brski_client_run(&out, &w, "--issuer-form subject"), 2, "%s", out);
    cr_assert(strstr(out, "--issuer-form is aki, der or name, not subject"), "%s", out);
}
