/* yaml.h: reading a YAML file checked against a schema, for the config
 * loader and the simulator's scenario files.
 *
 * The caller parses the whole file into a libyaml document (every node keeps
 * its source mark) and walks it with these helpers. Errors never stop the
 * walk: each is recorded as "file:line: message" in a bd_yaml_ctx_t and
 * bd_yaml_flush writes them all in line order at the end, so that one run
 * shows every problem at once. Each typed reader reports at the line of the
 * node it reads, so a message points at the text an operator has to change. */
#ifndef BUDGETD_YAML_H
#define BUDGETD_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

/* One recorded error. */
typedef struct {
    int line;
    size_t seq;             /* order found: ties on a line keep it */
    char *msg;              /* "file:line: message" */
} bd_yaml_error_t;

/* Nodes that a command-line override wrote into the document (config.h
 * bd_config_set_t) sit at line BD_YAML_SET_LINE + k for override k: their
 * messages start with the override's label (set_labels[k]) instead of
 * "file:line". */
#define BD_YAML_SET_LINE 1000000000

/* One file being read: the document and the errors found so far. Start
 * zeroed, then set name and, once parsed, doc. */
typedef struct {
    const char *name;       /* file name used in messages */
    yaml_document_t *doc;
    const char *const *set_labels; /* n_sets labels of the overrides ("--set a.b=1") */
    size_t n_sets;
    bd_yaml_error_t *errs;
    size_t n_errors, cap_errs;
    size_t *tagged;         /* start index of each explicitly tagged scalar, ascending
                             * (bd_yaml_scan; the document model hides tags) */
    size_t n_tagged, cap_tagged;
} bd_yaml_ctx_t;

/* Deepest nesting of collections (mappings and lists) a file may have. A
 * config needs 5 (portfolios, a portfolio, channels, a channel, a map in
 * it); libyaml's scanner pays O(depth) per token, so 40k nested `[` took
 * 5 s and 200k over a minute before this cap. */
#define BD_YAML_MAX_DEPTH 32

/* A mapping entry whose key is a scalar seen for the first time. */
typedef struct {
    yaml_node_t *key, *val;
    const char *k;
} bd_yaml_pair_t;

/* Value ranges checked by bd_yaml_num: the bound is part of the message. */
typedef enum {
    BD_YAML_R_ANY = 0,
    BD_YAML_R_GE0,     /* >= 0 */
    BD_YAML_R_GT0,     /* > 0 */
    BD_YAML_R_GE1,     /* >= 1 */
    BD_YAML_R_OC01,    /* (0, 1] */
    BD_YAML_R_CO01,    /* [0, 1) */
    BD_YAML_R_CC01,    /* [0, 1] */
} bd_yaml_range_t;

/* Line (1-based) of a node, 0 for NULL. */
int bd_yaml_line(const yaml_node_t *n);

/* Records the error "name:line: message" ("LABEL: message" at an
 * override's line, see BD_YAML_SET_LINE). */
void bd_yaml_err(bd_yaml_ctx_t *cx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads the event stream of the len bytes at text once, before the
 * document is built from it: refuses nesting deeper than BD_YAML_MAX_DEPTH
 * (reported at the line where it happens; the scan stops there, after
 * O(depth) work per token) and remembers which scalars carry an explicit
 * tag (`!!str 1000`, `! 5`), which the typed readers then refuse as numbers,
 * integers and booleans. Returns false after recording an error (a syntax
 * error too, as libyaml words it); the caller then skips the document. */
bool bd_yaml_scan(bd_yaml_ctx_t *cx, const char *text, size_t len);

/* Records libyaml's error of parser p at its problem mark ("YAML syntax
 * error: ..."). */
void bd_yaml_syntax_error(bd_yaml_ctx_t *cx, const yaml_parser_t *p);

/* Writes the recorded errors, sorted by line, one per line into buf (as many
 * whole lines as fit; buf may be NULL) and releases them, and the tag list
 * of bd_yaml_scan. */
void bd_yaml_flush(bd_yaml_ctx_t *cx, char *buf, size_t cap);

/* The scalar text of n, or NULL when n is not a scalar. */
const char *bd_yaml_str(const yaml_node_t *n);

/* True for an empty/"~"/"null" plain scalar (YAML's null). */
bool bd_yaml_is_null(const yaml_node_t *n);

/* The pairs of mapping n with scalar, unique keys. A null value counts as an
 * empty mapping. Non-scalar and duplicate keys are reported and left out.
 * Returns NULL (reported) when n is not a mapping; otherwise a malloc'd
 * array the caller frees, *n_out entries. */
bd_yaml_pair_t *bd_yaml_pairs(bd_yaml_ctx_t *cx, yaml_node_t *n, const char *path, size_t *n_out);

/* Reports key k of path as unknown, suggesting the closest of known
 * (NULL-terminated) when it is within edit distance 2. */
void bd_yaml_unknown(bd_yaml_ctx_t *cx, const yaml_node_t *key, const char *k, const char *path,
                     const char *const *known);

/* The closest entry of known to s (edit distance <= 2), or NULL. */
const char *bd_yaml_suggest(const char *s, const char *const *known);

/* Typed readers: each parses n, checks it and stores into *out, or reports
 * "what: ..." at n's line and leaves *out alone. They return success.
 * Numbers are strict decimal: [+-]?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * (integers without fraction and exponent): no hex (`0x10`), no leading
 * zeros (YAML 1.1 reads `010` as octal), no inf or nan, and never a quoted
 * or tagged scalar (`"5"`, `!!str 1000` are strings). */
bool bd_yaml_num(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, bd_yaml_range_t r,
                 double *out);
bool bd_yaml_int(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, int64_t lo, int64_t hi,
                 int64_t *out);
bool bd_yaml_u64(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, uint64_t *out);
bool bd_yaml_bool(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, bool *out);
/* A duration as bd_yaml_parse_duration reads it; positive refuses 0. */
bool bd_yaml_dur(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, bool positive,
                 int64_t *out);
/* A string scalar; empty strings are refused unless allow_empty. *out is a
 * new copy (the old value is freed). */
bool bd_yaml_string(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what, bool allow_empty,
                    char **out);
/* One of names (NULL-terminated); *out is its index. */
bool bd_yaml_enum(bd_yaml_ctx_t *cx, const yaml_node_t *n, const char *what,
                  const char *const *names, int *out);

/* dst = a + "." + b, truncated to cap (paths only appear in messages). */
void bd_yaml_join(char *dst, size_t cap, const char *a, const char *b);

/* Parses "90", "90s", "15m", "1h", "2d" (a fraction too when the result is
 * whole seconds: "1.5h") into seconds; -1 when invalid. */
int64_t bd_yaml_parse_duration(const char *s);

#endif
