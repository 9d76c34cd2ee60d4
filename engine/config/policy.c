/* policy.c: the key tables of the policy shared by `defaults` and each
 * portfolio (with its nested maps risk, kill, lab and channel), channel
 * guardrails, and the feasibility checks of a portfolio.
 *
 * Inheritance is by application order: a portfolio's policy starts as a copy
 * of the final defaults and only the keys the portfolio lists are applied on
 * top, so nested maps (risk, kill, lab, channel) merge key by key. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/bounds.h"
#include "budgetd/model.h"
#include "config_int.h"

/* Order must match the enums of config.h. */
static const char *const OBJECTIVES[] = {"revenue", "conversions", NULL};
static const char *const MODELS[] = {"poisson_sat", "loglog", NULL};
static const char *const MODES[] = {"assist", "collaborate", "delegate", "automate", NULL};
static const char *const KILL_ACTIONS[] = {"freeze", "fallback", "zero", NULL};
static const char *const AUTO3[] = {"off", "auto", "on", NULL};
static const char *const AUTO2[] = {"off", "auto", NULL};
static const char *const FAULT_ACTIONS[] = {"off", "hold", "kill", NULL};
static const char *const GOALS[] = {"budget", NULL}; /* the word form; targets are maps (goal.c) */

/* ENUM rows store an int32_t into the field. */
_Static_assert(sizeof(bd_objective_t) == sizeof(int32_t) &&
                   sizeof(bd_model_kind_t) == sizeof(int32_t) &&
                   sizeof(bd_mode_t) == sizeof(int32_t) &&
                   sizeof(bd_kill_action_t) == sizeof(int32_t) &&
                   sizeof(bd_auto_t) == sizeof(int32_t) &&
                   sizeof(bd_fault_action_t) == sizeof(int32_t) &&
                   sizeof(bd_goal_kind_t) == sizeof(int32_t),
               "enum fields are stored as 32-bit integers");

/* Lines where a channel's bounds were written; 0 = inherited. dflt: the
 * guardrails an arm starts from (defaults.channel; v2 arms). */
typedef struct {
    int min, max, initial, pin;
    const bd_channel_cfg_t *dflt;
} chlines_t;

/* Below 1 would trip on a cycle spent exactly to plan. */
static bool check_overspend(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what,
                            const void *val)
{
    double r = *(const double *)val;
    if (!(r > 0 && r < 1)) return true;
    bd_yaml_err(cx, bd_yaml_line(v), "%s must be 0 (off) or >= 1, got %s", what, bd_yaml_str(v));
    return false;
}

/* Money amounts (budget, channel min, max, initial, saturation) are at
 * most BD_MONEY_MAX; a max may also be .inf (uncapped). */
bool bd_cfg_check_money(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what,
                        const void *val)
{
    double x = *(const double *)val;
    if (!(x > BD_MONEY_MAX) || isinf(x)) return true;
    bd_yaml_err(cx, bd_yaml_line(v),
                "%s must be at most 1e12 (the limit of money amounts per cycle), got %s", what,
                bd_yaml_str(v));
    return false;
}

/* The portfolio's own `budget` key, valid or not (its absence is what the
 * caller checks). */
static void note_budget(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    bd_cfg_found_t *found = user;
    if (found) found->budget_key = pr->key;
    bd_cfg_note_budget_scalar(pr, ok, base);
}

/* The portfolio's own `objective` key: the goal check looks again
 * (target_cpa counts conversions). */
static void note_objective(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    (void)ok;
    (void)base;
    bd_cfg_found_t *found = user;
    if (found) found->objective_key = pr->key;
}

/* `channels` is read once the portfolio's policy is final. */
static void note_channels(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what, void *base,
                          void *user)
{
    (void)cx;
    (void)what;
    (void)base;
    bd_cfg_found_t *found = user;
    if (!found) return;
    found->channels = pr->val;
    found->channels_key = pr->key;
}

