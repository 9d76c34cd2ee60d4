/* `budgetd whatif` end to end as an operator runs it: a --set sweep writes
 * whatif.json in the documented shape (docs/CONTRACT.md §10), the same
 * bytes whatever --threads, a self-contained report.html and a summary.md
 * with the closed loop and the log view; a bad --set is refused with the
 * loader's message before any work; and the tighter-ramp config,
 * which trips the overspend kill when replayed on the log, trips nothing
 * in the closed loop. Few draws: each draw is a closed-loop run per config. */
#include <criterion/criterion.h>
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fixtures.h"

#define LOG "bench/data/sample.jsonl.gz"

static char g_dir[64];

static void setup(void) { bd_test_tmpdir(g_dir, sizeof g_dir, "bdwhatif"); }

static void teardown(void) { bd_test_rmdir(g_dir); }

TestSuite(whatif, .init = setup, .fini = teardown, .timeout = 120);

/* g_dir/sub/name's text (caller frees). */
static char *slurp(const char *sub, const char *name, size_t *len)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s/%s", g_dir, sub, name);
    return bd_test_slurp(p, len);
}

/* An object {median, lo, hi} with lo <= median <= hi. */
static void assert_interval(const cJSON *c, const char *key)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, key);
    cr_assert(cJSON_IsObject(o), "%s missing", key);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "median"), *lo = cJSON_GetObjectItemCaseSensitive(o, "lo"),
                *hi = cJSON_GetObjectItemCaseSensitive(o, "hi");
    cr_assert(cJSON_IsNumber(m) && cJSON_IsNumber(lo) && cJSON_IsNumber(hi), "%s: not numbers", key);
    cr_assert(lo->valuedouble <= m->valuedouble + 1e-9 && m->valuedouble <= hi->valuedouble + 1e-9,
              "%s: %g %g %g", key, lo->valuedouble, m->valuedouble, hi->valuedouble);
}

static double number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", key);
    return v->valuedouble;
}

Test(whatif, sweep_json_shape_and_thread_independence)
{
    const char *bin = bd_test_budgetd_bin();
    const char *cmd = "%s whatif -c configs/sample.yaml --set defaults.max_step=0.1,0.5 " LOG
                      " -o %s/%s --draws 3 --threads %d --no-plots >/dev/null 2>%s/err";
    cr_assert_eq(bd_test_sh(cmd, bin, g_dir, "t1", 1, g_dir), 0);
    cr_assert_eq(bd_test_sh(cmd, bin, g_dir, "t2", 3, g_dir), 0);
    size_t l1, l2;
    char *j1 = slurp("t1", "whatif.json", &l1), *j2 = slurp("t2", "whatif.json", &l2);
    cr_assert(l1 == l2 && memcmp(j1, j2, l1) == 0, "whatif.json differs between 1 and 3 threads");
    cJSON *root = cJSON_Parse(j1);
    cr_assert_not_null(root, "whatif.json is not JSON");
    cr_assert_eq(number(root, "v"), 1);
    const cJSON *cfgs = cJSON_GetObjectItemCaseSensitive(root, "configs");
    cr_assert(cJSON_IsArray(cfgs) && cJSON_GetArraySize(cfgs) == 2);
    const char *want[2] = {"0.1", "0.5"};
    for (int i = 0; i < 2; i++) {
        const cJSON *c = cJSON_GetArrayItem(cfgs, i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        cr_assert(cJSON_IsString(name) && strstr(name->valuestring, "configs/sample.yaml"));
        const cJSON *set = cJSON_GetObjectItemCaseSensitive(c, "settings");
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(set, "defaults.max_step");
        cr_assert(cJSON_IsString(ms) && !strcmp(ms->valuestring, want[i]), "settings of config %d", i);
        const char *keys[] = {"return", "spend", "roas", "regret", "kills"};
        for (size_t k = 0; k < 5; k++) assert_interval(c, keys[k]);
        cr_assert_gt(number(cJSON_GetObjectItemCaseSensitive(c, "return"), "lo"), 0, "no negative returns");
    }
    const cJSON *fit = cJSON_GetObjectItemCaseSensitive(root, "fit");
    cr_assert_eq(number(fit, "portfolios"), 4);
    cr_assert_eq(number(fit, "channels"), 16);
    cr_assert_eq(number(fit, "cycles"), 168);
    cr_assert_eq(number(fit, "draws"), 3);
    cJSON_Delete(root);
    free(j1);
    free(j2);
    char *md1 = slurp("t1", "summary.md", &l1), *md2 = slurp("t2", "summary.md", &l2);
    cr_assert(l1 == l2 && memcmp(md1, md2, l1) == 0, "summary.md differs between 1 and 3 threads");
    cr_assert(strstr(md1, "## What would have happened (closed loop)"), "%s", md1);
    cr_assert(strstr(md1, "(log view)") && strstr(md1, "## Fitted environment"));
    cr_assert(strstr(md1, "A = `configs/sample.yaml` (defaults.max_step=0.1), B = `configs/sample.yaml` "
                          "(defaults.max_step=0.5)"), "%s", md1);
    free(md1);
    free(md2);
}

/* report.html opens from disk: every image inline, nothing fetched. */
Test(whatif, report_is_self_contained)
{
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("%s whatif -c configs/sample.yaml -c configs/mode-delegate.yaml " LOG
                            " -o %s/r --draws 2 >/dev/null 2>%s/err", bin, g_dir, g_dir), 0);
    char *h = slurp("r", "report.html", NULL);
    cr_assert(strstr(h, "<img") && strstr(h, "src=\"data:image/png;base64,"), "no inline figure (gnuplot "
              "is installed by setup.sh)");
    for (const char *p = strstr(h, "src="); p; p = strstr(p + 4, "src="))
        cr_assert(!strncmp(p, "src=\"data:", 10), "an image is not inline: %.40s", p);
    cr_assert(!strstr(h, "href=\"http") && !strstr(h, "<script"), "the report fetches something");
    cr_assert(strstr(h, "<table>") && strstr(h, "closed loop"));
    free(h);
    cr_assert_eq(bd_test_sh("test -s %s/r/returns.png && test -s %s/r/frontier.png && test -s %s/r/acme-us.sim.png",
                            g_dir, g_dir, g_dir), 0);
}

