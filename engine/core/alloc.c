/* alloc.c: one decision = Thompson-sampling water-filling under guardrails.
 *
 * Order of a decision (rules in alloc.h; its place in the data path:
 * docs/ARCHITECTURE.md):
 *   draws -> lab gate -> caps and total range -> box (ramp or config, pins)
 *   -> total (the budget, or the goal's total, goal.h) -> fault holds ->
 *   delivery caps -> factory (average of S water-fills of total - explore) -> lab (explore
 *   share by posterior spread) -> cents -> risk bound -> min_change -> stats.
 * All guardrail arithmetic is in whole cents held in doubles (exact below
 * 2^53 cents, and INFINITY stands for "uncapped"), so the box and the total
 * hold exactly, not up to rounding; the cent helpers, the initial split and
 * the pin rule are in alloc_cents.c (alloc_int.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "alloc_int.h"
#include "budgetd/common.h"
#include "budgetd/goal.h"
#include "budgetd/stats.h"
#include "budgetd/waterfill.h"

#define RISK_STEPS 12   /* bisection steps on t: resolution 1/4096 of the move */

/* The one spelling of each bound (the record's "bound" field, what-if
 * tables), indexed by bd_bound_t. */
static const char *const bound_names[BD_BOUND__COUNT] = {
    [BD_BOUND_NONE] = "none", [BD_BOUND_MIN] = "min", [BD_BOUND_MAX] = "max",
    [BD_BOUND_RAMP] = "ramp", [BD_BOUND_RISK] = "risk", [BD_BOUND_DELIVERY] = "delivery",
    [BD_BOUND_PIN] = "pin", [BD_BOUND_FAULT] = "fault", [BD_BOUND_BUDGET] = "budget",
};

/* Name of b from the table; "none" for a value outside the enum. */
const char *bd_bound_name(bd_bound_t b)
{
    return (unsigned)b < BD_BOUND__COUNT ? bound_names[b] : bound_names[BD_BOUND_NONE];
}

/* Inverse of bd_bound_name over the same table. */
bool bd_bound_from_name(const char *name, bd_bound_t *out)
{
    for (unsigned b = 0; name && b < BD_BOUND__COUNT; b++)
        if (strcmp(name, bound_names[b]) == 0) {
            *out = (bd_bound_t)b;
            return true;
        }
    return false;
}

/* Memo of -expm1(-x/k) for one channel at a fixed x, keyed by k: an EXP
 * draw's k comes from a small grid (poisson_sat: sat * 2^d, d in -3..3), so
 * over S draws the same few k recur. Slots are picked by the low exponent
 * bits, which tell a doubling grid apart; a collision is only a miss. The
 * cached factor is the one bd_curve_value multiplies by, so every value is
 * bit for bit what bd_curve_value returns. */
#define EMEMO 8
typedef struct {
    double k[EMEMO], e[EMEMO];
} ememo_t;

static void ememo_reset(ememo_t *m)
{
    for (int j = 0; j < EMEMO; j++) m->k[j] = NAN; /* NaN never equals a key */
}

/* bd_curve_value(c, x) through the memo (x fixed for m). */
static inline double memo_value(ememo_t *m, const bd_curve_t *c, double x)
{
    if (c->kind != BD_CURVE_EXP || x <= 0) return bd_curve_value(c, x);
    uint64_t bits;
    memcpy(&bits, &c->k, sizeof bits);
    unsigned slot = (unsigned)(bits >> 52) & (EMEMO - 1);
    if (m->k[slot] != c->k) {
        m->k[slot] = c->k;
        m->e[slot] = -expm1(-x / c->k);
    }
    return c->a * c->k * m->e[slot];
}

/* Fraction of the S draws whose portfolio return at x (currency) is below
 * thresh; v (S x n, optional) receives every f_s,i(x_i). Channel-major so
 * one memo serves a channel's S draws; tot[s] still adds channels in index
 * order, so the sums are those of the draw-major loop. tot: S scratch. */
