/* Connectivity checks (RFC 8445) driven by the caller's clock and buffers.
 *
 * Every time below comes from the `now` the caller passes; punch_deadline()
 * is the earliest of them:
 *   next_send    pace after the last check: no two checks closer than that
 *   round start  started + round_gap * (2^k - 1): ordinary round k opens
 *   give up      a pair's last allowed check + 2 * round_gap: no answer
 *                came in two round gaps, so it is NO_RESPONSE
 *   grace end    first success + grace: select even if a better pair is
 *                still being checked
 *   timeout      started + timeout: FAILED when nothing succeeded
 *
 * Pairs stay in the order they were added (transactions and the selection
 * refer to them by index); every choice scans them for the best priority,
 * which for PUNCH_MAX_PAIRS is cheaper than keeping them sorted. */
#include "nat/punch.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define NS_PER_MS 1000000ull

#define N_TXN (sizeof(((struct punch *)0)->txn) / sizeof(((struct punch *)0)->txn[0]))

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- priorities (RFC 8445 5.1.2.1, 6.1.2.3) ---- */

static uint32_t type_pref(uint8_t type)
{
	switch (type) {
	case PUNCH_CAND_HOST:   return 126;
	case PUNCH_CAND_PRFLX:  return 110;
	case PUNCH_CAND_MAPPED: return 105;
	case PUNCH_CAND_SRFLX:  return 100;
	case PUNCH_CAND_STATIC: return 90;
	}
	return 0;
}

uint32_t punch_cand_priority(uint8_t type, uint16_t local_pref)
{
	return (type_pref(type) << 24) + ((uint32_t)local_pref << 8) + (256 - 1);
}

uint64_t punch_pair_priority(uint32_t g, uint32_t d)
{
	uint64_t lo = g < d ? g : d, hi = g < d ? d : g;

	return (lo << 32) + 2 * hi + (g > d ? 1 : 0);
}

/* ---- names ---- */

const char *punch_pair_state_name(uint8_t state)
{
	static const char *const names[] = {
		[PUNCH_PAIR_WAITING] = "waiting",
		[PUNCH_PAIR_IN_PROGRESS] = "in progress",
		[PUNCH_PAIR_SUCCEEDED] = "succeeded",
		[PUNCH_PAIR_NO_RESPONSE] = "no response",
		[PUNCH_PAIR_WRONG_PORT] = "wrong port",
		[PUNCH_PAIR_SUPERSEDED] = "superseded",
	};
	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "unknown";
}

const char *punch_state_name(enum punch_state s)
{
	switch (s) {
	case PUNCH_IDLE:      return "idle";
	case PUNCH_RUNNING:   return "running";
	case PUNCH_SUCCEEDED: return "succeeded";
	case PUNCH_FAILED:    return "failed";
	}
	return "unknown";
}

/* ---- candidates and pairs ---- */

static bool ep_usable(const struct na_endpoint *ep)
{
	return (ep->ip.family == AF_INET || ep->ip.family == AF_INET6) && ep->port;
}

static int find_cand(const struct punch_cand *c, unsigned n, const struct na_endpoint *ep)
{
	for (unsigned i = 0; i < n; i++)
		if (na_endpoint_equal(&c[i].ep, ep))
			return (int)i;
	return -1;
}

static int find_pair(const struct punch *p, unsigned li, unsigned ri)
{
	for (unsigned i = 0; i < p->n_pairs; i++)
		if (p->pairs[i].local == li && p->pairs[i].remote == ri)
			return (int)i;
	return -1;
}

static bool add_pair(struct punch *p, unsigned li, unsigned ri)
{
	if (p->n_pairs >= PUNCH_MAX_PAIRS)
		return false;
	struct punch_pair *pr = &p->pairs[p->n_pairs++];
	uint32_t l = p->local[li].priority, r = p->remote[ri].priority;

	memset(pr, 0, sizeof(*pr));
	pr->local = (uint8_t)li;
	pr->remote = (uint8_t)ri;
	pr->state = PUNCH_PAIR_WAITING;
	/* G is always the initiator's side, so both ends rank alike. */
	pr->priority = p->prm.initiator ? punch_pair_priority(l, r) : punch_pair_priority(r, l);
	return true;
}

static bool pairable(const struct punch_cand *local, const struct punch_cand *remote)
{
	return local->type == PUNCH_CAND_HOST && local->ep.ip.family == remote->ep.ip.family;
}

