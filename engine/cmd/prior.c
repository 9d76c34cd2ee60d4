/* prior.c: `budgetd prior import`: channel response curves from a
 * media-mix model (Robyn's exported hyperparameters and coefficients, or
 * the documented curve CSV that Meridian or PyMC-Marketing results can be
 * written to) and lift-test results, written as a config fragment of
 * channel `prior` and `lift` keys (docs/CONTRACT.md §11.3). The readers and
 * the fit are in prior_read.c.
 *
 * Units: an MMM's curve is per its data period (`--interval`, a week by
 * default); budgetd's per cycle. A steady spend of x per cycle is x
 * interval/cycle per period, so the curve's return per unit spend (roas)
 * carries over and its saturation spend scales by cycle/interval.
 * Strength: where the source gives the response's CV, the prior is worth
 * n = 1/CV^2 conversions (2/CV^2 with objective revenue, whose value per
 * conversion is as uncertain as its count), which is n / c cycles of data
 * at the saturation spend, c = roas k (1 - 1/e) / v conversions per cycle
 * (v = 50, the built-in value per conversion, for revenue, whose sources
 * do not say what a channel's conversions are worth; 1 for conversions).
 * Elsewhere `--strength` (24 by default). */
#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd.h"
#include "opts.h"
#include "prior.h"
#include "budgetd/yaml.h"

#define PI_VALUE_PRIOR 50.0 /* the model's built-in value per conversion (portfolio.c) */

static void prior_usage(FILE *f)
{
    fputs("usage: budgetd prior import [--robyn-hyper FILE --robyn-agg FILE [--solution ID]]\n"
          "                            [--curves FILE] [--lift FILE] [-o OUT]\n"
          "                            [--interval DUR] [--cycle DUR | -c CONFIG]\n"
          "                            [--portfolio P] [--objective revenue|conversions]\n"
          "                            [--strength N] [--rename FROM=TO]...\n"
          "  writes a config fragment of channel `prior` and `lift` keys\n"
          "  --robyn-hyper, --robyn-agg  Robyn's pareto_hyperparameters.csv, pareto_aggregated.csv\n"
          "  --curves FILE   channel,roas,saturation[,roas_sd] or channel,spend,response[,response_sd]\n"
          "  --lift FILE     channel,spend,conversions,se and cycles, or start,end (YYYY-MM-DD)\n"
          "  --interval DUR  the model's data period (default 7d); --cycle budgetd's (default 1h,\n"
          "                  or the config's with -c)\n"
          "  --strength N    cycles of data a prior without a stated uncertainty is worth (24)\n",
          f);
}

typedef struct {
    const char *hyper, *agg, *sol, *curves, *lift, *out, *config, *portfolio;
    int64_t interval, cycle;
    bool revenue, cycle_set, objective_set;
    double strength;
} prior_args_t;

