/* goal.c: the v2 goal keys of a policy (docs/CONTRACT.md §11): `budget` as
 * a number (v1) or a range {min, max}, `goal: budget | {target_roas: R} |
 * {target_cpa: C}`, `risk.cvar`, and the check that a policy's goal and
 * budget agree. The allocator's side is alloc.h "Goals". */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "config_int.h"

const char *bd_goal_name(bd_goal_kind_t g)
{
    switch (g) {
    case BD_GOAL_BUDGET: return "budget";
    case BD_GOAL_TARGET_ROAS: return "target_roas";
    case BD_GOAL_TARGET_CPA: return "target_cpa";
    }
    return "?";
}

double bd_goal_marginal_target(const bd_policy_t *pol)
{
    switch (pol->goal.kind) {
    case BD_GOAL_TARGET_ROAS: return pol->goal.target;
    case BD_GOAL_TARGET_CPA: return pol->goal.target > 0 ? 1.0 / pol->goal.target : NAN;
    case BD_GOAL_BUDGET: break;
    }
    return NAN;
}

/* A budget range or a goal map as read, with which keys were given. */
typedef struct {
    double a, b;
    bool has_a, has_b;
} pair_t;

#define PR(f) .off = offsetof(pair_t, f), .size = sizeof(((pair_t *)0)->f)

static void note_a(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    (void)pr;
    (void)user;
    if (ok) ((pair_t *)base)->has_a = true;
}

static void note_b(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    (void)pr;
    (void)user;
    if (ok) ((pair_t *)base)->has_b = true;
}

/* budget: {min, max}: min may be 0 (spend nothing when nothing earns the
 * target), max is a positive money amount. */
static const bd_cfg_key_t RANGE[] = {
    {"min", BD_KEY_NUM, PR(a), .range = BD_YAML_R_GE0, .check = bd_cfg_check_money, .note = note_a},
    {"max", BD_KEY_NUM, PR(b), .range = BD_YAML_R_GT0, .check = bd_cfg_check_money, .note = note_b},
};
static const bd_cfg_section_t RANGE_KEYS = {"budget", RANGE, sizeof RANGE / sizeof *RANGE, false};

static const bd_cfg_key_t GOAL[] = {
    {"target_roas", BD_KEY_NUM, PR(a), .range = BD_YAML_R_GT0, .note = note_a},
    {"target_cpa", BD_KEY_NUM, PR(b), .range = BD_YAML_R_GT0, .check = bd_cfg_check_money,
     .note = note_b},
};
static const bd_cfg_section_t GOAL_KEYS = {"goal", GOAL, sizeof GOAL / sizeof *GOAL, false};

/* Where risk.cvar.roas_floor was written (the prior check reports there). */
static void note_cvar_line(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    (void)ok;
    (void)user;
    ((bd_policy_t *)base)->risk_cvar_line = bd_yaml_line(pr->key);
}

/* risk.cvar (v2): the mean portfolio ROAS of the worst alpha share of the
 * posterior draws is at least roas_floor; roas_floor 0 (built in) is off. */
#define POL(f) .off = offsetof(bd_policy_t, f), .size = sizeof(((bd_policy_t *)0)->f)
static const bd_cfg_key_t CVAR[] = {
    {"alpha", BD_KEY_NUM, POL(risk_cvar_alpha), .range = BD_YAML_R_OC01, .dflt = 0.1},
    {"roas_floor", BD_KEY_NUM, POL(risk_cvar_floor), .range = BD_YAML_R_GE0, .dflt = 0,
     .note = note_cvar_line},
};
const bd_cfg_section_t bd_cfg_cvar_keys = {"cvar", CVAR, sizeof CVAR / sizeof *CVAR, false};

/* The map form of `budget`: a range {min: X, max: Y} (v2: the goal picks
 * the total in it; `budget` holds the max, which scales what v1 scales by
 * the budget). The number form is the row's own (policy.c). */
