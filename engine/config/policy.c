/* config_policy.c: the policy keys shared by `defaults` and each portfolio,
 * channel guardrails, and the feasibility checks of a portfolio.
 *
 * Inheritance is by application order: a portfolio's policy starts as a copy
 * of the final defaults and only the keys the portfolio lists are applied on
 * top, so nested maps (risk, kill, lab, channel) merge key by key. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config_int.h"

static const char *const POLICY_KEYS[] = {
    "budget", "objective", "model", "samples", "discount", "max_step", "min_change",
    "explore_share", "mode", "escalate_above", "risk", "kill", "lab", "channel", NULL};
static const char *const PORTFOLIO_KEYS[] = {
    "budget", "objective", "model", "samples", "discount", "max_step", "min_change",
    "explore_share", "mode", "escalate_above", "risk", "kill", "lab", "channel", "channels",
    NULL};
static const char *const RISK_KEYS[] = {"roas_floor", "max_prob", NULL};
static const char *const KILL_KEYS[] = {"roas_below", "window", "overspend_ratio", "stale_after",
                                        "max_reject_ratio", "action", NULL};
static const char *const LAB_KEYS[] = {"min_conversions", "max_rel_width", "cap_share", NULL};
static const char *const CHANNEL_KEYS[] = {"min", "max", "saturation", "lab", NULL};
static const char *const LISTED_CHANNEL_KEYS[] = {"min", "max", "saturation", "initial", "lab",
                                                  NULL};

/* Order must match the enums of config.h. */
static const char *const OBJECTIVES[] = {"revenue", "conversions", NULL};
static const char *const MODELS[] = {"poisson_sat", "loglog", NULL};
static const char *const MODES[] = {"assist", "collaborate", "delegate", "automate", NULL};
static const char *const KILL_ACTIONS[] = {"freeze", "fallback", "zero", NULL};

void bd_cfg_policy_builtin(bd_policy_t *p)
{
    memset(p, 0, sizeof *p);
    p->budget = 0; /* none: unlisted portfolios are rejected */
    p->objective = BD_OBJ_REVENUE;
    p->model = BD_MODEL_POISSON_SAT;
    p->samples = 64;
    p->discount = 0.98;
    p->max_step = 0.25;
    p->min_change = 0.01;
    p->explore_share = 0.05;
    p->mode = BD_MODE_AUTOMATE;
    p->escalate_above = 0.3;
    p->risk_roas_floor = 1.0;
    p->risk_max_prob = 0.2;
    p->kill.roas_below = 0.5;
    p->kill.window = 6;
    p->kill.overspend_ratio = 1.5;
    p->kill.stale_after = 3 * 3600;
    p->kill.max_reject_ratio = 0.2;
    p->kill.action = BD_KILL_FREEZE;
    p->lab.min_conversions = 30;
    p->lab.max_rel_width = 0.5;
    p->lab.cap_share = 0.1;
    p->channel.name[0] = '\0';
    p->channel.min = 0;
    p->channel.max = INFINITY;
    p->channel.saturation = 1000;
    p->channel.lab = false;
}

/* Lines where a channel's bounds were written; 0 = inherited. */
typedef struct {
    int min, max, initial;
} chlines_t;

/* `max` also takes .inf (uncapped), so that a portfolio can lift a cap that
 * defaults.channel set. */
static void read_max(bd_cfgctx_t *cx, const yaml_node_t *v, const char *what, double *out)
{
    const char *s = bd_cfg_str(v);
    if (s && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (!strcmp(s, ".inf") || !strcmp(s, ".Inf") || !strcmp(s, ".INF") || !strcmp(s, "inf"))) {
        *out = INFINITY;
        return;
    }
    bd_cfg_num(cx, v, what, BD_R_GE0, out);
}

/* Applies a channel map onto ch. listed: a channel under `channels`, which
 * may also set `initial`. */
static void channel_apply(bd_cfgctx_t *cx, yaml_node_t *map, const char *path,
                          bd_channel_cfg_t *ch, bool listed, chlines_t *ln)
{
    size_t n;
    bd_cfg_pair_t *pr = bd_cfg_pairs(cx, map, path, &n);
    if (!pr) return;
    char what[320];
    for (size_t i = 0; i < n; i++) {
        const char *k = pr[i].k;
        yaml_node_t *v = pr[i].val;
        bd_cfg_join(what, sizeof what, path, k);
        if (!strcmp(k, "min")) {
            if (bd_cfg_num(cx, v, what, BD_R_GE0, &ch->min)) ln->min = bd_cfg_line(v);
        } else if (!strcmp(k, "max")) {
            read_max(cx, v, what, &ch->max);
            ln->max = bd_cfg_line(v);
        } else if (!strcmp(k, "saturation")) {
            bd_cfg_num(cx, v, what, BD_R_GT0, &ch->saturation);
        } else if (!strcmp(k, "lab")) {
            bd_cfg_bool(cx, v, what, &ch->lab);
        } else if (listed && !strcmp(k, "initial")) {
            if (bd_cfg_num(cx, v, what, BD_R_GE0, &ch->initial)) {
                ch->has_initial = true;
                ln->initial = bd_cfg_line(v);
            }
        } else if (!listed && !strcmp(k, "initial")) {
            bd_cfg_err(cx, bd_cfg_line(pr[i].key),
                       "%s: 'initial' is only allowed on a listed channel (under channels)", path);
        } else {
            bd_cfg_unknown(cx, pr[i].key, k, path, listed ? LISTED_CHANNEL_KEYS : CHANNEL_KEYS);
        }
    }
    free(pr);
}

