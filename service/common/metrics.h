#ifndef MASAD_COMMON_METRICS_H
#define MASAD_COMMON_METRICS_H
/*
 * Process-wide counters, updated with atomics from any thread and rendered
 * as Prometheus text on the event loop. Routes are numbered by the edge's
 * route table, fixed at start. Every series rendered has a distinct set of
 * labels (tests/integration/test_http.c parses the whole exposition).
 */
#include <stdbool.h>
#include <stddef.h>

struct arena;

#define METRICS_MAX_ROUTES 64
#define METRICS_MAX_JOB_THREADS 1024

/* names[i] and methods[i] label route i; the strings must outlive the
 * process's serving. */
void metrics_init(const char *const *names, const char *const *methods, size_t count);
void metrics_request(unsigned route, int status, long long microseconds);
void metrics_db_reconnect(void);
void metrics_queue_rejected(void);
/* A queued request whose client had gone before a job thread took it. */
void metrics_job_dropped(void);
/* An HTTP/2 connection closed for resetting too many pending requests. */
void metrics_reset_flood_closed(void);

/* A voucher answer: protocol "brski" or "sztp"; status 200 when one was
 * issued, else the status of the refusal (its reason class). */
void metrics_voucher(const char *protocol, int status);
/* An SZTP get-bootstrapping-data answer: kind "redirect", "onboarding" or
 * "error"; is_signed for owner-signed conveyed information. */
void metrics_sztp_answer(const char *kind, bool is_signed);
/* One CMS signature with the service's key took this long. */
void metrics_signer(long long microseconds);
/* The newest audit checkpoint was age_seconds old when the database was
 * asked (any replica may have signed it). */
void metrics_checkpoint_age(long long age_seconds);

/* Job threads: each calls metrics_job_thread_start() once, then reports
 * whether it is running a request and whether its database connection is
 * up, whenever that may have changed. */
void metrics_job_thread_start(void);
void metrics_job_thread_state(bool busy, bool db_connected);

/* Gauges owned elsewhere, read at render time. */
struct metrics_gauges {
    long queue_depth;
    long jobs_in_flight;
};

char *metrics_render(struct arena *a, const struct metrics_gauges *g, size_t *len);

#endif
