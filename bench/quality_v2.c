/* quality_v2.c: bench_quality's goal and prior parts (quality_v2.h). Every
 * number is computed by this run. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "quality_v2.h"
#include "sim/sim.h"

#define QV2_GOAL_FROM 48 /* goal metrics from this cycle on: two days to learn and ramp */
#define QV2_PASS(c) ((c) ? "PASS" : "FAIL")

static int qv2_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The *.yaml files of dir, sorted; *n of them (free each and the array). */
static char **qv2_list(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    size_t cap = 8;
    char **v = bd_xmalloc(cap * sizeof *v);
    *n = 0;
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l < 6 || strcmp(de->d_name + l - 5, ".yaml")) continue;
            if (*n == cap) v = bd_xrealloc(v, (cap *= 2) * sizeof *v);
            v[*n] = bd_xmalloc(strlen(dir) + l + 2);
            sprintf(v[*n], "%s/%s", dir, de->d_name);
            (*n)++;
        }
        closedir(d);
    }
    qsort(v, *n, sizeof *v, qv2_cmp);
    return v;
}

/* One goal scenario over R runs: the means of sim_goal_stats and the
 * spread of `meet` over runs. */
static bool qv2_goal_scenario(FILE *f, const char *file, int runs)
{
    char err[8192];
    sim_scenario_t *sc;
    if (sim_scenario_load(file, &sc, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    int R = runs > 0 ? runs : sc->runs > 0 ? sc->runs : 5;
    sim_goal_stats_t m = {0};
    double meet[64], worst = 0;
    bool ok = sc->pol->goal.kind != BD_GOAL_BUDGET;
    if (!ok) fprintf(stderr, "%s: the portfolio has no target goal\n", file);
    for (int r = 0; r < R && r < 64 && ok; r++) {
        uint64_t seed0 = sc->cfg->seed;
        sc->cfg->seed = r == 0 ? seed0 : bd_mix64(seed0 + (uint64_t)r);
        sim_truth_t *tr = sim_truth_new(sc, bd_mix64(sc->seed + (uint64_t)r * 0x9e37));
        sim_result_t res;
        if (sim_run(sc, tr, SIM_POL_ENGINE, NULL, &res, err, sizeof err) != BD_OK) {
            fprintf(stderr, "%s: %s\n", file, err);
            ok = false;
        } else {
            sim_goal_stats_t g;
            sim_goal_stats(sc, tr, &res, QV2_GOAL_FROM, &g);
            meet[r] = g.meet;
            worst = fmax(worst, fabs(g.meet - 1));
            m.target = g.target;
            m.meet += g.meet / R;
            m.meet_early += g.meet_early / R;
            m.total_ratio += g.total_ratio / R;
            m.oracle_min += g.oracle_min / R;
            m.oracle_max += g.oracle_max / R;
            m.eng_min += g.eng_min / R;
            m.eng_max += g.eng_max / R;
            m.net_regret += g.net_regret / R;
            sim_result_free(&res);
        }
        sim_truth_free(tr);
        sc->cfg->seed = seed0;
    }
    if (ok) {
        double sd = 0;
        for (int r = 0; r < R && R > 1; r++) sd += (meet[r] - m.meet) * (meet[r] - m.meet) / (R - 1);
        sd = sqrt(sd);
        const char *nm = sc->name;
        fprintf(f, "%-14s %-12s %7.4f %8.4f %6.4f %8.4f %8.4f %5.0f%%/%3.0f%% %5.0f%%/%3.0f%% %7.2f%%\n", nm,
                bd_goal_name(sc->pol->goal.kind), sc->pol->goal.target, m.meet, sd, m.meet_early,
                m.total_ratio, 100 * m.oracle_min, 100 * m.oracle_max, 100 * m.eng_min,
                100 * m.eng_max, 100 * m.net_regret);
        fprintf(f, "goal.%s.marginal_over_target: %.4f ratio (mean over %d runs, cycles >= %d; worst run off by %.4f)\n",
                nm, m.meet, R, QV2_GOAL_FROM, worst);
        fprintf(f, "goal.%s.total_over_oracle: %.4f ratio\n", nm, m.total_ratio);
        fprintf(f, "goal.%s.net_regret: %.2f %% (value minus target x spend, against the oracle's)\n", nm,
                100 * m.net_regret);
        if (m.oracle_min >= 0.9) {
            fprintf(f, "goal.%s: infeasible: the target is above the marginal return of the range's min "
                       "in %.0f%% of cycles; the engine spent the min in %.0f%%\n",
                    nm, 100 * m.oracle_min, 100 * m.eng_min);
            fprintf(f, "target.goal.%s.infeasible_at_min: %s (%.0f%% of cycles at the min)\n", nm,
                    QV2_PASS(m.eng_min >= 0.9), 100 * m.eng_min);
        } else if (m.oracle_max >= 0.9) {
            fprintf(f, "goal.%s: infeasible: the target is below the marginal return of the range's max "
                       "in %.0f%% of cycles; the engine spent the max in %.0f%%\n",
                    nm, 100 * m.oracle_max, 100 * m.eng_max);
            fprintf(f, "target.goal.%s.infeasible_at_max: %s (%.0f%% of cycles at the max)\n", nm,
                    QV2_PASS(m.eng_max >= 0.9), 100 * m.eng_max);
        } else {
            fprintf(f, "target.goal.%s.within_5pct: %s (marginal / target %.4f on average)\n", nm,
                    QV2_PASS(fabs(m.meet - 1) <= 0.05), m.meet);
        }
    }
    sim_scenario_free(sc);
    return ok;
}

bool qv2_goals(FILE *f, const char *dir, int runs)
{
    size_t n;
    char **files = qv2_list(dir, &n);
    fprintf(f, "\n== goals: target ROAS / CPA (%s; metrics from cycle %d)\n", dir, QV2_GOAL_FROM);
    fprintf(f, "%-14s %-12s %7s %8s %6s %8s %8s %10s %10s %8s\n", "scenario", "goal", "target",
            "marg/tgt", "(sd)", "early", "tot/orc", "orc min/max", "eng min/max", "net reg");
    bool ok = n > 0;
    if (!ok) fprintf(stderr, "no goal scenarios in %s\n", dir);
    for (size_t i = 0; i < n; i++) {
        ok = qv2_goal_scenario(f, files[i], runs) && ok;
        free(files[i]);
    }
    free(files);
    fprintf(f, "(marg/tgt: the true marginal return of the last unit at the total the engine spent,\n"
               " over the target; early: the same over the first %d cycles; tot/orc: the engine's\n"
               " total over the total where the true marginal meets the target)\n",
            QV2_GOAL_FROM);
    return ok;
}

/* ---- priors ------------------------------------------------------------------------ */

#define QV2_EARLY 24  /* "the first 24 cycles" */
#define QV2_WIN 24    /* window of the outgrown test */
#define QV2_SLACK 0.01 /* a wrong prior is outgrown once within 1 point of the flat prior's regret */

/* Plays dir/name.yaml R times (0: its runs): per cycle regret averaged
 * over runs into rho (cycles entries, malloc'd), the first QV2_EARLY
 * cycles' regret and the whole run's (means over runs). */
static bool qv2_prior_play(const char *dir, const char *name, int runs, double **rho, int *T,
                           double *early, double *all, int *R_out)
{
    char path[1024], err[8192];
    snprintf(path, sizeof path, "%s/%s.yaml", dir, name);
    sim_scenario_t *sc;
    if (sim_scenario_load(path, &sc, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    int R = runs > 0 ? runs : sc->runs > 0 ? sc->runs : 10;
    *T = sc->cycles;
    *rho = bd_xcalloc((size_t)*T, sizeof(double));
    *early = *all = 0;
    bool ok = true;
    uint64_t seed0 = sc->cfg->seed;
    for (int r = 0; r < R && ok; r++) {
        sc->cfg->seed = r == 0 ? seed0 : bd_mix64(seed0 + (uint64_t)r);
        sim_truth_t *tr = sim_truth_new(sc, bd_mix64(sc->seed + (uint64_t)r * 0x9e37));
        sim_result_t res;
        if (sim_run(sc, tr, SIM_POL_ENGINE, NULL, &res, err, sizeof err) != BD_OK) {
            fprintf(stderr, "%s: %s\n", path, err);
            ok = false;
        } else {
            for (int t = 0; t < *T; t++) (*rho)[t] += res.rho[t] / R;
            *early += sim_regret_window(tr, &res, 0, QV2_EARLY) / R;
            *all += res.regret / R;
            sim_result_free(&res);
        }
        sim_truth_free(tr);
    }
    sc->cfg->seed = seed0;
    *R_out = R;
    sim_scenario_free(sc);
    return ok;
}

/* Mean of rho over [t, t + QV2_WIN). */
static double qv2_win(const double *rho, int t)
{
    double m = 0;
    for (int u = t; u < t + QV2_WIN; u++) m += rho[u];
    return m / QV2_WIN;
}

bool qv2_priors(FILE *f, const char *dir, int runs)
{
    static const char *const names[3] = {"prior_flat", "prior_correct", "prior_wrong"};
    double *rho[3] = {NULL, NULL, NULL}, early[3], all[3];
    int T[3], R = 0;
    bool ok = true;
    fprintf(f, "\n== priors: configured priors against the built-in weak one (%s)\n", dir);
    for (int v = 0; v < 3 && ok; v++)
        ok = qv2_prior_play(dir, names[v], runs, &rho[v], &T[v], &early[v], &all[v], &R);
    if (ok && (T[0] != T[1] || T[0] != T[2] || T[0] < 2 * QV2_WIN)) {
        fprintf(stderr, "%s: the prior scenarios must have the same length (>= %d cycles)\n", dir, 2 * QV2_WIN);
        ok = false;
    }
    if (ok) {
        fprintf(f, "%-14s %16s %12s\n", "scenario", "regret 0-23", "whole run");
        for (int v = 0; v < 3; v++) {
            fprintf(f, "%-14s %15.2f%% %11.2f%%\n", names[v], 100 * early[v], 100 * all[v]);
            fprintf(f, "prior.%s.regret_first_%d: %.4f %% (mean over %d runs)\n", names[v], QV2_EARLY,
                    100 * early[v], R);
        }
        /* outgrown: from this cycle on, every QV2_WIN-cycle window of the
         * wrong prior's regret is within QV2_SLACK of the flat prior's */
        int from = -1;
        for (int t = T[0] - QV2_WIN; t >= 0; t--) {
            if (qv2_win(rho[2], t) > qv2_win(rho[0], t) + QV2_SLACK) break;
            from = t;
        }
        double ratio = early[0] > 0 ? early[1] / early[0] : 0;
        fprintf(f, "prior.correct_over_flat_first_%d: %.4f ratio\n", QV2_EARLY, ratio);
        fprintf(f, "target.prior.correct_halves_first_%d: %s (%.2f%% against %.2f%%)\n", QV2_EARLY,
                QV2_PASS(early[1] <= 0.5 * early[0]), 100 * early[1], 100 * early[0]);
        if (from >= 0)
            fprintf(f, "prior.wrong_outgrown_after: %d cycles (from then on every %d-cycle window of its "
                       "regret is within %.0f point of the flat prior's)\n",
                    from, QV2_WIN, 100 * QV2_SLACK);
        else
            fprintf(f, "prior.wrong_outgrown_after: never within %d cycles\n", T[0]);
        fprintf(f, "target.prior.wrong_outgrown: %s (%s)\n", QV2_PASS(from >= 0),
                from >= 0 ? "cycles printed above" : "not within the run");
    }
    for (int v = 0; v < 3; v++) free(rho[v]);
    return ok;
}
