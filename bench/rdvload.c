/* rdvload: a load generator for the rendezvous service (agent/rendezvous.c).
 * Many simulated peers share one process and a few UDP sockets; each is a
 * QUIC client session (quic/session.h) driven by one poll loop with a timer
 * heap, routed by connection ID through one demux.
 *
 *   rdvload --server IP:PORT --server-key BASE64 --peers N [--concurrency C]
 *           [--mode register|nokey|garbage|initials|dialreq] [--duration S]
 *           [--hold S] [--bind IP] [--rate R] [--sockets K] [--timeout S]
 *           [--requests R]
 *
 * Modes:
 *   register  N peers, each with a fresh Ed25519 key, at most C handshakes
 *             in flight: handshake, REGISTER (one random accepted key),
 *             wait for REGISTERED. --hold S keeps every session open S
 *             seconds after the last registration (the caller reads the
 *             server's memory meanwhile), then closes them all cleanly.
 *   nokey     N handshakes, C in flight, with a key-less credential: every
 *             one must be refused (TLS alert); any that comes up is counted.
 *   garbage   N junk datagrams at --rate: random bytes, long-header packets
 *             shaped like Initials (version 1, random CIDs and body), short
 *             headers with random CIDs, malformed STUN.
 *   initials  N genuine client first flights at --rate, from sessions freed
 *             as soon as they are written: a handshake flood.
 *   dialreq   N peers register as in register mode, then each sends
 *             --requests R (default 20) AutoNAT DIALREQs back to back, each
 *             asking for a dial-back to its own socket (the address the
 *             server sees, on a public host); a peer is done when every
 *             DIALRESP came. Counts the statuses and the dial-backs that
 *             actually arrived (nat/autonat.h), to check the server's rate
 *             limits: a bounded burst, R <= 1000.
 *
 * Timers:
 *   session  each session's quic_session_expiry (ngtcp2's loss, ACK,
 *            handshake and idle timers, keep-alive, the closing period)
 *   peer     --timeout (default 10 s) from a peer's start to its outcome
 *   run      --duration (default 60 s) from the first start: whoever has
 *            no outcome then is a timeout
 *   hold     --hold seconds after the run; then closes go out paced
 *            (CLOSE_BURST every CLOSE_GAP) and the closing sessions get at
 *            most CLOSE_GRACE to finish
 *   progress a line on stderr every second
 *   pacing   garbage and initials: --rate (default 20000/s)
 *
 * Output: one line of key=value pairs on stdout per run, e.g.
 *   mode=register peers=1000 ok=1000 failed=0 timeouts=0 lost=0 seconds=1.234
 *   rate=810.4/s p50_ms=2.10 p99_ms=9.80
 * and progress, the hold marker ("holding N sessions") and failure reasons
 * on stderr; dialreq mode prints
 *   mode=dialreq peers=8 requests=12 answered=96 dialed=60 rate_limited=36
 *   not_yours=0 private=0 unavailable=0 dialbacks=60 unmatched=0 seconds=0.4
 * Exit 0 when the run did what was asked (every peer registered and none
 * lost before the close; every key-less handshake refused; every datagram
 * sent; every DIALREQ answered), 1 otherwise. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <nettle/eddsa.h>

#include "agent/keys.h"
#include "agent/udp.h"
#include "nat/addr.h"
#include "nat/autonat.h"
#include "nat/rdvmsg.h"
#include "quic/demux.h"
#include "quic/session.h"
#include "quic/tlsid.h"

#define MS              1000000ull
#define SEC             1000000000ull
#define MAX_PEERS       1000000
#define MAX_SOCKS       64
#define PEERS_PER_SOCK  5000
#define BATCH           64            /* datagrams per sendmmsg / recvmmsg */
#define RX_ROUNDS       16            /* recvmmsg batches per socket per turn */
#define START_BURST     64            /* new handshakes per turn */
#define TIMER_BURST     4096          /* expired timers handled per turn */
#define CLOSE_BURST     50            /* sessions closed per CLOSE_GAP */
#define CLOSE_GAP       (10 * MS)
#define CLOSE_GRACE     (3 * SEC)
#define DRAIN_TIME      (500 * MS)    /* garbage/initials: late replies */
#define KEEPALIVE       (10 * SEC)
#define SOCK_BUF        (8 << 20)
#define RX_MAX          160           /* frames we keep: REGISTERED, ERROR, PING */
#define MAX_REASONS     8
#define NO_POS          UINT32_MAX
#define MAX_REQUESTS    1000          /* dialreq: per peer, a bounded burst */
#define NONCE_SHIFT     20            /* dialreq nonce: base + peer << 20 | request */

enum mode { MODE_REGISTER, MODE_NOKEY, MODE_GARBAGE, MODE_INITIALS, MODE_DIALREQ };

enum outcome {
	OUT_NONE,
	OUT_OK,        /* register: REGISTERED came */
	OUT_FAILED,    /* register: refused, closed, or an ERROR frame */
	OUT_TIMEOUT,   /* no outcome within --timeout, or the handshake timed out */
	OUT_REFUSED,   /* nokey: turned away, as it must be */
	OUT_ACCEPTED,  /* nokey: came up, which it must not */
};

enum phase { PHASE_RUN, PHASE_HOLD, PHASE_CLOSE, PHASE_DONE };

struct peer {
	struct quic_session *s;
	struct quic_config cfg;
	uint64_t started, finished;
	uint64_t deadline;   /* of its outcome: --timeout after the start */
	uint64_t due;        /* its key in the timer heap */
	uint32_t hpos;       /* index in the heap, NO_POS if not in it */
	uint16_t sock;
	uint8_t outcome;     /* enum outcome */
	bool up, dirty;
	bool ended;          /* seen closing, draining or dead */
	uint16_t rx_len;
	uint32_t rx_skip;    /* bytes of an oversized frame still to skip */
	uint16_t dial_sent, dial_answered; /* dialreq: DIALREQs, DIALRESPs */
	uint8_t rx[RX_MAX];
};

struct sock {
	int fd;
	struct na_endpoint local;   /* a concrete address, as packets report it */
	struct sockaddr_storage local_ss;
	unsigned n_out;
	struct udp_out out[BATCH];
	uint8_t buf[BATCH][QUIC_MAX_PKT];
};

struct reason {
	char text[128];
	unsigned count;
};

struct opts {
	struct na_endpoint server;
	uint8_t server_key[KEY_LEN];
	bool has_server, has_key;
	unsigned peers, concurrency, sockets, requests;
	enum mode mode;
	double duration, hold, timeout, rate;
	struct na_ip bind;
};

static struct {
	struct opts o;
	struct peer *peers;
	struct quic_tls_cred **creds;  /* register: one per peer; else creds[0] */
	unsigned n_creds;
	struct quic_config dmx_cfg;    /* the demux's: no accept_key, never a server */
	struct quic_demux *dmx;
	struct sock *socks;
	unsigned n_socks;
	uint32_t *heap;
	unsigned heap_len;
	uint32_t *dirty;
	unsigned n_dirty;
	uint64_t now;

