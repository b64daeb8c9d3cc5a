/* POST /.well-known/brski/requestvoucher (RFC 8995 §5.5, §5.6) */
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "brski/brski_internal.h"
#include "common/encoding.h"
#include "common/config.h"
#include "common/json.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "store/store_pq.h"
#include "store/vouchers.h"

/* What the MASA decided to issue. */
struct decision {
    const char *assertion;
    X509 *pinned;
    const char *owner;            /* the owner the voucher is for, or NULL (TOFU) */
    const char *why;              /* for the audit event */
};

static const char *cert_sha256(struct arena *a, X509 *x)
{
    unsigned char md[32], spki[32];
    crypto_cert_digests(x, md, spki);
    return hex_encode(a, md, 32);
}

/* RFC 8995 §5.8.2: the subject key identifier, else the SPKI fingerprint */
static const char *domain_id(struct arena *a, X509 *x)
{
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
    if (ski)
        return base64_encode(a, ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski));
    unsigned char md[32], spki[32];
    crypto_cert_digests(x, md, spki);
    return base64_encode(a, spki, 32);
}

/* RFC 8995 §5.5.1: a voucher pinned to the same domain certificate as the
 * last one, with no ownership change since, needs no new sales data. */
static bool renewal(struct brski_call *c, X509 *pinned, struct decision *d)
{
    PGresult *last, *changed;
    struct masad_error err;
    const char *p1[] = {c->serial};
    if (store_exec(c->ctx->db, c->a, "brski_last_voucher", 1, p1, &last, &err) != 0 ||
        PQntuples(last) != 1 || strcmp(PQgetvalue(last, 0, 3), cert_sha256(c->a, pinned)) != 0)
        return false;
    const char *p2[] = {c->serial, PQgetvalue(last, 0, 0)};
    if (store_exec(c->ctx->db, c->a, "brski_ownership_changed", 2, p2, &changed, &err) != 0 ||
        PQntuples(changed) != 0)
        return false;
    d->assertion = arena_strdup(c->a, PQgetvalue(last, 0, 2));
    d->owner = PQgetisnull(last, 0, 1) ? NULL : arena_strdup(c->a, PQgetvalue(last, 0, 1));
    d->pinned = pinned;
    d->why = "renewal";
    return true;
}

/* The owner's pinning: its domain certificate, or (as RFC 8995 App. C's
 * voucher does) the registrar's own. */
static X509 *pin(const struct brski_claim *claim, const struct brski_domain *domain)
{
    return domain->pin_registrar ? claim->registrar : domain->cert;
}

/* RFC 8995 §5.5: who owns the device decides; see docs/brski.md. */
static bool decide(struct brski_call *c, const struct brski_claim *claim, const char *current,
                   const struct brski_domain *domain, struct decision *d)
{
    const struct config *cfg = c->ctx->config;
    memset(d, 0, sizeof(*d));
    if (current && domain->owner && !strcmp(current, domain->owner)) {
        d->assertion = claim->proximity ? "proximity" : "verified";
        d->pinned = pin(claim, domain);
        d->owner = current;
        d->why = "owner";
        return true;
    }
    if (current)
        return brski_refuse(c, 403, "the device belongs to another owner than the registrar's domain");
    /* RFC 8995 §5.5.4: a nonceless voucher only to an authenticated
     * registrar, one of a registered domain */
    if (!claim->rvr.nonce && !domain->owner)
        return brski_refuse(c, 403, "a nonceless voucher-request must come from a registrar of a "
                                    "registered domain (RFC 8995 §5.5.4)");
    X509 *top = sk_X509_value(claim->path, sk_X509_num(claim->path) - 1);
    if (renewal(c, domain->cert ? pin(claim, domain) : top, d))
        return true;
    if (cfg->brski_unowned == BRSKI_UNOWNED_REFUSE)
        return brski_refuse(c, 403, "the device has no recorded owner");
    if (!claim->proximity)
        return brski_refuse(c, 403, "the device has no recorded owner and the pledge's "
                                    "voucher-request does not name this registrar (proximity, RFC "
                                    "8995 §5.5.5)");
    /* RFC 8995 §7.4.2: trust on first use, pinned to the top of the registrar's chain */
    d->assertion = "logged";
    d->pinned = top;
    d->why = "unowned-logged";
    return true;
}

/* A nonceless voucher expires: after the configured lifetime, and never
 * after the registrar's certificate (RFC 8366 §5.3). */
static time_t expiry(const struct brski_call *c, const struct brski_claim *claim, time_t now)
{
    time_t until = now + (time_t)c->ctx->config->brski_nonceless_lifetime;
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(claim->registrar), &tm) == 1 && timegm(&tm) < until)
        until = timegm(&tm);
    return until;
}

