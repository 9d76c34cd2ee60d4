/* fuzz_event: the event decoder (docs/CONTRACT.md §1) on arbitrary bytes.
 * Differential: the fast path (bd_event_decode) and the cJSON path
 * (bd_event_decode_cjson) must give the same reason, the same detail and
 * for an accepted record the same event bit for bit; any difference, crash
 * or sanitizer report is a finding. Also runs the portfolio hint of
 * rejected lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Field by field: doubles compared as bits (-0 and NaN included). */
static int same_event(const bd_event_t *a, const bd_event_t *b)
{
    return a->kind == b->kind && a->ts == b->ts && !strcmp(a->portfolio, b->portfolio) &&
           !strcmp(a->channel, b->channel) && !strcmp(a->event_id, b->event_id) &&
           !memcmp(&a->spend, &b->spend, sizeof(double)) &&
           !memcmp(&a->impressions, &b->impressions, sizeof(double)) &&
           !memcmp(&a->clicks, &b->clicks, sizeof(double)) &&
           !memcmp(&a->conversions, &b->conversions, sizeof(double)) &&
           !memcmp(&a->revenue, &b->revenue, sizeof(double));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    bd_event_t fe, ce;
    char fd[256], cd[256], hint[BD_NAME_MAX + 1];
    memset(&fe, 0, sizeof fe);
    memset(&ce, 0, sizeof ce);
    bd_reject_t fr = bd_event_decode(s, size, &fe, fd, sizeof fd);
    bd_reject_t cr = bd_event_decode_cjson(s, size, &ce, cd, sizeof cd);
    if (fr != cr || strcmp(fd, cd) != 0) abort();
    if (fr == BD_REJ_NONE && !same_event(&fe, &ce)) abort();
    if (fr != BD_REJ_NONE) bd_event_portfolio_hint(s, size, hint, sizeof hint);
    return 0;
}
