/*
 * Load generator for the BRSKI MASA (tests/bench/brski.sh runs it).
 *
 *   bench_brski DEVICE_URL MGMT_URL TOKEN PKI_DIR DEVICE_DIR DEVICES MASAD_PID POSTMASTER_PID
 *               [SUMMARY_FILE]
 *
 * PKI_DIR is what deploy/dev/pki.sh made: root-ca.crt (it signs masad's TLS
 * and voucher-signing certificates), idevid-ca.crt/.key, and the customer
 * domain bench-corp (bench-corp-ca.crt, bench-corp-chain.crt, bench-corp.key).
 *
 * 1. Makes DEVICES devices in DEVICE_DIR (kept when they are already there,
 *    so a second run reuses them): an EC P-256 key and an IDevID certificate
 *    from idevid-ca, subject serialNumber=BENCH-BRSKI-000001 and so on.
 * 2. Registers them through the management API: the devices, the owner
 *    bench-corp with its domain CA, and the assignment of every device to it.
 * 3. Builds one registrar voucher-request (RVR) per device, each with a fresh
 *    random nonce, before any clock starts.
 * 4. For 1, 8 and 64 concurrent registrars: as many threads, each with its
 *    own keep-alive HTTPS connection (one libcurl easy handle), take the next
 *    unused RVR until the level's count is done. Every device is asked for
 *    once in the whole run. Each connection first sends a few untimed
 *    requests (warm-up: the TLS handshake and masad's first use of the job
 *    threads are not measured).
 *
 * Every answer must be 200 application/voucher-cms+json; anything else prints
 * its status and body and exits 1. A few vouchers per level are verified
 * against root-ca.crt after the level (serial-number, nonce, assertion and
 * pinned-domain-cert checked too).
 *
 * Per level it prints vouchers/s (wall time from the release of the threads
 * to the last answer), p50 and p99 latency, and CPU per voucher: masad
 * (/proc/PID/stat utime + stime), the PostgreSQL cluster (postmaster, its
 * children, and the children it reaped) and this program (getrusage).
 * SUMMARY_FILE, when given, receives one line per level for brski.sh:
 *   registrars count wall_s masad_cpu_s pg_cpu_s gen_cpu_s p50_ms p99_ms others
 * (others: the share of the machine's CPU time that other processes took).
 * BENCH_BRSKI_MARK_DIR, when set, names a folder in which the file level-N is
 * created when the clock of the N-registrar level starts (brski.sh starts
 * perf on level-64).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
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

#include "brski_client.h"
#include "bench_util.h"

#define OWNER "bench-corp"
#define PRODUCT "bench-pledge"
#define SERIAL_FMT "BENCH-BRSKI-%06ld"
#define MAX_DEVICES 999999L
#define MGMT_BATCH 5000L
#define WARMUP_PER_CONNECTION 2
#define SPOTS 4 /* vouchers verified per level */
#define IDLE_SECONDS 2

static const long LEVELS[] = {1, 8, 64};     /* concurrent registrars */
static const long COUNTS[] = {400, 1600, 3200}; /* timed vouchers per level */
#define NLEVELS (sizeof(LEVELS) / sizeof(LEVELS[0]))

struct device {
    char serial[32];
    char cert[4096], key[4096]; /* PEM files */
    unsigned char *rvr;         /* DER CMS */
    size_t rvr_len;
    unsigned char nonce[BRSKI_NONCE_MAX];
    size_t nonce_len;
};

struct cpu {
    unsigned long long masad, pg; /* clock ticks */
    double self;                  /* seconds, this process */
    struct machine box;           /* all cores */
};

static pid_t masad_pid, postmaster_pid;
static double ticks_per_second;
static const char *device_url, *mgmt_url, *token, *pki_dir;
static char tls_ca[4096], registrar_chain[4096], registrar_key[4096], domain_ca[4096];
static struct device *devices;
static long device_count;
/* BENCH_BRSKI_LEVELS (e.g. "64"): the levels this run makes, all by default;
 * BENCH_BRSKI_FIRST_DEVICE: the first device it asks for, so that repeated
 * runs against one database each ask for devices no run asked for before. */
static bool level_on[NLEVELS];
static long first_device;

