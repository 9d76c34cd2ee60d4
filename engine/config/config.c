/* config.c: loading the YAML config and looking things up in it. The keys
 * are listed in docs/CONTRACT.md §5 (configs/example.yaml writes out every
 * one); their types, ranges and built-in values are the rows of the tables
 * below (top level, kafka, redis, metrics) and in policy.c (everything a portfolio
 * inherits).
 *
 * libyaml's document API is used rather than libcyaml: libcyaml 1.3 reports
 * no line numbers and cannot load maps keyed by user data (portfolio and
 * channel names). The walk (keys.c) is table-driven and never stops at the
 * first error, so `budgetd check` lists every problem with its line. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config_int.h"

/* kafka.properties: passed to librdkafka verbatim, so values stay the
 * scalar's text ("false", "5000") and librdkafka judges them. */
static void load_kafka_props(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *kv, const char *what,
                             void *base, void *user)
{
    (void)user;
    bd_config_t *c = base;
    size_t n;
    bd_yaml_pair_t *pr = bd_yaml_pairs(cx, kv->val, what, &n);
    if (!pr) return;
    c->kafka.prop_keys = bd_xcalloc(n + 1, sizeof(char *));
    c->kafka.prop_vals = bd_xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *v = bd_yaml_str(pr[i].val);
        if (!*pr[i].k) {
            bd_yaml_err(cx, bd_yaml_line(pr[i].key), "kafka.properties: empty key");
            continue;
        }
        if (!v) {
            bd_yaml_err(cx, bd_yaml_line(pr[i].val), "kafka.properties.%.80s: expected a scalar",
                        pr[i].k);
            continue;
        }
        c->kafka.prop_keys[c->kafka.n_props] = bd_xstrdup(pr[i].k);
        c->kafka.prop_vals[c->kafka.n_props] = bd_xstrdup(v);
        c->kafka.n_props++;
    }
    free(pr);
}

/* Absent v reads as 1, like an event without v (docs/CONTRACT.md §1). */
static bool check_version(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what,
                          const void *val)
{
    (void)what;
    int64_t iv = *(const int64_t *)val;
    if (iv == 1) return true;
    bd_yaml_err(cx, bd_yaml_line(v), "unsupported config version v: %lld (this budgetd reads v: 1)",
                (long long)iv);
    return false;
}

/* (v2) The seed list of a redis-cluster:// URL after any user info:
 * HOST:PORT[,HOST:PORT...], each port 1-65535, no path or query. NULL when
 * it is well formed, else what is wrong. */
static const char *cluster_seeds_err(const char *s)
{
    const char *at = strrchr(s, '@');
    const char *p = at ? at + 1 : s;
    if (!*p) return "no seed node";
    if (strpbrk(p, "/?#")) return "no database, path or query in a redis-cluster:// URL";
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *colon = NULL;
        for (const char *q = p; q < p + n; q++)
            if (*q == ':') colon = q;
        if (n == 0 || !colon || colon == p) return "each seed node is HOST:PORT";
        long port = 0;
        for (const char *q = colon + 1; q < p + n; q++) {
            if (*q < '0' || *q > '9' || port > 65535) return "a seed node's port is not a number 1-65535";
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535) return "a seed node's port is not a number 1-65535";
        p += n;
        if (*p == ',' && !*++p) return "empty seed node after ','";
    }
    return NULL;
}

static bool check_redis_url(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what,
                            const void *val)
{
    const char *s = *(char *const *)val;
    if (!strncmp(s, "redis://", 8) || !strncmp(s, "unix://", 7)) return true;
    if (!strncmp(s, "redis-cluster://", 16)) {
        const char *why = cluster_seeds_err(s + 16);
        if (!why) return true;
        /* the URL is not repeated: it may hold a password */
        bd_yaml_err(cx, bd_yaml_line(v), "%s: bad redis-cluster URL: %s", what, why);
        return false;
    }
    bd_yaml_err(cx, bd_yaml_line(v),
                "%s: expected redis://HOST[:PORT], redis-cluster://HOST:PORT[,HOST:PORT...] or unix:///PATH, "
                "got '%.80s'", what, s);
    return false;
}

