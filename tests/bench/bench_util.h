/* What the load generators under tests/bench/ share (bench_util.c). */
#ifndef MASAD_BENCH_UTIL_H
#define MASAD_BENCH_UTIL_H

#include <curl/curl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* the program's name, the prefix of die()'s message */
extern const char *bench_name;

__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
__attribute__((noreturn)) void die_openssl(const char *what);
void path_join(char *out, size_t n, const char *dir, const char *name);

/* a growing, NUL-terminated buffer */
struct buf {
    char *data;
    size_t len, cap;
};
void buf_reserve(struct buf *b, size_t more);
__attribute__((format(printf, 2, 3))) void buf_printf(struct buf *b, const char *fmt, ...);
/* a libcurl write callback appending to the struct buf in userdata */
size_t collect(char *ptr, size_t size, size_t n, void *userdata);

/* CLOCK_MONOTONIC in seconds */
double now(void);
/* /proc/PID/stat (or a task's stat file): parent, own and reaped children's
 * CPU in clock ticks; false when it is gone */
bool stat_file(const char *path, pid_t *ppid, unsigned long long *own, unsigned long long *reaped);
bool proc_stat(pid_t pid, pid_t *ppid, unsigned long long *own, unsigned long long *reaped);
/* a PostgreSQL cluster's CPU in clock ticks: the postmaster and its children */
unsigned long long cluster_ticks(pid_t postmaster_pid);
/* this process's CPU, in seconds */
double self_cpu(void);
/* the whole machine, from the first line of /proc/stat (clock ticks) */
struct machine {
    unsigned long long busy, idle, steal;
};
struct machine machine_now(void);
/* prints the core count, CPU model and load average */
void print_machine(void);

X509 *read_cert(const char *path);
EVP_PKEY *read_key(const char *path);
void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value);

/* qsort comparator for doubles, and the nearest-rank percentile of a sorted array */
int compare_double(const void *a, const void *b);
double percentile(const double *sorted, long n, double p);
/* a positive decimal argument, or die() naming it */
long positive(const char *s, const char *what);


/* a keep-alive HTTP/1.1 client of the management API with a bearer token */
struct mgmt {
    CURL *curl;
    struct curl_slist *headers;
    struct buf answer;
    const char *base;
    long connects; /* connections opened: 1 when keep-alive holds */
};
void mgmt_init(struct mgmt *m, const char *base, const char *ca, const char *token);
void mgmt_free(struct mgmt *m);
/* Sends one request (body NULL: a GET) and returns the status; the answer
 * is in m->answer. */
long mgmt_request(struct mgmt *m, const char *method, const char *path, const char *body,
                  size_t len);
/* prints the answer and exits 1 */
__attribute__((noreturn)) void mgmt_unexpected(const struct mgmt *m, const char *what,
                                               long status);
/* The integer after "key": in a flat JSON object; -1 when absent. */
long json_long(const char *json, const char *key);

#endif
