/* Starts a program every way a C program can, so the end-to-end tests can
 * check each path is guarded: spawner MODE PROGRAM ARGS...
 *   fork      fork + execv          vfork   vfork + execv (then the parent
 *   spawn     posix_spawn                   deletes ARGV's last file: it
 *   spawnp    posix_spawnp                  must still be guarded)
 *   threads   4 threads, each posix_spawn
 *   system    unsetenv("LD_PRELOAD") and every AGENTGUARD_*, then system(ARGS joined)
 *   popen     same, then popen
 *   execle    execle with an empty environment */
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static char **args;

static int wait_for(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void *spawn_one(void *unused)
{
	pid_t pid;
	(void)unused;
	if (posix_spawn(&pid, args[0], NULL, NULL, args, environ) == 0)
		wait_for(pid);
	return NULL;
}

static void strip_env(void)
{
	unsetenv("LD_PRELOAD");
	for (char **e = environ; *e;) {
		if (strncmp(*e, "AGENTGUARD_", 11) == 0) {
			char name[64];
			size_t n = strcspn(*e, "=");
			snprintf(name, sizeof name, "%.*s", (int)n, *e);
			unsetenv(name);
		} else {
			e++;
		}
	}
}

static char *joined(char **v)
{
	static char buf[4096];
	buf[0] = 0;
	for (; *v; v++) {
		strcat(buf, *v);
		if (v[1])
			strcat(buf, " ");
	}
	return buf;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *mode = argv[1];
	args = argv + 2;
	pid_t pid;
	int rc;

	if (!strcmp(mode, "fork")) {
		if ((pid = fork()) == 0) {
			execv(args[0], args);
			_exit(127);
		}
		return wait_for(pid);
	}
	if (!strcmp(mode, "vfork")) {
		if ((pid = vfork()) == 0) {
			execv(args[0], args);
			_exit(127);
		}
		rc = wait_for(pid);
		/* After a vfork child exec'd, the parent must still be guarded. */
		if (unlink(args[argc - 3]) == 0)
			return 99;
		return rc;
	}
	if (!strcmp(mode, "spawn") || !strcmp(mode, "spawnp")) {
		rc = (mode[5] ? posix_spawnp : posix_spawn)(&pid, args[0], NULL, NULL, args, environ);
		if (rc) {
			fprintf(stderr, "spawner: posix_spawn: %s\n", strerror(rc));
			return 126;
		}
		return wait_for(pid);
	}
	if (!strcmp(mode, "threads")) {
		pthread_t t[4];
		for (int i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, spawn_one, NULL);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		return 0;
	}
	if (!strcmp(mode, "system")) {
		strip_env();
		rc = system(joined(args));
		return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
	}
	if (!strcmp(mode, "popen")) {
		strip_env();
		FILE *f = popen(joined(args), "r");
		if (!f)
			return 126;
		char line[256];
		while (fgets(line, sizeof line, f))
			fputs(line, stdout);
		rc = pclose(f);
		return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
	}
	if (!strcmp(mode, "execle")) {
		char *empty[] = {NULL};
		execle(args[0], args[0], args[1], args[2], (char *)NULL, empty);
		perror("spawner: execle");
		return 126;
	}
	return 2;
}
