/* whatif.c: `budgetd whatif -c A.yaml [-c B.yaml ...] [--set PATH=V1,V2 ...]
 * LOG...`: what each config would have done, two ways (docs/OPERATORS.md
 * "What-if"):
 *
 *  - counterfactual: the log fits an environment (engine/sim/fit.c) and
 *    every config is played closed-loop against --draws environments drawn
 *    from it (loop.c), through the engine's real path; return, spend,
 *    ROAS, regret against the fitted oracle, bounds and kill trips as a
 *    median and a 90% interval over the draws;
 *  - log view: the same log replayed under each config (delivery caps off),
 *    what the config would have decided on the observed data; its outcomes
 *    followed the spend of the policy that ran, so it says nothing of
 *    returns beyond a model estimate.
 *
 * Configs are the -c files times the cartesian product of the --set
 * values; a bad path or value is refused (exit 2, the loader's message
 * naming the --set) before any work. The fit takes the first -c as written
 * for the config the log was recorded under. Output: DIR/summary.md,
 * DIR/report.html, DIR/whatif.json and the plots (whatif_report.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "cmd.h"
#include "opts.h"
#include "whatif_int.h"
#include "budgetd/logread.h"

/* ---- the log view's sink ------------------------------------------------------ */

/* The log view's portfolio called name, added when new. */
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

/* Index of channel name in w, added when new; -1 past WI_MAXCH. */
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
        w->split[k] = p->ch[i].cfg && p->ch[i].cfg->n_arms > 0;
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

/* ---- arguments ---------------------------------------------------------------- */

/* The usage text, to stdout for --help, stderr for bad use. */
static void whatif_usage(FILE *f)
{
    fputs("usage: budgetd whatif -c A.yaml [-c B.yaml ...] [--set PATH=V1,V2,...]... LOG...\n"
          "                      [-o DIR] [--draws N] [--seed N] [--threads N] [--no-plots]\n"
          "  compares at least two configs (each -c times every combination of the --set\n"
          "  values) on LOG: closed loop against N environments fitted from the log (the\n"
          "  first -c is the config the log was recorded under), and the decisions each\n"
          "  config would have made on the observed data. Writes DIR/report.html,\n"
          "  DIR/summary.md and DIR/whatif.json (default DIR " WI_DEFAULT_DIR ", draws 50);\n"
          "  --no-plots: no figures (gnuplot not run; their .dat files are still written)\n", f);
}

/* --set PATH=V1,V2,... into s (values copied). Returns false on bad use. */
static bool wi_parse_set(const char *arg, wi_set_t *s)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) return false;
    char *path = bd_xmalloc((size_t)(eq - arg) + 1);
    memcpy(path, arg, (size_t)(eq - arg));
    path[eq - arg] = '\0';
    *s = (wi_set_t){.path = path};
    const char *v = eq + 1;
    for (;;) {
        size_t len = strcspn(v, ",");
        s->values = bd_xrealloc(s->values, (s->n + 1) * sizeof *s->values);
        s->values[s->n] = bd_xmalloc(len + 1);
        memcpy(s->values[s->n], v, len);
        s->values[s->n++][len] = '\0';
        if (!v[len]) break;
        v += len + 1;
    }
    return true;
}

/* Parses argv into w (o keeps the positional list w->logs points to).
 * Returns -1 to go on, else the exit code (usage or --help printed). */
