/* bounds.c: the guardrail box of a channel and the pin rule on the cent
 * lattice (budgetd/bounds.h): config data and arithmetic only, so the
 * config checks, the allocator and `budgetd pin` share one definition. */
#include <math.h>
#include "budgetd/bounds.h"

/* cap_i of the guardrail rules: a lab channel is held small until promoted;
 * a pinned one is not (a pin supersedes the lab cap). */
double bd_bounds_chan_cap(const bd_policy_t *pol, const bd_channel_cfg_t *c, bool promoted)
{
    if (!c->lab || promoted) return c->max;
    double cap = pol->lab.cap_share * pol->budget;
    if (!(cap >= c->min)) cap = c->min;
    return cap < c->max ? cap : c->max;
}

/* Channel i's pin in cents, NAN when it has none. */
double bd_bounds_pin_cents(const double *pin, size_t i)
{
    return pin && isfinite(pin[i]) ? rint(pin[i] * 100) : NAN;
}

/* min_c and cap_c of channel c under the rules (a pinned channel's cap is
 * its max). */
void bd_bounds_chan_box_c(const bd_policy_t *pol, const bd_channel_cfg_t *c, bool promoted,
                         bool pinned, double *min_c, double *cap_c)
{
    *min_c = fmax(bd_bounds_lo_cents(c->min), 0);
    *cap_c = bd_bounds_hi_cents(pinned ? c->max : bd_bounds_chan_cap(pol, c, promoted));
}

/* The range of the total in cents given the caps' sum (alloc.h): with a
 * fixed budget both ends are min(budget, sum of caps); with a budget range
 * (v2) its min and max, each capped by the caps' sum. */
void bd_bounds_total_range_c(const bd_policy_t *pol, double sumcap, double *lo, double *hi)
{
    *hi = fmin(floor(pol->budget * 100 + 0.5), sumcap);
    *lo = pol->budget_range.range ? fmin(floor(pol->budget_range.min * 100 + 0.5), sumcap) : *hi;
}

/* The pin rule of alloc.h, in cents. */
bd_err_t bd_bounds_check_pins(const bd_policy_t *pol, const bd_channel_cfg_t *const *cfg, size_t n,
                             const double *pin, const bool *promoted, char *errbuf, size_t errlen)
{
    double sumcap = 0, pins = 0, mins = 0, caps = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        double pc = bd_bounds_pin_cents(pin, i), mn, cp;
        bd_bounds_chan_box_c(pol, cfg[i], promoted && promoted[i], isfinite(pc), &mn, &cp);
        sumcap += cp;
        if (!isfinite(pc)) {
            mins += mn;
            caps += cp;
            continue;
        }
        any = true;
        if (pc < mn)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': pin %.2f below min %.2f",
                           cfg[i]->name, pc / 100, mn / 100);
        if (pc > cp)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': pin %.2f above max %.2f",
                           cfg[i]->name, pc / 100, cp / 100);
        pins += pc;
    }
    if (!any) return BD_OK;
    double tlo, thi;
    bd_bounds_total_range_c(pol, sumcap, &tlo, &thi);
    bool range = pol->budget_range.range;
    if (pins + mins > thi)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID,
                       "pins %.2f plus the other channels' mins %.2f exceed the %s %.2f",
                       pins / 100, mins / 100, range ? "budget max" : "total", thi / 100);
    if (pins + caps < tlo)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID,
                       "pins %.2f plus the other channels' caps %.2f fall short of the %s %.2f",
                       pins / 100, caps / 100, range ? "budget min" : "total", tlo / 100);
    return BD_OK;
}

/* The arms rule of docs/CONTRACT.md §11.4, shared by `budgetd check` and
 * `budgetd pin` (v2): arms arm[0..n) of one channel, their pins in force
 * pin[] (NAN: none), must split every amount the channel may get, [lo, hi]
 * (its pin at both ends when pinned): their mins sum to at most lo, their
 * maxes to at least hi, and their pins pass the pin rule with lo and with hi
 * as a fixed budget (an infinite end is not checked). pinned names the ends
 * "pin" in the sum messages. The first failure goes to errbuf. */
bd_err_t bd_bounds_check_arms(const bd_policy_t *pol, const bd_channel_cfg_t *const *arm, size_t n,
                              const double *pin, double lo, double hi, bool pinned, char *errbuf,
                              size_t errlen)
{
    double mins = 0, maxes = 0;
    bool any = false;
    for (size_t j = 0; j < n; j++) {
        mins += arm[j]->min;
        maxes += arm[j]->max;
        any |= pin && isfinite(pin[j]);
    }
    if (mins > lo)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID,
                       "its arms' mins sum to %.15g > its %s %.15g (an amount it may get could not be split)",
                       mins, pinned ? "pin" : "min", lo);
    if (maxes < hi)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID,
                       "its arms' maxes sum to %.15g < its %s %.15g (an amount it may get could not be "
                       "spent: lower its max or raise an arm's)",
                       maxes, pinned ? "pin" : "max", hi);
    char msg[256];
    for (int end = 0; end < 2 && any; end++) {
        bd_policy_t sub = *pol;
        sub.budget = end ? hi : lo;
        sub.budget_range.range = false;
        if (isfinite(sub.budget) && bd_bounds_check_pins(&sub, arm, n, pin, NULL, msg, sizeof msg) != BD_OK)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "infeasible arm pins at its %s %.15g: %s",
                           end ? "max" : "min", sub.budget, msg);
    }
    return BD_OK;
}
