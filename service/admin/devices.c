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
    const char *salt_hex, *hash_hex;   /* what will be stored */
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

/* What to store for d, given the stored row (salt/hash may be NULL). */
static void settle_password(struct call *c, struct device_input *d, const char *salt_hex,
                            const char *hash_hex)
{
    if (d->password_change == PASSWORD_KEEP ||
        (d->password_change == PASSWORD_SET && crypto_password_matches(salt_hex, hash_hex, d->password))) {
        d->salt_hex = salt_hex;
        d->hash_hex = hash_hex;
    } else if (d->password_change == PASSWORD_SET) {
        unsigned char salt[16], md[32];
        RAND_bytes(salt, sizeof(salt));
        crypto_password_digest(salt, sizeof(salt), d->password, md);
        d->salt_hex = hex_encode(c->a, salt, sizeof(salt));
        d->hash_hex = hex_encode(c->a, md, sizeof(md));
    }
}

static bool same(const char *x, const char *y)
{
    return (!x && !y) || (x && y && !strcmp(x, y));
}

static int by_serial(const void *x, const void *y)
{
    return strcmp((*(struct device_input *const *)x)->serial,
                  (*(struct device_input *const *)y)->serial);
}

/* Compares the inputs with the locked rows (both in serial order). */
static void merge_existing(struct call *c, struct device_input **sorted, size_t n, PGresult *r)
{
    int row = 0, rows = PQntuples(r);
    for (size_t i = 0; i < n; i++) {
        struct device_input *d = sorted[i];
        while (row < rows && strcmp(PQgetvalue(r, row, 0), d->serial) < 0)
            row++;
        bool found = row < rows && !strcmp(PQgetvalue(r, row, 0), d->serial);
        const char *salt = found ? pq_value(r, row, 2) : NULL;
        const char *hash = found ? pq_value(r, row, 3) : NULL;
        settle_password(c, d, salt, hash);
        d->existed = found;
        d->changed = !found || strcmp(PQgetvalue(r, row, 1), d->product) ||
                     !same(salt, d->salt_hex) || !same(hash, d->hash_hex);
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

static void write_device(struct call *c, yajl_gen g, const PGresult *r, int row);

/* Creates or replaces the devices in one transaction; sorted is d in
 * serial order without duplicates. With conditional (one device's PUT),
 * the request's If-Match is checked against the locked device first. */
static bool store_devices(struct call *c, struct device_input **sorted, size_t n, bool conditional)
{
    struct masad_error err;
    const char **serials = arena_alloc(c->a, n * sizeof(*serials));
    for (size_t i = 0; i < n; i++)
        serials[i] = sorted[i]->serial;
    const char *lock[] = {store_text_array(c->a, serials, n)};
    PGresult *existing;
    if (store_begin(c->ctx->db, &err) != 0 ||
        store_exec(c->ctx->db, c->a, "devices_lock", 1, lock, &existing, &err) != 0)
        return call_fail(c, &err);
    const char *etag;
    if (conditional && c->req->if_match &&
        (!current_etag(c, "device_get", sorted[0]->serial, write_device, &etag) ||
         !call_check_if_match(c, etag)))
        return false;
    merge_existing(c, sorted, n, existing);
    const char **products = arena_alloc(c->a, n * sizeof(char *));
    const char **salts = arena_alloc(c->a, n * sizeof(char *));
    const char **hashes = arena_alloc(c->a, n * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        products[i] = sorted[i]->product;
        salts[i] = sorted[i]->salt_hex;
        hashes[i] = sorted[i]->hash_hex;
    }
    const char *upsert[] = {lock[0], store_text_array(c->a, products, n),
                            store_text_array(c->a, salts, n), store_text_array(c->a, hashes, n)};
    if (store_exec(c->ctx->db, c->a, "devices_upsert", 4, upsert, NULL, &err) != 0 ||
        audit_devices(c, sorted, n, false, &err) != 0 ||
        audit_devices(c, sorted, n, true, &err) != 0 || store_commit(c->ctx->db, &err) != 0)
        return call_fail(c, &err);
    return true;
}

/* ---- one device as JSON (docs/management-api.md: GET adds owner, times, counts) ---- */

static void write_device(struct call *c, yajl_gen g, const PGresult *r, int row)
{
    (void)c;
    json_open(g);
    json_kv_str(g, "serial_number", PQgetvalue(r, row, 0));
    json_kv_str(g, "product", PQgetvalue(r, row, 1));
    json_kv_str(g, "owner_id", pq_value(r, row, 4));
    json_kv_str(g, "created_at", PQgetvalue(r, row, 2));
    json_kv_str(g, "updated_at", PQgetvalue(r, row, 3));
    json_kv_int(g, "vouchers_issued", atoll(PQgetvalue(r, row, 5)));
    json_str(g, "last_progress");
    if (PQgetisnull(r, row, 6))
        json_null(g);
    else {
        json_open(g);
        json_kv_str(g, "at", PQgetvalue(r, row, 6));
        json_kv_str(g, "progress_type", PQgetvalue(r, row, 7));
        json_kv_str(g, "message", pq_value(r, row, 8));
        json_close(g);
    }
    json_kv_int(g, "progress_pruned", atoll(PQgetvalue(r, row, 9)));
    json_close(g);
}

static void answer_device(struct call *c, int status, const char *serial)
{
    struct masad_error err;
    PGresult *r;
    const char *params[] = {serial};
    if (store_exec(c->ctx->db, c->a, "device_get", 1, params, &r, &err) != 0) {
        call_fail(c, &err);
        return;
    }
    if (PQntuples(r) != 1) {
        call_refuse(c, 404, "no device has the serial number \"%s\"", serial);
        return;
    }
    yajl_gen g = json_gen_new();
    write_device(c, g, r, 0);
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
    const char *params[] = {after ? after : "", owner, arena_printf(c.a, "%ld", limit + 1)};
    answer_list(&c, "device_list", 3, params, limit, "devices", write_device);
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
