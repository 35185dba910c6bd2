/* Hole punching: RFC 8445 priorities, the checks on the wire, and two punch
 * engines wired together through simulated NATs (RFC 4787 mapping and
 * filtering) on a fake clock, plus the schedule, the tables' limits and the
 * verdict a user reads. */
#include "nat/punch.h"
#include "tests/unit/unit.h"

#include <stdlib.h>

#define MS(x) ((uint64_t)(x) * 1000000ull)
#define T0 MS(1000) /* not 0: first_sent == 0 means "never" */
#define ATTEMPT 0x0123456789abcdefull

static struct na_endpoint ep(const char *s)
{
	struct na_endpoint e;

	if (!na_endpoint_parse(&e, s, false))
		abort();
	return e;
}

/* xorshift64: deterministic, and different on every call. */
static void fake_rand(void *ctx, uint8_t *out, size_t len)
{
	uint64_t *s = ctx;

	for (size_t i = 0; i < len; i++) {
		*s ^= *s << 13;
		*s ^= *s >> 7;
		*s ^= *s << 17;
		out[i] = (uint8_t)*s;
	}
}

static uint64_t rand_state = 0x9e3779b97f4a7c15ull;

static const uint8_t secret_i[PUNCH_SECRET_LEN] = "initiator secret";
static const uint8_t secret_r[PUNCH_SECRET_LEN] = "responder secret";

static struct punch_params params(bool initiator)
{
	struct punch_params prm = {
		.initiator = initiator,
		.attempt = ATTEMPT,
		.rand = fake_rand,
		.rand_ctx = &rand_state,
	};
	memcpy(prm.local_secret, initiator ? secret_i : secret_r, PUNCH_SECRET_LEN);
	memcpy(prm.remote_secret, initiator ? secret_r : secret_i, PUNCH_SECRET_LEN);
	return prm;
}

static struct punch_cand cand(const char *s, uint8_t type)
{
	return (struct punch_cand){ .ep = ep(s), .type = type,
				    .priority = punch_cand_priority(type, 65535) };
}

static int find_remote(const struct punch *p, const struct na_endpoint *e)
{
	for (unsigned i = 0; i < p->n_remote; i++)
		if (na_endpoint_equal(&p->remote[i].ep, e))
			return (int)i;
	return -1;
}

static size_t count_pairs(const struct punch *p, uint8_t state)
{
	size_t n = 0;

	for (unsigned i = 0; i < p->n_pairs; i++)
		n += p->pairs[i].state == state;
	return n;
}

static void test_priorities(void)
{
	CHECK_EQ_INT(punch_cand_priority(PUNCH_CAND_HOST, 65535), 2130706431u, "host priority");
	CHECK_EQ_INT(punch_cand_priority(PUNCH_CAND_SRFLX, 65535), 1694498815u, "srflx priority");
	CHECK_EQ_INT(punch_cand_priority(PUNCH_CAND_PRFLX, 65535), 1862270975u, "prflx priority");
	CHECK_EQ_INT(punch_cand_priority(PUNCH_CAND_STATIC, 0), 1509949695u, "static priority");
	CHECK_EQ_INT(punch_cand_priority(PUNCH_CAND_MAPPED, 1), 1761608191u, "mapped priority");
	CHECK(punch_pair_priority(2130706431u, 1694498815u) == 7277816997797167103ull,
	      "pair priority, G > D");
	CHECK(punch_pair_priority(1694498815u, 2130706431u) == 7277816997797167102ull,
	      "pair priority, G < D");
	CHECK(punch_pair_priority(2130706431u, 2130706431u) == 9151314442783293438ull,
	      "pair priority, G = D");
	CHECK(punch_pair_priority(5, 7) == 21474836494ull && punch_pair_priority(7, 5) == 21474836495ull,
	      "pair priority, small values");
	CHECK_EQ_STR(punch_pair_state_name(PUNCH_PAIR_NO_RESPONSE), "no response", "pair state name");
	CHECK_EQ_STR(punch_state_name(PUNCH_FAILED), "failed", "state name");
}

/* ---- a network of two hosts, each maybe behind a NAT ---- */

#define MAX_MAPS  64
#define MAX_PERMS 256
#define MAX_SENDS 512
#define MAX_QUEUE 256
#define LATENCY   MS(10) /* one way, host to host */

struct nat {
	enum nat_mapping map; /* NONE: the host's address is public */
	enum nat_filtering filter;
	struct na_ip pub;
	uint16_t next_port;
	struct { struct na_endpoint in, dst; uint16_t port; } maps[MAX_MAPS];
	unsigned n_maps;
	struct { uint16_t port; struct na_endpoint to; } perms[MAX_PERMS];
	unsigned n_perms;
};

struct host {
	struct punch p;
	struct na_endpoint addr, srflx;
	struct nat nat;
	uint64_t start_at, done_at;
	bool started;
	uint64_t sent_at[MAX_SENDS];
	unsigned n_sent, stalls;
};

struct packet {
	uint64_t at;
	struct na_endpoint src, dst;
	uint8_t data[PUNCH_MAX_MSG];
	size_t len;
};

struct net {
	struct host h[2];
	struct packet q[MAX_QUEUE];
	unsigned nq, dropped, filtered;
};

static bool mapping_matches(const struct nat *n, unsigned i, const struct na_endpoint *in,
			    const struct na_endpoint *dst)
{
	if (!na_endpoint_equal(&n->maps[i].in, in))
		return false;
	switch (n->map) {
	case NAT_MAPPING_ADM:  return na_ip_equal(&n->maps[i].dst.ip, &dst->ip);
	case NAT_MAPPING_APDM: return na_endpoint_equal(&n->maps[i].dst, dst);
	default:               return true;
	}
}

/* Rewrites the source of a packet leaving through the NAT and remembers
 * whom it went to, as a filter would. */
static struct na_endpoint nat_out(struct nat *n, const struct na_endpoint *src,
				  const struct na_endpoint *dst)
{
	unsigned i;

	if (n->map == NAT_MAPPING_NONE)
		return *src;
	for (i = 0; i < n->n_maps && !mapping_matches(n, i, src, dst); i++)
		;
	if (i == n->n_maps) {
		if (n->n_maps == MAX_MAPS)
			abort();
		n->maps[i].in = *src;
		n->maps[i].dst = *dst;
		n->maps[i].port = n->next_port++;
		n->n_maps++;
	}
	struct na_endpoint out = { .ip = n->pub, .port = n->maps[i].port };
	for (unsigned k = 0; k < n->n_perms; k++)
		if (n->perms[k].port == out.port && na_endpoint_equal(&n->perms[k].to, dst))
			return out;
	if (n->n_perms == MAX_PERMS)
		abort();
	n->perms[n->n_perms].port = out.port;
	n->perms[n->n_perms++].to = *dst;
	return out;
}

static bool nat_permits(struct net *net, const struct nat *n, uint16_t port,
			const struct na_endpoint *src)
{
	for (unsigned k = 0; k < n->n_perms; k++) {
		if (n->perms[k].port != port)
			continue;
		if (n->filter == NAT_FILTERING_EIF)
			return true;
		if (n->filter == NAT_FILTERING_ADF && na_ip_equal(&n->perms[k].to.ip, &src->ip))
			return true;
		if (na_endpoint_equal(&n->perms[k].to, src))
			return true;
	}
	net->filtered++;
	return false;
}

