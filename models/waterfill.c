/* waterfill.c: the exact maximiser of sum_i f_i(x_i) over a box and a total.
 *
 * KKT for concave separable f: there is a multiplier l with
 * x_i = clip(inv_marginal_i(l), lo_i, hi_i) and sum x_i = budget. We search
 * in u = ln l, where every channel's x_i(u) is computed in log space (no
 * exp/log overflow for tiny k or b close to 1):
 *   EXP:   x_i(u) = k_i (L_i - u),            L_i = ln a_i
 *   POWER: x_i(u) = exp(g_i (L_i - u)),       L_i = ln(a_i b_i), g_i = 1/(1-b_i)
 * S(u) = sum_i clip(x_i(u)) is continuous and non-increasing. For EXP it is
 * piecewise linear with breakpoints where a channel leaves lo or reaches hi:
 * a Newton step from the right free set lands exactly on the root, and the
 * fallback brackets the root between adjacent breakpoints, where linear
 * interpolation is exact. Interpolated answers are the convex combination of
 * x at the bracket ends, which keeps the box and makes the sum exact up to
 * rounding. The engine calls this S times per decision (hot path): no
 * allocation, no sort. */
#include <math.h>
#include <stdlib.h>
#include "budgetd/waterfill.h"
#include "budgetd/common.h"

#define WF_STACK_N 64

/* Per channel log-space parameters: L (ln a or ln ab; -inf when a <= 0) and
 * the slope g (k for EXP, 1/(1-b) for POWER). b is kept inside (0,1) so a
 * malformed draw cannot make a channel convex. */
static void wf_prepare(const bd_curve_t *c, size_t n, double *L, double *g)
{
    for (size_t i = 0; i < n; i++) {
        if (c[i].kind == BD_CURVE_EXP) {
            L[i] = c[i].a > 0 ? log(c[i].a) : -INFINITY;
            g[i] = c[i].k > 0 ? c[i].k : 1e-12;
        } else {
            double b = c[i].b;
            if (!(b > 1e-9)) b = 1e-9;
            if (b > 1 - 1e-9) b = 1 - 1e-9;
            L[i] = c[i].a > 0 ? log(c[i].a * b) : -INFINITY;
            g[i] = 1.0 / (1.0 - b);
        }
    }
}

/* Channel i's spend at multiplier e^u, clipped to its box. */
static inline double wf_x(const bd_curve_t *c, double L, double g, double lo, double hi, double u)
{
    double v;
    if (L == -INFINITY) return lo;
    if (c->kind == BD_CURVE_EXP) v = g * (L - u);
    else v = exp(g * (L - u));
    if (!(v > lo)) return lo; /* also catches NaN from inf - inf */
    return v < hi ? v : hi;
}

/* wf_x for an EXP curve without branches (the selection search's hot loop):
 * the same value, since g > 0 makes g (L - u) -inf or NaN where L = -inf,
 * and both fail v > lo. */
static inline double wf_x_exp(double L, double g, double lo, double hi, double u)
{
    double v = g * (L - u);
    return v > lo ? (v < hi ? v : hi) : lo;
}

/* wf_sum for all-EXP curves (same additions in the same order). */
static double wf_sum_exp(const double *L, const double *g, const double *lo, const double *hi,
                         size_t n, double u)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += wf_x_exp(L[i], g[i], lo[i], hi[i], u);
    return s;
}

/* x = theta x(ua) + (1-theta) x(ub), theta chosen so the sum is budget.
 * Requires sa = S(ua) >= budget >= sb = S(ub). */
