/* drift.c: discount chosen by one-step predictive likelihood (drift.h). */
#include <math.h>
#include <string.h>
#include <gsl/gsl_sf_gamma.h>
#include "budgetd/drift.h"

static const double cand[BD_DRIFT_K] = {0.80, 0.90, 0.95, 0.98, 0.99, 0.995};

double bd_drift_candidate(int i) { return cand[i]; }

void bd_drift_init(bd_drift_t *d, double a0, double b0)
{
    memset(d, 0, sizeof *d);
    for (int i = 0; i < BD_DRIFT_K; i++) {
        d->a[i] = (float)a0;
        d->b[i] = (float)b0;
    }
}

/* log NB(y; shape r, mean mu) without the y-only term -lgamma(y+1), which
 * is the same for every candidate; lg = lngamma(r + y) - lngamma(r) (y > 0). */
static double nb_logpdf(double y, double r, double mu, double lg)
{
    double l = r * log(r / (r + mu));
    if (y > 0) l += lg + y * log(mu / (r + mu));
    return l;
}

/* The candidates whose shape is capped share r, and so the two lngamma of
 * their predictive: computed once per distinct r in a row (the same values:
 * ~2 in 3 of an update's lngamma calls on the bench_replay workload). */
void bd_drift_observe(bd_drift_t *d, double a0, double b0, double y, double q)
{
    if (!(q > 0) || !(y >= 0) || !isfinite(y) || !isfinite(q)) return;
    double rlast = NAN, lg = 0;
    for (int i = 0; i < BD_DRIFT_K; i++) {
        double a = d->a[i], b = d->b[i];
        double mu = a / b * q;
        double r = a < BD_DRIFT_MAX_SHAPE ? a : BD_DRIFT_MAX_SHAPE;
        if (y > 0 && mu > 0 && r != rlast) {
            lg = gsl_sf_lngamma(r + y) - gsl_sf_lngamma(r);
            rlast = r;
        }
        double ll = mu > 0 ? nb_logpdf(y, r, mu, lg) : 0;
        d->score[i] = (float)(BD_DRIFT_SCORE_FORGET * d->score[i] + ll);
        double g = cand[i];
        d->a[i] = (float)(g * a + (1 - g) * a0 + y);
        d->b[i] = (float)(g * b + (1 - g) * b0 + q);
    }
}

double bd_drift_discount(const bd_drift_t *d)
{
    int best = BD_DRIFT_K - 1;
    for (int i = BD_DRIFT_K - 2; i >= 0; i--)
        if (d->score[i] > d->score[best]) best = i;
    /* Occam: the longest memory whose score is within BD_DRIFT_MARGIN of the
     * best; a shorter memory must earn its noise */
    for (int i = BD_DRIFT_K - 1; i > best; i--)
        if (d->score[i] >= d->score[best] - BD_DRIFT_MARGIN) return cand[i];
    return cand[best];
}

void bd_drift_add(bd_drift_t *d, double a0, double dy, double dq)
{
    if (!isfinite(dy) || !isfinite(dq)) return;
    for (int i = 0; i < BD_DRIFT_K; i++) {
        double a = d->a[i] + dy;
        d->a[i] = (float)(a > 0.5 * a0 ? a : 0.5 * a0);
        if (dq > 0) d->b[i] += (float)dq;
    }
}