/* Braces would break the {P} hash tag that keeps a portfolio in one slot. */
static bool check_redis_prefix(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what,
                               const void *val)
{
    const char *s = *(char *const *)val;
    if (!strpbrk(s, "{} \t")) return true;
    bd_yaml_err(cx, bd_yaml_line(v), "%s must not contain braces or spaces, got '%.80s'", what, s);
    return false;
}

/* kafka.instance_id: "auto", "off", or an id of 1..BD_INSTANCE_ID_MAX
 * characters from [A-Za-z0-9._-] (it names this daemon to the group
 * coordinator and appears in logs: no spaces, quotes or control bytes). */
static bool check_instance_id(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what,
                              const void *val)
{
    const char *s = *(char *const *)val;
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= BD_INSTANCE_ID_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz"
                                                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
    if (ok) return true;
    bd_yaml_err(cx, bd_yaml_line(v), "%s must be auto, off, or 1..%d characters of A-Z a-z 0-9 . _ -, "
                "got '%.80s'", what, BD_INSTANCE_ID_MAX, s);
    return false;
}

/* An ACL user name goes into AUTH as one argument: no spaces or control
 * characters (Redis' own rule for names in an ACL file). */
static bool check_redis_user(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what,
                             const void *val)
{
    const char *s = *(char *const *)val;
    bool ok = strlen(s) < 128;
    for (const unsigned char *p = (const unsigned char *)s; *p && ok; p++) ok = *p > ' ' && *p != 0x7f;
    if (ok) return true;
    bd_yaml_err(cx, bd_yaml_line(v), "%s: an ACL user name of at most 127 characters, no spaces or "
                "control characters", what);
    return false;
}

/* `defaults`: the policy every portfolio starts from. */
static void load_defaults(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *kv, const char *what, void *base,
                          void *user)
{
    (void)user;
    bd_config_t *c = base;
    bd_cfg_found_t found = {NULL, NULL, NULL, NULL, NULL};
    bd_cfg_policy_apply(cx, kv->val, what, &c->defaults, false, &found);
    c->has_default_budget = found.budget_key != NULL;
    if (found.budget_key || found.goal_key || found.objective_key)
        bd_cfg_goal_check(cx, &c->defaults, "defaults", bd_yaml_line(kv->key));
}

static int cmp_portfolio(const void *a, const void *b)
{
    return strcmp(((const bd_portfolio_cfg_t *)a)->name, ((const bd_portfolio_cfg_t *)b)->name);
}

/* Each portfolio = copy of the final defaults + its own keys + its channels. */
static void load_portfolios(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *kv, const char *what,
                            void *base, void *user)
{
    (void)user;
    bd_config_t *c = base;
    size_t n;
    bd_yaml_pair_t *pr = bd_yaml_pairs(cx, kv->val, what, &n);
    if (!pr) return;
    c->portfolios = bd_xcalloc(n + 1, sizeof *c->portfolios);
    for (size_t i = 0; i < n; i++) {
        const char *name = pr[i].k;
        if (!bd_name_valid(name, strlen(name))) {
            bd_yaml_err(cx, bd_yaml_line(pr[i].key),
                        "portfolios: bad portfolio name '%.80s' (1-64 of A-Z a-z 0-9 _ . : -)",
                        name);
            continue;
        }
        bd_portfolio_cfg_t *pc = &c->portfolios[c->n_portfolios++];
        memcpy(pc->name, name, strlen(name) + 1); /* valid: <= 64 */
        pc->line = bd_yaml_line(pr[i].key);
        pc->p = c->defaults;
        char path[128];
        bd_yaml_join(path, sizeof path, "portfolios", name);
        bd_cfg_found_t found = {NULL, NULL, NULL, NULL, NULL};
        bd_cfg_policy_apply(cx, pr[i].val, path, &pc->p, true, &found);
        /* an inherited inconsistency was reported at defaults */
        if (found.budget_key || found.goal_key || found.objective_key) {
            char who[96];
            snprintf(who, sizeof who, "portfolio '%s'", name);
            bd_cfg_goal_check(cx, &pc->p, who, pc->line);
        }
        /* An invalid budget was reported where it stands: no second message. */
        if (!found.budget_key && !c->has_default_budget)
            bd_yaml_err(cx, pc->line,
                        "portfolio '%s': no budget (set %s.budget or defaults.budget)", name, path);
        bd_cfg_portfolio_channels(cx, &found, path, pc);
    }
    free(pr);
    qsort(c->portfolios, c->n_portfolios, sizeof *c->portfolios, cmp_portfolio);
    /* max_portfolios is applied before portfolios (row order) */
    if ((int64_t)c->n_portfolios > c->max_portfolios)
        bd_yaml_err(cx, bd_yaml_line(kv->key), "portfolios: %zu listed, more than max_portfolios %lld",
                    c->n_portfolios, (long long)c->max_portfolios);
}

