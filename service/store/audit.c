/* The audit log. */
#include <string.h>

#include "common/encoding.h"
#include "store/audit.h"
#include "store/store_internal.h"

#define EVENT_COLUMNS(at)                                                                      \
    "seq, chain, chain_seq, " at ", actor, action, serial_number, owner_id, outcome, detail,"  \
    " prev_hash, hash FROM audit_events"

const struct store_statement store_audit_statements[] = {
    /* appending (docs/audit.md): take the held or a free chain head, insert
     * the hashed events and move the head, in one statement
     * (migrations/0005_audit_hardening.sql) */
    {"audit_append",
     "SELECT audit_append($1::integer, $2, $3, $4::text[], $5::text[], $6, $7)", 7},
    /* benchmark builds only (meson -Dbench_unchained_audit=true): the same
     * events without head lock or hashes, to measure the chain's cost */
    {"audit_insert_unchained",
     "INSERT INTO audit_events (chain, chain_seq, at, actor, action, serial_number, owner_id,"
     " outcome, detail, prev_hash, hash) SELECT 1000000, nextval('audit_events_seq_seq'), now(),"
     " $1, $2, s, o, $3, $4, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')"
     " FROM unnest($5::text[], $6::text[]) AS t(s, o)", 6},
    {"audit_heads", "SELECT chain, chain_seq, hash FROM audit_heads ORDER BY chain", 0},
    /* one page of a chain, in order (verification walks each chain by pages
     * inside one snapshot, in constant memory) */
    {"audit_chain_page",
     "SELECT " EVENT_COLUMNS("audit_time(at)")
     " WHERE chain = $1 AND chain_seq > $2 ORDER BY chain_seq LIMIT 1000", 2},
    {"audit_unchained",
     "SELECT seq FROM audit_events WHERE chain NOT IN (SELECT chain FROM audit_heads)"
     " ORDER BY seq LIMIT 1", 0},
    {"audit_checkpoint_page",
     "SELECT id, " TS("at") ", heads, signature"
     " FROM audit_checkpoints WHERE id > $1 ORDER BY id LIMIT $2", 2},
    /* the newest stored checkpoint and its age in seconds (audit verify) */
    {"audit_checkpoint_newest",
     "SELECT id, " TS("at") ", extract(epoch FROM now() - at)::bigint FROM audit_checkpoints"
     " ORDER BY id DESC LIMIT 1", 0},
    /* the heads a chain's checkpoints recorded, in checkpoint order */
    {"audit_checkpoint_heads",
     "SELECT c.id, (e->>'chain_seq')::bigint, e->>'hash' FROM audit_checkpoints c,"
     " json_array_elements(c.heads::json->'heads') e WHERE (e->>'chain')::integer = $1"
     " AND c.id > $2 ORDER BY c.id LIMIT 500", 2},
    /* is a checkpoint due? seconds since the last one, events since then */
    {"audit_checkpoint_due",
     "SELECT pg_try_advisory_xact_lock(469853219173), " TS("now()") ","
     " (SELECT extract(epoch FROM now() - at)::bigint FROM audit_checkpoints ORDER BY id DESC LIMIT 1),"
     " (SELECT sum(chain_seq) FROM audit_heads) - coalesce((SELECT sum((e->>'chain_seq')::bigint)"
     "   FROM (SELECT heads FROM audit_checkpoints ORDER BY id DESC LIMIT 1) c,"
     "   json_array_elements(c.heads::json->'heads') e), 0)", 0},
    {"audit_checkpoint_add",
     "INSERT INTO audit_checkpoints (at, heads, signature) VALUES ($1, $2, $3)", 3},
    {"audit_list",
     "SELECT " EVENT_COLUMNS(TS("at"))
     " WHERE seq > $1 AND ($2::text IS NULL OR serial_number = $2)"
     " AND ($3::text IS NULL OR owner_id = $3) AND ($4::text IS NULL OR action = $4)"
     " AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)"
     " ORDER BY seq LIMIT $7", 7},
    {NULL, NULL, 0},
};

/* serials and owners as the two text[] parameters (owners NULL: all NULL) */
static void event_arrays(struct arena *a, const char *const *serials, const char *const *owners,
                         size_t n, const char **serial_array, const char **owner_array)
{
    const char **none = arena_alloc(a, (n ? n : 1) * sizeof(char *));
    *serial_array = store_text_array(a, serials, n);
    *owner_array = store_text_array(a, owners ? owners : none, n);
}

