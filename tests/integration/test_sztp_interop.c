/*
 * SZTP with real clients (docs/sztp.md): which IDevID certificates identify
 * a device, agents that send HTTP Basic next to their IDevID, and the
 * host keys and trust anchors of report-progress (RFC 8572 §7.3), kept and
 * listed through the management API. Certificates are made at test time.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PROGRESS "/restconf/operations/ietf-sztp-bootstrap-server:report-progress"
#define DENIED                                                                                     \
    "the device could not be authenticated: present an IDevID client certificate or HTTP Basic "  \
    "credentials (serial number and password)"
#define COMPLETE "\"progress-type\": \"bootstrap-complete\""

static struct masad_proc proc;
static char *token;

static void start(void)
{
    cr_assert(masad_start(&proc, NULL), "%s", read_text(proc.stderr_path));
    token = make_token(&proc, "interop", "devices:read,devices:write");
}

static void stop(void) { masad_stop_expect_clean(&proc); }

#define q(...) owner_value(&proc, __VA_ARGS__)

static void register_device(const char *serial, const char *password)
{
    char *body = password ? fmt("{\"product\": \"p\", \"sztp_password\": \"%s\"}", password)
                          : strdup("{\"product\": \"p\"}");
    struct http_opts o = {.management = true, .method = "PUT", .body = body,
                          .body_len = strlen(body), .content_type = "application/json",
                          .bearer = token};
    struct http_result r = http(&proc, fmt("/api/v1/devices/%s", serial), &o);
    cr_assert(r.status == 201 || r.status == 200, "%ld %s", r.status, r.body);
}

/* An IDevID for serial from the test IDevID CA, with these extensions
 * (an openssl extension section's lines; NULL: none at all). Gives the
 * chain file's path; the key is at the same path with ".key". */
static char *idevid_with(const char *serial, const char *extensions)
{
    char *p = tmp_path("interop-%d-%s", (int)getpid(), serial), *out;
    const char *pki = env_or_die("MASAD_TEST_PKI");
    char *ext = fmt("%s.ext", p);
    FILE *f = fopen(ext, "w");
    cr_assert(f);
    fprintf(f, "[e]\n%s\n", extensions ? extensions : "");
    fclose(f);
    cr_assert_eq(sh(&out,
                    "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key"
                    " -subj '/serialNumber=%s' -out %s.csr &&"
                    " openssl x509 -req -in %s.csr -CA %s/idevid-ca.crt -CAkey %s/idevid-ca.key"
                    " -set_serial 0x%x%04x -days 30 %s%s%s -out %s.crt &&"
                    " cat %s.crt %s/idevid-ca.crt > %s-chain.crt",
                    p, serial, p, p, pki, pki, (unsigned)getpid(), (unsigned)rand() & 0xffff,
                    extensions ? "-extfile " : "", extensions ? ext : "",
                    extensions ? " -extensions e" : "", p, p, pki, p),
                 0, "%s", out);
    return fmt("%s-chain.crt", p);
}

struct who {
    const char *chain;          /* IDevID chain file, or NULL */
    const char *basic;          /* "user:password", or NULL */
    const char *header;         /* another header sent as it is, or NULL */
};

static struct http_result progress(const struct who *w, const char *input)
{
    char *body = fmt("{\"ietf-sztp-bootstrap-server:input\": {%s}}", input);
    char *key = w->chain ? fmt("%.*s.key", (int)(strlen(w->chain) - strlen("-chain.crt")), w->chain)
                         : NULL;
    struct http_opts o = {.body = body, .body_len = strlen(body),
                          .content_type = "application/yang-data+json", .client_cert = w->chain,
                          .client_key = key, .basic_auth = w->basic, .extra_header = w->header};
    return http(&proc, PROGRESS, &o);
}

static void expect_error(struct http_result r, long status, const char *tag, const char *message)
{
    cr_assert_eq(r.status, status, "%ld %s", r.status, r.body);
    char *want = fmt("\"error-tag\":\"%s\",\"error-message\":\"%s\"", tag, message);
    cr_assert(strstr(r.body, want), "expected %s in %s", want, r.body);
}

static long count_of(const char *sql) { return atol(q("%s", sql)); }

/* ---- the IDevID is an end-entity client certificate ---- */

