#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"

#define MAX_BATCH 10000

struct assignment {
    const char *serial;
    const char *owner;
    const char *order_ref;     /* may be NULL */
    bool changed;
    bool had_owner;
};

static void read_assignment(struct call *c, const struct json_value *obj, const char *pointer,
                            bool with_serial, struct assignment *a)
{
    static const char *const single[] = {"owner_id", "order_ref", NULL};
    static const char *const batched[] = {"serial_number", "owner_id", "order_ref", NULL};
    memset(a, 0, sizeof(*a));
    if (obj->type != JSON_OBJECT) {
        call_field_error(c, pointer, "must be an object");
        return;
    }
    check_members(c, obj, pointer, with_serial ? batched : single);
    if (with_serial) {
        a->serial = member_string(c, obj, pointer, "serial_number", true, 256);
        if (a->serial && !serial_number_valid(a->serial))
            call_field_error(c, arena_printf(c->a, "%s/serial_number", pointer),
                             "is not a valid serial number");
    }
    a->owner = member_string(c, obj, pointer, "owner_id", true, 64);
    if (a->owner && !owner_id_valid(a->owner))
        call_field_error(c, arena_printf(c->a, "%s/owner_id", pointer),
                         "must be 1 to 64 of a-z 0-9 . _ -");
    const struct json_value *ref = json_get(obj, "order_ref");
    if (ref && ref->type != JSON_NULL)
        a->order_ref = member_string(c, obj, pointer, "order_ref", false, 128);
}

static bool same(const char *x, const char *y)
{
    return (!x && !y) || (x && y && !strcmp(x, y));
}

static int by_serial(const void *x, const void *y)
{
    return strcmp((*(struct assignment *const *)x)->serial, (*(struct assignment *const *)y)->serial);
}

/* Each assignment's device must exist: the lock returns the ones that do. */
static void check_devices(struct call *c, struct assignment **sorted, size_t n,
                          const struct store_device_secret *rows, size_t count,
                          const struct assignment *base, const char *prefix)
{
    size_t row = 0;
    for (size_t i = 0; i < n; i++) {
        while (row < count && strcmp(rows[row].serial_number, sorted[i]->serial) < 0)
            row++;
        if (row >= count || strcmp(rows[row].serial_number, sorted[i]->serial))
            call_field_error(c, arena_printf(c->a, "%s/%zu/serial_number", prefix,
                                             (size_t)(sorted[i] - base)),
                             "no device has the serial number \"%s\"", sorted[i]->serial);
    }
}