static double risk_p(const bd_curve_t *draws, size_t S, size_t n, const double *x,
                     double thresh, double *v, double *tot)
{
    for (size_t s = 0; s < S; s++) tot[s] = 0;
    for (size_t i = 0; i < n; i++) {
        ememo_t m;
        ememo_reset(&m);
        for (size_t s = 0; s < S; s++) {
            double f = memo_value(&m, &draws[s * n + i], x[i]);
            if (v) v[s * n + i] = f;
            tot[s] += f;
        }
    }
    size_t below = 0;
    for (size_t s = 0; s < S; s++) below += tot[s] < thresh;
    return (double)below / (double)S;
}

/* CVaR of the portfolio ROAS (alloc.h): the tail mean (stats.h) of the
 * returns tot[0..S) over total (currency); NAN at total 0. q: S scratch. */
static double cvar_roas(const double *tot, size_t S, double alpha, double total, double *q)
{
    if (!(total > 0) || S == 0) return NAN;
    memcpy(q, tot, S * sizeof *q);
    return bd_stats_tail_mean(q, S, alpha) / total;
}

/* Whether the risk bound holds given p, the share of draws below the
 * floor, and the draws' returns tot at a total of total_c cents: p <=
 * max_prob and, with a CVaR floor (v2), the CVaR at least it (at total 0
 * nothing is at risk). *cv: the CVaR, NAN when off or at total 0. */
static bool risk_ok(const bd_policy_t *pol, double p, const double *tot, size_t S, double total_c,
                    double *q, double *cv)
{
    *cv = NAN;
    if (pol->risk_cvar_floor > 0) *cv = cvar_roas(tot, S, pol->risk_cvar_alpha, total_c / 100, q);
    return p <= pol->risk_max_prob && !(*cv < pol->risk_cvar_floor);
}

/* Spreads E (real cents) over the room hi - xr in proportion to w; what a
 * channel cannot take is redistributed; with no positive weight left, the
 * remainder goes equally to whatever still has room. */
static void explore_fill(double *xr, const double *hi, const double *w, size_t n, double E)
{
    for (int pass = 0; pass < 2 && E > 1e-9; pass++) {
        for (size_t round = 0; round <= n && E > 1e-9; round++) {
            double wsum = 0;
            for (size_t i = 0; i < n; i++) {
                double wi = pass ? 1.0 : w[i];
                if (hi[i] - xr[i] > 1e-9 && wi > 0) wsum += wi;
            }
            if (!(wsum > 0)) break;
            bool overflow = false;
            for (size_t i = 0; i < n; i++) {
                double wi = pass ? 1.0 : w[i];
                if (hi[i] - xr[i] > 1e-9 && wi > 0 && E * wi / wsum >= hi[i] - xr[i]) overflow = true;
            }
            if (!overflow) {
                for (size_t i = 0; i < n; i++) {
                    double wi = pass ? 1.0 : w[i];
                    if (hi[i] - xr[i] > 1e-9 && wi > 0) xr[i] += E * wi / wsum;
                }
                return;
            }
            double given = 0;
            for (size_t i = 0; i < n; i++) {
                double wi = pass ? 1.0 : w[i], room = hi[i] - xr[i];
                if (room > 1e-9 && wi > 0 && E * wi / wsum >= room) {
                    xr[i] = hi[i];
                    given += room;
                }
            }
            E -= given;
        }
    }
}

/* Lab gate: enough evidence and a narrow enough 90% interval of the draws'
 * low-spend ROAS a, relative to its mean. Uses a rather than ROAS at the
 * allocation because the allocation depends on the gate (the cap). */
static bool lab_gate(const bd_alloc_input_t *in, size_t i, const bd_curve_t *draws, size_t S,
                     double *q)
{
    const bd_policy_t *pol = in->pol;
    size_t n = in->n;
    double ev = in->ops->evidence ? in->ops->evidence(&in->states[i]) : 0;
    if (!(ev >= pol->lab.min_conversions)) return false;
    double mean = 0;
    for (size_t s = 0; s < S; s++) {
        q[s] = draws[s * n + i].a;
        mean += q[s];
    }
    mean /= (double)S;
    if (!(mean > 0)) return false;
    double lo, hi;
    bd_stats_quantiles_90(q, S, &lo, &hi);
    return (hi - lo) / mean <= pol->lab.max_rel_width;
}

