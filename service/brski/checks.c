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
#include "store/brski.h"

#define MEDIA_TYPE "application/voucher-cms+json" /* RFC 8995 §8.3 */

#define ACCEPTED ((struct refusal){0})

struct refusal brski_refusal(struct brski_call *c, int status, const char *fmt, ...)
{
    char sentence[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sentence, sizeof(sentence), fmt, ap);
    va_end(ap);
    return (struct refusal){status, arena_strdup(c->a, sentence), c->action};
}

void brski_render(struct brski_call *c, const struct refusal *r)
{
    if (!strcmp(r->action, "voucher.refuse"))
        metrics_voucher("brski", r->status);
    /* a registrar counts as authenticated once its chain reached a registered
     * owner's domain certificate; before that its subject is its own claim */
    audit_refuse(c->ctx->db, c->a, r, c->actor ? c->actor : "registrar:unidentified", c->serial,
                 c->owner, c->req->peer, c->registrar_known, NULL);
    response_text(c->res, c->a, r->status, r->sentence);
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
static struct refusal open_signed(struct brski_call *c, const unsigned char *der, size_t len,
                        const char *what, struct crypto_signed *out)
{
    char why[256];
    if (crypto_cms_open(der, len, c->a, out, why) != 0) {
        bool signature = !strncmp(why, "signature", 9);
        return brski_refusal(c, signature ? 403 : 400, "the %s %s", what, why);
    }
    /* RFC 8366 §8.3 id-ct-animaJSONVoucher; deployed clients also send id-data */
    if (strcmp(out->econtent_type, VOUCHER_OID) && strcmp(out->econtent_type, ID_DATA_OID))
        return brski_refusal(c, 400, "the %s has content type %s, not id-ct-animaJSONVoucher", what,
                            out->econtent_type);
    return ACCEPTED;
}

static void free_x509(void *x) { X509_free(x); }

/* The TLS client certificate as sent (unverified; the handshake proved its
 * key), or NULL: as TLS decoded it when the edge supplies that, else
 * parsed here once and freed with the arena. */
static X509 *tls_client_cert(struct brski_call *c)
{
    if (c->tls_read || !c->req->client_chain_len)
        return c->tls;
    c->tls_read = true;
    if (c->req->client_x509 && c->req->client_x509[0])
        return c->tls = c->req->client_x509[0];
    return c->tls = crypto_cert_cache_get_arena(c->a, c->req->client_chain[0].der,
                                                c->req->client_chain[0].len);
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
static struct refusal check_registrar(struct brski_call *c, struct brski_claim *claim)
{
    struct crypto_signed rvr;
    char why[256];
    /* until the CMS names its signer, the TLS client is the best name */
    X509 *tls = tls_client_cert(c);
    if (tls)
        c->actor = arena_printf(c->a, "registrar-tls:%s", crypto_cert_subject(tls, c->a));
    struct refusal r = open_signed(c, claim->rvr_der, claim->rvr_der_len,
                                   "registrar voucher-request", &rvr);
    if (refused(&r))
        return r;
    claim->registrar = rvr.signer;
    claim->carried = rvr.certs;
    claim->path = crypto_path_up(rvr.signer, rvr.certs, c->a);
    c->actor = subject_actor(c->a, rvr.signer);
    c->serial = claimed_serial(c, &rvr);
    /* RFC 8995 §5.5.4: only a registrar (id-kp-cmcRA) may ask for vouchers */
    if (!crypto_has_eku(rvr.signer, NID_cmcRA))
        return brski_refusal(c, 403, "the registrar certificate lacks the id-kp-cmcRA extended key "
                                    "usage (RFC 8995 §5.5.4)");
    if (crypto_cert_current(rvr.signer, why) != 0)
        return brski_refusal(c, 403, "the registrar certificate %s", why);
    if (voucher_request_parse(c->ctx->yang, c->a, rvr.content, rvr.content_len, &claim->rvr, why,
                              sizeof(why)) != 0)
        return brski_refusal(c, 400, "malformed registrar voucher-request: %s", why);
    c->serial = claim->rvr.serial;
    return ACCEPTED;
}

static bool same_bytes(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    return an == bn && (an == 0 || !memcmp(a, b, an));
}

/* The issuer name as X509_NAME_print_ex writes it with flags. */
static const char *issuer_text(struct arena *a, X509 *x, unsigned long flags)
{
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, X509_get_issuer_name(x), 0, flags);
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
        const char *name = issuer_text(c->a, idevid, XN_FLAG_ONELINE);
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
static struct refusal check_pledge(struct brski_call *c, struct brski_claim *claim)
{
    struct crypto_signed pvr;
    char why[256];
    const char *anchor;
    if (!claim->rvr.prior_signed)
        return brski_refusal(c, 400, "the registrar voucher-request carries no "
                                    "prior-signed-voucher-request");
    struct refusal r = open_signed(c, claim->rvr.prior_signed, claim->rvr.prior_signed_len,
                                   "pledge voucher-request", &pvr);
    if (refused(&r))
        return r;
    claim->idevid = pvr.signer;
    if (crypto_idevid_identify(c->ctx->idevid, pvr.signer, pvr.certs, c->a, &claim->serial,
                               &anchor, why) != 0)
        return brski_refusal(c, 403, "the pledge voucher-request is not signed by a known device: %s",
                            why);
    if (voucher_request_parse(c->ctx->yang, c->a, pvr.content, pvr.content_len, &claim->pvr, why,
                              sizeof(why)) != 0)
        return brski_refusal(c, 400, "malformed pledge voucher-request: %s", why);
    return ACCEPTED;
}

/* RFC 8995 §5.5.5, §5.5.6: one device, one nonce, one serial throughout. */
static struct refusal check_consistency(struct brski_call *c, struct brski_claim *claim)
{
    const char *idevid = claim->serial, *pvr = claim->pvr.serial, *rvr = claim->rvr.serial;
    /* deployed pledges write the serial in another letter case than their
     * IDevID; the registrar's request binds the voucher, so it must be exact */
    if (strcasecmp(idevid, pvr))
        return brski_refusal(c, 403, "serial-number mismatch: the pledge voucher-request names \"%s\", "
                                    "its IDevID \"%s\"", pvr, idevid);
    if (strcmp(idevid, rvr))
        return brski_refusal(c, 403, "serial-number mismatch: the registrar voucher-request names "
                                    "\"%s\", the pledge's IDevID \"%s\"", rvr, idevid);
    c->serial = idevid;
    if (claim->rvr.idevid_issuer && !issuer_matches(c, claim->idevid, &claim->rvr))
        return brski_refusal(c, 403, "idevid-issuer does not match the issuer of the pledge's IDevID");
    /* RFC 8995 §5.5: a registrar MAY leave the pledge's nonce out, which
     * makes the request nonceless (§5.5.4 then asks who the registrar is) */
    if (claim->rvr.nonce &&
        (!claim->pvr.nonce ||
         !same_bytes(claim->rvr.nonce, claim->rvr.nonce_len, claim->pvr.nonce, claim->pvr.nonce_len)))
        return brski_refusal(c, 403, "nonce mismatch: the registrar voucher-request's nonce differs "
                                    "from the pledge's (RFC 8995 §5.5.6)");
    return ACCEPTED;
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
static struct refusal unwrap_body(struct brski_call *c, struct brski_claim *claim)
{
    const struct masad_request *req = c->req;
    claim->rvr_der = req->body;
    claim->rvr_der_len = req->body_len;
    if (req->body_len < 2 || req->body[0] != 'M' || req->body[1] != 'I')
        return ACCEPTED;
    char *text = arena_alloc(c->a, req->body_len + 1);
    size_t n = 0;
    for (size_t i = 0; i < req->body_len; i++)
        if (!memchr(" \t\r\n", req->body[i], 4))
            text[n++] = (char)req->body[i];
    text[n] = 0;
    unsigned char *der = base64_decode(c->a, text, n, &claim->rvr_der_len);
    if (!der)
        return brski_refusal(c, 400, "the registrar voucher-request is neither DER nor base64 of DER");
    claim->rvr_der = der;
    c->base64 = true;
    return ACCEPTED;
}

struct refusal brski_check_request(struct brski_call *c, struct brski_claim *claim, const char *answer_type)
{
    const struct masad_request *req = c->req;
    memset(claim, 0, sizeof(*claim));
    if (!req->content_type || !media_type_is(req->content_type, MEDIA_TYPE))
        return brski_refusal(c, 415, "the voucher-request must be sent as %s (RFC 8995 §5.5)",
                            MEDIA_TYPE);
    if (!accepts(req->accept, answer_type))
        return brski_refusal(c, 406, "the answer is only available as %s (RFC 8995 §5.6)", answer_type);
    if (req->body_len > BRSKI_MAX_BODY)
        return brski_refusal(c, 413, "the voucher-request is larger than %d bytes", BRSKI_MAX_BODY);
    if (!req->body_len)
        return brski_refusal(c, 400, "the request has no body");
    struct refusal r = unwrap_body(c, claim);
    if (!refused(&r))
        r = check_registrar(c, claim);
    if (!refused(&r))
        r = check_pledge(c, claim);
    if (!refused(&r))
        r = check_consistency(c, claim);
    if (refused(&r))
        return r;
    claim->proximity = proximity_holds(c, claim);
    return ACCEPTED;
}

/* The registered domain certificate of a row; when the request carried the
 * very same certificate (same SHA-256), that one, else the parsed one the
 * certificate cache holds. */
static bool adopt(struct brski_call *c, struct brski_domain *domain,
                  const struct store_brski_domain_cert *row, X509 *carried,
                  const unsigned char carried_sha256[32])
{
    X509 *cert;
    if (carried && !memcmp(carried_sha256, row->cert_sha256, 32)) {
        X509_up_ref(carried);
        cert = carried;
    } else
        cert = crypto_cert_cache_get(row->der, row->der_len);
    if (!cert)
        return false;
    arena_defer(c->a, free_x509, cert);
    *domain = (struct brski_domain){row->owner, cert, row->registrar_auth, row->pin_registrar};
    return true;
}

/* Does the TLS client certificate chain to the domain certificate (the
 * rest of the TLS chain as intermediates)? */
static bool tls_chains_to(struct brski_call *c, X509 *leaf, X509 *domain_cert)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *rest = sk_X509_new_null();
    for (size_t i = 1; i < c->req->client_chain_len; i++) {
        X509 *x = c->req->client_x509 ? c->req->client_x509[i] : NULL;
        if (x)
            X509_up_ref(x);
        else
            x = crypto_cert_cache_get(c->req->client_chain[i].der, c->req->client_chain[i].len);
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
static struct refusal registrar_authenticated(struct brski_call *c, const struct brski_claim *claim,
                                    const struct brski_domain *domain)
{
    X509 *tls = tls_client_cert(c);
    if (!strcmp(domain->registrar_auth, "tls-equals-signer") &&
        (!tls || X509_cmp(tls, claim->registrar) != 0))
        return brski_refusal(c, 403, "the owner's registrars must present the voucher-request's "
                                    "signing certificate as TLS client certificate (registrar_auth "
                                    "tls-equals-signer)");
    if (!strcmp(domain->registrar_auth, "tls-chains-to-domain") &&
        (!tls || !tls_chains_to(c, tls, domain->cert)))
        return brski_refusal(c, 403, "the owner's registrars must present a TLS client certificate "
                                    "that chains to the owner's domain certificate (registrar_auth "
                                    "tls-chains-to-domain)");
    return ACCEPTED;
}

void brski_path_digests(struct arena *a, const struct brski_claim *claim,
                        struct brski_path *out)
{
    out->n = sk_X509_num(claim->path);
    out->spki = arena_alloc(a, (size_t)out->n * 32);
    out->cert = arena_alloc(a, (size_t)out->n * 32);
    for (int i = 0; i < out->n; i++)
        crypto_cert_digests(sk_X509_value(claim->path, i), out->cert[i], out->spki[i]);
    out->issuer = issuer_text(a, sk_X509_value(claim->path, out->n - 1), XN_FLAG_RFC2253);
}

/* docs/management-api.md, Owners: the owner whose domain certificate the
 * registrar's signing certificate chains to (by public key), the nearest
 * one first; else one whose certificate issued the top of the path (the
 * domain CA need not travel in the request). */
struct refusal brski_match_domain(struct brski_call *c, const struct brski_claim *claim,
                                  const struct brski_path *path,
                                  const struct store_brski_domain_cert *rows, size_t count,
                                  bool by_spki, struct brski_domain *domain)
{
    memset(domain, 0, sizeof(*domain));
    for (int i = 0; by_spki && i < path->n && !domain->owner; i++)
        for (size_t row = 0; row < count && !domain->owner; row++)
            if (!memcmp(rows[row].spki_sha256, path->spki[i], 32))
                adopt(c, domain, &rows[row], sk_X509_value(claim->path, i), path->cert[i]);
    X509 *top = sk_X509_value(claim->path, path->n - 1);
    for (size_t row = 0; !by_spki && row < count && !domain->owner; row++) {
        struct brski_domain candidate;
        if (adopt(c, &candidate, &rows[row], NULL, NULL) &&
            X509_verify(top, X509_get0_pubkey(candidate.cert)) == 1)
            *domain = candidate;
    }
    ERR_clear_error();
    if (!domain->owner)
        return ACCEPTED;
    c->registrar_known = true;
    return registrar_authenticated(c, claim, domain);
}

struct refusal brski_find_domain(struct brski_call *c, const struct brski_claim *claim,
                                 struct brski_domain *domain)
{
    struct brski_path path;
    brski_path_digests(c->a, claim, &path);
    struct masad_error err;
    struct store_brski_domain_cert *rows;
    size_t count;
    if (store_brski_domains_by_spki(c->ctx->db, c->a, (const unsigned char(*)[32])path.spki,
                                    (size_t)path.n, &rows, &count, &err) != 0)
        return brski_refusal(c, err.status, "%s", err.message);
    bool by_spki = count > 0;
    if (!by_spki && store_brski_domains_by_subject(c->ctx->db, c->a, path.issuer, &rows, &count,
                                                   &err) != 0)
        return brski_refusal(c, err.status, "%s", err.message);
    return brski_match_domain(c, claim, &path, rows, count, by_spki, domain);
}
