/* The path manager: a direct path to each peer wherever the NATs allow one,
 * the relay where they do not, and the move between the two without a new
 * handshake.
 *
 * An attempt, in the manner of libp2p's DCUtR, through the rendezvous:
 *   1. the initiator sends CONNECT (its candidates, a fresh secret, its NAT
 *      behaviour) and notes the time;
 *   2. the responder answers with its own CONNECT for the same attempt and
 *      builds its punch (it answers checks from now on);
 *   3. the initiator, on that answer, has the rendezvous round trip: it sends
 *      SYNC and fires its checks half a round trip later; the responder
 *      fires when SYNC arrives, so the checks of both cross at the NATs;
 *   4. each side selects the best pair its own checks got answered on; the
 *      side that is the QUIC client moves the session there (path validation
 *      and migration); the server follows by QUIC's own rules.
 * Towards a NAT that lets anyone in (as its CONNECT says), a side fires at
 * once: the initiator on the answer, the responder without waiting for SYNC.
 * Who initiates: whoever wants a direct path first; the smaller key at once
 * when a session comes up over the relay, the other after RETRY_FIRST. Two
 * CONNECTs that cross: the smaller key's attempt goes on, the other side
 * answers it.
 *
 * A direct path is watched: when DEAD_PTOS probe timeouts in a row went
 * unanswered and nothing came in on it for DEAD_AFTER, the client moves the
 * session back onto the relay and both punch again (a NAT rebinding gave
 * one side a new port, or a router forgot us); the side whose NAT moved
 * meanwhile learns its new address from the rendezvous and punches at once.
 *
 * Timers, per peer (struct pathmgr):
 *   timer   PM_CONNECT_SENT / PM_WAIT_SYNC: give up after EXCHANGE_TIMEOUT;
 *           PM_PUNCHING: the initiator's fire time, then the punch's own
 *           deadlines (pacing, rounds, grace, its timeout)
 *   retry   the next attempt while relayed: RETRY_FIRST after the session
 *           came up (larger key), then after each failure a backoff from
 *           RETRY_MIN doubling to RETRY_MAX; at once when our reflexive
 *           address changes; REPUNCH after a failover
 *   live    every LIVE_TICK while direct: the silence check above, and a
 *           token keepalive when nothing went out on the path for the NAT's
 *           keepalive interval (PersistentKeepalive; auto: 2/3 of a measured
 *           mapping lifetime, else 25 s), only when our side has a NAT
 * Liveness reads when XDP last saw the peer (nat_cache) as well as our own
 * receive time: a keepalive the XDP absorbed never reaches us.
 * The session's own timers (keep-alive, idle, PTO) are quic/session.h's; on
 * a direct path with tokens its keep-alive only has to keep the session
 * from idling out (2/3 of the idle timeout, if longer than the NAT's), as
 * the tokens keep the NAT open more cheaply: the far side's kernel drops
 * them without waking its agent. */
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/ctl.h"
#include "agent/fastpath.h"
#include "agent/log.h"
#include "agent/pathmgr.h"
#include "agent/portmap.h"
#include "agent/rdvclient.h"
#include "agent/udp.h"

#define EXCHANGE_TIMEOUT (3000000000ull)
#define RETRY_FIRST      (1000000000ull)
#define RETRY_MIN        (4000000000ull)
#define RETRY_MAX        (60000000000ull)
#define REPUNCH          (500000000ull)
#define LIVE_TICK        (500000000ull)
#define DEAD_AFTER       (2500000000ull)
#define DEAD_PTOS        3

_Static_assert(RDVMSG_NAT_MAPPING_MAX == NAT_MAPPING_APDM, "CONNECT's mapping range");
_Static_assert(RDVMSG_NAT_FILTERING_MAX == NAT_FILTERING_APDF, "CONNECT's filtering range");
_Static_assert(RDVMSG_MAX_CANDIDATES == PUNCH_MAX_CANDS, "one CONNECT, one side's candidates");

static const char *name(const struct pathmgr *pm)
{
	return pm->p->a->cfg->name;
}

static bool we_are_smaller(const struct peer *p)
{
	return memcmp(p->a->cfg->public_key, p->cfg->public_key, KEY_LEN) < 0;
}

static bool session_up(const struct peer *p)
{
	return p->conn && quic_session_is_up(p->conn->s);
}

static bool on_relay(const struct peer *p)
{
	return session_up(p) && relay_is_path(&quic_session_path(p->conn->s)->remote);
}

static uint64_t last_heard(const struct peer *p);

/* Worth an attempt: relayed, or on a direct path that went silent and has
 * not come back since (the peer moving to our new address revives it). */
static bool wants_direct(struct pathmgr *pm)
{
	if (on_relay(pm->p))
		return true;
	if (!session_up(pm->p) || !pm->direct_dead)
		return false;
	if (last_heard(pm->p) > pm->dead_at)
		pm->direct_dead = false;
	return pm->direct_dead;
}

static void event(struct pathmgr *pm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void event(struct pathmgr *pm, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pm->last_event, sizeof(pm->last_event), fmt, ap);
	va_end(ap);
}

/* ---- candidates ---- */

