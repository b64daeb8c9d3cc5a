/*
 * The edge under hostile clients: HTTP/2 rapid reset (a raw HTTP/2 client
 * written here, frames by hand over TLS with ALPN h2), each listener's own
 * body limit, and the TLS key-exchange groups.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct masad_proc proc;

static void stop(void) { masad_stop_expect_clean(&proc); }

/* ---- a TLS connection by hand ---- */

struct tls {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

/* Connects to port with these groups and ALPN (NULL: none); tls.ssl is NULL
 * when the handshake failed. Reads give up after 30 s rather than hang. */
static struct tls tls_connect(unsigned port, const char *groups, int tls_min, const char *alpn)
{
    signal(SIGPIPE, SIG_IGN); /* the server may close while we write */
    struct tls t = {socket(AF_INET, SOCK_STREAM, 0), SSL_CTX_new(TLS_client_method()), NULL};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(t.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {30, 0};
    setsockopt(t.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(t.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    SSL_CTX_load_verify_locations(t.ctx, pki_path("root-ca.crt"), NULL);
    SSL_CTX_set_verify(t.ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(t.ctx, tls_min);
    if (groups)
        cr_assert_eq(SSL_CTX_set1_groups_list(t.ctx, groups), 1, "%s", groups);
    if (alpn)
        SSL_CTX_set_alpn_protos(t.ctx, (const unsigned char *)alpn, (unsigned)strlen(alpn));
    SSL *ssl = SSL_new(t.ctx);
    SSL_set_fd(ssl, t.fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) == 1)
        t.ssl = ssl;
    else
        SSL_free(ssl);
    ERR_clear_error();
    return t;
}

static void tls_close(struct tls *t)
{
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    close(t->fd);
    ERR_clear_error();
}

static bool tls_write(struct tls *t, const void *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        int n = SSL_write(t->ssl, (const char *)data + done, (int)(len - done));
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

/* Exactly len bytes; false at the end of the connection (or after 30 s). */
static bool tls_read(struct tls *t, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        int n = SSL_read(t->ssl, (char *)buf + done, (int)(len - done));
        if (n <= 0)
            return false;
        done += (size_t)n;
    }
    return true;
}

/* ---- HTTP/2 frames (RFC 9113 §4.1) ---- */

struct frames {
    unsigned char *buf;
    size_t len, cap;
};

static void put(struct frames *f, const void *data, size_t len)
{
    if (f->len + len > f->cap) {
        f->cap = 2 * (f->len + len);
        f->buf = realloc(f->buf, f->cap);
    }
    if (len)
        memcpy(f->buf + f->len, data, len);
    f->len += len;
}

static void frame(struct frames *f, unsigned type, unsigned flags, unsigned stream,
                  const void *payload, size_t len)
{
    unsigned char h[9] = {(unsigned char)(len >> 16), (unsigned char)(len >> 8), (unsigned char)len,
                          (unsigned char)type, (unsigned char)flags,
                          (unsigned char)(stream >> 24), (unsigned char)(stream >> 16),
                          (unsigned char)(stream >> 8), (unsigned char)stream};
    put(f, h, sizeof(h));
    put(f, payload, len);
}

/* RFC 7541 §6.2.2: a literal field without indexing, its name from the
 * static table; values here are shorter than 127 bytes */
static void literal(struct frames *f, unsigned name_index, const char *value)
{
    unsigned char h[2] = {(unsigned char)name_index, (unsigned char)strlen(value)};
    put(f, h, 2);
    put(f, value, strlen(value));
}

/* HEADERS with END_STREAM and END_HEADERS: GET path */
static void get_request(struct frames *f, unsigned stream, const char *path)
{
    struct frames block = {0};
    static const unsigned char method_get = 0x82, scheme_https = 0x87; /* static table 2, 7 */
    put(&block, &method_get, 1);
    put(&block, &scheme_https, 1);
    literal(&block, 4, path);        /* :path */
    literal(&block, 1, "localhost"); /* :authority */
    frame(f, 1, 0x1 | 0x4, stream, block.buf, block.len);
    free(block.buf);
}

static void rst_stream(struct frames *f, unsigned stream)
{
    static const unsigned char cancel[4] = {0, 0, 0, 8}; /* CANCEL */
    frame(f, 3, 0, stream, cancel, 4);
}

struct h2_end {
    bool goaway;
    unsigned goaway_error;
    unsigned responses;      /* HEADERS frames received */
};

/* Reads frames until the server ends the connection. */
static struct h2_end read_until_closed(struct tls *t)
{
    struct h2_end e = {0};
    unsigned char h[9];
    while (tls_read(t, h, 9)) {
        size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        unsigned char *payload = malloc(len + 1);
        if (!tls_read(t, payload, len)) {
            free(payload);
            break;
        }
        if (h[3] == 7 && len >= 8) {
            e.goaway = true;
            e.goaway_error = (unsigned)payload[4] << 24 | (unsigned)payload[5] << 16 |
                             (unsigned)payload[6] << 8 | payload[7];
        } else if (h[3] == 1)
            e.responses++;
        free(payload);
    }
    return e;
}

/* ---- /metrics ---- */

/* The value of a metric line that starts with `name ` or `name{…} `, or -1. */
static long metric(const char *name)
{
    struct http_opts o = {.management = true};
    struct http_result r = http(&proc, "/metrics", &o);
    cr_assert_eq(r.status, 200);
    long v = -1;
    size_t n = strlen(name);
    for (const char *line = r.body; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "")
        if (!strncmp(line, name, n) && (line[n] == ' ' || line[n] == '{')) {
            const char *sp = strchr(line, ' ');
            v = sp ? atol(sp + 1) : -1;
            break;
        }
    http_result_free(&r);
    return v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- HTTP/2 rapid reset (CVE-2023-44487) ---- */

#define PAIRS 2000

Test(hardening, http2_rapid_reset_drops_the_jobs_and_closes_the_connection, .fini = stop,
     .timeout = 120)
{
    struct masad_opts o = {.job_threads = 2, .queue_capacity = 4 * PAIRS};
    cr_assert(masad_start(&proc, &o), "%s", read_text(proc.stderr_path));
    struct tls t = tls_connect(proc.device_port, NULL, TLS1_2_VERSION, "\x02h2");
    cr_assert(t.ssl, "no TLS connection");
    const unsigned char *proto;
    unsigned proto_len;
    SSL_get0_alpn_selected(t.ssl, &proto, &proto_len);
    cr_assert(proto_len == 2 && !memcmp(proto, "h2", 2), "ALPN did not select h2");

    struct frames f = {0};
    put(&f, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    frame(&f, 4, 0, 0, NULL, 0); /* SETTINGS */
    /* both job threads sleep, so every job queued behind them is still
     * waiting when its stream is reset */
    get_request(&f, 1, "/_test/sleep?ms=3000");
    get_request(&f, 3, "/_test/sleep?ms=3000");
    for (unsigned i = 0; i < PAIRS; i++) {
        get_request(&f, 5 + 2 * i, "/_test/identity");
        rst_stream(&f, 5 + 2 * i);
    }
    tls_write(&t, f.buf, f.len); /* the server may close before the end */
    free(f.buf);
    struct h2_end e = read_until_closed(&t);
    tls_close(&t);
    cr_assert_eq(e.responses, 0, "the sleeping requests were answered: the connection stayed open");

    /* wait for the job threads to finish what they took */
    for (int i = 0; i < 200 && metric("masad_jobs_in_flight") != 0; i++)
        sleep_ms(100);
    cr_assert_eq(metric("masad_jobs_in_flight"), 0);
    cr_assert_eq(metric("masad_http2_reset_flood_closes_total"), 1);
    long dropped = metric("masad_jobs_dropped_total");
    cr_assert(dropped > 100, "only %ld jobs for reset streams were dropped", dropped);
    /* no job of a reset stream ran: the identity route answered nothing */
    cr_assert_eq(metric("masad_http_requests_total{route=\"/_test/identity\""), -1);
    char *err = read_text(proc.stderr_path);
    cr_assert(strstr(err, "HTTP/2 connection from 127.0.0.1 closed: more than 100 requests reset "
                          "before their answer within 10 s"), "%s", err);
    /* everyone else is served */
    struct http_opts h2 = {.http2 = true};
    struct http_result r = http(&proc, "/_test/identity", &h2);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.error);
    cr_assert_eq(r.http_version, 2);
}

Test(hardening, a_few_resets_leave_the_connection_open, .fini = stop, .timeout = 120)
{
    cr_assert(masad_start(&proc, NULL), "%s", read_text(proc.stderr_path));
    struct tls t = tls_connect(proc.device_port, NULL, TLS1_2_VERSION, "\x02h2");
    cr_assert(t.ssl);
    struct frames f = {0};
    put(&f, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    frame(&f, 4, 0, 0, NULL, 0);
    get_request(&f, 1, "/_test/sleep?ms=1000");
    get_request(&f, 3, "/_test/sleep?ms=1000");
    for (unsigned i = 0; i < 50; i++) {
        get_request(&f, 5 + 2 * i, "/_test/identity");
        rst_stream(&f, 5 + 2 * i);
    }
    /* then a request that is answered, and GOAWAY from the client */
    get_request(&f, 105, "/_test/identity");
    cr_assert(tls_write(&t, f.buf, f.len));
    free(f.buf);
    unsigned char h[9];
    bool answered = false;
    while (!answered && tls_read(&t, h, 9)) {
        size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        unsigned char *payload = malloc(len + 1);
        cr_assert(tls_read(&t, payload, len));
        unsigned stream = (unsigned)(h[5] & 0x7f) << 24 | (unsigned)h[6] << 16 | (unsigned)h[7] << 8 | h[8];
        cr_assert_neq(h[3], 7, "GOAWAY after 50 resets");
        answered = h[3] == 1 && stream == 105;
        free(payload);
    }
    cr_assert(answered, "the request after 50 resets was not answered");
    tls_close(&t);
    cr_assert_eq(metric("masad_http2_reset_flood_closes_total"), 0);
}

/* ---- each listener its own body limit ---- */

/* Sends only the head of a POST announcing `length` bytes; the answer's
 * status line, or "" when none came (within 30 s). */
static char *post_head_only(unsigned port, const char *path, size_t length)
{
    struct tls t = tls_connect(port, NULL, TLS1_2_VERSION, NULL);
    cr_assert(t.ssl);
    char *head = fmt("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n", path, length);
    cr_assert(tls_write(&t, head, strlen(head)));
    char buf[256] = "";
    int n = SSL_read(t.ssl, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = 0;
    tls_close(&t);
    return strndup(buf, strcspn(buf, "\r"));
}

Test(hardening, a_device_route_refuses_a_large_body_before_reading_it, .fini = stop, .timeout = 120)
{
    cr_assert(masad_start(&proc, NULL), "%s", read_text(proc.stderr_path));
    size_t two_mib = 2 * 1024 * 1024;
    /* the device listener's largest route takes 512 KiB: 2 MiB is refused on
     * its announcement, without waiting for the body */
    char *status = post_head_only(proc.device_port, "/.well-known/brski/requestvoucher", two_mib);
    cr_assert_str_eq(status, "HTTP/1.1 413 Request Entity Too Large");
    /* curl waits for 100 Continue, so that it reads the 413 rather than
     * fail to send into a closed connection */
    struct http_opts o = {.body = calloc(1, two_mib), .body_len = two_mib,
                          .content_type = "application/voucher-cms+json", .expect_continue = true};
    struct http_result r = http(&proc, "/.well-known/brski/requestvoucher", &o);
    cr_assert_eq(r.status, 413, "%ld %s", r.status, r.error);

    /* the management listener still takes a 2 MiB batch */
    char *tok = make_token(&proc, "limits", "devices:write");
    char *batch = malloc(two_mib + 1);
    memset(batch, ' ', two_mib);
    const char *entry = "{\"devices\": [{\"serial_number\": \"BIG-BATCH-1\", \"product\": \"p\"}]}";
    memcpy(batch, entry, strlen(entry));
    batch[two_mib] = 0;
    struct http_opts m = {.management = true, .body = batch, .body_len = two_mib,
                          .content_type = "application/json", .bearer = tok};
    r = http(&proc, "/api/v1/devices:batch", &m);
    cr_assert_eq(r.status, 200, "%ld %s %s", r.status, r.body, r.error);
    cr_assert(strstr(r.body, "\"created\":1"), "%s", r.body);
    /* and refuses 17 MiB on its announcement */
    status = post_head_only(proc.management_port, "/api/v1/devices:batch", 17 * 1024 * 1024);
    cr_assert_str_eq(status, "HTTP/1.1 413 Request Entity Too Large");
}

/* ---- TLS key exchange ---- */

Test(hardening, tls_offers_elliptic_curve_groups_only, .fini = stop, .timeout = 60)
{
    cr_assert(masad_start(&proc, NULL), "%s", read_text(proc.stderr_path));
    static const char *const refused[] = {"ffdhe2048", "ffdhe8192"};
    for (size_t i = 0; i < 2; i++)
        for (int v = 0; v < 2; v++) {
            struct tls t = tls_connect(proc.device_port, refused[i], v ? TLS1_3_VERSION : TLS1_2_VERSION,
                                       NULL);
            cr_assert_null(t.ssl, "a handshake with only %s succeeded", refused[i]);
            tls_close(&t);
        }
    static const char *const accepted[] = {"X25519", "P-256", "P-384"};
    for (size_t i = 0; i < 3; i++) {
        struct tls t = tls_connect(proc.management_port, accepted[i], TLS1_3_VERSION, NULL);
        cr_assert_not_null(t.ssl, "no handshake with %s", accepted[i]);
        tls_close(&t);
    }
}
