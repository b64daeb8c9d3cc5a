/*
 * The management API (docs/management-api.md), black-box: a real masad on free
 * ports with a database of its own, API tokens made with `masad token`,
 * and the database inspected directly to see what was (not) stored.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <pwd.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "harness.h"

static struct masad_proc proc;

static void start(void)
{
    cr_assert(masad_start(&proc, NULL), "masad did not start: %s", read_text(proc.stderr_path));
}

static void stop(void) { masad_stop_expect_clean(&proc); }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the database, as the schema owner ---- */

/* the first value of a query as the schema owner, "NULL" for none / SQL NULL */
#define q(...) owner_value(&proc, __VA_ARGS__)

static long qn(const char *sql)
{
    char *v = db_value(proc.db.owner_url, sql);
    cr_assert(v, "no value: %s", sql);
    long n = atol(v);
    free(v);
    return n;
}

static long audit_count(void) { return qn("SELECT count(*) FROM audit_events"); }

static long action_count(const char *action)
{
    char *sql = fmt("SELECT count(*) FROM audit_events WHERE action = '%s' AND outcome = 'ok'", action);
    long n = qn(sql);
    free(sql);
    return n;
}

/* Everything a management call can change, as one digest. */
static char *data_digest(void)
{
    return q("SELECT md5("
             " coalesce((SELECT string_agg(d::text, ',' ORDER BY serial_number) FROM devices d), '') ||"
             " coalesce((SELECT string_agg(o::text, ',' ORDER BY id) FROM ownership o), '') ||"
             " coalesce((SELECT string_agg(w::text, ',' ORDER BY owner_id) FROM owners w), '') ||"
             /* a token's last use is bookkeeping, recorded for refused calls too */
             " coalesce((SELECT string_agg((t.name, t.token_sha256, t.scopes, t.created_at,"
             "   t.revoked_at, t.expires_at)::text, ',' ORDER BY name) FROM api_tokens t), ''))");
}

struct snapshot {
    char *data;
    long audit;
};

static struct snapshot snap(void) { return (struct snapshot){data_digest(), audit_count()}; }

/* docs/management-api.md, Errors: a rejected call changes nothing but the
 * audit log, which records refusals of calls made with a valid token. */
static void expect_refusal_recorded(struct snapshot s, const char *action, const char *actor)
{
    cr_assert_str_eq(data_digest(), s.data, "a refused %s changed data", action);
    cr_assert_eq(audit_count(), s.audit + 1, "a refused %s: %ld audit events, want %ld", action,
                 audit_count(), s.audit + 1);
    char *last = q("SELECT outcome || ' ' || action || ' ' || actor FROM audit_events"
                   " ORDER BY seq DESC LIMIT 1");
    char *want = fmt("refused %s %s", action, actor);
    cr_assert_str_eq(last, want);
}

/* An unauthenticated refusal: nothing at all. */
static void expect_nothing_recorded(struct snapshot s)
{
    cr_assert_str_eq(data_digest(), s.data);
    cr_assert_eq(audit_count(), s.audit);
}

/* ---- tokens ---- */

static int token_cli(char **out, const char *const *args)
{
    const char *env[] = {"MASAD_DATABASE_URL", proc.db.app_url, NULL};
    return masad_run(out, env, args);
}

static char *new_token(const char *name, const char *scopes)
{
    char *out;
    const char *args[] = {"token", "create", "--name", name, "--scope", scopes, NULL};
    cr_assert_eq(token_cli(&out, args), 0, "token create %s: %s", name, out);
    out[strcspn(out, "\n")] = 0;
    cr_assert(!strncmp(out, "msd_", 4) && strlen(out) > 40, "token: %s", out);
    return out;
}

static const char *const ALL_SCOPES =
    "devices:read,devices:write,owners:read,owners:write,ownership:write,audit:read";

/* ---- HTTP on the management listener ---- */

static struct http_result call(const char *method, const char *path, const char *token,
                               const char *body)
{
    struct http_opts o = {.management = true, .method = method, .bearer = token};
    if (body) {
        o.body = body;
        o.body_len = strlen(body);
        o.content_type = "application/json";
    }
    return http(&proc, path, &o);
}

#define expect_status(r, want)                                                                   \
    cr_assert_eq((r).status, (want), "line %d: status %ld, want %d: %s (%s)", __LINE__, (r).status, \
                 (int)(want), (r).body, (r).error)

/* ---- JSON answers (yajl's tree parser, not the service's own) ---- */

static yajl_val parse(const struct http_result *r)
{
    char err[256];
    yajl_val v = yajl_tree_parse(r->body, err, sizeof(err));
    cr_assert(v, "not JSON (%s): %s", err, r->body);
    return v;
}

static yajl_val jget(yajl_val v, const char *key)
{
    cr_assert(YAJL_IS_OBJECT(v), "not an object");
    for (size_t i = 0; i < v->u.object.len; i++)
        if (!strcmp(v->u.object.keys[i], key))
            return v->u.object.values[i];
    return NULL;
}

static bool jhas(yajl_val v, const char *key) { return jget(v, key) != NULL; }

/* A string member; NULL for JSON null. Absent or another type fails. */
static const char *jstr(yajl_val v, const char *key)
{
    yajl_val m = jget(v, key);
    cr_assert(m, "no member %s", key);
    if (YAJL_IS_NULL(m))
        return NULL;
    cr_assert(YAJL_IS_STRING(m), "%s is not a string", key);
    return YAJL_GET_STRING(m);
}

static long long jint(yajl_val v, const char *key)
{
    yajl_val m = jget(v, key);
    cr_assert(m && YAJL_IS_INTEGER(m), "%s is not an integer", key);
    return YAJL_GET_INTEGER(m);
}

static bool jnull(yajl_val v, const char *key)
{
    yajl_val m = jget(v, key);
    cr_assert(m, "no member %s", key);
    return YAJL_IS_NULL(m);
}

static yajl_val jarr(yajl_val v, const char *key)
{
    yajl_val m = jget(v, key);
    cr_assert(m && YAJL_IS_ARRAY(m), "%s is not an array", key);
    return m;
}

static size_t jlen(yajl_val arr) { return arr->u.array.len; }
static yajl_val jat(yajl_val arr, size_t i)
{
    cr_assert_lt(i, arr->u.array.len);
    return arr->u.array.values[i];
}

static void expect_str(yajl_val v, const char *key, const char *want)
{
    const char *got = jstr(v, key);
    if (!want)
        cr_assert_null(got, "%s: \"%s\", want null", key, got);
    else {
        cr_assert(got, "%s is null, want \"%s\"", key, want);
        cr_assert_str_eq(got, want, "%s", key);
    }
}

static bool rfc3339_utc(const char *s)
{
    regex_t re;
    cr_assert(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
                      REG_EXTENDED | REG_NOSUB) == 0);
    bool ok = s && regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* docs/management-api.md, Errors: every refusal is application/problem+json with type, title,
 * status and detail. Returns the parsed problem. */
static yajl_val expect_problem_at(int line, const struct http_result *r, int status,
                                  const char *detail)
{
    cr_assert_eq(r->status, status, "line %d: status %ld, want %d: %s (%s)", line, r->status, status,
                 r->body, r->error);
    char *ct = http_header(r, "content-type");
    cr_assert(ct, "line %d: no content-type", line);
    cr_assert_str_eq(ct, "application/problem+json", "line %d", line);
    free(ct);
    yajl_val p = parse(r);
    cr_assert(jstr(p, "type") && *jstr(p, "type"), "line %d: type: %s", line, r->body);
    cr_assert(jstr(p, "title") && *jstr(p, "title"), "line %d: title: %s", line, r->body);
    cr_assert_eq(jint(p, "status"), status, "line %d: %s", line, r->body);
    const char *d = jstr(p, "detail");
    cr_assert(d, "line %d: no detail: %s", line, r->body);
    if (detail)
        cr_assert_str_eq(d, detail, "line %d", line);
    return p;
}
#define expect_problem(r, status, detail) expect_problem_at(__LINE__, &(r), (status), (detail))

/* The problem's field errors are exactly these pointer/detail pairs. */
static void expect_errors_at(int line, yajl_val p, size_t n, ...)
{
    yajl_val errors = jget(p, "errors");
    if (n == 0) {
        cr_assert_null(errors, "line %d: unexpected errors", line);
        return;
    }
    cr_assert(errors && YAJL_IS_ARRAY(errors), "line %d: no errors array", line);
    cr_assert_eq(jlen(errors), n, "line %d: %zu errors, want %zu", line, jlen(errors), n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        const char *pointer = va_arg(ap, const char *), *detail = va_arg(ap, const char *);
        yajl_val e = jat(errors, i);
        cr_assert_str_eq(jstr(e, "pointer"), pointer, "line %d: errors[%zu]", line, i);
        cr_assert_str_eq(jstr(e, "detail"), detail, "line %d: errors[%zu] %s", line, i, pointer);
    }
    va_end(ap);
}
#define expect_errors(p, ...) expect_errors_at(__LINE__, (p), __VA_ARGS__)

/* ---- fixtures through the API ---- */

static void put_device(const char *tok, const char *serial_path, const char *body, int status)
{
    char *path = fmt("/api/v1/devices/%s", serial_path);
    struct http_result r = call("PUT", path, tok, body);
    expect_status(r, status);
    http_result_free(&r);
    free(path);
}

static void put_owner(const char *tok, const char *owner)
{
    char *path = fmt("/api/v1/owners/%s", owner);
    char *body = fmt("{\"display_name\": \"Owner %s\"}", owner);
    struct http_result r = call("PUT", path, tok, body);
    expect_status(r, 201);
    http_result_free(&r);
    free(path);
    free(body);
}

static struct http_result assign(const char *tok, const char *serial, const char *owner,
                                 const char *order_ref)
{
    char *path = fmt("/api/v1/devices/%s/ownership", serial);
    char *body = order_ref ? fmt("{\"owner_id\": \"%s\", \"order_ref\": \"%s\"}", owner, order_ref)
                           : fmt("{\"owner_id\": \"%s\"}", owner);
    struct http_result r = call("PUT", path, tok, body);
    free(path);
    free(body);
    return r;
}

/* ================================================================== */

