/* checkpoint_fixture.h: the fixture of test_checkpoint.c and
 * test_checkpoint_values.c (two programs, so that neither passes 800
 * lines): the acme config, a portfolio with every checkpointed field set
 * to a value of its own, its blob, and helpers that find a field in a blob
 * by its distinctive value and write another one there. Header-only: each
 * program includes it once. */
#ifndef BUDGETD_TEST_CHECKPOINT_FIXTURE_H
#define BUDGETD_TEST_CHECKPOINT_FIXTURE_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/portfolio.h"
#include "fixtures.h"

#define NSLOTS 3

/* acme: two listed channels, kill window 3 (the fixture's portfolio). */
static const char *CFG = "v: 1\ncycle: 1h\n"
                         "defaults:\n  budget: 1000\n  kill: {window: 3}\n"
                         "portfolios:\n"
                         "  acme:\n    budget: 3000\n    channels:\n"
                         "      search: {min: 100, initial: 1500, saturation: 2000}\n"
                         "      social: {min: 100}\n";

/* Distinctive values: each occurs once in the blob, which is how the tests
 * below find the fields they corrupt. */
#define V_PROPOSAL_CYCLE 0x0123456789abcdefLL
#define V_SLOT_EVENTS0 0x5105e0e0e0e0e001ULL
#define V_SLOT_EVENTS_LAST 0x5105e0e0e0e0e003ULL
#define V_KILL_REASON "operator: drill (fixture)"

static bd_config_t *g_cfg;
static bd_ptable_t *g_t;

/* The config of every test; a table for the portfolios it builds. */
static inline void setup(void)
{
    char err[2048];
    g_cfg = bd_test_config(CFG, err, sizeof err);
    cr_assert_not_null(g_cfg, "%s", err);
    g_t = bd_ptable_new();
}

/* Frees what setup made (the table frees its portfolios). */
static inline void teardown(void)
{
    bd_ptable_free(g_t);
    bd_config_free(g_cfg);
}



/* A fresh acme in table t under cfg, with nslots ring slots: what the engine
 * hands to bd_checkpoint_decode. */
static inline bd_portfolio_t *fresh(bd_ptable_t *t, const bd_config_t *cfg, int nslots)
{
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(cfg, "acme");
    cr_assert_not_null(pc);
    return bd_ptable_add(t, "acme", pc, &pc->p, nslots);
}

/* Every field the checkpoint carries set to a value of its own (seed moves
 * them all), with a third, unlisted channel and models that saw data. */
static inline bd_portfolio_t *rich(bd_ptable_t *t, const bd_config_t *cfg, int nslots, int seed)
{
    bd_portfolio_t *p = fresh(t, cfg, nslots);
    const char *names[] = {"search", "social", "video"};
    for (int i = 0; i < 3; i++) cr_assert_eq(bd_portfolio_channel(p, names[i]), i);
    p->open = 490000 + seed;
    p->newest_ts = 1764000000 + seed;
    p->watermark = 1763990000 + seed;
    p->last_event_ts = 1763999000 + seed;
    p->late = 7 + (uint64_t)seed;
    p->rejected = 11 + (uint64_t)seed;
    p->alloc_cycle = 489999 + seed;
    p->version = 42 + (uint64_t)seed;
    p->status = BD_STATUS_KILLED;
    p->killed = true;
    snprintf(p->kill_reason, sizeof p->kill_reason, "%s", V_KILL_REASON);
    p->has_proposal = true;
    p->proposal_cycle = V_PROPOSAL_CYCLE + seed;
    int w = p->pol->kill.window;
    for (int k = 0; k < w; k++) p->hist[k] = (bd_cycle_hist_t){1000.25 * (k + 1) + seed, 1500.5 * (k + 1)};
    p->hist_n = 5 + (uint64_t)seed;
    p->offset = 123456 + seed;
    p->partition = 3;
    for (int s = 0; s < nslots; s++)
        p->slot_events[s] = (s == 0 ? V_SLOT_EVENTS0 : s == nslots - 1 ? V_SLOT_EVENTS_LAST : 77) + (uint64_t)seed;
    const bd_model_ops_t *ops = bd_model_get(p->pol->model);
    for (size_t i = 0; i < p->n; i++) {
        bd_channel_t *c = &p->ch[i];
        c->x = 1000.5 + (double)i + seed;
        c->safe = 900.25 + (double)i;
        c->proposed = 1100.75 + (double)i;
        c->promoted = i == 2;
        bd_agg_t a = {.spend = 800 + 10.0 * (double)i, .conversions = 20 + (double)i, .revenue = 1600, .events = 3};
        ops->observe(&c->model, &c->prior, &a, NULL);
        for (int s = 0; s < nslots; s++) {
            bd_agg_t *g = &bd_portfolio_slot(p, s)[i];
            g->spend = 10.5 * (s + 1) + (double)i;
            g->impressions = 1000 + s;
            g->clicks = 50 + (double)i;
            g->conversions = 2.5 * s;
            g->revenue = 21.25 * (s + 1);
            g->events = (uint32_t)(s + 1);
        }
    }
    return p;
}

