/* whatif_plot.c: the figures of `budgetd whatif` (whatif_int.h), drawn by
 * one gnuplot session (pngcairo) from .dat files written beside them, so
 * the numbers behind every figure stay in the output directory. Time axes
 * show dates (UTC): a cycle is plotted at its start. The .dat files are
 * written whether or not gnuplot is there; a figure it could not draw is
 * left out of the report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "budgetd/stats.h"
#include "whatif_int.h"

/* See whatif_int.h. */
FILE *wi_plot_begin(void)
{
    return popen("gnuplot 2>/dev/null", "w");
}

/* See whatif_int.h. */
bool wi_plot_end(FILE *g)
{
    return g && pclose(g) == 0;
}

/* Starts a figure of width x height pixels at dir/png in session g (every
 * setting of the figure before reset). */
static void plot_open(FILE *g, const char *dir, const char *png, int width, int height)
{
    fprintf(g, "reset\nset terminal pngcairo size %d,%d font ',9'\nset output '%s/%s'\n", width,
            height, dir, png);
    fputs("set key outside right noenhanced\nset grid\n", g);
}

/* Ends the figure (gnuplot writes the file); its name, malloc'd. */
static char *plot_close(FILE *g, const char *png)
{
    fputs("unset output\n", g);
    return bd_xstrdup(png);
}

/* A date axis for x values in Unix seconds. */
static void plot_dates(FILE *g)
{
    fputs("set xdata time\nset timefmt '%s'\nset format x \"%d %b\\n%H:%M\"\n", g);
}

/* dir/NAME.LABEL.dat of config c's log view (label in lower case). */
static void plot_view_dat(const wi_t *w, const char *name, size_t c, char *out, size_t cap)
{
    char lab[sizeof w->cf[0].label];
    size_t i = 0;
    for (; w->cf[c].label[i] && i + 1 < sizeof lab; i++) lab[i] = (char)(w->cf[c].label[i] | 0x20);
    lab[i] = '\0';
    snprintf(out, cap, "%s/%s.%s.dat", w->dir, name, lab);
}

/* See whatif_int.h: one .dat per config (its steps), lines by channel,
 * dash type by config (the first four). */
char *wi_plot_view(FILE *g, const wi_t *w, size_t pf_index, const char *name)
{
    const wi_pf_t *a = &w->cf[0].view.pf[pf_index];
    int64_t L = w->base->cycle;
    char dat[1024], png[512];
    for (size_t c = 0; c < w->ncf; c++) {
        const wi_pf_t *v = NULL;
        for (size_t k = 0; k < w->cf[c].view.n; k++)
            if (!strcmp(w->cf[c].view.pf[k].name, name)) v = &w->cf[c].view.pf[k];
        plot_view_dat(w, name, c, dat, sizeof dat);
        FILE *f = fopen(dat, "w");
        if (!f) return NULL;
        for (size_t s = 0; v && s < v->n; s++) {
            fprintf(f, "%lld", (long long)(v->steps[s].cycle * L));
            for (int k = 0; k < a->nch; k++) {
                double x = 0;
                for (int j = 0; j < v->nch; j++)
                    if (!strcmp(v->ch[j], a->ch[k])) x = v->steps[s].x[j];
                fprintf(f, " %.2f", x);
            }
            fputc('\n', f);
        }
        fclose(f);
    }
    snprintf(png, sizeof png, "%s.png", name);
    if (!g) return NULL;
    plot_open(g, w->dir, png, 1000, 500);
    plot_dates(g);
    fprintf(g, "set title 'budgetd whatif, log view: %s (A solid, B dashed, C dotted, D dash-dot)' "
               "noenhanced\n", name);
    fputs("set ylabel 'spend per cycle'\nplot ", g);
    for (size_t c = 0; c < w->ncf && c < 4; c++)
        for (int k = 0; k < a->nch; k++) {
            plot_view_dat(w, name, c, dat, sizeof dat);
            fprintf(g, "%s'%s' using 1:%d with lines dt %zu lw 2 lc %d title '%s %s'",
                    c || k ? ", " : "", dat, k + 2, c + 1, k + 1, w->cf[c].label, a->ch[k]);
        }
    fputs("\n", g);
    return plot_close(g, png);
}