/* Channel rows remember where the bounds were written (user: chlines_t). */
static void note_min(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    (void)base;
    if (ok) ((chlines_t *)user)->min = bd_yaml_line(pr->val);
}

/* A max is remembered even when invalid: it was written there. */
static void note_max(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    (void)ok;
    (void)base;
    ((chlines_t *)user)->max = bd_yaml_line(pr->val);
}

static void note_initial(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    if (!ok) return;
    ((bd_channel_cfg_t *)base)->has_initial = true;
    ((chlines_t *)user)->initial = bd_yaml_line(pr->val);
}

/* A channel's `pin` (v2): remembered with its line like `initial`. */
static void note_pin(const bd_yaml_pair_t *pr, bool ok, void *base, void *user)
{
    if (!ok) return;
    ((bd_channel_cfg_t *)base)->has_pin = true;
    ((chlines_t *)user)->pin = bd_yaml_line(pr->val);
}

/* min <= max of a channel, reported where the later-written bound is. */
static void check_bounds(bd_yaml_ctx_t *cx, const bd_channel_cfg_t *ch, const chlines_t *ln,
                         int fallback, const char *who)
{
    if (ch->min <= ch->max) return;
    int line = ln->max > ln->min ? ln->max : ln->min;
    bd_yaml_err(cx, line ? line : fallback, "%s: min %.15g > max %.15g", who, ch->min, ch->max);
}

/* `arms` of a listed channel (v2): each arm NAME is a channel config of
 * its own, named "C:NAME", starting from defaults.channel; its bounds are
 * checked against the channel's once the channel is read (check_arms). */
static void channel_arms(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what, void *base,
                         void *user)
{
    bd_channel_cfg_t *ch = base;
    const chlines_t *pln = user;
    size_t n = 0;
    bd_yaml_pair_t *ap = bd_yaml_pairs(cx, pr->val, what, &n);
    free(ch->arms);
    ch->arms = NULL;
    ch->n_arms = 0;
    if (!ap) return;
    ch->arms = bd_xcalloc(n ? n : 1, sizeof *ch->arms);
    size_t plen = strlen(ch->name);
    for (size_t i = 0; i < n; i++) {
        const char *name = ap[i].k;
        size_t len = strlen(name);
        if (!bd_name_valid(name, len) || plen + 1 + len > BD_NAME_MAX) {
            bd_yaml_err(cx, bd_yaml_line(ap[i].key),
                        "%s: bad arm name '%.80s' (1-64 of A-Z a-z 0-9 _ . : -, and '%s:NAME' at most "
                        "64)",
                        what, name, ch->name);
            continue;
        }
        bd_channel_cfg_t *a = &ch->arms[ch->n_arms++];
        *a = *pln->dflt; /* a listed channel's walk passes defaults.channel */
        a->arms = NULL;
        a->n_arms = 0;
        a->n_lift = 0;
        a->has_initial = a->has_pin = false;
        a->initial = a->pin = 0;
        memcpy(a->name, ch->name, plen); /* "C:A", at most BD_NAME_MAX (checked above) */
        a->name[plen] = ':';
        memcpy(a->name + plen + 1, name, len + 1);
        a->arm_of = plen;
        a->line = bd_yaml_line(ap[i].key);
        chlines_t ln = {0, 0, 0, 0, NULL};
        char apath[480];
        bd_yaml_join(apath, sizeof apath, what, name);
        bd_cfg_walk(cx, ap[i].val, apath, &bd_cfg_channel_keys, a, BD_KEY_ARM, &ln);
        check_bounds(cx, a, &ln, a->line, apath);
        if (a->lab) bd_yaml_err(cx, a->line, "%s: an arm cannot be a lab channel", apath);
        if (a->has_pin && a->min <= a->max && (a->pin < a->min || a->pin > a->max))
            bd_yaml_err(cx, ln.pin, "%s: pin %.15g outside [%.15g, %.15g]", apath, a->pin, a->min, a->max);
    }
    free(ap);
}

