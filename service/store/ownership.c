/* Ownership periods: statements. */
#include "store/store_internal.h"

const struct store_statement store_ownership_statements[] = {
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
    {NULL, NULL, 0},
};