#define CFG(f) .off = offsetof(bd_config_t, f), .size = sizeof(((bd_config_t *)0)->f)

static const bd_cfg_key_t KAFKA[] = {
    {"brokers", BD_KEY_STR, CFG(kafka.brokers), .dflt_str = BD_DEFAULT_BROKERS},
    {"topic", BD_KEY_STR, CFG(kafka.topic), .dflt_str = BD_DEFAULT_TOPIC},
    {"group", BD_KEY_STR, CFG(kafka.group), .dflt_str = BD_DEFAULT_GROUP},
    {"dlq_topic", BD_KEY_STR, CFG(kafka.dlq_topic), .dflt_str = BD_DEFAULT_DLQ_TOPIC},
    {"instance_id", BD_KEY_STR, CFG(kafka.instance_id), .dflt_str = BD_INSTANCE_ID_AUTO,
     .check = check_instance_id},
    {"properties", BD_KEY_MAP, .apply = load_kafka_props},
};
const bd_cfg_section_t bd_cfg_kafka_keys = {"kafka", KAFKA, sizeof KAFKA / sizeof *KAFKA, false};

static const bd_cfg_key_t REDIS[] = {
    {"url", BD_KEY_STR, CFG(redis.url), .dflt_str = BD_DEFAULT_REDIS_URL,
     .check = check_redis_url},
    {"prefix", BD_KEY_STR, CFG(redis.prefix), .dflt_str = BD_DEFAULT_PREFIX,
     .check = check_redis_prefix},
    {"password_env", BD_KEY_STR, CFG(redis.password_env), .flag = true,
     .dflt_str = BD_DEFAULT_PASSWORD_ENV},
    {"stream_maxlen", BD_KEY_INT, CFG(redis.stream_maxlen), .lo = 1, .hi = 100000000,
     .dflt = BD_DEFAULT_STREAM_MAXLEN},
    {"user", BD_KEY_STR, CFG(redis.user), .flag = true, .dflt_str = "", .check = check_redis_user},
};
const bd_cfg_section_t bd_cfg_redis_keys = {"redis", REDIS, sizeof REDIS / sizeof *REDIS, false};

/* What /metrics exports: per-portfolio series only when asked, and then
 * for a bounded number of portfolios (a label per portfolio multiplies the
 * series a Prometheus server stores). */
static const bd_cfg_key_t METRICS[] = {
    {"per_portfolio", BD_KEY_BOOL, CFG(metrics.per_portfolio), .dflt = 0},
    {"max_portfolios", BD_KEY_INT, CFG(metrics.max_portfolios), .lo = 1, .hi = 10000,
     .dflt = BD_DEFAULT_METRICS_MAX_PORTFOLIOS},
};
const bd_cfg_section_t bd_cfg_metrics_keys = {"metrics", METRICS, sizeof METRICS / sizeof *METRICS, false};