static int wi_parse(int argc, char **argv, bd_opts_t *o, wi_t *w)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"output", required_argument, NULL, 'o'},
        {"set", required_argument, NULL, 's'},    {"draws", required_argument, NULL, 'd'},
        {"seed", required_argument, NULL, 'S'},   {"threads", required_argument, NULL, 't'},
        {"no-plots", no_argument, NULL, 'P'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    w->dir = WI_DEFAULT_DIR;
    w->draws = WI_DEFAULT_DRAWS;
    w->threads = 1;
    w->seed = 1;
    w->plots = true;
    bd_opts_init(o, "whatif", argc, argv, "c:o:t:h", longopts);
    int ch;
    long long seed;
    while ((ch = bd_opts_next(o)) != -1) {
        switch (ch) {
        case 'c':
            if (w->ncfgp == WI_MAX_CONFIGS) {
                bd_opts_fail("whatif", "more than %d configs", WI_MAX_CONFIGS);
                return BD_EXIT_USAGE;
            }
            w->cfgp[w->ncfgp++] = o->arg;
            break;
        case 'o': w->dir = o->arg; break;
        case 's':
            w->sets = bd_xrealloc(w->sets, (w->nsets + 1) * sizeof *w->sets);
            if (!wi_parse_set(o->arg, &w->sets[w->nsets]))
                return bd_opts_fail("whatif", "--set: '%s' is not PATH=VALUE[,VALUE...]", o->arg);
            for (size_t i = 0; i < w->nsets; i++)
                if (!strcmp(w->sets[i].path, w->sets[w->nsets].path)) {
                    w->nsets++;
                    return bd_opts_fail("whatif", "--set %s given twice (list its values in one "
                                        "--set)", w->sets[i].path);
                }
            w->nsets++;
            break;
        case 'd':
            if (!bd_opts_int(o, 1, WI_MAX_DRAWS, &w->draws)) return BD_EXIT_USAGE;
            break;
        case 'S':
            if (!bd_opts_parse_ll(o->arg, 0, INT64_MAX, &seed))
                return bd_opts_fail("whatif", "--seed: '%s' is not an integer >= 0", o->arg);
            w->seed = (uint64_t)seed;
            break;
        case 't':
            if (!bd_opts_int(o, 1, BD_CMD_MAX_THREADS, &w->threads)) return BD_EXIT_USAGE;
            break;
        case 'P': w->plots = false; break;
        case 'h': whatif_usage(stdout); return BD_EXIT_OK;
        default: whatif_usage(stderr); return BD_EXIT_USAGE;
        }
    }
    w->logs = o->pos;
    w->nlogs = o->npos;
    if (w->ncfgp == 0 || w->nlogs == 0) {
        whatif_usage(stderr);
        return BD_EXIT_USAGE;
    }
    return -1;
}

/* ---- configs --------------------------------------------------------------------- */

/* A, B, ..., Z, then C27, C28, ... */
static void wi_label(size_t i, char *out, size_t cap)
{
    if (i < 26) snprintf(out, cap, "%c", (char)('A' + i));
    else snprintf(out, cap, "C%zu", i + 1);
}

/* Delivery caps off in every policy of cfg: the log view's outcomes
 * followed the allocations of the policy the log was recorded under, so a
 * replay under another config would learn those allocations as caps. */
static void wi_no_caps(bd_config_t *cfg)
{
    cfg->defaults.delivery.caps = BD_AUTO_OFF;
    for (size_t i = 0; i < cfg->n_portfolios; i++) cfg->portfolios[i].p.delivery.caps = BD_AUTO_OFF;
}

/* Config c: its settings as chosen by the grid index idx (mixed radix over
 * the --set lists, the first --set slowest), its name, its config loaded
 * with the overrides. Returns BD_EXIT_OK or BD_EXIT_USAGE (message
 * printed: the loader's, naming the --set). */
