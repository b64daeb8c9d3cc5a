#ifndef MASAD_STORE_AUDIT_H
#define MASAD_STORE_AUDIT_H
/* The audit log's tables: audit_events in 64 hash chains, audit_heads,
 * audit_checkpoints (docs/audit.md). Text fields are as stored; times are
 * RFC 3339 UTC. */
#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

/* Appends one event per serial (owners: the same count, or NULL), sharing
 * the other fields, to chain `held` (-1: a free one) in one statement
 * (audit_append(), migrations/0005): the head is taken, the hashed events
 * inserted and the head moved. *chain: the chain appended to. detail must
 * be canonical JSON already (it is hashed as given). */
int store_audit_append(struct store_conn *c, struct arena *a, int held, const char *actor,
                       const char *action, const char *const *serials, const char *const *owners,
                       size_t n, const char *outcome, const char *detail, int *chain,
                       struct masad_error *err);
/* Benchmark builds only: the same events without head or hashes. */
int store_audit_insert_unchained(struct store_conn *c, struct arena *a, const char *actor,
                                 const char *action, const char *const *serials,
                                 const char *const *owners, size_t n, const char *outcome,
                                 const char *detail, struct masad_error *err);

struct store_audit_head {
    int chain;
    long long chain_seq;
    unsigned char hash[32];
};
/* Every chain's head, by chain. */
int store_audit_heads(struct store_conn *c, struct arena *a, struct store_audit_head **out,
                      size_t *count, struct masad_error *err);

/* One event as stored. seq, chain, chain_seq are also given as the text the
 * hash covers (docs/audit.md). */
struct store_audit_event {
    long long seq;
    bool chained;                       /* chain and chain_seq are set */
    int chain;
    long long chain_seq;
    const char *at;                     /* to the microsecond, as hashed */
    const char *actor, *action, *serial_number, *owner_id, *outcome, *detail;
    unsigned char prev_hash[32], hash[32];
    bool hashes_ok;                     /* both are 32 bytes */
};
#define STORE_AUDIT_PAGE 1000
/* Up to STORE_AUDIT_PAGE events of `chain` after chain_seq `after`, in order. */
int store_audit_chain_page(struct store_conn *c, struct arena *a, int chain, long long after,
                           struct store_audit_event **out, size_t *count,
                           struct masad_error *err);
/* The seq of an event in no chain: 1 and *seq, 0 when none, -1 on error. */
int store_audit_unchained(struct store_conn *c, struct arena *a, long long *seq,
                          struct masad_error *err);

/* The management API's listing filter (NULL: any). */
struct store_audit_filter {
    long long after_seq;
    const char *serial_number, *owner_id, *action;
    const char *since, *until;          /* RFC 3339, checked by the caller */
    long limit;
};
/* Events matching f, by seq; `at` to the second. */
int store_audit_list(struct store_conn *c, struct arena *a, const struct store_audit_filter *f,
                     struct store_audit_event **out, size_t *count, struct masad_error *err);

/* ---- checkpoints ---- */

struct store_audit_checkpoint {
    long long id;
    const char *at;
    const char *heads;                  /* the signed canonical JSON */
    const unsigned char *signature;     /* CMS SignedData, DER */
    size_t signature_len;
};
/* Up to limit checkpoints after id `after`, by id. */
int store_audit_checkpoint_page(struct store_conn *c, struct arena *a, long long after,
                                long limit, struct store_audit_checkpoint **out, size_t *count,
                                struct masad_error *err);
/* The newest checkpoint: 1 with id, at and age (seconds), 0 when none. */
int store_audit_checkpoint_newest(struct store_conn *c, struct arena *a, long long *id,
                                  const char **at, long long *age, struct masad_error *err);

/* One chain's head as a checkpoint recorded it. */
struct store_audit_mark {
    long long id;                       /* the checkpoint */
    long long chain_seq;
    unsigned char hash[32];
    bool hash_ok;                       /* the recorded hash was 32 bytes of hex */
};
#define STORE_AUDIT_MARKS_PAGE 500
/* Up to STORE_AUDIT_MARKS_PAGE marks of `chain` in checkpoints after id
 * `after`, by checkpoint. */
int store_audit_checkpoint_marks(struct store_conn *c, struct arena *a, int chain,
                                 long long after, struct store_audit_mark **out, size_t *count,
                                 struct masad_error *err);

/* Whether a checkpoint is due, in the caller's transaction. */
struct store_audit_due {
    bool locked;                        /* this replica holds the checkpoint lock */
    const char *now;                    /* the transaction's time, RFC 3339 */
    bool has_last;                      /* a checkpoint exists ... */
    long long last_age;                 /* ... and is this many seconds old */
    long long events;                   /* events appended since it */
};
int store_audit_checkpoint_due(struct store_conn *c, struct arena *a, struct store_audit_due *out,
                               struct masad_error *err);
int store_audit_checkpoint_add(struct store_conn *c, struct arena *a, const char *at,
                               const char *heads, const unsigned char *signature,
                               size_t signature_len, struct masad_error *err);

#endif