static void add_cand(struct rdvmsg_connect *m, uint8_t type, const struct na_endpoint *ep,
		     uint32_t priority)
{
	for (unsigned i = 0; i < m->count; i++)
		if (na_endpoint_equal(&m->cand[i].ep, ep))
			return;
	if (m->count >= RDVMSG_MAX_CANDIDATES)
		return;
	m->cand[m->count++] = (struct rdvmsg_candidate){ .ep = *ep, .type = type,
							 .priority = priority };
}

/* Earlier candidates of a type rank higher. */
static void add_local(struct rdvmsg_connect *m, uint8_t type, const struct na_endpoint *ep)
{
	add_cand(m, type, ep, punch_cand_priority(type, (uint16_t)(65535 - m->count)));
}

/* Not a candidate: loopback, link-local, and our own tunnel's addresses. */
static bool host_usable(const struct agent *a, const struct ifaddrs *ifa, const struct na_ip *ip)
{
	if (!(ifa->ifa_flags & IFF_UP) || (ifa->ifa_flags & IFF_LOOPBACK))
		return false;
	if (!strcmp(ifa->ifa_name, a->cfg->name))
		return false;
	if (ip->family == AF_INET6 && ip->v6[0] == 0xfe && (ip->v6[1] & 0xc0) == 0x80)
		return false;
	if (ip->family == AF_INET && ip->v4[0] == 169 && ip->v4[1] == 254)
		return false;
	return true;
}

unsigned pathmgr_host_addrs(struct agent *a, struct na_endpoint *out, unsigned max)
{
	struct ifaddrs *ifs = NULL;
	unsigned n = 0;

	if (getifaddrs(&ifs) != 0)
		return 0;
	for (struct ifaddrs *i = ifs; i && n < max; i = i->ifa_next) {
		struct na_endpoint ep;

		if (!i->ifa_addr || !na_endpoint_from_sockaddr(&ep, i->ifa_addr))
			continue;
		if (agent_fd(a, ep.ip.family, a->port) < 0 || !host_usable(a, i, &ep.ip))
			continue;
		ep.port = a->port;
		out[n++] = ep;
	}
	freeifaddrs(ifs);
	return n;
}

/* Host addresses of the families we have a socket for, then how the
 * router's port mapping, then how the rendezvous and discovery saw us. */
static void gather(struct agent *a, struct rdvmsg_connect *m)
{
	struct na_endpoint hosts[RDVMSG_MAX_CANDIDATES];
	unsigned n = pathmgr_host_addrs(a, hosts, RDVMSG_MAX_CANDIDATES);
	struct rdvclient *r = a->rdv;
	struct na_endpoint mapped;

	m->count = 0;
	for (unsigned i = 0; i < n; i++)
		add_local(m, RDVMSG_CAND_HOST, &hosts[i]);
	/* The router forwards it to us whoever sends: the one candidate a
	 * peer reaches without a synchronized punch. */
	if (portmap_external(a, &mapped))
		add_local(m, RDVMSG_CAND_MAPPED, &mapped);
	if (r && r->have_srflx)
		add_local(m, RDVMSG_CAND_SRFLX, &r->srflx);
	if (a->have_report && a->report.has_mapped)
		add_local(m, RDVMSG_CAND_SRFLX, &a->report.mapped);
	/* A NAT that maps per destination: where it will likely put us for
	 * this peer, if it allocates predictably. */
	if (a->have_report && r && r->have_srflx) {
		struct punch_cand pred[PUNCH_PREDICT + 1];
		unsigned n = punch_predict(&a->report, &r->srflx, a->port, pred,
					   PUNCH_PREDICT + 1);

		for (unsigned i = 0; i < n; i++)
			add_cand(m, pred[i].type, &pred[i].ep, pred[i].priority);
	}
}

static void our_nat(const struct agent *a, uint8_t *map, uint8_t *filt)
{
	*map = a->have_report ? (uint8_t)a->report.mapping : NAT_MAPPING_UNKNOWN;
	*filt = a->have_report ? (uint8_t)a->report.filtering : NAT_FILTERING_UNKNOWN;
}

/* ---- the rendezvous exchange ---- */

static void schedule_retry(struct pathmgr *pm, uint64_t delay)
{
	loop_timer_set(pm->p->a->loop, &pm->retry, loop_now() + delay);
}

static void attempt_failed(struct pathmgr *pm, const char *why)
{
	struct peer *p = pm->p;

	pm->phase = PM_IDLE;
	pm->ended = loop_now();
	loop_timer_cancel(p->a->loop, &pm->timer);
	pm->backoff = pm->backoff ? pm->backoff * 2 : RETRY_MIN;
	if (pm->backoff > RETRY_MAX)
		pm->backoff = RETRY_MAX;
	event(pm, "attempt %u: %s", pm->attempts, why);
	log_info("%s: peer %s: no direct path (%s); staying on the relay, next try in %" PRIu64
		 " s", name(pm), p->name, why, pm->backoff / UINT64_C(1000000000));
	if (wants_direct(pm))
		schedule_retry(pm, pm->backoff);
}

