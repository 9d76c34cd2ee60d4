/* Regression tests for hardening defects (one test per defect, named for
 * it), run through the binary as an operator meets them: the exit code and
 * the message. Each one failed before its fix. Tests that need Redis start
 * their own redis-server (tests/support). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "budgetd/metrics.h"
#include "redis_server.h"

static const char *bin(void)
{
    const char *b = getenv("BUDGETD_BIN");
    return b && *b ? b : "build/budgetd";
}

static char g_dir[64];
static char g_out[65536], g_err[65536];
static const char *g_prefix = ""; /* shell words run before the binary */

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/bdreg-XXXXXX");
    cr_assert(mkdtemp(g_dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0) { /* best effort */ }
}

/* The file g_dir/name into buf (NUL-terminated, truncated to cap). */
static void slurp(const char *name, char *buf, size_t cap)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s", path);
    buf[fread(buf, 1, cap - 1, f)] = '\0';
    fclose(f);
}

/* g_dir/name, written with text. Returns the path (static buffer, one of
 * four in rotation). */
__attribute__((unused)) static const char *put(const char *name, const char *text)
{
    static char paths[4][160];
    static int k;
    char *p = paths[k++ & 3];
    snprintf(p, 160, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s", p);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Runs `budgetd ARGS` (a shell word list) with stdin from /dev/null unless
 * ARGS redirects it; stdout and stderr land in g_out and g_err. Returns
 * the exit status (128 when killed). */
static int budgetd(const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s%s %s >%s/out 2>%s/err", g_prefix, bin(), args, g_dir, g_dir);
    if (!strchr(args, '<')) strncat(cmd, " </dev/null", sizeof cmd - strlen(cmd) - 1);
    int st = system(cmd);
    slurp("out", g_out, sizeof g_out);
    slurp("err", g_err, sizeof g_err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

TestSuite(regress, .init = setup, .fini = teardown, .timeout = 120);

/* Defect 6: a .gz log cut short was read as complete (zlib's Z_BUF_ERROR
 * taken for end of file): replay and whatif exited 0 without a word. Now
 * both exit 1 naming the file, from a path and from stdin. */
Test(regress, r16_06_truncated_gz_fails)
{
    char src[128], cut[160];
    snprintf(src, sizeof src, "tests/data/golden/clean.jsonl.gz");
    snprintf(cut, sizeof cut, "%s/cut.jsonl.gz", g_dir);
    struct stat st;
    cr_assert_eq(stat(src, &st), 0);
    FILE *in = fopen(src, "rb"), *out = fopen(cut, "wb");
    cr_assert(in && out);
    char *buf = malloc((size_t)st.st_size);
    cr_assert_eq(fread(buf, 1, (size_t)st.st_size, in), (size_t)st.st_size);
    fwrite(buf, 1, (size_t)st.st_size / 2, out);
    free(buf);
    fclose(in);
    fclose(out);

    /* the whole file still replays cleanly */
    cr_assert_eq(budgetd("replay -c configs/minimal.yaml %s -o %s/r", src, g_dir), 0, "%s", g_err);

    cr_assert_eq(budgetd("replay -c configs/minimal.yaml %s -o %s/r", cut, g_dir), 1, "%s", g_err);
    cr_assert(strstr(g_err, "cut.jsonl.gz: truncated gzip file"), "%s", g_err);
    cr_assert_eq(budgetd("replay -c configs/minimal.yaml - -o %s/r <%s", g_dir, cut), 1, "%s", g_err);
    cr_assert(strstr(g_err, "stdin: truncated gzip file"), "%s", g_err);
    cr_assert_eq(budgetd("whatif -c configs/minimal.yaml -c tests/data/golden/loglog.yaml %s -o %s/wi",
                         cut, g_dir),
                 1, "%s", g_err);
    cr_assert(strstr(g_err, "cut.jsonl.gz: truncated gzip file"), "%s", g_err);
}

/* Runs budgetd as budgetd() does under a 2 GB address-space limit, so that
 * an input that grows memory without bound fails fast instead of taking
 * the machine (not under sanitizers, which reserve terabytes of shadow). */
static int budgetd_capped(const char *args)
{
    const char *san = getenv("BUDGETD_SANITIZE");
    g_prefix = san && *san ? "" : "ulimit -v 2000000; ";
    int rc = budgetd("%s", args);
    g_prefix = "";
    return rc;
}

/* Defect 11: no size cap on the config (a symlink to /dev/zero reached
 * 7 GB) and none on a log line (a log of /dev/zero grew to 2 GB before an
 * error). Both are refused now with a message naming the file and the
 * limit: the config as a config error (exit 2), the log as a read error
 * (exit 1). A config of exactly the limit is read; one byte more is not. */
Test(regress, r16_11_config_and_log_size_caps)
{
    char link[160], args[512];
    snprintf(link, sizeof link, "%s/zero.yaml", g_dir);
    cr_assert_eq(symlink("/dev/zero", link), 0);
    snprintf(args, sizeof args, "check -c %s", link);
    cr_assert_eq(budgetd_capped(args), 2, "%s", g_err);
    cr_assert(strstr(g_err, "zero.yaml: larger than 16777216 bytes (the config size limit)"), "%s",
              g_err);

    snprintf(args, sizeof args, "replay -c configs/minimal.yaml /dev/zero -o %s/r", g_dir);
    cr_assert_eq(budgetd_capped(args), 1, "%s", g_err);
    cr_assert(strstr(g_err, "/dev/zero: line 1 is longer than 1048576 bytes (the line limit)"), "%s",
              g_err);

    /* a config padded with a comment to the limit exactly still loads */
    const char *head = "defaults:\n  budget: 100\n#";
    size_t limit = 16u << 20;
    char *big = malloc(limit + 2);
    memset(big, 'x', limit + 1);
    memcpy(big, head, strlen(head));
    big[limit - 1] = '\n';
    big[limit] = '\0';
    put("edge.yaml", big);
    snprintf(args, sizeof args, "check -c %s/edge.yaml", g_dir);
    cr_assert_eq(budgetd_capped(args), 0, "%s", g_err);
    big[limit - 1] = 'x';
    big[limit] = '\n';
    big[limit + 1] = '\0';
    put("over.yaml", big);
    free(big);
    snprintf(args, sizeof args, "check -c %s/over.yaml", g_dir);
    cr_assert_eq(budgetd_capped(args), 2, "%s", g_err);
    cr_assert(strstr(g_err, "over.yaml: larger than"), "%s", g_err);

    /* a log line of exactly the limit is an event line like any other (here
     * a bad one: rejected, counted), one byte more stops the replay */
    FILE *f = fopen(put("long.jsonl", ""), "w");
    cr_assert(f);
    for (size_t i = 0; i < (1u << 20); i++) fputc('x', f);
    fputc('\n', f);
    fclose(f);
    snprintf(args, sizeof args, "replay -c configs/minimal.yaml %s/long.jsonl -o %s/r", g_dir, g_dir);
    cr_assert_eq(budgetd_capped(args), 0, "%s", g_err);
    cr_assert(strstr(g_err, "bad_json 1"), "%s", g_err);
    f = fopen(put("longer.jsonl", ""), "w");
    cr_assert(f);
    for (size_t i = 0; i < (1u << 20) + 1; i++) fputc('x', f);
    fputc('\n', f);
    fclose(f);
    snprintf(args, sizeof args, "replay -c configs/minimal.yaml %s/longer.jsonl -o %s/r", g_dir, g_dir);
    cr_assert_eq(budgetd_capped(args), 1, "%s", g_err);
    cr_assert(strstr(g_err, "longer.jsonl: line 1 is longer than"), "%s", g_err);
}

/* Asserts that text holds no control byte but newlines. */
static void no_control_bytes(const char *text)
{
    for (const unsigned char *u = (const unsigned char *)text; *u; u++)
        cr_assert(*u >= 0x20 || *u == '\n', "control byte 0x%02x in: %s", *u, text);
}

/* A fresh redis-server where acme has a fence (cycle 5), and a
 * connection to it (*rc). */
static bd_test_redis_t *acme_redis(redisContext **rc)
{
    bd_test_redis_t *srv = bd_test_redis_start();
    cr_assert_not_null(srv, "redis-server did not start");
    *rc = bd_test_redis_connect(srv);
    cr_assert_not_null(*rc);
    freeReplyObject(bd_test_redis_cmd(*rc, "HSET budgetd:{acme}:fence cycle 5 version 1"));
    return srv;
}

/* Defect 16: `kill --reason` and `--by` were stored and printed raw by
 * `status`, ESC sequences and CR/LF included, and a 100 KB reason was
 * accepted. Now --reason is at most 256 bytes and --by 64, both UTF-8
 * text without control characters (C0, DEL, C1), else exit 2; and what
 * Redis holds (written by anyone: redis-cli is a valid operator tool) is
 * printed with control characters escaped by status, resume and kill. */
Test(regress, r16_16_kill_reason_bounded_and_escaped)
{
    redisContext *rc;
    bd_test_redis_t *srv = acme_redis(&rc);
    const char *url = srv->url;
    const char *bad[] = {"\"$(printf 'a\\033[2Jb')\"", "\"$(printf 'x\\r\\ny')\"",
                         "\"$(printf 'tab\\there')\"", "\"$(printf 'c1 \\302\\233 csi')\"",
                         "\"$(printf 'bad utf8 \\377')\"", "\"$(printf 'del\\177')\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(budgetd("kill acme --reason %s --redis %s", bad[i], url), 2, "%s: %s", bad[i], g_err);
        cr_assert(strstr(g_err, "--reason must be at most 256 bytes of text without control"), "%s",
                  g_err);
        cr_assert_eq(budgetd("kill acme --reason ok --by %s --redis %s", bad[i], url), 2, "%s", g_err);
        cr_assert(strstr(g_err, "--by must be at most 64 bytes"), "%s", g_err);
    }
    char longr[400];
    memset(longr, 'r', 257);
    longr[257] = '\0';
    cr_assert_eq(budgetd("kill acme --reason %s --redis %s", longr, url), 2, "%s", g_err);
    cr_assert(strstr(g_err, "(got 257 bytes)"), "%s", g_err);
    longr[256] = '\0';
    cr_assert_eq(budgetd("kill acme --reason %s --by 'Zoë Ops' --redis %s", longr, url), 0, "%s", g_err);
    cr_assert(strstr(g_out, "by Zoë Ops"), "non-ASCII text passes: %s", g_out);
    char name[80];
    memset(name, 'b', 65);
    name[65] = '\0';
    cr_assert_eq(budgetd("kill acme --reason x --by %s --redis %s", name, url), 2, "%s", g_err);

    /* stored raw by another tool: printed escaped */
    freeReplyObject(bd_test_redis_cmd(rc, "HSET budgetd:{acme}:kill reason %s by %s at 1700000000",
                                      "\x1b]0;pwned\x07\r\nFAKE \\ \xc2\x9b\xff", "\x1b[31mmallory"));
    cr_assert_eq(budgetd("status acme --redis %s", url), 0, "%s", g_err);
    no_control_bytes(g_out);
    cr_assert(strstr(g_out, "KILLED by \\x1b[31mmallory at 2023-11-14T22:13:20Z: "
                            "\\x1b]0;pwned\\x07\\r\\nFAKE \\\\ \\xc2\\x9b\\xff"),
              "%s", g_out);
    cr_assert_eq(budgetd("status --redis %s", url), 0, "%s", g_err);
    no_control_bytes(g_out);
    cr_assert_eq(budgetd("kill acme --reason again --redis %s", url), 0, "%s", g_err);
    no_control_bytes(g_out);
    cr_assert(strstr(g_out, "already killed by \\x1b[31mmallory"), "%s", g_out);
    freeReplyObject(bd_test_redis_cmd(rc, "HSET budgetd:{acme}:kill by %s", "\x1b[2Jeve"));
    cr_assert_eq(budgetd("resume acme --redis %s", url), 0, "%s", g_err);
    no_control_bytes(g_out);
    cr_assert(strstr(g_out, "cleared the kill by \\x1b[2Jeve"), "%s", g_out);
    redisFree(rc);
    bd_test_redis_stop(srv);
}

/* Regression r22_26: r16_16 escaped the kill reason, author, mode and
 * status, but `status` still printed the alloc's channel names (any `ch:`
 * field up to 64 bytes, the §1 rule unchecked), its `faults` and the
 * proposal's `refused` raw, and `resume --channel` the faults: text
 * anyone with redis-cli wrote drove the terminal. Now a channel field
 * outside the rule is skipped (as the pins' are: text, JSON and the
 * adapter never see it) and faults and refusals are escaped. */
Test(regress, r22_26_status_escapes_faults_and_skips_bad_channel_names)
{
    redisContext *rc;
    bd_test_redis_t *srv = acme_redis(&rc);
    freeReplyObject(bd_test_redis_cmd(rc, "HSET budgetd:{acme}:alloc cycle 5 version 1 mode collaborate status active "
                                          "ch:search 100 %s 5 %s 7 faults %s",
                                      "ch:\x1b[2Jevil", "ch:has space", "\x1b]0;pwned\x07search:stale"));
    freeReplyObject(bd_test_redis_cmd(rc, "HSET budgetd:{acme}:proposal cycle 6 mode collaborate status active "
                                          "ch:search 90 refused %s",
                                      "\x1b[31mno"));
    const char *url = srv->url;
    cr_assert_eq(budgetd("status acme --redis %s", url), 0, "%s", g_err);
    no_control_bytes(g_out);
    cr_assert(strstr(g_out, "data faults (held, not learned): \\x1b]0;pwned\\x07search:stale"), "%s", g_out);
    cr_assert(strstr(g_out, "refused by the daemon: \\x1b[31mno"), "%s", g_out);
    cr_assert(!strstr(g_out, "evil") && !strstr(g_out, "has space"), "%s", g_out);
    cr_assert(strstr(g_out, "total") && strstr(g_out, "100.00"), "%s", g_out);
    cr_assert_eq(budgetd("status acme --json --redis %s", url), 0, "%s", g_err);
    cr_assert(!strstr(g_out, "evil") && !strstr(g_out, "has space"), "%s", g_out);
    cr_assert_eq(budgetd("resume acme --channel search --redis %s", url), 1, "%s", g_err);
    no_control_bytes(g_err);
    cr_assert(strstr(g_err, "faults in force: \\x1b]0;pwned"), "%s", g_err);
    redisFree(rc);
    bd_test_redis_stop(srv);
}

/* Regression r22_31: `status --json` copied a kill reason and author set
 * by hand in Redis byte for byte, so bytes that are not UTF-8 made the
 * document invalid JSON (RFC 8259 §8.1) for any strict parser. Now each
 * such byte is U+FFFD; well-formed text is kept. */
Test(regress, r22_31_status_json_is_utf8_whatever_redis_holds)
{
    redisContext *rc;
    bd_test_redis_t *srv = acme_redis(&rc);
    freeReplyObject(bd_test_redis_cmd(rc, "HSET budgetd:{acme}:kill reason %s by %s at 1700000000",
                                      "caf\xe9 \xc3\xa9t\xc3\xa9 \xed\xa0\x80", "Zo\xeb"));
    cr_assert_eq(budgetd("status acme --json --redis %s", srv->url), 0, "%s", g_err);
    for (const unsigned char *p = (const unsigned char *)g_out; *p;) {
        size_t n = bd_utf8_seq(p);
        cr_assert_gt(n, 0, "byte %zu is not UTF-8: %s", (size_t)(p - (const unsigned char *)g_out), g_out);
        p += n;
    }
    cr_assert(strstr(g_out, "caf\xef\xbf\xbd \xc3\xa9t\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"),
              "%s", g_out);
    cr_assert(strstr(g_out, "Zo\xef\xbf\xbd"), "%s", g_out);
    redisFree(rc);
    bd_test_redis_stop(srv);
}

/* A TCP connection from address from (an address of 127/8) to
 * 127.0.0.1:port with text sent; -1 when it could not be made. */
static int http_conn(const char *from, int port, const char *text)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, from, &a.sin_addr);
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &b.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        connect(fd, (struct sockaddr *)&b, sizeof b) != 0 ||
        write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads fd until EOF or until wait_ms pass without data; buf gets what
 * came (NUL-terminated). Returns the byte count, -1 when nothing came. */
static ssize_t http_read(int fd, char *buf, size_t cap, int wait_ms)
{
    size_t got = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, wait_ms) <= 0) break;
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        if (got == cap - 1) break;
    }
    buf[got] = '\0';
    return got ? (ssize_t)got : -1;
}

