/* Devices and their per-device listings. */
#include <stdio.h>
#include <string.h>

#include "common/encoding.h"
#include "store/devices.h"
#include "store/store_internal.h"

#define DEVICE_COLUMNS                                                                          \
    "d.serial_number, d.product, " TS("d.created_at") ", " TS("d.updated_at") ", o.owner_id,"  \
    " (SELECT count(*) FROM vouchers v WHERE v.serial_number = d.serial_number),"             \
    " p.at_text, p.progress_type, p.message, d.sztp_progress_pruned"                           \
    " FROM devices d"                                                                          \
    " LEFT JOIN ownership o ON o.serial_number = d.serial_number AND o.valid_until IS NULL"    \
    " LEFT JOIN LATERAL (SELECT " TS("s.at") " AS at_text, s.progress_type, s.message"         \
    "   FROM sztp_progress s WHERE s.serial_number = d.serial_number"                          \
    "   ORDER BY s.at DESC, s.id DESC LIMIT 1) p ON true"

const struct store_statement store_devices_statements[] = {
    /* devices */
    {"devices_lock",
     "SELECT serial_number, product, sztp_password_salt, sztp_password_hash"
     " FROM devices WHERE serial_number = ANY($1::text[])"
     " ORDER BY serial_number COLLATE \"C\" FOR UPDATE", 1}, /* byte order, as callers walk it */
    {"devices_upsert",
     "INSERT INTO devices AS d (serial_number, product, sztp_password_salt, sztp_password_hash)"
     " SELECT s, p, decode(salt, 'hex'), decode(hash, 'hex')"
     " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(s, p, salt, hash)"
     " ON CONFLICT (serial_number) DO UPDATE SET product = EXCLUDED.product,"
     " sztp_password_salt = EXCLUDED.sztp_password_salt,"
     " sztp_password_hash = EXCLUDED.sztp_password_hash, updated_at = now()"
     " WHERE (d.product, d.sztp_password_salt, d.sztp_password_hash) IS DISTINCT FROM"
     " (EXCLUDED.product, EXCLUDED.sztp_password_salt, EXCLUDED.sztp_password_hash)", 4},
    {"device_get", "SELECT " DEVICE_COLUMNS " WHERE d.serial_number = $1", 1},
    {"device_list",
     "SELECT " DEVICE_COLUMNS " WHERE d.serial_number > $1"
     " AND ($2::text IS NULL OR o.owner_id = $2) ORDER BY d.serial_number LIMIT $3", 3},
    {"device_exists", "SELECT 1 FROM devices WHERE serial_number = $1", 1},

    /* per-device listings, newest first */
    {"voucher_list",
     "SELECT id, " TS("created_on") ", " TS("expires_on") ", assertion, nonce, owner_id,"
     " domain_cert_sha256, protocol, format FROM vouchers"
     " WHERE serial_number = $1 AND ($2::bigint IS NULL OR id < $2)"
     " ORDER BY id DESC LIMIT $3", 3},
    {"progress_list",
     "SELECT id, " TS("at") ", progress_type, message, ssh_host_keys::text,"
     " trust_anchor_certs::text FROM sztp_progress"
     " WHERE serial_number = $1 AND ($2::bigint IS NULL OR id < $2)"
     " ORDER BY id DESC LIMIT $3", 3},
    {NULL, NULL, 0},
};

int store_devices_lock(struct store_conn *c, struct arena *a, const char *const *serials,
                       size_t n, struct store_device_secret **out, size_t *count,
                       struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(store_text_array(a, serials, n))};
    PGresult *r;
    if (store_run(c, a, "devices_lock", 1, p, &r, err) != 0)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    struct store_device_secret *d = arena_alloc(a, (rows ? rows : 1) * sizeof(*d));
    for (int i = 0; i < (int)rows; i++) {
        d[i].serial_number = row_text(r, i, 0);
        d[i].product = row_text(r, i, 1);
        d[i].salt = row_bytea(a, r, i, 2, &d[i].salt_len);
        d[i].hash = row_bytea(a, r, i, 3, &d[i].hash_len);
    }
    *out = d;
    *count = rows;
    return 0;
}

static const char *hex_or_null(struct arena *a, const unsigned char *b, size_t n)
{
    return b ? hex_encode(a, b, n) : NULL;
}

int store_devices_upsert(struct store_conn *c, struct arena *a,
                         const struct store_device_secret *d, size_t n, struct masad_error *err)
{
    const char **cols = arena_alloc(a, 4 * (n ? n : 1) * sizeof(char *));
    const char **serials = cols, **products = cols + n, **salts = cols + 2 * n,
               **hashes = cols + 3 * n;
    for (size_t i = 0; i < n; i++) {
        serials[i] = d[i].serial_number;
        products[i] = d[i].product;
        /* bytea in a text[] batch goes as hex, decoded by the statement */
        salts[i] = hex_or_null(a, d[i].salt, d[i].salt_len);
        hashes[i] = hex_or_null(a, d[i].hash, d[i].hash_len);
    }
    struct store_param p[] = {
        P_TEXT(store_text_array(a, serials, n)), P_TEXT(store_text_array(a, products, n)),
        P_TEXT(store_text_array(a, salts, n)), P_TEXT(store_text_array(a, hashes, n))};
    return store_run(c, a, "devices_upsert", 4, p, NULL, err);
}

