/* whatif_report.c: the output of `budgetd whatif` (whatif_int.h): one
 * document written twice, as DIR/summary.md (echoed to stdout) and as the
 * self-contained DIR/report.html (its figures inline as data: URIs), and
 * the machine-readable DIR/whatif.json (docs/CONTRACT.md §10). Every number
 * is a function of the log, the configs, the seed and the draws: no time,
 * no thread count. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include "budgetd/stats.h"
#include "whatif_int.h"

/* ---- one document, two formats -------------------------------------------------- */

typedef struct {
    FILE *md, *html;
    const char *dir;
} wi_doc_t;

/* s (n bytes) with HTML's special characters escaped. */
static void html_esc(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(s[i], f);
        }
    }
}

/* The markdown inline subset the report uses (`code`, **bold**) as HTML. */
static void html_inline(FILE *f, const char *s)
{
    while (*s) {
        const char *tick = strchr(s, '`'), *bold = strstr(s, "**");
        const char *next = tick && (!bold || tick < bold) ? tick : bold;
        if (!next) {
            html_esc(f, s, strlen(s));
            return;
        }
        html_esc(f, s, (size_t)(next - s));
        bool code = next == tick;
        const char *open = next + (code ? 1 : 2);
        const char *close = code ? strchr(open, '`') : strstr(open, "**");
        if (!close) {
            html_esc(f, next, strlen(next));
            return;
        }
        fputs(code ? "<code>" : "<b>", f);
        html_esc(f, open, (size_t)(close - open));
        fputs(code ? "</code>" : "</b>", f);
        s = close + (code ? 1 : 2);
    }
}

/* A heading of the level (2, 3). */
static void doc_h(wi_doc_t *d, int level, const char *text)
{
    fprintf(d->md, "%.*s %s\n\n", level, "####", text);
    fprintf(d->html, "<h%d>", level);
    html_esc(d->html, text, strlen(text));
    fprintf(d->html, "</h%d>\n", level);
}

static void doc_p(wi_doc_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A paragraph (printf format; markdown inline markup). */
static void doc_p(wi_doc_t *d, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) bd_oom(strlen(fmt));
    va_end(ap);
    fprintf(d->md, "%s\n\n", s);
    fputs("<p>", d->html);
    html_inline(d->html, s);
    fputs("</p>\n", d->html);
    free(s);
}

/* A figure: a link in the markdown, the PNG inline in the HTML; nothing
 * when it was not drawn (png NULL or no such file). Returns whether it was. */
static bool doc_img(wi_doc_t *d, const char *png, const char *alt)
{
    char path[1024];
    struct stat st;
    if (!png) return false;
    snprintf(path, sizeof path, "%s/%s", d->dir, png);
    if (stat(path, &st) != 0 || st.st_size == 0) return false;
    fprintf(d->md, "![%s](%s)\n\n", alt, png);
    fputs("<p><img alt=\"", d->html);
    html_esc(d->html, alt, strlen(alt));
    fputs("\" src=\"data:image/png;base64,", d->html);
    wi_base64_file(d->html, path);
    fputs("\"></p>\n", d->html);
    return true;
}

/* A table: ncol cells per row, the first row the header. */
typedef struct {
    size_t ncol, n, cap;
    char **c;
} wi_tab_t;

static void tab_cell(wi_tab_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends one cell (printf format), row by row. */
static void tab_cell(wi_tab_t *t, const char *fmt, ...)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->c = bd_xrealloc(t->c, t->cap * sizeof *t->c);
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&t->c[t->n], fmt, ap) < 0) bd_oom(strlen(fmt));
    va_end(ap);
    t->n++;
}

