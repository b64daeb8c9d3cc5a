#ifndef MASAD_TEST_HARNESS_H
#define MASAD_TEST_HARNESS_H
/*
 * Black-box test harness: a database per test on the throwaway cluster that
 * scripts/test started, and the real masad binary (a test build) on free
 * ports with an inline configuration. Environment (set by scripts/test):
 * MASAD_TEST_BIN, MASAD_TEST_TMP, MASAD_TEST_PKI, MASAD_TEST_DEV,
 * MASAD_DATABASE_URL / MASAD_MIGRATE_DATABASE_URL / MASAD_ADMIN_DATABASE_URL
 * (cluster URLs for database "masad"), SOFTHSM2_CONF, MASAD_PKCS11_MODULE,
 * MASAD_PKCS11_URI, MASAD_PKCS11_PIN.
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

const char *env_or_die(const char *name);
/* A path under MASAD_TEST_PKI / MASAD_TEST_TMP (static buffer rotation: copy it). */
char *pki_path(const char *file);
char *tmp_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A fresh database with the masad roles; URLs for the runtime role and the
 * schema owner. db_url_for() swaps the database name of a cluster URL. */
struct test_db {
    char name[64];
    char *app_url;
    char *owner_url;
};
void db_create(struct test_db *db);
char *db_url_for(const char *cluster_url, const char *dbname);
/* Runs SQL as the given URL's role; returns 0 when it succeeded, and the
 * error text in *error (malloc'd) otherwise. */
int db_exec(const char *url, const char *sql, char **error);
/* The first column of the first row, malloc'd, or NULL. */
char *db_value(const char *url, const char *sql);

/* Runs the masad binary with args; captures stdout+stderr in *output. */
int masad_run(char **output, const char *const *env, const char *const *args);

struct masad_opts {
    unsigned job_threads;       /* 0: 2 */
    unsigned queue_capacity;    /* 0: 64 */
    unsigned shutdown_grace;    /* 0: 10 */
    unsigned job_time_limit;    /* seconds; 0: the default */
    const char *signer_key;     /* NULL: the SoftHSM token key */
    const char *signer_cert;    /* NULL: masa-chain.crt */
    bool no_migrate;            /* leave the database empty */
    const char *database_url;   /* NULL: a fresh database */
    const char *extra_config;   /* more top-level members: "\"masad-config:audit\": {...}" */
    const char *device_extra;   /* more members of the device listener: "\"proxy-protocol\": {...}" */
    const char *idevid_extra;   /* more members of the test IDevID trust anchor */
};

struct masad_proc {
    pid_t pid;
    unsigned device_port, management_port;
    char *stdout_path, *stderr_path, *config_path;
    struct test_db db;
};

/* Starts masad and waits until /healthz answers (or it exits). Returns false
 * when it did not come up; then proc->pid is 0 and the logs tell why. */
bool masad_start(struct masad_proc *p, const struct masad_opts *o);
bool masad_wait_ready(struct masad_proc *p, int timeout_ms);
/* SIGTERM and wait: the exit status (or -1 on a signal / timeout). */
int masad_stop(struct masad_proc *p, int timeout_ms);
/* A suite's fini: masad_stop, expecting a clean exit (masad's stderr in the
 * failure); nothing when masad never started. */
void masad_stop_expect_clean(struct masad_proc *p);
char *read_text(const char *path);

/* a formatted, allocated string */
char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* The first value of a query on masad's database as the schema owner,
 * "NULL" for none / SQL NULL. */
char *owner_value(const struct masad_proc *p, const char *f, ...)
    __attribute__((format(printf, 2, 3)));
/* a text (PEM) as a JSON string, quotes included */
char *json_string_of(const char *text);

/* HTTP over TLS with libcurl. */
struct http_opts {
    bool management;            /* the management listener, else device */
    bool http2;
    const char *method;         /* NULL: GET, or POST with a body */
    const void *body;
    size_t body_len;
    const char *content_type;
    const char *client_cert;    /* PEM chain file, leaf first */
    const char *client_key;
    long tls_max;               /* CURL_SSLVERSION_MAX_* or 0 */
    long tls_min;               /* CURL_SSLVERSION_* or 0 */
    bool expect_continue;       /* HTTP/1.1: wait for 100 Continue before the body */
    const char *bearer;         /* Authorization: Bearer <bearer> */
    const char *extra_header;   /* "Name: value" lines sent as they are */
    const char *extra_header2;
    const char *basic_auth;     /* "user:password": HTTP Basic (CURLOPT_USERPWD) */
};
struct http_result {
    long status;                /* 0: no HTTP answer (see error) */
    long http_version;          /* 11 or 2 */
    char *body;                 /* NUL-terminated */
    size_t body_len;
    char *headers;              /* raw header block, lower-cased names */
    char error[256];
};
struct http_result http(const struct masad_proc *p, const char *path, const struct http_opts *o);
/* The value of header `name` (lower case) in r, malloc'd, or NULL. */
char *http_header(const struct http_result *r, const char *name);
void http_result_free(struct http_result *r);

/* A management API token for p's database, with the given scopes. */
char *make_token(const struct masad_proc *p, const char *name, const char *scopes);

/* Writes data to a fresh temp file and returns its path. */
char *write_temp(const char *name, const void *data, size_t len);
/* Runs a shell command; returns its exit status, output in *out if asked. */
int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
