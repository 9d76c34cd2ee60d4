/* state.c: `budgetd state P (-c CONFIG | --redis URL [--prefix PFX]) [--json]`:
 * portfolio P's checkpoint (PFX:{P}:state, docs/CONTRACT.md §3) in
 * readable form: its version, cycles, owner epoch, kill latch, and per
 * channel the posterior (mean curve, 90% interval of its parameters,
 * evidence), seasonal profile, reporting lag, delivery cap, data fault and
 * pin, then the dedup store's size and the queue of late reports. The blob
 * is read with the engine's own decoder (bd_checkpoint_view: every check
 * a restore makes) and is bound to no config: the config (-c) only
 * supplies what the blob does not hold (the objective and priors the
 * posterior is read with, config pins); without it the built-in defaults.
 * Read-only: it changes nothing. Exit 1 when P has no checkpoint or it
 * does not decode, 2 on a bad command line or config. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cJSON.h>
#include <gsl/gsl_rng.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/redis.h"
#include "budgetd/stats.h"
#include "cmd.h"
#include "opts.h"
#include "status.h"

#define STATE_DRAWS 400 /* posterior draws behind the 90% intervals (seeded: same output every time) */

typedef struct {
    const char *cfg_path, *url, *prefix, *portfolio;
    bool json;
} state_args_t;

/* The usage text, to stdout for --help, stderr for bad use. */
static void state_usage(FILE *f)
{
    fputs("usage: budgetd state P (-c CONFIG | --redis URL [--prefix PFX]) [--json]\n"
          "  prints portfolio P's checkpoint (PFX:{P}:state) in readable form: version, cycles,\n"
          "  owner epoch, kill latch; per channel posterior, season, lag, delivery cap, fault, pin;\n"
          "  dedup store size and late queue. -c: the config's objective, priors and pins are used\n",
          f);
}

/* Parses argv. Returns -1 to go on, else the exit code. */
static int state_parse(int argc, char **argv, state_args_t *a)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"redis", required_argument, NULL, 'r'},
                                             {"prefix", required_argument, NULL, 'p'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    bd_opts_t o;
    bd_opts_init(&o, "state", argc, argv, "c:h", longopts);
    int ch, rc = -1;
    while (rc < 0 && (ch = bd_opts_next(&o)) != -1) {
        switch (ch) {
        case 'c': a->cfg_path = o.arg; break;
        case 'r': a->url = o.arg; break;
        case 'p': a->prefix = o.arg; break;
        case 'j': a->json = true; break;
        case 'h': state_usage(stdout); rc = BD_EXIT_OK; break;
        default: state_usage(stderr); rc = BD_EXIT_USAGE; break;
        }
    }
    if (rc < 0 && o.npos != 1) {
        state_usage(stderr);
        rc = BD_EXIT_USAGE;
    } else if (rc < 0 && !a->cfg_path && !a->url) {
        rc = bd_opts_fail("state", "say where Redis is: -c CONFIG or --redis URL");
    } else if (rc < 0 && !bd_name_valid(o.pos[0], strlen(o.pos[0]))) {
        rc = bd_opts_fail("state", "'%s' is not a portfolio name (1-64 of A-Z a-z 0-9 _ . : -)", o.pos[0]);
    } else if (rc < 0) {
        a->portfolio = o.pos[0];
    }
    bd_opts_free(&o);
    return rc;
}

/* What one channel's state says, computed once for both outputs. */
typedef struct {
    bool has_model;              /* the blob holds a posterior (not v3, a known model) */
    bd_curve_t mean;             /* the posterior-mean curve */
    double a_lo, a_hi, s_lo, s_hi; /* 90% intervals of a and of k (EXP) or b (POWER) */
    double evidence, mean_roas, forget;
    unsigned resets;
    double wd, ww, hmin, hmax, dmin, dmax; /* season: part weights, factor extremes */
    int hmin_at, hmax_at, dmin_at, dmax_at;
    double f0, f1, pending;      /* lag: share reported on time, by one cycle; spend whose reports are still due */
    double pin;                  /* run-time pin, else config pin, else NAN */
    bool pin_runtime;
} ch_sum_t;

