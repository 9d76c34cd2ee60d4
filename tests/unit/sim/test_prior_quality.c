/* test_prior_quality.c: configured priors in closed loop
 * (bench/scenarios/priors: the same sparse, high-value truth under no
 * prior, the true curves as priors, and the best and worst channels'
 * priors swapped, each worth 48 cycles): a correct prior cuts the regret
 * of the first 24 cycles well below the flat prior's, and a wrong one is
 * outgrown (its regret over the last week within a point of the flat
 * prior's). Few runs; bench_quality --only prior has the full numbers. */
#include <criterion/criterion.h>
#include <math.h>
#include "sim/sim.h"

/* Regret of cycles [0, 24) and of the last 168 cycles, means over R runs. */
static void play(const char *path, int R, double *early, double *late)
{
    sim_scenario_t *sc = NULL;
    char err[4096];
    cr_assert_eq(sim_scenario_load(path, &sc, err, sizeof err), BD_OK, "%s", err);
    uint64_t seed0 = sc->cfg->seed;
    *early = *late = 0;
    for (int r = 0; r < R; r++) {
        sc->cfg->seed = r == 0 ? seed0 : bd_mix64(seed0 + (uint64_t)r);
        sim_truth_t *tr = sim_truth_new(sc, bd_mix64(sc->seed + (uint64_t)r * 0x9e37));
        sim_result_t res;
        cr_assert_eq(sim_run(sc, tr, SIM_POL_ENGINE, NULL, &res, err, sizeof err), BD_OK, "%s", err);
        *early += sim_regret_window(tr, &res, 0, 24) / R;
        *late += sim_regret_window(tr, &res, tr->T - 168, tr->T) / R;
        sim_result_free(&res);
        sim_truth_free(tr);
    }
    sim_scenario_free(sc);
}

Test(prior_quality, correct_prior_helps_and_wrong_prior_is_outgrown, .timeout = 120)
{
    double fe, fl, ce, cl, we, wl;
    play("bench/scenarios/priors/prior_flat.yaml", 5, &fe, &fl);
    play("bench/scenarios/priors/prior_correct.yaml", 5, &ce, &cl);
    play("bench/scenarios/priors/prior_wrong.yaml", 5, &we, &wl);
    cr_assert_lt(ce, 0.6 * fe, "first 24 cycles: correct %.2f%%, flat %.2f%%", 100 * ce, 100 * fe);
    cr_assert_gt(we, fe, "a wrong prior costs at first: %.2f%% against %.2f%%", 100 * we, 100 * fe);
    cr_assert_lt(wl, fl + 0.01, "last week: wrong %.2f%%, flat %.2f%%", 100 * wl, 100 * fl);
}
