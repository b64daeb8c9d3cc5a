#ifndef MASAD_STORE_INTERNAL_H
#define MASAD_STORE_INTERNAL_H
/* Folder-private to store/: libpq, SQL text, hex and array literals and
 * column positions stay behind this header. */
#include <libpq-fe.h>

#include "store/store.h"

/* RFC 3339 UTC with Z, as docs/management-api.md's timestamps */
#define TS(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define HEX_ARRAY(p) "ARRAY(SELECT decode(x, 'hex') FROM unnest(" p "::text[]) WITH ORDINALITY AS t(x, n) ORDER BY n)"

struct store_statement {
    const char *name;
    const char *sql;
    int nparams;
};

/* The statement tables, one per entity file, NULL-terminated (queries.c). */
extern const struct store_statement *const store_statement_sets[];
extern const struct store_statement store_tokens_statements[], store_audit_statements[],
    store_devices_statements[], store_ownership_statements[], store_owners_statements[],
    store_brski_statements[], store_vouchers_statements[], store_sztp_statements[];

/* Runs the prepared statement `name` with text parameters (values may hold
 * NULL for SQL NULL). The result is freed with the arena. A lost connection
 * outside a transaction is re-established and the statement retried once. */
int store_exec(struct store_conn *c, struct arena *a, const char *name, int nparams,
               const char *const *values, PGresult **res, struct masad_error *err);

/* A PostgreSQL array literal ({"a","b",NULL}) of n strings, in `a`; NULL
 * items are SQL NULLs. For passing whole batches as one text[] parameter. */
char *store_text_array(struct arena *a, const char *const *items, size_t n);

/* The statement of that name, or NULL. */
const struct store_statement *store_statement_find(const char *name);

/* A parameter of store_run: text (len < 0, NUL-terminated; NULL is SQL
 * NULL) or binary bytes (len >= 0, e.g. a bytea sent as it is, without
 * hex). */
struct store_param {
    const void *value;
    int len;
};
#define P_TEXT(s) ((struct store_param){(s), -1})
#define P_BYTES(p, n) ((struct store_param){(p), (int)(n)})

/* As store_exec, with parameters that may be binary. */
int store_run(struct store_conn *c, struct arena *a, const char *name, int nparams,
              const struct store_param *params, PGresult **res, struct masad_error *err);

/* Reading a text-format result. row_text: NULL for SQL NULL; the text lives
 * as long as the result (until the arena is reset). */
static inline const char *row_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}
static inline bool row_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}
long long row_int(const PGresult *r, int row, int col);
/* A bytea column (text format, "\x..." hex) as bytes in `a`; NULL for SQL NULL. */
unsigned char *row_bytea(struct arena *a, const PGresult *r, int row, int col, size_t *len);

struct migration {
    int version;
    char *name;       /* "0001_init.sql" */
    char *sql;
    char checksum[65];/* hex SHA-256 of the file */
};

/* Loads migrations from dir, or the embedded ones when dir is NULL, sorted
 * by version; refuses badly named files and duplicate versions. */
int migrations_load(const char *dir, struct migration **out, size_t *count, struct masad_error *err);
void migrations_free(struct migration *m, size_t count);

/* Converts a failed libpq result into err: 503 for a lost or refusing
 * server, 500 otherwise. */
int store_error(PGconn *pg, const PGresult *res, struct masad_error *err, const char *what);

#endif
