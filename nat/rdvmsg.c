/* Codec of the rendezvous session's messages: see rdvmsg.h. */
#include "nat/rdvmsg.h"

#include <string.h>

#define ADDR_V4_LEN	8	/* family, reserved, port, 4 bytes */
#define ADDR_V6_LEN	20
#define CAND_EXTRA	5	/* type u8, priority u32 */
#define CONNECT_FIXED	(RDVMSG_KEY_LEN + 8 + 4 + RDVMSG_SECRET_LEN + 2 + 8 + 1 + 1)
#define SYNC_LEN	(RDVMSG_KEY_LEN + 8 + 4)
#define DIAL_FIXED	(8 + 1)	/* nonce u64, count u8 */

/* Body length bounds per type, indexed by type. */
static const struct { uint16_t min, max; } body_bounds[] = {
	[RDVMSG_REGISTER]	= { 2, 2 + RDVMSG_MAX_KEYS * RDVMSG_KEY_LEN },
	[RDVMSG_REGISTERED]	= { ADDR_V4_LEN, ADDR_V6_LEN },
	[RDVMSG_CONNECT]	= { CONNECT_FIXED, CONNECT_FIXED +
				    RDVMSG_MAX_CANDIDATES * (ADDR_V6_LEN + CAND_EXTRA) },
	[RDVMSG_SYNC]		= { SYNC_LEN, SYNC_LEN },
	[RDVMSG_ERROR]		= { 2, 2 + RDVMSG_MAX_REASON },
	[RDVMSG_PING]		= { 8, 8 },
	[RDVMSG_PONG]		= { 8, 8 },
	[RDVMSG_PRESENT]	= { RDVMSG_KEY_LEN, RDVMSG_KEY_LEN },
	[RDVMSG_NATINFO]	= { 3, 3 },
	[RDVMSG_DIALREQ]	= { DIAL_FIXED, DIAL_FIXED + RDVMSG_MAX_DIAL * ADDR_V6_LEN },
	[RDVMSG_DIALRESP]	= { DIAL_FIXED, DIAL_FIXED + RDVMSG_MAX_DIAL },
	[RDVMSG_UNREGISTER]	= { 2, 2 + RDVMSG_MAX_KEYS * RDVMSG_KEY_LEN },
};

_Static_assert(2 + RDVMSG_MAX_KEYS * RDVMSG_KEY_LEN <= RDVMSG_MAX_BODY,
	       "largest REGISTER must fit the body limit");
_Static_assert(RDVMSG_MAX_BODY <= UINT16_MAX, "body length is a u16");

static bool type_known(uint8_t t)
{
	return t >= RDVMSG_REGISTER && t <= RDVMSG_UNREGISTER;
}

const char *rdvmsg_type_name(uint8_t type)
{
	switch (type) {
	case RDVMSG_REGISTER:	return "REGISTER";
	case RDVMSG_REGISTERED:	return "REGISTERED";
	case RDVMSG_CONNECT:	return "CONNECT";
	case RDVMSG_SYNC:	return "SYNC";
	case RDVMSG_ERROR:	return "ERROR";
	case RDVMSG_PING:	return "PING";
	case RDVMSG_PONG:	return "PONG";
	case RDVMSG_PRESENT:	return "PRESENT";
	case RDVMSG_NATINFO:	return "NATINFO";
	case RDVMSG_DIALREQ:	return "DIALREQ";
	case RDVMSG_DIALRESP:	return "DIALRESP";
	case RDVMSG_UNREGISTER:	return "UNREGISTER";
	}
	return "unknown";
}

const char *rdvmsg_dial_status_name(uint8_t status)
{
	switch (status) {
	case RDVMSG_DIAL_DIALED:	return "dialed";
	case RDVMSG_DIAL_NOT_YOURS:	return "not the requester's address";
	case RDVMSG_DIAL_PRIVATE:	return "private or special-purpose address";
	case RDVMSG_DIAL_RATE_LIMITED:	return "rate limited";
	case RDVMSG_DIAL_UNAVAILABLE:	return "unavailable (no second address)";
	}
	return "unknown";
}

