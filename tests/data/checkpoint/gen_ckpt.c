/* gen_ckpt.c: writes the checkpoint of portfolio p0 after the first N
 * lines of a log, with the engine it is linked against, under the config of
 * configs/minimal.yaml (defaults.budget: 200). gen.sh builds it against
 * the engine of an older commit to store that version's blob; it uses only
 * calls every engine since version 3 has. Prints what the blob holds.
 *   gen_ckpt LOG N OUT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"
#include "budgetd/engine.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: gen_ckpt LOG N OUT\n");
        return 2;
    }
    static const char y[] = "v: 1\ndefaults:\n  budget: 200\n";
    char err[1024];
    bd_config_t *cfg;
    if (bd_config_load_string(y, sizeof y - 1, "minimal.yaml", &cfg, err, sizeof err) != BD_OK) return 1;
    bd_engine_opts_t o = {.threads = 1};
    bd_engine_t *e = bd_engine_new(cfg, &o);
    FILE *f = fopen(argv[1], "r");
    if (!f) return 1;
    char line[4096], detail[256];
    long n = atol(argv[2]);
    for (long i = 0; i < n && fgets(line, sizeof line, f); i++) {
        bd_err_t rc = BD_OK;
        bd_engine_ingest(e, line, strcspn(line, "\n"), detail, sizeof detail, &rc);
        if (rc != BD_OK) return 1;
    }
    fclose(f);
    if (bd_engine_flush(e) != BD_OK) return 1;
    bd_portfolio_t *p = bd_engine_portfolio(e, "p0");
    unsigned char *buf = NULL;
    size_t cap = 0, len = bd_checkpoint_encode(p, &buf, &cap);
    FILE *out = fopen(argv[3], "wb");
    if (!out || fwrite(buf, 1, len, out) != len || fclose(out) != 0) return 1;
    printf("%s: %zu bytes, open %lld, alloc_cycle %lld, version %llu, status %d, hist_n %llu, channels %zu\n",
           argv[3], len, (long long)p->open, (long long)p->alloc_cycle, (unsigned long long)p->version,
           (int)p->status, (unsigned long long)p->hist_n, p->n);
    for (size_t i = 0; i < p->n; i++) printf("  %s x %.17g\n", p->ch[i].name, p->ch[i].x);
    free(buf);
    bd_engine_free(e);
    bd_config_free(cfg);
    return 0;
}
