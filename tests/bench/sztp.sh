#!/usr/bin/env bash
# SZTP bootstrap server benchmark: devices, each on a new TLS connection (full
# TLS 1.3 handshake) with its own IDevID as the client certificate, ask masad
# for their bootstrapping data. Prints requests/s, p50/p99 latency and CPU per
# request (masad, PostgreSQL, load generator) at 8 and 32 concurrent clients,
# for unsigned answers and for signed nonced answers (owner's signed conveyed
# information, owner certificate, and a voucher signed in SoftHSM for every
# answer). See tests/bench/README.md.
#
# Usage (from the repository root): tests/bench/sztp.sh [DEVICES]
#   DEVICES: devices made and registered (default 4000; at least 328): the
#   first half belongs to the owner bench-unsigned, the rest to bench-signed.
#   MASAD_BENCH_PERF=FILE in the environment: record a perf profile of masad
#   (perf record -e cpu-clock -g) while the signed phase runs at 32 clients,
#   into FILE; MASAD_BENCH_PERF_OPTS replaces -g (e.g. "--call-graph dwarf
#   -F 999": the system's libraries have no frame pointers). It perturbs the
#   figures of that run; profile in a run of its own.
#
# Builds an optimized masad in build-bench/, makes a throwaway SoftHSM token,
# PKI and PostgreSQL cluster (as scripts/test does), and removes them at exit.
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"

