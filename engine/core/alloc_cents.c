/* alloc_cents.c: the allocator's arithmetic on the cent lattice
 * (alloc_int.h): rounding to whole cents and the level fill; and the
 * initial split (alloc.h). The guardrail boxes and the pin rule are
 * engine/config/bounds.c (budgetd/bounds.h), shared with the config checks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "alloc_int.h"
#include "budgetd/common.h"

/* Integral cents in [lo,hi] summing to total, nearest to the real cents xr
 * by largest remainder (ties to the lower index, so it is deterministic).
 * Needs sum lo <= total <= sum hi; otherwise it gets as close as the box
 * allows. key and order are n-entry scratch. A one-cent step that a double
 * cannot hold (past 2^53) counts as no room, so the loop ends for any
 * finite input (a config cannot get there: BD_MONEY_MAX). */
void bd_alloc_round_cents(const double *xr, const double *lo, const double *hi, size_t n,
                          double total, double *out, double *key, size_t *order)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double f = floor(xr[i] + 1e-7);
        if (f < lo[i]) f = lo[i];
        if (f > hi[i]) f = hi[i];
        out[i] = f;
        sum += f;
    }
    double r = total - sum;
    if (r == 0) return;
    double dir = r > 0 ? 1 : -1;
    for (size_t i = 0; i < n; i++) {
        key[i] = dir * (xr[i] - out[i]);
        order[i] = i;
    }
    for (size_t i = 1; i < n; i++) { /* stable insertion sort, key descending */
        size_t o = order[i], j = i;
        while (j > 0 && key[order[j - 1]] < key[o]) { order[j] = order[j - 1]; j--; }
        order[j] = o;
    }
    while (r != 0) {
        bool moved = false;
        for (size_t j = 0; j < n && r != 0; j++) {
            size_t i = order[j];
            if ((dir > 0 ? out[i] < hi[i] : out[i] > lo[i]) && out[i] + dir != out[i] &&
                r - dir != r) {
                out[i] += dir;
                r -= dir;
                moved = true;
            }
        }
        if (!moved) break;
    }
}

static double level_sum(const double *base, const double *lo, const double *hi, size_t n, double mu)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fmin(fmax(base[i] + mu, lo[i]), hi[i]);
    return s;
}

/* x_i = clip(base_i + mu, lo_i, hi_i) with sum x = total, in cents: the
 * Euclidean projection of base onto box and total (the safe reference), and
 * with base = 0 the equal split within bounds (initial split). Bisection on
 * mu, then the exact convex combination of the bracket ends. */
void bd_alloc_level_fill(const double *base, const double *lo, const double *hi, size_t n,
                         double total, double *out, double *xr, double *key, size_t *order)
{
    double ma = INFINITY, mb = -INFINITY;
    size_t uncapped = 0;
    for (size_t i = 0; i < n; i++) {
        double d = lo[i] - base[i];
        if (d < ma) ma = d;
        if (d > mb) mb = d;
        if (isfinite(hi[i])) { if (hi[i] - base[i] > mb) mb = hi[i] - base[i]; }
        else uncapped++;
    }
    double ga = level_sum(base, lo, hi, n, ma), gb = level_sum(base, lo, hi, n, mb);
    if (gb < total && uncapped) { /* above mb every uncapped channel is free */
        mb += (total - gb) / (double)uncapped;
        gb = level_sum(base, lo, hi, n, mb);
    }
    for (int it = 0; it < 200 && ga < total && gb > total; it++) {
        double mid = 0.5 * (ma + mb);
        if (!(mid > ma && mid < mb)) break;
        double g = level_sum(base, lo, hi, n, mid);
        if (g >= total) { mb = mid; gb = g; }
        else { ma = mid; ga = g; }
    }
    double th = gb > ga ? (total - ga) / (gb - ga) : 1.0;
    th = fmin(fmax(th, 0), 1);
    for (size_t i = 0; i < n; i++)
        xr[i] = th * fmin(fmax(base[i] + mb, lo[i]), hi[i]) +
                (1 - th) * fmin(fmax(base[i] + ma, lo[i]), hi[i]);
    bd_alloc_round_cents(xr, lo, hi, n, total, out, key, order);
}

