/* PCP and NAT-PMP: requests against the RFC layouts (bytes written out by
 * hand from RFC 6887 figures 2, 9 and RFC 6886 sections 3.2, 3.3), every
 * response check, and the state machine on a fake clock: the PCP flow with
 * renewals, both fallbacks to NAT-PMP, the retransmission schedules, the
 * start-up bound, epochs and announcements, errors, delete and loss. */
#include "nat/pmp.h"
#include "tests/unit/unit.h"

#include <stdlib.h>

#define MS(x) ((uint64_t)(x) * 1000000ull)
#define S(x)  ((uint64_t)(x) * 1000000000ull)
#define T0    S(1000)
#define IPORT 51820 /* 0xca6c */
#define EPORT 40001 /* 0x9c41 */
#define E0    1000  /* the gateway's epoch at T0 */

static struct na_ip ip(const char *s)
{
	struct na_ip a;

	if (!na_ip_parse(&a, s))
		abort();
	return a;
}

static struct na_endpoint GW;

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

static struct pmp_params params(unsigned protocols)
{
	struct pmp_params prm = { .internal_port = IPORT, .protocols = protocols };

	prm.gateway = ip("192.168.1.1");
	prm.client = ip("192.168.1.10");
	return prm;
}

/* The nonce pmp_init() makes without a random source. */
static const uint8_t NONCE[12] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
				   0xa8, 0xa9, 0xca, 0x6c };

static size_t next(struct pmp *p, uint64_t now, uint8_t *buf)
{
	return pmp_next(p, now, buf, PMP_MAX_MSG);
}

static enum pmp_input_result in(struct pmp *p, const uint8_t *b, size_t n, uint64_t now)
{
	return pmp_input(p, b, n, &GW, now);
}

static void put16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

static void put32(uint8_t *b, uint32_t v)
{
	put16(b, (uint16_t)(v >> 16));
	put16(b + 2, (uint16_t)v);
}

/* A PCP MAP response (RFC 6887 figures 2 and 10); ext "a.b.c.d" goes in as
 * ::ffff:a.b.c.d. */
static size_t pcp_map(uint8_t *b, uint8_t rc, uint32_t life, uint32_t epoch,
		      uint16_t eport, const char *ext)
{
	struct na_ip e = ip(ext);

	memset(b, 0, 60);
	b[0] = 2;
	b[1] = 0x81;
	b[3] = rc;
	put32(b + 4, life);
	put32(b + 8, epoch);
	memcpy(b + 24, NONCE, 12);
	b[36] = 17;
	put16(b + 40, IPORT);
	put16(b + 42, eport);
	if (e.family == AF_INET) {
		b[54] = b[55] = 0xff;
		memcpy(b + 56, e.v4, 4);
	} else {
		memcpy(b + 44, e.v6, 16);
	}
	return 60;
}

static size_t pcp_announce(uint8_t *b, uint32_t epoch)
{
	memset(b, 0, 24);
	b[0] = 2;
	b[1] = 0x80;
	put32(b + 8, epoch);
	return 24;
}

/* NAT-PMP responses, RFC 6886 sections 3.2 and 3.3. */
static size_t natpmp_addr(uint8_t *b, uint16_t rc, uint32_t epoch, const char *ext)
{
	struct na_ip e = ip(ext);

	b[0] = 0;
	b[1] = 0x80;
	put16(b + 2, rc);
	put32(b + 4, epoch);
	memcpy(b + 8, e.v4, 4);
	return 12;
}

static size_t natpmp_map(uint8_t *b, uint16_t rc, uint32_t epoch, uint16_t eport, uint32_t life)
{
	b[0] = 0;
	b[1] = 0x81;
	put16(b + 2, rc);
	put32(b + 4, epoch);
	put16(b + 8, IPORT);
	put16(b + 10, eport);
	put32(b + 12, life);
	return 16;
}

/* Started, the first PCP request out, answered: MAPPED at T0 + 10 ms. */
static void pcp_mapped(struct pmp *p, const struct pmp_params *prm)
{
	uint8_t b[PMP_MAX_MSG], r[64];

	pmp_init(p, prm);
	pmp_start(p, T0);
	size_t n = pcp_map(r, 0, 7200, E0, EPORT, "203.0.113.7");
	memcpy(r + 24, p->nonce, 12); /* drawn from prm->rand, if any */
	if (next(p, T0, b) != 60 || in(p, r, n, T0 + MS(10)) != PMP_IN_MAPPED)
		abort();
}

static void natpmp_mapped(struct pmp *p)
{
	struct pmp_params prm = params(PMP_ALLOW_NATPMP);
	uint8_t b[PMP_MAX_MSG], r[16];

	pmp_init(p, &prm);
	pmp_start(p, T0);
	if (next(p, T0, b) != 2 ||
	    in(p, r, natpmp_addr(r, 0, E0, "203.0.113.7"), T0 + MS(5)) != PMP_IN_ADDRESS ||
	    next(p, T0 + MS(5), b) != 12 ||
	    in(p, r, natpmp_map(r, 0, E0, EPORT, 7200), T0 + MS(10)) != PMP_IN_MAPPED)
		abort();
}

static void test_names(void)
{
	static const char *const pcp[] = {
		"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
		"UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE",
		"NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL",
		"ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
	};
	static const char *const natpmp[] = {
		"Success", "Unsupported Version", "Not Authorized/Refused", "Network Failure",
		"Out of resources", "Unsupported opcode",
	};
	bool ok = true;

	for (unsigned i = 0; i < 14; i++)
		ok &= strcmp(pmp_result_name(PMP_PROTO_PCP, i), pcp[i]) == 0;
	CHECK(ok, "PCP result codes 0-13 by their RFC 6887 names");
	ok = true;
	for (unsigned i = 0; i < 6; i++)
		ok &= strcmp(pmp_result_name(PMP_PROTO_NATPMP, i), natpmp[i]) == 0;
	CHECK(ok, "NAT-PMP result codes 0-5 by their RFC 6886 names");
	CHECK_EQ_STR(pmp_result_name(PMP_PROTO_PCP, 14), "unknown", "PCP code 14 unknown");
	CHECK_EQ_STR(pmp_result_name(PMP_PROTO_NATPMP, 6), "unknown", "NAT-PMP code 6 unknown");
	CHECK_EQ_STR(pmp_proto_name(PMP_PROTO_PCP), "pcp", "protocol name pcp");
	CHECK_EQ_STR(pmp_proto_name(PMP_PROTO_NATPMP), "natpmp", "protocol name natpmp");
	CHECK_EQ_STR(pmp_state_name(PMP_MAPPED), "mapped", "state name mapped");
	CHECK_EQ_STR(pmp_state_name(PMP_LOST), "lost", "state name lost");
	CHECK_EQ_STR(pmp_input_result_name(PMP_IN_RESTARTED), "gateway restarted",
		     "input result name");
}

