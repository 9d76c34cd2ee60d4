/* test_publish.c: the Redis sink (publish.h) against a real redis-server,
 * fed by an engine in-process. While Redis is down the queue holds every
 * decision and writes them, in order, when it is back; a stop request gives
 * a held batch up without marking anything saved; proposals (collaborate,
 * delegate's escalations) go to the proposal hash only while alloc keeps
 * the allocation in force; only the record that trips the kill-switch
 * creates the kill key, so a latched record never undoes an operator's
 * resume. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cJSON.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "budgetd/publish.h"
#include "budgetd/redis.h"
#include "fixtures.h"
#include "redis_server.h"

#define T0 1767225600LL /* 2026-01-01, a multiple of 3600 */
#define C0 (T0 / 3600)
#define MAXREC 256

/* auto (automate), collab (collaborate), wide (delegate with a ramp that
 * always escalates), runaway (assist: the initial 1500/1500 stays in force,
 * so a 2400 spend on search trips the 1.5x overspend). */
static const char *CFG =
    "v: 1\ncycle: 1h\nlateness: 0\nseed: 7\n"
    "defaults:\n  budget: 1000\n  samples: 16\n  min_change: 0\n  explore_share: 0.02\n"
    "  escalate_above: 0.3\n"
    "  risk: {roas_floor: 0.1, max_prob: 1}\n"
    "  kill: {roas_below: 0, overspend_ratio: 0, stale_after: 0, max_reject_ratio: 1}\n"
    "  channel: {saturation: 3000}\n"
    "portfolios:\n"
    "  auto:\n    budget: 3000\n    mode: automate\n    channels:\n"
    "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
    "  collab:\n    budget: 3000\n    mode: collaborate\n    channels:\n"
    "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
    "  wide:\n    budget: 3000\n    mode: delegate\n    max_step: 1.0\n    channels:\n"
    "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n"
    "  runaway:\n    budget: 3000\n    mode: assist\n"
    "    kill: {overspend_ratio: 1.5, action: zero}\n    channels:\n"
    "      search: {min: 100, initial: 1500}\n      social: {min: 100}\n";

/* One record as the engine emitted it. */
typedef struct {
    char pf[BD_NAME_MAX + 1];
    long long cycle, decided_at;
    bd_path_t path;
    bool tripped;
    char *json;
} rec_t;

typedef struct {
    bd_test_redis_t *srv;
    redisContext *rc;
    bd_redis_t *r;
    bd_publish_t *pub;
    volatile sig_atomic_t stop;
    bd_config_t *cfg;
    bd_engine_t *e;
    rec_t rec[MAXREC];
    int n;
    unsigned long id;
} env_t;

static env_t g;

/* Keeps a copy of every record, then queues it as the daemon does. */
static bd_err_t capture_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d, const char *json, size_t len)
{
    env_t *env = ctx;
    cr_assert_lt(env->n, MAXREC);
    rec_t *r = &env->rec[env->n++];
    snprintf(r->pf, sizeof r->pf, "%s", p->name);
    r->cycle = d->cycle;
    r->decided_at = d->decided_at;
    r->path = d->path;
    r->tripped = d->tripped;
    r->json = strndup(json, len);
    return bd_publish_sink(env->pub, p, d, json, len);
}

/* A redis-server, a handle with short timeouts, the publisher (with a
 * stop flag the tests can raise) and an engine whose sink feeds it. */
static void setup(void)
{
    memset(&g, 0, sizeof g);
    g.rc = bd_test_redis_up(&g.srv);
    char err[BD_ERRBUF];
    cr_assert_eq(bd_redis_open(g.srv->url, NULL, NULL, 0, &g.r, err, sizeof err), BD_OK, "%s", err);
    bd_redis_set_timeouts(g.r, 500, 2000);
    g.pub = bd_publish_new(g.r, &g.stop);
    char cerr[4096];
    g.cfg = bd_test_config(CFG, cerr, sizeof cerr);
    cr_assert_not_null(g.cfg, "%s", cerr);
    bd_engine_opts_t o = {.threads = 1, .sink = capture_sink, .sink_ctx = &g};
    g.e = bd_engine_new(g.cfg, &o);
}

/* Frees everything setup made and the copied records. */
static void teardown(void)
{
    bd_engine_free(g.e);
    bd_config_free(g.cfg);
    bd_publish_free(g.pub);
    bd_redis_close(g.r);
    bd_test_redis_down(&g.srv, &g.rc);
    for (int i = 0; i < g.n; i++) free(g.rec[i].json);
}

