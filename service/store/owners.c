/* Owners and their domain certificates: statements. */
#include "store/store_internal.h"

#define OWNER_COLUMNS                                                                           \
    "owner_id, display_name, brski::text,"                                                     \
    " array_to_string(ARRAY(SELECT translate(encode(c, 'base64'), E'\\n', '')"                  \
    "   FROM unnest(sztp_owner_certificate) WITH ORDINALITY AS t(c, n) ORDER BY n), ','),"      \
    " sztp_conveyed_information::text,"                                                        \
    " translate(encode(sztp_signed_conveyed_info, 'base64'), E'\\n', ''), "                    \
    TS("created_at") ", " TS("updated_at") " FROM owners"

const struct store_statement store_owners_statements[] = {
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
    {NULL, NULL, 0},
};
