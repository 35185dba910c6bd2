#include "agent/stunsvc.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define STUNSVC_BATCH 32
#define STUNSVC_MTU   2048 /* larger requests are not STUN we answer */

/* Receive buffers shared by every service: the loop is single-threaded. */
static uint8_t rx_bufs[STUNSVC_BATCH][STUNSVC_MTU];
static uint8_t tx_buf[STUNSVC_MTU];

static int sock_for(const struct stunsvc *s, const struct na_endpoint *local)
{
	for (unsigned i = 0; i < s->n_socks; i++)
		if (na_endpoint_equal(&s->locals[i], local))
			return s->fds[i];
	return -1;
}

void stunsvc_handle(struct stunsvc *s, unsigned idx, const uint8_t *buf, size_t len,
		    const struct na_endpoint *from)
{
	struct stun_server_reply r;
	int fd;

	s->stats.received++;
	if (stun_server_answer(&s->cfg, buf, len, from, &s->locals[idx], tx_buf,
			       sizeof(tx_buf), &r) != STUN_SERVER_SEND) {
		s->stats.dropped++;
		s->last_drop = r.why;
		return;
	}
	fd = sock_for(s, &r.from);
	if (fd < 0 || udp_send(fd, tx_buf, r.len, &r.to, NULL, 0) < 0) {
		s->stats.dropped++;
		s->last_drop = fd < 0 ? "no socket for the answer's source" : "send failed";
		return;
	}
	if (r.error_code)
		s->stats.errors_sent++;
	else
		s->stats.answered++;
}

static void on_readable(void *arg, uint32_t events)
{
	struct stunsvc_sock *a = arg;
	struct udp_msg msgs[STUNSVC_BATCH];
	int n;

	(void)events;
	for (unsigned i = 0; i < STUNSVC_BATCH; i++)
		msgs[i] = (struct udp_msg){ .buf = rx_bufs[i], .cap = STUNSVC_MTU };
	/* Bounded: a flood yields to the rest of the loop after a few batches. */
	for (int round = 0; round < 8; round++) {
		n = udp_recv(a->svc->fds[a->idx], msgs, STUNSVC_BATCH);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++)
			stunsvc_handle(a->svc, a->idx, msgs[i].buf, msgs[i].len, &msgs[i].from);
	}
}

static int bind_one(struct stunsvc *s, const struct na_endpoint *ep, struct na_endpoint *failed)
{
	int fd = udp_open(ep);

	if (fd < 0) {
		*failed = *ep;
		return fd;
	}
	/* A public STUN service takes bursts from many clients at once. */
	udp_set_buffers(fd, 4 << 20);
	s->fds[s->n_socks] = fd;
	s->locals[s->n_socks] = *ep;
	s->n_socks++;
	return 0;
}

int stunsvc_open(struct stunsvc *s, struct loop *loop, const struct na_endpoint *listen,
		 const struct na_endpoint *alternate, int listen_fd, struct na_endpoint *failed)
{
	int err = 0;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->cfg.primary = *listen;
	s->cfg.software = "natagent";
	if (listen_fd >= 0) {
		s->fds[0] = listen_fd;
		s->locals[0] = *listen;
		s->n_socks = 1;
		s->shared_first = true;
	} else {
		err = bind_one(s, listen, failed);
	}
	if (!err && alternate) {
		struct na_endpoint a1p2 = { listen->ip, alternate->port };
		struct na_endpoint a2p1 = { alternate->ip, listen->port };

		s->cfg.has_alternate = true;
		s->cfg.alternate = *alternate;
		err = bind_one(s, &a1p2, failed);
		if (!err)
			err = bind_one(s, &a2p1, failed);
		if (!err)
			err = bind_one(s, alternate, failed);
	}
	for (unsigned i = s->shared_first ? 1 : 0; !err && i < s->n_socks; i++) {
		struct stunsvc_sock *a = &s->socks[i];
		a->svc = s;
		a->idx = i;
		err = loop_add_fd(loop, s->fds[i], EPOLLIN, on_readable, a);
	}
	if (err) {
		stunsvc_close(s);
		return err;
	}
	return 0;
}

void stunsvc_close(struct stunsvc *s)
{
	for (unsigned i = s->shared_first ? 1 : 0; i < s->n_socks; i++) {
		loop_del_fd(s->loop, s->fds[i]);
		close(s->fds[i]);
	}
	s->n_socks = 0;
}
