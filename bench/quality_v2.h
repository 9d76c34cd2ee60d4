/* quality_v2.h: the parts of bench_quality for the v2 goals and priors
 * (docs/CONTRACT.md §8), kept apart from bench_quality.c's simulator and
 * bandit parts. Output: tables, `name: value unit` lines and
 * `target.*: PASS|FAIL (...)` lines, like the other parts. */
#ifndef BUDGETD_QUALITY_V2_H
#define BUDGETD_QUALITY_V2_H

#include <stdbool.h>
#include <stdio.h>

/* Plays every scenario of dir (bench/scenarios/goals) runs times (0: the
 * scenario's `runs`): a target goal's marginal against the target over
 * time, its total against the oracle's, infeasible targets reported.
 * Returns false when a scenario could not be played. */
bool qv2_goals(FILE *f, const char *dir, int runs);

#endif
