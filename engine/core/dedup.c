/* dedup.c: a portfolio's event-id store (see dedup.h).
 *
 * Three arrays share the ids:
 *   - ring: the recorded ids in insertion order, a FIFO that grows by
 *     doubling; dropping for time or for the cap pops its front, so both
 *     are O(1) and deterministic. Each recorded id gets the next sequence
 *     number (31 bits, wrapping), and lives at ring[seq & (rcap - 1)]:
 *     doubling the ring moves entries but changes no sequence number;
 *   - tab: open addressing with linear probing, each bucket the sequence
 *     number (+ 1; 0 = empty) of an id and its lo, at most 3/4 full;
 *     deletion by backward shift, so there are no tombstones and probe
 *     lengths never degrade over a long run. It grows on its own, by
 *     scanning itself (nearly sequential writes);
 *   - side: rev, channel and numbers of the ids recorded with a rev,
 *     recycled through a free list.
 * An id is held as 96 bits of its key: h1's low 32 bits (lo, also in its
 * bucket, where they give the home bucket and a cheap filter) and h2. A
 * ring entry whose id was dropped out of order (a lookup found it expired)
 * stays in the ring as a dead entry (h2 == 0) until it reaches the front or
 * the ring is compacted; live keys always have h2's low bit set.
 * Invariant: live = ids in tab = ring entries with h2 != 0. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "budgetd/common.h"
#include "budgetd/dedup.h"

#define SEED1 0x6275646765746431ULL /* arbitrary, fixed forever: keys are checkpointed */
#define SEED2 0x6275646765746432ULL
#define FNV_BASIS 0xcbf29ce484222325ULL /* bd_hash64's */
#define FNV_PRIME 0x100000001b3ULL
#define RING_MIN 16
#define TAB_MIN 32
#define SEQ_MASK 0x7fffffffu /* sequence numbers: 31 bits (rcap <= 2^31 divides 2^31) */
#define NO_SIDE UINT32_MAX

/* 24 bytes: the ring is most of a store's memory. */
typedef struct {
    uint64_t h2;     /* 0: dead */
    int64_t ts;
    uint32_t lo;     /* the low 32 bits of h1 */
    uint32_t side;   /* NO_SIDE: recorded without rev; else its side record */
} ring_ent_t;

/* ref: sequence number + 1 (0 = empty bucket); lo: the key's lo. */
typedef struct {
    uint32_t ref, lo;
} bucket_t;

/* What a rev'd id keeps; on the free list, ch links to the next free one. */
typedef struct {
    double num[5];
    uint32_t ch, rev;
} side_t;

struct bd_dedup {
    ring_ent_t *ring;
    bucket_t *tab;
    side_t *side;
    size_t rcap;              /* ring capacity: 0 or a power of two */
    uint32_t head;            /* sequence number of the front entry */
    size_t count;             /* entries in the ring, dead ones included */
    size_t mask;              /* tab size - 1 (0: no table yet) */
    size_t live;              /* ids held (in tab) */
    size_t max_ids;
    int64_t window;
    uint32_t nside, side_cap, side_free;
    uint64_t evicted;
};

/* ---- memory for the arrays ------------------------------------------------
 * A lookup is one random access into a portfolio's table, and the tables
 * of all portfolios together span tens of MB: with 4 KiB pages nearly
 * every lookup also misses the TLB, and a page walk under a hypervisor
 * costs about as much as the cache miss itself (the former global window
 * had huge pages for this reason; docs/DECISIONS.md "Dedup per
 * portfolio"). So tables of 4 KiB to 1 MiB are carved from 2 MiB-aligned
 * chunks with transparent huge pages requested, shared by all stores of
 * the process (a mutex: bench_quality runs engines on several threads;
 * only growth takes it). Freed blocks go to a free list per power-of-two
 * size and are reused, never unmapped. Tables of 2 MiB or more get their
 * own aligned mapping; smaller than 4 KiB ones come from malloc. THP is a
 * hint: without it these are ordinary pages. The rings are touched at
 * their two ends only (and at a lookup that finds its id): they stay on
 * malloc, whose realloc grows them in place or by remapping, so that a
 * doubling neither copies nor keeps the old block. */
