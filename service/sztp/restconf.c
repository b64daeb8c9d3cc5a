/* RESTCONF (RFC 8040) for the bootstrap server's RPCs: encodings, device
 * authentication, input parsing, errors. */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "common/encoding.h"
#include "common/json.h"
#include "common/metrics.h"
#include "common/refusal.h"
#include "common/yang.h"
#include "crypto/crypto.h"
#include "store/sztp.h"
#include "sztp/sztp_internal.h"

#define MODULE "ietf-sztp-bootstrap-server"
#define NAMESPACE "urn:ietf:params:xml:ns:yang:ietf-sztp-bootstrap-server"

static const char *xml_escape(struct arena *a, const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += *p == '<' || *p == '>' ? 4 : *p == '&' ? 5 : 1;
    char *out = arena_alloc(a, n + 1), *o = out;
    for (const char *p = s; *p; p++) {
        const char *r = *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '&' ? "&amp;" : NULL;
        if (r) {
            memcpy(o, r, strlen(r));
            o += strlen(r);
        } else
            *o++ = *p;
    }
    return out;
}

static void write_error(struct sztp_call *c, int status, const char *type, const char *tag,
                        const char *message)
{
    const char *body;
    if (c->format == SZTP_XML)
        body = arena_printf(c->a,
                            "<errors xmlns=\"urn:ietf:params:xml:ns:yang:ietf-restconf\"><error>"
                            "<error-type>%s</error-type><error-tag>%s</error-tag>"
                            "<error-message>%s</error-message></error></errors>",
                            type, tag, xml_escape(c->a, message));
    else {
        yajl_gen g = json_gen_new();
        json_open(g);
        json_str(g, "ietf-restconf:errors");
        json_open(g);
        json_str(g, "error");
        json_open_array(g);
        json_open(g);
        json_kv_str(g, "error-type", type);
        json_kv_str(g, "error-tag", tag);
        json_kv_str(g, "error-message", message);
        json_close(g);
        json_close_array(g);
        json_close(g);
        json_close(g);
        body = json_finish(g, c->a, NULL);
    }
    response_set(c->res, c->a, status,
                 c->format == SZTP_XML ? "application/yang-data+xml" : "application/yang-data+json",
                 body, strlen(body));
}

void sztp_refuse(struct sztp_call *c, const struct sztp_refusal *r)
{
    if (!strcmp(c->rpc, "get-bootstrapping-data"))
        metrics_sztp_answer("error", false);
    write_error(c, r->r.status, r->type, r->tag, r->r.sentence);
    if (r->r.status == 401)
        response_add_header(c->res, "www-authenticate", "Basic realm=\"masad\"");
    const char *more[] = {"rpc", c->rpc, NULL};
    audit_refuse(c->ctx->db, c->a, &r->r,
                 c->serial ? arena_printf(c->a, "device:%s", c->serial) : "device:unauthenticated",
                 c->serial, c->owner, c->req->peer, c->serial != NULL, more);
}

/* ---- authentication (RFC 8572 §5.3, RFC 8040 §2.5) ---- */

static void free_x509(void *x) { X509_free(x); }
static void free_stack(void *s) { sk_X509_pop_free(s, X509_free); }

static void free_borrowed(void *s) { sk_X509_free(s); }

/* The chain as X509s, leaf in *leaf: TLS's own decoding when the edge gave
 * it (borrowed, owned by the request), else parsed from the DER. */
static STACK_OF(X509) *client_chain(struct sztp_call *c, X509 **leaf)
{
    const struct masad_request *req = c->req;
    STACK_OF(X509) *rest = sk_X509_new_null();
    *leaf = NULL;
    if (req->client_x509) {
        arena_defer(c->a, free_borrowed, rest);
        for (size_t i = 0; i < req->client_chain_len; i++)
            if (req->client_x509[i] && !*leaf)
                *leaf = req->client_x509[i];
            else if (req->client_x509[i])
                sk_X509_push(rest, req->client_x509[i]);
        return rest;
    }
    arena_defer(c->a, free_stack, rest);
    for (size_t i = 0; i < req->client_chain_len; i++) {
        X509 *x = crypto_cert_cache_get(req->client_chain[i].der, req->client_chain[i].len);
        if (!x)
            continue;
        if (!*leaf) {
            *leaf = x;
            arena_defer(c->a, free_x509, x);
        } else
            sk_X509_push(rest, x);
    }
    return rest;
}