/* `channel` of a policy: the guardrails of channels it does not list. */
static void policy_channel(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what,
                           void *base, void *user)
{
    (void)user;
    bd_policy_t *p = base;
    chlines_t ln = {0, 0, 0, 0, NULL};
    bd_cfg_walk(cx, pr->val, what, &bd_cfg_channel_keys, &p->channel, 0, &ln);
    check_bounds(cx, &p->channel, &ln, bd_yaml_line(pr->key), what);
}

#define POL(f) .off = offsetof(bd_policy_t, f), .size = sizeof(((bd_policy_t *)0)->f)
#define CH(f) .off = offsetof(bd_channel_cfg_t, f), .size = sizeof(((bd_channel_cfg_t *)0)->f)

/* The policy tables. Built-in values are the ones the docs/CONTRACT.md §5
 * example writes out (lab: configs/example.yaml's); budget has none. */
static const bd_cfg_key_t RISK[] = {
    {"roas_floor", BD_KEY_NUM, POL(risk_roas_floor), .range = BD_YAML_R_GE0, .dflt = 1.0},
    {"max_prob", BD_KEY_NUM, POL(risk_max_prob), .range = BD_YAML_R_OC01, .dflt = 0.2},
    {"cvar", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_cvar_keys}, /* v2 (goal.c) */
};
const bd_cfg_section_t bd_cfg_risk_keys = {"risk", RISK, sizeof RISK / sizeof *RISK, false};

static const bd_cfg_key_t KILL[] = {
    {"roas_below", BD_KEY_NUM, POL(kill.roas_below), .range = BD_YAML_R_GE0, .dflt = 0.5},
    {"window", BD_KEY_INT, POL(kill.window), .lo = 1, .hi = 1000000, .dflt = 6},
    {"overspend_ratio", BD_KEY_NUM, POL(kill.overspend_ratio), .range = BD_YAML_R_GE0, .dflt = 1.5,
     .check = check_overspend},
    {"stale_after", BD_KEY_DUR, POL(kill.stale_after), .dflt = 3 * 3600},
    {"max_reject_ratio", BD_KEY_NUM, POL(kill.max_reject_ratio), .range = BD_YAML_R_CC01,
     .dflt = 0.2},
    {"action", BD_KEY_ENUM, POL(kill.action), .names = KILL_ACTIONS, .dflt = BD_KILL_FREEZE},
};
const bd_cfg_section_t bd_cfg_kill_keys = {"kill", KILL, sizeof KILL / sizeof *KILL, false};

static const bd_cfg_key_t SEASON[] = {
    {"daily", BD_KEY_ENUM, POL(season.daily), .names = AUTO3, .dflt = BD_AUTO_AUTO},
    {"weekly", BD_KEY_ENUM, POL(season.weekly), .names = AUTO3, .dflt = BD_AUTO_AUTO},
};
const bd_cfg_section_t bd_cfg_season_keys = {"seasonality", SEASON, sizeof SEASON / sizeof *SEASON,
                                             false};

static const bd_cfg_key_t LAG[] = {
    {"model", BD_KEY_ENUM, POL(lag.model), .names = AUTO2, .dflt = BD_AUTO_AUTO},
    {"horizon", BD_KEY_DUR, POL(lag.horizon), .flag = true, .dflt = 7 * 86400},
};
const bd_cfg_section_t bd_cfg_lag_keys = {"lag", LAG, sizeof LAG / sizeof *LAG, false};

/* v2: delivery limits (engine/core/delivery.c). */
static const bd_cfg_key_t DELIVERY[] = {
    {"caps", BD_KEY_ENUM, POL(delivery.caps), .names = AUTO2, .dflt = BD_AUTO_AUTO},
    {"tolerance", BD_KEY_NUM, POL(delivery.tolerance), .range = BD_YAML_R_CO01, .dflt = 0.1},
};
const bd_cfg_section_t bd_cfg_delivery_keys = {"delivery", DELIVERY,
                                               sizeof DELIVERY / sizeof *DELIVERY, false};

