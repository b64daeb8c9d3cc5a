#ifndef MASAD_STORE_INTERNAL_H
#define MASAD_STORE_INTERNAL_H
/* Folder-private to store/. */
#include "store/store.h"

struct store_statement {
    const char *name;
    const char *sql;
    int nparams;
};

extern const struct store_statement store_statements[];

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
