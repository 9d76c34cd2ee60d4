/* backoff.h: the one retry schedule of budgetd. Every loop that waits for
 * an outage to end (Redis writes and reads, dead letters the producer gave
 * up on, an adapter's command that failed) takes its delays from a
 * bd_backoff_t: base_ms doubling up to cap_ms, plus a jitter that depends on
 * the attempt number only, so runs and tests see the same delays every
 * time. */
#ifndef BUDGETD_BACKOFF_H
#define BUDGETD_BACKOFF_H

typedef struct {
    int base_ms;        /* delay after the first failure */
    int cap_ms;         /* no delay is longer (before jitter) */
    int jitter_pct;     /* up to this percent of the delay added; 0: none */
    unsigned attempt;   /* failures so far (bd_backoff_next_ms counts them) */
} bd_backoff_t;

/* Initialisers of the schedules in use (bd_backoff_t b = BD_BACKOFF_REDIS).
 * Redis unavailable: 100 ms doubling to 5 s, up to 10% more. */
#define BD_BACKOFF_REDIS {.base_ms = 100, .cap_ms = 5000, .jitter_pct = 10, .attempt = 0}
/* A dead letter the producer gave up on: 1 s doubling to 60 s. */
#define BD_BACKOFF_DLQ {.base_ms = 1000, .cap_ms = 60000, .jitter_pct = 0, .attempt = 0}
/* An adapter's command that failed (`budgetd adapter`): 1 s doubling to
 * 60 s, up to 10% more. */
#define BD_BACKOFF_EXEC {.base_ms = 1000, .cap_ms = 60000, .jitter_pct = 10, .attempt = 0}

/* The delay before retrying after failure number attempt + 1 (attempt 0 is
 * the first failure): min(base_ms * 2^attempt, cap_ms) plus the jitter. */
int bd_backoff_delay_ms(const bd_backoff_t *b, unsigned attempt);

/* The delay for b's next retry; counts the failure. */
int bd_backoff_next_ms(bd_backoff_t *b);

/* Sleeps ms milliseconds (a signal may cut it short: callers re-check
 * their stop flag anyway). */
void bd_backoff_sleep_ms(int ms);

#endif
