/* bench_quality.c: the decision-quality benchmark.
 *
 * Part 1 plays every scenario of bench/scenarios/ in the closed-loop
 * simulator: budgetd's own decision path against the oracle and five
 * baselines (static initial split, equal split, weekly re-fit greedy,
 * epsilon-greedy, the best time-invariant split in hindsight), the same
 * environment and random numbers for all. Per scenario: total regret, the
 * second half's regret with its spread over runs, returns relative to the
 * best flat and the static split, regret per window between events, fault
 * detection, cap settling and slow-channel funding where they apply, and
 * PASS/FAIL for the scenario's named targets (bench/sim/scenario.c).
 * Part 3 (quality_v2.c) plays the v2 goal scenarios of bench/scenarios/goals
 * and the prior scenarios of bench/scenarios/priors.
 * Part 2 runs the Bernoulli-bandit sanity benchmarks of the Beta-Bernoulli
 * model (Chapelle & Li 2011 grid; Besson & Kaufmann problems 1 and 2) and
 * prints the published reference numbers next to the measured ones.
 *
 * Output: tables, then `name: value unit` lines. Every number is computed by
 * this run; nothing is tuned to a target. */
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "quality_v2.h"
#include "sim/sim.h"

typedef struct {
    const char *dir;
    const char **files;
    size_t n_files;
    int runs;
    int threads;
    bool sim, bandit, quick, diag, goal, prior;
    int trace;              /* > 0: print mean per-cycle regret per block of this many cycles */
    const char *log;
    const char *budgetd;
} opts_t;

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_quality [--scenarios DIR] [--scenario FILE]... [--runs N]\n"
            "                     [--only sim|bandit|goal|prior] [--threads N] [--quick]\n"
            "                     [--log PREFIX | --no-log] [--budgetd PATH] [--trace N]\n"
            "  --runs N       replications per scenario (default: the scenario's `runs`, else 10)\n"
            "  --threads N    scenarios (and bandit cells) run on N threads; output is\n"
            "                 the same for any N (default: the CPUs online)\n"
            "  --trace N      print each policy's mean regret (%%) per block of N cycles\n"
            "  --diag         decompose the engine's regret (posterior mean, allocator,\n"
            "                 explore, risk, ramp) and print it per run and on average\n"
            "  --log PREFIX   write PREFIX.events.jsonl (the engine's input, JSON Lines),\n"
            "                 PREFIX.config.yaml and PREFIX.decisions.jsonl for the first\n"
            "                 scenario's first run (the first without operator resumes),\n"
            "                 then check `budgetd replay` reproduces\n"
            "                 the decisions byte for byte (budgetd at --budgetd, default\n"
            "                 ../budgetd from this program's directory); default PREFIX:\n"
            "                 sim_first in this program's directory\n");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The *.yaml files of dir, sorted (stable output order). */
static size_t list_scenarios(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    size_t n = 0, cap = 16;
    char **v = bd_xmalloc(cap * sizeof *v);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t l = strlen(de->d_name);
            if (l < 6 || strcmp(de->d_name + l - 5, ".yaml")) continue;
            if (n == cap) v = bd_xrealloc(v, (cap *= 2) * sizeof *v);
            char *p = bd_xmalloc(strlen(dir) + l + 2);
            sprintf(p, "%s/%s", dir, de->d_name);
            v[n++] = p;
        }
        closedir(d);
    }
    qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

typedef struct {
    double ret, regret, regret_after, regret_after_sd, overspend;
    int recovery;       /* worst over runs; -1 never; -2 none */
    int violations, kills, killed, held;
    unsigned resets;
} agg_t;

static void fmt_recovery(int r, char *buf, size_t len)
{
    if (r == -2) snprintf(buf, len, "-");
    else if (r == -1) snprintf(buf, len, "never");
    else snprintf(buf, len, "%d", r);
}

/* Writes the files of --log and returns the streams for the engine run. */
static bool open_log(const char *prefix, const sim_scenario_t *sc, sim_log_t *lg)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.config.yaml", prefix);
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fputs(sc->config_text, f);
    fclose(f);
    snprintf(path, sizeof path, "%s.events.jsonl", prefix);
    lg->events = fopen(path, "w");
    snprintf(path, sizeof path, "%s.decisions.jsonl", prefix);
    lg->decisions = fopen(path, "w");
    return lg->events && lg->decisions;
}

/* `budgetd replay` over the written log must give the same records. */
static void check_replay(const opts_t *o, bool resumed)
{
    if (resumed) {
        printf("sim.replay_identical: n/a (the run has operator resumes, which are Redis actions,"
               " not events in the log)\n");
        return;
    }
    if (access(o->budgetd, X_OK) != 0) {
        printf("replay check skipped: %s not found\n", o->budgetd);
        return;
    }
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' replay -c '%s.config.yaml' '%s.events.jsonl' -o '%s.replay.jsonl' 2>/dev/null && "
             "cmp -s '%s.decisions.jsonl' '%s.replay.jsonl' 2>/dev/null",
             o->budgetd, o->log, o->log, o->log, o->log, o->log);
    int rc = system(cmd);
    printf("sim.replay_identical: %s (budgetd replay of %s.events.jsonl vs in-process decisions)\n",
           rc == 0 ? "yes" : "NO", o->log);
}

