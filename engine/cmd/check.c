/* check.c: `budgetd check -c CONFIG [-c CONFIG...]`: validation only, same
 * loader as run. Every -c is checked, so one call covers a set of files. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include "cmd.h"
#include "opts.h"
#include "budgetd/config.h"

/* The usage line, to stdout for --help, stderr for bad use. */
static void check_usage(FILE *f)
{
    fputs("usage: budgetd check -c CONFIG [-c CONFIG...]\n", f);
}

/* Loads one file: prints "PATH: ok (...)" or its file:line errors. */
static bool check_one(const char *path)
{
    char err[16384];
    bd_config_t *cfg;
    if (bd_config_load(path, &cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    printf("%s: ok (%zu portfolios, cycle %llds)\n", path, cfg->n_portfolios, (long long)cfg->cycle);
    bd_config_free(cfg);
    return true;
}

/* The command: every -c in turn; exit 2 when any of them fails. */
int bd_cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bd_opts_t o;
    bd_opts_init(&o, "check", argc, argv, "c:h", longopts);
    const char **paths = bd_xcalloc((size_t)(argc > 0 ? argc : 1), sizeof *paths);
    int n = 0, ch, rc = BD_EXIT_OK;
    while ((ch = bd_opts_next(&o)) != -1) {
        switch (ch) {
        case 'c': paths[n++] = o.arg; break;
        case 'h': check_usage(stdout); rc = BD_EXIT_OK; goto out;
        default: check_usage(stderr); rc = BD_EXIT_USAGE; goto out;
        }
    }
    if (n == 0 || o.npos != 0) {
        check_usage(stderr);
        rc = BD_EXIT_USAGE;
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (!check_one(paths[i])) rc = BD_EXIT_USAGE;
out:
    free(paths);
    bd_opts_free(&o);
    return rc;
}
