#include "audit/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "store/audit.h"

/* The hash covers the detail's text: write it canonically (docs/audit.md:
 * no whitespace, object keys in byte order) so that an auditor can rebuild
 * the text from the parsed value. A detail built with audit_detail_* is
 * canonical already and goes as it is. */
static const char *canonical(struct arena *a, const char *detail, bool is_canonical)
{
    if (is_canonical)
        return detail;
    struct json_value *v;
    struct masad_error err;
    if (!detail || json_parse(a, detail, strlen(detail), 64, &v, &err) != 0)
        return NULL;
    yajl_gen g = json_gen_new();
    json_write_canonical(g, v);
    return json_finish(g, a, NULL);
}


/* ---- bounds (docs/audit.md, Bounds) ---- */

/* The longest prefix of s of at most max bytes that ends on a UTF-8
 * character boundary. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static const char truncation_mark[] = "\xe2\x80\xa6"; /* U+2026 HORIZONTAL ELLIPSIS */

const char *audit_bounded(struct arena *a, const char *s, size_t max)
{
    size_t len = s ? strlen(s) : 0;
    if (len <= max)
        return s;
    size_t keep = utf8_prefix(s, max - (sizeof(truncation_mark) - 1));
    return arena_printf(a, "%.*s%s", (int)keep, s, truncation_mark);
}

/* A detail over AUDIT_DETAIL_MAX bytes becomes {"truncated":"<its start>…"}:
 * still a JSON object, canonical, and within the bound. */
static const char *bounded_detail(struct arena *a, const char *detail)
{
    if (!detail || strlen(detail) <= AUDIT_DETAIL_MAX)
        return detail;
    for (size_t keep = AUDIT_DETAIL_MAX - 32;; keep -= keep / 8 + 1) {
        yajl_gen g = json_gen_new();
        json_open(g);
        json_kv_str(g, "truncated", audit_bounded(a, detail, keep));
        json_close(g);
        size_t len;
        const char *out = json_finish(g, a, &len);
        if (len <= AUDIT_DETAIL_MAX)
            return out;
    }
}

/* The chain this thread's current transaction holds, if it appended before:
 * appending again goes straight to it (docs/audit.md, Chains). */
static __thread struct {
    const struct store_conn *db;
    unsigned long transaction;
    int chain;
} held;

/* Appends n events to one chain: the database takes the head, hashes and
 * inserts the events and moves the head in one statement, so that the head
 * is held from take to move even outside a transaction. */
static int append_chained(struct store_conn *db, struct arena *a, const struct audit_event *e,
                          bool is_canonical, const char *const *serials, const char *const *owners,
                          size_t n, struct masad_error *err)
{
    unsigned long tx = store_transaction(db);
    bool holding = tx && held.db == db && held.transaction == tx;
    int chain;
    if (store_audit_append(db, a, holding ? held.chain : -1,
                           audit_bounded(a, e->actor, AUDIT_ACTOR_MAX), e->action, serials, owners,
                           n, e->outcome, bounded_detail(a, canonical(a, e->detail, is_canonical)), &chain, err) != 0)
        return -1;
    held.db = db;
    held.transaction = tx;
    held.chain = chain;
    return 0;
}

#ifdef MASAD_BENCH_UNCHAINED_AUDIT
/* Benchmark builds only (tests/bench/brski.sh): no chain, to measure its cost. */
#define append append_unchained
static int append_unchained(struct store_conn *db, struct arena *a, const struct audit_event *e,
                            bool is_canonical, const char *const *serials,
                            const char *const *owners, size_t n, struct masad_error *err)
{
    (void)append_chained;
    return store_audit_insert_unchained(db, a, audit_bounded(a, e->actor, AUDIT_ACTOR_MAX),
                                        e->action, serials, owners, n, e->outcome,
                                        bounded_detail(a, canonical(a, e->detail, is_canonical)), err);
}
#else
#define append append_chained
#endif

int audit_append(struct store_conn *db, struct arena *a, const struct audit_event *e,
                 struct masad_error *err)
{
    return append(db, a, e, false, &e->serial_number, &e->owner_id, 1, err);
}

int audit_append_canonical(struct store_conn *db, struct arena *a, const struct audit_event *e,
                           struct masad_error *err)
{
    return append(db, a, e, true, &e->serial_number, &e->owner_id, 1, err);
}

int audit_append_many(struct store_conn *db, struct arena *a, const char *actor,
                      const char *action, const char *outcome, const char *const *serials,
                      const char *const *owners, size_t count, const char *detail,
                      struct masad_error *err)
{
    if (count == 0)
        return 0;
    struct audit_event e = {actor, action, NULL, NULL, outcome, detail};
    return append(db, a, &e, false, serials, owners, count, err);
}
