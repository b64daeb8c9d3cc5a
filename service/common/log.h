#ifndef MASAD_COMMON_LOG_H
#define MASAD_COMMON_LOG_H
/*
 * Logging. Diagnostics go to stderr and access lines to stdout, each one
 * JSON object per line, written with a single write(2) so that lines from
 * several threads never interleave. Safe from any thread.
 */
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
/* The request the calling thread works on, or NULL: every diagnostic the
 * thread writes meanwhile carries its request_id (and trace_id when the
 * client sent a W3C traceparent). The strings must outlive the setting;
 * set NULL when the request is done. */
void log_set_request(const char *request_id, const char *trace_id);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

struct access_entry {
    const char *request_id;
    const char *listener;       /* "device" or "management" */
    const char *method;
    const char *path;
    size_t path_len;
    const char *protocol;       /* "HTTP/1.1", "HTTP/2" */
    int status;
    size_t bytes;               /* response body bytes */
    long long microseconds;     /* from the request's arrival to its answer */
    const char *client_subject; /* client certificate subject, or NULL */
    const char *peer;           /* peer address */
    const char *trace_id;       /* W3C Trace Context trace-id, or NULL */
};

void log_access(const struct access_entry *e);

/* Libraries that write on file descriptor 2 themselves (libp11's dlopen
 * errors, a PKCS#11 module's complaints) would break the JSON lines: between
 * begin and end, descriptor 2 goes to a buffer, and end writes each line
 * that arrived as a diagnostic, prefixed with `source`. Diagnostics from
 * log_msg() meanwhile still go out directly. Not nested; meant for
 * start-up and shutdown, when one thread does the work. */
void log_capture_stderr_begin(void);
void log_capture_stderr_end(const char *source);

/* RFC 3339 UTC time with microseconds into buf (at least 32 bytes). */
void log_timestamp(char *buf, size_t len);

#endif