TestSuite(publish, .init = setup, .fini = teardown, .timeout = 120);

/* ---- driving the engine ----------------------------------------------------- */

/* Cycle k of pf: one event per channel (spend, revenue = roas x spend),
 * then the watermark that closes it; the decision is queued. */
static void cycle(const char *pf, int k, double s_search, double s_social, double r_search, double r_social)
{
    const char *ev = "{\"event_id\":\"e%lu\",\"ts\":%lld,\"portfolio\":\"%s\",\"channel\":\"%s\","
                     "\"spend\":%.2f,\"conversions\":%.3f,\"revenue\":%.2f}";
    long long ts = T0 + 3600LL * k + 30;
    cr_assert_eq(bd_test_ingestf(g.e, ev, g.id++, ts, pf, "search", s_search, s_search * r_search / 50,
                                 s_search * r_search),
                 BD_REJ_NONE);
    cr_assert_eq(bd_test_ingestf(g.e, ev, g.id++, ts + 1, pf, "social", s_social, s_social * r_social / 50,
                                 s_social * r_social),
                 BD_REJ_NONE);
    cr_assert_eq(bd_test_ingestf(g.e, "{\"portfolio\":\"%s\",\"watermark\":%lld}", pf, T0 + 3600LL * (k + 1)),
                 BD_REJ_NONE);
    cr_assert_eq(bd_engine_flush(g.e), BD_OK);
}

/* The records of pf in emission order (indexes into g.rec); returns count. */
static int recs_of(const char *pf, int *idx)
{
    int n = 0;
    for (int i = 0; i < g.n; i++)
        if (!strcmp(g.rec[i].pf, pf)) idx[n++] = i;
    return n;
}

/* Spend of channel ch in record json, as "%.2f" (how Redis stores it). */
static void rec_spend(const char *json, const char *ch, char *out, size_t cap)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j);
    const cJSON *c;
    bool found = false;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "channels"))
    {
        if (!strcmp(cJSON_GetObjectItem(c, "channel")->valuestring, ch)) {
            snprintf(out, cap, "%.2f", cJSON_GetObjectItem(c, "spend")->valuedouble);
            found = true;
        }
    }
    cJSON_Delete(j);
    cr_assert(found, "no channel %s in %s", ch, json);
}

/* The kill reason of record json (NULL when "kill" is null), malloc'd. */
static char *rec_kill_reason(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    cr_assert_not_null(j);
    const cJSON *k = cJSON_GetObjectItem(j, "kill");
    char *r = cJSON_IsObject(k) ? strdup(cJSON_GetObjectItem(k, "reason")->valuestring) : NULL;
    cJSON_Delete(j);
    return r;
}

/* HGET budgetd:{pf}:what field ("" when absent), in a buffer of its own. */
static const char *field(const char *pf, const char *what, const char *f)
{
    static char buf[4][512];
    static int slot;
    char *b = buf[slot++ % 4], key[160];
    snprintf(key, sizeof key, "budgetd:{%s}:%s", pf, what);
    const char *v = bd_test_redis_hget(g.rc, key, f);
    snprintf(b, 512, "%s", v ? v : "");
    return b;
}

/* pf's decision stream holds exactly pf's records, in emission order, each
 * as entry "<cycle>-1". */
static void assert_stream_is_the_records(const char *pf)
{
    int idx[MAXREC];
    int n = recs_of(pf, idx);
    cr_assert_gt(n, 0);
    redisReply *x = bd_test_redis_cmd(g.rc, "XRANGE budgetd:{%s}:decisions - +", pf);
    cr_assert_eq(x->type, REDIS_REPLY_ARRAY);
    cr_assert_eq((int)x->elements, n, "%s: %zu entries for %d records", pf, x->elements, n);
    for (int i = 0; i < n; i++) {
        const rec_t *r = &g.rec[idx[i]];
        char id[48];
        snprintf(id, sizeof id, "%lld-1", r->cycle);
        cr_assert_str_eq(x->element[i]->element[0]->str, id, "%s entry %d", pf, i);
        cr_assert_str_eq(x->element[i]->element[1]->element[1]->str, r->json, "%s entry %d", pf, i);
    }
    freeReplyObject(x);
}

