#!/usr/bin/env bash
# BRSKI voucher benchmark: registrars on keep-alive HTTPS connections ask
# masad for vouchers for distinct devices with distinct nonces, the signing
# key in SoftHSM. Prints vouchers/s, p50/p99 latency and CPU per voucher at
# 1, 8 and 64 concurrent registrars, for two builds of masad: the real one
# (audit hash chain on) and one without the chain (-Dbench_unchained_audit),
# and compares them at 64 registrars. Then, with synchronous_commit on (the
# production setting), it runs the two builds alternately at 64 registrars,
# REPEATS times each (on, off, on, off…), and prints each run's CPU per
# voucher and each pair's ratio. See tests/bench/README.md.
#
# Usage (from the repository root): tests/bench/brski.sh [DEVICES]
#   DEVICES: devices made and registered per build (default 16000; at least
#   5346 + REPEATS x 3328, what the three levels, the repeated 64 level and
#   their warm-up ask for).
#   MASAD_BENCH_REPEATS=N: the alternated runs per build (default 3; 0: none).
#   MASAD_BENCH_FSYNC=on: the alternated runs with fsync on as well (the
#   development cluster has it off; the disk then counts in the figures).
#   MASAD_BENCH_PERF=DIR in the environment: record a perf profile of masad
#   (perf record -g, 5 s) while each build's 64-registrar level runs, into
#   DIR/perf-chain-on.data and DIR/perf-chain-off.data. It perturbs the
#   figures of that run; profile in a run of its own. MASAD_BENCH_PERF_OPTS
#   replaces -g (e.g. "--call-graph dwarf": masad's callers through
#   libraries built without frame pointers).
#
# Builds an optimized masad in build-bench/ and one without the audit chain
# in build-bench-unchained/, makes a throwaway SoftHSM token, PKI and
# PostgreSQL cluster (as scripts/test does), and removes them at exit.
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"

DEVICES=${1:-16000}
REPEATS=${MASAD_BENCH_REPEATS:-3}
FSYNC=${MASAD_BENCH_FSYNC:-off}
[[ $DEVICES =~ ^[1-9][0-9]*$ && $REPEATS =~ ^[0-9]+$ && $FSYNC =~ ^(on|off)$ ]] ||
    { echo "usage: $0 [DEVICES] (MASAD_BENCH_REPEATS a number, MASAD_BENCH_FSYNC on or off)" >&2; exit 2; }
# bench_brski.c: 400 + 1600 + 3200 timed, 2 warm-up requests on each of 1 + 8 + 64
# connections; then each repeated run 3200 timed and 128 warm-up at 64
FIRST_REPEAT_DEVICE=5346
PER_REPEAT=3328
NEEDED=$((FIRST_REPEAT_DEVICE + REPEATS * PER_REPEAT))
(( DEVICES >= NEEDED && DEVICES <= 999999 )) ||
    { echo "$0: DEVICES must be between $NEEDED and 999999" >&2; exit 2; }
PG_PORT=55434   # names the unix socket only (postgres.sh listens on no TCP port)
PERF_DIR=${MASAD_BENCH_PERF:-}
read -ra PERF_OPTS <<<"${MASAD_BENCH_PERF_OPTS:--g}"

ensure_packages "${BUILD_PACKAGES[@]}" libcurl4-openssl-dev
[[ -z $PERF_DIR ]] || command -v perf >/dev/null || ensure_packages linux-perf

# build_with DIR UNCHAINED: an optimized build; the option is set explicitly,
# since a folder configured earlier keeps what it was configured with.
build_with() {
    local dir=$1 unchained=$2
    if [ -f "$ROOT/$dir/build.ninja" ]; then
        meson configure "$ROOT/$dir" -Dtests=false -Dbuildtype=release \
            -Dbench_unchained_audit="$unchained" >/dev/null
    fi
    build "$dir" -Dtests=false -Dbuildtype=release -Dbench_unchained_audit="$unchained"
}
build_with build-bench false
build_with build-bench-unchained true
say "building the load generator"
read -ra LIB_FLAGS <<<"$(pkg-config --cflags --libs openssl libcurl yajl)"
# gcc 12 at -O2 takes brski_client.c's base64 buffer (malloc'd, filled
# before use) for uninitialized: a false positive, kept a warning
cc -O2 -Wall -Wextra -Werror -Wno-error=maybe-uninitialized "$ROOT/tests/bench/bench_brski.c" "$ROOT/tests/bench/bench_util.c" \
    "$ROOT/tests/tools/brski_client.c" \
    "${LIB_FLAGS[@]}" -I"$ROOT/tests/tools" -o "$ROOT/build-bench/bench_brski"

