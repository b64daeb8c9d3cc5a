/* Behind load balancers: the PROXY protocol (v1) and RFC 9440 client
 * certificate headers, each trusted only from configured address ranges. */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <string.h>
#include <sys/socket.h>

#include "common/encoding.h"
#include "common/log.h"
#include "edge/edge_internal.h"

#define CERT_MAX 16384      /* one certificate, DER */
#define CHAIN_MAX 8         /* certificates in Client-Cert-Chain */

/*
 * h2o 2.2.5 keeps the address a PROXY line gave in the socket's private
 * _peername; it also caches the socket's own peer there once asked. So a
 * PROXY line was read when _peername holds another address than the
 * socket's own (a line naming the balancer's own address and port cannot
 * come from it). h2o itself accepts a connection without one: masad refuses
 * it, on every request of the connection.
 */
bool edge_proxy_line_seen(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket
                             ? req->conn->callbacks->get_socket(req->conn)
                             : NULL;
    if (!sock || !sock->_peername)
        return false;
    struct sockaddr_storage own;
    socklen_t n = sizeof(own);
    if (getpeername(h2o_socket_get_fd(sock), (struct sockaddr *)&own, &n) != 0)
        return false;
    return sock->_peername->len != n || memcmp(&sock->_peername->addr, &own, n) != 0;
}

/* RFC 8941 §3.3.5: a Byte Sequence is ":" base64 ":" (standard alphabet, padded) */
static unsigned char *byte_sequence(struct arena *a, const char *s, size_t n, size_t *len)
{
    if (n < 2 || s[0] != ':' || s[n - 1] != ':' || (n - 2) % 4 || n - 2 > 4 * ((CERT_MAX + 2) / 3))
        return NULL;
    for (size_t i = 1; i < n - 1; i++) {
        char c = s[i];
        bool pad_ok = c == '=' && i >= n - 3;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || pad_ok))
            return NULL;
    }
    return base64_decode(a, s + 1, n - 2, len);
}

/* DER of exactly one certificate and nothing after it: that certificate
 * (released with `a`), else NULL */
static X509 *one_certificate(struct arena *a, const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x && p != der + len) {
        X509_free(x);
        x = NULL;
    }
    if (x)
        arena_defer(a, edge_release_x509, x);
    return x;
}

static int add_item(struct arena *a, const char *s, size_t n, struct der_cert *out, X509 **x)
{
    size_t len;
    unsigned char *der = byte_sequence(a, s, n, &len);
    if (!der || !len || len > CERT_MAX || !(*x = one_certificate(a, der, len)))
        return -1;
    out->der = der;
    out->len = len;
    return 0;
}

static const char *single_header(h2o_req_t *req, const char *name, size_t *len, bool *twice)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    *twice = i >= 0 && h2o_find_header_by_str(&req->headers, name, strlen(name), i) >= 0;
    if (i < 0)
        return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

static size_t trim(const char **s, size_t n)
{
    while (n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        n--;
    }
    while (n && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t'))
        n--;
    return n;
}

/* RFC 9440 §2: Client-Cert (one Byte Sequence) and Client-Cert-Chain (a
 * list of them). */
int edge_client_cert_headers(h2o_req_t *req, struct arena *a, struct der_cert **out,
                             struct x509_st *const **x509, size_t *count)
{
    size_t leaf_len = 0, chain_len = 0;
    bool twice_leaf, twice_chain;
    const char *leaf = single_header(req, "client-cert", &leaf_len, &twice_leaf);
    const char *chain = single_header(req, "client-cert-chain", &chain_len, &twice_chain);
    if (!leaf && !chain)
        return 0;
    if (!leaf || twice_leaf || twice_chain)
        return -1;
    struct der_cert *certs = arena_alloc(a, sizeof(*certs) * (CHAIN_MAX + 1));
    X509 **decoded = arena_alloc(a, sizeof(*decoded) * (CHAIN_MAX + 1));
    size_t n = 0;
    leaf_len = trim(&leaf, leaf_len);
    if (add_item(a, leaf, leaf_len, &certs[n], &decoded[n]) != 0)
        return -1;
    n++;
    /* RFC 8941 §4.2.1: after a comma another member must follow, so a
     * trailing comma fails the whole list (add_item refuses the empty one) */
    bool more = chain && chain_len;
    while (more) {
        const char *comma = memchr(chain, ',', chain_len);
        size_t item = comma ? (size_t)(comma - chain) : chain_len;
        const char *s = chain;
        size_t len = trim(&s, item);
        if (n > CHAIN_MAX || add_item(a, s, len, &certs[n], &decoded[n]) != 0)
            return -1;
        n++;
        more = comma != NULL;
        chain_len -= comma ? item + 1 : item;
        chain = comma ? comma + 1 : NULL;
    }
    *out = certs;
    *x509 = (struct x509_st *const *)decoded;
    *count = n;
    return 1;
}
