/*
 * Hostile input from outside testing (issue 10, items 7-10, 13, 19), black-box
 * against a real masad: client mistakes are answered 4xx with the exact
 * sentence and the place (a JSON pointer into the body, or a query
 * parameter), nothing is stored but the refusal's audit event, and bodies
 * and progress reports cost bounded memory and time.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

#include "harness.h"
#include "store/store_internal.h"

static struct masad_proc proc;

static void start(void)
{
    cr_assert(masad_start(&proc, NULL), "masad did not start: %s", read_text(proc.stderr_path));
}

static void stop(void) { masad_stop_expect_clean(&proc); }

static const char *const ALL_SCOPES =
    "devices:read,devices:write,owners:read,owners:write,ownership:write,audit:read";

/* ---- the database ---- */

static long count(const char *sql)
{
    char *v = owner_value(&proc, "%s", sql);
    long n = atol(v);
    free(v);
    return n;
}

/* What a refusal may change: the data (as a digest) and the audit log. */
struct before {
    char *data;
    long events;
};

static struct before before(void)
{
    return (struct before){
        owner_value(&proc, "SELECT md5(coalesce((SELECT string_agg(d::text, ',' ORDER BY serial_number)"
                           " FROM devices d), '') || coalesce((SELECT string_agg(w::text, ','"
                           " ORDER BY owner_id) FROM owners w), '') || coalesce((SELECT"
                           " string_agg(p::text, ',' ORDER BY id) FROM sztp_progress p), ''))"),
        count("SELECT count(*) FROM audit_events")};
}

/* Nothing changed but one refusal event of `action` by `actor`. */
static void expect_only_refusal(int line, struct before b, const char *action, const char *actor)
{
    struct before now = before();
    cr_assert_str_eq(now.data, b.data, "line %d: a refusal changed data", line);
    cr_assert_eq(now.events, b.events + 1, "line %d: %ld audit events, want %ld", line, now.events,
                 b.events + 1);
    char *last = owner_value(&proc, "SELECT outcome || ' ' || action || ' ' || actor FROM audit_events"
                                    " ORDER BY seq DESC LIMIT 1");
    char *want = fmt("refused %s %s", action, actor);
    cr_assert_str_eq(last, want, "line %d", line);
    free(last);
    free(want);
}
#define expect_only_refusal(b, action, actor) expect_only_refusal(__LINE__, (b), (action), (actor))

/* ---- HTTP ---- */

static struct http_result mgmt(const char *method, const char *path, const char *token,
                               const char *body, size_t len)
{
    struct http_opts o = {.management = true, .method = method, .bearer = token, .body = body,
                          .body_len = len, .content_type = body ? "application/json" : NULL};
    return http(&proc, path, &o);
}

static struct http_result get(const char *path, const char *token)
{
    return mgmt("GET", path, token, NULL, 0);
}

static struct http_result send_json(const char *method, const char *path, const char *token,
                                    const char *body)
{
    return mgmt(method, path, token, body, strlen(body));
}

static void expect_ok(int line, struct http_result r, long status)
{
    cr_assert_eq(r.status, status, "line %d: %ld %s", line, r.status, r.body);
    http_result_free(&r);
}
#define expect_ok(r, status) expect_ok(__LINE__, (r), (status))

static const char *member(yajl_val v, const char *name)
{
    const char *path[] = {name, NULL};
    yajl_val m = yajl_tree_get(v, path, yajl_t_any);
    return m && YAJL_IS_STRING(m) ? YAJL_GET_STRING(m) : NULL;
}

/* A problem (RFC 9457) with exactly this status and detail, and exactly one
 * error: {place_key: place, "detail": what}. */
