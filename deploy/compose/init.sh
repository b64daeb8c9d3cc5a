#!/bin/bash
# One-shot initialiser of the compose stack (deploy/compose.yaml), run as root
# in the tools image. Idempotent: a second run keeps the token, the keys and
# the certificates, and only rewrites the configuration.
#
#   /var/lib/masad/hsm  (volume hsm)     the SoftHSM token holding the MASA key
#                                        (deploy/dev/softhsm.sh), and its softhsm2.conf
#   /pki                (volume pki)     the development manufacturer PKI with its CA
#                                        keys (deploy/dev/pki.sh): never mounted into masad
#   /etc/masad          (volume config)  what masad reads: masad.json, the TLS key and
#                                        chain, the MASA chain, the IDevID CA
#
# Environment:
#   MASAD_PKCS11_PIN, MASAD_PKCS11_SO_PIN   the token's PINs (required)
#   MASAD_PROXY_PROTOCOL     on (default): the device listener expects PROXY v1 from
#                            the load balancer (haproxy.cfg's send-proxy); off: plain TCP
#   MASAD_PROXY_TRUSTED_SOURCES  CIDR ranges the PROXY lines may come from (spaces or
#                            commas); default: the networks this container is on, which
#                            are the compose network the load balancer is on too
#   MASAD_TLS_NAMES          DNS names of the server certificate
#                            (default: localhost lb masad-1 masad-2)
#   MASAD_UID                the uid masad runs as (default 10001, as in deploy/Dockerfile)
set -euo pipefail

say() { printf 'init: %s\n' "$*" >&2; }
die() { printf 'init: error: %s\n' "$*" >&2; exit 1; }

HSM=/var/lib/masad/hsm
PKI=/pki
CONF=/etc/masad
TEMPLATE=${MASAD_CONFIG_TEMPLATE:-/opt/masad/compose/masad.json}
DEV=/opt/masad/dev
MASAD_UID=${MASAD_UID:-10001}
names=${MASAD_TLS_NAMES:-localhost lb masad-1 masad-2}
proxy=${MASAD_PROXY_PROTOCOL:-on}

: "${MASAD_PKCS11_PIN:?is required}" "${MASAD_PKCS11_SO_PIN:?is required}"
export MASAD_PKCS11_PIN MASAD_PKCS11_SO_PIN
[ -f "$TEMPLATE" ] || die "$TEMPLATE missing (mount deploy/compose/masad.json there)"
case $proxy in on | off) ;; *) die "MASAD_PROXY_PROTOCOL must be on or off, not '$proxy'" ;; esac

say "SoftHSM token 'masad' in $HSM"
set -a
eval "$("$DEV/softhsm.sh" "$HSM" masad)"
set +a

say "development PKI in $PKI"
"$DEV/pki.sh" "$PKI" 2>/dev/null

# The stack's TLS server certificate: the names clients use inside the
# compose network and on the host. Reissued when the names change.
server_certificate() {
    local want have
    want=$(printf '%s\n' $names | sort -u | paste -sd, -)
    have=$(cat "$PKI/server.names" 2>/dev/null || true)
    if [ -f "$PKI/server.crt" ] && [ "$want" = "$have" ] &&
        openssl verify -CAfile "$PKI/root-ca.crt" "$PKI/server.crt" >/dev/null 2>&1 &&
        openssl x509 -in "$PKI/server.crt" -noout -checkend 2592000 >/dev/null; then
        return 0
    fi
    say "server certificate for $want"
    local san="IP:127.0.0.1,IP:::1" n tmp
    for n in $names; do san="$san,DNS:$n"; done
    tmp=$(mktemp -d)
    [ -f "$PKI/server.key" ] ||
        (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/server.key")
    cat >"$tmp/ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    openssl req -new -key "$PKI/server.key" -subj "/O=masad-dev/CN=${names%% *}" -out "$tmp/csr"
    openssl x509 -req -in "$tmp/csr" -CA "$PKI/root-ca.crt" -CAkey "$PKI/root-ca.key" \
        -CAcreateserial -CAserial "$tmp/serial" -days 730 -sha256 -extfile "$tmp/ext" \
        -out "$PKI/server.crt" 2>/dev/null
    cat "$PKI/server.crt" "$PKI/root-ca.crt" >"$PKI/server-chain.crt"
    printf '%s\n' "$want" >"$PKI/server.names"
    rm -rf "$tmp"
}
server_certificate

# The ranges the load balancer connects from: this container's own networks.
trusted_sources() {
    if [ -n "${MASAD_PROXY_TRUSTED_SOURCES:-}" ]; then
        printf '%s\n' ${MASAD_PROXY_TRUSTED_SOURCES//,/ }
        return
    fi
    { ip -o -4 route show scope link; ip -o -6 route show proto kernel 2>/dev/null; } |
        awk '$1 ~ /\// && $1 !~ /^fe80:/ {print $1}' | sort -u
}

say "configuration in $CONF"
install -d -o root -g "$MASAD_UID" -m 750 "$CONF"
install -o root -g "$MASAD_UID" -m 644 "$PKI/server-chain.crt" "$CONF/tls-chain.crt"
install -o root -g "$MASAD_UID" -m 640 "$PKI/server.key" "$CONF/tls.key"
install -o root -g "$MASAD_UID" -m 644 "$PKI/masa-chain.crt" "$CONF/masa-chain.crt"
install -o root -g "$MASAD_UID" -m 644 "$PKI/idevid-ca.crt" "$CONF/idevid-ca.crt"
install -o root -g "$MASAD_UID" -m 644 "$PKI/root-ca.crt" "$CONF/root-ca.crt"
if [ "$proxy" = on ]; then
    sources=$(trusted_sources | jq -R . | jq -s -c .)
    [ "$sources" != "[]" ] || die "no network found for the PROXY trusted sources; set MASAD_PROXY_TRUSTED_SOURCES"
    say "device listener: PROXY protocol v1 from $sources"
    jq --argjson s "$sources" \
        '."masad-config:listeners".device."proxy-protocol" = {"trusted-sources": $s}' \
        "$TEMPLATE" >"$CONF/masad.json.new"
else
    say "device listener: no PROXY protocol"
    jq . "$TEMPLATE" >"$CONF/masad.json.new"
fi
chown root:"$MASAD_UID" "$CONF/masad.json.new"
chmod 644 "$CONF/masad.json.new"
mv -f "$CONF/masad.json.new" "$CONF/masad.json"

# masad (uid MASAD_UID) uses the token; SoftHSM takes file locks in it
chown -R "$MASAD_UID:$MASAD_UID" "$HSM"
say "done"
