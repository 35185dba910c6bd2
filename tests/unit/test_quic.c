/* quic/: two endpoints in one process, each a demux with its sessions, joined
 * by an in-memory network with a fixed one-way delay and a fake clock. No
 * sockets. Covers the handshake with pinned raw public keys and its
 * failures, DATAGRAMs and the control stream both ways, client migration,
 * idle timeout and keep-alive, stateless reset after the server forgets,
 * local close, version negotiation and the RFC 9443 classifier. */
#include "quic/demux.h"
#include "quic/dgram.h"
#include "quic/session.h"
#include "quic/tlsid.h"
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <nettle/eddsa.h>
#include <ngtcp2/ngtcp2.h>
#include <stdlib.h>

#define MS            1000000ULL
#define SEC           1000000000ULL
#define NET_DELAY     (2 * MS)   /* one way */
#define NET_QUEUE     8192
#define STREAM_MAX    (256 * 1024)
#define SEQ_MAX       4096
#define CTX_SEQ       9          /* datagrams carrying a sequence number */

static uint64_t now = 1000 * SEC;

/* --- the network --- */

struct net_pkt {
	struct sockaddr_storage from, to;
	uint64_t due;
	uint8_t ecn;
	size_t len;
	uint8_t data[QUIC_MAX_PKT];
};

static struct net_pkt *netq;
static size_t net_head, net_len;
static uint64_t net_sent, net_not_quic;

static void net_push(const struct sockaddr_storage *from, const struct sockaddr_storage *to,
		     uint8_t ecn, const uint8_t *p, size_t n)
{
	struct net_pkt *k;

	net_sent++;
	if (quic_demux_classify(p, n) != QUIC_CLASS_QUIC)
		net_not_quic++;
	if (net_len == NET_QUEUE || n > QUIC_MAX_PKT)
		return;  /* overflow: a loss */
	k = &netq[(net_head + net_len++) % NET_QUEUE];
	k->from = *from;
	k->to = *to;
	k->ecn = ecn;
	k->due = now + NET_DELAY;
	k->len = n;
	memcpy(k->data, p, n);
}

static void sa4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
}

static void sa6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &s6->sin6_addr);
}

static bool sa_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
	const struct sockaddr_in6 *x6 = (const void *)a, *y6 = (const void *)b;

	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET6)
		return x6->sin6_port == y6->sin6_port &&
		       !memcmp(&x6->sin6_addr, &y6->sin6_addr, sizeof(x6->sin6_addr));
	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

static unsigned sa_port(const struct sockaddr_storage *a)
{
	return ntohs(((const struct sockaddr_in *)a)->sin_port);
}

/* --- one endpoint --- */

struct side {
	const char *name;
	uint8_t seed[QUIC_KEY_LEN], pub[QUIC_KEY_LEN];
	struct quic_tls_cred *cred;
	struct quic_config cfg;
	struct quic_demux *dmx;
	struct quic_session *sess;
	struct sockaddr_storage addr[2];
	int naddr;
	uint64_t rx_per_addr[2];
	bool silent;         /* drop everything this side sends */
	/* what the callbacks saw */
	int ups;
	uint64_t dgrams, dgram_bad;
	uint64_t last_ctx;
	size_t last_len;
	uint8_t last[QUIC_MAX_PKT];
	uint8_t seen[SEQ_MAX];
	uint8_t stream[STREAM_MAX];
	size_t stream_len;
	int path_ev[3];
	struct quic_path path_last[3];
};

struct acceptor {
	bool allow_any;
	uint8_t allowed[QUIC_KEY_LEN];
	int calls;
	uint8_t last[QUIC_KEY_LEN];
};

struct world {
	struct side c, s;
	struct acceptor acc;
};

static bool accept_key(void *arg, const uint8_t key[QUIC_KEY_LEN])
{
	struct acceptor *a = arg;

	a->calls++;
	memcpy(a->last, key, QUIC_KEY_LEN);
	return a->allow_any || memcmp(key, a->allowed, QUIC_KEY_LEN) == 0;
}

static void on_up(struct quic_session *s)
{
	struct side *sd = quic_session_user(s);

	if (sd)
		sd->ups++;
}

static void on_datagram(struct quic_session *s, const uint8_t *p, size_t n)
{
	struct side *sd = quic_session_user(s);
	const uint8_t *pl;
	size_t len;
	uint64_t ctx;

	if (!sd)
		return;
	if (!quic_dgram_decode(p, n, &ctx, &pl, &len)) {
		sd->dgram_bad++;
		return;
	}
	sd->dgrams++;
	sd->last_ctx = ctx;
	sd->last_len = len;
	memcpy(sd->last, pl, len);
	if (ctx == CTX_SEQ && len >= 4) {
		uint32_t seq = (uint32_t)pl[0] << 24 | pl[1] << 16 | pl[2] << 8 | pl[3];

		if (seq < SEQ_MAX)
			sd->seen[seq]++;
	}
}

static void on_stream(struct quic_session *s, const uint8_t *p, size_t n)
{
	struct side *sd = quic_session_user(s);

	if (!sd || sd->stream_len + n > STREAM_MAX)
		return;
	memcpy(sd->stream + sd->stream_len, p, n);
	sd->stream_len += n;
}

static void on_path(struct quic_session *s, enum quic_path_event ev, const struct quic_path *p)
{
	struct side *sd = quic_session_user(s);

	if (!sd)
		return;
	sd->path_ev[ev]++;
	sd->path_last[ev] = *p;
}

static const struct quic_session_ops ops = {
	.up = on_up, .datagram = on_datagram, .stream = on_stream, .path = on_path,
};

