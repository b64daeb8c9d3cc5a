#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "common/encoding.h"
#include "common/yang.h"
#include "crypto/crypto.h"

#define MAX_CERTS 16
#define OID_CONVEYED_JSON "1.2.840.113549.1.9.16.1.43" /* RFC 8572 §3.1 id-ct-sztpConveyedInfoJSON */
#define OID_CONVEYED_XML "1.2.840.113549.1.9.16.1.42"  /* id-ct-sztpConveyedInfoXML */

struct owner_input {
    const char *display_name;
    const struct json_value *brski;         /* stored as given, with the policy defaults */
    const char *registrar_auth, *pinning;   /* brski policy (docs/brski.md) */
    struct store_domain_cert certs[MAX_CERTS];
    size_t cert_count;
    const unsigned char *owner_cert[MAX_CERTS]; /* DER, end entity first */
    size_t owner_cert_len[MAX_CERTS];
    size_t owner_cert_count;
    const char *conveyed_json;              /* validated RFC 7951 text */
    const unsigned char *signed_der;        /* the CMS, or NULL */
    size_t signed_len;
    bool signed_onboarding;                 /* what the signed data holds */
};

/* x's DER, in a */
static const unsigned char *der_of(struct arena *a, X509 *x, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0) {
        *len = 0;
        return NULL;
    }
    unsigned char *copy = arena_alloc(a, (size_t)n);
    memcpy(copy, der, (size_t)n);
    OPENSSL_free(der);
    *len = (size_t)n;
    return copy;
}

static void free_x509(void *x) { X509_free(x); }
static void free_chain(void *s) { sk_X509_pop_free(s, X509_free); }

/* A PEM string at `where`, as an X509 freed with the arena, or NULL. */
static X509 *pem_member(struct call *c, const struct json_value *v, const char *where)
{
    char why[256];
    if (v->type != JSON_STRING) {
        call_field_error(c, where, "must be a PEM certificate string");
        return NULL;
    }
    X509 *x = crypto_cert_from_pem(v->text, v->len, why);
    if (!x)
        call_field_error(c, where, "%s", why);
    else
        arena_defer(c->a, free_x509, x);
    return x;
}

static const struct json_value *array_member(struct call *c, const struct json_value *obj,
                                             const char *key, const char *where, size_t max)
{
    const struct json_value *v = json_get(obj, key);
    if (v && (v->type != JSON_ARRAY || v->count < 1 || v->count > max)) {
        call_field_error(c, where, "must be an array of 1 to %zu PEM certificates", max);
        return NULL;
    }
    return v;
}

/* A member that must be one of values (the first is the default). */
static const char *member_choice(struct call *c, const struct json_value *obj, const char *key,
                                 const char *const *values)
{
    const char *where = arena_printf(c->a, "/brski/%s", key);
    const char *v = member_string(c, obj, "/brski", key, false, 64);
    if (!json_get(obj, key))
        return values[0];
    for (size_t i = 0; v && values[i]; i++)
        if (!strcmp(v, values[i]))
            return values[i];
    const char *list = values[0];
    for (size_t i = 1; values[i]; i++)
        list = arena_printf(c->a, "%s, %s", list, values[i]);
    if (v)
        call_field_error(c, where, "must be one of: %s", list);
    return NULL;
}

/* docs/brski.md, Registrar policy per owner */
static void read_brski_policy(struct call *c, const struct json_value *brski, struct owner_input *in)
{
    static const char *const auth[] = {"any", "tls-equals-signer", "tls-chains-to-domain", NULL};
    static const char *const pinning[] = {"domain-ca", "registrar-ee", NULL};
    in->registrar_auth = member_choice(c, brski, "registrar_auth", auth);
    in->pinning = member_choice(c, brski, "pinning", pinning);
}

/* docs/management-api.md, Owners: brski.domain_certs are current CA certificates, or the
 * registrar's own (id-kp-cmcRA) certificate, one owner each. */
