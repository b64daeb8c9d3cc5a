/* POST /.well-known/brski/requestvoucher (RFC 8995 §5.5, §5.6) */
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "brski/brski_internal.h"
#include "common/encoding.h"
#include "common/json.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "store/brski.h"

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
static bool renewal(const struct brski_facts *f, X509 *pinned, struct brski_decision *d)
{
    unsigned char md[32], spki[32];
    if (!f->last_found || f->ownership_changed_since_last)
        return false;
    crypto_cert_digests(pinned, md, spki);
    if (memcmp(md, f->last_domain_cert_sha256, 32) != 0)
        return false;
    d->assertion = f->last_assertion;
    d->owner = f->last_owner;
    d->pinned = pinned;
    d->basis = "renewal";
    return true;
}

/* The owner's pinning: its domain certificate, or (as RFC 8995 App. C's
 * voucher does) the registrar's own. */
static X509 *pin(const struct brski_claim *claim, const struct brski_domain *domain)
{
    return domain->pin_registrar ? claim->registrar : domain->cert;
}

/* A nonceless voucher expires: after the configured lifetime, and never
 * after the registrar's certificate (RFC 8366 §5.3). */
static time_t expiry(const struct brski_claim *claim, const struct brski_policy *p, time_t now)
{
    time_t until = now + (time_t)p->nonceless_lifetime;
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(claim->registrar), &tm) == 1 && timegm(&tm) < until)
        until = timegm(&tm);
    return until;
}

static struct refusal refuse(const char *sentence)
{
    return (struct refusal){403, sentence, "voucher.refuse"};
}

static struct refusal choose(struct arena *a, const struct brski_claim *claim,
                             const struct brski_facts *f, const struct brski_policy *policy,
                             struct brski_decision *d)
{
    const struct brski_domain *domain = &f->domain;
    if (!f->device_known)
        return (struct refusal){404, arena_printf(a, "the MASA does not know the device \"%s\"",
                                                  claim->serial),
                                "voucher.refuse"};
    if (f->current_owner && domain->owner && !strcmp(f->current_owner, domain->owner)) {
        d->assertion = claim->proximity ? "proximity" : "verified";
        d->pinned = pin(claim, domain);
        d->owner = f->current_owner;
        d->basis = "owner";
        return (struct refusal){0};
    }
    if (f->current_owner)
        return refuse("the device belongs to another owner than the registrar's domain");
    /* RFC 8995 §5.5.4: a nonceless voucher only to an authenticated
     * registrar, one of a registered domain */
    if (!claim->rvr.nonce && !domain->owner)
        return refuse("a nonceless voucher-request must come from a registrar of a registered "
                      "domain (RFC 8995 §5.5.4)");
    X509 *top = sk_X509_value(claim->path, sk_X509_num(claim->path) - 1);
    if (renewal(f, domain->cert ? pin(claim, domain) : top, d))
        return (struct refusal){0};
    if (policy->unowned == BRSKI_UNOWNED_REFUSE)
        return refuse("the device has no recorded owner");
    if (!claim->proximity)
        return refuse("the device has no recorded owner and the pledge's voucher-request does not "
                      "name this registrar (proximity, RFC 8995 §5.5.5)");
    /* RFC 8995 §7.4.2: trust on first use, pinned to the top of the registrar's chain */
    d->assertion = "logged";
    d->pinned = top;
    d->basis = "unowned-logged";
    return (struct refusal){0};
}

struct refusal brski_decide(struct arena *a, const struct brski_claim *claim,
                            const struct brski_facts *facts, const struct brski_policy *policy,
                            time_t now, struct brski_decision *d)
{
    memset(d, 0, sizeof(*d));
    struct refusal r = choose(a, claim, facts, policy, d);
    if (!refused(&r) && !claim->rvr.nonce)
        d->expires_on = expiry(claim, policy, now);
    return r;
}

/* The voucher.issue event's detail, canonical as written (docs/audit.md:
 * keys in byte order, no whitespace), so it needs no rewriting. */