Test(tokens, bearer_tokens_scopes_and_revocation, .init = start, .fini = stop, .timeout = 120)
{
    char *reader = new_token("reader", "devices:read");
    char *out;

    /* missing Authorization: 401 with a challenge, and nothing recorded */
    struct snapshot s = snap();
    struct http_result r = call("GET", "/api/v1/devices", NULL, NULL);
    expect_problem(r, 401, "a bearer token is required (Authorization: Bearer <token>)");
    char *challenge = http_header(&r, "www-authenticate");
    cr_assert(challenge, "no www-authenticate: %s", r.headers);
    cr_assert_str_eq(challenge, "bearer realm=\"masad\""); /* the harness lower-cases headers */
    http_result_free(&r);
    expect_nothing_recorded(s);

    /* an unknown token: 401 */
    r = call("PUT", "/api/v1/devices/TOK-1", "msd_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
             "{\"product\": \"p\"}");
    expect_problem(r, 401, "the bearer token is unknown or revoked");
    cr_assert(http_header(&r, "www-authenticate"));
    http_result_free(&r);
    expect_nothing_recorded(s);

    /* a token without the scope: 403, recorded as a refusal by that token */
    r = call("PUT", "/api/v1/devices/TOK-1", reader, "{\"product\": \"p\"}");
    expect_problem(r, 403, "the token \"reader\" lacks the scope devices:write");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.put", "reader");
    cr_assert_str_eq(q("SELECT detail::jsonb->>'status' || ' ' || (detail::jsonb->>'reason') FROM audit_events"
                       " ORDER BY seq DESC LIMIT 1"),
                     "403 the token \"reader\" lacks the scope devices:write");
    cr_assert_str_eq(q("SELECT count(*) FROM devices"), "0");

    /* the scope it has works */
    r = call("GET", "/api/v1/devices", reader, NULL);
    expect_status(r, 200);
    http_result_free(&r);

    /* token list shows it, with its scopes and not revoked */
    const char *list[] = {"token", "list", NULL};
    cr_assert_eq(token_cli(&out, list), 0, "%s", out);
    char *line = strstr(out, "\nreader ");
    cr_assert(line, "%s", out);
    char *eol = strchr(line + 1, '\n');
    if (eol)
        *eol = 0;
    cr_assert(strstr(line, " devices:read"), "%s", line);
    cr_assert(strstr(line, " - "), "listed as revoked: %s", line);
    cr_assert_null(strstr(out, reader), "token list shows the secret");
    /* and only a hash is stored */
    cr_assert_str_eq(q("SELECT count(*) FROM api_tokens WHERE token_sha256 = sha256(convert_to('%s', 'UTF8'))", reader), "1");

    /* revoked: the very next call is refused */
    const char *revoke[] = {"token", "revoke", "reader", NULL};
    cr_assert_eq(token_cli(&out, revoke), 0, "%s", out);
    cr_assert(strstr(out, "revoked reader"), "%s", out);
    r = call("GET", "/api/v1/devices", reader, NULL);
    expect_problem(r, 401, "the bearer token is unknown or revoked");
    http_result_free(&r);
    cr_assert_eq(token_cli(&out, list), 0, "%s", out);
    line = strstr(out, "\nreader ");
    cr_assert(line && !strstr(line, " - "), "not listed as revoked: %s", out);
    cr_assert_eq(token_cli(&out, revoke), 1, "revoked twice: %s", out);
    cr_assert(strstr(out, "no active token named reader"), "%s", out);

    /* names are never reused, not even after revocation */
    const char *again[] = {"token", "create", "--name", "reader", "--scope", "devices:read", NULL};
    cr_assert_eq(token_cli(&out, again), 1, "%s", out);
    cr_assert(strstr(out, "a token named reader exists already (names are never reused)"), "%s", out);
    cr_assert_str_eq(q("SELECT count(*) FROM api_tokens"), "1");

    /* an unknown scope is a usage error */
    const char *bad_scope[] = {"token", "create", "--name", "other", "--scope",
                               "devices:read,devices:delete", NULL};
    cr_assert_eq(token_cli(&out, bad_scope), 2, "%s", out);
    cr_assert(strstr(out, "unknown scope devices:delete"), "%s", out);
    const char *no_scope[] = {"token", "create", "--name", "other", NULL};
    cr_assert_eq(token_cli(&out, no_scope), 2, "%s", out);
    cr_assert_str_eq(q("SELECT count(*) FROM api_tokens"), "1");

    /* the CLI's changes are audited as cli:<user> */
    struct passwd *pw = getpwuid(getuid());
    char *cli = fmt("cli:%s", pw ? pw->pw_name : "unknown");
    cr_assert_str_eq(q("SELECT string_agg(action || ' ' || actor || ' ' || outcome, ',' ORDER BY seq)"
                       " FROM audit_events WHERE action LIKE 'token.%%'"),
                     fmt("token.create %s ok,token.revoke %s ok", cli, cli));

    /* a second token with every scope works alongside */
    char *admin = new_token("admin", ALL_SCOPES);
    put_device(admin, "TOK-1", "{\"product\": \"p\"}", 201);
}

Test(devices, put_get_and_validation, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = new_token("rw", "devices:read,devices:write");

    /* created */
    struct http_result r = call("PUT", "/api/v1/devices/JADA123456789", tok,
                                "{\"serial_number\": \"JADA123456789\", \"product\": \"router-x200\"}");
    expect_status(r, 201);
    char *ct = http_header(&r, "content-type");
    cr_assert_str_eq(ct, "application/json");
    yajl_val d = parse(&r);
    expect_str(d, "serial_number", "JADA123456789");
    expect_str(d, "product", "router-x200");
    cr_assert(jnull(d, "owner_id"));
    cr_assert(rfc3339_utc(jstr(d, "created_at")), "%s", r.body);
    cr_assert(rfc3339_utc(jstr(d, "updated_at")), "%s", r.body);
    cr_assert_eq(jint(d, "vouchers_issued"), 0);
    cr_assert(jnull(d, "last_progress"));
    cr_assert_not(jhas(d, "sztp_password"));
    http_result_free(&r);
    cr_assert_eq(action_count("device.create"), 1);
    char *created_at = q("SELECT created_at FROM devices WHERE serial_number = 'JADA123456789'");
    char *updated_at = q("SELECT updated_at FROM devices WHERE serial_number = 'JADA123456789'");

    /* replaced */
    r = call("PUT", "/api/v1/devices/JADA123456789", tok, "{\"product\": \"router-x300\"}");
    expect_status(r, 200);
    d = parse(&r);
    expect_str(d, "product", "router-x300");
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT product FROM devices WHERE serial_number = 'JADA123456789'"), "router-x300");
    cr_assert_str_eq(q("SELECT created_at FROM devices WHERE serial_number = 'JADA123456789'"), created_at);
    char *replaced_at = q("SELECT updated_at FROM devices WHERE serial_number = 'JADA123456789'");
    cr_assert_str_neq(replaced_at, updated_at);
    cr_assert_eq(action_count("device.update"), 1);

    /* the same again: 200, nothing changes, nothing is written */
    long events = audit_count();
    r = call("PUT", "/api/v1/devices/JADA123456789", tok, "{\"product\": \"router-x300\"}");
    expect_status(r, 200);
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT updated_at FROM devices WHERE serial_number = 'JADA123456789'"), replaced_at);
    cr_assert_eq(audit_count(), events);

    /* read back */
    r = call("GET", "/api/v1/devices/JADA123456789", tok, NULL);
    expect_status(r, 200);
    d = parse(&r);
    expect_str(d, "serial_number", "JADA123456789");
    expect_str(d, "product", "router-x300");
    cr_assert(jnull(d, "owner_id"));
    cr_assert(rfc3339_utc(jstr(d, "created_at")));
    cr_assert(rfc3339_utc(jstr(d, "updated_at")));
    cr_assert_eq(jint(d, "vouchers_issued"), 0);
    cr_assert(jnull(d, "last_progress"));
    http_result_free(&r);

    /* unknown: 404 */
    r = call("GET", "/api/v1/devices/NOPE-1", tok, NULL);
    expect_errors(expect_problem(r, 404, "no device has the serial number \"NOPE-1\""), 0);
    http_result_free(&r);
    r = call("GET", "/api/v1/devices/%20NOPE", tok, NULL);
    expect_problem(r, 404, "no device has that serial number");
    http_result_free(&r);

    /* percent-encoded serials in the path: space and slash are PrintableString */
    r = call("PUT", "/api/v1/devices/AB%20CD", tok, "{\"product\": \"p\"}");
    expect_status(r, 201);
    expect_str(parse(&r), "serial_number", "AB CD");
    http_result_free(&r);
    r = call("GET", "/api/v1/devices/AB%20CD", tok, NULL);
    expect_status(r, 200);
    expect_str(parse(&r), "serial_number", "AB CD");
    http_result_free(&r);
    r = call("PUT", "/api/v1/devices/SN%2F4(2)%2B%3A%3D%3F", tok,
             "{\"serial_number\": \"SN/4(2)+:=?\", \"product\": \"p\"}");
    expect_status(r, 201);
    expect_str(parse(&r), "serial_number", "SN/4(2)+:=?");
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT string_agg(serial_number, '|' ORDER BY serial_number) FROM devices"),
                     "AB CD|JADA123456789|SN/4(2)+:=?");
    /* IDevIDs carry UTF-8 serials (RFC 4108 hwSerialNum): 64 characters of
     * two bytes each, and characters outside PrintableString */
    char wide[64 * 6 + 1] = "", wide_json[64 * 2 + 1] = "";
    for (int i = 0; i < 64; i++) {
        strcat(wide, "%C3%A9");
        strcat(wide_json, "\xc3\xa9");
    }
    const char *utf8_paths[] = {"JADA_f2-00-01", "AB*CD%22", wide};
    const char *utf8_serials[] = {"JADA_f2-00-01", "AB*CD\"", wide_json};
    for (size_t i = 0; i < 3; i++) {
        r = call("PUT", fmt("/api/v1/devices/%s", utf8_paths[i]), tok, "{\"product\": \"p\"}");
        expect_status(r, 201);
        expect_str(parse(&r), "serial_number", utf8_serials[i]);
        http_result_free(&r);
    }

    /* refusals: 422 with the field's pointer, nothing stored, the refusal audited */
    static const char serial_rule[] =
        "must be 1 to 64 characters of text without control characters and without a leading or "
        "trailing space";
    char long_serial[66 * 6];
    memset(long_serial, 'L', 65);
    long_serial[65] = 0;
    char long_wide[65 * 6 + 1];
    snprintf(long_wide, sizeof(long_wide), "%s%%C3%%A9", wide);
    const char *bad_paths[] = {"%20AB", "AB%20", "AB%01CD", "AB%7FCD", "%C2%85A", "%FFAB",
                               "%C0%AFA", "%ED%A0%80A", long_serial, long_wide};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(*bad_paths); i++) {
        struct snapshot s = snap();
        char *path = fmt("/api/v1/devices/%s", bad_paths[i]);
        r = call("PUT", path, tok, "{\"product\": \"p\"}");
        expect_errors(expect_problem(r, 422, "the device is invalid"), 1, "/serial_number", serial_rule);
        http_result_free(&r);
        expect_refusal_recorded(s, "device.put", "rw");
        free(path);
    }
    /* a bad percent-encoding is no resource at all */
    struct snapshot s = snap();
    r = call("PUT", "/api/v1/devices/AB%2", tok, "{\"product\": \"p\"}");
    expect_problem(r, 404, "the serial number in the path is not percent-encoded correctly");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.put", "rw");

    struct {
        const char *body, *pointer, *detail;
    } bad[] = {
        {"{\"serial_number\": \"OTHER-1\", \"product\": \"p\"}", "/serial_number",
         "must equal the serial number in the path"},
        {"{}", "/product", "is required"},
        {"{\"sztp_password\": \"0123456789abcdefgh\"}", "/product", "is required"},
        {"{\"product\": \"\"}", "/product", "must not be empty"},
        {"{\"product\": 5}", "/product", "must be a string, not number"},
        {"{\"product\": null}", "/product", "must be a string, not null"},
        {"{\"product\": \"p\", \"colour\": \"red\"}", "/colour", "unknown field"},
        {"{\"product\": \"p\", \"sztp_password\": \"0123456789abcde\"}", "/sztp_password",
         "must be at least 16 characters (a machine-generated secret)"},
        {"{\"product\": \"p\", \"sztp_password\": 1234567890123456789}", "/sztp_password",
         "must be a string, not number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        s = snap();
        r = call("PUT", "/api/v1/devices/JADA123456789", tok, bad[i].body);
        expect_errors(expect_problem(r, 422, "the device is invalid"), 1, bad[i].pointer, bad[i].detail);
        http_result_free(&r);
        expect_refusal_recorded(s, "device.put", "rw");
        cr_assert_str_eq(q("SELECT (detail::jsonb->>'pointer') || ' ' || (detail::jsonb->>'problem') FROM audit_events"
                           " ORDER BY seq DESC LIMIT 1"), fmt("%s %s", bad[i].pointer, bad[i].detail));
        cr_assert_str_eq(q("SELECT serial_number FROM audit_events ORDER BY seq DESC LIMIT 1"),
                         "JADA123456789");
    }
    /* every fault is named at once */
    s = snap();
    r = call("PUT", "/api/v1/devices/JADA123456789", tok, "{\"a\": 1, \"product\": \"\", \"b\": 2}");
    expect_errors(expect_problem(r, 422, "the device is invalid"), 3, "/a", "unknown field", "/b",
                  "unknown field", "/product", "must not be empty");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.put", "rw");
    cr_assert_str_eq(q("SELECT product FROM devices WHERE serial_number = 'JADA123456789'"), "router-x300");
}