/* ---- the queue while Redis is down ------------------------------------------- */

/* bd_publish_flush on its own thread (it blocks while Redis is down);
 * returns non-NULL when the batch was written. */
static void *flush_thread(void *arg)
{
    (void)arg;
    return bd_publish_flush(g.pub) ? (void *)1 : NULL;
}

/* Decisions queue up; Redis goes away before they are written. The flush
 * holds the batch and retries with backoff; when a new (empty) server is
 * up on the same port, every decision is written in order, with the
 * checkpoint of the last one, and the portfolio's checkpoint offset moves
 * to the offset it had when queued. */
Test(publish, queue_holds_decisions_while_redis_is_down_and_writes_them_in_order)
{
    for (int k = 0; k < 4; k++) cycle("auto", k, 1500, 1500, 5, 0.4);
    bd_portfolio_t *p = bd_engine_portfolio(g.e, "auto");
    p->offset = 4242;       /* as if the last events came from the partition at 4242 */
    p->first_unsaved = 4000;
    cycle("auto", 4, 1500, 1500, 5, 0.4);
    int idx[MAXREC];
    int n = recs_of("auto", idx);
    cr_assert_eq(n, 6, "the initial split and five closes");
    cr_assert_eq(bd_publish_pending(g.pub), (size_t)n, "nothing is written before a flush");
    cr_assert_eq(bd_test_redis_int(g.rc, "EXISTS budgetd:{auto}:alloc"), 0);

    bd_test_redis_halt(g.srv);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flush_thread, NULL), 0);
    sleep(1); /* the flush fails and backs off meanwhile */
    cr_assert_eq(bd_test_redis_restart(g.srv), 0);
    void *ok;
    pthread_join(th, &ok);
    cr_assert_not_null(ok, "the held batch was given up");
    cr_assert_eq(bd_publish_pending(g.pub), 0);
    cr_assert_eq(bd_publish_writes(g.pub), 1);

    /* the restarted server started empty: all of this was written after */
    redisFree(g.rc);
    g.rc = bd_test_redis_connect(g.srv);
    cr_assert_not_null(g.rc);
    assert_stream_is_the_records("auto");
    const rec_t *last = &g.rec[idx[n - 1]];
    cr_assert_eq(atoll(field("auto", "alloc", "cycle")), last->cycle);
    cr_assert_eq(atoll(field("auto", "alloc", "version")), n, "every automate record replaces alloc");
    char want[32];
    rec_spend(last->json, "search", want, sizeof want);
    cr_assert_str_eq(field("auto", "alloc", "ch:search"), want);
    /* the state is the checkpoint taken with the last decision: the same
     * portfolio once decoded, but for the alloc version, which the write
     * itself moves on (version = max(stored, known) + 1) after the blob was
     * taken */
    redisReply *x = bd_test_redis_cmd(g.rc, "GET budgetd:{auto}:state");
    cr_assert_eq(x->type, REDIS_REPLY_STRING);
    bd_ptable_t *t2 = bd_ptable_new();
    bd_portfolio_t *q = bd_ptable_add(t2, p->name, p->pc, p->pol, p->nslots);
    q->dedup = p->dedup ? bd_dedup_new_like(p->dedup) : NULL; /* the ids come back too */
    char derr[256];
    cr_assert_eq(bd_checkpoint_decode(q, x->str, x->len, derr, sizeof derr), BD_OK, "%s", derr);
    cr_assert_leq(q->version, p->version);
    q->version = p->version;
    q->cycle_len = p->cycle_len;
    unsigned char *blob = NULL, *blob2 = NULL;
    size_t cap = 0, cap2 = 0, len = bd_checkpoint_encode(p, &blob, &cap);
    size_t len2 = bd_checkpoint_encode(q, &blob2, &cap2);
    cr_assert(len == len2 && memcmp(blob, blob2, len) == 0, "the stored checkpoint is not the last one");
    freeReplyObject(x);
    free(blob);
    free(blob2);
    bd_ptable_free(t2);
    cr_assert_eq(p->ckpt_offset, 4242);
    cr_assert_eq(p->first_unsaved, -1);
}

/* With a stop requested, a batch that cannot be written is given up after
 * a few tries: flush says so, nothing is written (also not later), and the
 * portfolio's checkpoint offset does not move, so the caller stores no
 * Kafka offset past it. */
