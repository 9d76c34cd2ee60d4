/* explain.c: `budgetd explain P [CYCLE] -c CONFIG`: why a decision is what
 * it is, in words, from its decision record in PFX:{P}:decisions (the last
 * one, or the one of CYCLE) and the guardrails of the config: the path the
 * decision took, what bound each channel, the intervals it was decided on,
 * risk, kill-switch, season and data faults when the record has them. The
 * record is the contract (docs/CONTRACT.md §3); fields this budgetd does not
 * know are shown by name rather than dropped. */
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cJSON.h>
#include "budgetd/config.h"
#include "budgetd/redis.h"
#include "cmd.h"
#include "opts.h"

typedef struct {
    const char *cfg_path, *url, *portfolio;
    int64_t cycle; /* -1: the last */
} explain_args_t;

/* The usage text, to stdout for --help, stderr for bad use. */
static void explain_usage(FILE *f)
{
    fputs("usage: budgetd explain P [CYCLE] -c CONFIG [--redis URL]\n"
          "  says why the decision of portfolio P for CYCLE (default: the last one) is what it\n"
          "  is: the path it took, what bound each channel, intervals, risk, kill-switch, mode\n",
          f);
}

/* Parses argv. Returns -1 to go on, else the exit code. */
static int explain_parse(int argc, char **argv, explain_args_t *a)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"redis", required_argument, NULL, 'r'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    bd_opts_t o;
    bd_opts_init(&o, "explain", argc, argv, "c:h", longopts);
    a->cycle = -1;
    int ch, rc = -1;
    while (rc < 0 && (ch = bd_opts_next(&o)) != -1) {
        switch (ch) {
        case 'c': a->cfg_path = o.arg; break;
        case 'r': a->url = o.arg; break;
        case 'h': explain_usage(stdout); rc = BD_EXIT_OK; break;
        default: explain_usage(stderr); rc = BD_EXIT_USAGE; break;
        }
    }
    long long v;
    if (rc < 0 && (!a->cfg_path || o.npos < 1 || o.npos > 2)) {
        explain_usage(stderr);
        rc = BD_EXIT_USAGE;
    } else if (rc < 0 && !bd_name_valid(o.pos[0], strlen(o.pos[0]))) {
        rc = bd_opts_fail("explain", "'%s' is not a portfolio name (1-64 of A-Z a-z 0-9 _ . : -)", o.pos[0]);
    } else if (rc < 0 && o.npos == 2 && !bd_opts_parse_ll(o.pos[1], 0, INT64_MAX, &v)) {
        rc = bd_opts_fail("explain", "CYCLE must be a cycle number, got '%s'", o.pos[1]);
    } else if (rc < 0) {
        a->portfolio = o.pos[0];
        if (o.npos == 2) a->cycle = v;
    }
    bd_opts_free(&o);
    return rc;
}

