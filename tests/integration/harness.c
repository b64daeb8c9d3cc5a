#include "harness.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The integration tests check masad's own process for leaks (it must exit 0
 * under LeakSanitizer); the test programs' bookkeeping is not checked. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }

const char *env_or_die(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        cr_assert_fail("%s is not set: run the tests through scripts/test", name);
    return v;
}

char *pki_path(const char *file)
{
    char *p;
    cr_assert(asprintf(&p, "%s/%s", env_or_die("MASAD_TEST_PKI"), file) > 0);
    return p;
}

char *tmp_path(const char *fmt, ...)
{
    char name[256], *p;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    cr_assert(asprintf(&p, "%s/%s", env_or_die("MASAD_TEST_TMP"), name) > 0);
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- databases ---- */

char *db_url_for(const char *cluster_url, const char *dbname)
{
    /* postgresql:///NAME?query */
    const char *q = strchr(cluster_url, '?');
    char *out;
    cr_assert(q && asprintf(&out, "postgresql:///%s%s", dbname, q) > 0);
    return out;
}

int db_exec(const char *url, const char *sql, char **error)
{
    PGconn *c = PQconnectdb(url);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
        if (rc && error)
            *error = strdup(PQresultErrorMessage(r));
        PQclear(r);
    } else if (error)
        *error = strdup(PQerrorMessage(c));
    PQfinish(c);
    return rc;
}

char *db_value(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    char *v = NULL;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
            v = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    PQfinish(c);
    return v;
}

void db_create(struct test_db *db)
{
    static unsigned counter;
    unsigned rnd;
    FILE *f = fopen("/dev/urandom", "rb");
    cr_assert(f && fread(&rnd, sizeof(rnd), 1, f) == 1);
    fclose(f);
    snprintf(db->name, sizeof(db->name), "t_%d_%u_%08x", (int)getpid(), counter++, rnd);
    const char *admin = env_or_die("MASAD_ADMIN_DATABASE_URL");
    char sql[256], *err = NULL;
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER masad_owner", db->name);
    cr_assert(db_exec(admin, sql, &err) == 0, "create database: %s", err);
    char *db_admin = db_url_for(admin, db->name);
    cr_assert(db_exec(db_admin, "ALTER SCHEMA public OWNER TO masad_owner;"
                                "REVOKE CREATE ON SCHEMA public FROM PUBLIC", &err) == 0,
              "schema owner: %s", err);
    free(db_admin);
    db->app_url = db_url_for(env_or_die("MASAD_DATABASE_URL"), db->name);
    db->owner_url = db_url_for(env_or_die("MASAD_MIGRATE_DATABASE_URL"), db->name);
}

/* ---- processes ---- */

static char *slurp_fd(int fd)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + n, cap - n - 1)) > 0) {
        n += (size_t)got;
        if (cap - n < 2)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    return buf;
}

