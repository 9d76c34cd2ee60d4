/* test_delivery.c: the delivery-limit learner (delivery.h) against known
 * truths: a cap is found after BD_DLV_RUN under-delivered cycles and not
 * before, its level is learned under per-cycle noise and stays put (no
 * oscillation, no false lift), a lifted cap is noticed by the probes, dark
 * cycles are not a level, caps off learns nothing, and over-delivery adds
 * up to the overspend trigger (killswitch.h). */
#include <criterion/criterion.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>
#include "budgetd/delivery.h"
#include "budgetd/killswitch.h"
#include "budgetd/portfolio.h"

#define TOL 0.1
#define FLOOR 10.0

/* One cycle of a channel under a cap: allocation x, the platform spends
 * min(x, cap). */
static void cycle(bd_delivery_t *d, double x, double cap)
{
    bd_delivery_observe(d, x, fmin(x, cap), TOL, FLOOR, true);
}

Test(delivery, cap_found_after_a_run_and_not_before)
{
    bd_delivery_t d;
    bd_delivery_init(&d);
    cr_assert(isinf(bd_delivery_bound(&d, 100)));
    for (int t = 0; t < BD_DLV_RUN - 1; t++) {
        cycle(&d, 4500, 2000);
        cr_assert_not(d.capped, "capped after %d cycles", t + 1);
        cr_assert_float_eq(d.ratio, 2000.0 / 4500, 1e-12);
    }
    /* one cycle delivered in full breaks the run */
    cycle(&d, 1500, 2000);
    for (int t = 0; t < BD_DLV_RUN - 1; t++) cycle(&d, 4500, 2000);
    cr_assert_not(d.capped);
    cycle(&d, 4500, 2000);
    cr_assert(d.capped);
    cr_assert_float_eq(bd_delivery_cap(&d), 2000, 1e-6);
    cr_assert_float_eq(bd_delivery_bound(&d, 100), 2000, 1e-6);
}

/* Under-delivery within the tolerance is not a cap. */
Test(delivery, within_tolerance_is_delivered)
{
    bd_delivery_t d;
    bd_delivery_init(&d);
    for (int t = 0; t < 100; t++) bd_delivery_observe(&d, 1000, 920, TOL, FLOOR, true);
    cr_assert_not(d.capped);
    cr_assert_eq(d.over_total, 0);
}

/* A noisy cap (log-sd 5%) with the allocation at the learned bound: the
 * estimate settles near the true median, the bound's spread stays small
 * and the cap is never lifted by chance over 2000 cycles; the probes cost
 * little. */
Test(delivery, noisy_cap_settles_without_false_lifts)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 17);
    bd_delivery_t d;
    bd_delivery_init(&d);
    double x = 4500, s1 = 0, s2 = 0, lost = 0;
    int m = 0;
    for (int t = 0; t < 2000; t++) {
        double cap = 2000 * exp(0.05 * gsl_ran_gaussian(r, 1.0));
        cycle(&d, x, cap);
        if (t >= BD_DLV_RUN) cr_assert(d.capped, "cap lost at cycle %d", t);
        double b = bd_delivery_bound(&d, 100);
        x = fmin(b, 4500);
        if (t >= 200) {
            s1 += x;
            s2 += x * x;
            lost += fmax(0, x - cap);
            m++;
        }
    }
    double mean = s1 / m, cv = sqrt(s2 / m - mean * mean) / mean;
    cr_log_info("mean bound %.1f cv %.3f lost %.1f per cycle", mean, cv, lost / m);
    cr_assert(fabs(bd_delivery_cap(&d) / 2000 - 1) < 0.05, "cap %.1f", bd_delivery_cap(&d));
    cr_assert(fabs(mean / 2000 - 1) < 0.05, "mean bound %.1f", mean);
    cr_assert_lt(cv, 0.05);
    cr_assert_lt(lost / m, 0.05 * 2000);
    gsl_rng_free(r);
}

/* A cap that lifts is noticed by the probes within a probe period and two
 * cycles; while it holds the probes fail and it stays. */