/* Everything the command read. */
typedef struct {
    const char *portfolio, *prefix;
    bd_config_t *cfg;
    bool cfg_given;
    const bd_policy_t *pol;
    bd_checkpoint_view_t v;
    size_t bytes;
    int64_t fence_cycle, fence_cycle_len;
    uint64_t epoch;
    bd_redis_chan_t *pins;
    size_t npins;
    ch_sum_t *sum;
} state_t;

/* The posterior of channel c: mean curve, 90% intervals from seeded draws,
 * evidence, resets, the discount last applied, mean ROAS at its allocation. */
static void sum_posterior(const bd_checkpoint_channel_t *c, const bd_model_ops_t *ops, const bd_prior_t *pr,
                          ch_sum_t *s)
{
    ops->mean(&c->m, pr, &s->mean);
    double a[STATE_DRAWS], k[STATE_DRAWS];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 1);
    for (int i = 0; i < STATE_DRAWS; i++) {
        bd_curve_t d;
        ops->sample(&c->m, pr, rng, &d);
        a[i] = d.a;
        k[i] = d.kind == BD_CURVE_EXP ? d.k : d.b;
    }
    gsl_rng_free(rng);
    bd_stats_quantiles_90(a, STATE_DRAWS, &s->a_lo, &s->a_hi);
    bd_stats_quantiles_90(k, STATE_DRAWS, &s->s_lo, &s->s_hi);
    s->evidence = ops->evidence(&c->m);
    s->resets = ops->resets(&c->m);
    s->forget = ops->forget_rate ? ops->forget_rate(&c->m) : NAN;
    s->mean_roas = c->x > 0 ? bd_curve_value(&s->mean, c->x) / c->x : bd_curve_roas_zero(&s->mean);
}

/* The seasonal profile of c under the policy (its parts as the engine
 * would use them at the blob's cycle length): weights and extremes. */
static void sum_season(const bd_checkpoint_channel_t *c, const bd_policy_t *pol, int64_t cycle_len, ch_sum_t *s)
{
    bd_season_cfg_t sc = {pol->season.daily, pol->season.weekly};
    if (cycle_len > 0) sc = bd_season_effective(sc, cycle_len);
    bd_season_profile_t pr;
    bd_season_profile(&c->season, NULL, sc, &pr);
    s->wd = pr.wd;
    s->ww = pr.ww;
    s->hmin = s->hmax = pr.d[0];
    s->dmin = s->dmax = pr.w[0];
    s->hmin_at = s->hmax_at = s->dmin_at = s->dmax_at = 0;
    for (int h = 1; h < BD_SEASON_HOURS; h++) {
        if (pr.d[h] < s->hmin) s->hmin = pr.d[h], s->hmin_at = h;
        if (pr.d[h] > s->hmax) s->hmax = pr.d[h], s->hmax_at = h;
    }
    for (int d = 1; d < BD_SEASON_DAYS; d++) {
        if (pr.w[d] < s->dmin) s->dmin = pr.w[d], s->dmin_at = d;
        if (pr.w[d] > s->dmax) s->dmax = pr.w[d], s->dmax_at = d;
    }
}

/* The summaries of every channel of st->v (st->sum, one per channel). The
 * priors are the ones the engine would bind under the config given. */
