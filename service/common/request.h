#ifndef MASAD_COMMON_REQUEST_H
#define MASAD_COMMON_REQUEST_H
/*
 * The contract between the edge and protocol logic. A handler is a plain
 * function of (context, parsed request) that fills a response; it runs on a
 * job thread and knows nothing of h2o, so tests call it directly.
 *
 * Memory: ctx->arena is the request's own arena (runtime/runtime.h): it
 * holds the request, everything the handler allocates and the response, and
 * it is freed on the event loop once h2o has sent the answer. So the body a
 * handler leaves in ctx->arena goes to the client without another copy, and
 * everything a handler puts in the response (body, header values) must be
 * allocated from ctx->arena. Cleanups it registers there (arena_defer) run
 * on another thread than the handler's: they must not use the job thread's
 * connection or other per-thread state.
 */
#include <stdbool.h>
#include <stddef.h>

#include "common/arena.h"
#include "common/error.h"

struct ly_ctx;
struct config;
struct store_conn;
struct crypto_signer;
struct crypto_anchors;

enum listener_kind { LISTENER_DEVICE = 1, LISTENER_MANAGEMENT = 2 };

struct der_cert {
    const unsigned char *der;
    size_t len;
};

#define REQUEST_MAX_PARAMS 2

struct masad_request {
    const char *request_id;
    enum listener_kind listener;
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* without the query, not percent-decoded */
    const char *query;           /* after '?', or NULL */
    const char *content_type;    /* header values, or NULL when absent */
    const char *accept;
    const char *authorization;
    const char *if_match;        /* RFC 9110 §13.1.1 */
    const char *accept_encoding;
    const char *trace_id;        /* W3C Trace Context trace-id, or NULL */
    const unsigned char *body;   /* NULL when there is none */
    size_t body_len;
    const char *peer;            /* peer address as text */
    int http_version;            /* 0x101 for HTTP/1.1, 0x200 for HTTP/2 */
    /* TLS client certificate chain as sent, leaf first; none: count 0.
     * Not verified: whoever relies on it verifies it. */
    const struct der_cert *client_chain;
    size_t client_chain_len;
    /* The same chain as already decoded (OpenSSL X509 *, client_chain_len
     * of them, in the same order): by the TLS handshake, or while checking
     * RFC 9440 headers. NULL when there is no chain (or the edge did not
     * supply it). Owned by the request (released with its arena): borrow,
     * X509_up_ref to keep. Saves handlers parsing the DER again. */
    struct x509_st *const *client_x509;
    /* path segments captured by the route's {name} placeholders, in order,
     * as sent (still percent-encoded) */
    const char *params[REQUEST_MAX_PARAMS];
    size_t param_count;
};

#define RESPONSE_MAX_HEADERS 8

struct response_header {
    const char *name;   /* a literal */
    const char *value;
};

struct masad_response {
    int status;
    const char *content_type;    /* NULL: no body */
    const unsigned char *body;
    size_t body_len;
    struct response_header headers[RESPONSE_MAX_HEADERS];
    size_t header_count;
    /* the edge may gzip the body for a client that accepts it (listings) */
    bool compressible;
};

/* What a job thread gives each handler. One per job thread; nothing in it
 * is shared with another thread except the read-only yang context, the
 * configuration and the signer (thread-safe). */
struct job_ctx {
    struct arena *arena;           /* reset after every request */
    struct store_conn *db;         /* this thread's own connection */
    struct crypto_signer *signer;
    const struct crypto_anchors *idevid;  /* the manufacturer's IDevID CAs */
    const struct ly_ctx *yang;
    const struct config *config;
};

typedef void (*request_handler)(struct job_ctx *ctx, const struct masad_request *req,
                                struct masad_response *res);

/* Helpers for handlers: they copy into ctx->arena. */
void response_set(struct masad_response *res, struct arena *a, int status,
                  const char *content_type, const void *body, size_t len);
/* The same without a copy, for a body already in ctx->arena (a signed CMS
 * made there) or static: it is sent from where it is. Never a buffer that
 * another request or thread may free (a cache entry): copy that. */
void response_use(struct masad_response *res, int status, const char *content_type,
                  const void *body, size_t len);
void response_text(struct masad_response *res, struct arena *a, int status, const char *text);
void response_add_header(struct masad_response *res, const char *name, const char *value);
/* RFC 9457 problem+json; `title` is the status's reason phrase. */
void response_problem(struct masad_response *res, struct arena *a, int status,
                      const char *detail);
const char *http_reason(int status);

#endif
