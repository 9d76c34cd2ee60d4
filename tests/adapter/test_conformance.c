/* test_conformance.c: the adapter conformance suite of docs/ADAPTERS.md.
 * Each test starts a redis-server of its own, writes the keys the engine
 * would write (alloc, proposal, kill, notify) in a scripted order, and
 * watches what the adapter under test spends through the command it runs.
 *
 * The adapter under test is any command line: $BUDGETD_ADAPTER_CMD (run by
 * /bin/sh), with these placeholders replaced:
 *   {config}  a budgetd config whose redis section names the server and prefix
 *   {url}     redis://127.0.0.1:PORT       {prefix}  the key prefix
 *   {exec}    the command to run per change: `{exec} PORTFOLIO CHANNEL AMOUNT CYCLE`
 *   {name}    the adapter name of the acknowledgement key PFX:{P}:ack:NAME
 * By default it is the reference adapter:
 *   $BUDGETD_BIN adapter -c {config} --exec {exec} --name {name} --poll 1 ...
 * tests/adapter/conformance.sh "CMD" runs the suite on another adapter.
 * $BUDGETD_CONFORMANCE_WAIT (seconds, default 15) bounds every wait: an
 * adapter must catch up with a missed notify within it (poll faster).
 *
 * What the adapter did is read from the command's records: {exec} appends
 * "P C AMOUNT CYCLE" to DIR/applied for every success, and fails (exit 3)
 * while DIR/fail-<channel> holds a positive count. A check that something
 * did NOT happen waits for a barrier first: a new cycle of a sentinel
 * portfolio written after the state under test, which the adapter must
 * apply (an adapter that serves notifies in order has then seen the state). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "fixtures.h"
#include "redis_server.h"

#define PFX "bdconf"
#define NAME "conf"
#define SENTINEL "zz-sentinel"

typedef struct {
    bd_test_redis_t *srv;
    redisContext *rc;
    char dir[64], cfg[128], exec[128], applied[128], attempts[128], log[128];
    pid_t adapter;            /* process group of the adapter under test, 0: none */
    long sentinel_cycle;
} conf_t;

static conf_t g;

/* Sleeps ms milliseconds. */
static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* The bound of every wait, in seconds. */
static int wait_s(void)
{
    const char *v = getenv("BUDGETD_CONFORMANCE_WAIT");
    int s = v ? atoi(v) : 0;
    return s > 0 ? s : 15;
}

/* dst = src with every {key} of the table replaced. */
static void expand(char *dst, size_t cap, const char *src)
{
    const char *keys[] = {"{config}", "{url}", "{prefix}", "{exec}", "{name}"};
    const char *vals[] = {g.cfg, g.srv->url, PFX, g.exec, NAME};
    size_t o = 0;
    while (*src && o + 1 < cap) {
        int k = 0;
        while (k < 5 && strncmp(src, keys[k], strlen(keys[k])) != 0) k++;
        if (k < 5) {
            o += (size_t)snprintf(dst + o, cap - o, "%s", vals[k]);
            src += strlen(keys[k]);
        } else {
            dst[o++] = *src++;
        }
    }
    dst[o < cap ? o : cap - 1] = '\0';
}

/* Starts the adapter under test in a process group of its own (so that a
 * wrapper script dies with it), its stderr appended to DIR/adapter.log. */
static void adapter_start(void)
{
    char tmpl[2048], cmd[4096];
    const char *t = getenv("BUDGETD_ADAPTER_CMD");
    if (t && *t) snprintf(tmpl, sizeof tmpl, "%s", t);
    else
        snprintf(tmpl, sizeof tmpl,
                 "exec %s adapter -c {config} --exec {exec} --name {name} --poll 1 --retry-base-ms 100 "
                 "--retry-cap-ms 400",
                 bd_test_budgetd_bin());
    expand(cmd, sizeof cmd, tmpl);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int fd = open(g.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0 && !getenv("BUDGETD_TEST_VERBOSE")) dup2(fd, STDERR_FILENO);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    g.adapter = pid;
}

/* Stops the adapter: sig to its group, SIGKILL after 5 s. */
static void adapter_stop(int sig)
{
    if (g.adapter <= 0) return;
    kill(-g.adapter, sig);
    for (int i = 0; i < 500; i++) {
        if (waitpid(g.adapter, NULL, WNOHANG) == g.adapter) {
            kill(-g.adapter, SIGKILL); /* anything it left */
            g.adapter = 0;
            return;
        }
        nap(10);
    }
    kill(-g.adapter, SIGKILL);
    waitpid(g.adapter, NULL, 0);
    g.adapter = 0;
}

