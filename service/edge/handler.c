#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

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


/* Every answer leaves through here: headers, body, access log, metrics. */
static void send_answer(h2o_req_t *req, const struct edge_answer *a, const struct masad_response *r)
{
    req->res.status = r->status;
    req->res.reason = http_reason(r->status);
    if (r->content_type) {
        h2o_iovec_t ct = h2o_strdup(&req->pool, r->content_type, SIZE_MAX);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ct.base, ct.len);
    }
    for (size_t i = 0; i < r->header_count; i++) {
        h2o_iovec_t v = h2o_strdup(&req->pool, r->headers[i].value, SIZE_MAX);
        h2o_add_header_by_str(&req->pool, &req->res.headers, r->headers[i].name,
                              strlen(r->headers[i].name), 1, NULL, v.base, v.len);
    }
    h2o_iovec_t id = h2o_strdup(&req->pool, a->request_id, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          id.base, id.len);
    long long us = edge_now_us() - a->started_us;
    char peer[INET6_ADDRSTRLEN];
    struct access_entry e = {
        a->request_id, listener_name(a->listener), NULL, req->path.base, path_length(req),
        req->version >= 0x200 ? "HTTP/2" : "HTTP/1.1", r->status, r->body_len, us,
        a->client_subject, peer_address(req, peer, sizeof(peer))};
    char method[16];
    snprintf(method, sizeof(method), "%.*s", (int)req->method.len, req->method.base);
    e.method = method;
    log_access(&e);
    metrics_request(a->route, r->status, us);
    /* without a length h2o 2.2 chunks only 200s and closes the connection
     * after any other status */
    req->res.content_length = r->body_len;
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
    send_answer(req, a, &r);
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
    struct masad_request *r = &j->request;
    struct der_cert *chain;
    r->client_chain_len = edge_client_chain(ssl, j->arena, &chain);
    r->client_chain = chain;
    const struct config_listener *l = listener_config(j->loop->edge, r->listener);
    if (!l->client_cert_headers)
        return 0;
    struct sockaddr_storage ss;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    bool trusted = n && net_prefix_match(l->cert_proxies, l->cert_proxy_count, (struct sockaddr *)&ss);
    size_t count;
    int rc = edge_client_cert_headers(req, j->arena, &chain, &count);
    if (rc != 0 && !trusted) {
        log_warn("client certificate headers from %s ignored: not a trusted proxy", r->peer);
        return 0;
    }
    if (rc == 1) {
        r->client_chain = chain;
        r->client_chain_len = count;
        j->identity_from_headers = true;
    }
    return rc < 0 ? -1 : 0;
}

static void copy_request(struct job *j, h2o_req_t *req, enum listener_kind listener)
{
    struct arena *a = j->arena;
    struct masad_request *r = &j->request;
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
    if (req->entity.base) {
        r->body = arena_memdup(a, req->entity.base, req->entity.len);
        r->body_len = req->entity.len;
    }
    char peer[INET6_ADDRSTRLEN];
    r->peer = arena_strdup(a, peer_address(req, peer, sizeof(peer)));
    r->http_version = req->version;
    route_params(&edge_routes[j->route], req->path.base, path_length(req), a, r);
}

static void on_req_disposed(void *p)
{
    struct job **slot = p;
    struct job *j = *slot;
    if (!j)
        return;
    edge_resets_note(j->loop, j->req);
    j->req = NULL;
    atomic_store(&j->client_gone, true);
}

static void hand_off(struct edge_loop *loop, h2o_req_t *req, struct edge_answer *a, SSL *ssl,
                     struct arena *ar, enum error_style style)
{
    struct job *j = arena_alloc(ar, sizeof(*j));
    j->arena = ar;
    j->loop = loop;
    j->req = req;
    atomic_init(&j->client_gone, false);
    j->route = a->route;
    j->started_us = a->started_us;
    j->request.request_id = a->request_id;
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
    if (jobs_push(loop->edge->jobs, j) != 0) {
        *j->req_slot = NULL;
        atomic_fetch_sub(&loop->edge->in_flight, 1);
        metrics_queue_rejected();
        char retry[16];
        snprintf(retry, sizeof(retry), "%u", loop->edge->cfg->retry_after);
        answer_error(req, a, style, 503, "the service is busy: retry later", "retry-after", retry);
        arena_free(ar);
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct edge_handler *h = (struct edge_handler *)self;
    struct edge_loop *loop = loop_of(req);
    struct edge *edge = loop->edge;
    struct arena *ar = arena_new();
    SSL *ssl = edge_tls_session(req, edge->ssl_ctx);
    struct edge_answer a = {ROUTE_UNMATCHED, edge_now_us(),
                            arena_printf(ar, "%08x%02x%010llx", edge->boot_id, loop->index,
                                         ++loop->requests),
                            edge_client_subject(ssl, ar), h->listener};
    char allow[64];
    int found = route_find(h->listener, req->method.base, req->method.len, req->path.base,
                           path_length(req), allow, sizeof(allow));
    if (found < 0) {
        enum error_style style = h->listener == LISTENER_MANAGEMENT ? ERRORS_PROBLEM : ERRORS_PLAIN;
        if (allow[0])
            answer_error(req, &a, style, 405, "method not allowed", "allow", allow);
        else
            answer_error(req, &a, style, 404, "no such resource", NULL, NULL);
        arena_free(ar);
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
        arena_free(ar);
        return 0;
    }
    if (req->entity.len > route->max_body)
        answer_error(req, &a, route->errors, 413, "the request body is too large", NULL, NULL);
    else if (route->on_loop)
        route->on_loop(loop, req, &a);
    else if (atomic_load(&edge->stopping))
        answer_error(req, &a, route->errors, 503, "the service is shutting down", "retry-after", "1");
    else {
        hand_off(loop, req, &a, ssl, ar, route->errors);
        return 0; /* the arena now belongs to the job (or was freed) */
    }
    arena_free(ar);
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
        if (j->req) {
            *j->req_slot = NULL;
            if (j->identity_from_headers) /* RFC 9440 §3: never serve it to another client */
                response_add_header(&j->response, "cache-control", "no-store");
            struct edge_answer a = {j->route, j->started_us, j->request.request_id, j->client_subject,
                               j->request.listener};
            send_answer(j->req, &a, &j->response);
        }
        arena_free(j->arena);
    }
}

void edge_job_done(struct job *j)
{
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
    send_answer(req, a, &r);
}

void edge_healthz(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a)
{
    (void)loop;
    answer_inline(req, a, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

void edge_readyz(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a)
{
    struct readiness *r = &loop->edge->ready;
    long long age = edge_now_ms() - atomic_load(&r->probed_at_ms);
    const char *why = NULL;
    if (!atomic_load(&r->probed_at_ms) || age > 1000)
        why = "not ready: no job thread has probed the database and the signing key in the last second\n";
    else if (!atomic_load(&r->db_ok))
        why = "not ready: the database is unavailable\n";
    else if (!atomic_load(&r->hsm_ok))
        why = "not ready: the signing key is unavailable\n";
    if (why)
        answer_inline(req, a, 503, "text/plain; charset=utf-8", why, strlen(why));
    else
        answer_inline(req, a, 200, "text/plain; charset=utf-8", "ready\n", 6);
}

void edge_metrics(struct edge_loop *loop, h2o_req_t *req, const struct edge_answer *a)
{
    struct arena *ar = arena_new();
    struct metrics_gauges g = {jobs_queue_depth(loop->edge->jobs),
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
