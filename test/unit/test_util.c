/* lib/util.c: sizes and durations from rules, bounded formatting, mkdir -p,
 * process start times (what tells a live spool writer from a reused pid). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentguard.h"
#include "helpers.h"

/* ---- ag_parse_size -------------------------------------------------------- */

struct size_case {
	const char *s;
	uint64_t want;
};

Test(util_size, accepted)
{
	static const struct size_case ok[] = {
		{"0", 0},
		{"100", 100},
		{"100B", 100},
		{"1K", 1024},
		{"1KiB", 1024},
		{"1KB", 1000},
		{"1kb", 1000},                 /* units ignore case */
		{"512MB", 512000000ULL},
		{"3M", 3ULL << 20},
		{"4GiB", 4ULL << 30},
		{"4gib", 4ULL << 30},
		{"2GB", 2000000000ULL},
		{"10 MiB", 10ULL << 20},        /* a space before the unit */
		{"1T", 1ULL << 40},
		{"5TB", 5000000000000ULL},
		{"18446744073709551615", UINT64_MAX},
		{"16777215TiB", 16777215ULL << 40},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		uint64_t v = 12345;
		cr_expect_eq(ag_parse_size(ok[i].s, &v), 0, "\"%s\" rejected", ok[i].s);
		cr_expect_eq(v, ok[i].want, "\"%s\" = %llu, want %llu", ok[i].s,
			     (unsigned long long)v, (unsigned long long)ok[i].want);
	}
}

Test(util_size, rejected)
{
	static const char *const bad[] = {
		"", "GiB", "-1", "+5", " 5", "1.5G", "4XB", "4 G B", "0x10", "12abc",
		"18446744073709551616",      /* does not fit 64 bits */
		"16777216TiB",               /* 2^64 after scaling */
		"99999999999999999999GB",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t v = 777;
		cr_expect_eq(ag_parse_size(bad[i], &v), -1, "\"%s\" accepted as %llu",
			     bad[i], (unsigned long long)v);
		cr_expect_eq(v, 777, "\"%s\" wrote the output on failure", bad[i]);
	}
	uint64_t v;
	cr_expect_eq(ag_parse_size(NULL, &v), -1);
}

/* ---- ag_parse_duration ---------------------------------------------------- */

Test(util_duration, accepted)
{
	static const struct {
		const char *s;
		int64_t want;
	} ok[] = {
		{"45s", 45LL * 1000000000},
		{"30m", 30LL * 60 * 1000000000},
		{"2h", 2LL * 3600 * 1000000000},
		{"7d", 7LL * 86400 * 1000000000},
		{"7D", 7LL * 86400 * 1000000000},
		{"1w", 7LL * 86400 * 1000000000},
		{"0s", 0},
		{"3 h", 3LL * 3600 * 1000000000},
		{"106751d", 106751LL * 86400 * 1000000000},   /* the largest whole day */
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int64_t v = -5;
		cr_expect_eq(ag_parse_duration(ok[i].s, &v), 0, "\"%s\" rejected", ok[i].s);
		cr_expect_eq(v, ok[i].want, "\"%s\" = %lld", ok[i].s, (long long)v);
	}
}

Test(util_duration, rejected)
{
	static const char *const bad[] = {
		"", "10", "d", "-1d", "1.5h", "5ms", "2y", "1hh", "h1",
		"106752d",                    /* past INT64_MAX nanoseconds */
		"18446744073709551615s",      /* overflows while scaling */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t v = -5;
		cr_expect_eq(ag_parse_duration(bad[i], &v), -1, "\"%s\" accepted as %lld",
			     bad[i], (long long)v);
		cr_expect_eq(v, -5);
	}
}

/* ---- ag_fmt --------------------------------------------------------------- */

