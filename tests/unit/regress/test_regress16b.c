/* Regression tests for hardening defects, one test per defect and named for
 * it, at the level of the library (config loader, allocator, verifier,
 * engine). Each one failed before its fix; the command-line side of the
 * same defects is in tests/integration/test_regress16b.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "budgetd/logread.h"
#include <cjson/cJSON.h>

static char err[16384];

/* Loads text as "t.yaml": the config on success, else NULL with err set. */
static bd_config_t *load(const char *text)
{
    bd_config_t *c = NULL;
    if (bd_config_load_string(text, strlen(text), "t.yaml", &c, err, sizeof err) != BD_OK)
        return NULL;
    return c;
}

/* Asserts that text is refused with a message containing want. */
static void refused(const char *text, const char *want)
{
    bd_config_t *c = load(text);
    cr_assert_null(c, "accepted: %.200s", text);
    cr_assert(strstr(err, want), "%.80s: want '%s', got: %s", text, want, err);
}

TestSuite(regress, .timeout = 60);

/* n copies of open, then n of close (close may be NULL), then tail: a
 * malloc'd string. */
static char *nested(size_t n, const char *open, const char *close, const char *tail)
{
    size_t lo = strlen(open), lc = close ? strlen(close) : 0, lt = strlen(tail);
    char *s = malloc(n * (lo + lc) + lt + 1), *p = s;
    for (size_t i = 0; i < n; i++, p += lo) memcpy(p, open, lo);
    for (size_t i = 0; close && i < n; i++, p += lc) memcpy(p, close, lc);
    memcpy(p, tail, lt + 1);
    return s;
}

/* Defect 15: deeply nested YAML was quadratic in libyaml's scanner (40k `[`
 * took 5.4 s, 200k over a minute) before any error. Nesting beyond
 * BD_YAML_MAX_DEPTH is now refused where it happens, at once. */
Test(regress, r16_15_yaml_nesting_depth_capped)
{
    char *s = nested(40000, "[", NULL, "\n");
    refused(s, "t.yaml:1: nesting deeper than 32 levels");
    free(s);
    s = nested(200000, "[", "]", "\n");
    refused(s, "t.yaml:1: nesting deeper than 32 levels");
    free(s);
    /* block mappings count too, and the line is where the limit is passed */
    char *b = malloc(64 * 80), *p = b;
    p += sprintf(p, "defaults:\n  budget: 1\n");
    for (int d = 0; d < 40; d++) p += sprintf(p, "%*sk%d:\n", 2 * d, "", d);
    refused(b, "t.yaml:35: nesting deeper than 32 levels"); /* k31: the 33rd map */
    free(b);
    /* 32 levels are within the limit: the error is about the content */
    s = nested(31, "[", "]", "\n");
    char *t = malloc(strlen(s) + 32);
    sprintf(t, "portfolios: %s", s);
    refused(t, "t.yaml:1: portfolios: expected a mapping, got a list");
    free(s);
    free(t);
}

/* Defect 17: `check` passed `---` (an empty document) as "ok (0
 * portfolios)", read `0x10` as 16 and `!!str 1000` (a string) as a
 * number, and passed listed channel maxes summing below the budget (replay
 * then spent 200 of 1000 each cycle without a word). */