static void test_init(void)
{
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];

	prm.internal_port = 0;
	CHECK(!pmp_init(&p, &prm) && pmp_state(&p) == PMP_FAILED, "internal port 0 refused");
	CHECK_EQ_STR(pmp_reason(&p), "internal port 0", "  with its reason");
	prm = params(0);
	prm.client = ip("2001:db8::10");
	CHECK(!pmp_init(&p, &prm), "mixed address families refused");
	prm = params(PMP_ALLOW_NATPMP);
	prm.gateway = ip("2001:db8::1");
	prm.client = ip("2001:db8::10");
	CHECK(!pmp_init(&p, &prm), "NAT-PMP alone on IPv6 refused");
	CHECK_EQ_STR(pmp_reason(&p), "NAT-PMP is IPv4 only, and PCP is not allowed", "  with its reason");
	prm = params(0);
	prm.internal_port = 0;
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	pmp_remap(&p, T0);
	CHECK(pmp_state(&p) == PMP_FAILED && next(&p, T0, b) == 0 &&
	      in(&p, r, pcp_announce(r, 5), T0) == PMP_IN_STALE, "a refused struct stays failed");

	prm = params(0);
	CHECK(pmp_init(&p, &prm) && pmp_state(&p) == PMP_IDLE, "valid parameters: idle");
	CHECK(pmp_deadline(&p) == UINT64_MAX && next(&p, T0, b) == 0, "idle sends nothing");
	CHECK(in(&p, r, pcp_map(r, 0, 7200, E0, EPORT, "203.0.113.7"), T0) == PMP_IN_STALE,
	      "idle takes no answer");
}

static void test_requests(void)
{
	/* RFC 6887 figure 2 (request header) + figure 9 (MAP): version 2,
	 * R 0 opcode 1, reserved, lifetime 7200, client ::ffff:192.168.1.10;
	 * nonce, protocol 17, reserved, internal port 51820, suggested port
	 * 0, suggested address ::ffff:0.0.0.0. */
	static const uint8_t pcp_v4[60] = {
		0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x1c, 0x20,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xff, 0xff, 0xc0, 0xa8, 0x01, 0x0a,
		0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xca, 0x6c,
		0x11, 0x00, 0x00, 0x00, 0xca, 0x6c, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	};
	/* IPv6 pinhole: client 2001:db8::10, suggested external the same,
	 * port 40000, lifetime 3600. */
	static const uint8_t pcp_v6[60] = {
		0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x10,
		0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
		0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xca, 0x6c,
		0x11, 0x00, 0x00, 0x00, 0xca, 0x6c, 0x9c, 0x40,
		0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
	};
	/* RFC 6886 3.2: version 0, opcode 0. 3.3: version 0, opcode 1 (UDP),
	 * reserved, internal port, suggested external port, lifetime. */
	static const uint8_t natpmp_addr_req[2] = { 0x00, 0x00 };
	static const uint8_t natpmp_map_req[12] = {
		0x00, 0x01, 0x00, 0x00, 0xca, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x1c, 0x20,
	};
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[16];
	size_t n;

	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	CHECK(pmp_state(&p) == PMP_REQUESTING && pmp_deadline(&p) == T0, "started: a request due now");
	n = next(&p, T0, b);
	CHECK(n == 60 && !memcmp(b, pcp_v4, 60), "PCP MAP request, IPv4, byte for byte");
	CHECK(next(&p, T0, b) == 0, "one request per call");

	prm = params(0);
	prm.gateway = ip("2001:db8::1");
	prm.client = ip("2001:db8::10");
	prm.external_port = 40000;
	prm.lifetime = 3600;
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	n = next(&p, T0, b);
	CHECK(n == 60 && !memcmp(b, pcp_v6, 60), "PCP MAP request, IPv6 pinhole, byte for byte");

	prm = params(PMP_ALLOW_NATPMP);
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	n = next(&p, T0, b);
	CHECK(n == 2 && !memcmp(b, natpmp_addr_req, 2), "NAT-PMP external address request");
	in(&p, r, natpmp_addr(r, 0, E0, "203.0.113.7"), T0 + MS(1));
	n = next(&p, T0 + MS(1), b);
	CHECK(n == 12 && !memcmp(b, natpmp_map_req, 12), "NAT-PMP UDP map request");

	/* A random source makes the nonce, and the same one is sent again. */
	uint64_t st = 7;
	prm = params(PMP_ALLOW_PCP);
	prm.rand = fake_rand;
	prm.rand_ctx = &st;
	pmp_init(&p, &prm);
	uint8_t want[12];
	uint64_t st2 = 7;
	fake_rand(&st2, want, 12);
	pmp_start(&p, T0);
	n = next(&p, T0, b);
	CHECK(n == 60 && !memcmp(b + 24, want, 12), "the nonce comes from the random source");
	n = next(&p, pmp_deadline(&p), b);
	CHECK(n == 60 && !memcmp(b + 24, want, 12), "a retransmission keeps the nonce");

	/* A buffer too small gets nothing, but the schedule moves on. */
	prm = params(PMP_ALLOW_PCP);
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	CHECK(pmp_next(&p, T0, b, 59) == 0 && pmp_deadline(&p) == T0 + S(3),
	      "cap below PMP_MAX_MSG: nothing written, counted as sent");
}