/* The serial of a TLS client certificate that chains to the IDevID anchors;
 * NULL when there is none. *bad when one was sent but does not verify. */
static const char *certificate_serial(struct sztp_call *c, bool *bad)
{
    *bad = false;
    if (!c->req->client_chain_len)
        return NULL;
    X509 *leaf;
    STACK_OF(X509) *rest = client_chain(c, &leaf);
    const char *serial = NULL, *anchor;
    char why[256];
    /* docs/sztp.md: the identity is an end-entity client certificate */
    if (!leaf || crypto_cert_client_identity(leaf, why) != 0 ||
        crypto_idevid_identify(c->ctx->idevid, leaf, rest, c->a, &serial, &anchor, why) != 0)
        *bad = true;
    ERR_clear_error();
    return *bad ? NULL : serial;
}

/* docs/management-api.md: SHA-256(salt || password), compared in constant
 * time; the digest is computed either way, so that an unknown device takes
 * as long. */
static bool password_matches(const struct store_sztp_password *p, const char *password)
{
    unsigned char md[32], stored[32] = {0}, salt[64] = {0};
    bool shaped = p->device_found && p->salt.data && p->salt.len > 0 &&
                  p->salt.len <= sizeof(salt) && p->hash.data && p->hash.len == 32;
    if (shaped) {
        memcpy(salt, p->salt.data, p->salt.len);
        memcpy(stored, p->hash.data, 32);
    }
    crypto_password_digest(salt, shaped ? p->salt.len : 16, password, md);
    return CRYPTO_memcmp(md, stored, 32) == 0 && shaped;
}

/* The serial of valid HTTP Basic credentials (serial : sztp_password). */
static const char *basic_serial(struct sztp_call *c, bool *present, bool *db_down)
{
    const char *auth = c->req->authorization;
    *present = auth && !strncasecmp(auth, "Basic ", 6);
    *db_down = false;
    if (!*present)
        return NULL;
    size_t len;
    unsigned char *pair = base64_decode(c->a, auth + 6, strlen(auth + 6), &len);
    char *colon = pair ? memchr(pair, ':', len) : NULL;
    if (!colon || memchr(pair, 0, len))
        return NULL;
    /* RFC 7617 §2: the user name is the serial number (1-64 PrintableString
     * characters, docs/sztp.md); one that cannot be (longer, or not UTF-8,
     * which PostgreSQL would refuse) matches no device: 401, not a lookup */
    size_t user_len = (size_t)(colon - (char *)pair);
    if (user_len < 1 || user_len > 64 || !json_utf8_valid((const char *)pair, user_len))
        return NULL;
    *colon = 0;
    struct store_sztp_password pw;
    struct masad_error err;
    if (store_sztp_password(c->ctx->db, c->a, (const char *)pair, &pw, &err) != 0) {
        *db_down = true;
        return NULL;
    }
    return password_matches(&pw, colon + 1) ? (const char *)pair : NULL;
}

/* Agents such as opiproject's sztp-agent send HTTP Basic on every request,
 * also from a device that authenticates by its IDevID and has no SZTP
 * password: does this Basic name the certificate's own serial, of a device
 * without a password? */
static bool basic_adds_nothing(struct sztp_call *c, const char *cert_serial)
{
    const char *auth = c->req->authorization;
    size_t len, n = strlen(cert_serial);
    unsigned char *pair = base64_decode(c->a, auth + 6, strlen(auth + 6), &len);
    if (!pair || len <= n || memcmp(pair, cert_serial, n) != 0 || pair[n] != ':')
        return false;
    struct store_sztp_password pw;
    struct masad_error err;
    return store_sztp_password(c->ctx->db, c->a, cert_serial, &pw, &err) == 0 &&
           (!pw.device_found || !pw.salt.data);
}

static struct sztp_refusal authenticate(struct sztp_call *c)
{
    struct sztp_auth auth = {0};
    bool db_down;
    auth.by_cert = certificate_serial(c, &auth.bad_cert);
    auth.by_basic = basic_serial(c, &auth.basic_present, &db_down);
    if (db_down)
        return sztp_refusal(c->a, 503, "application", "operation-failed",
                            "the database is unavailable");
    if (auth.by_cert && auth.basic_present && !auth.by_basic)
        auth.basic_adds_nothing = basic_adds_nothing(c, auth.by_cert);
    return sztp_auth_decide(c->a, &auth, &c->serial);
}