/* Where a packet to dst from src ends up: the host and its local address. */
static struct host *route(struct net *net, const struct na_endpoint *src,
			  const struct na_endpoint *dst, struct na_endpoint *local)
{
	for (int i = 0; i < 2; i++) {
		struct host *h = &net->h[i];
		if (h->nat.map == NAT_MAPPING_NONE) {
			if (!na_endpoint_equal(&h->addr, dst))
				continue;
			*local = h->addr;
			return h;
		}
		if (!na_ip_equal(&h->nat.pub, &dst->ip))
			continue;
		for (unsigned k = 0; k < h->nat.n_maps; k++) {
			if (h->nat.maps[k].port != dst->port)
				continue;
			if (!nat_permits(net, &h->nat, dst->port, src))
				return NULL;
			*local = h->nat.maps[k].in;
			return h;
		}
	}
	return NULL; /* a private address, or no mapping: lost */
}

static void transmit(struct net *net, struct host *h, const struct na_endpoint *from,
		     const struct na_endpoint *to, const uint8_t *data, size_t len, uint64_t now)
{
	if (net->nq == MAX_QUEUE || len > PUNCH_MAX_MSG)
		abort();
	struct packet *pk = &net->q[net->nq++];
	pk->at = now + LATENCY;
	pk->src = nat_out(&h->nat, from, to);
	pk->dst = *to;
	memcpy(pk->data, data, len);
	pk->len = len;
}

static void deliver(struct net *net, struct packet pk)
{
	struct na_endpoint local;
	struct host *h = route(net, &pk.src, &pk.dst, &local);
	struct stun_msg m;
	uint8_t reply[PUNCH_MAX_MSG];
	size_t rlen = 0;

	if (!h) {
		net->dropped++;
		return;
	}
	if (stun_decode(&m, pk.data, pk.len, 0))
		abort();
	enum punch_input_result r = punch_input(&h->p, &m, &pk.src, &local, pk.at, reply,
						sizeof(reply), &rlen);
	if (r == PUNCH_IN_REQUEST && rlen)
		transmit(net, h, &local, &pk.src, reply, rlen, pk.at);
}

static void host_setup(struct host *h, bool initiator, const char *addr,
		       enum nat_mapping map, enum nat_filtering filter, const char *pub,
		       uint16_t first_port)
{
	struct na_endpoint stun = ep("192.0.2.1:3478");

	memset(h, 0, sizeof(*h));
	struct punch_params prm = params(initiator);
	punch_init(&h->p, &prm);
	h->addr = ep(addr);
	h->nat.map = map;
	h->nat.filter = filter;
	h->nat.next_port = first_port;
	if (pub && !na_ip_parse(&h->nat.pub, pub))
		abort();
	/* The STUN binding that gave the server-reflexive candidate. */
	h->srflx = nat_out(&h->nat, &h->addr, &stun);
	struct punch_cand c = { .ep = h->addr, .type = PUNCH_CAND_HOST,
				.priority = punch_cand_priority(PUNCH_CAND_HOST, 65535) };
	punch_add_local(&h->p, &c);
	if (map != NAT_MAPPING_NONE) {
		c = (struct punch_cand){ .ep = h->srflx, .type = PUNCH_CAND_SRFLX,
					 .priority = punch_cand_priority(PUNCH_CAND_SRFLX, 65535) };
		punch_add_local(&h->p, &c);
	}
}

/* Each side's CONNECT carries its candidates to the other. */
static void exchange(struct net *net)
{
	for (int i = 0; i < 2; i++)
		for (unsigned k = 0; k < net->h[i].p.n_local; k++)
			punch_add_remote(&net->h[1 - i].p, &net->h[i].p.local[k]);
}

static uint64_t next_event(struct net *net)
{
	uint64_t t = UINT64_MAX;

	for (int i = 0; i < 2; i++) {
		struct host *h = &net->h[i];
		uint64_t d = h->started ? punch_deadline(&h->p) : h->start_at;
		t = d < t ? d : t;
	}
	for (unsigned k = 0; k < net->nq; k++)
		t = net->q[k].at < t ? net->q[k].at : t;
	return t;
}

static void host_tick(struct net *net, struct host *h, uint64_t now)
{
	uint8_t buf[PUNCH_MAX_MSG];
	struct na_endpoint from, to;
	size_t len;
	enum punch_state before = punch_state(&h->p);

	if (!h->started) {
		if (h->start_at > now)
			return;
		punch_start(&h->p, now);
		h->started = true;
	}
	if (punch_deadline(&h->p) > now)
		return;
	while ((len = punch_next(&h->p, now, buf, sizeof(buf), &from, &to))) {
		if (h->n_sent < MAX_SENDS)
			h->sent_at[h->n_sent++] = now;
		transmit(net, h, &from, &to, buf, len, now);
	}
	/* punch_next must always clear the deadline it was called for. */
	if (punch_deadline(&h->p) <= now)
		h->stalls++;
	if (before == PUNCH_RUNNING && punch_state(&h->p) != PUNCH_RUNNING)
		h->done_at = now;
}

/* Runs the discrete-event simulation until both sides are done and the
 * network is quiet, or until `until`. */
static void run(struct net *net, uint64_t until)
{
	for (unsigned steps = 0; steps < 100000; steps++) {
		uint64_t now = next_event(net);
		if (now == UINT64_MAX || now > until)
			return;
		for (unsigned k = 0; k < net->nq;) {
			if (net->q[k].at > now) {
				k++;
				continue;
			}
			struct packet pk = net->q[k];
			net->q[k] = net->q[--net->nq];
			deliver(net, pk);
		}
		for (int i = 0; i < 2; i++)
			host_tick(net, &net->h[i], now);
		for (int i = 0; i < 2; i++)
			if (net->h[i].p.state == PUNCH_SUCCEEDED && !net->h[i].done_at)
				net->h[i].done_at = now; /* selected on input */
	}
	abort();
}

static void build(struct net *net, enum nat_mapping ma, enum nat_filtering fa,
		  enum nat_mapping mb, enum nat_filtering fb, uint64_t late)
{
	memset(net, 0, sizeof(*net));
	if (ma == NAT_MAPPING_NONE)
		host_setup(&net->h[0], true, "198.51.100.10:5000", ma, fa, NULL, 0);
	else
		host_setup(&net->h[0], true, "10.0.0.2:5000", ma, fa, "198.51.100.1", 40000);
	if (mb == NAT_MAPPING_NONE)
		host_setup(&net->h[1], false, "203.0.113.10:6000", mb, fb, NULL, 0);
	else
		host_setup(&net->h[1], false, "10.1.0.2:6000", mb, fb, "203.0.113.1", 50000);
	exchange(net);
	net->h[0].start_at = T0;
	net->h[1].start_at = T0 + late; /* when SYNC lands */
}

/* No two checks closer than pace, no pair over max_tries, no stall. */
static void check_schedule(const struct host *h, const char *name)
{
	unsigned close = 0, over = 0;

	for (unsigned i = 1; i < h->n_sent; i++)
		close += h->sent_at[i] - h->sent_at[i - 1] < h->p.prm.pace;
	for (unsigned i = 0; i < h->p.n_pairs; i++)
		over += h->p.pairs[i].sent > h->p.prm.max_tries;
	CHECK(close == 0 && over == 0 && h->stalls == 0,
	      "%s: checks paced, within max_tries, deadlines honoured", name);
}

