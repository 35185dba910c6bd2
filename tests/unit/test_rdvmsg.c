/* Unit tests for the rendezvous message codec (nat/rdvmsg.c). */
#include "nat/rdvmsg.h"
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <stdlib.h>

static struct na_endpoint ep4(const char *ip, uint16_t port)
{
	struct na_endpoint ep = { .port = port };
	ep.ip.family = AF_INET;
	inet_pton(AF_INET, ip, ep.ip.v4);
	return ep;
}

static struct na_endpoint ep6(const char *ip, uint16_t port)
{
	struct na_endpoint ep = { .port = port };
	ep.ip.family = AF_INET6;
	inet_pton(AF_INET6, ip, ep.ip.v6);
	return ep;
}

/* One sample of each type, with maximum counts where there are counts. */
enum { NSAMPLES = 18 };
static struct rdvmsg samples[NSAMPLES];

static void make_samples(void)
{
	struct rdvmsg *m = samples;
	memset(samples, 0, sizeof(samples));

	m->type = RDVMSG_REGISTER;		/* max keys */
	m->reg.count = RDVMSG_MAX_KEYS;
	for (int i = 0; i < RDVMSG_MAX_KEYS; i++)
		for (int j = 0; j < RDVMSG_KEY_LEN; j++)
			m->reg.keys[i][j] = (uint8_t)(i * 7 + j);
	m++;
	m->type = RDVMSG_REGISTER;		/* nobody */
	m++;
	m->type = RDVMSG_REGISTERED;
	m->registered.srflx = ep4("203.0.113.7", 40001);
	m++;
	m->type = RDVMSG_REGISTERED;
	m->registered.srflx = ep6("2001:db8::42", 65535);
	m++;
	m->type = RDVMSG_CONNECT;		/* max candidates, mixed */
	memset(m->connect.key, 0x5a, RDVMSG_KEY_LEN);
	m->connect.attempt = 0xfedcba9876543210ull;
	m->connect.rtt_us = 123456;
	memset(m->connect.secret, 0xc3, RDVMSG_SECRET_LEN);
	m->connect.mapping = 4;
	m->connect.filtering = 3;
	m->connect.token = 0x0123456789abcdefull;
	m->connect.count = RDVMSG_MAX_CANDIDATES;
	for (int i = 0; i < RDVMSG_MAX_CANDIDATES; i++) {
		struct rdvmsg_candidate *c = &m->connect.cand[i];
		c->ep = i % 2 ? ep6("fd00::1", (uint16_t)(1000 + i)) : ep4("10.0.0.1", (uint16_t)(2000 + i));
		c->type = (uint8_t)(i % 5);
		c->priority = 0x7e000000u + (uint32_t)i;
	}
	m++;
	m->type = RDVMSG_CONNECT;		/* no candidates */
	m->connect.attempt = 1;
	m++;
	m->type = RDVMSG_SYNC;
	memset(m->sync.key, 0x11, RDVMSG_KEY_LEN);
	m->sync.attempt = 42;
	m->sync.delay_us = 25000;
	m++;
	m->type = RDVMSG_ERROR;			/* max reason */
	m->error.code = 403;
	m->error.reason_len = RDVMSG_MAX_REASON;
	memset(m->error.reason, 'x', RDVMSG_MAX_REASON);
	m++;
	m->type = RDVMSG_ERROR;			/* empty reason */
	m->error.code = 0xffff;
	m++;
	m->type = RDVMSG_PING;
	m->ping.nonce = 0x0102030405060708ull;
	m++;
	m->type = RDVMSG_PONG;
	m->ping.nonce = UINT64_MAX;
	m++;
	m->type = RDVMSG_PRESENT;
	memset(m->present.key, 0x77, RDVMSG_KEY_LEN);
	m++;
	m->type = RDVMSG_NATINFO;
	m->natinfo.mapping = 4;
	m->natinfo.filtering = 3;
	m->natinfo.services = RDVMSG_SVC_AUTONAT | 0x80; /* an unknown bit is kept */
	m++;
	m->type = RDVMSG_DIALREQ;		/* max addresses, mixed */
	m->dialreq.nonce = 0x8877665544332211ull;
	m->dialreq.count = RDVMSG_MAX_DIAL;
	for (int i = 0; i < RDVMSG_MAX_DIAL; i++)
		m->dialreq.addr[i] = i % 2 ? ep6("2001:db8::7", (uint16_t)(3000 + i))
					   : ep4("198.18.4.1", (uint16_t)(41000 + i));
	m++;
	m->type = RDVMSG_DIALREQ;		/* nothing to dial */
	m->dialreq.nonce = 1;
	m++;
	m->type = RDVMSG_DIALRESP;		/* max, every status */
	m->dialresp.nonce = UINT64_MAX;
	m->dialresp.count = RDVMSG_MAX_DIAL;
	for (int i = 0; i < RDVMSG_MAX_DIAL; i++)
		m->dialresp.status[i] = (uint8_t)(i % (RDVMSG_DIAL_STATUS_MAX + 1));
	m++;
	m->type = RDVMSG_DIALRESP;		/* empty */
	m++;
	m->type = RDVMSG_UNREGISTER;		/* two keys */
	m->reg.count = 2;
	memset(m->reg.keys[0], 0x21, RDVMSG_KEY_LEN);
	memset(m->reg.keys[1], 0x42, RDVMSG_KEY_LEN);
}

