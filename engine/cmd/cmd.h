/* cmd.h: the commands of docs/CONTRACT.md §4. Each takes its own argv
 * (argv[0] is the command name) and returns a process exit code. */
#ifndef BUDGETD_CMD_H
#define BUDGETD_CMD_H

/* --threads accepts 1..BD_CMD_MAX_THREADS. */
#define BD_CMD_MAX_THREADS 256

int bd_cmd_replay(int argc, char **argv);
int bd_cmd_check(int argc, char **argv);
int bd_cmd_run(int argc, char **argv);
int bd_cmd_ops(int argc, char **argv);     /* kill, resume, approve, status, pin */
int bd_cmd_whatif(int argc, char **argv);
int bd_cmd_prior(int argc, char **argv);    /* v2: prior import */

#endif
