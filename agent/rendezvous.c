/* The rendezvous service: registration, message forwarding and relaying
 * between peers that each list the other.
 *
 * A peer proves its key in the QUIC handshake (any key is accepted here;
 * the key is the registration). Its REGISTER frames carry the keys it
 * accepts, UNREGISTER those it no longer does (a reloaded configuration
 * dropped them); the service connects two peers, by forwarding CONNECT and SYNC
 * or by relaying DATAGRAMs, only when each lists the other. A peer that
 * names nobody reaches nobody, and a refusal reads the same whether the
 * other is offline or does not list the asker: no oracle for who is there.
 *
 * State is soft: a registration lives as long as its session. A restarted
 * service answers the peers' next packets with stateless resets (the reset
 * secret comes from its key), and they register again at once.
 *
 * DIALREQ (AutoNAT) goes to rdv_autonat.c.
 *
 * Bounds: per registered peer a record of ~180 bytes plus 32 per accepted
 * key (at most RDV_MAX_KEYS), a partial frame buffer only while a frame is
 * incomplete, and token buckets for its messages, relayed bytes and
 * DIALREQs; in all, MaxPeers registrations and RDV_MAX_HANDSHAKES sessions
 * still in their handshake (quic_demux_set_limits). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "agent/log.h"
#include "agent/rendezvous.h"
#include "nat/rdvmsg.h"
#include "nat/siphash.h"

#define RDV_MAX_KEYS        1024
#define RDV_MAX_HANDSHAKES  1024
#define RDV_MSG_TOTAL_X     1000  /* global message rate = per-peer rate x this */
#define RDV_ERR_UNAVAILABLE 404

struct rdv_reg {
	struct conn *conn;
	struct rdv_reg *next;       /* in its hash bucket */
	uint8_t key[KEY_LEN];
	uint8_t (*keys)[KEY_LEN];   /* accepted keys, sorted */
	uint16_t n_keys, cap_keys;
	uint16_t rx_len;
	uint8_t *rx;                /* a partial frame, only while there is one */
	struct tbucket msgs, relay;
	struct tbucket autonat;     /* its DIALREQs (nat/autonat.h) */
	uint64_t since;
};

static size_t bucket_of(const struct rdv_server *sv, const uint8_t key[KEY_LEN])
{
	return (size_t)na_siphash(sv->k0, sv->k1, key, KEY_LEN) & (sv->n_buckets - 1);
}

static struct rdv_reg *lookup(const struct rdv_server *sv, const uint8_t key[KEY_LEN])
{
	struct rdv_reg *r = sv->buckets[bucket_of(sv, key)];

	while (r && memcmp(r->key, key, KEY_LEN))
		r = r->next;
	return r;
}

static void unlink_reg(struct rdv_server *sv, struct rdv_reg *reg)
{
	for (struct rdv_reg **pp = &sv->buckets[bucket_of(sv, reg->key)]; *pp; pp = &(*pp)->next) {
		if (*pp == reg) {
			*pp = reg->next;
			sv->st.registered--;
			return;
		}
	}
}

static void free_reg(struct rdv_reg *reg)
{
	free(reg->keys);
	free(reg->rx);
	free(reg);
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, KEY_LEN);
}

static bool lists(const struct rdv_reg *r, const uint8_t key[KEY_LEN])
{
	return r->n_keys && bsearch(key, r->keys, r->n_keys, KEY_LEN, key_cmp);
}

static bool mutual(const struct rdv_reg *a, const struct rdv_reg *b)
{
	return lists(a, b->key) && lists(b, a->key);
}

bool rdv_server_accepts(struct agent *a, const uint8_t key[KEY_LEN])
{
	(void)key;
	return a->rdvsrv != NULL;
}

/* A relayed-bytes bucket from a rate in Mbit/s (0: unlimited); bursts of
 * 100 ms worth, at least 64 KiB, so one full window of a TCP flow inside
 * passes. */
static void relay_bucket_init(struct tbucket *b, unsigned mbit, uint64_t now)
{
	uint64_t rate = (uint64_t)mbit * 125000;

	tbucket_init(b, (uint32_t)rate, (uint32_t)(rate / 10 > 65536 ? rate / 10 : 65536), now);
}

static void send_frame(struct conn *c, const uint8_t *buf, size_t len)
{
	if (len && quic_session_stream_send(c->s, buf, len) == 0)
		conn_mark(c);
}

