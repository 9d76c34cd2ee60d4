/* redis_server.c: starts and stops a private redis-server for a test. Each
 * server gets a free port and a temp dir, and dies with the test process
 * (PR_SET_PDEATHSIG) so a crashing test leaks no server. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <criterion/criterion.h>
#include "redis_server.h"

/* Sleeps ms milliseconds, resuming after signals. */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Binding port 0 lets the kernel pick a free port; there is a window before
 * redis binds it, so callers retry on a failed start. */
int bd_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* See redis_server.h: fork+exec argv[0] with every inherited fd closed
 * (the child holds no copy of the test's sockets), the signal mask
 * cleared, output to out (NULL: /dev/null), killed with the test process. */
pid_t bd_test_spawn(const char *const *argv, const char *out)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int nul = open("/dev/null", O_RDWR);
    int o = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644) : nul;
    if (nul >= 0) dup2(nul, 0);
    if (o >= 0) {
        dup2(o, 1);
        dup2(o, 2);
    }
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
    for (long fd = 3; fd < maxfd; fd++) close((int)fd);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

/* fork+exec redis-server. The child closes every inherited fd (so it holds
 * no copy of the test's sockets), clears the signal mask, and asks to be
 * killed when the test process dies. */
static pid_t spawn(const bd_test_redis_t *t)
{
    const char *bin = getenv("BD_REDIS_SERVER");
    if (!bin || !*bin) bin = "/usr/bin/redis-server";
    char port[16], log[128];
    snprintf(port, sizeof port, "%d", t->port);
    snprintf(log, sizeof log, "%s/redis.log", t->dir);
    const char *argv[32] = {bin, "--port", port, "--bind", "127.0.0.1", "--dir", t->dir, "--save", "",
                            "--appendonly", "no", "--unixsocket", t->sock, "--unixsocketperm", "700",
                            "--daemonize", "no", "--logfile", log};
    int argc = 19;
    if (t->password[0]) {
        argv[argc++] = "--requirepass";
        argv[argc++] = t->password;
    }
    argv[argc] = NULL;
    return bd_test_spawn(argv, NULL);
}

/* Waits until the server answers on TCP (any reply: NOAUTH counts). Fails
 * when the child exits first (port taken) or after 10 s. */
static int wait_ready(bd_test_redis_t *t)
{
    for (int i = 0; i < 1000; i++) {
        int st;
        if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
            t->pid = 0;
            return -1;
        }
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", t->port, tv);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r != NULL;
            if (r) freeReplyObject(r);
            redisFree(c);
            if (ok) return 0;
        } else if (c) {
            redisFree(c);
        }
        sleep_ms(10);
    }
    return -1;
}

