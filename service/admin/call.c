#include <ctype.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "common/base64.h"
#include "common/log.h"

void call_init(struct call *c, struct job_ctx *ctx, const struct masad_request *req,
               struct masad_response *res, const char *action)
{
    memset(c, 0, sizeof(*c));
    c->ctx = ctx;
    c->a = ctx->arena;
    c->req = req;
    c->res = res;
    c->action = action;
}

/* ---- answers ---- */

void call_answer_json(struct call *c, int status, yajl_gen g)
{
    size_t len;
    char *body = json_finish(g, c->a, &len);
    c->res->status = status;
    c->res->content_type = "application/json";
    c->res->body = (const unsigned char *)body;
    c->res->body_len = len;
}

void call_answer_empty(struct call *c, int status)
{
    c->res->status = status;
    c->res->content_type = NULL;
    c->res->body = NULL;
    c->res->body_len = 0;
}

void call_field_error(struct call *c, const char *pointer, const char *fmt, ...)
{
    if (c->error_count >= ADMIN_MAX_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    char detail[512];
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    c->errors[c->error_count].pointer = arena_strdup(c->a, pointer);
    c->errors[c->error_count].detail = arena_strdup(c->a, detail);
    c->error_count++;
}

static const char *problem_json(struct call *c, int status, const char *detail, size_t *len)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "type", "about:blank");
    json_kv_str(g, "title", http_reason(status));
    json_kv_int(g, "status", status);
    json_kv_str(g, "detail", detail);
    if (c->error_count) {
        json_str(g, "errors");
        json_open_array(g);
        for (size_t i = 0; i < c->error_count; i++) {
            json_open(g);
            json_kv_str(g, "pointer", c->errors[i].pointer);
            json_kv_str(g, "detail", c->errors[i].detail);
            json_close(g);
        }
        json_close_array(g);
    }
    json_close(g);
    return json_finish(g, c->a, len);
}

/* The refusal's audit detail: the status, the sentence and the first fault. */
static const char *refusal_detail(struct call *c, int status, const char *detail)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_int(g, "status", status);
    json_kv_str(g, "reason", detail);
    if (c->error_count) {
        json_kv_str(g, "pointer", c->errors[0].pointer);
        json_kv_str(g, "problem", c->errors[0].detail);
    }
    json_close(g);
    return json_finish(g, c->a, NULL);
}

bool call_refuse(struct call *c, int status, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    store_rollback(c->ctx->db);
    if (c->actor && status != 503) {
        struct audit_event e = {c->actor, c->action, c->serial, c->owner, "refused",
                                refusal_detail(c, status, detail)};
        audit_refusal(c->ctx->db, c->a, &e);
    }
    size_t len;
    const char *body = problem_json(c, status, detail, &len);
    c->res->status = status;
    c->res->content_type = "application/problem+json";
    c->res->body = (const unsigned char *)body;
    c->res->body_len = len;
    return false;
}

bool call_fail(struct call *c, const struct masad_error *err)
{
    if (err->status == 503)
        return call_refuse(c, 503, "%s", err->message);
    return call_refuse(c, 500, "internal error: %s", err->message);
}

/* ---- authentication ---- */

static bool has_scope(const char *scopes, const char *scope)
{
    size_t n = strlen(scope);
    for (const char *p = scopes; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !memcmp(p, scope, n))
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

static bool unauthorized(struct call *c, const char *why)
{
    response_add_header(c->res, "www-authenticate", "Bearer realm=\"masad\"");
    return call_refuse(c, 401, "%s", why);
}

bool call_authorize(struct call *c, const char *scope)
{
    const char *auth = c->req->authorization;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7])
        return unauthorized(c, "a bearer token is required (Authorization: Bearer <token>)");
    const char *params[] = {hex_sha256(c->a, auth + 7, strlen(auth + 7))};
    PGresult *r;
    struct masad_error err;
    if (store_exec(c->ctx->db, c->a, "token_lookup", 1, params, &r, &err) != 0)
        return call_fail(c, &err);
    if (PQntuples(r) != 1)
        return unauthorized(c, "the bearer token is unknown or revoked");
    c->actor = PQgetvalue(r, 0, 0);
    if (!has_scope(PQgetvalue(r, 0, 1), scope))
        return call_refuse(c, 403, "the token \"%s\" lacks the scope %s", c->actor, scope);
    return true;
}

/* ---- request bodies ---- */

static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    return n == 16 && !strncasecmp(ct, "application/json", 16);
}

bool call_read_json(struct call *c, size_t max_body, struct json_value **out)
{
    if (!is_json_type(c->req->content_type))
        return call_refuse(c, 415, "the request body must be application/json");
    if (c->req->body_len > max_body)
        return call_refuse(c, 413, "the request body is larger than %zu bytes", max_body);
    struct masad_error err;
    /* API.md, Conventions: nesting deeper than 32 levels and duplicate keys are malformed */
    if (json_parse(c->a, c->req->body ? (const void *)c->req->body : "", c->req->body_len, 32,
                   out, &err) != 0)
        return call_refuse(c, 400, "%s", err.message);
    if ((*out)->type != JSON_OBJECT)
        return call_refuse(c, 400, "malformed request: the body must be a JSON object");
    return true;
}

