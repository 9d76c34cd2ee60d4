/* bench_replay.c: replay of a decision-bound log against its floor (issue 15).
 *
 *   bench_replay [-c CONFIG] [LOG]    (default: configs/sample.yaml and a log
 *   gen_events writes: 500 portfolios x 8 channels x 220 hourly cycles)
 *
 * The config's overspend trigger is turned off (load_config says why).
 * The log is held in memory. REPS rounds, each measuring in turn:
 *   floor          what the decisions cannot avoid: every line parsed by cJSON
 *                  (cJSON_ParseWithLength + cJSON_Delete) plus the Gamma
 *                  draws the decisions make (gsl_ran_gamma on taus2 in a tight
 *                  loop; two per channel and sample for poisson_sat with the
 *                  revenue objective, counted from the records of the run);
 *   replay_t1      bd_engine_ingest of every line on a fresh engine, 1 thread,
 *                  the records formatted and discarded, final flush included;
 *   replay_tN      the same on N = 2.. up to the cores present (the curve);
 *   late_t1        the log with 30% of its events disturbed (after each
 *                  portfolio's first 3 cycles), same engine: half
 *                  of them held back until after their portfolio's next
 *                  watermark (late events), the other half restated after it
 *                  (the same event_id, rev 1 in place, rev 2 with 10% more
 *                  spend and conversions after the watermark): cost per
 *                  line against replay_t1's, and the decisions that went
 *                  through the allocator in each (the kill path is cheap);
 *   live_clean, live_late  the engine as `budgetd run` drives it (live
 *                  clock, N threads, a flush every 1000 lines as run.c
 *                  syncs): cost per line, late against clean.
 * Single-threaded times are CPU seconds of the process (the machine is
 * shared: wall time would measure the neighbours), wall times are printed
 * beside them; the thread curve is wall time only.
 * Printed: each round's values, then min and median of the ratios
 * (replay_t1 / floor: target <= 2; t1 / t2 >= 1.6; late / clean per line
 * <= 1). Then memory per (portfolio, channel): the heap (mallinfo2) an
 * engine holds after replaying a generated log of P portfolios with C and
 * with 2C channels, the difference over P x C (target <= 1 KiB), season
 * profiles, lag distributions, delivery and fault state, the record buffers
 * and the dedup store's share included. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cJSON.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include "benchutil.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"

#define REPS 3
#define MAXT 8

typedef struct {
    char *text;
    size_t *off, *len, n;
} lines_t;

static size_t g_gammas, g_decisions, g_alloc;

/* Counts decisions and the Gamma draws behind them (2 per channel and
 * sample: rate and value per conversion). */
static bd_err_t count_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                           size_t len)
{
    (void)ctx, (void)json, (void)len;
    g_decisions++;
    g_alloc += d->path != BD_PATH_INITIAL && d->path != BD_PATH_KILLED;
    g_gammas += d->n * (size_t)p->pol->samples * 2;
    return BD_OK;
}

/* Splits buf (owned) into lines. */
static void lines_split(lines_t *l, char *buf, size_t n)
{
    size_t cap = 1024;
    l->text = buf;
    l->off = malloc(cap * sizeof(size_t));
    l->len = malloc(cap * sizeof(size_t));
    l->n = 0;
    for (size_t i = 0; i < n;) {
        char *nl = memchr(buf + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - buf) : n;
        if (e > i) {
            if (l->n == cap) {
                cap *= 2;
                l->off = realloc(l->off, cap * sizeof(size_t));
                l->len = realloc(l->len, cap * sizeof(size_t));
            }
            l->off[l->n] = i;
            l->len[l->n++] = e - i;
        }
        i = e + 1;
    }
}

/* Reads all of f. */
static char *slurp(FILE *f, size_t *n)
{
    size_t cap = 1 << 24, used = 0;
    char *b = malloc(cap);
    size_t got;
    while ((got = fread(b + used, 1, cap - used, f)) > 0) {
        used += got;
        if (used == cap) b = realloc(b, cap *= 2);
    }
    *n = used;
    return b;
}

