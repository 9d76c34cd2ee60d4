/* test_checkpoint.c: the portfolio checkpoint (checkpoint.h) directly. An
 * encode -> decode round trip restores every field it carries; a blob that
 * is cut short at any byte, has a wrong magic, byte-order word or version,
 * a length that overflows, more channels than it holds, a slot or window
 * count out of range, or another portfolio's name is refused with
 * BD_ERR_INVALID and leaves the portfolio exactly as it was. Restoring
 * under a changed config follows the documented rules (another model kind
 * restarts from the prior, a changed window or slot count restarts those).
 *
 * The corrupt blobs are made by editing a real one: its fields are found
 * by the distinctive values the fixture puts in them, so the test does not
 * copy checkpoint.c's layout, only the fact that integers are 8 bytes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/portfolio.h"
#include "fixtures.h"
#include "models/model_internal.h"

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
static void setup(void)
{
    char err[2048];
    g_cfg = bd_test_config(CFG, err, sizeof err);
    cr_assert_not_null(g_cfg, "%s", err);
    g_t = bd_ptable_new();
}

/* Frees what setup made (the table frees its portfolios). */
static void teardown(void)
{
    bd_ptable_free(g_t);
    bd_config_free(g_cfg);
}

TestSuite(checkpoint, .init = setup, .fini = teardown);

/* A fresh acme in table t under cfg, with nslots ring slots: what the engine
 * hands to bd_checkpoint_decode. */
static bd_portfolio_t *fresh(bd_ptable_t *t, const bd_config_t *cfg, int nslots)
{
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(cfg, "acme");
    cr_assert_not_null(pc);
    return bd_ptable_add(t, "acme", pc, &pc->p, nslots);
}

/* Every field the checkpoint carries set to a value of its own (seed moves
 * them all), with a third, unlisted channel and models that saw data. */
static bd_portfolio_t *rich(bd_ptable_t *t, const bd_config_t *cfg, int nslots, int seed)
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
static unsigned char *encode(const bd_portfolio_t *p, size_t *len)
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
static void snap_take(const bd_portfolio_t *p, snap_t *s)
{
    memcpy(&s->shallow, p, sizeof *p);
    s->blob = encode(p, &s->len);
    cr_assert_leq(p->n, 8);
    if (p->n) memcpy(s->ch, p->ch, p->n * sizeof *p->ch); /* p->ch is NULL without channels */
}

/* Asserts p is exactly as snapshot s (what), then frees s. */
static void snap_same(const bd_portfolio_t *p, snap_t *s, const char *what)
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
static void refused(bd_portfolio_t *target, const void *blob, size_t len, const char *what)
{
    snap_t s;
    snap_take(target, &s);
    char err[256] = "";
    cr_assert_eq(bd_checkpoint_decode(target, blob, len, err, sizeof err), BD_ERR_INVALID, "%s: accepted", what);
    cr_assert(strstr(err, "'acme'"), "%s: message %s", what, err);
    snap_same(target, &s, what);
}

/* The offset of the only occurrence of the 8 bytes of v in blob. */
static size_t find_u64(const unsigned char *blob, size_t len, uint64_t v)
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
static size_t find_text(const unsigned char *blob, size_t len, const char *text)
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
static uint64_t get_u64(const unsigned char *blob, size_t at)
{
    uint64_t v;
    memcpy(&v, blob + at, 8);
    return v;
}

/* A copy of blob with the 8 bytes at `at` replaced by v. */
static unsigned char *with_u64(const unsigned char *blob, size_t len, size_t at, uint64_t v)
{
    unsigned char *c = malloc(len);
    memcpy(c, blob, len);
    memcpy(c + at, &v, 8);
    return c;
}

