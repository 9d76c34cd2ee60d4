/* test_config_set.c: command-line overrides of config values
 * (bd_config_load_string_set, engine/config/set.c): a path replaces an
 * existing value or creates the maps it needs, names holding dots are
 * matched against the file's keys, and every refusal is the loader's own
 * message starting with the override it is about. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/config.h"
#include "fixtures.h"

static char err[8192];

static const char *BASE = "v: 1\n"
                          "defaults:\n"
                          "  budget: 100\n"
                          "  max_step: 0.25\n"
                          "  risk: {roas_floor: 0.8, max_prob: 0.3}\n"
                          "portfolios:\n"
                          "  acme.us:\n"
                          "    budget: 1000\n"
                          "    channels:\n"
                          "      search: {min: 100, max: 600}\n"
                          "      social: {}\n";

/* BASE (or yaml) with the n overrides; NULL when refused (err says why). */
static bd_config_t *load_set(const char *yaml, const bd_config_set_t *s, size_t n)
{
    bd_config_t *c = NULL;
    bd_err_t rc = bd_config_load_string_set(yaml, strlen(yaml), "t.yaml", s, n, &c, err, sizeof err);
    cr_assert(rc == BD_OK || rc == BD_ERR_CONFIG, "unexpected code %d", rc);
    cr_assert_eq(rc == BD_OK, c != NULL);
    return c;
}

Test(config_set, replaces_existing_values_in_block_and_flow_maps)
{
    bd_config_set_t s[] = {{"defaults.max_step", "0.1"}, {"defaults.risk.max_prob", "0.05"}};
    bd_config_t *c = load_set(BASE, s, 2);
    cr_assert_not_null(c, "%s", err);
    cr_assert_float_eq(c->defaults.max_step, 0.1, 1e-12);
    cr_assert_float_eq(c->defaults.risk_max_prob, 0.05, 1e-12);
    cr_assert_float_eq(c->defaults.risk_roas_floor, 0.8, 1e-12, "the sibling stays");
    /* portfolios copy the defaults after the override */
    cr_assert_float_eq(c->portfolios[0].p.max_step, 0.1, 1e-12);
    bd_config_free(c);
}

Test(config_set, creates_missing_maps_and_keys)
{
    bd_config_set_t s[] = {{"defaults.kill.overspend_ratio", "1.5"},
                           {"defaults.seasonality.daily", "off"},
                           {"seed", "7"}};
    bd_config_t *c = load_set(BASE, s, 3);
    cr_assert_not_null(c, "%s", err);
    cr_assert_float_eq(c->defaults.kill.overspend_ratio, 1.5, 1e-12);
    cr_assert_eq(c->defaults.season.daily, BD_AUTO_OFF);
    cr_assert_eq(c->seed, 7u);
    bd_config_free(c);
    /* a file without defaults at all */
    bd_config_set_t b[] = {{"defaults.budget", "50"}};
    c = load_set("v: 1\n", b, 1);
    cr_assert_not_null(c, "%s", err);
    cr_assert(c->has_default_budget);
    cr_assert_float_eq(c->defaults.budget, 50, 1e-12);
    bd_config_free(c);
}

/* A portfolio name holding a dot is matched against the file's keys; a
 * new portfolio is created with the key up to the next dot. */
Test(config_set, names_with_dots_and_new_portfolios)
{
    bd_config_set_t s[] = {{"portfolios.acme.us.budget", "2000"},
                           {"portfolios.acme.us.channels.search.max", ".inf"},
                           {"portfolios.globex.budget", "300"}};
    bd_config_t *c = load_set(BASE, s, 3);
    cr_assert_not_null(c, "%s", err);
    const bd_portfolio_cfg_t *p = bd_config_portfolio(c, "acme.us");
    cr_assert_not_null(p);
    cr_assert_float_eq(p->p.budget, 2000, 1e-12);
    cr_assert(isinf(p->channels[0].max));
    cr_assert_float_eq(p->channels[0].min, 100, 1e-12, "the sibling stays");
    const bd_portfolio_cfg_t *g = bd_config_portfolio(c, "globex");
    cr_assert_not_null(g);
    cr_assert_float_eq(g->p.budget, 300, 1e-12);
    bd_config_free(c);
}

/* A bad value is refused by the key's own rule, the message names the
 * override instead of a line of the file. */
Test(config_set, bad_values_name_the_override)
{
    bd_config_set_t s[] = {{"defaults.risk.max_prob", "2"}};
    cr_assert_null(load_set(BASE, s, 1));
    cr_assert(bd_test_has_line(err, "--set defaults.risk.max_prob=2: defaults.risk.max_prob must be in (0, 1], got 2"),
              "%s", err);
    bd_config_set_t m[] = {{"defaults.mode", "autopilot"}};
    cr_assert_null(load_set(BASE, m, 1));
    cr_assert(!strncmp(err, "--set defaults.mode=autopilot: defaults.mode", 44), "%s", err);
    /* an override that makes the portfolio infeasible: reported at the
     * override that set the budget */
    bd_config_set_t b[] = {{"portfolios.acme.us.budget", "50"}};
    cr_assert_null(load_set(BASE, b, 1));
    cr_assert(!strncmp(err, "--set portfolios.acme.us.budget=50: portfolio 'acme.us': channel mins", 67),
              "%s", err);
}

Test(config_set, bad_paths_name_the_override)
{
    bd_config_set_t s[] = {{"defaults.max_stpe", "0.1"}};
    cr_assert_null(load_set(BASE, s, 1));
    cr_assert(strstr(err, "--set defaults.max_stpe=0.1: ") == err, "%s", err);
    cr_assert(strstr(err, "'max_step'"), "suggests the closest key: %s", err);
    bd_config_set_t v[] = {{"defaults.max_step.x", "1"}};
    cr_assert_null(load_set(BASE, v, 1));
    cr_assert(bd_test_has_line(err, "--set defaults.max_step.x=1: defaults.max_step is not a map "
                                    "(it holds a value, cannot set defaults.max_step.x)"),
              "%s", err);
    bd_config_set_t e[] = {{"defaults..max_step", "1"}};
    cr_assert_null(load_set(BASE, e, 1));
    cr_assert(strstr(err, "--set defaults..max_step=1: bad path") == err, "%s", err);
    bd_config_set_t d[] = {{"defaults.", "1"}};
    cr_assert_null(load_set(BASE, d, 1));
    cr_assert(strstr(err, "ends with a dot"), "%s", err);
    bd_config_set_t t[] = {{"defaults.risk", "0.1"}};
    cr_assert_null(load_set(BASE, t, 1));
    cr_assert(strstr(err, "--set defaults.risk=0.1: defaults.risk: expected a mapping") == err, "%s", err);
}

/* Errors of the file come first, with their lines; the override's after. */
Test(config_set, file_errors_keep_their_lines)
{
    bd_config_set_t s[] = {{"defaults.max_step", "-1"}};
    cr_assert_null(load_set("v: 1\ndefaults:\n  budget: 10\n  explore_share: 2\n", s, 1));
    cr_assert(!strncmp(err, "t.yaml:4: ", 10), "%s", err);
    cr_assert(strstr(err, "\n--set defaults.max_step=-1: "), "%s", err);
}

/* No override: the same config as bd_config_load_string. */
Test(config_set, no_override_is_the_plain_load)
{
    bd_config_t *c = load_set(BASE, NULL, 0);
    cr_assert_not_null(c, "%s", err);
    cr_assert_float_eq(c->defaults.max_step, 0.25, 1e-12);
    bd_config_free(c);
}
