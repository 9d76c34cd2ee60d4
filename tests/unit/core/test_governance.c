/* Governance in replay (docs/DECISIONS.md "Kill actions", "Implausible
 * numbers trip the kill"; modes in docs/CONTRACT.md §3): one test per
 * kill-switch trigger, per kill action and per autonomy mode, the latch,
 * and a random long-run property (no active record for a killed
 * portfolio); the CLI side is in tests/integration/test_governance_cli.c. The engine runs
 * in-process with a capturing sink; cycles are closed with watermarks. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "budgetd/config.h"
#include "budgetd/decide.h"
#include "budgetd/engine.h"
#include "budgetd/killswitch.h"
#include "fixtures.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define C0 (T0 / 3600)  /* its cycle number */
#define MAXREC 4096
#define MAXCH 4

/* Every record the sink saw, with the portfolio's state right after it. */
typedef struct {
    int n;
    cJSON *rec[MAXREC];
    char pf[MAXREC][BD_NAME_MAX + 1];
    double x_after[MAXREC][MAXCH]; /* allocation in force after the decision */
    bool killed_after[MAXREC];
    bool tripped[MAXREC];
    /* property checks done inside the sink */
    int violations;
    char first_violation[512];
} cap_t;

static bd_err_t cap_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                         size_t len)
{
    cap_t *c = ctx;
    cJSON *j = cJSON_ParseWithLength(json, len);
    cr_assert_not_null(j, "record is not JSON: %.*s", (int)len, json);
    /* The kill invariant (docs/DECISIONS.md "Kill actions"): no active
     * record for a killed portfolio, and status killed <=> a kill reason
     * <=> path killed. */
    const char *st = cJSON_GetObjectItem(j, "status")->valuestring;
    const char *path = cJSON_GetObjectItem(j, "path")->valuestring;
    bool has_reason = !cJSON_IsNull(cJSON_GetObjectItem(j, "kill"));
    bool rec_killed = !strcmp(st, "killed");
    bool bad = (p->killed && !rec_killed) || (rec_killed != has_reason) ||
               (rec_killed != !strcmp(path, "killed")) || (rec_killed != (d->status == BD_STATUS_KILLED)) ||
               (d->tripped && !rec_killed);
    if (bad && c->violations++ == 0)
        snprintf(c->first_violation, sizeof(c->first_violation), "killed=%d: %.400s", p->killed, json);
    if (c->n >= MAXREC) {
        cJSON_Delete(j);
        return BD_OK;
    }
    int i = c->n++;
    c->rec[i] = j;
    snprintf(c->pf[i], sizeof(c->pf[i]), "%s", p->name);
    for (size_t k = 0; k < p->n && k < MAXCH; k++) c->x_after[i][k] = p->ch[k].x;
    c->killed_after[i] = p->killed;
    c->tripped[i] = d->tripped;
    return BD_OK;
}

static void cap_free(cap_t *c)
{
    for (int i = 0; i < c->n && i < MAXREC; i++) cJSON_Delete(c->rec[i]);
}

static const char *rstr(const cap_t *c, int i, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(c->rec[i], k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long long rcycle(const cap_t *c, int i)
{
    return (long long)cJSON_GetObjectItem(c->rec[i], "cycle")->valuedouble;
}

/* The kill reason of record i, NULL when "kill" is null. */
static const char *rreason(const cap_t *c, int i)
{
    const cJSON *k = cJSON_GetObjectItem(c->rec[i], "kill");
    if (cJSON_IsNull(k)) return NULL;
    return cJSON_GetObjectItem(k, "reason")->valuestring;
}

/* Spend (or prev) of channel ch in record i. */
static double rch(const cap_t *c, int i, const char *ch, const char *field)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(c->rec[i], "channels"))
    {
        if (!strcmp(cJSON_GetObjectItem(a, "channel")->valuestring, ch))
            return cJSON_GetObjectItem(a, field)->valuedouble;
    }
    cr_assert_fail("record %d has no channel %s", i, ch);
    return 0;
}

/* Index of the record of portfolio pf for cycle, or -1. */
static int rfind(const cap_t *c, const char *pf, long long cycle)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->pf[i], pf) && rcycle(c, i) == cycle) return i;
    return -1;
}

