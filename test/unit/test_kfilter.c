/* The kernel layer's seccomp filter, run in a small classic-BPF
 * interpreter: which calls go to the supervisor, which pass, and that the
 * gate lets through exactly the calls made from its page. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "gate.h"
#include "../../tools/kernel.h"

#define GATE ((uintptr_t)0x12340000a000ull)

/* The subset the filter uses: word loads, AND, K-compares, returns. */
static uint32_t run(const struct sock_filter *f, int n, const struct seccomp_data *d)
{
	uint32_t a = 0;

	for (int pc = 0; pc < n; pc++) {
		const struct sock_filter *i = &f[pc];
		switch (i->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			cr_assert(i->k + 4 <= sizeof *d, "load past seccomp_data at %d", pc);
			memcpy(&a, (const char *)d + i->k, 4);
			break;
		case BPF_ALU | BPF_AND | BPF_K:
			a &= i->k;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += a == i->k ? i->jt : i->jf;
			break;
		case BPF_JMP | BPF_JGE | BPF_K:
			pc += a >= i->k ? i->jt : i->jf;
			break;
		case BPF_JMP | BPF_JSET | BPF_K:
			pc += (a & i->k) ? i->jt : i->jf;
			break;
		case BPF_RET | BPF_K:
			return i->k;
		default:
			cr_assert_fail("unexpected instruction %#x at %d", i->code, pc);
		}
	}
	cr_assert_fail("fell off the end");
	return 0;
}

#define SUPERVISOR 4242
static int floor_on;   /* the filter of a session with a Landlock floor */

static uint32_t verdict(uintptr_t gate, uint32_t arch, int nr, uint64_t ip, const uint64_t *args)
{
	struct sock_filter f[256];
	int n = ag_kernel_filter(f, 256, gate, floor_on, SUPERVISOR);
	struct seccomp_data d = {.nr = nr, .arch = arch, .instruction_pointer = ip};

	cr_assert(n > 0);
	if (args)
		memcpy(d.args, args, sizeof d.args);
	return run(f, n, &d);
}

#define X64 AUDIT_ARCH_X86_64
#define NOTIFY SECCOMP_RET_USER_NOTIF
#define ALLOW SECCOMP_RET_ALLOW
#define ELSEWHERE 0x7f0012345678ull

Test(kfilter, destructive_calls_go_to_the_supervisor_unless_from_the_gate)
{
	const int nr[] = {SYS_unlink, SYS_unlinkat, SYS_rmdir, SYS_rename, SYS_renameat,
			  SYS_renameat2, SYS_truncate, SYS_ftruncate, SYS_creat, SYS_execve,
			  SYS_execveat, SYS_connect, SYS_openat2, SYS_io_uring_setup, SYS_sendmsg,
			  SYS_sendmmsg, SYS_link, SYS_linkat, SYS_symlink, SYS_symlinkat, SYS_mknod,
			  SYS_mknodat, SYS_chmod, SYS_fchmod, SYS_fchmodat, 452 /* fchmodat2 */,
			  SYS_chown, SYS_fchown, SYS_lchown, SYS_fchownat};
	for (size_t i = 0; i < sizeof nr / sizeof nr[0]; i++) {
		cr_expect_eq(verdict(GATE, X64, nr[i], ELSEWHERE, NULL), NOTIFY, "nr %d", nr[i]);
		/* After the syscall instruction, anywhere in the page. */
		cr_expect_eq(verdict(GATE, X64, nr[i], GATE + 0x17, NULL), ALLOW, "nr %d", nr[i]);
		cr_expect_eq(verdict(GATE, X64, nr[i], GATE + AG_GATE_SIZE - 1, NULL), ALLOW);
		/* Just outside it, on either side, and without a gate at all. */
		cr_expect_eq(verdict(GATE, X64, nr[i], GATE - 1, NULL), NOTIFY, "nr %d", nr[i]);
		cr_expect_eq(verdict(GATE, X64, nr[i], GATE + AG_GATE_SIZE, NULL), NOTIFY);
		cr_expect_eq(verdict(GATE, X64, nr[i], GATE + (1ull << 32), NULL), NOTIFY);
		cr_expect_eq(verdict(0, X64, nr[i], GATE + 0x17, NULL), NOTIFY, "nr %d", nr[i]);
	}
}

Test(kfilter, everything_else_passes)
{
	const int nr[] = {SYS_read, SYS_write, SYS_close, SYS_mmap, SYS_clone, SYS_fork,
			  SYS_getdents64, SYS_newfstatat, SYS_mkdir, SYS_ioctl, SYS_seccomp};
	for (size_t i = 0; i < sizeof nr / sizeof nr[0]; i++)
		cr_expect_eq(verdict(GATE, X64, nr[i], ELSEWHERE, NULL), ALLOW, "nr %d", nr[i]);
}