/* Writes the table in both formats and frees its cells. */
static void tab_emit(wi_doc_t *d, wi_tab_t *t)
{
    fputs("<table>\n", d->html);
    for (size_t i = 0; i < t->n; i++) {
        size_t col = i % t->ncol;
        bool head = i < t->ncol;
        fprintf(d->md, "%s%s%s |", col ? "" : "|", t->c[i][0] ? " " : "", t->c[i]);
        if (col == 0) fputs("<tr>", d->html);
        fputs(head ? "<th>" : "<td>", d->html);
        html_inline(d->html, t->c[i]);
        fputs(head ? "</th>" : "</td>", d->html);
        if (col + 1 == t->ncol) {
            fputc('\n', d->md);
            fputs("</tr>\n", d->html);
            if (head) {
                fputc('|', d->md);
                for (size_t k = 0; k < t->ncol; k++) fputs("---|", d->md);
                fputc('\n', d->md);
            }
        }
        free(t->c[i]);
    }
    fputs("</table>\n", d->html);
    fputc('\n', d->md);
    free(t->c);
    *t = (wi_tab_t){.ncol = t->ncol};
}

/* ---- number formats ------------------------------------------------------------------ */

/* Money: whole units, median [5%, 95%]. */
static void tab_money(wi_tab_t *t, const bd_interval_t *v)
{
    tab_cell(t, "%.0f [%.0f, %.0f]", v->median, v->lo, v->hi);
}

/* A ratio, three decimals. */
static void tab_ratio(wi_tab_t *t, const bd_interval_t *v)
{
    tab_cell(t, "%.3f [%.3f, %.3f]", v->median, v->lo, v->hi);
}

/* A share as a percentage. */
static void tab_pct(wi_tab_t *t, const bd_interval_t *v)
{
    tab_cell(t, "%.2f%% [%.2f%%, %.2f%%]", 100 * v->median, 100 * v->lo, 100 * v->hi);
}

/* A count over draws (quantiles interpolate: one decimal). */
static void tab_count(wi_tab_t *t, const bd_interval_t *v)
{
    tab_cell(t, "%.1f [%.1f, %.1f]", v->median, v->lo, v->hi);
}

/* "ramp 12.0%, max 3.1%": bounds whose median share is 0.05% or more. */
static void tab_bounds(wi_tab_t *t, const bd_loop_summary_t *s)
{
    char buf[512] = "";
    size_t off = 0;
    for (int b = 1; b < BD_BOUND__COUNT; b++)
        if (s->bound[b].median >= 0.0005 && off < sizeof buf)
            off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s %.1f%%", off ? ", " : "",
                                    bd_bound_name((bd_bound_t)b), 100 * s->bound[b].median);
    tab_cell(t, "%s", off ? buf : "-");
}

/* ---- the closed loop ------------------------------------------------------------------ */