static const char *issue_detail(struct brski_call *c, const struct decision *d,
                                const struct brski_claim *claim, const char *id)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "assertion", d->assertion);
    json_kv_str(g, "basis", d->why);
    json_kv_str(g, "domain_id", id);
    json_str(g, "nonced");
    json_bool(g, claim->rvr.nonce != NULL);
    json_str(g, "proximity");
    json_bool(g, claim->proximity);
    json_close(g);
    return json_finish(g, c->a, NULL);
}

/* In the request's encoding: a registrar that sent base64 reads base64
 * (EST's Content-Transfer-Encoding habit, RFC 8951). */
static void answer_voucher(struct brski_call *c, const unsigned char *cms, size_t len)
{
    if (!c->base64) {
        response_set(c->res, c->a, 200, "application/voucher-cms+json", cms, len);
        return;
    }
    const char *text = base64_encode(c->a, cms, len);
    response_set(c->res, c->a, 200, "application/voucher-cms+json", text, strlen(text));
    response_add_header(c->res, "content-transfer-encoding", "base64");
}

/* The voucher, its record and its audit event commit together. */
static bool issue(struct brski_call *c, const struct brski_claim *claim, const struct decision *d)
{
    struct timespec clock;
    clock_gettime(CLOCK_REALTIME, &clock);
    time_t now = clock.tv_sec;
    size_t pinned_len;
    unsigned char *pinned = crypto_cert_der(d->pinned, c->a, &pinned_len);
    /* RFC 8366 §5.3: idevid-issuer is the IDevID's authority key
     * identifier, whichever form the request used (checked to match) */
    const ASN1_OCTET_STRING *aki =
        claim->rvr.idevid_issuer ? crypto_authority_key_id(claim->idevid) : NULL;
    struct voucher_terms t = {c->serial, d->assertion, pinned, pinned_len, claim->rvr.nonce,
                              claim->rvr.nonce_len, now,
                              claim->rvr.nonce ? 0 : expiry(c, claim, now),
                              aki ? ASN1_STRING_get0_data(aki) : NULL,
                              aki ? (size_t)ASN1_STRING_length(aki) : 0};
    /* the pledge's own text of its nonce (RFC 8995 §5.5.6: the nonce it sent) */
    const char *nonce_text = claim->rvr.nonce ? claim->pvr.nonce_text : NULL;
    unsigned char *cms;
    size_t cms_len;
    const char *json, *id = domain_id(c->a, d->pinned);
    struct masad_error err;
    if (voucher_issue_echoing(c->ctx->yang, c->ctx->signer, c->a, &t, nonce_text, &cms, &cms_len,
                              &json, &err) != 0)
        return brski_refuse(c, err.status, "%s", err.message);
    struct store_voucher v = {c->serial, d->owner, "brski", d->assertion, claim->rvr.nonce,
                              claim->rvr.nonce_len, clock, t.expires_on, {0}, id,
                              c->actor + strlen("registrar:"), cms, cms_len, claim->rvr_der,
                              claim->rvr_der_len};
    unsigned char spki[32];
    crypto_cert_digests(d->pinned, v.domain_cert_sha256, spki);
    long long voucher_id;
    struct audit_event e = {c->actor, "voucher.issue", c->serial, d->owner, "ok",
                            issue_detail(c, d, claim, id)};
    if (store_voucher_add(c->ctx->db, c->a, &v, &voucher_id, &err) != 0 ||
        audit_append(c->ctx->db, c->a, &e, &err) != 0 || store_commit(c->ctx->db, &err) != 0)
        return brski_refuse(c, err.status, "%s", err.message);
    answer_voucher(c, cms, cms_len);
    metrics_voucher("brski", 200);
    return true;
}

void brski_request_voucher(struct job_ctx *ctx, const struct masad_request *req,
                           struct masad_response *res)
{
    struct brski_call c = {.ctx = ctx, .a = ctx->arena, .req = req, .res = res, .action = "voucher.refuse"};
    struct brski_claim claim;
    struct brski_domain domain;
    struct decision d;
    struct masad_error err;
    PGresult *device;
    if (!brski_check_request(&c, &claim, "application/voucher-cms+json"))
        return;
    const char *params[] = {c.serial};
    if (store_begin(ctx->db, &err) != 0 ||
        store_exec(ctx->db, c.a, "brski_device", 1, params, &device, &err) != 0) {
        brski_refuse(&c, err.status, "%s", err.message);
        return;
    }
    if (PQntuples(device) != 1) {
        brski_refuse(&c, 404, "the MASA does not know the device \"%s\"", c.serial);
        return;
    }
    const char *current = PQgetisnull(device, 0, 1) ? NULL : PQgetvalue(device, 0, 1);
    if (!brski_find_domain(&c, &claim, &domain))
        return;
    c.owner = domain.owner;
    if (decide(&c, &claim, current, &domain, &d))
        issue(&c, &claim, &d);
}