static uint32_t open_v(int flags)
{
	uint64_t a[6] = {0x1000, (uint64_t)(unsigned)flags, 0644};
	uint64_t at[6] = {AT_FDCWD & 0xffffffffu, 0x1000, (uint64_t)(unsigned)flags};
	uint32_t v = verdict(GATE, X64, SYS_open, ELSEWHERE, a);
	cr_assert_eq(verdict(GATE, X64, SYS_openat, ELSEWHERE, at), v, "open and openat differ");
	return v;
}

Test(kfilter, writable_opens_that_can_overwrite_and_fallocate_that_drops_data)
{
	cr_expect_eq(open_v(O_RDONLY), ALLOW);
	cr_expect_eq(open_v(O_RDONLY | O_CREAT), ALLOW);
	cr_expect_eq(open_v(O_WRONLY), NOTIFY);
	cr_expect_eq(open_v(O_RDWR | O_CREAT), NOTIFY);
	cr_expect_eq(open_v(O_WRONLY | O_TRUNC), NOTIFY);
	cr_expect_eq(open_v(O_RDONLY | O_TRUNC), NOTIFY);
	/* Nothing to overwrite: a new file, or writes that only append. */
	cr_expect_eq(open_v(O_WRONLY | O_CREAT | O_EXCL), ALLOW);
	cr_expect_eq(open_v(O_WRONLY | O_APPEND), ALLOW);
	cr_expect_eq(open_v(O_WRONLY | O_APPEND | O_CREAT), ALLOW);
	/* A read-write append descriptor can be mapped and written. */
	cr_expect_eq(open_v(O_RDWR | O_APPEND), NOTIFY);
	uint64_t keep[6] = {3, 0}, punch[6] = {3, 0x02 | 0x01}, collapse[6] = {3, 0x08},
		 zero[6] = {3, 0x10}, insert[6] = {3, 0x20};
	cr_expect_eq(verdict(GATE, X64, SYS_fallocate, ELSEWHERE, keep), ALLOW);
	cr_expect_eq(verdict(GATE, X64, SYS_fallocate, ELSEWHERE, punch), NOTIFY);
	cr_expect_eq(verdict(GATE, X64, SYS_fallocate, ELSEWHERE, collapse), NOTIFY);
	cr_expect_eq(verdict(GATE, X64, SYS_fallocate, ELSEWHERE, zero), NOTIFY);
	cr_expect_eq(verdict(GATE, X64, SYS_fallocate, ELSEWHERE, insert), NOTIFY);
	cr_expect_eq(verdict(GATE, X64, SYS_fallocate, GATE + 8, punch), ALLOW);
}

Test(kfilter, under_a_floor_opens_that_may_create_go_to_the_supervisor)
{
	floor_on = 1;
	cr_expect_eq(open_v(O_WRONLY | O_CREAT | O_EXCL), NOTIFY);
	cr_expect_eq(open_v(O_WRONLY | O_APPEND | O_CREAT), NOTIFY);
	cr_expect_eq(open_v(O_RDWR | O_CREAT), NOTIFY);
	uint64_t at[6] = {AT_FDCWD & 0xffffffffu, 0x1000, O_WRONLY | O_CREAT | O_EXCL};
	cr_expect_eq(verdict(GATE, X64, SYS_openat, GATE + 8, at), ALLOW);
	/* Reading, or appending to what exists, stays the process's own. */
	cr_expect_eq(open_v(O_RDONLY), ALLOW);
	cr_expect_eq(open_v(O_RDONLY | O_CREAT), ALLOW);
	cr_expect_eq(open_v(O_WRONLY | O_APPEND), ALLOW);
	floor_on = 0;
}

Test(kfilter, truncating_opens_and_sends_with_an_address)
{
	uint64_t rd[6] = {0, O_RDONLY}, tr[6] = {0, O_WRONLY | O_TRUNC};
	uint64_t at_rd[6] = {AT_FDCWD & 0xffffffffu, 0, O_RDWR | O_CREAT},
		 at_tr[6] = {AT_FDCWD & 0xffffffffu, 0, O_RDWR | O_TRUNC};
	cr_expect_eq(verdict(GATE, X64, SYS_open, ELSEWHERE, rd), ALLOW);
	cr_expect_eq(verdict(GATE, X64, SYS_open, ELSEWHERE, tr), NOTIFY);
	cr_expect_eq(verdict(GATE, X64, SYS_open, GATE + 8, tr), ALLOW);
	cr_expect_eq(verdict(GATE, X64, SYS_openat, ELSEWHERE, at_tr), NOTIFY);
	uint64_t to_none[6] = {3, 0x1000, 10, 0, 0, 0}, to_lo[6] = {3, 0x1000, 10, 0, 0x5000, 16},
		 to_hi[6] = {3, 0x1000, 10, 0, 0x7f0000000000ull, 16};
	cr_expect_eq(verdict(GATE, X64, SYS_sendto, ELSEWHERE, to_none), ALLOW);
	cr_expect_eq(verdict(GATE, X64, SYS_sendto, ELSEWHERE, to_lo), NOTIFY);
	cr_expect_eq(verdict(GATE, X64, SYS_sendto, ELSEWHERE, to_hi), NOTIFY);
	(void)at_rd;
}

