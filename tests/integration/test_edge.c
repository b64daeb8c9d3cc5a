/*
 * The edge, black-box: a real masad (test build) on free ports, with the
 * SoftHSM token and a database of its own.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct masad_proc proc;

static void start_default(void)
{
    cr_assert(masad_start(&proc, NULL), "masad did not start: %s", proc.stderr_path);
}

static void stop(void) { masad_stop_expect_clean(&proc); }

static void expect_status(const char *path, const struct http_opts *o, long status, const char *body)
{
    struct http_result r = http(&proc, path, o);
    cr_assert_eq(r.status, status, "%s: %ld %s (%s)", path, r.status, r.body, r.error);
    if (body)
        cr_assert_str_eq(r.body, body, "%s", path);
    http_result_free(&r);
}

Test(edge, health_on_both_listeners_over_http1_and_http2, .init = start_default, .fini = stop,
     .timeout = 60)
{
    for (int mgmt = 0; mgmt < 2; mgmt++)
        for (int h2 = 0; h2 < 2; h2++) {
            struct http_opts o = {.management = mgmt, .http2 = h2};
            struct http_result r = http(&proc, "/healthz", &o);
            cr_assert_eq(r.status, 200, "%s", r.error);
            cr_assert_str_eq(r.body, "ok\n");
            cr_assert_eq(r.http_version, h2 ? 2 : 11);
            http_result_free(&r);
        }
    cr_assert(masad_wait_ready(&proc, 10000), "never ready");
    expect_status("/readyz", NULL, 200, "ready\n");
}

Test(edge, unknown_routes_and_methods, .init = start_default, .fini = stop, .timeout = 60)
{
    expect_status("/nowhere", NULL, 404, "no such resource\n");
    struct http_opts mgmt = {.management = true};
    struct http_result r = http(&proc, "/nowhere", &mgmt);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(http_header(&r, "content-type"), "application/problem+json");
    cr_assert_str_eq(r.body, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,"
                             "\"detail\":\"no such resource\"}");
    http_result_free(&r);
    struct http_opts post = {.body = "x", .body_len = 1};
    r = http(&proc, "/healthz", &post);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(http_header(&r, "allow"), "get, head");
    http_result_free(&r);
    /* test routes of one listener do not exist on the other */
    struct http_opts device_post = {.body = "x", .body_len = 1};
    expect_status("/_test/echo-problem", &device_post, 404, "no such resource\n");
}

static char *make_idevid(const char *serial, char **key)
{
    char *prefix = tmp_path("idevid-%s", serial);
    char *out;
    cr_assert_eq(sh(&out, "%s/pki.sh idevid %s %s %s", env_or_die("MASAD_TEST_DEV"),
                    env_or_die("MASAD_TEST_PKI"), serial, prefix), 0, "%s", out);
    char *chain;
    cr_assert(asprintf(&chain, "%s-chain.crt", prefix) > 0);
    cr_assert(asprintf(key, "%s.key", prefix) > 0);
    return chain;
}

Test(edge, client_certificates_reach_handlers_with_their_chain, .init = start_default,
     .fini = stop, .timeout = 60)
{
    char *key, *chain = make_idevid("EDGE-ID-0001", &key);
    for (int mgmt = 0; mgmt < 2; mgmt++)
        for (int h2 = 0; h2 < 2; h2++) {
            struct http_opts anon = {.management = mgmt, .http2 = h2};
            struct http_result r = http(&proc, "/_test/identity", &anon);
            cr_assert_eq(r.status, 200, "%s", r.error);
            cr_assert(strstr(r.body, "\"chain_length\":0"), "%s", r.body);
            cr_assert(strstr(r.body, "\"decoded_length\":0"), "%s", r.body);
            cr_assert(strstr(r.body, h2 ? "\"http_version\":\"2\"" : "\"http_version\":\"1.1\""), "%s", r.body);
            cr_assert(strstr(r.body, mgmt ? "\"listener\":\"management\"" : "\"listener\":\"device\""), "%s", r.body);
            http_result_free(&r);

            struct http_opts device = {.management = mgmt, .http2 = h2, .client_cert = chain, .client_key = key};
            r = http(&proc, "/_test/identity", &device);
            cr_assert_eq(r.status, 200, "%s", r.error);
            cr_assert(strstr(r.body, "\"chain_length\":2"), "%s", r.body);
            cr_assert(strstr(r.body, "serialNumber=EDGE-ID-0001"), "%s", r.body);
            cr_assert(strstr(r.body, "IDevID"), "issuer CA not in the chain: %s", r.body);
            /* the same chain as TLS decoded it (req->client_x509), in order */
            cr_assert(strstr(r.body, "\"decoded_length\":2"), "%s", r.body);
            const char *decoded = strstr(r.body, "\"decoded_subjects\":[");
            cr_assert(decoded && strstr(decoded, "serialNumber=EDGE-ID-0001"), "%s", r.body);
            cr_assert(strstr(decoded, "IDevID") > strstr(decoded, "EDGE-ID-0001"), "%s", r.body);
            http_result_free(&r);
        }
    /* the access log names the client certificate's subject */
    char *log = read_text(proc.stdout_path);
    cr_assert(strstr(log, "\"client_subject\":\"serialNumber=EDGE-ID-0001,CN=masad dev device EDGE-ID-0001"), "%s", log);
}

