/* test_checkpoint_v5.c: checkpoint v5 carries each channel's delivery and
 * data-fault state (a learned cap, a fault in force with its hold) across
 * a restart, and a v4 blob (written before they existed) still restores,
 * with both starting from their initial values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/portfolio.h"

static const char CFG[] = "v: 1\nportfolios:\n  p:\n    budget: 1000\n    channels:\n"
                          "      a: {}\n      b: {}\n";

/* A portfolio of CFG with channel a capped and b under a tracking fault. */
static bd_portfolio_t *make(bd_ptable_t *t, const bd_config_t *c)
{
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(c, "p");
    bd_portfolio_t *p = bd_ptable_add(t, "p", pc, &pc->p, 2);
    cr_assert_eq(bd_portfolio_channel(p, "a"), 0);
    cr_assert_eq(bd_portfolio_channel(p, "b"), 1);
    return p;
}

Test(checkpoint_v5, delivery_and_fault_state_round_trip)
{
    char err[1024];
    bd_config_t *c;
    cr_assert_eq(bd_config_load_string(CFG, strlen(CFG), "t.yaml", &c, err, sizeof err), BD_OK, "%s", err);
    bd_ptable_t *t1 = bd_ptable_new(), *t2 = bd_ptable_new(), *t3 = bd_ptable_new();
    bd_portfolio_t *p = make(t1, c);
    for (int k = 0; k < 3; k++) bd_delivery_observe(&p->ch[0].dlv, 450, 200, 0.1, 1, true);
    cr_assert(p->ch[0].dlv.capped);
    p->ch[1].fault.kind = BD_FAULT_TRACKING;
    p->ch[1].fault.hold = 321.5;
    p->ch[1].fault.from = 77;
    unsigned char *blob = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(p, &blob, &cap);

    bd_portfolio_t *q = bd_ptable_add(t2, "p", p->pc, p->pol, 2);
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(q->n, 2);
    cr_assert(memcmp(&q->ch[0].dlv, &p->ch[0].dlv, sizeof p->ch[0].dlv) == 0);
    cr_assert(memcmp(&q->ch[1].fault, &p->ch[1].fault, sizeof p->ch[1].fault) == 0);
    cr_assert_float_eq(bd_delivery_cap(&q->ch[0].dlv), 200, 1e-9);

    /* the same blob as v5 wrote it: no cycle length after the name, no kill
     * actor and time after the kill reason (both empty here: 8-byte lengths) */
    cr_assert_eq(p->kill_reason[0], '\0');
    size_t name_end = 16 + 8 + strlen(p->name);
    size_t reason = name_end + 8 + 12 * 8; /* cycle_len, then 12 scalars */
    unsigned char *v5 = malloc(len);
    memcpy(v5, blob, name_end);
    memcpy(v5 + name_end, blob + name_end + 8, reason + 8 - (name_end + 8));
    size_t v5n = name_end + (reason + 8 - (name_end + 8));
    memcpy(v5 + v5n, blob + reason + 8 + 16, len - (reason + 8 + 16));
    v5n += len - (reason + 8 + 16);
    uint64_t ver5 = 5;
    memcpy(v5 + 8, &ver5, 8);
    free(blob);
    blob = v5;
    len = v5n;
    bd_ptable_t *t5 = bd_ptable_new();
    bd_portfolio_t *q5 = bd_ptable_add(t5, "p", p->pc, p->pol, 2);
    cr_assert_eq(bd_checkpoint_decode(q5, blob, len, err, sizeof err), BD_OK, "v5: %s", err);
    cr_assert(memcmp(&q5->ch[1].fault, &p->ch[1].fault, sizeof p->ch[1].fault) == 0);
    bd_ptable_free(t5);

    /* the same blob as v4 wrote it: no delivery or fault state */
    size_t cut = sizeof(bd_delivery_t) + sizeof(bd_fault_t);
    unsigned char *v4 = malloc(len);
    size_t n4 = 0, at = 0;
    for (size_t i = 0; i < 2; i++) {
        const unsigned char *d = memmem(blob + at, len - at, &p->ch[i].dlv, sizeof p->ch[i].dlv);
        cr_assert_not_null(d);
        size_t off = (size_t)(d - blob);
        memcpy(v4 + n4, blob + at, off - at);
        n4 += off - at;
        at = off + cut;
    }
    memcpy(v4 + n4, blob + at, len - at);
    n4 += len - at;
    uint64_t ver = 4;
    memcpy(v4 + 8, &ver, 8);
    bd_portfolio_t *r = bd_ptable_add(t3, "p", p->pc, p->pol, 2);
    cr_assert_eq(bd_checkpoint_decode(r, v4, n4, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(r->n, 2);
    cr_assert_not(r->ch[0].dlv.capped);
    cr_assert(isnan(r->ch[0].dlv.ratio));
    cr_assert_eq(r->ch[1].fault.kind, BD_FAULT_NONE);
    cr_assert_eq(r->ch[1].fault.drop_to, INT64_MIN);
    /* a v4 blob cut short is still refused */
    cr_assert_eq(bd_checkpoint_decode(r, v4, n4 - 1, err, sizeof err), BD_ERR_INVALID);
    free(v4);
    free(blob);
    bd_ptable_free(t1);
    bd_ptable_free(t2);
    bd_ptable_free(t3);
    bd_config_free(c);
}