/* A bad --set value or path exits 2 with the loader's message naming the
 * --set, before any output. */
Test(whatif, bad_set_is_refused_before_any_work)
{
    const char *bin = bd_test_budgetd_bin();
    struct {
        const char *set, *msg;
    } bad[] = {
        {"defaults.max_step=0.1,2x", "--set defaults.max_step=2x: defaults.max_step: expected a number, got '2x'"},
        {"defaults.max_stpe=0.1", "--set defaults.max_stpe=0.1: "},
        {"defaults.risk.max_prob=0.5,1.5", "--set defaults.risk.max_prob=1.5: defaults.risk.max_prob must be in (0, 1]"},
        {"portfolios.acme-us.budget=100", "--set portfolios.acme-us.budget=100: portfolio 'acme-us': channel mins"},
        {"nopath", "'nopath' is not PATH=VALUE"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(bd_test_sh("%s whatif -c configs/sample.yaml -c configs/sample.yaml --set %s " LOG
                                " -o %s/out%zu >/dev/null 2>%s/err", bin, bad[i].set, g_dir, i, g_dir), 2, "%s",
                     bad[i].set);
        char *err = slurp(".", "err", NULL);
        cr_assert(strstr(err, bad[i].msg), "%s: %s", bad[i].set, err);
        free(err);
        char p[160];
        snprintf(p, sizeof p, "%s/out%zu", g_dir, i);
        cr_assert_neq(access(p, F_OK), 0, "%s: the output directory was made", bad[i].set);
    }
    /* one config in all: nothing to compare */
    cr_assert_eq(bd_test_sh("%s whatif -c configs/sample.yaml --set defaults.max_step=0.1 " LOG
                            " -o %s/one 2>%s/err", bin, g_dir, g_dir), 2);
}

/* The case: a tighter ramp with a stricter overspend kill, on a
 * log recorded under another config. Replayed on the log it trips the
 * overspend kill (the log view says so); in closed loop, where it spends
 * what it decided, it never does. */
Test(whatif, tighter_ramp_no_overspend_kill_in_the_closed_loop)
{
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("sed -e 's/  max_step: 0.25/  max_step: 0.05/' -e 's/overspend_ratio: 2.0/overspend_ratio: 1.2/' "
                            "configs/sample.yaml > %s/b.yaml", g_dir), 0);
    cr_assert_eq(bd_test_sh("%s whatif -c configs/sample.yaml -c %s/b.yaml " LOG
                            " -o %s/k --draws 3 --threads 2 --no-plots >/dev/null 2>%s/err", bin, g_dir, g_dir, g_dir),
                 0);
    char *md = slurp("k", "summary.md", NULL);
    const char *view = strstr(md, "(log view)");
    cr_assert(view && strstr(view, "overspend"), "the log view of B shows no overspend trip: %s", md);
    free(md);
    char *j = slurp("k", "whatif.json", NULL);
    cJSON *root = cJSON_Parse(j);
    const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "configs"), 1);
    cr_assert_eq(number(cJSON_GetObjectItemCaseSensitive(b, "kills"), "hi"), 0, "B trips a kill in closed loop");
    cr_assert_gt(number(cJSON_GetObjectItemCaseSensitive(b, "return"), "median"), 0);
    cJSON_Delete(root);
    free(j);
}
