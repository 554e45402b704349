/*
 * fineclock: LD_PRELOAD interposer used by bench/run.sh for SIPp only.
 *
 * SIPp 3.6 reads all of its clocks with CLOCK_MONOTONIC_COARSE, which
 * advances once per kernel tick (4 ms at HZ=250).  On loopback every
 * INVITE->200 time then reads as 0 or 4 ms.  Here a request for the
 * coarse clock is answered from CLOCK_MONOTONIC (vDSO, nanoseconds), so
 * -trace_rtt reports microsecond response times.  Nothing else changes.
 *
 * Compiled by run.sh at run time:  cc -O2 -shared -fPIC -o fineclock.so fineclock.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>

static int (*next_clock_gettime)(clockid_t, struct timespec *);

int clock_gettime(clockid_t which, struct timespec *out)
{
    if (next_clock_gettime == NULL)
        next_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return next_clock_gettime(which == CLOCK_MONOTONIC_COARSE ? CLOCK_MONOTONIC : which, out);
}
