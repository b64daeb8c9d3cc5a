/* BRSKI (service/brski/): statements. */
#include "store/store_internal.h"

const struct store_statement store_brski_statements[] = {
    /* BRSKI (service/brski/): the device and its current owner, held against
     * ownership changes until the decision commits */
    {"brski_device",
     "SELECT d.serial_number, o.owner_id FROM devices d LEFT JOIN ownership o"
     " ON o.serial_number = d.serial_number AND o.valid_until IS NULL"
     " WHERE d.serial_number = $1 FOR SHARE OF d", 1},
    {"brski_domain_by_spki",
     "SELECT c.owner_id, encode(c.spki_sha256, 'hex'), encode(c.cert_der, 'hex'),"
     " encode(c.cert_sha256, 'hex'), o.brski_registrar_auth, o.brski_pinning"
     " FROM owner_domain_certs c JOIN owners o USING (owner_id)"
     " WHERE o.deleted_at IS NULL AND c.spki_sha256 = ANY(" HEX_ARRAY("$1") ")", 1},
    {"brski_domain_by_subject",
     "SELECT c.owner_id, encode(c.spki_sha256, 'hex'), encode(c.cert_der, 'hex'),"
     " encode(c.cert_sha256, 'hex'), o.brski_registrar_auth, o.brski_pinning"
     " FROM owner_domain_certs c JOIN owners o USING (owner_id)"
     " WHERE o.deleted_at IS NULL AND c.subject = $1", 1},
    /* RFC 8995 §5.5.1: a renewal needs the last voucher for the same domain
     * and no ownership change since */
    {"brski_last_voucher",
     "SELECT created_on, owner_id, assertion, encode(domain_cert_sha256, 'hex') FROM vouchers"
     " WHERE serial_number = $1 AND protocol = 'brski' ORDER BY id DESC LIMIT 1", 1},
    {"brski_ownership_changed",
     "SELECT 1 FROM ownership WHERE serial_number = $1"
     " AND (valid_from > $2::timestamptz OR valid_until > $2::timestamptz) LIMIT 1", 2},
    {"brski_owned_ever",
     "SELECT 1 FROM ownership WHERE serial_number = $1 AND owner_id = $2 LIMIT 1", 2},
    {"brski_voucher_log",
     "SELECT to_char(created_on AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
     " domain_id, translate(encode(nonce, 'base64'), E'\\n', ''), assertion FROM vouchers"
     " WHERE serial_number = $1 AND protocol = 'brski' ORDER BY id DESC LIMIT 100000", 1},
    {NULL, NULL, 0},
};
