/* SZTP (service/sztp/): statements and typed functions. */
#include <string.h>

#include "common/encoding.h"
#include "common/json.h"
#include "store/store_internal.h"
#include "store/sztp.h"

const struct store_statement store_sztp_statements[] = {
    {"sztp_password",
     "SELECT sztp_password_salt, sztp_password_hash FROM devices WHERE serial_number = $1", 1},
    /* the owner chain as comma-separated hex, end-entity first; with $2, the
     * newest nonceless SZTP voucher pinning the chain's last certificate,
     * which RFC 8572 §3.3 lets us reuse until it nears its end (sztp/decide.c
     * decides how near): one round trip for all the answer reads */
    {"sztp_owner",
     "SELECT o.owner_id, w.sztp_conveyed_information::text,"
     " w.sztp_signed_conveyed_info, w.sztp_signed_onboarding,"
     " array_to_string(ARRAY(SELECT encode(c, 'hex') FROM unnest(w.sztp_owner_certificate)"
     "   WITH ORDINALITY AS t(c, n) ORDER BY n), ','),"
     " v.id, extract(epoch FROM v.expires_on)::bigint, v.voucher"
     " FROM devices d LEFT JOIN ownership o ON o.serial_number = d.serial_number"
     " AND o.valid_until IS NULL LEFT JOIN owners w ON w.owner_id = o.owner_id"
     " AND w.deleted_at IS NULL"
     " LEFT JOIN LATERAL (SELECT id, expires_on, voucher FROM vouchers"
     "   WHERE $2::boolean AND serial_number = d.serial_number AND protocol = 'sztp'"
     "   AND nonce IS NULL AND expires_on IS NOT NULL AND domain_cert_sha256 ="
     "   sha256(w.sztp_owner_certificate[array_upper(w.sztp_owner_certificate, 1)])"
     "   ORDER BY id DESC LIMIT 1) v ON true"
     " WHERE d.serial_number = $1 FOR SHARE OF d", 2},
    {"sztp_device_exists", "SELECT 1 FROM devices WHERE serial_number = $1", 1},
    /* a device keeps its newest SZTP_PROGRESS_KEPT reports (migration 0006),
     * newest as last_progress orders them: the older ones go as a new one
     * comes, counted on the device. The DELETE sees the rows before the
     * INSERT: it keeps $6 - 1 of them. */
    {"sztp_progress_add",
     "WITH added AS (INSERT INTO sztp_progress (serial_number, progress_type, message,"
     " ssh_host_keys, trust_anchor_certs) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)),"
     " pruned AS (DELETE FROM sztp_progress WHERE serial_number = $1 AND (at, id) <= (SELECT"
     "   at, id FROM sztp_progress WHERE serial_number = $1 ORDER BY at DESC, id DESC"
     "   OFFSET $6::integer - 1 LIMIT 1) RETURNING id)"
     " UPDATE devices SET sztp_progress_pruned = sztp_progress_pruned + n"
     " FROM (SELECT count(*) AS n FROM pruned) c WHERE serial_number = $1 AND n > 0", 6},
    {NULL, NULL, 0},
};

static struct store_bytes bytea(struct arena *a, const PGresult *r, int col)
{
    struct store_bytes b = {NULL, 0};
    b.data = row_bytea(a, r, 0, col, &b.len);
    return b;
}

int store_sztp_password(struct store_conn *c, struct arena *a, const char *serial,
                        struct store_sztp_password *out, struct masad_error *err)
{
    PGresult *r;
    *out = (struct store_sztp_password){0};
    if (store_run(c, a, "sztp_password", 1, (struct store_param[]){P_TEXT(serial)}, &r, err) != 0)
        return -1;
    if (PQntuples(r) != 1)
        return 0;
    out->device_found = true;
    out->salt = bytea(a, r, 0);
    out->hash = bytea(a, r, 1);
    return 0;
}

/* "hex,hex,..." as DER byte strings */
static void split_certs(struct arena *a, const char *list, struct store_sztp_owner *out)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    out->certs = arena_alloc(a, n * sizeof(*out->certs));
    char *copy = arena_strdup(a, list), *save = NULL;
    for (char *h = strtok_r(copy, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        struct store_bytes *b = &out->certs[out->cert_count];
        if ((b->data = hex_decode(a, h, &b->len)))
            out->cert_count++;
    }
}

int store_sztp_owner(struct store_conn *c, struct arena *a, const char *serial,
                     struct store_sztp_owner *out, struct store_sztp_voucher *reusable,
                     struct masad_error *err)
{
    PGresult *r;
    *out = (struct store_sztp_owner){0};
    if (reusable)
        *reusable = (struct store_sztp_voucher){0};
    struct store_param p[] = {P_TEXT(serial), P_TEXT(reusable ? "true" : "false")};
    if (store_run(c, a, "sztp_owner", 2, p, &r, err) != 0)
        return -1;
    if (PQntuples(r) != 1)
        return 0;
    out->device_found = true;
    out->owner = row_text(r, 0, 0);
    out->conveyed = row_text(r, 0, 1);
    out->signed_conveyed = bytea(a, r, 2);
    out->signed_onboarding = row_bool(r, 0, 3);
    if (row_text(r, 0, 4))
        split_certs(a, row_text(r, 0, 4), out);
    if (reusable && row_text(r, 0, 5)) {
        reusable->id = row_int(r, 0, 5);
        reusable->expires_on = (time_t)row_int(r, 0, 6);
        reusable->cms = bytea(a, r, 7);
    }
    return 0;
}

int store_sztp_device_exists(struct store_conn *c, struct arena *a, const char *serial,
                             bool *exists, struct masad_error *err)
{
    PGresult *r;
    if (store_run(c, a, "sztp_device_exists", 1, (struct store_param[]){P_TEXT(serial)}, &r,
                  err) != 0)
        return -1;
    *exists = PQntuples(r) == 1;
    return 0;
}

/* [{"algorithm", "key_data"}], or NULL when none */
static const char *host_keys_json(struct arena *a, const struct store_sztp_progress *p)
{
    if (!p->host_key_count)
        return NULL;
    yajl_gen g = json_gen_new();
    json_open_array(g);
    for (size_t i = 0; i < p->host_key_count; i++) {
        json_open(g);
        json_kv_str(g, "algorithm", p->host_keys[i].algorithm);
        json_kv_str(g, "key_data", p->host_keys[i].key_data);
        json_close(g);
    }
    json_close_array(g);
    return json_finish(g, a, NULL);
}

/* ["base64 CMS", ...], or NULL when none */
static const char *anchors_json(struct arena *a, const struct store_sztp_progress *p)
{
    if (!p->trust_anchor_count)
        return NULL;
    yajl_gen g = json_gen_new();
    json_open_array(g);
    for (size_t i = 0; i < p->trust_anchor_count; i++)
        json_str(g, p->trust_anchors[i]);
    json_close_array(g);
    return json_finish(g, a, NULL);
}

int store_sztp_progress_add(struct store_conn *c, struct arena *a,
                            const struct store_sztp_progress *p, struct masad_error *err)
{
    struct store_param params[] = {P_TEXT(p->serial), P_TEXT(p->type), P_TEXT(p->message),
                                   P_TEXT(host_keys_json(a, p)), P_TEXT(anchors_json(a, p)),
                                   P_TEXT(arena_printf(a, "%d", p->kept))};
    return store_run(c, a, "sztp_progress_add", 6, params, NULL, err);
}
