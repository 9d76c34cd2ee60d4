/* check.c: `budgetd check -c CONFIG`: validation only, same loader as run. */
#include <getopt.h>
#include <stdio.h>
#include "cmd.h"
#include "budgetd/config.h"

int bd_cmd_check(int argc, char **argv)
{
    const char *path = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt(argc, argv, "c:h")) != -1) {
        if (ch == 'c') path = optarg;
        else {
            fputs("usage: budgetd check -c CONFIG\n", ch == 'h' ? stdout : stderr);
            return ch == 'h' ? BD_EXIT_OK : BD_EXIT_USAGE;
        }
    }
    if (!path || optind != argc) {
        fputs("usage: budgetd check -c CONFIG\n", stderr);
        return BD_EXIT_USAGE;
    }
    char err[16384];
    bd_config_t *cfg;
    if (bd_config_load(path, &cfg, err, sizeof(err)) != BD_OK) {
        fprintf(stderr, "%s\n", err);
        return BD_EXIT_USAGE;
    }
    printf("%s: ok (%zu portfolios, cycle %llds)\n", path, cfg->n_portfolios,
           (long long)cfg->cycle);
    bd_config_free(cfg);
    return BD_EXIT_OK;
}