static bool msg_equal(const struct rdvmsg *a, const struct rdvmsg *b)
{
	uint8_t ea[RDVMSG_MAX_FRAME], eb[RDVMSG_MAX_FRAME];
	size_t la = rdvmsg_encode(a, ea, sizeof(ea)), lb = rdvmsg_encode(b, eb, sizeof(eb));
	return la && la == lb && memcmp(ea, eb, la) == 0;
}

static bool ep_equal(const struct na_endpoint *a, const struct na_endpoint *b)
{
	return na_endpoint_equal(a, b);
}

static void test_round_trip(void)
{
	for (int i = 0; i < NSAMPLES; i++) {
		const struct rdvmsg *s = &samples[i];
		uint8_t buf[RDVMSG_MAX_FRAME];
		struct rdvmsg d;
		const char *why = NULL;
		size_t n = rdvmsg_encode(s, buf, sizeof(buf));
		CHECK(n > 0, "encode sample %d (%s)", i, rdvmsg_type_name(s->type));
		uint8_t small[RDVMSG_MAX_FRAME];
		CHECK(rdvmsg_encode(s, small, n - 1) == 0, "sample %d: one byte short does not fit", i);
		size_t need = 0;
		CHECK_EQ_INT(rdvmsg_frame(buf, n, &need, &why), (long long)n, "frame length");
		memset(&d, 0xee, sizeof(d));
		bool ok = rdvmsg_decode(&d, buf, n, &why);
		CHECK(ok, "decode sample %d (%s)", i, ok ? "" : why);
		if (!ok)
			continue;
		CHECK_EQ_INT(d.type, s->type, "type");
		bool same = false;
		switch (s->type) {
		case RDVMSG_REGISTER:
		case RDVMSG_UNREGISTER:
			same = d.reg.count == s->reg.count &&
			       !memcmp(d.reg.keys, s->reg.keys, (size_t)s->reg.count * RDVMSG_KEY_LEN);
			break;
		case RDVMSG_REGISTERED:
			same = ep_equal(&d.registered.srflx, &s->registered.srflx);
			break;
		case RDVMSG_CONNECT:
			same = !memcmp(d.connect.key, s->connect.key, RDVMSG_KEY_LEN) &&
			       d.connect.attempt == s->connect.attempt &&
			       d.connect.rtt_us == s->connect.rtt_us &&
			       !memcmp(d.connect.secret, s->connect.secret, RDVMSG_SECRET_LEN) &&
			       d.connect.mapping == s->connect.mapping &&
			       d.connect.filtering == s->connect.filtering &&
			       d.connect.token == s->connect.token &&
			       d.connect.answer == s->connect.answer &&
			       d.connect.count == s->connect.count;
			for (int j = 0; same && j < s->connect.count; j++)
				same = ep_equal(&d.connect.cand[j].ep, &s->connect.cand[j].ep) &&
				       d.connect.cand[j].type == s->connect.cand[j].type &&
				       d.connect.cand[j].priority == s->connect.cand[j].priority;
			break;
		case RDVMSG_SYNC:
			same = !memcmp(d.sync.key, s->sync.key, RDVMSG_KEY_LEN) &&
			       d.sync.attempt == s->sync.attempt && d.sync.delay_us == s->sync.delay_us;
			break;
		case RDVMSG_ERROR:
			same = d.error.code == s->error.code && d.error.reason_len == s->error.reason_len &&
			       !memcmp(d.error.reason, s->error.reason, s->error.reason_len) &&
			       d.error.reason[d.error.reason_len] == '\0';
			break;
		case RDVMSG_PING:
		case RDVMSG_PONG:
			same = d.ping.nonce == s->ping.nonce;
			break;
		case RDVMSG_PRESENT:
			same = !memcmp(d.present.key, s->present.key, RDVMSG_KEY_LEN);
			break;
		case RDVMSG_NATINFO:
			same = d.natinfo.mapping == s->natinfo.mapping &&
			       d.natinfo.filtering == s->natinfo.filtering &&
			       d.natinfo.services == s->natinfo.services;
			break;
		case RDVMSG_DIALREQ:
			same = d.dialreq.nonce == s->dialreq.nonce &&
			       d.dialreq.count == s->dialreq.count;
			for (int j = 0; same && j < s->dialreq.count; j++)
				same = ep_equal(&d.dialreq.addr[j], &s->dialreq.addr[j]);
			break;
		case RDVMSG_DIALRESP:
			same = d.dialresp.nonce == s->dialresp.nonce &&
			       d.dialresp.count == s->dialresp.count &&
			       !memcmp(d.dialresp.status, s->dialresp.status, s->dialresp.count);
			break;
		}
		CHECK(same, "sample %d fields survive the round trip", i);
		uint8_t re[RDVMSG_MAX_FRAME];
		CHECK(rdvmsg_encode(&d, re, sizeof(re)) == n && !memcmp(re, buf, n),
		      "sample %d re-encodes identically", i);
	}
}

