/* Cycle closing in event time (docs/CONTRACT.md §2): first sight, watermarks,
 * lateness, late events, out-of-order input, dedup, and thread-count
 * independence of the output. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "fixtures.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */

typedef struct {
    char out[1 << 16];
    size_t len;
    int n;
    int64_t cycles[256];
    char paths[256][16];
    uint64_t events[256], late[256], rejected[256];
} cap_t;

static bd_err_t cap_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                         size_t len)
{
    (void)p;
    cap_t *c = ctx;
    if (c->n < 256) {
        c->cycles[c->n] = d->cycle;
        snprintf(c->paths[c->n], sizeof(c->paths[0]), "%s", bd_path_name(d->path));
        c->events[c->n] = d->events;
        c->late[c->n] = d->late;
        c->rejected[c->n] = d->rejected;
    }
    c->n++;
    if (c->len + len + 2 < sizeof(c->out)) {
        memcpy(c->out + c->len, json, len);
        c->len += len;
        c->out[c->len++] = '\n';
        c->out[c->len] = '\0';
    }
    return BD_OK;
}

static const char *CFG =
    "v: 1\ncycle: 1h\nlateness: %s\nseed: 7\n"
    "defaults:\n  budget: 1000\n  samples: 16\n"
    "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
    "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n";

/* CFG with the given lateness. */
static bd_config_t *load(const char *lateness)
{
    char y[1024], err[4096];
    snprintf(y, sizeof(y), CFG, lateness);
    bd_config_t *cfg = bd_test_config(y, err, sizeof(err));
    cr_assert_not_null(cfg, "config: %s", err);
    return cfg;
}

static const char *EV = "{\"event_id\":\"%s\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                        "\"spend\":%g,\"conversions\":%g,\"revenue\":%g}";

Test(cycle, first_event_publishes_initial_split_for_its_cycle)
{
    bd_config_t *cfg = load("0");
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    cr_assert_eq(bd_test_ingestf(e, EV, "a", T0 + 7200 + 5, "acme", "search", 10.0, 1.0, 20.0), BD_REJ_NONE);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 1);
    cr_assert_eq(cap.cycles[0], T0 / 3600 + 2);
    cr_assert_str_eq(cap.paths[0], "initial");
    /* search has initial 1500, social takes the rest of 3000 */
    cr_assert(strstr(cap.out, "{\"channel\":\"search\",\"spend\":1500.00"), "%s", cap.out);
    cr_assert(strstr(cap.out, "{\"channel\":\"social\",\"spend\":1500.00"), "%s", cap.out);
    bd_engine_free(e);
    bd_config_free(cfg);
}

Test(cycle, watermark_closes_cycle_and_counts_its_events)
{
    bd_config_t *cfg = load("0");
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_test_ingestf(e, EV, "a", T0 + 10, "acme", "search", 100.0, 2.0, 300.0);
    bd_test_ingestf(e, EV, "b", T0 + 20, "acme", "social", 100.0, 1.0, 100.0);
    bd_test_ingestf(e, EV, "c", T0 + 5, "acme", "social", 50.0, 0.0, 0.0); /* out of order, same cycle */
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 1);
    /* a watermark below the cycle end closes nothing */
    bd_test_ingestf(e, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 3599);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 1);
    bd_test_ingestf(e, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 3600);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 2);
    cr_assert_eq(cap.cycles[1], T0 / 3600 + 1);
    cr_assert_eq(cap.events[1], 3);
    /* a watermark two cycles on closes both, in order */
    bd_test_ingestf(e, "{\"portfolio\":\"*\",\"watermark\":%lld}", T0 + 3 * 3600);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 4);
    cr_assert_eq(cap.cycles[2], T0 / 3600 + 2);
    cr_assert_eq(cap.cycles[3], T0 / 3600 + 3);
    cr_assert_eq(cap.events[3], 0);
    bd_engine_free(e);
    bd_config_free(cfg);
}

