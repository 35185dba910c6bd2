/* PCP and NAT-PMP mapping client; see pmp.h for the behaviour and timers.
 *
 * One request is current at a time (p->req): PCP MAP, NAT-PMP address or
 * NAT-PMP map. A "sequence" is one request with its retransmissions; it
 * starts at seq_start, gives up at give_up, and each send sets next_send.
 * MAPPED reuses next_send for the renewal schedule and DELETING for the
 * delete's tries, so pmp_deadline() is a min() over a few fields. */
#include "nat/pmp.h"

#include <string.h>

#define NS 1000000000ull
#define MS 1000000ull

#define PCP_VERSION      2
#define PCP_OP_ANNOUNCE  0
#define PCP_OP_MAP       1
#define PCP_R            0x80
#define PCP_HDR_LEN      24
#define PCP_MAP_LEN      60
#define PCP_MAX_LEN      1100
#define PCP_IRT          (3 * NS)
#define PCP_MRT          (1024 * NS)
#define PCP_ERR_MIN      (3 * NS)     /* an error lifetime shorter: retry after IRT */
#define PCP_ERR_MAX      (1800 * NS)
#define PCP_UNSUPP_VERSION 1

#define NATPMP_OP_ADDR   0
#define NATPMP_OP_UDP    1
#define NATPMP_R         0x80
#define NATPMP_IRT       (250 * MS)
#define NATPMP_MAX_SENDS 9
#define NATPMP_LAST_WAIT (64 * NS)
#define NATPMP_RETRY     (30 * NS)   /* RFC 6886 gives errors no lifetime */

#define RENEW_GAP        (4 * NS)
#define DELETE_TRIES     3
#define DELETE_FIRST     (250 * MS)
#define DELETE_END       (1750 * MS)
#define DEFAULT_LIFETIME 7200
#define DEFAULT_STARTUP  (9 * NS)
#define IPPROTO_UDP_NUM  17

enum { REQ_NONE, REQ_PCP_MAP, REQ_NATPMP_ADDR, REQ_NATPMP_MAP };
enum { ANN_PCP = 1, ANN_NATPMP = 2 };

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint16_t rd16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

static uint32_t rd32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void wr16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

static void wr32(uint8_t *b, uint32_t v)
{
	wr16(b, (uint16_t)(v >> 16));
	wr16(b + 2, (uint16_t)v);
}

/* PCP carries every address in 16 bytes, IPv4 as ::ffff:a.b.c.d. */
static void wr_ip16(uint8_t *b, const struct na_ip *ip)
{
	memset(b, 0, 16);
	if (ip->family == AF_INET6) {
		memcpy(b, ip->v6, 16);
	} else {
		b[10] = b[11] = 0xff;
		if (ip->family == AF_INET)
			memcpy(b + 12, ip->v4, 4);
	}
}

static struct na_ip rd_ip16(const uint8_t *b)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct na_ip ip = { 0 };

	if (!memcmp(b, mapped, sizeof(mapped))) {
		ip.family = AF_INET;
		memcpy(ip.v4, b + 12, 4);
	} else {
		ip.family = AF_INET6;
		memcpy(ip.v6, b, 16);
	}
	return ip;
}

static bool ip_unspecified(const struct na_ip *ip)
{
	static const uint8_t zero[16];

	return !memcmp(ip->family == AF_INET ? ip->v4 : ip->v6, zero,
		       ip->family == AF_INET ? 4 : 16);
}

static uint16_t rand16(struct pmp *p)
{
	uint8_t b[2];

	p->prm.rand(p->prm.rand_ctx, b, sizeof(b));
	return rd16(b);
}

/* (1 + RAND) x base, RAND uniform in [-0.1, +0.1] (RFC 6887 8.1.1). */
static uint64_t pcp_jitter(struct pmp *p, uint64_t base)
{
	if (!p->prm.rand)
		return base;
	int64_t r = (int64_t)rand16(p) * 2 - 65535;
	return (uint64_t)((int64_t)base + (int64_t)(base / 10) * r / 65535);
}

/* Uniform in [0, n). */
static uint64_t rand_below(struct pmp *p, uint64_t n)
{
	if (!p->prm.rand || !n)
		return 0;
	uint64_t u = rand16(p);
	return (n >> 16) * u + (((n & 0xffff) * u) >> 16);
}

/* ---- names ---- */

