/* test_rev.c: restatements (`rev`, CONTRACT v2 §1) and the per-portfolio
 * dedup store in the engine: decoding of rev on both decode paths, rev
 * ordering, differences applied to open and closed intervals, bad_rev
 * cases, ids dropped by time and by dedup_max_ids, and the store's
 * checkpoint round trip (v5, and a v4 blob restoring an empty store). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define C0 (T0 / 3600)

typedef struct {
    char out[1 << 17];
    size_t len;
    int n;
} cap_t;

static bd_err_t cap_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                         size_t len)
{
    (void)p, (void)d;
    cap_t *c = ctx;
    c->n++;
    if (c->len + len + 2 < sizeof(c->out)) {
        memcpy(c->out + c->len, json, len);
        c->len += len;
        c->out[c->len++] = '\n';
        c->out[c->len] = '\0';
    }
    return BD_OK;
}

/* A config with the given lateness and dedup keys (extra: more top-level
 * lines). */
static bd_config_t *load(const char *lateness, const char *extra)
{
    char y[1024], err[4096];
    snprintf(y, sizeof(y),
             "v: 1\ncycle: 1h\nlateness: %s\nseed: 7\n%s"
             "defaults:\n  budget: 1000\n  samples: 16\n"
             "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
             "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n",
             lateness, extra);
    bd_config_t *cfg = NULL;
    bd_err_t rc = bd_config_load_string(y, strlen(y), "test.yaml", &cfg, err, sizeof(err));
    cr_assert_eq(rc, BD_OK, "config: %s", err);
    return cfg;
}

typedef struct {
    bd_config_t *cfg;
    bd_engine_t *e;
    cap_t cap;
    char detail[256];
} fx_t;

static fx_t *fx_new(const char *lateness, const char *extra, int threads)
{
    fx_t *f = calloc(1, sizeof *f);
    f->cfg = load(lateness, extra);
    bd_engine_opts_t o = {.threads = threads, .sink = cap_sink, .sink_ctx = &f->cap};
    f->e = bd_engine_new(f->cfg, &o);
    return f;
}

static void fx_free(fx_t *f)
{
    bd_engine_free(f->e);
    bd_config_free(f->cfg);
    free(f);
}

/* One input line through bd_engine_ingest. */
__attribute__((format(printf, 2, 3))) static bd_reject_t feed(fx_t *f, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    bd_err_t err;
    f->detail[0] = '\0';
    bd_reject_t r = bd_engine_ingest(f->e, line, strlen(line), f->detail, sizeof f->detail, &err);
    cr_assert_eq(err, BD_OK);
    return r;
}

/* A rev'd event of acme: id, rev, ts, channel, spend, conversions, revenue. */
static bd_reject_t rev_ev(fx_t *f, const char *id, int rev, long long ts, const char *ch,
                          double spend, double conv, double revenue)
{
    return feed(f,
                "{\"event_id\":\"%s\",\"rev\":%d,\"ts\":%lld,\"portfolio\":\"acme\","
                "\"channel\":\"%s\",\"spend\":%g,\"conversions\":%g,\"revenue\":%g}",
                id, rev, ts, ch, spend, conv, revenue);
}

static bd_reject_t plain_ev(fx_t *f, const char *id, long long ts, const char *ch, double spend,
                            double conv, double revenue)
{
    return feed(f,
                "{\"event_id\":\"%s\",\"ts\":%lld,\"portfolio\":\"acme\",\"channel\":\"%s\","
                "\"spend\":%g,\"conversions\":%g,\"revenue\":%g}",
                id, ts, ch, spend, conv, revenue);
}

static void watermark(fx_t *f, long long t)
{
    cr_assert_eq(feed(f, "{\"portfolio\":\"acme\",\"watermark\":%lld}", t), BD_REJ_NONE);
    bd_engine_flush(f->e);
}

static bd_portfolio_t *acme(fx_t *f)
{
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(f->e), "acme", 4);
    cr_assert_not_null(p);
    return p;
}

