/* POST /.well-known/brski/requestauditlog (RFC 8995 §5.8) */
#include <stdlib.h>
#include <string.h>

#include "brski/brski_internal.h"
#include "common/config.h"
#include "common/json.h"
#include "store/brski.h"

void brski_truncate_log(struct brski_log_event *ev, size_t n, const struct config *cfg,
                        struct brski_truncation *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        unsigned long same = 0;
        struct brski_log_event *last_kept = NULL;
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

static void write_log(yajl_gen g, const struct brski_log_event *ev, size_t n,
                      const struct brski_truncation *t)
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

static struct refusal answer_log(struct brski_call *c)
{
    struct store_brski_log_row *rows;
    size_t n;
    struct masad_error err;
    if (store_brski_voucher_log(c->ctx->db, c->a, c->serial, &rows, &n, &err) != 0)
        return brski_refusal(c, err.status, "%s", err.message);
    struct brski_log_event *ev = arena_alloc(c->a, (n ? n : 1) * sizeof(*ev));
    for (size_t i = 0; i < n; i++)
        ev[i] = (struct brski_log_event){rows[i].date, rows[i].domain_id, rows[i].nonce,
                                         rows[i].assertion, 0, false};
    struct brski_truncation t;
    brski_truncate_log(ev, n, c->ctx->config, &t);
    yajl_gen g = json_gen_new();
    write_log(g, ev, n, &t);
    size_t len;
    char *body = json_finish(g, c->a, &len);
    response_set(c->res, c->a, 200, "application/json", body, len);
    return (struct refusal){0};
}

/* RFC 8995 §5.8: the log goes to a domain that owns or owned the device;
 * to anyone else the device is unknown */
static struct refusal entitled(struct brski_call *c, const struct brski_domain *domain)
{
    struct masad_error err;
    bool owned = false;
    if (domain->owner &&
        store_brski_owned_ever(c->ctx->db, c->a, c->serial, domain->owner, &owned, &err) != 0)
        return brski_refusal(c, err.status, "%s", err.message);
    if (!owned)
        return brski_refusal(c, 404, "no audit log of the device \"%s\" for this registrar's domain",
                             c->serial);
    return (struct refusal){0};
}

void brski_request_audit_log(struct job_ctx *ctx, const struct masad_request *req,
                             struct masad_response *res)
{
    struct brski_call c = {.ctx = ctx, .a = ctx->arena, .req = req, .res = res, .action = "auditlog.refuse"};
    struct brski_claim claim;
    struct brski_domain domain;
    struct refusal r = brski_check_request(&c, &claim, "application/json");
    if (!refused(&r))
        r = brski_find_domain(&c, &claim, &domain);
    c.owner = refused(&r) ? c.owner : domain.owner;
    if (!refused(&r))
        r = entitled(&c, &domain);
    if (!refused(&r))
        r = answer_log(&c);
    if (refused(&r))
        brski_render(&c, &r);
}
