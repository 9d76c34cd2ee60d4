/* replay.c: `budgetd replay`: the live engine over JSON Lines logs in event
 * time. Decisions are buffered and written sorted by (cycle, portfolio), the
 * order CONTRACT §4 promises, whatever the interleaving of the input. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"
#include "budgetd/logread.h"
#include "budgetd/publish.h"

typedef struct {
    int64_t cycle;
    const char *portfolio; /* owned by the engine's table, lives as long */
    uint64_t seq;
    size_t off, len;       /* into the record arena */
} rec_t;

typedef struct {
    rec_t *recs;
    size_t n, cap;
    char *arena;
    size_t used, arena_cap;
    bd_redis_t *redis;     /* --redis: also published */
    bd_publish_t *pub;
} replay_sink_t;

/* Keeps a copy of each record for the sorted write at the end. */
static bd_err_t replay_sink(void *ctx, bd_portfolio_t *p, const bd_decision_t *d,
                            const char *json, size_t len)
{
    replay_sink_t *s = ctx;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->recs = bd_xrealloc(s->recs, s->cap * sizeof(*s->recs));
    }
    if (s->used + len + 1 > s->arena_cap) {
        s->arena_cap = s->arena_cap ? s->arena_cap * 2 : 1 << 20;
        while (s->arena_cap < s->used + len + 1) s->arena_cap *= 2;
        s->arena = bd_xrealloc(s->arena, s->arena_cap);
    }
    memcpy(s->arena + s->used, json, len);
    s->arena[s->used + len] = '\n';
    s->recs[s->n] = (rec_t){d->cycle, p->name, s->n, s->used, len + 1};
    s->used += len + 1;
    s->n++;
    return s->pub ? bd_publish_sink(s->pub, p, d, json, len) : BD_OK;
}

