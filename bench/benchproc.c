/* benchproc.c: see benchproc.h. */
#include "benchproc.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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
#include <librdkafka/rdkafka.h>

/* Sleeps ms milliseconds, resuming after signals. */
static void bp_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* A free TCP port on 127.0.0.1 (bind port 0 and read it back). */
static int bp_free_port(void)
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

/* fork + exec argv with stderr to logpath (NULL: /dev/null), stdin and
 * stdout to /dev/null; the child dies with the bench (PDEATHSIG). */
static pid_t bp_spawn(const char *const *argv, const char *logpath)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int nul = open("/dev/null", O_RDWR);
    int err = logpath ? open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644) : nul;
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
    }
    if (err >= 0) dup2(err, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

int bp_redis_start(bp_redis_t *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/bdbench-XXXXXX");
    if (!mkdtemp(r->dir)) return -1;
    const char *bin = getenv("BD_REDIS_SERVER");
    if (!bin || !*bin) bin = "/usr/bin/redis-server";
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = bp_free_port();
        char port[16];
        snprintf(port, sizeof(port), "%d", r->port);
        const char *argv[] = {bin, "--port", port, "--bind", "127.0.0.1", "--dir", r->dir, "--save", "",
                              "--appendonly", "no", NULL};
        r->pid = bp_spawn(argv, NULL);
        for (int i = 0; i < 50; i++) {
            bp_sleep_ms(100);
            redisContext *c = bp_redis_connect(r);
            if (!c) continue;
            redisReply *x = redisCommand(c, "PING");
            bool ok = x && x->type == REDIS_REPLY_STATUS;
            if (x) freeReplyObject(x);
            redisFree(c);
            if (ok) return 0;
        }
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    fprintf(stderr, "bench: redis-server (%s) did not start\n", bin);
    return -1;
}

void bp_redis_stop(bp_redis_t *r)
{
    if (r->pid > 0) bp_daemon_stop(r->pid, SIGTERM, 10);
    r->pid = 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", r->dir);
    if (system(cmd) != 0) { /* best effort */ }
}

redisContext *bp_redis_connect(const bp_redis_t *r)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

pid_t bp_daemon_start(const char *bin, const char *cfg, const char *logpath)
{
    const char *argv[] = {bin, "run", "-c", cfg, "--event-time", NULL};
    return bp_spawn(argv, logpath);
}

int bp_daemon_stop(pid_t pid, int sig, int timeout_s)
{
    int st = 0;
    kill(pid, sig);
    for (int i = 0; i < timeout_s * 10; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid) return st;
        bp_sleep_ms(100);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return st;
}

long long bp_decisions(redisContext *c, const char *prefix, int portfolios)
{
    long long n = 0;
    for (int i = 0; i < portfolios; i++) {
        redisReply *x = redisCommand(c, "XLEN %s:{pf-%05d}:decisions", prefix, i);
        if (!x || x->type != REDIS_REPLY_INTEGER) {
            if (x) freeReplyObject(x);
            return -1;
        }
        n += x->integer;
        freeReplyObject(x);
    }
    return n;
}

/* A producer for the bench topic (linger 5 ms); NULL on failure. */
static rd_kafka_t *bp_producer(const char *bootstraps)
{
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, e, sizeof(e)) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", e, sizeof(e)) ||
        rd_kafka_conf_set(conf, "log_level", "3", e, sizeof(e))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (!p) rd_kafka_conf_destroy(conf);
    return p;
}

/* One line keyed by its portfolio (retried while the queue is full). */
static void bp_send(rd_kafka_t *p, const char *topic, const char *key, const char *line)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                                  RD_KAFKA_V_VALUE((void *)line, strlen(line)),
                                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) return;
        rd_kafka_poll(p, 10);
    }
}

/* Cycle c of every portfolio: one event per channel, then a watermark at
 * the cycle's end. Numbers depend on (portfolio, channel, cycle) only. */
static void bp_send_cycle(rd_kafka_t *p, const char *topic, int portfolios, int channels, long c, int64_t start)
{
    char line[512], key[32];
    for (int k = 0; k < portfolios; k++) {
        snprintf(key, sizeof(key), "pf-%05d", k);
        for (int ch = 0; ch < channels; ch++) {
            double spend = 80.0 + 7.0 * ch + 3.0 * (double)((c * 7 + ch + k) % 5);
            int conv = 2 + (int)((c + ch + k) % 6);
            snprintf(line, sizeof(line),
                     "{\"event_id\":\"%s/%d/%ld\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"channel-%02d\","
                     "\"spend\":%.2f,\"conversions\":%d,\"revenue\":%.2f}",
                     key, ch, c, (long long)(start + c * 3600 + 10 * ch), key, ch, spend, conv,
                     conv * (40.0 + 4.0 * ch));
            bp_send(p, topic, key, line);
        }
        snprintf(line, sizeof(line), "{\"portfolio\":\"%s\",\"watermark\":%lld}", key,
                 (long long)(start + (c + 1) * 3600));
        bp_send(p, topic, key, line);
    }
    rd_kafka_poll(p, 0);
}

struct bp_stream {
    pthread_t th;
    rd_kafka_t *p;
    char topic[128];
    int portfolios, channels, period_ms;
    int64_t start;
    atomic_long cycles;
    atomic_bool stop;
};

/* The stream's thread: a cycle every period_ms until stopped. */
static void *bp_stream_main(void *arg)
{
    bp_stream_t *s = arg;
    while (!atomic_load(&s->stop)) {
        long c = atomic_load(&s->cycles);
        bp_send_cycle(s->p, s->topic, s->portfolios, s->channels, c, s->start);
        rd_kafka_flush(s->p, 5000);
        atomic_store(&s->cycles, c + 1);
        bp_sleep_ms(s->period_ms);
    }
    return NULL;
}

bp_stream_t *bp_stream_start(const char *bootstraps, const char *topic, int portfolios, int channels,
                             int period_ms, int64_t start)
{
    bp_stream_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->p = bp_producer(bootstraps))) {
        free(s);
        return NULL;
    }
    snprintf(s->topic, sizeof(s->topic), "%s", topic);
    s->portfolios = portfolios;
    s->channels = channels;
    s->period_ms = period_ms;
    s->start = start;
    if (pthread_create(&s->th, NULL, bp_stream_main, s) != 0) {
        rd_kafka_destroy(s->p);
        free(s);
        return NULL;
    }
    return s;
}

long bp_stream_cycles(bp_stream_t *s)
{
    return atomic_load(&s->cycles);
}

void bp_stream_stop(bp_stream_t *s)
{
    if (!s) return;
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    rd_kafka_flush(s->p, 10000);
    rd_kafka_destroy(s->p);
    free(s);
}

int bp_produce_cycles(const char *bootstraps, const char *topic, int portfolios, int channels, int cycles,
                      int64_t start)
{
    rd_kafka_t *p = bp_producer(bootstraps);
    if (!p) return -1;
    for (long c = 0; c < cycles; c++) bp_send_cycle(p, topic, portfolios, channels, c, start);
    int rc = rd_kafka_flush(p, 60000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
    rd_kafka_destroy(p);
    return rc;
}
