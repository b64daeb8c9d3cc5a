#include <ctype.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "common/encoding.h"
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

static void add_error(struct call *c, const char *pointer, const char *parameter,
                      const char *fmt, va_list ap)
{
    if (c->error_count >= ADMIN_MAX_ERRORS)
        return;
    char detail[512];
    vsnprintf(detail, sizeof(detail), fmt, ap);
    c->errors[c->error_count].pointer = pointer ? arena_strdup(c->a, pointer) : NULL;
    c->errors[c->error_count].parameter = parameter ? arena_strdup(c->a, parameter) : NULL;
    c->errors[c->error_count].detail = arena_strdup(c->a, detail);
    c->error_count++;
}

void call_field_error(struct call *c, const char *pointer, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, pointer, NULL, fmt, ap);
    va_end(ap);
}

void call_param_error(struct call *c, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, NULL, name, fmt, ap);
    va_end(ap);
}

bool call_refuse_parameters(struct call *c)
{
    if (c->error_count == 1)
        return call_refuse(c, 422, "%s %s", c->errors[0].parameter, c->errors[0].detail);
    return call_refuse(c, 422, "%zu query parameters are invalid", c->error_count);
}

/* An error's place: "pointer" into the body or "parameter" of the query. */
static void write_place(yajl_gen g, struct call *c, size_t i)
{
    if (c->errors[i].parameter)
        json_kv_str(g, "parameter", c->errors[i].parameter);
    else
        json_kv_str(g, "pointer", c->errors[i].pointer);
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
            write_place(g, c, i);
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
    struct audit_detail *d = audit_detail_new(c->a);
    audit_detail_int(d, "status", status);
    audit_detail_str(d, "reason", detail);
    if (c->error_count) {
        if (c->errors[0].parameter)
            audit_detail_str(d, "parameter", c->errors[0].parameter);
        else
            audit_detail_str(d, "pointer", c->errors[0].pointer);
        audit_detail_str(d, "problem", c->errors[0].detail);
    }
    return audit_detail_text(d);
}

bool call_refuse(struct call *c, int status, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    /* only a caller whose token was accepted is recorded (docs/audit.md) */
    struct audit_event e = {c->actor, c->action, c->serial, c->owner, "refused",
                            c->actor ? refusal_detail(c, status, detail) : NULL};
    audit_refusal_canonical(c->ctx->db, c->a, c->actor && status != 503 ? &e : NULL, c->req->peer,
                            true);
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

/* last_used_at, at most about once a minute per token: not a write per
 * request. A failure only costs the timestamp. */
static void touch_token(struct call *c)
{
    struct masad_error err;
    if (store_token_touch(c->ctx->db, c->a, c->actor, &err) != 0)
        log_warn("token %s: last use not recorded: %s", c->actor, err.message);
}

bool call_authorize(struct call *c, const char *scope)
{
    const char *auth = c->req->authorization;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7])
        return unauthorized(c, "a bearer token is required (Authorization: Bearer <token>)");
    unsigned char digest[32];
    EVP_Digest(auth + 7, strlen(auth + 7), digest, NULL, EVP_sha256(), NULL);
    struct store_token_auth token;
    struct masad_error err;
    int found = store_token_lookup(c->ctx->db, c->a, digest, &token, &err);
    if (found < 0)
        return call_fail(c, &err);
    /* an expired token is refused as an unknown one (store_token_lookup) */
    if (!found)
        return unauthorized(c, "the bearer token is unknown or revoked");
    c->actor = token.name;
    if (token.touch_due)
        touch_token(c);
    if (!has_scope(token.scopes, scope))
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

/* docs/management-api.md, Conventions: a batch is at most 10,000 entries of a few members
 * each; no body of this API holds more values. The tree costs ~80 bytes a
 * value, so this also bounds a body's memory (a 16 MiB body of [0,0,…]
 * would otherwise be 8 million values). */
