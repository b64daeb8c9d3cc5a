#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/encoding.h"
#include "common/log.h"
#include "common/metrics.h"
#include "store/store_internal.h"

struct store_conn {
    PGconn *pg;
    char *url;
    unsigned connect_timeout;
    unsigned statement_timeout_ms;
    bool ever_connected;
    bool in_transaction;
    unsigned long transactions;
    struct timespec last_attempt;
};

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static bool is_unavailable(const char *sqlstate)
{
    /* class 08: connection exceptions; 57P01-57P03: shutdown, crash, starting */
    return !sqlstate || !strncmp(sqlstate, "08", 2) || !strncmp(sqlstate, "57P", 3) ||
           !strcmp(sqlstate, "53300");
}

int store_error(PGconn *pg, const PGresult *res, struct masad_error *err, const char *what)
{
    const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = pg ? PQerrorMessage(pg) : "no connection";
    if (!pg || PQstatus(pg) != CONNECTION_OK || is_unavailable(sqlstate)) {
        log_warn("database unavailable in %s: %s", what, msg);
        return error_set(err, 503, "db-unavailable", "the database is unavailable");
    }
    log_error("database error in %s: %s %s", what, sqlstate ? sqlstate : "", msg);
    return error_set(err, 500, sqlstate && !strcmp(sqlstate, "23505") ? "db-unique" : "db-error",
                     "database error in %s", what);
}

static int prepare_all(struct store_conn *c, struct masad_error *err)
{
    for (const struct store_statement *const *set = store_statement_sets; *set; set++)
    for (const struct store_statement *s = *set; s->name; s++) {
        PGresult *r = PQprepare(c->pg, s->name, s->sql, s->nparams, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            store_error(c->pg, r, err, s->name);
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

static int open_connection(struct store_conn *c, struct masad_error *err)
{
    char timeout[16], options[64];
    snprintf(timeout, sizeof(timeout), "%u", c->connect_timeout);
    snprintf(options, sizeof(options), "-c statement_timeout=%u", c->statement_timeout_ms);
    const char *keys[] = {"dbname", "connect_timeout", "options", "application_name",
                          "keepalives_idle", "keepalives_interval", "keepalives_count", NULL};
    const char *values[] = {c->url, timeout, options, "masad", "10", "5", "3", NULL};
    clock_gettime(CLOCK_MONOTONIC, &c->last_attempt);
    if (c->pg)
        PQfinish(c->pg);
    c->in_transaction = false;
    c->pg = PQconnectdbParams(keys, values, 1);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        log_warn("cannot connect to the database: %s", PQerrorMessage(c->pg));
        return error_set(err, 503, "db-unavailable", "the database is unavailable");
    }
    if (prepare_all(c, err) != 0) {
        PQfinish(c->pg);
        c->pg = NULL;
        return -1;
    }
    if (c->ever_connected) {
        metrics_db_reconnect();
        log_info("database connection re-established");
    }
    c->ever_connected = true;
    return 0;
}

int store_connect(const struct store_options *o, struct store_conn **out, struct masad_error *err)
{
    struct store_conn *c = calloc(1, sizeof(*c));
    c->url = strdup(o->url);
    c->connect_timeout = o->connect_timeout ? o->connect_timeout : 3;
    c->statement_timeout_ms = o->statement_timeout_ms ? o->statement_timeout_ms : 10000;
    *out = c;
    return open_connection(c, err);
}

void store_close(struct store_conn *c)
{
    if (!c)
        return;
    if (c->pg)
        PQfinish(c->pg);
    free(c->url);
    free(c);
}

int store_ensure(struct store_conn *c, struct masad_error *err)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK)
        return 0;
    if (seconds_since(&c->last_attempt) < 1.0)
        return error_set(err, 503, "db-unavailable", "the database is unavailable");
    return open_connection(c, err);
}

static void clear_result(void *r) { PQclear(r); }

#define PARAMS_MAX 16

static PGresult *run(struct store_conn *c, const char *name, int nparams,
                     const struct store_param *params)
{
    const char *values[PARAMS_MAX];
    int lengths[PARAMS_MAX], formats[PARAMS_MAX];
    for (int i = 0; i < nparams; i++) {
        values[i] = params[i].value;
        lengths[i] = params[i].len < 0 ? 0 : params[i].len;
        formats[i] = params[i].len >= 0;
    }
    return PQexecPrepared(c->pg, name, nparams, values, lengths, formats, 0);
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

int store_run(struct store_conn *c, struct arena *a, const char *name, int nparams,
              const struct store_param *values, PGresult **res, struct masad_error *err)
{
    if (nparams > PARAMS_MAX)
        return error_set(err, 500, "db-error", "statement %s has too many parameters", name);
    if (store_ensure(c, err) != 0)
        return -1;
    PGresult *r = run(c, name, nparams, values);
    if (!result_ok(r) && PQstatus(c->pg) != CONNECTION_OK && !c->in_transaction) {
        /* the server went away since the last statement (a restart): one
         * fresh connection, one retry; nothing was half done */
        PQclear(r);
        r = NULL;
        c->last_attempt.tv_sec = 0;
        if (open_connection(c, err) != 0)
            return -1;
        r = run(c, name, nparams, values);
    }
    if (!result_ok(r)) {
        store_error(c->pg, r, err, name);
        PQclear(r);
        return -1;
    }
    arena_defer(a, clear_result, r);
    if (res)
        *res = r;
    return 0;
}

int store_exec(struct store_conn *c, struct arena *a, const char *name, int nparams,
               const char *const *values, PGresult **res, struct masad_error *err)
{
    struct store_param params[PARAMS_MAX];
    for (int i = 0; i < nparams && i < PARAMS_MAX; i++)
        params[i] = P_TEXT(values[i]);
    return store_run(c, a, name, nparams, params, res, err);
}

long long row_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

unsigned char *row_bytea(struct arena *a, const PGresult *r, int row, int col, size_t *len)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    const char *v = PQgetvalue(r, row, col);
    if (strncmp(v, "\\x", 2) != 0)
        return NULL; /* bytea_output is hex, PostgreSQL's default since 9.0 */
    return hex_decode(a, v + 2, len);
}