/* The options into a; an exit code when the command must stop (-1: go on). */
static int prior_parse(int argc, char **argv, prior_args_t *a, bd_pi_set_t *set)
{
    enum { O_HYPER = 256, O_AGG, O_SOL, O_CURVES, O_LIFT, O_INTERVAL, O_CYCLE, O_PORTFOLIO,
           O_OBJECTIVE, O_STRENGTH, O_RENAME };
    static const struct option longopts[] = {
        {"robyn-hyper", required_argument, NULL, O_HYPER}, {"robyn-agg", required_argument, NULL, O_AGG},
        {"solution", required_argument, NULL, O_SOL},      {"curves", required_argument, NULL, O_CURVES},
        {"lift", required_argument, NULL, O_LIFT},         {"interval", required_argument, NULL, O_INTERVAL},
        {"cycle", required_argument, NULL, O_CYCLE},       {"portfolio", required_argument, NULL, O_PORTFOLIO},
        {"objective", required_argument, NULL, O_OBJECTIVE},
        {"strength", required_argument, NULL, O_STRENGTH}, {"rename", required_argument, NULL, O_RENAME},
        {"config", required_argument, NULL, 'c'},          {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},                  {NULL, 0, NULL, 0}};
    bd_opts_t o;
    bd_opts_init(&o, "prior", argc, argv, "c:o:h", longopts);
    int ch, rc = -1;
    while (rc < 0 && (ch = bd_opts_next(&o)) != -1) {
        int64_t d;
        char *end;
        switch (ch) {
        case O_HYPER: a->hyper = o.arg; break;
        case O_AGG: a->agg = o.arg; break;
        case O_SOL: a->sol = o.arg; break;
        case O_CURVES: a->curves = o.arg; break;
        case O_LIFT: a->lift = o.arg; break;
        case O_PORTFOLIO: a->portfolio = o.arg; break;
        case 'c': a->config = o.arg; break;
        case 'o': a->out = o.arg; break;
        case O_INTERVAL:
        case O_CYCLE:
            if ((d = bd_yaml_parse_duration(o.arg)) <= 0 || d > BD_DURATION_MAX) {
                rc = bd_opts_fail("prior", "%s: '%s' is not a duration of at most 366d (90s, 15m, 1h, 7d)", o.name, o.arg);
                break;
            }
            if (ch == O_CYCLE) { a->cycle = d; a->cycle_set = true; }
            else a->interval = d;
            break;
        case O_OBJECTIVE:
            a->objective_set = true;
            if (!strcmp(o.arg, "revenue")) a->revenue = true;
            else if (!strcmp(o.arg, "conversions")) a->revenue = false;
            else rc = bd_opts_fail("prior", "%s: '%s' is not revenue or conversions", o.name, o.arg);
            break;
        case O_STRENGTH:
            a->strength = strtod(o.arg, &end);
            if (!*o.arg || *end || !(a->strength >= 0) || !isfinite(a->strength))
                rc = bd_opts_fail("prior", "%s: '%s' is not a number >= 0", o.name, o.arg);
            break;
        case O_RENAME: {
            const char *eq = strchr(o.arg, '=');
            if (!eq || eq == o.arg || !eq[1]) {
                rc = bd_opts_fail("prior", "%s: want FROM=TO, got '%s'", o.name, o.arg);
                break;
            }
            size_t k = set->n_rename++;
            set->rename_from = bd_xrealloc(set->rename_from, set->n_rename * sizeof(char *));
            set->rename_to = bd_xrealloc(set->rename_to, set->n_rename * sizeof(char *));
            char *from = bd_xstrdup(o.arg);
            from[eq - o.arg] = '\0';
            set->rename_from[k] = from;
            set->rename_to[k] = eq + 1;
            break;
        }
        case 'h': prior_usage(stdout); rc = BD_EXIT_OK; break;
        default: prior_usage(stderr); rc = BD_EXIT_USAGE; break;
        }
    }
    if (rc < 0 && (o.npos != 1 || strcmp(o.pos[0], "import"))) {
        prior_usage(stderr);
        rc = BD_EXIT_USAGE;
    }
    if (rc < 0 && !a->hyper != !a->agg)
        rc = bd_opts_fail("prior", "--robyn-hyper and --robyn-agg go together");
    if (rc < 0 && !a->hyper && !a->curves && !a->lift)
        rc = bd_opts_fail("prior", "nothing to import: give --robyn-hyper/--robyn-agg, --curves or --lift");
    bd_opts_free(&o);
    return rc;
}

