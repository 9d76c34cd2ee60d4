/* test_metrics_text.c: the metric table and its text exposition
 * (metrics.h, metrics_text.c) without a server: Prometheus naming on every
 * row, one HELP and TYPE per family, cumulative histogram buckets, labels
 * bounded to reasons and (when asked) a capped list of portfolios. The
 * same text from a live daemon goes through `promtool check metrics` in
 * tests/integration/test_opskit.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/metrics.h"
#include "fixtures.h"

/* The value of the sample line "name value" (name with its labels) in
 * text; fails the test when there is none. */
static double sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (!strncmp(l, name, n) && l[n] == ' ') return strtod(l + n + 1, NULL);
    }
    cr_assert_fail("no sample %s in:\n%s", name, text);
    return 0;
}

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
    int k = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) k++;
    return k;
}

/* Every row: the budgetd_ prefix, lower-case snake case, counters in
 * _total and only counters, no two rows with one name. */
Test(metrics_text, every_family_is_named_by_the_conventions)
{
    size_t n = 0;
    bd_engine_stats_t st = {0};
    bd_metrics_portfolio_t pf = {.name = "p"};
    bd_metrics_daemon_t d = {.pf = &pf, .n_pf = 1};
    char *text = bd_metrics_render(&st, &d, NULL);
    for (const char *name; (name = bd_metrics_family(n)); n++) {
        cr_assert_eq(strncmp(name, "budgetd_", 8), 0, "%s", name);
        cr_assert_eq(strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(name), "%s", name);
        for (size_t k = 0; k < n; k++) cr_assert_str_neq(name, bd_metrics_family(k));
        char want[200];
        snprintf(want, sizeof want, "# HELP %s ", name);
        cr_assert_eq(count(text, want), 1, "HELP of %s", name);
        snprintf(want, sizeof want, "# TYPE %s ", name);
        const char *type = strstr(text, want);
        cr_assert_not_null(type, "TYPE of %s", name);
        type += strlen(want);
        size_t len = strlen(name);
        bool total = len > 6 && !strcmp(name + len - 6, "_total");
        cr_assert_eq(!strncmp(type, "counter\n", 8), total, "%s: counters and only counters end in _total", name);
        if (!strncmp(type, "histogram\n", 10))
            cr_assert(len > 8 && !strcmp(name + len - 8, "_seconds"), "%s: a latency in seconds", name);
    }
    cr_assert_gt(n, 20);
    free(text);
}

/* Values land in their families: engine counters, daemon counters, the
 * reject reasons as labels. */
Test(metrics_text, values_come_from_their_fields)
{
    bd_engine_stats_t st = {.accepted = 11, .duplicates = 2, .late = 3, .decisions = 5, .watermarks = 7};
    st.rejected[BD_REJ_BAD_JSON] = 4;
    bd_metrics_daemon_t d = {.applied = 21, .dead_lettered = 4, .kill_trips = 1, .cycle_seconds = 3600,
                             .redis_write_failures = 9, .held = 2, .last_decision_at = 1767225600};
    char *text = bd_metrics_render(&st, &d, NULL);
    cr_assert_eq(sample(text, "budgetd_events_accepted_total"), 11);
    cr_assert_eq(sample(text, "budgetd_events_duplicate_total"), 2);
    cr_assert_eq(sample(text, "budgetd_watermarks_total"), 7);
    cr_assert_eq(sample(text, "budgetd_decisions_total"), 5);
    cr_assert_eq(sample(text, "budgetd_messages_applied_total"), 21);
    cr_assert_eq(sample(text, "budgetd_kill_trips_total"), 1);
    cr_assert_eq(sample(text, "budgetd_redis_write_failures_total"), 9);
    cr_assert_eq(sample(text, "budgetd_portfolios_held"), 2);
    cr_assert_eq(sample(text, "budgetd_cycle_length_seconds"), 3600);
    cr_assert_eq(sample(text, "budgetd_last_decision_timestamp_seconds"), 1767225600);
    char name[128];
    snprintf(name, sizeof name, "budgetd_events_rejected_total{reason=\"%s\"}", bd_reject_name(BD_REJ_BAD_JSON));
    cr_assert_eq(sample(text, name), 4);
    /* one series per reason, none for "no rejection" */
    cr_assert_eq(count(text, "budgetd_events_rejected_total{"), BD_REJ__COUNT - 1);
    free(text);
}

