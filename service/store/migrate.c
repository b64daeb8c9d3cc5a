#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "common/encoding.h"
#include "common/embedded.h"
#include "store/store_internal.h"

/* Different from any lock an application would take: "masad" in ASCII. */
#define MIGRATION_LOCK "SELECT pg_advisory_lock(469853219172)"
#define MIGRATION_UNLOCK "SELECT pg_advisory_unlock(469853219172)"

/* NNNN_name.sql: four digits, an underscore, lower-case words. */
static int parse_name(const char *name, int *version)
{
    size_t n = strlen(name);
    if (n < 10 || strcmp(name + n - 4, ".sql") != 0 || name[4] != '_')
        return -1;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)name[i]))
            return -1;
    for (size_t i = 5; i < n - 4; i++)
        if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) && name[i] != '_')
            return -1;
    *version = atoi(name);
    return 0;
}

static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (cap - n < 4096) {
            cap = cap * 2 + 4096;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int add(struct migration **m, size_t *count, const char *name, char *sql, size_t len,
               struct masad_error *err)
{
    int version;
    if (parse_name(name, &version) != 0) {
        free(sql);
        return error_set(err, 500, "migration", "%s: a migration is named NNNN_name.sql", name);
    }
    for (size_t i = 0; i < *count; i++)
        if ((*m)[i].version == version) {
            free(sql);
            return error_set(err, 500, "migration", "%s and %s have the same version", name,
                             (*m)[i].name);
        }
    *m = realloc(*m, (*count + 1) * sizeof(**m));
    struct migration *e = &(*m)[(*count)++];
    e->version = version;
    e->name = strdup(name);
    e->sql = sql;
    sha256_hex_to(sql, len, e->checksum);
    return 0;
}

static int by_version(const void *a, const void *b)
{
    return ((const struct migration *)a)->version - ((const struct migration *)b)->version;
}

static int load_dir(const char *dir, struct migration **m, size_t *count, struct masad_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return error_set(err, 500, "migration", "%s: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 4, ".sql") != 0)
            continue;
        char path[4096];
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        char *sql = read_whole(path, &len);
        rc = sql ? add(m, count, de->d_name, sql, len, err)
                 : error_set(err, 500, "migration", "%s: cannot be read", path);
    }
    closedir(d);
    return rc;
}

int migrations_load(const char *dir, struct migration **out, size_t *count,
                    struct masad_error *err)
{
    struct migration *m = NULL;
    size_t n = 0;
    int rc = 0;
    if (dir)
        rc = load_dir(dir, &m, &n, err);
    for (size_t i = 0; !dir && rc == 0 && i < embedded_migrations_count; i++)
        rc = add(&m, &n, embedded_migrations[i].name,
                 strndup((const char *)embedded_migrations[i].data, embedded_migrations[i].len),
                 embedded_migrations[i].len, err);
    if (rc != 0) {
        migrations_free(m, n);
        return -1;
    }
    if (n)
        qsort(m, n, sizeof(*m), by_version);
    *out = m;
    *count = n;
    return 0;
}

void migrations_free(struct migration *m, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(m[i].name);
        free(m[i].sql);
    }
    free(m);
}

static int exec_ok(PGconn *pg, const char *sql, struct masad_error *err, const char *what)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        error_set(err, 500, "migration", "%s: %s", what, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

static int apply_one(PGconn *pg, const struct migration *m, FILE *out, struct masad_error *err)
{
    if (exec_ok(pg, "BEGIN", err, m->name) != 0)
        return -1;
    if (exec_ok(pg, m->sql, err, m->name) != 0) {
        PQclear(PQexec(pg, "ROLLBACK"));
        return -1;
    }
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name, m->checksum};
    PGresult *r = PQexecParams(pg,
                               "INSERT INTO schema_migrations (version, name, checksum) "
                               "VALUES ($1, $2, $3)", 3, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        error_set(err, 500, "migration", "%s: %s", m->name, PQresultErrorMessage(r));
    PQclear(r);
    if (!ok || exec_ok(pg, "COMMIT", err, m->name) != 0) {
        PQclear(PQexec(pg, "ROLLBACK"));
        return -1;
    }
    fprintf(out, "applied %s\n", m->name);
    return 0;
}

/* An applied migration must be the very file that was applied. */
static int check_applied(const struct migration *m, PGresult *applied, bool *done,
                         struct masad_error *err)
{
    *done = false;
    for (int row = 0; row < PQntuples(applied); row++) {
        if (atoi(PQgetvalue(applied, row, 0)) != m->version)
            continue;
        *done = true;
        if (strcmp(PQgetvalue(applied, row, 1), m->checksum) != 0)
            return error_set(err, 500, "migration",
                             "migration %s was changed after it was applied (recorded SHA-256 "
                             "%.12s…, file %.12s…): restore it and put the change in a new "
                             "migration", m->name, PQgetvalue(applied, row, 1), m->checksum);
    }
    return 0;
}

static int migrate_locked(PGconn *pg, const struct migration *m, size_t count, FILE *out,
                          struct masad_error *err)
{
    if (exec_ok(pg,
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                err, "schema_migrations") != 0)
        return -1;
    PGresult *applied = PQexec(pg, "SELECT version, checksum FROM schema_migrations");
    if (PQresultStatus(applied) != PGRES_TUPLES_OK) {
        error_set(err, 500, "migration", "%s", PQresultErrorMessage(applied));
        PQclear(applied);
        return -1;
    }
    int rc = 0;
    size_t newly = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        bool done;
        rc = check_applied(&m[i], applied, &done, err);
        if (rc == 0 && !done) {
            rc = apply_one(pg, &m[i], out, err);
            newly++;
        }
    }
    PQclear(applied);
    if (rc == 0)
        fprintf(out, newly ? "schema up to date (%zu applied now)\n" : "schema up to date (nothing to apply)\n", newly);
    return rc;
}

int store_migrate(const char *url, const char *dir, FILE *out, struct masad_error *err)
{
    struct migration *m;
    size_t count;
    if (migrations_load(dir, &m, &count, err) != 0)
        return -1;
    PGconn *pg = PQconnectdb(url);
    int rc = -1;
    if (PQstatus(pg) != CONNECTION_OK)
        error_set(err, 503, "db-unavailable", "cannot connect: %s", PQerrorMessage(pg));
    else if (exec_ok(pg, "SET client_min_messages = warning", err, "session") == 0 &&
             exec_ok(pg, MIGRATION_LOCK, err, "lock") == 0) {
        /* one migrator at a time, whichever replica or job runs it */
        rc = migrate_locked(pg, m, count, out, err);
        PQclear(PQexec(pg, MIGRATION_UNLOCK));
    }
    PQfinish(pg);
    migrations_free(m, count);
    return rc;
}