/* Adds c (or finds it) and pairs it; *idx is its index, -1 when refused.
 * false when it or one of its pairs did not fit. */
static bool add_remote(struct punch *p, const struct punch_cand *c, int *idx)
{
	bool ok = true;

	*idx = -1;
	if (!ep_usable(&c->ep))
		return false;
	if ((*idx = find_cand(p->remote, p->n_remote, &c->ep)) >= 0)
		return true;
	if (p->n_remote >= PUNCH_MAX_CANDS)
		return false;
	unsigned ri = p->n_remote++;
	p->remote[ri] = *c;
	*idx = (int)ri;
	for (unsigned li = 0; li < p->n_local; li++)
		if (pairable(&p->local[li], c))
			ok &= add_pair(p, li, ri);
	return ok;
}

bool punch_add_remote(struct punch *p, const struct punch_cand *c)
{
	int idx;

	return add_remote(p, c, &idx);
}

bool punch_add_local(struct punch *p, const struct punch_cand *c)
{
	bool ok = true;

	if (!ep_usable(&c->ep))
		return false;
	if (find_cand(p->local, p->n_local, &c->ep) >= 0)
		return true;
	if (p->n_local >= PUNCH_MAX_CANDS)
		return false;
	unsigned li = p->n_local++;
	p->local[li] = *c;
	for (unsigned ri = 0; ri < p->n_remote; ri++)
		if (pairable(c, &p->remote[ri]))
			ok &= add_pair(p, li, ri);
	return ok;
}

/* The host candidate a packet that arrived on `local` belongs to: the exact
 * one, else the first of the family (the socket may be bound to a wildcard
 * address the caller could not resolve). */
static int base_for(const struct punch *p, const struct na_endpoint *local, uint8_t family)
{
	int first = -1;

	for (unsigned i = 0; i < p->n_local; i++) {
		const struct punch_cand *c = &p->local[i];
		if (c->type != PUNCH_CAND_HOST || c->ep.ip.family != family)
			continue;
		if (local && na_endpoint_equal(&c->ep, local))
			return (int)i;
		if (first < 0)
			first = (int)i;
	}
	return first;
}

/* ---- setup ---- */

static void ufrag(char out[PUNCH_UFRAG_LEN + 1], uint64_t attempt, bool initiator)
{
	snprintf(out, PUNCH_UFRAG_LEN + 1, "%016" PRIx64 "%c", attempt, initiator ? 'i' : 'r');
}

void punch_init(struct punch *p, const struct punch_params *prm)
{
	memset(p, 0, sizeof(*p));
	p->prm = *prm;
	if (!p->prm.pace)
		p->prm.pace = 20 * NS_PER_MS;
	if (!p->prm.round_gap)
		p->prm.round_gap = 100 * NS_PER_MS;
	if (!p->prm.max_tries)
		p->prm.max_tries = 6;
	if (p->prm.max_tries > UINT8_MAX) /* what punch_pair.sent counts */
		p->prm.max_tries = UINT8_MAX;
	if (!p->prm.grace)
		p->prm.grace = 50 * NS_PER_MS;
	if (!p->prm.timeout)
		p->prm.timeout = 5000 * NS_PER_MS;
	p->state = PUNCH_IDLE;
	p->selected = -1;
	ufrag(p->local_ufrag, prm->attempt, prm->initiator);
	ufrag(p->remote_ufrag, prm->attempt, !prm->initiator);
}

void punch_start(struct punch *p, uint64_t now)
{
	if (p->state != PUNCH_IDLE)
		return;
	p->state = PUNCH_RUNNING;
	p->started = now;
	p->next_send = now;
	p->round = 0;
}

/* ---- schedule ---- */

static uint64_t round_start(const struct punch *p, unsigned k)
{
	uint64_t steps = k >= 64 ? UINT64_MAX : (UINT64_C(1) << k) - 1;
	uint64_t gap = p->prm.round_gap;

	if (steps > UINT64_MAX / gap)
		return UINT64_MAX;
	return add_sat(p->started, steps * gap);
}

static bool pending(const struct punch_pair *pr)
{
	return pr->state == PUNCH_PAIR_WAITING || pr->state == PUNCH_PAIR_IN_PROGRESS;
}