/* ---- writer ---- */

struct wr {
	uint8_t *p;
	size_t len, cap;
	bool bad;
};

static void put(struct wr *w, const void *src, size_t n)
{
	if (w->bad || w->cap - w->len < n) {
		w->bad = true;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void put8(struct wr *w, uint8_t v)
{
	put(w, &v, 1);
}

static void put16(struct wr *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(w, b, 2);
}

static void put32(struct wr *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	put(w, b, 4);
}

static void put64(struct wr *w, uint64_t v)
{
	put32(w, (uint32_t)(v >> 32));
	put32(w, (uint32_t)v);
}

static void put_ep(struct wr *w, const struct na_endpoint *ep)
{
	if (ep->port == 0) {
		w->bad = true;
		return;
	}
	if (ep->ip.family == AF_INET) {
		put8(w, 4);
		put8(w, 0);
		put16(w, ep->port);
		put(w, ep->ip.v4, 4);
	} else if (ep->ip.family == AF_INET6) {
		put8(w, 6);
		put8(w, 0);
		put16(w, ep->port);
		put(w, ep->ip.v6, 16);
	} else {
		w->bad = true;
	}
}

size_t rdvmsg_encode(const struct rdvmsg *m, uint8_t *buf, size_t cap)
{
	struct wr w = { .p = buf, .len = 0, .cap = cap, .bad = false };

	if (!type_known(m->type))
		return 0;
	put8(&w, m->type);
	put8(&w, 0);
	put16(&w, 0);	/* body length, patched below */

	switch (m->type) {
	case RDVMSG_REGISTER:
	case RDVMSG_UNREGISTER:
		if (m->reg.count > RDVMSG_MAX_KEYS)
			return 0;
		put16(&w, m->reg.count);
		put(&w, m->reg.keys, (size_t)m->reg.count * RDVMSG_KEY_LEN);
		break;
	case RDVMSG_REGISTERED:
		put_ep(&w, &m->registered.srflx);
		break;
	case RDVMSG_CONNECT:
		if (m->connect.count > RDVMSG_MAX_CANDIDATES ||
		    m->connect.mapping > RDVMSG_NAT_MAPPING_MAX ||
		    m->connect.filtering > RDVMSG_NAT_FILTERING_MAX || m->connect.answer > 1)
			return 0;
		put(&w, m->connect.key, RDVMSG_KEY_LEN);
		put64(&w, m->connect.attempt);
		put32(&w, m->connect.rtt_us);
		put(&w, m->connect.secret, RDVMSG_SECRET_LEN);
		put8(&w, m->connect.mapping);
		put8(&w, m->connect.filtering);
		put64(&w, m->connect.token);
		put8(&w, m->connect.answer);
		put8(&w, m->connect.count);
		for (unsigned i = 0; i < m->connect.count; i++) {
			const struct rdvmsg_candidate *c = &m->connect.cand[i];
			if (c->type > RDVMSG_CAND_STATIC)
				return 0;
			put_ep(&w, &c->ep);
			put8(&w, c->type);
			put32(&w, c->priority);
		}
		break;
	case RDVMSG_SYNC:
		put(&w, m->sync.key, RDVMSG_KEY_LEN);
		put64(&w, m->sync.attempt);
		put32(&w, m->sync.delay_us);
		break;
	case RDVMSG_ERROR:
		if (m->error.reason_len > RDVMSG_MAX_REASON ||
		    memchr(m->error.reason, 0, m->error.reason_len))
			return 0;
		put16(&w, m->error.code);
		put(&w, m->error.reason, m->error.reason_len);
		break;
	case RDVMSG_PING:
	case RDVMSG_PONG:
		put64(&w, m->ping.nonce);
		break;
	case RDVMSG_PRESENT:
		put(&w, m->present.key, RDVMSG_KEY_LEN);
		break;
	case RDVMSG_NATINFO:
		if (m->natinfo.mapping > RDVMSG_NAT_MAPPING_MAX ||
		    m->natinfo.filtering > RDVMSG_NAT_FILTERING_MAX)
			return 0;
		put8(&w, m->natinfo.mapping);
		put8(&w, m->natinfo.filtering);
		put8(&w, m->natinfo.services);
		break;
	case RDVMSG_DIALREQ:
		if (m->dialreq.count > RDVMSG_MAX_DIAL)
			return 0;
		put64(&w, m->dialreq.nonce);
		put8(&w, m->dialreq.count);
		for (unsigned i = 0; i < m->dialreq.count; i++)
			put_ep(&w, &m->dialreq.addr[i]);
		break;
	case RDVMSG_DIALRESP:
		if (m->dialresp.count > RDVMSG_MAX_DIAL)
			return 0;
		put64(&w, m->dialresp.nonce);
		put8(&w, m->dialresp.count);
		for (unsigned i = 0; i < m->dialresp.count; i++) {
			if (m->dialresp.status[i] > RDVMSG_DIAL_STATUS_MAX)
				return 0;
			put8(&w, m->dialresp.status[i]);
		}
		break;
	}
	if (w.bad)
		return 0;
	size_t body = w.len - RDVMSG_HEADER_LEN;
	buf[2] = (uint8_t)(body >> 8);
	buf[3] = (uint8_t)body;
	return w.len;
}

size_t rdvmsg_encode_ping(uint8_t *buf, size_t cap, bool pong, uint64_t nonce)
{
	struct rdvmsg m = { .type = pong ? RDVMSG_PONG : RDVMSG_PING };
	m.ping.nonce = nonce;
	return rdvmsg_encode(&m, buf, cap);
}

size_t rdvmsg_encode_error(uint8_t *buf, size_t cap, uint16_t code, const char *reason)
{
	struct rdvmsg m = { .type = RDVMSG_ERROR };
	size_t n = strnlen(reason, RDVMSG_MAX_REASON + 1);

	if (n > RDVMSG_MAX_REASON)
		return 0;
	m.error.code = code;
	m.error.reason_len = (uint8_t)n;
	memcpy(m.error.reason, reason, n);
	return rdvmsg_encode(&m, buf, cap);
}

/* ---- framing ---- */

ssize_t rdvmsg_frame(const uint8_t *buf, size_t len, size_t *need, const char **why)
{
	const char *dummy;
	size_t dneed;

	if (!why)
		why = &dummy;
	if (!need)
		need = &dneed;
	if (len >= 1 && !type_known(buf[0])) {
		*why = "unknown message type";
		return -1;
	}
	if (len >= 2 && buf[1] != 0) {
		*why = "flags set";
		return -1;
	}
	if (len < RDVMSG_HEADER_LEN) {
		*need = RDVMSG_HEADER_LEN;
		return 0;
	}
	size_t body = (size_t)buf[2] << 8 | buf[3];
	if (body > RDVMSG_MAX_BODY) {
		*why = "body too long";
		return -1;
	}
	if (body < body_bounds[buf[0]].min) {
		*why = "body too short for its type";
		return -1;
	}
	if (body > body_bounds[buf[0]].max) {
		*why = "body too long for its type";
		return -1;
	}
	if (len < RDVMSG_HEADER_LEN + body) {
		*need = RDVMSG_HEADER_LEN + body;
		return 0;
	}
	return (ssize_t)(RDVMSG_HEADER_LEN + body);
}

/* ---- reader ---- */

struct rd {
	const uint8_t *p;
	size_t len, off;
};

static bool take(struct rd *r, void *dst, size_t n)
{
	if (r->len - r->off < n)
		return false;
	memcpy(dst, r->p + r->off, n);
	r->off += n;
	return true;
}

static bool get8(struct rd *r, uint8_t *v)
{
	return take(r, v, 1);
}

static bool get16(struct rd *r, uint16_t *v)
{
	uint8_t b[2];
	if (!take(r, b, 2))
		return false;
	*v = (uint16_t)(b[0] << 8 | b[1]);
	return true;
}

static bool get32(struct rd *r, uint32_t *v)
{
	uint8_t b[4];
	if (!take(r, b, 4))
		return false;
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return true;
}

static bool get64(struct rd *r, uint64_t *v)
{
	uint32_t hi, lo;
	if (!get32(r, &hi) || !get32(r, &lo))
		return false;
	*v = (uint64_t)hi << 32 | lo;
	return true;
}

#define FAIL(msg) do { *why = (msg); return false; } while (0)

static bool get_ep(struct rd *r, struct na_endpoint *ep, const char **why)
{
	uint8_t fam, rsv;

	memset(ep, 0, sizeof(*ep));
	if (!get8(r, &fam) || !get8(r, &rsv) || !get16(r, &ep->port))
		FAIL("truncated address");
	if (rsv != 0)
		FAIL("address reserved byte set");
	if (fam == 4) {
		ep->ip.family = AF_INET;
		if (!take(r, ep->ip.v4, 4))
			FAIL("truncated IPv4 address");
	} else if (fam == 6) {
		ep->ip.family = AF_INET6;
		if (!take(r, ep->ip.v6, 16))
			FAIL("truncated IPv6 address");
	} else {
		FAIL("address family not 4 or 6");
	}
	if (ep->port == 0)
		FAIL("port zero");
	return true;
}

bool rdvmsg_decode(struct rdvmsg *m, const uint8_t *frame, size_t len, const char **why)
{
	const char *dummy;
	size_t need;

	if (!why)
		why = &dummy;
	ssize_t fl = rdvmsg_frame(frame, len, &need, why);
	if (fl < 0)
		return false;
	if (fl == 0)
		FAIL("truncated frame");
	if ((size_t)fl != len)
		FAIL("bytes after the frame");

	struct rd r = { .p = frame + RDVMSG_HEADER_LEN, .len = len - RDVMSG_HEADER_LEN, .off = 0 };
	m->type = frame[0];

	switch (m->type) {
	case RDVMSG_REGISTER:
	case RDVMSG_UNREGISTER:
		if (!get16(&r, &m->reg.count))
			FAIL("truncated REGISTER");
		if (m->reg.count > RDVMSG_MAX_KEYS)
			FAIL("too many keys");
		if (r.len - r.off != (size_t)m->reg.count * RDVMSG_KEY_LEN)
			FAIL("REGISTER length does not match key count");
		take(&r, m->reg.keys, (size_t)m->reg.count * RDVMSG_KEY_LEN);
		break;
	case RDVMSG_REGISTERED:
		if (!get_ep(&r, &m->registered.srflx, why))
			return false;
		break;
	case RDVMSG_CONNECT: {
		struct rdvmsg_connect *c = &m->connect;
		if (!take(&r, c->key, RDVMSG_KEY_LEN) || !get64(&r, &c->attempt) ||
		    !get32(&r, &c->rtt_us) || !take(&r, c->secret, RDVMSG_SECRET_LEN) ||
		    !get8(&r, &c->mapping) || !get8(&r, &c->filtering) ||
		    !get64(&r, &c->token) || !get8(&r, &c->answer) || !get8(&r, &c->count))
			FAIL("truncated CONNECT");
		if (c->mapping > RDVMSG_NAT_MAPPING_MAX || c->filtering > RDVMSG_NAT_FILTERING_MAX)
			FAIL("unknown NAT behaviour");
		if (c->answer > 1)
			FAIL("answer flag not 0 or 1");
		if (c->count > RDVMSG_MAX_CANDIDATES)
			FAIL("too many candidates");
		for (unsigned i = 0; i < c->count; i++) {
			struct rdvmsg_candidate *cd = &c->cand[i];
			if (!get_ep(&r, &cd->ep, why))
				return false;
			if (!get8(&r, &cd->type) || !get32(&r, &cd->priority))
				FAIL("truncated candidate");
			if (cd->type > RDVMSG_CAND_STATIC)
				FAIL("unknown candidate type");
		}
		break;
	}
	case RDVMSG_SYNC:
		if (!take(&r, m->sync.key, RDVMSG_KEY_LEN) || !get64(&r, &m->sync.attempt) ||
		    !get32(&r, &m->sync.delay_us))
			FAIL("truncated SYNC");
		break;
	case RDVMSG_ERROR: {
		size_t n;
		if (!get16(&r, &m->error.code))
			FAIL("truncated ERROR");
		n = r.len - r.off;
		if (n > RDVMSG_MAX_REASON)
			FAIL("reason too long");
		if (memchr(r.p + r.off, 0, n))
			FAIL("NUL in reason");
		m->error.reason_len = (uint8_t)n;
		take(&r, m->error.reason, n);
		m->error.reason[n] = '\0';
		break;
	}
	case RDVMSG_PING:
	case RDVMSG_PONG:
		if (!get64(&r, &m->ping.nonce))
			FAIL("truncated PING/PONG");
		break;
	case RDVMSG_PRESENT:
		if (!take(&r, m->present.key, RDVMSG_KEY_LEN))
			FAIL("truncated PRESENT");
		break;
	case RDVMSG_NATINFO:
		if (!get8(&r, &m->natinfo.mapping) || !get8(&r, &m->natinfo.filtering) ||
		    !get8(&r, &m->natinfo.services))
			FAIL("truncated NATINFO");
		if (m->natinfo.mapping > RDVMSG_NAT_MAPPING_MAX ||
		    m->natinfo.filtering > RDVMSG_NAT_FILTERING_MAX)
			FAIL("unknown NAT behaviour");
		break;
	case RDVMSG_DIALREQ:
		if (!get64(&r, &m->dialreq.nonce) || !get8(&r, &m->dialreq.count))
			FAIL("truncated DIALREQ");
		if (m->dialreq.count > RDVMSG_MAX_DIAL)
			FAIL("too many addresses");
		for (unsigned i = 0; i < m->dialreq.count; i++)
			if (!get_ep(&r, &m->dialreq.addr[i], why))
				return false;
		break;
	case RDVMSG_DIALRESP:
		if (!get64(&r, &m->dialresp.nonce) || !get8(&r, &m->dialresp.count))
			FAIL("truncated DIALRESP");
		if (m->dialresp.count > RDVMSG_MAX_DIAL)
			FAIL("too many statuses");
		if (r.len - r.off != m->dialresp.count)
			FAIL("DIALRESP length does not match its count");
		for (unsigned i = 0; i < m->dialresp.count; i++) {
			get8(&r, &m->dialresp.status[i]);
			if (m->dialresp.status[i] > RDVMSG_DIAL_STATUS_MAX)
				FAIL("unknown dial status");
		}
		break;
	}
	if (r.off != r.len)
		FAIL("trailing bytes in body");
	return true;
}

/* ---- relayed datagrams ---- */

void rdvmsg_relay_hdr(uint8_t out[RDVMSG_RELAY_HDR], const uint8_t key[RDVMSG_KEY_LEN])
{
	out[0] = RDVMSG_DGRAM_RELAY;
	memcpy(out + 1, key, RDVMSG_KEY_LEN);
}

bool rdvmsg_relay_parse(const uint8_t *d, size_t n, const uint8_t **key,
			const uint8_t **pkt, size_t *pkt_len)
{
	if (n <= RDVMSG_RELAY_HDR || d[0] != RDVMSG_DGRAM_RELAY)
		return false;
	*key = d + 1;
	*pkt = d + RDVMSG_RELAY_HDR;
	*pkt_len = n - RDVMSG_RELAY_HDR;
	return true;
}