/* What holds a channel besides the rules' box (ws_t.kind, in doubles). */
enum { K_FREE = 0, K_PIN, K_HOLD, K_DLV };

/* Per-decision scratch, one allocation. */
typedef struct {
    double *min_c, *cap_c, *lo_c, *hi_c, *lo, *hi, *xs, *xr, *xc, *fin, *safe_c, *prev_c;
    double *rlo_c, *rhi_c; /* the ramp box, kept when the total made build_box drop it */
    double *cur, *key, *w, *moved, *kind, *wf, *v, *q, *tot, *gs;
    size_t *order;
} ws_t;

/* Lays the workspace out in out->ws, grown first when it is too small. */
static void ws_init(ws_t *w, size_t n, size_t S, bd_alloc_output_t *out)
{
    size_t nd = 19 * n + BD_WATERFILL_SCRATCH(n) + S * n + 2 * S + BD_GOAL_SCRATCH(n);
    size_t bytes = nd * sizeof(double) + n * sizeof(size_t);
    if (out->ws_cap < bytes) {
        free(out->ws);
        out->ws = bd_xmalloc(bytes);
        out->ws_cap = bytes;
    }
    double *p = out->ws;
    double **arr[] = {&w->min_c, &w->cap_c, &w->lo_c, &w->hi_c, &w->lo, &w->hi, &w->xs, &w->xr,
                      &w->xc, &w->fin, &w->safe_c, &w->prev_c, &w->cur, &w->key, &w->w, &w->moved,
                      &w->kind, &w->rlo_c, &w->rhi_c};
    for (size_t j = 0; j < sizeof arr / sizeof arr[0]; j++, p += n) *arr[j] = p;
    w->wf = p; p += BD_WATERFILL_SCRATCH(n);
    w->v = p; p += S * n;
    w->q = p; p += S;
    w->tot = p; p += S;
    w->gs = p; p += BD_GOAL_SCRATCH(n);
    w->order = (size_t *)(void *)p;
}

/* ROAS of one draw at spend x (currency) given fx = f(x): f(x)/x, or the
 * ROAS at zero spend of model.h. */
static double draw_roas(const bd_curve_t *c, double x, double fx)
{
    return x > 0 ? fx / x : bd_curve_roas_zero(c);
}

/* Which bound holds channel i at xc cents (1 cent tolerance): a pin or a
 * fault hold first (nothing else can move them), then the risk move, the
 * learned delivery cap, and the rules' bounds. */
static bd_bound_t which_bound(const ws_t *w, size_t i, bool ramp, bool budget_cut, bool risk)
{
    double x = w->fin[i];
    if (w->kind[i] == K_PIN) return BD_BOUND_PIN;
    if (w->kind[i] == K_HOLD) return BD_BOUND_FAULT;
    if (risk) return BD_BOUND_RISK;
    if (w->kind[i] == K_DLV && x >= w->hi_c[i] - 1) return BD_BOUND_DELIVERY;
    if (isfinite(w->cap_c[i]) && x >= w->cap_c[i] - 1) return BD_BOUND_MAX;
    if (x <= w->min_c[i] + 1) return BD_BOUND_MIN;
    if (budget_cut && (x < w->rlo_c[i] || x > w->rhi_c[i])) return BD_BOUND_BUDGET;
    if (ramp && (x <= w->lo_c[i] + 1 || (isfinite(w->hi_c[i]) && x >= w->hi_c[i] - 1)))
        return BD_BOUND_RAMP;
    return BD_BOUND_NONE;
}

/* Fault holds (soft, alloc.h): each held channel fixed at its hold clipped
 * to its box; all of them dropped again when the box then cannot hold the
 * total. xs and xr keep the box meanwhile (free until the factory). */
