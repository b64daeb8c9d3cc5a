/*
 * The SZTP bootstrap server (docs/sztp.md, RFC 8572), black-box: a real
 * masad, devices, owners and sales records made through the management API,
 * devices calling get-bootstrapping-data and report-progress in JSON and XML
 * with IDevID client certificates or HTTP Basic credentials, every artifact
 * taken apart with OpenSSL (in C and on the command line), and the database
 * and audit log inspected for what was (not) stored.
 */
#include <criterion/criterion.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "brski_client.h"
#include "harness.h"

#define BOOTSTRAP "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data"
#define PROGRESS "/restconf/operations/ietf-sztp-bootstrap-server:report-progress"
#define JSON_TYPE "application/yang-data+json"
#define XML_TYPE "application/yang-data+xml"
#define NS "urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"
#define CONVEYED_NS "urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"
#define OID_JSON "1.2.840.113549.1.9.16.1.43" /* id-ct-sztpConveyedInfoJSON */
#define OID_XML "1.2.840.113549.1.9.16.1.42"  /* id-ct-sztpConveyedInfoXML */
#define LIFETIME 1209600                      /* sztp/ownership-voucher-lifetime's default */

/* service/sztp/: the sentences devices get */
#define DENIED                                                                                     \
    "the device could not be authenticated: present an IDevID client certificate or HTTP Basic "  \
    "credentials (serial number and password)"
#define NO_OWNER "the device has no owner: no bootstrapping data here"
#define NO_SETTINGS "the device's owner has no SZTP settings"
#define ONLY_UNSIGNED_ONBOARDING                                                                   \
    "the device prefers signed data and only unsigned onboarding information exists (RFC 8572 §4.4)"
#define WRONG_TYPE "the input must be application/yang-data+json or application/yang-data+xml"

static struct masad_proc proc;
static char *token;

static void start(void)
{
    cr_assert(masad_start(&proc, NULL), "masad did not start: %s", read_text(proc.stderr_path));
    token = make_token(&proc, "sztp-test",
                       "devices:read,devices:write,owners:read,owners:write,ownership:write,audit:read");
}

static void stop(void) { masad_stop_expect_clean(&proc); }

/* the first value of a query as the schema owner, "NULL" for none / SQL NULL */
#define q(...) owner_value(&proc, __VA_ARGS__)

static long count_of(const char *sql) { return atol(q("%s", sql)); }

static char *file_text(const char *path)
{
    char *t = read_text(path);
    cr_assert(*t, "cannot read %s", path);
    return t;
}

static char *data_path(const char *name)
{
    return fmt("%s/tests/data/yang/%s", env_or_die("MASAD_TEST_ROOT"), name);
}

/* ---- JSON ---- */

static yajl_val parse_json(const char *text)
{
    char err[256];
    yajl_val v = yajl_tree_parse(text, err, sizeof(err));
    cr_assert(v, "not JSON (%s): %s", err, text);
    return v;
}

static yajl_val jget(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    return yajl_tree_get(v, path, yajl_t_any);
}

static const char *jstr(yajl_val v, const char *key)
{
    yajl_val m = jget(v, key);
    cr_assert(m, "no %s", key);
    if (YAJL_IS_NULL(m))
        return NULL;
    cr_assert(YAJL_IS_STRING(m), "%s is not a string", key);
    return YAJL_GET_STRING(m);
}

static bool jtrue(yajl_val v, const char *key)
{
    yajl_val m = jget(v, key);
    cr_assert(m && (YAJL_IS_TRUE(m) || YAJL_IS_FALSE(m)), "%s is not a boolean", key);
    return YAJL_IS_TRUE(m);
}

static size_t jlen(yajl_val v)
{
    cr_assert(v && (YAJL_IS_ARRAY(v) || YAJL_IS_OBJECT(v)));
    return YAJL_IS_ARRAY(v) ? YAJL_GET_ARRAY(v)->len : YAJL_GET_OBJECT(v)->len;
}

static yajl_val jat(yajl_val v, size_t i)
{
    cr_assert(YAJL_IS_ARRAY(v) && i < YAJL_GET_ARRAY(v)->len);
    return YAJL_GET_ARRAY(v)->values[i];
}

/* The same JSON value (numbers compared as written). */
static bool json_equal(yajl_val a, yajl_val b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case yajl_t_string:
        return !strcmp(a->u.string, b->u.string);
    case yajl_t_number:
        return !strcmp(a->u.number.r, b->u.number.r);
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len)
            return false;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!json_equal(a->u.array.values[i], b->u.array.values[i]))
                return false;
        return true;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len)
            return false;
        for (size_t i = 0; i < a->u.object.len; i++) {
            yajl_val other = jget(b, a->u.object.keys[i]);
            if (!other || !json_equal(a->u.object.values[i], other))
                return false;
        }
        return true;
    default:
        return true;
    }
}

/* ---- bytes ---- */

static unsigned char *unbase64(const char *s, size_t *len)
{
    size_t n = strlen(s);
    cr_assert(n % 4 == 0, "not padded base64: %s", s);
    unsigned char *out = malloc(n / 4 * 3 + 1);
    int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    cr_assert(got >= 0, "not base64: %s", s);
    if (n && s[n - 1] == '=')
        got--;
    if (n > 1 && s[n - 2] == '=')
        got--;
    *len = (size_t)got;
    return out;
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

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert(x, "no certificate in %s", path);
    return x;
}

static unsigned char *der_of(X509 *x, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    cr_assert(n > 0);
    *len = (size_t)n;
    return der;
}

static bool same_cert(X509 *a, X509 *b)
{
    size_t la, lb;
    unsigned char *da = der_of(a, &la), *db = der_of(b, &lb);
    return la == lb && !memcmp(da, db, la);
}

/* One DER element of the expected tag at *p; returns its contents. */
static const unsigned char *der_take(const unsigned char **p, const unsigned char *end,
                                     unsigned char tag, size_t *len)
{
    cr_assert(end - *p >= 2, "DER ends early");
    cr_assert_eq(**p, tag, "DER tag %02x where %02x was expected", **p, tag);
    const unsigned char *s = *p + 1;
    size_t n = *s++;
    if (n & 0x80) {
        int k = (int)(n & 0x7f);
        cr_assert(k >= 1 && k <= 4 && end - s >= k, "bad DER length");
        for (n = 0; k--;)
            n = n << 8 | *s++;
    }
    cr_assert((size_t)(end - s) >= n, "DER element longer than its container");
    *len = n;
    *p = s + n;
    return s;
}

/* ---- the management API ---- */

static struct http_result mgmt(const char *method, const char *path, const char *body)
{
    struct http_opts o = {.management = true, .method = method, .body = body,
                          .body_len = body ? strlen(body) : 0, .content_type = "application/json",
                          .bearer = token};
    return http(&proc, path, &o);
}

static void mgmt_ok(const char *method, const char *path, const char *body)
{
    struct http_result r = mgmt(method, path, body);
    cr_assert(r.status == 200 || r.status == 201 || r.status == 204, "%s %s: %ld %s", method, path,
              r.status, r.body);
    http_result_free(&r);
}

