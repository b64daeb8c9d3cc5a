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
};

void log_access(const struct access_entry *e);

/* RFC 3339 UTC time with microseconds into buf (at least 32 bytes). */
void log_timestamp(char *buf, size_t len);

#endif
