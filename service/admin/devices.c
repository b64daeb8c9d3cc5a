#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"
#include "common/encoding.h"
#include "crypto/crypto.h"

#define MAX_BATCH 10000

enum password_change { PASSWORD_KEEP, PASSWORD_CLEAR, PASSWORD_SET };

struct device_input {
    const char *serial;
    const char *product;
    enum password_change password_change;
    const char *password;
    const unsigned char *salt, *hash;  /* what will be stored */
    size_t salt_len, hash_len;
    bool existed, changed;
};

/* docs/management-api.md, Register a device: one device body, at `pointer`. */
static void read_device(struct call *c, const struct json_value *obj, const char *pointer,
                        const char *path_serial, struct device_input *d)
{
    static const char *const fields[] = {"serial_number", "product", "sztp_password", NULL};
    memset(d, 0, sizeof(*d));
    if (obj->type != JSON_OBJECT) {
        call_field_error(c, pointer, "must be an object");
        return;
    }
    check_members(c, obj, pointer, fields);
    const char *where = arena_printf(c->a, "%s/serial_number", pointer);
    d->serial = member_string(c, obj, pointer, "serial_number", !path_serial, 256);
    if (d->serial && path_serial && strcmp(d->serial, path_serial))
        call_field_error(c, where, "must equal the serial number in the path");
    if (!d->serial)
        d->serial = path_serial;
    if (d->serial && !serial_number_valid(d->serial))
        call_field_error(c, where, SERIAL_NUMBER_RULE);
    d->product = member_string(c, obj, pointer, "product", true, 256);
    if (d->product && !*d->product)
        call_field_error(c, arena_printf(c->a, "%s/product", pointer), "must not be empty");
    const struct json_value *pw = json_get(obj, "sztp_password");
    if (pw && pw->type == JSON_NULL)
        d->password_change = PASSWORD_CLEAR;
    else if (pw && (d->password = member_string(c, obj, pointer, "sztp_password", false, 256))) {
        d->password_change = PASSWORD_SET;
        if (strlen(d->password) < 16)
            call_field_error(c, arena_printf(c->a, "%s/sztp_password", pointer),
                             "must be at least 16 characters (a machine-generated secret)");
    }
}

/* Whether the stored password (salt and hash, NULL for none) is `password`. */
static bool password_is(struct call *c, const struct store_device_secret *stored,
                        const char *password)
{
    return stored && stored->salt && stored->hash &&
           crypto_password_matches(hex_encode(c->a, stored->salt, stored->salt_len),
                                   hex_encode(c->a, stored->hash, stored->hash_len), password);
}

/* What to store for d, given the stored row (NULL: none). */
static void settle_password(struct call *c, struct device_input *d,
                            const struct store_device_secret *stored)
{
    if (d->password_change == PASSWORD_KEEP ||
        (d->password_change == PASSWORD_SET && password_is(c, stored, d->password))) {
        d->salt = stored ? stored->salt : NULL;
        d->salt_len = stored ? stored->salt_len : 0;
        d->hash = stored ? stored->hash : NULL;
        d->hash_len = stored ? stored->hash_len : 0;
    } else if (d->password_change == PASSWORD_SET) {
        unsigned char *salt = arena_alloc(c->a, 16), *md = arena_alloc(c->a, 32);
        RAND_bytes(salt, 16);
        crypto_password_digest(salt, 16, d->password, md);
        d->salt = salt;
        d->salt_len = 16;
        d->hash = md;
        d->hash_len = 32;
    }
}

static bool same(const unsigned char *x, size_t x_len, const unsigned char *y, size_t y_len)
{
    return (!x && !y) || (x && y && x_len == y_len && !memcmp(x, y, x_len));
}

static int by_serial(const void *x, const void *y)
{
    return strcmp((*(struct device_input *const *)x)->serial,
                  (*(struct device_input *const *)y)->serial);
}

/* Compares the inputs with the locked rows (both in serial order). */
static void merge_existing(struct call *c, struct device_input **sorted, size_t n,
                           const struct store_device_secret *rows, size_t count)
{
    size_t row = 0;
    for (size_t i = 0; i < n; i++) {
        struct device_input *d = sorted[i];
        while (row < count && strcmp(rows[row].serial_number, d->serial) < 0)
            row++;
        bool found = row < count && !strcmp(rows[row].serial_number, d->serial);
        const struct store_device_secret *stored = found ? &rows[row] : NULL;
        settle_password(c, d, stored);
        d->existed = found;
        d->changed = !found || strcmp(stored->product, d->product) ||
                     !same(stored->salt, stored->salt_len, d->salt, d->salt_len) ||
                     !same(stored->hash, stored->hash_len, d->hash, d->hash_len);
    }
}

