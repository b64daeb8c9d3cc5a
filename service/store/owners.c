/* Owners and their domain certificates. */
#include <stdio.h>
#include <string.h>

#include "common/encoding.h"
#include "store/owners.h"
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
     " VALUES ($1, $2, $3::json, " HEX_ARRAY("$4") ", $5::json, $6, $7::boolean)"
     " ON CONFLICT (owner_id) DO UPDATE SET display_name = EXCLUDED.display_name,"
     " brski = EXCLUDED.brski, sztp_owner_certificate = EXCLUDED.sztp_owner_certificate,"
     " sztp_conveyed_information = EXCLUDED.sztp_conveyed_information,"
     " sztp_signed_conveyed_info = EXCLUDED.sztp_signed_conveyed_info,"
     " sztp_signed_onboarding = EXCLUDED.sztp_signed_onboarding,"
     " updated_at = now(), deleted_at = NULL", 7},
    {"owner_certs_clear", "DELETE FROM owner_domain_certs WHERE owner_id = $1", 1},
    {"owner_certs_taken",
     "SELECT spki_sha256, owner_id FROM owner_domain_certs"
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

int store_owner_lock(struct store_conn *c, struct arena *a, const char *owner,
                     struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(owner)};
    PGresult *r;
    if (store_run(c, a, "owner_lock", 1, p, &r, err) != 0)
        return -1;
    return PQntuples(r) == 1 && row_bool(r, 0, 0);
}

/* bytea items of a text[] batch go as hex, decoded by the statement */
static const char *hex_array(struct arena *a, const unsigned char *const *items,
                             const size_t *lens, size_t n)
{
    const char **hex = arena_alloc(a, (n ? n : 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++)
        hex[i] = hex_encode(a, items[i], lens[i]);
    return store_text_array(a, hex, n);
}

int store_owner_upsert(struct store_conn *c, struct arena *a, const struct store_owner_write *o,
                       struct masad_error *err)
{
    struct store_param p[] = {
        P_TEXT(o->owner_id),
        P_TEXT(o->display_name),
        P_TEXT(o->brski),
        P_TEXT(hex_array(a, o->owner_certs, o->owner_cert_lens, o->owner_cert_count)),
        P_TEXT(o->conveyed_information),
        o->signed_conveyed ? P_BYTES(o->signed_conveyed, o->signed_conveyed_len) : P_TEXT(NULL),
        P_TEXT(o->signed_conveyed ? (o->signed_onboarding ? "true" : "false") : NULL)};
    return store_run(c, a, "owner_upsert", 7, p, NULL, err);
}

int store_owner_certs_clear(struct store_conn *c, struct arena *a, const char *owner,
                            struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(owner)};
    return store_run(c, a, "owner_certs_clear", 1, p, NULL, err);
}

int store_owner_certs_add(struct store_conn *c, struct arena *a, const char *owner,
                          const struct store_domain_cert *certs, size_t n,
                          struct masad_error *err)
{
    if (n == 0)
        return 0;
    const char **cols = arena_alloc(a, 5 * n * sizeof(char *));
    const char **der = cols, **cert_md = cols + n, **spki = cols + 2 * n, **subj = cols + 3 * n,
               **na = cols + 4 * n;
    for (size_t i = 0; i < n; i++) {
        der[i] = hex_encode(a, certs[i].der, certs[i].der_len);
        cert_md[i] = hex_encode(a, certs[i].cert_sha256, 32);
        spki[i] = hex_encode(a, certs[i].spki_sha256, 32);
        subj[i] = certs[i].subject;
        na[i] = certs[i].not_after;
    }
    struct store_param p[] = {P_TEXT(owner),
                              P_TEXT(store_text_array(a, der, n)),
                              P_TEXT(store_text_array(a, cert_md, n)),
                              P_TEXT(store_text_array(a, spki, n)),
                              P_TEXT(store_text_array(a, subj, n)),
                              P_TEXT(store_text_array(a, na, n))};
    return store_run(c, a, "owner_certs_add", 6, p, NULL, err);
}

