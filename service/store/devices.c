/* Devices and their per-device listings: statements. */
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
     "SELECT serial_number, product, encode(sztp_password_salt, 'hex'),"
     " encode(sztp_password_hash, 'hex') FROM devices WHERE serial_number = ANY($1::text[])"
     " ORDER BY serial_number FOR UPDATE", 1},
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
     "SELECT id, " TS("created_on") ", " TS("expires_on") ", assertion,"
     " translate(encode(nonce, 'base64'), E'\\n', ''), owner_id,"
     " encode(domain_cert_sha256, 'hex'), protocol, format FROM vouchers"
     " WHERE serial_number = $1 AND ($2::bigint IS NULL OR id < $2)"
     " ORDER BY id DESC LIMIT $3", 3},
    {"progress_list",
     "SELECT id, " TS("at") ", progress_type, message, ssh_host_keys::text,"
     " trust_anchor_certs::text FROM sztp_progress"
     " WHERE serial_number = $1 AND ($2::bigint IS NULL OR id < $2)"
     " ORDER BY id DESC LIMIT $3", 3},
    {NULL, NULL, 0},
};