/* The median over draws of config c's spend on channel i of fit portfolio
 * k at cycle t (0 when no draw ran it). */
static double plot_median_spend(const wi_t *w, const wi_config_t *c, size_t k, int64_t t, size_t i,
                                double *buf)
{
    size_t m = 0;
    for (int d = 0; d < w->draws; d++) {
        const bd_loop_pf_t *r = &c->runs[d].pf[k];
        if (t < r->first || t > r->last || i >= r->n) continue;
        buf[m++] = r->x[(size_t)(t - r->first) * r->n + i];
    }
    return m ? bd_stats_quantile(buf, m, 0.5) : 0;
}

#define PLOT_MAX_PANELS 6

/* See whatif_int.h: a panel per config (the first six), the median over
 * the draws of each channel's spend per cycle. */
char *wi_plot_paths(FILE *g, const wi_t *w, size_t k)
{
    const bd_fit_portfolio_t *fp = &w->fit->pf[k];
    int64_t L = w->fit->cycle;
    char dat[1024], png[512];
    snprintf(dat, sizeof dat, "%s/%s.sim.dat", w->dir, fp->name);
    FILE *f = fopen(dat, "w");
    if (!f) return NULL;
    double *buf = bd_xcalloc((size_t)w->draws + 1, sizeof(double));
    size_t panels = w->ncf < PLOT_MAX_PANELS ? w->ncf : PLOT_MAX_PANELS;
    /* columns: time, then per config the channels of its environment */
    for (int64_t t = fp->first; t <= fp->last; t++) {
        fprintf(f, "%lld", (long long)(t * L));
        for (size_t c = 0; c < panels; c++) {
            const bd_loop_pf_t *r = &w->cf[c].runs[0].pf[k];
            for (size_t i = 0; i < r->n; i++)
                fprintf(f, " %.2f", plot_median_spend(w, &w->cf[c], k, t, i, buf));
        }
        fputc('\n', f);
    }
    fclose(f);
    free(buf);
    snprintf(png, sizeof png, "%s.sim.png", fp->name);
    if (!g) return NULL;
    plot_open(g, w->dir, png, 1000, 60 + 260 * (int)panels);
    plot_dates(g);
    fprintf(g, "set multiplot layout %zu,1 title 'budgetd whatif, closed loop: %s, median spend "
               "over the draws' noenhanced\n", panels, fp->name);
    fputs("set ylabel 'spend per cycle'\n", g);
    int col = 2;
    for (size_t c = 0; c < panels; c++) {
        /* the environment's channels: the log's, then the config's own */
        bd_env_t *e = bd_env_new(w->fit, w->cf[c].cfg, w->seed, 0);
        const bd_env_portfolio_t *ep = &e->pf[k];
        fprintf(g, "set title '%s' noenhanced\nplot ", w->cf[c].label);
        for (size_t i = 0; i < ep->n; i++)
            fprintf(g, "%s'%s' using 1:%d with lines lw 2 lc %zu title '%s%s'", i ? ", " : "", dat,
                    col++, i + 1, ep->ch[i].name, ep->ch[i].split ? " (spent by its arms)" : "");
        if (!ep->n) fputs("0 notitle", g);
        fputs("\n", g);
        bd_env_free(e);
    }
    fputs("unset multiplot\n", g);
    return plot_close(g, png);
}

