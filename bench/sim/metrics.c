/* metrics.c: what bench_quality reports of one run beyond total regret:
 * regret over windows (second half, after an event), fault detection
 * against the truth's fault episodes, the settling of a capped channel,
 * undelivered budget, and the funding of a slow-reporting channel; and
 * their summary over the runs of a scenario. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sim.h"

/* See sim.h. */
double sim_regret_window(const sim_truth_t *tr, const sim_result_t *res, int from, int to)
{
    double v = 0, o = 0;
    if (from < 0) from = 0;
    if (to > tr->T) to = tr->T;
    for (int t = from; t < to; t++) {
        v += res->v[t];
        o += tr->opt_v[t];
    }
    return o > 0 ? 1.0 - v / o : 0;
}

/* qsort order of ints, ascending. */
static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* See sim.h: event starts, and the ends of one-off events with a duration. */
size_t sim_change_points(const sim_scenario_t *sc, int *out, size_t cap)
{
    size_t m = 0;
    for (size_t e = 0; e < sc->n_ev && m < cap; e++) {
        const sim_event_t *ev = &sc->ev[e];
        out[m++] = ev->cycle;
        if (ev->every == 0 && ev->duration > 0 && ev->cycle + ev->duration < sc->cycles && m < cap)
            out[m++] = ev->cycle + ev->duration;
    }
    qsort(out, m, sizeof *out, cmp_int);
    size_t u = 0;
    for (size_t j = 0; j < m; j++)
        if (u == 0 || out[u - 1] != out[j]) out[u++] = out[j];
    return u;
}

/* Detection and clearing of the fault episode [s, e) of channel i. */
static void detect_episode(const sim_truth_t *tr, const sim_result_t *res, size_t i, int s, int e,
                           sim_detect_t *out, double *delay_sum)
{
    size_t n = tr->n;
    int T = tr->T, last = e < T - 1 ? e : T - 1, hit = -1;
    out->faults++;
    for (int c = s + 1; c <= last; c++)
        if (res->flag[(size_t)c * n + i]) {
            hit = c;
            break;
        }
    if (hit < 0) return;
    out->detected++;
    *delay_sum += hit - s;
    if (hit - s > out->worst_delay) out->worst_delay = hit - s;
    if (e >= T) return;
    /* the record decided on closing the first restored cycle e is e+1 */
    int clear = -1;
    for (int c = e + 1; c < T; c++)
        if (!res->flag[(size_t)c * n + i]) {
            clear = c - e;
            break;
        }
    if (clear < 0) out->never_cleared++;
    else if (clear > out->worst_clear) out->worst_clear = clear;
}

/* See sim.h. */
void sim_detection(const sim_truth_t *tr, const sim_result_t *res, sim_detect_t *out)
{
    *out = (sim_detect_t){.worst_delay = -1, .worst_clear = -1};
    size_t n = tr->n;
    int T = tr->T;
    double delay_sum = 0;
    for (size_t i = 0; i < n; i++) {
        for (int t = 0; t < T;) {
            if (!tr->fault[(size_t)t * n + i]) {
                t++;
                continue;
            }
            int s = t;
            while (t < T && tr->fault[(size_t)t * n + i]) t++;
            detect_episode(tr, res, i, s, t, out, &delay_sum);
        }
        /* a flag episode starting at record c is legitimate when cycle
         * c-1, the last one closed before it, was faulty */
        for (int c = 0; c < T; c++) {
            bool start = res->flag[(size_t)c * n + i] && (c == 0 || !res->flag[(size_t)(c - 1) * n + i]);
            if (start && !(c > 0 && tr->fault[(size_t)(c - 1) * n + i])) out->false_alarms++;
        }
    }
    out->mean_delay = out->detected ? delay_sum / out->detected : 0;
}

/* The scenario's first one-off cap event (periodic caps are pulses, not a
 * cap to settle at), or NULL. */
static const sim_event_t *first_cap(const sim_scenario_t *sc)
{
    for (size_t e = 0; e < sc->n_ev; e++)
        if (sc->ev[e].kind == SIM_CAP && sc->ev[e].every == 0) return &sc->ev[e];
    return NULL;
}