/* The open aggregate of acme's channel ch in cycle c. */
static bd_agg_t agg(fx_t *f, int64_t c, const char *ch)
{
    bd_portfolio_t *p = acme(f);
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->ch[i].name, ch)) return bd_portfolio_slot(p, c)[i];
    cr_assert_fail("no channel %s", ch);
    return (bd_agg_t){0};
}

/* ---- decoding -------------------------------------------------------------*/

#define BASE "\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":\"c\",\"spend\":1,\"conversions\":1"

/* Decodes line on the fast path and through cJSON: same reason, detail and
 * rev, which is returned. */
static bd_reject_t dec(const char *line, bd_event_t *ev, char *detail)
{
    bd_event_t c;
    char cd[256];
    memset(ev, 0, sizeof *ev);
    memset(&c, 0, sizeof c);
    bd_reject_t r = bd_event_decode(line, strlen(line), ev, detail, 256);
    bd_reject_t rc = bd_event_decode_cjson(line, strlen(line), &c, cd, sizeof cd);
    cr_assert_eq(r, rc, "%s", line);
    cr_assert_str_eq(detail, cd, "%s", line);
    if (r == BD_REJ_NONE) {
        cr_assert_eq(ev->has_rev, c.has_rev, "%s", line);
        cr_assert_eq(ev->rev, c.rev, "%s", line);
    }
    return r;
}

Test(rev, decoded_in_range_and_only_with_an_event_id)
{
    static const struct {
        const char *line;
        bd_reject_t want;
        int has_rev;
        unsigned rev;
    } cases[] = {
        {"{\"event_id\":\"e\",\"rev\":0," BASE "}", BD_REJ_NONE, 1, 0},
        {"{\"event_id\":\"e\",\"rev\":7," BASE "}", BD_REJ_NONE, 1, 7},
        {"{\"event_id\":\"e\",\"rev\":2147483648," BASE "}", BD_REJ_NONE, 1, 2147483648u},
        {"{\"event_id\":\"e\",\"rev\":3e0," BASE "}", BD_REJ_NONE, 1, 3}, /* integral by value */
        {"{\"event_id\":\"e\",\"rev\":-0," BASE "}", BD_REJ_NONE, 1, 0},
        {"{\"event_id\":\"e\",\"rev\":null," BASE "}", BD_REJ_NONE, 0, 0}, /* null = absent */
        {"{\"event_id\":\"e\"," BASE "}", BD_REJ_NONE, 0, 0},
        {"{\"event_id\":\"e\",\"rev\":-1," BASE "}", BD_REJ_BAD_REV, 0, 0},
        {"{\"event_id\":\"e\",\"rev\":1.5," BASE "}", BD_REJ_BAD_REV, 0, 0},
        {"{\"event_id\":\"e\",\"rev\":2147483649," BASE "}", BD_REJ_BAD_REV, 0, 0},
        {"{\"event_id\":\"e\",\"rev\":1e999," BASE "}", BD_REJ_BAD_REV, 0, 0},
        {"{\"event_id\":\"e\",\"rev\":\"1\"," BASE "}", BD_REJ_BAD_REV, 0, 0},
        {"{\"event_id\":\"e\",\"rev\":true," BASE "}", BD_REJ_BAD_REV, 0, 0},
        {"{\"event_id\":\"e\",\"rev\":[1]," BASE "}", BD_REJ_BAD_REV, 0, 0},
        {"{\"rev\":0," BASE "}", BD_REJ_BAD_REV, 0, 0}, /* no event_id */
        /* order: event_id's own fault first, spend's after rev's */
        {"{\"event_id\":\"\",\"rev\":-1," BASE "}", BD_REJ_BAD_ID, 0, 0},
        {"{\"event_id\":\"e\",\"rev\":-1,\"ts\":1700000000,\"portfolio\":\"p\",\"channel\":\"c\","
         "\"spend\":-1,\"conversions\":1}",
         BD_REJ_BAD_REV, 0, 0},
        /* a watermark ignores rev */
        {"{\"portfolio\":\"p\",\"watermark\":1700003600,\"rev\":-5}", BD_REJ_NONE, 0, 0},
        /* CONTRACT v2 events say v 2; v1 events may carry rev too */
        {"{\"v\":2,\"event_id\":\"e\",\"rev\":1," BASE "}", BD_REJ_NONE, 1, 1},
        {"{\"v\":1,\"event_id\":\"e\",\"rev\":1," BASE "}", BD_REJ_NONE, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bd_event_t ev;
        char detail[256];
        bd_reject_t r = dec(cases[i].line, &ev, detail);
        cr_assert_eq(r, cases[i].want, "%s: got %s (%s)", cases[i].line, bd_reject_name(r), detail);
        if (r == BD_REJ_BAD_REV) cr_assert(strstr(detail, "'rev'"), "%s", detail);
        if (r == BD_REJ_NONE) {
            cr_assert_eq(ev.has_rev, cases[i].has_rev, "%s", cases[i].line);
            cr_assert_eq(ev.rev, cases[i].rev, "%s", cases[i].line);
        }
    }
    cr_assert_str_eq(bd_reject_name(BD_REJ_BAD_REV), "bad_rev");
}

/* ---- restatements in the engine -------------------------------------------*/

/* rev 0, 1, 2 of one id: each higher rev replaces the numbers before it,
 * so the open interval holds the last version's numbers, one event. */
Test(rev, increasing_revs_replace_the_numbers)
{
    fx_t *f = fx_new("0", "", 1);
    cr_assert_eq(rev_ev(f, "r", 0, T0 + 10, "search", 100, 2, 300), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r", 1, T0 + 10, "search", 120, 3, 450), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r", 2, T0 + 10, "search", 125, 5, 700), BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "other", T0 + 20, "search", 10, 1, 50), BD_REJ_NONE);
    bd_agg_t a = agg(f, C0, "search");
    cr_assert_float_eq(a.spend, 135, 1e-9);
    cr_assert_float_eq(a.conversions, 6, 1e-9);
    cr_assert_float_eq(a.revenue, 750, 1e-9);
    cr_assert_eq(a.events, 2);
    const bd_engine_stats_t *st = bd_engine_stats(f->e);
    cr_assert_eq(st->accepted, 4);
    cr_assert_eq(st->restated, 2);
    cr_assert_eq(st->duplicates, 0);
    watermark(f, T0 + 3600);
    cr_assert(strstr(f->cap.out, "\"events\":2,\"late\":0"), "%s", f->cap.out);
    fx_free(f);
}

