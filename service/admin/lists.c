#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "common/encoding.h"

/* The per-device listings answer 404 for a device that does not exist. */
static const char *known_device(struct call *c)
{
    const char *serial = path_param(c, 0);
    if (!serial || !serial_number_valid(serial)) {
        call_refuse(c, 404, "no device has that serial number");
        return NULL;
    }
    c->serial = serial;
    struct masad_error err;
    int exists = store_device_exists(c->ctx->db, c->a, serial, &err);
    if (exists < 0) {
        call_fail(c, &err);
        return NULL;
    }
    if (!exists) {
        call_refuse(c, 404, "no device has the serial number \"%s\"", serial);
        return NULL;
    }
    return serial;
}

void answer_list(struct call *c, const void *rows, size_t count, size_t row_size, long limit,
                 const char *name, row_writer write, row_key key)
{
    size_t shown = count > (size_t)limit ? (size_t)limit : count;
    const char *base = rows;
    yajl_gen g = json_gen_new();
    json_open(g);
    json_str(g, name);
    json_open_array(g);
    for (size_t i = 0; i < shown; i++)
        write(c, g, base + i * row_size);
    json_close_array(g);
    json_kv_str(g, "next",
                count > (size_t)limit ? make_cursor(c, key(c, base + (shown - 1) * row_size)) : NULL);
    json_close(g);
    call_answer_json(c, 200, g);
    c->res->compressible = true; /* gzip when the client accepts it (the edge) */
}

const char *key_of_id(struct call *c, const void *row)
{
    return arena_printf(c->a, "%lld", *(const long long *)row);
}

static void write_voucher(struct call *c, yajl_gen g, const void *row)
{
    const struct store_device_voucher *v = row;
    json_open(g);
    json_kv_int(g, "id", v->id);
    json_kv_str(g, "created_on", v->created_on);
    json_kv_str(g, "expires_on", v->expires_on);
    json_kv_str(g, "assertion", v->assertion);
    json_kv_str(g, "nonce", v->nonce ? base64_encode(c->a, v->nonce, v->nonce_len) : NULL);
    json_kv_str(g, "owner_id", v->owner_id);
    json_kv_str(g, "domain_cert_sha256", hex_encode(c->a, v->domain_cert_sha256, 32));
    json_kv_str(g, "protocol", v->protocol);
    json_kv_str(g, "format", v->format);
    json_close(g);
}

/* A JSON column that masad wrote itself (jsonb as text), or null. */
static void stored_json(struct call *c, yajl_gen g, const char *key, const char *text)
{
    struct json_value *v;
    struct masad_error err;
    json_str(g, key);
    if (text && json_parse(c->a, text, strlen(text), 8, &v, &err) == 0)
        json_write_value(g, v);
    else
        json_null(g);
}

static void write_progress(struct call *c, yajl_gen g, const void *row)
{
    const struct store_device_progress *p = row;
    json_open(g);
    json_kv_str(g, "at", p->at);
    json_kv_str(g, "progress_type", p->progress_type);
    json_kv_str(g, "message", p->message);
    stored_json(c, g, "ssh_host_keys", p->ssh_host_keys);
    stored_json(c, g, "trust_anchor_certs", p->trust_anchor_certs);
    json_close(g);
}

/* A per-device listing's query; false when answered. */
static bool device_listing(struct call *c, long *limit, long long *before, const char **serial)
{
    const char *after;
    if (!call_authorize(c, "devices:read") ||
        !read_paging(c, NULL, key_is_number, limit, &after) || !(*serial = known_device(c)))
        return false;
    *before = after ? atoll(after) : -1;
    return true;
}

void admin_voucher_list(struct job_ctx *ctx, const struct masad_request *req,
                        struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "device.read");
    long limit;
    long long before;
    const char *serial;
    struct store_device_voucher *rows;
    size_t n;
    struct masad_error err;
    if (!device_listing(&c, &limit, &before, &serial))
        return;
    if (store_device_vouchers(ctx->db, c.a, serial, before, limit + 1, &rows, &n, &err) != 0)
        call_fail(&c, &err);
    else
        answer_list(&c, rows, n, sizeof(*rows), limit, "vouchers", write_voucher, key_of_id);
}

void admin_progress_list(struct job_ctx *ctx, const struct masad_request *req,
                         struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "device.read");
    long limit;
    long long before;
    const char *serial;
    struct store_device_progress *rows;
    size_t n;
    struct masad_error err;
    if (!device_listing(&c, &limit, &before, &serial))
        return;
    if (store_device_progress(ctx->db, c.a, serial, before, limit + 1, &rows, &n, &err) != 0)
        call_fail(&c, &err);
    else
        answer_list(&c, rows, n, sizeof(*rows), limit, "progress", write_progress, key_of_id);
}

static void write_event(struct call *c, yajl_gen g, const void *row)
{
    const struct store_audit_event *e = row;
    json_open(g);
    json_kv_int(g, "seq", e->seq);
    json_str(g, "chain");
    if (!e->chained)
        json_null(g);
    else
        json_int(g, e->chain);
    json_str(g, "chain_seq");
    if (!e->chained)
        json_null(g);
    else
        json_int(g, e->chain_seq);
    json_kv_str(g, "at", e->at);
    json_kv_str(g, "actor", e->actor);
    json_kv_str(g, "action", e->action);
    json_kv_str(g, "serial_number", e->serial_number);
    json_kv_str(g, "owner_id", e->owner_id);
    json_kv_str(g, "outcome", e->outcome);
    json_str(g, "detail");
    struct arena *a = arena_new();
    struct json_value *v;
    struct masad_error err;
    if (e->detail && json_parse(a, e->detail, strlen(e->detail), 64, &v, &err) == 0)
        json_write_value(g, v);
    else
        json_null(g);
    arena_free(a);
    json_kv_str(g, "prev_hash", e->hashes_ok ? hex_encode(c->a, e->prev_hash, 32) : NULL);
    json_kv_str(g, "hash", e->hashes_ok ? hex_encode(c->a, e->hash, 32) : NULL);
    json_close(g);
}