static int best_succeeded(const struct punch *p)
{
	int best = -1;

	for (unsigned i = 0; i < p->n_pairs; i++)
		if (p->pairs[i].state == PUNCH_PAIR_SUCCEEDED &&
		    (best < 0 || p->pairs[i].priority > p->pairs[best].priority))
			best = (int)i;
	return best;
}

/* Once a pair succeeded, only better pairs are worth checking: the worse
 * ones could never be selected. */
static uint64_t check_floor(const struct punch *p)
{
	int best = best_succeeded(p);

	return best < 0 ? 0 : p->pairs[best].priority;
}

static bool checkable(const struct punch *p, const struct punch_pair *pr, uint64_t floor)
{
	return pending(pr) && pr->sent < p->prm.max_tries && (!floor || pr->priority > floor);
}

struct next {
	unsigned pair, round;
	uint64_t due;
};

/* The best pair that may be checked now: among those with a triggered
 * check queued, or those due in `round`. -1 when none. */
static int best_pair(const struct punch *p, uint64_t floor, bool triggered, unsigned round)
{
	int best = -1;

	for (unsigned i = 0; i < p->n_pairs; i++) {
		const struct punch_pair *pr = &p->pairs[i];
		if (!checkable(p, pr, floor))
			continue;
		if (triggered ? !pr->triggered : pr->next_round > round)
			continue;
		if (best < 0 || pr->priority > p->pairs[best].priority)
			best = (int)i;
	}
	return best;
}

/* Which check goes out next, and when: triggered ones first, then the
 * current round's, then the next round's. false when none is left. */
static bool next_check(const struct punch *p, struct next *n)
{
	uint64_t floor = check_floor(p);
	int i;

	if ((i = best_pair(p, floor, true, 0)) >= 0) {
		*n = (struct next){ (unsigned)i, p->round, p->next_send };
		return true;
	}
	for (unsigned r = p->round; r <= p->round + 1; r++) {
		if ((i = best_pair(p, floor, false, r)) >= 0) {
			uint64_t at = round_start(p, r);
			*n = (struct next){ (unsigned)i, r, at > p->next_send ? at : p->next_send };
			return true;
		}
	}
	return false;
}

static uint64_t give_up_at(const struct punch *p, const struct punch_pair *pr)
{
	return add_sat(pr->last_sent, add_sat(p->prm.round_gap, p->prm.round_gap));
}

static bool exhausted(const struct punch *p, const struct punch_pair *pr)
{
	return pr->state == PUNCH_PAIR_IN_PROGRESS && pr->sent >= p->prm.max_tries;
}

static void give_up(struct punch *p, uint64_t now)
{
	for (unsigned i = 0; i < p->n_pairs; i++) {
		struct punch_pair *pr = &p->pairs[i];
		if (exhausted(p, pr) && now >= give_up_at(p, pr))
			pr->state = PUNCH_PAIR_NO_RESPONSE;
	}
}

static void finish(struct punch *p, enum punch_state s, int selected, uint8_t leftover)
{
	for (unsigned i = 0; i < p->n_pairs; i++) {
		if (pending(&p->pairs[i]))
			p->pairs[i].state = leftover;
		p->pairs[i].triggered = false;
	}
	p->selected = selected;
	p->state = s;
}

/* Selects `best` once no better pair is pending, or when grace is over. */
static void maybe_select(struct punch *p, int best, uint64_t now)
{
	if (now < add_sat(p->succeeded_at, p->prm.grace)) {
		for (unsigned i = 0; i < p->n_pairs; i++)
			if (pending(&p->pairs[i]) && p->pairs[i].priority > p->pairs[best].priority)
				return;
	}
	finish(p, PUNCH_SUCCEEDED, best, PUNCH_PAIR_SUPERSEDED);
}

static void advance(struct punch *p, uint64_t now)
{
	if (p->state != PUNCH_RUNNING)
		return;
	give_up(p, now);
	int best = best_succeeded(p);
	if (best >= 0)
		maybe_select(p, best, now);
	else if (now >= add_sat(p->started, p->prm.timeout))
		finish(p, PUNCH_FAILED, -1, PUNCH_PAIR_NO_RESPONSE);
}

