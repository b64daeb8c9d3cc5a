/* SZTP (service/sztp/): statements. */
#include "store/store_internal.h"

const struct store_statement store_sztp_statements[] = {
    /* SZTP (service/sztp/) */
    {"sztp_password",
     "SELECT encode(sztp_password_salt, 'hex'), encode(sztp_password_hash, 'hex') FROM devices"
     " WHERE serial_number = $1", 1},
    {"sztp_owner",
     "SELECT o.owner_id, w.sztp_conveyed_information::text,"
     " encode(w.sztp_signed_conveyed_info, 'hex'), w.sztp_signed_onboarding,"
     " array_to_string(ARRAY(SELECT encode(c, 'hex') FROM unnest(w.sztp_owner_certificate)"
     "   WITH ORDINALITY AS t(c, n) ORDER BY n), ',')"
     " FROM devices d LEFT JOIN ownership o ON o.serial_number = d.serial_number"
     " AND o.valid_until IS NULL LEFT JOIN owners w ON w.owner_id = o.owner_id"
     " AND w.deleted_at IS NULL WHERE d.serial_number = $1 FOR SHARE OF d", 1},
    /* RFC 8572 §3.3: a nonceless ownership voucher is reused until it nears
     * its end */
    {"sztp_reusable_voucher",
     "SELECT id, encode(voucher, 'hex') FROM vouchers WHERE serial_number = $1"
     " AND protocol = 'sztp' AND nonce IS NULL AND domain_cert_sha256 = decode($2, 'hex')"
     " AND expires_on > now() + make_interval(secs => $3::bigint)"
     " ORDER BY id DESC LIMIT 1", 3},
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