static yajl_val mgmt_get(const char *path)
{
    struct http_result r = mgmt("GET", path, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    return parse_json(r.body);
}

struct device {
    char *serial;
    char *password;                 /* NULL: none set */
    char *chain, *key;              /* the IDevID (and its CA), or NULL */
};

static char *unique(const char *what)
{
    static unsigned n;
    return fmt("SZ-%s-%d-%u", what, (int)getpid(), n++);
}

static void give_idevid(struct device *d)
{
    char *prefix = tmp_path("sztp-dev-%s", d->serial), *out;
    cr_assert_eq(sh(&out, "%s/pki.sh idevid %s %s %s", env_or_die("MASAD_TEST_DEV"),
                    env_or_die("MASAD_TEST_PKI"), d->serial, prefix), 0, "%s", out);
    d->chain = fmt("%s-chain.crt", prefix);
    d->key = fmt("%s.key", prefix);
}

/* A registered device with a password and/or an IDevID. */
static struct device make_device(const char *what, bool password, bool idevid)
{
    struct device d = {.serial = unique(what)};
    if (password)
        d.password = fmt("pw-%s-0123456789abcdef", d.serial);
    mgmt_ok("PUT", fmt("/api/v1/devices/%s", d.serial),
            password ? fmt("{\"product\": \"p\", \"sztp_password\": \"%s\"}", d.password)
                     : "{\"product\": \"p\"}");
    if (idevid)
        give_idevid(&d);
    return d;
}

static char *basic_of(const struct device *d) { return fmt("%s:%s", d->serial, d->password); }

/* An owner with the given "sztp" member (JSON) or none. */
static void put_owner(const char *id, const char *sztp)
{
    mgmt_ok("PUT", fmt("/api/v1/owners/%s", id),
            sztp ? fmt("{\"display_name\": \"%s\", \"sztp\": %s}", id, sztp)
                 : fmt("{\"display_name\": \"%s\"}", id));
}

static char *conveyed_sztp(const char *file)
{
    return fmt("{\"conveyed_information\": %s}", file_text(data_path(file)));
}

static void assign(const struct device *d, const char *owner)
{
    mgmt_ok("PUT", fmt("/api/v1/devices/%s/ownership", d->serial),
            fmt("{\"owner_id\": \"%s\"}", owner));
}

/* ---- the device side ---- */

static char *json_input(const char *members)
{
    return fmt("{\"ietf-sztp-bootstrap-server:input\": {%s}}", members);
}

static char *xml_input(const char *members) { return fmt("<input xmlns=\"" NS "\">%s</input>", members); }

/* POSTs body (NULL: none) to an RPC with HTTP Basic credentials and/or a client certificate. */
static struct http_result call(const char *path, const char *body, const char *type,
                               const char *basic, const struct device *cert)
{
    struct http_opts o = {.method = "POST", .body = body ? body : "", .body_len = body ? strlen(body) : 0,
                          .content_type = type, .basic_auth = basic,
                          .client_cert = cert ? cert->chain : NULL, .client_key = cert ? cert->key : NULL};
    return http(&proc, path, &o);
}

static struct http_result ask(const struct device *d, const char *body, bool xml)
{
    return call(BOOTSTRAP, body, xml ? XML_TYPE : JSON_TYPE, basic_of(d), NULL);
}

/* A RESTCONF error (RFC 8040 §7.1) in the request's encoding; the message
 * exactly or (contains) holding a part. */
static void expect_error(struct http_result r, long status, bool xml, const char *type,
                         const char *tag, const char *message, const char *contains)
{
    cr_assert_eq(r.status, status, "%ld %s", r.status, r.body);
    cr_assert_str_eq(http_header(&r, "content-type"), xml ? XML_TYPE : JSON_TYPE, "%s", r.headers);
    char *got;
    if (xml) {
        char *head = fmt("<errors xmlns=\"urn:ietf:params:xml:ns:yang:ietf-restconf\"><error>"
                         "<error-type>%s</error-type><error-tag>%s</error-tag><error-message>",
                         type, tag);
        const char *tail = "</error-message></error></errors>";
        size_t n = strlen(r.body);
        cr_assert(!strncmp(r.body, head, strlen(head)) && n > strlen(head) + strlen(tail) &&
                      !strcmp(r.body + n - strlen(tail), tail),
                  "%s", r.body);
        got = strndup(r.body + strlen(head), n - strlen(head) - strlen(tail));
    } else {
        yajl_val v = parse_json(r.body);
        cr_assert(YAJL_IS_OBJECT(v) && jlen(v) == 1, "%s", r.body);
        yajl_val errors = jget(v, "ietf-restconf:errors");
        cr_assert(errors && YAJL_IS_OBJECT(errors) && jlen(errors) == 1, "%s", r.body);
        yajl_val list = jget(errors, "error");
        cr_assert(list && YAJL_IS_ARRAY(list) && jlen(list) == 1, "%s", r.body);
        yajl_val e = jat(list, 0);
        cr_assert(YAJL_IS_OBJECT(e) && jlen(e) == 3, "%s", r.body);
        cr_assert_str_eq(jstr(e, "error-type"), type, "%s", r.body);
        cr_assert_str_eq(jstr(e, "error-tag"), tag, "%s", r.body);
        got = strdup(jstr(e, "error-message"));
    }
    if (message)
        cr_assert_str_eq(got, message);
    if (contains)
        cr_assert(strstr(got, contains), "want \"%s\" in \"%s\"", contains, got);
    char *challenge = http_header(&r, "www-authenticate");
    if (status == 401) /* RFC 8040 §2.5, RFC 7235 §3.1 (the harness lower-cases headers) */
        cr_assert(challenge && !strcmp(challenge, "basic realm=\"masad\""), "%s", r.headers);
    else
        cr_assert_null(challenge, "%s", r.headers);
}

static void expect_denied(struct http_result r, bool xml)
{
    expect_error(r, 401, xml, "protocol", "access-denied", DENIED, NULL);
}

/* get-bootstrapping-data's output, decoded */
struct output {
    size_t members;
    unsigned char *conveyed, *owner_cert, *voucher;
    size_t conveyed_len, owner_cert_len, voucher_len;
};

static char *xml_leaf(const char *body, const char *name)
{
    char *open = fmt("<%s>", name), *close = fmt("</%s>", name);
    const char *s = strstr(body, open), *e;
    if (!s)
        return NULL;
    s += strlen(open);
    e = strstr(s, close);
    cr_assert(e, "%s", body);
    return strndup(s, (size_t)(e - s));
}

/* 200 with the output's exact shape in the request's encoding. */
static struct output expect_output(struct http_result r, bool xml)
{
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(http_header(&r, "content-type"), xml ? XML_TYPE : JSON_TYPE);
    const char *text[3];
    struct output o = {0};
    if (xml) {
        text[0] = xml_leaf(r.body, "conveyed-information");
        text[1] = xml_leaf(r.body, "owner-certificate");
        text[2] = xml_leaf(r.body, "ownership-voucher");
        cr_assert(text[0], "%s", r.body);
        char *want = text[1] && text[2]
                         ? fmt("<output xmlns=\"" NS "\"><conveyed-information>%s</conveyed-information>"
                               "<owner-certificate>%s</owner-certificate><ownership-voucher>%s"
                               "</ownership-voucher></output>", text[0], text[1], text[2])
                         : fmt("<output xmlns=\"" NS "\"><conveyed-information>%s"
                               "</conveyed-information></output>", text[0]);
        cr_assert_str_eq(r.body, want);
        o.members = text[1] ? 3 : 1;
    } else {
        yajl_val v = parse_json(r.body);
        cr_assert(YAJL_IS_OBJECT(v) && jlen(v) == 1, "%s", r.body);
        yajl_val out = jget(v, "ietf-sztp-bootstrap-server:output");
        cr_assert(out && YAJL_IS_OBJECT(out), "%s", r.body);
        o.members = jlen(out);
        text[0] = jstr(out, "conveyed-information");
        text[1] = jget(out, "owner-certificate") ? jstr(out, "owner-certificate") : NULL;
        text[2] = jget(out, "ownership-voucher") ? jstr(out, "ownership-voucher") : NULL;
        cr_assert_eq(o.members, (size_t)(1 + !!text[1] + !!text[2]), "%s", r.body);
    }
    /* ietf-sztp-bootstrap-server: the certificate and the voucher come together */
    cr_assert_eq(!!text[1], !!text[2], "%s", r.body);
    o.conveyed = unbase64(text[0], &o.conveyed_len);
    if (text[1]) {
        o.owner_cert = unbase64(text[1], &o.owner_cert_len);
        o.voucher = unbase64(text[2], &o.voucher_len);
    }
    return o;
}

/* RFC 8572 §3.1: unsigned conveyed information is a ContentInfo of the
 * given content type; returns its content. */
static char *expect_content_info(const unsigned char *der, size_t len, const char *oid)
{
    char *in = write_temp("conveyed.der", der, len), *text;
    cr_assert_eq(sh(&text, "openssl asn1parse -inform DER -in %s", in), 0, "%s", text);
    cr_assert(strstr(text, "cons: SEQUENCE"), "%s", text);
    cr_assert(strstr(text, fmt("prim: OBJECT            :%s\n", oid)), "want %s in %s", oid, text);
    cr_assert(strstr(text, "cons: cont [ 0 ]"), "%s", text);
    cr_assert(strstr(text, "prim: OCTET STRING"), "%s", text);
    /* ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT OCTET STRING } */
    const unsigned char *p = der, *end = der + len;
    size_t n;
    const unsigned char *seq = der_take(&p, end, 0x30, &n);
    cr_assert(p == end, "bytes after the ContentInfo");
    const unsigned char *s = seq, *seq_end = seq + n;
    const unsigned char *type = der_take(&s, seq_end, 0x06, &n);
    ASN1_OBJECT *want = OBJ_txt2obj(oid, 1);
    cr_assert(want && (size_t)OBJ_length(want) == n && !memcmp(OBJ_get0_data(want), type, n));
    ASN1_OBJECT_free(want);
    const unsigned char *explicit = der_take(&s, seq_end, 0xa0, &n);
    cr_assert(s == seq_end, "more than two members in the ContentInfo");
    const unsigned char *e = explicit, *explicit_end = explicit + n;
    const unsigned char *content = der_take(&e, explicit_end, 0x04, &n);
    cr_assert(e == explicit_end, "more than the OCTET STRING in [0]");
    return strndup((const char *)content, n);
}

/* JSON conveyed information that is the data file's. */
static void expect_same_json(const char *content, const char *file)
{
    cr_assert(json_equal(parse_json(content), parse_json(file_text(data_path(file)))),
              "conveyed information %s is not %s", content, file);
}

/* The newest audit event of an action, and its detail. */
static yajl_val last_detail(const char *action)
{
    return parse_json(q("SELECT detail FROM audit_events WHERE action = '%s' ORDER BY seq DESC LIMIT 1",
                        action));
}

static void expect_bootstrap_event(const struct device *d, const char *owner, const char *conveyed,
                                   bool is_signed, bool reused, bool csr, const char *encoding)
{
    cr_assert_str_eq(q("SELECT actor || ' ' || serial_number || ' ' || owner_id || ' ' || outcome"
                       " FROM audit_events WHERE action = 'sztp.bootstrap' ORDER BY seq DESC LIMIT 1"),
                     fmt("device:%s %s %s ok", d->serial, d->serial, owner));
    yajl_val v = last_detail("sztp.bootstrap");
    cr_assert_str_eq(jstr(v, "conveyed"), conveyed);
    cr_assert_eq(jtrue(v, "signed"), is_signed);
    yajl_val voucher = jget(v, "voucher");
    cr_assert(voucher);
    if (is_signed)
        cr_assert(YAJL_IS_INTEGER(voucher) && YAJL_GET_INTEGER(voucher) > 0);
    else
        cr_assert(YAJL_IS_NULL(voucher));
    cr_assert_eq(jtrue(v, "voucher_reused"), reused);
    cr_assert_eq(jtrue(v, "csr_support"), csr);
    cr_assert_str_eq(jstr(v, "encoding"), encoding);
}

static void expect_audit_intact(void)
{
    char *ca = pki_path("root-ca.crt"), *out;
    const char *env[] = {"MASAD_DATABASE_URL", proc.db.app_url, NULL};
    const char *args[] = {"audit", "verify", "--ca", ca, NULL};
    cr_assert_eq(masad_run(&out, env, args), 0, "%s", out);
    cr_assert(strstr(out, "audit log intact: "), "%s", out);
}

/* ---- 1: who the device is ---- */

Test(sztp, devices_authenticate_by_idevid_or_password, .init = start, .fini = stop, .timeout = 120)
{
    put_owner("acme", conveyed_sztp("conveyed-info-redirect-valid.json"));
    struct device a = make_device("a", true, true), b = make_device("b", true, true);
    struct device no_pw = make_device("nopw", false, true);
    struct device unknown = {.serial = unique("unregistered"), .password = "0123456789abcdefgh"};
    give_idevid(&unknown); /* a genuine IDevID the factory never registered */
    assign(&a, "acme");
    assign(&b, "acme");
    assign(&no_pw, "acme");
    /* a certificate that does not chain to the IDevID trust anchor */
    char *prefix = tmp_path("sztp-foreign-%d", (int)getpid()), *out;
    cr_assert_eq(sh(&out, "%s/pki.sh registrar %s foreign-%d %s", env_or_die("MASAD_TEST_DEV"),
                    env_or_die("MASAD_TEST_PKI"), (int)getpid(), prefix), 0, "%s", out);
    struct device foreign = {.serial = "foreign", .chain = fmt("%s-chain.crt", prefix),
                             .key = fmt("%s.key", prefix)};
    char *input = json_input("");

    /* accepted: the certificate, the password, both naming the same device */
    expect_output(call(BOOTSTRAP, input, JSON_TYPE, NULL, &a), false);
    expect_bootstrap_event(&a, "acme", "redirect", false, false, false, "json");
    expect_output(call(BOOTSTRAP, input, JSON_TYPE, basic_of(&a), NULL), false);
    expect_output(call(BOOTSTRAP, input, JSON_TYPE, basic_of(&a), &a), false);
    expect_output(call(BOOTSTRAP, input, JSON_TYPE, NULL, &no_pw), false);
    expect_bootstrap_event(&no_pw, "acme", "redirect", false, false, false, "json");
    expect_output(call(BOOTSTRAP, xml_input(""), XML_TYPE, basic_of(&b), NULL), true);
    expect_bootstrap_event(&b, "acme", "redirect", false, false, false, "xml");
    /* the input is optional: no body, {} and application/json too */
    expect_output(call(BOOTSTRAP, NULL, NULL, basic_of(&a), NULL), false);
    expect_output(call(BOOTSTRAP, "{}", JSON_TYPE, basic_of(&a), NULL), false);
    expect_output(call(BOOTSTRAP, input, "application/json", basic_of(&a), NULL), false);
    expect_output(call(BOOTSTRAP, input, "application/yang-data+json; charset=utf-8", basic_of(&a), NULL), false);
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.bootstrap'"), 9);

    /* refused, every time with the same answer: nothing tells whether a serial exists */
    long refusals = count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'");
    char *wrong_pw = fmt("%s:%s", a.serial, "not-the-password-0123");
    struct {
        const char *basic;
        const struct device *cert;
        const char *actor;          /* the refusal's actor in the audit log */
    } denied[] = {
        {NULL, NULL, "device:unauthenticated"},                 /* no credentials */
        {basic_of(&b), &a, "device:unauthenticated"},           /* two different serials */
        {basic_of(&a), &b, "device:unauthenticated"},
        {fmt("%s:%s", unique("nobody"), "0123456789abcdefgh"), NULL, "device:unauthenticated"},
        {wrong_pw, NULL, "device:unauthenticated"},             /* wrong password */
        {wrong_pw, &a, "device:unauthenticated"},               /* right certificate, wrong password */
        {fmt("%s:", a.serial), NULL, "device:unauthenticated"}, /* empty password */
        {fmt("%s:anything-0123456789", no_pw.serial), NULL, "device:unauthenticated"}, /* none set */
        {basic_of(&unknown), NULL, "device:unauthenticated"},   /* unknown serial */
        {NULL, &foreign, "device:unauthenticated"},             /* not an IDevID */
        {basic_of(&a), &foreign, "device:unauthenticated"},
        {NULL, &unknown, fmt("device:%s", unknown.serial)},     /* a real IDevID, unknown device */
    };
    size_t n = sizeof(denied) / sizeof(denied[0]);
    for (size_t i = 0; i < n; i++) {
        expect_denied(call(BOOTSTRAP, input, JSON_TYPE, denied[i].basic, denied[i].cert), false);
        cr_assert_str_eq(q("SELECT actor || ' ' || outcome || ' ' || (detail::json->>'status')"
                           " || ' ' || (detail::json->>'rpc') FROM audit_events"
                           " WHERE action = 'sztp.refuse' ORDER BY seq DESC LIMIT 1"),
                         fmt("%s refused 401 get-bootstrapping-data", denied[i].actor), "case %zu", i);
    }
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'"),
                 refusals + (long)n);
    /* the same in XML, and for report-progress */
    expect_denied(call(BOOTSTRAP, xml_input(""), XML_TYPE, NULL, NULL), true);
    expect_denied(call(BOOTSTRAP, xml_input(""), XML_TYPE, wrong_pw, NULL), true);
    char *progress = json_input("\"progress-type\": \"bootstrap-initiated\"");
    expect_denied(call(PROGRESS, progress, JSON_TYPE, NULL, NULL), false);
    expect_denied(call(PROGRESS, progress, JSON_TYPE, wrong_pw, NULL), false);
    expect_denied(call(PROGRESS, progress, JSON_TYPE, basic_of(&b), &a), false);
    expect_denied(call(PROGRESS, progress, JSON_TYPE, NULL, &unknown), false);
    expect_denied(call(PROGRESS, xml_input("<progress-type>bootstrap-initiated</progress-type>"),
                       XML_TYPE, NULL, &foreign), true);
    cr_assert_str_eq(q("SELECT detail::json->>'rpc' FROM audit_events WHERE action = 'sztp.refuse'"
                       " ORDER BY seq DESC LIMIT 1"), "report-progress");
    cr_assert_eq(count_of("SELECT count(*) FROM sztp_progress"), 0);
    /* the password works for report-progress too */
    struct http_result r = call(PROGRESS, progress, JSON_TYPE, basic_of(&b), NULL);
    cr_assert_eq(r.status, 204, "%ld %s", r.status, r.body);
    r = call(PROGRESS, progress, JSON_TYPE, NULL, &a);
    cr_assert_eq(r.status, 204, "%ld %s", r.status, r.body);
    cr_assert_str_eq(q("SELECT string_agg(serial_number, ',' ORDER BY id) FROM sztp_progress"),
                     fmt("%s,%s", b.serial, a.serial));

    /* RFC 8040 §5.2: neither JSON nor XML YANG data */
    expect_error(call(BOOTSTRAP, "hw-model=x", "text/plain", basic_of(&a), NULL), 415, false,
                 "protocol", "invalid-value", WRONG_TYPE, NULL);
    expect_error(call(PROGRESS, "{}", "text/plain", basic_of(&a), NULL), 415, false, "protocol",
                 "invalid-value", WRONG_TYPE, NULL);

    /* RFC 8040 §3.1: the RESTCONF root */
    r = http(&proc, "/.well-known/host-meta", NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(http_header(&r, "content-type"), "application/xrd+xml");
    cr_assert(strstr(r.body, "<Link rel='restconf' href='/restconf'/>"), "%s", r.body);
    cr_assert(strstr(r.body, "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>"), "%s", r.body);
    expect_audit_intact();
}

/* ---- 2: unsigned conveyed information, and no data ---- */

Test(sztp, unsigned_redirect_and_onboarding_information, .init = start, .fini = stop, .timeout = 120)
{
    put_owner("redirect-co", conveyed_sztp("conveyed-info-redirect-valid.json"));
    put_owner("onboard-co", conveyed_sztp("conveyed-info-onboarding-valid.json"));
    struct device r = make_device("redir", true, false), o = make_device("onb", true, false);
    assign(&r, "redirect-co");
    assign(&o, "onboard-co");
    const char *prefer_json = "\"signed-data-preferred\": [null], \"hw-model\": \"model-x\"";
    const char *prefer_xml = "<signed-data-preferred/><hw-model>model-x</hw-model>";

    /* JSON: id-ct-sztpConveyedInfoJSON holding the owner's information */
    struct output out = expect_output(ask(&r, json_input("\"hw-model\": \"model-x\""), false), false);
    cr_assert_eq(out.members, 1);
    expect_same_json(expect_content_info(out.conveyed, out.conveyed_len, OID_JSON),
                     "conveyed-info-redirect-valid.json");
    expect_bootstrap_event(&r, "redirect-co", "redirect", false, false, false, "json");
    out = expect_output(ask(&o, json_input(""), false), false);
    cr_assert_eq(out.members, 1);
    expect_same_json(expect_content_info(out.conveyed, out.conveyed_len, OID_JSON),
                     "conveyed-info-onboarding-valid.json");
    expect_bootstrap_event(&o, "onboard-co", "onboarding", false, false, false, "json");

    /* XML: id-ct-sztpConveyedInfoXML holding the XML encoding */
    out = expect_output(ask(&r, xml_input("<os-name>VendorOS</os-name>"), true), true);
    char *xml = expect_content_info(out.conveyed, out.conveyed_len, OID_XML);
    cr_assert(strstr(xml, "<redirect-information xmlns=\"" CONVEYED_NS "\">"), "%s", xml);
    cr_assert(strstr(xml, "<address>sztp2.example.com</address>"), "%s", xml);
    cr_assert(strstr(xml, "<port>8443</port>"), "%s", xml);
    cr_assert(strstr(xml, "<address>192.0.2.10</address>"), "%s", xml);
    cr_assert(strstr(xml, "<trust-anchor>MIIBwAYJKoZIhvcNAQcCoIIBsTCCAa0CAQExADAL"), "%s", xml);
    cr_assert_null(strchr(xml, '{'), "%s", xml);
    expect_bootstrap_event(&r, "redirect-co", "redirect", false, false, false, "xml");
    out = expect_output(ask(&o, xml_input(""), true), true);
    xml = expect_content_info(out.conveyed, out.conveyed_len, OID_XML);
    cr_assert(strstr(xml, "<onboarding-information xmlns=\"" CONVEYED_NS "\">"), "%s", xml);
    cr_assert(strstr(xml, "<os-name>VendorOS</os-name>"), "%s", xml);
    cr_assert(strstr(xml, "<os-version>17.3R2.1</os-version>"), "%s", xml);
    cr_assert(strstr(xml, "<configuration-handling>merge</configuration-handling>"), "%s", xml);
    cr_assert(strstr(xml, "<download-uri>ftp://ftp.example.com/vendoros-17.3R2.1.img</download-uri>"), "%s", xml);
    cr_assert(strstr(xml, "<post-configuration-script>IyEvYmluL3NoCmVjaG8gcG9zdAo=</post-configuration-script>"), "%s", xml);
    expect_bootstrap_event(&o, "onboard-co", "onboarding", false, false, false, "xml");

    /* RFC 8572 §4.4 (signed-data-preferred): signed data or an unsigned
     * redirect, never unsigned onboarding information */
    out = expect_output(ask(&r, json_input(prefer_json), false), false);
    cr_assert_eq(out.members, 1);
    expect_same_json(expect_content_info(out.conveyed, out.conveyed_len, OID_JSON),
                     "conveyed-info-redirect-valid.json");
    out = expect_output(ask(&r, xml_input(prefer_xml), true), true);
    cr_assert(strstr(expect_content_info(out.conveyed, out.conveyed_len, OID_XML),
                     "<redirect-information xmlns=\"" CONVEYED_NS "\">"));
    long before = count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.bootstrap'");
    expect_error(ask(&o, json_input(prefer_json), false), 404, false, "application", "invalid-value",
                 ONLY_UNSIGNED_ONBOARDING, NULL);
    cr_assert_str_eq(q("SELECT actor || ' ' || serial_number || ' ' || owner_id || ' ' ||"
                       " (detail::json->>'status') || ' ' || (detail::json->>'reason')"
                       " FROM audit_events WHERE action = 'sztp.refuse' ORDER BY seq DESC LIMIT 1"),
                     fmt("device:%s %s onboard-co 404 " ONLY_UNSIGNED_ONBOARDING, o.serial, o.serial));
    expect_error(ask(&o, xml_input(prefer_xml), true), 404, true, "application", "invalid-value",
                 ONLY_UNSIGNED_ONBOARDING, NULL);
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.bootstrap'"), before);

    /* a redirect whose server happens to be named like the other choice is
     * still a redirect (RFC 8572 §4.4 lets an unsigned redirect go to a
     * device that prefers signed data) */
    put_owner("tricky-co", "{\"conveyed_information\": {\"ietf-sztp-conveyed-info:redirect-information\":"
                           " {\"bootstrap-server\": [{\"address\": \"onboarding-information.example.net\"}]}}}");
    struct device t = make_device("tricky", true, false);
    assign(&t, "tricky-co");
    struct http_result tricky = ask(&t, json_input(prefer_json), false);
    cr_assert_eq(tricky.status, 200, "an unsigned redirect refused to a device that prefers"
                 " signed data: %ld %s", tricky.status, tricky.body);
    if (tricky.status == 200) {
        out = expect_output(tricky, false);
        cr_assert(strstr(expect_content_info(out.conveyed, out.conveyed_len, OID_JSON),
                         "onboarding-information.example.net"));
    }

    /* no bootstrapping data: the device moves on to its next source */
    struct device orphan = make_device("orphan", true, false), bare = make_device("bare", true, false);
    put_owner("bare-co", NULL);
    assign(&bare, "bare-co");
    expect_error(ask(&orphan, json_input(""), false), 404, false, "application", "invalid-value",
                 NO_OWNER, NULL);
    cr_assert_str_eq(q("SELECT actor || ' ' || serial_number || ' ' || coalesce(owner_id, '-')"
                       " FROM audit_events WHERE action = 'sztp.refuse' ORDER BY seq DESC LIMIT 1"),
                     fmt("device:%s %s -", orphan.serial, orphan.serial));
    expect_error(ask(&orphan, xml_input("<signed-data-preferred/>"), true), 404, true, "application",
                 "invalid-value", NO_OWNER, NULL);
    expect_error(ask(&bare, json_input(prefer_json), false), 404, false, "application",
                 "invalid-value", NO_SETTINGS, NULL);
    expect_error(ask(&bare, xml_input(""), true), 404, true, "application", "invalid-value",
                 NO_SETTINGS, NULL);
    cr_assert_str_eq(q("SELECT actor || ' ' || serial_number || ' ' || owner_id"
                       " FROM audit_events WHERE action = 'sztp.refuse' ORDER BY seq DESC LIMIT 1"),
                     fmt("device:%s %s bare-co", bare.serial, bare.serial));
    /* a released device has no owner any more */
    mgmt_ok("DELETE", fmt("/api/v1/devices/%s/ownership", r.serial), NULL);
    expect_error(ask(&r, json_input(""), false), 404, false, "application", "invalid-value",
                 NO_OWNER, NULL);
    cr_assert_eq(count_of("SELECT count(*) FROM vouchers"), 0);
    expect_audit_intact();
}

/* ---- 3: signed data, owner certificates and ownership vouchers ---- */

struct owner_chain {
    char *leaf, *ca, *key;
};

static struct owner_chain make_owner_chain(const char *name)
{
    char *prefix = tmp_path("sztp-owner-%s-%d", name, (int)getpid()), *out;
    cr_assert_eq(sh(&out, "%s/pki.sh registrar %s %s-%d %s", env_or_die("MASAD_TEST_DEV"),
                    env_or_die("MASAD_TEST_PKI"), name, (int)getpid(), prefix), 0, "%s", out);
    return (struct owner_chain){fmt("%s.crt", prefix), fmt("%s-ca.crt", prefix), fmt("%s.key", prefix)};
}

/* The owner's signed conveyed information (DER), as test_owners.c makes it. */
static unsigned char *sign_conveyed(const struct owner_chain *c, const char *file, size_t *len)
{
    char *der = tmp_path("sztp-signed-%d.der", (int)getpid()), *out;
    cr_assert_eq(sh(&out, "openssl cms -sign -binary -nodetach -outform DER -econtent_type " OID_JSON
                          " -signer %s -inkey %s -in %s -out %s",
                    c->leaf, c->key, data_path(file), der), 0, "%s", out);
    FILE *f = fopen(der, "rb");
    cr_assert(f);
    unsigned char *buf = malloc(65536);
    *len = fread(buf, 1, 65536, f);
    fclose(f);
    cr_assert(*len > 0);
    return buf;
}

static char *signed_sztp(const struct owner_chain *c, const unsigned char *cms, size_t len,
                         const char *unsigned_file)
{
    char *b64 = brski_base64(cms, len);
    return fmt("{\"owner_certificate\": [%s, %s], \"signed_conveyed_information\": \"%s\"%s%s}",
               json_string_of(file_text(c->leaf)), json_string_of(file_text(c->ca)), b64,
               unsigned_file ? ", \"conveyed_information\": " : "",
               unsigned_file ? file_text(data_path(unsigned_file)) : "");
}

/* RFC 8572 §3.2: a SignedData without signers that holds the owner's chain:
 * its certificate and the domain CA that the voucher pins. */
static STACK_OF(X509) *expect_owner_certificate(const struct output *o, const struct owner_chain *c)
{
    const unsigned char *p = o->owner_cert;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)o->owner_cert_len);
    cr_assert(cms, "owner-certificate is not CMS");
    cr_assert(p == o->owner_cert + o->owner_cert_len, "bytes after the owner-certificate");
    cr_assert_eq(OBJ_obj2nid(CMS_get0_type(cms)), NID_pkcs7_signed);
    cr_assert_eq(sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)), 0, "certs-only has no signer");
    cr_assert_eq(OBJ_obj2nid(CMS_get0_eContentType(cms)), NID_pkcs7_data);
    /* RFC 5652 §5.2: the degenerate case has no content */
    ASN1_OCTET_STRING **content = CMS_get0_content(cms);
    cr_assert(content && !*content, "owner-certificate has an eContent");
    STACK_OF(X509) *certs = CMS_get1_certs(cms);
    cr_assert(certs && sk_X509_num(certs) == 2, "%d certificates", certs ? sk_X509_num(certs) : -1);
    /* CertificateSet is a SET OF (DER sorts it): the chain, in any order */
    X509 *leaf = load_cert(c->leaf), *ca = load_cert(c->ca);
    cr_assert((same_cert(sk_X509_value(certs, 0), leaf) && same_cert(sk_X509_value(certs, 1), ca)) ||
                  (same_cert(sk_X509_value(certs, 1), leaf) && same_cert(sk_X509_value(certs, 0), ca)),
              "not the owner's certificate and its domain CA");
    CMS_ContentInfo_free(cms);
    /* the command line sees the same */
    char *in = write_temp("owner-cert.der", o->owner_cert, o->owner_cert_len), *text;
    cr_assert_eq(sh(&text, "openssl cms -cmsout -print -inform DER -in %s", in), 0, "%s", text);
    cr_assert(strstr(text, "contentType: pkcs7-signedData"), "%s", text);
    char *signers = strstr(text, "signerInfos:\n");
    cr_assert(signers && !strncmp(signers + 13 + strspn(signers + 13, " "), "<EMPTY>", 7), "%s", text);
    cr_assert(strstr(text, "eContent: <ABSENT>"), "%s", text);
    cr_assert_eq(sh(&text, "openssl pkcs7 -inform DER -in %s -print_certs -noout", in), 0, "%s", text);
    cr_assert(strstr(text, " registrar\n") && strstr(text, " domain CA\n"), "%s", text);
    return certs;
}

