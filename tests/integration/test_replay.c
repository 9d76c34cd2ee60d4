/* `budgetd replay` and `budgetd check` as a user runs them: exit codes,
 * byte-identical output whatever the thread count, (cycle, portfolio)
 * order, garbage-only logs, gzip and stdin input, and the committed sample
 * log being exactly what its generator writes. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fixtures.h"

#define LOG "bench/data/sample.jsonl.gz"

static char g_dir[64];

static void setup(void) { bd_test_tmpdir(g_dir, sizeof g_dir, "bdreplay"); }

static void teardown(void) { bd_test_rmdir(g_dir); }

/* g_dir/name, in one of four rotating buffers. */
static const char *in_dir(const char *name)
{
    static char buf[4][160];
    static int slot;
    char *b = buf[slot++ % 4];
    return bd_test_path(b, sizeof buf[0], g_dir, name);
}

/* The whole file g_dir/name (caller frees); *len when not NULL. */
static char *slurp(const char *name, size_t *len) { return bd_test_slurp(in_dir(name), len); }

TestSuite(replay, .init = setup, .fini = teardown, .timeout = 120);

Test(replay, byte_identical_whatever_the_thread_count)
{
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("%s replay -c configs/sample.yaml " LOG " -o %s/a 2>/dev/null", bin, g_dir), 0);
    cr_assert_eq(bd_test_sh("%s replay -c configs/sample.yaml " LOG " -o %s/b --threads 2 2>/dev/null", bin, g_dir),
                 0);
    cr_assert_eq(bd_test_sh("zcat " LOG " | %s replay -c configs/sample.yaml - --threads 4 -o - > %s/c 2>/dev/null",
                            bin, g_dir),
                 0);
    size_t la, lb, lc;
    char *a = slurp("a", &la);
    char *b = slurp("b", &lb);
    char *c = slurp("c", &lc);
    cr_assert_gt(la, 10000);
    cr_assert(la == lb && memcmp(a, b, la) == 0, "threads 1 and 2 differ");
    cr_assert(la == lc && memcmp(a, c, la) == 0, "gzip file and plain stdin (-o - to stdout) differ");
    cr_assert_neq(access("-", F_OK), 0, "-o - wrote a file named '-'");
    /* (cycle, portfolio) order */
    long long prev_cycle = -1;
    char prev_pf[80] = "";
    int n = 0;
    for (char *line = strtok(a, "\n"); line; line = strtok(NULL, "\n"), n++) {
        long long cycle;
        char pf[80];
        const char *pp = strstr(line, "\"portfolio\":\"");
        const char *cp = strstr(line, "\"cycle\":");
        cr_assert(pp && cp);
        cr_assert_eq(sscanf(pp + 13, "%79[^\"]", pf), 1);
        cr_assert_eq(sscanf(cp + 8, "%lld", &cycle), 1);
        cr_assert(cycle > prev_cycle || (cycle == prev_cycle && strcmp(pf, prev_pf) > 0),
                  "record %d out of order", n);
        prev_cycle = cycle;
        snprintf(prev_pf, sizeof(prev_pf), "%s", pf);
    }
    cr_assert_gt(n, 600);
    free(a);
    free(b);
    free(c);
}

/* Records past the spill threshold go to sorted temporary runs merged at
 * the end (a year of decisions does not fit in memory): with a threshold
 * of a few records the output is the same bytes, at 1 and 2 threads, and
 * --progress ends with its summary line. */
Test(replay, spilled_runs_merge_to_the_same_bytes)
{
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("%s replay -c configs/sample.yaml " LOG " -o %s/a 2>/dev/null", bin, g_dir), 0);
    cr_assert_eq(bd_test_sh("TMPDIR=%s BUDGETD_REPLAY_SPILL=5000 %s replay -c configs/sample.yaml " LOG
                            " -o %s/b --progress 1 2>%s/err",
                            g_dir, bin, g_dir, g_dir),
                 0);
    cr_assert_eq(bd_test_sh("TMPDIR=%s BUDGETD_REPLAY_SPILL=1 %s replay -c configs/sample.yaml " LOG
                            " -o %s/c --threads 2 2>/dev/null",
                            g_dir, bin, g_dir),
                 0);
    size_t la, lb, lc, le;
    char *a = slurp("a", &la);
    char *b = slurp("b", &lb);
    char *c = slurp("c", &lc);
    char *e = slurp("err", &le);
    cr_assert_gt(la, 100000, "the sample's records are well over the 5000-byte threshold");
    cr_assert(la == lb && memcmp(a, b, la) == 0, "spilled every 5000 bytes: output differs");
    cr_assert(la == lc && memcmp(a, c, la) == 0, "spilled every record, 2 threads: output differs");
    cr_assert(strstr(e, "replay: done: ") && strstr(e, "events/s") && strstr(e, "peak RSS"),
              "--progress summary missing: %s", e);
    /* the runs were unlinked: only the three outputs and err remain */
    cr_assert_eq(bd_test_sh("test $(ls %s | wc -l) -eq 4", g_dir), 0);
    free(a);
    free(b);
    free(c);
    free(e);
}