/* Kill map with every trigger off unless set. */
typedef struct {
    const char *roas_below, *window, *overspend, *stale, *reject, *action;
} kill_t;

typedef struct {
    const char *mode, *max_step, *escalate;
    kill_t kill;
    const char *extra; /* more portfolios (YAML, indented 2) */
} cfgopt_t;

static bd_config_t *load_cfg(const cfgopt_t *o)
{
    char y[4096], err[4096];
    snprintf(y, sizeof(y),
             "v: 1\ncycle: 1h\nlateness: 0\nseed: 7\n"
             "defaults:\n  budget: 1000\n  samples: 32\n  mode: %s\n  max_step: %s\n"
             "  escalate_above: %s\n  explore_share: 0.02\n"
             "  risk: {roas_floor: 0.1, max_prob: 1}\n"
             "  kill: {roas_below: %s, window: %s, overspend_ratio: %s, stale_after: %s,\n"
             "         max_reject_ratio: %s, action: %s}\n"
             "  channel: {min: 0, saturation: 3000}\n"
             "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
             "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
             "  ctrl:\n    budget: 3000\n    channels:\n"
             "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n%s",
             o->mode ? o->mode : "automate", o->max_step ? o->max_step : "0.25",
             o->escalate ? o->escalate : "0.3", o->kill.roas_below ? o->kill.roas_below : "0",
             o->kill.window ? o->kill.window : "3", o->kill.overspend ? o->kill.overspend : "0",
             o->kill.stale ? o->kill.stale : "0", o->kill.reject ? o->kill.reject : "1",
             o->kill.action ? o->kill.action : "freeze", o->extra ? o->extra : "");
    bd_config_t *cfg = NULL;
    bd_err_t rc = bd_config_load_string(y, strlen(y), "gov.yaml", &cfg, err, sizeof(err));
    cr_assert_eq(rc, BD_OK, "config: %s\n%s", err, y);
    return cfg;
}

typedef struct {
    bd_config_t *cfg;
    bd_engine_t *e;
    cap_t *cap;
    unsigned long id;
} env_t;

static void env_new(env_t *env, const cfgopt_t *o)
{
    env->cfg = load_cfg(o);
    env->cap = calloc(1, sizeof(cap_t));
    cr_assert_not_null(env->cap);
    bd_engine_opts_t eo = {.threads = 1, .sink = cap_sink, .sink_ctx = env->cap};
    env->e = bd_engine_new(env->cfg, &eo);
    env->id = 0;
}

static void env_free(env_t *env)
{
    cr_assert_eq(env->cap->violations, 0, "%d invariant violations, first: %s", env->cap->violations,
                 env->cap->first_violation);
    bd_engine_free(env->e);
    bd_config_free(env->cfg);
    cap_free(env->cap);
    free(env->cap);
}


/* One event of pf/ch in cycle k (C0 + k). */
static void event(env_t *env, const char *pf, int k, const char *ch, double spend, double revenue)
{
    unsigned long id = env->id++;
    cr_assert_eq(bd_test_ingestf(env->e,
                      "{\"event_id\":\"e%lu\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                      "\"spend\":%.2f,\"conversions\":%.3f,\"revenue\":%.2f}",
                      id, T0 + 3600LL * k + 10 + (long long)(id % 3000), pf, ch, spend, revenue / 50,
                      revenue),
                 BD_REJ_NONE);
}

/* A line the decoder rejects (negative spend) that names pf. */
static void bad_event(env_t *env, const char *pf, int k)
{
    cr_assert_neq(bd_test_ingestf(env->e,
                       "{\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"search\",\"spend\":-1,"
                       "\"conversions\":0}",
                       T0 + 3600LL * k + 20, pf),
                  BD_REJ_NONE);
}

