/* redis_cluster.c: a real Redis Cluster for a test (see redis_cluster.h).
 * Six redis-server processes with --cluster-enabled yes, each in its own
 * sub-directory of one temp dir, joined by `redis-cli --cluster create
 * --cluster-replicas 1`. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include "redis_cluster.h"
#include "redis_server.h"

/* Sleeps ms milliseconds, resuming after signals. */
static void cl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* 1 when 127.0.0.1:port can be bound now. */
static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A port P with P and its cluster bus port P + 10000 free, not one of the
 * first k already taken. */
static int pick_port(const bd_test_cluster_t *t, int k)
{
    for (int tries = 0; tries < 1000; tries++) {
        int p = 20000 + (int)(random() % 30000);
        int dup = 0;
        for (int i = 0; i < k; i++) dup |= abs(t->port[i] - p) <= 1 || abs(t->port[i] - p) == 10000;
        if (!dup && port_free(p) && port_free(p + 10000)) return p;
    }
    return -1;
}

/* Starts node i in dir/nI. */
static pid_t start_node(bd_test_cluster_t *t, int i)
{
    const char *bin = getenv("BD_REDIS_SERVER");
    if (!bin || !*bin) bin = "/usr/bin/redis-server";
    char port[16], dir[128], log[160];
    snprintf(port, sizeof port, "%d", t->port[i]);
    snprintf(dir, sizeof dir, "%s/n%d", t->dir, i);
    snprintf(log, sizeof log, "%s/redis.log", dir);
    mkdir(dir, 0700);
    const char *argv[] = {bin, "--port", port, "--bind", "127.0.0.1", "--dir", dir, "--cluster-enabled", "yes",
                          "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                          "--cluster-replica-validity-factor", "0", "--save", "", "--appendonly", "no",
                          "--daemonize", "no", "--logfile", log, NULL, NULL, NULL, NULL, NULL};
    if (t->password[0]) {
        int n = 0;
        while (argv[n]) n++;
        argv[n++] = "--requirepass";
        argv[n++] = t->password;
        argv[n++] = "--masterauth";
        argv[n++] = t->password;
    }
    return bd_test_spawn(argv, NULL);
}

/* See redis_cluster.h. */
redisContext *bd_test_cluster_node(const bd_test_cluster_t *t, int i)
{
    if (i < 0 || i >= BD_TEST_CLUSTER_NODES || t->pid[i] <= 0) return NULL;
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", t->port[i], tv);
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        if (t->password[0]) {
            redisReply *r = redisCommand(c, "AUTH %s", t->password);
            if (r) freeReplyObject(r);
        }
        return c;
    }
    if (c) redisFree(c);
    return NULL;
}

/* A reply of node i to a command; NULL when it does not answer. */
static redisReply *node_cmd(const bd_test_cluster_t *t, int i, const char *fmt, ...)
{
    redisContext *c = bd_test_cluster_node(t, i);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* The node index listening on port, -1 when none. */
static int node_of_port(const bd_test_cluster_t *t, long long port)
{
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++)
        if (t->port[i] == port) return i;
    return -1;
}

/* Node i's slot map as "lo-hi:port;..." (CLUSTER SLOTS order is by node,
 * so the entries are sorted by lo first); -1 when it cannot tell. */
static int slot_sig(const bd_test_cluster_t *t, int i, char *out, size_t cap)
{
    redisReply *r = node_cmd(t, i, "CLUSTER SLOTS");
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r) freeReplyObject(r);
        return -1;
    }
    out[0] = 0;
    long long covered = 0;
    for (long long lo = 0; lo < 16384;) {
        long long hi = -1, port = -1;
        for (size_t k = 0; k < r->elements; k++)
            if (r->element[k]->element[0]->integer == lo) {
                hi = r->element[k]->element[1]->integer;
                port = r->element[k]->element[2]->element[1]->integer;
            }
        if (hi < 0 || node_of_port(t, port) < 0 || t->pid[node_of_port(t, port)] <= 0) break;
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%lld-%lld:%lld;", lo, hi, port);
        covered += hi - lo + 1;
        lo = hi + 1;
    }
    freeReplyObject(r);
    return covered == 16384 ? 0 : -1;
}

