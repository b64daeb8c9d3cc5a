/*
 * Behind load balancers: the PROXY protocol v1 and RFC 9440 client
 * certificate headers, trusted only from configured address ranges, and
 * forged from untrusted ones.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct masad_proc proc;

static void start_with(const char *device_extra)
{
    struct masad_opts o = {.device_extra = device_extra};
    cr_assert(masad_start(&proc, &o), "%s", read_text(proc.stderr_path));
}

static void stop(void) { masad_stop_expect_clean(&proc); }

/* ":base64(DER):" of the first certificate in a PEM file (RFC 8941 §3.3.5) */
static char *byte_sequence_of(const char *pem_file)
{
    FILE *f = fopen(pem_file, "r");
    cr_assert(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert(x);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    char *b64 = calloc(1, 4 * (size_t)(n + 2) / 3 + 4), *out;
    EVP_EncodeBlock((unsigned char *)b64, der, n);
    cr_assert(asprintf(&out, ":%s:", b64) > 0);
    OPENSSL_free(der);
    X509_free(x);
    free(b64);
    return out;
}

static char *device_cert(const char *serial)
{
    char *prefix = tmp_path("proxy-%s", serial), *out, *crt;
    cr_assert_eq(sh(&out, "%s/pki.sh idevid %s %s %s", env_or_die("MASAD_TEST_DEV"),
                    env_or_die("MASAD_TEST_PKI"), serial, prefix), 0, "%s", out);
    cr_assert(asprintf(&crt, "%s.crt", prefix) > 0);
    return crt;
}

static struct http_result identity_with(const char *client_cert, const char *chain)
{
    char *h1 = NULL, *h2 = NULL;
    if (client_cert)
        cr_assert(asprintf(&h1, "Client-Cert: %s", client_cert) > 0);
    if (chain)
        cr_assert(asprintf(&h2, "Client-Cert-Chain: %s", chain) > 0);
    struct http_opts o = {.extra_header = h1, .extra_header2 = h2};
    return http(&proc, "/_test/identity", &o);
}

Test(proxy, client_cert_headers_from_an_untrusted_peer_are_ignored, .timeout = 60)
{
    start_with("\"client-certificate-headers\": {\"trusted-proxies\": [\"10.0.0.0/8\"]}");
    char *leaf = byte_sequence_of(device_cert("HDR-FORGED"));
    struct http_result r = identity_with(leaf, byte_sequence_of(pki_path("idevid-ca.crt")));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"chain_length\":0"), "forged identity honoured: %s", r.body);
    cr_assert(strstr(r.body, "\"decoded_length\":0"), "forged identity honoured: %s", r.body);
    cr_assert_null(http_header(&r, "cache-control"));
    stop();
    char *err = read_text(proc.stderr_path);
    cr_assert(strstr(err, "client certificate headers from 127.0.0.1 ignored: not a trusted proxy"), "%s", err);
}

Test(proxy, client_cert_headers_from_a_trusted_proxy_are_the_identity, .timeout = 60)
{
    start_with("\"client-certificate-headers\": {\"trusted-proxies\": [\"127.0.0.0/8\", \"::1/128\"]}");
    char *leaf = byte_sequence_of(device_cert("HDR-TRUSTED"));
    struct http_result r = identity_with(leaf, byte_sequence_of(pki_path("idevid-ca.crt")));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"chain_length\":2"), "%s", r.body);
    cr_assert(strstr(r.body, "serialNumber=HDR-TRUSTED"), "%s", r.body);
    /* decoded once, while the headers were checked (req->client_x509) */
    cr_assert(strstr(r.body, "\"decoded_length\":2"), "%s", r.body);
    const char *decoded = strstr(r.body, "\"decoded_subjects\":[");
    cr_assert(decoded && strstr(decoded, "serialNumber=HDR-TRUSTED"), "%s", r.body);
    /* RFC 9440 §3: an answer that depends on it is not for caches */
    cr_assert_str_eq(http_header(&r, "cache-control"), "no-store");

    /* strict parsing: anything but one Byte Sequence of one DER certificate is refused */
    const char *bad[] = {"MIIB", ":not base64!:", ":AAAA:", "::", leaf + 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_result b = identity_with(bad[i], NULL);
        cr_assert_eq(b.status, 400, "%s: %ld %s", bad[i], b.status, b.body);
        cr_assert_str_eq(b.body, "malformed Client-Cert or Client-Cert-Chain header (RFC 9440)\n");
    }
    char *two;
    cr_assert(asprintf(&two, "%s, %s", leaf, leaf) > 0);
    cr_assert_eq(identity_with(two, NULL).status, 400);
    cr_assert_eq(identity_with(NULL, leaf).status, 400, "a chain without a certificate");
    /* the service checks the chain itself: a header certificate from an
     * unknown CA authenticates no SZTP device */
    char *other = tmp_path("proxy-other-ca"), *out;
    cr_assert_eq(sh(&out, "%s/pki.sh %s && %s/pki.sh idevid %s STRANGER %s/stranger",
                    env_or_die("MASAD_TEST_DEV"), other, env_or_die("MASAD_TEST_DEV"), other, other), 0,
                 "%s", out);
    char *stranger, *h;
    cr_assert(asprintf(&stranger, "%s/stranger.crt", other) > 0);
    cr_assert(asprintf(&h, "Client-Cert: %s", byte_sequence_of(stranger)) > 0);
    struct http_opts sztp = {.extra_header = h, .body = "{}", .body_len = 2,
                             .content_type = "application/yang-data+json"};
    r = http(&proc, "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data", &sztp);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    stop();
}