	enum phase phase;
	unsigned next;                 /* peers started */
	unsigned done;                 /* peers with an outcome */
	unsigned live;                 /* sessions not freed */
	unsigned count[OUT_ACCEPTED + 1];
	unsigned lost;                 /* registered, then ended before our close */
	unsigned close_next;           /* next peer to close */
	uint64_t t_first, t_last;      /* first start, last outcome of the wanted kind */
	uint64_t run_end, hold_end, close_end, close_at, progress_at;
	uint64_t rx_pkts, rx_bytes, rx_server_pkts, tx_pkts, tx_dropped;
	struct reason reasons[MAX_REASONS];
	unsigned reasons_other;
	double cpu_run;                /* our CPU seconds in the run phase */
	uint64_t rng;
	/* dialreq */
	uint64_t nonce_base;
	uint64_t dial_status[RDVMSG_DIAL_STATUS_MAX + 1];
	uint64_t dialbacks, dialbacks_unmatched, dial_answered;
} ld;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: junk needs to be fast, not secret. */
static uint64_t rnd(void)
{
	ld.rng ^= ld.rng >> 12;
	ld.rng ^= ld.rng << 25;
	ld.rng ^= ld.rng >> 27;
	return ld.rng * 0x2545f4914f6cdd1dull;
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static void rnd_fill(uint8_t *p, size_t n)
{
	while (n) {
		uint64_t r = rnd();
		size_t k = n < 8 ? n : 8;

		memcpy(p, &r, k);
		p += k;
		n -= k;
	}
}

static const char *mode_name(enum mode m)
{
	switch (m) {
	case MODE_REGISTER: return "register";
	case MODE_NOKEY: return "nokey";
	case MODE_GARBAGE: return "garbage";
	case MODE_INITIALS: return "initials";
	case MODE_DIALREQ: return "dialreq";
	}
	return "?";
}

static void note_reason(const char *why)
{
	for (unsigned i = 0; i < MAX_REASONS; i++) {
		struct reason *r = &ld.reasons[i];

		if (!r->count) {
			snprintf(r->text, sizeof(r->text), "%s", why && *why ? why : "(no reason)");
			r->count = 1;
			return;
		}
		if (!strncmp(r->text, why && *why ? why : "(no reason)", sizeof(r->text) - 1)) {
			r->count++;
			return;
		}
	}
	ld.reasons_other++;
}

/* Our own CPU seconds, user and system: on a small machine the load
 * generator competes with the server for the same cores. */
static double cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long vmrss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* ---- the timer heap: peers by due time ---- */

static bool heap_less(unsigned a, unsigned b)
{
	return ld.peers[ld.heap[a]].due < ld.peers[ld.heap[b]].due;
}

static void heap_swap(unsigned a, unsigned b)
{
	uint32_t t = ld.heap[a];

	ld.heap[a] = ld.heap[b];
	ld.heap[b] = t;
	ld.peers[ld.heap[a]].hpos = a;
	ld.peers[ld.heap[b]].hpos = b;
}

static void heap_fix(unsigned i)
{
	while (i && heap_less(i, (i - 1) / 2)) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;

		if (l < ld.heap_len && heap_less(l, m))
			m = l;
		if (r < ld.heap_len && heap_less(r, m))
			m = r;
		if (m == i)
			break;
		heap_swap(i, m);
		i = m;
	}
}

static void heap_del(struct peer *p)
{
	unsigned i = p->hpos;

	if (i == NO_POS)
		return;
	p->hpos = NO_POS;
	if (i != --ld.heap_len) {
		ld.heap[i] = ld.heap[ld.heap_len];
		ld.peers[ld.heap[i]].hpos = i;
		heap_fix(i);
	}
}

static void heap_set(struct peer *p, uint64_t due)
{
	p->due = due;
	if (p->hpos == NO_POS) {
		p->hpos = ld.heap_len;
		ld.heap[ld.heap_len++] = (uint32_t)(p - ld.peers);
	}
	heap_fix(p->hpos);
}

/* ---- sending ---- */

static void sock_send(struct sock *k)
{
	int sent;

	if (!k->n_out)
		return;
	sent = udp_send_batch(k->fd, k->out, k->n_out);
	if (sent < 0)
		sent = 0;
	ld.tx_pkts += (unsigned)sent;
	ld.tx_dropped += k->n_out - (unsigned)sent;  /* socket buffer full: a loss */
	k->n_out = 0;
}

static void send_all(void)
{
	for (unsigned i = 0; i < ld.n_socks; i++)
		sock_send(&ld.socks[i]);
}

/* A slot for one outgoing datagram to the server on socket k. */
static uint8_t *sock_slot(struct sock *k, struct udp_out **o)
{
	if (k->n_out == BATCH)
		sock_send(k);
	*o = &k->out[k->n_out];
	memset(*o, 0, sizeof(**o));
	(*o)->to = ld.o.server;
	(*o)->buf = k->buf[k->n_out];
	return k->buf[k->n_out];
}

/* ---- peers: outcomes ---- */

static bool is_timeout(const char *why)
{
	return strstr(why, "timed out") || strstr(why, "idle timeout");
}

static void set_outcome(struct peer *p, enum outcome o, const char *why)
{
	if (p->outcome != OUT_NONE)
		return;
	p->outcome = (uint8_t)o;
	p->finished = ld.now;
	ld.count[o]++;
	ld.done++;
	if (o == OUT_OK || o == OUT_REFUSED) {
		if (ld.now > ld.t_last)
			ld.t_last = ld.now;
	}
	if (o != OUT_OK && why)
		note_reason(why);
}

static void mark_dirty(struct peer *p)
{
	if (p->dirty)
		return;
	p->dirty = true;
	ld.dirty[ld.n_dirty++] = (uint32_t)(p - ld.peers);
}

static void peer_close(struct peer *p, const char *why)
{
	if (p->s && quic_session_state(p->s) < QUIC_STATE_CLOSING) {
		quic_session_close(p->s, 0, why);
		mark_dirty(p);
	}
}

/* The session is closing, draining or dead: an outcome for a peer that has
 * none, a loss for one that was registered and not closed by us. */
static void peer_ended(struct peer *p)
{
	const char *why = quic_session_reason(p->s);

	if (p->outcome == OUT_NONE) {
		if (is_timeout(why))
			set_outcome(p, OUT_TIMEOUT, why);
		else if (ld.o.mode == MODE_NOKEY && !p->up)
			set_outcome(p, OUT_REFUSED, why);
		else
			set_outcome(p, OUT_FAILED, why);
	} else if (p->outcome == OUT_OK && ld.phase < PHASE_CLOSE &&
		   !strstr(why, "closed locally")) {
		ld.lost++;
		note_reason(why);
	}
}

