#ifndef MASAD_AUDIT_H
#define MASAD_AUDIT_H
/*
 * audit/: the append-only record of every decision and change. An event is
 * appended inside the caller's transaction, so it commits (or not) with the
 * change it records. Actions are dotted names listed in docs/audit.md.
 */
#include <stddef.h>

#include "common/arena.h"
#include "common/error.h"

struct store_conn;

struct audit_event {
    const char *actor;          /* token name, "cli", or the protocol peer */
    const char *action;         /* "ownership.assign", "voucher.issue", ... */
    const char *serial_number;  /* or NULL */
    const char *owner_id;       /* or NULL */
    const char *outcome;        /* "ok", "refused", "unchanged" */
    const char *detail;         /* a JSON object as text, or NULL */
};

int audit_append(struct store_conn *db, struct arena *a, const struct audit_event *e,
                 struct masad_error *err);

/* One event per serial (owners[i] may be NULL; owners NULL: none), same
 * actor, action, outcome and detail: one statement for a whole batch. */
int audit_append_many(struct store_conn *db, struct arena *a, const char *actor,
                      const char *action, const char *outcome, const char *const *serials,
                      const char *const *owners, size_t count, const char *detail,
                      struct masad_error *err);

/* A refusal recorded on its own (the refused change was rolled back). */
void audit_refusal(struct store_conn *db, struct arena *a, const struct audit_event *e);

#endif