/* Closes cycle k of pf (watermark at its end) and runs the decision. */
static void close_cycle(env_t *env, const char *pf, int k)
{
    cr_assert_eq(bd_test_ingestf(env->e, "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf, T0 + 3600LL * (k + 1)),
                 BD_REJ_NONE);
    cr_assert_eq(bd_engine_flush(env->e), BD_OK);
}

static bd_portfolio_t *pf_of(env_t *env, const char *pf)
{
    bd_portfolio_t *p = bd_engine_portfolio(env->e, pf);
    cr_assert_not_null(p);
    return p;
}

static double alloc_of(env_t *env, const char *pf, const char *ch)
{
    bd_portfolio_t *p = pf_of(env, pf);
    if (p->open == INT64_MIN) return 1500; /* not started: every test portfolio starts 1500/1500 */
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->ch[i].name, ch)) return p->ch[i].x;
    cr_assert_fail("no channel %s in %s", ch, pf);
    return 0;
}

/* Cycle k of pf: each channel reports `mult` x its allocation in force
 * (split over `per` events) with revenue = roas x spend. */
static void cycle_data(env_t *env, const char *pf, int k, double mult_search, double mult_social,
                       double roas_search, double roas_social, int per)
{
    double s1 = alloc_of(env, pf, "search") * mult_search, s2 = alloc_of(env, pf, "social") * mult_social;
    for (int i = 0; i < per; i++) {
        event(env, pf, k, "search", s1 / per, s1 / per * roas_search);
        event(env, pf, k, "social", s2 / per, s2 / per * roas_social);
    }
}

/* Asserts that pf's records from cycle `from` on are all killed with a
 * reason starting with `why`, and that the first of them is an engine trip
 * (an operator's kill is not: its key exists already). */
static void assert_killed_from(const cap_t *c, const char *pf, long long from, const char *why,
                               bool engine)
{
    int seen = 0;
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->pf[i], pf) != 0) continue;
        long long cy = rcycle(c, i);
        if (cy < from) {
            cr_assert_str_neq(rstr(c, i, "status"), "killed", "%s cycle %lld killed before %lld", pf, cy, from);
            cr_assert_null(rreason(c, i));
            continue;
        }
        cr_assert_str_eq(rstr(c, i, "status"), "killed", "%s cycle %lld: %s", pf, cy, rstr(c, i, "status"));
        cr_assert_str_eq(rstr(c, i, "path"), "killed");
        const char *r = rreason(c, i);
        cr_assert_not_null(r);
        cr_assert(!strncmp(r, why, strlen(why)), "%s cycle %lld reason '%s', want '%s...'", pf, cy, r, why);
        cr_assert(c->killed_after[i]);
        cr_assert_eq(c->tripped[i], engine && seen == 0, "tripped flag on cycle %lld (record %d of the latch)", cy, seen);
        seen++;
    }
    cr_assert_geq(seen, 3, "%s: %d killed records from cycle %lld (want the trip and the latch)", pf, seen, from);
}

static void assert_tripped_at(const cap_t *c, const char *pf, long long from, const char *why)
{
    assert_killed_from(c, pf, from, why, true);
}

static void assert_never_killed(const cap_t *c, const char *pf)
{
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->pf[i], pf) != 0) continue;
        n++;
        cr_assert_str_eq(rstr(c, i, "status"), "active", "%s cycle %lld: %s (%s)", pf, rcycle(c, i),
                         rstr(c, i, "status"), rreason(c, i) ? rreason(c, i) : "");
    }
    cr_assert_gt(n, 3);
}

/* ---- triggers ----------------------------------------------------------- */

/* Trailing ROAS of the last `window` closed cycles below roas_below trips;
 * the control portfolio (good ROAS) does not; the trip stays latched when
 * ROAS recovers. */
Test(trigger, trailing_roas_below_floor)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.kill = {.roas_below = "0.5", .window = "3"}});
    for (int k = 0; k < 8; k++) {
        double r = k < 3 ? 0.3 : 4.0; /* bad for 3 cycles, then good */
        cycle_data(&env, "acme", k, 1, 1, r, r, 2);
        cycle_data(&env, "ctrl", k, 1, 1, 0.6, 0.6, 2); /* above 0.5 */
        close_cycle(&env, "acme", k);
        close_cycle(&env, "ctrl", k);
    }
    /* closes of cycles 0..2 fill the window: the decision for cycle 3 trips */
    assert_tripped_at(env.cap, "acme", C0 + 3, "roas: 0.3000 over the last 3 cycles");
    assert_never_killed(env.cap, "ctrl");
    env_free(&env);
}

