/* testmodel.h: a test-only response model for allocator tests. Its
 * "posterior" is a fixed curve whose a is scaled by Gamma(shape, 1/shape)
 * noise per draw (mean unchanged; shape 0 = no noise). */
#ifndef BUDGETD_TEST_TESTMODEL_H
#define BUDGETD_TEST_TESTMODEL_H

#include "budgetd/model.h"

typedef struct {
    bd_curve_t c;
    double shape, evidence;
} tm_state_t;

extern const bd_model_ops_t tm_ops;

/* Reads the test state out of a model state. */
tm_state_t tm_get(const bd_model_state_t *st);

#endif