static int simple(struct store_conn *c, const char *sql, struct masad_error *err)
{
    PGresult *r = PQexec(c->pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        store_error(c->pg, r, err, sql);
    PQclear(r);
    return ok ? 0 : -1;
}

int store_begin(struct store_conn *c, struct masad_error *err)
{
    if (store_ensure(c, err) != 0)
        return -1;
    if (simple(c, "BEGIN", err) != 0) {
        /* a restart since the last use: the statement failed, nothing begun */
        if (PQstatus(c->pg) == CONNECTION_OK)
            return -1;
        c->last_attempt.tv_sec = 0;
        if (open_connection(c, err) != 0 || simple(c, "BEGIN", err) != 0)
            return -1;
    }
    c->in_transaction = true;
    c->transactions++;
    return 0;
}

unsigned long store_transaction(const struct store_conn *c)
{
    return c->in_transaction ? c->transactions : 0;
}

int store_begin_snapshot(struct store_conn *c, struct masad_error *err)
{
    if (store_ensure(c, err) != 0 ||
        simple(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) != 0)
        return -1;
    c->in_transaction = true;
    return 0;
}

int store_commit(struct store_conn *c, struct masad_error *err)
{
    c->in_transaction = false;
    return simple(c, "COMMIT", err);
}

void store_rollback(struct store_conn *c)
{
    if (c->in_transaction && c->pg && PQstatus(c->pg) == CONNECTION_OK)
        PQclear(PQexec(c->pg, "ROLLBACK"));
    c->in_transaction = false;
}

bool store_connected(const struct store_conn *c)
{
    return c && c->pg && PQstatus(c->pg) == CONNECTION_OK;
}

int store_ping(struct store_conn *c, struct masad_error *err)
{
    if (store_ensure(c, err) != 0)
        return -1;
    PGresult *r = run(c, "ping", 0, NULL);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        store_error(c->pg, r, err, "ping");
    PQclear(r);
    return ok ? 0 : -1;
}

int store_check_schema(const char *url, struct masad_error *err)
{
    struct migration *m;
    size_t count;
    if (migrations_load(NULL, &m, &count, err) != 0)
        return -1;
    PGconn *pg = PQconnectdb(url);
    PGresult *r = NULL;
    int rc = 0;
    /* at start the operator needs libpq's own reason (host, port, role),
     * which a query on the failed connection would replace */
    if (PQstatus(pg) != CONNECTION_OK) {
        char why[400];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
        for (char *p = why; *p; p++)
            *p = *p == '\n' || *p == '\t' ? ' ' : *p;
        for (size_t n = strlen(why); n > 0 && why[n - 1] == ' '; n--)
            why[n - 1] = '\0';
        rc = error_set(err, 503, "db-unavailable", "cannot connect to the database: %s", why);
    } else if (PQresultStatus(r = PQexec(pg, "SELECT version FROM schema_migrations")) !=
               PGRES_TUPLES_OK) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (st && !strcmp(st, "42P01"))
            rc = error_set(err, 500, "schema", "the database has no masad schema: run `masad migrate`");
        else
            rc = store_error(pg, r, err, "schema check");
    }
    for (size_t i = 0; rc == 0 && i < count; i++) {
        bool found = false;
        for (int row = 0; row < PQntuples(r) && !found; row++)
            found = atoi(PQgetvalue(r, row, 0)) == m[i].version;
        if (!found)
            rc = error_set(err, 500, "schema",
                           "the database schema is older than this masad: migration %s is not "
                           "applied; run `masad migrate`", m[i].name);
    }
    PQclear(r);
    PQfinish(pg);
    migrations_free(m, count);
    return rc;
}

char *store_text_array(struct arena *a, const char *const *items, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += items[i] ? 2 * strlen(items[i]) + 3 : 5;
    char *out = arena_alloc(a, len), *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        if (!items[i]) {
            memcpy(p, "NULL", 4);
            p += 4;
            continue;
        }
        *p++ = '"';
        for (const char *s = items[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                *p++ = '\\';
            *p++ = *s;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = 0;
    return out;
}