static const struct punch_cand *sel_remote(const struct host *h)
{
	const struct punch_pair *s = punch_selected(&h->p);

	return s ? &h->p.remote[s->remote] : NULL;
}

static void test_open_hosts(void)
{
	static struct net net;

	build(&net, NAT_MAPPING_NONE, NAT_FILTERING_EIF, NAT_MAPPING_NONE, NAT_FILTERING_EIF, MS(3));
	run(&net, T0 + MS(10000));
	struct host *a = &net.h[0], *b = &net.h[1];
	CHECK(punch_state(&a->p) == PUNCH_SUCCEEDED && punch_state(&b->p) == PUNCH_SUCCEEDED,
	      "open hosts: both succeed");
	const struct punch_pair *sa = punch_selected(&a->p), *sb = punch_selected(&b->p);
	CHECK(sa && sb && na_endpoint_equal(&sel_remote(a)->ep, &b->addr) &&
	      na_endpoint_equal(&sel_remote(b)->ep, &a->addr), "open hosts: each selects the other's host");
	CHECK(sa && sb && na_endpoint_equal(&sa->mapped, &a->addr) &&
	      na_endpoint_equal(&sb->mapped, &b->addr), "open hosts: mapped is our own address");
	CHECK(sa && sa->rtt == 2 * LATENCY && sa->they_reached_us && sa->first_sent == T0,
	      "open hosts: rtt, first_sent and they_reached_us recorded");
	CHECK(a->done_at <= T0 + MS(30) && b->done_at <= T0 + MS(30),
	      "open hosts: selected within one round trip and a pace");
	CHECK(a->p.answers_sent >= 1 && b->p.answers_sent >= 1 && a->p.checks_sent >= 1,
	      "open hosts: counters");
	check_schedule(a, "open hosts initiator");
	check_schedule(b, "open hosts responder");
	CHECK(punch_deadline(&a->p) == UINT64_MAX, "open hosts: no deadline once selected");
}

/* IPv6 hosts punch alike; a candidate of the other family pairs with none
 * of ours, so no check is ever sent across families. */
static void test_ipv6(void)
{
	static struct net net;
	struct punch_cand v4 = cand("203.0.113.10:6000", PUNCH_CAND_SRFLX);

	memset(&net, 0, sizeof(net));
	host_setup(&net.h[0], true, "[2001:db8::10]:5000", NAT_MAPPING_NONE, NAT_FILTERING_EIF,
		   NULL, 0);
	host_setup(&net.h[1], false, "[2001:db8:1::10]:6000", NAT_MAPPING_NONE,
		   NAT_FILTERING_EIF, NULL, 0);
	exchange(&net);
	CHECK(punch_add_remote(&net.h[0].p, &v4), "IPv6: an IPv4 remote candidate is taken");
	CHECK_EQ_INT(net.h[0].p.n_pairs, 1, "IPv6: ... and pairs with no IPv6 host candidate");
	net.h[0].start_at = T0;
	net.h[1].start_at = T0 + MS(3);
	run(&net, T0 + MS(10000));
	struct host *a = &net.h[0], *b = &net.h[1];
	CHECK(punch_state(&a->p) == PUNCH_SUCCEEDED && punch_state(&b->p) == PUNCH_SUCCEEDED,
	      "IPv6: both succeed");
	CHECK(sel_remote(a) && sel_remote(b) && na_endpoint_equal(&sel_remote(a)->ep, &b->addr) &&
	      na_endpoint_equal(&sel_remote(b)->ep, &a->addr), "IPv6: each selects the other's host");
	check_schedule(a, "IPv6 initiator");
}

static void test_port_restricted(void)
{
	static struct net net;

	build(&net, NAT_MAPPING_EIM, NAT_FILTERING_APDF, NAT_MAPPING_EIM, NAT_FILTERING_APDF, MS(3));
	run(&net, T0 + MS(10000));
	struct host *a = &net.h[0], *b = &net.h[1];
	CHECK(punch_state(&a->p) == PUNCH_SUCCEEDED && punch_state(&b->p) == PUNCH_SUCCEEDED,
	      "port-restricted both sides: both succeed");
	CHECK(sel_remote(a) && na_endpoint_equal(&sel_remote(a)->ep, &b->srflx) &&
	      sel_remote(b) && na_endpoint_equal(&sel_remote(b)->ep, &a->srflx),
	      "port-restricted: each selects the other's server-reflexive candidate");
	CHECK(punch_selected(&a->p) && na_endpoint_equal(&punch_selected(&a->p)->mapped, &a->srflx),
	      "port-restricted: mapped = our server-reflexive address (EIM)");
	CHECK_EQ_INT(count_pairs(&a->p, PUNCH_PAIR_WAITING) + count_pairs(&a->p, PUNCH_PAIR_IN_PROGRESS),
		     0, "port-restricted: nothing left pending after selection");
	CHECK(count_pairs(&a->p, PUNCH_PAIR_SUPERSEDED) >= 1,
	      "port-restricted: the unreachable host pair is superseded");
	CHECK(a->done_at <= T0 + MS(200) && b->done_at <= T0 + MS(200),
	      "port-restricted: selected within 200 ms");
	check_schedule(a, "port-restricted initiator");
	check_schedule(b, "port-restricted responder");

	/* The responder starts 15 ms late: the initiator's first check to it
	 * hits a closed filter, and its check coming the other way must
	 * trigger a check back before the next round. */
	build(&net, NAT_MAPPING_EIM, NAT_FILTERING_APDF, NAT_MAPPING_EIM, NAT_FILTERING_APDF, MS(15));
	run(&net, T0 + MS(10000));
	CHECK(net.filtered > 0, "port-restricted, late start: the first check was filtered");
	CHECK(punch_state(&a->p) == PUNCH_SUCCEEDED && punch_state(&b->p) == PUNCH_SUCCEEDED,
	      "port-restricted, late start: both succeed");
	CHECK(punch_selected(&a->p) && punch_selected(&a->p)->sent == 2 &&
	      punch_selected(&a->p)->rtt == 2 * LATENCY && a->done_at < T0 + MS(100 + 50),
	      "port-restricted, late start: the triggered check succeeded before round 1");
	check_schedule(a, "port-restricted, late start, initiator");
	check_schedule(b, "port-restricted, late start, responder");
}

