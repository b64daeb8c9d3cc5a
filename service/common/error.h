#ifndef MASAD_COMMON_ERROR_H
#define MASAD_COMMON_ERROR_H
/*
 * One error convention for the whole service: a function that can fail
 * returns 0 or -1 and, on -1, has filled a struct masad_error with the HTTP
 * status to answer with, a short machine code and a human sentence.
 * Library errors (OpenSSL, libpq, libyang) are converted at the boundary of
 * the folder that calls the library.
 */
#include <stdarg.h>

struct masad_error {
    int status;         /* HTTP status; 500 when an internal fault */
    const char *code;   /* a literal such as "db-unavailable" */
    char message[512];  /* a sentence for a human; never holds secrets */
};

/* Fills err (which may be NULL) and returns -1, so that callers can write
 * `return error_set(err, 422, "bad-cert", "...", ...);` */
int error_set(struct masad_error *err, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int error_vset(struct masad_error *err, int status, const char *code, const char *fmt,
               va_list ap);

/* Appends OpenSSL's queued error reasons to err->message and clears the queue. */
void error_add_openssl(struct masad_error *err);

void error_clear(struct masad_error *err);

#endif