static void test_pcp_decode(void)
{
	/* Success (RFC 6887 figures 3 and 10): version 2, R 1 opcode 1,
	 * reserved, result 0, lifetime 7200, epoch 1000, 96 reserved bits;
	 * nonce, protocol 17, reserved, internal port 51820, assigned port
	 * 40001, assigned address ::ffff:203.0.113.7. */
	static const uint8_t ok[60] = {
		0x02, 0x81, 0x00, 0x00, 0x00, 0x00, 0x1c, 0x20,
		0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xca, 0x6c,
		0x11, 0x00, 0x00, 0x00, 0xca, 0x6c, 0x9c, 0x41,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xff, 0xff, 0xcb, 0x00, 0x71, 0x07,
	};
	struct pmp p;
	struct pmp_params prm = params(PMP_ALLOW_PCP);
	uint8_t b[PMP_MAX_MSG], r[1200];
	char s[NA_ENDPOINT_STRLEN];
	const struct pmp_mapping *m;

	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	CHECK_EQ_INT(in(&p, ok, 60, T0 + MS(10)), PMP_IN_MAPPED, "PCP success: mapped");
	m = pmp_mapping(&p);
	CHECK(m && pmp_state(&p) == PMP_MAPPED, "  state and mapping");
	CHECK(m && m->proto == PMP_PROTO_PCP, "  protocol pcp");
	CHECK_EQ_STR(m ? na_endpoint_str(&m->external, s, sizeof(s)) : NULL, "203.0.113.7:40001",
		     "  external address and port");
	CHECK(m && m->internal_port == IPORT && m->lifetime == 7200, "  internal port, lifetime");
	CHECK(m && m->granted == T0 + MS(10) && m->expires == T0 + MS(10) + S(7200),
	      "  granted and expiry times");
	CHECK(m && m->renew == T0 + MS(10) + S(3600) && pmp_deadline(&p) == m->renew,
	      "  renewal at half the lifetime");

	/* Each rejection on a fresh request; the state must not move. */
	struct {
		const char *name;
		size_t len;
		int at, val;  /* byte to change; -1: none */
		enum pmp_input_result want;
		const char *why;
	} cases[] = {
		{ "version 3", 60, 0, 3, PMP_IN_BAD, "neither PCP version 2 nor NAT-PMP" },
		{ "no R bit", 60, 1, 0x01, PMP_IN_BAD, "a PCP request, not a response" },
		{ "opcode PEER", 60, 1, 0x82, PMP_IN_BAD, "PCP response to an opcode we did not send" },
		{ "shorter than a header", 20, -1, 0, PMP_IN_BAD, "PCP response shorter than 24 bytes" },
		{ "MAP shorter than 60", 56, -1, 0, PMP_IN_BAD, "PCP MAP response shorter than 60 bytes" },
		{ "length not a multiple of 4", 62, -1, 0, PMP_IN_BAD,
		  "PCP response length not a multiple of 4" },
		{ "longer than 1100", 1104, -1, 0, PMP_IN_BAD, "PCP response longer than 1100 bytes" },
		{ "another nonce", 60, 24, 0x00, PMP_IN_NOT_OURS, NULL },
		{ "protocol TCP", 60, 36, 6, PMP_IN_BAD, "PCP MAP response for another protocol than UDP" },
		{ "another internal port", 60, 41, 0x6d, PMP_IN_BAD,
		  "PCP MAP response for another internal port" },
		{ "lifetime 0 on success", 60, 7, 0, PMP_IN_BAD,
		  "PCP success with lifetime 0 to a request for a mapping" },
		{ "external port 0", 60, 43, 0, PMP_IN_BAD, "PCP success without an external address or port" },
		{ "one byte short", 1, -1, 0, PMP_IN_BAD, "datagram shorter than any response" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pmp_init(&p, &prm);
		pmp_start(&p, T0);
		next(&p, T0, b);
		memset(r, 0, sizeof(r));
		memcpy(r, ok, 60);
		if (cases[i].at >= 0)
			r[cases[i].at] = (uint8_t)cases[i].val;
		if (cases[i].at == 7)
			r[6] = 0;
		if (cases[i].at == 43)
			r[42] = 0;
		enum pmp_input_result got = in(&p, r, cases[i].len, T0 + MS(10));
		CHECK(got == cases[i].want && pmp_state(&p) == PMP_REQUESTING &&
		      (!cases[i].why || (pmp_dropped(&p) && !strcmp(pmp_dropped(&p), cases[i].why))),
		      "PCP response rejected: %s", cases[i].name);
	}

	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	struct na_endpoint other = GW;
	other.port = PMP_ANNOUNCE_PORT;
	CHECK(pmp_input(&p, ok, 60, &other, T0) == PMP_IN_NOT_OURS, "from the gateway's port 5350: not ours");
	other = GW;
	other.ip = ip("192.168.1.2");
	CHECK(pmp_input(&p, ok, 60, &other, T0) == PMP_IN_NOT_OURS, "from another address: not ours");
	CHECK(pmp_input(&p, ok, 60, NULL, T0) == PMP_IN_NOT_OURS, "from nowhere: not ours");

	/* Options after the MAP data: well-formed ones are skipped. */
	memcpy(r, ok, 60);
	memcpy(r + 60, "\x80\x00\x00\x09" "abcdefgh", 12);
	CHECK(in(&p, r, 72, T0) == PMP_IN_BAD, "an option longer than the packet: bad");
	memcpy(r + 60, "\x80\x00\x00\x04" "abcd", 8);
	CHECK(in(&p, r, 68, T0) == PMP_IN_MAPPED, "a well-formed unknown option is skipped");

	/* NAT64: an IPv6 client's mapping on an IPv4 address. */
	prm = params(PMP_ALLOW_PCP);
	prm.gateway = ip("2001:db8::1");
	prm.client = ip("2001:db8::10");
	GW.ip = prm.gateway;
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	in(&p, r, pcp_map(r, 0, 600, E0, EPORT, "2001:db8:ffff::7"), T0);
	m = pmp_mapping(&p);
	CHECK_EQ_STR(m ? na_endpoint_str(&m->external, s, sizeof(s)) : NULL, "[2001:db8:ffff::7]:40001",
		     "IPv6 pinhole: an IPv6 external address");
	GW.ip = ip("192.168.1.1");
}

static void test_natpmp_decode(void)
{
	/* RFC 6886 3.2: version 0, opcode 128, result 0, epoch 1000, address
	 * 203.0.113.7. 3.3: opcode 129, result 0, epoch 1001, internal port,
	 * mapped port 40001, lifetime 7200. */
	static const uint8_t addr_ok[12] = {
		0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, 0xcb, 0x00, 0x71, 0x07,
	};
	static const uint8_t map_ok[16] = {
		0x00, 0x81, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe9,
		0xca, 0x6c, 0x9c, 0x41, 0x00, 0x00, 0x1c, 0x20,
	};
	struct pmp p;
	struct pmp_params prm = params(PMP_ALLOW_NATPMP);
	uint8_t b[PMP_MAX_MSG], r[32];
	char s[NA_ENDPOINT_STRLEN];

	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	CHECK_EQ_INT(in(&p, addr_ok, 12, T0 + MS(5)), PMP_IN_ADDRESS, "NAT-PMP address response");
	CHECK(pmp_deadline(&p) == T0 + MS(5) && next(&p, T0 + MS(5), b) == 12,
	      "  the map request goes at once");
	CHECK_EQ_INT(in(&p, map_ok, 16, T0 + S(1)), PMP_IN_MAPPED, "NAT-PMP map response: mapped");
	const struct pmp_mapping *m = pmp_mapping(&p);
	CHECK(m && m->proto == PMP_PROTO_NATPMP && m->lifetime == 7200 && m->internal_port == IPORT,
	      "  protocol, lifetime, internal port");
	CHECK_EQ_STR(m ? na_endpoint_str(&m->external, s, sizeof(s)) : NULL, "203.0.113.7:40001",
		     "  external address (from opcode 0) and port (from opcode 1)");
	CHECK(m && m->renew == T0 + S(1) + S(3600), "  renewal at half the lifetime");
	CHECK(in(&p, map_ok, 16, T0 + S(2)) == PMP_IN_STALE, "a duplicate answer is stale");

	struct {
		const char *name;
		bool map;     /* against the map request, else the address one */
		size_t len;
		int at, val;
		enum pmp_input_result want;
		const char *why;
	} cases[] = {
		{ "address: version 1", false, 12, 0, 1, PMP_IN_BAD, "neither PCP version 2 nor NAT-PMP" },
		{ "address: a request", false, 12, 1, 0x00, PMP_IN_BAD, "a NAT-PMP request, not a response" },
		{ "address: 7 bytes", false, 7, -1, 0, PMP_IN_BAD, "NAT-PMP response shorter than 8 bytes" },
		{ "address: 11 bytes", false, 11, -1, 0, PMP_IN_BAD, "NAT-PMP address response not 12 bytes" },
		{ "address: 0.0.0.0", false, 12, 8, 0, PMP_IN_BAD,
		  "NAT-PMP address response without an address" },
		{ "map: opcode 130 (TCP)", true, 16, 1, 0x82, PMP_IN_BAD,
		  "NAT-PMP response to an opcode we did not send" },
		{ "map: 15 bytes", true, 15, -1, 0, PMP_IN_BAD, "NAT-PMP map response not 16 bytes" },
		{ "map: another internal port", true, 16, 9, 0x6d, PMP_IN_NOT_OURS, NULL },
		{ "map: external port 0", true, 16, 11, 0, PMP_IN_BAD,
		  "NAT-PMP mapping without a lifetime or an external port" },
		{ "map: lifetime 0", true, 16, 15, 0, PMP_IN_BAD,
		  "NAT-PMP mapping without a lifetime or an external port" },
		{ "map: version 2 length 16", true, 16, 0, 2, PMP_IN_BAD, "PCP response shorter than 24 bytes" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pmp_init(&p, &prm);
		pmp_start(&p, T0);
		next(&p, T0, b);
		if (cases[i].map) {
			in(&p, addr_ok, 12, T0);
			next(&p, T0, b);
		}
		memcpy(r, cases[i].map ? map_ok : addr_ok, cases[i].map ? 16 : 12);
		if (cases[i].at >= 0)
			r[cases[i].at] = (uint8_t)cases[i].val;
		if (cases[i].at == 8)
			memset(r + 8, 0, 4);
		if (cases[i].at == 11)
			r[10] = 0;
		if (cases[i].at == 15)
			r[14] = 0;
		enum pmp_input_result got = in(&p, r, cases[i].len, T0 + MS(10));
		CHECK(got == cases[i].want && pmp_state(&p) == PMP_REQUESTING &&
		      (!cases[i].why || (pmp_dropped(&p) && !strcmp(pmp_dropped(&p), cases[i].why))),
		      "NAT-PMP response rejected: %s", cases[i].name);
	}
}

static void test_pcp_flow(void)
{
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];
	const struct pmp_mapping *m;
	char s[NA_ENDPOINT_STRLEN];

	pcp_mapped(&p, &prm);
	uint64_t half = T0 + MS(10) + S(3600);
	CHECK(next(&p, half - 1, b) == 0 && pmp_state(&p) == PMP_MAPPED, "nothing before half life");
	CHECK(next(&p, half, b) == 60, "renewal at half the lifetime");
	/* The renewal suggests what was granted: port 40001 at ::ffff:203.0.113.7. */
	CHECK(!memcmp(b + 24, NONCE, 12) && b[42] == 0x9c && b[43] == 0x41 &&
	      !memcmp(b + 54, "\xff\xff\xcb\x00\x71\x07", 6) && b[7] == 0x20,
	      "  same nonce, suggesting the granted address and port, lifetime 7200");
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 0, 3000, E0 + 3600, EPORT, "203.0.113.7"), half + MS(5)),
		     PMP_IN_RENEWED, "the renewal answered: renewed");
	m = pmp_mapping(&p);
	CHECK(m && m->granted == half + MS(5) && m->lifetime == 3000 &&
	      m->renew == half + MS(5) + S(1500), "  new grant, next renewal at half of it");
	uint64_t second = m->renew;
	CHECK(next(&p, second, b) == 60, "second renewal");
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 0, 3000, E0 + 5100, 40002, "203.0.113.7"),
			second + MS(5)), PMP_IN_MAPPED, "a renewal with another port: mapped anew");
	CHECK_EQ_STR(m ? na_endpoint_str(&m->external, s, sizeof(s)) : NULL, "203.0.113.7:40002",
		     "  the new port");
	/* RFC 6887 lets the gateway tell us unasked. */
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 0, 3000, E0 + 5200, 40002, "203.0.113.8"),
			m->granted + S(100)), PMP_IN_MAPPED, "unsolicited MAP success taken");
	CHECK(m && m->external.ip.v4[3] == 8, "  with its address");
	CHECK(in(&p, r, pcp_map(r, 8, 30, E0 + 5201, 40002, "203.0.113.8"), m->granted + S(1)) ==
	      PMP_IN_STALE, "an error answering nothing outstanding: stale");
}

