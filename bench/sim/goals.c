/* goals.c: what a target goal achieved in one simulated run (sim.h
 * sim_goal_stats): for each cycle, the true marginal return at the total
 * the engine spent (the true curves' water-filling multiplier at that
 * total, optimally split within the guardrails) against the target, and
 * the total the truth asks for (the oracle's: where the true multiplier
 * meets the target, within the budget range). */
#include <math.h>
#include <stdlib.h>
#include "budgetd/goal.h"
#include "sim.h"

void sim_goal_stats(const sim_scenario_t *sc, const sim_truth_t *tr, const sim_result_t *res,
                    int from, sim_goal_stats_t *out)
{
    const bd_policy_t *pol = sc->pol;
    size_t n = tr->n;
    double R = bd_goal_marginal_target(pol);
    double *scratch = bd_xcalloc(BD_GOAL_SCRATCH(n) + 3 * n, sizeof(double));
    double *lo = scratch + BD_GOAL_SCRATCH(n), *hi = lo + n, *x = hi + n;
    double min_c = floor(pol->budget_range.min * 100 + 0.5), max_c = floor(pol->budget * 100 + 0.5);
    double meet = 0, early = 0, ratio = 0, net = 0, onet = 0;
    int omin = 0, omax = 0, emin = 0, emax = 0, cnt = 0, ecnt = 0;
    *out = (sim_goal_stats_t){.target = R};
    for (int t = 0; t < tr->T; t++) {
        const bd_curve_t *cv = &tr->curve[(size_t)t * n];
        double T = 0, caps = 0;
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)t * n + i;
            lo[i] = tr->present[k] ? tr->lo[k] : 0;
            hi[i] = tr->present[k] ? tr->hi[k] : 0;
            T += res->alloc[k];
            caps += hi[i];
        }
        double a = fmin(min_c, floor(caps * 100)), b = fmin(max_c, floor(caps * 100)), m;
        double Ts = bd_goal_total(cv, 1, n, lo, hi, a, b, R, &m, scratch) / 100;
        double mt = bd_goal_marginal(cv, lo, hi, n, T, scratch);
        if (t < from) {
            early += mt / R;
            ecnt++;
            continue;
        }
        cnt++;
        meet += mt / R;
        ratio += Ts > 0 ? T / Ts : 1;
        omin += Ts <= a / 100 + 0.005;
        omax += Ts >= b / 100 - 0.005;
        emin += T <= a / 100 + 0.01;
        emax += T >= b / 100 - 0.01;
        bd_waterfill_solve(cv, lo, hi, n, Ts, x);
        onet += sim_value(cv, x, n) - R * Ts;
        net += res->v[t] - R * T;
    }
    if (cnt) {
        out->meet = meet / cnt;
        out->total_ratio = ratio / cnt;
        out->oracle_min = (double)omin / cnt;
        out->oracle_max = (double)omax / cnt;
        out->eng_min = (double)emin / cnt;
        out->eng_max = (double)emax / cnt;
        out->net_regret = onet > 0 ? 1 - net / onet : 0;
    }
    out->meet_early = ecnt ? early / ecnt : NAN;
    free(scratch);
}
