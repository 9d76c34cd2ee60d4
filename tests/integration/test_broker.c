/* test_broker.c: the embedded broker serves real librdkafka clients. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <criterion/criterion.h>
#include "budgetd/broker.h"

TestSuite(broker, .timeout = 60);

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstraps)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(c, "bootstrap.servers", bootstraps, err, sizeof err), RD_KAFKA_CONF_OK);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(c, "group.id", "test", err, sizeof err);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof err);
    }
    rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof err);
    cr_assert_not_null(rk, "%s", err);
    return rk;
}

/* The partition count of topic as the cluster reports it, -1 if unknown. */
static int partition_count(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    int n = -1;
    if (rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && !md->topics[0].err) n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return n;
}

/* Produces n keyed messages to topic, then reads every partition from the
 * start and checks each message came back exactly once with its key. */
static void roundtrip(const char *bootstraps, const char *topic, int partitions, int n)
{
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER, bootstraps);
    cr_assert_eq(partition_count(p, topic), partitions);
    for (int i = 0; i < n; i++) {
        char key[32], val[64];
        snprintf(key, sizeof key, "portfolio-%d", i % 4);
        snprintf(val, sizeof val, "{\"n\":%d}", i);
        rd_kafka_resp_err_t e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                                  RD_KAFKA_V_VALUE(val, strlen(val)),
                                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        cr_assert_eq(e, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", rd_kafka_err2str(e));
    }
    cr_assert_eq(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);

    rd_kafka_t *c = client(RD_KAFKA_CONSUMER, bootstraps);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(parts, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    cr_assert_eq(rd_kafka_assign(c, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    int *seen = calloc((size_t)n, sizeof *seen);
    int got = 0;
    for (int polls = 0; got < n && polls < 200; polls++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m) continue;
        if (!m->err) {
            int v = -1;
            char buf[64] = "";
            memcpy(buf, m->payload, m->len < 63 ? m->len : 63);
            cr_assert_eq(sscanf(buf, "{\"n\":%d}", &v), 1, "payload %s", buf);
            cr_assert(v >= 0 && v < n);
            char key[32];
            snprintf(key, sizeof key, "portfolio-%d", v % 4);
            cr_assert_eq(m->key_len, strlen(key));
            cr_assert(memcmp(m->key, key, m->key_len) == 0);
            seen[v]++;
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    cr_assert_eq(got, n, "consumed %d of %d", got, n);
    for (int i = 0; i < n; i++) cr_assert_eq(seen[i], 1, "message %d seen %d times", i, seen[i]);
    free(seen);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

Test(broker, produce_and_consume_roundtrip)
{
    char err[BD_ERRBUF];
    bd_broker_t *b = bd_broker_start(3, NULL, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    cr_assert_not_null(bd_broker_mock(b));
    cr_assert(strchr(bd_broker_bootstraps(b), ':') != NULL);
    roundtrip(bd_broker_bootstraps(b), "channel-events", 3, 12);
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER, bd_broker_bootstraps(b));
    cr_assert_eq(partition_count(p, "channel-events-dlq"), 1);
    rd_kafka_destroy(p);
    bd_broker_stop(b);
}

Test(broker, custom_topic_and_bad_partitions)
{
    char err[BD_ERRBUF];
    cr_assert_null(bd_broker_start(0, NULL, err, sizeof err));
    cr_assert(strstr(err, "partitions") != NULL, "%s", err);
    bd_broker_t *b = bd_broker_start(2, "ev", err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    roundtrip(bd_broker_bootstraps(b), "ev", 2, 5);
    bd_broker_stop(b);
}

Test(broker, main_usage_errors)
{
    char *a1[] = {"broker", "--partitions", "0", NULL};
    char *a2[] = {"broker", "--bogus", NULL};
    char *a3[] = {"broker", "--topic", NULL};
    char *a4[] = {"broker", "--partitions=x", NULL};
    char *a5[] = {"broker", "--help", NULL};
    cr_assert_eq(bd_broker_main(3, a1), 2);
    cr_assert_eq(bd_broker_main(2, a2), 2);
    cr_assert_eq(bd_broker_main(2, a3), 2);
    cr_assert_eq(bd_broker_main(2, a4), 2);
    cr_assert_eq(bd_broker_main(2, a5), 0);
}

/* The command as a subprocess: first stdout line is the bootstrap, clients
 * can use it, SIGTERM ends it with exit 0. */
Test(broker, main_serves_until_sigterm)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(99);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        char *argv[] = {"broker", "--topic=demo", "--partitions", "4", NULL};
        _exit(bd_broker_main(4, argv));
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[256] = "";
    cr_assert_not_null(fgets(line, sizeof line, f), "no first line from broker");
    cr_assert(strncmp(line, "bootstrap=", 10) == 0, "first line: %s", line);
    line[strcspn(line, "\n")] = 0;
    roundtrip(line + 10, "demo", 4, 8);
    kill(pid, SIGTERM);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "broker did not exit normally (status %d)", st);
    cr_assert_eq(WEXITSTATUS(st), 0);
    fclose(f);
}
