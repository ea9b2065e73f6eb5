/*
 * connect: connect() to IPv4, IPv6 and unix sockets. Rules can name hosts,
 * but connect() only sees addresses: getaddrinfo and gethostbyname are
 * watched to remember which name each address was looked up under.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "guard.h"
#include "wire.h"

/* ---- names of recently looked-up addresses -------------------------------- */

static struct name {
	char addr[INET6_ADDRSTRLEN];
	char host[256];
} names[64];
static unsigned names_next;
static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;

static void addr_text(const struct sockaddr *sa, char *out, size_t len, int *port)
{
	out[0] = 0;
	*port = -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)len);
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)len);
		*port = ntohs(in6->sin6_port);
	}
}

static void remember(const struct sockaddr *sa, const char *host)
{
	char a[INET6_ADDRSTRLEN];
	int port;

	addr_text(sa, a, sizeof a, &port);
	if (!a[0] || !host || strlen(host) >= sizeof names[0].host)
		return;
	/* A trylock: a fork taken while it is held must not hang the child. */
	if (pthread_mutex_trylock(&names_mu) != 0)
		return;
	struct name *n = &names[names_next++ % (sizeof names / sizeof names[0])];
	snprintf(n->addr, sizeof n->addr, "%s", a);
	snprintf(n->host, sizeof n->host, "%s", host);
	pthread_mutex_unlock(&names_mu);
}

static int name_of(const char *addr, char *host, size_t len)
{
	int found = 0;

	if (pthread_mutex_trylock(&names_mu) != 0)
		return 0;
	/* Newest first: an address may have been looked up under several names. */
	for (unsigned i = 0; i < sizeof names / sizeof names[0] && !found; i++) {
		struct name *n = &names[(names_next - 1 - i) % (sizeof names / sizeof names[0])];
		if (n->addr[0] && strcmp(n->addr, addr) == 0) {
			snprintf(host, len, "%s", n->host);
			found = 1;
		}
	}
	pthread_mutex_unlock(&names_mu);
	return found;
}

AG_HOOK(int, getaddrinfo, (const char *node, const char *service,
			   const struct addrinfo *hints, struct addrinfo **res),
	(node, service, hints, res))
{
	int rc = AG_REAL(getaddrinfo)(node, service, hints, res);
	if (rc == 0 && node && res)
		for (struct addrinfo *ai = *res; ai; ai = ai->ai_next)
			if (ai->ai_addr)
				remember(ai->ai_addr, node);
	return rc;
}

AG_HOOK(struct hostent *, gethostbyname, (const char *name), (name))
{
	struct hostent *h = AG_REAL(gethostbyname)(name);
	if (h && h->h_addrtype == AF_INET && name)
		for (char **a = h->h_addr_list; *a; a++) {
			struct sockaddr_in in = {.sin_family = AF_INET};
			memcpy(&in.sin_addr, *a, sizeof in.sin_addr);
			remember((struct sockaddr *)&in, name);
		}
	return h;
}

/* ---- connect --------------------------------------------------------------- */

/* The operation a connection to sa is; the buffers are the caller's. */
static void connect_op(struct ag_call *c, const struct sockaddr *sa, socklen_t len,
		       char *addr, char *host, size_t hostlen, char *unix_path)
{
	if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = (const void *)sa;
		size_t n = len > offsetof(struct sockaddr_un, sun_path)
			   ? len - offsetof(struct sockaddr_un, sun_path) : 0;
		if (n > sizeof un->sun_path)
			n = sizeof un->sun_path;
		if (n && un->sun_path[0] == 0) {
			/* The abstract namespace: "@name". */
			unix_path[0] = '@';
			memcpy(unix_path + 1, un->sun_path + 1, n - 1);
			unix_path[n] = 0;
		} else {
			memcpy(unix_path, un->sun_path, n);
			unix_path[n] = 0;
		}
		c->op.unix_path = unix_path;
	} else {
		addr_text(sa, addr, INET6_ADDRSTRLEN, &c->op.port);
		c->op.addr = addr;
		if (name_of(addr, host, hostlen))
			c->op.host = host;
	}
}

