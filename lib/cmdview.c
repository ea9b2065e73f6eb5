/*
 * The commands one exec runs, as the exec rules judge them ("views").
 *
 * An exec is judged under every name its program goes by (the name it was
 * started as, the file behind a symlink, the script an interpreter runs)
 * and, besides, every command it has run where the library cannot follow:
 * on another machine (ssh), in a container or a pod (docker/podman exec and
 * run, kubectl exec), or as another user with the library stripped from
 * the environment (sudo, doas, su). Such a command is unwrapped as far as
 * its own wrappers go (sh -c, env, timeout, nohup, xargs, ...), since no
 * guard sees those run either. Wrappers that run here, guarded, are left
 * alone: the library judges what they start when they start it (only an
 * unguarded wrapper, a static busybox say, is unwrapped here).
 *
 * terraform and tofu also read arguments from the environment
 * (TF_CLI_ARGS, TF_CLI_ARGS_<command>): their views carry the argv with
 * those inserted as terraform inserts them.
 *
 * Pure and allocation-free: words that must be made (a shell string split,
 * ssh's arguments joined, terraform's argv) go into the caller's buffer.
 */
#include <stdint.h>
#include <string.h>

#include "gitrefs.h"
#include "policy_internal.h"

#define MAX_DEPTH 6

static const char *base_of(const char *s)
{
	const char *sl = strrchr(s, '/');
	return sl ? sl + 1 : s;
}

static int name_is(const char *name, const char *const *list)
{
	for (; *list; list++) {
		/* Most names differ at once: an exec asks a dozen lists. */
		if ((*list)[0] != name[0] && (*list)[0] != '*')
			continue;
		size_t n = strlen(*list);
		if ((*list)[n - 1] == '*' ? strncmp(name, *list, n - 1) == 0
					  : strcmp(name, *list) == 0)
			return 1;
	}
	return 0;
}

/* ---- the buffer ---------------------------------------------------------- */

static void *take(struct ag_views *vs, size_t n, size_t align)
{
	size_t at = (vs->used + align - 1) & ~(align - 1);

	if (!vs->buf || at + n > vs->cap || at + n < at) {
		if (!vs->broken)
			vs->broken = "the command it runs elsewhere is too long to be judged";
		return NULL;
	}
	vs->used = at + n;
	return vs->buf + at;
}

static char *take_str(struct ag_views *vs, const char *s, size_t n)
{
	char *p = take(vs, n + 1, 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = 0;
	}
	return p;
}

/* ---- views --------------------------------------------------------------- */

static void add_view(struct ag_views *vs, const char *prog, const char *const *argv,
		     unsigned cmd, const char *where)
{
	if (!prog || !*prog || !argv)
		return;
	if (vs->n == AG_VIEWS_MAX) {
		if (!vs->broken)
			vs->broken = "it runs too many commands elsewhere to be judged";
		return;
	}
	vs->v[vs->n++] = (struct ag_view){prog, argv, cmd, where};
}

static unsigned new_cmd(struct ag_views *vs)
{
	return vs->ncmd++;
}

/* ---- options ------------------------------------------------------------- */

/* How a program's options are read: `vshort` the short options that take
 * a value (getopt style, the rest of the word or the next one), `vlong`
 * the long ones that take the next word when not given as --opt=value. */
struct optspec {
	const char *vshort;
	const char *const *vlong;
};

/* Index of the first positional word at or after i (argc when none). With
 * `after` set, a "--" is skipped and ends the options. */
static size_t skip_opts(const char *const *argv, size_t i, const struct optspec *o)
{
	for (; argv[i]; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--") == 0)
			return argv[i + 1] ? i + 1 : i + 1;
		if (s[0] != '-' || !s[1])
			return i;
		if (s[1] == '-') {
			if (strchr(s, '=') || !o->vlong)
				continue;
			for (const char *const *l = o->vlong; *l; l++)
				if (strcmp(*l, s) == 0) {
					if (argv[i + 1])
						i++;
					break;
				}
			continue;
		}
		/* A cluster: the first value option takes the rest or the next word. */
		int long_single = 0;
		for (const char *const *l = o->vlong; o->vlong && *l; l++)
			if (strcmp(*l, s) == 0) {
				long_single = 1;   /* -name value (Go style) */
				break;
			}
		if (long_single) {
			if (argv[i + 1])
				i++;
			continue;
		}
		for (const char *q = s + 1; *q; q++)
			if (o->vshort && strchr(o->vshort, *q)) {
				if (!q[1] && argv[i + 1])
					i++;
				break;
			}
	}
	return i;
}

/* Does the option cluster or long option at argv[i] contain short option c
 * (or equal `lng`)? */
static int has_opt(const char *s, char c, const char *lng)
{
	if (lng && strcmp(s, lng) == 0)
		return 1;
	if (s[0] != '-' || s[1] == '-' || !s[1])
		return 0;
	return c && strchr(s + 1, c) != NULL;
}

