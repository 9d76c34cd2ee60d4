/* test_time_models.c: the time-structure components of a channel's model:
 * seasonal profile (season.h), reporting lag (lag.h) and the learned
 * forgetting rate (drift.h), each against data with a known truth. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "budgetd/drift.h"
#include "budgetd/lag.h"
#include "budgetd/season.h"

static gsl_rng *R;
static void setup(void)
{
    R = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(R, 777);
}
static void teardown(void) { gsl_rng_free(R); }

TestSuite(season, .init = setup, .fini = teardown);
TestSuite(lag, .init = setup, .fini = teardown);
TestSuite(drift, .init = setup, .fini = teardown);

static const bd_season_cfg_t AUTO = {BD_AUTO_AUTO, BD_AUTO_AUTO};

Test(season, buckets_are_utc_hour_and_weekday)
{
    int h, d;
    bd_season_bucket(1767225600, &h, &d); /* 2026-01-01T00:00Z, a Thursday */
    cr_assert_eq(h, 0);
    cr_assert_eq(d, 3);
    bd_season_bucket(1767225600 + 4 * 86400 + 13 * 3600 + 59, &h, &d); /* Monday 13:00:59 */
    cr_assert_eq(h, 13);
    cr_assert_eq(d, 0);
    bd_season_bucket(-1, &h, &d); /* 1969-12-31T23:59:59Z, a Wednesday */
    cr_assert_eq(h, 23);
    cr_assert_eq(d, 2);
}

Test(season, a_cycle_as_long_as_the_period_has_no_profile)
{
    bd_season_cfg_t on = {BD_AUTO_ON, BD_AUTO_ON};
    bd_season_cfg_t e = bd_season_effective(on, 86400);
    cr_assert_eq(e.daily, BD_AUTO_OFF);
    cr_assert_eq(e.weekly, BD_AUTO_ON);
    e = bd_season_effective(on, 3600);
    cr_assert_eq(e.daily, BD_AUTO_ON);
}

/* Feeds T hourly observations with truth m * prof(t) (Poisson). */
static void feed(bd_season_t *s, bd_season_cfg_t cfg, int T, double m, double amp_d, double amp_w)
{
    for (int t = 0; t < T; t++) {
        int64_t ts = 1767225600 + (int64_t)t * 3600;
        int h, d;
        bd_season_bucket(ts, &h, &d);
        double truth = m * (1 + amp_d * sin(2 * M_PI * h / 24.0)) * (1 + amp_w * (d >= 5 ? -1 : 0.4));
        double y = gsl_ran_poisson(R, truth);
        bd_season_profile_t prof;
        bd_season_profile(s, NULL, cfg, &prof);
        bd_season_observe(s, &prof, cfg, h, d, y, m);
    }
}

Test(season, stationary_channel_gets_no_phantom_profile)
{
    bd_season_t s;
    bd_season_init(&s);
    feed(&s, AUTO, 3000, 40, 0, 0);
    double wd, ww;
    bd_season_weights(&s, AUTO, &wd, &ww);
    cr_assert_lt(wd, 0.02, "daily weight %g", wd);
    cr_assert_lt(ww, 0.02, "weekly weight %g", ww);
    for (int h = 0; h < 24; h++) {
        double f = bd_season_factor(&s, NULL, AUTO, h, h % 7);
        cr_assert(fabs(f - 1) < 0.005, "hour %d factor %g", h, f);
    }
}

Test(season, diurnal_profile_is_learned_and_switched_on)
{
    bd_season_t s;
    bd_season_init(&s);
    feed(&s, AUTO, 1500, 40, 0.5, 0);
    double wd, ww;
    bd_season_weights(&s, AUTO, &wd, &ww);
    cr_assert_gt(wd, 0.99, "daily weight %g", wd);
    for (int h = 0; h < 24; h++) {
        double want = 1 + 0.5 * sin(2 * M_PI * h / 24.0);
        double f = bd_season_factor(&s, NULL, (bd_season_cfg_t){BD_AUTO_AUTO, BD_AUTO_OFF}, h, 0);
        cr_assert(fabs(f / want - 1) < 0.1, "hour %d factor %g want %g", h, f, want);
    }
}

Test(season, weekly_profile_is_learned)
{
    bd_season_t s;
    bd_season_init(&s);
    feed(&s, AUTO, 24 * 7 * 6, 40, 0, 0.3);
    double wd, ww;
    bd_season_weights(&s, AUTO, &wd, &ww);
    cr_assert_gt(ww, 0.99, "weekly weight %g", ww);
    cr_assert_lt(wd, 0.05, "daily weight %g (no daily pattern)", wd);
    double mean = (5 * 1.12 + 2 * 0.7) / 7; /* weekday 1+0.3*0.4, weekend 1-0.3 */
    double fmon = bd_season_factor(&s, NULL, AUTO, 3, 0), fsun = bd_season_factor(&s, NULL, AUTO, 3, 6);
    cr_assert(fabs(fmon - 1.12 / mean) < 0.05, "monday %g want %g", fmon, 1.12 / mean);
    cr_assert(fabs(fsun - 0.7 / mean) < 0.05, "sunday %g want %g", fsun, 0.7 / mean);
}

Test(season, off_is_exactly_one_and_on_skips_the_gate)
{
    bd_season_t s;
    bd_season_init(&s);
    bd_season_cfg_t off = {BD_AUTO_OFF, BD_AUTO_OFF}, on = {BD_AUTO_ON, BD_AUTO_OFF};
    feed(&s, on, 200, 40, 0.5, 0);
    cr_assert_eq(bd_season_factor(&s, NULL, off, 6, 0), 1.0);
    double f6 = bd_season_factor(&s, NULL, on, 6, 0);
    cr_assert_gt(f6, 1.3, "hour 6 peak %g", f6);
}

