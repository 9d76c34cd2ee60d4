/* test_checkpoint_values.c: checkpoint.c refuses what no engine writes,
 * and checks every count before allocating for it: one regression per gap
 * the hardening closed, each named for its bug (each failed or crashed on
 * the checkpoint.c before it). The blobs are edited copies of the fixture's
 * (checkpoint_fixture.h); a state layout is read from the headers that own
 * it (models/model_internal.h for poisson_sat). */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "checkpoint_fixture.h"
#include "models/model_internal.h"

TestSuite(checkpoint, .init = setup, .fini = teardown);

/* ---- regressions: one per gap the hardening closed ------------------------- */

/* A copy of blob with the 8 bytes of a double at `at` replaced by v. */
/* Bug: the decoder allocated the open aggregates (channels x slots) before
 * it checked either count against the bytes left, so a blob of 1 MiB
 * announcing 20000 slots and 4096 channels made it allocate 3.9 GB (and
 * 100000 x 100000, its old limits, 480 GB: an abort). Now each count is
 * checked against the bytes left, and the channels against max_channels'
 * upper bound (4096), before anything is allocated for them. */
Test(checkpoint, counts_are_checked_before_allocating)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t nslots = 16 + 8 + 4 + 8 + 8, ev0 = find_u64(blob, len, V_SLOT_EVENTS0);
    const uint64_t slots = 20000, chans[] = {4096, 4097, 100000};
    size_t big = ev0 + slots * 8 + 8 + ((size_t)1 << 20);
    unsigned char *c = calloc(1, big);
    memcpy(c, blob, len);
    memcpy(c + nslots, &slots, 8);
    for (size_t i = 0; i < sizeof chans / sizeof *chans; i++) {
        memcpy(c + ev0 + slots * 8, &chans[i], 8);
        refused(q, c, big, "20000 slots and a channel count the blob cannot hold");
    }
    free(c);
    /* a kill window announcing more entries than bytes are left */
    size_t win = find_u64(blob, len, (uint64_t)V_PROPOSAL_CYCLE) + 8;
    c = with_u64(blob, len, win, 99999);
    refused(q, c, len, "kill window of 99999 entries in a blob of a few KB");
    free(c);
    free(blob);
}

/* Bug: a kill window above 100000 (kill.window allows up to 1000000) was
 * refused as corrupt, so such a portfolio lost its state at every restart. */
Test(checkpoint, a_kill_window_above_100000_is_restored)
{
    char err[2048];
    const char *y = "v: 1\ncycle: 1h\ndefaults:\n  budget: 1000\n  kill: {window: 200000}\n"
                    "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
                    "      search: {min: 100, initial: 1500, saturation: 2000}\n      social: {min: 100}\n";
    bd_config_t *cfg2 = bd_test_config(y, err, sizeof err);
    cr_assert_not_null(cfg2, "%s", err);
    bd_ptable_t *t1 = bd_ptable_new(), *t2 = bd_ptable_new();
    bd_portfolio_t *p = rich(t1, cfg2, NSLOTS, 0);
    p->hist[199999] = (bd_cycle_hist_t){12.5, 40.25};
    size_t len;
    unsigned char *blob = encode(p, &len);
    bd_portfolio_t *q = fresh(t2, cfg2, NSLOTS);
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(q->hist_n, p->hist_n);
    cr_assert_eq(q->hist[199999].value, 40.25);
    free(blob);
    bd_ptable_free(t1);
    bd_ptable_free(t2);
    bd_config_free(cfg2);
}

/* Bug: the partition was read as 8 bytes and cast to 32 bits, so 2^32 + 3
 * restored as partition 3; an offset below -1 (none) was restored too. */
