/* The checks of RFC 8995 §5.5 that need no database. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "common/encoding.h"
#include "brski/brski_internal.h"
#include "common/json.h"
#include "common/log.h"
#include "common/refusal.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "store/store_pq.h"

#define MEDIA_TYPE "application/voucher-cms+json" /* RFC 8995 §8.3 */

bool brski_refuse(struct brski_call *c, int status, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (!strcmp(c->action, "voucher.refuse"))
        metrics_voucher("brski", status);
    struct refusal r = {status, reason, c->action};
    /* a registrar counts as authenticated once its chain reached a registered
     * owner's domain certificate; before that its subject is its own claim */
    audit_refuse(c->ctx->db, c->a, &r, c->actor ? c->actor : "registrar:unidentified", c->serial,
                 c->owner, c->req->peer, c->registrar_known, NULL);
    response_text(c->res, c->a, status, reason);
    return false;
}

/* RFC 8995 §5.6: 406 when the registrar accepts nothing masad can answer */
static bool accepts(const char *accept, const char *type)
{
    if (!accept || !*accept)
        return true;
    for (const char *p = accept; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (media_type_is(p, type) || media_type_is(p, "*/*") || media_type_is(p, "application/*"))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

static const char *subject_actor(struct arena *a, X509 *x)
{
    return arena_printf(a, "registrar:%s", crypto_cert_subject(x, a));
}

/* A CMS-signed voucher-request (RVR or PVR): 400 when it is not one, 403
 * when its signature is wrong (RFC 8995 §5.6). */
static bool open_signed(struct brski_call *c, const unsigned char *der, size_t len,
                        const char *what, struct crypto_signed *out)
{
    char why[256];
    if (crypto_cms_open(der, len, c->a, out, why) != 0) {
        bool signature = !strncmp(why, "signature", 9);
        return brski_refuse(c, signature ? 403 : 400, "the %s %s", what, why);
    }
    /* RFC 8366 §8.3 id-ct-animaJSONVoucher; deployed clients also send id-data */
    if (strcmp(out->econtent_type, VOUCHER_OID) && strcmp(out->econtent_type, ID_DATA_OID))
        return brski_refuse(c, 400, "the %s has content type %s, not id-ct-animaJSONVoucher", what,
                            out->econtent_type);
    return true;
}

static void free_x509(void *x) { X509_free(x); }

/* The TLS client certificate as sent (unverified; the handshake proved its
 * key), freed with the arena, or NULL. */
static X509 *tls_client_cert(struct brski_call *c)
{
    if (!c->req->client_chain_len)
        return NULL;
    const unsigned char *p = c->req->client_chain[0].der;
    X509 *x = d2i_X509(NULL, &p, (long)c->req->client_chain[0].len);
    if (x)
        arena_defer(c->a, free_x509, x);
    ERR_clear_error();
    return x;
}

/* The serial-number a voucher-request claims, read before anything about
 * it is checked, for the audit event of an early refusal; NULL when none
 * can be read. */
static const char *claimed_serial(struct brski_call *c, const struct crypto_signed *signed_vr)
{
    struct json_value *doc;
    struct masad_error err;
    if (json_parse(c->a, signed_vr->content, signed_vr->content_len, 8, &doc, &err) != 0 ||
        doc->type != JSON_OBJECT || doc->count != 1)
        return NULL;
    const struct json_value *serial = json_get(doc->items[0], "serial-number");
    return serial && serial->type == JSON_STRING && crypto_serial_acceptable(serial->text)
               ? serial->text
               : NULL;
}

/* The registrar: its signature, its EKU, its chain (RFC 8995 §5.5.3, §5.5.4). */
static bool check_registrar(struct brski_call *c, struct brski_claim *claim)
{
    struct crypto_signed rvr;
    char why[256];
    /* until the CMS names its signer, the TLS client is the best name */
    X509 *tls = tls_client_cert(c);
    if (tls)
        c->actor = arena_printf(c->a, "registrar-tls:%s", crypto_cert_subject(tls, c->a));
    if (!open_signed(c, claim->rvr_der, claim->rvr_der_len, "registrar voucher-request", &rvr))
        return false;
    claim->registrar = rvr.signer;
    claim->carried = rvr.certs;
    claim->path = crypto_path_up(rvr.signer, rvr.certs, c->a);
    c->actor = subject_actor(c->a, rvr.signer);
    c->serial = claimed_serial(c, &rvr);
    /* RFC 8995 §5.5.4: only a registrar (id-kp-cmcRA) may ask for vouchers */
    if (!crypto_has_eku(rvr.signer, NID_cmcRA))
        return brski_refuse(c, 403, "the registrar certificate lacks the id-kp-cmcRA extended key "
                                    "usage (RFC 8995 §5.5.4)");
    if (crypto_cert_current(rvr.signer, why) != 0)
        return brski_refuse(c, 403, "the registrar certificate %s", why);
    if (voucher_request_parse(c->ctx->yang, c->a, rvr.content, rvr.content_len, &claim->rvr, why,
                              sizeof(why)) != 0)
        return brski_refuse(c, 400, "malformed registrar voucher-request: %s", why);
    c->serial = claim->rvr.serial;
    return true;
}

static bool same_bytes(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    return an == bn && (an == 0 || !memcmp(a, b, an));
}

/* The issuer name as X509_NAME_print_ex(XN_FLAG_ONELINE) writes it. */
static const char *issuer_oneline(struct arena *a, X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, X509_get_issuer_name(x), 0, XN_FLAG_ONELINE);
    char *data;
    long len = BIO_get_mem_data(b, &data);
    const char *s = arena_strndup(a, data, (size_t)len);
    BIO_free(b);
    return s;
}

/* RFC 8995 §5.5 (idevid-issuer) as rfc8366bis defines it: the IDevID's
 * authority key identifier. Deployed registrars send RFC 8995's own
 * reading, the issuer Name (DER), or its printable one-line text: each is
 * taken when it is exactly the authenticated IDevID's. */
static bool issuer_matches(struct brski_call *c, X509 *idevid, const struct voucher_request *rvr)
{
    if (rvr->idevid_issuer_is_text) {
        const char *name = issuer_oneline(c->a, idevid);
        return same_bytes(rvr->idevid_issuer, rvr->idevid_issuer_len, (const unsigned char *)name,
                          strlen(name));
    }
    const ASN1_OCTET_STRING *aki = crypto_authority_key_id(idevid);
    if (aki && same_bytes(rvr->idevid_issuer, rvr->idevid_issuer_len, ASN1_STRING_get0_data(aki),
                          (size_t)ASN1_STRING_length(aki)))
        return true;
    unsigned char *name = NULL;
    int n = i2d_X509_NAME(X509_get_issuer_name(idevid), &name);
    bool ok = n > 0 && same_bytes(rvr->idevid_issuer, rvr->idevid_issuer_len, name, (size_t)n);
    OPENSSL_free(name);
    return ok;
}

/* The pledge's voucher-request inside (RFC 8995 §5.5.5). */
static bool check_pledge(struct brski_call *c, struct brski_claim *claim)
{
    struct crypto_signed pvr;
    char why[256];
    const char *anchor;
    if (!claim->rvr.prior_signed)
        return brski_refuse(c, 400, "the registrar voucher-request carries no "
                                    "prior-signed-voucher-request");
    if (!open_signed(c, claim->rvr.prior_signed, claim->rvr.prior_signed_len,
                     "pledge voucher-request", &pvr))
        return false;
    claim->idevid = pvr.signer;
    if (crypto_idevid_identify(c->ctx->idevid, pvr.signer, pvr.certs, c->a, &claim->serial,
                               &anchor, why) != 0)
        return brski_refuse(c, 403, "the pledge voucher-request is not signed by a known device: %s",
                            why);
    if (voucher_request_parse(c->ctx->yang, c->a, pvr.content, pvr.content_len, &claim->pvr, why,
                              sizeof(why)) != 0)
        return brski_refuse(c, 400, "malformed pledge voucher-request: %s", why);
    return true;
}

/* RFC 8995 §5.5.5, §5.5.6: one device, one nonce, one serial throughout. */
static bool check_consistency(struct brski_call *c, struct brski_claim *claim)
{
    const char *idevid = claim->serial, *pvr = claim->pvr.serial, *rvr = claim->rvr.serial;
    /* deployed pledges write the serial in another letter case than their
     * IDevID; the registrar's request binds the voucher, so it must be exact */
    if (strcasecmp(idevid, pvr))
        return brski_refuse(c, 403, "serial-number mismatch: the pledge voucher-request names \"%s\", "
                                    "its IDevID \"%s\"", pvr, idevid);
    if (strcmp(idevid, rvr))
        return brski_refuse(c, 403, "serial-number mismatch: the registrar voucher-request names "
                                    "\"%s\", the pledge's IDevID \"%s\"", rvr, idevid);
    c->serial = idevid;
    if (claim->rvr.idevid_issuer && !issuer_matches(c, claim->idevid, &claim->rvr))
        return brski_refuse(c, 403, "idevid-issuer does not match the issuer of the pledge's IDevID");
    /* RFC 8995 §5.5: a registrar MAY leave the pledge's nonce out, which
     * makes the request nonceless (§5.5.4 then asks who the registrar is) */
    if (claim->rvr.nonce &&
        (!claim->pvr.nonce ||
         !same_bytes(claim->rvr.nonce, claim->rvr.nonce_len, claim->pvr.nonce, claim->pvr.nonce_len)))
        return brski_refuse(c, 403, "nonce mismatch: the registrar voucher-request's nonce differs "
                                    "from the pledge's (RFC 8995 §5.5.6)");
    return true;
}

/* RFC 8995 §5.5.5: proximity when the registrar the pledge saw signed the RVR's chain */
static bool proximity_holds(struct brski_call *c, const struct brski_claim *claim)
{
    if (!claim->pvr.proximity_cert)
        return false;
    /* usually the very certificate that signed the RVR: compare the bytes
     * before parsing anything */
    size_t len;
    const unsigned char *signer = crypto_cert_der(claim->registrar, c->a, &len);
    if (signer && len == claim->pvr.proximity_cert_len &&
        !memcmp(signer, claim->pvr.proximity_cert, len))
        return true;
    const unsigned char *p = claim->pvr.proximity_cert;
    X509 *seen = d2i_X509(NULL, &p, (long)claim->pvr.proximity_cert_len);
    if (!seen)
        return false;
    /* the signing chain only: anyone can add certificates to a CMS */
    bool found = false;
    for (int i = 0; i < sk_X509_num(claim->path) && !found; i++)
        found = EVP_PKEY_eq(X509_get0_pubkey(seen), X509_get0_pubkey(sk_X509_value(claim->path, i))) == 1;
    X509_free(seen);
    (void)c;
    return found;
}

/* EST's habit: the body as base64 text of the DER CMS. DER SignedData
 * starts 0x30 0x8x, never 'M'; its base64 always starts "MI". Line breaks
 * are dropped; the size was bounded before. */
static bool unwrap_body(struct brski_call *c, struct brski_claim *claim)
{
    const struct masad_request *req = c->req;
    claim->rvr_der = req->body;
    claim->rvr_der_len = req->body_len;
    if (req->body_len < 2 || req->body[0] != 'M' || req->body[1] != 'I')
        return true;
    char *text = arena_alloc(c->a, req->body_len + 1);
    size_t n = 0;
    for (size_t i = 0; i < req->body_len; i++)
        if (!memchr(" \t\r\n", req->body[i], 4))
            text[n++] = (char)req->body[i];
    text[n] = 0;
    unsigned char *der = base64_decode(c->a, text, n, &claim->rvr_der_len);
    if (!der)
        return brski_refuse(c, 400, "the registrar voucher-request is neither DER nor base64 of DER");
    claim->rvr_der = der;
    c->base64 = true;
    return true;
}

bool brski_check_request(struct brski_call *c, struct brski_claim *claim, const char *answer_type)
{
    const struct masad_request *req = c->req;
    memset(claim, 0, sizeof(*claim));
    if (!req->content_type || !media_type_is(req->content_type, MEDIA_TYPE))
        return brski_refuse(c, 415, "the voucher-request must be sent as %s (RFC 8995 §5.5)",
                            MEDIA_TYPE);
    if (!accepts(req->accept, answer_type))
        return brski_refuse(c, 406, "the answer is only available as %s (RFC 8995 §5.6)", answer_type);
    if (req->body_len > BRSKI_MAX_BODY)
        return brski_refuse(c, 413, "the voucher-request is larger than %d bytes", BRSKI_MAX_BODY);
    if (!req->body_len)
        return brski_refuse(c, 400, "the request has no body");
    if (!unwrap_body(c, claim))
        return false;
    if (!check_registrar(c, claim) || !check_pledge(c, claim) || !check_consistency(c, claim))
        return false;
    claim->proximity = proximity_holds(c, claim);
    return true;
}

static X509 *cert_from_hex(struct arena *a, const char *hexder)
{
    size_t n;
    const unsigned char *der = hex_decode(a, hexder, &n);
    return der ? d2i_X509(NULL, &der, (long)n) : NULL;
}

/* The registered domain certificate of a row; when the request carried the
 * very same certificate (same SHA-256), that one, without parsing again. */
static bool adopt(struct brski_call *c, struct brski_domain *domain, PGresult *r, int row,
                  X509 *carried, const char *carried_sha256)
{
    domain->owner = PQgetvalue(r, row, 0);
    c->registrar_known = true;
    domain->registrar_auth = PQgetvalue(r, row, 4);
    domain->pin_registrar = !strcmp(PQgetvalue(r, row, 5), "registrar-ee");
    if (carried && !strcmp(carried_sha256, PQgetvalue(r, row, 3))) {
        X509_up_ref(carried);
        domain->cert = carried;
    } else
        domain->cert = cert_from_hex(c->a, PQgetvalue(r, row, 2));
    if (domain->cert)
        arena_defer(c->a, free_x509, domain->cert);
    return domain->cert != NULL;
}

/* Does the TLS client certificate chain to the domain certificate (the
 * rest of the TLS chain as intermediates)? */
static bool tls_chains_to(struct brski_call *c, X509 *leaf, X509 *domain_cert)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *rest = sk_X509_new_null();
    for (size_t i = 1; i < c->req->client_chain_len; i++) {
        const unsigned char *p = c->req->client_chain[i].der;
        X509 *x = d2i_X509(NULL, &p, (long)c->req->client_chain[i].len);
        if (x && !sk_X509_push(rest, x))
            X509_free(x);
    }
    /* the domain certificate may be an intermediate or the registrar's own */
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
    X509_STORE_add_cert(store, domain_cert);
    bool ok = X509_STORE_CTX_init(ctx, store, leaf, rest) == 1 && X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_pop_free(rest, X509_free);
    ERR_clear_error();
    return ok;
}