static void apply_holds(const bd_alloc_input_t *in, ws_t *w, double total_c)
{
    if (!in->hold) return;
    size_t n = in->n;
    double slo = 0, shi = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        w->xs[i] = w->lo_c[i];
        w->xr[i] = w->hi_c[i];
        if (w->kind[i] == K_FREE && isfinite(in->hold[i])) {
            double h = fmin(fmax(rint(in->hold[i] * 100), w->lo_c[i]), w->hi_c[i]);
            w->lo_c[i] = w->hi_c[i] = h;
            w->kind[i] = K_HOLD;
            any = true;
        }
        slo += w->lo_c[i];
        shi += w->hi_c[i];
    }
    if (!any || (slo <= total_c && total_c <= shi)) return;
    for (size_t i = 0; i < n; i++)
        if (w->kind[i] == K_HOLD) {
            w->lo_c[i] = w->xs[i];
            w->hi_c[i] = w->xr[i];
            w->kind[i] = K_FREE;
        }
}

/* Delivery caps (soft, alloc.h): the upper end of each capped channel that
 * nothing else fixes comes down to max(lo, cap), never below the ramp's low
 * end; while the ends then sum below the total, the lowered ones are raised
 * back toward their box in equal shares (index order, whole cents). key
 * keeps each box's upper end meanwhile. */
static void apply_dcaps(const bd_alloc_input_t *in, ws_t *w, double total_c)
{
    if (!in->dcap) return;
    size_t n = in->n, m = 0;
    double shi = 0;
    for (size_t i = 0; i < n; i++) {
        w->key[i] = w->hi_c[i];
        double dc = in->dcap[i];
        if (w->kind[i] == K_FREE && dc >= 0 && dc < INFINITY) {
            double d = fmax(w->lo_c[i], bd_bounds_hi_cents(dc));
            if (d < w->hi_c[i]) {
                w->hi_c[i] = d;
                w->kind[i] = K_DLV;
                m++;
            }
        }
        shi += w->hi_c[i];
    }
    double miss = total_c - shi;
    while (miss > 0 && m > 0) {
        double share = ceil(miss / (double)m);
        size_t left = 0;
        for (size_t i = 0; i < n && miss > 0; i++) {
            if (w->kind[i] != K_DLV || !(w->hi_c[i] < w->key[i])) continue;
            double add = fmin(fmin(share, miss), w->key[i] - w->hi_c[i]);
            w->hi_c[i] += add;
            miss -= add;
            if (w->hi_c[i] < w->key[i]) left++;
            else w->kind[i] = K_FREE; /* back at its box: the cap does not bind */
        }
        m = left;
    }
}

/* Caps, the total's range [*tlo_c, *thi_c] and the box of the guardrail
 * rules into w (pins included); the soft bounds (fault holds, delivery
 * caps) come once the total is known. ramp tells whether the ramp box is in
 * force, budget_cut whether it was dropped because it could not hold the
 * total (the box is then kept in rlo_c/rhi_c). With a fixed budget the
 * range is the one total; with a budget range (v2) it is the part of the
 * range the ramp boxes can hold (the total moves only as far as the
 * channels' ramps allow), or the whole range when they can hold none of
 * it. Fails on infeasible guardrails or pins. */
typedef struct {
    double tlo, thi;     /* the total's range for this decision (ramp applied) */
    double glo, ghi;     /* the whole range of the rules (a fixed budget: the one total) */
    double budget, sumcap;
} totals_t;