#define SCRAPE "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

/* Defect 13: /metrics had no connection timeout and select()'s FD_SETSIZE
 * ceiling: 1100 idle half-sent requests blocked it for 60 s, and one
 * partial request stayed open for over 90 s. Now idle connections close
 * after BD_METRICS_TIMEOUT seconds, one address holds at most half of the
 * connection limit, and epoll has no FD_SETSIZE: with 1100 half-sent
 * requests held open from 127.0.0.1, a scrape from 127.0.0.2 is answered
 * while they are all still open, 300 concurrent full scrapes from one
 * address are all answered, and a half-sent request is closed by the
 * server. The waits below only bound a hang; nothing is timed. */
Test(regress, r16_13_metrics_connection_limits_and_timeout)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 4096) cr_skip_test("needs 4096 open files");
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 8192 ? 8192 : rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    int port = bd_test_free_port();
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    bd_metrics_t *m;
    char e[256];
    cr_assert_eq(bd_metrics_start(listen, &m, e, sizeof e), BD_OK, "%s", e);
    bd_engine_stats_t st = {0};
    bd_metrics_daemon_t dm = {0};
    bd_metrics_update(m, &st, &dm);

    enum { HALF = 1100, FULL = 300 };
    static int half[HALF], full[FULL];
    for (int i = 0; i < HALF; i++) {
        half[i] = http_conn("127.0.0.1", port, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
        cr_assert_geq(half[i], 0, "connection %d: %s", i, strerror(errno));
    }
    static char body[65536];
    int s = http_conn("127.0.0.2", port, SCRAPE);
    cr_assert_geq(s, 0);
    cr_assert_gt(http_read(s, body, sizeof body, 20000), 0, "no answer to a scrape");
    close(s);
    cr_assert(strstr(body, "HTTP/1.1 200"), "%.200s", body);
    cr_assert(strstr(body, "budgetd_decisions_total 0"), "%.200s", body);
    /* the held requests did not have to time out first: the first ones
     * (admitted) are still open */
    struct pollfd p0 = {.fd = half[0], .events = POLLIN};
    cr_assert_eq(poll(&p0, 1, 0), 0, "the first half-sent request was closed before the scrape");

    for (int i = 0; i < FULL; i++) {
        full[i] = http_conn("127.0.0.3", port, SCRAPE);
        cr_assert_geq(full[i], 0);
    }
    for (int i = 0; i < FULL; i++) {
        cr_assert_gt(http_read(full[i], body, sizeof body, 20000), 0, "scrape %d unanswered", i);
        cr_assert(strstr(body, "HTTP/1.1 200"), "scrape %d: %.200s", i, body);
        close(full[i]);
    }

    /* an idle half-sent request is closed by the server (EOF, or the 408
     * some servers send first, then EOF) */
    char junk[512];
    struct pollfd p = {.fd = half[0], .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 30000), 1, "a half-sent request stayed open 30 s");
    ssize_t n;
    while ((n = read(half[0], junk, sizeof junk)) > 0) {
    }
    cr_assert(n == 0 || errno == ECONNRESET, "read: %s", strerror(errno));
    for (int i = 0; i < HALF; i++) close(half[i]);
    bd_metrics_stop(m);
}