/* The conveyed information verifies as a device does it (RFC 8572 §5.4):
 * signer found among the owner-certificate's certificates, chain to the
 * voucher's pinned-domain-cert. */
static void expect_signed_conveyed(const struct output *o, STACK_OF(X509) *owner_certs, X509 *pinned,
                                   const struct owner_chain *c, const char *file)
{
    const unsigned char *p = o->conveyed;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)o->conveyed_len);
    cr_assert(cms, "conveyed-information is not CMS");
    char oid[64];
    OBJ_obj2txt(oid, sizeof(oid), CMS_get0_eContentType(cms), 1);
    cr_assert_str_eq(oid, OID_JSON);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, pinned);
    X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
    BIO *content = BIO_new(BIO_s_mem());
    cr_assert_eq(CMS_verify(cms, owner_certs, store, NULL, content, CMS_BINARY | CMS_NOINTERN), 1,
                 "the conveyed information does not verify with the owner certificate");
    char *data;
    long n = BIO_get_mem_data(content, &data);
    expect_same_json(strndup(data, (size_t)n), file);
    BIO_free(content);
    X509_STORE_free(store);
    CMS_ContentInfo_free(cms);
    char *in = write_temp("conveyed-signed.der", o->conveyed, o->conveyed_len), *text;
    char *got = fmt("%s.json", in);
    cr_assert_eq(sh(&text, "openssl cms -verify -inform DER -in %s -binary -CAfile %s -purpose any -out %s",
                    in, c->ca, got), 0, "%s", text);
    cr_assert(strstr(text, "Verification successful"), "%s", text);
    expect_same_json(read_text(got), file);
}