/* One scenario: `runs` replications (different environment and engine
 * seeds), every policy on the same truth within a replication. Fills out
 * (per policy) and rr (per run). Returns false on an engine error
 * (reported). */
static bool play_runs(FILE *f, const char *file, sim_scenario_t *sc, const opts_t *o, int R,
                      bool write_log, bool *log_resumed, agg_t *out, int *rec_runs, double *ra,
                      sim_runstats_t *rr)
{
    char err[8192];
    uint64_t seed0 = sc->cfg->seed;
    bool ok = true;
    double dg[SIM_D__COUNT] = {0};
    for (int r = 0; r < R && ok; r++) {
        sc->cfg->seed = r == 0 ? seed0 : bd_mix64(seed0 + (uint64_t)r);
        sim_truth_t *tr = sim_truth_new(sc, bd_mix64(sc->seed + (uint64_t)r * 0x9e37));
        for (int p = 0; p < SIM_POL__COUNT && ok; p++) {
            sim_log_t lg = {0}, *lgp = NULL;
            if (p == SIM_POL_ENGINE && r == 0 && write_log) {
                if (!open_log(o->log, sc, &lg)) fprintf(stderr, "cannot write %s.*\n", o->log);
                else lgp = &lg;
            }
            if (p == SIM_POL_ENGINE && o->diag) {
                lg.diag = true;
                lgp = &lg;
            }
            sim_result_t res;
            if (sim_run(sc, tr, (sim_policy_t)p, lgp, &res, err, sizeof err) != BD_OK) {
                fprintf(stderr, "%s: %s: %s\n", file, sim_policy_name((sim_policy_t)p), err);
                ok = false;
            }
            /* the operator's resume is a Redis action, not an event: a
             * replay of the log cannot see it */
            if (lg.events && sc->resume_after > 0 && res.kill_trips > 0) *log_resumed = true;
            if (lg.events) fclose(lg.events);
            if (lg.decisions) fclose(lg.decisions);
            if (o->trace > 0 && r == 0) {
                fprintf(f, "trace %-15s", sim_policy_name((sim_policy_t)p));
                for (int t0 = 0; t0 < sc->cycles; t0 += o->trace) {
                    double m = 0;
                    int k = 0;
                    for (int t = t0; t < sc->cycles && t < t0 + o->trace; t++, k++) m += res.rho[t];
                    fprintf(f, " %5.1f", 100 * m / k);
                }
                fprintf(f, "\n");
            }
            if (p == SIM_POL_ENGINE && o->diag && res.diag_n > 0) {
                fprintf(f, "diag run %d:", r);
                for (int v = 0; v < SIM_D__COUNT; v++) {
                    fprintf(f, " %.2f", 100 * res.diag[v] / res.diag_n);
                    dg[v] += res.diag[v] / res.diag_n / R;
                }
                fprintf(f, " (%% regret per variant, %d cycles)\n", res.diag_n);
            }
            agg_t *a = &out[p];
            a->ret += res.ret / R;
            a->regret += res.regret / R;
            a->regret_after += res.regret_after / R;
            ra[(size_t)r * SIM_POL__COUNT + (size_t)p] = res.regret_after;
            sim_runstats_add(sc, tr, (sim_policy_t)p, &res, &rr[r]);
            if (p == SIM_POL_ENGINE) rec_runs[r] = res.recovery;
            a->overspend += res.overspend / R;
            if (res.recovery == -1 || a->recovery == -1) a->recovery = -1;
            else if (res.recovery > a->recovery) a->recovery = res.recovery;
            a->violations += res.violations;
            a->kills += res.kill_trips;
            a->killed += res.killed_cycles;
            a->held += res.held_cycles;
            a->resets += res.resets;
            sim_result_free(&res);
        }
        sim_truth_free(tr);
    }
    for (int p = 0; p < SIM_POL__COUNT && R > 1; p++) {
        double s2 = 0;
        for (int r = 0; r < R; r++) {
            double d = ra[(size_t)r * SIM_POL__COUNT + (size_t)p] - out[p].regret_after;
            s2 += d * d;
        }
        out[p].regret_after_sd = sqrt(s2 / (R - 1));
    }
    if (o->diag && ok) {
        fprintf(f, "regret decomposition of budgetd (mean over runs of the per-cycle regret, cycles >= %d):\n",
               SIM_WARMUP);
        for (int v = 0; v < SIM_D__COUNT; v++)
            fprintf(f, "  %-32s %6.2f%%\n", sim_diag_name((sim_diag_t)v), 100 * dg[v]);
    }
    return ok;
}

/* The table and lines every scenario had before the time-structure block,
 * and the drift-and-shock targets (`targets: true`). */