/* ---- text ---- */

/* text as a JSON string, quotes included */
static void buf_json_string(struct buf *b, const char *text)
{
    buf_printf(b, "\"");
    for (const char *p = text; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            buf_printf(b, "\\n");
        else if ((unsigned char)*p < 0x20)
            buf_printf(b, "\\u%04x", (unsigned char)*p);
        else
            buf_printf(b, "%c", *p);
    }
    buf_printf(b, "\"");
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
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
    return b.data;
}

/* ---- clocks and CPU ---- */

static struct cpu cpu_now(void)
{
    struct cpu c = {0, cluster_ticks(postmaster_pid), self_cpu(), machine_now()};
    if (!proc_stat(masad_pid, NULL, &c.masad, NULL))
        die("masad %d is gone", (int)masad_pid);
    return c;
}

/* ---- 1. devices ---- */

static void write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        die("cannot write %s: %s", tmp, strerror(errno));
    int ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0 || ok != 1 || rename(tmp, path) != 0)
        die("cannot write %s", path);
}

/* The profile of deploy/dev/pki.sh's ext_idevid: CA:FALSE, digitalSignature,
 * clientAuth, SKI from the key, AKI keyid; notAfter 99991231235959Z (IEEE
 * 802.1AR); subject O, CN and serialNumber. */
static void make_idevid(const struct device *d, X509 *ca, EVP_PKEY *ca_key)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!key || !x)
        die_openssl("cannot make a device key");
    X509_set_version(x, 2);
    unsigned char rnd[16];
    RAND_bytes(rnd, sizeof(rnd));
    rnd[0] = (unsigned char)((rnd[0] & 0x3f) | 0x40); /* positive, 16 bytes */
    BIGNUM *bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509_NAME *name = X509_get_subject_name(x);
    char cn[64];
    snprintf(cn, sizeof(cn), "masad bench device %s", d->serial);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"masad-bench", -1,
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
    write_pem(d->key, NULL, key);
    write_pem(d->cert, x, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
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
    long made = 0;
    for (long i = 0; i < device_count; i++) {
        struct device *d = &devices[i];
        snprintf(d->serial, sizeof(d->serial), SERIAL_FMT, i + 1);
        char name[64];
        snprintf(name, sizeof(name), "%s.crt", d->serial);
        path_join(d->cert, sizeof(d->cert), dir, name);
        snprintf(name, sizeof(name), "%s.key", d->serial);
        path_join(d->key, sizeof(d->key), dir, name);
        if (access(d->cert, R_OK) == 0 && access(d->key, R_OK) == 0)
            continue; /* made by an earlier run against the same PKI */
        make_idevid(d, ca, ca_key);
        made++;
    }
    fprintf(stderr, "devices: %ld IDevIDs in %s (%ld made now, %.1f s)\n", device_count, dir,
            made, now() - t);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
}

/* ---- 2. registration through the management API ---- */

/* Sends the devices in batches; each answer must count all of them in a + b
 * (+ "unchanged" when it has that member: a repeated run registers again). */
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
                buf_printf(&body, "{\"serial_number\": \"%s\", \"owner_id\": \"" OWNER "\"}",
                           devices[i].serial);
        }
        buf_printf(&body, "]}");
        long status = mgmt_request(m, "POST", path, body.data, body.len);
        long na = json_long(m->answer.data, a), nb = json_long(m->answer.data, b);
        long nu = strcmp(b, "unchanged") ? json_long(m->answer.data, "unchanged") : 0;
        if (status != 200 || na < 0 || nb < 0 || na + nb + (nu > 0 ? nu : 0) != last - first)
            mgmt_unexpected(m, path, status);
    }
    free(body.data);
}