/* Regression r22_21: a spilled run that read back short (its temporary
 * file cut by anything: a full or failing disk, a cleaner truncating
 * files in $TMPDIR) lost its records without a word: a header read at the
 * cut was taken as the run's end, and a short record was reported but the
 * exit was still 0 with decisions missing from the output. The log is fed
 * through a fifo; once runs exist (a run per record) every one is cut to
 * zero through /proc, then the rest of the log follows: the exit is 1 and
 * stderr says the output is incomplete. */
Test(replay, r22_21_a_cut_spill_file_is_an_error)
{
    if (access("/proc/self/fd", F_OK) != 0) cr_skip_test("no /proc");
    bd_test_write_file(in_dir("cut.sh"), "%s",
                       "set -u\n"
                       "D=$1; B=$2\n"
                       "mkfifo $D/fifo\n"
                       "TMPDIR=$D BUDGETD_REPLAY_SPILL=1 $B replay -c configs/sample.yaml $D/fifo -o $D/out "
                       "2>$D/err & pid=$!\n"
                       "exec 3>$D/fifo\n"
                       "zcat " LOG " | head -n 3000 >&3\n"
                       "i=0; until ls -l /proc/$pid/fd | grep -q budgetd-replay || [ $i -ge 100 ]; do "
                       "sleep 0.1; i=$((i+1)); done\n"
                       "sleep 0.5; n=0\n"
                       "for f in /proc/$pid/fd/*; do "
                       "if readlink $f | grep -q budgetd-replay; then : > $f; n=$((n+1)); fi; done\n"
                       "echo $n > $D/cut\n"
                       "zcat " LOG " | tail -n +3001 >&3\n"
                       "exec 3>&-\n"
                       "wait $pid; echo $? > $D/rc\n");
    cr_assert_eq(bd_test_sh("sh %s %s %s", in_dir("cut.sh"), g_dir, bd_test_budgetd_bin()), 0);
    char *cut = slurp("cut", NULL), *rc = slurp("rc", NULL), *err = slurp("err", NULL);
    cr_assert_gt(atoi(cut), 0, "no run was cut (err: %s)", err);
    cr_assert_eq(atoi(rc), 1, "decisions lost with exit %s: %s", rc, err);
    cr_assert(strstr(err, "temporary file of spilled decisions: ends before its last"), "%s", err);
    cr_assert(strstr(err, "the output is incomplete"), "%s", err);
    free(cut);
    free(rc);
    free(err);
}

/* Regression r22_22: an output that could not be written (a full disk:
 * /dev/full) exited 0 with nothing written: glibc drops a buffer whose
 * write failed, so the last fflush and fclose succeeded. Now exit 1 and
 * "write: No space left on device", with -o FILE and on stdout, with and
 * without spilled runs. */
Test(replay, r22_22_a_full_disk_under_the_output_is_an_error)
{
    if (access("/dev/full", W_OK) != 0) cr_skip_test("no /dev/full");
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("%s replay -c configs/sample.yaml " LOG " -o /dev/full 2>%s/e1", bin, g_dir), 1);
    cr_assert_eq(bd_test_sh("TMPDIR=%s BUDGETD_REPLAY_SPILL=5000 %s replay -c configs/sample.yaml " LOG
                            " >/dev/full 2>%s/e2",
                            g_dir, bin, g_dir),
                 1);
    const char *errs[] = {"e1", "e2"};
    for (int i = 0; i < 2; i++) {
        char *e = slurp(errs[i], NULL);
        cr_assert(strstr(e, "budgetd replay: write: No space left on device"), "%s", e);
        free(e);
    }
}

/* Regression r22_28: `-o` naming an input (the log, through a symlink,
 * or the config) truncated it before the replay read it: exit 0, no
 * output, the user's log gone. Now exit 2 before anything is opened for
 * writing, and the file is untouched. */
