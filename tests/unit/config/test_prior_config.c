/* test_prior_config.c: the v2 channel keys `prior` and `lift`, and the
 * checks they make possible (a strength needs a centre; a CVaR floor above
 * the best mean ROAS the listed channels' priors allow). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "budgetd/config.h"
#include "fixtures.h"

static char err[8192];

static bd_config_t *load(const char *yaml) { return bd_test_config(yaml, err, sizeof err); }

static void expect_error(const char *yaml, const char *line)
{
    bd_config_t *c = load(yaml);
    cr_assert_null(c, "accepted:\n%s", yaml);
    cr_assert(bd_test_has_line(err, line), "want\n  %s\ngot\n%s", line, err);
}

Test(prior_config, prior_and_lift_are_read)
{
    bd_config_t *c = load("defaults:\n"
                          "  budget: 100\n"
                          "  channel: {prior: {strength: 6, roas: 2}}\n"
                          "portfolios:\n"
                          "  p:\n"
                          "    budget: 1000\n"
                          "    channels:\n"
                          "      s:\n"
                          "        prior: {roas: 3.5, saturation: 800, strength: 24}\n"
                          "        lift:\n"
                          "          - {spend: 5000, conversions: 120, se: 30, cycles: 10}\n"
                          "          - {spend: 900, conversions: 30, se: 12, cycles: 1}\n"
                          "      t: {prior: {roas: 1.5}}\n");
    cr_assert_not_null(c, "%s", err);
    const bd_portfolio_cfg_t *p = bd_config_portfolio(c, "p");
    const bd_channel_cfg_t *s = bd_config_channel(p, &p->p, "s"), *t = bd_config_channel(p, &p->p, "t");
    cr_assert_eq(s->prior.roas, 3.5);
    cr_assert_eq(s->prior.saturation, 800);
    cr_assert_eq(s->prior.strength, 24);
    cr_assert_eq(s->n_lift, 2);
    cr_assert_eq(s->lift[0].spend, 5000);
    cr_assert_eq(s->lift[0].conversions, 120);
    cr_assert_eq(s->lift[0].se, 30);
    cr_assert_eq(s->lift[0].cycles, 10);
    cr_assert_eq(s->lift[1].cycles, 1);
    /* merged key by key over defaults.channel's prior */
    cr_assert_eq(t->prior.roas, 1.5);
    cr_assert_eq(t->prior.strength, 6);
    cr_assert_eq(t->n_lift, 0);
    /* an unlisted channel takes defaults.channel's */
    const bd_channel_cfg_t *u = bd_config_channel(p, &p->p, "other");
    cr_assert_eq(u->prior.roas, 2);
    bd_config_free(c);
}

Test(prior_config, bad_priors_and_lifts_are_refused)
{
    expect_error("defaults:\n  budget: 1\n  channel: {lift: []}\n",
                 "t.yaml:3: defaults.channel: 'lift' is only allowed on a listed channel (under channels)");
    expect_error("portfolios:\n  p:\n    budget: 9\n    channels:\n      s:\n        lift: {spend: 1}\n",
                 "t.yaml:6: portfolios.p.channels.s.lift: expected a list of {spend, conversions, se, cycles}");
    expect_error("portfolios:\n  p:\n    budget: 9\n    channels:\n      s:\n        lift:\n"
                 "          - {spend: 1, conversions: 2, se: 1}\n",
                 "t.yaml:7: portfolios.p.channels.s.lift[0]: a lift test needs spend, conversions, se and cycles");
    expect_error("portfolios:\n  p:\n    budget: 9\n    channels:\n      s:\n        lift:\n"
                 "          - {spend: 1, conversions: 2, se: 0, cycles: 3}\n",
                 "t.yaml:7: portfolios.p.channels.s.lift[0].se must be > 0, got 0");
    expect_error("portfolios:\n  p:\n    budget: 9\n    channels:\n      s:\n        lift:\n"
                 "          - {spend: 1, conversions: 2, se: 1, cycles: 0.5}\n",
                 "t.yaml:7: portfolios.p.channels.s.lift[0].cycles must be >= 1, got 0.5");
    char y[4096];
    strcpy(y, "portfolios:\n  p:\n    budget: 9\n    channels:\n      s:\n        lift:\n");
    for (int i = 0; i < 9; i++) strcat(y, "          - {spend: 1, conversions: 2, se: 1, cycles: 3}\n");
    expect_error(y, "t.yaml:15: portfolios.p.channels.s.lift: at most 8 lift tests per channel");
    expect_error("portfolios:\n  p:\n    budget: 9\n    channels:\n      s: {prior: {strength: 5}}\n",
                 "t.yaml:5: portfolio 'p': channel 's': prior.strength needs prior.roas (the centre "
                 "the strength is worth)");
    expect_error("portfolios:\n  p:\n    budget: 9\n    channels:\n      s: {prior: {roass: 5}}\n",
                 "t.yaml:5: unknown key 'roass' in portfolios.p.channels.s.prior (did you mean 'roas'?)");
}

/* CVaR <= mean ROAS <= the best mean ROAS the priors allow: a floor above
 * it is refused at the floor's line; with a channel without prior nothing
 * is known and nothing is refused. */
Test(prior_config, cvar_floor_no_split_can_meet)
{
    /* one channel a = 2, k = 1000 at 1000: ROAS 2 (1 - 1/e) = 1.2642 */
    expect_error("portfolios:\n  p:\n    budget: 1000\n    risk:\n      cvar: {roas_floor: 1.3}\n"
                 "    channels:\n      s: {prior: {roas: 2, saturation: 1000}}\n",
                 "t.yaml:5: portfolio 'p': risk.cvar.roas_floor 1.3 is above the best mean ROAS the "
                 "channels' priors allow (1.2642 at a total of 1000.00): no split can meet it");
    bd_config_t *c = load("portfolios:\n  p:\n    budget: 1000\n    risk:\n      cvar: {roas_floor: 1.25}\n"
                          "    channels:\n      s: {prior: {roas: 2, saturation: 1000}}\n");
    cr_assert_not_null(c, "%s", err);
    bd_config_free(c);
    c = load("portfolios:\n  p:\n    budget: 1000\n    risk:\n      cvar: {roas_floor: 1.3}\n"
             "    channels:\n      s: {prior: {roas: 2, saturation: 1000}}\n      t: {}\n");
    cr_assert_not_null(c, "%s", err);
    bd_config_free(c);
    /* on a range the smallest total counts: 500 */
    c = load("portfolios:\n  p:\n    budget: {min: 500, max: 5000}\n    goal: {target_roas: 1}\n"
             "    risk:\n      cvar: {roas_floor: 1.5}\n"
             "    channels:\n      s: {prior: {roas: 2, saturation: 1000}}\n");
    cr_assert_not_null(c, "%s", err);
    bd_config_free(c);
}
