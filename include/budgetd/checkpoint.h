/* checkpoint.h: a portfolio's whole engine state as one opaque blob, written
 * to PFX:{P}:state in the same atomic script as its decision
 * (docs/DECISIONS.md "Exactly-once on the live path"). */
#ifndef BUDGETD_CHECKPOINT_H
#define BUDGETD_CHECKPOINT_H

#include <stddef.h>
#include "budgetd/portfolio.h"

/* Serialises p (channels, models, open-cycle aggregates, allocation in force,
 * governance state, offsets, its dedup store: 24 bytes per event id held,
 * 68 for an id held with a rev) into *buf (grown as needed). Returns the
 * length. */
size_t bd_checkpoint_encode(const bd_portfolio_t *p, unsigned char **buf, size_t *cap);

/* Restores p from a blob written by bd_checkpoint_encode, of this version
 * or an older one from version 3 on (migrated: see checkpoint.c and
 * docs/CONTRACT.md §13). p must be freshly
 * added to the table (config bound, no channels). Channels are re-bound to
 * the current config; a model of another kind than configured restarts
 * from its prior; the dedup store takes the current dedup limits, and a
 * blob of a version before the store was saved restores an empty one.
 * Returns BD_ERR_INVALID on a corrupt or foreign blob (a length or count
 * the blob cannot hold, checked before anything is allocated for it; a
 * value no engine writes: checkpoint_check.c), and then p is left as it
 * was. */
bd_err_t bd_checkpoint_decode(bd_portfolio_t *p, const void *blob, size_t len, char *errbuf,
                              size_t errlen);

/* The cycle length (seconds) blob was written with, read from its header
 * without restoring anything: 0 when the blob is older than version 6,
 * which does not record it. BD_ERR_INVALID when it is not p's checkpoint. */
bd_err_t bd_checkpoint_cycle_len(const bd_portfolio_t *p, const void *blob, size_t len,
                                 int64_t *cycle_len, char *errbuf, size_t errlen);

/* One saved channel as the blob holds it (bd_checkpoint_view). */
typedef struct {
    char name[BD_NAME_MAX + 1];
    double x, safe, proposed;
    bool promoted;
    bd_model_state_t m;         /* of the blob's model kind (view->model); a v3 blob's: zero */
    bd_season_t season;
    bd_lag_t lag;
    bd_delivery_t dlv;
    bd_fault_t fault;
} bd_checkpoint_channel_t;

/* Everything a blob holds, read and checked but bound to no config: what
 * bd_checkpoint_decode restores from, and what `budgetd state` prints.
 * t holds the portfolio's scalar fields (name, cycles, times, counters,
 * status, kill latch, proposal, offset, partition); its pointers are NULL. */
typedef struct {
    uint64_t ver;               /* 3 to the current version (7) */
    int64_t cycle_len;          /* seconds; 0: a blob before v6 does not say */
    bd_portfolio_t t;
    uint64_t model, nslots, win, hist_n, n;
    bd_cycle_hist_t *hist;      /* win entries: the kill window's ring */
    uint64_t *slot_events;      /* nslots entries */
    bd_checkpoint_channel_t *ch; /* n entries */
    bd_agg_t *agg;              /* nslots x n, slot-major: the open cycles' aggregates */
    bd_late_t *late;            /* n_late queued late reports (ch: index into ch) */
    uint64_t n_late;
    bd_dedup_key_t *dkey;       /* n_dedup held ids, in insertion order (v7) */
    bd_dedup_entry_t *dent;
    uint64_t n_dedup;
} bd_checkpoint_view_t;

/* Reads the blob of portfolio `name` into *v without a portfolio or a
 * config, with every check bd_checkpoint_decode makes. BD_ERR_INVALID on
 * a corrupt or foreign blob (*v then holds nothing to free). */
bd_err_t bd_checkpoint_view(const char *name, const void *blob, size_t len, bd_checkpoint_view_t *v,
                            char *errbuf, size_t errlen);
void bd_checkpoint_view_free(bd_checkpoint_view_t *v);

#endif