static int by_string(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Every assignment's owner must exist: the query returns those that do. */
static void check_owners(struct call *c, struct assignment *as, size_t n, const char **ids,
                         size_t known, const char *pointer_fmt)
{
    qsort(ids, known, sizeof(*ids), by_string);
    for (size_t i = 0; i < n; i++) {
        const char *key = as[i].owner;
        if (!bsearch(&key, ids, known, sizeof(*ids), by_string))
            call_field_error(c, arena_printf(c->a, pointer_fmt, i), "no owner \"%s\" exists",
                             as[i].owner);
    }
}

/* Marks what changes against the current periods (serial order both). */
static size_t mark_changes(struct assignment **sorted, size_t n,
                           const struct store_ownership_current *current, size_t rows)
{
    size_t row = 0, changed = 0;
    for (size_t i = 0; i < n; i++) {
        while (row < rows && strcmp(current[row].serial_number, sorted[i]->serial) < 0)
            row++;
        bool has = row < rows && !strcmp(current[row].serial_number, sorted[i]->serial);
        sorted[i]->had_owner = has;
        sorted[i]->changed = !has || strcmp(current[row].owner_id, sorted[i]->owner) ||
                             !same(current[row].order_ref, sorted[i]->order_ref);
        changed += sorted[i]->changed;
    }
    return changed;
}

static int audit_changes(struct call *c, struct assignment **changed, size_t n, bool had_owner,
                         struct masad_error *err)
{
    const char **serials = arena_alloc(c->a, (n ? n : 1) * sizeof(char *));
    const char **owners = arena_alloc(c->a, (n ? n : 1) * sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (changed[i]->had_owner == had_owner) {
            serials[k] = changed[i]->serial;
            owners[k++] = changed[i]->owner;
        }
    return audit_append_many(c->ctx->db, c->a, c->actor,
                             had_owner ? "ownership.transfer" : "ownership.assign", "ok", serials,
                             owners, k, NULL, err);
}

/* The time of a change, read once the devices are locked. */
static const char *change_time(struct call *c, struct masad_error *err)
{
    const char *at;
    return store_clock_now(c->ctx->db, c->a, &at, err) == 0 ? at : NULL;
}

/* Closes the current periods of the changed devices and opens new ones. */
static int apply_changes(struct call *c, struct assignment **sorted, size_t n,
                         struct masad_error *err)
{
    struct assignment **changed = arena_alloc(c->a, n * sizeof(*changed));
    const char **serials = arena_alloc(c->a, n * sizeof(char *));
    const char **owners = arena_alloc(c->a, n * sizeof(char *));
    const char **refs = arena_alloc(c->a, n * sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (sorted[i]->changed) {
            changed[k] = sorted[i];
            serials[k] = sorted[i]->serial;
            owners[k] = sorted[i]->owner;
            refs[k++] = sorted[i]->order_ref;
        }
    if (k == 0)
        return 0;
    const char *at = change_time(c, err);
    if (!at)
        return -1;
    if (store_ownership_close(c->ctx->db, c->a, serials, k, at, err) != 0 ||
        store_ownership_open(c->ctx->db, c->a, serials, owners, refs, k, at, err) != 0 ||
        audit_changes(c, changed, k, false, err) != 0 || audit_changes(c, changed, k, true, err) != 0)
        return -1;
    return 0;
}

/* The whole assignment in one transaction; devices are locked in serial
 * order first, so concurrent calls on the same devices queue up and leave
 * one current owner and an unbroken history. Returns the number changed,
 * or -1 after answering. */
static long assign(struct call *c, struct assignment *as, struct assignment **sorted, size_t n,
                   bool batch, const char *owner_pointer_fmt)
{
    struct masad_error err;
    const char **serials = arena_alloc(c->a, n * sizeof(char *));
    const char **owners = arena_alloc(c->a, n * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        serials[i] = sorted[i]->serial;
        owners[i] = as[i].owner;
    }
    struct store_device_secret *devices;
    struct store_ownership_current *current;
    const char **known_owners;
    size_t device_count, owner_count, current_count;
    if (store_begin(c->ctx->db, &err) != 0 ||
        store_devices_lock(c->ctx->db, c->a, serials, n, &devices, &device_count, &err) != 0)
        return call_fail(c, &err), -1;
    if (!batch && device_count != 1)
        return call_refuse(c, 404, "no device has the serial number \"%s\"", as[0].serial), -1;
    if (batch)
        check_devices(c, sorted, n, devices, device_count, as, "/assignments");
    if (store_owners_existing(c->ctx->db, c->a, owners, n, &known_owners, &owner_count, &err) != 0)
        return call_fail(c, &err), -1;
    check_owners(c, as, n, known_owners, owner_count, owner_pointer_fmt);
    if (c->error_count)
        return call_refuse(c, 422, "%s", batch ? "the batch is invalid: nothing was stored"
                                               : "the assignment is invalid"), -1;
    if (store_ownership_current(c->ctx->db, c->a, serials, n, &current, &current_count, &err) != 0)
        return call_fail(c, &err), -1;
    size_t changed = mark_changes(sorted, n, current, current_count);
    if (apply_changes(c, sorted, n, &err) != 0 || store_commit(c->ctx->db, &err) != 0)
        return call_fail(c, &err), -1;
    return (long)changed;
}

static void write_period(yajl_gen g, const struct store_ownership_period *p)
{
    json_open(g);
    json_kv_str(g, "owner_id", p->owner_id);
    json_kv_str(g, "order_ref", p->order_ref);
    json_kv_str(g, "from", p->from);
    json_kv_str(g, "until", p->until);
    json_close(g);
}

/* {"current": period|null, "history": [every period, oldest first]} */
static void answer_history(struct call *c, int status, const char *serial)
{
    struct masad_error err;
    struct store_ownership_period *p;
    size_t rows;
    if (store_ownership_history(c->ctx->db, c->a, serial, &p, &rows, &err) != 0) {
        call_fail(c, &err);
        return;
    }
    yajl_gen g = json_gen_new();
    json_open(g);
    json_str(g, "current");
    if (rows > 0 && !p[rows - 1].until)
        write_period(g, &p[rows - 1]);
    else
        json_null(g);
    json_str(g, "history");
    json_open_array(g);
    for (size_t i = 0; i < rows; i++)
        write_period(g, &p[i]);
    json_close_array(g);
    json_close(g);
    call_answer_json(c, status, g);
}

static const char *serial_from_path(struct call *c)
{
    const char *serial = path_param(c, 0);
    if (!serial || !serial_number_valid(serial)) {
        call_refuse(c, 404, "no device has that serial number");
        return NULL;
    }
    c->serial = serial;
    return serial;
}

void admin_ownership_put(struct job_ctx *ctx, const struct masad_request *req,
                         struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "ownership.assign");
    struct json_value *body;
    const char *serial;
    if (!call_authorize(&c, "ownership:write") || !(serial = serial_from_path(&c)) ||
        !call_read_json(&c, ADMIN_MAX_BODY, &body))
        return;
    struct assignment a;
    read_assignment(&c, body, "", false, &a);
    a.serial = serial;
    c.owner = a.owner;
    if (c.error_count) {
        call_refuse(&c, 422, "the assignment is invalid");
        return;
    }
    struct assignment *one = &a;
    long changed = assign(&c, &a, &one, 1, false, "/owner_id");
    if (changed >= 0)
        answer_history(&c, changed ? 201 : 200, serial);
}

void admin_ownership_delete(struct job_ctx *ctx, const struct masad_request *req,
                            struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "ownership.release");
    const char *serial;
    if (!call_authorize(&c, "ownership:write") || !(serial = serial_from_path(&c)))
        return;
    struct masad_error err;
    struct store_device_secret *devices;
    struct store_ownership_current *current;
    size_t device_count, current_count;
    if (store_begin(ctx->db, &err) != 0 ||
        store_devices_lock(ctx->db, c.a, &serial, 1, &devices, &device_count, &err) != 0 ||
        store_ownership_current(ctx->db, c.a, &serial, 1, &current, &current_count, &err) != 0) {
        call_fail(&c, &err);
        return;
    }
    if (device_count != 1) {
        call_refuse(&c, 404, "no device has the serial number \"%s\"", serial);
        return;
    }
    if (current_count == 1) {
        struct audit_event e = {c.actor, "ownership.release", serial, current[0].owner_id,
                                "ok", NULL};
        const char *at = change_time(&c, &err);
        if (!at || store_ownership_close(ctx->db, c.a, &serial, 1, at, &err) != 0 ||
            audit_append(ctx->db, c.a, &e, &err) != 0) {
            call_fail(&c, &err);
            return;
        }
    }
    if (store_commit(ctx->db, &err) != 0) {
        call_fail(&c, &err);
        return;
    }
    call_answer_empty(&c, 204);
}

void admin_ownership_get(struct job_ctx *ctx, const struct masad_request *req,
                         struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "ownership.get");
    const char *serial;
    if (!call_authorize(&c, "devices:read") || !(serial = serial_from_path(&c)) ||
        !call_read_query(&c, NULL))
        return;
    struct masad_error err;
    int exists = store_device_exists(ctx->db, c.a, serial, &err);
    if (exists < 0) {
        call_fail(&c, &err);
        return;
    }
    if (!exists) {
        call_refuse(&c, 404, "no device has the serial number \"%s\"", serial);
        return;
    }
    answer_history(&c, 200, serial);
}