static int audit_devices(struct call *c, struct device_input **sorted, size_t n, bool existed,
                         struct masad_error *err)
{
    const char **serials = arena_alloc(c->a, (n ? n : 1) * sizeof(*serials));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (sorted[i]->changed && sorted[i]->existed == existed)
            serials[k++] = sorted[i]->serial;
    return audit_append_many(c->ctx->db, c->a, c->actor, existed ? "device.update" : "device.create",
                             "ok", serials, NULL, k, NULL, err);
}

static void write_device(struct call *c, yajl_gen g, const void *row);

/* Creates or replaces the devices in one transaction; sorted is d in
 * serial order without duplicates. With conditional (one device's PUT),
 * the request's If-Match is checked against the locked device first. */
static bool store_devices(struct call *c, struct device_input **sorted, size_t n, bool conditional)
{
    struct masad_error err;
    const char **serials = arena_alloc(c->a, n * sizeof(*serials));
    for (size_t i = 0; i < n; i++)
        serials[i] = sorted[i]->serial;
    struct store_device_secret *existing;
    size_t count;
    if (store_begin(c->ctx->db, &err) != 0 ||
        store_devices_lock(c->ctx->db, c->a, serials, n, &existing, &count, &err) != 0)
        return call_fail(c, &err);
    if (conditional && c->req->if_match) {
        struct store_device now;
        int found = store_device_get(c->ctx->db, c->a, sorted[0]->serial, &now, &err);
        if (found < 0)
            return call_fail(c, &err);
        if (!call_check_if_match(c, row_etag(c, found ? &now : NULL, write_device)))
            return false;
    }
    merge_existing(c, sorted, n, existing, count);
    struct store_device_secret *rows = arena_alloc(c->a, n * sizeof(*rows));
    for (size_t i = 0; i < n; i++)
        rows[i] = (struct store_device_secret){sorted[i]->serial, sorted[i]->product,
                                               sorted[i]->salt, sorted[i]->hash,
                                               sorted[i]->salt_len, sorted[i]->hash_len};
    if (store_devices_upsert(c->ctx->db, c->a, rows, n, &err) != 0 ||
        audit_devices(c, sorted, n, false, &err) != 0 ||
        audit_devices(c, sorted, n, true, &err) != 0 || store_commit(c->ctx->db, &err) != 0)
        return call_fail(c, &err);
    return true;
}

/* ---- one device as JSON (docs/management-api.md: GET adds owner, times, counts) ---- */

static void write_device(struct call *c, yajl_gen g, const void *row)
{
    const struct store_device *d = row;
    (void)c;
    json_open(g);
    json_kv_str(g, "serial_number", d->serial_number);
    json_kv_str(g, "product", d->product);
    json_kv_str(g, "owner_id", d->owner_id);
    json_kv_str(g, "created_at", d->created_at);
    json_kv_str(g, "updated_at", d->updated_at);
    json_kv_int(g, "vouchers_issued", d->vouchers_issued);
    json_str(g, "last_progress");
    if (!d->progress_at)
        json_null(g);
    else {
        json_open(g);
        json_kv_str(g, "at", d->progress_at);
        json_kv_str(g, "progress_type", d->progress_type);
        json_kv_str(g, "message", d->progress_message);
        json_close(g);
    }
    json_kv_int(g, "progress_pruned", d->progress_pruned);
    json_close(g);
}

static const char *device_key(struct call *c, const void *row)
{
    (void)c;
    return ((const struct store_device *)row)->serial_number;
}

static void answer_device(struct call *c, int status, const char *serial)
{
    struct masad_error err;
    struct store_device d;
    int found = store_device_get(c->ctx->db, c->a, serial, &d, &err);
    if (found < 0) {
        call_fail(c, &err);
        return;
    }
    if (!found) {
        call_refuse(c, 404, "no device has the serial number \"%s\"", serial);
        return;
    }
    yajl_gen g = json_gen_new();
    write_device(c, g, &d);
    call_answer_tagged(c, status, g);
}

