/* main.c: command dispatch (docs/CONTRACT.md §4): the first argument names
 * the command, which parses the rest itself (opts.h). */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include "budgetd/broker.h"
#include "cmd.h"
#include "budgetd/common.h"

/* The list of commands (stdout for help, stderr for bad use). */
static void usage(FILE *f)
{
    fputs("usage: budgetd COMMAND [ARGS]\n"
          "  run -c CONFIG                  live daemon: Kafka in, Redis out\n"
          "  replay -c CONFIG LOG... [-o OUT] [--redis URL]\n"
          "                                 the engine over JSON Lines logs in event time\n"
          "                                 (LOG or OUT \"-\": stdin, stdout)\n"
          "  check -c CONFIG [-c CONFIG...]\n"
          "                                 validate configs (exit 2 on errors)\n"
          "  whatif -c A.yaml [-c B.yaml...] [--set PATH=V1,V2...] LOG... [-o DIR] [--draws N]\n"
          "                                 rehearse a guardrail change: each config closed loop\n"
          "                                 against environments fitted from the log\n"
          "  broker [--topic T] [--partitions N]\n"
          "                                 embedded Kafka (librdkafka mock cluster)\n"
          "  kill P --reason TEXT | resume P [--channel C] | approve P [CYCLE] | status [P] [--json]\n"
          "  pin P C AMOUNT | pin P C --clear\n"
          "                                 operator actions on Redis\n"
          "  explain P [CYCLE] -c CONFIG    why a decision is what it is, in words\n"
          "  state P (-c CONFIG | --redis URL) [--json]\n"
          "                                 portfolio P's checkpoint in readable form\n"
          "  adapter -c CONFIG --exec CMD   the reference execution adapter: runs\n"
          "                                 CMD PORTFOLIO CHANNEL AMOUNT CYCLE per change\n"
          "  prior import [--robyn-hyper F --robyn-agg F] [--curves F] [--lift F]\n"
          "                                 channel priors from an MMM and lift tests (config fragment)\n",
          f);
}

/* Every command: its name and the function that runs it on argv + 1. */
static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} commands[] = {
    {"replay", bd_cmd_replay}, {"check", bd_cmd_check},   {"run", bd_cmd_run},
    {"whatif", bd_cmd_whatif}, {"broker", bd_broker_main}, {"kill", bd_cmd_ops},
    {"resume", bd_cmd_ops},    {"approve", bd_cmd_ops},   {"status", bd_cmd_ops},
    {"pin", bd_cmd_ops},       {"prior", bd_cmd_prior},
    {"adapter", bd_cmd_adapter}, {"explain", bd_cmd_explain}, {"state", bd_cmd_state},
};

/* glibc returns the free top of its heap to the kernel once it exceeds
 * 128 KB: a replay that grows its record buffer while every decision
 * mallocs and frees a few KB paid page faults on the same pages again and
 * again (perf: 6-9% of `budgetd replay`'s CPU in the kernel's fault path).
 * Up to 64 MiB of free heap is kept instead, and blocks up to 32 MiB come
 * from the heap (measured on the bench_replay workload: 8% less CPU, 19 MB
 * more peak RSS). */
static void main_malloc_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

/* Runs the command argv[1] names on the rest of argv. */
int main(int argc, char **argv)
{
    main_malloc_tune();
    if (argc < 2) {
        usage(stderr);
        return BD_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return BD_EXIT_OK;
    }
    fprintf(stderr, "budgetd: unknown command '%s'\n", cmd);
    usage(stderr);
    return BD_EXIT_USAGE;
}
