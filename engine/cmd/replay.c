/* replay.c: `budgetd replay`: the live engine over JSON Lines logs in event
 * time. Decisions are buffered and written sorted by (cycle, portfolio),
 * the order docs/CONTRACT.md §4 promises, whatever the interleaving of the
 * input. A buffer past REPLAY_SPILL bytes is sorted and spilled to a
 * temporary file (a run); the end merges the runs with what is left in
 * memory, by the same key, so the output is the same bytes and memory stays
 * bounded on a year of decisions (docs/DECISIONS.md "Year scale"). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cmd.h"
#include "opts.h"
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

#ifndef REPLAY_SPILL
#define REPLAY_SPILL ((size_t)256 << 20) /* record bytes held before a run is spilled */
#endif

/* One spilled run: records sorted by rec_cmp, each as a run_hdr_t, the
 * portfolio name and the record line; head is its next record; left the
 * records written and not yet read (a run that ends before them was cut:
 * an error, not an end). */
typedef struct {
    int64_t cycle;
    uint64_t seq;
    uint32_t name_len, len;
} run_hdr_t;

typedef struct {
    FILE *f;
    run_hdr_t h;
    char *name, *line;
    size_t name_cap, line_cap;
    uint64_t left;
    bool live;
} run_t;

typedef struct {
    rec_t *recs;
    size_t n, cap;
    char *arena;
    size_t used, arena_cap;
    run_t *runs;           /* spilled runs */
    size_t nruns;
    size_t spill_at;       /* record bytes that make a run: REPLAY_SPILL, or
                            * $BUDGETD_REPLAY_SPILL (bytes; tests) */
    bool spill_failed;
    bd_redis_t *redis;     /* --redis: also published */
    bd_publish_t *pub;
} replay_sink_t;

static int rec_cmp(const void *a, const void *b);
static void replay_spill(replay_sink_t *s);

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
    if (s->used >= s->spill_at) replay_spill(s);
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

/* A new temporary file in $TMPDIR (else /tmp), already unlinked: gone
 * when closed or when the process dies. NULL on failure (errno set). */
static FILE *replay_tmpfile(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/budgetd-replay-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    unlink(path);
    FILE *f = fdopen(fd, "w+");
    if (!f) close(fd);
    return f;
}

/* Sorts the buffered records and writes them to a new temporary file (a
 * run), emptying the buffer. The portfolio names go with them: the merge
 * compares by name. A failed write keeps the records in memory (and says so
 * once): the output is still right, only the bound is lost. */
static void replay_spill(replay_sink_t *s)
{
    if (s->spill_failed) return;
    FILE *f = replay_tmpfile();
    if (!f) goto fail;
    qsort(s->recs, s->n, sizeof(*s->recs), rec_cmp);
    for (size_t i = 0; i < s->n; i++) {
        const rec_t *r = &s->recs[i];
        run_hdr_t h = {r->cycle, r->seq, (uint32_t)strlen(r->portfolio), (uint32_t)r->len};
        if (fwrite(&h, sizeof h, 1, f) != 1 || fwrite(r->portfolio, 1, h.name_len, f) != h.name_len ||
            fwrite(s->arena + r->off, 1, r->len, f) != r->len)
            goto fail;
    }
    if (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0) goto fail;
    s->runs = bd_xrealloc(s->runs, (s->nruns + 1) * sizeof(*s->runs));
    s->runs[s->nruns++] = (run_t){.f = f, .left = s->n};
    s->n = 0;
    s->used = 0;
    return;
fail:
    fprintf(stderr, "budgetd replay: cannot spill decisions to a temporary file (%s); keeping them in memory\n",
            strerror(errno));
    if (f) fclose(f);
    s->spill_failed = true;
}

/* Reads run r's next record into its head; false at its end, and also
 * when the file ends or fails before every record written to it was read
 * (*lost set, reported): those decisions would be missing from the
 * output, so the run is an error, not merely shorter. */
static bool run_next(run_t *r, bool *lost)
{
    r->live = false;
    if (r->left == 0) return false;
    if (fread(&r->h, sizeof r->h, 1, r->f) != 1) goto cut;
    if (r->name_cap < r->h.name_len + 1) r->name = bd_xrealloc(r->name, r->name_cap = r->h.name_len + 1);
    if (r->line_cap < r->h.len) r->line = bd_xrealloc(r->line, r->line_cap = r->h.len);
    if (fread(r->name, 1, r->h.name_len, r->f) != r->h.name_len ||
        fread(r->line, 1, r->h.len, r->f) != r->h.len)
        goto cut;
    r->name[r->h.name_len] = 0;
    r->left--;
    return r->live = true;
cut:
    fprintf(stderr, "budgetd replay: temporary file of spilled decisions: %s before its last %llu records\n",
            ferror(r->f) ? strerror(errno) : "ends", (unsigned long long)r->left);
    *lost = true;
    return false;
}

