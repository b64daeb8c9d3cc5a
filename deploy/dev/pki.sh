#!/usr/bin/env bash
# Development PKI for masad: manufacturer CAs, TLS, MASA signing certificate,
# device IDevIDs and customer (registrar) domains for tests.
#
# Usage:
#   pki.sh DIR                             manufacturer PKI in DIR
#   pki.sh idevid DIR SERIAL OUTPREFIX     device IDevID from DIR's IDevID CA
#   pki.sh registrar DIR NAME OUTPREFIX    customer domain CA + registrar certs
#
# Everything is ECDSA P-256 / SHA-256, keys PEM PKCS#8, certificates PEM.
# Idempotent: an existing key is kept; an existing certificate is kept while it
# matches its key, verifies against its issuer and is valid for 30 more days.
# Every certificate is checked with `openssl verify -x509_strict` and
# summarised on stderr.  Nothing is printed on stdout.
#
# `pki.sh DIR` writes (DIR mode 700):
#   root-ca.crt/.key     "masad development manufacturer root CA", 10 years
#   idevid-ca.crt/.key   "masad development IDevID CA" (pathlen 0), 10 years
#   tls.crt/.key         CN=localhost, SAN localhost/127.0.0.1/::1, serverAuth,
#                        2 years; tls-chain.crt = tls.crt + root-ca.crt
#   masa.crt             "masad development MASA", 5 years, for the key INSIDE
#                        the PKCS#11 token (see softhsm.sh); masa-chain.crt.
#                        Needs MASAD_PKCS11_URI and MASAD_PKCS11_MODULE (and
#                        SOFTHSM2_CONF for SoftHSM, MASAD_PKCS11_PIN, default
#                        1234) in the environment -- exported, not just set;
#                        skipped with a message when they are absent.
#   masa-file.crt/.key   same profile with a file key: ONLY for testing the
#                        PEM-key-file signer without an HSM; masa-file-chain.crt
#
# `pki.sh idevid` writes OUTPREFIX.crt, OUTPREFIX.key, OUTPREFIX-chain.crt
# (subject O=masad-dev, CN=masad dev device SERIAL, serialNumber=SERIAL;
# clientAuth; notAfter 99991231235959Z).  Safe to run concurrently for
# different serials.
#
# `pki.sh registrar` writes OUTPREFIX-ca.crt/.key ("NAME domain CA"),
# OUTPREFIX.crt/.key ("NAME registrar": clientAuth, serverAuth, cmcRA),
# OUTPREFIX-chain.crt, and OUTPREFIX-nocmcra.crt/.key (+ -nocmcra-chain.crt)
# without cmcRA.  DIR is not used to issue them (a customer domain does not
# depend on the manufacturer); it is accepted for a uniform call shape.
set -euo pipefail

prog=pki.sh
ROOT_CN="masad development manufacturer root CA"
IDEVID_CA_CN="masad development IDevID CA"
MASA_CN="masad development MASA"
MASA_FILE_CN="masad development MASA (file key)"
ORG=masad-dev
CA_DAYS=3650      # 10 years
MASA_DAYS=1826    # 5 years
TLS_DAYS=730      # 2 years
REG_DAYS=730
IDEVID_NOT_AFTER=99991231235959Z   # IEEE 802.1AR: no well-defined expiry
CHECKEND=$((30 * 24 * 3600))       # reissue a certificate expiring within 30 days

usage() {
    cat >&2 <<EOF
usage: $prog DIR
       $prog idevid DIR SERIAL OUTPREFIX
       $prog registrar DIR NAME OUTPREFIX
EOF
    exit "${1:-2}"
}
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }

command -v openssl >/dev/null || die "openssl not found"
umask 077

tmp=$(mktemp -d "${TMPDIR:-/tmp}/masad-pki.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

# One OpenSSL configuration for req and ca; the ca paths are relative to the
# per-signature folder sign() runs in (so concurrent runs never share them).
cat >"$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = req_dn
string_mask = utf8only
utf8 = yes
[req_dn]

[ca]
default_ca = devca
[devca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
preserve = yes
copy_extensions = none
email_in_dn = no
[policy_any]
# every attribute pki.sh uses; with "preserve" the CSR's order is kept
organizationName = optional
commonName = supplied
serialNumber = optional

[ext_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_subca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_tls]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_masa]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_idevid]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_registrar]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, serverAuth, 1.3.6.1.5.5.7.3.28
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ext_registrar_nocmcra]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF

# run CMD...: run an openssl command quietly; show its output if it fails.
run() {
    local out=$tmp/run.log
    if ! "$@" >"$out" 2>&1 </dev/null; then
        cat -- "$out" >&2
        die "failed: $*"
    fi
}

