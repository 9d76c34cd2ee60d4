/* portfolio.h: the portfolio table and the per-portfolio state that the
 * engine keeps between events: channels, open-cycle aggregates, models, the
 * allocation in force and the governance state. */
#ifndef BUDGETD_PORTFOLIO_H
#define BUDGETD_PORTFOLIO_H

#include <stdbool.h>
#include <stdint.h>
#include "budgetd/config.h"
#include "budgetd/delivery.h"
#include "budgetd/fault.h"
#include "budgetd/dedup.h"
#include "budgetd/record.h"
#include "budgetd/lag.h"
#include "budgetd/model.h"
#include "budgetd/season.h"

typedef struct {
    char name[BD_NAME_MAX + 1];
    const bd_channel_cfg_t *cfg;  /* listed config or the policy default */
    bd_prior_t prior;
    bd_model_state_t model;
    double x;                     /* allocation in force (currency, whole cents) */
    double safe;                  /* last allocation that met the risk bound */
    double proposed;              /* pending proposal, valid when p->has_proposal */
    bool promoted;                /* lab gate passed (sticky) */
    bd_season_t season;           /* learned hour-of-day and weekday profile */
    bd_lag_t lag;                 /* reporting lag and the exposure still pending */
    bd_delivery_t dlv;            /* v2: delivered share and learned delivery cap */
    bd_fault_t fault;             /* v2: data-fault detector and the fault in force */
    double pin;                   /* v2 run-time pin (PFX:{P}:pin, set by the daemon; not
                                   * checkpointed: the daemon reads the key at restore);
                                   * NAN: none */
    uint32_t owner;               /* v2: 1 + the index of the channel this arm splits (its
                                   * config's arms); 0: a channel (so a zeroed channel is
                                   * one). Set from the config: an arm's channel comes first */
} bd_channel_t;

/* A late report: an event for an interval already closed, or the change a
 * restatement made to one. Queued on the portfolio as it arrives and applied
 * by the next cycle close's model update, so that a late event never waits
 * for (or stalls) the decisions in flight, and replay and live apply it at
 * the same point of the data. age: cycles between the interval's close and
 * the close that applies it (>= 1). */
typedef struct {
    uint32_t ch;
    int64_t cycle, age;
    bd_agg_t d;
} bd_late_t;

/* Realized spend and objective of one closed cycle (kill-switch window). */
typedef struct {
    double spend, value;
} bd_cycle_hist_t;

typedef struct bd_portfolio {
    char name[BD_NAME_MAX + 1];
    const bd_portfolio_cfg_t *pc; /* NULL: unlisted, runs on defaults */
    const bd_policy_t *pol;
    bd_channel_t *ch;             /* n used, cap allocated */
    size_t n, cap;
    /* Aggregates of the open cycles: ring of nslots cycles x cap channels;
     * cycle c lives in slot c % nslots. Invariant: only cycles in
     * [open, open + nslots) hold data. */
    bd_agg_t *agg;
    uint64_t *slot_events;        /* events per slot */
    int nslots;
    int64_t cycle_len;            /* seconds per cycle of the config the cycle numbers below
                                   * count in (engine.c sets it; 0 unknown) */
    int64_t open;                 /* oldest cycle not yet closed */
    int64_t newest_ts;            /* newest event ts seen for this portfolio */
    int64_t watermark;            /* highest watermark received */
    int64_t last_event_ts;        /* for stale detection */
    uint64_t late, rejected;      /* since the last decision */
    int64_t alloc_cycle;          /* cycle of the allocation in force */
    uint64_t version;             /* live: the alloc version Redis last reported for it, the
                                   * floor of the next one (0 none) */
    bd_status_t status;
    bool killed;                  /* kill-switch latch, until an operator resumes: set and
                                   * cleared by killswitch.c only (checkpoint.c saves and
                                   * restores it) */
    char kill_reason[160];
    int64_t kill_at;              /* the latch's time: the kill key's `at` (a trip: its
                                   * decided_at); 0 unknown (a latch migrated from an old
                                   * checkpoint) */
    char kill_by[64];             /* the latch's actor: "engine" or the operator's name */
    bool has_proposal;
    int64_t proposal_cycle;
    bd_cycle_hist_t *hist;        /* ring of pol->kill.window closed cycles (killswitch.c) */
    uint64_t hist_n;
    int64_t offset;               /* live: last applied Kafka offset of its partition (-1 none) */
    int32_t partition;            /* live: the partition its events come from (-1 unknown) */
    int64_t ckpt_offset;          /* live: offset covered by the checkpoint in Redis */
    int64_t first_unsaved;        /* live: first offset applied since the checkpoint (-1 none) */
    uint64_t epoch;               /* live: owner epoch claimed in Redis (0: none; kept by
                                   * bd_portfolio_reset as the floor of the next claim) */
    bool fenced_out;              /* live: Redis refused a write, another process owns it
                                   * now; the daemon drops the portfolio */
    uint8_t redis_held;           /* live: nonzero while Redis refuses its writes (a key of
                                   * the wrong type, ...): its decisions are held and retried,
                                   * the other portfolios go on (publish.c) */
    bool pending;                 /* a close job is queued (engine.c) */
    double live_close_at;         /* live: monotonic time its queued close was seen, 0 none
                                   * (run.c: cycle latency metric; never checkpointed) */
    double live_event_at;         /* live: monotonic arrival of the oldest event since its
                                   * last decision, 0 none (event-to-decision metric) */
    bd_late_t *late_q;            /* late reports since the last close, in arrival order */
    size_t n_late, late_cap;
    bd_dedup_t *dedup;            /* event ids of the last dedup_window of its event time
                                   * (engine.c creates it; NULL: no dedup); checkpointed */
    bool dedup_restored;          /* live: the checkpoint restored held the dedup store, so
                                   * messages it covers need not be remembered again */
} bd_portfolio_t;

