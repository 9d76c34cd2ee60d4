/* redis_int.h: internals shared by the Redis sink's files (not public):
 * the connection handle and the helpers every command goes through. */
#ifndef BUDGETD_REDIS_INT_H
#define BUDGETD_REDIS_INT_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"
#include "rcluster.h"

#define RD_KEY_MAX 256

struct bd_redis {
    redisContext *c;     /* NULL while disconnected (always NULL for a cluster) */
    int is_cluster;      /* (v2) a redis-cluster:// URL: every command goes through cl */
    bd_rcluster_t *cl;   /* the cluster client (NULL until the first connect) */
    bd_rc_addr_t seeds[BD_RC_SEEDS_MAX]; /* the URL's seed nodes (host/port: the first) */
    int n_seeds;
    int is_unix;
    char host[256];
    int port;
    char path[256];
    char user[128];
    char pass[256];
    int db;
    char prefix[128];
    int maxlen;
    int connect_ms, command_ms;
    char sha[48];        /* SHA-1 of the write script as the server reported it */
    unsigned long reconnects; /* successful connects so far */
    int no_scripts;      /* a reader: never SCRIPT LOAD (its ACL user may not) */
    char pwenv[64];      /* the variable the password came from ("": none), for messages */
};

/* 1 when s is a docs/CONTRACT.md §1 name (1-64 of [A-Za-z0-9_.:-]): such a
 * name can be put inside a {P} hash tag and a SCAN pattern as is. */
int bd_rd_name_ok(const char *s);
/* A field name of the alloc hash: a channel's, or (v2) an arm's "C/A". */
int bd_rd_field_ok(const char *s);

/* out (RD_KEY_MAX bytes) = "PFX:{portfolio}:what". */
void bd_rd_key(const bd_redis_t *r, char *out, const char *portfolio, const char *what);

/* Parses a redis://, unix:// or (v2) redis-cluster:// URL into r
 * (BD_ERR_CONFIG on a bad one; the text never repeats the URL, it may hold a
 * password). redis_url.c. */
bd_err_t bd_rd_parse_url(bd_redis_t *r, const char *url, char *errbuf, size_t errlen);

/* Frees the connection after an error: its state is unknown. */
void bd_rd_drop(bd_redis_t *r);

/* Connects when there is no connection: every call gets one free retry. */
bd_err_t bd_rd_ensure(bd_redis_t *r, char *errbuf, size_t errlen);

/* The key a command is routed by in a cluster (argv[1], the first key of
 * EVAL/EVALSHA; NULL for keyless commands: MULTI, EXEC, SCAN, PUBLISH...). */
const char *bd_rd_cmd_key(int argc, const char **argv, const size_t *lens, size_t *klen);

/* Runs one command (connecting first when needed), routed by its key in a
 * cluster. NULL with *err and
 * errbuf set on a lost connection (then dropped) or an error reply. */
redisReply *bd_rd_cmd(bd_redis_t *r, int argc, const char **argv, const size_t *lens, bd_err_t *err,
                      char *errbuf, size_t errlen);

/* Runs one command whose reply only matters by its type (a step of a
 * MULTI/EXEC transaction); the reply is freed. Returns its type, or -1 with
 * *e and errbuf set on an error. */
int bd_rd_cmd_type(bd_redis_t *r, int argc, const char **argv, bd_err_t *e, char *errbuf, size_t errlen);

/* Ends an optimistic transaction that failed before its EXEC: DISCARD when
 * in_multi (a MULTI succeeded), else UNWATCH, when still connected; the
 * caller's error (errbuf) is kept. */
void bd_rd_tx_abort(bd_redis_t *r, int in_multi);

#endif
