#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/net.h"
#include "edge/edge_internal.h"

#define LISTENER_INDEX(kind) ((kind) == LISTENER_DEVICE ? 0 : 1)

static int listen_on(const struct config_listener *l, struct masad_error *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    if (inet_pton(AF_INET6, l->address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(l->port);
        len = sizeof(*in6);
    } else if (inet_pton(AF_INET, l->address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(l->port);
        len = sizeof(*in4);
    } else
        return error_set(err, 500, "listen", "%s is not an IP address", l->address);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1, off = 0;
    if (fd < 0)
        return error_set(err, 500, "listen", "socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)); /* '::' takes IPv4 too */
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, SOMAXCONN) != 0) {
        error_set(err, 500, "listen", "cannot listen on [%s]:%u: %s", l->address, l->port,
                  strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Behind an L4 load balancer only its addresses may connect (they then
 * speak the PROXY protocol, which h2o reads before TLS). */
static bool source_allowed(const struct config_listener *l, h2o_socket_t *sock)
{
    if (!l->proxy_protocol)
        return true;
    /* the socket's own peer: h2o_socket_getpeername() would cache it, and a
     * cached peer is how a PROXY line is recognised later (proxy.c) */
    struct sockaddr_storage ss;
    socklen_t n = sizeof(ss);
    return getpeername(h2o_socket_get_fd(sock), (struct sockaddr *)&ss, &n) == 0 &&
           net_prefix_match(l->proxy_sources, l->proxy_source_count, (struct sockaddr *)&ss);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct edge_listen *listen = listener->data;
    if (err)
        return;
    /* a bounded burst, so that one busy listener cannot starve the loop */
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            break;
        if (!source_allowed(listen->config, sock)) {
            log_warn("connection to the %s listener refused: not from a trusted load balancer",
                     listen->config == &listen->loop->edge->cfg->device ? "device" : "management");
            h2o_socket_close(sock);
            continue;
        }
        h2o_accept(listen->accept, sock);
    }
}

static void close_listeners(struct edge_loop *loop)
{
    for (int i = 0; i < 2; i++)
        if (loop->listeners[i]) {
            h2o_socket_read_stop(loop->listeners[i]);
            h2o_socket_close(loop->listeners[i]);
            loop->listeners[i] = NULL;
        }
}

static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct edge_loop *loop = H2O_STRUCT_FROM_MEMBER(struct edge_loop, control, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (atomic_load(&loop->stop_accepting))
        close_listeners(loop);
}

static void *loop_thread(void *arg)
{
    struct edge_loop *loop = arg;
    struct edge *edge = loop->edge;
    h2o_evloop_t *evloop = h2o_evloop_create();
    for (int i = 0; i < 2; i++) {
        h2o_context_init(&loop->ctx[i].h2o, evloop, &edge->globalconf[i]);
        loop->ctx[i].loop = loop;
    }
    h2o_multithread_register_receiver(loop->ctx[0].h2o.queue, &loop->replies, edge_on_replies);
    h2o_multithread_register_receiver(loop->ctx[0].h2o.queue, &loop->control, on_control);
    for (int i = 0; i < 2; i++) {
        const struct config_listener *l = i == 0 ? &edge->cfg->device : &edge->cfg->management;
        loop->accept[i].ctx = &loop->ctx[i].h2o;
        loop->accept[i].hosts = edge->hosts[i];
        loop->accept[i].ssl_ctx = edge->ssl_ctx;
        loop->accept[i].expect_proxy_line = l->proxy_protocol;
        loop->listen[i] = (struct edge_listen){loop, &loop->accept[i], l};
        int fd = dup(edge->listen_fd[i]);
        loop->listeners[i] = h2o_evloop_socket_create(evloop, fd, H2O_SOCKET_FLAG_DONT_READ);
        loop->listeners[i]->data = &loop->listen[i];
        h2o_socket_read_start(loop->listeners[i], on_accept);
    }
    while (!atomic_load(&loop->exit))
        h2o_evloop_run(evloop, 100);
    /* let answers already queued on sockets go out */
    long long until = clock_monotonic_ms() + 200;
    while (clock_monotonic_ms() < until)
        h2o_evloop_run(evloop, 10);
    return NULL;
}

/* Wakes the loop; the control receiver runs only for a real message. */
static void send_control(struct edge_loop *loop, h2o_multithread_message_t *m)
{
    h2o_multithread_send_message(&loop->control, m);
}

static void setup_hosts(struct edge *edge)
{
    static const enum listener_kind kinds[2] = {LISTENER_DEVICE, LISTENER_MANAGEMENT};
    static const char *names[2] = {"device", "management"};
    for (int i = 0; i < 2; i++) {
        const struct config_listener *l = i == 0 ? &edge->cfg->device : &edge->cfg->management;
        h2o_globalconf_t *conf = &edge->globalconf[i];
        h2o_config_init(conf);
        /* h2o answers larger bodies itself (413 on HTTP/1.1, a reset stream
         * on HTTP/2) without reading them; smaller ones that exceed their
         * route's own limit get 413 in the route's format (handler.c) */
        conf->max_request_entity_size = route_max_body(kinds[i]);
        conf->server_name = h2o_iovec_init(H2O_STRLIT("masad"));
        h2o_hostconf_t *host = h2o_config_register_host(
            conf, h2o_iovec_init(names[i], strlen(names[i])), l->port);
        edge_handler_register(h2o_config_register_path(host, "/", 0), kinds[i]);
        edge->hosts[i][0] = host;
        edge->hosts[i][1] = NULL;
    }
}

static int start(struct edge *edge, struct masad_error *err)
{
    RAND_bytes((unsigned char *)&edge->boot_id, sizeof(edge->boot_id));
    route_metrics_init();
    if (!(edge->ssl_ctx = edge_tls_context(edge->cfg, err)))
        return -1;
    if ((edge->listen_fd[0] = listen_on(&edge->cfg->device, err)) < 0 ||
        (edge->listen_fd[1] = listen_on(&edge->cfg->management, err)) < 0)
        return -1;
    setup_hosts(edge);
    edge->loop_count = edge->cfg->event_loops;
    edge->loops = calloc(edge->loop_count, sizeof(*edge->loops));
    for (unsigned i = 0; i < edge->loop_count; i++) {
        edge->loops[i].edge = edge;
        edge->loops[i].index = i;
        if (pthread_create(&edge->loops[i].thread, NULL, loop_thread, &edge->loops[i]) != 0)
            return error_set(err, 500, "threads", "cannot start event loop %u", i);
    }
    log_info("serving devices on [%s]:%u and management on [%s]:%u "
             "(%u event loops, %u job threads, queue %u)",
             edge->cfg->device.address, edge->cfg->device.port, edge->cfg->management.address,
             edge->cfg->management.port, edge->loop_count, edge->cfg->job_threads,
             edge->cfg->queue_capacity);
    return 0;
}

/* SIGTERM: stop accepting, let accepted requests finish, then stop. */
static int drain_and_stop(struct edge *edge)
{
    atomic_store(&edge->stopping, true);
    for (unsigned i = 0; i < edge->loop_count; i++) {
        atomic_store(&edge->loops[i].stop_accepting, true);
        send_control(&edge->loops[i], &edge->loops[i].stop_message);
    }
    for (int i = 0; i < 2; i++)
        close(edge->listen_fd[i]);
    long long deadline = clock_monotonic_ms() + 1000LL * edge->cfg->shutdown_grace;
    while (atomic_load(&edge->in_flight) > 0 && clock_monotonic_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    long unanswered = atomic_load(&edge->in_flight);
    for (unsigned i = 0; i < edge->loop_count; i++) {
        atomic_store(&edge->loops[i].exit, true);
        send_control(&edge->loops[i], NULL); /* the loop checks `exit` when it wakes */
    }
    for (unsigned i = 0; i < edge->loop_count; i++)
        pthread_join(edge->loops[i].thread, NULL);
    if (unanswered) {
        log_warn("shutdown grace of %us ran out with %ld requests unanswered",
                 edge->cfg->shutdown_grace, unanswered);
        return 1;
    }
    log_info("stopped: every accepted request was answered");
    return 0;
}

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

void edge_block_signals(void)
{
    sigset_t set;
    stop_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int edge_serve(const struct config *cfg, const struct edge_services *services,
               struct masad_error *err)
{
    /* the loops inherit the mask (edge_block_signals, which the job threads
     * inherited too): only sigwait() below sees the signals */
    sigset_t stop;
    stop_signals(&stop);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* the edge lives until the process ends: h2o keeps connections pointing
     * into it, and they are not torn down one by one at exit */
    static struct edge edge;
    edge.cfg = cfg;
    edge.runtime = services->runtime;
    edge.cert_subject = services->cert_subject;
    edge.listen_fd[0] = edge.listen_fd[1] = -1;
    if (start(&edge, err) != 0)
        return -1;
    int sig = 0;
    sigwait(&stop, &sig);
    log_info("received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    return drain_and_stop(&edge);
}