Test(cycle, newest_ts_minus_lateness_closes)
{
    bd_config_t *cfg = load("10m");
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_test_ingestf(e, EV, "a", T0 + 10, "acme", "search", 100.0, 2.0, 300.0);
    /* next cycle's event within lateness: cycle T0 stays open */
    bd_test_ingestf(e, EV, "b", T0 + 3600 + 599, "acme", "search", 100.0, 2.0, 300.0);
    bd_test_ingestf(e, EV, "c", T0 + 3000, "acme", "social", 100.0, 2.0, 300.0); /* still on time */
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 1);
    bd_test_ingestf(e, EV, "d", T0 + 3600 + 600, "acme", "search", 1.0, 0.0, 0.0);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 2);
    cr_assert_eq(cap.events[1], 2, "events of the closed cycle: %llu", (unsigned long long)cap.events[1]);
    /* now an event for the closed cycle is late: counted, no new decision */
    cr_assert_eq(bd_test_ingestf(e, EV, "e", T0 + 100, "acme", "social", 1.0, 0.0, 0.0), BD_REJ_NONE);
    cr_assert_eq(bd_engine_stats(e)->late, 1);
    bd_test_ingestf(e, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 7200);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 3);
    cr_assert_eq(cap.late[2], 1);
    cr_assert_eq(cap.events[2], 2); /* b and d */
    bd_engine_free(e);
    bd_config_free(cfg);
}

Test(cycle, rejects_change_no_state)
{
    bd_config_t *cfg = load("0");
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_test_ingestf(e, EV, "a", T0 + 10, "acme", "search", 100.0, 2.0, 300.0);
    /* more than a day past the newest ts */
    cr_assert_eq(bd_test_ingestf(e, EV, "b", T0 + 10 + 86401, "acme", "search", 1.0, 0.0, 0.0),
                 BD_REJ_TS_OUT_OF_RANGE);
    cr_assert_eq(bd_test_ingestf(e, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 10 + 86401),
                 BD_REJ_TS_OUT_OF_RANGE);
    /* exactly a day is fine */
    cr_assert_eq(bd_test_ingestf(e, EV, "c", T0 + 10 + 86400, "other", "x", 1.0, 0.0, 0.0), BD_REJ_NONE);
    cr_assert_eq(bd_test_ingestf(e, "{\"ts\":%lld,\"portfolio\":\"acme\",\"channel\":\"search\",\"spend\":-1,"
                         "\"conversions\":0}", T0 + 20), BD_REJ_NEGATIVE_VALUE);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 2); /* acme initial, other initial: nothing closed */
    cr_assert_eq(bd_engine_stats(e)->rejected[BD_REJ_TS_OUT_OF_RANGE], 2);
    cr_assert_eq(bd_engine_stats(e)->rejected[BD_REJ_NEGATIVE_VALUE], 1);
    /* acme is what its one accepted event made it (the reject counters
     * aside): clock, watermark, open cycle and aggregates untouched */
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(e), "acme", 4);
    cr_assert_not_null(p);
    cr_assert_eq(p->newest_ts, T0 + 10);
    cr_assert_eq(p->watermark, INT64_MIN);
    cr_assert_eq(p->open, T0 / 3600);
    size_t si = 0;
    while (si < p->n && strcmp(p->ch[si].name, "search") != 0) si++;
    cr_assert_lt(si, p->n);
    const bd_agg_t *a = &bd_portfolio_slot(p, T0 / 3600)[si];
    cr_assert(a->spend == 100 && a->events == 1, "search: spend %g in %u events", a->spend, a->events);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* An engine on cfg, one thread, its records captured into cap. */
static bd_engine_t *engine_on(const bd_config_t *cfg, cap_t *cap)
{
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = cap};
    return bd_engine_new(cfg, &o);
}

/* Regression r22_23 (engine side): a first event, then a second, at a ts
 * within a cycle of int64's top made (open + 1) * cycle wrap negative and
 * engine_close_until close cycles without end (the test timed out). Now
 * such times are ts_out_of_range and change nothing; a watermark too. */
