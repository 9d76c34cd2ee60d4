/* portfolio.c: the portfolio table (open-addressing hash on the name) and
 * channel registration. Portfolios are never removed during a run, so the
 * table only grows and pointers to portfolios stay valid. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/portfolio.h"
#include "budgetd/event.h"

struct bd_ptable {
    bd_portfolio_t **slots; /* hash slots, power of two */
    size_t mask;
    bd_portfolio_t **order; /* creation order */
    size_t n, cap;
};

bd_ptable_t *bd_ptable_new(void)
{
    bd_ptable_t *t = bd_xcalloc(1, sizeof(*t));
    t->mask = 255;
    t->slots = bd_xcalloc(t->mask + 1, sizeof(*t->slots));
    return t;
}

static void portfolio_free(bd_portfolio_t *p)
{
    free(p->ch);
    free(p->agg);
    free(p->slot_events);
    free(p->hist);
    free(p->late_q);
    bd_dedup_free(p->dedup);
    free(p);
}

void bd_ptable_free(bd_ptable_t *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) portfolio_free(t->order[i]);
    free(t->order);
    free(t->slots);
    free(t);
}

/* The fresh state of a portfolio whose name is set and whose other fields
 * are zero: bound to its config, no channel, nothing seen. */
static void portfolio_init(bd_portfolio_t *p, const bd_portfolio_cfg_t *pc, const bd_policy_t *pol,
                           int nslots)
{
    p->pc = pc;
    p->pol = pol;
    p->nslots = nslots;
    p->slot_events = bd_xcalloc((size_t)nslots, sizeof(*p->slot_events));
    p->hist = bd_xcalloc((size_t)(pol->kill.window > 0 ? pol->kill.window : 1), sizeof(*p->hist));
    p->open = INT64_MIN;
    p->newest_ts = INT64_MIN;
    p->watermark = INT64_MIN;
    p->alloc_cycle = INT64_MIN;
    p->offset = -1;
    p->partition = -1;
    p->ckpt_offset = -1;
    p->first_unsaved = -1;
}

void bd_portfolio_reset(bd_portfolio_t *p)
{
    char name[sizeof(p->name)];
    memcpy(name, p->name, sizeof(name));
    const bd_portfolio_cfg_t *pc = p->pc;
    const bd_policy_t *pol = p->pol;
    int nslots = p->nslots;
    int64_t cycle_len = p->cycle_len;
    uint64_t epoch = p->epoch;
    /* an empty store with the same limits: the checkpoint brings the ids
     * back when p is restored */
    bd_dedup_t *dedup = p->dedup ? bd_dedup_new_like(p->dedup) : NULL;
    bd_dedup_free(p->dedup);
    free(p->ch);
    free(p->agg);
    free(p->slot_events);
    free(p->hist);
    free(p->late_q);
    memset(p, 0, sizeof(*p));
    memcpy(p->name, name, sizeof(name));
    portfolio_init(p, pc, pol, nslots);
    p->cycle_len = cycle_len;
    p->epoch = epoch;
    p->dedup = dedup;
}

static size_t name_hash(const char *s, size_t len)
{
    return (size_t)bd_hash64(s, len, 0x62640001);
}

bd_portfolio_t *bd_ptable_find(bd_ptable_t *t, const char *name, size_t len)
{
    for (size_t i = name_hash(name, len) & t->mask;; i = (i + 1) & t->mask) {
        bd_portfolio_t *p = t->slots[i];
        if (!p) return NULL;
        if (strncmp(p->name, name, len) == 0 && p->name[len] == '\0') return p;
    }
}