static void test_encode_limits(void)
{
	uint8_t buf[RDVMSG_MAX_FRAME];
	struct rdvmsg m;

	m = samples[0];
	m.reg.count = RDVMSG_MAX_KEYS + 1;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses 65 keys");
	m = samples[4];
	m.connect.count = RDVMSG_MAX_CANDIDATES + 1;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses 17 candidates");
	m = samples[4];
	m.connect.cand[3].ep.port = 0;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses a candidate with port 0");
	m = samples[4];
	m.connect.cand[3].ep.ip.family = 0;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses an unset family");
	m = samples[4];
	m.connect.cand[3].type = 5;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses an unknown candidate type");
	m = samples[2];
	m.registered.srflx.port = 0;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses REGISTERED with port 0");
	m = samples[7];
	m.error.reason_len = RDVMSG_MAX_REASON + 1;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses a 129-byte reason");
	m.type = 0;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses type 0");
	char longr[RDVMSG_MAX_REASON + 2];
	memset(longr, 'y', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = 0;
	CHECK(rdvmsg_encode_error(buf, sizeof(buf), 1, longr) == 0, "encode_error refuses a long reason");
	size_t n = rdvmsg_encode_error(buf, sizeof(buf), 404, "unknown peer");
	static const uint8_t want_err[] = { 5, 0, 0, 14, 0x01, 0x94, 'u', 'n', 'k', 'n', 'o', 'w', 'n', ' ', 'p', 'e', 'e', 'r' };
	CHECK(n == sizeof(want_err) && !memcmp(buf, want_err, n), "encode_error bytes");
	n = rdvmsg_encode_ping(buf, sizeof(buf), true, 0x0a0b0c0d0e0f1011ull);
	static const uint8_t want_pong[] = { 7, 0, 0, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11 };
	CHECK(n == sizeof(want_pong) && !memcmp(buf, want_pong, n), "encode_ping (pong) bytes");
}

static void test_connect_vector(void)
{
	static const uint8_t want[] = {
		0x03, 0x00, 0x00, 0x6e,				/* CONNECT, flags 0, body 110 */
		0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,	/* key */
		0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
		0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
		0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,	/* attempt */
		0x00, 0x00, 0x13, 0x88,				/* rtt 5000 us */
		0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,	/* secret */
		0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
		0x02, 0x03,					/* mapping EIM, filtering APDF */
		0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,	/* token */
		0x01,						/* an answer */
		0x02,						/* 2 candidates */
		0x04, 0x00, 0xca, 0x6c, 192, 0, 2, 1,		/* 192.0.2.1:51820 */
		0x01, 0x6e, 0x00, 0x01, 0xff,			/* srflx, prio */
		0x06, 0x00, 0x01, 0xbb,				/* [2001:db8::1]:443 */
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
		0x00, 0x7e, 0x00, 0x00, 0xff,			/* host, prio */
	};
	struct rdvmsg m = { .type = RDVMSG_CONNECT };
	memset(m.connect.key, 0xaa, RDVMSG_KEY_LEN);
	m.connect.attempt = 0x0102030405060708ull;
	m.connect.rtt_us = 5000;
	for (int i = 0; i < RDVMSG_SECRET_LEN; i++)
		m.connect.secret[i] = (uint8_t)(0x10 + i);
	m.connect.mapping = 2;
	m.connect.filtering = 3;
	m.connect.token = 0xfedcba9876543210ull;
	m.connect.answer = 1;
	m.connect.count = 2;
	m.connect.cand[0] = (struct rdvmsg_candidate){ ep4("192.0.2.1", 51820), RDVMSG_CAND_SRFLX, 0x6e0001ff };
	m.connect.cand[1] = (struct rdvmsg_candidate){ ep6("2001:db8::1", 443), RDVMSG_CAND_HOST, 0x7e0000ff };

	uint8_t buf[RDVMSG_MAX_FRAME];
	size_t n = rdvmsg_encode(&m, buf, sizeof(buf));
	CHECK_EQ_INT(n, sizeof(want), "CONNECT vector length");
	CHECK_EQ_MEM(buf, want, sizeof(want), "CONNECT vector bytes");
	struct rdvmsg d;
	const char *why = NULL;
	CHECK(rdvmsg_decode(&d, want, sizeof(want), &why) && msg_equal(&d, &m), "CONNECT vector decodes");
}

static void test_dial_vectors(void)
{
	static const uint8_t req[] = {
		0x0a, 0x00, 0x00, 0x19,				/* DIALREQ, body 25 */
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,	/* nonce */
		0x02,						/* 2 addresses */
		0x04, 0x00, 0xa0, 0x29, 198, 18, 4, 1,		/* 198.18.4.1:41001 */
		0x04, 0x00, 0xa0, 0x29, 10, 4, 0, 2,		/* 10.4.0.2:41001 */
	};
	static const uint8_t resp[] = {
		0x0b, 0x00, 0x00, 0x0b,				/* DIALRESP, body 11 */
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,	/* nonce */
		0x02, 0x00, 0x02,				/* dialed, private */
	};
	struct rdvmsg m = { .type = RDVMSG_DIALREQ }, d;
	uint8_t buf[RDVMSG_MAX_FRAME];
	const char *why = NULL;
	size_t n;

	m.dialreq.nonce = 0x0102030405060708ull;
	m.dialreq.count = 2;
	m.dialreq.addr[0] = ep4("198.18.4.1", 41001);
	m.dialreq.addr[1] = ep4("10.4.0.2", 41001);
	n = rdvmsg_encode(&m, buf, sizeof(buf));
	CHECK(n == sizeof(req) && !memcmp(buf, req, n), "DIALREQ vector bytes");
	CHECK(rdvmsg_decode(&d, req, sizeof(req), &why) && msg_equal(&d, &m), "DIALREQ vector decodes");
	m = (struct rdvmsg){ .type = RDVMSG_DIALRESP };
	m.dialresp.nonce = 0x0102030405060708ull;
	m.dialresp.count = 2;
	m.dialresp.status[0] = RDVMSG_DIAL_DIALED;
	m.dialresp.status[1] = RDVMSG_DIAL_PRIVATE;
	n = rdvmsg_encode(&m, buf, sizeof(buf));
	CHECK(n == sizeof(resp) && !memcmp(buf, resp, n), "DIALRESP vector bytes");
	CHECK(rdvmsg_decode(&d, resp, sizeof(resp), &why) && msg_equal(&d, &m), "DIALRESP vector decodes");

	/* Strictness. */
	memcpy(buf, resp, sizeof(resp));
	buf[sizeof(resp) - 1] = RDVMSG_DIAL_STATUS_MAX + 1;
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, sizeof(resp), &why) && why && !strcmp(why, "unknown dial status"),
	      "DIALRESP with status 5 refused");
	m.dialresp.status[1] = RDVMSG_DIAL_STATUS_MAX + 1;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses an unknown dial status");
	m.dialresp.status[1] = 0;
	m.dialresp.count = RDVMSG_MAX_DIAL + 1;
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses 9 statuses");
	memcpy(buf, req, sizeof(req));
	buf[12] = 1;					/* count 1, 2 addresses' bytes */
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, sizeof(req), &why) && why, "DIALREQ with a short count refused");
	memcpy(buf, req, sizeof(req));
	buf[15] = buf[16] = 0;				/* first port 0 */
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, sizeof(req), &why) && why && !strcmp(why, "port zero"),
	      "DIALREQ with port 0 refused");
	m = (struct rdvmsg){ .type = RDVMSG_DIALREQ };
	for (int i = 0; i < RDVMSG_MAX_DIAL; i++)
		m.dialreq.addr[i] = ep4("198.18.4.1", 1);
	m.dialreq.count = RDVMSG_MAX_DIAL + 1;	/* the encoder must not look past 8 */
	CHECK(rdvmsg_encode(&m, buf, sizeof(buf)) == 0, "encode refuses 9 addresses");
	static const uint8_t nine[] = { RDVMSG_DIALREQ, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 9 };
	why = NULL;
	CHECK(!rdvmsg_decode(&d, nine, sizeof(nine), &why) && why &&
	      !strcmp(why, "too many addresses"), "DIALREQ count 9 refused");
	CHECK_EQ_STR(rdvmsg_dial_status_name(RDVMSG_DIAL_NOT_YOURS), "not the requester's address",
		     "status names");
}

