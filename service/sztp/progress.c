/* report-progress (RFC 8572 §7.3): stored, visible through the management
 * API, audited. */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "common/encoding.h"
#include "common/json.h"
#include "crypto/crypto.h"
#include "store/store_pq.h"
#include "sztp/sztp_internal.h"

/* Bounds on what a device may have kept (RFC 8572 §7.3 sets none). */
#define MAX_HOST_KEYS 16
#define MAX_ALGORITHM 64
#define MAX_KEY_DATA (16 * 1024)       /* base64 */
#define MAX_TRUST_ANCHORS 8
#define MAX_ANCHOR_CMS (64 * 1024)     /* base64 */
#define MAX_ANCHOR_CERTS 8             /* certificates in one trust-anchor-cert */

/* The entries named `name` under the input's container `container`. */
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

/* ssh-host-keys as [{"algorithm", "key_data"}], or NULL when none; false:
 * a 400 was answered. */
static bool host_keys(struct sztp_call *c, struct lyd_node *rpc, const char **json)
{
    struct lyd_node *keys[MAX_HOST_KEYS];
    size_t n = entries(rpc, "ssh-host-keys", "ssh-host-key", keys, MAX_HOST_KEYS);
    *json = NULL;
    if (n > MAX_HOST_KEYS)
        return sztp_error(c, 400, "application", "invalid-value",
                          "invalid input: more than %d ssh-host-key entries", MAX_HOST_KEYS);
    if (!n)
        return true;
    yajl_gen g = json_gen_new();
    json_open_array(g);
    for (size_t i = 0; i < n; i++) {
        const char *alg = sztp_leaf(keys[i], "algorithm"), *data = sztp_leaf(keys[i], "key-data");
        if (!alg || !data || strlen(alg) > MAX_ALGORITHM || strlen(data) > MAX_KEY_DATA) {
            yajl_gen_free(g);
            return sztp_error(c, 400, "application", "invalid-value",
                              "invalid input: ssh-host-key %zu is larger than %d bytes of "
                              "algorithm or %d of key-data", i + 1, MAX_ALGORITHM, MAX_KEY_DATA);
        }
        json_open(g);
        json_kv_str(g, "algorithm", alg);
        json_kv_str(g, "key_data", data);
        json_close(g);
    }
    json_close_array(g);
    *json = json_finish(g, c->a, NULL);
    return true;
}

/* trust-anchor-certs as ["base64 CMS", ...], each checked to be a CMS
 * certs-only structure, or NULL when none; false: a 400 was answered. */
static bool trust_anchors(struct sztp_call *c, struct lyd_node *rpc, const char **json)
{
    struct lyd_node *certs[MAX_TRUST_ANCHORS];
    size_t n = entries(rpc, "trust-anchor-certs", "trust-anchor-cert", certs, MAX_TRUST_ANCHORS);
    *json = NULL;
    if (n > MAX_TRUST_ANCHORS)
        return sztp_error(c, 400, "application", "invalid-value",
                          "invalid input: more than %d trust-anchor-cert entries", MAX_TRUST_ANCHORS);
    if (!n)
        return true;
    yajl_gen g = json_gen_new();
    json_open_array(g);
    for (size_t i = 0; i < n; i++) {
        const char *b64 = lyd_get_value(certs[i]);
        size_t len = 0;
        unsigned char *der = strlen(b64) <= MAX_ANCHOR_CMS ? base64_decode(c->a, b64, strlen(b64), &len)
                                                           : NULL;
        char why[256] = "is larger than 64 KiB or not base64";
        if (!der || crypto_certs_only_check(der, len, MAX_ANCHOR_CERTS, why) != 0) {
            yajl_gen_free(g);
            /* RFC 8572 §7.3: a CMS certs-only structure (RFC 8572 §3.2) */
            return sztp_error(c, 400, "application", "invalid-value",
                              "invalid input: trust-anchor-cert %zu %s (a CMS certs-only "
                              "structure is expected, RFC 8572 §7.3)", i + 1, why);
        }
        json_str(g, base64_encode(c->a, der, len));
    }
    json_close_array(g);
    *json = json_finish(g, c->a, NULL);
    return true;
}

void sztp_report_progress(struct job_ctx *ctx, const struct masad_request *req,
                          struct masad_response *res)
{
    struct sztp_call c = {ctx, ctx->arena, req, res, SZTP_JSON, "report-progress", NULL, NULL};
    struct lyd_node *rpc;
    if (!sztp_begin(&c) || !sztp_parse_input(&c, &rpc))
        return;
    const char *type = sztp_leaf(rpc, "progress-type"), *message = sztp_leaf(rpc, "message");
    /* RFC 8572 §7.3: host keys and trust anchors come with bootstrap-complete
     * only (the module's `when`, checked by libyang) */
    const char *keys, *anchors;
    if (!host_keys(&c, rpc, &keys) || !trust_anchors(&c, rpc, &anchors))
        return;
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