static void keypair(uint8_t seed[QUIC_KEY_LEN], uint8_t pub[QUIC_KEY_LEN])
{
	gnutls_rnd(GNUTLS_RND_KEY, seed, QUIC_KEY_LEN);
	ed25519_sha512_public_key(pub, seed);
}

static void side_init(struct side *sd, const char *name, bool with_key, bool server,
		      struct acceptor *acc)
{
	const char *why = NULL;

	memset(sd, 0, sizeof(*sd));
	sd->name = name;
	keypair(sd->seed, sd->pub);
	if (quic_tls_cred_new(&sd->cred, with_key ? sd->seed : NULL,
			      with_key ? sd->pub : NULL, &why) != 0) {
		printf("# cred: %s\n", why);
		exit(1);
	}
	sd->cfg.cred = sd->cred;
	quic_tls_reset_secret(sd->cfg.reset_secret, sd->seed);
	sd->cfg.ops = &ops;
	if (server) {
		sd->cfg.accept_key = accept_key;
		sd->cfg.accept_arg = acc;
	}
	sd->dmx = quic_demux_new(&sd->cfg, 16);
}

static void side_free(struct side *sd)
{
	quic_session_free(sd->sess);
	sd->sess = NULL;
	quic_demux_free(sd->dmx);
	quic_tls_cred_free(sd->cred);
}

/* A client and a server; the server admits exactly the client's key. */
static void world_init(struct world *w, bool client_key)
{
	net_head = net_len = 0;
	side_init(&w->c, "client", client_key, false, NULL);
	side_init(&w->s, "server", true, true, &w->acc);
	memset(&w->acc, 0, sizeof(w->acc));
	memcpy(w->acc.allowed, w->c.pub, QUIC_KEY_LEN);
	sa4(&w->c.addr[0], "127.0.0.1", 5000);
	sa4(&w->c.addr[1], "127.0.0.1", 5001);
	w->c.naddr = 2;
	sa4(&w->s.addr[0], "127.0.0.1", 4433);
	w->s.naddr = 1;
}

static void world_free(struct world *w)
{
	side_free(&w->c);
	side_free(&w->s);
}

static struct quic_session *client_connect(struct world *w, const uint8_t *pin)
{
	struct quic_path p;
	int err;

	p.local = w->c.addr[0];
	p.remote = w->s.addr[0];
	w->c.sess = quic_session_client_new(&w->c.cfg, w->c.dmx, &p, pin, &w->c, now, &err);
	CHECK(w->c.sess != NULL, "client session created (%s)", quic_strerror(err));
	return w->c.sess;
}

static void flush(struct side *sd)
{
	uint8_t buf[QUIC_MAX_PKT];
	struct quic_tx tx;
	ssize_t n;

	if (!sd->sess)
		return;
	while ((n = quic_session_write(sd->sess, buf, sizeof(buf), &tx, now)) > 0) {
		struct sockaddr_in *from = (struct sockaddr_in *)&tx.path.local;

		/* As the kernel does for a socket bound to a wildcard: an
		 * unspecified source becomes the host's address. */
		if (from->sin_family == AF_INET && !from->sin_addr.s_addr)
			from->sin_addr = ((struct sockaddr_in *)&sd->addr[0])->sin_addr;
		if (!sd->silent)
			net_push(&tx.path.local, &tx.path.remote, tx.ecn, buf, (size_t)n);
	}
}

static struct side *owner(struct world *w, const struct sockaddr_storage *a, int *idx)
{
	struct side *sides[2] = { &w->c, &w->s };

	for (int i = 0; i < 2; i++)
		for (int j = 0; j < sides[i]->naddr; j++)
			if (sa_eq(&sides[i]->addr[j], a)) {
				*idx = j;
				return sides[i];
			}
	return NULL;
}

static void deliver(struct world *w, struct net_pkt *k)
{
	uint8_t out[QUIC_MAX_PKT];
	size_t outlen;
	struct quic_session *sp;
	struct quic_path path;
	int idx = 0;
	struct side *sd = owner(w, &k->to, &idx);

	if (!sd)
		return;
	sd->rx_per_addr[idx]++;
	path.local = k->to;
	path.remote = k->from;
	switch (quic_demux_input(sd->dmx, k->data, k->len, &path, k->ecn, now, &sp,
				 out, sizeof(out), &outlen)) {
	case QUIC_DEMUX_ACCEPTED:
		if (!sd->sess) {
			sd->sess = sp;
			quic_session_set_user(sp, sd);
		}
		break;
	case QUIC_DEMUX_REPLY:
		if (!sd->silent)
			net_push(&k->to, &k->from, 0, out, outlen);
		break;
	default:
		break;
	}
	flush(sd);
}

static void timers(struct side *sd)
{
	if (sd->sess && !quic_session_is_dead(sd->sess) &&
	    quic_session_expiry(sd->sess) <= now)
		quic_session_handle_expiry(sd->sess, now);
}

/* Advances the clock by dt in 1 ms steps, firing timers and delivering
 * whatever is due. */
static void run(struct world *w, uint64_t dt)
{
	uint64_t end = now + dt;

	do {
		timers(&w->c);
		timers(&w->s);
		flush(&w->c);
		flush(&w->s);
		while (net_len && netq[net_head].due <= now) {
			struct net_pkt *k = &netq[net_head];

			net_head = (net_head + 1) % NET_QUEUE;
			net_len--;
			deliver(w, k);
		}
		if (now >= end)
			break;
		now += MS;
	} while (1);
}

static bool both_up(struct world *w)
{
	return w->c.sess && w->s.sess && quic_session_is_up(w->c.sess) &&
	       quic_session_is_up(w->s.sess);
}