int masad_run(char **output, const char *const *env, const char *const *args)
{
    int fds[2];
    cr_assert(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        for (const char *const *e = env; e && *e; e += 2)
            setenv(e[0], e[1], 1);
        const char *argv[32] = {env_or_die("MASAD_TEST_BIN")};
        int i = 1;
        for (const char *const *a = args; *a && i < 31; a++)
            argv[i++] = *a;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    char *out = slurp_fd(fds[0]);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (output)
        *output = out;
    else
        free(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

void masad_stop_expect_clean(struct masad_proc *p)
{
    if (p->pid)
        cr_expect_eq(masad_stop(p, 15000), 0, "masad did not exit cleanly: %s",
                     read_text(p->stderr_path));
}

char *fmt(const char *f, ...)
{
    char *s;
    va_list ap;
    va_start(ap, f);
    cr_assert(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

char *owner_value(const struct masad_proc *p, const char *f, ...)
{
    char *sql;
    va_list ap;
    va_start(ap, f);
    cr_assert(vasprintf(&sql, f, ap) >= 0);
    va_end(ap);
    char *v = db_value(p->db.owner_url, sql);
    free(sql);
    return v ? v : strdup("NULL");
}

char *json_string_of(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(2 * n + 3), *p = out;
    *p++ = '"';
    for (const char *s = text; *s; s++) {
        if (*s == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else
            *p++ = *s;
    }
    *p++ = '"';
    *p = 0;
    return out;
}

char *read_text(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return strdup("");
    char *s = slurp_fd(fd);
    close(fd);
    return s;
}

static void write_config(struct masad_proc *p, const struct masad_opts *o)
{
    static unsigned n;
    p->config_path = tmp_path("masad-%d-%u.json", (int)getpid(), n++);
    FILE *f = fopen(p->config_path, "w");
    cr_assert(f);
    char *tls_cert = pki_path("tls-chain.crt"), *tls_key = pki_path("tls.key");
    char *idevid_ca = pki_path("idevid-ca.crt");
    char *signer_cert = o->signer_cert ? strdup(o->signer_cert) : pki_path("masa-chain.crt");
    char limit[48] = "";
    if (o->job_time_limit)
        snprintf(limit, sizeof(limit), ", \"job-time-limit\": %u", o->job_time_limit);
    fprintf(f,
            "{\"masad-config:service\": {\"event-loops\": 2, \"job-threads\": %u,"
            " \"queue-capacity\": %u, \"shutdown-grace\": %u%s},\n"
            " \"masad-config:listeners\": {\"device\": {\"address\": \"127.0.0.1\", \"port\": %u%s%s},"
            " \"management\": {\"address\": \"127.0.0.1\", \"port\": %u}},\n"
            " \"masad-config:tls\": {\"certificate\": \"%s\", \"private-key\": \"%s\"},\n"
            " \"masad-config:idevid\": {\"trust-anchor\": [{\"name\": \"test IDevID CA\","
            " \"certificate\": \"%s\"%s%s}]},\n"
            " \"masad-config:database\": {\"connect-timeout\": 2},\n"
            " \"masad-config:signer\": {\"key\": \"%s\", \"pkcs11-module\": \"%s\","
            " \"certificate\": \"%s\"}%s%s}\n",
            o->job_threads ? o->job_threads : 2, o->queue_capacity ? o->queue_capacity : 64,
            o->shutdown_grace ? o->shutdown_grace : 10, limit, p->device_port,
            o->device_extra ? ", " : "", o->device_extra ? o->device_extra : "", p->management_port,
            tls_cert, tls_key, idevid_ca, o->idevid_extra ? ", " : "",
            o->idevid_extra ? o->idevid_extra : "", o->signer_key ? o->signer_key : env_or_die("MASAD_PKCS11_URI"),
            env_or_die("MASAD_PKCS11_MODULE"), signer_cert, o->extra_config ? ",\n " : "",
            o->extra_config ? o->extra_config : "");
    fclose(f);
    free(tls_cert);
    free(tls_key);
    free(idevid_ca);
    free(signer_cert);
}

static bool exited(struct masad_proc *p)
{
    int status;
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
        p->pid = 0;
        return true;
    }
    return false;
}

bool masad_start(struct masad_proc *p, const struct masad_opts *o)
{
    static const struct masad_opts defaults;
    if (!o)
        o = &defaults;
    memset(p, 0, sizeof(*p));
    if (o->database_url)
        p->db.app_url = strdup(o->database_url);
    else {
        db_create(&p->db);
        if (!o->no_migrate) {
            char *out;
            const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", p->db.owner_url, NULL};
            const char *args[] = {"migrate", NULL};
            cr_assert(masad_run(&out, env, args) == 0, "migrate: %s", out);
            free(out);
        }
    }
    p->device_port = free_port();
    p->management_port = free_port();
    write_config(p, o);
    p->stdout_path = tmp_path("masad-%d-%u.out", (int)getpid(), p->device_port);
    p->stderr_path = tmp_path("masad-%d-%u.err", (int)getpid(), p->device_port);
    p->pid = fork();
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no server behind */
        int out = open(p->stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(p->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(out, 1);
        dup2(err, 2);
        setenv("MASAD_DATABASE_URL", p->db.app_url, 1);
        execl(env_or_die("MASAD_TEST_BIN"), "masad", "serve", "-c", p->config_path, (char *)NULL);
        _exit(127);
    }
    /* the management listener: the device one may sit behind a (configured) load balancer */
    static const struct http_opts management = {.management = true};
    for (int i = 0; i < 300; i++) {
        if (exited(p))
            return false;
        struct http_result r = http(p, "/healthz", &management);
        bool up = r.status == 200;
        http_result_free(&r);
        if (up)
            return true;
        sleep_ms(50);
    }
    return false;
}

bool masad_wait_ready(struct masad_proc *p, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        struct http_result r = http(p, "/readyz", NULL);
        bool ready = r.status == 200;
        http_result_free(&r);
        if (ready)
            return true;
        sleep_ms(50);
    }
    return false;
}

int masad_stop(struct masad_proc *p, int timeout_ms)
{
    if (!p->pid)
        return -1;
    kill(p->pid, SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        sleep_ms(20);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
    return -1;
}

/* ---- HTTP ---- */

struct buf {
    char *data;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;
    size_t add = size * n;
    b->data = realloc(b->data, b->len + add + 1);
    memcpy(b->data + b->len, ptr, add);
    b->len += add;
    b->data[b->len] = 0;
    return add;
}

struct http_result http(const struct masad_proc *p, const char *path, const struct http_opts *o)
{
    static const struct http_opts defaults;
    if (!o)
        o = &defaults;
    struct http_result r;
    memset(&r, 0, sizeof(r));
    char url[512];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u%s",
             o->management ? p->management_port : p->device_port, path);
    CURL *c = curl_easy_init();
    struct buf body = {0}, head = {0};
    char *ca = pki_path("root-ca.crt");
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                     o->http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r.error);
    if (o->tls_max || o->tls_min)
        curl_easy_setopt(c, CURLOPT_SSLVERSION, o->tls_min | o->tls_max);
    if (o->client_cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, o->client_cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, o->client_key);
    }
    if (o->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    }
    if (o->method && !strcmp(o->method, "HEAD")) /* a HEAD answer has no body to wait for */
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (o->method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
    char ct[256];
    snprintf(ct, sizeof(ct), "Content-Type: %s", o->content_type ? o->content_type : "application/octet-stream");
    hdrs = curl_slist_append(hdrs, ct);
    if (o->extra_header)
        hdrs = curl_slist_append(hdrs, o->extra_header);
    if (o->extra_header2)
        hdrs = curl_slist_append(hdrs, o->extra_header2);
    char auth[256];
    if (o->bearer) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->bearer);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (o->basic_auth) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, o->basic_auth);
    }
    if (!o->expect_continue)
        hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        long v = 0;
        curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &v);
        r.http_version = v == CURL_HTTP_VERSION_2_0 ? 2 : 11;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    free(ca);
    r.body = body.data ? body.data : strdup("");
    r.body_len = body.len;
    r.headers = head.data ? head.data : strdup("");
    for (char *s = r.headers; *s; s++) /* names to lower case, values too: tests compare loosely */
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
    return r;
}

