#ifndef MASAD_RUNTIME_INTERNAL_H
#define MASAD_RUNTIME_INTERNAL_H
/* Folder-private to runtime/. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "runtime/runtime.h"

/* What a job thread is running, for the watchdog (runtime_overdue). */
struct job_slot {
    pthread_mutex_t mu;         /* guards the strings; held only to copy them */
    long long started_ms;       /* monotonic; 0: idle */
    const char *name, *method;  /* the route's literals */
    char request_id[64];
    bool reported;              /* its overrun was logged */
};

enum readiness_state {
    READINESS_UNKNOWN, READINESS_READY, READINESS_STALE, READINESS_NO_DATABASE, READINESS_NO_SIGNER
};

/* What the last probe saw: written by the job thread that probed, read by
 * the event loops (/readyz). */
struct readiness {
    _Atomic long long probed_at_ms;   /* monotonic; 0: never */
    atomic_int state;                 /* enum readiness_state of the last probe */
    _Atomic long long claimed_at_ms;  /* a thread has taken the next probe */
    atomic_int reported;              /* the last state logged: enum readiness_state */
};

struct runtime {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct runtime_job *head, *tail;
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
    struct readiness ready;
    _Atomic long long checkpoint_checked_ms;
    struct job_slot *slots;     /* one per thread */
    long long time_limit_ms;
};

/* ---- upkeep.c: on an idle or finishing job thread ---- */
/* ctx is the thread's own: its connection and its scratch arena (reset). */
void upkeep_probe(struct runtime *rt, struct job_ctx *ctx);
void upkeep_checkpoint(struct runtime *rt, struct job_ctx *ctx);
void upkeep_slot_enter(struct job_slot *s, const struct runtime_job *j);
void upkeep_slot_leave(struct job_slot *s);

#endif