/* -c CONFIG: the cycle, and the objective of --portfolio (or defaults). */
static bool prior_from_config(prior_args_t *a)
{
    char err[8192];
    bd_config_t *cfg;
    if (bd_config_load(a->config, &cfg, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    if (!a->cycle_set) a->cycle = cfg->cycle;
    const bd_portfolio_cfg_t *pc = a->portfolio ? bd_config_portfolio(cfg, a->portfolio) : NULL;
    if (!a->objective_set) a->revenue = (pc ? pc->p.objective : cfg->defaults.objective) == BD_OBJ_REVENUE;
    bd_config_free(cfg);
    return true;
}

/* The channel's prior per cycle: roas, saturation scaled by cycle /
 * interval, strength from its CV (see the file comment). */
static void prior_per_cycle(const prior_args_t *a, const bd_pi_chan_t *c, double *sat, double *strength)
{
    *sat = c->sat * (double)a->cycle / (double)a->interval;
    *strength = a->strength;
    if (isfinite(c->cv) && c->cv > 0) {
        double n = (a->revenue ? 2.0 : 1.0) / (c->cv * c->cv);
        double per = c->roas * *sat * (1 - exp(-1.0)) / (a->revenue ? PI_VALUE_PRIOR : 1.0);
        if (per > 0) *strength = n / per;
    }
}

/* The fragment: `portfolios: P: channels:` (or `channels:` alone), one
 * channel per entry, flow maps so that it pastes under a portfolio. */
static bool prior_write(FILE *f, const prior_args_t *a, const bd_pi_set_t *set)
{
    fprintf(f, "# budgetd prior import:");
    if (a->hyper) fprintf(f, " Robyn %s, %s%s%s;", a->hyper, a->agg, a->sol ? " solution " : "",
                          a->sol ? a->sol : "");
    if (a->curves) fprintf(f, " curves %s;", a->curves);
    if (a->lift) fprintf(f, " lift tests %s;", a->lift);
    fprintf(f, " data period %llds, cycle %llds, objective %s\n", (long long)a->interval,
            (long long)a->cycle, a->revenue ? "revenue" : "conversions");
    const char *ind = "";
    if (a->portfolio) {
        fprintf(f, "portfolios:\n  %s:\n", a->portfolio);
        ind = "    ";
    }
    fprintf(f, "%schannels:\n", ind);
    for (size_t i = 0; i < set->n; i++) {
        const bd_pi_chan_t *c = &set->ch[i];
        fprintf(f, "%s  %s:\n", ind, c->name);
        if (c->has_curve) {
            double sat, strength;
            prior_per_cycle(a, c, &sat, &strength);
            if (!(sat > 0) || sat > BD_MONEY_MAX) {
                fprintf(stderr, "budgetd prior: %s: saturation %g per cycle is out of range\n", c->name, sat);
                return false;
            }
            fprintf(f, "%s    prior: {roas: %.6g, saturation: %.2f, strength: %.1f}\n", ind, c->roas,
                    fmax(sat, 0.01), strength);
        }
        if (c->n_lift) {
            fprintf(f, "%s    lift:\n", ind);
            for (size_t j = 0; j < c->n_lift; j++) {
                double cycles = c->lift_seconds[j] > 0 ? c->lift_seconds[j] / (double)a->cycle : c->lift[j].cycles;
                if (!(cycles >= 1)) {
                    fprintf(stderr, "budgetd prior: %s: a lift test shorter than one cycle\n", c->name);
                    return false;
                }
                fprintf(f, "%s      - {spend: %.2f, conversions: %.6g, se: %.6g, cycles: %.6g}\n", ind,
                        c->lift[j].spend, c->lift[j].conversions, c->lift[j].se, cycles);
            }
        }
    }
    return true;
}

int bd_cmd_prior(int argc, char **argv)
{
    prior_args_t a = {.interval = 7 * 86400, .cycle = 3600, .revenue = true, .strength = 24};
    bd_pi_set_t set = {0};
    int rc = prior_parse(argc, argv, &a, &set);
    char err[1024];
    FILE *f = NULL;
    if (rc >= 0) goto out;
    rc = BD_EXIT_RUNTIME;
    if (a.config && !prior_from_config(&a)) {
        rc = BD_EXIT_USAGE;
        goto out;
    }
    if ((a.hyper && !bd_pi_robyn(a.hyper, a.agg, a.sol, &set, err, sizeof err)) ||
        (a.curves && !bd_pi_curves(a.curves, &set, err, sizeof err)) ||
        (a.lift && !bd_pi_lifts(a.lift, &set, err, sizeof err))) {
        fprintf(stderr, "budgetd prior: %s\n", err);
        goto out;
    }
    f = a.out && strcmp(a.out, "-") ? fopen(a.out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "budgetd prior: %s: cannot write\n", a.out);
        goto out;
    }
    if (prior_write(f, &a, &set)) rc = BD_EXIT_OK;
    if (!bd_opts_finish_output("prior", f)) rc = BD_EXIT_RUNTIME;
out:
    for (size_t i = 0; i < set.n_rename; i++) free((void *)set.rename_from[i]);
    free(set.rename_from);
    free(set.rename_to);
    bd_pi_free(&set);
    return rc;
}