/* A channel reporting more than allocation x overspend_ratio trips (a
 * runaway adapter); 1.4x under a 1.5 ratio does not. */
Test(trigger, overspend)
{
    env_t env;
    /* assist: the allocation in force stays at the initial 1500/1500 */
    env_new(&env, &(cfgopt_t){.mode = "assist", .kill = {.overspend = "1.5"}});
    for (int k = 0; k < 7; k++) {
        cycle_data(&env, "acme", k, k == 2 ? 1.6 : 1, 1, 2, 2, 3);
        /* within the delivery tolerance: a run of over-delivery beyond it
         * adds up to the trigger (test_delivery.c) */
        cycle_data(&env, "ctrl", k, 1.05, 1.05, 2, 2, 3);
        close_cycle(&env, "acme", k);
        close_cycle(&env, "ctrl", k);
    }
    assert_tripped_at(env.cap, "acme", C0 + 3, "overspend: channel 'search' reported 2400.00, allocation 1500.00 x 1.50");
    assert_never_killed(env.cap, "ctrl");
    env_free(&env);
}

/* No events for more than stale_after while watermarks keep closing cycles
 * trips; a portfolio with events does not. */
Test(trigger, stale_data)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.kill = {.stale = "3h"}});
    for (int k = 0; k < 9; k++) {
        if (k < 2) cycle_data(&env, "acme", k, 1, 1, 2, 2, 1); /* last event in cycle 1 */
        cycle_data(&env, "ctrl", k, 1, 1, 2, 2, 1);
        close_cycle(&env, "acme", k);
        close_cycle(&env, "ctrl", k);
    }
    /* last acme event at T0+3600+10+x (x < 3000): closing cycle 4 (end
     * T0+5h) is more than 3h later, closing cycle 3 (end T0+4h) not yet */
    assert_tripped_at(env.cap, "acme", C0 + 5, "stale: no events for ");
    assert_never_killed(env.cap, "ctrl");
    env_free(&env);
}

/* A finite but impossible number (docs/CONTRACT.md §1 accepts it) trips the kill at
 * the cycle's close whatever the config, and never reaches the model: the
 * channel's posterior is bit for bit what it was before that cycle, and a
 * late event of the same kind is not observed either. */
Test(trigger, implausible_data)
{
    env_t env;
    env_new(&env, &(cfgopt_t){0});
    for (int k = 0; k < 2; k++) {
        cycle_data(&env, "acme", k, 1, 1, 2, 2, 1);
        cycle_data(&env, "ctrl", k, 1, 1, 2, 2, 1);
        close_cycle(&env, "acme", k);
        close_cycle(&env, "ctrl", k);
    }
    bd_portfolio_t *p = pf_of(&env, "acme");
    size_t si = 0;
    while (strcmp(p->ch[si].name, "search") != 0) si++;
    bd_model_state_t before = p->ch[si].model;
    for (int k = 2; k < 6; k++) {
        if (k == 2)
            cr_assert_eq(bd_test_ingestf(env.e, "{\"ts\":%lld,\"portfolio\":\"acme\",\"channel\":\"search\","
                                    "\"spend\":100,\"conversions\":1e308,\"revenue\":5}",
                              T0 + 3600LL * k + 5),
                         BD_REJ_NONE);
        else
            cycle_data(&env, "acme", k, 1, 1, 2, 2, 1);
        cycle_data(&env, "ctrl", k, 1, 1, 2, 2, 1);
        close_cycle(&env, "acme", k);
        close_cycle(&env, "ctrl", k);
        if (k == 2)
            cr_assert_eq(memcmp(&p->ch[si].model, &before, sizeof before), 0,
                         "the implausible aggregate reached the model");
    }
    assert_tripped_at(env.cap, "acme", C0 + 3,
                      "implausible data: channel 'search' reported conversions 1e+308 (above 1e+15)");
    assert_never_killed(env.cap, "ctrl");
    /* late (cycle 0 is long closed): accepted, counted late, not observed */
    before = p->ch[si].model;
    cr_assert_eq(bd_test_ingestf(env.e, "{\"ts\":%lld,\"portfolio\":\"acme\",\"channel\":\"search\","
                            "\"spend\":100,\"conversions\":1,\"revenue\":2e300}",
                      T0 + 20),
                 BD_REJ_NONE);
    cr_assert_eq(memcmp(&p->ch[si].model, &before, sizeof before), 0, "a late implausible event was observed");
    env_free(&env);
}

