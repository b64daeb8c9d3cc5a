#ifndef MASAD_EDGE_INTERNAL_H
#define MASAD_EDGE_INTERNAL_H
/* Folder-private to edge/. */
#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "common/clock.h"
#include "common/request.h"
#include "edge/edge.h"
#include "runtime/runtime.h"

/* How a route words its errors (404, 405, 413, 503 from the edge). */
enum error_style { ERRORS_PLAIN, ERRORS_PROBLEM };

struct edge;
struct edge_loop;

/* What every answer needs to be logged and counted. */
struct edge_answer {
    unsigned route;
    long long started_us;
    const char *request_id;
    const char *client_subject;
    enum listener_kind listener;
    const char *trace_id;       /* W3C traceparent's trace-id, or NULL */
};

typedef void (*inline_handler)(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a);

struct route {
    const char *name;           /* metrics label */
    unsigned listeners;         /* bit set of enum listener_kind */
    const char *method;
    const char *path;           /* "/a/{name}/b": {name} matches one segment */
    size_t max_body;            /* bytes; larger bodies get 413 */
    enum error_style errors;
    request_handler handler;    /* runs on a job thread ... */
    inline_handler on_loop;     /* ... or this, on the event loop */
};

extern const struct route edge_routes[];
extern const size_t edge_route_count;
/* route index for requests that match no route (metrics) */
#define ROUTE_UNMATCHED (edge_route_count)

/* Finds the route for (listener, method, path). When the path exists only
 * with other methods, allow lists them (for 405) and -1 is returned. */
int route_find(enum listener_kind listener, const char *method, size_t method_len,
               const char *path, size_t path_len, char *allow, size_t allow_len);
/* Copies the segments that route's placeholders match into req->params. */
void route_params(const struct route *r, const char *path, size_t path_len, struct arena *a,
                  struct masad_request *req);
/* The largest body of the listener's routes: its h2o limit. */
size_t route_max_body(enum listener_kind listener);

/* ---- handler.c: a request handed to the job threads ---- */
struct job {
    struct runtime_job run;     /* the runtime's part: handler, request, response, arena */
    h2o_multithread_message_t message;
    struct edge_loop *loop;
    h2o_req_t *req;             /* NULL once the client has gone (run.cancelled too) */
    struct job **req_slot;      /* in req->pool; cleared when answered */
    unsigned route;
    long long started_us;
    bool identity_from_headers; /* RFC 9440: the answer must not be cached */
    const char *client_subject;
};

/* ---- resets.c: HTTP/2 rapid reset ---- */
#define EDGE_RESET_SLOTS 64
struct reset_count {
    uint64_t conn_id;                /* h2o's connection id; 0: free */
    long long window_start_ms;
    unsigned count;
    bool closed;
};
struct edge_resets {
    struct reset_count slots[EDGE_RESET_SLOTS];
};
/* On the loop, when req is disposed of while its job is pending (the
 * client reset the stream or went away); may close req's connection. */
void edge_resets_note(struct edge_loop *loop, h2o_req_t *req);

/* ---- server.c ---- */
struct edge_listen {
    struct edge_loop *loop;
    h2o_accept_ctx_t *accept;
    const struct config_listener *config;
};

/* h2o takes its limits from a context's globalconf: one context per
 * listener, so that each listener refuses bodies over its own routes' limit
 * before buffering them. Both contexts run on the loop's one event loop. */
struct edge_context {
    h2o_context_t h2o;
    struct edge_loop *loop;
};

struct edge_loop {
    struct edge *edge;
    unsigned index;
    pthread_t thread;
    struct edge_context ctx[2];      /* [0] device, [1] management; [0] takes the receivers */
    h2o_accept_ctx_t accept[2];      /* [0] device, [1] management */
    h2o_socket_t *listeners[2];
    struct edge_listen listen[2];
    h2o_multithread_receiver_t replies;
    h2o_multithread_receiver_t control;
    h2o_multithread_message_t stop_message;
    atomic_bool stop_accepting;
    atomic_bool exit;
    unsigned long long requests;
    struct edge_resets resets;
};

struct edge {
    const struct config *cfg;
    h2o_globalconf_t globalconf[2];  /* [0] device, [1] management */
    h2o_hostconf_t *hosts[2][2];
    SSL_CTX *ssl_ctx;
    int listen_fd[2];
    struct edge_loop *loops;
    unsigned loop_count;
    struct runtime *runtime;         /* runs the jobs (main.c starts and stops it) */
    edge_cert_subject *cert_subject; /* edge_services' */
    atomic_long in_flight;           /* handed to the job threads, not yet answered */
    atomic_bool stopping;
    unsigned boot_id;
};

/* ---- tls.c ---- */
SSL_CTX *edge_tls_context(const struct config *cfg, struct masad_error *err);
/* The TLS session behind a request, or NULL (plain or not ours). */
SSL *edge_tls_session(h2o_req_t *req, SSL_CTX *expected);
/* The client certificate chain, leaf first, twice in `a`: as DER copies
 * (der) and as the X509s the handshake decoded (x509: references released
 * with `a`). Returns their count; 0 (and NULLs) without a certificate. */
size_t edge_client_chain(SSL *ssl, struct arena *a, struct der_cert **der,
                         struct x509_st *const **x509);
/* X509_free for arena_defer */
void edge_release_x509(void *x);
/* The leaf's subject (edge->cert_subject) in `a`, or NULL. */
const char *edge_client_subject(const struct edge *edge, SSL *ssl, struct arena *a);

/* ---- proxy.c ---- */
bool edge_proxy_line_seen(h2o_req_t *req);
/* RFC 9440 §2: the chain from Client-Cert and Client-Cert-Chain, as DER
 * (out) and decoded (x509), both in `a`. 1 when the headers gave a chain, 0
 * when absent, -1 when malformed. */
int edge_client_cert_headers(h2o_req_t *req, struct arena *a, struct der_cert **out,
                             struct x509_st *const **x509, size_t *count);

/* ---- handler.c ---- */
h2o_handler_t *edge_handler_register(h2o_pathconf_t *pathconf, enum listener_kind listener);
void edge_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

/* inline routes */
void edge_healthz(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a);
void edge_readyz(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a);
void edge_metrics(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a);
void edge_host_meta(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a);
void edge_openapi(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a);

/* Registers each route's (name, method) as its metrics labels. */
void route_metrics_init(void);

#endif