bool check_members(struct call *c, const struct json_value *obj, const char *pointer,
                   const char *const *allowed)
{
    bool ok = true;
    for (size_t i = 0; i < obj->count; i++) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = !strcmp(obj->keys[i], *a);
        if (!known) {
            call_field_error(c, arena_printf(c->a, "%s/%s", pointer, obj->keys[i]),
                             "unknown field");
            ok = false;
        }
    }
    return ok;
}

const char *member_string(struct call *c, const struct json_value *obj, const char *pointer,
                          const char *key, bool required, size_t max_len)
{
    const struct json_value *v = json_get(obj, key);
    const char *where = arena_printf(c->a, "%s/%s", pointer, key);
    if (!v) {
        if (required)
            call_field_error(c, where, "is required");
        return NULL;
    }
    if (v->type != JSON_STRING) {
        call_field_error(c, where, "must be a string, not %s", json_type_name(v->type));
        return NULL;
    }
    if (v->len > max_len || strlen(v->text) != v->len) {
        call_field_error(c, where, "must be at most %zu characters, without NUL", max_len);
        return NULL;
    }
    return v->text;
}

/* ---- syntax of identifiers ---- */

/* The code point of the UTF-8 sequence at p (RFC 3629: shortest form, no
 * surrogates), its length in *len; -1 when it is not one. */
static long utf8_next(const unsigned char *p, size_t n, size_t *len)
{
    static const unsigned char lo[] = {0, 0, 0x80, 0xa0, 0x90}, hi[] = {0, 0, 0xbf, 0xbf, 0xbf};
    unsigned char c = p[0];
    size_t k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!k || k > n)
        return -1;
    long cp = k == 1 ? c : c & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        unsigned char min = i == 1 && (c == 0xe0 || c == 0xf0) ? lo[k] : 0x80;
        unsigned char max = i == 1 && c == 0xed ? 0x9f : i == 1 && c == 0xf4 ? 0x8f : hi[2];
        if (p[i] < min || p[i] > max)
            return -1;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    *len = k;
    return cp;
}

bool serial_number_valid(const char *s)
{
    /* IDevIDs carry serial numbers as UTF-8 text (serialNumber, RFC 4108
     * hwSerialNum): 1 to 64 characters, no control character, no outer space */
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), chars = 0, len;
    if (n < 1 || s[0] == ' ' || s[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i += len, chars++) {
        long cp = utf8_next(p + i, n - i, &len);
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return false;
    }
    return chars <= 64;
}

bool owner_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '.' ||
              s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* ---- URL parts ---- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* RFC 3986 percent-decoding; NUL bytes and bad escapes give NULL. */
static const char *percent_decode(struct arena *a, const char *s, size_t n)
{
    char *out = arena_alloc(a, n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= n) /* needs s[i+1] and s[i+2] */
            return NULL;
        int h = hexval(s[i + 1]);
        int l = hexval(s[i + 2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0))
            return NULL;
        *o++ = (char)(h * 16 + l);
        i += 2;
    }
    *o = 0;
    return out;
}

const char *path_param(struct call *c, size_t i)
{
    if (i >= c->req->param_count)
        return NULL;
    const char *raw = c->req->params[i];
    return percent_decode(c->a, raw, strlen(raw));
}

const char *query_param(struct call *c, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = c->req->query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && !strncmp(p, name, n) && p[n] == '=')
            return percent_decode(c->a, p + n + 1, len - n - 1);
        if (len == n && !strncmp(p, name, n))
            return "";
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* ---- paging ---- */

static const char cursor_prefix[] = "c1:";

const char *make_cursor(struct call *c, const char *key)
{
    size_t n = strlen(cursor_prefix) + strlen(key);
    char *plain = arena_printf(c->a, "%s%s", cursor_prefix, key);
    char *b64 = arena_alloc(c->a, 4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)plain, (int)n);
    for (char *p = b64; *p; p++) /* base64url without padding: safe in a query */
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    size_t len = strlen(b64);
    while (len && b64[len - 1] == '=')
        b64[--len] = 0;
    return b64;
}

static const char *read_cursor(struct call *c, const char *cursor)
{
    size_t n = strlen(cursor);
    if (n == 0 || n > 200)
        return NULL;
    char *b64 = arena_alloc(c->a, n + 4);
    for (size_t i = 0; i < n; i++) {
        char ch = cursor[i];
        if (!isalnum((unsigned char)ch) && ch != '-' && ch != '_')
            return NULL;
        b64[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    }
    while (n % 4)
        b64[n++] = '=';
    unsigned char *plain = arena_alloc(c->a, n);
    int len = EVP_DecodeBlock(plain, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return NULL;
    while (len > 0 && plain[len - 1] == 0) /* DecodeBlock counts padding as zero bytes */
        len--;
    plain[len] = 0;
    if (strncmp((const char *)plain, cursor_prefix, strlen(cursor_prefix)) != 0)
        return NULL;
    return (const char *)plain + strlen(cursor_prefix);
}

bool read_paging(struct call *c, long *limit, const char **after_key)
{
    const char *l = query_param(c, "limit");
    *limit = 100;
    if (l) {
        char *end;
        long v = strtol(l, &end, 10);
        if (!*l || *end || v < 1 || v > 1000 || !isdigit((unsigned char)l[0]))
            return call_refuse(c, 422, "limit must be an integer from 1 to 1000");
        *limit = v;
    }
    const char *after = query_param(c, "after");
    *after_key = NULL;
    if (after && !(*after_key = read_cursor(c, after)))
        return call_refuse(c, 422, "after is not a cursor that this service issued");
    return true;
}

const char *pq_value(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}