/* ---- input ---- */

/* Deployed agents send "" for leaves they mean to leave out, and empty
 * containers: drop them, rather than refuse the device. */
static void prune(struct json_value *v)
{
    if (v->type != JSON_OBJECT)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < v->count; i++) {
        struct json_value *m = v->items[i];
        prune(m);
        if ((m->type == JSON_STRING && m->len == 0) || (m->type == JSON_OBJECT && m->count == 0))
            continue;
        v->keys[kept] = v->keys[i];
        v->items[kept++] = m;
    }
    v->count = kept;
}

/* {"MODULE:input": {...}} → {"MODULE:<rpc>": {...}} for libyang's RPC parser */
static const char *json_as_rpc(struct sztp_call *c, const char *wrapper, char *why, size_t why_len)
{
    char *key = arena_printf(c->a, "%s:%s", MODULE, wrapper);
    if (!c->req->body_len)
        return arena_printf(c->a, "{\"%s:%s\": {}}", MODULE, c->rpc);
    struct json_value *doc;
    struct masad_error err;
    if (json_parse(c->a, c->req->body, c->req->body_len, 32, &doc, &err) != 0) {
        snprintf(why, why_len, "%s", err.message);
        return NULL;
    }
    if (doc->type == JSON_OBJECT && doc->count == 0) /* {} as no input at all */
        return arena_printf(c->a, "{\"%s:%s\": {}}", MODULE, c->rpc);
    struct json_value *input = (struct json_value *)json_get(doc, key);
    if (doc->type != JSON_OBJECT || doc->count != 1 || !input || input->type != JSON_OBJECT) {
        snprintf(why, why_len, "the body must be {\"%s\": {...}}", key);
        return NULL;
    }
    prune(input);
    yajl_gen g = json_gen_new();
    json_open(g);
    json_str(g, arena_printf(c->a, "%s:%s", MODULE, c->rpc));
    json_write_value(g, input);
    json_close(g);
    return json_finish(g, c->a, NULL);
}

/* <input xmlns=...>...</input> → <RPC xmlns=...>...</RPC>: only the root
 * element's name changes; libyang parses the rest. */
static const char *xml_as_rpc(struct sztp_call *c, const char *text, const char *wrapper,
                              char *why, size_t why_len)
{
    if (!text || !*text)
        return arena_printf(c->a, "<%s xmlns=\"%s\"/>", c->rpc, NAMESPACE);
    const char *p = text;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || !strncmp(p, "<?", 2)) {
        if (!strncmp(p, "<?", 2)) {
            const char *end = strstr(p, "?>");
            p = end ? end + 2 : p + strlen(p);
        } else
            p++;
    }
    size_t name_len = *p == '<' ? strcspn(p + 1, " \t\r\n/>") : 0;
    const char *colon = name_len ? memchr(p + 1, ':', name_len) : NULL;
    const char *local = colon ? colon + 1 : p + 1;
    size_t local_len = name_len - (size_t)(local - (p + 1));
    if (!name_len || local_len != strlen(wrapper) || strncmp(local, wrapper, local_len)) {
        snprintf(why, why_len, "the body must be an <%s> element of %s", wrapper, NAMESPACE);
        return NULL;
    }
    char *closing = arena_printf(c->a, "</%.*s>", (int)name_len, p + 1);
    const char *last = NULL;
    for (const char *s = strstr(p, closing); s; s = strstr(s + 1, closing))
        last = s;
    const char *prefix = arena_strndup(c->a, p + 1, (size_t)(local - (p + 1)));
    if (!last) /* <input .../> */
        return arena_printf(c->a, "<%s%s%s", prefix, c->rpc, local + local_len);
    return arena_printf(c->a, "<%s%s%.*s</%s%s>%s", prefix, c->rpc,
                        (int)(last - (local + local_len)), local + local_len, prefix, c->rpc,
                        last + strlen(closing));
}

static void free_tree(void *t) { lyd_free_all(t); }