/* A date as YYYY-MM-DD HH:MM UTC. */
static void wi_date(int64_t ts, char *out, size_t cap)
{
    time_t tt = (time_t)ts;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

/* Whether the portfolios the configs manage count in different units. */
static bool wi_mixed_objectives(const wi_t *w)
{
    int seen = -1;
    for (size_t c = 0; c < w->ncf; c++)
        for (size_t k = 0; k < w->fit->n; k++) {
            bd_env_portfolio_t ep = {0};
            const bd_portfolio_cfg_t *pc = bd_config_portfolio(w->cf[c].cfg, w->fit->pf[k].name);
            ep.pol = pc ? &pc->p : w->cf[c].cfg->has_default_budget ? &w->cf[c].cfg->defaults : NULL;
            if (!ep.pol) continue;
            if (seen >= 0 && seen != (int)ep.pol->objective) return true;
            seen = (int)ep.pol->objective;
        }
    return false;
}

/* Listed channels of each config that the log never saw. */
static void wi_unseen(wi_doc_t *d, const wi_t *w)
{
    for (size_t c = 0; c < w->ncf; c++) {
        bd_env_t *e = bd_env_new(w->fit, w->cf[c].cfg, w->seed, 0);
        char buf[1024] = "";
        size_t off = 0;
        for (size_t k = 0; k < e->n; k++)
            for (size_t i = 0; i < e->pf[k].n; i++)
                if (!e->pf[k].ch[i].fc && !e->pf[k].ch[i].split && off < sizeof buf) /* v2: its arms spend */
                    off += (size_t)snprintf(buf + off, sizeof buf - off, "%s`%s/%s`", off ? ", " : "",
                                            e->pf[k].fp->name, e->pf[k].ch[i].name);
        if (off)
            doc_p(d, "%s lists channels the log never saw: %s. Their response is drawn from %s's "
                     "prior (wide: the log says nothing about them).", w->cf[c].label, buf,
                  w->cf[c].label);
        bd_env_free(e);
    }
}

/* The closed loop's section: what was run, then a row per config. */
static void wi_closed_loop(wi_doc_t *d, const wi_t *w)
{
    char from[40], to[40];
    wi_date(w->fit->c0 * w->fit->cycle, from, sizeof from);
    wi_date((w->fit->c1 + 1) * w->fit->cycle, to, sizeof to);
    doc_h(d, 2, "What would have happened (closed loop)");
    doc_p(d, "Each config ran closed loop against %d environments drawn from the log's fitted "
             "posterior (seed %llu): %lld cycles from %s to %s. The environment is fitted with the "
             "engine's own models on the whole log, taking `%s` as the config it was recorded "
             "under: each channel's response curve (one posterior draw per environment), its "
             "seasonal profile and reporting lag, value per conversion and overdispersion, and "
             "the delivery caps the log showed. In every draw a config's own guardrails, "
             "kill-switch, mode, fault detector and delivery learner see the spend that config "
             "decided itself, never the logged spend; nobody approves a proposal or resumes a "
             "kill. Values: **median [5%%, 95%%]** over the draws. Return is the expected "
             "objective at the spend made; regret is against the exact optimum of the same "
             "curves within the config's own bounds, cycle by cycle.",
          w->draws, (unsigned long long)w->seed, (long long)(w->fit->c1 - w->fit->c0 + 1), from, to,
          w->cfgp[0]);
    if (wi_mixed_objectives(w))
        doc_p(d, "The portfolios count different objectives (revenue and conversions): the "
                 "totals add them; read the portfolios one by one.");
    wi_tab_t t = {.ncol = 8};
    const char *head[] = {"config", "return", "spend", "ROAS", "regret", "kill trips",
                          "cycles killed", "budget moved per cycle"};
    for (int i = 0; i < 8; i++) tab_cell(&t, "%s", head[i]);
    for (size_t c = 0; c < w->ncf; c++) {
        const bd_loop_summary_t *s = &w->cf[c].sum;
        tab_cell(&t, "%s", w->cf[c].label);
        tab_money(&t, &s->ret);
        tab_money(&t, &s->spend);
        tab_ratio(&t, &s->roas);
        tab_pct(&t, &s->regret);
        tab_count(&t, &s->kills);
        tab_pct(&t, &s->killed);
        tab_pct(&t, &s->volatility);
    }
    tab_emit(d, &t);
    wi_unseen(d, w);
}

/* "roas 3, stale 1": the kinds of the first kill reasons (the text before
 * ':') of config c's draws on fit portfolio k, by count, "-" when none. */
static void tab_kill_kinds(wi_tab_t *t, const wi_t *w, const wi_config_t *c, size_t k)
{
    char kinds[8][32];
    int count[8] = {0}, nk = 0;
    for (int d = 0; d < w->draws; d++) {
        const char *r = c->runs[d].pf[k].kill_reason;
        if (!r[0]) continue;
        char kind[32];
        snprintf(kind, sizeof kind, "%.*s", (int)strcspn(r, ":"), r);
        int j = 0;
        while (j < nk && strcmp(kinds[j], kind) != 0) j++;
        if (j == nk && nk < 8) snprintf(kinds[nk++], sizeof kinds[0], "%s", kind);
        if (j < nk) count[j]++;
    }
    char buf[400] = "";
    size_t off = 0;
    for (int j = 0; j < nk && off < sizeof buf; j++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s %d", j ? ", " : "", kinds[j], count[j]);
    tab_cell(t, "%s", off ? buf : "-");
}

/* One portfolio's closed-loop table: a row per config. */
static void wi_closed_loop_pf(wi_doc_t *d, const wi_t *w, size_t k)
{
    char title[128];
    snprintf(title, sizeof title, "%s (closed loop)", w->fit->pf[k].name);
    doc_h(d, 3, title);
    wi_tab_t t = {.ncol = 8};
    const char *head[] = {"config", "return", "spend", "ROAS", "regret", "kill trips",
                          "kill reasons (draws)", "bounds that bound (share of channel-decisions)"};
    for (int i = 0; i < 8; i++) tab_cell(&t, "%s", head[i]);
    for (size_t c = 0; c < w->ncf; c++) {
        const bd_loop_summary_t *s = &w->cf[c].pfsum[k];
        const bd_loop_pf_t *r = &w->cf[c].runs[0].pf[k];
        tab_cell(&t, "%s", w->cf[c].label);
        if (r->last < r->first) {
            for (int i = 0; i < 7; i++) tab_cell(&t, "%s", i ? "" : "not managed by this config");
            continue;
        }
        tab_money(&t, &s->ret);
        tab_money(&t, &s->spend);
        tab_ratio(&t, &s->roas);
        tab_pct(&t, &s->regret);
        tab_count(&t, &s->kills);
        tab_kill_kinds(&t, w, &w->cf[c], k);
        tab_bounds(&t, s);
    }
    tab_emit(d, &t);
}

/* ---- the fitted environment ------------------------------------------------------------ */

/* The smallest and largest seasonal factor of c over the log's cycles. */
static void wi_season_range(const wi_t *w, const bd_fit_channel_t *c, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t t = w->fit->c0; t <= w->fit->c1; t++) {
        int hour, dow;
        bd_season_bucket(t * w->fit->cycle, &hour, &dow);
        double f = bd_season_apply(&c->season, hour, dow);
        if (f < *lo) *lo = f;
        if (f > *hi) *hi = f;
    }
}

/* The fitted environment's section: a row per channel of the log, its
 * curve summarised over the draws of the base config's environment. */
static void wi_fitted(wi_doc_t *d, const wi_t *w)
{
    doc_h(d, 2, "Fitted environment");
    doc_p(d, "Per channel of the log: its cycles with data, mean spend and conversions per "
             "cycle, revenue per conversion, the fitted response's ROAS at the channel's mean "
             "spend (at zero spend: of the first cent) and its saturation spend (median [5%%, 95%%] over the %d draws; in the "
             "objective of `%s`), overdispersion (CV of a cycle's rate around the curve), the "
             "range of its seasonal factor, the share of its conversions reported on time and "
             "the cycles a learned delivery cap held it.", w->draws, w->cfgp[0]);
    size_t n = (size_t)w->draws;
    bd_env_t **env = bd_xcalloc(n, sizeof *env);
    for (size_t dr = 0; dr < n; dr++) env[dr] = bd_env_new(w->fit, w->base, w->seed, (int)dr);
    double *roas = bd_xcalloc(n, sizeof(double)), *sat = bd_xcalloc(n, sizeof(double));
    wi_tab_t t = {.ncol = 11};
    const char *head[] = {"portfolio", "channel", "cycles", "spend/cycle", "conversions/cycle",
                          "value/conversion", "ROAS at mean spend", "saturation",
                          "overdispersion", "season", "on time / capped"};
    for (int i = 0; i < 11; i++) tab_cell(&t, "%s", head[i]);
    for (size_t k = 0; k < w->fit->n; k++) {
        const bd_fit_portfolio_t *fp = &w->fit->pf[k];
        for (size_t i = 0; i < fp->n; i++) {
            const bd_fit_channel_t *c = &fp->ch[i];
            double x = c->cycles ? c->spend / c->cycles : 0;
            bool power = false;
            for (size_t dr = 0; dr < n; dr++) {
                const bd_env_channel_t *ec = &env[dr]->pf[k].ch[i];
                double f = bd_curve_value(&ec->conv, x) * (fp->objective == BD_OBJ_REVENUE ? ec->value : 1);
                roas[dr] = x > 0 ? f / x
                                 : bd_curve_roas_zero(&ec->conv) * (fp->objective == BD_OBJ_REVENUE ? ec->value : 1);
                power = ec->conv.kind == BD_CURVE_POWER;
                sat[dr] = power ? ec->conv.b : ec->conv.k;
            }
            bd_interval_t r = bd_interval_of(roas, n), s = bd_interval_of(sat, n);
            double slo, shi;
            wi_season_range(w, c, &slo, &shi);
            int capped = 0;
            for (int64_t q = 0; c->cap && q <= w->fit->c1 - w->fit->c0; q++) capped += c->cap[q] > 0;
            tab_cell(&t, "%s", fp->name);
            tab_cell(&t, "%s", c->name);
            tab_cell(&t, "%d", c->cycles);
            tab_cell(&t, "%.2f", x);
            tab_cell(&t, "%.2f", c->cycles ? c->conversions / c->cycles : 0);
            tab_cell(&t, "%.2f", c->value);
            tab_ratio(&t, &r);
            if (power) tab_cell(&t, "elasticity %.3f [%.3f, %.3f]", s.median, s.lo, s.hi);
            else tab_cell(&t, "%.0f [%.0f, %.0f]", s.median, s.lo, s.hi);
            tab_cell(&t, "%.3f", c->od);
            if (shi - slo < 1e-6) tab_cell(&t, "flat");
            else tab_cell(&t, "%.2f to %.2f", slo, shi);
            tab_cell(&t, "%.0f%% / %d", 100 * (c->lag_pmf ? c->lag_pmf[0] : 1), capped);
        }
    }
    tab_emit(d, &t);
    for (size_t dr = 0; dr < n; dr++) bd_env_free(env[dr]);
    free(env);
    free(roas);
    free(sat);
}

/* ---- the log view ---------------------------------------------------------------------- */

/* The fit's portfolio called name, or NULL. */
static const bd_fit_portfolio_t *wi_fit_pf(const wi_t *w, const char *name)
{
    for (size_t k = 0; k < w->fit->n; k++)
        if (!strcmp(w->fit->pf[k].name, name)) return &w->fit->pf[k];
    return NULL;
}

/* The model estimate of the log view: the fit's posterior-mean curves at the
 * allocation the config kept in force; a channel the config splits among
 * arms (v2) counts through its arms (its amount is theirs). */
static double wi_view_return(const wi_pf_t *v, const bd_fit_portfolio_t *fp)
{
    if (!v || !fp) return 0;
    const bd_model_ops_t *ops = bd_model_get(fp->model);
    double total = 0;
    for (int k = 0; k < v->nch; k++)
        for (size_t i = 0; i < fp->n; i++) {
            if (v->split[k] || strcmp(fp->ch[i].name, v->ch[k]) != 0) continue;
            bd_curve_t cv;
            ops->mean(&fp->ch[i].model, &fp->ch[i].prior, &cv);
            for (size_t s = 0; s < v->n; s++) total += bd_curve_value(&cv, v->steps[s].x[k]);
        }
    return total;
}

/* Mean spend per decision of channel ch in the log view v. */
static double wi_mean_spend(const wi_pf_t *v, const char *ch)
{
    for (int k = 0; v && v->n && k < v->nch; k++)
        if (strcmp(v->ch[k], ch) == 0) {
            double sum = 0;
            for (size_t s = 0; s < v->n; s++) sum += v->steps[s].x[k];
            return sum / (double)v->n;
        }
    return 0;
}

/* Config c's log view of the portfolio called name, or NULL. */
static const wi_pf_t *wi_view_get(const wi_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->view.n; i++)
        if (strcmp(c->view.pf[i].name, name) == 0) return &c->view.pf[i];
    return NULL;
}

