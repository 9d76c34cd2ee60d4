/* test_prior_import.c: the readers and the fit behind `budgetd prior
 * import` (engine/cmd/prior_read.c) on the files of tests/data/prior: an
 * exact EXP curve is recovered, Robyn's Hill curves are read at their
 * steady state and fitted, the documented curve and lift CSVs are read,
 * and bad input is refused with the file and what is wrong. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "cmd/prior.h"
#include "fixtures.h"

#define D "tests/data/prior/"

static char err[1024];

static const bd_pi_chan_t *find(const bd_pi_set_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->ch[i].name, name)) return &s->ch[i];
    cr_assert_fail("no channel %s", name);
    return NULL;
}

Test(prior_import, exact_exp_points_are_recovered)
{
    double x[6] = {500, 1000, 2000, 4000, 8000, 12000}, y[6], a, k;
    for (int i = 0; i < 6; i++) y[i] = 2.5 * 4000 * -expm1(-x[i] / 4000);
    cr_assert(bd_pi_fit_exp(x, y, NULL, 6, &a, &k));
    bd_test_near(a, 2.5, 1e-6, "a");
    bd_test_near(k, 4000, 1e-6, "k");
    double z[2] = {0, 0};
    cr_assert_not(bd_pi_fit_exp(x, z, NULL, 2, &a, &k));
}

/* Hill response coef x^alpha / (x^alpha + g^alpha) at the steady state of
 * a geometric adstock theta, g fixed by mean_response: the fitted curve
 * meets it at the mean spend within 5%, and the bootstrap's CV is kept. */
Test(prior_import, robyn_hill_curves)
{
    bd_pi_set_t s = {0};
    cr_assert_not(bd_pi_robyn(D "pareto_hyperparameters.csv", D "pareto_aggregated.csv", NULL, &s, err,
                              sizeof err));
    cr_assert_str_eq(err, D "pareto_aggregated.csv: 2 solutions: choose one with --solution ID");
    cr_assert(bd_pi_robyn(D "pareto_hyperparameters.csv", D "pareto_aggregated.csv", "1_12_3", &s, err,
                          sizeof err), "%s", err);
    cr_assert_eq(s.n, 2, "context variables have no hyperparameters: skipped");
    const bd_pi_chan_t *fb = find(&s, "facebook_S"), *se = find(&s, "search_S");
    /* facebook: coef 120000, mean 20000, s 0.6, alpha 1.8, theta 0.3 */
    double g = 20000 * pow(0.4 / 0.6, 1 / 1.8), z = pow(20000 / 0.7, 1.8);
    double hill = 120000 * z / (z + pow(g, 1.8)), exp_at = fb->roas * fb->sat * -expm1(-20000 / fb->sat);
    cr_assert(fabs(exp_at / hill - 1) < 0.05, "EXP %.0f vs Hill %.0f at the mean spend", exp_at, hill);
    bd_test_near(fb->cv, 0.1, 1e-12, "bootstrap CV");
    cr_assert(isnan(se->cv));
    cr_assert(se->has_curve && se->roas > 0 && se->sat > 0);
    bd_pi_free(&s);
    /* renamed on the way in */
    const char *from[1] = {"search_S"}, *to[1] = {"search"};
    bd_pi_set_t r = {.rename_from = from, .rename_to = to, .n_rename = 1};
    cr_assert(bd_pi_robyn(D "pareto_hyperparameters.csv", D "pareto_aggregated.csv", "2_40_1", &r, err,
                          sizeof err), "%s", err);
    find(&r, "search");
    bd_pi_free(&r);
    cr_assert_not(bd_pi_robyn(D "pareto_hyperparameters.csv", D "pareto_aggregated.csv", "9_9_9", &r, err,
                              sizeof err));
    cr_assert_str_eq(err, D "pareto_hyperparameters.csv: no solution '9_9_9'");
    cr_assert_not(bd_pi_robyn(D "curves_params.csv", D "pareto_aggregated.csv", "1_12_3", &r, err, sizeof err));
    cr_assert_str_eq(err, D "curves_params.csv: no column 'solID'");
    bd_pi_free(&r);
}

Test(prior_import, documented_curve_forms)
{
    bd_pi_set_t s = {0};
    cr_assert(bd_pi_curves(D "curves_points.csv", &s, err, sizeof err), "%s", err);
    const bd_pi_chan_t *t = find(&s, "tiktok");
    bd_test_near(t->roas, 2.5, 1e-5, "points: roas");
    bd_test_near(t->sat, 4000, 1e-5, "points: saturation");
    bd_test_near(t->cv, 0.1, 1e-6, "points: median CV");
    cr_assert(bd_pi_curves(D "curves_params.csv", &s, err, sizeof err), "%s", err);
    bd_test_near(find(&s, "search")->cv, 0.1, 1e-12, "roas_sd / roas");
    cr_assert(isnan(find(&s, "video")->cv));
    cr_assert_eq(find(&s, "video")->sat, 8400);
    cr_assert_not(bd_pi_curves(D "lift.csv", &s, err, sizeof err));
    cr_assert_str_eq(err, D "lift.csv: want columns channel,roas,saturation[,roas_sd] or "
                          "channel,spend,response[,response_sd]");
    bd_pi_free(&s);
}

Test(prior_import, lift_tests)
{
    bd_pi_set_t s = {0};
    cr_assert(bd_pi_lifts(D "lift.csv", &s, err, sizeof err), "%s", err);
    const bd_pi_chan_t *c = find(&s, "search");
    cr_assert_eq(c->n_lift, 1);
    cr_assert_eq(c->lift[0].spend, 14000);
    cr_assert_eq(c->lift[0].conversions, 420);
    cr_assert_eq(c->lift[0].se, 60);
    cr_assert_eq(c->lift_seconds[0], 14 * 86400, "both days included");
    bd_pi_free(&s);
    cr_assert_not(bd_pi_lifts(D "curves_params.csv", &s, err, sizeof err));
    cr_assert_str_eq(err, D "curves_params.csv: want columns channel,spend,conversions,se and cycles or start,end");
    bd_pi_free(&s);
}
