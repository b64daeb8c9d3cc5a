#ifndef MASAD_STORE_OWNERSHIP_H
#define MASAD_STORE_OWNERSHIP_H
/* Ownership periods (table ownership): who owned a device when. Callers
 * lock the devices first (store_devices_lock), so that concurrent
 * assignments of one device queue up. */
#include <stddef.h>

#include "store/store.h"

/* Those of the n owner ids that name a live owner (locked FOR KEY SHARE),
 * in no particular order. */
int store_owners_existing(struct store_conn *c, struct arena *a, const char *const *owners,
                          size_t n, const char ***out, size_t *count, struct masad_error *err);

/* A device's current period. */
struct store_ownership_current {
    const char *serial_number, *owner_id, *order_ref;   /* order_ref may be NULL */
};
/* The current periods of those of the n serials that have one, in byte
 * order of serial number (strcmp). */
int store_ownership_current(struct store_conn *c, struct arena *a, const char *const *serials,
                            size_t n, struct store_ownership_current **out, size_t *count,
                            struct masad_error *err);

/* The time of a change, read once the devices are locked: a period closed
 * by a transaction that began before the previous change committed would
 * otherwise end before it began. */
int store_clock_now(struct store_conn *c, struct arena *a, const char **at,
                    struct masad_error *err);
/* Ends the current periods of the n serials at `at`. */
int store_ownership_close(struct store_conn *c, struct arena *a, const char *const *serials,
                          size_t n, const char *at, struct masad_error *err);
/* Opens a period from `at` for each serial with its owner and order_ref
 * (refs[i] may be NULL). */
int store_ownership_open(struct store_conn *c, struct arena *a, const char *const *serials,
                         const char *const *owners, const char *const *refs, size_t n,
                         const char *at, struct masad_error *err);

/* One period; until NULL: current. */
struct store_ownership_period {
    const char *owner_id, *order_ref, *from, *until;
};
/* Every period of the device, oldest first. */
int store_ownership_history(struct store_conn *c, struct arena *a, const char *serial,
                            struct store_ownership_period **out, size_t *count,
                            struct masad_error *err);

#endif
