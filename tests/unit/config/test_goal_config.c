/* test_goal_config.c: the v2 goal keys (`budget: {min, max}`, `goal`,
 * `risk.cvar`): what is read, how it is inherited, and every inconsistency
 * `check` refuses, with its file:line. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include "budgetd/config.h"
#include "fixtures.h"

static char err[8192];

static bd_config_t *load(const char *yaml) { return bd_test_config(yaml, err, sizeof err); }

/* yaml is refused and err holds line (among others). */
static void expect_error(const char *yaml, const char *line)
{
    bd_config_t *c = load(yaml);
    cr_assert_null(c, "accepted:\n%s", yaml);
    cr_assert(bd_test_has_line(err, line), "want\n  %s\ngot\n%s", line, err);
}

Test(goal_config, range_and_target_are_read)
{
    bd_config_t *c = load("defaults:\n"
                          "  budget: 100\n"
                          "portfolios:\n"
                          "  a:\n"
                          "    budget: {min: 1000, max: 8000}\n"
                          "    goal: {target_roas: 3}\n"
                          "    risk: {cvar: {alpha: 0.05, roas_floor: 1.2}}\n"
                          "  b:\n"
                          "    objective: conversions\n"
                          "    budget: {min: 0, max: 50}\n"
                          "    goal: {target_cpa: 12.5}\n"
                          "  c: {goal: budget}\n");
    cr_assert_not_null(c, "%s", err);
    const bd_portfolio_cfg_t *a = bd_config_portfolio(c, "a"), *b = bd_config_portfolio(c, "b"),
                             *cc = bd_config_portfolio(c, "c");
    cr_assert(a->p.budget_range.range);
    cr_assert_eq(a->p.budget, 8000);
    cr_assert_eq(a->p.budget_range.min, 1000);
    cr_assert_eq(a->p.goal.kind, BD_GOAL_TARGET_ROAS);
    cr_assert_eq(a->p.goal.target, 3);
    cr_assert_eq(a->p.risk_cvar_alpha, 0.05);
    cr_assert_eq(a->p.risk_cvar_floor, 1.2);
    cr_assert_eq(a->p.risk_max_prob, 0.2); /* merged key by key */
    cr_assert_eq(b->p.goal.kind, BD_GOAL_TARGET_CPA);
    cr_assert_eq(b->p.goal.target, 12.5);
    cr_assert_eq(b->p.budget_range.min, 0);
    cr_assert_float_eq(bd_goal_marginal_target(&b->p), 0.08, 1e-15);
    cr_assert_eq(cc->p.goal.kind, BD_GOAL_BUDGET);
    cr_assert_not(cc->p.budget_range.range);
    cr_assert_eq(cc->p.budget, 100);
    /* built in: goal budget, CVaR off */
    cr_assert_eq(c->defaults.goal.kind, BD_GOAL_BUDGET);
    cr_assert_eq(c->defaults.risk_cvar_floor, 0);
    cr_assert_eq(c->defaults.risk_cvar_alpha, 0.1);
    cr_assert(isnan(bd_goal_marginal_target(&c->defaults)));
    bd_config_free(c);
}

/* A portfolio's number budget replaces an inherited range, and with it the
 * inherited target must go too. */