static void expect_problem(int line, struct http_result r, long status, const char *detail,
                           const char *place_key, const char *place, const char *what)
{
    cr_assert_eq(r.status, status, "line %d: %ld %s", line, r.status, r.body);
    char *ct = http_header(&r, "content-type");
    cr_assert_str_eq(ct, "application/problem+json", "line %d", line);
    free(ct);
    char err[256];
    yajl_val v = yajl_tree_parse(r.body, err, sizeof(err));
    cr_assert(v, "line %d: not JSON: %s", line, r.body);
    cr_assert_str_eq(member(v, "detail"), detail, "line %d: %s", line, r.body);
    const char *path[] = {"errors", NULL};
    yajl_val errors = yajl_tree_get(v, path, yajl_t_array);
    if (!place_key)
        cr_assert_null(errors, "line %d: %s", line, r.body);
    else {
        cr_assert(errors && errors->u.array.len == 1, "line %d: %s", line, r.body);
        yajl_val e = errors->u.array.values[0];
        cr_assert_str_eq(member(e, place_key), place, "line %d: %s", line, r.body);
        cr_assert_str_eq(member(e, "detail"), what, "line %d: %s", line, r.body);
    }
    yajl_tree_free(v);
    http_result_free(&r);
}
#define expect_problem(r, status, detail, ...) \
    expect_problem(__LINE__, (r), (status), (detail), __VA_ARGS__)
#define NO_ERRORS NULL, NULL, NULL

/* ================================================================== */

#define UNICODE_SENTENCE "the body holds a string that is not valid Unicode"
#define UNPAIRED "holds an unpaired UTF-16 surrogate escape"

/* Item 7: PostgreSQL refused these strings (SQLSTATE 22021) with a 500, and
 * with a member name the refusal's audit event was lost; a lone high
 * surrogate was stored as '?'. */
Test(unicode, invalid_strings_in_bodies_are_422_with_a_pointer, .init = start, .fini = stop,
     .timeout = 120)
{
    char *tok = make_token(&proc, "writer", ALL_SCOPES);
    struct {
        const char *path, *body, *pointer, *detail;
    } bad[] = {
        {"/api/v1/devices/U-1", "{\"product\": \"a\\udfffb\"}", "/product", UNPAIRED},
        {"/api/v1/devices/U-1", "{\"product\": \"a\\ud800b\"}", "/product", UNPAIRED},
        {"/api/v1/devices/U-1", "{\"product\": \"a\\ud800\\u0041\"}", "/product", UNPAIRED},
        {"/api/v1/devices/U-1", "{\"product\": \"p\\u0000\"}", "/product",
         "holds \\u0000 (NUL), which cannot be stored"},
        {"/api/v1/devices/U-1", "{\"product\": \"\xff\"}", "/product", "is not valid UTF-8"},
        {"/api/v1/devices/U-1", "{\"product\": \"\xc0\x80\"}", "/product", "is not valid UTF-8"},
        {"/api/v1/devices/U-1", "{\"product\": \"\xed\xbf\xbf\"}", "/product", "is not valid UTF-8"},
        {"/api/v1/devices/U-1", "{\"product\": \"p\", \"x\\udfff\": 1}", "",
         "has a member name that " UNPAIRED},
        {"/api/v1/owners/acme", "{\"display_name\": \"\\udfff\"}", "/display_name", UNPAIRED},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        struct before b = before();
        expect_problem(send_json("PUT", bad[i].path, tok, bad[i].body), 422, UNICODE_SENTENCE,
                       "pointer", bad[i].pointer, bad[i].detail);
        expect_only_refusal(b, i + 1 < sizeof(bad) / sizeof(*bad) ? "device.put" : "owner.put",
                            "writer");
    }
    struct before b = before();
    expect_problem(send_json("POST", "/api/v1/devices:batch", tok,
                             "{\"devices\": [{\"serial_number\": \"U-2\", \"product\": \"ok\"},"
                             " {\"serial_number\": \"U-3\", \"product\": \"\\udfff\"}]}"),
                   422, UNICODE_SENTENCE, "pointer", "/devices/1/product", UNPAIRED);
    expect_only_refusal(b, "device.batch", "writer");
    /* paired surrogates are fine */
    expect_ok(send_json("PUT", "/api/v1/devices/U-1", tok, "{\"product\": \"\\ud83d\\ude00\"}"), 201);
    cr_assert_str_eq(owner_value(&proc, "SELECT product FROM devices WHERE serial_number = 'U-1'"),
                     "\xf0\x9f\x98\x80");
}