# Copy SRC to DEST atomically (rename within DEST's folder).
install_file() {  # install_file SRC DEST MODE
    local t
    t=$(mktemp "$2.tmp.XXXXXX")
    cat -- "$1" >"$t"
    chmod "$3" -- "$t"
    mv -f -- "$t" "$2"
}

# Write the concatenation of FILES to DEST unless DEST already has it.
write_concat() {  # write_concat DEST FILE...
    local dest=$1; shift
    cat -- "$@" >"$tmp/concat"
    cmp -s -- "$tmp/concat" "$dest" 2>/dev/null || install_file "$tmp/concat" "$dest" 644
}

# Keep KEY if it exists (it must be a P-256 key), else generate one.
ensure_key() {
    local key=$1
    if [[ -f $key ]]; then
        openssl pkey -in "$key" -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-256' ||
            die "$key exists but is not a readable ECDSA P-256 key (remove it to regenerate)"
        return 0
    fi
    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -pkeyopt ec_param_enc:named_curve -out "$tmp/new.key"
    install_file "$tmp/new.key" "$key" 600
    log "generated key $key"
}

pub_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
pub_of_key()  { openssl pkey -in "$1" -pubout 2>/dev/null; }
pub_of_csr()  { openssl req -in "$1" -noout -pubkey 2>/dev/null; }

verify_cmd() {  # verify_cmd CERT CAFILE [UNTRUSTED]
    local cert=$1 cafile=$2 untrusted=${3:-}
    openssl verify -x509_strict -CAfile "$cafile" \
        ${untrusted:+-untrusted "$untrusted"} "$cert"
}

# cert_ok CERT PUBKEY_PEM_FILE CAFILE [UNTRUSTED]: keep CERT?
cert_ok() {
    local cert=$1 pub=$2 cafile=$3 untrusted=${4:-}
    [[ -f $cert ]] || return 1
    [[ "$(pub_of_cert "$cert")" == "$(cat -- "$pub")" ]] || {
        log "$cert does not match its key: reissuing"; return 1; }
    verify_cmd "$cert" "$cafile" "$untrusted" >/dev/null 2>&1 || {
        log "$cert does not verify against $cafile: reissuing"; return 1; }
    openssl x509 -in "$cert" -noout -checkend "$CHECKEND" >/dev/null || {
        log "$cert expires within 30 days: reissuing"; return 1; }
}

# make_csr KEY SUBJECT OUT
make_csr() {
    run openssl req -new -config "$tmp/openssl.cnf" -key "$1" -subj "$2" -sha256 -out "$3"
}

# sign CSR CA_CRT CA_KEY EXT_SECTION OUT -days N | -enddate TIME
sign() {
    local csr=$1 cacrt=$2 cakey=$3 ext=$4 out=$5; shift 5
    local d
    d=$(mktemp -d "$tmp/ca.XXXXXX")
    : >"$d/index.txt"
    ( cd "$d" && run openssl ca -batch -config "$tmp/openssl.cnf" -name devca \
        -cert "$cacrt" -keyfile "$cakey" -in "$csr" -out "$d/cert.pem" \
        -notext -rand_serial -md sha256 -utf8 -extensions "$ext" "$@" )
    install_file "$d/cert.pem" "$out" 644
}

