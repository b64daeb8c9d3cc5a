#!/usr/bin/env bash
# Management API benchmark: imports DEVICES devices (default 100,000) through
# POST /api/v1/devices:batch, assigns all of them to owners through
# POST /api/v1/ownership:batch, and prints devices/s and CPU per 1,000
# devices for masad and for PostgreSQL. See tests/bench/README.md.
#
# Usage (from the repository root): tests/bench/management.sh [DEVICES]
#
# Builds an optimized masad in build-bench/, makes a throwaway SoftHSM token,
# PKI and PostgreSQL cluster (as scripts/test does), and removes them at exit.
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"

DEVICES=${1:-100000}
[[ $DEVICES =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [DEVICES]" >&2; exit 2; }
PG_PORT=55433   # names the unix socket only (postgres.sh listens on no TCP port)

ensure_packages "${BUILD_PACKAGES[@]}" libcurl4-openssl-dev
build build-bench -Dtests=false -Dbuildtype=release
say "building the load generator"
read -ra LIB_FLAGS <<<"$(pkg-config --cflags --libs openssl libcurl)"
cc -O2 -Wall -Wextra -Werror "$ROOT/tests/bench/bench_management.c" "$ROOT/tests/bench/bench_util.c" \
    "${LIB_FLAGS[@]}" \
    -o "$ROOT/build-bench/bench_management"
MASAD=$ROOT/build-bench/service/masad

# Everything the run makes lives here and goes at the end. The postgres user
# must be able to enter it when we are root.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/masad-bench.XXXXXX")
chmod 755 "$TMP"
DEV=$ROOT/deploy/dev
MASAD_PID=
cleanup() {
    if [[ -n $MASAD_PID ]] && kill -0 "$MASAD_PID" 2>/dev/null; then
        kill -TERM "$MASAD_PID" 2>/dev/null || true
        wait "$MASAD_PID" 2>/dev/null || true
    fi
    [ -e "$TMP/pg" ] && "$DEV/postgres.sh" destroy "$TMP/pg" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

export MASAD_PKCS11_PIN=bench-pin-1234 MASAD_PKCS11_SO_PIN=bench-so-pin-5678
say "throwaway token, PKI and PostgreSQL"
load_env "$("$DEV/softhsm.sh" "$TMP/softhsm" masad-bench)"
"$DEV/pki.sh" "$TMP/pki" 2>/dev/null
load_env "$("$DEV/postgres.sh" init "$TMP/pg" "$PG_PORT")"
POSTMASTER_PID=$(head -n 1 "$TMP/pg/data/postmaster.pid")

say "migrations"
"$MASAD" migrate >/dev/null

# Two free ports, asked of the kernel (fixed ones when python3 is missing).
free_ports() {
    python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])' 2>/dev/null || echo 18443 19443
}
read -r DEVICE_PORT MGMT_PORT < <(free_ports)

cat >"$TMP/masad.json" <<JSON
{
  "masad-config:service": { "shutdown-grace": 10, "log-level": "warn" },
  "masad-config:listeners": {
    "device": { "address": "127.0.0.1", "port": $DEVICE_PORT },
    "management": { "address": "127.0.0.1", "port": $MGMT_PORT }
  },
  "masad-config:tls": { "certificate": "pki/tls-chain.crt", "private-key": "pki/tls.key" },
  "masad-config:signer": {
    "key": "$MASAD_PKCS11_URI",
    "pkcs11-module": "$MASAD_PKCS11_MODULE",
    "certificate": "pki/masa-chain.crt"
  }
}
JSON

say "starting masad (management listener 127.0.0.1:$MGMT_PORT)"
"$MASAD" serve -c "$TMP/masad.json" >"$TMP/masad.out" 2>"$TMP/masad.err" &
MASAD_PID=$!
URL=https://127.0.0.1:$MGMT_PORT
CA=$TMP/pki/root-ca.crt

wait_ready() {
    local _
    for _ in $(seq 300); do
        if ! kill -0 "$MASAD_PID" 2>/dev/null; then
            echo "masad exited during start:" >&2
            cat "$TMP/masad.err" >&2
            return 1
        fi
        [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$URL/readyz")" = 200 ] &&
            return 0
        sleep 0.1
    done
    echo "masad did not become ready in 30 s:" >&2
    curl -s --cacert "$CA" "$URL/readyz" >&2 || true
    tail -n 20 "$TMP/masad.err" >&2
    return 1
}
wait_ready

say "management token"
TOKEN=$("$MASAD" token create --name bench \
    --scope devices:read,devices:write,owners:read,owners:write,ownership:write,audit:read)
[[ $TOKEN == msd_* ]] || { echo "masad token create printed no msd_ token: $TOKEN" >&2; exit 1; }

echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "masad:   $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)," \
    "build-bench (release), pid $MASAD_PID"
echo "postgres: $(psql -X "$MASAD_ADMIN_DATABASE_URL" -Atc 'SHOW server_version' 2>/dev/null ||
    echo unknown), postmaster pid $POSTMASTER_PID"
echo "devices: $DEVICES"
echo

status=0
"$ROOT/build-bench/bench_management" "$URL" "$CA" "$TOKEN" "$DEVICES" "$MASAD_PID" \
    "$POSTMASTER_PID" || status=$?

say "stopping masad"
kill -TERM "$MASAD_PID"
wait "$MASAD_PID" || { echo "masad exited with status $?" >&2; status=1; }
MASAD_PID=
if [ -s "$TMP/masad.err" ]; then
    echo "masad diagnostics (warn and above):" >&2
    tail -n 20 "$TMP/masad.err" >&2
fi
exit $status
