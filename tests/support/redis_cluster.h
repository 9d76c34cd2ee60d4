/* redis_cluster.h: a real Redis Cluster per test (3 masters, 3 replicas)
 * on free ports in one temp dir, created with `redis-cli --cluster create`;
 * its servers die with the test process (PR_SET_PDEATHSIG) and stop cleans
 * everything. Plus the cluster-aware checks the tests make on its keys. */
#ifndef BUDGETD_TEST_REDIS_CLUSTER_H
#define BUDGETD_TEST_REDIS_CLUSTER_H

#include <sys/types.h>
#include <hiredis/hiredis.h>

#define BD_TEST_CLUSTER_NODES 6

typedef struct {
    pid_t pid[BD_TEST_CLUSTER_NODES]; /* 0 once stopped or killed */
    int port[BD_TEST_CLUSTER_NODES];
    char dir[64];                     /* mkdtemp root: nK/ per node */
    char url[256];                    /* redis-cluster://127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2 */
    char password[64];                /* "" when none (--requirepass and --masterauth otherwise) */
} bd_test_cluster_t;

/* Starts the six servers (--cluster-enabled yes, cluster-node-timeout 2 s:
 * short for quick fail-overs, long enough that a loaded CI machine causes
 * none by itself), creates the cluster and waits until every node reports
 * cluster_state:ok with all slots assigned. NULL (after printing why) on failure. */
bd_test_cluster_t *bd_test_cluster_start(void);
/* Same with --requirepass password on every node (the helpers AUTH). */
bd_test_cluster_t *bd_test_cluster_start_auth(const char *password);
/* Kills every server and removes the dir; frees t (NULL is fine). */
void bd_test_cluster_stop(bd_test_cluster_t *t);
/* SIGKILLs node i (an abrupt master loss). */
void bd_test_cluster_kill(bd_test_cluster_t *t, int i);
/* A connection to node i; NULL when it does not answer. */
redisContext *bd_test_cluster_node(const bd_test_cluster_t *t, int i);
/* Waits (up to timeout_ms) until every live node reports cluster_state:ok
 * and agrees on the master of every slot; 0, or -1 on timeout. */
int bd_test_cluster_wait_ok(const bd_test_cluster_t *t, int timeout_ms);
/* The node index of the master serving key (asked to a live node), -1 when
 * unknown. */
int bd_test_cluster_master_of(const bd_test_cluster_t *t, const char *key);
/* A replica of master node m (from CLUSTER NODES), -1 when none. */
int bd_test_cluster_replica_of(const bd_test_cluster_t *t, int m);
/* Node i's cluster id (40 hex digits) into out (41 bytes); 0 or -1. */
int bd_test_cluster_id(const bd_test_cluster_t *t, int i, char *out);
/* Runs a command (redisCommand format) on the master serving key; the
 * reply (free with freeReplyObject), NULL when no node answered. */
redisReply *bd_test_cluster_cmd(const bd_test_cluster_t *t, const char *key, const char *fmt, ...);
/* Every key of the live masters (KEYS *), sorted; *n of them. Free each
 * and the array. */
char **bd_test_cluster_keys(const bd_test_cluster_t *t, size_t *n);
/* Waits until every replica has the replication offset of its master
 * (nothing written is only on a master); 0, or -1 after timeout_ms. */
int bd_test_cluster_wait_synced(const bd_test_cluster_t *t, int timeout_ms);

/* Test-side operations that fail the running test on error
 * (redis_cluster_ops.c). A command on node i (redisCommand format), its
 * reply checked not to be an error; freed. */
void bd_test_cluster_ok(const bd_test_cluster_t *t, int i, const char *fmt, ...);
/* Moves the slot of hash tag {tag} to master `to` as redis-cli --cluster
 * reshard does: IMPORTING on the target, MIGRATING on the source, then
 * (after mid(), when given: writes go on meanwhile) MIGRATE of its keys
 * (authenticated when t has a password) in batches of 3 with mid() between
 * batches, then SETSLOT NODE on target, source and the other masters. */
void bd_test_cluster_move_slot(const bd_test_cluster_t *t, const char *tag, int to, void (*mid)(void *), void *arg);
/* The first master that does not serve {tag}, -1 when none. */
int bd_test_cluster_other_master(const bd_test_cluster_t *t, const char *tag);

#endif
