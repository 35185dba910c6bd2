/* Our session to the rendezvous: register, learn how it sees us, carry
 * relayed peer sessions.
 *
 * It is a QUIC client on the agent's shared socket, so the address the
 * rendezvous reports is the NAT mapping every peer session and punch uses.
 * The rendezvous's key is pinned (RendezvousKey); we prove ours in the
 * handshake, then send REGISTER with the keys of our peers (64 a frame):
 * the rendezvous connects us only with peers that list us too. A reload
 * that adds or removes peers sends REGISTER for the keys added and
 * UNREGISTER for those removed, on the same session: the other peers'
 * relayed sessions inside it carry on.
 *
 * Timers:
 *   timer   reconnect after the session ended: at once when the rendezvous
 *           restarted (a stateless reset says so), else after a backoff from
 *           BACKOFF_MIN doubling to BACKOFF_MAX, reset once registered.
 *           While registered but the path's datagrams are still too small
 *           to carry a peer's 1200-byte packets (PMTUD has not run yet), it
 *           polls every RELAY_POLL.
 *   keep-alive and idle timeout: the session's own (quic/session.h), at the
 *           agent's keepalive interval, so the NAT mapping to the rendezvous
 *           stays open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/pathmgr.h"
#include "agent/rdvclient.h"

#define BACKOFF_MIN   (500000000ull)
#define BACKOFF_MAX   (16000000000ull)
#define RELAY_POLL    (50000000ull)
#define RELAY_WARN    (3000000000ull)
/* A peer's Initial is 1200 bytes; the relay header goes in front. */
#define RELAY_MIN_DGRAM (RDVMSG_RELAY_HDR + 1200)

const char *rdvclient_state_name(enum rdv_state s)
{
	switch (s) {
	case RDV_DOWN:       return "down";
	case RDV_CONNECTING: return "connecting";
	case RDV_REGISTERED: return "registered";
	}
	return "?";
}

static void set_state(struct rdvclient *r, enum rdv_state s)
{
	r->state = s;
	r->since = loop_now();
}

static void connect_now(struct rdvclient *r);

static void schedule(struct rdvclient *r, uint64_t delay)
{
	loop_timer_set(r->a->loop, &r->timer, loop_now() + delay);
}

static void retry_later(struct rdvclient *r)
{
	r->backoff = r->backoff ? r->backoff * 2 : BACKOFF_MIN;
	if (r->backoff > BACKOFF_MAX)
		r->backoff = BACKOFF_MAX;
	schedule(r, r->backoff);
}

struct conn *rdvclient_uplink(struct agent *a)
{
	struct rdvclient *r = a->rdv;

	return r && r->state == RDV_REGISTERED && r->conn ? r->conn : NULL;
}

bool rdvclient_can_relay(struct agent *a)
{
	struct conn *up = rdvclient_uplink(a);

	return up && quic_session_dgram_max(up->s) >= RELAY_MIN_DGRAM;
}

/* Tells the peers once the session can carry their packets. */
static void check_relay(struct rdvclient *r)
{
	struct agent *a = r->a;

	if (r->relay_ready || r->state != RDV_REGISTERED)
		return;
	if (rdvclient_can_relay(a)) {
		r->relay_ready = true;
		log_debug("%s: rendezvous: relaying ready, datagrams up to %zu bytes", a->cfg->name,
			  quic_session_dgram_max(r->conn->s));
		peers_relay_ready(a);
		return;
	}
	r->waited += RELAY_POLL;
	if (r->waited >= RELAY_WARN && !r->warned_small) {
		r->warned_small = true;
		log_warn("%s: the path to the rendezvous carries datagrams of %zu bytes; relaying "
			 "needs %u (is the path MTU below 1280?); still waiting", a->cfg->name,
			 quic_session_dgram_max(r->conn->s), (unsigned)RELAY_MIN_DGRAM);
	}
	schedule(r, RELAY_POLL);
}

static void on_timer(void *arg, uint64_t now)
{
	struct rdvclient *r = arg;

	(void)now;
	if (r->conn)
		check_relay(r);
	else
		connect_now(r);
}