/* The blob of p (malloc'd, caller frees). */
static inline unsigned char *encode(const bd_portfolio_t *p, size_t *len)
{
    unsigned char *buf = NULL;
    size_t cap = 0;
    *len = bd_checkpoint_encode(p, &buf, &cap);
    cr_assert_gt(*len, 0);
    cr_assert_leq(*len, cap);
    return buf;
}

/* What p is: its struct (pointers included) and its blob, which covers
 * everything behind the pointers that the checkpoint carries. */
typedef struct {
    bd_portfolio_t shallow;
    unsigned char *blob;
    size_t len;
    bd_channel_t ch[8];
} snap_t;

/* Takes the snapshot of p into s (s->blob is malloc'd). */
static inline void snap_take(const bd_portfolio_t *p, snap_t *s)
{
    memcpy(&s->shallow, p, sizeof *p);
    s->blob = encode(p, &s->len);
    cr_assert_leq(p->n, 8);
    if (p->n) memcpy(s->ch, p->ch, p->n * sizeof *p->ch); /* p->ch is NULL without channels */
}

/* Asserts p is exactly as snapshot s (what), then frees s. */
static inline void snap_same(const bd_portfolio_t *p, snap_t *s, const char *what)
{
    cr_assert(memcmp(&s->shallow, p, sizeof *p) == 0, "%s: the portfolio struct changed", what);
    size_t len;
    unsigned char *now = encode(p, &len);
    cr_assert(len == s->len && memcmp(now, s->blob, len) == 0, "%s: the portfolio's state changed", what);
    cr_assert(p->n == 0 || memcmp(s->ch, p->ch, p->n * sizeof *p->ch) == 0, "%s: a channel changed", what);
    free(now);
    free(s->blob);
}

/* Decoding blob[0..len) into target must be refused as invalid, leave
 * target as it was, and say so naming the portfolio. */
static inline void refused(bd_portfolio_t *target, const void *blob, size_t len, const char *what)
{
    snap_t s;
    snap_take(target, &s);
    char err[256] = "";
    cr_assert_eq(bd_checkpoint_decode(target, blob, len, err, sizeof err), BD_ERR_INVALID, "%s: accepted", what);
    cr_assert(strstr(err, "'acme'"), "%s: message %s", what, err);
    snap_same(target, &s, what);
}

/* The offset of the only occurrence of the 8 bytes of v in blob. */
static inline size_t find_u64(const unsigned char *blob, size_t len, uint64_t v)
{
    size_t at = SIZE_MAX;
    for (size_t i = 0; i + 8 <= len; i++)
        if (memcmp(blob + i, &v, 8) == 0) {
            cr_assert_eq(at, SIZE_MAX, "value %#llx occurs twice in the blob", (unsigned long long)v);
            at = i;
        }
    cr_assert_neq(at, SIZE_MAX, "value %#llx not in the blob", (unsigned long long)v);
    return at;
}

/* The offset of the only occurrence of text in blob. */
static inline size_t find_text(const unsigned char *blob, size_t len, const char *text)
{
    size_t n = strlen(text), at = SIZE_MAX;
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(blob + i, text, n) == 0) {
            cr_assert_eq(at, SIZE_MAX, "'%s' occurs twice in the blob", text);
            at = i;
        }
    cr_assert_neq(at, SIZE_MAX, "'%s' not in the blob", text);
    return at;
}

/* The 8-byte integer at `at` of blob. */
static inline uint64_t get_u64(const unsigned char *blob, size_t at)
{
    uint64_t v;
    memcpy(&v, blob + at, 8);
    return v;
}

/* A copy of blob with the 8 bytes at `at` replaced by v. */
static inline unsigned char *with_u64(const unsigned char *blob, size_t len, size_t at, uint64_t v)
{
    unsigned char *c = malloc(len);
    memcpy(c, blob, len);
    memcpy(c + at, &v, 8);
    return c;
}


/* The target of the refusals: a portfolio with a state of its own (a fresh
 * one would hide a half-done restore behind its zeros). */
static inline bd_portfolio_t *target(void) { return rich(g_t, g_cfg, NSLOTS, 1000); }

/* A blob of acme in its own table (so target() can be acme too). */
static inline unsigned char *acme_blob(size_t *len)
{
    bd_ptable_t *t = bd_ptable_new();
    unsigned char *blob = encode(rich(t, g_cfg, NSLOTS, 0), len);
    bd_ptable_free(t);
    return blob;
}

static inline unsigned char *with_f64(const unsigned char *blob, size_t len, size_t at, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return with_u64(blob, len, at, bits);
}


#endif
