/* kafka.h: the live source: a librdkafka consumer in the configured group
 * (cooperative-sticky, offsets stored by hand, engine/io/kafka.c) and its
 * dead-letter queue (a producer of its own, engine/io/dlq.c). */
#ifndef BUDGETD_KAFKA_H
#define BUDGETD_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "budgetd/config.h"

typedef struct bd_kafka bd_kafka_t;

typedef struct {
    const char *payload;
    size_t len;
    const void *key;
    size_t key_len;
    int32_t partition;
    int64_t offset;
    void *msg; /* the rd_kafka_message_t, released by bd_kafka_msg_done */
} bd_kafka_msg_t;

/* Called on the polling thread before partitions are revoked, while their
 * offsets can still be stored. */
typedef void (*bd_kafka_revoke_fn)(void *ctx, const int32_t *parts, size_t n);

bd_kafka_t *bd_kafka_open(const bd_config_t *cfg, bd_kafka_revoke_fn on_revoke, void *ctx,
                          char *errbuf, size_t errlen);
/* Called on the polling thread, with the ctx of bd_kafka_open, when the
 * assignment was LOST: this consumer was thrown out of the group (e.g. it
 * stalled past session.timeout.ms) and another consumer may own the
 * partitions already, so nothing may be written, stored or committed for
 * them (the revoke callback is not called then). Without a handler a lost
 * assignment is only logged. */
void bd_kafka_on_lost(bd_kafka_t *k, bd_kafka_revoke_fn on_lost);
/* The group.instance.id kafka.instance_id gives (docs/CONTRACT.md §12):
 * "" for off, the value itself, or for auto budgetd-HOST-CONFIG (host
 * name and config file name without .yaml/.yml, bytes outside
 * [A-Za-z0-9._-] as '_'), at most BD_INSTANCE_ID_MAX characters. */
void bd_kafka_instance_id(const bd_config_t *cfg, char *out, size_t cap);
/* The group.instance.id the consumer runs with ("" = a dynamic member;
 * kafka.properties may have set it). */
const char *bd_kafka_instance(const bd_kafka_t *k);
/* True once librdkafka raised a fatal error (another consumer took our
 * group.instance.id): the daemon must stop. */
bool bd_kafka_failed(const bd_kafka_t *k);
/* Tests only: raises the fatal error a broker's FENCED_INSTANCE_ID gives
 * (librdkafka's rd_kafka_test_fatal_error), served by the next poll. */
void bd_kafka_test_fenced(bd_kafka_t *k);
/* 1: *m holds a message; 0: none within timeout_ms (errors are logged). */
int bd_kafka_poll(bd_kafka_t *k, bd_kafka_msg_t *m, int timeout_ms);
void bd_kafka_msg_done(bd_kafka_t *k, bd_kafka_msg_t *m);
/* Forwards m unchanged to the DLQ topic with headers budgetd-reason and
 * budgetd-detail (docs/CONTRACT.md §1). A dead letter the producer cannot
 * deliver (a full queue, a permanent error, message.timeout.ms) is logged
 * and produced again after a backoff (BD_BACKOFF_DLQ: 1 s doubling to
 * 60 s), until the broker acknowledges it. */
void bd_kafka_dead_letter(bd_kafka_t *k, const bd_kafka_msg_t *m, const char *reason,
                          const char *detail);
/* Waits up to timeout_ms until every dead letter is acknowledged by the
 * broker; false while some are in flight or waiting for a retry (the
 * caller must then not store offsets past them). */
bool bd_kafka_flush_dlq(bd_kafka_t *k, int timeout_ms);
/* Dead-letter health for /metrics: deliveries that failed and were queued
 * again, and dead letters not yet acknowledged (in flight or waiting). */
void bd_kafka_dlq_stats(bd_kafka_t *k, uint64_t *failures, uint64_t *unacked);
/* The next offset stored for partition must not pass offset (a message some
 * portfolio has applied but not checkpointed). Reset by store_offsets. */
void bd_kafka_hold(bd_kafka_t *k, int32_t partition, int64_t offset);
/* Stores, per owned partition, min(hold, next offset to read). */
void bd_kafka_store_offsets(bd_kafka_t *k);
/* Synchronous commit of the stored offsets (shutdown). */
void bd_kafka_commit(bd_kafka_t *k);
void bd_kafka_close(bd_kafka_t *k);

#endif
