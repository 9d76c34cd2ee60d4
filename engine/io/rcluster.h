/* rcluster.h: a small Redis Cluster client on hiredis 0.14 (private to
 * engine/io; docs/DECISIONS.md "Redis Cluster"): slot map from CLUSTER
 * SLOTS, CRC16 key slots with {...} hash tags, one redisContext per node,
 * MOVED/ASK redirections, TRYAGAIN/CLUSTERDOWN and unreachable nodes retried
 * with a bounded backoff, pipelines grouped per node. Master reads and
 * writes only (no replica reads), one slot per command (no cross-slot
 * commands). */
#ifndef BUDGETD_RCLUSTER_H
#define BUDGETD_RCLUSTER_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "budgetd/common.h"

#define BD_RC_SLOTS 16384
#define BD_RC_SEEDS_MAX 16
#define BD_RC_NODES_MAX 256 /* known nodes (seeds, masters, redirections): bd_rc_masters returns no more */

typedef struct bd_rcluster bd_rcluster_t;

/* One node address (a seed, or a node named by the map or a redirection). */
typedef struct {
    char host[256];
    int port;
} bd_rc_addr_t;

/* Connection parameters, copied by bd_rc_new. */
typedef struct {
    const bd_rc_addr_t *seeds; /* at least one */
    int n_seeds;
    const char *user;          /* AUTH user ("" or NULL: none) */
    const char *pass;          /* AUTH password ("" or NULL: none) */
    int connect_ms, command_ms;
    const char *script;        /* SCRIPT LOAD on each node connection (NULL: none); static */
} bd_rc_opts_t;

/* CRC16-CCITT (XMODEM: poly 0x1021, init 0), as Redis' crc16.c. */
unsigned bd_rc_crc16(const char *buf, size_t len);

/* The slot of a key: CRC16 of the first non-empty {...} tag, else of the
 * whole key, modulo 16384 (Redis' keyHashSlot). */
unsigned bd_rc_slot(const char *key, size_t len);

/* A client that has not connected yet (bd_rc_connect reads the map). */
bd_rcluster_t *bd_rc_new(const bd_rc_opts_t *o);
void bd_rc_free(bd_rcluster_t *cl);

/* Closes every node connection and forgets the map (state unknown after an
 * error); bd_rc_connected() is 0 until the next bd_rc_connect. */
void bd_rc_drop(bd_rcluster_t *cl);

/* Reads the slot map (CLUSTER SLOTS) from the first seed or known node that
 * answers; BD_ERR_REDIS when none does. */
bd_err_t bd_rc_connect(bd_rcluster_t *cl, char *errbuf, size_t errlen);

/* 1 while a slot map is held. */
int bd_rc_connected(const bd_rcluster_t *cl);

/* Number of successful map reads so far. */
unsigned long bd_rc_map_reads(const bd_rcluster_t *cl);

/* Number of map reads that changed the map (a fail-over, a moved slot):
 * the keys' node may have lost writes, as after a reconnect. */
unsigned long bd_rc_map_changes(const bd_rcluster_t *cl);

/* Number of nodes the client knows (seeds, masters, the nodes it holds):
 * stale ones are forgotten after each map read. */
int bd_rc_known_nodes(const bd_rcluster_t *cl);

/* Sets the command timeout of every open connection (and later ones). */
void bd_rc_set_timeouts(bd_rcluster_t *cl, int connect_ms, int command_ms);

/* Runs one command on the master of key's slot (key NULL: the node of an
 * open MULTI, else the node used last, else any master), following MOVED
 * and ASK, retrying TRYAGAIN, CLUSTERDOWN and unreachable nodes with a
 * bounded backoff. Between MULTI and EXEC/DISCARD, and from a WATCH to
 * EXEC/DISCARD/UNWATCH, every command goes to that node on the connection
 * that holds the transaction: redirections are not followed (the error is
 * returned; EXEC then aborts) but update the map, and a lost connection is
 * an error, never reopened.
 * Returns the reply (an error reply included), or NULL with *err and errbuf
 * set when a node was lost with the command sent or the retries ran out
 * (the client is then dropped). Every public call here is bounded: no
 * connect or map read after RC_CALL_MS plus one connect timeout from its
 * start, nodes that failed in the call are not tried again in it, and it
 * gives up when every known node failed. */
redisReply *bd_rc_command(bd_rcluster_t *cl, const char *key, size_t klen, int argc, const char **argv,
                          const size_t *lens, bd_err_t *err, char *errbuf, size_t errlen);

/* Runs n commands as one pipeline per node (key[i] routes command i): the
 * commands of one slot keep their order. Redirected or retried replies are
 * resolved one by one in index order. rep[i] gets each reply (error replies
 * included). BD_ERR_REDIS (every rep[i] freed and NULL, the client dropped)
 * when a node was lost with commands sent. */
bd_err_t bd_rc_pipeline(bd_rcluster_t *cl, size_t n, const char *const *key, const int *argc,
                        const char *const *const *argv, const size_t *const *lens, redisReply **rep,
                        char *errbuf, size_t errlen);

/* The masters of the current map: writes up to cap node indices into idx and
 * returns how many (0 without a map). */
int bd_rc_masters(const bd_rcluster_t *cl, int *idx, int cap);

/* Runs one command on node idx (from bd_rc_masters), no redirections:
 * SCAN over every master. NULL with *err set on a lost node (dropped). */
redisReply *bd_rc_command_node(bd_rcluster_t *cl, int idx, int argc, const char **argv, const size_t *lens,
                               bd_err_t *err, char *errbuf, size_t errlen);

#endif