Test(cycle, r22_23_a_time_near_int64_top_changes_nothing, .timeout = 20)
{
    bd_config_t *cfg = load("0");
    cap_t cap = {0};
    bd_engine_t *e = engine_on(cfg, &cap);
    for (int i = 0; i < 2; i++)
        bd_test_ingestf(e, EV, i ? "b" : "a", 9223372036854774784LL, "acme", "search", 1.0, 0.0, 0.0);
    bd_test_ingestf(e, "{\"portfolio\":\"other\",\"watermark\":%lld}", 9223372036854774784LL);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 0, "%d decisions", cap.n);
    cr_assert_eq(bd_engine_stats(e)->rejected[BD_REJ_TS_OUT_OF_RANGE], 3);
    cr_assert_null(bd_ptable_find(bd_engine_table(e), "acme", 4));
    /* the log goes on as if they were never there */
    cr_assert_eq(bd_test_ingestf(e, EV, "c", T0 + 10, "acme", "search", 1.0, 0.0, 0.0), BD_REJ_NONE);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 1);
    cr_assert_eq(cap.cycles[0], T0 / 3600);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* Regression r22_25: engine_close_until tested (open + 1) * cycle <= t,
 * which wraps for an open cycle near int64's top / cycle (a state no
 * decoder lets in since r22_24, kept safe here on its own): with open =
 * 2^63 / 3600 the product wrapped to just above INT64_MIN and the next
 * event closed cycles without end (timed out). The test compares cycle
 * numbers now: the event is late, nothing closes. */
Test(cycle, r22_25_the_close_test_does_not_overflow, .timeout = 20)
{
    bd_config_t *cfg = load("0");
    cap_t cap = {0};
    bd_engine_t *e = engine_on(cfg, &cap);
    cr_assert_eq(bd_test_ingestf(e, EV, "a", T0 + 10, "acme", "search", 1.0, 0.0, 0.0), BD_REJ_NONE);
    bd_engine_flush(e);
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(e), "acme", 4);
    cr_assert_not_null(p);
    p->open = (int64_t)(((uint64_t)1 << 63) / 3600);
    cr_assert_eq(bd_test_ingestf(e, EV, "b", T0 + 3610, "acme", "search", 1.0, 0.0, 0.0), BD_REJ_NONE);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 1, "%d decisions", cap.n);
    cr_assert_eq(bd_engine_stats(e)->late, 1);
    bd_engine_free(e);
    bd_config_free(cfg);
}

Test(cycle, unknown_portfolio_without_default_budget)
{
    const char *y = "v: 1\ncycle: 1h\ndefaults:\n  samples: 8\nportfolios:\n  acme:\n    budget: 100\n";
    char err[1024];
    bd_config_t *cfg;
    cr_assert_eq(bd_config_load_string(y, strlen(y), "t.yaml", &cfg, err, sizeof(err)), BD_OK, "%s", err);
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    cr_assert_eq(bd_test_ingestf(e, EV, "a", T0, "nobody", "search", 1.0, 0.0, 0.0), BD_REJ_UNKNOWN_PORTFOLIO);
    cr_assert_eq(bd_test_ingestf(e, "{\"portfolio\":\"nobody\",\"watermark\":%lld}", T0), BD_REJ_UNKNOWN_PORTFOLIO);
    cr_assert_eq(bd_test_ingestf(e, EV, "b", T0, "acme", "search", 1.0, 0.0, 0.0), BD_REJ_NONE);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 1);
    cr_assert_eq(bd_ptable_count(bd_engine_table(e)), 1);
    bd_engine_free(e);
    bd_config_free(cfg);
}

