/*
 * The kernel layer (kernel.c): a seccomp filter on the agent and every
 * descendant that reports the destructive system calls made anywhere but
 * through the library's gate (lib/gate.c), and the supervisor in
 * `agentguard run` that completes them on the caller's behalf through the
 * library's own entry points (lib/kernel_abi.h).
 */
#ifndef AGENTGUARD_KERNEL_H
#define AGENTGUARD_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A gate address for a new session: random, page-aligned, far from where
 * programs and libraries are mapped. */
uintptr_t ag_kernel_gate_pick(void);

/* The filter program for a session whose gate is at `gate` (0: none), for
 * tests: its length, or -1 if it does not fit in cap instructions. With
 * `floor` (a Landlock floor is laid, tools/floor.c) every writable open
 * that may create a file is reported too: where the floor refuses it, the
 * supervisor makes it. Calls that aim a signal, a trace or a read of memory
 * at pid `sup` (the supervisor; 0: none) are reported too. */
struct sock_filter;
int ag_kernel_filter(struct sock_filter *out, size_t cap, uintptr_t gate, int floor, pid_t sup);

/* In the agent's process, before it execs: no-new-privs, the filter, the
 * Landlock floor (ruleset `floor`, from ag_floor_prepare; -1: none), and
 * the listener handed to the supervisor over sock with floor_state (what
 * ag_floor_prepare said). Returns 0, or -1 with why in err (the filter is
 * not on; the supervisor hears the same). */
int ag_kernel_install(int sock, uintptr_t gate, int floor, const char *floor_state, char *err,
		      size_t errlen);

/* In the supervisor: the listener of child (>= 0, taken with
 * pidfd_getfd), or -1 with the child's reason in err. *floor: 0 if the
 * floor was laid, else the errno that stopped it (-1: none was asked);
 * floor_state: what the child said of it, if anything. */
int ag_kernel_receive(int sock, int child, int *floor, char *floor_state, size_t fslen,
		      char *err, size_t errlen);

struct ag_kernel;

/* Start serving the listener with the library at lib_path (threads of
 * this process); with own_log (the floor is laid) also copy the session's
 * spools out of its reach. NULL with err when the library lacks the kernel
 * entries or the spools cannot be watched. */
struct ag_kernel *ag_kernel_start(int listener, const char *lib_path, uintptr_t gate, int own_log,
				  char *err, size_t errlen);
/* Stop serving (processes still filtered then get ENOSYS for the watched
 * calls: fail closed) and free. */
void ag_kernel_stop(struct ag_kernel *k);
/* Calls handled so far. */
uint64_t ag_kernel_calls(const struct ag_kernel *k);

#endif