static void wf_interp(const bd_curve_t *c, const double *L, const double *g, const double *lo,
                      const double *hi, size_t n, double budget, double ua, double sa, double ub,
                      double sb, double *x)
{
    double th = sa > sb ? (budget - sb) / (sa - sb) : 1.0;
    if (th < 0) th = 0;
    if (th > 1) th = 1;
    for (size_t i = 0; i < n; i++) {
        double xa = wf_x(&c[i], L[i], g[i], lo[i], hi[i], ua);
        double xb = wf_x(&c[i], L[i], g[i], lo[i], hi[i], ub);
        double v = xb + th * (xa - xb); /* exactly xb when both ends agree */
        x[i] = v < lo[i] ? lo[i] : (v > hi[i] ? hi[i] : v);
    }
}

/* wf_interp for all-EXP curves (the same values, without branches). */
static void wf_interp_exp(const double *L, const double *g, const double *lo, const double *hi,
                          size_t n, double budget, double ua, double sa, double ub, double sb,
                          double *x)
{
    double th = sa > sb ? (budget - sb) / (sa - sb) : 1.0;
    if (th < 0) th = 0;
    if (th > 1) th = 1;
    for (size_t i = 0; i < n; i++) {
        double xa = wf_x_exp(L[i], g[i], lo[i], hi[i], ua);
        double xb = wf_x_exp(L[i], g[i], lo[i], hi[i], ub);
        double v = xb + th * (xa - xb);
        x[i] = v < lo[i] ? lo[i] : (v > hi[i] ? hi[i] : v);
    }
}

/* The degenerate exits shared by both solvers. Returns true when x is set:
 * sum(hi) <= budget (x = hi), sum(lo) >= budget (x = lo; the caller built an
 * infeasible box, the sum then exceeds budget), or the channels that earn
 * something cannot absorb the budget even at hi: the rest goes to the
 * zero-return channels, where it is indifferent (equally among uncapped ones,
 * else in proportion to room). */