const char *pmp_proto_name(enum pmp_proto p)
{
	switch (p) {
	case PMP_PROTO_NONE:   return "none";
	case PMP_PROTO_PCP:    return "pcp";
	case PMP_PROTO_NATPMP: return "natpmp";
	}
	return "unknown";
}

const char *pmp_state_name(enum pmp_state s)
{
	switch (s) {
	case PMP_IDLE:       return "idle";
	case PMP_REQUESTING: return "requesting";
	case PMP_MAPPED:     return "mapped";
	case PMP_FAILED:     return "failed";
	case PMP_LOST:       return "lost";
	case PMP_DELETING:   return "deleting";
	case PMP_DELETED:    return "deleted";
	}
	return "unknown";
}

const char *pmp_input_result_name(enum pmp_input_result r)
{
	static const char *const names[] = {
		[PMP_IN_NOT_OURS] = "not ours", [PMP_IN_BAD] = "bad",
		[PMP_IN_STALE] = "stale", [PMP_IN_ADDRESS] = "address",
		[PMP_IN_MAPPED] = "mapped", [PMP_IN_RENEWED] = "renewed",
		[PMP_IN_ERROR] = "error", [PMP_IN_FALLBACK] = "fallback",
		[PMP_IN_RESTARTED] = "gateway restarted", [PMP_IN_ANNOUNCE] = "announce",
		[PMP_IN_DELETED] = "deleted",
	};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

/* Name, why (for pmp_reason()), and whether the error passes (RFC 6887 7.4
 * calls these "short lifetime"; RFC 6886 3.5 names no lifetimes, and the
 * same two kinds of condition are the ones that can pass). */
struct result_info {
	const char *name, *why;
	bool passes;
};

static const struct result_info pcp_results[] = {
	{ "SUCCESS", NULL, false },
	{ "UNSUPP_VERSION", "PCP UNSUPP_VERSION: the gateway does not speak PCP version 2", false },
	{ "NOT_AUTHORIZED", "PCP NOT_AUTHORIZED: the gateway's policy refuses this mapping", false },
	{ "MALFORMED_REQUEST", "PCP MALFORMED_REQUEST: the gateway could not parse our request", false },
	{ "UNSUPP_OPCODE", "PCP UNSUPP_OPCODE: the gateway does not support MAP", false },
	{ "UNSUPP_OPTION", "PCP UNSUPP_OPTION: the gateway lacks a mandatory option", false },
	{ "MALFORMED_OPTION", "PCP MALFORMED_OPTION: the gateway could not parse an option", false },
	{ "NETWORK_FAILURE", "PCP NETWORK_FAILURE: the gateway has no working external network yet", true },
	{ "NO_RESOURCES", "PCP NO_RESOURCES: the gateway cannot create mappings now", true },
	{ "UNSUPP_PROTOCOL", "PCP UNSUPP_PROTOCOL: the gateway does not map UDP", false },
	{ "USER_EX_QUOTA", "PCP USER_EX_QUOTA: our mapping quota at the gateway is used up", true },
	{ "CANNOT_PROVIDE_EXTERNAL", "PCP CANNOT_PROVIDE_EXTERNAL: the suggested external address or port is not available", true },
	{ "ADDRESS_MISMATCH", "PCP ADDRESS_MISMATCH: the gateway sees another source address than ours (a NAT in between?)", false },
	{ "EXCESSIVE_REMOTE_PEERS", "PCP EXCESSIVE_REMOTE_PEERS: the gateway cannot create the filters", false },
};

static const struct result_info natpmp_results[] = {
	{ "Success", NULL, false },
	{ "Unsupported Version", "NAT-PMP Unsupported Version: the gateway does not speak NAT-PMP version 0", false },
	{ "Not Authorized/Refused", "NAT-PMP Not Authorized/Refused: port mapping is disabled on the gateway", false },
	{ "Network Failure", "NAT-PMP Network Failure: the gateway has no external address yet", true },
	{ "Out of resources", "NAT-PMP Out of resources: the gateway cannot create mappings now", true },
	{ "Unsupported opcode", "NAT-PMP Unsupported opcode: the gateway does not map UDP", false },
};

static const struct result_info *result_info(enum pmp_proto proto, unsigned code)
{
	static const struct result_info unknown_pcp = {
		"unknown", "PCP error result that RFC 6887 does not define", false };
	static const struct result_info unknown_natpmp = {
		"unknown", "NAT-PMP error result that RFC 6886 does not define", false };
	static const struct result_info unknown = { "unknown", "unknown error", false };
	size_t n_pcp = sizeof(pcp_results) / sizeof(pcp_results[0]);
	size_t n_natpmp = sizeof(natpmp_results) / sizeof(natpmp_results[0]);

	if (proto == PMP_PROTO_PCP)
		return code < n_pcp ? &pcp_results[code] : &unknown_pcp;
	if (proto == PMP_PROTO_NATPMP)
		return code < n_natpmp ? &natpmp_results[code] : &unknown_natpmp;
	return &unknown;
}

const char *pmp_result_name(enum pmp_proto proto, unsigned code)
{
	return result_info(proto, code)->name;
}

/* ---- sequences and states ---- */

static bool allowed(const struct pmp *p, unsigned what)
{
	return p->prm.protocols & what;
}

static void seq_begin(struct pmp *p, uint8_t req, uint64_t at)
{
	p->req = req;
	p->next_send = at;
	p->sends = 0;
	p->rt = 0;
	p->seq_start = at;
	p->give_up = add_sat(at, p->prm.startup);
	p->outstanding = false;
}

static void stop(struct pmp *p, enum pmp_state s)
{
	p->state = s;
	p->next_send = p->give_up = UINT64_MAX;
	p->outstanding = false;
	p->map.renew = UINT64_MAX;
}

static void fail(struct pmp *p, const char *why)
{
	p->reason = why;
	stop(p, p->had_mapping ? PMP_LOST : PMP_FAILED);
}

/* Ask for the mapping: from scratch (PCP first, its silence may fall back
 * again) or again with the protocol that was in use. */
static void request(struct pmp *p, uint64_t now, bool scratch)
{
	if (scratch || p->proto == PMP_PROTO_NONE) {
		p->proto = allowed(p, PMP_ALLOW_PCP) ? PMP_PROTO_PCP : PMP_PROTO_NATPMP;
		p->pcp_heard = p->heard = false;
	}
	p->state = PMP_REQUESTING;
	p->map.renew = UINT64_MAX;
	seq_begin(p, p->proto == PMP_PROTO_PCP ? REQ_PCP_MAP : REQ_NATPMP_ADDR, now);
}

static bool silence_fallback_due(const struct pmp *p)
{
	return p->state == PMP_REQUESTING && p->proto == PMP_PROTO_PCP && !p->pcp_heard &&
	       p->sends > 0 && allowed(p, PMP_ALLOW_NATPMP);
}

static uint64_t fallback_at(const struct pmp *p)
{
	return add_sat(p->seq_start, p->prm.startup / 2);
}

/* RFC 6887 11.2.1's windows, the first that opens at or after not_before;
 * none at or past expiry. */
static void schedule_renewal(struct pmp *p, uint64_t not_before)
{
	uint64_t g = p->map.granted, life = p->map.expires - g;

	p->next_send = UINT64_MAX;
	for (unsigned k = p->renew_try; k < 62 && !p->renew_stopped; k++) {
		uint64_t base = g + (life - (life >> (k + 1)));
		if (base >= p->map.expires)
			break;
		if (base < not_before)
			continue;
		p->renew_try = k;
		p->next_send = base + rand_below(p, life >> (k + 3));
		break;
	}
	p->map.renew = p->next_send;
}

/* ---- requests ---- */

static void suggestion(const struct pmp *p, struct na_endpoint *s)
{
	if (p->had_mapping) {
		*s = p->map.external;
		return;
	}
	memset(s, 0, sizeof(*s));
	s->port = p->prm.external_port;
	if (p->prm.client.family == AF_INET6)
		s->ip = p->prm.client; /* a pinhole: the address is ours */
	else
		s->ip.family = AF_INET; /* 0.0.0.0: no preference */
}

static size_t encode(const struct pmp *p, uint8_t *b)
{
	bool del = p->state == PMP_DELETING;
	uint32_t life = del ? 0 : p->prm.lifetime;
	struct na_endpoint s;

	suggestion(p, &s);
	switch (p->req) {
	case REQ_NATPMP_ADDR:
		b[0] = 0;
		b[1] = NATPMP_OP_ADDR;
		return 2;
	case REQ_NATPMP_MAP:
		b[0] = 0;
		b[1] = NATPMP_OP_UDP;
		b[2] = b[3] = 0;
		wr16(b + 4, p->prm.internal_port);
		wr16(b + 6, del ? 0 : s.port); /* RFC 6886 3.4: zero to delete */
		wr32(b + 8, life);
		return 12;
	case REQ_PCP_MAP:
		memset(b, 0, PCP_MAP_LEN);
		b[0] = PCP_VERSION;
		b[1] = PCP_OP_MAP;
		wr32(b + 4, life);
		wr_ip16(b + 8, &p->prm.client);
		memcpy(b + 24, p->nonce, PMP_NONCE_LEN);
		b[36] = IPPROTO_UDP_NUM;
		wr16(b + 40, p->prm.internal_port);
		wr16(b + 42, s.port);
		wr_ip16(b + 44, &s.ip);
		return PCP_MAP_LEN;
	}
	return 0;
}

/* When the request after this one goes, were it unanswered. */
static void after_send(struct pmp *p, uint64_t now)
{
	p->sends++;
	p->last_send = now;
	p->sent_any = p->outstanding = true;
	switch (p->state) {
	case PMP_REQUESTING:
		if (p->req == REQ_PCP_MAP) {
			p->rt = pcp_jitter(p, p->sends == 1 ? PCP_IRT : min_u64(2 * p->rt, PCP_MRT));
			p->next_send = add_sat(now, p->rt);
		} else if (p->sends < NATPMP_MAX_SENDS) {
			p->rt = p->sends == 1 ? NATPMP_IRT : 2 * p->rt;
			p->next_send = add_sat(now, p->rt);
		} else {
			p->next_send = UINT64_MAX;
			p->give_up = min_u64(p->give_up, add_sat(now, NATPMP_LAST_WAIT));
		}
		break;
	case PMP_MAPPED:
		schedule_renewal(p, add_sat(now, RENEW_GAP));
		break;
	case PMP_DELETING:
		p->next_send = p->sends < DELETE_TRIES ?
			add_sat(now, DELETE_FIRST << (p->sends - 1)) : UINT64_MAX;
		break;
	default:
		p->next_send = UINT64_MAX;
	}
}

static const char *silence_reason(const struct pmp *p)
{
	if (p->had_mapping || p->heard)
		return "the gateway stopped answering";
	if (p->proto == PMP_PROTO_PCP)
		return "no answer from the gateway to PCP";
	if (allowed(p, PMP_ALLOW_PCP))
		return "no answer from the gateway to PCP or NAT-PMP";
	return "no answer from the gateway to NAT-PMP";
}

static void run_timers(struct pmp *p, uint64_t now)
{
	switch (p->state) {
	case PMP_REQUESTING:
		if (silence_fallback_due(p) && now >= fallback_at(p)) {
			/* The rest of the bound is NAT-PMP's: give_up stays. */
			p->proto = PMP_PROTO_NATPMP;
			p->req = REQ_NATPMP_ADDR;
			p->next_send = now;
			p->sends = 0;
			p->outstanding = false;
		}
		if (now >= p->give_up)
			fail(p, silence_reason(p));
		break;
	case PMP_MAPPED:
		if (now >= p->map.expires)
			fail(p, p->err_since_grant ? p->reason
				: "renewals went unanswered until the mapping expired");
		break;
	case PMP_DELETING:
		if (now >= p->give_up) {
			p->reason = "the delete went unanswered; the mapping will expire";
			stop(p, PMP_DELETED);
		}
		break;
	default:
		break;
	}
}

size_t pmp_next(struct pmp *p, uint64_t now, uint8_t *buf, size_t cap)
{
	uint8_t msg[PMP_MAX_MSG];

	run_timers(p, now);
	if (p->state != PMP_REQUESTING && p->state != PMP_MAPPED && p->state != PMP_DELETING)
		return 0;
	if (p->next_send > now)
		return 0;
	size_t n = encode(p, msg);
	after_send(p, now);
	if (cap < PMP_MAX_MSG || !buf)
		return 0;
	memcpy(buf, msg, n);
	return n;
}

uint64_t pmp_deadline(const struct pmp *p)
{
	switch (p->state) {
	case PMP_REQUESTING: {
		uint64_t d = min_u64(p->next_send, p->give_up);
		return silence_fallback_due(p) ? min_u64(d, fallback_at(p)) : d;
	}
	case PMP_MAPPED:
		return min_u64(p->next_send, p->map.expires);
	case PMP_DELETING:
		return min_u64(p->next_send, p->give_up);
	default:
		return UINT64_MAX;
	}
}

/* ---- responses ---- */

static enum pmp_input_result bad(struct pmp *p, const char *why)
{
	p->dropped = why;
	return PMP_IN_BAD;
}

/* True when the epoch says the gateway lost its state. PCP's rule is RFC
 * 6887 8.5's; NAT-PMP's is RFC 6886 3.6's, which only looks backwards. */
static bool epoch_restarted(struct pmp *p, uint32_t epoch, uint64_t now, bool pcp)
{
	bool restarted = false;

	if (p->have_epoch) {
		uint64_t elapsed = now > p->epoch_at ? now - p->epoch_at : 0;
		int64_t cd = (int64_t)min_u64(elapsed, (uint64_t)1 << 62);
		int64_t sd = ((int64_t)epoch - (int64_t)p->epoch) * (int64_t)NS;
		int64_t two = 2 * (int64_t)NS;
		if (pcp)
			restarted = (int64_t)epoch < (int64_t)p->epoch - 1 ||
				    cd + two < sd - sd / 16 || sd + two < cd - cd / 16;
		else
			restarted = sd + two < cd - cd / 8;
	}
	p->have_epoch = p->heard = true;
	p->epoch = epoch;
	p->epoch_at = now;
	return restarted;
}

static enum pmp_input_result restarted(struct pmp *p, uint64_t now)
{
	p->restarts++;
	switch (p->state) {
	case PMP_MAPPED:
	case PMP_REQUESTING:
		request(p, now, false);
		break;
	case PMP_FAILED:
	case PMP_LOST:
		request(p, now, true);
		break;
	case PMP_DELETING:
		stop(p, PMP_DELETED); /* whatever we had is gone with it */
		break;
	default:
		break;
	}
	return PMP_IN_RESTARTED;
}

static enum pmp_input_result error(struct pmp *p, enum pmp_proto proto, unsigned code,
				   uint32_t lifetime, uint64_t now)
{
	const struct result_info *ri = result_info(proto, code);
	uint64_t wait = NATPMP_RETRY;

	if (proto == PMP_PROTO_PCP) {
		wait = (uint64_t)lifetime * NS;
		wait = wait < PCP_ERR_MIN ? PCP_ERR_MIN : wait > PCP_ERR_MAX ? PCP_ERR_MAX : wait;
	}
	p->outstanding = false;
	p->result_proto = proto;
	p->result_code = (uint16_t)code;
	p->result_lifetime = lifetime;
	p->reason = ri->why;
	switch (p->state) {
	case PMP_REQUESTING:
		if (ri->passes)
			seq_begin(p, p->req, add_sat(now, wait));
		else
			fail(p, ri->why);
		break;
	case PMP_MAPPED: {
		uint64_t nb = add_sat(now, wait), gap = add_sat(p->last_send, RENEW_GAP);
		p->err_since_grant = true;
		p->renew_stopped |= !ri->passes;
		schedule_renewal(p, nb > gap ? nb : gap);
		break;
	}
	case PMP_DELETING:
		stop(p, PMP_DELETED);
		break;
	default:
		break;
	}
	return PMP_IN_ERROR;
}

static enum pmp_input_result grant(struct pmp *p, enum pmp_proto proto, const struct na_ip *ip,
				   uint16_t port, uint32_t lifetime, uint64_t now)
{
	struct na_endpoint ext = { .ip = *ip, .port = port };
	bool fresh = p->state != PMP_MAPPED || p->map.proto != proto ||
		     !na_endpoint_equal(&ext, &p->map.external);

	p->state = PMP_MAPPED;
	p->had_mapping = true;
	p->outstanding = p->renew_stopped = p->err_since_grant = false;
	p->give_up = UINT64_MAX;
	p->req = proto == PMP_PROTO_PCP ? REQ_PCP_MAP : REQ_NATPMP_MAP;
	p->map.proto = proto;
	p->map.external = ext;
	p->map.internal_port = p->prm.internal_port;
	p->map.lifetime = lifetime;
	p->map.granted = now;
	p->map.expires = add_sat(now, (uint64_t)lifetime * NS);
	p->renew_try = 0;
	schedule_renewal(p, add_sat(p->last_send, RENEW_GAP));
	return fresh ? PMP_IN_MAPPED : PMP_IN_RENEWED;
}

/* A valid announcement of either protocol. ext: NAT-PMP's external address. */
static enum pmp_input_result announce(struct pmp *p, uint8_t kind, uint32_t epoch,
				      const struct na_ip *ext, uint64_t now)
{
	bool restart = epoch_restarted(p, epoch, now, kind == ANN_PCP);
	int64_t start = (int64_t)now - (int64_t)epoch * (int64_t)NS;
	int64_t drift = start - p->ann_start;
	int64_t slack = 2 * (int64_t)NS + (int64_t)(min_u64(now - p->ann_at, (uint64_t)1 << 62) / 16);
	struct na_ip none = { 0 };
	bool repeat = p->ann_seen && p->ann_kind == kind && drift <= slack && -drift <= slack &&
		      na_ip_equal(ext ? ext : &none, &p->ann_ext);

	p->ann_seen = true;
	p->ann_kind = kind;
	p->ann_start = start;
	p->ann_at = now;
	p->ann_ext = ext ? *ext : none;
	if (kind == ANN_PCP)
		p->pcp_heard = true;
	else
		p->natpmp_ext = *ext;
	if (restart)
		return restarted(p, now);
	if (repeat)
		return PMP_IN_ANNOUNCE;
	switch (p->state) {
	case PMP_MAPPED:
		if (!p->renew_stopped)
			p->next_send = p->map.renew = now;
		break;
	case PMP_REQUESTING:
		seq_begin(p, p->req, now);
		break;
	case PMP_FAILED:
	case PMP_LOST:
		request(p, now, true);
		break;
	default:
		break;
	}
	return PMP_IN_ANNOUNCE;
}

/* Gateway answers that it speaks no PCP we know. */
static enum pmp_input_result version_fallback(struct pmp *p, uint64_t now, const char *why)
{
	if (p->state != PMP_REQUESTING)
		return PMP_IN_STALE;
	if (!allowed(p, PMP_ALLOW_NATPMP)) {
		p->result_proto = PMP_PROTO_PCP;
		p->result_code = PCP_UNSUPP_VERSION;
		p->result_lifetime = 0;
		fail(p, why);
		return PMP_IN_ERROR;
	}
	p->proto = PMP_PROTO_NATPMP;
	p->heard = true;
	seq_begin(p, REQ_NATPMP_ADDR, now);
	return PMP_IN_FALLBACK;
}

static enum pmp_input_result natpmp_input(struct pmp *p, const uint8_t *b, size_t len,
					  uint64_t now)
{
	if (!(b[1] & NATPMP_R))
		return bad(p, "a NAT-PMP request, not a response");
	if (len < 8)
		return bad(p, "NAT-PMP response shorter than 8 bytes");
	uint16_t rc = rd16(b + 2);
	uint32_t epoch = rd32(b + 4);

	if (b[1] == (NATPMP_R | PCP_OP_MAP) && rc == PCP_UNSUPP_VERSION && p->proto == PMP_PROTO_PCP) {
		if (p->state != PMP_REQUESTING)
			return PMP_IN_STALE;
		epoch_restarted(p, epoch, now, false); /* seeds it; we start afresh anyway */
		return version_fallback(p, now, "the gateway answers PCP in NAT-PMP, which is not allowed");
	}
	if (b[1] == (NATPMP_R | NATPMP_OP_ADDR)) {
		if (rc == 0 && len != 12)
			return bad(p, "NAT-PMP address response not 12 bytes");
		struct na_ip ext = { .family = AF_INET };
		if (rc == 0) {
			memcpy(ext.v4, b + 8, 4);
			if (ip_unspecified(&ext))
				return bad(p, "NAT-PMP address response without an address");
		}
		bool answer = p->state == PMP_REQUESTING && p->proto == PMP_PROTO_NATPMP &&
			      p->req == REQ_NATPMP_ADDR && p->outstanding;
		if (!answer) {
			if (rc)
				return bad(p, "NAT-PMP announcement with an error result");
			return announce(p, ANN_NATPMP, epoch, &ext, now);
		}
		if (epoch_restarted(p, epoch, now, false))
			return restarted(p, now);
		if (rc)
			return error(p, PMP_PROTO_NATPMP, rc, 0, now);
		p->natpmp_ext = ext;
		seq_begin(p, REQ_NATPMP_MAP, now);
		return PMP_IN_ADDRESS;
	}
	if (b[1] != (NATPMP_R | NATPMP_OP_UDP))
		return bad(p, "NAT-PMP response to an opcode we did not send");
	if (rc == 0 && len != 16)
		return bad(p, "NAT-PMP map response not 16 bytes");
	/* Several mappings may share the socket: the internal port says whose. */
	if (len >= 16 && rd16(b + 8) != p->prm.internal_port)
		return PMP_IN_NOT_OURS;
	if (p->proto != PMP_PROTO_NATPMP || !p->outstanding || p->req != REQ_NATPMP_MAP)
		return PMP_IN_STALE;
	if (epoch_restarted(p, epoch, now, false))
		return restarted(p, now);
	if (rc)
		return error(p, PMP_PROTO_NATPMP, rc, 0, now);
	uint16_t port = rd16(b + 10);
	uint32_t life = rd32(b + 12);
	if (p->state == PMP_DELETING) {
		if (life)
			return PMP_IN_STALE; /* a late answer to a renewal */
		stop(p, PMP_DELETED);
		return PMP_IN_DELETED;
	}
	if (!life || !port)
		return bad(p, "NAT-PMP mapping without a lifetime or an external port");
	return grant(p, PMP_PROTO_NATPMP, &p->natpmp_ext, port, life, now);
}

static bool pcp_options_ok(const uint8_t *b, size_t len)
{
	while (len >= 4) {
		size_t padded = ((size_t)rd16(b + 2) + 3) & ~(size_t)3;
		if (padded > len - 4)
			return false;
		b += 4 + padded;
		len -= 4 + padded;
	}
	return len == 0;
}

static enum pmp_input_result pcp_input(struct pmp *p, const uint8_t *b, size_t len,
				       uint64_t now)
{
	if (len < PCP_HDR_LEN)
		return bad(p, "PCP response shorter than 24 bytes");
	if (len % 4)
		return bad(p, "PCP response length not a multiple of 4");
	if (len > PCP_MAX_LEN)
		return bad(p, "PCP response longer than 1100 bytes");
	if (!(b[1] & PCP_R))
		return bad(p, "a PCP request, not a response");
	uint8_t op = b[1] & 0x7f, rc = b[3];
	uint32_t life = rd32(b + 4), epoch = rd32(b + 8);

	if (op == PCP_OP_ANNOUNCE) {
		if (rc)
			return bad(p, "PCP ANNOUNCE with an error result");
		if (!pcp_options_ok(b + PCP_HDR_LEN, len - PCP_HDR_LEN))
			return bad(p, "malformed PCP option");
		return announce(p, ANN_PCP, epoch, NULL, now);
	}
	if (op != PCP_OP_MAP)
		return bad(p, "PCP response to an opcode we did not send");
	if (len < PCP_MAP_LEN)
		return bad(p, "PCP MAP response shorter than 60 bytes");
	if (memcmp(b + 24, p->nonce, PMP_NONCE_LEN))
		return PMP_IN_NOT_OURS; /* another mapping's nonce */
	if (b[36] != IPPROTO_UDP_NUM)
		return bad(p, "PCP MAP response for another protocol than UDP");
	if (rd16(b + 40) != p->prm.internal_port)
		return bad(p, "PCP MAP response for another internal port");
	if (!pcp_options_ok(b + PCP_MAP_LEN, len - PCP_MAP_LEN))
		return bad(p, "malformed PCP option");
	if (p->proto != PMP_PROTO_PCP)
		return PMP_IN_STALE; /* it came after we fell back */
	p->pcp_heard = true;
	if (epoch_restarted(p, epoch, now, true))
		return restarted(p, now);
	if (rc) {
		if (!p->outstanding)
			return PMP_IN_STALE;
		return error(p, PMP_PROTO_PCP, rc, life, now);
	}
	struct na_ip ip = rd_ip16(b + 44);
	uint16_t port = rd16(b + 42);
	if (p->state == PMP_DELETING) {
		if (life)
			return PMP_IN_STALE;
		stop(p, PMP_DELETED);
		return PMP_IN_DELETED;
	}
	if (!life)
		return bad(p, "PCP success with lifetime 0 to a request for a mapping");
	if (!port || ip_unspecified(&ip))
		return bad(p, "PCP success without an external address or port");
	/* Success is taken unsolicited too (RFC 6887 11.4 lets the gateway
	 * tell us of changes), and late: after FAILED, a slow answer still
	 * maps. */
	return grant(p, PMP_PROTO_PCP, &ip, port, life, now);
}

enum pmp_input_result pmp_input(struct pmp *p, const uint8_t *buf, size_t len,
				const struct na_endpoint *from, uint64_t now)
{
	if (!from || from->port != PMP_SERVER_PORT || !na_ip_equal(&from->ip, &p->prm.gateway))
		return PMP_IN_NOT_OURS;
	if (p->proto == PMP_PROTO_NONE || p->state == PMP_DELETED)
		return PMP_IN_STALE; /* not started, or refused by pmp_init() */
	if (!buf || len < 2)
		return bad(p, "datagram shorter than any response");
	if (buf[0] == 0)
		return natpmp_input(p, buf, len, now);
	if (buf[0] == PCP_VERSION)
		return pcp_input(p, buf, len, now);
	/* UNSUPP_VERSION from a PCP server of another version: its header
	 * keeps version, opcode and result where ours has them. */
	if (len >= 4 && buf[1] == (PCP_R | PCP_OP_MAP) && buf[3] == PCP_UNSUPP_VERSION &&
	    p->proto == PMP_PROTO_PCP)
		return version_fallback(p, now, "the gateway speaks another PCP version only");
	return bad(p, "neither PCP version 2 nor NAT-PMP");
}

/* ---- the caller's controls ---- */

bool pmp_init(struct pmp *p, const struct pmp_params *prm)
{
	const char *why = NULL;
	unsigned all = PMP_ALLOW_PCP | PMP_ALLOW_NATPMP;
	uint8_t fam = prm->gateway.family;

	memset(p, 0, sizeof(*p));
	p->prm = *prm;
	p->next_send = p->give_up = p->map.renew = UINT64_MAX;
	if (!p->prm.lifetime)
		p->prm.lifetime = DEFAULT_LIFETIME;
	if (!p->prm.startup)
		p->prm.startup = DEFAULT_STARTUP;
	p->prm.protocols = (prm->protocols ? prm->protocols : all) & all;
	if (fam == AF_INET6)
		p->prm.protocols &= ~PMP_ALLOW_NATPMP;
	if (fam != AF_INET && fam != AF_INET6)
		why = "no gateway address";
	else if (prm->client.family != fam)
		why = "our address and the gateway's are of different families";
	else if (!prm->internal_port)
		why = "internal port 0";
	else if (!p->prm.protocols)
		why = fam == AF_INET6 ? "NAT-PMP is IPv4 only, and PCP is not allowed"
				      : "neither PCP nor NAT-PMP is allowed";
	if (why) {
		p->reason = why;
		p->state = PMP_FAILED;
		return false;
	}
	if (prm->rand) {
		prm->rand(prm->rand_ctx, p->nonce, PMP_NONCE_LEN);
	} else {
		for (unsigned i = 0; i < PMP_NONCE_LEN - 2; i++)
			p->nonce[i] = (uint8_t)(0xa0 + i);
		wr16(p->nonce + PMP_NONCE_LEN - 2, prm->internal_port);
	}
	return true;
}

void pmp_start(struct pmp *p, uint64_t now)
{
	if (p->state == PMP_IDLE)
		request(p, now, true);
}

void pmp_remap(struct pmp *p, uint64_t now)
{
	switch (p->state) {
	case PMP_MAPPED:
	case PMP_REQUESTING:
		request(p, now, !p->had_mapping);
		break;
	case PMP_FAILED:
	case PMP_LOST:
		if (p->proto != PMP_PROTO_NONE) /* not a refused init */
			request(p, now, true);
		break;
	default:
		break;
	}
}

void pmp_delete(struct pmp *p, uint64_t now)
{
	if (p->state == PMP_DELETING || p->state == PMP_DELETED)
		return;
	if (!p->sent_any) {
		stop(p, PMP_DELETED);
		return;
	}
	p->state = PMP_DELETING;
	p->req = p->proto == PMP_PROTO_PCP ? REQ_PCP_MAP : REQ_NATPMP_MAP;
	p->sends = 0;
	p->next_send = now;
	p->give_up = add_sat(now, DELETE_END);
	p->outstanding = false;
	p->map.renew = UINT64_MAX;
}

enum pmp_state pmp_state(const struct pmp *p)
{
	return p->state;
}

const struct pmp_mapping *pmp_mapping(const struct pmp *p)
{
	return p->state == PMP_MAPPED ? &p->map : NULL;
}

const char *pmp_reason(const struct pmp *p)
{
	return p->reason;
}

const char *pmp_dropped(const struct pmp *p)
{
	return p->dropped;
}

enum pmp_proto pmp_result(const struct pmp *p, unsigned *code, uint32_t *lifetime)
{
	if (code)
		*code = p->result_code;
	if (lifetime)
		*lifetime = p->result_lifetime;
	return p->result_proto;
}
