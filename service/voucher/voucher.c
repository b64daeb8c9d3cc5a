#include "voucher/voucher.h"

#include <stdio.h>
#include <string.h>

#include "common/encoding.h"
#include "common/json.h"
#include "common/yang.h"
#include "crypto/crypto.h"

static const char *const binary_leaves[] = {"nonce", "prior-signed-voucher-request",
                                            "proximity-registrar-cert", "idevid-issuer",
                                            "pinned-domain-cert", NULL};
static const char *const time_leaves[] = {"created-on", "expires-on", "last-renewal-date", NULL};

static bool listed(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (!strcmp(*list, s))
            return true;
    return false;
}

void voucher_time(time_t t, char *out)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "2024-05-01" (as some pledges send created-on) → "2024-05-01T00:00:00Z" */
static bool date_only(const char *s)
{
    return strlen(s) == 10 && s[4] == '-' && s[7] == '-';
}

/* RFC 8995 §5.5 leaves idevid-issuer's form open in prose; deployed
 * registrars send the printable issuer name, which is not base64: its
 * UTF-8 bytes stand for it, and the caller compares them with the name. */
static bool issuer_text(struct arena *a, struct json_value *v, struct voucher_request *out)
{
    size_t n;
    if (base64_decode(a, v->text, v->len, &n))
        return false;
    v->text = base64_encode(a, (const unsigned char *)v->text, v->len);
    v->len = strlen(v->text);
    out->idevid_issuer_is_text = true;
    return true;
}

/* Rewrites deployed clients' forms into the module's: standard padded
 * base64 and full date-and-time values. The nonce's own text is kept:
 * the voucher echoes it (docs/brski.md). */
static int normalise(struct arena *a, struct json_value *voucher, struct voucher_request *out,
                     char *why, size_t why_len)
{
    for (size_t i = 0; i < voucher->count; i++) {
        struct json_value *v = voucher->items[i];
        const char *key = voucher->keys[i];
        if (v->type != JSON_STRING)
            continue;
        if (!strcmp(key, "nonce"))
            out->nonce_text = v->text;
        if (!strcmp(key, "idevid-issuer") && issuer_text(a, v, out))
            continue;
        if (listed(binary_leaves, key)) {
            size_t n;
            unsigned char *bytes = base64_decode(a, v->text, v->len, &n);
            if (!bytes) {
                snprintf(why, why_len, "%s is not base64", key);
                return -1;
            }
            v->text = base64_encode(a, bytes, n);
            v->len = strlen(v->text);
        } else if (listed(time_leaves, key) && date_only(v->text)) {
            v->text = arena_printf(a, "%sT00:00:00Z", v->text);
            v->len = strlen(v->text);
        }
    }
    return 0;
}

static const unsigned char *binary(struct arena *a, const struct json_value *voucher,
                                   const char *key, size_t *len)
{
    const struct json_value *v = json_get(voucher, key);
    *len = 0;
    return v && v->type == JSON_STRING ? base64_decode(a, v->text, v->len, len) : NULL;
}

static const char *text(const struct json_value *voucher, const char *key)
{
    const struct json_value *v = json_get(voucher, key);
    return v && v->type == JSON_STRING ? v->text : NULL;
}

int voucher_request_parse(const struct ly_ctx *yang, struct arena *a, const unsigned char *json,
                          size_t len, struct voucher_request *out, char *why, size_t why_len)
{
    struct json_value *doc;
    struct masad_error err;
    memset(out, 0, sizeof(*out));
    if (json_parse(a, json, len, 8, &doc, &err) != 0) {
        snprintf(why, why_len, "%s", err.message);
        return -1;
    }
    /* deployed pledges and registrars write the voucher's root: as the only
     * member it can mean nothing else */
    if (doc->type == JSON_OBJECT && doc->count == 1 && !strcmp(doc->keys[0], "ietf-voucher:voucher")) {
        doc->keys[0] = "ietf-voucher-request:voucher";
        out->voucher_root = true;
    }
    struct json_value *voucher = (struct json_value *)json_get(doc, "ietf-voucher-request:voucher");
    if (doc->type != JSON_OBJECT || doc->count != 1 || !voucher || voucher->type != JSON_OBJECT) {
        snprintf(why, why_len, "the voucher-request is not {\"ietf-voucher-request:voucher\": {...}}");
        return -1;
    }
    if (normalise(a, voucher, out, why, why_len) != 0)
        return -1;
    yajl_gen g = json_gen_new();
    json_write_value(g, doc);
    const char *normal = json_finish(g, a, NULL);
    if (yang_check_data(yang, "ietf-voucher-request", "voucher-request-artifact", LYD_JSON, normal,
                        NULL, &err) != 0) {
        snprintf(why, why_len, "the voucher-request is invalid: %s", err.message);
        return -1;
    }
    out->serial = text(voucher, "serial-number");
    out->assertion = text(voucher, "assertion");
    out->nonce = binary(a, voucher, "nonce", &out->nonce_len);
    out->prior_signed = binary(a, voucher, "prior-signed-voucher-request", &out->prior_signed_len);
    out->proximity_cert = binary(a, voucher, "proximity-registrar-cert", &out->proximity_cert_len);
    out->idevid_issuer = binary(a, voucher, "idevid-issuer", &out->idevid_issuer_len);
    return 0;
}

