/*
 * Load generator for the SZTP bootstrap server (tests/bench/sztp.sh runs it).
 *
 *   bench_sztp DEVICE_URL MGMT_URL TOKEN PKI_DIR DEVICE_DIR DEVICES MASAD_PID POSTMASTER_PID
 *              EVENT_LOOPS JOB_THREADS
 *
 * PKI_DIR is what deploy/dev/pki.sh made: root-ca.crt (it signs masad's TLS
 * and voucher-signing certificates), idevid-ca.crt/.key, and, made by
 * sztp.sh, the owner bench-signed: bench-signed-ca.crt (the certificate
 * ownership vouchers pin) and bench-signed-conveyed.der (its signed conveyed
 * information, as uploaded). sztp.sh has already created the owners
 * bench-unsigned and bench-signed through the management API.
 *
 * 1. Makes DEVICES devices in DEVICE_DIR: an EC P-256 key and an IDevID from
 *    idevid-ca (the profile of pki.sh idevid: subject O=masad-dev,
 *    CN=masad dev device SERIAL, serialNumber=SERIAL, with SERIAL
 *    BENCH-SZTP-000001 and so on), one PEM file each, certificate then key
 *    (for curl --cert by hand); the requests use the same certificate and
 *    key held in memory (see on_ssl_ctx).
 * 2. Registers them (POST /api/v1/devices:batch) and assigns the first half
 *    to bench-unsigned and the rest to bench-signed
 *    (POST /api/v1/ownership:batch).
 * 3. Two phases, each at 8 and at 32 concurrent clients (threads):
 *    "unsigned" asks for the devices of bench-unsigned with an empty input;
 *    "signed nonced" asks for the devices of bench-signed with
 *    signed-data-preferred and a fresh 16-byte nonce, so that masad signs a
 *    voucher for every answer. Every request goes out on a NEW connection
 *    (full TLS 1.3 handshake, no session resumption) with that device's
 *    IDevID as the client certificate. Within a level every device is asked
 *    for once: the first 2 per client untimed (warm-up), the rest timed.
 *
 * Every answer must be 200 application/yang-data+json with the expected
 * leaves; anything else prints its status and body and exits 1. A few
 * answers per level are checked through (spot checks): the unsigned
 * conveyed information's content type and content; for signed answers the
 * owner's CMS as uploaded, the owner certificate (two certificates), and the
 * voucher's signature (against root-ca.crt), serial number, nonce, assertion
 * and pinned-domain-cert.
 *
 * Per level it prints requests/s (wall time from the release of the clients
 * to the last answer), p50 and p99 latency (connect, handshake, request and
 * answer), and CPU per request: masad (/proc/PID/stat utime + stime; also
 * split by thread, see thread_split), the PostgreSQL cluster (postmaster,
 * its children and the children it reaped) and this program (getrusage: the
 * client side of every TLS handshake is here).
 *
 * BENCH_SZTP_MARK_DIR in the environment: a folder where the files
 * PHASE-C.start and PHASE-C.end (signed-32.start, ...) are made when a
 * level's clock starts and stops, for sztp.sh's perf recording.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define SERIAL_FMT "BENCH-SZTP-%06ld"
#define PRODUCT "bench-sztp-device"
#define OWNER_UNSIGNED "bench-unsigned"
#define OWNER_SIGNED "bench-signed"
#define MAX_DEVICES 999999L
#define MGMT_BATCH 5000L
#define WARMUP_PER_CLIENT 2
#define SPOTS 4 /* answers checked through per level */
#define IDLE_SECONDS 2
#define NONCE_LEN 16
#define GOAL_US 1000.0 /* masad CPU per signed nonced answer */

#define RPC "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data"
#define YANG_JSON "application/yang-data+json"
#define OID_CONVEYED_JSON "1.2.840.113549.1.9.16.1.43"
#define OID_VOUCHER "1.2.840.113549.1.9.16.1.40"

static const long CLIENTS[] = {8, 32};
#define NCLIENTS (sizeof(CLIENTS) / sizeof(CLIENTS[0]))

struct device {
    char serial[32];
    char pem[4096];          /* certificate and key */
    X509 *cert;              /* the same, parsed once */
    EVP_PKEY *key;
    unsigned char nonce[NONCE_LEN];
    char body[160];          /* this level's input */
};

/* masad's CPU by thread (see thread_split) */
struct split {
    unsigned long long loops, jobs, other;
};

struct cpu {
    unsigned long long masad, pg; /* clock ticks */
    struct split threads;         /* clock ticks */
    double self;                  /* seconds, this process */
    struct machine box;
};