int store_owner_certs_taken(struct store_conn *c, struct arena *a, const char *owner,
                            const unsigned char (*spki_sha256)[32], size_t n,
                            struct store_cert_taken **out, size_t *count,
                            struct masad_error *err)
{
    const char **hex = arena_alloc(a, (n ? n : 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++)
        hex[i] = hex_encode(a, spki_sha256[i], 32);
    struct store_param p[] = {P_TEXT(store_text_array(a, hex, n)), P_TEXT(owner)};
    PGresult *r;
    if (store_run(c, a, "owner_certs_taken", 2, p, &r, err) != 0)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    struct store_cert_taken *t = arena_alloc(a, (rows ? rows : 1) * sizeof(*t));
    for (int i = 0; i < (int)rows; i++) {
        size_t len = 0;
        const unsigned char *md = row_bytea(a, r, i, 0, &len);
        if (md && len == 32)
            memcpy(t[i].spki_sha256, md, 32);
        t[i].owner_id = row_text(r, i, 1);
    }
    *out = t;
    *count = rows;
    return 0;
}

/* the certificates column: base64 items joined by "," (base64 has no ",") */
static void split_certs(struct arena *a, const char *list, struct store_owner *o)
{
    size_t n = 0;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    o->owner_certs_b64 = arena_alloc(a, (n + 1) * sizeof(char *));
    o->owner_cert_count = 0;
    if (!*list)
        return;
    char *copy = arena_strdup(a, list), *save = NULL;
    for (char *b64 = strtok_r(copy, ",", &save); b64; b64 = strtok_r(NULL, ",", &save))
        o->owner_certs_b64[o->owner_cert_count++] = b64;
}

static void read_owner(struct arena *a, const PGresult *r, int i, struct store_owner *o)
{
    o->owner_id = row_text(r, i, 0);
    o->display_name = row_text(r, i, 1);
    o->brski = row_text(r, i, 2);
    split_certs(a, row_text(r, i, 3) ? row_text(r, i, 3) : "", o);
    o->conveyed_information = row_text(r, i, 4);
    o->signed_conveyed_b64 = row_text(r, i, 5);
    o->created_at = row_text(r, i, 6);
    o->updated_at = row_text(r, i, 7);
}

int store_owner_get(struct store_conn *c, struct arena *a, const char *owner,
                    struct store_owner *out, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(owner)};
    PGresult *r;
    if (store_run(c, a, "owner_get", 1, p, &r, err) != 0)
        return -1;
    if (PQntuples(r) != 1)
        return 0;
    read_owner(a, r, 0, out);
    return 1;
}

int store_owner_list(struct store_conn *c, struct arena *a, const char *after, long limit,
                     struct store_owner **out, size_t *count, struct masad_error *err)
{
    char lim[24];
    snprintf(lim, sizeof(lim), "%ld", limit);
    struct store_param p[] = {P_TEXT(after ? after : ""), P_TEXT(lim)};
    PGresult *r;
    if (store_run(c, a, "owner_list", 2, p, &r, err) != 0)
        return -1;
    size_t n = (size_t)PQntuples(r);
    struct store_owner *o = arena_alloc(a, (n ? n : 1) * sizeof(*o));
    for (int i = 0; i < (int)n; i++)
        read_owner(a, r, i, &o[i]);
    *out = o;
    *count = n;
    return 0;
}

int store_owner_devices_count(struct store_conn *c, struct arena *a, const char *owner,
                              long long *count, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(owner)};
    PGresult *r;
    if (store_run(c, a, "owner_devices_count", 1, p, &r, err) != 0)
        return -1;
    *count = row_int(r, 0, 0);
    return 0;
}

int store_owner_delete(struct store_conn *c, struct arena *a, const char *owner,
                       struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(owner)};
    return store_run(c, a, "owner_delete", 1, p, NULL, err);
}
