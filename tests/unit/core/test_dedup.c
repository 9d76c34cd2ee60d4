/* test_dedup.c: the bounded event-id window. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/dedup.h"

#define T0 1700000000LL

Test(dedup, duplicate_within_window)
{
    bd_dedup_t *d = bd_dedup_new(100, 3600);
    cr_assert_eq(bd_dedup_check(d, "p", "e1", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "e1", T0), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "e1", T0 + 10), 1); /* id decides, not ts */
    cr_assert_eq(bd_dedup_check(d, "p", "e2", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 2);
    /* a duplicate records nothing */
    cr_assert_eq(bd_dedup_check(d, "p", "e2", T0), 1);
    cr_assert_eq(bd_dedup_size(d), 2);
    bd_dedup_free(d);
}

Test(dedup, portfolio_is_part_of_the_key)
{
    bd_dedup_t *d = bd_dedup_new(100, 3600);
    cr_assert_eq(bd_dedup_check(d, "p1", "e1", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p2", "e1", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p2", "e1", T0), 1);
    /* the separator keeps ("ab","c") and ("a","bc") apart */
    cr_assert_eq(bd_dedup_check(d, "ab", "c", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "a", "bc", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 4);
    bd_dedup_free(d);
}

Test(dedup, empty_id_is_never_a_duplicate)
{
    bd_dedup_t *d = bd_dedup_new(10, 3600);
    cr_assert_eq(bd_dedup_check(d, "p", "", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", NULL, T0), 0);
    cr_assert_eq(bd_dedup_size(d), 0);
    bd_dedup_free(d);
}

Test(dedup, zero_capacity_disables)
{
    bd_dedup_t *d = bd_dedup_new(0, 3600);
    cr_assert_eq(bd_dedup_check(d, "p", "e", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "e", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 0);
    bd_dedup_free(d);
    bd_dedup_free(NULL);
}

Test(dedup, eviction_by_capacity_oldest_first)
{
    bd_dedup_t *d = bd_dedup_new(3, 1000000);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "c", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0), 1); /* a duplicate does not refresh a */
    cr_assert_eq(bd_dedup_check(d, "p", "d", T0), 0); /* evicts a */
    cr_assert_eq(bd_dedup_size(d), 3);
    cr_assert_eq(bd_dedup_check(d, "p", "c", T0), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "d", T0), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0), 0); /* forgotten: new again, evicts b */
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0), 0); /* evicts c */
    cr_assert_eq(bd_dedup_check(d, "p", "c", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 3);
    bd_dedup_free(d);
}

Test(dedup, eviction_by_time_window)
{
    bd_dedup_t *d = bd_dedup_new(100, 100);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0 + 50), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "x", T0 + 100), 0); /* newest - window == T0 */
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0 + 100), 1); /* ts == cutoff: still held */
    cr_assert_eq(bd_dedup_check(d, "p", "y", T0 + 101), 0); /* a falls out */
    cr_assert_eq(bd_dedup_size(d), 3);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0 + 101), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0 + 101), 1);
    /* a jump in event time expires everything older */
    cr_assert_eq(bd_dedup_check(d, "p", "z", T0 + 10000), 0);
    cr_assert_eq(bd_dedup_size(d), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0 + 10000), 0);
    bd_dedup_free(d);
}

Test(dedup, late_event_outside_window_is_not_recorded)
{
    bd_dedup_t *d = bd_dedup_new(100, 100);
    cr_assert_eq(bd_dedup_check(d, "p", "now", T0 + 1000), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "old", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "old", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 1);
    /* a late event still inside the window is remembered */
    cr_assert_eq(bd_dedup_check(d, "p", "late", T0 + 950), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "late", T0 + 950), 1);
    bd_dedup_free(d);
}

Test(dedup, expired_entry_behind_a_newer_front)
{
    /* out-of-order times: "b" expires while "a", older in insertion order but
     * newer in time, is still at the front; a lookup must not see "b". */
    bd_dedup_t *d = bd_dedup_new(100, 100);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0 + 100), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "c", T0 + 150), 0); /* cutoff T0+50 */
    cr_assert_eq(bd_dedup_size(d), 3); /* b is dropped lazily */
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0 + 150), 0); /* expired: new, re-recorded */
    cr_assert_eq(bd_dedup_size(d), 3);
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0 + 150), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0 + 150), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "c", T0 + 201), 1);
    cr_assert_eq(bd_dedup_size(d), 2); /* a expired at the front */
    bd_dedup_free(d);
}

Test(dedup, extreme_times_do_not_overflow)
{
    bd_dedup_t *d = bd_dedup_new(10, INT64_MAX);
    cr_assert_eq(bd_dedup_check(d, "p", "x", INT64_MIN), 0); /* cutoff saturates */
    cr_assert_eq(bd_dedup_check(d, "p", "x", INT64_MIN), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "a", 0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "b", INT64_MAX), 0); /* cutoff 0: x expires */
    cr_assert_eq(bd_dedup_check(d, "p", "a", 0), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "x", INT64_MIN), 0);
    bd_dedup_free(d);
    d = bd_dedup_new(10, -5); /* negative window acts as 0 */
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0), 1);
    cr_assert_eq(bd_dedup_check(d, "p", "b", T0 + 1), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "a", T0 + 1), 0);
    bd_dedup_free(d);
}

