/*
 * The syscall gate (gate.c): one page, at an address fixed for the
 * session, through which the library makes the real calls it has already
 * judged, so that the kernel layer's filter lets them pass unreported.
 * The supervisor side (tools/kernel.c) builds the filter around the same
 * address.
 */
#ifndef AGENTGUARD_GATE_H
#define AGENTGUARD_GATE_H

#include <stdint.h>

#define AG_GATE_SIZE 4096u

/* The gate, once mapped: (nr, six arguments) -> the kernel's result
 * (a negative errno on failure). NULL without one. */
extern long (*ag_gate)(long nr, long a, long b, long c, long d, long e, long f);

/* "0x7e..." (page-aligned, below 2^47) -> the address; 0 if malformed. */
uintptr_t ag_gate_parse(const char *s);
/* Map the gate there if it is not yet (idempotent; does nothing if there
 * is no address, or it is taken). */
void ag_gate_ensure(void);
/* The gated replacement of real function `name` (lib: libc's), or NULL. */
void *ag_gate_real(const char *name, void *lib);

#endif