/* v2: what each named data fault does (engine/core/fault.c); the keys are
 * bd_fault_name's. */
static const bd_cfg_key_t FAULTS[] = {
    {"tracking", BD_KEY_ENUM, POL(faults[BD_FAULT_TRACKING]), .names = FAULT_ACTIONS,
     .dflt = BD_FAULT_ACT_HOLD},
    {"silent", BD_KEY_ENUM, POL(faults[BD_FAULT_SILENT]), .names = FAULT_ACTIONS,
     .dflt = BD_FAULT_ACT_HOLD},
    {"no_conversions", BD_KEY_ENUM, POL(faults[BD_FAULT_NO_CONVERSIONS]), .names = FAULT_ACTIONS,
     .dflt = BD_FAULT_ACT_HOLD},
    {"value_jump", BD_KEY_ENUM, POL(faults[BD_FAULT_VALUE_JUMP]), .names = FAULT_ACTIONS,
     .dflt = BD_FAULT_ACT_HOLD},
};
const bd_cfg_section_t bd_cfg_faults_keys = {"faults", FAULTS, sizeof FAULTS / sizeof *FAULTS,
                                             false};

static const bd_cfg_key_t LAB[] = {
    {"min_conversions", BD_KEY_NUM, POL(lab.min_conversions), .range = BD_YAML_R_GE0, .dflt = 30},
    {"max_rel_width", BD_KEY_NUM, POL(lab.max_rel_width), .range = BD_YAML_R_GT0, .dflt = 0.5},
    {"cap_share", BD_KEY_NUM, POL(lab.cap_share), .range = BD_YAML_R_OC01, .dflt = 0.1},
};
const bd_cfg_section_t bd_cfg_lab_keys = {"lab", LAB, sizeof LAB / sizeof *LAB, false};

/* `initial` only on a listed channel: unlisted ones get the equal split. */
static const bd_cfg_key_t CHANNEL[] = {
    {"min", BD_KEY_NUM, CH(min), .range = BD_YAML_R_GE0, .dflt = 0, .check = bd_cfg_check_money,
     .note = note_min},
    /* .inf too, so that a portfolio can lift a cap defaults.channel set */
    {"max", BD_KEY_NUM, CH(max), .range = BD_YAML_R_GE0, .inf_ok = true, .dflt = INFINITY,
     .check = bd_cfg_check_money, .note = note_max},
    {"saturation", BD_KEY_NUM, CH(saturation), .range = BD_YAML_R_GT0, .dflt = 1000,
     .check = bd_cfg_check_money},
    {"initial", BD_KEY_NUM, CH(initial), .range = BD_YAML_R_GE0, .dflt = 0,
     .only = BD_KEY_LISTED | BD_KEY_ARM,
     .only_msg = "is only allowed on a listed channel (under channels)", .check = bd_cfg_check_money,
     .note = note_initial},
    {"lab", BD_KEY_BOOL, CH(lab), .dflt = false},
    {"pin", BD_KEY_NUM, CH(pin), .range = BD_YAML_R_GE0, .dflt = 0,
     .only = BD_KEY_LISTED | BD_KEY_ARM,
     .only_msg = "is only allowed on a listed channel (under channels)", .note = note_pin},
    {"prior", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_prior_keys}, /* v2 (prior.c) */
    {"lift", BD_KEY_MAP, .off = 0, .only = BD_KEY_LISTED | BD_KEY_ARM, .apply = bd_cfg_apply_lift,
     .only_msg = "is only allowed on a listed channel (under channels)"},
    {"arms", BD_KEY_MAP, .off = 0, .only = BD_KEY_LISTED, .apply = channel_arms, /* v2 */
     .only_msg = "is only allowed on a listed channel (under channels; arms have no arms)"},
};
const bd_cfg_section_t bd_cfg_channel_keys = {"channel", CHANNEL, sizeof CHANNEL / sizeof *CHANNEL,
                                              false};

