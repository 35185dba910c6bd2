/* Tun mode: natagent is the VPN.
 *
 * Out: each packet the kernel routes into the TUN goes to the peer whose
 * AllowedIPs hold its destination (longest prefix, as WireGuard). A packet
 * larger than the session's datagrams can carry now is dropped and answered,
 * as a router would, with ICMP "fragmentation needed" / ICMPv6 "packet too
 * big" written back into the TUN, so TCP lowers its segment size instead of
 * retransmitting into a black hole.
 *
 * In: a packet from a peer is written to the TUN only if its source lies in
 * that peer's AllowedIPs (anti-spoofing, as WireGuard does). */
#include "agent/tunpath.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "agent/agent.h"
#include "agent/allowedips.h"
#include "agent/log.h"
#include "agent/tun.h"
#include "agent/tunpkt.h"
#include "quic/dgram.h"

#define TUN_BATCH      64
#define TUN_BUF        65536
/* ICMP answers: a token bucket, so a flood of big packets cannot turn into
 * a flood of ICMP. */
#define TOO_BIG_RATE   100 /* per second */
#define TOO_BIG_BURST  20

struct tunpath {
	struct agent *a;
	struct tun tun;
	struct allowedips aips;
	struct tunpath_stats st;
	double tokens;
	uint64_t tokens_at;
	uint8_t (*bufs)[TUN_BUF];
};

const struct tunpath_stats *tunpath_stats(const struct agent *a)
{
	return &a->tun->st;
}

static bool take_token(struct tunpath *t)
{
	uint64_t now = loop_now();

	t->tokens += (double)(now - t->tokens_at) * TOO_BIG_RATE / 1e9;
	if (t->tokens > TOO_BIG_BURST)
		t->tokens = TOO_BIG_BURST;
	t->tokens_at = now;
	if (t->tokens < 1)
		return false;
	t->tokens -= 1;
	return true;
}

/* The packet does not fit the peer's datagrams: tell its sender. */
static void answer_too_big(struct tunpath *t, const uint8_t *pkt, size_t len,
			   const struct tunpkt *pi, size_t fits)
{
	uint8_t out[TUNPKT_TOO_BIG_MAX];
	struct tun_pkt tp;
	int n;

	if (!take_token(t))
		return;
	/* From the packet's destination: Linux accepts that without the
	 * accept_local sysctl an answer from our own address would need. */
	n = tunpkt_too_big(out, sizeof(out), pkt, len, fits, &pi->dst);
	if (n <= 0)
		return;
	tp = (struct tun_pkt){ .buf = out, .cap = sizeof(out), .len = (size_t)n };
	if (tun_write(&t->tun, &tp, 1) == 1)
		t->st.too_big_sent++;
}

static void route_out(struct tunpath *t, const uint8_t *pkt, size_t len)
{
	struct tunpkt pi;
	struct peer *p;
	size_t max;

	if (!tunpkt_parse(&pi, pkt, len)) {
		t->st.invalid++;
		return;
	}
	p = allowedips_lookup(&t->aips, &pi.dst);
	if (!p) {
		t->st.no_route++;
		return;
	}
	if (p->conn && quic_session_is_up(p->conn->s)) {
		max = quic_session_dgram_max(p->conn->s);
		max = max > 1 ? max - 1 : 0; /* the context id's byte */
		if (pi.len > max) {
			p->st.drop_too_big++;
			answer_too_big(t, pkt, pi.len, &pi, max);
			return;
		}
	}
	peer_send(p, QUIC_DGRAM_CTX_IP, pkt, pi.len);
}

static void on_readable(void *arg, uint32_t events)
{
	struct tunpath *t = arg;
	struct tun_pkt pkts[TUN_BATCH];

	(void)events;
	for (unsigned i = 0; i < TUN_BATCH; i++)
		pkts[i] = (struct tun_pkt){ .buf = t->bufs[i], .cap = TUN_BUF };
	for (int round = 0; round < 4; round++) {
		int n = tun_read(&t->tun, pkts, TUN_BATCH);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++)
			route_out(t, pkts[i].buf, pkts[i].len);
		agent_flush_dirty(t->a);
	}
}

