/* Proxy mode: natagent as the transport under an existing UDP VPN.
 *
 * Each peer has one local UDP socket bound to its LocalEndpoint. The local VPN
 * (wireguard-go, OpenVPN) uses that address as the peer's endpoint; what it
 * sends there crosses the tunnel as proxied flow 1, and what arrives from the
 * far agent is delivered to ForwardTo from this same socket. So the VPN sees
 * every packet of a peer come from one steady address, the one it sends to,
 * whatever path the tunnel takes underneath. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/log.h"
#include "agent/udp.h"

#define PROXY_CTX   1 /* the one proxied UDP flow per peer */
#define PROXY_BATCH 64

static uint8_t bufs[PROXY_BATCH][2048];

static void on_readable(void *arg, uint32_t events)
{
	struct peer *p = arg;
	struct udp_msg msgs[PROXY_BATCH];

	(void)events;
	for (unsigned i = 0; i < PROXY_BATCH; i++)
		msgs[i] = (struct udp_msg){ .buf = bufs[i], .cap = sizeof(bufs[i]) };
	for (int round = 0; round < 4; round++) {
		int n = udp_recv(p->proxy_fd, msgs, PROXY_BATCH);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++)
			if (msgs[i].len)
				peer_send(p, PROXY_CTX, msgs[i].buf, msgs[i].len);
		if (p->conn && p->conn->dirty)
			agent_flush(p->conn);
	}
}

void proxy_deliver(struct peer *p, const uint8_t *data, size_t len)
{
	if (udp_send(p->proxy_fd, data, len, &p->a->cfg->forward_to, NULL, 0) < 0) {
		p->st.drop_bad++;
		return;
	}
	p->st.rx_dgrams++;
	p->st.rx_bytes += len;
}

int proxy_bind(const struct na_endpoint *ep)
{
	int fd = udp_open(ep);

	if (fd >= 0)
		udp_set_buffers(fd, 4 << 20);
	return fd;
}

int proxy_attach(struct peer *p, int fd)
{
	int err = loop_add_fd(p->a->loop, fd, EPOLLIN, on_readable, p);

	if (err < 0)
		return err;
	p->proxy_fd = fd;
	return 0;
}

int proxy_detach(struct peer *p)
{
	int fd = p->proxy_fd;

	if (fd >= 0)
		loop_del_fd(p->a->loop, fd);
	p->proxy_fd = -1;
	return fd;
}

int proxy_open(struct agent *a)
{
	char ep[NA_ENDPOINT_STRLEN];

	for (unsigned i = 0; i < a->n_peers; i++) {
		struct peer *p = a->peers[i];
		int fd = proxy_bind(&p->cfg->local_endpoint), err;

		na_endpoint_str(&p->cfg->local_endpoint, ep, sizeof(ep));
		if (fd < 0) {
			log_err("%s: peer %s: cannot bind LocalEndpoint %s: %s", a->cfg->name, p->name,
				ep, strerror(-fd));
			return fd;
		}
		err = proxy_attach(p, fd);
		if (err < 0) {
			close(fd);
			return err;
		}
		log_info("%s: peer %s: local VPN endpoint %s", a->cfg->name, p->name, ep);
	}
	return 0;
}

void proxy_close(struct agent *a)
{
	for (unsigned i = 0; i < a->n_peers; i++) {
		int fd = proxy_detach(a->peers[i]);

		if (fd >= 0)
			close(fd);
	}
}
