/* test_cluster_client.c: the Redis Cluster client in-process, on the
 * behaviour the daemon relies on (tests/integration/test_cluster.c runs
 * budgetd itself): every call is bounded (an unanswering seed is dialled
 * once per call), WATCH pins its node as MULTI does, and a fail-over's dead
 * master is forgotten. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <hiredis/hiredis.h>
#include "io/rcluster.h"
#include "redis_cluster.h"

/* The cluster of the running test (one per test process): the suite's
 * .fini stops it also when an assertion ended the test early. */
static bd_test_cluster_t *g_cl;

/* Starts the test's cluster (3 masters, 3 replicas). */
static void start_cluster(void)
{
    signal(SIGPIPE, SIG_IGN);
    g_cl = bd_test_cluster_start();
    cr_assert_not_null(g_cl, "no cluster");
}

/* Stops it (again: nothing). */
static void stop_cluster(void)
{
    bd_test_cluster_stop(g_cl);
    g_cl = NULL;
}

TestSuite(cluster_client, .fini = stop_cluster);

/* A listening socket on 127.0.0.1 that never accepts (connects complete in
 * its backlog, commands get no answer); its port in *port. */
static int silent_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 128), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    *port = ntohs(a.sin_port);
    return fd;
}

/* How many connections reached fd since the last call (accepted, closed). */
static int drain_connects(int fd)
{
    int n = 0, c;
    while ((c = accept(fd, NULL, NULL)) >= 0) {
        close(c);
        n++;
    }
    return n;
}

/* Bounded calls: a seed that accepts connections but never answers is
 * dialled once per call (bd_rc_connect, bd_rc_command, bd_rc_pipeline),
 * then the call fails: a node that failed within a call is not tried again
 * in it, and with every known node failed there is nothing to wait for
 * (before: dialled twice per retry, 12 retries). */
Test(cluster_client, unanswering_seed_is_dialled_once_per_call, .timeout = 60)
{
    signal(SIGPIPE, SIG_IGN);
    int port, fd = silent_listener(&port);
    bd_rc_addr_t seed = {"127.0.0.1", port};
    bd_rc_opts_t o = {.seeds = &seed, .n_seeds = 1, .connect_ms = 200, .command_ms = 200};
    bd_rcluster_t *rc = bd_rc_new(&o);
    char err[512];
    cr_assert_neq(bd_rc_connect(rc, err, sizeof err), BD_OK);
    cr_assert_eq(drain_connects(fd), 1, "bd_rc_connect");
    bd_err_t e = BD_OK;
    const char *ping[1] = {"PING"};
    cr_assert_null(bd_rc_command(rc, NULL, 0, 1, ping, NULL, &e, err, sizeof err));
    cr_assert_eq(e, BD_ERR_REDIS);
    cr_assert_eq(drain_connects(fd), 1, "bd_rc_command: %s", err);
    const char *k[2] = {"a", "b"}, *get_a[2] = {"GET", "a"}, *get_b[2] = {"GET", "b"};
    const char *const *argv[2] = {get_a, get_b};
    const int argc[2] = {2, 2};
    const size_t *lens[2] = {NULL, NULL};
    redisReply *rep[2] = {(redisReply *)&e, (redisReply *)&e};
    cr_assert_neq(bd_rc_pipeline(rc, 2, k, argc, argv, lens, rep, err, sizeof err), BD_OK);
    cr_assert_null(rep[0]);
    cr_assert_null(rep[1]);
    cr_assert_eq(drain_connects(fd), 1, "bd_rc_pipeline: %s", err);
    bd_rc_free(rc);
    close(fd);
}

/* A command through rc on key (its reply's type, the reply freed; its
 * text, or the error, into out). */
static int rc_cmd(bd_rcluster_t *rc, const char *key, int argc, const char **argv, char *out, size_t cap)
{
    bd_err_t e;
    char err[512];
    redisReply *x = bd_rc_command(rc, key, key ? strlen(key) : 0, argc, argv, NULL, &e, err, sizeof err);
    if (!x) {
        snprintf(out, cap, "%s", err);
        return -1;
    }
    int t = x->type;
    snprintf(out, cap, "%s", x->str ? x->str : "");
    freeReplyObject(x);
    return t;
}

/* WATCH pins its node as MULTI does: while it is active a redirection is
 * returned, not followed (the watched key moved: the transaction cannot
 * hold); UNWATCH (and EXEC, DISCARD) release it. */