static bool run_until_up(struct world *w)
{
	for (int i = 0; i < 2000 && !both_up(w); i++)
		run(w, MS);
	return both_up(w);
}

static bool ended(struct quic_session *s)
{
	return !s || quic_session_state(s) >= QUIC_STATE_CLOSING;
}

static void run_until_ended(struct world *w)
{
	for (int i = 0; i < 3000 && !(ended(w->c.sess) && ended(w->s.sess)); i++)
		run(w, MS);
}

static int send_dgram(struct quic_session *s, uint64_t ctx, const uint8_t *p, size_t n)
{
	uint8_t hdr[QUIC_VARINT_MAXLEN];
	struct iovec iov[2];

	iov[0].iov_base = hdr;
	iov[0].iov_len = quic_dgram_encode_hdr(hdr, sizeof(hdr), ctx);
	iov[1].iov_base = (void *)p;
	iov[1].iov_len = n;
	return quic_session_send_datagram(s, iov, 2);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7);
}

static bool contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

/* --- scenarios --- */

static void test_handshake_and_data(void)
{
	struct world w;
	char want[QUIC_KEY_B64_LEN];
	uint8_t buf[2000];
	static uint8_t big[100000];
	size_t m;

	world_init(&w, true);
	client_connect(&w, w.s.pub);
	CHECK_EQ_INT(send_dgram(w.c.sess, 0, buf, 10), QUIC_ERR_STATE, "no datagrams before up");
	CHECK_EQ_INT(quic_session_dgram_max(w.c.sess), 0, "datagram max is 0 before up");
	CHECK_EQ_INT(quic_session_stream_send(w.c.sess, "early ", 6), 0,
		     "control bytes before up are queued");
	CHECK(run_until_up(&w), "handshake completes");
	CHECK_EQ_INT(w.c.ups, 1, "client reports up once");
	CHECK_EQ_INT(w.s.ups, 1, "server reports up once");
	CHECK(quic_session_peer_key(w.c.sess) &&
	      memcmp(quic_session_peer_key(w.c.sess), w.s.pub, QUIC_KEY_LEN) == 0,
	      "client reports the server's key");
	CHECK(quic_session_peer_key(w.s.sess) &&
	      memcmp(quic_session_peer_key(w.s.sess), w.c.pub, QUIC_KEY_LEN) == 0,
	      "server reports the client's key");
	CHECK(w.acc.calls == 1 && memcmp(w.acc.last, w.c.pub, QUIC_KEY_LEN) == 0,
	      "accept_key asked once, about the client's key");
	CHECK(quic_session_is_server(w.s.sess) && !quic_session_is_server(w.c.sess),
	      "roles");
	CHECK_EQ_STR(quic_session_reason(w.c.sess), "", "no client failure reason");
	quic_tls_key_str(want, w.s.pub);
	CHECK(strlen(want) == 44, "keys print as 44 base64 characters");

	/* Let PMTUD settle so "near the max" means the largest path size. */
	run(&w, 2 * SEC);
	CHECK(both_up(&w), "still up after 2 s idle");

	/* Datagrams at the maximum size both ways, contexts 0 and 7. */
	m = quic_session_dgram_max(w.c.sess);
	CHECK(m >= 1100 && m < QUIC_MAX_PKT, "client datagram max %zu is sane", m);
	fill(buf, sizeof(buf), 1);
	CHECK_EQ_INT(send_dgram(w.c.sess, 0, buf, m - 1), 0, "client queues max datagram, ctx 0");
	run(&w, 10 * MS);
	CHECK(w.s.dgrams == 1 && w.s.last_ctx == 0 && w.s.last_len == m - 1 &&
	      memcmp(w.s.last, buf, m - 1) == 0, "server receives it intact");
	m = quic_session_dgram_max(w.s.sess);
	fill(buf, sizeof(buf), 2);
	CHECK_EQ_INT(send_dgram(w.s.sess, 7, buf, m - 1), 0, "server queues max datagram, ctx 7");
	CHECK_EQ_INT(send_dgram(w.s.sess, 7, buf, m - 10), 0, "and one 9 bytes smaller");
	run(&w, 10 * MS);
	CHECK(w.c.dgrams == 2 && w.c.last_ctx == 7 && w.c.last_len == m - 10 &&
	      memcmp(w.c.last, buf, m - 10) == 0, "client receives both intact");
	/* A packet damaged on the way is dropped; the session carries on. */
	CHECK_EQ_INT(send_dgram(w.s.sess, 7, buf, 100), 0, "server queues a datagram");
	flush(&w.s);
	for (size_t i = 0; i < net_len; i++)
		netq[(net_head + i) % NET_QUEUE].data[netq[(net_head + i) % NET_QUEUE].len - 1] ^= 1;
	run(&w, 10 * MS);
	CHECK(w.c.dgrams == 2 && quic_session_is_up(w.c.sess),
	      "a corrupted packet is ignored, the session stays up");
	m = quic_session_dgram_max(w.c.sess);
	CHECK_EQ_INT(send_dgram(w.c.sess, 0, buf, m), QUIC_ERR_DGRAM_TOO_BIG,
		     "one byte over the max: does not fit");
	CHECK_EQ_INT(send_dgram(w.c.sess, 7, buf, 10), 0, "small datagram still fine");
	run(&w, 10 * MS);
	CHECK(w.s.dgrams == 2 && w.s.last_ctx == 7 && w.s.last_len == 10,
	      "server receives the small one");
	{
		int rv = 0, queued = 0;

		while (queued <= QUIC_DGRAM_QUEUE && (rv = send_dgram(w.c.sess, 7, buf, 10)) == 0)
			queued++;
		CHECK(queued == QUIC_DGRAM_QUEUE && rv == QUIC_ERR_DGRAM_FULL,
		      "queue takes %d datagrams, then says full", QUIC_DGRAM_QUEUE);
		run(&w, 20 * MS);
		CHECK_EQ_INT(w.s.dgrams, 2 + QUIC_DGRAM_QUEUE, "all queued ones arrive");
	}

	/* Control stream both ways, small and large. */
	fill(big, sizeof(big), 3);
	CHECK_EQ_INT(quic_session_stream_send(w.c.sess, "hello server", 12), 0, "client stream send");
	CHECK_EQ_INT(quic_session_stream_send(w.c.sess, big, sizeof(big)), 0, "client sends 100 kB");
	CHECK_EQ_INT(quic_session_stream_send(w.s.sess, "hello client", 12), 0, "server stream send");
	run(&w, 500 * MS);
	CHECK(w.s.stream_len == 18 + sizeof(big) && memcmp(w.s.stream, "early hello server", 18) == 0 &&
	      memcmp(w.s.stream + 18, big, sizeof(big)) == 0, "server receives all client bytes in order");
	CHECK(w.c.stream_len == 12 && memcmp(w.c.stream, "hello client", 12) == 0,
	      "client receives server bytes");

	/* A local close reaches the peer with code and phrase, even when the
	 * first CONNECTION_CLOSE is lost: the closing side answers the
	 * peer's next packet with it again. */
	quic_session_close(w.c.sess, 5, "bye");
	w.c.silent = true;
	run(&w, 10 * MS);
	w.c.silent = false;
	CHECK(quic_session_state(w.c.sess) == QUIC_STATE_CLOSING && quic_session_is_up(w.s.sess),
	      "client closing, its close lost, server still up");
	CHECK_EQ_INT(send_dgram(w.s.sess, 7, buf, 10), 0, "server sends again");
	run_until_ended(&w);
	CHECK_EQ_STR(quic_session_reason(w.s.sess), "peer closed: application error 5: \"bye\"",
		     "server learns why the client closed");
	CHECK_EQ_STR(quic_session_reason(w.c.sess), "closed locally: bye", "client reason");
	run(&w, 3 * SEC);
	CHECK(quic_session_is_dead(w.c.sess) && quic_session_is_dead(w.s.sess),
	      "both dead after the closing/draining period");
	CHECK_EQ_INT(quic_session_write(w.c.sess, buf, sizeof(buf), &(struct quic_tx){ 0 }, now),
		     QUIC_ERR_CLOSED, "write on a dead session says closed");
	world_free(&w);
}