/* Buckets are cumulative with le inclusive, +Inf equals the count, and the
 * sum adds the observations; an empty or absent histogram exports zeros. */
Test(metrics_text, histograms_are_cumulative)
{
    static const double le[] = {0.1, 1, 10};
    bd_metrics_hist_t h;
    bd_metrics_hist_init(&h, le, 3);
    bd_metrics_observe(&h, 0.1);  /* on the bound: in le=0.1 */
    bd_metrics_observe(&h, 0.5);
    bd_metrics_observe(&h, -3);   /* a clock step: counted as 0 */
    bd_metrics_observe(&h, 100);  /* only in +Inf */
    bd_engine_stats_t st = {0};
    bd_metrics_daemon_t d = {.cycle_latency = &h};
    char *text = bd_metrics_render(&st, &d, NULL);
    cr_assert_eq(sample(text, "budgetd_cycle_latency_seconds_bucket{le=\"0.1\"}"), 2);
    cr_assert_eq(sample(text, "budgetd_cycle_latency_seconds_bucket{le=\"1\"}"), 3);
    cr_assert_eq(sample(text, "budgetd_cycle_latency_seconds_bucket{le=\"10\"}"), 3);
    cr_assert_eq(sample(text, "budgetd_cycle_latency_seconds_bucket{le=\"+Inf\"}"), 4);
    cr_assert_eq(sample(text, "budgetd_cycle_latency_seconds_count"), 4);
    bd_test_near(sample(text, "budgetd_cycle_latency_seconds_sum"), 100.6, 1e-9, "sum");
    cr_assert_eq(sample(text, "budgetd_event_to_decision_seconds_bucket{le=\"+Inf\"}"), 0);
    cr_assert_eq(sample(text, "budgetd_event_to_decision_seconds_count"), 0);
    free(text);
}

/* The bounds of run's histograms ascend and fit the bucket array. */
Test(metrics_text, run_bucket_bounds_ascend)
{
    const double *les[2] = {bd_metrics_cycle_latency_le, bd_metrics_event_latency_le};
    size_t ns[2] = {bd_metrics_cycle_latency_n, bd_metrics_event_latency_n};
    for (int k = 0; k < 2; k++) {
        cr_assert_leq(ns[k], BD_METRICS_BUCKETS_MAX);
        for (size_t i = 1; i < ns[k]; i++) cr_assert_gt(les[k][i], les[k][i - 1]);
    }
}

/* Per-portfolio families exist only with entries; with them, one series
 * per listed portfolio, and the count of those left out. */
Test(metrics_text, per_portfolio_series_only_when_listed)
{
    bd_engine_stats_t st = {0};
    bd_metrics_daemon_t d = {0};
    char *text = bd_metrics_render(&st, &d, NULL);
    cr_assert_null(strstr(text, "portfolio=\""), "%s", text);
    cr_assert_null(strstr(text, "budgetd_portfolio_killed"));
    free(text);
    bd_metrics_portfolio_t pf[2] = {{.name = "acme-us", .killed = 1, .alloc_cycle = 9},
                                    {.name = "we\"ird\\", .proposal = 1}};
    d = (bd_metrics_daemon_t){.pf = pf, .n_pf = 2, .pf_omitted = 5};
    text = bd_metrics_render(&st, &d, NULL);
    cr_assert_eq(sample(text, "budgetd_portfolio_killed{portfolio=\"acme-us\"}"), 1);
    cr_assert_eq(sample(text, "budgetd_portfolio_allocation_cycle{portfolio=\"acme-us\"}"), 9);
    cr_assert_eq(sample(text, "budgetd_portfolio_proposal_pending{portfolio=\"we\\\"ird\\\\\"}"), 1);
    cr_assert_eq(sample(text, "budgetd_portfolio_series_omitted"), 5);
    cr_assert_eq(count(text, "budgetd_portfolio_killed{"), 2);
    free(text);
}
