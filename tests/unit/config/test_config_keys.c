/* test_config_keys.c: the config loader's key tables (one row per YAML
 * key, engine/config/config_int.h) against the documented keys: no row
 * lost, every bound at its edge, every built-in value the documented one,
 * every key written in configs/example.yaml. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/config.h"
#include "budgetd/yaml.h"
#include "config/config_int.h"
#include "fixtures.h"

static char err[8192];

/* Loads yaml as "t.yaml"; NULL when refused (err holds why). */
static bd_config_t *load(const char *yaml) { return bd_test_config(yaml, err, sizeof err); }

/* True when err holds exactly this line. */
static bool has_line(const char *line) { return bd_test_has_line(err, line); }

/* Where a section's keys are written in a test file: printf template with
 * the key and its value, the line the key lands on, and the path messages
 * name it by ("" at the top level). Listed channels allow `initial`. */
typedef struct {
    const bd_cfg_section_t *sec;
    const char *tmpl;
    int line;
    const char *path;
} place_t;

static const place_t PLACES[] = {
    {&bd_cfg_top_keys, "v: 1\n%s: %s\n", 2, ""},
    {&bd_cfg_kafka_keys, "v: 1\nkafka:\n  %s: %s\n", 3, "kafka"},
    {&bd_cfg_redis_keys, "v: 1\nredis:\n  %s: %s\n", 3, "redis"},
    {&bd_cfg_metrics_keys, "v: 1\nmetrics:\n  %s: %s\n", 3, "metrics"},
    {&bd_cfg_policy_keys, "v: 1\ndefaults:\n  %s: %s\n", 3, "defaults"},
    {&bd_cfg_risk_keys, "v: 1\ndefaults:\n  risk:\n    %s: %s\n", 4, "defaults.risk"},
    {&bd_cfg_cvar_keys, "v: 1\ndefaults:\n  risk:\n    cvar:\n      %s: %s\n", 5,
     "defaults.risk.cvar"},
    {&bd_cfg_kill_keys, "v: 1\ndefaults:\n  kill:\n    %s: %s\n", 4, "defaults.kill"},
    {&bd_cfg_lab_keys, "v: 1\ndefaults:\n  lab:\n    %s: %s\n", 4, "defaults.lab"},
    {&bd_cfg_season_keys, "v: 1\ndefaults:\n  seasonality:\n    %s: %s\n", 4,
     "defaults.seasonality"},
    {&bd_cfg_lag_keys, "v: 1\ndefaults:\n  lag:\n    %s: %s\n", 4, "defaults.lag"},
    {&bd_cfg_delivery_keys, "v: 1\ndefaults:\n  delivery:\n    %s: %s\n", 4, "defaults.delivery"},
    {&bd_cfg_faults_keys, "v: 1\ndefaults:\n  faults:\n    %s: %s\n", 4, "defaults.faults"},
    {&bd_cfg_channel_keys,
     "v: 1\nportfolios:\n  p:\n    budget: 1e9\n    channels:\n      t: {}\n      s:\n        %s: %s\n", 8,
     "portfolios.p.channels.s"},
    {&bd_cfg_prior_keys,
     "v: 1\nportfolios:\n  p:\n    budget: 1e9\n    channels:\n      t: {}\n      s:\n        prior:\n"
     "          %s: %s\n",
     9, "portfolios.p.channels.s.prior"},
};
#define N_PLACES (sizeof PLACES / sizeof *PLACES)

/* Loads the place's template with key = value; returns whether it loaded. */
static bool load_at(const place_t *pl, const char *key, const char *value)
{
    char y[512];
    snprintf(y, sizeof y, pl->tmpl, key, value);
    bd_config_t *c = load(y);
    bd_config_free(c);
    return c != NULL;
}

/* The message path of a key at a place. */
static void key_path(char *dst, size_t cap, const place_t *pl, const char *key)
{
    if (pl->path[0]) snprintf(dst, cap, "%s.%s", pl->path, key);
    else snprintf(dst, cap, "%s", key);
}