/* See sim.h. */
int sim_cap_channel(const sim_scenario_t *sc)
{
    const sim_event_t *ev = first_cap(sc);
    return ev ? ev->ch : -1;
}

/* See sim.h. */
double sim_cap_oscillation(const sim_scenario_t *sc, const sim_result_t *res, int T, size_t n)
{
    const sim_event_t *ev = first_cap(sc);
    if (!ev) return 0;
    int end = ev->duration > 0 && ev->cycle + ev->duration < T ? ev->cycle + ev->duration : T;
    int from = ev->cycle + (end - ev->cycle) / 2;
    double s = 0, s2 = 0;
    int m = 0;
    for (int t = from; t < end; t++, m++) {
        double x = res->alloc[(size_t)t * n + (size_t)ev->ch];
        s += x;
        s2 += x * x;
    }
    if (m < 2 || s <= 0) return 0;
    double mean = s / m, var = (s2 - m * mean * mean) / (m - 1);
    return sqrt(var > 0 ? var : 0) / mean;
}

/* See sim.h. */
double sim_undelivered(const sim_result_t *res, int from, int T, size_t n)
{
    double a = 0, d = 0;
    for (size_t k = (size_t)(from > 0 ? from : 0) * n; k < (size_t)T * n; k++) {
        a += res->alloc[k];
        d += res->deliv[k];
    }
    return a > 0 ? (a - d) / a : 0;
}

/* See sim.h. */
int sim_slow_channel(const sim_scenario_t *sc)
{
    int slow = -1;
    double worst = 0;
    for (size_t i = 0; i < sc->n_ch; i++) {
        const sim_lag_t *l = &sc->ch[i].lag;
        if (l->dist != SIM_LAG_NONE && l->mean > worst) {
            worst = l->mean;
            slow = (int)i;
        }
    }
    return slow;
}

/* See sim.h. */
double sim_slow_funding(const sim_scenario_t *sc, const sim_truth_t *tr, const sim_result_t *res)
{
    int slow = sim_slow_channel(sc);
    if (slow < 0) return 0;
    double a = 0, o = 0;
    for (int t = tr->T / 2; t < tr->T; t++) {
        a += res->alloc[(size_t)t * tr->n + (size_t)slow];
        o += tr->opt_x[(size_t)t * tr->n + (size_t)slow];
    }
    return o > 0 ? a / o : 0;
}

/* The scenario's change points as window bounds: 0, the points, T. */
size_t sim_window_bounds(const sim_scenario_t *sc, int *b)
{
    int cp[SIM_MAX_WIN];
    size_t m = sim_change_points(sc, cp, SIM_MAX_WIN - 1), w = 0;
    b[w++] = 0;
    for (size_t j = 0; j < m; j++)
        if (cp[j] > 0) b[w++] = cp[j];
    b[w] = sc->cycles;
    return w;
}

/* The engine's per-run metrics. */
static void engine_metrics(const sim_scenario_t *sc, const sim_truth_t *tr, const sim_result_t *res,
                           sim_runstats_t *ru)
{
    int b[SIM_MAX_WIN + 2];
    size_t w = sim_window_bounds(sc, b);
    for (size_t j = 0; j < w; j++) ru->win[j] = sim_regret_window(tr, res, b[j], b[j + 1]);
    ru->after = w > 1 ? sim_regret_window(tr, res, b[1], sc->cycles) : NAN;
    sim_detection(tr, res, &ru->det);
    ru->has_flags = res->has_flags;
    int cap_from = sc->cycles;
    for (size_t e = 0; e < sc->n_ev; e++)
        if (sc->ev[e].kind == SIM_CAP && sc->ev[e].cycle < cap_from) cap_from = sc->ev[e].cycle;
    ru->cap_cv = sim_cap_oscillation(sc, res, tr->T, tr->n);
    ru->undeliv = sim_undelivered(res, cap_from, tr->T, tr->n);
    ru->slow = sim_slow_funding(sc, tr, res);
}