/* budget 0 is "none": unlisted portfolios are rejected unless defaults set one.
 * `budget` is a number or (v2) a range, `goal` a word or a map (goal.c). */
static const bd_cfg_key_t POLICY[] = {
    {"budget", BD_KEY_NUM, POL(budget), .range = BD_YAML_R_GT0, .dflt = 0, .check = bd_cfg_check_money,
     .note = note_budget, .apply = bd_cfg_apply_budget},
    {"goal", BD_KEY_ENUM, POL(goal.kind), .names = GOALS, .dflt = BD_GOAL_BUDGET,
     .note = bd_cfg_note_goal, .apply = bd_cfg_apply_goal},
    {"objective", BD_KEY_ENUM, POL(objective), .names = OBJECTIVES, .dflt = BD_OBJ_REVENUE,
     .note = note_objective},
    {"model", BD_KEY_ENUM, POL(model), .names = MODELS, .dflt = BD_MODEL_POISSON_SAT},
    {"samples", BD_KEY_INT, POL(samples), .lo = 1, .hi = 4096, .dflt = 64},
    {"max_channels", BD_KEY_INT, POL(max_channels), .lo = 1, .hi = 4096,
     .dflt = BD_DEFAULT_MAX_CHANNELS},
    {"discount", BD_KEY_NUM, POL(discount), .range = BD_YAML_R_OC01, .auto_ok = true,
     .auto_val = BD_DISCOUNT_AUTO, .dflt = 0.98},
    {"max_step", BD_KEY_NUM, POL(max_step), .range = BD_YAML_R_GT0, .dflt = 0.25},
    {"min_change", BD_KEY_NUM, POL(min_change), .range = BD_YAML_R_CO01, .dflt = 0.01},
    {"explore_share", BD_KEY_NUM, POL(explore_share), .range = BD_YAML_R_CO01, .dflt = 0.05},
    {"mode", BD_KEY_ENUM, POL(mode), .names = MODES, .dflt = BD_MODE_AUTOMATE},
    {"escalate_above", BD_KEY_NUM, POL(escalate_above), .range = BD_YAML_R_GT0, .dflt = 0.3},
    {"risk", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_risk_keys},
    {"kill", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_kill_keys},
    {"lab", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_lab_keys},
    {"seasonality", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_season_keys},
    {"lag", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_lag_keys},
    {"delivery", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_delivery_keys},
    {"faults", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_faults_keys},
    {"channel", BD_KEY_MAP, POL(channel), .sub = &bd_cfg_channel_keys, .apply = policy_channel},
    {"channels", BD_KEY_MAP, .only = BD_KEY_PORTFOLIO, .apply = note_channels},
};
const bd_cfg_section_t bd_cfg_policy_keys = {"policy", POLICY, sizeof POLICY / sizeof *POLICY,
                                             false};

void bd_cfg_policy_apply(bd_yaml_ctx_t *cx, yaml_node_t *map, const char *path, bd_policy_t *p,
                         bool is_portfolio, bd_cfg_found_t *found)
{
    bd_cfg_walk(cx, map, path, &bd_cfg_policy_keys, p, is_portfolio ? BD_KEY_PORTFOLIO : 0, found);
}

/* The arms of ch (v2) must split any amount ch may get, [min, max] (its
 * pin, when pinned): bd_bounds_check_arms, the rule `budgetd pin` applies
 * to run-time pins too. */