static void peer_free(struct peer *p)
{
	heap_del(p);
	quic_session_free(p->s);
	p->s = NULL;
	ld.live--;
}

/* The collect loop, then the peer's next timer. */
static void peer_flush(struct peer *p)
{
	struct sock *k = &ld.socks[p->sock];
	uint64_t due;

	p->dirty = false;
	for (;;) {
		struct udp_out *o;
		uint8_t *buf = sock_slot(k, &o);
		struct quic_tx tx;
		ssize_t n = quic_session_write(p->s, buf, QUIC_MAX_PKT, &tx, ld.now);

		if (n <= 0)
			break;
		o->len = (size_t)n;
		o->tos = tx.ecn;
		k->n_out++;
	}
	if (!p->ended && quic_session_state(p->s) >= QUIC_STATE_CLOSING) {
		p->ended = true;
		peer_ended(p);
	}
	if (quic_session_is_dead(p->s)) {
		peer_free(p);
		return;
	}
	due = quic_session_expiry(p->s);
	if (p->outcome == OUT_NONE && p->deadline < due)
		due = p->deadline;
	heap_set(p, due);
}

static void flush_dirty(void)
{
	while (ld.n_dirty) {
		struct peer *p = &ld.peers[ld.dirty[--ld.n_dirty]];

		if (p->s)
			peer_flush(p);
		else
			p->dirty = false;
	}
	send_all();
}

/* ---- peers: the control stream ---- */

static void send_register(struct peer *p)
{
	static struct rdvmsg m;
	uint8_t buf[64];
	size_t n;

	memset(&m, 0, sizeof(m));
	m.type = RDVMSG_REGISTER;
	m.reg.count = 1;
	rnd_fill(m.reg.keys[0], RDVMSG_KEY_LEN);
	n = rdvmsg_encode(&m, buf, sizeof(buf));
	if (!n || quic_session_stream_send(p->s, buf, n) < 0) {
		set_outcome(p, OUT_FAILED, "cannot queue REGISTER");
		peer_close(p, "cannot register");
	}
	mark_dirty(p);
}

/* dialreq: the whole burst at once, each asking for a dial-back to the
 * socket's own address (as the server sees it, on a public host). */
static void send_dialreqs(struct peer *p)
{
	static struct rdvmsg m;
	uint8_t buf[64];

	for (unsigned i = 0; i < ld.o.requests; i++) {
		size_t n;

		memset(&m, 0, sizeof(m));
		m.type = RDVMSG_DIALREQ;
		m.dialreq.nonce = ld.nonce_base + ((uint64_t)(p - ld.peers) << NONCE_SHIFT | i);
		m.dialreq.count = 1;
		m.dialreq.addr[0] = ld.socks[p->sock].local;
		n = rdvmsg_encode(&m, buf, sizeof(buf));
		if (!n || quic_session_stream_send(p->s, buf, n) < 0) {
			set_outcome(p, OUT_FAILED, "cannot queue DIALREQ");
			peer_close(p, "cannot send");
			break;
		}
		p->dial_sent++;
	}
	mark_dirty(p);
}

static void on_dialresp(struct peer *p, const struct rdvmsg_dialresp *r)
{
	uint64_t rel = r->nonce - ld.nonce_base;

	if (rel >> NONCE_SHIFT != (uint64_t)(p - ld.peers) || r->count != 1) {
		set_outcome(p, OUT_FAILED, "a DIALRESP for no DIALREQ of ours");
		return;
	}
	ld.dial_status[r->status[0]]++;
	ld.dial_answered++;
	if (++p->dial_answered == ld.o.requests)
		set_outcome(p, OUT_OK, NULL);
}

/* A dial-back on one of our sockets: counted whether or not it is ours
 * (that is the point: what arrived), matched by nonce. */
static void on_dialback(const uint8_t *buf, size_t len)
{
	uint64_t nonce, rel;
	uint8_t idx;

	if (!autonat_dialback_parse(buf, len, &nonce, &idx))
		return;
	rel = nonce - ld.nonce_base;
	if (idx == 0 && rel >> NONCE_SHIFT < ld.next &&
	    (rel & ((1u << NONCE_SHIFT) - 1)) < ld.o.requests)
		ld.dialbacks++;
	else
		ld.dialbacks_unmatched++;
}

static void on_frame(struct peer *p, const uint8_t *frame, size_t len)
{
	static struct rdvmsg m;
	const char *why = NULL;
	char text[RDVMSG_MAX_REASON + 64];
	uint8_t buf[16];

	if (!rdvmsg_decode(&m, frame, len, &why)) {
		snprintf(text, sizeof(text), "bad frame from the server: %s", why ? why : "?");
		set_outcome(p, OUT_FAILED, text);
		peer_close(p, "bad frame");
		return;
	}
	switch (m.type) {
	case RDVMSG_REGISTERED:
		if (ld.o.mode == MODE_REGISTER)
			set_outcome(p, OUT_OK, NULL);
		if (ld.o.mode == MODE_DIALREQ && !p->dial_sent)
			send_dialreqs(p);
		break;
	case RDVMSG_DIALRESP:
		if (ld.o.mode == MODE_DIALREQ)
			on_dialresp(p, &m.dialresp);
		break;
	case RDVMSG_ERROR:
		snprintf(text, sizeof(text), "server error %u: %s", m.error.code, m.error.reason);
		set_outcome(p, OUT_FAILED, text);
		break;
	case RDVMSG_PING:
		if (quic_session_stream_send(p->s, buf,
					     rdvmsg_encode_ping(buf, sizeof(buf), true, m.ping.nonce)) == 0)
			mark_dirty(p);
		break;
	default:
		break;
	}
}

static void on_stream(struct quic_session *s, const uint8_t *data, size_t len)
{
	struct peer *p = quic_session_user(s);

	while (p && len) {
		size_t take;

		if (p->rx_skip) {
			take = len < p->rx_skip ? len : p->rx_skip;
			p->rx_skip -= (uint32_t)take;
			data += take;
			len -= take;
			continue;
		}
		take = RX_MAX - p->rx_len;
		if (take > len)
			take = len;
		memcpy(p->rx + p->rx_len, data, take);
		p->rx_len += (uint16_t)take;
		data += take;
		len -= take;
		for (;;) {
			size_t need = 0;
			const char *why = NULL;
			ssize_t f = rdvmsg_frame(p->rx, p->rx_len, &need, &why);
			char text[160];

			if (f < 0) {
				snprintf(text, sizeof(text), "bad frame from the server: %s", why);
				set_outcome(p, OUT_FAILED, text);
				peer_close(p, "bad frame");
				p->rx_len = 0;
				return;
			}
			if (f == 0) {
				if (need > RX_MAX) {
					/* Not one we wait for (CONNECT): skip it. */
					p->rx_skip = (uint32_t)(need - p->rx_len);
					p->rx_len = 0;
				}
				break;
			}
			on_frame(p, p->rx, (size_t)f);
			memmove(p->rx, p->rx + f, p->rx_len - (size_t)f);
			p->rx_len -= (uint16_t)f;
		}
	}
}

