/*
 * The command line, black-box (docs/operations.md, Commands): options per
 * command, check-config's faults, token names, scopes, expiry and last use,
 * and the messages of audit verify and serve when something is missing.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct masad_proc proc;

static void start(void)
{
    cr_assert(masad_start(&proc, NULL), "masad did not start: %s", read_text(proc.stderr_path));
}

static void stop(void) { masad_stop_expect_clean(&proc); }

/* masad's stdout and stderr apart, and its exit status */
struct run {
    int status;
    char *out, *err;
};

static struct run cli(const char *env, const char *args)
{
    char *errfile = tmp_path("cli-%d.err", (int)getpid());
    struct run r;
    r.status = sh(&r.out, "env %s '%s' %s 2>'%s'", env ? env : "", env_or_die("MASAD_TEST_BIN"),
                  args, errfile);
    r.err = read_text(errfile);
    cr_assert(r.err);
    return r;
}

static bool has(const char *text, const char *what) { return strstr(text, what) != NULL; }

/* ---- options ---- */

/* --help answers before any configuration or database is read: both are
 * unusable here. */
Test(cli, help_of_each_command_touches_nothing)
{
    static const char *const commands[] = {"serve", "check-config", "health", "migrate",
                                           "token create", "token list", "token revoke",
                                           "audit verify", "audit export-checkpoints", "version"};
    for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
        struct run r = cli("MASAD_CONFIG=/nonexistent MASAD_DATABASE_URL=postgresql://nowhere:1/x",
                           fmt("%s --help", commands[i]));
        cr_assert_eq(r.status, 0, "%s: %s %s", commands[i], r.out, r.err);
        cr_assert(!strncmp(r.out, fmt("usage: masad %s", commands[i]),
                           strlen("usage: masad ") + strlen(commands[i])), "%s", r.out);
        cr_assert_str_eq(r.err, "", "%s", commands[i]);
    }
}