static void register_devices(void)
{
    struct mgmt m;
    mgmt_init(&m, mgmt_url, tls_ca, token);
    double t = now();
    send_batches(&m, "/api/v1/devices:batch", "devices", "created", "updated");
    /* the owner, with its domain CA as it stands in the PEM file */
    struct buf body = {0};
    char *pem = read_text(domain_ca);
    buf_printf(&body, "{\"display_name\": \"Bench Corp\", \"brski\": {\"domain_certs\": [");
    buf_json_string(&body, pem);
    buf_printf(&body, "]}}");
    free(pem);
    long status = mgmt_request(&m, "PUT", "/api/v1/owners/" OWNER, body.data, body.len);
    if (status != 200 && status != 201)
        mgmt_unexpected(&m, "PUT /api/v1/owners/" OWNER, status);
    free(body.data);
    send_batches(&m, "/api/v1/ownership:batch", "assignments", "assigned", "unchanged");
    fprintf(stderr, "registration: %ld devices registered and assigned to " OWNER " in %.1f s\n",
            device_count, now() - t);
    mgmt_free(&m);
}

/* ---- 3. the voucher-requests ---- */

/* One thread: OpenSSL 3.0 reads PEM keys through its decoder framework,
 * whose locks make two threads slower than one here. */
static void build_rvrs(long first, long n)
{
    double t = now();
    size_t bytes = 0;
    for (long i = first; i < first + n; i++) {
        struct device *d = &devices[i];
        struct brski_client_opts o = {
            .pledge_cert = d->cert,
            .pledge_key = d->key,
            .registrar_cert = registrar_chain,
            .registrar_key = registrar_key,
            /* nonce NULL: 16 fresh random bytes; proximity-registrar-cert: the registrar's */
        };
        char err[512];
        if (brski_build_rvr(&o, &d->rvr, &d->rvr_len, err, sizeof(err)) != 0)
            die("%s: %s", d->serial, err);
        const unsigned char *nonce = brski_last_nonce(&d->nonce_len);
        if (!nonce || d->nonce_len > sizeof(d->nonce))
            die("%s: no nonce was put in the request", d->serial);
        memcpy(d->nonce, nonce, d->nonce_len);
        bytes += d->rvr_len;
    }
    fprintf(stderr, "voucher-requests: %ld built in %.1f s (%.0f bytes each on average; not timed)\n",
            n, now() - t, (double)bytes / (double)n);
}

/* ---- 4. the registrars ---- */

struct spot {
    long device;
    unsigned char *voucher;
    size_t len;
};

struct level {
    long registrars, count;
    long warm_first;    /* this level's warm-up devices: registrars * WARMUP_PER_CONNECTION */
    long first;         /* its timed devices: first .. first + count - 1 */
    atomic_long next;
    atomic_long new_connections; /* opened during the timed part: 0 when keep-alive holds */
    double *latency;    /* seconds, by device - first */
    struct spot spots[SPOTS];
    pthread_barrier_t warmed, go;
    double start;
    const char *mark;   /* a file to create when the clock starts, or NULL */
};

struct registrar {
    struct level *lv;
    long index;
    pthread_t thread;
    double finished;
    CURL *curl;
    struct curl_slist *headers;
    struct buf answer;
};

/* Posts device i's RVR; exits on anything but 200 application/voucher-cms+json.
 * Returns the connections libcurl opened for it. */
static long post_rvr(struct registrar *r, long i)
{
    const struct device *d = &devices[i];
    r->answer.len = 0;
    buf_reserve(&r->answer, 0);
    r->answer.data[0] = 0;
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, (const char *)d->rvr);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->rvr_len);
    CURLcode rc = curl_easy_perform(r->curl);
    if (rc != CURLE_OK)
        die("%s: POST requestvoucher: %s", d->serial, curl_easy_strerror(rc));
    long status = 0, opened = 0;
    char *type = NULL;
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->curl, CURLINFO_CONTENT_TYPE, &type);
    curl_easy_getinfo(r->curl, CURLINFO_NUM_CONNECTS, &opened);
    size_t want = strlen(BRSKI_VOUCHER_CMS);
    bool type_ok = type && !strncasecmp(type, BRSKI_VOUCHER_CMS, want) &&
                   (type[want] == 0 || type[want] == ';' || type[want] == ' ');
    if (status != 200 || !type_ok) {
        fprintf(stderr, "bench_brski: %s: unexpected answer %ld %s\n%s\n", d->serial, status,
                type ? type : "(no Content-Type)", r->answer.data);
        exit(1);
    }
    return opened;
}