static void on_up(struct quic_session *s)
{
	struct peer *p = quic_session_user(s);

	if (!p)
		return;
	p->up = true;
	if (ld.o.mode == MODE_NOKEY) {
		set_outcome(p, OUT_ACCEPTED, "a key-less handshake was accepted");
		peer_close(p, "should not have been accepted");
		return;
	}
	send_register(p);
}

static const struct quic_session_ops peer_ops = {
	.up = on_up,
	.stream = on_stream,
};

/* ---- the sockets ---- */

static int open_sockets(unsigned n)
{
	struct na_ip src = ld.o.bind;

	if (!src.family) {
		int err = udp_route_source(&ld.o.server, &src);
		if (err < 0) {
			char ep[NA_ENDPOINT_STRLEN];
			fprintf(stderr, "rdvload: no route to %s: %s\n",
				na_endpoint_str(&ld.o.server, ep, sizeof(ep)), strerror(-err));
			return -1;
		}
	}
	ld.socks = calloc(n, sizeof(*ld.socks));
	if (!ld.socks)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		struct sock *k = &ld.socks[i];
		struct na_endpoint ep = { .ip = ld.o.bind };
		int fd;

		if (!ep.ip.family)
			ep.ip.family = ld.o.server.ip.family;
		fd = udp_open(&ep);
		if (fd < 0) {
			char ip[INET6_ADDRSTRLEN];
			fprintf(stderr, "rdvload: cannot bind a UDP socket to %s: %s\n",
				ld.o.bind.family ? na_ip_str(&ld.o.bind, ip, sizeof(ip)) : "any",
				strerror(-fd));
			return -1;
		}
		udp_set_buffers(fd, SOCK_BUF);
		k->fd = fd;
		udp_local(fd, &k->local);
		k->local.ip = src;
		na_endpoint_to_sockaddr(&k->local, &k->local_ss);
		ld.n_socks++;
	}
	return 0;
}

/* Reads what waits on every socket; QUIC goes to the sessions. */
static void read_sockets(void)
{
	static uint8_t bufs[BATCH][2048];
	struct udp_msg msgs[BATCH];
	uint8_t out[QUIC_MAX_PKT];

	for (unsigned i = 0; i < ld.n_socks; i++) {
		struct sock *k = &ld.socks[i];

		for (int round = 0; round < RX_ROUNDS; round++) {
			int n;

			for (unsigned j = 0; j < BATCH; j++)
				msgs[j] = (struct udp_msg){ .buf = bufs[j], .cap = sizeof(bufs[j]) };
			n = udp_recv(k->fd, msgs, BATCH);
			if (n <= 0)
				break;
			ld.now = now_ns();
			for (int j = 0; j < n; j++) {
				struct udp_msg *m = &msgs[j];
				struct quic_session *s = NULL;
				struct quic_path path;
				size_t outlen = 0;

				if (!m->len)
					continue;
				ld.rx_pkts++;
				ld.rx_bytes += m->len;
				if (na_endpoint_equal(&m->from, &ld.o.server))
					ld.rx_server_pkts++;
				if (ld.o.mode == MODE_DIALREQ &&
				    quic_demux_classify(m->buf, m->len) == QUIC_CLASS_STUN)
					on_dialback(m->buf, m->len);
				if (!ld.dmx || quic_demux_classify(m->buf, m->len) != QUIC_CLASS_QUIC)
					continue;
				path.local = k->local_ss;
				na_endpoint_to_sockaddr(&m->from, &path.remote);
				/* Replies (stateless resets for sessions we freed)
				 * are not sent: nobody waits for them. */
				if (quic_demux_input(ld.dmx, m->buf, m->len, &path, m->tos & 3, ld.now,
						     &s, out, sizeof(out), &outlen) == QUIC_DEMUX_SESSION &&
				    quic_session_user(s))
					mark_dirty(quic_session_user(s));
			}
			flush_dirty();
			if (n < BATCH)
				break;
		}
	}
}

static void wait_input(uint64_t until)
{
	struct pollfd pf[MAX_SOCKS];
	struct timespec ts = { 0 };
	uint64_t now = now_ns();

	if (until > now) {
		uint64_t d = until - now;
		if (d > 100 * MS)
			d = 100 * MS;
		ts.tv_sec = (time_t)(d / SEC);
		ts.tv_nsec = (long)(d % SEC);
	}
	for (unsigned i = 0; i < ld.n_socks; i++)
		pf[i] = (struct pollfd){ .fd = ld.socks[i].fd, .events = POLLIN };
	ppoll(pf, ld.n_socks, &ts, NULL);
}

/* ---- register and nokey: sessions ---- */

static int make_creds(void)
{
	unsigned n = ld.o.mode == MODE_REGISTER || ld.o.mode == MODE_DIALREQ ? ld.o.peers : 1;
	bool keyless = ld.o.mode == MODE_NOKEY;
	uint64_t t0 = now_ns();

	ld.creds = calloc(n, sizeof(*ld.creds));
	if (!ld.creds)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		uint8_t seed[KEY_LEN], pub[KEY_LEN];
		const char *why = NULL;

		if (gnutls_rnd(GNUTLS_RND_KEY, seed, sizeof(seed)) != 0) {
			fprintf(stderr, "rdvload: no random numbers\n");
			return -1;
		}
		ed25519_sha512_public_key(pub, seed);
		if (quic_tls_cred_new(&ld.creds[i], keyless ? NULL : seed, keyless ? NULL : pub,
				      &why) != 0) {
			fprintf(stderr, "rdvload: cannot make a TLS credential: %s\n", why ? why : "?");
			return -1;
		}
		ld.n_creds++;
	}
	if (n > 1)
		fprintf(stderr, "rdvload: %u keys and credentials in %.2f s\n", n,
			(double)(now_ns() - t0) / SEC);
	return 0;
}

static void start_peer(unsigned i)
{
	struct peer *p = &ld.peers[i];
	struct quic_path path;
	char ep[NA_ENDPOINT_STRLEN];
	int err = 0;

	p->sock = (uint16_t)(i % ld.n_socks);
	p->hpos = NO_POS;
	p->cfg.cred = ld.creds[ld.n_creds > 1 ? i : 0];
	p->cfg.ops = &peer_ops;
	p->cfg.keepalive = KEEPALIVE;
	p->cfg.handshake_timeout = (uint64_t)(ld.o.timeout * SEC);
	rnd_fill(p->cfg.reset_secret, sizeof(p->cfg.reset_secret));
	path.local = ld.socks[p->sock].local_ss;
	na_endpoint_to_sockaddr(&ld.o.server, &path.remote);
	p->started = ld.now;
	p->deadline = ld.now + (uint64_t)(ld.o.timeout * SEC);
	if (!ld.t_first)
		ld.t_first = ld.now;
	p->s = quic_session_client_new(&p->cfg, ld.dmx, &path, ld.o.server_key, p, ld.now, &err);
	if (!p->s) {
		char why[128];
		snprintf(why, sizeof(why), "cannot start a session to %s: %s",
			 na_endpoint_str(&ld.o.server, ep, sizeof(ep)), quic_strerror(err));
		set_outcome(p, OUT_FAILED, why);
		return;
	}
	ld.live++;
	mark_dirty(p);
}

