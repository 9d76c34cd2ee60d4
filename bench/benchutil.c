/* benchutil.c: see benchutil.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "benchutil.h"
#include "budgetd/common.h"

double bu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* qsort order of doubles, ascending. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n values (the mean of the middle two for even n); v is
 * left untouched. */
double bu_median(const double *v, size_t n)
{
    double *c = bd_xmalloc(n * sizeof *c);
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return m;
}

/* The largest of n >= 1 values. */
double bu_max(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        if (v[i] > m) m = v[i];
    return m;
}

void bu_print(const char *name, double value, const char *unit)
{
    if (value != 0 && value < 0.01 && value > -0.01)
        printf("%s: %.3g %s\n", name, value, unit);
    else if (value >= 1000 || value <= -1000)
        printf("%s: %.0f %s\n", name, value, unit);
    else
        printf("%s: %.3f %s\n", name, value, unit);
    fflush(stdout);
}

/* Appends one line (len bytes) to the arena, growing it geometrically. */
static void lines_push(bu_lines_t *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->off = bd_xrealloc(l->off, l->cap * sizeof(*l->off));
        l->len = bd_xrealloc(l->len, l->cap * sizeof(*l->len));
    }
    if (l->used + len > l->text_cap) {
        l->text_cap = l->text_cap ? l->text_cap * 2 : 1 << 20;
        while (l->text_cap < l->used + len) l->text_cap *= 2;
        l->text = bd_xrealloc(l->text, l->text_cap);
    }
    memcpy(l->text + l->used, s, len);
    l->off[l->n] = l->used;
    l->len[l->n] = len;
    l->used += len;
    l->n++;
}

/* xorshift64*: cheap, deterministic, good enough for synthetic numbers. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Same record shape and number formatting as bench/gen_events.c, so the
 * parse cost per line is the one of the generator's logs. */
void bu_lines_gen(bu_lines_t *l, const bu_gen_t *g)
{
    memset(l, 0, sizeof(*l));
    uint64_t s = g->seed ? g->seed : 1, id = 0;
    char line[512];
    for (int c = 0; c < g->cycles; c++) {
        int64_t t0 = g->start + (int64_t)c * g->cycle_len;
        for (int k = 0; k < g->per; k++)
            for (int p = 0; p < g->portfolios; p++)
                for (int ch = 0; ch < g->channels; ch++) {
                    double x = 20.0 + 80.0 * rng_unit(&s);
                    double conv = (double)(int)(x * 0.03 * 2.0 * rng_unit(&s));
                    double rev = conv * (30.0 + 40.0 * rng_unit(&s));
                    int64_t ts = t0 + (int64_t)((double)g->cycle_len * (k + rng_unit(&s)) / g->per);
                    int n = snprintf(line, sizeof(line),
                                     "{\"event_id\":\"e%llu\",\"ts\":%lld,\"portfolio\":\"pf-%05d\","
                                     "\"channel\":\"channel-%02d\",\"spend\":%.2f,\"impressions\":%.0f,"
                                     "\"clicks\":%.0f,\"conversions\":%.0f,\"revenue\":%.2f}",
                                     (unsigned long long)++id, (long long)ts, p, ch, x, x * 120,
                                     x * 1.1, conv, rev);
                    lines_push(l, line, (size_t)n);
                    l->events++;
                }
        for (int p = 0; p < g->portfolios; p++) {
            int n = snprintf(line, sizeof(line), "{\"portfolio\":\"pf-%05d\",\"watermark\":%lld}", p,
                             (long long)(t0 + g->cycle_len));
            lines_push(l, line, (size_t)n);
            l->watermarks++;
        }
    }
}

void bu_lines_free(bu_lines_t *l)
{
    free(l->text);
    free(l->off);
    free(l->len);
    memset(l, 0, sizeof(*l));
}

int bu_lines_write(const bu_lines_t *l, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (size_t i = 0; i < l->n; i++) {
        fwrite(l->text + l->off[i], 1, l->len[i], f);
        fputc('\n', f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

const char *bu_budgetd_bin(const char *argv0, char *buf, size_t len)
{
    const char *env = getenv("BUDGETD_BIN");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return buf;
    }
    const char *slash = strrchr(argv0, '/');
    if (!slash) snprintf(buf, len, "../budgetd");
    else snprintf(buf, len, "%.*s/../budgetd", (int)(slash - argv0), argv0);
    return buf;
}
