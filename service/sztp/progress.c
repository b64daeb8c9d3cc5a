/* report-progress (RFC 8572 §7.3): stored, visible through the management
 * API, audited. read → check (decide.c) → commit. */
#include <string.h>

#include "audit/audit.h"
#include "common/json.h"
#include "sztp/sztp_internal.h"

/* The entries named `name` under the input's container `container`: all
 * counted, the first `max` kept. */
static size_t entries(struct lyd_node *rpc, const char *container, const char *name,
                      struct lyd_node **out, size_t max)
{
    struct lyd_node *box = NULL, *n;
    size_t count = 0;
    if (lyd_find_path(rpc, container, 0, &box) != LY_SUCCESS || !box)
        return 0;
    LY_LIST_FOR(lyd_child(box), n)
        if (!strcmp(n->schema->name, name) && count++ < max)
            out[count - 1] = n;
    return count;
}

static void read_claim(struct sztp_call *c, struct lyd_node *rpc, struct sztp_progress_claim *p)
{
    struct lyd_node *keys[SZTP_MAX_HOST_KEYS], *anchors[SZTP_MAX_TRUST_ANCHORS];
    p->type = sztp_leaf(rpc, "progress-type");
    p->message = sztp_leaf(rpc, "message");
    /* RFC 8572 §7.3: host keys and trust anchors come with bootstrap-complete
     * only (the module's `when`, checked by libyang) */
    p->host_key_count = entries(rpc, "ssh-host-keys", "ssh-host-key", keys, SZTP_MAX_HOST_KEYS);
    size_t kept = p->host_key_count < SZTP_MAX_HOST_KEYS ? p->host_key_count : SZTP_MAX_HOST_KEYS;
    p->host_keys = arena_alloc(c->a, (kept + 1) * sizeof(*p->host_keys));
    for (size_t i = 0; i < kept; i++)
        p->host_keys[i] = (struct store_sztp_host_key){sztp_leaf(keys[i], "algorithm"),
                                                      sztp_leaf(keys[i], "key-data")};
    p->trust_anchor_count = entries(rpc, "trust-anchor-certs", "trust-anchor-cert", anchors,
                                    SZTP_MAX_TRUST_ANCHORS);
    kept = p->trust_anchor_count < SZTP_MAX_TRUST_ANCHORS ? p->trust_anchor_count
                                                          : SZTP_MAX_TRUST_ANCHORS;
    p->trust_anchors = arena_alloc(c->a, (kept + 1) * sizeof(*p->trust_anchors));
    for (size_t i = 0; i < kept; i++)
        p->trust_anchors[i] = lyd_get_value(anchors[i]);
}

static const char *detail(struct sztp_call *c, const struct sztp_progress_claim *p)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "progress_type", p->type);
    json_kv_str(g, "message", p->message);
    json_close(g);
    return json_finish(g, c->a, NULL);
}

static struct sztp_refusal commit(struct sztp_call *c, const struct sztp_progress_claim *p)
{
    struct masad_error err;
    bool exists;
    struct sztp_refusal down = sztp_refusal(c->a, 503, "application", "operation-failed",
                                            "the database is unavailable");
    if (store_begin(c->ctx->db, &err) != 0 ||
        store_sztp_device_exists(c->ctx->db, c->a, c->serial, &exists, &err) != 0)
        return down;
    if (!exists)
        return sztp_refusal(c->a, 401, "protocol", "access-denied", "%s", SZTP_DENIED);
    struct store_sztp_progress row = {c->serial, p->type, p->message, p->host_keys,
                                      p->host_key_count, p->trust_anchors, p->trust_anchor_count,
                                      SZTP_PROGRESS_KEPT};
    struct audit_event e = {arena_printf(c->a, "device:%s", c->serial), "sztp.progress", c->serial,
                            NULL, "ok", detail(c, p)};
    if (store_sztp_progress_add(c->ctx->db, c->a, &row, &err) != 0 ||
        audit_append(c->ctx->db, c->a, &e, &err) != 0 || store_commit(c->ctx->db, &err) != 0)
        return down;
    return sztp_none();
}

void sztp_report_progress(struct job_ctx *ctx, const struct masad_request *req,
                          struct masad_response *res)
{
    struct sztp_call c = {ctx, ctx->arena, req, res, SZTP_JSON, "report-progress", NULL, NULL};
    struct lyd_node *rpc;
    struct sztp_progress_claim p = {0};
    struct sztp_refusal r = sztp_read(&c, &rpc);
    if (!refused(&r.r)) {
        read_claim(&c, rpc, &p);
        r = sztp_progress_check(c.a, &p);
    }
    if (!refused(&r.r))
        r = commit(&c, &p);
    if (refused(&r.r)) {
        sztp_refuse(&c, &r);
        return;
    }
    res->status = 204;
}
