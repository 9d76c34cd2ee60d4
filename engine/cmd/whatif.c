/* whatif.c: `budgetd whatif -c A.yaml -c B.yaml LOG...`: replays the same
 * log under two configs and reports, per portfolio and side by side, where
 * the money went, which guardrails bound, kill trips, and the return each
 * config would have earned under response curves fitted on the whole log
 * (a model estimate, labelled as such). Writes summary.md and, when gnuplot
 * is installed, one PNG per portfolio of the allocation over time. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cmd.h"
#include "opts.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "budgetd/logread.h"

#define WI_MAXCH 64
#define WI_DEFAULT_DIR "whatif-out" /* -o DIR */

/* One allocation in force after a decision. */
typedef struct {
    int64_t cycle;
    double x[WI_MAXCH];
} wi_step_t;

typedef struct {
    char name[BD_NAME_MAX + 1];
    char ch[WI_MAXCH][BD_NAME_MAX + 1];
    int nch;
    wi_step_t *steps;
    size_t n, cap;
    unsigned bound[WI_MAXCH][BD_BOUND__COUNT]; /* decisions a bound bound, per bd_bound_t */
    unsigned kills, applied, proposed, held;
    char kill_reason[160];
} wi_pf_t;

typedef struct {
    wi_pf_t *pf;
    size_t n, cap;
} wi_run_t;

static wi_pf_t *wi_find(wi_run_t *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->pf[i].name, name) == 0) return &r->pf[i];
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->pf = bd_xrealloc(r->pf, r->cap * sizeof(*r->pf));
    }
    wi_pf_t *w = &r->pf[r->n++];
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", name);
    return w;
}

static int wi_channel(wi_pf_t *w, const char *name)
{
    for (int i = 0; i < w->nch; i++)
        if (strcmp(w->ch[i], name) == 0) return i;
    if (w->nch == WI_MAXCH) return -1;
    snprintf(w->ch[w->nch], sizeof(w->ch[0]), "%s", name);
    return w->nch++;
}

/* Sink: records the allocation in force after every decision. */
static bd_err_t wi_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                        size_t len)
{
    (void)json;
    (void)len;
    wi_pf_t *w = wi_find(ctx, p->name);
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->steps = bd_xrealloc(w->steps, w->cap * sizeof(*w->steps));
    }
    wi_step_t *s = &w->steps[w->n++];
    memset(s, 0, sizeof(*s));
    s->cycle = d->cycle;
    for (size_t i = 0; i < p->n; i++) {
        int k = wi_channel(w, p->ch[i].name);
        if (k < 0) continue;
        s->x[k] = d->status == BD_STATUS_ACTIVE ? p->ch[i].x : 0; /* adapters stop otherwise */
        if (d->path != BD_PATH_INITIAL && (unsigned)d->ch[i].bound < BD_BOUND__COUNT)
            w->bound[k][d->ch[i].bound]++;
    }
    if (d->path == BD_PATH_KILLED && w->kills == 0 && d->kill_reason)
        snprintf(w->kill_reason, sizeof(w->kill_reason), "cycle %lld: %s", (long long)d->cycle,
                 d->kill_reason);
    if (d->path == BD_PATH_KILLED) w->kills++;
    if (d->path == BD_PATH_APPLIED) w->applied++;
    if (d->path == BD_PATH_PROPOSED || d->path == BD_PATH_ESCALATED) w->proposed++;
    if (d->path == BD_PATH_HELD) w->held++;
    return BD_OK;
}

/* Replays every log through an engine on cfg; the sink sees each decision.
 * Returns the engine (caller frees) so the fit pass can read its models. */
static bd_engine_t *wi_replay(const bd_config_t *cfg, const char **logs, int nlogs, bd_sink_fn sink,
                              void *ctx, char *err, size_t errlen)
{
    bd_engine_opts_t eo = {.threads = 2, .sink = sink, .sink_ctx = ctx};
    bd_engine_t *e = bd_engine_new(cfg, &eo);
    char detail[256];
    for (int i = 0; i < nlogs; i++) {
        bd_logread_t *lr;
        if (bd_logread_open(logs[i], &lr, err, errlen) != BD_OK) {
            bd_engine_free(e);
            return NULL;
        }
        const char *line;
        size_t len;
        bd_err_t serr;
        int got;
        while ((got = bd_logread_next(lr, &line, &len, err, errlen)) == 1)
            if (len) bd_engine_ingest(e, line, len, detail, sizeof(detail), &serr);
        bd_logread_close(lr);
        if (got < 0) {
            bd_engine_free(e);
            return NULL;
        }
    }
    bd_engine_flush(e);
    return e;
}

