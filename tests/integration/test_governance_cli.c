/* Governance from the command line: the replay CLI as a rehearsal of when
 * and why a log would have tripped the kill-switch. (That every example
 * config loads is checked in tests/unit/config/test_config.c.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>
#include "fixtures.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define C0 (T0 / 3600)  /* its cycle number */

/* `budgetd replay` on a historical log shows when and why the kill-switch
 * would have tripped: the first killed record is the cycle after the
 * runaway spend, with the reason, and every later record stays killed. */
Test(replay, rehearsal_shows_when_and_why)
{
    char dir[64], cfgp[128], logp[128], outp[128];
    bd_test_tmpdir(dir, sizeof dir, "bdgov");
    bd_test_path(cfgp, sizeof cfgp, dir, "cfg.yaml");
    bd_test_path(logp, sizeof logp, dir, "log.jsonl");
    bd_test_path(outp, sizeof outp, dir, "out.jsonl");
    bd_test_write_file(cfgp,
                       "v: 1\ncycle: 1h\nseed: 3\ndefaults:\n  budget: 1000\n  samples: 16\n  mode: assist\n"
                       "  risk: {max_prob: 1}\n"
                       "  kill: {roas_below: 0, overspend_ratio: 1.5, stale_after: 0, max_reject_ratio: 1,\n"
                       "         action: zero}\n"
                       "portfolios:\n  acme:\n    budget: 3000\n    channels:\n"
                       "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n");
    FILE *f = fopen(logp, "w");
    cr_assert_not_null(f);
    for (int k = 0; k < 8; k++) {
        /* assist: the initial 1500/1500 stays in force; cycle 4's search
         * spend is a runaway */
        fprintf(f,
                "{\"event_id\":\"s%d\",\"ts\":%lld,\"portfolio\":\"acme\",\"channel\":\"search\","
                "\"spend\":%d,\"conversions\":10,\"revenue\":%d}\n",
                k, T0 + 3600LL * k + 60, k == 4 ? 9000 : 1500, 3000);
        fprintf(f,
                "{\"event_id\":\"o%d\",\"ts\":%lld,\"portfolio\":\"acme\",\"channel\":\"social\","
                "\"spend\":1500,\"conversions\":5,\"revenue\":1500}\n",
                k, T0 + 3600LL * k + 70);
        fprintf(f, "{\"portfolio\":\"acme\",\"watermark\":%lld}\n", T0 + 3600LL * (k + 1));
    }
    fclose(f);
    int st = bd_test_sh("%s replay -c %s %s -o %s 2>/dev/null", bd_test_budgetd_bin(), cfgp, logp, outp);
    cr_assert_eq(st, 0, "replay: exit status %d", st);
    f = fopen(outp, "r");
    cr_assert_not_null(f);
    char buf[8192];
    int n = 0, first_killed = -1;
    long long first_cycle = 0;
    while (fgets(buf, sizeof(buf), f)) {
        cJSON *j = cJSON_Parse(buf);
        cr_assert_not_null(j);
        const char *status = cJSON_GetObjectItem(j, "status")->valuestring;
        long long cy = (long long)cJSON_GetObjectItem(j, "cycle")->valuedouble;
        if (first_killed < 0 && !strcmp(status, "killed")) {
            first_killed = n;
            first_cycle = cy;
            const cJSON *k = cJSON_GetObjectItem(j, "kill");
            cr_assert_str_eq(cJSON_GetObjectItem(k, "reason")->valuestring,
                             "overspend: channel 'search' reported 9000.00, allocation 1500.00 x 1.50");
            cr_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, "killed");
        } else if (first_killed >= 0) {
            cr_assert_str_eq(status, "killed", "cycle %lld after the trip", cy);
        } else {
            cr_assert_str_eq(status, "active", "cycle %lld before the trip: %s", cy, buf);
        }
        cJSON_Delete(j);
        n++;
    }
    fclose(f);
    cr_assert_eq(n, 9, "initial + 8 closes, got %d", n);
    cr_assert_eq(first_cycle, C0 + 5, "tripped at cycle %lld", first_cycle);
    bd_test_rmdir(dir);
}
