/* N hooked calls that no rule matches: unlink() of a name that does not
 * exist, relative to the current directory (a scratch dir the rules leave
 * alone). Prints nothing; the driver times it with and without the guard. */
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;

	for (long i = 0; i < n; i++)
		unlink("agentguard-bench-no-such-file");
	return 0;
}
