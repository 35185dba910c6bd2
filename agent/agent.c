#include "agent/agent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent/log.h"
#include "agent/pathmgr.h"
#include "agent/rdvclient.h"
#include "agent/tunpath.h"
#include "agent/udp.h"
#include "nat/stun.h"
#include "nat/stun_server.h"
#include "quic/dgram.h"

#define RX_BATCH 64
#define TX_BATCH 64

/* One agent per process and a single-threaded loop: the packet buffers are
 * static, allocated once, never per packet. */
static uint8_t rx_bufs[RX_BATCH][2048];
static uint8_t tx_bufs[TX_BATCH][QUIC_MAX_PKT];
static uint8_t reply_buf[QUIC_MAX_PKT];

static void path_to_endpoints(const struct quic_path *p, struct na_endpoint *local,
			      struct na_endpoint *remote)
{
	na_endpoint_from_sockaddr(local, (const struct sockaddr *)&p->local);
	na_endpoint_from_sockaddr(remote, (const struct sockaddr *)&p->remote);
}

/* The socket bound to local's family and port (sessions that moved use
 * another port than ListenPort), else the family's ListenPort socket. */
static int fd_for(struct agent *a, const struct na_endpoint *local)
{
	for (unsigned i = 0; i < AGENT_MAX_SOCKS; i++)
		if (a->socks[i].fd >= 0 && a->socks[i].family == local->ip.family &&
		    a->socks[i].port == local->port)
			return a->socks[i].fd;
	return a->socks[local->ip.family == AF_INET6 ? 1 : 0].fd;
}

int agent_fd(struct agent *a, uint8_t family, uint16_t port)
{
	struct na_endpoint local = { .ip.family = family, .port = port };

	if (family != AF_INET && family != AF_INET6)
		return -1;
	return fd_for(a, &local);
}

static void on_timer(void *arg, uint64_t now)
{
	struct conn *c = arg;

	quic_session_handle_expiry(c->s, now);
	agent_flush(c);
}

static void unlink_conn(struct agent *a, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->queued) {
		/* Still on the dirty list (flushed by its timer meanwhile):
		 * that list is short, a turn's worth of work. */
		for (struct conn **pp = &a->dirty_head; *pp; pp = &(*pp)->dirty_next) {
			if (*pp == c) {
				*pp = c->dirty_next;
				break;
			}
		}
	}
}

void conn_mark(struct conn *c)
{
	c->dirty = true;
	if (c->queued)
		return;
	c->queued = true;
	c->dirty_next = c->a->dirty_head;
	c->a->dirty_head = c;
}

/* Sends everything the session has to send now. */
static void flush_out(struct conn *c)
{
	struct agent *a = c->a;
	struct udp_out out[TX_BATCH];
	uint64_t now = loop_now();
	unsigned n = 0;
	struct na_endpoint from = { .ip.family = AF_INET };

	c->dirty = false;
	for (;;) {
		struct quic_tx tx;
		ssize_t len = quic_session_write(c->s, tx_bufs[n], QUIC_MAX_PKT, &tx, now);
		struct na_endpoint local;

		if (len <= 0)
			break;
		if (relay_is_path(&tx.path.remote)) {
			relay_send(a, &tx.path.remote, tx_bufs[n], (size_t)len);
			continue;
		}
		c->tx_direct = now;
		path_to_endpoints(&tx.path, &local, &out[n].to);
		/* A batch goes out on one socket: flush when the socket changes
		 * (a path validation sends on the new path and the old). */
		if (n && (local.ip.family != from.ip.family || local.port != from.port)) {
			udp_send_batch(fd_for(a, &from), out, n);
			memcpy(tx_bufs[0], tx_bufs[n], (size_t)len);
			out[0].to = out[n].to;
			n = 0;
		}
		from = local;
		out[n].buf = tx_bufs[n];
		out[n].len = (size_t)len;
		out[n].src = local.ip;
		out[n].tos = tx.ecn;
		if (++n == TX_BATCH) {
			udp_send_batch(fd_for(a, &from), out, n);
			n = 0;
		}
	}
	if (n)
		udp_send_batch(fd_for(a, &from), out, n);
}