/* "name count, ..." of the bounds that held channel ch, "-" when none. */
static void tab_view_bounds(wi_tab_t *t, const wi_pf_t *v, const char *ch)
{
    char buf[512] = "";
    size_t off = 0;
    for (int k = 0; v && k < v->nch; k++) {
        if (strcmp(v->ch[k], ch) != 0) continue;
        for (int b = 1; b < BD_BOUND__COUNT; b++)
            if (v->bound[k][b] && off < sizeof buf)
                off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s %u", off ? ", " : "",
                                        bd_bound_name((bd_bound_t)b), v->bound[k][b]);
    }
    tab_cell(t, "%s", off ? buf : "-");
}

/* One portfolio of the log view: the configs side by side. */
static void wi_view_pf(wi_doc_t *d, const wi_t *w, size_t i)
{
    const wi_pf_t *a = &w->cf[0].view.pf[i];
    const bd_fit_portfolio_t *fp = wi_fit_pf(w, a->name);
    size_t m = w->ncf;
    const wi_pf_t **v = bd_xcalloc(m, sizeof *v);
    for (size_t c = 0; c < m; c++) v[c] = c ? wi_view_get(&w->cf[c], a->name) : a;
    doc_h(d, 3, a->name);
    wi_tab_t t = {.ncol = m + 1};
    tab_cell(&t, "%s", "");
    for (size_t c = 0; c < m; c++) tab_cell(&t, "%s", w->cf[c].label);
    tab_cell(&t, "decisions");
    for (size_t c = 0; c < m; c++) tab_cell(&t, "%zu", v[c] ? v[c]->n : 0);
    tab_cell(&t, "applied / proposed / held");
    for (size_t c = 0; c < m; c++)
        tab_cell(&t, "%u / %u / %u", v[c] ? v[c]->applied : 0, v[c] ? v[c]->proposed : 0,
                 v[c] ? v[c]->held : 0);
    tab_cell(&t, "kill-switch");
    for (size_t c = 0; c < m; c++) tab_cell(&t, "%s", v[c] && v[c]->kills ? v[c]->kill_reason : "no trip");
    tab_cell(&t, "estimated return (model)");
    double ra = wi_view_return(a, fp);
    for (size_t c = 0; c < m; c++) {
        double r = wi_view_return(v[c], fp);
        if (c == 0) tab_cell(&t, "%.2f", r);
        else tab_cell(&t, "%.2f (%+.2f%%)", r, ra > 0 ? 100.0 * (r - ra) / ra : 0);
    }
    tab_emit(d, &t);
    /* channels: two configs keep the moved column, more get one spend
     * and one bound column each */
    bool two = m == 2;
    t = (wi_tab_t){.ncol = two ? 6 : 1 + 2 * m};
    tab_cell(&t, "channel");
    for (size_t c = 0; c < m; c++) tab_cell(&t, "mean spend %s", w->cf[c].label);
    if (two) tab_cell(&t, "moved");
    for (size_t c = 0; c < m; c++) tab_cell(&t, "bound %s", w->cf[c].label);
    for (int k = 0; k < a->nch; k++) {
        tab_cell(&t, "%s", a->ch[k]);
        for (size_t c = 0; c < m; c++) tab_cell(&t, "%.2f", wi_mean_spend(v[c], a->ch[k]));
        if (two) tab_cell(&t, "%+.2f", wi_mean_spend(v[1], a->ch[k]) - wi_mean_spend(a, a->ch[k]));
        for (size_t c = 0; c < m; c++) tab_view_bounds(&t, v[c], a->ch[k]);
    }
    tab_emit(d, &t);
    free(v);
}

