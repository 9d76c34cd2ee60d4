/* The command-line parser as a user meets it, through the binary: every
 * numeric option of every command refuses a bad value with exit 2 and a
 * message naming the option and the value; unknown options and missing
 * values are named too; `check` validates every -c it is given. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fixtures.h"

static char g_dir[64];
static char *g_out, *g_err; /* the last run's stdout and stderr */

static void setup(void) { bd_test_tmpdir(g_dir, sizeof g_dir, "bdcli"); }

static void teardown(void)
{
    free(g_out);
    free(g_err);
    g_out = g_err = NULL;
    bd_test_rmdir(g_dir);
}

/* Runs `budgetd ARGS` (a shell word list) with stdin from /dev/null;
 * stdout and stderr land in g_out and g_err. Returns the exit status. */
static int budgetd(const char *fmt, ...)
{
    char args[1024], p[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int st = bd_test_sh("%s %s </dev/null >%s/out 2>%s/err", bd_test_budgetd_bin(), args, g_dir, g_dir);
    free(g_out);
    free(g_err);
    g_out = bd_test_slurp(bd_test_path(p, sizeof p, g_dir, "out"), NULL);
    g_err = bd_test_slurp(bd_test_path(p, sizeof p, g_dir, "err"), NULL);
    return st;
}

/* Asserts exit 2 and a message that names both the option and the value. */
static void refused(const char *args, const char *option, const char *value)
{
    cr_assert_eq(budgetd("%s", args), 2, "%s: exit code (stderr: %s)", args, g_err);
    char quoted[128];
    snprintf(quoted, sizeof quoted, "'%s'", value);
    cr_assert(strstr(g_err, option), "%s: message lacks %s: %s", args, option, g_err);
    cr_assert(strstr(g_err, quoted), "%s: message lacks %s: %s", args, quoted, g_err);
    cr_assert_str_eq(g_out, "", "%s wrote output", args);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

/* The bad number is refused before the config is read: the config here
 * does not even exist, and the message must be about the number. */
Test(cli, replay_threads_bad_values_exit_2)
{
    refused("replay -c /nonexistent.yaml --threads abc log", "--threads", "abc");
    refused("replay -c /nonexistent.yaml --threads=0 log", "--threads", "0");
    refused("replay -c /nonexistent.yaml --threads 257 log", "--threads", "257");
    refused("replay -c /nonexistent.yaml --threads 2x log", "--threads", "2x");
    refused("replay -c /nonexistent.yaml -t '' log", "-t", "");
    refused("replay -c /nonexistent.yaml -t 99999999999999999999 log", "-t", "99999999999999999999");
    cr_assert(strstr(g_err, "not an integer in 1..256"), "%s", g_err);
}

Test(cli, run_threads_and_idle_exit_bad_values_exit_2)
{
    refused("run -c /nonexistent.yaml --threads abc", "--threads", "abc");
    refused("run -c /nonexistent.yaml --threads -1", "--threads", "-1");
    refused("run -c /nonexistent.yaml --idle-exit abc", "--idle-exit", "abc");
    refused("run -c /nonexistent.yaml --idle-exit=-5", "--idle-exit", "-5");
    refused("run -c /nonexistent.yaml --idle-exit ' 5'", "--idle-exit", " 5");
}

Test(cli, broker_partitions_bad_values_exit_2)
{
    refused("broker --partitions abc", "--partitions", "abc");
    refused("broker --partitions 0", "--partitions", "0");
    refused("broker --partitions=1025", "--partitions", "1025");
}

Test(cli, approve_cycle_bad_value_exit_2)
{
    refused("approve acme-us 12x --redis redis://127.0.0.1:1", "CYCLE", "12x");
    refused("approve --redis redis://127.0.0.1:1 acme-us -- -3", "CYCLE", "-3");
}

Test(cli, unknown_options_and_missing_values_are_named)
{
    const char *cmds[] = {"replay", "run", "check", "whatif", "broker", "status"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cr_assert_eq(budgetd("%s --bogus", cmds[i]), 2, "%s", cmds[i]);
        cr_assert(strstr(g_err, "unknown option '--bogus'"), "%s: %s", cmds[i], g_err);
    }
    cr_assert_eq(budgetd("replay -c"), 2);
    cr_assert(strstr(g_err, "option '-c' needs a value"), "%s", g_err);
    cr_assert_eq(budgetd("run -c x --idle-exit"), 2);
    cr_assert(strstr(g_err, "option '--idle-exit' needs a value"), "%s", g_err);
    cr_assert_eq(budgetd("run --event-time=1 -c x"), 2);
    cr_assert(strstr(g_err, "option '--event-time' takes no value"), "%s", g_err);
}

/* Options stand anywhere among the positional arguments, "--" ends them,
 * and --help goes to stdout with exit 0. */
Test(cli, options_after_positionals_and_help)
{
    cr_assert_eq(budgetd("replay tests/data/golden/clean.jsonl.gz -o %s/r -c configs/minimal.yaml", g_dir), 0,
                 "%s", g_err);
    cr_assert(strstr(g_err, "replay: "), "%s", g_err);
    cr_assert_eq(budgetd("replay -c configs/minimal.yaml -o %s/r -- -", g_dir), 0, "%s", g_err);
    const char *cmds[] = {"replay", "run", "check", "whatif", "broker", "kill"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cr_assert_eq(budgetd("%s --help", cmds[i]), 0, "%s", cmds[i]);
        cr_assert(strstr(g_out, "usage: budgetd"), "%s: %s", cmds[i], g_out);
    }
}

/* Every -c is validated: one bad file among good ones fails the call, and
 * the good ones are still reported. */
Test(cli, check_validates_every_config)
{
    cr_assert_eq(budgetd("check -c configs/sample.yaml -c configs/minimal.yaml"), 0, "%s", g_err);
    cr_assert(strstr(g_out, "configs/sample.yaml: ok"), "%s", g_out);
    cr_assert(strstr(g_out, "configs/minimal.yaml: ok"), "%s", g_out);
    char bad[128];
    bd_test_write_file(bd_test_path(bad, sizeof bad, g_dir, "bad.yaml"), "cycle: 3600\nmaxstep: 1\n");
    cr_assert_eq(budgetd("check -c configs/sample.yaml -c %s -c configs/minimal.yaml", bad), 2);
    cr_assert(strstr(g_out, "configs/sample.yaml: ok"), "%s", g_out);
    cr_assert(strstr(g_out, "configs/minimal.yaml: ok"), "%s", g_out);
    cr_assert(strstr(g_err, "bad.yaml:2:"), "%s", g_err);
    cr_assert_eq(budgetd("check -c %s -c configs/sample.yaml", bad), 2, "the last -c must not hide the first");
}