Test(cli, unknown_options_and_missing_values_are_usage_errors)
{
    static const char *const cases[][2] = {
        {"serve --bogus", "masad serve: unknown option --bogus\n"},
        {"serve -x", "masad serve: unknown option -x\n"},
        {"serve --config", "masad serve: option --config needs a value\n"},
        {"serve -c", "masad serve: option -c needs a value\n"},
        {"serve extra", "masad serve: unexpected operand extra\n"},
        {"token create --name a --scope", "masad token create: option --scope needs a value\n"},
        {"token create --nme a", "masad token create: unknown option --nme\n"},
        {"token revoke", "masad token revoke: an operand is missing\n"},
        {"audit verify --ca", "masad audit verify: option --ca needs a value\n"},
        {"migrate --dir", "masad migrate: option --dir needs a value\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct run r = cli("MASAD_CONFIG=/nonexistent", cases[i][0]);
        cr_assert_eq(r.status, 2, "%s: %s", cases[i][0], r.err);
        cr_assert_str_eq(r.out, "", "%s", cases[i][0]);
        cr_assert(!strncmp(r.err, cases[i][1], strlen(cases[i][1])), "%s: %s", cases[i][0], r.err);
        cr_assert(has(r.err, "\nusage: masad "), "%s: %s", cases[i][0], r.err);
    }
}

/* the revision comes from git at build time ("unknown" from a tarball) */
Test(cli, version_names_the_source_revision)
{
    struct run r = cli(NULL, "version");
    cr_assert_eq(r.status, 0);
    regex_t re;
    cr_assert_eq(regcomp(&re, "^masad [0-9]+\\.[0-9]+\\.[0-9]+ \\(([0-9a-f]{7,}|v?[0-9][^ ]*)"
                              "(-dirty)?\\)\n$|^masad [0-9.]+ \\(unknown\\)\n$",
                         REG_EXTENDED), 0);
    cr_assert_eq(regexec(&re, r.out, 0, NULL, 0), 0, "%s", r.out);
    regfree(&re);
    char *head;
    if (sh(&head, "git -C '%s' rev-parse --short=7 HEAD", env_or_die("MASAD_TEST_ROOT")) == 0) {
        head[strcspn(head, "\n")] = '\0';
        cr_assert(has(r.out, head), "a git checkout at %s: %s", head, r.out);
    }
}

/* ---- check-config ---- */

static char *config_with(const char *tls_cert, const char *tls_key, const char *anchor,
                         const char *signer_key, const char *signer_cert, unsigned management)
{
    char *text = fmt("{\"masad-config:listeners\": {\"device\": {\"address\": \"127.0.0.1\","
                     " \"port\": 18443}, \"management\": {\"address\": \"127.0.0.1\", \"port\": %u}},"
                     " \"masad-config:tls\": {\"certificate\": \"%s\", \"private-key\": \"%s\"},"
                     " \"masad-config:idevid\": {\"trust-anchor\": [{\"name\": \"factory\","
                     " \"certificate\": \"%s\"}]},"
                     " \"masad-config:database\": {\"url\": \"postgresql:///masad\"},"
                     " \"masad-config:signer\": {\"key\": \"%s\", \"certificate\": \"%s\"}}",
                     management, tls_cert, tls_key, anchor, signer_key, signer_cert);
    return write_temp("check.json", text, strlen(text));
}

Test(cli, check_config_accepts_a_sound_file_in_every_form)
{
    char *good = config_with(pki_path("tls-chain.crt"), pki_path("tls.key"),
                             pki_path("idevid-ca.crt"), "pkcs11:token=masad;object=masa",
                             pki_path("masa-chain.crt"), 19443);
    static const char *const forms[] = {"check-config %s", "check-config -c %s",
                                        "check-config --config %s", "check-config --config=%s"};
    for (size_t i = 0; i < 4; i++) {
        struct run r = cli(NULL, fmt(forms[i], good));
        cr_assert_eq(r.status, 0, "%s: %s", forms[i], r.err);
        cr_assert_str_eq(r.out, fmt("configuration OK: %s\n", good));
    }
}

/* Each fault serve would meet later, with the file, the path and the reason. */
Test(cli, check_config_names_each_fault)
{
    char *bad = config_with(pki_path("tls-chain.crt"), pki_path("masa-file.key"),
                            "/nonexistent/ca.crt", "pkcs11:tokem=masad;object=masa",
                            pki_path("tls.key"), 18443);
    struct run r = cli(NULL, fmt("check-config %s", bad));
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.out, "");
    const char *faults[] = {
        "/masad-config:tls/private-key: the key in %s does not match the certificate of "
        "/masad-config:tls/certificate\n",
        "/masad-config:idevid/trust-anchor[name='factory']/certificate: cannot read "
        "/nonexistent/ca.crt: No such file or directory\n",
        "/masad-config:signer/certificate: %s holds no PEM certificate\n",
        "/masad-config:listeners/management/port: the device and management listeners both use "
        "port 18443\n",
        "/masad-config:signer/key: unknown PKCS#11 URI attribute \"tokem\" (RFC 7512 §2.3)\n",
    };
    const char *files[] = {pki_path("masa-file.key"), NULL, pki_path("tls.key"), NULL, NULL};
    for (size_t i = 0; i < 5; i++) {
        char *line = fmt("masad: %s: %s", bad, fmt(faults[i], files[i]));
        cr_assert(has(r.err, line), "missing: %s\nin: %s", line, r.err);
    }
}

Test(cli, check_config_refuses_a_malformed_pkcs11_uri)
{
    char *bad = config_with(pki_path("tls-chain.crt"), pki_path("tls.key"),
                            pki_path("idevid-ca.crt"), "pkcs11:object=%zz",
                            pki_path("masa-chain.crt"), 19443);
    struct run r = cli(NULL, fmt("check-config %s", bad));
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_str_eq(r.err, fmt("masad: %s: /masad-config:signer/key: malformed PKCS#11 URI: "
                                "attribute \"object\": URI encoding invalid or corrupted\n", bad));
}

/* ---- messages when something is missing ---- */

