/* redis_int.h: internals shared by the Redis sink's files (not public):
 * the connection handle and the helpers every command goes through. */
#ifndef BUDGETD_REDIS_INT_H
#define BUDGETD_REDIS_INT_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "budgetd/redis.h"

#define RD_KEY_MAX 256

struct bd_redis {
    redisContext *c;     /* NULL while disconnected */
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

/* out (RD_KEY_MAX bytes) = "PFX:{portfolio}:what". */
void bd_rd_key(const bd_redis_t *r, char *out, const char *portfolio, const char *what);

/* Frees the connection after an error: its state is unknown. */
void bd_rd_drop(bd_redis_t *r);

/* Connects when there is no connection: every call gets one free retry. */
bd_err_t bd_rd_ensure(bd_redis_t *r, char *errbuf, size_t errlen);

/* Runs one command (connecting first when needed). NULL with *err and
 * errbuf set on a lost connection (then dropped) or an error reply. */
redisReply *bd_rd_cmd(bd_redis_t *r, int argc, const char **argv, const size_t *lens, bd_err_t *err,
                      char *errbuf, size_t errlen);

#endif