static char *nested(unsigned levels)
{
    /* an object (level 1) holding arrays nested to `levels` in all */
    size_t n = levels - 1;
    char *s = malloc(64 + 2 * n);
    char *p = s + sprintf(s, "{\"product\": \"p\", \"x\": ");
    for (size_t i = 0; i < n; i++)
        *p++ = '[';
    for (size_t i = 0; i < n; i++)
        *p++ = ']';
    strcpy(p, "}");
    return s;
}

Test(devices, body_type_size_and_json_refusals, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = new_token("rw", "devices:read,devices:write");
    put_device(tok, "FMT-1", "{\"product\": \"p\"}", 201);

    /* 415: not application/json */
    struct snapshot s = snap();
    const char *body = "{\"product\": \"q\"}";
    struct http_opts text = {.management = true, .method = "PUT", .body = body,
                             .body_len = strlen(body), .content_type = "text/plain", .bearer = tok};
    struct http_result r = http(&proc, "/api/v1/devices/FMT-1", &text);
    expect_problem(r, 415, "the request body must be application/json");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.put", "rw");
    text.content_type = NULL; /* the harness then sends application/octet-stream */
    r = http(&proc, "/api/v1/devices/FMT-1", &text);
    expect_problem(r, 415, "the request body must be application/json");
    http_result_free(&r);
    /* parameters of application/json are fine */
    text.content_type = "application/json; charset=utf-8";
    r = http(&proc, "/api/v1/devices/FMT-1", &text);
    expect_status(r, 200);
    http_result_free(&r);

    /* 400: malformed JSON, duplicate keys, too deep, not an object */
    struct {
        const char *body, *detail;
    } bad[] = {
        {"{\"product\": \"a\", \"product\": \"b\"}", "malformed JSON: duplicate key \"product\""},
        {"{\"product\": \"a\", \"x\": {\"k\": 1, \"k\": 2}}", "malformed JSON: duplicate key \"k\""},
        {nested(33), "malformed JSON: nested deeper than 32 levels"},
        {"[{\"product\": \"p\"}]", "malformed request: the body must be a JSON object"},
        {"\"p\"", "malformed request: the body must be a JSON object"},
        {"{\"product\": \"p\"", NULL},
        {"{\"product\": \"p\"} {}", NULL},
        {"{\"product\": \"p\", /* c */ \"x\": 1}", NULL},
        {"{product: \"p\"}", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        s = snap();
        r = call("PUT", "/api/v1/devices/FMT-1", tok, bad[i].body);
        yajl_val p = expect_problem(r, 400, bad[i].detail);
        cr_assert(!strncmp(jstr(p, "detail"), "malformed ", 10), "%s", r.body);
        http_result_free(&r);
        expect_refusal_recorded(s, "device.put", "rw");
    }
    /* 32 levels are allowed: the body parses, and "x" is then an unknown field */
    r = call("PUT", "/api/v1/devices/FMT-1", tok, nested(32));
    expect_errors(expect_problem(r, 422, "the device is invalid"), 1, "/x", "unknown field");
    http_result_free(&r);

    /* 1 MiB is the limit for one device: exactly 1 MiB passes, one byte more is a 413 */
    size_t mib = 1024 * 1024;
    char *big = malloc(mib + 2);
    memset(big, ' ', mib + 1);
    memcpy(big, "{\"product\": \"big\"}", 18);
    big[mib + 1] = 0;
    struct http_opts o = {.management = true, .method = "PUT", .body = big, .body_len = mib,
                          .content_type = "application/json", .bearer = tok};
    r = http(&proc, "/api/v1/devices/FMT-1", &o);
    expect_status(r, 200);
    expect_str(parse(&r), "product", "big");
    http_result_free(&r);
    s = snap();
    o.body_len = mib + 1;
    memcpy(big, "{\"product\": \"bis\"}", 18);
    r = http(&proc, "/api/v1/devices/FMT-1", &o);
    expect_problem(r, 413, "the request body is too large");
    http_result_free(&r);
    expect_nothing_recorded(s); /* refused before anyone was authenticated */
    /* the batch limit is 16 MiB; beyond it too the answer is a problem */
    size_t batch_max = 16 * mib;
    char *huge = malloc(batch_max + 2);
    memset(huge, ' ', batch_max + 1);
    memcpy(huge, "{\"devices\": []}", 15);
    struct http_opts ob = {.management = true, .body = huge, .body_len = batch_max + 1,
                           .content_type = "application/json", .bearer = tok,
                           .expect_continue = true};
    r = http(&proc, "/api/v1/devices:batch", &ob);
    cr_assert_eq(r.status, 413, "%ld %s %s", r.status, r.body, r.error);
    /* above the largest route's limit h2o refuses the body itself, before any
     * handler (docs/operations.md, Limits): its own plain 413 */
    char *hct = http_header(&r, "content-type");
    cr_assert(hct && !strncmp(hct, "text/plain", 10), "content type %s: %s", hct, r.body);
    http_result_free(&r);
    expect_nothing_recorded(s);
    cr_assert_str_eq(q("SELECT product FROM devices WHERE serial_number = 'FMT-1'"), "big");
}

Test(devices, sztp_password_is_kept_as_a_salted_hash, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = new_token("rw", "devices:read,devices:write");
    const char *pw = "s3cret-Machine-Generated-0042";
    char *body = fmt("{\"product\": \"p\", \"sztp_password\": \"%s\"}", pw);
    struct http_result r = call("PUT", "/api/v1/devices/PW-1", tok, body);
    expect_status(r, 201);
    cr_assert_null(strstr(r.body, pw));
    cr_assert_not(jhas(parse(&r), "sztp_password"));
    http_result_free(&r);

    cr_assert_str_eq(q("SELECT length(sztp_password_salt) || ' ' || length(sztp_password_hash)"
                       " FROM devices WHERE serial_number = 'PW-1'"), "16 32");
    /* SHA-256 over salt then password */
    cr_assert_str_eq(q("SELECT sztp_password_hash = sha256(sztp_password_salt || convert_to('%s', 'UTF8'))"
                       " FROM devices WHERE serial_number = 'PW-1'", pw), "t");
    /* the clear text is nowhere: not in the row (as text or as hex), not in the audit log */
    cr_assert_str_eq(q("SELECT strpos(d::text, '%s') = 0 AND strpos(d::text, encode(convert_to('%s', 'UTF8'), 'hex')) = 0"
                       " FROM devices d WHERE serial_number = 'PW-1'", pw, pw), "t");
    cr_assert_str_eq(q("SELECT count(*) FROM audit_events WHERE strpos(audit_events::text, '%s') > 0", pw), "0");
    char *salt = q("SELECT encode(sztp_password_salt, 'hex') FROM devices WHERE serial_number = 'PW-1'");
    char *updated = q("SELECT updated_at FROM devices WHERE serial_number = 'PW-1'");

    r = call("GET", "/api/v1/devices/PW-1", tok, NULL);
    expect_status(r, 200);
    cr_assert_null(strstr(r.body, pw));
    cr_assert_not(jhas(parse(&r), "sztp_password"));
    http_result_free(&r);

    /* the same password again: unchanged (same salt, same updated_at) */
    r = call("PUT", "/api/v1/devices/PW-1", tok, body);
    expect_status(r, 200);
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT encode(sztp_password_salt, 'hex') FROM devices WHERE serial_number = 'PW-1'"), salt);
    cr_assert_str_eq(q("SELECT updated_at FROM devices WHERE serial_number = 'PW-1'"), updated);

    /* left out: kept */
    put_device(tok, "PW-1", "{\"product\": \"q\"}", 200);
    cr_assert_str_eq(q("SELECT encode(sztp_password_salt, 'hex') FROM devices WHERE serial_number = 'PW-1'"), salt);
    cr_assert_str_eq(q("SELECT sztp_password_hash = sha256(sztp_password_salt || convert_to('%s', 'UTF8'))"
                       " FROM devices WHERE serial_number = 'PW-1'", pw), "t");

    /* another one: a new salt and hash */
    const char *pw2 = "another-Machine-Secret-0043";
    char *body2 = fmt("{\"product\": \"q\", \"sztp_password\": \"%s\"}", pw2);
    put_device(tok, "PW-1", body2, 200);
    cr_assert_str_neq(q("SELECT encode(sztp_password_salt, 'hex') FROM devices WHERE serial_number = 'PW-1'"), salt);
    cr_assert_str_eq(q("SELECT sztp_password_hash = sha256(sztp_password_salt || convert_to('%s', 'UTF8'))"
                       " FROM devices WHERE serial_number = 'PW-1'", pw2), "t");

    /* two devices with one password get different salts */
    put_device(tok, "PW-2", body2, 201);
    cr_assert_str_eq(q("SELECT count(DISTINCT sztp_password_salt) || ' ' || count(DISTINCT sztp_password_hash)"
                       " FROM devices WHERE serial_number IN ('PW-1', 'PW-2')"), "2 2");

    /* null removes it */
    put_device(tok, "PW-1", "{\"product\": \"q\", \"sztp_password\": null}", 200);
    cr_assert_str_eq(q("SELECT sztp_password_salt IS NULL AND sztp_password_hash IS NULL"
                       " FROM devices WHERE serial_number = 'PW-1'"), "t");
    long events = audit_count();
    put_device(tok, "PW-1", "{\"product\": \"q\", \"sztp_password\": null}", 200);
    cr_assert_eq(audit_count(), events, "removing an absent password changed something");

    /* the logs never show it either */
    char *log = read_text(proc.stdout_path), *err = read_text(proc.stderr_path);
    cr_assert_null(strstr(log, pw));
    cr_assert_null(strstr(err, pw));
    cr_assert_null(strstr(log, pw2));
}

/* {"devices": [...]} with n devices "<prefix>-NNNNN"; bad: index of an empty product, or -1 */
static char *device_batch(const char *prefix, size_t n, long bad, const char *product)
{
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    fputs("{\"devices\": [", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s{\"serial_number\": \"%s-%05zu\", \"product\": \"%s\"}", i ? ", " : "", prefix,
                i, (long)i == bad ? "" : product);
    fputs("]}", f);
    fclose(f);
    return buf;
}

static void expect_counts(const struct http_result *r, const char *k1, long long v1, const char *k2,
                          long long v2)
{
    yajl_val v = parse(r);
    /* the devices batch also counts the unchanged */
    cr_assert_eq(v->u.object.len, strcmp(k1, "created") ? 2 : 3, "%s", r->body);
    cr_assert_eq(jint(v, k1), v1, "%s", r->body);
    cr_assert_eq(jint(v, k2), v2, "%s", r->body);
}

Test(devices, batch_is_all_or_nothing, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = new_token("rw", "devices:read,devices:write");
    const char *three = "{\"devices\": [{\"serial_number\": \"B-3\", \"product\": \"p\"},"
                        " {\"serial_number\": \"B-1\", \"product\": \"p\", \"sztp_password\": \"0123456789abcdef\"},"
                        " {\"serial_number\": \"B-2\", \"product\": \"p\"}]}";
    struct http_result r = call("POST", "/api/v1/devices:batch", tok, three);
    expect_status(r, 200);
    expect_counts(&r, "created", 3, "updated", 0);
    http_result_free(&r);
    cr_assert_eq(action_count("device.create"), 3);
    char *times = q("SELECT string_agg(updated_at::text, ',' ORDER BY serial_number) FROM devices");

    /* the same again: nothing changes, nothing is written */
    struct snapshot s = snap();
    r = call("POST", "/api/v1/devices:batch", tok, three);
    expect_status(r, 200);
    expect_counts(&r, "created", 0, "updated", 0);
    cr_assert(strstr(r.body, "\"unchanged\":3"), "%s", r.body);
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT string_agg(updated_at::text, ',' ORDER BY serial_number) FROM devices"), times);
    cr_assert_str_eq(data_digest(), s.data);
    cr_assert_eq(audit_count(), s.audit);
    cr_assert_eq(action_count("device.update"), 0);

    /* one changed, one new, one the same */
    r = call("POST", "/api/v1/devices:batch", tok,
             "{\"devices\": [{\"serial_number\": \"B-1\", \"product\": \"p\"},"
             " {\"serial_number\": \"B-2\", \"product\": \"q\"}, {\"serial_number\": \"B-4\", \"product\": \"p\"}]}");
    expect_status(r, 200);
    expect_counts(&r, "created", 1, "updated", 1); /* B-1 is unchanged */
    http_result_free(&r);
    cr_assert_eq(action_count("device.update"), 1); /* B-1 kept its password: left out keeps it */
    cr_assert_str_eq(q("SELECT string_agg(serial_number || ':' || product || ':' || (sztp_password_hash IS NOT NULL),"
                       " ',' ORDER BY serial_number) FROM devices"),
                     "B-1:p:true,B-2:q:false,B-3:p:false,B-4:p:false");

    /* 10,000 with one bad row: nothing stored, one refusal recorded */
    char *with_bad = device_batch("BIG", 10000, 9876, "p");
    s = snap();
    r = call("POST", "/api/v1/devices:batch", tok, with_bad);
    expect_errors(expect_problem(r, 422, "the batch is invalid: nothing was stored"), 1,
                  "/devices/9876/product", "must not be empty");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.batch", "rw");
    cr_assert_str_eq(q("SELECT count(*) FROM devices"), "4");
    cr_assert_str_eq(q("SELECT detail::jsonb->>'pointer' FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "/devices/9876/product");

    /* the same without it: all 10,000 */
    char *good = device_batch("BIG", 10000, -1, "p");
    r = call("POST", "/api/v1/devices:batch", tok, good);
    expect_status(r, 200);
    expect_counts(&r, "created", 10000, "updated", 0);
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT count(*) FROM devices"), "10004");
    cr_assert_eq(action_count("device.create"), 4 + 10000);
    /* listings: 100 by default, at most 1000 */
    r = call("GET", "/api/v1/devices", tok, NULL);
    expect_status(r, 200);
    yajl_val page = parse(&r);
    cr_assert_eq(jlen(jarr(page, "devices")), 100);
    cr_assert(jstr(page, "next"));
    http_result_free(&r);
    r = call("GET", "/api/v1/devices?limit=1000", tok, NULL);
    expect_status(r, 200);
    page = parse(&r);
    cr_assert_eq(jlen(jarr(page, "devices")), 1000);
    expect_str(jat(jarr(page, "devices"), 0), "serial_number", "B-1");
    expect_str(jat(jarr(page, "devices"), 999), "serial_number", "BIG-00995");
    cr_assert(jstr(page, "next"));
    http_result_free(&r);

    /* a serial twice: the later place is named */
    s = snap();
    r = call("POST", "/api/v1/devices:batch", tok,
             "{\"devices\": [{\"serial_number\": \"D-1\", \"product\": \"p\"},"
             " {\"serial_number\": \"D-2\", \"product\": \"p\"}, {\"serial_number\": \"D-1\", \"product\": \"q\"}]}");
    expect_errors(expect_problem(r, 422, "the batch is invalid: nothing was stored"), 1,
                  "/devices/2/serial_number", "appears twice in the batch (also at /devices/0)");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.batch", "rw");

    /* more than 10,000; not an array; empty; unknown member */
    char *too_many = device_batch("MANY", 10001, -1, "p");
    const char *shape[] = {too_many, "{\"devices\": {\"serial_number\": \"X\", \"product\": \"p\"}}",
                           "{\"devices\": []}", "{\"devices\": null}", "{}"};
    for (size_t i = 0; i < sizeof(shape) / sizeof(*shape); i++) {
        s = snap();
        r = call("POST", "/api/v1/devices:batch", tok, shape[i]);
        expect_errors(expect_problem(r, 422, "the batch is invalid"), 1, "/devices",
                      "must be an array of 1 to 10000 devices");
        http_result_free(&r);
        expect_refusal_recorded(s, "device.batch", "rw");
    }
    s = snap();
    r = call("POST", "/api/v1/devices:batch", tok,
             "{\"devices\": [{\"serial_number\": \"E-1\", \"product\": \"p\"}], \"dry_run\": true}");
    expect_errors(expect_problem(r, 422, "the batch is invalid"), 1, "/dry_run", "unknown field");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.batch", "rw");

    /* bad rows are named by index */
    s = snap();
    r = call("POST", "/api/v1/devices:batch", tok,
             "{\"devices\": [{\"serial_number\": \"E-1\", \"product\": \"p\"}, 7, {\"product\": \"p\"},"
             " {\"serial_number\": \"E 4 \", \"product\": \"p\"}, {\"serial_number\": \"E-5\", \"product\": \"p\", \"x\": 1}]}");
    expect_errors(expect_problem(r, 422, "the batch is invalid: nothing was stored"), 4,
                  "/devices/1", "must be an object",
                  "/devices/2/serial_number", "is required",
                  "/devices/3/serial_number",
                  "must be 1 to 64 characters of text without control characters and without a "
                  "leading or trailing space",
                  "/devices/4/x", "unknown field");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.batch", "rw");
}

Test(ownership, assign_transfer_release_and_owner_delete, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = new_token("sales", ALL_SCOPES);
    char *ro = new_token("ro", "devices:read");
    put_owner(tok, "acme");
    put_owner(tok, "beta");
    put_device(tok, "OWN-1", "{\"product\": \"p\"}", 201);

    /* no current owner yet */
    struct http_result r = call("GET", "/api/v1/devices/OWN-1/ownership", tok, NULL);
    expect_status(r, 200);
    yajl_val h = parse(&r);
    cr_assert(jnull(h, "current"));
    cr_assert_eq(jlen(jarr(h, "history")), 0);
    http_result_free(&r);

    /* refusals of an assignment */
    struct {
        const char *body, *pointer, *detail;
    } bad[] = {
        {"{\"owner_id\": \"nobody\"}", "/owner_id", "no owner \"nobody\" exists"},
        {"{\"owner_id\": \"Acme Corp\"}", "/owner_id", "must be 1 to 64 of a-z 0-9 . _ -"},
        {"{\"order_ref\": \"SO-1\"}", "/owner_id", "is required"},
        {"{\"owner_id\": \"acme\", \"price\": 10}", "/price", "unknown field"},
        {"{\"owner_id\": \"acme\", \"order_ref\": 12}", "/order_ref", "must be a string, not number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct snapshot s = snap();
        r = call("PUT", "/api/v1/devices/OWN-1/ownership", tok, bad[i].body);
        expect_errors(expect_problem(r, 422, "the assignment is invalid"), 1, bad[i].pointer, bad[i].detail);
        http_result_free(&r);
        expect_refusal_recorded(s, "ownership.assign", "sales");
    }
    cr_assert_str_eq(q("SELECT serial_number || ' ' || owner_id FROM audit_events ORDER BY seq DESC LIMIT 1"),
                     "OWN-1 acme");

    /* unknown device: 404 */
    struct snapshot s = snap();
    r = assign(tok, "NOPE-1", "acme", NULL);
    yajl_val p = expect_problem(r, 404, "no device has the serial number \"NOPE-1\"");
    /* the path names the device: no field error */
    cr_assert_null(jget(p, "errors"), "a 404 for an unknown device carries %s", r.body);
    http_result_free(&r);
    expect_refusal_recorded(s, "ownership.assign", "sales");
    /* unknown device and unknown owner: the device decides */
    r = assign(tok, "NOPE-1", "nobody", NULL);
    expect_problem(r, 404, "no device has the serial number \"NOPE-1\"");
    http_result_free(&r);

    /* a token without ownership:write */
    s = snap();
    r = assign(ro, "OWN-1", "acme", NULL);
    expect_problem(r, 403, "the token \"ro\" lacks the scope ownership:write");
    http_result_free(&r);
    expect_refusal_recorded(s, "ownership.assign", "ro");

    /* assigned: 201 with current and history */
    r = assign(tok, "OWN-1", "acme", "SO-2026-000123");
    expect_status(r, 201);
    h = parse(&r);
    yajl_val cur = jget(h, "current");
    cr_assert(cur && YAJL_IS_OBJECT(cur), "%s", r.body);
    expect_str(cur, "owner_id", "acme");
    expect_str(cur, "order_ref", "SO-2026-000123");
    cr_assert(rfc3339_utc(jstr(cur, "from")));
    cr_assert(jnull(cur, "until"));
    cr_assert_eq(jlen(jarr(h, "history")), 1);
    expect_str(jat(jarr(h, "history"), 0), "owner_id", "acme");
    http_result_free(&r);
    cr_assert_eq(action_count("ownership.assign"), 1);
    cr_assert_str_eq(q("SELECT serial_number || ' ' || owner_id || ' ' || actor FROM audit_events"
                       " WHERE action = 'ownership.assign' AND outcome = 'ok'"), "OWN-1 acme sales");

    /* the device shows its owner */
    r = call("GET", "/api/v1/devices/OWN-1", tok, NULL);
    expect_str(parse(&r), "owner_id", "acme");
    http_result_free(&r);

    /* the same again: 200, nothing written */
    s = snap();
    r = assign(tok, "OWN-1", "acme", "SO-2026-000123");
    expect_status(r, 200);
    h = parse(&r);
    expect_str(jget(h, "current"), "owner_id", "acme");
    cr_assert_eq(jlen(jarr(h, "history")), 1);
    http_result_free(&r);
    cr_assert_str_eq(data_digest(), s.data);
    cr_assert_eq(audit_count(), s.audit);

    /* transferred: the first period is closed where the second begins */
    r = assign(tok, "OWN-1", "beta", NULL);
    expect_status(r, 201);
    h = parse(&r);
    yajl_val hist = jarr(h, "history");
    cr_assert_eq(jlen(hist), 2, "%s", r.body);
    yajl_val first = jat(hist, 0), second = jat(hist, 1);
    expect_str(first, "owner_id", "acme");
    expect_str(first, "order_ref", "SO-2026-000123");
    cr_assert(rfc3339_utc(jstr(first, "until")), "%s", r.body);
    cr_assert_str_eq(jstr(first, "until"), jstr(second, "from"));
    expect_str(second, "owner_id", "beta");
    expect_str(second, "order_ref", NULL);
    cr_assert(jnull(second, "until"));
    expect_str(jget(h, "current"), "owner_id", "beta");
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT count(*) FROM ownership o1 JOIN ownership o2 ON o1.serial_number = o2.serial_number"
                       " AND o1.valid_until = o2.valid_from WHERE o1.owner_id = 'acme' AND o2.owner_id = 'beta'"),
                     "1");
    cr_assert_str_eq(q("SELECT serial_number || ' ' || owner_id FROM audit_events WHERE action = 'ownership.transfer'"),
                     "OWN-1 beta");

    /* an owner that still owns devices cannot be deleted */
    s = snap();
    r = call("DELETE", "/api/v1/owners/beta", tok, NULL);
    expect_problem(r, 409, "owner \"beta\" still owns 1 devices: release or transfer them first");
    http_result_free(&r);
    expect_refusal_recorded(s, "owner.delete", "sales");
    r = call("GET", "/api/v1/owners/beta", tok, NULL);
    expect_status(r, 200);
    http_result_free(&r);

    /* released: 204, no current owner, the history complete */
    r = call("DELETE", "/api/v1/devices/OWN-1/ownership", tok, NULL);
    expect_status(r, 204);
    cr_assert_eq(r.body_len, 0);
    http_result_free(&r);
    r = call("GET", "/api/v1/devices/OWN-1/ownership", tok, NULL);
    expect_status(r, 200);
    h = parse(&r);
    cr_assert(jnull(h, "current"), "%s", r.body);
    hist = jarr(h, "history");
    cr_assert_eq(jlen(hist), 2);
    expect_str(jat(hist, 0), "owner_id", "acme");
    expect_str(jat(hist, 1), "owner_id", "beta");
    cr_assert(rfc3339_utc(jstr(jat(hist, 1), "until")), "%s", r.body);
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT serial_number || ' ' || owner_id FROM audit_events WHERE action = 'ownership.release'"),
                     "OWN-1 beta");
    r = call("GET", "/api/v1/devices/OWN-1", tok, NULL);
    cr_assert(jnull(parse(&r), "owner_id"));
    http_result_free(&r);

    /* released again: 204, nothing written */
    s = snap();
    r = call("DELETE", "/api/v1/devices/OWN-1/ownership", tok, NULL);
    expect_status(r, 204);
    http_result_free(&r);
    cr_assert_str_eq(data_digest(), s.data);
    cr_assert_eq(audit_count(), s.audit);

    /* now the owner goes; its history stays */
    r = call("DELETE", "/api/v1/owners/beta", tok, NULL);
    expect_status(r, 204);
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT count(*) FROM audit_events WHERE action = 'owner.delete' AND outcome = 'ok'"
                       " AND owner_id = 'beta'"), "1");
    r = call("GET", "/api/v1/owners/beta", tok, NULL);
    expect_problem(r, 404, "no owner \"beta\" exists");
    http_result_free(&r);
    r = call("DELETE", "/api/v1/owners/beta", tok, NULL);
    expect_problem(r, 404, "no owner \"beta\" exists");
    http_result_free(&r);
    r = call("GET", "/api/v1/devices/OWN-1/ownership", tok, NULL);
    cr_assert_eq(jlen(jarr(parse(&r), "history")), 2);
    http_result_free(&r);
    /* a deleted owner cannot be assigned */
    s = snap();
    r = assign(tok, "OWN-1", "beta", NULL);
    expect_errors(expect_problem(r, 422, "the assignment is invalid"), 1, "/owner_id",
                  "no owner \"beta\" exists");
    http_result_free(&r);
    expect_refusal_recorded(s, "ownership.assign", "sales");

    /* the ownership of an unknown device */
    s = snap();
    r = call("GET", "/api/v1/devices/NOPE-1/ownership", tok, NULL);
    expect_problem(r, 404, "no device has the serial number \"NOPE-1\"");
    http_result_free(&r);
    expect_refusal_recorded(s, "ownership.get", "sales");
    s = snap();
    r = call("DELETE", "/api/v1/devices/NOPE-1/ownership", tok, NULL);
    expect_problem(r, 404, "no device has the serial number \"NOPE-1\"");
    http_result_free(&r);
    expect_refusal_recorded(s, "ownership.release", "sales");
    r = call("GET", "/api/v1/devices/%20X/ownership", tok, NULL);
    expect_problem(r, 404, "no device has that serial number");
    http_result_free(&r);
}

