/* checkpoint.c: portfolio state <-> blob. Fixed little-endian layout behind
 * a magic and a version, every length checked on the way in: a blob comes
 * from Redis and is not trusted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "budgetd/event.h"
#include "checkpoint_int.h"

#define CK_MAGIC "BDCK"
#define CK_VERSION 7u /* 2: kill window holds spend and value only; 3: poisson_sat
                           * keeps short-memory grid statistics (lalpha, lbeta);
                           * 4: time structure (per channel seasonal profile and
                           * lag statistics, the queue of late reports), model
                           * state 608 bytes (poisson_sat's drift shadows);
                           * 5: per channel delivery and data-fault state (a v4
                           * blob starts them from their initial values);
                           * 6: the cycle length, the kill latch's actor and time
                           * (older blobs: actor from the reason, time unknown);
                           * 7: the dedup store (event ids, rev'd ones with their
                           * channel and numbers; older blobs: empty) */
#define CK_V3_MODEL_BYTES 520 /* a v3 blob's model state: read and dropped (prior) */
#define CK_DEDUP_ID_BYTES 24  /* one id in a v7 blob: key, ts, rev (a rev'd one: 44 more) */
#define CK_MAX_WINDOW 1000000 /* kill.window's upper bound (engine/config/policy.c) */
#define CK_MAX_CHANNELS 4096  /* max_channels' upper bound (policy.c): no portfolio holds more */
#define CK_MAX_SLOTS 100000   /* open-cycle slots (lateness / cycle + 2) */

typedef struct {
    unsigned char **buf;
    size_t *cap, len;
} wr_t;

static void wr_bytes(wr_t *w, const void *p, size_t n)
{
    if (w->len + n > *w->cap) {
        size_t ncap = *w->cap ? *w->cap : 4096;
        while (ncap < w->len + n) ncap *= 2;
        *w->buf = bd_xrealloc(*w->buf, ncap);
        *w->cap = ncap;
    }
    memcpy(*w->buf + w->len, p, n);
    w->len += n;
}

/* Integers and doubles are written in host order: budgetd runs on
 * little-endian hosts only (checked at decode through the magic word). */
static void wr_u32(wr_t *w, uint32_t v) { wr_bytes(w, &v, 4); }
static void wr_u64(wr_t *w, uint64_t v) { wr_bytes(w, &v, 8); }
static void wr_i64(wr_t *w, int64_t v) { wr_bytes(w, &v, 8); }
static void wr_f64(wr_t *w, double v) { wr_bytes(w, &v, 8); }
static void wr_str(wr_t *w, const char *s)
{
    uint64_t n = strlen(s);
    wr_u64(w, n);
    wr_bytes(w, s, n);
}

/* The dedup store (v7), ids in insertion order so that reading them back
 * rebuilds the same store: the count, then per id its key as held (h1's
 * low 32 bits, h2), ts and rev, and for an id held with a rev its channel
 * index and numbers. */
static void ck_write_dedup(wr_t *w, const bd_dedup_t *d)
{
    wr_u64(w, bd_dedup_size(d));
    size_t pos = 0;
    bd_dedup_key_t k;
    bd_dedup_entry_t e;
    while (bd_dedup_next(d, &pos, &k, &e)) {
        wr_u32(w, (uint32_t)k.h1);
        wr_u64(w, k.h2);
        wr_i64(w, e.ts);
        wr_u32(w, e.rev);
        if (e.rev == BD_DEDUP_NO_REV) continue;
        wr_u32(w, e.ch);
        for (int j = 0; j < 5; j++) wr_f64(w, e.num[j]);
    }
}