static bd_err_t build_box(const bd_alloc_input_t *in, const bool *promoted, ws_t *w,
                          totals_t *t, bool *ramp, bool *budget_cut, char *errbuf, size_t errlen)
{
    double *tlo_c = &t->tlo, *thi_c = &t->thi, *budget_c = &t->budget;
    const bd_policy_t *pol = in->pol;
    size_t n = in->n;
    double B = pol->budget, sumcap = 0, summin = 0;
    if (!(B >= 0) || !isfinite(B)) return bd_errf(errbuf, errlen, BD_ERR_INVALID, "budget %g invalid", B);
    for (size_t i = 0; i < n; i++) {
        double pc = bd_bounds_pin_cents(in->pin, i);
        w->kind[i] = isfinite(pc) ? K_PIN : K_FREE;
        bd_bounds_chan_box_c(pol, in->cfg[i], promoted[i], isfinite(pc), &w->min_c[i], &w->cap_c[i]);
        if (!(w->min_c[i] <= w->cap_c[i]))
            return bd_errf(errbuf, errlen, BD_ERR_INVALID, "channel '%s': min %.2f above cap %.2f",
                           in->cfg[i]->name, w->min_c[i] / 100, w->cap_c[i] / 100);
        sumcap += w->cap_c[i];
        summin += w->min_c[i];
    }
    *budget_c = floor(B * 100 + 0.5);
    bd_bounds_total_range_c(pol, sumcap, tlo_c, thi_c);
    if (summin > *thi_c)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "sum of mins %.2f above budget %.2f",
                       summin / 100, *thi_c / 100);
    if (summin > *tlo_c) *tlo_c = summin;
    t->glo = *tlo_c;
    t->ghi = *thi_c;
    t->sumcap = sumcap;
    if (in->pin) {
        bd_err_t rc = bd_bounds_check_pins(pol, in->cfg, n, in->pin, promoted, errbuf, errlen);
        if (rc != BD_OK) return rc;
    }
    *ramp = *budget_cut = false;
    if (in->prev) {
        double slo = 0, shi = 0;
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            double p = in->prev[i];
            if (!isfinite(p)) { ok = false; break; }
            double step = fmax(pol->max_step * p, 0.01 * B);
            double rl = bd_bounds_lo_cents(p - step), rh = bd_bounds_hi_cents(p + step);
            double l = fmax(rl, w->min_c[i]), h = fmin(rh, w->cap_c[i]);
            if (l > h) l = h = rl > w->cap_c[i] ? w->cap_c[i] : w->min_c[i];
            if (w->kind[i] == K_PIN) l = h = bd_bounds_pin_cents(in->pin, i);
            w->lo_c[i] = l;
            w->hi_c[i] = h;
            slo += l;
            shi += h;
        }
        double a = fmax(*tlo_c, slo), b = fmin(*thi_c, shi);
        *ramp = ok && a <= b;
        *budget_cut = ok && !*ramp;
        if (*ramp) {
            *tlo_c = a;
            *thi_c = b;
        }
        if (*budget_cut) {
            memcpy(w->rlo_c, w->lo_c, n * sizeof(double));
            memcpy(w->rhi_c, w->hi_c, n * sizeof(double));
        }
    }
    if (!*ramp)
        for (size_t i = 0; i < n; i++) {
            bool pinned = w->kind[i] == K_PIN;
            w->lo_c[i] = pinned ? bd_bounds_pin_cents(in->pin, i) : w->min_c[i];
            w->hi_c[i] = pinned ? w->lo_c[i] : w->cap_c[i];
        }
    if (pol->budget_range.range && !*ramp) {
        /* the box itself (pins at their pin) may hold less of the range */
        double slo = 0, shi = 0;
        for (size_t i = 0; i < n; i++) {
            slo += w->lo_c[i];
            shi += w->hi_c[i];
        }
        *tlo_c = fmax(*tlo_c, slo);
        *thi_c = fmin(*thi_c, shi);
    }
    return BD_OK;
}

/* prev as cents (its sum into *sum_c) when it is a valid allocation under
 * the box and a total within [lo_c, hi_c] (a fixed budget: the total). */
static bool prev_valid(const bd_alloc_input_t *in, ws_t *w, double lo_c, double hi_c,
                       double *sum_c)
{
    if (!in->prev) return false;
    double sum = 0;
    for (size_t i = 0; i < in->n; i++) {
        double p = in->prev[i], c = rint(p * 100);
        if (!isfinite(p) || fabs(p - c / 100) > 1e-6 || c < w->lo_c[i] || c > w->hi_c[i]) return false;
        w->prev_c[i] = c;
        sum += c;
    }
    *sum_c = sum;
    return sum >= lo_c && sum <= hi_c;
}

/* The goal's total (v2, alloc.h "Goals") in cents within [t->tlo, t->thi]
 * by goal.h, searched on the box as the soft bounds will leave it (fault
 * holds fixed, delivery caps lowering upper ends, as apply_holds and
 * apply_dcaps compute them) when that box can hold part of the range, so
 * that the total stays in that part and neither is dropped; else on the
 * box alone. *marginal: the mean marginal there. Uses w->lo, w->hi. */