static void connect_now(struct rdvclient *r)
{
	struct agent *a = r->a;
	char ep[NA_ENDPOINT_STRLEN];
	struct quic_path path;
	struct conn *c;
	int err = 0;

	na_endpoint_str(&a->cfg->rendezvous, ep, sizeof(ep));
	if (!agent_path(a, &a->cfg->rendezvous, &path)) {
		snprintf(r->error, sizeof(r->error), "no route to %s", ep);
		log_warn("%s: rendezvous %s: no route; retrying", a->cfg->name, ep);
		retry_later(r);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		retry_later(r);
		return;
	}
	c->role = CONN_RDV_UP;
	c->created = loop_now();
	c->s = quic_session_client_new(&a->qcfg, a->demux, &path, a->cfg->rendezvous_key, c,
				       c->created, &err);
	if (!c->s) {
		snprintf(r->error, sizeof(r->error), "cannot start a session: %s",
			 quic_strerror(err));
		log_err("%s: rendezvous %s: %s", a->cfg->name, ep, r->error);
		free(c);
		retry_later(r);
		return;
	}
	agent_conn_adopt(a, c);
	r->conn = c;
	r->rx_len = 0;
	set_state(r, RDV_CONNECTING);
	log_debug("%s: rendezvous %s: connecting", a->cfg->name, ep);
	agent_flush(c);
}

static bool send_frame(struct rdvclient *r, const uint8_t *buf, size_t len)
{
	int err = quic_session_stream_send(r->conn->s, buf, len);

	if (err < 0)
		log_warn("%s: rendezvous: cannot send: %s", r->a->cfg->name, quic_strerror(err));
	conn_mark(r->conn);
	return err >= 0;
}

bool rdvclient_send(struct agent *a, const struct rdvmsg *m)
{
	struct rdvclient *r = a->rdv;
	uint8_t buf[RDVMSG_MAX_FRAME];
	size_t n;

	if (!rdvclient_uplink(a))
		return false;
	n = rdvmsg_encode(m, buf, sizeof(buf));
	return n && send_frame(r, buf, n);
}

/* REGISTER or UNREGISTER keys, 64 a frame; at least one frame, so that a
 * peer with no peers still registers (it learns its address). */
static void send_keys(struct rdvclient *r, uint8_t type, const uint8_t *const *keys, unsigned n)
{
	static struct rdvmsg m;
	uint8_t buf[RDVMSG_MAX_FRAME];
	unsigned i = 0;

	do {
		size_t len;

		memset(&m, 0, sizeof(m));
		m.type = type;
		for (; i < n && m.reg.count < RDVMSG_MAX_KEYS; i++)
			memcpy(m.reg.keys[m.reg.count++], keys[i], KEY_LEN);
		len = rdvmsg_encode(&m, buf, sizeof(buf));
		if (len)
			send_frame(r, buf, len);
	} while (i < n);
}

void rdvclient_up(struct conn *c)
{
	struct agent *a = c->a;
	const uint8_t **keys = calloc(a->n_peers ? a->n_peers : 1, sizeof(*keys));

	/* The rendezvous keeps the union of our REGISTERs. */
	if (!keys) {
		log_err("%s: rendezvous: out of memory for the key list; reconnecting", a->cfg->name);
		quic_session_close(c->s, 1, "out of memory");
		conn_mark(c);
		return;
	}
	for (unsigned i = 0; i < a->n_peers; i++)
		keys[i] = a->peers[i]->cfg->public_key;
	send_keys(a->rdv, RDVMSG_REGISTER, keys, a->n_peers);
	free(keys);
}

void rdvclient_peers_changed(struct agent *a, const uint8_t *const *added, unsigned n_added,
			     const uint8_t *const *removed, unsigned n_removed)
{
	struct rdvclient *r = a->rdv;

	/* A session not up yet registers the whole new list when it is. */
	if (!r || !r->conn || !quic_session_is_up(r->conn->s))
		return;
	if (n_removed)
		send_keys(r, RDVMSG_UNREGISTER, removed, n_removed);
	if (n_added)
		send_keys(r, RDVMSG_REGISTER, added, n_added);
}