Test(checkpoint, partition_outside_int32_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t off = find_u64(blob, len, 123456), part = off + 8;
    cr_assert_eq(get_u64(blob, part), 3);
    const uint64_t bad[] = {((uint64_t)1 << 32) + 3, (uint64_t)INT32_MAX + 1, (uint64_t)-2};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char *c = with_u64(blob, len, part, bad[i]);
        refused(q, c, len, "partition");
        free(c);
    }
    unsigned char *c = with_u64(blob, len, off, (uint64_t)-7);
    refused(q, c, len, "offset -7");
    free(c);
    free(blob);
}

/* Bug: a model kind no engine knows (99) was read as "another kind than
 * configured" and the channel restarted from its prior; a kill time before
 * 1970 was kept. Both are corrupt blobs. */
Test(checkpoint, unknown_model_kind_or_negative_kill_time_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t model = 16 + 8 + 4 + 8;
    cr_assert_eq(get_u64(blob, model), BD_MODEL_POISSON_SAT);
    unsigned char *c = with_u64(blob, len, model, 99);
    refused(q, c, len, "model kind 99");
    free(c);
    size_t by = find_text(blob, len, V_KILL_REASON) + strlen(V_KILL_REASON); /* kill_by: length, bytes */
    size_t kill_at = by + 8 + (size_t)get_u64(blob, by);
    cr_assert_leq(get_u64(blob, by), 63);
    c = with_u64(blob, len, kill_at, (uint64_t)-5);
    refused(q, c, len, "kill_at -5");
    free(c);
    free(blob);
}

/* Bug: the model state was restored as bytes, so a NaN, infinite or
 * negative posterior parameter (a Gamma shape or rate, a grid point) or a
 * grid size past the grid was restored and decided on (NaN draws). Now
 * the model says whether a state is possible (model.h valid). */
Test(checkpoint, impossible_posterior_is_refused)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = rich(t, g_cfg, NSLOTS, 0);
    size_t len;
    unsigned char *blob = encode(p, &len);
    const unsigned char *m = memmem(blob, len, &p->ch[1].model, sizeof p->ch[1].model);
    cr_assert_not_null(m);
    size_t st = (size_t)(m - blob);
    bd_portfolio_t *q = target();
    const struct {
        size_t off;
        double v;
        const char *what;
    } bad[] = {{offsetof(bd_psat_state_t, alpha), NAN, "alpha NaN"},
               {offsetof(bd_psat_state_t, beta) + 8, -1, "beta negative"},
               {offsetof(bd_psat_state_t, k) + 16, INFINITY, "k infinite"},
               {offsetof(bd_psat_state_t, vshape), 0, "value shape 0"},
               {offsetof(bd_psat_state_t, w) + 8, NAN, "weight NaN"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char *c = with_f64(blob, len, st + bad[i].off, bad[i].v);
        refused(q, c, len, bad[i].what);
        free(c);
    }
    unsigned char *c = malloc(len);
    memcpy(c, blob, len);
    uint32_t n = BD_PSAT_KMAX + 1;
    memcpy(c + st + offsetof(bd_psat_state_t, n), &n, 4);
    refused(q, c, len, "grid of 8 points");
    free(c);
    free(blob);
    bd_ptable_free(t);
}

/* Bug: the seasonal profile, lag statistics, delivery and fault state were
 * restored as bytes: a NaN factor, a negative pending spend, an infinite
 * log cap variance or a fault kind past the last one was kept. */
