#include "common/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/arena.h"

#ifndef MASAD_BUILD_VERSION
#define MASAD_BUILD_VERSION "unknown"
#endif

static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))
#define STATUSES 500 /* 100..599 */

struct histogram {
    _Atomic unsigned long long buckets[BUCKETS + 1]; /* last: +Inf */
    _Atomic unsigned long long sum_us;
};

struct route_metrics {
    _Atomic unsigned long long by_status[STATUSES];
    struct histogram latency;
};

static struct route_metrics *routes;
static const char *const *route_names, *const *route_methods;
static size_t route_count;
static _Atomic unsigned long long db_reconnects;
static _Atomic unsigned long long queue_rejections;
static _Atomic unsigned long long jobs_dropped;
static _Atomic unsigned long long reset_flood_closes;

enum { PROTOCOL_BRSKI, PROTOCOL_SZTP, PROTOCOLS };
static const char *const protocol_names[PROTOCOLS] = {"brski", "sztp"};
static _Atomic unsigned long long vouchers[PROTOCOLS][STATUSES];

enum { KIND_REDIRECT, KIND_ONBOARDING, KIND_ERROR, KINDS };
static const char *const kind_names[KINDS] = {"redirect", "onboarding", "error"};
static _Atomic unsigned long long sztp_answers[KINDS][2]; /* [kind][signed] */

static struct histogram signer_latency;
/* when the newest checkpoint was made, in CLOCK_MONOTONIC seconds; 0: unknown */
static _Atomic long long checkpoint_made_at;

/* per job thread: bit 0 busy, bit 1 database connected; -1 unused */
static _Atomic int job_threads[METRICS_MAX_JOB_THREADS];
static atomic_uint job_thread_count;
static _Thread_local int job_thread_slot = -1;

static long long monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

void metrics_init(const char *const *names, const char *const *methods, size_t count)
{
    if (count > METRICS_MAX_ROUTES)
        count = METRICS_MAX_ROUTES;
    free(routes);
    routes = calloc(count ? count : 1, sizeof(*routes));
    if (!routes)
        abort();
    route_names = names;
    route_methods = methods;
    route_count = count;
}

static void observe(struct histogram *h, long long microseconds)
{
    size_t b = 0;
    double seconds = (double)microseconds / 1e6;
    while (b < BUCKETS && seconds > bucket_bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)microseconds, memory_order_relaxed);
}

void metrics_request(unsigned route, int status, long long microseconds)
{
    if (route >= route_count || !routes)
        return;
    struct route_metrics *m = &routes[route];
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&m->by_status[status - 100], 1, memory_order_relaxed);
    observe(&m->latency, microseconds);
}

void metrics_voucher(const char *protocol, int status)
{
    int p = strcmp(protocol, "sztp") ? PROTOCOL_BRSKI : PROTOCOL_SZTP;
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&vouchers[p][status - 100], 1, memory_order_relaxed);
}

void metrics_sztp_answer(const char *kind, bool is_signed)
{
    int k = KIND_ERROR;
    if (!strcmp(kind, "redirect"))
        k = KIND_REDIRECT;
    else if (!strcmp(kind, "onboarding"))
        k = KIND_ONBOARDING;
    atomic_fetch_add_explicit(&sztp_answers[k][is_signed], 1, memory_order_relaxed);
}

void metrics_signer(long long microseconds) { observe(&signer_latency, microseconds); }

void metrics_checkpoint_age(long long age_seconds)
{
    long long made = monotonic_seconds() - age_seconds;
    atomic_store(&checkpoint_made_at, made > 0 ? made : 1);
}

void metrics_job_thread_start(void)
{
    unsigned slot = atomic_fetch_add(&job_thread_count, 1);
    if (slot < METRICS_MAX_JOB_THREADS)
        job_thread_slot = (int)slot;
}

