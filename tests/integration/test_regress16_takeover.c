/* test_regress16_takeover.c: issue 16 defect 2 through real processes:
 * two daemons over one partition, one stalled past its session, the
 * sample log split around the handover; Redis must end equal to `budgetd
 * replay` of the whole log (regress16_env.h: the environment). */
#include "regress16_env.h"

/* The portfolio of a JSON line ("?" when it has none). */
static void line_portfolio(const char *line, size_t len, char *key, size_t cap)
{
    snprintf(key, cap, "?");
    cJSON *j = cJSON_ParseWithLength(line, len);
    const cJSON *pf = j ? cJSON_GetObjectItemCaseSensitive(j, "portfolio") : NULL;
    if (cJSON_IsString(pf)) snprintf(key, cap, "%s", pf->valuestring);
    cJSON_Delete(j);
}

/* Produces lines [from, to) of the sample log (1-based line numbers, to 0:
 * to the end), each keyed by its portfolio; returns how many. */
static size_t produce_sample(env_t *env, size_t from, size_t to)
{
    char err[512];
    bd_logread_t *lr;
    cr_assert_eq(bd_logread_open(LOG, &lr, err, sizeof(err)), BD_OK, "%s", err);
    const char *line;
    size_t len, no = 0, n = 0;
    while (bd_logread_next(lr, &line, &len, err, sizeof(err)) == 1) {
        no++;
        if (no < from || (to && no >= to)) continue;
        char key[80];
        line_portfolio(line, len, key, sizeof(key));
        produce_raw(env, key, line, len);
        n++;
    }
    bd_logread_close(lr);
    cr_assert_eq(rd_kafka_flush(env->prod, 30000), 0);
    return n;
}

static const char *const SAMPLE_PFS[] = {"acme-us", "acme-de", "globex-uk", "initech-fr"};

/* Decisions in Redis over the sample's portfolios. */
static long long sample_decisions(env_t *env)
{
    long long n = 0;
    for (int k = 0; k < 4; k++) {
        redisReply *x = bd_test_redis_cmd(env->rc, "XLEN budgetd:{%s}:decisions", SAMPLE_PFS[k]);
        n += x->integer;
        freeReplyObject(x);
    }
    return n;
}

/* Waits until the sample's decision count grew past `above` and then held
 * still for 3 s (the daemons are done with what was produced). Returns the
 * count. */
static long long wait_quiet(env_t *env, long long above, int timeout_s)
{
    long long last = -1;
    int still = 0;
    for (int t = 0; t < timeout_s * 10; t++) {
        long long n = sample_decisions(env);
        if (n == last && n > above) {
            if (++still >= 30) return n;
        } else {
            still = 0;
        }
        last = n;
        usleep(100000);
    }
    cr_assert_fail("decisions stuck at %lld (above %lld wanted) for %ds", last, above, timeout_s);
    return -1;
}

/* Every sample portfolio's decision stream in Redis equals the records
 * `budgetd replay` writes for the whole sample log, in order, byte for
 * byte. */
static void assert_redis_matches_replay(env_t *env)
{
    char out[160], txt[4096];
    snprintf(out, sizeof(out), "%s/replay.jsonl", env->dir);
    cr_assert_eq(cli(txt, sizeof(txt), "replay -c %s %s -o %s", env->cfg, LOG, out), 0, "%s", txt);
    FILE *f = fopen(out, "r");
    cr_assert(f);
    static char line[1 << 16];
    size_t idx[4] = {0, 0, 0, 0};
    redisReply *streams[4];
    for (int k = 0; k < 4; k++) {
        streams[k] = bd_test_redis_cmd(env->rc, "XRANGE budgetd:{%s}:decisions - +", SAMPLE_PFS[k]);
        cr_assert_eq(streams[k]->type, REDIS_REPLY_ARRAY);
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        int k = 0;
        for (; k < 4; k++) {
            char pat[96];
            snprintf(pat, sizeof(pat), "\"portfolio\":\"%s\"", SAMPLE_PFS[k]);
            if (strstr(line, pat)) break;
        }
        cr_assert_lt(k, 4);
        cr_assert_lt(idx[k], streams[k]->elements, "%s: fewer decisions in Redis than in replay",
                     SAMPLE_PFS[k]);
        redisReply *fields = streams[k]->element[idx[k]++]->element[1];
        if (strcmp(fields->element[1]->str, line) != 0)
            fprintf(stderr, "redis:  %s\nreplay: %s\n", fields->element[1]->str, line);
        cr_assert_str_eq(fields->element[1]->str, line, "%s decision %zu differs", SAMPLE_PFS[k], idx[k]);
    }
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(idx[k], streams[k]->elements, "%s: %zu extra decisions in Redis", SAMPLE_PFS[k],
                     streams[k]->elements - idx[k]);
        freeReplyObject(streams[k]);
    }
    fclose(f);
}

/* Issue 16 defect 2. One partition, two daemons. A stalls (SIGSTOP) past
 * session.timeout.ms and B takes the partition over; A resumes, is told its
 * assignment is lost and rejoins (B keeps the partition: sticky). More
 * events go to B; then B leaves and A gets the partition back. A must have
 * dropped what it knew when it lost the assignment and restore from B's
 * checkpoint: deciding from the state it had before the stall (missing
 * everything B applied) gives other decisions than replay. */
Test(regress, r16_02_lost_assignment_drops_stale_state, .timeout = 400)
{
    env_t env;
    env_start(&env, 1);
    env_sample_config(&env);
    /* The split points are lines 1400, 3000 and 4500. Resends across a
     * handover (caught since the dedup store is in the checkpoint, v7) are
     * test_multi_daemon's and test_rev_live's. */
    produce_sample(&env, 1, 1400);
    pid_t a = start_daemon(&env, "a", 300);
    long long n = wait_quiet(&env, 0, 90);
    kill(a, SIGSTOP);
    pid_t b = start_daemon(&env, "b", 300);
    produce_sample(&env, 1400, 3000);
    n = wait_quiet(&env, n, 120); /* B took over after A's session expired */
    kill(a, SIGCONT);
    sleep(12); /* A learns it was thrown out, rejoins, gets nothing */
    produce_sample(&env, 3000, 4500);
    n = wait_quiet(&env, n, 90);
    stop_daemon(b); /* the partition goes back to A */
    sleep(8);
    produce_sample(&env, 4500, 0);
    wait_quiet(&env, n, 120);
    stop_daemon(a);
    assert_redis_matches_replay(&env);
    env_stop(&env);
}
