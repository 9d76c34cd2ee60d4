/* bench_whatif.c: is the counterfactual what-if honest? (engine/sim/,
 * `budgetd whatif`)
 *
 * Per case: the bench simulator (bench/sim/) draws a hidden truth from a
 * scenario, plays config A against it through the engine and writes the
 * event log; then it plays config B against the same truth, and B's
 * expected return under the true curves is what B would really have
 * earned. The what-if sees only A's log and A's config: it fits the
 * environment (bd_fit_*), plays B closed loop against --draws environments
 * drawn from the fit (bd_loop_run_all) and states B's return as a median
 * and a 90% interval. A case is covered when the interval holds B's true
 * return; its error is |median - truth| / truth.
 *
 * Cases: every scenario below x every B below x --cases seeds (truth,
 * noise and the configs' engine seed all move with the seed). Scenarios
 * span what the fit models (stationary curves, day-part seasonality,
 * reporting lag) and what it does not (slow drift of the rates). Bs span a
 * tighter guardrail (ramp and risk) and a larger budget (spend beyond what
 * the log ever spent).
 *
 * Output: a table per scenario and B, then `name: value unit` lines:
 * coverage (share of cases covered) and median error, overall and per
 * scenario. Nothing is tuned to a target; the numbers are this run's. */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "benchutil.h"
#include "budgetd/stats.h"
#include "budgetd/whatif.h"
#include "sim/sim.h"

/* The log's config: the shop portfolio's guardrails, what a new user
 * runs; a variant sets the ramp, the risk bound and the budget. */
#define CFG_TEXT                                                                                 \
    "v: 1\ncycle: 1h\nseed: %llu\n"                                                              \
    "defaults:\n  objective: revenue\n  samples: 32\n  discount: 0.98\n  max_step: %s\n"        \
    "  explore_share: 0.05\n  risk: {roas_floor: %s, max_prob: %s}\n"                            \
    "  kill: {roas_below: 0.5, window: 6, overspend_ratio: 1.5, stale_after: 3h}\n"             \
    "portfolios:\n  shop:\n    budget: %s\n    channels:\n"                                        \
    "      search: {min: 500, max: 5000, saturation: 3000, initial: 2500}\n"                     \
    "      social: {min: 200, max: 4000, saturation: 2000}\n"                                     \
    "      video:  {max: 4000, saturation: 2000}\n"

typedef struct {
    const char *name;
    const char *max_step, *roas_floor, *max_prob, *budget;
    bool control;         /* A itself: a check of the fit, not counted as a B */
} cfgvar_t;

static const cfgvar_t CONFIG_A = {"A", "0.25", "1.0", "0.2", "6000", true};
static const cfgvar_t CONFIG_B[] = {
    {"(A itself)", "0.25", "1.0", "0.2", "6000", true},
    {"tighter ramp and risk", "0.1", "1.2", "0.05", "6000", false},
    {"budget +30%", "0.25", "1.0", "0.2", "7800", false},
};
#define N_B (sizeof CONFIG_B / sizeof *CONFIG_B)

typedef struct {
    const char *name;
    const char *body;     /* scenario keys without config (cycles, noise, channels, ...) */
} scen_t;

