/* dedup.c: bounded event-id window (see dedup.h).
 *
 * Two structures share the entries:
 *   - ring: a FIFO of recorded keys in insertion order; eviction (capacity or
 *     time) always pops the front, so it is O(1) and deterministic.
 *   - tab: open addressing with linear probing over ring positions, at most
 *     half full; deletion by backward shift, so there are no tombstones and
 *     probe lengths never degrade over a long run.
 * A ring entry whose key was removed from tab early (looked up after it had
 * expired) stays in the ring as a dead entry (h2 == 0) until it reaches the
 * front; live keys always have h2's low bit set. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "budgetd/common.h"
#include "budgetd/dedup.h"

#define SEED1 0x6275646765746431ULL /* arbitrary, fixed forever: part of the key */
#define SEED2 0x6275646765746432ULL
#define CAP_MAX ((size_t)1 << 30)

typedef struct {
    uint64_t h1, h2; /* h2 == 0: dead */
    int64_t ts;
} ring_ent_t;

/* ref: ring index + 1 (0 = empty bucket); lo: low 32 bits of h1, which give
 * both the home bucket (lo & mask, tab size <= 2^31) and a cheap filter. */
typedef struct {
    uint32_t ref, lo;
} bucket_t;

struct bd_dedup {
    ring_ent_t *ring;
    bucket_t *tab;
    size_t ring_bytes, tab_bytes; /* for big_free */
    size_t cap, head, count; /* ring holds [head, head + count) mod cap */
    size_t mask;             /* tab size - 1 */
    size_t live;             /* keys in tab */
    int64_t window, newest;
    int have_newest;
};

#define HUGE_MIN ((size_t)2 << 20)

/* Zeroed memory for the table and the ring. The table is probed at random,
 * one cache miss per event; at the default 1M capacity (16 MB of table) a
 * 4 KiB page adds a TLB miss as well, and a page walk under a hypervisor
 * costs about as much again (measured: ~370 -> ~190 ns per check with
 * huge pages). Big arrays therefore come from mmap with transparent huge
 * pages requested; it is a hint, without THP they are ordinary pages. */
static void *big_alloc(size_t n)
{
    if (n < HUGE_MIN) return bd_xcalloc(1, n);
    size_t len = (n + HUGE_MIN - 1) & ~(HUGE_MIN - 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) bd_oom(len);
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}

static void big_free(void *p, size_t n)
{
    if (!p) return;
    if (n < HUGE_MIN) free(p);
    else munmap(p, (n + HUGE_MIN - 1) & ~(HUGE_MIN - 1));
}

/* Allocates everything up front so that check never allocates. */
bd_dedup_t *bd_dedup_new(size_t capacity, int64_t window)
{
    bd_dedup_t *d = bd_xcalloc(1, sizeof *d);
    d->cap = capacity > CAP_MAX ? CAP_MAX : capacity;
    d->window = window < 0 ? 0 : window;
    size_t n = 8;
    while (n < 2 * d->cap) n <<= 1;
    d->mask = n - 1;
    d->tab_bytes = n * sizeof *d->tab;
    d->ring_bytes = (d->cap ? d->cap : 1) * sizeof *d->ring;
    d->tab = big_alloc(d->tab_bytes);
    d->ring = big_alloc(d->ring_bytes);
    return d;
}

void bd_dedup_free(bd_dedup_t *d)
{
    if (!d) return;
    big_free(d->tab, d->tab_bytes);
    big_free(d->ring, d->ring_bytes);
    free(d);
}

/* Touches every page of an empty window (see dedup.h); writing zeros is
 * only safe while empty, so a window in use is left alone. */
void bd_dedup_prefault(bd_dedup_t *d)
{
    if (!d || d->count || d->live) return;
    memset(d->tab, 0, d->tab_bytes);
    memset(d->ring, 0, d->ring_bytes);
}

size_t bd_dedup_size(const bd_dedup_t *d)
{
    return d ? d->live : 0;
}

/* Empties bucket i and shifts later members of its probe run back, keeping
 * the invariant that every key is reachable from its home without gaps. */
static void tab_remove(bd_dedup_t *d, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & d->mask;
        if (!d->tab[j].ref) break;
        size_t home = d->tab[j].lo & d->mask;
        /* j may stay only when its home lies cyclically in (i, j]. */
        int stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            d->tab[i] = d->tab[j];
            i = j;
        }
    }
    d->tab[i].ref = 0;
    d->live--;
}

/* Bucket holding ring index r (which must be in tab). */
static size_t tab_find_ref(const bd_dedup_t *d, size_t r)
{
    size_t i = (size_t)(uint32_t)d->ring[r].h1 & d->mask;
    while (d->tab[i].ref != r + 1) i = (i + 1) & d->mask;
    return i;
}

/* Drops the front ring entry, and its key from tab when still live. */
static void ring_pop(bd_dedup_t *d)
{
    if (d->ring[d->head].h2) tab_remove(d, tab_find_ref(d, d->head));
    d->head = d->head + 1 == d->cap ? 0 : d->head + 1;
    d->count--;
}

