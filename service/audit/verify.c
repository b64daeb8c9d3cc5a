/* `masad audit verify`: the hash chains and the signed checkpoints. */
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/encoding.h"
#include "audit/audit.h"
#include "common/json.h"
#include "store/audit.h"

/* a checkpoint's record of one chain's head */
struct mark {
    long long id;
    int chain;
    long long chain_seq;
    unsigned char hash[32];
};

struct verify {
    struct store_conn *db;
    FILE *out;
    X509_STORE *anchors;
    struct mark *file_marks;     /* from an exported file, sorted by chain, chain_seq */
    size_t file_count;
    long long events, checkpoints, file_checkpoints;
    long long file_most_events;  /* the most events an exported checkpoint counted */
    long long file_most_id;      /* that checkpoint */
    bool fault;
};

/* exactly n bytes of hex */
static int unhex(const char *s, unsigned char *out, size_t n)
{
    return s && strlen(s) == 2 * n && hex_decode_to(s, out, n) == (long)n ? 0 : -1;
}

static void fault(struct verify *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fault(struct verify *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(v->out, "FAULT: ");
    vfprintf(v->out, fmt, ap);
    fprintf(v->out, "\n");
    va_end(ap);
    v->fault = true;
}

/* ---- checkpoint signatures ---- */

static X509_STORE *load_anchors(const char *path, FILE *out)
{
    BIO *in = BIO_new_file(path, "r");
    if (!in) {
        fprintf(out, "masad: cannot read the trust anchors %s\n", path);
        return NULL;
    }
    X509_STORE *store = X509_STORE_new();
    X509 *x;
    int n = 0;
    while ((x = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(store, x);
        X509_free(x);
        n++;
    }
    ERR_clear_error();
    BIO_free(in);
    X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
    if (n == 0) {
        fprintf(out, "masad: %s holds no certificate\n", path);
        X509_STORE_free(store);
        return NULL;
    }
    return store;
}

/* The signed text of a checkpoint's CMS (NUL-terminated, in a), or NULL. */
static char *signed_der_text(struct verify *v, struct arena *a, const unsigned char *p, size_t len)
{
    CMS_ContentInfo *cms = p && len > 0 ? d2i_CMS_ContentInfo(NULL, &p, (long)len) : NULL;
    BIO *content = BIO_new(BIO_s_mem());
    char *text = NULL;
    if (cms && CMS_verify(cms, NULL, v->anchors, NULL, content, CMS_BINARY) == 1) {
        char *data;
        long clen = BIO_get_mem_data(content, &data);
        text = arena_strndup(a, data, (size_t)clen);
    }
    ERR_clear_error();
    BIO_free(content);
    CMS_ContentInfo_free(cms);
    return text;
}

/* The same for an exported checkpoint's base64 signature. */
static char *signed_text(struct verify *v, struct arena *a, const char *signature_b64)
{
    size_t len = 0;
    const unsigned char *p = base64_decode(a, signature_b64, strlen(signature_b64), &len);
    return signed_der_text(v, a, p, len);
}

static int check_stored_signatures(struct verify *v)
{
    struct arena *a = arena_new();
    struct masad_error err;
    long long after = 0;
    for (bool more = true; more && !v->fault;) {
        struct store_audit_checkpoint *k;
        size_t n;
        if (store_audit_checkpoint_page(v->db, a, after, 200, &k, &n, &err) != 0) {
            fprintf(v->out, "masad: %s\n", err.message);
            arena_free(a);
            return -1;
        }
        for (size_t i = 0; i < n && !v->fault; i++) {
            const char *text = signed_der_text(v, a, k[i].signature, k[i].signature_len);
            if (!text)
                fault(v, "checkpoint %lld: its signature does not verify with the trust anchors",
                      k[i].id);
            else if (strcmp(text, k[i].heads) != 0)
                fault(v, "checkpoint %lld: the stored heads differ from what was signed", k[i].id);
            v->checkpoints++;
            after = k[i].id;
        }
        more = n == 200;
        arena_reset(a);
    }
    arena_free(a);
    return 0;
}

/* ---- an exported checkpoint file (JSON lines) ---- */

static int by_position(const void *x, const void *y)
{
    const struct mark *m = x, *n = y;
    if (m->chain != n->chain)
        return m->chain < n->chain ? -1 : 1;
    return m->chain_seq < n->chain_seq ? -1 : m->chain_seq > n->chain_seq;
}

static void add_marks(struct verify *v, long long id, const struct json_value *heads)
{
    long long events = 0;
    for (size_t i = 0; heads && heads->type == JSON_ARRAY && i < heads->count; i++) {
        const struct json_value *c = json_get(heads->items[i], "chain"),
                                *cs = json_get(heads->items[i], "chain_seq"),
                                *h = json_get(heads->items[i], "hash");
        struct mark m = {id, c ? atoi(c->text) : -1, cs ? atoll(cs->text) : -1, {0}};
        if (!c || !cs || !h || unhex(h->text, m.hash, 32) != 0) {
            fault(v, "checkpoint %lld in the file: a head is malformed", id);
            return;
        }
        v->file_marks = realloc(v->file_marks, (v->file_count + 1) * sizeof(*v->file_marks));
        v->file_marks[v->file_count++] = m;
        events += m.chain_seq > 0 ? m.chain_seq : 0;
    }
    if (events > v->file_most_events) {
        v->file_most_events = events;
        v->file_most_id = id;
    }
}

static int load_file(struct verify *v, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(v->out, "masad: cannot read %s\n", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    struct arena *a = arena_new();
    for (long lineno = 1; !v->fault && (n = getline(&line, &cap, f)) > 0; lineno++, arena_reset(a)) {
        struct json_value *entry, *content;
        struct masad_error err;
        const struct json_value *sig, *id;
        if (json_parse(a, line, (size_t)n, 8, &entry, &err) != 0 ||
            !(sig = json_get(entry, "signature")) || sig->type != JSON_STRING ||
            !(id = json_get(entry, "id"))) {
            fault(v, "%s line %ld: not an exported checkpoint", path, lineno);
            break;
        }
        /* only what the signature covers counts */
        const char *text = signed_text(v, a, sig->text);
        if (!text || json_parse(a, text, strlen(text), 8, &content, &err) != 0) {
            fault(v, "checkpoint %s in %s: its signature does not verify with the trust anchors",
                  id->text, path);
            break;
        }
        add_marks(v, atoll(id->text), json_get(content, "heads"));
        v->file_checkpoints++;
    }
    free(line);
    fclose(f);
    arena_free(a);
    qsort(v->file_marks, v->file_count, sizeof(*v->file_marks), by_position);
    return 0;
}

/* ---- walking one chain ---- */

/* The stored checkpoints' marks for one chain, fetched page by page. */
struct marks_iter {
    struct verify *v;
    int chain;
    struct arena *a;
    struct store_audit_mark *page;
    size_t count, row;
    bool fetched;
    long long after_id;
    bool done;
};

static bool next_stored_mark(struct marks_iter *it, struct mark *m)
{
    while (!it->done && (!it->fetched || it->row >= it->count)) {
        if (it->fetched && it->count < STORE_AUDIT_MARKS_PAGE) {
            it->done = true;
            break;
        }
        arena_reset(it->a);
        struct masad_error err;
        it->row = 0;
        it->fetched = true;
        if (store_audit_checkpoint_marks(it->v->db, it->a, it->chain, it->after_id, &it->page,
                                         &it->count, &err) != 0) {
            fault(it->v, "cannot read the checkpoints: %s", err.message);
            it->done = true;
        }
    }
    if (it->done)
        return false;
    const struct store_audit_mark *s = &it->page[it->row++];
    m->id = it->after_id = s->id;
    m->chain = it->chain;
    m->chain_seq = s->hash_ok ? s->chain_seq : -1;
    memcpy(m->hash, s->hash, 32);
    return true;
}

struct walk {
    struct verify *v;
    int chain;
    long long chain_seq;         /* of the last event seen */
    unsigned char hash[32];      /* its hash (zeros before the first) */
    struct marks_iter stored;
    struct mark pending;         /* the next stored mark to meet */
    bool has_pending;
    size_t file_next;            /* index into v->file_marks */
};

static void check_mark(struct walk *w, const struct mark *m, const char *source)
{
    if (m->chain_seq < 0)
        fault(w->v, "checkpoint %lld%s: its head of chain %d is malformed", m->id, source, w->chain);
    else if (memcmp(m->hash, w->hash, 32) != 0)
        fault(w->v, "checkpoint %lld%s: chain %d at chain_seq %lld differs from what was signed "
                    "(the chain was rewritten after the checkpoint)", m->id, source, w->chain,
              m->chain_seq);
}

/* Checks the marks that record the position the walk has reached. */
static void meet_marks(struct walk *w)
{
    while (!w->v->fault && w->has_pending && w->pending.chain_seq <= w->chain_seq) {
        if (w->pending.chain_seq == w->chain_seq || w->pending.chain_seq < 0)
            check_mark(w, &w->pending, "");
        w->has_pending = next_stored_mark(&w->stored, &w->pending);
    }
    struct verify *v = w->v;
    while (!v->fault && w->file_next < v->file_count &&
           v->file_marks[w->file_next].chain == w->chain &&
           v->file_marks[w->file_next].chain_seq <= w->chain_seq) {
        if (v->file_marks[w->file_next].chain_seq == w->chain_seq)
            check_mark(w, &v->file_marks[w->file_next], " (exported)");
        w->file_next++;
    }
}

static void check_event(struct walk *w, const struct store_audit_event *e)
{
    char seq[24], chain[16], chain_seq[24];
    snprintf(seq, sizeof(seq), "%lld", e->seq);
    snprintf(chain, sizeof(chain), "%d", e->chain);
    snprintf(chain_seq, sizeof(chain_seq), "%lld", e->chain_seq);
    /* the hash covers the fields as the database writes them as text */
    const char *fields[10] = {seq,          chain,     chain_seq,        e->at,
                              e->actor,     e->action, e->serial_number, e->owner_id,
                              e->outcome,   e->detail};
    long long cs = e->chain_seq;
    unsigned char computed[32];
    if (cs != w->chain_seq + 1) {
        fault(w->v, "chain %d: chain_seq %lld to %lld missing before seq %s (events were deleted)",
              w->chain, w->chain_seq + 1, cs - 1, seq);
        return;
    }
    if (!e->hashes_ok || memcmp(e->prev_hash, w->hash, 32) != 0) {
        fault(w->v, "chain %d: seq %s (chain_seq %lld) does not link to the event before it "
                    "(an event was inserted, moved or reordered)", w->chain, seq, cs);
        return;
    }
    audit_event_hash(fields, e->prev_hash, computed);
    if (memcmp(e->hash, computed, 32) != 0) {
        fault(w->v, "chain %d: seq %s (chain_seq %lld): its hash does not match its fields "
                    "(the event was edited)", w->chain, seq, cs);
        return;
    }
    w->chain_seq = cs;
    memcpy(w->hash, e->hash, 32);
    w->v->events++;
    meet_marks(w);
}

static void finish_chain(struct walk *w, const struct store_audit_head *head)
{
    if (head->chain_seq != w->chain_seq || memcmp(head->hash, w->hash, 32) != 0) {
        fault(w->v, "chain %d: its head records chain_seq %lld but the chain ends at chain_seq %lld "
                    "with another hash (events were removed from its end, or it was rewritten)",
              w->chain, head->chain_seq, w->chain_seq);
        return;
    }
    if (w->has_pending)
        fault(w->v, "checkpoint %lld: chain %d reached chain_seq %lld, the log ends at %lld "
                    "(events were removed)", w->pending.id, w->chain, w->pending.chain_seq,
              w->chain_seq);
    else if (w->file_next < w->v->file_count && w->v->file_marks[w->file_next].chain == w->chain)
        fault(w->v, "checkpoint %lld (exported): chain %d reached chain_seq %lld, the log ends at "
                    "%lld (events were removed)", w->v->file_marks[w->file_next].id, w->chain,
              w->v->file_marks[w->file_next].chain_seq, w->chain_seq);
}

/* Exported marks of chains before `chain` that the log does not have: a
 * chain that held events at a checkpoint is gone (its head too). */
static size_t skip_missing_chains(struct verify *v, size_t next, int chain)
{
    for (; !v->fault && next < v->file_count && v->file_marks[next].chain < chain; next++)
        if (v->file_marks[next].chain_seq > 0)
            fault(v, "checkpoint %lld (exported): chain %d reached chain_seq %lld, the log has no "
                     "chain %d (it was removed)", v->file_marks[next].id, v->file_marks[next].chain,
                  v->file_marks[next].chain_seq, v->file_marks[next].chain);
    return next;
}

static void walk_chain(struct verify *v, const struct store_audit_head *head, size_t *file_next)
{
    int chain = head->chain;
    struct walk w = {.v = v, .chain = chain, .stored = {.v = v, .chain = chain, .a = arena_new()}};
    w.has_pending = next_stored_mark(&w.stored, &w.pending);
    w.file_next = skip_missing_chains(v, *file_next, chain);
    meet_marks(&w); /* marks at chain_seq 0: the empty chain */
    struct arena *a = arena_new();
    for (bool more = true; more && !v->fault; arena_reset(a)) {
        struct store_audit_event *e;
        size_t n;
        struct masad_error err;
        if (store_audit_chain_page(v->db, a, chain, w.chain_seq, &e, &n, &err) != 0) {
            fault(v, "cannot read chain %d: %s", chain, err.message);
            break;
        }
        for (size_t i = 0; i < n && !v->fault; i++)
            check_event(&w, &e[i]);
        more = n == STORE_AUDIT_PAGE;
    }
    if (!v->fault)
        finish_chain(&w, head);
    while (w.file_next < v->file_count && v->file_marks[w.file_next].chain == chain)
        w.file_next++;
    *file_next = w.file_next;
    arena_free(a);
    arena_free(w.stored.a);
}

/* The age of the newest stored checkpoint: how much of the log no
 * signature covers yet (docs/audit.md, masad audit verify). */
static void report_newest_checkpoint(struct verify *v, struct arena *a)
{
    struct masad_error err;
    long long id, age;
    const char *at;
    int found = store_audit_checkpoint_newest(v->db, a, &id, &at, &age, &err);
    if (found < 0)
        fault(v, "cannot read the checkpoints: %s", err.message);
    else if (!found)
        fprintf(v->out, "no stored checkpoint yet\n");
    else
        fprintf(v->out, "newest stored checkpoint: %lld, signed at %s, %lld seconds ago\n", id,
                at, age);
}

static void walk_all(struct verify *v)
{
    struct arena *a = arena_new();
    struct masad_error err;
    struct store_audit_head *heads = NULL;
    size_t chains = 0;
    long long loose;
    int unchained = store_audit_unchained(v->db, a, &loose, &err);
    if (unchained < 0 || store_audit_heads(v->db, a, &heads, &chains, &err) != 0)
        fault(v, "cannot read the audit log: %s", err.message);
    else if (unchained > 0)
        fault(v, "seq %lld belongs to no chain (it was inserted)", loose);
    size_t file_next = 0;
    for (size_t i = 0; !v->fault && i < chains; i++)
        walk_chain(v, &heads[i], &file_next);
    if (!v->fault && v->events == 0 && v->file_most_events > 0)
        fault(v, "the log is empty, but exported checkpoint %lld counted %lld events in it "
                 "(the log was emptied)", v->file_most_id, v->file_most_events);
    if (!v->fault)
        skip_missing_chains(v, file_next, INT_MAX);
    if (!v->fault)
        report_newest_checkpoint(v, a);
    if (!v->fault)
        fprintf(v->out, "audit log intact: %lld events in %d chains; %lld stored checkpoints "
                        "verified, %lld exported\n",
                v->events, (int)chains, v->checkpoints, v->file_checkpoints);
    arena_free(a);
}

int audit_verify(struct store_conn *db, const char *ca_file, const char *checkpoint_file,
                 FILE *out)
{
    struct verify v = {.db = db, .out = out};
    struct masad_error err;
    if (!(v.anchors = load_anchors(ca_file, out)))
        return 2;
    int rc = 2;
    /* one snapshot: events appended meanwhile are simply not seen */
    if (store_begin_snapshot(db, &err) != 0)
        fprintf(out, "masad: %s\n", err.message);
    else if (check_stored_signatures(&v) == 0 &&
             (!checkpoint_file || v.fault || load_file(&v, checkpoint_file) == 0)) {
        if (!v.fault)
            walk_all(&v);
        rc = v.fault ? 1 : 0;
    }
    store_rollback(db);
    X509_STORE_free(v.anchors);
    free(v.file_marks);
    return rc;
}