/* Every value the round trip must carry, compared field by field. */
static void assert_restored(const bd_portfolio_t *q, const bd_portfolio_t *p)
{
    cr_assert_str_eq(q->name, p->name);
    cr_assert_eq(q->open, p->open);
    cr_assert_eq(q->newest_ts, p->newest_ts);
    cr_assert_eq(q->watermark, p->watermark);
    cr_assert_eq(q->last_event_ts, p->last_event_ts);
    cr_assert_eq(q->late, p->late);
    cr_assert_eq(q->rejected, p->rejected);
    cr_assert_eq(q->alloc_cycle, p->alloc_cycle);
    cr_assert_eq(q->version, p->version);
    cr_assert_eq(q->status, p->status);
    cr_assert_eq(q->killed, p->killed);
    cr_assert_str_eq(q->kill_reason, p->kill_reason);
    cr_assert_eq(q->has_proposal, p->has_proposal);
    cr_assert_eq(q->proposal_cycle, p->proposal_cycle);
    cr_assert_eq(q->hist_n, p->hist_n);
    for (int k = 0; k < p->pol->kill.window; k++) {
        cr_assert_eq(q->hist[k].spend, p->hist[k].spend, "hist %d", k);
        cr_assert_eq(q->hist[k].value, p->hist[k].value, "hist %d", k);
    }
    cr_assert_eq(q->offset, p->offset);
    cr_assert_eq(q->partition, p->partition);
    cr_assert_eq(q->nslots, p->nslots);
    for (int s = 0; s < p->nslots; s++) cr_assert_eq(q->slot_events[s], p->slot_events[s], "slot %d", s);
    cr_assert_eq(q->n, p->n);
    for (size_t i = 0; i < p->n; i++) {
        const bd_channel_t *a = &q->ch[i], *b = &p->ch[i];
        cr_assert_str_eq(a->name, b->name, "channel %zu keeps its index", i);
        cr_assert_eq(a->cfg, b->cfg, "%s: bound to the same config row", a->name);
        cr_assert(memcmp(&a->prior, &b->prior, sizeof a->prior) == 0, "%s: prior", a->name);
        cr_assert(memcmp(&a->model, &b->model, sizeof a->model) == 0, "%s: model state", a->name);
        cr_assert_eq(a->x, b->x, "%s", a->name);
        cr_assert_eq(a->safe, b->safe, "%s", a->name);
        cr_assert_eq(a->proposed, b->proposed, "%s", a->name);
        cr_assert_eq(a->promoted, b->promoted, "%s", a->name);
        for (int s = 0; s < p->nslots; s++) {
            const bd_agg_t *ga = &bd_portfolio_slot((bd_portfolio_t *)q, s)[i];
            const bd_agg_t *gb = &bd_portfolio_slot((bd_portfolio_t *)p, s)[i];
            cr_assert(ga->spend == gb->spend && ga->impressions == gb->impressions && ga->clicks == gb->clicks &&
                          ga->conversions == gb->conversions && ga->revenue == gb->revenue &&
                          ga->events == gb->events,
                      "%s slot %d: aggregates", a->name, s);
        }
    }
}

/* ---- round trip ---------------------------------------------------------- */

/* Encode -> decode into a fresh portfolio restores every field, and the
 * restored portfolio encodes to the very same bytes. What the checkpoint
 * does not carry (live bookkeeping of the Redis side) keeps its fresh value. */
Test(checkpoint, round_trip_restores_every_field)
{
    bd_portfolio_t *p = rich(g_t, g_cfg, NSLOTS, 0);
    size_t len;
    unsigned char *blob = encode(p, &len);
    bd_ptable_t *t2 = bd_ptable_new();
    bd_portfolio_t *q = fresh(t2, g_cfg, NSLOTS);
    char err[256] = "";
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    assert_restored(q, p);
    cr_assert_eq(q->pc, p->pc);
    cr_assert_eq(q->pol, p->pol);
    cr_assert_eq(q->ckpt_offset, -1);
    cr_assert_eq(q->first_unsaved, -1);
    cr_assert_not(q->pending);
    size_t len2;
    unsigned char *again = encode(q, &len2);
    cr_assert(len2 == len && memcmp(again, blob, len) == 0, "the restored portfolio encodes differently");
    free(again);
    free(blob);
    bd_ptable_free(t2);
}

