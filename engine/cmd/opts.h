/* opts.h: the one command-line parser of every budgetd command (see
 * docs/CONTRACT.md §4 for the commands). A thin layer over getopt_long that
 * keeps positional arguments in order wherever they stand, names the
 * option a bad value belongs to, and reads every number with a range check.
 *
 * Errors it prints are the command's own output ("budgetd CMD: ..." on
 * stderr), not logs: they answer the user's command line. */
#ifndef BUDGETD_CMD_OPTS_H
#define BUDGETD_CMD_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

/* Returned by bd_opts_next for an unknown option or a missing value (the
 * reason is already printed). */
#define BD_OPTS_BAD '?'

typedef struct {
    const char *cmd;               /* "replay": messages say "budgetd replay: ..." */
    int argc;
    char **argv;
    char optstring[64];            /* "-:" + the command's short options */
    const struct option *longopts;
    const char *arg;               /* value of the option just returned */
    char name[64];                 /* that option as written: "--threads" or "-t" */
    const char **pos;              /* positional arguments, in command-line order */
    int npos;
} bd_opts_t;

/* Starts parsing argv[1..argc) (argv[0] is the command name). shortopts
 * and longopts are getopt_long's; "--" ends the options. Free with
 * bd_opts_free. */
void bd_opts_init(bd_opts_t *o, const char *cmd, int argc, char **argv, const char *shortopts,
                  const struct option *longopts);

/* The next option: its short letter or its struct option val, with its
 * value in o->arg and its name in o->name; -1 when no option is left (then
 * o->pos holds every positional argument); BD_OPTS_BAD after printing why
 * ("unknown option '--x'", "option '--x' needs a value"). */
int bd_opts_next(bd_opts_t *o);

/* Reads o->arg as an integer in [min, max] into *out. On a bad value prints
 * "budgetd CMD: NAME: 'VALUE' is not an integer in MIN..MAX" and returns
 * false. */
bool bd_opts_int(const bd_opts_t *o, int min, int max, int *out);

/* Reads text as a decimal integer in [min, max]: an optional sign and
 * digits only (no leading space, no trailing junk, no overflow). Prints
 * nothing. */
bool bd_opts_parse_ll(const char *text, long long min, long long max, long long *out);

/* Prints "budgetd CMD: message" on stderr and returns BD_EXIT_USAGE: the
 * refusal of a command line. */
int bd_opts_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void bd_opts_free(bd_opts_t *o);

/* Flushes f and closes it unless it is stdout; false (and "budgetd CMD:
 * write: ..." on stderr) when any write to it failed. The stream's error
 * flag is checked too: glibc drops a buffer whose write failed (ENOSPC),
 * and the last fflush and fclose then succeed with output missing. */
bool bd_opts_finish_output(const char *cmd, FILE *f);

#endif