/* Row order is the order applied (see bd_cfg_section_t.top). */
static const bd_cfg_key_t TOP[] = {
    {"v", BD_KEY_INT, .off = BD_KEY_NOFIELD, .lo = INT64_MIN, .hi = INT64_MAX,
     .check = check_version},
    {"cycle", BD_KEY_DUR, CFG(cycle), .flag = true, .dflt = BD_DEFAULT_CYCLE},
    {"lateness", BD_KEY_DUR, CFG(lateness), .dflt = 0},
    {"seed", BD_KEY_U64, CFG(seed), .dflt = BD_DEFAULT_SEED},
    {"dedup_window", BD_KEY_DUR, CFG(dedup_window), .dflt = BD_DEFAULT_DEDUP_WINDOW},
    {"max_portfolios", BD_KEY_INT, CFG(max_portfolios), .lo = 1, .hi = 10000000,
     .dflt = BD_DEFAULT_MAX_PORTFOLIOS},
    {"max_ahead", BD_KEY_DUR, CFG(max_ahead), .flag = true, .dflt = BD_DEFAULT_MAX_AHEAD},
    {"dedup_max_ids", BD_KEY_INT, CFG(dedup_max_ids), .lo = 1, .hi = BD_DEDUP_MAX_IDS_HI,
     .dflt = BD_DEFAULT_DEDUP_MAX_IDS},
    {"kafka", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_kafka_keys},
    {"redis", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_redis_keys},
    {"metrics", BD_KEY_SECTION, .off = 0, .sub = &bd_cfg_metrics_keys},
    {"defaults", BD_KEY_MAP, CFG(defaults), .sub = &bd_cfg_policy_keys, .apply = load_defaults},
    {"portfolios", BD_KEY_MAP, .apply = load_portfolios},
};
const bd_cfg_section_t bd_cfg_top_keys = {"the top level", TOP, sizeof TOP / sizeof *TOP, true};

bd_err_t bd_config_load_string(const char *yaml, size_t len, const char *name,
                               bd_config_t **out, char *errbuf, size_t errlen)
{
    return bd_config_load_string_set(yaml, len, name, NULL, 0, out, errbuf, errlen);
}

/* "--set PATH=VALUE" of each override, for messages (set.c, yaml.h). */
static char **set_labels(const bd_config_set_t *sets, size_t n)
{
    char **l = bd_xcalloc(n + 1, sizeof *l);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(sets[i].path) + strlen(sets[i].value) + 8;
        l[i] = bd_xmalloc(len);
        snprintf(l[i], len, "--set %s=%s", sets[i].path, sets[i].value);
    }
    return l;
}

bd_err_t bd_config_load_string_set(const char *yaml, size_t len, const char *name,
                                   const bd_config_set_t *sets, size_t nsets, bd_config_t **out,
                                   char *errbuf, size_t errlen)
{
    *out = NULL;
    if (errbuf && errlen) errbuf[0] = '\0';
    if (len > BD_CONFIG_MAX_BYTES)
        return bd_errf(errbuf, errlen, BD_ERR_CONFIG,
                       "%s: larger than %d bytes (the config size limit)", name ? name : "config",
                       BD_CONFIG_MAX_BYTES);
    bd_yaml_ctx_t cx;
    memset(&cx, 0, sizeof cx);
    cx.name = name ? name : "config";
    char **labels = set_labels(sets, nsets);
    cx.set_labels = (const char *const *)labels;
    cx.n_sets = nsets;
    bd_config_t *c = bd_xcalloc(1, sizeof *c);
    c->path = bd_xstrdup(cx.name);
    bd_cfg_defaults(&bd_cfg_top_keys, c);

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!bd_yaml_scan(&cx, yaml, len)) {
        /* too deep or malformed: reported, the document is not built */
    } else if (!yaml_parser_load(&parser, &doc)) {
        bd_yaml_syntax_error(&cx, &parser);
    } else {
        cx.doc = &doc;
        bd_cfg_apply_sets(&cx, &doc, sets, nsets);
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        /* `---` alone is a document whose root is an empty scalar */
        if (!root || bd_yaml_is_null(root))
            bd_yaml_err(&cx, 1,
                        "empty config (at least `portfolios` or `defaults.budget` is needed)");
        else
            bd_cfg_walk(&cx, root, "the top level", &bd_cfg_top_keys, c, 0, NULL);
        /* A second document would be silently ignored: refuse it. */
        yaml_document_t more;
        if (!yaml_parser_load(&parser, &more)) {
            bd_yaml_syntax_error(&cx, &parser);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&more);
            if (r2) bd_yaml_err(&cx, bd_yaml_line(r2), "only one YAML document is allowed");
            yaml_document_delete(&more);
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);

    bd_err_t rc = BD_OK;
    if (cx.n_errors) {
        bd_yaml_flush(&cx, errbuf, errlen);
        bd_config_free(c);
        rc = BD_ERR_CONFIG;
    } else {
        bd_yaml_flush(&cx, NULL, 0);
        *out = c;
    }
    for (size_t i = 0; i < nsets; i++) free(labels[i]);
    free(labels);
    return rc;
}