size_t bd_checkpoint_encode(const bd_portfolio_t *p, unsigned char **buf, size_t *cap)
{
    wr_t w = {buf, cap, 0};
    uint32_t endian = 0x01020304;
    wr_bytes(&w, CK_MAGIC, 4);
    wr_bytes(&w, &endian, 4);
    wr_u64(&w, CK_VERSION);
    wr_str(&w, p->name);
    wr_i64(&w, p->cycle_len);
    wr_u64(&w, (uint64_t)p->pol->model);
    wr_u64(&w, (uint64_t)p->nslots);
    wr_i64(&w, p->open);
    wr_i64(&w, p->newest_ts);
    wr_i64(&w, p->watermark);
    wr_i64(&w, p->last_event_ts);
    wr_u64(&w, p->late);
    wr_u64(&w, p->rejected);
    wr_i64(&w, p->alloc_cycle);
    wr_u64(&w, p->version);
    wr_u64(&w, (uint64_t)p->status);
    wr_u64(&w, p->killed);
    wr_str(&w, p->kill_reason);
    wr_str(&w, p->kill_by);
    wr_i64(&w, p->kill_at);
    wr_u64(&w, p->has_proposal);
    wr_i64(&w, p->proposal_cycle);
    uint64_t win = (uint64_t)(p->pol->kill.window > 0 ? p->pol->kill.window : 1);
    wr_u64(&w, win);
    wr_u64(&w, p->hist_n);
    for (uint64_t k = 0; k < win; k++) {
        wr_f64(&w, p->hist[k].spend);
        wr_f64(&w, p->hist[k].value);
    }
    wr_i64(&w, p->offset);
    wr_i64(&w, p->partition);
    for (int s = 0; s < p->nslots; s++) wr_u64(&w, p->slot_events[s]);
    wr_u64(&w, p->n);
    for (size_t i = 0; i < p->n; i++) {
        const bd_channel_t *c = &p->ch[i];
        wr_str(&w, c->name);
        wr_f64(&w, c->x);
        wr_f64(&w, c->safe);
        wr_f64(&w, c->proposed);
        wr_u64(&w, c->promoted);
        wr_bytes(&w, &c->model, sizeof(c->model));
        wr_bytes(&w, &c->season, sizeof(c->season));
        wr_bytes(&w, &c->lag, sizeof(c->lag));
        wr_bytes(&w, &c->dlv, sizeof(c->dlv));
        wr_bytes(&w, &c->fault, sizeof(c->fault));
        for (int s = 0; s < p->nslots; s++) wr_bytes(&w, &p->agg[(size_t)s * p->cap + i], sizeof(bd_agg_t));
    }
    wr_u64(&w, p->n_late);
    for (size_t k = 0; k < p->n_late; k++) {
        const bd_late_t *l = &p->late_q[k];
        wr_u64(&w, l->ch);
        wr_i64(&w, l->cycle);
        wr_i64(&w, l->age);
        wr_bytes(&w, &l->d, sizeof(l->d));
    }
    ck_write_dedup(&w, p->dedup);
    return w.len;
}

typedef struct {
    const unsigned char *p;
    size_t len, off;
    int bad;
} rd_t;

static void rd_bytes(rd_t *r, void *out, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->off, n);
    r->off += n;
}
static uint64_t rd_u64(rd_t *r) { uint64_t v; rd_bytes(r, &v, 8); return v; }
static int64_t rd_i64(rd_t *r) { int64_t v; rd_bytes(r, &v, 8); return v; }
static double rd_f64(rd_t *r) { double v; rd_bytes(r, &v, 8); return v; }
static void rd_str(rd_t *r, char *out, size_t outlen)
{
    uint64_t n = rd_u64(r);
    if (r->bad || n >= outlen || r->len - r->off < n) {
        r->bad = 1;
        out[0] = '\0';
        return;
    }
    memcpy(out, r->p + r->off, n);
    out[n] = '\0';
    r->off += n;
}

/* Magic, byte order, version and name: is this the checkpoint of `name`
 * at all? *ver_out: the blob's version (3 to CK_VERSION); *cycle_len: the
 * cycle length it was written with (0: a blob before version 6 does not
 * say). */
static bd_err_t ck_read_header(rd_t *r, const char *pname, uint64_t *ver_out, int64_t *cycle_len,
                               char *errbuf, size_t errlen)
{
    char magic[4];
    uint32_t endian;
    rd_bytes(r, magic, 4);
    rd_bytes(r, &endian, 4);
    if (r->bad || memcmp(magic, CK_MAGIC, 4) != 0 || endian != 0x01020304)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "checkpoint of '%s': not a budgetd checkpoint", pname);
    uint64_t ver = rd_u64(r);
    *ver_out = ver;
    if (ver < 3 || ver > CK_VERSION)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "checkpoint of '%s': version %llu unsupported",
                       pname, (unsigned long long)ver);
    char name[BD_NAME_MAX + 1];
    rd_str(r, name, sizeof(name));
    if (r->bad || strcmp(name, pname) != 0)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "checkpoint of '%s' names '%s'", pname, name);
    *cycle_len = ver >= 6 ? rd_i64(r) : 0;
    if (r->bad || *cycle_len < 0 || *cycle_len > BD_DURATION_MAX)
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "checkpoint of '%s' is corrupt", pname);
    return BD_OK;
}