Test(replay, r22_28_an_output_that_is_an_input_is_refused)
{
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("zcat " LOG " | head -2000 > %s/in.jsonl && ln -sf %s/in.jsonl %s/link.jsonl "
                            "&& cp configs/sample.yaml %s/c.yaml", g_dir, g_dir, g_dir, g_dir), 0);
    size_t before;
    char *orig = slurp("in.jsonl", &before);
    cr_assert_gt(before, 0);
    cr_assert_eq(bd_test_sh("%s replay -c %s/c.yaml %s/in.jsonl -o %s/link.jsonl 2>%s/e1", bin, g_dir, g_dir,
                            g_dir, g_dir), 2);
    cr_assert_eq(bd_test_sh("%s replay -c %s/c.yaml %s/in.jsonl -o %s/c.yaml 2>%s/e2", bin, g_dir, g_dir,
                            g_dir, g_dir), 2);
    size_t after;
    char *now = slurp("in.jsonl", &after);
    cr_assert(after == before && memcmp(now, orig, before) == 0, "the log changed");
    char *e1 = slurp("e1", NULL), *e2 = slurp("e2", NULL), *cfg = slurp("c.yaml", NULL);
    cr_assert(strstr(e1, "link.jsonl is ") && strstr(e1, "in.jsonl itself"), "%s", e1);
    cr_assert(strstr(e2, "c.yaml itself"), "%s", e2);
    cr_assert(strstr(cfg, "portfolios:"), "the config was emptied");
    /* a distinct output still works */
    cr_assert_eq(bd_test_sh("%s replay -c %s/c.yaml %s/in.jsonl -o %s/out.jsonl 2>/dev/null", bin, g_dir, g_dir,
                            g_dir), 0);
    free(orig), free(now), free(e1), free(e2), free(cfg);
}

Test(replay, garbage_only_log_exits_0_and_counts_every_line)
{
    bd_test_write_file(in_dir("g.jsonl"), "%s",
                       "not json\n{\"ts\":1}\n[1,2]\n{\"portfolio\":\"acme-us\",\"ts\":1767225600,"
                       "\"channel\":\"x\",\"spend\":-1,\"conversions\":0}\n\xff\xfe\n");
    cr_assert_eq(bd_test_sh("%s replay -c configs/sample.yaml %s/g.jsonl -o %s/out 2>%s/err", bd_test_budgetd_bin(),
                            g_dir, g_dir, g_dir),
                 0);
    size_t len;
    char *out = slurp("out", &len);
    cr_assert_eq(len, 0, "no decisions from garbage");
    char *err = slurp("err", NULL);
    cr_assert(strstr(err, "5 lines, 0 accepted"), "%s", err);
    cr_assert(strstr(err, "5 rejected"), "%s", err);
    cr_assert(strstr(err, "bad_json 3"), "%s", err);
    cr_assert(strstr(err, "negative_value 1"), "%s", err);
    free(out);
    free(err);
}

/* Regression r22_05 (r22_01 as the user sees it): in a replay whose only
 * lines for "ghost" (unlisted; configs/sample.yaml's defaults.budget would
 * admit it) are rejected, ghost gets no record and the summary counts each
 * line under its reason; acme-us' records count none of them. */
Test(replay, r22_05_rejected_lines_of_an_unlisted_portfolio_decide_nothing)
{
    bd_test_write_file(in_dir("ghost.jsonl"),
                       "{\"event_id\":\"a\",\"ts\":1767225610,\"portfolio\":\"acme-us\",\"channel\":\"search\","
                       "\"spend\":10,\"conversions\":1}\n"
                       "{\"ts\":1767225620,\"portfolio\":\"ghost\",\"channel\":\"x\",\"spend\":-1,\"conversions\":0}\n"
                       "{\"ts\":1767225620,\"portfolio\":\"ghost\",\"spend\":1,\"conversions\":0}\n"
                       "{\"ts\":1767399999,\"portfolio\":\"ghost\",\"channel\":\"x\",\"spend\":1,\"conversions\":0}\n"
                       "{\"portfolio\":\"*\",\"watermark\":1767229200}\n");
    cr_assert_eq(bd_test_sh("%s replay -c configs/sample.yaml %s/ghost.jsonl -o %s/out 2>%s/err",
                            bd_test_budgetd_bin(), g_dir, g_dir, g_dir),
                 0);
    char *out = slurp("out", NULL), *err = slurp("err", NULL);
    cr_assert_null(strstr(out, "ghost"), "%s", out);
    cr_assert(bd_test_has_line(err, "replay: 5 lines, 1 accepted, 0 duplicates, 0 late, 1 watermarks, "
                                    "2 decisions, 3 rejected (missing_field 1, negative_value 1, ts_out_of_range 1)"),
              "%s", err);
    cr_assert(strstr(out, "\"events\":1,\"late\":0,\"rejected\":0"), "%s", out);
    free(out);
    free(err);
}

