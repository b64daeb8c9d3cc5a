/* Ownership periods. */
#include "store/ownership.h"
#include "store/store_internal.h"

const struct store_statement store_ownership_statements[] = {
    /* ownership: devices are locked first (FOR UPDATE, in serial order), so
     * concurrent assignments of one device queue up behind each other */
    {"owners_existing",
     "SELECT owner_id FROM owners WHERE owner_id = ANY($1::text[]) AND deleted_at IS NULL"
     " FOR KEY SHARE", 1},
    {"ownership_current",
     "SELECT serial_number, owner_id, order_ref FROM ownership"
     " WHERE serial_number = ANY($1::text[]) AND valid_until IS NULL"
     /* in byte order, as admin/ownership.c matches them to the sorted batch */
     " ORDER BY serial_number COLLATE \"C\"", 1},
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
    {NULL, NULL, 0},
};

int store_owners_existing(struct store_conn *c, struct arena *a, const char *const *owners,
                          size_t n, const char ***out, size_t *count, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(store_text_array(a, owners, n))};
    PGresult *r;
    if (store_run(c, a, "owners_existing", 1, p, &r, err) != 0)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    const char **ids = arena_alloc(a, (rows ? rows : 1) * sizeof(char *));
    for (int i = 0; i < (int)rows; i++)
        ids[i] = row_text(r, i, 0);
    *out = ids;
    *count = rows;
    return 0;
}

int store_ownership_current(struct store_conn *c, struct arena *a, const char *const *serials,
                            size_t n, struct store_ownership_current **out, size_t *count,
                            struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(store_text_array(a, serials, n))};
    PGresult *r;
    if (store_run(c, a, "ownership_current", 1, p, &r, err) != 0)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    struct store_ownership_current *o = arena_alloc(a, (rows ? rows : 1) * sizeof(*o));
    for (int i = 0; i < (int)rows; i++)
        o[i] = (struct store_ownership_current){row_text(r, i, 0), row_text(r, i, 1),
                                                row_text(r, i, 2)};
    *out = o;
    *count = rows;
    return 0;
}

int store_clock_now(struct store_conn *c, struct arena *a, const char **at,
                    struct masad_error *err)
{
    PGresult *r;
    if (store_run(c, a, "clock_now", 0, NULL, &r, err) != 0)
        return -1;
    *at = row_text(r, 0, 0);
    return 0;
}

int store_ownership_close(struct store_conn *c, struct arena *a, const char *const *serials,
                          size_t n, const char *at, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(store_text_array(a, serials, n)), P_TEXT(at)};
    return store_run(c, a, "ownership_close", 2, p, NULL, err);
}

int store_ownership_open(struct store_conn *c, struct arena *a, const char *const *serials,
                         const char *const *owners, const char *const *refs, size_t n,
                         const char *at, struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(store_text_array(a, serials, n)),
                              P_TEXT(store_text_array(a, owners, n)),
                              P_TEXT(store_text_array(a, refs, n)), P_TEXT(at)};
    return store_run(c, a, "ownership_open", 4, p, NULL, err);
}

int store_ownership_history(struct store_conn *c, struct arena *a, const char *serial,
                            struct store_ownership_period **out, size_t *count,
                            struct masad_error *err)
{
    struct store_param p[] = {P_TEXT(serial)};
    PGresult *r;
    if (store_run(c, a, "ownership_history", 1, p, &r, err) != 0)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    struct store_ownership_period *o = arena_alloc(a, (rows ? rows : 1) * sizeof(*o));
    for (int i = 0; i < (int)rows; i++)
        o[i] = (struct store_ownership_period){row_text(r, i, 0), row_text(r, i, 1),
                                               row_text(r, i, 2), row_text(r, i, 3)};
    *out = o;
    *count = rows;
    return 0;
}