static void test_wrong_pin(void)
{
	struct world w;
	uint8_t wrong_seed[QUIC_KEY_LEN], wrong[QUIC_KEY_LEN];
	char got[QUIC_KEY_B64_LEN], want[QUIC_KEY_B64_LEN], reason[200];

	world_init(&w, true);
	keypair(wrong_seed, wrong);
	client_connect(&w, wrong);
	run_until_ended(&w);
	quic_tls_key_str(got, w.s.pub);
	quic_tls_key_str(want, wrong);
	snprintf(reason, sizeof(reason), "peer presented key %s, expected %s", got, want);
	CHECK_EQ_STR(quic_session_reason(w.c.sess), reason, "client names both keys");
	CHECK(w.s.sess && contains(quic_session_reason(w.s.sess), "TLS alert 42 (bad certificate)"),
	      "server learns alert 42 (%s)", w.s.sess ? quic_session_reason(w.s.sess) : "no session");
	CHECK(w.c.ups == 0 && w.s.ups == 0, "neither side ever up");
	CHECK(quic_session_peer_key(w.c.sess) == NULL, "no peer key reported");
	world_free(&w);
}

static void test_server_rejects(void)
{
	struct world w;
	char got[QUIC_KEY_B64_LEN], reason[200];

	world_init(&w, true);
	memset(w.acc.allowed, 0, QUIC_KEY_LEN);  /* not in the "peer table" */
	client_connect(&w, w.s.pub);
	run_until_ended(&w);
	quic_tls_key_str(got, w.c.pub);
	snprintf(reason, sizeof(reason), "peer key %s is not accepted", got);
	CHECK(w.s.sess != NULL, "server session existed");
	CHECK_EQ_STR(w.s.sess ? quic_session_reason(w.s.sess) : NULL, reason,
		     "server names the refused key");
	CHECK(contains(quic_session_reason(w.c.sess), "TLS alert 42 (bad certificate)"),
	      "client learns alert 42 (%s)", quic_session_reason(w.c.sess));
	CHECK(w.c.ups == 0, "client never up, though its TLS handshake completed");
	world_free(&w);
}

static void test_no_client_key(void)
{
	struct world w;

	world_init(&w, false);
	client_connect(&w, w.s.pub);
	run_until_ended(&w);
	CHECK(ended(w.c.sess) && ended(w.s.sess), "both sides fail");
	CHECK(contains(quic_session_reason(w.c.sess), "TLS alert"),
	      "client reason names an alert (%s)", quic_session_reason(w.c.sess));
	CHECK(w.s.sess && contains(quic_session_reason(w.s.sess), "alert"),
	      "server reason names an alert (%s)", w.s.sess ? quic_session_reason(w.s.sess) : "");
	CHECK(w.c.ups == 0 && w.s.ups == 0 && w.acc.calls == 0, "never up, no key to accept");
	world_free(&w);
}

