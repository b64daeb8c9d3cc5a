#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "common/log.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "edge/edge_internal.h"
#include "store/store.h"

/* A ready probe answers for at most a second: probe twice as often. */
#define PROBE_INTERVAL_MS 400
#define IDLE_WAIT_MS 200
#define CHECKPOINT_CHECK_MS 1000
#define JOB_TRIM_BODY (1024 * 1024)

/* What a job thread is running, for the watchdog (jobs_overdue). */
struct job_slot {
    pthread_mutex_t mu;         /* guards the strings; held only to copy them */
    long long started_ms;       /* monotonic; 0: idle */
    unsigned route;
    char request_id[64];
    bool reported;              /* its overrun was logged */
};

struct job_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    atomic_long depth;          /* written under mu, read without it by the loops */
    long capacity;
    bool closing;
    unsigned thread_count;
    pthread_t *threads;
    atomic_uint running;
    const struct config *cfg;
    struct crypto_signer *signer;
    const struct crypto_anchors *idevid;
    const struct ly_ctx *yang;
    struct readiness *ready;
    _Atomic long long checkpoint_checked_ms;
    struct job_slot *slots;     /* one per thread */
    long long time_limit_ms;
};

int jobs_push(struct job_pool *p, struct job *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->closing || p->depth >= p->capacity) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->depth++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

long jobs_queue_depth(struct job_pool *p)
{
    return atomic_load(&p->depth);
}

/* The next job, or NULL after IDLE_WAIT_MS, or NULL with *closed once the
 * queue is closed and empty. */
static struct job *pop(struct job_pool *p, bool *closed)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += IDLE_WAIT_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&p->mu);
    while (!p->head && !p->closing)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0)
            break;
    struct job *j = p->head;
    if (j) {
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->depth--;
    }
    *closed = !j && p->closing;
    pthread_mutex_unlock(&p->mu);
    return j;
}

/* Readiness is what a job thread saw no more than a second ago: any idle or
 * finishing thread takes the next probe when it is due. */
static void maybe_probe(struct job_pool *p, struct job_ctx *ctx)
{
    long long now = edge_now_ms();
    long long claimed = atomic_load(&p->ready->claimed_at_ms);
    if (now - claimed < PROBE_INTERVAL_MS ||
        !atomic_compare_exchange_strong(&p->ready->claimed_at_ms, &claimed, now))
        return;
    char why[256];
    jobs_overdue(p, why, sizeof(why)); /* logs a stuck thread even when no probe asks */
    struct masad_error err;
    bool db = store_ping(ctx->db, &err) == 0;
    bool hsm = crypto_signer_probe(ctx->signer) == 0;
    if (!db)
        edge_readiness_report(p->ready, READINESS_NO_DATABASE, err.message);
    else
        edge_readiness_report(p->ready, hsm ? READINESS_READY : READINESS_NO_SIGNER, NULL);
    atomic_store(&p->ready->db_ok, db);
    atomic_store(&p->ready->hsm_ok, hsm);
    atomic_store(&p->ready->probed_at_ms, edge_now_ms());
}

/* Checkpoints are signed by whichever idle thread notices one is due (and
 * across replicas by whichever wins the database's advisory lock). */
static void maybe_checkpoint(struct job_pool *p, struct job_ctx *ctx)
{
    long long now = edge_now_ms();
    long long last = atomic_load(&p->checkpoint_checked_ms);
    if (now - last < CHECKPOINT_CHECK_MS ||
        !atomic_compare_exchange_strong(&p->checkpoint_checked_ms, &last, now))
        return;
    struct masad_error err;
    int rc = audit_checkpoint_maybe(ctx->db, ctx->signer, ctx->arena,
                                    p->cfg->audit_checkpoint_events,
                                    p->cfg->audit_checkpoint_seconds, &err);
    if (rc < 0)
        log_warn("audit checkpoint: %s", err.message);
    else if (rc > 0)
        log_info("audit checkpoint signed");
    audit_flush_summaries(ctx->db, ctx->arena, false);
    arena_reset(ctx->arena);
}

/* The handler's response lives in the thread's scratch arena: copy it into
 * the job, which the loop frees after sending. */
static void keep_response(struct job *j, const struct masad_response *r)
{
    j->response = *r;
    if (!j->response.status)
        j->response.status = 500;
    j->response.body = r->body ? arena_memdup(j->arena, r->body, r->body_len) : NULL;
    j->response.content_type = arena_strdup(j->arena, r->content_type);
    for (size_t i = 0; i < r->header_count; i++)
        j->response.headers[i].value = arena_strdup(j->arena, r->headers[i].value);
}

static void slot_enter(struct job_slot *s, const struct job *j)
{
    pthread_mutex_lock(&s->mu);
    s->started_ms = edge_now_ms();
    s->route = j->route;
    snprintf(s->request_id, sizeof(s->request_id), "%s",
             j->request.request_id ? j->request.request_id : "-");
    s->reported = false;
    pthread_mutex_unlock(&s->mu);
}

static void slot_leave(struct job_slot *s)
{
    pthread_mutex_lock(&s->mu);
    s->started_ms = 0;
    pthread_mutex_unlock(&s->mu);
}