uint64_t punch_deadline(const struct punch *p)
{
	uint64_t d = UINT64_MAX;
	struct next n;

	if (p->state != PUNCH_RUNNING)
		return UINT64_MAX;
	if (next_check(p, &n))
		d = n.due;
	for (unsigned i = 0; i < p->n_pairs; i++)
		if (exhausted(p, &p->pairs[i]))
			d = min_u64(d, give_up_at(p, &p->pairs[i]));
	if (best_succeeded(p) >= 0)
		d = min_u64(d, add_sat(p->succeeded_at, p->prm.grace));
	else
		d = min_u64(d, add_sat(p->started, p->prm.timeout));
	return d;
}

/* ---- checks ---- */

static void new_txid(struct punch *p, uint8_t txid[STUN_TXID_LEN])
{
	uint8_t r[12] = { 0 };

	if (p->prm.rand) {
		p->prm.rand(p->prm.rand_ctx, r, sizeof(r));
	} else {
		/* Unique is enough: every answer is authenticated anyway. */
		memcpy(r, &p->checks_sent, sizeof(p->checks_sent));
		memcpy(r + 8, &p->prm.attempt, 4);
	}
	stun_txid_set(txid, r);
}

static void txn_add(struct punch *p, const uint8_t txid[STUN_TXID_LEN], unsigned pair,
		    uint64_t now)
{
	unsigned slot = p->txn_next % N_TXN;

	/* A ring: the oldest transaction is the least likely to be answered. */
	memcpy(p->txn[slot].txid, txid, STUN_TXID_LEN);
	p->txn[slot].pair = (uint8_t)pair;
	p->txn[slot].used = true;
	p->txn[slot].sent_at = now;
	p->txn_next = (slot + 1) % N_TXN;
}

static int txn_find(const struct punch *p, const uint8_t txid[STUN_TXID_LEN])
{
	for (unsigned i = 0; i < N_TXN; i++)
		if (p->txn[i].used && !memcmp(p->txn[i].txid, txid, STUN_TXID_LEN))
			return (int)i;
	return -1;
}