static pid_t masad_pid, postmaster_pid;
static long event_loops, job_threads;
static double ticks_per_second;
static const char *device_url, *mgmt_url, *token, *pki_dir, *mark_dir;
static char tls_ca[4096], pinned_ca[4096], signed_der_path[4096];
static char *signed_b64, *pinned_b64; /* the owner's CMS and the domain CA, base64 */
static struct device *devices;
static long device_count;
static X509_STORE *tls_trust; /* root-ca.crt, for every client connection */

/* the client side's TLS handshakes, from an info callback */
static atomic_long handshakes, resumed, not_tls13;
static int counted_index; /* SSL ex_data: this connection's handshake was counted */

/* ---- files and encodings ---- */

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot read %s: %s", path, strerror(errno));
    struct buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        buf_reserve(&b, n);
        memcpy(b.data + b.len, chunk, n);
        b.len += n;
        b.data[b.len] = 0;
    }
    fclose(f);
    if (!b.data)
        die("%s is empty", path);
    *len = b.len;
    return (unsigned char *)b.data;
}

/* ---- base64 and the few JSON strings the answers hold ---- */

static char *b64_encode(const unsigned char *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        die("out of memory");
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static unsigned char *b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        die("out of memory");
    int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (got < 0) {
        free(out);
        return NULL;
    }
    size_t pad = (s[n - 1] == '=') + (s[n - 2] == '=');
    *len = (size_t)got - pad;
    return out;
}

/* The string value of "key" in JSON text (first occurrence), with \/, \" and
 * \\ unescaped; NULL when absent. Enough for masad's answers and vouchers. */
static char *json_string(const char *json, const char *key)
{
    char quoted[96];
    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (!p)
        return NULL;
    p += strlen(quoted);
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != ':')
        return NULL;
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != '"')
        return NULL;
    struct buf b = {0};
    buf_reserve(&b, 0);
    for (; *p && *p != '"'; p++) {
        char c = *p;
        if (c == '\\' && p[1])
            c = *++p;
        buf_reserve(&b, 1);
        b.data[b.len++] = c;
    }
    b.data[b.len] = 0;
    return *p == '"' ? b.data : (free(b.data), NULL);
}

/* ---- clocks and CPU ---- */

static int compare_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/*
 * masad's threads carry no names. It starts them in this order: the main
 * thread, the JOB_THREADS job threads (service/edge/jobs.c), then the
 * EVENT_LOOPS event-loop threads (service/edge/server.c), so with thread ids
 * in ascending order the last EVENT_LOOPS are the event loops (TLS
 * handshakes, HTTP) and the JOB_THREADS before them the job threads (the
 * RPC itself: database, signing, YANG); the rest is "other". An inference
 * from the start order, not a label: thread ids that wrap around would
 * spoil it, and a change of that order in masad too.
 */
static struct split thread_split(long *count)
{
    char dir[64], path[128];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)masad_pid);
    DIR *d = opendir(dir);
    if (!d)
        die("masad %d is gone", (int)masad_pid);
    long tids[512], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512)
        if (isdigit((unsigned char)e->d_name[0]))
            tids[n++] = atol(e->d_name);
    closedir(d);
    qsort(tids, (size_t)n, sizeof(long), compare_long);
    struct split s = {0, 0, 0};
    for (long i = 0; i < n; i++) {
        unsigned long long t = 0;
        snprintf(path, sizeof(path), "%s/%ld/stat", dir, tids[i]);
        if (!stat_file(path, NULL, &t, NULL))
            continue; /* a thread that has just ended */
        if (i >= n - event_loops)
            s.loops += t;
        else if (i >= n - event_loops - job_threads)
            s.jobs += t;
        else
            s.other += t;
    }
    if (count)
        *count = n;
    return s;
}

static struct cpu cpu_now(void)
{
    struct cpu c = {0, cluster_ticks(postmaster_pid), thread_split(NULL), self_cpu(), machine_now()};
    if (!proc_stat(masad_pid, NULL, &c.masad, NULL))
        die("masad %d is gone", (int)masad_pid);
    return c;
}

/* ---- 1. devices ---- */

/* deploy/dev/pki.sh's idevid profile (ext_idevid): CA:FALSE,
 * digitalSignature, clientAuth, SKI from the key, AKI keyid; notAfter
 * 99991231235959Z (IEEE 802.1AR); subject O, CN and serialNumber. */
