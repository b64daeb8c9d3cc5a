/*
 * HTTP conventions and observability, black-box (issue 13 items 6-8,
 * issue 10 items 16-17): ETag and If-Match, HEAD, gzip, X-Request-Id and
 * traceparent, batch answers, Retry-After, the served OpenAPI document,
 * metrics and log lines.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static struct http_result call_with(const char *method, const char *path, const char *token,
                                    const char *body, const char *header)
{
    struct http_opts o = {.management = true, .method = method, .bearer = token,
                          .body = body, .body_len = body ? strlen(body) : 0,
                          .content_type = "application/json", .extra_header = header};
    return http(&proc, path, &o);
}

static struct http_result call(const char *method, const char *path, const char *token,
                               const char *body)
{
    return call_with(method, path, token, body, NULL);
}

static void expect(struct http_result *r, long status, const char *body)
{
    cr_assert_eq(r->status, status, "%ld %s (%s)", r->status, r->body, r->error);
    if (body)
        cr_assert_str_eq(r->body, body);
}

static long count_of(const char *sql)
{
    char *v = owner_value(&proc, "%s", sql);
    long n = atol(v);
    free(v);
    return n;
}

/* ---- metrics (issue 10 items 16, 17) ---- */

/* Every sample line's series (name and labels) is distinct. */
static void expect_unique_series(const char *text)
{
    char *copy = strdup(text), *save = NULL;
    char **seen = calloc(10000, sizeof(char *));
    size_t n = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *space = strrchr(line, ' ');
        cr_assert(space, "not a sample: %s", line);
        *space = 0;
        for (size_t i = 0; i < n; i++)
            cr_assert_str_neq(seen[i], line, "duplicate series %s", line);
        cr_assert_lt(n, 10000);
        seen[n++] = line;
    }
    cr_assert_gt(n, 10);
    free(seen);
    free(copy);
}

