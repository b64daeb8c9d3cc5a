/* get-bootstrapping-data (RFC 8572 §7.2): the owner's conveyed information,
 * read → decide (decide.c) → commit. */
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "common/config.h"
#include "common/encoding.h"
#include "common/json.h"
#include "common/metrics.h"
#include "common/yang.h"
#include "crypto/crypto.h"
#include "store/vouchers.h"
#include "sztp/sztp_internal.h"
#include "voucher/voucher.h"

#define OID_CONVEYED_JSON "1.2.840.113549.1.9.16.1.43" /* RFC 8572 §3.1 */
#define OID_CONVEYED_XML "1.2.840.113549.1.9.16.1.42"

static struct sztp_refusal db_unavailable(struct arena *a)
{
    return sztp_refusal(a, 503, "application", "operation-failed", "the database is unavailable");
}

static struct sztp_refusal no_voucher(struct arena *a)
{
    return sztp_refusal(a, 503, "application", "operation-failed",
                        "the ownership voucher cannot be made now");
}

static void read_claim(struct sztp_call *c, struct lyd_node *rpc, struct sztp_claim *cl)
{
    struct lyd_node *n = NULL;
    cl->serial = c->serial;
    cl->format = c->format;
    cl->prefer_signed = lyd_find_path(rpc, "signed-data-preferred", 0, &n) == LY_SUCCESS && n;
    n = NULL;
    cl->csr_support = lyd_find_path(rpc, "ietf-sztp-csr:csr-support", 0, &n) == LY_SUCCESS && n;
    const char *nonce = sztp_leaf(rpc, "nonce");
    if (nonce)
        cl->nonce = base64_decode(c->a, nonce, strlen(nonce), &cl->nonce_len);
}

/* The owner's settings, in the transaction that the answer commits, and
 * the voucher that a nonceless request may reuse, in one statement; the
 * owner chain's kit from the cache. */
static struct sztp_refusal gather(struct sztp_call *c, const struct sztp_claim *cl,
                                  struct sztp_facts *f)
{
    struct masad_error err;
    const struct store_sztp_owner *o = &f->owner;
    if (store_begin(c->ctx->db, &err) != 0 ||
        store_sztp_owner(c->ctx->db, c->a, c->serial, &f->owner, cl->nonce ? NULL : &f->reusable,
                         &err) != 0)
        return db_unavailable(c->a);
    c->owner = o->owner;
    if (o->conveyed)
        f->conveyed_onboarding = sztp_is_onboarding(c->a, o->conveyed, strlen(o->conveyed));
    if (!o->owner || !o->signed_conveyed.data || !o->cert_count)
        return sztp_none();
    f->kit = sztp_owner_kit(c->a, o->certs, o->cert_count);
    return sztp_none();
}

/* RFC 8572 §3.1: unsigned conveyed information in the request's encoding */
static const char *unsigned_conveyed(struct sztp_call *c, const struct sztp_facts *f)
{
    const char *content = f->owner.conveyed;
    if (c->format == SZTP_XML)
        content = yang_convert_data(c->ctx->yang, "ietf-sztp-conveyed-info", "conveyed-information",
                                    LYD_JSON, content, LYD_XML, c->a);
    unsigned char *der;
    size_t len;
    if (!content || crypto_content_info(c->format == SZTP_XML ? OID_CONVEYED_XML : OID_CONVEYED_JSON,
                                        content, strlen(content), c->a, &der, &len) != 0)
        return NULL;
    return base64_encode(c->a, der, len);
}

/* A new ownership voucher pinned to the owner's last certificate, signed
 * and recorded. */
static const char *new_voucher(struct sztp_call *c, const struct sztp_claim *cl,
                               const struct sztp_decision *d, const struct sztp_owner_kit *k,
                               long long *id)
{
    struct voucher_terms t = {c->serial, "verified", k->pinned_der, k->pinned_der_len, cl->nonce,
                              cl->nonce_len, d->created_on, d->expires_on, NULL, 0};
    unsigned char *cms;
    size_t cms_len;
    const char *json;
    struct masad_error err;
    if (voucher_issue(c->ctx->yang, c->ctx->signer, c->a, &t, &cms, &cms_len, &json, &err) != 0)
        return NULL;
    struct store_voucher v = {c->serial, c->owner, "sztp", "verified", cl->nonce, cl->nonce_len,
                              {d->created_on, 0}, d->expires_on, {0}, k->domain_id,
                              NULL, cms, cms_len, NULL, 0};
    memcpy(v.domain_cert_sha256, k->pinned_sha256, 32);
    if (store_voucher_add(c->ctx->db, c->a, &v, id, &err) != 0)
        return NULL;
    return base64_encode(c->a, cms, cms_len);
}