/* punch_predict from a discovery report. */
static void test_predict_rules(void)
{
	struct nat_report r = { .mapping = NAT_MAPPING_APDM, .alloc = NAT_ALLOC_SEQUENTIAL,
				.alloc_delta = 2 };
	struct na_endpoint srflx = ep("198.51.100.1:40000");
	struct punch_cand out[8];
	unsigned n;

	n = punch_predict(&r, &srflx, 5000, out, 8);
	CHECK(n == PUNCH_PREDICT && out[0].ep.port == 40002 && out[3].ep.port == 40008 &&
	      na_ip_equal(&out[0].ep.ip, &srflx.ip) && out[0].type == PUNCH_CAND_SRFLX,
	      "predict: sequential step 2 gives the next four ports after ours");
	CHECK(out[0].priority < punch_cand_priority(PUNCH_CAND_SRFLX, 65535) &&
	      out[0].priority > out[3].priority, "predict: ranked below the real one, nearest first");
	CHECK_EQ_INT(punch_predict(&r, &srflx, 5000, out, 2), 2, "predict: at most max");
	srflx.port = 65533;
	CHECK_EQ_INT(punch_predict(&r, &srflx, 5000, out, 8), 1, "predict: stops at port 65535");
	srflx.port = 40000;
	r.alloc = NAT_ALLOC_PRESERVING;
	n = punch_predict(&r, &srflx, 5000, out, 8);
	CHECK(n == 1 && out[0].ep.port == 5000, "predict: port-preserving gives our local port");
	r.alloc = NAT_ALLOC_RANDOM;
	CHECK_EQ_INT(punch_predict(&r, &srflx, 5000, out, 8), 0, "predict: nothing for random ports");
	r.alloc = NAT_ALLOC_SEQUENTIAL;
	r.mapping = NAT_MAPPING_EIM;
	CHECK_EQ_INT(punch_predict(&r, &srflx, 5000, out, 8), 0,
		     "predict: nothing for an endpoint-independent mapping (its srflx is the answer)");
}

/* A symmetric NAT that allocates ports one after another (the simulated
 * NAT here does) against a port-restricted one: hopeless without
 * prediction (see the next test), direct with it. */
static void test_sequential_symmetric_predicted(void)
{
	static struct net net;
	struct nat_report r = { .mapping = NAT_MAPPING_APDM, .alloc = NAT_ALLOC_SEQUENTIAL,
				.alloc_delta = 1 };
	struct punch_cand pred[PUNCH_PREDICT];

	build(&net, NAT_MAPPING_APDM, NAT_FILTERING_APDF, NAT_MAPPING_EIM, NAT_FILTERING_APDF, MS(3));
	unsigned n = punch_predict(&r, &net.h[0].srflx, net.h[0].addr.port, pred, PUNCH_PREDICT);
	for (unsigned i = 0; i < n; i++)
		punch_add_remote(&net.h[1].p, &pred[i]);
	run(&net, T0 + MS(10000));
	struct host *a = &net.h[0], *b = &net.h[1];
	CHECK(punch_state(&a->p) == PUNCH_SUCCEEDED && punch_state(&b->p) == PUNCH_SUCCEEDED,
	      "sequential symmetric vs port-restricted, with prediction: both succeed");
	const struct punch_cand *rb = sel_remote(b);
	CHECK(rb && rb->ep.port > a->srflx.port && rb->ep.port <= a->srflx.port + PUNCH_PREDICT,
	      "... on a predicted port of the symmetric side (%u; reflexive %u)",
	      rb ? rb->ep.port : 0, a->srflx.port);
	check_schedule(a, "predicted initiator");
	check_schedule(b, "predicted responder");
}

static void test_symmetric_vs_full_cone(void)
{
	static struct net net;

	build(&net, NAT_MAPPING_APDM, NAT_FILTERING_APDF, NAT_MAPPING_EIM, NAT_FILTERING_EIF, MS(3));
	run(&net, T0 + MS(10000));
	struct host *a = &net.h[0], *b = &net.h[1];
	CHECK(punch_state(&a->p) == PUNCH_SUCCEEDED && punch_state(&b->p) == PUNCH_SUCCEEDED,
	      "symmetric vs full cone: both succeed");
	const struct punch_cand *rb = sel_remote(b);
	CHECK(rb && rb->type == PUNCH_CAND_PRFLX && !na_endpoint_equal(&rb->ep, &a->srflx) &&
	      na_ip_equal(&rb->ep.ip, &a->srflx.ip),
	      "symmetric vs full cone: the responder uses a peer-reflexive candidate");
	CHECK(rb && rb->priority == punch_cand_priority(PUNCH_CAND_PRFLX, 65535),
	      "symmetric vs full cone: its priority is the check's PRIORITY");
	const struct punch_pair *sa = punch_selected(&a->p);
	CHECK(sa && na_endpoint_equal(&a->p.remote[sa->remote].ep, &b->srflx) &&
	      rb && na_endpoint_equal(&sa->mapped, &rb->ep),
	      "symmetric vs full cone: the initiator learns its per-peer port from XOR-MAPPED-ADDRESS");
	check_schedule(a, "symmetric vs full cone initiator");
	check_schedule(b, "symmetric vs full cone responder");
}

static void test_symmetric_vs_port_restricted(void)
{
	static struct net net;

	build(&net, NAT_MAPPING_APDM, NAT_FILTERING_APDF, NAT_MAPPING_EIM, NAT_FILTERING_APDF, MS(3));
	run(&net, T0 + MS(10000));
	struct host *a = &net.h[0], *b = &net.h[1];
	CHECK(punch_state(&a->p) == PUNCH_FAILED && punch_state(&b->p) == PUNCH_FAILED,
	      "symmetric vs port-restricted: both fail");
	CHECK(a->done_at == T0 + MS(5000) && b->done_at == T0 + MS(3) + MS(5000),
	      "symmetric vs port-restricted: at start + timeout");
	CHECK(count_pairs(&a->p, PUNCH_PAIR_NO_RESPONSE) == a->p.n_pairs &&
	      count_pairs(&b->p, PUNCH_PAIR_NO_RESPONSE) == b->p.n_pairs,
	      "symmetric vs port-restricted: every pair is NO_RESPONSE");
	CHECK(!punch_selected(&a->p) && punch_deadline(&a->p) == UINT64_MAX,
	      "symmetric vs port-restricted: nothing selected, no deadline");
	CHECK(a->p.answers_sent + b->p.answers_sent == 0 && net.filtered > 0,
	      "symmetric vs port-restricted: every check was filtered or lost");
	check_schedule(a, "symmetric vs port-restricted initiator");
	check_schedule(b, "symmetric vs port-restricted responder");
}

/* ---- hand-made messages ---- */

static size_t next_check(struct punch *p, uint64_t now, uint8_t *buf, struct stun_msg *m,
			 struct na_endpoint *from, struct na_endpoint *to)
{
	size_t n = punch_next(p, now, buf, PUNCH_MAX_MSG, from, to);

	if (n && stun_decode(m, buf, n, 0))
		abort();
	return n;
}

static size_t response(const struct stun_msg *req, uint16_t type, const struct na_endpoint *mapped,
		       const uint8_t *key, uint8_t *out)
{
	struct stun_builder b;

	stun_build_init(&b, out, PUNCH_MAX_MSG, type, req->txid);
	if (type == STUN_BINDING_ERROR)
		stun_build_error(&b, 400, "Bad Request");
	else
		stun_build_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, mapped);
	stun_build_integrity(&b, key, PUNCH_SECRET_LEN);
	stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static void setup_pair(struct punch *p, bool initiator, const char *local, const char *remote)
{
	struct punch_params prm = params(initiator);
	struct punch_cand l = cand(local, PUNCH_CAND_HOST), r = cand(remote, PUNCH_CAND_HOST);

	punch_init(p, &prm);
	punch_add_local(p, &l);
	punch_add_remote(p, &r);
}