static void print_base(FILE *f, const sim_scenario_t *sc, int R, const agg_t *out, const int *rec_runs)
{
    fprintf(f, "%-15s %12s %8s %15s %8s %6s %6s %7s %10s\n", "policy", "return", "regret",
           "regret>20 (sd)", "recover", "viol", "kills", "killed", "overspend");
    for (int p = 0; p < SIM_POL__COUNT; p++) {
        const agg_t *a = &out[p];
        char rec[16];
        fmt_recovery(a->recovery, rec, sizeof rec);
        char kills[16], killed[16];
        if (p == SIM_POL_ENGINE) {
            snprintf(kills, sizeof kills, "%d", a->kills);
            snprintf(killed, sizeof killed, "%d", a->killed);
        } else {
            snprintf(kills, sizeof kills, "n/a");
            snprintf(killed, sizeof killed, "n/a");
        }
        fprintf(f, "%-15s %12.0f %7.2f%% %7.2f%% (%4.2f) %8s %6d %6s %7s %10.0f\n",
               sim_policy_name((sim_policy_t)p), a->ret, 100 * a->regret, 100 * a->regret_after,
               100 * a->regret_after_sd, rec, a->violations, kills, killed, a->overspend);
    }
    fprintf(f, "(return: expected %s under the true curves, mean per run; regret = 1 - return/oracle;"
           " regret>20: cycles >= %d;\n recover: worst cycles after a shock/arrival until %d"
           " cycles in a row are within %.0f%% of the oracle;\n viol: decided allocations breaking"
           " sum<=budget/min/max, all runs; kills: kill-switch trips, all runs; killed: cycles"
           " spent killed;\n oracle: exact KKT optimum of the true curves under the box [min,max]"
           " and the total; the ramp and lab caps are\n per-step limits and are not imposed on it)\n",
           sc->pol->objective == BD_OBJ_REVENUE ? "revenue" : "conversions", SIM_WARMUP,
           SIM_RECOVER_RUN, 100 * SIM_RECOVER_TOL);
    const agg_t *e = &out[SIM_POL_ENGINE];
    char rec[16];
    fmt_recovery(e->recovery, rec, sizeof rec);
    fprintf(f, "sim.%s.budgetd.regret: %.4f ratio\n", sc->name, e->regret);
    fprintf(f, "sim.%s.budgetd.regret_after20: %.4f ratio\n", sc->name, e->regret_after);
    fprintf(f, "sim.%s.budgetd.recovery: %s cycles (worst run)\n", sc->name, rec);
    if (e->recovery != -2) {
        int within = 0;
        fprintf(f, "sim.%s.budgetd.recovery_runs:", sc->name);
        for (int r = 0; r < R; r++) {
            char b[16];
            fmt_recovery(rec_runs[r], b, sizeof b);
            fprintf(f, "%s%s", r ? "," : " ", b);
            within += rec_runs[r] >= 0 && rec_runs[r] <= 20;
        }
        fprintf(f, " cycles (per run; %d of %d within 20)\n", within, R);
    }
    fprintf(f, "sim.%s.budgetd.violations: %d count\n", sc->name, e->violations);
    fprintf(f, "sim.%s.budgetd.kill_trips: %d count\n", sc->name, e->kills);
    fprintf(f, "sim.%s.budgetd.held_cycles: %d count\n", sc->name, e->held);
    fprintf(f, "sim.%s.budgetd.model_resets: %u count (change-point resets, all channels and runs)\n",
           sc->name, e->resets);
    const sim_policy_t cmp[] = {SIM_POL_STATIC, SIM_POL_REFIT, SIM_POL_EQUAL, SIM_POL_EGREEDY};
    for (size_t i = 0; i < sizeof cmp / sizeof *cmp; i++) {
        const agg_t *b = &out[cmp[i]];
        const char *nm = cmp[i] == SIM_POL_STATIC ? "static" : cmp[i] == SIM_POL_REFIT ? "refit"
                         : cmp[i] == SIM_POL_EQUAL ? "equal" : "egreedy";
        if (e->regret_after > 0)
            fprintf(f, "sim.%s.regret_ratio_%s: %.2f x (baseline regret>20 / budgetd regret>20)\n",
                   sc->name, nm, b->regret_after / e->regret_after);
        else
            fprintf(f, "sim.%s.regret_ratio_%s: inf x (budgetd regret>20 <= 0)\n", sc->name, nm);
    }
    if (sc->targets) {
        const agg_t *st = &out[SIM_POL_STATIC], *rf = &out[SIM_POL_REFIT];
        fprintf(f, "target.sim.%s.regret_after20_le_5pct: %s (%.2f%%)\n", sc->name,
               e->regret_after <= 0.05 ? "PASS" : "MISS", 100 * e->regret_after);
        fprintf(f, "target.sim.%s.2x_below_refit: %s (%.2fx)\n", sc->name,
               rf->regret_after >= 2 * e->regret_after ? "PASS" : "MISS",
               e->regret_after > 0 ? rf->regret_after / e->regret_after : INFINITY);
        fprintf(f, "target.sim.%s.2x_below_static: %s (%.2fx)\n", sc->name,
               st->regret_after >= 2 * e->regret_after ? "PASS" : "MISS",
               e->regret_after > 0 ? st->regret_after / e->regret_after : INFINITY);
        if (e->recovery != -2)
            fprintf(f, "target.sim.%s.recovery_le_20: %s (%s)\n", sc->name,
                   e->recovery >= 0 && e->recovery <= 20 ? "PASS" : "MISS", rec);
        fprintf(f, "target.sim.%s.zero_violations: %s (%d)\n", sc->name,
               e->violations == 0 ? "PASS" : "MISS", e->violations);
    }
}