/* The fit: the same log under config A with forgetting switched off, so
 * each channel's posterior mean curve summarises the whole log. */
static void wi_fit_policy(bd_policy_t *p) { p->discount = 1.0; }

static double wi_return(const wi_pf_t *w, const bd_portfolio_t *fit, const bd_model_ops_t *ops)
{
    bd_curve_t curves[WI_MAXCH];
    bool have[WI_MAXCH] = {false};
    for (int k = 0; k < w->nch; k++)
        for (size_t i = 0; fit && i < fit->n; i++)
            if (strcmp(fit->ch[i].name, w->ch[k]) == 0) {
                ops->mean(&fit->ch[i].model, &fit->ch[i].prior, &curves[k]);
                have[k] = true;
            }
    double total = 0;
    for (size_t s = 0; s < w->n; s++)
        for (int k = 0; k < w->nch; k++)
            if (have[k]) total += bd_curve_value(&curves[k], w->steps[s].x[k]);
    return total;
}

static double wi_mean_spend(const wi_pf_t *w, const char *ch)
{
    if (!w || w->n == 0) return 0;
    for (int k = 0; k < w->nch; k++)
        if (strcmp(w->ch[k], ch) == 0) {
            double sum = 0;
            for (size_t s = 0; s < w->n; s++) sum += w->steps[s].x[k];
            return sum / (double)w->n;
        }
    return 0;
}

static const wi_pf_t *wi_get(const wi_run_t *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->pf[i].name, name) == 0) return &r->pf[i];
    return NULL;
}

/* "name count, ..." of the bounds that held channel ch, by the one table of
 * bound names (alloc.h), "-" when none. */
static void wi_bounds(FILE *f, const wi_pf_t *w, const char *ch)
{
    int printed = 0;
    for (int k = 0; w && k < w->nch; k++) {
        if (strcmp(w->ch[k], ch) != 0) continue;
        for (int b = 1; b < BD_BOUND__COUNT; b++)
            if (w->bound[k][b])
                fprintf(f, "%s%s %u", printed++ ? ", " : "", bd_bound_name((bd_bound_t)b), w->bound[k][b]);
    }
    if (!printed) fputs("-", f);
}

/* Data file + gnuplot script for one portfolio: one line per channel and
 * config, A solid, B dashed. Returns 0 when the PNG was written. */
static int wi_plot(const char *dir, const wi_pf_t *a, const wi_pf_t *b, const char *na, const char *nb)
{
    char dat[512], png[512];
    for (int which = 0; which < 2; which++) {
        const wi_pf_t *w = which ? b : a;
        snprintf(dat, sizeof(dat), "%s/%s.%c.dat", dir, a->name, which ? 'b' : 'a');
        FILE *f = fopen(dat, "w");
        if (!f) return -1;
        for (size_t s = 0; w && s < w->n; s++) {
            fprintf(f, "%lld", (long long)w->steps[s].cycle);
            for (int k = 0; k < a->nch; k++) fprintf(f, " %.2f", k < w->nch ? w->steps[s].x[k] : 0);
            fputc('\n', f);
        }
        fclose(f);
    }
    snprintf(png, sizeof(png), "%s/%s.png", dir, a->name);
    FILE *g = popen("gnuplot 2>/dev/null", "w");
    if (!g) return -1;
    fprintf(g, "set terminal pngcairo size 1000,500\nset output '%s'\n", png);
    fprintf(g, "set title 'budgetd whatif: %s (A = %s solid, B = %s dashed)' noenhanced\n", a->name, na, nb);
    fprintf(g, "set xlabel 'cycle'\nset ylabel 'spend per cycle'\nset key outside right noenhanced\nplot ");
    for (int k = 0; k < a->nch; k++)
        fprintf(g, "%s'%s/%s.a.dat' using 1:%d with lines lw 2 lc %d title 'A %s', "
                   "'%s/%s.b.dat' using 1:%d with lines dt 2 lw 2 lc %d title 'B %s'",
                k ? ", " : "", dir, a->name, k + 2, k + 1, a->ch[k], dir, a->name, k + 2, k + 1, a->ch[k]);
    fputs("\n", g);
    int rc = pclose(g);
    struct stat st;
    return rc == 0 && stat(png, &st) == 0 && st.st_size > 0 ? 0 : -1;
}

/* The usage text, to stdout for --help, stderr for bad use. */
static void whatif_usage(FILE *f)
{
    fputs("usage: budgetd whatif -c A.yaml -c B.yaml LOG... [-o DIR]\n"
          "  replays LOG under both configs; writes DIR/summary.md (default " WI_DEFAULT_DIR ")\n"
          "  and, with gnuplot installed, DIR/<portfolio>.png\n", f);
}