/* A handshake from a client that allows every cipher and security level
 * (SECLEVEL 0) but at most `max_version`: 0 when it completes, else the
 * OpenSSL reason of the first error (the server's alert, when it sent one). */
static unsigned long handshake_at_most(unsigned port, int max_version)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    cr_assert_eq(SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0"), 1);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    ERR_clear_error();
    unsigned long reason = 0;
    if (SSL_connect(ssl) != 1) {
        reason = ERR_GET_REASON(ERR_peek_error());
        if (reason == 0)
            reason = ~0UL; /* no OpenSSL error: the peer hung up without an alert */
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();
    return reason;
}

static const char *reason_text(unsigned long reason)
{
    const char *s = reason == 0 ? "accepted" : ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, reason));
    return s ? s : "refused without an alert";
}

/* The server ended the handshake: with a protocol_version alert, or (h2o
 * 2.2.5 drops the connection without flushing its alert) by hanging up while
 * the client waited for its answer. A refusal by the client itself would
 * show another reason (no protocols or ciphers available). */
static bool refused_by_server(unsigned long reason)
{
    return reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
           reason == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

Test(edge, tls_1_2_and_1_3_only, .init = start_default, .fini = stop, .timeout = 60)
{
    /* curl with OpenSSL 3 will not offer TLS 1.1 at all; this client does,
     * and completes a TLS 1.2 handshake, so a refusal below is the server's */
    for (int mgmt = 0; mgmt < 2; mgmt++) {
        unsigned port = mgmt ? proc.management_port : proc.device_port;
        unsigned long v12 = handshake_at_most(port, TLS1_2_VERSION);
        cr_assert_eq(v12, 0, "TLS 1.2: %s", reason_text(v12));
        unsigned long v11 = handshake_at_most(port, TLS1_1_VERSION);
        cr_assert(refused_by_server(v11), "TLS 1.1: %s", reason_text(v11));
        unsigned long v10 = handshake_at_most(port, TLS1_VERSION);
        cr_assert(refused_by_server(v10), "TLS 1.0: %s", reason_text(v10));
    }
    struct http_opts v12 = {.tls_max = CURL_SSLVERSION_MAX_TLSv1_2, .tls_min = CURL_SSLVERSION_TLSv1_2};
    expect_status("/healthz", &v12, 200, "ok\n");
    struct http_opts v13 = {.tls_min = CURL_SSLVERSION_TLSv1_3};
    expect_status("/healthz", &v13, 200, "ok\n");
}

Test(edge, body_limits_per_route_and_globally, .init = start_default, .fini = stop, .timeout = 60)
{
    char *body = malloc(300 * 1024);
    memset(body, 'b', 300 * 1024);
    struct http_opts ok = {.body = body, .body_len = 1024};
    struct http_result r = http(&proc, "/_test/echo", &ok);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 1024);
    http_result_free(&r);
    for (int h2 = 0; h2 < 2; h2++) {
        struct http_opts over = {.body = body, .body_len = 1025, .http2 = h2};
        expect_status("/_test/echo", &over, 413, "the request body is too large\n");
    }
    struct http_opts problem = {.management = true, .body = body, .body_len = 2000};
    r = http(&proc, "/_test/echo-problem", &problem);
    cr_assert_eq(r.status, 413);
    cr_assert_str_eq(http_header(&r, "content-type"), "application/problem+json");
    cr_assert(strstr(r.body, "\"status\":413"), "%s", r.body);
    http_result_free(&r);
    /* above the largest route's limit h2o itself refuses (HTTP/1.1: 413) */
    struct http_opts huge = {.body = body, .body_len = 300 * 1024, .expect_continue = true};
    r = http(&proc, "/_test/echo", &huge);
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.error);
    http_result_free(&r);
    free(body);
}

