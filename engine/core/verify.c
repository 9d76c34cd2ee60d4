/* verify.c: the independent re-check of an allocation before it is published.
 *
 * Written from the "Guardrail rules" comment in alloc.h with its own plain
 * loops: it calls nothing in alloc.c, waterfill.c or curve.c, so a bug in
 * the allocator's helpers cannot hide itself here. Every check reads the
 * final numbers only; the first violation is reported by channel name. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/verify.h"

#define V_EPS 1e-6 /* currency units: tolerance of "is a whole cent", min and max */

/* Response of one draw at spend x, from the forms in model.h. */
static double v_response(const bd_curve_t *c, double x)
{
    if (x <= 0) return 0;
    if (c->kind == BD_CURVE_EXP) return c->a * c->k * -expm1(-x / c->k);
    return c->a * pow(x, c->b);
}

/* The saturation factor -expm1(-x/k) of EXP draws, remembered per k for
 * one channel at one x: draws of a channel share a few k values, and the
 * product below is the same expression as v_response, so the results are
 * identical. Slot by exponent bits: a doubling grid never collides. */
#define V_SAT_SLOTS 8
#define V_RET_CHUNK 256
typedef struct {
    double k[V_SAT_SLOTS], f[V_SAT_SLOTS];
} v_sat_cache_t;

static void v_sat_reset(v_sat_cache_t *sc)
{
    for (int j = 0; j < V_SAT_SLOTS; j++) sc->k[j] = NAN;
}

static double v_response_cached(v_sat_cache_t *sc, const bd_curve_t *c, double x)
{
    if (x <= 0 || c->kind != BD_CURVE_EXP) return v_response(c, x);
    uint64_t bits;
    memcpy(&bits, &c->k, sizeof bits);
    unsigned j = (unsigned)(bits >> 52) % V_SAT_SLOTS;
    if (sc->k[j] != c->k) {
        sc->k[j] = c->k;
        sc->f[j] = -expm1(-x / c->k);
    }
    return c->a * c->k * sc->f[j];
}

/* Whether channel i is pinned (v2). */
static bool v_pinned(const bd_verify_input_t *in, size_t i)
{
    return in->pin && isfinite(in->pin[i]);
}

/* cap_i: the config max, or the lab cap while a lab channel is unpromoted
 * and not pinned (a pin supersedes the lab cap). */
static double v_cap(const bd_verify_input_t *in, size_t i, bool *is_lab_cap)
{
    const bd_channel_cfg_t *c = in->cfg[i];
    *is_lab_cap = false;
    if (!c->lab || (in->promoted && in->promoted[i]) || v_pinned(in, i)) return c->max;
    double lab = in->pol->lab.cap_share * in->pol->budget;
    if (!(lab >= c->min)) lab = c->min;
    if (lab < c->max) {
        *is_lab_cap = true;
        return lab;
    }
    return c->max;
}

/* Cent lattice of the rules: lower ends round up, upper ends down. */
static double v_ceil_c(double v) { return ceil(v * 100 - 1e-6); }
static double v_floor_c(double v) { return isinf(v) ? v : floor(v * 100 + 1e-6); }

/* Every spend finite, >= 0 and a whole number of cents. */
static bd_err_t v_check_values(const bd_verify_input_t *in, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < in->n; i++) {
        double x = in->x[i];
        const char *nm = in->cfg[i]->name;
        if (!isfinite(x))
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': spend %g not finite", nm, x);
        if (x < 0)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': spend %.2f negative", nm, x);
        if (fabs(x - rint(x * 100) / 100) > V_EPS)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': spend %.6f not whole cents",
                           nm, x);
    }
    return BD_OK;
}

/* Every spend within [min_i, cap_i], a pinned one equal to its pin (to
 * half a cent); the caps' sum in cents into *capsum_c. */
