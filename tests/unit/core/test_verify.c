/* test_verify.c: the verifier accepts allocations that follow the guardrail
 * rules and names the first violation of each kind. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/verify.h"

typedef struct {
    bd_policy_t pol;
    bd_channel_cfg_t cfg[3];
    const bd_channel_cfg_t *cfgp[3];
    double x[3], prev[3];
    bool promoted[3];
    bd_curve_t draws[4 * 3];
    char err[BD_ERRBUF];
} vf_t;

/* budget 2000 over search [0, inf), social [100, 800], video lab [0, 1000]. */
static void vf_init(vf_t *v)
{
    memset(v, 0, sizeof *v);
    v->pol.budget = 2000;
    v->pol.max_step = 0.25;
    v->pol.risk_roas_floor = 1;
    v->pol.risk_max_prob = 1;
    v->pol.lab.cap_share = 0.1;
    const char *names[3] = {"search", "social", "video"};
    for (int i = 0; i < 3; i++) {
        snprintf(v->cfg[i].name, sizeof v->cfg[i].name, "%s", names[i]);
        v->cfg[i].max = INFINITY;
        v->cfgp[i] = &v->cfg[i];
    }
    v->cfg[1].min = 100;
    v->cfg[1].max = 800;
    v->cfg[2].max = 1000;
    v->cfg[2].lab = true;
    v->x[0] = 1100; v->x[1] = 700; v->x[2] = 200;
}

static bd_err_t vf_check(vf_t *v, bool with_prev, size_t n_draws, bool held)
{
    bd_verify_input_t in = {3, &v->pol, v->cfgp, v->x, with_prev ? v->prev : NULL, v->promoted,
                            n_draws ? v->draws : NULL, n_draws, held, NULL};
    v->err[0] = 0;
    return bd_verify_allocation(&in, v->err, sizeof v->err);
}

Test(verify, valid_allocation_passes)
{
    vf_t v;
    vf_init(&v);
    cr_assert_eq(vf_check(&v, false, 0, false), BD_OK, "%s", v.err);
}

Test(verify, over_max_named)
{
    vf_t v;
    vf_init(&v);
    v.x[1] = 812; v.x[0] = 988;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
    cr_assert_str_eq(v.err, "channel 'social': 812.00 above max 800.00");
}

Test(verify, below_min_named)
{
    vf_t v;
    vf_init(&v);
    v.x[1] = 99.99; v.x[0] = 1500.01;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
    cr_assert_str_eq(v.err, "channel 'social': 99.99 below min 100.00");
}

Test(verify, unpromoted_lab_channel_capped)
{
    vf_t v;
    vf_init(&v);
    v.x[2] = 200.01; v.x[0] = 1099.99;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
    cr_assert_str_eq(v.err, "channel 'video': 200.01 above lab cap 200.00");
    v.promoted[2] = true;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_OK, "%s", v.err);
}

Test(verify, sum_off_by_one_cent)
{
    vf_t v;
    vf_init(&v);
    v.x[0] = 1100.01;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
    cr_assert_str_eq(v.err, "sum 2000.01 differs from total 2000.00");
    v.x[0] = 1099.99;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
}

Test(verify, total_is_sum_of_caps_when_lower)
{
    vf_t v;
    vf_init(&v);
    v.cfg[0].max = 500;
    v.pol.budget = 5000; /* caps: 500 + 800 + 500 (lab 10%) = 1800 */
    v.x[0] = 500; v.x[1] = 800; v.x[2] = 500;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_OK, "%s", v.err);
    v.x[2] = 499.99;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
}

Test(verify, bad_numbers)
{
    vf_t v;
    vf_init(&v);
    v.x[0] = NAN;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
    cr_assert(strstr(v.err, "not finite"), "%s", v.err);
    vf_init(&v);
    v.x[0] = 1100.005; v.x[2] = 199.995;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
    cr_assert(strstr(v.err, "whole cents"), "%s", v.err);
    vf_init(&v);
    v.x[0] = -1; v.x[2] = 1301;
    cr_assert_eq(vf_check(&v, false, 0, false), BD_ERR_INVALID);
    cr_assert(strstr(v.err, "negative"), "%s", v.err);
}