/* Whether the scenario has a data fault (detection is then reported). */
static bool has_fault_events(const sim_scenario_t *sc)
{
    for (size_t e = 0; e < sc->n_ev; e++) {
        sim_event_kind_t k = sc->ev[e].kind;
        if (k == SIM_BREAK || k == SIM_SILENT || k == SIM_NOCONV || k == SIM_VALUE_ERR) return true;
    }
    return false;
}

/* The time-structure block: second-half regret of every policy with its
 * spread over runs, the ratios to the best flat and the static split, and
 * the engine's event, fault, cap and lag metrics. */
static void print_time(FILE *f, const sim_scenario_t *sc, int R, const sim_runstats_t *rr, const sim_summary_t *s)
{
    const char *nm = sc->name;
    int half = sc->cycles / 2;
    double ret[SIM_POL__COUNT] = {0};
    for (int r = 0; r < R; r++)
        for (int p = 0; p < SIM_POL__COUNT; p++) ret[p] += rr[r].ret_half[p];
    fprintf(f, "second half (cycles >= %d), %d runs:\n%-15s %8s %7s %8s %8s %9s\n", half, R, "policy",
           "regret", "(sd)", "max", "vs flat", "vs static");
    for (int p = 0; p < SIM_POL__COUNT; p++) {
        double m, sd, mx;
        sim_half_stats(rr, R, p, &m, &sd, &mx);
        fprintf(f, "%-15s %7.2f%% (%4.2f) %7.2f%% %8.4f %9.4f\n", sim_policy_name((sim_policy_t)p),
               100 * m, 100 * sd, 100 * mx, ret[p] / ret[SIM_POL_FLAT], ret[p] / ret[SIM_POL_STATIC]);
    }
    fprintf(f, "(vs flat, vs static: second-half return over the best time-invariant split's in"
           " hindsight, over the static\n initial split's; > 1 = ahead. oracle / best flat split:"
           " %.4f, what knowing the time structure is worth)\n", s->oracle_vs_flat);
    fprintf(f, "sim.%s.budgetd.regret_half: %.4f ratio (mean of %d runs; sd %.4f, max %.4f)\n", nm,
           s->half, R, s->half_sd, s->half_max);
    fprintf(f, "sim.%s.budgetd.regret_half_runs:", nm);
    for (int r = 0; r < R; r++) fprintf(f, "%s%.4f", r ? "," : " ", rr[r].half[SIM_POL_ENGINE]);
    fprintf(f, " ratio (per run)\n");
    fprintf(f, "sim.%s.budgetd.vs_flat: %.4f ratio (second-half return / best flat split's)\n", nm, s->vs_flat);
    fprintf(f, "sim.%s.budgetd.vs_static: %.4f ratio (second-half return / static split's)\n", nm,
           s->vs_static);
    fprintf(f, "sim.%s.oracle.vs_flat: %.4f ratio\n", nm, s->oracle_vs_flat);
    int b[SIM_MAX_WIN + 2];
    size_t w = sim_window_bounds(sc, b);
    if (w > 1) {
        fprintf(f, "sim.%s.budgetd.regret_after_event: %.4f ratio (cycles >= %d; mean of %d runs, max %.4f)\n",
               nm, s->after, b[1], R, s->after_max);
        fprintf(f, "sim.%s.budgetd.regret_windows:", nm);
        for (size_t j = 0; j < w; j++) {
            double m = 0;
            for (int r = 0; r < R; r++) m += rr[r].win[j] / R;
            fprintf(f, " [%d,%d) %.2f%%", b[j], b[j + 1], 100 * m);
        }
        fprintf(f, " (mean of %d runs; worst from the first event on: [%d,%d) %.2f%%)\n", R,
               s->worst_from, s->worst_to, 100 * s->worst_win);
    }
    /* also wherever the records carry the field: false alarms on scenarios
     * without a fault */
    if (has_fault_events(sc) || (sc->target_mask & (SIM_T_DETECT_3 | SIM_T_NO_FALSE_ALARM)) ||
        s->flags) {
        if (!s->flags) {
            fprintf(f, "sim.%s.budgetd.detect_delay: n/a (no \"fault\" field in the decision records;"
                   " %d true faults)\n", nm, s->det.faults);
            fprintf(f, "sim.%s.budgetd.false_alarms: n/a (no \"fault\" field in the decision records)\n", nm);
        } else {
            if (s->det.worst_delay >= 0)
                fprintf(f, "sim.%s.budgetd.detect_delay: worst %d mean %.1f cycles (%d of %d faults flagged,"
                       " all runs)\n", nm, s->det.worst_delay, s->delay_mean, s->det.detected,
                       s->det.faults);
            else
                fprintf(f, "sim.%s.budgetd.detect_delay: none flagged (%d true faults, all runs)\n", nm,
                       s->det.faults);
            if (s->det.worst_clear >= 0 || s->det.never_cleared)
                fprintf(f, "sim.%s.budgetd.clear_delay: worst %d cycles (%d never cleared)\n", nm,
                       s->det.worst_clear, s->det.never_cleared);
            fprintf(f, "sim.%s.budgetd.false_alarms: %d count (all runs)\n", nm, s->det.false_alarms);
        }
    }
    int cch = sim_cap_channel(sc);
    if (cch >= 0) {
        fprintf(f, "sim.%s.budgetd.cap_oscillation: %.3f cv (%s's allocation, second half of the cap;"
               " mean of %d runs, max %.3f)\n", nm, s->cap_cv, sc->ch[cch].name, R, s->cap_cv_max);
        fprintf(f, "sim.%s.budgetd.undelivered: %.4f ratio (allocation not spent because of caps,"
               " from the first cap on)\n", nm, s->undeliv);
    }
    int slow = sim_slow_channel(sc);
    if (slow >= 0)
        fprintf(f, "sim.%s.budgetd.slow_funding: %.3f ratio (%s, mean lag %.1f cycles: second-half"
               " allocation / oracle's; mean of %d runs, min %.3f)\n", nm, s->slow,
               sc->ch[slow].name, sc->ch[slow].lag.mean, R, s->slow_min);
}

