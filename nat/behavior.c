#include "nat/behavior.h"

#include <string.h>

enum {
	S_MAP1, S_MAP2, S_MAP3, S_FILT2, S_FILT3, S_HAIRPIN, S_ALLOC,
	S_LIFE_REFRESH, S_LIFE_WAIT, S_LIFE_PROBE, S_DONE,
};

#define HAIRPIN_SENDS    3
#define HAIRPIN_SPACING  (200 * STUN_NS_PER_MS)
#define HAIRPIN_WAIT     (1000 * STUN_NS_PER_MS)

void nat_behavior_opts_default(struct nat_behavior_opts *o)
{
	static const uint64_t gaps_s[] = { 15, 30, 60, 120, 180 };

	memset(o, 0, sizeof(*o));
	stun_client_params_default(&o->params);
	/* Filtering tests expect silence when the NAT filters: waiting the
	 * full 39.5 s of RFC 8489 for each would make discovery useless. */
	o->probe.rto = 300 * STUN_NS_PER_MS;
	o->probe.rc = 3;
	o->probe.rm = 4;
	for (unsigned i = 0; i < sizeof(gaps_s) / sizeof(*gaps_s); i++)
		o->gaps_ms[i] = gaps_s[i] * 1000;
	o->n_gaps = sizeof(gaps_s) / sizeof(*gaps_s);
}

static void enqueue(struct nat_behavior *b, unsigned sock, const struct na_endpoint *to,
		    const uint8_t *data, size_t len)
{
	struct nat_behavior_send *s;

	/* One transaction is under way at a time, so the queue never holds
	 * more than a send or two; a full queue drops the oldest, which a
	 * retransmission then replaces. */
	if (b->n_out == sizeof(b->out) / sizeof(*b->out)) {
		b->out_head = (b->out_head + 1) % (sizeof(b->out) / sizeof(*b->out));
		b->n_out--;
	}
	if (len > sizeof(s->data))
		return;
	s = &b->out[(b->out_head + b->n_out) % (sizeof(b->out) / sizeof(*b->out))];
	s->sock = sock;
	s->to = *to;
	memcpy(s->data, data, len);
	s->len = len;
	b->n_out++;
}

bool nat_behavior_next_send(struct nat_behavior *b, const struct nat_behavior_send **s)
{
	if (!b->n_out)
		return false;
	*s = &b->out[b->out_head];
	b->out_head = (b->out_head + 1) % (sizeof(b->out) / sizeof(*b->out));
	b->n_out--;
	return true;
}

static struct stun_client *client_of(struct nat_behavior *b)
{
	/* Test I and the lifetime refresh must be answered: full RFC timers.
	 * Everything else may rightly go unanswered. */
	return b->state == S_MAP1 || b->state == S_LIFE_REFRESH ? &b->main : &b->probe;
}

static void finish_step(struct nat_behavior *b, enum nat_step step, uint64_t now)
{
	b->report.step_ns[step] += now - b->step_start;
	b->step_start = now;
}

static void step_result(struct nat_behavior *b, const struct stun_client_event *ev,
			unsigned sock, uint64_t now);

/* Starts a Binding transaction from sock; a start that fails counts as a
 * timeout, so the machine always moves on. */
static void request(struct nat_behavior *b, unsigned sock, const struct na_endpoint *to,
		    uint32_t change, uint16_t response_port, uint64_t now)
{
	struct stun_client_request req = {
		.to = to, .change = change, .response_port = response_port,
	};
	struct stun_client_event ev;

	b->sock = sock;
	b->txn = stun_client_start(client_of(b), &req, now, &ev);
	if (!b->txn) {
		step_result(b, NULL, sock, now);
		return;
	}
	enqueue(b, sock, &ev.to, ev.data, ev.len);
}

static void go(struct nat_behavior *b, int state, uint64_t now);

static void start_hairpin(struct nat_behavior *b, uint64_t now)
{
	uint8_t rnd[12], msg[STUN_HEADER_LEN];
	struct stun_builder sb;

	if (!b->opts.rand(b->opts.rand_ctx, rnd, sizeof(rnd))) {
		b->report.hairpin = -1;
		go(b, S_ALLOC, now);
		return;
	}
	stun_txid_set(b->hairpin_txid, rnd);
	stun_build_init(&sb, msg, sizeof(msg), STUN_BINDING_REQUEST, b->hairpin_txid);
	enqueue(b, 0, &b->report.mapped, msg, stun_build_finish(&sb));
	b->hairpin_sends = 1;
	b->wait_until = now + HAIRPIN_SPACING;
}

