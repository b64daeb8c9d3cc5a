#ifndef MASAD_COMMON_ARENA_H
#define MASAD_COMMON_ARENA_H
/*
 * A memory pool per request: allocations and cleanups registered with an
 * arena are all released by one arena_reset() or arena_free(). Cleanups run
 * in reverse order of registration. Not thread-safe: one owner at a time.
 * Allocation failure aborts (out of memory is not an input error).
 */
#include <stddef.h>

struct arena;

struct arena *arena_new(void);
void arena_free(struct arena *a);
/* Runs the cleanups and releases the memory, keeping the first block. */
void arena_reset(struct arena *a);

void *arena_alloc(struct arena *a, size_t n);      /* zeroed, 16-byte aligned */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
void *arena_memdup(struct arena *a, const void *p, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Registers fn(p) to run when the arena is reset or freed. */
void arena_defer(struct arena *a, void (*fn)(void *), void *p);

#endif