static void test_fallback_answer(void)
{
	static const uint8_t natpmp_unsupp[8] = { 0x00, 0x81, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05 };
	/* A PCP-format UNSUPP_VERSION with version 0, lifetime 1800. */
	static const uint8_t pcp_unsupp_v0[24] = {
		0x00, 0x81, 0x00, 0x01, 0x00, 0x00, 0x07, 0x08, 0x00, 0x00, 0x00, 0x05,
	};
	static const uint8_t pcp_unsupp_v1[24] = {
		0x01, 0x81, 0x00, 0x01, 0x00, 0x00, 0x07, 0x08, 0x00, 0x00, 0x00, 0x05,
	};
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[16];

	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	CHECK_EQ_INT(in(&p, natpmp_unsupp, 8, T0 + MS(3)), PMP_IN_FALLBACK,
		     "NAT-PMP 'unsupported version' to PCP: fallback");
	CHECK(next(&p, T0 + MS(3), b) == 2 && b[0] == 0 && b[1] == 0, "  NAT-PMP address request at once");
	in(&p, r, natpmp_addr(r, 0, 6, "203.0.113.7"), T0 + MS(6));
	next(&p, T0 + MS(6), b);
	CHECK_EQ_INT(in(&p, r, natpmp_map(r, 0, 6, EPORT, 7200), T0 + MS(9)), PMP_IN_MAPPED,
		     "  then mapped by NAT-PMP");
	CHECK(pmp_mapping(&p) && pmp_mapping(&p)->proto == PMP_PROTO_NATPMP, "  protocol natpmp");

	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	CHECK_EQ_INT(in(&p, pcp_unsupp_v0, 24, T0 + MS(3)), PMP_IN_FALLBACK,
		     "PCP-format UNSUPP_VERSION with version 0: fallback");
	while (pmp_state(&p) == PMP_REQUESTING)
		next(&p, pmp_deadline(&p), b);
	CHECK(pmp_state(&p) == PMP_FAILED && p.give_up == UINT64_MAX, "  NAT-PMP unanswered then: failed");
	CHECK_EQ_STR(pmp_reason(&p), "the gateway stopped answering", "  the gateway had answered");
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	CHECK_EQ_INT(in(&p, pcp_unsupp_v1, 24, T0 + MS(3)), PMP_IN_FALLBACK,
		     "UNSUPP_VERSION naming PCP version 1: fallback");

	prm = params(PMP_ALLOW_PCP);
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	CHECK_EQ_INT(in(&p, natpmp_unsupp, 8, T0 + MS(3)), PMP_IN_ERROR,
		     "PCP only, gateway speaks NAT-PMP: error");
	unsigned code;
	CHECK(pmp_state(&p) == PMP_FAILED && pmp_result(&p, &code, NULL) == PMP_PROTO_PCP && code == 1,
	      "  failed, result UNSUPP_VERSION");
	CHECK_EQ_STR(pmp_reason(&p), "the gateway answers PCP in NAT-PMP, which is not allowed",
		     "  with the reason");
}

