#!/bin/bash
# PostgreSQL for the compose stack. On an empty data volume: initdb, then the
# roles of docs/operations.md ("Database"), each with a password:
#   masad_owner    LOGIN, owns the database and its schema (masad migrate)
#   masad_runtime  NOLOGIN group that the migrations grant to
#   masad_app      LOGIN, member of masad_runtime (masad serve)
# and the event triggers of deploy/dev/audit-guard.sql in database masad.
# Then runs the server in the foreground, reachable from the compose network
# with passwords (scram-sha-256). Environment (required on the first start):
#   MASAD_OWNER_DB_PASSWORD, MASAD_APP_DB_PASSWORD
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
say() { printf 'postgres-entrypoint: %s\n' "$*" >&2; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${MASAD_OWNER_DB_PASSWORD:?is required to initialise the database}"
    : "${MASAD_APP_DB_PASSWORD:?is required to initialise the database}"
    say "initialising $PGDATA"
    # the superuser has no password: it logs in over the local socket only (peer)
    initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 --no-instructions >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<'EOF'
# compose stack (postgres-entrypoint.sh)
listen_addresses = '*'
password_encryption = scram-sha-256
max_connections = 200
log_min_messages = warning
EOF
    echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
    sock=$(mktemp -d)
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k $sock" start >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -U postgres -d postgres \
        -v owner_pw="$MASAD_OWNER_DB_PASSWORD" -v app_pw="$MASAD_APP_DB_PASSWORD" <<'SQL'
SET client_min_messages = warning;
CREATE ROLE masad_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE masad_runtime NOLOGIN;
CREATE ROLE masad_app LOGIN PASSWORD :'app_pw' IN ROLE masad_runtime;
CREATE DATABASE masad OWNER masad_owner;
\c masad
ALTER SCHEMA public OWNER TO masad_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
    # the append-only triggers out of the schema owner's reach (docs/audit.md)
    psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -U postgres -d masad \
        -f /usr/local/share/masad/audit-guard.sql
    pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
    rmdir "$sock"
    say "database masad with roles masad_owner, masad_runtime, masad_app"
fi
exec postgres -D "$PGDATA"
