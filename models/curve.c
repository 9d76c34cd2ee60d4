/* curve.c: value, marginal and inverse marginal of the response curves.
 * Shared by every model and by the allocator; see model.h for the forms. */
#include <math.h>
#include "budgetd/model.h"

double bd_curve_value(const bd_curve_t *c, double x)
{
    if (x <= 0) return 0;
    if (c->kind == BD_CURVE_EXP) return c->a * c->k * -expm1(-x / c->k);
    return c->a * pow(x, c->b);
}

double bd_curve_marginal(const bd_curve_t *c, double x)
{
    if (c->kind == BD_CURVE_EXP) return c->a * exp(-(x > 0 ? x : 0) / c->k);
    if (x <= 0) return INFINITY;
    return c->a * c->b * pow(x, c->b - 1);
}

/* ROAS at zero spend: what the first cent returns per unit of spend. EXP:
 * f'(0) = a exactly. POWER: f'(0) is infinite, so the return of one cent,
 * f(0.01) / 0.01: finite, and no spend is smaller than a cent. */
double bd_curve_roas_zero(const bd_curve_t *c)
{
    if (c->kind == BD_CURVE_EXP) return c->a;
    return bd_curve_value(c, 0.01) / 0.01;
}

/* Solves f'(x) = lambda. Both forms are strictly decreasing in x, so the
 * inverse is unique; 0 when even the first unit earns less than lambda. */
double bd_curve_inv_marginal(const bd_curve_t *c, double lambda)
{
    if (c->a <= 0) return 0;
    if (c->kind == BD_CURVE_EXP) return lambda >= c->a ? 0 : c->k * log(c->a / lambda);
    /* a*b*x^(b-1) = lambda  =>  x = (lambda/(a*b))^(1/(b-1)) */
    return pow(lambda / (c->a * c->b), 1.0 / (c->b - 1.0));
}
