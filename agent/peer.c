/* Peers and their sessions.
 *
 * Who dials: the side whose public key is smaller; the other side waits
 * DIAL_FALLBACK for it and then dials too (the smaller side may not know
 * our address). A dial goes to the peer's Endpoint when it has one, else
 * through the rendezvous (a relayed path, see relay.c) once that can carry
 * it; with both, a failed dial makes the next one try the other way. If both sessions come up,
 * both sides keep the one whose client has the smaller key, so they agree
 * without talking; between two sessions with the same client, the newer
 * wins (the peer restarted).
 *
 * Peers come and go at runtime (reload.c): each lives in its own allocation,
 * found through agent.peers, an array of pointers kept in idx order. A
 * peer's idx names its relayed path (relay.c: 100::<idx + 2>); it comes from
 * a counter and is never given to another peer, so a packet still on its way
 * to or from a removed peer's path (a closing session's last packets, a
 * handshake that was under way) finds no peer rather than the wrong one.
 *
 * Timers, per peer:
 *   dial_timer   first dial (now, or DIAL_FALLBACK for the larger key), then
 *                redial after a session dies: at once if the peer restarted
 *                (stateless reset), else after a backoff from BACKOFF_MIN
 *                doubling to BACKOFF_MAX, reset when a session comes up.
 * Timers per session live in the session (see quic/session.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/fastpath.h"
#include "agent/log.h"
#include "agent/pathmgr.h"
#include "agent/tunpath.h"
#include "quic/dgram.h"

#define DIAL_FALLBACK (3000000000ull)
#define BACKOFF_MIN   (500000000ull)
#define BACKOFF_MAX   (16000000000ull)

struct peer *peer_by_key(struct agent *a, const uint8_t key[KEY_LEN])
{
	for (unsigned i = 0; i < a->n_peers; i++)
		if (!memcmp(a->peers[i]->cfg->public_key, key, KEY_LEN))
			return a->peers[i];
	return NULL;
}

struct peer *peer_by_idx(struct agent *a, uint32_t idx)
{
	unsigned lo = 0, hi = a->n_peers;

	/* Per relayed packet: a binary search, the array being in idx order. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (a->peers[mid]->idx < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < a->n_peers && a->peers[lo]->idx == idx ? a->peers[lo] : NULL;
}

static bool we_dial_first(const struct peer *p)
{
	return memcmp(p->a->cfg->public_key, p->cfg->public_key, KEY_LEN) < 0;
}

/* The public key of the session's client side. */
static const uint8_t *client_key(const struct conn *c)
{
	return quic_session_is_server(c->s) ? quic_session_peer_key(c->s) : c->a->cfg->public_key;
}

static void schedule_dial(struct peer *p, uint64_t delay)
{
	if (!p->cfg->has_endpoint && !rdvclient_can_relay(p->a))
		return; /* nowhere to dial: wait to be dialed, or for the relay */
	loop_timer_set(p->a->loop, &p->dial_timer, loop_now() + delay);
}

/* Through the rendezvous, or to the Endpoint? */
static bool dial_relayed(const struct peer *p)
{
	if (!rdvclient_can_relay(p->a))
		return false;
	if (!p->cfg->has_endpoint)
		return true;
	return p->try_relay;
}