/* TLS over a socket that first sends a PROXY v1 line, then GET path. */
static char *through_proxy_line(const char *line, const char *path)
{
    signal(SIGPIPE, SIG_IGN); /* the server may close before we finish writing */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)proc.device_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (line && send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
        close(fd);
        return strdup("");
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, pki_path("root-ca.crt"), NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    char *answer = strdup("");
    if (SSL_connect(ssl) == 1) {
        char request[256];
        snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
        SSL_write(ssl, request, (int)strlen(request));
        char buf[4096];
        size_t total = 0;
        int n;
        while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
            answer = realloc(answer, total + (size_t)n + 1);
            memcpy(answer + total, buf, (size_t)n);
            total += (size_t)n;
            answer[total] = 0;
        }
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    ERR_clear_error();
    return answer;
}

Test(proxy, the_proxy_protocol_from_a_trusted_balancer_gives_the_client_address, .timeout = 60)
{
    start_with("\"proxy-protocol\": {\"trusted-sources\": [\"127.0.0.0/8\"]}");
    char *answer = through_proxy_line("PROXY TCP4 203.0.113.7 192.0.2.1 40000 8443\r\n", "/_test/identity");
    cr_assert(strstr(answer, "HTTP/1.1 200"), "%s", answer);
    cr_assert(strstr(answer, "\"peer\":\"203.0.113.7\""), "%s", answer);
    /* h2o lets a connection without the line through: masad refuses it, on
     * every request of such a connection (HTTP/2 included) */
    for (int h2 = 0; h2 < 2; h2++) {
        struct http_opts o = {.http2 = h2};
        struct http_result r = http(&proc, "/_test/identity", &o);
        cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
        r = http(&proc, "/healthz", &o);
        cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    }
    answer = through_proxy_line(NULL, "/_test/identity");
    cr_assert(strstr(answer, "HTTP/1.1 400"), "%s", answer);
    cr_assert(strstr(answer, "this listener takes connections through its load balancer only (PROXY protocol v1)"),
              "%s", answer);
    stop();
    char *log = read_text(proc.stdout_path);
    cr_assert(strstr(log, "\"peer\":\"203.0.113.7\""), "%s", log);
}

Test(proxy, the_proxy_protocol_from_anyone_else_is_refused, .timeout = 60)
{
    start_with("\"proxy-protocol\": {\"trusted-sources\": [\"10.0.0.0/8\"]}");
    /* a forged PROXY line from an untrusted address: the connection is closed */
    char *answer = through_proxy_line("PROXY TCP4 203.0.113.7 192.0.2.1 40000 8443\r\n", "/_test/identity");
    cr_assert_str_eq(answer, "", "answered: %s", answer);
    struct http_result r = http(&proc, "/healthz", NULL);
    cr_assert_eq(r.status, 0, "an untrusted source was served");
    /* the management listener, without the setting, still serves */
    struct http_opts mgmt = {.management = true};
    cr_assert_eq(http(&proc, "/healthz", &mgmt).status, 200);
    stop();
    char *err = read_text(proc.stderr_path);
    cr_assert(strstr(err, "connection to the device listener refused: not from a trusted load balancer"), "%s", err);
}

/* RFC 8941 §4.2.1: a list ends after a member, never after a comma */
Test(proxy, a_client_cert_chain_with_a_trailing_comma_is_refused, .fini = stop, .timeout = 60)
{
    start_with("\"client-certificate-headers\": {\"trusted-proxies\": [\"127.0.0.0/8\"]}");
    char *leaf = byte_sequence_of(device_cert("HDR-COMMA"));
    char *ca = byte_sequence_of(pki_path("idevid-ca.crt")), *two;
    cr_assert(asprintf(&two, "%s, %s", ca, ca) > 0);
    cr_assert_eq(identity_with(leaf, ca).status, 200);
    cr_assert_eq(identity_with(leaf, two).status, 200);
    char *bad[4];
    cr_assert(asprintf(&bad[0], "%s,", ca) > 0 && asprintf(&bad[1], "%s, %s,", ca, ca) > 0 &&
              asprintf(&bad[2], "%s, ", ca) > 0 && asprintf(&bad[3], "%s,,%s", ca, ca) > 0);
    for (size_t i = 0; i < 4; i++) {
        struct http_result r = identity_with(leaf, bad[i]);
        cr_assert_eq(r.status, 400, "%s: %ld %s", bad[i], r.status, r.body);
        cr_assert_str_eq(r.body, "malformed Client-Cert or Client-Cert-Chain header (RFC 9440)\n");
    }
}
