/* config.c: loading the YAML config of CONTRACT §5 and looking things up in it.
 *
 * libyaml's document API is used rather than libcyaml: libcyaml 1.3 reports
 * no line numbers and cannot load maps keyed by user data (portfolio and
 * channel names). The walk is schema-driven and never stops at the first
 * error, so `budgetd check` lists every problem with its line. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config_int.h"

static const char *const TOP_KEYS[] = {"v", "cycle", "lateness", "seed", "dedup_window", "kafka",
                                       "redis", "defaults", "portfolios", NULL};
static const char *const KAFKA_KEYS[] = {"brokers", "topic", "group", "dlq_topic", "properties",
                                         NULL};
static const char *const REDIS_KEYS[] = {"url", "prefix", "password_env", "stream_maxlen", NULL};

/* Top-level values, gathered first so that `defaults` is final before any
 * portfolio inherits from it whatever the key order in the file. */
typedef struct {
    yaml_node_t *v, *cycle, *lateness, *seed, *dedup, *kafka, *redis, *defaults, *portfolios;
    yaml_node_t *defaults_key;
} top_t;

static void set_builtin(bd_config_t *c)
{
    c->cycle = BD_DEFAULT_CYCLE;
    c->lateness = 0;
    c->seed = BD_DEFAULT_SEED;
    c->dedup_window = BD_DEFAULT_DEDUP_WINDOW;
    c->kafka.brokers = bd_xstrdup(BD_DEFAULT_BROKERS);
    c->kafka.topic = bd_xstrdup(BD_DEFAULT_TOPIC);
    c->kafka.group = bd_xstrdup(BD_DEFAULT_GROUP);
    c->kafka.dlq_topic = bd_xstrdup(BD_DEFAULT_DLQ_TOPIC);
    c->redis.url = bd_xstrdup(BD_DEFAULT_REDIS_URL);
    c->redis.prefix = bd_xstrdup(BD_DEFAULT_PREFIX);
    c->redis.password_env = bd_xstrdup(BD_DEFAULT_PASSWORD_ENV);
    c->redis.stream_maxlen = BD_DEFAULT_STREAM_MAXLEN;
    bd_cfg_policy_builtin(&c->defaults);
}

/* kafka.properties: passed to librdkafka verbatim, so values stay the
 * scalar's text ("false", "5000") and librdkafka judges them. */
static void load_kafka_props(bd_cfgctx_t *cx, yaml_node_t *map, bd_config_t *c)
{
    size_t n;
    bd_cfg_pair_t *pr = bd_cfg_pairs(cx, map, "kafka.properties", &n);
    if (!pr) return;
    c->kafka.prop_keys = bd_xcalloc(n + 1, sizeof(char *));
    c->kafka.prop_vals = bd_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *v = bd_cfg_str(pr[i].val);
        if (!*pr[i].k) {
            bd_cfg_err(cx, bd_cfg_line(pr[i].key), "kafka.properties: empty key");
            continue;
        }
        if (!v) {
            bd_cfg_err(cx, bd_cfg_line(pr[i].val), "kafka.properties.%.80s: expected a scalar",
                       pr[i].k);
            continue;
        }
        c->kafka.prop_keys[c->kafka.n_props] = bd_xstrdup(pr[i].k);
        c->kafka.prop_vals[c->kafka.n_props] = bd_xstrdup(v);
        c->kafka.n_props++;
    }
    free(pr);
}