/* Walks a nested map (risk, kill, lab) with its own key set. */
static void nested_apply(bd_cfgctx_t *cx, yaml_node_t *map, const char *path, bd_policy_t *p,
                         const char *section)
{
    size_t n;
    bd_cfg_pair_t *pr = bd_cfg_pairs(cx, map, path, &n);
    if (!pr) return;
    char what[320];
    int64_t iv;
    int e;
    for (size_t i = 0; i < n; i++) {
        const char *k = pr[i].k;
        yaml_node_t *v = pr[i].val;
        bd_cfg_join(what, sizeof what, path, k);
        bool known = true;
        if (!strcmp(section, "risk")) {
            if (!strcmp(k, "roas_floor")) bd_cfg_num(cx, v, what, BD_R_GE0, &p->risk_roas_floor);
            else if (!strcmp(k, "max_prob")) bd_cfg_num(cx, v, what, BD_R_OC01, &p->risk_max_prob);
            else known = false;
            if (!known) bd_cfg_unknown(cx, pr[i].key, k, path, RISK_KEYS);
        } else if (!strcmp(section, "kill")) {
            if (!strcmp(k, "roas_below")) bd_cfg_num(cx, v, what, BD_R_GE0, &p->kill.roas_below);
            else if (!strcmp(k, "window")) {
                if (bd_cfg_int(cx, v, what, 1, 1000000, &iv)) p->kill.window = (int)iv;
            } else if (!strcmp(k, "overspend_ratio")) {
                double r;
                if (bd_cfg_num(cx, v, what, BD_R_GE0, &r)) {
                    /* Below 1 would trip on a cycle spent exactly to plan. */
                    if (r > 0 && r < 1)
                        bd_cfg_err(cx, bd_cfg_line(v), "%s must be 0 (off) or >= 1, got %s",
                                   what, bd_cfg_str(v));
                    else
                        p->kill.overspend_ratio = r;
                }
            } else if (!strcmp(k, "stale_after"))
                bd_cfg_dur(cx, v, what, false, &p->kill.stale_after);
            else if (!strcmp(k, "max_reject_ratio"))
                bd_cfg_num(cx, v, what, BD_R_CC01, &p->kill.max_reject_ratio);
            else if (!strcmp(k, "action")) {
                if (bd_cfg_enum(cx, v, what, KILL_ACTIONS, &e)) p->kill.action = (bd_kill_action_t)e;
            } else known = false;
            if (!known) bd_cfg_unknown(cx, pr[i].key, k, path, KILL_KEYS);
        } else {
            if (!strcmp(k, "min_conversions")) bd_cfg_num(cx, v, what, BD_R_GE0, &p->lab.min_conversions);
            else if (!strcmp(k, "max_rel_width")) bd_cfg_num(cx, v, what, BD_R_GT0, &p->lab.max_rel_width);
            else if (!strcmp(k, "cap_share")) bd_cfg_num(cx, v, what, BD_R_OC01, &p->lab.cap_share);
            else known = false;
            if (!known) bd_cfg_unknown(cx, pr[i].key, k, path, LAB_KEYS);
        }
    }
    free(pr);
}

/* min <= max of a channel, reported where the later-written bound is. */
static void check_bounds(bd_cfgctx_t *cx, const bd_channel_cfg_t *ch, const chlines_t *ln,
                         int fallback, const char *who)
{
    if (ch->min <= ch->max) return;
    int line = ln->max > ln->min ? ln->max : ln->min;
    bd_cfg_err(cx, line ? line : fallback, "%s: min %.15g > max %.15g", who, ch->min, ch->max);
}

