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
