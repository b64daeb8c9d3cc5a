#ifndef MASAD_AUDIT_H
#define MASAD_AUDIT_H
/*
 * audit/: the append-only record of every decision and change. An event is
 * appended inside the caller's transaction, so it commits (or not) with the
 * change it records. Actions are dotted names listed in docs/audit.md.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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

/* ---- details written canonically once (detail.c) ---- */

/* An event's detail, built member by member and written once in the
 * canonical form the hash covers (docs/audit.md: no whitespace, keys in
 * byte order), so that appending does not parse and rewrite it. */
struct audit_detail;
#define AUDIT_DETAIL_MEMBERS 32
struct audit_detail *audit_detail_new(struct arena *a);
void audit_detail_str(struct audit_detail *d, const char *key, const char *value); /* NULL: null */
void audit_detail_int(struct audit_detail *d, const char *key, long long value);
void audit_detail_bool(struct audit_detail *d, const char *key, bool value);
/* The canonical text, in the arena; NULL when a key was given twice or
 * more than AUDIT_DETAIL_MEMBERS members (what a parse of such text gives). */
const char *audit_detail_text(struct audit_detail *d);

/* The detail is parsed and written canonically before it is stored and
 * hashed (docs/audit.md). */
int audit_append(struct store_conn *db, struct arena *a, const struct audit_event *e,
                 struct masad_error *err);
/* The same for a detail that is canonical already (audit_detail_text, or
 * NULL): stored and hashed as it is, without the parse and rewrite. */
int audit_append_canonical(struct store_conn *db, struct arena *a, const struct audit_event *e,
                           struct masad_error *err);

/* One event per serial (owners[i] may be NULL; owners NULL: none), same
 * actor, action, outcome and detail: one statement for a whole batch. */
int audit_append_many(struct store_conn *db, struct arena *a, const char *actor,
                      const char *action, const char *outcome, const char *const *serials,
                      const char *const *owners, size_t count, const char *detail,
                      struct masad_error *err);

/* Bounds of what one event stores (docs/audit.md, Bounds): a longer actor
 * is cut to AUDIT_ACTOR_MAX bytes on a UTF-8 boundary, ending in "…"; a
 * longer detail becomes {"truncated":"<its start>…"}. */
#define AUDIT_ACTOR_MAX 256
#define AUDIT_DETAIL_MAX 4096
/* s itself when it has at most max bytes, else its cut copy in a. */
const char *audit_bounded(struct arena *a, const char *s, size_t max);

/* ---- refusals (refusals.c) ---- */

/* Of one source's unauthenticated refusals of one action, the first
 * AUDIT_SUMMARY_FIRST of each window of AUDIT_SUMMARY_WINDOW_SECONDS are
 * written one by one; the rest are counted into one summary event. */
#define AUDIT_SUMMARY_WINDOW_SECONDS 60
#define AUDIT_SUMMARY_FIRST 32

/* Rolls back the caller's transaction (the refused change) and records the
 * refusal e on its own (e NULL: nothing to record). A caller who proved who
 * it is (authenticated) has every refusal written. Of an unauthenticated
 * one, per action and source (the peer address), the first refusals of a
 * window are written and later ones only counted; the count is written as
 * one "<action>.summary" event when the window ends (audit_flush_summaries).
 * Failures are logged: the refusal's answer does not depend on them. */
void audit_refusal(struct store_conn *db, struct arena *a, const struct audit_event *e,
                   const char *source, bool authenticated);
/* The same for an event whose detail is canonical already (audit_detail_text). */
void audit_refusal_canonical(struct store_conn *db, struct arena *a, const struct audit_event *e,
                             const char *source, bool authenticated);

struct refusal;

/* A protocol request's refusal r, recorded through audit_refusal (after
 * rolling back): the event's detail holds status, reason and peer, then the
 * pairs of `more` (key, value, ..., NULL; NULL for none). 503s (the
 * database or HSM is away) are not recorded. */
void audit_refuse(struct store_conn *db, struct arena *a, const struct refusal *r,
                  const char *actor, const char *serial, const char *owner, const char *peer,
                  bool authenticated, const char *const *more);

/* Writes the summaries whose window has ended; all of them when `all`
 * (at shutdown). Any job thread, with its own connection. */
void audit_flush_summaries(struct store_conn *db, struct arena *a, bool all);


/* ---- the hash chain (docs/audit.md) ---- */

struct crypto_signer;

/* Signs the heads of all chains when a checkpoint is due: every_events
 * events or every_seconds seconds after the last one (and only when events
 * were appended since). One replica at a time (advisory lock). 1 when one
 * was written, 0 when none was due, -1 on error. */
int audit_checkpoint_maybe(struct store_conn *db, struct crypto_signer *signer, struct arena *a,
                           unsigned every_events, unsigned every_seconds, struct masad_error *err);

/* `masad audit verify`: walks every chain in one snapshot, in constant
 * memory, and checks every stored checkpoint (signature by a certificate
 * that chains to the anchors in ca_file, heads against the chains), and
 * those of an exported file when given. Reports to out; the first fault
 * ends the walk. Returns 0 when the log is intact, 1 on a fault, 2 when it
 * could not run. */
int audit_verify(struct store_conn *db, const char *ca_file, const char *checkpoint_file,
                 FILE *out);

/* `masad audit export-checkpoints`: the checkpoints as JSON lines. */
int audit_export_checkpoints(struct store_conn *db, FILE *out, FILE *err);

/* SHA-256 of one event over the canonical encoding (docs/audit.md). Fields
 * are text as the database gives them; NULL for SQL NULL. */
void audit_event_hash(const char *const fields[10], const unsigned char prev[32],
                      unsigned char out[32]);

#endif