/* Rejected lines naming the portfolio count against it: above
 * max_reject_ratio of what it sent, it trips. */
Test(trigger, rejected_ratio)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.kill = {.reject = "0.2"}});
    for (int k = 0; k < 7; k++) {
        cycle_data(&env, "acme", k, 1, 1, 2, 2, 5); /* 10 events */
        cycle_data(&env, "ctrl", k, 1, 1, 2, 2, 5);
        if (k == 2)
            for (int i = 0; i < 4; i++) bad_event(&env, "acme", k); /* 4 of 14 */
        for (int i = 0; i < 2; i++) bad_event(&env, "ctrl", k);     /* 2 of 12 */
        close_cycle(&env, "acme", k);
        close_cycle(&env, "ctrl", k);
    }
    assert_tripped_at(env.cap, "acme", C0 + 3, "rejects: 4 of 14 events rejected (max ratio 0.20)");
    assert_never_killed(env.cap, "ctrl");
    env_free(&env);
}

/* An operator kill (what the daemon does when it sees PFX:{P}:kill) latches
 * at the next decision, also in a propose-only mode, and clears only by an
 * operator resume, after which decisions are active again. */
Test(trigger, operator_kill_and_resume)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.mode = "collaborate"});
    for (int k = 0; k < 3; k++) {
        cycle_data(&env, "acme", k, 1, 1, 4, 0.5, 2);
        close_cycle(&env, "acme", k);
    }
    bd_portfolio_t *p = pf_of(&env, "acme");
    cr_assert(p->has_proposal);
    bd_killswitch_operator_kill(p, "budget freeze by finance");
    cr_assert(p->killed);
    /* an approval of the pending proposal cannot sneak an allocation in */
    double before = alloc_of(&env, "acme", "search");
    bd_decide_apply_proposal(p);
    cr_assert_eq(alloc_of(&env, "acme", "search"), before);
    for (int k = 3; k < 6; k++) {
        cycle_data(&env, "acme", k, 1, 1, 4, 0.5, 2);
        close_cycle(&env, "acme", k);
    }
    assert_killed_from(env.cap, "acme", C0 + 4, "operator: budget freeze by finance", false);
    cr_assert_not(p->has_proposal, "a killed portfolio keeps no proposal");
    bd_killswitch_operator_resume(p);
    cr_assert_not(p->killed);
    cycle_data(&env, "acme", 6, 1, 1, 4, 0.5, 2);
    close_cycle(&env, "acme", 6);
    int i = rfind(env.cap, "acme", C0 + 7);
    cr_assert_geq(i, 0);
    cr_assert_str_eq(rstr(env.cap, i, "status"), "active");
    cr_assert_null(rreason(env.cap, i));
    env_free(&env);
}

/* A portfolio killed before its first decision (operator kill key found at
 * first sight) never publishes its initial split as active. */
Test(trigger, killed_before_first_sight)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.kill = {.action = "zero"}});
    bd_portfolio_t *p = pf_of(&env, "acme"); /* created, not started */
    bd_killswitch_operator_kill(p, "not yet");
    cycle_data(&env, "acme", 0, 1, 1, 2, 2, 1);
    close_cycle(&env, "acme", 0);
    cr_assert_eq(env.cap->n, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(rstr(env.cap, i, "status"), "killed");
        cr_assert_str_eq(rreason(env.cap, i), "operator: not yet");
        cr_assert_eq(rch(env.cap, i, "search", "spend"), 0);
        cr_assert_eq(rch(env.cap, i, "social", "spend"), 0);
    }
    env_free(&env);
}

/* ---- actions ------------------------------------------------------------ */