typedef struct bd_ptable bd_ptable_t;

bd_ptable_t *bd_ptable_new(void);
void bd_ptable_free(bd_ptable_t *t);
/* The portfolio called name (len bytes), or NULL. */
bd_portfolio_t *bd_ptable_find(bd_ptable_t *t, const char *name, size_t len);
/* Creates it (caller checked it is absent). */
bd_portfolio_t *bd_ptable_add(bd_ptable_t *t, const char *name, const bd_portfolio_cfg_t *pc,
                              const bd_policy_t *pol, int nslots);
size_t bd_ptable_count(const bd_ptable_t *t);
/* The i-th portfolio in creation order (stable iteration). */
bd_portfolio_t *bd_ptable_at(bd_ptable_t *t, size_t i);

/* Index of channel name in p, adding it (prior from config, x = 0) when
 * absent; adding a channel with arms (v2) adds its arms right after it, and
 * adding an arm adds its channel first. Returns -1 if the name is invalid. */
int bd_portfolio_channel(bd_portfolio_t *p, const char *name);
/* Binds p to a reloaded config (pc may be NULL: defaults). Channel guardrails
 * and priors follow the new config; model states, allocation and open
 * aggregates are kept. The kill window restarts if its length changed. */
void bd_portfolio_rebind(bd_portfolio_t *p, const bd_portfolio_cfg_t *pc, const bd_policy_t *pol);
/* The channel's name as a field of the alloc hash (docs/CONTRACT.md §11.4,
 * v2): "C/A" for an arm "C:A" (written as arm:C/A), else its name. */
void bd_channel_field(const bd_channel_t *c, char out[BD_NAME_MAX + 1]);

/* The channel's pin in force: the run-time pin when set, else its config
 * `pin`, else NAN. */
double bd_channel_pin(const bd_channel_t *c);
/* Queues a late report for channel ch of closed cycle (< p->open). */
void bd_portfolio_late(bd_portfolio_t *p, int ch, int64_t cycle, const bd_agg_t *d);
/* Forgets everything p learned: p is as bd_ptable_add left it (name,
 * config, slot count and cycle length kept; no channel, no cycle open,
 * offsets -1, no late report queued, an empty dedup store with the same
 * limits), except for its last owner epoch. The live path drops a
 * portfolio it no longer owns this way, so that it is restored from Redis
 * when it comes back. No close job of p may be queued. */
void bd_portfolio_reset(bd_portfolio_t *p);
/* Ring slot of cycle c (cycles may be negative: the remainder is folded). */
size_t bd_portfolio_slot_index(const bd_portfolio_t *p, int64_t c);
/* Aggregates of cycle c (must be within the open window). */
bd_agg_t *bd_portfolio_slot(bd_portfolio_t *p, int64_t c);

#endif
