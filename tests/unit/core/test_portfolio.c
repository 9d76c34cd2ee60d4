/* test_portfolio.c: the portfolio table and per-portfolio state
 * (portfolio.h) directly: the table grows without moving a portfolio and
 * finds every one of 10,000 names (and no near miss); channels keep their
 * registration order, invalid channel names are refused, and growing the
 * channel array keeps every open aggregate in its (slot, channel) place;
 * the slot ring folds negative cycles into range; a rebind to a reloaded
 * config keeps the models, the allocation and the open aggregates. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/config.h"
#include "budgetd/portfolio.h"
#include "fixtures.h"

#define N_PF 10000

static bd_config_t *g_cfg;

/* acme lists search (saturation 2000) and social; kill window 3. */
static const char *CFG = "v: 1\ncycle: 1h\n"
                         "defaults:\n  budget: 1000\n  kill: {window: 3}\n  channel: {saturation: 700}\n"
                         "portfolios:\n"
                         "  acme:\n    budget: 3000\n    channels:\n"
                         "      search: {min: 100, saturation: 2000}\n"
                         "      social: {min: 50}\n";

/* Loads CFG: the policies every test binds its portfolios to. */
static void setup(void)
{
    char err[2048];
    g_cfg = bd_test_config(CFG, err, sizeof err);
    cr_assert_not_null(g_cfg, "%s", err);
}

/* Frees the config (each test frees its own table first). */
static void teardown(void) { bd_config_free(g_cfg); }

TestSuite(portfolio, .init = setup, .fini = teardown);

/* acme of g_cfg in t with nslots ring slots. */
static bd_portfolio_t *acme(bd_ptable_t *t, int nslots)
{
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(g_cfg, "acme");
    cr_assert_not_null(pc);
    return bd_ptable_add(t, "acme", pc, &pc->p, nslots);
}

/* ---- the table --------------------------------------------------------- */

/* 10,000 portfolios: the slot array doubles many times on the way, yet
 * every pointer handed out stays the portfolio of its name, the creation
 * order is kept, and find knows every name and no other. */
Test(portfolio, table_growth_keeps_pointers_and_finds_10k_names)
{
    bd_ptable_t *t = bd_ptable_new();
    static bd_portfolio_t *got[N_PF];
    char name[32];
    for (int i = 0; i < N_PF; i++) {
        snprintf(name, sizeof name, "pf-%05d", i);
        cr_assert_null(bd_ptable_find(t, name, strlen(name)), "%s found before it was added", name);
        got[i] = bd_ptable_add(t, name, NULL, &g_cfg->defaults, 2);
        cr_assert_not_null(got[i]);
        got[i]->version = (uint64_t)i; /* a mark that must survive the growth */
    }
    cr_assert_eq(bd_ptable_count(t), N_PF);
    for (int i = 0; i < N_PF; i++) {
        snprintf(name, sizeof name, "pf-%05d", i);
        bd_portfolio_t *p = bd_ptable_find(t, name, strlen(name));
        cr_assert_eq(p, got[i], "%s moved or got lost", name);
        cr_assert_str_eq(p->name, name);
        cr_assert_eq(p->version, (uint64_t)i);
        cr_assert_eq(bd_ptable_at(t, (size_t)i), got[i], "creation order at %d", i);
    }
    cr_assert_null(bd_ptable_at(t, N_PF));
    /* near misses: a prefix, a longer name, another digit */
    cr_assert_null(bd_ptable_find(t, "pf-0000", 7));
    cr_assert_null(bd_ptable_find(t, "pf-000001", 9));
    cr_assert_null(bd_ptable_find(t, "pf-10000", 8));
    cr_assert_null(bd_ptable_find(t, "", 0));
    /* only len bytes of the name count */
    cr_assert_eq(bd_ptable_find(t, "pf-00042 and more", 8), got[42]);
    bd_ptable_free(t);
}

/* A new portfolio starts empty: no channel, nothing seen (the INT64_MIN
 * markers), no offset, a zeroed kill window of the policy's length. */