/* The log view, a figure per portfolio (png[i], NULL: none). Returns the
 * figures shown. */
static int wi_view(wi_doc_t *d, const wi_t *w, char *const *png)
{
    doc_h(d, 2, "What each config would have decided on the observed data (log view)");
    doc_p(d, "The log replayed under each config: the decisions it would have taken on the data "
             "as recorded. Return is a **model estimate**: each channel's response curve is "
             "fitted on the whole log (posterior mean, no forgetting) and applied to the "
             "allocation each config kept in force. The log's reported spend followed the policy "
             "that ran when it was recorded, so under another config the overspend trigger "
             "compares that spend with allocations it never received: read its trips with that "
             "in mind (the closed loop above has no such artefact). For the same reason delivery "
             "caps are not learned here.");
    int plots = 0;
    for (size_t i = 0; i < w->cf[0].view.n; i++) {
        wi_view_pf(d, w, i);
        plots += doc_img(d, png[i], w->cf[0].view.pf[i].name);
    }
    return plots;
}

/* ---- whatif.json ---------------------------------------------------------------------- */

/* A JSON string (quotes, backslashes and control characters escaped). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* "key":{"median":..,"lo":..,"hi":..} with prec decimals. */
static void json_iv(FILE *f, const char *key, const bd_interval_t *v, int prec)
{
    fprintf(f, "\"%s\":{\"median\":%.*f,\"lo\":%.*f,\"hi\":%.*f}", key, prec, v->median, prec, v->lo,
            prec, v->hi);
}