void metrics_job_thread_state(bool busy, bool db_connected)
{
    if (job_thread_slot >= 0)
        atomic_store(&job_threads[job_thread_slot], (busy ? 1 : 0) | (db_connected ? 2 : 0));
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
    put(t, "# HELP masad_http_requests_total Requests answered, by route, method and status.\n"
           "# TYPE masad_http_requests_total counter\n");
    for (size_t r = 0; r < route_count; r++)
        for (int s = 0; s < STATUSES; s++) {
            unsigned long long v = atomic_load_explicit(&routes[r].by_status[s], memory_order_relaxed);
            if (v)
                put(t, "masad_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                    route_names[r], route_methods[r], s + 100, v);
        }
}

/* The buckets, sum and count of h; labels: "" or `name="value",` pairs. */
static void render_histogram(struct text *t, const char *name, const char *labels,
                             const struct histogram *h)
{
    unsigned long long cumulative = 0;
    for (size_t b = 0; b <= BUCKETS; b++) {
        cumulative += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        if (b < BUCKETS)
            put(t, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bucket_bounds[b], cumulative);
        else
            put(t, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cumulative);
    }
    /* the same labels without the trailing comma, and no braces for none */
    int n = (int)strlen(labels);
    const char *open = n ? "{" : "", *close = n ? "}" : "";
    put(t, "%s_sum%s%.*s%s %.6f\n", name, open, n ? n - 1 : 0, labels, close,
        (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    put(t, "%s_count%s%.*s%s %llu\n", name, open, n ? n - 1 : 0, labels, close, cumulative);
}

static bool histogram_empty(const struct histogram *h)
{
    for (size_t b = 0; b <= BUCKETS; b++)
        if (atomic_load_explicit(&h->buckets[b], memory_order_relaxed))
            return false;
    return true;
}

static void render_latency(struct text *t)
{
    put(t, "# HELP masad_http_request_duration_seconds Time from a request's arrival to its answer.\n"
           "# TYPE masad_http_request_duration_seconds histogram\n");
    char labels[256];
    for (size_t r = 0; r < route_count; r++) {
        if (histogram_empty(&routes[r].latency))
            continue;
        snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",", route_names[r],
                 route_methods[r]);
        render_histogram(t, "masad_http_request_duration_seconds", labels, &routes[r].latency);
    }
    put(t, "# HELP masad_signer_duration_seconds Time of one CMS signature with the service's key.\n"
           "# TYPE masad_signer_duration_seconds histogram\n");
    render_histogram(t, "masad_signer_duration_seconds", "", &signer_latency);
}

static void render_outcomes(struct text *t)
{
    put(t, "# HELP masad_vouchers_total Voucher answers: issued (status 200) or refused, by the "
           "refusal's status.\n# TYPE masad_vouchers_total counter\n");
    for (int p = 0; p < PROTOCOLS; p++)
        for (int s = 0; s < STATUSES; s++) {
            unsigned long long v = atomic_load_explicit(&vouchers[p][s], memory_order_relaxed);
            if (v)
                put(t, "masad_vouchers_total{protocol=\"%s\",outcome=\"%s\",status=\"%d\"} %llu\n",
                    protocol_names[p], s + 100 == 200 ? "issued" : "refused", s + 100, v);
        }
    put(t, "# HELP masad_sztp_answers_total SZTP get-bootstrapping-data answers, by what they "
           "conveyed.\n# TYPE masad_sztp_answers_total counter\n");
    for (int k = 0; k < KINDS; k++)
        for (int sig = 0; sig < 2; sig++)
            put(t, "masad_sztp_answers_total{kind=\"%s\",signed=\"%s\"} %llu\n", kind_names[k],
                sig ? "true" : "false",
                atomic_load_explicit(&sztp_answers[k][sig], memory_order_relaxed));
}

static void render_job_threads(struct text *t)
{
    unsigned n = atomic_load(&job_thread_count);
    if (n > METRICS_MAX_JOB_THREADS)
        n = METRICS_MAX_JOB_THREADS;
    long busy = 0, idle = 0, down = 0;
    put(t, "# HELP masad_job_thread_busy Whether the job thread is running a request.\n"
           "# TYPE masad_job_thread_busy gauge\n");
    for (unsigned i = 0; i < n; i++) {
        int state = atomic_load(&job_threads[i]);
        put(t, "masad_job_thread_busy{thread=\"%u\"} %d\n", i, state & 1);
        if (!(state & 2))
            down++;
        else if (state & 1)
            busy++;
        else
            idle++;
    }
    put(t, "# HELP masad_db_connection_up Whether the job thread's database connection is up.\n"
           "# TYPE masad_db_connection_up gauge\n");
    for (unsigned i = 0; i < n; i++)
        put(t, "masad_db_connection_up{thread=\"%u\"} %d\n", i, atomic_load(&job_threads[i]) >> 1);
    put(t, "# HELP masad_db_pool_connections Database connections of the job threads, by state.\n"
           "# TYPE masad_db_pool_connections gauge\n"
           "masad_db_pool_connections{state=\"busy\"} %ld\n"
           "masad_db_pool_connections{state=\"idle\"} %ld\n"
           "masad_db_pool_connections{state=\"down\"} %ld\n", busy, idle, down);
}

static void render_process(struct text *t)
{
    put(t, "# HELP masad_build_info The running build; always 1.\n# TYPE masad_build_info gauge\n"
           "masad_build_info{version=\"%s\",openssl=\"%s\"} 1\n",
        MASAD_BUILD_VERSION, OpenSSL_version(OPENSSL_VERSION_STRING));
    long long made = atomic_load(&checkpoint_made_at);
    if (made)
        put(t, "# HELP masad_audit_checkpoint_age_seconds Age of the newest signed audit "
               "checkpoint.\n# TYPE masad_audit_checkpoint_age_seconds gauge\n"
               "masad_audit_checkpoint_age_seconds %lld\n", monotonic_seconds() - made);
}

char *metrics_render(struct arena *a, const struct metrics_gauges *g, size_t *len)
{
    struct text t = {malloc(8192), 0, 8192};
    if (!t.buf)
        abort();
    render_process(&t);
    render_requests(&t);
    render_latency(&t);
    render_outcomes(&t);
    render_job_threads(&t);
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