/* The owner's registrar_auth (docs/brski.md, Registrar policy per owner):
 * the TLS client that asks must be the registrar that signed, or one of
 * the owner's domain. */
static bool registrar_authenticated(struct brski_call *c, const struct brski_claim *claim,
                                    const struct brski_domain *domain)
{
    X509 *tls = tls_client_cert(c);
    if (!strcmp(domain->registrar_auth, "tls-equals-signer") &&
        (!tls || X509_cmp(tls, claim->registrar) != 0))
        return brski_refuse(c, 403, "the owner's registrars must present the voucher-request's "
                                    "signing certificate as TLS client certificate (registrar_auth "
                                    "tls-equals-signer)");
    if (!strcmp(domain->registrar_auth, "tls-chains-to-domain") &&
        (!tls || !tls_chains_to(c, tls, domain->cert)))
        return brski_refuse(c, 403, "the owner's registrars must present a TLS client certificate "
                                    "that chains to the owner's domain certificate (registrar_auth "
                                    "tls-chains-to-domain)");
    return true;
}

/* docs/management-api.md, Owners: the owner whose domain certificate the registrar's
 * signing certificate chains to (by public key), the nearest one first. */
bool brski_find_domain(struct brski_call *c, const struct brski_claim *claim,
                       struct brski_domain *domain)
{
    int n = sk_X509_num(claim->path);
    const char **spki = arena_alloc(c->a, (size_t)n * sizeof(char *));
    const char **cert = arena_alloc(c->a, (size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        unsigned char cert_md[32], spki_md[32];
        crypto_cert_digests(sk_X509_value(claim->path, i), cert_md, spki_md);
        spki[i] = hex_encode(c->a, spki_md, 32);
        cert[i] = hex_encode(c->a, cert_md, 32);
    }
    struct masad_error err;
    PGresult *r;
    const char *params[] = {store_text_array(c->a, spki, (size_t)n)};
    memset(domain, 0, sizeof(*domain));
    if (store_exec(c->ctx->db, c->a, "brski_domain_by_spki", 1, params, &r, &err) != 0)
        return brski_refuse(c, err.status, "%s", err.message);
    for (int i = 0; i < n && !domain->owner; i++)
        for (int row = 0; row < PQntuples(r) && !domain->owner; row++)
            if (!strcmp(PQgetvalue(r, row, 1), spki[i]))
                adopt(c, domain, r, row, sk_X509_value(claim->path, i), cert[i]);
    if (domain->owner)
        return registrar_authenticated(c, claim, domain);
    /* the domain CA need not travel in the request: the top of the path may
     * be issued by a registered certificate */
    X509 *top = sk_X509_value(claim->path, n - 1);
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, X509_get_issuer_name(top), 0, XN_FLAG_RFC2253);
    char *data;
    long len = BIO_get_mem_data(b, &data);
    const char *issuer[] = {arena_strndup(c->a, data, (size_t)len)};
    BIO_free(b);
    if (store_exec(c->ctx->db, c->a, "brski_domain_by_subject", 1, issuer, &r, &err) != 0)
        return brski_refuse(c, err.status, "%s", err.message);
    for (int row = 0; row < PQntuples(r) && !domain->owner; row++) {
        struct brski_domain candidate = {0};
        if (adopt(c, &candidate, r, row, NULL, NULL) &&
            X509_verify(top, X509_get0_pubkey(candidate.cert)) == 1)
            *domain = candidate;
    }
    ERR_clear_error();
    return !domain->owner || registrar_authenticated(c, claim, domain);
}