Test(cli, serve_names_libpq_reason_when_the_database_is_unreachable, .timeout = 60)
{
    char *good = config_with(pki_path("tls-chain.crt"), pki_path("tls.key"),
                             pki_path("idevid-ca.crt"), env_or_die("MASAD_PKCS11_URI"),
                             pki_path("masa-chain.crt"), 19443);
    struct run r = cli("MASAD_DATABASE_URL=postgresql://127.0.0.1:1/masad",
                       fmt("serve -c %s", good));
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(has(r.err, "cannot connect to the database: connection to server at "
                         "\\\"127.0.0.1\\\", port 1 failed: Connection refused"), "%s", r.err);
    cr_assert_not(has(r.err, "no connection to the server"), "%s", r.err);
}

Test(cli, audit_verify_without_configuration_asks_for_ca_or_config, .init = start, .fini = stop,
     .timeout = 60)
{
    struct run r = cli(fmt("-u MASAD_CONFIG MASAD_DATABASE_URL='%s'", proc.db.app_url),
                       "audit verify");
    cr_assert_eq(r.status, 2, "%s %s", r.out, r.err);
    cr_assert_str_eq(r.err, "masad: audit verify checks the signed checkpoints against the "
                            "signer's certificate: pass --ca FILE (the signer certificate and its "
                            "chain) or -c FILE (the configuration naming it)\n");
    r = cli(fmt("-u MASAD_CONFIG MASAD_DATABASE_URL='%s'", proc.db.app_url),
            fmt("audit verify --ca %s", pki_path("masa-chain.crt")));
    cr_assert_eq(r.status, 0, "%s %s", r.out, r.err);
}

/* ---- tokens ---- */

static struct run token(const char *args)
{
    return cli(fmt("MASAD_DATABASE_URL='%s'", proc.db.app_url), fmt("token %s", args));
}

static long api_status(const char *bearer)
{
    struct http_opts o = {.management = true, .bearer = bearer};
    struct http_result r = http(&proc, "/api/v1/devices", &o);
    long status = r.status;
    http_result_free(&r);
    return status;
}

/* Each refusal is one sentence, before the database: no raw database error
 * and no hash on stderr, nothing stored. */