Test(metrics, series_are_unique_and_carry_the_method, .init = start, .fini = stop, .timeout = 60)
{
    char *tok = make_token(&proc, "rw", "devices:read,devices:write");
    const char *device = "{\"product\": \"p\"}";
    struct http_result r = call("PUT", "/api/v1/devices/M-1", tok, device);
    expect(&r, 201, NULL);
    r = call("PUT", "/api/v1/devices/M-1", tok, device);
    expect(&r, 200, NULL);
    r = call("GET", "/api/v1/devices/M-1", tok, NULL);
    expect(&r, 200, NULL);
    struct http_opts mgmt = {.management = true};
    r = http(&proc, "/nowhere", &mgmt);
    expect(&r, 404, NULL);
    r = http(&proc, "/metrics", &mgmt);
    expect(&r, 200, NULL);
    expect_unique_series(r.body);
    const char *want[] = {
        "masad_http_requests_total{route=\"/api/v1/devices/{serial_number}\",method=\"PUT\",status=\"201\"} 1\n",
        "masad_http_requests_total{route=\"/api/v1/devices/{serial_number}\",method=\"PUT\",status=\"200\"} 1\n",
        "masad_http_requests_total{route=\"/api/v1/devices/{serial_number}\",method=\"GET\",status=\"200\"} 1\n",
        "masad_http_requests_total{route=\"unmatched\",method=\"\",status=\"404\"} 1\n",
        "masad_http_request_duration_seconds_count{route=\"/api/v1/devices/{serial_number}\",method=\"PUT\"} 2\n",
        "masad_build_info{version=\"",
        "masad_job_thread_busy{thread=\"0\"} ",
        "masad_db_connection_up{thread=\"1\"} 1\n",
        "masad_db_pool_connections{state=\"down\"} 0\n",
        "masad_signer_duration_seconds_bucket{le=\"+Inf\"} ",
        "masad_sztp_answers_total{kind=\"redirect\",signed=\"false\"} 0\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
        cr_assert(strstr(r.body, want[i]), "no %s in %s", want[i], r.body);
}

Test(metrics, served_on_the_management_listener_only_by_default, .init = start, .fini = stop,
     .timeout = 60)
{
    struct http_result r = http(&proc, "/metrics", NULL);
    expect(&r, 404, "no such resource\n");
    struct http_opts mgmt = {.management = true};
    r = http(&proc, "/metrics", &mgmt);
    expect(&r, 200, NULL);
    cr_assert(strstr(r.body, "# TYPE masad_http_requests_total counter\n"));
}

Test(metrics, the_device_listener_serves_them_when_configured, .timeout = 60)
{
    struct masad_opts o = {.device_extra = "\"metrics\": true"};
    cr_assert(masad_start(&proc, &o), "%s", read_text(proc.stderr_path));
    struct http_result r = http(&proc, "/metrics", NULL);
    expect(&r, 200, NULL);
    cr_assert(strstr(r.body, "# TYPE masad_http_requests_total counter\n"));
    stop();
}

Test(metrics, outcomes_and_checkpoint_age, .timeout = 90)
{
    struct masad_opts o = {.extra_config = "\"masad-config:audit\": {\"checkpoint-events\": 1}"};
    cr_assert(masad_start(&proc, &o), "%s", read_text(proc.stderr_path));
    /* an SZTP device unknown to the service: an error answer */
    struct http_opts sztp = {.method = "POST", .basic_auth = "NO-SUCH-DEVICE:0123456789abcdef",
                             .body = "{\"ietf-sztp-bootstrap-server:input\": {}}",
                             .content_type = "application/yang-data+json"};
    sztp.body_len = strlen(sztp.body);
    struct http_result r =
        http(&proc, "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data", &sztp);
    expect(&r, 401, NULL);
    /* a voucher-request that is no CMS: refused with 400 */
    struct http_opts brski = {.body = "not cms", .body_len = 7,
                              .content_type = "application/voucher-cms+json",
                              .extra_header = "Accept: application/voucher-cms+json"};
    r = http(&proc, "/.well-known/brski/requestvoucher", &brski);
    expect(&r, 400, NULL);
    /* an audited change, then a checkpoint (every event) */
    char *tok = make_token(&proc, "rw", "devices:write");
    r = call("PUT", "/api/v1/devices/CP-1", tok, "{\"product\": \"p\"}");
    expect(&r, 201, NULL);
    struct http_opts mgmt = {.management = true};
    bool aged = false;
    for (int i = 0; i < 100 && !aged; i++, sleep_ms(100)) {
        r = http(&proc, "/metrics", &mgmt);
        aged = strstr(r.body, "\nmasad_audit_checkpoint_age_seconds ") != NULL;
    }
    cr_assert(aged, "no checkpoint age: %s", r.body);
    cr_assert(strstr(r.body, "masad_sztp_answers_total{kind=\"error\",signed=\"false\"} 1\n"), "%s", r.body);
    cr_assert(strstr(r.body, "masad_vouchers_total{protocol=\"brski\",outcome=\"refused\",status=\"400\"} 1\n"),
              "%s", r.body);
    cr_assert(strstr(r.body, "masad_signer_duration_seconds_count "), "%s", r.body);
    cr_assert_null(strstr(r.body, "masad_signer_duration_seconds_count 0\n"), "%s", r.body);
    stop();
}

/* ---- request ids and traces ---- */

static char *access_line(const char *request_id)
{
    char *log = read_text(proc.stdout_path);
    char *needle = fmt("\"request_id\":\"%s\"", request_id), *line = strstr(log, needle);
    cr_assert(line, "no access line for %s in %s", request_id, log);
    while (line > log && line[-1] != '\n')
        line--;
    return strndup(line, strcspn(line, "\n"));
}

static char *request_id_for(const char *header)
{
    struct http_opts o = {.extra_header = header};
    struct http_result r = http(&proc, "/healthz", &o);
    expect(&r, 200, "ok\n");
    return http_header(&r, "x-request-id");
}

Test(requests, x_request_id_is_honoured_when_well_formed, .init = start, .fini = stop, .timeout = 60)
{
    char *id = request_id_for("X-Request-Id: Abc.123_x:y-Z");
    cr_assert_str_eq(id, "abc.123_x:y-z"); /* the harness lower-cases header values */
    cr_assert(strstr(access_line("Abc.123_x:y-Z"), "\"path\":\"/healthz\""));
    char long_id[160] = "X-Request-Id: ";
    memset(long_id + strlen(long_id), 'a', 128);
    cr_assert_eq(strlen(request_id_for(long_id)), 128);
    const char *bad[] = {"X-Request-Id: has space", "X-Request-Id: semi;colon",
                         "X-Request-Id: \"quoted\"", "X-Request-Id: caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char *own = request_id_for(bad[i]);
        cr_assert_eq(strlen(own), 20, "%s: %s", bad[i], own);
    }
    memset(long_id + strlen("X-Request-Id: ") + 128, 'a', 1); /* 129 characters */
    long_id[strlen("X-Request-Id: ") + 129] = 0;
    cr_assert_eq(strlen(request_id_for(long_id)), 20);
}

Test(requests, traceparent_trace_id_is_logged_when_valid, .init = start, .fini = stop, .timeout = 60)
{
    const char *trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    char *header = fmt("traceparent: 00-%s-00f067aa0ba902b7-01", trace);
    struct http_opts o = {.extra_header = header, .extra_header2 = "X-Request-Id: traced-1"};
    struct http_result r = http(&proc, "/healthz", &o);
    expect(&r, 200, NULL);
    cr_assert(strstr(access_line("traced-1"), fmt("\"trace_id\":\"%s\"", trace)));
    /* a later version may append fields */
    o.extra_header = fmt("traceparent: 01-%s-00f067aa0ba902b7-01-future", trace);
    o.extra_header2 = "X-Request-Id: traced-2";
    r = http(&proc, "/healthz", &o);
    cr_assert(strstr(access_line("traced-2"), "\"trace_id\":"));
    const char *invalid[] = {
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero trace */
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero parent */
        "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* upper case */
        "traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version ff */
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 is exact */
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  /* short */
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(*invalid); i++) {
        char *id = fmt("untraced-%zu", i);
        o.extra_header = invalid[i];
        o.extra_header2 = fmt("X-Request-Id: %s", id);
        r = http(&proc, "/healthz", &o);
        expect(&r, 200, NULL);
        char *line = access_line(id);
        cr_assert_null(strstr(line, "trace_id"), "%s: %s", invalid[i], line);
    }
}

Test(requests, diagnostics_carry_the_request_id, .timeout = 60)
{
    struct masad_opts o = {
        .device_extra = "\"client-certificate-headers\": {\"trusted-proxies\": [\"192.0.2.0/24\"]}"};
    cr_assert(masad_start(&proc, &o), "%s", read_text(proc.stderr_path));
    struct http_opts h = {.extra_header = "Client-Cert: :AAAA:", .extra_header2 = "X-Request-Id: diag-1"};
    struct http_result r = http(&proc, "/_test/identity", &h); /* logs on the event loop */
    expect(&r, 200, NULL);
    h = (struct http_opts){.extra_header = "X-Request-Id: diag-2",
                           .extra_header2 = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"};
    r = http(&proc, "/_test/log", &h); /* logs on a job thread */
    expect(&r, 200, "logged\n");
    stop();
    char *err = read_text(proc.stderr_path);
    char *line = strstr(err, "client certificate headers from 127.0.0.1 ignored");
    cr_assert(line, "%s", err);
    line = strndup(line, strcspn(line, "\n"));
    cr_assert(strstr(line, "ignored: not a trusted proxy\",\"request_id\":\"diag-1\"}"), "%s", line);
    cr_assert(strstr(err, "\"msg\":\"a diagnostic from a job thread\",\"request_id\":\"diag-2\","
                          "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}\n"), "%s", err);
    /* the lines of other work carry none */
    cr_assert(strstr(err, "\"msg\":\"stopped: every accepted request was answered\"}\n"), "%s", err);
}

/* ---- HEAD, gzip, OpenAPI ---- */

Test(http, head_wherever_get, .init = start, .fini = stop, .timeout = 60)
{
    for (int mgmt = 0; mgmt < 2; mgmt++)
        for (int h2 = 0; h2 < 2; h2++) {
            struct http_opts o = {.management = mgmt, .http2 = h2, .method = "HEAD"};
            struct http_result r = http(&proc, "/healthz", &o);
            expect(&r, 200, "");
            cr_assert_str_eq(http_header(&r, "content-length"), "3");
            cr_assert_str_eq(http_header(&r, "content-type"), "text/plain; charset=utf-8");
        }
    char *tok = make_token(&proc, "rw", "devices:read,devices:write");
    struct http_result put = call("PUT", "/api/v1/devices/H-1", tok, "{\"product\": \"p\"}");
    expect(&put, 201, NULL);
    const char *paths[] = {"/api/v1/devices/H-1", "/api/v1/devices", "/api/v1/openapi.json"};
    for (size_t i = 0; i < 3; i++) {
        struct http_result get = call("GET", paths[i], tok, NULL);
        struct http_result head = call("HEAD", paths[i], tok, NULL);
        expect(&get, 200, NULL);
        expect(&head, 200, "");
        const char *same[] = {"content-type", "content-length", "etag", "vary"};
        for (size_t h = 0; h < 4; h++) {
            char *g = http_header(&get, same[h]), *hd = http_header(&head, same[h]);
            cr_assert((!g && !hd) || (g && hd && !strcmp(g, hd)), "%s %s: %s vs %s", paths[i],
                      same[h], g, hd);
        }
    }
    /* 405 names HEAD beside GET */
    struct http_opts post = {.body = "x", .body_len = 1};
    struct http_result r = http(&proc, "/healthz", &post);
    expect(&r, 405, NULL);
    cr_assert_str_eq(http_header(&r, "allow"), "get, head");
}

static char *gunzip(const struct http_result *r)
{
    char *file = write_temp("listing.gz", r->body, r->body_len), *out;
    cr_assert_eq(sh(&out, "gzip -dc < %s", file), 0, "%s", out);
    return out;
}

Test(http, listings_are_gzipped_when_asked, .init = start, .fini = stop, .timeout = 60)
{
    char *tok = make_token(&proc, "rw", "devices:read,devices:write,audit:read");
    struct http_result r = call("POST", "/api/v1/devices:batch", tok,
                                "{\"devices\": [{\"serial_number\": \"G-1\", \"product\": \"p\"},"
                                " {\"serial_number\": \"G-2\", \"product\": \"p\"}]}");
    expect(&r, 200, NULL);
    const char *listings[] = {"/api/v1/devices", "/api/v1/audit"};
    for (size_t i = 0; i < 2; i++) {
        struct http_result plain = call("GET", listings[i], tok, NULL);
        expect(&plain, 200, NULL);
        cr_assert_str_eq(http_header(&plain, "vary"), "accept-encoding");
        cr_assert_null(http_header(&plain, "content-encoding"));
        struct http_result z = call_with("GET", listings[i], tok, NULL, "Accept-Encoding: br, gzip");
        expect(&z, 200, NULL);
        cr_assert_str_eq(http_header(&z, "content-encoding"), "gzip");
        cr_assert_str_eq(http_header(&z, "vary"), "accept-encoding");
        cr_assert_str_eq(gunzip(&z), plain.body);
        cr_assert_eq(atol(http_header(&z, "content-length")), (long)z.body_len);
        const char *refused[] = {"Accept-Encoding: gzip;q=0", "Accept-Encoding: gzip;q=0, *",
                                 "Accept-Encoding: identity", "Accept-Encoding: br"};
        for (size_t k = 0; k < 4; k++) {
            struct http_result n = call_with("GET", listings[i], tok, NULL, refused[k]);
            expect(&n, 200, plain.body);
            cr_assert_null(http_header(&n, "content-encoding"), "%s", refused[k]);
        }
        struct http_result star = call_with("GET", listings[i], tok, NULL, "Accept-Encoding: *");
        cr_assert_str_eq(http_header(&star, "content-encoding"), "gzip");
    }
    /* one resource is not a listing */
    r = call_with("GET", "/api/v1/devices/G-1", tok, NULL, "Accept-Encoding: gzip");
    expect(&r, 200, NULL);
    cr_assert_null(http_header(&r, "content-encoding"));
}

Test(http, the_openapi_document_is_served_without_a_token, .init = start, .fini = stop,
     .timeout = 60)
{
    struct http_opts mgmt = {.management = true};
    struct http_result r = http(&proc, "/api/v1/openapi.json", &mgmt);
    expect(&r, 200, NULL);
    cr_assert_str_eq(http_header(&r, "content-type"), "application/json");
    char *doc = read_text(fmt("%s/docs/openapi.json", env_or_die("MASAD_TEST_ROOT")));
    cr_assert_str_eq(r.body, doc);
    r = http(&proc, "/api/v1/openapi.json", NULL);
    expect(&r, 404, "no such resource\n");
}

/* ---- ETag and If-Match ---- */

static char *etag_of(struct http_result *r)
{
    char *etag = http_header(r, "etag");
    cr_assert(etag && strlen(etag) == 34 && etag[0] == '"' && etag[33] == '"', "etag %s", etag);
    return etag;
}

static char *if_match(const char *tag) { return fmt("If-Match: %s", tag); }

Test(conditional, device_etag_and_if_match, .init = start, .fini = stop, .timeout = 60)
{
    char *tok = make_token(&proc, "rw", "devices:read,devices:write,owners:write,ownership:write");
    /* If-Match: * creates nothing */
    struct http_result r = call_with("PUT", "/api/v1/devices/E-1", tok, "{\"product\": \"p\"}", "If-Match: *");
    expect(&r, 412, "{\"type\":\"about:blank\",\"title\":\"Precondition Failed\",\"status\":412,"
                    "\"detail\":\"If-Match: the resource does not exist, so no entity-tag matches "
                    "(RFC 9110 \xc2\xa7" "13.1.1); nothing was changed\"}");
    cr_assert_str_eq(http_header(&r, "content-type"), "application/problem+json");
    cr_assert_eq(count_of("SELECT count(*) FROM devices"), 0);

    r = call("PUT", "/api/v1/devices/E-1", tok, "{\"product\": \"p\"}");
    expect(&r, 201, NULL);
    char *created = etag_of(&r);
    r = call("GET", "/api/v1/devices/E-1", tok, NULL);
    expect(&r, 200, NULL);
    cr_assert_str_eq(etag_of(&r), created);

    /* a stale or weak tag: 412, nothing changed, the refusal audited */
    const char *stale[] = {"If-Match: \"0123456789abcdef0123456789abcdef\"",
                           fmt("If-Match: W/%s", created), "If-Match: garbage"};
    for (size_t i = 0; i < 3; i++) {
        long refusals = count_of("SELECT count(*) FROM audit_events WHERE outcome = 'refused'");
        r = call_with("PUT", "/api/v1/devices/E-1", tok, "{\"product\": \"q\"}", stale[i]);
        expect(&r, 412, fmt("{\"type\":\"about:blank\",\"title\":\"Precondition Failed\",\"status\":412,"
                            "\"detail\":\"If-Match: the resource has changed, its ETag is now "
                            "\\%.33s\\\" (RFC 9110 \xc2\xa7" "13.1.1); nothing was changed\"}", created));
        cr_assert_str_eq(owner_value(&proc, "SELECT product FROM devices"), "p");
        cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE outcome = 'refused'"), refusals + 1);
    }
    /* the current tag among others, and *: the change is made */
    r = call_with("PUT", "/api/v1/devices/E-1", tok, "{\"product\": \"q\"}",
                  fmt("If-Match: \"x\", %s", created));
    expect(&r, 200, NULL);
    char *changed = etag_of(&r);
    cr_assert_str_neq(changed, created);
    r = call_with("PUT", "/api/v1/devices/E-1", tok, "{\"product\": \"r\"}", "If-Match: *");
    expect(&r, 200, NULL);
    char *third = etag_of(&r);

    /* an ownership change shows in the device: its tag changes */
    r = call("PUT", "/api/v1/owners/acme", tok, "{\"display_name\": \"Acme\"}");
    expect(&r, 201, NULL);
    r = call("PUT", "/api/v1/devices/E-1/ownership", tok, "{\"owner_id\": \"acme\"}");
    expect(&r, 201, NULL);
    r = call("GET", "/api/v1/devices/E-1", tok, NULL);
    char *owned = etag_of(&r);
    cr_assert_str_neq(owned, third);
    r = call_with("PUT", "/api/v1/devices/E-1", tok, "{\"product\": \"s\"}", if_match(third));
    expect(&r, 412, NULL);
    r = call_with("PUT", "/api/v1/devices/E-1", tok, "{\"product\": \"s\"}", if_match(owned));
    expect(&r, 200, NULL);
}

Test(conditional, owner_etag_and_if_match, .init = start, .fini = stop, .timeout = 60)
{
    char *tok = make_token(&proc, "rw", "owners:read,owners:write");
    struct http_result r = call("PUT", "/api/v1/owners/acme", tok, "{\"display_name\": \"Acme\"}");
    expect(&r, 201, NULL);
    char *first = etag_of(&r);
    r = call("GET", "/api/v1/owners/acme", tok, NULL);
    cr_assert_str_eq(etag_of(&r), first);
    r = call_with("PUT", "/api/v1/owners/acme", tok, "{\"display_name\": \"Acme 2\"}",
                  "If-Match: \"00000000000000000000000000000000\"");
    expect(&r, 412, NULL);
    cr_assert_str_eq(owner_value(&proc, "SELECT display_name FROM owners"), "Acme");
    r = call_with("PUT", "/api/v1/owners/acme", tok, "{\"display_name\": \"Acme 2\"}", if_match(first));
    expect(&r, 200, NULL);
    char *second = etag_of(&r);
    cr_assert_str_neq(second, first);
    /* DELETE: a stale tag keeps the owner */
    r = call_with("DELETE", "/api/v1/owners/acme", tok, NULL, if_match(first));
    expect(&r, 412, NULL);
    cr_assert_str_eq(owner_value(&proc, "SELECT deleted_at IS NULL FROM owners"), "t");
    r = call_with("DELETE", "/api/v1/owners/acme", tok, NULL, if_match(second));
    expect(&r, 204, NULL);
    /* gone: the answer without the condition would be 404, so it stays 404 (RFC 9110 §13.2.1) */
    r = call_with("DELETE", "/api/v1/owners/acme", tok, NULL, "If-Match: *");
    expect(&r, 404, NULL);
    r = call_with("PUT", "/api/v1/owners/beta", tok, "{}", "If-Match: *");
    expect(&r, 412, NULL);
    cr_assert_eq(count_of("SELECT count(*) FROM owners WHERE owner_id = 'beta'"), 0);
}

/* ---- batches ---- */

Test(batches, unchanged_devices_are_reported_as_such, .init = start, .fini = stop, .timeout = 60)
{
    char *tok = make_token(&proc, "rw", "devices:write");
    const char *two = "{\"devices\": [{\"serial_number\": \"U-1\", \"product\": \"p\"},"
                      " {\"serial_number\": \"U-2\", \"product\": \"p\"}]}";
    struct http_result r = call("POST", "/api/v1/devices:batch", tok, two);
    expect(&r, 200, "{\"created\":2,\"updated\":0,\"unchanged\":0}");
    long events = count_of("SELECT count(*) FROM audit_events");
    r = call("POST", "/api/v1/devices:batch", tok, two);
    expect(&r, 200, "{\"created\":0,\"updated\":0,\"unchanged\":2}");
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events"), events);
    r = call("POST", "/api/v1/devices:batch", tok,
             "{\"devices\": [{\"serial_number\": \"U-1\", \"product\": \"q\"},"
             " {\"serial_number\": \"U-2\", \"product\": \"p\"}, {\"serial_number\": \"U-3\", \"product\": \"p\"}]}");
    expect(&r, 200, "{\"created\":1,\"updated\":1,\"unchanged\":1}");
    cr_assert_eq(count_of("SELECT count(*) FROM audit_events WHERE action = 'device.update'"), 1);
}

Test(batches, every_duplicate_is_named_in_the_first_answer, .init = start, .fini = stop,
     .timeout = 60)
{
    char *tok = make_token(&proc, "rw", "devices:write");
    struct http_result r = call(
        "POST", "/api/v1/devices:batch", tok,
        "{\"devices\": [{\"serial_number\": \"A\", \"product\": \"p\"}, {\"serial_number\": \"B\"},"
        " {\"serial_number\": \"A\", \"product\": \"p\"}, {\"serial_number\": \"A\", \"product\": \"p\"},"
        " {\"serial_number\": \"B\", \"product\": \"p\"}, {\"serial_number\": \"C\", \"product\": \"p\"}]}");
    expect(&r, 422, "{\"type\":\"about:blank\",\"title\":\"Unprocessable Content\",\"status\":422,"
                    "\"detail\":\"the batch is invalid: nothing was stored\",\"errors\":["
                    "{\"pointer\":\"/devices/2/serial_number\",\"detail\":\"appears twice in the batch (also at /devices/0)\"},"
                    "{\"pointer\":\"/devices/3/serial_number\",\"detail\":\"appears twice in the batch (also at /devices/0)\"},"
                    "{\"pointer\":\"/devices/4/serial_number\",\"detail\":\"appears twice in the batch (also at /devices/1)\"},"
                    "{\"pointer\":\"/devices/1/product\",\"detail\":\"is required\"}]}");
    cr_assert_eq(count_of("SELECT count(*) FROM devices"), 0);

    tok = make_token(&proc, "sales", "ownership:write");
    r = call("POST", "/api/v1/ownership:batch", tok,
             "{\"assignments\": [{\"serial_number\": \"S\", \"owner_id\": \"o\"},"
             " {\"serial_number\": \"T\", \"owner_id\": \"O!\"},"
             " {\"serial_number\": \"S\", \"owner_id\": \"o\"}, {\"serial_number\": \"S\", \"owner_id\": \"o\"}]}");
    expect(&r, 422, "{\"type\":\"about:blank\",\"title\":\"Unprocessable Content\",\"status\":422,"
                    "\"detail\":\"the batch is invalid: nothing was stored\",\"errors\":["
                    "{\"pointer\":\"/assignments/2/serial_number\",\"detail\":\"appears twice in the batch (also at /assignments/0)\"},"
                    "{\"pointer\":\"/assignments/3/serial_number\",\"detail\":\"appears twice in the batch (also at /assignments/0)\"},"
                    "{\"pointer\":\"/assignments/1/owner_id\",\"detail\":\"must be 1 to 64 of a-z 0-9 . _ -\"}]}");
}

/* ---- 503 and readiness ---- */

static char *own_database(const char *dir, unsigned port)
{
    const char *dev = env_or_die("MASAD_TEST_DEV");
    char *urls;
    cr_assert_eq(sh(&urls, "%s/postgres.sh init %s %u 2>/dev/null", dev, dir, port), 0, "%s", urls);
    char *app = strstr(urls, "MASAD_DATABASE_URL='") + 20;
    char *owner = strstr(urls, "MASAD_MIGRATE_DATABASE_URL='") + 28;
    *strchr(app, '\'') = 0;
    *strchr(owner, '\'') = 0;
    char *out;
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", owner, NULL};
    const char *args[] = {"migrate", NULL};
    cr_assert_eq(masad_run(&out, env, args), 0, "%s", out);
    return app;
}

static size_t occurrences(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

Test(unavailable, every_503_carries_retry_after_and_readiness_logs_once, .timeout = 120)
{
    char *dir = tmp_path("pg-http-%d", (int)getpid());
    const char *dev = env_or_die("MASAD_TEST_DEV");
    struct masad_opts o = {.database_url = own_database(dir, 55997)};
    cr_assert(masad_start(&proc, &o), "%s", read_text(proc.stderr_path));
    cr_assert(masad_wait_ready(&proc, 10000));
    char *tok = make_token(&proc, "rw", "devices:read");
    cr_assert_eq(sh(NULL, "%s/postgres.sh stop %s", dev, dir), 0);

    struct http_result r = http(&proc, "/_test/db", NULL);
    expect(&r, 503, NULL);
    cr_assert_str_eq(http_header(&r, "retry-after"), "1");
    r = call("GET", "/api/v1/devices", tok, NULL);
    expect(&r, 503, NULL);
    cr_assert_str_eq(http_header(&r, "content-type"), "application/problem+json");
    cr_assert_str_eq(http_header(&r, "retry-after"), "1");
    struct http_opts sztp = {.method = "POST", .basic_auth = "S-1:0123456789abcdef",
                             .body = "{\"ietf-sztp-bootstrap-server:input\": {}}",
                             .content_type = "application/yang-data+json"};
    sztp.body_len = strlen(sztp.body);
    r = http(&proc, "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data", &sztp);
    expect(&r, 503, NULL);
    cr_assert_str_eq(http_header(&r, "content-type"), "application/yang-data+json");
    cr_assert_str_eq(http_header(&r, "retry-after"), "1");
    bool unready = false;
    for (int i = 0; i < 100 && !unready; i++, sleep_ms(50)) {
        r = http(&proc, "/readyz", NULL);
        unready = r.status == 503 && strstr(r.body, "database is unavailable");
    }
    cr_assert(unready, "/readyz did not notice");
    cr_assert_str_eq(http_header(&r, "retry-after"), "1");
    for (int i = 0; i < 5; i++, sleep_ms(200)) /* more probes: no more log lines */
        r = http(&proc, "/readyz", NULL);

    cr_assert_eq(sh(NULL, "%s/postgres.sh start %s 55997", dev, dir), 0);
    cr_assert(masad_wait_ready(&proc, 15000), "not ready again");
    stop();
    char *err = read_text(proc.stderr_path);
    cr_assert_eq(occurrences(err, "\"msg\":\"not ready: the database is unavailable"), 1, "%s", err);
    cr_assert_eq(occurrences(err, "\"msg\":\"ready again: the database and the signing key are usable\""),
                 1, "%s", err);
    cr_assert(strstr(err, "\"level\":\"warn\",\"msg\":\"not ready: the database is unavailable"), "%s", err);
    sh(NULL, "%s/postgres.sh destroy %s", dev, dir);
}

/* ---- log streams ---- */

static void expect_json_lines(const char *text)
{
    char *copy = strdup(text), *save = NULL;
    size_t lines = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        cr_assert(line[0] == '{' && line[strlen(line) - 1] == '}', "not JSON: %s", line);
    }
    cr_assert_gt(lines, 0);
    free(copy);
}

/* libp11 writes dlopen's error on descriptor 2 itself */
Test(logs, pkcs11_noise_becomes_json_lines, .init = start, .timeout = 60)
{
    struct http_result r = http(&proc, "/healthz", NULL);
    expect(&r, 200, NULL);
    stop();
    expect_json_lines(read_text(proc.stdout_path));
    expect_json_lines(read_text(proc.stderr_path));
    char *config = read_text(proc.config_path), *module = strstr(config, env_or_die("MASAD_PKCS11_MODULE"));
    cr_assert(module);
    char *broken = fmt("%.*s/nonexistent/libpkcs11.so%s", (int)(module - config), config,
                       module + strlen(env_or_die("MASAD_PKCS11_MODULE")));
    char *path = write_temp("broken-module.json", broken, strlen(broken)), *out;
    const char *env[] = {"MASAD_DATABASE_URL", proc.db.app_url, NULL};
    const char *args[] = {"serve", "-c", path, NULL};
    cr_assert_eq(masad_run(&out, env, args), 1, "%s", out);
    expect_json_lines(out);
    cr_assert(strstr(out, "\"level\":\"warn\",\"msg\":\"pkcs11: /nonexistent/libpkcs11.so: cannot open "
                          "shared object file: No such file or directory\"}"), "%s", out);
}