static void test_handshake_timeout(void)
{
	struct world w;
	uint64_t start = now;

	world_init(&w, true);
	w.c.cfg.handshake_timeout = 2 * SEC;
	w.s.silent = true;  /* nobody home */
	client_connect(&w, w.s.pub);
	while (!quic_session_is_dead(w.c.sess) && now - start < 5 * SEC)
		run(&w, 10 * MS);
	CHECK(quic_session_is_dead(w.c.sess), "client gives up");
	CHECK_EQ_STR(quic_session_reason(w.c.sess), "handshake timed out", "client reason");
	CHECK(now - start >= 2 * SEC && now - start < 2 * SEC + 100 * MS,
	      "at the 2 s handshake timeout (%llu ms)", (unsigned long long)((now - start) / MS));
	world_free(&w);
}

static void test_close_in_handshake(void)
{
	struct world w;

	world_init(&w, true);
	client_connect(&w, w.s.pub);
	run(&w, 3 * MS);  /* the server has the Initial, the client not yet its reply */
	quic_session_close(w.c.sess, 9, "changed my mind");
	run_until_ended(&w);
	CHECK(w.s.sess && contains(quic_session_reason(w.s.sess), "peer closed"),
	      "server learns the client gave up (%s)", w.s.sess ? quic_session_reason(w.s.sess) : "");
	CHECK(w.c.ups == 0 && w.s.ups == 0, "never up");
	run(&w, 3 * SEC);
	CHECK(quic_session_is_dead(w.c.sess), "client dead after closing period");
	world_free(&w);
}

static void send_seq(struct quic_session *s, uint32_t seq)
{
	uint8_t p[1000];

	fill(p, sizeof(p), seq);
	p[0] = (uint8_t)(seq >> 24);
	p[1] = (uint8_t)(seq >> 16);
	p[2] = (uint8_t)(seq >> 8);
	p[3] = (uint8_t)seq;
	send_dgram(s, CTX_SEQ, p, sizeof(p));
}

/* The server's NAT gave it a new port: the client moves only the remote
 * (same local address, which ngtcp2 0.12 refuses without the rename that
 * quic_session_migrate does), and datagrams flow on the new path. */
static void test_migrate_remote_only(void)
{
	struct world w;
	struct quic_path np;
	struct quic_session_stats st;
	uint64_t before;

	world_init(&w, true);
	sa4(&w.s.addr[1], "127.0.0.3", 4433);
	w.s.naddr = 2;
	client_connect(&w, w.s.pub);
	CHECK(run_until_up(&w), "remote-only migration: handshake completes");
	run(&w, 50 * MS);
	np.local = w.c.addr[0];
	np.remote = w.s.addr[1];
	CHECK_EQ_INT(quic_session_migrate(w.c.sess, &np, now), QUIC_OK,
		     "a migration that keeps the local address starts");
	run(&w, 200 * MS);
	CHECK(sa_eq(&quic_session_path(w.c.sess)->remote, &w.s.addr[1]),
	      "the client now sends to the server's new address");
	CHECK(sa_eq(&quic_session_path(w.c.sess)->local, &w.c.addr[0]),
	      "from its own address again, not the placeholder");
	quic_session_get_stats(w.s.sess, &st);
	before = st.dgram_recv;
	for (uint32_t i = 0; i < 10; i++) {
		send_seq(w.c.sess, i);
		run(&w, MS);
	}
	run(&w, 50 * MS);
	quic_session_get_stats(w.s.sess, &st);
	CHECK_EQ_INT(st.dgram_recv - before, 10, "all datagrams arrive over the new path");
	CHECK(w.s.rx_per_addr[1] > 10, "they reach the server's new address");
	world_free(&w);
}

static void test_migration(void)
{
	struct world w;
	struct quic_path np;
	uint32_t seq = 0, validated_at = 0, missing = 0, dup = 0;
	uint64_t s_tx_before;
	int rv = QUIC_ERR_NO_CID;

	world_init(&w, true);
	client_connect(&w, w.s.pub);
	CHECK(run_until_up(&w), "handshake completes");
	run(&w, 50 * MS);  /* NEW_CONNECTION_IDs arrive */
	for (int i = 0; i < 40; i++, seq++) {
		send_seq(w.c.sess, seq);
		run(&w, MS);
	}
	np.local = w.c.addr[1];
	np.remote = w.s.addr[0];
	rv = quic_session_migrate(w.c.sess, &np, now);
	CHECK_EQ_INT(rv, QUIC_OK, "client starts migrating to port 5001");
	CHECK_EQ_INT(quic_session_migrate(w.s.sess, &np, now), QUIC_ERR_STATE,
		     "a server cannot migrate");
	s_tx_before = w.c.rx_per_addr[1];
	for (int i = 0; i < 300 && seq < SEQ_MAX; i++, seq++) {
		send_seq(w.c.sess, seq);
		if (!validated_at && w.c.path_ev[QUIC_PATH_MIGRATED])
			validated_at = seq;
		run(&w, MS);
	}
	run(&w, 100 * MS);
	CHECK_EQ_INT(w.c.path_ev[QUIC_PATH_VALIDATED], 1, "client: path validated");
	CHECK_EQ_INT(w.c.path_ev[QUIC_PATH_MIGRATED], 1, "client: migrated");
	CHECK(sa_port(&quic_session_path(w.c.sess)->local) == 5001, "client path is now port 5001");
	CHECK(sa_port(&w.c.path_last[QUIC_PATH_MIGRATED].local) == 5001, "event names the new path");
	CHECK(w.s.path_ev[QUIC_PATH_MIGRATED] >= 1 &&
	      sa_port(&quic_session_path(w.s.sess)->remote) == 5001,
	      "server follows: sends to port 5001");
	CHECK(w.c.rx_per_addr[1] > s_tx_before + 50, "server packets arrive on the new port (%llu)",
	      (unsigned long long)(w.c.rx_per_addr[1] - s_tx_before));
	CHECK(validated_at > 0, "validation happened mid-flow (at datagram %u of %u)",
	      validated_at, seq);
	for (uint32_t i = 0; i < seq; i++) {
		if (!w.s.seen[i])
			missing += i >= validated_at;
		dup += w.s.seen[i] > 1;
	}
	CHECK_EQ_INT(missing, 0, "no datagram lost after validation");
	missing = 0;
	for (uint32_t i = 0; i < seq; i++)
		missing += !w.s.seen[i];
	CHECK_EQ_INT(missing, 0, "in fact none lost at all");
	CHECK_EQ_INT(dup, 0, "no datagram duplicated");
	CHECK(both_up(&w), "still up");
	world_free(&w);
}

