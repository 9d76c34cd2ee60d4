/* alloc_int.h: the arithmetic on the cent lattice shared by the allocator
 * (alloc.c) and the initial split (alloc_cents.c); the boxes and the pin
 * rule are budgetd/bounds.h.
 * Private to engine/core; the rules are alloc.h's. Money is whole cents
 * held in doubles (exact below 2^53), INFINITY for "uncapped". */
#ifndef BUDGETD_ALLOC_INT_H
#define BUDGETD_ALLOC_INT_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include "budgetd/alloc.h"
#include "budgetd/bounds.h"

/* Whole cents in [lo, hi] summing to total, nearest to xr by largest
 * remainder (key, order: n scratch). */
void bd_alloc_round_cents(const double *xr, const double *lo, const double *hi, size_t n,
                          double total, double *out, double *key, size_t *order);
/* clip(base + mu, lo, hi) summing to total, in whole cents: the projection
 * of base onto box and total (xr, key, order: n scratch). */
void bd_alloc_level_fill(const double *base, const double *lo, const double *hi, size_t n,
                         double total, double *out, double *xr, double *key, size_t *order);

#endif