static void send_registered(struct conn *c)
{
	struct rdvmsg m = { .type = RDVMSG_REGISTERED };
	uint8_t buf[64];

	na_endpoint_from_sockaddr(&m.registered.srflx,
				  (const struct sockaddr *)&quic_session_path(c->s)->remote);
	send_frame(c, buf, rdvmsg_encode(&m, buf, sizeof(buf)));
}

static void send_error(struct conn *c, uint16_t code, const char *why)
{
	uint8_t buf[RDVMSG_HEADER_LEN + 2 + RDVMSG_MAX_REASON];

	send_frame(c, buf, rdvmsg_encode_error(buf, sizeof(buf), code, why));
}

void rdv_server_up(struct conn *c)
{
	struct rdv_server *sv = c->a->rdvsrv;
	const uint8_t *key = quic_session_peer_key(c->s);
	uint64_t now = loop_now();
	struct rdv_reg *old, *reg;
	size_t b;

	if (!sv || !key || sv->st.registered >= c->a->cfg->rdv.max_peers) {
		quic_session_close(c->s, 0, sv ? "rendezvous full" : "not a rendezvous");
		conn_mark(c);
		return;
	}
	reg = calloc(1, sizeof(*reg));
	if (!reg) {
		quic_session_close(c->s, 0, "out of memory");
		conn_mark(c);
		return;
	}
	old = lookup(sv, key);
	if (old) {
		/* The peer restarted or moved: the newer session is the live one. */
		unlink_reg(sv, old);
		old->conn->reg = NULL;
		quic_session_close(old->conn->s, 0, "replaced by a newer session");
		conn_mark(old->conn);
		free_reg(old);
		sv->st.replaced++;
	}
	memcpy(reg->key, key, KEY_LEN);
	reg->conn = c;
	reg->since = now;
	tbucket_init(&reg->msgs, c->a->cfg->rdv.message_rate, 2 * c->a->cfg->rdv.message_rate, now);
	relay_bucket_init(&reg->relay, c->a->cfg->rdv.relay_rate, now);
	autonat_peer_limit_init(&reg->autonat, now);
	c->role = CONN_RDV_REG;
	c->reg = reg;
	b = bucket_of(sv, key);
	reg->next = sv->buckets[b];
	sv->buckets[b] = reg;
	sv->st.registered++;
}

void rdv_server_dead(struct conn *c)
{
	struct rdv_server *sv = c->a->rdvsrv;

	if (!c->reg)
		return;
	if (sv)
		unlink_reg(sv, c->reg);
	free_reg(c->reg);
	c->reg = NULL;
}

void rdv_server_path(struct conn *c)
{
	/* The peer's NAT gave it a new mapping: tell it what we now see. */
	if (c->reg)
		send_registered(c);
}