static double goal_total(const bd_alloc_input_t *in, const bd_curve_t *draws, size_t S, ws_t *w,
                         const totals_t *t, double *marginal)
{
    size_t n = in->n;
    double slo = 0, shi = 0;
    for (size_t i = 0; i < n; i++) {
        double l = w->lo_c[i], h = w->hi_c[i];
        if (w->kind[i] == K_FREE && in->hold && isfinite(in->hold[i])) {
            l = h = fmin(fmax(rint(in->hold[i] * 100), l), h);
        } else if (w->kind[i] == K_FREE && in->dcap && in->dcap[i] >= 0 && in->dcap[i] < INFINITY) {
            h = fmin(h, fmax(l, bd_bounds_hi_cents(in->dcap[i])));
        }
        w->lo[i] = l;
        w->hi[i] = h;
        slo += l;
        shi += h;
    }
    double a = fmax(t->tlo, slo), b = fmin(t->thi, shi);
    if (!(a <= b)) {
        memcpy(w->lo, w->lo_c, n * sizeof(double));
        memcpy(w->hi, w->hi_c, n * sizeof(double));
        a = t->tlo;
        b = t->thi;
    }
    for (size_t i = 0; i < n; i++) {
        w->lo[i] /= 100;
        w->hi[i] /= 100;
    }
    return bd_goal_total(draws, S, n, w->lo, w->hi, a, b, bd_goal_marginal_target(in->pol),
                         marginal, w->gs);
}

/* Factory and lab: the average of S water-fills of (total - explore) over the
 * box, plus the explore share by posterior spread of a; into w->xc (cents). */
static void factory_and_lab(const bd_alloc_input_t *in, const bd_curve_t *draws, size_t S, ws_t *w,
                            double total_c)
{
    size_t n = in->n;
    double slo = 0, E = in->pol->explore_share * total_c;
    for (size_t i = 0; i < n; i++) {
        slo += w->lo_c[i];
        w->lo[i] = w->lo_c[i] / 100;
        w->hi[i] = w->hi_c[i] / 100;
        w->xr[i] = 0;
    }
    E = isfinite(E) && E > 0 ? floor(E + 0.5) : 0;
    if (E > total_c - slo) E = total_c - slo;
    double F = (total_c - E) / 100;
    bd_waterfill_sum(draws, S, w->lo, w->hi, n, F, w->xr, w->xs, w->wf);
    for (size_t i = 0; i < n; i++) w->xr[i] = w->xr[i] * 100 / (double)S;
    if (E > 0) {
        for (size_t i = 0; i < n; i++) {
            double m = 0, m2 = 0;
            for (size_t s = 0; s < S; s++) m += draws[s * n + i].a;
            m /= (double)S;
            for (size_t s = 0; s < S; s++) {
                double d = draws[s * n + i].a - m;
                m2 += d * d;
            }
            w->w[i] = S > 1 ? sqrt(m2 / (double)(S - 1)) : 0;
        }
        explore_fill(w->xr, w->hi_c, w->w, n, E);
    }
    bd_alloc_round_cents(w->xr, w->lo_c, w->hi_c, n, total_c, w->xc, w->key, w->order);
}

/* Risk bound on w->fin (starting as the candidate w->xc): moves toward the
 * safe reference until the bound holds (risk_ok), or holds. Returns p at
 * the result and its CVaR in *cv. */