/* The metrics of one summary, comma-separated members. */
static void json_metrics(FILE *f, const bd_loop_summary_t *s)
{
    json_iv(f, "return", &s->ret, 2);
    fputc(',', f);
    json_iv(f, "spend", &s->spend, 2);
    fputc(',', f);
    json_iv(f, "roas", &s->roas, 4);
    fputc(',', f);
    json_iv(f, "regret", &s->regret, 4);
    fputc(',', f);
    json_iv(f, "kills", &s->kills, 2);
}

/* DIR/whatif.json (docs/CONTRACT.md §10). */
static int wi_json(const wi_t *w)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/whatif.json", w->dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "budgetd whatif: %s: %s\n", path, strerror(errno));
        return BD_EXIT_RUNTIME;
    }
    fputs("{\"v\":1,\"configs\":[", f);
    for (size_t c = 0; c < w->ncf; c++) {
        const wi_config_t *cf = &w->cf[c];
        fprintf(f, "%s{\"name\":", c ? "," : "");
        json_str(f, cf->name);
        fputs(",\"label\":", f);
        json_str(f, cf->label);
        fputs(",\"file\":", f);
        json_str(f, cf->path);
        fputs(",\"settings\":{", f);
        for (size_t k = 0; k < cf->nsets; k++) {
            if (k) fputc(',', f);
            json_str(f, cf->sets[k].path);
            fputc(':', f);
            json_str(f, cf->sets[k].value);
        }
        fputs("},", f);
        json_metrics(f, &cf->sum);
        fputc(',', f);
        json_iv(f, "killed", &cf->sum.killed, 4);
        fputc(',', f);
        json_iv(f, "volatility", &cf->sum.volatility, 4);
        fputs(",\"bounds\":{", f);
        for (int b = 1; b < BD_BOUND__COUNT; b++) {
            if (b > 1) fputc(',', f);
            json_iv(f, bd_bound_name((bd_bound_t)b), &cf->sum.bound[b], 4);
        }
        fputs("},\"portfolios\":[", f);
        for (size_t k = 0; k < w->fit->n; k++) {
            const bd_loop_pf_t *r = &cf->runs[0].pf[k];
            fprintf(f, "%s{\"name\":", k ? "," : "");
            json_str(f, w->fit->pf[k].name);
            fprintf(f, ",\"managed\":%s", r->last >= r->first ? "true" : "false");
            if (r->last >= r->first) {
                fputc(',', f);
                json_metrics(f, &cf->pfsum[k]);
            }
            fputc('}', f);
        }
        fputs("]}", f);
    }
    size_t channels = 0;
    for (size_t k = 0; k < w->fit->n; k++) channels += w->fit->pf[k].n;
    fprintf(f, "],\"fit\":{\"portfolios\":%zu,\"channels\":%zu,\"cycles\":%lld,\"draws\":%d,"
               "\"seed\":%llu,\"cycle\":%lld,\"start\":%lld}}\n",
            w->fit->n, channels, (long long)(w->fit->c1 - w->fit->c0 + 1), w->draws,
            (unsigned long long)w->seed, (long long)w->fit->cycle,
            (long long)(w->fit->c0 * w->fit->cycle));
    if (fclose(f) != 0) {
        fprintf(stderr, "budgetd whatif: %s: %s\n", path, strerror(errno));
        return BD_EXIT_RUNTIME;
    }
    return BD_EXIT_OK;
}

