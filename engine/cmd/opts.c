/* opts.c: the command-line parser of every command (see opts.h). getopt_long
 * runs in "return in order" mode ("-" in front of the short options), so
 * positional arguments come back one by one where they stand, whatever
 * POSIXLY_CORRECT says and without reordering argv; ':' after it makes a
 * missing value distinguishable from an unknown option. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/common.h"
#include "opts.h"

/* See opts.h: resets getopt for a parse of argv from its start. */
void bd_opts_init(bd_opts_t *o, const char *cmd, int argc, char **argv, const char *shortopts,
                  const struct option *longopts)
{
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    o->argc = argc;
    o->argv = argv;
    o->longopts = longopts;
    snprintf(o->optstring, sizeof o->optstring, "-:%s", shortopts);
    o->pos = bd_xcalloc((size_t)(argc > 0 ? argc : 1), sizeof *o->pos);
    /* 0, not 1: glibc then also forgets a half-read cluster of short
     * options from an earlier parse in this process (tests run commands
     * in-process, one after another). */
    optind = 0;
    opterr = 0;
}

/* The option argv[at] names, for messages: a long one up to '=', else the
 * short letter getopt reported. */
static void opts_bad_name(bd_opts_t *o, int at)
{
    const char *a = at < o->argc ? o->argv[at] : "";
    if (strncmp(a, "--", 2) == 0)
        snprintf(o->name, sizeof o->name, "%.*s", (int)strcspn(a, "="), a);
    else
        snprintf(o->name, sizeof o->name, "-%c", optopt ? optopt : '?');
}

/* See opts.h. Positional arguments are collected here, never returned. */
int bd_opts_next(bd_opts_t *o)
{
    for (;;) {
        int at = optind ? optind : 1; /* the argument getopt is about to read */
        int li = -1;
        int c = getopt_long(o->argc, o->argv, o->optstring, o->longopts, &li);
        if (c == -1) {
            for (int i = optind; i < o->argc; i++) o->pos[o->npos++] = o->argv[i]; /* after "--" */
            return -1;
        }
        if (c == 1) { /* a positional argument, in order */
            o->pos[o->npos++] = optarg;
            continue;
        }
        if (c == ':' || c == '?') {
            opts_bad_name(o, at);
            if (c == ':')
                fprintf(stderr, "budgetd %s: option '%s' needs a value\n", o->cmd, o->name);
            else if (strncmp(o->name, "--", 2) == 0 && optopt)
                fprintf(stderr, "budgetd %s: option '%s' takes no value\n", o->cmd, o->name);
            else
                fprintf(stderr, "budgetd %s: unknown option '%s'\n", o->cmd, o->name);
            return BD_OPTS_BAD;
        }
        o->arg = optarg;
        if (li >= 0)
            snprintf(o->name, sizeof o->name, "--%s", o->longopts[li].name);
        else
            snprintf(o->name, sizeof o->name, "-%c", c);
        return c;
    }
}

/* See opts.h: strtoll, whole string, range checked. */
bool bd_opts_parse_ll(const char *text, long long min, long long max, long long *out)
{
    if (!text || !*text || isspace((unsigned char)*text)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

/* See opts.h: bd_opts_parse_ll on the current value, the refusal printed. */
bool bd_opts_int(const bd_opts_t *o, int min, int max, int *out)
{
    long long v;
    if (!bd_opts_parse_ll(o->arg, min, max, &v)) {
        fprintf(stderr, "budgetd %s: %s: '%s' is not an integer in %d..%d\n", o->cmd, o->name,
                o->arg ? o->arg : "", min, max);
        return false;
    }
    *out = (int)v;
    return true;
}

/* See opts.h: one line "budgetd CMD: message" on stderr. */
int bd_opts_fail(const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "budgetd %s: %s\n", cmd, msg);
    return BD_EXIT_USAGE;
}

/* Frees the positional list (the strings are argv's). */
void bd_opts_free(bd_opts_t *o)
{
    free(o->pos);
    o->pos = NULL;
    o->npos = 0;
}

bool bd_opts_finish_output(const char *cmd, FILE *f)
{
    bool ok = fflush(f) == 0 && !ferror(f); /* errno: the failed write's, kept since */
    int werr = errno ? errno : EIO;
    if (f != stdout && fclose(f) != 0 && ok) {
        ok = false;
        werr = errno ? errno : EIO;
    }
    if (!ok) fprintf(stderr, "budgetd %s: write: %s\n", cmd, strerror(werr));
    return ok;
}