static void load_kafka(bd_cfgctx_t *cx, yaml_node_t *map, bd_config_t *c)
{
    size_t n;
    bd_cfg_pair_t *pr = bd_cfg_pairs(cx, map, "kafka", &n);
    if (!pr) return;
    for (size_t i = 0; i < n; i++) {
        const char *k = pr[i].k;
        yaml_node_t *v = pr[i].val;
        if (!strcmp(k, "brokers")) bd_cfg_string(cx, v, "kafka.brokers", false, &c->kafka.brokers);
        else if (!strcmp(k, "topic")) bd_cfg_string(cx, v, "kafka.topic", false, &c->kafka.topic);
        else if (!strcmp(k, "group")) bd_cfg_string(cx, v, "kafka.group", false, &c->kafka.group);
        else if (!strcmp(k, "dlq_topic"))
            bd_cfg_string(cx, v, "kafka.dlq_topic", false, &c->kafka.dlq_topic);
        else if (!strcmp(k, "properties")) load_kafka_props(cx, v, c);
        else bd_cfg_unknown(cx, pr[i].key, k, "kafka", KAFKA_KEYS);
    }
    free(pr);
}

static void load_redis(bd_cfgctx_t *cx, yaml_node_t *map, bd_config_t *c)
{
    size_t n;
    bd_cfg_pair_t *pr = bd_cfg_pairs(cx, map, "redis", &n);
    if (!pr) return;
    for (size_t i = 0; i < n; i++) {
        const char *k = pr[i].k;
        yaml_node_t *v = pr[i].val;
        int64_t iv;
        if (!strcmp(k, "url")) {
            if (bd_cfg_string(cx, v, "redis.url", false, &c->redis.url) &&
                strncmp(c->redis.url, "redis://", 8) && strncmp(c->redis.url, "unix://", 7))
                bd_cfg_err(cx, bd_cfg_line(v),
                           "redis.url: expected redis://HOST[:PORT] or unix:///PATH, got '%.80s'",
                           c->redis.url);
        } else if (!strcmp(k, "prefix")) {
            /* Braces would break the {P} hash tag that keeps a portfolio in one slot. */
            if (bd_cfg_string(cx, v, "redis.prefix", false, &c->redis.prefix) &&
                strpbrk(c->redis.prefix, "{} \t"))
                bd_cfg_err(cx, bd_cfg_line(v),
                           "redis.prefix must not contain braces or spaces, got '%.80s'",
                           c->redis.prefix);
        } else if (!strcmp(k, "password_env")) {
            bd_cfg_string(cx, v, "redis.password_env", true, &c->redis.password_env);
        } else if (!strcmp(k, "stream_maxlen")) {
            if (bd_cfg_int(cx, v, "redis.stream_maxlen", 1, 100000000, &iv))
                c->redis.stream_maxlen = (int)iv;
        } else {
            bd_cfg_unknown(cx, pr[i].key, k, "redis", REDIS_KEYS);
        }
    }
    free(pr);
}

static int cmp_portfolio(const void *a, const void *b)
{
    return strcmp(((const bd_portfolio_cfg_t *)a)->name, ((const bd_portfolio_cfg_t *)b)->name);
}

/* Each portfolio = copy of the final defaults + its own keys + its channels. */
static void load_portfolios(bd_cfgctx_t *cx, yaml_node_t *map, bd_config_t *c)
{
    size_t n;
    bd_cfg_pair_t *pr = bd_cfg_pairs(cx, map, "portfolios", &n);
    if (!pr) return;
    c->portfolios = bd_xcalloc(n + 1, sizeof *c->portfolios);
    for (size_t i = 0; i < n; i++) {
        const char *name = pr[i].k;
        if (!bd_cfg_valid_name(name)) {
            bd_cfg_err(cx, bd_cfg_line(pr[i].key),
                       "portfolios: bad portfolio name '%.80s' (1-64 of A-Z a-z 0-9 _ . : -)",
                       name);
            continue;
        }
        bd_portfolio_cfg_t *pc = &c->portfolios[c->n_portfolios++];
        memcpy(pc->name, name, strlen(name) + 1); /* valid: <= 64 */
        pc->line = bd_cfg_line(pr[i].key);
        pc->p = c->defaults;
        char path[128];
        bd_cfg_join(path, sizeof path, "portfolios", name);
        bd_cfg_found_t found = {NULL, NULL, NULL};
        bd_cfg_policy_apply(cx, pr[i].val, path, &pc->p, true, &found);
        /* An invalid budget was reported where it stands: no second message. */
        if (!found.budget_key && !c->has_default_budget)
            bd_cfg_err(cx, pc->line, "portfolio '%s': no budget (set %s.budget or defaults.budget)",
                       name, path);
        bd_cfg_portfolio_channels(cx, &found, path, pc);
    }
    free(pr);
    qsort(c->portfolios, c->n_portfolios, sizeof *c->portfolios, cmp_portfolio);
}

