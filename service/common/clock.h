#ifndef MASAD_COMMON_CLOCK_H
#define MASAD_COMMON_CLOCK_H
/* The monotonic clock, for durations and deadlines (never for timestamps
 * that leave the process). */
#include <time.h>

static inline long long clock_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static inline long long clock_monotonic_ms(void) { return clock_monotonic_us() / 1000; }

#endif
