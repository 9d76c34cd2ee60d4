/* lag.c: the reporting-lag distribution and the pending exposure of recent
 * intervals (lag.h). */
#include <math.h>
#include <string.h>
#include "budgetd/lag.h"

/* First age of each bin; bin b covers [start[b], start[b+1]). Geometric
 * above 4 so that 13 bins reach 233 cycles (a week and more of hours). */
static const int64_t lag_start[BD_LAG_BINS + 1] = {0, 1, 2, 3, 4, 6, 9, 14, 22, 35, 56, 90, 145, 234};

void bd_lag_init(bd_lag_t *l)
{
    memset(l, 0, sizeof *l);
}

int bd_lag_bin(int64_t age)
{
    if (age <= 0) return 0;
    for (int b = 1; b < BD_LAG_BINS; b++)
        if (age < lag_start[b + 1]) return b;
    return BD_LAG_BINS - 1;
}

int64_t bd_lag_bin_start(int b) { return lag_start[b]; }
int64_t bd_lag_bin_width(int b) { return lag_start[b + 1] - lag_start[b]; }

void bd_lag_report(bd_lag_t *l, int64_t age, double units)
{
    if (!isfinite(units)) return;
    int b = bd_lag_bin(age);
    double v = l->n[b] + units;
    l->n[b] = (float)(v > 0 ? v : 0);
}

double bd_lag_completeness(const bd_lag_t *l, int64_t age, int64_t horizon)
{
    if (horizon <= 0 || age >= horizon) return 1.0;
    if (age < 0) return 0.0;
    double tot = BD_LAG_PRIOR, by = BD_LAG_PRIOR;
    for (int b = 0; b < BD_LAG_BINS; b++) {
        if (lag_start[b] >= horizon) break; /* reports past the horizon count as final */
        double nb = l->n[b];
        tot += nb;
        int64_t end = lag_start[b + 1] < horizon ? lag_start[b + 1] : horizon;
        if (age >= end - 1) by += nb;
        else if (age >= lag_start[b]) by += nb * (double)(age - lag_start[b] + 1) / (double)(end - lag_start[b]);
    }
    double f = by / tot;
    return f < 1 ? f : 1.0;
}

/* F[k] = bd_lag_completeness(l, lag_start[k], horizon) for every bin start
 * k = 0..BD_LAG_BINS in one pass (bd_lag_step needs them all): at a bin's
 * start every earlier bin counts in full and the bin itself by one age, so
 * `by` is a running sum taken in the same order as there, and the values are
 * the same bits. */
static void lag_starts(const bd_lag_t *l, int64_t horizon, double *F)
{
    double tot = BD_LAG_PRIOR, by = BD_LAG_PRIOR;
    for (int b = 0; b < BD_LAG_BINS && lag_start[b] < horizon; b++) tot += l->n[b];
    for (int k = 0; k <= BD_LAG_BINS; k++) {
        int64_t age = lag_start[k];
        if (horizon <= 0 || age >= horizon) { F[k] = 1.0; continue; }
        double f = by;
        if (k < BD_LAG_BINS) {
            double nb = l->n[k];
            int64_t end = lag_start[k + 1] < horizon ? lag_start[k + 1] : horizon;
            if (age >= end - 1) f += nb;
            else f += nb * (double)(age - lag_start[k] + 1) / (double)(end - lag_start[k]);
            by += nb;
        }
        f /= tot;
        F[k] = f < 1 ? f : 1.0;
    }
}

int bd_lag_step(bd_lag_t *l, int64_t horizon, double x, double s, bd_lag_credit_t *out)
{
    int nout = 0;
    double flow_x[BD_LAG_BINS], flow_sx[BD_LAG_BINS], F[BD_LAG_BINS + 1];
    lag_starts(l, horizon, F);
    for (int b = 0; b < BD_LAG_BINS; b++) {
        double w = (double)bd_lag_bin_width(b);
        flow_x[b] = l->x[b] / w;   /* the oldest interval of the bin moves on */
        flow_sx[b] = l->sx[b] / w;
        if (!(l->x[b] > 0)) continue;
        /* the bin's w intervals, one per age, each gain F(a+1) - F(a): the
         * sum telescopes over the bin */
        double gain = F[b + 1] - F[b];
        if (gain > 1e-9) {
            out[nout].x = l->x[b] / w;
            out[nout].mult = gain * (l->sx[b] / l->x[b]);
            nout++;
        }
    }
    for (int b = BD_LAG_BINS - 1; b >= 0; b--) {
        l->x[b] = (float)(l->x[b] - flow_x[b]);
        l->sx[b] = (float)(l->sx[b] - flow_sx[b]);
        if (b + 1 < BD_LAG_BINS) { /* past the last bin: final */
            l->x[b + 1] += (float)flow_x[b];
            l->sx[b + 1] += (float)flow_sx[b];
        }
        if (l->x[b] < 0) l->x[b] = 0;
        if (l->sx[b] < 0) l->sx[b] = 0;
    }
    if (x > 0 && isfinite(x)) {
        l->x[0] += (float)x;
        l->sx[0] += (float)(x * (s > 0 && isfinite(s) ? s : 1.0));
    }
    for (int b = 0; b < BD_LAG_BINS; b++) l->n[b] *= (float)BD_LAG_FORGET;
    return nout;
}

void bd_lag_forget_pending(bd_lag_t *l)
{
    memset(l->x, 0, sizeof l->x);
    memset(l->sx, 0, sizeof l->sx);
}