/* SIGTERM, then SIGKILL after 5 s: an outage that keeps port and dir. */
void bd_test_redis_halt(bd_test_redis_t *t)
{
    if (!t || t->pid <= 0) return;
    kill(t->pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(t->pid, NULL, WNOHANG) == t->pid) {
            t->pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(t->pid, SIGKILL);
    waitpid(t->pid, NULL, 0);
    t->pid = 0;
}

/* Same port and dir; a few tries, 100 ms apart, before it gives up. */
int bd_test_redis_restart(bd_test_redis_t *t)
{
    bd_test_redis_halt(t);
    for (int attempt = 0; attempt < 5; attempt++) {
        t->pid = spawn(t);
        if (t->pid > 0 && wait_ready(t) == 0) return 0;
        bd_test_redis_halt(t);
        sleep_ms(100);
    }
    fprintf(stderr, "test redis: restart on port %d failed (see %s/redis.log)\n", t->port, t->dir);
    return -1;
}

/* Removes the temp dir and what redis left in it. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* A temp dir, a free port (retried: another process may take it first). */
bd_test_redis_t *bd_test_redis_start_auth(const char *password)
{
    bd_test_redis_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    snprintf(t->dir, sizeof t->dir, "/tmp/bdredis-XXXXXX");
    if (!mkdtemp(t->dir)) {
        fprintf(stderr, "test redis: mkdtemp: %s\n", strerror(errno));
        free(t);
        return NULL;
    }
    snprintf(t->sock, sizeof t->sock, "%s/redis.sock", t->dir);
    snprintf(t->unix_url, sizeof t->unix_url, "unix://%s", t->sock);
    if (password) snprintf(t->password, sizeof t->password, "%s", password);
    for (int attempt = 0; attempt < 8; attempt++) {
        t->port = bd_test_free_port();
        if (t->port <= 0) continue;
        snprintf(t->url, sizeof t->url, "redis://127.0.0.1:%d", t->port);
        t->pid = spawn(t);
        if (t->pid > 0 && wait_ready(t) == 0) return t;
        bd_test_redis_halt(t);
    }
    fprintf(stderr, "test redis: could not start a redis-server (see %s/redis.log)\n", t->dir);
    remove_dir(t->dir);
    free(t);
    return NULL;
}

/* Without a password. */
bd_test_redis_t *bd_test_redis_start(void)
{
    return bd_test_redis_start_auth(NULL);
}

/* Halts the server and removes its dir. */
void bd_test_redis_stop(bd_test_redis_t *t)
{
    if (!t) return;
    bd_test_redis_halt(t);
    remove_dir(t->dir);
    free(t);
}

/* TCP with timeouts, AUTH when the server has a password. */
redisContext *bd_test_redis_connect(const bd_test_redis_t *t)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", t->port, tv);
    if (!c) return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, (struct timeval){5, 0});
    if (t->password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", t->password);
        int ok = r && r->type != REDIS_REPLY_ERROR;
        if (r) freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* redisvCommand that fails the test when there is no reply. */
static redisReply *vcmd(redisContext *c, const char *fmt, va_list ap)
{
    cr_assert_not_null(c, "no redis connection");
    redisReply *r = redisvCommand(c, fmt, ap);
    cr_assert_not_null(r, "redis command '%s' failed: %s", fmt, c->errstr);
    return r;
}

/* A command whose missing reply fails the test. */
redisReply *bd_test_redis_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

/* Start and connect, both asserted. */
redisContext *bd_test_redis_up(bd_test_redis_t **srv)
{
    signal(SIGPIPE, SIG_IGN);
    *srv = bd_test_redis_start();
    cr_assert_not_null(*srv, "redis-server did not start");
    redisContext *c = bd_test_redis_connect(*srv);
    cr_assert_not_null(c, "no connection to the test redis-server");
    return c;
}

/* Disconnect and stop; NULLs both so a second call is harmless. */
void bd_test_redis_down(bd_test_redis_t **srv, redisContext **rc)
{
    if (*rc) redisFree(*rc);
    *rc = NULL;
    bd_test_redis_stop(*srv);
    *srv = NULL;
}

/* HGET into a static buffer. */
const char *bd_test_redis_hget(redisContext *c, const char *key, const char *field)
{
    static char buf[1024];
    redisReply *x = bd_test_redis_cmd(c, "HGET %s %s", key, field);
    cr_assert_neq(x->type, REDIS_REPLY_ERROR, "HGET %s %s: %s", key, field, x->str);
    int nil = x->type != REDIS_REPLY_STRING;
    if (!nil) snprintf(buf, sizeof buf, "%s", x->str);
    freeReplyObject(x);
    return nil ? NULL : buf;
}

/* A command whose reply must be an integer. */
long long bd_test_redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *x = vcmd(c, fmt, ap);
    va_end(ap);
    cr_assert_eq(x->type, REDIS_REPLY_INTEGER, "%s: %s", fmt, x->type == REDIS_REPLY_ERROR ? x->str : "not an integer");
    long long v = x->integer;
    freeReplyObject(x);
    return v;
}