void admin_device_put(struct job_ctx *ctx, const struct masad_request *req,
                      struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "device.put");
    if (!call_authorize(&c, "devices:write"))
        return;
    const char *serial = path_param(&c, 0);
    c.serial = serial && serial_number_valid(serial) ? serial : NULL;
    struct json_value *body;
    if (!serial) {
        call_refuse(&c, 404, "the serial number in the path is not percent-encoded correctly");
        return;
    }
    if (!call_read_json(&c, ADMIN_MAX_BODY, &body))
        return;
    struct device_input d;
    read_device(&c, body, "", serial, &d);
    if (c.error_count) {
        call_refuse(&c, 422, "the device is invalid");
        return;
    }
    struct device_input *one = &d;
    if (!store_devices(&c, &one, 1, true))
        return;
    answer_device(&c, d.existed ? 200 : 201, d.serial);
}

void admin_device_get(struct job_ctx *ctx, const struct masad_request *req,
                      struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "device.get");
    if (!call_authorize(&c, "devices:read"))
        return;
    const char *serial = path_param(&c, 0);
    if (!serial || !serial_number_valid(serial)) {
        call_refuse(&c, 404, "no device has that serial number");
        return;
    }
    c.serial = serial;
    answer_device(&c, 200, serial);
}

void admin_device_list(struct job_ctx *ctx, const struct masad_request *req,
                       struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "device.list");
    long limit;
    const char *after;
    static const char *const filters[] = {"owner_id", NULL};
    if (!call_authorize(&c, "devices:read") ||
        !read_paging(&c, filters, serial_number_valid, &limit, &after))
        return;
    const char *owner = query_param(&c, "owner_id");
    if (owner && !owner_id_valid(owner)) {
        call_param_error(&c, "owner_id", OWNER_ID_RULE);
        call_refuse_parameters(&c);
        return;
    }
    struct store_device *rows;
    size_t n;
    struct masad_error err;
    if (store_device_list(ctx->db, c.a, after, owner, limit + 1, &rows, &n, &err) != 0)
        call_fail(&c, &err);
    else
        answer_list(&c, rows, n, sizeof(*rows), limit, "devices", write_device, device_key);
}

void admin_device_batch(struct job_ctx *ctx, const struct masad_request *req,
                        struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "device.batch");
    struct json_value *body;
    static const char list_rule[] = "must be an array of 1 to 10000 devices";
    if (!call_authorize(&c, "devices:write") ||
        !call_read_batch(&c, ADMIN_MAX_BATCH_BODY, "devices", MAX_BATCH, list_rule, &body))
        return;
    static const char *const fields[] = {"devices", NULL};
    const struct json_value *list = json_get(body, "devices");
    check_members(&c, body, "", fields);
    if (!list || list->type != JSON_ARRAY || list->count < 1 || list->count > MAX_BATCH)
        call_field_error(&c, "/devices", list_rule);
    if (c.error_count) {
        call_refuse(&c, 422, "the batch is invalid");
        return;
    }
    size_t n = list->count;
    struct device_input *d = arena_alloc(c.a, n * sizeof(*d));
    struct device_input **sorted = arena_alloc(c.a, n * sizeof(*sorted));
    batch_duplicates(&c, list, "devices");
    for (size_t i = 0; i < n && c.error_count < ADMIN_MAX_ERRORS; i++) {
        read_device(&c, list->items[i], arena_printf(c.a, "/devices/%zu", i), NULL, &d[i]);
        sorted[i] = &d[i];
    }
    if (c.error_count) {
        call_refuse(&c, 422, "the batch is invalid: nothing was stored");
        return;
    }
    qsort(sorted, n, sizeof(*sorted), by_serial);
    if (!store_devices(&c, sorted, n, false))
        return;
    size_t created = 0, updated = 0;
    for (size_t i = 0; i < n; i++) {
        created += !d[i].existed;
        updated += d[i].existed && d[i].changed;
    }
    /* an identical device is neither rewritten nor audited (devices_upsert,
     * audit_devices): it is reported as such */
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_int(g, "created", (long long)created);
    json_kv_int(g, "updated", (long long)updated);
    json_kv_int(g, "unchanged", (long long)(n - created - updated));
    json_close(g);
    call_answer_json(&c, 200, g);
}
