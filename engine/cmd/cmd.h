/* cmd.h: the commands of docs/CONTRACT.md §4. Each takes its own argv
 * (argv[0] is the command name) and returns a process exit code. */
#ifndef BUDGETD_CMD_H
#define BUDGETD_CMD_H

#include <signal.h>
#include <stddef.h>
#include "budgetd/config.h"
#include "budgetd/redis.h"

/* --threads accepts 1..BD_CMD_MAX_THREADS. */
#define BD_CMD_MAX_THREADS 256

int bd_cmd_replay(int argc, char **argv);
int bd_cmd_check(int argc, char **argv);
int bd_cmd_run(int argc, char **argv);
int bd_cmd_ops(int argc, char **argv);     /* kill, resume, approve, status, pin */
int bd_cmd_whatif(int argc, char **argv);
int bd_cmd_adapter(int argc, char **argv);  /* the reference execution adapter */
int bd_cmd_explain(int argc, char **argv);  /* a decision in words */
int bd_cmd_state(int argc, char **argv);    /* v2: a checkpoint in readable form */

/* Checks (and, when absent, writes) the cycle-length marker PFX:meta of
 * cfg's Redis (marker.c), waiting out a Redis outage until *stop (may be
 * NULL). BD_EXIT_OK when it holds cfg->cycle; otherwise the exit code, and
 * msg says what Redis holds, what the config says and what to do
 * (BD_EXIT_USAGE: another cycle length; BD_EXIT_RUNTIME: unreadable). */
int bd_cmd_check_cycle_marker(bd_redis_t *r, const bd_config_t *cfg, char *msg, size_t msglen,
                              volatile sig_atomic_t *stop);
int bd_cmd_prior(int argc, char **argv);    /* v2: prior import */

#endif