/* The table's keys are exactly these, in this order: row order decides
 * which of two equally close names an unknown key is told about, and the
 * top level is applied in it. A lost row fails here. */
Test(config_keys, every_documented_key_has_its_row)
{
    static const struct {
        const bd_cfg_section_t *sec;
        const char *keys[BD_KEYS_MAX + 1];
    } want[] = {
        {&bd_cfg_top_keys,
         {"v", "cycle", "lateness", "seed", "dedup_window", "max_portfolios", "max_ahead",
          "dedup_max_ids", "kafka", "redis", "metrics", "defaults", "portfolios"}},
        {&bd_cfg_kafka_keys, {"brokers", "topic", "group", "dlq_topic", "instance_id", "properties"}},
        {&bd_cfg_redis_keys, {"url", "prefix", "password_env", "stream_maxlen", "user"}},
        {&bd_cfg_metrics_keys, {"per_portfolio", "max_portfolios"}},
        {&bd_cfg_policy_keys,
         {"budget", "goal", "objective", "model", "samples", "max_channels", "discount", "max_step",
          "min_change",
          "explore_share", "mode", "escalate_above", "risk", "kill", "lab", "seasonality", "lag",
          "delivery", "faults", "channel", "channels"}},
        {&bd_cfg_risk_keys, {"roas_floor", "max_prob", "cvar"}},
        {&bd_cfg_cvar_keys, {"alpha", "roas_floor"}},
        {&bd_cfg_kill_keys,
         {"roas_below", "window", "overspend_ratio", "stale_after", "max_reject_ratio", "action"}},
        {&bd_cfg_lab_keys, {"min_conversions", "max_rel_width", "cap_share"}},
        {&bd_cfg_season_keys, {"daily", "weekly"}},
        {&bd_cfg_lag_keys, {"model", "horizon"}},
        {&bd_cfg_delivery_keys, {"caps", "tolerance"}},
        {&bd_cfg_faults_keys, {"tracking", "silent", "no_conversions", "value_jump"}},
        {&bd_cfg_channel_keys, {"min", "max", "saturation", "initial", "lab", "pin", "prior", "lift",
                                 "arms"}},
        {&bd_cfg_prior_keys, {"roas", "saturation", "strength"}},
    };
    for (size_t s = 0; s < sizeof want / sizeof *want; s++) {
        const bd_cfg_section_t *sec = want[s].sec;
        size_t n = 0;
        while (want[s].keys[n]) n++;
        cr_assert_eq(sec->n, n, "section %s: %zu rows, want %zu", sec->name, sec->n, n);
        cr_assert_leq(sec->n, BD_KEYS_MAX);
        for (size_t i = 0; i < n; i++) {
            cr_assert_str_eq(sec->keys[i].name, want[s].keys[i], "section %s row %zu", sec->name,
                             i);
            cr_assert_eq(bd_cfg_key(sec, want[s].keys[i]), &sec->keys[i]);
        }
        cr_assert_null(bd_cfg_key(sec, "no_such_key"));
    }
}

/* Every row's field fits its type (the walker stores by type and size),
 * and every map row says how it is read. */