/* PASS/FAIL of the scenario's named targets (scenario.c). */
static void print_targets(FILE *f, const sim_scenario_t *sc, const agg_t *out, const sim_summary_t *s)
{
    const char *nm = sc->name;
    unsigned m = sc->target_mask;
#define VERDICT(ok) ((ok) ? "PASS" : "FAIL")
    if (m & SIM_T_HALF_5PCT)
        fprintf(f, "target.sim.%s.half_within_5pct: %s (%.2f%%)\n", nm, VERDICT(s->half <= 0.05), 100 * s->half);
    if (m & SIM_T_EVENT_5PCT)
        fprintf(f, "target.sim.%s.event_within_5pct: %s (worst window [%d,%d) %.2f%%)\n", nm,
               VERDICT(s->worst_win <= 0.05), s->worst_from, s->worst_to, 100 * s->worst_win);
    if (m & SIM_T_AHEAD_FLAT)
        fprintf(f, "target.sim.%s.ahead_of_flat: %s (regret %.2f%% vs flat %.2f%%; return ratio %.4f)\n",
               nm, VERDICT(s->half <= 0.5 * s->flat_half), 100 * s->half, 100 * s->flat_half,
               s->vs_flat);
    if (m & SIM_T_AHEAD_STATIC)
        fprintf(f, "target.sim.%s.ahead_of_static: %s (return ratio %.4f)\n", nm, VERDICT(s->static_ahead),
               s->vs_static);
    if (m & SIM_T_SLOW_FUNDED)
        fprintf(f, "target.sim.%s.slow_funded: %s (%.3f of the oracle's spend)\n", nm,
               VERDICT(s->slow >= 0.9), s->slow);
    if (m & SIM_T_SEEDS)
        fprintf(f, "target.sim.%s.seeds_5_8: %s (mean %.2f%%, max %.2f%%)\n", nm,
               VERDICT(s->half <= 0.05 && s->half_max <= 0.08), 100 * s->half, 100 * s->half_max);
    if (m & SIM_T_DETECT_3) {
        if (!s->flags)
            fprintf(f, "target.sim.%s.detect_within_3: FAIL (n/a: the records carry no fault flag)\n", nm);
        else
            fprintf(f, "target.sim.%s.detect_within_3: %s (worst %d, %d of %d flagged)\n", nm,
                   VERDICT(s->det.detected == s->det.faults && s->det.worst_delay <= 3),
                   s->det.worst_delay, s->det.detected, s->det.faults);
    }
    if (m & SIM_T_NO_FALSE_ALARM)
        fprintf(f, "target.sim.%s.no_false_alarms: %s (%d%s)\n", nm, VERDICT(s->det.false_alarms == 0),
               s->det.false_alarms, s->flags ? "" : "; the records carry no fault flag");
    if (m & SIM_T_CAP_SETTLES)
        fprintf(f, "target.sim.%s.cap_settles: %s (cv %.3f)\n", nm, VERDICT(s->cap_cv <= 0.1), s->cap_cv);
    if (m & SIM_T_NO_VIOLATIONS)
        fprintf(f, "target.sim.%s.no_violations: %s (%d)\n", nm,
               VERDICT(out[SIM_POL_ENGINE].violations == 0), out[SIM_POL_ENGINE].violations);
#undef VERDICT
}