/* Field k of j as a number (NAN when absent or null). */
static double jnum(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Field k of j as a string ("" when absent). */
static const char *jstr(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* What the path means, in a sentence. */
static const char *explain_path(const char *path)
{
    static const struct {
        const char *name, *words;
    } T[] = {
        {"initial", "the configured initial split, published when the portfolio was first seen"},
        {"applied", "applied: written to alloc, adapters spend it"},
        {"kept", "kept: the change was smaller than min_change, so the allocation in force stays"},
        {"proposed", "proposed: written to proposal only; it waits for an operator's approval (advice only in "
                     "mode assist)"},
        {"escalated", "escalated: a channel would move by more than escalate_above, so the change waits for "
                      "approval"},
        {"approved", "approved: an operator approved the proposal and it was applied"},
        {"held", "held: the allocation was not published (the verifier refused it, or no allocation met the "
                 "risk bound); the one in force stays"},
        {"killed", "killed: the kill-switch is latched; the kill action's allocation is in force and adapters "
                   "spend nothing"},
    };
    for (size_t i = 0; i < sizeof T / sizeof *T; i++)
        if (!strcmp(path, T[i].name)) return T[i].words;
    return NULL;
}

/* What the mode lets the engine do, in a sentence. */
static const char *explain_mode(const char *mode)
{
    if (!strcmp(mode, "assist")) return "advice only: its proposals are never applied";
    if (!strcmp(mode, "collaborate")) return "every change waits for an operator's approval";
    if (!strcmp(mode, "delegate")) return "changes are applied unless a channel moves more than escalate_above";
    if (!strcmp(mode, "automate")) return "changes are applied without approval";
    return "a mode this budgetd does not know";
}

/* Why a channel sits where it is: its bound in words, with the number of
 * the guardrail from the config when there is one. */
static void explain_bound(FILE *f, const char *bound, const bd_channel_cfg_t *cc, const bd_policy_t *pol)
{
    if (!strcmp(bound, "min")) {
        fprintf(f, "held at its minimum");
        if (cc) fprintf(f, " (min %.2f)", cc->min);
    } else if (!strcmp(bound, "max")) {
        fprintf(f, "held at its maximum");
        if (cc && isfinite(cc->max)) fprintf(f, " (max %.2f)", cc->max);
    } else if (!strcmp(bound, "ramp")) {
        fprintf(f, "moved as far as the ramp allows");
        if (pol) fprintf(f, " (max_step %.2f of its current spend per cycle)", pol->max_step);
    } else if (!strcmp(bound, "risk")) {
        fprintf(f, "limited by the risk bound: kept near the last allocation that met it");
    } else if (!strcmp(bound, "budget")) {
        fprintf(f, "moved past its ramp because the budget changed (the budget wins)");
    } else if (!strcmp(bound, "delivery")) {
        fprintf(f, "held at the delivery cap learned for it (the platform did not spend more)");
    } else if (!strcmp(bound, "pin")) {
        fprintf(f, "pinned to this amount (config or `budgetd pin`)");
    } else if (!strcmp(bound, "fault")) {
        fprintf(f, "held at its allocation from before a data fault");
    } else if (!strcmp(bound, "none")) {
        fprintf(f, "not bound: where the sampled response curves put it");
    } else {
        fprintf(f, "bound \"%s\"", bound);
    }
}

/* One channel's lines: spend and its change, why, the interval decided on,
 * and what else the record carries for it; then (v2) its arms' lines, each
 * as channel "C:A" with the arm's own guardrails (owner: the channel of an
 * arm entry c, NULL for a channel). */
static void explain_channel(FILE *f, const cJSON *c, const bd_portfolio_cfg_t *pc, const bd_policy_t *pol,
                            const char *owner)
{
    char full[2 * BD_NAME_MAX + 2];
    snprintf(full, sizeof full, "%s%s%s", owner ? owner : "", owner ? ":" : "", jstr(c, owner ? "arm" : "channel"));
    const char *name = full;
    double x = jnum(c, "spend"), prev = jnum(c, "prev");
    fprintf(f, "  %-16s %12.2f", name, x);
    if (isfinite(prev) && prev > 0) fprintf(f, " (was %.2f, %+.1f%%)", prev, 100.0 * (x - prev) / prev);
    else if (isfinite(prev)) fprintf(f, " (was %.2f)", prev);
    fprintf(f, ": ");
    explain_bound(f, jstr(c, "bound"), pol ? bd_config_channel(pc, pol, name) : NULL, pol);
    fprintf(f, ".\n");
    double m = jnum(c, "mean_roas"), lo = jnum(c, "roas_lo"), hi = jnum(c, "roas_hi");
    if (isfinite(m)) fprintf(f, "  %-16s ROAS %.2f expected, 90%% interval %.2f to %.2f", "", m, lo, hi);
    else fprintf(f, "  %-16s ROAS not re-estimated for this decision", "");
    double s = jnum(c, "season"), d = jnum(c, "discount");
    if (isfinite(s)) fprintf(f, "; seasonal factor %.2f", s);
    if (isfinite(d)) fprintf(f, "; forgets %.1f%% per cycle", 100.0 * (1 - d));
    fprintf(f, ".\n");
    const cJSON *it;
    cJSON_ArrayForEach(it, c)
    {
        static const char *const known[] = {"channel", "arm", "arms", "spend", "prev", "mean_roas",
                                            "roas_lo", "roas_hi", "bound", "season", "discount"};
        bool k = false;
        for (size_t i = 0; i < sizeof known / sizeof *known && !k; i++) k = !strcmp(it->string, known[i]);
        if (k) continue;
        if (!strcmp(it->string, "fault") && cJSON_IsString(it))
            fprintf(f, "  %-16s DATA FAULT: %s (its model does not learn until it clears)\n", "", it->valuestring);
        else if (!strcmp(it->string, "delivered") && cJSON_IsNumber(it))
            fprintf(f, "  %-16s delivered %.0f%% of its last allocation\n", "", 100 * it->valuedouble);
        else {
            char *v = cJSON_PrintUnformatted(it);
            fprintf(f, "  %-16s %s: %s\n", "", it->string, v ? v : "?");
            free(v);
        }
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(c, "arms")) explain_channel(f, it, pc, pol, name);
}

/* Risk, kill-switch, data and notes of the record. */
static void explain_tail(FILE *f, const cJSON *j, const bd_policy_t *pol)
{
    double p = jnum(cJSON_GetObjectItemCaseSensitive(j, "risk"), "p_below_floor");
    if (isfinite(p) && pol)
        fprintf(f, "Risk: the probability that the portfolio's ROAS falls below the floor %.2f is %.4f; the "
                   "limit is %.4f: %s.\n",
                pol->risk_roas_floor, p, pol->risk_max_prob,
                p > pol->risk_max_prob ? "above it, so the risk bound holds channels back (bound risk)"
                                       : "within it");
    else if (isfinite(p))
        fprintf(f, "Risk: the probability that the portfolio's ROAS falls below its floor is %.4f.\n", p);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "kill");
    if (cJSON_IsObject(k)) {
        fprintf(f, "Kill-switch: latched (%s); only an operator's `budgetd resume` clears it", jstr(k, "reason"));
        if (pol) fprintf(f, "; its action is %s", bd_kill_action_name(pol->kill.action));
        fprintf(f, ".\n");
    } else {
        fprintf(f, "Kill-switch: not tripped.\n");
    }
    fprintf(f, "Data: %.0f events, %.0f late, %.0f rejected since the previous decision.\n", jnum(j, "events"),
            jnum(j, "late"), jnum(j, "rejected"));
    const cJSON *faults = cJSON_GetObjectItemCaseSensitive(j, "faults");
    if (faults && !cJSON_IsNull(faults)) {
        char *v = cJSON_PrintUnformatted(faults);
        fprintf(f, "Data faults: %s.\n", v ? v : "?");
        free(v);
    }
    if (*jstr(j, "note")) fprintf(f, "Note: %s.\n", jstr(j, "note"));
}

/* The whole explanation of record j of portfolio p. */
static void explain_record(FILE *f, const cJSON *j, const bd_config_t *cfg, const char *p)
{
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(cfg, p);
    const bd_policy_t *pol = pc ? &pc->p : cfg->has_default_budget ? &cfg->defaults : NULL;
    const char *path = jstr(j, "path"), *mode = jstr(j, "mode"), *status = jstr(j, "status");
    char when[32] = "?";
    time_t t = (time_t)jnum(j, "decided_at");
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(f, "%s, cycle %.0f, decided %s, mode %s (%s), status %s.\n", p, jnum(j, "cycle"), when, mode,
            explain_mode(mode), status);
    const char *pw = explain_path(path);
    if (pw) fprintf(f, "Path: %s.\n", pw);
    else if (*path) fprintf(f, "Path: %s.\n", path);
    double budget = jnum(j, "budget"), total = jnum(j, "total");
    fprintf(f, "Budget %.2f, allocated %.2f", budget, total);
    if (isfinite(total) && isfinite(budget) && total < budget - 0.005)
        fprintf(f, " (%.2f left unspent: the channels' maxima, the ramp or the risk bound hold the rest back)",
                budget - total);
    fprintf(f, ".\n");
    if (!pol) fprintf(f, "(%s is not in the config given: guardrail values are not shown)\n", p);
    fprintf(f, "\nChannels:\n");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "channels")) explain_channel(f, c, pc, pol, NULL);
    fprintf(f, "\n");
    explain_tail(f, j, pol);
}

