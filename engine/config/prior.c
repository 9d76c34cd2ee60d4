/* prior.c: the v2 channel keys `prior: {roas, saturation, strength}` and
 * `lift: [{spend, conversions, se, cycles}, ...]` (docs/CONTRACT.md §11.3;
 * what the model makes of them: models/poisson_sat.c), and the checks a
 * portfolio's priors make possible: a strength without a centre, and a
 * CVaR floor above the best ROAS the priors allow. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/waterfill.h"
#include "config_int.h"

#define CH(f) .off = offsetof(bd_channel_cfg_t, f), .size = sizeof(((bd_channel_cfg_t *)0)->f)

/* 0 (built in) is "not given": the channel keeps the weak built-in prior
 * (roas), its `saturation` (saturation), no pseudo-data (strength). */
static const bd_cfg_key_t PRIOR[] = {
    {"roas", BD_KEY_NUM, CH(prior.roas), .range = BD_YAML_R_GT0, .dflt = 0},
    {"saturation", BD_KEY_NUM, CH(prior.saturation), .range = BD_YAML_R_GT0, .dflt = 0,
     .check = bd_cfg_check_money},
    {"strength", BD_KEY_NUM, CH(prior.strength), .range = BD_YAML_R_GE0, .dflt = 0},
};
const bd_cfg_section_t bd_cfg_prior_keys = {"prior", PRIOR, sizeof PRIOR / sizeof *PRIOR, false};

/* One lift test as read, with the keys given. */
typedef struct {
    bd_lift_t l;
    unsigned seen;
} lift_in_t;

static void seen_bit(const bd_yaml_pair_t *pr, bool ok, void *base, unsigned bit)
{
    (void)pr;
    if (ok) ((lift_in_t *)base)->seen |= bit;
}
static void seen_spend(const bd_yaml_pair_t *pr, bool ok, void *base, void *u) { (void)u; seen_bit(pr, ok, base, 1); }
static void seen_conv(const bd_yaml_pair_t *pr, bool ok, void *base, void *u) { (void)u; seen_bit(pr, ok, base, 2); }
static void seen_se(const bd_yaml_pair_t *pr, bool ok, void *base, void *u) { (void)u; seen_bit(pr, ok, base, 4); }
static void seen_cycles(const bd_yaml_pair_t *pr, bool ok, void *base, void *u) { (void)u; seen_bit(pr, ok, base, 8); }

#define LF(f) .off = offsetof(lift_in_t, l.f), .size = sizeof(((lift_in_t *)0)->l.f)
static const bd_cfg_key_t LIFT[] = {
    {"spend", BD_KEY_NUM, LF(spend), .range = BD_YAML_R_GT0, .check = bd_cfg_check_money,
     .note = seen_spend},
    {"conversions", BD_KEY_NUM, LF(conversions), .range = BD_YAML_R_GT0, .note = seen_conv},
    {"se", BD_KEY_NUM, LF(se), .range = BD_YAML_R_GT0, .note = seen_se},
    {"cycles", BD_KEY_NUM, LF(cycles), .range = BD_YAML_R_GE1, .note = seen_cycles},
};
static const bd_cfg_section_t LIFT_KEYS = {"lift", LIFT, sizeof LIFT / sizeof *LIFT, false};

void bd_cfg_apply_lift(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what, void *base,
                       void *user)
{
    (void)user;
    bd_channel_cfg_t *ch = base;
    ch->n_lift = 0;
    yaml_node_t *v = pr->val;
    if (v->type != YAML_SEQUENCE_NODE) {
        bd_yaml_err(cx, bd_yaml_line(v),
                    "%s: expected a list of {spend, conversions, se, cycles}", what);
        return;
    }
    char path[480];
    size_t k = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++, k++) {
        yaml_node_t *item = yaml_document_get_node(cx->doc, *it);
        snprintf(path, sizeof path, "%s[%zu]", what, k);
        if (k >= BD_LIFT_MAX) {
            bd_yaml_err(cx, bd_yaml_line(item), "%s: at most %d lift tests per channel", what,
                        BD_LIFT_MAX);
            return;
        }
        lift_in_t in = {{0, 0, 0, 0}, 0};
        bd_cfg_walk(cx, item, path, &LIFT_KEYS, &in, 0, NULL);
        if (in.seen != 15) {
            if (item && item->type == YAML_MAPPING_NODE)
                bd_yaml_err(cx, bd_yaml_line(item), "%s: a lift test needs spend, conversions, se and cycles",
                            path);
            continue;
        }
        ch->lift[ch->n_lift++] = in.l;
    }
}

/* The best mean portfolio ROAS the listed channels' priors allow at the
 * smallest total the policy may spend (their prior-mean curves
 * water-filled within [min, max], pins at their pin); NAN when some listed
 * channel has no configured prior (nothing is known then). *total: that
 * total. A ROAS falls as the total grows (concave curves through 0), so
 * no total of the policy does better. */
static double prior_best_roas(const bd_portfolio_cfg_t *pc, double *total)
{
    size_t n = pc->n_channels;
    if (n == 0) return NAN;
    bd_curve_t *c = bd_xcalloc(n, sizeof *c);
    double *lo = bd_xcalloc(3 * n, sizeof(double)), *hi = lo + n, *x = hi + n;
    double slo = 0, shi = 0, best = NAN;
    bool known = true;
    for (size_t i = 0; i < n; i++) {
        const bd_channel_cfg_t *ch = &pc->channels[i];
        if (!(ch->prior.roas > 0)) known = false;
        double k = ch->prior.saturation > 0 ? ch->prior.saturation : ch->saturation;
        c[i] = (bd_curve_t){BD_CURVE_EXP, ch->prior.roas, k > 0 ? k : 1, 0};
        lo[i] = ch->has_pin ? ch->pin : ch->min;
        hi[i] = ch->has_pin ? ch->pin : ch->max;
        slo += lo[i];
        shi += hi[i];
    }
    double T = pc->p.budget_range.range ? pc->p.budget_range.min : pc->p.budget;
    T = fmin(fmax(T, slo), fmin(pc->p.budget, shi));
    if (known && T > 0) {
        bd_waterfill_solve(c, lo, hi, n, T, x);
        double v = 0;
        for (size_t i = 0; i < n; i++) v += bd_curve_value(&c[i], x[i]);
        best = v / T;
    }
    *total = T;
    free(c);
    free(lo);
    return best;
}

void bd_cfg_prior_check(bd_yaml_ctx_t *cx, const bd_portfolio_cfg_t *pc)
{
    for (size_t i = 0; i < pc->n_channels; i++) {
        const bd_channel_cfg_t *ch = &pc->channels[i];
        if (ch->prior.strength > 0 && !(ch->prior.roas > 0))
            bd_yaml_err(cx, ch->line,
                        "portfolio '%s': channel '%s': prior.strength needs prior.roas (the centre "
                        "the strength is worth)",
                        pc->name, ch->name);
    }
    if (!(pc->p.risk_cvar_floor > 0)) return;
    double T, best = prior_best_roas(pc, &T);
    if (best < pc->p.risk_cvar_floor)
        bd_yaml_err(cx, pc->p.risk_cvar_line ? pc->p.risk_cvar_line : pc->line,
                    "portfolio '%s': risk.cvar.roas_floor %.15g is above the best mean ROAS the "
                    "channels' priors allow (%.4f at a total of %.2f): no split can meet it",
                    pc->name, pc->p.risk_cvar_floor, best, T);
}
