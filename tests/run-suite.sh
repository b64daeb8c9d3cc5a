#!/usr/bin/env bash
# Runs one criterion suite for `meson test` (tests/meson.build).
#
# Usage: run-suite.sh [--bare] SUITE [criterion options...]
#
# Most suites need what scripts/test makes for a run: a SoftHSM token, the
# test PKI and a private PostgreSQL, named by MASAD_TEST_* variables. When
# those are already set (a run inside scripts/test's environment) the suite
# runs as it is; otherwise this makes them for this suite alone and removes
# them after. MASAD_TEST_BIN (the masad to start) comes from meson. --bare:
# the suite needs none of it, only the source tree and the sanitizer options.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"

bare=0
[ "${1:-}" = --bare ] && bare=1 && shift
suite=$1
shift
if [ $bare = 1 ]; then
    test_env_options
elif [ -z "${MASAD_TEST_TMP:-}" ]; then
    trap test_env_down EXIT
    # its messages land in meson's log of this test
    test_env_up "${MASAD_TEST_BIN:?is not set (meson sets it)}" >&2
fi
"$suite" "$@"
