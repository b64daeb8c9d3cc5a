/* What the load generators under tests/bench/ share: dying with a message,
 * a growing buffer for libcurl, clocks, CPU accounting from /proc, PEM
 * files, percentiles. */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

const char *bench_name = "bench";

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void die_openssl(const char *what)
{
    unsigned long e = ERR_get_error();
    die("%s: %s", what, e ? ERR_reason_error_string(e) : "OpenSSL error");
}

void path_join(char *out, size_t n, const char *dir, const char *name)
{
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
        die("path too long: %s/%s", dir, name);
}

void buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data)
        die("out of memory");
    b->cap = cap;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("vsnprintf failed");
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t collect(char *ptr, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;
    buf_reserve(b, size * n);
    memcpy(b->data + b->len, ptr, size * n);
    b->len += size * n;
    b->data[b->len] = 0;
    return size * n;
}

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fields of /proc/.../stat after "(comm)": state is field 3, ppid 4, utime
 * 14, stime 15, cutime 16, cstime 17. Returns false when the file is gone. */
bool stat_file(const char *path, pid_t *ppid, unsigned long long *own,
                      unsigned long long *reaped)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL;
    if (!p)
        return false;
    int parent;
    unsigned long long ut, st, cut, cst;
    if (sscanf(p + 2, "%*c %d %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu %llu %llu", &parent,
               &ut, &st, &cut, &cst) != 5)
        return false;
    if (ppid)
        *ppid = parent;
    if (own)
        *own = ut + st;
    if (reaped)
        *reaped = cut + cst;
    return true;
}

bool proc_stat(pid_t pid, pid_t *ppid, unsigned long long *own, unsigned long long *reaped)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    return stat_file(path, ppid, own, reaped);
}

/* The cluster: the postmaster's own and reaped children's time, plus every
 * live child's (the same set as `pgrep -P POSTMASTER` and the postmaster). */
unsigned long long cluster_ticks(pid_t postmaster_pid)
{
    unsigned long long own = 0, reaped = 0, total;
    if (!proc_stat(postmaster_pid, NULL, &own, &reaped))
        die("postmaster %d is gone", (int)postmaster_pid);
    total = own + reaped;
    DIR *d = opendir("/proc");
    if (!d)
        die("cannot read /proc");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t ppid;
        if (proc_stat((pid_t)atoi(e->d_name), &ppid, &own, NULL) && ppid == postmaster_pid)
            total += own;
    }
    closedir(d);
    return total;
}

double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* "cpu user nice system idle iowait irq softirq steal ...": busy is user +
 * nice + system + irq + softirq (guest time is within user), idle is idle +
 * iowait, steal is time the hypervisor gave to someone else. */
struct machine machine_now(void)
{
    struct machine m = {0, 0, 0};
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                     &v[4], &v[5], &v[6], &v[7]) != 8)
        die("cannot read /proc/stat");
    fclose(f);
    m.busy = v[0] + v[1] + v[2] + v[5] + v[6];
    m.idle = v[3] + v[4];
    m.steal = v[7];
    return m;
}

X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!x)
        die("cannot read a certificate from %s", path);
    return x;
}

EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!k)
        die("cannot read a private key from %s", path);
    return k;
}

void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext || X509_add_ext(x, ext, -1) != 1)
        die_openssl("cannot add an extension to an IDevID");
    X509_EXTENSION_free(ext);
}

int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double percentile(const double *sorted, long n, double p)
{
    long rank = (long)(p * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

void print_machine(void)
{
    char model[256] = "unknown", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "model name", 10)) {
            const char *p = strchr(line, ':');
            if (p) {
                snprintf(model, sizeof(model), "%s", p + 2);
                model[strcspn(model, "\n")] = 0;
            }
            break;
        }
    if (f)
        fclose(f);
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    printf("machine: %ld cores, %s; load average %.2f %.2f %.2f before the run\n",
           sysconf(_SC_NPROCESSORS_ONLN), model, load[0], load[1], load[2]);
}

long positive(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v <= 0)
        die("%s must be a positive number: '%s'", what, s);
    return v;
}

/* ---- the management API ---- */

void mgmt_init(struct mgmt *m, const char *base, const char *ca, const char *token)
{
    char auth[512];
    memset(m, 0, sizeof(*m));
    m->base = base;
    m->curl = curl_easy_init();
    if (!m->curl)
        die("curl_easy_init failed");
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    m->headers = curl_slist_append(m->headers, auth);
    m->headers = curl_slist_append(m->headers, "Content-Type: application/json");
    m->headers = curl_slist_append(m->headers, "Expect:");
    curl_easy_setopt(m->curl, CURLOPT_CAINFO, ca);
    curl_easy_setopt(m->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, m->headers);
    curl_easy_setopt(m->curl, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(m->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(m->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(m->curl, CURLOPT_WRITEDATA, &m->answer);
}

void mgmt_free(struct mgmt *m)
{
    curl_slist_free_all(m->headers);
    curl_easy_cleanup(m->curl);
    free(m->answer.data);
}

long mgmt_request(struct mgmt *m, const char *method, const char *path, const char *body,
                  size_t len)
{
    char url[1024];
    long status = 0;
    snprintf(url, sizeof(url), "%s%s", m->base, path);
    m->answer.len = 0;
    buf_reserve(&m->answer, 0);
    m->answer.data[0] = 0;
    curl_easy_setopt(m->curl, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(m->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(m->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else
        curl_easy_setopt(m->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(m->curl, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(m->curl);
    if (rc != CURLE_OK)
        die("%s %s: %s", method, path, curl_easy_strerror(rc));
    long opened = 0;
    curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(m->curl, CURLINFO_NUM_CONNECTS, &opened);
    m->connects += opened;
    return status;
}

void mgmt_unexpected(const struct mgmt *m, const char *what, long status)
{
    fprintf(stderr, "%s: %s: unexpected answer %ld\n%s\n", bench_name, what, status,
            m->answer.data);
    exit(1);
}

long json_long(const char *json, const char *key)
{
    char quoted[64];
    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (!p)
        return -1;
    p += strlen(quoted);
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != ':')
        return -1;
    char *end;
    long v = strtol(p, &end, 10);
    return end != p ? v : -1;
}
