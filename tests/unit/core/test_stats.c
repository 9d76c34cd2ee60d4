/* test_stats.c: the one quantile (stats.h) against its definition on a
 * sorted copy, and the 90% interval's one-pass path against quickselect. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>
#include "budgetd/stats.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Type 7 straight from its definition. */
static double ref_quantile(const double *a, size_t n, double p)
{
    double *s = malloc(n * sizeof *s);
    memcpy(s, a, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_d);
    double h = (double)(n - 1) * p;
    size_t k = (size_t)floor(h);
    double v = k + 1 < n ? s[k] + (h - (double)k) * (s[k + 1] - s[k]) : s[k];
    free(s);
    return v;
}

/* Small integers: ties are frequent, which is where selection goes wrong. */
static void fill(double *a, size_t n, unsigned *seed, int ties)
{
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        unsigned r = (*seed >> 8) & 0xffff;
        a[i] = ties ? (double)(r % 7) : (double)r / 977.0 - 30.0;
    }
}

Test(stats, quantile_matches_definition)
{
    static const double ps[] = {0, 0.05, 0.25, 0.5, 0.9, 0.95, 1};
    unsigned seed = 7;
    double a[300], b[300];
    for (size_t n = 1; n <= 300; n += (n < 40 ? 1 : 37))
        for (int ties = 0; ties < 2; ties++) {
            fill(a, n, &seed, ties);
            for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) {
                memcpy(b, a, n * sizeof *a);
                double want = ref_quantile(a, n, ps[j]);
                double got = bd_stats_quantile(b, n, ps[j]);
                cr_assert_float_eq(got, want, 1e-12 * (1 + fabs(want)), "n %zu p %g: %g vs %g", n,
                                   ps[j], got, want);
            }
        }
}

Test(stats, interval90_equals_two_quantiles)
{
    unsigned seed = 11;
    double a[400], b[400];
    for (size_t n = 1; n <= 400; n += (n < 70 ? 1 : 29))
        for (int ties = 0; ties < 2; ties++) {
            fill(a, n, &seed, ties);
            double lo, hi;
            memcpy(b, a, n * sizeof *a);
            bd_stats_quantiles_90(b, n, &lo, &hi);
            memcpy(b, a, n * sizeof *a);
            double qlo = bd_stats_quantile(b, n, 0.05);
            memcpy(b, a, n * sizeof *a);
            double qhi = bd_stats_quantile(b, n, 0.95);
            cr_assert(lo == qlo && hi == qhi, "n %zu: [%g, %g] vs [%g, %g]", n, lo, hi, qlo, qhi);
        }
}

/* The record's 64 draws: the interval interpolates, it does not pick. */
Test(stats, interval90_of_64_interpolates)
{
    double a[64];
    for (int i = 0; i < 64; i++) a[(i * 37) % 64] = i; /* a permutation of 0..63 */
    double lo, hi;
    bd_stats_quantiles_90(a, 64, &lo, &hi);
    cr_assert_float_eq(lo, 0.05 * 63, 1e-12, "%g", lo);
    cr_assert_float_eq(hi, 0.95 * 63, 1e-12, "%g", hi);
}