int store_audit_append(struct store_conn *c, struct arena *a, int held, const char *actor,
                       const char *action, const char *const *serials, const char *const *owners,
                       size_t n, const char *outcome, const char *detail, int *chain,
                       struct masad_error *err)
{
    char held_text[16];
    snprintf(held_text, sizeof(held_text), "%d", held);
    const char *s, *o;
    event_arrays(a, serials, owners, n, &s, &o);
    struct store_param p[] = {P_TEXT(held >= 0 ? held_text : NULL), P_TEXT(actor), P_TEXT(action),
                              P_TEXT(s), P_TEXT(o), P_TEXT(outcome), P_TEXT(detail)};
    PGresult *r;
    if (store_run(c, a, "audit_append", 7, p, &r, err) != 0)
        return -1;
    *chain = (int)row_int(r, 0, 0);
    return 0;
}

int store_audit_insert_unchained(struct store_conn *c, struct arena *a, const char *actor,
                                 const char *action, const char *const *serials,
                                 const char *const *owners, size_t n, const char *outcome,
                                 const char *detail, struct masad_error *err)
{
    const char *s, *o;
    event_arrays(a, serials, owners, n, &s, &o);
    struct store_param p[] = {P_TEXT(actor), P_TEXT(action), P_TEXT(outcome), P_TEXT(detail),
                              P_TEXT(s), P_TEXT(o)};
    return store_run(c, a, "audit_insert_unchained", 6, p, NULL, err);
}

/* a 32-byte bytea column into out; false when it is not 32 bytes */
static bool hash_column(struct arena *a, const PGresult *r, int row, int col,
                        unsigned char out[32])
{
    size_t len = 0;
    unsigned char *h = row_bytea(a, r, row, col, &len);
    if (!h || len != 32) {
        memset(out, 0, 32);
        return false;
    }
    memcpy(out, h, 32);
    return true;
}

int store_audit_heads(struct store_conn *c, struct arena *a, struct store_audit_head **out,
                      size_t *count, struct masad_error *err)
{
    PGresult *r;
    if (store_run(c, a, "audit_heads", 0, NULL, &r, err) != 0)
        return -1;
    size_t n = (size_t)PQntuples(r);
    struct store_audit_head *h = arena_alloc(a, (n ? n : 1) * sizeof(*h));
    for (int i = 0; i < (int)n; i++) {
        h[i].chain = (int)row_int(r, i, 0);
        h[i].chain_seq = row_int(r, i, 1);
        hash_column(a, r, i, 2, h[i].hash);
    }
    *out = h;
    *count = n;
    return 0;
}

static struct store_audit_event *read_events(struct arena *a, const PGresult *r, size_t *count)
{
    size_t n = (size_t)PQntuples(r);
    struct store_audit_event *e = arena_alloc(a, (n ? n : 1) * sizeof(*e));
    for (int i = 0; i < (int)n; i++) {
        e[i].seq = row_int(r, i, 0);
        e[i].chained = !PQgetisnull(r, i, 1) && !PQgetisnull(r, i, 2);
        e[i].chain = (int)row_int(r, i, 1);
        e[i].chain_seq = row_int(r, i, 2);
        e[i].at = row_text(r, i, 3);
        e[i].actor = row_text(r, i, 4);
        e[i].action = row_text(r, i, 5);
        e[i].serial_number = row_text(r, i, 6);
        e[i].owner_id = row_text(r, i, 7);
        e[i].outcome = row_text(r, i, 8);
        e[i].detail = row_text(r, i, 9);
        e[i].hashes_ok = hash_column(a, r, i, 10, e[i].prev_hash) &
                         hash_column(a, r, i, 11, e[i].hash);
    }
    *count = n;
    return e;
}

/* Runs a statement whose two parameters are integers. */
static int run_numbers(struct store_conn *c, struct arena *a, const char *name, long long x,
                       long long y, PGresult **r, struct masad_error *err)
{
    char xs[24], ys[24];
    snprintf(xs, sizeof(xs), "%lld", x);
    snprintf(ys, sizeof(ys), "%lld", y);
    struct store_param p[] = {P_TEXT(xs), P_TEXT(ys)};
    return store_run(c, a, name, 2, p, r, err);
}

int store_audit_chain_page(struct store_conn *c, struct arena *a, int chain, long long after,
                           struct store_audit_event **out, size_t *count,
                           struct masad_error *err)
{
    PGresult *r;
    if (run_numbers(c, a, "audit_chain_page", chain, after, &r, err) != 0)
        return -1;
    *out = read_events(a, r, count);
    return 0;
}