static void state_summarise(state_t *st)
{
    const bd_checkpoint_view_t *v = &st->v;
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(st->cfg, st->portfolio);
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = bd_ptable_add(t, st->portfolio, pc, st->pol, 2);
    const bd_model_ops_t *ops = bd_model_get((bd_model_kind_t)v->model);
    int64_t L = v->cycle_len > 0 ? v->cycle_len : st->cfg->cycle;
    int64_t horizon = st->pol->lag.model == BD_AUTO_OFF ? 0 : (st->pol->lag.horizon + L - 1) / L;
    st->sum = bd_xcalloc(v->n ? v->n : 1, sizeof *st->sum);
    for (uint64_t i = 0; i < v->n; i++) {
        const bd_checkpoint_channel_t *c = &v->ch[i];
        ch_sum_t *s = &st->sum[i];
        int ci = bd_portfolio_channel(p, c->name);
        bd_prior_t pr = {.objective = st->pol->objective};
        if (ci >= 0) pr = p->ch[ci].prior;
        s->has_model = ops && v->ver > 3;
        if (s->has_model) sum_posterior(c, ops, &pr, s);
        sum_season(c, st->pol, v->cycle_len, s);
        s->f0 = bd_lag_completeness(&c->lag, 0, horizon);
        s->f1 = bd_lag_completeness(&c->lag, 1, horizon);
        s->pending = 0; /* exposure still to be credited: each bin's spend x its unreported share */
        for (int b = 0; b < BD_LAG_BINS; b++)
            s->pending += c->lag.x[b] * (1 - bd_lag_completeness(&c->lag, bd_lag_bin_start(b), horizon));
        s->pin = ci >= 0 && p->ch[ci].cfg && p->ch[ci].cfg->has_pin ? p->ch[ci].cfg->pin : NAN;
        for (size_t k = 0; k < st->npins; k++)
            if (strcmp(st->pins[k].name, c->name) == 0) s->pin = st->pins[k].spend, s->pin_runtime = true;
    }
    bd_ptable_free(t);
}

/* Unix seconds as UTC ISO 8601 into buf ("-" for none: INT64_MIN, 0). */
static const char *state_iso(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "-");
    return buf;
}

/* s for the terminal: bytes below 0x20, DEL and backslash escaped (a kill
 * reason in a blob may hold anything an operator typed). */
static const char *state_esc(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *u = (const unsigned char *)s; *u && o + 5 < cap; u++) {
        if (*u >= 0x20 && *u != 0x7f && *u != '\\') out[o++] = (char)*u;
        else o += (size_t)snprintf(out + o, cap - o, *u == '\\' ? "\\\\" : "\\x%02x", *u);
    }
    out[o] = '\0';
    return out;
}

static const char *const DAYS[BD_SEASON_DAYS] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

/* A cycle number, "-" for none (INT64_MIN). */
static const char *state_cycle(int64_t c, char *buf, size_t len)
{
    if (c == INT64_MIN) snprintf(buf, len, "-");
    else snprintf(buf, len, "%lld", (long long)c);
    return buf;
}

/* The portfolio part of the text form. */
static void text_head(FILE *f, const state_t *st)
{
    const bd_checkpoint_view_t *v = &st->v;
    const bd_portfolio_t *t = &v->t;
    char b1[32], b2[32], b3[32], c1[24], c2[24], esc[640], esc_by[320];
    fprintf(f, "portfolio %s (prefix %s): checkpoint version %llu, %zu bytes, cycle length %s\n", st->portfolio,
            st->prefix, (unsigned long long)v->ver, st->bytes,
            v->cycle_len > 0 ? (snprintf(b1, sizeof b1, "%llds", (long long)v->cycle_len), b1) : "not recorded");
    fprintf(f, "cycle: open %s, allocation in force for %s (alloc version %llu), status %s\n",
            state_cycle(t->open, c1, sizeof c1), state_cycle(t->alloc_cycle, c2, sizeof c2),
            (unsigned long long)t->version, bd_status_name(t->status));
    fprintf(f, "owner: epoch %llu%s; fence cycle %lld\n", (unsigned long long)st->epoch,
            st->epoch ? "" : " (none claimed: replay or an older daemon)", (long long)st->fence_cycle);
    fprintf(f, "times: newest event %s, watermark %s, last event %s\n", state_iso(t->newest_ts, b1, sizeof b1),
            state_iso(t->watermark, b2, sizeof b2), state_iso(t->last_event_ts, b3, sizeof b3));
    fprintf(f, "kafka: partition %d, offset %lld\n", (int)t->partition, (long long)t->offset);
    if (t->killed)
        fprintf(f, "kill: latched by %s at %s: %s\n", state_esc(t->kill_by, esc_by, sizeof esc_by),
                state_iso(t->kill_at, b1, sizeof b1),
                state_esc(t->kill_reason, esc, sizeof esc));
    else
        fprintf(f, "kill: not latched\n");
    if (t->has_proposal) fprintf(f, "proposal: waiting, for cycle %lld\n", (long long)t->proposal_cycle);
    else fprintf(f, "proposal: none\n");
    double sp = 0, va = 0;
    for (uint64_t k = 0; k < v->win; k++) sp += v->hist[k].spend, va += v->hist[k].value;
    fprintf(f, "kill window: %llu cycles, %llu closed so far; spend %.2f, value %.2f in it\n",
            (unsigned long long)v->win, (unsigned long long)v->hist_n, sp, va);
    fprintf(f, "model: %s%s; dedup store: %llu ids%s; late queue: %llu reports\n",
            bd_model_name((bd_model_kind_t)v->model),
            st->cfg_given && v->model != (uint64_t)st->pol->model ? " (the config says another: a restore restarts "
                                                                     "it from its prior)" : "",
            (unsigned long long)v->n_dedup, v->ver < 7 ? " (not saved before version 7)" : "",
            (unsigned long long)v->n_late);
}