Test(regress, r16_17_check_refuses_empty_doc_non_decimal_numbers_and_unspendable_budget)
{
    refused("---\n", "t.yaml:1: empty config");
    refused("--- ~\n", "t.yaml:1: empty config");
    refused("defaults:\n  budget: 0x10\n", "t.yaml:2: defaults.budget: expected a number, got '0x10'");
    refused("defaults:\n  budget: !!str 1000\n",
            "t.yaml:2: defaults.budget: expected a number, got the tagged scalar '1000'");
    refused("defaults:\n  budget: ! 1000\n", "t.yaml:2: defaults.budget: expected a number");
    refused("defaults:\n  budget: &b !!str 10\nportfolios:\n  a: {budget: *b}\n",
            "t.yaml:2: defaults.budget: expected a number, got the tagged scalar '10'");
    refused("defaults:\n  budget: 100\n  samples: !!int 8\n",
            "t.yaml:3: defaults.samples: expected an integer, got the tagged scalar '8'");
    refused("defaults:\n  budget: 100\n  channel: {lab: !!bool true}\n",
            "t.yaml:3: defaults.channel.lab: expected true or false, got the tagged scalar");
    refused("defaults:\n  budget: 100\n  samples: 010\n",
            "t.yaml:3: defaults.samples: expected an integer, got '010'");
    refused("defaults:\n  budget: 100\n  samples: 0x10\n",
            "t.yaml:3: defaults.samples: expected an integer, got '0x10'");
    refused("seed: 0x10\ndefaults:\n  budget: 100\n", "t.yaml:1: seed: expected a non-negative integer");
    const char *odd[] = {"010", "1_000", "inf", "nan", ".5", "5.", "+.5", "1e", "0b11", "1,5", "--1"};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        char y[128];
        snprintf(y, sizeof y, "defaults:\n  budget: %s\n", odd[i]);
        refused(y, "t.yaml:2: defaults.budget: expected a number");
    }
    /* what stays a number */
    const char *ok[] = {"1000", "0.5", "1e3", "1E+3", "+7", "0", "12.25e-1"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char y[128];
        snprintf(y, sizeof y, "defaults:\n  budget: 2000\n  max_step: %s\n", ok[i]);
        bd_config_t *c = load(y);
        if (strcmp(ok[i], "0") == 0) {
            cr_assert_null(c); /* a number, out of range */
            cr_assert(strstr(err, "must be > 0"), "%s", err);
            continue;
        }
        cr_assert_not_null(c, "%s: %s", ok[i], err);
        bd_config_free(c);
    }
    /* the budget the listed channels cannot take is an error at the budget */
    refused("portfolios:\n  p:\n    budget: 1000\n    channels:\n      a: {max: 100}\n      b: {max: 100}\n",
            "t.yaml:3: portfolio 'p': channel maxes sum to 200 < budget 1000");
    /* inherited maxes count, and the line is the defaults' budget when the
     * portfolio has none of its own */
    refused("defaults:\n  budget: 500\n  channel: {max: 100}\nportfolios:\n  p:\n    channels: {a: {}, b: {}}\n",
            "t.yaml:6: portfolio 'p': channel maxes sum to 200 < budget 500");
    bd_config_t *c = load("portfolios:\n  p:\n    budget: 200\n    channels:\n      a: {max: 100}\n      b: {max: 100}\n");
    cr_assert_not_null(c, "maxes equal to the budget: %s", err);
    bd_config_free(c);
    c = load("defaults:\n  budget: 500\n  channel: {max: 100}\nportfolios:\n  p: {}\n");
    cr_assert_not_null(c, "no listed channel: channels come from events: %s", err);
    bd_config_free(c);
}

/* Replays log through an engine on cfg; returns the engine's counters. */
static bd_engine_stats_t replay_log(const bd_config_t *cfg, const char *log)
{
    bd_engine_opts_t eo = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &eo);
    bd_logread_t *lr;
    cr_assert_eq(bd_logread_open(log, &lr, err, sizeof err), BD_OK, "%s", err);
    const char *line;
    size_t len;
    char detail[256];
    int got;
    while ((got = bd_logread_next(lr, &line, &len, err, sizeof err)) == 1)
        if (len) bd_engine_ingest(e, line, len, detail, sizeof detail, NULL);
    cr_assert_eq(got, 0, "%s", err);
    bd_logread_close(lr);
    bd_engine_flush(e);
    bd_engine_stats_t st = *bd_engine_stats(e);
    bd_engine_free(e);
    return st;
}

/* Defect 10: `budget: 1e300` passed `check`, then replay spun forever in
 * the allocator's cent rounding (past 2^53 cents `+= 1` changes nothing),
 * and `budget: 1e14` was accepted although cents are no longer exact in a
 * double there. Money amounts are now at most 1e12 per cycle in the config,
 * a replay at that maximum gets no verifier refusal, and the rounding ends
 * for any finite amount (here forced past the config's check). */
Test(regress, r16_10_money_bounded_and_rounding_total)
{
    refused("defaults:\n  budget: 1e300\n", "t.yaml:2: defaults.budget must be at most 1e12");
    refused("defaults:\n  budget: 1e14\n", "t.yaml:2: defaults.budget must be at most 1e12");
    refused("defaults:\n  budget: 1000000000000.01\n", "defaults.budget must be at most 1e12");
    refused("defaults:\n  budget: 100\n  channel: {saturation: 2e12}\n",
            "t.yaml:3: defaults.channel.saturation must be at most 1e12");
    refused("defaults:\n  budget: 100\n  channel: {max: 2e12}\n",
            "t.yaml:3: defaults.channel.max must be at most 1e12");
    refused("portfolios:\n  p:\n    budget: 1e12\n    channels:\n      a: {min: 1.5e12}\n",
            "t.yaml:5: portfolios.p.channels.a.min must be at most 1e12");
    refused("portfolios:\n  p:\n    budget: 1e12\n    channels:\n      a: {initial: 3e12}\n",
            "t.yaml:5: portfolios.p.channels.a.initial must be at most 1e12");
    bd_config_t *c = load("defaults:\n  budget: 1e12\n  channel: {max: .inf, saturation: 1e12}\n");
    cr_assert_not_null(c, "%s", err);
    bd_engine_stats_t st = replay_log(c, "tests/data/golden/clean.jsonl.gz");
    cr_assert_gt(st.decisions, 1000);
    cr_assert_eq(st.verify_failures, 0, "the verifier refused %llu allocations at the maximum budget",
                 (unsigned long long)st.verify_failures);
    /* past the limit (as a config could set before): must end */
    c->defaults.budget = 1e300;
    st = replay_log(c, "tests/data/golden/clean.jsonl.gz");
    cr_assert_gt(st.decisions, 1000);
    bd_config_free(c);
}

