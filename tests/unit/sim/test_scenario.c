/* test_scenario.c: the simulator's scenario loader (bench/sim/scenario.c):
 * valid files load with the values written, every error names its line,
 * embedded config errors keep the scenario's line numbers, and the bundled
 * scenarios load. The bench sources are not in libbudgetd, so the file
 * under test is compiled in here. Suite `sim`: the simulator's effects
 * (seasonal profiles, reporting delays and restatements, delivery caps,
 * adstock, data faults) and the fault-detection metrics, through
 * libbdsim. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "bench/sim/scenario.c"

#define CONFIG                        \
    "config: |\n"                     \
    "  v: 1\n"                        \
    "  cycle: 1h\n"                   \
    "  portfolios:\n"                 \
    "    p:\n"                        \
    "      budget: 1000\n"            \
    "      channels:\n"               \
    "        a: {min: 100, max: 800}\n" \
    "        b: {max: 900}\n"

static char errbuf[8192];

static sim_scenario_t *load_ok(const char *text)
{
    sim_scenario_t *sc = NULL;
    bd_err_t rc = sim_scenario_load_string(text, strlen(text), "t.yaml", NULL, &sc, errbuf, sizeof errbuf);
    cr_assert_eq(rc, BD_OK, "load failed: %s", errbuf);
    cr_assert_not_null(sc);
    return sc;
}

/* Loading fails and errbuf holds want as one of its lines. */
static void load_err(const char *text, const char *want)
{
    sim_scenario_t *sc = NULL;
    bd_err_t rc = sim_scenario_load_string(text, strlen(text), "t.yaml", NULL, &sc, errbuf, sizeof errbuf);
    cr_assert_eq(rc, BD_ERR_CONFIG, "expected a config error, got %d", rc);
    cr_assert_null(sc);
    cr_assert_not_null(strstr(errbuf, want), "missing '%s' in:\n%s", want, errbuf);
}

Test(scenario, valid_file_loads_values)
{
    sim_scenario_t *sc = load_ok("scenario: t\n"
                                 "description: two channels\n"
                                 "cycles: 100\n"
                                 "seed: 9\n"
                                 "portfolio: p\n"
                                 "noise: {overdispersion: 0.2, value_shape: 3}\n"
                                 "drift: {sigma: 0.01, revert: 0.1}\n"
                                 "operator: {resume_after: 5}\n"
                                 "channels:\n"
                                 "  a: {rate: 0.05, value: 50, saturation: 1000}\n"
                                 "  b: {rate: 0.04, saturation: 800}\n"
                                 "  c: {rate: 0.07, value: 20, saturation: 500, arrives: 40}\n"
                                 "events:\n"
                                 "  - {cycle: 10, shock: a, factor: 0.5}\n"
                                 "  - {cycle: 20, broken_tracking: b}\n"
                                 "  - {cycle: 50, runaway: c, ratio: 2, cycles: 3}\n"
                                 "targets: true\n" CONFIG);
    cr_assert_str_eq(sc->name, "t");
    cr_assert_str_eq(sc->description, "two channels");
    cr_assert_eq(sc->cycles, 100);
    cr_assert_eq(sc->seed, 9);
    cr_assert_eq(sc->start, SIM_DEFAULT_START);
    cr_assert_float_eq(sc->overdispersion, 0.2, 1e-12);
    cr_assert_float_eq(sc->value_shape, 3, 1e-12);
    cr_assert_float_eq(sc->drift_sigma, 0.01, 1e-12);
    cr_assert_float_eq(sc->drift_revert, 0.1, 1e-12);
    cr_assert_eq(sc->resume_after, 5);
    cr_assert(sc->targets);
    cr_assert_eq(sc->n_ch, 3);
    cr_assert_float_eq(sc->ch[1].value, 1.0, 1e-12, "value defaults to 1");
    cr_assert_eq(sc->ch[2].arrives, 40);
    cr_assert_eq(sc->n_ev, 3);
    cr_assert_eq(sc->ev[0].kind, SIM_SHOCK);
    cr_assert_eq(sc->ev[0].ch, 0);
    cr_assert_float_eq(sc->ev[0].factor, 0.5, 1e-12);
    cr_assert_eq(sc->ev[1].kind, SIM_BREAK);
    cr_assert_eq(sc->ev[2].kind, SIM_RUNAWAY);
    cr_assert_eq(sc->ev[2].duration, 3);
    cr_assert_eq(sc->cfg->cycle, 3600);
    cr_assert_float_eq(sc->pol->budget, 1000, 1e-9);
    cr_assert_float_eq(sc->ch[0].cfg->min, 100, 1e-9, "listed guardrails");
    cr_assert_str_eq(sc->ch[2].cfg->name, "", "an unlisted channel takes defaults.channel");
    cr_assert_not_null(strstr(sc->config_text, "budget: 1000"));
    sim_scenario_free(sc);
}