/* RFC 8572 §3.3 (RFC 8366): signed by the MASA key, for this device, with
 * its nonce or else an expiry; returns its JSON. */
static char *expect_ownership_voucher(const struct output *o, const struct device *d, X509 *pinned,
                                      const char *nonce_b64)
{
    char *json, err[512], *text;
    time_t now = time(NULL);
    cr_assert_eq(brski_verify_voucher(o->voucher, o->voucher_len, pki_path("root-ca.crt"), &json, err,
                                      sizeof(err)), 0, "%s", err);
    char *in = write_temp("ownership-voucher.der", o->voucher, o->voucher_len), *got = fmt("%s.json", in);
    cr_assert_eq(sh(&text, "openssl cms -verify -inform DER -in %s -binary -CAfile %s -purpose any -out %s",
                    in, pki_path("root-ca.crt"), got), 0, "%s", text);
    cr_assert(strstr(text, "Verification successful"), "%s", text);
    cr_assert_str_eq(read_text(got), json);
    yajl_val v = jget(parse_json(json), "ietf-voucher:voucher");
    cr_assert(v && YAJL_IS_OBJECT(v), "%s", json);
    cr_assert_str_eq(jstr(v, "serial-number"), d->serial);
    cr_assert_str_eq(jstr(v, "assertion"), "verified");
    size_t len, pinned_len;
    unsigned char *pin = unbase64(jstr(v, "pinned-domain-cert"), &len), *want = der_of(pinned, &pinned_len);
    cr_assert(len == pinned_len && !memcmp(pin, want, len), "pinned-domain-cert is not the domain CA");
    time_t created = parse_time(jstr(v, "created-on"));
    cr_assert(created >= now - 60 && created <= now + 5, "created-on %s", jstr(v, "created-on"));
    if (nonce_b64) {
        cr_assert_str_eq(jstr(v, "nonce"), nonce_b64);
        cr_assert_null(jget(v, "expires-on"), "%s", json);
        cr_assert_eq(jlen(v), 5, "%s", json);
    } else {
        cr_assert_null(jget(v, "nonce"), "%s", json);
        time_t expires = parse_time(jstr(v, "expires-on"));
        cr_assert_eq(expires - created, LIFETIME, "%s", json);
        cr_assert_eq(jlen(v), 5, "%s", json);
    }
    return json;
}

