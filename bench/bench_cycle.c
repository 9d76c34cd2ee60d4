/* bench_cycle.c: cycle time of the decision core (issue 3).
 *
 * 10,000 portfolios x 20 channels, 64 posterior samples per decision,
 * revenue objective, on as many worker threads as CPUs. The state is built
 * by feeding decoded events through bd_engine_apply (one event per channel
 * per cycle, spending what the engine allocated); a `*` watermark then
 * closes the cycle of every portfolio at once, and the timed part is that
 * watermark plus the flush that runs and emits all 10,000 decisions (model
 * update, S draws, water-filling, risk bound, verifier, record JSON).
 * A registration cycle is closed untimed, then three cycles are timed; the
 * best is reported, and the mean. Every timed decision must come from the
 * allocator (not the initial or kill path), else the bench fails; the
 * paths are printed.
 *
 * Baseline, same run and thread count: drawing the Gamma variates those
 * decisions draw, with nothing else: gsl_ran_gamma on a taus2 generator (as
 * decide.c uses), two per (portfolio, channel, sample) for poisson_sat with
 * the revenue objective (rate and value per conversion), one for loglog
 * (its variance; it also draws two Gaussians, not counted). Target (issue
 * 3): cycle <= 4x the bare draws, about 1 s on this 2-core machine.
 *
 * Memory per (portfolio, channel), target <= 1 KiB: the malloc'd bytes
 * (mallinfo2) the engine holds after the state is built, minus those of the
 * empty engine, divided by 200,000; and the same from the structure sizes.
 * Each portfolio's dedup store is counted (a header of about 100 bytes:
 * these events carry no event_id, so it never grows). */
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "benchutil.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"

#define NPF 10000
#define NCH 20
#define SAMPLES 64
#define CYCLES 3
#define T0 1767225600LL
#define CYCLE_LEN 3600LL

static const char CONFIG_FMT[] =
    "v: 1\n"
    "cycle: 1h\n"
    "lateness: 0\n"
    "seed: 42\n"
    "defaults:\n"
    "  budget: 20000\n"
    "  objective: revenue\n"
    "  model: %s\n"
    "  samples: %d\n"
    "  channel: {min: 0, max: 5000, saturation: 1500}\n";

static size_t decisions, allocated, paths[16];

/* Counts decisions, and those that went through the allocator (every path
 * but initial and killed; held = the risk bound or the verifier held it):
 * a close that tripped the kill-switch would time another path. */
static bd_err_t count_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                           size_t len)
{
    (void)ctx, (void)p, (void)json, (void)len;
    decisions++;
    allocated += d->path != BD_PATH_INITIAL && d->path != BD_PATH_KILLED;
    paths[(unsigned)d->path & 15]++;
    return BD_OK;
}

static size_t heap_bytes(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

/* One event per (portfolio, channel) in cycle c, spending the allocation
 * in force with a saturating response, channels differing in rate and
 * saturation. Cycle 0 registers the channels with zero spend: a portfolio's
 * initial split is decided on the channels known at its first event, so
 * spending before the first real decision would trip the overspend
 * kill-switch (and the bench would time the kill path). */
static void feed_cycle(bd_engine_t *e, int c)
{
    bd_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = BD_EV_DATA;
    char detail[256];
    bd_err_t err;
    for (int p = 0; p < NPF; p++) {
        snprintf(ev.portfolio, sizeof(ev.portfolio), "pf-%05d", p);
        bd_portfolio_t *port = bd_ptable_find(bd_engine_table(e), ev.portfolio, strlen(ev.portfolio));
        for (int i = 0; i < NCH; i++) {
            snprintf(ev.channel, sizeof(ev.channel), "ch-%02d", i);
            double x = 0;
            if (c > 0 && port && (size_t)i < port->n) x = port->ch[i].x;
            double rate = 0.01 + 0.03 * (double)((i * 7 + p) % 5) / 4, k = 500.0 * (1 + (i + p) % 4);
            double conv = (double)(long)(rate * k * -expm1(-x / k) + 0.5);
            ev.ts = T0 + (int64_t)c * CYCLE_LEN + 60 + i;
            ev.spend = x;
            ev.impressions = x * 120;
            ev.clicks = x * 1.1;
            ev.conversions = conv;
            ev.revenue = conv * 200.0; /* ROAS ~1.5-6: the risk bound mostly passes */
            bd_engine_apply(e, &ev, detail, sizeof(detail), &err);
        }
    }
}

/* Applies the `*` watermark that ends cycle c and flushes: the timed part. */
static double close_cycle(bd_engine_t *e, int c)
{
    bd_event_t wm;
    memset(&wm, 0, sizeof(wm));
    wm.kind = BD_EV_WATERMARK;
    strcpy(wm.portfolio, "*");
    wm.ts = T0 + (int64_t)(c + 1) * CYCLE_LEN;
    char detail[256];
    bd_err_t err;
    size_t before = decisions, before_alloc = allocated;
    double t = bu_now();
    bd_engine_apply(e, &wm, detail, sizeof(detail), &err);
    bd_engine_flush(e);
    t = bu_now() - t;
    if (decisions - before != NPF || allocated - before_alloc != NPF) {
        fprintf(stderr, "bench_cycle: close made %zu decisions, %zu by the allocator, want %d\n",
                decisions - before, allocated - before_alloc, NPF);
        exit(1);
    }
    return t;
}

typedef struct {
    size_t n;
    unsigned long seed;
    double sum;
} gamma_job_t;

/* Shapes like a posterior after a few cycles: rate ~ Gamma(30, .), value
 * per conversion ~ Gamma(200, .); Marsaglia-Tsang costs the same for any
 * shape >= 1. */
static void *gamma_worker(void *arg)
{
    gamma_job_t *j = arg;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, j->seed);
    double s = 0;
    for (size_t i = 0; i < j->n; i++) s += gsl_ran_gamma(r, (i & 1) ? 200.0 : 30.0, 0.01);
    j->sum = s;
    gsl_rng_free(r);
    return NULL;
}

