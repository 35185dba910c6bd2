/* AutoNAT: the client's addresses, requests, results and verdicts. See
 * autonat.h for the rules and the timers. */
#include "nat/autonat.h"

#include <string.h>

const char *autonat_reach_name(enum autonat_reach r)
{
	switch (r) {
	case AUTONAT_UNKNOWN: return "unknown";
	case AUTONAT_PUBLIC:  return "public";
	case AUTONAT_PRIVATE: return "private";
	}
	return "?";
}

void autonat_client_init(struct autonat_client *c)
{
	memset(c, 0, sizeof(*c));
}

static int find(const struct autonat_client *c, const struct na_endpoint *ep)
{
	for (int i = 0; i < AUTONAT_MAX_ADDRS; i++)
		if (c->addrs[i].owners && na_endpoint_equal(&c->addrs[i].ep, ep))
			return i;
	return -1;
}

const struct autonat_addr *autonat_client_find(const struct autonat_client *c,
					       const struct na_endpoint *ep)
{
	int i = find(c, ep);

	return i < 0 ? NULL : &c->addrs[i];
}

int autonat_client_watch(struct autonat_client *c, const struct na_endpoint *ep, uint32_t owner,
			 uint64_t now)
{
	int i = find(c, ep);

	if (!owner || !ep->port || (ep->ip.family != AF_INET && ep->ip.family != AF_INET6))
		return -1;
	if (i >= 0) {
		c->addrs[i].owners |= owner;
		return i;
	}
	for (i = 0; i < AUTONAT_MAX_ADDRS; i++) {
		struct autonat_addr *a = &c->addrs[i];

		if (a->owners)
			continue;
		memset(a, 0, sizeof(*a));
		a->ep = *ep;
		a->owners = owner;
		a->reach = AUTONAT_UNKNOWN;
		a->refused = AUTONAT_NO_REFUSAL;
		a->due = now;
		return i;
	}
	return -1;
}

bool autonat_client_unwatch(struct autonat_client *c, const struct na_endpoint *ep,
			    uint32_t owner)
{
	int i = find(c, ep);

	if (i < 0)
		return false;
	c->addrs[i].owners &= ~owner;
	if (c->addrs[i].owners)
		return false;
	/* Its slot may be reused while the request that asked about it is
	 * out: pending is clear, so that request's answers pass it by. */
	memset(&c->addrs[i], 0, sizeof(c->addrs[i]));
	return true;
}

void autonat_client_recheck(struct autonat_client *c, const struct na_endpoint *ep, uint64_t now)
{
	for (int i = 0; i < AUTONAT_MAX_ADDRS; i++) {
		struct autonat_addr *a = &c->addrs[i];

		if (!a->owners || (ep && !na_endpoint_equal(&a->ep, ep)))
			continue;
		/* Asked about right now: the answer may predate the change, so
		 * ask again as soon as it is in. */
		a->again = a->pending;
		a->due = now;
		a->unsettled = 0;
	}
}

void autonat_addr_agreement(const struct autonat_addr *a, unsigned *ok, unsigned *n)
{
	unsigned held = a->n_hist < AUTONAT_AGREE ? a->n_hist : AUTONAT_AGREE;

	*n = held;
	*ok = (unsigned)__builtin_popcount(a->hist & ((1u << held) - 1));
}

static void push(struct autonat_client *c, const struct autonat_event *ev)
{
	if (c->ev_len == AUTONAT_EVENTS) {
		c->ev_head = (c->ev_head + 1) % AUTONAT_EVENTS;
		c->ev_len--;
		c->events_lost++;
	}
	c->ev[(c->ev_head + c->ev_len) % AUTONAT_EVENTS] = *ev;
	c->ev_len++;
}

bool autonat_client_event(struct autonat_client *c, struct autonat_event *ev)
{
	if (!c->ev_len)
		return false;
	*ev = c->ev[c->ev_head];
	c->ev_head = (c->ev_head + 1) % AUTONAT_EVENTS;
	c->ev_len--;
	return true;
}

