#!/usr/bin/env bash
# A private PostgreSQL cluster for masad development and tests, reachable only
# over a unix socket (listen_addresses='', no TCP).
#
# Usage: postgres.sh init|start|stop|status|url|destroy DIR [PORT]
#
#   init     create the cluster (initdb) if needed, start it, create the roles
#            masad_owner (LOGIN, schema owner), masad_runtime (NOLOGIN group),
#            masad_app (LOGIN, member of masad_runtime) and the database masad
#            (owner masad_owner, which also owns its schema public), and in it
#            the event triggers of audit-guard.sql (beside this script) that
#            keep the audit log's triggers in place; then print the url
#            lines.  Idempotent: an existing cluster is reused.
#   start    start the cluster (no-op when running)
#   stop     stop it (fast shutdown; no-op when stopped)
#   status   exit 0 when running, 3 when not
#   url      print, for eval (not exported):
#              MASAD_DATABASE_URL='postgresql:///masad?host=SOCK&port=PORT&user=masad_app'
#              MASAD_MIGRATE_DATABASE_URL='...user=masad_owner'
#              MASAD_ADMIN_DATABASE_URL='postgresql:///postgres?...&user=postgres'
#   destroy  stop the cluster and delete its files (not in the usage line of
#            the brief; for test clean-up)
#
# PORT only names the socket file: there is no TCP listener, so it never
# clashes with another server.  Without PORT: the port the cluster was last
# started with, or 5432 for a new one.  Only the url lines go to stdout.
#
# Layout: as an ordinary user everything lives in DIR: DIR/data (PGDATA),
# DIR/sock (socket folder), DIR/postgres.log.  As root, the server runs as the
# `postgres` user (initdb refuses root), which may not be able to enter DIR's
# parents (e.g. a checkout under /root): the files then live in
# ~postgres/masad-<hash of the absolute DIR>/ and DIR is a symlink to it.
set -euo pipefail

prog=postgres.sh
guard_sql=$(dirname -- "$(realpath -- "$0")")/audit-guard.sql
SOCK_MAX=107   # sizeof(sockaddr_un.sun_path) - 1: the whole socket file path

usage() {
    echo "usage: $prog init|start|stop|status|url|destroy DIR [PORT]" >&2
    exit "${1:-2}"
}
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