static void read_device(const PGresult *r, int i, struct store_device *d)
{
    d->serial_number = row_text(r, i, 0);
    d->product = row_text(r, i, 1);
    d->created_at = row_text(r, i, 2);
    d->updated_at = row_text(r, i, 3);
    d->owner_id = row_text(r, i, 4);
    d->vouchers_issued = row_int(r, i, 5);
    d->progress_at = row_text(r, i, 6);
    d->progress_type = row_text(r, i, 7);
    d->progress_message = row_text(r, i, 8);
    d->progress_pruned = row_int(r, i, 9);
}

int store_device_get(struct store_conn *c, struct arena *a, const char *serial,
                     struct store_device *out, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(serial)};
    PGresult *r;
    if (store_run(c, a, "device_get", 1, p, &r, err) != 0)
        return -1;
    if (PQntuples(r) != 1)
        return 0;
    read_device(r, 0, out);
    return 1;
}

int store_device_list(struct store_conn *c, struct arena *a, const char *after,
                      const char *owner, long limit, struct store_device **out, size_t *count,
                      struct masad_error *err)
{
    char lim[24];
    snprintf(lim, sizeof(lim), "%ld", limit);
    struct store_param p[] = {P_TEXT(after ? after : ""), P_TEXT(owner), P_TEXT(lim)};
    PGresult *r;
    if (store_run(c, a, "device_list", 3, p, &r, err) != 0)
        return -1;
    size_t n = (size_t)PQntuples(r);
    struct store_device *d = arena_alloc(a, (n ? n : 1) * sizeof(*d));
    for (int i = 0; i < (int)n; i++)
        read_device(r, i, &d[i]);
    *out = d;
    *count = n;
    return 0;
}

int store_device_exists(struct store_conn *c, struct arena *a, const char *serial,
                        struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(serial)};
    PGresult *r;
    if (store_run(c, a, "device_exists", 1, p, &r, err) != 0)
        return -1;
    return PQntuples(r) == 1;
}

/* a per-device listing's page: serial, id below `before` (-1: none), limit */
static int listing(struct store_conn *c, struct arena *a, const char *name, const char *serial,
                   long long before, long limit, PGresult **r, struct masad_error *err)
{
    char b[24], lim[24];
    snprintf(b, sizeof(b), "%lld", before);
    snprintf(lim, sizeof(lim), "%ld", limit);
    struct store_param p[] = {P_TEXT(serial), P_TEXT(before >= 0 ? b : NULL), P_TEXT(lim)};
    return store_run(c, a, name, 3, p, r, err);
}

int store_device_vouchers(struct store_conn *c, struct arena *a, const char *serial,
                          long long before, long limit, struct store_device_voucher **out,
                          size_t *count, struct masad_error *err)
{
    PGresult *r;
    if (listing(c, a, "voucher_list", serial, before, limit, &r, err) != 0)
        return -1;
    size_t n = (size_t)PQntuples(r);
    struct store_device_voucher *v = arena_alloc(a, (n ? n : 1) * sizeof(*v));
    for (int i = 0; i < (int)n; i++) {
        size_t len = 0;
        v[i].id = row_int(r, i, 0);
        v[i].created_on = row_text(r, i, 1);
        v[i].expires_on = row_text(r, i, 2);
        v[i].assertion = row_text(r, i, 3);
        v[i].nonce = row_bytea(a, r, i, 4, &v[i].nonce_len);
        v[i].owner_id = row_text(r, i, 5);
        const unsigned char *md = row_bytea(a, r, i, 6, &len);
        if (md && len == 32)
            memcpy(v[i].domain_cert_sha256, md, 32);
        v[i].protocol = row_text(r, i, 7);
        v[i].format = row_text(r, i, 8);
    }
    *out = v;
    *count = n;
    return 0;
}

int store_device_progress(struct store_conn *c, struct arena *a, const char *serial,
                          long long before, long limit, struct store_device_progress **out,
                          size_t *count, struct masad_error *err)
{
    PGresult *r;
    if (listing(c, a, "progress_list", serial, before, limit, &r, err) != 0)
        return -1;
    size_t n = (size_t)PQntuples(r);
    struct store_device_progress *p = arena_alloc(a, (n ? n : 1) * sizeof(*p));
    for (int i = 0; i < (int)n; i++)
        p[i] = (struct store_device_progress){row_int(r, i, 0), row_text(r, i, 1),
                                              row_text(r, i, 2), row_text(r, i, 3),
                                              row_text(r, i, 4), row_text(r, i, 5)};
    *out = p;
    *count = n;
    return 0;
}