/* The recorder run as {exec}: one line per success, failures on demand. */
static void write_recorder(void)
{
    bd_test_write_file(g.exec,
                       "#!/bin/sh\n"
                       "# conformance recorder: P C AMOUNT CYCLE\n"
                       "d='%s'\n"
                       "f=\"$d/fail-$2\"\n"
                       "if [ -f \"$f\" ] && [ \"$(cat \"$f\")\" -gt 0 ]; then\n"
                       "  echo $(( $(cat \"$f\") - 1 )) > \"$f\"\n"
                       "  echo \"$1 $2 $3 $4 FAIL\" >> \"$d/attempts\"\n"
                       "  exit 3\n"
                       "fi\n"
                       "echo \"$1 $2 $3 $4 OK\" >> \"$d/attempts\"\n"
                       "echo \"$1 $2 $3 $4\" >> \"$d/applied\"\n",
                       g.dir);
    cr_assert_eq(chmod(g.exec, 0755), 0);
}

static void setup(void)
{
    memset(&g, 0, sizeof g);
    g.rc = bd_test_redis_up(&g.srv);
    bd_test_tmpdir(g.dir, sizeof g.dir, "bdconf");
    bd_test_path(g.cfg, sizeof g.cfg, g.dir, "budgetd.yaml");
    bd_test_path(g.exec, sizeof g.exec, g.dir, "record.sh");
    bd_test_path(g.applied, sizeof g.applied, g.dir, "applied");
    bd_test_path(g.attempts, sizeof g.attempts, g.dir, "attempts");
    bd_test_path(g.log, sizeof g.log, g.dir, "adapter.log");
    bd_test_write_file(g.cfg, "v: 1\nredis: {url: \"%s\", prefix: %s}\ndefaults: {budget: 1000}\n", g.srv->url,
                       PFX);
    write_recorder();
    bd_test_write_file(g.applied, "%s", "");
    bd_test_write_file(g.attempts, "%s", "");
    g.sentinel_cycle = 1000;
}

static void teardown(void)
{
    adapter_stop(SIGTERM);
    if (getenv("BUDGETD_TEST_VERBOSE")) bd_test_sh("cat %s/adapter.log >&2", g.dir);
    bd_test_redis_down(&g.srv, &g.rc);
    bd_test_rmdir(g.dir);
}

TestSuite(conformance, .init = setup, .fini = teardown, .timeout = 120);

/* A reply-checked command on the test's own connection. */
static void cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(g.rc, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "redis: %s", g.rc->errstr);
    cr_assert_neq(r->type, REDIS_REPLY_ERROR, "redis: %s", r->str);
    freeReplyObject(r);
}

/* PUBLISH of the contract's message "<P> <cycle> <status>". */
static void notify(const char *p, long cycle, const char *status)
{
    char msg[200];
    snprintf(msg, sizeof msg, "%s %ld %s", p, cycle, status);
    cmd("PUBLISH " PFX ":notify %s", msg);
}

/* alloc of p for cycle with notify (the usual engine write). */
#define ALLOC(p, cycle, status, ...)                                                                  \
    do {                                                                                          \
        const char *chs_[] = {__VA_ARGS__};                                                       \
        engine_write_v("alloc", p, cycle, status, true, chs_, sizeof chs_ / sizeof *chs_);        \
    } while (0)

/* The engine's write of alloc (or proposal) of p for cycle: the whole hash
 * replaced (version = cycle), channels given as "name=amount", then the
 * notify message unless pub is false (a lost notify). */
static void engine_write_v(const char *what, const char *p, long cycle, const char *status, bool pub,
                           const char *const *chs, size_t n)
{
    char key[160];
    snprintf(key, sizeof key, PFX ":{%s}:%s", p, what);
    cmd("DEL %s", key);
    cmd("HSET %s cycle %ld version %ld mode automate status %s decided_at %ld", key, cycle, cycle, status,
        (long)time(NULL));
    for (size_t i = 0; i < n; i++) {
        char f[128];
        snprintf(f, sizeof f, "%s", chs[i]);
        char *eq = strchr(f, '=');
        cr_assert_not_null(eq);
        *eq = '\0';
        cmd("HSET %s ch:%s %s", key, f, eq + 1);
    }
    if (pub) notify(p, cycle, status);
}