/* One channel of the text form. */
static void text_channel(FILE *f, const state_t *st, uint64_t i)
{
    const bd_checkpoint_channel_t *c = &st->v.ch[i];
    const ch_sum_t *s = &st->sum[i];
    fprintf(f, "  %s: allocation %.2f, safe %.2f", c->name, c->x, c->safe);
    if (st->v.t.has_proposal) fprintf(f, ", proposed %.2f", c->proposed);
    fprintf(f, "%s\n", c->promoted ? ", lab: promoted" : "");
    if (s->has_model) {
        fprintf(f, "    posterior: mean a %.4g (90%% %.4g..%.4g), %s %.4g (90%% %.4g..%.4g); evidence %.1f; "
                   "mean ROAS at the allocation %.4f; resets %u",
                s->mean.a, s->a_lo, s->a_hi, s->mean.kind == BD_CURVE_EXP ? "saturation k" : "elasticity b",
                s->mean.kind == BD_CURVE_EXP ? s->mean.k : s->mean.b, s->s_lo, s->s_hi, s->evidence, s->mean_roas,
                s->resets);
        if (isfinite(s->forget)) fprintf(f, "; last discount %.4f", s->forget);
        fprintf(f, "\n");
    } else {
        fprintf(f, "    posterior: none saved (a version 3 blob, or a model this budgetd cannot read)\n");
    }
    fprintf(f, "    season: daily weight %.2f (%.3f at %02dh .. %.3f at %02dh), weekly weight %.2f (%.3f %s .. %.3f %s)\n",
            s->wd, s->hmin, s->hmin_at, s->hmax, s->hmax_at, s->ww, s->dmin, DAYS[s->dmin_at], s->dmax,
            DAYS[s->dmax_at]);
    fprintf(f, "    lag: %.1f%% reported on time, %.1f%% by one cycle; spend with reports still due %.2f\n", 100 * s->f0, 100 * s->f1,
            s->pending);
    if (c->dlv.capped) fprintf(f, "    delivery: capped at %.2f", bd_delivery_cap(&c->dlv));
    else fprintf(f, "    delivery: no cap");
    if (!isnan(c->dlv.ratio)) fprintf(f, ", last cycle delivered %.4f of its allocation", c->dlv.ratio);
    fprintf(f, "\n    fault: %s", c->fault.kind ? bd_fault_name((bd_fault_kind_t)c->fault.kind) : "none");
    if (c->fault.kind) fprintf(f, " since cycle %lld, held at %.2f", (long long)c->fault.from, c->fault.hold);
    if (c->fault.suspect) fprintf(f, "; suspected %s", bd_fault_name((bd_fault_kind_t)c->fault.suspect));
    fprintf(f, "\n");
    if (!isnan(s->pin)) fprintf(f, "    pin: %.2f (%s)\n", s->pin, s->pin_runtime ? "run-time" : "config");
}