/* The smallest state: no channel, nothing seen yet (INT64_MIN markers). */
Test(checkpoint, round_trip_of_a_fresh_portfolio)
{
    bd_portfolio_t *p = fresh(g_t, g_cfg, NSLOTS);
    size_t len;
    unsigned char *blob = encode(p, &len);
    bd_ptable_t *t2 = bd_ptable_new();
    bd_portfolio_t *q = fresh(t2, g_cfg, NSLOTS);
    q->open = 5; /* overwritten by the blob's INT64_MIN */
    char err[256] = "";
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    assert_restored(q, p);
    cr_assert_eq(q->open, INT64_MIN);
    free(blob);
    bd_ptable_free(t2);
}

/* ---- documented changes of config ------------------------------------------ */

/* A model of another kind than configured restarts from its prior; the
 * allocation and the rest are restored. */
Test(checkpoint, other_model_kind_restarts_from_the_prior)
{
    bd_portfolio_t *p = rich(g_t, g_cfg, NSLOTS, 0);
    size_t len;
    unsigned char *blob = encode(p, &len);
    char err[2048];
    char *y = malloc(strlen(CFG) + 64);
    sprintf(y, "%s    model: loglog\n", CFG);
    bd_config_t *cfg2 = bd_test_config(y, err, sizeof err);
    free(y);
    cr_assert_not_null(cfg2, "%s", err);
    bd_ptable_t *t2 = bd_ptable_new();
    bd_portfolio_t *q = fresh(t2, cfg2, NSLOTS);
    cr_assert_eq(q->pol->model, BD_MODEL_LOGLOG);
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    const bd_model_ops_t *ll = bd_model_get(BD_MODEL_LOGLOG);
    for (size_t i = 0; i < q->n; i++) {
        bd_model_state_t prior;
        memset(&prior, 0, sizeof prior);
        ll->init(&prior, &q->ch[i].prior);
        cr_assert(memcmp(&prior, &q->ch[i].model, sizeof prior) == 0, "%s: not the loglog prior", q->ch[i].name);
        cr_assert_eq(q->ch[i].x, p->ch[i].x);
        cr_assert_eq(q->ch[i].promoted, p->ch[i].promoted);
    }
    cr_assert_eq(q->version, p->version);
    free(blob);
    bd_ptable_free(t2);
    bd_config_free(cfg2);
}

/* A changed kill window restarts the window; a changed slot count drops
 * the open aggregates. Everything else is restored. */
Test(checkpoint, changed_window_and_slots_restart_them)
{
    bd_portfolio_t *p = rich(g_t, g_cfg, NSLOTS, 0);
    size_t len;
    unsigned char *blob = encode(p, &len);
    char err[2048];
    const char *y = "v: 1\ncycle: 1h\ndefaults:\n  budget: 1000\n  kill: {window: 5}\n"
                    "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
                    "      search: {min: 100, initial: 1500, saturation: 2000}\n      social: {min: 100}\n";
    bd_config_t *cfg2 = bd_test_config(y, err, sizeof err);
    cr_assert_not_null(cfg2, "%s", err);
    bd_ptable_t *t2 = bd_ptable_new();
    bd_portfolio_t *q = fresh(t2, cfg2, NSLOTS + 1);
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(q->hist_n, 0, "the window restarts");
    cr_assert_eq(q->nslots, NSLOTS + 1);
    for (int s = 0; s < q->nslots; s++) {
        cr_assert_eq(q->slot_events[s], 0);
        for (size_t i = 0; i < q->n; i++) cr_assert_eq(bd_portfolio_slot(q, s)[i].spend, 0);
    }
    cr_assert_eq(q->n, p->n);
    for (size_t i = 0; i < q->n; i++) {
        cr_assert_eq(q->ch[i].x, p->ch[i].x);
        cr_assert(memcmp(&q->ch[i].model, &p->ch[i].model, sizeof p->ch[i].model) == 0);
    }
    cr_assert_eq(q->alloc_cycle, p->alloc_cycle);
    cr_assert_str_eq(q->kill_reason, p->kill_reason);
    free(blob);
    bd_ptable_free(t2);
    bd_config_free(cfg2);
}

/* ---- refused blobs ----------------------------------------------------------- */

/* The target of the refusals: a portfolio with a state of its own (a fresh
 * one would hide a half-done restore behind its zeros). */
static bd_portfolio_t *target(void) { return rich(g_t, g_cfg, NSLOTS, 1000); }

