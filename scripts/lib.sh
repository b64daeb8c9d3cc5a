# shellcheck shell=bash
# Shared by scripts/run and scripts/test: Debian packages and the build.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# What building and running masad needs (Debian 12 package names).
BUILD_PACKAGES=(gcc meson ninja-build pkg-config libh2o-evloop-dev libssl-dev libpq-dev
    libyajl-dev libyang2-dev libp11-dev libp11-kit-dev openssl softhsm2 opensc libengine-pkcs11-openssl
    postgresql curl ca-certificates)
# What the tests need on top.
TEST_PACKAGES=(libcriterion-dev libcurl4-openssl-dev libyang2-tools python3 python3-yaml util-linux)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the packages that are missing, and only those.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    # a fresh machine has no package lists yet
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# build DIR [meson options...]: configures once, then builds.
build() {
    local dir=$1
    shift
    if [ ! -f "$ROOT/$dir/build.ninja" ]; then
        say "configuring $dir"
        meson setup "$ROOT/$dir" "$ROOT" "$@" >/dev/null
    fi
    say "building $dir"
    ninja -C "$ROOT/$dir" >/dev/null || ninja -C "$ROOT/$dir"
}

# Loads NAME='value' lines printed by the deploy/dev scripts, exported.
load_env() {
    set -a
    eval "$1"
    set +a
}

# Whether this machine can run a container the way deploy/test.sh does (as
# root, runtime runc, podman's own storage), in a second or two: imports a
# one-program image made from this machine's own `true` and runs it. Returns
# non-zero, with the reason on stdout, when podman is missing or cannot run
# it (no /dev/fuse, no user or mount namespaces inside a container, ...).
containers_work() {
    command -v podman >/dev/null || { echo "podman is not installed"; return 1; }
    local dir image=localhost/masad-probe:$$ out status=0 prog lib
    dir=$(mktemp -d "${TMPDIR:-/tmp}/masad-probe.XXXXXX")
    prog=$(type -P true)
    mkdir -p "$dir/rootfs"
    for lib in "$prog" $(ldd "$prog" | grep -o '/[^ ]*'); do
        cp --parents -L "$lib" "$dir/rootfs"
    done
    # the settings deploy/test.sh gives podman: runc (crun fails on cgroups
    # hybrid mode), capped ulimits (the default nofile cannot be set here)
    cat >"$dir/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
    if ! out=$(tar -C "$dir/rootfs" -c . |
        as_root env CONTAINERS_CONF="$dir/containers.conf" podman import - "$image" 2>&1) ||
        ! out=$(as_root env CONTAINERS_CONF="$dir/containers.conf" \
            podman run --rm --network none "$image" "$prog" 2>&1); then
        echo "podman cannot run a container here: $(tail -n 1 <<<"$out")"
        status=1
    fi
    as_root env CONTAINERS_CONF="$dir/containers.conf" podman rmi -f "$image" >/dev/null 2>&1
    rm -rf "$dir"
    return $status
}

# test_env_up MASAD_BINARY: what the test suites run against, made fresh in a
# temporary folder (TEST_TMP): a SoftHSM token, the test PKI and a private
# PostgreSQL cluster, announced to the suites through MASAD_TEST_* (read by
# tests/integration/harness.c and tests/unit/test_signer.c). test_env_down
# removes all of it; call it from an EXIT trap.
test_env_up() {
    local dev=$ROOT/deploy/dev
    # the postgres user must be able to enter it when we are root
    TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/masad-test.XXXXXX")
    chmod 755 "$TEST_TMP"
    export MASAD_PKCS11_PIN=test-pin-1234 MASAD_PKCS11_SO_PIN=test-so-pin-5678
    load_env "$("$dev/softhsm.sh" "$TEST_TMP/softhsm" masad-test)"
    "$dev/pki.sh" "$TEST_TMP/pki" 2>/dev/null
    # the port only names the cluster's unix socket, inside TEST_TMP
    load_env "$("$dev/postgres.sh" init "$TEST_TMP/pg" 55432)"
    export MASAD_TEST_BIN=$1
    export MASAD_TEST_TMP=$TEST_TMP MASAD_TEST_PKI=$TEST_TMP/pki MASAD_TEST_DEV=$dev
    test_env_options
}

# What every suite reads, also the ones that need nothing made for them.
test_env_options() {
    export MASAD_TEST_ROOT=$ROOT
    export ASAN_OPTIONS=abort_on_error=0:detect_stack_use_after_return=0
    export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
}

test_env_down() {
    [ -n "${TEST_TMP:-}" ] || return 0
    local pg
    # the suites make more clusters beside the first (pg-NAME)
    for pg in "$TEST_TMP"/pg "$TEST_TMP"/pg-*; do
        [ -e "$pg" ] && "$ROOT/deploy/dev/postgres.sh" destroy "$pg" >/dev/null 2>&1 || true
    done
    rm -rf "$TEST_TMP"
}