static bool send_connect(struct pathmgr *pm, uint64_t attempt, bool answer)
{
	struct agent *a = pm->p->a;
	static struct rdvmsg m;

	memset(&m, 0, sizeof(m));
	m.type = RDVMSG_CONNECT;
	memcpy(m.connect.key, pm->p->cfg->public_key, KEY_LEN);
	m.connect.attempt = attempt;
	m.connect.rtt_us = (uint32_t)(pm->rtt / 1000);
	m.connect.answer = answer;
	memcpy(m.connect.secret, pm->secret, PUNCH_SECRET_LEN);
	m.connect.token = pm->our_token;
	our_nat(a, &m.connect.mapping, &m.connect.filtering);
	gather(a, &m.connect);
	return rdvclient_send(a, &m);
}

/* Starts an attempt as its initiator. */
static void initiate(struct pathmgr *pm)
{
	struct peer *p = pm->p;

	if (pm->phase != PM_IDLE || !rdvclient_uplink(p->a) || !wants_direct(pm))
		return;
	random_nonce(NULL, (uint8_t *)&pm->attempt, sizeof(pm->attempt));
	random_nonce(NULL, pm->secret, sizeof(pm->secret));
	pm->attempts++;
	pm->have_punch = false;
	pm->started = pm->connect_sent = loop_now();
	if (!send_connect(pm, pm->attempt, false)) {
		attempt_failed(pm, "cannot reach the rendezvous");
		return;
	}
	pm->phase = PM_CONNECT_SENT;
	loop_timer_set(p->a->loop, &pm->timer, loop_now() + EXCHANGE_TIMEOUT);
	log_debug("%s: peer %s: punch attempt %u: CONNECT sent", name(pm), p->name, pm->attempts);
}

static void on_retry(void *arg, uint64_t now)
{
	(void)now;
	initiate(arg);
}

/* Builds the punch from their CONNECT; our candidates are gathered again
 * (the same ones our CONNECT carried, unless an address changed since). */
static void build_punch(struct pathmgr *pm, const struct rdvmsg_connect *m, bool initiator)
{
	struct agent *a = pm->p->a;
	struct punch_params prm = {
		.initiator = initiator,
		.attempt = pm->attempt,
		.rand = random_nonce,
	};
	static struct rdvmsg ours;

	memcpy(prm.local_secret, pm->secret, PUNCH_SECRET_LEN);
	memcpy(prm.remote_secret, m->secret, PUNCH_SECRET_LEN);
	punch_init(&pm->punch, &prm);
	memset(&ours, 0, sizeof(ours));
	gather(a, &ours.connect);
	for (unsigned i = 0; i < ours.connect.count; i++) {
		const struct rdvmsg_candidate *c = &ours.connect.cand[i];
		punch_add_local(&pm->punch, &(struct punch_cand){ c->ep, c->type, c->priority });
	}
	for (unsigned i = 0; i < m->count; i++) {
		const struct rdvmsg_candidate *c = &m->cand[i];
		punch_add_remote(&pm->punch, &(struct punch_cand){ c->ep, c->type, c->priority });
	}
	if (pm->p->cfg->has_endpoint)
		punch_add_remote(&pm->punch, &(struct punch_cand){
			pm->p->cfg->endpoint, PUNCH_CAND_STATIC,
			punch_cand_priority(PUNCH_CAND_STATIC, 65535) });
	pm->have_punch = true;
	pm->their_token = m->token;
	/* A CONNECT sent before its sender's discovery was done knows
	 * nothing new: keep what NATINFO or an earlier CONNECT said. */
	if (m->mapping != NAT_MAPPING_UNKNOWN || m->filtering != NAT_FILTERING_UNKNOWN) {
		pm->their_mapping = m->mapping;
		pm->their_filtering = m->filtering;
		pm->their_nat_known = true;
	}
}

static void run_punch(struct pathmgr *pm, uint64_t now);

/* A NAT that lets anyone in (none, or endpoint-independent filtering)
 * needs no packet of its own side first: checks towards it get through
 * whenever they leave, so there is nothing to synchronise with it. */
static bool lets_anyone_in(uint8_t mapping, uint8_t filtering)
{
	return mapping == NAT_MAPPING_NONE || filtering == NAT_FILTERING_EIF;
}

/* Their CONNECT offers a port their router maps for them: reachable by
 * anyone, whatever their NAT's filtering. */
static bool offers_mapped(const struct rdvmsg_connect *m)
{
	for (unsigned i = 0; i < m->count; i++)
		if (m->cand[i].type == RDVMSG_CAND_MAPPED)
			return true;
	return false;
}

static bool fire_at_once(const struct rdvmsg_connect *m)
{
	return lets_anyone_in(m->mapping, m->filtering) || offers_mapped(m);
}

static void to_relay(struct pathmgr *pm, const char *why);

static void on_timer(void *arg, uint64_t now)
{
	struct pathmgr *pm = arg;

	switch (pm->phase) {
	case PM_CONNECT_SENT:
		attempt_failed(pm, "the peer did not answer through the rendezvous");
		break;
	case PM_WAIT_SYNC:
		attempt_failed(pm, "no SYNC from the peer");
		break;
	case PM_PUNCHING:
		if (punch_state(&pm->punch) == PUNCH_IDLE && now >= pm->fire_at)
			punch_start(&pm->punch, now);
		run_punch(pm, now);
		break;
	case PM_IDLE:
		break;
	}
}