static void test_truncation(void)
{
	for (int i = 0; i < NSAMPLES; i++) {
		uint8_t buf[RDVMSG_MAX_FRAME];
		size_t n = rdvmsg_encode(&samples[i], buf, sizeof(buf));
		int bad = 0;
		for (size_t k = 0; k < n; k++) {
			struct rdvmsg d;
			size_t need = 0;
			const char *why = NULL;
			ssize_t f = rdvmsg_frame(buf, k, &need, &why);
			if (f != 0 || need <= k || need > n)
				bad++;
			why = NULL;
			if (rdvmsg_decode(&d, buf, k, &why) || !why)
				bad++;
		}
		CHECK(bad == 0, "sample %d: all %zu truncations need more and fail to decode", i, n);
	}
}

/* Sets every value of the field of width w at off but the right one, and
 * demands that the frame is refused with a reason. Returns failures. */
static int mutate_field(const uint8_t *orig, size_t n, size_t off, int w, bool shorter_ok)
{
	uint8_t buf[RDVMSG_MAX_FRAME];
	unsigned right = w == 1 ? orig[off] : (unsigned)(orig[off] << 8 | orig[off + 1]);
	unsigned top = w == 1 ? 0xff : 0xffff;
	int bad = 0;

	for (unsigned v = 0; v <= top; v++) {
		if (v == right)
			continue;
		memcpy(buf, orig, n);
		if (w == 1) {
			buf[off] = (uint8_t)v;
		} else {
			buf[off] = (uint8_t)(v >> 8);
			buf[off + 1] = (uint8_t)v;
		}
		struct rdvmsg d;
		const char *why = NULL;
		if (rdvmsg_decode(&d, buf, n, &why) || !why)
			bad++;
		/* As a stream: whatever the header delimits must not decode
		 * either (except a shorter ERROR reason, which is valid). */
		size_t need;
		why = NULL;
		ssize_t f = rdvmsg_frame(buf, n, &need, &why);
		if (f < 0 && !why)
			bad++;
		if (f > 0 && !shorter_ok) {
			why = NULL;
			if (rdvmsg_decode(&d, buf, (size_t)f, &why) || !why)
				bad++;
		}
	}
	return bad;
}

