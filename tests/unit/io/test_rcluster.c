/* test_rcluster.c: the Redis Cluster client's pure parts: CRC16 key slots
 * with {...} hash tags (Redis' own vectors), the routing key of a command,
 * redis-cluster:// URLs (bd_redis_open lazy: BD_ERR_CONFIG, no connect) and
 * the config check (file:line). The client against a real cluster is
 * tests/integration/test_cluster.c. */
#include <criterion/criterion.h>
#include <string.h>
#include "budgetd/config.h"
#include "budgetd/redis.h"
#include "io/rcluster.h"
#include "io/redis_int.h"
#include "fixtures.h"

static char err[1024];

static unsigned slot(const char *k) { return bd_rc_slot(k, strlen(k)); }

Test(rcluster, crc16_known_vectors)
{
    cr_assert_eq(bd_rc_crc16("123456789", 9), 0x31C3u);
    cr_assert_eq(bd_rc_crc16("", 0), 0u);
    /* values given by CLUSTER KEYSLOT of Redis 7 */
    cr_assert_eq(slot("foo"), 12182u);
    cr_assert_eq(slot("bar"), 5061u);
    cr_assert_eq(slot("123456789"), 0x31C3u & 16383);
}

Test(rcluster, hash_tags)
{
    cr_assert_eq(slot("{user1000}.following"), slot("{user1000}.followers"));
    cr_assert_eq(slot("{user1000}.following"), slot("user1000"));
    /* an empty first tag: the whole key */
    cr_assert_eq(slot("foo{}{bar}"), bd_rc_crc16("foo{}{bar}", 10) & 16383);
    /* the first '{' to the first '}' after it */
    cr_assert_eq(slot("foo{{bar}}zap"), slot("{bar"));
    cr_assert_eq(slot("foo{bar}{zap}"), slot("bar"));
    /* no closing brace: the whole key */
    cr_assert_eq(slot("foo{bar"), bd_rc_crc16("foo{bar", 7) & 16383);
    /* every key of a portfolio shares {P} */
    cr_assert_eq(slot("budgetd:{acme-us}:alloc"), slot("budgetd:{acme-us}:decisions"));
    cr_assert_eq(slot("budgetd:{acme-us}:fence"), slot("acme-us"));
}

Test(rcluster, routing_key_of_commands)
{
    size_t n = 0;
    const char *hget[] = {"HGET", "k1", "f"};
    cr_assert_str_eq(bd_rd_cmd_key(3, hget, NULL, &n), "k1");
    cr_assert_eq(n, 2);
    const char *ev[] = {"EVALSHA", "abc", "2", "ka", "kb", "x"};
    cr_assert_str_eq(bd_rd_cmd_key(6, ev, NULL, &n), "ka");
    const char *ev0[] = {"EVAL", "return 1", "0"};
    cr_assert_null(bd_rd_cmd_key(3, ev0, NULL, &n));
    const char *multi[] = {"MULTI"}, *pub[] = {"PUBLISH", "ch", "m"}, *scan[] = {"SCAN", "0"};
    cr_assert_null(bd_rd_cmd_key(1, multi, NULL, &n));
    cr_assert_null(bd_rd_cmd_key(3, pub, NULL, &n));
    cr_assert_null(bd_rd_cmd_key(2, scan, NULL, &n));
}

/* A lazy open of url; returns the code (the handle is closed). */
static bd_err_t open_url(const char *url)
{
    bd_redis_t *r = NULL;
    bd_err_t e = bd_redis_open_lazy(url, "budgetd", NULL, 0, &r, err, sizeof err);
    cr_assert_eq(e == BD_OK, r != NULL);
    bd_redis_close(r);
    return e;
}

Test(rcluster, cluster_urls)
{
    cr_assert_eq(open_url("redis-cluster://127.0.0.1:7000"), BD_OK, "%s", err);
    cr_assert_eq(open_url("redis-cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002"), BD_OK, "%s", err);
    cr_assert_eq(open_url("redis-cluster://engine:s%40cret@h1:7000,h2:7000"), BD_OK, "%s", err);
    const char *bad[] = {"redis-cluster://", "redis-cluster://h1:7000,", "redis-cluster://h1:0",
                         "redis-cluster://h1:70000", "redis-cluster://h1:7000/1", "redis-cluster://h1:7000?x=1",
                         "redis-cluster://:7000", "redis-cluster://h1:7000,,h2:7000", "redis-clusters://h1:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(open_url(bad[i]), BD_ERR_CONFIG, "%s accepted", bad[i]);
        cr_assert(!strstr(err, "cret"), "%s", err);
    }
    cr_assert_eq(open_url("redis-cluster://u:secret@h1:7000/0"), BD_ERR_CONFIG);
    cr_assert(!strstr(err, "secret"), "the password is never repeated: %s", err);
}

/* The config check: a redis-cluster:// URL is accepted, a bad one is an
 * error at its line that does not repeat it. */
Test(rcluster, config_urls)
{
    char e[1024];
    bd_config_t *c = bd_test_config("redis:\n  url: redis-cluster://h1:7000,h2:7001\n", e, sizeof e);
    cr_assert_not_null(c, "%s", e);
    cr_assert_str_eq(c->redis.url, "redis-cluster://h1:7000,h2:7001");
    bd_config_free(c);
    const char *bad[] = {"redis-cluster://u:pw@h1", "redis-cluster://h1:7000,", "redis-cluster://h1:99999",
                         "redis-cluster://h1:7000/2", "redis-cluster://"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char y[256];
        snprintf(y, sizeof y, "redis:\n  url: '%s'\n", bad[i]);
        c = bd_test_config(y, e, sizeof e);
        cr_assert_null(c, "%s accepted", bad[i]);
        cr_assert(strstr(e, ":2: redis.url: bad redis-cluster URL"), "%s: %s", bad[i], e);
        cr_assert(!strstr(e, "pw@"), "%s", e);
    }
}
