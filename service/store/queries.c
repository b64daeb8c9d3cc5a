#include "store/store_internal.h"

/* RFC 3339 UTC with Z, as docs/management-api.md's timestamps */
#define TS(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define HEX_ARRAY(p) "ARRAY(SELECT decode(x, 'hex') FROM unnest(" p "::text[]) WITH ORDINALITY AS t(x, n) ORDER BY n)"

#define DEVICE_COLUMNS                                                                          \
    "d.serial_number, d.product, " TS("d.created_at") ", " TS("d.updated_at") ", o.owner_id,"  \
    " (SELECT count(*) FROM vouchers v WHERE v.serial_number = d.serial_number),"             \
    " p.at_text, p.progress_type, p.message, d.sztp_progress_pruned"                           \
    " FROM devices d"                                                                          \
    " LEFT JOIN ownership o ON o.serial_number = d.serial_number AND o.valid_until IS NULL"    \
    " LEFT JOIN LATERAL (SELECT " TS("s.at") " AS at_text, s.progress_type, s.message"         \
    "   FROM sztp_progress s WHERE s.serial_number = d.serial_number"                          \
    "   ORDER BY s.at DESC, s.id DESC LIMIT 1) p ON true"

#define OWNER_COLUMNS                                                                           \
    "owner_id, display_name, brski::text,"                                                     \
    " array_to_string(ARRAY(SELECT translate(encode(c, 'base64'), E'\\n', '')"                  \
    "   FROM unnest(sztp_owner_certificate) WITH ORDINALITY AS t(c, n) ORDER BY n), ','),"      \
    " sztp_conveyed_information::text,"                                                        \
    " translate(encode(sztp_signed_conveyed_info, 'base64'), E'\\n', ''), "                    \
    TS("created_at") ", " TS("updated_at") " FROM owners"

