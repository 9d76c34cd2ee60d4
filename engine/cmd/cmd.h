/* cli.h: the commands of CONTRACT §4. Each returns a process exit code. */
#ifndef BUDGETD_CLI_H
#define BUDGETD_CLI_H

int bd_cmd_replay(int argc, char **argv);
int bd_cmd_check(int argc, char **argv);
int bd_cmd_run(int argc, char **argv);
int bd_cmd_broker(int argc, char **argv);
int bd_cmd_ops(int argc, char **argv);     /* kill, resume, approve, status */
int bd_cmd_whatif(int argc, char **argv);


#endif