/* ---- shell strings ------------------------------------------------------- */

static void unwrap(struct ag_views *vs, const char *const *argv, unsigned cmd,
		   const char *where, int depth, int elsewhere);
static const char *const *tf_env_args(struct ag_views *vs, const char *const *argv,
				      const char *const *envp);


static int is_op_char(char c)
{
	return c == ';' || c == '&' || c == '|' || c == '\n' || c == '(' || c == ')' ||
	       c == '`';
}

static int is_assignment(const char *w)
{
	if (!((*w >= 'A' && *w <= 'Z') || (*w >= 'a' && *w <= 'z') || *w == '_'))
		return 0;
	for (; *w && *w != '='; w++)
		if (!((*w >= 'A' && *w <= 'Z') || (*w >= 'a' && *w <= 'z') || *w == '_' ||
		      (*w >= '0' && *w <= '9')))
			return 0;
	return *w == '=';
}

/* The shell's reserved words that may come first in a command. */
static const char *const keywords[] = {"if", "then", "else", "elif", "fi", "do", "done",
				       "while", "until", "for", "in", "case", "esac",
				       "!", "{", "}", "time", "function", NULL};

/*
 * Split text as a POSIX shell would in the simple case: quotes, backslashes,
 * comments, redirections dropped, and a new command at each of ; & | && ||
 * newline ( ) $( and `. Each command (leading assignments and reserved
 * words dropped) is given to `fn`. `words_only`: one list of words, no
 * operators (terraform's TF_CLI_ARGS).
 */
static const char *const *split_shell(struct ag_views *vs, const char *text, size_t len,
				      int words_only, unsigned cmd0, const char *where,
				      int depth, int elsewhere)
{
	const char *p = text, *end = text + len;
	const char *const *last = NULL;

	while (p < end && !vs->broken) {
		/* One command: count its words first (upper bound), then copy. */
		size_t cap = 1;
		for (const char *q = p; q < end; q++)
			cap += *q == ' ' || *q == '\t';
		cap += 1;
		const char **words = take(vs, (cap + 1) * sizeof *words, sizeof(void *));
		char *out = take(vs, (size_t)(end - p) + cap + 1, 1);
		if (!words || !out)
			return NULL;
		size_t nw = 0;
		int drop_next = 0;
		for (;;) {
			while (p < end && (*p == ' ' || *p == '\t' || (*p == '\\' && p + 1 < end &&
								       p[1] == '\n')))
				p += *p == '\\' ? 2 : 1;
			if (p >= end)
				break;
			if (*p == '#') {
				while (p < end && *p != '\n')
					p++;
				continue;
			}
			if (!words_only && is_op_char(*p)) {
				while (p < end && is_op_char(*p) && *p != '\n')
					p++;
				if (p < end && *p == '\n')
					p++;
				break;
			}
			if (!words_only && p + 1 < end && p[0] == '$' && p[1] == '(') {
				p += 2;
				break;
			}
			/* A word. */
			char *w = out;
			int redir = 0, quoted = 0;
			while (p < end && *p != ' ' && *p != '\t' &&
			       (words_only || (!is_op_char(*p) &&
					       !(p[0] == '$' && p + 1 < end && p[1] == '(')))) {
				if (*p == '\'') {
					quoted = 1;
					for (p++; p < end && *p != '\''; p++)
						*out++ = *p;
					p += p < end;
				} else if (*p == '"') {
					quoted = 1;
					for (p++; p < end && *p != '"'; p++) {
						if (*p == '\\' && p + 1 < end &&
						    strchr("\"\\$`\n", p[1]))
							p++;
						*out++ = *p;
					}
					p += p < end;
				} else if (*p == '\\' && p + 1 < end) {
					*out++ = p[1];
					p += 2;
				} else if (!words_only && !quoted && (*p == '<' || *p == '>')) {
					/* A redirection: digits before it belong to it. */
					int digits = 1;
					for (char *d = w; d < out; d++)
						digits &= *d >= '0' && *d <= '9';
					if (!digits) {
						*out++ = *p++;
						continue;
					}
					out = w;
					while (p < end && (*p == '<' || *p == '>' || *p == '&' || *p == '|'))
						p++;
					redir = 1;
					/* "2>&1" is whole; else the target is the next word. */
					if (p < end && *p != ' ' && *p != '\t')
						continue;
					drop_next = 1;
					break;
				} else {
					*out++ = *p++;
				}
			}
			*out++ = 0;
			if (redir && out - 1 == w) {
				out = w;
				continue;
			}
			if (redir) {
				out = w;    /* its target: dropped */
				continue;
			}
			if (drop_next) {
				drop_next = 0;
				out = w;
				continue;
			}
			words[nw++] = w;
			if (nw == cap)
				break;
		}
		words[nw] = NULL;
		if (words_only)
			return words;
		/* Leading assignments and reserved words are not the program. */
		size_t first = 0;
		while (words[first] && (is_assignment(words[first]) ||
					name_is(words[first], keywords)))
			first++;
		if (words[first]) {
			unsigned c = cmd0 != (unsigned)-1 ? cmd0 : new_cmd(vs);
			cmd0 = (unsigned)-1;
			last = words + first;
			vs->assign_lo = words;
			vs->assign_at = words + first;
			unwrap(vs, words + first, c, where, depth + 1, elsewhere);
		}
	}
	return last;
}

