#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "common/arena.h"

static int cleaned;
static void count_cleanup(void *p) { cleaned += *(int *)p; }

Test(arena, allocations_are_zeroed_aligned_and_survive_growth)
{
    struct arena *a = arena_new();
    char *first = arena_strdup(a, "first");
    for (int i = 0; i < 1000; i++) {
        unsigned char *p = arena_alloc(a, 100 + (size_t)i);
        cr_assert_eq((uintptr_t)p % 16, 0);
        for (int j = 0; j < 100 + i; j++)
            cr_assert_eq(p[j], 0);
        memset(p, 0xab, 100 + (size_t)i);
    }
    void *big = arena_alloc(a, 1 << 20);
    memset(big, 1, 1 << 20);
    cr_assert_str_eq(first, "first");
    arena_free(a);
}

Test(arena, cleanups_run_in_reverse_on_reset_and_free)
{
    struct arena *a = arena_new();
    int one = 1, ten = 10;
    cleaned = 0;
    arena_defer(a, count_cleanup, &one);
    arena_reset(a);
    cr_assert_eq(cleaned, 1);
    arena_defer(a, count_cleanup, &ten);
    arena_free(a);
    cr_assert_eq(cleaned, 11);
}

Test(arena, printf_and_memdup_terminate)
{
    struct arena *a = arena_new();
    cr_assert_str_eq(arena_printf(a, "%s-%d", "x", 42), "x-42");
    char *d = arena_memdup(a, "abc", 2);
    cr_assert_str_eq(d, "ab");
    cr_assert_null(arena_strdup(a, NULL));
    arena_free(a);
}