/* The whole text form. */
static void state_text(FILE *f, const state_t *st)
{
    text_head(f, st);
    fprintf(f, "channels (%llu):\n", (unsigned long long)st->v.n);
    for (uint64_t i = 0; i < st->v.n; i++) text_channel(f, st, i);
    if (st->v.n_late) fprintf(f, "late queue:\n");
    for (uint64_t k = 0; k < st->v.n_late; k++) {
        const bd_late_t *l = &st->v.late[k];
        fprintf(f, "  %s: cycle %lld (age %lld): spend %.2f, conversions %.4g, revenue %.2f\n", st->v.ch[l->ch].name,
                (long long)l->cycle, (long long)l->age, l->d.spend, l->d.conversions, l->d.revenue);
    }
    if (!st->cfg_given)
        fprintf(f, "(read with the built-in defaults' objective and priors; -c CONFIG for the portfolio's own)\n");
}

/* x, or null when not finite. */
static cJSON *jnum(double x) { return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull(); }

/* One channel of the JSON form. */
static cJSON *json_channel(const state_t *st, uint64_t i)
{
    const bd_checkpoint_channel_t *c = &st->v.ch[i];
    const ch_sum_t *s = &st->sum[i];
    cJSON *o = cJSON_CreateObject(), *x;
    cJSON_AddStringToObject(o, "channel", c->name);
    cJSON_AddItemToObject(o, "x", jnum(c->x));
    cJSON_AddItemToObject(o, "safe", jnum(c->safe));
    cJSON_AddItemToObject(o, "proposed", st->v.t.has_proposal ? jnum(c->proposed) : cJSON_CreateNull());
    cJSON_AddBoolToObject(o, "promoted", c->promoted);
    if (s->has_model) {
        x = cJSON_AddObjectToObject(o, "posterior");
        bool e = s->mean.kind == BD_CURVE_EXP;
        cJSON_AddStringToObject(x, "curve", e ? "exp" : "power");
        cJSON_AddItemToObject(x, "a", jnum(s->mean.a));
        cJSON_AddItemToObject(x, "a_lo", jnum(s->a_lo));
        cJSON_AddItemToObject(x, "a_hi", jnum(s->a_hi));
        cJSON_AddItemToObject(x, e ? "k" : "b", jnum(e ? s->mean.k : s->mean.b));
        cJSON_AddItemToObject(x, e ? "k_lo" : "b_lo", jnum(s->s_lo));
        cJSON_AddItemToObject(x, e ? "k_hi" : "b_hi", jnum(s->s_hi));
        cJSON_AddItemToObject(x, "evidence", jnum(s->evidence));
        cJSON_AddItemToObject(x, "mean_roas", jnum(s->mean_roas));
        cJSON_AddNumberToObject(x, "resets", s->resets);
        cJSON_AddItemToObject(x, "discount", jnum(s->forget));
    } else {
        cJSON_AddNullToObject(o, "posterior");
    }
    x = cJSON_AddObjectToObject(o, "season");
    cJSON_AddItemToObject(x, "daily_weight", jnum(s->wd));
    cJSON_AddItemToObject(x, "weekly_weight", jnum(s->ww));
    cJSON_AddItemToObject(x, "hour_min", jnum(s->hmin));
    cJSON_AddItemToObject(x, "hour_max", jnum(s->hmax));
    cJSON_AddItemToObject(x, "weekday_min", jnum(s->dmin));
    cJSON_AddItemToObject(x, "weekday_max", jnum(s->dmax));
    x = cJSON_AddObjectToObject(o, "lag");
    cJSON_AddItemToObject(x, "on_time", jnum(s->f0));
    cJSON_AddItemToObject(x, "by_1", jnum(s->f1));
    cJSON_AddItemToObject(x, "pending_spend", jnum(s->pending));
    x = cJSON_AddObjectToObject(o, "delivery");
    cJSON_AddBoolToObject(x, "capped", c->dlv.capped);
    cJSON_AddItemToObject(x, "cap", c->dlv.capped ? jnum(bd_delivery_cap(&c->dlv)) : cJSON_CreateNull());
    cJSON_AddItemToObject(x, "ratio", jnum(c->dlv.ratio));
    x = cJSON_AddObjectToObject(o, "fault");
    cJSON_AddItemToObject(x, "kind", c->fault.kind ? cJSON_CreateString(bd_fault_name((bd_fault_kind_t)c->fault.kind))
                                                   : cJSON_CreateNull());
    cJSON_AddItemToObject(x, "suspect", c->fault.suspect
                                            ? cJSON_CreateString(bd_fault_name((bd_fault_kind_t)c->fault.suspect))
                                            : cJSON_CreateNull());
    cJSON_AddItemToObject(x, "since", c->fault.kind ? cJSON_CreateNumber((double)c->fault.from) : cJSON_CreateNull());
    cJSON_AddItemToObject(x, "hold", c->fault.kind ? jnum(c->fault.hold) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "pin", jnum(s->pin));
    return o;
}