static bool wf_trivial(const double *L, const double *lo, const double *hi, size_t n,
                       double budget, double *x)
{
    double slo = 0, shi = 0, sinf = 0;
    for (size_t i = 0; i < n; i++) {
        slo += lo[i];
        shi += hi[i];
        sinf += L[i] == -INFINITY ? lo[i] : hi[i];
    }
    if (shi <= budget) {
        for (size_t i = 0; i < n; i++) x[i] = hi[i];
        return true;
    }
    if (slo >= budget) {
        for (size_t i = 0; i < n; i++) x[i] = lo[i];
        return true;
    }
    if (sinf > budget) return false;
    double rest = budget - sinf, room = 0;
    size_t uncapped = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = L[i] == -INFINITY ? lo[i] : hi[i];
        if (L[i] == -INFINITY) {
            if (isinf(hi[i])) uncapped++;
            else room += hi[i] - lo[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (L[i] != -INFINITY) continue;
        if (uncapped) {
            if (isinf(hi[i])) x[i] += rest / (double)uncapped;
        } else if (room > 0) {
            x[i] += rest * (hi[i] - lo[i]) / room;
        }
    }
    return true;
}

/* Closed form for all-EXP curves, exact part: bracket the root between
 * adjacent breakpoints by a selection search (each step evaluates S at a
 * median-of-3 breakpoint inside the bracket and discards the side that
 * cannot hold the root: O(n) per step, O(log n) steps expected, no sort and
 * no allocation), then interpolate, which is exact because S is linear
 * between breakpoints. [ua, ub] is the bracket found so far (S(ua) >= budget
 * > S(ub)); infinite ends are replaced by the outermost breakpoints. */
static void wf_exp_select(const bd_curve_t *c, const double *lo, const double *hi, size_t n,
                          double budget, double *x, const double *L, const double *g,
                          double *cand, double ua, double sa, double ub, double sb)
{
    size_t m = 0;
    double cmin = INFINITY, cmax = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (L[i] == -INFINITY) continue;
        cand[m++] = L[i] - lo[i] / g[i];
        if (isfinite(hi[i])) cand[m++] = L[i] - hi[i] / g[i];
    }
    for (size_t j = 0; j < m; j++) { /* fmin/fmax without the call: no NaN among them */
        cmin = cand[j] < cmin ? cand[j] : cmin;
        cmax = cand[j] > cmax ? cand[j] : cmax;
    }
    if (isinf(ub) && cmax > ua) { /* at the top breakpoint everything is at lo */
        ub = cmax;
        sb = wf_sum_exp(L, g, lo, hi, n, ub);
        if (sb >= budget) { ua = ub; sa = sb; ub = INFINITY; }
    }
    if (isinf(ua) && cmin < ub) {
        ua = cmin;
        sa = wf_sum_exp(L, g, lo, hi, n, ua);
        if (sa < budget) { ub = ua; sb = sa; ua = -INFINITY; }
    }
    if (isinf(ua)) {
        /* Below the lowest breakpoint every capped channel sits at hi and
         * every uncapped one is free: S is linear with slope -sum k there. */
        double kinf = 0;
        for (size_t i = 0; i < n; i++)
            if (L[i] != -INFINITY && isinf(hi[i])) kinf += g[i];
        double u = kinf > 0 ? ub - (budget - sb) / kinf : ub;
        for (size_t i = 0; i < n; i++) x[i] = wf_x(&c[i], L[i], g[i], lo[i], hi[i], u);
        return;
    }
    if (isinf(ub)) { /* rounding at the top breakpoint: everything at lo */
        for (size_t i = 0; i < n; i++) x[i] = wf_x(&c[i], L[i], g[i], lo[i], hi[i], ua);
        return;
    }
    for (;;) {
        size_t k = 0;
        for (size_t j = 0; j < m; j++) { /* branch-free: which side is hard to predict */
            double cj = cand[j];
            cand[k] = cj;
            k += (size_t)((cj > ua) & (cj < ub));
        }
        m = k;
        if (m == 0) break;
        double p0 = cand[0], p1 = cand[m / 2], p2 = cand[m - 1], piv;
        if ((p0 <= p1 && p1 <= p2) || (p2 <= p1 && p1 <= p0)) piv = p1;
        else if ((p1 <= p0 && p0 <= p2) || (p2 <= p0 && p0 <= p1)) piv = p0;
        else piv = p2;
        double s = wf_sum_exp(L, g, lo, hi, n, piv);
        if (s >= budget) { ua = piv; sa = s; }
        else { ub = piv; sb = s; }
    }
    wf_interp_exp(L, g, lo, hi, n, budget, ua, sa, ub, sb, x);
}

/* Closed form for all-EXP curves, fast part: semi-smooth Newton on the
 * piecewise linear S, starting at *uh when finite (bd_waterfill_sum: the
 * previous draw's root), else at the root with every channel free. Where
 * every channel is clipped (S flat: no slope) the step goes to the nearest
 * breakpoint on the side the root lies, where a clipped channel frees, and
 * on from there along that channel's slope. Where the set of free channels is right, a step lands
 * exactly on the root, so it usually ends in 2-4 passes over the channels
 * (before the jump, 4 in 5 solves of a 64-sample decision fell through to
 * the selection search: the first step found every channel clipped).
 * Steps that would leave the bracket fall back to regula falsi; after
 * WF_NEWTON_MAX passes the exact selection search takes over from the
 * bracket found. *uh: the root Newton landed on, NAN when the search did. */
