/* backoff.c: the retry schedule (see backoff.h). */
#include <time.h>
#include "budgetd/backoff.h"
#include "budgetd/common.h"

/* See backoff.h. Doubling stops at the cap, so no attempt number overflows. */
int bd_backoff_delay_ms(const bd_backoff_t *b, unsigned attempt)
{
    long long d = b->base_ms;
    for (unsigned i = 0; i < attempt && d < b->cap_ms; i++) d *= 2;
    if (d > b->cap_ms) d = b->cap_ms;
    int base = (int)d;
    if (b->jitter_pct <= 0) return base;
    return base + (int)(bd_mix64(attempt) % (uint64_t)(base * b->jitter_pct / 100 + 1));
}

/* See backoff.h: the delay of the current attempt, then one more attempt. */
int bd_backoff_next_ms(bd_backoff_t *b)
{
    return bd_backoff_delay_ms(b, b->attempt++);
}

/* See backoff.h: nanosleep, not restarted after a signal. */
void bd_backoff_sleep_ms(int ms)
{
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