static size_t build_check(const struct punch *p, const struct punch_pair *pr,
			  const uint8_t txid[STUN_TXID_LEN], uint8_t *buf, size_t cap)
{
	char user[2 * PUNCH_UFRAG_LEN + 2];
	uint16_t local_pref = (uint16_t)(p->local[pr->local].priority >> 8);
	struct stun_builder b;

	snprintf(user, sizeof(user), "%s:%s", p->remote_ufrag, p->local_ufrag);
	stun_build_init(&b, buf, cap, STUN_BINDING_REQUEST, txid);
	stun_build_string(&b, STUN_ATTR_USERNAME, user);
	stun_build_u32(&b, STUN_ATTR_PRIORITY, punch_cand_priority(PUNCH_CAND_PRFLX, local_pref));
	stun_build_u64(&b, p->prm.initiator ? STUN_ATTR_ICE_CONTROLLING : STUN_ATTR_ICE_CONTROLLED,
		       p->prm.attempt);
	stun_build_integrity(&b, p->prm.remote_secret, PUNCH_SECRET_LEN);
	stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

size_t punch_next(struct punch *p, uint64_t now, uint8_t *buf, size_t cap,
		  struct na_endpoint *from, struct na_endpoint *to)
{
	uint8_t txid[STUN_TXID_LEN];
	struct next n;
	size_t len;

	advance(p, now);
	if (p->state != PUNCH_RUNNING || !next_check(p, &n) || n.due > now)
		return 0;
	struct punch_pair *pr = &p->pairs[n.pair];
	new_txid(p, txid);
	if (!(len = build_check(p, pr, txid, buf, cap)))
		return 0;
	txn_add(p, txid, n.pair, now);
	if (!pr->sent)
		pr->first_sent = now;
	pr->sent++;
	pr->last_sent = now;
	pr->state = PUNCH_PAIR_IN_PROGRESS;
	pr->triggered = false;
	/* A triggered check also stands for the pair's check in this round. */
	if (pr->next_round < n.round + 1)
		pr->next_round = n.round + 1;
	p->round = n.round;
	p->next_send = add_sat(now, p->prm.pace);
	p->checks_sent++;
	*from = p->local[pr->local].ep;
	*to = p->remote[pr->remote].ep;
	return len;
}

/* ---- input ---- */

static bool finished(const struct punch *p)
{
	return p->state == PUNCH_SUCCEEDED || p->state == PUNCH_FAILED;
}

static bool username_ours(const struct punch *p, const struct stun_msg *m)
{
	char want[2 * PUNCH_UFRAG_LEN + 2];
	int n = snprintf(want, sizeof(want), "%s:%s", p->local_ufrag, p->remote_ufrag);

	return stun_has(m, STUN_ATTR_USERNAME) && m->username_len == (size_t)n &&
	       !memcmp(m->username, want, (size_t)n);
}

/* A valid check came in from `from`: learn its address, mark the pair it
 * arrived on and queue the check that proves the way back. */
static void took_check(struct punch *p, const struct stun_msg *m, const struct na_endpoint *from,
		       const struct na_endpoint *local)
{
	int ri = find_cand(p->remote, p->n_remote, from);

	if (ri < 0 && !finished(p)) {
		struct punch_cand c = {
			.ep = *from,
			.type = PUNCH_CAND_PRFLX,
			.priority = stun_has(m, STUN_ATTR_PRIORITY) ?
				m->priority : punch_cand_priority(PUNCH_CAND_PRFLX, 0),
		};
		add_remote(p, &c, &ri);
	}
	int li = base_for(p, local, from->ip.family);
	int pi = ri < 0 || li < 0 ? -1 : find_pair(p, (unsigned)li, (unsigned)ri);
	if (pi < 0)
		return;
	struct punch_pair *pr = &p->pairs[pi];
	pr->they_reached_us = true;
	if (!finished(p) && pending(pr) && pr->sent < p->prm.max_tries)
		pr->triggered = true;
}

static size_t build_answer(const struct punch *p, const struct stun_msg *m,
			   const struct na_endpoint *from, uint8_t *buf, size_t cap)
{
	struct stun_builder b;

	if (!buf)
		return 0;
	stun_build_init(&b, buf, cap, STUN_BINDING_SUCCESS, m->txid);
	stun_build_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, from);
	stun_build_integrity(&b, p->prm.local_secret, PUNCH_SECRET_LEN);
	stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static enum punch_input_result on_request(struct punch *p, const struct stun_msg *m,
					  const struct na_endpoint *from,
					  const struct na_endpoint *local,
					  uint8_t *reply, size_t cap, size_t *reply_len)
{
	if (!username_ours(p, m))
		return PUNCH_IN_NOT_OURS;
	if (stun_check_integrity(m, p->prm.local_secret, PUNCH_SECRET_LEN) ||
	    stun_check_fingerprint(m) || !ep_usable(from))
		return PUNCH_IN_BAD;
	took_check(p, m, from, local);
	*reply_len = build_answer(p, m, from, reply, cap);
	if (*reply_len)
		p->answers_sent++;
	return PUNCH_IN_REQUEST;
}

/* An authenticated answer for pair pi. From the address the check went to,
 * the pair works; from any other, the far NAT mapped the answer afresh, and
 * that address is worth a check of its own. */
static void took_answer(struct punch *p, unsigned pi, const struct na_endpoint *from,
			const struct na_endpoint *mapped, uint64_t sent_at, uint64_t now)
{
	struct punch_pair *pr = &p->pairs[pi];

	if (pr->state == PUNCH_PAIR_SUCCEEDED)
		return;
	if (na_endpoint_equal(from, &p->remote[pr->remote].ep)) {
		if (best_succeeded(p) < 0)
			p->succeeded_at = now;
		pr->state = PUNCH_PAIR_SUCCEEDED;
		pr->mapped = *mapped;
		pr->rtt = now > sent_at ? now - sent_at : 0;
		pr->triggered = false;
		return;
	}
	pr->state = PUNCH_PAIR_WRONG_PORT;
	pr->answered_from = *from;
	pr->triggered = false;

	struct punch_cand c = {
		.ep = *from,
		.type = PUNCH_CAND_PRFLX,
		.priority = punch_cand_priority(PUNCH_CAND_PRFLX, 0),
	};
	int ri, np;
	add_remote(p, &c, &ri);
	if (ri >= 0 && (np = find_pair(p, pr->local, (unsigned)ri)) >= 0 &&
	    pending(&p->pairs[np]) && p->pairs[np].sent < p->prm.max_tries)
		p->pairs[np].triggered = true;
}

static enum punch_input_result on_response(struct punch *p, const struct stun_msg *m,
					   const struct na_endpoint *from, uint64_t now)
{
	int t = txn_find(p, m->txid);

	if (t < 0)
		return PUNCH_IN_NOT_OURS;
	/* An error answer is no evidence either way: the pair stays as it is. */
	if (stun_class_of(m->type) == STUN_ERROR_RESPONSE)
		return PUNCH_IN_BAD;
	if (stun_check_integrity(m, p->prm.remote_secret, PUNCH_SECRET_LEN) ||
	    stun_check_fingerprint(m) || !stun_has(m, STUN_ATTR_XOR_MAPPED_ADDRESS) ||
	    !ep_usable(from))
		return PUNCH_IN_BAD;
	p->txn[t].used = false;
	/* Once decided, the outcome stands; answers are still recognised. */
	if (p->state != PUNCH_RUNNING)
		return PUNCH_IN_RESPONSE;
	took_answer(p, p->txn[t].pair, from, &m->xor_mapped, p->txn[t].sent_at, now);
	advance(p, now);
	return PUNCH_IN_RESPONSE;
}

enum punch_input_result punch_input(struct punch *p, const struct stun_msg *m,
				    const struct na_endpoint *from,
				    const struct na_endpoint *local, uint64_t now,
				    uint8_t *reply, size_t cap, size_t *reply_len)
{
	size_t dummy;

	if (!reply_len)
		reply_len = &dummy;
	*reply_len = 0;
	if (stun_method(m->type) != STUN_METHOD_BINDING || !m->has_cookie)
		return PUNCH_IN_NOT_OURS;
	switch (stun_class_of(m->type)) {
	case STUN_REQUEST:
		return on_request(p, m, from, local, reply, cap, reply_len);
	case STUN_SUCCESS:
	case STUN_ERROR_RESPONSE:
		return on_response(p, m, from, now);
	default:
		return PUNCH_IN_NOT_OURS;
	}
}

enum punch_state punch_state(const struct punch *p)
{
	return p->state;
}

const struct punch_pair *punch_selected(const struct punch *p)
{
	if (p->state != PUNCH_SUCCEEDED || p->selected < 0 || (unsigned)p->selected >= p->n_pairs)
		return NULL;
	return &p->pairs[p->selected];
}

/* ---- verdict ---- */

static const char *mapping_name(enum nat_mapping m)
{
	switch (m) {
	case NAT_MAPPING_NONE: return "no NAT";
	case NAT_MAPPING_EIM:  return "endpoint-independent mapping";
	case NAT_MAPPING_ADM:  return "address-dependent mapping";
	case NAT_MAPPING_APDM: return "address-and-port-dependent mapping";
	case NAT_MAPPING_UNKNOWN: break;
	}
	return "unknown mapping";
}

static const char *filtering_name(enum nat_filtering f)
{
	switch (f) {
	case NAT_FILTERING_EIF:  return "endpoint-independent filtering";
	case NAT_FILTERING_ADF:  return "address-dependent filtering";
	case NAT_FILTERING_APDF: return "address-and-port-dependent filtering";
	case NAT_FILTERING_UNKNOWN: break;
	}
	return "unknown filtering";
}

static bool per_destination(enum nat_mapping m)
{
	return m == NAT_MAPPING_ADM || m == NAT_MAPPING_APDM;
}

/* Without a NAT there is nothing to map and nothing filtering. */
static enum nat_filtering filtering_of(enum nat_mapping m, enum nat_filtering f)
{
	return m == NAT_MAPPING_NONE ? NAT_FILTERING_EIF : f;
}

bool punch_possible(enum nat_mapping our_map, enum nat_filtering our_filter,
		    enum nat_mapping their_map, enum nat_filtering their_filter)
{
	our_filter = filtering_of(our_map, our_filter);
	their_filter = filtering_of(their_map, their_filter);
	if (per_destination(our_map) && per_destination(their_map))
		return false;
	if (per_destination(our_map) && their_filter == NAT_FILTERING_APDF)
		return false;
	if (per_destination(their_map) && our_filter == NAT_FILTERING_APDF)
		return false;
	return true;
}

static bool unknown(enum nat_mapping m, enum nat_filtering f)
{
	return m == NAT_MAPPING_UNKNOWN || (m != NAT_MAPPING_NONE && f == NAT_FILTERING_UNKNOWN);
}

static const char *describe(enum nat_mapping m, enum nat_filtering f, char *buf, size_t cap)
{
	if (m == NAT_MAPPING_NONE)
		snprintf(buf, cap, "no NAT");
	else if (m == NAT_MAPPING_UNKNOWN && f == NAT_FILTERING_UNKNOWN)
		snprintf(buf, cap, "NAT behaviour unknown");
	else
		snprintf(buf, cap, "%s and %s", mapping_name(m), filtering_name(f));
	return buf;
}

static const char *per_destination_name(enum nat_mapping m)
{
	return m == NAT_MAPPING_APDM ? "symmetric" : mapping_name(m);
}

static const char *how_direct(enum nat_mapping om, enum nat_filtering of,
			      enum nat_mapping tm, enum nat_filtering tf)
{
	if (per_destination(tm))
		return "their NAT maps per destination, and its port for us was learnt from their checks";
	if (per_destination(om))
		return "our NAT maps per destination, and they learnt its port from our checks";
	if (filtering_of(om, of) == NAT_FILTERING_EIF && filtering_of(tm, tf) == NAT_FILTERING_EIF)
		return "checks passed straight through";
	return "simultaneous checks opened both NATs' filters";
}

static void why_impossible(enum nat_mapping om, enum nat_mapping tm, char *buf, size_t cap)
{
	static const char tail[] = "no direct path possible without port prediction";

	if (per_destination(om) && per_destination(tm)) {
		if (om == tm)
			snprintf(buf, cap, "both NATs are %s; %s", mapping_name(om), tail);
		else
			snprintf(buf, cap, "both NATs map per destination (ours %s, theirs %s); %s",
				 mapping_name(om), mapping_name(tm), tail);
	} else if (per_destination(tm)) {
		snprintf(buf, cap, "their NAT maps per destination (%s) and ours filters by port; %s",
			 per_destination_name(tm), tail);
	} else {
		snprintf(buf, cap, "our NAT maps per destination (%s) and theirs filters by port; %s",
			 per_destination_name(om), tail);
	}
}

unsigned punch_predict(const struct nat_report *r, const struct na_endpoint *srflx,
		       uint16_t local_port, struct punch_cand *out, unsigned max)
{
	unsigned n = 0;

	if (r->mapping != NAT_MAPPING_ADM && r->mapping != NAT_MAPPING_APDM)
		return 0;
	if (r->alloc == NAT_ALLOC_PRESERVING && local_port && local_port != srflx->port &&
	    n < max) {
		out[n] = (struct punch_cand){ { srflx->ip, local_port }, PUNCH_CAND_SRFLX,
					      punch_cand_priority(PUNCH_CAND_SRFLX, 32768) };
		n++;
	}
	if (r->alloc != NAT_ALLOC_SEQUENTIAL || !r->alloc_delta)
		return n;
	for (int k = 1; k <= PUNCH_PREDICT && n < max; k++) {
		long port = (long)srflx->port + (long)k * r->alloc_delta;

		if (port < 1 || port > 65535)
			break;
		out[n] = (struct punch_cand){ { srflx->ip, (uint16_t)port }, PUNCH_CAND_SRFLX,
					      punch_cand_priority(PUNCH_CAND_SRFLX,
								  (uint16_t)(32768 - k)) };
		n++;
	}
	return n;
}

const char *punch_verdict(enum nat_mapping our_map, enum nat_filtering our_filter,
			  enum nat_mapping their_map, enum nat_filtering their_filter,
			  bool direct, char *buf, size_t cap)
{
	char ours[96], theirs[96];

	if (!buf || !cap)
		return buf;
	describe(our_map, our_filter, ours, sizeof(ours));
	describe(their_map, their_filter, theirs, sizeof(theirs));
	if (direct && our_map == NAT_MAPPING_NONE && their_map == NAT_MAPPING_NONE)
		snprintf(buf, cap, "direct path: neither side is behind a NAT");
	else if (direct)
		snprintf(buf, cap, "direct path: %s (ours: %s; theirs: %s)",
			 how_direct(our_map, our_filter, their_map, their_filter), ours, theirs);
	else if (!punch_possible(our_map, our_filter, their_map, their_filter))
		why_impossible(our_map, their_map, buf, cap);
	else if (unknown(our_map, our_filter) || unknown(their_map, their_filter))
		snprintf(buf, cap, "no direct path, NAT behaviour unknown (ours: %s; theirs: %s), "
			 "and no check was answered", ours, theirs);
	else
		snprintf(buf, cap, "a direct path should exist (ours: %s; theirs: %s) but no check "
			 "was answered: a firewall may drop UDP", ours, theirs);
	return buf;
}