Test(verify, ramp_jump_caught)
{
    vf_t v;
    vf_init(&v);
    v.promoted[2] = true;
    v.prev[0] = 1000; v.prev[1] = 700; v.prev[2] = 300; /* steps 250, 175, 75 */
    v.x[0] = 1250; v.x[1] = 525; v.x[2] = 225;
    cr_assert_eq(vf_check(&v, true, 0, false), BD_OK, "%s", v.err);
    v.x[0] = 1250.01; v.x[1] = 524.99;
    cr_assert_eq(vf_check(&v, true, 0, false), BD_ERR_INVALID);
    cr_assert_str_eq(v.err, "channel 'search': 1250.01 outside ramp [750.00, 1250.00] from 1000.00");
    /* without prev there is no ramp */
    cr_assert_eq(vf_check(&v, false, 0, false), BD_OK, "%s", v.err);
}

Test(verify, ramp_skipped_when_box_cannot_hold_total)
{
    vf_t v;
    vf_init(&v);
    v.promoted[2] = true;
    v.prev[0] = 100; v.prev[1] = 100; v.prev[2] = 100; /* budget raised: ramp sums to 600 */
    v.x[0] = 1100; v.x[1] = 700; v.x[2] = 200;
    cr_assert_eq(vf_check(&v, true, 0, false), BD_OK, "%s", v.err);
}

Test(verify, ramp_floor_of_one_percent_of_budget)
{
    vf_t v;
    vf_init(&v);
    v.promoted[2] = true;
    v.prev[0] = 1180; v.prev[1] = 800; v.prev[2] = 20; /* video step = max(5, 20) */
    v.x[0] = 1160; v.x[1] = 800; v.x[2] = 40;
    cr_assert_eq(vf_check(&v, true, 0, false), BD_OK, "%s", v.err);
    v.x[0] = 1159.99; v.x[2] = 40.01;
    cr_assert_eq(vf_check(&v, true, 0, false), BD_ERR_INVALID);
    cr_assert(strstr(v.err, "'video'") && strstr(v.err, "ramp"), "%s", v.err);
}

/* Four draws; draw 3 returns ROAS 0.5 on search. */
static void vf_draws(vf_t *v, double bad_a)
{
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 3; i++)
            v->draws[s * 3 + i] = (bd_curve_t){BD_CURVE_EXP, s == 3 && i == 0 ? bad_a : 2.0, 1e7, 0};
}

Test(verify, risk_recomputed_from_draws)
{
    vf_t v;
    vf_init(&v);
    vf_draws(&v, 0.01);
    v.pol.risk_roas_floor = 1.0;
    v.pol.risk_max_prob = 0.2; /* 1 of 4 draws below: p = 0.25 */
    cr_assert_eq(vf_check(&v, false, 4, false), BD_ERR_INVALID);
    cr_assert_str_eq(v.err, "risk: P(ROAS < 1.00) = 0.250 above max 0.200");
    cr_assert_eq(vf_check(&v, false, 4, true), BD_OK, "risk_held skips the check");
    v.pol.risk_max_prob = 0.25;
    cr_assert_eq(vf_check(&v, false, 4, false), BD_OK, "%s", v.err);
    v.pol.risk_max_prob = 0.2;
    vf_draws(&v, 1.0); /* 1100 + 1800 >= 2000: fine */
    cr_assert_eq(vf_check(&v, false, 4, false), BD_OK, "%s", v.err);
}

Test(verify, power_draws)
{
    vf_t v;
    vf_init(&v);
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 3; i++)
            v.draws[s * 3 + i] = (bd_curve_t){BD_CURVE_POWER, 1.0, 0, 0.5};
    v.pol.risk_max_prob = 0.5; /* sqrt(1100)+sqrt(700)+sqrt(200) ~ 74 < 2000 */
    cr_assert_eq(vf_check(&v, false, 4, false), BD_ERR_INVALID);
    v.pol.risk_roas_floor = 0.03;
    cr_assert_eq(vf_check(&v, false, 4, false), BD_OK, "%s", v.err);
}