/* See sim.h. */
void sim_runstats_add(const sim_scenario_t *sc, const sim_truth_t *tr, sim_policy_t p,
                      const sim_result_t *res, sim_runstats_t *ru)
{
    int half = tr->T / 2;
    ru->half[p] = sim_regret_window(tr, res, half, tr->T);
    ru->ret_half[p] = 0;
    ru->oracle_half = 0;
    for (int t = half; t < tr->T; t++) {
        ru->ret_half[p] += res->v[t];
        ru->oracle_half += tr->opt_v[t];
    }
    if (p == SIM_POL_ENGINE) engine_metrics(sc, tr, res, ru);
}

/* See sim.h. */
void sim_half_stats(const sim_runstats_t *rr, int R, int p, double *mean, double *sd, double *mx)
{
    double s = 0, s2 = 0, m = -INFINITY;
    for (int r = 0; r < R; r++) {
        double x = rr[r].half[p];
        s += x;
        if (x > m) m = x;
    }
    *mean = s / R;
    for (int r = 0; r < R; r++) {
        double d = rr[r].half[p] - *mean;
        s2 += d * d;
    }
    *sd = R > 1 ? sqrt(s2 / (R - 1)) : 0;
    *mx = m;
}

/* See sim.h: means over runs, worst runs, the worst window of the means. */
void sim_summarise(const sim_scenario_t *sc, int R, const sim_runstats_t *rr, sim_summary_t *s)
{
    double d, ret[SIM_POL__COUNT] = {0}, oh = 0;
    memset(s, 0, sizeof *s);
    sim_half_stats(rr, R, SIM_POL_ENGINE, &s->half, &s->half_sd, &s->half_max);
    sim_half_stats(rr, R, SIM_POL_FLAT, &s->flat_half, &d, &d);
    for (int r = 0; r < R; r++) {
        for (int p = 0; p < SIM_POL__COUNT; p++) ret[p] += rr[r].ret_half[p];
        oh += rr[r].oracle_half;
    }
    s->vs_flat = ret[SIM_POL_ENGINE] / ret[SIM_POL_FLAT];
    s->vs_static = ret[SIM_POL_ENGINE] / ret[SIM_POL_STATIC];
    s->oracle_vs_flat = oh / ret[SIM_POL_FLAT];
    s->static_ahead = ret[SIM_POL_ENGINE] > ret[SIM_POL_STATIC];
    s->det.worst_delay = s->det.worst_clear = -1;
    s->after_max = s->cap_cv_max = -INFINITY;
    s->slow_min = INFINITY;
    double dsum = 0;
    for (int r = 0; r < R; r++) {
        const sim_runstats_t *u = &rr[r];
        s->after += u->after / R;
        if (u->after > s->after_max) s->after_max = u->after;
        s->cap_cv += u->cap_cv / R;
        if (u->cap_cv > s->cap_cv_max) s->cap_cv_max = u->cap_cv;
        s->undeliv += u->undeliv / R;
        s->slow += u->slow / R;
        if (u->slow < s->slow_min) s->slow_min = u->slow;
        s->flags |= u->has_flags;
        s->det.faults += u->det.faults;
        s->det.detected += u->det.detected;
        s->det.false_alarms += u->det.false_alarms;
        s->det.never_cleared += u->det.never_cleared;
        dsum += u->det.mean_delay * u->det.detected;
        if (u->det.worst_delay > s->det.worst_delay) s->det.worst_delay = u->det.worst_delay;
        if (u->det.worst_clear > s->det.worst_clear) s->det.worst_clear = u->det.worst_clear;
    }
    s->delay_mean = s->det.detected ? dsum / s->det.detected : 0;
    int b[SIM_MAX_WIN + 2];
    size_t w = sim_window_bounds(sc, b);
    s->worst_win = NAN;
    for (size_t j = 1; j < w; j++) {
        double m = 0;
        for (int r = 0; r < R; r++) m += rr[r].win[j] / R;
        if (!(m <= s->worst_win)) {
            s->worst_win = m;
            s->worst_from = b[j];
            s->worst_to = b[j + 1];
        }
    }
}
