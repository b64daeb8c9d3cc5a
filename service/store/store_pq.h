#ifndef MASAD_STORE_PQ_H
#define MASAD_STORE_PQ_H
/*
 * The raw statement interface: libpq results by statement name. Only store/
 * may include this header; the rest of the service calls the typed
 * functions of store/'s entity headers.
 */
#include <libpq-fe.h>

#include "store/store.h"

/* Runs the prepared statement `name` with text parameters (values may hold
 * NULL for SQL NULL). The result is freed with the arena. A lost connection
 * outside a transaction is re-established and the statement retried once. */
int store_exec(struct store_conn *c, struct arena *a, const char *name, int nparams,
               const char *const *values, PGresult **res, struct masad_error *err);

/* A PostgreSQL array literal ({"a","b",NULL}) of n strings, in `a`; NULL
 * items are SQL NULLs. For passing whole batches as one text[] parameter. */
char *store_text_array(struct arena *a, const char *const *items, size_t n);

#endif