/* ---- programs that run a command ----------------------------------------- */

static const char *const shells[] = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash",
				     "yash", "posh", NULL};
static const char *const pythons[] = {"python*", "pypy*", NULL};
static const char *const nodes[] = {"node", "nodejs", NULL};
static const char *const others[] = {"perl", "perl5*", "ruby", "php", NULL};


/* An interpreter's script: its name is the program's too. With `-c` (or
 * perl's -e...) there is none. Returns the index of the script word, 0 if
 * none; *code set when a -c string follows at that index instead. */
static size_t script_of(const char *name, const char *const *argv, int *code)
{
	*code = 0;
	if (name_is(name, shells)) {
		for (size_t i = 1; argv[i]; i++) {
			const char *s = argv[i];
			if (strcmp(s, "--") == 0 || strcmp(s, "-") == 0)
				return argv[i + 1] && strcmp(s, "--") == 0 ? i + 1 : 0;
			if ((s[0] != '-' && s[0] != '+') || !s[1])
				return *code ? (argv[i] ? i : 0) : i;
			if (s[1] == '-') {
				if (strcmp(s, "--rcfile") == 0 || strcmp(s, "--init-file") == 0)
					i += argv[i + 1] != NULL;
				continue;
			}
			for (const char *q = s + 1; *q; q++) {
				if (*q == 'c')
					*code = 1;
				else if (*q == 's')
					return 0;   /* commands from stdin */
				else if ((*q == 'o' || *q == 'O') && !q[1])
					i += argv[i + 1] != NULL;
			}
		}
		return 0;
	}
	if (name_is(name, pythons)) {
		for (size_t i = 1; argv[i]; i++) {
			const char *s = argv[i];
			if (strcmp(s, "--") == 0)
				return argv[i + 1] ? i + 1 : 0;
			if (s[0] != '-' || !s[1])
				return strcmp(s, "-") == 0 ? 0 : i;
			if (strcmp(s, "--check-hash-based-pycs") == 0) {
				i += argv[i + 1] != NULL;
				continue;
			}
			if (s[1] == '-')
				continue;
			for (const char *q = s + 1; *q; q++) {
				if (*q == 'c')
					return 0;
				if (*q == 'm')   /* -m module: the module is the program */
					return q[1] ? 0 : argv[i + 1] ? i + 1 : 0;
				if (*q == 'W' || *q == 'X') {
					i += !q[1] && argv[i + 1];
					break;
				}
			}
		}
		return 0;
	}
	if (name_is(name, nodes)) {
		static const char *const v[] = {"-r", "--require", "--import", "--loader",
						"--experimental-loader", "-C", "--conditions",
						NULL};
		for (size_t i = 1; argv[i]; i++) {
			const char *s = argv[i];
			if (strcmp(s, "--") == 0)
				return argv[i + 1] ? i + 1 : 0;
			if (s[0] != '-' || !s[1])
				return strcmp(s, "-") == 0 ? 0 : i;
			if (strcmp(s, "-e") == 0 || strcmp(s, "--eval") == 0 ||
			    strcmp(s, "-p") == 0 || strcmp(s, "--print") == 0 ||
			    strncmp(s, "--eval=", 7) == 0 || strncmp(s, "--print=", 8) == 0)
				return 0;
			if (name_is(s, v))
				i += argv[i + 1] != NULL;
		}
		return 0;
	}
	if (name_is(name, others)) {
		for (size_t i = 1; argv[i]; i++) {
			const char *s = argv[i];
			if (strcmp(s, "--") == 0)
				return argv[i + 1] ? i + 1 : 0;
			if (s[0] != '-' || !s[1])
				return strcmp(s, "-") == 0 ? 0 : i;
			if (s[1] != '-' && (strchr(s + 1, 'e') || strchr(s + 1, 'E')) &&
			    strncmp(s, "-I", 2) != 0 && strncmp(s, "-M", 2) != 0)
				return 0;
			if ((strcmp(s, "-r") == 0 || strcmp(s, "-I") == 0 || strcmp(s, "-C") == 0) &&
			    argv[i + 1])
				i++;
		}
	}
	return 0;
}

/* The script's name without an interpreter's extension: gcloud.py is
 * gcloud. */