/* ---- concurrent assignment ---- */

enum { RACERS = 4, ROUNDS = 12 };

struct racer {
    const char *token;
    const char *path;
    char body[256];
    pthread_barrier_t *barrier;
    long status[ROUNDS];
    char *failure[ROUNDS];
};

static void *race(void *arg)
{
    struct racer *rc = arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_barrier_wait(rc->barrier);
        struct http_opts o = {.management = true, .body = rc->body, .body_len = strlen(rc->body),
                              .content_type = "application/json", .bearer = rc->token,
                              .method = strstr(rc->path, ":batch") ? NULL : "PUT"};
        struct http_result r = http(&proc, rc->path, &o);
        rc->status[i] = r.status;
        rc->failure[i] = r.status == 200 || r.status == 201 ? NULL : strdup(r.body);
        http_result_free(&r);
    }
    return NULL;
}

/* The last line of masad's stderr that mentions `what`, for a message. */
static char *log_line(const char *what)
{
    char *log = read_text(proc.stderr_path), *at = NULL;
    for (char *p = strstr(log, what); p; p = strstr(p + 1, what))
        at = p;
    if (!at)
        return strdup("(not logged)");
    while (at > log && at[-1] != '\n')
        at--;
    return strndup(at, strcspn(at, "\n"));
}