void bd_cfg_apply_budget(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what,
                         void *base, void *user)
{
    (void)user;
    bd_policy_t *p = base;
    int line = bd_yaml_line(pr->key);
    if (pr->val->type != YAML_MAPPING_NODE) {
        bd_yaml_err(cx, bd_yaml_line(pr->val), "%s: expected a number or {min: X, max: Y}", what);
        return;
    }
    pair_t r = {0, 0, false, false};
    bd_cfg_walk(cx, pr->val, what, &RANGE_KEYS, &r, 0, NULL);
    if (!r.has_a || !r.has_b) {
        bd_yaml_err(cx, line, "%s: a budget range needs both min and max", what);
    } else if (r.a > r.b) {
        bd_yaml_err(cx, line, "%s: min %.15g > max %.15g", what, r.a, r.b);
    } else {
        p->budget = r.b;
        p->budget_range.range = true;
        p->budget_range.min = r.a;
        p->budget_range.line = line;
    }
}

/* `budget: NUMBER` read (ok): a fixed budget, whatever was inherited. */
void bd_cfg_note_budget_scalar(const bd_yaml_pair_t *pr, bool ok, void *base)
{
    if (!ok || pr->val->type != YAML_SCALAR_NODE) return;
    bd_policy_t *p = base;
    p->budget_range.range = false;
    p->budget_range.min = 0;
    p->budget_range.line = bd_yaml_line(pr->key);
}

/* `goal` seen (either form): its line, and the key for the caller. */
void bd_cfg_note_goal(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    (void)ok;
    bd_cfg_found_t *found = user;
    if (found) found->goal_key = pr->key;
    ((bd_policy_t *)base)->goal.line = bd_yaml_line(pr->key);
}

/* The map form of `goal`: exactly one target. The word `budget` is the
 * row's own (an enum). */
void bd_cfg_apply_goal(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what, void *base,
                       void *user)
{
    (void)user;
    bd_policy_t *p = base;
    if (pr->val->type != YAML_MAPPING_NODE) {
        bd_yaml_err(cx, bd_yaml_line(pr->val),
                    "%s: expected budget, {target_roas: R} or {target_cpa: C}", what);
        return;
    }
    pair_t g = {0, 0, false, false};
    bd_cfg_walk(cx, pr->val, what, &GOAL_KEYS, &g, 0, NULL);
    if (g.has_a == g.has_b) {
        bd_yaml_err(cx, bd_yaml_line(pr->key), "%s: give exactly one of target_roas, target_cpa",
                    what);
        return;
    }
    p->goal.kind = g.has_a ? BD_GOAL_TARGET_ROAS : BD_GOAL_TARGET_CPA;
    p->goal.target = g.has_a ? g.a : g.b;
}

void bd_cfg_goal_check(bd_yaml_ctx_t *cx, const bd_policy_t *p, const char *who, int line)
{
    int gl = p->goal.line ? p->goal.line : line, bl = p->budget_range.line ? p->budget_range.line : line;
    bool target = p->goal.kind != BD_GOAL_BUDGET;
    if (target && !p->budget_range.range && p->budget > 0)
        bd_yaml_err(cx, gl,
                    "%s: goal %s needs a budget range (budget: {min: X, max: Y}), not the fixed "
                    "budget %.15g",
                    who, bd_goal_name(p->goal.kind), p->budget);
    if (!target && p->budget_range.range)
        bd_yaml_err(cx, bl,
                    "%s: a budget range {min, max} needs a target goal (goal: {target_roas: R} or "
                    "{target_cpa: C})",
                    who);
    if (p->goal.kind == BD_GOAL_TARGET_CPA && p->objective != BD_OBJ_CONVERSIONS)
        bd_yaml_err(cx, gl, "%s: goal target_cpa needs objective: conversions (a CPA counts conversions)",
                    who);
}