#define UNIX_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) + 2)

static __attribute__((noinline)) int guarded_connect(int fd, const struct sockaddr *sa,
						     socklen_t len)
{
	struct ag_call c;
	char addr[INET6_ADDRSTRLEN], host[256], unix_path[UNIX_MAX];

	ag_begin(&c, AG_OP_CONNECT);
	connect_op(&c, sa, len, addr, host, sizeof host, unix_path);
	if (ag_check(&c) < 0)
		return ag_refuse(&c);
	int rc = AG_REAL(connect)(fd, sa, len);
	int e = errno;
	/* A database connection, perhaps: wire.c looks at its first write. */
	if (rc == 0 || e == EINPROGRESS)
		ag_wire_connected(fd, sa, len);
	errno = e;
	return ag_end(&c, rc);
}

int ag_judge_address(const struct sockaddr *sa, socklen_t len)
{
	struct ag_call c;
	char addr[INET6_ADDRSTRLEN], host[256], unix_path[UNIX_MAX];

	if (!sa || len < sizeof(sa_family_t) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6 && sa->sa_family != AF_UNIX))
		return 0;
	ag_begin(&c, AG_OP_CONNECT);
	connect_op(&c, sa, len, addr, host, sizeof host, unix_path);
	if (ag_check(&c) < 0)
		return ag_refuse(&c);
	ag_release(&c);
	return 0;
}

/* Only the address families rules can name are judged. */
AG_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (!sa || len < sizeof(sa_family_t) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6 && sa->sa_family != AF_UNIX) ||
	    AG_OWN_WORK())
		return AG_REAL(connect)(fd, sa, len);
	return guarded_connect(fd, sa, len);
}

/* ---- connecting by sending ------------------------------------------------
 * TCP Fast Open: sendto(fd, buf, n, MSG_FASTOPEN, addr) and sendmsg with
 * msg_name and MSG_FASTOPEN open the connection and send in one call. The
 * address is judged as connect() would judge it; refused, nothing is sent.
 */
static __attribute__((noinline)) ssize_t guarded_sendto(int fd, const void *buf, size_t len,
							int flags, const struct sockaddr *to,
							socklen_t tolen)
{
	if (ag_judge_address(to, tolen) < 0)
		return -1;
	return AG_REAL(sendto)(fd, buf, len, flags, to, tolen);
}

ssize_t ag_sendto_connect(int fd, const void *buf, size_t len, int flags,
			  const struct sockaddr *to, socklen_t tolen)
{
	return guarded_sendto(fd, buf, len, flags, to, tolen);
}

static __attribute__((noinline)) ssize_t guarded_sendmsg(int fd, const struct msghdr *msg,
							 int flags)
{
	if (ag_judge_address(msg->msg_name, msg->msg_namelen) < 0)
		return -1;
	return AG_REAL(sendmsg)(fd, msg, flags);
}

static __attribute__((noinline)) ssize_t wire_sendmsg(int fd, const struct msghdr *msg, int flags,
						      const void *ra)
{
	return ag_wire_writev(fd, msg->msg_iov, (int)msg->msg_iovlen, AG_WIRE_SEND, flags, ra);
}

AG_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	/* A database connection wire.c reads (ancillary data is no part of
	 * either protocol: such a call passes as it is). */
	if (AG_WIRE_ON(fd) && msg && !msg->msg_name && !msg->msg_controllen && !AG_OWN_WORK() &&
	    !ag_thread.in_sql)
		return wire_sendmsg(fd, msg, flags, __builtin_return_address(0));
	if (!(flags & MSG_FASTOPEN) || !msg || !msg->msg_name || AG_OWN_WORK())
		return AG_REAL(sendmsg)(fd, msg, flags);
	return guarded_sendmsg(fd, msg, flags);
}