static void test_wire_format(void)
{
	static struct punch a;
	uint8_t buf[PUNCH_MAX_MSG];
	struct stun_msg m;
	struct na_endpoint from, to;

	setup_pair(&a, true, "198.51.100.10:5000", "203.0.113.10:6000");
	CHECK_EQ_STR(a.local_ufrag, "0123456789abcdefi", "initiator's ufrag");
	CHECK_EQ_STR(a.remote_ufrag, "0123456789abcdefr", "responder's ufrag");
	CHECK(next_check(&a, T0, buf, &m, &from, &to) == 0, "idle: nothing sent");
	CHECK(punch_deadline(&a) == UINT64_MAX, "idle: no deadline");
	punch_start(&a, T0);
	CHECK(punch_deadline(&a) == T0, "started: due at once");
	size_t n = next_check(&a, T0, buf, &m, &from, &to);
	CHECK(n > 0 && n <= PUNCH_MAX_MSG && m.type == STUN_BINDING_REQUEST, "a Binding request");
	CHECK(na_endpoint_equal(&from, &a.local[0].ep) && na_endpoint_equal(&to, &a.remote[0].ep),
	      "from our host candidate to theirs");
	CHECK(m.username_len == 35 && !memcmp(m.username, "0123456789abcdefr:0123456789abcdefi", 35),
	      "USERNAME is theirs:ours");
	CHECK(stun_has(&m, STUN_ATTR_PRIORITY) &&
	      m.priority == punch_cand_priority(PUNCH_CAND_PRFLX, 65535), "PRIORITY as peer-reflexive");
	CHECK(stun_has(&m, STUN_ATTR_ICE_CONTROLLING) && !stun_has(&m, STUN_ATTR_ICE_CONTROLLED) &&
	      m.ice_tiebreaker == ATTEMPT, "ICE-CONTROLLING with the attempt");
	CHECK(stun_check_integrity(&m, secret_r, PUNCH_SECRET_LEN) == STUN_OK,
	      "MESSAGE-INTEGRITY keyed by the receiver's secret");
	CHECK(stun_check_fingerprint(&m) == STUN_OK, "FINGERPRINT");
	CHECK(punch_deadline(&a) == T0 + MS(100), "next check in round 1, at start + round_gap");
	CHECK(a.pairs[0].state == PUNCH_PAIR_IN_PROGRESS && a.pairs[0].sent == 1, "pair in progress");
}

static void test_input(void)
{
	static struct punch a, b, bad;
	uint8_t buf[PUNCH_MAX_MSG], reply[PUNCH_MAX_MSG], resp[PUNCH_MAX_MSG];
	struct stun_msg m, r;
	struct na_endpoint from, to, a_ep = ep("198.51.100.10:5000"), b_ep = ep("203.0.113.10:6000");
	size_t rlen = 99;

	setup_pair(&a, true, "198.51.100.10:5000", "203.0.113.10:6000");
	setup_pair(&b, false, "203.0.113.10:6000", "198.51.100.10:5000");

	/* A check keyed with the wrong secret. */
	setup_pair(&bad, false, "203.0.113.10:6000", "198.51.100.10:5000");
	memset(bad.prm.remote_secret, 'x', PUNCH_SECRET_LEN);
	punch_start(&bad, T0);
	next_check(&bad, T0, buf, &m, &from, &to);
	CHECK_EQ_INT(punch_input(&a, &m, &b_ep, &a_ep, T0, reply, sizeof(reply), &rlen),
		     PUNCH_IN_BAD, "wrong secret: BAD");
	CHECK(rlen == 0 && a.answers_sent == 0 && !a.pairs[0].they_reached_us,
	      "wrong secret: no reply, nothing learnt");

	/* A check for another attempt. */
	struct punch_params other = params(false);
	other.attempt = ATTEMPT + 1;
	punch_init(&bad, &other);
	bad.prm.rand = fake_rand;
	struct punch_cand c = cand("203.0.113.10:6000", PUNCH_CAND_HOST);
	punch_add_local(&bad, &c);
	c = cand("198.51.100.10:5000", PUNCH_CAND_HOST);
	punch_add_remote(&bad, &c);
	punch_start(&bad, T0);
	next_check(&bad, T0, buf, &m, &from, &to);
	CHECK_EQ_INT(punch_input(&a, &m, &b_ep, &a_ep, T0, reply, sizeof(reply), &rlen),
		     PUNCH_IN_NOT_OURS, "another attempt's USERNAME: NOT_OURS");

	/* A good check with a broken FINGERPRINT. */
	punch_start(&b, T0);
	size_t n = next_check(&b, T0, buf, &m, &from, &to);
	buf[n - 1] ^= 1;
	stun_decode(&m, buf, n, 0);
	CHECK_EQ_INT(punch_input(&a, &m, &b_ep, &a_ep, T0, reply, sizeof(reply), &rlen),
		     PUNCH_IN_BAD, "bad FINGERPRINT: BAD");
	buf[n - 1] ^= 1;
	stun_decode(&m, buf, n, 0);

	/* The good one, while a is still idle: answered, and remembered. */
	CHECK_EQ_INT(punch_input(&a, &m, &b_ep, &a_ep, T0, reply, sizeof(reply), &rlen),
		     PUNCH_IN_REQUEST, "valid check: REQUEST");
	CHECK(rlen > 0 && rlen <= PUNCH_MAX_MSG && a.answers_sent == 1, "with a reply");
	CHECK(stun_decode(&r, reply, rlen, 0) == STUN_OK && r.type == STUN_BINDING_SUCCESS &&
	      !memcmp(r.txid, m.txid, STUN_TXID_LEN) && na_endpoint_equal(&r.xor_mapped, &b_ep) &&
	      stun_check_integrity(&r, secret_i, PUNCH_SECRET_LEN) == STUN_OK &&
	      stun_check_fingerprint(&r) == STUN_OK,
	      "reply: success, same txid, XOR-MAPPED-ADDRESS = source, our integrity, FINGERPRINT");
	CHECK(a.pairs[0].they_reached_us && a.pairs[0].triggered && a.n_remote == 1,
	      "idle: triggered check remembered, no new candidate");
	CHECK(punch_deadline(&a) == UINT64_MAX && punch_state(&a) == PUNCH_IDLE, "still idle");

	/* b takes the reply in. */
	CHECK_EQ_INT(punch_input(&b, &r, &a_ep, &b_ep, T0 + MS(7), NULL, 0, NULL),
		     PUNCH_IN_RESPONSE, "reply taken in: RESPONSE");
	CHECK(b.pairs[0].state == PUNCH_PAIR_SUCCEEDED && b.pairs[0].rtt == MS(7) &&
	      punch_state(&b) == PUNCH_SUCCEEDED, "the only pair succeeds and is selected at once");
	CHECK_EQ_INT(punch_input(&b, &r, &a_ep, &b_ep, T0 + MS(8), NULL, 0, NULL),
		     PUNCH_IN_NOT_OURS, "the same answer again: transaction gone, NOT_OURS");
	/* Finished, b still answers. */
	punch_start(&a, T0 + MS(10));
	n = next_check(&a, T0 + MS(10), buf, &m, &from, &to);
	CHECK(n && a.pairs[0].sent == 1, "after start, the triggered check goes first");
	CHECK_EQ_INT(punch_input(&b, &m, &a_ep, &b_ep, T0 + MS(15), reply, sizeof(reply), &rlen),
		     PUNCH_IN_REQUEST, "finished: still answers");
	uint8_t scratch[PUNCH_MAX_MSG];
	struct na_endpoint f2, t2;
	CHECK(rlen > 0 && punch_next(&b, T0 + MS(100), scratch, sizeof(scratch), &f2, &t2) == 0,
	      "finished: no more checks");

	/* Responses a does not expect. */
	stun_decode(&m, buf, n, 0);
	uint8_t txid[STUN_TXID_LEN];
	memcpy(txid, m.txid, STUN_TXID_LEN);
	m.txid[15] ^= 0xff;
	size_t rl = response(&m, STUN_BINDING_SUCCESS, &a_ep, secret_r, resp);
	stun_decode(&r, resp, rl, 0);
	CHECK_EQ_INT(punch_input(&a, &r, &b_ep, &a_ep, T0 + MS(20), NULL, 0, NULL),
		     PUNCH_IN_NOT_OURS, "unknown transaction: NOT_OURS");
	memcpy(m.txid, txid, STUN_TXID_LEN);
	rl = response(&m, STUN_BINDING_ERROR, NULL, secret_r, resp);
	stun_decode(&r, resp, rl, 0);
	CHECK_EQ_INT(punch_input(&a, &r, &b_ep, &a_ep, T0 + MS(20), NULL, 0, NULL),
		     PUNCH_IN_BAD, "error response to our check: BAD");
	CHECK(a.pairs[0].state == PUNCH_PAIR_IN_PROGRESS, "error response leaves the pair as is");
	rl = response(&m, STUN_BINDING_SUCCESS, &a_ep, secret_i, resp);
	stun_decode(&r, resp, rl, 0);
	CHECK_EQ_INT(punch_input(&a, &r, &b_ep, &a_ep, T0 + MS(20), NULL, 0, NULL),
		     PUNCH_IN_BAD, "response keyed with the wrong secret: BAD");
	CHECK(a.pairs[0].state == PUNCH_PAIR_IN_PROGRESS, "and the pair is untouched");
	struct stun_msg ind = m;
	ind.type = STUN_BINDING_INDICATION;
	CHECK_EQ_INT(punch_input(&a, &ind, &b_ep, &a_ep, T0 + MS(20), NULL, 0, NULL),
		     PUNCH_IN_NOT_OURS, "an indication: NOT_OURS");

	/* The answer comes back from another port. */
	struct na_endpoint other_port = b_ep;
	other_port.port = 6001;
	rl = response(&m, STUN_BINDING_SUCCESS, &a_ep, secret_r, resp);
	stun_decode(&r, resp, rl, 0);
	CHECK_EQ_INT(punch_input(&a, &r, &other_port, &a_ep, T0 + MS(30), NULL, 0, NULL),
		     PUNCH_IN_RESPONSE, "answer from another port: RESPONSE");
	CHECK(a.pairs[0].state == PUNCH_PAIR_WRONG_PORT &&
	      na_endpoint_equal(&a.pairs[0].answered_from, &other_port), "pair WRONG_PORT, answered_from");
	CHECK(a.n_remote == 2 && a.remote[1].type == PUNCH_CAND_PRFLX &&
	      na_endpoint_equal(&a.remote[1].ep, &other_port) && a.n_pairs == 2 &&
	      a.pairs[1].triggered, "the answering address becomes a peer-reflexive pair, triggered");
	n = next_check(&a, T0 + MS(30), buf, &m, &from, &to);
	CHECK(n && na_endpoint_equal(&to, &other_port), "its triggered check goes out next");
	rl = response(&m, STUN_BINDING_SUCCESS, &a_ep, secret_r, resp);
	stun_decode(&r, resp, rl, 0);
	punch_input(&a, &r, &other_port, &a_ep, T0 + MS(45), NULL, 0, NULL);
	CHECK(punch_state(&a) == PUNCH_SUCCEEDED && punch_selected(&a) == &a.pairs[1] &&
	      a.pairs[1].rtt == MS(15), "and succeeds");
}