/* ---- the SZTP device side ---- */

#define PROGRESS "/restconf/operations/ietf-sztp-bootstrap-server:report-progress"

static struct http_result report(const char *authorization, const char *type)
{
    char *body = fmt("{\"ietf-sztp-bootstrap-server:input\": {\"progress-type\": \"%s\"}}", type);
    char *header = fmt("Authorization: %s", authorization);
    struct http_opts o = {.method = "POST", .body = body, .body_len = strlen(body),
                          .content_type = "application/yang-data+json", .extra_header = header};
    struct http_result r = http(&proc, PROGRESS, &o);
    free(body);
    free(header);
    return r;
}

static char *basic(const char *user_and_password, size_t len)
{
    char *out = calloc(1, 4 * (len / 3 + 1) + 8);
    strcpy(out, "Basic ");
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)user_and_password, (int)len);
    return out;
}

static char *put_sztp_device(const char *tok, const char *serial, const char *password)
{
    char *path = fmt("/api/v1/devices/%s", serial);
    char *body = fmt("{\"product\": \"p\", \"sztp_password\": \"%s\"}", password);
    expect_ok(send_json("PUT", path, tok, body), 201);
    free(path);
    free(body);
    char *pair = fmt("%s:%s", serial, password);
    char *b = basic(pair, strlen(pair));
    free(pair);
    return b;
}

/* Item 8: the user name went to PostgreSQL, which refused it (22021), and the
 * answer was 503 "database unavailable", unaudited: a false outage alarm. */
Test(sztp, a_basic_user_name_that_is_not_utf8_is_401, .init = start, .fini = stop, .timeout = 120)
{
    char *tok = make_token(&proc, "factory", ALL_SCOPES);
    char *good = put_sztp_device(tok, "S-1", "0123456789abcdef-secret");
    const char *const message = "the device could not be authenticated: present an IDevID client "
                                "certificate or HTTP Basic credentials (serial number and password)";
    struct {
        const char *pair;
        size_t len;
    } bad[] = {
        {"\xff\xfe:0123456789abcdef-secret", 26},
        {"S-1\xc0\x80:0123456789abcdef-secret", 28},
        {"S-1\xed\xa0\x80:0123456789abcdef-secret", 29},
        {"SSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSSS:0123456789abcdef-secret", 89},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        cr_assert_eq(memchr(bad[i].pair, ':', bad[i].len) != NULL, true);
        struct before b = before();
        char *auth = basic(bad[i].pair, bad[i].len);
        struct http_result r = report(auth, "bootstrap-initiated");
        cr_assert_eq(r.status, 401, "case %zu: %ld %s", i, r.status, r.body);
        char *want = fmt("{\"ietf-restconf:errors\":{\"error\":[{\"error-type\":\"protocol\","
                         "\"error-tag\":\"access-denied\",\"error-message\":\"%s\"}]}}", message);
        cr_assert_str_eq(r.body, want, "case %zu", i);
        char *www = http_header(&r, "www-authenticate");
        cr_assert(www && !strcasecmp(www, "Basic realm=\"masad\""), "%s", www);
        free(www);
        free(want);
        http_result_free(&r);
        free(auth);
        expect_only_refusal(b, "sztp.refuse", "device:unauthenticated");
    }
    expect_ok(report(good, "bootstrap-initiated"), 204);
}

/* ---- listings ---- */

static char *cursor_of(const char *plain, size_t len)
{
    char *b64 = calloc(1, 4 * (len / 3 + 1) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)plain, (int)len);
    for (char *p = b64; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p == '=' ? 0 : *p;
    return b64;
}

#define NOT_A_CURSOR "is not a cursor that this service issued"

struct bad_query {
    const char *path, *action, *parameter, *detail;
};