# Everything the run makes lives here and goes at the end. The postgres user
# must be able to enter it when we are root.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/masad-bench-brski.XXXXXX")
chmod 755 "$TMP"
DEV=$ROOT/deploy/dev
PKI=$TMP/pki
MASAD_PID=
PERF_PID=
cleanup() {
    if [[ -n $PERF_PID ]] && kill -0 "$PERF_PID" 2>/dev/null; then
        kill -INT "$PERF_PID" 2>/dev/null || true
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
# the customer domain: bench-corp-ca.crt (domain CA), bench-corp.crt/.key
# (registrar, with cmcRA), bench-corp-chain.crt (registrar, then domain CA)
"$DEV/pki.sh" registrar "$PKI" bench-corp "$PKI/bench-corp" 2>/dev/null
load_env "$("$DEV/postgres.sh" init "$TMP/pg" "$PG_PORT")"
POSTMASTER_PID=$(head -n 1 "$TMP/pg/data/postmaster.pid")

# Each build gets a freshly migrated database of its own in the one cluster:
# masad (made by postgres.sh) and masad_unchained, set up as postgres.sh sets
# up masad.
say "migrations"
CHAINED_URL=$MASAD_DATABASE_URL
UNCHAINED_URL=${MASAD_DATABASE_URL/\/masad\?/\/masad_unchained\?}
UNCHAINED_MIGRATE_URL=${MASAD_MIGRATE_DATABASE_URL/\/masad\?/\/masad_unchained\?}
UNCHAINED_ADMIN_URL=${MASAD_ADMIN_DATABASE_URL/\/postgres\?/\/masad_unchained\?}
[[ $UNCHAINED_URL != "$CHAINED_URL" ]] || { echo "cannot derive a second database URL from $CHAINED_URL" >&2; exit 1; }
psql -X -q -v ON_ERROR_STOP=1 "$MASAD_ADMIN_DATABASE_URL" -c 'CREATE DATABASE masad_unchained OWNER masad_owner' >&2
psql -X -q -v ON_ERROR_STOP=1 "$UNCHAINED_ADMIN_URL" >&2 <<'SQL'
ALTER SCHEMA public OWNER TO masad_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
"$ROOT/build-bench/service/masad" migrate >/dev/null
MASAD_MIGRATE_DATABASE_URL=$UNCHAINED_MIGRATE_URL \
    "$ROOT/build-bench-unchained/service/masad" migrate >/dev/null

# Two free ports, asked of the kernel (fixed ones when python3 is missing).
free_ports() {
    python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])' 2>/dev/null || echo "$1" "$2"
}

# write_config FILE DEVICE_PORT MGMT_PORT: as tests/integration/harness.c's
# write_config, with the service sized for the benchmark.
write_config() {
    # 8 job threads on 2 cores: a job thread spends much of a voucher waiting
    # on PostgreSQL (7 round trips) and on the HSM, not on a CPU, so more
    # threads than cores keep both cores busy; 64 registrars queue behind
    # them (queue-capacity 1024 leaves room; a full queue answers 503).
    cat >"$1" <<JSON
{
  "masad-config:service": {
    "event-loops": 2, "job-threads": 8, "queue-capacity": 1024,
    "shutdown-grace": 10, "log-level": "warn"
  },
  "masad-config:listeners": {
    "device": { "address": "127.0.0.1", "port": $2 },
    "management": { "address": "127.0.0.1", "port": $3 }
  },
  "masad-config:tls": { "certificate": "pki/tls-chain.crt", "private-key": "pki/tls.key" },
  "masad-config:idevid": {
    "trust-anchor": [ { "name": "bench", "certificate": "pki/idevid-ca.crt" } ]
  },
  "masad-config:signer": {
    "key": "$MASAD_PKCS11_URI",
    "pkcs11-module": "$MASAD_PKCS11_MODULE",
    "certificate": "pki/masa-chain.crt"
  }
}
JSON
}

wait_ready() {  # wait_ready URL
    local _
    for _ in $(seq 300); do
        if ! kill -0 "$MASAD_PID" 2>/dev/null; then
            echo "masad exited during start:" >&2
            cat "$TMP/masad.err" >&2
            return 1
        fi
        [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/root-ca.crt" "$1/readyz")" = 200 ] &&
            return 0
        sleep 0.1
    done
    echo "masad did not become ready in 30 s:" >&2
    curl -s --cacert "$PKI/root-ca.crt" "$1/readyz" >&2 || true
    tail -n 20 "$TMP/masad.err" >&2
    return 1
}

# perf_at_64 LABEL: waits for the load generator's mark, then records masad.
perf_at_64() {
    local mark=$TMP/marks-$1/level-64 _
    for _ in $(seq 6000); do
        [ -e "$mark" ] && break
        sleep 0.05
    done
    [ -e "$mark" ] || return 0
    perf record -e cpu-clock "${PERF_OPTS[@]}" -p "$MASAD_PID" -o "$PERF_DIR/perf-$1.data" -- sleep 5 \
        >"$TMP/perf-$1.log" 2>&1 || true
}