static void add_stem(struct ag_views *vs, const char *script, const char *const *argv,
		     unsigned cmd, const char *where)
{
	static const char *const exts[] = {".py", ".js", ".mjs", ".cjs", ".rb", ".pl", ".sh",
					   ".php", NULL};
	const char *b = base_of(script), *dot = strrchr(b, '.');

	if (!dot || dot == b)
		return;
	for (const char *const *e = exts; *e; e++)
		if (strcmp(dot, *e) == 0) {
			char *stem = take_str(vs, b, (size_t)(dot - b));
			add_view(vs, stem, argv, cmd, where);
			return;
		}
}

/* ---- the carriers: what they run elsewhere ------------------------------- */

static const char *const ssh_names[] = {"ssh", "autossh", NULL};
static const char *const kube_names[] = {"kubectl", "oc", "kubectl.*", "microk8s.kubectl",
					 NULL};
static const char *const docker_names[] = {"docker", "podman", "nerdctl", NULL};
static const char *const compose_names[] = {"docker-compose", "podman-compose", NULL};
static const char *const sudo_names[] = {"sudo", "doas", "pkexec", "su", NULL};
static const char *const wrapper_names[] = {"env", "nohup", "timeout", "nice", "ionice",
					    "stdbuf", "setsid", "time", "xargs", "exec",
					    "command", "busybox", "chrt", "taskset", NULL};

/* ssh joins the words after the host with blanks and the remote shell
 * reads them. */
static void ssh_remote(struct ag_views *vs, const char *const *argv, int depth)
{
	static const struct optspec o = {"BbcDEeFIiJLlmOopQRSWw", NULL};
	size_t i = skip_opts(argv, 1, &o);

	if (!argv[i])
		return;
	i = skip_opts(argv, i + 1, &o);   /* options may follow the host */
	if (!argv[i])
		return;
	size_t n = 0;
	for (size_t k = i; argv[k]; k++)
		n += strlen(argv[k]) + 1;
	char *joined = take(vs, n + 1, 1);
	if (!joined)
		return;
	char *q = joined;
	for (size_t k = i; argv[k]; k++) {
		size_t l = strlen(argv[k]);
		memcpy(q, argv[k], l);
		q += l;
		*q++ = ' ';
	}
	*--q = 0;
	split_shell(vs, joined, (size_t)(q - joined), 0, (unsigned)-1, "ssh", depth, 1);
}

static const char *const kube_vlong[] = {
	"--namespace", "--context", "--kubeconfig", "--server", "--cluster", "--user",
	"--token", "--as", "--as-group", "--as-uid", "--request-timeout", "--cache-dir",
	"--certificate-authority", "--client-certificate", "--client-key",
	"--tls-server-name", "--v", "--log-file", "--log-dir", "--profile",
	"--profile-output", "--container", "--filename", "--pod-running-timeout",
	"--image", "--selector", "--output", "--target", "--env", "--overrides", "--port",
	"--labels", "--restart", "--timeout", "--copy-to", "--share-processes", NULL};
static const struct optspec kube_opts = {"nscfvlopei", kube_vlong};

static void kube_remote(struct ag_views *vs, const char *const *argv, const char *where,
			int depth)
{
	size_t i = skip_opts(argv, 1, &kube_opts);

	if (!argv[i])
		return;
	const char *verb = argv[i];
	if (strcmp(verb, "exec") && strcmp(verb, "run") && strcmp(verb, "debug") &&
	    strcmp(verb, "rsh"))
		return;
	/* `-- CMD...` is what runs in the pod. */
	for (size_t k = i + 1; argv[k]; k++)
		if (strcmp(argv[k], "--") == 0) {
			if (argv[k + 1])
				unwrap(vs, argv + k + 1, new_cmd(vs), where, depth + 1, 1);
			return;
		}
	if (strcmp(verb, "exec") && strcmp(verb, "rsh"))
		return;
	/* The older form: exec POD CMD..., oc rsh POD CMD... */
	size_t pod = skip_opts(argv, i + 1, &kube_opts);
	if (argv[pod] && argv[pod + 1]) {
		size_t c = skip_opts(argv, pod + 1, &kube_opts);
		if (argv[c])
			unwrap(vs, argv + c, new_cmd(vs), where, depth + 1, 1);
	}
}

static const char *const docker_global[] = {
	"--config", "--context", "--host", "--log-level", "--tlscacert", "--tlscert",
	"--tlskey", "--connection", "--url", "--identity", "--root", "--runroot",
	"--storage-driver", "--storage-opt", "--cgroup-manager", "--events-backend",
	"--runtime", "--tmpdir", "--module", "--conmon", "--hooks-dir", "--imagestore",
	"--ssh", "--namespace", "--address", "--snapshotter", "--cni-path",
	"--data-root", NULL};
static const struct optspec docker_global_opts = {"cHl", docker_global};

static const char *const compose_global[] = {
	"--file", "--project-name", "--project-directory", "--env-file", "--profile",
	"--ansi", "--progress", "--parallel", NULL};
