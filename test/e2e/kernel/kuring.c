/* A small liburing program: set up a ring (t_kernel.sh expects the kernel
 * layer to refuse it unless a rule allows io_uring). */
#include <liburing.h>
#include <stdio.h>
#include <string.h>
int main(void) {
	struct io_uring r;
	int rc = io_uring_queue_init(4, &r, 0);
	printf("io_uring_queue_init: %s\n", rc < 0 ? strerror(-rc) : "ok");
	if (rc == 0) io_uring_queue_exit(&r);
	return rc < 0;
}
