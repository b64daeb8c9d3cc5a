/* get-bootstrapping-data (RFC 8572 §7.2): the owner's conveyed information. */
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "common/encoding.h"
#include "common/config.h"
#include "common/json.h"
#include "common/metrics.h"
#include "common/yang.h"
#include "crypto/crypto.h"
#include "store/store_pq.h"
#include "store/vouchers.h"
#include "sztp/sztp_internal.h"
#include "voucher/voucher.h"

#define OID_CONVEYED_JSON "1.2.840.113549.1.9.16.1.43" /* RFC 8572 §3.1 */
#define OID_CONVEYED_XML "1.2.840.113549.1.9.16.1.42"

/* The owner's SZTP settings, as the database holds them. */
struct settings {
    const char *owner;
    const char *conveyed;        /* RFC 7951 JSON, or NULL */
    const char *signed_hex;      /* owner-signed CMS, or NULL */
    bool signed_onboarding;      /* what it holds, noted when it was stored */
    const char *certs_hex;       /* owner chain, DER hex, comma-separated */
};

/* What the device is asking and what it gets. */
struct answer {
    bool prefer_signed;
    const unsigned char *nonce;  /* decoded, or NULL */
    size_t nonce_len;
    bool csr_support;            /* RFC 9646: recorded until masad asks for CSRs */
    bool is_signed;
    bool onboarding;
    long long voucher_id;
    bool voucher_reused;
};

static const char *text_of(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : PQgetvalue(r, 0, col);
}

static void free_stack(void *s) { sk_X509_pop_free(s, X509_free); }

static STACK_OF(X509) *owner_chain(struct sztp_call *c, const char *certs_hex)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    arena_defer(c->a, free_stack, chain);
    char *list = arena_strdup(c->a, certs_hex), *save = NULL;
    for (char *h = strtok_r(list, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        size_t n;
        const unsigned char *der = hex_decode(c->a, h, &n);
        X509 *x = d2i_X509(NULL, &der, (long)n);
        if (x)
            sk_X509_push(chain, x);
    }
    return chain;
}

static bool read_settings(struct sztp_call *c, struct settings *s)
{
    PGresult *r;
    struct masad_error err;
    const char *params[] = {c->serial};
    if (store_begin(c->ctx->db, &err) != 0 ||
        store_exec(c->ctx->db, c->a, "sztp_owner", 1, params, &r, &err) != 0)
        return sztp_error(c, 503, "application", "operation-failed", "the database is unavailable");
    if (PQntuples(r) != 1) /* an IDevID of a device the factory never registered */
        return sztp_error(c, 401, "protocol", "access-denied",
                          "the device could not be authenticated: present an IDevID client "
                          "certificate or HTTP Basic credentials (serial number and password)");
    *s = (struct settings){text_of(r, 0), text_of(r, 1), text_of(r, 2),
                           text_of(r, 3) && !strcmp(text_of(r, 3), "t"), text_of(r, 4)};
    c->owner = s->owner;
    return true;
}

/* Is this conveyed information (JSON or XML, as validated when stored)
 * onboarding information rather than a redirect? By its top-level node. */
static bool is_onboarding(struct sztp_call *c, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
        i++;
    if (i < len && text[i] == '{') {
        struct json_value *doc;
        struct masad_error err;
        return json_parse(c->a, text, len, 64, &doc, &err) == 0 && doc->count > 0 &&
               !strcmp(doc->keys[0], "ietf-sztp-conveyed-info:onboarding-information");
    }
    size_t name = i + 1 < len ? strcspn(text + i + 1, " \t\r\n/>") : 0;
    const char *local = name ? memchr(text + i + 1, ':', name) : NULL;
    local = local ? local + 1 : text + i + 1;
    return name && !strncmp(local, "onboarding-information", 22);
}

/* RFC 8572 §4.4: which form the device gets; false: the 404 is answered so
 * that the device moves on to its next bootstrap source. */