#define WF_NEWTON_MAX 8
static void wf_exp(const bd_curve_t *c, const double *lo, const double *hi, size_t n,
                   double budget, double *x, const double *L, const double *g, double *cand,
                   double *uh)
{
    double ua = -INFINITY, sa = INFINITY, ub = INFINITY, sb = -INFINITY, u = *uh;
    *uh = NAN;
    if (!isfinite(u)) {
        double G = 0, GL = 0;
        for (size_t i = 0; i < n; i++)
            if (L[i] != -INFINITY) { G += g[i]; GL += g[i] * L[i]; }
        u = (GL - budget) / G; /* G > 0: wf_trivial saw an earning channel */
    }
    for (int it = 0; it < WF_NEWTON_MAX && isfinite(u); it++) {
        double s = 0, k = 0;
        for (size_t i = 0; i < n; i++) { /* branch-free: free iff not clipped */
            double v = g[i] * (L[i] - u), cv = v > lo[i] ? v : lo[i];
            cv = cv < hi[i] ? cv : hi[i];
            s += cv;
            k += g[i] * (double)((v > lo[i]) & (v < hi[i]));
        }
        if (s >= budget) { ua = u; sa = s; }
        else { ub = u; sb = s; }
        if (fabs(s - budget) <= 1e-13 * budget) { /* the root, up to rounding */
            *uh = u;
            for (size_t i = 0; i < n; i++) x[i] = wf_x(&c[i], L[i], g[i], lo[i], hi[i], u);
            return;
        }
        bool up = s > budget;
        double un;
        if (k > 0) {
            un = u + (s - budget) / k;
        } else { /* all clipped on that side: to the nearest breakpoint */
            double bp = up ? INFINITY : -INFINITY, kb = 0;
            for (size_t i = 0; i < n; i++) {
                if (L[i] == -INFINITY) continue;
                double v = g[i] * (L[i] - u);
                double b = up ? (v > hi[i] ? L[i] - hi[i] / g[i] : INFINITY)
                              : (v < lo[i] ? L[i] - lo[i] / g[i] : -INFINITY);
                if (b == bp) kb += g[i];
                else if (up ? b < bp : b > bp) { bp = b; kb = g[i]; }
            }
            un = isfinite(bp) && kb > 0 ? bp + (s - budget) / kb : NAN;
        }
        if (!(un > ua && un < ub)) {
            if (!(isfinite(ua) && isfinite(ub))) break;
            un = ua + (sa - budget) * (ub - ua) / (sa - sb);
            if (!(un > ua && un < ub)) break;
        }
        u = un;
    }
    wf_exp_select(c, lo, hi, n, budget, x, L, g, cand, ua, sa, ub, sb);
}

/* Any curves. Safeguarded Newton in u from a typical marginal: S is smooth
 * between breakpoints (dx_i/du = -k_i for EXP, -g_i x_i for POWER), so it
 * usually ends in a handful of passes. A step that leaves the bracket
 * [ua, ub] (S(ua) >= budget > S(ub)) is replaced by a doubling step while an
 * end is still open, then by bisection to the resolution of a double, and the
 * answer is the interpolation between the bracket ends. newton = false gives
 * plain expansion + bisection (the cross-check). */
static void wf_bisect(const bd_curve_t *c, const double *lo, const double *hi, size_t n,
                      double budget, double *x, const double *L, const double *g, bool newton)
{
    double u = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (L[i] == -INFINITY) continue;
        double xi = budget / (double)n;
        if (xi < lo[i]) xi = lo[i];
        if (xi > hi[i]) xi = hi[i];
        if (xi <= 0) xi = 1e-9 + fabs(budget) * 1e-9;
        u += c[i].kind == BD_CURVE_EXP ? L[i] - xi / g[i] : L[i] - log(xi) / g[i];
        cnt++;
    }
    u = cnt ? u / (double)cnt : 0;
    double ua = -INFINITY, sa = INFINITY, ub = INFINITY, sb = -INFINITY, step = 1;
    for (int it = 0; it < 5000 && isfinite(u); it++) {
        double s = 0, k = 0;
        for (size_t i = 0; i < n; i++) {
            double xi = wf_x(&c[i], L[i], g[i], lo[i], hi[i], u);
            s += xi;
            if (newton && xi > lo[i] && xi < hi[i])
                k += c[i].kind == BD_CURVE_EXP ? g[i] : g[i] * xi;
        }
        if (s >= budget) { ua = u; sa = s; }
        else { ub = u; sb = s; }
        if (newton && fabs(s - budget) <= 1e-13 * budget) {
            for (size_t i = 0; i < n; i++) x[i] = wf_x(&c[i], L[i], g[i], lo[i], hi[i], u);
            return;
        }
        double un = newton && k > 0 ? u + (s - budget) / k : NAN;
        if (!(un > ua && un < ub)) {
            if (isinf(ub)) { un = ua + step; step *= 2; }
            else if (isinf(ua)) { un = ub - step; step *= 2; }
            else {
                un = 0.5 * (ua + ub);
                if (!(un > ua && un < ub)) break; /* bracket at double resolution */
            }
        }
        u = un;
    }
    if (isfinite(ua) && isfinite(ub)) wf_interp(c, L, g, lo, hi, n, budget, ua, sa, ub, sb, x);
    else {
        double uu = isfinite(ua) ? ua : ub;
        for (size_t i = 0; i < n; i++) x[i] = wf_x(&c[i], L[i], g[i], lo[i], hi[i], uu);
    }
}

