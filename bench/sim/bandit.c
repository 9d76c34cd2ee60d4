/* bandit.c: Bernoulli-bandit sanity benchmarks of the Beta-Bernoulli model
 * against published numbers (issue 6): the Thompson-sampling grid of
 * Chapelle & Li 2011 and the piecewise-stationary problems 1 and 2 of
 * Besson & Kaufmann. Every draw, update and discount goes through
 * models/beta_bernoulli.c, the code the engine runs.
 *
 * Regret is the pseudo-regret sum_t (mu*_t - mu_{A_t}) (no reward noise in
 * the score). Runs are independent jobs, each with its own generator seeded
 * from (seed, job), shared out over threads by an atomic counter, so the
 * numbers do not depend on the thread count. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <gsl/gsl_rng.h>
#include "bandit.h"
#include "sim.h"

#define CL_NCP 21 /* checkpoints T*10^(-2 + j/10), j = 0..20 */

typedef struct {
    void (*fn)(void *arg, size_t job);
    void *arg;
    const size_t *order;
    size_t n;
    atomic_size_t next;
} pool_t;

static void *pool_worker(void *p)
{
    pool_t *pl = p;
    for (;;) {
        size_t i = atomic_fetch_add(&pl->next, 1);
        if (i >= pl->n) return NULL;
        pl->fn(pl->arg, pl->order[i]);
    }
}

/* Runs fn(arg, order[i]) for i < n on `threads` threads (the caller's one
 * included). Jobs are taken in `order`: put the long ones first. */
static void pool_run(void (*fn)(void *, size_t), void *arg, const size_t *order, size_t n, int threads)
{
    pool_t pl = {.fn = fn, .arg = arg, .order = order, .n = n};
    atomic_init(&pl.next, 0);
    pthread_t th[64];
    int started = 0;
    if (threads > 64) threads = 64;
    for (; started < threads - 1; started++)
        if (pthread_create(&th[started], NULL, pool_worker, &pl) != 0) break;
    pool_worker(&pl);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double kl_bern(double p, double q)
{
    return p * log(p / q) + (1 - p) * log((1 - p) / (1 - q));
}

/* A fresh Beta(1,1) arm via the model's init (objective conversions). */
static void arm_init(bd_model_state_t *st)
{
    bd_prior_t pr = {.objective = BD_OBJ_CONVERSIONS, .saturation = 1, .budget = 1,
                     .roas_prior = 1, .value_prior = 1};
    bd_model_beta_bernoulli_ops.init(st, &pr);
}

/* The Thompson step: one posterior draw per arm, the argmax plays. */
static int ts_choose(const bd_model_state_t *st, int K, gsl_rng *r)
{
    int best = 0;
    double bv = -1;
    for (int k = 0; k < K; k++) {
        double th = bd_bb_draw(&st[k], r);
        if (th > bv) {
            bv = th;
            best = k;
        }
    }
    return best;
}

/* ---- Chapelle & Li ------------------------------------------------------ */

typedef struct {
    bench_cl_cell_t *cells;
    int runs;
    uint64_t seed;
    double *cp;          /* (cell, run) x CL_NCP regrets */
} cl_ctx_t;

static void cl_job(void *arg, size_t job)
{
    cl_ctx_t *cx = arg;
    size_t c = job / (size_t)cx->runs;
    const bench_cl_cell_t *cell = &cx->cells[c];
    int K = cell->K;
    long T = cell->T;
    bd_model_state_t *st = bd_xmalloc(sizeof(*st) * (size_t)K);
    double *mu = bd_xmalloc(sizeof(double) * (size_t)K);
    for (int k = 0; k < K; k++) {
        arm_init(&st[k]);
        mu[k] = k == 0 ? 0.5 : 0.5 - cell->gap;
    }
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, (unsigned long)bd_mix64(cx->seed ^ bd_mix64(job + 1)));
    long cps[CL_NCP];
    for (int j = 0; j < CL_NCP; j++) cps[j] = lround((double)T * pow(10.0, -2.0 + j / 10.0));
    double regret = 0, *out = cx->cp + job * CL_NCP;
    int j = 0;
    for (long t = 1; t <= T; t++) {
        /* Arms are symmetric but for the best one at index 0: ties in the
         * draw are measure-zero, so the index order biases nothing. */
        int a = ts_choose(st, K, r);
        double y = gsl_rng_uniform(r) < mu[a] ? 1.0 : 0.0;
        bd_bb_observe_trials(&st[a], y, 1.0);
        regret += mu[0] - mu[a];
        while (j < CL_NCP && cps[j] == t) out[j++] = regret;
    }
    gsl_rng_free(r);
    free(st);
    free(mu);
}