Test(delivery, lifted_cap_is_noticed_by_probes)
{
    bd_delivery_t d;
    bd_delivery_init(&d);
    double x = 4500, cap = 1500;
    int lifted_at = -1, probes = 0;
    for (int t = 0; t < 400 && lifted_at < 0; t++) {
        if (t == 200) cap = INFINITY;
        cycle(&d, x, cap);
        if (t > 200 && !d.capped) lifted_at = t;
        if (t < 200 && t >= BD_DLV_RUN) cr_assert(d.capped);
        double b = bd_delivery_bound(&d, 100);
        probes += d.probe > 0;
        x = fmin(b, 4500);
    }
    cr_assert(probes > 5, "%d probes", probes);
    cr_assert(lifted_at > 200 && lifted_at <= 200 + BD_DLV_PROBE_EVERY + BD_DLV_LIFT + 1,
              "lifted at %d", lifted_at);
    cr_assert(isinf(bd_delivery_bound(&d, 100)));
}

/* Dark cycles (an outage) are not a cap level: twelve of them in a row
 * leave the channel uncapped; BD_DLV_DARK_RUN of them cap it at the floor. */
Test(delivery, dark_cycles_are_not_a_level)
{
    bd_delivery_t d;
    bd_delivery_init(&d);
    for (int k = 0; k < 5; k++) {
        for (int t = 0; t < 12; t++) cycle(&d, 2500, 0);
        cr_assert_not(d.capped, "a pulse made a cap");
        for (int t = 0; t < 24; t++) cycle(&d, 2500, INFINITY);
    }
    for (int t = 0; t < BD_DLV_DARK_RUN; t++) cycle(&d, 2500, 0);
    cr_assert(d.capped);
    cr_assert_float_eq(bd_delivery_cap(&d), FLOOR, 1e-9);
}

/* delivery.caps off: the ratio is kept, no cap is learned. */
Test(delivery, caps_off_learns_nothing)
{
    bd_delivery_t d;
    bd_delivery_init(&d);
    for (int t = 0; t < 50; t++) bd_delivery_observe(&d, 4500, 2000, TOL, FLOOR, false);
    cr_assert_not(d.capped);
    cr_assert_float_eq(d.ratio, 2000.0 / 4500, 1e-12);
    bd_delivery_none(&d);
    cr_assert(isnan(d.ratio));
}

/* Over-delivery beyond the tolerance is counted, and a run of it whose
 * excess adds up to more than overspend_ratio - 1 trips the overspend
 * trigger even though no single cycle reaches overspend_ratio. */
Test(delivery, over_delivery_feeds_the_overspend_trigger)
{
    bd_policy_t pol;
    memset(&pol, 0, sizeof pol);
    pol.budget = 1000;
    pol.kill.overspend_ratio = 1.5;
    bd_channel_cfg_t cc = {.name = "a", .max = INFINITY};
    bd_channel_t ch[1];
    memset(ch, 0, sizeof ch);
    snprintf(ch[0].name, sizeof ch[0].name, "a");
    ch[0].cfg = &cc;
    ch[0].x = 500;
    bd_delivery_init(&ch[0].dlv);
    bd_portfolio_t p;
    memset(&p, 0, sizeof p);
    p.pol = &pol;
    p.ch = ch;
    p.n = 1;
    bd_agg_t agg = {.spend = 600, .events = 1};
    bool corrupt = false;
    bd_killswitch_cycle_t kc = {.agg = &agg, .corrupt = &corrupt, .last_event_ts = INT64_MIN};
    char reason[256];
    for (int t = 1; t <= 3; t++) {
        bd_delivery_observe(&ch[0].dlv, 500, 600, TOL, FLOOR, true);
        cr_assert_eq(ch[0].dlv.over, (uint32_t)t);
        bool trip = bd_killswitch_check(&p, &kc, reason, sizeof reason);
        cr_assert_eq(trip, t == 3, "cycle %d: %s", t, trip ? reason : "no trip");
    }
    cr_assert(strstr(reason, "over-delivered 3 cycles in a row, 60% of its allocation in excess"),
              "%s", reason);
    cr_assert_eq(ch[0].dlv.over_total, 3);
    /* a cycle within the tolerance ends the run */
    bd_delivery_observe(&ch[0].dlv, 500, 520, TOL, FLOOR, true);
    cr_assert_not(bd_delivery_overspent(&ch[0].dlv, 0.5));
    /* overspend_ratio 0 (off): never */
    for (int t = 0; t < 10; t++) bd_delivery_observe(&ch[0].dlv, 500, 600, TOL, FLOOR, true);
    cr_assert_not(bd_delivery_overspent(&ch[0].dlv, -1.0));
}