static void dial(struct peer *p)
{
	struct agent *a = p->a;
	char ep[NA_ENDPOINT_STRLEN];
	struct quic_path path;
	struct conn *c;
	int err = 0;

	if (p->conn)
		return;
	p->dialed_relay = dial_relayed(p);
	if (p->dialed_relay) {
		relay_path(p, &path);
		snprintf(ep, sizeof(ep), "through the rendezvous");
	} else if (!p->cfg->has_endpoint) {
		return; /* the relay went away meanwhile; it will call again */
	} else {
		na_endpoint_str(&p->cfg->endpoint, ep, sizeof(ep));
		if (!agent_path(a, &p->cfg->endpoint, &path)) {
			log_warn("%s: peer %s: no route to %s; retrying", a->cfg->name, p->name, ep);
			goto retry;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto retry;
	c->a = a;
	c->peer = p;
	c->created = loop_now();
	c->s = quic_session_client_new(&a->qcfg, a->demux, &path, p->cfg->public_key, c,
				       c->created, &err);
	if (!c->s) {
		log_err("%s: peer %s: cannot start a session: %s", a->cfg->name, p->name,
			quic_strerror(err));
		free(c);
		goto retry;
	}
	agent_conn_adopt(a, c);
	p->conn = c;
	log_debug("%s: peer %s: dialing %s", a->cfg->name, p->name, ep);
	agent_flush(c);
	return;
retry:
	p->backoff = p->backoff ? p->backoff * 2 : BACKOFF_MIN;
	if (p->backoff > BACKOFF_MAX)
		p->backoff = BACKOFF_MAX;
	schedule_dial(p, p->backoff);
}

static void on_dial_timer(void *arg, uint64_t now)
{
	(void)now;
	dial(arg);
}

/* Which of two live sessions to one peer both sides keep. */
static bool keep_new(const struct conn *old, const struct conn *new)
{
	int cmp;

	if (!quic_session_is_up(old->s))
		return true;
	cmp = memcmp(client_key(new), client_key(old), KEY_LEN);
	return cmp < 0 || (cmp == 0 && new->created > old->created);
}

/* Sessions to the rendezvous service's Listen port are registrations, even
 * from a key that is also our peer (whose peer session uses ListenPort). */
static bool on_rdv_port(const struct conn *c)
{
	struct na_endpoint local;

	na_endpoint_from_sockaddr(&local, (const struct sockaddr *)&quic_session_path(c->s)->local);
	return local.port == c->a->cfg->rdv.listen.port &&
	       na_ip_equal(&local.ip, &c->a->cfg->rdv.listen.ip);
}

void conn_up(struct conn *c)
{
	struct agent *a = c->a;
	const uint8_t *key = quic_session_peer_key(c->s);
	struct peer *p = key ? peer_by_key(a, key) : NULL;
	struct conn *loser = NULL;
	struct na_endpoint remote;

	if (a->rdvsrv && quic_session_is_server(c->s) && on_rdv_port(c)) {
		rdv_server_up(c); /* a peer registering (perhaps also one of ours) */
		return;
	}
	if (!p) {
		quic_session_close(c->s, 0, "unknown peer");
		conn_mark(c);
		return;
	}
	c->peer = p;
	if (p->conn && p->conn != c) {
		if (keep_new(p->conn, c)) {
			loser = p->conn;
			p->conn = c;
		} else {
			loser = c;
		}
		loser->peer = NULL;
		quic_session_close(loser->s, 0, "replaced by another session");
		conn_mark(loser);
		if (loser == c)
			return;
	}
	p->conn = c;
	p->backoff = 0;
	p->up_since = loop_now();
	loop_timer_cancel(a->loop, &p->dial_timer);
	na_endpoint_from_sockaddr(&remote, (const struct sockaddr *)&quic_session_path(c->s)->remote);
	char r[NA_ENDPOINT_STRLEN];
	if (relay_is_path(&quic_session_path(c->s)->remote))
		snprintf(r, sizeof(r), "relay via the rendezvous");
	else
		na_endpoint_str(&remote, r, sizeof(r));
	log_info("%s: peer %s: session up (%s), path: %s, datagrams up to %zu bytes for now",
		 a->cfg->name, p->name, quic_session_is_server(c->s) ? "they dialed" : "we dialed",
		 r, quic_session_dgram_max(c->s));
	pathmgr_session_up(p);
}

void conn_dead(struct conn *c)
{
	struct peer *p = c->peer;
	const char *why = quic_session_reason(c->s);

	if (c->role == CONN_RDV_UP) {
		rdvclient_dead(c);
		return;
	}
	if (c->role == CONN_RDV_REG) {
		rdv_server_dead(c);
		return;
	}
	if (!p) {
		log_debug("%s: session ended: %s", c->a->cfg->name, *why ? why : "closed");
		return;
	}
	if (p->conn == c) {
		p->conn = NULL;
		autonat_peer_down(p);
	}
	log_info("%s: peer %s: session ended: %s", c->a->cfg->name, p->name, *why ? why : "closed");
	snprintf(p->last_error, sizeof(p->last_error), "%s", *why ? why : "closed");
	if (p->conn)
		return;
	/* Ours and it never came up (no key was ever checked): next time try
	 * the other way. */
	if (!quic_session_is_server(c->s) && !quic_session_peer_key(c->s))
		p->try_relay = !p->dialed_relay;
	if (strstr(why, "stateless reset"))
		p->backoff = 0; /* the peer restarted: it is there, dial now */
	else
		p->backoff = p->backoff ? p->backoff * 2 : BACKOFF_MIN;
	if (p->backoff > BACKOFF_MAX)
		p->backoff = BACKOFF_MAX;
	schedule_dial(p, p->backoff);
}

/* A dial of ours through the rendezvous that is still in its handshake
 * went out before the peer registered, and the rendezvous dropped it:
 * start over now rather than at the Initial's next retransmission (up to
 * a second or more away by then). */
void peer_present(struct agent *a, const uint8_t key[KEY_LEN])
{
	struct peer *p = peer_by_key(a, key);
	struct conn *c = p ? p->conn : NULL;

	if (!p || !we_dial_first(p) || !rdvclient_can_relay(a))
		return;
	if (c && (quic_session_is_up(c->s) || quic_session_is_server(c->s) || !p->dialed_relay))
		return;
	log_debug("%s: peer %s: registered at the rendezvous; dialing it now", a->cfg->name,
		  p->name);
	if (c) {
		c->peer = NULL;
		p->conn = NULL;
		quic_session_close(c->s, 0, "dialing again");
		conn_mark(c);
	}
	loop_timer_cancel(a->loop, &p->dial_timer);
	p->backoff = 0;
	dial(p);
}

void peers_relay_ready(struct agent *a)
{
	for (unsigned i = 0; i < a->n_peers; i++) {
		struct peer *p = a->peers[i];
		if (!p->conn && !loop_timer_armed(&p->dial_timer))
			schedule_dial(p, we_dial_first(p) ? 0 : DIAL_FALLBACK);
	}
}

const char *peer_path_kind(const struct peer *p)
{
	if (!p->conn || !quic_session_is_up(p->conn->s))
		return "none";
	return relay_is_path(&quic_session_path(p->conn->s)->remote) ? "relay" : "direct";
}

bool peer_send(struct peer *p, uint64_t ctx, const uint8_t *data, size_t len)
{
	uint8_t hdr[QUIC_VARINT_MAXLEN];
	struct iovec iov[2];
	int rc;

	if (!p->conn || !quic_session_is_up(p->conn->s)) {
		p->st.drop_down++;
		return false;
	}
	iov[0] = (struct iovec){ hdr, quic_dgram_encode_hdr(hdr, sizeof(hdr), ctx) };
	iov[1] = (struct iovec){ (void *)data, len };
	rc = quic_session_send_datagram(p->conn->s, iov, 2);
	if (rc == QUIC_ERR_DGRAM_TOO_BIG) {
		p->st.drop_too_big++;
		return false;
	}
	if (rc < 0) {
		p->st.drop_full++;
		return false;
	}
	p->st.tx_dgrams++;
	p->st.tx_bytes += len;
	conn_mark(p->conn);
	return true;
}

struct peer *peer_new(struct agent *a, const struct config_peer *cp)
{
	struct peer *p = calloc(1, sizeof(*p));
	char b64[KEY_B64_LEN];

	if (!p)
		return NULL;
	p->a = a;
	/* 2^32 peers added in one run before a wrap: not a concern. */
	p->idx = a->next_idx++;
	p->cfg = cp;
	p->proxy_fd = -1;
	key_to_base64(b64, cp->public_key);
	snprintf(p->name, sizeof(p->name), "%.8s", b64);
	loop_timer_init(&p->dial_timer, on_dial_timer, p);
	autonat_peer_limit_init(&p->autonat_limit, loop_now());
	p->pm = pathmgr_new(p);
	if (!p->pm) {
		free(p);
		return NULL;
	}
	return p;
}

void peer_free(struct peer *p)
{
	loop_timer_cancel(p->a->loop, &p->dial_timer);
	pathmgr_free(p->pm);
	free(p);
}

int peers_reserve(struct agent *a, unsigned n)
{
	struct peer **peers;

	if (n <= a->cap_peers)
		return 0;
	peers = realloc(a->peers, n * sizeof(*peers));
	if (!peers)
		return -ENOMEM;
	a->peers = peers;
	a->cap_peers = n;
	return 0;
}

void peer_start(struct peer *p)
{
	struct agent *a = p->a;

	/* The newest idx: the array stays in idx order. */
	a->peers[a->n_peers++] = p;
	if (a->fp)
		fastpath_add_token(a->fp, p->pm->our_token);
	schedule_dial(p, we_dial_first(p) ? 0 : DIAL_FALLBACK);
}

int peers_open(struct agent *a)
{
	const struct config *cfg = a->cfg;

	if (peers_reserve(a, cfg->n_peers) < 0)
		return -1;
	for (unsigned i = 0; i < cfg->n_peers; i++) {
		struct peer *p = peer_new(a, &cfg->peers[i]);

		if (!p)
			return -1;
		peer_start(p);
	}
	return 0;
}

/* Until natctl show exists, what each peer carried and every reason a
 * datagram was dropped goes to the log when the agent stops. */
static void log_stats(const struct peer *p)
{
	const struct peer_stats *st = &p->st;

	log_info("%s: peer %s: sent %llu datagrams (%llu bytes), received %llu (%llu bytes); "
		 "dropped: %llu too big, %llu queue full, %llu no session, %llu spoofed, %llu bad",
		 p->a->cfg->name, p->name, (unsigned long long)st->tx_dgrams,
		 (unsigned long long)st->tx_bytes, (unsigned long long)st->rx_dgrams,
		 (unsigned long long)st->rx_bytes, (unsigned long long)st->drop_too_big,
		 (unsigned long long)st->drop_full, (unsigned long long)st->drop_down,
		 (unsigned long long)st->drop_spoofed, (unsigned long long)st->drop_bad);
}

void peer_remove(struct peer *p, const char *why)
{
	struct agent *a = p->a;
	unsigned i;

	/* Close now, while the idx still names the relayed path, so the
	 * CONNECTION_CLOSE goes out; the conns outlive us for their closing
	 * period, knowing no peer. */
	for (struct conn *c = a->conns; c; c = c->next) {
		if (c->peer != p)
			continue;
		c->peer = NULL;
		quic_session_close(c->s, 0, why);
		conn_mark(c);
	}
	p->conn = NULL;
	autonat_peer_down(p);
	agent_flush_dirty(a);
	if (a->tun)
		tunpath_peer_gone(p);
	if (p->proxy_fd >= 0)
		close(proxy_detach(p));
	log_stats(p);
	for (i = 0; i < a->n_peers && a->peers[i] != p; i++)
		;
	if (i < a->n_peers) {
		memmove(&a->peers[i], &a->peers[i + 1], (a->n_peers - i - 1) * sizeof(*a->peers));
		a->n_peers--;
	}
	peer_free(p);
}

void peer_config_changed(struct peer *p)
{
	/* A session up keeps its path; an idle peer dials the new Endpoint. */
	if (!p->conn && !loop_timer_armed(&p->dial_timer))
		schedule_dial(p, we_dial_first(p) ? 0 : DIAL_FALLBACK);
	pathmgr_config_changed(p);
}

void peers_close(struct agent *a)
{
	for (unsigned i = 0; i < a->n_peers; i++) {
		log_stats(a->peers[i]);
		peer_free(a->peers[i]);
	}
	free(a->peers);
	a->peers = NULL;
	a->n_peers = a->cap_peers = 0;
}