static double apply_risk(const bd_alloc_input_t *in, const bd_curve_t *draws, size_t S, ws_t *w,
                         double total_c, bool pvalid, double p, bool *held, bool *use_prev,
                         double *cv)
{
    size_t n = in->n;
    const bd_policy_t *pol = in->pol;
    double thresh = pol->risk_roas_floor * total_c / 100, cs;
    const double *ref = in->safe ? in->safe : in->prev;
    if (ref) {
        for (size_t i = 0; i < n; i++) w->key[i] = isfinite(ref[i]) ? ref[i] * 100 : 0;
        memcpy(w->w, w->key, n * sizeof(double));
        bd_alloc_level_fill(w->w, w->lo_c, w->hi_c, n, total_c, w->safe_c, w->xr, w->key, w->order);
    } else {
        memcpy(w->safe_c, w->xc, n * sizeof(double));
    }
    for (size_t i = 0; i < n; i++) w->cur[i] = w->safe_c[i] / 100;
    double ps = risk_p(draws, S, n, w->cur, thresh, NULL, w->tot);
    if (!risk_ok(pol, ps, w->tot, S, total_c, w->q, &cs)) {
        *held = true;
        *cv = NAN;
        if (pvalid) { memcpy(w->fin, w->prev_c, n * sizeof(double)); *use_prev = true; }
        else memcpy(w->fin, w->safe_c, n * sizeof(double));
        return -1; /* recomputed by the caller */
    }
    /* the bound fails at t = 0 and holds at t = 1: keep that invariant
     * while halving [t0, t1]. */
    double t0 = 0, t1 = 1;
    memcpy(w->fin, w->safe_c, n * sizeof(double));
    p = ps;
    *cv = cs;
    for (int it = 0; it < RISK_STEPS; it++) {
        double t = 0.5 * (t0 + t1);
        for (size_t i = 0; i < n; i++) w->xr[i] = (1 - t) * w->xc[i] + t * w->safe_c[i];
        bd_alloc_round_cents(w->xr, w->lo_c, w->hi_c, n, total_c, w->xs, w->key, w->order);
        for (size_t i = 0; i < n; i++) w->cur[i] = w->xs[i] / 100;
        double pt = risk_p(draws, S, n, w->cur, thresh, NULL, w->tot), ct;
        if (risk_ok(pol, pt, w->tot, S, total_c, w->q, &ct)) {
            t1 = t;
            p = pt;
            *cv = ct;
            memcpy(w->fin, w->xs, n * sizeof(double));
        } else {
            t0 = t;
        }
    }
    return p;
}

/* Fills the per-channel statistics from v (S x n values at w->cur). */
static void channel_stats(const bd_curve_t *draws, size_t S, size_t n, ws_t *w,
                          bd_alloc_output_t *out)
{
    for (size_t i = 0; i < n; i++) {
        double m = 0;
        for (size_t s = 0; s < S; s++) {
            w->q[s] = draw_roas(&draws[s * n + i], w->cur[i], w->v[s * n + i]);
            m += w->q[s];
        }
        out->mean_roas[i] = m / (double)S;
        bd_stats_quantiles_90(w->q, S, &out->roas_lo[i], &out->roas_hi[i]);
    }
}