Test(config_keys, rows_are_well_formed)
{
    for (size_t s = 0; s < N_PLACES; s++) {
        const bd_cfg_section_t *sec = PLACES[s].sec;
        for (size_t i = 0; i < sec->n; i++) {
            const bd_cfg_key_t *r = &sec->keys[i];
            size_t want = 0;
            switch (r->type) {
            case BD_KEY_NUM: want = sizeof(double); break;
            case BD_KEY_U64: want = sizeof(uint64_t); break;
            case BD_KEY_DUR: want = sizeof(int64_t); break;
            case BD_KEY_BOOL: want = sizeof(bool); break;
            case BD_KEY_STR: want = sizeof(char *); break;
            case BD_KEY_INT:
            case BD_KEY_ENUM:
                if (r->off != BD_KEY_NOFIELD)
                    cr_assert(r->size == 4 || r->size == 8, "%s.%s", sec->name, r->name);
                break;
            case BD_KEY_SECTION: cr_assert_not_null(r->sub, "%s.%s", sec->name, r->name); break;
            case BD_KEY_MAP: cr_assert_not_null(r->apply, "%s.%s", sec->name, r->name); break;
            }
            if (want) cr_assert_eq(r->size, want, "%s.%s", sec->name, r->name);
            if (r->type == BD_KEY_ENUM) cr_assert_not_null(r->names);
            if (r->off == BD_KEY_NOFIELD) cr_assert_eq(r->type, BD_KEY_INT);
        }
    }
}

/* The YAML block of docs/CONTRACT.md §5, malloc'd. */
static char *contract_example(void)
{
    char *doc = bd_test_slurp("docs/CONTRACT.md", NULL); /* run from the repository root */
    const char *sec = strstr(doc, "\n## 5.");
    cr_assert_not_null(sec);
    const char *start = strstr(sec, "```yaml\n");
    cr_assert_not_null(start);
    start += 8;
    const char *end = strstr(start, "```");
    cr_assert_not_null(end);
    char *y = bd_xmalloc((size_t)(end - start) + 1);
    memcpy(y, start, (size_t)(end - start));
    y[end - start] = '\0';
    free(doc);
    return y;
}

/* Every key the contract's example writes is read, to the value written. */
Test(config_keys, contract_example_parses)
{
    char *y = contract_example();
    bd_config_t *c = load(y);
    free(y);
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->cycle, 3600);
    cr_assert_str_eq(c->redis.password_env, "BUDGETD_REDIS_PASSWORD");
    cr_assert_eq(c->defaults.budget, 1000);
    cr_assert_eq(c->defaults.kill.stale_after, 3 * 3600);
    const bd_portfolio_cfg_t *p = bd_config_portfolio(c, "acme-us");
    cr_assert_not_null(p);
    cr_assert_eq(p->p.budget, 10000);
    cr_assert_eq(p->n_channels, 3);
    const bd_channel_cfg_t *s = bd_config_channel(p, &c->defaults, "search");
    cr_assert_eq(s->min, 1000);
    cr_assert_eq(s->max, 6000);
    cr_assert_eq(s->saturation, 3000);
    cr_assert(s->has_initial);
    cr_assert_eq(s->initial, 4000);
    cr_assert(bd_config_channel(p, &c->defaults, "video")->lab);
    bd_config_free(c);
}

/* Compares every scalar field of sec (and its sub-sections) in a and b. */
static void same_fields(const bd_cfg_section_t *sec, const void *a, const void *b, const char *skip)
{
    for (size_t i = 0; i < sec->n; i++) {
        const bd_cfg_key_t *row = &sec->keys[i];
        if (row->off == BD_KEY_NOFIELD || (skip && !strcmp(row->name, skip))) continue;
        const char *fa = (const char *)a + row->off, *fb = (const char *)b + row->off;
        if (row->type == BD_KEY_SECTION || row->type == BD_KEY_MAP) {
            if (row->sub) same_fields(row->sub, fa, fb, skip);
        } else if (row->type == BD_KEY_STR) {
            cr_assert_str_eq(*(char *const *)fa, *(char *const *)fb, "%s.%s", sec->name, row->name);
        } else {
            cr_assert(!memcmp(fa, fb, row->size), "%s.%s differs", sec->name, row->name);
        }
    }
}

/* The built-in values are the ones the contract's example writes out (its
 * defaults.budget aside: none is built in), so a row's default and the
 * document cannot drift apart. */
