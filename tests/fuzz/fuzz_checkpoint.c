/* fuzz_checkpoint: the checkpoint decoder on arbitrary blobs (a blob comes
 * from Redis and is not trusted). A blob is refused or restores a
 * portfolio; a restored portfolio must encode, and that encoding must
 * decode into a fresh portfolio and encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "budgetd/checkpoint.h"
#include "budgetd/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bd_config_t *g_cfg;

/* The config of the seed blobs: tests/data/golden/clean.jsonl.gz replayed
 * under configs/minimal.yaml (portfolios p0.., channels ch0..). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char y[] = "v: 1\ndefaults:\n  budget: 200\n";
    char err[1024];
    if (bd_config_load_string(y, sizeof y - 1, "fuzz.yaml", &g_cfg, err, sizeof err) != BD_OK) abort();
    return 0;
}

/* A fresh unlisted portfolio p0 with two open-cycle slots (lateness 0). */
static bd_portfolio_t *fresh(bd_ptable_t *t)
{
    return bd_ptable_add(t, "p0", NULL, &g_cfg->defaults, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    bd_ptable_t *t = bd_ptable_new();
    bd_portfolio_t *p = fresh(t);
    if (bd_checkpoint_decode(p, data, size, err, sizeof err) == BD_OK) {
        unsigned char *a = NULL, *b = NULL;
        size_t ca = 0, cb = 0;
        size_t la = bd_checkpoint_encode(p, &a, &ca);
        bd_ptable_t *t2 = bd_ptable_new();
        bd_portfolio_t *q = fresh(t2);
        if (bd_checkpoint_decode(q, a, la, err, sizeof err) != BD_OK) abort();
        size_t lb = bd_checkpoint_encode(q, &b, &cb);
        if (la != lb || memcmp(a, b, la) != 0) abort();
        free(a);
        free(b);
        bd_ptable_free(t2);
    }
    bd_ptable_free(t);
    return 0;
}