static void event(struct autonat_client *c, const struct autonat_addr *a, uint8_t kind,
		  uint8_t was)
{
	struct autonat_event ev = { .kind = kind, .ep = a->ep, .reach = a->reach, .was = was,
				    .status = a->refused, .arrived = a->hist & 1 };
	unsigned ok, n;

	autonat_addr_agreement(a, &ok, &n);
	ev.agree_ok = (uint8_t)ok;
	ev.agree_n = (uint8_t)n;
	push(c, &ev);
}

/* One check's outcome: the history, the 3-agreeing rule, the next check. */
static void result(struct autonat_client *c, struct autonat_addr *a, bool arrived, uint64_t now)
{
	uint8_t was = a->reach;
	unsigned ok, n;
	bool settled;

	a->pending = false;
	a->hist = (uint8_t)(a->hist << 1 | arrived);
	if (a->n_hist < 8)
		a->n_hist++;
	a->checked = now;
	a->refused = AUTONAT_NO_REFUSAL;
	c->results++;
	autonat_addr_agreement(a, &ok, &n);
	if (n == AUTONAT_AGREE && ok == AUTONAT_AGREE)
		a->reach = AUTONAT_PUBLIC;
	else if (n == AUTONAT_AGREE && ok == 0)
		a->reach = AUTONAT_PRIVATE;
	settled = n == AUTONAT_AGREE && ((a->reach == AUTONAT_PUBLIC && ok == AUTONAT_AGREE) ||
					 (a->reach == AUTONAT_PRIVATE && ok == 0));
	event(c, a, AUTONAT_EV_RESULT, was);
	if (a->reach != was)
		event(c, a, AUTONAT_EV_CHANGED, was);
	if (settled) {
		a->unsettled = 0;
		a->due = now + AUTONAT_RECHECK;
	} else {
		if (a->unsettled < UINT8_MAX)
			a->unsettled++;
		a->due = now + (a->unsettled < AUTONAT_BURST_MAX ? AUTONAT_BURST_GAP : AUTONAT_SLOW);
	}
	if (a->again)
		a->due = now;
	a->again = false;
}

static void refusal(struct autonat_client *c, struct autonat_addr *a, uint8_t status,
		    uint64_t now)
{
	a->pending = false;
	a->refused = status;
	c->refusals++;
	switch (status) {
	case RDVMSG_DIAL_PRIVATE:
		a->due = AUTONAT_NEVER; /* no server will: until the address changes */
		break;
	case RDVMSG_DIAL_RATE_LIMITED:
		a->due = now + AUTONAT_LIMITED_WAIT;
		break;
	default:
		a->due = now + AUTONAT_RECHECK;
		break;
	}
	if (a->again)
		a->due = now;
	a->again = false;
	event(c, a, AUTONAT_EV_REFUSED, a->reach);
}

/* The request's slot i, if it still stands for what was asked. */
static struct autonat_addr *asked(struct autonat_client *c, unsigned i)
{
	struct autonat_addr *a = &c->addrs[c->req.slot[i]];

	return a->owners && a->pending && na_endpoint_equal(&a->ep, &c->req.ep[i]) ? a : NULL;
}

static void finish_if_done(struct autonat_client *c)
{
	for (unsigned i = 0; i < c->req.count; i++)
		if (asked(c, i))
			return;
	c->req.active = false;
}