void agent_flush(struct conn *c)
{
	struct agent *a = c->a;

	/* What this queues in other sessions (relayed packets go into the
	 * rendezvous session) marks them dirty: the turn's end flushes them. */
	flush_out(c);
	if (quic_session_is_dead(c->s)) {
		loop_timer_cancel(a->loop, &c->timer);
		conn_dead(c);
		unlink_conn(a, c);
		quic_session_free(c->s);
		free(c);
		return;
	}
	loop_timer_set(a->loop, &c->timer, quic_session_expiry(c->s));
}

void agent_flush_dirty(struct agent *a)
{
	struct conn *c;

	/* Only the sessions that have work: a rendezvous holds many idle ones. */
	while ((c = a->dirty_head)) {
		a->dirty_head = c->dirty_next;
		c->dirty_next = NULL;
		c->queued = false;
		if (c->dirty)
			agent_flush(c);
	}
}

static void turn_end(void *arg)
{
	agent_flush_dirty(arg);
}

void agent_conn_adopt(struct agent *a, struct conn *c)
{
	c->a = a;
	loop_timer_init(&c->timer, on_timer, c);
	c->prev = NULL;
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
}

static struct conn *conn_new(struct agent *a, struct quic_session *s)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s = s;
	c->created = loop_now();
	agent_conn_adopt(a, c);
	return c;
}

bool agent_path(struct agent *a, const struct na_endpoint *remote, struct quic_path *path)
{
	struct na_endpoint local = { .port = a->port };

	local.ip.family = remote->ip.family;
	if (fd_for(a, &local) < 0 || udp_route_source(remote, &local.ip) < 0)
		return false;
	na_endpoint_to_sockaddr(&local, &path->local);
	na_endpoint_to_sockaddr(remote, &path->remote);
	return true;
}

/* ---- QUIC callbacks: they only queue; the turn's end flushes ---- */

static void on_up(struct quic_session *s)
{
	struct conn *c = quic_session_user(s);

	if (c && c->role == CONN_RDV_UP)
		rdvclient_up(c);
	else if (c)
		conn_up(c);
}

static void on_stream(struct quic_session *s, const uint8_t *data, size_t len)
{
	struct conn *c = quic_session_user(s);

	if (c && c->role == CONN_RDV_UP)
		rdvclient_stream(c, data, len);
	else if (c && c->role == CONN_RDV_REG)
		rdv_server_stream(c, data, len);
	else if (c && c->role == CONN_PEER && c->peer)
		peerctl_stream(c, data, len);
}

static void on_datagram(struct quic_session *s, const uint8_t *data, size_t len)
{
	struct conn *c = quic_session_user(s);
	struct peer *p = c ? c->peer : NULL;
	const uint8_t *payload;
	uint64_t ctx;
	size_t plen;

	if (c && c->role == CONN_RDV_UP) {
		rdvclient_datagram(c, data, len);
		return;
	}
	if (c && c->role == CONN_RDV_REG) {
		rdv_server_datagram(c, data, len);
		return;
	}
	if (!p)
		return;
	if (!quic_dgram_decode(data, len, &ctx, &payload, &plen)) {
		p->st.drop_bad++;
		return;
	}
	if (ctx == QUIC_DGRAM_CTX_IP && c->a->tun) {
		tunpath_deliver(p, payload, plen);
		return;
	}
	if (ctx == 1 && p->proxy_fd >= 0) {
		proxy_deliver(p, payload, plen);
		return;
	}
	p->st.drop_bad++;
}

