/* benchutil.h: helpers shared by the bench programs (linked into each of
 * them): a monotonic clock, the `name: value unit` output lines, and a
 * deterministic generator of channel-event lines in the format of
 * bench/gen_events.c. Prefix bu_ keeps clear of other bench/ files. */
#ifndef BUDGETD_BENCHUTIL_H
#define BUDGETD_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC. */
double bu_now(void);

/* Prints "name: value unit" on stdout (flushed). */
void bu_print(const char *name, double value, const char *unit);

/* Summaries of n >= 1 repeated measurements. */
double bu_median(const double *v, size_t n);
double bu_max(const double *v, size_t n);

/* Event lines held back to back in one arena; line i is
 * text + off[i], len[i] bytes (not NUL-terminated, no newline). */
typedef struct {
    char *text;
    size_t *off, *len;
    size_t n, cap, used, text_cap;
    size_t events, watermarks;
} bu_lines_t;

/* Shape of a generated log: every cycle, `per` events per (portfolio,
 * channel), interleaved across portfolios as connectors would send them,
 * then one watermark per portfolio closing the cycle. Portfolios are
 * "pf-NNNNN", channels "channel-NN"; event ids are unique. */
typedef struct {
    int portfolios, channels, cycles, per;
    int64_t start, cycle_len;
    uint64_t seed;
} bu_gen_t;

void bu_lines_gen(bu_lines_t *l, const bu_gen_t *g);
void bu_lines_free(bu_lines_t *l);
/* Writes the lines, one per line, to path; 0 on success. */
int bu_lines_write(const bu_lines_t *l, const char *path);

/* The budgetd binary: $BUDGETD_BIN, else "budgetd" next to the directory
 * of argv0 (build/bench/x -> build/budgetd). Writes into buf. */
const char *bu_budgetd_bin(const char *argv0, char *buf, size_t len);

#endif