Test(scenario, unknown_key_with_suggestion)
{
    load_err("scenario: t\ncyles: 100\nportfolio: p\nchannels:\n  a: {rate: 1, saturation: 1}\n"
             "  b: {rate: 1, saturation: 1}\n" CONFIG,
             "t.yaml:2: unknown key 'cyles' in scenario file (did you mean 'cycles'?)");
    cr_assert_not_null(strstr(errbuf, "t.yaml:1: missing key 'cycles'"), "%s", errbuf);
}

Test(scenario, missing_required_keys)
{
    load_err("description: x\n" CONFIG, "t.yaml:1: missing key 'scenario' (its name)");
    cr_assert_not_null(strstr(errbuf, "t.yaml:1: missing key 'portfolio'"), "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:1: missing key 'channels'"), "%s", errbuf);
}

Test(scenario, config_and_config_file_exclusive)
{
    load_err("scenario: t\ncycles: 5\nportfolio: p\nchannels: {a: {rate: 1, saturation: 1}}\n"
             "config_file: x.yaml\n" CONFIG,
             "t.yaml:5: give either `config` or `config_file`, not both");
    load_err("scenario: t\ncycles: 5\nportfolio: p\nchannels: {a: {rate: 1, saturation: 1}}\n",
             "t.yaml:1: missing `config` (embedded YAML) or `config_file`");
}

Test(scenario, config_must_be_a_block)
{
    load_err("scenario: t\ncycles: 5\nportfolio: p\nchannels: {a: {rate: 1, saturation: 1}}\n"
             "config: {v: 1}\n",
             "t.yaml:5: config: expected an embedded YAML block (`config: |`)");
}

Test(scenario, embedded_config_errors_keep_scenario_lines)
{
    /* line 11 of the scenario is `budget: -5` inside the block */
    load_err("scenario: t\ncycles: 5\nportfolio: p\nchannels:\n  a: {rate: 1, saturation: 1}\n"
             "config: |\n"
             "  v: 1\n"
             "  cycle: 1h\n"
             "  portfolios:\n"
             "    p:\n"
             "      budget: -5\n",
             "t.yaml:11: config: ");
    cr_assert_not_null(strstr(errbuf, "budget"), "%s", errbuf);
}

Test(scenario, config_file_unreadable)
{
    load_err("scenario: t\ncycles: 5\nportfolio: p\nchannels: {a: {rate: 1, saturation: 1}}\n"
             "config_file: /nonexistent/budgetd.yaml\n",
             "t.yaml:5: config_file: cannot read '/nonexistent/budgetd.yaml'");
}

Test(scenario, portfolio_must_be_in_config)
{
    load_err("scenario: t\ncycles: 5\nportfolio: q\nchannels:\n  a: {rate: 1, saturation: 1}\n"
             "  b: {rate: 1, saturation: 1}\n" CONFIG,
             "t.yaml:3: portfolio 'q' is not listed under the config's portfolios");
}

Test(scenario, config_channel_needs_a_truth)
{
    load_err("scenario: t\ncycles: 5\nportfolio: p\nchannels:\n  a: {rate: 1, saturation: 1}\n" CONFIG,
             "t.yaml:5: channels: config channel 'b' of portfolio 'p' has no true curve here");
}

Test(scenario, arriving_channel_must_be_unlisted)
{
    load_err("scenario: t\ncycles: 50\nportfolio: p\nchannels:\n  a: {rate: 1, saturation: 1}\n"
             "  b: {rate: 1, saturation: 1, arrives: 10}\n" CONFIG,
             "t.yaml:6: channels.b arrives at cycle 10 and must not be listed in the config");
}

Test(scenario, channel_values_checked)
{
    load_err("scenario: t\ncycles: 50\nportfolio: p\nchannels:\n  a: {rate: -1, saturation: 1}\n"
             "  b: {rate: 1}\n  c: {rate: 1, saturation: 1, arrives: 50, colour: red}\n" CONFIG,
             "t.yaml:5: channels.a.rate must be > 0, got -1");
    cr_assert_not_null(strstr(errbuf, "t.yaml:6: channels.b: missing key 'saturation'"), "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:7: channels.c.arrives: cycle 50 is not before the end (cycles: 50)"),
                       "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:7: unknown key 'colour' in channels.c"), "%s", errbuf);
}

