/* POST /.well-known/brski/requestauditlog (RFC 8995 §5.8) */
#include <stdlib.h>
#include <string.h>

#include "brski/brski_internal.h"
#include "common/config.h"
#include "common/json.h"
#include "store/store_pq.h"

struct log_event {
    const char *date, *domain_id, *nonce, *assertion;
    unsigned long truncated;   /* older duplicates folded into this one */
    bool kept;
};

struct truncation {
    unsigned long nonced, nonceless, arbitrary;
};

/* RFC 8995 §5.8.1: per domain, only the newest few nonced and nonceless
 * events; beyond a total, the oldest go. events are newest first. */
static void truncate_log(struct log_event *ev, size_t n, const struct config *cfg,
                         struct truncation *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        unsigned long same = 0;
        struct log_event *last_kept = NULL;
        for (size_t j = 0; j < i; j++)
            if (ev[j].kept && !strcmp(ev[j].domain_id, ev[i].domain_id) &&
                (!ev[j].nonce) == (!ev[i].nonce)) {
                same++;
                last_kept = &ev[j];
            }
        unsigned long limit = ev[i].nonce ? cfg->brski_log_nonced_per_domain
                                          : cfg->brski_log_nonceless_per_domain;
        ev[i].kept = same < limit;
        if (!ev[i].kept) {
            last_kept->truncated++;
            if (ev[i].nonce)
                t->nonced++;
            else
                t->nonceless++;
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (ev[i].kept && ++kept > cfg->brski_log_max_events) {
            ev[i].kept = false;
            t->arbitrary++;
        }
}

static void write_log(yajl_gen g, const struct log_event *ev, size_t n, const struct truncation *t)
{
    json_open(g);
    json_kv_str(g, "version", "1");
    json_str(g, "events");
    json_open_array(g);
    for (size_t i = n; i-- > 0;) { /* oldest first */
        if (!ev[i].kept)
            continue;
        json_open(g);
        json_kv_str(g, "date", ev[i].date);
        json_kv_str(g, "domainID", ev[i].domain_id);
        json_kv_str(g, "nonce", ev[i].nonce);
        json_kv_str(g, "assertion", ev[i].assertion);
        char count[24];
        snprintf(count, sizeof(count), "%lu", ev[i].truncated);
        json_kv_str(g, "truncated", count);
        json_close(g);
    }
    json_close_array(g);
    json_str(g, "truncation");
    json_open(g);
    char v[24];
    snprintf(v, sizeof(v), "%lu", t->nonced);
    json_kv_str(g, "nonced duplicates", v);
    snprintf(v, sizeof(v), "%lu", t->nonceless);
    json_kv_str(g, "nonceless duplicates", v);
    snprintf(v, sizeof(v), "%lu", t->arbitrary);
    json_kv_str(g, "arbitrary", v);
    json_close(g);
    json_close(g);
}

static void answer_log(struct brski_call *c)
{
    PGresult *r;
    struct masad_error err;
    const char *params[] = {c->serial};
    if (store_exec(c->ctx->db, c->a, "brski_voucher_log", 1, params, &r, &err) != 0) {
        brski_refuse(c, err.status, "%s", err.message);
        return;
    }
    size_t n = (size_t)PQntuples(r);
    struct log_event *ev = arena_alloc(c->a, (n ? n : 1) * sizeof(*ev));
    for (size_t i = 0; i < n; i++)
        ev[i] = (struct log_event){PQgetvalue(r, (int)i, 0),
                                   PQgetisnull(r, (int)i, 1) ? "" : PQgetvalue(r, (int)i, 1),
                                   PQgetisnull(r, (int)i, 2) ? NULL : PQgetvalue(r, (int)i, 2),
                                   PQgetvalue(r, (int)i, 3), 0, false};
    struct truncation t;
    truncate_log(ev, n, c->ctx->config, &t);
    yajl_gen g = json_gen_new();
    write_log(g, ev, n, &t);
    size_t len;
    char *body = json_finish(g, c->a, &len);
    response_set(c->res, c->a, 200, "application/json", body, len);
}

void brski_request_audit_log(struct job_ctx *ctx, const struct masad_request *req,
                             struct masad_response *res)
{
    struct brski_call c = {.ctx = ctx, .a = ctx->arena, .req = req, .res = res, .action = "auditlog.refuse"};
    struct brski_claim claim;
    struct brski_domain domain;
    struct masad_error err;
    PGresult *owned;
    if (!brski_check_request(&c, &claim, "application/json") ||
        !brski_find_domain(&c, &claim, &domain))
        return;
    c.owner = domain.owner;
    /* RFC 8995 §5.8: the log goes to a domain that owns or owned the device;
     * to anyone else the device is unknown */
    const char *params[] = {c.serial, domain.owner};
    if (domain.owner &&
        store_exec(ctx->db, c.a, "brski_owned_ever", 2, params, &owned, &err) != 0) {
        brski_refuse(&c, err.status, "%s", err.message);
        return;
    }
    if (!domain.owner || PQntuples(owned) != 1) {
        brski_refuse(&c, 404, "no audit log of the device \"%s\" for this registrar's domain", c.serial);
        return;
    }
    answer_log(&c);
}