# summary CERT CAFILE [UNTRUSTED] [PURPOSE]: verify and print one line.
summary() {
    local cert=$1 cafile=$2 untrusted=${3:-} purpose=${4:-} res subj end serial
    res=$(openssl verify -x509_strict ${purpose:+-purpose "$purpose"} -CAfile "$cafile" \
            ${untrusted:+-untrusted "$untrusted"} "$cert" 2>&1) ||
        die "verification of $cert failed:
$res"
    subj=$(openssl x509 -in "$cert" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')
    end=$(openssl x509 -in "$cert" -noout -enddate | sed 's/^notAfter=//')
    serial=$(openssl x509 -in "$cert" -noout -serial | sed 's/^serial=//')
    log "verify OK: $cert [$subj] notAfter=$end serial=${serial:0:16}..."
}

abs_dir() { mkdir -p -- "$1" && (cd -- "$1" && pwd -P); }
abs_prefix() {  # absolute OUTPREFIX, creating its folder
    local d b
    d=$(dirname -- "$1"); b=$(basename -- "$1")
    d=$(abs_dir "$d")
    printf '%s/%s\n' "$d" "$b"
}

# ---------------------------------------------------------------- DIR mode
manufacturer_pki() {
    local dir
    dir=$(abs_dir "$1")
    chmod 700 -- "$dir"
    cd -- "$dir"

    # Root CA (self-signed).
    ensure_key root-ca.key
    pub_of_key root-ca.key >"$tmp/root.pub"
    if ! cert_ok root-ca.crt "$tmp/root.pub" root-ca.crt; then
        run openssl req -x509 -new -config "$tmp/openssl.cnf" -extensions ext_root \
            -key root-ca.key -subj "/O=$ORG/CN=$ROOT_CN" -sha256 -days "$CA_DAYS" \
            -out "$tmp/root.crt"
        install_file "$tmp/root.crt" root-ca.crt 644
        log "issued root-ca.crt"
    fi

    # IDevID issuing CA.
    ensure_key idevid-ca.key
    pub_of_key idevid-ca.key >"$tmp/idevid-ca.pub"
    if ! cert_ok idevid-ca.crt "$tmp/idevid-ca.pub" root-ca.crt; then
        make_csr idevid-ca.key "/O=$ORG/CN=$IDEVID_CA_CN" "$tmp/idevid-ca.csr"
        sign "$tmp/idevid-ca.csr" "$dir/root-ca.crt" "$dir/root-ca.key" ext_subca \
            idevid-ca.crt -days "$CA_DAYS"
        log "issued idevid-ca.crt"
    fi

    # TLS server certificate.
    ensure_key tls.key
    pub_of_key tls.key >"$tmp/tls.pub"
    if ! cert_ok tls.crt "$tmp/tls.pub" root-ca.crt; then
        make_csr tls.key "/O=$ORG/CN=localhost" "$tmp/tls.csr"
        sign "$tmp/tls.csr" "$dir/root-ca.crt" "$dir/root-ca.key" ext_tls tls.crt -days "$TLS_DAYS"
        log "issued tls.crt"
    fi
    write_concat tls-chain.crt tls.crt root-ca.crt

    # MASA signing certificate for a file key (development without an HSM only).
    ensure_key masa-file.key
    pub_of_key masa-file.key >"$tmp/masa-file.pub"
    if ! cert_ok masa-file.crt "$tmp/masa-file.pub" root-ca.crt; then
        make_csr masa-file.key "/O=$ORG/CN=$MASA_FILE_CN" "$tmp/masa-file.csr"
        sign "$tmp/masa-file.csr" "$dir/root-ca.crt" "$dir/root-ca.key" ext_masa \
            masa-file.crt -days "$MASA_DAYS"
        log "issued masa-file.crt"
    fi
    write_concat masa-file-chain.crt masa-file.crt root-ca.crt

    # MASA signing certificate for the key inside the PKCS#11 token.
    local have_masa=0
    if [[ -n ${MASAD_PKCS11_URI:-} && -n ${MASAD_PKCS11_MODULE:-} ]]; then
        masa_from_token "$dir"
        have_masa=1
    else
        log "MASAD_PKCS11_URI / MASAD_PKCS11_MODULE not in the environment (exported?):" \
            "skipping masa.crt (the token key's certificate)"
        [[ -f masa.crt ]] && have_masa=1
    fi

    summary root-ca.crt root-ca.crt
    summary idevid-ca.crt root-ca.crt
    summary tls.crt root-ca.crt "" sslserver
    summary masa-file.crt root-ca.crt
    if [[ $have_masa == 1 ]]; then summary masa.crt root-ca.crt; fi
}

masa_from_token() {
    local dir=$1 uri=$MASAD_PKCS11_URI module=$MASAD_PKCS11_MODULE out
    [[ -f $module ]] || die "MASAD_PKCS11_MODULE=$module does not exist"
    # OpenSSL 3.0 + libp11 (libengine-pkcs11-openssl): the "pkcs11" engine
    # loads PKCS11_MODULE_PATH; the PIN is handed over through -passin so it
    # never appears on a command line.
    out=$(PKCS11_MODULE_PATH=$module openssl engine -t pkcs11 2>&1) ||
        die "the OpenSSL pkcs11 engine is not usable (install libengine-pkcs11-openssl):
$out"
    PKCS11_MODULE_PATH=$module MASAD_PKI_PIN=${MASAD_PKCS11_PIN:-1234} \
        run openssl req -new -config "$tmp/openssl.cnf" \
            -engine pkcs11 -keyform engine -key "$uri" -passin env:MASAD_PKI_PIN \
            -subj "/O=$ORG/CN=$MASA_CN" -sha256 -out "$tmp/masa.csr"
    # The CSR is signed by the token key: its self-signature proves that the
    # public key in it is the token key's.
    run openssl req -in "$tmp/masa.csr" -noout -verify
    pub_of_csr "$tmp/masa.csr" >"$tmp/masa.pub"
    if ! cert_ok masa.crt "$tmp/masa.pub" root-ca.crt; then
        sign "$tmp/masa.csr" "$dir/root-ca.crt" "$dir/root-ca.key" ext_masa \
            masa.crt -days "$MASA_DAYS"
        log "issued masa.crt for the token key $uri"
    fi
    write_concat masa-chain.crt masa.crt root-ca.crt
}

# ------------------------------------------------------------- idevid mode
issue_idevid() {
    local dir serial=$2 prefix
    [[ -d $1 ]] || die "$1: no such directory (run '$prog DIR' first)"
    dir=$(cd -- "$1" && pwd -P)
    [[ $serial =~ ^[A-Za-z0-9._-]{1,64}$ ]] ||
        die "SERIAL must be 1-64 characters of [A-Za-z0-9._-]: '$serial'"
    local f
    for f in root-ca.crt idevid-ca.crt idevid-ca.key; do
        [[ -f $dir/$f ]] || die "$dir/$f missing (run '$prog $1' first)"
    done
    prefix=$(abs_prefix "$3")

    ensure_key "$prefix.key"
    pub_of_key "$prefix.key" >"$tmp/dev.pub"
    if ! cert_ok "$prefix.crt" "$tmp/dev.pub" "$dir/root-ca.crt" "$dir/idevid-ca.crt"; then
        make_csr "$prefix.key" "/O=$ORG/CN=masad dev device $serial/serialNumber=$serial" "$tmp/dev.csr"
        sign "$tmp/dev.csr" "$dir/idevid-ca.crt" "$dir/idevid-ca.key" ext_idevid \
            "$prefix.crt" -enddate "$IDEVID_NOT_AFTER"
        log "issued $prefix.crt"
    fi
    write_concat "$prefix-chain.crt" "$prefix.crt" "$dir/idevid-ca.crt"
    summary "$prefix.crt" "$dir/root-ca.crt" "$dir/idevid-ca.crt" sslclient
}

# ---------------------------------------------------------- registrar mode
issue_registrar() {
    local name=$2 prefix
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9._\ -]{0,63}$ ]] ||
        die "NAME must be 1-64 characters of [A-Za-z0-9._ -]: '$name'"
    prefix=$(abs_prefix "$3")

    ensure_key "$prefix-ca.key"
    pub_of_key "$prefix-ca.key" >"$tmp/dca.pub"
    if ! cert_ok "$prefix-ca.crt" "$tmp/dca.pub" "$prefix-ca.crt"; then
        run openssl req -x509 -new -config "$tmp/openssl.cnf" -extensions ext_root \
            -key "$prefix-ca.key" -subj "/O=$name/CN=$name domain CA" -sha256 \
            -days "$CA_DAYS" -out "$tmp/dca.crt"
        install_file "$tmp/dca.crt" "$prefix-ca.crt" 644
        log "issued $prefix-ca.crt"
    fi

    local suffix ext cn
    for suffix in "" -nocmcra; do
        if [[ -z $suffix ]]; then
            ext=ext_registrar; cn="$name registrar"
        else
            ext=ext_registrar_nocmcra; cn="$name registrar (no cmcRA)"
        fi
        ensure_key "$prefix$suffix.key"
        pub_of_key "$prefix$suffix.key" >"$tmp/reg.pub"
        if ! cert_ok "$prefix$suffix.crt" "$tmp/reg.pub" "$prefix-ca.crt"; then
            make_csr "$prefix$suffix.key" "/O=$name/CN=$cn" "$tmp/reg.csr"
            sign "$tmp/reg.csr" "$prefix-ca.crt" "$prefix-ca.key" "$ext" \
                "$prefix$suffix.crt" -days "$REG_DAYS"
            log "issued $prefix$suffix.crt"
        fi
        write_concat "$prefix$suffix-chain.crt" "$prefix$suffix.crt" "$prefix-ca.crt"
    done
    summary "$prefix-ca.crt" "$prefix-ca.crt"
    summary "$prefix.crt" "$prefix-ca.crt" "" sslclient
    summary "$prefix-nocmcra.crt" "$prefix-ca.crt" "" sslclient
}

# -------------------------------------------------------------------- main
case ${1:-} in
    -h|--help) usage 0 ;;
esac
if [[ $# -eq 4 && $1 == idevid ]]; then
    [[ -n $3 && -n $4 ]] || usage
    issue_idevid "$2" "$3" "$4"
elif [[ $# -eq 4 && $1 == registrar ]]; then
    [[ -n $4 ]] || usage
    issue_registrar "$2" "$3" "$4"
elif [[ $# -eq 1 && -n $1 ]]; then
    manufacturer_pki "$1"
else
    usage
fi
