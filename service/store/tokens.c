/* API tokens: statements. */
#include "store/store_internal.h"

const struct store_statement store_tokens_statements[] = {
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
    {NULL, NULL, 0},
};