/* 2 then 1: the lower rev is a duplicate; the same rev twice too; and an
 * event without rev whose id is held with one. */
Test(rev, lower_or_equal_rev_is_a_duplicate)
{
    fx_t *f = fx_new("0", "", 1);
    cr_assert_eq(rev_ev(f, "r", 2, T0 + 10, "search", 100, 2, 300), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r", 1, T0 + 10, "search", 10, 1, 30), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r", 2, T0 + 10, "search", 500, 9, 900), BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "r", T0 + 10, "search", 500, 9, 900), BD_REJ_NONE);
    bd_agg_t a = agg(f, C0, "search");
    cr_assert_float_eq(a.spend, 100, 1e-9);
    cr_assert_float_eq(a.revenue, 300, 1e-9);
    const bd_engine_stats_t *st = bd_engine_stats(f->e);
    cr_assert_eq(st->duplicates, 3);
    cr_assert_eq(st->restated, 0);
    /* rev 3 now applies against rev 2's numbers */
    cr_assert_eq(rev_ev(f, "r", 3, T0 + 10, "search", 90, 2, 310), BD_REJ_NONE);
    a = agg(f, C0, "search");
    cr_assert_float_eq(a.spend, 90, 1e-9);
    cr_assert_float_eq(a.revenue, 310, 1e-9);
    fx_free(f);
}

/* A restatement of a closed interval becomes a late report carrying the
 * difference (negative where a number went down), queued for the next
 * close and counted as late in its record. */