Test(portfolio, new_portfolio_starts_unseen)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = acme(t, 4);
    cr_assert_str_eq(p->name, "acme");
    cr_assert_eq(p->pc, bd_config_portfolio(g_cfg, "acme"));
    cr_assert_eq(p->n, 0);
    cr_assert_eq(p->nslots, 4);
    cr_assert_eq(p->open, INT64_MIN);
    cr_assert_eq(p->newest_ts, INT64_MIN);
    cr_assert_eq(p->watermark, INT64_MIN);
    cr_assert_eq(p->alloc_cycle, INT64_MIN);
    cr_assert_eq(p->offset, -1);
    cr_assert_eq(p->partition, -1);
    cr_assert_eq(p->ckpt_offset, -1);
    cr_assert_eq(p->first_unsaved, -1);
    cr_assert_not(p->killed);
    for (int s = 0; s < 4; s++) cr_assert_eq(p->slot_events[s], 0);
    for (int k = 0; k < 3; k++) cr_assert(p->hist[k].spend == 0 && p->hist[k].value == 0);
    bd_ptable_free(t);
}

/* ---- channels ------------------------------------------------------------ */

/* Channels get indexes in the order they are first seen; seeing one again
 * returns its index and adds nothing. A listed channel binds to its config
 * row and takes its saturation into the prior; an unlisted one takes the
 * policy's default channel. Models start at their prior, x at 0. */
Test(portfolio, channels_keep_registration_order)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = acme(t, 2);
    const bd_portfolio_cfg_t *pc = p->pc;
    cr_assert_eq(bd_portfolio_channel(p, "video"), 0);
    cr_assert_eq(bd_portfolio_channel(p, "search"), 1);
    cr_assert_eq(bd_portfolio_channel(p, "social"), 2);
    cr_assert_eq(bd_portfolio_channel(p, "search"), 1);
    cr_assert_eq(bd_portfolio_channel(p, "video"), 0);
    cr_assert_eq(p->n, 3);
    cr_assert_str_eq(p->ch[0].name, "video");
    cr_assert_str_eq(p->ch[1].name, "search");
    cr_assert_str_eq(p->ch[2].name, "social");
    cr_assert_eq(p->ch[1].cfg, bd_config_channel(pc, p->pol, "search"));
    cr_assert_str_eq(p->ch[1].cfg->name, "search");
    cr_assert_eq(p->ch[1].cfg->min, 100);
    cr_assert_eq(p->ch[2].cfg->min, 50);
    cr_assert_str_eq(p->ch[0].cfg->name, "", "an unlisted channel runs on the default row");
    cr_assert_eq(p->ch[1].prior.saturation, 2000);
    cr_assert_eq(p->ch[0].prior.saturation, 700);
    cr_assert_eq(p->ch[1].prior.budget, 3000);
    const bd_model_ops_t *ops = bd_model_get(p->pol->model);
    for (size_t i = 0; i < p->n; i++) {
        bd_model_state_t prior;
        memset(&prior, 0, sizeof prior);
        ops->init(&prior, &p->ch[i].prior);
        cr_assert(memcmp(&prior, &p->ch[i].model, sizeof prior) == 0, "%s: not at its prior", p->ch[i].name);
        cr_assert_eq(p->ch[i].x, 0);
        cr_assert_not(p->ch[i].promoted);
    }
    bd_ptable_free(t);
}

/* Names outside the rule (1-64 of [A-Za-z0-9_.:-]) are refused with -1 and
 * add nothing. */
Test(portfolio, invalid_channel_names_refused)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = acme(t, 2);
    cr_assert_eq(bd_portfolio_channel(p, "ok"), 0);
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    const char *bad[] = {"", "a b", "*", "x/y", "caf\xc3\xa9", "tab\t", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(bd_portfolio_channel(p, bad[i]), -1, "'%s' accepted", bad[i]);
    cr_assert_eq(p->n, 1);
    long_name[64] = '\0'; /* exactly 64 is fine */
    cr_assert_eq(bd_portfolio_channel(p, long_name), 1);
    cr_assert_eq(bd_portfolio_channel(p, "A.b:c_d-9"), 2);
    cr_assert_eq(p->n, 3);
    bd_ptable_free(t);
}

/* The channel array grows one by one (by an eighth later); every growth
 * re-lays out the open aggregates (slot-major, cap channels a slot), so
 * each value must stay at its (slot, channel) through 40 additions. */
