#include "audit/audit.h"
#include "common/base64.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "store/store.h"

/* The hash covers the detail's text: write it canonically (docs/audit.md:
 * no whitespace, object keys in byte order) so that an auditor can rebuild
 * the text from the parsed value. */
static const char *canonical(struct arena *a, const char *detail)
{
    struct json_value *v;
    struct masad_error err;
    if (!detail || json_parse(a, detail, strlen(detail), 64, &v, &err) != 0)
        return NULL;
    yajl_gen g = json_gen_new();
    json_write_canonical(g, v);
    return json_finish(g, a, NULL);
}


/* The chain head, time and sequence numbers for n events. */
struct place {
    const char *chain;
    long long chain_seq;
    unsigned char hash[32];
    const char *at;
    const char **seqs;
};

/* The chain this thread's current transaction holds, if it appended before:
 * appending again goes straight to it (docs/audit.md, Chains). */
static __thread struct {
    const struct store_conn *db;
    unsigned long transaction;
    char chain[16];
} held;

static int take_place(struct store_conn *db, struct arena *a, size_t n, struct place *p,
                      struct masad_error *err)
{
    PGresult *r;
    unsigned long tx = store_transaction(db);
    bool holding = tx && held.db == db && held.transaction == tx;
    const char *params[] = {arena_printf(a, "%zu", n), holding ? held.chain : NULL};
    if (store_exec(db, a, "audit_take", 2, params, &r, err) != 0)
        return -1;
    p->chain = PQgetvalue(r, 0, 0);
    p->chain_seq = atoll(PQgetvalue(r, 0, 1));
    held.db = db;
    held.transaction = tx;
    snprintf(held.chain, sizeof(held.chain), "%s", p->chain);
    p->at = PQgetvalue(r, 0, 3);
    size_t hash_len;
    const unsigned char *hash = hex_decode(a, PQgetvalue(r, 0, 2), &hash_len);
    if (!hash || hash_len != 32)
        return error_set(err, 500, "audit", "a chain head's hash is malformed");
    memcpy(p->hash, hash, 32);
    /* "{17,18,19}" */
    p->seqs = arena_alloc(a, n * sizeof(char *));
    char *list = arena_strdup(a, PQgetvalue(r, 0, 4) + 1), *save = NULL;
    size_t i = 0;
    for (char *s = strtok_r(list, ",}", &save); s && i < n; s = strtok_r(NULL, ",}", &save))
        p->seqs[i++] = s;
    return i == n ? 0 : error_set(err, 500, "audit", "too few sequence numbers");
}

/* Appends n events to one chain in the caller's transaction: the hashes are
 * computed here (docs/audit.md), the rows and the new head written at once. */
static int append_chained(struct store_conn *db, struct arena *a, const struct audit_event *e,
                          const char *const *serials, const char *const *owners, size_t n,
                          struct masad_error *err)
{
    struct place p;
    if (take_place(db, a, n, &p, err) != 0)
        return -1;
    const char *detail = canonical(a, e->detail);
    const char **cs = arena_alloc(a, n * sizeof(char *)), **prev = arena_alloc(a, n * sizeof(char *)),
               **hash = arena_alloc(a, n * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        cs[i] = arena_printf(a, "%lld", p.chain_seq + 1 + (long long)i);
        const char *fields[10] = {p.seqs[i], p.chain, cs[i], p.at, e->actor, e->action,
                                  serials[i], owners ? owners[i] : NULL, e->outcome, detail};
        prev[i] = hex_encode(a, p.hash, 32);
        audit_event_hash(fields, p.hash, p.hash);
        hash[i] = hex_encode(a, p.hash, 32);
    }
    const char **none = arena_alloc(a, n * sizeof(char *));
    const char *params[] = {store_text_array(a, p.seqs, n), p.chain, store_text_array(a, cs, n),
                            p.at, e->actor, e->action, store_text_array(a, serials, n),
                            store_text_array(a, owners ? owners : none, n), e->outcome, detail,
                            store_text_array(a, prev, n), store_text_array(a, hash, n),
                            cs[n - 1], hash[n - 1]};
    return store_exec(db, a, "audit_insert", 14, params, NULL, err);
}

#ifdef MASAD_BENCH_UNCHAINED_AUDIT
/* Benchmark builds only (tests/bench/brski.sh): no chain, to measure its cost. */
#define append append_unchained
static int append_unchained(struct store_conn *db, struct arena *a, const struct audit_event *e,
                            const char *const *serials, const char *const *owners, size_t n,
                            struct masad_error *err)
{
    const char **none = arena_alloc(a, n * sizeof(char *));
    const char *params[] = {e->actor, e->action, e->outcome, canonical(a, e->detail),
                            store_text_array(a, serials, n),
                            store_text_array(a, owners ? owners : none, n)};
    (void)append_chained;
    return store_exec(db, a, "audit_insert_unchained", 6, params, NULL, err);
}
#else
#define append append_chained
#endif

int audit_append(struct store_conn *db, struct arena *a, const struct audit_event *e,
                 struct masad_error *err)
{
    return append(db, a, e, &e->serial_number, &e->owner_id, 1, err);
}

int audit_append_many(struct store_conn *db, struct arena *a, const char *actor,
                      const char *action, const char *outcome, const char *const *serials,
                      const char *const *owners, size_t count, const char *detail,
                      struct masad_error *err)
{
    if (count == 0)
        return 0;
    struct audit_event e = {actor, action, NULL, NULL, outcome, detail};
    return append(db, a, &e, serials, owners, count, err);
}

void audit_refusal(struct store_conn *db, struct arena *a, const struct audit_event *e)
{
    struct masad_error err;
    if (audit_append(db, a, e, &err) != 0)
        log_error("audit: cannot record the refusal %s of %s: %s", e->action,
                  e->actor ? e->actor : "?", err.message);
}