static void test_fallback_silence(void)
{
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];
	uint64_t want[] = { 0, S(3), MS(4500), MS(4750), MS(5250), MS(6250), MS(8250) };
	size_t lens[] = { 60, 60, 2, 2, 2, 2, 2 };
	bool ok = true;
	unsigned n = 0;

	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	while (pmp_state(&p) == PMP_REQUESTING && n < 20) {
		uint64_t d = pmp_deadline(&p);
		size_t len = next(&p, d, b);
		if (!len)
			continue;
		ok &= n < 7 && d == T0 + want[n] && len == lens[n];
		n++;
	}
	CHECK(ok && n == 7, "silence: PCP at 0 and 3 s, NAT-PMP from 4.5 s, doubling from 250 ms");
	CHECK(pmp_state(&p) == PMP_FAILED, "failed at the start-up bound");
	CHECK_EQ_STR(pmp_reason(&p), "no answer from the gateway to PCP or NAT-PMP", "  with the reason");
	CHECK(pmp_deadline(&p) == UINT64_MAX && next(&p, T0 + S(100), b) == 0, "  and nothing more");

	/* The fallback found a NAT-PMP gateway; a late PCP answer is ignored. */
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	next(&p, T0 + S(3), b);
	CHECK(pmp_deadline(&p) == T0 + MS(4500), "the fallback is the next deadline");
	CHECK(next(&p, T0 + MS(4500), b) == 2, "  NAT-PMP address request at 4.5 s");
	CHECK(in(&p, r, pcp_map(r, 0, 7200, E0, EPORT, "203.0.113.7"), T0 + MS(4600)) == PMP_IN_STALE,
	      "  a late PCP answer is stale");
	in(&p, r, natpmp_addr(r, 0, E0, "203.0.113.7"), T0 + MS(4700));
	next(&p, T0 + MS(4700), b);
	CHECK_EQ_INT(in(&p, r, natpmp_map(r, 0, E0, EPORT, 7200), T0 + MS(4800)), PMP_IN_MAPPED,
		     "  mapped by NAT-PMP");

	/* A PCP answer in time disables the silence fallback. */
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	in(&p, r, pcp_map(r, 8, 30, E0, 0, "0.0.0.0"), T0 + MS(10));
	CHECK(pmp_deadline(&p) == T0 + MS(10) + S(30), "a PCP error answers: no fallback, retry at its lifetime");
	uint64_t retry = T0 + MS(10) + S(30);
	next(&p, retry, b);
	next(&p, retry + S(3), b);
	CHECK(pmp_deadline(&p) == retry + S(9) && next(&p, retry + S(9), b) == 0 &&
	      pmp_state(&p) == PMP_FAILED, "  its retries stay PCP until the bound");
	CHECK_EQ_STR(pmp_reason(&p), "the gateway stopped answering", "  then failed, saying so");

	/* NAT-PMP's 'unsupported version' when nothing asks for it. */
	pcp_mapped(&p, &prm);
	CHECK(in(&p, (const uint8_t *)"\x00\x81\x00\x01\x00\x00\x00\x05", 8, T0 + S(1)) ==
	      PMP_IN_STALE, "'unsupported version' while mapped: stale");
	CHECK(in(&p, r, pcp_map(r, 0, 7200, E0 + 2, EPORT, "203.0.113.7"), T0 + S(2)) == PMP_IN_RENEWED,
	      "  and its epoch is not taken");
}

static void test_schedule(void)
{
	struct pmp p;
	struct pmp_params prm = params(PMP_ALLOW_PCP);
	uint8_t b[PMP_MAX_MSG];
	/* RT 3, 6, 12, ... 768, then MRT 1024 s (RFC 6887 8.1.1). */
	static const unsigned pcp_at[] = { 0, 3, 9, 21, 45, 93, 189, 381, 765, 1533, 2557 };
	static const unsigned natpmp_ms[] = { 0, 250, 750, 1750, 3750, 7750, 15750, 31750, 63750 };
	uint64_t sent[64];
	unsigned n = 0;
	bool ok = true;

	prm.startup = S(3000);
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	while (pmp_state(&p) == PMP_REQUESTING && n < 64) {
		uint64_t d = pmp_deadline(&p);
		if (next(&p, d, b))
			sent[n++] = d;
	}
	for (unsigned i = 0; i < n && i < 11; i++)
		ok &= sent[i] == T0 + S(pcp_at[i]);
	CHECK(ok && n == 11, "PCP without jitter: 0, 3, 9 ... 1533, 2557 s (RT capped at 1024 s)");
	CHECK(pmp_state(&p) == PMP_FAILED, "  failed at the bound (3000 s)");

	uint64_t st = 0x1234567;
	prm.rand = fake_rand;
	prm.rand_ctx = &st;
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	n = 0;
	while (pmp_state(&p) == PMP_REQUESTING && n < 64) {
		uint64_t d = pmp_deadline(&p);
		if (next(&p, d, b))
			sent[n++] = d;
	}
	bool in_bounds = n >= 9, jittered = false;
	uint64_t prev_rt = 0;
	for (unsigned i = 1; i < n; i++) {
		uint64_t rt = sent[i] - sent[i - 1];
		uint64_t nominal = i == 1 ? S(3) : 2 * prev_rt < S(1024) ? 2 * prev_rt : S(1024);
		in_bounds &= rt * 10 >= nominal * 9 && rt * 10 <= nominal * 11;
		jittered |= rt != nominal;
		prev_rt = rt;
	}
	CHECK(in_bounds, "PCP with jitter: each RT within (1 +- 0.1) x min(2 RTprev, MRT)");
	CHECK(jittered && prev_rt <= S(1024) * 11 / 10, "  jitter applied, RT no more than 1.1 x 1024 s");

	prm = params(PMP_ALLOW_NATPMP);
	prm.startup = S(200);
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	n = 0;
	ok = true;
	while (pmp_state(&p) == PMP_REQUESTING && n < 64) {
		uint64_t d = pmp_deadline(&p);
		if (next(&p, d, b))
			sent[n++] = d;
	}
	for (unsigned i = 0; i < n && i < 9; i++)
		ok &= sent[i] == T0 + MS(natpmp_ms[i]);
	CHECK(ok && n == 9, "NAT-PMP: 250 ms doubling, nine sends (RFC 6886 3.1)");
	CHECK(pmp_state(&p) == PMP_FAILED && p.give_up == UINT64_MAX, "  then failed");

	/* Where it failed: 64 s after the ninth. */
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	for (n = 0; n < 9; n++)
		next(&p, T0 + MS(natpmp_ms[n]), b);
	CHECK(pmp_deadline(&p) == T0 + MS(63750) + S(64), "  64 s after the ninth send");

	prm.startup = 0;
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	n = 0;
	while (pmp_state(&p) == PMP_REQUESTING && n < 64)
		n += next(&p, pmp_deadline(&p), b) != 0;
	CHECK(n == 6, "NAT-PMP within the default 9 s: six sends");
	CHECK_EQ_STR(pmp_reason(&p), "no answer from the gateway to NAT-PMP", "  failed with the reason");

	prm = params(PMP_ALLOW_PCP);
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	n = 0;
	uint64_t at = 0;
	while (pmp_state(&p) == PMP_REQUESTING && n < 64) {
		at = pmp_deadline(&p);
		n += next(&p, at, b) != 0;
	}
	CHECK(n == 2 && at == T0 + S(9), "PCP alone: two sends, failed at 9 s");

	CHECK_EQ_STR(pmp_reason(&p), "no answer from the gateway to PCP", "  with the reason");

	prm = params(0);
	prm.startup = 1;
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	CHECK(next(&p, T0, b) == 60, "a start-up bound of 1 ns still sends PCP first");
	CHECK(next(&p, T0 + 1, b) == 0 && pmp_state(&p) == PMP_FAILED, "  and fails 1 ns later");
}