void bench_chapelle_li(bench_cl_cell_t *cells, size_t n, int threads, uint64_t seed)
{
    int runs = cells[0].runs;
    size_t nj = n * (size_t)runs;
    cl_ctx_t cx = {.cells = cells, .runs = runs, .seed = seed,
                   .cp = bd_xcalloc(nj * CL_NCP, sizeof(double))};
    /* longest cells first so the threads finish together */
    size_t *order = bd_xmalloc(nj * sizeof *order);
    size_t *cidx = bd_xmalloc(n * sizeof *cidx);
    for (size_t c = 0; c < n; c++) cidx[c] = c;
    for (size_t a = 1; a < n; a++)
        for (size_t b = a; b > 0 && (double)cells[cidx[b]].K * (double)cells[cidx[b]].T >
                                       (double)cells[cidx[b - 1]].K * (double)cells[cidx[b - 1]].T; b--) {
            size_t tmp = cidx[b];
            cidx[b] = cidx[b - 1];
            cidx[b - 1] = tmp;
        }
    for (size_t c = 0, m = 0; c < n; c++)
        for (int r = 0; r < runs; r++) order[m++] = cidx[c] * (size_t)runs + (size_t)r;
    double t0 = now_s();
    pool_run(cl_job, &cx, order, nj, threads);
    double el = now_s() - t0;
    double work = 0;
    for (size_t c = 0; c < n; c++) work += (double)cells[c].K * (double)cells[c].T;
    for (size_t c = 0; c < n; c++) {
        bench_cl_cell_t *cell = &cells[c];
        cell->lr_const = (cell->K - 1) * cell->gap / kl_bern(0.5 - cell->gap, 0.5);
        double mean[CL_NCP] = {0};
        double s = 0, s2 = 0;
        for (int r = 0; r < runs; r++) {
            const double *cp = cx.cp + (c * (size_t)runs + (size_t)r) * CL_NCP;
            for (int j = 0; j < CL_NCP; j++) mean[j] += cp[j] / runs;
            s += cp[CL_NCP - 1];
            s2 += cp[CL_NCP - 1] * cp[CL_NCP - 1];
        }
        cell->regret_T = s / runs;
        cell->regret_sd = runs > 1 ? sqrt(fmax(0, (s2 - s * s / runs) / (runs - 1))) : 0;
        /* least squares of mean regret on ln t */
        double sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (int j = 0; j < CL_NCP; j++) {
            double x = log((double)cell->T) + log(10.0) * (-2.0 + j / 10.0);
            sx += x;
            sy += mean[j];
            sxx += x * x;
            sxy += x * mean[j];
        }
        cell->slope = (CL_NCP * sxy - sx * sy) / (CL_NCP * sxx - sx * sx);
        /* the pool shares time across cells: attribute it by work */
        cell->seconds = el * (double)cell->K * (double)cell->T / work;
    }
    free(order);
    free(cidx);
    free(cx.cp);
}

/* ---- Besson & Kaufmann -------------------------------------------------- */

static const double BK_MEANS[2][5][3] = {
    {{.3, .5, .9}, {.3, .2, .9}, {.3, .2, .1}, {.7, .2, .1}, {.7, .5, .1}},
    {{.4, .5, .9}, {.5, .4, .7}, {.6, .3, .5}, {.7, .2, .3}, {.8, .1, .1}},
};

typedef struct {
    const bench_bk_t *p;
    uint64_t seed;
    double *regret;      /* algo x runs */
} bk_ctx_t;

static void bk_job(void *arg, size_t job)
{
    bk_ctx_t *cx = arg;
    const bench_bk_t *p = cx->p;
    bench_algo_t algo = (bench_algo_t)(job / (size_t)p->runs);
    size_t run = job % (size_t)p->runs;
    const double(*means)[3] = BK_MEANS[p->problem - 1];
    long seg = p->T / 5;
    bd_model_state_t st[3];
    bd_prior_t pr = {.objective = BD_OBJ_CONVERSIONS, .saturation = 1, .budget = 1};
    for (int k = 0; k < 3; k++) arm_init(&st[k]);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    /* the same seed for every algorithm of a run */
    gsl_rng_set(r, (unsigned long)bd_mix64(cx->seed ^ bd_mix64(run * 7919u + (uint64_t)p->problem)));
    double regret = 0;
    for (long t = 0; t < p->T; t++) {
        const double *mu = means[t / seg < 5 ? t / seg : 4];
        if (algo == BENCH_RESTART && t > 0 && t % seg == 0)
            for (int k = 0; k < 3; k++) arm_init(&st[k]);
        int a = ts_choose(st, 3, r);
        double y = gsl_rng_uniform(r) < mu[a] ? 1.0 : 0.0;
        if (algo == BENCH_DTS_EVERY)
            for (int k = 0; k < 3; k++) bd_model_beta_bernoulli_ops.discount(&st[k], &pr, p->gamma);
        /* the engine's rule: only the arm that reported forgets */
        if (algo == BENCH_DTS || algo == BENCH_DTS_PULLED)
            bd_model_beta_bernoulli_ops.discount(&st[a], &pr, p->gamma);
        bd_bb_observe_trials(&st[a], y, 1.0);
        if (algo == BENCH_DTS_PULLED)
            for (int k = 1; k < 3; k++) bd_model_beta_bernoulli_ops.discount(&st[a], &pr, p->gamma);
        double best = fmax(mu[0], fmax(mu[1], mu[2]));
        regret += best - mu[a];
    }
    cx->regret[job] = regret;
    gsl_rng_free(r);
}

void bench_besson_kaufmann(bench_bk_t *p, int threads, uint64_t seed)
{
    size_t nj = (size_t)BENCH__ALGOS * (size_t)p->runs;
    bk_ctx_t cx = {.p = p, .seed = seed, .regret = bd_xcalloc(nj, sizeof(double))};
    size_t *order = bd_xmalloc(nj * sizeof *order);
    for (size_t i = 0; i < nj; i++) order[i] = i;
    double t0 = now_s();
    pool_run(bk_job, &cx, order, nj, threads);
    p->seconds = now_s() - t0;
    for (int a = 0; a < BENCH__ALGOS; a++) {
        double s = 0, s2 = 0;
        for (int r = 0; r < p->runs; r++) {
            double v = cx.regret[(size_t)a * (size_t)p->runs + (size_t)r];
            s += v;
            s2 += v * v;
        }
        p->regret[a] = s / p->runs;
        p->sd[a] = p->runs > 1 ? sqrt(fmax(0, (s2 - s * s / p->runs) / (p->runs - 1))) : 0;
    }
    free(order);
    free(cx.regret);
}