/* The agent's relayed path (agent/relay.c) is a path between two addresses
 * of 100::/64 that never reach a wire. A session that started there moves
 * to a direct IPv4 path by migration: no new handshake, datagrams go on. */
static void test_relay_to_direct(void)
{
	struct world w;
	struct quic_path p;
	uint32_t seq = 0, missing = 0;
	int err, ups;

	world_init(&w, true);
	sa6(&w.c.addr[0], "100::1", 1);
	sa6(&w.s.addr[1], "100::2", 1);
	w.s.naddr = 2;
	p.local = w.c.addr[0];
	p.remote = w.s.addr[1];
	w.c.sess = quic_session_client_new(&w.c.cfg, w.c.dmx, &p, w.s.pub, &w.c, now, &err);
	CHECK(w.c.sess && run_until_up(&w), "relayed path: handshake over 100::1 -> 100::2");
	run(&w, 50 * MS);
	ups = w.c.ups + w.s.ups;
	for (int i = 0; i < 40; i++, seq++) {
		send_seq(w.c.sess, seq);
		run(&w, MS);
	}
	p.local = w.c.addr[1];
	p.remote = w.s.addr[0];
	CHECK_EQ_INT(quic_session_migrate(w.c.sess, &p, now), QUIC_OK,
		     "relayed -> direct: the client migrates to 127.0.0.1:5001 -> :4433");
	for (int i = 0; i < 200; i++, seq++) {
		send_seq(w.c.sess, seq);
		run(&w, MS);
	}
	run(&w, 100 * MS);
	CHECK(w.c.path_ev[QUIC_PATH_MIGRATED] == 1 &&
	      quic_session_path(w.c.sess)->local.ss_family == AF_INET,
	      "relayed -> direct: the client's path is the IPv4 one");
	CHECK(quic_session_path(w.s.sess)->remote.ss_family == AF_INET,
	      "relayed -> direct: the server sends to the direct address");
	for (uint32_t i = 0; i < seq; i++)
		missing += !w.s.seen[i];
	CHECK_EQ_INT(missing, 0, "relayed -> direct: no datagram lost across the move");
	CHECK_EQ_INT(w.c.ups + w.s.ups, ups, "relayed -> direct: no new handshake");
	world_free(&w);
}

static void test_idle_and_keepalive(void)
{
	struct world w;
	uint64_t start;

	/* Keep-alive holds an otherwise silent session past the idle timeout. */
	world_init(&w, true);
	w.c.cfg.idle_timeout = w.s.cfg.idle_timeout = 3 * SEC;
	w.c.cfg.keepalive = 1 * SEC;
	client_connect(&w, w.s.pub);
	CHECK(run_until_up(&w), "handshake completes");
	run(&w, 10 * SEC);
	CHECK(both_up(&w), "keep-alive: both still up after 10 s without traffic");

	/* The server goes silent: the client times out, the server (still
	 * hearing PINGs) does not. */
	w.s.silent = true;
	start = now;
	while (!quic_session_is_dead(w.c.sess) && now - start < 10 * SEC)
		run(&w, 10 * MS);
	CHECK(quic_session_is_dead(w.c.sess), "client session dies");
	CHECK_EQ_STR(quic_session_reason(w.c.sess), "idle timeout", "client reason");
	CHECK(now - start >= 3 * SEC && now - start < 5 * SEC, "after the 3 s idle timeout (%llu ms)",
	      (unsigned long long)((now - start) / MS));
	CHECK(!quic_session_is_dead(w.s.sess), "the server side is not dead");
	world_free(&w);
}

/* A blackout while datagrams fill the congestion window: every packet in
 * flight is lost. ngtcp2 0.12 arms no probe timeout for DATAGRAM-only
 * packets, so without the heartbeat byte in each burst's last packet the
 * session would wait forever for an ACK that nothing can elicit. */
