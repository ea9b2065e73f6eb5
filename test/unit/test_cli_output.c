/*
 * tools/cli.c: the helpers that keep hostile file names from rewriting a
 * terminal, breaking a JSON line or injecting HTML, and that refuse
 * snapshot rows pointing outside the store.
 *
 * The unit binary links only the core and the audit log, not the CLI, so
 * the file under test is compiled into this one.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/cli.c"

typedef void (*put_fn)(FILE *, const char *);

static char *capture(put_fn fn, const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert(f);
	fn(f, s);
	fclose(f);
	return buf;
}

static void expect(put_fn fn, const char *in, const char *want)
{
	char *got = capture(fn, in);

	cr_expect_str_eq(got, want, "input %s", in ? in : "(null)");
	free(got);
}

Test(cli_put, plain_text_and_utf8_pass_through)
{
	expect(cli_put, "/home/ann/caf\xc3\xa9.txt", "/home/ann/caf\xc3\xa9.txt");
	expect(cli_put, NULL, "-");
}

Test(cli_put, controls_and_bad_utf8_are_escaped)
{
	expect(cli_put, "evil\x1b[31mred\nline", "evil\\x1b[31mred\\nline");
	expect(cli_put, "build.tmp\r\x1b[2K", "build.tmp\\r\\x1b[2K");
	expect(cli_put, "bad\xffutf", "bad\\xffutf");
	/* C1 CSI (U+009B) is a terminal control too. */
	expect(cli_put, "a\xc2\x9b" "2J", "a\\u009b2J");
	/* Overlong "/" and a UTF-16 surrogate are not valid UTF-8. */
	expect(cli_put, "\xc0\xaf", "\\xc0\\xaf");
	expect(cli_put, "\xed\xa0\x80", "\\xed\\xa0\\x80");
	expect(cli_put, "\x7f", "\\x7f");
}

Test(cli_put, bidi_and_backslash)
{
	/* A right-to-left override would show "gpj.exe" as "exe.jpg". */
	expect(cli_put, "photo\xe2\x80\xaegpj.exe", "photo\\u202egpj.exe");
	expect(cli_put, "a\xe2\x81\xa6" "b", "a\\u2066b");
	/* A name spelling an escape cannot pass for one. */
	expect(cli_put, "x\\ny", "x\\\\ny");
}

Test(cli_put_word, quotes_only_when_needed)
{
	expect(cli_put_word, "abc-1.2/x=y", "abc-1.2/x=y");
	expect(cli_put_word, "a b", "'a b'");
	expect(cli_put_word, "it's", "'it'\\''s'");
	expect(cli_put_word, "", "''");
	expect(cli_put_word, "$(rm -rf /)", "'$(rm -rf /)'");
	/* Escapes only mean something inside $'...': bash reads them back. */
	expect(cli_put_word, "x\ny", "$'x\\ny'");
	expect(cli_put_word, "it's\x1b", "$'it\\'s\\x1b'");
	expect(cli_put_word, "a\\b", "$'a\\\\b'");
	expect(cli_put_word, "r\xe2\x80\xaex", "$'r\\u202ex'");
}

Test(cli_put_html, escapes_markup_and_controls)
{
	expect(cli_put_html, "<img src=x onerror=\"a('1')\">&",
	       "&lt;img src=x onerror=&quot;a(&#39;1&#39;)&quot;&gt;&amp;");
	expect(cli_put_html, "a\x1b" "b\xff", "a\\x1bb\\xff");
	/* A bidi override is shown, not obeyed, on the page too. */
	expect(cli_put_html, "x\xe2\x80\xae<y", "x\\u202e&lt;y");
	expect(cli_put_html, "a\nb", "a\\nb");
	/* Already shown text (cli_put_subject's) is only HTML-escaped. */
	expect(cli_put_html_shown, "a\\x1b<", "a\\x1b&lt;");
	expect(cli_put_html, "caf\xc3\xa9", "caf\xc3\xa9");
}

Test(cli_json_str, invalid_utf8_becomes_replacement_character)
{
	json_t *j = cli_json_str("a\xff" "b");

	cr_assert(j);
	cr_expect_str_eq(json_string_value(j), "a\xef\xbf\xbd" "b");
	json_decref(j);
}

Test(cli_put_argv, shell_words_and_truncation)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cli_put_argv(f, "[\"sh\",\"-c\",\"rm -rf x\"]", 100);
	fputc('|', f);
	cli_put_argv(f, "[\"echo\",\"0123456789\"]", 8);
	fputc('|', f);
	cli_put_argv(f, "not json", 100);
	fclose(f);
	cr_expect_str_eq(buf, "sh -c 'rm -rf x'|echo 012...|not json");
	free(buf);
}

Test(cli_plain_path, only_plain_absolute_paths)
{
	cr_expect(cli_plain_path("/a/b/c"));
	cr_expect(cli_plain_path("/.hidden/x"));
	cr_expect_not(cli_plain_path("/"));
	cr_expect_not(cli_plain_path("a/b"));
	cr_expect_not(cli_plain_path("/a/../b"));
	cr_expect_not(cli_plain_path("/a/./b"));
	cr_expect_not(cli_plain_path("/a//b"));
	cr_expect_not(cli_plain_path("/a/"));
	cr_expect_not(cli_plain_path(NULL));
}

Test(cli_store_path, stays_inside_the_snapshot_store)
{
	struct cli_db d = { .state_dir = "/st" };
	char out[AG_PATH_MAX];

	cr_assert_eq(cli_store_path(&d, "snapshots/s1/abc", out, sizeof out), 0);
	cr_expect_str_eq(out, "/st/snapshots/s1/abc");
	cr_expect_eq(cli_store_path(&d, "../../etc/passwd", out, sizeof out), -1);
	cr_expect_eq(cli_store_path(&d, "snapshots/../audit.db", out, sizeof out), -1);
	cr_expect_eq(cli_store_path(&d, "/etc/passwd", out, sizeof out), -1);
	cr_expect_eq(cli_store_path(&d, "audit.db", out, sizeof out), -1);
	cr_expect_eq(cli_store_path(&d, NULL, out, sizeof out), -1);
}

Test(cli_fmt_duration, human_units)
{
	char b[32];

	cli_fmt_duration(850000000LL, b, sizeof b);
	cr_expect_str_eq(b, "850ms");
	cli_fmt_duration(12300000000LL, b, sizeof b);
	cr_expect_str_eq(b, "12.3s");
	cli_fmt_duration(192000000000LL, b, sizeof b);
	cr_expect_str_eq(b, "3m12s");
	cli_fmt_duration(7500LL * 1000000000LL, b, sizeof b);
	cr_expect_str_eq(b, "2h05m");
	cli_fmt_duration(187200LL * 1000000000LL, b, sizeof b);
	cr_expect_str_eq(b, "2d4h");
}
