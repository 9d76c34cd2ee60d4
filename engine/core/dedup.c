/* dedup.c: a portfolio's event-id store (see dedup.h).
 *
 * Three arrays share the ids:
 *   - ring: the recorded ids in insertion order, a FIFO that grows by
 *     doubling; dropping for time or for the cap pops its front, so both
 *     are O(1) and deterministic;
 *   - tab: open addressing with linear probing over ring positions, at
 *     most half full; deletion by backward shift, so there are no
 *     tombstones and probe lengths never degrade over a long run;
 *   - side: channel and numbers of the ids recorded with a rev, recycled
 *     through a free list.
 * A ring entry whose id was dropped out of order (a lookup found it
 * expired) stays in the ring as a dead entry (h2 == 0) until it reaches the
 * front or the ring is rebuilt; live keys always have h2's low bit set.
 * Invariant: live = ids in tab = ring entries with h2 != 0. */
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
#define NO_SIDE UINT32_MAX

typedef struct {
    uint64_t h1, h2; /* h2 == 0: dead */
    int64_t ts;
    uint32_t rev;    /* BD_DEDUP_NO_REV, or the rev last applied */
    uint32_t side;   /* rev'd ids: index into side */
} ring_ent_t;

/* ref: ring index + 1 (0 = empty bucket); lo: low 32 bits of h1, which give
 * both the home bucket (lo & mask) and a cheap filter. */
typedef struct {
    uint32_t ref, lo;
} bucket_t;

typedef struct {
    double num[5];
    uint32_t ch;
    uint32_t next_free;
} side_t;

struct bd_dedup {
    ring_ent_t *ring;
    bucket_t *tab;
    side_t *side;
    size_t rcap;              /* ring capacity: 0 or a power of two */
    size_t head, count;       /* the ring holds [head, head + count) mod rcap */
    size_t mask;              /* tab size - 1; tab size = 2 * rcap */
    size_t live;              /* ids held (in tab) */
    size_t max_ids;
    int64_t window;
    uint32_t nside, side_cap, side_free;
    uint64_t evicted;
};

#define HUGE_MIN ((size_t)2 << 20)