# run_build LABEL BUILD_DIR DATABASE_URL [LEVELS FIRST_DEVICE]: one build, one
# database, the three levels (or those listed, from that device on).
run_build() {
    local label=$1 build_dir=$2 db_url=$3 levels=${4:-} first=${5:-0} device_port mgmt_port status=0
    local masad=$ROOT/$build_dir/service/masad
    read -r device_port mgmt_port < <(free_ports 18443 19443)
    write_config "$TMP/masad-$label.json" "$device_port" "$mgmt_port"
    say "$label: starting masad ($build_dir, device listener 127.0.0.1:$device_port)"
    MASAD_DATABASE_URL=$db_url "$masad" serve -c "$TMP/masad-$label.json" \
        >"$TMP/masad.out" 2>"$TMP/masad.err" &
    MASAD_PID=$!
    wait_ready "https://127.0.0.1:$mgmt_port"
    local token
    token=$(MASAD_DATABASE_URL=$db_url "$masad" token create --name "bench-$label" \
        --scope devices:read,devices:write,owners:read,owners:write,ownership:write)
    [[ $token == msd_* ]] || { echo "masad token create printed no msd_ token: $token" >&2; exit 1; }

    echo "== $label: $build_dir/service/masad ($(git -C "$ROOT" describe --always --dirty 2>/dev/null ||
        echo unknown), release), pid $MASAD_PID; database ${db_url%%\?*}"
    mkdir -p "$TMP/marks-$label"
    if [[ -n $PERF_DIR && -z $levels ]]; then
        mkdir -p "$PERF_DIR"
        perf_at_64 "$label" &
        PERF_PID=$!
    fi
    BENCH_BRSKI_LEVELS=$levels BENCH_BRSKI_FIRST_DEVICE=$first \
        BENCH_BRSKI_MARK_DIR=$TMP/marks-$label "$ROOT/build-bench/bench_brski" \
        "https://127.0.0.1:$device_port" "https://127.0.0.1:$mgmt_port" "$token" "$PKI" \
        "$TMP/devices" "$DEVICES" "$MASAD_PID" "$POSTMASTER_PID" "$TMP/summary-$label" ||
        status=$?
    if [[ -n $PERF_PID ]]; then
        # no 64 level (the load generator failed before it): stop waiting for it
        [ -e "$TMP/marks-$label/level-64" ] || kill "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" || true
        PERF_PID=
        echo "perf: $(tail -n 1 "$TMP/perf-$label.log" 2>/dev/null) -> $PERF_DIR/perf-$label.data"
    fi

    say "$label: stopping masad"
    kill -TERM "$MASAD_PID"
    wait "$MASAD_PID" || { echo "masad exited with status $?" >&2; status=1; }
    MASAD_PID=
    if [ -s "$TMP/masad.err" ]; then
        echo "masad diagnostics (warn and above):" >&2
        tail -n 20 "$TMP/masad.err" >&2
    fi
    echo
    [ "$status" -eq 0 ] || exit "$status"
}

echo "postgres: $(psql -X "$MASAD_ADMIN_DATABASE_URL" -Atc 'SHOW server_version' 2>/dev/null ||
    echo unknown), postmaster pid $POSTMASTER_PID (both databases in this cluster)"
echo "signer: SoftHSM2 ($MASAD_PKCS11_MODULE), $MASAD_PKCS11_URI"
# pg_setting NAME VALUE: for the whole cluster, from the next transaction on
pg_setting() {
    psql -X -q -v ON_ERROR_STOP=1 "$MASAD_ADMIN_DATABASE_URL" \
        -c "ALTER SYSTEM SET $1 = $2" -c 'SELECT pg_reload_conf()' >/dev/null
}
pg_durability() {
    psql -X -At "$MASAD_ADMIN_DATABASE_URL" \
        -c "SELECT string_agg(name || ' = ' || setting, ', ' ORDER BY name) FROM pg_settings
            WHERE name IN ('synchronous_commit', 'fsync')"
}
echo "PostgreSQL durability: $(pg_durability) (the development cluster, deploy/dev/postgres.sh)"
echo
run_build chain-on build-bench "$CHAINED_URL"
run_build chain-off build-bench-unchained "$UNCHAINED_URL"

