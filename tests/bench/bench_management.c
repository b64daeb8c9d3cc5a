/*
 * Load generator for the management API (tests/bench/management.sh runs it).
 *
 *   bench_management URL CAFILE TOKEN DEVICES MASAD_PID POSTMASTER_PID
 *
 * Creates 100 owners, then times two phases over one keep-alive HTTP/1.1
 * connection: "import" (POST /api/v1/devices:batch) and "assign"
 * (POST /api/v1/ownership:batch), in batches of 10,000. Each phase's bodies
 * are built before its clock starts, so the wall time runs from the first
 * request to the last answer and holds nothing but HTTP and the server. CPU
 * time is read from /proc around each phase: masad's process, and the
 * PostgreSQL cluster (postmaster, its children, and the children it reaped).
 * Any unexpected answer prints its status and body and exits 1.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BATCH 10000L
#define OWNERS 100L
#define IDLE_SECONDS 2

struct buf {
    char *data;
    size_t len, cap;
};

struct batch {
    size_t off, len;
    long count;
};

struct client {
    CURL *curl;
    struct curl_slist *headers;
    struct buf answer;
    const char *base;
    long connects; /* connections opened: 1 when keep-alive holds */
};

struct cpu {
    unsigned long long masad, pg; /* clock ticks */
};

struct result {
    const char *name;
    long devices;
    double wall, masad_cpu, pg_cpu;
};

static pid_t masad_pid, postmaster_pid;
static double ticks_per_second;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_management: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- a growing buffer ---- */

static void buf_reserve(struct buf *b, size_t more)
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

static void buf_printf(struct buf *b, const char *fmt, ...)
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

static size_t collect(char *ptr, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;
    buf_reserve(b, size * n);
    memcpy(b->data + b->len, ptr, size * n);
    b->len += size * n;
    b->data[b->len] = 0;
    return size * n;
}

/* ---- clocks ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fields of /proc/PID/stat after "(comm)": state is field 3, ppid 4, utime
 * 14, stime 15, cutime 16, cstime 17. Returns false when the process is gone. */
static bool proc_stat(pid_t pid, pid_t *ppid, unsigned long long *own,
                      unsigned long long *reaped)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
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

/* The cluster: the postmaster's own and reaped children's time, plus every
 * live child's (the same set as `pgrep -P POSTMASTER` and the postmaster). */
static unsigned long long cluster_ticks(void)
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

static struct cpu cpu_now(void)
{
    struct cpu c = {0, cluster_ticks()};
    if (!proc_stat(masad_pid, NULL, &c.masad, NULL))
        die("masad %d is gone", (int)masad_pid);
    return c;
}

/* ---- HTTP ---- */

static void client_init(struct client *c, const char *base, const char *ca, const char *token)
{
    char auth[512];
    memset(c, 0, sizeof(*c));
    c->base = base;
    c->curl = curl_easy_init();
    if (!c->curl)
        die("curl_easy_init failed");
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    c->headers = curl_slist_append(c->headers, auth);
    c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    curl_easy_setopt(c->curl, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->answer);
}

static void client_free(struct client *c)
{
    curl_slist_free_all(c->headers);
    curl_easy_cleanup(c->curl);
    free(c->answer.data);
}

/* Sends one request and returns the status; the body is in c->answer. */
static long request(struct client *c, const char *method, const char *path, const char *body,
                    size_t len)
{
    char url[1024];
    long status = 0;
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    c->answer.len = 0;
    buf_reserve(&c->answer, 0);
    c->answer.data[0] = 0;
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK)
        die("%s %s: %s", method, path, curl_easy_strerror(rc));
    long opened = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &opened);
    c->connects += opened;
    return status;
}

static void unexpected(const struct client *c, const char *what, long status)
{
    fprintf(stderr, "bench_management: %s: unexpected answer %ld\n%s\n", what, status,
            c->answer.data);
    exit(1);
}

/* The integer after "key": in a flat JSON object; false when absent. */
static bool json_long(const char *json, const char *key, long *out)
{
    char quoted[64];
    snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    const char *p = strstr(json, quoted);
    if (!p)
        return false;
    p += strlen(quoted);
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != ':')
        return false;
    char *end;
    *out = strtol(p, &end, 10);
    return end != p;
}