/* One scenario: load, play, print. Returns false on a load or engine error
 * (reported). */
static bool run_scenario(FILE *f, const char *file, const opts_t *o, bool write_log, bool *log_resumed)
{
    char err[8192];
    sim_scenario_t *sc;
    if (sim_scenario_load(file, &sc, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    int R = o->runs > 0 ? o->runs : sc->runs > 0 ? sc->runs : 10;
    double *ra = bd_xcalloc((size_t)R * SIM_POL__COUNT, sizeof(double));
    int *rec_runs = bd_xcalloc((size_t)R, sizeof(int));
    sim_runstats_t *rr = bd_xcalloc((size_t)R, sizeof *rr);
    agg_t out[SIM_POL__COUNT];
    memset(out, 0, sizeof out);
    for (int p = 0; p < SIM_POL__COUNT; p++) out[p].recovery = -2;
    fprintf(f, "\n== scenario %s (%s): %d cycles x %d runs, %zu channels, budget %.0f/cycle\n",
           sc->name, file, sc->cycles, R, sc->n_ch, sc->pol->budget);
    if (sc->description) fprintf(f, "   %s\n", sc->description);
    bool ok = play_runs(f, file, sc, o, R, write_log, log_resumed, out, rec_runs, ra, rr);
    if (ok) {
        sim_summary_t s;
        print_base(f, sc, R, out, rec_runs);
        sim_summarise(sc, R, rr, &s);
        print_time(f, sc, R, rr, &s);
        print_targets(f, sc, out, &s);
    }
    free(ra);
    free(rec_runs);
    free(rr);
    sim_scenario_free(sc);
    return ok;
}

/* The scenarios on o->threads threads, one scenario per task (each loads
 * its own copy, so runs share nothing); every scenario's output is
 * buffered and printed in file order, so the output does not depend on the
 * thread count. The first scenario without operator resumes (Redis
 * actions a replay cannot see) writes the --log files. */
typedef struct {
    const char **files;
    size_t n, next;
    const opts_t *o;
    size_t log_idx;    /* the scenario that writes the --log files */
    bool *resumed;
    char **buf;
    size_t *len;
    bool *ok, *done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pool_t;

/* A worker of run_all: takes the next scenario until none is left. */
static void *scenario_worker(void *arg)
{
    pool_t *pl = arg;
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        size_t i = pl->next++;
        pthread_mutex_unlock(&pl->mu);
        if (i >= pl->n) return NULL;
        char *b = NULL;
        size_t l = 0;
        FILE *f = open_memstream(&b, &l);
        bool ok = f && run_scenario(f, pl->files[i], pl->o, pl->o->log && i == pl->log_idx, pl->resumed);
        if (f) fclose(f);
        pthread_mutex_lock(&pl->mu);
        pl->buf[i] = b;
        pl->len[i] = l;
        pl->ok[i] = ok;
        pl->done[i] = true;
        pthread_cond_broadcast(&pl->cv);
        pthread_mutex_unlock(&pl->mu);
    }
}

/* Runs the n scenarios (see pool_t) and prints them in order; false when
 * one failed. */
static bool run_all(const char **files, size_t n, const opts_t *o, bool *resumed)
{
    pool_t pl = {.files = files, .n = n, .o = o, .resumed = resumed};
    for (size_t i = 0; i < n; i++) {
        char err[256];
        sim_scenario_t *sc;
        if (sim_scenario_load(files[i], &sc, err, sizeof err) != BD_OK) continue;
        bool resumes = sc->resume_after > 0;
        sim_scenario_free(sc);
        if (!resumes) {
            pl.log_idx = i;
            break;
        }
    }
    pl.buf = bd_xcalloc(n, sizeof *pl.buf);
    pl.len = bd_xcalloc(n, sizeof *pl.len);
    pl.ok = bd_xcalloc(n, sizeof *pl.ok);
    pl.done = bd_xcalloc(n, sizeof *pl.done);
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.cv, NULL);
    size_t nt = (size_t)o->threads < n ? (size_t)o->threads : n;
    pthread_t *th = bd_xcalloc(nt ? nt : 1, sizeof *th);
    for (size_t t = 0; t < nt; t++) pthread_create(&th[t], NULL, scenario_worker, &pl);
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&pl.mu);
        while (!pl.done[i]) pthread_cond_wait(&pl.cv, &pl.mu);
        pthread_mutex_unlock(&pl.mu);
        fwrite(pl.buf[i], 1, pl.len[i], stdout);
        fflush(stdout);
        free(pl.buf[i]);
        ok &= pl.ok[i];
    }
    for (size_t t = 0; t < nt; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&pl.cv);
    free(th);
    free(pl.buf);
    free(pl.len);
    free(pl.ok);
    free(pl.done);
    return ok;
}