/* Wall time of n Gamma draws split over nt threads. */
static double bare_gamma(size_t n, int nt)
{
    pthread_t th[64];
    gamma_job_t jobs[64];
    double t = bu_now();
    for (int k = 0; k < nt; k++) {
        jobs[k] = (gamma_job_t){n / (size_t)nt + ((size_t)k < n % (size_t)nt), 1000u + (unsigned)k, 0};
        if (k > 0) pthread_create(&th[k], NULL, gamma_worker, &jobs[k]);
    }
    gamma_worker(&jobs[0]);
    for (int k = 1; k < nt; k++) pthread_join(th[k], NULL);
    return bu_now() - t;
}

static int run_model(const char *model, int gammas_per_sample, int threads)
{
    char yaml[1024], err[4096], name[128];
    int n = snprintf(yaml, sizeof(yaml), CONFIG_FMT, model, SAMPLES);
    bd_config_t *cfg;
    if (bd_config_load_string(yaml, (size_t)n, "bench_cycle", &cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    size_t heap0 = heap_bytes();
    bd_engine_opts_t eo = {.threads = threads, .sink = count_sink};
    bd_engine_t *e = bd_engine_new(cfg, &eo);
    size_t heap1 = heap_bytes();
    feed_cycle(e, 0);
    bd_engine_flush(e); /* the initial splits, untimed */
    close_cycle(e, 0);  /* first decision from the priors, untimed */
    size_t heap2 = heap_bytes();
    double best = 1e30, sum = 0;
    memset(paths, 0, sizeof(paths));
    for (int c = 1; c <= CYCLES; c++) {
        feed_cycle(e, c);
        double t = close_cycle(e, c);
        sum += t;
        if (t < best) best = t;
    }
    size_t draws = (size_t)NPF * NCH * SAMPLES * (size_t)gammas_per_sample;
    double bare = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        double t = bare_gamma(draws, threads);
        if (t < bare) bare = t;
    }
    snprintf(name, sizeof(name), "cycle_%s", model);
    bu_print(name, best, "s (best of 3 closes, 10000 portfolios x 20 channels x 64 samples)");
    snprintf(name, sizeof(name), "cycle_%s_mean", model);
    bu_print(name, sum / CYCLES, "s");
    snprintf(name, sizeof(name), "cycle_%s_per_decision", model);
    bu_print(name, best / NPF * 1e6, "us (wall, all threads)");
    for (int k = 0; k < 16; k++) {
        if (!paths[k]) continue;
        snprintf(name, sizeof(name), "cycle_%s_path_%s", model, bd_path_name((bd_path_t)k));
        bu_print(name, (double)paths[k] / CYCLES, "decisions per close");
    }
    snprintf(name, sizeof(name), "bare_gamma_%s", model);
    bu_print(name, bare, "s");
    snprintf(name, sizeof(name), "bare_gamma_%s_draws", model);
    bu_print(name, (double)draws, "gsl_ran_gamma calls");
    snprintf(name, sizeof(name), "cycle_%s_vs_bare_gamma", model);
    bu_print(name, best / bare, "ratio (target <= 4)");

    /* Memory: measured, and from the structures. */
    bd_ptable_t *tab = bd_engine_table(e);
    size_t structs = 0;
    for (size_t i = 0; i < bd_ptable_count(tab); i++) {
        bd_portfolio_t *p = bd_ptable_at(tab, i);
        int win = p->pol->kill.window > 0 ? p->pol->kill.window : 1;
        structs += sizeof(*p) + p->cap * sizeof(bd_channel_t) +
                   (size_t)p->nslots * p->cap * sizeof(bd_agg_t) +
                   (size_t)p->nslots * sizeof(uint64_t) + (size_t)win * sizeof(bd_cycle_hist_t);
    }
    bd_portfolio_t *p0 = bd_ptable_at(tab, 0);
    snprintf(name, sizeof(name), "mem_per_channel_%s", model);
    bu_print(name, (double)(heap2 - heap1) / (NPF * NCH), "bytes (malloc'd state incl. decide jobs, target <= 1024)");
    snprintf(name, sizeof(name), "mem_per_channel_%s_structs", model);
    bu_print(name, (double)structs / (NPF * NCH), "bytes (portfolio + channel array + agg ring)");
    snprintf(name, sizeof(name), "mem_channel_struct");
    bu_print(name, (double)sizeof(bd_channel_t), "bytes (sizeof bd_channel_t)");
    snprintf(name, sizeof(name), "mem_channel_slots_%s", model);
    bu_print(name, (double)p0->cap, "channel slots allocated per portfolio (20 used)");
    (void)heap0;
    bd_engine_free(e);
    bd_config_free(cfg);
    return 0;
}

int main(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (int)ncpu;
    bu_print("cycle_threads", threads, "threads");
    if (run_model("poisson_sat", 2, threads)) return 1;
    if (run_model("loglog", 1, threads)) return 1;
    return 0;
}