void tunpath_deliver(struct peer *p, const uint8_t *pkt, size_t len)
{
	struct tunpath *t = p->a->tun;
	struct tun_pkt tp;
	struct tunpkt pi;

	if (!tunpkt_parse(&pi, pkt, len)) {
		p->st.drop_bad++;
		return;
	}
	if (allowedips_lookup(&t->aips, &pi.src) != p) {
		p->st.drop_spoofed++;
		return;
	}
	tp = (struct tun_pkt){ .buf = (uint8_t *)pkt, .cap = len, .len = pi.len };
	if (tun_write(&t->tun, &tp, 1) != 1) {
		p->st.drop_bad++;
		return;
	}
	p->st.rx_dgrams++;
	p->st.rx_bytes += pi.len;
}

int tunpath_open(struct agent *a)
{
	const struct config *cfg = a->cfg;
	struct na_prefix *routes = NULL;
	size_t n_routes = 0;
	struct tunpath *t;
	int err;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->a = a;
	t->tun.fd = -1;
	t->tokens = TOO_BIG_BURST;
	t->tokens_at = loop_now();
	allowedips_init(&t->aips);
	a->tun = t;
	t->bufs = malloc(sizeof(*t->bufs) * TUN_BATCH);
	for (unsigned i = 0; i < a->n_peers; i++)
		n_routes += a->peers[i]->cfg->n_allowed_ips;
	routes = calloc(n_routes ? n_routes : 1, sizeof(*routes));
	if (!t->bufs || !routes) {
		err = -ENOMEM;
		goto out;
	}
	n_routes = 0;
	for (unsigned i = 0; i < a->n_peers; i++) {
		const struct config_peer *cp = a->peers[i]->cfg;
		for (unsigned j = 0; j < cp->n_allowed_ips; j++)
			routes[n_routes++] = cp->allowed_ips[j];
		err = tunpath_table_add(&t->aips, a->peers[i], cp);
		if (err < 0)
			goto out;
	}
	err = tun_open(&t->tun, cfg->name);
	if (err < 0) {
		log_err("%s: cannot create the TUN device: %s", cfg->name, tun_errmsg(&t->tun));
		goto out;
	}
	struct tun_config tc = {
		.mtu = cfg->mtu, .addrs = cfg->addresses, .n_addrs = cfg->n_addresses,
		.routes = routes, .n_routes = n_routes,
	};
	err = tun_configure(&t->tun, &tc);
	if (err < 0) {
		log_err("%s: cannot configure %s: %s", cfg->name, t->tun.name, tun_errmsg(&t->tun));
		goto out;
	}
	err = loop_add_fd(a->loop, t->tun.fd, EPOLLIN, on_readable, t);
	if (err < 0)
		goto out;
	log_info("%s: TUN device %s up, MTU %u, %zu route(s)", cfg->name, t->tun.name, t->tun.mtu,
		 n_routes);
out:
	free(routes);
	return err;
}

int tunpath_table_add(struct allowedips *t, struct peer *p, const struct config_peer *cp)
{
	for (unsigned j = 0; j < cp->n_allowed_ips; j++) {
		int err = allowedips_insert(t, &cp->allowed_ips[j], p);

		if (err < 0)
			return err;
	}
	return 0;
}

void tunpath_set_table(struct agent *a, struct allowedips *aips)
{
	struct tunpath *t = a->tun;

	allowedips_free(&t->aips);
	t->aips = *aips;
	allowedips_init(aips);
}

void tunpath_peer_gone(struct peer *p)
{
	allowedips_remove_by_peer(&p->a->tun->aips, p);
}

int tunpath_set_routes(struct agent *a, const struct na_prefix *routes, size_t n,
		       unsigned *added, unsigned *removed)
{
	struct tunpath *t = a->tun;
	struct tun_config tc = {
		.addrs = a->cfg->addresses, .n_addrs = a->cfg->n_addresses,
		.routes = routes, .n_routes = n,
	};

	return tun_set_routes(&t->tun, &tc, added, removed);
}

const char *tunpath_errmsg(const struct agent *a)
{
	return tun_errmsg(&a->tun->tun);
}

void tunpath_close(struct agent *a)
{
	struct tunpath *t = a->tun;

	if (!t)
		return;
	if (t->tun.fd >= 0)
		loop_del_fd(a->loop, t->tun.fd);
	tun_close(&t->tun);
	allowedips_free(&t->aips);
	free(t->bufs);
	free(t);
	a->tun = NULL;
}
