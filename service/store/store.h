#ifndef MASAD_STORE_H
#define MASAD_STORE_H
/*
 * store/: PostgreSQL. A store_conn is one connection owned by one thread;
 * its statements are prepared by name when it connects. A lost connection
 * is re-established by store_ensure() (at most once a second), so after a
 * database restart the service recovers by itself; meanwhile callers get
 * 503 errors, never a hang longer than the connect timeout.
 *
 * SQL lives only here: as named prepared statements (queries.c) and in the
 * migrations (migrate.c runs migrations/NNNN_name.sql, carried in the binary).
 */
#include <stdbool.h>
#include <stdio.h>

#include "common/arena.h"
#include "common/error.h"

struct store_conn;

struct store_options {
    const char *url;               /* libpq connection URI */
    unsigned connect_timeout;      /* seconds */
    unsigned statement_timeout_ms;
};

/* Connects and prepares every statement; on failure *out is still a usable
 * handle that store_ensure() will retry, and -1 is returned. */
int store_connect(const struct store_options *o, struct store_conn **out, struct masad_error *err);
void store_close(struct store_conn *c);

/* 0 when the connection is usable, reconnecting if it was lost. */
int store_ensure(struct store_conn *c, struct masad_error *err);
/* Whether the connection was up when last used (no round trip). */
bool store_connected(const struct store_conn *c);
/* A round trip to the server. */
int store_ping(struct store_conn *c, struct masad_error *err);

int store_begin(struct store_conn *c, struct masad_error *err);
int store_commit(struct store_conn *c, struct masad_error *err);
/* Numbers the transactions of a connection (begun with store_begin), so that
 * a caller can tell whether it is still in the one it saw; 0 outside one. */
unsigned long store_transaction(const struct store_conn *c);

/* A read-only transaction that sees one snapshot throughout (REPEATABLE READ). */
int store_begin_snapshot(struct store_conn *c, struct masad_error *err);
void store_rollback(struct store_conn *c);

/* Refuses (naming what is missing) when the database at url lacks a
 * migration that this binary carries. Newer schemas (applied by a newer
 * release) pass. Uses a connection of its own, without the prepared
 * statements (they need the schema). */
int store_check_schema(const char *url, struct masad_error *err);

/* Applies migrations in order, each once in its own transaction, recording
 * version and SHA-256; refuses an applied migration whose text changed.
 * dir NULL: the migrations carried in the binary. Progress goes to out. */
int store_migrate(const char *url, const char *dir, FILE *out, struct masad_error *err);

#endif