static void start_more(void)
{
	for (unsigned k = 0; k < START_BURST && ld.next < ld.o.peers &&
			     ld.next - ld.done < ld.o.concurrency; k++)
		start_peer(ld.next++);
	flush_dirty();
}

static void run_timers(void)
{
	for (unsigned k = 0; k < TIMER_BURST && ld.heap_len; k++) {
		struct peer *p = &ld.peers[ld.heap[0]];

		if (p->due > ld.now)
			break;
		if (p->outcome == OUT_NONE && ld.now >= p->deadline) {
			char why[96];
			snprintf(why, sizeof(why), "no %s within %.1f s",
				 p->up ? "REGISTERED" : "handshake", ld.o.timeout);
			set_outcome(p, OUT_TIMEOUT, why);
			peer_close(p, "timed out");
		}
		if (quic_session_expiry(p->s) <= ld.now)
			quic_session_handle_expiry(p->s, ld.now);
		/* Off the top until flushed, so the loop moves on. */
		heap_del(p);
		mark_dirty(p);
	}
	flush_dirty();
}

static void begin_close(void)
{
	ld.phase = PHASE_CLOSE;
	ld.close_next = 0;
	ld.close_at = ld.now;
	ld.close_end = 0;
}

/* Closes up to CLOSE_BURST sessions every CLOSE_GAP, so the server's socket
 * takes every CONNECTION_CLOSE. */
static void close_more(void)
{
	unsigned k = 0;

	if (ld.now < ld.close_at)
		return;
	for (; ld.close_next < ld.o.peers && k < CLOSE_BURST; ld.close_next++) {
		struct peer *p = &ld.peers[ld.close_next];

		if (p->s && quic_session_state(p->s) < QUIC_STATE_CLOSING) {
			peer_close(p, "rdvload done");
			k++;
		}
	}
	flush_dirty();
	ld.close_at = ld.now + CLOSE_GAP;
	if (ld.close_next >= ld.o.peers && !ld.close_end)
		ld.close_end = ld.now + CLOSE_GRACE;
}

static void end_run(void)
{
	ld.cpu_run = cpu_seconds() - ld.cpu_run;
	/* Whoever has no outcome yet ran out of time. */
	for (unsigned i = 0; i < ld.o.peers; i++) {
		struct peer *p = &ld.peers[i];

		if (i >= ld.next)
			break;   /* never started: counted as unstarted */
		if (p->outcome == OUT_NONE) {
			set_outcome(p, OUT_TIMEOUT, "no outcome before --duration ran out");
			peer_close(p, "timed out");
		}
	}
	flush_dirty();
	if (ld.o.mode == MODE_REGISTER && ld.o.hold > 0 && ld.count[OUT_OK]) {
		unsigned up = 0;

		for (unsigned i = 0; i < ld.next; i++)
			if (ld.peers[i].outcome == OUT_OK && ld.peers[i].s &&
			    quic_session_state(ld.peers[i].s) < QUIC_STATE_CLOSING)
				up++;
		ld.phase = PHASE_HOLD;
		ld.hold_end = ld.now + (uint64_t)(ld.o.hold * SEC);
		fprintf(stderr, "rdvload: holding %u sessions for %.1f s (rdvload VmRSS %ld KiB)\n",
			up, ld.o.hold, vmrss_kib());
	} else {
		begin_close();
	}
}