static void run_bandit(const opts_t *o)
{
    long T = o->quick ? 100000 : 1000000;
    int runs = 10;
    bench_cl_cell_t cells[4] = {
        {.K = 10, .gap = 0.1}, {.K = 10, .gap = 0.02}, {.K = 100, .gap = 0.1}, {.K = 100, .gap = 0.02},
    };
    for (int i = 0; i < 4; i++) {
        cells[i].T = T;
        cells[i].runs = runs;
    }
    printf("\n== Chapelle & Li 2011 grid: Thompson sampling, Beta(1,1), best arm 0.5, others 0.5-gap;"
           " T=%ld, %d runs per cell, %d threads\n", T, runs, o->threads);
    bench_chapelle_li(cells, 4, o->threads, 20110101);
    printf("%4s %6s %14s %10s %12s %10s %14s\n", "K", "gap", "regret(T) mean", "sd",
           "slope/ln t", "LR const", "slope/LR");
    for (int i = 0; i < 4; i++) {
        const bench_cl_cell_t *c = &cells[i];
        printf("%4d %6.2f %14.1f %10.1f %12.1f %10.1f %14.2f\n", c->K, c->gap, c->regret_T,
               c->regret_sd, c->slope, c->lr_const, c->slope / c->lr_const);
    }
    printf("(slope: least squares of mean regret on ln t over t in [T/100, T]; LR const = sum over"
           " arms of gap/KL(mu_i, mu*), the Lai-Robbins\n asymptotic slope that Chapelle & Li plot"
           " TS against and that TS attains asymptotically (Kaufmann et al. 2012); at K=100,\n"
           " gap=0.02 the bound exceeds the linear regret gap*T within T=1e6, so that cell is"
           " pre-asymptotic)\n");
    for (int i = 0; i < 4; i++) {
        const bench_cl_cell_t *c = &cells[i];
        printf("bandit.cl.K%d_gap%.2f.regret_T: %.1f regret\n", c->K, c->gap, c->regret_T);
        printf("bandit.cl.K%d_gap%.2f.slope: %.1f regret/ln_t\n", c->K, c->gap, c->slope);
        printf("bandit.cl.K%d_gap%.2f.lai_robbins: %.1f regret/ln_t (reference)\n", c->K, c->gap,
               c->lr_const);
        printf("bandit.cl.K%d_gap%.2f.seconds: %.1f s\n", c->K, c->gap, c->seconds);
    }

    /* published: SMPyBandits' DTS is what the paper ran; no published
     * number for the engine's rule or the every-arm variant */
    static const double pub[2][BENCH__ALGOS] = {{493, NAN, NAN, 209, 37}, {388, NAN, NAN, 249, 45}};
    static const char *names[BENCH__ALGOS] = {"TS", "DTS(0.95) engine", "DTS(0.95) every arm",
                                              "DTS(0.95) SMPyBandits", "oracle-restart TS"};
    printf("\n== Besson & Kaufmann piecewise-stationary problems: K=3, T=5000, change every 1000;"
           " %d runs\n", o->quick ? 200 : 1000);
    printf("%8s %-22s %10s %8s %10s\n", "problem", "algorithm", "regret", "sd", "published");
    bench_bk_t bk[2];
    for (int p = 0; p < 2; p++) {
        bk[p] = (bench_bk_t){.problem = p + 1, .T = 5000, .runs = o->quick ? 200 : 1000, .gamma = 0.95};
        bench_besson_kaufmann(&bk[p], o->threads, 20200101);
        for (int a = 0; a < BENCH__ALGOS; a++)
            if (isnan(pub[p][a]))
                printf("%8d %-22s %10.1f %8.1f %10s\n", p + 1, names[a], bk[p].regret[a], bk[p].sd[a], "-");
            else
                printf("%8d %-22s %10.1f %8.1f %10.0f\n", p + 1, names[a], bk[p].regret[a],
                       bk[p].sd[a], pub[p][a]);
    }
    printf("(published: mean regret reported by Besson & Kaufmann, as quoted in issue 6. All DTS\n"
           " variants run the engine's discount code (statistics *= gamma, blended toward the\n"
           " Beta(1,1) prior); they differ in which arms forget. engine: the arm that reported,\n"
           " once per pull (engine/decide.c: a channel forgets in the cycles it reports in).\n"
           " every arm: every arm, every step (Raj & Kalyani's DTS as written; the engine's rule\n"
           " before). SMPyBandits: its DiscountedThompson's getReward discounts the pulled arm\n"
           " K-1 more times instead of the others, so the pulled arm forgets by gamma^K per pull;\n"
           " this variant reproduces the published DTS numbers)\n");
    const char *keys[BENCH__ALGOS] = {"ts", "dts", "dts_every", "dts_smpybandits", "restart"};
    for (int p = 0; p < 2; p++) {
        for (int a = 0; a < BENCH__ALGOS; a++) {
            printf("bandit.bk.p%d.%s.regret: %.1f regret\n", p + 1, keys[a], bk[p].regret[a]);
            if (!isnan(pub[p][a]))
                printf("bandit.bk.p%d.%s.published: %.0f regret (reference)\n", p + 1, keys[a],
                       pub[p][a]);
        }
        printf("bandit.bk.p%d.seconds: %.1f s\n", p + 1, bk[p].seconds);
    }
    for (int p = 0; p < 2; p++) {
        printf("target.bk.p%d.dts_engine_beats_ts: %s (%.1f vs %.1f)\n", p + 1,
               bk[p].regret[BENCH_DTS] < bk[p].regret[BENCH_TS] ? "PASS" : "MISS",
               bk[p].regret[BENCH_DTS], bk[p].regret[BENCH_TS]);
        printf("target.bk.p%d.dts_smpybandits_beats_ts: %s (%.1f vs %.1f)\n", p + 1,
               bk[p].regret[BENCH_DTS_PULLED] < bk[p].regret[BENCH_TS] ? "PASS" : "MISS",
               bk[p].regret[BENCH_DTS_PULLED], bk[p].regret[BENCH_TS]);
    }
}

