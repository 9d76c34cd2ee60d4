/* config.h: the guardrail configuration, loaded and validated. Its keys are
 * listed in docs/CONTRACT.md §5. */
#ifndef BUDGETD_CONFIG_H
#define BUDGETD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "budgetd/common.h"

/* Built-in values of the top-level keys (docs/CONTRACT.md §5): the one
 * place they are written (the loader's key table refers to them; lateness
 * is 0). Commands that run without a config (operator commands with
 * --redis) use the same ones. */
#define BD_DEFAULT_CYCLE 3600
#define BD_DEFAULT_SEED 42
#define BD_DEFAULT_DEDUP_WINDOW 86400
#define BD_DEFAULT_MAX_AHEAD 86400 /* docs/CONTRACT.md v2 §1: the time guard */
#define BD_DEFAULT_DEDUP_MAX_IDS 4000000 /* per portfolio: 140-280 MB at 35-70 B per id (dedup.h) */
#define BD_DEDUP_MAX_IDS_HI (1LL << 30)
#define BD_DEFAULT_BROKERS "127.0.0.1:9092"
#define BD_DEFAULT_TOPIC "channel-events"
#define BD_DEFAULT_GROUP "budgetd"
#define BD_DEFAULT_DLQ_TOPIC "channel-events-dlq"
/* kafka.instance_id: derived from host and config name / no static membership */
#define BD_INSTANCE_ID_AUTO "auto"
#define BD_INSTANCE_ID_OFF "off"
/* longest kafka.instance_id (Kafka's own limit for names is 249) */
#define BD_INSTANCE_ID_MAX 249
#define BD_DEFAULT_REDIS_URL "redis://127.0.0.1:6379"
#define BD_DEFAULT_PREFIX "budgetd"
#define BD_DEFAULT_PASSWORD_ENV "BUDGETD_REDIS_PASSWORD"
#define BD_DEFAULT_STREAM_MAXLEN 10000
/* Portfolios one process holds, listed ones included (memory: some 3.5 KB
 * for a portfolio with one channel, 1.3 KB per further channel), and
 * channels per portfolio. */
#define BD_DEFAULT_MAX_PORTFOLIOS 10000
#define BD_DEFAULT_MAX_CHANNELS 64

/* Largest config file read (bytes): some 100k portfolios of a few lines.
 * A larger file (or /dev/zero) is refused as a config error before it is
 * held in memory. */
#define BD_CONFIG_MAX_BYTES (16 << 20)

/* Largest money amount of a config (budget, channel min, max, initial,
 * saturation), per cycle: 10^14 cents stay exact in a double (below 2^53),
 * so the allocator's cent arithmetic and the verifier's checks hold. */
#define BD_MONEY_MAX 1e12
#define BD_DEFAULT_METRICS_MAX_PORTFOLIOS 100

typedef enum { BD_OBJ_REVENUE = 0, BD_OBJ_CONVERSIONS } bd_objective_t;
typedef enum { BD_MODE_ASSIST = 0, BD_MODE_COLLABORATE, BD_MODE_DELEGATE, BD_MODE_AUTOMATE } bd_mode_t;
typedef enum { BD_KILL_FREEZE = 0, BD_KILL_FALLBACK, BD_KILL_ZERO } bd_kill_action_t;
/* A learned time structure: off, on when the data support it, or always on. */
typedef enum { BD_AUTO_OFF = 0, BD_AUTO_AUTO, BD_AUTO_ON } bd_auto_t;
typedef enum { BD_MODEL_POISSON_SAT = 0, BD_MODEL_LOGLOG, BD_MODEL_BETA_BERNOULLI } bd_model_kind_t;
/* What a detected data fault of a kind does to its channel (v2 `faults`):
 * not looked for, held at its pre-fault allocation, or trips the kill. */
typedef enum { BD_FAULT_ACT_OFF = 0, BD_FAULT_ACT_HOLD, BD_FAULT_ACT_KILL } bd_fault_action_t;
/* v2 `goal`: how a portfolio's total per cycle is chosen. BUDGET spends
 * exactly `budget` (v1); a target spends the total within the budget range
 * where the posterior-sampled marginal return of the last unit meets it
 * (alloc.h "Goals"). */
typedef enum { BD_GOAL_BUDGET = 0, BD_GOAL_TARGET_ROAS, BD_GOAL_TARGET_CPA } bd_goal_kind_t;
/* The named data faults (fault.h), indexing the policy's actions. */
typedef enum {
    BD_FAULT_NONE = 0, BD_FAULT_TRACKING, BD_FAULT_SILENT, BD_FAULT_NO_CONVERSIONS,
    BD_FAULT_VALUE_JUMP, BD_FAULT__COUNT
} bd_fault_kind_t;