/* Walks the root mapping in a fixed order (see top_t). */
static void load_root(bd_cfgctx_t *cx, yaml_node_t *root, bd_config_t *c)
{
    size_t n;
    bd_cfg_pair_t *pr = bd_cfg_pairs(cx, root, "the top level", &n);
    if (!pr) return;
    top_t t;
    memset(&t, 0, sizeof t);
    for (size_t i = 0; i < n; i++) {
        const char *k = pr[i].k;
        yaml_node_t *v = pr[i].val;
        if (!strcmp(k, "v")) t.v = v;
        else if (!strcmp(k, "cycle")) t.cycle = v;
        else if (!strcmp(k, "lateness")) t.lateness = v;
        else if (!strcmp(k, "seed")) t.seed = v;
        else if (!strcmp(k, "dedup_window")) t.dedup = v;
        else if (!strcmp(k, "kafka")) t.kafka = v;
        else if (!strcmp(k, "redis")) t.redis = v;
        else if (!strcmp(k, "defaults")) {
            t.defaults = v;
            t.defaults_key = pr[i].key;
        } else if (!strcmp(k, "portfolios")) t.portfolios = v;
        else bd_cfg_unknown(cx, pr[i].key, k, "the top level", TOP_KEYS);
    }
    free(pr);
    int64_t iv;
    /* Absent v reads as 1, like an event without v (CONTRACT §1). */
    if (t.v && bd_cfg_int(cx, t.v, "v", INT64_MIN, INT64_MAX, &iv) && iv != 1)
        bd_cfg_err(cx, bd_cfg_line(t.v), "unsupported config version v: %lld (this budgetd reads v: 1)",
                   (long long)iv);
    if (t.cycle) bd_cfg_dur(cx, t.cycle, "cycle", true, &c->cycle);
    if (t.lateness) bd_cfg_dur(cx, t.lateness, "lateness", false, &c->lateness);
    if (t.seed) bd_cfg_u64(cx, t.seed, "seed", &c->seed);
    if (t.dedup) bd_cfg_dur(cx, t.dedup, "dedup_window", false, &c->dedup_window);
    if (t.kafka) load_kafka(cx, t.kafka, c);
    if (t.redis) load_redis(cx, t.redis, c);
    if (t.defaults) {
        bd_cfg_found_t found = {NULL, NULL, NULL};
        bd_cfg_policy_apply(cx, t.defaults, "defaults", &c->defaults, false, &found);
        c->has_default_budget = found.budget_key != NULL;
    }
    if (t.portfolios) load_portfolios(cx, t.portfolios, c);
}

/* Reports a libyaml parser error at its problem mark. */
static void yaml_error(bd_cfgctx_t *cx, const yaml_parser_t *p)
{
    int line = (int)p->problem_mark.line + 1;
    const char *prob = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR) prob = "out of memory";
    if (p->context)
        bd_cfg_err(cx, line, "YAML syntax error: %s (%s started at line %d)", prob,
                   p->context, (int)p->context_mark.line + 1);
    else
        bd_cfg_err(cx, line, "YAML syntax error: %s", prob);
}