/* Moves acme's allocation away from the initial split (automate, search
 * far better), then trips overspend on social at cycle 4. Returns the
 * index of the trip record; *moved gets the allocation in force before it. */
static int trip_after_moving(env_t *env, double moved[2])
{
    for (int k = 0; k < 7; k++) {
        cycle_data(env, "acme", k, 1, k == 4 ? 3 : 1, 5, 0.4, 2);
        if (k == 4) {
            moved[0] = alloc_of(env, "acme", "search");
            moved[1] = alloc_of(env, "acme", "social");
        }
        close_cycle(env, "acme", k);
    }
    cr_assert_gt(moved[0], 1600, "allocation did not move toward search: %.2f", moved[0]);
    assert_tripped_at(env->cap, "acme", C0 + 5, "overspend: channel 'social'");
    int i = rfind(env->cap, "acme", C0 + 5);
    cr_assert_geq(i, 0);
    cr_assert_eq(rch(env->cap, i, "search", "prev"), moved[0]);
    return i;
}

/* The allocation of the kill record and the next (latched) one. */
static void assert_kill_alloc(env_t *env, int i, double search, double social)
{
    for (int r = i; r < env->cap->n; r++) {
        if (strcmp(env->cap->pf[r], "acme") != 0) continue;
        cr_assert_eq(rch(env->cap, r, "search", "spend"), search, "record %d: %.2f", r,
                     rch(env->cap, r, "search", "spend"));
        cr_assert_eq(rch(env->cap, r, "social", "spend"), social);
        cr_assert_eq(env->cap->x_after[r][0], search, "allocation in force after record %d", r);
        cr_assert_eq(env->cap->x_after[r][1], social);
    }
}

Test(action, freeze_keeps_last_allocation)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.kill = {.overspend = "1.5", .action = "freeze"}});
    double moved[2];
    int i = trip_after_moving(&env, moved);
    assert_kill_alloc(&env, i, moved[0], moved[1]);
    env_free(&env);
}

Test(action, fallback_is_initial_split)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.kill = {.overspend = "1.5", .action = "fallback"}});
    double moved[2];
    int i = trip_after_moving(&env, moved);
    assert_kill_alloc(&env, i, 1500, 1500);
    env_free(&env);
}

Test(action, zero_spends_nothing)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.kill = {.overspend = "1.5", .action = "zero"}});
    double moved[2];
    int i = trip_after_moving(&env, moved);
    assert_kill_alloc(&env, i, 0, 0);
    cr_assert_eq(cJSON_GetObjectItem(env.cap->rec[i], "total")->valuedouble, 0);
    env_free(&env);
}

/* ---- modes -------------------------------------------------------------- */

/* Runs 6 cycles where search is far better, for pf. */
static void skewed_run(env_t *env, const char *pf)
{
    for (int k = 0; k < 6; k++) {
        cycle_data(env, pf, k, 1, 1, 5, 0.4, 2);
        close_cycle(env, pf, k);
    }
}

/* assist: every later record is a proposal (or kept), the allocation in
 * force never leaves the initial split, and the proposals do move. */
Test(mode, assist_proposes_only)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.mode = "assist"});
    skewed_run(&env, "acme");
    int proposed = 0;
    double most = 0;
    for (int i = 0; i < env.cap->n; i++) {
        cr_assert_str_eq(rstr(env.cap, i, "mode"), "assist");
        cr_assert_str_eq(rstr(env.cap, i, "status"), "active");
        cr_assert_eq(env.cap->x_after[i][0], 1500, "record %d moved the allocation in force", i);
        cr_assert_eq(env.cap->x_after[i][1], 1500);
        if (i == 0) {
            cr_assert_str_eq(rstr(env.cap, i, "path"), "initial");
            continue;
        }
        const char *path = rstr(env.cap, i, "path");
        cr_assert(!strcmp(path, "proposed") || !strcmp(path, "kept"), "path %s", path);
        cr_assert_eq(rch(env.cap, i, "search", "prev"), 1500);
        if (!strcmp(path, "proposed")) proposed++;
        if (rch(env.cap, i, "search", "spend") > most) most = rch(env.cap, i, "search", "spend");
    }
    cr_assert_geq(proposed, 4);
    cr_assert_gt(most, 1800, "proposals never moved: %.2f", most);
    bd_portfolio_t *p = pf_of(&env, "acme");
    cr_assert(p->has_proposal);
    cr_assert_eq(p->proposal_cycle, C0 + 6);
    env_free(&env);
}