bd_err_t bd_checkpoint_cycle_len(const bd_portfolio_t *p, const void *blob, size_t len,
                                 int64_t *cycle_len, char *errbuf, size_t errlen)
{
    rd_t r = {blob, len, 0, 0};
    uint64_t ver;
    *cycle_len = 0;
    return ck_read_header(&r, p->name, &ver, cycle_len, errbuf, errlen);
}

typedef bd_checkpoint_view_t ck_blob_t;
typedef bd_checkpoint_channel_t ck_channel_t;

void bd_checkpoint_view_free(bd_checkpoint_view_t *b)
{
    free(b->hist);
    free(b->slot_events);
    free(b->ch);
    free(b->agg);
    free(b->late);
    free(b->dkey);
    free(b->dent);
    memset(b, 0, sizeof *b);
}

/* Bytes left to read. */
static size_t rd_left(const rd_t *r) { return r->bad ? 0 : r->len - r->off; }

/* The portfolio's scalar fields into b->t (a copy of p: p is not touched),
 * with the sizes of what follows; false on a value no engine writes (a
 * status past the last one, a kill time before 1970, an open cycle or a
 * time outside bd_ck_time_ok: an open cycle near the top of int64 made the
 * engine's cycle arithmetic overflow). */
static bool ck_read_scalars(rd_t *r, const bd_portfolio_t *p, ck_blob_t *b)
{
    bd_portfolio_t *t = &b->t;
    *t = *p;
    t->ch = NULL;
    t->n = t->cap = 0;
    t->agg = NULL;
    t->hist = NULL;
    t->slot_events = NULL;
    t->late_q = NULL;
    t->n_late = t->late_cap = 0;
    t->dedup = NULL;
    b->model = rd_u64(r);
    b->nslots = rd_u64(r);
    t->open = rd_i64(r);
    t->newest_ts = rd_i64(r);
    t->watermark = rd_i64(r);
    t->last_event_ts = rd_i64(r);
    t->late = rd_u64(r);
    t->rejected = rd_u64(r);
    t->alloc_cycle = rd_i64(r);
    t->version = rd_u64(r);
    uint64_t status = rd_u64(r);
    t->status = status <= BD_STATUS_KILLED ? (bd_status_t)status : BD_STATUS_HELD;
    t->killed = rd_u64(r) != 0;
    rd_str(r, t->kill_reason, sizeof(t->kill_reason));
    if (b->ver >= 6) {
        rd_str(r, t->kill_by, sizeof(t->kill_by));
        t->kill_at = rd_i64(r);
    } else {
        /* Older blobs kept no actor or time: the reason tells who (operator
         * kills read "operator: ..."); the time is unknown (0), which any
         * recorded resume clears (killswitch.h). */
        snprintf(t->kill_by, sizeof(t->kill_by), "%s",
                 !t->killed ? "" : strncmp(t->kill_reason, "operator: ", 10) == 0 ? "operator" : "engine");
        t->kill_at = 0;
    }
    t->has_proposal = rd_u64(r) != 0;
    t->proposal_cycle = rd_i64(r);
    b->win = rd_u64(r);
    b->hist_n = rd_u64(r);
    return !r->bad && status <= BD_STATUS_KILLED && t->kill_at >= 0 && b->model <= BD_MODEL_BETA_BERNOULLI &&
           bd_ck_time_ok(t->open) && bd_ck_time_ok(t->newest_ts) && bd_ck_time_ok(t->watermark) &&
           bd_ck_time_ok(t->last_event_ts);
}

/* Kill window, offsets, per-slot event counts and the channel count;
 * false when a size is out of range or announces more than the blob has
 * left (checked before anything is allocated for it), or a value is
 * impossible (a NaN or negative window entry, a partition outside int32). */
