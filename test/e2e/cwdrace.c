/* cwdrace A B N: one thread moves the cwd between directories A and B as
 * fast as it can while another deletes f0..f(N-1) by plain names, relative
 * to the cwd. Both directories hold every name; the guard must judge each
 * delete in the directory it really happens in (the test compares the
 * audit log with what is left). Prints how many deletes it made. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *dirs[2];
static volatile int stop;
static volatile unsigned moves;

static void *mover(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !stop; i++)
		if (chdir(dirs[i & 1]) != 0)
			perror("chdir");
		else
			moves++;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	dirs[0] = argv[1];
	dirs[1] = argv[2];
	int n = atoi(argv[3]), done = 0;
	pthread_t t;

	if (pthread_create(&t, NULL, mover, NULL) != 0)
		return 1;
	while (moves < 100)   /* racing from the first delete */
		sched_yield();
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%d", i);
		if (unlink(name) == 0)
			done++;
	}
	stop = 1;
	pthread_join(t, NULL);
	printf("%d\n", done);
	return 0;
}