/* One solve; *uh as wf_exp's (NAN: no start known; only EXP uses it). */
static void wf_solve(const bd_curve_t *curves, const double *lo, const double *hi, size_t n,
                     double budget, double *x, double *scratch, double *uh)
{
    double *L = scratch, *g = scratch + n, *cand = scratch + 2 * n;
    wf_prepare(curves, n, L, g);
    if (wf_trivial(L, lo, hi, n, budget, x)) return;
    bool all_exp = true;
    for (size_t i = 0; i < n; i++) all_exp = all_exp && curves[i].kind == BD_CURVE_EXP;
    if (all_exp) wf_exp(curves, lo, hi, n, budget, x, L, g, cand, uh);
    else wf_bisect(curves, lo, hi, n, budget, x, L, g, true);
}

void bd_waterfill_scratch(const bd_curve_t *curves, const double *lo, const double *hi,
                                size_t n, double budget, double *x, double *scratch)
{
    if (n == 0) return;
    double uh = NAN;
    wf_solve(curves, lo, hi, n, budget, x, scratch, &uh);
}

/* Draws of one posterior have nearby roots: each solve starts where the
 * previous one ended (measured on the bench_replay workload: a fifth fewer
 * passes than starting with every channel free; the same allocations). */
void bd_waterfill_sum(const bd_curve_t *rows, size_t S, const double *lo, const double *hi,
                      size_t n, double budget, double *sum, double *x, double *scratch)
{
    if (n == 0) return;
    double uh = NAN;
    for (size_t s = 0; s < S; s++) {
        wf_solve(&rows[s * n], lo, hi, n, budget, x, scratch, &uh);
        for (size_t i = 0; i < n; i++) sum[i] += x[i];
    }
}

/* Public entry: scratch on the stack for the usual portfolio sizes, on the
 * heap only above WF_STACK_N channels. */
void bd_waterfill_solve(const bd_curve_t *curves, const double *lo, const double *hi, size_t n,
                        double budget, double *x)
{
    double stack[BD_WATERFILL_SCRATCH(WF_STACK_N)];
    double *scratch = n <= WF_STACK_N ? stack : bd_xmalloc(BD_WATERFILL_SCRATCH(n) * sizeof(double));
    bd_waterfill_scratch(curves, lo, hi, n, budget, x, scratch);
    if (scratch != stack) free(scratch);
}

/* The bisection solver for any curves, also for EXP (tests cross-check it
 * against the closed form). */
void bd_waterfill_bisect(const bd_curve_t *curves, const double *lo, const double *hi,
                               size_t n, double budget, double *x)
{
    if (n == 0) return;
    double *scratch = bd_xmalloc(BD_WATERFILL_SCRATCH(n) * sizeof(double));
    double *L = scratch, *g = scratch + n;
    wf_prepare(curves, n, L, g);
    if (!wf_trivial(L, lo, hi, n, budget, x)) wf_bisect(curves, lo, hi, n, budget, x, L, g, false);
    free(scratch);
}
