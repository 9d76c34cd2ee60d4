/* config_int.h: internals shared by the config loader's files (not public):
 * the key tables and their walker, and the portfolio steps of the loader.
 * The YAML reading helpers they build on are budgetd/yaml.h. */
#ifndef BUDGETD_CONFIG_INT_H
#define BUDGETD_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "budgetd/config.h"
#include "budgetd/yaml.h"

/* The key tables. Each YAML map of the config is described by a section:
 * one row per key with its type, range, field and built-in value, in the
 * spirit of Redis' standardConfig table. bd_cfg_walk reads a map against
 * its section, bd_cfg_defaults writes the built-in values. The documented
 * keys are those of docs/CONTRACT.md §5; configs/example.yaml shows every
 * one of them. */

/* How a key's value is read and stored. */
typedef enum {
    BD_KEY_NUM,      /* double within range (.inf too when inf_ok) */
    BD_KEY_INT,      /* int or int64_t (by size) within lo..hi */
    BD_KEY_U64,      /* uint64_t */
    BD_KEY_DUR,      /* int64_t seconds; > 0 when flag */
    BD_KEY_BOOL,     /* bool */
    BD_KEY_STR,      /* owned char *; may be "" when flag */
    BD_KEY_ENUM,     /* an enum of config.h, names in enum order */
    BD_KEY_SECTION,  /* nested map read against sub; its struct is at off */
    BD_KEY_MAP,      /* map read by apply (keys the table cannot know: names) */
} bd_key_type_t;

/* Places that allow a key which is not allowed everywhere its section is. */
#define BD_KEY_PORTFOLIO 1u /* under portfolios.NAME, not under defaults */
#define BD_KEY_LISTED 2u    /* on a channel under channels, not defaults.channel */
#define BD_KEY_ARM 4u       /* v2: on an arm under a listed channel's arms */

/* A row without a field (its value is only checked: `v`). */
#define BD_KEY_NOFIELD ((size_t)-1)

typedef struct bd_cfg_key bd_cfg_key_t;
typedef struct bd_cfg_section bd_cfg_section_t;

struct bd_cfg_key {
    const char *name;
    bd_key_type_t type;
    size_t off, size;          /* the field: offset into the section's struct, size */
    bd_yaml_range_t range;          /* NUM */
    bool inf_ok;               /* NUM: .inf also accepted (no cap) */
    bool auto_ok;              /* NUM: `auto` also accepted, stored as auto_val */
    double auto_val;
    int64_t lo, hi;            /* INT */
    bool flag;                 /* DUR: must be > 0; STR: may be empty */
    const char *const *names;  /* ENUM, NULL-terminated */
    double dflt;               /* built-in value of NUM, INT, U64, DUR, BOOL, ENUM */
    const char *dflt_str;      /* built-in value of STR */
    const bd_cfg_section_t *sub; /* SECTION, or MAP whose struct at off has defaults */
    unsigned only;             /* 0, or the BD_KEY_* places that allow the key */
    const char *only_msg;      /* refusal elsewhere; NULL: reported as unknown */
    /* Extra rule once type and range passed: val points at the value read
     * (double, int64_t, uint64_t, bool, int or char *). Reports and returns
     * false to refuse the value. */
    bool (*check)(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what, const void *val);
    /* Told after the value was read, whether it was accepted (ok) or not. */
    void (*note)(const bd_yaml_pair_t *pr, bool ok, void *base, void *user);
    /* MAP: reads pr->val; what is the key's path for messages. A scalar
     * row with apply also takes a map (or list) value, read by apply. */
    void (*apply)(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what, void *base,
                  void *user);
};

/* The rows of one map. top: the root map, whose keys are named without a
 * path and applied in row order once all are gathered (so `defaults` is
 * final before `portfolios` whatever the file's order); every other map is
 * applied in file order. */
struct bd_cfg_section {
    const char *name;
    const bd_cfg_key_t *keys;
    size_t n;
    bool top;
};

/* Largest number of rows in a section. */
#define BD_KEYS_MAX 24

/* The tables (config.c: top, kafka, redis, metrics; policy.c: the rest). */
extern const bd_cfg_section_t bd_cfg_top_keys, bd_cfg_kafka_keys, bd_cfg_redis_keys, bd_cfg_metrics_keys;
extern const bd_cfg_section_t bd_cfg_policy_keys, bd_cfg_risk_keys, bd_cfg_kill_keys,
    bd_cfg_lab_keys, bd_cfg_channel_keys, bd_cfg_season_keys, bd_cfg_lag_keys,
    bd_cfg_delivery_keys, bd_cfg_faults_keys;

