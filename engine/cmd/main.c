/* main.c: command dispatch (CONTRACT §4). */
#include <stdio.h>
#include <string.h>
#include "budgetd/broker.h"
#include "cmd.h"
#include "budgetd/common.h"

static void usage(FILE *f)
{
    fputs("usage: budgetd COMMAND [ARGS]\n"
          "  run -c CONFIG                  live daemon: Kafka in, Redis out\n"
          "  replay -c CONFIG LOG... [-o OUT] [--redis URL]\n"
          "                                 the engine over JSON Lines logs in event time\n"
          "                                 (LOG or OUT \"-\": stdin, stdout)\n"
          "  check -c CONFIG                validate a config (exit 2 on errors)\n"
          "  whatif -c A.yaml -c B.yaml LOG... [-o DIR]\n"
          "                                 rehearse a guardrail change: both configs side by side\n"
          "  broker [--topic T] [--partitions N]\n"
          "                                 embedded Kafka (librdkafka mock cluster)\n"
          "  kill P --reason TEXT | resume P | approve P [CYCLE] | status [P]\n"
          "                                 operator actions on Redis\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return BD_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "replay") == 0) return bd_cmd_replay(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0) return bd_cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0) return bd_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "whatif") == 0) return bd_cmd_whatif(argc - 1, argv + 1);
    if (strcmp(cmd, "broker") == 0) return bd_broker_main(argc - 1, argv + 1);
    if (strcmp(cmd, "kill") == 0 || strcmp(cmd, "resume") == 0 || strcmp(cmd, "approve") == 0 ||
        strcmp(cmd, "status") == 0)
        return bd_cmd_ops(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return BD_EXIT_OK;
    }
    fprintf(stderr, "budgetd: unknown command '%s'\n", cmd);
    usage(stderr);
    return BD_EXIT_USAGE;
}