Test(interop, only_end_entity_client_certificates_identify_a_device, .init = start, .fini = stop,
     .timeout = 120)
{
    static const struct {
        const char *serial, *extensions;
        bool accepted;
    } cases[] = {
        {"EE-PLAIN", "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
                     "extendedKeyUsage = clientAuth", true},
        {"EE-NONE", NULL, true},
        {"EE-BARE", "subjectKeyIdentifier = hash", true},
        {"EE-ANYKU", "keyUsage = critical, digitalSignature, keyEncipherment", true},
        {"EE-CA", "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, digitalSignature, keyCertSign",
         false},
        {"EE-CA-ONLY", "basicConstraints = CA:TRUE", false},
        {"EE-SERVER", "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
                      "extendedKeyUsage = serverAuth", false},
        {"EE-KEYENC", "keyUsage = critical, keyEncipherment\nextendedKeyUsage = clientAuth", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        register_device(cases[i].serial, NULL);
        struct who w = {.chain = idevid_with(cases[i].serial, cases[i].extensions)};
        long refusals = count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'");
        struct http_result r = progress(&w, COMPLETE);
        if (cases[i].accepted) {
            cr_assert_eq(r.status, 204, "%s: %ld %s", cases[i].serial, r.status, r.body);
            continue;
        }
        expect_error(r, 401, "access-denied", DENIED);
        cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'"),
                     refusals + 1, "%s", cases[i].serial);
        cr_assert_eq(count_of(fmt("SELECT count(*) FROM sztp_progress WHERE serial_number = '%s'",
                                  cases[i].serial)), 0, "%s", cases[i].serial);
    }
}

/* ---- Basic next to the IDevID (opiproject sztp-agent) ---- */

Test(interop, basic_naming_the_idevid_serial_of_a_device_without_password_is_ignored,
     .init = start, .fini = stop, .timeout = 120)
{
    register_device("AGENT-1", NULL);
    register_device("AGENT-2", NULL);
    register_device("AGENT-PW", "agent-password-0123456789");
    char *one = idevid_with("AGENT-1", NULL), *pw = idevid_with("AGENT-PW", NULL);
    const struct who accepted[] = {
        {one, "AGENT-1:AGENT-1", NULL}, /* what the agent sends */
        {one, "AGENT-1:", NULL},
        {one, NULL, NULL},
        {pw, "AGENT-PW:agent-password-0123456789", NULL}, /* both, and both right */
    };
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
        cr_assert_eq(progress(&accepted[i], COMPLETE).status, 204, "%zu: %s", i,
                     accepted[i].basic ? accepted[i].basic : "no Basic");
    cr_assert_eq(count_of("SELECT count(*) FROM sztp_progress WHERE serial_number = 'AGENT-1'"), 3);

    const struct who refused[] = {
        {one, "AGENT-2:AGENT-2", NULL},  /* another device's serial */
        {one, "AGENT-10:x", NULL},       /* a serial that starts like it */
        {one, NULL, "Authorization: Basic QUdFTlQtMQ=="}, /* "AGENT-1": not user:password */
        {pw, "AGENT-PW:wrong", NULL},    /* a password exists and this is not it */
        {pw, "AGENT-PW:", NULL},
        {NULL, "AGENT-1:AGENT-1", NULL}, /* Basic alone needs a password */
    };
    long before = count_of("SELECT count(*) FROM sztp_progress");
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct http_result r = progress(&refused[i], COMPLETE);
        cr_assert_eq(r.status, 401, "%zu: %s", i, refused[i].basic ? refused[i].basic : refused[i].header);
        expect_error(r, 401, "access-denied", DENIED);
    }
    cr_assert_eq(count_of("SELECT count(*) FROM sztp_progress"), before);
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'"), 6);
}

/* ---- report-progress: host keys and trust anchors ---- */

#define ED25519 "AAAAC3NzaC1lZDI1NTE5AAAAIOYOlJA9k+wPCKIlLXIJo6A5o3hyB/E7fB0SUw7ApNS7"

/* The base64 of a degenerate SignedData holding the PEM file's certificates. */
static char *certs_only_of(const char *pem_files)
{
    char *out;
    cr_assert_eq(sh(&out, "for f in %s; do printf -- '-certfile %%s ' $f; done |"
                          " xargs openssl crl2pkcs7 -nocrl -outform DER | base64 -w0", pem_files),
                 0, "%s", out);
    return out;
}

static char *anchors_input(const char *b64)
{
    return fmt(COMPLETE ", \"trust-anchor-certs\": {\"trust-anchor-cert\": [\"%s\"]}", b64);
}