void admin_ownership_batch(struct job_ctx *ctx, const struct masad_request *req,
                           struct masad_response *res)
{
    struct call c;
    call_init(&c, ctx, req, res, "ownership.batch");
    struct json_value *body;
    static const char list_rule[] = "must be an array of 1 to 10000 assignments";
    if (!call_authorize(&c, "ownership:write") ||
        !call_read_batch(&c, ADMIN_MAX_BATCH_BODY, "assignments", MAX_BATCH, list_rule, &body))
        return;
    static const char *const fields[] = {"assignments", NULL};
    const struct json_value *list = json_get(body, "assignments");
    check_members(&c, body, "", fields);
    if (!list || list->type != JSON_ARRAY || list->count < 1 || list->count > MAX_BATCH)
        call_field_error(&c, "/assignments", list_rule);
    if (c.error_count) {
        call_refuse(&c, 422, "the batch is invalid");
        return;
    }
    size_t n = list->count;
    struct assignment *as = arena_alloc(c.a, n * sizeof(*as));
    struct assignment **sorted = arena_alloc(c.a, n * sizeof(*sorted));
    batch_duplicates(&c, list, "assignments");
    for (size_t i = 0; i < n && c.error_count < ADMIN_MAX_ERRORS; i++) {
        read_assignment(&c, list->items[i], arena_printf(c.a, "/assignments/%zu", i), true, &as[i]);
        sorted[i] = &as[i];
    }
    if (!c.error_count)
        qsort(sorted, n, sizeof(*sorted), by_serial);
    if (c.error_count) {
        call_refuse(&c, 422, "the batch is invalid: nothing was stored");
        return;
    }
    long changed = assign(&c, as, sorted, n, true, "/assignments/%zu/owner_id");
    if (changed < 0)
        return;
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_int(g, "assigned", changed);
    json_kv_int(g, "unchanged", (long long)n - changed);
    json_close(g);
    call_answer_json(&c, 200, g);
}