static void on_path(struct quic_session *s, enum quic_path_event ev, const struct quic_path *path)
{
	struct conn *c = quic_session_user(s);
	struct na_endpoint local, remote;
	char l[NA_ENDPOINT_STRLEN], r[NA_ENDPOINT_STRLEN];

	if (c->role == CONN_RDV_REG) {
		if (ev == QUIC_PATH_MIGRATED)
			rdv_server_path(c);
		return;
	}
	if (c->role == CONN_PEER)
		pathmgr_path_event(c, ev, path);
	path_to_endpoints(path, &local, &remote);
	log_info("%s: %s %s: path %s -> %s %s", c->a->cfg->name,
		 c->role == CONN_RDV_UP ? "rendezvous" : "peer", c->peer ? c->peer->name : "",
		 na_endpoint_str(&local, l, sizeof(l)), na_endpoint_str(&remote, r, sizeof(r)),
		 ev == QUIC_PATH_VALIDATED ? "validated" : ev == QUIC_PATH_FAILED ? "failed" : "in use");
}

static const struct quic_session_ops ops = {
	.up = on_up,
	.datagram = on_datagram,
	.stream = on_stream,
	.path = on_path,
};

static bool accept_key(void *arg, const uint8_t key[QUIC_KEY_LEN])
{
	return peer_by_key(arg, key) != NULL || rdv_server_accepts(arg, key);
}

/* ---- the shared sockets ---- */

void agent_input_quic(struct agent *a, const uint8_t *pkt, size_t len,
		      const struct quic_path *path, uint8_t ecn)
{
	struct quic_session *s = NULL;
	size_t outlen = 0;
	struct conn *c;

	switch (quic_demux_input(a->demux, pkt, len, path, ecn, loop_now(), &s,
				 reply_buf, sizeof(reply_buf), &outlen)) {
	case QUIC_DEMUX_ACCEPTED:
		c = conn_new(a, s);
		if (!c) {
			quic_session_free(s);
			return;
		}
		quic_session_set_user(s, c);
		conn_mark(c);
		break;
	case QUIC_DEMUX_SESSION:
		c = quic_session_user(s);
		if (c) {
			if (!relay_is_path(&path->remote))
				c->rx_direct = loop_now();
			conn_mark(c);
		}
		break;
	case QUIC_DEMUX_REPLY:
		if (relay_is_path(&path->remote)) {
			relay_send(a, &path->remote, reply_buf, outlen);
		} else {
			struct na_endpoint local, remote;
			path_to_endpoints(path, &local, &remote);
			udp_send(fd_for(a, &local), reply_buf, outlen, &remote, &local.ip, 0);
		}
		break;
	case QUIC_DEMUX_DROP:
		break;
	}
}

static void input_quic(struct agent *a, const struct agent_sock *sock, struct udp_msg *m)
{
	struct na_endpoint local = { .ip = m->local, .port = sock->port };
	struct quic_path path;

	na_endpoint_to_sockaddr(&local, &path.local);
	na_endpoint_to_sockaddr(&m->from, &path.remote);
	agent_input_quic(a, m->buf, m->len, &path, m->tos & 3);
	/* Packets relayed to us came out of that read: feed them in now. */
	relay_drain(a);
}

/* STUN on the shared port: AutoNAT dial-backs to us, our own discovery's
 * answers, else requests from others, answered with their reflexive
 * address (peers measure RTT and learn addresses this way; the XDP program
 * answers these first when it runs). */
