#!/usr/bin/env bash
# Development SoftHSM token holding the MASA signing key.
#
# Usage: softhsm.sh TOKENDIR [LABEL]
#
# Creates (or reuses) a SoftHSM2 token store in TOKENDIR, a token labelled
# LABEL (default "masad") and, inside the token, an ECDSA P-256 key pair
# labelled "masa" (id 01) whose private key is sensitive and never
# extractable.  Idempotent: a second run changes nothing.
#
# Environment:
#   MASAD_PKCS11_PIN     user PIN          (default 1234)
#   MASAD_PKCS11_SO_PIN  security officer PIN (default 12345678)
#
# stdout: exactly three shell assignments, for eval (they are not exported):
#   SOFTHSM2_CONF='TOKENDIR/softhsm2.conf'
#   MASAD_PKCS11_MODULE='/path/to/libsofthsm2.so'
#   MASAD_PKCS11_URI='pkcs11:token=LABEL;object=masa;type=private'
# e.g.  set -a; eval "$(deploy/dev/softhsm.sh build/dev/token)"; set +a
# Everything else goes to stderr.
set -euo pipefail

prog=softhsm.sh
KEY_LABEL=masa
KEY_ID=01

usage() {
    echo "usage: $prog TOKENDIR [LABEL]   (env: MASAD_PKCS11_PIN, MASAD_PKCS11_SO_PIN)" >&2
    exit "${1:-2}"
}
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

# Single-quote a value for the shell.
shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

