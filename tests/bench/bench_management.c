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

#include "bench_util.h"

#define BATCH 10000L
#define OWNERS 100L
#define IDLE_SECONDS 2

struct batch {
    size_t off, len;
    long count;
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

/* ---- clocks ---- */

static struct cpu cpu_now(void)
{
    struct cpu c = {0, cluster_ticks(postmaster_pid)};
    if (!proc_stat(masad_pid, NULL, &c.masad, NULL))
        die("masad %d is gone", (int)masad_pid);
    return c;
}

/* ---- the work ---- */

static void create_owners(struct mgmt *c)
{
    for (long i = 1; i <= OWNERS; i++) {
        char path[128], body[128];
        snprintf(path, sizeof(path), "/api/v1/owners/bench-owner-%03ld", i);
        int n = snprintf(body, sizeof(body), "{\"display_name\": \"Bench owner %03ld\"}", i);
        long status = mgmt_request(c, "PUT", path, body, (size_t)n);
        if (status != 201 && status != 200)
            mgmt_unexpected(c, path, status);
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
static long check_counts(const struct mgmt *c, const char *what, long status, const char *a,
                         const char *b, long count)
{
    long na = json_long(c->answer.data, a), nb = json_long(c->answer.data, b);
    if (status != 200 || na < 0 || nb < 0 || na + nb != count)
        mgmt_unexpected(c, what, status);
    return na;
}

/* A GET answered 200 keeps the connection open, so that the phase does not
 * start with a TLS handshake (the server may have closed the connection
 * after the owners' 201 answers). */
static void warm_up(struct mgmt *c)
{
    const char *path = "/api/v1/owners?limit=1";
    long status = mgmt_request(c, "GET", path, NULL, 0);
    if (status != 200)
        mgmt_unexpected(c, path, status);
}

static struct result run_phase(struct mgmt *c, const char *name, const char *path,
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
        long status = mgmt_request(c, "POST", path, bodies->data + batches[k].off, batches[k].len);
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

static struct result phase(struct mgmt *c, const char *name, const char *path,
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
static void resend_last(struct mgmt *c, long devices, struct buf *bodies)
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
    long status = mgmt_request(c, "POST", path, bodies->data, bodies->len);
    long assigned = check_counts(c, "re-send", status, "assigned", "unchanged", count);
    if (assigned != 0)
        mgmt_unexpected(c, "re-send (expected all unchanged)", status);
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

int main(int argc, char **argv)
{
    bench_name = "bench_management";
    if (argc != 7)
        die("usage: bench_management URL CAFILE TOKEN DEVICES MASAD_PID POSTMASTER_PID");
    long devices = positive(argv[4], "DEVICES");
    masad_pid = (pid_t)positive(argv[5], "MASAD_PID");
    postmaster_pid = (pid_t)positive(argv[6], "POSTMASTER_PID");
    ticks_per_second = (double)sysconf(_SC_CLK_TCK);
    setvbuf(stdout, NULL, _IOLBF, 0);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    struct mgmt c;
    struct buf bodies = {0};
    mgmt_init(&c, argv[1], argv[2], argv[3]);
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
    mgmt_free(&c);
    curl_global_cleanup();
    return 0;
}