static void make_idevid(struct device *d, X509 *ca, EVP_PKEY *ca_key)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!key || !x)
        die_openssl("cannot make a device key");
    X509_set_version(x, 2);
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        die_openssl("RAND_bytes");
    rnd[0] = (unsigned char)((rnd[0] & 0x3f) | 0x40); /* positive, 16 bytes */
    BIGNUM *bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509_NAME *name = X509_get_subject_name(x);
    char cn[64];
    snprintf(cn, sizeof(cn), "masad dev device %s", d->serial);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"masad-dev", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "serialNumber", MBSTRING_ASC,
                               (const unsigned char *)d->serial, -1, -1, 0);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    if (ASN1_TIME_set_string_X509(X509_getm_notAfter(x), "99991231235959Z") != 1)
        die_openssl("cannot set notAfter");
    X509_set_pubkey(x, key);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature");
    add_ext(x, &ctx, NID_ext_key_usage, "clientAuth");
    add_ext(x, &ctx, NID_subject_key_identifier, "hash");
    add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
    if (X509_sign(x, ca_key, EVP_sha256()) <= 0)
        die_openssl("cannot sign an IDevID");
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->pem);
    FILE *f = fopen(tmp, "w");
    if (!f)
        die("cannot write %s: %s", tmp, strerror(errno));
    int ok = PEM_write_X509(f, x) == 1 && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    if (fclose(f) != 0 || !ok || rename(tmp, d->pem) != 0)
        die("cannot write %s", d->pem);
    d->cert = x;
    d->key = key;
}

static void make_devices(const char *dir)
{
    char ca_path[4096], ca_key_path[4096];
    path_join(ca_path, sizeof(ca_path), pki_dir, "idevid-ca.crt");
    path_join(ca_key_path, sizeof(ca_key_path), pki_dir, "idevid-ca.key");
    X509 *ca = read_cert(ca_path);
    EVP_PKEY *ca_key = read_key(ca_key_path);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        die("cannot make %s: %s", dir, strerror(errno));
    devices = calloc((size_t)device_count, sizeof(*devices));
    if (!devices)
        die("out of memory");
    double t = now();
    for (long i = 0; i < device_count; i++) {
        struct device *d = &devices[i];
        snprintf(d->serial, sizeof(d->serial), SERIAL_FMT, i + 1);
        char name[64];
        snprintf(name, sizeof(name), "%s.pem", d->serial);
        path_join(d->pem, sizeof(d->pem), dir, name);
        make_idevid(d, ca, ca_key);
    }
    fprintf(stderr, "devices: %ld IDevIDs made in %s in %.1f s\n", device_count, dir, now() - t);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
}

/* ---- 2. registration through the management API ---- */

static const char *owner_of(long i)
{
    return i < device_count / 2 ? OWNER_UNSIGNED : OWNER_SIGNED;
}

/* Sends the devices in batches; each answer must count all of them in a + b. */
static void send_batches(struct mgmt *m, const char *path, const char *array, const char *a,
                         const char *b)
{
    struct buf body = {0};
    for (long first = 0; first < device_count; first += MGMT_BATCH) {
        long last = first + MGMT_BATCH < device_count ? first + MGMT_BATCH : device_count;
        body.len = 0;
        buf_printf(&body, "{\"%s\": [", array);
        for (long i = first; i < last; i++) {
            if (i > first)
                buf_printf(&body, ", ");
            if (!strcmp(array, "devices"))
                buf_printf(&body, "{\"serial_number\": \"%s\", \"product\": \"" PRODUCT "\"}",
                           devices[i].serial);
            else
                buf_printf(&body, "{\"serial_number\": \"%s\", \"owner_id\": \"%s\"}",
                           devices[i].serial, owner_of(i));
        }
        buf_printf(&body, "]}");
        long status = mgmt_request(m, "POST", path, body.data, body.len);
        long na = json_long(m->answer.data, a), nb = json_long(m->answer.data, b);
        if (status != 200 || na < 0 || nb < 0 || na + nb != last - first) {
            fprintf(stderr, "bench_sztp: POST %s: unexpected answer %ld\n%s\n", path, status,
                    m->answer.data);
            exit(1);
        }
    }
    free(body.data);
}

static void register_devices(void)
{
    struct mgmt m;
    mgmt_init(&m, mgmt_url, tls_ca, token);
    double t = now();
    send_batches(&m, "/api/v1/devices:batch", "devices", "created", "updated");
    send_batches(&m, "/api/v1/ownership:batch", "assignments", "assigned", "unchanged");
    fprintf(stderr,
            "registration: %ld devices registered; %ld assigned to " OWNER_UNSIGNED
            ", %ld to " OWNER_SIGNED " (%.1f s)\n",
            device_count, device_count / 2, device_count - device_count / 2, now() - t);
    mgmt_free(&m);
}

/* ---- 3. the devices' requests ---- */

struct spot {
    long device;
    char *answer;
};

struct level {
    const char *phase;  /* "unsigned" or "signed" */
    bool is_signed;
    long clients;
    long warm_first;    /* warm-up devices: warm_first .. first - 1 */
    long first, count;  /* timed devices: first .. first + count - 1 */
    atomic_long next;
    atomic_long new_connections;
    double *latency;    /* seconds, by device - first */
    struct spot spots[SPOTS];
    pthread_barrier_t warmed, go;
};