/* collaborate: proposals; an approval of the pending cycle makes it the
 * allocation in force (what the daemon does after the approve key), and the
 * next decision starts from it. */
Test(mode, collaborate_applies_on_approval)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.mode = "collaborate"});
    skewed_run(&env, "acme");
    for (int i = 1; i < env.cap->n; i++) {
        cr_assert_str_eq(rstr(env.cap, i, "path"), "proposed", "record %d: %s", i, rstr(env.cap, i, "path"));
        cr_assert_eq(env.cap->x_after[i][0], 1500);
    }
    bd_portfolio_t *p = pf_of(&env, "acme");
    cr_assert(p->has_proposal);
    int last = env.cap->n - 1;
    cr_assert_eq(p->proposal_cycle, rcycle(env.cap, last));
    char *json = NULL;
    size_t cap = 0;
    bd_decide_approval_record(p, T0 + 7 * 3600, &json, &cap);
    cJSON *a = cJSON_Parse(json);
    cr_assert_not_null(a);
    cr_assert_str_eq(cJSON_GetObjectItem(a, "path")->valuestring, "approved");
    cr_assert_str_eq(cJSON_GetObjectItem(a, "status")->valuestring, "active");
    cr_assert_eq((long long)cJSON_GetObjectItem(a, "cycle")->valuedouble, rcycle(env.cap, last));
    cJSON_Delete(a);
    free(json);
    bd_decide_apply_proposal(p);
    cr_assert_not(p->has_proposal);
    double s = rch(env.cap, last, "search", "spend");
    cr_assert_eq(alloc_of(&env, "acme", "search"), s);
    cycle_data(&env, "acme", 6, 1, 1, 5, 0.4, 2);
    close_cycle(&env, "acme", 6);
    cr_assert_eq(rch(env.cap, env.cap->n - 1, "search", "prev"), s);
    env_free(&env);
}

/* delegate: with a slow ramp (changes within escalate_above) decisions are
 * applied; with a fast one (changes above it) they are escalated and the
 * allocation in force stays. */
Test(mode, delegate_applies_small_escalates_large)
{
    env_t env;
    env_new(&env, &(cfgopt_t){
                      .mode = "delegate", .escalate = "0.3",
                      .extra = "  wide:\n    budget: 3000\n    max_step: 1.0\n    channels:\n"
                               "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"});
    /* acme: max_step 0.25 (< 0.3); wide: max_step 1.0 */
    for (int k = 0; k < 6; k++) {
        cycle_data(&env, "acme", k, 1, 1, 5, 0.4, 2);
        cycle_data(&env, "wide", k, 1, 1, 5, 0.4, 2);
        close_cycle(&env, "acme", k);
        close_cycle(&env, "wide", k);
    }
    int applied = 0, escalated = 0;
    for (int i = 0; i < env.cap->n; i++) {
        const char *path = rstr(env.cap, i, "path");
        if (!strcmp(path, "initial")) continue;
        if (!strcmp(env.cap->pf[i], "acme")) {
            cr_assert(!strcmp(path, "applied") || !strcmp(path, "kept"), "acme: %s", path);
            if (!strcmp(path, "applied")) {
                applied++;
                cr_assert_eq(env.cap->x_after[i][0], rch(env.cap, i, "search", "spend"));
                double prev = rch(env.cap, i, "search", "prev");
                cr_assert_leq(rch(env.cap, i, "search", "spend") - prev, 0.3 * prev + 0.01);
            }
        } else {
            cr_assert_str_eq(path, "escalated", "wide: %s", path);
            escalated++;
            cr_assert_eq(env.cap->x_after[i][0], 1500, "an escalation changed the allocation");
            cr_assert_gt(rch(env.cap, i, "search", "spend"), 1500 * 1.3);
        }
    }
    cr_assert_geq(applied, 3);
    cr_assert_geq(escalated, 5);
    cr_assert(pf_of(&env, "wide")->has_proposal);
    env_free(&env);
}