/* v2 `lift`: one lift test of a channel, incremental conversions
 * `conversions` +- `se` (standard error) measured while it spent `spend`
 * in total over `cycles` cycles (evenly). */
typedef struct {
    double spend, conversions, se, cycles;
} bd_lift_t;
#define BD_LIFT_MAX 8 /* lift tests per channel */

/* Per-channel guardrails. max is INFINITY when uncapped. */
typedef struct bd_channel_cfg {
    char name[BD_NAME_MAX + 1];
    double min, max;
    double saturation;   /* prior centre of the saturation spend k */
    double initial;      /* valid when has_initial */
    bool has_initial;
    bool lab;
    bool has_pin;        /* v2 `pin`: the channel spends exactly pin every cycle */
    double pin;          /* valid when has_pin */
    struct {             /* v2 `prior` (models/poisson_sat.c); 0: not given */
        double roas;     /* prior mean return per unit spend at low spend */
        double saturation; /* prior saturation spend (0: `saturation`) */
        double strength; /* cycles of data at the saturation spend the prior is worth */
    } prior;
    bd_lift_t lift[BD_LIFT_MAX]; /* v2 `lift` (listed channels) */
    size_t n_lift;
    /* v2 `arms` of a listed channel: campaigns or creatives its amount is
     * split among (owned by the portfolio config; decide.c, docs/CONTRACT.md
     * §11.4). An arm's own config has the name "C:A" and arm_of = strlen(C). */
    struct bd_channel_cfg *arms;
    size_t n_arms;
    size_t arm_of;       /* 0: not an arm */
    int line;            /* config line, for messages; 0 for defaults */
} bd_channel_cfg_t;

/* Everything a portfolio inherits from `defaults` and may override. */
typedef struct {
    double budget;               /* spend per cycle; with a budget range (v2), its max */
    struct {                     /* v2 `budget: {min: X, max: Y}` (range: set) */
        bool range;              /* false: `budget: NUMBER`, the total is budget */
        double min;              /* least total per cycle (max is `budget`) */
        int line;                /* config line of `budget` (0: built-in) */
    } budget_range;
    struct {                     /* v2 `goal` */
        bd_goal_kind_t kind;
        double target;           /* target_roas R (objective per unit spend), or target_cpa C */
        int line;                /* config line of `goal` (0: built-in) */
    } goal;
    bd_objective_t objective;
    bd_model_kind_t model;
    int samples;                 /* posterior draws per decision, 1..4096 */
    int max_channels;            /* channels the portfolio holds; a new unlisted one
                                  * beyond it is rejected (too_many_channels) */
    double discount;             /* per-cycle forgetting factor in (0,1], or
                                  * BD_DISCOUNT_AUTO (model.h): learned per channel */
    struct {                     /* seasonality: learned hour-of-day and weekday profiles */
        bd_auto_t daily, weekly;
    } season;
    struct {                     /* conversion reporting lag (late reports, restatements) */
        bd_auto_t model;         /* auto: learned from late reports; off: reports are final */
        int64_t horizon;         /* seconds after which an interval is final */
    } lag;
    struct {                     /* v2: delivery limits (delivery.h) */
        bd_auto_t caps;          /* auto: learn caps from under-delivery; off: never */
        double tolerance;        /* reported spend within (1 +- tolerance) x allocation is delivered */
    } delivery;
    bd_fault_action_t faults[BD_FAULT__COUNT]; /* v2: per fault kind ([0] unused) */
    double max_step;             /* ramp: fraction of current spend per cycle */
    double min_change;           /* hysteresis on total relative change */
    double explore_share;        /* in [0,1) */
    bd_mode_t mode;
    double escalate_above;       /* delegate: per-channel change fraction */
    double risk_roas_floor;
    double risk_max_prob;        /* alpha in (0,1]; 1 disables the bound */
    double risk_cvar_alpha;      /* v2 risk.cvar.alpha: share of worst draws, (0,1] */
    double risk_cvar_floor;      /* v2 risk.cvar.roas_floor: their mean ROAS at least this; 0: off */
    int risk_cvar_line;          /* config line of risk.cvar.roas_floor (0: built-in) */
    struct {
        double roas_below;       /* 0 disables */
        int window;              /* cycles */
        double overspend_ratio;  /* 0 disables */
        int64_t stale_after;     /* seconds, 0 disables */
        double max_reject_ratio; /* 1 disables */
        bd_kill_action_t action;
    } kill;
    struct {                     /* promotion gate of `lab` channels */
        double min_conversions;  /* posterior conversions seen */
        double max_rel_width;    /* 90% interval width / mean of ROAS */
        double cap_share;        /* cap of a lab channel before promotion, share of budget */
    } lab;
    bd_channel_cfg_t channel;    /* defaults.channel: unlisted channels */
} bd_policy_t;