static int rec_cmp(const void *a, const void *b)
{
    const rec_t *x = a, *y = b;
    if (x->cycle != y->cycle) return x->cycle < y->cycle ? -1 : 1;
    int c = strcmp(x->portfolio, y->portfolio);
    if (c) return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void replay_usage(FILE *f)
{
    fputs("usage: budgetd replay -c CONFIG LOG... [-o OUT] [--redis URL] [--threads N]\n"
          "  LOG is a JSON Lines file, '-' for stdin; .gz is read directly\n", f);
}

/* Prints the end-of-run summary: lines, outcomes, rejects per reason. */
static void replay_summary(const bd_engine_stats_t *st)
{
    uint64_t rej = 0;
    for (int r = 1; r < BD_REJ__COUNT; r++) rej += st->rejected[r];
    fprintf(stderr,
            "replay: %llu lines, %llu accepted, %llu duplicates, %llu late, %llu watermarks, "
            "%llu decisions, %llu rejected",
            (unsigned long long)st->lines, (unsigned long long)st->accepted,
            (unsigned long long)st->duplicates, (unsigned long long)st->late,
            (unsigned long long)st->watermarks, (unsigned long long)st->decisions,
            (unsigned long long)rej);
    const char *sep = " (";
    for (int r = 1; r < BD_REJ__COUNT; r++) {
        if (!st->rejected[r]) continue;
        fprintf(stderr, "%s%s %llu", sep, bd_reject_name((bd_reject_t)r),
                (unsigned long long)st->rejected[r]);
        sep = ", ";
    }
    fputs(*sep == ',' ? ")\n" : "\n", stderr);
    if (st->verify_failures)
        fprintf(stderr, "replay: %llu allocations refused by the verifier\n",
                (unsigned long long)st->verify_failures);
}

int bd_cmd_replay(int argc, char **argv)
{
    const char *cfg_path = NULL, *out_path = NULL, *redis_url = NULL;
    int threads = 1;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"output", required_argument, NULL, 'o'},
        {"redis", required_argument, NULL, 'r'}, {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:o:t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': cfg_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'r': redis_url = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 'h': replay_usage(stdout); return BD_EXIT_OK;
        default: replay_usage(stderr); return BD_EXIT_USAGE;
        }
    }
    if (!cfg_path || optind >= argc || threads < 1) {
        replay_usage(stderr);
        return BD_EXIT_USAGE;
    }
    char err[8192];
    bd_config_t *cfg;
    if (bd_config_load(cfg_path, &cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    /* Open every log first: a missing file is a usage error before any output. */
    int nlogs = argc - optind;
    bd_logread_t **logs = bd_xcalloc((size_t)nlogs, sizeof(*logs));
    for (int i = 0; i < nlogs; i++) {
        if (bd_logread_open(argv[optind + i], &logs[i], err, sizeof(err)) != BD_OK) {
            fprintf(stderr, "budgetd replay: %s\n", err);
            for (int k = 0; k < i; k++) bd_logread_close(logs[k]);
            free(logs);
            bd_config_free(cfg);
            return BD_EXIT_USAGE;
        }
    }
    FILE *out = stdout;
    if (out_path && strcmp(out_path, "-") == 0) out_path = NULL; /* -o -: stdout, as LOG - is stdin */
    if (out_path && !(out = fopen(out_path, "w"))) {
        fprintf(stderr, "budgetd replay: %s: %s\n", out_path, strerror(errno));
        for (int k = 0; k < nlogs; k++) bd_logread_close(logs[k]);
        free(logs);
        bd_config_free(cfg);
        return BD_EXIT_USAGE;
    }

    replay_sink_t sink = {0};
    bd_engine_opts_t eo = {.threads = threads, .live = false, .sink = replay_sink, .sink_ctx = &sink};
    if (redis_url) {
        /* Same sink as the daemon: fenced scripts, checkpoints, held while
         * Redis is down. Prefix and password come from the config. */
        sink.redis = bd_redis_open_lazy(redis_url, cfg->redis.prefix, cfg->redis.password_env,
                                        cfg->redis.stream_maxlen, err, sizeof(err));
        if (!sink.redis) {
            fprintf(stderr, "budgetd replay: %s\n", err);
            for (int k = 0; k < nlogs; k++) bd_logread_close(logs[k]);
            free(logs);
            bd_config_free(cfg);
            if (out != stdout) fclose(out);
            return BD_EXIT_USAGE;
        }
        sink.pub = bd_publish_new(sink.redis, NULL);
    }
    bd_engine_t *e = bd_engine_new(cfg, &eo);
    int progress = isatty(STDERR_FILENO);
    int rc = BD_EXIT_OK;
    char detail[256];
    for (int i = 0; i < nlogs && rc == BD_EXIT_OK; i++) {
        const char *line;
        size_t len;
        int got;
        while ((got = bd_logread_next(logs[i], &line, &len, err, sizeof(err))) == 1) {
            if (len == 0) continue; /* blank lines are not events */
            bd_err_t serr;
            bd_engine_ingest(e, line, len, detail, sizeof(detail), &serr);
            if (sink.pub && bd_publish_pending(sink.pub) >= 1024 && !bd_publish_flush(sink.pub))
                rc = BD_EXIT_RUNTIME;
            if (progress && (bd_engine_stats(e)->lines & 0xfffff) == 0)
                fprintf(stderr, "\rreplay: %s: %llu lines", argv[optind + i],
                        (unsigned long long)bd_engine_stats(e)->lines);
        }
        if (got < 0) {
            fprintf(stderr, "budgetd replay: %s\n", err);
            rc = BD_EXIT_RUNTIME;
        }
    }
    bd_engine_flush(e);
    if (sink.pub && !bd_publish_flush(sink.pub)) rc = BD_EXIT_RUNTIME;
    if (progress) fputs("\r\033[K", stderr);
    if (sink.n) qsort(sink.recs, sink.n, sizeof(*sink.recs), rec_cmp);
    for (size_t i = 0; i < sink.n; i++) fwrite(sink.arena + sink.recs[i].off, 1, sink.recs[i].len, out);
    if (fflush(out) != 0 || (out != stdout && fclose(out) != 0)) {
        fprintf(stderr, "budgetd replay: write: %s\n", strerror(errno));
        rc = BD_EXIT_RUNTIME;
    }
    replay_summary(bd_engine_stats(e));
    bd_engine_free(e);
    for (int k = 0; k < nlogs; k++) bd_logread_close(logs[k]);
    free(logs);
    bd_publish_free(sink.pub);
    bd_redis_close(sink.redis);
    free(sink.recs);
    free(sink.arena);
    bd_config_free(cfg);
    return rc;
}