/* What the command line asks for. Strings point into argv. */
typedef struct {
    const char *cfgp[2], *dir;
    const char **logs;
    int nlogs;
} wi_args_t;

/* One run: the two configs and the fit config (A without forgetting), the
 * decisions each side kept in force, and the three engines. */
typedef struct {
    bd_config_t *cfg[2], *fitcfg;
    wi_run_t run[2];
    bd_engine_t *e[3];
} wi_t;

/* Parses argv into a (o keeps the positional list a->logs points to).
 * Returns -1 to go on, else the exit code (usage or --help printed). */
static int wi_parse(int argc, char **argv, bd_opts_t *o, wi_args_t *a)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *a = (wi_args_t){.dir = WI_DEFAULT_DIR};
    bd_opts_init(o, "whatif", argc, argv, "c:o:h", longopts);
    int nc = 0, ch;
    while ((ch = bd_opts_next(o)) != -1) {
        switch (ch) {
        case 'c':
            if (nc == 2) {
                bd_opts_fail("whatif", "-c given more than twice: compare exactly two configs");
                return BD_EXIT_USAGE;
            }
            a->cfgp[nc++] = o->arg;
            break;
        case 'o': a->dir = o->arg; break;
        case 'h': whatif_usage(stdout); return BD_EXIT_OK;
        default: whatif_usage(stderr); return BD_EXIT_USAGE;
        }
    }
    a->logs = o->pos;
    a->nlogs = o->npos;
    if (nc != 2 || a->nlogs == 0) {
        whatif_usage(stderr);
        return BD_EXIT_USAGE;
    }
    return -1;
}

/* Delivery caps off in every policy of cfg: a log's reported spend
 * followed the allocations of the policy it was recorded under, so a
 * replay under another config would learn those allocations as caps. */
static void wi_no_caps(bd_config_t *cfg)
{
    cfg->defaults.delivery.caps = BD_AUTO_OFF;
    for (size_t i = 0; i < cfg->n_portfolios; i++) cfg->portfolios[i].p.delivery.caps = BD_AUTO_OFF;
}

/* Loads both configs (delivery caps off) and the fit config, checks that
 * every log opens and creates the output directory. Returns BD_EXIT_OK or
 * the exit code of the failure (message printed). */
static int wi_setup(const wi_args_t *a, wi_t *w)
{
    char err[8192];
    for (int i = 0; i < 2; i++) {
        if (bd_config_load(a->cfgp[i], &w->cfg[i], err, sizeof(err)) != BD_OK) {
            fprintf(stderr, "%s\n", err);
            return BD_EXIT_USAGE;
        }
        wi_no_caps(w->cfg[i]);
    }
    bd_config_load(a->cfgp[0], &w->fitcfg, err, sizeof(err)); /* loaded once already */
    wi_fit_policy(&w->fitcfg->defaults);
    for (size_t i = 0; i < w->fitcfg->n_portfolios; i++) wi_fit_policy(&w->fitcfg->portfolios[i].p);
    for (int i = 0; i < a->nlogs; i++) {
        bd_logread_t *lr;
        if (bd_logread_open(a->logs[i], &lr, err, sizeof(err)) != BD_OK)
            return bd_opts_fail("whatif", "%s", err);
        bd_logread_close(lr);
    }
    if (mkdir(a->dir, 0755) != 0 && errno != EEXIST)
        return bd_opts_fail("whatif", "%s: %s", a->dir, strerror(errno));
    return BD_EXIT_OK;
}

/* Replays the logs under A and B (recording decisions) and under the fit
 * config. Returns BD_EXIT_OK or BD_EXIT_RUNTIME (message printed). */