Test(rev, closed_interval_gets_the_difference_as_a_late_report)
{
    fx_t *f = fx_new("0", "", 1);
    cr_assert_eq(rev_ev(f, "r", 0, T0 + 10, "social", 100, 4, 400), BD_REJ_NONE);
    watermark(f, T0 + 3600);
    cr_assert_eq(rev_ev(f, "r", 1, T0 + 10, "social", 100, 6, 350), BD_REJ_NONE);
    bd_portfolio_t *p = acme(f);
    cr_assert_eq(p->n_late, 1);
    const bd_late_t *l = &p->late_q[0];
    cr_assert_eq(l->cycle, C0);
    cr_assert_eq(l->age, 1);
    cr_assert_str_eq(p->ch[l->ch].name, "social");
    cr_assert_float_eq(l->d.spend, 0, 1e-12);
    cr_assert_float_eq(l->d.conversions, 2, 1e-12);
    cr_assert_float_eq(l->d.revenue, -50, 1e-12);
    cr_assert_eq(l->d.events, 0);
    cr_assert_eq(bd_engine_stats(f->e)->late, 1);
    /* the open interval is untouched */
    cr_assert_float_eq(agg(f, C0 + 1, "social").revenue, 0, 1e-12);
    watermark(f, T0 + 7200);
    cr_assert_eq(acme(f)->n_late, 0, "applied by the close");
    cr_assert(strstr(f->cap.out, "\"events\":0,\"late\":1"), "%s", f->cap.out);
    fx_free(f);
}

/* A restatement that would take an open aggregate below 0 is rejected,
 * not applied: here the aggregate lost the first version's numbers (the
 * checkpoint was restored under another lateness, which drops open
 * aggregates), while the store still holds them. */