Test(config_keys, builtin_values_are_the_contract_example)
{
    char *y = contract_example();
    bd_config_t *doc = load(y);
    free(y);
    cr_assert_not_null(doc, "%s", err);
    bd_config_t *dflt = load("v: 1\n");
    cr_assert_not_null(dflt, "%s", err);
    same_fields(&bd_cfg_top_keys, doc, dflt, "budget");
    cr_assert_eq(dflt->defaults.budget, 0);
    bd_config_free(doc);
    bd_config_free(dflt);
}

/* Marks the rows of sec used by mapping n (recursing as the loader does). */
static void mark_rows(yaml_document_t *d, yaml_node_t *n, const bd_cfg_section_t *sec,
                      bool seen[][BD_KEYS_MAX]);

/* The PLACES entry of sec. */
static size_t place_index(const bd_cfg_section_t *sec)
{
    for (size_t i = 0; i < N_PLACES; i++)
        if (PLACES[i].sec == sec) return i;
    cr_assert_fail("section %s has no place", sec->name);
    return 0;
}

/* Calls mark_rows on every value of the name-keyed map n. */
static void mark_each(yaml_document_t *d, yaml_node_t *n, const bd_cfg_section_t *sec,
                      bool seen[][BD_KEYS_MAX])
{
    cr_assert_eq(n->type, YAML_MAPPING_NODE);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
        mark_rows(d, yaml_document_get_node(d, p->value), sec, seen);
}

static void mark_rows(yaml_document_t *d, yaml_node_t *n, const bd_cfg_section_t *sec,
                      bool seen[][BD_KEYS_MAX])
{
    cr_assert_eq(n->type, YAML_MAPPING_NODE);
    size_t s = place_index(sec);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *k = bd_yaml_str(yaml_document_get_node(d, p->key));
        yaml_node_t *v = yaml_document_get_node(d, p->value);
        const bd_cfg_key_t *row = bd_cfg_key(sec, k);
        cr_assert_not_null(row, "unknown key %s in %s", k, sec->name);
        seen[s][row - sec->keys] = true;
        if (!strcmp(k, "portfolios")) mark_each(d, v, &bd_cfg_policy_keys, seen);
        else if (!strcmp(k, "channels")) mark_each(d, v, &bd_cfg_channel_keys, seen);
        else if (row->sub) mark_rows(d, v, row->sub, seen);
    }
}

/* configs/example.yaml is the annotated full example: it writes every row
 * at least once, so a new key cannot go undocumented. */
Test(config_keys, example_config_writes_every_row)
{
    FILE *f = fopen("configs/example.yaml", "rb");
    cr_assert_not_null(f);
    yaml_parser_t parser;
    yaml_document_t doc;
    cr_assert(yaml_parser_initialize(&parser));
    yaml_parser_set_input_file(&parser, f);
    cr_assert(yaml_parser_load(&parser, &doc));
    bool seen[N_PLACES][BD_KEYS_MAX];
    memset(seen, 0, sizeof seen);
    mark_rows(&doc, yaml_document_get_root_node(&doc), &bd_cfg_top_keys, seen);
    for (size_t s = 0; s < N_PLACES; s++)
        for (size_t i = 0; i < PLACES[s].sec->n; i++)
            cr_assert(seen[s][i], "configs/example.yaml never writes %s.%s", PLACES[s].sec->name,
                      PLACES[s].sec->keys[i].name);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
}

/* The bound of every bounded key, written here independently of the
 * tables: values just outside (refused) and on the edge inside (accepted),
 * and how the message writes the bound. */