struct client {
    struct level *lv;
    long index;
    long device; /* of the request in progress */
    pthread_t thread;
    double finished;
    CURL *curl;
    struct curl_slist *headers;
    struct buf answer;
};

static void on_tls_info(const SSL *ssl, int where, int ret)
{
    (void)ret;
    /* once per connection: TLS 1.3 post-handshake messages may report again */
    if (!(where & SSL_CB_HANDSHAKE_DONE) || SSL_get_ex_data(ssl, counted_index))
        return;
    SSL_set_ex_data((SSL *)ssl, counted_index, (void *)1);
    atomic_fetch_add(&handshakes, 1);
    if (SSL_session_reused((SSL *)ssl))
        atomic_fetch_add(&resumed, 1);
    if (SSL_version(ssl) != TLS1_3_VERSION)
        atomic_fetch_add(&not_tls13, 1);
}

/*
 * libcurl makes an SSL_CTX for every new connection. Into it go the device's
 * certificate and key and the trust store, all parsed once before any clock
 * starts: as libcurl file options they would be read and decoded again for
 * every connection, which costs this process more than its TLS handshake
 * (OpenSSL 3.0 decoders) and takes CPU from masad on a small machine. A
 * device reads its key once too. The callback also counts the handshakes
 * and keeps the SSL_CTX from caching or offering sessions (libcurl's own
 * session cache is off as well).
 */
static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *parm)
{
    (void)curl;
    const struct client *c = parm;
    const struct device *d = &devices[c->device];
    if (SSL_CTX_use_certificate(ssl_ctx, d->cert) != 1 ||
        SSL_CTX_use_PrivateKey(ssl_ctx, d->key) != 1)
        return CURLE_SSL_CERTPROBLEM;
    SSL_CTX_set1_cert_store(ssl_ctx, tls_trust);
    SSL_CTX_set_info_callback(ssl_ctx, on_tls_info);
    SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_TICKET);
    return CURLE_OK;
}

static void client_init(struct client *c)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s" RPC, device_url);
    c->curl = curl_easy_init();
    if (!c->curl)
        die("curl_easy_init failed");
    c->headers = curl_slist_append(c->headers, "Content-Type: " YANG_JSON);
    c->headers = curl_slist_append(c->headers, "Accept: " YANG_JSON);
    c->headers = curl_slist_append(c->headers, "Expect:");
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    /* the server is verified (CURLOPT_SSL_VERIFYPEER and VERIFYHOST stay
     * on) against tls_trust, which on_ssl_ctx installs: no CA file here */
    curl_easy_setopt(c->curl, CURLOPT_CAINFO, NULL);
    curl_easy_setopt(c->curl, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(c->curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
    curl_easy_setopt(c->curl, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    curl_easy_setopt(c->curl, CURLOPT_SSL_CTX_DATA, c);
    curl_easy_setopt(c->curl, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c->curl, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->answer);
}

/* Asks for device i's bootstrapping data on a new connection; exits on
 * anything but 200 application/yang-data+json with the expected leaves.
 * Returns the connections libcurl opened for it (1). */
static long ask(struct client *c, long i)
{
    const struct device *d = &devices[i];
    c->device = i; /* on_ssl_ctx gives the connection this device's IDevID */
    c->answer.len = 0;
    buf_reserve(&c->answer, 0);
    c->answer.data[0] = 0;
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(d->body));
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK)
        die("%s: POST get-bootstrapping-data: %s", d->serial, curl_easy_strerror(rc));
    long status = 0, opened = 0;
    char *type = NULL;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &type);
    curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &opened);
    size_t want = strlen(YANG_JSON);
    bool type_ok = type && !strncasecmp(type, YANG_JSON, want) &&
                   (type[want] == 0 || type[want] == ';' || type[want] == ' ');
    const char *body = c->answer.data;
    bool leaves_ok = strstr(body, "\"ietf-sztp-bootstrap-server:output\"") &&
                     strstr(body, "\"conveyed-information\"") &&
                     (c->lv->is_signed ? strstr(body, "\"owner-certificate\"") &&
                                             strstr(body, "\"ownership-voucher\"")
                                       : !strstr(body, "\"ownership-voucher\""));
    if (status != 200 || !type_ok || !leaves_ok) {
        fprintf(stderr, "bench_sztp: %s (%s, %ld clients): unexpected answer %ld %s\n%s\n",
                d->serial, c->lv->phase, c->lv->clients, status,
                type ? type : "(no Content-Type)", body);
        exit(1);
    }
    return opened;
}