/* See redis_cluster.h. */
int bd_test_cluster_wait_ok(const bd_test_cluster_t *t, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        int ok = 1;
        static char first[4096], sig[4096];
        first[0] = 0;
        for (int i = 0; i < BD_TEST_CLUSTER_NODES && ok; i++) {
            if (t->pid[i] <= 0) continue;
            redisReply *r = node_cmd(t, i, "CLUSTER INFO");
            ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") &&
                 strstr(r->str, "cluster_slots_assigned:16384");
            if (r) freeReplyObject(r);
            if (ok) ok = slot_sig(t, i, sig, sizeof sig) == 0;
            if (ok && !first[0]) snprintf(first, sizeof first, "%s", sig);
            else if (ok) ok = strcmp(first, sig) == 0;
        }
        if (ok) return 0;
        cl_sleep_ms(100);
    }
    return -1;
}

/* Removes dir and everything below it (two levels). */
static void rm_tree(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) != 0 && depth > 0) rm_tree(p, depth - 1);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* See redis_cluster.h. */
void bd_test_cluster_kill(bd_test_cluster_t *t, int i)
{
    if (i < 0 || i >= BD_TEST_CLUSTER_NODES || t->pid[i] <= 0) return;
    kill(t->pid[i], SIGKILL);
    waitpid(t->pid[i], NULL, 0);
    t->pid[i] = 0;
}

/* See redis_cluster.h. */
void bd_test_cluster_stop(bd_test_cluster_t *t)
{
    if (!t) return;
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) bd_test_cluster_kill(t, i);
    rm_tree(t->dir, 1);
    free(t);
}

/* Waits until node i answers PING; -1 when it exited or after 10 s. */
static int node_ready(bd_test_cluster_t *t, int i)
{
    for (int k = 0; k < 1000; k++) {
        if (waitpid(t->pid[i], NULL, WNOHANG) == t->pid[i]) {
            t->pid[i] = 0;
            return -1;
        }
        redisReply *r = node_cmd(t, i, "PING");
        if (r) {
            freeReplyObject(r);
            return 0;
        }
        cl_sleep_ms(10);
    }
    return -1;
}

/* `redis-cli --cluster create` over the six nodes; 0 when it succeeded. */
static int create_cluster(const bd_test_cluster_t *t)
{
    const char *cli = getenv("BD_REDIS_CLI");
    if (!cli || !*cli) cli = "/usr/bin/redis-cli";
    char addr[BD_TEST_CLUSTER_NODES][32], log[128];
    const char *argv[20] = {cli, "--cluster", "create"};
    int argc = 3;
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", t->port[i]);
        argv[argc++] = addr[i];
    }
    argv[argc++] = "--cluster-replicas";
    argv[argc++] = "1";
    argv[argc++] = "--cluster-yes";
    if (t->password[0]) {
        argv[argc++] = "-a";
        argv[argc++] = t->password;
        argv[argc++] = "--no-auth-warning";
    }
    argv[argc] = NULL;
    snprintf(log, sizeof log, "%s/create.log", t->dir);
    pid_t pid = bd_test_spawn(argv, log);
    int st = 0;
    for (int k = 0; k < 600; k++) {
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
        cl_sleep_ms(100);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* See redis_cluster.h. */
bd_test_cluster_t *bd_test_cluster_start(void)
{
    return bd_test_cluster_start_auth(NULL);
}

/* See redis_cluster.h. */
bd_test_cluster_t *bd_test_cluster_start_auth(const char *password)
{
    bd_test_cluster_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (password) snprintf(t->password, sizeof t->password, "%s", password);
    srandom((unsigned)getpid() ^ (unsigned)time(NULL));
    snprintf(t->dir, sizeof t->dir, "/tmp/bdcluster-XXXXXX");
    if (!mkdtemp(t->dir)) {
        fprintf(stderr, "test cluster: mkdtemp: %s\n", strerror(errno));
        free(t);
        return NULL;
    }
    int ok = 1;
    for (int i = 0; i < BD_TEST_CLUSTER_NODES && ok; i++) {
        ok = 0;
        for (int attempt = 0; attempt < 5 && !ok; attempt++) {
            t->port[i] = pick_port(t, i);
            if (t->port[i] > 0) t->pid[i] = start_node(t, i);
            ok = t->port[i] > 0 && t->pid[i] > 0 && node_ready(t, i) == 0;
        }
    }
    if (ok) ok = create_cluster(t) == 0;
    if (ok) ok = bd_test_cluster_wait_ok(t, 30000) == 0;
    if (!ok) {
        fprintf(stderr, "test cluster: could not start a cluster (see %s)\n", t->dir);
        for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) bd_test_cluster_kill(t, i);
        free(t);
        return NULL;
    }
    snprintf(t->url, sizeof t->url, "redis-cluster://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", t->port[0],
             t->port[1], t->port[2]);
    return t;
}

