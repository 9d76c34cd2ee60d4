/* test_fault.c: the data-fault detector (fault.h) on synthetic channels
 * with a known truth: each named fault is flagged within three cycles and
 * withheld from learning, clears when the data are back, and drops the
 * late reports of what it withheld; a real decline (traffic falls with
 * the conversions), ordinary noise, sparse channels and a switched-off
 * kind are not flagged; an operator's clear mutes detection until the
 * data look normal by themselves; a fault whose action is kill trips the
 * kill-switch (killswitch.h). */
#include <criterion/criterion.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>
#include "budgetd/fault.h"
#include "budgetd/killswitch.h"
#include "budgetd/portfolio.h"

/* A channel: spend 2000 per cycle, `rate` conversions per spend, value 50
 * each, 20 clicks and 1000 impressions per conversion at the normal rate;
 * Poisson counts. */
typedef struct {
    gsl_rng *r;
    bd_fault_t f;
    bd_fault_action_t act[BD_FAULT__COUNT];
    double rate;
    int64_t cycle;
    bool no_traffic;    /* reports carry no clicks or impressions */
} ch_t;

static void ch_init(ch_t *c, double rate, unsigned long seed)
{
    memset(c, 0, sizeof *c);
    c->r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(c->r, seed);
    bd_fault_init(&c->f);
    for (int k = 1; k < BD_FAULT__COUNT; k++) c->act[k] = BD_FAULT_ACT_HOLD;
    c->rate = rate;
}

/* What happens to one cycle's report. */
typedef enum { F_OK, F_TRACKING, F_NOCONV, F_VALUE, F_SILENT, F_DECLINE } what_t;

/* One cycle: draws the truth, corrupts the report, shows the detector. */
static bd_fault_event_t step(ch_t *c, what_t w, bool *learn)
{
    double mean = c->rate * 2000 * (w == F_DECLINE ? 0.05 : 1.0);
    double y = (double)gsl_ran_poisson(c->r, mean);
    bd_agg_t a = {.spend = 2000, .conversions = y, .revenue = 50 * y, .events = 1};
    a.clicks = (double)gsl_ran_poisson(c->r, 20 * mean);
    a.impressions = (double)gsl_ran_poisson(c->r, 1000 * mean);
    if (c->no_traffic) a.clicks = a.impressions = 0;
    if (w == F_TRACKING) a.conversions = a.revenue = 0;
    if (w == F_NOCONV) a.conversions = 0;
    if (w == F_VALUE) a.revenue *= 100;
    if (w == F_SILENT) memset(&a, 0, sizeof a);
    bd_fault_obs_t o = {.agg = &a, .x = 2000, .mult = 1, .season = 1, .floor = 10, .others = true,
                        .cycle = c->cycle++, .act = c->act};
    return bd_fault_observe(&c->f, &o, learn);
}

/* n normal cycles; all must be learned and none flagged. */
static void normal(ch_t *c, int n)
{
    for (int t = 0; t < n; t++) {
        bool learn;
        cr_assert_eq(step(c, F_OK, &learn), BD_FAULT_EV_NONE, "flag on normal data (cycle %lld)",
                     (long long)c->cycle);
        cr_assert(learn);
    }
}

/* A fault of kind k played for 20 cycles: flagged within 3, never learned
 * from, cleared on the first normal cycle; late reports of the intervals
 * before the clear are dropped, of the restored ones not. */