/* RFC 8572 §5.4: the owner's signed conveyed information, the owner
 * certificate (CMS certs-only, RFC 8572 §3.2) and the ownership voucher. */
static struct sztp_refusal signed_values(struct sztp_call *c, const struct sztp_claim *cl,
                                         const struct sztp_facts *f, const struct sztp_decision *d,
                                         const char **values, long long *voucher_id)
{
    values[0] = base64_encode(c->a, f->owner.signed_conveyed.data, f->owner.signed_conveyed.len);
    values[1] = f->kit->certs_b64;
    if (d->reuse_voucher) {
        *voucher_id = f->reusable.id;
        values[2] = base64_encode(c->a, f->reusable.cms.data, f->reusable.cms.len);
    } else
        values[2] = new_voucher(c, cl, d, f->kit, voucher_id);
    return values[2] ? sztp_none() : no_voucher(c->a);
}

static const char *detail(struct sztp_call *c, const struct sztp_claim *cl,
                          const struct sztp_decision *d, long long voucher_id)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "conveyed", d->onboarding ? "onboarding" : "redirect");
    json_str(g, "signed");
    json_bool(g, d->is_signed);
    json_str(g, "voucher");
    if (voucher_id)
        json_int(g, voucher_id);
    else
        json_null(g);
    json_str(g, "voucher_reused");
    json_bool(g, d->reuse_voucher);
    json_str(g, "csr_support");
    json_bool(g, cl->csr_support);
    json_kv_str(g, "encoding", c->format == SZTP_XML ? "xml" : "json");
    json_close(g);
    return json_finish(g, c->a, NULL);
}

/* The answer, its voucher and its audit event, in one transaction. */
static struct sztp_refusal commit(struct sztp_call *c, const struct sztp_claim *cl,
                                  const struct sztp_facts *f, const struct sztp_decision *d)
{
    static const char *const names[] = {"conveyed-information", "owner-certificate",
                                        "ownership-voucher"};
    const char *values[3] = {NULL, NULL, NULL};
    long long voucher_id = 0;
    struct sztp_refusal r = sztp_none();
    if (d->is_signed)
        r = signed_values(c, cl, f, d, values, &voucher_id);
    else if (!(values[0] = unsigned_conveyed(c, f)))
        r = sztp_refusal(c->a, 500, "application", "operation-failed",
                         "the conveyed information is unusable");
    if (refused(&r.r))
        return r;
    struct masad_error err;
    struct audit_event e = {arena_printf(c->a, "device:%s", c->serial), "sztp.bootstrap", c->serial,
                            c->owner, "ok", detail(c, cl, d, voucher_id)};
    if (audit_append(c->ctx->db, c->a, &e, &err) != 0)
        return sztp_refusal(c->a, err.status, "application", "operation-failed", "%s", err.message);
    /* validated before the commit: an invalid answer leaves no voucher behind */
    r = sztp_answer(c, names, values, d->is_signed ? 3 : 1);
    if (refused(&r.r))
        return r;
    if (store_commit(c->ctx->db, &err) != 0)
        return db_unavailable(c->a);
    return sztp_none();
}

void sztp_get_bootstrapping_data(struct job_ctx *ctx, const struct masad_request *req,
                                 struct masad_response *res)
{
    struct sztp_call c = {ctx, ctx->arena, req, res, SZTP_JSON, "get-bootstrapping-data", NULL, NULL};
    time_t now = time(NULL);
    struct lyd_node *rpc;
    struct sztp_claim claim = {0};
    struct sztp_facts facts = {0};
    struct sztp_decision d;
    struct sztp_policy policy = {ctx->config->sztp_voucher_lifetime};
    struct sztp_refusal r = sztp_read(&c, &rpc);
    if (!refused(&r.r)) {
        read_claim(&c, rpc, &claim);
        r = gather(&c, &claim, &facts);
    }
    if (!refused(&r.r))
        r = sztp_decide(c.a, &claim, &facts, &policy, now, &d);
    if (!refused(&r.r))
        r = commit(&c, &claim, &facts, &d);
    if (refused(&r.r)) {
        sztp_refuse(&c, &r);
        return;
    }
    metrics_sztp_answer(d.onboarding ? "onboarding" : "redirect", d.is_signed);
    if (d.is_signed && !d.reuse_voucher)
        metrics_voucher("sztp", 200);
}
