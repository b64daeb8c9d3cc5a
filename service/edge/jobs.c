#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "edge/edge_internal.h"
#include "store/store.h"

/* A ready probe answers for at most a second: probe twice as often. */
#define PROBE_INTERVAL_MS 400
#define IDLE_WAIT_MS 200
#define CHECKPOINT_CHECK_MS 1000
#define JOB_TRIM_BODY (1024 * 1024)

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
    struct masad_error err;
    bool db = store_ping(ctx->db, &err) == 0;
    bool hsm = crypto_signer_probe(ctx->signer) == 0;
    if (db != atomic_load(&p->ready->db_ok) || hsm != atomic_load(&p->ready->hsm_ok))
        log_info("readiness: database %s, signing key %s", db ? "usable" : "unavailable",
                 hsm ? "usable" : "unavailable");
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

static void run_job(struct job_ctx *ctx, struct job *j)
{
    struct masad_response res;
    memset(&res, 0, sizeof(res));
    edge_routes[j->route].handler(ctx, &j->request, &res);
    keep_response(j, &res);
    arena_reset(ctx->arena);
    /* a large body grew this thread's malloc arena: give the memory back */
    if (j->request.body_len > JOB_TRIM_BODY)
        malloc_trim(0);
    edge_job_done(j);
}

static void *job_thread(void *arg)
{
    struct job_pool *p = arg;
    struct job_ctx ctx = {arena_new(), NULL, p->signer, p->idevid, p->yang, p->cfg};
    struct store_options so = {p->cfg->database_url, p->cfg->database_connect_timeout,
                               p->cfg->database_statement_timeout};
    struct masad_error err;
    if (store_connect(&so, &ctx.db, &err) != 0)
        log_warn("job thread: %s (retrying)", err.message);
    for (;;) {
        bool closed;
        struct job *j = pop(p, &closed);
        if (j)
            run_job(&ctx, j);
        if (closed)
            break;
        maybe_probe(p, &ctx);
        maybe_checkpoint(p, &ctx);
    }
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
    for (unsigned i = 0; i < cfg->job_threads; i++) {
        atomic_fetch_add(&p->running, 1);
        if (pthread_create(&p->threads[i], NULL, job_thread, p) != 0) {
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
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