static void fault_episode(what_t w, bd_fault_kind_t k, double rate)
{
    ch_t c;
    ch_init(&c, rate, 5 + (unsigned long)k);
    normal(&c, 50);
    int64_t start = c.cycle;
    int flagged = -1;
    for (int t = 0; t < 20; t++) {
        bool learn;
        bd_fault_event_t ev = step(&c, w, &learn);
        cr_assert_not(learn, "learned from a faulty cycle");
        if (ev == BD_FAULT_EV_FLAGGED) flagged = t;
        if (t < 2) continue;
        cr_assert_eq(c.f.kind, (uint32_t)k, "kind %u after %d cycles", c.f.kind, t + 1);
        /* frozen: every late report is dropped (its pending exposure too) */
        cr_assert(bd_fault_drop_late(&c.f, start + t));
        cr_assert(bd_fault_drop_late(&c.f, start - 1));
    }
    cr_assert(flagged >= 0 && flagged <= 2, "flagged after %d cycles", flagged + 1);
    cr_assert_eq(c.f.hold, 2000);
    bool learn;
    cr_assert_eq(step(&c, F_OK, &learn), BD_FAULT_EV_CLEARED);
    cr_assert(learn, "the restored cycle is learned");
    cr_assert_eq(c.f.kind, BD_FAULT_NONE);
    cr_assert(bd_fault_drop_late(&c.f, start + 5));
    cr_assert(bd_fault_drop_late(&c.f, start - 1));
    cr_assert_not(bd_fault_drop_late(&c.f, c.cycle - 1), "the restored interval's late reports count");
    normal(&c, 50);
    gsl_rng_free(c.r);
}

Test(fault, tracking_break) { fault_episode(F_TRACKING, BD_FAULT_TRACKING, 0.05); }
Test(fault, revenue_without_conversions) { fault_episode(F_NOCONV, BD_FAULT_NO_CONVERSIONS, 0.05); }
Test(fault, value_jump) { fault_episode(F_VALUE, BD_FAULT_VALUE_JUMP, 0.05); }
Test(fault, silent_channel) { fault_episode(F_SILENT, BD_FAULT_SILENT, 0.05); }

/* A sparse channel (3 conversions expected per cycle: a zero is common)
 * is never flagged on its own noise over 5000 cycles. */
Test(fault, sparse_channel_no_false_alarm)
{
    ch_t c;
    ch_init(&c, 0.0015, 99);
    int withheld = 0;
    for (int t = 0; t < 5000; t++) {
        bool learn;
        cr_assert_neq(step(&c, F_OK, &learn), BD_FAULT_EV_FLAGGED, "cycle %d", t);
        withheld += !learn;
    }
    cr_assert_lt(withheld, 10, "%d sparse cycles withheld", withheld);
    gsl_rng_free(c.r);
}

/* A busier but still small channel (~7 expected): a tracking break is
 * flagged by the evidence of a few cycles together, within three. */
Test(fault, small_channel_flagged_within_three)
{
    ch_t c;
    ch_init(&c, 0.0035, 7);
    normal(&c, 60);
    int flagged = -1;
    for (int t = 0; t < 6 && flagged < 0; t++) {
        bool learn;
        if (step(&c, F_TRACKING, &learn) == BD_FAULT_EV_FLAGGED) flagged = t;
    }
    cr_assert(flagged >= 1 && flagged <= 2, "flagged after %d cycles", flagged + 1);
    gsl_rng_free(c.r);
}

/* A real decline of the same size: traffic falls with the conversions, so
 * it is followed (learned), never flagged. */
Test(fault, real_decline_is_followed)
{
    ch_t c;
    ch_init(&c, 0.05, 11);
    normal(&c, 50);
    for (int t = 0; t < 200; t++) {
        bool learn;
        cr_assert_eq(step(&c, F_DECLINE, &learn), BD_FAULT_EV_NONE, "flagged at %d", t);
        cr_assert(learn);
    }
    cr_assert_eq(c.f.kind, BD_FAULT_NONE);
    gsl_rng_free(c.r);
}

/* Without traffic in the reports a collapse to zero cannot be told from a
 * decline by the data: it is flagged (the operator decides). */
Test(fault, collapse_without_traffic_is_flagged)
{
    ch_t c;
    ch_init(&c, 0.05, 29);
    c.no_traffic = true;
    normal(&c, 50);
    bool learn;
    cr_assert_eq(step(&c, F_DECLINE, &learn), BD_FAULT_EV_FLAGGED);
    cr_assert_eq(c.f.kind, BD_FAULT_TRACKING);
    gsl_rng_free(c.r);
}

/* A kind switched off is not looked for: its cycles are learned as they
 * come. */
Test(fault, kind_off_is_not_looked_for)
{
    ch_t c;
    ch_init(&c, 0.05, 13);
    c.act[BD_FAULT_TRACKING] = BD_FAULT_ACT_OFF;
    normal(&c, 50);
    for (int t = 0; t < 20; t++) {
        bool learn;
        cr_assert_eq(step(&c, F_TRACKING, &learn), BD_FAULT_EV_NONE);
        cr_assert(learn);
    }
    gsl_rng_free(c.r);
}