Test(cycle, duplicate_event_id_counted_once)
{
    bd_config_t *cfg = load("0");
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_test_ingestf(e, EV, "dup", T0 + 10, "acme", "search", 100.0, 2.0, 300.0);
    bd_test_ingestf(e, EV, "dup", T0 + 10, "acme", "search", 100.0, 2.0, 300.0);
    bd_test_ingestf(e, EV, "other", T0 + 10, "acme", "search", 100.0, 2.0, 300.0);
    bd_test_ingestf(e, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 3600);
    bd_engine_flush(e);
    cr_assert_eq(bd_engine_stats(e)->duplicates, 1);
    cr_assert_eq(cap.events[1], 2);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* Many portfolios closing together run on worker threads; the records must
 * be byte-identical to a single-threaded run. */
static void run_many(int threads, cap_t *cap)
{
    bd_config_t *cfg = load("0");
    bd_engine_opts_t o = {.threads = threads, .sink = cap_sink, .sink_ctx = cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    char pf[32], id[32], id2[32];
    for (int c = 0; c < 4; c++) {
        for (int p = 0; p < 40; p++) {
            snprintf(pf, sizeof(pf), "p%02d", p);
            snprintf(id, sizeof(id), "a%d-%d", c, p);
            snprintf(id2, sizeof(id2), "b%d-%d", c, p);
            bd_test_ingestf(e, EV, id, T0 + c * 3600 + p, pf, "a", 100.0 + p, (double)(p % 7), 50.0 * (p % 5));
            bd_test_ingestf(e, EV, id2, T0 + c * 3600 + p, pf, "b", 80.0, (double)(p % 3), 30.0 * (p % 4));
        }
        bd_test_ingestf(e, "{\"portfolio\":\"*\",\"watermark\":%lld}", T0 + (c + 1) * 3600);
    }
    bd_engine_flush(e);
    bd_engine_free(e);
    bd_config_free(cfg);
}

Test(cycle, output_independent_of_thread_count)
{
    static cap_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    run_many(1, &a);
    run_many(4, &b);
    cr_assert_eq(a.n, 40 * 5);
    cr_assert_eq(a.n, b.n);
    cr_assert_eq(a.len, b.len);
    cr_assert(memcmp(a.out, b.out, a.len) == 0);
}

/* Live mode closes a quiet portfolio's cycle when the wall clock passes its
 * end plus lateness (the clock is passed in, so the test controls it). */
Test(cycle, wall_clock_closes_quiet_portfolio)
{
    bd_config_t *cfg = load("10m");
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .live = true, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_test_ingestf(e, EV, "a", T0 + 10, "acme", "search", 100.0, 2.0, 300.0);
    cr_assert_eq(bd_engine_tick(e, T0 + 3600 + 599), BD_OK);
    cr_assert_eq(cap.n, 1); /* only the initial split */
    cr_assert_eq(bd_engine_tick(e, T0 + 3600 + 600), BD_OK);
    cr_assert_eq(cap.n, 2);
    cr_assert_eq(cap.cycles[1], T0 / 3600 + 1);
    cr_assert_eq(cap.events[1], 1);
    /* two more hours of silence: two more closes */
    cr_assert_eq(bd_engine_tick(e, T0 + 3 * 3600 + 600), BD_OK);
    cr_assert_eq(cap.n, 4);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* Lines of portfolio pf that fail to decode, one per reason with a hint
 * (bad_json has none), at time ts; *n counts them. */
static void malformed(bd_engine_t *e, const char *pf, long long ts, int *n)
{
    cr_assert_eq(bd_test_ingestf(e, "{\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"search\",\"spend\":-1,"
                         "\"conversions\":0}", ts, pf), BD_REJ_NEGATIVE_VALUE);
    cr_assert_eq(bd_test_ingestf(e, "{\"ts\":%lld,\"portfolio\":\"%s\",\"spend\":1,\"conversions\":0}", ts, pf),
                 BD_REJ_MISSING_FIELD);
    cr_assert_eq(bd_test_ingestf(e, "{\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"search\",\"spend\":\"x\","
                         "\"conversions\":0}", ts, pf), BD_REJ_BAD_TYPE);
    *n += 3;
}

/* Regression r22_01: a rejected line names a portfolio only as a hint. A
 * log whose only lines for "ghost" (unlisted; defaults.budget would admit
 * it) are malformed, or a day past the newest time: ghost gets no decision
 * and no place in the table; the lines are counted per reason (replay's
 * summary, the live path's dead letters) and against no other portfolio.
 * (The replay path only looked the hint up before too; the live path
 * created and claimed ghost: tests/integration/test_live.c r22_03.) */
Test(cycle, r22_01_rejected_lines_of_an_unheld_portfolio_create_nothing)
{
    bd_config_t *cfg = load("0");
    cr_assert(cfg->has_default_budget);
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    int bad = 0;
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(bd_test_ingestf(e, EV, k == 0 ? "a" : k == 1 ? "b" : "c", T0 + 3600LL * k + 10, "acme",
                                     "search", 100.0, 2.0, 300.0),
                     BD_REJ_NONE);
        malformed(e, "ghost", T0 + 3600LL * k + 20, &bad);
        cr_assert_eq(bd_test_ingestf(e, EV, "g", T0 + 3600LL * k + 10 + 86401, "ghost", "search", 1.0, 0.0, 0.0),
                     BD_REJ_TS_OUT_OF_RANGE);
        bd_test_ingestf(e, "{\"portfolio\":\"*\",\"watermark\":%lld}", T0 + 3600LL * (k + 1));
    }
    bd_engine_flush(e);
    cr_assert_eq(bd_ptable_count(bd_engine_table(e)), 1);
    cr_assert_null(bd_ptable_find(bd_engine_table(e), "ghost", 5));
    cr_assert_null(strstr(cap.out, "ghost"), "%s", cap.out);
    cr_assert_eq(cap.n, 4); /* acme: initial, then cycles 1..3 */
    for (int i = 0; i < cap.n; i++) cr_assert_eq(cap.rejected[i], 0, "record %d counts ghost's rejects", i);
    const bd_engine_stats_t *st = bd_engine_stats(e);
    cr_assert_eq(st->rejected[BD_REJ_NEGATIVE_VALUE] + st->rejected[BD_REJ_MISSING_FIELD] +
                 st->rejected[BD_REJ_BAD_TYPE], (uint64_t)bad);
    cr_assert_eq(st->rejected[BD_REJ_BAD_TYPE], 3);
    cr_assert_eq(st->rejected[BD_REJ_TS_OUT_OF_RANGE], 3);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* Regression r22_02: malformed lines naming a listed portfolio count in its
 * next decision (its kill-switch reject ratio) once it is held, as before;
 * before its first valid line they are counted per reason only and do not
 * create it (the replay path's behaviour before too, now the live one's). */
Test(cycle, r22_02_listed_portfolio_counts_rejects_once_held)
{
    bd_config_t *cfg = load("0");
    cap_t cap = {0};
    bd_engine_opts_t o = {.threads = 1, .sink = cap_sink, .sink_ctx = &cap};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    int early = 0, held = 0;
    malformed(e, "acme", T0 + 5, &early);
    cr_assert_eq(bd_ptable_count(bd_engine_table(e)), 0);
    cr_assert_eq(bd_test_ingestf(e, EV, "a", T0 + 10, "acme", "search", 100.0, 2.0, 300.0), BD_REJ_NONE);
    for (int i = 0; i < 4; i++) malformed(e, "acme", T0 + 20, &held);
    bd_test_ingestf(e, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 3600);
    bd_engine_flush(e);
    cr_assert_eq(cap.n, 2);
    cr_assert_eq(cap.events[1], 1);
    cr_assert_eq(cap.rejected[1], (uint64_t)held); /* 12 of 13 seen: past the default 0.2 */
    cr_assert(strstr(cap.out, "\"status\":\"killed\""), "no reject-ratio trip: %s", cap.out);
    cr_assert(strstr(cap.out, "rejects: 12 of 13 events rejected"), "%s", cap.out);
    const bd_engine_stats_t *st = bd_engine_stats(e);
    cr_assert_eq(st->rejected[BD_REJ_NEGATIVE_VALUE] + st->rejected[BD_REJ_MISSING_FIELD] +
                 st->rejected[BD_REJ_BAD_TYPE], (uint64_t)(early + held));
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* Regression r22_04: bd_engine_screen, what the live path asks before it
 * claims a portfolio for a decoded event: a live engine refuses a time more
 * than max_ahead past the wall clock whatever any portfolio holds; an
 * event-time engine screens nothing (its reference is the newest accepted
 * time, which restoring the portfolio may still move). Counts nothing. */
Test(cycle, r22_04_screen_refuses_only_what_no_restore_changes)
{
    bd_config_t *cfg = load("0");
    bd_engine_opts_t live = {.threads = 1, .live = true}, replay = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &live), *r = bd_engine_new(cfg, &replay);
    bd_event_t ev;
    char line[512], detail[256];
    long long now = (long long)time(NULL);
    int n = snprintf(line, sizeof line, EV, "f", now + 2 * 86400, "ghost", "search", 1.0, 0.0, 0.0);
    cr_assert_eq(bd_event_decode(line, (size_t)n, &ev, detail, sizeof detail), BD_REJ_NONE);
    cr_assert_eq(bd_engine_screen(e, &ev, detail, sizeof detail), BD_REJ_TS_OUT_OF_RANGE);
    cr_assert(strstr(detail, "the wall clock"), "%s", detail);
    cr_assert_eq(bd_engine_screen(r, &ev, detail, sizeof detail), BD_REJ_NONE);
    ev.ts = now + 3600;
    cr_assert_eq(bd_engine_screen(e, &ev, detail, sizeof detail), BD_REJ_NONE);
    cr_assert_eq(bd_engine_stats(e)->rejected[BD_REJ_TS_OUT_OF_RANGE], 0);
    cr_assert_eq(bd_ptable_count(bd_engine_table(e)), 0);
    bd_engine_free(e);
    bd_engine_free(r);
    bd_config_free(cfg);
}