Test(replay, missing_file_or_bad_config_exit_2)
{
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("%s replay -c configs/sample.yaml /nonexistent.jsonl -o %s/o 2>%s/e", bin, g_dir, g_dir),
                 2);
    char *err = slurp("e", NULL);
    cr_assert(strstr(err, "/nonexistent.jsonl: No such file or directory"), "%s", err);
    free(err);
    bd_test_write_file(in_dir("bad.yaml"), "v: 1\ncycle: 1h\ndefaults:\n  budget: 100\n  maxstep: 0.1\n");
    cr_assert_eq(bd_test_sh("%s replay -c %s/bad.yaml " LOG " 2>%s/e >/dev/null", bin, g_dir, g_dir), 2);
    err = slurp("e", NULL);
    cr_assert(strstr(err, "bad.yaml:5: unknown key 'maxstep'"), "%s", err);
    free(err);
    cr_assert_eq(bd_test_sh("%s check -c %s/bad.yaml 2>/dev/null", bin, g_dir), 2);
    cr_assert_eq(bd_test_sh("%s check -c configs/sample.yaml >/dev/null", bin), 0);
    cr_assert_eq(bd_test_sh("%s replay 2>/dev/null", bin), 2);
    cr_assert_eq(bd_test_sh("%s nosuchcommand 2>/dev/null", bin), 2);
}

/* The bundled sample is reproducible from its documented generator. */
Test(replay, sample_log_is_what_the_generator_writes)
{
    /* the generator is built beside the binary: BUILD/bench/gen_events */
    char genpath[256];
    snprintf(genpath, sizeof(genpath), "%s", bd_test_budgetd_bin());
    char *slash = strrchr(genpath, '/');
    cr_assert(slash);
    snprintf(slash + 1, sizeof(genpath) - (size_t)(slash + 1 - genpath), "bench/gen_events");
    cr_assert_eq(bd_test_sh("%s -n 168 --dirty > %s/gen.jsonl && zcat " LOG " | cmp -s - %s/gen.jsonl", genpath,
                            g_dir, g_dir),
                 0,
                 "bench/data/sample.jsonl.gz is stale: regenerate it (README)");
}

/* How often a summary cell such as "max 121, ramp 5" says the ramp bound
 * (0 when it does not). */
static int ramp_count(const char *cell)
{
    const char *r = strstr(cell, "ramp ");
    return r ? atoi(r + 5) : 0;
}

/* True when some channel row of the summary binds the ramp more often under
 * B than under A (rows: | ch | spend A | spend B | moved | bound A | bound B |). */
static bool b_binds_ramp_more_somewhere(char *md)
{
    for (char *l = strtok(md, "\n"); l; l = strtok(NULL, "\n")) {
        char *cell[8];
        int n = 0;
        for (char *c = strchr(l, '|'); c && n < 8; c = strchr(c + 1, '|')) cell[n++] = c + 1;
        if (n != 7 || l[0] != '|') continue;
        char a[64], b[64];
        snprintf(a, sizeof a, "%.*s", (int)(cell[5] - cell[4]), cell[4]);
        snprintf(b, sizeof b, "%.*s", (int)(cell[6] - cell[5]), cell[5]);
        if (ramp_count(b) > ramp_count(a)) return true;
    }
    return false;
}

/* whatif: both configs side by side (named A and B), a markdown summary
 * and PNG plots. */
Test(replay, whatif_reports_both_configs)
{
    cr_assert_eq(bd_test_sh("sed 's/  max_step: 0.25/  max_step: 0.10/' configs/sample.yaml > %s/b.yaml", g_dir), 0);
    const char *bin = bd_test_budgetd_bin();
    cr_assert_eq(bd_test_sh("%s whatif -c configs/sample.yaml -c %s/b.yaml " LOG " -o %s/wi --draws 2 >%s/out 2>/dev/null",
                            bin, g_dir, g_dir, g_dir),
                 0);
    char *md = slurp("wi/summary.md", NULL);
    char names[256];
    snprintf(names, sizeof names, "A = `configs/sample.yaml`, B = `%s/b.yaml`", g_dir);
    cr_assert(strstr(md, names), "configs not named: %s", md);
    cr_assert(strstr(md, "## acme-us") && strstr(md, "## initech-fr"), "%s", md);
    cr_assert(strstr(md, "| | A | B |"), "%s", md);
    cr_assert(strstr(md, "model estimate"));
    cr_assert(strstr(md, "| search |"));
    cr_assert(strstr(md, "estimated return (model)"));
    /* max_step 0.10 must bind the ramp more often than 0.25 somewhere */
    cr_assert(b_binds_ramp_more_somewhere(md), "no channel binds the ramp more often under B");
    free(md);
    cr_assert_eq(bd_test_sh("test -s %s/wi/acme-us.png", g_dir), 0, "no plot (gnuplot is installed by setup.sh)");
    cr_assert_eq(bd_test_sh("%s whatif -c configs/sample.yaml " LOG " 2>/dev/null", bin), 2);
}