static bool choose(struct sztp_call *c, const struct settings *s, struct answer *ans)
{
    if (!s->owner)
        return sztp_error(c, 404, "application", "invalid-value",
                          "the device has no owner: no bootstrapping data here");
    if (!s->conveyed && !s->signed_hex)
        return sztp_error(c, 404, "application", "invalid-value",
                          "the device's owner has no SZTP settings");
    bool unsigned_onboarding = s->conveyed && is_onboarding(c, s->conveyed, strlen(s->conveyed));
    if (ans->prefer_signed && !s->signed_hex && unsigned_onboarding)
        return sztp_error(c, 404, "application", "invalid-value",
                          "the device prefers signed data and only unsigned onboarding "
                          "information exists (RFC 8572 §4.4)");
    ans->is_signed = s->signed_hex && (ans->prefer_signed || !s->conveyed);
    ans->onboarding = unsigned_onboarding;
    return true;
}

/* RFC 8572 §3.1: unsigned conveyed information in the request's encoding */
static const char *unsigned_conveyed(struct sztp_call *c, const struct settings *s)
{
    const char *content = s->conveyed;
    if (c->format == SZTP_XML)
        content = yang_convert_data(c->ctx->yang, "ietf-sztp-conveyed-info", "conveyed-information",
                                    LYD_JSON, s->conveyed, LYD_XML, c->a);
    unsigned char *der;
    size_t len;
    if (!content || crypto_content_info(c->format == SZTP_XML ? OID_CONVEYED_XML : OID_CONVEYED_JSON,
                                        content, strlen(content), c->a, &der, &len) != 0)
        return NULL;
    return base64_encode(c->a, der, len);
}

/* RFC 8572 §3.3: an ownership voucher pinned to the last owner certificate,
 * with the device's nonce (made now), or nonceless and reused until a
 * quarter of its lifetime remains. */
static const char *ownership_voucher(struct sztp_call *c, X509 *pinned, struct answer *ans)
{
    unsigned char md[32], spki[32];
    crypto_cert_digests(pinned, md, spki);
    const char *pinned_sha = hex_encode(c->a, md, 32);
    unsigned lifetime = c->ctx->config->sztp_voucher_lifetime;
    struct masad_error err;
    PGresult *r;
    if (!ans->nonce) {
        const char *params[] = {c->serial, pinned_sha, arena_printf(c->a, "%u", lifetime / 4)};
        if (store_exec(c->ctx->db, c->a, "sztp_reusable_voucher", 3, params, &r, &err) != 0)
            return NULL;
        if (PQntuples(r) == 1) {
            size_t n;
            unsigned char *der = hex_decode(c->a, PQgetvalue(r, 0, 1), &n);
            ans->voucher_id = atoll(PQgetvalue(r, 0, 0));
            ans->voucher_reused = true;
            return base64_encode(c->a, der, n);
        }
    }
    time_t now = time(NULL);
    size_t pinned_len;
    unsigned char *pinned_der = crypto_cert_der(pinned, c->a, &pinned_len);
    struct voucher_terms t = {c->serial, "verified", pinned_der, pinned_len, ans->nonce,
                              ans->nonce_len, now, ans->nonce ? 0 : now + lifetime, NULL, 0};
    unsigned char *cms;
    size_t cms_len;
    const char *json;
    if (voucher_issue(c->ctx->yang, c->ctx->signer, c->a, &t, &cms, &cms_len, &json, &err) != 0)
        return NULL;
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(pinned);
    struct store_voucher v = {c->serial, c->owner, "sztp", "verified", ans->nonce, ans->nonce_len,
                              {now, 0}, ans->nonce ? 0 : t.expires_on, {0},
                              ski ? base64_encode(c->a, ASN1_STRING_get0_data(ski),
                                                  (size_t)ASN1_STRING_length(ski))
                                  : base64_encode(c->a, spki, 32),
                              NULL, cms, cms_len, NULL, 0};
    memcpy(v.domain_cert_sha256, md, 32);
    if (store_voucher_add(c->ctx->db, c->a, &v, &ans->voucher_id, &err) != 0)
        return NULL;
    return base64_encode(c->a, cms, cms_len);
}