/* ---- the report ------------------------------------------------------------------------ */

static const char *HTML_HEAD =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>budgetd what-if</title>\n"
    "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:3px 8px;"
    "text-align:left;font-size:90%}th{background:#eee}img{max-width:100%}code{background:#f4f4f4}"
    "</style></head><body>\n";

/* The intro: which config is which, and the log. */
static void wi_intro(wi_doc_t *d, const wi_t *w)
{
    fputs("# budgetd what-if\n\n", d->md);
    fputs("<h1>budgetd what-if</h1>\n", d->html);
    char *s = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&s, &len);
    for (size_t c = 0; c < w->ncf; c++) {
        const wi_config_t *cf = &w->cf[c];
        fprintf(m, "%s%s = `%s`", c ? ", " : "", cf->label, cf->path);
        for (size_t k = 0; k < cf->nsets; k++)
            fprintf(m, "%s%s=%s%s", k ? ", " : " (", cf->sets[k].path, cf->sets[k].value,
                    k + 1 == cf->nsets ? ")" : "");
    }
    fputs(", log:", m);
    for (int i = 0; i < w->nlogs; i++) fprintf(m, " `%s`", w->logs[i]);
    fclose(m);
    doc_p(d, "%s", s);
    free(s);
    if (!w->nsets) return;
    /* a sweep: its grid as a table, a column per --set path */
    wi_tab_t t = {.ncol = 2 + w->nsets};
    tab_cell(&t, "config");
    tab_cell(&t, "file");
    for (size_t k = 0; k < w->nsets; k++) tab_cell(&t, "%s", w->sets[k].path);
    for (size_t c = 0; c < w->ncf; c++) {
        tab_cell(&t, "%s", w->cf[c].label);
        tab_cell(&t, "`%s`", w->cf[c].path);
        for (size_t k = 0; k < w->nsets; k++) tab_cell(&t, "%s", w->cf[c].sets[k].value);
    }
    tab_emit(d, &t);
}

