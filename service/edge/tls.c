#include <openssl/err.h>
#include <openssl/ssl.h>

#include "edge/edge_internal.h"

/* The service checks client chains itself, against the trust anchors of the
 * protocol in question: the handshake only asks for a certificate. */
static int accept_any_client_certificate(int preverify_ok, X509_STORE_CTX *store)
{
    (void)preverify_ok;
    (void)store;
    return 1;
}

SSL_CTX *edge_tls_context(const struct config *cfg, struct masad_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* TLS 1.2: forward-secret AEAD suites only */
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1)
        goto fail;
    /* elliptic curves only: OpenSSL 3.0 also offers the FFDHE groups (RFC
     * 7919), and a client insisting on ffdhe8192 costs ~120 ms of CPU per
     * handshake */
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1)
        goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_certificate) != 1) {
        error_set(err, 500, "tls", "cannot use the TLS certificate %s", cfg->tls_certificate);
        goto fail_with_reason;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_private_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        error_set(err, 500, "tls", "cannot use the TLS private key %s", cfg->tls_private_key);
        goto fail_with_reason;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_client_certificate);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"masad", 5);
    /* devices bootstrap once and do not resume; management clients keep
     * their connections: TLS 1.3 session tickets would cost every handshake
     * ~0.3 ms of CPU for nothing */
    SSL_CTX_set_num_tickets(ctx, 0);
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
fail:
    error_set(err, 500, "tls", "cannot set up TLS");
fail_with_reason:
    error_add_openssl(err);
    SSL_CTX_free(ctx);
    return NULL;
}

/*
 * h2o 2.2.5 has no public getter for a connection's SSL. Its private
 * struct st_h2o_socket_ssl_t begins with (SSL_CTX *, SSL *). The SSL_CTX is
 * compared with ours before the SSL is trusted, so a change of that layout
 * yields NULL (no client certificate), never a wild pointer's contents; a
 * test covers it (tests/integration/test_edge.c, client identity).
 */
struct h2o_socket_ssl_head {
    SSL_CTX *ssl_ctx;
    SSL *ssl;
};

SSL *edge_tls_session(h2o_req_t *req, SSL_CTX *expected)
{
    if (!req->conn->callbacks->get_socket)
        return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (!sock || !sock->ssl)
        return NULL;
    const struct h2o_socket_ssl_head *head = (const void *)sock->ssl;
    return head->ssl_ctx == expected ? head->ssl : NULL;
}

void edge_release_x509(void *x)
{
    X509_free(x);
}

/* slot i of both arrays: x's DER copy and a reference to x itself */
static void push(X509 *x, struct arena *a, struct der_cert *der, X509 **decoded)
{
    unsigned char *buf = NULL;
    int n = i2d_X509(x, &buf);
    der->der = n > 0 ? arena_memdup(a, buf, (size_t)n) : NULL;
    der->len = n > 0 ? (size_t)n : 0;
    OPENSSL_free(buf);
    X509_up_ref(x);
    arena_defer(a, edge_release_x509, x);
    *decoded = x;
}

size_t edge_client_chain(SSL *ssl, struct arena *a, struct der_cert **der,
                         struct x509_st *const **x509)
{
    *der = NULL;
    *x509 = NULL;
    X509 *leaf = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (!leaf)
        return 0;
    /* on a server the peer chain excludes the leaf */
    STACK_OF(X509) *rest = SSL_get_peer_cert_chain(ssl);
    int n = rest ? sk_X509_num(rest) : 0;
    int skip = n > 0 && X509_cmp(sk_X509_value(rest, 0), leaf) == 0 ? 1 : 0;
    struct der_cert *certs = arena_alloc(a, sizeof(*certs) * (size_t)(n + 1 - skip));
    X509 **decoded = arena_alloc(a, sizeof(*decoded) * (size_t)(n + 1 - skip));
    size_t count = 0;
    push(leaf, a, &certs[count], &decoded[count]);
    count++;
    for (int i = skip; i < n; i++, count++)
        push(sk_X509_value(rest, i), a, &certs[count], &decoded[count]);
    *der = certs;
    *x509 = (struct x509_st *const *)decoded;
    return count;
}

const char *edge_client_subject(const struct edge *edge, SSL *ssl, struct arena *a)
{
    X509 *leaf = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    return leaf ? edge->cert_subject(leaf, a) : NULL;
}