/* ---- the work ---- */

static void create_owners(struct client *c)
{
    for (long i = 1; i <= OWNERS; i++) {
        char path[128], body[128];
        snprintf(path, sizeof(path), "/api/v1/owners/bench-owner-%03ld", i);
        int n = snprintf(body, sizeof(body), "{\"display_name\": \"Bench owner %03ld\"}", i);
        long status = request(c, "PUT", path, body, (size_t)n);
        if (status != 201 && status != 200)
            unexpected(c, path, status);
    }
    printf("owners: %ld created or replaced\n", OWNERS);
}

static void import_item(struct buf *b, long i)
{
    buf_printf(b, "{\"serial_number\": \"BENCH-%07ld\", \"product\": \"router-x200\"}", i);
}

static void assign_item(struct buf *b, long i)
{
    buf_printf(b,
               "{\"serial_number\": \"BENCH-%07ld\", \"owner_id\": \"bench-owner-%03ld\","
               " \"order_ref\": \"SO-BENCH-%06ld\"}",
               i, (i - 1) % OWNERS + 1, i);
}

/* All of a phase's batch bodies, one after another in one buffer. */
static struct batch *build_bodies(struct buf *b, long devices, const char *array,
                                  void (*item)(struct buf *, long), size_t *nbatches)
{
    size_t n = (size_t)((devices + BATCH - 1) / BATCH);
    struct batch *batches = calloc(n ? n : 1, sizeof(*batches));
    if (!batches)
        die("out of memory");
    b->len = 0;
    for (size_t k = 0; k < n; k++) {
        long first = (long)k * BATCH + 1, last = first + BATCH - 1;
        if (last > devices)
            last = devices;
        batches[k].off = b->len;
        batches[k].count = last - first + 1;
        buf_printf(b, "{\"%s\": [", array);
        for (long i = first; i <= last; i++) {
            if (i > first)
                buf_printf(b, ", ");
            item(b, i);
        }
        buf_printf(b, "]}");
        batches[k].len = b->len - batches[k].off;
    }
    *nbatches = n;
    return batches;
}

/* Checks {"<a>": N, "<b>": M} with N + M == count; returns N. */
static long check_counts(const struct client *c, const char *what, long status, const char *a,
                         const char *b, long count)
{
    long na, nb;
    if (status != 200 || !json_long(c->answer.data, a, &na) ||
        !json_long(c->answer.data, b, &nb) || na + nb != count)
        unexpected(c, what, status);
    return na;
}

/* A GET answered 200 keeps the connection open, so that the phase does not
 * start with a TLS handshake (the server may have closed the connection
 * after the owners' 201 answers). */
static void warm_up(struct client *c)
{
    const char *path = "/api/v1/owners?limit=1";
    long status = request(c, "GET", path, NULL, 0);
    if (status != 200)
        unexpected(c, path, status);
}

static struct result run_phase(struct client *c, const char *name, const char *path,
                               const struct buf *bodies, const struct batch *batches, size_t n,
                               const char *counted[2])
{
    struct result r = {name, 0, 0, 0, 0};
    long first_total = 0;
    warm_up(c);
    long connects = c->connects;
    struct cpu before = cpu_now();
    double start = now();
    for (size_t k = 0; k < n; k++) {
        double t = now();
        long status = request(c, "POST", path, bodies->data + batches[k].off, batches[k].len);
        double took = now() - t;
        first_total += check_counts(c, path, status, counted[0], counted[1], batches[k].count);
        r.devices += batches[k].count;
        fprintf(stderr, "  %s batch %zu/%zu: %ld in %.3f s\n", name, k + 1, n, batches[k].count,
                took);
    }
    r.wall = now() - start;
    struct cpu after = cpu_now();
    r.masad_cpu = (double)(after.masad - before.masad) / ticks_per_second;
    r.pg_cpu = (double)(after.pg - before.pg) / ticks_per_second;
    printf("%s: %s %ld, %s %ld; new HTTP connections during the phase: %ld\n", name,
           counted[0], first_total, counted[1], r.devices - first_total, c->connects - connects);
    return r;
}

