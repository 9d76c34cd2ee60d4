/* Regression tests for hardening defects, one test per defect and named for
 * it, at the level of the library (config loader, allocator, verifier,
 * engine). Each one failed before its fix; the command-line side of the
 * same defects is in tests/integration/test_regress16b.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/config.h"

static char err[16384];

/* Loads text as "t.yaml": the config on success, else NULL with err set. */
static bd_config_t *load(const char *text)
{
    bd_config_t *c = NULL;
    if (bd_config_load_string(text, strlen(text), "t.yaml", &c, err, sizeof err) != BD_OK)
        return NULL;
    return c;
}

/* Asserts that text is refused with a message containing want. */
static void refused(const char *text, const char *want)
{
    bd_config_t *c = load(text);
    cr_assert_null(c, "accepted: %.200s", text);
    cr_assert(strstr(err, want), "%.80s: want '%s', got: %s", text, want, err);
}

TestSuite(regress, .timeout = 60);

/* n copies of open, then n of close (close may be NULL), then tail: a
 * malloc'd string. */
static char *nested(size_t n, const char *open, const char *close, const char *tail)
{
    size_t lo = strlen(open), lc = close ? strlen(close) : 0, lt = strlen(tail);
    char *s = malloc(n * (lo + lc) + lt + 1), *p = s;
    for (size_t i = 0; i < n; i++, p += lo) memcpy(p, open, lo);
    for (size_t i = 0; close && i < n; i++, p += lc) memcpy(p, close, lc);
    memcpy(p, tail, lt + 1);
    return s;
}

/* Defect 15: deeply nested YAML was quadratic in libyaml's scanner (40k `[`
 * took 5.4 s, 200k over a minute) before any error. Nesting beyond
 * BD_YAML_MAX_DEPTH is now refused where it happens, at once. */
Test(regress, r16_15_yaml_nesting_depth_capped)
{
    char *s = nested(40000, "[", NULL, "\n");
    refused(s, "t.yaml:1: nesting deeper than 32 levels");
    free(s);
    s = nested(200000, "[", "]", "\n");
    refused(s, "t.yaml:1: nesting deeper than 32 levels");
    free(s);
    /* block mappings count too, and the line is where the limit is passed */
    char *b = malloc(64 * 80), *p = b;
    p += sprintf(p, "defaults:\n  budget: 1\n");
    for (int d = 0; d < 40; d++) p += sprintf(p, "%*sk%d:\n", 2 * d, "", d);
    refused(b, "t.yaml:35: nesting deeper than 32 levels"); /* k31: the 33rd map */
    free(b);
    /* 32 levels are within the limit: the error is about the content */
    s = nested(31, "[", "]", "\n");
    char *t = malloc(strlen(s) + 32);
    sprintf(t, "portfolios: %s", s);
    refused(t, "t.yaml:1: portfolios: expected a mapping, got a list");
    free(s);
    free(t);
}