#define MAX_BODY_VALUES 100000

static bool read_body(struct call *c, size_t max_body, const struct json_limits *lim,
                      const char *list_rule, struct json_value **out)
{
    if (!is_json_type(c->req->content_type))
        return call_refuse(c, 415, "the request body must be application/json");
    if (c->req->body_len > max_body)
        return call_refuse(c, 413, "the request body is larger than %zu bytes", max_body);
    struct masad_error err;
    struct json_fault fault;
    if (json_parse_bounded(c->a, c->req->body ? (const void *)c->req->body : "",
                           c->req->body_len, lim, out, &fault, &err) == 0)
        return (*out)->type == JSON_OBJECT ||
               call_refuse(c, 400, "malformed request: the body must be a JSON object");
    if (fault.kind == JSON_FAULT_NONE)
        return call_refuse(c, 400, "%s", err.message);
    if (fault.kind == JSON_FAULT_LIST) {
        call_field_error(c, fault.pointer, "%s", list_rule);
        return call_refuse(c, 422, "the batch is invalid");
    }
    call_field_error(c, fault.pointer, "%s", fault.detail);
    if (fault.kind == JSON_FAULT_ITEM)
        return call_refuse(c, 422, "the batch is invalid: nothing was stored");
    return call_refuse(c, 422, "the body holds a string that is not valid Unicode");
}

bool call_read_json(struct call *c, size_t max_body, struct json_value **out)
{
    /* docs/management-api.md, Conventions: nesting deeper than 32 levels and duplicate keys are malformed */
    struct json_limits lim = {.max_depth = 32, .max_values = MAX_BODY_VALUES};
    return read_body(c, max_body, &lim, NULL, out);
}

bool call_read_batch(struct call *c, size_t max_body, const char *list, size_t max_items,
                     const char *list_rule, struct json_value **out)
{
    struct json_limits lim = {.max_depth = 32, .max_values = MAX_BODY_VALUES, .list = list,
                              .list_max = max_items, .list_bad_max = ADMIN_MAX_ERRORS};
    return read_body(c, max_body, &lim, list_rule, out);
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

const char *path_param(struct call *c, size_t i)
{
    if (i >= c->req->param_count)
        return NULL;
    const char *raw = c->req->params[i];
    return percent_decode(c->a, raw, strlen(raw));
}

/* A parameter's name for an error: as decoded when that is printable
 * ASCII, else as sent with other bytes escaped; at most 64 characters. */
static const char *param_label(struct call *c, const char *raw, size_t n, const char *decoded)
{
    bool printable = decoded && *decoded;
    for (const char *p = decoded; printable && *p; p++)
        printable = *p > ' ' && *p < 0x7f;
    if (printable && strlen(decoded) <= 64)
        return decoded;
    if (n == 0)
        return "(unnamed)";
    char *out = arena_alloc(c->a, 3 * 64 + 1), *o = out;
    for (size_t i = 0; i < n && o - out < 64; i++) {
        unsigned char ch = (unsigned char)raw[i];
        o += ch > ' ' && ch < 0x7f ? sprintf(o, "%c", ch) : sprintf(o, "%%%02X", ch);
    }
    return out;
}

static bool is_allowed(const char *name, const char *const *allowed)
{
    for (; allowed && *allowed; allowed++)
        if (!strcmp(name, *allowed))
            return true;
    return false;
}

static bool seen(struct call *c, const char *name)
{
    for (size_t i = 0; i < c->query_count; i++)
        if (!strcmp(c->query[i].name, name))
            return true;
    return false;
}

/* One name=value pair of the query. */
static void read_parameter(struct call *c, const char *p, size_t len, const char *const *allowed)
{
    const char *eq = memchr(p, '=', len);
    size_t name_len = eq ? (size_t)(eq - p) : len;
    const char *name = percent_decode(c->a, p, name_len);
    if (!name || !is_allowed(name, allowed)) {
        call_param_error(c, param_label(c, p, name_len, name),
                         "is not a parameter of this request");
        return;
    }
    if (seen(c, name)) {
        call_param_error(c, name, "is given more than once");
        return;
    }
    const char *value = eq ? percent_decode(c->a, eq + 1, len - name_len - 1) : "";
    c->query[c->query_count].name = name; /* at most once per allowed name: it fits */
    c->query[c->query_count++].value = value;
    if (!value)
        call_param_error(c, name,
                         "is not percent-encoded correctly (RFC 3986 §2.1; %%00 is refused)");
    else if (!json_utf8_valid(value, strlen(value)))
        call_param_error(c, name, "is not valid UTF-8");
}

/* Reads the query into c->query; mistakes become parameter errors. */
static void read_query(struct call *c, const char *const *allowed)
{
    size_t n = 0;
    for (const char *const *a = allowed; a && *a; a++)
        n++;
    if (n > ADMIN_MAX_QUERY)
        abort(); /* a route lists more filters than struct call holds */
    for (const char *p = c->req->query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len)
            read_parameter(c, p, len, allowed);
        p = end ? end + 1 : NULL;
    }
}