static int wi_replay_all(const wi_args_t *a, wi_t *w)
{
    char err[8192];
    for (int i = 0; i < 2; i++)
        w->e[i] = wi_replay(w->cfg[i], a->logs, a->nlogs, wi_sink, &w->run[i], err, sizeof(err));
    w->e[2] = wi_replay(w->fitcfg, a->logs, a->nlogs, NULL, NULL, err, sizeof(err));
    if (!w->e[0] || !w->e[1] || !w->e[2]) {
        fprintf(stderr, "budgetd whatif: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    return BD_EXIT_OK;
}

/* One portfolio's section of summary.md: A (and B when it decided for the
 * portfolio too) side by side. */
static void wi_section(FILE *md, const wi_pf_t *a, const wi_pf_t *b, const bd_portfolio_t *fp)
{
    const bd_model_ops_t *ops = bd_model_get(fp ? fp->pol->model : BD_MODEL_POISSON_SAT);
    double ra = wi_return(a, fp, ops), rb = b ? wi_return(b, fp, ops) : 0;
    fprintf(md, "\n## %s\n\n", a->name);
    fprintf(md, "| | A | B |\n|---|---|---|\n");
    fprintf(md, "| decisions | %zu | %zu |\n", a->n, b ? b->n : 0);
    fprintf(md, "| applied / proposed / held | %u / %u / %u | %u / %u / %u |\n", a->applied,
            a->proposed, a->held, b ? b->applied : 0, b ? b->proposed : 0, b ? b->held : 0);
    fprintf(md, "| kill-switch | %s | %s |\n", a->kills ? a->kill_reason : "no trip",
            b && b->kills ? b->kill_reason : "no trip");
    fprintf(md, "| estimated return (model) | %.2f | %.2f (%+.2f%%) |\n", ra, rb,
            ra > 0 ? 100.0 * (rb - ra) / ra : 0);
    fprintf(md, "\n| channel | mean spend A | mean spend B | moved | bound A | bound B |\n"
                "|---|---|---|---|---|---|\n");
    for (int k = 0; k < a->nch; k++) {
        double sa = wi_mean_spend(a, a->ch[k]), sb = wi_mean_spend(b, a->ch[k]);
        fprintf(md, "| %s | %.2f | %.2f | %+.2f | ", a->ch[k], sa, sb, sb - sa);
        wi_bounds(md, a, a->ch[k]);
        fputs(" | ", md);
        wi_bounds(md, b, a->ch[k]);
        fputs(" |\n", md);
    }
}

/* Writes DIR/summary.md (and the plots), then echoes it to stdout for the
 * terminal. Returns BD_EXIT_OK or BD_EXIT_RUNTIME. */
static int wi_report(const wi_args_t *a, wi_t *w)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/summary.md", a->dir);
    FILE *md = fopen(path, "w");
    if (!md) {
        fprintf(stderr, "budgetd whatif: %s: %s\n", path, strerror(errno));
        return BD_EXIT_RUNTIME;
    }
    fprintf(md, "# budgetd what-if\n\nA = `%s`, B = `%s`, log:", a->cfgp[0], a->cfgp[1]);
    for (int i = 0; i < a->nlogs; i++) fprintf(md, " `%s`", a->logs[i]);
    fprintf(md, "\n\nReturn is a **model estimate**: each channel's response curve is fitted on "
                "the whole log (posterior mean, no forgetting) and applied to the allocation each "
                "config kept in force. The log's reported spend followed the policy that ran "
                "when it was recorded, so under another config the overspend trigger compares "
                "that spend with allocations it never received: read its trips with that in mind. "
                "For the same reason delivery caps are not learned here.\n");
    int plots = 0;
    bd_ptable_t *fit = bd_engine_table(w->e[2]);
    for (size_t i = 0; i < w->run[0].n; i++) {
        const wi_pf_t *pa = &w->run[0].pf[i], *pb = wi_get(&w->run[1], pa->name);
        wi_section(md, pa, pb, bd_ptable_find(fit, pa->name, strlen(pa->name)));
        if (wi_plot(a->dir, pa, pb, a->cfgp[0], a->cfgp[1]) == 0) {
            fprintf(md, "\n![%s](%s.png)\n", pa->name, pa->name);
            plots++;
        }
    }
    fclose(md);
    /* the summary also goes to stdout, for the terminal */
    FILE *in = fopen(path, "r");
    char buf[4096];
    size_t got;
    while (in && (got = fread(buf, 1, sizeof(buf), in)) > 0) fwrite(buf, 1, got, stdout);
    if (in) fclose(in);
    fprintf(stderr, "whatif: wrote %s%s\n", path, plots ? " and PNG plots" : " (gnuplot not found: no plots)");
    return BD_EXIT_OK;
}

/* Frees whatever w holds (any part may be missing). */
static void wi_teardown(wi_t *w)
{
    for (int i = 0; i < 3; i++) bd_engine_free(w->e[i]);
    for (int i = 0; i < 2; i++) {
        for (size_t k = 0; k < w->run[i].n; k++) free(w->run[i].pf[k].steps);
        free(w->run[i].pf);
        bd_config_free(w->cfg[i]);
    }
    bd_config_free(w->fitcfg);
}

/* The command: parse, load, replay three times, write the report. */
int bd_cmd_whatif(int argc, char **argv)
{
    bd_opts_t o;
    wi_args_t a;
    wi_t w = {0};
    int rc = wi_parse(argc, argv, &o, &a);
    if (rc < 0) {
        rc = wi_setup(&a, &w);
        if (rc == BD_EXIT_OK) rc = wi_replay_all(&a, &w);
        if (rc == BD_EXIT_OK) rc = wi_report(&a, &w);
    }
    wi_teardown(&w);
    bd_opts_free(&o);
    return rc;
}
