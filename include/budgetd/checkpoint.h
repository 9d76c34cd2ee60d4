/* checkpoint.h: a portfolio's whole engine state as one opaque blob, written
 * to PFX:{P}:state in the same atomic script as its decision
 * (docs/DECISIONS.md "Exactly-once on the live path"). */
#ifndef BUDGETD_CHECKPOINT_H
#define BUDGETD_CHECKPOINT_H

#include <stddef.h>
#include "budgetd/portfolio.h"

/* Serialises p (channels, models, open-cycle aggregates, allocation in force,
 * governance state, offsets) into *buf (grown as needed). Returns the length. */
size_t bd_checkpoint_encode(const bd_portfolio_t *p, unsigned char **buf, size_t *cap);

/* Restores p from a blob written by bd_checkpoint_encode, of this version
 * or the previous one (migrated: see checkpoint.c). p must be freshly
 * added to the table (config bound, no channels). Channels are re-bound to
 * the current config; a model of another kind than configured restarts
 * from its prior. Returns BD_ERR_INVALID on a corrupt or foreign blob, and
 * then p is left as it was. */
bd_err_t bd_checkpoint_decode(bd_portfolio_t *p, const void *blob, size_t len, char *errbuf,
                              size_t errlen);

/* The cycle length (seconds) blob was written with, read from its header
 * without restoring anything: 0 when the blob is of the previous version,
 * which does not record it. BD_ERR_INVALID when it is not p's checkpoint. */
bd_err_t bd_checkpoint_cycle_len(const bd_portfolio_t *p, const void *blob, size_t len,
                                 int64_t *cycle_len, char *errbuf, size_t errlen);

#endif