/* Every racer's every call succeeded (200/201; batches 200); counts the 201s. */
static void expect_all_answered(struct racer *racers, bool batch, long *created)
{
    int failed = 0;
    const char *first = NULL;
    for (int i = 0; i < RACERS; i++)
        for (int k = 0; k < ROUNDS; k++) {
            long st = racers[i].status[k];
            if (st == 201 && created)
                (*created)++;
            if (st == 200 || (st == 201 && !batch))
                continue;
            if (!failed++)
                first = fmt("racer %d round %d: %ld %s", i, k, st, racers[i].failure[k]);
        }
    /* concurrent assignments queue up, each answering 201 or 200 */
    cr_assert_eq(failed, 0, "%d of %d concurrent %s failed; the first: %s; masad logged: %s", failed,
                 RACERS * ROUNDS, batch ? "batches" : "assignments", first,
                 log_line("database error"));
}

static void expect_history_sound(const char *serial)
{
    cr_assert_str_eq(q("SELECT count(*) FROM ownership WHERE serial_number = '%s' AND valid_until IS NULL",
                       serial), "1", "%s: not exactly one current owner", serial);
    /* ordered by valid_from, id: each closed period ends where the next begins */
    cr_assert_str_eq(q("SELECT count(*) FROM (SELECT valid_until, lead(valid_from) OVER w AS next_from,"
                       " row_number() OVER w AS n, count(*) OVER () AS total FROM ownership"
                       " WHERE serial_number = '%s' WINDOW w AS (ORDER BY valid_from, id)) t"
                       " WHERE (n < total AND valid_until IS DISTINCT FROM next_from)"
                       " OR (n = total AND valid_until IS NOT NULL)", serial),
                     "0", "%s: the history has gaps or overlaps: %s", serial,
                     q("SELECT string_agg(owner_id || ' ' || valid_from || ' .. ' || coalesce(valid_until::text, ''),"
                       " '; ' ORDER BY valid_from, id) FROM ownership WHERE serial_number = '%s'", serial));
}

