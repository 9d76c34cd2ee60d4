/* whatif_int.h: what the files of `budgetd whatif` share (whatif.c: the
 * command, its configs and runs; whatif_report.c: summary.md, report.html
 * and whatif.json; whatif_plot.c: the gnuplot figures). Private to
 * engine/cmd. */
#ifndef BUDGETD_CMD_WHATIF_INT_H
#define BUDGETD_CMD_WHATIF_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "budgetd/whatif.h"

#define WI_MAXCH 64             /* channels per portfolio the log view tracks */
#define WI_MAX_CONFIGS 64       /* configs of one run (the --set grid included) */
#define WI_DEFAULT_DIR "whatif-out"
#define WI_DEFAULT_DRAWS 50
#define WI_MAX_DRAWS 10000

/* ---- the log view: a config's decisions on the observed data ------------- */

/* One allocation in force after a decision. */
typedef struct {
    int64_t cycle;
    double x[WI_MAXCH];
} wi_step_t;

typedef struct {
    char name[BD_NAME_MAX + 1];
    char ch[WI_MAXCH][BD_NAME_MAX + 1];
    bool split[WI_MAXCH];         /* v2: the config splits it among arms (they spend it) */
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

/* ---- one config of the comparison ------------------------------------------ */

typedef struct {
    char label[8];               /* A, B, ..., Z, C27, ... */
    const char *path;            /* the -c file */
    bd_config_set_t *sets;       /* its --set values (strings owned by the wi_t) */
    size_t nsets;
    char *name;                  /* path, then " PATH=VALUE" per setting (owned) */
    bd_config_t *cfg;            /* as loaded (the closed loop runs it as written) */
    bd_config_t *view_cfg;       /* the same with delivery caps off (log view) */
    bd_engine_t *view_e;         /* the log view's engine */
    wi_run_t view;
    bd_loop_result_t *runs;      /* its draws (into wi_t.res) */
    bd_loop_summary_t sum;       /* over the portfolios it manages */
    bd_loop_summary_t *pfsum;    /* per portfolio of the fit */
} wi_config_t;

/* One --set PATH=V1,V2,... */
typedef struct {
    const char *path;
    char **values;
    size_t n;
} wi_set_t;

/* The command: its arguments and everything it computed. */
typedef struct {
    const char *cfgp[WI_MAX_CONFIGS];
    int ncfgp;
    wi_set_t *sets;
    size_t nsets;
    const char *dir;
    const char **logs;
    int nlogs;
    int draws, threads;
    uint64_t seed;
    bool plots;                  /* draw the figures (--no-plots: only their .dat files) */
    bd_config_t *base;           /* the first -c as written: the config the log ran under */
    wi_config_t cf[WI_MAX_CONFIGS];
    size_t ncf;
    bd_fit_t *fit;
    bd_loop_result_t *res;       /* ncf x draws */
} wi_t;

/* ---- whatif_report.c -------------------------------------------------------- */

/* Writes DIR/summary.md, DIR/report.html, DIR/whatif.json (and the plots
 * through whatif_plot.c), then echoes summary.md to stdout. Returns
 * BD_EXIT_OK or BD_EXIT_RUNTIME (message printed). */
int wi_report(wi_t *w);

/* ---- whatif_plot.c ---------------------------------------------------------- */

/* One gnuplot session draws every figure of a report: begin (NULL when
 * gnuplot cannot be started), the figures, end (true when gnuplot ran to
 * the end). Each figure writes its .dat file(s) into w->dir, then (g not
 * NULL) its commands, and returns its PNG's name inside w->dir (malloc'd;
 * NULL without g). The PNG exists once wi_plot_end returned. */
FILE *wi_plot_begin(void);
bool wi_plot_end(FILE *g);
char *wi_plot_view(FILE *g, const wi_t *w, size_t pf_index, const char *name);
char *wi_plot_paths(FILE *g, const wi_t *w, size_t fit_pf);
char *wi_plot_returns(FILE *g, const wi_t *w);
char *wi_plot_frontier(FILE *g, const wi_t *w);

/* Writes the file at path as base64 (RFC 4648, no line breaks) to f;
 * false when it cannot be read. */
bool wi_base64_file(FILE *f, const char *path);

#endif