static void add_keys(struct rdv_server *sv, struct rdv_reg *reg, const struct rdvmsg_register *m)
{
	for (unsigned i = 0; i < m->count; i++) {
		const uint8_t *k = m->keys[i];
		unsigned lo = 0, hi = reg->n_keys;

		while (lo < hi) {
			unsigned mid = (lo + hi) / 2;
			if (memcmp(reg->keys[mid], k, KEY_LEN) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < reg->n_keys && !memcmp(reg->keys[lo], k, KEY_LEN))
			continue;
		if (reg->n_keys >= RDV_MAX_KEYS) {
			sv->st.refused_keys++;
			continue;
		}
		if (reg->n_keys == reg->cap_keys) {
			uint16_t cap = reg->cap_keys ? reg->cap_keys * 2 : 4;
			void *p = realloc(reg->keys, (size_t)cap * KEY_LEN);
			if (!p) {
				sv->st.refused_keys++;
				continue;
			}
			reg->keys = p;
			reg->cap_keys = cap;
		}
		memmove(reg->keys[lo + 1], reg->keys[lo], (size_t)(reg->n_keys - lo) * KEY_LEN);
		memcpy(reg->keys[lo], k, KEY_LEN);
		reg->n_keys++;
	}
}

static void remove_keys(struct rdv_reg *reg, const struct rdvmsg_register *m)
{
	for (unsigned i = 0; i < m->count; i++) {
		uint8_t (*k)[KEY_LEN] = reg->n_keys ?
			bsearch(m->keys[i], reg->keys, reg->n_keys, KEY_LEN, key_cmp) : NULL;

		if (!k)
			continue;
		memmove(k, k + 1, (size_t)(reg->keys + reg->n_keys - (k + 1)) * KEY_LEN);
		reg->n_keys--;
	}
}

/* Tells each registered peer that reg now lists, and that lists reg, that
 * reg is here: a dial it sent through us before reg registered was dropped,
 * and it should not wait for its retransmission to find out. */
static void announce(struct rdv_server *sv, struct rdv_reg *reg, const struct rdvmsg_register *m)
{
	struct rdvmsg p = { .type = RDVMSG_PRESENT };
	uint8_t buf[RDVMSG_HEADER_LEN + RDVMSG_KEY_LEN];

	memcpy(p.present.key, reg->key, KEY_LEN);
	for (unsigned i = 0; i < m->count; i++) {
		struct rdv_reg *to = lookup(sv, m->keys[i]);

		if (to && to != reg && mutual(reg, to))
			send_frame(to->conn, buf, rdvmsg_encode(&p, buf, sizeof(buf)));
	}
}

/* CONNECT and SYNC name their target going in and their source going out. */
static void forward(struct rdv_server *sv, struct rdv_reg *from, struct rdvmsg *m)
{
	uint8_t *key = m->type == RDVMSG_CONNECT ? m->connect.key : m->sync.key;
	struct rdv_reg *to = lookup(sv, key);
	uint8_t buf[RDVMSG_MAX_FRAME];

	if (!to || !mutual(from, to)) {
		if (!to)
			sv->st.dropped_unknown++;
		else
			sv->st.dropped_not_allowed++;
		send_error(from->conn, RDV_ERR_UNAVAILABLE, "peer not available");
		return;
	}
	memcpy(key, from->key, KEY_LEN);
	send_frame(to->conn, buf, rdvmsg_encode(m, buf, sizeof(buf)));
	sv->st.forwarded++;
}

static void on_message(struct rdv_server *sv, struct rdv_reg *reg, struct rdvmsg *m)
{
	uint8_t buf[16];

	switch (m->type) {
	case RDVMSG_REGISTER:
		add_keys(sv, reg, &m->reg);
		sv->st.registrations++;
		send_registered(reg->conn);
		announce(sv, reg, &m->reg);
		break;
	case RDVMSG_UNREGISTER:
		remove_keys(reg, &m->reg);
		break;
	case RDVMSG_CONNECT:
	case RDVMSG_SYNC:
		forward(sv, reg, m);
		break;
	case RDVMSG_PING:
		send_frame(reg->conn, buf, rdvmsg_encode_ping(buf, sizeof(buf), true, m->ping.nonce));
		break;
	case RDVMSG_DIALREQ:
		rdv_autonat_request(reg->conn, &reg->autonat, &m->dialreq);
		break;
	default:
		break; /* REGISTERED, ERROR, PONG, DIALRESP: nothing to do */
	}
}

static void violation(struct rdv_server *sv, struct conn *c, const char *why)
{
	char key[KEY_B64_LEN];

	sv->st.dropped_bad++;
	key_to_base64(key, c->reg->key);
	log_info("%s: rendezvous: closing %s: bad message: %s", c->a->cfg->name, key, why);
	quic_session_close(c->s, 1, "protocol violation");
	conn_mark(c);
}

void rdv_server_stream(struct conn *c, const uint8_t *data, size_t len)
{
	struct rdv_server *sv = c->a->rdvsrv;
	struct rdv_reg *reg = c->reg;
	static struct rdvmsg m;
	uint64_t now = loop_now();

	if (!sv || !reg)
		return;
	while (len) {
		const uint8_t *frame;
		size_t need = 0, flen;
		const char *why = NULL;
		ssize_t f;

		if (reg->rx_len) {
			/* Complete the partial frame first. */
			f = rdvmsg_frame(reg->rx, reg->rx_len, &need, &why);
			if (f < 0)
				return violation(sv, c, why);
			size_t take = need - reg->rx_len;
			if (take > len)
				take = len;
			memcpy(reg->rx + reg->rx_len, data, take);
			reg->rx_len += (uint16_t)take;
			data += take;
			len -= take;
			f = rdvmsg_frame(reg->rx, reg->rx_len, &need, &why);
			if (f < 0)
				return violation(sv, c, why);
			if (f == 0)
				continue;
			frame = reg->rx;
			flen = (size_t)f;
		} else {
			f = rdvmsg_frame(data, len, &need, &why);
			if (f < 0)
				return violation(sv, c, why);
			if (f == 0) {
				/* Keep the start of a frame; the buffer lives only
				 * until the frame is complete. */
				reg->rx = malloc(RDVMSG_MAX_FRAME);
				if (!reg->rx)
					return violation(sv, c, "out of memory");
				memcpy(reg->rx, data, len);
				reg->rx_len = (uint16_t)len;
				return;
			}
			frame = data;
			flen = (size_t)f;
			data += flen;
			len -= flen;
		}
		sv->st.messages++;
		if (!tbucket_take(&reg->msgs, 1, now) || !tbucket_take(&sv->msgs_total, 1, now)) {
			sv->st.dropped_rate++;
		} else if (!rdvmsg_decode(&m, frame, flen, &why)) {
			return violation(sv, c, why);
		} else {
			on_message(sv, reg, &m);
		}
		if (frame == reg->rx) {
			free(reg->rx);
			reg->rx = NULL;
			reg->rx_len = 0;
		}
		if (!c->reg)
			return;
	}
}

void rdv_server_datagram(struct conn *c, const uint8_t *data, size_t len)
{
	struct rdv_server *sv = c->a->rdvsrv;
	struct rdv_reg *from = c->reg, *to;
	const uint8_t *key, *pkt;
	uint8_t hdr[RDVMSG_RELAY_HDR];
	struct iovec iov[2];
	uint64_t now = loop_now();
	size_t plen;

	if (!sv || !from)
		return;
	if (!rdvmsg_relay_parse(data, len, &key, &pkt, &plen)) {
		sv->st.dropped_bad++;
		return;
	}
	to = lookup(sv, key);
	if (!to) {
		sv->st.dropped_unknown++;
		return;
	}
	if (!mutual(from, to)) {
		sv->st.dropped_not_allowed++;
		return;
	}
	if (!tbucket_take(&from->relay, (uint32_t)plen, now) ||
	    !tbucket_take(&sv->relay_total, (uint32_t)plen, now)) {
		sv->st.dropped_rate++;
		return;
	}
	rdvmsg_relay_hdr(hdr, from->key);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ (void *)pkt, plen };
	if (quic_session_send_datagram(to->conn->s, iov, 2) < 0) {
		sv->st.dropped_full++;
		return;
	}
	conn_mark(to->conn);
	sv->st.relayed_dgrams++;
	sv->st.relayed_bytes += plen;
}

