/* test_dedup.c: a portfolio's event-id store (dedup.h): held by time on the
 * caller's clock and by max_ids, growth, rev'd ids with their numbers, and
 * the insertion-order walk a checkpoint rebuilds the store from. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/common.h"
#include "budgetd/dedup.h"

#define T0 1700000000LL

/* check at the event's own time (a portfolio whose clock is this event) */
static int chk(bd_dedup_t *d, const char *id, long long ts) { return bd_dedup_check(d, id, ts, ts); }

Test(dedup, duplicate_within_window)
{
    bd_dedup_t *d = bd_dedup_new(3600, 100);
    cr_assert_eq(chk(d, "e1", T0), 0);
    cr_assert_eq(chk(d, "e1", T0), 1);
    cr_assert_eq(bd_dedup_check(d, "e1", T0 + 10, T0 + 10), 1); /* id decides, not ts */
    cr_assert_eq(chk(d, "e2", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 2);
    /* a duplicate records nothing */
    cr_assert_eq(chk(d, "e2", T0), 1);
    cr_assert_eq(bd_dedup_size(d), 2);
    bd_dedup_free(d);
}

Test(dedup, empty_id_is_never_a_duplicate)
{
    bd_dedup_t *d = bd_dedup_new(3600, 10);
    cr_assert_eq(chk(d, "", T0), 0);
    cr_assert_eq(chk(d, "", T0), 0);
    cr_assert_eq(chk(d, NULL, T0), 0);
    cr_assert_eq(bd_dedup_size(d), 0);
    bd_dedup_free(d);
}

Test(dedup, zero_max_ids_disables)
{
    bd_dedup_t *d = bd_dedup_new(3600, 0);
    cr_assert_eq(chk(d, "e", T0), 0);
    cr_assert_eq(chk(d, "e", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 0);
    bd_dedup_free(d);
    bd_dedup_free(NULL);
}

/* The key is bd_hash64 of the id under the two fixed seeds (checkpoints
 * store it: it must never change), h2 with its low bit set. */
Test(dedup, key_is_fixed)
{
    const char *ids[] = {"", "a", "e-1/2:3", "pf-00001/ch-3/1767225600/0"};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        bd_dedup_key_t k;
        bd_dedup_key(ids[i], &k);
        cr_assert_eq(k.h1, bd_hash64(ids[i], strlen(ids[i]), 0x6275646765746431ULL));
        cr_assert_eq(k.h2, bd_hash64(ids[i], strlen(ids[i]), 0x6275646765746432ULL) | 1);
    }
    bd_dedup_key_t a, b;
    bd_dedup_key("ab", &a);
    bd_dedup_key("ba", &b);
    cr_assert(a.h1 != b.h1 && a.h2 != b.h2);
}

Test(dedup, max_ids_drops_the_oldest_and_counts)
{
    bd_dedup_t *d = bd_dedup_new(1000000, 3);
    cr_assert_eq(chk(d, "a", T0), 0);
    cr_assert_eq(chk(d, "b", T0), 0);
    cr_assert_eq(chk(d, "c", T0), 0);
    cr_assert_eq(chk(d, "a", T0), 1); /* a duplicate does not refresh a */
    bd_dedup_key_t k;
    bd_dedup_key("d", &k);
    bd_dedup_entry_t e = {.ts = T0, .rev = BD_DEDUP_NO_REV};
    cr_assert_eq(bd_dedup_add(d, &k, T0, &e), 1); /* drops a */
    cr_assert_eq(bd_dedup_evicted(d), 1);
    cr_assert_eq(bd_dedup_size(d), 3);
    cr_assert_eq(chk(d, "c", T0), 1);
    cr_assert_eq(chk(d, "d", T0), 1);
    cr_assert_eq(chk(d, "a", T0), 0); /* forgotten: new again, drops b */
    cr_assert_eq(chk(d, "b", T0), 0); /* drops c */
    cr_assert_eq(chk(d, "c", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 3);
    cr_assert_eq(bd_dedup_evicted(d), 4);
    /* a lower limit applies at the next add */
    bd_dedup_set_limits(d, 1000000, 1);
    cr_assert_eq(chk(d, "z", T0), 0);
    cr_assert_eq(bd_dedup_size(d), 1);
    cr_assert_eq(bd_dedup_evicted(d), 7);
    bd_dedup_free(d);
}

Test(dedup, held_by_time_on_the_callers_clock)
{
    bd_dedup_t *d = bd_dedup_new(100, 100);
    cr_assert_eq(bd_dedup_check(d, "a", T0, T0), 0);
    cr_assert_eq(bd_dedup_check(d, "b", T0 + 50, T0 + 50), 0);
    cr_assert_eq(bd_dedup_check(d, "a", T0 + 100, T0 + 100), 1); /* ts == cutoff: still held */
    cr_assert_eq(bd_dedup_check(d, "a", T0 + 101, T0 + 101), 0); /* expired: new again */
    cr_assert_eq(bd_dedup_check(d, "b", T0 + 101, T0 + 101), 1);
    /* the clock is the caller's, not the newest ts seen: an old clock
     * still holds what a newer one would have expired */
    cr_assert_eq(bd_dedup_check(d, "b", T0 + 60, T0 + 60), 1);
    /* a jump of the clock expires everything older, and the front is
     * dropped at the next add */
    cr_assert_eq(bd_dedup_check(d, "z", T0 + 10000, T0 + 10000), 0);
    cr_assert_eq(bd_dedup_size(d), 1);
    cr_assert_eq(bd_dedup_check(d, "b", T0 + 10000, T0 + 10000), 0);
    bd_dedup_free(d);
}

Test(dedup, event_older_than_the_window_is_not_recorded)
{
    bd_dedup_t *d = bd_dedup_new(100, 100);
    cr_assert_eq(bd_dedup_check(d, "now", T0 + 1000, T0 + 1000), 0);
    cr_assert_eq(bd_dedup_check(d, "old", T0, T0 + 1000), 0);
    cr_assert_eq(bd_dedup_check(d, "old", T0, T0 + 1000), 0);
    cr_assert_eq(bd_dedup_size(d), 1);
    /* a late event still inside the window is held */
    cr_assert_eq(bd_dedup_check(d, "late", T0 + 950, T0 + 1000), 0);
    cr_assert_eq(bd_dedup_check(d, "late", T0 + 950, T0 + 1000), 1);
    bd_dedup_free(d);
}

Test(dedup, expired_entry_behind_a_newer_front)
{
    /* out-of-order times: "b" expires while "a", older in insertion order but
     * newer in time, is still at the front; a lookup must not see "b". */
    bd_dedup_t *d = bd_dedup_new(100, 100);
    cr_assert_eq(bd_dedup_check(d, "a", T0 + 100, T0 + 100), 0);
    cr_assert_eq(bd_dedup_check(d, "b", T0, T0 + 100), 0);
    cr_assert_eq(bd_dedup_check(d, "c", T0 + 150, T0 + 150), 0); /* cutoff T0+50 */
    cr_assert_eq(bd_dedup_size(d), 3); /* b is dropped lazily */
    cr_assert_eq(bd_dedup_check(d, "b", T0 + 150, T0 + 150), 0); /* expired: new, re-recorded */
    cr_assert_eq(bd_dedup_size(d), 3);
    cr_assert_eq(bd_dedup_check(d, "b", T0 + 150, T0 + 150), 1);
    cr_assert_eq(bd_dedup_check(d, "a", T0 + 150, T0 + 150), 1);
    cr_assert_eq(bd_dedup_check(d, "x", T0 + 201, T0 + 201), 0);
    cr_assert_eq(bd_dedup_size(d), 3); /* a expired at the front: b, c, x */
    bd_dedup_free(d);
}

Test(dedup, extreme_times_do_not_overflow)
{
    bd_dedup_t *d = bd_dedup_new(INT64_MAX, 10);
    cr_assert_eq(chk(d, "x", INT64_MIN), 0); /* cutoff saturates */
    cr_assert_eq(chk(d, "x", INT64_MIN), 1);
    cr_assert_eq(chk(d, "a", 0), 0);         /* cutoff INT64_MIN + 1: x expires */
    cr_assert_eq(chk(d, "b", INT64_MAX), 0); /* cutoff 0: a is still held */
    cr_assert_eq(bd_dedup_check(d, "a", 0, INT64_MAX), 1);
    cr_assert_eq(bd_dedup_check(d, "x", INT64_MIN, INT64_MAX), 0);
    bd_dedup_free(d);
    d = bd_dedup_new(-5, 10); /* negative window acts as 0 */
    cr_assert_eq(chk(d, "a", T0), 0);
    cr_assert_eq(chk(d, "a", T0), 1);
    cr_assert_eq(chk(d, "b", T0 + 1), 0);
    cr_assert_eq(bd_dedup_check(d, "a", T0, T0 + 1), 0);
    bd_dedup_free(d);
}

/* A rev'd id keeps its channel and numbers; a restatement replaces rev and
 * numbers, not ts; an id without rev keeps neither. */
Test(dedup, rev_entries_keep_their_numbers)
{
    bd_dedup_t *d = bd_dedup_new(3600, 100);
    bd_dedup_key_t k, k2;
    bd_dedup_key("r1", &k);
    bd_dedup_key("plain", &k2);
    bd_dedup_entry_t e = {.ts = T0, .rev = 0, .ch = 3, .num = {10, 100, 5, 1, 40}};
    bd_dedup_entry_t p = {.ts = T0, .rev = BD_DEDUP_NO_REV};
    cr_assert_eq(bd_dedup_add(d, &k, T0, &e), 0);
    cr_assert_eq(bd_dedup_add(d, &k2, T0, &p), 0);
    bd_dedup_entry_t got;
    cr_assert_eq(bd_dedup_find(d, &k, T0, &got), 1);
    cr_assert_eq(got.rev, 0);
    cr_assert_eq(got.ch, 3);
    cr_assert_eq(got.num[4], 40);
    const double n2[5] = {12, 110, 6, 2, 90};
    bd_dedup_restate(d, &k, 2, n2);
    cr_assert_eq(bd_dedup_find(d, &k, T0 + 5, &got), 1);
    cr_assert_eq(got.rev, 2);
    cr_assert_eq(got.ts, T0);
    cr_assert_eq(memcmp(got.num, n2, sizeof n2), 0);
    cr_assert_eq(bd_dedup_find(d, &k2, T0, &got), 1);
    cr_assert_eq(got.rev, BD_DEDUP_NO_REV);
    bd_dedup_restate(d, &k2, 5, n2); /* not rev'd: unchanged */
    cr_assert_eq(bd_dedup_find(d, &k2, T0, &got), 1);
    cr_assert_eq(got.rev, BD_DEDUP_NO_REV);
    bd_dedup_free(d);
}

/* ---- randomised comparison with a naive model ---------------------------
 * The model keeps dedup.h's semantics with linear scans over an unbounded
 * array, so this checks the table, ring and side-record mechanics (growth,
 * compaction, wrap-around, backward-shift deletion, dead entries, the free
 * list) over long call sequences. */

#define MMAX 24
#define MSTEPS 200000
typedef struct {
    char id[8];
    long long ts;
    int dead;
    unsigned rev;
    double num;
} mentry_t;
static mentry_t mring[MSTEPS];
static size_t mhead, mcount, mlive, mevicted;

/* The model's find: 1 and the entry when held at clock now. */
static mentry_t *model_find(const char *id, long long now, long long window)
{
    for (size_t k = mhead; k < mcount; k++) {
        mentry_t *e = &mring[k];
        if (e->dead || strcmp(e->id, id)) continue;
        if (e->ts >= now - window) return e;
        e->dead = 1, mlive--;
        return NULL;
    }
    return NULL;
}

static void model_add(const char *id, long long ts, long long now, long long window, unsigned rev,
                      double num)
{
    while (mhead < mcount && (mring[mhead].dead || mring[mhead].ts < now - window)) {
        if (!mring[mhead].dead) mlive--;
        mhead++;
    }
    if (ts < now - window) return;
    while (mlive >= MMAX) {
        if (!mring[mhead].dead) mlive--, mevicted++;
        mhead++;
    }
    mentry_t *e = &mring[mcount++];
    snprintf(e->id, sizeof e->id, "%s", id);
    e->ts = ts, e->dead = 0, e->rev = rev, e->num = num;
    mlive++;
}

Test(dedup, matches_naive_model)
{
    const long long window = 40;
    bd_dedup_t *d = bd_dedup_new(window, MMAX);
    uint64_t x = 12345;
    long long t = T0;
    for (int step = 0; step < MSTEPS; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64: fixed sequence */
        t += (long long)(x % 5) - 1;              /* mostly forward, sometimes back */
        long long ts = t - (long long)((x >> 8) % 60); /* jitter, some beyond window */
        char id[8];
        snprintf(id, sizeof id, "e%u", (unsigned)((x >> 24) % 150));
        bd_dedup_key_t k;
        bd_dedup_key(id, &k);
        bd_dedup_entry_t got;
        mentry_t *m = model_find(id, t, window);
        int held = bd_dedup_find(d, &k, t, &got);
        cr_assert_eq(held, m != NULL, "step %d (%s,%lld): got %d", step, id, ts, held);
        if (m) {
            cr_assert_eq(got.ts, m->ts, "step %d", step);
            cr_assert_eq(got.rev, m->rev, "step %d", step);
            if (m->rev != BD_DEDUP_NO_REV) cr_assert_eq(got.num[1], m->num, "step %d", step);
            if (m->rev != BD_DEDUP_NO_REV && (x >> 40) % 3 == 0) { /* a restatement */
                double n[5] = {0, (double)step, 0, 0, 0};
                bd_dedup_restate(d, &k, m->rev + 1, n);
                m->rev++, m->num = step;
            }
        } else {
            unsigned rev = (x >> 33) % 2 ? 0 : BD_DEDUP_NO_REV;
            bd_dedup_entry_t e = {.ts = ts, .rev = rev, .ch = 1, .num = {0, (double)step, 0, 0, 0}};
            bd_dedup_add(d, &k, t, &e);
            model_add(id, ts, t, window, rev, step);
        }
        cr_assert_eq(bd_dedup_size(d), mlive, "step %d", step);
        cr_assert_eq(bd_dedup_evicted(d), mevicted, "step %d", step);
    }
    cr_assert_gt(mevicted, 100, "the sequence must reach max_ids");
    bd_dedup_free(d);
}

/* The store grows past its first arrays (many rebuilds) and holds every id
 * under a large max_ids; the insertion-order walk replayed into a new
 * store gives a store with the same answers (what a checkpoint does). */
Test(dedup, grows_and_walks_in_insertion_order)
{
    const size_t n = 100000;
    bd_dedup_t *d = bd_dedup_new(1000000, n);
    char id[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "id-%zu", i);
        bd_dedup_key_t k;
        bd_dedup_key(id, &k);
        bd_dedup_entry_t e = {.ts = T0 + (long long)i, .rev = i % 7 ? BD_DEDUP_NO_REV : (uint32_t)i,
                              .ch = (uint32_t)(i % 5), .num = {(double)i, 0, 0, 0, 1}};
        cr_assert_eq(bd_dedup_add(d, &k, T0, &e), 0);
    }
    cr_assert_eq(bd_dedup_size(d), n);
    bd_dedup_t *c = bd_dedup_new_like(d);
    size_t pos = 0, walked = 0;
    bd_dedup_key_t k;
    bd_dedup_entry_t e;
    while (bd_dedup_next(d, &pos, &k, &e)) {
        cr_assert_eq(e.ts, T0 + (long long)walked, "insertion order");
        cr_assert_eq(k.h1 >> 32, 0, "held as h1's low 32 bits");
        bd_dedup_add(c, &k, INT64_MIN, &e);
        walked++;
    }
    cr_assert_eq(walked, n);
    for (size_t i = 0; i < n; i += 7) {
        snprintf(id, sizeof id, "id-%zu", i);
        bd_dedup_key(id, &k);
        cr_assert_eq(bd_dedup_find(c, &k, T0, &e), 1, "%s", id);
        cr_assert_eq(e.rev, (uint32_t)i);
        cr_assert_eq(e.ch, i % 5);
        cr_assert_eq(e.num[0], (double)i);
    }
    /* both drop the same oldest id next */
    cr_assert_eq(bd_dedup_check(d, "new", T0, T0), 0);
    cr_assert_eq(bd_dedup_check(c, "new", T0, T0), 0);
    cr_assert_eq(bd_dedup_check(d, "id-0", T0, T0), 0);
    cr_assert_eq(bd_dedup_check(c, "id-0", T0, T0), 0);
    cr_assert_eq(bd_dedup_check(c, "id-2", T0, T0), 1);
    bd_dedup_free(d);
    bd_dedup_free(c);
}

/* Ids expiring as time moves keep memory bounded by the window, not by the
 * ids ever seen: the store compacts instead of growing. */
Test(dedup, time_bounds_the_store)
{
    bd_dedup_t *d = bd_dedup_new(100, 1u << 20);
    char id[32];
    for (int i = 0; i < 200000; i++) {
        snprintf(id, sizeof id, "t-%d", i);
        cr_assert_eq(chk(d, id, T0 + i / 10), 0);
        cr_assert_leq(bd_dedup_size(d), 1011);
    }
    cr_assert_eq(bd_dedup_evicted(d), 0);
    bd_dedup_free(d);
}