/* A live node's index (the first), -1 when none. */
static int any_live(const bd_test_cluster_t *t)
{
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++)
        if (t->pid[i] > 0) return i;
    return -1;
}

/* See redis_cluster.h. */
int bd_test_cluster_master_of(const bd_test_cluster_t *t, const char *key)
{
    int a = any_live(t);
    redisReply *r = node_cmd(t, a, "CLUSTER KEYSLOT %s", key);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (r) freeReplyObject(r);
        return -1;
    }
    long long slot = r->integer;
    freeReplyObject(r);
    r = node_cmd(t, a, "CLUSTER SLOTS");
    int m = -1;
    for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++)
        if (r->element[k]->element[0]->integer <= slot && slot <= r->element[k]->element[1]->integer)
            m = node_of_port(t, r->element[k]->element[2]->element[1]->integer);
    if (r) freeReplyObject(r);
    return m;
}

/* See redis_cluster.h. */
int bd_test_cluster_id(const bd_test_cluster_t *t, int i, char *out)
{
    redisReply *r = node_cmd(t, i, "CLUSTER MYID");
    int ok = r && r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok) memcpy(out, r->str, 41);
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

/* See redis_cluster.h. */
int bd_test_cluster_replica_of(const bd_test_cluster_t *t, int m)
{
    char id[41];
    if (bd_test_cluster_id(t, m, id) != 0) return -1;
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) {
        if (i == m || t->pid[i] <= 0) continue;
        redisReply *r = node_cmd(t, i, "INFO replication");
        int rep = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "role:slave");
        char want[32];
        snprintf(want, sizeof want, "master_port:%d\r", t->port[m]);
        rep = rep && strstr(r->str, want);
        if (r) freeReplyObject(r);
        if (rep) return i;
    }
    return -1;
}

/* See redis_cluster.h. */
redisReply *bd_test_cluster_cmd(const bd_test_cluster_t *t, const char *key, const char *fmt, ...)
{
    int m = bd_test_cluster_master_of(t, key);
    redisContext *c = bd_test_cluster_node(t, m);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* 1 when node i is a live master. */
static int is_master(const bd_test_cluster_t *t, int i)
{
    redisReply *r = node_cmd(t, i, "ROLE");
    int m = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->str &&
            !strcmp(r->element[0]->str, "master");
    if (r) freeReplyObject(r);
    return m;
}

/* qsort order of C strings. */
static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* See redis_cluster.h. */
char **bd_test_cluster_keys(const bd_test_cluster_t *t, size_t *n)
{
    char **out = NULL;
    *n = 0;
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) {
        if (t->pid[i] <= 0 || !is_master(t, i)) continue;
        redisReply *r = node_cmd(t, i, "KEYS *");
        for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
            out = realloc(out, (*n + 1) * sizeof *out);
            out[(*n)++] = strdup(r->element[k]->str);
        }
        if (r) freeReplyObject(r);
    }
    if (*n) qsort(out, *n, sizeof *out, str_cmp);
    return out;
}

/* 1 when every replica of live master i has its offset. */
static int master_synced(const bd_test_cluster_t *t, int i)
{
    redisReply *r = node_cmd(t, i, "INFO replication");
    if (!r || r->type != REDIS_REPLY_STRING) {
        if (r) freeReplyObject(r);
        return 0;
    }
    const char *p = strstr(r->str, "master_repl_offset:");
    long long off = p ? atoll(p + 19) : -1;
    int ok = off >= 0;
    for (const char *s = r->str; ok && (s = strstr(s, "offset=")) != NULL; s += 7) ok = atoll(s + 7) == off;
    freeReplyObject(r);
    return ok;
}

/* See redis_cluster.h. */
int bd_test_cluster_wait_synced(const bd_test_cluster_t *t, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        int ok = 1;
        for (int i = 0; i < BD_TEST_CLUSTER_NODES && ok; i++)
            if (t->pid[i] > 0 && is_master(t, i)) ok = master_synced(t, i);
        if (ok) return 0;
        cl_sleep_ms(50);
    }
    return -1;
}