static void run_job(struct job_ctx *ctx, struct job_slot *slot, struct job *j)
{
    /* the client reset the stream or closed while the job waited: its
     * answer would go nowhere (HTTP/2 rapid reset, resets.c) */
    if (atomic_load(&j->client_gone)) {
        metrics_job_dropped();
        edge_job_done(j);
        return;
    }
    struct masad_response res;
    memset(&res, 0, sizeof(res));
    log_set_request(j->request.request_id, j->request.trace_id);
    metrics_job_thread_state(true, store_connected(ctx->db));
    slot_enter(slot, j);
    edge_routes[j->route].handler(ctx, &j->request, &res);
    slot_leave(slot);
    keep_response(j, &res);
    arena_reset(ctx->arena);
    log_set_request(NULL, NULL); /* the id lives in the job, which the loop frees */
    /* a large body grew this thread's malloc arena: give the memory back */
    if (j->request.body_len > JOB_TRIM_BODY)
        malloc_trim(0);
    edge_job_done(j);
}

/* Whether slot s runs a job longer than the limit: the reason in why, and
 * the first time, a log line naming the route and the request id. */
static bool slot_overdue(const struct job_pool *p, struct job_slot *s, unsigned index,
                         long long now, char *why, size_t why_len)
{
    pthread_mutex_lock(&s->mu);
    long long ran = s->started_ms ? now - s->started_ms : 0;
    bool over = ran > p->time_limit_ms;
    if (over) {
        const struct route *r = &edge_routes[s->route];
        snprintf(why, why_len,
                 "job thread %u has run %s %s (request %s) for %lld s, longer than "
                 "service/job-time-limit (%lld s)",
                 index, r->method, r->name, s->request_id, ran / 1000, p->time_limit_ms / 1000);
        if (!s->reported)
            log_error("watchdog: %s; the replica needs a restart", why);
        s->reported = true;
    }
    pthread_mutex_unlock(&s->mu);
    return over;
}

int jobs_overdue(struct job_pool *p, char *why, size_t why_len)
{
    long long now = edge_now_ms();
    int overdue = 0;
    for (unsigned i = 0; i < p->thread_count; i++)
        if (slot_overdue(p, &p->slots[i], i, now, why, why_len))
            overdue++;
    return overdue;
}

struct thread_start {
    struct job_pool *pool;
    unsigned index;
};

static void *job_thread(void *arg)
{
    struct job_pool *p = ((struct thread_start *)arg)->pool;
    struct job_slot *slot = &p->slots[((struct thread_start *)arg)->index];
    free(arg);
    struct job_ctx ctx = {arena_new(), NULL, p->signer, p->idevid, p->yang, p->cfg};
    struct store_options so = {p->cfg->database_url, p->cfg->database_connect_timeout,
                               p->cfg->database_statement_timeout};
    struct masad_error err;
    metrics_job_thread_start();
    if (store_connect(&so, &ctx.db, &err) != 0)
        log_warn("job thread: %s (retrying)", err.message);
    metrics_job_thread_state(false, store_connected(ctx.db));
    for (;;) {
        bool closed;
        struct job *j = pop(p, &closed);
        if (j)
            run_job(&ctx, slot, j);
        if (closed)
            break;
        maybe_probe(p, &ctx);
        maybe_checkpoint(p, &ctx);
        metrics_job_thread_state(false, store_connected(ctx.db));
    }
    audit_flush_summaries(ctx.db, ctx.arena, true); /* nothing counted is lost at shutdown */
    store_close(ctx.db);
    arena_free(ctx.arena);
    atomic_fetch_sub(&p->running, 1);
    return NULL;
}

struct job_pool *jobs_start(const struct config *cfg, struct crypto_signer *signer,
                            const struct crypto_anchors *idevid, const struct ly_ctx *yang,
                            struct readiness *ready, struct masad_error *err)
{
    struct job_pool *p = calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->capacity = cfg->queue_capacity;
    p->cfg = cfg;
    p->signer = signer;
    p->idevid = idevid;
    p->yang = yang;
    p->ready = ready;
    p->threads = calloc(cfg->job_threads, sizeof(pthread_t));
    p->slots = calloc(cfg->job_threads, sizeof(struct job_slot));
    p->time_limit_ms = 1000LL * cfg->job_time_limit;
    for (unsigned i = 0; i < cfg->job_threads; i++)
        pthread_mutex_init(&p->slots[i].mu, NULL);
    for (unsigned i = 0; i < cfg->job_threads; i++) {
        struct thread_start *start = malloc(sizeof(*start));
        *start = (struct thread_start){p, i};
        atomic_fetch_add(&p->running, 1);
        if (pthread_create(&p->threads[i], NULL, job_thread, start) != 0) {
            free(start);
            atomic_fetch_sub(&p->running, 1);
            jobs_stop(p, 0);
            error_set(err, 500, "threads", "cannot start job thread %u", i);
            return NULL;
        }
        p->thread_count++;
    }
    return p;
}

void jobs_stop(struct job_pool *p, long timeout_ms)
{
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    long long deadline = edge_now_ms() + timeout_ms;
    while (atomic_load(&p->running) > 0 && edge_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&p->running) > 0) {
        /* a handler still busy: leave the process to end it */
        log_warn("%u job threads still busy at exit", atomic_load(&p->running));
        return;
    }
    for (unsigned i = 0; i < p->thread_count; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    for (unsigned i = 0; i < p->thread_count; i++)
        pthread_mutex_destroy(&p->slots[i].mu);
    free(p->slots);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
