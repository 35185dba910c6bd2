/* sd_notify(3) by hand: the protocol is a single datagram, and a library
 * for it would be a dependency for twenty lines. */
#include "agent/sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdnotify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t n, len = strlen(state);
	socklen_t salen;
	ssize_t sent;
	int fd, err = 0;

	if (!path || !*path)
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sun.sun_path))
		return -EINVAL;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = '\0'; /* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sent = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sun, salen);
	if (sent < 0)
		err = -errno;
	else if ((size_t)sent != len)
		err = -EMSGSIZE;
	close(fd);
	return err;
}