static void progress(void)
{
	if (ld.now < ld.progress_at)
		return;
	ld.progress_at = ld.now + SEC;
	if (ld.phase == PHASE_RUN)
		fprintf(stderr, "rdvload: %.1f s: %u started, %u ok, %u failed, %u refused, "
			"%u timeouts, %u in flight\n", (double)(ld.now - ld.t_first) / SEC,
			ld.next, ld.count[OUT_OK], ld.count[OUT_FAILED], ld.count[OUT_REFUSED],
			ld.count[OUT_TIMEOUT], ld.next - ld.done);
	else if (ld.phase == PHASE_HOLD)
		fprintf(stderr, "rdvload: holding: %u sessions open, %u lost\n", ld.live, ld.lost);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The latency quantile q of the peers with outcome o, in ms. */
static void latencies(enum outcome o, double *p50, double *p99, double *max)
{
	uint64_t *v = malloc(sizeof(*v) * (ld.o.peers ? ld.o.peers : 1));
	unsigned n = 0;

	*p50 = *p99 = *max = 0;
	if (!v)
		return;
	for (unsigned i = 0; i < ld.next; i++)
		if (ld.peers[i].outcome == o)
			v[n++] = ld.peers[i].finished - ld.peers[i].started;
	if (n) {
		qsort(v, n, sizeof(*v), cmp_u64);
		*p50 = (double)v[(n - 1) / 2] / MS;
		*p99 = (double)v[((size_t)n * 99 + 99) / 100 - 1] / MS;
		*max = (double)v[n - 1] / MS;
	}
	free(v);
}

static void print_reasons(void)
{
	for (unsigned i = 0; i < MAX_REASONS && ld.reasons[i].count; i++)
		fprintf(stderr, "rdvload:   %6u x %s\n", ld.reasons[i].count, ld.reasons[i].text);
	if (ld.reasons_other)
		fprintf(stderr, "rdvload:   %6u x other reasons\n", ld.reasons_other);
}

static int run_sessions(void)
{
	enum outcome want = ld.o.mode == MODE_NOKEY ? OUT_REFUSED : OUT_OK;
	double secs, p50, p99, max;
	unsigned got;
	int ok;

	ld.peers = calloc(ld.o.peers, sizeof(*ld.peers));
	ld.heap = calloc(ld.o.peers, sizeof(*ld.heap));
	ld.dirty = calloc(ld.o.peers, sizeof(*ld.dirty));
	if (!ld.peers || !ld.heap || !ld.dirty) {
		fprintf(stderr, "rdvload: out of memory for %u peers\n", ld.o.peers);
		return 1;
	}
	ld.dmx = quic_demux_new(&ld.dmx_cfg, 0);
	if (!ld.dmx || make_creds() < 0)
		return 1;
	ld.now = now_ns();
	ld.run_end = ld.now + (uint64_t)(ld.o.duration * SEC);
	ld.progress_at = ld.now + SEC;
	ld.phase = PHASE_RUN;
	ld.cpu_run = cpu_seconds();
	while (ld.phase != PHASE_DONE) {
		uint64_t wake;

		ld.now = now_ns();
		switch (ld.phase) {
		case PHASE_RUN:
			start_more();
			if (ld.done == ld.o.peers || ld.now >= ld.run_end)
				end_run();
			break;
		case PHASE_HOLD:
			if (ld.now >= ld.hold_end)
				begin_close();
			break;
		case PHASE_CLOSE:
			close_more();
			if ((ld.close_end && ld.now >= ld.close_end) ||
			    (ld.close_next >= ld.o.peers && ld.live == 0))
				ld.phase = PHASE_DONE;
			break;
		case PHASE_DONE:
			break;
		}
		if (ld.phase == PHASE_DONE)
			break;
		run_timers();
		progress();
		wake = ld.progress_at;
		if (ld.phase == PHASE_RUN && ld.next < ld.o.peers &&
		    ld.next - ld.done < ld.o.concurrency)
			wake = ld.now;   /* more to start at once */
		if (ld.heap_len && ld.peers[ld.heap[0]].due < wake)
			wake = ld.peers[ld.heap[0]].due;
		if (ld.phase == PHASE_RUN && ld.run_end < wake)
			wake = ld.run_end;
		if (ld.phase == PHASE_HOLD && ld.hold_end < wake)
			wake = ld.hold_end;
		if (ld.phase == PHASE_CLOSE && ld.close_at < wake)
			wake = ld.close_at;
		if (ld.phase == PHASE_CLOSE && ld.close_end && ld.close_end < wake)
			wake = ld.close_end;
		wait_input(wake);
		read_sockets();
	}
	/* Sessions still closing after the grace period: let them go. */
	for (unsigned i = 0; i < ld.next; i++)
		if (ld.peers[i].s)
			peer_free(&ld.peers[i]);
	/* dialreq: dial-backs still on the way (they are sent before their
	 * DIALRESP, so this is only for stragglers). */
	if (ld.o.mode == MODE_DIALREQ) {
		uint64_t drain_end = now_ns() + DRAIN_TIME;

		while ((ld.now = now_ns()) < drain_end) {
			wait_input(drain_end);
			read_sockets();
		}
	}

	got = ld.count[want];
	secs = ld.t_last > ld.t_first && got ? (double)(ld.t_last - ld.t_first) / SEC : 0;
	latencies(want, &p50, &p99, &max);
	if (ld.o.mode == MODE_DIALREQ) {
		printf("mode=dialreq peers=%u requests=%u answered=%" PRIu64 " dialed=%" PRIu64
		       " rate_limited=%" PRIu64 " not_yours=%" PRIu64 " private=%" PRIu64
		       " unavailable=%" PRIu64 " dialbacks=%" PRIu64 " unmatched=%" PRIu64
		       " ok=%u failed=%u timeouts=%u seconds=%.3f\n", ld.o.peers, ld.o.requests,
		       ld.dial_answered, ld.dial_status[RDVMSG_DIAL_DIALED],
		       ld.dial_status[RDVMSG_DIAL_RATE_LIMITED], ld.dial_status[RDVMSG_DIAL_NOT_YOURS],
		       ld.dial_status[RDVMSG_DIAL_PRIVATE], ld.dial_status[RDVMSG_DIAL_UNAVAILABLE],
		       ld.dialbacks, ld.dialbacks_unmatched, got, ld.count[OUT_FAILED],
		       ld.count[OUT_TIMEOUT], secs);
		ok = got == ld.o.peers;
	} else if (ld.o.mode == MODE_REGISTER) {
		printf("mode=register peers=%u ok=%u failed=%u timeouts=%u unstarted=%u lost=%u "
		       "seconds=%.3f rate=%.1f/s p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
		       "client_cpu_s=%.2f\n", ld.o.peers, got, ld.count[OUT_FAILED],
		       ld.count[OUT_TIMEOUT], ld.o.peers - ld.next, ld.lost, secs,
		       secs > 0 ? got / secs : 0, p50, p99, max, ld.cpu_run);
		ok = got == ld.o.peers && ld.lost == 0;
	} else {
		printf("mode=nokey peers=%u refused=%u accepted=%u failed=%u timeouts=%u "
		       "unstarted=%u seconds=%.3f rate=%.1f/s p50_ms=%.2f p99_ms=%.2f "
		       "client_cpu_s=%.2f\n", ld.o.peers, got, ld.count[OUT_ACCEPTED],
		       ld.count[OUT_FAILED], ld.count[OUT_TIMEOUT], ld.o.peers - ld.next, secs,
		       secs > 0 ? got / secs : 0, p50, p99, ld.cpu_run);
		ok = got == ld.o.peers;
		if (ld.count[OUT_ACCEPTED])
			fprintf(stderr, "rdvload: %u key-less handshakes were ACCEPTED by the server\n",
				ld.count[OUT_ACCEPTED]);
	}
	fflush(stdout);
	fprintf(stderr, "rdvload: %" PRIu64 " datagrams sent (%" PRIu64 " dropped at our socket), "
		"%" PRIu64 " received\n", ld.tx_pkts, ld.tx_dropped, ld.rx_pkts);
	if (ld.reasons[0].count) {
		fprintf(stderr, "rdvload: %s:\n", ld.o.mode == MODE_NOKEY ? "how handshakes ended"
									 : "why peers failed");
		print_reasons();
	}
	if (!ld.rx_server_pkts)
		fprintf(stderr, "rdvload: no answer at all from the server: is it running and "
			"reachable, and is it a rendezvous?\n");
	return ok ? 0 : 1;
}

/* ---- garbage and initials: floods ---- */

static size_t junk_random(uint8_t *b)
{
	size_t n = 1 + rnd_below(1400);

	rnd_fill(b, n);
	return n;
}

/* A long header, version 1, type Initial, random CIDs and body; mostly at
 * the 1200 bytes a server insists on, sometimes short. */
static size_t junk_initial(uint8_t *b)
{
	size_t n = rnd_below(5) ? 1200 : 60 + rnd_below(1140), i = 0, dl, sl;

	rnd_fill(b, n);
	b[i++] = (uint8_t)(0xc0 | (rnd() & 0x0f));
	b[i++] = 0; b[i++] = 0; b[i++] = 0; b[i++] = 1;
	dl = rnd_below(4) ? 8 + rnd_below(13) : rnd_below(21);
	b[i++] = (uint8_t)dl;
	i += dl;                          /* random DCID */
	sl = rnd_below(21);
	b[i++] = (uint8_t)sl;
	i += sl;                          /* random SCID */
	b[i++] = 0;                       /* no token */
	if (i + 2 <= n) {
		size_t rest = n - i - 2;
		b[i++] = (uint8_t)(0x40 | (rest >> 8 & 0x3f));
		b[i++] = (uint8_t)rest;
	}
	return n;
}

/* A short header with a random 16-byte DCID (our CID length). */
static size_t junk_short(uint8_t *b)
{
	size_t n = 20 + rnd_below(1180);

	rnd_fill(b, n);
	b[0] = (uint8_t)(0x40 | (rnd() & 0x3f));
	return n;
}

/* STUN with the magic cookie and something wrong: a length past the end,
 * an attribute past the end, an unknown comprehension-required attribute,
 * or a FINGERPRINT that does not match. */
static size_t junk_stun(uint8_t *b)
{
	static const uint16_t types[] = { 0x0001, 0x0011, 0x0101, 0x0003 };
	size_t n = 20, body;
	unsigned kind = rnd_below(4);
	uint16_t type = types[rnd_below(4)];

	rnd_fill(b, 20 + 64);
	b[0] = (uint8_t)(type >> 8);
	b[1] = (uint8_t)type;
	b[4] = 0x21; b[5] = 0x12; b[6] = 0xa4; b[7] = 0x42;
	switch (kind) {
	case 0:  /* the header claims more than there is */
		body = 4 * (1 + rnd_below(16));
		n = 20 + rnd_below((unsigned)body);
		n &= ~(size_t)3;
		if (n < 20)
			n = 20;
		break;
	case 1:  /* an attribute longer than the message */
		body = 8;
		b[20] = 0x00; b[21] = 0x20;               /* XOR-MAPPED-ADDRESS */
		b[22] = 0x01; b[23] = 0x00;               /* 256 bytes of it */
		n = 28;
		break;
	case 2:  /* unknown, comprehension-required */
		body = 8;
		b[20] = 0x00; b[21] = (uint8_t)(0x30 + rnd_below(0x40));
		b[22] = 0x00; b[23] = 0x04;
		n = 28;
		break;
	default: /* FINGERPRINT with a wrong CRC */
		body = 8;
		b[20] = 0x80; b[21] = 0x28; b[22] = 0x00; b[23] = 0x04;
		n = 28;
		break;
	}
	b[2] = (uint8_t)(body >> 8);
	b[3] = (uint8_t)body;
	return n;
}

/* One genuine client first flight into socket k's batch; the session is
 * gone before the server answers. Returns the datagrams it wrote. */
static unsigned junk_first_flight(struct sock *k)
{
	struct quic_path path;
	struct quic_session *s;
	unsigned n = 0;
	int err = 0;

	path.local = k->local_ss;
	na_endpoint_to_sockaddr(&ld.o.server, &path.remote);
	s = quic_session_client_new(&ld.dmx_cfg, NULL, &path, ld.o.server_key, NULL, ld.now, &err);
	if (!s) {
		fprintf(stderr, "rdvload: cannot start a session: %s\n", quic_strerror(err));
		return 0;
	}
	for (;;) {
		struct udp_out *o;
		uint8_t *buf = sock_slot(k, &o);
		struct quic_tx tx;
		ssize_t len = quic_session_write(s, buf, QUIC_MAX_PKT, &tx, ld.now);

		if (len <= 0)
			break;
		o->len = (size_t)len;
		k->n_out++;
		n++;
	}
	quic_session_free(s);
	return n;
}

static int run_flood(void)
{
	static const char *const kinds[] = { "random", "initial", "short", "stun" };
	uint64_t per_kind[4] = { 0 }, sent = 0, datagrams = 0, t0, end, drain_end;
	double secs;

	if (ld.o.mode == MODE_INITIALS) {
		if (make_creds() < 0)
			return 1;
		ld.dmx_cfg.cred = ld.creds[0];
	}
	t0 = ld.now = now_ns();
	end = t0 + (uint64_t)(ld.o.duration * SEC);
	while (sent < ld.o.peers && ld.now < end) {
		/* Due by now at --rate, at most one batch at a time. */
		uint64_t due = (uint64_t)((double)(ld.now - t0) / SEC * ld.o.rate) + 1;

		if (due > ld.o.peers)
			due = ld.o.peers;
		if (sent >= due) {
			wait_input(t0 + (uint64_t)((double)(sent + 1) / ld.o.rate * SEC));
			read_sockets();
			ld.now = now_ns();
			continue;
		}
		for (unsigned b = 0; b < BATCH && sent < due; b++, sent++) {
			struct sock *k = &ld.socks[sent % ld.n_socks];

			if (ld.o.mode == MODE_INITIALS) {
				datagrams += junk_first_flight(k);
				continue;
			}
			unsigned kind = rnd_below(4);
			struct udp_out *o;
			uint8_t *buf = sock_slot(k, &o);

			switch (kind) {
			case 0: o->len = junk_random(buf); break;
			case 1: o->len = junk_initial(buf); break;
			case 2: o->len = junk_short(buf); break;
			default: o->len = junk_stun(buf); break;
			}
			k->n_out++;
			per_kind[kind]++;
			datagrams++;
		}
		send_all();
		read_sockets();
		ld.now = now_ns();
	}
	secs = (double)(ld.now - t0) / SEC;
	drain_end = ld.now + DRAIN_TIME;
	while ((ld.now = now_ns()) < drain_end) {
		wait_input(drain_end);
		read_sockets();
	}
	if (ld.o.mode == MODE_GARBAGE)
		printf("mode=garbage sent=%" PRIu64 " %s=%" PRIu64 " %s=%" PRIu64 " %s=%" PRIu64
		       " %s=%" PRIu64 " dropped=%" PRIu64 " seconds=%.3f rate=%.1f/s replies=%" PRIu64
		       " reply_bytes=%" PRIu64 "\n", sent, kinds[0], per_kind[0], kinds[1],
		       per_kind[1], kinds[2], per_kind[2], kinds[3], per_kind[3], ld.tx_dropped, secs,
		       secs > 0 ? sent / secs : 0, ld.rx_pkts, ld.rx_bytes);
	else
		printf("mode=initials sent=%" PRIu64 " datagrams=%" PRIu64 " dropped=%" PRIu64
		       " seconds=%.3f rate=%.1f/s replies=%" PRIu64 " reply_bytes=%" PRIu64 "\n",
		       sent, datagrams, ld.tx_dropped, secs, secs > 0 ? sent / secs : 0, ld.rx_pkts,
		       ld.rx_bytes);
	if (sent < ld.o.peers)
		fprintf(stderr, "rdvload: only %" PRIu64 " of %u sent before --duration ran out\n",
			sent, ld.o.peers);
	return sent == ld.o.peers && !ld.tx_dropped ? 0 : 1;
}

/* ---- arguments ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rdvload --server IP:PORT --server-key BASE64 --peers N [options]\n"
		"  --mode M          register (default), nokey, garbage, initials or dialreq\n"
		"  --concurrency C   handshakes in flight (register, nokey; default 128)\n"
		"  --duration S      deadline for the whole run (default 60, at most 3600)\n"
		"  --hold S          register: keep the sessions S seconds after the last\n"
		"                    registration, then close them (default 0)\n"
		"  --timeout S       per peer, start to outcome (default 10)\n"
		"  --rate R          garbage, initials: datagrams or flights per second\n"
		"                    (default 20000)\n"
		"  --sockets K       UDP sockets (default: one per %u peers, at most %u)\n"
		"  --bind IP         local address (default: the route's source)\n"
		"  --requests R      dialreq: DIALREQs per peer, at once (default 20, at most %d)\n",
		PEERS_PER_SOCK, MAX_SOCKS, MAX_REQUESTS);
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{ "server", required_argument, NULL, 's' },
		{ "server-key", required_argument, NULL, 'k' },
		{ "peers", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "duration", required_argument, NULL, 'd' },
		{ "hold", required_argument, NULL, 'H' },
		{ "timeout", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "sockets", required_argument, NULL, 'S' },
		{ "bind", required_argument, NULL, 'b' },
		{ "requests", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	double v;
	int c;

	*o = (struct opts){ .concurrency = 128, .duration = 60, .timeout = 10, .rate = 20000,
			    .requests = 20 };
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		const char *why = NULL;

		switch (c) {
		case 's':
			if (!na_endpoint_parse(&o->server, optarg, false)) {
				fprintf(stderr, "rdvload: --server %s: not IP:PORT\n", optarg);
				return -1;
			}
			o->has_server = true;
			break;
		case 'k':
			if (!key_from_base64(o->server_key, optarg, &why)) {
				fprintf(stderr, "rdvload: --server-key %s %s\n", optarg, why);
				return -1;
			}
			o->has_key = true;
			break;
		case 'n':
			if (!parse_num(optarg, 1, MAX_PEERS, &v) || v != (double)(unsigned)v) {
				fprintf(stderr, "rdvload: --peers %s: a count from 1 to %d\n", optarg,
					MAX_PEERS);
				return -1;
			}
			o->peers = (unsigned)v;
			break;
		case 'c':
			if (!parse_num(optarg, 1, MAX_PEERS, &v) || v != (double)(unsigned)v) {
				fprintf(stderr, "rdvload: --concurrency %s: a count from 1 to %d\n",
					optarg, MAX_PEERS);
				return -1;
			}
			o->concurrency = (unsigned)v;
			break;
		case 'm':
			if (!strcmp(optarg, "register"))
				o->mode = MODE_REGISTER;
			else if (!strcmp(optarg, "nokey"))
				o->mode = MODE_NOKEY;
			else if (!strcmp(optarg, "garbage"))
				o->mode = MODE_GARBAGE;
			else if (!strcmp(optarg, "initials"))
				o->mode = MODE_INITIALS;
			else if (!strcmp(optarg, "dialreq"))
				o->mode = MODE_DIALREQ;
			else {
				fprintf(stderr, "rdvload: --mode %s: register, nokey, garbage, "
					"initials or dialreq\n", optarg);
				return -1;
			}
			break;
		case 'd':
			if (!parse_num(optarg, 0.1, 3600, &o->duration)) {
				fprintf(stderr, "rdvload: --duration %s: seconds, 0.1 to 3600\n", optarg);
				return -1;
			}
			break;
		case 'H':
			if (!parse_num(optarg, 0, 3600, &o->hold)) {
				fprintf(stderr, "rdvload: --hold %s: seconds, 0 to 3600\n", optarg);
				return -1;
			}
			break;
		case 't':
			if (!parse_num(optarg, 0.1, 600, &o->timeout)) {
				fprintf(stderr, "rdvload: --timeout %s: seconds, 0.1 to 600\n", optarg);
				return -1;
			}
			break;
		case 'r':
			if (!parse_num(optarg, 1, 10000000, &o->rate)) {
				fprintf(stderr, "rdvload: --rate %s: per second, 1 to 10000000\n", optarg);
				return -1;
			}
			break;
		case 'S':
			if (!parse_num(optarg, 1, MAX_SOCKS, &v) || v != (double)(unsigned)v) {
				fprintf(stderr, "rdvload: --sockets %s: 1 to %d\n", optarg, MAX_SOCKS);
				return -1;
			}
			o->sockets = (unsigned)v;
			break;
		case 'b':
			if (!na_ip_parse(&o->bind, optarg)) {
				fprintf(stderr, "rdvload: --bind %s: not an IP address\n", optarg);
				return -1;
			}
			break;
		case 'R':
			if (!parse_num(optarg, 1, MAX_REQUESTS, &v) || v != (double)(unsigned)v) {
				fprintf(stderr, "rdvload: --requests %s: 1 to %d\n", optarg, MAX_REQUESTS);
				return -1;
			}
			o->requests = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || !o->has_server || !o->peers ||
	    (!o->has_key && o->mode != MODE_GARBAGE)) {
		if (optind != argc)
			fprintf(stderr, "rdvload: unexpected argument %s\n", argv[optind]);
		else
			fprintf(stderr, "rdvload: --server, --peers and (but for garbage) "
				"--server-key are required\n");
		usage(stderr);
		return -1;
	}
	if (o->bind.family && o->bind.family != o->server.ip.family) {
		fprintf(stderr, "rdvload: --bind and --server are of different address families\n");
		return -1;
	}
	if (!o->sockets)
		o->sockets = o->mode == MODE_GARBAGE || o->mode == MODE_INITIALS ? 1 :
			(o->peers + PEERS_PER_SOCK - 1) / PEERS_PER_SOCK;
	if (o->sockets > MAX_SOCKS)
		o->sockets = MAX_SOCKS;
	if (o->concurrency > o->peers)
		o->concurrency = o->peers;
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (parse_args(argc, argv, &ld.o) < 0)
		return 1;
	if (gnutls_rnd(GNUTLS_RND_NONCE, &ld.rng, sizeof(ld.rng)) != 0 || !ld.rng)
		ld.rng = (uint64_t)now_ns() | 1;
	rnd_fill(ld.dmx_cfg.reset_secret, sizeof(ld.dmx_cfg.reset_secret));
	ld.nonce_base = rnd() & ~(((uint64_t)1 << 40) - 1); /* peer and request below */
	if (open_sockets(ld.o.sockets) < 0)
		return 1;
	{
		char ep[NA_ENDPOINT_STRLEN];
		fprintf(stderr, "rdvload: %s, %u %s to %s from %u socket(s)\n", mode_name(ld.o.mode),
			ld.o.peers, ld.o.mode == MODE_GARBAGE ? "datagrams" :
			ld.o.mode == MODE_INITIALS ? "first flights" : "peers",
			na_endpoint_str(&ld.o.server, ep, sizeof(ep)), ld.n_socks);
	}
	if (ld.o.mode == MODE_GARBAGE || ld.o.mode == MODE_INITIALS)
		rc = run_flood();
	else
		rc = run_sessions();
	for (unsigned i = 0; i < ld.n_socks; i++)
		close(ld.socks[i].fd);
	free(ld.socks);
	quic_demux_free(ld.dmx);
	for (unsigned i = 0; i < ld.n_creds; i++)
		quic_tls_cred_free(ld.creds[i]);
	free(ld.creds);
	free(ld.peers);
	free(ld.heap);
	free(ld.dirty);
	return rc;
}
