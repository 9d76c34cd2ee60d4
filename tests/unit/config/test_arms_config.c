/* test_arms_config.c: the v2 `arms` key of a listed channel: what is read
 * (each arm a channel config named "C:A"), and every arm the config cannot
 * split a channel's amount among refused at its file:line. */
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

#define HEAD "defaults:\n  channel: {saturation: 700}\nportfolios:\n  p:\n    budget: 1000\n    channels:\n"

Test(arms_config, arms_are_read)
{
    bd_config_t *c = load(HEAD "      search:\n"
                               "        min: 100\n"
                               "        arms:\n"
                               "          brand: {max: 400, prior: {roas: 3}}\n"
                               "          generic: {min: 20, pin: 60, initial: 60}\n"
                               "      social: {}\n");
    cr_assert_not_null(c, "%s", err);
    const bd_portfolio_cfg_t *p = bd_config_portfolio(c, "p");
    const bd_channel_cfg_t *s = bd_config_channel(p, &p->p, "search");
    cr_assert_eq(s->n_arms, 2);
    cr_assert_str_eq(s->arms[0].name, "search:brand");
    cr_assert_eq(s->arms[0].arm_of, 6);
    cr_assert_eq(s->arms[0].max, 400);
    cr_assert_eq(s->arms[0].saturation, 700, "arms start from defaults.channel");
    cr_assert_eq(s->arms[0].prior.roas, 3);
    cr_assert(s->arms[1].has_pin && s->arms[1].pin == 60 && s->arms[1].has_initial);
    /* the arm's config by its full name */
    cr_assert_eq(bd_config_channel(p, &p->p, "search:generic"), &s->arms[1]);
    cr_assert_eq(bd_config_channel(p, &p->p, "social")->n_arms, 0);
    bd_config_free(c);
}

Test(arms_config, arms_that_cannot_split_are_refused)
{
    expect_error(HEAD "      search:\n        min: 100\n        arms:\n          a: {min: 80}\n          b: {min: 40}\n",
                 "t.yaml:7: portfolio 'p': channel 'search': its arms' mins sum to 120 > its min 100 (an "
                 "amount it may get could not be split)");
    expect_error(HEAD "      search:\n        max: 900\n        arms:\n          a: {max: 400}\n          b: {max: 400}\n"
                      "      social: {}\n",
                 "t.yaml:7: portfolio 'p': channel 'search': its arms' maxes sum to 800 < its max 900 (an "
                 "amount it may get could not be spent: lower its max or raise an arm's)");
    expect_error(HEAD "      search:\n        arms:\n          a: {pin: 10}\n",
                 "t.yaml:7: portfolio 'p': channel 'search': infeasible arm pins at its min 0: pins 10.00 "
                 "plus the other channels' mins 0.00 exceed the total 0.00");
    expect_error(HEAD "      search:\n        arms:\n          a: {lab: true}\n",
                 "t.yaml:9: portfolios.p.channels.search.arms.a: an arm cannot be a lab channel");
    expect_error(HEAD "      search:\n        arms:\n          a: {arms: {x: {}}}\n",
                 "t.yaml:9: portfolios.p.channels.search.arms.a: 'arms' is only allowed on a listed "
                 "channel (under channels; arms have no arms)");
    expect_error("defaults:\n  budget: 9\n  channel: {arms: {a: {}}}\n",
                 "t.yaml:3: defaults.channel: 'arms' is only allowed on a listed channel (under "
                 "channels; arms have no arms)");
    expect_error(HEAD "      search:\n        arms:\n          a: {}\n      search:a: {}\n",
                 "t.yaml:10: portfolio 'p': channel 'search:a' is also the name of an arm of 'search'");
    expect_error(HEAD "      search:\n        arms:\n          'b c': {}\n",
                 "t.yaml:9: portfolios.p.channels.search.arms: bad arm name 'b c' (1-64 of A-Z a-z 0-9 _ "
                 ". : -, and 'search:NAME' at most 64)");
    expect_error(HEAD "      search:\n        arms:\n          a: {min: 5, max: 4}\n",
                 "t.yaml:9: portfolios.p.channels.search.arms.a: min 5 > max 4");
    expect_error("portfolios:\n  p:\n    budget: 9\n    max_channels: 2\n    channels:\n"
                 "      s:\n        arms: {a: {}, b: {}}\n",
                 "t.yaml:5: portfolio 'p': 3 channels listed, more than max_channels 2");
}