case ${1:-} in -h|--help) usage 0 ;; esac
[[ $# -ge 1 && $# -le 2 && -n $1 ]] || usage

label=${2:-masad}
pin=${MASAD_PKCS11_PIN:-1234}
so_pin=${MASAD_PKCS11_SO_PIN:-12345678}

# The label goes verbatim into a PKCS#11 URI: keep it to characters that
# need no percent-encoding (and to the 32 bytes a token label can hold).
[[ $label =~ ^[A-Za-z0-9._-]{1,32}$ ]] ||
    die "LABEL must be 1-32 characters of [A-Za-z0-9._-]: '$label'"
[[ ${#pin} -ge 4 && ${#so_pin} -ge 4 ]] ||
    die "MASAD_PKCS11_PIN and MASAD_PKCS11_SO_PIN need at least 4 characters"

for tool in softhsm2-util pkcs11-tool; do
    command -v "$tool" >/dev/null ||
        die "$tool not found (install the softhsm2 and opensc packages)"
done

find_module() {
    local multiarch="" c
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
                gcc -print-multiarch 2>/dev/null || true)
    for c in /usr/lib/softhsm/libsofthsm2.so \
             ${multiarch:+/usr/lib/$multiarch/softhsm/libsofthsm2.so} \
             /usr/local/lib/softhsm/libsofthsm2.so \
             /usr/lib64/pkcs11/libsofthsm2.so \
             /usr/lib/pkcs11/libsofthsm2.so; do
        [[ -f $c ]] && { printf '%s\n' "$c"; return 0; }
    done
    # Last resort: ask dpkg where the packages put it.
    c=$(dpkg -L libsofthsm2 softhsm2 2>/dev/null | grep '/libsofthsm2\.so$' | head -n1 || true)
    [[ -n $c && -f $c ]] && { printf '%s\n' "$c"; return 0; }
    return 1
}
module=$(find_module) || die "libsofthsm2.so not found (install the softhsm2 package)"

# Absolute TOKENDIR (it goes into the config file and the printed lines).
mkdir -p -- "$1"
tokendir=$(cd -- "$1" && pwd -P)
chmod 700 -- "$tokendir"
mkdir -p -- "$tokendir/tokens"
chmod 700 -- "$tokendir/tokens"

conf=$tokendir/softhsm2.conf
conf_text="# SoftHSM2 configuration for masad development (written by $prog)
directories.tokendir = $tokendir/tokens
objectstore.backend = file
log.level = ERROR"
if [[ ! -f $conf ]] || [[ "$(cat -- "$conf")" != "$conf_text" ]]; then
    tmp=$(mktemp "$tokendir/.softhsm2.conf.XXXXXX")
    printf '%s\n' "$conf_text" >"$tmp"
    chmod 600 -- "$tmp"
    mv -f -- "$tmp" "$conf"
    log "wrote $conf"
fi
export SOFTHSM2_CONF=$conf

p11() { pkcs11-tool --module "$module" "$@"; }

token_exists() {
    # "  token label        : masad" (pkcs11-tool trims the padding)
    p11 --list-token-slots 2>/dev/null |
        sed -n 's/^[[:space:]]*token label[[:space:]]*:[[:space:]]*//p' |
        sed 's/[[:space:]]*$//' | grep -qxF -- "$label"
}

if token_exists; then
    log "token '$label' exists in $tokendir/tokens"
else
    log "initialising token '$label' in $tokendir/tokens"
    softhsm2-util --init-token --free --label "$label" \
        --pin "$pin" --so-pin "$so_pin" >&2
    token_exists || die "token '$label' not visible after initialisation"
fi

# Print the "Access:" line of every private key labelled $KEY_LABEL, one a line.
# pkcs11-tool 0.23 ignores --label for --list-objects, so filter here.
masa_key_access() {
    local out
    out=$(p11 --token-label "$label" --login --pin "$pin" \
              --list-objects --type privkey 2>&1) ||
        die "cannot list the objects of token '$label' (wrong MASAD_PKCS11_PIN?):
$out"
    printf '%s\n' "$out" | awk -v want="$KEY_LABEL" '
        function flush() { if (priv && lbl == want) print acc }
        /^[^[:space:]]/ { flush(); priv = ($0 ~ /^Private Key Object/); lbl = ""; acc = ""; next }
        /^[[:space:]]+label:/ { l = $0; sub(/^[[:space:]]+label:[[:space:]]*/, "", l); lbl = l; next }
        /^[[:space:]]+Access:/ { a = $0; sub(/^[[:space:]]+Access:[[:space:]]*/, "", a); acc = (a == "" ? "-" : a); next }
        END { flush() }'
}

access=$(masa_key_access)
if [[ -z $access ]]; then
    log "generating ECDSA P-256 key pair '$KEY_LABEL' (id $KEY_ID) inside token '$label'"
    p11 --token-label "$label" --login --pin "$pin" \
        --keypairgen --key-type EC:prime256v1 \
        --label "$KEY_LABEL" --id "$KEY_ID" \
        --usage-sign --sensitive >&2
    access=$(masa_key_access)
    [[ -n $access ]] || die "key pair generation reported success but no private key '$KEY_LABEL' is listed"
else
    log "private key '$KEY_LABEL' exists in token '$label'"
fi

# Verify: exactly one such key, sensitive and never extractable.
[[ $(printf '%s\n' "$access" | wc -l) -eq 1 ]] ||
    die "token '$label' holds more than one private key labelled '$KEY_LABEL'; the URI would be ambiguous"
has_flag() {  # has_flag "a, b, c" "b"
    local IFS=, f
    for f in $1; do
        f=${f#"${f%%[![:space:]]*}"}; f=${f%"${f##*[![:space:]]}"}
        [[ $f == "$2" ]] && return 0
    done
    return 1
}
if ! has_flag "$access" "sensitive" || ! has_flag "$access" "never extractable" ||
   has_flag "$access" "extractable"; then
    die "private key '$KEY_LABEL' in token '$label' is NOT sensitive and non-extractable (Access: $access).
Delete $tokendir/tokens (or the key) and run $prog again."
fi
# Without a login the private key must not even be listed (CKA_PRIVATE).
if p11 --token-label "$label" --list-objects --type privkey 2>/dev/null | grep -q '^Private Key Object'; then
    die "private key '$KEY_LABEL' in token '$label' is visible without login (CKA_PRIVATE is false)"
fi
log "private key '$KEY_LABEL' OK (Access: $access)"

printf 'SOFTHSM2_CONF=%s\n' "$(shq "$conf")"
printf 'MASAD_PKCS11_MODULE=%s\n' "$(shq "$module")"
printf 'MASAD_PKCS11_URI=%s\n' "$(shq "pkcs11:token=$label;object=$KEY_LABEL;type=private")"