static const struct {
    const bd_cfg_section_t *sec;
    const char *key, *bound, *out[2], *in[2];
} BOUNDS[] = {
    {&bd_cfg_top_keys, "cycle", "> 0", {"0"}, {"1"}},
    {&bd_cfg_top_keys, "dedup_max_ids", "in 1..1073741824", {"0", "1073741825"},
     {"1", "1073741824"}},
    {&bd_cfg_lag_keys, "horizon", "> 0", {"0"}, {"1"}},
    {&bd_cfg_top_keys, "max_ahead", "> 0", {"0"}, {"1"}},
    {&bd_cfg_redis_keys, "stream_maxlen", "in 1..100000000", {"0", "100000001"},
     {"1", "100000000"}},
    {&bd_cfg_metrics_keys, "max_portfolios", "in 1..10000", {"0", "10001"}, {"1", "10000"}},
    {&bd_cfg_policy_keys, "budget", "> 0", {"0"}, {"0.001"}},
    {&bd_cfg_policy_keys, "samples", "in 1..4096", {"0", "4097"}, {"1", "4096"}},
    {&bd_cfg_policy_keys, "max_channels", "in 1..4096", {"0", "4097"}, {"1", "4096"}},
    {&bd_cfg_top_keys, "max_portfolios", "in 1..10000000", {"0", "10000001"}, {"1", "10000000"}},
    {&bd_cfg_policy_keys, "discount", "in (0, 1]", {"0", "1.001"}, {"0.001", "1"}},
    {&bd_cfg_policy_keys, "max_step", "> 0", {"0"}, {"0.001"}},
    {&bd_cfg_policy_keys, "min_change", "in [0, 1)", {"-0.001", "1"}, {"0", "0.999"}},
    {&bd_cfg_policy_keys, "explore_share", "in [0, 1)", {"-0.001", "1"}, {"0", "0.999"}},
    {&bd_cfg_policy_keys, "escalate_above", "> 0", {"0"}, {"0.001"}},
    {&bd_cfg_risk_keys, "roas_floor", ">= 0", {"-0.001"}, {"0"}},
    {&bd_cfg_risk_keys, "max_prob", "in (0, 1]", {"0", "1.001"}, {"0.001", "1"}},
    {&bd_cfg_cvar_keys, "alpha", "in (0, 1]", {"0", "1.001"}, {"0.001", "1"}},
    {&bd_cfg_cvar_keys, "roas_floor", ">= 0", {"-0.001"}, {"0"}},
    {&bd_cfg_kill_keys, "roas_below", ">= 0", {"-0.001"}, {"0"}},
    {&bd_cfg_kill_keys, "window", "in 1..1000000", {"0", "1000001"}, {"1", "1000000"}},
    /* also 0 (off) or >= 1: kill.overspend_ratio in config.ranges */
    {&bd_cfg_kill_keys, "overspend_ratio", ">= 0", {"-0.001"}, {"0", "1"}},
    {&bd_cfg_kill_keys, "max_reject_ratio", "in [0, 1]", {"-0.001", "1.001"}, {"0", "1"}},
    {&bd_cfg_lab_keys, "min_conversions", ">= 0", {"-0.001"}, {"0"}},
    {&bd_cfg_lab_keys, "max_rel_width", "> 0", {"0"}, {"0.001"}},
    {&bd_cfg_lab_keys, "cap_share", "in (0, 1]", {"0", "1.001"}, {"0.001", "1"}},
    {&bd_cfg_channel_keys, "min", ">= 0", {"-0.001"}, {"0"}},
    {&bd_cfg_channel_keys, "max", ">= 0", {"-0.001"}, {"0", ".inf"}},
    {&bd_cfg_channel_keys, "saturation", "> 0", {"0"}, {"0.001"}},
    {&bd_cfg_channel_keys, "initial", ">= 0", {"-0.001"}, {"0"}},
    {&bd_cfg_delivery_keys, "tolerance", "in [0, 1)", {"-0.001", "1"}, {"0", "0.999"}},
    /* the template's only channel must take the whole budget: a pin of 0
     * is refused there as infeasible (test_pins.c accepts it elsewhere) */
    {&bd_cfg_channel_keys, "pin", ">= 0", {"-0.001"}, {"1e9"}},
    {&bd_cfg_prior_keys, "roas", "> 0", {"0"}, {"0.001"}},
    {&bd_cfg_prior_keys, "saturation", "> 0", {"0"}, {"0.001"}},
    {&bd_cfg_prior_keys, "strength", ">= 0", {"-0.001"}, {"0"}},
};
#define N_BOUNDS (sizeof BOUNDS / sizeof *BOUNDS)