static void registrar_init(struct registrar *r)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s/.well-known/brski/requestvoucher", device_url);
    r->curl = curl_easy_init();
    if (!r->curl)
        die("curl_easy_init failed");
    r->headers = curl_slist_append(r->headers, "Content-Type: " BRSKI_VOUCHER_CMS);
    r->headers = curl_slist_append(r->headers, "Accept: " BRSKI_VOUCHER_CMS);
    r->headers = curl_slist_append(r->headers, "Expect:");
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    curl_easy_setopt(r->curl, CURLOPT_CAINFO, tls_ca);
    curl_easy_setopt(r->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(r->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, &r->answer);
}

static void *registrar_run(void *arg)
{
    struct registrar *r = arg;
    struct level *lv = r->lv;
    registrar_init(r);
    /* untimed: the TLS handshake and the first answers on this connection */
    for (long k = 0; k < WARMUP_PER_CONNECTION; k++)
        post_rvr(r, lv->warm_first + r->index * WARMUP_PER_CONNECTION + k);
    pthread_barrier_wait(&lv->warmed);
    pthread_barrier_wait(&lv->go); /* the main thread has read the CPU counters */
    long opened = 0;
    for (;;) {
        long i = atomic_fetch_add(&lv->next, 1);
        if (i >= lv->first + lv->count)
            break;
        double t = now();
        opened += post_rvr(r, i);
        double t2 = now();
        lv->latency[i - lv->first] = t2 - t;
        r->finished = t2;
        for (int s = 0; s < SPOTS; s++)
            if (lv->spots[s].device == i) {
                lv->spots[s].voucher = malloc(r->answer.len);
                if (!lv->spots[s].voucher)
                    die("out of memory");
                memcpy(lv->spots[s].voucher, r->answer.data, r->answer.len);
                lv->spots[s].len = r->answer.len;
            }
    }
    atomic_fetch_add(&lv->new_connections, opened);
    curl_slist_free_all(r->headers);
    curl_easy_cleanup(r->curl);
    free(r->answer.data);
    return NULL;
}

/* The voucher is signed by the MASA and answers device i's request. */
static void spot_check(const struct spot *s, const char *domain_ca_b64)
{
    const struct device *d = &devices[s->device];
    char err[512], *json = NULL;
    if (brski_verify_voucher(s->voucher, s->len, tls_ca, &json, err, sizeof(err)) != 0)
        die("%s: the voucher does not verify: %s", d->serial, err);
    char *nonce = brski_base64(d->nonce, d->nonce_len);
    const char *leaves[][2] = {{"serial-number", d->serial},
                               {"nonce", nonce},
                               {"assertion", "proximity"},
                               {"pinned-domain-cert", domain_ca_b64}};
    for (size_t k = 0; k < sizeof(leaves) / sizeof(leaves[0]); k++) {
        char *v = brski_voucher_leaf(json, leaves[k][0]);
        if (!v || strcmp(v, leaves[k][1]))
            die("%s: the voucher's %s is %s, not %s\n%s", d->serial, leaves[k][0],
                v ? v : "missing", leaves[k][1], json);
        free(v);
    }
    free(nonce);
    free(json);
}

struct result {
    long registrars, count, new_connections;
    double wall, masad, pg, self, p50, p99;
    double busy, idle, steal; /* shares of the machine's CPU time during the level */
    double others;            /* busy, less masad, PostgreSQL and this program */
};

