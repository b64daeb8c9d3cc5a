#include "common/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"

static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))
#define STATUSES 500 /* 100..599 */

struct route_metrics {
    _Atomic unsigned long long by_status[STATUSES];
    _Atomic unsigned long long buckets[BUCKETS + 1]; /* last: +Inf */
    _Atomic unsigned long long sum_us;
    _Atomic unsigned long long count;
};

static struct route_metrics *routes;
static const char *const *route_names;
static size_t route_count;
static _Atomic unsigned long long db_reconnects;
static _Atomic unsigned long long queue_rejections;
static _Atomic unsigned long long jobs_dropped;
static _Atomic unsigned long long reset_flood_closes;

void metrics_init(const char *const *names, size_t count)
{
    if (count > METRICS_MAX_ROUTES)
        count = METRICS_MAX_ROUTES;
    free(routes);
    routes = calloc(count ? count : 1, sizeof(*routes));
    if (!routes)
        abort();
    route_names = names;
    route_count = count;
}

void metrics_request(unsigned route, int status, long long microseconds)
{
    if (route >= route_count || !routes)
        return;
    struct route_metrics *m = &routes[route];
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&m->by_status[status - 100], 1, memory_order_relaxed);
    size_t b = 0;
    double seconds = (double)microseconds / 1e6;
    while (b < BUCKETS && seconds > bucket_bounds[b])
        b++;
    atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->sum_us, (unsigned long long)microseconds, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

void metrics_db_reconnect(void)
{
    atomic_fetch_add_explicit(&db_reconnects, 1, memory_order_relaxed);
}

void metrics_queue_rejected(void)
{
    atomic_fetch_add_explicit(&queue_rejections, 1, memory_order_relaxed);
}

void metrics_job_dropped(void)
{
    atomic_fetch_add_explicit(&jobs_dropped, 1, memory_order_relaxed);
}

void metrics_reset_flood_closed(void)
{
    atomic_fetch_add_explicit(&reset_flood_closes, 1, memory_order_relaxed);
}

struct text {
    char *buf;
    size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)(n > 0 ? n : 0);
        t->buf = realloc(t->buf, t->cap);
        if (!t->buf)
            abort();
    }
}

static void render_requests(struct text *t)
{
    put(t, "# HELP masad_http_requests_total Requests answered, by route and status.\n"
           "# TYPE masad_http_requests_total counter\n");
    for (size_t r = 0; r < route_count; r++)
        for (int s = 0; s < STATUSES; s++) {
            unsigned long long v = atomic_load_explicit(&routes[r].by_status[s], memory_order_relaxed);
            if (v)
                put(t, "masad_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    route_names[r], s + 100, v);
        }
}

static void render_latency(struct text *t)
{
    put(t, "# HELP masad_http_request_duration_seconds Time from a request's arrival to its answer.\n"
           "# TYPE masad_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < route_count; r++) {
        unsigned long long count = atomic_load_explicit(&routes[r].count, memory_order_relaxed);
        if (!count)
            continue;
        unsigned long long cumulative = 0;
        for (size_t b = 0; b <= BUCKETS; b++) {
            cumulative += atomic_load_explicit(&routes[r].buckets[b], memory_order_relaxed);
            if (b < BUCKETS)
                put(t, "masad_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    route_names[r], bucket_bounds[b], cumulative);
            else
                put(t, "masad_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                    route_names[r], cumulative);
        }
        put(t, "masad_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r],
            (double)atomic_load_explicit(&routes[r].sum_us, memory_order_relaxed) / 1e6);
        put(t, "masad_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_names[r],
            cumulative);
    }
}

char *metrics_render(struct arena *a, const struct metrics_gauges *g, size_t *len)
{
    struct text t = {malloc(8192), 0, 8192};
    if (!t.buf)
        abort();
    render_requests(&t);
    render_latency(&t);
    put(&t,
        "# HELP masad_queue_depth Requests waiting for a job thread.\n"
        "# TYPE masad_queue_depth gauge\nmasad_queue_depth %ld\n"
        "# HELP masad_jobs_in_flight Requests handed to job threads and not yet answered.\n"
        "# TYPE masad_jobs_in_flight gauge\nmasad_jobs_in_flight %ld\n"
        "# HELP masad_queue_rejections_total Requests answered 503 because the queue was full.\n"
        "# TYPE masad_queue_rejections_total counter\nmasad_queue_rejections_total %llu\n"
        "# HELP masad_db_reconnects_total Database connections re-established after a loss.\n"
        "# TYPE masad_db_reconnects_total counter\nmasad_db_reconnects_total %llu\n",
        g->queue_depth, g->jobs_in_flight,
        atomic_load_explicit(&queue_rejections, memory_order_relaxed),
        atomic_load_explicit(&db_reconnects, memory_order_relaxed));
    put(&t,
        "# HELP masad_jobs_dropped_total Queued requests not run because their client had gone.\n"
        "# TYPE masad_jobs_dropped_total counter\nmasad_jobs_dropped_total %llu\n"
        "# HELP masad_http2_reset_flood_closes_total HTTP/2 connections closed for resetting too "
        "many pending requests.\n"
        "# TYPE masad_http2_reset_flood_closes_total counter\n"
        "masad_http2_reset_flood_closes_total %llu\n",
        atomic_load_explicit(&jobs_dropped, memory_order_relaxed),
        atomic_load_explicit(&reset_flood_closes, memory_order_relaxed));
    char *out = arena_strndup(a, t.buf, t.len);
    *len = t.len;
    free(t.buf);
    return out;
}
