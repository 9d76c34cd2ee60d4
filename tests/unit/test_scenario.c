/* test_scenario.c: the simulator's scenario loader (bench/scenario.c):
 * valid files load with the values written, every error names its line,
 * embedded config errors keep the scenario's line numbers, and the bundled
 * scenarios load. The bench sources are not in libbudgetd, so the file
 * under test is compiled in here. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "../../bench/sim/scenario.c"

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