Test(checkpoint, impossible_time_structure_delivery_or_fault_state_is_refused)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = rich(t, g_cfg, NSLOTS, 0);
    p->ch[1].fault.hold = 321.5; /* makes the fault state unique in the blob */
    p->ch[1].dlv.mu = 5.25;
    size_t len;
    unsigned char *blob = encode(p, &len);
    const bd_channel_t *ch = &p->ch[1];
    const unsigned char *m = memmem(blob, len, &ch->model, sizeof ch->model);
    cr_assert_not_null(m);
    size_t season = (size_t)(m - blob) + sizeof ch->model, lag = season + sizeof ch->season;
    size_t dlv = lag + sizeof ch->lag, fault = dlv + sizeof ch->dlv;
    cr_assert(memcmp(blob + dlv, &ch->dlv, sizeof ch->dlv) == 0);
    cr_assert(memcmp(blob + fault, &ch->fault, sizeof ch->fault) == 0);
    bd_portfolio_t *q = target();
    const struct {
        size_t at;
        float v;
        const char *what;
    } fl[] = {{season + offsetof(bd_season_t, o) + 4 * 5, NAN, "season o[5] NaN"},
              {season + offsetof(bd_season_t, disp), 0, "season dispersion 0"},
              {lag + offsetof(bd_lag_t, x) + 4 * 2, -3, "lag pending spend negative"},
              {lag + offsetof(bd_lag_t, n), INFINITY, "lag units infinite"}};
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
        unsigned char *c = malloc(len);
        memcpy(c, blob, len);
        memcpy(c + fl[i].at, &fl[i].v, 4);
        refused(q, c, len, fl[i].what);
        free(c);
    }
    const struct {
        size_t at;
        double v;
        const char *what;
    } db[] = {{dlv + offsetof(bd_delivery_t, mu), NAN, "delivery mu NaN"},
              {dlv + offsetof(bd_delivery_t, s2), INFINITY, "delivery s2 infinite"},
              {dlv + offsetof(bd_delivery_t, ratio), -0.5, "delivery ratio negative"},
              {fault + offsetof(bd_fault_t, hold), NAN, "fault hold NaN"},
              {fault + offsetof(bd_fault_t, seen), 1.5, "fault seen share 1.5"}};
    for (size_t i = 0; i < sizeof db / sizeof *db; i++) {
        unsigned char *c = with_f64(blob, len, db[i].at, db[i].v);
        refused(q, c, len, db[i].what);
        free(c);
    }
    unsigned char *c = malloc(len);
    memcpy(c, blob, len);
    uint32_t kind = BD_FAULT__COUNT;
    memcpy(c + fault + offsetof(bd_fault_t, kind), &kind, 4);
    refused(q, c, len, "fault kind past the last");
    free(c);
    free(blob);
    bd_ptable_free(t);
}

/* Bug: the open cycles' aggregates and the queued late reports were
 * restored as bytes: a NaN or negative spend in an open aggregate (which
 * the engine keeps >= 0), a NaN in a late report (which may be negative:
 * a restatement) or a late report of age 0 was kept. An open aggregate may
 * be +inf (an overflowed sum) and still restores. */
Test(checkpoint, impossible_open_aggregates_or_late_reports_are_refused)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = rich(t, g_cfg, NSLOTS, 0);
    bd_agg_t d = {.spend = -12.375, .conversions = -1.5, .revenue = 77.125, .events = 1};
    p->open = 490000;
    bd_portfolio_late(p, 1, 489990, &d);
    bd_portfolio_slot(p, 1)[1].spend = 123.0625; /* an open aggregate, unique in the blob */
    size_t len;
    unsigned char *blob = encode(p, &len);
    bd_portfolio_t *q = target();
    char err[256];
    bd_ptable_t *t2 = bd_ptable_new();
    cr_assert_eq(bd_checkpoint_decode(fresh(t2, g_cfg, NSLOTS), blob, len, err, sizeof err), BD_OK,
                 "a negative late report is possible: %s", err);
    bd_ptable_free(t2);
    size_t late = find_u64(blob, len, 489990), lspend = late + 16;
    double spend;
    memcpy(&spend, blob + lspend, 8);
    cr_assert_eq(spend, -12.375);
    unsigned char *c = with_f64(blob, len, lspend, NAN);
    refused(q, c, len, "late report spend NaN");
    free(c);
    c = with_u64(blob, len, late + 8, 0);
    refused(q, c, len, "late report of age 0");
    free(c);
    double open_spend = 123.0625;
    uint64_t bits;
    memcpy(&bits, &open_spend, 8);
    size_t at = find_u64(blob, len, bits);
    const double bad[] = {NAN, -1, -INFINITY};
    for (size_t i = 0; i < 3; i++) {
        c = with_f64(blob, len, at, bad[i]);
        refused(q, c, len, "open aggregate spend");
        free(c);
    }
    /* +inf is possible (a sum of finite events that overflowed: the kill-switch's
     * implausible-data trigger) and restored */
    c = with_f64(blob, len, at, INFINITY);
    t2 = bd_ptable_new();
    cr_assert_eq(bd_checkpoint_decode(fresh(t2, g_cfg, NSLOTS), c, len, err, sizeof err), BD_OK, "%s", err);
    bd_ptable_free(t2);
    free(c);
    free(blob);
    bd_ptable_free(t);
}