bd_err_t bd_config_load(const char *path, bd_config_t **out, char *errbuf, size_t errlen)
{
    return bd_config_load_set(path, NULL, 0, out, errbuf, errlen);
}

bd_err_t bd_config_load_set(const char *path, const bd_config_set_t *sets, size_t nsets,
                            bd_config_t **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return bd_errf(errbuf, errlen, BD_ERR_IO, "%s: %s", path, strerror(errno));
    /* Read at most one byte past the limit: a symlink to /dev/zero or a
     * runaway generator is refused without ever holding more. */
    size_t cap = 1 << 14, len = 0;
    char *buf = bd_xmalloc(cap);
    for (;;) {
        if (len == cap) buf = bd_xrealloc(buf, cap *= 2);
        size_t want = cap - len;
        if (want > BD_CONFIG_MAX_BYTES + 1 - len) want = BD_CONFIG_MAX_BYTES + 1 - len;
        size_t got = fread(buf + len, 1, want, f);
        len += got;
        if (got == 0 || len > BD_CONFIG_MAX_BYTES) break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        free(buf);
        return bd_errf(errbuf, errlen, BD_ERR_IO, "%s: %s", path, strerror(err ? err : EIO));
    }
    bd_err_t rc = bd_config_load_string_set(buf, len, path, sets, nsets, out, errbuf, errlen);
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
    free(cfg->kafka.instance_id);
    for (size_t i = 0; i < cfg->kafka.n_props; i++) {
        free(cfg->kafka.prop_keys[i]);
        free(cfg->kafka.prop_vals[i]);
    }
    free(cfg->kafka.prop_keys);
    free(cfg->kafka.prop_vals);
    free(cfg->redis.url);
    free(cfg->redis.prefix);
    free(cfg->redis.password_env);
    free(cfg->redis.user);
    for (size_t i = 0; i < cfg->n_portfolios; i++) {
        for (size_t j = 0; j < cfg->portfolios[i].n_channels; j++) free(cfg->portfolios[i].channels[j].arms);
        free(cfg->portfolios[i].channels);
    }
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
        for (size_t i = 0; i < pc->n_channels; i++) {
            const bd_channel_cfg_t *c = &pc->channels[i];
            if (!strcmp(c->name, name)) return c;
            for (size_t j = 0; j < c->n_arms; j++)
                if (!strcmp(c->arms[j].name, name)) return &c->arms[j];
        }
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

/* The one spelling of each named data fault: the `faults` config keys, the
 * record's `fault` values, the `alloc` meta field. */
const char *bd_fault_name(bd_fault_kind_t k)
{
    switch (k) {
    case BD_FAULT_TRACKING: return "tracking";
    case BD_FAULT_SILENT: return "silent";
    case BD_FAULT_NO_CONVERSIONS: return "no_conversions";
    case BD_FAULT_VALUE_JUMP: return "value_jump";
    case BD_FAULT_NONE:
    case BD_FAULT__COUNT: break;
    }
    return NULL;
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