/* Lines of file that start with prefix (all lines when prefix is ""). */
static int lines(const char *file, const char *prefix)
{
    char *t = bd_test_slurp(file, NULL);
    int n = 0;
    for (char *l = t; l && *l;) {
        char *nl = strchr(l, '\n');
        if (!strncmp(l, prefix, strlen(prefix))) n++;
        if (!nl) break;
        l = nl + 1;
    }
    free(t);
    return n;
}

/* True when file holds exactly this line. */
static bool has_line(const char *file, const char *line)
{
    char *t = bd_test_slurp(file, NULL);
    bool ok = bd_test_has_line(t, line);
    free(t);
    return ok;
}

/* Waits until file holds line; fails the test after the wait bound. */
static void wait_line(const char *file, const char *line, const char *why)
{
    for (int i = 0; i < wait_s() * 20; i++) {
        if (has_line(file, line)) return;
        nap(50);
    }
    char *t = bd_test_slurp(g.applied, NULL);
    cr_assert_fail("%s: never saw \"%s\" in %s within %d s; applied so far:\n%s", why, line, file, wait_s(), t);
}

/* The barrier: a new cycle of the sentinel portfolio, written after
 * whatever the test did, must be applied; then the adapter has seen it. */
static void barrier(void)
{
    long c = ++g.sentinel_cycle;
    char ch[32], line[96];
    snprintf(ch, sizeof ch, "x=%ld.00", c);
    const char *chs[] = {ch};
    engine_write_v("alloc", SENTINEL, c, "active", true, chs, 1);
    snprintf(line, sizeof line, SENTINEL " x %ld.00 %ld", c, c);
    wait_line(g.applied, line, "barrier (sentinel portfolio)");
}

/* The ack hash's cycle of p, or -1. */
static long ack_cycle(const char *p)
{
    char key[160];
    snprintf(key, sizeof key, PFX ":{%s}:ack:" NAME, p);
    const char *v = bd_test_redis_hget(g.rc, key, "cycle");
    return v ? atol(v) : -1;
}

/* Every changed channel once per cycle, with the cycle's amounts; the ack
 * key names the cycle applied. */
Test(conformance, applies_each_changed_channel_once_per_cycle)
{
    adapter_start();
    ALLOC("acme", 10, "active", "search=100.00", "social=50.50");
    wait_line(g.applied, "acme search 100.00 10", "first cycle");
    wait_line(g.applied, "acme social 50.50 10", "first cycle");
    ALLOC("acme", 11, "active", "search=100.00", "social=60.00");
    wait_line(g.applied, "acme social 60.00 11", "second cycle");
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 3, "an unchanged channel was run again, or a channel twice");
    for (int i = 0; i < wait_s() * 20 && ack_cycle("acme") != 11; i++) nap(50);
    cr_assert_eq(ack_cycle("acme"), 11, "ack key " PFX ":{acme}:ack:" NAME " does not name cycle 11");
}

/* A kill key stops all spending, whatever alloc says; after the operator's
 * resume the next decision is applied. */
Test(conformance, spends_nothing_while_killed)
{
    adapter_start();
    cmd("HSET " PFX ":{acme}:kill reason %s by operator at %ld", "tracking-broken", (long)time(NULL));
    ALLOC("acme", 5, "active", "search=100.00"); /* the engine has not seen the kill yet */
    notify("acme", 5, "killed");
    barrier();
    ALLOC("acme", 6, "killed", "search=0.00");
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 0, "spent on a killed portfolio");
    cmd("DEL " PFX ":{acme}:kill");
    ALLOC("acme", 7, "active", "search=120.00");
    wait_line(g.applied, "acme search 120.00 7", "after resume");
}

/* An allocation whose status is not active is not spent. */
Test(conformance, spends_nothing_while_held)
{
    adapter_start();
    ALLOC("acme", 5, "held", "search=100.00");
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 0, "spent on a held allocation");
    ALLOC("acme", 6, "active", "search=100.00");
    wait_line(g.applied, "acme search 100.00 6", "active again");
}

/* A proposal is never spent; once approved (alloc replaced by it) it is. */
Test(conformance, spends_no_pending_proposal)
{
    adapter_start();
    ALLOC("acme", 5, "active", "search=100.00");
    wait_line(g.applied, "acme search 100.00 5", "first cycle");
    const char *prop[] = {"search=300.00"};
    engine_write_v("proposal", "acme", 6, "active", true, prop, 1);
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 1, "spent a proposal waiting for approval");
    ALLOC("acme", 6, "active", "search=300.00"); /* the approval applied */
    wait_line(g.applied, "acme search 300.00 6", "approved proposal");
}