static const char *issue_detail(struct brski_call *c, const struct brski_decision *d,
                                const struct brski_claim *claim, const char *id)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "assertion", d->assertion);
    json_kv_str(g, "basis", d->basis);
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
static struct refusal issue(struct brski_call *c, const struct brski_claim *claim,
                            const struct brski_facts *f, const struct brski_decision *d,
                            struct timespec clock, bool *recorded)
{
    size_t pinned_len;
    unsigned char *pinned = crypto_cert_der(d->pinned, c->a, &pinned_len);
    /* RFC 8366 §5.3: idevid-issuer is the IDevID's authority key
     * identifier, whichever form the request used (checked to match) */
    const ASN1_OCTET_STRING *aki =
        claim->rvr.idevid_issuer ? crypto_authority_key_id(claim->idevid) : NULL;
    struct voucher_terms t = {c->serial, d->assertion, pinned, pinned_len, claim->rvr.nonce,
                              claim->rvr.nonce_len, clock.tv_sec, d->expires_on,
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
        return brski_refusal(c, err.status, "%s", err.message);
    struct store_voucher v = {c->serial, d->owner, "brski", d->assertion, claim->rvr.nonce,
                              claim->rvr.nonce_len, clock, t.expires_on, {0}, id,
                              c->actor + strlen("registrar:"), cms, cms_len, claim->rvr_der,
                              claim->rvr_der_len};
    unsigned char spki[32];
    crypto_cert_digests(d->pinned, v.domain_cert_sha256, spki);
    if (store_brski_voucher_record(c->ctx->db, c->a, &v, f->ownership_stamp,
                                   audit_bounded(c->a, c->actor, AUDIT_ACTOR_MAX),
                                   issue_detail(c, d, claim, id), recorded, &err) != 0)
        return brski_refusal(c, err.status, "%s", err.message);
    if (!*recorded)
        return (struct refusal){0};
    answer_voucher(c, cms, cms_len);
    metrics_voucher("brski", 200);
    return (struct refusal){0};
}

/* What the database says, in one statement. Until the commit nothing is
 * held: the commit checks that the ownership is still the one read here. */
static struct refusal gather(struct brski_call *c, const struct brski_claim *claim,
                             struct brski_facts *f)
{
    struct masad_error err;
    struct brski_path path;
    struct store_brski_facts s;
    memset(f, 0, sizeof(*f));
    brski_path_digests(c->a, claim, &path);
    if (store_brski_facts(c->ctx->db, c->a, c->serial, (const unsigned char(*)[32])path.spki,
                          (size_t)path.n, path.issuer, &s, &err) != 0)
        return brski_refusal(c, err.status, "%s", err.message);
    f->device_known = s.device_known;
    f->current_owner = s.owner;
    f->ownership_stamp = s.ownership_stamp;
    if (!f->device_known)
        return (struct refusal){0};
    struct refusal r =
        brski_match_domain(c, claim, &path, s.domains, s.domain_count, s.by_spki, &f->domain);
    if (refused(&r))
        return r;
    c->owner = f->domain.owner;
    f->last_found = s.last.found;
    f->last_owner = s.last.owner;
    f->last_assertion = s.last.assertion;
    memcpy(f->last_domain_cert_sha256, s.last.domain_cert_sha256, 32);
    f->ownership_changed_since_last = s.last.ownership_changed_since;
    return r;
}

/* An ownership change between the read and the commit makes the decision
 * stale: it is taken again, at most this many times in all. */
#define DECISIONS_MAX 2

void brski_request_voucher(struct job_ctx *ctx, const struct masad_request *req,
                           struct masad_response *res)
{
    struct brski_call c = {.ctx = ctx, .a = ctx->arena, .req = req, .res = res, .action = "voucher.refuse"};
    struct brski_claim claim;
    struct brski_facts facts;
    struct brski_decision d;
    struct brski_policy policy = {ctx->config->brski_unowned, ctx->config->brski_nonceless_lifetime};
    struct timespec now;
    struct refusal r = brski_check_request(&c, &claim, "application/voucher-cms+json");
    bool recorded = false;
    for (int round = 0; !refused(&r) && !recorded && round < DECISIONS_MAX; round++) {
        r = gather(&c, &claim, &facts);
        clock_gettime(CLOCK_REALTIME, &now);
        if (!refused(&r))
            r = brski_decide(c.a, &claim, &facts, &policy, now.tv_sec, &d);
        if (!refused(&r))
            r = issue(&c, &claim, &facts, &d, now, &recorded);
    }
    if (!refused(&r) && !recorded)
        r = brski_refusal(&c, 503, "the device's ownership changed while its voucher was being "
                                   "issued; ask again");
    if (refused(&r))
        brski_render(&c, &r);
}
