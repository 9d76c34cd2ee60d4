/* test_arms_ops.c: `budgetd status` and `budgetd pin` with nested arms (v2,
 * docs/CONTRACT.md §7.3, §11.4), the binary against a real redis-server:
 * status shows each arm's amount under its channel (text) and as "arms"
 * (--json), the totals stay the channels'; an arm is pinned by its name C:A
 * or C/A and checked against the amounts its channel may get, not as a
 * channel of the portfolio; a channel with arms is pinned (or cleared) only
 * when its arms can split the amount; a name under a channel with arms that
 * is none of its arms is refused; an arm's data fault is resumed by the
 * arm's name. Regressions r22_01..r22_06, r22_11 (issue 22). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/redis.h"
#include "fixtures.h"
#include "redis_server.h"

static bd_test_redis_t *srv;
static redisContext *rc;
static char dir[256], cfg[512], out[16384];

/* shop: search [600, inf) with arms brand [0, 800] and generic, social min
 * 300 (budget 1000: an arm's pin never counts as a channel of shop).
 * shop2: search [100, 500] with arms brand [0, 800] and generic. */
static void up(void)
{
    rc = bd_test_redis_up(&srv);
    bd_test_tmpdir(dir, sizeof dir, "arms-ops");
    bd_test_path(cfg, sizeof cfg, dir, "c.yaml");
    bd_test_write_file(cfg,
                       "v: 1\ncycle: 1h\nredis: {url: '%s'}\nportfolios:\n"
                       "  shop:\n    budget: 1000\n    channels:\n"
                       "      search: {min: 600, arms: {brand: {max: 800}, generic: {}}}\n"
                       "      social: {min: 300}\n"
                       "  shop2:\n    budget: 1000\n    channels:\n"
                       "      search: {min: 100, max: 500, arms: {brand: {max: 800}, generic: {}}}\n"
                       "      social: {}\n",
                       srv->url);
}

static void down(void)
{
    bd_test_rmdir(dir);
    bd_test_redis_down(&srv, &rc);
}

TestSuite(arms_ops, .init = up, .fini = down, .timeout = 60);

/* budgetd ARGS -c cfg, stdout and stderr into out; the exit code. */
static int bd(const char *args)
{
    return bd_test_capture(out, sizeof out, "%s %s -c %s 2>&1", bd_test_budgetd_bin(), args, cfg);
}

/* A decision of shop for cycle 7 through the engine's write script: search
 * 700 (brand 450, generic 250), social 300; with a proposal when propose. */
