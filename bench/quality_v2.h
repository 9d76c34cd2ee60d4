/* quality_v2.h: the parts of bench_quality for the v2 goals and priors
 * (docs/CONTRACT.md §11), kept apart from bench_quality.c's simulator and
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

/* Plays dir's prior_flat, prior_correct and prior_wrong scenarios (the
 * same truth; only the configured priors differ): the regret of the first
 * 24 cycles with a correct prior against the flat one (target: at most
 * half), and after how many cycles a wrong prior is outgrown (every later
 * 24-cycle window of its regret within a point of the flat prior's). */
bool qv2_priors(FILE *f, const char *dir, int runs);

#endif