Test(rev, negative_open_aggregate_is_rejected)
{
    fx_t *a = fx_new("0", "", 1);
    cr_assert_eq(rev_ev(a, "r", 0, T0 + 10, "search", 100, 4, 400), BD_REJ_NONE);
    unsigned char *blob = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(acme(a), &blob, &cap);
    fx_t *b = fx_new("2h", "", 1);
    bd_portfolio_t *p = bd_engine_portfolio(b->e, "acme");
    char err[256];
    cr_assert_eq(bd_checkpoint_decode(p, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert_float_eq(agg(b, C0, "search").revenue, 0, 1e-12);
    cr_assert_eq(rev_ev(b, "r", 1, T0 + 10, "search", 100, 4, 300), BD_REJ_BAD_REV);
    cr_assert(strstr(b->detail, "revenue"), "%s", b->detail);
    cr_assert_eq(bd_engine_stats(b->e)->rejected[BD_REJ_BAD_REV], 1);
    cr_assert_eq(acme(b)->rejected, 1);
    cr_assert_float_eq(agg(b, C0, "search").revenue, 0, 1e-12); /* unchanged */
    /* the store kept rev 0: a rev 1 that raises the numbers applies */
    cr_assert_eq(rev_ev(b, "r", 1, T0 + 10, "search", 100, 5, 450), BD_REJ_NONE);
    cr_assert_float_eq(agg(b, C0, "search").revenue, 50, 1e-9);
    cr_assert_float_eq(agg(b, C0, "search").conversions, 1, 1e-9);
    free(blob);
    fx_free(a);
    fx_free(b);
}

/* Rounding: a restatement back to 0 of a sum that does not cancel exactly
 * in binary leaves 0, not a tiny negative, and is applied. */
Test(rev, rounding_to_zero_is_not_negative)
{
    fx_t *f = fx_new("0", "", 1);
    cr_assert_eq(plain_ev(f, "a", T0 + 1, "search", 0.1, 0, 0.1), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r", 0, T0 + 2, "search", 0.2, 0, 0.7), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r", 1, T0 + 2, "search", 0, 0, 0), BD_REJ_NONE);
    bd_agg_t a = agg(f, C0, "search");
    cr_assert_float_eq(a.spend, 0.1, 1e-12);
    cr_assert(a.revenue >= 0);
    fx_free(f);
}

Test(rev, bad_rev_cases_in_the_engine)
{
    fx_t *f = fx_new("0", "", 1);
    /* rev on an id first seen without rev */
    cr_assert_eq(plain_ev(f, "p1", T0 + 10, "search", 10, 1, 10), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "p1", 1, T0 + 10, "search", 20, 1, 10), BD_REJ_BAD_REV);
    cr_assert(strstr(f->detail, "without rev"), "%s", f->detail);
    /* a restatement naming another channel */
    cr_assert_eq(rev_ev(f, "r1", 0, T0 + 10, "search", 10, 1, 10), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r1", 1, T0 + 10, "social", 10, 1, 10), BD_REJ_BAD_REV);
    cr_assert(strstr(f->detail, "channel"), "%s", f->detail);
    /* ... or another interval; the same interval at another ts is fine */
    cr_assert_eq(rev_ev(f, "r1", 1, T0 + 3600 + 10, "search", 10, 1, 10), BD_REJ_BAD_REV);
    cr_assert(strstr(f->detail, "cycle"), "%s", f->detail);
    cr_assert_eq(rev_ev(f, "r1", 1, T0 + 50, "search", 12, 1, 10), BD_REJ_NONE);
    /* a rev'd event of a channel never seen names no held channel either */
    cr_assert_eq(rev_ev(f, "r1", 2, T0 + 50, "display", 12, 1, 10), BD_REJ_BAD_REV);
    cr_assert_eq(acme(f)->n, 2, "a rejected event registers no channel");
    /* a decode-time bad_rev */
    cr_assert_eq(feed(f, "{\"event_id\":\"x\",\"rev\":-1,\"ts\":%lld,\"portfolio\":\"acme\","
                         "\"channel\":\"search\",\"spend\":1,\"conversions\":0}",
                      T0 + 10),
                 BD_REJ_BAD_REV);
    const bd_engine_stats_t *st = bd_engine_stats(f->e);
    cr_assert_eq(st->rejected[BD_REJ_BAD_REV], 5);
    cr_assert_eq(acme(f)->rejected, 5);
    bd_agg_t a = agg(f, C0, "search");
    cr_assert_float_eq(a.spend, 22, 1e-9); /* p1 10 + r1 rev 1's 12 */
    fx_free(f);
}

/* ---- the store: time, max_ids ---------------------------------------------*/

/* An id is held for dedup_window of the portfolio's own event time; a
 * resend after that counts again, and so does a rev'd one (as new: its
 * full numbers, not a difference). */
Test(rev, ids_expire_with_the_window)
{
    fx_t *f = fx_new("0", "dedup_window: 2h\n", 1);
    cr_assert_eq(rev_ev(f, "r", 0, T0 + 10, "search", 100, 1, 100), BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "a", T0 + 10, "search", 1, 0, 0), BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "b", T0 + 2 * 3600 + 10, "search", 1, 0, 0), BD_REJ_NONE); /* cutoff T0+10 */
    cr_assert_eq(plain_ev(f, "a", T0 + 10, "search", 1, 0, 0), BD_REJ_NONE);
    cr_assert_eq(bd_engine_stats(f->e)->duplicates, 1);
    cr_assert_eq(plain_ev(f, "c", T0 + 2 * 3600 + 11, "search", 1, 0, 0), BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "a", T0 + 10, "search", 1, 0, 0), BD_REJ_NONE); /* late: not held */
    cr_assert_eq(bd_engine_stats(f->e)->duplicates, 1);
    cr_assert_eq(rev_ev(f, "r", 1, T0 + 10, "search", 150, 1, 100), BD_REJ_NONE);
    cr_assert_eq(bd_engine_stats(f->e)->restated, 0, "expired: new, not a restatement");
    cr_assert_eq(bd_dedup_size(acme(f)->dedup), 2); /* b, c */
    fx_free(f);
}

/* Past dedup_max_ids the oldest ids are dropped and counted; a resend of a
 * dropped id counts again, a held one does not. */