void pathmgr_on_connect(struct agent *a, const struct rdvmsg_connect *m)
{
	struct peer *p = peer_by_key(a, m->key);
	struct pathmgr *pm = p ? p->pm : NULL;
	uint64_t now = loop_now();

	if (!pm)
		return;
	if (m->answer && (pm->phase != PM_CONNECT_SENT || m->attempt != pm->attempt))
		return; /* answers an attempt we gave up */
	if (m->answer) {
		/* Their answer to ours: fire half a round trip after SYNC. */
		static struct rdvmsg s;

		pm->rtt = now - pm->connect_sent;
		build_punch(pm, m, true);
		memset(&s, 0, sizeof(s));
		s.type = RDVMSG_SYNC;
		memcpy(s.sync.key, p->cfg->public_key, KEY_LEN);
		s.sync.attempt = pm->attempt;
		s.sync.delay_us = (uint32_t)(pm->rtt / 2000);
		if (!rdvclient_send(a, &s)) {
			attempt_failed(pm, "cannot reach the rendezvous");
			return;
		}
		pm->phase = PM_PUNCHING;
		pm->fire_at = fire_at_once(m) ? now : now + pm->rtt / 2;
		loop_timer_set(a->loop, &pm->timer, pm->fire_at);
		log_debug("%s: peer %s: rendezvous round trip %" PRIu64 " us; SYNC sent", a->cfg->name,
			  p->name, pm->rtt / 1000);
		return;
	}
	if (m->attempt == pm->attempt)
		return; /* a repeat */
	if (pm->phase == PM_CONNECT_SENT && we_are_smaller(p))
		return; /* crossed CONNECTs: ours goes on, they answer it */
	/* On a direct path, a CONNECT means the peer stopped hearing us there
	 * (its NAT gave it a new port, say): the client moves to the relay at
	 * once, so the session lives while the punch finds the new path. */
	if (session_up(p) && !on_relay(p) && !quic_session_is_server(p->conn->s))
		to_relay(pm, "the peer lost the direct path");
	/* Theirs: answer it, and answer its checks from now on. */
	loop_timer_cancel(a->loop, &pm->retry);
	pm->attempt = m->attempt;
	pm->attempts++;
	pm->started = now;
	pm->rtt = (uint64_t)m->rtt_us * 1000;
	random_nonce(NULL, pm->secret, sizeof(pm->secret));
	build_punch(pm, m, false);
	if (!send_connect(pm, pm->attempt, true)) {
		attempt_failed(pm, "cannot reach the rendezvous");
		return;
	}
	if (fire_at_once(m)) {
		/* Theirs lets us in: no need to wait for SYNC. */
		pm->phase = PM_PUNCHING;
		pm->fire_at = now;
		punch_start(&pm->punch, now);
		run_punch(pm, now);
		return;
	}
	pm->phase = PM_WAIT_SYNC;
	loop_timer_set(a->loop, &pm->timer, now + EXCHANGE_TIMEOUT);
}

void pathmgr_on_sync(struct agent *a, const struct rdvmsg_sync *m)
{
	struct peer *p = peer_by_key(a, m->key);
	struct pathmgr *pm = p ? p->pm : NULL;
	uint64_t now = loop_now();

	if (!pm || pm->phase != PM_WAIT_SYNC || m->attempt != pm->attempt)
		return;
	pm->phase = PM_PUNCHING;
	pm->rtt = (uint64_t)m->delay_us * 2000;
	pm->fire_at = now;
	punch_start(&pm->punch, now);
	run_punch(pm, now);
}

/* ---- checks on the wire ---- */

static void send_udp(struct agent *a, const uint8_t *buf, size_t len,
		     const struct na_endpoint *from, const struct na_endpoint *to)
{
	int fd = agent_fd(a, from->ip.family, from->port);

	if (fd >= 0)
		udp_send(fd, buf, len, to, &from->ip, 0);
}

static bool same_remote(const struct peer *p, const struct na_endpoint *ep)
{
	struct na_endpoint cur;

	na_endpoint_from_sockaddr(&cur, (const struct sockaddr *)&quic_session_path(p->conn->s)->remote);
	return na_endpoint_equal(&cur, ep);
}

/* The QUIC client moves the session onto the punched path. */
static void adopt(struct pathmgr *pm, const struct punch_pair *pair)
{
	struct peer *p = pm->p;
	const struct punch_cand *l = &pm->punch.local[pair->local];
	const struct punch_cand *r = &pm->punch.remote[pair->remote];
	char re[NA_ENDPOINT_STRLEN];
	struct quic_path path;
	int err;

	na_endpoint_str(&r->ep, re, sizeof(re));
	event(pm, "attempt %u: punched %s in %" PRIu64 " ms", pm->attempts, re, pm->took / 1000000);
	log_info("%s: peer %s: direct path to %s punched in %" PRIu64 " ms (%" PRIu64
		 " checks sent, %" PRIu64 " answered)", name(pm), p->name, re, pm->took / 1000000,
		 pm->punch.checks_sent, pm->punch.answers_sent);
	if (!session_up(p) || quic_session_is_server(p->conn->s))
		return; /* the client moves; the server follows */
	if (!on_relay(p) && !pm->direct_dead && !pm->to_relay_pending &&
	    same_remote(p, &r->ep))
		return; /* already there */
	na_endpoint_to_sockaddr(&l->ep, &path.local);
	na_endpoint_to_sockaddr(&r->ep, &path.remote);
	err = quic_session_migrate(p->conn->s, &path, loop_now());
	if (err < 0) {
		log_warn("%s: peer %s: cannot move the session to %s: %s", name(pm), p->name, re,
			 quic_strerror(err));
		schedule_retry(pm, REPUNCH);
		return;
	}
	conn_mark(p->conn);
}

