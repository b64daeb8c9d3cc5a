#include "common/error.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

int error_vset(struct masad_error *err, int status, const char *code, const char *fmt,
               va_list ap)
{
    if (!err)
        return -1;
    err->status = status;
    err->code = code;
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    return -1;
}

int error_set(struct masad_error *err, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, status, code, fmt, ap);
    va_end(ap);
    return -1;
}

void error_add_openssl(struct masad_error *err)
{
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (!err)
            continue;
        size_t used = strlen(err->message);
        if (used + 4 >= sizeof(err->message))
            continue;
        char reason[256];
        ERR_error_string_n(e, reason, sizeof(reason));
        snprintf(err->message + used, sizeof(err->message) - used, " (%s)", reason);
    }
}

void error_clear(struct masad_error *err)
{
    err->status = 0;
    err->code = NULL;
    err->message[0] = '\0';
}