static void read_brski(struct call *c, const struct json_value *brski, struct owner_input *in)
{
    static const char *const fields[] = {"domain_certs", "registrar_auth", "pinning", NULL};
    if (brski->type != JSON_OBJECT) {
        call_field_error(c, "/brski", "must be an object");
        return;
    }
    check_members(c, brski, "/brski", fields);
    read_brski_policy(c, brski, in);
    const struct json_value *list =
        array_member(c, brski, "domain_certs", "/brski/domain_certs", MAX_CERTS);
    if (!json_get(brski, "domain_certs"))
        call_field_error(c, "/brski/domain_certs", "is required");
    for (size_t i = 0; list && i < list->count; i++) {
        const char *where = arena_printf(c->a, "/brski/domain_certs/%zu", i);
        X509 *x = pem_member(c, list->items[i], where);
        char why[256];
        if (!x)
            continue;
        /* a registrar chain that carries only its end-entity certificate
         * is registered by that certificate (RFC 8995 §5.5.4: id-kp-cmcRA) */
        if (!(X509_get_extension_flags(x) & EXFLAG_CA) && !crypto_has_eku(x, NID_cmcRA)) {
            call_field_error(c, where, "is neither a CA certificate (basicConstraints CA:TRUE) nor a "
                                       "registrar certificate (id-kp-cmcRA)");
            continue;
        }
        if (crypto_cert_current(x, why) != 0) {
            call_field_error(c, where, "%s", why);
            continue;
        }
        char not_after[32];
        struct store_domain_cert *d = &in->certs[in->cert_count++];
        crypto_cert_digests(x, d->cert_sha256, d->spki_sha256);
        crypto_time_rfc3339(X509_get0_notAfter(x), not_after);
        d->der = der_of(c->a, x, &d->der_len);
        d->subject = crypto_cert_subject(x, c->a);
        d->not_after = arena_strdup(c->a, not_after);
        for (size_t j = 0; j + 1 < in->cert_count; j++)
            if (!memcmp(in->certs[j].spki_sha256, d->spki_sha256, 32))
                call_field_error(c, where, "has the same public key as /brski/domain_certs/%zu", j);
    }
    in->brski = brski;
}

static STACK_OF(X509) *read_owner_chain(struct call *c, const struct json_value *list,
                                        struct owner_input *in)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    arena_defer(c->a, free_chain, chain);
    for (size_t i = 0; i < list->count; i++) {
        X509 *x = pem_member(c, list->items[i], arena_printf(c->a, "/sztp/owner_certificate/%zu", i));
        if (!x)
            continue;
        X509_up_ref(x);
        sk_X509_push(chain, x);
        in->owner_cert[in->owner_cert_count] =
            der_of(c->a, x, &in->owner_cert_len[in->owner_cert_count]);
        in->owner_cert_count++;
    }
    char why[256];
    if (!c->error_count && crypto_chain_linked(chain, why) != 0)
        call_field_error(c, "/sztp/owner_certificate", "%s", why);
    return chain;
}

/* The conveyed information must be what ietf-sztp-conveyed-info allows. */
static void check_conveyed(struct call *c, LYD_FORMAT format, const char *text, const char *where)
{
    struct masad_error err;
    char path[256];
    if (yang_check_data(c->ctx->yang, "ietf-sztp-conveyed-info", "conveyed-information", format,
                        text, path, &err) == 0)
        return;
    /* libyang's data path becomes a JSON pointer below the field */
    char pointer[600];
    snprintf(pointer, sizeof(pointer), "%s%s", where, format == LYD_JSON ? path : "");
    for (char *p = strchr(pointer, '['); p; p = strchr(p, '[')) { /* list keys: drop */
        char *end = strchr(p, ']');
        if (!end)
            break;
        memmove(p, end + 1, strlen(end + 1) + 1);
    }
    call_field_error(c, pointer, "%s", err.message);
}

static const char *base64_der(struct call *c, const struct json_value *v, size_t *len)
{
    if (v->type != JSON_STRING || v->len == 0 || v->len > 4 * 1024 * 1024)
        return NULL;
    BIO *b64 = BIO_new(BIO_f_base64()), *mem = BIO_new_mem_buf(v->text, (int)v->len);
    if (!strchr(v->text, '\n'))
        BIO_set_flags(b64, BIO_FLAGS_BASE64_NO_NL);
    BIO_push(b64, mem);
    unsigned char *out = arena_alloc(c->a, v->len);
    int n = BIO_read(b64, out, (int)v->len);
    BIO_free_all(b64);
    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? (const char *)out : NULL;
}