#define HUGE ((size_t)2 << 20)
#define ARENA_MIN_LOG 12 /* 4 KiB */
#define ARENA_MAX_LOG 20 /* 1 MiB: the largest block carved from a chunk */

static pthread_mutex_t arena_mu = PTHREAD_MUTEX_INITIALIZER;
static void *arena_free[ARENA_MAX_LOG + 1]; /* per size class, linked through the first word */
static char *arena_cur;                     /* the chunk being carved */
static size_t arena_left;

/* len bytes (a multiple of HUGE), HUGE-aligned so that THP can back them,
 * zeroed (fresh anonymous memory). */
static void *huge_map(size_t len)
{
    char *raw = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) bd_oom(len);
    char *p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    if (p > raw) munmap(raw, (size_t)(p - raw));
    if (p + len < raw + len + HUGE) munmap(p + len, (size_t)(raw + len + HUGE - (p + len)));
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}

/* Size class of an arena block of n bytes: the smallest 2^k >= n. */
static int arena_class(size_t n)
{
    int k = ARENA_MIN_LOG;
    while (((size_t)1 << k) < n) k++;
    return k;
}

/* A block of class k (caller holds arena_mu): a freed one, else carved
 * from the chunk; a chunk too short for it gives its rest to the smaller
 * classes and a new chunk is mapped. */
static void *arena_take(int k)
{
    size_t sz = (size_t)1 << k;
    void *p = arena_free[k];
    if (p) {
        arena_free[k] = *(void **)p;
        return p;
    }
    if (arena_left < sz) {
        for (int j = ARENA_MAX_LOG; j >= ARENA_MIN_LOG; j--)
            while (arena_left >= ((size_t)1 << j)) {
                *(void **)arena_cur = arena_free[j];
                arena_free[j] = arena_cur;
                arena_cur += (size_t)1 << j;
                arena_left -= (size_t)1 << j;
            }
        arena_cur = huge_map(HUGE);
        arena_left = HUGE;
    }
    p = arena_cur;
    arena_cur += sz;
    arena_left -= sz;
    return p;
}

/* n zeroed bytes for a table, from the pool above. */
static void *tab_alloc(size_t n)
{
    if (n < ((size_t)1 << ARENA_MIN_LOG)) return bd_xcalloc(1, n);
    if (n > ((size_t)1 << ARENA_MAX_LOG)) return huge_map((n + HUGE - 1) & ~(HUGE - 1));
    pthread_mutex_lock(&arena_mu);
    void *p = arena_take(arena_class(n));
    pthread_mutex_unlock(&arena_mu);
    memset(p, 0, n); /* a reused block holds an old table */
    return p;
}

/* Gives back what tab_alloc(n) returned. */
static void tab_free(void *p, size_t n)
{
    if (!p) return;
    if (n < ((size_t)1 << ARENA_MIN_LOG)) {
        free(p);
    } else if (n > ((size_t)1 << ARENA_MAX_LOG)) {
        munmap(p, (n + HUGE - 1) & ~(HUGE - 1));
    } else {
        int k = arena_class(n);
        pthread_mutex_lock(&arena_mu);
        *(void **)p = arena_free[k];
        arena_free[k] = p;
        pthread_mutex_unlock(&arena_mu);
    }
}

/* An empty store; the arrays come with the first id. */
bd_dedup_t *bd_dedup_new(int64_t window, size_t max_ids)
{
    bd_dedup_t *d = bd_xcalloc(1, sizeof *d);
    d->side_free = NO_SIDE;
    bd_dedup_set_limits(d, window, max_ids);
    return d;
}

bd_dedup_t *bd_dedup_new_like(const bd_dedup_t *d)
{
    return d ? bd_dedup_new(d->window, d->max_ids) : bd_dedup_new(INT64_MAX, SIZE_MAX);
}