Test(ownership, concurrent_assignments_leave_one_owner_and_a_sound_history, .timeout = 120)
{
    struct masad_opts mo = {.job_threads = 4};
    cr_assert(masad_start(&proc, &mo), "masad did not start: %s", read_text(proc.stderr_path));
    char *tok = new_token("sales", ALL_SCOPES);
    const char *owners[RACERS] = {"o1", "o2", "o3", "o4"};
    for (int i = 0; i < RACERS; i++)
        put_owner(tok, owners[i]);
    put_device(tok, "RACE-1", "{\"product\": \"p\"}", 201);
    put_device(tok, "RACE-2", "{\"product\": \"p\"}", 201);
    put_device(tok, "RACE-3", "{\"product\": \"p\"}", 201);

    /* single assignments of one device to different owners at once */
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, RACERS);
    struct racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.token = tok, .path = "/api/v1/devices/RACE-1/ownership", .barrier = &barrier};
        snprintf(racers[i].body, sizeof(racers[i].body), "{\"owner_id\": \"%s\"}", owners[i]);
        pthread_create(&threads[i], NULL, race, &racers[i]);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(threads[i], NULL);
    long created = 0;
    expect_all_answered(racers, false, &created);
    expect_history_sound("RACE-1");
    /* every 201 opened one period and wrote one event */
    cr_assert_eq(qn("SELECT count(*) FROM ownership WHERE serial_number = 'RACE-1'"), created);
    cr_assert_eq(qn("SELECT count(*) FROM audit_events WHERE serial_number = 'RACE-1' AND outcome = 'ok'"
                    " AND action IN ('ownership.assign', 'ownership.transfer')"), created);
    cr_assert_eq(action_count("ownership.assign"), 1);

    /* batches over the same devices in opposite orders: no deadlock, sound histories */
    pthread_barrier_destroy(&barrier);
    pthread_barrier_init(&barrier, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.token = tok, .path = "/api/v1/ownership:batch", .barrier = &barrier};
        if (i % 2)
            snprintf(racers[i].body, sizeof(racers[i].body),
                     "{\"assignments\": [{\"serial_number\": \"RACE-2\", \"owner_id\": \"%s\"},"
                     " {\"serial_number\": \"RACE-3\", \"owner_id\": \"%s\"}]}", owners[i], owners[i]);
        else
            snprintf(racers[i].body, sizeof(racers[i].body),
                     "{\"assignments\": [{\"serial_number\": \"RACE-3\", \"owner_id\": \"%s\"},"
                     " {\"serial_number\": \"RACE-2\", \"owner_id\": \"%s\"}]}", owners[i], owners[i]);
        pthread_create(&threads[i], NULL, race, &racers[i]);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(threads[i], NULL);
    expect_all_answered(racers, true, NULL);
    expect_history_sound("RACE-2");
    expect_history_sound("RACE-3");
    /* both devices end with the same owner: the batches did not interleave */
    cr_assert_str_eq(q("SELECT count(DISTINCT owner_id) FROM ownership WHERE valid_until IS NULL"
                       " AND serial_number IN ('RACE-2', 'RACE-3')"), "1");
    stop();
}

/* The current owners are matched to a batch in serial order: rows stored in
 * another order (assigned one by one, last serial first) still count as
 * unchanged when the batch repeats them. */
Test(ownership, a_batch_repeating_owners_assigned_in_another_order_is_unchanged, .init = start,
     .fini = stop, .timeout = 120)
{
    char *tok = new_token("sales", ALL_SCOPES);
    put_owner(tok, "acme");
    struct http_result r = call("POST", "/api/v1/devices:batch", tok,
                                "{\"devices\": [{\"serial_number\": \"OR-1\", \"product\": \"p\"},"
                                " {\"serial_number\": \"OR-2\", \"product\": \"p\"},"
                                " {\"serial_number\": \"OR-3\", \"product\": \"p\"}]}");
    expect_status(r, 200);
    http_result_free(&r);
    const char *one_by_one[] = {"OR-3", "OR-2", "OR-1"};
    for (size_t i = 0; i < 3; i++) {
        r = call("POST", "/api/v1/ownership:batch", tok,
                 fmt("{\"assignments\": [{\"serial_number\": \"%s\", \"owner_id\": \"acme\"}]}",
                     one_by_one[i]));
        expect_status(r, 200);
        expect_counts(&r, "assigned", 1, "unchanged", 0);
        http_result_free(&r);
    }
    struct snapshot s = snap();
    r = call("POST", "/api/v1/ownership:batch", tok,
             "{\"assignments\": [{\"serial_number\": \"OR-1\", \"owner_id\": \"acme\"},"
             " {\"serial_number\": \"OR-2\", \"owner_id\": \"acme\"},"
             " {\"serial_number\": \"OR-3\", \"owner_id\": \"acme\"}]}");
    expect_status(r, 200);
    expect_counts(&r, "assigned", 0, "unchanged", 3);
    http_result_free(&r);
    cr_assert_str_eq(data_digest(), s.data);
    cr_assert_eq(audit_count(), s.audit);
}

Test(ownership, batch_assignments, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = new_token("sales", ALL_SCOPES);
    put_owner(tok, "acme");
    put_owner(tok, "beta");
    struct http_result r = call("POST", "/api/v1/devices:batch", tok,
                                "{\"devices\": [{\"serial_number\": \"OB-1\", \"product\": \"p\"},"
                                " {\"serial_number\": \"OB-2\", \"product\": \"p\"},"
                                " {\"serial_number\": \"OB-3\", \"product\": \"p\"}]}");
    expect_status(r, 200);
    http_result_free(&r);

    const char *batch = "{\"assignments\": ["
                        "{\"serial_number\": \"OB-3\", \"owner_id\": \"beta\"},"
                        " {\"serial_number\": \"OB-1\", \"owner_id\": \"acme\", \"order_ref\": \"SO-1\"},"
                        " {\"serial_number\": \"OB-2\", \"owner_id\": \"acme\", \"order_ref\": null}]}";
    r = call("POST", "/api/v1/ownership:batch", tok, batch);
    expect_status(r, 200);
    expect_counts(&r, "assigned", 3, "unchanged", 0);
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT string_agg(serial_number || ':' || owner_id || ':' || coalesce(order_ref, '-'), ','"
                       " ORDER BY serial_number) FROM ownership WHERE valid_until IS NULL"),
                     "OB-1:acme:SO-1,OB-2:acme:-,OB-3:beta:-");
    cr_assert_eq(action_count("ownership.assign"), 3);

    /* again: unchanged, nothing written */
    struct snapshot s = snap();
    r = call("POST", "/api/v1/ownership:batch", tok, batch);
    expect_status(r, 200);
    expect_counts(&r, "assigned", 0, "unchanged", 3);
    http_result_free(&r);
    cr_assert_str_eq(data_digest(), s.data);
    cr_assert_eq(audit_count(), s.audit);

    /* refusals name the entry; nothing changes, even the valid entries */
    struct {
        const char *body, *detail, *pointer, *problem;
    } bad[] = {
        {"{\"assignments\": [{\"serial_number\": \"OB-1\", \"owner_id\": \"beta\"},"
         " {\"serial_number\": \"NOPE-9\", \"owner_id\": \"acme\"}]}",
         "the batch is invalid: nothing was stored", "/assignments/1/serial_number",
         "no device has the serial number \"NOPE-9\""},
        {"{\"assignments\": [{\"serial_number\": \"OB-1\", \"owner_id\": \"beta\"},"
         " {\"serial_number\": \"OB-2\", \"owner_id\": \"beta\"},"
         " {\"serial_number\": \"OB-3\", \"owner_id\": \"ghost\"}]}",
         "the batch is invalid: nothing was stored", "/assignments/2/owner_id", "no owner \"ghost\" exists"},
        {"{\"assignments\": [{\"serial_number\": \"OB-1\", \"owner_id\": \"beta\"},"
         " {\"serial_number\": \"OB-2\", \"owner_id\": \"beta\"},"
         " {\"serial_number\": \"OB-1\", \"owner_id\": \"acme\"}]}",
         "the batch is invalid: nothing was stored", "/assignments/2/serial_number",
         "appears twice in the batch (also at /assignments/0)"},
        {"{\"assignments\": [{\"serial_number\": \"OB-1\", \"owner_id\": \"beta\"},"
         " {\"owner_id\": \"beta\"}]}",
         "the batch is invalid: nothing was stored", "/assignments/1/serial_number", "is required"},
        {"{\"assignments\": [{\"serial_number\": \"OB-1\", \"owner_id\": \"beta\"},"
         " {\"serial_number\": \"OB-2\", \"owner_id\": \"Beta\"}]}",
         "the batch is invalid: nothing was stored", "/assignments/1/owner_id", "must be 1 to 64 of a-z 0-9 . _ -"},
        {"{\"assignments\": [{\"serial_number\": \"OB-1\", \"owner_id\": \"beta\"},"
         " {\"serial_number\": \" OB-2\", \"owner_id\": \"beta\"}]}",
         "the batch is invalid: nothing was stored", "/assignments/1/serial_number", "is not a valid serial number"},
        {"{\"assignments\": [{\"serial_number\": \"OB-1\", \"owner_id\": \"beta\", \"note\": \"x\"}]}",
         "the batch is invalid: nothing was stored", "/assignments/0/note", "unknown field"},
        {"{\"assignments\": {\"serial_number\": \"OB-1\", \"owner_id\": \"beta\"}}",
         "the batch is invalid", "/assignments", "must be an array of 1 to 10000 assignments"},
        {"{\"assignments\": []}", "the batch is invalid", "/assignments",
         "must be an array of 1 to 10000 assignments"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        s = snap();
        r = call("POST", "/api/v1/ownership:batch", tok, bad[i].body);
        expect_errors(expect_problem(r, 422, bad[i].detail), 1, bad[i].pointer, bad[i].problem);
        http_result_free(&r);
        expect_refusal_recorded(s, "ownership.batch", "sales");
    }
    /* a batch of one with an unknown owner; the sentence differs from a longer batch's */
    s = snap();
    r = call("POST", "/api/v1/ownership:batch", tok,
             "{\"assignments\": [{\"serial_number\": \"OB-1\", \"owner_id\": \"ghost\"}]}");
    expect_errors(expect_problem(r, 422, NULL), 1, "/assignments/0/owner_id", "no owner \"ghost\" exists");
    http_result_free(&r);
    expect_refusal_recorded(s, "ownership.batch", "sales");

    /* a transfer and an unchanged entry */
    r = call("POST", "/api/v1/ownership:batch", tok,
             "{\"assignments\": [{\"serial_number\": \"OB-3\", \"owner_id\": \"acme\"},"
             " {\"serial_number\": \"OB-1\", \"owner_id\": \"acme\", \"order_ref\": \"SO-1\"}]}");
    expect_status(r, 200);
    expect_counts(&r, "assigned", 1, "unchanged", 1);
    http_result_free(&r);
    cr_assert_str_eq(q("SELECT string_agg(serial_number || ' ' || owner_id, ',') FROM audit_events"
                       " WHERE action = 'ownership.transfer'"), "OB-3 acme");
    expect_history_sound("OB-3");
    r = call("GET", "/api/v1/devices/OB-3/ownership", tok, NULL);
    yajl_val h = parse(&r);
    cr_assert_eq(jlen(jarr(h, "history")), 2);
    expect_str(jget(h, "current"), "owner_id", "acme");
    http_result_free(&r);
}