/* Each path is refused with 422 "<parameter> <detail>" and one error naming
 * the parameter; only the refusal, by "reader", is recorded. */
static void expect_parameter_refusals(const char *tok, const struct bad_query *bad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct before b = before();
        char *sentence = fmt("%s %s", bad[i].parameter, bad[i].detail);
        expect_problem(get(bad[i].path, tok), 422, sentence, "parameter", bad[i].parameter,
                       bad[i].detail);
        expect_only_refusal(b, bad[i].action, "reader");
        free(sentence);
    }
}

/* Item 9: forged cursors and filters with bytes PostgreSQL refuses were 500s. */
Test(listings, forged_cursors_and_invalid_filters_are_422, .init = start, .fini = stop,
     .timeout = 120)
{
    char *tok = make_token(&proc, "reader", ALL_SCOPES);
    expect_ok(send_json("PUT", "/api/v1/devices/L-1", tok, "{\"product\": \"p\"}"), 201);
    expect_ok(send_json("PUT", "/api/v1/owners/acme", tok, "{\"display_name\": \"Acme\"}"), 201);
    char *forged = cursor_of("c1:\xff\xfe", 5), *overlong = cursor_of("c1:\xc0\x80", 5);
    char *not_a_number = cursor_of("c1:12x", 6), *not_a_serial = cursor_of("c1: L", 5);
    struct bad_query bad[] = {
        {fmt("/api/v1/devices?after=%s", forged), "device.list", "after", NOT_A_CURSOR},
        {fmt("/api/v1/devices?after=%s", overlong), "device.list", "after", NOT_A_CURSOR},
        {fmt("/api/v1/devices?after=%s", not_a_serial), "device.list", "after", NOT_A_CURSOR},
        {fmt("/api/v1/owners?after=%s", forged), "owner.list", "after", NOT_A_CURSOR},
        {fmt("/api/v1/owners?after=%s", not_a_serial), "owner.list", "after", NOT_A_CURSOR},
        {fmt("/api/v1/audit?after=%s", not_a_number), "audit.read", "after", NOT_A_CURSOR},
        {fmt("/api/v1/audit/checkpoints?after=%s", forged), "audit.read", "after", NOT_A_CURSOR},
        {fmt("/api/v1/devices/L-1/vouchers?after=%s", forged), "device.read", "after", NOT_A_CURSOR},
        {fmt("/api/v1/devices/L-1/progress?after=%s", forged), "device.read", "after", NOT_A_CURSOR},
        {"/api/v1/audit?action=%C0%80", "audit.read", "action", "is not valid UTF-8"},
        {"/api/v1/audit?action=%ED%BF%BF", "audit.read", "action", "is not valid UTF-8"},
        {"/api/v1/audit?serial_number=%FF", "audit.read", "serial_number", "is not valid UTF-8"},
        {"/api/v1/devices?owner_id=%C3%A9", "device.list", "owner_id", "must be 1 to 64 of a-z 0-9 . _ -"},
    };
    expect_parameter_refusals(tok, bad, sizeof(bad) / sizeof(*bad));
}

/* Item 10: a bad escape dropped the filter (every device was listed), and
 * unknown or repeated parameters were ignored. */