void bd_dedup_free(bd_dedup_t *d)
{
    if (!d) return;
    if (d->tab) tab_free(d->tab, (d->mask + 1) * sizeof *d->tab);
    free(d->ring);
    free(d->side);
    free(d);
}

/* See dedup.h; max_ids is clamped to 2^30 so that ring positions fit the
 * table's 32-bit references. */
void bd_dedup_set_limits(bd_dedup_t *d, int64_t window, size_t max_ids)
{
    d->window = window < 0 ? 0 : window;
    d->max_ids = max_ids > ((size_t)1 << 30) ? (size_t)1 << 30 : max_ids;
}

size_t bd_dedup_size(const bd_dedup_t *d) { return d ? d->live : 0; }
uint64_t bd_dedup_evicted(const bd_dedup_t *d) { return d ? d->evicted : 0; }

/* The key: FNV-1a over the id with each seed, then bd_mix64, i.e. exactly
 * bd_hash64(id, len, SEED1) and bd_hash64(id, len, SEED2), computed in one
 * loop so that the two multiply chains overlap. */
void bd_dedup_key(const char *event_id, bd_dedup_key_t *k)
{
    uint64_t a = FNV_BASIS ^ SEED1, b = FNV_BASIS ^ SEED2;
    for (const unsigned char *p = (const unsigned char *)(event_id ? event_id : ""); *p; p++) {
        a = (a ^ *p) * FNV_PRIME;
        b = (b ^ *p) * FNV_PRIME;
    }
    k->h1 = bd_mix64(a);
    k->h2 = bd_mix64(b) | 1; /* 0 marks dead ring entries */
}

/* The entry of sequence number q. */
static inline ring_ent_t *ent_at(const bd_dedup_t *d, uint32_t q)
{
    return &d->ring[q & (d->rcap - 1)];
}

/* The two places a check of k touches that are likely cache misses: the
 * home bucket of its lookup and the ring slot it would be recorded in. */
void bd_dedup_prefetch(const bd_dedup_t *d, const bd_dedup_key_t *k)
{
    if (!d || !d->tab) return;
    __builtin_prefetch(&d->tab[(uint32_t)k->h1 & d->mask], 1);
    __builtin_prefetch(ent_at(d, (uint32_t)(d->head + d->count)), 1);
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
}

/* Puts sequence number q (key low word lo) into the first free bucket of
 * its run. */
static void tab_insert(bd_dedup_t *d, uint32_t lo, uint32_t q)
{
    size_t i = lo & d->mask;
    while (d->tab[i].ref) i = (i + 1) & d->mask;
    d->tab[i] = (bucket_t){q + 1, lo};
}

/* A table of size buckets refilled from the old one, scanned in bucket
 * order: with linear probing each key lands near bucket i or i + old size,
 * so the writes run as two nearly sequential streams (refilling in ring
 * order would be one random write per key). */
static void tab_resize(bd_dedup_t *d, size_t size)
{
    bucket_t *ot = d->tab;
    size_t osize = ot ? d->mask + 1 : 0;
    d->tab = tab_alloc(size * sizeof *d->tab);
    d->mask = size - 1;
    for (size_t i = 0; i < osize; i++)
        if (ot[i].ref) tab_insert(d, ot[i].lo, ot[i].ref - 1);
    if (ot) tab_free(ot, osize * sizeof *ot);
}

/* Bucket holding sequence number q (which must be in tab). */
static size_t tab_find_seq(const bd_dedup_t *d, uint32_t q)
{
    size_t i = ent_at(d, q)->lo & d->mask;
    while (d->tab[i].ref != q + 1) i = (i + 1) & d->mask;
    return i;
}

/* A side record for a rev'd id, from the free list or a grown array. */
static uint32_t side_alloc(bd_dedup_t *d)
{
    if (d->side_free != NO_SIDE) {
        uint32_t s = d->side_free;
        d->side_free = d->side[s].ch;
        return s;
    }
    if (d->nside == d->side_cap) {
        d->side_cap = d->side_cap ? d->side_cap * 2 : 16;
        d->side = bd_xrealloc(d->side, (size_t)d->side_cap * sizeof *d->side);
    }
    return d->nside++;
}