/* ---- listings ---- */

/* Follows `next` from path (which has a query) to the end; returns the
 * serials seen, comma-separated, and the number of pages. */
static char *walk_devices(const char *tok, const char *first, int *pages)
{
    char *seen = strdup(""), *path = strdup(first);
    *pages = 0;
    for (;;) {
        struct http_result r = call("GET", path, tok, NULL);
        expect_status(r, 200);
        yajl_val v = parse(&r);
        yajl_val list = jarr(v, "devices");
        for (size_t i = 0; i < jlen(list); i++) {
            char *s = fmt("%s%s%s", seen, *seen ? "," : "", jstr(jat(list, i), "serial_number"));
            free(seen);
            seen = s;
        }
        (*pages)++;
        cr_assert_lt(*pages, 20, "paging does not end");
        const char *next = jstr(v, "next");
        char *base = strndup(first, strcspn(first, "?"));
        const char *query = strchr(first, '?');
        free(path);
        path = next ? fmt("%s%s%safter=%s", base, query ? query : "", query ? "&" : "?", next) : NULL;
        free(base);
        http_result_free(&r);
        if (!path)
            return seen;
    }
}

Test(listings, devices_paged_and_filtered, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = new_token("lister", ALL_SCOPES);
    const char *serials[] = {"P-4", "P-2", "P-5", "P-1", "P-3"};
    for (int i = 0; i < 5; i++)
        put_device(tok, serials[i], "{\"product\": \"p\"}", 201);
    put_owner(tok, "acme");
    for (int i = 0; i < 2; i++) {
        struct http_result r = assign(tok, i ? "P-4" : "P-2", "acme", NULL);
        expect_status(r, 201);
        http_result_free(&r);
    }

    struct http_result r = call("GET", "/api/v1/devices?limit=2", tok, NULL);
    expect_status(r, 200);
    yajl_val v = parse(&r);
    cr_assert_eq(jlen(jarr(v, "devices")), 2);
    cr_assert(jstr(v, "next"), "%s", r.body);
    yajl_val dev = jat(jarr(v, "devices"), 0);
    expect_str(dev, "serial_number", "P-1");
    cr_assert(jhas(dev, "product") && jhas(dev, "owner_id") && jhas(dev, "created_at") &&
              jhas(dev, "vouchers_issued") && jhas(dev, "last_progress"), "%s", r.body);
    http_result_free(&r);

    int pages;
    cr_assert_str_eq(walk_devices(tok, "/api/v1/devices?limit=2", &pages), "P-1,P-2,P-3,P-4,P-5");
    cr_assert_eq(pages, 3);
    cr_assert_str_eq(walk_devices(tok, "/api/v1/devices?limit=1", &pages), "P-1,P-2,P-3,P-4,P-5");
    cr_assert_eq(pages, 5);
    cr_assert_str_eq(walk_devices(tok, "/api/v1/devices", &pages), "P-1,P-2,P-3,P-4,P-5");
    cr_assert_eq(pages, 1);
    cr_assert_str_eq(walk_devices(tok, "/api/v1/devices?limit=5", &pages), "P-1,P-2,P-3,P-4,P-5");
    cr_assert_eq(pages, 1);
    cr_assert_str_eq(walk_devices(tok, "/api/v1/devices?limit=1000", &pages), "P-1,P-2,P-3,P-4,P-5");

    /* the owner filter, alone and paged */
    cr_assert_str_eq(walk_devices(tok, "/api/v1/devices?owner_id=acme", &pages), "P-2,P-4");
    cr_assert_str_eq(walk_devices(tok, "/api/v1/devices?owner_id=acme&limit=1", &pages), "P-2,P-4");
    cr_assert_eq(pages, 2);
    r = call("GET", "/api/v1/devices?owner_id=acme", tok, NULL);
    yajl_val list = jarr(parse(&r), "devices");
    expect_str(jat(list, 0), "owner_id", "acme");
    expect_str(jat(list, 1), "owner_id", "acme");
    http_result_free(&r);
    cr_assert_str_eq(walk_devices(tok, "/api/v1/devices?owner_id=nobody", &pages), "");

    /* a bad limit or cursor is a 422 */
    const char *bad_limit[] = {"limit=0", "limit=1001", "limit=abc", "limit=", "limit=-1",
                               "limit=+5", "limit=2x", "limit=99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_limit) / sizeof(*bad_limit); i++) {
        struct snapshot s = snap();
        char *path = fmt("/api/v1/devices?%s", bad_limit[i]);
        r = call("GET", path, tok, NULL);
        expect_problem(r, 422, "limit must be an integer from 1 to 1000");
        http_result_free(&r);
        expect_refusal_recorded(s, "device.list", "lister");
        free(path);
    }
    const char *bad_after[] = {"after=garbage", "after=%21%21", "after=", "after=YWJj"};
    for (size_t i = 0; i < sizeof(bad_after) / sizeof(*bad_after); i++) {
        char *path = fmt("/api/v1/devices?%s", bad_after[i]);
        r = call("GET", path, tok, NULL);
        expect_problem(r, 422, "after is not a cursor that this service issued");
        http_result_free(&r);
        free(path);
    }
    r = call("GET", "/api/v1/devices?owner_id=Not%20Valid", tok, NULL);
    expect_problem(r, 422, "owner_id must be 1 to 64 of a-z 0-9 . _ -");
    http_result_free(&r);

    /* scope */
    char *writer = new_token("writer", "devices:write");
    struct snapshot s = snap();
    r = call("GET", "/api/v1/devices", writer, NULL);
    expect_problem(r, 403, "the token \"writer\" lacks the scope devices:read");
    http_result_free(&r);
    expect_refusal_recorded(s, "device.list", "writer");
    r = call("GET", "/api/v1/devices/P-1", writer, NULL);
    expect_problem(r, 403, "the token \"writer\" lacks the scope devices:read");
    http_result_free(&r);
}

/* The events of the audit listing at path, every page, as
 * "action outcome serial owner actor" lines. */
static char *walk_audit(const char *tok, const char *first, int *pages)
{
    char *seen = strdup(""), *path = strdup(first);
    long last_seq = 0;
    *pages = 0;
    for (;;) {
        struct http_result r = call("GET", path, tok, NULL);
        expect_status(r, 200);
        yajl_val v = parse(&r);
        yajl_val list = jarr(v, "events");
        for (size_t i = 0; i < jlen(list); i++) {
            yajl_val e = jat(list, i);
            long seq = jint(e, "seq");
            cr_assert_gt(seq, last_seq, "events out of order: %s", r.body);
            last_seq = seq;
            cr_assert(rfc3339_utc(jstr(e, "at")), "%s", r.body);
            static const char *const keys[] = {"chain", "chain_seq", "detail", "prev_hash", "hash"};
            for (size_t k = 0; k < sizeof(keys) / sizeof(*keys); k++)
                cr_assert(jhas(e, keys[k]), "no %s: %s", keys[k], r.body);
            const char *serial = jstr(e, "serial_number"), *owner = jstr(e, "owner_id");
            char *s = fmt("%s%s %s %s %s %s\n", seen, jstr(e, "action"), jstr(e, "outcome"),
                          serial ? serial : "-", owner ? owner : "-", jstr(e, "actor"));
            free(seen);
            seen = s;
        }
        (*pages)++;
        cr_assert_lt(*pages, 100, "paging does not end");
        const char *next = jstr(v, "next");
        char *base = strndup(first, strcspn(first, "?"));
        const char *query = strchr(first, '?');
        free(path);
        path = next ? fmt("%s%s%safter=%s", base, query ? query : "", query ? "&" : "?", next) : NULL;
        free(base);
        http_result_free(&r);
        if (!path)
            return seen;
    }
}