/* The command: parse, read the record, explain it. */
int bd_cmd_explain(int argc, char **argv)
{
    explain_args_t a = {0};
    int rc = explain_parse(argc, argv, &a);
    if (rc >= 0) return rc;
    char err[8192];
    bd_config_t *cfg;
    if (bd_config_load(a.cfg_path, &cfg, err, sizeof err) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    bd_redis_opts_t ro;
    bd_redis_opts_config(&ro, cfg);
    if (a.url) ro.url = a.url;
    ro.no_scripts = true;
    bd_redis_t *r = NULL;
    bd_err_t e = bd_redis_open_opts(&ro, &r, err, sizeof err);
    char *json = NULL;
    int64_t got = -1;
    if (e == BD_OK) e = bd_redis_get_record(r, a.portfolio, a.cycle, &json, &got, err, sizeof err);
    rc = BD_EXIT_OK;
    if (e != BD_OK) {
        fprintf(stderr, "budgetd explain: %s\n", err);
        rc = e == BD_ERR_CONFIG ? BD_EXIT_USAGE : BD_EXIT_RUNTIME;
    } else if (!json) {
        if (a.cycle >= 0)
            fprintf(stderr, "budgetd explain: no decision of %s for cycle %lld under prefix '%s' (never made, or "
                            "trimmed from the stream)\n",
                    a.portfolio, (long long)a.cycle, cfg->redis.prefix);
        else
            fprintf(stderr, "budgetd explain: no decision of %s under prefix '%s'\n", a.portfolio, cfg->redis.prefix);
        rc = BD_EXIT_RUNTIME;
    } else {
        cJSON *j = cJSON_Parse(json);
        if (!j) {
            fprintf(stderr, "budgetd explain: the record of %s cycle %lld is not JSON\n", a.portfolio,
                    (long long)got);
            rc = BD_EXIT_RUNTIME;
        } else {
            explain_record(stdout, j, cfg, a.portfolio);
            cJSON_Delete(j);
        }
    }
    free(json);
    bd_redis_close(r);
    bd_config_free(cfg);
    return rc;
}