static bool ck_read_rings(rd_t *r, ck_blob_t *b)
{
    if (r->bad || b->win < 1 || b->win > CK_MAX_WINDOW || b->win > rd_left(r) / 16) return false;
    b->hist = bd_xcalloc((size_t)b->win, sizeof(*b->hist));
    for (uint64_t k = 0; k < b->win; k++) {
        b->hist[k].spend = rd_f64(r);
        b->hist[k].value = rd_f64(r);
        if (!bd_ck_hist_ok(&b->hist[k])) return false;
    }
    b->t.offset = rd_i64(r);
    int64_t part = rd_i64(r);
    if (r->bad || b->t.offset < -1 || part < -1 || part > INT32_MAX) return false;
    b->t.partition = (int32_t)part;
    if (b->nslots < 1 || b->nslots > CK_MAX_SLOTS || b->nslots > rd_left(r) / 8) return false;
    b->slot_events = bd_xcalloc((size_t)b->nslots, sizeof(uint64_t));
    for (uint64_t s = 0; s < b->nslots; s++) b->slot_events[s] = rd_u64(r);
    b->n = rd_u64(r);
    return !r->bad && b->n <= CK_MAX_CHANNELS;
}

/* The fewest bytes one saved channel of b takes: its name's length, the
 * three amounts, the lab flag, its states and its open aggregates. */
static uint64_t ck_channel_bytes(const ck_blob_t *b)
{
    uint64_t per = 8 + 3 * 8 + 8 + b->nslots * sizeof(bd_agg_t);
    per += b->ver == 3 ? CK_V3_MODEL_BYTES : sizeof(bd_model_state_t) + sizeof(bd_season_t) + sizeof(bd_lag_t);
    if (b->ver >= 5) per += sizeof(bd_delivery_t) + sizeof(bd_fault_t);
    return per;
}

/* One saved channel i into b->ch[i] and its column of b->agg; false when
 * the blob ends early or a value is impossible (checkpoint_check.c). */
static bool ck_read_channel(rd_t *r, ck_blob_t *b, uint64_t i)
{
    ck_channel_t *c = &b->ch[i];
    rd_str(r, c->name, sizeof(c->name));
    c->x = rd_f64(r);
    c->safe = rd_f64(r);
    c->proposed = rd_f64(r);
    c->promoted = rd_u64(r) != 0;
    if (b->ver == 3) {
        unsigned char old[CK_V3_MODEL_BYTES];
        rd_bytes(r, old, sizeof old);
        bd_season_init(&c->season);
        bd_lag_init(&c->lag);
    } else {
        rd_bytes(r, &c->m, sizeof(c->m));
        rd_bytes(r, &c->season, sizeof(c->season));
        rd_bytes(r, &c->lag, sizeof(c->lag));
    }
    if (b->ver >= 5) {
        rd_bytes(r, &c->dlv, sizeof(c->dlv));
        rd_bytes(r, &c->fault, sizeof(c->fault));
    } else {
        bd_delivery_init(&c->dlv);
        bd_fault_init(&c->fault);
    }
    for (uint64_t s = 0; s < b->nslots; s++) {
        bd_agg_t *a = &b->agg[s * b->n + i];
        rd_bytes(r, a, sizeof(bd_agg_t));
        if (!bd_ck_agg_ok(a, false)) return false;
    }
    return !r->bad && bd_ck_channel_ok(c, b->model, b->ver != 3);
}

/* The channels, each with its open-cycle aggregates, then the queue of
 * late reports; false unless they read completely and every value is
 * possible. Counts are checked against the bytes left before allocating. */
static bool ck_read_channels(rd_t *r, ck_blob_t *b)
{
    uint64_t n = b->n;
    if (n > rd_left(r) / ck_channel_bytes(b)) return false;
    b->agg = bd_xcalloc((size_t)(n ? n : 1) * b->nslots, sizeof(bd_agg_t));
    b->ch = bd_xcalloc((size_t)(n ? n : 1), sizeof(*b->ch));
    for (uint64_t i = 0; i < n; i++)
        if (!ck_read_channel(r, b, i)) return false;
    if (b->ver != 3 && !r->bad) {
        b->n_late = rd_u64(r);
        if (r->bad || b->n_late > rd_left(r) / (24 + sizeof(bd_agg_t))) return false;
        b->late = bd_xcalloc((size_t)(b->n_late ? b->n_late : 1), sizeof(*b->late));
        for (uint64_t k = 0; k < b->n_late && !r->bad; k++) {
            bd_late_t *l = &b->late[k];
            uint64_t ch = rd_u64(r);
            l->ch = ch < n ? (uint32_t)ch : 0;
            l->cycle = rd_i64(r);
            l->age = rd_i64(r);
            rd_bytes(r, &l->d, sizeof(l->d));
            if (ch >= n || l->age < 1 || l->cycle < 0 || !bd_ck_time_ok(l->cycle) || !bd_ck_agg_ok(&l->d, true))
                return false;
        }
    }
    return !r->bad;
}