DEVICES=${1:-4000}
[[ $DEVICES =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [DEVICES]" >&2; exit 2; }
PG_PORT=55435   # names the unix socket only (postgres.sh listens on no TCP port)
EVENT_LOOPS=2
JOB_THREADS=8
PERF_FILE=${MASAD_BENCH_PERF:-}
read -ra PERF_OPTS <<<"${MASAD_BENCH_PERF_OPTS:--g}"
[[ -z $PERF_FILE || $PERF_FILE == /* ]] || PERF_FILE=$PWD/$PERF_FILE

ensure_packages "${BUILD_PACKAGES[@]}" libcurl4-openssl-dev
[[ -z $PERF_FILE ]] || command -v perf >/dev/null || ensure_packages linux-perf
build build-bench -Dtests=false -Dbuildtype=release
say "building the load generator"
read -ra LIB_FLAGS <<<"$(pkg-config --cflags --libs openssl libcurl)"
cc -O2 -Wall -Wextra -Werror "$ROOT/tests/bench/bench_sztp.c" "$ROOT/tests/bench/bench_util.c" \
    "${LIB_FLAGS[@]}" \
    -o "$ROOT/build-bench/bench_sztp"
MASAD=$ROOT/build-bench/service/masad

# Everything the run makes lives here and goes at the end. The postgres user
# must be able to enter it when we are root.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/masad-bench-sztp.XXXXXX")
chmod 755 "$TMP"
DEV=$ROOT/deploy/dev
PKI=$TMP/pki
MASAD_PID=
PERF_PID=
cleanup() {
    if [[ -n $PERF_PID ]] && kill -0 "$PERF_PID" 2>/dev/null; then
        kill -TERM "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
    fi
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
"$DEV/pki.sh" "$PKI" 2>/dev/null
# The owner that signs: bench-signed-ca.crt (domain CA, what ownership
# vouchers pin), bench-signed.crt/.key (the leaf that signs), and its signed
# conveyed information (the redirect sample), as tests/integration/test_owners.c
# makes it.
"$DEV/pki.sh" registrar "$PKI" bench-signed "$PKI/bench-signed" 2>/dev/null
CONVEYED=$ROOT/tests/data/yang/conveyed-info-redirect-valid.json
openssl cms -sign -binary -nodetach -outform DER -econtent_type 1.2.840.113549.1.9.16.1.43 \
    -signer "$PKI/bench-signed.crt" -inkey "$PKI/bench-signed.key" -in "$CONVEYED" \
    -out "$PKI/bench-signed-conveyed.der"
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

# As tests/integration/harness.c's write_config, sized for the benchmark:
# 8 job threads on 2 cores (a job spends much of its time waiting on
# PostgreSQL and the HSM, not on a CPU), and room in the queue for 32 clients.
cat >"$TMP/masad.json" <<JSON
{
  "masad-config:service": {
    "event-loops": $EVENT_LOOPS, "job-threads": $JOB_THREADS, "queue-capacity": 1024,
    "shutdown-grace": 10, "log-level": "warn"
  },
  "masad-config:listeners": {
    "device": { "address": "127.0.0.1", "port": $DEVICE_PORT },
    "management": { "address": "127.0.0.1", "port": $MGMT_PORT }
  },
  "masad-config:tls": { "certificate": "pki/tls-chain.crt", "private-key": "pki/tls.key" },
  "masad-config:idevid": {
    "trust-anchor": [ { "name": "bench IDevID CA", "certificate": "pki/idevid-ca.crt" } ]
  },
  "masad-config:signer": {
    "key": "$MASAD_PKCS11_URI",
    "pkcs11-module": "$MASAD_PKCS11_MODULE",
    "certificate": "pki/masa-chain.crt"
  }
}
JSON

say "starting masad (device listener 127.0.0.1:$DEVICE_PORT, management 127.0.0.1:$MGMT_PORT)"
"$MASAD" serve -c "$TMP/masad.json" >"$TMP/masad.out" 2>"$TMP/masad.err" &
MASAD_PID=$!
URL=https://127.0.0.1:$MGMT_PORT
CA=$PKI/root-ca.crt

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
TOKEN=$("$MASAD" token create --name bench-sztp \
    --scope devices:read,devices:write,owners:read,owners:write,ownership:write)
[[ $TOKEN == msd_* ]] || { echo "masad token create printed no msd_ token: $TOKEN" >&2; exit 1; }

# A file's text as a JSON string (PEM: no quotes or backslashes to escape).
json_text() { awk 'BEGIN { printf "\"" } { printf "%s\\n", $0 } END { printf "\"" }' "$1"; }

# put_owner ID BODY_FILE: PUT /api/v1/owners/ID; 200 or 201, else the answer and exit.
put_owner() {
    local status
    status=$(curl -s -o "$TMP/owner.out" -w '%{http_code}' --cacert "$CA" -X PUT \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data-binary "@$2" "$URL/api/v1/owners/$1")
    if [[ $status != 200 && $status != 201 ]]; then
        echo "PUT /api/v1/owners/$1: unexpected answer $status" >&2
        cat "$TMP/owner.out" >&2
        exit 1
    fi
}

say "owners bench-unsigned and bench-signed"
{
    printf '{"display_name": "Bench unsigned", "sztp": {"conveyed_information": '
    cat "$CONVEYED"
    printf '}}'
} >"$TMP/owner-unsigned.json"
put_owner bench-unsigned "$TMP/owner-unsigned.json"
{
    printf '{"display_name": "Bench signed", "sztp": {"owner_certificate": ['
    json_text "$PKI/bench-signed.crt"
    printf ', '
    json_text "$PKI/bench-signed-ca.crt"
    printf '], "signed_conveyed_information": "%s"}}' "$(base64 -w0 "$PKI/bench-signed-conveyed.der")"
} >"$TMP/owner-signed.json"
put_owner bench-signed "$TMP/owner-signed.json"

echo "masad:   $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)," \
    "build-bench (release), pid $MASAD_PID; $EVENT_LOOPS event loops, $JOB_THREADS job threads"
echo "postgres: $(psql -X "$MASAD_ADMIN_DATABASE_URL" -Atc 'SHOW server_version' 2>/dev/null ||
    echo unknown), postmaster pid $POSTMASTER_PID"
echo "signer: SoftHSM2 ($MASAD_PKCS11_MODULE)"

# perf_signed_32: records masad from the signed phase's 32-client start mark
# to its end mark.
perf_signed_32() {
    local _
    for _ in $(seq 12000); do
        [ -e "$TMP/marks/signed-32.start" ] && break
        sleep 0.05
    done
    [ -e "$TMP/marks/signed-32.start" ] || return 0
    perf record -e cpu-clock "${PERF_OPTS[@]}" -p "$MASAD_PID" -o "$PERF_FILE" >"$TMP/perf.log" 2>&1 &
    local perf=$!
    trap 'kill -INT $perf 2>/dev/null; wait $perf; exit 0' TERM
    for _ in $(seq 12000); do
        [ -e "$TMP/marks/signed-32.end" ] && break
        sleep 0.05
    done
    kill -INT "$perf" 2>/dev/null || true
    wait "$perf" || true
}
mkdir -p "$TMP/marks"
if [[ -n $PERF_FILE ]]; then
    perf_signed_32 &
    PERF_PID=$!
fi

status=0
BENCH_SZTP_MARK_DIR=$TMP/marks "$ROOT/build-bench/bench_sztp" \
    "https://127.0.0.1:$DEVICE_PORT" "$URL" "$TOKEN" "$PKI" "$TMP/devices" "$DEVICES" \
    "$MASAD_PID" "$POSTMASTER_PID" "$EVENT_LOOPS" "$JOB_THREADS" || status=$?
if [[ -n $PERF_PID ]]; then
    [ "$status" -eq 0 ] || kill -TERM "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" || true
    PERF_PID=
    echo "perf: $(grep -h 'Captured and wrote' "$TMP/perf.log" 2>/dev/null || echo 'no profile') -> $PERF_FILE"
fi

say "stopping masad"
kill -TERM "$MASAD_PID"
wait "$MASAD_PID" || { echo "masad exited with status $?" >&2; status=1; }
MASAD_PID=
if [ -s "$TMP/masad.err" ]; then
    echo "masad diagnostics (warn and above):" >&2
    tail -n 20 "$TMP/masad.err" >&2
fi
exit $status