Test(scenario, event_errors)
{
    load_err("scenario: t\ncycles: 50\nportfolio: p\nchannels:\n  a: {rate: 1, saturation: 1}\n"
             "  b: {rate: 1, saturation: 1}\n"
             "events:\n"
             "  - {cycle: 10, shock: zz, factor: 2}\n"
             "  - {cycle: 10, shock: a, runaway: b, factor: 2}\n"
             "  - {cycle: 10, shock: a}\n"
             "  - {cycle: 60, runaway: a, ratio: 2}\n"
             "  - {broken_tracking: a, factor: 2}\n"
             "  - {cycle: 1, runaway: b}\n"
             "events2: 1\n" CONFIG,
             "t.yaml:8: events[0]: unknown channel 'zz' (not in `channels`)");
    cr_assert_not_null(strstr(errbuf, "t.yaml:9: events[1]: give exactly one of shock, broken_tracking, runaway"),
                       "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:10: events[2]: a shock needs 'factor'"), "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:11: events[3].cycle: cycle 60 is not before the end (cycles: 50)"),
                       "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:12: events[4]: missing key 'cycle'"), "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:12: events[4]: 'factor' belongs to a shock"), "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:13: events[5]: a runaway needs 'ratio'"), "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, "t.yaml:14: unknown key 'events2' in scenario file (did you mean 'events'?)"),
                       "%s", errbuf);
}

Test(scenario, start_must_align_with_cycle)
{
    load_err("scenario: t\ncycles: 5\nstart: 1704067201\nportfolio: p\nchannels:\n"
             "  a: {rate: 1, saturation: 1}\n  b: {rate: 1, saturation: 1}\n" CONFIG,
             "t.yaml:3: start 1704067201 is not a multiple of the config's cycle (3600 s)");
}

Test(scenario, yaml_syntax_error_has_line)
{
    load_err("scenario: t\ncycles: [1,\n", "t.yaml:3: YAML: ");
}

Test(scenario, wrong_types)
{
    load_err("scenario: t\ncycles: many\nportfolio: p\nchannels: [a, b]\n" CONFIG,
             "t.yaml:2: cycles: expected an integer, got 'many'");
    cr_assert_not_null(strstr(errbuf, "t.yaml:4: channels: expected a mapping, got a list"), "%s", errbuf);
}

Test(scenario, file_errors_use_the_path)
{
    sim_scenario_t *sc = NULL;
    bd_err_t rc = sim_scenario_load("/nonexistent/s.yaml", &sc, errbuf, sizeof errbuf);
    cr_assert_eq(rc, BD_ERR_IO);
    cr_assert_not_null(strstr(errbuf, "/nonexistent/s.yaml: "), "%s", errbuf);
}

/* The scenarios make bench-quality runs: they must stay loadable. */
Test(scenario, bundled_scenarios_load)
{
    const char *files[] = {"drift", "shock", "new_channel", "broken_tracking", "runaway"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[256];
        snprintf(path, sizeof path, "bench/scenarios/%s.yaml", files[i]);
        sim_scenario_t *sc = NULL;
        bd_err_t rc = sim_scenario_load(path, &sc, errbuf, sizeof errbuf);
        cr_assert_eq(rc, BD_OK, "%s: %s", path, errbuf);
        cr_assert_str_eq(sc->name, files[i]);
        sim_scenario_free(sc);
    }
}

/* ---- the time-structure, delivery and fault keys ------------------------ */

