/* fixtures.c: see fixtures.h. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <criterion/criterion.h>
#include "fixtures.h"

/* Sleeps ms milliseconds, resuming after signals. */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- the binary --------------------------------------------------------- */

/* $BUDGETD_BIN is what scripts/run-tests.sh exports (build-san for the
 * sanitizer run); the default serves a test program started by hand. */
const char *bd_test_budgetd_bin(void)
{
    const char *b = getenv("BUDGETD_BIN");
    return b && *b ? b : "build/budgetd";
}

/* fork + execv; the child sets its stderr up before exec, so that what the
 * daemon logs lands where the test wants to read it. */
pid_t bd_test_budgetd_start(const char *const *args, const char *envkv, const char *errpath)
{
    const char *bin = bd_test_budgetd_bin();
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)bin;
    for (; args[argc - 1]; argc++) {
        cr_assert_lt(argc, 31, "too many arguments for budgetd");
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (envkv) putenv((char *)envkv);
        int fd = -1;
        if (errpath) fd = open(errpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        else if (!getenv("BUDGETD_TEST_VERBOSE")) fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, STDERR_FILENO);
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

/* Polls every 100 ms so that a hung daemon fails the test, not the run. */
int bd_test_budgetd_wait(pid_t pid, const char *what, int timeout_s)
{
    int st = 0;
    for (int t = 0; t < timeout_s * 10; t++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        sleep_ms(100);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("budgetd %s did not finish in %d s", what, timeout_s);
    return -1;
}

/* ---- shell commands, files, temp dirs ------------------------------------ */

/* The printf-built command line into cmd (cap bytes); one too long for it
 * fails the test rather than run cut short. */
static void format_cmd(char *cmd, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(cmd, cap, fmt, ap);
    cr_assert(n >= 0 && (size_t)n < cap, "command too long: %.80s...", cmd);
}

/* A wait status as an exit code: 128 when the command did not exit. */
static int exit_code(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128; }

/* system(3) of the formatted line. */
int bd_test_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    format_cmd(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return exit_code(system(cmd));
}

/* popen(3) of the formatted line, its stdout read into out. */
int bd_test_capture(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    format_cmd(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "popen %s: %s", cmd, strerror(errno));
    size_t got = fread(out, 1, cap - 1, p);
    out[got] = '\0';
    /* read the rest so that the command never blocks on a full pipe */
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {}
    return exit_code(pclose(p));
}

/* Reads the file whole (binary safe), NUL-terminated. */
char *bd_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, 0, SEEK_END), 0, "%s: not seekable", path);
    long n = ftell(f);
    cr_assert_geq(n, 0, "%s: %s", path, strerror(errno));
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "%s: short read", path);
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

/* fprintf into a fresh file, checked down to the close. */
void bd_test_write_file(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(f, fmt, ap);
    va_end(ap);
    cr_assert_geq(n, 0, "%s: write failed", path);
    cr_assert_eq(fclose(f), 0, "%s: %s", path, strerror(errno));
}

/* mkdtemp(3) under /tmp. */
void bd_test_tmpdir(char *dir, size_t cap, const char *prefix)
{
    int n = snprintf(dir, cap, "/tmp/%s-XXXXXX", prefix);
    cr_assert(n > 0 && (size_t)n < cap, "temp dir name too long for its buffer");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
}

/* rm -rf: a test's cleanup, so its failure is not the test's. */
void bd_test_rmdir(const char *dir)
{
    if (!dir || !dir[0]) return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { /* best effort */ }
}

/* dir/name, refusing to cut it short. */
char *bd_test_path(char *dst, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(dst, cap, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < cap, "path %s/%s too long for its buffer", dir, name);
    return dst;
}

/* ---- config and engine --------------------------------------------------- */

/* bd_config_load_string under "t.yaml", the code checked against the result. */
bd_config_t *bd_test_config(const char *yaml, char *err, size_t errlen)
{
    bd_config_t *c = NULL;
    bd_err_t rc = bd_config_load_string(yaml, strlen(yaml), "t.yaml", &c, err, errlen);
    if (rc != BD_OK) {
        cr_assert_eq(rc, BD_ERR_CONFIG, "load: code %d (%s)", rc, err);
        cr_assert_null(c, "a refused config came with a handle");
        return NULL;
    }
    cr_assert_not_null(c, "BD_OK without a config");
    return c;
}

/* Every occurrence of line in text, accepted only between line breaks. */
bool bd_test_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) return true;
    return false;
}

/* bd_engine_ingest of the formatted line. */
bd_reject_t bd_test_ingestf(bd_engine_t *e, const char *fmt, ...)
{
    char line[1024], detail[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof line, "line too long: %.80s...", line);
    bd_err_t err = BD_OK;
    bd_reject_t r = bd_engine_ingest(e, line, (size_t)n, detail, sizeof detail, &err);
    cr_assert_eq(err, BD_OK, "the sink failed on %s", line);
    return r;
}

/* ---- numbers -------------------------------------------------------------- */

/* Relative closeness with an absolute floor of rel near zero. */
void bd_test_near(double got, double want, double rel, const char *what)
{
    cr_assert(fabs(got - want) <= rel * fmax(1.0, fabs(want)), "%s: got %.15g want %.15g", what, got,
              want);
}

/* ---- HTTP ------------------------------------------------------------------ */

/* HTTP/1.0 so that the server closes: read until EOF. */
int bd_test_http_get(int port, const char *path, char *out, size_t outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < outlen && (r = read(fd, out + got, outlen - 1 - got)) > 0) got += (size_t)r;
    out[got] = '\0';
    close(fd);
    return (int)got;
}

/* Polls /metrics until every wanted string shows up or tries run out. */
bool bd_test_metrics_wait(int port, char *body, size_t cap, int tries, const char *const *want)
{
    body[0] = '\0';
    for (int i = 0; i < tries; i++) {
        sleep_ms(100);
        if (bd_test_http_get(port, "/metrics", body, cap) <= 0) continue;
        bool all = true;
        for (const char *const *w = want; *w && all; w++) all = strstr(body, *w) != NULL;
        if (all) return true;
    }
    return false;
}