Test(interop, progress_keeps_host_keys_and_trust_anchors, .init = start, .fini = stop, .timeout = 120)
{
    register_device("PROG-1", NULL);
    struct who w = {.chain = idevid_with("PROG-1", NULL)};
    char *roots = certs_only_of(fmt("%s %s", pki_path("root-ca.crt"), pki_path("idevid-ca.crt")));
    char *input = fmt(COMPLETE ", \"message\": \"done\", \"ssh-host-keys\": {\"ssh-host-key\": ["
                      "{\"algorithm\": \"ssh-ed25519\", \"key-data\": \"" ED25519 "\"},"
                      "{\"algorithm\": \"ecdsa-sha2-nistp256\", \"key-data\": \"AAAA\"}]},"
                      " \"trust-anchor-certs\": {\"trust-anchor-cert\": [\"%s\"]}", roots);
    struct http_result r = progress(&w, input);
    cr_assert_eq(r.status, 204, "%ld %s", r.status, r.body); /* RFC 8040 §4.4.2: no output */
    cr_assert_eq(r.body_len, 0);
    cr_assert_eq(progress(&w, "\"progress-type\": \"informational\"").status, 204);

    struct http_opts o = {.management = true, .bearer = token};
    r = http(&proc, "/api/v1/devices/PROG-1/progress", &o);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    char *newest = strstr(r.body, "\"progress_type\":\"informational\"");
    char *complete = strstr(r.body, "\"progress_type\":\"bootstrap-complete\"");
    cr_assert(newest && complete && newest < complete, "%s", r.body);
    cr_assert(strstr(newest, "\"ssh_host_keys\":null,\"trust_anchor_certs\":null"), "%s", r.body);
    char *want = fmt("\"message\":\"done\",\"ssh_host_keys\":[{\"key_data\":\"" ED25519 "\","
                     "\"algorithm\":\"ssh-ed25519\"},{\"key_data\":\"AAAA\",\"algorithm\":"
                     "\"ecdsa-sha2-nistp256\"}],\"trust_anchor_certs\":[\"%s\"]", roots);
    cr_assert(strstr(complete, want), "expected %s in %s", want, r.body);
}

Test(interop, progress_refuses_what_is_not_a_certs_only_cms, .init = start, .fini = stop, .timeout = 120)
{
    register_device("PROG-BAD", NULL);
    struct who w = {.chain = idevid_with("PROG-BAD", NULL)};
    /* a CMS signed by someone: a SignedData, but not certs-only */
    char *signed_b64, *pki = (char *)env_or_die("MASAD_TEST_PKI");
    cr_assert_eq(sh(&signed_b64, "echo hi | openssl cms -sign -nodetach -binary -outform DER"
                                 " -signer %s/idevid-ca.crt -inkey %s/idevid-ca.key | base64 -w0", pki, pki),
                 0, "%s", signed_b64);
    char *data_b64;
    cr_assert_eq(sh(&data_b64, "echo hi | openssl cms -data_create -outform DER | base64 -w0"), 0, "%s", data_b64);
    char *trailing;
    cr_assert_eq(sh(&trailing, "(openssl crl2pkcs7 -nocrl -certfile %s/root-ca.crt -outform DER; echo x)"
                               " | base64 -w0", pki), 0, "%s", trailing);
    char *empty;
    cr_assert_eq(sh(&empty, "openssl crl2pkcs7 -nocrl -outform DER | base64 -w0"), 0, "%s", empty);
    const struct {
        const char *b64, *why;
    } bad[] = {
        {"AAAA", "is not a DER CMS structure"},
        {trailing, "is not a DER CMS structure"},
        {data_b64, "is not a CMS SignedData"},
        {signed_b64, "is signed: a certs-only structure has no signers"},
        {empty, "holds 0 certificates: 1 to 8 are allowed"},
    };
    long refusals = count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(progress(&w, anchors_input(bad[i].b64)), 400, "invalid-value",
                     fmt("invalid input: trust-anchor-cert 1 %s (a CMS certs-only structure is "
                         "expected, RFC 8572 §7.3)", bad[i].why));
    /* bounded: 17 host keys, 9 trust anchors */
    char *keys = strdup("");
    for (int i = 0; i < 17; i++)
        keys = fmt("%s%s{\"algorithm\": \"ssh-ed25519\", \"key-data\": \"AAAA\"}", keys, i ? "," : "");
    expect_error(progress(&w, fmt(COMPLETE ", \"ssh-host-keys\": {\"ssh-host-key\": [%s]}", keys)), 400,
                 "invalid-value", "invalid input: more than 16 ssh-host-key entries");
    char *many = strdup(""); /* counted before they are read */
    for (int i = 0; i < 9; i++)
        many = fmt("%s%s\"AAA%c\"", many, i ? "," : "", 'A' + i);
    expect_error(progress(&w, fmt(COMPLETE ", \"trust-anchor-certs\": {\"trust-anchor-cert\": [%s]}", many)),
                 400, "invalid-value", "invalid input: more than 8 trust-anchor-cert entries");
    /* and in size */
    char *big_anchor = malloc(64 * 1024 + 5), *big_key = malloc(16 * 1024 + 5);
    memset(big_anchor, 'A', 64 * 1024 + 4);
    big_anchor[64 * 1024 + 4] = 0;
    memset(big_key, 'A', 16 * 1024 + 4);
    big_key[16 * 1024 + 4] = 0;
    expect_error(progress(&w, anchors_input(big_anchor)), 400, "invalid-value",
                 "invalid input: trust-anchor-cert 1 is larger than 64 KiB or not base64 (a CMS "
                 "certs-only structure is expected, RFC 8572 §7.3)");
    const char *too_long[] = {fmt("{\"algorithm\": \"ssh-ed25519\", \"key-data\": \"%s\"}", big_key),
                              "{\"algorithm\": \"" "ssh-ed25519-0123456789-0123456789-0123456789-0123456789-0123456789"
                              "\", \"key-data\": \"AAAA\"}"};
    for (size_t i = 0; i < 2; i++)
        expect_error(progress(&w, fmt(COMPLETE ", \"ssh-host-keys\": {\"ssh-host-key\": ["
                                      "{\"algorithm\": \"ssh-rsa\", \"key-data\": \"AAAA\"}, %s]}",
                                      too_long[i])),
                     400, "invalid-value",
                     "invalid input: ssh-host-key 2 is larger than 64 bytes of algorithm or 16384 of key-data");
    cr_assert_eq(count_of("SELECT count(*) FROM sztp_progress"), 0);
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.refuse'"), refusals + 10);
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'sztp.progress'"), 0);
}