/* A blob of acme in its own table (so target() can be acme too). */
static unsigned char *acme_blob(size_t *len)
{
    bd_ptable_t *t = bd_ptable_new();
    unsigned char *blob = encode(rich(t, g_cfg, NSLOTS, 0), len);
    bd_ptable_free(t);
    return blob;
}

Test(checkpoint, truncated_at_every_byte_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    char what[64];
    for (size_t cut = 0; cut < len; cut++) {
        /* an exact-size copy, so that ASan sees any read past the cut */
        unsigned char *c = malloc(cut ? cut : 1);
        memcpy(c, blob, cut);
        snprintf(what, sizeof what, "cut at %zu of %zu", cut, len);
        refused(q, c, cut, what);
        free(c);
    }
    refused(q, NULL, 0, "NULL, 0");
    free(blob);
}

Test(checkpoint, trailing_bytes_are_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    unsigned char *c = malloc(len + 1);
    memcpy(c, blob, len);
    c[len] = 0;
    refused(target(), c, len + 1, "one byte more");
    free(c);
    free(blob);
}

/* The first 8 bytes are the magic and the byte-order word: any flipped
 * byte there is not a checkpoint at all. */
Test(checkpoint, bad_magic_or_byte_order_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    char what[64], err[256];
    for (size_t i = 0; i < 8; i++) {
        unsigned char *c = malloc(len);
        memcpy(c, blob, len);
        c[i] ^= 0x20;
        snprintf(what, sizeof what, "byte %zu flipped", i);
        refused(q, c, len, what);
        cr_assert_eq(bd_checkpoint_decode(q, c, len, err, sizeof err), BD_ERR_INVALID);
        cr_assert(strstr(err, "not a budgetd checkpoint"), "%s", err);
        free(c);
    }
    free(blob);
}

/* The version follows the magic (8 bytes in); another version is refused
 * and named. */
Test(checkpoint, bad_version_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    uint64_t now = get_u64(blob, 8);
    const uint64_t bad[] = {0, 2, now + 1, UINT64_MAX}; /* 3 is read (migrated): not here */
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char *c = with_u64(blob, len, 8, bad[i]);
        refused(q, c, len, "version");
        cr_assert_eq(bd_checkpoint_decode(q, c, len, err, sizeof err), BD_ERR_INVALID);
        cr_assert(strstr(err, "version"), "%s", err);
        free(c);
    }
    free(blob);
}

/* Another portfolio's checkpoint (a mixed-up key, a renamed portfolio) is
 * refused and both names are in the message. */
Test(checkpoint, another_portfolios_blob_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_ptable_t *t2 = bd_ptable_new();
    const bd_portfolio_cfg_t *pc = bd_config_portfolio(g_cfg, "acme");
    bd_portfolio_t *other = bd_ptable_add(t2, "acme-2", pc, &pc->p, NSLOTS);
    snap_t s;
    snap_take(other, &s);
    char err[256];
    cr_assert_eq(bd_checkpoint_decode(other, blob, len, err, sizeof err), BD_ERR_INVALID);
    cr_assert(strstr(err, "'acme-2'") && strstr(err, "'acme'"), "%s", err);
    snap_same(other, &s, "another portfolio's blob");
    /* the same name with another length field: "acm" + garbage */
    size_t at = 16; /* the name's length, after magic, byte order, version */
    cr_assert_eq(get_u64(blob, at), 4);
    unsigned char *c = with_u64(blob, len, at, 3);
    refused(target(), c, len, "name acm");
    free(c);
    free(blob);
    bd_ptable_free(t2);
}

/* A length or count so large that the bytes it announces cannot be there
 * (or overflow a size computation) is refused before anything is read past
 * the blob: the name's and the kill reason's lengths, the kill window, the
 * slot count, the channel count and a channel name's length. */