Test(season, sparse_channel_borrows_the_pooled_shape)
{
    bd_season_t big, small, pool;
    bd_season_init(&big);
    bd_season_init(&small);
    feed(&big, AUTO, 1000, 200, 0.5, 0);
    feed(&small, AUTO, 100, 0.5, 0.5, 0); /* ~12 conversions a day */
    bd_season_init(&pool);
    bd_season_add(&pool, &big);
    bd_season_add(&pool, &small);
    bd_season_cfg_t on = {BD_AUTO_ON, BD_AUTO_OFF};
    double err_alone = 0, err_pooled = 0;
    for (int h = 0; h < 24; h++) {
        double want = 1 + 0.5 * sin(2 * M_PI * h / 24.0);
        err_alone += fabs(bd_season_factor(&small, NULL, on, h, 0) - want) / 24;
        err_pooled += fabs(bd_season_factor(&small, &pool, on, h, 0) - want) / 24;
    }
    cr_assert_lt(err_pooled, 0.5 * err_alone, "mean error pooled %g alone %g", err_pooled, err_alone);
    cr_assert_lt(err_pooled, 0.15, "mean error pooled %g", err_pooled);
}

Test(lag, no_late_reports_means_complete)
{
    bd_lag_t l;
    bd_lag_init(&l);
    for (int a = 0; a < 200; a++) cr_assert_eq(bd_lag_completeness(&l, a, 168), 1.0);
    bd_lag_report(&l, 0, 500);
    cr_assert_eq(bd_lag_completeness(&l, 0, 168), 1.0);
}

Test(lag, bins_cover_every_age_once)
{
    int64_t prev_end = 0;
    for (int b = 0; b < BD_LAG_BINS; b++) {
        cr_assert_eq(bd_lag_bin_start(b), prev_end);
        cr_assert_gt(bd_lag_bin_width(b), 0);
        prev_end = bd_lag_bin_start(b) + bd_lag_bin_width(b);
        for (int64_t a = bd_lag_bin_start(b); a < prev_end; a++) cr_assert_eq(bd_lag_bin(a), b);
    }
}

/* A steady stream with a geometric delay of mean mu cycles: the arrival
 * histogram gives back the delay distribution. */
Test(lag, geometric_delay_is_recovered)
{
    bd_lag_t l;
    bd_lag_init(&l);
    double mu = 4.0, p = 1.0 / (1.0 + mu); /* P(delay = a) = p (1-p)^a */
    bd_lag_credit_t cr[BD_LAG_BINS];
    for (int t = 0; t < 600; t++) {
        for (int a = 0; a < 168; a++) bd_lag_report(&l, a, 100.0 * p * pow(1 - p, a));
        bd_lag_step(&l, 168, 1000, 1, cr);
    }
    for (int a = 0; a < 30; a++) {
        double want = 1 - pow(1 - p, a + 1);
        double got = bd_lag_completeness(&l, a, 168);
        cr_assert(fabs(got - want) < 0.04, "F(%d) %g want %g", a, got, want);
    }
}

/* An interval's exposure is credited exactly once in total: F(0) at its
 * close plus every later credit adds up to its spend (linear response). */
Test(lag, exposure_is_conserved)
{
    bd_lag_t l;
    bd_lag_init(&l);
    bd_lag_report(&l, 0, 30);
    bd_lag_report(&l, 2, 30);
    bd_lag_report(&l, 10, 20);
    bd_lag_report(&l, 60, 20);
    bd_lag_t frozen = l;
    double f0 = bd_lag_completeness(&l, 0, 168);
    cr_assert_lt(f0, 0.5);
    bd_lag_credit_t cr[BD_LAG_BINS];
    double credited = 0;
    bd_lag_step(&l, 168, 100, 1.5, cr); /* the interval enters, nothing pending yet */
    for (int t = 0; t < 400; t++) {
        memcpy(l.n, frozen.n, sizeof l.n); /* hold F fixed */
        int k = bd_lag_step(&l, 168, 0, 1, cr);
        for (int i = 0; i < k; i++) credited += cr[i].x * cr[i].mult;
    }
    double want = 100 * 1.5 * (1 - f0);
    cr_assert(fabs(credited - want) < 1e-3 * want, "credited %g want %g", credited, want);
}

Test(lag, restatement_lowering_a_total_never_goes_negative)
{
    bd_lag_t l;
    bd_lag_init(&l);
    bd_lag_report(&l, 3, 5);
    bd_lag_report(&l, 3, -50);
    cr_assert_eq(l.n[bd_lag_bin(3)], 0.0f);
}

Test(drift, stable_channel_keeps_a_long_memory)
{
    bd_drift_t d;
    bd_drift_init(&d, 2, 2.0 / 0.05);
    for (int t = 0; t < 1000; t++) bd_drift_observe(&d, 2, 40, gsl_ran_poisson(R, 0.05 * 1000), 1000);
    cr_assert_geq(bd_drift_discount(&d), 0.98, "chose %g", bd_drift_discount(&d));
}

Test(drift, fast_random_walk_forgets_fast)
{
    bd_drift_t d;
    bd_drift_init(&d, 2, 2.0 / 0.05);
    double lr = log(0.05);
    for (int t = 0; t < 1000; t++) {
        lr += gsl_ran_gaussian(R, 0.15);
        if (lr > log(0.5)) lr = log(0.5);
        if (lr < log(0.005)) lr = log(0.005);
        bd_drift_observe(&d, 2, 40, gsl_ran_poisson(R, exp(lr) * 1000), 1000);
    }
    cr_assert_leq(bd_drift_discount(&d), 0.95, "chose %g", bd_drift_discount(&d));
}