static void input_stun(struct agent *a, const struct agent_sock *sock, struct udp_msg *m)
{
	struct stun_server_config sc = { .primary = { m->local, sock->port } };
	struct stun_server_reply r;
	struct stun_msg msg;

	/* AutoNAT dial-backs first: a fixed-size indication, cheap to rule out. */
	if (autonat_input(a, m->buf, m->len, &m->from))
		return;
	if (a->disc_running && sock == &a->socks[0] &&
	    discovery_input(&a->disc, m->buf, m->len, &m->from))
		return;
	if (sock->stun_service && a->stun) {
		stunsvc_handle(a->stun, 0, m->buf, m->len, &m->from);
		return;
	}
	/* Punch checks carry USERNAME; their answers match a punch's
	 * transaction. Plain requests fall through to the answer below. */
	if (a->n_peers && stun_decode(&msg, m->buf, m->len, 0) == STUN_OK &&
	    pathmgr_input_stun(a, &msg, &m->from, &sc.primary))
		return;
	if (stun_server_answer(&sc, m->buf, m->len, &m->from, &sc.primary, reply_buf,
			       sizeof(reply_buf), &r) == STUN_SERVER_SEND)
		udp_send(sock->fd, reply_buf, r.len, &r.to, &m->local, 0);
}

static void on_readable(void *arg, uint32_t events)
{
	struct agent_sock *sock = arg;
	struct agent *a = sock->a;
	struct udp_msg msgs[RX_BATCH];

	(void)events;
	for (unsigned i = 0; i < RX_BATCH; i++)
		msgs[i] = (struct udp_msg){ .buf = rx_bufs[i], .cap = sizeof(rx_bufs[i]) };
	/* Bounded: after a few batches the rest of the loop gets its turn. */
	for (int round = 0; round < 4; round++) {
		int n = udp_recv(sock->fd, msgs, RX_BATCH);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			if (!msgs[i].len)
				continue;
			switch (quic_demux_classify(msgs[i].buf, msgs[i].len)) {
			case QUIC_CLASS_QUIC:
				input_quic(a, sock, &msgs[i]);
				break;
			case QUIC_CLASS_STUN:
				input_stun(a, sock, &msgs[i]);
				break;
			default:
				break;
			}
		}
		agent_flush_dirty(a);
	}
}

static int open_socket_at(struct agent *a, int idx, struct na_endpoint ep)
{
	struct agent_sock *sock = &a->socks[idx];
	int family = ep.ip.family;
	int fd = udp_open(&ep), err;

	if (fd < 0)
		return fd;
	udp_set_buffers(fd, 4 << 20);
	udp_local(fd, &ep); /* port 0: the kernel picked one */
	sock->a = a;
	sock->fd = fd;
	sock->family = (uint8_t)family;
	sock->port = ep.port;
	err = loop_add_fd(a->loop, fd, EPOLLIN, on_readable, sock);
	if (err < 0) {
		close(fd);
		sock->fd = -1;
	}
	return err;
}

static int open_socket(struct agent *a, int idx, int family, uint16_t port)
{
	struct na_endpoint ep = { .ip.family = (uint8_t)family, .port = port };

	return open_socket_at(a, idx, ep);
}

int agent_open_rdv_socket(struct agent *a, const struct na_endpoint *listen)
{
	int err = open_socket_at(a, AGENT_SOCK_RDV, *listen);

	if (err == 0)
		a->socks[AGENT_SOCK_RDV].stun_service = true;
	return err;
}

int agent_rebind(struct agent *a)
{
	int moved = 0, idx[2] = { -1, -1 };

	for (struct conn *c = a->conns; c; c = c->next) {
		const struct quic_path *cur = quic_session_path(c->s);
		struct na_endpoint local, remote;
		struct quic_path path;
		int fam, err;

		if (quic_session_is_server(c->s) || !quic_session_is_up(c->s) ||
		    relay_is_path(&cur->local))
			continue;
		path_to_endpoints(cur, &local, &remote);
		fam = local.ip.family == AF_INET6 ? 1 : 0;
		if (idx[fam] < 0) {
			/* One new socket per family, in the first free slot past
			 * ListenPort's; an old moved-to socket is reused when full. */
			int slot = -1;
			for (int i = AGENT_SOCK_RDV + 1; i < AGENT_MAX_SOCKS && slot < 0; i++)
				if (a->socks[i].fd < 0)
					slot = i;
			if (slot < 0 || open_socket(a, slot, local.ip.family, 0) < 0) {
				log_warn("%s: cannot open a socket to move sessions to", a->cfg->name);
				continue;
			}
			idx[fam] = slot;
		}
		local.port = a->socks[idx[fam]].port;
		na_endpoint_to_sockaddr(&local, &path.local);
		path.remote = cur->remote;
		err = quic_session_migrate(c->s, &path, loop_now());
		if (err < 0) {
			log_warn("%s: peer %s: cannot move the session: %s", a->cfg->name,
				 c->peer ? c->peer->name : "?", quic_strerror(err));
			continue;
		}
		log_info("%s: peer %s: moving the session to local port %u", a->cfg->name,
			 c->peer ? c->peer->name : "?", local.port);
		conn_mark(c);
		moved++;
	}
	agent_flush_dirty(a);
	return moved;
}