static void mark(const char *phase, long clients, const char *what)
{
    if (!mark_dir)
        return;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s-%ld.%s", mark_dir, phase, clients, what);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

static void *client_run(void *arg)
{
    struct client *c = arg;
    struct level *lv = c->lv;
    client_init(c);
    /* untimed: the first use of masad's job threads and database connections */
    for (long k = 0; k < WARMUP_PER_CLIENT; k++)
        ask(c, lv->warm_first + c->index * WARMUP_PER_CLIENT + k);
    pthread_barrier_wait(&lv->warmed);
    pthread_barrier_wait(&lv->go); /* the main thread has read the CPU counters */
    long opened = 0;
    for (;;) {
        long i = atomic_fetch_add(&lv->next, 1);
        if (i >= lv->first + lv->count)
            break;
        double t = now();
        opened += ask(c, i);
        double t2 = now();
        lv->latency[i - lv->first] = t2 - t;
        c->finished = t2;
        for (int s = 0; s < SPOTS; s++)
            if (lv->spots[s].device == i && !(lv->spots[s].answer = strdup(c->answer.data)))
                die("out of memory");
    }
    atomic_fetch_add(&lv->new_connections, opened);
    curl_slist_free_all(c->headers);
    curl_easy_cleanup(c->curl);
    free(c->answer.data);
    return NULL;
}

/* ---- spot checks ---- */

static CMS_ContentInfo *cms_of(const char *serial, const char *what, const char *b64,
                               unsigned char **der, size_t *len)
{
    *der = b64_decode(b64, len);
    if (!*der)
        die("%s: the %s is not base64", serial, what);
    const unsigned char *p = *der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)*len);
    if (!cms || p != *der + *len)
        die("%s: the %s is not one DER CMS structure", serial, what);
    return cms;
}

static void expect_type(const char *serial, const char *what, const ASN1_OBJECT *type,
                        const char *oid)
{
    char got[80] = "none";
    if (type)
        OBJ_obj2txt(got, sizeof(got), type, 1);
    if (strcmp(got, oid))
        die("%s: the %s has content type %s, not %s", serial, what, got, oid);
}

/* RFC 8572 §3.1: a ContentInfo of id-ct-sztpConveyedInfoJSON holding the
 * owner's redirect information. */
static void check_unsigned(const struct device *d, const char *answer)
{
    char *conveyed = json_string(answer, "conveyed-information");
    if (!conveyed)
        die("%s: no conveyed-information in %s", d->serial, answer);
    unsigned char *der;
    size_t len;
    CMS_ContentInfo *cms = cms_of(d->serial, "conveyed-information", conveyed, &der, &len);
    expect_type(d->serial, "conveyed-information", CMS_get0_type(cms), OID_CONVEYED_JSON);
    if (!memmem(der, len, "ietf-sztp-conveyed-info:redirect-information", 44) ||
        !memmem(der, len, "sztp2.example.com", 17))
        die("%s: the conveyed-information is not the owner's redirect information", d->serial);
    CMS_ContentInfo_free(cms);
    free(der);
    free(conveyed);
}

/* The owner's CMS as uploaded, its chain, and a voucher signed by the MASA
 * key with this device's serial number and nonce, pinning the domain CA. */
static void check_signed(const struct device *d, const char *answer, X509_STORE *masa_trust)
{
    char *conveyed = json_string(answer, "conveyed-information");
    char *owner_cert = json_string(answer, "owner-certificate");
    char *voucher = json_string(answer, "ownership-voucher");
    if (!conveyed || !owner_cert || !voucher)
        die("%s: a leaf is missing from %s", d->serial, answer);
    if (strcmp(conveyed, signed_b64))
        die("%s: the conveyed-information is not the owner's signed CMS as uploaded", d->serial);

    unsigned char *der;
    size_t len;
    CMS_ContentInfo *cms = cms_of(d->serial, "owner-certificate", owner_cert, &der, &len);
    expect_type(d->serial, "owner-certificate", CMS_get0_type(cms), "1.2.840.113549.1.7.2");
    STACK_OF(X509) *certs = CMS_get1_certs(cms);
    if (sk_X509_num(certs) != 2)
        die("%s: the owner-certificate holds %d certificates, not 2", d->serial, sk_X509_num(certs));
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
    free(der);

    cms = cms_of(d->serial, "ownership-voucher", voucher, &der, &len);
    expect_type(d->serial, "ownership-voucher", CMS_get0_eContentType(cms), OID_VOUCHER);
    BIO *out = BIO_new(BIO_s_mem());
    if (CMS_verify(cms, NULL, masa_trust, NULL, out, CMS_BINARY) != 1)
        die("%s: the ownership voucher does not verify against %s", d->serial, tls_ca);
    char *json;
    long n = BIO_get_mem_data(out, &json);
    char *text = strndup(json, (size_t)n);
    char *nonce = b64_encode(d->nonce, NONCE_LEN);
    const char *leaves[][2] = {{"serial-number", d->serial},
                               {"nonce", nonce},
                               {"assertion", "verified"},
                               {"pinned-domain-cert", pinned_b64}};
    for (size_t k = 0; k < sizeof(leaves) / sizeof(leaves[0]); k++) {
        char *v = json_string(text, leaves[k][0]);
        if (!v || strcmp(v, leaves[k][1]))
            die("%s: the voucher's %s is %s, not %s\n%s", d->serial, leaves[k][0],
                v ? v : "missing", leaves[k][1], text);
        free(v);
    }
    if (strstr(text, "\"expires-on\""))
        die("%s: a nonced voucher has expires-on (RFC 8366 §5.3)\n%s", d->serial, text);
    free(nonce);
    free(text);
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    free(der);
    free(conveyed);
    free(owner_cert);
    free(voucher);
}