static void check_arms(bd_yaml_ctx_t *cx, const bd_portfolio_cfg_t *pc, const bd_channel_cfg_t *ch,
                       const char *who)
{
    double lo = ch->has_pin ? ch->pin : ch->min, hi = ch->has_pin ? ch->pin : ch->max;
    if (!(lo <= hi)) return; /* reported as the channel's own bounds */
    const bd_channel_cfg_t **cfg = bd_xcalloc(ch->n_arms, sizeof *cfg);
    double *pin = bd_xcalloc(ch->n_arms, sizeof *pin);
    for (size_t j = 0; j < ch->n_arms; j++) {
        cfg[j] = &ch->arms[j];
        pin[j] = cfg[j]->has_pin ? cfg[j]->pin : NAN;
    }
    char msg[400];
    if (bd_bounds_check_arms(&pc->p, cfg, ch->n_arms, pin, lo, hi, ch->has_pin, msg, sizeof msg) != BD_OK)
        bd_yaml_err(cx, ch->line, "%s: %s", who, msg);
    free(cfg);
    free(pin);
}

/* Pins (v2) together: feasible with the budget and the other channels'
 * bounds by the allocator's own rule (bd_bounds_check_pins), reported at
 * the first pin's line; a pin outside its own bounds is reported per
 * channel by the caller. */
static void config_check_pins(bd_yaml_ctx_t *cx, const bd_portfolio_cfg_t *pc)
{
    size_t n = pc->n_channels;
    int line = 0;
    for (size_t i = 0; i < n; i++) {
        const bd_channel_cfg_t *c = &pc->channels[i];
        if (!c->has_pin) continue;
        if (c->pin < c->min || c->pin > c->max) return; /* reported per channel */
        if (!line) line = c->line;
    }
    if (!line) return;
    const bd_channel_cfg_t **cfg = bd_xcalloc(n, sizeof *cfg);
    double *pin = bd_xcalloc(n, sizeof *pin);
    for (size_t i = 0; i < n; i++) {
        cfg[i] = &pc->channels[i];
        pin[i] = cfg[i]->has_pin ? cfg[i]->pin : NAN;
    }
    char msg[256];
    if (bd_bounds_check_pins(&pc->p, cfg, n, pin, NULL, msg, sizeof msg) != BD_OK)
        bd_yaml_err(cx, line, "portfolio '%s': infeasible pins: %s", pc->name, msg);
    free(cfg);
    free(pin);
}

