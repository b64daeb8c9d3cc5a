#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/embedded.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/net.h"
#include "edge/edge_internal.h"

struct edge_handler {
    h2o_handler_t super;
    enum listener_kind listener;
};

static struct edge_loop *loop_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(struct edge_context, h2o, req->conn->ctx)->loop;
}

static const char *listener_name(enum listener_kind l)
{
    return l == LISTENER_DEVICE ? "device" : "management";
}

static const char *peer_address(h2o_req_t *req, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    buf[0] = '\0';
    if (n && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
    else if (n && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)len);
    return buf;
}

static size_t path_length(const h2o_req_t *req)
{
    return req->query_at != SIZE_MAX ? req->query_at : req->path.len;
}


static bool has_header(const struct masad_response *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return true;
    return false;
}

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base,
                          v.len);
}

static void free_arena(void *p)
{
    arena_free(*(struct arena **)p);
}

/* The body without a copy: `owner` (which holds it) becomes the request's
 * and is freed when h2o disposes of the request, which is after its last
 * byte was written (HTTP/1.1) or framed (HTTP/2, even when flow control
 * delays it). A HEAD request gets no body (RFC 9110 §9.3.2), as
 * h2o_send_inline does. */
static void send_body_of(h2o_req_t *req, const struct masad_response *r, struct arena *owner)
{
    static h2o_generator_t generator = {NULL, NULL};
    struct arena **held = h2o_mem_alloc_shared(&req->pool, sizeof(*held), free_arena);
    *held = owner;
    h2o_iovec_t body = h2o_iovec_init(r->body, r->body_len);
    bool head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, head || !r->body_len ? 0 : 1, H2O_SEND_STATE_FINAL);
}

/* Every answer leaves through here: headers, body, access log, metrics.
 * owner NULL: h2o copies the body (small answers of the loop's own);
 * else the body lives in owner, which this takes (send_body_of). */
static void send_answer(h2o_req_t *req, const struct edge_answer *a, const struct masad_response *r,
                        struct arena *owner)
{
    req->res.status = r->status;
    req->res.reason = http_reason(r->status);
    if (r->content_type)
        add_header(req, "content-type", r->content_type);
    for (size_t i = 0; i < r->header_count; i++)
        add_header(req, r->headers[i].name, r->headers[i].value);
    if (r->status == 503 && !has_header(r, "retry-after")) { /* RFC 9110 §10.2.3 */
        char retry[16];
        snprintf(retry, sizeof(retry), "%u", loop_of(req)->edge->cfg->retry_after);
        add_header(req, "retry-after", retry);
    }
    add_header(req, "x-request-id", a->request_id);
    long long us = clock_monotonic_us() - a->started_us;
    char peer[INET6_ADDRSTRLEN];
    struct access_entry e = {
        a->request_id, listener_name(a->listener), NULL, req->path.base, path_length(req),
        req->version >= 0x200 ? "HTTP/2" : "HTTP/1.1", r->status, r->body_len, us,
        a->client_subject, peer_address(req, peer, sizeof(peer)), a->trace_id};
    char method[16];
    snprintf(method, sizeof(method), "%.*s", (int)req->method.len, req->method.base);
    e.method = method;
    log_access(&e);
    metrics_request(a->route, r->status, us);
    /* without a length h2o 2.2 chunks only 200s and closes the connection
     * after any other status */
    req->res.content_length = r->body_len;
    if (owner)
        send_body_of(req, r, owner);
    else
        h2o_send_inline(req, (const char *)r->body, r->body_len);
}

static void answer_error(h2o_req_t *req, const struct edge_answer *a, enum error_style style,
                         int status, const char *detail, const char *header, const char *value)
{
    struct arena *ar = arena_new();
    struct masad_response r;
    memset(&r, 0, sizeof(r));
    if (style == ERRORS_PROBLEM)
        response_problem(&r, ar, status, detail);
    else
        response_text(&r, ar, status, detail);
    if (header)
        response_add_header(&r, header, value);
    send_answer(req, a, &r, NULL);
    arena_free(ar);
}