/* ---- a level ---- */

struct result {
    const char *phase;
    bool is_signed;
    long clients, count, new_connections, handshakes, resumed, not_tls13;
    double wall, masad, pg, self, p50, p99;
    struct split threads; /* clock ticks */
    struct machine box;   /* clock ticks */
};

/* This level's inputs, before any clock starts: a fresh nonce per device. */
static void build_inputs(const struct level *lv)
{
    for (long i = lv->warm_first; i < lv->first + lv->count; i++) {
        struct device *d = &devices[i];
        if (!lv->is_signed) {
            snprintf(d->body, sizeof(d->body), "{\"ietf-sztp-bootstrap-server:input\": {}}");
            continue;
        }
        if (RAND_bytes(d->nonce, NONCE_LEN) != 1)
            die_openssl("RAND_bytes");
        char *b64 = b64_encode(d->nonce, NONCE_LEN);
        snprintf(d->body, sizeof(d->body),
                 "{\"ietf-sztp-bootstrap-server:input\": {\"signed-data-preferred\": [null], "
                 "\"nonce\": \"%s\"}}",
                 b64);
        free(b64);
    }
}

static struct result run_level(struct level *lv, X509_STORE *masa_trust)
{
    long n = lv->clients;
    struct client *cs = calloc((size_t)n, sizeof(*cs));
    lv->latency = calloc((size_t)lv->count, sizeof(double));
    if (!cs || !lv->latency)
        die("out of memory");
    build_inputs(lv);
    atomic_init(&lv->next, lv->first);
    atomic_init(&lv->new_connections, 0);
    for (int s = 0; s < SPOTS; s++)
        lv->spots[s] = (struct spot){lv->first + (lv->count - 1) * s / (SPOTS - 1), NULL};
    pthread_barrier_init(&lv->warmed, NULL, (unsigned)n + 1);
    pthread_barrier_init(&lv->go, NULL, (unsigned)n + 1);
    for (long i = 0; i < n; i++) {
        cs[i].lv = lv;
        cs[i].index = i;
        if (pthread_create(&cs[i].thread, NULL, client_run, &cs[i]) != 0)
            die("cannot start client thread %ld", i);
    }
    pthread_barrier_wait(&lv->warmed);
    long hs0 = atomic_load(&handshakes), re0 = atomic_load(&resumed), v0 = atomic_load(&not_tls13);
    struct cpu before = cpu_now();
    mark(lv->phase, n, "start");
    double start = now();
    pthread_barrier_wait(&lv->go);
    double end = start;
    for (long i = 0; i < n; i++) {
        pthread_join(cs[i].thread, NULL);
        if (cs[i].finished > end)
            end = cs[i].finished;
    }
    struct cpu after = cpu_now();
    mark(lv->phase, n, "end");
    double tps = ticks_per_second;
    struct result r = {
        lv->phase, lv->is_signed, n, lv->count, atomic_load(&lv->new_connections),
        atomic_load(&handshakes) - hs0, atomic_load(&resumed) - re0,
        atomic_load(&not_tls13) - v0, end - start,
        (double)(after.masad - before.masad) / tps, (double)(after.pg - before.pg) / tps,
        after.self - before.self, 0, 0,
        {after.threads.loops - before.threads.loops, after.threads.jobs - before.threads.jobs,
         after.threads.other - before.threads.other},
        {after.box.busy - before.box.busy, after.box.idle - before.box.idle,
         after.box.steal - before.box.steal}};
    qsort(lv->latency, (size_t)lv->count, sizeof(double), compare_double);
    r.p50 = percentile(lv->latency, lv->count, 0.50) * 1000;
    r.p99 = percentile(lv->latency, lv->count, 0.99) * 1000;
    for (int s = 0; s < SPOTS; s++) {
        const struct spot *sp = &lv->spots[s];
        if (!sp->answer)
            die("no answer was kept for spot check %d", s);
        if (lv->is_signed)
            check_signed(&devices[sp->device], sp->answer, masa_trust);
        else
            check_unsigned(&devices[sp->device], sp->answer);
        free(sp->answer);
    }
    pthread_barrier_destroy(&lv->warmed);
    pthread_barrier_destroy(&lv->go);
    free(lv->latency);
    free(cs);
    return r;
}