/* The log: LOG, or gen_events' output for the default shape. */
static int load_log(const char *argv0, const char *path, const char *cfg, lines_t *l)
{
    FILE *f;
    char cmd[2048];
    if (path) f = fopen(path, "r");
    else {
        char bin[1024];
        snprintf(bin, sizeof bin, "%s", argv0);
        char *slash = strrchr(bin, '/');
        if (slash) slash[1] = 0;
        else strcpy(bin, "./");
        snprintf(cmd, sizeof cmd, "%sgen_events -C %s -p 500 -c 8 -n 220 -e 1", bin, cfg);
        f = popen(cmd, "r");
    }
    if (!f) { perror(path ? path : "gen_events"); return 1; }
    size_t n;
    char *buf = slurp(f, &n);
    if (path) fclose(f);
    else if (pclose(f) != 0) { fprintf(stderr, "bench_replay: %s failed\n", cmd); return 1; }
    lines_split(l, buf, n);
    return 0;
}

/* CPU seconds of the process (all threads): on a machine shared with
 * other work, wall time measures the neighbours too; single-threaded
 * ratios are taken on this clock. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double g_cpu; /* CPU seconds of the last run_* */

/* cJSON parse of every line. */
static double run_parse(const lines_t *l)
{
    double c0 = cpu_now(), t = bu_now();
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        cJSON *j = cJSON_ParseWithLength(l->text + l->off[i], l->len[i]);
        k += j != NULL;
        cJSON_Delete(j);
    }
    t = bu_now() - t;
    g_cpu = cpu_now() - c0;
    if (k != l->n) fprintf(stderr, "bench_replay: %zu lines cJSON refused\n", l->n - k);
    return t;
}

/* n Gamma draws, shapes like a posterior after a few cycles. */
static double run_gamma(size_t n)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_taus2);
    gsl_rng_set(r, 1000);
    volatile double sink;
    double s = 0, c0 = cpu_now(), t = bu_now();
    for (size_t i = 0; i < n; i++) s += gsl_ran_gamma(r, (i & 1) ? 200.0 : 30.0, 0.01);
    t = bu_now() - t;
    g_cpu = cpu_now() - c0;
    sink = s;
    (void)sink;
    gsl_rng_free(r);
    return t;
}

/* A fresh engine over every line; flush_every > 0 flushes like the live
 * loop does after a poll batch. Returns the wall time. */
static double run_engine(const bd_config_t *cfg, const lines_t *l, int threads, bool live,
                         size_t flush_every)
{
    bd_engine_opts_t eo = {.threads = threads, .live = live, .sink = count_sink};
    bd_engine_t *e = bd_engine_new(cfg, &eo);
    char detail[256];
    bd_err_t err;
    g_gammas = g_decisions = g_alloc = 0;
    double c0 = cpu_now(), t = bu_now();
    for (size_t i = 0; i < l->n; i++) {
        bd_engine_ingest(e, l->text + l->off[i], l->len[i], detail, sizeof detail, &err);
        if (flush_every && i % flush_every == flush_every - 1) bd_engine_flush(e);
    }
    bd_engine_flush(e);
    t = bu_now() - t;
    g_cpu = cpu_now() - c0;
    bd_engine_free(e);
    return t;
}

/* FNV-1a of s[0..n): which events are disturbed, deterministically. */
static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The portfolio name of a line ("portfolio":"NAME"), into out. */
static void line_pf(const char *s, size_t n, char *out, size_t cap)
{
    out[0] = 0;
    const char *k = memmem(s, n, "\"portfolio\":\"", 13);
    if (!k) return;
    k += 13;
    size_t i = 0;
    while (k + i < s + n && k[i] != '"' && i + 1 < cap) { out[i] = k[i]; i++; }
    out[i] = 0;
}

/* Appends s (n bytes) and a newline to the growing buffer. */
static void put(char **b, size_t *used, size_t *cap, const char *s, size_t n)
{
    while (*used + n + 1 > *cap) *b = realloc(*b, *cap *= 2);
    memcpy(*b + *used, s, n);
    (*b)[*used + n] = '\n';
    *used += n + 1;
}

/* The disturbed log: 30% of the data lines held back to after their
 * portfolio's next watermark, half as late events, half restated there. */