Test(goal_config, inheritance)
{
    bd_config_t *c = load("defaults:\n"
                          "  budget: {min: 10, max: 90}\n"
                          "  goal: {target_roas: 2}\n"
                          "portfolios:\n"
                          "  a: {mode: assist}\n"
                          "  b: {budget: 50, goal: budget}\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert(bd_config_portfolio(c, "a")->p.budget_range.range);
    cr_assert_eq(bd_config_portfolio(c, "a")->p.goal.kind, BD_GOAL_TARGET_ROAS);
    const bd_portfolio_cfg_t *b = bd_config_portfolio(c, "b");
    cr_assert_not(b->p.budget_range.range);
    cr_assert_eq(b->p.budget, 50);
    cr_assert_eq(b->p.goal.kind, BD_GOAL_BUDGET);
    bd_config_free(c);
    expect_error("defaults:\n"
                 "  budget: {min: 10, max: 90}\n"
                 "  goal: {target_roas: 2}\n"
                 "portfolios:\n"
                 "  b: {budget: 50}\n",
                 "t.yaml:3: portfolio 'b': goal target_roas needs a budget range (budget: {min: X, "
                 "max: Y}), not the fixed budget 50");
}

Test(goal_config, inconsistent_goals_are_refused)
{
    expect_error("portfolios:\n  p:\n    budget: 500\n    goal: {target_roas: 2}\n",
                 "t.yaml:4: portfolio 'p': goal target_roas needs a budget range (budget: {min: X, "
                 "max: Y}), not the fixed budget 500");
    expect_error("portfolios:\n  p:\n    budget: {min: 10, max: 20}\n",
                 "t.yaml:3: portfolio 'p': a budget range {min, max} needs a target goal (goal: "
                 "{target_roas: R} or {target_cpa: C})");
    expect_error("portfolios:\n  p:\n    budget: {min: 30, max: 20}\n    goal: {target_roas: 2}\n",
                 "t.yaml:3: portfolios.p.budget: min 30 > max 20");
    expect_error("portfolios:\n  p:\n    budget: {max: 20}\n    goal: {target_roas: 2}\n",
                 "t.yaml:3: portfolios.p.budget: a budget range needs both min and max");
    expect_error("portfolios:\n  p:\n    budget: {min: 1, max: 20}\n    goal: {target_cpa: 2}\n",
                 "t.yaml:4: portfolio 'p': goal target_cpa needs objective: conversions (a CPA "
                 "counts conversions)");
    expect_error("portfolios:\n  p:\n    budget: {min: 1, max: 20}\n"
                 "    goal: {target_cpa: 2, target_roas: 1}\n",
                 "t.yaml:4: portfolios.p.goal: give exactly one of target_roas, target_cpa");
    expect_error("portfolios:\n  p:\n    budget: 1\n    goal: most\n",
                 "t.yaml:4: portfolios.p.goal: expected one of budget, got 'most'");
    expect_error("portfolios:\n  p:\n    budget: 1\n    goal: [budget]\n",
                 "t.yaml:4: portfolios.p.goal: expected budget, {target_roas: R} or {target_cpa: C}");
    expect_error("portfolios:\n  p:\n    budget: {min: 1, max: 0}\n    goal: {target_roas: 1}\n",
                 "t.yaml:3: portfolios.p.budget.max must be > 0, got 0");
    expect_error("portfolios:\n  p:\n    budget: {min: 1, max: 2e12}\n    goal: {target_roas: 1}\n",
                 "t.yaml:3: portfolios.p.budget.max must be at most 1e12 (the limit of money "
                 "amounts per cycle), got 2e12");
    expect_error("portfolios:\n  p:\n    budget: {min: 1, max: 9, maxx: 3}\n    goal: {target_roas: 1}\n",
                 "t.yaml:3: unknown key 'maxx' in portfolios.p.budget (did you mean 'max'?)");
    expect_error("portfolios:\n  p:\n    budget: {min: 1, max: 9}\n    goal: {target_roas: 0}\n",
                 "t.yaml:4: portfolios.p.goal.target_roas must be > 0, got 0");
    expect_error("defaults:\n  budget: {min: 1, max: 9}\n",
                 "t.yaml:2: defaults: a budget range {min, max} needs a target goal (goal: "
                 "{target_roas: R} or {target_cpa: C})");
}

/* The channels must be able to take the range: mins within its max, maxes
 * reaching its min; pins by the allocator's rule on the range. */
Test(goal_config, channel_bounds_against_the_range)
{
    expect_error("portfolios:\n  p:\n    budget: {min: 100, max: 200}\n    goal: {target_roas: 2}\n"
                 "    channels:\n      a: {min: 150}\n      b: {min: 60}\n",
                 "t.yaml:3: portfolio 'p': channel mins sum to 210 > budget max 200");
    expect_error("portfolios:\n  p:\n    budget: {min: 100, max: 200}\n    goal: {target_roas: 2}\n"
                 "    channels:\n      a: {max: 40}\n      b: {max: 50}\n",
                 "t.yaml:3: portfolio 'p': channel maxes sum to 90 < budget min 100 (at most 90 "
                 "would be spent each cycle: raise a max or lower the budget)");
    /* maxes between min and max: the range's top is not reachable, fine */
    bd_config_t *c = load("portfolios:\n  p:\n    budget: {min: 100, max: 200}\n"
                          "    goal: {target_roas: 2}\n"
                          "    channels:\n      a: {max: 60}\n      b: {max: 50}\n");
    cr_assert_not_null(c, "%s", err);
    bd_config_free(c);
    expect_error("portfolios:\n  p:\n    budget: {min: 100, max: 200}\n    goal: {target_roas: 2}\n"
                 "    channels:\n      a: {pin: 20}\n      b: {max: 50}\n",
                 "t.yaml:6: portfolio 'p': infeasible pins: pins 20.00 plus the other channels' "
                 "caps 50.00 fall short of the budget min 100.00");
}