Test(checkpoint, lengths_that_overflow_are_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    const uint64_t huge[] = {UINT64_MAX, UINT64_MAX / 2 + 1, (uint64_t)1 << 60, (uint64_t)len + 1, 100001};
    /* where each length or count stands */
    size_t name_len = 16;
    size_t nslots = name_len + 8 + 4 + 8 + 8; /* after the name "acme", the cycle length (v6) and the model kind */
    size_t reason_len = find_text(blob, len, V_KILL_REASON) - 8;
    size_t win = find_u64(blob, len, (uint64_t)V_PROPOSAL_CYCLE) + 8;
    size_t n_ch = find_u64(blob, len, V_SLOT_EVENTS_LAST) + 8;
    size_t ch0_name = n_ch + 8;
    cr_assert_eq(get_u64(blob, nslots), NSLOTS, "the slot count follows the model kind");
    cr_assert_eq(get_u64(blob, reason_len), strlen(V_KILL_REASON));
    cr_assert_eq(get_u64(blob, win), 3, "the kill window follows the proposal cycle");
    cr_assert_eq(get_u64(blob, n_ch), 3, "the channel count follows the slot events");
    cr_assert_eq(get_u64(blob, ch0_name), strlen("search"));
    const struct {
        size_t at;
        const char *what;
    } fields[] = {{name_len, "name length"}, {reason_len, "kill reason length"}, {win, "kill window"},
                  {nslots, "slot count"},    {n_ch, "channel count"},          {ch0_name, "channel name length"}};
    char what[96];
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++)
        for (size_t h = 0; h < sizeof huge / sizeof *huge; h++) {
            unsigned char *c = with_u64(blob, len, fields[f].at, huge[h]);
            snprintf(what, sizeof what, "%s = %llu", fields[f].what, (unsigned long long)huge[h]);
            refused(q, c, len, what);
            free(c);
        }
    /* lengths one past what fits their buffer: a name of 65, a reason of 160 */
    unsigned char *c = with_u64(blob, len, name_len, BD_NAME_MAX + 1);
    refused(q, c, len, "name of BD_NAME_MAX + 1");
    free(c);
    c = with_u64(blob, len, reason_len, sizeof q->kill_reason);
    refused(q, c, len, "kill reason filling its buffer");
    free(c);
    /* no slot at all */
    c = with_u64(blob, len, nslots, 0);
    refused(q, c, len, "slot count 0");
    free(c);
    free(blob);
}

/* A channel count larger than the channels the blob holds: the blob ends
 * before the last one. Also one channel fewer: bytes are left over. */
Test(checkpoint, channel_count_larger_than_the_blob_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t n_ch = find_u64(blob, len, V_SLOT_EVENTS_LAST) + 8;
    const uint64_t counts[] = {4, 5, 1000, 100000, 2};
    char what[64];
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        unsigned char *c = with_u64(blob, len, n_ch, counts[i]);
        snprintf(what, sizeof what, "%llu channels announced, 3 held", (unsigned long long)counts[i]);
        refused(q, c, len, what);
        free(c);
    }
    free(blob);
}

/* Values a real portfolio never holds: an allocation, safe allocation or
 * proposal that is NaN, infinite or negative, a kill-window entry that is
 * NaN, a status past the last one, a channel name the name rule refuses.
 * (bd_checkpoint_decode checked lengths and sizes only: it restored these
 * numbers as they were, read status 99 as held and dropped the badly named
 * channel.) */
Test(checkpoint, impossible_values_are_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    uint64_t nan_bits, inf_bits, neg_bits;
    double nan = NAN, inf = INFINITY, neg = -1;
    memcpy(&nan_bits, &nan, 8);
    memcpy(&inf_bits, &inf, 8);
    memcpy(&neg_bits, &neg, 8);
    /* search's x, safe, proposed follow its name */
    size_t x0 = find_text(blob, len, "search") + strlen("search");
    for (int field = 0; field < 3; field++) {
        const uint64_t bad[] = {nan_bits, inf_bits, neg_bits};
        for (int b = 0; b < 3; b++) {
            unsigned char *c = with_u64(blob, len, x0 + 8 * (size_t)field, bad[b]);
            refused(q, c, len, field == 0 ? "x" : field == 1 ? "safe" : "proposed");
            free(c);
        }
    }
    /* the first kill-window entry follows the window size and hist_n */
    size_t hist0 = find_u64(blob, len, (uint64_t)V_PROPOSAL_CYCLE) + 8 + 16;
    unsigned char *c = with_u64(blob, len, hist0, nan_bits);
    refused(q, c, len, "kill window spend NaN");
    free(c);
    /* the status stands 7 integers after the newest ts */
    size_t status = find_u64(blob, len, (uint64_t)(1764000000)) + 8 * 7;
    c = with_u64(blob, len, status, 99);
    refused(q, c, len, "status 99");
    free(c);
    c = malloc(len);
    memcpy(c, blob, len);
    c[find_text(blob, len, "social") + 2] = ' ';
    refused(q, c, len, "channel name 'so ial'");
    free(c);
    free(blob);
}

