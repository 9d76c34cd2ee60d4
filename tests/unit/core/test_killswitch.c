/* test_killswitch.c: the kill-switch module on its own (killswitch.h):
 * trigger order, the latch trips once, the window leaves corrupt channels
 * out, operator kill/resume, and the three kill actions. The end-to-end
 * triggers through the engine are in test_governance.c. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include "budgetd/killswitch.h"
#include "budgetd/portfolio.h"

typedef struct {
    bd_policy_t pol;
    bd_ptable_t *t;
    bd_portfolio_t *p;
    bd_agg_t agg[2];
    bool corrupt[2];
    bd_killswitch_cycle_t c;
} fx_t;

/* A portfolio "p" with channels a and b at 600 and 400 of a 1000 budget,
 * every trigger off; a quiet cycle that spent the allocation. */
static void fx_init(fx_t *f)
{
    memset(f, 0, sizeof(*f));
    f->pol.budget = 1000;
    f->pol.model = BD_MODEL_POISSON_SAT;
    f->pol.risk_roas_floor = 1;
    f->pol.kill.window = 3;
    f->pol.kill.max_reject_ratio = 1;
    f->pol.channel.max = 1e9;
    f->pol.channel.saturation = 500;
    f->t = bd_ptable_new();
    f->p = bd_ptable_add(f->t, "p", NULL, &f->pol, 2);
    cr_assert_eq(bd_portfolio_channel(f->p, "a"), 0);
    cr_assert_eq(bd_portfolio_channel(f->p, "b"), 1);
    f->p->ch[0].x = 600;
    f->p->ch[1].x = 400;
    for (int i = 0; i < 2; i++) f->agg[i] = (bd_agg_t){.spend = f->p->ch[i].x, .revenue = 1000, .events = 1};
    f->c = (bd_killswitch_cycle_t){.agg = f->agg, .corrupt = f->corrupt, .closed_end = 7200,
                                   .last_event_ts = 7000, .events = 20, .rejected = 0};
}

static void fx_free(fx_t *f) { bd_ptable_free(f->t); }

Test(killswitch, quiet_cycle_does_not_trip)
{
    fx_t f;
    fx_init(&f);
    char reason[160] = "";
    cr_assert_not(bd_killswitch_check(f.p, &f.c, reason, sizeof(reason)));
    cr_assert_not(bd_killswitch_close_cycle(f.p, &f.c));
    cr_assert_not(f.p->killed);
    cr_assert_eq(f.p->hist_n, 1);
    fx_free(&f);
}

/* Implausible data comes first, whatever else fires in the same cycle. */
Test(killswitch, implausible_before_overspend)
{
    fx_t f;
    fx_init(&f);
    f.pol.kill.overspend_ratio = 1.5;
    f.agg[0].spend = 5000;         /* overspend on a */
    f.agg[1].conversions = 1e300;  /* implausible on b */
    f.corrupt[1] = true;
    char reason[160];
    cr_assert(bd_killswitch_check(f.p, &f.c, reason, sizeof(reason)));
    cr_assert(strstr(reason, "implausible data: channel 'b'"), "%s", reason);
    f.corrupt[1] = false;
    cr_assert(bd_killswitch_check(f.p, &f.c, reason, sizeof(reason)));
    cr_assert(strstr(reason, "overspend: channel 'a'"), "%s", reason);
    fx_free(&f);
}

