/* pin.h: `budgetd pin` (pin.c), called by the operator commands of ops.c. */
#ifndef BUDGETD_CMD_PIN_H
#define BUDGETD_CMD_PIN_H

#include "budgetd/config.h"
#include "budgetd/redis.h"

/* pin P C AMOUNT (amount_arg the AMOUNT) or pin P C --clear (amount_arg
 * NULL) for portfolio p of cfg: C is a channel, or (v2) an arm named C:A or
 * C/A. Checks the pins that would then be in force against the config's
 * bounds (the portfolio's channels with its budget; the arms of the channel
 * concerned with every amount it may get), then sets or removes the field
 * of PFX:{P}:pin; an infeasible change is refused and changes nothing.
 * Returns the exit code (0; 1 refused or Redis failed, said on stderr; 2
 * a bad AMOUNT). */
int bd_pin_cmd(bd_redis_t *r, const bd_config_t *cfg, const char *p, const char *arg, const char *amount_arg,
               const char *prefix);

#endif