static bool same_bytes(const unsigned char *a, size_t la, const unsigned char *b, size_t lb)
{
    return la == lb && !memcmp(a, b, la);
}

Test(sztp, signed_data_owner_certificate_and_ownership_voucher, .init = start, .fini = stop,
     .timeout = 120)
{
    struct owner_chain chain = make_owner_chain("sztp-signer");
    size_t signed_len;
    unsigned char *signed_der = sign_conveyed(&chain, "conveyed-info-redirect-valid.json", &signed_len);
    /* both forms: the signed redirect and unsigned onboarding information */
    put_owner("signed-co", signed_sztp(&chain, signed_der, signed_len, "conveyed-info-onboarding-valid.json"));
    struct device d = make_device("signed", true, true);
    assign(&d, "signed-co");
    X509 *ca = load_cert(chain.ca);
    size_t ca_len;
    unsigned char *ca_der = der_of(ca, &ca_len);
    const char *nonce1 = "AAECAwQFBgcICQoLDA0ODw==";     /* 16 bytes */
    const char *nonce2 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="; /* 32 bytes */

    /* signed-data-preferred with a nonce: all three, a fresh voucher; the
     * owner certificate is the certs-only SignedData of RFC 8572 §3.2
     * (RFC 5652 §5.2: no eContent) */
    struct http_result first =
        call(BOOTSTRAP, json_input(fmt("\"signed-data-preferred\": [null], \"nonce\": \"%s\"", nonce1)),
             JSON_TYPE, NULL, &d);
    cr_assert_eq(first.status, 200, "%ld %s", first.status, first.body);
    struct output o1 = expect_output(first, false);
    cr_assert_eq(o1.members, 3);
    cr_assert(same_bytes(o1.conveyed, o1.conveyed_len, signed_der, signed_len),
              "the signed conveyed information is not the owner's, as uploaded");
    STACK_OF(X509) *certs = expect_owner_certificate(&o1, &chain);
    expect_signed_conveyed(&o1, certs, ca, &chain, "conveyed-info-redirect-valid.json");
    expect_ownership_voucher(&o1, &d, ca, nonce1);
    expect_bootstrap_event(&d, "signed-co", "redirect", true, false, false, "json");
    long first_voucher = YAJL_GET_INTEGER(jget(last_detail("sztp.bootstrap"), "voucher"));

    /* without the preference the unsigned form wins (docs/sztp.md) */
    struct output plain = expect_output(ask(&d, json_input("\"nonce\": \"AAECAwQFBgcICQoLDA0ODw==\""), false), false);
    cr_assert_eq(plain.members, 1);
    expect_same_json(expect_content_info(plain.conveyed, plain.conveyed_len, OID_JSON),
                     "conveyed-info-onboarding-valid.json");
    expect_bootstrap_event(&d, "signed-co", "onboarding", false, false, false, "json");

    /* nonceless: a voucher with expires-on, reused while it is fresh */
    struct output o2 = expect_output(ask(&d, json_input("\"signed-data-preferred\": [null]"), false), false);
    cr_assert_eq(o2.members, 3);
    char *nonceless = expect_ownership_voucher(&o2, &d, ca, NULL);
    expect_bootstrap_event(&d, "signed-co", "redirect", true, false, false, "json");
    long second_voucher = YAJL_GET_INTEGER(jget(last_detail("sztp.bootstrap"), "voucher"));
    cr_assert_neq(second_voucher, first_voucher);
    struct output o3 = expect_output(ask(&d, xml_input("<signed-data-preferred/>"), true), true);
    cr_assert_eq(o3.members, 3);
    cr_assert(same_bytes(o3.voucher, o3.voucher_len, o2.voucher, o2.voucher_len), "not reused");
    cr_assert(same_bytes(o3.conveyed, o3.conveyed_len, signed_der, signed_len));
    cr_assert(same_bytes(o3.owner_cert, o3.owner_cert_len, o1.owner_cert, o1.owner_cert_len));
    expect_bootstrap_event(&d, "signed-co", "redirect", true, true, false, "xml");
    cr_assert_eq(YAJL_GET_INTEGER(jget(last_detail("sztp.bootstrap"), "voucher")), second_voucher);

    /* a nonce makes a new one even so */
    struct output o4 = expect_output(
        call(BOOTSTRAP, json_input(fmt("\"signed-data-preferred\": [null], \"nonce\": \"%s\"", nonce2)),
             JSON_TYPE, basic_of(&d), &d), false);
    cr_assert_eq(o4.members, 3);
    expect_ownership_voucher(&o4, &d, ca, nonce2);
    cr_assert_not(same_bytes(o4.voucher, o4.voucher_len, o1.voucher, o1.voucher_len));
    cr_assert_not(same_bytes(o4.voucher, o4.voucher_len, o2.voucher, o2.voucher_len));
    expect_bootstrap_event(&d, "signed-co", "redirect", true, false, false, "json");

    /* signed data only: the device gets it without asking */
    put_owner("signed-co", signed_sztp(&chain, signed_der, signed_len, NULL));
    struct output o5 = expect_output(ask(&d, json_input("\"hw-model\": \"model-x\""), false), false);
    cr_assert_eq(o5.members, 3);
    cr_assert(same_bytes(o5.conveyed, o5.conveyed_len, signed_der, signed_len));
    cr_assert(same_bytes(o5.voucher, o5.voucher_len, o2.voucher, o2.voucher_len), "not reused");
    expect_bootstrap_event(&d, "signed-co", "redirect", true, true, false, "json");
    struct output o6 = expect_output(ask(&d, xml_input(""), true), true);
    cr_assert_eq(o6.members, 3);
    STACK_OF(X509) *certs6 = expect_owner_certificate(&o6, &chain);
    expect_signed_conveyed(&o6, certs6, ca, &chain, "conveyed-info-redirect-valid.json");
    cr_assert_str_eq(expect_ownership_voucher(&o6, &d, ca, NULL), nonceless);

    /* the vouchers are listed, newest first */
    yajl_val list = jget(mgmt_get(fmt("/api/v1/devices/%s/vouchers", d.serial)), "vouchers");
    cr_assert(list && jlen(list) == 3);
    const char *nonces[] = {nonce2, NULL, nonce1};
    for (size_t i = 0; i < 3; i++) {
        yajl_val v = jat(list, i);
        cr_assert_str_eq(jstr(v, "protocol"), "sztp");
        cr_assert_str_eq(jstr(v, "format"), "cms-json");
        cr_assert_str_eq(jstr(v, "assertion"), "verified");
        cr_assert_str_eq(jstr(v, "owner_id"), "signed-co");
        cr_assert_str_eq(jstr(v, "domain_cert_sha256"), sha256_hex(ca_der, ca_len));
        if (nonces[i]) {
            cr_assert_str_eq(jstr(v, "nonce"), nonces[i]);
            cr_assert_null(jstr(v, "expires_on"));
        } else {
            cr_assert_null(jstr(v, "nonce"));
            cr_assert(jstr(v, "expires_on"));
            cr_assert_eq(YAJL_GET_INTEGER(jget(v, "id")), second_voucher);
        }
    }
    cr_assert_eq(YAJL_GET_INTEGER(jget(jat(list, 2), "id")), first_voucher);
    yajl_val dev = mgmt_get(fmt("/api/v1/devices/%s", d.serial));
    cr_assert_eq(YAJL_GET_INTEGER(jget(dev, "vouchers_issued")), 3);
    cr_assert_str_eq(q("SELECT count(*) || ' ' || count(DISTINCT voucher) FROM vouchers WHERE protocol = 'sztp'"), "3 3");
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.bootstrap'"), 7);
    expect_audit_intact();
}

