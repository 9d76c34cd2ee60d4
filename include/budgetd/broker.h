/* broker.h: an embedded Kafka for demos and tests (docs/CONTRACT.md §4
 * `budgetd broker`), built on librdkafka's mock cluster. Not a real broker:
 * one node, in memory, each partition keeps about 5 MiB / 100k message sets,
 * and the first consumer-group join takes about 3 s. */
#ifndef BUDGETD_BROKER_H
#define BUDGETD_BROKER_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "budgetd/common.h"

typedef struct bd_broker bd_broker_t;

#define BD_BROKER_MAX_PARTITIONS 1024

/* Starts a one-node mock cluster and creates topic (NULL: BD_DEFAULT_TOPIC)
 * with `partitions` partitions and "<topic>-dlq" with one. Other topics are
 * auto-created on first use. Returns NULL with errbuf set on failure or
 * when partitions is outside 1..BD_BROKER_MAX_PARTITIONS. */
bd_broker_t *bd_broker_start(int partitions, const char *topic, char *errbuf, size_t errlen);
/* "HOST:PORT[,...]": the bootstrap.servers for clients. Owned by b. */
const char *bd_broker_bootstraps(const bd_broker_t *b);
/* The mock cluster, for fault injection (rd_kafka_mock_*). Owned by b. */
rd_kafka_mock_cluster_t *bd_broker_mock(bd_broker_t *b);
/* Stops the cluster; clients still connected see the brokers go down. */
void bd_broker_stop(bd_broker_t *b);

/* The command `budgetd broker [--topic T] [--partitions N]`; argv[0] is the
 * command name ("broker"). Prints "bootstrap=HOST:PORT" as the first line
 * of stdout (flushed), serves until SIGTERM or SIGINT, returns the exit
 * code: 0, 1 (could not start), 2 (usage). Blocks SIGTERM/SIGINT in the
 * calling thread (before the cluster's threads start, so they inherit it). */
int bd_broker_main(int argc, char **argv);

#endif