/* Writes the spilled runs and the sorted buffer merged by rec_cmp (k-way,
 * a linear scan: a year of hourly decisions makes some 70 runs). False
 * when a run could not be read back whole (reported): the output lacks
 * its records. */
static bool replay_merge(replay_sink_t *s, FILE *out)
{
    bool lost = false;
    for (size_t k = 0; k < s->nruns; k++) run_next(&s->runs[k], &lost);
    size_t mi = 0;
    for (;;) {
        const rec_t *best = mi < s->n ? &s->recs[mi] : NULL;
        rec_t cand, bestv;
        size_t bk = SIZE_MAX;
        for (size_t k = 0; k < s->nruns; k++) {
            run_t *r = &s->runs[k];
            if (!r->live) continue;
            cand = (rec_t){r->h.cycle, r->name, r->h.seq, 0, r->h.len};
            if (!best || rec_cmp(&cand, best) < 0) {
                bestv = cand;
                best = &bestv;
                bk = k;
            }
        }
        if (!best) break;
        if (bk == SIZE_MAX) {
            fwrite(s->arena + best->off, 1, best->len, out);
            mi++;
        } else {
            fwrite(s->runs[bk].line, 1, s->runs[bk].h.len, out);
            run_next(&s->runs[bk], &lost);
        }
    }
    for (size_t k = 0; k < s->nruns; k++) {
        fclose(s->runs[k].f);
        free(s->runs[k].name);
        free(s->runs[k].line);
    }
    free(s->runs);
    s->runs = NULL;
    s->nruns = 0;
    return !lost;
}

/* The usage text, to stdout for --help, stderr for bad use. */
static void replay_usage(FILE *f)
{
    fputs("usage: budgetd replay -c CONFIG LOG... [-o OUT] [--redis URL] [--threads N] [--progress SECS]\n"
          "  LOG is a JSON Lines file, '-' for stdin; .gz is read directly\n"
          "  --progress SECS: lines, decisions, rate and peak RSS on stderr every SECS s, and at the end\n", f);
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

/* What the command line asks for. logs point into argv. */
typedef struct {
    const char *cfg_path, *out_path, *redis_url;
    int threads;
    int progress;          /* --progress SECS: a line to stderr every SECS seconds; 0 off */
    const char **logs;
    int nlogs;
} replay_args_t;

/* One run of the command: everything set up, used and torn down. */
typedef struct {
    replay_args_t a;
    bd_config_t *cfg;
    bd_logread_t **logs;   /* a.nlogs readers */
    FILE *out;
    replay_sink_t sink;
    bd_engine_t *e;
} replay_t;

/* Parses argv into a (o keeps the positional list a->logs points to).
 * Returns -1 to go on, else the exit code (usage or --help printed). */
static int replay_parse(int argc, char **argv, bd_opts_t *o, replay_args_t *a)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"output", required_argument, NULL, 'o'},
        {"redis", required_argument, NULL, 'r'}, {"threads", required_argument, NULL, 't'},
        {"progress", required_argument, NULL, 'P'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    *a = (replay_args_t){.threads = 1};
    bd_opts_init(o, "replay", argc, argv, "c:o:t:h", longopts);
    int ch;
    while ((ch = bd_opts_next(o)) != -1) {
        switch (ch) {
        case 'c': a->cfg_path = o->arg; break;
        case 'o': a->out_path = o->arg; break;
        case 'r': a->redis_url = o->arg; break;
        case 't':
            if (!bd_opts_int(o, 1, BD_CMD_MAX_THREADS, &a->threads)) return BD_EXIT_USAGE;
            break;
        case 'P':
            if (!bd_opts_int(o, 1, 86400, &a->progress)) return BD_EXIT_USAGE;
            break;
        case 'h': replay_usage(stdout); return BD_EXIT_OK;
        default: replay_usage(stderr); return BD_EXIT_USAGE;
        }
    }
    a->logs = o->pos;
    a->nlogs = o->npos;
    if (!a->cfg_path || a->nlogs == 0) {
        replay_usage(stderr);
        return BD_EXIT_USAGE;
    }
    /* -o -: stdout, as LOG - is stdin */
    if (a->out_path && strcmp(a->out_path, "-") == 0) a->out_path = NULL;
    return -1;
}

