/* dedup.h: bounded window of recently seen event ids (CONTRACT §1: "a repeated
 * id within the dedup window is counted once"). */
#ifndef BUDGETD_DEDUP_H
#define BUDGETD_DEDUP_H

#include <stddef.h>
#include <stdint.h>

/* Remembers the most recent event ids, keyed by a 128-bit hash of
 * portfolio + '\0' + event_id (a false duplicate needs a 128-bit collision).
 * An id is remembered while both hold:
 *   - its ts >= newest_ts - window, newest_ts being the largest ts ever
 *     passed to bd_dedup_check (so the window is in event time), and
 *   - fewer than `capacity` ids were recorded after it (oldest evicted first).
 * The result depends only on the sequence of calls: no wall clock, no
 * randomness, no allocation after bd_dedup_new. Not thread-safe. */
typedef struct bd_dedup bd_dedup_t;

/* capacity: most ids remembered (0 disables dedup; clamped to 2^30).
 * window: seconds of event time an id is remembered (negative -> 0).
 * Memory is about 40-56 bytes per unit of capacity, allocated up front;
 * aborts on OOM like bd_xmalloc. */
bd_dedup_t *bd_dedup_new(size_t capacity, int64_t window);

/* 1 = duplicate: the same (portfolio, event_id) is remembered; nothing
 * changes. 0 = new: the id is recorded with ts, unless ts is already older
 * than newest_ts - window (such a late event cannot be deduplicated and is
 * not recorded). An empty or NULL event_id is never a duplicate and is not
 * recorded. Amortised O(1). */
int bd_dedup_check(bd_dedup_t *d, const char *portfolio, const char *event_id, int64_t ts);

/* As bd_dedup_check, but the window ends at the caller's now (the engine
 * passes the portfolio's newest event time) instead of the newest ts of all
 * calls. Ids are then forgotten by capacity (oldest first) or when found
 * expired. Used by the engine: Kafka partitions are consumed at different
 * speeds, and a partition days ahead must not expire another's ids. */
int bd_dedup_check_at(bd_dedup_t *d, const char *portfolio, const char *event_id, int64_t ts,
                      int64_t now);

/* The 128-bit key of (portfolio, event_id). The engine computes it as soon
 * as an event is decoded and prefetches the key's bucket, so that the cache
 * miss of the table lookup overlaps the rest of the decoding; the check then
 * reuses the key instead of hashing again. */
typedef struct {
    uint64_t h1, h2;
} bd_dedup_key_t;

void bd_dedup_key(const char *portfolio, const char *event_id, bd_dedup_key_t *k);
/* A hint: starts loading the memory a check of k will touch. Changes no
 * state and no result. */
void bd_dedup_prefetch(const bd_dedup_t *d, const bd_dedup_key_t *k);
/* bd_dedup_check_at(d, portfolio, event_id, ts, now) with k =
 * bd_dedup_key(portfolio, event_id); event_id must be non-empty (an empty
 * id is never a duplicate: the caller skips the check). */
int bd_dedup_check_key_at(bd_dedup_t *d, const bd_dedup_key_t *k, int64_t ts, int64_t now);

/* Writes every page of the window now, before the first check, so that
 * checks never take a page fault (a fresh window is untouched mmap'd
 * memory: each first touch of a 2 MB page costs a fault and its zeroing).
 * For long-lived owners (the daemon); changes no result. */
void bd_dedup_prefault(bd_dedup_t *d);

/* Ids currently held. Expired ids are dropped lazily (when they reach the
 * front of the insertion order or are looked up), so this may count some
 * that bd_dedup_check would no longer report as duplicates. */
size_t bd_dedup_size(const bd_dedup_t *d);

void bd_dedup_free(bd_dedup_t *d);

#endif