int rdv_server_open(struct agent *a)
{
	const struct config_rendezvous *rc = &a->cfg->rdv;
	struct rdv_server *sv = calloc(1, sizeof(*sv));
	uint64_t k[2], now = loop_now();
	char ip[INET6_ADDRSTRLEN], ep[NA_ENDPOINT_STRLEN];
	size_t n = 16;
	int err;

	if (!sv)
		return -1;
	while (n < rc->max_peers / 2)
		n *= 2;
	sv->buckets = calloc(n, sizeof(*sv->buckets));
	if (!sv->buckets || gnutls_rnd(GNUTLS_RND_NONCE, k, sizeof(k)) != 0) {
		free(sv->buckets);
		free(sv);
		return -1;
	}
	sv->n_buckets = n;
	sv->k0 = k[0];
	sv->k1 = k[1];
	sv->a = a;
	tbucket_init(&sv->msgs_total, rc->message_rate * RDV_MSG_TOTAL_X,
		     2 * rc->message_rate * RDV_MSG_TOTAL_X, now);
	relay_bucket_init(&sv->relay_total, rc->relay_rate_total, now);
	quic_demux_set_limits(a->demux, rc->max_peers + a->n_peers + 16, RDV_MAX_HANDSHAKES);
	a->rdvsrv = sv;
	err = rdv_autonat_open(a);
	if (err < 0)
		/* The rest of the service does not need it: carry on, and
		 * answer every DIALREQ "unavailable". */
		log_warn("%s: rendezvous: no AutoNAT dial-back socket on %s: %s; reachability "
			 "checks are unavailable", a->cfg->name,
			 na_ip_str(&rc->alternate.ip, ip, sizeof(ip)), strerror(-err));
	else if (sv->dial.fd >= 0)
		log_info("%s: rendezvous: AutoNAT dial-backs from %s", a->cfg->name,
			 na_endpoint_str(&sv->dial.from, ep, sizeof(ep)));
	else
		log_info("%s: rendezvous: AutoNAT unavailable (dial-backs need AlternateListen)",
			 a->cfg->name);
	return 0;
}

void rdv_server_close(struct agent *a)
{
	struct rdv_server *sv = a->rdvsrv;

	if (!sv)
		return;
	rdv_autonat_close(a);
	for (size_t i = 0; i < sv->n_buckets; i++) {
		struct rdv_reg *r = sv->buckets[i], *next;
		for (; r; r = next) {
			next = r->next;
			r->conn->reg = NULL;
			free_reg(r);
		}
	}
	free(sv->buckets);
	free(sv);
	a->rdvsrv = NULL;
}