void bd_cfg_policy_apply(bd_cfgctx_t *cx, yaml_node_t *map, const char *path, bd_policy_t *p,
                         bool is_portfolio, bd_cfg_found_t *found)
{
    size_t n;
    bd_cfg_pair_t *pr = bd_cfg_pairs(cx, map, path, &n);
    if (!pr) return;
    char what[320];
    int64_t iv;
    int e;
    for (size_t i = 0; i < n; i++) {
        const char *k = pr[i].k;
        yaml_node_t *v = pr[i].val;
        bd_cfg_join(what, sizeof what, path, k);
        if (!strcmp(k, "budget")) {
            bd_cfg_num(cx, v, what, BD_R_GT0, &p->budget);
            if (found) found->budget_key = pr[i].key;
        } else if (!strcmp(k, "objective")) {
            if (bd_cfg_enum(cx, v, what, OBJECTIVES, &e)) p->objective = (bd_objective_t)e;
        } else if (!strcmp(k, "model")) {
            if (bd_cfg_enum(cx, v, what, MODELS, &e)) p->model = (bd_model_kind_t)e;
        } else if (!strcmp(k, "samples")) {
            if (bd_cfg_int(cx, v, what, 1, 4096, &iv)) p->samples = (int)iv;
        } else if (!strcmp(k, "discount")) {
            bd_cfg_num(cx, v, what, BD_R_OC01, &p->discount);
        } else if (!strcmp(k, "max_step")) {
            bd_cfg_num(cx, v, what, BD_R_GT0, &p->max_step);
        } else if (!strcmp(k, "min_change")) {
            bd_cfg_num(cx, v, what, BD_R_CO01, &p->min_change);
        } else if (!strcmp(k, "explore_share")) {
            bd_cfg_num(cx, v, what, BD_R_CO01, &p->explore_share);
        } else if (!strcmp(k, "mode")) {
            if (bd_cfg_enum(cx, v, what, MODES, &e)) p->mode = (bd_mode_t)e;
        } else if (!strcmp(k, "escalate_above")) {
            bd_cfg_num(cx, v, what, BD_R_GT0, &p->escalate_above);
        } else if (!strcmp(k, "risk") || !strcmp(k, "kill") || !strcmp(k, "lab")) {
            nested_apply(cx, v, what, p, k);
        } else if (!strcmp(k, "channel")) {
            chlines_t ln = {0, 0, 0};
            channel_apply(cx, v, what, &p->channel, false, &ln);
            check_bounds(cx, &p->channel, &ln, bd_cfg_line(pr[i].key), what);
        } else if (is_portfolio && found && !strcmp(k, "channels")) {
            found->channels = v;
            found->channels_key = pr[i].key;
        } else {
            bd_cfg_unknown(cx, pr[i].key, k, path, is_portfolio ? PORTFOLIO_KEYS : POLICY_KEYS);
        }
    }
    free(pr);
}

void bd_cfg_portfolio_channels(bd_cfgctx_t *cx, const bd_cfg_found_t *found, const char *path,
                               bd_portfolio_cfg_t *pc)
{
    yaml_node_t *channels = found->channels;
    const double budget = pc->p.budget;
    size_t n = 0;
    bd_cfg_pair_t *pr = NULL;
    char cpath[320], who[200];
    if (channels) {
        bd_cfg_join(cpath, sizeof cpath, path, "channels");
        pr = bd_cfg_pairs(cx, channels, cpath, &n);
    }
    pc->channels = bd_xcalloc(n + 1, sizeof *pc->channels);
    double sum_min = 0, sum_init = 0, sum_floor = 0;
    bool all_init = true;
    for (size_t i = 0; i < n; i++) {
        const char *name = pr[i].k;
        if (!bd_cfg_valid_name(name)) {
            bd_cfg_err(cx, bd_cfg_line(pr[i].key),
                       "%s: bad channel name '%.80s' (1-64 of A-Z a-z 0-9 _ . : -)", cpath, name);
            continue;
        }
        bd_channel_cfg_t *ch = &pc->channels[pc->n_channels++];
        *ch = pc->p.channel;
        memcpy(ch->name, name, strlen(name) + 1); /* valid: <= 64 */
        ch->has_initial = false;
        ch->initial = 0;
        ch->line = bd_cfg_line(pr[i].key);
        chlines_t ln = {0, 0, 0};
        char chpath[400];
        bd_cfg_join(chpath, sizeof chpath, cpath, name);
        channel_apply(cx, pr[i].val, chpath, ch, true, &ln);
        if (snprintf(who, sizeof who, "portfolio '%s': channel '%s'", pc->name, name) < 0) who[0] = 0;
        check_bounds(cx, ch, &ln, ch->line, who);
        if (ch->has_initial && ch->min <= ch->max &&
            (ch->initial < ch->min || ch->initial > ch->max))
            bd_cfg_err(cx, ln.initial, "%s: initial %.15g outside [%.15g, %.15g]", who,
                       ch->initial, ch->min, ch->max);
        sum_min += ch->min;
        if (ch->has_initial) sum_init += ch->initial;
        else all_init = false;
        sum_floor += ch->has_initial ? ch->initial : ch->min;
    }
    free(pr);
    if (!(budget > 0)) return; /* missing budget is reported by the caller */
    /* Report at the portfolio's own budget when it sets one (the number to
     * raise), else at its channels (the numbers to lower). */
    int at = found->budget_key ? bd_cfg_line(found->budget_key)
             : found->channels_key ? bd_cfg_line(found->channels_key) : pc->line;
    bool reported = false;
    if (sum_min > budget) {
        bd_cfg_err(cx, at, "portfolio '%s': channel mins sum to %.15g > budget %.15g", pc->name,
                   sum_min, budget);
        reported = true;
    }
    if (sum_init > budget) {
        bd_cfg_err(cx, at, "portfolio '%s': channel initials sum to %.15g > budget %.15g",
                   pc->name, sum_init, budget);
        reported = true;
    }
    if (!reported && !all_init && sum_floor > budget)
        bd_cfg_err(cx, at,
                   "portfolio '%s': initials plus the mins of channels without initial sum to "
                   "%.15g > budget %.15g",
                   pc->name, sum_floor, budget);
}