static void test_pacing(void)
{
	static struct punch a;
	struct punch_params prm = params(true);
	uint8_t buf[PUNCH_MAX_MSG];
	struct na_endpoint from, to;
	uint64_t times[64], now;
	unsigned order[64], n = 0, early = 0, close = 0, by_prio = 0;

	prm.max_tries = 4;
	punch_init(&a, &prm);
	struct punch_cand c = cand("198.51.100.10:5000", PUNCH_CAND_HOST);
	punch_add_local(&a, &c);
	/* Added worst first: the schedule must sort them. */
	c = cand("203.0.113.12:6000", PUNCH_CAND_STATIC);
	punch_add_remote(&a, &c);
	c = cand("203.0.113.11:6000", PUNCH_CAND_SRFLX);
	punch_add_remote(&a, &c);
	c = cand("203.0.113.10:6000", PUNCH_CAND_HOST);
	punch_add_remote(&a, &c);
	punch_start(&a, T0);
	bool all_gone_at_1s = false;
	while ((now = punch_deadline(&a)) != UINT64_MAX && n < 64) {
		if (!all_gone_at_1s && now > T0 + MS(1000))
			all_gone_at_1s = count_pairs(&a, PUNCH_PAIR_NO_RESPONSE) == 3 &&
					 punch_state(&a) == PUNCH_RUNNING;
		size_t len;
		while ((len = punch_next(&a, now, buf, sizeof(buf), &from, &to))) {
			times[n] = now;
			order[n] = (unsigned)find_remote(&a, &to);
			n++;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned k = i / 3; /* three pairs, one check each per round */
		early += times[i] < T0 + MS(100) * ((1u << k) - 1);
		close += i && times[i] - times[i - 1] < MS(20);
		by_prio += order[i] != 2 - i % 3;
	}
	CHECK_EQ_INT(n, 12, "three pairs x max_tries 4 = 12 checks");
	CHECK_EQ_INT(early, 0, "round k not before start + round_gap * (2^k - 1)");
	CHECK_EQ_INT(close, 0, "no two checks closer than pace");
	CHECK_EQ_INT(by_prio, 0, "each round goes by descending priority");
	CHECK(times[0] == T0 && times[1] == T0 + MS(20) && times[3] == T0 + MS(100) &&
	      times[9] == T0 + MS(700), "exact times: 0, 20, ..., 100, ..., 700 ms");
	CHECK(all_gone_at_1s, "pairs give up two round gaps after their last check");
	CHECK(punch_state(&a) == PUNCH_FAILED && a.pairs[0].sent == 4 && a.checks_sent == 12,
	      "then the attempt fails at the timeout");
}

static void test_limits(void)
{
	static struct punch a;
	struct punch_params prm = params(true);
	char s[64];
	bool ok = true;

	prm.max_tries = 3;
	prm.pace = 1;
	punch_init(&a, &prm);
	for (int i = 0; i < PUNCH_MAX_CANDS; i++) {
		snprintf(s, sizeof(s), "203.0.113.%d:6000", i + 1);
		struct punch_cand c = cand(s, PUNCH_CAND_SRFLX);
		ok &= punch_add_remote(&a, &c);
	}
	struct punch_cand c = cand("203.0.113.99:6000", PUNCH_CAND_SRFLX);
	CHECK(ok && !punch_add_remote(&a, &c) && a.n_remote == PUNCH_MAX_CANDS,
	      "remote candidates: 16 fit, the 17th is refused");
	c = cand("203.0.113.1:6000", PUNCH_CAND_SRFLX);
	CHECK(punch_add_remote(&a, &c) && a.n_remote == PUNCH_MAX_CANDS, "a duplicate is ignored");
	c = cand("[2001:db8::1]:6000", PUNCH_CAND_HOST);
	CHECK(punch_add_local(&a, &c) && a.n_pairs == 0, "no pairs across families");
	ok = true;
	for (int i = 0; i < 4; i++) {
		snprintf(s, sizeof(s), "198.51.100.%d:5000", i + 1);
		c = cand(s, PUNCH_CAND_HOST);
		ok &= punch_add_local(&a, &c);
	}
	CHECK(ok && a.n_pairs == PUNCH_MAX_PAIRS, "4 hosts x 16 remotes = 64 pairs");
	c = cand("198.51.100.5:5000", PUNCH_CAND_HOST);
	CHECK(!punch_add_local(&a, &c) && a.n_pairs == PUNCH_MAX_PAIRS,
	      "a fifth host's pairs are refused, the table intact");
	c = cand("198.51.100.9:5000", PUNCH_CAND_SRFLX);
	CHECK(punch_add_local(&a, &c) && a.n_pairs == PUNCH_MAX_PAIRS, "server-reflexive: never paired");
	struct punch_cand zero = { 0 };
	CHECK(!punch_add_local(&a, &zero) && !punch_add_remote(&a, &zero), "no address: refused");

	/* A valid check from an unknown address with the table full. */
	static struct punch b;
	uint8_t buf[PUNCH_MAX_MSG], reply[PUNCH_MAX_MSG];
	struct na_endpoint from, to, stranger = ep("203.0.113.200:7000");
	struct stun_msg m;
	size_t rlen = 0;
	setup_pair(&b, false, "203.0.113.200:7000", "198.51.100.1:5000");
	punch_start(&b, T0);
	next_check(&b, T0, buf, &m, &from, &to);
	CHECK(punch_input(&a, &m, &stranger, &to, T0, reply, sizeof(reply), &rlen) == PUNCH_IN_REQUEST &&
	      rlen > 0 && a.n_remote == PUNCH_MAX_CANDS && a.n_pairs == PUNCH_MAX_PAIRS,
	      "full tables: still answered, nothing added");

	/* 64 pairs x 3 tries outrun the transaction ring: the oldest ids are
	 * forgotten, the newest still match. */
	struct stun_msg first, last;
	uint8_t first_buf[PUNCH_MAX_MSG], last_buf[PUNCH_MAX_MSG], resp[PUNCH_MAX_MSG];
	size_t fl = 0, ll = 0, len, sent = 0;
	uint64_t now;
	punch_start(&a, T0);
	while ((now = punch_deadline(&a)) < T0 + MS(1000)) {
		while ((len = punch_next(&a, now, buf, sizeof(buf), &from, &to))) {
			if (!sent++)
				memcpy(first_buf, buf, fl = len);
			memcpy(last_buf, buf, ll = len);
		}
	}
	CHECK_EQ_INT(sent, PUNCH_MAX_PAIRS * 3, "every pair checked max_tries times");
	stun_decode(&first, first_buf, fl, 0);
	stun_decode(&last, last_buf, ll, 0);
	size_t rl = response(&first, STUN_BINDING_SUCCESS, &from, secret_r, resp);
	stun_decode(&m, resp, rl, 0);
	CHECK_EQ_INT(punch_input(&a, &m, &to, &from, now, NULL, 0, NULL), PUNCH_IN_NOT_OURS,
		     "ring: the oldest transaction was reused");
	rl = response(&last, STUN_BINDING_SUCCESS, &from, secret_r, resp);
	stun_decode(&m, resp, rl, 0);
	CHECK_EQ_INT(punch_input(&a, &m, &to, &from, now, NULL, 0, NULL), PUNCH_IN_RESPONSE,
		     "ring: the newest still matches");
}

static void test_edges(void)
{
	static struct punch a, b;
	struct punch_params prm = params(true);
	uint8_t buf[PUNCH_MAX_MSG], buf2[PUNCH_MAX_MSG], reply[PUNCH_MAX_MSG];
	struct na_endpoint from, to, b_ep = ep("203.0.113.10:6000");
	struct na_endpoint wildcard = ep("0.0.0.0:5000");
	struct stun_msg m, m2;
	size_t rlen;

	/* No random source: ids still differ. */
	prm.rand = NULL;
	prm.max_tries = 1000;
	punch_init(&a, &prm);
	CHECK_EQ_INT(a.prm.max_tries, 255, "max_tries clamped to what a pair counts");
	struct punch_cand c = cand("198.51.100.10:5000", PUNCH_CAND_HOST);
	punch_add_local(&a, &c);
	c = cand("198.51.100.11:5000", PUNCH_CAND_HOST);
	punch_add_local(&a, &c);
	c = cand("203.0.113.10:6000", PUNCH_CAND_HOST);
	punch_add_remote(&a, &c);
	punch_start(&a, T0);
	CHECK(punch_next(&a, T0, buf, PUNCH_MAX_MSG - 100, &from, &to) == 0,
	      "a buffer too small: nothing sent");
	size_t n1 = next_check(&a, T0, buf, &m, &from, &to);
	size_t n2 = next_check(&a, T0 + MS(20), buf2, &m2, &from, &to);
	CHECK(n1 && n2 && memcmp(m.txid, m2.txid, STUN_TXID_LEN) != 0, "no rand: ids differ");

	/* A check that arrived on an address no host candidate has (a
	 * wildcard-bound socket) belongs to the first host of its family. */
	setup_pair(&b, false, "203.0.113.10:6000", "198.51.100.11:5000");
	punch_start(&b, T0);
	next_check(&b, T0, buf, &m, &from, &to);
	CHECK_EQ_INT(punch_input(&a, &m, &b_ep, &wildcard, T0, reply, sizeof(reply), &rlen),
		     PUNCH_IN_REQUEST, "check on a wildcard address: REQUEST");
	CHECK(a.pairs[0].they_reached_us && !a.pairs[1].they_reached_us,
	      "and it counts for the first host candidate");
	CHECK_EQ_INT(punch_input(&a, &m, &b_ep, NULL, T0, NULL, 0, &rlen), PUNCH_IN_REQUEST,
		     "no local address, no reply buffer: still taken in");
	CHECK(rlen == 0 && a.answers_sent == 1, "but no reply counted");

	struct stun_msg other = m;
	other.type = stun_type(0x003, STUN_REQUEST); /* Allocate */
	CHECK_EQ_INT(punch_input(&a, &other, &b_ep, NULL, T0, reply, sizeof(reply), &rlen),
		     PUNCH_IN_NOT_OURS, "another STUN method: NOT_OURS");

	/* After the outcome, answers are recognised but change nothing. */
	while (punch_deadline(&a) != UINT64_MAX)
		punch_next(&a, punch_deadline(&a), buf2, sizeof(buf2), &from, &to);
	CHECK(punch_state(&a) == PUNCH_FAILED, "left alone, the attempt fails");
	uint8_t resp[PUNCH_MAX_MSG];
	size_t rl = response(&m2, STUN_BINDING_SUCCESS, &from, secret_r, resp);
	stun_decode(&m, resp, rl, 0);
	CHECK_EQ_INT(punch_input(&a, &m, &b_ep, &from, T0 + MS(6000), NULL, 0, NULL),
		     PUNCH_IN_RESPONSE, "failed: a late answer is still ours");
	CHECK(punch_state(&a) == PUNCH_FAILED && a.pairs[0].state == PUNCH_PAIR_NO_RESPONSE,
	      "but the outcome stands");
	punch_start(&a, T0 + MS(7000));
	CHECK(punch_state(&a) == PUNCH_FAILED && a.started == T0, "start after the end: ignored");
}

/* ---- verdicts ---- */

struct lab_nat {
	const char *name;
	enum nat_mapping map;
	enum nat_filtering filter;
};

static const struct lab_nat lab[] = {
	{ "public", NAT_MAPPING_NONE, NAT_FILTERING_UNKNOWN },
	{ "full cone", NAT_MAPPING_EIM, NAT_FILTERING_EIF },
	{ "address-restricted", NAT_MAPPING_EIM, NAT_FILTERING_ADF },
	{ "port-restricted", NAT_MAPPING_EIM, NAT_FILTERING_APDF },
	{ "symmetric", NAT_MAPPING_APDM, NAT_FILTERING_APDF },
};

static void test_verdicts(void)
{
	char buf[256];
	unsigned wrong = 0, empty = 0;

	for (int i = 0; i < 5; i++) {
		for (int j = 0; j < 5; j++) {
			bool want = !((i == 4 && j >= 3) || (j == 4 && i >= 3));
			bool got = punch_possible(lab[i].map, lab[i].filter, lab[j].map, lab[j].filter);
			if (got != want) {
				wrong++;
				printf("# %s vs %s: possible=%d\n", lab[i].name, lab[j].name, got);
			}
			for (int d = 0; d < 2; d++) {
				punch_verdict(lab[i].map, lab[i].filter, lab[j].map, lab[j].filter, d,
					      buf, sizeof(buf));
				empty += !buf[0] || strchr(buf, '\n') != NULL;
			}
		}
	}
	CHECK_EQ_INT(wrong, 0, "punch_possible for every pair of lab NATs");
	CHECK_EQ_INT(empty, 0, "a one-line verdict for every pair of lab NATs, direct or not");
	CHECK(punch_possible(NAT_MAPPING_UNKNOWN, NAT_FILTERING_UNKNOWN, NAT_MAPPING_APDM,
			     NAT_FILTERING_APDF), "unknown behaviour is hopeful");
	CHECK(!punch_possible(NAT_MAPPING_ADM, NAT_FILTERING_ADF, NAT_MAPPING_EIM, NAT_FILTERING_APDF),
	      "address-dependent mapping vs port filtering: impossible");

	CHECK_EQ_STR(punch_verdict(NAT_MAPPING_APDM, NAT_FILTERING_APDF, NAT_MAPPING_APDM,
				   NAT_FILTERING_APDF, false, buf, sizeof(buf)),
		     "both NATs are address-and-port-dependent mapping; no direct path possible "
		     "without port prediction", "verdict: symmetric vs symmetric");
	CHECK_EQ_STR(punch_verdict(NAT_MAPPING_EIM, NAT_FILTERING_APDF, NAT_MAPPING_APDM,
				   NAT_FILTERING_APDF, false, buf, sizeof(buf)),
		     "their NAT maps per destination (symmetric) and ours filters by port; "
		     "no direct path possible without port prediction",
		     "verdict: port-restricted vs symmetric");
	CHECK_EQ_STR(punch_verdict(NAT_MAPPING_APDM, NAT_FILTERING_APDF, NAT_MAPPING_EIM,
				   NAT_FILTERING_APDF, false, buf, sizeof(buf)),
		     "our NAT maps per destination (symmetric) and theirs filters by port; "
		     "no direct path possible without port prediction",
		     "verdict: symmetric vs port-restricted");
	CHECK_EQ_STR(punch_verdict(NAT_MAPPING_EIM, NAT_FILTERING_APDF, NAT_MAPPING_EIM,
				   NAT_FILTERING_APDF, true, buf, sizeof(buf)),
		     "direct path: simultaneous checks opened both NATs' filters "
		     "(ours: endpoint-independent mapping and address-and-port-dependent filtering; "
		     "theirs: endpoint-independent mapping and address-and-port-dependent filtering)",
		     "verdict: port-restricted both, direct");
	CHECK_EQ_STR(punch_verdict(NAT_MAPPING_EIM, NAT_FILTERING_EIF, NAT_MAPPING_APDM,
				   NAT_FILTERING_APDF, true, buf, sizeof(buf)),
		     "direct path: their NAT maps per destination, and its port for us was learnt "
		     "from their checks (ours: endpoint-independent mapping and "
		     "endpoint-independent filtering; theirs: address-and-port-dependent mapping "
		     "and address-and-port-dependent filtering)", "verdict: full cone vs symmetric, direct");
	CHECK_EQ_STR(punch_verdict(NAT_MAPPING_NONE, NAT_FILTERING_UNKNOWN, NAT_MAPPING_NONE,
				   NAT_FILTERING_UNKNOWN, true, buf, sizeof(buf)),
		     "direct path: neither side is behind a NAT", "verdict: public both");
	CHECK_EQ_STR(punch_verdict(NAT_MAPPING_NONE, NAT_FILTERING_UNKNOWN, NAT_MAPPING_EIM,
				   NAT_FILTERING_ADF, false, buf, sizeof(buf)),
		     "a direct path should exist (ours: no NAT; theirs: endpoint-independent mapping "
		     "and address-dependent filtering) but no check was answered: a firewall may "
		     "drop UDP", "verdict: public vs address-restricted, not direct");
	CHECK_EQ_STR(punch_verdict(NAT_MAPPING_UNKNOWN, NAT_FILTERING_UNKNOWN, NAT_MAPPING_EIM,
				   NAT_FILTERING_EIF, false, buf, sizeof(buf)),
		     "no direct path, NAT behaviour unknown (ours: NAT behaviour unknown; theirs: "
		     "endpoint-independent mapping and endpoint-independent filtering), and no check "
		     "was answered", "verdict: unknown");
	char tiny[8];
	punch_verdict(NAT_MAPPING_APDM, NAT_FILTERING_APDF, NAT_MAPPING_APDM, NAT_FILTERING_APDF,
		      false, tiny, sizeof(tiny));
	CHECK_EQ_STR(tiny, "both NA", "verdict: truncated to the buffer");
}

int main(void)
{
	test_priorities();
	test_wire_format();
	test_input();
	test_open_hosts();
	test_ipv6();
	test_predict_rules();
	test_sequential_symmetric_predicted();
	test_port_restricted();
	test_symmetric_vs_full_cone();
	test_symmetric_vs_port_restricted();
	test_pacing();
	test_limits();
	test_edges();
	test_verdicts();
	return unit_done();
}