Test(portfolio, channel_growth_keeps_open_aggregates)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = acme(t, 3);
    char name[16];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "c%02d", i);
        cr_assert_eq(bd_portfolio_channel(p, name), i);
        cr_assert_geq(p->cap, p->n);
        for (int s = 0; s < 3; s++) {
            bd_agg_t *a = &bd_portfolio_slot(p, s)[i];
            cr_assert(a->spend == 0 && a->events == 0, "channel %d slot %d not zeroed", i, s);
            a->spend = 1000 * s + i;
            a->events = (uint32_t)(100 * s + i);
        }
        for (int j = 0; j <= i; j++)
            for (int s = 0; s < 3; s++) {
                const bd_agg_t *a = &bd_portfolio_slot(p, s)[j];
                cr_assert(a->spend == 1000 * s + j && a->events == (uint32_t)(100 * s + j),
                          "after adding channel %d: slot %d channel %d holds %g", i, s, j, a->spend);
            }
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "c%02d", i);
        cr_assert_str_eq(p->ch[i].name, name);
    }
    bd_ptable_free(t);
}

/* ---- the slot ring ----------------------------------------------------------- */

/* Cycle c lives in slot c mod nslots, folded into [0, nslots) also for
 * negative cycles, so nslots consecutive cycles always take distinct slots;
 * bd_portfolio_slot is that slot's row of the aggregates. */
Test(portfolio, slot_ring_folds_negative_cycles)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = acme(t, 4);
    bd_portfolio_channel(p, "search");
    const struct {
        int64_t c;
        size_t slot;
    } want[] = {{0, 0},  {1, 1},  {3, 3},  {4, 0},  {-1, 3}, {-2, 2},        {-3, 1},
                {-4, 0}, {-5, 3}, {-8, 0}, {-9, 3}, {INT64_MAX, 3}, {INT64_MIN, 0}, {INT64_MIN + 1, 1}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        size_t s = bd_portfolio_slot_index(p, want[i].c);
        cr_assert_eq(s, want[i].slot, "cycle %lld: slot %zu", (long long)want[i].c, s);
        cr_assert_eq(bd_portfolio_slot(p, want[i].c), p->agg + want[i].slot * p->cap);
    }
    for (int64_t c = -50; c < 50; c++) {
        bool seen[4] = {false};
        for (int64_t k = 0; k < 4; k++) {
            size_t s = bd_portfolio_slot_index(p, c + k);
            cr_assert_lt(s, 4);
            cr_assert_not(seen[s], "cycles %lld..%lld share slot %zu", (long long)c, (long long)c + 3, s);
            seen[s] = true;
        }
    }
    /* an odd ring too */
    bd_portfolio_t *q = bd_ptable_add(t, "odd", NULL, &g_cfg->defaults, 3);
    cr_assert_eq(bd_portfolio_slot_index(q, -1), 2);
    cr_assert_eq(bd_portfolio_slot_index(q, -3), 0);
    cr_assert_eq(bd_portfolio_slot_index(q, -4), 2);
    bd_ptable_free(t);
}

/* ---- rebind --------------------------------------------------------------------- */

/* Fills p's channels (search, social, an unlisted tv) with an allocation,
 * models that saw data, open aggregates and a kill window of 2 cycles. */
static void play(bd_portfolio_t *p)
{
    const char *names[] = {"search", "social", "tv"};
    const bd_model_ops_t *ops = bd_model_get(p->pol->model);
    for (int i = 0; i < 3; i++) {
        int ci = bd_portfolio_channel(p, names[i]);
        cr_assert_eq(ci, i);
        bd_channel_t *c = &p->ch[ci];
        c->x = 1000 + i;
        c->safe = 900 + i;
        c->proposed = 1100 + i;
        c->promoted = i == 1;
        bd_agg_t a = {.spend = 900 + 50.0 * i, .conversions = 30 + i, .revenue = 2000, .events = 4};
        ops->observe(&c->model, &c->prior, &a, NULL);
        for (int s = 0; s < p->nslots; s++) bd_portfolio_slot(p, s)[ci].spend = 10 * s + i;
    }
    p->hist[0] = (bd_cycle_hist_t){3000, 4500};
    p->hist[1] = (bd_cycle_hist_t){3000, 1500};
    p->hist_n = 2;
}

/* A reloaded config: guardrails and priors follow it (search's saturation
 * and min change, tv stays on the default row of the new policy); models,
 * the allocation, the proposal, promotion and the open aggregates are kept;
 * the same kill window keeps its history, another length restarts it. */
