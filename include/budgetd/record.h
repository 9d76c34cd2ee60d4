/* record.h: the decision record of CONTRACT §3, as a struct and as JSON. */
#ifndef BUDGETD_RECORD_H
#define BUDGETD_RECORD_H

#include <stdbool.h>
#include <stdint.h>
#include "budgetd/alloc.h"
#include "budgetd/config.h"

typedef enum { BD_STATUS_ACTIVE = 0, BD_STATUS_HELD, BD_STATUS_KILLED } bd_status_t;

/* How the decision reached (or did not reach) the allocation in force. */
typedef enum {
    BD_PATH_INITIAL = 0, /* first sight of the portfolio: the configured split */
    BD_PATH_APPLIED,     /* written to alloc */
    BD_PATH_KEPT,        /* min_change: the allocation in force stays */
    BD_PATH_PROPOSED,    /* written to proposal only (assist, collaborate) */
    BD_PATH_ESCALATED,   /* delegate: a change above escalate_above, proposed */
    BD_PATH_APPROVED,    /* collaborate: an approved proposal applied */
    BD_PATH_HELD,        /* not published: verifier refused or risk held */
    BD_PATH_KILLED,      /* kill-switch: the kill action's allocation */
} bd_path_t;

typedef struct {
    const char *channel;
    double spend, prev;
    double mean_roas, roas_lo, roas_hi;
    bd_bound_t bound;
    double season;               /* seasonal multiplier used for the interval decided */
    double discount;             /* forgetting rate the channel's model applied last */
    double delivered;            /* v2: reported spend / allocation of the last closed cycle (NAN: none) */
    double cap;                  /* v2: learned delivery cap (0: none) */
    bd_fault_kind_t fault;       /* v2: data fault in force (BD_FAULT_NONE: none) */
    uint32_t owner;              /* v2: an arm: 1 + the index (in the record's ch) of the channel
                                  * it splits, written nested in that channel's entry; 0: a channel */
    const char *arm;             /* v2: an arm's own name (after "C:") */
} bd_decision_channel_t;

typedef struct {
    const char *portfolio;
    int64_t cycle;               /* the cycle this allocation is for */
    bd_mode_t mode;
    bd_status_t status;
    bd_path_t path;
    double budget;
    double total;                /* sum of the channels' spends (< budget when capped); arms
                                  * (v2) split their channel's, not counted again */
    bd_goal_kind_t goal;         /* v2: BD_GOAL_BUDGET writes no goal fields */
    double goal_target;          /* v2: the target (R or C) */
    double budget_min;           /* v2: the budget range's min (budget is its max) */
    double marginal;             /* v2: mean posterior marginal return at the total (NAN: null) */
    size_t n;                    /* entries of ch, arms (v2) included */
    bd_decision_channel_t *ch;
    double p_below_floor;
    bool show_cvar;              /* v2: risk.cvar is on: the record carries cvar, cvar_bound */
    double cvar;                 /* v2: CVaR of the portfolio ROAS at the allocation (NAN: null) */
    bool cvar_bound;             /* v2: the CVaR floor moved (or held) the allocation */
    const char *kill_reason;     /* NULL: not killed */
    bool tripped;                /* this decision tripped the kill-switch: the first
                                  * record of a latch (the live sink creates the
                                  * kill key from it, never from later records, so
                                  * an operator's resume is not undone) */
    uint64_t events, late, rejected;
    int64_t decided_at;          /* event time in replay, wall clock live */
    const char *note;            /* optional human text (verifier failure, ...) */
    bool show_season;            /* the record carries each channel's `season` */
    bool show_discount;          /* ... and `discount` (discount: auto) */
    bool show_delivery;          /* v2: ... and `delivered` (and `cap` when learned) */
    bool show_fault;             /* v2: ... and `fault` (some kind is looked for) */
} bd_decision_t;

const char *bd_status_name(bd_status_t s);
const char *bd_path_name(bd_path_t p);

/* Appends the record as one JSON line (no newline) to a growing buffer.
 * Formatting is fixed (spends %.2f, ratios %.4f) so that replays are
 * byte-identical. Returns the record length. */
size_t bd_record_json(const bd_decision_t *d, char **buf, size_t *cap);

#endif