/* ---- regressions: one per gap the hardening closed ------------------------- */

/* A copy of blob with the 8 bytes of a double at `at` replaced by v. */
static unsigned char *with_f64(const unsigned char *blob, size_t len, size_t at, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return with_u64(blob, len, at, bits);
}

/* Bug: the decoder allocated the open aggregates (channels x slots) before
 * it checked either count against the bytes left, so a blob of 1 MiB
 * announcing 20000 slots and 4096 channels made it allocate 3.9 GB (and
 * 100000 x 100000, its old limits, 480 GB: an abort). Now each count is
 * checked against the bytes left, and the channels against max_channels'
 * upper bound (4096), before anything is allocated for them. */
Test(checkpoint, counts_are_checked_before_allocating)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t nslots = 16 + 8 + 4 + 8 + 8, ev0 = find_u64(blob, len, V_SLOT_EVENTS0);
    const uint64_t slots = 20000, chans[] = {4096, 4097, 100000};
    size_t big = ev0 + slots * 8 + 8 + ((size_t)1 << 20);
    unsigned char *c = calloc(1, big);
    memcpy(c, blob, len);
    memcpy(c + nslots, &slots, 8);
    for (size_t i = 0; i < sizeof chans / sizeof *chans; i++) {
        memcpy(c + ev0 + slots * 8, &chans[i], 8);
        refused(q, c, big, "20000 slots and a channel count the blob cannot hold");
    }
    free(c);
    /* a kill window announcing more entries than bytes are left */
    size_t win = find_u64(blob, len, (uint64_t)V_PROPOSAL_CYCLE) + 8;
    c = with_u64(blob, len, win, 99999);
    refused(q, c, len, "kill window of 99999 entries in a blob of a few KB");
    free(c);
    free(blob);
}

/* Bug: a kill window above 100000 (kill.window allows up to 1000000) was
 * refused as corrupt, so such a portfolio lost its state at every restart. */