static const scen_t SCENARIOS[] = {
    {"stationary",
     "noise: {overdispersion: 0.1, value_shape: 2}\n"
     "traffic: {cvr: 0.05, ctr: 0.02}\n"
     "channels:\n"
     "  search: {rate: 0.050, value: 60, saturation: 2500}\n"
     "  social: {rate: 0.045, value: 50, saturation: 1500}\n"
     "  video:  {rate: 0.025, value: 90, saturation: 3500}\n"},
    {"seasonal",
     "noise: {overdispersion: 0.1, value_shape: 2}\n"
     "channels:\n"
     "  search: {rate: 0.050, value: 60, saturation: 2500,\n"
     "           season: {daily: {amplitude: 0.5, peak_hour: 20}}}\n"
     "  social: {rate: 0.045, value: 50, saturation: 1500,\n"
     "           season: {daily: {amplitude: 0.6, peak_hour: 13}}}\n"
     "  video:  {rate: 0.025, value: 90, saturation: 3500,\n"
     "           season: {daily: {amplitude: 0.4, peak_hour: 21}}}\n"},
    {"lagged",
     "noise: {overdispersion: 0.1, value_shape: 2}\n"
     "channels:\n"
     "  search: {rate: 0.050, value: 60, saturation: 2500, lag: 2}\n"
     "  social: {rate: 0.045, value: 50, saturation: 1500}\n"
     "  video:  {rate: 0.025, value: 90, saturation: 3500, lag: {mean: 6, dist: lognormal, sigma: 0.8}}\n"},
    {"drifting",
     "noise: {overdispersion: 0.1, value_shape: 2}\n"
     "drift: {sigma: 0.01, revert: 0.01}\n"
     "channels:\n"
     "  search: {rate: 0.050, value: 60, saturation: 2500}\n"
     "  social: {rate: 0.045, value: 50, saturation: 1500}\n"
     "  video:  {rate: 0.025, value: 90, saturation: 3500}\n"},
};
#define N_SCEN (sizeof SCENARIOS / sizeof *SCENARIOS)


typedef struct {
    int cases, draws, threads, cycles;
} opts_t;

/* The scenario's text with config variant v embedded (engine seed cseed). */
static char *scenario_text(const scen_t *s, const cfgvar_t *v, int cycles, uint64_t seed,
                           uint64_t cseed)
{
    char full[4096], *out = NULL;
    snprintf(full, sizeof full, CFG_TEXT, (unsigned long long)cseed, v->max_step, v->roas_floor,
             v->max_prob, v->budget);
    size_t cap = strlen(full) * 2 + strlen(s->body) + 512;
    out = bd_xmalloc(cap);
    size_t off = (size_t)snprintf(out, cap,
                                  "scenario: %s\ncycles: %d\nseed: %llu\nstart: 1767225600\n"
                                  "portfolio: shop\n%sconfig: |\n",
                                  s->name, cycles, (unsigned long long)seed, s->body);
    for (const char *l = full; *l;) {
        size_t n = strcspn(l, "\n");
        off += (size_t)snprintf(out + off, cap - off, "  %.*s\n", (int)n, l);
        l += n + (l[n] == '\n');
    }
    return out;
}

static sim_scenario_t *load(const scen_t *s, const cfgvar_t *v, int cycles, uint64_t seed,
                            uint64_t cseed)
{
    char *text = scenario_text(s, v, cycles, seed, cseed), err[4096];
    sim_scenario_t *sc = NULL;
    if (sim_scenario_load_string(text, strlen(text), s->name, NULL, &sc, err, sizeof err) != BD_OK) {
        fprintf(stderr, "bench_whatif: %s\n%s\n", err, text);
        exit(1);
    }
    free(text);
    return sc;
}

/* One case's outcome. */
typedef struct {
    double truth, median, lo, hi;
} case_t;

/* The fit of A's log (text, len bytes). */
static bd_fit_t *fit_log(const sim_scenario_t *a, const char *text, size_t len)
{
    bd_fitter_t *f = bd_fit_begin(a->cfg);
    for (const char *l = text; l < text + len;) {
        const char *e = memchr(l, '\n', (size_t)(text + len - l));
        size_t n = e ? (size_t)(e - l) : (size_t)(text + len - l);
        if (n) bd_fit_line(f, l, n);
        l += n + 1;
    }
    bd_fit_t *fit;
    char err[512];
    if (bd_fit_end(f, &fit, err, sizeof err) != BD_OK) {
        fprintf(stderr, "bench_whatif: fit: %s\n", err);
        exit(1);
    }
    return fit;
}

