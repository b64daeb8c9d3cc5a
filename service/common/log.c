#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"

static enum log_level min_level = LOG_INFO;
/* where diagnostics go: descriptor 2, or its saved copy while captured */
static atomic_int diag_fd = STDERR_FILENO;
static int capture_fd = -1;
static const char *level_names[] = {"debug", "info", "warn", "error"};

static _Thread_local const char *current_request_id;
static _Thread_local const char *current_trace_id;

void log_set_level(enum log_level min) { min_level = min; }

void log_set_request(const char *request_id, const char *trace_id)
{
    current_request_id = request_id;
    current_trace_id = request_id ? trace_id : NULL;
}

void log_timestamp(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%06ldZ", (long)tv.tv_usec);
}

static void write_line(int fd, yajl_gen g)
{
    const unsigned char *buf;
    size_t n;
    yajl_gen_get_buf(g, &buf, &n);
    char line[8192];
    if (n > sizeof(line) - 1)
        n = sizeof(line) - 1; /* a runaway message is cut, the line stays one line */
    memcpy(line, buf, n);
    line[n++] = '\n';
    ssize_t w = write(fd, line, n);
    (void)w;
    yajl_gen_free(g);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[2048], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_timestamp(ts, sizeof(ts));
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "time", ts);
    json_kv_str(g, "level", level_names[level]);
    json_kv_str(g, "msg", msg);
    if (current_request_id)
        json_kv_str(g, "request_id", current_request_id);
    if (current_trace_id)
        json_kv_str(g, "trace_id", current_trace_id);
    json_close(g);
    write_line(atomic_load(&diag_fd), g);
}

void log_access(const struct access_entry *e)
{
    char ts[40];
    log_timestamp(ts, sizeof(ts));
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "time", ts);
    json_kv_str(g, "request_id", e->request_id);
    json_kv_str(g, "listener", e->listener);
    json_kv_str(g, "peer", e->peer);
    json_kv_str(g, "method", e->method);
    json_str(g, "path");
    json_strn(g, e->path, e->path_len);
    json_kv_str(g, "protocol", e->protocol);
    json_kv_int(g, "status", e->status);
    json_kv_int(g, "bytes", (long long)e->bytes);
    json_kv_int(g, "microseconds", e->microseconds);
    json_kv_str(g, "client_subject", e->client_subject);
    if (e->trace_id)
        json_kv_str(g, "trace_id", e->trace_id);
    json_close(g);
    write_line(STDOUT_FILENO, g);
}

void log_capture_stderr_begin(void)
{
    if (capture_fd >= 0)
        return;
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int buffer = memfd_create("masad-stderr", MFD_CLOEXEC);
    if (saved < 0 || buffer < 0 || dup2(buffer, STDERR_FILENO) < 0) {
        if (saved >= 0)
            close(saved);
        if (buffer >= 0)
            close(buffer);
        return;
    }
    atomic_store(&diag_fd, saved);
    capture_fd = buffer;
}

void log_capture_stderr_end(const char *source)
{
    if (capture_fd < 0)
        return;
    fflush(stderr);
    int saved = atomic_load(&diag_fd);
    dup2(saved, STDERR_FILENO);
    atomic_store(&diag_fd, STDERR_FILENO);
    close(saved);
    char text[16384];
    ssize_t n = pread(capture_fd, text, sizeof(text) - 1, 0);
    close(capture_fd);
    capture_fd = -1;
    text[n > 0 ? n : 0] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save))
        log_msg(LOG_WARN, "%s: %s", source, line);
}