static void on_discovered(void *arg, struct discovery *d)
{
	struct agent *a = arg;
	const struct nat_report *r = discovery_report(d);
	char pub[NA_ENDPOINT_STRLEN], srv[NA_ENDPOINT_STRLEN];

	a->disc_running = false;
	discovery_stop(d);
	na_endpoint_str(&r->server, srv, sizeof(srv));
	if (r->error) {
		log_warn("%s: discovery via %s failed: %s", a->cfg->name, srv, r->error);
		return;
	}
	a->report = *r;
	a->have_report = true;
	log_info("%s: public address %s (via %s); NAT: %s, mapping %s, filtering %s, "
		 "ports %s, hairpin %s", a->cfg->name, na_endpoint_str(&r->mapped, pub, sizeof(pub)),
		 srv, nat_report_classic_name(r), nat_mapping_name(r->mapping),
		 nat_filtering_name(r->filtering), nat_alloc_name(r->alloc),
		 r->hairpin < 0 ? "unknown" : r->hairpin ? "yes" : "no");
	/* Relayed peers try again with what we now know of our NAT (their
	 * verdict needs it; the mapped address may be a new candidate). */
	pathmgr_candidates_changed(a, false);
	pathmgr_nat_known(a);
	autonat_discovered(a);
}

/* Learns the public address and the NAT's behaviour from the configured
 * STUN servers (else the rendezvous), from the IPv4 ListenPort socket. */
void agent_discover(struct agent *a)
{
	struct na_endpoint servers[DISCOVERY_MAX_SERVERS];
	struct nat_behavior_opts o;
	unsigned n = 0;
	int err;

	if (a->disc_running)
		return;
	for (unsigned i = 0; i < a->cfg->n_stun && n < DISCOVERY_MAX_SERVERS; i++)
		if (a->cfg->stun[i].ip.family == AF_INET)
			servers[n++] = a->cfg->stun[i];
	if (!n && a->cfg->has_rendezvous && a->cfg->rendezvous.ip.family == AF_INET)
		servers[n++] = a->cfg->rendezvous;
	if (!n)
		return;
	nat_behavior_opts_default(&o);
	o.n_socks = NAT_BEH_MAX_SOCKS;
	err = discovery_start(&a->disc, a->loop, a->socks[0].fd, servers, n, &o, on_discovered, a);
	if (err < 0) {
		log_warn("%s: cannot start discovery: %s", a->cfg->name, strerror(-err));
		return;
	}
	a->disc_running = true;
}

/* One endpoint-wide keepalive: the shortest any peer asks for. */
static uint64_t keepalive_of(const struct config *cfg, uint64_t idle_timeout)
{
	uint64_t keepalive = (uint64_t)CONFIG_DEFAULT_KEEPALIVE * 1000000000ull;

	for (unsigned i = 0; i < cfg->n_peers; i++) {
		const struct config_peer *cp = &cfg->peers[i];
		uint64_t k = (uint64_t)cp->persistent_keepalive * 1000000000ull;

		if (cp->has_persistent_keepalive && k && k < keepalive)
			keepalive = k;
	}
	/* Keepalives must come before the idle timeout declares the path dead. */
	if (keepalive >= idle_timeout)
		keepalive = idle_timeout / 3;
	return keepalive;
}