/* Scenario s, seed case c: A's log and truth, then each B's truth and
 * what-if interval into out[0..N_B). */
static void run_case(const scen_t *s, int c, const opts_t *o, case_t *out)
{
    uint64_t seed = bd_mix64(0x77686174ULL + (uint64_t)c * 7919u), cseed = 1000u + (uint64_t)c;
    char err[1024];
    sim_scenario_t *a = load(s, &CONFIG_A, o->cycles, seed, cseed);
    sim_truth_t *tr = sim_truth_new(a, seed);
    char *log = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&log, &len);
    sim_log_t lg = {.events = f};
    sim_result_t res;
    if (sim_run(a, tr, SIM_POL_ENGINE, &lg, &res, err, sizeof err) != BD_OK) {
        fprintf(stderr, "bench_whatif: %s\n", err);
        exit(1);
    }
    fclose(f);
    sim_result_free(&res);
    bd_fit_t *fit = fit_log(a, log, len);
    free(log);
    for (size_t b = 0; b < N_B; b++) {
        sim_scenario_t *sb = load(s, &CONFIG_B[b], o->cycles, seed, cseed);
        if (sim_run(sb, tr, SIM_POL_ENGINE, NULL, &res, err, sizeof err) != BD_OK) {
            fprintf(stderr, "bench_whatif: %s\n", err);
            exit(1);
        }
        out[b].truth = res.ret;
        if (getenv("BENCH_WHATIF_TRACE"))
            fprintf(stderr, "  %s case %d B%zu truth: kills %d, cycles killed %d, held %d\n", s->name,
                    c, b, res.kill_trips, res.killed_cycles, res.held_cycles);
        sim_result_free(&res);
        bd_loop_result_t *runs = bd_xcalloc((size_t)o->draws, sizeof *runs);
        const bd_config_t *cfgs[1] = {sb->cfg};
        if (bd_loop_run_all(fit, cfgs, 1, o->draws, seed, o->threads, NULL, NULL, runs, err,
                            sizeof err) != BD_OK) {
            fprintf(stderr, "bench_whatif: %s\n", err);
            exit(1);
        }
        bd_loop_summary_t sum;
        bd_loop_summarise(runs, o->draws, -1, &sum);
        out[b].median = sum.ret.median;
        out[b].lo = sum.ret.lo;
        out[b].hi = sum.ret.hi;
        if (getenv("BENCH_WHATIF_TRACE"))
            fprintf(stderr, "  %s case %d B%zu: truth %.0f what-if %.0f [%.0f, %.0f] (%+.2f%%, "
                    "interval +-%.2f%%)\n", s->name, c, b, out[b].truth, out[b].median,
                    out[b].lo, out[b].hi, 100 * (out[b].median / out[b].truth - 1),
                    50 * (out[b].hi - out[b].lo) / out[b].truth);
        for (int d = 0; d < o->draws; d++) bd_loop_result_free(&runs[d]);
        free(runs);
        sim_scenario_free(sb);
    }
    bd_fit_free(fit);
    sim_truth_free(tr);
    sim_scenario_free(a);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_whatif [--cases N] [--draws N] [--cycles N] [--threads N]\n"
                    "  --cases N    seeds per scenario (default 10)\n"
                    "  --draws N    environments per what-if (default 30)\n"
                    "  --cycles N   cycles of each log (default 336: two weeks of hours)\n"
                    "  --threads N  closed-loop runs in parallel (default 2; results do not\n"
                    "               depend on it)\n"
                    "  environment: BENCH_WHATIF_TRACE=1 prints every case on stderr;\n"
                    "  BENCH_WHATIF_SCEN=I starts at the I-th scenario (0-based)\n");
}