Test(cli, token_create_refusals_are_sentences, .init = start, .fini = stop, .timeout = 60)
{
    static const char *const cases[][2] = {
        {"create --name 'bad name' --scope devices:read",
         "masad: a token name is 1 to 64 letters, digits, '.', '_' or '-' (not \"bad name\")\n"},
        {"create --name " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         " --scope devices:read",
         "masad: a token name is 1 to 64 letters, digits, '.', '_' or '-' (not \""
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\")\n"},
        {"create --name ok --scope devices:read,devices:delete",
         "masad: unknown scope devices:delete (the scopes are devices:read, devices:write, "
         "owners:read, owners:write, ownership:write, audit:read)\n"},
        {"create --name ok --scope devices:read,",
         "masad: unknown scope (none) (the scopes are devices:read, devices:write, owners:read, "
         "owners:write, ownership:write, audit:read)\n"},
        {"create --name ok --scope ''",
         "masad: give at least one scope with --scope (the scopes are devices:read, "
         "devices:write, owners:read, owners:write, ownership:write, audit:read)\n"},
        {"create --name ok", "masad: token create needs --scope\n"},
        {"create --scope devices:read", "masad: token create needs --name\n"},
        {"create --name ok --scope devices:read --expires 2001-01-01T00:00:00Z",
         "masad: the expiry 2001-01-01T00:00:00Z is in the past\n"},
        {"create --name ok --scope devices:read --expires soon",
         "masad: --expires takes an RFC 3339 time (2027-06-30T00:00:00Z) or a duration from "
         "now (90d, 12h, 30m, 3600s; at most 10 years), not \"soon\"\n"},
        {"create --name ok --scope devices:read --expires 99999d",
         "masad: --expires takes an RFC 3339 time (2027-06-30T00:00:00Z) or a duration from "
         "now (90d, 12h, 30m, 3600s; at most 10 years), not \"99999d\"\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct run r = token(cases[i][0]);
        cr_assert_eq(r.status, 2, "%s: %s", cases[i][0], r.err);
        cr_assert_str_eq(r.err, cases[i][1], "%s", cases[i][0]);
    }
    cr_assert_str_eq(owner_value(&proc, "SELECT count(*) FROM api_tokens"), "0");

    cr_assert_eq(token("create --name twice --scope devices:read").status, 0);
    struct run r = token("create --name twice --scope devices:read");
    cr_assert_eq(r.status, 1);
    cr_assert_str_eq(r.err, "masad: a token named twice exists already (names are never reused)\n");
    cr_assert_str_eq(owner_value(&proc, "SELECT count(*) FROM api_tokens"), "1");
}

static char *line_of(const char *list, const char *name)
{
    const char *l = strstr(list, fmt("\n%s ", name));
    cr_assert(l, "%s not listed: %s", name, list);
    return strndup(l + 1, strcspn(l + 1, "\n"));
}

Test(cli, an_expired_token_is_refused_like_an_unknown_one, .init = start, .fini = stop,
     .timeout = 60)
{
    struct run r = token("create --name dated --scope devices:read --expires 2h");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *secret = strndup(r.out, strcspn(r.out, "\n"));
    r = token("create --name fixed --scope devices:read --expires 2030-01-01T12:00:00+02:00");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(api_status(secret), 200);
    /* the expiry as stored and listed */
    cr_assert_str_eq(owner_value(&proc, "SELECT expires_at BETWEEN now() + interval '119 minutes'"
                                        " AND now() + interval '121 minutes' FROM api_tokens"
                                        " WHERE name = 'dated'"), "t");
    r = token("list");
    cr_assert(has(r.out, "EXPIRES") && has(r.out, "LAST USED"), "%s", r.out);
    cr_assert(has(line_of(r.out, "fixed"), " 2030-01-01T10:00:00Z "), "%s", r.out);

    /* time passes (the database's clock decides) */
    cr_assert_eq(db_exec(proc.db.owner_url, "UPDATE api_tokens SET expires_at = now() - "
                                            "interval '1 second' WHERE name = 'dated'", NULL), 0);
    struct http_opts o = {.management = true, .bearer = secret};
    struct http_result h = http(&proc, "/api/v1/devices", &o);
    cr_assert_eq(h.status, 401);
    cr_assert(has(h.body, "the bearer token is unknown or revoked"), "%s", h.body);
    http_result_free(&h);
    r = token("list");
    cr_assert(has(line_of(r.out, "dated"), "(expired)"), "%s", r.out);
}

/* the i-th blank-separated column of a token list line */
static char *column(const char *line, int i)
{
    const char *p = line;
    for (; i > 0; i--) {
        p += strcspn(p, " ");
        p += strspn(p, " ");
    }
    return strndup(p, strcspn(p, " "));
}

/* last_used_at is written at most about once a minute: not per request. */
Test(cli, last_use_is_recorded_about_once_a_minute, .init = start, .fini = stop, .timeout = 60)
{
    struct run r = token("create --name user --scope devices:read");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char *secret = strndup(r.out, strcspn(r.out, "\n"));
    r = token("list");
    char *line = line_of(r.out, "user");
    cr_assert_str_eq(column(line, 3), "never", "%s", line); /* no expiry */
    cr_assert_str_eq(column(line, 4), "never", "%s", line); /* no use yet */

    cr_assert_eq(api_status(secret), 200);
    char *first = owner_value(&proc, "SELECT last_used_at FROM api_tokens WHERE name = 'user'");
    cr_assert_str_neq(first, "NULL");
    r = token("list");
    line = line_of(r.out, "user");
    cr_assert_eq(strlen(column(line, 4)), 20, "%s", line); /* 2026-12-05T08:00:00Z */

    /* a second call within the minute writes nothing */
    cr_assert_eq(api_status(secret), 200);
    cr_assert_str_eq(owner_value(&proc, "SELECT last_used_at FROM api_tokens WHERE name = 'user'"),
                     first);

    /* older than a minute: the next call records it again */
    cr_assert_eq(db_exec(proc.db.owner_url, "UPDATE api_tokens SET last_used_at = now() - "
                                            "interval '2 minutes' WHERE name = 'user'", NULL), 0);
    cr_assert_eq(api_status(secret), 200);
    cr_assert_str_eq(owner_value(&proc, "SELECT last_used_at > now() - interval '1 minute'"
                                        " FROM api_tokens WHERE name = 'user'"), "t");
}