/* ---- 4: progress reports ---- */

Test(sztp, progress_reports_are_stored_and_listed, .init = start, .fini = stop, .timeout = 120)
{
    struct device d = make_device("progress", true, true);
    /* RFC 8572 §7.3: the terminating types; bootstrap-complete with host keys and trust anchors */
    struct http_result r = call(PROGRESS, file_text(data_path("report-progress-valid.json")), JSON_TYPE,
                                basic_of(&d), NULL);
    cr_assert_eq(r.status, 204, "%ld %s", r.status, r.body);
    cr_assert_eq(r.body_len, 0);
    const char *errors[] = {"boot-image-error", "pre-script-error", "config-error", "post-script-error",
                            "bootstrap-error"};
    for (size_t i = 0; i < 5; i++) {
        char *message = fmt("step %zu failed: <&> \"quoted\"", i);
        if (i % 2)
            r = call(PROGRESS, xml_input(fmt("<progress-type>%s</progress-type><message>step %zu failed:"
                                             " &lt;&amp;&gt; \"quoted\"</message>", errors[i], i)),
                     XML_TYPE, NULL, &d);
        else
            r = call(PROGRESS, json_input(fmt("\"progress-type\": \"%s\", \"message\": \"step %zu failed:"
                                              " <&> \\\"quoted\\\"\"", errors[i], i)),
                     JSON_TYPE, basic_of(&d), NULL);
        cr_assert_eq(r.status, 204, "%s: %ld %s", errors[i], r.status, r.body);
        cr_assert_str_eq(q("SELECT message FROM sztp_progress ORDER BY id DESC LIMIT 1"), message);
        cr_assert_str_eq(q("SELECT detail::json->>'progress_type' FROM audit_events"
                           " WHERE action = 'sztp.progress' ORDER BY seq DESC LIMIT 1"), errors[i]);
    }
    cr_assert_str_eq(q("SELECT string_agg(progress_type || ' ' || (ssh_host_keys IS NOT NULL) || ' '"
                       " || (trust_anchor_certs IS NOT NULL), ',' ORDER BY id) FROM sztp_progress"
                       " WHERE serial_number = '%s'", d.serial),
                     "bootstrap-complete true true,boot-image-error false false,pre-script-error false false,"
                     "config-error false false,post-script-error false false,bootstrap-error false false");
    cr_assert_str_eq(q("SELECT ssh_host_keys::text FROM sztp_progress WHERE progress_type = 'bootstrap-complete'"),
                     "[{\"key_data\": \"AAAAC3NzaC1lZDI1NTE5AAAAIOYOlJA9k+wPCKIlLXIJo6A5o3hyB/E7fB0SUw7ApNS7\","
                     " \"algorithm\": \"ssh-ed25519\"}]");
    cr_assert(!strncmp(q("SELECT trust_anchor_certs::text FROM sztp_progress WHERE progress_type = 'bootstrap-complete'"),
                       "[\"MIIBwAYJKoZIhvcNAQcCoIIBsTCCAa0CAQExADAL", 41));
    cr_assert_str_eq(q("SELECT message FROM sztp_progress WHERE progress_type = 'bootstrap-complete'"),
                     "bootstrapping finished");

    /* visible through the management API, newest first */
    yajl_val list = jget(mgmt_get(fmt("/api/v1/devices/%s/progress", d.serial)), "progress");
    cr_assert(list && jlen(list) == 6);
    for (size_t i = 0; i < 5; i++)
        cr_assert_str_eq(jstr(jat(list, i), "progress_type"), errors[4 - i]);
    cr_assert_str_eq(jstr(jat(list, 5), "progress_type"), "bootstrap-complete");
    cr_assert_str_eq(jstr(jat(list, 5), "message"), "bootstrapping finished");
    cr_assert_str_eq(jstr(jat(list, 0), "message"), "step 4 failed: <&> \"quoted\"");
    yajl_val last = jget(mgmt_get(fmt("/api/v1/devices/%s", d.serial)), "last_progress");
    cr_assert(last && YAJL_IS_OBJECT(last));
    cr_assert_str_eq(jstr(last, "progress_type"), "bootstrap-error");
    cr_assert_str_eq(jstr(last, "message"), "step 4 failed: <&> \"quoted\"");
    cr_assert(parse_time(jstr(last, "at")) >= time(NULL) - 60);

    /* every one of them is audited */
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.progress'"), 6);
    cr_assert_str_eq(q("SELECT count(*) FROM audit_events WHERE action = 'sztp.progress'"
                       " AND actor = 'device:%s' AND serial_number = '%s' AND outcome = 'ok'",
                       d.serial, d.serial), "6");
    cr_assert_str_eq(q("SELECT detail::json->>'message' FROM audit_events WHERE action = 'sztp.progress'"
                       " ORDER BY seq LIMIT 1"), "bootstrapping finished");
    expect_audit_intact();
}