Test(scenario, new_keys_load)
{
    sim_scenario_t *sc = load_ok(
        "scenario: t\ncycles: 200\nruns: 3\nportfolio: p\ndelivery: restate\n"
        "noise: {value_sigma: 1.2, cap_sd: 0.05}\n"
        "traffic: {cvr: 0.1, ctr: 0.01}\n"
        "season: {daily: {amplitude: 0.5, peak_hour: 20}}\n"
        "channels:\n"
        "  a: {rate: 0.05, saturation: 1000, carryover: 0.9, lag: 3,\n"
        "      season: {weekly: [1, 1, 1, 1, 1, 2, 2]}}\n"
        "  b: {rate: 0.04, saturation: 800, lag: {mean: 12, dist: lognormal, sigma: 0.5, horizon: 48}}\n"
        "events:\n"
        "  - {cycle: 10, cap: a, amount: 300, cycles: 4, every: 24}\n"
        "  - {cycle: 20, silent: b, cycles: 5}\n"
        "  - {cycle: 30, no_conversions: a}\n"
        "  - {cycle: 40, value_error: b, factor: 100, cycles: 2}\n"
        "  - {cycle: 50, broken_tracking: a, cycles: 7}\n"
        "targets: [half_within_5pct, detect_within_3, no_violations]\n" CONFIG);
    cr_assert_eq(sc->runs, 3);
    cr_assert_eq(sc->delivery, SIM_DELIVER_RESTATE);
    cr_assert_float_eq(sc->value_sigma, 1.2, 1e-12);
    cr_assert_float_eq(sc->cap_sd, 0.05, 1e-12);
    cr_assert(sc->traffic);
    cr_assert_float_eq(sc->cvr, 0.1, 1e-12);
    cr_assert_float_eq(sc->ctr, 0.01, 1e-12);
    cr_assert_float_eq(sc->ch[0].carryover, 0.9, 1e-12);
    cr_assert_eq(sc->ch[0].lag.dist, SIM_LAG_GEOMETRIC);
    cr_assert_float_eq(sc->ch[0].lag.mean, 3, 1e-12);
    cr_assert_eq(sc->ch[1].lag.dist, SIM_LAG_LOGNORMAL);
    cr_assert_eq(sc->ch[1].lag.horizon, 48);
    cr_assert_float_eq(sc->ch[1].lag.sigma, 0.5, 1e-12);
    /* a's own season replaces the top-level one: flat day, weekend x2 */
    cr_assert(sc->ch[0].season.on);
    cr_assert_float_eq(sc->ch[0].season.daily[20], 1.0, 1e-12);
    cr_assert_float_eq(sc->ch[0].season.weekly[5], 2.0 * 7 / 9, 1e-12);
    /* b takes the top-level cosine: peak 1.5 at 20h, trough 0.5 at 8h */
    cr_assert_float_eq(sc->ch[1].season.daily[20], 1.5, 1e-12);
    cr_assert_float_eq(sc->ch[1].season.daily[8], 0.5, 1e-12);
    cr_assert_eq(sc->n_ev, 5);
    cr_assert_eq(sc->ev[0].kind, SIM_CAP);
    cr_assert_float_eq(sc->ev[0].amount, 300, 1e-12);
    cr_assert_eq(sc->ev[0].duration, 4);
    cr_assert_eq(sc->ev[0].every, 24);
    cr_assert_eq(sc->ev[1].kind, SIM_SILENT);
    cr_assert_eq(sc->ev[2].kind, SIM_NOCONV);
    cr_assert_eq(sc->ev[3].kind, SIM_VALUE_ERR);
    cr_assert_float_eq(sc->ev[3].factor, 100, 1e-12);
    cr_assert_eq(sc->ev[4].kind, SIM_BREAK);
    cr_assert_eq(sc->ev[4].duration, 7);
    cr_assert_eq(sc->target_mask, SIM_T_HALF_5PCT | SIM_T_DETECT_3 | SIM_T_NO_VIOLATIONS);
    cr_assert(!sc->targets);
    sim_scenario_free(sc);
}

Test(scenario, new_key_errors)
{
    load_err("scenario: t\ncycles: 50\nportfolio: p\ndelivery: later\n"
             "season: {daily: [1, 2], weekly: {amplitude: 1.5, peak_day: 7}}\n"
             "channels:\n"
             "  a: {rate: 1, saturation: 1, lag: {dist: gamma}, carryover: 1}\n"
             "  b: {rate: 1, saturation: 1, lag: {mean: 2, horizon: 100000}}\n"
             "events:\n"
             "  - {cycle: 10, cap: a}\n"
             "  - {cycle: 10, cap: a, amount: 5, cycles: 4, every: 4}\n"
             "  - {cycle: 10, silent: b, factor: 3}\n"
             "  - {cycle: 10, value_error: b}\n"
             "  - {cycle: 10, shock: b, factor: 2, cycles: 3}\n"
             "targets: [fast]\n" CONFIG,
             "t.yaml:4: delivery: expected one of late|restate, got 'later' (did you mean 'late'?)");
    const char *want[] = {
        "t.yaml:5: season.daily: expected 24 numbers, got 2",
        "t.yaml:5: season.weekly.amplitude must be in [0, 1)",
        "t.yaml:5: season.weekly.peak_day must be < 7, got 7",
        "t.yaml:7: channels.a.lag.dist: expected one of none|geometric|lognormal",
        "t.yaml:7: channels.a.lag: missing key 'mean'",
        "t.yaml:7: channels.a.carryover must be in [0, 1)",
        "t.yaml:8: channels.b.lag.horizon",
        "t.yaml:10: events[0]: a cap needs 'amount'",
        "t.yaml:11: events[1]: a periodic cap needs 0 < cycles < every",
        "t.yaml:12: events[2]: 'factor' belongs to a shock or a value_error",
        "t.yaml:13: events[3]: a value_error needs 'factor'",
        "t.yaml:14: events[4]: a shock lasts (no 'cycles')",
        "t.yaml:15: targets[0]: expected one of half_within_5pct|",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_assert_not_null(strstr(errbuf, want[i]), "missing '%s' in:\n%s", want[i], errbuf);
}

Test(scenario, all_bundled_scenarios_load)
{
    DIR *d = opendir("bench/scenarios");
    cr_assert_not_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".yaml")) continue;
        char path[512];
        snprintf(path, sizeof path, "bench/scenarios/%s", de->d_name);
        sim_scenario_t *sc = NULL;
        bd_err_t rc = sim_scenario_load(path, &sc, errbuf, sizeof errbuf);
        cr_assert_eq(rc, BD_OK, "%s: %s", path, errbuf);
        sim_scenario_free(sc);
        n++;
    }
    closedir(d);
    cr_assert_geq(n, 22, "the five original and the seventeen time-structure scenarios");
}

