/* report-progress (RFC 8572 §7.3): stored, visible through the management
 * API, audited. */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "common/json.h"
#include "store/store.h"
#include "sztp/sztp_internal.h"

/* A container of the input as JSON text, or NULL when absent. */
static const char *subtree_json(struct sztp_call *c, struct lyd_node *rpc, const char *name)
{
    struct lyd_node *n = NULL;
    char *text = NULL;
    /* libyang adds the empty non-presence container: only what was sent counts */
    if (lyd_find_path(rpc, name, 0, &n) != LY_SUCCESS || !n || !lyd_child(n) ||
        lyd_print_mem(&text, n, LYD_JSON, LYD_PRINT_SHRINK) != LY_SUCCESS)
        return NULL;
    const char *out = arena_strdup(c->a, text);
    free(text);
    return out;
}

void sztp_report_progress(struct job_ctx *ctx, const struct masad_request *req,
                          struct masad_response *res)
{
    struct sztp_call c = {ctx, ctx->arena, req, res, SZTP_JSON, "report-progress", NULL, NULL};
    struct lyd_node *rpc;
    if (!sztp_begin(&c) || !sztp_parse_input(&c, &rpc))
        return;
    const char *type = sztp_leaf(rpc, "progress-type"), *message = sztp_leaf(rpc, "message");
    /* RFC 8572 §7.3: host keys and trust anchors matter once bootstrapping completed */
    bool complete = type && !strcmp(type, "bootstrap-complete");
    const char *keys = complete ? subtree_json(&c, rpc, "ssh-host-keys") : NULL;
    const char *anchors = complete ? subtree_json(&c, rpc, "trust-anchor-certs") : NULL;
    struct masad_error err;
    PGresult *device;
    const char *serial[] = {c.serial};
    if (store_begin(ctx->db, &err) != 0 ||
        store_exec(ctx->db, c.a, "device_exists", 1, serial, &device, &err) != 0) {
        sztp_error(&c, 503, "application", "operation-failed", "the database is unavailable");
        return;
    }
    if (PQntuples(device) != 1) {
        sztp_error(&c, 401, "protocol", "access-denied",
                   "the device could not be authenticated: present an IDevID client certificate "
                   "or HTTP Basic credentials (serial number and password)");
        return;
    }
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "progress_type", type);
    json_kv_str(g, "message", message);
    json_close(g);
    const char *params[] = {c.serial, type, message, keys, anchors,
                            arena_printf(c.a, "%d", SZTP_PROGRESS_KEPT)};
    struct audit_event e = {arena_printf(c.a, "device:%s", c.serial), "sztp.progress", c.serial,
                            NULL, "ok", json_finish(g, c.a, NULL)};
    if (store_exec(ctx->db, c.a, "sztp_progress_add", 6, params, NULL, &err) != 0 ||
        audit_append(ctx->db, c.a, &e, &err) != 0 || store_commit(ctx->db, &err) != 0) {
        sztp_error(&c, 503, "application", "operation-failed", "the database is unavailable");
        return;
    }
    res->status = 204;
}
