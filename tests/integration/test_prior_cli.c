/* test_prior_cli.c: `budgetd prior import` end to end: its fragment, with
 * a budget added, is a config `budgetd check` accepts, and the config
 * loader reads back the priors and lift tests it wrote (per cycle:
 * saturation scaled by cycle / data period, lift tests in cycles). Usage
 * errors exit 2, unreadable input 1. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "budgetd/config.h"
#include "fixtures.h"

#define D "tests/data/prior/"

static char out[16384], err[8192];

Test(prior_cli, fragment_is_a_config)
{
    char dir[256], path[512];
    bd_test_tmpdir(dir, sizeof dir, "prior-cli");
    bd_test_path(path, sizeof path, dir, "frag.yaml");
    int rc = bd_test_sh("%s prior import --curves " D "curves_points.csv --lift " D "lift.csv "
                        "--portfolio shop --cycle 1h --interval 7d -o %s",
                        bd_test_budgetd_bin(), path);
    cr_assert_eq(rc, 0);
    char *frag = bd_test_slurp(path, NULL);
    snprintf(out, sizeof out, "defaults: {budget: 1000}\n%s", frag);
    free(frag);
    bd_config_t *c = bd_test_config(out, err, sizeof err);
    cr_assert_not_null(c, "%s\n%s", err, out);
    const bd_portfolio_cfg_t *p = bd_config_portfolio(c, "shop");
    cr_assert_not_null(p);
    const bd_channel_cfg_t *t = bd_config_channel(p, &p->p, "tiktok"), *s = bd_config_channel(p, &p->p, "search");
    bd_test_near(t->prior.roas, 2.5, 1e-5, "roas");
    bd_test_near(t->prior.saturation, 4000.0 * 3600 / (7 * 86400), 1e-3, "saturation per cycle");
    cr_assert_gt(t->prior.strength, 0);
    cr_assert_eq(t->n_lift, 1);
    cr_assert_eq(t->lift[0].cycles, 7 * 24);
    cr_assert_eq(s->n_lift, 1);
    cr_assert_eq(s->lift[0].cycles, 14 * 24);
    bd_config_free(c);
    bd_test_write_file(path, "%s", out);
    cr_assert_eq(bd_test_sh("%s check -c %s >/dev/null", bd_test_budgetd_bin(), path), 0);
    bd_test_rmdir(dir);
}

Test(prior_cli, refusals)
{
    cr_assert_eq(bd_test_sh("%s prior import 2>/dev/null", bd_test_budgetd_bin()), 2);
    cr_assert_eq(bd_test_sh("%s prior export --curves " D "curves_points.csv 2>/dev/null", bd_test_budgetd_bin()), 2);
    cr_assert_eq(bd_test_sh("%s prior import --robyn-hyper " D "pareto_hyperparameters.csv 2>/dev/null",
                            bd_test_budgetd_bin()), 2);
    cr_assert_eq(bd_test_sh("%s prior import --curves /nonexistent.csv 2>/dev/null", bd_test_budgetd_bin()), 1);
    cr_assert_eq(bd_test_capture(out, sizeof out,
                                 "%s prior import --robyn-hyper " D "pareto_hyperparameters.csv --robyn-agg " D
                                 "pareto_aggregated.csv 2>&1",
                                 bd_test_budgetd_bin()),
                 1);
    cr_assert(strstr(out, "2 solutions: choose one with --solution ID"), "%s", out);
    cr_assert_eq(bd_test_sh("%s prior import --curves " D "curves_points.csv --interval 0 2>/dev/null",
                            bd_test_budgetd_bin()), 2);
}

/* Regression r22_29: a fragment written to a full disk exited 0 (glibc
 * drops a buffer whose write failed; the last fflush and fclose then
 * succeed): now exit 1 and "write: No space left on device", with -o and
 * on stdout. */
Test(prior_cli, r22_29_a_full_disk_under_the_fragment_is_an_error)
{
    if (access("/dev/full", W_OK) != 0) cr_skip_test("no /dev/full");
    char dir[256], e1[512], e2[512];
    bd_test_tmpdir(dir, sizeof dir, "prior-full");
    bd_test_path(e1, sizeof e1, dir, "e1");
    bd_test_path(e2, sizeof e2, dir, "e2");
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("%s prior import --curves " D "curves_points.csv --cycle 1h --interval 7d "
                            "-o /dev/full 2>%s", bin, e1), 1);
    cr_assert_eq(bd_test_sh("%s prior import --curves " D "curves_points.csv --cycle 1h --interval 7d "
                            ">/dev/full 2>%s", bin, e2), 1);
    const char *errs[] = {e1, e2};
    for (int i = 0; i < 2; i++) {
        char *e = bd_test_slurp(errs[i], NULL);
        cr_assert(strstr(e, "budgetd prior: write: No space left on device"), "%s", e);
        free(e);
    }
    bd_test_rmdir(dir);
}