static const char *find_header(h2o_req_t *req, const h2o_token_t *token, struct arena *a)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    if (i < 0)
        return NULL;
    return arena_strndup(a, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

static const struct config_listener *listener_config(const struct edge *edge,
                                                     enum listener_kind listener)
{
    return listener == LISTENER_DEVICE ? &edge->cfg->device : &edge->cfg->management;
}

/* RFC 9440: from a trusted proxy, the client certificate it forwarded
 * replaces the connection's own; from anyone else it is ignored and logged.
 * -1: a trusted proxy sent malformed headers. */
static int client_identity(struct job *j, h2o_req_t *req, SSL *ssl)
{
    struct masad_request *r = &j->run.request;
    struct der_cert *chain;
    r->client_chain_len = edge_client_chain(ssl, j->run.arena, &chain, &r->client_x509);
    r->client_chain = chain;
    const struct config_listener *l = listener_config(j->loop->edge, r->listener);
    if (!l->client_cert_headers)
        return 0;
    struct sockaddr_storage ss;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    bool trusted = n && net_prefix_match(l->cert_proxies, l->cert_proxy_count, (struct sockaddr *)&ss);
    size_t count;
    struct x509_st *const *decoded;
    int rc = edge_client_cert_headers(req, j->run.arena, &chain, &decoded, &count);
    if (rc != 0 && !trusted) {
        log_warn("client certificate headers from %s ignored: not a trusted proxy", r->peer);
        return 0;
    }
    if (rc == 1) {
        r->client_chain = chain;
        r->client_x509 = decoded;
        r->client_chain_len = count;
        j->identity_from_headers = true;
    }
    return rc < 0 ? -1 : 0;
}

static void copy_request(struct job *j, h2o_req_t *req, enum listener_kind listener)
{
    struct arena *a = j->run.arena;
    struct masad_request *r = &j->run.request;
    r->listener = listener;
    r->method = arena_strndup(a, req->method.base, req->method.len);
    r->path = arena_strndup(a, req->path.base, path_length(req));
    r->query = req->query_at != SIZE_MAX
                   ? arena_strndup(a, req->path.base + req->query_at + 1,
                                   req->path.len - req->query_at - 1)
                   : NULL;
    r->content_type = find_header(req, H2O_TOKEN_CONTENT_TYPE, a);
    r->accept = find_header(req, H2O_TOKEN_ACCEPT, a);
    r->authorization = find_header(req, H2O_TOKEN_AUTHORIZATION, a);
    r->if_match = find_header(req, H2O_TOKEN_IF_MATCH, a);
    r->accept_encoding = find_header(req, H2O_TOKEN_ACCEPT_ENCODING, a);
    if (req->entity.base) {
        r->body = arena_memdup(a, req->entity.base, req->entity.len);
        r->body_len = req->entity.len;
    }
    char peer[INET6_ADDRSTRLEN];
    r->peer = arena_strdup(a, peer_address(req, peer, sizeof(peer)));
    r->http_version = req->version;
    route_params(&edge_routes[j->route], req->path.base, path_length(req), a, r);
}

static void job_done(struct runtime_job *run);

static void on_req_disposed(void *p)
{
    struct job **slot = p;
    struct job *j = *slot;
    if (!j)
        return;
    edge_resets_note(j->loop, j->req);
    j->req = NULL;
    atomic_store(&j->run.cancelled, true);
}

static void hand_off(struct edge_loop *loop, h2o_req_t *req, struct edge_answer *a, SSL *ssl,
                     struct arena *ar, enum error_style style)
{
    const struct route *route = &edge_routes[a->route];
    struct job *j = arena_alloc(ar, sizeof(*j));
    j->run.handler = route->handler;
    j->run.name = route->name;
    j->run.method = route->method;
    j->run.arena = ar;
    atomic_init(&j->run.cancelled, false);
    j->run.done = job_done;
    j->loop = loop;
    j->req = req;
    j->route = a->route;
    j->started_us = a->started_us;
    j->run.request.request_id = a->request_id;
    j->run.request.trace_id = a->trace_id;
    j->client_subject = a->client_subject;
    copy_request(j, req, a->listener);
    if (client_identity(j, req, ssl) != 0) {
        answer_error(req, a, style, 400, "malformed Client-Cert or Client-Cert-Chain header (RFC 9440)",
                     NULL, NULL);
        arena_free(ar);
        return;
    }
    j->req_slot = h2o_mem_alloc_shared(&req->pool, sizeof(*j->req_slot), on_req_disposed);
    *j->req_slot = j;
    atomic_fetch_add(&loop->edge->in_flight, 1);
    if (runtime_push(loop->edge->runtime, &j->run) != 0) {
        *j->req_slot = NULL;
        atomic_fetch_sub(&loop->edge->in_flight, 1);
        metrics_queue_rejected();
        answer_error(req, a, style, 503, "the service is busy: retry later", NULL, NULL);
        arena_free(ar);
    }
}

/* A header's value (name in lower case) when the request has exactly one
 * such field; else empty. */
static h2o_iovec_t single_header(h2o_req_t *req, const char *name)
{
    size_t n = strlen(name);
    ssize_t i = h2o_find_header_by_str(&req->headers, name, n, -1);
    if (i < 0 || h2o_find_header_by_str(&req->headers, name, n, i) >= 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

/* The client's X-Request-Id when it is 1-128 of [A-Za-z0-9._:-] (so that it
 * is safe in logs and headers), else one of ours. */
static const char *request_id(struct edge_loop *loop, h2o_req_t *req, struct arena *ar)
{
    h2o_iovec_t v = single_header(req, "x-request-id");
    bool ok = v.len >= 1 && v.len <= 128;
    for (size_t i = 0; ok && i < v.len; i++)
        ok = isalnum((unsigned char)v.base[i]) || (v.base[i] && strchr("._:-", v.base[i]));
    if (ok)
        return arena_strndup(ar, v.base, v.len);
    return arena_printf(ar, "%08x%02x%010llx", loop->edge->boot_id, loop->index, ++loop->requests);
}

static bool lower_hex(const char *s, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
        *all_zero = *all_zero && s[i] == '0';
    }
    return true;
}

/* W3C Trace Context §3.2: version "-" trace-id "-" parent-id "-" flags, in
 * lower-case hex; version ff, an all-zero trace-id or parent-id, and a
 * version 00 header of any other length are invalid. A later version may
 * append fields after a "-". The trace-id, or NULL. */
static const char *trace_id(h2o_req_t *req, struct arena *ar)
{
    h2o_iovec_t v = single_header(req, "traceparent");
    const char *s = v.base;
    bool zero, trace_zero, parent_zero;
    if (v.len < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || !lower_hex(s, 2, &zero) ||
        !strncmp(s, "ff", 2) || !lower_hex(s + 3, 32, &trace_zero) ||
        !lower_hex(s + 36, 16, &parent_zero) || !lower_hex(s + 53, 2, &zero) || trace_zero ||
        parent_zero)
        return NULL;
    if (v.len > 55 && (!strncmp(s, "00", 2) || s[55] != '-'))
        return NULL;
    return arena_strndup(ar, s + 3, 32);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct edge_handler *h = (struct edge_handler *)self;
    struct edge_loop *loop = loop_of(req);
    struct edge *edge = loop->edge;
    struct arena *ar = arena_new();
    SSL *ssl = edge_tls_session(req, edge->ssl_ctx);
    struct edge_answer a = {ROUTE_UNMATCHED, clock_monotonic_us(), request_id(loop, req, ar),
                            edge_client_subject(edge, ssl, ar), h->listener, trace_id(req, ar)};
    log_set_request(a.request_id, a.trace_id);
    char allow[64];
    int found = route_find(h->listener, req->method.base, req->method.len, req->path.base,
                           path_length(req), allow, sizeof(allow));
    /* Issue 10: the device listener faces the internet; it serves /metrics
     * only when the configuration says so */
    if (found >= 0 && edge_routes[found].on_loop == edge_metrics &&
        h->listener == LISTENER_DEVICE && !edge->cfg->device_metrics)
        found = -1, allow[0] = '\0';
    if (found < 0) {
        enum error_style style = h->listener == LISTENER_MANAGEMENT ? ERRORS_PROBLEM : ERRORS_PLAIN;
        if (allow[0])
            answer_error(req, &a, style, 405, "method not allowed", "allow", allow);
        else
            answer_error(req, &a, style, 404, "no such resource", NULL, NULL);
        arena_free(ar);
        log_set_request(NULL, NULL);
        return 0;
    }
    a.route = (unsigned)found;
    const struct route *route = &edge_routes[found];
    if (listener_config(edge, h->listener)->proxy_protocol && !edge_proxy_line_seen(req)) {
        /* h2o lets a connection without its PROXY line through: masad does not */
        req->http1_is_persistent = 0;
        answer_error(req, &a, route->errors, 400,
                     "this listener takes connections through its load balancer only (PROXY "
                     "protocol v1)", NULL, NULL);
    } else if (req->entity.len > route->max_body)
        answer_error(req, &a, route->errors, 413, "the request body is too large", NULL, NULL);
    else if (route->on_loop)
        route->on_loop(loop, req, &a);
    else if (atomic_load(&edge->stopping))
        answer_error(req, &a, route->errors, 503, "the service is shutting down", "retry-after", "1");
    else {
        hand_off(loop, req, &a, ssl, ar, route->errors);
        ar = NULL; /* the arena now belongs to the job (or was freed) */
    }
    arena_free(ar);
    log_set_request(NULL, NULL);
    return 0;
}

h2o_handler_t *edge_handler_register(h2o_pathconf_t *pathconf, enum listener_kind listener)
{
    struct edge_handler *h = (struct edge_handler *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->listener = listener;
    return &h->super;
}

void edge_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        struct job *j = H2O_STRUCT_FROM_MEMBER(struct job, message, m);
        atomic_fetch_sub(&j->loop->edge->in_flight, 1);
        if (!j->req) {
            arena_free(j->run.arena);
            continue;
        }
        *j->req_slot = NULL;
        if (j->identity_from_headers) /* RFC 9440 §3: never serve it to another client */
            response_add_header(&j->run.response, "cache-control", "no-store");
        struct masad_request *r = &j->run.request;
        struct edge_answer a = {j->route, j->started_us, r->request_id, j->client_subject,
                                r->listener, r->trace_id};
        /* the job (in its own arena) and the body the handler left there go
         * to the request: h2o sends the body from where the handler wrote it */
        send_answer(j->req, &a, &j->run.response, j->run.arena);
    }
}

/* RFC 9110 §12.5.3: gzip is acceptable when listed (or covered by "*")
 * with a non-zero weight; "gzip;q=0" refuses it even beside "*". */
static bool accepts_gzip(const char *value)
{
    double gzip_q = -1, any_q = -1;
    for (const char *p = value; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        snprintf(item, sizeof(item), "%.*s", (int)(len < sizeof(item) ? len : sizeof(item) - 1), p);
        char *name = item + strspn(item, " \t");
        size_t name_len = strcspn(name, " \t;");
        double q = 1;
        const char *weight = strstr(name + name_len, "q=");
        if (weight)
            q = strtod(weight + 2, NULL);
        if (name_len == 4 && !strncasecmp(name, "gzip", 4))
            gzip_q = q;
        else if (name_len == 1 && name[0] == '*')
            any_q = q;
        p = end ? end + 1 : NULL;
    }
    return gzip_q >= 0 ? gzip_q > 0 : any_q > 0;
}

/* Replaces the body with its gzip encoding (h2o's own compressor, on this
 * job thread so that the loop never compresses). */
static void gzip_body(struct job *j)
{
    struct masad_response *r = &j->run.response;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_compress_context_t *z = h2o_compress_gzip_open(&pool, 1);
    h2o_iovec_t in = h2o_iovec_init(r->body, r->body_len), *out;
    size_t count, total = 0;
    z->transform(z, &in, 1, H2O_SEND_STATE_FINAL, &out, &count);
    for (size_t i = 0; i < count; i++)
        total += out[i].len;
    unsigned char *body = arena_alloc(j->run.arena, total ? total : 1);
    for (size_t i = 0, at = 0; i < count; at += out[i].len, i++)
        memcpy(body + at, out[i].base, out[i].len);
    h2o_mem_clear_pool(&pool);
    r->body = body;
    r->body_len = total;
    response_add_header(r, "content-encoding", "gzip");
}

/* runtime_job.done, on the job thread: back to the loop that owns req. */
static void job_done(struct runtime_job *run)
{
    struct job *j = H2O_STRUCT_FROM_MEMBER(struct job, run, run);
    struct masad_response *r = &run->response;
    if (r->compressible && r->status == 200) {
        response_add_header(r, "vary", "accept-encoding");
        if (r->body_len && run->request.accept_encoding && accepts_gzip(run->request.accept_encoding))
            gzip_body(j);
    }
    h2o_multithread_send_message(&j->loop->replies, &j->message);
}

/* ---- routes answered on the loop ---- */

static void answer_inline(h2o_req_t *req, const struct edge_answer *a, int status,
                          const char *content_type, const char *body, size_t len)
{
    struct masad_response r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.content_type = content_type;
    r.body = (const unsigned char *)body;
    r.body_len = len;
    send_answer(req, a, &r, NULL);
}

/* Liveness: a job stuck past service/job-time-limit (a handler that never
 * returns) fails it, so that the orchestrator restarts the replica. */
void edge_healthz(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a)
{
    char why[256], body[300];
    if (runtime_overdue(loop->edge->runtime, why, sizeof(why)) > 0) {
        int n = snprintf(body, sizeof(body), "not alive: %s\n", why);
        answer_inline(req, a, 503, "text/plain; charset=utf-8", body,
                      n < (int)sizeof(body) ? (size_t)n : sizeof(body) - 1);
        return;
    }
    answer_inline(req, a, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

void edge_readyz(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a)
{
    const char *why = runtime_unready(loop->edge->runtime);
    if (!why) {
        answer_inline(req, a, 200, "text/plain; charset=utf-8", "ready\n", 6);
        return;
    }
    char body[160];
    int n = snprintf(body, sizeof(body), "not ready: %s\n", why);
    answer_inline(req, a, 503, "text/plain; charset=utf-8", body,
                  n < (int)sizeof(body) ? (size_t)n : sizeof(body) - 1);
}

void edge_metrics(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a)
{
    struct arena *ar = arena_new();
    struct metrics_gauges g = {runtime_queue_depth(loop->edge->runtime),
                               atomic_load(&loop->edge->in_flight)};
    size_t len;
    char *text = metrics_render(ar, &g, &len);
    answer_inline(req, a, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    arena_free(ar);
}

/* RFC 8040 §3.1: where the RESTCONF root is (RFC 6415 host-meta) */
void edge_host_meta(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a)
{
    static const char xrd[] = "<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n"
                              "  <Link rel='restconf' href='/restconf'/>\n"
                              "</XRD>\n";
    (void)loop;
    answer_inline(req, a, 200, "application/xrd+xml", xrd, sizeof(xrd) - 1);
}

/* Issue 13: the management API's own OpenAPI document, carried in the
 * binary (docs/openapi.json), for client generators; no token needed. */
void edge_openapi(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a)
{
    (void)loop;
    const struct embedded_file *doc = &embedded_docs[0];
    answer_inline(req, a, 200, "application/json", (const char *)doc->data, doc->len);
}