Test(listings, vouchers_progress_and_audit, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = new_token("auditor", ALL_SCOPES);
    char *blind = new_token("blind", "devices:read,devices:write");
    struct passwd *pw = getpwuid(getuid());
    char *cli = fmt("cli:%s", pw ? pw->pw_name : "unknown");

    put_owner(tok, "acme");
    put_owner(tok, "beta");
    put_device(tok, "V-1", "{\"product\": \"p\"}", 201);
    put_device(tok, "V-2", "{\"product\": \"p\"}", 201);

    /* empty listings */
    struct http_result r = call("GET", "/api/v1/devices/V-1/vouchers", tok, NULL);
    expect_status(r, 200);
    yajl_val v = parse(&r);
    cr_assert_eq(v->u.object.len, 2, "%s", r.body);
    cr_assert_eq(jlen(jarr(v, "vouchers")), 0);
    cr_assert(jnull(v, "next"));
    http_result_free(&r);
    r = call("GET", "/api/v1/devices/V-1/progress", tok, NULL);
    expect_status(r, 200);
    v = parse(&r);
    cr_assert_eq(v->u.object.len, 2, "%s", r.body);
    cr_assert_eq(jlen(jarr(v, "progress")), 0);
    cr_assert(jnull(v, "next"));
    http_result_free(&r);
    const char *per_device[] = {"vouchers", "progress"};
    for (int i = 0; i < 2; i++) {
        char *path = fmt("/api/v1/devices/NOPE-1/%s", per_device[i]);
        struct snapshot s = snap();
        r = call("GET", path, tok, NULL);
        expect_problem(r, 404, "no device has the serial number \"NOPE-1\"");
        http_result_free(&r);
        expect_refusal_recorded(s, "device.read", "auditor");
        free(path);
        path = fmt("/api/v1/devices/V-1/%s?limit=0", per_device[i]);
        r = call("GET", path, tok, NULL);
        expect_problem(r, 422, "limit must be an integer from 1 to 1000");
        http_result_free(&r);
        free(path);
    }

    /* what the protocols record shows up in the listings, newest first */
    cr_assert_eq(db_exec(proc.db.owner_url,
                         "INSERT INTO sztp_progress (serial_number, at, progress_type, message) VALUES"
                         " ('V-1', '2026-11-23T10:00:00Z', 'bootstrap-initiated', NULL),"
                         " ('V-1', '2026-11-23T10:00:05Z', 'bootstrap-complete', 'done');"
                         "INSERT INTO vouchers (serial_number, owner_id, protocol, assertion, nonce, created_on,"
                         " expires_on, domain_cert_sha256, voucher) VALUES ('V-1', 'acme', 'brski', 'verified',"
                         " '\\x6e6f6e6365'::bytea, '2026-11-23T10:01:00Z', NULL, sha256('cert'::bytea), '\\x30'::bytea)",
                         NULL), 0);
    r = call("GET", "/api/v1/devices/V-1/progress?limit=1", tok, NULL);
    expect_status(r, 200);
    v = parse(&r);
    cr_assert_eq(jlen(jarr(v, "progress")), 1);
    yajl_val e = jat(jarr(v, "progress"), 0);
    expect_str(e, "at", "2026-11-23T10:00:05Z");
    expect_str(e, "progress_type", "bootstrap-complete");
    expect_str(e, "message", "done");
    const char *next = jstr(v, "next");
    cr_assert(next, "%s", r.body);
    char *path = fmt("/api/v1/devices/V-1/progress?limit=1&after=%s", next);
    http_result_free(&r);
    r = call("GET", path, tok, NULL);
    expect_status(r, 200);
    v = parse(&r);
    cr_assert_eq(jlen(jarr(v, "progress")), 1);
    e = jat(jarr(v, "progress"), 0);
    expect_str(e, "progress_type", "bootstrap-initiated");
    expect_str(e, "message", NULL);
    cr_assert(jnull(v, "next"), "%s", r.body);
    http_result_free(&r);
    r = call("GET", "/api/v1/devices/V-1/vouchers", tok, NULL);
    expect_status(r, 200);
    v = parse(&r);
    cr_assert_eq(jlen(jarr(v, "vouchers")), 1, "%s", r.body);
    e = jat(jarr(v, "vouchers"), 0);
    cr_assert(jint(e, "id") > 0);
    expect_str(e, "created_on", "2026-11-23T10:01:00Z");
    expect_str(e, "expires_on", NULL);
    expect_str(e, "assertion", "verified");
    expect_str(e, "nonce", "bm9uY2U=");
    expect_str(e, "owner_id", "acme");
    expect_str(e, "domain_cert_sha256", q("SELECT encode(sha256('cert'::bytea), 'hex')"));
    expect_str(e, "protocol", "brski");
    expect_str(e, "format", "cms-json");
    cr_assert(jnull(v, "next"));
    http_result_free(&r);
    r = call("GET", "/api/v1/devices/V-1", tok, NULL);
    v = parse(&r);
    cr_assert_eq(jint(v, "vouchers_issued"), 1);
    yajl_val lp = jget(v, "last_progress");
    cr_assert(lp && YAJL_IS_OBJECT(lp), "%s", r.body);
    expect_str(lp, "at", "2026-11-23T10:00:05Z");
    expect_str(lp, "progress_type", "bootstrap-complete");
    expect_str(lp, "message", "done");
    http_result_free(&r);

    /* changes of every kind, then a refusal */
    r = assign(tok, "V-1", "acme", NULL);
    expect_status(r, 201);
    http_result_free(&r);
    sleep_ms(1100); /* a second boundary between the changes above and below */
    char *split = q("SELECT to_char(date_trunc('second', now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
    r = assign(tok, "V-1", "beta", "SO-7");
    expect_status(r, 201);
    http_result_free(&r);
    r = call("DELETE", "/api/v1/devices/V-1/ownership", tok, NULL);
    expect_status(r, 204);
    http_result_free(&r);
    r = call("DELETE", "/api/v1/owners/acme", tok, NULL);
    expect_status(r, 204);
    http_result_free(&r);
    r = call("PUT", "/api/v1/devices/V-2", tok, "{\"product\": \"\"}");
    expect_problem(r, 422, "the device is invalid");
    http_result_free(&r);

    int pages;
    char *want_before = fmt("token.create ok - - %s\n"
                            "token.create ok - - %s\n"
                            "owner.create ok - acme auditor\n"
                            "owner.create ok - beta auditor\n"
                            "device.create ok V-1 - auditor\n"
                            "device.create ok V-2 - auditor\n"
                            "device.read refused NOPE-1 - auditor\n"
                            "device.read refused - - auditor\n"
                            "device.read refused NOPE-1 - auditor\n"
                            "device.read refused - - auditor\n"
                            "ownership.assign ok V-1 acme auditor\n", cli, cli);
    const char *want_after = "ownership.transfer ok V-1 beta auditor\n"
                             "ownership.release ok V-1 beta auditor\n"
                             "owner.delete ok - acme auditor\n"
                             "device.put refused V-2 - auditor\n";
    char *all = walk_audit(tok, "/api/v1/audit", &pages);
    cr_assert_str_eq(all, fmt("%s%s", want_before, want_after));
    cr_assert_eq(pages, 1);
    /* paged, the same events exactly once */
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?limit=2", &pages), all);
    int events = 0;
    for (const char *c = all; *c; c++)
        events += *c == '\n';
    cr_assert_eq(pages, (events + 1) / 2);

    /* the refusal's detail */
    r = call("GET", "/api/v1/audit?action=device.put", tok, NULL);
    expect_status(r, 200);
    v = parse(&r);
    cr_assert_eq(jlen(jarr(v, "events")), 1, "%s", r.body);
    e = jat(jarr(v, "events"), 0);
    expect_str(e, "outcome", "refused");
    yajl_val detail = jget(e, "detail");
    cr_assert(detail && YAJL_IS_OBJECT(detail), "%s", r.body);
    cr_assert_eq(jint(detail, "status"), 422);
    expect_str(detail, "reason", "the device is invalid");
    expect_str(detail, "pointer", "/product");
    expect_str(detail, "problem", "must not be empty");
    http_result_free(&r);

    /* filters */
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?serial_number=V-1", &pages),
                     "device.create ok V-1 - auditor\n"
                     "ownership.assign ok V-1 acme auditor\n"
                     "ownership.transfer ok V-1 beta auditor\n"
                     "ownership.release ok V-1 beta auditor\n");
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?action=ownership.assign", &pages),
                     "ownership.assign ok V-1 acme auditor\n");
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?owner_id=acme", &pages),
                     "owner.create ok - acme auditor\n"
                     "ownership.assign ok V-1 acme auditor\n"
                     "owner.delete ok - acme auditor\n");
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?owner_id=beta&serial_number=V-1&limit=1", &pages),
                     "ownership.transfer ok V-1 beta auditor\n"
                     "ownership.release ok V-1 beta auditor\n");
    cr_assert_eq(pages, 2);
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?action=token.create", &pages),
                     fmt("token.create ok - - %s\ntoken.create ok - - %s\n", cli, cli));
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?action=no.such", &pages), "");
    char *since = fmt("/api/v1/audit?since=%s", split), *until = fmt("/api/v1/audit?until=%s", split);
    cr_assert_str_eq(walk_audit(tok, since, &pages), want_after);
    cr_assert_str_eq(walk_audit(tok, until, &pages), want_before);
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00%2B00:00", &pages), all);
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?since=2999-01-01T00:00:00Z", &pages), "");
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?until=2000-01-01T00:00:00Z", &pages), "");

    /* the last three have the shape of RFC 3339 times but name no real time */
    const char *time_rule = "must be an RFC 3339 time that exists, with Z or an offset up to 15:59"
                            " (such as 2026-11-23T14:05:09Z)";
    struct {
        const char *query, *parameter, *detail;
    } bad_filter[] = {
        {"since=yesterday", "since", time_rule},
        {"until=2026-11-23", "until", time_rule},
        {"serial_number=%20X", "serial_number",
         "must be 1 to 64 characters of text without control characters and without "
         "a leading or trailing space"},
        {"owner_id=ACME", "owner_id", "must be 1 to 64 of a-z 0-9 . _ -"},
        {"after=garbage", "after", "is not a cursor that this service issued"},
        {"since=2026-02-29T00:00:00Z", "since", time_rule},
        {"until=2026-11-23T24:00:00Z", "until", time_rule},
        {"since=2026-13-01T00:00:00%2B01:00", "since", time_rule},
    };
    for (size_t i = 0; i < sizeof(bad_filter) / sizeof(*bad_filter); i++) {
        struct snapshot s = snap();
        char *p = fmt("/api/v1/audit?%s", bad_filter[i].query);
        r = call("GET", p, tok, NULL);
        char *sentence = fmt("%s %s", bad_filter[i].parameter, bad_filter[i].detail);
        yajl_val e = jat(jarr(expect_problem(r, 422, sentence), "errors"), 0);
        expect_str(e, "parameter", bad_filter[i].parameter);
        expect_str(e, "detail", bad_filter[i].detail);
        free(sentence);
        http_result_free(&r);
        expect_refusal_recorded(s, "audit.read", "auditor");
        free(p);
    }
    r = call("GET", "/api/v1/audit?limit=1001", tok, NULL);
    expect_problem(r, 422, "limit must be an integer from 1 to 1000");
    http_result_free(&r);

    /* audit:read is required */
    struct snapshot s = snap();
    r = call("GET", "/api/v1/audit", blind, NULL);
    expect_problem(r, 403, "the token \"blind\" lacks the scope audit:read");
    http_result_free(&r);
    expect_refusal_recorded(s, "audit.read", "blind");
    r = call("GET", "/api/v1/audit", NULL, NULL);
    expect_problem(r, 401, "a bearer token is required (Authorization: Bearer <token>)");
    http_result_free(&r);
    /* each bad filter and the bad limit: one refusal each */
    cr_assert_str_eq(walk_audit(tok, "/api/v1/audit?action=audit.read", &pages),
                     "audit.read refused - - auditor\naudit.read refused - - auditor\n"
                     "audit.read refused - - auditor\naudit.read refused - - auditor\n"
                     "audit.read refused - - auditor\naudit.read refused - - auditor\n"
                     "audit.read refused - - auditor\naudit.read refused - - auditor\n"
                     "audit.read refused - - auditor\naudit.read refused - - blind\n");
}