struct slow_call {
    struct masad_proc *proc;
    const char *path;
    struct http_result result;
};

static void *slow_request(void *arg)
{
    struct slow_call *c = arg;
    c->result = http(c->proc, c->path, NULL);
    return NULL;
}

Test(edge, a_full_queue_answers_503_with_retry_after, .timeout = 90)
{
    struct masad_opts o = {.job_threads = 1, .queue_capacity = 1};
    cr_assert(masad_start(&proc, &o));
    enum { N = 5 };
    struct slow_call calls[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        calls[i] = (struct slow_call){&proc, "/_test/sleep?ms=1500", {0}};
        pthread_create(&threads[i], NULL, slow_request, &calls[i]);
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        struct http_result *r = &calls[i].result;
        if (r->status == 200)
            ok++;
        else if (r->status == 503) {
            busy++;
            cr_assert_str_eq(r->body, "the service is busy: retry later\n");
            char *retry = http_header(r, "retry-after");
            cr_assert_str_eq(retry, "1");
        } else
            cr_assert_fail("unexpected %ld %s", r->status, r->error);
    }
    /* one running and one waiting at most: the others were turned away */
    cr_assert_geq(ok, 1);
    cr_assert_geq(busy, 1);
    cr_assert_leq(ok, 2 + 1); /* a request may slip in as the first one ends */
    struct http_opts mgmt = {.management = true};
    struct http_result m = http(&proc, "/metrics", &mgmt);
    cr_assert(strstr(m.body, "masad_queue_rejections_total "), "%s", m.body);
    cr_assert_null(strstr(m.body, "masad_queue_rejections_total 0\n"), "%s", m.body);
    http_result_free(&m);
    stop();
}

Test(edge, metrics_and_access_log, .init = start_default, .fini = stop, .timeout = 60)
{
    expect_status("/healthz", NULL, 200, "ok\n");
    expect_status("/nowhere", NULL, 404, NULL);
    struct http_opts mgmt = {.management = true};
    struct http_result r = http(&proc, "/metrics", &mgmt);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "masad_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} "), "%s", r.body);
    cr_assert(strstr(r.body, "masad_http_requests_total{route=\"unmatched\",method=\"\",status=\"404\"} 1\n"), "%s", r.body);
    cr_assert(strstr(r.body, "masad_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\",le=\"+Inf\"} "), "%s", r.body);
    cr_assert(strstr(r.body, "# TYPE masad_queue_depth gauge\nmasad_queue_depth 0\n"), "%s", r.body);
    cr_assert(strstr(r.body, "masad_jobs_in_flight 0\n"), "%s", r.body);
    cr_assert(strstr(r.body, "masad_db_reconnects_total 0\n"), "%s", r.body);
    http_result_free(&r);

    struct http_opts post = {.body = "hello", .body_len = 5};
    r = http(&proc, "/_test/echo", &post);
    char *id = http_header(&r, "x-request-id");
    cr_assert(id && strlen(id) == 20, "request id: %s", id);
    http_result_free(&r);
    char *log = read_text(proc.stdout_path), *line = strstr(log, id);
    cr_assert(line, "no access line for %s in %s", id, log);
    char *end = strchr(line, '\n');
    *end = 0;
    cr_assert(strstr(line, "\"listener\":\"device\",\"peer\":\"127.0.0.1\",\"method\":\"POST\","
                           "\"path\":\"/_test/echo\",\"protocol\":\"HTTP/1.1\",\"status\":200,"
                           "\"bytes\":5,\"microseconds\":"), "%s", line);
    cr_assert(strstr(line, "\"client_subject\":null}"), "%s", line);
}

Test(edge, signer_round_trip_through_a_job_thread, .init = start_default, .fini = stop, .timeout = 60)
{
    const char *content = "{\"ietf-voucher:voucher\":{\"serial-number\":\"RT-1\"}}";
    struct http_opts post = {.body = content, .body_len = strlen(content)};
    struct http_result r = http(&proc, "/_test/sign", &post);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char *der = write_temp("signed.der", r.body, r.body_len);
    char *out, *root = pki_path("root-ca.crt");
    cr_assert_eq(sh(&out, "openssl cms -verify -inform DER -in %s -binary -CAfile %s -purpose any",
                    der, root), 0, "%s", out);
    cr_assert(strstr(out, content), "%s", out);
    http_result_free(&r);
}
