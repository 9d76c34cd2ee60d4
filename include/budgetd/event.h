/* event.h: decoding and validation of channel events (CONTRACT §1). */
#ifndef BUDGETD_EVENT_H
#define BUDGETD_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "budgetd/common.h"

/* Stable reason codes for rejected input; bd_reject_name() gives the string
 * that goes to the dead-letter header `budgetd-reason` and to stats. Never
 * renumber or rename: operators alert on these strings. */
typedef enum {
    BD_REJ_NONE = 0,
    BD_REJ_BAD_JSON,          /* not a JSON object, invalid UTF-8, trailing garbage */
    BD_REJ_MISSING_FIELD,     /* a required field is absent */
    BD_REJ_BAD_TYPE,          /* a field has the wrong JSON type */
    BD_REJ_NEGATIVE_VALUE,    /* a number < 0 */
    BD_REJ_NON_FINITE,        /* a number that overflows to inf */
    BD_REJ_BAD_ID,            /* portfolio/channel/event_id empty, too long, bad chars */
    BD_REJ_TS_OUT_OF_RANGE,   /* ts or watermark before 2000 or more than max_ahead past the
                               * reference time (engine.c) */
    BD_REJ_UNKNOWN_PORTFOLIO, /* not in config and defaults.budget absent */
    BD_REJ_BAD_VERSION,       /* v present and not 1 or 2 */
    BD_REJ_TOO_MANY_PORTFOLIOS, /* a new portfolio beyond max_portfolios (v2) */
    BD_REJ_TOO_MANY_CHANNELS, /* a new channel beyond its portfolio's max_channels (v2) */
    BD_REJ_BAD_REV,           /* rev not an integer in 0..2^31, rev without event_id, or a
                               * restatement the engine cannot apply (CONTRACT v2 §1) */
    BD_REJ__COUNT
} bd_reject_t;

typedef enum { BD_EV_DATA = 0, BD_EV_WATERMARK = 1 } bd_event_kind_t;

/* 2000-01-01T00:00:00Z: events before it are rejected. */
#define BD_TS_MIN 946684800LL
/* 9999-12-31T23:59:59Z: events and watermarks after it are rejected (v2):
 * cycle arithmetic on a time near the top of int64 (the cycle's end, the
 * seasonal factors of the cycles ahead) overflowed. */
#define BD_TS_MAX 253402300799LL
/* The largest `rev` accepted (CONTRACT v2 §1). */
#define BD_REV_MAX 2147483648LL

/* One decoded record. For a watermark, channel and the numbers are unset and
 * ts holds T; portfolio may be "*" (all portfolios). */
typedef struct {
    bd_event_kind_t kind;
    int64_t ts;
    char portfolio[BD_NAME_MAX + 1];
    char channel[BD_NAME_MAX + 1];
    char event_id[BD_ID_MAX + 1]; /* "" when absent */
    bool has_rev;                 /* `rev` present (data events with an event_id only) */
    uint32_t rev;                 /* restatement number, 0..BD_REV_MAX; 0 when absent */
    double spend, impressions, clicks, conversions, revenue;
} bd_event_t;

/* Decodes one JSON object of len bytes (need not be NUL-terminated) into ev.
 * Returns BD_REJ_NONE or the reason; on rejection detail gets human text and
 * ev is unspecified. Stateless: the "ahead of newest ts" and unknown-portfolio
 * checks need engine state and are done by the engine. The order of checks
 * (which fixes the reason when several apply), the duplicate-key rule (last
 * wins) and null handling (null = absent) are documented in engine/core/event.c. */
bd_reject_t bd_event_decode(const char *buf, size_t len, bd_event_t *ev,
                            char *detail, size_t detail_len);

/* As bd_event_decode. When the record is valid, ready(ctx, ev) is called
 * with ev complete, before the decoder's own cleanup, so that memory the
 * caller will need for ev (the engine's dedup bucket, a likely cache miss)
 * can be prefetched meanwhile. ready may be NULL. */
typedef void (*bd_event_ready_fn)(void *ctx, const bd_event_t *ev);
bd_reject_t bd_event_decode_ex(const char *buf, size_t len, bd_event_t *ev, char *detail,
                               size_t detail_len, bd_event_ready_fn ready, void *ctx);

/* As bd_event_decode, always through cJSON (never the flat-object fast
 * path): the reference the fast path is tested against, and the baseline
 * bench_ingest compares it with. */
bd_reject_t bd_event_decode_cjson(const char *buf, size_t len, bd_event_t *ev, char *detail,
                                  size_t detail_len);

/* How many decodes of the calling thread the fast path completed (the rest
 * went through cJSON): for tests and benchmarks. */
uint64_t bd_event_fast_decodes(void);

/* The stable string of a reason code ("bad_json", ...). */
const char *bd_reject_name(bd_reject_t r);

/* The "portfolio" of a rejected line when it has a valid one, else "" in
 * out: rejected events still count against their portfolio's reject ratio
 * when the engine holds that portfolio (a name only, never a reason to
 * create or claim one). */
void bd_event_portfolio_hint(const char *buf, size_t len, char *out, size_t outlen);

#endif
