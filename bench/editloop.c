/* An editor's saves: ROUNDS passes over the N files FILE0..FILE{N-1} in the
 * current directory, each an open for writing without truncation, a write
 * at the start and a close. The first pass is each file's first writable
 * open in the session (a `write`: kept before the open returns); the later
 * ones reopen files the session already kept. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 500, rounds = argc > 2 ? atoi(argv[2]) : 4;
	char name[32];
	static const char line[] = "/* edited */\n";

	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof name, "file%d.c", i);
			int fd = open(name, O_WRONLY);
			if (fd < 0 || pwrite(fd, line, sizeof line - 1, 0) != sizeof line - 1) {
				perror(name);
				return 1;
			}
			close(fd);
		}
	return 0;
}