/* A cycle or time as a JSON number, null for none (INT64_MIN). */
static cJSON *jcyc(int64_t c) { return c == INT64_MIN ? cJSON_CreateNull() : cJSON_CreateNumber((double)c); }

/* The whole JSON form (docs/CONTRACT.md §13). */
static char *state_json(const state_t *st)
{
    const bd_checkpoint_view_t *v = &st->v;
    const bd_portfolio_t *t = &v->t;
    cJSON *o = cJSON_CreateObject(), *x;
    cJSON_AddNumberToObject(o, "v", 1);
    cJSON_AddStringToObject(o, "portfolio", st->portfolio);
    cJSON_AddStringToObject(o, "prefix", st->prefix);
    x = cJSON_AddObjectToObject(o, "checkpoint");
    cJSON_AddNumberToObject(x, "version", (double)v->ver);
    cJSON_AddNumberToObject(x, "bytes", (double)st->bytes);
    cJSON_AddItemToObject(x, "cycle_len", v->cycle_len > 0 ? cJSON_CreateNumber((double)v->cycle_len) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "open", jcyc(t->open));
    cJSON_AddItemToObject(o, "alloc_cycle", jcyc(t->alloc_cycle));
    cJSON_AddNumberToObject(o, "alloc_version", (double)t->version);
    cJSON_AddStringToObject(o, "status", bd_status_name(t->status));
    cJSON_AddNumberToObject(o, "owner_epoch", (double)st->epoch);
    cJSON_AddItemToObject(o, "fence_cycle", st->fence_cycle >= 0 ? cJSON_CreateNumber((double)st->fence_cycle) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "newest_ts", jcyc(t->newest_ts));
    cJSON_AddItemToObject(o, "watermark", jcyc(t->watermark));
    cJSON_AddNumberToObject(o, "partition", t->partition);
    cJSON_AddNumberToObject(o, "offset", (double)t->offset);
    if (t->killed) {
        x = cJSON_AddObjectToObject(o, "kill");
        bd_status_json_text(x, "reason", t->kill_reason);
        bd_status_json_text(x, "by", t->kill_by);
        cJSON_AddItemToObject(x, "at", t->kill_at > 0 ? cJSON_CreateNumber((double)t->kill_at) : cJSON_CreateNull());
    } else {
        cJSON_AddNullToObject(o, "kill");
    }
    cJSON_AddItemToObject(o, "proposal_cycle", t->has_proposal ? cJSON_CreateNumber((double)t->proposal_cycle) : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "model", bd_model_name((bd_model_kind_t)v->model));
    cJSON_AddNumberToObject(o, "kill_window", (double)v->win);
    cJSON_AddNumberToObject(o, "closed_cycles", (double)v->hist_n);
    cJSON_AddNumberToObject(o, "dedup_ids", (double)v->n_dedup);
    x = cJSON_AddArrayToObject(o, "channels");
    for (uint64_t i = 0; i < v->n; i++) cJSON_AddItemToArray(x, json_channel(st, i));
    x = cJSON_AddArrayToObject(o, "late");
    for (uint64_t k = 0; k < v->n_late; k++) {
        const bd_late_t *l = &v->late[k];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "channel", v->ch[l->ch].name);
        cJSON_AddNumberToObject(e, "cycle", (double)l->cycle);
        cJSON_AddNumberToObject(e, "age", (double)l->age);
        cJSON_AddNumberToObject(e, "spend", l->d.spend);
        cJSON_AddNumberToObject(e, "conversions", l->d.conversions);
        cJSON_AddNumberToObject(e, "revenue", l->d.revenue);
        cJSON_AddItemToArray(x, e);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Loads the config (-c) or the built-in one, and opens Redis. Returns the
 * exit code on failure (message printed), -1 on success. */
static int state_open(const state_args_t *a, state_t *st, bd_redis_t **r)
{
    char err[8192];
    static const char builtin[] = "v: 1\n";
    st->cfg_given = a->cfg_path != NULL;
    bd_err_t e = a->cfg_path ? bd_config_load(a->cfg_path, &st->cfg, err, sizeof err)
                             : bd_config_load_string(builtin, sizeof builtin - 1, "built-in", &st->cfg, err, sizeof err);
    if (e != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(st->cfg, a->portfolio);
    st->pol = pc ? &pc->p : &st->cfg->defaults;
    bd_redis_opts_t ro;
    bd_redis_opts_config(&ro, st->cfg);
    if (a->url) ro.url = a->url;
    if (a->prefix) ro.prefix = a->prefix;
    ro.no_scripts = true;
    st->prefix = ro.prefix && *ro.prefix ? ro.prefix : BD_DEFAULT_PREFIX;
    e = bd_redis_open_opts(&ro, r, err, sizeof err);
    if (e != BD_OK) {
        fprintf(stderr, "budgetd state: %s\n", err);
        /* a malformed URL or prefix is a usage error, an unreachable server a runtime one */
        return e == BD_ERR_CONFIG ? BD_EXIT_USAGE : BD_EXIT_RUNTIME;
    }
    return -1;
}

/* Reads P's checkpoint, fence and pins into st. Returns the exit code on
 * failure (message printed), -1 on success. */
static int state_read(bd_redis_t *r, state_t *st)
{
    char err[1024];
    void *blob = NULL;
    size_t len = 0;
    bd_err_t e = bd_redis_load_state(r, st->portfolio, &blob, &len, &st->fence_cycle, err, sizeof err);
    if (e == BD_OK) e = bd_redis_get_owner(r, st->portfolio, &st->epoch, &st->fence_cycle_len, err, sizeof err);
    if (e == BD_OK) e = bd_redis_get_pins(r, st->portfolio, &st->pins, &st->npins, err, sizeof err);
    if (e != BD_OK) {
        free(blob);
        fprintf(stderr, "budgetd state: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    if (!blob) {
        fprintf(stderr, "budgetd state: no checkpoint of %s under prefix '%s' (unknown portfolio, or never decided "
                        "with --redis)\n", st->portfolio, st->prefix);
        return BD_EXIT_RUNTIME;
    }
    st->bytes = len;
    e = bd_checkpoint_view(st->portfolio, blob, len, &st->v, err, sizeof err);
    free(blob);
    if (e != BD_OK) {
        fprintf(stderr, "budgetd state: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    return -1;
}

/* The command: parse, read, summarise, print. */
int bd_cmd_state(int argc, char **argv)
{
    state_args_t a = {0};
    int rc = state_parse(argc, argv, &a);
    if (rc >= 0) return rc;
    signal(SIGPIPE, SIG_IGN);
    state_t st = {.portfolio = a.portfolio, .fence_cycle = -1};
    bd_redis_t *r = NULL;
    rc = state_open(&a, &st, &r);
    if (rc < 0) rc = state_read(r, &st);
    if (rc < 0) {
        state_summarise(&st);
        if (a.json) {
            char *s = state_json(&st);
            printf("%s\n", s);
            free(s);
        } else {
            state_text(stdout, &st);
        }
        rc = BD_EXIT_OK;
    }
    free(st.sum);
    free(st.pins);
    bd_checkpoint_view_free(&st.v);
    bd_redis_close(r);
    bd_config_free(st.cfg);
    return rc;
}