/* the number in s[at..at+len), when all of it is digits; else -1 */
static int digits_at(const char *s, size_t at, size_t len)
{
    int v = 0;
    for (size_t i = at; i < at + len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* An RFC 3339 date-time (§5.6) as a filter value: a real calendar date and
 * time (§5.7: the day within its month, leap years, a leap second allowed),
 * an optional fraction, then Z or an offset, so that PostgreSQL's cast of it
 * cannot fail. PostgreSQL takes offsets up to 15:59, RFC 3339 up to 23:59:
 * beyond 15:59 is refused here. */
static bool timestamp_ok(const char *s)
{
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t n = strlen(s);
    if (n < 20 || n > 35 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return false;
    int year = digits_at(s, 0, 4), month = digits_at(s, 5, 2), day = digits_at(s, 8, 2);
    int hour = digits_at(s, 11, 2), minute = digits_at(s, 14, 2), second = digits_at(s, 17, 2);
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 ||
        minute > 59 || second < 0 || second > 60)
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap))
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t first = ++i;
        while (isdigit((unsigned char)s[i]))
            i++;
        if (i == first)
            return false;
    }
    if (s[i] == 'Z')
        return i + 1 == n;
    if ((s[i] != '+' && s[i] != '-') || i + 6 != n || s[i + 3] != ':')
        return false;
    int off_hour = digits_at(s, i + 1, 2), off_minute = digits_at(s, i + 4, 2);
    return off_hour >= 0 && off_hour <= 15 && off_minute >= 0 && off_minute <= 59;
}

void admin_audit_list(struct job_ctx *ctx, const struct masad_request *req,
                      struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "audit.read");
    long limit;
    const char *after;
    static const char *const filters[] = {"serial_number", "owner_id", "action", "since", "until",
                                          NULL};
    static const char time_rule[] = "must be an RFC 3339 time that exists, with Z or an offset "
                                    "up to 15:59 (such as 2026-11-23T14:05:09Z)";
    if (!call_authorize(&c, "audit:read") ||
        !read_paging(&c, filters, key_is_number, &limit, &after))
        return;
    const char *serial = query_param(&c, "serial_number"), *owner = query_param(&c, "owner_id");
    const char *action = query_param(&c, "action"), *since = query_param(&c, "since");
    const char *until = query_param(&c, "until");
    if (serial && !serial_number_valid(serial))
        call_param_error(&c, "serial_number", SERIAL_NUMBER_RULE);
    if (owner && !owner_id_valid(owner))
        call_param_error(&c, "owner_id", OWNER_ID_RULE);
    if (action && (!*action || strlen(action) > 64))
        call_param_error(&c, "action", "must be 1 to 64 characters");
    if (since && !timestamp_ok(since))
        call_param_error(&c, "since", time_rule);
    if (until && !timestamp_ok(until))
        call_param_error(&c, "until", time_rule);
    if (c.error_count) {
        call_refuse_parameters(&c);
        return;
    }
    struct store_audit_filter f = {after ? atoll(after) : 0, serial, owner, action, since, until,
                                   limit + 1};
    struct store_audit_event *rows;
    size_t n;
    struct masad_error err;
    if (store_audit_list(ctx->db, c.a, &f, &rows, &n, &err) != 0)
        call_fail(&c, &err);
    else
        answer_list(&c, rows, n, sizeof(*rows), limit, "events", write_event, key_of_id);
}

static void write_checkpoint(struct call *c, yajl_gen g, const void *row)
{
    const struct store_audit_checkpoint *k = row;
    struct json_value *signed_heads;
    struct masad_error err;
    json_open(g);
    json_kv_int(g, "id", k->id);
    json_kv_str(g, "at", k->at);
    json_str(g, "heads");
    if (json_parse(c->a, k->heads, strlen(k->heads), 8, &signed_heads, &err) == 0 &&
        json_get(signed_heads, "heads"))
        json_write_value(g, json_get(signed_heads, "heads"));
    else
        json_null(g);
    json_kv_str(g, "signature", base64_encode(c->a, k->signature, k->signature_len));
    json_close(g);
}

void admin_checkpoint_list(struct job_ctx *ctx, const struct masad_request *req,
                           struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "audit.read");
    long limit;
    const char *after;
    if (!call_authorize(&c, "audit:read") ||
        !read_paging(&c, NULL, key_is_number, &limit, &after))
        return;
    struct store_audit_checkpoint *rows;
    size_t n;
    struct masad_error err;
    if (store_audit_checkpoint_page(ctx->db, c.a, after ? atoll(after) : 0, limit + 1, &rows, &n,
                                    &err) != 0)
        call_fail(&c, &err);
    else
        answer_list(&c, rows, n, sizeof(*rows), limit, "checkpoints", write_checkpoint,
                    key_of_id);
}
