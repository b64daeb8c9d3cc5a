/* BRSKI (service/brski/): statements and typed reads. */
#include <stdio.h>
#include <string.h>

#include "store/brski.h"
#include "store/store_internal.h"

#define DOMAIN_COLUMNS                                                                             \
    "SELECT c.owner_id, c.cert_der, c.spki_sha256, c.cert_sha256, o.brski_registrar_auth,"        \
    " o.brski_pinning FROM owner_domain_certs c JOIN owners o USING (owner_id)"                    \
    " WHERE o.deleted_at IS NULL"

const struct store_statement store_brski_statements[] = {
    /* $1: the SPKI digests, 32 bytes each, one after another */
    {"brski_domain_by_spki",
     DOMAIN_COLUMNS " AND c.spki_sha256 IN (SELECT substring($1::bytea FROM 32 * g + 1 FOR 32)"
     " FROM generate_series(0, length($1::bytea) / 32 - 1) g)", 1},
    {"brski_domain_by_subject", DOMAIN_COLUMNS " AND c.subject = $1", 1},
    {"brski_owned_ever",
     "SELECT 1 FROM ownership WHERE serial_number = $1 AND owner_id = $2 LIMIT 1", 2},
    {"brski_voucher_log",
     "SELECT to_char(created_on AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
     " domain_id, translate(encode(nonce, 'base64'), E'\\n', ''), assertion FROM vouchers"
     " WHERE serial_number = $1 AND protocol = 'brski' ORDER BY id DESC LIMIT 100000", 1},
    /* the voucher path's one read (docs/brski.md, How a request is
     * processed): device, current owner and ownership stamp, last voucher,
     * and the domain certificates by SPKI ($2) or, when none matches, by
     * subject ($3); one row per certificate, at least one */
    {"brski_facts",
     "WITH dev AS (SELECT d.serial_number, o.owner_id FROM devices d LEFT JOIN ownership o"
     " ON o.serial_number = d.serial_number AND o.valid_until IS NULL WHERE d.serial_number = $1),"
     " last AS (SELECT v.owner_id, v.assertion, v.domain_cert_sha256, EXISTS (SELECT 1"
     " FROM ownership o WHERE o.serial_number = v.serial_number"
     " AND (o.valid_from > v.created_on OR o.valid_until > v.created_on)) AS changed"
     " FROM vouchers v WHERE v.serial_number = $1 AND v.protocol = 'brski'"
     " ORDER BY v.id DESC LIMIT 1),"
     " spki AS (" DOMAIN_COLUMNS " AND c.spki_sha256 IN (SELECT substring($2::bytea"
     " FROM 32 * g + 1 FOR 32) FROM generate_series(0, length($2::bytea) / 32 - 1) g)),"
     " dom AS (SELECT *, true FROM spki UNION ALL SELECT *, false FROM (" DOMAIN_COLUMNS
     " AND c.subject = $3) s WHERE NOT EXISTS (SELECT 1 FROM spki))"
     " SELECT dev.serial_number IS NOT NULL, dev.owner_id, brski_ownership_stamp($1),"
     " last.owner_id, last.assertion, last.domain_cert_sha256, last.changed, dom.*"
     " FROM (SELECT 1) one LEFT JOIN dev ON true LEFT JOIN last ON true LEFT JOIN dom ON true", 3},
    /* migrations/0010_brski_voucher_path.sql */
    {"brski_voucher_record",
     "SELECT brski_voucher_record($1, $2, $3, $4, $5, $6::double precision, $7::bigint, $8, $9,"
     " $10, $11, $12, $13, $14, $15::boolean)", 15},
    {NULL, NULL, 0},
};

/* A 32-byte digest column into out; false when it is not one. */
static bool digest(struct arena *a, const PGresult *r, int row, int col, unsigned char out[32])
{
    size_t len;
    const unsigned char *d = row_bytea(a, r, row, col, &len);
    if (!d || len != 32)
        return false;
    memcpy(out, d, 32);
    return true;
}

/* The DOMAIN_COLUMNS of row i, from column k on. */
static int domain_row(struct arena *a, const PGresult *r, int i, int k,
                      struct store_brski_domain_cert *d, struct masad_error *err)
{
    d->owner = row_text(r, i, k);
    d->der = row_bytea(a, r, i, k + 1, &d->der_len);
    d->registrar_auth = row_text(r, i, k + 4);
    d->pin_registrar = !strcmp(row_text(r, i, k + 5), "registrar-ee");
    if (!d->der || !digest(a, r, i, k + 2, d->spki_sha256) || !digest(a, r, i, k + 3, d->cert_sha256))
        return error_set(err, 500, "db-error", "a domain certificate row is malformed");
    return 0;
}

static int domain_rows(struct arena *a, PGresult *r, struct store_brski_domain_cert **rows,
                       size_t *count, struct masad_error *err)
{
    int n = PQntuples(r);
    *rows = arena_alloc(a, (size_t)(n ? n : 1) * sizeof(**rows));
    *count = (size_t)n;
    for (int i = 0; i < n; i++)
        if (domain_row(a, r, i, 0, &(*rows)[i], err) != 0)
            return -1;
    return 0;
}