/* ---- the simulator's effects (bench/sim/truth.c, env.c, metrics.c) ------- */

/* Two channels a (min 100, max 800) and b (max 900), budget 1000; extra
 * scenario lines in `body` (channels, events, ...). */
static sim_scenario_t *sim_scenario(const char *body)
{
    char text[8192];
    snprintf(text, sizeof text, "scenario: t\ncycles: 300\nseed: 5\nportfolio: p\n%s" CONFIG, body);
    return load_ok(text);
}

/* Plays the constant allocation x through tr; reports of every cycle are
 * handed to fn (may be NULL); per-cycle returns into v (may be NULL). */
typedef void (*report_fn)(void *ctx, int t, const sim_report_t *rep, size_t n, const double *deliv);
static void play_const(const sim_scenario_t *sc, const sim_truth_t *tr, const double *x, report_fn fn,
                       void *ctx, double *v)
{
    sim_env_t *env = sim_env_new(sc, tr, true);
    double deliv[8];
    for (int t = 0; t < tr->T; t++) {
        const sim_report_t *rep;
        size_t n;
        double r = sim_env_step(env, t, x, deliv, &rep, &n);
        if (v) v[t] = r;
        if (fn) fn(ctx, t, rep, n, deliv);
    }
    sim_env_free(env);
}

Test(sim, season_profile_averages_to_one)
{
    double v[24] = {3, 1, 2, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9};
    cr_assert(sim_season_normalise(v, 24));
    double s = 0;
    for (int i = 0; i < 24; i++) s += v[i];
    cr_assert_float_eq(s / 24, 1.0, 1e-12);
    v[3] = 0;
    cr_assert(!sim_season_normalise(v, 24), "a zero factor is refused");
    sim_season_t se = {.on = true};
    sim_season_cosine(se.daily, 24, 0.8, 19.5);
    sim_season_cosine(se.weekly, 7, 0.3, 5);
    s = 0;
    for (int i = 0; i < 24; i++) s += se.daily[i];
    cr_assert_float_eq(s / 24, 1.0, 1e-12);
    /* over a whole week of hourly intervals the product averages to 1 */
    s = 0;
    for (int h = 0; h < 168; h++) s += sim_season_factor(&se, 1704067200LL + h * 3600LL, 3600);
    cr_assert_float_eq(s / 168, 1.0, 1e-12);
    /* a one-day interval averages the day's hours; 2024-01-01 is a Monday */
    double day = 0;
    for (int h = 0; h < 24; h++) day += se.daily[h] * se.weekly[0];
    cr_assert_float_eq(sim_season_factor(&se, 1704067200LL, 86400), day / 24, 1e-12);
    cr_assert_float_eq(sim_season_factor(&se, 1704067200LL + 5 * 86400 + 19 * 3600, 3600),
                       se.daily[19] * se.weekly[5], 1e-12, "Saturday 19h");
}

