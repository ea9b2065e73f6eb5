/*
 * The Landlock floor from inside a guarded process (floor.c): where its
 * own calls still reach. tools/floor.c lays the floor and writes the zone.
 */
#ifndef AGENTGUARD_FLOOR_H
#define AGENTGUARD_FLOOR_H

#include <stddef.h>

#include "agentguard.h"

/* This process is under a floor. */
int ag_floor_on(void);
/* path[0, n) (absolute) lies where the floor lets this process act. */
int ag_floor_covers(const char *path, size_t n);
/* The floor lets this process make op itself; 0: the supervisor must. */
int ag_floor_reaches(const struct ag_op *op);

#endif