/* A channel whose amount is given (initial or pin): set first, adjusted
 * last by the initial split. */
static bool fixed_first(const bd_channel_cfg_t *c) { return c->has_initial || c->has_pin; }

/* CONTRACT §5 initial split: `initial` where given (clipped to its bounds),
 * the rest water-levelled equally within [min, cap]; whatever the others
 * cannot take (or must give back) shifts the `initial` channels evenly. */
void bd_alloc_initial(const bd_policy_t *pol, const bd_channel_cfg_t *const *cfg, size_t n,
                      double *x)
{
    if (n == 0) return;
    double *blk = bd_xmalloc(9 * n * sizeof(double) + n * sizeof(size_t));
    double *lo = blk, *hi = blk + n, *xc = blk + 2 * n, *slo = blk + 3 * n, *shi = blk + 4 * n,
           *sb = blk + 5 * n, *so = blk + 6 * n, *xr = blk + 7 * n, *key = blk + 8 * n;
    size_t *order = (size_t *)(void *)(blk + 9 * n);
    double sumcap = 0;
    for (size_t i = 0; i < n; i++) {
        bool pinned = cfg[i]->has_pin;
        lo[i] = fmax(bd_bounds_lo_cents(cfg[i]->min), 0);
        hi[i] = fmax(bd_bounds_hi_cents(pinned ? cfg[i]->max : bd_bounds_chan_cap(pol, cfg[i], false)), lo[i]);
        sumcap += hi[i];
        if (pinned) lo[i] = hi[i] = fmin(fmax(rint(cfg[i]->pin * 100), lo[i]), hi[i]);
    }
    double total = fmin(floor(pol->budget * 100 + 0.5), sumcap);
    if (pol->budget_range.range) {
        /* v2: the range's min, or what the initials, pins and the others'
         * mins ask for when that is more (at most the range's max) */
        double tlo, thi, want = 0;
        bd_bounds_total_range_c(pol, sumcap, &tlo, &thi);
        for (size_t i = 0; i < n; i++)
            want += cfg[i]->has_pin || !cfg[i]->has_initial
                        ? lo[i]
                        : fmin(fmax(floor(cfg[i]->initial * 100 + 0.5), lo[i]), hi[i]);
        total = fmin(fmax(tlo, want), thi);
    }
    for (size_t i = 0; i < n; i++) {
        xc[i] = 0;
        if (cfg[i]->has_pin) xc[i] = lo[i];
        else if (cfg[i]->has_initial)
            xc[i] = fmin(fmax(floor(cfg[i]->initial * 100 + 0.5), lo[i]), hi[i]);
    }
    /* pass 0: the rest share what the initial (and pinned) channels leave;
     * pass 1: the initial channels absorb any difference around their
     * values (a pinned one cannot: its box is its pin). */
    for (int pass = 0; pass < 2; pass++) {
        size_t m = 0;
        double have = 0, target;
        for (size_t i = 0; i < n; i++) {
            if (fixed_first(cfg[i]) != (pass == 1)) { have += xc[i]; continue; }
            slo[m] = lo[i];
            shi[m] = hi[i];
            sb[m] = pass ? xc[i] : 0;
            m++;
        }
        if (m == 0) continue;
        target = total - have;
        bd_alloc_level_fill(sb, slo, shi, m, target, so, xr, key, order);
        for (size_t i = 0, j = 0; i < n; i++)
            if (fixed_first(cfg[i]) == (pass == 1)) xc[i] = so[j++];
    }
    for (size_t i = 0; i < n; i++) x[i] = xc[i] / 100;
    free(blk);
}