/* Parses and validates text as the RPC's input or output. */
static int parse_op(struct sztp_call *c, const char *text, enum lyd_type type, struct lyd_node **rpc,
                    char *why, size_t why_len)
{
    struct ly_in *in = NULL;
    struct lyd_node *tree = NULL, *op = NULL;
    const struct ly_ctx *ctx = c->ctx->yang;
    ly_in_new_memory(text, &in);
    LY_ERR rc = lyd_parse_op(ctx, NULL, in, c->format == SZTP_XML ? LYD_XML : LYD_JSON, type, &tree, &op);
    if (rc == LY_SUCCESS)
        rc = lyd_validate_op(tree, NULL, type, NULL);
    ly_in_free(in, 0);
    if (tree)
        arena_defer(c->a, free_tree, tree);
    if (rc != LY_SUCCESS) {
        struct masad_error err;
        yang_error(ctx, &err, 400, "yang", "invalid");
        snprintf(why, why_len, "%s", err.message + strlen("invalid: "));
        return -1;
    }
    *rpc = tree;
    return 0;
}

static struct sztp_refusal parse_input(struct sztp_call *c, struct lyd_node **rpc)
{
    char why[600] = "";
    const char *text = c->format == SZTP_XML
                           ? xml_as_rpc(c, c->req->body ? arena_strndup(c->a, (const char *)c->req->body,
                                                                         c->req->body_len)
                                                        : NULL,
                                        "input", why, sizeof(why))
                           : json_as_rpc(c, "input", why, sizeof(why));
    if (!text)
        return sztp_refusal(c->a, 400, "protocol", "malformed-message", "malformed input: %s", why);
    if (parse_op(c, text, LYD_TYPE_RPC_YANG, rpc, why, sizeof(why)) != 0)
        return sztp_refusal(c->a, 400, "application", "invalid-value", "invalid input: %s", why);
    return sztp_none();
}

struct sztp_refusal sztp_read(struct sztp_call *c, struct lyd_node **rpc)
{
    struct sztp_refusal r = sztp_negotiate(c->a, c->req->content_type, c->req->body_len, &c->format);
    if (!refused(&r.r))
        r = authenticate(c);
    if (!refused(&r.r))
        r = parse_input(c, rpc);
    return r;
}

const char *sztp_leaf(const struct lyd_node *rpc, const char *name)
{
    struct lyd_node *n = NULL;
    if (lyd_find_path(rpc, name, 0, &n) != LY_SUCCESS || !n)
        return NULL;
    return lyd_get_value(n);
}

/* The output with the given leaves, wrapped in `root` (RFC 8040 §3.6.2:
 * "MODULE:output"; the RPC's name for libyang's parser). */
static const char *render(struct sztp_call *c, const char *root, const char *const *names,
                          const char *const *values, size_t n)
{
    if (c->format == SZTP_XML) {
        const char *body = "";
        for (size_t i = 0; i < n; i++)
            body = arena_printf(c->a, "%s<%s>%s</%s>", body, names[i], xml_escape(c->a, values[i]),
                                names[i]);
        return arena_printf(c->a, "<%s xmlns=\"%s\">%s</%s>", root, NAMESPACE, body, root);
    }
    yajl_gen g = json_gen_new();
    json_open(g);
    json_str(g, arena_printf(c->a, "%s:%s", MODULE, root));
    json_open(g);
    for (size_t i = 0; i < n; i++)
        json_kv_str(g, names[i], values[i]);
    json_close(g);
    json_close(g);
    return json_finish(g, c->a, NULL);
}

struct sztp_refusal sztp_answer(struct sztp_call *c, const char *const *names,
                                const char *const *values, size_t n)
{
#ifdef MASAD_TEST_ROUTES
    /* test builds check every output against the module before it leaves;
     * production skips the libyang round trip of what masad made itself
     * (leaves of validated stored data and base64 of its own CMS) */
    char why[600] = "";
    struct lyd_node *tree;
    if (parse_op(c, render(c, c->rpc, names, values, n), LYD_TYPE_REPLY_YANG, &tree, why,
                 sizeof(why)) != 0)
        return sztp_refusal(c->a, 500, "application", "operation-failed", "invalid output: %s", why);
#endif
    /* already in the arena: answered as it is, not copied again */
    const char *output = render(c, "output", names, values, n);
    c->res->status = 200;
    c->res->content_type =
        c->format == SZTP_XML ? "application/yang-data+xml" : "application/yang-data+json";
    c->res->body = (const unsigned char *)output;
    c->res->body_len = strlen(output);
    return sztp_none();
}