static void run_punch(struct pathmgr *pm, uint64_t now)
{
	struct agent *a = pm->p->a;
	uint8_t buf[PUNCH_MAX_MSG];
	struct na_endpoint from, to;
	size_t n;
	unsigned sent = 0;
	uint64_t dl;

	while (sent < PUNCH_MAX_PAIRS && (n = punch_next(&pm->punch, now, buf, sizeof(buf), &from, &to))) {
		char t[NA_ENDPOINT_STRLEN];

		send_udp(a, buf, n, &from, &to);
		log_debug("%s: peer %s: check to %s", name(pm), pm->p->name,
			  na_endpoint_str(&to, t, sizeof(t)));
		sent++;
	}
	switch (punch_state(&pm->punch)) {
	case PUNCH_SUCCEEDED:
		if (pm->phase == PM_PUNCHING) {
			pm->phase = PM_IDLE;
			pm->ended = now;
			pm->took = now - pm->started;
			pm->backoff = 0;
			loop_timer_cancel(a->loop, &pm->retry);
			adopt(pm, punch_selected(&pm->punch));
		}
		break;
	case PUNCH_FAILED:
		if (pm->phase == PM_PUNCHING)
			attempt_failed(pm, "no candidate pair answered");
		break;
	default:
		break;
	}
	dl = punch_deadline(&pm->punch);
	if (dl != UINT64_MAX)
		loop_timer_set(a->loop, &pm->timer, dl);
	else if (pm->phase == PM_IDLE)
		loop_timer_cancel(a->loop, &pm->timer);
}

bool pathmgr_input_stun(struct agent *a, const struct stun_msg *m,
			const struct na_endpoint *from, const struct na_endpoint *local)
{
	uint8_t reply[PUNCH_MAX_MSG];
	uint64_t now = loop_now();

	for (unsigned i = 0; i < a->n_peers; i++) {
		struct pathmgr *pm = a->peers[i]->pm;
		enum punch_input_result res;
		char f[NA_ENDPOINT_STRLEN];
		size_t rlen = 0;

		if (!pm || !pm->have_punch)
			continue;
		res = punch_input(&pm->punch, m, from, local, now, reply, sizeof(reply), &rlen);
		if (res != PUNCH_IN_NOT_OURS)
			log_debug("%s: peer %s: %s from %s", name(pm), pm->p->name,
				  res == PUNCH_IN_REQUEST ? "check" : res == PUNCH_IN_RESPONSE ?
				  "answer" : "invalid check or answer", na_endpoint_str(from, f, sizeof(f)));
		switch (res) {
		case PUNCH_IN_NOT_OURS:
			continue;
		case PUNCH_IN_REQUEST:
			if (rlen)
				send_udp(a, reply, rlen, local, from);
			/* fall through */
		case PUNCH_IN_RESPONSE:
			if (pm->phase == PM_PUNCHING)
				run_punch(pm, now);
			return true;
		case PUNCH_IN_BAD:
			return true;
		}
	}
	return false;
}

/* ---- the path in use ---- */

/* The client moves the session onto the relay (why: log it, if not NULL). */
static void to_relay(struct pathmgr *pm, const char *why)
{
	struct peer *p = pm->p;
	struct quic_path path;
	int err;

	if (!rdvclient_can_relay(p->a) || pm->to_relay_pending)
		return;
	if (why)
		log_info("%s: peer %s: %s; moving to the relay", name(pm), p->name, why);
	relay_path(p, &path);
	err = quic_session_migrate(p->conn->s, &path, loop_now());
	if (err < 0)
		log_warn("%s: peer %s: cannot move the session to the relay: %s", name(pm), p->name,
			 quic_strerror(err));
	else
		pm->to_relay_pending = true;
	conn_mark(p->conn);
}

/* How often our NAT needs a packet to keep the mapping; 0 for never. */
static uint64_t nat_keepalive(const struct peer *p)
{
	const struct nat_report *r = &p->a->report;

	if (p->a->have_report && r->mapping == NAT_MAPPING_NONE)
		return 0;
	if (p->cfg->has_persistent_keepalive)
		return (uint64_t)p->cfg->persistent_keepalive * 1000000000ull;
	if (p->a->have_report && r->lifetime_measured && r->lifetime_alive_ms >= 3000)
		return r->lifetime_alive_ms * 2000000ull / 3;
	return (uint64_t)CONFIG_DEFAULT_KEEPALIVE * 1000000000ull;
}