static void side_release(bd_dedup_t *d, uint32_t s)
{
    d->side[s].ch = d->side_free;
    d->side_free = s;
}

/* Forgets the live id of entry e whose bucket is i: out of tab, its side
 * record freed, the entry dead. */
static void ent_kill(bd_dedup_t *d, ring_ent_t *e, size_t i)
{
    if (e->side != NO_SIDE) side_release(d, e->side);
    e->h2 = 0;
    tab_remove(d, i);
    d->live--;
}

/* Drops the front ring entry (forgetting its id when still live); returns
 * 1 when it was live. */
static int ring_pop(bd_dedup_t *d)
{
    ring_ent_t *e = ent_at(d, d->head);
    int was_live = e->h2 != 0;
    if (was_live) ent_kill(d, e, tab_find_seq(d, d->head));
    d->head = (d->head + 1) & SEQ_MASK;
    d->count--;
    return was_live;
}

/* Makes room for one more entry in a full ring: when at least half of it
 * is dead, the live entries are renumbered from 0 in order and the table
 * is refilled (rare: dead entries come only from ids found expired behind
 * a newer front); else the ring doubles, every entry keeping its sequence
 * number, so the table does not change. */
static void ring_grow(bd_dedup_t *d)
{
    size_t ocap = d->rcap, ncap = ocap == 0 ? RING_MIN : 2 * ocap;
    if (ocap && 2 * d->live <= ocap) {
        ring_ent_t *nr = bd_xmalloc(ocap * sizeof *nr);
        size_t n = 0;
        for (size_t k = 0; k < d->count; k++) {
            const ring_ent_t *e = ent_at(d, (uint32_t)(d->head + k));
            if (e->h2) nr[n++] = *e;
        }
        free(d->ring);
        d->ring = nr;
        d->head = 0;
        d->count = n;
        memset(d->tab, 0, (d->mask + 1) * sizeof *d->tab);
        for (size_t q = 0; q < n; q++) tab_insert(d, nr[q].lo, (uint32_t)q);
        return;
    }
    /* in place: realloc keeps [0, ocap) (and glibc moves big blocks by
     * remapping pages, not by copying); an entry whose position gains the
     * new top bit moves into the upper half, which held nothing */
    d->ring = bd_xrealloc(d->ring, ncap * sizeof *d->ring);
    d->rcap = ncap;
    for (size_t k = 0; k < d->count; k++) {
        uint32_t q = (uint32_t)(d->head + k) & SEQ_MASK;
        if (q & ocap) d->ring[q & (ncap - 1)] = d->ring[q & (ocap - 1)];
    }
}

static int64_t cutoff_of(int64_t now, int64_t window)
{
    return now < INT64_MIN + window ? INT64_MIN : now - window; /* no signed overflow */
}

/* The entry of held k and its bucket in *bucket, or NULL. */
static ring_ent_t *ring_find(const bd_dedup_t *d, const bd_dedup_key_t *k, size_t *bucket)
{
    uint32_t lo = (uint32_t)k->h1;
    for (size_t i = lo & d->mask; d->tab[i].ref; i = (i + 1) & d->mask) {
        if (d->tab[i].lo != lo) continue;
        ring_ent_t *e = ent_at(d, d->tab[i].ref - 1);
        if (e->h2 != k->h2) continue;
        *bucket = i;
        return e;
    }
    return NULL;
}

/* What the store keeps of ring entry e, for the caller. */
static void ent_out(const bd_dedup_t *d, const ring_ent_t *e, bd_dedup_entry_t *out)
{
    memset(out, 0, sizeof *out);
    out->ts = e->ts;
    out->rev = BD_DEDUP_NO_REV;
    if (e->side == NO_SIDE) return;
    const side_t *s = &d->side[e->side];
    out->rev = s->rev;
    out->ch = s->ch;
    memcpy(out->num, s->num, sizeof out->num);
}

