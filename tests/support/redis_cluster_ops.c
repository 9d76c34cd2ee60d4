/* redis_cluster_ops.c: the test-side cluster operations that assert as
 * they go (Criterion): a checked command on a node, a slot migration as
 * `redis-cli --cluster reshard` does it, another master (see
 * redis_cluster.h). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "io/rcluster.h"
#include "redis_cluster.h"

/* See redis_cluster.h. */
void bd_test_cluster_ok(const bd_test_cluster_t *t, int i, const char *fmt, ...)
{
    redisContext *c = bd_test_cluster_node(t, i);
    cr_assert_not_null(c, "node %d does not answer", i);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "node %d: %s: %s", i, fmt, r ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
}

/* See redis_cluster.h. */
void bd_test_cluster_move_slot(const bd_test_cluster_t *t, const char *tag, int to, void (*mid)(void *), void *arg)
{
    char key[96], from_id[41], to_id[41];
    snprintf(key, sizeof key, "{%s}", tag);
    int from = bd_test_cluster_master_of(t, key);
    cr_assert_geq(from, 0);
    if (from == to) return;
    unsigned slot = bd_rc_slot(key, strlen(key));
    cr_assert_eq(bd_test_cluster_id(t, from, from_id), 0);
    cr_assert_eq(bd_test_cluster_id(t, to, to_id), 0);
    bd_test_cluster_ok(t, to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id);
    bd_test_cluster_ok(t, from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id);
    if (mid) mid(arg);
    for (;;) {
        redisContext *c = bd_test_cluster_node(t, from);
        redisReply *r = redisCommand(c, "CLUSTER GETKEYSINSLOT %u 3", slot);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        size_t n = r->elements;
        if (n) {
            const char *argv[16];
            char port[16];
            snprintf(port, sizeof port, "%d", t->port[to]);
            int argc = 0;
            const char *head[] = {"MIGRATE", "127.0.0.1", port, "", "0", "5000"};
            for (int k = 0; k < 6; k++) argv[argc++] = head[k];
            if (t->password[0]) {
                argv[argc++] = "AUTH";
                argv[argc++] = t->password;
            }
            argv[argc++] = "KEYS";
            for (size_t k = 0; k < n; k++) argv[argc++] = r->element[k]->str;
            redisReply *m = redisCommandArgv(c, argc, argv, NULL);
            cr_assert(m && m->type != REDIS_REPLY_ERROR, "MIGRATE: %s", m ? m->str : c->errstr);
            freeReplyObject(m);
        }
        freeReplyObject(r);
        redisFree(c);
        if (!n) break;
        if (mid) mid(arg);
    }
    bd_test_cluster_ok(t, to, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
    bd_test_cluster_ok(t, from, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) {
        if (i == to || i == from || t->pid[i] <= 0) continue;
        redisContext *c = bd_test_cluster_node(t, i);
        redisReply *r = redisCommand(c, "ROLE");
        int master = r && r->type == REDIS_REPLY_ARRAY && !strcmp(r->element[0]->str, "master");
        freeReplyObject(r);
        redisFree(c);
        if (master) bd_test_cluster_ok(t, i, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
    }
    cr_assert_eq(bd_test_cluster_wait_ok(t, 20000), 0, "cluster not ok after the slot move");
    cr_assert_eq(bd_test_cluster_master_of(t, key), to);
}

/* See redis_cluster.h. */
int bd_test_cluster_other_master(const bd_test_cluster_t *t, const char *tag)
{
    char key[96];
    snprintf(key, sizeof key, "{%s}", tag);
    int m = bd_test_cluster_master_of(t, key);
    for (int i = 0; i < BD_TEST_CLUSTER_NODES; i++) {
        if (i == m || t->pid[i] <= 0) continue;
        redisContext *c = bd_test_cluster_node(t, i);
        redisReply *r = redisCommand(c, "ROLE");
        int master = r && r->type == REDIS_REPLY_ARRAY && !strcmp(r->element[0]->str, "master");
        freeReplyObject(r);
        redisFree(c);
        if (master) return i;
    }
    return -1;
}
