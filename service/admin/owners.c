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

struct domain_cert {
    const char *der_hex, *cert_sha256_hex, *spki_sha256_hex, *subject, *not_after;
};

struct owner_input {
    const char *display_name;
    const struct json_value *brski;         /* stored as given, with the policy defaults */
    const char *registrar_auth, *pinning;   /* brski policy (docs/brski.md) */
    struct domain_cert certs[MAX_CERTS];
    size_t cert_count;
    const char *owner_cert_hex[MAX_CERTS];  /* DER, end entity first */
    size_t owner_cert_count;
    const char *conveyed_json;              /* validated RFC 7951 text */
    const char *signed_b64;                 /* normalised base64 of the CMS */
    const char *signed_onboarding;          /* "true"/"false": what the signed data holds */
};

static const char *der_hex(struct arena *a, X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    const char *h = hex_encode(a, der, (size_t)n);
    OPENSSL_free(der);
    return h;
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
        unsigned char cert_md[32], spki_md[32];
        char not_after[32];
        crypto_cert_digests(x, cert_md, spki_md);
        crypto_time_rfc3339(X509_get0_notAfter(x), not_after);
        struct domain_cert *d = &in->certs[in->cert_count++];
        d->der_hex = der_hex(c->a, x);
        d->cert_sha256_hex = hex_encode(c->a, cert_md, 32);
        d->spki_sha256_hex = hex_encode(c->a, spki_md, 32);
        d->subject = crypto_cert_subject(x, c->a);
        d->not_after = arena_strdup(c->a, not_after);
        for (size_t j = 0; j + 1 < in->cert_count; j++)
            if (!strcmp(in->certs[j].spki_sha256_hex, d->spki_sha256_hex))
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
        in->owner_cert_hex[in->owner_cert_count++] = der_hex(c->a, x);
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
    in->signed_onboarding = onboarding && (!redirect || onboarding < redirect) ? "true" : "false";
    in->signed_b64 = base64_encode(c->a, der, len);
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

static int add_domain_certs(struct call *c, const char *owner, const struct owner_input *in,
                            struct masad_error *err)
{
    size_t n = in->cert_count;
    if (!n)
        return 0;
    const char *der[MAX_CERTS], *cert_md[MAX_CERTS], *spki[MAX_CERTS], *subj[MAX_CERTS],
        *na[MAX_CERTS];
    for (size_t i = 0; i < n; i++) {
        der[i] = in->certs[i].der_hex;
        cert_md[i] = in->certs[i].cert_sha256_hex;
        spki[i] = in->certs[i].spki_sha256_hex;
        subj[i] = in->certs[i].subject;
        na[i] = in->certs[i].not_after;
    }
    const char *params[] = {owner, store_text_array(c->a, der, n), store_text_array(c->a, cert_md, n),
                            store_text_array(c->a, spki, n), store_text_array(c->a, subj, n),
                            store_text_array(c->a, na, n)};
    return store_exec(c->ctx->db, c->a, "owner_certs_add", 6, params, NULL, err);
}

/* docs/management-api.md: a domain certificate belongs to one owner only (409). */
static bool certs_free_for(struct call *c, const char *owner, const struct owner_input *in)
{
    const char *spki[MAX_CERTS];
    for (size_t i = 0; i < in->cert_count; i++)
        spki[i] = in->certs[i].spki_sha256_hex;
    const char *params[] = {store_text_array(c->a, spki, in->cert_count), owner};
    PGresult *r;
    struct masad_error err;
    if (store_exec(c->ctx->db, c->a, "owner_certs_taken", 2, params, &r, &err) != 0)
        return call_fail(c, &err);
    for (int row = 0; row < PQntuples(r); row++)
        for (size_t i = 0; i < in->cert_count; i++)
            if (!strcmp(PQgetvalue(r, row, 0), in->certs[i].spki_sha256_hex))
                call_field_error(c, arena_printf(c->a, "/brski/domain_certs/%zu", i),
                                 "is registered to owner \"%s\"", PQgetvalue(r, row, 1));
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

static void write_owner(struct call *c, yajl_gen g, const PGresult *r, int row);

static bool store_owner(struct call *c, const char *owner, const struct owner_input *in,
                        bool *created)
{
    struct masad_error err;
    PGresult *lock;
    const char *id[] = {owner};
    if (store_begin(c->ctx->db, &err) != 0 ||
        store_exec(c->ctx->db, c->a, "owner_lock", 1, id, &lock, &err) != 0)
        return call_fail(c, &err);
    *created = PQntuples(lock) == 0 || strcmp(PQgetvalue(lock, 0, 0), "t") != 0;
    const char *etag;
    if (c->req->if_match && (!current_etag(c, "owner_get", owner, write_owner, &etag) ||
                             !call_check_if_match(c, etag)))
        return false;
    if (in->cert_count && !certs_free_for(c, owner, in))
        return false;
    const char *params[] = {owner, in->display_name, brski_text(c, in),
                            store_text_array(c->a, in->owner_cert_hex, in->owner_cert_count),
                            in->conveyed_json, in->signed_b64, in->signed_onboarding};
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_int(g, "domain_certs", (long long)in->cert_count);
    json_kv_int(g, "owner_certificates", (long long)in->owner_cert_count);
    json_str(g, "conveyed_information");
    json_bool(g, in->conveyed_json != NULL);
    json_str(g, "signed_conveyed_information");
    json_bool(g, in->signed_b64 != NULL);
    json_close(g);
    struct audit_event e = {c->actor, *created ? "owner.create" : "owner.update", NULL, owner,
                            "ok", json_finish(g, c->a, NULL)};
    if (store_exec(c->ctx->db, c->a, "owner_upsert", 7, params, NULL, &err) != 0 ||
        store_exec(c->ctx->db, c->a, "owner_certs_clear", 1, id, NULL, &err) != 0 ||
        add_domain_certs(c, owner, in, &err) != 0 || audit_append(c->ctx->db, c->a, &e, &err) != 0 ||
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

static void write_sztp(struct call *c, yajl_gen g, const PGresult *r, int row)
{
    const char *certs = PQgetvalue(r, row, 3);
    const char *conveyed = pq_value(r, row, 4), *signed_b64 = pq_value(r, row, 5);
    json_str(g, "sztp");
    if (!*certs && !conveyed && !signed_b64) {
        json_null(g);
        return;
    }
    json_open(g);
    if (*certs) {
        json_str(g, "owner_certificate");
        json_open_array(g);
        char *list = arena_strdup(c->a, certs), *save = NULL;
        for (char *b64 = strtok_r(list, ",", &save); b64; b64 = strtok_r(NULL, ",", &save))
            write_pem(g, c->a, b64);
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

static void write_owner(struct call *c, yajl_gen g, const PGresult *r, int row)
{
    json_open(g);
    json_kv_str(g, "owner_id", PQgetvalue(r, row, 0));
    json_kv_str(g, "display_name", pq_value(r, row, 1));
    json_str(g, "brski");
    write_stored_json(c, g, pq_value(r, row, 2));
    write_sztp(c, g, r, row);
    json_kv_str(g, "created_at", PQgetvalue(r, row, 6));
    json_kv_str(g, "updated_at", PQgetvalue(r, row, 7));
    json_close(g);
}

static void answer_owner(struct call *c, int status, const char *owner)
{
    struct masad_error err;
    PGresult *r;
    const char *params[] = {owner};
    if (store_exec(c->ctx->db, c->a, "owner_get", 1, params, &r, &err) != 0) {
        call_fail(c, &err);
        return;
    }
    if (PQntuples(r) != 1) {
        call_refuse(c, 404, "no owner \"%s\" exists", owner);
        return;
    }
    yajl_gen g = json_gen_new();
    write_owner(c, g, r, 0);
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
    const char *params[] = {after ? after : "", arena_printf(c.a, "%ld", limit + 1)};
    answer_list(&c, "owner_list", 2, params, limit, "owners", write_owner);
}

void admin_owner_delete(struct job_ctx *ctx, const struct masad_request *req,
                        struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "owner.delete");
    const char *owner;
    if (!call_authorize(&c, "owners:write") || !(owner = owner_from_path(&c, 404)))
        return;
    const char *id[] = {owner};
    PGresult *lock, *owned;
    struct masad_error err;
    if (store_begin(ctx->db, &err) != 0 ||
        store_exec(ctx->db, c.a, "owner_lock", 1, id, &lock, &err) != 0) {
        call_fail(&c, &err);
        return;
    }
    if (PQntuples(lock) != 1 || strcmp(PQgetvalue(lock, 0, 0), "t") != 0) {
        call_refuse(&c, 404, "no owner \"%s\" exists", owner);
        return;
    }
    const char *etag;
    if (req->if_match && (!current_etag(&c, "owner_get", owner, write_owner, &etag) ||
                          !call_check_if_match(&c, etag)))
        return;
    if (store_exec(ctx->db, c.a, "owner_devices_count", 1, id, &owned, &err) != 0) {
        call_fail(&c, &err);
        return;
    }
    if (atol(PQgetvalue(owned, 0, 0)) > 0) {
        call_refuse(&c, 409, "owner \"%s\" still owns %s devices: release or transfer them first",
                    owner, PQgetvalue(owned, 0, 0));
        return;
    }
    struct audit_event e = {c.actor, "owner.delete", NULL, owner, "ok", NULL};
    if (store_exec(ctx->db, c.a, "owner_delete", 1, id, NULL, &err) != 0 ||
        store_exec(ctx->db, c.a, "owner_certs_clear", 1, id, NULL, &err) != 0 ||
        audit_append(ctx->db, c.a, &e, &err) != 0 || store_commit(ctx->db, &err) != 0) {
        call_fail(&c, &err);
        return;
    }
    call_answer_empty(&c, 204);
}