/* Reads map (at path) against sec into the struct at base. Unknown keys are
 * reported with the closest allowed name; allow holds the BD_KEY_* places
 * this map is in; user goes to the rows' note and apply. */
void bd_cfg_walk(bd_yaml_ctx_t *cx, yaml_node_t *map, const char *path,
                 const bd_cfg_section_t *sec, void *base, unsigned allow, void *user);

/* Writes the built-in value of every row of sec (and its sub-sections) into
 * the struct at base. String fields must be NULL or owned. */
void bd_cfg_defaults(const bd_cfg_section_t *sec, void *base);

/* Money amounts (budget, channel min, max, initial, saturation) are at
 * most BD_MONEY_MAX (a max may also be .inf): a row's check (policy.c). */
bool bd_cfg_check_money(bd_yaml_ctx_t *cx, const yaml_node_t *v, const char *what,
                        const void *val);

/* v2 goals (goal.c): the map forms of `budget` ({min, max}) and `goal`
 * ({target_roas: R} or {target_cpa: C}), the notes of their scalar forms,
 * and the cvar section; bd_cfg_goal_check refuses a policy whose goal and
 * budget contradict each other (reported at the goal's or budget's line,
 * else at line, naming who). */
void bd_cfg_note_budget_scalar(const bd_yaml_pair_t *pr, bool ok, void *base);
void bd_cfg_note_goal(const bd_yaml_pair_t *pr, bool ok, void *base, void *user);
void bd_cfg_apply_budget(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what,
                         void *base, void *user);
void bd_cfg_apply_goal(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what, void *base,
                       void *user);
void bd_cfg_goal_check(bd_yaml_ctx_t *cx, const bd_policy_t *p, const char *who, int line);
extern const bd_cfg_section_t bd_cfg_cvar_keys;

/* v2 priors (prior.c): the `prior` section of a channel, the `lift` list
 * (a MAP row's apply), and the checks a portfolio's priors allow, run once
 * its channels are read (a strength needs a centre; a CVaR floor above the
 * best mean ROAS the listed channels' priors allow is refused). */
extern const bd_cfg_section_t bd_cfg_prior_keys;
void bd_cfg_apply_lift(bd_yaml_ctx_t *cx, const bd_yaml_pair_t *pr, const char *what, void *base,
                       void *user);
void bd_cfg_prior_check(bd_yaml_ctx_t *cx, const bd_portfolio_cfg_t *pc);

/* The row of sec called name, or NULL. */
const bd_cfg_key_t *bd_cfg_key(const bd_cfg_section_t *sec, const char *name);

/* Keys of a portfolio the caller needs after bd_cfg_policy_apply. */
typedef struct {
    yaml_node_t *channels;      /* value of `channels`, not walked yet */
    yaml_node_t *channels_key;
    yaml_node_t *budget_key;    /* set when `budget` is present (valid or not) */
    yaml_node_t *goal_key;      /* v2: set when `goal` is present (valid or not) */
    yaml_node_t *objective_key; /* v2: set when `objective` is present */
} bd_cfg_found_t;

/* Applies policy map node (defaults or a portfolio) onto p. is_portfolio
 * allows the `channels` key; its value is left in found (not walked) for
 * bd_cfg_portfolio_channels. */
void bd_cfg_policy_apply(bd_yaml_ctx_t *cx, yaml_node_t *map, const char *path, bd_policy_t *p,
                         bool is_portfolio, bd_cfg_found_t *found);

/* Builds the listed channels of pc (whose policy is final) from
 * found->channels and runs the feasibility checks of the portfolio. */
void bd_cfg_portfolio_channels(bd_yaml_ctx_t *cx, const bd_cfg_found_t *found, const char *path,
                               bd_portfolio_cfg_t *pc);

/* Applies the n overrides to doc (set.c): each path's missing maps are
 * created and its value replaced by a plain scalar marked with the line
 * BD_YAML_SET_LINE + its index (yaml.h); a path that cannot be followed is
 * reported. */
void bd_cfg_apply_sets(bd_yaml_ctx_t *cx, yaml_document_t *doc, const bd_config_set_t *sets,
                       size_t n);

#endif
