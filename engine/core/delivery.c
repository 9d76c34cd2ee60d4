/* delivery.c: a channel's learned delivery limit (delivery.h). */
#include <math.h>
#include <string.h>
#include "budgetd/delivery.h"

void bd_delivery_init(bd_delivery_t *d)
{
    memset(d, 0, sizeof *d);
    d->ratio = NAN;
}

/* E[Z | Z >= c] - mu in units of sd for Z ~ N(mu, sd^2), a = (c - mu) / sd:
 * the inverse Mills ratio phi(a) / (1 - Phi(a)); its asymptote far out. */
static double mills(double a)
{
    if (a > 8) return a + 1.0 / a;
    double q = 0.5 * erfc(a / sqrt(2.0));
    return exp(-0.5 * a * a) / sqrt(2.0 * M_PI) / q;
}

/* One more observation z of the log cap (exact: the cycle's own cap; else
 * an imputed one, which moves the level but not the variance). */
static void dlv_update(bd_delivery_t *d, double z, bool exact)
{
    double w = fmin(d->w + 1.0, BD_DLV_MEMORY), eta = 1.0 / w, dz = z - d->mu;
    d->mu += eta * dz;
    if (exact) {
        d->s2 = (1.0 - eta) * (d->s2 + eta * dz * dz);
        d->s2 = fmin(fmax(d->s2, BD_DLV_SD_MIN * BD_DLV_SD_MIN), BD_DLV_SD_MAX * BD_DLV_SD_MAX);
    }
    d->w = w;
}

/* A cap is learned at log level mu from w observations. */
static void dlv_start(bd_delivery_t *d, double mu, double w)
{
    d->capped = 1;
    d->mu = mu;
    d->s2 = BD_DLV_SD0 * BD_DLV_SD0;
    d->w = w;
    d->under = 0;
    d->run_log = 0;
    d->since_probe = 0;
    d->lifted = 0;
    d->probe = 0;
}

/* Over-delivery bookkeeping of ratio r. */
static void dlv_over(bd_delivery_t *d, double r, double tol)
{
    if (r > 1.0 + tol) {
        d->over++;
        d->over_total++;
        d->excess += r - 1.0;
    } else {
        d->over = 0;
        d->excess = 0;
    }
}

/* A capped channel spent s of x (not dark): the estimate learns, and a
 * probe spent in full counts toward a lift. */
static void dlv_capped(bd_delivery_t *d, double x, double s)
{
    double cap = exp(d->mu), sd = sqrt(d->s2);
    bool probed = d->probe > 0 && x > cap * exp(0.5 * d->probe);
    if (s < x * (1.0 - BD_DLV_EXACT)) {
        dlv_update(d, log(s), true);
        d->lifted = 0;
        return;
    }
    double a = (log(x) - d->mu) / sd;
    if (a > -2.0) dlv_update(d, d->mu + sd * mills(a), false);
    if (!probed) {
        d->lifted = 0;
        return;
    }
    if (++d->lifted >= BD_DLV_LIFT) {
        double keep_over = d->excess;
        uint32_t over = d->over, total = d->over_total;
        double ratio = d->ratio;
        bd_delivery_init(d);
        d->ratio = ratio;
        d->excess = keep_over;
        d->over = over;
        d->over_total = total;
    }
}

void bd_delivery_observe(bd_delivery_t *d, double x, double s, double tol, double floor, bool learn)
{
    d->ratio = x > 0 && isfinite(s) ? s / x : NAN;
    if (!(x >= floor) || !(x > 0) || !isfinite(s) || s < 0) {
        dlv_over(d, 1.0, tol);
        return;
    }
    double r = s / x;
    dlv_over(d, r, tol);
    if (!learn) return;
    if (r < BD_DLV_DARK) {
        d->dark++;
        d->under = 0;
        d->run_log = 0;
        d->lifted = 0;
        if (d->dark >= BD_DLV_DARK_RUN && !(d->capped && d->mu <= log(floor)))
            dlv_start(d, log(floor), 1.0);
        return;
    }
    d->dark = 0;
    if (d->capped) {
        dlv_capped(d, x, s);
        return;
    }
    if (r < 1.0 - tol) {
        d->under++;
        d->run_log += log(s);
        if (d->under >= BD_DLV_RUN) dlv_start(d, d->run_log / d->under, d->under);
    } else {
        d->under = 0;
        d->run_log = 0;
    }
}

void bd_delivery_none(bd_delivery_t *d)
{
    d->ratio = NAN;
    d->over = 0;
    d->excess = 0;
}

double bd_delivery_bound(bd_delivery_t *d, double probe_min)
{
    d->probe = 0;
    if (!d->capped) return INFINITY;
    double cap = exp(d->mu), sd = sqrt(d->s2);
    d->since_probe++;
    if (d->lifted == 0 && d->since_probe < BD_DLV_PROBE_EVERY) return cap;
    d->since_probe = 0;
    d->probe = fmax(BD_DLV_PROBE_STEP, 2.0 * sd) * (double)(1u << (d->lifted < 4 ? d->lifted : 4));
    return fmax(cap * exp(d->probe), cap + probe_min);
}

double bd_delivery_cap(const bd_delivery_t *d)
{
    return d->capped ? exp(d->mu) : 0;
}

bool bd_delivery_overspent(const bd_delivery_t *d, double limit)
{
    return limit > 0 && d->over > 0 && d->excess > limit;
}