bool call_read_query(struct call *c, const char *const *allowed)
{
    read_query(c, allowed);
    return !c->error_count || call_refuse_parameters(c);
}

const char *query_param(struct call *c, const char *name)
{
    for (size_t i = 0; i < c->query_count; i++)
        if (!strcmp(c->query[i].name, name))
            return c->query[i].value;
    return NULL;
}

/* ---- paging ---- */

static const char cursor_prefix[] = "c1:";

const char *make_cursor(struct call *c, const char *key)
{
    char *plain = arena_printf(c->a, "%s%s", cursor_prefix, key);
    /* base64url without padding: safe in a query */
    return base64url_encode(c->a, (const unsigned char *)plain, strlen(plain));
}

static const char *read_cursor(struct call *c, const char *cursor)
{
    size_t n = strlen(cursor);
    if (n == 0 || n > 200)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)cursor[i]) && cursor[i] != '-' && cursor[i] != '_')
            return NULL; /* base64url only, as make_cursor writes it */
    size_t len;
    const unsigned char *plain = base64_decode(c->a, cursor, n, &len);
    if (!plain || memchr(plain, 0, len))
        return NULL;
    if (strncmp((const char *)plain, cursor_prefix, strlen(cursor_prefix)) != 0)
        return NULL;
    return (const char *)plain + strlen(cursor_prefix);
}

bool key_is_number(const char *s)
{
    if (!*s || strlen(s) > 18)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

bool read_paging(struct call *c, const char *const *filters, bool (*key_ok)(const char *),
                 long *limit, const char **after_key)
{
    const char *names[ADMIN_MAX_QUERY + 1] = {"limit", "after"};
    size_t n = 2;
    for (const char *const *f = filters; f && *f && n < ADMIN_MAX_QUERY; f++)
        names[n++] = *f;
    names[n] = NULL;
    read_query(c, names);
    const char *l = query_param(c, "limit");
    *limit = 100;
    if (l) {
        char *end;
        long v = strtol(l, &end, 10);
        if (!*l || *end || v < 1 || v > 1000 || !isdigit((unsigned char)l[0]))
            call_param_error(c, "limit", "must be an integer from 1 to 1000");
        else
            *limit = v;
    }
    const char *after = query_param(c, "after");
    *after_key = NULL;
    /* a forged cursor must not reach the database (RFC 3629 bytes, key syntax) */
    if (after && (!(*after_key = read_cursor(c, after)) ||
                  !json_utf8_valid(*after_key, strlen(*after_key)) || !key_ok(*after_key)))
        call_param_error(c, "after", "is not a cursor that this service issued");
    return !c->error_count || call_refuse_parameters(c);
}