/* Zeroed memory for the table and the ring. The table is probed at random,
 * one cache miss per event; past a few MB a 4 KiB page adds a TLB miss as
 * well, and a page walk under a hypervisor costs about as much again
 * (measured on the former global window: ~370 -> ~190 ns per check with
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

/* Frees what big_alloc(n) returned. */
static void big_free(void *p, size_t n)
{
    if (!p) return;
    if (n < HUGE_MIN) free(p);
    else munmap(p, (n + HUGE_MIN - 1) & ~(HUGE_MIN - 1));
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
    big_free(d->tab, (d->mask + 1) * sizeof *d->tab);
    big_free(d->ring, d->rcap * sizeof *d->ring);
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

/* The home bucket of a lookup of k: the one random access of a check. */
void bd_dedup_prefetch(const bd_dedup_t *d, const bd_dedup_key_t *k)
{
    if (d && d->tab) __builtin_prefetch(&d->tab[(uint32_t)k->h1 & d->mask], 1);
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

/* Puts ring index r (key low word lo) into the first free bucket of its run. */
static void tab_insert(bd_dedup_t *d, uint32_t lo, size_t r)
{
    size_t i = lo & d->mask;
    while (d->tab[i].ref) i = (i + 1) & d->mask;
    d->tab[i] = (bucket_t){(uint32_t)(r + 1), lo};
}

/* Bucket holding ring index r (which must be in tab). */
static size_t tab_find_ref(const bd_dedup_t *d, size_t r)
{
    size_t i = (size_t)(uint32_t)d->ring[r].h1 & d->mask;
    while (d->tab[i].ref != r + 1) i = (i + 1) & d->mask;
    return i;
}

/* A side record for a rev'd id, from the free list or a grown array. */
static uint32_t side_alloc(bd_dedup_t *d)
{
    if (d->side_free != NO_SIDE) {
        uint32_t s = d->side_free;
        d->side_free = d->side[s].next_free;
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
    d->side[s].next_free = d->side_free;
    d->side_free = s;
}

/* Forgets the live id at ring index r whose bucket is i: out of tab, its
 * side record freed, the ring entry dead. */
static void ent_kill(bd_dedup_t *d, size_t r, size_t i)
{
    ring_ent_t *e = &d->ring[r];
    if (e->rev != BD_DEDUP_NO_REV) side_release(d, e->side);
    e->h2 = 0;
    tab_remove(d, i);
    d->live--;
}

/* Drops the front ring entry (forgetting its id when still live); returns
 * 1 when it was live. */
static int ring_pop(bd_dedup_t *d)
{
    int was_live = d->ring[d->head].h2 != 0;
    if (was_live) ent_kill(d, d->head, tab_find_ref(d, d->head));
    d->head = (d->head + 1) & (d->rcap - 1);
    d->count--;
    return was_live;
}

/* Rebuilds ring and table at ring capacity ncap (>= live), keeping the live
 * entries in order and dropping the dead ones. */
static void ring_rebuild(bd_dedup_t *d, size_t ncap)
{
    ring_ent_t *nr = big_alloc(ncap * sizeof *nr);
    size_t n = 0;
    for (size_t k = 0; k < d->count; k++) {
        const ring_ent_t *e = &d->ring[(d->head + k) & (d->rcap - 1)];
        if (e->h2) nr[n++] = *e;
    }
    big_free(d->ring, d->rcap * sizeof *d->ring);
    big_free(d->tab, (d->mask + 1) * sizeof *d->tab);
    d->ring = nr;
    d->rcap = ncap;
    d->head = 0;
    d->count = n;
    d->mask = 2 * ncap - 1;
    d->tab = big_alloc(2 * ncap * sizeof *d->tab);
    for (size_t r = 0; r < n; r++) tab_insert(d, (uint32_t)nr[r].h1, r);
}

static int64_t cutoff_of(int64_t now, int64_t window)
{
    return now < INT64_MIN + window ? INT64_MIN : now - window; /* no signed overflow */
}

/* See dedup.h. An expired id is forgotten on sight, so that recording it
 * afresh leaves one live copy. */
int bd_dedup_find(bd_dedup_t *d, const bd_dedup_key_t *k, int64_t now, bd_dedup_entry_t *out)
{
    if (!d || !d->tab) return 0;
    uint32_t lo = (uint32_t)k->h1;
    for (size_t i = lo & d->mask; d->tab[i].ref; i = (i + 1) & d->mask) {
        if (d->tab[i].lo != lo) continue;
        size_t r = d->tab[i].ref - 1;
        const ring_ent_t *e = &d->ring[r];
        if (e->h1 != k->h1 || e->h2 != k->h2) continue;
        if (e->ts < cutoff_of(now, d->window)) {
            ent_kill(d, r, i);
            return 0;
        }
        if (out) {
            out->ts = e->ts;
            out->rev = e->rev;
            if (e->rev != BD_DEDUP_NO_REV) {
                out->ch = d->side[e->side].ch;
                memcpy(out->num, d->side[e->side].num, sizeof out->num);
            }
        }
        return 1;
    }
    return 0;
}

/* See dedup.h. Order: drop expired and dead ids at the front, refuse an
 * event already outside the window, make room under max_ids, record. */
size_t bd_dedup_add(bd_dedup_t *d, const bd_dedup_key_t *k, int64_t now, const bd_dedup_entry_t *e)
{
    if (!d || !d->max_ids) return 0;
    int64_t cutoff = cutoff_of(now, d->window);
    while (d->count && (!d->ring[d->head].h2 || d->ring[d->head].ts < cutoff)) ring_pop(d);
    if (e->ts < cutoff) return 0;
    size_t dropped = 0;
    while (d->live >= d->max_ids) dropped += (size_t)ring_pop(d);
    if (d->count == d->rcap) {
        /* full: double, or only compact when at least half are dead */
        size_t ncap = d->rcap == 0 ? RING_MIN : (2 * d->live <= d->rcap ? d->rcap : 2 * d->rcap);
        ring_rebuild(d, ncap);
    }
    size_t r = (d->head + d->count) & (d->rcap - 1);
    ring_ent_t *re = &d->ring[r];
    *re = (ring_ent_t){k->h1, k->h2 | 1, e->ts, e->rev, 0};
    if (e->rev != BD_DEDUP_NO_REV) {
        re->side = side_alloc(d);
        side_t *s = &d->side[re->side];
        memcpy(s->num, e->num, sizeof s->num);
        s->ch = e->ch;
    }
    d->count++;
    tab_insert(d, (uint32_t)k->h1, r);
    d->live++;
    d->evicted += dropped;
    return dropped;
}

/* See dedup.h: k must be held and rev'd (a restatement was just checked
 * against bd_dedup_find's answer). */
void bd_dedup_restate(bd_dedup_t *d, const bd_dedup_key_t *k, uint32_t rev, const double num[5])
{
    if (!d || !d->tab) return;
    uint32_t lo = (uint32_t)k->h1;
    for (size_t i = lo & d->mask; d->tab[i].ref; i = (i + 1) & d->mask) {
        ring_ent_t *e = &d->ring[d->tab[i].ref - 1];
        if (d->tab[i].lo != lo || e->h1 != k->h1 || e->h2 != k->h2) continue;
        if (e->rev == BD_DEDUP_NO_REV) return;
        e->rev = rev;
        memcpy(d->side[e->side].num, num, sizeof d->side[e->side].num);
        return;
    }
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

/* See dedup.h: walks the ring from the front, skipping dead entries. */
int bd_dedup_next(const bd_dedup_t *d, size_t *pos, bd_dedup_key_t *k, bd_dedup_entry_t *e)
{
    if (!d) return 0;
    while (*pos < d->count) {
        const ring_ent_t *re = &d->ring[(d->head + (*pos)++) & (d->rcap - 1)];
        if (!re->h2) continue;
        k->h1 = re->h1;
        k->h2 = re->h2;
        memset(e, 0, sizeof *e);
        e->ts = re->ts;
        e->rev = re->rev;
        if (re->rev != BD_DEDUP_NO_REV) {
            e->ch = d->side[re->side].ch;
            memcpy(e->num, d->side[re->side].num, sizeof e->num);
        }
        return 1;
    }
    return 0;
}