static void resend_hairpin(struct nat_behavior *b, uint64_t now)
{
	uint8_t msg[STUN_HEADER_LEN];
	struct stun_builder sb;

	if (b->hairpin_sends >= HAIRPIN_SENDS) {
		/* Waited HAIRPIN_WAIT after the first send with no echo. */
		b->report.hairpin = 0;
		finish_step(b, NAT_STEP_HAIRPIN, now);
		go(b, S_ALLOC, now);
		return;
	}
	stun_build_init(&sb, msg, sizeof(msg), STUN_BINDING_REQUEST, b->hairpin_txid);
	enqueue(b, 0, &b->report.mapped, msg, stun_build_finish(&sb));
	b->hairpin_sends++;
	b->wait_until = now + (b->hairpin_sends == HAIRPIN_SENDS ?
			       HAIRPIN_WAIT - (HAIRPIN_SENDS - 1) * HAIRPIN_SPACING :
			       HAIRPIN_SPACING);
}

/* Preservation shows on every socket; a sequential step only between the
 * fresh mappings of the probe sockets, made back to back (socket 0 may have
 * made more mappings of its own during the mapping tests). */
static void classify_alloc(struct nat_behavior *b)
{
	struct nat_report *r = &b->report;
	const struct nat_behavior_opts *o = &b->opts;
	bool preserving = r->mapped.port == o->local[0].port, same_delta = true;
	int delta = 0;

	if (r->mapping == NAT_MAPPING_NONE) {
		r->alloc = NAT_ALLOC_PRESERVING;
		return;
	}
	for (unsigned i = 1; i < o->n_socks; i++) {
		if (!b->alloc_mapped[i].port)
			return; /* a probe went unanswered: unknown */
		if (b->alloc_mapped[i].port != o->local[i].port)
			preserving = false;
		if (i >= 2) {
			int d = (int)b->alloc_mapped[i].port - (int)b->alloc_mapped[i - 1].port;
			if (i >= 3 && d != delta)
				same_delta = false;
			delta = d;
		}
	}
	if (preserving) {
		r->alloc = NAT_ALLOC_PRESERVING;
	} else if (o->n_socks < 4) {
		return; /* two deltas are the least that show a pattern */
	} else if (same_delta && delta != 0 && delta >= -16 && delta <= 16) {
		r->alloc = NAT_ALLOC_SEQUENTIAL;
		r->alloc_delta = delta;
	} else {
		r->alloc = NAT_ALLOC_RANDOM;
	}
}

/* Enters a state and starts its work. */
static void go(struct nat_behavior *b, int state, uint64_t now)
{
	struct nat_report *r = &b->report;
	struct na_endpoint to;

	b->state = state;
	b->wait_until = UINT64_MAX;
	switch (state) {
	case S_MAP2:
		to = (struct na_endpoint){ r->other.ip, r->server.port };
		request(b, 0, &to, 0, 0, now);
		break;
	case S_MAP3:
		request(b, 0, &r->other, 0, 0, now);
		break;
	case S_FILT2:
		request(b, 0, &r->server, STUN_CHANGE_IP | STUN_CHANGE_PORT, 0, now);
		break;
	case S_FILT3:
		request(b, 0, &r->server, STUN_CHANGE_PORT, 0, now);
		break;
	case S_HAIRPIN:
		start_hairpin(b, now);
		break;
	case S_ALLOC:
		if (b->alloc_next >= b->opts.n_socks) {
			classify_alloc(b);
			finish_step(b, NAT_STEP_ALLOC, now);
			go(b, b->opts.lifetime && b->opts.n_socks >= 2 && b->opts.n_gaps ?
				      S_LIFE_REFRESH : S_DONE, now);
			break;
		}
		request(b, b->alloc_next, &r->server, 0, 0, now);
		break;
	case S_LIFE_REFRESH:
		request(b, 0, &r->server, 0, 0, now);
		break;
	case S_LIFE_WAIT:
		b->wait_until = now + b->opts.gaps_ms[b->gap] * STUN_NS_PER_MS;
		break;
	case S_LIFE_PROBE:
		request(b, 1, &r->server, 0, r->mapped.port, now);
		break;
	case S_DONE:
		break;
	}
}

