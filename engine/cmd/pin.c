/* pin.c: `budgetd pin P C AMOUNT` and `budgetd pin P C --clear`
 * (docs/CONTRACT.md §7.3; nested arms v2 §11.4), called by ops.c. A pin is
 * set only when every pin that would then be in force (config pins,
 * run-time pins, this one) is feasible at every level it acts on, by the
 * rules of budgetd/bounds.h the allocator and `budgetd check` apply:
 *
 *  - the portfolio's channels (an arm is not one of them) with its budget
 *    and bounds (bd_bounds_check_pins);
 *  - the arms of the channel concerned (the arm's own channel, or the
 *    channel pinned or cleared when it has arms) with every amount that
 *    channel may get, its [min, max] or its pin (bd_bounds_check_arms).
 *
 * An arm is named C:A (its event name, the name the daemon matches) or C/A
 * (its Redis field arm:C/A, as `status` shows it); the pin is stored under
 * C:A. A name C:X under a channel C that has arms but no arm X is refused:
 * it would pin a channel of its own, not an arm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/bounds.h"
#include "pin.h"

/* What the pins would be after the change: c set to want (NAN: none). */
typedef struct {
    const bd_portfolio_cfg_t *pc;
    const bd_policy_t *pol;
    const bd_redis_chan_t *rp; /* the run-time pins in Redis */
    size_t nrp;
    const char *c;
    double want;
} pin_state_t;

/* The pin of channel or arm name (config cfg) in force after the change:
 * the change's for c, else its run-time pin, else its config pin, else NAN. */
static double pin_in_force(const pin_state_t *s, const bd_channel_cfg_t *cfg, const char *name)
{
    if (!strcmp(name, s->c)) return s->want;
    for (size_t q = 0; q < s->nrp; q++)
        if (!strcmp(s->rp[q].name, name)) return s->rp[q].spend;
    return cfg->has_pin ? cfg->pin : NAN;
}

/* The portfolio's channels by the pin rule: those the config lists, those
 * in the allocation in force, and c unless it is an arm; each with its
 * config (listed, else the policy's default) and its pin after the change. */
static bd_err_t pin_check_channels(const pin_state_t *s, const bd_redis_alloc_t *al, bool c_is_arm, char *msg,
                                   size_t msglen)
{
    size_t listed = s->pc ? s->pc->n_channels : 0, cap = listed + al->n_ch + 1, n = 0;
    const char **cand = bd_xcalloc(cap, sizeof *cand), **names = bd_xcalloc(cap, sizeof *names);
    for (size_t k = 0; k < listed; k++) cand[k] = s->pc->channels[k].name;
    for (size_t k = 0; k < al->n_ch; k++) cand[listed + k] = al->ch[k].name;
    cand[cap - 1] = c_is_arm ? NULL : s->c;
    const bd_channel_cfg_t **cfgs = bd_xcalloc(cap, sizeof *cfgs);
    double *pins = bd_xcalloc(cap, sizeof *pins);
    for (size_t k = 0; k < cap; k++) {
        size_t j = 0;
        while (cand[k] && j < n && strcmp(names[j], cand[k])) j++;
        if (!cand[k] || j < n) continue; /* listed and in force: once */
        names[n] = cand[k];
        cfgs[n] = bd_config_channel(s->pc, s->pol, cand[k]);
        pins[n] = pin_in_force(s, cfgs[n], cand[k]);
        n++;
    }
    bd_err_t rc = bd_bounds_check_pins(s->pol, cfgs, n, pins, NULL, msg, msglen);
    free(cand);
    free(names);
    free(cfgs);
    free(pins);
    return rc;
}

/* The arms of listed channel ch after the change: they must split every
 * amount ch may get (its pin in force, else its [min, max]). */
static bd_err_t pin_check_arms(const pin_state_t *s, const bd_channel_cfg_t *ch, char *msg, size_t msglen)
{
    double own = pin_in_force(s, ch, ch->name);
    bool pinned = isfinite(own);
    double lo = pinned ? own : ch->min, hi = pinned ? own : ch->max;
    const bd_channel_cfg_t **cfgs = bd_xcalloc(ch->n_arms, sizeof *cfgs);
    double *pins = bd_xcalloc(ch->n_arms, sizeof *pins);
    for (size_t j = 0; j < ch->n_arms; j++) {
        cfgs[j] = &ch->arms[j];
        pins[j] = pin_in_force(s, cfgs[j], cfgs[j]->name);
    }
    char why[400];
    bd_err_t rc = bd_bounds_check_arms(s->pol, cfgs, ch->n_arms, pins, lo, hi, pinned, why, sizeof why);
    if (rc != BD_OK) snprintf(msg, msglen, "channel '%s': %s", ch->name, why);
    free(cfgs);
    free(pins);
    return rc;
}