static const struct optspec compose_global_opts = {"fp", compose_global};

static const char *const exec_vlong[] = {"--env", "--env-file", "--user", "--workdir",
					 "--detach-keys", "--index", "--preserve-fds", NULL};
static const struct optspec exec_opts = {"euw", exec_vlong};

static const char *const run_vlong[] = {
	"--attach", "--add-host", "--annotation", "--blkio-weight", "--blkio-weight-device",
	"--cap-add", "--cap-drop", "--cgroup-parent", "--cgroupns", "--cidfile",
	"--cpu-period", "--cpu-quota", "--cpu-rt-period", "--cpu-rt-runtime",
	"--cpu-shares", "--cpus", "--cpuset-cpus", "--cpuset-mems", "--device",
	"--device-cgroup-rule", "--device-read-bps", "--device-read-iops",
	"--device-write-bps", "--device-write-iops", "--dns", "--dns-option",
	"--dns-search", "--domainname", "--entrypoint", "--env", "--env-file", "--expose",
	"--gpus", "--group-add", "--health-cmd", "--health-interval", "--health-retries",
	"--health-start-period", "--health-start-interval", "--health-timeout",
	"--hostname", "--ip", "--ip6", "--ipc", "--isolation", "--kernel-memory", "--label",
	"--label-file", "--link", "--link-local-ip", "--log-driver", "--log-opt",
	"--mac-address", "--memory", "--memory-reservation", "--memory-swap",
	"--memory-swappiness", "--mount", "--name", "--network", "--net", "--network-alias",
	"--oom-score-adj", "--pid", "--pids-limit", "--platform", "--publish", "--pull",
	"--restart", "--runtime", "--security-opt", "--shm-size", "--stop-signal",
	"--stop-timeout", "--storage-opt", "--sysctl", "--tmpfs", "--ulimit", "--user",
	"--userns", "--uts", "--volume", "--volume-driver", "--volumes-from", "--workdir",
	"--pod", "--pod-id-file", "--arch", "--os", "--variant", "--secret", "--umask",
	"--uidmap", "--gidmap", "--subuidname", "--subgidname", "--timeout", "--tz",
	"--unsetenv", "--requires", "--sdnotify", "--seccomp-policy", "--init-path",
	"--personality", "--preserve-fds", "--passwd-entry", "--group-entry", "--hostuser",
	"--chrootdirs", "--decryption-key", "--cgroup-conf", "--cgroups", "--conmon-pidfile",
	"--image-volume", "--log-opt", "--retry", "--retry-delay", "--service-ports",
	"--index", "--detach-keys", NULL};
/* a c e h l m p u v w: attach, cpu-shares, env, hostname, label, memory,
 * publish, user, volume, workdir. */
static const struct optspec run_opts = {"acehlmpuvw", run_vlong};

/* docker/podman/compose `exec|run [opts] TARGET CMD...`: verb at argv[i]. */
static void container_cmd(struct ag_views *vs, const char *const *argv, size_t i,
			  const char *where, int depth)
{
	int run = strcmp(argv[i], "run") == 0;
	const struct optspec *o = run ? &run_opts : &exec_opts;
	const char *entrypoint = NULL;

	size_t t = skip_opts(argv, i + 1, o);
	if (!argv[t])
		return;
	/* --entrypoint replaces the image's program. */
	for (size_t k = i + 1; k < t && run; k++) {
		if (strcmp(argv[k], "--entrypoint") == 0 && k + 1 < t)
			entrypoint = argv[++k];
		else if (strncmp(argv[k], "--entrypoint=", 13) == 0)
			entrypoint = argv[k] + 13;
	}
	const char *const *cmd = argv + t + 1;
	if (entrypoint && *entrypoint) {
		size_t n = 0;
		while (cmd[n])
			n++;
		const char **v = take(vs, (n + 2) * sizeof *v, sizeof(void *));
		if (!v)
			return;
		v[0] = entrypoint;
		memcpy(v + 1, cmd, (n + 1) * sizeof *v);
		cmd = v;
	}
	if (*cmd)
		unwrap(vs, cmd, new_cmd(vs), where, depth + 1, 1);
}

static void docker_remote(struct ag_views *vs, const char *const *argv, int compose,
			  const char *where, int depth)
{
	size_t i = compose ? 0 : skip_opts(argv, 1, &docker_global_opts);

	if (!compose && argv[i] && strcmp(argv[i], "container") == 0)
		i++;
	else if (compose || (argv[i] && strcmp(argv[i], "compose") == 0))
		i = skip_opts(argv, i + 1, &compose_global_opts);
	if (argv[i] && (strcmp(argv[i], "exec") == 0 || strcmp(argv[i], "run") == 0))
		container_cmd(vs, argv, i, where, depth);
}