Test(checkpoint, a_kill_window_above_100000_is_restored)
{
    char err[2048];
    const char *y = "v: 1\ncycle: 1h\ndefaults:\n  budget: 1000\n  kill: {window: 200000}\n"
                    "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
                    "      search: {min: 100, initial: 1500, saturation: 2000}\n      social: {min: 100}\n";
    bd_config_t *cfg2 = bd_test_config(y, err, sizeof err);
    cr_assert_not_null(cfg2, "%s", err);
    bd_ptable_t *t1 = bd_ptable_new(), *t2 = bd_ptable_new();
    bd_portfolio_t *p = rich(t1, cfg2, NSLOTS, 0);
    p->hist[199999] = (bd_cycle_hist_t){12.5, 40.25};
    size_t len;
    unsigned char *blob = encode(p, &len);
    bd_portfolio_t *q = fresh(t2, cfg2, NSLOTS);
    cr_assert_eq(bd_checkpoint_decode(q, blob, len, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(q->hist_n, p->hist_n);
    cr_assert_eq(q->hist[199999].value, 40.25);
    free(blob);
    bd_ptable_free(t1);
    bd_ptable_free(t2);
    bd_config_free(cfg2);
}

/* Bug: the partition was read as 8 bytes and cast to 32 bits, so 2^32 + 3
 * restored as partition 3; an offset below -1 (none) was restored too. */
Test(checkpoint, partition_outside_int32_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t off = find_u64(blob, len, 123456), part = off + 8;
    cr_assert_eq(get_u64(blob, part), 3);
    const uint64_t bad[] = {((uint64_t)1 << 32) + 3, (uint64_t)INT32_MAX + 1, (uint64_t)-2};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char *c = with_u64(blob, len, part, bad[i]);
        refused(q, c, len, "partition");
        free(c);
    }
    unsigned char *c = with_u64(blob, len, off, (uint64_t)-7);
    refused(q, c, len, "offset -7");
    free(c);
    free(blob);
}

/* Bug: a model kind no engine knows (99) was read as "another kind than
 * configured" and the channel restarted from its prior; a kill time before
 * 1970 was kept. Both are corrupt blobs. */
Test(checkpoint, unknown_model_kind_or_negative_kill_time_is_refused)
{
    size_t len;
    unsigned char *blob = acme_blob(&len);
    bd_portfolio_t *q = target();
    size_t model = 16 + 8 + 4 + 8;
    cr_assert_eq(get_u64(blob, model), BD_MODEL_POISSON_SAT);
    unsigned char *c = with_u64(blob, len, model, 99);
    refused(q, c, len, "model kind 99");
    free(c);
    size_t by = find_text(blob, len, V_KILL_REASON) + strlen(V_KILL_REASON); /* kill_by: length, bytes */
    size_t kill_at = by + 8 + (size_t)get_u64(blob, by);
    cr_assert_leq(get_u64(blob, by), 63);
    c = with_u64(blob, len, kill_at, (uint64_t)-5);
    refused(q, c, len, "kill_at -5");
    free(c);
    free(blob);
}

/* Bug: the model state was restored as bytes, so a NaN, infinite or
 * negative posterior parameter (a Gamma shape or rate, a grid point) or a
 * grid size past the grid was restored and decided on (NaN draws). Now
 * the model says whether a state is possible (model.h valid). */
Test(checkpoint, impossible_posterior_is_refused)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = rich(t, g_cfg, NSLOTS, 0);
    size_t len;
    unsigned char *blob = encode(p, &len);
    const unsigned char *m = memmem(blob, len, &p->ch[1].model, sizeof p->ch[1].model);
    cr_assert_not_null(m);
    size_t st = (size_t)(m - blob);
    bd_portfolio_t *q = target();
    const struct {
        size_t off;
        double v;
        const char *what;
    } bad[] = {{offsetof(bd_psat_state_t, alpha), NAN, "alpha NaN"},
               {offsetof(bd_psat_state_t, beta) + 8, -1, "beta negative"},
               {offsetof(bd_psat_state_t, k) + 16, INFINITY, "k infinite"},
               {offsetof(bd_psat_state_t, vshape), 0, "value shape 0"},
               {offsetof(bd_psat_state_t, w) + 8, NAN, "weight NaN"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char *c = with_f64(blob, len, st + bad[i].off, bad[i].v);
        refused(q, c, len, bad[i].what);
        free(c);
    }
    unsigned char *c = malloc(len);
    memcpy(c, blob, len);
    uint32_t n = BD_PSAT_KMAX + 1;
    memcpy(c + st + offsetof(bd_psat_state_t, n), &n, 4);
    refused(q, c, len, "grid of 8 points");
    free(c);
    free(blob);
    bd_ptable_free(t);
}

/* Bug: the seasonal profile, lag statistics, delivery and fault state were
 * restored as bytes: a NaN factor, a negative pending spend, an infinite
 * log cap variance or a fault kind past the last one was kept. */
Test(checkpoint, impossible_time_structure_delivery_or_fault_state_is_refused)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = rich(t, g_cfg, NSLOTS, 0);
    p->ch[1].fault.hold = 321.5; /* makes the fault state unique in the blob */
    p->ch[1].dlv.mu = 5.25;
    size_t len;
    unsigned char *blob = encode(p, &len);
    const bd_channel_t *ch = &p->ch[1];
    const unsigned char *m = memmem(blob, len, &ch->model, sizeof ch->model);
    cr_assert_not_null(m);
    size_t season = (size_t)(m - blob) + sizeof ch->model, lag = season + sizeof ch->season;
    size_t dlv = lag + sizeof ch->lag, fault = dlv + sizeof ch->dlv;
    cr_assert(memcmp(blob + dlv, &ch->dlv, sizeof ch->dlv) == 0);
    cr_assert(memcmp(blob + fault, &ch->fault, sizeof ch->fault) == 0);
    bd_portfolio_t *q = target();
    const struct {
        size_t at;
        float v;
        const char *what;
    } fl[] = {{season + offsetof(bd_season_t, o) + 4 * 5, NAN, "season o[5] NaN"},
              {season + offsetof(bd_season_t, disp), 0, "season dispersion 0"},
              {lag + offsetof(bd_lag_t, x) + 4 * 2, -3, "lag pending spend negative"},
              {lag + offsetof(bd_lag_t, n), INFINITY, "lag units infinite"}};
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) {
        unsigned char *c = malloc(len);
        memcpy(c, blob, len);
        memcpy(c + fl[i].at, &fl[i].v, 4);
        refused(q, c, len, fl[i].what);
        free(c);
    }
    const struct {
        size_t at;
        double v;
        const char *what;
    } db[] = {{dlv + offsetof(bd_delivery_t, mu), NAN, "delivery mu NaN"},
              {dlv + offsetof(bd_delivery_t, s2), INFINITY, "delivery s2 infinite"},
              {dlv + offsetof(bd_delivery_t, ratio), -0.5, "delivery ratio negative"},
              {fault + offsetof(bd_fault_t, hold), NAN, "fault hold NaN"},
              {fault + offsetof(bd_fault_t, seen), 1.5, "fault seen share 1.5"}};
    for (size_t i = 0; i < sizeof db / sizeof *db; i++) {
        unsigned char *c = with_f64(blob, len, db[i].at, db[i].v);
        refused(q, c, len, db[i].what);
        free(c);
    }
    unsigned char *c = malloc(len);
    memcpy(c, blob, len);
    uint32_t kind = BD_FAULT__COUNT;
    memcpy(c + fault + offsetof(bd_fault_t, kind), &kind, 4);
    refused(q, c, len, "fault kind past the last");
    free(c);
    free(blob);
    bd_ptable_free(t);
}