static void decide_faults(int propose, const char *faults)
{
    static const bd_redis_field_t ch[] = {{"search", 700}, {"search/brand", 450}, {"search/generic", 250},
                                          {"social", 300}};
    static const bd_redis_field_t pr[] = {{"search", 650}, {"search/brand", 400}, {"search/generic", 250},
                                          {"social", 350}};
    bd_redis_t *r = NULL;
    char err[512];
    cr_assert_eq(bd_redis_open(srv->url, NULL, NULL, 0, &r, err, sizeof err), BD_OK, "%s", err);
    bd_redis_decision_t d = {.portfolio = "shop", .cycle = 7, .mode = "collaborate", .status = "active",
                             .decided_at = 1700000000, .apply = 1, .ch = ch, .n_ch = 4,
                             .propose = propose, .prop_ch = pr, .n_prop_ch = 4,
                             .record_json = "{\"v\":1,\"portfolio\":\"shop\",\"cycle\":7}", .faults = faults};
    int res = -1;
    cr_assert_eq(bd_redis_write_batch(r, &d, 1, &res, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(res, BD_OK);
    bd_redis_close(r);
}

static void decide(int propose) { decide_faults(propose, NULL); }

/* r22_01: the status block lists each arm under its channel, alloc beside
 * proposal; the total is the channels' (arms are inside them). */
Test(arms_ops, r22_01_status_shows_arms_under_their_channel)
{
    decide(1);
    cr_assert_eq(bd("status shop"), 0, "%s", out);
    const char *rows = strstr(out, "  channel ");
    cr_assert_not_null(rows, "%s", out);
    char want[512];
    snprintf(want, sizeof want,
             "  %-24s %14s %14s\n  %-24s %14s %14s\n  %-24s %14s %14s\n  %-24s %14s %14s\n"
             "  %-24s %14s %14s\n  %-24s %14s %14s\n",
             "channel", "alloc", "proposal", "search", "700.00", "650.00", "  search/brand", "450.00", "400.00",
             "  search/generic", "250.00", "250.00", "social", "300.00", "350.00", "total", "1000.00", "1000.00");
    cr_assert_str_eq(rows, want);
    cr_assert_eq(bd("status"), 0, "%s", out);
    cr_assert(strstr(out, "1000.00"), "summary total counts channels only: %s", out);
}

/* r22_02: status --json carries "arms":{C:{A:spend}} in alloc and proposal. */
Test(arms_ops, r22_02_status_json_has_arms)
{
    decide(1);
    cr_assert_eq(bd("status shop --json"), 0, "%s", out);
    const char *al = strstr(out, "\"alloc\"");
    cr_assert_not_null(al, "%s", out);
    const char *arms = strstr(al, "\"arms\":");
    cr_assert(arms && arms < strstr(al, "\"proposal\""), "%s", out);
    cr_assert(strstr(arms, "\"search\":\t{") && strstr(arms, "\"brand\":\t450") &&
                  strstr(arms, "\"generic\":\t250"),
              "%s", out);
    cr_assert_not_null(strstr(al, "\"total\":\t1000"), "%s", out);
    cr_assert_not_null(strstr(strstr(al, "\"proposal\""), "\"brand\":\t400"), "%s", out);
}

/* r22_03: an arm's pin is checked within its channel, not as one more
 * channel of the portfolio (200 + the mins 600 + 300 is not over 1000: it
 * is inside search's 600); C/A is the same arm, stored as C:A. */
Test(arms_ops, r22_03_an_arm_pin_is_checked_within_its_channel)
{
    cr_assert_eq(bd("pin shop search:brand 200"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "pinned shop arm search:brand at 200.00"), "%s", out);
    cr_assert_str_eq(bd_test_redis_hget(rc, "budgetd:{shop}:pin", "search:brand"), "200.00");
    cr_assert_eq(bd("pin shop search/brand 250"), 0, "%s", out);
    cr_assert_str_eq(bd_test_redis_hget(rc, "budgetd:{shop}:pin", "search:brand"), "250.00");
    /* both arms pinned: 250 + 100 cannot be every amount of search's */
    cr_assert_eq(bd("pin shop search/generic 100"), 1, "%s", out);
    cr_assert_null(bd_test_redis_hget(rc, "budgetd:{shop}:pin", "search:generic"));
}

/* r22_04: an arm pinned above an amount its channel may get (search may get
 * 100) would hold every decision: refused, nothing written. */
Test(arms_ops, r22_04_an_arm_pin_beyond_its_channel_is_refused)
{
    cr_assert_eq(bd("pin shop2 search:brand 450"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "refused: pinning arm 'search:brand' of shop2 at 450.00 is infeasible with "
                                   "the amounts its channel may get: channel 'search': infeasible arm pins at "
                                   "its min 100: pins 450.00 plus the other channels' mins 0.00 exceed the "
                                   "total 100.00"),
                       "%s", out);
    cr_assert_null(bd_test_redis_hget(rc, "budgetd:{shop2}:pin", "search:brand"));
}

/* r22_05: a channel with arms is pinned, or its pin cleared, only while its
 * arms can split the amount it then gets with their pins in force. */
Test(arms_ops, r22_05_a_channel_pin_must_leave_its_arms_a_split)
{
    cr_assert_eq(bd("pin shop2 search 400"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "its arms split the 400.00 among them"), "%s", out);
    cr_assert_eq(bd("pin shop2 search:brand 300"), 0, "at search's pin 400: %s", out);
    cr_assert_eq(bd("pin shop2 search 200"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "leaves an amount its arms cannot split: channel 'search': infeasible arm "
                                   "pins at its min 200"),
                       "%s", out);
    cr_assert_str_eq(bd_test_redis_hget(rc, "budgetd:{shop2}:pin", "search"), "400.00");
    cr_assert_eq(bd("pin shop2 search --clear"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "without its run-time pin, channel 'search' of shop2 falls back to no pin "
                                   "and its arms cannot split every amount"),
                       "%s", out);
    cr_assert_str_eq(bd_test_redis_hget(rc, "budgetd:{shop2}:pin", "search"), "400.00");
    cr_assert_eq(bd("pin shop2 search/brand --clear"), 0, "%s", out);
    cr_assert_eq(bd("pin shop2 search --clear"), 0, "%s", out);
    cr_assert_null(bd_test_redis_hget(rc, "budgetd:{shop2}:pin", "search"));
}

/* r22_06: a name under a channel with arms that is none of them is refused
 * (it would pin a channel of its own); so is C/A naming no arm. */
Test(arms_ops, r22_06_a_name_that_is_no_arm_is_refused)
{
    cr_assert_eq(bd("pin shop search:brnad 100"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "channel 'search' of shop has no arm 'brnad' in the config"), "%s", out);
    cr_assert_eq(bd("pin shop social/x 100"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "channel 'social' of shop has no arm 'x' in the config"), "%s", out);
    cr_assert_eq(bd("pin shop nope/x 100"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "'nope/x' names no arm of a listed channel of shop"), "%s", out);
    cr_assert_null(bd_test_redis_hget(rc, "budgetd:{shop}:pin", "search:brnad"));
}

/* r22_11: an arm's data fault ("search:brand:tracking" in `faults`) is the
 * arm's, resumed by its name; its channel has none (the kind follows the
 * last ':'). */
Test(arms_ops, r22_11_resume_names_the_arm_whose_fault_it_is)
{
    decide_faults(0, "search:brand:tracking");
    cr_assert_eq(bd("resume shop --channel search"), 1, "%s", out);
    cr_assert_not_null(strstr(out, "channel 'search' of shop has no data fault"), "%s", out);
    cr_assert_eq(bd("resume shop --channel search:brand"), 0, "%s", out);
    cr_assert_not_null(strstr(out, "clears its tracking fault"), "%s", out);
    cr_assert_not_null(bd_test_redis_hget(rc, "budgetd:{shop}:fault_clear", "search:brand"));
}