/* automate: every change that passes the guardrails is applied. */
Test(mode, automate_applies)
{
    env_t env;
    env_new(&env, &(cfgopt_t){.mode = "automate"});
    skewed_run(&env, "acme");
    int applied = 0;
    for (int i = 1; i < env.cap->n; i++) {
        const char *path = rstr(env.cap, i, "path");
        cr_assert(!strcmp(path, "applied") || !strcmp(path, "kept"), "%s", path);
        if (!strcmp(path, "applied")) applied++;
        cr_assert_eq(env.cap->x_after[i][0], rch(env.cap, i, "search", "spend"));
        cr_assert_eq(env.cap->x_after[i][1], rch(env.cap, i, "social", "spend"));
    }
    cr_assert_geq(applied, 4);
    cr_assert_gt(alloc_of(&env, "acme", "search"), 2000);
    cr_assert_not(pf_of(&env, "acme")->has_proposal);
    env_free(&env);
}

/* ---- property ----------------------------------------------------------- */

/* A long random run over every mode and action, with every trigger armed,
 * random runaway spend, gaps, rejects, operator kills, resumes and
 * approvals: the sink's invariant (no active record while killed) holds on
 * every record, and a kill stays latched until an operator resume. */
Test(property, never_active_while_killed, .timeout = 60)
{
    static const char *modes[] = {"assist", "collaborate", "delegate", "automate"};
    static const char *actions[] = {"freeze", "fallback", "zero"};
    int killed_total = 0, active_total = 0, trips = 0;
    for (int run = 0; run < 12; run++) {
        unsigned seed = 1234u + (unsigned)run;
        env_t env;
        env_new(&env, &(cfgopt_t){.mode = modes[run % 4],
                                  .kill = {.roas_below = "0.4", .window = "4", .overspend = "2",
                                           .stale = "4h", .reject = "0.3", .action = actions[run % 3]}});
        const char *pfs[] = {"acme", "ctrl"};
        for (int k = 0; k < 150; k++) {
            for (int q = 0; q < 2; q++) {
                const char *pf = pfs[q];
                int dice = rand_r(&seed) % 100;
                if (dice >= 4) { /* else: no events this cycle (gaps) */
                    double over = (rand_r(&seed) % 100) < 3 ? 2.5 : 0.5 + (rand_r(&seed) % 100) / 100.0;
                    double roas = (rand_r(&seed) % 100) < 10 ? 0.1 : 0.5 + (rand_r(&seed) % 300) / 100.0;
                    cycle_data(&env, pf, k, over, 1, roas, roas * 0.5, 1 + rand_r(&seed) % 3);
                }
                if ((rand_r(&seed) % 100) < 3)
                    for (int b = 0; b < 6; b++) bad_event(&env, pf, k);
                bd_portfolio_t *p = pf_of(&env, pf);
                int op = rand_r(&seed) % 100;
                if (op < 2) bd_killswitch_operator_kill(p, "random drill");
                else if (op < 12 && p->killed) bd_killswitch_operator_resume(p);
                else if (op < 30 && p->has_proposal) bd_decide_apply_proposal(p);
                bool was_killed = p->killed;
                int before = env.cap->n;
                close_cycle(&env, pf, k);
                /* latched: a killed portfolio's decision is killed */
                if (was_killed && env.cap->n > before)
                    cr_assert_str_eq(rstr(env.cap, env.cap->n - 1, "status"), "killed");
            }
        }
        for (int i = 0; i < env.cap->n; i++) {
            if (!strcmp(rstr(env.cap, i, "status"), "killed")) killed_total++;
            if (!strcmp(rstr(env.cap, i, "status"), "active")) active_total++;
            if (env.cap->tripped[i]) trips++;
        }
        env_free(&env); /* asserts the sink saw no violation */
    }
    cr_assert_gt(trips, 10, "the run must exercise trips (%d)", trips);
    cr_assert_gt(killed_total, 100);
    cr_assert_gt(active_total, 100);
}