Test(portfolio, rebind_keeps_models_and_allocation)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = acme(t, 3);
    play(p);
    bd_channel_t before[3];
    memcpy(before, p->ch, sizeof before);
    bd_agg_t agg_before[9];
    for (int s = 0; s < 3; s++) memcpy(&agg_before[s * 3], bd_portfolio_slot(p, s), 3 * sizeof(bd_agg_t));

    char err[2048];
    const char *y2 = "v: 1\ncycle: 1h\n"
                     "defaults:\n  budget: 1000\n  kill: {window: 3}\n  channel: {saturation: 900}\n"
                     "portfolios:\n"
                     "  acme:\n    budget: 5000\n    channels:\n"
                     "      search: {min: 300, saturation: 4000}\n"
                     "      social: {min: 50}\n";
    bd_config_t *cfg2 = bd_test_config(y2, err, sizeof err);
    cr_assert_not_null(cfg2, "%s", err);
    const bd_portfolio_cfg_t *pc2 = bd_config_portfolio(cfg2, "acme");
    bd_portfolio_rebind(p, pc2, &pc2->p);
    cr_assert_eq(p->pc, pc2);
    cr_assert_eq(p->pol, &pc2->p);
    cr_assert_eq(p->n, 3);
    for (int i = 0; i < 3; i++) {
        const bd_channel_t *c = &p->ch[i], *b = &before[i];
        cr_assert_str_eq(c->name, b->name);
        cr_assert(memcmp(&c->model, &b->model, sizeof c->model) == 0, "%s: model state changed", c->name);
        cr_assert(c->x == b->x && c->safe == b->safe && c->proposed == b->proposed, "%s: allocation", c->name);
        cr_assert_eq(c->promoted, b->promoted);
        cr_assert_eq(c->cfg, bd_config_channel(pc2, &pc2->p, c->name), "%s: bound to the new config", c->name);
        cr_assert_eq(c->prior.budget, 5000, "%s: prior follows the new budget", c->name);
    }
    cr_assert_eq(p->ch[0].cfg->min, 300);
    cr_assert_eq(p->ch[0].prior.saturation, 4000);
    cr_assert_eq(p->ch[2].prior.saturation, 900, "unlisted: the new default row");
    for (int s = 0; s < 3; s++)
        cr_assert(memcmp(bd_portfolio_slot(p, s), &agg_before[s * 3], 3 * sizeof(bd_agg_t)) == 0,
                  "slot %d: open aggregates changed", s);
    cr_assert_eq(p->hist_n, 2, "same window length: the history stays");
    cr_assert(p->hist[0].spend == 3000 && p->hist[1].value == 1500);

    /* a window of another length restarts; the rest still holds */
    const char *y3 = "v: 1\ncycle: 1h\n"
                     "defaults:\n  budget: 1000\n  kill: {window: 5}\n"
                     "portfolios:\n  acme:\n    budget: 3000\n";
    bd_config_t *cfg3 = bd_test_config(y3, err, sizeof err);
    cr_assert_not_null(cfg3, "%s", err);
    const bd_portfolio_cfg_t *pc3 = bd_config_portfolio(cfg3, "acme");
    bd_portfolio_rebind(p, pc3, &pc3->p);
    cr_assert_eq(p->hist_n, 0);
    for (int k = 0; k < 5; k++) cr_assert(p->hist[k].spend == 0 && p->hist[k].value == 0);
    for (int i = 0; i < 3; i++) {
        cr_assert(memcmp(&p->ch[i].model, &before[i].model, sizeof before[i].model) == 0);
        cr_assert_eq(p->ch[i].x, before[i].x);
        cr_assert_str_eq(p->ch[i].cfg->name, "", "no channel is listed any more");
    }
    /* and back to the defaults (pc NULL: an unlisted portfolio) */
    bd_portfolio_rebind(p, NULL, &cfg3->defaults);
    cr_assert_null(p->pc);
    cr_assert_eq(p->ch[0].cfg, &cfg3->defaults.channel);
    cr_assert_eq(p->ch[0].x, before[0].x);
    bd_ptable_free(t);
    bd_config_free(cfg3);
    bd_config_free(cfg2);
}