Test(publish, stop_gives_up_a_held_batch_without_marking_it_saved)
{
    cycle("auto", 0, 1500, 1500, 5, 0.4);
    bd_portfolio_t *p = bd_engine_portfolio(g.e, "auto");
    p->offset = 17;
    p->first_unsaved = 9;
    cycle("auto", 1, 1500, 1500, 5, 0.4);
    cr_assert_eq(bd_publish_pending(g.pub), 3);
    bd_test_redis_halt(g.srv);
    g.stop = 1;
    cr_assert_not(bd_publish_flush(g.pub));
    cr_assert_eq(bd_publish_writes(g.pub), 0);
    cr_assert_eq(p->ckpt_offset, -1);
    cr_assert_eq(p->first_unsaved, 9);
    cr_assert_eq(bd_test_redis_restart(g.srv), 0);
    redisFree(g.rc);
    g.rc = bd_test_redis_connect(g.srv);
    cr_assert_not_null(g.rc);
    cr_assert(bd_publish_flush(g.pub), "an empty queue flushes");
    cr_assert_eq(bd_test_redis_int(g.rc, "EXISTS budgetd:{auto}:alloc"), 0);
    cr_assert_eq(bd_test_redis_int(g.rc, "EXISTS budgetd:{auto}:decisions"), 0);
}

/* Regression r21_01 (found by r16_02 under ASan): the engine queues a
 * decision inside an apply (a close while another is pending), and the
 * daemon applies more of the portfolio's messages before the write. The
 * settled write cleared the portfolio's hold, so the Kafka offset stored
 * next could pass those messages although the checkpoint does not hold
 * them: a daemon taking over lost them (a decision with half its events).
 * After the write the checkpoint offset is the one queued and the hold
 * covers the first message after it. */
Test(publish, r21_01_messages_applied_after_a_queued_decision_stay_held)
{
    cycle("auto", 0, 1500, 1500, 5, 0.4);
    bd_portfolio_t *p = bd_engine_portfolio(g.e, "auto");
    p->offset = 100;
    p->first_unsaved = 90;
    cycle("auto", 1, 1500, 1500, 5, 0.4); /* queued with offset 100 */
    cr_assert_gt(bd_publish_pending(g.pub), 0);
    p->offset = 130; /* applied after queueing, not in the queued checkpoint */
    cr_assert(bd_publish_flush(g.pub));
    cr_assert_eq(p->ckpt_offset, 100);
    cr_assert_eq(p->first_unsaved, 101, "the hold moved past unsaved messages: %lld",
                 (long long)p->first_unsaved);
    /* nothing applied since the next write: the hold goes */
    cycle("auto", 2, 1500, 1500, 5, 0.4);
    cr_assert(bd_publish_flush(g.pub));
    cr_assert_eq(p->ckpt_offset, 130);
    cr_assert_eq(p->first_unsaved, -1);
}

/* ---- proposals ------------------------------------------------------------- */

/* collaborate proposes and delegate escalates: those records go to the
 * proposal hash only, and alloc keeps the initial split in force. An
 * automate portfolio in the same batch replaces alloc and has no proposal. */
