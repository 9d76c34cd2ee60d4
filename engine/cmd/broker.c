/* broker.c: the embedded Kafka (librdkafka mock cluster) behind
 * `budgetd broker`, and the same cluster for integration tests. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/broker.h"
#include "budgetd/config.h"
#include "budgetd/log.h"
#include "opts.h"

/* The dead-letter topic created beside topic T is T + this suffix, so the
 * defaults pair up: BD_DEFAULT_TOPIC gets BD_DEFAULT_DLQ_TOPIC. */
#define BROKER_DLQ_SUFFIX "-dlq"

struct bd_broker {
    rd_kafka_t *rk;                /* owns the mock cluster's lifetime */
    rd_kafka_mock_cluster_t *mock;
    char *bootstraps;
};

bd_broker_t *bd_broker_start(int partitions, const char *topic, char *errbuf, size_t errlen)
{
    if (!topic || !*topic) topic = BD_DEFAULT_TOPIC;
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
    snprintf(dlq, sizeof dlq, "%s" BROKER_DLQ_SUFFIX, topic);
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

/* The usage line, to stdout for --help, stderr for bad use. */
static void broker_usage(FILE *f)
{
    fputs("usage: budgetd broker [--topic T] [--partitions N]\n", f);
}

/* Parses argv into *topic and *partitions. Returns -1 to go on, else the
 * exit code (usage or --help printed). */
static int broker_parse(int argc, char **argv, const char **topic, int *partitions)
{
    static const struct option longopts[] = {
        {"topic", required_argument, NULL, 'T'}, {"partitions", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bd_opts_t o;
    bd_opts_init(&o, "broker", argc, argv, "h", longopts);
    int ch, rc = -1;
    while (rc < 0 && (ch = bd_opts_next(&o)) != -1) {
        switch (ch) {
        case 'T':
            if (!*o.arg) rc = bd_opts_fail("broker", "--topic needs a name");
            *topic = o.arg;
            break;
        case 'P':
            if (!bd_opts_int(&o, 1, BD_BROKER_MAX_PARTITIONS, partitions)) rc = BD_EXIT_USAGE;
            break;
        case 'h': broker_usage(stdout); rc = BD_EXIT_OK; break;
        default: broker_usage(stderr); rc = BD_EXIT_USAGE; break;
        }
    }
    if (rc < 0 && o.npos > 0) {
        rc = bd_opts_fail("broker", "unknown argument '%s'", o.pos[0]);
        broker_usage(stderr);
    }
    bd_opts_free(&o);
    return rc;
}

/* See broker.h. */
int bd_broker_main(int argc, char **argv)
{
    const char *topic = BD_DEFAULT_TOPIC;
    int partitions = 1;
    int rc = broker_parse(argc, argv, &topic, &partitions);
    if (rc >= 0) return rc;
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
    bd_log(BD_LOG_INFO, "broker: topic %s (%d partitions) and %s" BROKER_DLQ_SUFFIX "; SIGTERM stops", topic,
           partitions, topic);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {}
    bd_broker_stop(b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return BD_EXIT_OK;
}
