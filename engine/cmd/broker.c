/* broker.c: the embedded Kafka (librdkafka mock cluster) behind
 * `budgetd broker`, and the same cluster for integration tests. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/broker.h"

struct bd_broker {
    rd_kafka_t *rk;                /* owns the mock cluster's lifetime */
    rd_kafka_mock_cluster_t *mock;
    char *bootstraps;
};

bd_broker_t *bd_broker_start(int partitions, const char *topic, char *errbuf, size_t errlen)
{
    if (!topic || !*topic) topic = BD_BROKER_TOPIC;
    if (partitions < 1 || partitions > BD_BROKER_MAX_PARTITIONS) {
        bd_errf(errbuf, errlen, BD_ERR_USAGE, "partitions must be 1..%d, not %d", BD_BROKER_MAX_PARTITIONS,
                partitions);
        return NULL;
    }
    if (strlen(topic) > 200) {
        bd_errf(errbuf, errlen, BD_ERR_USAGE, "topic name too long");
        return NULL;
    }
    char kerr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The handle only hosts the cluster; it never connects anywhere. */
    if (rd_kafka_conf_set(conf, "log_level", "3", kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "broker: %s", kerr);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "broker: %s", kerr);
        return NULL;
    }
    rd_kafka_mock_cluster_t *mock = rd_kafka_mock_cluster_new(rk, 1);
    if (!mock) {
        rd_kafka_destroy(rk);
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "broker: could not create the mock cluster");
        return NULL;
    }
    char dlq[256];
    snprintf(dlq, sizeof dlq, "%s-dlq", topic);
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mock, topic, partitions, 1);
    if (!e) e = rd_kafka_mock_topic_create(mock, dlq, 1, 1);
    if (e) {
        rd_kafka_mock_cluster_destroy(mock);
        rd_kafka_destroy(rk);
        bd_errf(errbuf, errlen, BD_ERR_KAFKA, "broker: create topic %s: %s", topic, rd_kafka_err2str(e));
        return NULL;
    }
    bd_broker_t *b = bd_xcalloc(1, sizeof *b);
    b->rk = rk;
    b->mock = mock;
    b->bootstraps = bd_xstrdup(rd_kafka_mock_cluster_bootstraps(mock));
    return b;
}

const char *bd_broker_bootstraps(const bd_broker_t *b)
{
    return b->bootstraps;
}

rd_kafka_mock_cluster_t *bd_broker_mock(bd_broker_t *b)
{
    return b->mock;
}

void bd_broker_stop(bd_broker_t *b)
{
    if (!b) return;
    rd_kafka_mock_cluster_destroy(b->mock);
    rd_kafka_destroy(b->rk);
    free(b->bootstraps);
    free(b);
}

static int broker_usage(const char *msg)
{
    if (msg) fprintf(stderr, "budgetd broker: %s\n", msg);
    fputs("usage: budgetd broker [--topic T] [--partitions N]\n", stderr);
    return BD_EXIT_USAGE;
}

/* Takes the value of --name V or --name=V; returns NULL when absent. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != 0) return NULL;
    if (*i + 1 >= argc) return "";
    return argv[++*i];
}

int bd_broker_main(int argc, char **argv)
{
    const char *topic = BD_BROKER_TOPIC;
    int partitions = 1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs("usage: budgetd broker [--topic T] [--partitions N]\n", stdout);
            return BD_EXIT_OK;
        } else if ((v = opt_value(argc, argv, &i, "--topic")) != NULL) {
            if (!*v) return broker_usage("--topic needs a name");
            topic = v;
        } else if ((v = opt_value(argc, argv, &i, "--partitions")) != NULL) {
            char *end;
            errno = 0;
            long p = strtol(v, &end, 10);
            if (!*v || *end || errno || p < 1 || p > BD_BROKER_MAX_PARTITIONS)
                return broker_usage("--partitions needs a number 1..1024");
            partitions = (int)p;
        } else {
            char msg[300];
            snprintf(msg, sizeof msg, "unknown argument '%s'", argv[i]);
            return broker_usage(msg);
        }
    }
    /* Block before the cluster's threads exist: they inherit the mask, so
     * the signals can only be taken by sigwait below. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    char err[BD_ERRBUF];
    bd_broker_t *b = bd_broker_start(partitions, topic, err, sizeof err);
    if (!b) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        fprintf(stderr, "budgetd broker: %s\n", err);
        return BD_EXIT_RUNTIME;
    }
    printf("bootstrap=%s\n", bd_broker_bootstraps(b));
    fflush(stdout);
    fprintf(stderr, "budgetd broker: topic %s (%d partitions) and %s-dlq; SIGTERM stops\n", topic, partitions,
            topic);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {}
    bd_broker_stop(b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return BD_EXIT_OK;
}