Test(rev, max_ids_drops_the_oldest)
{
    fx_t *f = fx_new("0", "dedup_max_ids: 3\n", 1);
    const char *ids[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) cr_assert_eq(plain_ev(f, ids[i], T0 + i, "search", 1, 0, 0), BD_REJ_NONE);
    const bd_engine_stats_t *st = bd_engine_stats(f->e);
    cr_assert_eq(st->dedup_evicted, 2);
    cr_assert_eq(plain_ev(f, "e", T0 + 9, "search", 1, 0, 0), BD_REJ_NONE);
    cr_assert_eq(st->duplicates, 1);
    cr_assert_eq(plain_ev(f, "a", T0 + 9, "search", 1, 0, 0), BD_REJ_NONE);
    cr_assert_eq(st->duplicates, 1);
    cr_assert_eq(st->dedup_evicted, 3);
    cr_assert_eq(agg(f, C0, "search").events, 6);
    fx_free(f);
}

/* Each portfolio has its own store: the same id in two portfolios is two
 * events, and one portfolio's ids never push out another's. */
Test(rev, stores_are_per_portfolio)
{
    fx_t *f = fx_new("0", "dedup_max_ids: 2\n", 1);
    cr_assert_eq(plain_ev(f, "x", T0, "search", 1, 0, 0), BD_REJ_NONE);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(feed(f, "{\"event_id\":\"o%d\",\"ts\":%lld,\"portfolio\":\"other\","
                             "\"channel\":\"c\",\"spend\":1,\"conversions\":0}",
                          i, T0),
                     BD_REJ_NONE);
    cr_assert_eq(feed(f, "{\"event_id\":\"x\",\"ts\":%lld,\"portfolio\":\"other\","
                         "\"channel\":\"c\",\"spend\":1,\"conversions\":0}",
                      T0),
                 BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "x", T0, "search", 1, 0, 0), BD_REJ_NONE);
    cr_assert_eq(bd_engine_stats(f->e)->duplicates, 1, "acme's x is still held");
    fx_free(f);
}

/* ---- checkpoint round trip -------------------------------------------------*/

/* The first part of a stream: plain ids, rev'd ids in an interval that
 * will close and in the open one. */
static void part1(fx_t *f)
{
    cr_assert_eq(plain_ev(f, "p1", T0 + 10, "search", 100, 2, 200), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r1", 0, T0 + 20, "social", 50, 1, 80), BD_REJ_NONE);
    watermark(f, T0 + 3600);
    cr_assert_eq(rev_ev(f, "r2", 0, T0 + 3600 + 5, "search", 70, 1, 90), BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "p2", T0 + 3600 + 6, "social", 30, 1, 40), BD_REJ_NONE);
}

/* The second part: resends (duplicates after a restart too), restatements
 * of both intervals, and new events. */
static void part2(fx_t *f)
{
    cr_assert_eq(plain_ev(f, "p1", T0 + 10, "search", 100, 2, 200), BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "p2", T0 + 3600 + 6, "social", 30, 1, 40), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r1", 0, T0 + 20, "social", 50, 1, 80), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r1", 1, T0 + 20, "social", 50, 3, 200), BD_REJ_NONE);
    cr_assert_eq(rev_ev(f, "r2", 1, T0 + 3600 + 5, "search", 75, 0, 0), BD_REJ_NONE);
    cr_assert_eq(plain_ev(f, "p3", T0 + 3600 + 9, "search", 10, 1, 20), BD_REJ_NONE);
    watermark(f, T0 + 2 * 3600);
    watermark(f, T0 + 3 * 3600);
}

/* A portfolio checkpointed mid-stream and restored in a fresh engine
 * decides exactly as the engine that never stopped: resends are
 * duplicates, restatements apply their differences. */
