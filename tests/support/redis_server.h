/* redis_server.h: a real redis-server per test, started on a free port in
 * its own temp dir and killed with the test process even when the test
 * crashes (PR_SET_PDEATHSIG), with the checks tests make on its keys. */
#ifndef BUDGETD_TEST_REDIS_SERVER_H
#define BUDGETD_TEST_REDIS_SERVER_H

#include <sys/types.h>
#include <hiredis/hiredis.h>

typedef struct {
    pid_t pid;            /* 0 while halted */
    int port;
    char dir[64];         /* mkdtemp dir: redis.sock, redis.log */
    char sock[128];       /* dir/redis.sock */
    char url[64];         /* redis://127.0.0.1:PORT */
    char unix_url[160];   /* unix://DIR/redis.sock */
    char password[64];    /* "" when none (--requirepass otherwise) */
} bd_test_redis_t;

/* Starts redis-server (path from $BD_REDIS_SERVER, else /usr/bin/redis-server)
 * with --save "" --appendonly no and waits until PING answers. Returns NULL
 * (after printing why on stderr) when it cannot start. */
bd_test_redis_t *bd_test_redis_start(void);
/* Same with --requirepass password. */
bd_test_redis_t *bd_test_redis_start_auth(const char *password);
/* Stops the server (SIGTERM, then SIGKILL), removes its dir, frees t. */
void bd_test_redis_stop(bd_test_redis_t *t);
/* Stops the server but keeps port, dir and t: an outage. */
void bd_test_redis_halt(bd_test_redis_t *t);
/* Halts if running, then starts again on the same port and dir (data is
 * gone: no persistence). Returns 0, or -1 when it did not come up. */
int bd_test_redis_restart(bd_test_redis_t *t);
/* A hiredis connection over TCP (AUTH done when a password is set); NULL on
 * failure. Free with redisFree. */
redisContext *bd_test_redis_connect(const bd_test_redis_t *t);
/* Runs a command (redisCommand format) and returns the reply; aborts the
 * test (cr_assert) when the connection fails. Free with freeReplyObject. */
redisReply *bd_test_redis_cmd(redisContext *c, const char *fmt, ...);

/* A suite's .init: ignores SIGPIPE (a halted server must not kill the
 * test), starts a server into *srv and returns a raw connection to it for
 * checks; either failing fails the test. */
redisContext *bd_test_redis_up(bd_test_redis_t **srv);
/* A suite's .fini: frees the connection and stops the server (both may be
 * NULL), then clears both. */
void bd_test_redis_down(bd_test_redis_t **srv, redisContext **rc);

/* HGET key field into a buffer of its own (valid until the next call):
 * NULL when the field or key does not exist. An error reply fails the test. */
const char *bd_test_redis_hget(redisContext *c, const char *key, const char *field);
/* A command (redisCommand format) whose reply is an integer (EXISTS, XLEN,
 * HLEN, ...); any other reply fails the test. */
long long bd_test_redis_int(redisContext *c, const char *fmt, ...);

/* Any free TCP port on 127.0.0.1 (bind port 0, read it, close). */
int bd_test_free_port(void);

/* fork+exec argv[0] (argv NULL-terminated) with every inherited fd closed,
 * the signal mask cleared, stdout and stderr to out (NULL: /dev/null),
 * killed with the test process. The child's pid, or -1. */
pid_t bd_test_spawn(const char *const *argv, const char *out);

#endif