# Alternated and repeated, with the production commit: each run a fresh masad
# and devices no earlier run asked for.
if (( REPEATS > 0 )); then
    pg_setting synchronous_commit on
    [[ $FSYNC == off ]] || pg_setting fsync on
    echo "== chain on and off alternated at 64 registrars, $REPEATS runs each;" \
        "PostgreSQL durability: $(pg_durability)"
    echo
    for ((k = 1; k <= REPEATS; k++)); do
        first=$((FIRST_REPEAT_DEVICE + (k - 1) * PER_REPEAT))
        run_build "sync-chain-on-$k" build-bench "$CHAINED_URL" 64 "$first"
        run_build "sync-chain-off-$k" build-bench-unchained "$UNCHAINED_URL" 64 "$first"
    done
fi

# The comparison at 64 registrars, and the goals. Summary lines:
#   registrars count wall_s masad_cpu_s pg_cpu_s gen_cpu_s p50_ms p99_ms others
awk '
FNR == 1 { file++ }
$1 == 64 { vps[file] = $2 / $3; m[file] = $4 * 1e6 / $2; pg[file] = $5 * 1e6 / $2; p99[file] = $8; oth[file] = $9 }
END {
    on = m[1] + pg[1]; off = m[2] + pg[2]
    printf "audit hash chain at 64 registrars (on vs off):\n"
    printf "  CPU per voucher, masad + PostgreSQL: %.0f µs vs %.0f µs = %+.1f%% (masad %+.0f µs, PostgreSQL %+.0f µs)  [goal: at most +10%%: %s]\n",
        on, off, (on / off - 1) * 100, m[1] - m[2], pg[1] - pg[2], (on <= off * 1.10 ? "met" : "NOT met")
    printf "  vouchers/s: %.0f vs %.0f = %.3f of the unchained throughput (%+.1f%%)  [goal: at most -10%%: %s]\n",
        vps[1], vps[2], vps[1] / vps[2], (vps[1] / vps[2] - 1) * 100, (vps[1] >= vps[2] * 0.90 ? "met" : "NOT met")
    if (oth[1] > 0.05 || oth[2] > 0.05)
        printf "  (other processes took %.0f%% and %.0f%% of the machine during these levels: the vouchers/s compare runs that did not have the same machine)\n", oth[1] * 100, oth[2] * 100
    printf "goals of the chained build (2-core machine, database and load generator included):\n"
    printf "  masad CPU per voucher at 64 registrars: %.0f µs  [goal: at most 600 µs: %s]\n",
        m[1], (m[1] <= 600 ? "met" : "NOT met")
    printf "  64 registrars: %.0f vouchers/s, p99 %.1f ms  [goal: at least 2000/s with p99 under 50 ms: %s]\n",
        vps[1], p99[1], (vps[1] >= 2000 && p99[1] < 50 ? "met" : "NOT met")
}' "$TMP/summary-chain-on" "$TMP/summary-chain-off"

# The alternated runs: each pair (on k, off k) and the spread of the ratios.
if (( REPEATS > 0 )); then
    for ((k = 1; k <= REPEATS; k++)); do
        cat "$TMP/summary-sync-chain-on-$k" "$TMP/summary-sync-chain-off-$k"
    done | awk -v fsync="$FSYNC" '
    $1 == 64 { n++; k = int((n + 1) / 2); side = (n % 2 ? "on" : "off")
               m[k, side] = $4 * 1e6 / $2; pg[k, side] = $5 * 1e6 / $2; vps[k, side] = $2 / $3; p99[k, side] = $8 }
    END {
        runs = n / 2
        printf "\naudit hash chain, alternated at 64 registrars with synchronous_commit on (fsync %s):\n", fsync
        printf "  run  chain  masad µs/voucher  PostgreSQL µs/voucher  sum µs  vouchers/s  p99 ms\n"
        worst = -1e9; best = 1e9; met = 1
        for (k = 1; k <= runs; k++) {
            for (i = 0; i < 2; i++) {
                s = (i == 0 ? "on" : "off")
                printf "  %3d  %-5s  %16.0f  %21.0f  %6.0f  %10.0f  %6.1f\n", k, s, m[k, s], pg[k, s],
                    m[k, s] + pg[k, s], vps[k, s], p99[k, s]
            }
            on = m[k, "on"] + pg[k, "on"]; off = m[k, "off"] + pg[k, "off"]
            r = (on / off - 1) * 100; sum += r
            if (r > worst) worst = r
            if (r < best) best = r
            if (r > 10) met = 0
            printf "       pair %d: chain costs %+.1f%% CPU per voucher (masad %+.0f µs, PostgreSQL %+.0f µs); throughput %.3f of unchained\n",
                k, r, m[k, "on"] - m[k, "off"], pg[k, "on"] - pg[k, "off"], vps[k, "on"] / vps[k, "off"]
        }
        printf "  chain cost over %d pairs: mean %+.1f%%, from %+.1f%% to %+.1f%%  [goal: at most +10%% in every run: %s]\n",
            runs, sum / runs, best, worst, (met ? "met" : "NOT met")
    }'
fi
