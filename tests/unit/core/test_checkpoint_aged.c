/* test_checkpoint_aged.c: checkpoints that age well. A blob of every older
 * version the engine still reads, stored as that version's engine wrote it
 * (tests/data/checkpoint/gen.sh: the last commit of main writing each
 * version, built and run on the first 300 of p0's lines of
 * tests/data/golden/clean.jsonl.gz under configs/minimal.yaml), is restored
 * by this engine, which then takes the rest of p0's lines and decides:
 *  - v5, v6 and v7 (everything a decision reads is carried; v5 lacks only
 *    the kill latch's actor and time, and p0 is not killed at the cut): the
 *    restored portfolio decides record for record as this engine does
 *    uninterrupted over the whole log, through the kill-switch trip that
 *    comes 38 cycles after the restore;
 *  - v4 (no delivery or fault state: both start fresh, as documented): the
 *    allocation is restored and the next decisions move from it within the
 *    channels' ramp and spend the budget;
 *  - v3 (tests/data/checkpoint/v3-acme.ckpt, another config): restored
 *    with the models at their prior, test_regress16_unit.c r16_01.
 * The restored fields are asserted against what gen_ckpt printed when it
 * wrote the blobs (all four engines agree on them). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "budgetd/logread.h"
#include "fixtures.h"

#define CUT 300             /* p0's lines before the checkpoint */
#define OPEN 490923         /* the blobs' open cycle and allocation in force */
#define MAX_LINES 2000
#define MAX_DEC 256

static const char MINIMAL[] = "v: 1\ndefaults:\n  budget: 200\n";

/* p0's lines of the golden clean log, in order (malloc'd copies). */
static char *g_line[MAX_LINES];
static size_t g_n;

static void load_lines(void)
{
    bd_logread_t *r;
    char err[256];
    cr_assert_eq(bd_logread_open("tests/data/golden/clean.jsonl.gz", &r, err, sizeof err), BD_OK, "%s", err);
    const char *l;
    size_t len;
    while (bd_logread_next(r, &l, &len, err, sizeof err) > 0)
        if (memmem(l, len, "\"portfolio\":\"p0\"", 16) && g_n < MAX_LINES) g_line[g_n++] = strndup(l, len);
    bd_logread_close(r);
    cr_assert_eq(g_n, 1651, "p0 has 1651 lines in clean.jsonl.gz");
}

static void free_lines(void)
{
    for (size_t i = 0; i < g_n; i++) free(g_line[i]);
    g_n = 0;
}

TestSuite(checkpoint_aged, .init = load_lines, .fini = free_lines);

/* The decisions of p0 a sink saw: cycle and record. */
typedef struct {
    int64_t cycle[MAX_DEC];
    char *json[MAX_DEC];
    double x[MAX_DEC][8];
    bd_status_t status[MAX_DEC];
    size_t n;
} decs_t;

static bd_err_t sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json, size_t len)
{
    decs_t *s = ctx;
    if (strcmp(p->name, "p0") != 0 || s->n == MAX_DEC) return BD_OK;
    s->cycle[s->n] = d->cycle;
    s->json[s->n] = strndup(json, len);
    s->status[s->n] = d->status;
    for (size_t i = 0; i < d->n && i < 8; i++) s->x[s->n][i] = d->ch[i].spend;
    s->n++;
    return BD_OK;
}

static void decs_free(decs_t *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->json[i]);
}

/* Feeds lines [from, to) to e and runs the closes. */
static void feed(bd_engine_t *e, size_t from, size_t to)
{
    char detail[256];
    for (size_t i = from; i < to; i++) {
        bd_err_t err = BD_OK;
        bd_engine_ingest(e, g_line[i], strlen(g_line[i]), detail, sizeof detail, &err);
        cr_assert_eq(err, BD_OK);
    }
    cr_assert_eq(bd_engine_flush(e), BD_OK);
}

/* Restores tests/data/checkpoint/vVER-p0.ckpt into a fresh engine under
 * the minimal config, asserts its version and the fields every version
 * carries, feeds the rest of p0's lines into it, collecting decisions
 * into out. Returns the engine (caller frees it and cfg). */