bool autonat_client_request(struct autonat_client *c, uint64_t now, uint64_t nonce,
			    const struct na_endpoint *server, struct rdvmsg_dialreq *out)
{
	bool taken[AUTONAT_MAX_ADDRS] = { false };
	struct autonat_req *r = &c->req;

	if (r->active)
		return false;
	memset(r, 0, sizeof(*r));
	while (r->count < RDVMSG_MAX_DIAL) {
		int best = -1;

		for (int i = 0; i < AUTONAT_MAX_ADDRS; i++) {
			const struct autonat_addr *a = &c->addrs[i];

			if (a->owners && !taken[i] && a->due <= now &&
			    (best < 0 || a->due < c->addrs[best].due))
				best = i;
		}
		if (best < 0)
			break;
		taken[best] = true;
		r->slot[r->count] = (uint8_t)best;
		r->ep[r->count] = c->addrs[best].ep;
		r->count++;
	}
	if (!r->count)
		return false;
	r->active = true;
	r->nonce = nonce;
	r->server = *server;
	r->deadline = now + AUTONAT_RESP_TIMEOUT;
	memset(out, 0, sizeof(*out));
	out->nonce = nonce;
	out->count = r->count;
	for (unsigned i = 0; i < r->count; i++) {
		struct autonat_addr *a = &c->addrs[r->slot[i]];

		a->pending = true;
		a->dialed = a->arrived = false;
		out->addr[i] = a->ep;
	}
	c->requests++;
	return true;
}

bool autonat_client_response(struct autonat_client *c, const struct rdvmsg_dialresp *m,
			     uint64_t now)
{
	struct autonat_req *r = &c->req;

	if (!r->active || r->answered || m->nonce != r->nonce || m->count != r->count)
		return false;
	r->answered = true;
	r->deadline = now + AUTONAT_WAIT;
	for (unsigned i = 0; i < r->count; i++) {
		struct autonat_addr *a = asked(c, i);

		if (!a)
			continue;
		a->answered = now;
		if (m->status[i] != RDVMSG_DIAL_DIALED)
			refusal(c, a, m->status[i], now);
		else if (a->arrived)
			result(c, a, true, now);
		else
			a->dialed = true;
	}
	finish_if_done(c);
	return true;
}

bool autonat_client_dialback(struct autonat_client *c, uint64_t nonce, uint8_t index,
			     const struct na_endpoint *from, uint64_t now)
{
	struct autonat_req *r = &c->req;
	struct autonat_addr *a;

	if (!r->active || nonce != r->nonce || index >= r->count)
		return false;
	/* Our NAT lets the server's own address in: that proves nothing. */
	if (na_endpoint_equal(from, &r->server))
		return true;
	a = asked(c, index);
	if (!a || a->arrived)
		return true;
	a->arrived = true;
	if (r->answered && a->dialed) {
		result(c, a, true, now);
		finish_if_done(c);
	}
	return true;
}

void autonat_client_abandon(struct autonat_client *c, uint64_t now)
{
	struct autonat_req *r = &c->req;

	/* Once answered, the dial-backs need no session: keep waiting. */
	if (!r->active || r->answered)
		return;
	for (unsigned i = 0; i < r->count; i++) {
		struct autonat_addr *a = asked(c, i);

		if (a) {
			a->pending = false;
			a->due = now + AUTONAT_BURST_GAP;
		}
	}
	r->active = false;
}

void autonat_client_tick(struct autonat_client *c, uint64_t now)
{
	struct autonat_req *r = &c->req;

	if (!r->active || now < r->deadline)
		return;
	if (!r->answered) {
		autonat_client_abandon(c, now);
		return;
	}
	for (unsigned i = 0; i < r->count; i++) {
		struct autonat_addr *a = asked(c, i);

		if (a && a->dialed)
			result(c, a, false, now);
	}
	r->active = false;
}

uint64_t autonat_client_deadline(const struct autonat_client *c, bool can_request)
{
	uint64_t d = AUTONAT_NEVER;

	if (c->req.active)
		return c->req.deadline;
	if (!can_request)
		return d;
	for (int i = 0; i < AUTONAT_MAX_ADDRS; i++)
		if (c->addrs[i].owners && c->addrs[i].due < d)
			d = c->addrs[i].due;
	return d;
}