static void mapping_result(struct nat_behavior *b, const struct stun_client_result *res,
			   uint64_t now)
{
	struct nat_report *r = &b->report;

	switch (b->state) {
	case S_MAP1:
		if (!res) {
			r->error = "no answer from the STUN server";
			finish_step(b, NAT_STEP_MAPPING, now);
			go(b, S_DONE, now);
			return;
		}
		r->mapped = res->mapped;
		r->has_mapped = true;
		r->rtt_ns = res->rtt;
		r->has_other = res->has_other;
		r->other = res->other;
		if (na_endpoint_equal(&r->mapped, &r->local))
			r->mapping = NAT_MAPPING_NONE;
		if (!r->has_other || r->other.ip.family != r->server.ip.family ||
		    na_ip_equal(&r->other.ip, &r->server.ip)) {
			/* Not an RFC 5780 server: only the mapping itself. */
			r->has_other = false;
			finish_step(b, NAT_STEP_MAPPING, now);
			go(b, S_HAIRPIN, now);
			return;
		}
		/* Filtering first: once socket 0 has sent to A2, an
		 * address-dependent filter lets A2's answers in and the NAT
		 * would look like a full cone. */
		finish_step(b, NAT_STEP_MAPPING, now);
		go(b, S_FILT2, now);
		return;
	case S_MAP2:
		if (res && na_endpoint_equal(&res->mapped, &r->mapped)) {
			r->mapping = NAT_MAPPING_EIM;
		} else if (res) {
			b->map2 = res->mapped;
			go(b, S_MAP3, now);
			return;
		}
		break;
	case S_MAP3:
		if (res)
			r->mapping = na_endpoint_equal(&res->mapped, &b->map2) ? NAT_MAPPING_ADM :
										  NAT_MAPPING_APDM;
		break;
	}
	finish_step(b, NAT_STEP_MAPPING, now);
	go(b, S_HAIRPIN, now);
}

static void filtering_result(struct nat_behavior *b, const struct stun_client_result *res,
			     uint64_t now)
{
	struct nat_report *r = &b->report;
	struct na_endpoint want;

	if (b->state == S_FILT2) {
		if (!res) {
			go(b, S_FILT3, now);
			return;
		}
		/* An answer from anywhere but A2:P2 means the server did not
		 * honour the change: it tells nothing about filtering. */
		if (na_endpoint_equal(&res->from, &r->other))
			r->filtering = NAT_FILTERING_EIF;
	} else {
		want = (struct na_endpoint){ r->server.ip, r->other.port };
		if (!res)
			r->filtering = NAT_FILTERING_APDF;
		else if (na_endpoint_equal(&res->from, &want))
			r->filtering = NAT_FILTERING_ADF;
	}
	finish_step(b, NAT_STEP_FILTERING, now);
	go(b, b->report.mapping == NAT_MAPPING_NONE ? S_HAIRPIN : S_MAP2, now);
}

static void lifetime_result(struct nat_behavior *b, const struct stun_client_result *res,
			    unsigned sock, uint64_t now)
{
	struct nat_report *r = &b->report;

	if (b->state == S_LIFE_REFRESH) {
		if (!res) {
			finish_step(b, NAT_STEP_LIFETIME, now);
			go(b, S_DONE, now);
			return;
		}
		r->mapped = res->mapped;
		go(b, S_LIFE_WAIT, now);
		return;
	}
	/* S_LIFE_PROBE: the answer to Y's request goes to X's mapping. */
	if (res && sock == 0) {
		r->lifetime_measured = true;
		r->lifetime_alive_ms = b->opts.gaps_ms[b->gap];
		if (++b->gap < b->opts.n_gaps) {
			go(b, S_LIFE_REFRESH, now);
			return;
		}
	} else if (!res) {
		r->lifetime_measured = true;
		r->lifetime_dead_ms = b->opts.gaps_ms[b->gap];
	}
	/* An answer on Y itself: the server ignored RESPONSE-PORT, so the
	 * lifetime cannot be measured against it. */
	finish_step(b, NAT_STEP_LIFETIME, now);
	go(b, S_DONE, now);
}

static void step_result(struct nat_behavior *b, const struct stun_client_event *ev,
			unsigned sock, uint64_t now)
{
	const struct stun_client_result *res =
		ev && ev->type == STUN_CLIENT_SUCCESS ? &ev->result : NULL;

	b->txn = 0;
	switch (b->state) {
	case S_MAP1:
	case S_MAP2:
	case S_MAP3:
		mapping_result(b, res, now);
		break;
	case S_FILT2:
	case S_FILT3:
		filtering_result(b, res, now);
		break;
	case S_ALLOC:
		if (res)
			b->alloc_mapped[b->alloc_next] = res->mapped;
		b->alloc_next++;
		go(b, S_ALLOC, now);
		break;
	case S_LIFE_REFRESH:
	case S_LIFE_PROBE:
		lifetime_result(b, res, sock, now);
		break;
	}
}

void nat_behavior_start(struct nat_behavior *b, const struct nat_behavior_opts *opts, uint64_t now)
{
	memset(b, 0, sizeof(*b));
	b->opts = *opts;
	if (b->opts.n_socks > NAT_BEH_MAX_SOCKS)
		b->opts.n_socks = NAT_BEH_MAX_SOCKS;
	if (b->opts.n_gaps > NAT_BEH_MAX_GAPS)
		b->opts.n_gaps = NAT_BEH_MAX_GAPS;
	stun_client_init(&b->main, &b->opts.params, b->opts.rand, b->opts.rand_ctx);
	stun_client_init(&b->probe, &b->opts.probe, b->opts.rand, b->opts.rand_ctx);
	/* The STUN client fills in gnutls_rnd when rand is NULL; hairpin
	 * needs the same source. */
	b->opts.rand = b->main.rand;
	b->opts.rand_ctx = b->main.rand_ctx;
	b->report.server = opts->server;
	b->report.local = opts->local[0];
	b->report.hairpin = -1;
	b->alloc_next = 1;
	b->step_start = now;
	b->state = S_MAP1;
	b->wait_until = UINT64_MAX;
	request(b, 0, &opts->server, 0, 0, now);
}

