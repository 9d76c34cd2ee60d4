/* stats.c: the quantile of stats.h (type 7), by quickselect or, for the
 * 90% interval of a few hundred draws, by keeping the few order statistics
 * at each end in one pass. Both give the same values. And the tail mean
 * behind CVaR (v2). */
#include <math.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include "budgetd/stats.h"

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
/* Inserts v into the ascending buffer buf of at most m entries (have so
 * far), keeping the m smallest. */
static inline void keep_smallest(double *buf, size_t *have, size_t m, double v)
{
    if (*have == m) {
        if (!(v < buf[m - 1])) return;
        (*have)--;
    }
    size_t p = *have;
    while (p > 0 && buf[p - 1] > v) { buf[p] = buf[p - 1]; p--; }
    buf[p] = v;
    (*have)++;
}

/* The m1 (<= QBUF) smallest of a[0..n) ascending into lo, and the m2
 * smallest of -a[0..n) ascending into hi, in one pass over a; one
 * mostly-predictable comparison per element and buffer. */
static void extremes_m(const double *a, size_t n, size_t m1, double *lo, size_t m2, double *hi)
{
    size_t h1 = 0, h2 = 0;
    for (size_t j = 0; j < n; j++) {
        keep_smallest(lo, &h1, m1, a[j]);
        keep_smallest(hi, &h2, m2, -a[j]);
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