static int wi_make_config(wi_t *w, wi_config_t *c, const char *path, size_t idx)
{
    c->path = path;
    c->nsets = w->nsets;
    c->sets = bd_xcalloc(w->nsets + 1, sizeof *c->sets);
    size_t len = strlen(path) + 1;
    for (size_t k = w->nsets; k-- > 0;) {
        const wi_set_t *s = &w->sets[k];
        c->sets[k] = (bd_config_set_t){s->path, s->values[idx % s->n]};
        idx /= s->n;
        len += strlen(s->path) + strlen(c->sets[k].value) + 2;
    }
    c->name = bd_xmalloc(len);
    size_t off = (size_t)snprintf(c->name, len, "%s", path);
    for (size_t k = 0; k < w->nsets; k++)
        off += (size_t)snprintf(c->name + off, len - off, " %s=%s", c->sets[k].path, c->sets[k].value);
    char err[8192];
    if (bd_config_load_set(path, c->sets, c->nsets, &c->cfg, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    bd_config_t *view;
    bd_config_load_set(path, c->sets, c->nsets, &view, err, sizeof err); /* loaded once already */
    wi_no_caps(view);
    bd_engine_opts_t eo = {.threads = 1, .sink = wi_sink, .sink_ctx = &c->view};
    c->view_e = bd_engine_new(view, &eo);
    c->view_cfg = view;
    return BD_EXIT_OK;
}

/* Every config of the comparison (-c files x the --set grid), all loaded
 * and checked before any work. Returns BD_EXIT_OK or BD_EXIT_USAGE. */
static int wi_configs(wi_t *w)
{
    char err[8192];
    if (bd_config_load(w->cfgp[0], &w->base, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    size_t grid = 1;
    for (size_t k = 0; k < w->nsets; k++) {
        grid *= w->sets[k].n;
        if (grid > WI_MAX_CONFIGS) break;
    }
    size_t total = grid * (size_t)w->ncfgp;
    if (grid > WI_MAX_CONFIGS || total > WI_MAX_CONFIGS)
        return bd_opts_fail("whatif", "the configs and --set values make more than %d configs",
                            WI_MAX_CONFIGS);
    if (total < 2)
        return bd_opts_fail("whatif", "nothing to compare: give two configs (-c A -c B) or a "
                            "--set with two or more values");
    for (int f = 0; f < w->ncfgp; f++)
        for (size_t g = 0; g < grid; g++) {
            wi_config_t *c = &w->cf[w->ncf];
            wi_label(w->ncf++, c->label, sizeof c->label);
            int rc = wi_make_config(w, c, w->cfgp[f], g);
            if (rc != BD_EXIT_OK) return rc;
            if (c->cfg->cycle != w->base->cycle)
                return bd_opts_fail("whatif", "%s: cycle %llds, but %s has %llds: the configs "
                                    "compared must share the cycle of the log", c->name,
                                    (long long)c->cfg->cycle, w->cfgp[0], (long long)w->base->cycle);
        }
    return BD_EXIT_OK;
}

/* ---- the work ----------------------------------------------------------------------- */

/* One pass over the logs: every line to each config's log-view engine and
 * to the fit. Returns BD_EXIT_OK, BD_EXIT_USAGE (a log that does not open)
 * or BD_EXIT_RUNTIME (message printed). */
static int wi_read_logs(wi_t *w)
{
    char err[8192], detail[256];
    bd_fitter_t *fit = bd_fit_begin(w->base);
    for (int i = 0; i < w->nlogs; i++) {
        bd_logread_t *lr;
        if (bd_logread_open(w->logs[i], &lr, err, sizeof err) != BD_OK) {
            bd_fit_end(fit, &w->fit, err, sizeof err);
            return bd_opts_fail("whatif", "%s", err);
        }
        const char *line;
        size_t len;
        int got;
        bd_err_t serr;
        while ((got = bd_logread_next(lr, &line, &len, err, sizeof err)) == 1) {
            if (!len) continue;
            for (size_t c = 0; c < w->ncf; c++)
                bd_engine_ingest(w->cf[c].view_e, line, len, detail, sizeof detail, &serr);
            bd_fit_line(fit, line, len);
        }
        bd_logread_close(lr);
        if (got < 0) {
            bd_fit_end(fit, &w->fit, err, sizeof err);
            fprintf(stderr, "budgetd whatif: %s\n", err);
            return BD_EXIT_RUNTIME;
        }
    }
    for (size_t c = 0; c < w->ncf; c++) bd_engine_flush(w->cf[c].view_e);
    if (bd_fit_end(fit, &w->fit, err, sizeof err) != BD_OK) {
        fprintf(stderr, "budgetd whatif: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    return BD_EXIT_OK;
}

/* Progress of the closed-loop runs on stderr: a line at most every two
 * seconds (short runs print none). */
typedef struct {
    struct timespec start, last;
} wi_progress_t;

/* Seconds from a to b. */
static double wi_since(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + 1e-9 * (double)(b->tv_nsec - a->tv_nsec);
}

/* bd_loop_progress_fn: a line with the runs done and an estimate of the
 * time left. */
static void wi_progress(void *ctx, size_t done, size_t total)
{
    wi_progress_t *p = ctx;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (wi_since(&p->last, &now) < 2.0 || done == total) return;
    p->last = now;
    double el = wi_since(&p->start, &now);
    fprintf(stderr, "whatif: %zu/%zu runs, about %.0fs left\n", done, total,
            el / (double)done * (double)(total - done));
}

/* Every config against every draw, then the summaries. */
static int wi_simulate(wi_t *w)
{
    char err[1024];
    const bd_config_t *cfgs[WI_MAX_CONFIGS];
    for (size_t c = 0; c < w->ncf; c++) cfgs[c] = w->cf[c].cfg;
    size_t total = w->ncf * (size_t)w->draws;
    w->res = bd_xcalloc(total, sizeof *w->res);
    wi_progress_t pr;
    clock_gettime(CLOCK_MONOTONIC, &pr.start);
    pr.last = pr.start;
    if (bd_loop_run_all(w->fit, cfgs, w->ncf, w->draws, w->seed, w->threads, wi_progress, &pr,
                        w->res, err, sizeof err) != BD_OK) {
        fprintf(stderr, "budgetd whatif: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    fprintf(stderr, "whatif: %zu configs x %d draws closed loop in %.1fs\n", w->ncf, w->draws,
            wi_since(&pr.start, &end));
    for (size_t c = 0; c < w->ncf; c++) {
        wi_config_t *cf = &w->cf[c];
        cf->runs = w->res + c * (size_t)w->draws;
        bd_loop_summarise(cf->runs, w->draws, -1, &cf->sum);
        cf->pfsum = bd_xcalloc(w->fit->n + 1, sizeof *cf->pfsum);
        for (size_t k = 0; k < w->fit->n; k++) bd_loop_summarise(cf->runs, w->draws, (long)k, &cf->pfsum[k]);
    }
    return BD_EXIT_OK;
}

/* Frees whatever w holds (any part may be missing). */
static void wi_teardown(wi_t *w)
{
    for (size_t c = 0; c < w->ncf; c++) {
        wi_config_t *cf = &w->cf[c];
        bd_engine_free(cf->view_e);
        for (size_t k = 0; k < cf->view.n; k++) free(cf->view.pf[k].steps);
        free(cf->view.pf);
        bd_config_free(cf->cfg);
        bd_config_free(cf->view_cfg);
        free(cf->sets);
        free(cf->name);
        free(cf->pfsum);
    }
    for (size_t j = 0; w->res && j < w->ncf * (size_t)w->draws; j++) bd_loop_result_free(&w->res[j]);
    free(w->res);
    bd_fit_free(w->fit);
    bd_config_free(w->base);
    for (size_t k = 0; k < w->nsets; k++) {
        for (size_t i = 0; i < w->sets[k].n; i++) free(w->sets[k].values[i]);
        free(w->sets[k].values);
        free((char *)w->sets[k].path);
    }
    free(w->sets);
}

/* The command: parse, load every config, one pass over the logs (log view
 * and fit), the closed-loop runs, the report. */
int bd_cmd_whatif(int argc, char **argv)
{
    bd_opts_t o;
    wi_t *w = bd_xcalloc(1, sizeof *w);
    int rc = wi_parse(argc, argv, &o, w);
    if (rc < 0) {
        rc = wi_configs(w);
        if (rc == BD_EXIT_OK && mkdir(w->dir, 0755) != 0 && errno != EEXIST)
            rc = bd_opts_fail("whatif", "%s: %s", w->dir, strerror(errno));
        if (rc == BD_EXIT_OK) rc = wi_read_logs(w);
        if (rc == BD_EXIT_OK) rc = wi_simulate(w);
        if (rc == BD_EXIT_OK) rc = wi_report(w);
    }
    wi_teardown(w);
    free(w);
    bd_opts_free(&o);
    return rc;
}
