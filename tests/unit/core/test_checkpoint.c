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
#include "checkpoint_fixture.h"
#include "fixtures.h"

TestSuite(checkpoint, .init = setup, .fini = teardown);

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