static void read_signed(struct call *c, const struct json_value *v, STACK_OF(X509) *chain,
                        struct owner_input *in)
{
    const char *where = "/sztp/signed_conveyed_information";
    size_t len;
    const unsigned char *der = (const unsigned char *)base64_der(c, v, &len);
    if (!der) {
        call_field_error(c, where, "must be base64 of a CMS SignedData");
        return;
    }
    if (!chain || sk_X509_num(chain) == 0) {
        call_field_error(c, "/sztp/owner_certificate", "is required with signed_conveyed_information");
        return;
    }
    char why[256], oid[64];
    unsigned char *content;
    size_t content_len;
    if (crypto_cms_verify_by_chain(der, len, chain, c->a, oid, sizeof(oid), &content,
                                   &content_len, why) != 0) {
        call_field_error(c, where, "%s", why);
        return;
    }
    bool is_json = !strcmp(oid, OID_CONVEYED_JSON), is_xml = !strcmp(oid, OID_CONVEYED_XML);
    if (!is_json && !is_xml) {
        call_field_error(c, where, "has content type %s, not id-ct-sztpConveyedInfoJSON or XML "
                                   "(RFC 8572 §3.1)", oid);
        return;
    }
    check_conveyed(c, is_json ? LYD_JSON : LYD_XML, (const char *)content, where);
    /* by its top-level node (validated just now): JSON member or XML element */
    const char *onboarding = strstr((const char *)content, "onboarding-information");
    const char *redirect = strstr((const char *)content, "redirect-information");
    in->signed_onboarding = onboarding && (!redirect || onboarding < redirect);
    in->signed_der = der;
    in->signed_len = len;
}

static void read_sztp(struct call *c, const struct json_value *sztp, struct owner_input *in)
{
    static const char *const fields[] = {"owner_certificate", "conveyed_information",
                                         "signed_conveyed_information", NULL};
    if (sztp->type != JSON_OBJECT) {
        call_field_error(c, "/sztp", "must be an object");
        return;
    }
    check_members(c, sztp, "/sztp", fields);
    const struct json_value *certs =
        array_member(c, sztp, "owner_certificate", "/sztp/owner_certificate", MAX_CERTS);
    STACK_OF(X509) *chain = certs ? read_owner_chain(c, certs, in) : NULL;
    const struct json_value *conveyed = json_get(sztp, "conveyed_information");
    if (conveyed && conveyed->type != JSON_OBJECT)
        call_field_error(c, "/sztp/conveyed_information", "must be an object (RFC 7951 JSON)");
    else if (conveyed) {
        yajl_gen g = json_gen_new();
        json_write_value(g, conveyed);
        in->conveyed_json = json_finish(g, c->a, NULL);
        check_conveyed(c, LYD_JSON, in->conveyed_json, "/sztp/conveyed_information");
    }
    const struct json_value *sig = json_get(sztp, "signed_conveyed_information");
    if (sig && !c->error_count)
        read_signed(c, sig, chain, in);
}

static void read_owner(struct call *c, const struct json_value *body, struct owner_input *in)
{
    static const char *const fields[] = {"display_name", "brski", "sztp", NULL};
    memset(in, 0, sizeof(*in));
    check_members(c, body, "", fields);
    in->display_name = member_string(c, body, "", "display_name", false, 256);
    const struct json_value *brski = json_get(body, "brski"), *sztp = json_get(body, "sztp");
    if (brski)
        read_brski(c, brski, in);
    if (sztp)
        read_sztp(c, sztp, in);
}

/* ---- storing ---- */

/* docs/management-api.md: a domain certificate belongs to one owner only (409). */
static bool certs_free_for(struct call *c, const char *owner, const struct owner_input *in)
{
    unsigned char spki[MAX_CERTS][32];
    for (size_t i = 0; i < in->cert_count; i++)
        memcpy(spki[i], in->certs[i].spki_sha256, 32);
    struct store_cert_taken *taken;
    size_t count;
    struct masad_error err;
    if (store_owner_certs_taken(c->ctx->db, c->a, owner, (const unsigned char(*)[32])spki,
                                in->cert_count, &taken, &count, &err) != 0)
        return call_fail(c, &err);
    for (size_t row = 0; row < count; row++)
        for (size_t i = 0; i < in->cert_count; i++)
            if (!memcmp(taken[row].spki_sha256, in->certs[i].spki_sha256, 32))
                call_field_error(c, arena_printf(c->a, "/brski/domain_certs/%zu", i),
                                 "is registered to owner \"%s\"", taken[row].owner_id);
    if (c->error_count)
        return call_refuse(c, 409, "a domain certificate belongs to another owner");
    return true;
}

/* As given, with the policy's defaults written out (GET shows them). */
static const char *brski_text(struct call *c, const struct owner_input *in)
{
    if (!in->brski)
        return NULL;
    yajl_gen g = json_gen_new();
    json_open(g);
    json_str(g, "domain_certs");
    json_write_value(g, json_get(in->brski, "domain_certs"));
    json_kv_str(g, "registrar_auth", in->registrar_auth);
    json_kv_str(g, "pinning", in->pinning);
    json_close(g);
    return json_finish(g, c->a, NULL);
}

