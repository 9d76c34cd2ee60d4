/* metrics.c: what bench_quality reports of one run beyond total regret:
 * regret over windows (second half, after an event), fault detection
 * against the truth's fault episodes, the settling of a capped channel,
 * undelivered budget, and the funding of a slow-reporting channel. */
#include <math.h>
#include <stdlib.h>
#include "sim.h"

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

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

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

int sim_cap_channel(const sim_scenario_t *sc)
{
    const sim_event_t *ev = first_cap(sc);
    return ev ? ev->ch : -1;
}

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

double sim_undelivered(const sim_result_t *res, int from, int T, size_t n)
{
    double a = 0, d = 0;
    for (size_t k = (size_t)(from > 0 ? from : 0) * n; k < (size_t)T * n; k++) {
        a += res->alloc[k];
        d += res->deliv[k];
    }
    return a > 0 ? (a - d) / a : 0;
}

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
