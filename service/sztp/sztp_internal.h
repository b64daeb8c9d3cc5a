#ifndef MASAD_SZTP_INTERNAL_H
#define MASAD_SZTP_INTERNAL_H
/* Folder-private to sztp/. */
#include <libyang/libyang.h>
#include <stdbool.h>

#include "sztp/sztp.h"

enum sztp_format { SZTP_JSON, SZTP_XML };

/* Progress reports kept per device (docs/sztp.md, Progress): older ones are
 * pruned, and counted. */
#define SZTP_PROGRESS_KEPT 1000

/* One SZTP call in progress. */
struct sztp_call {
    struct job_ctx *ctx;
    struct arena *a;
    const struct masad_request *req;
    struct masad_response *res;
    enum sztp_format format;
    const char *rpc;               /* "get-bootstrapping-data" or "report-progress" */
    const char *serial;            /* once authenticated */
    const char *owner;
};

/* Answers a RESTCONF error (RFC 8040 §7.1) in the request's encoding and,
 * for an authenticated device, records it in the audit log. Returns false. */
bool sztp_error(struct sztp_call *c, int status, const char *type, const char *tag,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Content type, body size and device authentication. false: answered. */
bool sztp_begin(struct sztp_call *c);

/* The RPC's input as a libyang tree (the RPC node; freed with the arena).
 * false: a 400 was answered. */
bool sztp_parse_input(struct sztp_call *c, struct lyd_node **rpc);

/* A leaf of the input, or NULL. */
const char *sztp_leaf(const struct lyd_node *rpc, const char *name);

/* Answers the RPC's output with these leaves (strings), after validating it
 * against the module. */
bool sztp_answer(struct sztp_call *c, const char *const *names, const char *const *values, size_t n);

#endif