/* An operator's clear ends the fault; the collapsed data are learned from
 * then on (the operator vouched for them) and not flagged again. */
Test(fault, operator_clear_mutes_until_normal)
{
    ch_t c;
    ch_init(&c, 0.05, 17);
    normal(&c, 50);
    bool learn;
    for (int t = 0; t < 3; t++) step(&c, F_TRACKING, &learn);
    cr_assert_eq(c.f.kind, BD_FAULT_TRACKING);
    bd_fault_operator_clear(&c.f, c.cycle);
    cr_assert_eq(c.f.kind, BD_FAULT_NONE);
    for (int t = 0; t < 30; t++) {
        cr_assert_eq(step(&c, F_TRACKING, &learn), BD_FAULT_EV_NONE);
        cr_assert(learn);
    }
    /* back to normal: detection is armed again */
    normal(&c, 60);
    cr_assert_eq(c.f.muted, 0);
    gsl_rng_free(c.r);
}

/* A cycle too small to judge (expected conversions near zero) neither
 * clears a fault in force nor is learned. */
Test(fault, unsure_cycle_keeps_the_fault)
{
    ch_t c;
    ch_init(&c, 0.05, 19);
    normal(&c, 50);
    bool learn;
    for (int t = 0; t < 3; t++) step(&c, F_TRACKING, &learn);
    cr_assert_eq(c.f.kind, BD_FAULT_TRACKING);
    bd_agg_t a = {.spend = 2000, .events = 1};
    bd_fault_obs_t o = {.agg = &a, .x = 2000, .mult = 0.001, .season = 0.001, .floor = 10,
                        .others = true, .cycle = c.cycle++, .act = c.act};
    cr_assert_eq(bd_fault_observe(&c.f, &o, &learn), BD_FAULT_EV_NONE);
    cr_assert_not(learn);
    cr_assert_eq(c.f.kind, BD_FAULT_TRACKING);
    gsl_rng_free(c.r);
}

/* `silent` needs another channel reporting: a whole portfolio going quiet
 * is the stale trigger's, not a channel fault. */
Test(fault, silence_of_everyone_is_not_a_channel_fault)
{
    ch_t c;
    ch_init(&c, 0.05, 23);
    normal(&c, 50);
    bd_agg_t a = {0};
    for (int t = 0; t < 5; t++) {
        bool learn;
        bd_fault_obs_t o = {.agg = &a, .x = 2000, .mult = 1, .season = 1, .floor = 10,
                            .others = false, .cycle = c.cycle++, .act = c.act};
        cr_assert_eq(bd_fault_observe(&c.f, &o, &learn), BD_FAULT_EV_NONE);
    }
    cr_assert_eq(c.f.kind, BD_FAULT_NONE);
    gsl_rng_free(c.r);
}

/* faults: {tracking: kill}: the reason handed to the kill-switch trips it
 * (after implausible data, before every other trigger). */
Test(fault, kill_action_trips_the_kill_switch)
{
    bd_policy_t pol;
    memset(&pol, 0, sizeof pol);
    pol.budget = 1000;
    bd_channel_t ch[1];
    memset(ch, 0, sizeof ch);
    bd_portfolio_t p;
    memset(&p, 0, sizeof p);
    p.pol = &pol;
    p.ch = ch;
    p.n = 1;
    bd_agg_t agg = {.spend = 100, .events = 1};
    bool corrupt = false, faulted = true;
    bd_killswitch_cycle_t kc = {.agg = &agg, .corrupt = &corrupt, .last_event_ts = INT64_MIN,
                                .faulted = &faulted};
    char reason[256];
    cr_assert_not(bd_killswitch_check(&p, &kc, reason, sizeof reason));
    kc.fault_reason = "fault: channel 'a' tracking since cycle 5 (conversions 0, expected 80.0)";
    cr_assert(bd_killswitch_check(&p, &kc, reason, sizeof reason));
    cr_assert_str_eq(reason, kc.fault_reason);
}