static void test_epoch(void)
{
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];
	uint64_t t;

	/* PCP (RFC 6887 8.5): 100 s on our clock after epoch 1000. Valid
	 * from 1092 (100 - 100/16 - 2 = 91.75) to 1108 (108 - 108/16 = 101.25
	 * < 102), invalid outside. */
	static const struct { uint32_t epoch; bool restarted; } pcp_cases[] = {
		{ E0 + 91, true }, { E0 + 92, false }, { E0 + 108, false }, { E0 + 109, true },
	};
	for (size_t i = 0; i < 4; i++) {
		pcp_mapped(&p, &prm);
		t = T0 + MS(10) + S(100);
		enum pmp_input_result got = in(&p, r, pcp_map(r, 0, 7200, pcp_cases[i].epoch, EPORT,
							     "203.0.113.7"), t);
		CHECK(got == (pcp_cases[i].restarted ? PMP_IN_RESTARTED : PMP_IN_RENEWED),
		      "PCP epoch %u after 100 s: %s", pcp_cases[i].epoch,
		      pcp_cases[i].restarted ? "restarted" : "valid");
	}
	pcp_mapped(&p, &prm);
	CHECK(in(&p, r, pcp_map(r, 0, 7200, E0 - 2, EPORT, "203.0.113.7"), T0 + MS(10)) ==
	      PMP_IN_RESTARTED, "PCP epoch back by 2 s: restarted");
	CHECK(pmp_state(&p) == PMP_REQUESTING && pmp_mapping(&p) == NULL && p.restarts == 1,
	      "  the mapping is gone, requesting again");
	CHECK(pmp_deadline(&p) == T0 + MS(10) && next(&p, T0 + MS(10), b) == 60 &&
	      b[43] == 0x41 && !memcmp(b + 24, NONCE, 12), "  a MAP request at once, same nonce and port");
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 0, 7200, E0 - 2, EPORT, "203.0.113.7"), T0 + MS(20)),
		     PMP_IN_MAPPED, "  mapped again");

	/* Restart seen in a renewal's answer. */
	pcp_mapped(&p, &prm);
	t = T0 + MS(10) + S(3600);
	next(&p, t, b);
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 0, 7200, 5, EPORT, "203.0.113.7"), t + MS(5)),
		     PMP_IN_RESTARTED, "a renewal's answer with epoch 5: restarted");
	CHECK(next(&p, t + MS(5), b) == 60, "  re-map sent at once");

	/* NAT-PMP (RFC 6886 3.6): after 100 s, less than 1000 + 87.5 - 2. */
	natpmp_mapped(&p);
	t = T0 + MS(10) + S(100);
	CHECK_EQ_INT(in(&p, r, natpmp_addr(r, 0, E0 + 85, "203.0.113.7"), t), PMP_IN_RESTARTED,
		     "NAT-PMP epoch 1085 after 100 s: restarted");
	CHECK(pmp_state(&p) == PMP_REQUESTING && next(&p, t, b) == 2,
	      "  NAT-PMP asks the address again, at once");
	natpmp_mapped(&p);
	CHECK_EQ_INT(in(&p, r, natpmp_addr(r, 0, E0 + 86, "203.0.113.7"), t), PMP_IN_ANNOUNCE,
		     "NAT-PMP epoch 1086 after 100 s: valid");
	natpmp_mapped(&p);
	CHECK_EQ_INT(in(&p, r, natpmp_addr(r, 0, E0 + 5000, "203.0.113.7"), t), PMP_IN_ANNOUNCE,
		     "NAT-PMP's rule looks only backwards");
}

static void test_announce(void)
{
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];
	char s[NA_ENDPOINT_STRLEN];
	uint64_t t = T0 + S(500);

	pcp_mapped(&p, &prm);
	CHECK_EQ_INT(in(&p, r, pcp_announce(r, 3), t), PMP_IN_RESTARTED,
		     "PCP ANNOUNCE after a reboot: restarted");
	CHECK(pmp_state(&p) == PMP_REQUESTING && pmp_deadline(&p) == t && next(&p, t, b) == 60,
	      "  MAP request at once");
	CHECK_EQ_INT(in(&p, r, pcp_announce(r, 4), t + S(1)), PMP_IN_ANNOUNCE, "  its repeat 1 s later");
	CHECK(next(&p, t + S(1), b) == 0, "  changes nothing");

	pcp_mapped(&p, &prm);
	CHECK_EQ_INT(in(&p, r, pcp_announce(r, E0 + 500), t), PMP_IN_ANNOUNCE,
		     "PCP ANNOUNCE with a valid epoch");
	CHECK(pmp_state(&p) == PMP_MAPPED && next(&p, t, b) == 60, "  renewal at once, still mapped");
	CHECK(pmp_mapping(&p)->renew == T0 + MS(10) + S(3600), "  the renewal schedule carries on");
	CHECK_EQ_INT(in(&p, r, pcp_announce(r, E0 + 502), t + S(2)), PMP_IN_ANNOUNCE, "  a repeat");
	CHECK(next(&p, t + S(2), b) == 0, "  sends nothing");
	memcpy(r, "\x02\x80\x00\x01", 4);
	CHECK(in(&p, r, 24, t) == PMP_IN_BAD, "PCP ANNOUNCE with an error result: bad");

	natpmp_mapped(&p);
	CHECK_EQ_INT(in(&p, r, natpmp_addr(r, 0, E0 + 500, "198.51.100.9"), t), PMP_IN_ANNOUNCE,
		     "NAT-PMP announces a new external address");
	CHECK(next(&p, t, b) == 12 && b[6] == 0x9c && b[7] == 0x41,
	      "  map request at once, suggesting the port it had");
	CHECK_EQ_INT(in(&p, r, natpmp_map(r, 0, E0 + 500, EPORT, 7200), t + MS(5)), PMP_IN_MAPPED,
		     "  answered: mapped anew");
	CHECK_EQ_STR(na_endpoint_str(&pmp_mapping(&p)->external, s, sizeof(s)), "198.51.100.9:40001",
		     "  at the new address");
	CHECK_EQ_INT(in(&p, r, natpmp_addr(r, 0, E0 + 501, "198.51.100.9"), t + S(1)), PMP_IN_ANNOUNCE,
		     "  the announcement repeated");
	CHECK(next(&p, t + S(1), b) == 0, "  sends nothing");
	memcpy(r, "\x00\x80\x00\x03", 4);
	CHECK(in(&p, r, 12, t) == PMP_IN_BAD, "NAT-PMP announcement with an error result: bad");

	/* A gateway that comes back revives a failed attempt. */
	prm = params(PMP_ALLOW_PCP);
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	while (pmp_state(&p) == PMP_REQUESTING)
		next(&p, pmp_deadline(&p), b);
	CHECK_EQ_INT(in(&p, r, pcp_announce(r, 2), T0 + S(60)), PMP_IN_ANNOUNCE, "ANNOUNCE while failed");
	CHECK(pmp_state(&p) == PMP_REQUESTING && next(&p, T0 + S(60), b) == 60, "  tries again at once");
}