static void send_keepalive(struct pathmgr *pm, const struct quic_path *path, uint64_t now)
{
	struct na_endpoint local, remote;
	uint8_t txid[STUN_TXID_LEN], r12[12], buf[64];
	size_t n;

	random_nonce(NULL, r12, sizeof(r12));
	stun_txid_set(txid, r12);
	n = stun_build_keepalive(buf, sizeof(buf), txid, pm->their_token, true);
	na_endpoint_from_sockaddr(&local, (const struct sockaddr *)&path->local);
	na_endpoint_from_sockaddr(&remote, (const struct sockaddr *)&path->remote);
	if (n)
		send_udp(pm->p->a, buf, n, &local, &remote);
	pm->ka_last = now;
	pm->ka_sent++;
}

/* When we last heard from the peer on the session's direct path, and last
 * sent there: our own times, or the fast path's (nat_cache) when later; a
 * keepalive XDP absorbed reaches only the latter. */
static void last_seen(const struct peer *p, uint64_t *rx, uint64_t *tx)
{
	const struct quic_path *cur = quic_session_path(p->conn->s);
	struct na_endpoint local, remote;
	uint64_t now = loop_now(), crx, ctx;

	*rx = p->conn->rx_direct;
	*tx = p->conn->tx_direct;
	if (!p->a->fp)
		return;
	na_endpoint_from_sockaddr(&local, (const struct sockaddr *)&cur->local);
	na_endpoint_from_sockaddr(&remote, (const struct sockaddr *)&cur->remote);
	if (!fastpath_last_seen(p->a->fp, &remote, local.port, &crx, &ctx))
		return;
	if (crx > *rx && crx <= now)
		*rx = crx;
	if (ctx > *tx && ctx <= now)
		*tx = ctx;
}

static uint64_t last_heard(const struct peer *p)
{
	uint64_t rx, tx;

	last_seen(p, &rx, &tx);
	return rx;
}

static void on_live(void *arg, uint64_t now)
{
	struct pathmgr *pm = arg;
	struct peer *p = pm->p;
	struct conn *c = p->conn;
	uint64_t ka = nat_keepalive(p), rx, tx;
	struct quic_session_stats qs;

	if (!session_up(p) || on_relay(p)) {
		pm->direct_since = 0;
		return;
	}
	loop_timer_set(p->a->loop, &pm->live, now + LIVE_TICK);
	/* The NAT's refresh is the last packet out on the path, whoever sent
	 * it (tc records ours in nat_cache, keepalives included). */
	last_seen(p, &rx, &tx);
	if (ka && pm->their_token && now - tx >= ka && now - pm->ka_last >= ka)
		send_keepalive(pm, quic_session_path(c->s), now);
	/* Silence counts only while something we sent waits for an answer:
	 * an idle session (or one whose last packet was an ACK) expects
	 * nothing. PTOs in a row say the peer has stopped acknowledging. */
	wants_direct(pm); /* clears direct_dead once the peer is heard again */
	quic_session_get_stats(c->s, &qs);
	if (qs.pto_count < DEAD_PTOS || now - rx < DEAD_AFTER)
		return;
	pm->failovers++;
	pm->direct_since = 0;
	event(pm, "direct path silent for %" PRIu64 " ms: back to the relay", (now - rx) / 1000000);
	log_info("%s: peer %s: nothing heard on the direct path for %" PRIu64 " ms; %s",
		 name(pm), p->name, (now - rx) / 1000000,
		 quic_session_is_server(c->s) ? "punching again" : "moving to the relay and punching again");
	loop_timer_cancel(p->a->loop, &pm->live);
	if (!quic_session_is_server(c->s))
		to_relay(pm, NULL);
	c->rx_direct = now; /* one failover per silence */
	pm->direct_dead = true;
	pm->dead_at = now;
	pm->phase = PM_IDLE;
	pm->backoff = 0;
	schedule_retry(pm, REPUNCH);
}

/* The session's keep-alive for the path it is on (see the top). */
static void session_keepalive(struct pathmgr *pm)
{
	struct peer *p = pm->p;
	struct agent *a = p->a;
	uint64_t k = a->qcfg.keepalive, idle = a->qcfg.idle_timeout;

	if (!on_relay(p) && pm->their_token && nat_keepalive(p) && idle * 2 / 3 > k)
		k = idle * 2 / 3;
	quic_session_set_keepalive(p->conn->s, k);
}

static void watch_direct(struct pathmgr *pm)
{
	struct peer *p = pm->p;

	if (!session_up(p) || on_relay(p))
		return;
	session_keepalive(pm);
	if (!pm->direct_since)
		pm->direct_since = loop_now();
	p->conn->rx_direct = p->conn->tx_direct = loop_now();
	loop_timer_set(p->a->loop, &pm->live, loop_now() + LIVE_TICK);
}

/* NATINFO: our NAT's behaviour, on the session's own control stream, so
 * that a peer that punched before our discovery was done still learns it. */
static void send_natinfo(struct peer *p)
{
	struct rdvmsg m = { .type = RDVMSG_NATINFO };

	if (!session_up(p) || (!p->a->have_report && !p->a->cfg->autonat_service))
		return;
	our_nat(p->a, &m.natinfo.mapping, &m.natinfo.filtering);
	m.natinfo.services = p->a->cfg->autonat_service ? RDVMSG_SVC_AUTONAT : 0;
	peerctl_send(p, &m);
}