/* The records a sink received, in order. */
typedef struct {
    char *rec[256];
    int n;
} recs_t;

static bd_err_t keep_record(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                            size_t len)
{
    (void)p;
    (void)d;
    recs_t *r = ctx;
    if (r->n < 256) r->rec[r->n++] = strndup(json, len);
    return BD_OK;
}

/* One cycle of events for portfolio p (channels a, b, c with the same
 * return) closed by a watermark, at cycle index c of 1h cycles. */
static void feed_cycle(bd_engine_t *e, int c)
{
    const long t0 = 1767225600L + 3600L * c;
    char line[512], detail[256];
    const char *chs[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        int n = snprintf(line, sizeof line,
                         "{\"event_id\":\"%d-%d\",\"ts\":%ld,\"portfolio\":\"p\",\"channel\":\"%s\","
                         "\"spend\":%d,\"conversions\":%d,\"revenue\":%d}",
                         c, i, t0 + 60, chs[i], 3000 + 500 * i, 60 + 10 * i, 9000 + 3000 * i);
        cr_assert_eq(bd_engine_ingest(e, line, (size_t)n, detail, sizeof detail, NULL), BD_REJ_NONE,
                     "%s", detail);
    }
    int n = snprintf(line, sizeof line, "{\"portfolio\":\"p\",\"watermark\":%ld}", t0 + 3600);
    bd_engine_ingest(e, line, (size_t)n, detail, sizeof detail, NULL);
    bd_engine_flush(e);
}

/* Defect 19: a budget cut by reload moves channels beyond max_step (the
 * budget must win over the ramp), but the record labelled them `bound:
 * "none"`. A channel moved past its ramp because the ramp boxes could not
 * hold the total is now labelled "budget". */
Test(regress, r16_19_budget_cut_names_bound_budget)
{
    const char *a = "cycle: 1h\ndefaults:\n  max_step: 0.1\n  min_change: 0\n  explore_share: 0\n"
                    "  risk: {max_prob: 1}\n  kill: {roas_below: 0, overspend_ratio: 0}\n"
                    "portfolios:\n  p:\n    budget: 10000\n    channels: {a: {}, b: {}, c: {}}\n";
    const char *b = "cycle: 1h\ndefaults:\n  max_step: 0.1\n  min_change: 0\n  explore_share: 0\n"
                    "  risk: {max_prob: 1}\n  kill: {roas_below: 0, overspend_ratio: 0}\n"
                    "portfolios:\n  p:\n    budget: 5000\n    channels: {a: {}, b: {}, c: {}}\n";
    bd_config_t *ca = load(a);
    cr_assert_not_null(ca, "%s", err);
    bd_config_t *cb = load(b);
    cr_assert_not_null(cb, "%s", err);
    recs_t r = {.n = 0};
    bd_engine_opts_t eo = {.threads = 1, .sink = keep_record, .sink_ctx = &r};
    bd_engine_t *e = bd_engine_new(ca, &eo);
    for (int c = 0; c < 4; c++) feed_cycle(e, c);
    int before = r.n;
    cr_assert_eq(bd_engine_reload(e, cb, err, sizeof err), BD_OK, "%s", err);
    feed_cycle(e, 4);
    cr_assert_gt(r.n, before, "no decision after the reload");
    cJSON *rec = cJSON_Parse(r.rec[r.n - 1]);
    cr_assert_not_null(rec);
    cr_assert_eq(cJSON_GetObjectItem(rec, "budget")->valuedouble, 5000);
    int budget_bound = 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItem(rec, "channels"))
    {
        double x = cJSON_GetObjectItem(ch, "spend")->valuedouble;
        double prev = cJSON_GetObjectItem(ch, "prev")->valuedouble;
        const char *bound = cJSON_GetObjectItem(ch, "bound")->valuestring;
        double step = 0.1 * prev > 50 ? 0.1 * prev : 50; /* max(max_step * prev, 1% of 5000) */
        if (x < prev - step - 0.005) {
            cr_assert_str_eq(bound, "budget", "moved %.2f -> %.2f past its ramp: %s", prev, x,
                             r.rec[r.n - 1]);
            budget_bound++;
        }
    }
    cr_assert_gt(budget_bound, 0, "the cut moved no channel past its ramp: %s", r.rec[r.n - 1]);
    cJSON_Delete(rec);
    bd_engine_free(e);
    for (int i = 0; i < r.n; i++) free(r.rec[i]);
    bd_config_free(ca);
    bd_config_free(cb);
}

