/* dlq.h: the dead-letter queue of the Kafka source (internal to engine/io;
 * the public face is bd_kafka_dead_letter and friends in kafka.h). Its own
 * idempotent producer forwards rejected messages unchanged to the DLQ
 * topic, and keeps every one it could not deliver in a retry list until the
 * broker acknowledges it (docs/CONTRACT.md §1). */
#ifndef BUDGETD_IO_DLQ_H
#define BUDGETD_IO_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>
#include "budgetd/common.h"

typedef struct bd_dlq bd_dlq_t;

/* Creates the producer on conf (which this call owns from now on, whatever
 * the outcome) for topic. NULL with errbuf set when librdkafka refuses. */
bd_dlq_t *bd_dlq_open(rd_kafka_conf_t *conf, const char *topic, char *errbuf, size_t errlen);

/* Forwards a message (key, payload) with headers budgetd-reason and
 * budgetd-detail; see bd_kafka_dead_letter. */
void bd_dlq_send(bd_dlq_t *d, const void *key, size_t key_len, const void *val, size_t val_len,
                 const char *reason, const char *detail);

/* Called on every consumer poll: serves the producer's delivery reports and
 * the retries that are due, right after a dead letter was produced or the
 * consumer was idle, else once every few thousand polls. */
void bd_dlq_poll(bd_dlq_t *d);
/* The consumer found nothing: serve the producer at the next poll. */
void bd_dlq_idle(bd_dlq_t *d);

/* See bd_kafka_flush_dlq and bd_kafka_dlq_stats. */
bool bd_dlq_flush(bd_dlq_t *d, int timeout_ms);
void bd_dlq_stats(const bd_dlq_t *d, uint64_t *failures, uint64_t *unacked);

/* Gives the dead letters still in flight or waiting up to ~10 s (no
 * backoff now), logs how many were lost, frees d. NULL is a no-op. */
void bd_dlq_close(bd_dlq_t *d);

#endif