void pathmgr_nat_known(struct agent *a)
{
	for (unsigned i = 0; i < a->n_peers; i++)
		send_natinfo(a->peers[i]);
}

void pathmgr_natinfo(struct peer *p, const struct rdvmsg_natinfo *m)
{
	struct pathmgr *pm = p->pm;
	bool served = pm->their_services & RDVMSG_SVC_AUTONAT;

	/* Unknown: the peer runs no discovery (no STUN), or not yet. */
	if (m->mapping != NAT_MAPPING_UNKNOWN || m->filtering != NAT_FILTERING_UNKNOWN) {
		pm->their_mapping = m->mapping;
		pm->their_filtering = m->filtering;
		pm->their_nat_known = true;
	}
	pm->their_services = m->services;
	if (served != !!(m->services & RDVMSG_SVC_AUTONAT))
		autonat_servers_changed(p->a);
}

bool pathmgr_autonat_server(const struct peer *p, struct na_endpoint *at)
{
	if (!p->pm || !(p->pm->their_services & RDVMSG_SVC_AUTONAT) || !session_up(p) ||
	    on_relay(p) || p->pm->direct_dead)
		return false;
	na_endpoint_from_sockaddr(at, (const struct sockaddr *)&quic_session_path(p->conn->s)->remote);
	return true;
}

void pathmgr_autonat_refused(struct peer *p)
{
	if (p->pm)
		p->pm->their_services &= (uint8_t)~RDVMSG_SVC_AUTONAT;
}

void pathmgr_session_up(struct peer *p)
{
	struct pathmgr *pm = p->pm;

	if (!pm)
		return;
	send_natinfo(p);
	if (!on_relay(p)) {
		watch_direct(pm);
		return;
	}
	if (pm->phase != PM_IDLE)
		return;
	pm->backoff = 0;
	if (we_are_smaller(p))
		initiate(pm);
	else
		schedule_retry(pm, RETRY_FIRST);
}

void pathmgr_path_event(struct conn *c, enum quic_path_event ev, const struct quic_path *path)
{
	struct peer *p = c->peer;
	struct pathmgr *pm = p ? p->pm : NULL;
	char r[NA_ENDPOINT_STRLEN];
	struct na_endpoint remote;

	if (!pm || p->conn != c)
		return;
	if (ev != QUIC_PATH_VALIDATED && relay_is_path(&path->remote))
		pm->to_relay_pending = false;
	if (ev == QUIC_PATH_FAILED && !relay_is_path(&path->remote)) {
		na_endpoint_from_sockaddr(&remote, (const struct sockaddr *)&path->remote);
		event(pm, "path validation to %s failed", na_endpoint_str(&remote, r, sizeof(r)));
		if (on_relay(p))
			schedule_retry(pm, RETRY_MIN);
		return;
	}
	if (ev != QUIC_PATH_MIGRATED)
		return;
	pm->direct_dead = false;
	if (relay_is_path(&path->remote)) {
		pm->direct_since = 0;
		loop_timer_cancel(p->a->loop, &pm->live);
		session_keepalive(pm);
		if (pm->phase == PM_IDLE && !loop_timer_armed(&pm->retry))
			schedule_retry(pm, we_are_smaller(p) ? REPUNCH : RETRY_FIRST);
		return;
	}
	loop_timer_cancel(p->a->loop, &pm->retry);
	watch_direct(pm);
	/* Direct now: it can check our reachability if it offers to. */
	if (pm->their_services & RDVMSG_SVC_AUTONAT)
		autonat_servers_changed(p->a);
}

void pathmgr_config_changed(struct peer *p)
{
	/* The token keepalives read the peer's config as they go; the
	 * session's own keep-alive is set here and at each path change. */
	if (p->pm && session_up(p))
		session_keepalive(p->pm);
}

void pathmgr_candidates_changed(struct agent *a, bool restart)
{
	for (unsigned i = 0; i < a->n_peers; i++) {
		struct pathmgr *pm = a->peers[i]->pm;

		if (!pm || !wants_direct(pm))
			continue;
		/* An attempt under way advertised what is no longer true:
		 * start over (the peer takes the new attempt's CONNECT). */
		if (pm->phase != PM_IDLE && !restart)
			continue;
		if (pm->phase != PM_IDLE) {
			loop_timer_cancel(a->loop, &pm->timer);
			pm->phase = PM_IDLE;
		}
		pm->backoff = 0;
		schedule_retry(pm, 0);
	}
}

/* ---- status ---- */

static const char *mapping_name(uint8_t m)
{
	switch (m) {
	case NAT_MAPPING_NONE: return "none";
	case NAT_MAPPING_EIM:  return "endpoint-independent";
	case NAT_MAPPING_ADM:  return "address-dependent";
	case NAT_MAPPING_APDM: return "address-and-port-dependent";
	}
	return "unknown";
}

static const char *filtering_name(uint8_t f)
{
	switch (f) {
	case NAT_FILTERING_EIF:  return "endpoint-independent";
	case NAT_FILTERING_ADF:  return "address-dependent";
	case NAT_FILTERING_APDF: return "address-and-port-dependent";
	}
	return "unknown";
}