/* See whatif_int.h: the figures first (one gnuplot session, so the HTML
 * can inline them), then the two documents, whatif.json, stdout. */
int wi_report(wi_t *w)
{
    char mdpath[1024], htpath[1024];
    snprintf(mdpath, sizeof mdpath, "%s/summary.md", w->dir);
    snprintf(htpath, sizeof htpath, "%s/report.html", w->dir);
    wi_doc_t d = {fopen(mdpath, "w"), fopen(htpath, "w"), w->dir};
    if (!d.md || !d.html) {
        fprintf(stderr, "budgetd whatif: %s: %s\n", d.md ? htpath : mdpath, strerror(errno));
        if (d.md) fclose(d.md);
        if (d.html) fclose(d.html);
        return BD_EXIT_RUNTIME;
    }
    /* the figures first (one gnuplot session), then the documents */
    FILE *g = w->plots ? wi_plot_begin() : NULL;
    size_t nv = w->cf[0].view.n, nf = w->fit->n;
    char *ret_png = wi_plot_returns(g, w), *front_png = wi_plot_frontier(g, w);
    char **sim_png = bd_xcalloc(nf + 1, sizeof *sim_png), **view_png = bd_xcalloc(nv + 1, sizeof *view_png);
    for (size_t k = 0; k < nf; k++) sim_png[k] = wi_plot_paths(g, w, k);
    for (size_t i = 0; i < nv; i++) view_png[i] = wi_plot_view(g, w, i, w->cf[0].view.pf[i].name);
    wi_plot_end(g);
    fputs(HTML_HEAD, d.html);
    wi_intro(&d, w);
    wi_closed_loop(&d, w);
    int plots = doc_img(&d, ret_png, "return distribution per config");
    plots += doc_img(&d, front_png, "frontier");
    for (size_t k = 0; k < nf; k++) {
        wi_closed_loop_pf(&d, w, k);
        plots += doc_img(&d, sim_png[k], w->fit->pf[k].name);
    }
    wi_fitted(&d, w);
    plots += wi_view(&d, w, view_png);
    fputs("</body></html>\n", d.html);
    fclose(d.md);
    fclose(d.html);
    for (size_t k = 0; k < nf; k++) free(sim_png[k]);
    for (size_t i = 0; i < nv; i++) free(view_png[i]);
    free(sim_png);
    free(view_png);
    free(ret_png);
    free(front_png);
    int rc = wi_json(w);
    if (rc != BD_EXIT_OK) return rc;
    /* the summary also goes to stdout, for the terminal */
    FILE *in = fopen(mdpath, "r");
    char buf[4096];
    size_t got;
    while (in && (got = fread(buf, 1, sizeof(buf), in)) > 0) fwrite(buf, 1, got, stdout);
    if (in) fclose(in);
    fprintf(stderr, "whatif: wrote %s/report.html, summary.md and whatif.json%s\n", w->dir,
            plots || !w->plots ? "" : " (gnuplot not found: no plots)");
    return BD_EXIT_OK;
}