/* Frees whatever rp holds (any part may be missing). */
static void replay_teardown(replay_t *rp)
{
    bd_engine_free(rp->e);
    for (int k = 0; rp->logs && k < rp->a.nlogs; k++) bd_logread_close(rp->logs[k]);
    free(rp->logs);
    if (rp->out && rp->out != stdout) fclose(rp->out);
    bd_publish_free(rp->sink.pub);
    bd_redis_close(rp->sink.redis);
    for (size_t k = 0; k < rp->sink.nruns; k++) {
        fclose(rp->sink.runs[k].f);
        free(rp->sink.runs[k].name);
        free(rp->sink.runs[k].line);
    }
    free(rp->sink.runs);
    free(rp->sink.recs);
    free(rp->sink.arena);
    bd_config_free(rp->cfg);
}

/* The input (a log or the config) that -o names as well, through any
 * other path or link to the same file, or NULL: opening the output
 * truncates it, so the replay would read nothing and exit 0 with the
 * user's log gone (a careless `-o log.jsonl`). */
static const char *replay_out_clobbers(const replay_args_t *a)
{
    struct stat so, si;
    if (!a->out_path || stat(a->out_path, &so) != 0 || !S_ISREG(so.st_mode)) return NULL;
    for (int i = 0; i < a->nlogs; i++)
        if (strcmp(a->logs[i], "-") != 0 && stat(a->logs[i], &si) == 0 && si.st_dev == so.st_dev &&
            si.st_ino == so.st_ino)
            return a->logs[i];
    if (stat(a->cfg_path, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
        return a->cfg_path;
    return NULL;
}

/* Loads the config, opens every log and the output (a missing file is a
 * usage error before any output), and, with --redis, the live sink.
 * Returns BD_EXIT_OK or the exit code of the failure (message printed). */
static int replay_setup(replay_t *rp)
{
    char err[8192];
    if (bd_config_load(rp->a.cfg_path, &rp->cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    rp->logs = bd_xcalloc((size_t)rp->a.nlogs, sizeof(*rp->logs));
    for (int i = 0; i < rp->a.nlogs; i++)
        if (bd_logread_open(rp->a.logs[i], &rp->logs[i], err, sizeof(err)) != BD_OK)
            return bd_opts_fail("replay", "%s", err);
    rp->out = stdout;
    const char *same = replay_out_clobbers(&rp->a);
    if (same)
        return bd_opts_fail("replay", "-o %s is %s itself: it would be emptied before it is read",
                            rp->a.out_path, same);
    if (rp->a.out_path && !(rp->out = fopen(rp->a.out_path, "w")))
        return bd_opts_fail("replay", "%s: %s", rp->a.out_path, strerror(errno));
    if (rp->a.redis_url) {
        /* Same sink as the daemon: fenced scripts, checkpoints, held while
         * Redis is down. Prefix, user and password come from the config. */
        bd_redis_opts_t ro;
        bd_redis_opts_config(&ro, rp->cfg);
        ro.url = rp->a.redis_url;
        ro.lazy = true;
        if (bd_redis_open_opts(&ro, &rp->sink.redis, err, sizeof(err)) != BD_OK)
            return bd_opts_fail("replay", "%s", err);
        int rc = bd_cmd_check_cycle_marker(rp->sink.redis, rp->cfg, err, sizeof(err), NULL);
        if (rc != BD_EXIT_OK) {
            fprintf(stderr, "budgetd replay: %s\n", err);
            return rc;
        }
        rp->sink.pub = bd_publish_new(rp->sink.redis, NULL);
    }
    const char *sp = getenv("BUDGETD_REPLAY_SPILL");
    long long spv = sp ? atoll(sp) : 0;
    rp->sink.spill_at = spv > 0 ? (size_t)spv : REPLAY_SPILL;
    bd_engine_opts_t eo = {.threads = rp->a.threads, .live = false, .sink = replay_sink,
                           .sink_ctx = &rp->sink};
    rp->e = bd_engine_new(rp->cfg, &eo);
    return BD_EXIT_OK;
}

/* Seconds on CLOCK_MONOTONIC. */
static double replay_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --progress: one line to stderr with the lines and decisions so far, the
 * elapsed wall time, the rate since the start and the peak RSS (final: the
 * totals after the last flush). */
static void replay_progress(const replay_t *rp, double t0, bool final)
{
    const bd_engine_stats_t *st = bd_engine_stats(rp->e);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double el = replay_now() - t0;
    fprintf(stderr,
            "replay: %s: %llu lines, %llu events, %llu decisions, %.1f s, %.0f events/s, peak RSS %.1f MiB\n",
            final ? "done" : "progress", (unsigned long long)st->lines,
            (unsigned long long)st->accepted, (unsigned long long)st->decisions, el,
            el > 0 ? (double)st->accepted / el : 0, (double)ru.ru_maxrss / 1024.0);
}

/* Feeds every log through the engine in order, publishing as it goes with
 * --redis. Returns BD_EXIT_OK or BD_EXIT_RUNTIME (read or publish failed). */
static int replay_loop(replay_t *rp)
{
    int progress = isatty(STDERR_FILENO);
    int rc = BD_EXIT_OK;
    char err[8192], detail[256];
    bd_publish_t *pub = rp->sink.pub;
    double t0 = replay_now(), next = t0 + rp->a.progress;
    if (rp->a.progress) progress = 0;
    for (int i = 0; i < rp->a.nlogs && rc == BD_EXIT_OK; i++) {
        const char *line;
        size_t len;
        int got;
        while ((got = bd_logread_next(rp->logs[i], &line, &len, err, sizeof(err))) == 1) {
            if (len == 0) continue; /* blank lines are not events */
            bd_err_t serr;
            bd_engine_ingest(rp->e, line, len, detail, sizeof(detail), &serr);
            if (pub && bd_publish_pending(pub) >= 1024 && !bd_publish_flush(pub)) rc = BD_EXIT_RUNTIME;
            if (progress && (bd_engine_stats(rp->e)->lines & 0xfffff) == 0)
                fprintf(stderr, "\rreplay: %s: %llu lines", rp->a.logs[i],
                        (unsigned long long)bd_engine_stats(rp->e)->lines);
            if (rp->a.progress && (bd_engine_stats(rp->e)->lines & 0x3fff) == 0 && replay_now() >= next) {
                replay_progress(rp, t0, false);
                next = replay_now() + rp->a.progress;
            }
        }
        if (got < 0) {
            fprintf(stderr, "budgetd replay: %s\n", err);
            rc = BD_EXIT_RUNTIME;
        }
    }
    bd_engine_flush(rp->e);
    if (pub && !bd_publish_flush(pub)) rc = BD_EXIT_RUNTIME;
    if (pub && bd_publish_pending(pub)) {
        fprintf(stderr, "budgetd replay: %zu decisions not written: Redis refused them (see above)\n",
                bd_publish_pending(pub));
        rc = BD_EXIT_RUNTIME;
    }
    if (progress) fputs("\r\033[K", stderr);
    if (rp->a.progress) replay_progress(rp, t0, true);
    return rc;
}

/* Writes the records sorted by (cycle, portfolio), then the summary.
 * Returns rc, or BD_EXIT_RUNTIME when the output could not be written or
 * a spilled run could not be read back whole. */
static int replay_finish(replay_t *rp, int rc)
{
    replay_sink_t *s = &rp->sink;
    if (s->n) qsort(s->recs, s->n, sizeof(*s->recs), rec_cmp);
    if (!s->nruns) {
        for (size_t i = 0; i < s->n; i++) fwrite(s->arena + s->recs[i].off, 1, s->recs[i].len, rp->out);
    } else if (!replay_merge(s, rp->out)) {
        fprintf(stderr, "budgetd replay: decisions lost with their temporary file: the output is incomplete\n");
        rc = BD_EXIT_RUNTIME;
    }
    if (!bd_opts_finish_output("replay", rp->out)) rc = BD_EXIT_RUNTIME;
    rp->out = NULL;
    replay_summary(bd_engine_stats(rp->e));
    return rc;
}

/* The command: parse, set up, feed the logs, write the sorted records. */
int bd_cmd_replay(int argc, char **argv)
{
    bd_opts_t o;
    replay_t rp = {0};
    int rc = replay_parse(argc, argv, &o, &rp.a);
    if (rc < 0) {
        rc = replay_setup(&rp);
        if (rc == BD_EXIT_OK) rc = replay_finish(&rp, replay_loop(&rp));
    }
    replay_teardown(&rp);
    bd_opts_free(&o);
    return rc;
}
