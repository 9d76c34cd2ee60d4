/* verify.h: the independent re-check of an allocation before it is published.
 * Shares no code with alloc.c on purpose: a bug in one is caught by the other. */
#ifndef BUDGETD_VERIFY_H
#define BUDGETD_VERIFY_H

#include <stdbool.h>
#include "budgetd/config.h"
#include "budgetd/model.h"

typedef struct {
    size_t n;
    const bd_policy_t *pol;
    const bd_channel_cfg_t *const *cfg;
    const double *x, *prev;
    const bool *promoted;       /* lab gate state used for x */
    const bd_curve_t *draws;    /* samples x n, as returned by the allocator */
    size_t n_draws;
    bool risk_held;             /* allocator said it holds for risk: risk not checked */
    const double *pin;          /* v2: per channel pinned spend, NAN none; NULL: no pins */
} bd_verify_input_t;

/* Returns BD_OK, or BD_ERR_INVALID with the first violated bound in errbuf. */
bd_err_t bd_verify_allocation(const bd_verify_input_t *in, char *errbuf, size_t errlen);

#endif