/* nonce_text: what the nonce leaf says (NULL: standard base64 of t->nonce) */
static const char *voucher_json(struct arena *a, const struct voucher_terms *t,
                                const char *nonce_text)
{
    char created[32], expires[32];
    voucher_time(t->created_on, created);
    yajl_gen g = json_gen_new();
    json_open(g);
    json_str(g, "ietf-voucher:voucher");
    json_open(g);
    json_kv_str(g, "created-on", created);
    if (t->expires_on) { /* RFC 8366 §5.3: expires-on only without a nonce */
        voucher_time(t->expires_on, expires);
        json_kv_str(g, "expires-on", expires);
    }
    json_kv_str(g, "assertion", t->assertion);
    json_kv_str(g, "serial-number", t->serial);
    if (t->idevid_issuer)
        json_kv_str(g, "idevid-issuer", base64_encode(a, t->idevid_issuer, t->idevid_issuer_len));
    json_kv_str(g, "pinned-domain-cert", base64_encode(a, t->pinned_cert, t->pinned_cert_len));
    if (t->nonce)
        json_kv_str(g, "nonce", nonce_text ? nonce_text : base64_encode(a, t->nonce, t->nonce_len));
    json_close(g);
    json_close(g);
    return json_finish(g, a, NULL);
}

/* What masad builds is valid by construction (RFC 8366 §5.3: created-on,
 * assertion, serial-number and pinned-domain-cert always; expires-on only
 * without a nonce), so release builds sign the document as built. Builds
 * with MASAD_SELF_CHECK (every build but -Dbuildtype=release, see
 * meson_options.txt self_check) validate it against ietf-voucher first, and
 * tests/unit/test_voucher_issue.c validates every shape in any build. */
static int self_check(const struct ly_ctx *yang, struct arena *a, const struct voucher_terms *t,
                      const char *doc, const char *nonce_text, struct masad_error *err)
{
#ifdef MASAD_SELF_CHECK
    /* libyang's binary type takes no base64url: an echoed nonce text is
     * checked as the standard base64 of the same bytes */
    if (t->nonce && nonce_text)
        doc = voucher_json(a, t, NULL);
    struct masad_error yerr;
    if (yang_check_data(yang, "ietf-voucher", "voucher-artifact", LYD_JSON, doc, NULL, &yerr) != 0)
        return error_set(err, 500, "voucher", "the voucher would not be valid: %s", yerr.message);
#else
    (void)yang, (void)a, (void)t, (void)doc, (void)nonce_text, (void)err;
#endif
    return 0;
}

const char *voucher_build(struct arena *a, const struct voucher_terms *t, const char *nonce_text)
{
    return voucher_json(a, t, t->nonce ? nonce_text : NULL);
}

int voucher_issue_echoing(const struct ly_ctx *yang, struct crypto_signer *signer,
                          struct arena *a, const struct voucher_terms *t, const char *nonce_text,
                          unsigned char **cms, size_t *cms_len, const char **json,
                          struct masad_error *err)
{
    /* A pledge that compares its nonce as text refuses any re-encoding: the
     * voucher is signed with the pledge's text (docs/brski.md, The voucher). */
    const char *doc = voucher_build(a, t, nonce_text);
    if (self_check(yang, a, t, doc, nonce_text, err) != 0)
        return -1;
    if (crypto_cms_sign(signer, a, doc, strlen(doc), VOUCHER_OID, cms, cms_len, err) != 0)
        return -1;
    *json = doc;
    return 0;
}

int voucher_issue(const struct ly_ctx *yang, struct crypto_signer *signer, struct arena *a,
                  const struct voucher_terms *t, unsigned char **cms, size_t *cms_len,
                  const char **json, struct masad_error *err)
{
    return voucher_issue_echoing(yang, signer, a, t, NULL, cms, cms_len, json, err);
}