static void write_owner(struct call *c, yajl_gen g, const void *row);

/* The If-Match of a change to the locked owner holds; false: answered. */
static bool owner_if_match(struct call *c, const char *owner)
{
    if (!c->req->if_match)
        return true;
    struct store_owner now;
    struct masad_error err;
    int found = store_owner_get(c->ctx->db, c->a, owner, &now, &err);
    if (found < 0)
        return call_fail(c, &err);
    return call_check_if_match(c, row_etag(c, found ? &now : NULL, write_owner));
}

static bool store_owner(struct call *c, const char *owner, const struct owner_input *in,
                        bool *created)
{
    struct masad_error err;
    int live;
    if (store_begin(c->ctx->db, &err) != 0 ||
        (live = store_owner_lock(c->ctx->db, c->a, owner, &err)) < 0)
        return call_fail(c, &err);
    *created = !live;
    if (!owner_if_match(c, owner))
        return false;
    if (in->cert_count && !certs_free_for(c, owner, in))
        return false;
    struct store_owner_write w = {owner, in->display_name, brski_text(c, in),
                                  in->owner_cert, in->owner_cert_len, in->owner_cert_count,
                                  in->conveyed_json, in->signed_der, in->signed_len,
                                  in->signed_onboarding};
    struct audit_detail *d = audit_detail_new(c->a);
    audit_detail_int(d, "domain_certs", (long long)in->cert_count);
    audit_detail_int(d, "owner_certificates", (long long)in->owner_cert_count);
    audit_detail_bool(d, "conveyed_information", in->conveyed_json != NULL);
    audit_detail_bool(d, "signed_conveyed_information", in->signed_der != NULL);
    struct audit_event e = {c->actor, *created ? "owner.create" : "owner.update", NULL, owner,
                            "ok", audit_detail_text(d)};
    if (store_owner_upsert(c->ctx->db, c->a, &w, &err) != 0 ||
        store_owner_certs_clear(c->ctx->db, c->a, owner, &err) != 0 ||
        store_owner_certs_add(c->ctx->db, c->a, owner, in->certs, in->cert_count, &err) != 0 ||
        audit_append_canonical(c->ctx->db, c->a, &e, &err) != 0 ||
        store_commit(c->ctx->db, &err) != 0) {
        if (!strcmp(err.code ? err.code : "", "db-unique")) /* a concurrent registration won */
            return call_refuse(c, 409, "a domain certificate belongs to another owner");
        return call_fail(c, &err);
    }
    return true;
}

/* ---- answers ---- */

static void write_pem(yajl_gen g, struct arena *a, const char *b64)
{
    BIO *out = BIO_new(BIO_s_mem());
    BIO_puts(out, "-----BEGIN CERTIFICATE-----\n");
    for (size_t i = 0, n = strlen(b64); i < n; i += 64) {
        BIO_write(out, b64 + i, (int)(n - i < 64 ? n - i : 64));
        BIO_puts(out, "\n");
    }
    BIO_puts(out, "-----END CERTIFICATE-----\n");
    char *data;
    long len = BIO_get_mem_data(out, &data);
    json_str(g, arena_strndup(a, data, (size_t)len));
    BIO_free(out);
}

/* Stored JSON text goes out as JSON, re-parsed so the answer stays one document. */
static void write_stored_json(struct call *c, yajl_gen g, const char *text)
{
    struct json_value *v;
    struct masad_error err;
    if (!text || json_parse(c->a, text, strlen(text), 64, &v, &err) != 0)
        json_null(g);
    else
        json_write_value(g, v);
}

static void write_sztp(struct call *c, yajl_gen g, const struct store_owner *o)
{
    const char *conveyed = o->conveyed_information, *signed_b64 = o->signed_conveyed_b64;
    json_str(g, "sztp");
    if (!o->owner_cert_count && !conveyed && !signed_b64) {
        json_null(g);
        return;
    }
    json_open(g);
    if (o->owner_cert_count) {
        json_str(g, "owner_certificate");
        json_open_array(g);
        for (size_t i = 0; i < o->owner_cert_count; i++)
            write_pem(g, c->a, o->owner_certs_b64[i]);
        json_close_array(g);
    }
    if (conveyed) {
        json_str(g, "conveyed_information");
        write_stored_json(c, g, conveyed);
    }
    if (signed_b64)
        json_kv_str(g, "signed_conveyed_information", signed_b64);
    json_close(g);
}