int store_brski_domains_by_spki(struct store_conn *c, struct arena *a,
                                const unsigned char (*spki)[32], size_t n,
                                struct store_brski_domain_cert **rows, size_t *count,
                                struct masad_error *err)
{
    struct store_param p[] = {P_BYTES(spki, n * 32)};
    PGresult *r;
    if (store_run(c, a, "brski_domain_by_spki", 1, p, &r, err) != 0)
        return -1;
    return domain_rows(a, r, rows, count, err);
}

int store_brski_domains_by_subject(struct store_conn *c, struct arena *a, const char *subject,
                                   struct store_brski_domain_cert **rows, size_t *count,
                                   struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(subject)};
    PGresult *r;
    if (store_run(c, a, "brski_domain_by_subject", 1, p, &r, err) != 0)
        return -1;
    return domain_rows(a, r, rows, count, err);
}

int store_brski_owned_ever(struct store_conn *c, struct arena *a, const char *serial,
                           const char *owner, bool *out, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(serial), P_TEXT(owner)};
    PGresult *r;
    if (store_run(c, a, "brski_owned_ever", 2, p, &r, err) != 0)
        return -1;
    *out = PQntuples(r) == 1;
    return 0;
}

int store_brski_voucher_log(struct store_conn *c, struct arena *a, const char *serial,
                            struct store_brski_log_row **rows, size_t *count,
                            struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(serial)};
    PGresult *r;
    if (store_run(c, a, "brski_voucher_log", 1, p, &r, err) != 0)
        return -1;
    int n = PQntuples(r);
    *rows = arena_alloc(a, (size_t)(n ? n : 1) * sizeof(**rows));
    *count = (size_t)n;
    for (int i = 0; i < n; i++) {
        const char *domain_id = row_text(r, i, 1);
        (*rows)[i] = (struct store_brski_log_row){row_text(r, i, 0), domain_id ? domain_id : "",
                                                  row_text(r, i, 2), row_text(r, i, 3)};
    }
    return 0;
}

int store_brski_facts(struct store_conn *c, struct arena *a, const char *serial,
                      const unsigned char (*spki)[32], size_t n, const char *issuer,
                      struct store_brski_facts *out, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(serial), P_BYTES(spki, n * 32), P_TEXT(issuer)};
    PGresult *r;
    memset(out, 0, sizeof(*out));
    if (store_run(c, a, "brski_facts", 3, p, &r, err) != 0)
        return -1;
    int rows = PQntuples(r);
    out->device_known = rows > 0 && row_bool(r, 0, 0);
    out->owner = rows > 0 ? row_text(r, 0, 1) : NULL;
    out->ownership_stamp = rows > 0 ? row_text(r, 0, 2) : NULL;
    if (rows > 0 && !PQgetisnull(r, 0, 4)) {
        out->last.owner = row_text(r, 0, 3);
        out->last.assertion = row_text(r, 0, 4);
        out->last.found = digest(a, r, 0, 5, out->last.domain_cert_sha256);
        out->last.ownership_changed_since = row_bool(r, 0, 6);
    }
    out->domains = arena_alloc(a, (size_t)(rows ? rows : 1) * sizeof(*out->domains));
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(r, i, 7))
            continue;
        struct store_brski_domain_cert d;
        if (domain_row(a, r, i, 7, &d, err) != 0)
            return -1;
        out->by_spki = row_bool(r, i, 13);
        out->domains[out->domain_count++] = d;
    }
    return 0;
}

int store_brski_voucher_record(struct store_conn *c, struct arena *a,
                               const struct store_voucher *v, const char *stamp,
                               const char *actor, const char *detail, bool *recorded,
                               struct masad_error *err)
{
    char created[48], expires[24];
    snprintf(created, sizeof(created), "%lld.%06ld", (long long)v->created_on.tv_sec,
             v->created_on.tv_nsec / 1000);
    snprintf(expires, sizeof(expires), "%lld", (long long)v->expires_on);
#ifdef MASAD_BENCH_UNCHAINED_AUDIT
    const char *chained = "false";
#else
    const char *chained = "true";
#endif
    struct store_param p[] = {
        P_TEXT(stamp), P_TEXT(v->serial), P_TEXT(v->owner), P_TEXT(v->assertion),
        v->nonce ? P_BYTES(v->nonce, v->nonce_len) : P_TEXT(NULL), P_TEXT(created),
        P_TEXT(v->expires_on ? expires : NULL), P_BYTES(v->domain_cert_sha256, 32),
        P_TEXT(v->domain_id), P_TEXT(v->registrar), P_BYTES(v->voucher, v->voucher_len),
        v->request ? P_BYTES(v->request, v->request_len) : P_TEXT(NULL), P_TEXT(actor),
        P_TEXT(detail), P_TEXT(chained)};
    PGresult *r;
    if (store_run(c, a, "brski_voucher_record", 15, p, &r, err) != 0)
        return -1;
    *recorded = !PQgetisnull(r, 0, 0);
    return 0;
}