static void test_mutations(void)
{
	for (int i = 0; i < NSAMPLES; i++) {
		uint8_t buf[RDVMSG_MAX_FRAME];
		size_t n = rdvmsg_encode(&samples[i], buf, sizeof(buf));
		const struct rdvmsg *s = &samples[i];
		CHECK_EQ_INT(mutate_field(buf, n, 2, 2, s->type == RDVMSG_ERROR), 0,
			     "every wrong body length refused");
		switch (s->type) {
		case RDVMSG_REGISTER:
		case RDVMSG_UNREGISTER:
			CHECK_EQ_INT(mutate_field(buf, n, 4, 2, false), 0, "every wrong key count refused");
			break;
		case RDVMSG_REGISTERED:
			CHECK_EQ_INT(mutate_field(buf, n, 4, 1, false), 0, "every wrong family refused");
			break;
		case RDVMSG_DIALREQ:
			CHECK_EQ_INT(mutate_field(buf, n, 12, 1, false), 0,
				     "every wrong address count refused");
			if (s->dialreq.count)
				CHECK_EQ_INT(mutate_field(buf, n, 13, 1, false), 0,
					     "every wrong family of the first address refused");
			break;
		case RDVMSG_DIALRESP:
			CHECK_EQ_INT(mutate_field(buf, n, 12, 1, false), 0,
				     "every wrong status count refused");
			break;
		case RDVMSG_CONNECT: {
			size_t cnt = 4 + RDVMSG_KEY_LEN + 8 + 4 + RDVMSG_SECRET_LEN + 2 + 8 + 1;
			CHECK_EQ_INT(mutate_field(buf, n, cnt, 1, false), 0, "every wrong candidate count refused");
			if (s->connect.count)
				CHECK_EQ_INT(mutate_field(buf, n, cnt + 1, 1, false), 0,
					     "every wrong family of the first candidate refused");
			break;
		}
		default:
			break;
		}
	}

	/* Specific reasons. */
	uint8_t buf[RDVMSG_MAX_FRAME];
	struct rdvmsg d;
	const char *why;
	size_t n = rdvmsg_encode(&samples[2], buf, sizeof(buf));	/* REGISTERED v4 */
	buf[6] = buf[7] = 0;
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, n, &why) && why && !strcmp(why, "port zero"), "REGISTERED port 0 refused");
	n = rdvmsg_encode(&samples[2], buf, sizeof(buf));
	buf[5] = 1;
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, n, &why) && why && !strcmp(why, "address reserved byte set"),
	      "address reserved byte refused");
	n = rdvmsg_encode(&samples[4], buf, sizeof(buf));	/* CONNECT */
	buf[4 + 72 + 8] = 9;					/* first (v4) candidate's type */
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, n, &why) && why && !strcmp(why, "unknown candidate type"),
	      "unknown candidate type refused");
	n = rdvmsg_encode(&samples[4], buf, sizeof(buf));
	buf[4 + 60] = 5;					/* mapping */
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, n, &why) && why && !strcmp(why, "unknown NAT behaviour"),
	      "unknown NAT mapping refused");
	struct rdvmsg bad = samples[4];
	bad.connect.filtering = 4;
	CHECK(rdvmsg_encode(&bad, buf, sizeof(buf)) == 0, "encode refuses an unknown NAT filtering");
	n = rdvmsg_encode(&samples[4], buf, sizeof(buf));
	buf[4 + 70] = 2;					/* answer */
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, n, &why) && why && !strcmp(why, "answer flag not 0 or 1"),
	      "answer flag 2 refused");
	n = rdvmsg_encode(&samples[7], buf, sizeof(buf));	/* ERROR */
	buf[10] = 0;
	why = NULL;
	CHECK(!rdvmsg_decode(&d, buf, n, &why) && why && !strcmp(why, "NUL in reason"), "NUL in reason refused");
	n = rdvmsg_encode(&samples[9], buf, sizeof(buf));
	buf[1] = 0x80;
	why = NULL;
	CHECK(rdvmsg_frame(buf, 2, NULL, &why) == -1 && why && !strcmp(why, "flags set"), "flags refused early");
	buf[0] = 0;
	why = NULL;
	CHECK(rdvmsg_frame(buf, 1, NULL, &why) == -1 && why && !strcmp(why, "unknown message type"),
	      "type 0 refused from its first byte");
	buf[0] = 13;
	CHECK(rdvmsg_frame(buf, 1, NULL, NULL) == -1, "type 13 refused");
	static const uint8_t natinfo_bad[] = { RDVMSG_NATINFO, 0, 0, 3, 5, 0, 0 };
	why = NULL;
	CHECK(!rdvmsg_decode(&d, natinfo_bad, sizeof(natinfo_bad), &why) && why &&
	      !strcmp(why, "unknown NAT behaviour"), "NATINFO with mapping 5 refused");
	static const uint8_t huge[] = { RDVMSG_ERROR, 0, 0xff, 0xff };
	why = NULL;
	CHECK(rdvmsg_frame(huge, 4, NULL, &why) == -1 && why && !strcmp(why, "body too long"),
	      "65535-byte body refused before buffering");
	size_t need = 0;
	CHECK(rdvmsg_frame(NULL, 0, &need, NULL) == 0 && need == RDVMSG_HEADER_LEN, "empty buffer needs a header");
}

