/* API tokens. */
#include "store/store_internal.h"
#include "store/tokens.h"

const struct store_statement store_tokens_statements[] = {
    /* api tokens: looked up on every call, so a revocation or an expiry
     * takes effect at once; the third column says last_used_at is older
     * than a minute, and only then does token_touch write it */
    {"token_lookup",
     "SELECT name, array_to_string(scopes, ','),"
     " last_used_at IS NULL OR last_used_at < now() - interval '1 minute' FROM api_tokens"
     " WHERE token_sha256 = $1 AND revoked_at IS NULL"
     " AND (expires_at IS NULL OR expires_at > now())", 1},
    {"token_touch",
     "UPDATE api_tokens SET last_used_at = now() WHERE name = $1"
     " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", 1},
    {"token_create",
     "INSERT INTO api_tokens (name, token_sha256, scopes, expires_at)"
     " VALUES ($1, $2, string_to_array($3, ','), NULLIF($4, '')::timestamptz)"
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

int store_token_lookup(struct store_conn *c, struct arena *a, const unsigned char sha256[32],
                       struct store_token_auth *out, struct masad_error *err)
{
    struct store_param p[] = {P_BYTES(sha256, 32)};
    PGresult *r;
    if (store_run(c, a, "token_lookup", 1, p, &r, err) != 0)
        return -1;
    if (PQntuples(r) != 1)
        return 0;
    out->name = row_text(r, 0, 0);
    out->scopes = row_text(r, 0, 1);
    out->touch_due = row_bool(r, 0, 2);
    return 1;
}

int store_token_touch(struct store_conn *c, struct arena *a, const char *name,
                      struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(name)};
    return store_run(c, a, "token_touch", 1, p, NULL, err);
}

int store_token_create(struct store_conn *c, struct arena *a, const char *name,
                       const unsigned char sha256[32], const char *scopes, const char *expires_at,
                       struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(name), P_BYTES(sha256, 32), P_TEXT(scopes),
                              P_TEXT(expires_at ? expires_at : "")};
    PGresult *r;
    if (store_run(c, a, "token_create", 4, p, &r, err) != 0)
        return -1;
    return PQntuples(r) == 1;
}

int store_token_revoke(struct store_conn *c, struct arena *a, const char *name,
                       struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(name)};
    PGresult *r;
    if (store_run(c, a, "token_revoke", 1, p, &r, err) != 0)
        return -1;
    return PQntuples(r) == 1;
}

int store_token_list(struct store_conn *c, struct arena *a, struct store_token **out,
                     size_t *count, struct masad_error *err)
{
    PGresult *r;
    if (store_run(c, a, "token_list", 0, NULL, &r, err) != 0)
        return -1;
    size_t n = (size_t)PQntuples(r);
    struct store_token *t = arena_alloc(a, (n ? n : 1) * sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        int row = (int)i;
        t[i] = (struct store_token){row_text(r, row, 0), row_text(r, row, 1), row_text(r, row, 2),
                                    row_text(r, row, 3), row_text(r, row, 4), row_text(r, row, 5),
                                    row_bool(r, row, 6)};
    }
    *out = t;
    *count = n;
    return 0;
}