Test(rev, checkpoint_round_trip_of_the_store)
{
    fx_t *a = fx_new("0", "", 1), *b = fx_new("0", "", 1);
    part1(a);
    unsigned char *blob = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(acme(a), &blob, &cap);
    size_t mark = a->cap.len;
    int nmark = a->cap.n;
    part2(a);
    bd_portfolio_t *p = bd_engine_portfolio(b->e, "acme");
    char err[256];
    cr_assert_eq(bd_checkpoint_decode(p, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert(p->dedup_restored);
    cr_assert_eq(bd_dedup_size(p->dedup), 4);
    part2(b);
    cr_assert_eq(bd_engine_stats(b->e)->duplicates, 3);
    cr_assert_eq(bd_engine_stats(b->e)->restated, 2);
    cr_assert_eq(b->cap.n, a->cap.n - nmark);
    cr_assert_str_eq(b->cap.out, a->cap.out + mark);
    /* decoded into a third engine and encoded again: the same bytes */
    fx_t *c = fx_new("0", "", 1);
    bd_portfolio_t *q = bd_engine_portfolio(c->e, "acme");
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    unsigned char *blob2 = NULL;
    size_t cap2 = 0, len2 = bd_checkpoint_encode(q, &blob2, &cap2);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(blob, blob2, len), 0);
    free(blob2);
    free(blob);
    fx_free(a);
    fx_free(b);
    fx_free(c);
}

/* A v4 blob (no store) restores an empty store; then bd_engine_remember,
 * which the daemon calls for the messages the checkpoint covers, fills
 * it. After a v5 restore remember changes nothing. */
Test(rev, blob_before_v7_restores_an_empty_store)
{
    fx_t *a = fx_new("0", "", 1);
    cr_assert_eq(plain_ev(a, "p1", T0 + 10, "search", 100, 2, 200), BD_REJ_NONE);
    cr_assert_eq(plain_ev(a, "p2", T0 + 11, "search", 100, 2, 200), BD_REJ_NONE);
    unsigned char *blob = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(acme(a), &blob, &cap);
    /* v6 = v7 without the store section (count + 2 ids of 24 bytes) */
    size_t len4 = len - (8 + 2 * 24);
    uint64_t v4 = 6;
    memcpy(blob + 8, &v4, 8);
    fx_t *b = fx_new("0", "", 1);
    bd_portfolio_t *p = bd_engine_portfolio(b->e, "acme");
    char err[256];
    cr_assert_eq(bd_checkpoint_decode(p, blob, len4, err, sizeof err), BD_OK, "%s", err);
    cr_assert_not(p->dedup_restored);
    cr_assert_eq(bd_dedup_size(p->dedup), 0);
    bd_event_t ev;
    char d[256];
    const char *line = "{\"event_id\":\"p1\",\"ts\":1767225610,\"portfolio\":\"acme\","
                       "\"channel\":\"search\",\"spend\":100,\"conversions\":2,\"revenue\":200}";
    cr_assert_eq(bd_event_decode(line, strlen(line), &ev, d, sizeof d), BD_REJ_NONE, "%s", d);
    bd_engine_remember(b->e, &ev);
    cr_assert_eq(bd_dedup_size(p->dedup), 1);
    cr_assert_eq(plain_ev(b, "p1", T0 + 10, "search", 100, 2, 200), BD_REJ_NONE);
    cr_assert_eq(bd_engine_stats(b->e)->duplicates, 1);
    cr_assert_eq(agg(b, C0, "search").events, 2, "remember applies nothing");
    /* the same blob as v7 is complete: remember is then a no-op */
    uint64_t v5 = 7;
    memcpy(blob + 8, &v5, 8);
    fx_t *c = fx_new("0", "", 1);
    bd_portfolio_t *q = bd_engine_portfolio(c->e, "acme");
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert(q->dedup_restored);
    line = "{\"event_id\":\"zz\",\"ts\":1767225610,\"portfolio\":\"acme\","
           "\"channel\":\"search\",\"spend\":1,\"conversions\":0}";
    cr_assert_eq(bd_event_decode(line, strlen(line), &ev, d, sizeof d), BD_REJ_NONE, "%s", d);
    bd_engine_remember(c->e, &ev);
    cr_assert_eq(bd_dedup_size(q->dedup), 2);
    free(blob);
    fx_free(a);
    fx_free(b);
    fx_free(c);
}

/* A blob whose store section is damaged is refused whole: the portfolio
 * keeps what it had. */
Test(rev, damaged_store_section_is_refused)
{
    fx_t *a = fx_new("0", "", 1);
    cr_assert_eq(rev_ev(a, "r1", 0, T0 + 20, "social", 50, 1, 80), BD_REJ_NONE);
    cr_assert_eq(plain_ev(a, "p1", T0 + 10, "search", 100, 2, 200), BD_REJ_NONE);
    unsigned char *blob = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(acme(a), &blob, &cap);
    size_t store = len - (8 + 24 + 44 + 24); /* where the store section starts */
    fx_t *b = fx_new("0", "", 1);
    bd_portfolio_t *p = bd_engine_portfolio(b->e, "acme");
    cr_assert_eq(plain_ev(b, "mine", T0 + 10, "search", 1, 0, 0), BD_REJ_NONE);
    char err[256];
    unsigned char *bad = malloc(len);
    struct {
        size_t at;
        unsigned char x;
        size_t len;
    } damage[] = {
        {0, 0, len - 1},                          /* cut short */
        {store, 0x04, len},                       /* count larger than the bytes */
        /* the first id (rev'd): lo 4, h2 8, ts 8, rev 4, ch 4, 5 numbers */
        {store + 8 + 4, 0x01, len},               /* h2 with its low bit cleared */
        {store + 8 + 24, 0x07, len},              /* rev'd id of channel 6 (2 saved) */
        {store + 8 + 28 + 8 * 3 + 7, 0xff, len},  /* conversions made negative */
    };
    for (size_t i = 0; i < sizeof damage / sizeof *damage; i++) {
        memcpy(bad, blob, len);
        if (damage[i].at) bad[damage[i].at] ^= damage[i].x;
        cr_assert_eq(bd_checkpoint_decode(p, bad, damage[i].len, err, sizeof err), BD_ERR_INVALID,
                     "damage %zu accepted", i);
        cr_assert_eq(bd_dedup_size(p->dedup), 1, "damage %zu", i);
    }
    cr_assert_eq(bd_checkpoint_decode(p, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(bd_dedup_size(p->dedup), 2);
    free(bad);
    free(blob);
    fx_free(a);
    fx_free(b);
}

/* Many portfolios with restatements of open and closed intervals, closing
 * on worker threads: records byte-identical for 1 and 2 threads. */
static void run_many(int threads, cap_t *out)
{
    fx_t *f = fx_new("0", "", threads);
    for (int c = 0; c < 6; c++) {
        for (int p = 0; p < 40; p++)
            for (int k = 0; k < 3; k++) {
                long long ts = T0 + c * 3600 + 60 * k + p;
                feed(f,
                     "{\"event_id\":\"e%d-%d\",\"rev\":0,\"ts\":%lld,\"portfolio\":\"pf%d\","
                     "\"channel\":\"ch%d\",\"spend\":%d,\"conversions\":%d,\"revenue\":%d}",
                     c, k, ts, p, k, 100 + p + k, 1 + (p + c) % 3, 50 * (1 + (p + c + k) % 5));
                if (c > 0) /* restate the previous interval (closed) and this one (open) */
                    feed(f,
                         "{\"event_id\":\"e%d-%d\",\"rev\":%d,\"ts\":%lld,\"portfolio\":\"pf%d\","
                         "\"channel\":\"ch%d\",\"spend\":%d,\"conversions\":%d,\"revenue\":%d}",
                         c - (k & 1), k, 1 + c, ts - (k & 1) * 3600, p, k, 100 + p + k,
                         2 + (p + c) % 4, 60 * (1 + (p + c + k) % 5));
            }
        feed(f, "{\"portfolio\":\"*\",\"watermark\":%lld}", T0 + (c + 1) * 3600LL);
        bd_engine_flush(f->e);
    }
    cr_assert_gt(bd_engine_stats(f->e)->restated, 400);
    memcpy(out, &f->cap, sizeof *out);
    fx_free(f);
}

Test(rev, records_independent_of_thread_count)
{
    static cap_t one, two;
    run_many(1, &one);
    run_many(2, &two);
    cr_assert_gt(one.n, 200);
    cr_assert_eq(one.n, two.n);
    cr_assert_str_eq(one.out, two.out);
}