void bd_cfg_portfolio_channels(bd_yaml_ctx_t *cx, const bd_cfg_found_t *found, const char *path,
                               bd_portfolio_cfg_t *pc)
{
    yaml_node_t *channels = found->channels;
    const double budget = pc->p.budget;
    size_t n = 0;
    bd_yaml_pair_t *pr = NULL;
    char cpath[320], who[200];
    if (channels) {
        bd_yaml_join(cpath, sizeof cpath, path, "channels");
        pr = bd_yaml_pairs(cx, channels, cpath, &n);
    }
    pc->channels = bd_xcalloc(n + 1, sizeof *pc->channels);
    double sum_min = 0, sum_init = 0, sum_floor = 0, sum_max = 0;
    bool all_init = true;
    for (size_t i = 0; i < n; i++) {
        const char *name = pr[i].k;
        if (!bd_name_valid(name, strlen(name))) {
            bd_yaml_err(cx, bd_yaml_line(pr[i].key),
                        "%s: bad channel name '%.80s' (1-64 of A-Z a-z 0-9 _ . : -)", cpath, name);
            continue;
        }
        bd_channel_cfg_t *ch = &pc->channels[pc->n_channels++];
        *ch = pc->p.channel;
        memcpy(ch->name, name, strlen(name) + 1); /* valid: <= 64 */
        ch->has_initial = false;
        ch->initial = 0;
        ch->has_pin = false;
        ch->pin = 0;
        ch->n_lift = 0;
        ch->arms = NULL;
        ch->n_arms = 0;
        ch->line = bd_yaml_line(pr[i].key);
        chlines_t ln = {0, 0, 0, 0, &pc->p.channel};
        char chpath[400];
        bd_yaml_join(chpath, sizeof chpath, cpath, name);
        bd_cfg_walk(cx, pr[i].val, chpath, &bd_cfg_channel_keys, ch, BD_KEY_LISTED, &ln);
        if (snprintf(who, sizeof who, "portfolio '%s': channel '%s'", pc->name, name) < 0)
            who[0] = 0;
        check_bounds(cx, ch, &ln, ch->line, who);
        if (ch->has_initial && ch->min <= ch->max &&
            (ch->initial < ch->min || ch->initial > ch->max))
            bd_yaml_err(cx, ln.initial, "%s: initial %.15g outside [%.15g, %.15g]", who,
                        ch->initial, ch->min, ch->max);
        if (ch->has_pin && ch->min <= ch->max && (ch->pin < ch->min || ch->pin > ch->max))
            bd_yaml_err(cx, ln.pin, "%s: pin %.15g outside [%.15g, %.15g]", who, ch->pin, ch->min,
                        ch->max);
        sum_min += ch->min;
        sum_max += ch->max;
        if (ch->has_initial) sum_init += ch->initial;
        else all_init = false;
        sum_floor += ch->has_initial ? ch->initial : ch->min;
        if (ch->n_arms) check_arms(cx, pc, ch, who);
    }
    free(pr);
    size_t held = pc->n_channels;
    for (size_t i = 0; i < pc->n_channels; i++) {
        held += pc->channels[i].n_arms;
        for (size_t j = 0; j < pc->channels[i].n_arms; j++)
            for (size_t k = 0; k < pc->n_channels; k++)
                if (!strcmp(pc->channels[k].name, pc->channels[i].arms[j].name))
                    bd_yaml_err(cx, pc->channels[k].line,
                                "portfolio '%s': channel '%s' is also the name of an arm of '%s'",
                                pc->name, pc->channels[k].name, pc->channels[i].name);
    }
    if (held > (size_t)pc->p.max_channels)
        bd_yaml_err(cx, found->channels_key ? bd_yaml_line(found->channels_key) : pc->line,
                    "portfolio '%s': %zu channels listed, more than max_channels %d", pc->name,
                    held, pc->p.max_channels);
    if (!(budget > 0)) return; /* missing budget is reported by the caller */
    /* Report at the portfolio's own budget when it sets one (the number to
     * raise), else at its channels (the numbers to lower). */
    int at = found->budget_key ? bd_yaml_line(found->budget_key)
             : found->channels_key ? bd_yaml_line(found->channels_key) : pc->line;
    bool reported = false;
    /* with a budget range (v2) the mins and initials must fit its max and
     * the maxes must reach its min */
    const bool range = pc->p.budget_range.range;
    const char *bw = range ? "budget max" : "budget";
    const double least = range ? pc->p.budget_range.min : budget;
    if (sum_min > budget) {
        bd_yaml_err(cx, at, "portfolio '%s': channel mins sum to %.15g > %s %.15g", pc->name,
                    sum_min, bw, budget);
        reported = true;
    }
    if (sum_init > budget) {
        bd_yaml_err(cx, at, "portfolio '%s': channel initials sum to %.15g > %s %.15g",
                    pc->name, sum_init, bw, budget);
        reported = true;
    }
    if (!reported && !all_init && sum_floor > budget)
        bd_yaml_err(cx, at,
                    "portfolio '%s': initials plus the mins of channels without initial sum to "
                    "%.15g > %s %.15g",
                    pc->name, sum_floor, bw, budget);
    /* The listed channels are the plan: a budget they cannot take would be
     * left unspent without a word (docs/DECISIONS.md, "Maxes below the
     * budget"). With no channel listed, the channels come from the events. */
    if (pc->n_channels > 0 && sum_max < least)
        bd_yaml_err(cx, at,
                    "portfolio '%s': channel maxes sum to %.15g < %s %.15g (at most %.15g "
                    "would be spent each cycle: raise a max or lower the budget)",
                    pc->name, sum_max, range ? "budget min" : "budget", least, sum_max);
    if (!reported) config_check_pins(cx, pc);
    bd_cfg_prior_check(cx, pc);
}