bd_err_t bd_config_load_string(const char *yaml, size_t len, const char *name,
                               bd_config_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    if (errbuf && errlen) errbuf[0] = '\0';
    bd_cfgctx_t cx;
    memset(&cx, 0, sizeof cx);
    cx.name = name ? name : "config";
    bd_config_t *c = bd_xcalloc(1, sizeof *c);
    c->path = bd_xstrdup(cx.name);
    set_builtin(c);

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&cx, &parser);
    } else {
        cx.doc = &doc;
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root)
            bd_cfg_err(&cx, 1, "empty config (at least `portfolios` or `defaults.budget` is needed)");
        else
            load_root(&cx, root, c);
        /* A second document would be silently ignored: refuse it. */
        yaml_document_t more;
        if (!yaml_parser_load(&parser, &more)) {
            yaml_error(&cx, &parser);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&more);
            if (r2) bd_cfg_err(&cx, bd_cfg_line(r2), "only one YAML document is allowed");
            yaml_document_delete(&more);
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);

    if (cx.n_errors) {
        bd_cfg_flush(&cx, errbuf, errlen);
        bd_config_free(c);
        return BD_ERR_CONFIG;
    }
    bd_cfg_flush(&cx, NULL, 0);
    *out = c;
    return BD_OK;
}

bd_err_t bd_config_load(const char *path, bd_config_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return bd_errf(errbuf, errlen, BD_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 14, len = 0;
    char *buf = bd_xmalloc(cap);
    for (;;) {
        if (len == cap) buf = bd_xrealloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        return bd_errf(errbuf, errlen, BD_ERR_IO, "%s: %s", path, strerror(err ? err : EIO));
    }
    bd_err_t rc = bd_config_load_string(buf, len, path, out, errbuf, errlen);
    free(buf);
    return rc;
}

void bd_config_free(bd_config_t *cfg)
{
    if (!cfg) return;
    free(cfg->path);
    free(cfg->kafka.brokers);
    free(cfg->kafka.topic);
    free(cfg->kafka.group);
    free(cfg->kafka.dlq_topic);
    for (size_t i = 0; i < cfg->kafka.n_props; i++) {
        free(cfg->kafka.prop_keys[i]);
        free(cfg->kafka.prop_vals[i]);
    }
    free(cfg->kafka.prop_keys);
    free(cfg->kafka.prop_vals);
    free(cfg->redis.url);
    free(cfg->redis.prefix);
    free(cfg->redis.password_env);
    for (size_t i = 0; i < cfg->n_portfolios; i++) free(cfg->portfolios[i].channels);
    free(cfg->portfolios);
    free(cfg);
}

/* Binary search: portfolios are sorted by name (strcmp order) at load. */
const bd_portfolio_cfg_t *bd_config_portfolio(const bd_config_t *cfg, const char *name)
{
    size_t lo = 0, hi = cfg->n_portfolios;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, cfg->portfolios[mid].name);
        if (c == 0) return &cfg->portfolios[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* Linear: a portfolio lists a handful of channels, kept in config order. */
const bd_channel_cfg_t *bd_config_channel(const bd_portfolio_cfg_t *pc, const bd_policy_t *pol,
                                          const char *name)
{
    if (pc) {
        for (size_t i = 0; i < pc->n_channels; i++)
            if (!strcmp(pc->channels[i].name, name)) return &pc->channels[i];
        return &pc->p.channel;
    }
    return &pol->channel;
}

const char *bd_mode_name(bd_mode_t m)
{
    switch (m) {
    case BD_MODE_ASSIST: return "assist";
    case BD_MODE_COLLABORATE: return "collaborate";
    case BD_MODE_DELEGATE: return "delegate";
    case BD_MODE_AUTOMATE: return "automate";
    }
    return "?";
}

const char *bd_objective_name(bd_objective_t o)
{
    switch (o) {
    case BD_OBJ_REVENUE: return "revenue";
    case BD_OBJ_CONVERSIONS: return "conversions";
    }
    return "?";
}

const char *bd_kill_action_name(bd_kill_action_t a)
{
    switch (a) {
    case BD_KILL_FREEZE: return "freeze";
    case BD_KILL_FALLBACK: return "fallback";
    case BD_KILL_ZERO: return "zero";
    }
    return "?";
}