/* Doubles the slot array; keeps load factor under 1/2 so probes stay short. */
static void ptable_grow(bd_ptable_t *t)
{
    size_t nmask = t->mask * 2 + 1;
    bd_portfolio_t **ns = bd_xcalloc(nmask + 1, sizeof(*ns));
    for (size_t k = 0; k < t->n; k++) {
        bd_portfolio_t *p = t->order[k];
        size_t i = name_hash(p->name, strlen(p->name)) & nmask;
        while (ns[i]) i = (i + 1) & nmask;
        ns[i] = p;
    }
    free(t->slots);
    t->slots = ns;
    t->mask = nmask;
}

bd_portfolio_t *bd_ptable_add(bd_ptable_t *t, const char *name, const bd_portfolio_cfg_t *pc,
                              const bd_policy_t *pol, int nslots)
{
    if ((t->n + 1) * 2 > t->mask + 1) ptable_grow(t);
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->order = bd_xrealloc(t->order, t->cap * sizeof(*t->order));
    }
    bd_portfolio_t *p = bd_xcalloc(1, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    portfolio_init(p, pc, pol, nslots);
    size_t i = name_hash(name, strlen(name)) & t->mask;
    while (t->slots[i]) i = (i + 1) & t->mask;
    t->slots[i] = p;
    t->order[t->n++] = p;
    return p;
}

size_t bd_ptable_count(const bd_ptable_t *t) { return t->n; }

bd_portfolio_t *bd_ptable_at(bd_ptable_t *t, size_t i) { return i < t->n ? t->order[i] : NULL; }

/* Prior of a channel: weak, centred on the config's saturation and on a ROAS
 * a little above the risk floor, so that data dominates within a few cycles;
 * or (v2) centred on the channel's configured `prior` (its roas and
 * saturation), worth `strength` cycles of data, with its lift tests as
 * calibration observations (models/poisson_sat.c). */
static void channel_prior(const bd_portfolio_t *p, const bd_channel_cfg_t *cc, bd_prior_t *pr)
{
    const bd_policy_t *pol = p->pol;
    pr->objective = pol->objective;
    pr->saturation = cc->prior.saturation > 0 ? cc->prior.saturation : cc->saturation;
    pr->budget = pol->budget;
    double floor = pol->risk_roas_floor > 0 ? pol->risk_roas_floor : 1.0;
    pr->value_prior = 50.0;
    /* objective units per spend, either objective */
    pr->roas_prior = cc->prior.roas > 0 ? cc->prior.roas : 2.0 * floor;
    pr->strength = cc->prior.roas > 0 ? cc->prior.strength : 0;
    pr->lift = cc->lift;
    pr->n_lift = cc->n_lift;
}

/* 1 + the index of the channel an arm's config splits (arm_of, v2),
 * adding it when absent; 0 for a channel. */
static uint32_t arm_owner(bd_portfolio_t *p, const bd_channel_cfg_t *cfg)
{
    if (!cfg || !cfg->arm_of || cfg->arm_of > BD_NAME_MAX) return 0;
    char owner[BD_NAME_MAX + 1];
    memcpy(owner, cfg->name, cfg->arm_of);
    owner[cfg->arm_of] = '\0';
    int q = bd_portfolio_channel(p, owner);
    return q < 0 ? 0 : (uint32_t)q + 1;
}

