/* engine.h: the data path of docs/ARCHITECTURE.md from a decoded event to a
 * decision. Sources (file, Kafka, simulator) feed it; sinks (file, Redis)
 * take its decisions. The same code runs live and in replay. */
#ifndef BUDGETD_ENGINE_H
#define BUDGETD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include "budgetd/config.h"
#include "budgetd/record.h"
#include "budgetd/dedup.h"
#include "budgetd/event.h"
#include "budgetd/portfolio.h"

typedef struct bd_engine bd_engine_t;

/* Receives every decision in a deterministic order (the order in which
 * cycles closed in the input), on the thread that called the engine. json
 * is the record of CONTRACT §3. A non-OK return stops the engine: the
 * caller sees it from the ingest or flush call. */
typedef bd_err_t (*bd_sink_fn)(void *ctx, bd_portfolio_t *p, const bd_decision_t *d,
                               const char *json, size_t len);

typedef struct {
    uint64_t lines, accepted, duplicates, late, watermarks, decisions;
    uint64_t rejected[BD_REJ__COUNT];
    uint64_t verify_failures;
    uint64_t restated;      /* accepted restatements (a higher rev of a held id) */
    uint64_t dedup_evicted; /* ids dropped because a portfolio held dedup_max_ids */
} bd_engine_stats_t;

typedef struct {
    int threads;          /* worker threads for closing cycles (>= 1) */
    bool live;            /* decided_at = wall clock, wall-clock closing allowed */
    bd_sink_fn sink;
    void *sink_ctx;
} bd_engine_opts_t;

bd_engine_t *bd_engine_new(const bd_config_t *cfg, const bd_engine_opts_t *opts);
void bd_engine_free(bd_engine_t *e);

/* Decodes and applies one input line. Returns BD_REJ_NONE or the reason it
 * was rejected (the state is then unchanged but for the reject counters);
 * detail gets the human text. *err is set when the sink failed. */
bd_reject_t bd_engine_ingest(bd_engine_t *e, const char *line, size_t len,
                             char *detail, size_t dlen, bd_err_t *err);
/* A decoded event and its dedup key. bd_engine_decode hashes the key and
 * prefetches its bucket in the portfolio's dedup store as soon as the event
 * is valid, so that the store's cache miss (the largest single cost of
 * applying an event: the stores of all portfolios span tens of MB)
 * overlaps whatever the caller does before bd_engine_apply_decoded. */
typedef struct {
    bd_event_t ev;
    bd_dedup_key_t key;
    bool keyed;          /* key holds ev's event_id */
    bd_portfolio_t *p;   /* ev's portfolio when it existed at decode time, else NULL
                          * (portfolios are never freed during a run) */
} bd_engine_decoded_t;

/* bd_event_decode into d->ev, plus the key and prefetch above. Counts
 * nothing: the caller decides what a rejection means (bd_engine_count_reject). */
bd_reject_t bd_engine_decode(bd_engine_t *e, const char *buf, size_t len, bd_engine_decoded_t *d,
                             char *detail, size_t dlen);
/* bd_engine_apply of d->ev, reusing its key. */
bd_reject_t bd_engine_apply_decoded(bd_engine_t *e, const bd_engine_decoded_t *d, char *detail,
                                    size_t dlen, bd_err_t *err);
/* The reject a decoded event gets whatever its portfolio holds (none yet,
 * or what a restore would bring): in a live engine, a time more than
 * max_ahead past the wall clock (ts_out_of_range), else BD_REJ_NONE.
 * Counts nothing. The live path asks it before it claims and restores a
 * portfolio it does not own yet, so that an event refused anyway claims
 * nothing; bd_engine_apply_decoded checks it again. */
bd_reject_t bd_engine_screen(const bd_engine_t *e, const bd_event_t *ev, char *detail, size_t dlen);
/* Applies an already decoded event (simulator path). */
bd_reject_t bd_engine_apply(bd_engine_t *e, const bd_event_t *ev, char *detail, size_t dlen,
                            bd_err_t *err);
/* Live mode: closes every cycle whose end + lateness <= now. */
bd_err_t bd_engine_tick(bd_engine_t *e, int64_t now);
/* Runs queued cycle closes and emits their decisions. */
bd_err_t bd_engine_flush(bd_engine_t *e);

/* The portfolio called name, created (not yet started: no cycle open) when
 * the config allows it; NULL when it is unknown or when creating it would
 * pass max_portfolios. The live path uses it to restore a checkpoint before
 * the portfolio's first event is applied. */
bd_portfolio_t *bd_engine_portfolio(bd_engine_t *e, const char *name);

/* Forgets p (bd_portfolio_reset): how the live path drops a portfolio it no
 * longer owns, so that it is restored from Redis if it comes back. A close
 * job of p still queued is run first: its decision reaches the sink, and
 * the caller discards what it must not write. */
void bd_engine_forget(bd_engine_t *e, bd_portfolio_t *p);

/* p was restored from its checkpoint (the live path): the times it had
 * accepted count for the time guard as if this engine had accepted them,
 * so a daemon taking over a partition judges its next events against the
 * portfolio's own past, not against the older times it saw itself. */
void bd_engine_restored(bd_engine_t *e, const bd_portfolio_t *p);

/* Counts a rejected message against reason and portfolio p (may be NULL):
 * the live path decodes itself and must apply the checkpoint skip first.
 * p must be a portfolio already held (and owned) for another reason: a
 * rejected message creates and claims none (docs/CONTRACT.md §1). */
void bd_engine_count_reject(bd_engine_t *e, bd_reject_t r, bd_portfolio_t *p);

/* Records ev's event_id (and a rev'd event's numbers) in its portfolio's
 * dedup store without applying ev: a message skipped because its
 * portfolio's checkpoint covers it must still make a later resend of the
 * same id a duplicate. A no-op when the checkpoint restored carried the
 * store (it holds the id already, exactly as an uninterrupted run would). */
void bd_engine_remember(bd_engine_t *e, const bd_event_t *ev);

const bd_engine_stats_t *bd_engine_stats(const bd_engine_t *e);
bd_ptable_t *bd_engine_table(bd_engine_t *e);
const bd_config_t *bd_engine_config(const bd_engine_t *e);

/* Swaps in a reloaded config (SIGHUP) after checking that every live
 * portfolio still has one and that cycle and lateness are unchanged (they
 * define the cycle grid of the open state). dedup_window and dedup_max_ids
 * apply to the portfolios' stores from the next event. On error nothing
 * changes. */
bd_err_t bd_engine_reload(bd_engine_t *e, const bd_config_t *cfg, char *errbuf, size_t errlen);

#endif
