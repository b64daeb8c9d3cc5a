/* What the job threads do besides jobs: readiness, checkpoints, the
 * watchdog. */
#include <stdio.h>

#include "audit/audit.h"
#include "common/clock.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "runtime/runtime_internal.h"
#include "store/store.h"

/* A ready probe answers for at most a second: probe twice as often. */
#define PROBE_INTERVAL_MS 400
#define PROBE_VALID_MS 1000
#define CHECKPOINT_CHECK_MS 1000

static const char *const unready_why[] = {
    [READINESS_UNKNOWN] =
        "no job thread has probed the database and the signing key in the last second",
    [READINESS_STALE] =
        "no job thread has probed the database and the signing key in the last second",
    [READINESS_NO_DATABASE] = "the database is unavailable",
    [READINESS_NO_SIGNER] = "the signing key is unavailable",
};

/* Logs a change of readiness once: a loss with why (may be NULL), then its
 * recovery. */
static void report(struct readiness *r, enum readiness_state state, const char *why)
{
    int before = atomic_exchange(&r->reported, (int)state);
    if (before == (int)state)
        return;
    if (state != READINESS_READY)
        log_warn("not ready: %s%s%s", unready_why[state], why ? ": " : "", why ? why : "");
    else if (before != READINESS_UNKNOWN)
        log_info("ready again: the database and the signing key are usable");
}

/* Readiness is what a job thread saw no more than a second ago: any idle or
 * finishing thread takes the next probe when it is due. */
void upkeep_probe(struct runtime *rt, struct job_ctx *ctx)
{
    struct readiness *r = &rt->ready;
    long long now = clock_monotonic_ms();
    long long claimed = atomic_load(&r->claimed_at_ms);
    if (now - claimed < PROBE_INTERVAL_MS ||
        !atomic_compare_exchange_strong(&r->claimed_at_ms, &claimed, now))
        return;
    char why[256];
    runtime_overdue(rt, why, sizeof(why)); /* logs a stuck thread even when no probe asks */
    struct masad_error err;
    bool db = store_ping(ctx->db, &err) == 0;
    bool hsm = crypto_signer_probe(ctx->signer) == 0; /* also when db is not: it may reopen */
    enum readiness_state state = !db ? READINESS_NO_DATABASE : hsm ? READINESS_READY
                                                                   : READINESS_NO_SIGNER;
    report(r, state, state == READINESS_NO_DATABASE ? err.message : NULL);
    atomic_store(&r->state, (int)state);
    atomic_store(&r->probed_at_ms, clock_monotonic_ms());
}

const char *runtime_unready(struct runtime *rt)
{
    struct readiness *r = &rt->ready;
    long long probed = atomic_load(&r->probed_at_ms);
    if (!probed)
        return unready_why[READINESS_UNKNOWN];
    if (clock_monotonic_ms() - probed > PROBE_VALID_MS) {
        report(r, READINESS_STALE, NULL);
        return unready_why[READINESS_STALE];
    }
    int state = atomic_load(&r->state);
    return state == READINESS_READY ? NULL : unready_why[state];
}

/* Checkpoints are signed by whichever idle thread notices one is due (and
 * across replicas by whichever wins the database's advisory lock). */
void upkeep_checkpoint(struct runtime *rt, struct job_ctx *ctx)
{
    long long now = clock_monotonic_ms();
    long long last = atomic_load(&rt->checkpoint_checked_ms);
    if (now - last < CHECKPOINT_CHECK_MS ||
        !atomic_compare_exchange_strong(&rt->checkpoint_checked_ms, &last, now))
        return;
    struct masad_error err;
    int rc = audit_checkpoint_maybe(ctx->db, ctx->signer, ctx->arena,
                                    rt->cfg->audit_checkpoint_events,
                                    rt->cfg->audit_checkpoint_seconds, &err);
    if (rc < 0)
        log_warn("audit checkpoint: %s", err.message);
    else if (rc > 0)
        log_info("audit checkpoint signed");
    audit_flush_summaries(ctx->db, ctx->arena, false);
    arena_reset(ctx->arena);
}

void upkeep_slot_enter(struct job_slot *s, const struct runtime_job *j)
{
    pthread_mutex_lock(&s->mu);
    s->started_ms = clock_monotonic_ms();
    s->name = j->name;
    s->method = j->method;
    snprintf(s->request_id, sizeof(s->request_id), "%s",
             j->request.request_id ? j->request.request_id : "-");
    s->reported = false;
    pthread_mutex_unlock(&s->mu);
}

void upkeep_slot_leave(struct job_slot *s)
{
    pthread_mutex_lock(&s->mu);
    s->started_ms = 0;
    pthread_mutex_unlock(&s->mu);
}

/* Whether slot s runs a job longer than the limit: the reason in why, and
 * the first time, a log line naming the route and the request id. */
static bool slot_overdue(const struct runtime *rt, struct job_slot *s, unsigned index,
                         long long now, char *why, size_t why_len)
{
    pthread_mutex_lock(&s->mu);
    long long ran = s->started_ms ? now - s->started_ms : 0;
    bool over = ran > rt->time_limit_ms;
    if (over) {
        snprintf(why, why_len,
                 "job thread %u has run %s %s (request %s) for %lld s, longer than "
                 "service/job-time-limit (%lld s)",
                 index, s->method, s->name, s->request_id, ran / 1000, rt->time_limit_ms / 1000);
        if (!s->reported)
            log_error("watchdog: %s; the replica needs a restart", why);
        s->reported = true;
    }
    pthread_mutex_unlock(&s->mu);
    return over;
}

int runtime_overdue(struct runtime *rt, char *why, size_t why_len)
{
    long long now = clock_monotonic_ms();
    int overdue = 0;
    for (unsigned i = 0; i < rt->thread_count; i++)
        if (slot_overdue(rt, &rt->slots[i], i, now, why, why_len))
            overdue++;
    return overdue;
}