/* The name arg pins, into out: C:A for an arm named C:A or C/A, else arg.
 * *parent: the listed channel whose arm it is (NULL: not an arm). Returns
 * 0, or -1 after saying on stderr that arg names no arm of a channel with
 * arms (C/X, or C:X with X not listed under C). */
static int pin_resolve(const bd_portfolio_cfg_t *pc, const char *p, const char *arg, char *out, size_t cap,
                       const bd_channel_cfg_t **parent)
{
    snprintf(out, cap, "%s", arg);
    char *slash = strchr(out, '/');
    if (slash) *slash = ':';
    *parent = NULL;
    for (size_t i = 0; pc && !slash && i < pc->n_channels; i++)
        if (!strcmp(pc->channels[i].name, out)) return 0; /* a listed channel named C:X */
    for (size_t i = 0; pc && i < pc->n_channels && !*parent; i++)
        for (size_t j = 0; j < pc->channels[i].n_arms && !*parent; j++)
            if (!strcmp(pc->channels[i].arms[j].name, out)) *parent = &pc->channels[i];
    for (size_t i = 0; pc && i < pc->n_channels && !*parent; i++) {
        const bd_channel_cfg_t *ch = &pc->channels[i];
        size_t len = strlen(ch->name);
        if (strncmp(out, ch->name, len) || out[len] != ':') continue;
        if (ch->n_arms || slash) {
            fprintf(stderr,
                    "budgetd pin: channel '%s' of %s has no arm '%s' in the config: name one of its arms "
                    "(C:A or C/A) or the channel itself\n", ch->name, p, out + len + 1);
            return -1;
        }
    }
    if (slash && !*parent) {
        fprintf(stderr, "budgetd pin: '%s' names no arm of a listed channel of %s\n", arg, p);
        return -1;
    }
    return 0;
}

/* The refusal of an infeasible change (msg: the rule that failed); exit 1. */
static int pin_refused(const pin_state_t *s, const char *p, const bd_channel_cfg_t *parent, bool arms, bool clear,
                       double amount, const char *msg)
{
    const char *what = parent ? "arm" : "channel";
    if (clear && !arms)
        fprintf(stderr, "budgetd pin: refused: without its run-time pin, channel '%s' of %s falls back to "
                        "its config pin and the pins become infeasible: %s; nothing changed\n", s->c, p, msg);
    else if (clear)
        fprintf(stderr, "budgetd pin: refused: without its run-time pin, %s '%s' of %s falls back to %s and "
                        "its arms cannot split every amount: %s; nothing changed\n",
                what, s->c, p, isnan(s->want) ? "no pin" : "its config pin", msg);
    else if (!arms)
        fprintf(stderr, "budgetd pin: refused: pinning channel '%s' of %s at %.2f is infeasible with its "
                        "budget and bounds: %s; nothing changed\n", s->c, p, amount, msg);
    else if (parent)
        fprintf(stderr, "budgetd pin: refused: pinning arm '%s' of %s at %.2f is infeasible with the amounts "
                        "its channel may get: %s; nothing changed (an arm's pin must fit every amount of "
                        "its channel: raise the channel's min, or pin the channel too)\n", s->c, p, amount, msg);
    else
        fprintf(stderr, "budgetd pin: refused: pinning channel '%s' of %s at %.2f leaves an amount its arms "
                        "cannot split: %s; nothing changed\n", s->c, p, amount, msg);
    return BD_EXIT_RUNTIME;
}