int store_audit_unchained(struct store_conn *c, struct arena *a, long long *seq,
                          struct masad_error *err)
{
    PGresult *r;
    if (store_run(c, a, "audit_unchained", 0, NULL, &r, err) != 0)
        return -1;
    if (PQntuples(r) == 0)
        return 0;
    *seq = row_int(r, 0, 0);
    return 1;
}

int store_audit_list(struct store_conn *c, struct arena *a, const struct store_audit_filter *f,
                     struct store_audit_event **out, size_t *count, struct masad_error *err)
{
    char after[24], limit[24];
    snprintf(after, sizeof(after), "%lld", f->after_seq);
    snprintf(limit, sizeof(limit), "%ld", f->limit);
    struct store_param p[] = {P_TEXT(after),    P_TEXT(f->serial_number), P_TEXT(f->owner_id),
                              P_TEXT(f->action), P_TEXT(f->since),        P_TEXT(f->until),
                              P_TEXT(limit)};
    PGresult *r;
    if (store_run(c, a, "audit_list", 7, p, &r, err) != 0)
        return -1;
    *out = read_events(a, r, count);
    return 0;
}

int store_audit_checkpoint_page(struct store_conn *c, struct arena *a, long long after,
                                long limit, struct store_audit_checkpoint **out, size_t *count,
                                struct masad_error *err)
{
    PGresult *r;
    if (run_numbers(c, a, "audit_checkpoint_page", after, limit, &r, err) != 0)
        return -1;
    size_t n = (size_t)PQntuples(r);
    struct store_audit_checkpoint *k = arena_alloc(a, (n ? n : 1) * sizeof(*k));
    for (int i = 0; i < (int)n; i++) {
        k[i].id = row_int(r, i, 0);
        k[i].at = row_text(r, i, 1);
        k[i].heads = row_text(r, i, 2);
        k[i].signature = row_bytea(a, r, i, 3, &k[i].signature_len);
    }
    *out = k;
    *count = n;
    return 0;
}

int store_audit_checkpoint_newest(struct store_conn *c, struct arena *a, long long *id,
                                  const char **at, long long *age, struct masad_error *err)
{
    PGresult *r;
    if (store_run(c, a, "audit_checkpoint_newest", 0, NULL, &r, err) != 0)
        return -1;
    if (PQntuples(r) == 0)
        return 0;
    *id = row_int(r, 0, 0);
    *at = row_text(r, 0, 1);
    *age = row_int(r, 0, 2);
    return 1;
}

int store_audit_checkpoint_marks(struct store_conn *c, struct arena *a, int chain,
                                 long long after, struct store_audit_mark **out, size_t *count,
                                 struct masad_error *err)
{
    PGresult *r;
    if (run_numbers(c, a, "audit_checkpoint_heads", chain, after, &r, err) != 0)
        return -1;
    size_t n = (size_t)PQntuples(r);
    struct store_audit_mark *m = arena_alloc(a, (n ? n : 1) * sizeof(*m));
    for (int i = 0; i < (int)n; i++) {
        const char *hex = row_text(r, i, 2);
        m[i].id = row_int(r, i, 0);
        m[i].chain_seq = row_int(r, i, 1);
        /* the head as the checkpoint's signed JSON spells it: 64 hex digits */
        m[i].hash_ok = hex && strlen(hex) == 64 && hex_decode_to(hex, m[i].hash, 32) == 32;
    }
    *out = m;
    *count = n;
    return 0;
}

int store_audit_checkpoint_due(struct store_conn *c, struct arena *a, struct store_audit_due *out,
                               struct masad_error *err)
{
    PGresult *r;
    if (store_run(c, a, "audit_checkpoint_due", 0, NULL, &r, err) != 0)
        return -1;
    out->locked = row_bool(r, 0, 0);
    out->now = row_text(r, 0, 1);
    out->has_last = !PQgetisnull(r, 0, 2);
    out->last_age = row_int(r, 0, 2);
    out->events = row_int(r, 0, 3);
    return 0;
}

int store_audit_checkpoint_add(struct store_conn *c, struct arena *a, const char *at,
                               const char *heads, const unsigned char *signature,
                               size_t signature_len, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(at), P_TEXT(heads), P_BYTES(signature, signature_len)};
    return store_run(c, a, "audit_checkpoint_add", 3, p, NULL, err);
}