static bd_err_t v_check_box(const bd_verify_input_t *in, double *capsum_c, char *errbuf,
                            size_t errlen)
{
    *capsum_c = 0;
    for (size_t i = 0; i < in->n; i++) {
        double x = in->x[i], mn = in->cfg[i]->min;
        bool lab;
        double cap = v_cap(in, i, &lab);
        const char *nm = in->cfg[i]->name;
        if (x < mn - V_EPS)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': %.2f below min %.2f", nm, x, mn);
        if (x > cap + V_EPS)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': %.2f above %s %.2f", nm, x,
                           lab ? "lab cap" : "max", cap);
        if (v_pinned(in, i) && fabs(x - in->pin[i]) > 0.005 + V_EPS)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': %.2f differs from its pin %.2f",
                           nm, x, in->pin[i]);
        *capsum_c += v_floor_c(cap);
    }
    return BD_OK;
}

/* The ramp box of channel i around prev p, in cents, into [*lo, *hi]; a
 * pinned channel's is its pin. */
static void v_ramp_box(const bd_verify_input_t *in, size_t i, double p, double *lo, double *hi)
{
    if (v_pinned(in, i)) {
        *lo = *hi = rint(in->pin[i] * 100);
        return;
    }
    const bd_policy_t *pol = in->pol;
    double step = pol->max_step * p;
    if (step < 0.01 * pol->budget) step = 0.01 * pol->budget;
    bool lab;
    double cap_c = v_floor_c(v_cap(in, i, &lab)), min_c = v_ceil_c(in->cfg[i]->min);
    if (min_c < 0) min_c = 0;
    double down = v_ceil_c(p - step), up = v_floor_c(p + step);
    *lo = down > min_c ? down : min_c;
    *hi = up < cap_c ? up : cap_c;
    if (*lo > *hi) {
        if (down > cap_c) *lo = *hi = cap_c;
        else *lo = *hi = min_c;
    }
}

/* Ramp: every spend within its ramp box, when there is an allocation in
 * force and every channel's ramp box together can hold the total. */
static bd_err_t v_check_ramp(const bd_verify_input_t *in, double total_c, char *errbuf,
                             size_t errlen)
{
    if (!in->prev) return BD_OK;
    double lo_sum = 0, hi_sum = 0, lo, hi;
    for (size_t i = 0; i < in->n; i++)
        if (!isfinite(in->prev[i])) return BD_OK;
    for (size_t i = 0; i < in->n; i++) {
        v_ramp_box(in, i, in->prev[i], &lo, &hi);
        lo_sum += lo;
        hi_sum += hi;
    }
    if (!(lo_sum <= total_c && total_c <= hi_sum)) return BD_OK;
    for (size_t i = 0; i < in->n; i++) {
        v_ramp_box(in, i, in->prev[i], &lo, &hi);
        double xc = rint(in->x[i] * 100);
        if (xc < lo || xc > hi)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID,
                           "channel '%s': %.2f outside ramp [%.2f, %.2f] from %.2f",
                           in->cfg[i]->name, in->x[i], lo / 100, hi / 100, in->prev[i]);
    }
    return BD_OK;
}

static int v_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* CVaR (v2): the m = max(1, ceil(alpha S - 1e-9)) smallest returns of all
 * (S, sorted here), added smallest first, over m and the total, at least
 * the floor (1e-9 of it spared for rounding). */
static bd_err_t v_check_cvar(const bd_verify_input_t *in, double *all, size_t S, double total_c,
                             char *errbuf, size_t errlen)
{
    const bd_policy_t *pol = in->pol;
    if (!(total_c > 0)) return BD_OK;
    double mm = ceil(pol->risk_cvar_alpha * (double)S - 1e-9);
    size_t m = mm < 1 ? 1 : mm > (double)S ? S : (size_t)mm;
    qsort(all, S, sizeof *all, v_cmp);
    double sum = 0;
    for (size_t j = 0; j < m; j++) sum += all[j];
    double cvar = sum / (double)m / (total_c / 100);
    if (cvar < pol->risk_cvar_floor * (1 - 1e-9))
        return bd_errf(errbuf, errlen, BD_ERR_INVALID,
                       "risk: CVaR %.4f of the worst %.3f of the draws below the floor %.4f", cvar,
                       pol->risk_cvar_alpha, pol->risk_cvar_floor);
    return BD_OK;
}