static double us_per(double seconds, long count) { return seconds * 1e6 / (double)count; }

static double ticks_us_per(unsigned long long ticks, long count)
{
    return (double)ticks / ticks_per_second * 1e6 / (double)count;
}

static const char *label(const struct result *r)
{
    return r->is_signed ? "signed nonced" : "unsigned";
}

static void print_result(const struct result *r)
{
    printf("%s, %ld clients: %ld requests in %.2f s = %.0f requests/s; latency p50 %.1f ms, "
           "p99 %.1f ms\n",
           label(r), r->clients, r->count, r->wall, (double)r->count / r->wall, r->p50, r->p99);
    printf("  CPU per request: masad %.0f µs (event loops %.0f, job threads %.0f, other %.0f), "
           "PostgreSQL %.0f µs, generator %.0f µs\n",
           us_per(r->masad, r->count), ticks_us_per(r->threads.loops, r->count),
           ticks_us_per(r->threads.jobs, r->count), ticks_us_per(r->threads.other, r->count),
           us_per(r->pg, r->count), us_per(r->self, r->count));
    double ours = r->masad + r->pg + r->self, tps = ticks_per_second;
    double busy = (double)r->box.busy / tps, idle = (double)r->box.idle / tps,
           steal = (double)r->box.steal / tps;
    printf("  CPU used: masad %.2f s, PostgreSQL %.2f s, generator %.2f s = %.2f of %ld cores over "
           "the wall time; the machine: %.2f cores busy (%.2f outside these three), %.2f idle, "
           "%.2f stolen by the hypervisor\n",
           r->masad, r->pg, r->self, ours / r->wall, sysconf(_SC_NPROCESSORS_ONLN), busy / r->wall,
           (busy - ours) / r->wall, idle / r->wall, steal / r->wall);
    printf("  connections: %ld new for %ld requests; TLS handshakes seen by the clients: %ld, "
           "%ld resumed, %ld not TLS 1.3; spot checks: %d answers OK\n",
           r->new_connections, r->count, r->handshakes, r->resumed, r->not_tls13, SPOTS);
    if (r->new_connections != r->count || r->handshakes != r->count || r->resumed || r->not_tls13)
        die("%s, %ld clients: every request must be a full TLS 1.3 handshake on a new connection",
            label(r), r->clients);
}

/* masad's and PostgreSQL's CPU use while nothing is asked of them. */
static void idle_baseline(void)
{
    struct cpu before = cpu_now();
    sleep(IDLE_SECONDS);
    struct cpu after = cpu_now();
    printf("idle: masad %.1f ms/s, PostgreSQL %.1f ms/s (over %d s, included in the levels' CPU)\n",
           (double)(after.masad - before.masad) / ticks_per_second * 1000 / IDLE_SECONDS,
           (double)(after.pg - before.pg) / ticks_per_second * 1000 / IDLE_SECONDS, IDLE_SECONDS);
}

/* root-ca.crt: it signs masad's TLS certificate and its voucher-signing
 * certificate; any_purpose for the latter (openssl cms -verify -purpose any) */
static X509_STORE *trust_store(bool any_purpose)
{
    X509_STORE *st = X509_STORE_new();
    if (!st || X509_STORE_load_file(st, tls_ca) != 1 ||
        (any_purpose && X509_STORE_set_purpose(st, X509_PURPOSE_ANY) != 1))
        die("cannot load %s", tls_ca);
    return st;
}

static void load_owner_artifacts(void)
{
    size_t len;
    unsigned char *der = read_file(signed_der_path, &len);
    signed_b64 = b64_encode(der, len);
    free(der);
    X509 *x = read_cert(pinned_ca);
    unsigned char *p = NULL;
    int n = i2d_X509(x, &p);
    if (n <= 0)
        die_openssl("cannot encode the domain CA");
    pinned_b64 = b64_encode(p, (size_t)n);
    OPENSSL_free(p);
    X509_free(x);
}