/* ---- randomised comparison with a naive model ---------------------------
 * The model keeps the same semantics (dedup.h) with linear scans, so this
 * checks the hash table and ring mechanics (wrap-around, backward-shift
 * deletion, dead entries) over long call sequences. */

#define MCAP 64
typedef struct {
    char p[8], id[8];
    long long ts;
    int dead;
} mentry_t;
static mentry_t mring[MCAP];
static size_t mhead, mcount;
static long long mnewest;
static int mhave;

static size_t model_size(void)
{
    size_t n = 0;
    for (size_t k = 0; k < mcount; k++) n += !mring[(mhead + k) % MCAP].dead;
    return n;
}

static int model_check(const char *p, const char *id, long long ts, long long window)
{
    if (!mhave || ts > mnewest) mnewest = ts, mhave = 1;
    long long cutoff = mnewest - window;
    while (mcount && (mring[mhead].dead || mring[mhead].ts < cutoff)) {
        mhead = (mhead + 1) % MCAP;
        mcount--;
    }
    for (size_t k = 0; k < mcount; k++) {
        mentry_t *e = &mring[(mhead + k) % MCAP];
        if (e->dead || strcmp(e->p, p) || strcmp(e->id, id)) continue;
        if (e->ts >= cutoff) return 1;
        e->dead = 1;
        break;
    }
    if (ts < cutoff) return 0;
    if (mcount == MCAP) {
        mhead = (mhead + 1) % MCAP;
        mcount--;
    }
    mentry_t *e = &mring[(mhead + mcount++) % MCAP];
    snprintf(e->p, sizeof e->p, "%s", p);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->ts = ts;
    e->dead = 0;
    return 0;
}

Test(dedup, matches_naive_model)
{
    const long long window = 40;
    bd_dedup_t *d = bd_dedup_new(MCAP, window);
    uint64_t x = 12345;
    long long t = T0;
    for (int step = 0; step < 200000; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64: fixed sequence */
        t += (long long)(x % 5) - 1;              /* mostly forward, sometimes back */
        long long ts = t - (long long)((x >> 8) % 60); /* jitter, some beyond window */
        char p[8], id[8];
        snprintf(p, sizeof p, "p%u", (unsigned)((x >> 20) % 3));
        snprintf(id, sizeof id, "e%u", (unsigned)((x >> 24) % 150));
        int want = model_check(p, id, ts, window);
        int got = bd_dedup_check(d, p, id, ts);
        cr_assert_eq(got, want, "step %d (%s,%s,%lld): got %d want %d", step, p, id, ts, got,
                     want);
        cr_assert_eq(bd_dedup_size(d), model_size(), "step %d", step);
    }
    bd_dedup_free(d);
}

Test(dedup, large_capacity_holds_everything)
{
    const size_t n = 100000;
    bd_dedup_t *d = bd_dedup_new(n, 1000000);
    char id[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "id-%zu", i);
        cr_assert_eq(bd_dedup_check(d, "p", id, T0), 0);
    }
    cr_assert_eq(bd_dedup_size(d), n);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "id-%zu", i);
        cr_assert_eq(bd_dedup_check(d, "p", id, T0), 1, "%s", id);
    }
    snprintf(id, sizeof id, "id-%zu", n);
    cr_assert_eq(bd_dedup_check(d, "p", id, T0), 0); /* evicts id-0 */
    cr_assert_eq(bd_dedup_check(d, "p", "id-0", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "id-2", T0), 1);
    bd_dedup_free(d);
}

/* The engine's variant: each portfolio's own clock decides expiry, so one
 * portfolio far ahead in event time does not expire another's ids. */
Test(dedup, window_per_caller_clock)
{
    bd_dedup_t *d = bd_dedup_new(16, 100);
    cr_assert_eq(bd_dedup_check_at(d, "slow", "e1", T0, T0), 0);
    cr_assert_eq(bd_dedup_check_at(d, "fast", "f1", T0 + 100000, T0 + 100000), 0);
    cr_assert_eq(bd_dedup_check_at(d, "slow", "e1", T0 + 5, T0 + 5), 1);
    cr_assert_eq(bd_dedup_check_at(d, "slow", "e1", T0 + 101, T0 + 101), 0); /* its own window passed */
    cr_assert_eq(bd_dedup_check_at(d, "slow", "e1", T0 + 102, T0 + 102), 1); /* re-recorded */
    /* capacity still bounds memory */
    char id[16];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "x%d", i);
        bd_dedup_check_at(d, "fast", id, T0 + 100000, T0 + 100000);
    }
    cr_assert_leq(bd_dedup_size(d), 16);
    cr_assert_eq(bd_dedup_check_at(d, "slow", "e1", T0 + 103, T0 + 103), 0); /* evicted by capacity */
    bd_dedup_free(d);
}

/* Prefaulting a fresh window (big enough to be mmap'd) leaves it working
 * normally; on a window that already holds ids it must change nothing. */
Test(dedup, prefault_changes_no_result)
{
    bd_dedup_t *d = bd_dedup_new(1 << 20, 3600);
    bd_dedup_prefault(d);
    cr_assert_eq(bd_dedup_check(d, "p", "e1", T0), 0);
    cr_assert_eq(bd_dedup_check(d, "p", "e1", T0), 1);
    bd_dedup_prefault(d); /* not empty: a no-op, the id stays */
    cr_assert_eq(bd_dedup_check(d, "p", "e1", T0 + 1), 1);
    cr_assert_eq(bd_dedup_size(d), 1);
    bd_dedup_free(d);
}