/* Feeds the stream in chunks ending at the given cut points; decodes
 * frames as they complete. Returns the number of messages decoded, or -1. */
static int feed(const uint8_t *stream, size_t len, const size_t *cuts, int ncuts,
		struct rdvmsg *out, int max)
{
	static uint8_t acc[8 * RDVMSG_MAX_FRAME * 4];
	size_t have = 0, pos = 0;
	int got = 0;

	for (int c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : len;
		memcpy(acc + have, stream + pos, end - pos);
		have += end - pos;
		pos = end;
		for (;;) {
			size_t need = 0;
			const char *why = NULL;
			ssize_t f = rdvmsg_frame(acc, have, &need, &why);
			if (f < 0)
				return -1;
			if (f == 0) {
				if (need <= have)
					return -1;
				break;
			}
			if (got == max || !rdvmsg_decode(&out[got++], acc, (size_t)f, &why))
				return -1;
			memmove(acc, acc + f, have - (size_t)f);
			have -= (size_t)f;
		}
	}
	return have == 0 ? got : -1;
}

static void test_stream(void)
{
	static uint8_t stream[NSAMPLES * RDVMSG_MAX_FRAME];
	static struct rdvmsg out[NSAMPLES + 1];
	size_t len = 0;

	for (int i = 0; i < NSAMPLES; i++)
		len += rdvmsg_encode(&samples[i], stream + len, sizeof(stream) - len);

	int bad = 0;
	for (size_t s = 0; s <= len; s++) {
		int got = feed(stream, len, &s, 1, out, NSAMPLES + 1);
		if (got != NSAMPLES) {
			bad++;
			continue;
		}
		for (int i = 0; i < NSAMPLES; i++)
			if (!msg_equal(&out[i], &samples[i]))
				bad++;
	}
	CHECK(bad == 0, "stream of %d frames (%zu bytes) split at every one of %zu boundaries", NSAMPLES, len, len + 1);

	/* Every byte boundary at once: one byte at a time. */
	static size_t cuts[NSAMPLES * RDVMSG_MAX_FRAME];
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	int got = feed(stream, len, cuts, (int)len - 1, out, NSAMPLES + 1);
	bad = got != NSAMPLES;
	for (int i = 0; !bad && i < NSAMPLES; i++)
		bad = !msg_equal(&out[i], &samples[i]);
	CHECK(!bad, "stream fed one byte at a time");

	/* Pairs of random cut points. */
	srand(7);
	bad = 0;
	for (int t = 0; t < 2000; t++) {
		size_t c[3];
		c[0] = (size_t)rand() % (len + 1);
		c[1] = c[0] + (size_t)rand() % (len + 1 - c[0]);
		c[2] = c[1] + (size_t)rand() % (len + 1 - c[1]);
		if (feed(stream, len, c, 3, out, NSAMPLES + 1) != NSAMPLES)
			bad++;
	}
	CHECK(bad == 0, "stream split at 2000 random triples of cut points");
}

