/* test_ingest_path.c: the hooks that let the engine overlap the dedup
 * lookup with decoding (bd_event_decode_ex, bd_dedup_key / prefetch /
 * check_key_at) give exactly the answers of the plain calls. */
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

/* Two windows fed the same sequence, one through the string call and one
 * through key + prefetch + check_key_at, agree at every step, across
 * capacity eviction (prefetch of the evicted front) and expiry. */
Test(ingest_path, key_api_matches_string_api)
{
    bd_dedup_t *a = bd_dedup_new(50, 30), *b = bd_dedup_new(50, 30);
    uint64_t x = 99;
    long long t = T0;
    for (int step = 0; step < 50000; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        t += (long long)(x % 3);
        long long ts = t - (long long)((x >> 8) % 40);
        char p[8], id[16];
        snprintf(p, sizeof p, "p%u", (unsigned)((x >> 20) % 4));
        snprintf(id, sizeof id, "e%u", (unsigned)((x >> 24) % 120));
        bd_dedup_key_t k;
        bd_dedup_key(p, id, &k);
        bd_dedup_prefetch(b, &k);
        int ra = bd_dedup_check_at(a, p, id, ts, t);
        int rb = bd_dedup_check_key_at(b, &k, ts, t);
        cr_assert_eq(ra, rb, "step %d", step);
        cr_assert_eq(bd_dedup_size(a), bd_dedup_size(b), "step %d", step);
    }
    bd_dedup_free(a);
    bd_dedup_free(b);
}

Test(ingest_path, key_separates_portfolio_and_id)
{
    bd_dedup_key_t k1, k2, k3;
    bd_dedup_key("ab", "c", &k1);
    bd_dedup_key("a", "bc", &k2);
    bd_dedup_key("ab", "c", &k3);
    cr_assert(k1.h1 != k2.h1 || k1.h2 != k2.h2);
    cr_assert(k1.h1 == k3.h1 && k1.h2 == k3.h2);
    /* the table is huge-page backed at this size: still plain memory */
    bd_dedup_t *d = bd_dedup_new(1u << 20, 100);
    cr_assert_eq(bd_dedup_check_key_at(d, &k1, T0, T0), 0);
    cr_assert_eq(bd_dedup_check_at(d, "ab", "c", T0, T0), 1);
    cr_assert_eq(bd_dedup_check_at(d, "a", "bc", T0, T0), 0);
    bd_dedup_free(d);
}
