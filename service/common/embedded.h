#ifndef MASAD_COMMON_EMBEDDED_H
#define MASAD_COMMON_EMBEDDED_H
/* Files compiled into the binary by build-aux/embed.c, sorted by name. */
#include <stddef.h>

struct embedded_file {
    const char *name;           /* base name, e.g. "0001_init.sql" */
    const unsigned char *data;  /* NUL-terminated */
    size_t len;                 /* without the terminating NUL */
};

extern const struct embedded_file embedded_migrations[];
extern const size_t embedded_migrations_count;
extern const struct embedded_file embedded_yang[];
extern const size_t embedded_yang_count;
extern const struct embedded_file embedded_docs[];   /* openapi.json */
extern const size_t embedded_docs_count;

#endif