static void sudo_remote(struct ag_views *vs, const char *const *argv, const char *name,
			int depth)
{
	if (strcmp(name, "su") == 0) {
		/* su [opts] [user] -c CMD: the string runs in the user's shell. */
		for (size_t i = 1; argv[i]; i++) {
			const char *s = argv[i];
			const char *code = NULL;
			if ((strcmp(s, "-c") == 0 || strcmp(s, "--command") == 0) && argv[i + 1])
				code = argv[i + 1];
			else if (strncmp(s, "--command=", 10) == 0)
				code = s + 10;
			if (code) {
				split_shell(vs, code, strlen(code), 0, (unsigned)-1, "su", depth, 1);
				return;
			}
		}
		return;
	}
	static const char *const sudo_vlong[] = {
		"--close-from", "--chdir", "--group", "--host", "--prompt", "--chroot", "--role",
		"--type", "--command-timeout", "--other-user", "--user", NULL};
	static const struct optspec sudo_opts = {"CDghpRrtTUu", sudo_vlong};
	static const char *const pk_vlong[] = {"--user", NULL};
	static const struct optspec pk_opts = {"", pk_vlong};
	static const struct optspec doas_opts = {"uC", NULL};
	const struct optspec *o = strcmp(name, "sudo") == 0 ? &sudo_opts
				  : strcmp(name, "doas") == 0 ? &doas_opts : &pk_opts;
	size_t i = skip_opts(argv, 1, o);
	size_t lo = i;
	while (argv[i] && is_assignment(argv[i]))
		i++;
	vs->assign_lo = argv + lo;
	vs->assign_at = argv + i;
	if (argv[i])
		unwrap(vs, argv + i, new_cmd(vs), name, depth + 1, 1);
}

/* A wrapper's command, as an index into argv (0: none). */
static size_t wrapped(const char *name, const char *const *argv, const char **split)
{
	*split = NULL;
	if (strcmp(name, "env") == 0) {
		static const char *const v[] = {"--unset", "--chdir", "--split-string",
						"--default-signal", "--ignore-signal",
						"--block-signal", NULL};
		for (size_t i = 1; argv[i]; i++) {
			const char *s = argv[i];
			if (strcmp(s, "-S") == 0 || strcmp(s, "--split-string") == 0) {
				*split = argv[i + 1];
				return 0;
			}
			if (strncmp(s, "-S", 2) == 0 && s[2] && s[1] != '-') {
				*split = s + 2;
				return 0;
			}
			if (strncmp(s, "--split-string=", 15) == 0) {
				*split = s + 15;
				return 0;
			}
			if (strcmp(s, "--") == 0)
				return argv[i + 1] ? i + 1 : 0;
			if (is_assignment(s) || strcmp(s, "-") == 0)
				continue;
			if (s[0] != '-')
				return i;
			if (name_is(s, v) || strcmp(s, "-u") == 0 || strcmp(s, "-C") == 0 ||
			    strcmp(s, "-P") == 0)
				i += argv[i + 1] != NULL;
		}
		return 0;
	}
	if (strcmp(name, "nohup") == 0 || strcmp(name, "exec") == 0 ||
	    strcmp(name, "busybox") == 0) {
		size_t i = 1;
		if (strcmp(name, "exec") == 0)
			for (; argv[i] && argv[i][0] == '-'; i++)
				if (strcmp(argv[i], "-a") == 0 && argv[i + 1])
					i++;
		return argv[i] && argv[i][0] != '-' ? i : argv[i] && strcmp(argv[i], "--") == 0 &&
							  argv[i + 1] ? i + 1 : 0;
	}
	if (strcmp(name, "command") == 0) {
		size_t i = 1;
		for (; argv[i] && argv[i][0] == '-'; i++)
			if (strchr(argv[i], 'v') || strchr(argv[i], 'V'))
				return 0;   /* a lookup, nothing runs */
		return argv[i] ? i : 0;
	}
	static const char *const timeout_v[] = {"--signal", "--kill-after", NULL};
	static const struct optspec timeout_o = {"sk", timeout_v};
	static const char *const nice_v[] = {"--adjustment", NULL};
	static const struct optspec nice_o = {"n", nice_v};
	static const struct optspec ionice_o = {"cnp", NULL};
	static const char *const stdbuf_v[] = {"--input", "--output", "--error", NULL};
	static const struct optspec stdbuf_o = {"ioe", stdbuf_v};
	static const struct optspec setsid_o = {"", NULL};
	static const char *const time_v[] = {"--format", "--output", NULL};
	static const struct optspec time_o = {"fo", time_v};
	static const char *const xargs_v[] = {"--arg-file", "--delimiter", "--eof",
					      "--max-lines", "--max-args", "--max-procs",
					      "--max-chars", "--process-slot-var", NULL};
	static const struct optspec xargs_o = {"adEILnPs", xargs_v};
	static const struct optspec chrt_o = {"", NULL};
	size_t i;
	if (strcmp(name, "timeout") == 0) {
		i = skip_opts(argv, 1, &timeout_o);
		return argv[i] && argv[i + 1] ? i + 1 : 0;   /* after the duration */
	}
	if (strcmp(name, "chrt") == 0 || strcmp(name, "taskset") == 0) {
		i = skip_opts(argv, 1, &chrt_o);
		if (argv[i] && strchr(argv[i], 'p'))
			return 0;
		return argv[i] && argv[i + 1] ? i + 1 : 0;   /* after the priority/mask */
	}
	const struct optspec *o = strcmp(name, "nice") == 0     ? &nice_o
				  : strcmp(name, "ionice") == 0 ? &ionice_o
				  : strcmp(name, "stdbuf") == 0 ? &stdbuf_o
				  : strcmp(name, "setsid") == 0 ? &setsid_o
				  : strcmp(name, "time") == 0   ? &time_o
								: &xargs_o;
	if (strcmp(name, "ionice") == 0)
		for (size_t k = 1; argv[k] && argv[k][0] == '-'; k++)
			if (has_opt(argv[k], 'p', "--pid") || has_opt(argv[k], 'P', "--pgid"))
				return 0;
	i = skip_opts(argv, 1, o);
	return argv[i] ? i : 0;
}

