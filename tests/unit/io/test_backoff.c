/* test_backoff.c: the retry schedule shared by every retry loop
 * (backoff.h): doubling, cap, deterministic jitter, the attempt counter. */
#include <criterion/criterion.h>
#include "budgetd/backoff.h"

/* Redis: 100 ms doubling to 5 s, with at most 10% jitter on top. */
Test(backoff, redis_doubles_and_caps)
{
    const bd_backoff_t b = BD_BACKOFF_REDIS;
    int prev = 0;
    for (unsigned a = 0; a < 6; a++) {
        int ms = bd_backoff_delay_ms(&b, a);
        int base = 100 << a;
        cr_assert(ms >= base && ms <= base + base / 10, "attempt %u: %d ms", a, ms);
        cr_assert_gt(ms, prev);
        prev = ms;
    }
    for (unsigned a = 6; a < 40; a++) {
        int ms = bd_backoff_delay_ms(&b, a);
        cr_assert(ms >= 5000 && ms <= 5500, "attempt %u: %d ms", a, ms);
    }
    /* the jitter is a function of the attempt: the same every time */
    cr_assert_eq(bd_backoff_delay_ms(&b, 3), bd_backoff_delay_ms(&b, 3));
    int jittered = 0;
    for (unsigned a = 0; a < 40; a++) jittered += bd_backoff_delay_ms(&b, a) % 100 != 0;
    cr_assert_gt(jittered, 0, "no attempt got any jitter");
}

/* Dead letters: 1, 2, 4, ... 32 s, then 60 s for ever, no jitter. */
Test(backoff, dlq_schedule_is_exact)
{
    const bd_backoff_t b = BD_BACKOFF_DLQ;
    const int want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    for (unsigned a = 0; a < sizeof want / sizeof want[0]; a++)
        cr_assert_eq(bd_backoff_delay_ms(&b, a), want[a], "attempt %u", a);
    cr_assert_eq(bd_backoff_delay_ms(&b, 1000000), 60000, "a huge attempt number must not overflow");
}

/* next_ms walks the schedule and counts the failures. */
Test(backoff, next_counts_attempts)
{
    bd_backoff_t b = BD_BACKOFF_DLQ;
    cr_assert_eq(bd_backoff_next_ms(&b), 1000);
    cr_assert_eq(bd_backoff_next_ms(&b), 2000);
    cr_assert_eq(bd_backoff_next_ms(&b), 4000);
    cr_assert_eq(b.attempt, 3);
}