static void test_blackout_recovery(void)
{
	uint8_t pay[1000];
	uint64_t before, start;
	struct world w;
	int sent = 0;

	memset(pay, 0x5a, sizeof(pay));
	world_init(&w, true);
	w.c.cfg.idle_timeout = w.s.cfg.idle_timeout = 30 * SEC;
	client_connect(&w, w.s.pub);
	CHECK(run_until_up(&w), "blackout: handshake completes");
	/* Saturate: keep the datagram queue full, then cut the client off. */
	for (int i = 0; i < 200; i++) {
		for (int k = 0; k < 20; k++)
			sent += send_dgram(w.c.sess, 7, pay, sizeof(pay)) == 0;
		run(&w, 1 * MS);
	}
	w.c.silent = true;
	for (int i = 0; i < 500; i++) {
		for (int k = 0; k < 20; k++)
			send_dgram(w.c.sess, 7, pay, sizeof(pay));
		run(&w, 1 * MS);
	}
	w.c.silent = false;
	before = w.s.dgrams;
	start = now;
	while (w.s.dgrams < before + 50 && now - start < 20 * SEC) {
		for (int k = 0; k < 20; k++)
			send_dgram(w.c.sess, 7, pay, sizeof(pay));
		run(&w, 10 * MS);
	}
	CHECK(sent > 0 && w.s.dgrams >= before + 50,
	      "after a 0.5 s blackout with a full window, datagrams flow again (%llu new in %llu ms)",
	      (unsigned long long)(w.s.dgrams - before), (unsigned long long)((now - start) / MS));
	CHECK(both_up(&w), "blackout: both sessions still up");
	world_free(&w);
}

static void test_stateless_reset(void)
{
	struct world w;
	uint8_t p[100] = { 0 };

	world_init(&w, true);
	client_connect(&w, w.s.pub);
	CHECK(run_until_up(&w), "handshake completes");
	run(&w, 100 * MS);
	/* The server forgets the connection (as a restart would) but keeps its
	 * key, hence its reset secret. */
	quic_session_free(w.s.sess);
	w.s.sess = NULL;
	CHECK_EQ_INT(quic_demux_count(w.s.dmx), 0, "server demux holds no connection IDs");
	CHECK_EQ_INT(send_dgram(w.c.sess, 0, p, sizeof(p)), 0, "client sends a datagram");
	run(&w, 20 * MS);
	CHECK_EQ_INT(quic_session_state(w.c.sess), QUIC_STATE_DRAINING, "client is draining");
	CHECK_EQ_STR(quic_session_reason(w.c.sess), "peer restarted (stateless reset)",
		     "client reports the peer restarted");
	run(&w, 3 * SEC);
	CHECK(quic_session_is_dead(w.c.sess), "client session dead after draining");
	world_free(&w);
}

static void test_demux(void)
{
	struct world w;
	uint8_t pkt[1200] = { 0 }, out[QUIC_MAX_PKT];
	size_t outlen;
	struct quic_session *sp;
	struct quic_path path;
	static const uint8_t stun[20] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42 };
	static const uint8_t stun3489[28] = { 0x01, 0x01, 0x00, 0x08 };
	uint8_t wg[148] = { 1 }, wg4[48] = { 4 };
	ngtcp2_pkt_hd hd;

	CHECK_EQ_INT(quic_demux_classify(stun, sizeof(stun)), QUIC_CLASS_STUN, "STUN with cookie");
	CHECK_EQ_INT(quic_demux_classify(stun3489, sizeof(stun3489)), QUIC_CLASS_STUN,
		     "RFC 3489 STUN by its length field");
	CHECK_EQ_INT(quic_demux_classify(wg, sizeof(wg)), QUIC_CLASS_WIREGUARD, "WireGuard initiation");
	CHECK_EQ_INT(quic_demux_classify(wg4, sizeof(wg4)), QUIC_CLASS_WIREGUARD, "WireGuard data");
	CHECK_EQ_INT(quic_demux_classify(wg, 100), QUIC_CLASS_OTHER, "type 1 of the wrong length");
	CHECK_EQ_INT(quic_demux_classify((const uint8_t *)"\x40", 1), QUIC_CLASS_QUIC, "64 is QUIC");
	CHECK_EQ_INT(quic_demux_classify((const uint8_t *)"\xff", 1), QUIC_CLASS_QUIC, "255 is QUIC");
	CHECK_EQ_INT(quic_demux_classify((const uint8_t *)"\x17\x03", 2), QUIC_CLASS_OTHER, "TLS is other");
	CHECK_EQ_INT(quic_demux_classify(NULL, 0), QUIC_CLASS_OTHER, "empty is other");

	world_init(&w, true);
	path.local = w.s.addr[0];
	path.remote = w.c.addr[0];
	/* A long header of an unknown version, padded to 1200. */
	pkt[0] = 0xc0;
	memcpy(pkt + 1, "\x1a\x2a\x3a\x4a", 4);
	pkt[5] = 8;
	memcpy(pkt + 6, "DCID5678", 8);
	pkt[14] = 8;
	memcpy(pkt + 15, "SCID5678", 8);
	CHECK_EQ_INT(quic_demux_input(w.s.dmx, pkt, sizeof(pkt), &path, 0, now, &sp, out,
				      sizeof(out), &outlen),
		     QUIC_DEMUX_REPLY, "unknown version: version negotiation");
	CHECK(ngtcp2_pkt_decode_hd_long(&hd, out, outlen) > 0 &&
	      hd.type == NGTCP2_PKT_VERSION_NEGOTIATION && hd.dcid.datalen == 8 &&
	      memcmp(hd.dcid.data, "SCID5678", 8) == 0 && outlen >= 4 &&
	      memcmp(out + outlen - 4, "\x00\x00\x00\x01", 4) == 0,
	      "it echoes the CIDs and offers QUIC v1");
	CHECK_EQ_INT(quic_demux_input(w.s.dmx, pkt, 600, &path, 0, now, &sp, out, sizeof(out),
				      &outlen), QUIC_DEMUX_DROP, "short one of those: no answer");
	memcpy(pkt + 1, "\xff\x00\x00\x1d", 4);  /* draft-29: ngtcp2 has it, we do not */
	CHECK_EQ_INT(quic_demux_input(w.s.dmx, pkt, sizeof(pkt), &path, 0, now, &sp, out,
				      sizeof(out), &outlen),
		     QUIC_DEMUX_REPLY, "draft version: version negotiation to v1");
	memcpy(pkt + 1, "\x00\x00\x00\x00", 4);
	CHECK_EQ_INT(quic_demux_input(w.s.dmx, pkt, sizeof(pkt), &path, 0, now, &sp, out,
				      sizeof(out), &outlen),
		     QUIC_DEMUX_DROP, "a version negotiation packet is never answered");

	/* Short headers for unknown connections. */
	memset(pkt, 0x5a, 100);
	pkt[0] = 0x41;
	CHECK_EQ_INT(quic_demux_input(w.s.dmx, pkt, 100, &path, 0, now, &sp, out, sizeof(out),
				      &outlen), QUIC_DEMUX_REPLY, "unknown CID: stateless reset");
	CHECK(outlen < 100 && outlen >= 38 && (out[0] & 0xc0) == 0x40, "reset is shorter, short-header shaped");
	CHECK_EQ_INT(quic_demux_input(w.s.dmx, pkt, 38, &path, 0, now, &sp, out, sizeof(out),
				      &outlen), QUIC_DEMUX_DROP, "too short to answer");

	/* An Initial that is not padded is refused. */
	pkt[0] = 0xc0;
	memcpy(pkt + 1, "\x00\x00\x00\x01", 4);
	pkt[5] = 8;
	pkt[14] = 8;
	CHECK_EQ_INT(quic_demux_input(w.s.dmx, pkt, 300, &path, 0, now, &sp, out, sizeof(out),
				      &outlen), QUIC_DEMUX_DROP, "unpadded Initial dropped");
	CHECK_EQ_INT(quic_demux_count(w.s.dmx), 0, "and no session made");

	/* Table: many entries, removal, reuse of tombstones. */
	{
		struct quic_session *fake = (struct quic_session *)&w;  /* never dereferenced */
		uint8_t cid[QUIC_CID_LEN] = { 0 };
		int bad = 0;

		for (unsigned i = 0; i < 2000; i++) {
			memcpy(cid, &i, sizeof(i));
			bad += quic_demux_add(w.s.dmx, cid, sizeof(cid), fake) != 0;
		}
		CHECK(bad == 0 && quic_demux_count(w.s.dmx) == 2000, "2000 CIDs added");
		memcpy(cid, &(unsigned){ 7 }, sizeof(unsigned));
		CHECK_EQ_INT(quic_demux_add(w.s.dmx, cid, sizeof(cid), fake), 1, "duplicate refused");
		for (unsigned i = 0; i < 2000; i += 2) {
			memcpy(cid, &i, sizeof(i));
			quic_demux_remove(w.s.dmx, cid, sizeof(cid), fake);
		}
		for (unsigned i = 0; i < 2000; i++) {
			memcpy(cid, &i, sizeof(i));
			bad += (quic_demux_lookup(w.s.dmx, cid, sizeof(cid)) != NULL) != (i % 2 == 1);
		}
		CHECK(bad == 0 && quic_demux_count(w.s.dmx) == 1000, "odd ones left after removing even");
		quic_demux_forget(w.s.dmx, fake);
		CHECK_EQ_INT(quic_demux_count(w.s.dmx), 0, "forget removes the rest");
	}
	world_free(&w);
}

