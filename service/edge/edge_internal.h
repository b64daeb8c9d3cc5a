#ifndef MASAD_EDGE_INTERNAL_H
#define MASAD_EDGE_INTERNAL_H
/* Folder-private to edge/. */
#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "common/request.h"
#include "edge/edge.h"

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

/* ---- jobs.c: the bounded queue and the job threads ---- */
struct job {
    struct job *next;
    h2o_multithread_message_t message;
    struct edge_loop *loop;
    h2o_req_t *req;             /* NULL once the client has gone */
    atomic_bool client_gone;    /* the same, for the job threads: drop the job */
    struct job **req_slot;      /* in req->pool; cleared when answered */
    unsigned route;
    long long started_us;
    bool identity_from_headers; /* RFC 9440: the answer must not be cached */
    struct arena *arena;        /* request copies and the response */
    const char *client_subject;
    struct masad_request request;
    struct masad_response response;
};

struct readiness {
    _Atomic long long probed_at_ms;   /* monotonic; 0: never */
    atomic_bool db_ok;
    atomic_bool hsm_ok;
    _Atomic long long claimed_at_ms;  /* a thread has taken the next probe */
    atomic_int reported;              /* the last state logged: enum readiness_state */
};

enum readiness_state {
    READINESS_UNKNOWN, READINESS_READY, READINESS_STALE, READINESS_NO_DATABASE, READINESS_NO_SIGNER
};
/* Logs a change of readiness once: a loss with why (may be NULL), then its
 * recovery. Any thread. */
void edge_readiness_report(struct readiness *r, enum readiness_state state, const char *why);

struct job_pool;
struct job_pool *jobs_start(const struct config *cfg, struct crypto_signer *signer,
                            const struct crypto_anchors *idevid, const struct ly_ctx *yang,
                            struct readiness *ready, struct masad_error *err);
/* 0 when queued; -1 when the queue is full. */
int jobs_push(struct job_pool *p, struct job *j);
long jobs_queue_depth(struct job_pool *p);
/* The number of job threads running one job longer than
 * service/job-time-limit, and in why the reason of the last one. Logs each
 * such job once (route and request id). Any thread may call it. */
int jobs_overdue(struct job_pool *p, char *why, size_t why_len);
/* Closes the queue and joins the threads that finish within timeout_ms. */
void jobs_stop(struct job_pool *p, long timeout_ms);
/* Sends a finished job back to its loop (called by job threads). */
void edge_job_done(struct job *j);

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
    struct job_pool *jobs;
    struct readiness ready;
    atomic_long in_flight;           /* handed to the job threads, not yet answered */
    atomic_bool stopping;
    unsigned boot_id;
};

long long edge_now_us(void);
long long edge_now_ms(void);

/* ---- tls.c ---- */
SSL_CTX *edge_tls_context(const struct config *cfg, struct masad_error *err);
/* The TLS session behind a request, or NULL (plain or not ours). */
SSL *edge_tls_session(h2o_req_t *req, SSL_CTX *expected);
/* The client certificate chain as DER copies in `a`, leaf first. */
size_t edge_client_chain(SSL *ssl, struct arena *a, struct der_cert **out);
/* The leaf's subject as an RFC 2253 string in `a`, or NULL. */
const char *edge_client_subject(SSL *ssl, struct arena *a);

/* ---- proxy.c ---- */
bool edge_proxy_line_seen(h2o_req_t *req);
int edge_client_cert_headers(h2o_req_t *req, struct arena *a, struct der_cert **out, size_t *count);

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

/* ---- test_routes.c (test builds only) ---- */
#ifdef MASAD_TEST_ROUTES
void test_identity(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_echo(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_sleep(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_db(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_log(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_sign(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
#endif

#endif
