#include "agent/discovery.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent/udp.h"

static void flush(struct discovery *d)
{
	const struct nat_behavior_send *s;

	/* A send that fails is a lost datagram to STUN: retransmission
	 * covers it. */
	while (nat_behavior_next_send(&d->b, &s))
		udp_send(d->fds[s->sock], s->data, s->len, &s->to, NULL, 0);
}

static void finish(struct discovery *d, uint64_t now)
{
	d->servers_ns = now - d->started;
	d->done = true;
	loop_timer_cancel(d->loop, &d->timer);
	if (d->done_fn)
		d->done_fn(d->arg, d);
}

/* After the behaviour tests: one Test I to each further server. */
static void next_server(struct discovery *d, uint64_t now)
{
	struct stun_client_event ev;

	while (d->next_server < d->n_servers) {
		struct discovery_server *s = &d->servers[d->next_server];
		struct stun_client_request req = { .to = &s->server };

		d->txn = stun_client_start(&d->probe, &req, now, &ev);
		if (d->txn) {
			udp_send(d->fds[0], ev.data, ev.len, &ev.to, NULL, 0);
			loop_timer_set(d->loop, &d->timer, stun_client_next_deadline(&d->probe));
			return;
		}
		d->next_server++;
	}
	finish(d, now);
}

static void behavior_progress(struct discovery *d, uint64_t now)
{
	flush(d);
	if (!nat_behavior_done(&d->b)) {
		loop_timer_set(d->loop, &d->timer, nat_behavior_deadline(&d->b));
		return;
	}
	const struct nat_report *r = nat_behavior_report(&d->b);
	d->servers[0].answered = r->has_mapped;
	d->servers[0].mapped = r->mapped;
	d->servers[0].rtt_ns = r->rtt_ns;
	d->started = now;
	d->next_server = 1;
	next_server(d, now);
}

static void on_timer(void *arg, uint64_t now)
{
	struct discovery *d = arg;
	struct stun_client_event ev;

	if (!nat_behavior_done(&d->b)) {
		nat_behavior_on_timer(&d->b, now);
		behavior_progress(d, now);
		return;
	}
	for (int i = 0; i < 16; i++) {
		switch (stun_client_on_timer(&d->probe, now, &ev)) {
		case STUN_CLIENT_SEND:
			udp_send(d->fds[0], ev.data, ev.len, &ev.to, NULL, 0);
			continue;
		case STUN_CLIENT_TIMEOUT:
		case STUN_CLIENT_ERROR:
			d->next_server++;
			next_server(d, now);
			return;
		default:
			loop_timer_set(d->loop, &d->timer, stun_client_next_deadline(&d->probe));
			return;
		}
	}
}

static bool input(struct discovery *d, unsigned sock, const uint8_t *buf, size_t len,
		  const struct na_endpoint *from)
{
	uint64_t now = loop_now();
	struct stun_client_event ev;

	if (d->done)
		return false;
	if (!nat_behavior_done(&d->b)) {
		if (!nat_behavior_input(&d->b, sock, buf, len, from, now))
			return false;
		behavior_progress(d, now);
		return true;
	}
	if (sock != 0)
		return false;
	switch (stun_client_input(&d->probe, buf, len, from, now, &ev)) {
	case STUN_CLIENT_SUCCESS: {
		struct discovery_server *s = &d->servers[d->next_server];
		s->answered = true;
		s->mapped = ev.result.mapped;
		s->rtt_ns = ev.result.rtt;
	}
		/* fall through */
	case STUN_CLIENT_ERROR:
		d->next_server++;
		next_server(d, now);
		return true;
	default:
		return false;
	}
}

bool discovery_input(struct discovery *d, const uint8_t *buf, size_t len,
		     const struct na_endpoint *from)
{
	return input(d, 0, buf, len, from);
}

static void on_probe_readable(void *arg, uint32_t events)
{
	struct discovery *d = arg;
	uint8_t buf[1500];
	struct udp_msg m = { .buf = buf, .cap = sizeof(buf) };

	(void)events;
	for (unsigned k = 1; k < d->n_socks; k++) {
		for (int i = 0; i < 8 && udp_recv(d->fds[k], &m, 1) == 1; i++)
			input(d, k, m.buf, m.len, &m.from);
	}
}

int discovery_start(struct discovery *d, struct loop *loop, int fd0,
		    const struct na_endpoint *servers, unsigned n_servers,
		    struct nat_behavior_opts *opts, discovery_done_fn done, void *arg)
{
	int err;

	memset(d, 0, sizeof(*d));
	d->loop = loop;
	d->done_fn = done;
	d->arg = arg;
	loop_timer_init(&d->timer, on_timer, d);
	if (!n_servers)
		return -EINVAL;
	if (n_servers > DISCOVERY_MAX_SERVERS)
		n_servers = DISCOVERY_MAX_SERVERS;
	for (unsigned i = 0; i < n_servers; i++)
		d->servers[i].server = servers[i];
	d->n_servers = n_servers;
	d->fds[0] = fd0;
	err = udp_local(fd0, &opts->local[0]);
	if (err < 0)
		return err;
	/* A wildcard-bound socket: the address packets to the server leave
	 * from is what a mapped address must be compared with. */
	static const uint8_t zero[16];
	if (!memcmp(opts->local[0].ip.v6, zero,
		    opts->local[0].ip.family == AF_INET ? 4 : 16)) {
		err = udp_route_source(&servers[0], &opts->local[0].ip);
		if (err < 0)
			return err;
	}
	d->n_socks = 1;
	for (unsigned k = 1; k < opts->n_socks && k < NAT_BEH_MAX_SOCKS; k++) {
		struct na_endpoint ep = { opts->local[0].ip, 0 };
		int fd = udp_open(&ep);
		if (fd < 0) {
			err = fd;
			goto fail;
		}
		d->fds[k] = fd;
		d->n_socks++;
		udp_local(fd, &opts->local[k]);
		err = loop_add_fd(loop, fd, EPOLLIN, on_probe_readable, d);
		if (err < 0)
			goto fail;
	}
	opts->n_socks = d->n_socks;
	opts->server = servers[0];
	stun_client_init(&d->probe, &opts->probe, opts->rand, opts->rand_ctx);
	d->started = loop_now();
	nat_behavior_start(&d->b, opts, d->started);
	behavior_progress(d, d->started);
	return 0;
fail:
	discovery_stop(d);
	return err;
}

const struct nat_report *discovery_report(const struct discovery *d)
{
	return nat_behavior_report(&d->b);
}

void discovery_stop(struct discovery *d)
{
	loop_timer_cancel(d->loop, &d->timer);
	for (unsigned k = 1; k < d->n_socks; k++) {
		loop_del_fd(d->loop, d->fds[k]);
		close(d->fds[k]);
	}
	d->n_socks = 1;
}