/* The dedup store of a v7 blob into b->dkey/dent; false when an id is
 * malformed (a live key has h2's low bit set; a rev'd id names a saved
 * channel and holds finite numbers >= 0) or the blob ends early. */
static bool ck_read_dedup(rd_t *r, ck_blob_t *b)
{
    if (b->ver < 7) return true;
    b->n_dedup = rd_u64(r);
    if (r->bad || b->n_dedup > BD_DEDUP_MAX_IDS_HI || b->n_dedup > rd_left(r) / CK_DEDUP_ID_BYTES) return false;
    size_t n = (size_t)(b->n_dedup ? b->n_dedup : 1);
    b->dkey = bd_xcalloc(n, sizeof *b->dkey);
    b->dent = bd_xcalloc(n, sizeof *b->dent);
    for (uint64_t i = 0; i < b->n_dedup && !r->bad; i++) {
        bd_dedup_key_t *k = &b->dkey[i];
        bd_dedup_entry_t *e = &b->dent[i];
        uint32_t lo;
        rd_bytes(r, &lo, 4);
        k->h1 = lo;
        k->h2 = rd_u64(r);
        e->ts = rd_i64(r);
        rd_bytes(r, &e->rev, 4);
        if (!(k->h2 & 1)) return false;
        if (e->rev == BD_DEDUP_NO_REV) continue;
        rd_bytes(r, &e->ch, 4);
        if (e->rev > BD_REV_MAX || e->ch >= b->n) return false;
        for (int j = 0; j < 5; j++) {
            e->num[j] = rd_f64(r);
            if (!(e->num[j] >= 0 && e->num[j] < INFINITY)) return false;
        }
    }
    return !r->bad;
}

/* Reads the whole blob after its header into b (header fields set by the
 * caller): false when any part is corrupt. b is freed by the caller. */
static bool ck_read_all(rd_t *r, const bd_portfolio_t *p, ck_blob_t *b)
{
    return ck_read_scalars(r, p, b) && ck_read_rings(r, b) && ck_read_channels(r, b) && ck_read_dedup(r, b) &&
           r->off == r->len;
}

bd_err_t bd_checkpoint_view(const char *name, const void *blob, size_t len, bd_checkpoint_view_t *v,
                            char *errbuf, size_t errlen)
{
    memset(v, 0, sizeof *v);
    rd_t r = {blob, len, 0, 0};
    bd_err_t rc = ck_read_header(&r, name, &v->ver, &v->cycle_len, errbuf, errlen);
    if (rc != BD_OK) return rc;
    bd_portfolio_t blank;
    memset(&blank, 0, sizeof blank);
    snprintf(blank.name, sizeof blank.name, "%s", name);
    if (!ck_read_all(&r, &blank, v)) {
        bd_checkpoint_view_free(v);
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "checkpoint of '%s' is corrupt", name);
    }
    v->t.cycle_len = v->cycle_len;
    return BD_OK;
}

/* p's dedup store becomes the blob's (empty before v7), rev'd
 * ids pointing at their channel's index in p (chmap; an id of a channel
 * not restored is dropped). The current config's limits apply: past
 * dedup_max_ids the oldest are dropped. p without a store keeps none. */
static void ck_commit_dedup(bd_portfolio_t *p, bd_dedup_t *old, const ck_blob_t *b,
                            const int *chmap)
{
    p->dedup = old;
    p->dedup_restored = b->ver >= 7;
    if (!old) return;
    bd_dedup_t *d = bd_dedup_new_like(old);
    for (uint64_t i = 0; i < b->n_dedup; i++) {
        bd_dedup_entry_t e = b->dent[i];
        if (e.rev != BD_DEDUP_NO_REV) {
            if (chmap[e.ch] < 0) continue;
            e.ch = (uint32_t)chmap[e.ch];
        }
        /* now = INT64_MIN: nothing expires while restoring; an id saved
         * twice (never written so) keeps its first copy */
        if (!bd_dedup_find(d, &b->dkey[i], INT64_MIN, NULL)) bd_dedup_add(d, &b->dkey[i], INT64_MIN, &e);
    }
    bd_dedup_free(old);
    p->dedup = d;
}