/*
 * One command: its views under each of its names, then what it runs where
 * the library cannot see. `elsewhere`: this command itself runs where no
 * guard is, so its wrappers are unwrapped too.
 */
static void unwrap(struct ag_views *vs, const char *const *argv, unsigned cmd,
		   const char *where, int depth, int elsewhere)
{
	/* Assignments count only for the very command they were found before. */
	const char *const *lo = vs->assign_at == argv ? vs->assign_lo : NULL;
	vs->assign_lo = vs->assign_at = NULL;
	if (!argv || !argv[0] || vs->broken)
		return;
	if (depth > MAX_DEPTH) {
		vs->broken = "it runs commands nested too deep to be judged";
		return;
	}
	const char *name = base_of(argv[0]);
	if (depth > 0 && lo && lo < argv && (strcmp(name, "terraform") == 0 ||
					     strcmp(name, "tofu") == 0)) {
		/* TF_CLI_ARGS set on the command line that runs it elsewhere. */
		const char **env = take(vs, (size_t)(argv - lo + 1) * sizeof *env, sizeof(void *));
		size_t n = 0;
		for (const char *const *a = lo; env && a < argv; a++)
			if (is_assignment(*a))
				env[n++] = *a;
		if (env) {
			env[n] = NULL;
			argv = tf_env_args(vs, argv, env);
		}
	}
	if (depth > 0)
		add_view(vs, argv[0], argv, cmd, where);

	int code;
	size_t si = script_of(name, argv, &code);
	if (code && si && name_is(name, shells)) {
		if (elsewhere)
			split_shell(vs, argv[si], strlen(argv[si]), 0, (unsigned)-1,
				    where ? where : name, depth, elsewhere);
		return;
	}
	if (si) {
		/* The script is the program: judged with its own argv. A
		 * script an interpreter runs elsewhere runs unguarded too. */
		add_view(vs, argv[si], argv + si, cmd, where);
		add_stem(vs, argv[si], argv + si, cmd, where);
		if (name_is(name, pythons) && si >= 2 && strcmp(argv[si - 1], "-m") == 0)
			return;
		name = base_of(argv[si]);
		argv = argv + si;
	}

	if (name_is(name, ssh_names))
		ssh_remote(vs, argv, depth);
	else if (name_is(name, kube_names))
		kube_remote(vs, argv, name, depth);
	else if (name_is(name, docker_names))
		docker_remote(vs, argv, 0, name, depth);
	else if (name_is(name, compose_names))
		docker_remote(vs, argv, 1, name, depth);
	else if (name_is(name, sudo_names))
		sudo_remote(vs, argv, name, depth);
	else if (elsewhere && name_is(name, wrapper_names)) {
		const char *split;
		size_t i = wrapped(name, argv, &split);
		if (split)
			split_shell(vs, split, strlen(split), 0, (unsigned)-1, where, depth,
				    elsewhere);
		else if (i) {
			if (strcmp(name, "env") == 0) {
				vs->assign_lo = argv + 1;
				vs->assign_at = argv + i;
			}
			unwrap(vs, argv + i, strcmp(name, "busybox") == 0 ? cmd : new_cmd(vs),
			       where, depth + 1, elsewhere);
		}
	}
}

/* ---- terraform's arguments from the environment -------------------------- */

