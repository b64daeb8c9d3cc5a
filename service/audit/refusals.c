/* Refusals: recorded on their own, and for callers who proved no identity,
 * counted rather than written one by one (docs/audit.md, Bounds). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "common/json.h"
#include "common/refusal.h"
#include "common/log.h"
#include "store/store.h"

/* Sources tracked at once; past that, new sources share one entry ("*"),
 * so memory stays bounded whatever the number of addresses. */
#define SUMMARY_SOURCES 1024
#define OVERFLOW_ENTRIES 16

struct summary {
    char action[64];
    char source[64];            /* "" : a free entry */
    char actor[AUDIT_ACTOR_MAX + 1];
    long long opened_ms;        /* monotonic start of the window */
    char opened_at[32];         /* the same, as UTC text for the event */
    unsigned written;           /* refusals written one by one in this window */
    unsigned long long count;   /* refusals after those, only counted */
};

static struct {
    pthread_mutex_t mu;
    struct summary entries[SUMMARY_SOURCES];
} table = {.mu = PTHREAD_MUTEX_INITIALIZER};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void utc_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool expired(const struct summary *s, long long now)
{
    return now - s->opened_ms >= AUDIT_SUMMARY_WINDOW_SECONDS * 1000LL;
}

/* The open entry of (action, source), or NULL. */
static struct summary *find(const char *action, const char *source, long long now)
{
    for (size_t i = 0; i < SUMMARY_SOURCES; i++) {
        struct summary *s = &table.entries[i];
        if (s->source[0] && !expired(s, now) && !strcmp(s->source, source) &&
            !strcmp(s->action, action))
            return s;
    }
    return NULL;
}

/* A free entry for a source; the last OVERFLOW_ENTRIES are kept for the
 * shared "*" source of each action. */
static struct summary *free_entry(const char *source)
{
    bool shared = !strcmp(source, "*");
    for (size_t i = shared ? SUMMARY_SOURCES - OVERFLOW_ENTRIES : 0;
         i < (shared ? SUMMARY_SOURCES : SUMMARY_SOURCES - OVERFLOW_ENTRIES); i++)
        if (!table.entries[i].source[0])
            return &table.entries[i];
    return NULL;
}

static void open_window(struct summary *s, const struct audit_event *e, const char *source,
                        long long now)
{
    snprintf(s->action, sizeof(s->action), "%s", e->action);
    snprintf(s->source, sizeof(s->source), "%s", source);
    snprintf(s->actor, sizeof(s->actor), "%s", e->actor ? e->actor : "");
    s->opened_ms = now;
    utc_now(s->opened_at, sizeof(s->opened_at));
    s->written = 1;
    s->count = 0;
}

/* Under table.mu: true when this refusal is to be written (one of the
 * first AUDIT_SUMMARY_FIRST of its window, or untracked), false when it was
 * only counted. */
static bool count_or_open(const struct audit_event *e, const char *source, long long now)
{
    struct summary *s = find(e->action, source, now);
    if (!s) {
        struct summary *fresh = free_entry(source);
        if (!fresh) { /* full: new sources share one entry per action */
            source = "*";
            s = find(e->action, source, now);
            fresh = s ? NULL : free_entry(source);
        }
        if (fresh) {
            open_window(fresh, e, source, now);
            return true;
        }
    }
    if (!s)
        return true;
    if (s->written < AUDIT_SUMMARY_FIRST) {
        s->written++;
        return true;
    }
    s->count++;
    return false;
}

static void write_refusal(struct store_conn *db, struct arena *a, const struct audit_event *e,
                          bool is_canonical)
{
    struct masad_error err;
    if ((is_canonical ? audit_append_canonical : audit_append)(db, a, e, &err) != 0)
        log_error("audit: cannot record the refusal %s of %s: %s", e->action,
                  e->actor ? audit_bounded(a, e->actor, 80) : "?", err.message);
}

static void refusal(struct store_conn *db, struct arena *a, const struct audit_event *e,
                    bool is_canonical, const char *source, bool authenticated)
{
    store_rollback(db);
    if (!e)
        return;
    if (!authenticated) {
        /* windows that ended are written first, which also frees their entries */
        audit_flush_summaries(db, a, false);
        pthread_mutex_lock(&table.mu);
        bool write = count_or_open(e, source && *source ? source : "-", now_ms());
        pthread_mutex_unlock(&table.mu);
        if (!write)
            return;
    }
    write_refusal(db, a, e, is_canonical);
}

void audit_refusal(struct store_conn *db, struct arena *a, const struct audit_event *e,
                   const char *source, bool authenticated)
{
    refusal(db, a, e, false, source, authenticated);
}

void audit_refusal_canonical(struct store_conn *db, struct arena *a, const struct audit_event *e,
                             const char *source, bool authenticated)
{
    refusal(db, a, e, true, source, authenticated);
}

void audit_refuse(struct store_conn *db, struct arena *a, const struct refusal *r,
                  const char *actor, const char *serial, const char *owner, const char *peer,
                  bool authenticated, const char *const *more)
{
    struct audit_detail *d = audit_detail_new(a);
    audit_detail_int(d, "status", r->status);
    audit_detail_str(d, "reason", r->sentence);
    for (const char *const *m = more; m && m[0]; m += 2)
        audit_detail_str(d, m[0], m[1]);
    audit_detail_str(d, "peer", peer);
    struct audit_event e = {actor, r->action, serial, owner, "refused", audit_detail_text(d)};
    refusal(db, a, r->status != 503 ? &e : NULL, true, peer, authenticated);
}

static void write_summary(struct store_conn *db, struct arena *a, const struct summary *s)
{
    struct audit_detail *d = audit_detail_new(a);
    audit_detail_int(d, "count", (long long)s->count);
    audit_detail_str(d, "source", s->source);
    audit_detail_str(d, "since", s->opened_at);
    audit_detail_int(d, "window_seconds", AUDIT_SUMMARY_WINDOW_SECONDS);
    struct audit_event e = {s->actor, arena_printf(a, "%s.summary", s->action), NULL, NULL,
                            "refused", audit_detail_text(d)};
    write_refusal(db, a, &e, true);
}

/* Takes up to max entries whose window has ended (all: every entry) out of
 * the table; the number taken. */
static size_t take_due(struct summary *out, size_t max, bool all, long long now)
{
    size_t n = 0;
    pthread_mutex_lock(&table.mu);
    for (size_t i = 0; i < SUMMARY_SOURCES && n < max; i++) {
        struct summary *s = &table.entries[i];
        if (s->source[0] && (all || expired(s, now))) {
            out[n++] = *s;
            s->source[0] = '\0';
        }
    }
    pthread_mutex_unlock(&table.mu);
    return n;
}

void audit_flush_summaries(struct store_conn *db, struct arena *a, bool all)
{
    long long now = now_ms();
    struct summary due[8];
    size_t n;
    do {
        n = take_due(due, sizeof(due) / sizeof(due[0]), all, now);
        for (size_t i = 0; i < n; i++)
            if (due[i].count)
                write_summary(db, a, &due[i]);
    } while (n == sizeof(due) / sizeof(due[0]));
}