static void test_relay(void)
{
	uint8_t key[RDVMSG_KEY_LEN], d[64];
	const uint8_t *k, *p;
	size_t n;

	for (int i = 0; i < RDVMSG_KEY_LEN; i++)
		key[i] = (uint8_t)(0xa0 + i);
	rdvmsg_relay_hdr(d, key);
	CHECK(d[0] == RDVMSG_DGRAM_RELAY && !memcmp(d + 1, key, RDVMSG_KEY_LEN),
	      "relay header: type then the key");
	memcpy(d + RDVMSG_RELAY_HDR, "\xc0QUIC", 5);
	CHECK(rdvmsg_relay_parse(d, RDVMSG_RELAY_HDR + 5, &k, &p, &n) && n == 5 &&
	      p == d + RDVMSG_RELAY_HDR && !memcmp(k, key, RDVMSG_KEY_LEN),
	      "relay datagram parses to its key and packet");
	CHECK(!rdvmsg_relay_parse(d, RDVMSG_RELAY_HDR, &k, &p, &n), "an empty packet is refused");
	CHECK(!rdvmsg_relay_parse(d, 10, &k, &p, &n), "a short datagram is refused");
	d[0] = 2;
	CHECK(!rdvmsg_relay_parse(d, RDVMSG_RELAY_HDR + 5, &k, &p, &n), "an unknown type is refused");
}

int main(void)
{
	test_relay();
	make_samples();
	test_round_trip();
	test_encode_limits();
	test_connect_vector();
	test_dial_vectors();
	test_truncation();
	test_mutations();
	test_stream();
	return unit_done();
}