static struct result run_level(struct level *lv, const char *domain_ca_b64)
{
    long n = lv->registrars;
    struct registrar *rs = calloc((size_t)n, sizeof(*rs));
    lv->latency = calloc((size_t)lv->count, sizeof(double));
    if (!rs || !lv->latency)
        die("out of memory");
    atomic_init(&lv->next, lv->first);
    atomic_init(&lv->new_connections, 0);
    for (int s = 0; s < SPOTS; s++)
        lv->spots[s] = (struct spot){lv->first + (lv->count - 1) * s / (SPOTS - 1), NULL, 0};
    pthread_barrier_init(&lv->warmed, NULL, (unsigned)n + 1);
    pthread_barrier_init(&lv->go, NULL, (unsigned)n + 1);
    for (long i = 0; i < n; i++) {
        rs[i].lv = lv;
        rs[i].index = i;
        if (pthread_create(&rs[i].thread, NULL, registrar_run, &rs[i]) != 0)
            die("cannot start registrar thread %ld", i);
    }
    pthread_barrier_wait(&lv->warmed);
    struct cpu before = cpu_now();
    if (lv->mark) {
        FILE *f = fopen(lv->mark, "w");
        if (f)
            fclose(f);
    }
    lv->start = now();
    pthread_barrier_wait(&lv->go);
    double end = lv->start;
    for (long i = 0; i < n; i++) {
        pthread_join(rs[i].thread, NULL);
        if (rs[i].finished > end)
            end = rs[i].finished;
    }
    struct cpu after = cpu_now();
    struct result r = {n, lv->count, atomic_load(&lv->new_connections), end - lv->start,
                       (double)(after.masad - before.masad) / ticks_per_second,
                       (double)(after.pg - before.pg) / ticks_per_second, after.self - before.self,
                       0, 0, 0, 0, 0, 0};
    double all = (double)(after.box.busy - before.box.busy + after.box.idle - before.box.idle +
                          after.box.steal - before.box.steal);
    if (all > 0) {
        r.busy = (double)(after.box.busy - before.box.busy) / all;
        r.idle = (double)(after.box.idle - before.box.idle) / all;
        r.steal = (double)(after.box.steal - before.box.steal) / all;
        r.others = r.busy - (r.masad + r.pg + r.self) * ticks_per_second / all;
        if (r.others < 0)
            r.others = 0;
    }
    qsort(lv->latency, (size_t)lv->count, sizeof(double), compare_double);
    r.p50 = percentile(lv->latency, lv->count, 0.50) * 1000;
    r.p99 = percentile(lv->latency, lv->count, 0.99) * 1000;
    for (int s = 0; s < SPOTS; s++) {
        if (!lv->spots[s].voucher)
            die("no answer was kept for spot check %d", s);
        spot_check(&lv->spots[s], domain_ca_b64);
        free(lv->spots[s].voucher);
    }
    pthread_barrier_destroy(&lv->warmed);
    pthread_barrier_destroy(&lv->go);
    free(lv->latency);
    free(rs);
    return r;
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

/* base64 of the domain CA's DER: the voucher's pinned-domain-cert */
static char *domain_ca_base64(void)
{
    X509 *x = read_cert(domain_ca);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0)
        die_openssl("cannot encode the domain CA");
    char *b64 = brski_base64(der, (size_t)n);
    OPENSSL_free(der);
    X509_free(x);
    return b64;
}

/* "1 8 64", "64", "8,64"…: each a level of LEVELS; NULL or empty: all. */
static void choose_levels(const char *list)
{
    bool any = false;
    for (const char *p = list; p && *p;) {
        char *end;
        long n = strtol(p, &end, 10);
        size_t l = 0;
        while (l < NLEVELS && LEVELS[l] != n)
            l++;
        if (end == p || l == NLEVELS)
            die("BENCH_BRSKI_LEVELS: \"%s\" lists a level other than 1, 8 and 64", list);
        level_on[l] = any = true;
        p = end + strspn(end, " ,");
    }
    for (size_t l = 0; l < NLEVELS && !any; l++)
        level_on[l] = true;
}