Test(util_fmt, fits)
{
	char out[8];

	cr_expect_eq(ag_fmt(out, sizeof out, "%s/%d", "ab", 42), 0);
	cr_expect_str_eq(out, "ab/42");
	/* Seven characters and the NUL: exactly full. */
	cr_expect_eq(ag_fmt(out, sizeof out, "%s", "1234567"), 0);
	cr_expect_str_eq(out, "1234567");
	cr_expect_eq(ag_fmt(out, sizeof out, "%s", ""), 0);
	cr_expect_str_eq(out, "");
}

Test(util_fmt, truncation_fails_with_enametoolong)
{
	char out[8];

	memset(out, 'Z', sizeof out);
	errno = 0;
	cr_expect_eq(ag_fmt(out, sizeof out, "%s", "12345678"), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
	/* Never a truncated path that names something else. */
	cr_expect_str_eq(out, "");

	errno = 0;
	cr_expect_eq(ag_fmt(out, sizeof out, "/very/long/%s", "path"), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
	cr_expect_str_eq(out, "");

	char one[1] = {'Z'};
	errno = 0;
	cr_expect_eq(ag_fmt(one, 0, "%s", "x"), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
	cr_expect_eq(one[0], 'Z', "outlen 0 must not write");
}

/* ---- ag_mkdirs ------------------------------------------------------------ */

static char D[AG_PATH_MAX];

static void dir_setup(void)
{
	ut_mkdtemp(D, sizeof D);
}

static void dir_teardown(void)
{
	ut_rmrf(D);
}

TestSuite(util_mkdirs, .init = dir_setup, .fini = dir_teardown);

Test(util_mkdirs, creates_every_level_with_mode)
{
	char p[AG_PATH_MAX];
	struct stat st;

	umask(022);
	ut_fmt(p, sizeof p, "%s/a/b/c/d", D);
	cr_assert_eq(ag_mkdirs(p, 0700), 0, "%s", strerror(errno));
	cr_assert_eq(stat(p, &st), 0);
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(st.st_mode & 07777, 0700);
	ut_fmt(p, sizeof p, "%s/a", D);
	cr_assert_eq(stat(p, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0700, "intermediate levels get the mode too");
	/* Again: nothing to do, still success. */
	ut_fmt(p, sizeof p, "%s/a/b/c/d", D);
	cr_expect_eq(ag_mkdirs(p, 0700), 0);
	/* Trailing and doubled slashes. */
	ut_fmt(p, sizeof p, "%s/x//y/", D);
	cr_expect_eq(ag_mkdirs(p, 0755), 0, "%s", strerror(errno));
	ut_fmt(p, sizeof p, "%s/x/y", D);
	cr_expect_eq(stat(p, &st), 0);
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(ag_mkdirs("/", 0755), 0);
}

Test(util_mkdirs, relative_to_cwd)
{
	struct stat st;
	char p[AG_PATH_MAX];

	cr_assert_eq(chdir(D), 0);
	cr_expect_eq(ag_mkdirs("r1/r2", 0700), 0);
	ut_fmt(p, sizeof p, "%s/r1/r2", D);
	cr_expect_eq(stat(p, &st), 0);
	cr_expect(S_ISDIR(st.st_mode));
}

Test(util_mkdirs, a_file_in_the_way)
{
	char p[AG_PATH_MAX];

	ut_fmt(p, sizeof p, "%s/file", D);
	ut_write_str(p, "x");
	errno = 0;
	cr_expect_eq(ag_mkdirs(p, 0700), -1);
	cr_expect_eq(errno, ENOTDIR);
	ut_fmt(p, sizeof p, "%s/file/sub", D);
	errno = 0;
	cr_expect_eq(ag_mkdirs(p, 0700), -1);
	cr_expect_eq(errno, ENOTDIR);
}

Test(util_mkdirs, symlink_to_a_directory_counts)
{
	char p[AG_PATH_MAX], t[AG_PATH_MAX];
	struct stat st;

	ut_fmt(t, sizeof t, "%s/real", D);
	cr_assert_eq(mkdir(t, 0700), 0);
	ut_fmt(p, sizeof p, "%s/link", D);
	cr_assert_eq(symlink("real", p), 0);
	ut_fmt(p, sizeof p, "%s/link/in", D);
	cr_expect_eq(ag_mkdirs(p, 0700), 0);
	ut_fmt(p, sizeof p, "%s/real/in", D);
	cr_expect_eq(stat(p, &st), 0);
}

Test(util_mkdirs, empty_and_too_long)
{
	static char big[AG_PATH_MAX + 2];

	cr_expect_eq(ag_mkdirs("", 0700), -1);
	memset(big, 'a', sizeof big - 1);
	big[0] = '/';
	big[sizeof big - 1] = 0;
	errno = 0;
	cr_expect_eq(ag_mkdirs(big, 0700), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
}

/* ---- ag_default_state_dir ------------------------------------------------- */

Test(util_state_dir, xdg_then_home)
{
	char out[AG_PATH_MAX];

	setenv("XDG_STATE_HOME", "/xdg/state", 1);
	setenv("HOME", "/home/someone", 1);
	cr_expect_eq(ag_default_state_dir(out, sizeof out), 0);
	cr_expect_str_eq(out, "/xdg/state/agentguard");

	/* XDG says a relative value is to be ignored. */
	setenv("XDG_STATE_HOME", "relative", 1);
	cr_expect_eq(ag_default_state_dir(out, sizeof out), 0);
	cr_expect_str_eq(out, "/home/someone/.local/state/agentguard");

	unsetenv("XDG_STATE_HOME");
	cr_expect_eq(ag_default_state_dir(out, sizeof out), 0);
	cr_expect_str_eq(out, "/home/someone/.local/state/agentguard");

	char small[10];
	cr_expect_eq(ag_default_state_dir(small, sizeof small), -1);

	unsetenv("HOME");
	cr_expect_eq(ag_default_state_dir(out, sizeof out), -1);
	setenv("HOME", "rel", 1);
	cr_expect_eq(ag_default_state_dir(out, sizeof out), -1);
}

/* ---- clocks and ag_proc_start --------------------------------------------- */

Test(util_clock, move_forward)
{
	int64_t m0 = ag_mono_ns(), r0 = ag_now_ns();

	usleep(2000);
	cr_expect_gt(ag_mono_ns(), m0 + 1000000);
	cr_expect_gt(ag_now_ns(), r0);
	/* Real time is since 1970: well past 2020 in nanoseconds. */
	cr_expect_gt(r0, 1577836800LL * 1000000000);
}

Test(util_proc, own_start_is_known_and_stable)
{
	uint64_t a = ag_proc_start(getpid());

	cr_expect_neq(a, 0);
	cr_expect_eq(ag_proc_start(getpid()), a);
	/* We started after our parent did. */
	uint64_t parent = ag_proc_start(getppid());
	cr_expect_neq(parent, 0);
	cr_expect_geq(a, parent);
}

Test(util_proc, dead_pid_is_zero)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(0);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect_eq(ag_proc_start(pid), 0);
	cr_expect_eq(ag_proc_start(0), 0);
	cr_expect_eq(ag_proc_start(-1), 0);
}

/* comm can hold ") " and digits: the fields must be counted after the last ")". */
Test(util_proc, odd_process_names)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		uint64_t before = ag_proc_start(getpid());
		prctl(PR_SET_NAME, "a) R 1 2 3 (b", 0, 0, 0);
		uint64_t after = ag_proc_start(getpid());
		prctl(PR_SET_NAME, "x)", 0, 0, 0);
		uint64_t after2 = ag_proc_start(getpid());
		int ok = before != 0 && before == after && after == after2;
		_exit(ok ? 0 : 1);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "start time changed with the process name");
}

/* `env -i` in a guarded program must not move the state dir or the
 * session: what the process started with is what counts. */
Test(util_state_dir, env_snapshot_pins_the_start_values)
{
	char out[AG_PATH_MAX];

	setenv("HOME", "/home/at-start", 1);
	unsetenv("XDG_STATE_HOME");
	setenv("AGENTGUARD_SESSION", "s-start", 1);
	setenv("UT_NOT_PINNED", "before", 1);
	ag_env_snapshot();

	setenv("HOME", "/home/later", 1);
	setenv("XDG_STATE_HOME", "/xdg/later", 1);
	unsetenv("AGENTGUARD_SESSION");
	setenv("UT_NOT_PINNED", "after", 1);

	cr_expect_str_eq(ag_getenv("HOME"), "/home/at-start");
	cr_expect_null(ag_getenv("XDG_STATE_HOME"), "unset at start stays unset");
	cr_assert_not_null(ag_getenv("AGENTGUARD_SESSION"));
	cr_expect_str_eq(ag_getenv("AGENTGUARD_SESSION"), "s-start");
	cr_expect_str_eq(ag_getenv("UT_NOT_PINNED"), "after", "other names read live");
	cr_expect_eq(ag_default_state_dir(out, sizeof out), 0);
	cr_expect_str_eq(out, "/home/at-start/.local/state/agentguard");
}

/* ---- ag_escape_display ---------------------------------------------------- */

static void esc_expect(const char *in, size_t len, const char *want)
{
	char out[256];
	size_t n = ag_escape_display(in, len, out, sizeof out);

	cr_expect_str_eq(out, want);
	cr_expect_eq(n, strlen(out));
}
#define ESC(in, want) esc_expect(in, sizeof in - 1, want)

Test(util_escape, c0_controls_and_del)
{
	ESC("a\rb\nc\td", "a\\rb\\nc\\td");
	ESC("\x1b[2K\x1b[1A", "\\x1b[2K\\x1b[1A");
	ESC("\x01\x07\x08\x0b\x0c\x1f\x7f", "\\x01\\x07\\x08\\x0b\\x0c\\x1f\\x7f");
	/* A NUL inside the counted text is shown, not an end. */
	ESC("a\0b", "a\\x00b");
}

Test(util_escape, c1_controls_as_code_points_and_raw_bytes)
{
	ESC("\xc2\x80" "\xc2\x85" "\xc2\x9b" "2J\xc2\x9f", "\\u0080\\u0085\\u009b2J\\u009f");
	/* C1 as single bytes are not UTF-8: bytes. */
	ESC("\x9b" "2J\x85", "\\x9b2J\\x85");
	/* U+00A0 is the first printable after C1. */
	ESC("\xc2\xa0", "\xc2\xa0");
}

Test(util_escape, bidi_marks_overrides_isolates)
{
	ESC("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad\xe2\x80\xae",
	    "\\u202a\\u202b\\u202c\\u202d\\u202e");
	ESC("\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9",
	    "\\u2066\\u2067\\u2068\\u2069");
	ESC("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", "\\u200e\\u200f\\u061c");
	/* The classic trick: "exe.txt" that is really "txt.exe". */
	ESC("evil\xe2\x80\xaetxt.exe", "evil\\u202etxt.exe");
}

Test(util_escape, invisible_formatting)
{
	ESC("id\xe2\x80\x8brsa", "id\\u200brsa");
	ESC("a\xe2\x80\x8c" "b\xe2\x80\x8d" "c", "a\\u200cb\\u200dc");
	ESC("\xe2\x80\xa8\xe2\x80\xa9", "\\u2028\\u2029");
	ESC("\xe2\x81\xa0\xef\xbb\xbf\xc2\xad", "\\u2060\\ufeff\\u00ad");
	/* A tag character, past the BMP: eight digits. */
	ESC("x\xf3\xa0\x80\x81y", "x\\U000e0001y");
}

Test(util_escape, backslash_cannot_forge_an_escape)
{
	ESC("\\", "\\\\");
	/* The text "\x1b" and a real ESC must look different. */
	ESC("\\x1b", "\\\\x1b");
	ESC("\\u202e", "\\\\u202e");
}

Test(util_escape, valid_printable_utf8_kept)
{
	ESC("caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9 na\xc3\xafve");
	ESC("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	ESC("\xf0\x9f\x94\xa5\xf0\x9f\x98\x80", "\xf0\x9f\x94\xa5\xf0\x9f\x98\x80");
	ESC("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d");
	ESC("plain /home/u/x.txt ~!@#$%^&*()", "plain /home/u/x.txt ~!@#$%^&*()");
}

Test(util_escape, invalid_utf8_bytes)
{
	/* Overlong newlines and slash: never decoded into what they spell. */
	ESC("\xc0\x8a", "\\xc0\\x8a");
	ESC("\xe0\x80\x8a", "\\xe0\\x80\\x8a");
	ESC("\xf0\x80\x80\x8a", "\\xf0\\x80\\x80\\x8a");
	ESC("\xc0\xaf", "\\xc0\\xaf");
	ESC("bad\xffutf\xfe", "bad\\xffutf\\xfe");
	/* Surrogate, past U+10FFFF, a lone continuation byte. */
	ESC("\xed\xa0\x80", "\\xed\\xa0\\x80");
	ESC("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");
	ESC("\x80", "\\x80");
	/* A sequence cut by the end of the text, or by a plain byte. */
	ESC("ok\xe2\x80", "ok\\xe2\\x80");
	ESC("\xe2\x80" "a", "\\xe2\\x80a");
}

Test(util_escape, length_bounds_the_input)
{
	char out[32];

	/* Only len bytes are read: the valid character after them is not. */
	ag_escape_display("ab\xe2\x80\xae", 4, out, sizeof out);
	cr_expect_str_eq(out, "ab\\xe2\\x80");
	cr_expect_eq(ag_escape_display(NULL, 5, out, sizeof out), 0);
	cr_expect_str_eq(out, "");
}

Test(util_escape, truncation_never_overflows_and_is_marked)
{
	char out[64];
	const char *in = "0123456789\x1b[2K0123456789";

	for (size_t cap = 1; cap <= sizeof out; cap++) {
		memset(out, 'Z', sizeof out);
		size_t n = ag_escape_display(in, strlen(in), out, cap);
		cr_assert_lt(n, cap);
		cr_assert_eq(out[n], 0, "cap %zu", cap);
		cr_assert_eq(strlen(out), n);
		for (size_t i = cap; i < sizeof out; i++)
			cr_assert_eq(out[i], 'Z', "wrote past %zu at %zu", cap, i);
		/* Full text needs 27 bytes; anything shorter is cut and says so. */
		if (cap < 28 && cap >= 4)
			cr_assert(n >= 3 && strcmp(out + n - 3, "...") == 0, "cap %zu: %s", cap, out);
		/* Never half an escape: no lone backslash before the dots. */
		if (cap < 28 && n >= 4)
			cr_assert_neq(out[n - 4], '\\', "cap %zu: %s", cap, out);
	}
	/* Cut inside the escape: the whole escape goes. */
	ag_escape_display(in, strlen(in), out, 16);
	cr_expect_str_eq(out, "0123456789...");
	/* Room for it all: no dots. */
	ag_escape_display(in, strlen(in), out, 28);
	cr_expect_str_eq(out, "0123456789\\x1b[2K0123456789");
	/* Nothing to write into: nothing written. */
	out[0] = 'Z';
	cr_expect_eq(ag_escape_display(in, strlen(in), out, 0), 0);
	cr_expect_eq(out[0], 'Z');
}

Test(util_escape, truncation_keeps_utf8_whole)
{
	char out[8];

	/* "é" is two bytes: never cut between them. */
	ag_escape_display("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 10, out, sizeof out);
	cr_expect_str_eq(out, "\xc3\xa9\xc3\xa9...");
}