/* See whatif_int.h: a candlestick per config over its draws' returns. */
char *wi_plot_returns(FILE *g, const wi_t *w)
{
    char dat[1024], pts[1024];
    snprintf(dat, sizeof dat, "%s/returns.dat", w->dir);
    snprintf(pts, sizeof pts, "%s/returns.draws.dat", w->dir);
    FILE *f = fopen(dat, "w"), *p = fopen(pts, "w");
    if (!f || !p) {
        if (f) fclose(f);
        if (p) fclose(p);
        return NULL;
    }
    double *v = bd_xcalloc((size_t)w->draws + 1, sizeof(double));
    for (size_t c = 0; c < w->ncf; c++) {
        size_t n = (size_t)w->draws;
        for (size_t d = 0; d < n; d++) {
            double r = 0;
            for (size_t k = 0; k < w->cf[c].runs[d].n; k++) r += w->cf[c].runs[d].pf[k].ret;
            v[d] = r;
            fprintf(p, "%zu %.2f\n", c, r);
        }
        double q[5] = {0.05, 0.25, 0.5, 0.75, 0.95};
        fprintf(f, "%zu %s", c, w->cf[c].label);
        for (int j = 0; j < 5; j++) fprintf(f, " %.2f", bd_stats_quantile(v, n, q[j]));
        fputc('\n', f);
    }
    free(v);
    fclose(f);
    fclose(p);
    if (!g) return NULL;
    plot_open(g, w->dir, "returns.png", 1000, 420);
    fprintf(g, "set title 'budgetd whatif: return over %d draws per config (box 25-75%%, whiskers "
               "5-95%%, line median)'\nset ylabel 'return'\nset xrange [-0.6:%zu.6]\n"
               "set boxwidth 0.4\nset style fill empty\nunset key\nset format y '%%.4s%%c'\n",
            w->draws, w->ncf - 1);
    fprintf(g, "plot '%s' using 1:4:3:7:6:xtic(2) with candlesticks whiskerbars lw 2 lc 1, "
               "'' using 1:5:5:5:5 with candlesticks lw 3 lc 1, "
               "'%s' using 1:2 with points pt 7 ps 0.4 lc 3\n",
            dat, pts);
    return plot_close(g, "returns.png");
}

/* See whatif_int.h: median return against the 5% return and against the
 * spend volatility, one labelled point per config. */
char *wi_plot_frontier(FILE *g, const wi_t *w)
{
    char dat[1024];
    snprintf(dat, sizeof dat, "%s/frontier.dat", w->dir);
    FILE *f = fopen(dat, "w");
    if (!f) return NULL;
    fputs("# label median_return downside_return_5pct spend_volatility\n", f);
    for (size_t c = 0; c < w->ncf; c++)
        fprintf(f, "%s %.2f %.2f %.6f\n", w->cf[c].label, w->cf[c].sum.ret.median,
                w->cf[c].sum.ret.lo, w->cf[c].sum.volatility.median);
    fclose(f);
    if (!g) return NULL;
    plot_open(g, w->dir, "frontier.png", 1000, 420);
    fputs("set multiplot layout 1,2 title 'budgetd whatif: the frontier (up and to the right: "
          "more return with less risk)'\nunset key\nset ylabel 'median return'\n"
          "set format y '%.4s%c'\nset offsets graph 0.1, graph 0.1, graph 0.1, graph 0.1\n", g);
    fprintf(g, "set title 'return vs downside'\nset xlabel 'return in the worst 5%% of draws'\n"
               "set format x '%%.4s%%c'\nset xtics rotate by -30\n"
               "plot '%s' using 3:2 with points pt 7 ps 1.2 lc 1, '' using 3:2:1 with labels "
               "offset 1,1 noenhanced\n", dat);
    fprintf(g, "set title 'return vs spend volatility'\nset xlabel '%% of the budget moved per "
               "cycle (median)'\nset format x '%%.2f'\nset xrange [*:*] reverse\n"
               "plot '%s' using ($4*100):2 with points pt 7 ps 1.2 lc 2, '' using ($4*100):2:1 "
               "with labels offset 1,1 noenhanced\n", dat);
    fputs("unset multiplot\n", g);
    return plot_close(g, "frontier.png");
}

/* See whatif_int.h. */
bool wi_base64_file(FILE *out, const char *path)
{
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char in[3];
    size_t n;
    while ((n = fread(in, 1, 3, f)) > 0) {
        unsigned v = (unsigned)in[0] << 16 | (n > 1 ? (unsigned)in[1] << 8 : 0) | (n > 2 ? in[2] : 0);
        fputc(T[v >> 18 & 63], out);
        fputc(T[v >> 12 & 63], out);
        fputc(n > 1 ? T[v >> 6 & 63] : '=', out);
        fputc(n > 2 ? T[v & 63] : '=', out);
    }
    fclose(f);
    return true;
}