static void make_late(const lines_t *in, lines_t *out, size_t *n_late, size_t *n_restated)
{
    size_t cap = 1 << 24, used = 0;
    char *b = malloc(cap), pf[128], rev[2048];
    /* per portfolio: held lines (indices; restated flagged by the top bit) */
    typedef struct { char name[128]; size_t *held; size_t n, cap; int wms; } pf_t;
    pf_t *pfs = NULL;
    size_t npf = 0;
    *n_late = *n_restated = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = in->text + in->off[i];
        size_t n = in->len[i];
        line_pf(s, n, pf, sizeof pf);
        size_t k = 0;
        while (k < npf && strcmp(pfs[k].name, pf) != 0) k++;
        if (k == npf) {
            pfs = realloc(pfs, ++npf * sizeof *pfs);
            memset(&pfs[k], 0, sizeof *pfs);
            snprintf(pfs[k].name, sizeof pfs[k].name, "%s", pf);
        }
        pf_t *P = &pfs[k];
        bool wm = memmem(s, n, "\"watermark\"", 11) != NULL;
        uint64_t h = fnv(s, n) % 100;
        if (!wm && h < 30 && P->wms >= 3) { /* past the initial split and the first decisions */
            if (P->n == P->cap) P->held = realloc(P->held, (P->cap = P->cap ? 2 * P->cap : 16) * sizeof(size_t));
            size_t tag = h < 15 ? 0 : (size_t)1 << 63;
            P->held[P->n++] = i | tag;
            if (tag) { /* the original now (as rev 1), its restatement later */
                int m = snprintf(rev, sizeof rev, "{\"rev\":1,%.*s", (int)n - 1, s + 1);
                if (m > 0 && (size_t)m < sizeof rev) put(&b, &used, &cap, rev, (size_t)m);
            }
            continue;
        }
        put(&b, &used, &cap, s, n);
        if (!wm) continue;
        P->wms++;
        for (size_t j = 0; j < P->n; j++) {
            size_t li = P->held[j] & ~((size_t)1 << 63);
            const char *t = in->text + in->off[li];
            size_t tn = in->len[li];
            if (!(P->held[j] >> 63)) { put(&b, &used, &cap, t, tn); (*n_late)++; continue; }
            /* {"rev":2, ... with spend and conversions x 1.1 */
            int m = snprintf(rev, sizeof rev, "{\"rev\":2,%.*s", (int)tn - 1, t + 1);
            char *sp = strstr(rev, "\"spend\":"), *cv = strstr(rev, "\"conversions\":");
            if (sp && cv && m > 0 && (size_t)m < sizeof rev - 64) {
                double spend = strtod(sp + 8, NULL), conv = strtod(cv + 14, NULL);
                char tail[2048], *after = strchr(cv + 14, ',');
                snprintf(tail, sizeof tail, "%s", after ? after : "}");
                char *spend_end = strchr(sp + 8, ',');
                char mid[2048];
                snprintf(mid, sizeof mid, "%.*s", (int)(cv - spend_end), spend_end);
                m = snprintf(sp, sizeof rev - (size_t)(sp - rev), "\"spend\":%.2f%s\"conversions\":%.0f%s",
                             spend * 1.1, mid, conv * 1.1 + 0.4, tail);
                put(&b, &used, &cap, rev, strlen(rev));
                (*n_restated)++;
            }
        }
        P->n = 0;
    }
    for (size_t k = 0; k < npf; k++) free(pfs[k].held);
    free(pfs);
    lines_split(out, b, used);
}