Test(listings, query_mistakes_are_422_naming_the_parameter, .init = start, .fini = stop,
     .timeout = 120)
{
    char *tok = make_token(&proc, "reader", ALL_SCOPES);
    expect_ok(send_json("PUT", "/api/v1/owners/acme", tok, "{\"display_name\": \"Acme\"}"), 201);
    expect_ok(send_json("PUT", "/api/v1/devices/Q-1", tok, "{\"product\": \"p\"}"), 201);
    expect_ok(send_json("PUT", "/api/v1/devices/Q-2", tok, "{\"product\": \"p\"}"), 201);
    expect_ok(send_json("PUT", "/api/v1/devices/Q-1/ownership", tok, "{\"owner_id\": \"acme\"}"), 201);

    struct bad_query bad[] = {
        {"/api/v1/devices?owner_id=%zz", "device.list", "owner_id",
         "is not percent-encoded correctly (RFC 3986 §2.1; %00 is refused)"},
        {"/api/v1/devices?owner_id=acme%", "device.list", "owner_id",
         "is not percent-encoded correctly (RFC 3986 §2.1; %00 is refused)"},
        {"/api/v1/devices?owner_id=ac%00me", "device.list", "owner_id",
         "is not percent-encoded correctly (RFC 3986 §2.1; %00 is refused)"},
        {"/api/v1/devices?ownerid=acme", "device.list", "ownerid", "is not a parameter of this request"},
        {"/api/v1/devices?owner_id=acme&owner_id=beta", "device.list", "owner_id",
         "is given more than once"},
        {"/api/v1/devices?limit=5&limit=5", "device.list", "limit", "is given more than once"},
        {"/api/v1/devices?%FF%FE=1", "device.list", "%FF%FE", "is not a parameter of this request"},
        {"/api/v1/devices?=1", "device.list", "(unnamed)", "is not a parameter of this request"},
        {"/api/v1/audit?serial_numbr=Q-1", "audit.read", "serial_numbr",
         "is not a parameter of this request"},
        {"/api/v1/audit?action=", "audit.read", "action", "must be 1 to 64 characters"},
        {"/api/v1/owners?owner_id=acme", "owner.list", "owner_id", "is not a parameter of this request"},
        {"/api/v1/audit/checkpoints?since=2026-01-01T00:00:00Z", "audit.read", "since",
         "is not a parameter of this request"},
        {"/api/v1/devices/Q-1/vouchers?bogus", "device.read", "bogus", "is not a parameter of this request"},
        {"/api/v1/devices/Q-1/progress?limit=1&x=1", "device.read", "x", "is not a parameter of this request"},
        {"/api/v1/devices/Q-1/ownership?limit=1", "ownership.get", "limit",
         "is not a parameter of this request"},
    };
    expect_parameter_refusals(tok, bad, sizeof(bad) / sizeof(*bad));

    /* every mistake is named, each in its own error */
    struct before b = before();
    struct http_result r = get("/api/v1/audit?serial_numbr=Q-1&limit=0&after=x&owner_id=%zz", tok);
    cr_assert_eq(r.status, 422, "%ld %s", r.status, r.body);
    yajl_val v = yajl_tree_parse(r.body, NULL, 0);
    cr_assert_str_eq(member(v, "detail"), "4 query parameters are invalid");
    const char *path[] = {"errors", NULL};
    yajl_val errors = yajl_tree_get(v, path, yajl_t_array);
    cr_assert(errors && errors->u.array.len == 4, "%s", r.body);
    const char *want[][2] = {{"serial_numbr", "is not a parameter of this request"},
                             {"owner_id", "is not percent-encoded correctly (RFC 3986 §2.1; %00 is refused)"},
                             {"limit", "must be an integer from 1 to 1000"},
                             {"after", NOT_A_CURSOR}};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(member(errors->u.array.values[i], "parameter"), want[i][0], "%s", r.body);
        cr_assert_str_eq(member(errors->u.array.values[i], "detail"), want[i][1], "%s", r.body);
        cr_assert_null(member(errors->u.array.values[i], "pointer"), "%s", r.body);
    }
    yajl_tree_free(v);
    http_result_free(&r);
    expect_only_refusal(b, "audit.read", "reader");
    cr_assert_str_eq(owner_value(&proc, "SELECT detail::json->>'parameter' FROM audit_events"
                                        " ORDER BY seq DESC LIMIT 1"), "serial_numbr");

    /* the well-formed filter still filters, and an empty segment is no parameter */
    r = get("/api/v1/devices?owner_id=ac%6De&&limit=10", tok);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"Q-1\"") && !strstr(r.body, "\"Q-2\""), "%s", r.body);
    http_result_free(&r);
}

/* ---- bounded memory for batches (item 13) ---- */