/* Sets or removes the pin once checked; prints what the daemon will do. */
static int pin_apply(bd_redis_t *r, const pin_state_t *s, const char *p, const bd_channel_cfg_t *parent,
                     const bd_channel_cfg_t *own, bool clear, double amount, const char *prefix)
{
    char err[BD_ERRBUF];
    const char *c = s->c;
    if (clear) {
        int existed;
        if (bd_redis_clear_pin(r, p, c, &existed, err, sizeof err) != BD_OK) {
            fprintf(stderr, "budgetd pin: %s\n", err);
            return BD_EXIT_RUNTIME;
        }
        if (isnan(s->want)) printf("cleared the pin of %s %s %s: the engine allocates it again\n", p,
                                   parent ? "arm" : "channel", c);
        else printf("cleared the run-time pin of %s %s %s: its config pin %.2f applies again\n", p,
                    parent ? "arm" : "channel", c, s->want);
        return BD_EXIT_OK;
    }
    if (bd_redis_set_pin(r, p, c, amount, err, sizeof err) != BD_OK) {
        fprintf(stderr, "budgetd pin: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    if (parent)
        printf("pinned %s arm %s at %.2f: every decision from the daemon's next poll on gives it\n"
               "  exactly that and splits the rest of channel %s's amount among its other arms (prefix %s)\n",
               p, c, amount, parent->name, prefix);
    else
        printf("pinned %s channel %s at %.2f: every decision from the daemon's next poll on gives it\n"
               "  exactly that and optimises the rest around it (prefix %s)\n", p, c, amount, prefix);
    if (own->n_arms) printf("  its arms split the %.2f among them (their own pins stay in force)\n", amount);
    return BD_EXIT_OK;
}

/* See pin.h. */
int bd_pin_cmd(bd_redis_t *r, const bd_config_t *cfg, const char *p, const char *arg, const char *amount_arg,
               const char *prefix)
{
    char err[BD_ERRBUF], msg[512], c[2 * BD_NAME_MAX + 2];
    bool clear = !amount_arg;
    double amount = NAN;
    if (!clear) {
        char *end;
        amount = strtod(amount_arg, &end);
        if (end == amount_arg || *end || !isfinite(amount) || amount < 0) {
            fprintf(stderr, "budgetd pin: AMOUNT must be a number >= 0, got '%s'\n", amount_arg);
            return BD_EXIT_USAGE;
        }
        amount = rint(amount * 100) / 100;
    }
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(cfg, p);
    if (!pc && !cfg->has_default_budget) {
        fprintf(stderr, "budgetd pin: portfolio '%s' is not in %s (and it has no defaults.budget)\n", p,
                cfg->path);
        return BD_EXIT_RUNTIME;
    }
    const bd_channel_cfg_t *parent;
    if (pin_resolve(pc, p, arg, c, sizeof c, &parent) != 0) return BD_EXIT_RUNTIME;
    const bd_policy_t *pol = pc ? &pc->p : &cfg->defaults;
    bd_redis_alloc_t al;
    bd_redis_chan_t *rp = NULL;
    size_t nrp = 0;
    if (bd_redis_get_alloc(r, p, 0, &al, err, sizeof err) != BD_OK ||
        bd_redis_get_pins(r, p, &rp, &nrp, err, sizeof err) != BD_OK) {
        bd_redis_alloc_free(&al);
        fprintf(stderr, "budgetd pin: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    bool had = false;
    for (size_t q = 0; q < nrp; q++) had |= !strcmp(rp[q].name, c);
    const bd_channel_cfg_t *own = bd_config_channel(pc, pol, c);
    pin_state_t s = {pc, pol, rp, nrp, c, clear ? (own->has_pin ? own->pin : NAN) : amount};
    bd_err_t rc = pin_check_channels(&s, &al, parent != NULL, msg, sizeof msg);
    bool arms = false;
    const bd_channel_cfg_t *split = parent ? parent : own->n_arms ? own : NULL;
    if (rc == BD_OK && split) {
        rc = pin_check_arms(&s, split, msg, sizeof msg);
        arms = rc != BD_OK;
    }
    bd_redis_alloc_free(&al);
    int code;
    if (clear && !had) {
        fprintf(stderr, "budgetd pin: %s '%s' of %s has no run-time pin: nothing to clear\n",
                parent ? "arm" : "channel", c, p);
        code = BD_EXIT_RUNTIME;
    } else if (rc != BD_OK) {
        code = pin_refused(&s, p, parent, arms, clear, amount, msg);
    } else {
        code = pin_apply(r, &s, p, parent, own, clear, amount, prefix);
    }
    free(rp);
    return code;
}
