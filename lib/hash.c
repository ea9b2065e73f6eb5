/* SHA-256 through nettle: small, well kept, and already on most systems
 * (GnuTLS depends on it), so preloading it costs little. */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <unistd.h>

#include "agentguard.h"

_Static_assert(sizeof(struct sha256_ctx) <= sizeof(((struct ag_sha256 *)0)->ctx),
	       "struct ag_sha256 too small for nettle's context");

void ag_sha256_init(struct ag_sha256 *h)
{
	sha256_init((struct sha256_ctx *)h->ctx);
}

void ag_sha256_update(struct ag_sha256 *h, const void *data, size_t len)
{
	sha256_update((struct sha256_ctx *)h->ctx, len, data);
}

void ag_sha256_digest(struct ag_sha256 *h, unsigned char out[32])
{
	sha256_digest((struct sha256_ctx *)h->ctx, SHA256_DIGEST_SIZE, out);
}

void ag_sha256_hex(struct ag_sha256 *h, char out[AG_HASH_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[SHA256_DIGEST_SIZE];

	sha256_digest((struct sha256_ctx *)h->ctx, sizeof d, d);
	for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = 0;
}

void ag_sha256_buf_hex(const void *data, size_t len, char out[AG_HASH_HEX])
{
	struct ag_sha256 h;

	ag_sha256_init(&h);
	ag_sha256_update(&h, data, len);
	ag_sha256_hex(&h, out);
}

int ag_sha256_file_hex(const char *path, char out[AG_HASH_HEX])
{
	struct ag_sha256 h;
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	ag_sha256_init(&h);
	while ((n = read(fd, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		ag_sha256_update(&h, buf, (size_t)n);
	}
	close(fd);
	ag_sha256_hex(&h, out);
	return 0;
}