Test(kfilter, other_abis_are_not_let_past)
{
	/* 32-bit: unlink is 10; open (5) only with O_TRUNC; socketcall (102)
	 * only for connect (3) and the sends. */
	uint64_t tr[6] = {0, O_WRONLY | O_TRUNC}, rd[6] = {0, O_RDONLY};
	uint64_t sc_connect[6] = {3}, sc_socket[6] = {1};
	cr_expect_eq(verdict(GATE, AUDIT_ARCH_I386, 10, GATE + 8, NULL), NOTIFY);
	cr_expect_eq(verdict(GATE, AUDIT_ARCH_I386, 5, ELSEWHERE, tr), NOTIFY);
	cr_expect_eq(verdict(GATE, AUDIT_ARCH_I386, 5, ELSEWHERE, rd), ALLOW);
	cr_expect_eq(verdict(GATE, AUDIT_ARCH_I386, 102, ELSEWHERE, sc_connect), NOTIFY);
	cr_expect_eq(verdict(GATE, AUDIT_ARCH_I386, 102, ELSEWHERE, sc_socket), ALLOW);
	cr_expect_eq(verdict(GATE, AUDIT_ARCH_I386, 3, ELSEWHERE, NULL), ALLOW);   /* read */
	/* x32 calls are refused outright. */
	cr_expect_eq(verdict(GATE, X64, 0x40000000 | SYS_unlink, ELSEWHERE, NULL),
		     SECCOMP_RET_ERRNO | ENOSYS);
}

Test(kfilter, gate_addresses_are_page_aligned_and_do_not_wrap)
{
	for (int i = 0; i < 1000; i++) {
		uintptr_t g = ag_kernel_gate_pick();
		cr_assert_eq(g & (AG_GATE_SIZE - 1), 0);
		cr_assert((uint32_t)g <= 0xffffffffu - AG_GATE_SIZE);
		cr_assert(g >= 0x100000000000ull && g < 0x400000000000ull, "%#lx", (unsigned long)g);
		char text[32];
		snprintf(text, sizeof text, "0x%lx", (unsigned long)g);
		cr_assert_eq(ag_gate_parse(text), g);
	}
	cr_expect_eq(ag_gate_parse("0x1234"), 0);     /* not page-aligned */
	cr_expect_eq(ag_gate_parse("4096"), 0);
	cr_expect_eq(ag_gate_parse("0x800000000000"), 0);
	cr_expect_eq(ag_gate_parse(NULL), 0);
	cr_expect_eq(ag_gate_parse("0x"), 0);
	cr_expect_eq(ag_gate_parse("0x1000g000"), 0);
	cr_expect_eq(ag_gate_parse("0x1000 "), 0);
	cr_expect_eq(ag_gate_parse("0x10000000000000000000001000"), 0);   /* wraps 64 bits */
	cr_expect_eq(ag_gate_parse("0x7FFF0000A000"), 0x7fff0000a000ull);
	cr_expect_eq(ag_gate_parse("0x00001000"), 0x1000);
}

Test(kfilter, signals_and_traces_aimed_at_the_supervisor_are_reported)
{
	const int nr0[] = {SYS_kill, SYS_tkill, SYS_tgkill, SYS_rt_sigqueueinfo,
			   SYS_rt_tgsigqueueinfo, SYS_pidfd_open, SYS_process_vm_readv,
			   SYS_process_vm_writev};
	for (size_t i = 0; i < sizeof nr0 / sizeof nr0[0]; i++) {
		uint64_t at_us[6] = {SUPERVISOR, 9}, other[6] = {SUPERVISOR + 1, 9};
		cr_expect_eq(verdict(GATE, X64, nr0[i], ELSEWHERE, at_us), NOTIFY, "nr %d", nr0[i]);
		cr_expect_eq(verdict(GATE, X64, nr0[i], ELSEWHERE, other), ALLOW, "nr %d", nr0[i]);
		/* The gate is no way past it: the library never signals. */
		cr_expect_eq(verdict(GATE, X64, nr0[i], GATE + 0x17, at_us), NOTIFY, "nr %d", nr0[i]);
	}
	uint64_t attach[6] = {PTRACE_ATTACH, SUPERVISOR}, other[6] = {PTRACE_ATTACH, 77};
	cr_expect_eq(verdict(GATE, X64, SYS_ptrace, ELSEWHERE, attach), NOTIFY);
	cr_expect_eq(verdict(GATE, X64, SYS_ptrace, ELSEWHERE, other), ALLOW);
}