/* Expects value of key at pl to be refused with exactly one message,
 * "t.yaml:LINE: PATH must be BOUND, got VALUE". */
static void expect_range_error(const place_t *pl, const char *key, const char *value,
                               const char *bound)
{
    char path[160], want[400];
    key_path(path, sizeof path, pl, key);
    cr_assert_not(load_at(pl, key, value), "%s: %s accepted", path, value);
    snprintf(want, sizeof want, "t.yaml:%d: %s must be %s, got %s", pl->line, path, bound, value);
    cr_assert_str_eq(err, want);
}

static void expect_accepted(const place_t *pl, const char *key, const char *value)
{
    char path[160];
    key_path(path, sizeof path, pl, key);
    cr_assert(load_at(pl, key, value), "%s: %s refused: %s", path, value, err);
}

/* Every bounded key refuses the value just outside its bound with one
 * message naming the key and its line, and accepts the value on the edge:
 * a row that lost, widened or narrowed its range fails here. */
Test(config_keys, every_bound_holds_at_its_edge)
{
    for (size_t b = 0; b < N_BOUNDS; b++) {
        const place_t *pl = &PLACES[place_index(BOUNDS[b].sec)];
        cr_assert_not_null(bd_cfg_key(pl->sec, BOUNDS[b].key), "%s", BOUNDS[b].key);
        for (int j = 0; j < 2; j++) {
            if (BOUNDS[b].out[j])
                expect_range_error(pl, BOUNDS[b].key, BOUNDS[b].out[j], BOUNDS[b].bound);
            if (BOUNDS[b].in[j]) expect_accepted(pl, BOUNDS[b].key, BOUNDS[b].in[j]);
        }
    }
}

/* Every row with a bound (a number, a bounded integer, a positive duration)
 * is in BOUNDS, so a new one cannot go untested. */
Test(config_keys, every_bounded_row_is_tested)
{
    size_t bounded = 0;
    for (size_t s = 0; s < N_PLACES; s++) {
        const bd_cfg_section_t *sec = PLACES[s].sec;
        for (size_t i = 0; i < sec->n; i++) {
            const bd_cfg_key_t *row = &sec->keys[i];
            bool has_bound = row->type == BD_KEY_NUM ||
                             (row->type == BD_KEY_INT && row->hi != INT64_MAX) ||
                             (row->type == BD_KEY_DUR && row->flag);
            if (!has_bound) continue;
            bounded++;
            size_t b = 0;
            while (b < N_BOUNDS && !(BOUNDS[b].sec == sec && !strcmp(BOUNDS[b].key, row->name)))
                b++;
            cr_assert_lt(b, N_BOUNDS, "%s.%s has a bound but no BOUNDS entry", sec->name,
                         row->name);
        }
    }
    cr_assert_eq(bounded, N_BOUNDS);
}

/* Every key misspelt by one letter in front is refused at its line with
 * the row's own name suggested ("xmode": one edit from mode, two from
 * model). */
Test(config_keys, misspelt_keys_suggest_their_row)
{
    for (size_t s = 0; s < N_PLACES; s++) {
        const place_t *pl = &PLACES[s];
        for (size_t i = 0; i < pl->sec->n; i++) {
            const char *name = pl->sec->keys[i].name;
            if (pl->sec->keys[i].only == BD_KEY_PORTFOLIO) continue; /* not allowed in defaults */
            char typo[64], want[300];
            snprintf(typo, sizeof typo, "x%s", name);
            cr_assert_not(load_at(pl, typo, "1"));
            snprintf(want, sizeof want, "t.yaml:%d: unknown key '%s' in %s (did you mean '%s'?)",
                     pl->line, typo, pl->path[0] ? pl->path : "the top level", name);
            cr_assert(has_line(want), "want\n  %s\ngot:\n%s", want, err);
        }
    }
}
