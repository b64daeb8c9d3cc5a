#ifndef MASAD_COMMON_REFUSAL_H
#define MASAD_COMMON_REFUSAL_H
/*
 * A refusal as a value. Checks and decisions return one instead of
 * answering, so they stay pure; each protocol renders it in its own way
 * (BRSKI text/plain, SZTP RESTCONF errors, management problem+json) and
 * records it through audit_refuse().
 */
#include <stdbool.h>

struct refusal {
    int status;                  /* 0: no refusal */
    const char *sentence;        /* for the caller, the log and the audit event */
    const char *action;          /* the audit action, e.g. "voucher.refuse" */
};

static inline bool refused(const struct refusal *r) { return r->status != 0; }

#endif