/* A field of /proc/PID/status in kB. */
static long proc_status_kb(pid_t pid, const char *field)
{
    char *path = fmt("/proc/%d/status", (int)pid), *text = read_text(path);
    cr_assert(text, "%s", path);
    char *at = strstr(text, field);
    cr_assert(at, "%s has no %s", path, field);
    long kb = atol(at + strlen(field) + 1);
    free(text);
    free(path);
    return kb;
}

/* Starts a new peak (VmHWM) at the current RSS (proc(5), clear_refs 5). */
static void reset_peak(pid_t pid)
{
    char *path = fmt("/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs("5", f);
    cr_assert_eq(fclose(f), 0);
    free(path);
}

/* A batch body of exactly `size` bytes: {"devices": [item,item,…]} padded with spaces. */
static char *batch_of(const char *item, size_t size)
{
    char *body = malloc(size + 1);
    size_t n = (size_t)sprintf(body, "{\"devices\": [%s", item), k = strlen(item);
    while (n + 1 + k + 2 < size) {
        body[n++] = ',';
        memcpy(body + n, item, k);
        n += k;
    }
    body[n++] = ']';
    body[n++] = '}';
    memset(body + n, ' ', size - n);
    body[size] = 0;
    return body;
}

/* prefix 0,0,…,0 suffix, padded with spaces to exactly size bytes */
static char *zeros_between(const char *prefix, const char *suffix, size_t size)
{
    char *body = malloc(size + 1);
    size_t n = strlen(prefix), k = strlen(suffix);
    memcpy(body, prefix, n);
    while (n + 2 + 1 + k < size) {
        memcpy(body + n, "0,", 2);
        n += 2;
    }
    body[n++] = '0';
    memcpy(body + n, suffix, k);
    n += k;
    memset(body + n, ' ', size - n);
    body[size] = 0;
    return body;
}

/* The growth of masad's peak RSS while it answers body, in bytes. */
static long peak_growth(const char *tok, const char *body, size_t size, long status,
                        const char *detail, const char *pointer, const char *what)
{
    reset_peak(proc.pid);
    long rss = proc_status_kb(proc.pid, "VmRSS:");
    expect_problem(mgmt("POST", "/api/v1/devices:batch", tok, body, size), status, detail,
                   "pointer", pointer, what);
    return (proc_status_kb(proc.pid, "VmHWM:") - rss) * 1024;
}

/*
 * The tree of [0,0,…] cost ~45 bytes of memory per byte of body (715 MB for
 * 16 MiB). Bound: the peak grows by less than 4× the body. The body itself
 * is held twice (h2o's buffer and the job's copy), which under
 * AddressSanitizer (the test build) costs a little more, with its redzones
 * and quarantine, but far below the bound; the tree of what is refused costs
 * almost nothing. Whether memory is given back afterwards (malloc_trim) can
 * not be seen under AddressSanitizer, whose allocator keeps freed memory in
 * quarantine; only the peak is asserted.
 */
static void start_without_quarantine(void)
{
    const char *asan = getenv("ASAN_OPTIONS");
    char *options = fmt("%s%squarantine_size_mb=0:thread_local_quarantine_size_kb=0", asan ? asan : "",
                        asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", options, 1);
    free(options);
    start();
}

Test(batch, hostile_batches_cost_bounded_memory, .init = start_without_quarantine, .fini = stop,
     .timeout = 300)
{
    char *tok = make_token(&proc, "factory", "devices:write");
    size_t size = 16 * 1024 * 1024; /* the batch limit */
    struct {
        const char *item;
        const char *detail, *pointer, *what;
    } shapes[] = {
        {"0", "the batch is invalid: nothing was stored", "/devices/0", "must be an object"},
        {"[0,0,0,0,0,0,0,0]", "the batch is invalid: nothing was stored", "/devices/0",
         "must be an object"},
        {"{}", "the batch is invalid", "/devices", "must be an array of 1 to 10000 devices"},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(*shapes); i++) {
        char *body = batch_of(shapes[i].item, size);
        struct before b = before();
        long growth = peak_growth(tok, body, size, 422, shapes[i].detail, shapes[i].pointer,
                                  shapes[i].what);
        cr_assert_lt(growth, 4 * (long)size, "%s: the peak RSS grew by %ld MiB for a %zu MiB body",
                     shapes[i].item, growth >> 20, size >> 20);
        expect_only_refusal(b, "device.batch", "factory");
        free(body);
    }
    /* one array item holding 16 MiB: its content is not kept, and it is named */
    char *body = zeros_between("{\"devices\": [[", "]]}", size);
    long growth = peak_growth(tok, body, size, 422, "the batch is invalid: nothing was stored",
                              "/devices/0", "must be an object");
    cr_assert_lt(growth, 4 * (long)size, "the peak RSS grew by %ld MiB", growth >> 20);
    free(body);
    /* a value elsewhere holding 16 MiB: bounded by the count of values */
    body = zeros_between("{\"x\": [", "]}", size);
    reset_peak(proc.pid);
    long rss = proc_status_kb(proc.pid, "VmRSS:");
    expect_problem(mgmt("POST", "/api/v1/devices:batch", tok, body, size), 400,
                   "malformed JSON: more than 100000 values", NO_ERRORS);
    growth = (proc_status_kb(proc.pid, "VmHWM:") - rss) * 1024;
    cr_assert_lt(growth, 4 * (long)size, "the peak RSS grew by %ld MiB", growth >> 20);
    free(body);
}

/* ---- SZTP progress (item 19) ---- */

/* The plan of a statement of the service, as it would run with these parameters. */
static char *plan_of(const char *statement, const char *args)
{
    const struct store_statement *s = store_statement_find(statement);
    cr_assert(s, "no statement %s", statement);
    PGconn *c = PQconnectdb(proc.db.owner_url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQprepare(c, "s", s->sql, 0, NULL);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
    char *sql = fmt("EXPLAIN EXECUTE s(%s)", args);
    r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    char *plan = strdup("");
    for (int i = 0; i < PQntuples(r); i++) {
        char *more = fmt("%s%s\n", plan, PQgetvalue(r, i, 0));
        free(plan);
        plan = more;
    }
    PQclear(r);
    PQfinish(c);
    free(sql);
    return plan;
}

static yajl_val device_json(const char *tok, const char *serial)
{
    char *path = fmt("/api/v1/devices/%s", serial);
    struct http_result r = get(path, tok);
    cr_assert_eq(r.status, 200, "%s", r.body);
    yajl_val v = yajl_tree_parse(r.body, NULL, 0);
    cr_assert(v, "%s", r.body);
    http_result_free(&r);
    free(path);
    return v;
}

Test(progress, reports_are_bounded_and_the_newest_is_found_by_index, .init = start, .fini = stop,
     .timeout = 180)
{
    char *tok = make_token(&proc, "factory", ALL_SCOPES);
    char *auth = put_sztp_device(tok, "R-1", "0123456789abcdef-secret");
    /* many devices without reports, one with 61,000 (what outside testing sent) */
    cr_assert_eq(db_exec(proc.db.owner_url,
                         "INSERT INTO devices (serial_number, product)"
                         " SELECT 'R-' || (g + 1), 'p' FROM generate_series(1, 300) g;"
                         "INSERT INTO sztp_progress (serial_number, at, progress_type, message)"
                         " SELECT 'R-1', '2026-11-01T00:00:00Z'::timestamptz + g * interval '1 s',"
                         " 'bootstrap-initiated', 'old ' || g FROM generate_series(1, 61000) g;"
                         "ANALYZE devices; ANALYZE sztp_progress",
                         NULL), 0);

    /* the newest report of each device is found through its index, not by
     * walking every report (EXPLAIN of the service's own statement) */
    char *plan = plan_of("device_list", "'', NULL, 101");
    cr_assert(strstr(plan, "sztp_progress_latest"), "%s", plan);
    cr_assert_null(strstr(plan, "sztp_progress_pkey"), "%s", plan);
    cr_assert_null(strstr(plan, "Seq Scan on sztp_progress"), "%s", plan);
    plan = plan_of("device_get", "'R-2'");
    cr_assert(strstr(plan, "sztp_progress_latest"), "%s", plan);
    plan = plan_of("progress_list", "'R-2', NULL, 101");
    cr_assert_null(strstr(plan, "sztp_progress_pkey"), "%s", plan);
    /* pruning reads the device's newest reports the same way */
    plan = plan_of("sztp_progress_add", "'R-2', 'bootstrap-initiated', NULL, NULL, NULL, 1000");
    cr_assert(strstr(plan, "sztp_progress_latest"), "%s", plan);
    cr_assert_null(strstr(plan, "sztp_progress_pkey"), "%s", plan);
    cr_assert_null(strstr(plan, "Seq Scan on sztp_progress"), "%s", plan);

    yajl_val v = device_json(tok, "R-1");
    const char *at[] = {"last_progress", "at", NULL}, *msg[] = {"last_progress", "message", NULL};
    const char *pruned[] = {"progress_pruned", NULL};
    cr_assert_str_eq(YAJL_GET_STRING(yajl_tree_get(v, at, yajl_t_string)), "2026-11-01T16:56:40Z");
    cr_assert_str_eq(YAJL_GET_STRING(yajl_tree_get(v, msg, yajl_t_string)), "old 61000");
    cr_assert_eq(YAJL_GET_INTEGER(yajl_tree_get(v, pruned, yajl_t_number)), 0);
    yajl_tree_free(v);

    /* a new report prunes all but the newest 1,000, and counts them */
    expect_ok(report(auth, "bootstrap-complete"), 204);
    cr_assert_eq(count("SELECT count(*) FROM sztp_progress WHERE serial_number = 'R-1'"), 1000);
    cr_assert_eq(count("SELECT min(substr(message, 5)::integer) FROM sztp_progress"
                       " WHERE serial_number = 'R-1' AND message LIKE 'old %'"), 61000 - 998);
    v = device_json(tok, "R-1");
    const char *type[] = {"last_progress", "progress_type", NULL};
    cr_assert_str_eq(YAJL_GET_STRING(yajl_tree_get(v, type, yajl_t_string)), "bootstrap-complete");
    cr_assert_eq(YAJL_GET_INTEGER(yajl_tree_get(v, pruned, yajl_t_number)), 60001);
    yajl_tree_free(v);
    expect_ok(report(auth, "bootstrap-initiated"), 204);
    cr_assert_eq(count("SELECT count(*) FROM sztp_progress WHERE serial_number = 'R-1'"), 1000);
    cr_assert_eq(count("SELECT sztp_progress_pruned FROM devices WHERE serial_number = 'R-1'"), 60002);

    /* the listing: R-1's newest report, none for the others */
    struct http_result r = get("/api/v1/devices?limit=3", tok);
    cr_assert_eq(r.status, 200, "%s", r.body);
    v = yajl_tree_parse(r.body, NULL, 0);
    const char *list[] = {"devices", NULL};
    yajl_val devices = yajl_tree_get(v, list, yajl_t_array);
    cr_assert(devices && devices->u.array.len == 3, "%s", r.body);
    const char *serial[] = {"serial_number", NULL}, *last[] = {"last_progress", NULL};
    yajl_val first = devices->u.array.values[0], second = devices->u.array.values[1];
    cr_assert_str_eq(YAJL_GET_STRING(yajl_tree_get(first, serial, yajl_t_string)), "R-1");
    cr_assert_str_eq(YAJL_GET_STRING(yajl_tree_get(first, type, yajl_t_string)), "bootstrap-initiated");
    cr_assert(YAJL_IS_NULL(yajl_tree_get(second, last, yajl_t_any)), "%s", r.body);
    cr_assert_eq(YAJL_GET_INTEGER(yajl_tree_get(second, pruned, yajl_t_number)), 0);
    yajl_tree_free(v);
    http_result_free(&r);
}