static void test_errors(void)
{
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];
	unsigned code;
	uint32_t life;

	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 8, 30, E0, 0, "0.0.0.0"), T0 + MS(10)), PMP_IN_ERROR,
		     "PCP NO_RESOURCES: error");
	CHECK(pmp_result(&p, &code, &life) == PMP_PROTO_PCP && code == 8 && life == 30,
	      "  result pcp 8, lifetime 30");
	CHECK(pmp_state(&p) == PMP_REQUESTING && pmp_deadline(&p) == T0 + MS(10) + S(30),
	      "  short-lived: retry when its lifetime has passed");
	CHECK_EQ_STR(pmp_reason(&p), "PCP NO_RESOURCES: the gateway cannot create mappings now",
		     "  with the reason");
	CHECK(next(&p, T0 + MS(10) + S(30), b) == 60, "  the retry");
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 7, 0, E0 + 30, 0, "0.0.0.0"), T0 + S(31)), PMP_IN_ERROR,
		     "NETWORK_FAILURE lifetime 0");
	CHECK(pmp_deadline(&p) == T0 + S(34), "  retry after 3 s at least");
	next(&p, T0 + S(34), b);
	in(&p, r, pcp_map(r, 10, 100000, E0 + 34, 0, "0.0.0.0"), T0 + S(35));
	CHECK(pmp_deadline(&p) == T0 + S(35) + S(1800), "USER_EX_QUOTA for 100000 s: retry after 30 min");
	next(&p, T0 + S(1835), b);
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 2, 1800, E0 + 1835, 0, "0.0.0.0"), T0 + S(1836)),
		     PMP_IN_ERROR, "NOT_AUTHORIZED: error");
	CHECK(pmp_state(&p) == PMP_FAILED && pmp_deadline(&p) == UINT64_MAX, "  long-lived: failed");
	CHECK_EQ_STR(pmp_reason(&p), "PCP NOT_AUTHORIZED: the gateway's policy refuses this mapping",
		     "  with the reason");
	CHECK(in(&p, r, pcp_map(r, 2, 1800, E0 + 1836, 0, "0.0.0.0"), T0 + S(1837)) == PMP_IN_STALE,
	      "  a second one is stale");

	static const struct { uint8_t code; bool passes; } pcp_kinds[] = {
		{ 1, false }, { 3, false }, { 4, false }, { 5, false }, { 6, false }, { 9, false },
		{ 11, true }, { 12, false }, { 13, false }, { 200, false },
	};
	bool ok = true;
	for (size_t i = 0; i < sizeof(pcp_kinds) / sizeof(pcp_kinds[0]); i++) {
		pmp_init(&p, &prm);
		pmp_start(&p, T0);
		next(&p, T0, b);
		in(&p, r, pcp_map(r, pcp_kinds[i].code, 60, E0, 0, "0.0.0.0"), T0);
		ok &= pmp_state(&p) == (pcp_kinds[i].passes ? PMP_REQUESTING : PMP_FAILED);
	}
	CHECK(ok, "PCP long- and short-lived errors as RFC 6887 7.4 classes them");
	CHECK_EQ_STR(pmp_reason(&p), "PCP error result that RFC 6887 does not define", "  unknown codes are final");

	prm = params(PMP_ALLOW_NATPMP);
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	CHECK_EQ_INT(in(&p, r, natpmp_addr(r, 3, E0, "0.0.0.0"), T0 + MS(5)), PMP_IN_ERROR,
		     "NAT-PMP Network Failure: error");
	CHECK(pmp_state(&p) == PMP_REQUESTING && pmp_deadline(&p) == T0 + MS(5) + S(30),
	      "  retry in 30 s");
	CHECK_EQ_INT(in(&p, r, natpmp_addr(r, 0, E0 + 2, "203.0.113.7"), T0 + S(2)), PMP_IN_ANNOUNCE,
		     "  the gateway announces an address");
	CHECK(next(&p, T0 + S(2), b) == 2, "  asked again at once");
	in(&p, r, natpmp_addr(r, 0, E0 + 2, "203.0.113.7"), T0 + S(2));
	next(&p, T0 + S(2), b);
	CHECK_EQ_INT(in(&p, r, natpmp_map(r, 2, E0 + 2, 0, 0), T0 + S(3)), PMP_IN_ERROR,
		     "NAT-PMP Not Authorized/Refused: error");
	CHECK(pmp_state(&p) == PMP_FAILED && pmp_result(&p, &code, NULL) == PMP_PROTO_NATPMP && code == 2,
	      "  failed, result natpmp 2");
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	in(&p, r, natpmp_addr(r, 0, E0, "203.0.113.7"), T0);
	next(&p, T0, b);
	memcpy(r, "\x00\x81\x00\x04\x00\x00\x03\xe8", 8);
	CHECK(in(&p, r, 8, T0 + MS(5)) == PMP_IN_ERROR && pmp_state(&p) == PMP_REQUESTING,
	      "NAT-PMP 8-byte Out of resources: short-lived");
}

static void test_delete(void)
{
	/* MAP with lifetime 0, the same nonce, suggesting what was granted. */
	static const uint8_t pcp_del[60] = {
		0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xff, 0xff, 0xc0, 0xa8, 0x01, 0x0a,
		0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xca, 0x6c,
		0x11, 0x00, 0x00, 0x00, 0xca, 0x6c, 0x9c, 0x41,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xff, 0xff, 0xcb, 0x00, 0x71, 0x07,
	};
	/* RFC 6886 3.4: lifetime 0 and suggested external port 0. */
	static const uint8_t natpmp_del[12] = {
		0x00, 0x01, 0x00, 0x00, 0xca, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];
	uint64_t t = T0 + S(100);

	pcp_mapped(&p, &prm);
	pmp_delete(&p, t);
	CHECK(pmp_state(&p) == PMP_DELETING && pmp_mapping(&p) == NULL, "delete: deleting");
	CHECK(next(&p, t, b) == 60 && !memcmp(b, pcp_del, 60), "  PCP delete request, byte for byte");
	CHECK(in(&p, r, pcp_map(r, 0, 7200, E0 + 100, EPORT, "203.0.113.7"), t + MS(1)) == PMP_IN_STALE,
	      "  a late grant does not count");
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 0, 0, E0 + 100, EPORT, "203.0.113.7"), t + MS(2)),
		     PMP_IN_DELETED, "  lifetime 0 answer: deleted");
	CHECK(pmp_state(&p) == PMP_DELETED && pmp_deadline(&p) == UINT64_MAX, "  and done");

	pcp_mapped(&p, &prm);
	pmp_delete(&p, t);
	uint64_t sent[8];
	unsigned n = 0;
	while (pmp_state(&p) == PMP_DELETING && n < 8) {
		uint64_t d = pmp_deadline(&p);
		if (next(&p, d, b))
			sent[n++] = d;
	}
	CHECK(n == 3 && sent[0] == t && sent[1] == t + MS(250) && sent[2] == t + MS(750),
	      "unanswered delete: three tries, 0, 0.25, 0.75 s");
	CHECK(pmp_state(&p) == PMP_DELETED && p.next_send == UINT64_MAX, "  then deleted anyway");
	CHECK_EQ_STR(pmp_reason(&p), "the delete went unanswered; the mapping will expire", "  saying so");

	natpmp_mapped(&p);
	pmp_delete(&p, t);
	CHECK(next(&p, t, b) == 12 && !memcmp(b, natpmp_del, 12), "NAT-PMP delete request, byte for byte");
	CHECK(in(&p, r, natpmp_map(r, 0, E0 + 100, EPORT, 7200), t + MS(1)) == PMP_IN_STALE,
	      "  a late renewal answer does not count");
	CHECK_EQ_INT(in(&p, r, natpmp_map(r, 0, E0 + 100, 0, 0), t + MS(1)), PMP_IN_DELETED,
		     "  answered: deleted");

	pmp_init(&p, &prm);
	pmp_delete(&p, t);
	CHECK(pmp_state(&p) == PMP_DELETED && next(&p, t, b) == 0, "nothing ever sent: deleted at once");

	pcp_mapped(&p, &prm);
	pmp_delete(&p, t);
	next(&p, t, b);
	CHECK(in(&p, r, pcp_announce(r, 1), t + MS(1)) == PMP_IN_RESTARTED && pmp_state(&p) == PMP_DELETED,
	      "a gateway restart while deleting: deleted (its mappings went with it)");
}