Test(sim, lag_pmf_sums_to_one_with_its_mean)
{
    double pmf[SIM_LAG_HORIZON_MAX + 1];
    sim_lag_t g = {.dist = SIM_LAG_GEOMETRIC, .mean = 3};
    int H = sim_lag_pmf(&g, pmf);
    double s = 0, m = 0;
    for (int d = 0; d <= H; d++) {
        s += pmf[d];
        m += d * pmf[d];
    }
    cr_assert_float_eq(s, 1.0, 1e-12);
    cr_assert_float_eq(m, 3.0, 0.05, "geometric mean %g", m);
    cr_assert_float_eq(pmf[1] / pmf[0], 0.75, 1e-9, "ratio q = mean / (1 + mean)");
    sim_lag_t l = {.dist = SIM_LAG_LOGNORMAL, .mean = 12, .sigma = 1.0};
    H = sim_lag_pmf(&l, pmf);
    s = m = 0;
    for (int d = 0; d <= H; d++) {
        s += pmf[d];
        m += d * pmf[d];
    }
    cr_assert_float_eq(s, 1.0, 1e-12);
    cr_assert_float_eq(m, 12.0, 0.3, "lognormal mean %g", m);
    sim_lag_t h = {.dist = SIM_LAG_LOGNORMAL, .mean = 72, .sigma = 0.8, .horizon = 100};
    cr_assert_eq(sim_lag_pmf(&h, pmf), 100, "an explicit horizon");
    sim_lag_t none = {0};
    cr_assert_eq(sim_lag_pmf(&none, pmf), 0);
    cr_assert_float_eq(pmf[0], 1.0, 0);
}

/* Interval totals of a run: what all its reports add (d_*), and the last
 * report's totals (c_*), per origin cycle and channel. */
typedef struct {
    double conv[300][2], rev[300][2], cconv[300][2], crev[300][2], spend[300][2];
    int last_rev[300][2], reports[300][2];
    bool rev_ok, cum_ok;
} totals_t;

static void collect(void *ctx, int t, const sim_report_t *rep, size_t n, const double *deliv)
{
    (void)t;
    (void)deliv;
    totals_t *tt = ctx;
    for (size_t j = 0; j < n; j++) {
        const sim_report_t *r = &rep[j];
        int o = r->origin;
        size_t c = r->ch;
        tt->conv[o][c] += r->d_conversions;
        tt->rev[o][c] += r->d_revenue;
        tt->spend[o][c] += r->d_spend;
        /* rev counts the reports sent of the interval; totals only grow */
        if (r->rev != tt->reports[o][c]) tt->rev_ok = false;
        if (r->c_conversions < tt->cconv[o][c] || fabs(r->c_conversions - tt->conv[o][c]) > 1e-9 ||
            fabs(r->c_revenue - tt->rev[o][c]) > 0.005 || r->c_spend != tt->spend[o][c])
            tt->cum_ok = false;
        tt->cconv[o][c] = r->c_conversions;
        tt->crev[o][c] = r->c_revenue;
        tt->reports[o][c]++;
    }
}

Test(sim, lag_splits_sum_to_the_interval_total)
{
    static totals_t lag = {.rev_ok = true, .cum_ok = true}, none = {.rev_ok = true, .cum_ok = true};
    sim_scenario_t *a = sim_scenario("channels:\n  a: {rate: 0.05, value: 40, saturation: 1000, lag: 4}\n"
                                     "  b: {rate: 0.04, value: 30, saturation: 800,"
                                     " lag: {mean: 12, dist: lognormal}}\n");
    sim_scenario_t *b = sim_scenario("channels:\n  a: {rate: 0.05, value: 40, saturation: 1000}\n"
                                     "  b: {rate: 0.04, value: 30, saturation: 800}\n");
    sim_truth_t *ta = sim_truth_new(a, 9), *tb = sim_truth_new(b, 9);
    double x[2] = {600, 400};
    play_const(a, ta, x, collect, &lag, NULL);
    play_const(b, tb, x, collect, &none, NULL);
    cr_assert(lag.rev_ok, "rev numbers the reports of an interval 0, 1, 2, ...");
    cr_assert(lag.cum_ok, "each report's totals are the sum of its pieces so far");
    double pieces = 0;
    for (int o = 0; o < 150; o++) /* every piece of these has arrived */
        for (int c = 0; c < 2; c++) {
            cr_assert_float_eq(lag.conv[o][c], none.conv[o][c], 1e-9, "conversions of (%d,%d)", o, c);
            cr_assert_float_eq(lag.rev[o][c], none.rev[o][c], 0.005, "revenue of (%d,%d)", o, c);
            cr_assert_float_eq(lag.spend[o][c], none.spend[o][c], 0, "spend comes once");
            pieces += lag.reports[o][c];
            cr_assert_eq(none.reports[o][c], 1);
        }
    cr_assert_gt(pieces, 150 * 2 * 3, "the lag splits intervals over several reports (%g)", pieces);
    sim_truth_free(ta);
    sim_truth_free(tb);
    sim_scenario_free(a);
    sim_scenario_free(b);
}