/* Count of rejects under the reason called name (0 when no such reason). */
static uint64_t rejected_as(const bd_engine_t *e, const char *name)
{
    for (int r = 1; r < BD_REJ__COUNT; r++)
        if (strcmp(bd_reject_name((bd_reject_t)r), name) == 0) return bd_engine_stats(e)->rejected[r];
    return 0;
}

/* Ingests one event of portfolio p, channel ch; returns the reason name. */
static const char *ingest_one(bd_engine_t *e, const char *p, const char *ch, int k)
{
    char line[256], detail[256];
    int n = snprintf(line, sizeof line,
                     "{\"event_id\":\"e%d\",\"ts\":1767225660,\"portfolio\":\"%s\",\"channel\":\"%s\","
                     "\"spend\":10,\"conversions\":1,\"revenue\":20}",
                     k, p, ch);
    return bd_reject_name(bd_engine_ingest(e, line, (size_t)n, detail, sizeof detail, NULL));
}

/* Defect 14: with defaults.budget set, every new portfolio id got a budget
 * and memory (10^6 ids: 3.4 GB). `max_portfolios` (top level, listed
 * portfolios counted and always admitted) and `max_channels` (per
 * portfolio, listed channels counted and always admitted) now cap them;
 * the excess is rejected as too_many_portfolios / too_many_channels, which
 * the per-reason reject counter (replay summary, /metrics) shows. */
Test(regress, r16_14_max_portfolios_and_max_channels)
{
    bd_config_t *c = load("max_portfolios: 3\ndefaults:\n  budget: 100\n  max_channels: 3\n"
                          "portfolios:\n  listed:\n    budget: 100\n    channels: {a: {}, b: {}}\n");
    cr_assert_not_null(c, "%s", err);
    bd_engine_opts_t eo = {.threads = 1};
    bd_engine_t *e = bd_engine_new(c, &eo);
    int k = 0;
    cr_assert_str_eq(ingest_one(e, "u1", "x", k++), "none");
    cr_assert_str_eq(ingest_one(e, "u2", "x", k++), "none");
    for (int i = 3; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof name, "u%d", i);
        cr_assert_str_eq(ingest_one(e, name, "x", k++), "too_many_portfolios");
    }
    char wm[] = "{\"portfolio\":\"u99\",\"watermark\":1767229200}", detail[256];
    cr_assert_str_eq(bd_reject_name(bd_engine_ingest(e, wm, strlen(wm), detail, sizeof detail, NULL)),
                     "too_many_portfolios");
    cr_assert_str_eq(ingest_one(e, "u1", "y", k++), "none", "a held portfolio still takes events");
    cr_assert_str_eq(ingest_one(e, "listed", "a", k++), "none", "a listed portfolio is admitted");
    cr_assert_eq(rejected_as(e, "too_many_portfolios"), 48);
    cr_assert_eq(bd_ptable_count(bd_engine_table(e)), 3);

    /* channels: listed a, b count; one more is room, the next is refused */
    cr_assert_str_eq(ingest_one(e, "listed", "c", k++), "none");
    cr_assert_str_eq(ingest_one(e, "listed", "d", k++), "too_many_channels");
    cr_assert_str_eq(ingest_one(e, "listed", "b", k++), "none", "a listed channel is admitted");
    cr_assert_str_eq(ingest_one(e, "u1", "z", k++), "none"); /* x, y, z */
    cr_assert_str_eq(ingest_one(e, "u1", "w", k++), "too_many_channels");
    cr_assert_eq(rejected_as(e, "too_many_channels"), 2);
    bd_engine_free(e);
    bd_config_free(c);

    /* check: listed portfolios and channels beyond the caps are config errors */
    refused("max_portfolios: 1\nportfolios:\n  a: {budget: 1}\n  b: {budget: 1}\n",
            "t.yaml:2: portfolios: 2 listed, more than max_portfolios 1");
    refused("defaults:\n  max_channels: 1\nportfolios:\n  a:\n    budget: 1\n    channels: {x: {}, y: {}}\n",
            "t.yaml:6: portfolio 'a': 2 channels listed, more than max_channels 1");
    refused("max_portfolios: 0\ndefaults: {budget: 1}\n", "max_portfolios must be in 1..10000000");
}