/* migrations/0008: reports stored before in libyang's shape are listed in
 * the new one */
Test(interop, reports_stored_in_the_old_shape_are_rewritten, .init = start, .fini = stop, .timeout = 120)
{
    register_device("PROG-OLD", NULL);
    char *err = NULL;
    cr_assert_eq(db_exec(proc.db.owner_url,
                         "ALTER TABLE sztp_progress DROP CONSTRAINT sztp_progress_ssh_host_keys_array,"
                         " DROP CONSTRAINT sztp_progress_trust_anchor_certs_array;"
                         "DELETE FROM schema_migrations WHERE version = 8;"
                         "INSERT INTO sztp_progress (serial_number, progress_type, ssh_host_keys,"
                         " trust_anchor_certs) VALUES ('PROG-OLD', 'bootstrap-complete',"
                         " '{\"ietf-sztp-bootstrap-server:ssh-host-keys\": {\"ssh-host-key\":"
                         " [{\"algorithm\": \"ssh-ed25519\", \"key-data\": \"" ED25519 "\"}]}}',"
                         " '{\"ietf-sztp-bootstrap-server:trust-anchor-certs\":"
                         " {\"trust-anchor-cert\": [\"AAAA\"]}}')", &err), 0, "%s", err);
    char *out;
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", proc.db.owner_url, NULL};
    const char *args[] = {"migrate", NULL};
    cr_assert_eq(masad_run(&out, env, args), 0, "%s", out);
    cr_assert(strstr(out, "applied 0008_progress_detail.sql"), "%s", out);
    struct http_opts o = {.management = true, .bearer = token};
    struct http_result r = http(&proc, "/api/v1/devices/PROG-OLD/progress", &o);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "\"ssh_host_keys\":[{\"key_data\":\"" ED25519 "\",\"algorithm\":\"ssh-ed25519\"}],"
                             "\"trust_anchor_certs\":[\"AAAA\"]"), "%s", r.body);
    cr_assert_neq(db_exec(proc.db.owner_url, "INSERT INTO sztp_progress (serial_number, progress_type,"
                                             " ssh_host_keys) VALUES ('PROG-OLD', 'informational', '{}')",
                          NULL), 0, "an object passed the check");
}