static void on_message(struct rdvclient *r, const struct rdvmsg *m)
{
	struct agent *a = r->a;
	char ep[NA_ENDPOINT_STRLEN], rv[NA_ENDPOINT_STRLEN];

	switch (m->type) {
	case RDVMSG_REGISTERED: {
		bool moved = r->have_srflx && !na_endpoint_equal(&r->srflx, &m->registered.srflx);

		na_endpoint_str(&a->cfg->rendezvous, rv, sizeof(rv));
		na_endpoint_str(&m->registered.srflx, ep, sizeof(ep));
		if (r->state != RDV_REGISTERED || !r->have_srflx || moved)
			log_info("%s: registered at rendezvous %s, which sees us as %s",
				 a->cfg->name, rv, ep);
		r->srflx = m->registered.srflx;
		r->have_srflx = true;
		if (r->state != RDV_REGISTERED) {
			set_state(r, RDV_REGISTERED);
			r->backoff = 0;
			r->error[0] = 0;
			r->waited = 0;
			check_relay(r);
		}
		if (moved) { /* our NAT gave us a new port: what else changed? */
			pathmgr_candidates_changed(a, true);
			agent_discover(a);
		}
		autonat_registered(a, &r->srflx);
		break;
	}
	case RDVMSG_DIALRESP:
		autonat_dialresp(a, &m->dialresp);
		break;
	case RDVMSG_CONNECT:
		pathmgr_on_connect(a, &m->connect);
		break;
	case RDVMSG_SYNC:
		pathmgr_on_sync(a, &m->sync);
		break;
	case RDVMSG_PRESENT:
		peer_present(a, m->present.key);
		break;
	case RDVMSG_ERROR:
		snprintf(r->error, sizeof(r->error), "rendezvous says: %s (%u)", m->error.reason,
			 m->error.code);
		log_warn("%s: %s", a->cfg->name, r->error);
		break;
	case RDVMSG_PING: {
		uint8_t buf[16];
		size_t n = rdvmsg_encode_ping(buf, sizeof(buf), true, m->ping.nonce);
		send_frame(r, buf, n);
		break;
	}
	default:
		/* PONG answers nothing we send. */
		log_debug("%s: rendezvous: %s ignored", a->cfg->name, rdvmsg_type_name(m->type));
		break;
	}
}

void rdvclient_stream(struct conn *c, const uint8_t *data, size_t len)
{
	struct rdvclient *r = c->a->rdv;
	static struct rdvmsg m;

	while (len && r->conn == c) {
		size_t take = sizeof(r->rx) - r->rx_len, need = 0;
		const char *why = NULL;
		ssize_t f;

		if (take > len)
			take = len;
		memcpy(r->rx + r->rx_len, data, take);
		r->rx_len += take;
		data += take;
		len -= take;
		while ((f = rdvmsg_frame(r->rx, r->rx_len, &need, &why)) > 0) {
			if (!rdvmsg_decode(&m, r->rx, (size_t)f, &why))
				break;
			on_message(r, &m);
			memmove(r->rx, r->rx + f, r->rx_len - (size_t)f);
			r->rx_len -= (size_t)f;
			why = NULL;
		}
		if (f < 0 || why) {
			snprintf(r->error, sizeof(r->error), "bad message from the rendezvous: %s",
				 why ? why : "?");
			log_warn("%s: %s; reconnecting", c->a->cfg->name, r->error);
			quic_session_close(c->s, 1, "bad message");
			conn_mark(c);
			return;
		}
	}
}

void rdvclient_datagram(struct conn *c, const uint8_t *data, size_t len)
{
	const uint8_t *key, *pkt;
	size_t plen;

	if (rdvmsg_relay_parse(data, len, &key, &pkt, &plen))
		relay_queue(c->a, key, pkt, plen);
}

void rdvclient_dead(struct conn *c)
{
	struct agent *a = c->a;
	struct rdvclient *r = a->rdv;
	const char *why = quic_session_reason(c->s);
	char rv[NA_ENDPOINT_STRLEN];

	if (!r || r->conn != c)
		return;
	r->conn = NULL;
	r->relay_ready = false;
	r->warned_small = false;
	na_endpoint_str(&a->cfg->rendezvous, rv, sizeof(rv));
	if (*why)
		snprintf(r->error, sizeof(r->error), "%s", why);
	log_info("%s: rendezvous %s: session ended: %s", a->cfg->name, rv, *why ? why : "closed");
	set_state(r, RDV_DOWN);
	autonat_rdv_down(a);
	if (strstr(why, "stateless reset")) {
		r->backoff = 0; /* it restarted and lost us: register again now */
		schedule(r, 0);
	} else {
		retry_later(r);
	}
}

int rdvclient_open(struct agent *a)
{
	struct rdvclient *r;

	if (!a->cfg->has_rendezvous)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->a = a;
	loop_timer_init(&r->timer, on_timer, r);
	a->rdv = r;
	connect_now(r);
	return 0;
}

void rdvclient_close(struct agent *a)
{
	struct rdvclient *r = a->rdv;

	if (!r)
		return;
	loop_timer_cancel(a->loop, &r->timer);
	if (r->conn)
		r->conn->role = CONN_PEER; /* agent_close frees it; no callbacks to us */
	free(r);
	a->rdv = NULL;
}