static bool answer_signed(struct sztp_call *c, const struct settings *s, struct answer *ans,
                          const char **values)
{
    STACK_OF(X509) *chain = owner_chain(c, s->certs_hex);
    size_t n;
    unsigned char *signed_der = hex_decode(c->a, s->signed_hex, &n), *certs;
    size_t certs_len;
    ans->onboarding = s->signed_onboarding;
    if (sk_X509_num(chain) == 0 || crypto_certs_only(chain, c->a, &certs, &certs_len) != 0)
        return sztp_error(c, 500, "application", "operation-failed", "the owner certificate is unusable");
    values[0] = base64_encode(c->a, signed_der, n);
    values[1] = base64_encode(c->a, certs, certs_len);
    values[2] = ownership_voucher(c, sk_X509_value(chain, sk_X509_num(chain) - 1), ans);
    if (!values[2])
        return sztp_error(c, 503, "application", "operation-failed",
                          "the ownership voucher cannot be made now");
    return true;
}

static const char *detail(struct sztp_call *c, const struct answer *ans)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "conveyed", ans->onboarding ? "onboarding" : "redirect");
    json_str(g, "signed");
    json_bool(g, ans->is_signed);
    json_str(g, "voucher");
    if (ans->voucher_id)
        json_int(g, ans->voucher_id);
    else
        json_null(g);
    json_str(g, "voucher_reused");
    json_bool(g, ans->voucher_reused);
    json_str(g, "csr_support");
    json_bool(g, ans->csr_support);
    json_kv_str(g, "encoding", c->format == SZTP_XML ? "xml" : "json");
    json_close(g);
    return json_finish(g, c->a, NULL);
}

static void read_input(struct sztp_call *c, struct lyd_node *rpc, struct answer *ans)
{
    struct lyd_node *n = NULL;
    ans->prefer_signed = lyd_find_path(rpc, "signed-data-preferred", 0, &n) == LY_SUCCESS && n;
    n = NULL;
    ans->csr_support = lyd_find_path(rpc, "ietf-sztp-csr:csr-support", 0, &n) == LY_SUCCESS && n;
    const char *nonce = sztp_leaf(rpc, "nonce");
    if (nonce)
        ans->nonce = base64_decode(c->a, nonce, strlen(nonce), &ans->nonce_len);
}

void sztp_get_bootstrapping_data(struct job_ctx *ctx, const struct masad_request *req,
                                 struct masad_response *res)
{
    struct sztp_call c = {ctx, ctx->arena, req, res, SZTP_JSON, "get-bootstrapping-data", NULL, NULL};
    struct lyd_node *rpc;
    struct settings s = {0};
    struct answer ans = {0};
    if (!sztp_begin(&c) || !sztp_parse_input(&c, &rpc))
        return;
    read_input(&c, rpc, &ans);
    if (!read_settings(&c, &s) || !choose(&c, &s, &ans))
        return;
    static const char *const names[] = {"conveyed-information", "owner-certificate",
                                        "ownership-voucher"};
    const char *values[3] = {NULL, NULL, NULL};
    if (ans.is_signed) {
        if (!answer_signed(&c, &s, &ans, values))
            return;
    } else if (!(values[0] = unsigned_conveyed(&c, &s))) {
        sztp_error(&c, 500, "application", "operation-failed", "the conveyed information is unusable");
        return;
    }
    struct masad_error err;
    struct audit_event e = {arena_printf(c.a, "device:%s", c.serial), "sztp.bootstrap", c.serial,
                            c.owner, "ok", detail(&c, &ans)};
    if (audit_append(ctx->db, c.a, &e, &err) != 0) {
        sztp_error(&c, err.status, "application", "operation-failed", "%s", err.message);
        return;
    }
    /* validated before the commit: an invalid answer leaves no voucher behind */
    if (!sztp_answer(&c, names, values, ans.is_signed ? 3 : 1))
        return;
    if (store_commit(ctx->db, &err) != 0) {
        sztp_error(&c, 503, "application", "operation-failed", "the database is unavailable");
        return;
    }
    metrics_sztp_answer(ans.onboarding ? "onboarding" : "redirect", ans.is_signed);
    if (ans.is_signed && !ans.voucher_reused)
        metrics_voucher("sztp", 200);
}
