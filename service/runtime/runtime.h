#ifndef MASAD_RUNTIME_RUNTIME_H
#define MASAD_RUNTIME_RUNTIME_H
/*
 * runtime/: the job threads behind the edge. A bounded queue of jobs and a
 * fixed set of job threads, each with its own PostgreSQL connection and
 * scratch arena, that run each job's handler. Whichever thread is idle also
 * does the upkeep: it probes the database and the signer (readiness), signs
 * audit checkpoints when due and flushes the refusal summaries; a watchdog
 * names a job that runs longer than service/job-time-limit.
 *
 * It knows nothing of HTTP: a job carries its handler, the parsed request
 * and a callback that takes the answer back (edge/handler.c). main.c starts
 * the runtime before the edge and stops it after.
 */
#include <stdatomic.h>
#include <stdbool.h>

#include "common/config.h"
#include "common/request.h"

struct runtime;

struct runtime_job {
    struct runtime_job *next;      /* the queue's */
    request_handler handler;
    const char *name;              /* the route and its method, for the watchdog */
    const char *method;            /* (literals that outlive the job) */
    /* The job's one arena: the request copy, everything the handler
     * allocates (it is the handler's ctx->arena) and so the response. Owned
     * by whoever made the job; it must live until the answer has been sent,
     * which is why the response is never copied. */
    struct arena *arena;
    struct masad_request request;
    struct masad_response response;
    atomic_bool cancelled;         /* set by the maker: drop the job without running it */
    /* Called on the job thread when the handler has returned (status 500
     * when it set none) or the job was dropped; hands the job back. */
    void (*done)(struct runtime_job *j);
};

/* Starts cfg->job_threads threads, each connecting to the database (and
 * retrying while it is away). NULL with err filled when a thread cannot
 * start. The caller blocks the stop signals first (edge_block_signals). */
struct runtime *runtime_start(const struct config *cfg, struct crypto_signer *signer,
                              const struct crypto_anchors *idevid, const struct ly_ctx *yang,
                              struct masad_error *err);
/* 0 when queued; -1 when the queue is full or closing. Any thread. */
int runtime_push(struct runtime *rt, struct runtime_job *j);
long runtime_queue_depth(struct runtime *rt);
/* The number of job threads running one job longer than
 * service/job-time-limit, and in why the reason of the last one. Logs each
 * such job once (route and request id). Any thread. */
int runtime_overdue(struct runtime *rt, char *why, size_t why_len);
/* NULL when a job thread found the database and the signing key usable
 * less than a second ago; else why not (a sentence, static). Logs a change
 * of readiness once. Any thread; never waits. */
const char *runtime_unready(struct runtime *rt);
/* Closes the queue and joins the threads that finish within timeout_ms; a
 * thread still busy then is left to the process's exit. */
void runtime_stop(struct runtime *rt, long timeout_ms);

#ifdef MASAD_TEST_ROUTES
/* test_routes.c: handlers of the /_test/ routes (test builds only) */
void test_identity(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_echo(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_sleep(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_db(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_log(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
void test_sign(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res);
#endif

#endif