int bd_portfolio_channel(bd_portfolio_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->ch[i].name, name) == 0) return (int)i;
    if (!bd_name_valid(name, strlen(name))) return -1;
    const bd_channel_cfg_t *cfg = bd_config_channel(p->pc, p->pol, name);
    uint32_t owner = arm_owner(p, cfg);
    if (owner)
        for (size_t i = 0; i < p->n; i++) /* the channel added its arms */
            if (strcmp(p->ch[i].name, name) == 0) return (int)i;
    if (p->n == p->cap) {
        /* Channels are added rarely and their states are large: grow by an
         * eighth (at least one), so a portfolio wastes little room. */
        size_t ncap = p->cap + (p->cap / 8 ? p->cap / 8 : 1);
        p->ch = bd_xrealloc(p->ch, ncap * sizeof(*p->ch));
        /* The agg ring is indexed slot*cap + channel: re-lay it out. */
        bd_agg_t *na = bd_xcalloc((size_t)p->nslots * ncap, sizeof(*na));
        for (int s = 0; s < p->nslots && p->agg; s++)
            memcpy(na + (size_t)s * ncap, p->agg + (size_t)s * p->cap, p->n * sizeof(*na));
        free(p->agg);
        p->agg = na;
        p->cap = ncap;
    }
    bd_channel_t *c = &p->ch[p->n];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->cfg = cfg;
    c->owner = owner;
    channel_prior(p, c->cfg, &c->prior);
    const bd_model_ops_t *ops = bd_model_get(p->pol->model);
    if (ops) ops->init(&c->model, &c->prior);
    bd_season_init(&c->season);
    bd_lag_init(&c->lag);
    bd_delivery_init(&c->dlv);
    bd_fault_init(&c->fault);
    c->pin = NAN;
    int idx = (int)p->n++;
    for (size_t j = 0; j < cfg->n_arms; j++) bd_portfolio_channel(p, cfg->arms[j].name);
    return idx;
}

/* See portfolio.h: publish and the daemon's republish name fields alike. */
void bd_channel_field(const bd_channel_t *c, char out[BD_NAME_MAX + 1])
{
    memcpy(out, c->name, BD_NAME_MAX + 1);
    if (c->owner && c->cfg && c->cfg->arm_of) out[c->cfg->arm_of] = '/';
}

double bd_channel_pin(const bd_channel_t *c)
{
    if (isfinite(c->pin)) return c->pin;
    return c->cfg && c->cfg->has_pin ? c->cfg->pin : NAN;
}

size_t bd_portfolio_slot_index(const bd_portfolio_t *p, int64_t c)
{
    int64_t s = c % p->nslots;
    return (size_t)(s < 0 ? s + p->nslots : s);
}

bd_agg_t *bd_portfolio_slot(bd_portfolio_t *p, int64_t c)
{
    return p->agg + bd_portfolio_slot_index(p, c) * p->cap;
}

void bd_portfolio_rebind(bd_portfolio_t *p, const bd_portfolio_cfg_t *pc, const bd_policy_t *pol)
{
    int old_w = p->pol->kill.window > 0 ? p->pol->kill.window : 1;
    int new_w = pol->kill.window > 0 ? pol->kill.window : 1;
    p->pc = pc;
    p->pol = pol;
    if (old_w != new_w) {
        free(p->hist);
        p->hist = bd_xcalloc((size_t)new_w, sizeof(*p->hist));
        p->hist_n = 0;
    }
    for (size_t i = 0; i < p->n; i++) {
        p->ch[i].cfg = bd_config_channel(pc, pol, p->ch[i].name);
        channel_prior(p, p->ch[i].cfg, &p->ch[i].prior);
    }
    /* arms follow the new config: an arm whose channel no longer lists it
     * becomes a channel of its own; one newly listed is added when its
     * channel is next seen by name (events) */
    for (size_t i = 0; i < p->n; i++) {
        p->ch[i].owner = 0;
        const bd_channel_cfg_t *c = p->ch[i].cfg;
        if (!c->arm_of) continue;
        for (size_t j = 0; j < p->n; j++)
            if (j != i && strlen(p->ch[j].name) == c->arm_of &&
                !strncmp(p->ch[j].name, c->name, c->arm_of))
                p->ch[i].owner = (uint32_t)j + 1;
    }
}

void bd_portfolio_late(bd_portfolio_t *p, int ch, int64_t cycle, const bd_agg_t *d)
{
    if (p->n_late == p->late_cap) {
        p->late_cap = p->late_cap ? p->late_cap * 2 : 16;
        p->late_q = bd_xrealloc(p->late_q, p->late_cap * sizeof(*p->late_q));
    }
    p->late_q[p->n_late++] = (bd_late_t){(uint32_t)ch, cycle, p->open - cycle, *d};
}