/* Regression r21_03: the cycle length a checkpoint records was only
 * checked for being negative; `budgetd state` then computed a lag horizon
 * in cycles as (horizon + L - 1) / L, a signed overflow for L near
 * INT64_MAX. A cycle past the longest a config takes (366d) is not one the
 * engine wrote: the blob is refused. */
Test(checkpoint, r21_03_cycle_length_past_366d_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t cycle_len = 16 + 8 + 4; /* magic, endianness, version, the name "acme" */
    cr_assert_leq(get_u64(blob, cycle_len), 366ULL * 86400);
    cr_assert_eq(get_u64(blob, cycle_len + 8), BD_MODEL_POISSON_SAT); /* the field after it */
    unsigned char *c = with_u64(blob, len, cycle_len, (uint64_t)INT64_MAX);
    refused(q, c, len, "cycle length INT64_MAX");
    free(c);
    c = with_u64(blob, len, cycle_len, 366ULL * 86400 + 1);
    refused(q, c, len, "cycle length 366d + 1 s");
    free(c);
    free(blob);
}

/* Regression r22_24: the open cycle and the times of a blob were restored
 * whatever they held; an open cycle of 2^63 / 3600 made the engine's first
 * close test (open + 1) * cycle wrap to just above INT64_MIN, so the next
 * event closed cycles without end (a daemon restoring it hung). An open
 * cycle, newest, watermark or last event time, or a late report's cycle
 * that is neither none (INT64_MIN) nor within [0, 9999-12-31] is refused. */
Test(checkpoint, r22_24_an_open_cycle_or_time_out_of_range_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t open = 16 + 8 + 4 + 8 + 8 + 8;
    cr_assert_eq(get_u64(blob, open), 490000);
    const uint64_t bad[] = {(((uint64_t)1 << 63) / 3600), (uint64_t)INT64_MAX, (uint64_t)-1,
                            (uint64_t)INT64_MIN + 1, 253402300800ULL};
    for (int f = 0; f < 4; f++) /* open, newest_ts, watermark, last_event_ts */
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            unsigned char *c = with_u64(blob, len, open + 8 * (size_t)f, bad[i]);
            refused(q, c, len, "a time out of range");
            free(c);
        }
    /* none and the last second of 9999 are kept */
    unsigned char *c = with_u64(blob, len, open + 16, (uint64_t)INT64_MIN);
    char err[2048];
    cr_assert_eq(bd_checkpoint_decode(q, c, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(q->watermark, INT64_MIN);
    free(c);
    c = with_u64(blob, len, open + 8, 253402300799ULL);
    cr_assert_eq(bd_checkpoint_decode(q, c, len, err, sizeof err), BD_OK, "%s", err);
    free(c);
    free(blob);
    /* a late report's cycle (decide.c multiplies it by the cycle length) */
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = rich(t, g_cfg, NSLOTS, 0);
    bd_agg_t d = {.spend = 1.5, .conversions = 1, .events = 1};
    bd_portfolio_late(p, 1, 489990, &d);
    blob = encode(p, &len);
    size_t late = find_u64(blob, len, 489990);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        c = with_u64(blob, len, late, bad[i]);
        refused(q, c, len, "a late report's cycle out of range");
        free(c);
    }
    free(blob);
    bd_ptable_free(t);
}