static struct result phase(struct client *c, const char *name, const char *path,
                           const char *array, void (*item)(struct buf *, long), long devices,
                           const char *counted[2], struct buf *bodies)
{
    size_t n;
    double t = now();
    struct batch *batches = build_bodies(bodies, devices, array, item, &n);
    fprintf(stderr, "%s: %zu bodies, %.1f MB, built in %.3f s (not timed)\n", name, n,
            (double)bodies->len / 1e6, now() - t);
    struct result r = run_phase(c, name, path, bodies, batches, n, counted);
    free(batches);
    return r;
}

/* The last assignment batch once more: every assignment must be unchanged. */
static void resend_last(struct client *c, long devices, struct buf *bodies)
{
    long first = (devices - 1) / BATCH * BATCH + 1;
    bodies->len = 0;
    buf_printf(bodies, "{\"assignments\": [");
    for (long i = first; i <= devices; i++) {
        if (i > first)
            buf_printf(bodies, ", ");
        assign_item(bodies, i);
    }
    buf_printf(bodies, "]}");
    const char *path = "/api/v1/ownership:batch";
    long count = devices - first + 1;
    long status = request(c, "POST", path, bodies->data, bodies->len);
    long assigned = check_counts(c, "re-send", status, "assigned", "unchanged", count);
    if (assigned != 0)
        unexpected(c, "re-send (expected all unchanged)", status);
    printf("re-send: %ld assignments sent again, all unchanged\n", count);
}

/* masad's and PostgreSQL's CPU use while nothing is asked of them. */
static void idle_baseline(void)
{
    struct cpu before = cpu_now();
    sleep(IDLE_SECONDS);
    struct cpu after = cpu_now();
    printf("idle: masad %.1f ms/s, PostgreSQL %.1f ms/s (over %d s, included in the phases' CPU)\n",
           (double)(after.masad - before.masad) / ticks_per_second * 1000 / IDLE_SECONDS,
           (double)(after.pg - before.pg) / ticks_per_second * 1000 / IDLE_SECONDS, IDLE_SECONDS);
}

static void print_result(const struct result *r)
{
    double k = (double)r->devices / 1000;
    printf("%s: %ld devices in %.2f s = %.0f devices/s; masad CPU %.2f s (%.1f ms per 1000), "
           "PostgreSQL CPU %.2f s (%.1f ms per 1000)\n",
           r->name, r->devices, r->wall, (double)r->devices / r->wall, r->masad_cpu,
           r->masad_cpu * 1000 / k, r->pg_cpu, r->pg_cpu * 1000 / k);
}

static long positive(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v <= 0)
        die("%s must be a positive number: '%s'", what, s);
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 7)
        die("usage: bench_management URL CAFILE TOKEN DEVICES MASAD_PID POSTMASTER_PID");
    long devices = positive(argv[4], "DEVICES");
    masad_pid = (pid_t)positive(argv[5], "MASAD_PID");
    postmaster_pid = (pid_t)positive(argv[6], "POSTMASTER_PID");
    ticks_per_second = (double)sysconf(_SC_CLK_TCK);
    setvbuf(stdout, NULL, _IOLBF, 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct client c;
    struct buf bodies = {0};
    client_init(&c, argv[1], argv[2], argv[3]);
    create_owners(&c);
    idle_baseline();
    const char *imported[2] = {"created", "updated"}, *assigned[2] = {"assigned", "unchanged"};
    struct result r1 = phase(&c, "import", "/api/v1/devices:batch", "devices", import_item,
                             devices, imported, &bodies);
    struct result r2 = phase(&c, "assign", "/api/v1/ownership:batch", "assignments", assign_item,
                             devices, assigned, &bodies);
    resend_last(&c, devices, &bodies);
    printf("HTTP connections opened: %ld\n", c.connects);

    printf("\n");
    print_result(&r1);
    print_result(&r2);
    free(bodies.data);
    client_free(&c);
    curl_global_cleanup();
    return 0;
}