Test(killswitch, stale_and_rejects)
{
    fx_t f;
    fx_init(&f);
    char reason[160];
    f.pol.kill.stale_after = 200;
    cr_assert_not(bd_killswitch_check(f.p, &f.c, reason, sizeof(reason))); /* 200 s: not past */
    f.c.last_event_ts = 6999;
    cr_assert(bd_killswitch_check(f.p, &f.c, reason, sizeof(reason)));
    cr_assert(strstr(reason, "stale: no events for 201s"), "%s", reason);
    f.c.last_event_ts = INT64_MIN; /* never saw an event: not stale */
    cr_assert_not(bd_killswitch_check(f.p, &f.c, reason, sizeof(reason)));
    f.pol.kill.max_reject_ratio = 0.5;
    f.c.events = 4, f.c.rejected = 5; /* 9 seen: too few to judge */
    cr_assert_not(bd_killswitch_check(f.p, &f.c, reason, sizeof(reason)));
    f.c.events = 5, f.c.rejected = 6;
    cr_assert(bd_killswitch_check(f.p, &f.c, reason, sizeof(reason)));
    cr_assert(strstr(reason, "rejects: 6 of 11"), "%s", reason);
    fx_free(&f);
}

/* The trailing ROAS needs a full window; corrupt channels stay out of it;
 * the latch trips once and keeps its first reason. */
Test(killswitch, trailing_roas_latches_once)
{
    fx_t f;
    fx_init(&f);
    f.pol.kill.roas_below = 0.5;
    for (int i = 0; i < 2; i++) f.agg[i].revenue = 100; /* ROAS 0.2 */
    cr_assert_not(bd_killswitch_close_cycle(f.p, &f.c));
    f.corrupt[1] = true, f.agg[1].revenue = 1e300; /* implausible: kept out of the window */
    cr_assert(bd_killswitch_close_cycle(f.p, &f.c)); /* implausible trips first */
    cr_assert(strstr(f.p->kill_reason, "implausible"), "%s", f.p->kill_reason);
    cr_assert(f.p->hist[1].value == 100 && f.p->hist[1].spend == 600);
    f.corrupt[1] = false, f.agg[1].revenue = 100;
    cr_assert_not(bd_killswitch_close_cycle(f.p, &f.c)); /* already latched */
    cr_assert(strstr(f.p->kill_reason, "implausible"), "%s", f.p->kill_reason);
    bd_killswitch_operator_resume(f.p);
    cr_assert_not(f.p->killed);
    cr_assert_eq(f.p->kill_reason[0], '\0');
    cr_assert_eq(f.p->hist_n, 0);
    cr_assert_not(bd_killswitch_close_cycle(f.p, &f.c)); /* window restarted: 1 of 3 */
    cr_assert_not(bd_killswitch_close_cycle(f.p, &f.c));
    cr_assert(bd_killswitch_close_cycle(f.p, &f.c));
    cr_assert(strstr(f.p->kill_reason, "roas: 0.2000 over the last 3 cycles"), "%s",
              f.p->kill_reason);
    fx_free(&f);
}

Test(killswitch, operator_kill_reason)
{
    fx_t f;
    fx_init(&f);
    bd_killswitch_operator_kill(f.p, "finance freeze");
    cr_assert(f.p->killed);
    cr_assert_str_eq(f.p->kill_reason, "operator: finance freeze");
    cr_assert_not(bd_killswitch_close_cycle(f.p, &f.c));
    bd_killswitch_operator_kill(f.p, NULL);
    cr_assert_str_eq(f.p->kill_reason, "operator: ");
    fx_free(&f);
}

Test(killswitch, actions)
{
    fx_t f;
    fx_init(&f);
    const bd_channel_cfg_t *cfgs[2] = {f.p->ch[0].cfg, f.p->ch[1].cfg};
    double x[2];
    f.pol.kill.action = BD_KILL_FREEZE;
    bd_killswitch_action_alloc(f.p, cfgs, x);
    cr_assert(x[0] == 600 && x[1] == 400);
    f.pol.kill.action = BD_KILL_ZERO;
    bd_killswitch_action_alloc(f.p, cfgs, x);
    cr_assert(x[0] == 0 && x[1] == 0);
    f.pol.kill.action = BD_KILL_FALLBACK; /* the initial split: equal here */
    bd_killswitch_action_alloc(f.p, cfgs, x);
    cr_assert(x[0] == 500 && x[1] == 500, "%g %g", x[0], x[1]);
    fx_free(&f);
}
