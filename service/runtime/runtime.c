#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "runtime/runtime_internal.h"
#include "store/store.h"

#define IDLE_WAIT_MS 200
#define JOB_TRIM_BODY (1024 * 1024)

int runtime_push(struct runtime *rt, struct runtime_job *j)
{
    pthread_mutex_lock(&rt->mu);
    if (rt->closing || rt->depth >= rt->capacity) {
        pthread_mutex_unlock(&rt->mu);
        return -1;
    }
    j->next = NULL;
    if (rt->tail)
        rt->tail->next = j;
    else
        rt->head = j;
    rt->tail = j;
    rt->depth++;
    pthread_cond_signal(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
    return 0;
}

long runtime_queue_depth(struct runtime *rt)
{
    return atomic_load(&rt->depth);
}

/* The next job, or NULL after IDLE_WAIT_MS, or NULL with *closed once the
 * queue is closed and empty. */
static struct runtime_job *pop(struct runtime *rt, bool *closed)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += IDLE_WAIT_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&rt->mu);
    while (!rt->head && !rt->closing)
        if (pthread_cond_timedwait(&rt->cv, &rt->mu, &until) != 0)
            break;
    struct runtime_job *j = rt->head;
    if (j) {
        rt->head = j->next;
        if (!rt->head)
            rt->tail = NULL;
        rt->depth--;
    }
    *closed = !j && rt->closing;
    pthread_mutex_unlock(&rt->mu);
    return j;
}

/* The handler allocates from the job's own arena, not the thread's: its
 * response is then already where it must stay until it has been sent, and
 * is handed back without a copy (runtime.h). Returns whether the job was a
 * large one whose memory is worth giving back to the system. */
static bool run_job(const struct job_ctx *thread, struct job_slot *slot, struct runtime_job *j)
{
    /* the client reset the stream or closed while the job waited: its
     * answer would go nowhere (HTTP/2 rapid reset, edge/resets.c) */
    if (atomic_load(&j->cancelled)) {
        metrics_job_dropped();
        j->done(j);
        return false;
    }
    struct job_ctx ctx = *thread;
    ctx.arena = j->arena;
    bool large = j->request.body_len > JOB_TRIM_BODY;
    log_set_request(j->request.request_id, j->request.trace_id);
    metrics_job_thread_state(true, store_connected(ctx.db));
    upkeep_slot_enter(slot, j);
    j->handler(&ctx, &j->request, &j->response);
    upkeep_slot_leave(slot);
    if (!j->response.status)
        j->response.status = 500;
    log_set_request(NULL, NULL); /* the id lives in the job, which is handed back */
    j->done(j);
    return large;
}

struct thread_start {
    struct runtime *rt;
    unsigned index;
};

static void *job_thread(void *arg)
{
    struct runtime *rt = ((struct thread_start *)arg)->rt;
    struct job_slot *slot = &rt->slots[((struct thread_start *)arg)->index];
    free(arg);
    struct job_ctx ctx = {arena_new(), NULL, rt->signer, rt->idevid, rt->yang, rt->cfg};
    struct store_options so = {rt->cfg->database_url, rt->cfg->database_connect_timeout,
                               rt->cfg->database_statement_timeout};
    struct masad_error err;
    metrics_job_thread_start();
    if (store_connect(&so, &ctx.db, &err) != 0)
        log_warn("job thread: %s (retrying)", err.message);
    metrics_job_thread_state(false, store_connected(ctx.db));
    bool trim = false;
    for (;;) {
        bool closed;
        struct runtime_job *j = pop(rt, &closed);
        /* a large body grew a malloc arena; by now its job has most likely
         * been answered and freed (on the loop): give the memory back */
        if (trim)
            malloc_trim(0);
        trim = j && run_job(&ctx, slot, j);
        if (closed)
            break;
        upkeep_probe(rt, &ctx);
        upkeep_checkpoint(rt, &ctx);
        metrics_job_thread_state(false, store_connected(ctx.db));
    }
    audit_flush_summaries(ctx.db, ctx.arena, true); /* nothing counted is lost at shutdown */
    store_close(ctx.db);
    arena_free(ctx.arena);
    atomic_fetch_sub(&rt->running, 1);
    return NULL;
}

struct runtime *runtime_start(const struct config *cfg, struct crypto_signer *signer,
                              const struct crypto_anchors *idevid, const struct ly_ctx *yang,
                              struct masad_error *err)
{
    struct runtime *rt = calloc(1, sizeof(*rt));
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->cv, NULL);
    rt->capacity = cfg->queue_capacity;
    rt->cfg = cfg;
    rt->signer = signer;
    rt->idevid = idevid;
    rt->yang = yang;
    rt->threads = calloc(cfg->job_threads, sizeof(pthread_t));
    rt->slots = calloc(cfg->job_threads, sizeof(struct job_slot));
    rt->time_limit_ms = 1000LL * cfg->job_time_limit;
    for (unsigned i = 0; i < cfg->job_threads; i++)
        pthread_mutex_init(&rt->slots[i].mu, NULL);
    for (unsigned i = 0; i < cfg->job_threads; i++) {
        struct thread_start *start = malloc(sizeof(*start));
        *start = (struct thread_start){rt, i};
        atomic_fetch_add(&rt->running, 1);
        if (pthread_create(&rt->threads[i], NULL, job_thread, start) != 0) {
            free(start);
            atomic_fetch_sub(&rt->running, 1);
            runtime_stop(rt, 0);
            error_set(err, 500, "threads", "cannot start job thread %u", i);
            return NULL;
        }
        rt->thread_count++;
    }
    return rt;
}

void runtime_stop(struct runtime *rt, long timeout_ms)
{
    pthread_mutex_lock(&rt->mu);
    rt->closing = true;
    pthread_cond_broadcast(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
    long long deadline = clock_monotonic_ms() + timeout_ms;
    while (atomic_load(&rt->running) > 0 && clock_monotonic_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&rt->running) > 0) {
        /* a handler still busy: leave the process to end it */
        log_warn("%u job threads still busy at exit", atomic_load(&rt->running));
        return;
    }
    for (unsigned i = 0; i < rt->thread_count; i++)
        pthread_join(rt->threads[i], NULL);
    free(rt->threads);
    for (unsigned i = 0; i < rt->thread_count; i++)
        pthread_mutex_destroy(&rt->slots[i].mu);
    free(rt->slots);
    pthread_cond_destroy(&rt->cv);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}
