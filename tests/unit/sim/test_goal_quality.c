/* test_goal_quality.c: target goals in closed loop (bench/scenarios/goals,
 * played through the engine's own decision path in the simulator): a
 * feasible target is met on average within 5% (the true marginal return
 * at the total spent over the target), and the engine's totals follow the
 * true optimum's; an infeasible target spends the end of the range the
 * truth asks for. Few runs; bench_quality --only goal has the full
 * numbers. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "sim/sim.h"

/* Means of sim_goal_stats over R runs, from cycle 48. */
static sim_goal_stats_t play(const char *path, int R)
{
    sim_scenario_t *sc = NULL;
    char err[4096];
    cr_assert_eq(sim_scenario_load(path, &sc, err, sizeof err), BD_OK, "%s", err);
    sim_goal_stats_t m = {0};
    uint64_t seed0 = sc->cfg->seed;
    for (int r = 0; r < R; r++) {
        sc->cfg->seed = r == 0 ? seed0 : bd_mix64(seed0 + (uint64_t)r);
        sim_truth_t *tr = sim_truth_new(sc, bd_mix64(sc->seed + (uint64_t)r * 0x9e37));
        sim_result_t res;
        cr_assert_eq(sim_run(sc, tr, SIM_POL_ENGINE, NULL, &res, err, sizeof err), BD_OK, "%s", err);
        cr_assert_eq(res.violations, 0);
        sim_goal_stats_t g;
        sim_goal_stats(sc, tr, &res, 48, &g);
        m.meet += g.meet / R;
        m.total_ratio += g.total_ratio / R;
        m.eng_min += g.eng_min / R;
        m.eng_max += g.eng_max / R;
        m.oracle_min += g.oracle_min / R;
        m.oracle_max += g.oracle_max / R;
        sim_result_free(&res);
        sim_truth_free(tr);
    }
    sim_scenario_free(sc);
    return m;
}

TestSuite(goal_quality, .timeout = 120);

Test(goal_quality, target_roas_is_met_within_5pct)
{
    sim_goal_stats_t m = play("bench/scenarios/goals/target_roas.yaml", 6);
    cr_assert(fabs(m.meet - 1) <= 0.05, "marginal / target %.4f", m.meet);
    cr_assert(fabs(m.total_ratio - 1) <= 0.15, "total / oracle %.4f", m.total_ratio);
    cr_assert_eq(m.oracle_min, 0);
    cr_assert_eq(m.oracle_max, 0);
}

Test(goal_quality, target_cpa_is_met_within_5pct)
{
    sim_goal_stats_t m = play("bench/scenarios/goals/target_cpa.yaml", 6);
    cr_assert(fabs(m.meet - 1) <= 0.05, "marginal / target %.4f", m.meet);
}

Test(goal_quality, infeasible_targets_spend_the_range_end)
{
    sim_goal_stats_t m = play("bench/scenarios/goals/target_above.yaml", 2);
    cr_assert(m.oracle_min >= 0.99 && m.eng_min >= 0.95, "oracle %.2f engine %.2f at the min",
              m.oracle_min, m.eng_min);
    m = play("bench/scenarios/goals/target_below.yaml", 2);
    cr_assert(m.oracle_max >= 0.99 && m.eng_max >= 0.95, "oracle %.2f engine %.2f at the max",
              m.oracle_max, m.eng_max);
}
