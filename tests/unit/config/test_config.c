/* test_config.c: config loading (docs/CONTRACT.md §5): defaults, inheritance,
 * durations, and every error message with its exact line. */
#include <criterion/criterion.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "budgetd/config.h"
#include "budgetd/yaml.h"
#include "fixtures.h"

static char err[8192];

/* Loads yaml as "t.yaml"; NULL when refused (err holds why). */
static bd_config_t *load(const char *yaml) { return bd_test_config(yaml, err, sizeof err); }

/* True when err holds exactly this line. */
static bool has_line(const char *line) { return bd_test_has_line(err, line); }

static int count_lines(void)
{
    if (!err[0]) return 0;
    int n = 1;
    for (const char *p = err; *p; p++) n += *p == '\n';
    return n;
}

/* Asserts the load fails and that `line` is one of its error lines. */
static void expect_error(const char *yaml, const char *line)
{
    bd_config_t *c = load(yaml);
    cr_assert_null(c, "expected failure for:\n%s", yaml);
    cr_assert(has_line(line), "missing error line\n  %s\ngot:\n%s", line, err);
}

Test(config, builtin_defaults_applied)
{
    bd_config_t *c = load("portfolios:\n  a: {budget: 100}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->cycle, 3600);
    cr_assert_eq(c->lateness, 0);
    cr_assert_eq(c->seed, 42);
    cr_assert_eq(c->dedup_window, 86400);
    cr_assert_str_eq(c->kafka.brokers, "127.0.0.1:9092");
    cr_assert_str_eq(c->kafka.topic, "channel-events");
    cr_assert_str_eq(c->kafka.group, "budgetd");
    cr_assert_str_eq(c->kafka.dlq_topic, "channel-events-dlq");
    cr_assert_eq(c->kafka.n_props, 0);
    cr_assert_str_eq(c->redis.url, "redis://127.0.0.1:6379");
    cr_assert_str_eq(c->redis.prefix, "budgetd");
    cr_assert_str_eq(c->redis.password_env, "BUDGETD_REDIS_PASSWORD");
    cr_assert_eq(c->redis.stream_maxlen, 10000);
    cr_assert_not(c->has_default_budget);
    const bd_policy_t *p = &c->portfolios[0].p;
    cr_assert_eq(p->budget, 100);
    cr_assert_eq(p->objective, BD_OBJ_REVENUE);
    cr_assert_eq(p->model, BD_MODEL_POISSON_SAT);
    cr_assert_eq(p->samples, 64);
    cr_assert_float_eq(p->discount, 0.98, 1e-12);
    cr_assert_float_eq(p->max_step, 0.25, 1e-12);
    cr_assert_float_eq(p->min_change, 0.01, 1e-12);
    cr_assert_float_eq(p->explore_share, 0.05, 1e-12);
    cr_assert_eq(p->mode, BD_MODE_AUTOMATE);
    cr_assert_float_eq(p->escalate_above, 0.3, 1e-12);
    cr_assert_float_eq(p->risk_roas_floor, 1.0, 1e-12);
    cr_assert_float_eq(p->risk_max_prob, 0.2, 1e-12);
    cr_assert_float_eq(p->kill.roas_below, 0.5, 1e-12);
    cr_assert_eq(p->kill.window, 6);
    cr_assert_float_eq(p->kill.overspend_ratio, 1.5, 1e-12);
    cr_assert_eq(p->kill.stale_after, 3 * 3600);
    cr_assert_float_eq(p->kill.max_reject_ratio, 0.2, 1e-12);
    cr_assert_eq(p->kill.action, BD_KILL_FREEZE);
    cr_assert_float_eq(p->lab.min_conversions, 30, 1e-12);
    cr_assert_float_eq(p->lab.max_rel_width, 0.5, 1e-12);
    cr_assert_float_eq(p->lab.cap_share, 0.1, 1e-12);
    cr_assert_eq(p->channel.min, 0);
    cr_assert(isinf(p->channel.max));
    cr_assert_eq(p->channel.saturation, 1000);
    cr_assert_not(p->channel.lab);
    cr_assert_str_eq(p->channel.name, "");
    cr_assert_eq(c->portfolios[0].n_channels, 0);
    bd_config_free(c);
}

Test(config, top_level_values)
{
    bd_config_t *c = load("v: 1\n"
                          "cycle: 15m\n"
                          "lateness: 90\n"
                          "seed: 18446744073709551615\n"
                          "dedup_window: 2d\n"
                          "kafka:\n"
                          "  brokers: k1:9092,k2:9092\n"
                          "  topic: ev\n"
                          "  group: g\n"
                          "  dlq_topic: dlq\n"
                          "  properties: {security.protocol: SASL_SSL, enable.auto.commit: false,\n"
                          "               session.timeout.ms: 6000}\n"
                          "redis: {url: 'unix:///tmp/r.sock', prefix: bx, password_env: '',\n"
                          "        stream_maxlen: 50}\n"
                          "defaults: {budget: 10}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->cycle, 900);
    cr_assert_eq(c->lateness, 90);
    cr_assert_eq(c->seed, UINT64_MAX);
    cr_assert_eq(c->dedup_window, 2 * 86400);
    cr_assert_str_eq(c->kafka.brokers, "k1:9092,k2:9092");
    cr_assert_str_eq(c->kafka.topic, "ev");
    cr_assert_str_eq(c->kafka.group, "g");
    cr_assert_str_eq(c->kafka.dlq_topic, "dlq");
    cr_assert_eq(c->kafka.n_props, 3);
    cr_assert_str_eq(c->kafka.prop_keys[0], "security.protocol");
    cr_assert_str_eq(c->kafka.prop_vals[0], "SASL_SSL");
    cr_assert_str_eq(c->kafka.prop_keys[1], "enable.auto.commit");
    cr_assert_str_eq(c->kafka.prop_vals[1], "false");
    cr_assert_str_eq(c->kafka.prop_vals[2], "6000");
    cr_assert_str_eq(c->redis.url, "unix:///tmp/r.sock");
    cr_assert_str_eq(c->redis.prefix, "bx");
    cr_assert_str_eq(c->redis.password_env, "");
    cr_assert_eq(c->redis.stream_maxlen, 50);
    cr_assert(c->has_default_budget);
    cr_assert_eq(c->defaults.budget, 10);
    cr_assert_eq(c->n_portfolios, 0);
    bd_config_free(c);
}

Test(config, durations)
{
    cr_assert_eq(bd_yaml_parse_duration("0"), 0);
    cr_assert_eq(bd_yaml_parse_duration("90"), 90);
    cr_assert_eq(bd_yaml_parse_duration("90s"), 90);
    cr_assert_eq(bd_yaml_parse_duration("15m"), 900);
    cr_assert_eq(bd_yaml_parse_duration("1h"), 3600);
    cr_assert_eq(bd_yaml_parse_duration("2d"), 172800);
    cr_assert_eq(bd_yaml_parse_duration("1.5h"), 5400);
    cr_assert_eq(bd_yaml_parse_duration("0.5m"), 30);
    cr_assert_eq(bd_yaml_parse_duration("1.5"), -1);  /* not whole seconds */
    cr_assert_eq(bd_yaml_parse_duration("1.5s"), -1);
    cr_assert_eq(bd_yaml_parse_duration(""), -1);
    cr_assert_eq(bd_yaml_parse_duration("h"), -1);
    cr_assert_eq(bd_yaml_parse_duration("-5"), -1);
    cr_assert_eq(bd_yaml_parse_duration("+5"), -1);
    cr_assert_eq(bd_yaml_parse_duration(" 5"), -1);
    cr_assert_eq(bd_yaml_parse_duration("5 s"), -1);
    cr_assert_eq(bd_yaml_parse_duration("5w"), -1);
    cr_assert_eq(bd_yaml_parse_duration("5hh"), -1);
    cr_assert_eq(bd_yaml_parse_duration("1e3"), -1);
    cr_assert_eq(bd_yaml_parse_duration("1."), -1);
    cr_assert_eq(bd_yaml_parse_duration("99999999999999999999"), -1);
    cr_assert_eq(bd_yaml_parse_duration("9223372036854775807d"), -1);
    cr_assert_eq(bd_yaml_parse_duration(NULL), -1);
}

Test(config, inheritance_and_override)
{
    bd_config_t *c = load("defaults:\n"
                          "  budget: 1000\n"
                          "  mode: delegate\n"
                          "  samples: 32\n"
                          "  risk: {roas_floor: 2.0, max_prob: 0.1}\n"
                          "  kill: {window: 4, action: fallback, stale_after: 30m}\n"
                          "  lab: {cap_share: 0.2}\n"
                          "  channel: {min: 10, max: 400, saturation: 50}\n"
                          "portfolios:\n"
                          "  plain: {}\n"
                          "  custom:\n"
                          "    budget: 5000\n"
                          "    objective: conversions\n"
                          "    model: loglog\n"
                          "    mode: assist\n"
                          "    risk: {max_prob: 0.5}\n"
                          "    kill: {action: zero}\n"
                          "    channels:\n"
                          "      a: {initial: 100}\n"
                          "      b: {max: .inf, lab: true}\n"
                          "    channel: {saturation: 70}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert(c->has_default_budget);
    cr_assert_eq(c->n_portfolios, 2);
    /* sorted by name: custom < plain */
    const bd_portfolio_cfg_t *cu = &c->portfolios[0], *pl = &c->portfolios[1];
    cr_assert_str_eq(cu->name, "custom");
    cr_assert_str_eq(pl->name, "plain");
    cr_assert_eq(pl->line, 10);
    cr_assert_eq(cu->line, 11);

    /* plain: everything from defaults */
    cr_assert_eq(pl->p.budget, 1000);
    cr_assert_eq(pl->p.mode, BD_MODE_DELEGATE);
    cr_assert_eq(pl->p.samples, 32);
    cr_assert_float_eq(pl->p.risk_roas_floor, 2.0, 1e-12);
    cr_assert_float_eq(pl->p.risk_max_prob, 0.1, 1e-12);
    cr_assert_eq(pl->p.kill.window, 4);
    cr_assert_eq(pl->p.kill.action, BD_KILL_FALLBACK);
    cr_assert_eq(pl->p.kill.stale_after, 1800);
    cr_assert_float_eq(pl->p.kill.roas_below, 0.5, 1e-12); /* builtin survives a partial map */
    cr_assert_float_eq(pl->p.lab.cap_share, 0.2, 1e-12);
    cr_assert_float_eq(pl->p.lab.min_conversions, 30, 1e-12);
    cr_assert_eq(pl->p.channel.min, 10);
    cr_assert_eq(pl->p.channel.max, 400);
    cr_assert_eq(pl->p.channel.saturation, 50);

    /* custom: own keys, nested maps merged key by key */
    cr_assert_eq(cu->p.budget, 5000);
    cr_assert_eq(cu->p.objective, BD_OBJ_CONVERSIONS);
    cr_assert_eq(cu->p.model, BD_MODEL_LOGLOG);
    cr_assert_eq(cu->p.mode, BD_MODE_ASSIST);
    cr_assert_eq(cu->p.samples, 32);
    cr_assert_float_eq(cu->p.risk_roas_floor, 2.0, 1e-12);
    cr_assert_float_eq(cu->p.risk_max_prob, 0.5, 1e-12);
    cr_assert_eq(cu->p.kill.action, BD_KILL_ZERO);
    cr_assert_eq(cu->p.kill.window, 4);
    cr_assert_eq(cu->p.kill.stale_after, 1800);
    /* `channel` after `channels` in the file still applies to them */
    cr_assert_eq(cu->p.channel.saturation, 70);
    cr_assert_eq(cu->p.channel.min, 10);
    cr_assert_eq(cu->n_channels, 2);
    const bd_channel_cfg_t *a = &cu->channels[0], *b = &cu->channels[1];
    cr_assert_str_eq(a->name, "a");
    cr_assert_eq(a->line, 19);
    cr_assert_eq(a->min, 10);
    cr_assert_eq(a->max, 400);
    cr_assert_eq(a->saturation, 70);
    cr_assert(a->has_initial);
    cr_assert_eq(a->initial, 100);
    cr_assert_not(a->lab);
    cr_assert_str_eq(b->name, "b");
    cr_assert(isinf(b->max));
    cr_assert(b->lab);
    cr_assert_not(b->has_initial);

    /* the global defaults are untouched by portfolio overrides */
    cr_assert_eq(c->defaults.mode, BD_MODE_DELEGATE);
    cr_assert_float_eq(c->defaults.risk_max_prob, 0.1, 1e-12);
    cr_assert_eq(c->defaults.channel.saturation, 50);
    bd_config_free(c);
}

Test(config, key_order_does_not_matter)
{
    bd_config_t *c = load("portfolios:\n"
                          "  p: {channels: {x: {}}}\n"
                          "defaults: {budget: 300, channel: {saturation: 9}}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->portfolios[0].p.budget, 300);
    cr_assert_eq(c->portfolios[0].channels[0].saturation, 9);
    bd_config_free(c);
}

Test(config, lookups)
{
    bd_config_t *c = load("defaults: {budget: 10, channel: {saturation: 5}}\n"
                          "portfolios:\n"
                          "  zeta: {channels: {s: {saturation: 1}}}\n"
                          "  alpha: {}\n"
                          "  mid.x: {channel: {saturation: 7}, channels: {t: {}}}\n"
                          "  'b:2': {}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->n_portfolios, 4);
    const char *order[] = {"alpha", "b:2", "mid.x", "zeta"};
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(c->portfolios[i].name, order[i]);
        cr_assert_eq(bd_config_portfolio(c, order[i]), &c->portfolios[i]);
    }
    cr_assert_null(bd_config_portfolio(c, "beta"));
    cr_assert_null(bd_config_portfolio(c, ""));
    cr_assert_null(bd_config_portfolio(c, "zz"));

    const bd_portfolio_cfg_t *z = bd_config_portfolio(c, "zeta");
    cr_assert_eq(bd_config_channel(z, &c->defaults, "s")->saturation, 1);
    const bd_channel_cfg_t *dflt = bd_config_channel(z, &c->defaults, "unlisted");
    cr_assert_str_eq(dflt->name, "");
    cr_assert_eq(dflt->saturation, 5);
    const bd_portfolio_cfg_t *m = bd_config_portfolio(c, "mid.x");
    cr_assert_eq(bd_config_channel(m, &c->defaults, "other")->saturation, 7);
    cr_assert_eq(bd_config_channel(m, &c->defaults, "t")->saturation, 7);
    cr_assert_eq(bd_config_channel(NULL, &c->defaults, "t"), &c->defaults.channel);
    bd_config_free(c);
}

Test(config, names)
{
    cr_assert_str_eq(bd_mode_name(BD_MODE_ASSIST), "assist");
    cr_assert_str_eq(bd_mode_name(BD_MODE_COLLABORATE), "collaborate");
    cr_assert_str_eq(bd_mode_name(BD_MODE_DELEGATE), "delegate");
    cr_assert_str_eq(bd_mode_name(BD_MODE_AUTOMATE), "automate");
    cr_assert_str_eq(bd_objective_name(BD_OBJ_REVENUE), "revenue");
    cr_assert_str_eq(bd_objective_name(BD_OBJ_CONVERSIONS), "conversions");
    cr_assert_str_eq(bd_kill_action_name(BD_KILL_FREEZE), "freeze");
    cr_assert_str_eq(bd_kill_action_name(BD_KILL_FALLBACK), "fallback");
    cr_assert_str_eq(bd_kill_action_name(BD_KILL_ZERO), "zero");
}

Test(config, minimal_yaml_loads_clean)
{
    bd_config_t *c = NULL;
    cr_assert_eq(bd_config_load("configs/minimal.yaml", &c, err, sizeof err), BD_OK, "%s", err);
    cr_assert(c->has_default_budget);
    cr_assert_eq(c->defaults.budget, 200);
    cr_assert_eq(c->n_portfolios, 0);
    bd_config_free(c);
}

Test(config, example_yaml_loads_clean)
{
    bd_config_t *c = NULL;
    bd_err_t rc = bd_config_load("configs/example.yaml", &c, err, sizeof err);
    cr_assert_eq(rc, BD_OK, "%s", err);
    cr_assert_str_eq(c->path, "configs/example.yaml");
    cr_assert_geq(c->n_portfolios, 3);
    cr_assert(c->has_default_budget);
    int modes[4] = {0}, labs = 0;
    for (size_t i = 0; i < c->n_portfolios; i++) {
        modes[c->portfolios[i].p.mode]++;
        for (size_t j = 0; j < c->portfolios[i].n_channels; j++) labs += c->portfolios[i].channels[j].lab;
    }
    cr_assert_geq(labs, 1);
    cr_assert_geq(!!modes[0] + !!modes[1] + !!modes[2] + !!modes[3], 3);
    const bd_portfolio_cfg_t *us = bd_config_portfolio(c, "acme-us");
    cr_assert_not_null(us);
    cr_assert_eq(us->p.budget, 10000);
    bd_config_free(c);
}

Test(config, io_error)
{
    bd_config_t *c = (bd_config_t *)&c;
    bd_err_t rc = bd_config_load("/nonexistent/budgetd.yaml", &c, err, sizeof err);
    cr_assert_eq(rc, BD_ERR_IO);
    cr_assert_null(c);
    cr_assert_str_eq(err, "/nonexistent/budgetd.yaml: No such file or directory");
}

/* Callers tell a file they cannot read from an invalid one by the code. */
Test(config, load_error_codes)
{
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    fputs("v: 1\nseed: -1\n", f);
    fclose(f);
    bd_config_t *c = (bd_config_t *)&c;
    cr_assert_eq(bd_config_load(path, &c, err, sizeof err), BD_ERR_CONFIG);
    cr_assert_null(c);
    char want[128];
    snprintf(want, sizeof want, "%s:2: seed: expected a non-negative integer, got '-1'", path);
    cr_assert_str_eq(err, want);
    unlink(path);
    /* a directory opens but cannot be read */
    c = (bd_config_t *)&c;
    cr_assert_eq(bd_config_load("/tmp", &c, err, sizeof err), BD_ERR_IO);
    cr_assert_null(c);
    cr_assert_str_eq(err, "/tmp: Is a directory");
}

Test(config, unknown_key_with_suggestion)
{
    expect_error("defaults:\n  budget: 1\n  maxstep: 0.3\n",
                 "t.yaml:3: unknown key 'maxstep' in defaults (did you mean 'max_step'?)");
    expect_error("defaults:\n  kill: {window: 3,\n    acton: zero}\n",
                 "t.yaml:3: unknown key 'acton' in defaults.kill (did you mean 'action'?)");
    expect_error("cylce: 1h\n", "t.yaml:1: unknown key 'cylce' in the top level (did you mean 'cycle'?)");
    expect_error("portfolios:\n  p:\n    budget: 5\n    channels:\n      s: {saturaton: 3}\n",
                 "t.yaml:5: unknown key 'saturaton' in portfolios.p.channels.s (did you mean 'saturation'?)");
    expect_error("redis: {prefx: a}\n", "t.yaml:1: unknown key 'prefx' in redis (did you mean 'prefix'?)");
    /* too far from every known key: no suggestion */
    expect_error("\n\nkafka:\n  zookeeper: x\n", "t.yaml:4: unknown key 'zookeeper' in kafka");
    expect_error("defaults: {channel: {initial: 5}}\n",
                 "t.yaml:1: defaults.channel: 'initial' is only allowed on a listed channel (under channels)");
}

Test(config, bad_types)
{
    expect_error("defaults:\n  budget: lots\n", "t.yaml:2: defaults.budget: expected a number, got 'lots'");
    expect_error("defaults:\n  budget: '100'\n",
                 "t.yaml:2: defaults.budget: expected a number, got string '100'");
    expect_error("defaults:\n  samples: 6.5\n", "t.yaml:2: defaults.samples: expected an integer, got '6.5'");
    expect_error("defaults:\n  risk: [1, 2]\n", "t.yaml:2: defaults.risk: expected a mapping, got a list");
    expect_error("defaults:\n  channel: {lab: yes}\n",
                 "t.yaml:2: defaults.channel.lab: expected true or false, got 'yes'");
    expect_error("kafka:\n  topic: {a: 1}\n", "t.yaml:2: kafka.topic: expected a non-empty string, got a mapping");
    expect_error("seed: -1\n", "t.yaml:1: seed: expected a non-negative integer, got '-1'");
    expect_error("portfolios: [a, b]\n", "t.yaml:1: portfolios: expected a mapping, got a list");
    expect_error("defaults:\n  mode: automat\n",
                 "t.yaml:2: defaults.mode: expected one of assist|collaborate|delegate|automate, got 'automat' "
                 "(did you mean 'automate'?)");
    expect_error("defaults:\n  model: gp\n", "t.yaml:2: defaults.model: expected one of poisson_sat|loglog, got 'gp'");
    expect_error("portfolios:\n  p:\n    budget: .nan\n",
                 "t.yaml:3: portfolios.p.budget: expected a number, got '.nan'");
}

Test(config, ranges)
{
    expect_error("defaults:\n  budget: 0\n", "t.yaml:2: defaults.budget must be > 0, got 0");
    expect_error("defaults:\n  discount: 1.5\n", "t.yaml:2: defaults.discount must be in (0, 1], got 1.5");
    expect_error("defaults:\n  min_change: 1\n", "t.yaml:2: defaults.min_change must be in [0, 1), got 1");
    expect_error("defaults:\n  samples: 5000\n", "t.yaml:2: defaults.samples must be in 1..4096, got 5000");
    expect_error("defaults:\n  risk: {max_prob: 0}\n", "t.yaml:2: defaults.risk.max_prob must be in (0, 1], got 0");
    expect_error("defaults:\n  kill: {overspend_ratio: 0.5}\n",
                 "t.yaml:2: defaults.kill.overspend_ratio must be 0 (off) or >= 1, got 0.5");
    expect_error("defaults:\n  channel: {saturation: 0}\n",
                 "t.yaml:2: defaults.channel.saturation must be > 0, got 0");
    expect_error("portfolios:\n  p:\n    budget: 10\n    channels:\n      s: {min: -1}\n",
                 "t.yaml:5: portfolios.p.channels.s.min must be >= 0, got -1");
    expect_error("redis:\n  stream_maxlen: 0\n", "t.yaml:2: redis.stream_maxlen must be in 1..100000000, got 0");
}

Test(config, bad_durations)
{
    expect_error("cycle: 0\n", "t.yaml:1: cycle must be > 0, got 0");
    expect_error("v: 1\ncycle: 1w\n",
                 "t.yaml:2: cycle: expected a duration (seconds, or a number with s, m, h or d), got '1w'");
    expect_error("lateness: -5\n",
                 "t.yaml:1: lateness: expected a duration (seconds, or a number with s, m, h or d), got '-5'");
    expect_error("defaults:\n  kill:\n    stale_after: soon\n",
                 "t.yaml:3: defaults.kill.stale_after: expected a duration (seconds, or a number with s, m, h "
                 "or d), got 'soon'");
    /* quoted durations are fine: they are text anyway */
    bd_config_t *c = load("cycle: '30m'\nlateness: 0\ndedup_window: 12h\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->cycle, 1800);
    cr_assert_eq(c->dedup_window, 43200);
    bd_config_free(c);
}

Test(config, version)
{
    expect_error("v: 2\n", "t.yaml:1: unsupported config version v: 2 (this budgetd reads v: 1)");
    expect_error("v: one\n", "t.yaml:1: v: expected an integer, got 'one'");
    bd_config_t *c = load("defaults: {budget: 1}\n"); /* absent v reads as 1 */
    cr_assert_not_null(c, "%s", err);
    bd_config_free(c);
}

Test(config, duplicate_keys)
{
    expect_error("v: 1\ndefaults:\n  budget: 1\n  mode: assist\n  budget: 2\n",
                 "t.yaml:5: duplicate key 'budget' in defaults (first at line 3)");
    expect_error("portfolios:\n  a: {budget: 1}\n  b: {budget: 1}\n  a: {budget: 2}\n",
                 "t.yaml:4: duplicate key 'a' in portfolios (first at line 2)");
    expect_error("portfolios:\n  a:\n    budget: 9\n    channels:\n      s: {}\n      s: {}\n      s: {}\n",
                 "t.yaml:7: duplicate key 's' in portfolios.a.channels (first at line 5)");
    cr_assert(has_line("t.yaml:6: duplicate key 's' in portfolios.a.channels (first at line 5)"), "%s", err);
}

Test(config, bad_names)
{
    expect_error("portfolios:\n  \"acme us\": {budget: 1}\n",
                 "t.yaml:2: portfolios: bad portfolio name 'acme us' (1-64 of A-Z a-z 0-9 _ . : -)");
    expect_error("portfolios:\n  a:\n    budget: 1\n    channels:\n      'x/y': {}\n",
                 "t.yaml:5: portfolios.a.channels: bad channel name 'x/y' (1-64 of A-Z a-z 0-9 _ . : -)");
    char long_name[200];
    snprintf(long_name, sizeof long_name, "portfolios:\n  %065d: {budget: 1}\n", 0);
    bd_config_t *c = load(long_name);
    cr_assert_null(c);
    cr_assert(strstr(err, "t.yaml:2: portfolios: bad portfolio name '"), "%s", err);
    snprintf(long_name, sizeof long_name, "portfolios:\n  p%063d: {budget: 1}\n", 0);
    c = load(long_name); /* exactly 64 characters is fine */
    cr_assert_not_null(c, "%s", err);
    bd_config_free(c);
}

Test(config, missing_budget)
{
    expect_error("portfolios:\n  a: {mode: assist}\n",
                 "t.yaml:2: portfolio 'a': no budget (set portfolios.a.budget or defaults.budget)");
    /* an invalid budget is reported once, where it stands */
    bd_config_t *c = load("portfolios:\n  a: {budget: -3}\n");
    cr_assert_null(c);
    cr_assert_str_eq(err, "t.yaml:2: portfolios.a.budget must be > 0, got -3");
}

Test(config, min_greater_than_max)
{
    expect_error("portfolios:\n  acme-us:\n    budget: 100\n    channels:\n      search: {min: 50,\n"
                 "               max: 40}\n",
                 "t.yaml:6: portfolio 'acme-us': channel 'search': min 50 > max 40");
    /* max inherited from defaults, min set on the channel: reported at the min */
    expect_error("defaults: {channel: {max: 10}}\nportfolios:\n  p:\n    budget: 100\n    channels:\n"
                 "      s:\n        min: 20\n",
                 "t.yaml:7: portfolio 'p': channel 's': min 20 > max 10");
    expect_error("defaults:\n  channel: {min: 5, max: 1}\n", "t.yaml:2: defaults.channel: min 5 > max 1");
    /* a portfolio may lift an inherited cap */
    bd_config_t *c = load("defaults: {channel: {max: 10}}\nportfolios:\n  p:\n    budget: 100\n"
                          "    channels: {s: {min: 20, max: .inf}}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert(isinf(c->portfolios[0].channels[0].max));
    bd_config_free(c);
}

Test(config, sum_of_mins)
{
    expect_error("portfolios:\n"
                 "  acme-us:\n"
                 "    budget: 10000\n"
                 "    channels:\n"
                 "      search: {min: 7000}\n"
                 "      social: {min: 5000}\n",
                 "t.yaml:3: portfolio 'acme-us': channel mins sum to 12000 > budget 10000");
    /* budget inherited: reported at the portfolio's channels */
    expect_error("defaults: {budget: 100}\n"
                 "portfolios:\n"
                 "  p:\n"
                 "    mode: assist\n"
                 "    channels: {a: {min: 60}, b: {min: 60}}\n",
                 "t.yaml:5: portfolio 'p': channel mins sum to 120 > budget 100");
    /* defaults.channel.min counts for every listed channel */
    expect_error("defaults: {budget: 100, channel: {min: 40}}\n"
                 "portfolios:\n"
                 "  p: {channels: {a: {}, b: {}, c: {}}}\n",
                 "t.yaml:3: portfolio 'p': channel mins sum to 120 > budget 100");
}

Test(config, initials)
{
    expect_error("portfolios:\n  p:\n    budget: 100\n    channels:\n      a: {min: 10, max: 50, initial: 60}\n",
                 "t.yaml:5: portfolio 'p': channel 'a': initial 60 outside [10, 50]");
    expect_error("portfolios:\n  p:\n    budget: 100\n    channels:\n      a: {min: 10, initial: 5}\n",
                 "t.yaml:5: portfolio 'p': channel 'a': initial 5 outside [10, inf]");
    expect_error("portfolios:\n  p:\n    budget: 100\n    channels:\n      a: {initial: 70}\n"
                 "      b: {initial: 40}\n",
                 "t.yaml:3: portfolio 'p': channel initials sum to 110 > budget 100");
    expect_error("portfolios:\n  p:\n    budget: 100\n    channels:\n      a: {initial: 70}\n"
                 "      b: {min: 40}\n",
                 "t.yaml:3: portfolio 'p': initials plus the mins of channels without initial sum to 110 > "
                 "budget 100");
}

Test(config, feasible_edge_cases)
{
    /* every channel capped below the budget: refused, the budget could not
     * be spent (it was allowed, and the split silently summed to the caps) */
    bd_config_t *c = load("portfolios:\n  p:\n    budget: 100\n    channels:\n"
                          "      a: {max: 20}\n      b: {max: 30}\n");
    cr_assert_null(c);
    cr_assert(strstr(err, "t.yaml:3: portfolio 'p': channel maxes sum to 50 < budget 100"), "%s", err);
    /* mins exactly at the budget, initials equal to bounds */
    c = load("portfolios:\n  p:\n    budget: 100\n    channels:\n"
             "      a: {min: 60, max: 60, initial: 60}\n      b: {min: 40}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->portfolios[0].channels[0].initial, 60);
    bd_config_free(c);
    /* empty maps written as null */
    c = load("kafka:\nportfolios:\n  p:\n    budget: 1\n    channels:\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->portfolios[0].n_channels, 0);
    bd_config_free(c);
}

Test(config, yaml_syntax_error_line)
{
    expect_error("v: 1\nportfolios:\n  a: {budget: 1\n  b: 2\n",
                 "t.yaml:4: YAML syntax error: did not find expected ',' or '}' "
                 "(while parsing a flow mapping started at line 3)");
    bd_config_t *c = load("v: 1\ncycle: 1h\n  lateness: 0\n");
    cr_assert_null(c);
    cr_assert(strncmp(err, "t.yaml:3: YAML syntax error: ", 29) == 0, "%s", err);
    cr_assert_eq(count_lines(), 1);
    expect_error("", "t.yaml:1: empty config (at least `portfolios` or `defaults.budget` is needed)");
    expect_error("v: 1\n---\nv: 1\n", "t.yaml:3: only one YAML document is allowed");
}

Test(config, collects_all_errors_in_line_order)
{
    bd_config_t *c = load("v: 2\n"
                          "portfolios:\n"
                          "  p:\n"
                          "    budget: 10\n"
                          "    channels: {a: {min: 20}}\n"
                          "defaults:\n"
                          "  maxstep: 1\n"
                          "  mode: never\n"
                          "cycle: 0\n");
    cr_assert_null(c);
    const char *want =
        "t.yaml:1: unsupported config version v: 2 (this budgetd reads v: 1)\n"
        "t.yaml:4: portfolio 'p': channel mins sum to 20 > budget 10\n"
        "t.yaml:7: unknown key 'maxstep' in defaults (did you mean 'max_step'?)\n"
        "t.yaml:8: defaults.mode: expected one of assist|collaborate|delegate|automate, got 'never'\n"
        "t.yaml:9: cycle must be > 0, got 0";
    cr_assert_str_eq(err, want);
}

Test(config, small_errbuf_keeps_whole_lines)
{
    const char *y = "a: 1\nb: 2\nc: 3\n";
    char small[80];
    bd_config_t *c = NULL;
    bd_err_t rc = bd_config_load_string(y, strlen(y), "t.yaml", &c, small, sizeof small);
    cr_assert_eq(rc, BD_ERR_CONFIG);
    /* each line is 42 bytes: the second does not fit whole, so it is left out */
    cr_assert_str_eq(small, "t.yaml:1: unknown key 'a' in the top level");
    /* a buffer too small for even one line still gets its beginning */
    char tiny[12];
    rc = bd_config_load_string(y, strlen(y), "t.yaml", &c, tiny, sizeof tiny);
    cr_assert_eq(rc, BD_ERR_CONFIG);
    cr_assert_str_eq(tiny, "t.yaml:1: u");
    /* no buffer at all: still fails */
    rc = bd_config_load_string(y, strlen(y), "t.yaml", &c, NULL, 0);
    cr_assert_eq(rc, BD_ERR_CONFIG);
    cr_assert_null(c);
}

/* ---- example configs (configs/) ------------------------------------------ */

/* Every configs/ *.yaml loads clean; each mode example runs its mode. */
Test(configs, all_examples_load)
{
    glob_t g;
    cr_assert_eq(glob("configs/*.yaml", 0, NULL, &g), 0, "no configs/*.yaml (run from the repo root)");
    int modes_seen = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        bd_config_t *c = NULL;
        cr_assert_eq(bd_config_load(g.gl_pathv[i], &c, err, sizeof(err)), BD_OK, "%s: %s", g.gl_pathv[i], err);
        const char *base = strrchr(g.gl_pathv[i], '/') + 1;
        if (!strncmp(base, "mode-", 5)) {
            char want[32];
            snprintf(want, sizeof(want), "%.*s", (int)(strlen(base) - 10), base + 5);
            cr_assert_str_eq(bd_mode_name(c->defaults.mode), want, "%s: defaults.mode", base);
            cr_assert_gt(c->n_portfolios, 0);
            for (size_t k = 0; k < c->n_portfolios; k++)
                cr_assert_str_eq(bd_mode_name(c->portfolios[k].p.mode), want, "%s: portfolio %s", base,
                                 c->portfolios[k].name);
            modes_seen++;
        }
        bd_config_free(c);
    }
    globfree(&g);
    cr_assert_eq(modes_seen, 4, "configs/mode-{assist,collaborate,delegate,automate}.yaml");
}

/* Regression r21_02: a duration had no upper bound, so `cycle:
 * 99999999999999d` passed `check` (8.6e18 s) and the engine's cycle
 * arithmetic ((n+1) x cycle, ts + max_ahead) overflowed int64. Every
 * duration key now stops at 366d, with the key's line. */
Test(config, r21_02_durations_past_366d_are_refused)
{
    expect_error("cycle: 99999999999999d\n", "t.yaml:1: cycle must be at most 366d, got 99999999999999d");
    expect_error("defaults:\n  budget: 1\n  kill: {stale_after: 367d}\n",
                 "t.yaml:3: defaults.kill.stale_after must be at most 366d, got 367d");
    expect_error("dedup_window: 31622401\n", "t.yaml:1: dedup_window must be at most 366d, got 31622401");
    bd_config_t *c = load("cycle: 366d\nmax_ahead: 366d\nportfolios:\n  a: {budget: 100}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->cycle, 366LL * 86400);
    bd_config_free(c);
}