/* Defect 20: `run --idle-exit abc` was read as 0 (never exit) without an
 * error. Every numeric option is now read by the one option parser
 * (range-checked, whole string): this one exits 2 naming the option and
 * the value, before the config is even read. --metrics' port took " 9100"
 * and "+9100" (strtol); it is digits only now. */
Test(regress, r16_20_numeric_options_checked)
{
    cr_assert_eq(budgetd("run -c /nonexistent.yaml --idle-exit abc"), 2, "%s", g_err);
    cr_assert(strstr(g_err, "--idle-exit: 'abc' is not an integer in"), "%s", g_err);
    cr_assert_eq(budgetd("run -c /nonexistent.yaml --idle-exit 5s"), 2, "%s", g_err);
    cr_assert(strstr(g_err, "'5s'"), "%s", g_err);
    /* a daemon that accepted the port would run on (no Kafka to idle-exit
     * from): the timeout ends it, and the exit code then says 124 */
    g_prefix = "timeout 20 ";
    int rc1 = budgetd("run -c configs/minimal.yaml --metrics '127.0.0.1: 9100'");
    int rc2 = budgetd("run -c configs/minimal.yaml --metrics +9100");
    g_prefix = "";
    cr_assert_eq(rc1, 2, "%s", g_err);
    cr_assert_eq(rc2, 2, "%s", g_err);
    cr_assert(strstr(g_err, "expected HOST:PORT"), "%s", g_err);
}
