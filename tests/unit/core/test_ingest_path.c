/* test_ingest_path.c: the hooks that let the engine overlap the dedup
 * lookup with decoding (bd_event_decode_ex, bd_dedup_key / prefetch /
 * find / add) give exactly the answers of the plain calls. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/dedup.h"
#include "budgetd/event.h"

#define T0 1700000000LL

typedef struct {
    int calls;
    bd_event_t seen;
} hook_t;

static void on_ready(void *ctx, const bd_event_t *ev)
{
    hook_t *h = ctx;
    h->calls++;
    h->seen = *ev;
}

Test(ingest_path, ready_hook_sees_valid_records_only)
{
    static const char *lines[] = {
        "{\"event_id\":\"a1\",\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":0}",
        "{\"portfolio\":\"p\",\"watermark\":1700000000}",
        "{\"event_id\":\"a2\",\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":-1,\"conversions\":0}",
        "not json",
        "{\"event_id\":\"a3\",\"ts\":1700000000,\"portfolio\":\"bad name\",\"channel\":\"c\",\"spend\":1,\"conversions\":0}",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        bd_event_t a, b;
        char da[256], db[256];
        hook_t h = {0};
        bd_reject_t ra = bd_event_decode(lines[i], strlen(lines[i]), &a, da, sizeof(da));
        bd_reject_t rb = bd_event_decode_ex(lines[i], strlen(lines[i]), &b, db, sizeof(db), on_ready, &h);
        cr_assert_eq(ra, rb, "line %zu", i);
        cr_assert_str_eq(da, db, "line %zu", i);
        cr_assert_eq(h.calls, ra == BD_REJ_NONE ? 1 : 0, "line %zu", i);
        if (ra == BD_REJ_NONE) {
            cr_assert_eq(memcmp(&h.seen, &b, sizeof(b)), 0, "hook saw the final event");
            cr_assert_eq(a.kind, b.kind);
            cr_assert_str_eq(a.portfolio, b.portfolio);
            cr_assert_str_eq(a.event_id, b.event_id);
            cr_assert_eq(a.ts, b.ts);
            cr_assert_eq(a.spend, b.spend);
        }
    }
    /* a NULL hook is allowed */
    bd_event_t ev;
    cr_assert_eq(bd_event_decode_ex(lines[0], strlen(lines[0]), &ev, NULL, 0, NULL, NULL), BD_REJ_NONE);
}

/* Two stores fed the same sequence, one through bd_dedup_check and one
 * through key + prefetch + find + add (the engine's path), agree at every
 * step, across max_ids (prefetch of a store that drops its front) and
 * expiry. */
Test(ingest_path, key_api_matches_string_api)
{
    bd_dedup_t *a = bd_dedup_new(30, 50), *b = bd_dedup_new(30, 50);
    uint64_t x = 99;
    long long t = T0;
    for (int step = 0; step < 50000; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        t += (long long)(x % 3);
        long long ts = t - (long long)((x >> 8) % 40);
        char id[16];
        snprintf(id, sizeof id, "e%u", (unsigned)((x >> 24) % 120));
        bd_dedup_key_t k;
        bd_dedup_key(id, &k);
        bd_dedup_prefetch(b, &k);
        int ra = bd_dedup_check(a, id, ts, t);
        int rb = bd_dedup_find(b, &k, t, NULL);
        if (!rb) {
            bd_dedup_entry_t e = {.ts = ts, .rev = BD_DEDUP_NO_REV};
            bd_dedup_add(b, &k, t, &e);
        }
        cr_assert_eq(ra, rb, "step %d", step);
        cr_assert_eq(bd_dedup_size(a), bd_dedup_size(b), "step %d", step);
    }
    bd_dedup_free(a);
    bd_dedup_free(b);
}

/* Prefetching with an empty store (no arrays yet) or a NULL one is a no-op. */
Test(ingest_path, prefetch_of_an_empty_store)
{
    bd_dedup_key_t k;
    bd_dedup_key("c", &k);
    bd_dedup_t *d = bd_dedup_new(100, 1u << 20);
    bd_dedup_prefetch(d, &k);
    bd_dedup_prefetch(NULL, &k);
    cr_assert_eq(bd_dedup_find(d, &k, T0, NULL), 0);
    cr_assert_eq(bd_dedup_check(d, "c", T0, T0), 0);
    bd_dedup_prefetch(d, &k);
    cr_assert_eq(bd_dedup_find(d, &k, T0, NULL), 1);
    bd_dedup_free(d);
}