/* See dedup.h. An expired id is forgotten on sight, so that recording it
 * afresh leaves one live copy. */
int bd_dedup_find(bd_dedup_t *d, const bd_dedup_key_t *k, int64_t now, bd_dedup_entry_t *out)
{
    if (!d || !d->tab) return 0;
    size_t i;
    ring_ent_t *e = ring_find(d, k, &i);
    if (!e) return 0;
    if (e->ts < cutoff_of(now, d->window)) {
        ent_kill(d, e, i);
        return 0;
    }
    if (out) ent_out(d, e, out);
    return 1;
}

/* See dedup.h. Order: drop expired and dead ids at the front, refuse an
 * event already outside the window, make room under max_ids, record. */
size_t bd_dedup_add(bd_dedup_t *d, const bd_dedup_key_t *k, int64_t now, const bd_dedup_entry_t *e)
{
    if (!d || !d->max_ids) return 0;
    int64_t cutoff = cutoff_of(now, d->window);
    while (d->count && (!ent_at(d, d->head)->h2 || ent_at(d, d->head)->ts < cutoff)) ring_pop(d);
    if (e->ts < cutoff) return 0;
    size_t dropped = 0;
    while (d->live >= d->max_ids) dropped += (size_t)ring_pop(d);
    if (d->count == d->rcap) ring_grow(d);
    if (!d->tab) tab_resize(d, TAB_MIN);
    else if (4 * (d->live + 1) > 3 * (d->mask + 1)) tab_resize(d, 2 * (d->mask + 1));
    uint32_t q = (uint32_t)(d->head + d->count) & SEQ_MASK;
    ring_ent_t *re = ent_at(d, q);
    *re = (ring_ent_t){k->h2 | 1, e->ts, (uint32_t)k->h1, NO_SIDE};
    if (e->rev != BD_DEDUP_NO_REV) {
        re->side = side_alloc(d);
        side_t *s = &d->side[re->side];
        memcpy(s->num, e->num, sizeof s->num);
        s->ch = e->ch;
        s->rev = e->rev;
    }
    d->count++;
    tab_insert(d, re->lo, q);
    d->live++;
    d->evicted += dropped;
    return dropped;
}

/* See dedup.h: k must be held and rev'd (a restatement was just checked
 * against bd_dedup_find's answer); anything else is left alone. */
void bd_dedup_restate(bd_dedup_t *d, const bd_dedup_key_t *k, uint32_t rev, const double num[5])
{
    if (!d || !d->tab) return;
    size_t i;
    ring_ent_t *e = ring_find(d, k, &i);
    if (!e || e->side == NO_SIDE) return;
    side_t *s = &d->side[e->side];
    s->rev = rev;
    memcpy(s->num, num, sizeof s->num);
}

/* See dedup.h. */
int bd_dedup_check(bd_dedup_t *d, const char *event_id, int64_t ts, int64_t now)
{
    if (!d || !event_id || !event_id[0]) return 0;
    bd_dedup_key_t k;
    bd_dedup_key(event_id, &k);
    if (bd_dedup_find(d, &k, now, NULL)) return 1;
    bd_dedup_entry_t e = {.ts = ts, .rev = BD_DEDUP_NO_REV};
    bd_dedup_add(d, &k, now, &e);
    return 0;
}

/* See dedup.h: walks the ring from the front, skipping dead entries; the
 * key comes back as the store holds it (h1's low 32 bits, h2). */
int bd_dedup_next(const bd_dedup_t *d, size_t *pos, bd_dedup_key_t *k, bd_dedup_entry_t *e)
{
    if (!d) return 0;
    while (*pos < d->count) {
        const ring_ent_t *re = ent_at(d, (uint32_t)(d->head + (*pos)++));
        if (!re->h2) continue;
        k->h1 = re->lo;
        k->h2 = re->h2;
        ent_out(d, re, e);
        return 1;
    }
    return 0;
}
