/* fuzz_config: the config loader (docs/CONTRACT.md §5) on arbitrary YAML:
 * any input must load or be refused with messages, within the size and
 * nesting limits, without a crash, leak or sanitizer report. */
#include <stdint.h>
#include <stdlib.h>
#include "budgetd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[4096];
    bd_config_t *c = NULL;
    if (bd_config_load_string((const char *)data, size, "fuzz.yaml", &c, err, sizeof err) == BD_OK) {
        /* a loaded config answers lookups of what it lists */
        for (size_t i = 0; i < c->n_portfolios; i++)
            if (bd_config_portfolio(c, c->portfolios[i].name) != &c->portfolios[i]) abort();
        bd_config_free(c);
    } else if (c != NULL || !err[0]) {
        abort(); /* a refusal always says why and returns nothing */
    }
    return 0;
}