Test(sim, cap_limits_delivered_and_reported_spend)
{
    sim_scenario_t *sc = sim_scenario("noise: {cap_sd: 0.05}\n"
                                      "channels:\n  a: {rate: 0.05, saturation: 1000}\n"
                                      "  b: {rate: 0.04, saturation: 800}\n"
                                      "events:\n  - {cycle: 100, cap: a, amount: 300, cycles: 50}\n");
    sim_truth_t *tr = sim_truth_new(sc, 3);
    sim_env_t *env = sim_env_new(sc, tr, true);
    double x[2] = {600, 400}, deliv[2];
    for (int t = 0; t < tr->T; t++) {
        const sim_report_t *rep;
        size_t n;
        sim_env_step(env, t, x, deliv, &rep, &n);
        double cap = tr->cap[(size_t)t * 2];
        if (t >= 100 && t < 150) {
            cr_assert(cap > 200 && cap < 400, "cycle %d: cap %g near 300", t, cap);
            cr_assert_float_eq(deliv[0], cap, 1e-9);
            cr_assert_float_eq(rep[0].d_spend, round(cap * 100) / 100, 1e-9, "reported = delivered");
            cr_assert_leq(tr->opt_x[(size_t)t * 2], cap + 1e-6, "the oracle knows the cap");
        } else {
            cr_assert(isinf(cap));
            cr_assert_float_eq(deliv[0], 600, 0);
        }
        cr_assert_float_eq(deliv[1], 400, 0);
    }
    sim_env_free(env);
    sim_truth_free(tr);
    sim_scenario_free(sc);
}

Test(sim, adstock_steady_state_and_decay)
{
    sim_scenario_t *sc = sim_scenario("channels:\n  a: {rate: 0.05, saturation: 1000, carryover: 0.8}\n"
                                      "  b: {rate: 0.04, saturation: 800}\n");
    sim_truth_t *tr = sim_truth_new(sc, 4);
    /* constant spend at the initial split: the adstock stays there, the
     * return is the curves' at the spend (steady state e = s) */
    double x[2] = {tr->init_x[0], tr->init_x[1]};
    double v[300];
    play_const(sc, tr, x, NULL, NULL, v);
    for (int t = 0; t < 300; t++)
        cr_assert_float_eq(v[t], sim_value(&tr->curve[(size_t)t * 2], x, 2), 1e-9 * v[t]);
    /* a goes dark at cycle 0: its effective spend decays as 0.8^(t+1) x */
    sim_env_t *env = sim_env_new(sc, tr, false);
    double y[2] = {0, x[1]};
    for (int t = 0; t < 20; t++) {
        const sim_report_t *rep;
        size_t n;
        double r = sim_env_step(env, t, y, NULL, &rep, &n);
        double e = pow(0.8, t + 1) * x[0];
        double want = bd_curve_value(&tr->curve[(size_t)t * 2], e) +
                      bd_curve_value(&tr->curve[(size_t)t * 2 + 1], x[1]);
        cr_assert_float_eq(r, want, 1e-9 * want, "cycle %d", t);
        cr_assert_eq(n, 2, "a dark channel still reports (spend 0, carried-over conversions)");
        cr_assert_float_eq(rep[0].d_spend, 0, 0);
    }
    sim_env_free(env);
    sim_truth_free(tr);
    sim_scenario_free(sc);
}

/* What channel a reports per cycle. */
typedef struct {
    double conv[300], rev[300], clicks[300];
    int n[300];
} arep_t;

static void collect_a(void *ctx, int t, const sim_report_t *rep, size_t n, const double *deliv)
{
    (void)deliv;
    arep_t *a = ctx;
    for (size_t j = 0; j < n; j++)
        if (rep[j].ch == 0) {
            a->conv[t] += rep[j].d_conversions;
            a->rev[t] += rep[j].d_revenue;
            a->clicks[t] += rep[j].d_clicks;
            a->n[t]++;
        }
}