static void write_owner(struct call *c, yajl_gen g, const void *row)
{
    const struct store_owner *o = row;
    json_open(g);
    json_kv_str(g, "owner_id", o->owner_id);
    json_kv_str(g, "display_name", o->display_name);
    json_str(g, "brski");
    write_stored_json(c, g, o->brski);
    write_sztp(c, g, o);
    json_kv_str(g, "created_at", o->created_at);
    json_kv_str(g, "updated_at", o->updated_at);
    json_close(g);
}

static const char *owner_key(struct call *c, const void *row)
{
    (void)c;
    return ((const struct store_owner *)row)->owner_id;
}

static void answer_owner(struct call *c, int status, const char *owner)
{
    struct masad_error err;
    struct store_owner o;
    int found = store_owner_get(c->ctx->db, c->a, owner, &o, &err);
    if (found < 0) {
        call_fail(c, &err);
        return;
    }
    if (!found) {
        call_refuse(c, 404, "no owner \"%s\" exists", owner);
        return;
    }
    yajl_gen g = json_gen_new();
    write_owner(c, g, &o);
    call_answer_tagged(c, status, g);
}

static const char *owner_from_path(struct call *c, int invalid_status)
{
    const char *owner = path_param(c, 0);
    if (!owner || !owner_id_valid(owner)) {
        if (invalid_status == 422)
            call_field_error(c, "/owner_id", "must be 1 to 64 of a-z 0-9 . _ -");
        call_refuse(c, invalid_status, invalid_status == 404 ? "no owner has that owner_id"
                                                             : "the owner_id in the path is invalid");
        return NULL;
    }
    c->owner = owner;
    return owner;
}

void admin_owner_put(struct job_ctx *ctx, const struct masad_request *req,
                     struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "owner.put");
    const char *owner;
    struct json_value *body;
    if (!call_authorize(&c, "owners:write") || !(owner = owner_from_path(&c, 422)) ||
        !call_read_json(&c, ADMIN_MAX_BODY, &body))
        return;
    struct owner_input in;
    read_owner(&c, body, &in);
    if (c.error_count) {
        call_refuse(&c, 422, "the owner is invalid");
        return;
    }
    bool created = false;
    if (store_owner(&c, owner, &in, &created))
        answer_owner(&c, created ? 201 : 200, owner);
}

void admin_owner_get(struct job_ctx *ctx, const struct masad_request *req,
                     struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "owner.get");
    const char *owner;
    if (call_authorize(&c, "owners:read") && (owner = owner_from_path(&c, 404)))
        answer_owner(&c, 200, owner);
}

void admin_owner_list(struct job_ctx *ctx, const struct masad_request *req,
                      struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "owner.list");
    long limit;
    const char *after;
    if (!call_authorize(&c, "owners:read") ||
        !read_paging(&c, NULL, owner_id_valid, &limit, &after))
        return;
    struct store_owner *rows;
    size_t n;
    struct masad_error err;
    if (store_owner_list(ctx->db, c.a, after, limit + 1, &rows, &n, &err) != 0)
        call_fail(&c, &err);
    else
        answer_list(&c, rows, n, sizeof(*rows), limit, "owners", write_owner, owner_key);
}

void admin_owner_delete(struct job_ctx *ctx, const struct masad_request *req,
                        struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "owner.delete");
    const char *owner;
    if (!call_authorize(&c, "owners:write") || !(owner = owner_from_path(&c, 404)))
        return;
    struct masad_error err;
    int live;
    long long owned;
    if (store_begin(ctx->db, &err) != 0 || (live = store_owner_lock(ctx->db, c.a, owner, &err)) < 0) {
        call_fail(&c, &err);
        return;
    }
    if (!live) {
        call_refuse(&c, 404, "no owner \"%s\" exists", owner);
        return;
    }
    if (!owner_if_match(&c, owner))
        return;
    if (store_owner_devices_count(ctx->db, c.a, owner, &owned, &err) != 0) {
        call_fail(&c, &err);
        return;
    }
    if (owned > 0) {
        call_refuse(&c, 409, "owner \"%s\" still owns %lld devices: release or transfer them first",
                    owner, owned);
        return;
    }
    struct audit_event e = {c.actor, "owner.delete", NULL, owner, "ok", NULL};
    if (store_owner_delete(ctx->db, c.a, owner, &err) != 0 ||
        store_owner_certs_clear(ctx->db, c.a, owner, &err) != 0 ||
        audit_append(ctx->db, c.a, &e, &err) != 0 || store_commit(ctx->db, &err) != 0) {
        call_fail(&c, &err);
        return;
    }
    call_answer_empty(&c, 204);
}