int main(int argc, char **argv)
{
    bench_name = "bench_brski";
    if (argc != 9 && argc != 10)
        die("usage: bench_brski DEVICE_URL MGMT_URL TOKEN PKI_DIR DEVICE_DIR DEVICES MASAD_PID "
            "POSTMASTER_PID [SUMMARY_FILE]");
    device_url = argv[1];
    mgmt_url = argv[2];
    token = argv[3];
    pki_dir = argv[4];
    const char *device_dir = argv[5];
    device_count = positive(argv[6], "DEVICES");
    masad_pid = (pid_t)positive(argv[7], "MASAD_PID");
    postmaster_pid = (pid_t)positive(argv[8], "POSTMASTER_PID");
    const char *summary_path = argc == 10 ? argv[9] : NULL;
    ticks_per_second = (double)sysconf(_SC_CLK_TCK);
    setvbuf(stdout, NULL, _IOLBF, 0);

    choose_levels(getenv("BENCH_BRSKI_LEVELS"));
    const char *first = getenv("BENCH_BRSKI_FIRST_DEVICE");
    first_device = first && strcmp(first, "0") ? positive(first, "BENCH_BRSKI_FIRST_DEVICE") : 0;
    long needed = 0;
    for (size_t l = 0; l < NLEVELS; l++)
        if (level_on[l])
            needed += COUNTS[l] + LEVELS[l] * WARMUP_PER_CONNECTION;
    if (device_count < first_device + needed || device_count > MAX_DEVICES)
        die("DEVICES must be between %ld (from device %ld, the levels' vouchers and %d warm-up "
            "requests per connection) and %ld: %ld",
            first_device + needed, first_device, WARMUP_PER_CONNECTION, MAX_DEVICES, device_count);
    path_join(tls_ca, sizeof(tls_ca), pki_dir, "root-ca.crt");
    path_join(registrar_chain, sizeof(registrar_chain), pki_dir, OWNER "-chain.crt");
    path_join(registrar_key, sizeof(registrar_key), pki_dir, OWNER ".key");
    path_join(domain_ca, sizeof(domain_ca), pki_dir, OWNER "-ca.crt");
    curl_global_init(CURL_GLOBAL_DEFAULT);

    make_devices(device_dir);
    register_devices();
    build_rvrs(first_device, needed);
    char *domain_b64 = domain_ca_base64();

    print_machine();
    printf("devices: %ld registered, %ld asked for from device %ld on (each once: %d untimed "
           "warm-up requests per connection, then the timed ones)\n",
           device_count, needed, first_device, WARMUP_PER_CONNECTION);
    idle_baseline();

    FILE *summary = summary_path ? fopen(summary_path, "w") : NULL;
    if (summary_path && !summary)
        die("cannot write %s: %s", summary_path, strerror(errno));
    const char *mark_dir = getenv("BENCH_BRSKI_MARK_DIR");
    struct result results[NLEVELS];
    long cursor = first_device;
    for (size_t l = 0; l < NLEVELS; l++) {
        if (!level_on[l])
            continue;
        struct level *lv = calloc(1, sizeof(*lv));
        char mark[4096];
        if (!lv)
            die("out of memory");
        lv->registrars = LEVELS[l];
        lv->count = COUNTS[l];
        lv->warm_first = cursor;
        cursor += LEVELS[l] * WARMUP_PER_CONNECTION;
        lv->first = cursor;
        cursor += COUNTS[l];
        if (mark_dir) {
            snprintf(mark, sizeof(mark), "%s/level-%ld", mark_dir, LEVELS[l]);
            lv->mark = mark;
        }
        struct result *r = &results[l];
        *r = run_level(lv, domain_b64);
        free(lv);
        double n = (double)r->count;
        printf("%2ld registrars: %ld vouchers in %.2f s = %.0f vouchers/s; latency p50 %.1f ms, "
               "p99 %.1f ms; CPU per voucher: masad %.0f µs, PostgreSQL %.0f µs, load generator "
               "%.0f µs; new connections %ld\n"
               "    machine during the level: busy %.0f%% (other processes %.0f%%), idle %.0f%%, "
               "steal %.0f%%\n",
               r->registrars, r->count, r->wall, n / r->wall, r->p50, r->p99, r->masad * 1e6 / n,
               r->pg * 1e6 / n, r->self * 1e6 / n, r->new_connections, r->busy * 100,
               r->others * 100, r->idle * 100, r->steal * 100);
        if (summary)
            fprintf(summary, "%ld %ld %.6f %.4f %.4f %.4f %.3f %.3f %.3f\n", r->registrars,
                    r->count, r->wall, r->masad, r->pg, r->self, r->p50, r->p99, r->others);
    }
    printf("spot checks: %d vouchers per level verified against root-ca.crt (signature, "
           "serial-number, nonce, assertion proximity, pinned-domain-cert bench-corp-ca)\n",
           SPOTS);
    if (summary)
        fclose(summary);
    for (long i = first_device; i < first_device + needed; i++)
        free(devices[i].rvr);
    free(devices);
    free(domain_b64);
    curl_global_cleanup();
    return 0;
}