char *http_header(const struct http_result *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end)
            break;
        if ((size_t)(end - line) > n && !strncmp(line, name, n) && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(end - v));
        }
        line = end + 2;
    }
    return NULL;
}

void http_result_free(struct http_result *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

char *make_token(const struct masad_proc *p, const char *name, const char *scopes)
{
    char *out;
    const char *env[] = {"MASAD_DATABASE_URL", p->db.app_url, NULL};
    const char *args[] = {"token", "create", "--name", name, "--scope", scopes, NULL};
    cr_assert_eq(masad_run(&out, env, args), 0, "token create: %s", out);
    out[strcspn(out, "\n")] = 0;
    cr_assert(!strncmp(out, "msd_", 4), "token: %s", out);
    return out;
}

char *write_temp(const char *name, const void *data, size_t len)
{
    static unsigned n;
    char *path = tmp_path("%d-%u-%s", (int)getpid(), n++, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(data, 1, len, f) == len);
    fclose(f);
    return path;
}

int sh(char **out, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    cr_assert(vasprintf(&cmd, fmt, ap) > 0);
    va_end(ap);
    char *full;
    cr_assert(asprintf(&full, "(%s) 2>&1", cmd) > 0);
    FILE *p = popen(full, "r");
    cr_assert(p);
    char *text = slurp_fd(fileno(p));
    int status = pclose(p);
    free(cmd);
    free(full);
    if (out)
        *out = text;
    else
        free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