bool nat_behavior_input(struct nat_behavior *b, unsigned sock, const uint8_t *buf, size_t len,
			const struct na_endpoint *from, uint64_t now)
{
	struct stun_client_event ev;
	struct stun_msg m;

	if (b->state == S_DONE)
		return false;
	if (b->state == S_HAIRPIN) {
		if (sock == 0 && stun_decode(&m, buf, len, 0) == STUN_OK &&
		    m.type == STUN_BINDING_REQUEST &&
		    !memcmp(m.txid, b->hairpin_txid, STUN_TXID_LEN)) {
			b->report.hairpin = 1;
			finish_step(b, NAT_STEP_HAIRPIN, now);
			go(b, S_ALLOC, now);
			return true;
		}
		return false;
	}
	if (!b->txn)
		return false;
	switch (stun_client_input(client_of(b), buf, len, from, now, &ev)) {
	case STUN_CLIENT_SUCCESS:
	case STUN_CLIENT_ERROR:
		step_result(b, &ev, sock, now);
		return true;
	default:
		return false;
	}
}

uint64_t nat_behavior_deadline(const struct nat_behavior *b)
{
	uint64_t d = b->wait_until;

	if (b->txn) {
		uint64_t c = stun_client_next_deadline(
			b->state == S_MAP1 || b->state == S_LIFE_REFRESH ? &b->main : &b->probe);
		if (c < d)
			d = c;
	}
	return b->state == S_DONE ? UINT64_MAX : d;
}

void nat_behavior_on_timer(struct nat_behavior *b, uint64_t now)
{
	struct stun_client_event ev;

	if (b->state == S_HAIRPIN && now >= b->wait_until) {
		resend_hairpin(b, now);
		return;
	}
	if (b->state == S_LIFE_WAIT && now >= b->wait_until) {
		go(b, S_LIFE_PROBE, now);
		return;
	}
	/* Bounded: each call does one due piece of work. */
	for (int i = 0; b->txn && i < 16; i++) {
		switch (stun_client_on_timer(client_of(b), now, &ev)) {
		case STUN_CLIENT_SEND:
			enqueue(b, b->sock, &ev.to, ev.data, ev.len);
			continue;
		case STUN_CLIENT_TIMEOUT:
		case STUN_CLIENT_ERROR:
			step_result(b, NULL, b->sock, now);
			return;
		default:
			return;
		}
	}
}

bool nat_behavior_done(const struct nat_behavior *b)
{
	return b->state == S_DONE;
}

const struct nat_report *nat_behavior_report(const struct nat_behavior *b)
{
	return &b->report;
}

const char *nat_mapping_name(enum nat_mapping m)
{
	switch (m) {
	case NAT_MAPPING_NONE: return "none (no NAT)";
	case NAT_MAPPING_EIM: return "endpoint-independent";
	case NAT_MAPPING_ADM: return "address-dependent";
	case NAT_MAPPING_APDM: return "address-and-port-dependent";
	default: return "unknown";
	}
}

const char *nat_filtering_name(enum nat_filtering f)
{
	switch (f) {
	case NAT_FILTERING_EIF: return "endpoint-independent";
	case NAT_FILTERING_ADF: return "address-dependent";
	case NAT_FILTERING_APDF: return "address-and-port-dependent";
	default: return "unknown";
	}
}

const char *nat_alloc_name(enum nat_alloc a)
{
	switch (a) {
	case NAT_ALLOC_PRESERVING: return "port-preserving";
	case NAT_ALLOC_SEQUENTIAL: return "sequential";
	case NAT_ALLOC_RANDOM: return "random";
	default: return "unknown";
	}
}

const char *nat_report_classic_name(const struct nat_report *r)
{
	if (r->mapping == NAT_MAPPING_NONE)
		return r->filtering == NAT_FILTERING_EIF ? "open internet" : "no NAT, firewalled";
	if (r->mapping == NAT_MAPPING_ADM || r->mapping == NAT_MAPPING_APDM)
		return "symmetric";
	if (r->mapping != NAT_MAPPING_EIM)
		return "unknown";
	switch (r->filtering) {
	case NAT_FILTERING_EIF: return "full cone";
	case NAT_FILTERING_ADF: return "restricted cone";
	case NAT_FILTERING_APDF: return "port-restricted cone";
	default: return "cone, filtering unknown";
	}
}