Test(cluster_client, watch_pins_its_node, .timeout = 120)
{
    start_cluster();
    const char *key = "budgetd:{acme-us}:kill";
    bd_rc_addr_t seed = {"127.0.0.1", g_cl->port[0]};
    bd_rc_opts_t o = {.seeds = &seed, .n_seeds = 1};
    bd_rcluster_t *rc = bd_rc_new(&o);
    char out[512];
    cr_assert_eq(bd_rc_connect(rc, out, sizeof out), BD_OK, "%s", out);
    const char *set[3] = {"SET", key, "x"}, *get[2] = {"GET", key}, *watch[2] = {"WATCH", key},
               *unwatch[1] = {"UNWATCH"}, *multi[1] = {"MULTI"}, *exec[1] = {"EXEC"};
    cr_assert_eq(rc_cmd(rc, key, 3, set, out, sizeof out), REDIS_REPLY_STATUS, "%s", out);
    cr_assert_eq(rc_cmd(rc, key, 2, watch, out, sizeof out), REDIS_REPLY_STATUS, "%s", out);
    bd_test_cluster_move_slot(g_cl, "acme-us", bd_test_cluster_other_master(g_cl, "acme-us"), NULL, NULL);
    cr_assert_eq(rc_cmd(rc, key, 2, get, out, sizeof out), REDIS_REPLY_ERROR, "GET under WATCH followed: %s", out);
    cr_assert(!strncmp(out, "MOVED ", 6), "%s", out);
    cr_assert_eq(rc_cmd(rc, NULL, 1, unwatch, out, sizeof out), REDIS_REPLY_STATUS, "%s", out);
    cr_assert_eq(rc_cmd(rc, key, 2, get, out, sizeof out), REDIS_REPLY_STRING, "%s", out);
    cr_assert_str_eq(out, "x");
    /* WATCH, MULTI, EXEC on the key's new node: a complete transaction */
    cr_assert_eq(rc_cmd(rc, key, 2, watch, out, sizeof out), REDIS_REPLY_STATUS, "%s", out);
    cr_assert_eq(rc_cmd(rc, NULL, 1, multi, out, sizeof out), REDIS_REPLY_STATUS, "%s", out);
    cr_assert_eq(rc_cmd(rc, key, 2, get, out, sizeof out), REDIS_REPLY_STATUS, "%s", out);
    cr_assert_eq(rc_cmd(rc, NULL, 1, exec, out, sizeof out), REDIS_REPLY_ARRAY, "%s", out);
    bd_rc_free(rc);
    stop_cluster();
}

/* A fail-over (the master of {acme-us} SIGKILLed, its replica promoted)
 * is followed by a keyed read, and the dead master is forgotten: the
 * client knows its seed and the current masters only. */
Test(cluster_client, failover_forgets_the_old_master, .timeout = 120)
{
    start_cluster();
    const char *key = "budgetd:{acme-us}:kill";
    int m = bd_test_cluster_master_of(g_cl, key);
    cr_assert(m > 0, "acme-us on node %d", m);
    bd_rc_addr_t seed = {"127.0.0.1", g_cl->port[0]};
    bd_rc_opts_t o = {.seeds = &seed, .n_seeds = 1};
    bd_rcluster_t *rc = bd_rc_new(&o);
    char out[512];
    cr_assert_eq(bd_rc_connect(rc, out, sizeof out), BD_OK, "%s", out);
    const char *set[3] = {"SET", key, "x"}, *get[2] = {"GET", key};
    cr_assert_eq(rc_cmd(rc, key, 3, set, out, sizeof out), REDIS_REPLY_STATUS, "%s", out);
    cr_assert_eq(bd_test_cluster_wait_synced(g_cl, 10000), 0);
    int known = bd_rc_known_nodes(rc);
    bd_test_cluster_kill(g_cl, m);
    cr_assert_eq(bd_test_cluster_wait_ok(g_cl, 30000), 0, "no fail-over");
    /* the first read finds the killed master's connection closed: a lost
     * command is not resent (the client is dropped), the next one goes on */
    if (rc_cmd(rc, key, 2, get, out, sizeof out) < 0) cr_assert_eq(bd_rc_connected(rc), 0);
    cr_assert_eq(rc_cmd(rc, key, 2, get, out, sizeof out), REDIS_REPLY_STRING, "%s", out);
    cr_assert_str_eq(out, "x");
    int idx[BD_RC_NODES_MAX];
    cr_assert_eq(bd_rc_masters(rc, idx, BD_RC_NODES_MAX), 3);
    cr_assert_eq(bd_rc_known_nodes(rc), known, "the dead master is still known (%d nodes, %d before)",
                 bd_rc_known_nodes(rc), known);
    bd_rc_free(rc);
    stop_cluster();
}