typedef struct {
    char name[BD_NAME_MAX + 1];
    bd_policy_t p;
    bd_channel_cfg_t *channels;  /* listed channels, in config order */
    size_t n_channels;
    int line;
} bd_portfolio_cfg_t;

typedef struct {
    char *path;
    int64_t cycle;               /* seconds */
    int64_t lateness;            /* seconds */
    uint64_t seed;
    int64_t dedup_window;        /* seconds of event time an event_id is remembered */
    int64_t max_portfolios;      /* portfolios held, listed ones included; a new
                                  * unlisted one beyond it is rejected */
    int64_t max_ahead;           /* seconds an event or watermark may lie past the reference
                                  * time (newest accepted time; live: the wall clock) */
    int64_t dedup_max_ids;       /* most event ids one portfolio remembers (oldest dropped) */
    struct {
        char *brokers, *topic, *group, *dlq_topic;
        char *instance_id;       /* (v2) group.instance.id: "auto" (from host and config
                                  * name, bd_kafka_instance_id), "off", or the id itself */
        char **prop_keys, **prop_vals;
        size_t n_props;
    } kafka;
    struct {
        char *url, *prefix, *password_env;
        char *user;              /* ACL user for AUTH ("": none, or the URL's) */
        int stream_maxlen;
    } redis;
    struct {                     /* what /metrics exports (`run --metrics`) */
        bool per_portfolio;      /* series labelled by portfolio (a few gauges) */
        int max_portfolios;      /* ... for at most this many portfolios */
    } metrics;
    bool has_default_budget;     /* false => unlisted portfolios are rejected */
    bd_policy_t defaults;
    bd_portfolio_cfg_t *portfolios;  /* sorted by name */
    size_t n_portfolios;
} bd_config_t;

/* Loads and validates path. On success returns BD_OK and *out owns a new
 * config. Otherwise *out is NULL and the code says what failed, so callers
 * never look at the text: BD_ERR_IO when the file cannot be read (errbuf:
 * "path: reason"), BD_ERR_CONFIG when it is invalid (errbuf: one
 * "file:line: message" line per error found, in line order, as many whole
 * lines as fit) or larger than BD_CONFIG_MAX_BYTES ("path: larger than ..."). */
bd_err_t bd_config_load(const char *path, bd_config_t **out, char *errbuf, size_t errlen);

/* Same, from a string (BD_OK or BD_ERR_CONFIG); name is used in messages in
 * place of a file name. */
bd_err_t bd_config_load_string(const char *yaml, size_t len, const char *name,
                               bd_config_t **out, char *errbuf, size_t errlen);

/* A command-line override of one config value (`budgetd whatif --set`):
 * path is the dot-joined key path from the top (`defaults.max_step`,
 * `portfolios.acme-us.budget`; a name holding dots is matched against the
 * keys of the file), value the text of a plain YAML scalar. */
typedef struct {
    const char *path;
    const char *value;
} bd_config_set_t;

/* bd_config_load with n overrides applied to the file's document before it
 * is read (engine/config/set.c): missing maps are created, an existing
 * value is replaced, and the result is checked by the same rules as the
 * file. A message about an override starts with "--set PATH=VALUE: "
 * instead of "file:line: " (BD_ERR_CONFIG, like any other config error). */
bd_err_t bd_config_load_set(const char *path, const bd_config_set_t *sets, size_t n,
                            bd_config_t **out, char *errbuf, size_t errlen);
/* The same from a string. */
bd_err_t bd_config_load_string_set(const char *yaml, size_t len, const char *name,
                                   const bd_config_set_t *sets, size_t n, bd_config_t **out,
                                   char *errbuf, size_t errlen);

void bd_config_free(bd_config_t *cfg);

/* The listed portfolio called name, or NULL. */
const bd_portfolio_cfg_t *bd_config_portfolio(const bd_config_t *cfg, const char *name);

/* The config of channel name within pc: the listed one, an arm of a listed
 * one (v2, name "C:A"), or the policy default (whose name field is then "").
 * pc may be NULL for an unlisted portfolio, in which case pol gives the
 * defaults. */
const bd_channel_cfg_t *bd_config_channel(const bd_portfolio_cfg_t *pc, const bd_policy_t *pol,
                                          const char *name);

const char *bd_mode_name(bd_mode_t m);
const char *bd_objective_name(bd_objective_t o);
const char *bd_kill_action_name(bd_kill_action_t a);
/* "budget", "target_roas", "target_cpa". */
const char *bd_goal_name(bd_goal_kind_t g);
/* The marginal return (objective per unit spend) a goal asks of the last
 * unit: R for target_roas, 1/C for target_cpa; NAN for budget. */
double bd_goal_marginal_target(const bd_policy_t *pol);
/* "tracking", "silent", "no_conversions", "value_jump" (NULL: none). */
const char *bd_fault_name(bd_fault_kind_t k);

#endif
