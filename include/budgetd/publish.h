/* publish.h: the Redis sink shared by `run` and `replay --redis`: decisions
 * queue up as the engine emits them (with the portfolio's checkpoint) and go
 * out as one pipelined batch of fenced scripts; while Redis is down the
 * batch is held and retried with backoff, never dropped or half-written. */
#ifndef BUDGETD_PUBLISH_H
#define BUDGETD_PUBLISH_H

#include <signal.h>
#include <stdbool.h>
#include "budgetd/record.h"
#include "budgetd/portfolio.h"
#include "budgetd/redis.h"

typedef struct bd_publish bd_publish_t;

/* stop: when it becomes non-zero, a held batch is given up after a few more
 * tries (the caller then must not store Kafka offsets). */
bd_publish_t *bd_publish_new(bd_redis_t *r, volatile sig_atomic_t *stop);
void bd_publish_free(bd_publish_t *pub);

/* A bd_sink_fn (ctx = the bd_publish_t): copies the decision, the channel
 * spends and p's checkpoint into the queue. */
bd_err_t bd_publish_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json,
                         size_t len);

/* Writes the queue. On success every queued portfolio's ckpt_offset becomes
 * the offset it had when queued and first_unsaved -1, except for a
 * portfolio whose write was fenced out (another process claimed it: see
 * bd_redis_claim), which gets p->fenced_out and nothing else, and for one
 * whose write Redis refused with an error reply while answering the rest
 * (a key of the wrong type): that one is held (p->redis_held), its
 * decisions stay queued and are retried at the next flush, and the others
 * are written. Returns false when the batch was given up (stop requested,
 * or refused as invalid); true leaves only held decisions queued. */
bool bd_publish_flush(bd_publish_t *pub);

/* Drops p's queued decisions unwritten (p lost or fenced out: another
 * process owns it). */
void bd_publish_discard(bd_publish_t *pub, const bd_portfolio_t *p);

size_t bd_publish_pending(const bd_publish_t *pub);
/* Writes that succeeded so far (test hooks count them). */
unsigned long bd_publish_writes(const bd_publish_t *pub);
/* Write attempts that failed (each retry of a held batch counts). */
unsigned long bd_publish_failures(const bd_publish_t *pub);

#endif
