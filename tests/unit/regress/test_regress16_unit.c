/* test_regress16_unit.c: regression tests of the core defects of the
 * hardening review (guardrails, kill latch, time guard), one test per bug,
 * named for it. The live counterparts (daemon, Kafka, Redis) are in
 * tests/integration/test_regress16.c. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "budgetd/config.h"
#include "budgetd/engine.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */

static bd_config_t *load_cfg(const char *fmt, ...)
{
    char y[2048], err[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(y, sizeof(y), fmt, ap);
    va_end(ap);
    bd_config_t *cfg = NULL;
    bd_err_t rc = bd_config_load_string(y, strlen(y), "regress.yaml", &cfg, err, sizeof(err));
    cr_assert_eq(rc, BD_OK, "config: %s", err);
    return cfg;
}

static const char *BASE =
    "v: 1\ncycle: %s\nlateness: 0\nseed: 7\n%s"
    "defaults:\n  budget: 1000\n  samples: 16\n"
    "portfolios:\n  acme-us:\n    budget: 3000\n    channels:\n"
    "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n";

/* One line through the engine; the sink must not fail. */
static bd_reject_t feed(bd_engine_t *e, const char *fmt, ...)
{
    char line[512], detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    bd_err_t err;
    bd_reject_t r = bd_engine_ingest(e, line, strlen(line), detail, sizeof(detail), &err);
    cr_assert_eq(err, BD_OK);
    return r;
}

/* One event of portfolio pf at ts (channel search). */
static bd_reject_t feed_pf(bd_engine_t *e, const char *pf, long long ts)
{
    return feed(e, "{\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"search\",\"spend\":10,"
                   "\"conversions\":1,\"revenue\":20}", ts, pf);
}

static const char *EV = "{\"event_id\":\"%s\",\"ts\":%lld,\"portfolio\":\"acme-us\",\"channel\":\"search\","
                        "\"spend\":10,\"conversions\":1,\"revenue\":20}";
static const char *WM = "{\"portfolio\":\"acme-us\",\"watermark\":%lld}";

/* Issue 16 defect 5, the reproduction: a watermark sets the reference time
 * too, so a second watermark decades ahead is rejected as ts_out_of_range
 * instead of closing hundreds of thousands of empty cycles. */
Test(regress, r16_05_far_future_watermark_after_a_watermark_is_rejected, .timeout = 120)
{
    bd_config_t *cfg = load_cfg(BASE, "1d", "");
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    cr_assert_eq(feed(e, WM, 1767225600LL), BD_REJ_NONE);
    cr_assert_eq(feed(e, WM, 4102444800LL), BD_REJ_TS_OUT_OF_RANGE);
    bd_engine_flush(e);
    cr_assert_leq(bd_engine_stats(e)->decisions, 1, "%llu decisions",
                  (unsigned long long)bd_engine_stats(e)->decisions);
    cr_assert_eq(bd_engine_stats(e)->rejected[BD_REJ_TS_OUT_OF_RANGE], 1);
    /* an event after the rejected watermark is judged against the first */
    cr_assert_eq(feed(e, EV, "a", T0 + 600), BD_REJ_NONE);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* A watermark or an event moves the reference for both kinds: an event more
 * than max_ahead past a watermark is rejected as well. */
Test(regress, r16_05_event_far_past_a_watermark_is_rejected)
{
    bd_config_t *cfg = load_cfg(BASE, "1h", "");
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    cr_assert_eq(feed(e, WM, T0), BD_REJ_NONE);
    cr_assert_eq(feed(e, EV, "a", T0 + 86401), BD_REJ_TS_OUT_OF_RANGE);
    cr_assert_eq(feed(e, EV, "b", T0 + 86400), BD_REJ_NONE);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* max_ahead is configurable (CONTRACT v2 §5): one hour refuses two. */
Test(regress, r16_05_max_ahead_is_configurable)
{
    bd_config_t *cfg = load_cfg(BASE, "1h", "max_ahead: 1h\n");
    cr_assert_eq(cfg->max_ahead, 3600);
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    cr_assert_eq(feed(e, EV, "a", T0), BD_REJ_NONE);
    cr_assert_eq(feed(e, EV, "b", T0 + 7200), BD_REJ_TS_OUT_OF_RANGE);
    cr_assert_eq(feed(e, WM, T0 + 7200), BD_REJ_TS_OUT_OF_RANGE);
    cr_assert_eq(feed(e, EV, "c", T0 + 3600), BD_REJ_NONE);
    bd_engine_free(e);
    bd_config_free(cfg);
    char err[1024];
    const char *zero = "v: 1\nmax_ahead: 0\n";
    cr_assert_neq(bd_config_load_string(zero, strlen(zero), "x", &cfg, err, sizeof(err)), BD_OK);
}

/* Live (wall-clock) mode: the very first message two days ahead of the
 * clock is rejected, event or watermark, instead of moving the portfolio's
 * cycle (and the Redis fence) two days forward. */
Test(regress, r16_05_live_first_message_two_days_ahead_is_rejected)
{
    bd_config_t *cfg = load_cfg(BASE, "1h", "");
    bd_engine_opts_t o = {.threads = 1, .live = true};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    long long now = (long long)time(NULL);
    cr_assert_eq(feed(e, EV, "a", now + 2 * 86400), BD_REJ_TS_OUT_OF_RANGE);
    cr_assert_eq(feed(e, WM, now + 2 * 86400), BD_REJ_TS_OUT_OF_RANGE);
    cr_assert_null(bd_ptable_find(bd_engine_table(e), "acme-us", 7), "the portfolio was started");
    cr_assert_eq(feed(e, EV, "b", now - 60), BD_REJ_NONE);
    bd_portfolio_t *p = bd_ptable_find(bd_engine_table(e), "acme-us", 7);
    cr_assert_not_null(p);
    cr_assert_eq(p->open, (now - 60) / 3600);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* ---- checkpoint version 4 (kill latch actor and time, cycle length) ---- */

#include "budgetd/checkpoint.h"
#include "budgetd/killswitch.h"

static const char *CK_CFG =
    "v: 1\ncycle: 1h\nlateness: 0\nseed: 7\n"
    "defaults:\n  budget: 1000\n  samples: 16\n"
    "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
    "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n";

/* Reads a test data file into a malloc'd buffer. */
static void *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s (run from the repository root)", path);
    static unsigned char buf[1 << 16];
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    void *out = malloc(*len);
    memcpy(out, buf, *len);
    return out;
}

/* tests/data/checkpoint/v3-acme.ckpt was written by the version 3 encoder
 * (a portfolio after four cycles, then an operator kill "drill"): it still
 * restores, and its latch gets an actor from its reason and an unknown
 * time, so a daemon upgraded over it keeps the kill. */
Test(regress, r16_01_version_3_checkpoint_is_migrated)
{
    bd_config_t *cfg = load_cfg("%s", CK_CFG);
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_portfolio_t *p = bd_engine_portfolio(e, "acme");
    size_t len;
    void *blob = slurp("tests/data/checkpoint/v3-acme.ckpt", &len);
    char err[256];
    int64_t cl = -1;
    cr_assert_eq(bd_checkpoint_cycle_len(p, blob, len, &cl, err, sizeof(err)), BD_OK, "%s", err);
    cr_assert_eq(cl, 0, "a version 3 blob does not know its cycle length");
    cr_assert_eq(bd_checkpoint_decode(p, blob, len, err, sizeof(err)), BD_OK, "%s", err);
    cr_assert(p->killed);
    cr_assert_str_eq(p->kill_reason, "operator: drill");
    cr_assert_str_eq(p->kill_by, "operator");
    cr_assert_eq(p->kill_at, 0);
    cr_assert_eq(p->open, 490900);
    cr_assert_eq(p->alloc_cycle, 490900);
    cr_assert_eq(p->version, 7);
    cr_assert_eq(p->offset, 41);
    cr_assert_eq(p->n, 2);
    cr_assert_str_eq(p->ch[0].name, "search");
    cr_assert_float_eq(p->ch[0].x, 2082.15, 1e-9);
    cr_assert_float_eq(p->ch[1].x, 917.85, 1e-9);
    cr_assert_eq(p->hist_n, 4);
    cr_assert_eq(p->cycle_len, 3600, "the portfolio keeps the config's cycle length");
    free(blob);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* Version 4 round trip: the latch's actor and time and the cycle length. */
Test(regress, r16_01_checkpoint_keeps_latch_actor_and_time)
{
    bd_config_t *cfg = load_cfg("%s", CK_CFG);
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_portfolio_t *p = bd_engine_portfolio(e, "acme");
    cr_assert_eq(feed_pf(e, "acme", T0 + 10), BD_REJ_NONE);
    bd_engine_flush(e);
    p->killed = true;
    snprintf(p->kill_reason, sizeof(p->kill_reason), "overspend: channel 'search'");
    snprintf(p->kill_by, sizeof(p->kill_by), "engine");
    p->kill_at = T0 + 3600;
    unsigned char *buf = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(p, &buf, &cap);
    bd_engine_t *e2 = bd_engine_new(cfg, &o);
    bd_portfolio_t *q = bd_engine_portfolio(e2, "acme");
    char err[256];
    int64_t cl;
    cr_assert_eq(bd_checkpoint_cycle_len(q, buf, len, &cl, err, sizeof(err)), BD_OK, "%s", err);
    cr_assert_eq(cl, 3600);
    cr_assert_eq(bd_checkpoint_decode(q, buf, len, err, sizeof(err)), BD_OK, "%s", err);
    cr_assert(q->killed);
    cr_assert_str_eq(q->kill_by, "engine");
    cr_assert_eq(q->kill_at, T0 + 3600);
    cr_assert_str_eq(q->kill_reason, "overspend: channel 'search'");
    free(buf);
    bd_engine_free(e2);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* Time guard after a restore: a portfolio restored from its checkpoint
 * (the live path, bd_engine_restored) brings its accepted times along, so
 * its next events are judged against them, not against the older times the
 * taking-over process saw itself (it rejected a whole partition's events
 * as ts_out_of_range after a takeover). */
Test(regress, r16_05_restored_portfolio_moves_the_time_reference)
{
    bd_config_t *cfg = load_cfg("%s", CK_CFG);
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    for (long long t = T0 + 10; t <= T0 + 5 * 86400; t += 20 * 3600)
        cr_assert_eq(feed_pf(e, "acme", t), BD_REJ_NONE, "each within a day of the one before");
    bd_engine_flush(e);
    unsigned char *buf = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(bd_engine_portfolio(e, "acme"), &buf, &cap);
    /* another process that has seen only older times (beta's) */
    bd_engine_t *e2 = bd_engine_new(cfg, &o);
    cr_assert_eq(feed_pf(e2, "beta", T0 + 10), BD_REJ_NONE);
    bd_portfolio_t *q = bd_engine_portfolio(e2, "acme");
    char err[256];
    cr_assert_eq(bd_checkpoint_decode(q, buf, len, err, sizeof(err)), BD_OK, "%s", err);
    bd_engine_restored(e2, q);
    cr_assert_eq(feed_pf(e2, "acme", T0 + 5 * 86400), BD_REJ_NONE);
    free(buf);
    bd_engine_free(e2);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* Dropping a portfolio the process no longer owns (bd_engine_forget):
 * nothing it learned survives but its last owner epoch (the floor of its
 * next claim), so it can only come back through its checkpoint. */
Test(regress, r16_02_forgotten_portfolio_keeps_nothing_but_its_epoch)
{
    bd_config_t *cfg = load_cfg("%s", CK_CFG);
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    cr_assert_eq(feed_pf(e, "acme", T0 + 10), BD_REJ_NONE);
    cr_assert_eq(feed(e, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 3600), BD_REJ_NONE);
    bd_portfolio_t *p = bd_engine_portfolio(e, "acme");
    p->epoch = 7;
    p->partition = 3;
    p->offset = 99;
    p->killed = true;
    cr_assert(p->pending, "a close is queued");
    bd_engine_forget(e, p);
    cr_assert_not(p->pending);
    cr_assert_eq(p->n, 0);
    cr_assert_eq(p->open, INT64_MIN);
    cr_assert_eq(p->newest_ts, INT64_MIN);
    cr_assert_eq(p->partition, -1);
    cr_assert_eq(p->offset, -1);
    cr_assert_not(p->killed);
    cr_assert_eq(p->epoch, 7);
    cr_assert_eq(p->cycle_len, 3600);
    cr_assert_str_eq(p->name, "acme");
    /* it starts afresh on its next event */
    cr_assert_eq(feed_pf(e, "acme", T0 + 7200), BD_REJ_NONE);
    cr_assert_eq(p->n, 2);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* The kill latch's record of a kill key, and the resume rule: a recorded
 * resume clears the latch when it cleared this kill or a later one, or
 * was recorded after it; nothing else does. */
Test(regress, r16_01_resume_record_clears_only_its_latch)
{
    bd_config_t *cfg = load_cfg("%s", CK_CFG);
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_portfolio_t *p = bd_engine_portfolio(e, "acme");
    bd_killswitch_latch(p, "drill", "alice", 1000);
    cr_assert(p->killed);
    cr_assert_str_eq(p->kill_by, "alice");
    cr_assert_eq(p->kill_at, 1000);
    cr_assert_str_eq(p->kill_reason, "operator: drill");
    cr_assert_str_eq(bd_killswitch_key_reason(p), "drill", "the key gets the reason without the label");
    cr_assert(bd_killswitch_resume_clears(p, 1005, 1000), "the resume of this kill");
    cr_assert(bd_killswitch_resume_clears(p, 1005, 1003), "the resume of a later kill");
    cr_assert(bd_killswitch_resume_clears(p, 1001, 0), "recorded after the latch");
    cr_assert_not(bd_killswitch_resume_clears(p, 900, 800), "an older resume");
    cr_assert_not(bd_killswitch_resume_clears(p, 1000, 999), "recorded at the latch's second, for an older kill");
    /* an engine trip keeps its reason as is */
    bd_killswitch_operator_resume(p);
    cr_assert_not(p->killed);
    cr_assert_str_eq(p->kill_by, "");
    p->killed = true;
    snprintf(p->kill_reason, sizeof(p->kill_reason), "stale: no events for 9000s");
    snprintf(p->kill_by, sizeof(p->kill_by), "engine");
    cr_assert_str_eq(bd_killswitch_key_reason(p), "stale: no events for 9000s");
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* A trip records the engine as the actor and the decision's time. */
Test(regress, r16_01_trip_records_actor_and_time)
{
    bd_config_t *cfg = load_cfg("v: 1\ncycle: 1h\nlateness: 0\nseed: 7\n"
                                "defaults:\n  budget: 1000\n  samples: 16\n"
                                "  kill: {overspend_ratio: 1.5, roas_below: 0, stale_after: 0}\n"
                                "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
                                "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n");
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    cr_assert_eq(feed(e, "{\"ts\":%lld,\"portfolio\":\"acme\",\"channel\":\"search\",\"spend\":9000,"
                         "\"conversions\":1,\"revenue\":20}", T0 + 10), BD_REJ_NONE);
    cr_assert_eq(feed(e, "{\"portfolio\":\"acme\",\"watermark\":%lld}", T0 + 3600), BD_REJ_NONE);
    bd_engine_flush(e);
    bd_portfolio_t *p = bd_engine_portfolio(e, "acme");
    cr_assert(p->killed);
    cr_assert_str_eq(p->kill_by, "engine");
    cr_assert_eq(p->kill_at, T0 + 3600, "replay: decided_at is the cycle's end in event time");
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* ---- approvals re-verified against the config in force ---- */

#include "budgetd/decide.h"

static const char *COLLAB_CFG =
    "v: 1\ncycle: 1h\nlateness: 0\nseed: 5\n"
    "defaults:\n  budget: 1000\n  samples: 16\n  min_change: 0\n"
    "  risk: {roas_floor: 0.1, max_prob: 1}\n"
    "  kill: {roas_below: 0, overspend_ratio: 0, stale_after: 0, max_reject_ratio: 1}\n"
    "portfolios:\n  collab:\n    budget: %s\n    mode: collaborate\n    channels:\n"
    "      search: {min: 100, max: %s, initial: %s}\n      social: {min: 100}\n";

/* A proposal made under budget 10000 and search max 6000 no longer passes
 * once a reload cut them to 5000 and 2000; it passes under the config it
 * was made for. */
Test(regress, r16_03_approval_check_uses_the_config_in_force)
{
    bd_config_t *cfg = load_cfg(COLLAB_CFG, "10000", "6000", "5000");
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    for (int k = 0; k < 2; k++) {
        long long ts = T0 + 3600LL * k + 1;
        feed(e, "{\"ts\":%lld,\"portfolio\":\"collab\",\"channel\":\"search\",\"spend\":5000,"
                "\"conversions\":50,\"revenue\":25000}", ts);
        feed(e, "{\"ts\":%lld,\"portfolio\":\"collab\",\"channel\":\"social\",\"spend\":5000,"
                "\"conversions\":4,\"revenue\":2000}", ts);
        feed(e, "{\"portfolio\":\"collab\",\"watermark\":%lld}", T0 + 3600LL * (k + 1));
    }
    bd_engine_flush(e);
    bd_portfolio_t *p = bd_engine_portfolio(e, "collab");
    cr_assert(p->has_proposal);
    char err[256];
    cr_assert_eq(bd_decide_approval_check(p, err, sizeof(err)), BD_OK, "%s", err);
    bd_config_t *cut = load_cfg(COLLAB_CFG, "5000", "2000", "2000");
    cr_assert_eq(bd_engine_reload(e, cut, err, sizeof(err)), BD_OK, "%s", err);
    cr_assert_eq(bd_decide_approval_check(p, err, sizeof(err)), BD_ERR_INVALID);
    cr_assert(strstr(err, "max 2000") || strstr(err, "total 5000"), "%s", err);
    bd_engine_free(e);
    bd_config_free(cut);
    bd_config_free(cfg);
}

/* A kill key written by the engine (another daemon's trip) latches with
 * its reason as the engine wrote it; an operator's gets the operator
 * label. */
Test(regress, r16_18_engine_kill_key_keeps_the_engine_label)
{
    bd_config_t *cfg = load_cfg("%s", CK_CFG);
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    bd_portfolio_t *p = bd_engine_portfolio(e, "acme");
    bd_killswitch_latch(p, "stale: no events for 10800s (stale_after 3600s)", "engine", 77);
    cr_assert_str_eq(p->kill_reason, "stale: no events for 10800s (stale_after 3600s)");
    cr_assert_str_eq(p->kill_by, "engine");
    bd_killswitch_operator_resume(p);
    bd_killswitch_latch(p, "budget freeze", "finance", 78);
    cr_assert_str_eq(p->kill_reason, "operator: budget freeze");
    bd_engine_free(e);
    bd_config_free(cfg);
}