static const char *cand_type_name(uint8_t t)
{
	static const char *const n[] = { "host", "srflx", "prflx", "mapped", "static" };

	return t < 5 ? n[t] : "?";
}

static const char *phase_name(const struct pathmgr *pm)
{
	switch (pm->phase) {
	case PM_CONNECT_SENT: return "exchanging candidates";
	case PM_WAIT_SYNC:    return "waiting for SYNC";
	case PM_PUNCHING:     return "punching";
	case PM_IDLE:         break;
	}
	return pm->have_punch ? punch_state_name(punch_state(&pm->punch)) : "none";
}

void pathmgr_status(const struct peer *p, struct ctl_out *out, uint64_t now)
{
	const struct pathmgr *pm = p->pm;
	const struct agent *a = p->a;
	uint8_t om, of;
	char v[320], l[NA_ENDPOINT_STRLEN], r[NA_ENDPOINT_STRLEN];
	const struct punch_pair *sel;

	if (!pm || !pm->attempts)
		return;
	ctl_printf(out, "punch_attempts=%u\npunch_state=%s\n", pm->attempts, phase_name(pm));
	ctl_printf(out, "punch_age_ms=%" PRIu64 "\n", (now - pm->started) / 1000000);
	if (pm->took && pm->have_punch && punch_state(&pm->punch) == PUNCH_SUCCEEDED)
		ctl_printf(out, "punch_took_ms=%" PRIu64 "\n", pm->took / 1000000);
	if (pm->have_punch)
		ctl_printf(out, "punch_checks_sent=%" PRIu64 "\n", pm->punch.checks_sent);
	if (pm->last_event[0])
		ctl_put(out, "punch_event", pm->last_event);
	if (pm->failovers)
		ctl_printf(out, "failovers=%u\n", pm->failovers);
	if (pm->ka_sent)
		ctl_printf(out, "keepalives_sent=%" PRIu64 "\n", pm->ka_sent);
	our_nat(a, &om, &of);
	ctl_printf(out, "nat_ours=%s mapping, %s filtering\n", mapping_name(om), filtering_name(of));
	if (pm->their_nat_known)
		ctl_printf(out, "nat_theirs=%s mapping, %s filtering\n",
			   mapping_name(pm->their_mapping), filtering_name(pm->their_filtering));
	if (!pm->have_punch)
		return;
	for (unsigned i = 0; i < pm->punch.n_pairs; i++) {
		const struct punch_pair *pr = &pm->punch.pairs[i];
		const struct punch_cand *rc = &pm->punch.remote[pr->remote];

		na_endpoint_str(&pm->punch.local[pr->local].ep, l, sizeof(l));
		na_endpoint_str(&rc->ep, r, sizeof(r));
		ctl_printf(out, "pair=%s -> %s (%s): %s", l, r, cand_type_name(rc->type),
			   punch_pair_state_name(pr->state));
		if (pr->state == PUNCH_PAIR_SUCCEEDED)
			ctl_printf(out, ", rtt %" PRIu64 " us", pr->rtt / 1000);
		if (pr->state == PUNCH_PAIR_WRONG_PORT)
			ctl_printf(out, " (%s)", na_endpoint_str(&pr->answered_from, r, sizeof(r)));
		ctl_printf(out, "\n");
	}
	sel = punch_selected(&pm->punch);
	if (sel && pm->punch.remote[sel->remote].type == PUNCH_CAND_MAPPED)
		snprintf(v, sizeof(v), "direct path: the peer's router forwards a port mapped for "
			 "it; no synchronized punch needed");
	else
		punch_verdict(om, of, pm->their_nat_known ? pm->their_mapping : NAT_MAPPING_UNKNOWN,
			      pm->their_nat_known ? pm->their_filtering : NAT_FILTERING_UNKNOWN,
			      punch_state(&pm->punch) == PUNCH_SUCCEEDED, v, sizeof(v));
	ctl_put(out, "verdict", v);
}

/* ---- life ---- */

struct pathmgr *pathmgr_new(struct peer *p)
{
	struct pathmgr *pm = calloc(1, sizeof(*pm));

	if (!pm)
		return NULL;
	pm->p = p;
	while (!pm->our_token)
		random_nonce(NULL, (uint8_t *)&pm->our_token, sizeof(pm->our_token));
	loop_timer_init(&pm->timer, on_timer, pm);
	loop_timer_init(&pm->retry, on_retry, pm);
	loop_timer_init(&pm->live, on_live, pm);
	return pm;
}

void pathmgr_fastpath_up(struct agent *a)
{
	for (unsigned i = 0; i < a->n_peers; i++)
		if (a->peers[i]->pm)
			fastpath_add_token(a->fp, a->peers[i]->pm->our_token);
}

void pathmgr_free(struct pathmgr *pm)
{
	if (!pm)
		return;
	if (pm->p->a->fp)
		fastpath_del_token(pm->p->a->fp, pm->our_token);
	loop_timer_cancel(pm->p->a->loop, &pm->timer);
	loop_timer_cancel(pm->p->a->loop, &pm->retry);
	loop_timer_cancel(pm->p->a->loop, &pm->live);
	free(pm);
}