int main(int argc, char **argv)
{
    opts_t o = {.dir = "bench/scenarios", .runs = 0, .threads = 2, .sim = true, .bandit = true,
                .goal = true, .prior = true};
    long np = sysconf(_SC_NPROCESSORS_ONLN);
    if (np > 0 && np < 64) o.threads = (int)np;
    static const struct option lo[] = {
        {"scenarios", required_argument, 0, 'd'}, {"scenario", required_argument, 0, 's'},
        {"runs", required_argument, 0, 'r'},      {"only", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'},   {"quick", no_argument, 0, 'q'},
        {"log", required_argument, 0, 'l'},       {"budgetd", required_argument, 0, 'b'},
        {"trace", required_argument, 0, 'T'},     {"no-log", no_argument, 0, 'n'},
        {"diag", no_argument, 0, 'D'},            {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char **files = bd_xcalloc((size_t)argc + 1, sizeof *files);
    size_t nf = 0;
    int c;
    bool no_log = false, budgetd_set = false;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'd': o.dir = optarg; break;
        case 's': files[nf++] = optarg; break;
        case 'r':
            o.runs = atoi(optarg);
            if (o.runs < 1) o.runs = -1;
            break;
        case 't': o.threads = atoi(optarg); break;
        case 'q': o.quick = true; break;
        case 'l': o.log = optarg; break;
        case 'b': o.budgetd = optarg; budgetd_set = true; break;
        case 'n': no_log = true; break;
        case 'D': o.diag = true; break;
        case 'T': o.trace = atoi(optarg); break;
        case 'o':
            o.sim = !strcmp(optarg, "sim");
            o.bandit = !strcmp(optarg, "bandit");
            o.goal = !strcmp(optarg, "goal");
            o.prior = !strcmp(optarg, "prior");
            if (!o.sim && !o.bandit && !o.goal && !o.prior) {
                usage();
                return 2;
            }
            break;
        default: usage(); return 2;
        }
    }
    if (o.runs < 0 || o.threads < 1 || optind != argc) {
        usage();
        return 2;
    }
    /* By default the first scenario's log goes next to this program and the
     * replay check uses the budgetd binary of the same build tree. */
    static char logbuf[4096], binbuf[4096];
    const char *slash = strrchr(argv[0], '/');
    int dl = slash ? (int)(slash - argv[0]) : 1;
    const char *dir = slash ? argv[0] : ".";
    if (!o.log && !no_log) {
        snprintf(logbuf, sizeof logbuf, "%.*s/sim_first", dl, dir);
        o.log = logbuf;
    }
    if (!budgetd_set) {
        snprintf(binbuf, sizeof binbuf, "%.*s/../budgetd", dl, dir);
        o.budgetd = binbuf;
    }
    int rc = 0;
    if (o.sim) {
        char **listed = NULL;
        size_t nl = 0;
        if (nf == 0) {
            nl = list_scenarios(o.dir, &listed);
            free(files);
            files = bd_xcalloc(nl + 1, sizeof *files);
            for (size_t i = 0; i < nl; i++) files[nf++] = listed[i];
            if (nf == 0) {
                fprintf(stderr, "no scenarios in %s\n", o.dir);
                rc = 1;
            }
        }
        bool resumed = false;
        if (rc == 0 && !run_all(files, nf, &o, &resumed)) rc = 1;
        if (rc == 0 && o.log) check_replay(&o, resumed);
        for (size_t i = 0; i < nl; i++) free(listed[i]);
        free(listed);
    }
    if (rc == 0 && o.bandit) run_bandit(&o);
    if (rc == 0 && o.goal && !qv2_goals(stdout, "bench/scenarios/goals", o.runs)) rc = 1;
    if (rc == 0 && o.prior && !qv2_priors(stdout, "bench/scenarios/priors", o.runs)) rc = 1;
    free(files);
    return rc;
}