bd_err_t bd_alloc_decide(const bd_alloc_input_t *in, bd_alloc_output_t *out, char *errbuf,
                         size_t errlen)
{
    if (!in || !out || !in->pol)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "alloc: missing input or output");
    size_t n = in->n;
    const bd_policy_t *pol = in->pol;
    out->total = 0;
    out->capped = out->kept = out->risk_held = false;
    out->p_below_floor = 0;
    out->marginal = out->cvar = NAN;
    out->cvar_bound = false;
    if (n == 0) { out->n_draws = 0; return BD_OK; }
    if (!in->cfg || !in->ops || !in->ops->sample || !in->states || !in->priors || !in->rng ||
        !out->x || !out->bound || !out->mean_roas || !out->roas_lo || !out->roas_hi ||
        !out->promoted)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "alloc: missing input or output array");
    if (pol->samples < 1)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "alloc: samples %d below 1", pol->samples);
    size_t S = (size_t)pol->samples;

    if (out->draws_cap < S * n) {
        free(out->draws);
        out->draws = bd_xmalloc(S * n * sizeof *out->draws);
        out->draws_cap = S * n;
    }
    out->n_draws = S;
    bd_curve_t *draws = out->draws;
    for (size_t s = 0; s < S; s++)
        for (size_t i = 0; i < n; i++) {
            in->ops->sample(&in->states[i], &in->priors[i], in->rng, &draws[s * n + i]);
            if (in->mult) draws[s * n + i].a *= in->mult[i];
        }

    ws_t w;
    ws_init(&w, n, S, out);
    for (size_t i = 0; i < n; i++) {
        bool pr = in->promoted ? in->promoted[i] : false;
        if (in->cfg[i]->lab && !pr) pr = lab_gate(in, i, draws, S, w.q);
        out->promoted[i] = pr;
    }
    totals_t tt = {0, 0, 0, 0, 0, 0};
    bool ramp = false, budget_cut = false;
    bd_err_t rc = build_box(in, out->promoted, &w, &tt, &ramp, &budget_cut, errbuf, errlen);
    if (rc != BD_OK) return rc;
    const bool goal = pol->goal.kind != BD_GOAL_BUDGET;
    double gmarg = NAN, total_c = goal ? goal_total(in, draws, S, &w, &tt, &gmarg) : tt.thi;
    apply_holds(in, &w, total_c);
    apply_dcaps(in, &w, total_c);
    out->total = total_c / 100;
    out->capped = goal ? tt.sumcap < tt.budget && total_c >= tt.sumcap : total_c < tt.budget;

    factory_and_lab(in, draws, S, &w, total_c);

    double thresh = pol->risk_roas_floor * total_c / 100, cv;
    for (size_t i = 0; i < n; i++) w.cur[i] = w.xc[i] / 100;
    double p = risk_p(draws, S, n, w.cur, thresh, w.v, w.tot);
    bool ok = risk_ok(pol, p, w.tot, S, total_c, w.q, &cv);
    out->cvar_bound = pol->risk_cvar_floor > 0 && !(cv >= pol->risk_cvar_floor);
    double psum_c = 0;
    bool pvalid = goal ? prev_valid(in, &w, tt.glo, tt.ghi, &psum_c)
                       : prev_valid(in, &w, total_c, total_c, &psum_c);
    bool use_prev = false, held = false, changed = false;
    memcpy(w.fin, w.xc, n * sizeof(double));
    if (!ok) {
        p = apply_risk(in, draws, S, &w, total_c, pvalid, p, &held, &use_prev, &cv);
        changed = true;
    }
    for (size_t i = 0; i < n; i++) w.moved[i] = changed && fabs(w.fin[i] - w.xc[i]) > 1;

    if (!held && pvalid) {
        double d = 0;
        for (size_t i = 0; i < n; i++) d += fabs(w.fin[i] - w.prev_c[i]);
        bool small = total_c > 0 ? d / total_c < pol->min_change : d == 0;
        if (small) {
            for (size_t i = 0; i < n; i++) w.cur[i] = in->prev[i];
            double tc = goal ? psum_c : total_c, tp = goal ? pol->risk_roas_floor * psum_c / 100 : thresh;
            double pp = p, cp;
            bool okp = true;
            if (d != 0) {
                pp = risk_p(draws, S, n, w.cur, tp, NULL, w.tot);
                okp = risk_ok(pol, pp, w.tot, S, tc, w.q, &cp);
            }
            if (okp) {
                memcpy(w.fin, w.prev_c, n * sizeof(double));
                memset(w.moved, 0, n * sizeof(double));
                use_prev = out->kept = true;
                changed = true;
            }
        }
    }
    out->risk_held = held;
    for (size_t i = 0; i < n; i++) {
        out->x[i] = use_prev ? in->prev[i] : w.fin[i] / 100;
        w.cur[i] = out->x[i];
    }
    if (goal && use_prev) {
        /* the allocation in force stays: its own total (within the range) */
        thresh = pol->risk_roas_floor * psum_c / 100;
        out->total = psum_c / 100;
        if (psum_c != total_c) gmarg = bd_goal_mean_marginal(draws, S, n, w.lo, w.hi, out->total, w.gs);
    }
    out->marginal = gmarg;
    if (changed) {
        p = risk_p(draws, S, n, w.cur, thresh, w.v, w.tot);
        risk_ok(pol, p, w.tot, S, goal && use_prev ? psum_c : total_c, w.q, &cv);
    }
    out->p_below_floor = p;
    out->cvar = cv;
    channel_stats(draws, S, n, &w, out);
    for (size_t i = 0; i < n; i++)
        out->bound[i] = which_bound(&w, i, ramp, budget_cut, w.moved[i] != 0);
    return BD_OK;
}

void bd_alloc_output_free(bd_alloc_output_t *out)
{
    if (!out) return;
    free(out->draws);
    free(out->ws);
    out->draws = NULL;
    out->ws = NULL;
    out->n_draws = out->draws_cap = out->ws_cap = 0;
}