/* 128-bit key of (portfolio, event_id): two seeded bd_hash64 over
 * portfolio '\0' event_id. Valid names always fit the stack buffer; longer
 * input (never produced by bd_event_decode) chains the two hashes instead. */
static void key_of(const char *portfolio, const char *event_id, uint64_t *h1, uint64_t *h2)
{
    char buf[BD_NAME_MAX + 1 + BD_ID_MAX];
    size_t pl = strlen(portfolio), el = strlen(event_id);
    if (pl + 1 + el <= sizeof buf) {
        memcpy(buf, portfolio, pl + 1);
        memcpy(buf + pl + 1, event_id, el);
        *h1 = bd_hash64(buf, pl + 1 + el, SEED1);
        *h2 = bd_hash64(buf, pl + 1 + el, SEED2);
    } else {
        *h1 = bd_hash64(event_id, el, bd_hash64(portfolio, pl + 1, SEED1));
        *h2 = bd_hash64(event_id, el, bd_hash64(portfolio, pl + 1, SEED2));
    }
    *h2 |= 1; /* 0 marks dead ring entries */
}

/* Looks up and records one key against cutoff: an entry with ts < cutoff is
 * expired (forgotten on sight); an event with ts < cutoff is not recorded. */
static int dedup_lookup_record(bd_dedup_t *d, uint64_t h1, uint64_t h2, int64_t ts,
                               int64_t cutoff)
{
    uint32_t lo = (uint32_t)h1;
    size_t i = lo & d->mask;
    for (; d->tab[i].ref; i = (i + 1) & d->mask) {
        if (d->tab[i].lo != lo) continue;
        ring_ent_t *e = &d->ring[d->tab[i].ref - 1];
        if (e->h1 != h1 || e->h2 != h2) continue;
        if (e->ts >= cutoff) return 1;
        /* Expired but not yet at the front: forget it, record afresh. */
        e->h2 = 0;
        tab_remove(d, i);
        break;
    }
    if (ts < cutoff) return 0;

    if (d->count == d->cap) ring_pop(d);
    size_t r = d->head + d->count;
    if (r >= d->cap) r -= d->cap;
    d->ring[r] = (ring_ent_t){h1, h2, ts};
    d->count++;
    /* Probe again: a removal above may have shifted the run. */
    for (i = lo & d->mask; d->tab[i].ref; i = (i + 1) & d->mask) {}
    d->tab[i] = (bucket_t){(uint32_t)(r + 1), lo};
    d->live++;
    return 0;
}

static int64_t cutoff_of(int64_t now, int64_t window)
{
    return now < INT64_MIN + window ? INT64_MIN : now - window; /* no signed overflow */
}

/* See dedup.h. Order: advance newest_ts, expire the front, look up, record. */
int bd_dedup_check(bd_dedup_t *d, const char *portfolio, const char *event_id, int64_t ts)
{
    if (!d || !d->cap || !event_id || !event_id[0]) return 0;
    if (!d->have_newest || ts > d->newest) {
        d->newest = ts;
        d->have_newest = 1;
    }
    int64_t cutoff = cutoff_of(d->newest, d->window);
    while (d->count && (!d->ring[d->head].h2 || d->ring[d->head].ts < cutoff)) ring_pop(d);
    uint64_t h1, h2;
    key_of(portfolio ? portfolio : "", event_id, &h1, &h2);
    return dedup_lookup_record(d, h1, h2, ts, cutoff);
}

/* See dedup.h: the window is measured from the caller's clock (the
 * portfolio's newest event time), so partitions consumed at different
 * speeds do not expire each other's ids; only capacity evicts the front. */
int bd_dedup_check_at(bd_dedup_t *d, const char *portfolio, const char *event_id, int64_t ts,
                      int64_t now)
{
    if (!d || !d->cap || !event_id || !event_id[0]) return 0;
    bd_dedup_key_t k;
    bd_dedup_key(portfolio, event_id, &k);
    return bd_dedup_check_key_at(d, &k, ts, now);
}

void bd_dedup_key(const char *portfolio, const char *event_id, bd_dedup_key_t *k)
{
    key_of(portfolio ? portfolio : "", event_id ? event_id : "", &k->h1, &k->h2);
}

/* The bucket a lookup of k starts at, and when the ring is full the home
 * bucket of the front entry that recording k will evict: the two random
 * accesses of a check, each a cache miss at 1M capacity. */
void bd_dedup_prefetch(const bd_dedup_t *d, const bd_dedup_key_t *k)
{
    if (!d || !d->cap) return;
    __builtin_prefetch(&d->tab[(uint32_t)k->h1 & d->mask], 1);
    if (d->count == d->cap)
        __builtin_prefetch(&d->tab[(uint32_t)d->ring[d->head].h1 & d->mask], 1);
}

/* bd_dedup_check_at on a precomputed key. */
int bd_dedup_check_key_at(bd_dedup_t *d, const bd_dedup_key_t *k, int64_t ts, int64_t now)
{
    if (!d || !d->cap) return 0;
    while (d->count && !d->ring[d->head].h2) ring_pop(d);
    return dedup_lookup_record(d, k->h1, k->h2, ts, cutoff_of(now, d->window));
}
