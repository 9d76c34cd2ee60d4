/* stats.c: the quantile of stats.h (type 7), by quickselect or, for the
 * 90% interval of a few hundred draws, by keeping the few order statistics
 * at each end in one pass. Both give the same values. And the tail mean
 * behind CVaR (v2). */
#include <math.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include "budgetd/stats.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* k-th smallest of a[0..n) (0-based), reordering a: Hoare quickselect with a
 * median-of-3 pivot, O(n) expected, deterministic. */
static double select_k(double *a, size_t n, size_t k)
{
    ptrdiff_t l = 0, r = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (l < r) {
        double x = a[l], y = a[l + (r - l) / 2], z = a[r], piv;
        if ((x <= y && y <= z) || (z <= y && y <= x)) piv = y;
        else if ((y <= x && x <= z) || (z <= x && x <= y)) piv = x;
        else piv = z;
        ptrdiff_t i = l, j = r;
        while (i <= j) {
            while (a[i] < piv) i++;
            while (a[j] > piv) j--;
            if (i <= j) {
                double t = a[i]; a[i] = a[j]; a[j] = t;
                i++; j--;
            }
        }
        if (kk <= j) r = j;
        else if (kk >= i) l = i;
        else break;
    }
    return a[kk];
}

/* See stats.h: select a(k), then a(k+1) is the smallest of what follows. */
double bd_stats_quantile(double *a, size_t n, double p)
{
    double h = (double)(n - 1) * p;
    size_t k = (size_t)h;
    double lo = select_k(a, n, k);
    if (k + 1 >= n) return lo;
    double hi = INFINITY; /* after select_k everything past k is >= a[k] */
    for (size_t j = k + 1; j < n; j++) if (a[j] < hi) hi = a[j];
    return lo + (h - (double)k) * (hi - lo);
}

#define QBUF 16
/* *b, *v = min, max of (*b, *v), where min is *v only when *v < *b (a
 * NaN *v goes on as *v): MINSD and MAXSD with these operand orders, which
 * gcc will not emit for the plain conditionals (signed zeros). */
static inline void sort2(double *b, double *v)
{
#ifdef __SSE2__
    __m128d bb = _mm_set_sd(*b), vv = _mm_set_sd(*v);
    *b = _mm_cvtsd_f64(_mm_min_sd(vv, bb)); /* vv < bb ? vv : bb */
    *v = _mm_cvtsd_f64(_mm_max_sd(bb, vv)); /* bb > vv ? bb : vv */
#else
    double x = *b, y = *v;
    *b = y < x ? y : x;
    *v = x > y ? x : y;
#endif
}

/* The m1 (<= QBUF) smallest of a[0..n) ascending into lo, and the m2
 * smallest of -a[0..n) ascending into hi, in one pass over a. Each value
 * bubbles down both buffers by compare-and-swap (min/max instructions, no
 * branch): which values make a 5% tail is data, so the insertion's
 * early-out mispredicted (perf: this function was 6% of replay's CPU for
 * 2% of its instructions). Same result as an insertion: a value moves
 * past an entry only when strictly smaller (a NaN never does, so it is
 * never kept), the buffers start at +inf, and n >= m1, m2. */
static void extremes_m(const double *a, size_t n, size_t m1, double *lo, size_t m2, double *hi)
{
    for (size_t p = 0; p < m1; p++) lo[p] = INFINITY;
    for (size_t p = 0; p < m2; p++) hi[p] = INFINITY;
    for (size_t j = 0; j < n; j++) {
        double v = a[j], w = -a[j];
        for (size_t p = 0; p < m1; p++) sort2(&lo[p], &v);
        for (size_t p = 0; p < m2; p++) sort2(&hi[p], &w);
    }
}

/* See stats.h. When more than QBUF order statistics would have to be kept
 * at either end, quickselect instead. */
void bd_stats_quantiles_90(double *a, size_t n, double *q05, double *q95)
{
    double h1 = (double)(n - 1) * 0.05, h2 = (double)(n - 1) * 0.95;
    size_t k1 = (size_t)h1, k2 = (size_t)h2;
    size_t m1 = k1 + 2 <= n ? k1 + 2 : n, m2 = n - k2;
    if (m1 > QBUF || m2 > QBUF) {
        *q05 = bd_stats_quantile(a, n, 0.05);
        *q95 = bd_stats_quantile(a, n, 0.95);
        return;
    }
    double buf[QBUF] = {0}, top[QBUF] = {0}, lo, hi; /* zeroed: -O1 cannot see extremes_m fills them */
    extremes_m(a, n, m1, buf, m2, top);
    lo = buf[k1];
    hi = k1 + 1 < n ? buf[k1 + 1] : lo;
    *q05 = lo + (h1 - (double)k1) * (hi - lo);
    lo = -top[n - 1 - k2]; /* top[r] = -(r-th largest) */
    hi = k2 + 1 < n ? -top[n - 2 - k2] : lo;
    *q95 = lo + (h2 - (double)k2) * (hi - lo);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bd_stats_tail_mean(double *a, size_t n, double alpha)
{
    double mm = ceil(alpha * (double)n - 1e-9);
    size_t m = mm < 1 ? 1 : mm > (double)n ? n : (size_t)mm;
    qsort(a, n, sizeof *a, cmp_double);
    double sum = 0;
    for (size_t j = 0; j < m; j++) sum += a[j];
    return sum / (double)m;
}