static void test_tlsid(void)
{
	uint8_t seed[QUIC_KEY_LEN], pub[QUIC_KEY_LEN], other[QUIC_KEY_LEN], key[QUIC_KEY_LEN];
	uint8_t der[QUIC_TLS_SPKI_LEN], s1[32], s2[32];
	struct quic_tls_cred *c = NULL;
	const char *why = NULL;

	keypair(seed, pub);
	keypair(other, other);
	CHECK(quic_tls_cred_new(&c, seed, other, &why) != 0 && c == NULL &&
	      contains(why, "does not belong"), "a public key from another seed is refused");
	CHECK(quic_tls_cred_new(&c, seed, pub, &why) == 0 && c, "matching pair accepted");
	quic_tls_cred_free(c);
	quic_tls_spki_der(der, pub);
	CHECK(quic_tls_spki_key(key, der, sizeof(der)) && memcmp(key, pub, QUIC_KEY_LEN) == 0,
	      "SPKI round trip");
	CHECK(!quic_tls_spki_key(key, der, sizeof(der) - 1), "short SPKI refused");
	der[8] ^= 1;  /* OID 1.3.101.112 -> 1.3.101.113 (Ed448) */
	CHECK(!quic_tls_spki_key(key, der, sizeof(der)), "other algorithm refused");
	quic_tls_reset_secret(s1, seed);
	quic_tls_reset_secret(s2, seed);
	CHECK(memcmp(s1, s2, 32) == 0 && memcmp(s1, seed, 32) != 0,
	      "reset secret is stable across restarts and not the key");
	CHECK_EQ_STR(quic_tls_alert_name(116), "certificate required", "alert names");
}

int main(void)
{
	netq = calloc(NET_QUEUE, sizeof(*netq));
	if (!netq)
		return 1;
	test_tlsid();
	test_handshake_and_data();
	test_wrong_pin();
	test_server_rejects();
	test_no_client_key();
	test_close_in_handshake();
	test_handshake_timeout();
	test_migration();
	test_migrate_remote_only();
	test_idle_and_keepalive();
	test_blackout_recovery();
	test_relay_to_direct();
	test_stateless_reset();
	test_demux();
	CHECK(net_sent > 500 && net_not_quic == 0,
	      "all %llu packets of all sessions classify as QUIC (fixed bit never greased)",
	      (unsigned long long)net_sent);
	free(netq);
	return unit_done();
}