/* Bug: the open cycles' aggregates and the queued late reports were
 * restored as bytes: a NaN or negative spend in an open aggregate (which
 * the engine keeps >= 0), a NaN in a late report (which may be negative:
 * a restatement) or a late report of age 0 was kept. */
Test(checkpoint, impossible_open_aggregates_or_late_reports_are_refused)
{
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = rich(t, g_cfg, NSLOTS, 0);
    bd_agg_t d = {.spend = -12.375, .conversions = -1.5, .revenue = 77.125, .events = 1};
    p->open = 490000;
    bd_portfolio_late(p, 1, 489990, &d);
    bd_portfolio_slot(p, 1)[1].spend = 123.0625; /* an open aggregate, unique in the blob */
    size_t len;
    unsigned char *blob = encode(p, &len);
    bd_portfolio_t *q = target();
    char err[256];
    bd_ptable_t *t2 = bd_ptable_new();
    cr_assert_eq(bd_checkpoint_decode(fresh(t2, g_cfg, NSLOTS), blob, len, err, sizeof err), BD_OK,
                 "a negative late report is possible: %s", err);
    bd_ptable_free(t2);
    size_t late = find_u64(blob, len, 489990), lspend = late + 16;
    double spend;
    memcpy(&spend, blob + lspend, 8);
    cr_assert_eq(spend, -12.375);
    unsigned char *c = with_f64(blob, len, lspend, NAN);
    refused(q, c, len, "late report spend NaN");
    free(c);
    c = with_u64(blob, len, late + 8, 0);
    refused(q, c, len, "late report of age 0");
    free(c);
    double open_spend = 123.0625;
    uint64_t bits;
    memcpy(&bits, &open_spend, 8);
    size_t at = find_u64(blob, len, bits);
    const double bad[] = {NAN, -1, INFINITY};
    for (size_t i = 0; i < 3; i++) {
        c = with_f64(blob, len, at, bad[i]);
        refused(q, c, len, "open aggregate spend");
        free(c);
    }
    free(blob);
    bd_ptable_free(t);
}
