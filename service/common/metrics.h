#ifndef MASAD_COMMON_METRICS_H
#define MASAD_COMMON_METRICS_H
/*
 * Process-wide counters, updated with atomics from any thread and rendered
 * as Prometheus text on the event loop. Routes are numbered by the edge's
 * route table, fixed at start.
 */
#include <stddef.h>

struct arena;

#define METRICS_MAX_ROUTES 64

/* names[i] labels route i; the strings must outlive the process's serving. */
void metrics_init(const char *const *names, size_t count);
void metrics_request(unsigned route, int status, long long microseconds);
void metrics_db_reconnect(void);
void metrics_queue_rejected(void);
/* A queued request whose client had gone before a job thread took it. */
void metrics_job_dropped(void);
/* An HTTP/2 connection closed for resetting too many pending requests. */
void metrics_reset_flood_closed(void);

/* Gauges owned elsewhere, read at render time. */
struct metrics_gauges {
    long queue_depth;
    long jobs_in_flight;
};

char *metrics_render(struct arena *a, const struct metrics_gauges *g, size_t *len);

#endif