static int parse(int argc, char **argv, opts_t *o)
{
    static const struct option lo[] = {{"cases", required_argument, NULL, 'c'},
                                       {"draws", required_argument, NULL, 'd'},
                                       {"cycles", required_argument, NULL, 'y'},
                                       {"threads", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    *o = (opts_t){.cases = 10, .draws = 30, .threads = 2, .cycles = 336};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        int v = optarg ? atoi(optarg) : 0;
        switch (ch) {
        case 'c': o->cases = v; break;
        case 'd': o->draws = v; break;
        case 'y': o->cycles = v; break;
        case 't': o->threads = v; break;
        default: usage(); return ch == 'h' ? 0 : 2;
        }
        if (ch != 'h' && v < 1) {
            usage();
            return 2;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    opts_t o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    double t0 = bu_now();
    size_t total = N_SCEN * N_B * (size_t)o.cases;
    double *err_all = bd_xcalloc(total, sizeof(double)), *err_self = bd_xcalloc(total, sizeof(double));
    size_t n_all = 0, cov_all = 0, n_self = 0, cov_self = 0;
    printf("what-if honesty: %d cases per scenario and B, %d draws, %d cycles per log\n", o.cases,
           o.draws, o.cycles);
    printf("%-11s %-22s %8s %12s %12s\n", "scenario", "B", "covered", "median err", "worst err");
    for (size_t s = 0; s < N_SCEN; s++) {
        case_t *cs = bd_xcalloc((size_t)o.cases * N_B, sizeof *cs);
        for (int c = 0; c < o.cases; c++) {
            run_case(&SCENARIOS[s], c, &o, cs + (size_t)c * N_B);
            fprintf(stderr, "bench_whatif: %s %d/%d\n", SCENARIOS[s].name, c + 1, o.cases);
        }
        double *err_s = bd_xcalloc((size_t)o.cases * N_B, sizeof(double));
        size_t cov_s = 0, n_s = 0;
        for (size_t b = 0; b < N_B; b++) {
            double *e = bd_xcalloc((size_t)o.cases, sizeof(double)), worst = 0;
            int cov = 0;
            for (int c = 0; c < o.cases; c++) {
                const case_t *k = &cs[(size_t)c * N_B + b];
                bool in = k->truth >= k->lo && k->truth <= k->hi;
                cov += in;
                e[c] = fabs(k->median - k->truth) / k->truth;
                worst = e[c] > worst ? e[c] : worst;
                if (CONFIG_B[b].control) {
                    err_self[n_self++] = e[c];
                    cov_self += in;
                    continue;
                }
                err_s[n_s++] = e[c];
                err_all[n_all++] = e[c];
                cov_s += in;
            }
            printf("%-11s %-22s %5d/%-2d %11.2f%% %11.2f%%\n", SCENARIOS[s].name, CONFIG_B[b].name,
                   cov, o.cases, 100 * bd_stats_quantile(e, (size_t)o.cases, 0.5), 100 * worst);
            free(e);
        }
        cov_all += cov_s;
        char name[128];
        snprintf(name, sizeof name, "whatif_coverage_%s", SCENARIOS[s].name);
        bu_print(name, (double)cov_s / (double)n_s, "share");
        snprintf(name, sizeof name, "whatif_median_error_%s", SCENARIOS[s].name);
        bu_print(name, 100 * bd_stats_quantile(err_s, n_s, 0.5), "%");
        free(err_s);
        free(cs);
    }
    /* the headline: every B other than A itself, every scenario and seed */
    bu_print("whatif_cases", (double)n_all, "cases");
    bu_print("whatif_coverage", (double)cov_all / (double)n_all, "share");
    bu_print("whatif_median_error", 100 * bd_stats_quantile(err_all, n_all, 0.5), "%");
    bu_print("whatif_coverage_self", (double)cov_self / (double)n_self, "share");
    bu_print("whatif_median_error_self", 100 * bd_stats_quantile(err_self, n_self, 0.5), "%");
    bu_print("whatif_seconds", bu_now() - t0, "s");
    free(err_all);
    free(err_self);
    return 0;
}