static void test_lost(void)
{
	/* Windows of RFC 6887 11.2.1 for a lifetime of 7200 s; the eleventh
	 * (7196.48 s) opens less than 4 s after the tenth and is skipped. */
	static const uint64_t at[] = {
		3600000000000ull, 5400000000000ull, 6300000000000ull, 6750000000000ull,
		6975000000000ull, 7087500000000ull, 7143750000000ull, 7171875000000ull,
		7185937500000ull, 7192968750000ull, 7198242187500ull,
	};
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];
	uint64_t g = T0 + MS(10), sent[64];
	unsigned n = 0;
	bool ok = true;

	pcp_mapped(&p, &prm);
	while (pmp_state(&p) == PMP_MAPPED && n < 64) {
		uint64_t d = pmp_deadline(&p);
		if (next(&p, d, b))
			sent[n++] = d;
	}
	for (unsigned i = 0; i < n && i < 11; i++)
		ok &= sent[i] == g + at[i];
	CHECK(ok && n == 11, "unanswered renewals at 1/2, 3/4, 7/8 ... of the lifetime");
	ok = true;
	for (unsigned i = 1; i < n; i++)
		ok &= sent[i] - sent[i - 1] >= S(4);
	CHECK(ok, "  never less than 4 s apart");
	CHECK(pmp_state(&p) == PMP_LOST && pmp_mapping(&p) == NULL, "lost at expiry");
	CHECK_EQ_STR(pmp_reason(&p), "renewals went unanswered until the mapping expired", "  with the reason");

	uint64_t st = 99;
	prm.rand = fake_rand;
	prm.rand_ctx = &st;
	ok = true;
	for (int i = 0; i < 20; i++) {
		pcp_mapped(&p, &prm);
		uint64_t d = pmp_mapping(&p)->renew - g;
		ok &= d >= S(3600) && d < S(4500);
	}
	CHECK(ok, "with jitter the first renewal falls in [1/2, 5/8) of the lifetime");
	prm.rand = NULL;

	/* A long-lived refusal of a renewal: the mapping lives out its time. */
	pcp_mapped(&p, &prm);
	next(&p, g + S(3600), b);
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 2, 1800, E0 + 3600, 0, "0.0.0.0"), g + S(3600)),
		     PMP_IN_ERROR, "renewal refused NOT_AUTHORIZED");
	CHECK(pmp_state(&p) == PMP_MAPPED && pmp_deadline(&p) == g + S(7200) &&
	      pmp_mapping(&p)->renew == UINT64_MAX, "  still mapped, no more renewals, until expiry");
	next(&p, g + S(7200), b);
	CHECK(pmp_state(&p) == PMP_LOST, "  then lost");
	CHECK_EQ_STR(pmp_reason(&p), "PCP NOT_AUTHORIZED: the gateway's policy refuses this mapping",
		     "  saying why");

	/* A short-lived one delays the next try past its lifetime. */
	pcp_mapped(&p, &prm);
	next(&p, g + S(3600), b);
	in(&p, r, pcp_map(r, 8, 600, E0 + 3600, 0, "0.0.0.0"), g + S(3600));
	CHECK(pmp_state(&p) == PMP_MAPPED && pmp_deadline(&p) == g + S(5400),
	      "renewal NO_RESOURCES for 600 s: the next try at 3/4");
	next(&p, g + S(5400), b);
	in(&p, r, pcp_map(r, 8, 1700, E0 + 5400, 0, "0.0.0.0"), g + S(5400));
	CHECK(pmp_deadline(&p) == g + at[6], "  for 1700 s: the first window after it (7143.75 s)");
}

static void test_remap(void)
{
	struct pmp p;
	struct pmp_params prm = params(0);
	uint8_t b[PMP_MAX_MSG], r[64];
	uint64_t t = T0 + S(200);

	pcp_mapped(&p, &prm);
	pmp_remap(&p, t);
	CHECK(pmp_state(&p) == PMP_REQUESTING && pmp_mapping(&p) == NULL, "remap: requesting");
	CHECK(next(&p, t, b) == 60 && !memcmp(b + 24, NONCE, 12) && b[42] == 0x9c && b[43] == 0x41,
	      "  MAP at once, same nonce, the old port suggested");
	CHECK_EQ_INT(in(&p, r, pcp_map(r, 0, 7200, E0 + 200, EPORT, "203.0.113.7"), t + MS(5)),
		     PMP_IN_MAPPED, "  answered: mapped (again, for the caller)");

	pmp_remap(&p, t + S(10));
	unsigned n = 0;
	while (pmp_state(&p) == PMP_REQUESTING && n < 10)
		n += next(&p, pmp_deadline(&p), b) == 60;
	CHECK(pmp_state(&p) == PMP_LOST && n == 2, "remap unanswered: lost after the start-up bound, PCP only");
	CHECK_EQ_STR(pmp_reason(&p), "the gateway stopped answering", "  with the reason");
	pmp_remap(&p, t + S(30));
	CHECK(pmp_state(&p) == PMP_REQUESTING && next(&p, t + S(30), b) == 60, "remap from lost starts over");

	natpmp_mapped(&p);
	pmp_remap(&p, t);
	CHECK(next(&p, t, b) == 2, "NAT-PMP remap asks the address first");

	/* Mapped by NAT-PMP after falling back: a remap stays with it. */
	pmp_init(&p, &prm);
	pmp_start(&p, T0);
	next(&p, T0, b);
	in(&p, (const uint8_t *)"\x00\x81\x00\x01\x00\x00\x00\x05", 8, T0);
	next(&p, T0, b);
	in(&p, r, natpmp_addr(r, 0, 5, "203.0.113.7"), T0);
	next(&p, T0, b);
	in(&p, r, natpmp_map(r, 0, 5, EPORT, 7200), T0);
	pmp_remap(&p, t);
	CHECK(pmp_state(&p) == PMP_REQUESTING && next(&p, t, b) == 2,
	      "a remap keeps the protocol that mapped (NAT-PMP after fallback)");
}

int main(void)
{
	GW.ip = ip("192.168.1.1");
	GW.port = PMP_SERVER_PORT;
	test_names();
	test_init();
	test_requests();
	test_pcp_decode();
	test_natpmp_decode();
	test_pcp_flow();
	test_fallback_answer();
	test_fallback_silence();
	test_schedule();
	test_epoch();
	test_announce();
	test_errors();
	test_delete();
	test_lost();
	test_remap();
	return unit_done();
}