Test(sim, faults_corrupt_reports_not_the_return)
{
    const char *ch = "traffic: {cvr: 0.05, ctr: 0.02}\n"
                     "channels:\n  a: {rate: 0.05, value: 40, saturation: 1000}\n"
                     "  b: {rate: 0.04, saturation: 800}\n";
    char buf[1024];
    static const char *ev[] = {
        "", "events:\n  - {cycle: 100, broken_tracking: a, cycles: 10}\n",
        "events:\n  - {cycle: 100, no_conversions: a, cycles: 10}\n",
        "events:\n  - {cycle: 100, value_error: a, factor: 100, cycles: 10}\n",
        "events:\n  - {cycle: 100, silent: a, cycles: 10}\n",
        "events:\n  - {cycle: 100, shock: a, factor: 0.05}\n"};
    static arep_t r[6];
    double v[6][300], x[2] = {600, 400};
    for (int k = 0; k < 6; k++) {
        snprintf(buf, sizeof buf, "%s%s", ch, ev[k]);
        sim_scenario_t *sc = sim_scenario(buf);
        sim_truth_t *tr = sim_truth_new(sc, 8);
        play_const(sc, tr, x, collect_a, &r[k], v[k]);
        for (int t = 0; t < 300; t++) {
            bool in = t >= 100 && t < 110;
            unsigned char want = !in ? 0 : k == 1 ? SIM_F_TRACKING : k == 2 ? SIM_F_NOCONV
                                 : k == 3 ? SIM_F_VALUE : k == 4 ? SIM_F_SILENT : 0;
            cr_assert_eq(tr->fault[(size_t)t * 2], want, "case %d cycle %d", k, t);
        }
        sim_truth_free(tr);
        sim_scenario_free(sc);
    }
    double conv = 0, rev = 0, clicks = 0, clicks5 = 0;
    for (int t = 100; t < 110; t++) {
        conv += r[0].conv[t];
        rev += r[0].rev[t];
        clicks += r[0].clicks[t];
        clicks5 += r[5].clicks[t];
        cr_assert_float_eq(r[1].conv[t] + r[1].rev[t], 0, 0, "tracking: nothing converts");
        cr_assert_float_eq(r[1].clicks[t], r[0].clicks[t], 0, "tracking: traffic as before");
        cr_assert_float_eq(r[2].conv[t], 0, 0);
        cr_assert_float_eq(r[2].rev[t], r[0].rev[t], 0, "no_conversions: revenue as before");
        cr_assert_float_eq(r[3].rev[t], round(r[0].rev[t] * 100 * 100) / 100, 0.011, "x100");
        cr_assert_float_eq(r[3].conv[t], r[0].conv[t], 0);
        cr_assert_eq(r[4].n[t], 0, "silent: no report");
    }
    cr_assert_gt(conv, 0);
    cr_assert_gt(rev, 0);
    cr_assert_lt(clicks5, 0.2 * clicks, "a real decline shows in the clicks");
    for (int k = 1; k < 5; k++)
        for (int t = 0; t < 300; t++) cr_assert_float_eq(v[k][t], v[0][t], 0, "faults leave the return");
    cr_assert_lt(v[5][150], 0.8 * v[0][150], "a real decline lowers it");
}

Test(sim, detection_delay_and_false_alarms)
{
    sim_scenario_t *sc = sim_scenario("channels:\n  a: {rate: 0.05, saturation: 1000}\n"
                                      "  b: {rate: 0.04, saturation: 800}\n"
                                      "events:\n  - {cycle: 100, broken_tracking: a, cycles: 20}\n");
    sim_truth_t *tr = sim_truth_new(sc, 2);
    sim_result_t res = {0};
    res.flag = bd_xcalloc(600, 1);
    for (int t = 103; t < 122; t++) res.flag[t * 2] = 1;  /* a: flagged 3 cycles in, cleared at 122 */
    for (int t = 200; t < 205; t++) res.flag[t * 2 + 1] = 1; /* b: never faulty */
    sim_detect_t d;
    sim_detection(tr, &res, &d);
    cr_assert_eq(d.faults, 1);
    cr_assert_eq(d.detected, 1);
    cr_assert_eq(d.worst_delay, 3);
    cr_assert_eq(d.worst_clear, 2, "the fault ends at 120; record 121 could clear, 122 does");
    cr_assert_eq(d.false_alarms, 1);
    memset(res.flag, 0, 600);
    sim_detection(tr, &res, &d);
    cr_assert_eq(d.detected, 0);
    cr_assert_eq(d.worst_delay, -1);
    free(res.flag);
    /* the records' "fault" field marks the cycle the record decides */
    unsigned char flag[600] = {0};
    const char *rec = "{\"cycle\":1007,\"channels\":[{\"channel\":\"a\",\"fault\":\"tracking\"},"
                      "{\"channel\":\"b\",\"fault\":null}]}";
    cr_assert(sim_record_faults(rec, strlen(rec), sc, 1000, 300, flag));
    cr_assert_eq(flag[7 * 2], 1);
    cr_assert_eq(flag[7 * 2 + 1], 0);
    const char *old = "{\"cycle\":1007,\"channels\":[{\"channel\":\"a\",\"spend\":1}]}";
    cr_assert(!sim_record_faults(old, strlen(old), sc, 1000, 300, flag), "no field: today's records");
    sim_truth_free(tr);
    sim_scenario_free(sc);
}