static const char *env_get(const char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* mergeEnvArgs in terraform's main.go: the words of the variable go right
 * after the first argument equal to the (last word of the) subcommand, or
 * first when there is none. */
static const char *const *tf_merge(struct ag_views *vs, const char *const *argv,
				   const char *value, const char *search)
{
	const char *const *extra = split_shell(vs, value, strlen(value), 1, 0, NULL, 0, 0);
	size_t n = 0, ne = 0, at = 1;

	if (!extra)
		return argv;
	while (argv[n])
		n++;
	while (extra[ne])
		ne++;
	if (search)
		for (size_t i = 1; i < n; i++)
			if (strcmp(argv[i], search) == 0) {
				at = i + 1;
				break;
			}
	const char **out = take(vs, (n + ne + 1) * sizeof *out, sizeof(void *));
	if (!out)
		return argv;
	memcpy(out, argv, at * sizeof *out);
	memcpy(out + at, extra, ne * sizeof *out);
	memcpy(out + at + ne, argv + at, (n - at + 1) * sizeof *out);
	return out;
}

static const char *const *tf_env_args(struct ag_views *vs, const char *const *argv,
				      const char *const *envp)
{
	static const char *const nested[] = {"state", "workspace", "providers", "metadata", NULL};
	const char *w1 = NULL, *w2 = NULL;

	if (!envp)
		return argv;
	for (size_t i = 1; argv[i]; i++) {
		if (argv[i][0] == '-')
			continue;
		if (!w1) {
			w1 = argv[i];
			if (!name_is(w1, nested))
				break;
		} else {
			w2 = argv[i];
			break;
		}
	}
	const char *search = w2 ? w2 : w1;
	const char *all = env_get(envp, "TF_CLI_ARGS");
	if (all && *all)
		argv = tf_merge(vs, argv, all, search);
	if (!w1)
		return argv;
	char name[128] = "TF_CLI_ARGS_";
	size_t n = strlen(name);
	for (const char *s = w1; *s && n < sizeof name - 2; s++)
		name[n++] = *s == '-' ? '_' : *s;
	for (const char *s = w2; s && *s && n < sizeof name - 2; s++) {
		if (s == w2)
			name[n++] = '_';
		name[n++] = *s == '-' ? '_' : *s;
	}
	name[n] = 0;
	const char *one = env_get(envp, name);
	if (one && *one)
		argv = tf_merge(vs, argv, one, search);
	return argv;
}

/* ---- the entry ----------------------------------------------------------- */

void ag_views_build(const struct ag_op *op, struct ag_views *vs, char *buf, size_t cap)
{
	static const char *const tf[] = {"terraform", "tofu", "opentofu", NULL};
	static const char *const no_argv[] = {NULL};   /* outlives the call, unlike a literal */

	vs->n = vs->ncmd = 0;
	vs->broken = NULL;
	vs->buf = buf;
	vs->cap = cap;
	vs->used = 0;
	vs->assign_lo = vs->assign_at = NULL;
	if (!op->path || !op->argv || !op->argv[0]) {
		add_view(vs, op->path, op->argv ? op->argv : no_argv, 0, NULL);
		vs->ncmd = 1;
		return;
	}
	unsigned c0 = new_cmd(vs);
	add_view(vs, op->path, op->argv, c0, NULL);
	if (op->real_path && strcmp(base_of(op->real_path), base_of(op->path)) != 0)
		add_view(vs, op->real_path, op->argv, c0, NULL);
	for (unsigned i = 0, n = vs->n; i < n; i++)
		if (name_is(base_of(vs->v[i].prog), tf) && op->envp)
			vs->v[i].argv = tf_env_args(vs, vs->v[i].argv, op->envp);
	/* git: a push forced by its configuration, an alias or its
	 * environment is judged as the forced push it is. */
	for (unsigned i = 0, n = vs->n; i < n; i++) {
		const char *b = base_of(vs->v[i].prog);
		if (strcmp(b, "git") != 0 && strncmp(b, "git-", 4) != 0)
			continue;
		if (ag_git_push_forced(vs->v[i].argv, op->envp, op->git_config, op->git_config_len,
				       op->git_config_cut, NULL, 0)) {
			static const char *const forced[] = {"git", "push", "--force", NULL};
			add_view(vs, "git", forced, c0, NULL);
		}
		break;
	}
	/* Everything else is about the command under its first name (and the
	 * file behind it: a symlink named tf). */
	unsigned n0 = vs->n;
	for (unsigned i = 0; i < n0 && !vs->broken; i++) {
		/* Under the view's own name: a symlink ssh-prod -> ssh. */
		const char *prog = vs->v[i].prog;
		const char *const *a = vs->v[i].argv;
		if (i > 0 && strcmp(base_of(prog), base_of(vs->v[0].prog)) == 0)
			continue;
		/* unwrap reads the name from argv[0]; give it the view's. */
		size_t argc = 0;
		while (a[argc])
			argc++;
		if (strcmp(base_of(a[0]), base_of(prog)) != 0) {
			const char **copy = take(vs, (argc + 1) * sizeof *copy, sizeof(void *));
			if (!copy)
				break;
			memcpy(copy, a, (argc + 1) * sizeof *copy);
			copy[0] = prog;
			a = copy;
		}
		unwrap(vs, a, c0, NULL, 0, op->unguarded);
	}
}