void agent_keepalive_update(struct agent *a)
{
	uint64_t k = keepalive_of(a->cfg, a->qcfg.idle_timeout);
	struct conn *up = a->rdv ? a->rdv->conn : NULL;

	if (k == a->qcfg.keepalive)
		return;
	a->qcfg.keepalive = k;
	/* The rendezvous session keeps the NAT mapping every peer shares. */
	if (up)
		quic_session_set_keepalive(up->s, k);
}

int agent_open(struct agent *a, struct config *cfg, struct loop *loop)
{
	const char *why = NULL;
	int err;

	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->loop = loop;
	for (int i = 0; i < AGENT_MAX_SOCKS; i++)
		a->socks[i].fd = -1;
	a->port = cfg->listen_port;
	err = quic_tls_cred_new(&a->cred, cfg->private_key, cfg->public_key, &why);
	if (err) {
		log_err("%s: cannot load the private key into TLS: %s", cfg->name, why ? why : "?");
		return -EINVAL;
	}
	quic_tls_reset_secret(a->qcfg.reset_secret, cfg->private_key);
	a->qcfg.cred = a->cred;
	a->qcfg.accept_key = accept_key;
	a->qcfg.accept_arg = a;
	a->qcfg.ops = &ops;
	a->qcfg.idle_timeout = (uint64_t)cfg->idle_timeout * 1000000000ull;
	a->qcfg.keepalive = keepalive_of(cfg, a->qcfg.idle_timeout);
	a->demux = quic_demux_new(&a->qcfg, 1024);
	if (!a->demux) {
		err = -ENOMEM;
		goto fail;
	}
	err = open_socket(a, 0, AF_INET, a->port);
	if (!err)
		a->port = a->socks[0].port; /* the other family shares it */
	if (err < 0) {
		log_err("%s: cannot listen on UDP port %u: %s", cfg->name, cfg->listen_port,
			strerror(-err));
		goto fail;
	}
	/* IPv6 is a bonus: a host without it still runs on IPv4. */
	if (open_socket(a, 1, AF_INET6, a->port) < 0)
		log_warn("%s: no IPv6 socket on port %u; IPv4 only", cfg->name, a->port);
	log_info("%s: listening on UDP port %u", cfg->name, a->port);
	loop_set_turn_end(loop, turn_end, a);
	agent_discover(a);
	return 0;
fail:
	agent_close(a);
	return err;
}

void agent_close(struct agent *a)
{
	struct conn *c;

	loop_set_turn_end(a->loop, NULL, NULL);
	if (a->disc_running)
		discovery_stop(&a->disc);
	a->disc_running = false;

	/* Tell every peer we are going, then give the packets a chance. */
	for (c = a->conns; c; c = c->next)
		quic_session_close(c->s, 0, "shutting down");
	for (c = a->conns; c; c = c->next)
		conn_mark(c);
	if (a->conns)
		agent_flush_dirty(a);
	a->dirty_head = NULL;
	while ((c = a->conns)) {
		a->conns = c->next;
		loop_timer_cancel(a->loop, &c->timer);
		quic_session_free(c->s);
		free(c);
	}
	for (int i = 0; i < AGENT_MAX_SOCKS; i++) {
		if (a->socks[i].fd >= 0) {
			loop_del_fd(a->loop, a->socks[i].fd);
			close(a->socks[i].fd);
			a->socks[i].fd = -1;
		}
	}
	if (a->demux)
		quic_demux_free(a->demux);
	a->demux = NULL;
	if (a->cred)
		quic_tls_cred_free(a->cred);
	a->cred = NULL;
}