/* An older cycle, or the same one announced again, is never applied. */
Test(conformance, ignores_stale_and_repeated_cycles)
{
    adapter_start();
    ALLOC("acme", 20, "active", "search=100.00");
    wait_line(g.applied, "acme search 100.00 20", "cycle 20");
    notify("acme", 20, "active");
    ALLOC("acme", 19, "active", "search=999.00");
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 1, "an older or repeated cycle was applied");
}

/* A decision written without its notify message (lost) is applied anyway
 * within the wait bound: the adapter polls. */
Test(conformance, catches_up_after_a_lost_notify)
{
    adapter_start();
    ALLOC("acme", 1, "active", "search=100.00");
    wait_line(g.applied, "acme search 100.00 1", "cycle 1");
    const char *chs[] = {"search=150.00"};
    engine_write_v("alloc", "acme", 2, "active", false, chs, 1);
    wait_line(g.applied, "acme search 150.00 2", "cycle 2 without notify");
}

/* Redis restarted empty: nothing to spend while alloc is absent, the
 * cycle already applied is not applied again when republished, the next
 * one is; the adapter reconnects and resubscribes by itself. */
Test(conformance, survives_redis_restarted_empty)
{
    adapter_start();
    ALLOC("acme", 30, "active", "search=100.00", "social=40.00");
    wait_line(g.applied, "acme social 40.00 30", "cycle 30");
    wait_line(g.applied, "acme search 100.00 30", "cycle 30");
    redisFree(g.rc);
    g.rc = NULL;
    cr_assert_eq(bd_test_redis_restart(g.srv), 0);
    g.rc = bd_test_redis_connect(g.srv);
    cr_assert_not_null(g.rc);
    barrier();
    ALLOC("acme", 30, "active", "search=100.00", "social=40.00"); /* republished */
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 2, "cycle 30 was applied again after Redis lost its data");
    ALLOC("acme", 31, "active", "search=110.00", "social=40.00");
    wait_line(g.applied, "acme search 110.00 31", "cycle 31");
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 3);
}

/* The adapter killed (no clean shutdown) and started again does not apply
 * the cycle it applied before. */
Test(conformance, restart_does_not_apply_a_cycle_twice)
{
    adapter_start();
    ALLOC("acme", 40, "active", "search=100.00", "social=40.00");
    wait_line(g.applied, "acme search 100.00 40", "cycle 40");
    wait_line(g.applied, "acme social 40.00 40", "cycle 40");
    barrier(); /* its ack is written by now (the sentinel came after) */
    adapter_stop(SIGKILL);
    adapter_start();
    notify("acme", 40, "active");
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 2, "cycle 40 applied again after a restart");
    ALLOC("acme", 41, "active", "search=100.00", "social=45.00");
    wait_line(g.applied, "acme social 45.00 41", "cycle 41");
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 3);
}

/* A command that fails is retried until it succeeds; each channel lands
 * once, the failing one after its failures. */
Test(conformance, retries_a_failed_command_until_it_succeeds)
{
    char f[160];
    bd_test_path(f, sizeof f, g.dir, "fail-social");
    bd_test_write_file(f, "2\n");
    adapter_start();
    ALLOC("acme", 50, "active", "search=100.00", "social=60.00");
    wait_line(g.applied, "acme social 60.00 50", "failing channel");
    wait_line(g.applied, "acme search 100.00 50", "other channel");
    cr_assert_eq(lines(g.attempts, "acme social 60.00 50 FAIL"), 2);
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 2, "a channel applied twice");
}

/* A kill stops the retries of a failing command: once it is seen, a
 * command that would now succeed is not run. */
Test(conformance, kill_stops_retries)
{
    char f[160];
    bd_test_path(f, sizeof f, g.dir, "fail-social");
    bd_test_write_file(f, "1000000\n");
    adapter_start();
    ALLOC("acme", 60, "active", "social=60.00");
    wait_line(g.attempts, "acme social 60.00 60 FAIL", "first failure");
    cmd("HSET " PFX ":{acme}:kill reason %s by operator at %ld", "stop", (long)time(NULL));
    notify("acme", 60, "killed");
    barrier();
    bd_test_write_file(f, "0\n"); /* from now on the command would succeed */
    barrier();
    cr_assert_eq(lines(g.applied, "acme "), 0, "retried and spent after the kill");
}