int main(int argc, char **argv)
{
    bench_name = "bench_sztp";
    if (argc != 11)
        die("usage: bench_sztp DEVICE_URL MGMT_URL TOKEN PKI_DIR DEVICE_DIR DEVICES MASAD_PID "
            "POSTMASTER_PID EVENT_LOOPS JOB_THREADS");
    device_url = argv[1];
    mgmt_url = argv[2];
    token = argv[3];
    pki_dir = argv[4];
    const char *device_dir = argv[5];
    device_count = positive(argv[6], "DEVICES");
    masad_pid = (pid_t)positive(argv[7], "MASAD_PID");
    postmaster_pid = (pid_t)positive(argv[8], "POSTMASTER_PID");
    event_loops = positive(argv[9], "EVENT_LOOPS");
    job_threads = positive(argv[10], "JOB_THREADS");
    mark_dir = getenv("BENCH_SZTP_MARK_DIR");
    ticks_per_second = (double)sysconf(_SC_CLK_TCK);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* each half must hold every client's warm-up and a timed part */
    long biggest = CLIENTS[NCLIENTS - 1], least = 2 * (biggest * WARMUP_PER_CLIENT + 100);
    if (device_count < least || device_count > MAX_DEVICES)
        die("DEVICES must be between %ld and %ld: %ld", least, MAX_DEVICES, device_count);
    path_join(tls_ca, sizeof(tls_ca), pki_dir, "root-ca.crt");
    path_join(pinned_ca, sizeof(pinned_ca), pki_dir, OWNER_SIGNED "-ca.crt");
    path_join(signed_der_path, sizeof(signed_der_path), pki_dir, OWNER_SIGNED "-conveyed.der");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    counted_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (counted_index < 0)
        die_openssl("SSL_get_ex_new_index");
    load_owner_artifacts();
    X509_STORE *masa_trust = trust_store(true);
    tls_trust = trust_store(false);

    make_devices(device_dir);
    register_devices();

    long threads;
    thread_split(&threads);
    print_machine();
    printf("devices: %ld (%ld of " OWNER_UNSIGNED ", %ld of " OWNER_SIGNED "); every level asks "
           "for each device of its owner once: %d per client untimed (warm-up), the rest timed\n",
           device_count, device_count / 2, device_count - device_count / 2, WARMUP_PER_CLIENT);
    printf("masad: %ld threads (main, %ld job threads, %ld event loops%s)\n", threads, job_threads,
           event_loops,
           threads == 1 + job_threads + event_loops ? "" : "; NOT 1 + jobs + loops: the split by "
                                                           "thread below is unreliable");
    idle_baseline();
    printf("\n");

    struct result results[2 * NCLIENTS];
    size_t nr = 0;
    for (int phase = 0; phase < 2; phase++) {
        bool is_signed = phase == 1;
        long from = is_signed ? device_count / 2 : 0, to = is_signed ? device_count : device_count / 2;
        for (size_t k = 0; k < NCLIENTS; k++) {
            struct level lv = {0};
            lv.phase = is_signed ? "signed" : "unsigned";
            lv.is_signed = is_signed;
            lv.clients = CLIENTS[k];
            lv.warm_first = from;
            lv.first = from + CLIENTS[k] * WARMUP_PER_CLIENT;
            lv.count = to - lv.first;
            results[nr] = run_level(&lv, masa_trust);
            print_result(&results[nr++]);
        }
    }

    printf("\nsummary (CPU per request in µs; the generator's share is the client side of the "
           "TLS handshakes, libcurl and the checks):\n");
    printf("  %-14s %7s %10s %8s %8s %7s %10s %9s\n", "phase", "clients", "requests/s", "p50 ms",
           "p99 ms", "masad", "PostgreSQL", "generator");
    for (size_t i = 0; i < nr; i++) {
        const struct result *r = &results[i];
        printf("  %-14s %7ld %10.0f %8.1f %8.1f %7.0f %10.0f %9.0f\n", label(r), r->clients,
               (double)r->count / r->wall, r->p50, r->p99, us_per(r->masad, r->count),
               us_per(r->pg, r->count), us_per(r->self, r->count));
    }
    for (size_t i = 0; i < nr; i++) {
        const struct result *r = &results[i];
        if (!r->is_signed)
            continue;
        double m = us_per(r->masad, r->count);
        printf("goal: masad CPU per signed nonced answer at %ld clients: %.0f µs  [at most %.0f µs: "
               "%s]\n",
               r->clients, m, GOAL_US, m <= GOAL_US ? "met" : "NOT met");
    }
    for (size_t k = 0; k < NCLIENTS; k++) {
        const struct result *u = &results[k], *s = &results[NCLIENTS + k];
        printf("signed nonced minus unsigned at %ld clients: masad %+.0f µs (event loops %+.0f, "
               "job threads %+.0f), PostgreSQL %+.0f µs\n",
               u->clients, us_per(s->masad, s->count) - us_per(u->masad, u->count),
               ticks_us_per(s->threads.loops, s->count) - ticks_us_per(u->threads.loops, u->count),
               ticks_us_per(s->threads.jobs, s->count) - ticks_us_per(u->threads.jobs, u->count),
               us_per(s->pg, s->count) - us_per(u->pg, u->count));
    }
    X509_STORE_free(masa_trust);
    X509_STORE_free(tls_trust);
    curl_global_cleanup();
    return 0;
}