Test(publish, proposals_go_to_the_proposal_hash_only)
{
    const char *pfs[] = {"collab", "wide", "auto"};
    for (int k = 0; k < 4; k++)
        for (int q = 0; q < 3; q++) cycle(pfs[q], k, 1500, 1500, 5, 0.4);
    cr_assert(bd_publish_flush(g.pub));
    for (int q = 0; q < 3; q++) {
        const char *pf = pfs[q];
        int idx[MAXREC];
        int n = recs_of(pf, idx);
        cr_assert_eq(n, 5);
        assert_stream_is_the_records(pf);
        const rec_t *first = &g.rec[idx[0]], *last = &g.rec[idx[n - 1]];
        cr_assert_eq(first->path, BD_PATH_INITIAL);
        char s_last[32], o_last[32], s_first[32];
        rec_spend(last->json, "search", s_last, sizeof s_last);
        rec_spend(last->json, "social", o_last, sizeof o_last);
        rec_spend(first->json, "search", s_first, sizeof s_first);
        if (q < 2) {
            bd_path_t want = q == 0 ? BD_PATH_PROPOSED : BD_PATH_ESCALATED;
            for (int i = 1; i < n; i++)
                cr_assert_eq(g.rec[idx[i]].path, want, "%s record %d: %s", pf, i, bd_path_name(g.rec[idx[i]].path));
            cr_assert_str_neq(s_last, s_first, "%s: the proposal should move toward search", pf);
            /* alloc: the initial split of cycle C0, written once */
            cr_assert_eq(atoll(field(pf, "alloc", "cycle")), C0);
            cr_assert_str_eq(field(pf, "alloc", "version"), "1");
            cr_assert_str_eq(field(pf, "alloc", "ch:search"), s_first);
            cr_assert_str_eq(field(pf, "alloc", "ch:search"), "1500.00");
            /* proposal: the last proposed allocation */
            cr_assert_eq(atoll(field(pf, "proposal", "cycle")), last->cycle);
            cr_assert_str_eq(field(pf, "proposal", "ch:search"), s_last);
            cr_assert_str_eq(field(pf, "proposal", "ch:social"), o_last);
            cr_assert_str_eq(field(pf, "proposal", "mode"), q == 0 ? "collaborate" : "delegate");
        } else {
            for (int i = 1; i < n; i++)
                cr_assert(g.rec[idx[i]].path == BD_PATH_APPLIED || g.rec[idx[i]].path == BD_PATH_KEPT, "auto: %s",
                          bd_path_name(g.rec[idx[i]].path));
            cr_assert_eq(atoll(field(pf, "alloc", "cycle")), last->cycle);
            cr_assert_str_eq(field(pf, "alloc", "ch:search"), s_last);
            cr_assert_eq(bd_test_redis_int(g.rc, "EXISTS budgetd:{auto}:proposal"), 0);
        }
    }
}

/* ---- the kill reason ----------------------------------------------------------- */

/* The trip record creates the kill key (by engine, its reason, its time);
 * the latched records after it carry the reason in their JSON but do not
 * write the key: after an operator's resume in Redis (the daemon has not
 * polled it yet) a latched record in the next batch leaves it resumed. */
Test(publish, kill_reason_only_for_the_tripping_record)
{
    cycle("runaway", 0, 1500, 1500, 2, 2);
    cycle("runaway", 1, 2400, 1500, 2, 2); /* 2400 > 1500 x 1.5 */
    cycle("runaway", 2, 0, 0, 2, 2);       /* latched */
    int idx[MAXREC];
    int n = recs_of("runaway", idx);
    cr_assert_eq(n, 4);
    const rec_t *trip = &g.rec[idx[2]];
    cr_assert(trip->tripped, "the close of cycle 1 trips");
    cr_assert_eq(trip->path, BD_PATH_KILLED);
    cr_assert_not(g.rec[idx[3]].tripped);
    char *why = rec_kill_reason(trip->json);
    cr_assert_not_null(why);
    cr_assert(!strncmp(why, "overspend: channel 'search'", 27), "%s", why);
    char *latched_why = rec_kill_reason(g.rec[idx[3]].json);
    cr_assert_str_eq(latched_why, why, "the latched record carries the reason in its JSON");
    free(latched_why);
    cr_assert(bd_publish_flush(g.pub));
    cr_assert_str_eq(field("runaway", "kill", "by"), "engine");
    cr_assert_str_eq(field("runaway", "kill", "reason"), why);
    cr_assert_eq(atoll(field("runaway", "kill", "at")), trip->decided_at, "the trip's time, not the latch's");
    cr_assert_str_eq(field("runaway", "alloc", "status"), "killed");

    /* an operator resumes in Redis; the engine is still latched */
    freeReplyObject(bd_test_redis_cmd(g.rc, "DEL budgetd:{runaway}:kill"));
    cycle("runaway", 3, 0, 0, 2, 2);
    cycle("runaway", 4, 0, 0, 2, 2);
    n = recs_of("runaway", idx);
    cr_assert_eq(n, 6);
    for (int i = 4; i < 6; i++) {
        cr_assert_not(g.rec[idx[i]].tripped);
        cr_assert_eq(g.rec[idx[i]].path, BD_PATH_KILLED);
    }
    cr_assert(bd_publish_flush(g.pub));
    cr_assert_eq(bd_test_redis_int(g.rc, "EXISTS budgetd:{runaway}:kill"), 0, "a latched record re-created the kill key");
    cr_assert_eq(atoll(field("runaway", "alloc", "cycle")), g.rec[idx[5]].cycle);
    assert_stream_is_the_records("runaway");
    free(why);
}