/* ---- 5: what devices send ---- */

static void expect_invalid(struct http_result r, bool xml, const char *contains)
{
    expect_error(r, 400, xml, "application", "invalid-value", NULL, "invalid input: ");
    expect_error(r, 400, xml, "application", "invalid-value", NULL, contains);
}

Test(sztp, malformed_input_is_refused_and_deployed_agents_tolerated, .init = start, .fini = stop,
     .timeout = 120)
{
    put_owner("acme", conveyed_sztp("conveyed-info-redirect-valid.json"));
    struct device d = make_device("input", true, false);
    assign(&d, "acme");
    long refusals = count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'");

    /* breaking the YANG module: 400 with the path of the fault */
    expect_invalid(ask(&d, json_input("\"signed-data-preferred\": \"yes\""), false), false,
                   "/ietf-sztp-bootstrap-server:get-bootstrapping-data/signed-data-preferred");
    expect_invalid(ask(&d, json_input("\"nonce\": \"***not base64***\""), false), false,
                   "/ietf-sztp-bootstrap-server:get-bootstrapping-data/nonce");
    expect_invalid(ask(&d, json_input("\"nonce\": \"AAECAwQFBgc=\""), false), false, /* 8 bytes */
                   "/ietf-sztp-bootstrap-server:get-bootstrapping-data/nonce");
    expect_invalid(ask(&d, json_input("\"nonce\": \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\""), false), false, /* 33 */
                   "/ietf-sztp-bootstrap-server:get-bootstrapping-data/nonce");
    expect_invalid(ask(&d, json_input("\"hw-model\": \"x\", \"colour\": \"red\""), false), false, "colour");
    expect_invalid(ask(&d, json_input("\"hw-model\": 7"), false), false,
                   "/ietf-sztp-bootstrap-server:get-bootstrapping-data/hw-model");
    expect_invalid(ask(&d, xml_input("<nonce>AAECAwQFBgc=</nonce>"), true), true,
                   "/ietf-sztp-bootstrap-server:get-bootstrapping-data/nonce");
    expect_invalid(ask(&d, xml_input("<colour>red</colour>"), true), true, "colour");
    expect_invalid(call(PROGRESS, json_input("\"progress-type\": \"bootstrap-done\""), JSON_TYPE,
                        basic_of(&d), NULL), false,
                   "/ietf-sztp-bootstrap-server:report-progress/progress-type");
    expect_invalid(call(PROGRESS, xml_input("<progress-type>bootstrap-done</progress-type>"), XML_TYPE,
                        basic_of(&d), NULL), true,
                   "/ietf-sztp-bootstrap-server:report-progress/progress-type");
    expect_invalid(call(PROGRESS, json_input("\"message\": \"no type\""), JSON_TYPE, basic_of(&d), NULL), false,
                   "progress-type");
    expect_invalid(call(PROGRESS, json_input("\"progress-type\": \"config-error\", \"colour\": \"red\""),
                        JSON_TYPE, basic_of(&d), NULL), false, "colour");
    /* host keys belong to bootstrap-complete only (the module's when) */
    expect_invalid(call(PROGRESS, json_input("\"progress-type\": \"config-error\", \"ssh-host-keys\":"
                                             " {\"ssh-host-key\": [{\"algorithm\": \"ssh-ed25519\","
                                             " \"key-data\": \"AAAA\"}]}"),
                        JSON_TYPE, basic_of(&d), NULL), false, "ssh-host-keys");
    /* not the expected shape at all */
    expect_error(ask(&d, "{\"ietf-sztp-bootstrap-server:input\": ", false), 400, false, "protocol",
                 "malformed-message", NULL, "malformed input: ");
    expect_error(ask(&d, "{\"input\": {}}", false), 400, false, "protocol", "malformed-message",
                 "malformed input: the body must be {\"ietf-sztp-bootstrap-server:input\": {...}}", NULL);
    expect_error(ask(&d, "<foo xmlns=\"" NS "\"/>", true), 400, true, "protocol", "malformed-message",
                 "malformed input: the body must be an &lt;input&gt; element of " NS, NULL);
    expect_error(call(PROGRESS, "[]", JSON_TYPE, basic_of(&d), NULL), 400, false, "protocol",
                 "malformed-message",
                 "malformed input: the body must be {\"ietf-sztp-bootstrap-server:input\": {...}}", NULL);
    /* every refusal of a known device is audited with its serial */
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'"), refusals + 17);
    cr_assert_str_eq(q("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'"
                       " AND serial_number = '%s' AND detail::json->>'status' = '400'", d.serial), "17");
    cr_assert_eq(count_of("SELECT count(*) FROM sztp_progress"), 0);
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action IN ('sztp.bootstrap', 'sztp.progress')"), 0);

    /* deployed agents: empty-string leaves and empty containers are left out */
    expect_output(ask(&d, json_input("\"hw-model\": \"\", \"os-name\": \"\", \"os-version\": \"\","
                                     " \"nonce\": \"\", \"ietf-sztp-csr:csr-support\": {}"), false), false);
    expect_bootstrap_event(&d, "acme", "redirect", false, false, false, "json");
    struct http_result r = call(PROGRESS, json_input("\"progress-type\": \"bootstrap-complete\", \"message\": \"\","
                                                     " \"ssh-host-keys\": {}, \"trust-anchor-certs\": {}"),
                                JSON_TYPE, basic_of(&d), NULL);
    cr_assert_eq(r.status, 204, "%ld %s", r.status, r.body);
    r = call(PROGRESS, json_input("\"progress-type\": \"config-error\", \"ssh-host-keys\": {}"), JSON_TYPE,
             basic_of(&d), NULL);
    cr_assert_eq(r.status, 204, "%ld %s", r.status, r.body);
    r = call(PROGRESS, json_input("\"progress-type\": \"bootstrap-complete\""), JSON_TYPE, basic_of(&d), NULL);
    cr_assert_eq(r.status, 204, "%ld %s", r.status, r.body);
    cr_assert_str_eq(q("SELECT string_agg(progress_type || ' ' || coalesce(message, '-'), ',' ORDER BY id)"
                       " FROM sztp_progress"),
                     "bootstrap-complete -,config-error -,bootstrap-complete -");
    /* host keys and trust anchors are kept only when the device sent them */
    cr_assert_str_eq(q("SELECT string_agg(coalesce(ssh_host_keys::text, 'NULL') || ' '"
                       " || coalesce(trust_anchor_certs::text, 'NULL'), ',' ORDER BY id) FROM sztp_progress"),
                     "NULL NULL,NULL NULL,NULL NULL");

    /* RFC 9646: csr-support parses and is recorded */
    struct output o = expect_output(ask(&d, file_text(data_path("csr-support-input-valid.json")), false), false);
    cr_assert_eq(o.members, 1);
    expect_bootstrap_event(&d, "acme", "redirect", false, false, true, "json");
    expect_audit_intact();
}