/* Commit: p takes the blob's state. The kill window and the slot ring
 * follow the current config (a changed window restarts, a changed slot
 * count drops the open aggregates); channels are re-registered through
 * the table so they bind to the current config, then take their saved
 * fields; a model of another kind than configured keeps the prior. */
static void ck_commit(bd_portfolio_t *p, const ck_blob_t *b)
{
    int win_now = p->pol->kill.window > 0 ? p->pol->kill.window : 1;
    bd_dedup_t *old_dedup = p->dedup;
    free(p->ch);
    free(p->agg);
    free(p->hist);
    free(p->slot_events);
    free(p->late_q);
    *p = b->t;
    p->ch = NULL;
    p->agg = NULL;
    p->n = p->cap = 0;
    p->hist = bd_xcalloc((size_t)win_now, sizeof(*p->hist));
    for (uint64_t k = 0; k < b->win && k < (uint64_t)win_now; k++) p->hist[k] = b->hist[k];
    p->hist_n = (uint64_t)win_now == b->win ? b->hist_n : 0; /* window changed: restart it */
    p->slot_events = bd_xcalloc((size_t)p->nslots, sizeof(uint64_t));
    bool same_slots = b->nslots == (uint64_t)p->nslots;
    int *chmap = bd_xcalloc((size_t)(b->n ? b->n : 1), sizeof(int));
    for (uint64_t s = 0; s < b->nslots && same_slots; s++) p->slot_events[s] = b->slot_events[s];
    for (uint64_t i = 0; i < b->n; i++) {
        const ck_channel_t *sv = &b->ch[i];
        int ci = bd_portfolio_channel(p, sv->name);
        chmap[i] = -1; /* not restored: its late reports and rev'd ids are dropped */
        if (ci < 0) continue;
        bd_channel_t *c = &p->ch[ci];
        c->x = sv->x;
        c->safe = sv->safe;
        c->proposed = sv->proposed;
        c->promoted = sv->promoted;
        if (b->ver != 3 && b->model == (uint64_t)p->pol->model) {
            c->model = sv->m;
            c->season = sv->season;
            c->lag = sv->lag;
        }
        c->dlv = sv->dlv;
        c->fault = sv->fault;
        chmap[i] = ci;
        for (uint64_t s = 0; s < b->nslots && same_slots; s++)
            p->agg[s * p->cap + (size_t)ci] = b->agg[s * b->n + i];
    }
    /* the queued late reports, each to its channel's index here */
    p->late_q = NULL;
    p->n_late = p->late_cap = 0;
    for (uint64_t k = 0; k < b->n_late; k++) {
        const bd_late_t *l = &b->late[k];
        if (l->ch >= b->n || chmap[l->ch] < 0) continue;
        bd_late_t q = *l;
        q.ch = (uint32_t)chmap[l->ch];
        if (p->n_late == p->late_cap) {
            p->late_cap = p->late_cap ? 2 * p->late_cap : 16;
            p->late_q = bd_xrealloc(p->late_q, p->late_cap * sizeof(*p->late_q));
        }
        p->late_q[p->n_late++] = q;
    }
    ck_commit_dedup(p, old_dedup, b, chmap);
    free(chmap);
}

/* Reads all of the blob first (header, scalars, rings, channels, late
 * queue, dedup store), and commits only when every part is valid. */
bd_err_t bd_checkpoint_decode(bd_portfolio_t *p, const void *blob, size_t len, char *errbuf,
                              size_t errlen)
{
    rd_t r = {blob, len, 0, 0};
    ck_blob_t b = {0};
    bd_err_t rc = ck_read_header(&r, p->name, &b.ver, &b.cycle_len, errbuf, errlen);
    if (rc != BD_OK) return rc;
    if (!ck_read_all(&r, p, &b)) {
        bd_checkpoint_view_free(&b);
        return bd_errf(errbuf, errlen, BD_ERR_INVALID, "checkpoint of '%s' is corrupt", p->name);
    }
    ck_commit(p, &b);
    bd_checkpoint_view_free(&b);
    return BD_OK;
}
