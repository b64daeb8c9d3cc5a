#!/usr/bin/env bash
# Each IETF module in yang/ must state exactly the schema of the published
# module it renders: tests/yang/schema-check.py compares it with the
# reference in tests/yang/reference/ (tests/yang/README.md says what those
# are). Descriptions are masad's own words and are not compared, also where
# libyang 2.1.30 prints them loose inside rc:yang-data and sx:structure.
# ietf-voucher-request has no reference (libyang cannot compile the
# published module): the checker derives its voucher container from
# ietf-voucher's reference and RFC 8995 §3.3, and tests/unit/test_yang.c pins
# its compiled tree as well.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v yanglint >/dev/null || {
    echo "yang-schema: yanglint is missing (Debian package libyang2-tools)" >&2
    exit 1
}
status=0
for f in "$root"/yang/ietf-*.yang; do
    printf '  '
    python3 "$root/tests/yang/schema-check.py" check "$root/yang" "$f" || status=1
done
exit $status