/* Risk: unless the allocator held for risk, the share of draws whose
 * portfolio return at x is below floor * total is at most max_prob, and
 * (v2) the CVaR is at least its floor. */
static bd_err_t v_check_risk(const bd_verify_input_t *in, double total_c, char *errbuf,
                             size_t errlen)
{
    const bd_policy_t *pol = in->pol;
    size_t n = in->n;
    bool cvar = pol->risk_cvar_floor > 0;
    if (in->risk_held || !in->draws || in->n_draws == 0 || (!(pol->risk_max_prob < 1) && !cvar))
        return BD_OK;
    double floor_total = pol->risk_roas_floor * total_c / 100;
    size_t S = in->n_draws, below = 0;
    double ret[V_RET_CHUNK], *all = cvar ? bd_xmalloc(S * sizeof *all) : NULL;
    /* Draw-major sums in chunks of draws, channel by channel inside a
     * chunk so that one cache of saturation factors serves a channel:
     * each ret[] still adds the channels in index order. */
    for (size_t s0 = 0; s0 < S; s0 += V_RET_CHUNK) {
        size_t m = S - s0 < V_RET_CHUNK ? S - s0 : V_RET_CHUNK;
        for (size_t s = 0; s < m; s++) ret[s] = 0;
        for (size_t i = 0; i < n; i++) {
            v_sat_cache_t sc;
            v_sat_reset(&sc);
            for (size_t s = 0; s < m; s++)
                ret[s] += v_response_cached(&sc, &in->draws[(s0 + s) * n + i], in->x[i]);
        }
        for (size_t s = 0; s < m; s++) below += ret[s] < floor_total;
        if (all) memcpy(all + s0, ret, m * sizeof *ret);
    }
    double p = (double)below / (double)in->n_draws;
    bd_err_t rc = BD_OK;
    if (p > pol->risk_max_prob)
        rc = bd_errf(errbuf, errlen, BD_ERR_INVALID, "risk: P(ROAS < %.2f) = %.3f above max %.3f",
                     pol->risk_roas_floor, p, pol->risk_max_prob);
    else if (all)
        rc = v_check_cvar(in, all, S, total_c, errbuf, errlen);
    free(all);
    return rc;
}

/* The checks in a fixed order (values, box, total, ramp, risk); the first
 * violation is the answer. A goal's total (v2) is judged as a range only:
 * where in the range it lies is the allocator's estimate, not a bound. */
bd_err_t bd_verify_allocation(const bd_verify_input_t *in, char *errbuf, size_t errlen)
{
    if (!in || !in->pol) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "verify: no input");
    if (in->n == 0) return BD_OK;
    if (!in->x || !in->cfg) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "verify: no allocation");
    double capsum_c;
    bd_err_t rc = v_check_values(in, errbuf, errlen);
    if (rc == BD_OK) rc = v_check_box(in, &capsum_c, errbuf, errlen);
    if (rc != BD_OK) return rc;

    /* Total: min(budget, sum of caps), to half a cent; with a budget range
     * (v2) within [min, max], each end capped by the caps' sum, and the
     * ramp and risk then judge the total spent. */
    double budget_c = floor(in->pol->budget * 100 + 0.5);
    double total_c = budget_c < capsum_c ? budget_c : capsum_c;
    double sum = 0;
    for (size_t i = 0; i < in->n; i++) sum += in->x[i];
    if (in->pol->budget_range.range) {
        double min_c = floor(in->pol->budget_range.min * 100 + 0.5), sum_c = rint(sum * 100);
        if (min_c > capsum_c) min_c = capsum_c;
        if (sum_c < min_c || sum_c > total_c)
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "sum %.2f outside the budget range [%.2f, %.2f]",
                           sum, min_c / 100, total_c / 100);
        total_c = sum_c;
    } else if (fabs(sum - total_c / 100) > 0.005 + 1e-9) {
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "sum %.2f differs from total %.2f", sum,
                       total_c / 100);
    }

    rc = v_check_ramp(in, total_c, errbuf, errlen);
    if (rc == BD_OK) rc = v_check_risk(in, total_c, errbuf, errlen);
    return rc;
}