/* Heap held (malloc'd and mmapped). */
static size_t heap_bytes(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

/* Heap an engine holds after replaying P x C x cycles generated events. */
static size_t mem_after(const bd_config_t *cfg, int P, int C, int cycles)
{
    bu_lines_t gl = {0};
    bu_gen_t g = {.portfolios = P, .channels = C, .cycles = cycles, .per = 1, .start = 1767225600,
                  .cycle_len = 3600, .seed = 5};
    bu_lines_gen(&gl, &g);
    size_t h0 = heap_bytes();
    bd_engine_opts_t eo = {.threads = 1, .sink = count_sink};
    bd_engine_t *e = bd_engine_new(cfg, &eo);
    char detail[256];
    bd_err_t err;
    for (size_t i = 0; i < gl.n; i++) bd_engine_ingest(e, gl.text + gl.off[i], gl.len[i], detail, sizeof detail, &err);
    bd_engine_flush(e);
    malloc_trim(0);
    size_t h1 = heap_bytes();
    bd_engine_free(e);
    bu_lines_free(&gl);
    return h1 - h0;
}

/* The config with its overspend trigger off ("overspend_ratio: 2.0" ->
 * "0"): the log's spends follow the allocations of gen_events' own closed
 * loop, so once late events change the replay's decisions the channels
 * over-deliver against them and the trigger fires within a few cycles; the
 * cheap kill path would then time as a fast late stream. The clean log
 * never trips it: its decisions are the same either way. */
static bd_err_t load_config(const char *path, bd_config_t **cfg, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return bd_config_load(path, cfg, err, errlen);
    size_t n;
    char *text = slurp(f, &n);
    fclose(f);
    text = realloc(text, n + 1);
    text[n] = 0;
    char *k = strstr(text, "overspend_ratio: 2.0");
    if (k) memcpy(k, "overspend_ratio: 0  ", 20);
    bd_err_t rc = bd_config_load_string(text, n, path, cfg, err, errlen);
    free(text);
    return rc;
}

/* Memory per (portfolio, channel): C and 2C channels, the difference;
 * then the same with the dedup store holding nothing (dedup_window 0),
 * which splits it into the channel's state and the event ids the store
 * holds for it (one event per cycle here: the store's share grows with
 * the event rate times dedup_window, the state's does not). */
static int run_mem(bd_config_t *cfg)
{
    enum { MP = 200, MC = 8, MCYC = 48 };
    size_t m1 = mem_after(cfg, MP, MC, MCYC), m2 = mem_after(cfg, MP, 2 * MC, MCYC);
    int64_t win = cfg->dedup_window;
    cfg->dedup_window = 0;
    size_t s1 = mem_after(cfg, MP, MC, MCYC), s2 = mem_after(cfg, MP, 2 * MC, MCYC);
    cfg->dedup_window = win;
    double per = ((double)m2 - (double)m1) / (MP * MC), state = ((double)s2 - (double)s1) / (MP * MC);
    bu_print("mem_engine_c8", (double)m1, "bytes (200 portfolios x 8 channels, 48 cycles)");
    bu_print("mem_engine_c16", (double)m2, "bytes (200 portfolios x 16 channels)");
    bu_print("mem_per_channel", per, "bytes per (portfolio, channel) (target <= 1024)");
    bu_print("mem_per_channel_state", state, "bytes per (portfolio, channel) without the dedup store");
    bu_print("mem_per_channel_dedup", per - state,
             "bytes per (portfolio, channel): the dedup store at one event per cycle, 24 h window");
    bu_print("mem_channel_struct", (double)sizeof(bd_channel_t), "bytes (sizeof bd_channel_t)");
    return 0;
}

static void print_ratio(const char *name, double *v, const char *unit)
{
    char nm[128];
    double lo = v[0];
    for (int i = 1; i < REPS; i++) lo = v[i] < lo ? v[i] : lo;
    snprintf(nm, sizeof nm, "%s_min", name);
    bu_print(nm, lo, unit);
    snprintf(nm, sizeof nm, "%s_median", name);
    bu_print(nm, bu_median(v, REPS), unit);
}

typedef struct {
    double floor[REPS], wall[REPS], speed[REPS], late[REPS], live[REPS], livew[REPS];
} ratios_t;

/* One round: the floor, replay at 1..maxt threads, the late log, live. */
static void run_round(const bd_config_t *cfg, const lines_t *l_, const lines_t *late_, int maxt,
                      int rep, ratios_t *R)
{
    const lines_t l = *l_, late = *late_;
    char nm[64];
    double t1 = run_engine(cfg, &l, 1, false, 0), c1 = g_cpu;
    size_t gam = g_gammas, dec = g_decisions, t1_alloc = g_alloc;
    double tp = run_parse(&l), cp = g_cpu, tg = run_gamma(gam), cg = g_cpu;
    bu_print("round", rep + 1, "");
    bu_print("floor_parse", cp, "s CPU (cJSON, every line)");
    bu_print("floor_gamma", cg, "s CPU (gsl_ran_gamma)");
    bu_print("floor_gamma_draws", (double)gam, "draws");
    bu_print("floor", cp + cg, "s CPU");
    bu_print("floor_wall", tp + tg, "s");
    bu_print("decisions", (double)dec, "decisions");
    bu_print("replay_t1", c1, "s CPU (1 thread)");
    bu_print("replay_t1_wall", t1, "s");
    bu_print("replay_t1_per_decision", c1 / (double)dec * 1e6, "us CPU");
    R->floor[rep] = c1 / (cp + cg);
    R->wall[rep] = t1 / (tp + tg);
    bu_print("replay_t1_vs_floor", R->floor[rep], "ratio of CPU times (target <= 2)");
    bu_print("replay_t1_vs_floor_wall", R->wall[rep], "ratio of wall times");
    for (int t = 2; t <= maxt; t++) {
        double tt = run_engine(cfg, &l, t, false, 0);
        snprintf(nm, sizeof nm, "replay_t%d", t);
        bu_print(nm, tt, "s wall");
        snprintf(nm, sizeof nm, "replay_speedup_t%d", t);
        bu_print(nm, t1 / tt, "x vs 1 thread, wall (target >= 1.6 at 2)");
        if (t == 2) R->speed[rep] = t1 / tt;
    }
    if (maxt < 2) R->speed[rep] = 1;
    double tl = run_engine(cfg, &late, 1, false, 0), cl = g_cpu;
    bu_print("late_t1", cl, "s CPU (1 thread)");
    bu_print("clean_allocator_decisions", (double)t1_alloc, "decisions");
    bu_print("late_allocator_decisions", (double)g_alloc, "decisions");
    R->late[rep] = (cl / (double)late.n) / (c1 / (double)l.n);
    bu_print("late_vs_clean_per_line", R->late[rep], "ratio of CPU per line (target <= 1)");
    bu_print("late_vs_clean_per_line_wall", (tl / (double)late.n) / (t1 / (double)l.n), "ratio");
    double lc = run_engine(cfg, &l, maxt, true, 1000), lcc = g_cpu;
    size_t lc_alloc = g_alloc;
    double ll = run_engine(cfg, &late, maxt, true, 1000), llc = g_cpu;
    bu_print("live_clean", lc, "s wall (live clock, all threads, flush per 1000 lines as run.c syncs)");
    bu_print("live_clean_cpu", lcc, "s CPU");
    bu_print("live_clean_allocator_decisions", (double)lc_alloc, "decisions");
    bu_print("live_late", ll, "s wall");
    bu_print("live_late_cpu", llc, "s CPU");
    bu_print("live_late_allocator_decisions", (double)g_alloc, "decisions");
    R->live[rep] = (llc / (double)late.n) / (lcc / (double)l.n);
    R->livew[rep] = (ll / (double)late.n) / (lc / (double)l.n);
    bu_print("live_late_vs_clean_per_line", R->live[rep], "ratio of CPU per line (target <= 1)");
    bu_print("live_late_vs_clean_per_line_wall", R->livew[rep], "ratio of wall per line (serialisation shows here)");
}

int main(int argc, char **argv)
{
    const char *cfg_path = "configs/sample.yaml", *log = NULL;
    bool mem_only = false;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) cfg_path = argv[++i];
        else if (strcmp(argv[i], "--mem") == 0) mem_only = true;
        else if (strcmp(argv[i], "--write-late") == 0 && i + 1 < argc) dump = argv[++i];
        else log = argv[i];
    }
    char err[4096];
    bd_config_t *cfg;
    if (load_config(cfg_path, &cfg, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (mem_only) {
        int rc = run_mem(cfg);
        bd_config_free(cfg);
        return rc;
    }
    lines_t l, late;
    if (load_log(argv[0], log, cfg_path, &l)) return 1;
    size_t n_late, n_rest;
    make_late(&l, &late, &n_late, &n_rest);
    if (dump) { /* the disturbed log, for a look with `budgetd replay` */
        FILE *f = fopen(dump, "w");
        if (!f) { perror(dump); return 1; }
        for (size_t i = 0; i < late.n; i++) fprintf(f, "%.*s\n", (int)late.len[i], late.text + late.off[i]);
        fclose(f);
        return 0;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int maxt = ncpu < 1 ? 1 : ncpu > MAXT ? MAXT : (int)ncpu;
    double load[1] = {0};
    if (getloadavg(load, 1) == 1) bu_print("load_average", load[0], "(1 min, at start: other work on these cores)");
    bu_print("replay_lines", (double)l.n, "lines");
    bu_print("late_lines", (double)late.n, "lines");
    bu_print("late_share", (double)(n_late + n_rest) / (double)l.n, "of the lines (late + restated)");
    ratios_t R;
    for (int rep = 0; rep < REPS; rep++) run_round(cfg, &l, &late, maxt, rep, &R);
    print_ratio("replay_t1_vs_floor", R.floor, "ratio of CPU times (target <= 2)");
    print_ratio("replay_t1_vs_floor_wall", R.wall, "ratio of wall times");
    print_ratio("replay_speedup_t2", R.speed, "x (target >= 1.6)");
    print_ratio("late_vs_clean_per_line", R.late, "ratio of CPU per line (target <= 1)");
    print_ratio("live_late_vs_clean_per_line", R.live, "ratio of CPU per line (target <= 1)");
    print_ratio("live_late_vs_clean_per_line_wall", R.livew, "ratio of wall per line");

    run_mem(cfg);
    bd_config_free(cfg);
    free(l.text), free(l.off), free(l.len);
    free(late.text), free(late.off), free(late.len);
    return 0;
}
