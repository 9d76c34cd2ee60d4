/* dedup.h: one portfolio's store of recently seen event ids (CONTRACT §1:
 * "a repeated id within the dedup window is counted once"; v2: `rev`
 * restatements replace what an id reported before).
 *
 * Each portfolio owns one store (portfolio.h); it is part of the
 * portfolio's checkpoint, so a resend is caught across restarts. An id is
 * held while both hold:
 *   - its ts >= now - window, `now` being the caller's clock (the engine
 *     passes the portfolio's newest event time: the window is in the
 *     portfolio's own event time, so partitions consumed at different
 *     speeds do not expire each other's ids), and
 *   - fewer than max_ids ids were recorded after it (at the cap the oldest
 *     recorded id is dropped first; bd_dedup_add says how many).
 * The store grows as ids arrive (no fixed capacity, nothing allocated until
 * the first id). The result of every call depends only on the sequence of
 * calls: no wall clock, no randomness. Not thread-safe.
 *
 * Memory: 35 to 70 bytes per id held (24 in insertion order, 8 in an index
 * 3/8 to 3/4 full; both double as ids arrive), plus 48 bytes per id
 * recorded with a rev (its rev, channel and numbers, kept to compute a
 * restatement's difference). */
#ifndef BUDGETD_DEDUP_H
#define BUDGETD_DEDUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct bd_dedup bd_dedup_t;

/* The key of an event id: two seeded bd_hash64 of the id's bytes. A store
 * holds 96 bits of it (h1's low 32 bits and h2), so a false duplicate needs
 * a 96-bit collision. Fixed forever: keys are stored in checkpoints. */
typedef struct {
    uint64_t h1, h2;
} bd_dedup_key_t;

/* rev of an id first recorded without one. */
#define BD_DEDUP_NO_REV UINT32_MAX

/* What the store keeps of one id. ch and num are meaningful only when rev
 * is not BD_DEDUP_NO_REV: the channel index and the numbers (spend,
 * impressions, clicks, conversions, revenue) of the version last applied. */
typedef struct {
    int64_t ts;
    uint32_t rev;
    uint32_t ch;
    double num[5];
} bd_dedup_entry_t;

/* window: seconds of event time an id is held (negative -> 0). max_ids:
 * most ids held (0 disables the store: nothing is ever held). */
bd_dedup_t *bd_dedup_new(int64_t window, size_t max_ids);
void bd_dedup_free(bd_dedup_t *d);
/* An empty store with d's limits (d NULL: no time limit, the largest
 * max_ids): what a checkpoint restores into. */
bd_dedup_t *bd_dedup_new_like(const bd_dedup_t *d);

/* New limits (a reloaded config). A lower max_ids drops the oldest ids at
 * the next bd_dedup_add. */
void bd_dedup_set_limits(bd_dedup_t *d, int64_t window, size_t max_ids);

void bd_dedup_key(const char *event_id, bd_dedup_key_t *k);

/* A hint: starts loading the memory a lookup of k will touch (the engine
 * calls it as soon as an event is decoded, so that the cache miss overlaps
 * the rest of the work). Changes no state and no result. */
void bd_dedup_prefetch(const bd_dedup_t *d, const bd_dedup_key_t *k);

/* 1 when k is held at clock now, with what is kept of it in *out (out may
 * be NULL); 0 when it is not. An id found expired is forgotten here. */
int bd_dedup_find(bd_dedup_t *d, const bd_dedup_key_t *k, int64_t now, bd_dedup_entry_t *out);

/* Records k, which must not be held (bd_dedup_find returned 0), with e's
 * ts and, unless e->rev is BD_DEDUP_NO_REV, its rev, ch and numbers. An
 * event whose ts is already before now - window cannot be deduplicated
 * and is not recorded. Ids found expired at the front of the insertion
 * order are dropped first. Returns how many ids were dropped because the
 * store was at max_ids (0 almost always). Amortised O(1). */
size_t bd_dedup_add(bd_dedup_t *d, const bd_dedup_key_t *k, int64_t now, const bd_dedup_entry_t *e);

/* A restatement was applied: held, rev'd k now keeps rev and num. */
void bd_dedup_restate(bd_dedup_t *d, const bd_dedup_key_t *k, uint32_t rev, const double num[5]);

/* find, then add without rev when absent: 1 = duplicate, 0 = new. For
 * callers that never see rev (and tests). event_id NULL or "" is never a
 * duplicate and is not recorded. */
int bd_dedup_check(bd_dedup_t *d, const char *event_id, int64_t ts, int64_t now);

/* The ids held, in insertion order (the order bd_dedup_add must see them
 * again to rebuild the same store): *pos starts at 0; returns 0 after the
 * last. The key comes back as held: h1's low 32 bits (the rest 0) and h2.
 * Ids that expired but were not dropped yet are included (a lookup would
 * not report them). */
int bd_dedup_next(const bd_dedup_t *d, size_t *pos, bd_dedup_key_t *k, bd_dedup_entry_t *e);

/* Ids held (expired ids are dropped lazily, so this may count some that
 * bd_dedup_find would no longer report). */
size_t bd_dedup_size(const bd_dedup_t *d);
/* Ids dropped for max_ids since the store was created. */
uint64_t bd_dedup_evicted(const bd_dedup_t *d);

#endif