/* Every statement the service runs, prepared on each connection by name. */
const struct store_statement store_statements[] = {
    {"ping", "SELECT 1", 0},

    /* api tokens: looked up on every call, so a revocation or an expiry
     * takes effect at once; the third column says last_used_at is older
     * than a minute, and only then does token_touch write it */
    {"token_lookup",
     "SELECT name, array_to_string(scopes, ','),"
     " last_used_at IS NULL OR last_used_at < now() - interval '1 minute' FROM api_tokens"
     " WHERE token_sha256 = decode($1, 'hex') AND revoked_at IS NULL"
     " AND (expires_at IS NULL OR expires_at > now())", 1},
    {"token_touch",
     "UPDATE api_tokens SET last_used_at = now() WHERE name = $1"
     " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", 1},
    {"token_create",
     "INSERT INTO api_tokens (name, token_sha256, scopes, expires_at)"
     " VALUES ($1, decode($2, 'hex'), string_to_array($3, ','), NULLIF($4, '')::timestamptz)"
     " ON CONFLICT (name) DO NOTHING RETURNING name", 4},
    {"token_list",
     "SELECT name, array_to_string(scopes, ','), " TS("created_at") ", " TS("revoked_at") ", "
     TS("expires_at") ", " TS("last_used_at") ", expires_at <= now()"
     " FROM api_tokens ORDER BY name", 0},
    {"token_revoke",
     "UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL"
     " RETURNING name", 1},

    /* audit */
    /* appending (docs/audit.md): take the held or a free chain head, insert
     * the hashed events and move the head, in one statement
     * (migrations/0005_audit_hardening.sql) */
    {"audit_append",
     "SELECT audit_append($1::integer, $2, $3, $4::text[], $5::text[], $6, $7)", 7},
    /* benchmark builds only (meson -Dbench_unchained_audit=true): the same
     * events without head lock or hashes, to measure the chain's cost */
    {"audit_insert_unchained",
     "INSERT INTO audit_events (chain, chain_seq, at, actor, action, serial_number, owner_id,"
     " outcome, detail, prev_hash, hash) SELECT 1000000, nextval('audit_events_seq_seq'), now(),"
     " $1, $2, s, o, $3, $4, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')"
     " FROM unnest($5::text[], $6::text[]) AS t(s, o)", 6},
    {"audit_heads", "SELECT chain, chain_seq, encode(hash, 'hex') FROM audit_heads ORDER BY chain", 0},
    /* one page of a chain, in order (verification walks each chain by pages
     * inside one snapshot, in constant memory) */
    {"audit_chain_page",
     "SELECT seq, chain, chain_seq, audit_time(at), actor, action, serial_number, owner_id,"
     " outcome, detail, encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit_events"
     " WHERE chain = $1 AND chain_seq > $2 ORDER BY chain_seq LIMIT 1000", 2},
    {"audit_unchained",
     "SELECT seq FROM audit_events WHERE chain NOT IN (SELECT chain FROM audit_heads)"
     " ORDER BY seq LIMIT 1", 0},
    {"audit_checkpoint_page",
     "SELECT id, " TS("at") ", heads, translate(encode(signature, 'base64'), E'\\n', '')"
     " FROM audit_checkpoints WHERE id > $1 ORDER BY id LIMIT $2", 2},
    /* the newest stored checkpoint and its age in seconds (audit verify) */
    {"audit_checkpoint_newest",
     "SELECT id, " TS("at") ", extract(epoch FROM now() - at)::bigint FROM audit_checkpoints"
     " ORDER BY id DESC LIMIT 1", 0},
    /* the heads a chain's checkpoints recorded, in checkpoint order */
    {"audit_checkpoint_heads",
     "SELECT c.id, (e->>'chain_seq')::bigint, e->>'hash' FROM audit_checkpoints c,"
     " json_array_elements(c.heads::json->'heads') e WHERE (e->>'chain')::integer = $1"
     " AND c.id > $2 ORDER BY c.id LIMIT 500", 2},
    /* is a checkpoint due? seconds since the last one, events since then */
    {"audit_checkpoint_due",
     "SELECT pg_try_advisory_xact_lock(469853219173), " TS("now()") ","
     " (SELECT extract(epoch FROM now() - at)::bigint FROM audit_checkpoints ORDER BY id DESC LIMIT 1),"
     " (SELECT sum(chain_seq) FROM audit_heads) - coalesce((SELECT sum((e->>'chain_seq')::bigint)"
     "   FROM (SELECT heads FROM audit_checkpoints ORDER BY id DESC LIMIT 1) c,"
     "   json_array_elements(c.heads::json->'heads') e), 0)", 0},
    {"audit_checkpoint_add",
     "INSERT INTO audit_checkpoints (at, heads, signature) VALUES ($1, $2, decode($3, 'hex'))", 3},
    {"audit_list",
     "SELECT seq, chain, chain_seq, " TS("at") ", actor, action, serial_number, owner_id, outcome,"
     " detail, encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit_events"
     " WHERE seq > $1 AND ($2::text IS NULL OR serial_number = $2)"
     " AND ($3::text IS NULL OR owner_id = $3) AND ($4::text IS NULL OR action = $4)"
     " AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)"
     " ORDER BY seq LIMIT $7", 7},

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

    /* ownership: devices are locked first (FOR UPDATE, in serial order), so
     * concurrent assignments of one device queue up behind each other */
    {"owners_existing",
     "SELECT owner_id FROM owners WHERE owner_id = ANY($1::text[]) AND deleted_at IS NULL"
     " FOR KEY SHARE", 1},
    {"ownership_current",
     "SELECT serial_number, owner_id, order_ref FROM ownership"
     " WHERE serial_number = ANY($1::text[]) AND valid_until IS NULL", 1},
    /* the time of a change is read after the devices are locked: a period
     * closed by a transaction that began before the previous change committed
     * would otherwise end before it began */
    {"clock_now", "SELECT clock_timestamp()", 0},
    {"ownership_close",
     "UPDATE ownership SET valid_until = $2"
     " WHERE serial_number = ANY($1::text[]) AND valid_until IS NULL", 2},
    {"ownership_open",
     "INSERT INTO ownership (serial_number, owner_id, order_ref, valid_from)"
     " SELECT s, o, r, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS t(s, o, r)", 4},
    {"ownership_history",
     "SELECT owner_id, order_ref, " TS("valid_from") ", " TS("valid_until")
     " FROM ownership WHERE serial_number = $1 ORDER BY valid_from, id", 1},

    /* owners */
    {"owner_lock", "SELECT deleted_at IS NULL FROM owners WHERE owner_id = $1 FOR UPDATE", 1},
    {"owner_upsert",
     "INSERT INTO owners (owner_id, display_name, brski, sztp_owner_certificate,"
     " sztp_conveyed_information, sztp_signed_conveyed_info, sztp_signed_onboarding)"
     " VALUES ($1, $2, $3::json, " HEX_ARRAY("$4") ", $5::json, decode($6, 'base64'), $7::boolean)"
     " ON CONFLICT (owner_id) DO UPDATE SET display_name = EXCLUDED.display_name,"
     " brski = EXCLUDED.brski, sztp_owner_certificate = EXCLUDED.sztp_owner_certificate,"
     " sztp_conveyed_information = EXCLUDED.sztp_conveyed_information,"
     " sztp_signed_conveyed_info = EXCLUDED.sztp_signed_conveyed_info,"
     " sztp_signed_onboarding = EXCLUDED.sztp_signed_onboarding,"
     " updated_at = now(), deleted_at = NULL", 7},
    {"owner_certs_clear", "DELETE FROM owner_domain_certs WHERE owner_id = $1", 1},
    {"owner_certs_taken",
     "SELECT encode(spki_sha256, 'hex'), owner_id FROM owner_domain_certs"
     " WHERE spki_sha256 = ANY(" HEX_ARRAY("$1") ") AND owner_id <> $2", 2},
    {"owner_certs_add",
     "INSERT INTO owner_domain_certs (owner_id, cert_der, cert_sha256, spki_sha256, subject,"
     " not_after) SELECT $1, decode(d, 'hex'), decode(c, 'hex'), decode(s, 'hex'), subj,"
     " na::timestamptz FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"
     " AS t(d, c, s, subj, na)", 6},
    {"owner_get", "SELECT " OWNER_COLUMNS " WHERE owner_id = $1 AND deleted_at IS NULL", 1},
    {"owner_list",
     "SELECT " OWNER_COLUMNS " WHERE owner_id > $1 AND deleted_at IS NULL"
     " ORDER BY owner_id LIMIT $2", 2},
    {"owner_devices_count",
     "SELECT count(*) FROM ownership WHERE owner_id = $1 AND valid_until IS NULL", 1},
    {"owner_delete", "UPDATE owners SET deleted_at = now() WHERE owner_id = $1", 1},

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
    {"voucher_add",
     "INSERT INTO vouchers (serial_number, owner_id, protocol, assertion, nonce, created_on,"
     " expires_on, domain_cert_sha256, domain_id, registrar, voucher, request)"
     " VALUES ($1, $2, $3, $4, decode($5, 'hex'), to_timestamp($6::double precision),"
     " to_timestamp($7::bigint), decode($8, 'hex'), $9, $10, decode($11, 'hex'),"
     " decode($12, 'hex')) RETURNING id", 12},
    {"brski_voucher_log",
     "SELECT to_char(created_on AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
     " domain_id, translate(encode(nonce, 'base64'), E'\\n', ''), assertion FROM vouchers"
     " WHERE serial_number = $1 AND protocol = 'brski' ORDER BY id DESC LIMIT 100000", 1},

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