static bd_engine_t *restore(int ver, bd_config_t **cfg, decs_t *out, const double *want_x,
                            bd_status_t want_status)
{
    char err[1024], path[128];
    *cfg = bd_test_config(MINIMAL, err, sizeof err);
    cr_assert_not_null(*cfg, "%s", err);
    bd_engine_opts_t o = {.threads = 1, .sink = sink, .sink_ctx = out};
    bd_engine_t *e = bd_engine_new(*cfg, &o);
    snprintf(path, sizeof path, "tests/data/checkpoint/v%d-p0.ckpt", ver);
    size_t len;
    char *blob = bd_test_slurp(path, &len);
    uint64_t v;
    memcpy(&v, blob + 8, 8);
    cr_assert_eq(v, (uint64_t)ver, "%s is a version %d blob", path, ver);
    bd_portfolio_t *p = bd_engine_portfolio(e, "p0");
    cr_assert_not_null(p);
    cr_assert_eq(bd_checkpoint_decode(p, blob, len, err, sizeof err), BD_OK, "v%d: %s", ver, err);
    free(blob);
    bd_engine_restored(e, p);
    cr_assert_eq(p->open, OPEN, "v%d: open cycle", ver);
    cr_assert_eq(p->alloc_cycle, OPEN, "v%d: allocation in force", ver);
    cr_assert_eq(p->hist_n, 27, "v%d: closed cycles", ver);
    cr_assert_eq(p->status, want_status, "v%d: status", ver);
    cr_assert_eq(p->n, 5, "v%d: channels", ver);
    double sum = 0;
    for (size_t i = 0; i < p->n; i++) {
        char name[32];
        snprintf(name, sizeof name, "ch%zu", i);
        cr_assert_str_eq(p->ch[i].name, name);
        cr_assert_float_eq(p->ch[i].x, want_x[i], 1e-9, "v%d %s: allocation", ver, name);
        sum += p->ch[i].x;
    }
    cr_assert_float_eq(sum, 200, 1e-6, "v%d: the allocation spends the budget", ver);
    feed(e, CUT, g_n);
    cr_assert_gt(out->n, 50, "v%d: decisions after the restore", ver);
    cr_assert_eq(out->cycle[0], OPEN + 1, "v%d: the first decision is for the next cycle", ver);
    return e;
}

/* The uninterrupted run of this engine over all of p0's lines. */
static void uninterrupted(decs_t *out)
{
    char err[1024];
    bd_config_t *cfg = bd_test_config(MINIMAL, err, sizeof err);
    bd_engine_opts_t o = {.threads = 1, .sink = sink, .sink_ctx = out};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    feed(e, 0, g_n);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* v6 and v7 carry everything a decision reads: the restored portfolio
 * decides record for record as the uninterrupted run. */
static void decides_as_uninterrupted(int ver, const double *want_x)
{
    decs_t a = {0}, b = {0};
    uninterrupted(&a);
    bd_config_t *cfg;
    bd_engine_t *e = restore(ver, &cfg, &b, want_x, BD_STATUS_ACTIVE);
    size_t k = 0;
    while (k < a.n && a.cycle[k] <= OPEN) k++;
    cr_assert_eq(a.n - k, b.n, "v%d: as many decisions as the uninterrupted run after the cut", ver);
    for (size_t i = 0; i < b.n; i++) {
        cr_assert_eq(b.cycle[i], a.cycle[k + i]);
        cr_assert_str_eq(b.json[i], a.json[k + i], "v%d: cycle %lld decided otherwise", ver, (long long)b.cycle[i]);
    }
    /* active at the restore, killed by the kill-switch later in the log */
    size_t killed = 0;
    while (killed < b.n && b.status[killed] != BD_STATUS_KILLED) killed++;
    cr_assert_eq(b.status[0], BD_STATUS_ACTIVE);
    cr_assert_eq(b.cycle[killed], 490961, "v%d: the trip comes at cycle 490961", ver);
    decs_free(&a);
    decs_free(&b);
    bd_engine_free(e);
    bd_config_free(cfg);
}

/* What gen_ckpt printed for every version at the cut. */
static const double X_CUT[5] = {7.95, 8.89, 152.34, 15.72, 15.1};

Test(checkpoint_aged, v7_decides_as_uninterrupted) { decides_as_uninterrupted(7, X_CUT); }
Test(checkpoint_aged, v6_decides_as_uninterrupted) { decides_as_uninterrupted(6, X_CUT); }
Test(checkpoint_aged, v5_decides_as_uninterrupted) { decides_as_uninterrupted(5, X_CUT); }

/* v4: delivery and fault state start fresh; the decisions go on from the
 * restored allocation: the first moves each channel at most its ramp
 * (max_step 0.25 of its spend, floor 1% of the budget) and every active
 * decision spends the budget of 200. */
Test(checkpoint_aged, v4_restores_and_decides_from_its_allocation)
{
    decs_t b = {0};
    bd_config_t *cfg;
    bd_engine_t *e = restore(4, &cfg, &b, X_CUT, BD_STATUS_ACTIVE);
    bd_portfolio_t *p = bd_engine_portfolio(e, "p0");
    cr_assert_eq(b.status[0], BD_STATUS_ACTIVE);
    for (int i = 0; i < 5; i++) {
        double step = fmax(0.25 * X_CUT[i], 0.01 * 200);
        cr_assert_leq(fabs(b.x[0][i] - X_CUT[i]), step + 0.005, "ch%d moved %.2f -> %.2f", i, X_CUT[i], b.x[0][i]);
    }
    for (size_t k = 0; k < b.n; k++) {
        if (b.status[k] != BD_STATUS_ACTIVE) continue;
        double sum = 0;
        for (int i = 0; i < 5; i++) sum += b.x[k][i];
        cr_assert_float_eq(sum, 200, 0.02, "cycle %lld spends the budget", (long long)b.cycle[k]);
    }
    cr_assert_not_null(p);
    decs_free(&b);
    bd_engine_free(e);
    bd_config_free(cfg);
}