case ${1:-} in -h|--help) usage 0 ;; esac
[[ $# -ge 2 && $# -le 3 && -n $2 ]] || usage
cmd=$1 dir_arg=$2 port=${3:-}
case $cmd in init|start|stop|status|url|destroy) ;; *) usage ;; esac
if [[ -n $port ]]; then
    if ! [[ $port =~ ^[0-9]{1,5}$ ]] || (( 10#$port < 1 || 10#$port > 65535 )); then
        die "PORT must be a number in 1..65535: '$port'"
    fi
    port=$((10#$port))
fi

# Connection settings of the caller must not leak into our psql/pg_ctl calls.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS PGDATA

is_root=0
[[ $(id -u) -eq 0 ]] && is_root=1

# Absolute DIR, without resolving DIR itself (as root it becomes a symlink,
# and the hash must not change once it is one).
dir_base=$(basename -- "$dir_arg")
if [[ $dir_base == . || $dir_base == .. || $dir_base == / ]]; then
    dir=$(realpath -m -- "$dir_arg")
else
    dir_parent=$(realpath -m -- "$(dirname -- "$dir_arg")")
    dir=${dir_parent%/}/$dir_base
fi

if [[ $is_root == 1 ]]; then
    getent passwd postgres >/dev/null ||
        die "running as root needs the 'postgres' user (install the postgresql package)"
    command -v runuser >/dev/null || die "runuser not found (util-linux)"
    pg_home=$(getent passwd postgres | cut -d: -f6)
    [[ -n $pg_home && $pg_home == /* ]] || pg_home=/var/lib/postgresql
    base=$pg_home/masad-$(printf '%s' "$dir" | sha256sum | cut -c1-12)
else
    base=$dir
fi
pgdata=$base/data
sock=$base/sock
logfile=$base/postgres.log
# Without PORT: the port the cluster was last started with, else 5432.
if [[ -z $port ]]; then
    port=$(sed -n 's/^port = \([0-9]\{1,5\}\)$/\1/p' "$pgdata/masad.conf" 2>/dev/null | tail -n1 || true)
    port=${port:-5432}
fi
sockfile=$sock/.s.PGSQL.$port

# Run a server-side command as the cluster owner.  cd / so that the postgres
# user is not left in a folder it cannot read (e.g. /root).
as_pg() {
    if [[ $is_root == 1 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

find_bindir() {
    local c v
    if [[ -n ${MASAD_PG_BINDIR:-} ]]; then
        [[ -x $MASAD_PG_BINDIR/initdb ]] || die "MASAD_PG_BINDIR=$MASAD_PG_BINDIR has no initdb"
        printf '%s\n' "$MASAD_PG_BINDIR"; return 0
    fi
    # An existing cluster needs the binaries of its major version.
    if [[ -f $pgdata/PG_VERSION ]]; then
        v=$(cat -- "$pgdata/PG_VERSION")
        if [[ -x /usr/lib/postgresql/$v/bin/pg_ctl ]]; then
            printf '%s\n' "/usr/lib/postgresql/$v/bin"; return 0
        fi
    fi
    c=$(pg_config --bindir 2>/dev/null || true)
    if [[ -n $c && -x $c/initdb && -x $c/pg_ctl ]]; then
        printf '%s\n' "$c"; return 0
    fi
    c=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    if [[ -n $c && -x $c/initdb && -x $c/pg_ctl ]]; then
        printf '%s\n' "$c"; return 0
    fi
    c=$(command -v initdb 2>/dev/null || true)
    if [[ -n $c ]]; then dirname -- "$c"; return 0; fi
    return 1
}

initialised() { [[ -f $pgdata/PG_VERSION ]]; }

need_bindir() {
    bindir=$(find_bindir) ||
        die "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql"
}

# pg_ctl must not hand our lock descriptor (9) to the postmaster, or the lock
# would stay held for as long as the server runs.
pg_ctl_run() { as_pg "$bindir/pg_ctl" "$@" 9>&- >&2; }

running() { as_pg "$bindir/pg_ctl" status -D "$pgdata" >/dev/null 2>&1 9>&-; }

check_sock_length() {
    local LC_ALL=C   # count bytes
    (( ${#sockfile} <= SOCK_MAX )) ||
        die "socket path $sockfile is ${#sockfile} bytes; unix sockets allow $SOCK_MAX.
Use a shorter DIR (e.g. under /tmp)."
}

lock() {
    exec 9>>"$base/.lock"
    flock 9
}

# Create DIR (and, as root, the real folder owned by postgres plus the symlink).
make_layout() {
    if [[ $is_root == 1 ]]; then
        local link=0
        if [[ -L $dir ]]; then
            [[ $(readlink -- "$dir") == "$base" ]] ||
                die "$dir is a symlink to $(readlink -- "$dir"), expected $base"
        elif [[ -d $dir ]]; then
            if [[ -f $dir/data/PG_VERSION ]]; then
                die "$dir holds a cluster made by $(stat -c %U -- "$dir/data"); run $prog as that user"
            fi
            [[ -z $(ls -A -- "$dir") ]] ||
                die "$dir exists and is not empty; as root it must become a symlink to $base"
            link=1
        elif [[ -e $dir ]]; then
            die "$dir exists and is not a directory"
        else
            link=1
        fi
        install -d -o postgres -g postgres -m 755 "$pg_home"
        install -d -o postgres -g postgres -m 700 "$base" "$sock"
        if [[ $link == 1 ]]; then
            [[ -d $dir ]] && rmdir -- "$dir"
            mkdir -p -- "$(dirname -- "$dir")"
            ln -s -- "$base" "$dir"
        fi
    else
        mkdir -p -- "$dir"
        chmod 700 -- "$dir"
        mkdir -p -- "$sock"
        chmod 700 -- "$sock"
    fi
}

# Settings for development and tests (rewritten on every start, so PORT may
# change between runs).
write_conf() {
    local conf=$pgdata/masad.conf t esc=${sock//\'/\'\'}
    t=$(mktemp "$pgdata/.masad.conf.XXXXXX")
    cat >"$t" <<EOF
# Written by $prog: development and test settings, not for production.
listen_addresses = ''
port = $port
unix_socket_directories = '$esc'
unix_socket_permissions = 0700
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 256MB
logging_collector = off
log_min_messages = warning
EOF
    if cmp -s -- "$t" "$conf"; then
        rm -f -- "$t"
    else
        chmod 600 -- "$t"
        [[ $is_root == 1 ]] && chown postgres:postgres -- "$t"
        mv -f -- "$t" "$conf"
    fi
    grep -qxF "include_if_exists = 'masad.conf'" "$pgdata/postgresql.conf" ||
        printf "\n# masad development settings\ninclude_if_exists = 'masad.conf'\n" \
            >>"$pgdata/postgresql.conf"
}

do_start() {
    initialised || die "no cluster in $dir (run: $prog init $dir_arg $port)"
    check_sock_length
    [[ -d $sock ]] || make_layout
    write_conf
    if running; then
        if [[ -S $sockfile ]]; then
            log "running: $sockfile"
            return 0
        fi
        log "running, but not on port $port: restarting"
        pg_ctl_run restart -w -t 60 -m fast -D "$pgdata" -l "$logfile" ||
            { tail -n 20 -- "$logfile" >&2 || true; die "restart failed (log: $logfile)"; }
    else
        log "starting (log: $logfile)"
        pg_ctl_run start -w -t 60 -D "$pgdata" -l "$logfile" ||
            { tail -n 20 -- "$logfile" >&2 || true; die "start failed (log: $logfile)"; }
    fi
    [[ -S $sockfile ]] || die "server started but $sockfile is missing"
}

do_stop() {
    if ! initialised; then
        log "no cluster in $dir: nothing to stop"
        return 0
    fi
    if running; then
        log "stopping"
        pg_ctl_run stop -w -t 60 -m fast -D "$pgdata"
    else
        log "not running"
    fi
}

url_lines() {
    local LC_ALL=C enc="" c i
    # percent-encode the socket folder for the URI query
    for (( i = 0; i < ${#sock}; i++ )); do
        c=${sock:i:1}
        case $c in
            [A-Za-z0-9/._~-]) enc+=$c ;;
            *) enc+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    local q="host=$enc&port=$port"
    printf 'MASAD_DATABASE_URL=%s\n' "$(shq "postgresql:///masad?$q&user=masad_app")"
    printf 'MASAD_MIGRATE_DATABASE_URL=%s\n' "$(shq "postgresql:///masad?$q&user=masad_owner")"
    printf 'MASAD_ADMIN_DATABASE_URL=%s\n' "$(shq "postgresql:///postgres?$q&user=postgres")"
}

psql_admin() {  # psql_admin DBNAME  (SQL on stdin)
    "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres -d "$1" \
        9>&- >&2
}

bootstrap_sql() {
    psql_admin postgres <<'SQL'
SET client_min_messages = warning;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'masad_owner') THEN
        CREATE ROLE masad_owner LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'masad_runtime') THEN
        CREATE ROLE masad_runtime NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'masad_app') THEN
        CREATE ROLE masad_app LOGIN IN ROLE masad_runtime;
    END IF;
END
$$;
ALTER ROLE masad_owner LOGIN;
ALTER ROLE masad_runtime NOLOGIN;
ALTER ROLE masad_app LOGIN;
GRANT masad_runtime TO masad_app;
SELECT 'CREATE DATABASE masad OWNER masad_owner'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'masad') \gexec
ALTER DATABASE masad OWNER TO masad_owner;
SQL
    psql_admin masad <<'SQL'
SET client_min_messages = warning;
ALTER SCHEMA public OWNER TO masad_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
    # the append-only triggers out of the schema owner's reach (docs/audit.md)
    psql_admin masad <"$guard_sql"
}

do_init() {
    check_sock_length
    need_bindir
    make_layout
    lock
    if initialised; then
        log "reusing the cluster in $pgdata"
    else
        [[ ! -e $pgdata ]] || [[ -z $(ls -A -- "$pgdata" 2>/dev/null) ]] ||
            die "$pgdata exists, is not empty and holds no cluster"
        log "initdb $pgdata ($("$bindir/postgres" --version 2>/dev/null || echo postgres))"
        as_pg "$bindir/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C \
            --no-instructions 9>&- >&2 ||
            die "initdb failed"
    fi
    do_start
    bootstrap_sql || die "creating the roles and the database failed"
    log "ready: database masad, roles masad_owner, masad_runtime, masad_app (socket $sock)"
    url_lines
}

do_destroy() {
    if [[ ! -e $base && ! -L $dir ]]; then
        log "nothing in $dir"
        return 0
    fi
    if initialised; then
        need_bindir
        do_stop
    fi
    rm -rf -- "$pgdata" "$sock" "$logfile" "$base/.lock"
    if [[ -d $base ]]; then
        rmdir -- "$base" 2>/dev/null || log "left $base (it holds other files)"
    fi
    if [[ $is_root == 1 && -L $dir && $(readlink -- "$dir") == "$base" ]]; then
        rm -f -- "$dir"
    fi
    log "destroyed the cluster of $dir"
}

case $cmd in
    init)
        do_init ;;
    start)
        need_bindir
        initialised || die "no cluster in $dir (run: $prog init $dir_arg $port)"
        lock
        do_start ;;
    stop)
        if initialised; then need_bindir; lock; fi
        do_stop ;;
    status)
        if initialised && { need_bindir; running; }; then
            log "running ($pgdata, socket $sockfile)"
            exit 0
        fi
        log "not running ($dir)"
        exit 3 ;;
    url)
        initialised || log "warning: no cluster in $dir yet (run: $prog init $dir_arg $port)"
        check_sock_length
        url_lines ;;
    destroy)
        do_destroy ;;
esac
