/* STUN client transactions driven by fake time: the RFC 8489 retransmission
 * schedule, failover, response matching, request options and the cache. */
#include "nat/stun_client.h"
#include "tests/unit/unit.h"

#include <stdlib.h>

#define MS(x) ((uint64_t)(x) * STUN_NS_PER_MS)

static uint8_t rand_next;

/* Deterministic, and different on every call, so transaction ids differ. */
static bool fake_rand(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	for (size_t i = 0; i < len; i++)
		buf[i] = rand_next++;
	return true;
}

static bool no_rand(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx; (void)buf; (void)len;
	return false;
}

static struct na_endpoint ep(const char *s)
{
	struct na_endpoint e;

	if (!na_endpoint_parse(&e, s, true))
		abort();
	return e;
}

/* A response to the request in ev (a SEND), built as a server would. */
static size_t answer(const struct stun_client_event *ev, uint8_t *out, size_t cap,
		     uint16_t type, const struct na_endpoint *mapped, bool xor,
		     const char *key, bool fingerprint)
{
	struct stun_msg req;
	struct stun_builder b;

	if (stun_decode(&req, ev->data, ev->len, 0))
		abort();
	stun_build_init(&b, out, cap, type, req.txid);
	if (type == STUN_BINDING_ERROR) {
		stun_build_error(&b, 420, "Unknown Attribute");
	} else if (mapped) {
		stun_build_addr(&b, xor ? STUN_ATTR_XOR_MAPPED_ADDRESS : STUN_ATTR_MAPPED_ADDRESS,
				mapped);
	}
	if (key)
		stun_build_integrity(&b, key, strlen(key));
	if (fingerprint)
		stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}

static void test_schedule(void)
{
	static const uint64_t want[] = { 0, 500, 1500, 3500, 7500, 15500, 31500 };
	struct stun_client c;
	struct stun_client_event ev;
	struct na_endpoint s1 = ep("198.18.0.10:3478");
	uint8_t first[64];
	size_t first_len;
	int sends = 1, wrong_time = 0, wrong_bytes = 0;

	stun_client_init(&c, NULL, fake_rand, NULL);
	stun_client_add_server(&c, &s1);
	unsigned id = stun_client_start(&c, NULL, 0, &ev);
	CHECK(id && ev.type == STUN_CLIENT_SEND && na_endpoint_equal(&ev.to, &s1) && ev.len == 20,
	      "start sends a 20-byte request to the server");
	memcpy(first, ev.data, ev.len);
	first_len = ev.len;
	CHECK_EQ_INT(stun_client_on_timer(&c, MS(499), &ev), STUN_CLIENT_NONE, "nothing due at 499 ms");

	for (;;) {
		uint64_t d = stun_client_next_deadline(&c);
		enum stun_client_event_type t = stun_client_on_timer(&c, d, &ev);
		if (t != STUN_CLIENT_SEND) {
			CHECK_EQ_INT(t, STUN_CLIENT_TIMEOUT, "then a timeout");
			CHECK_EQ_INT(d, MS(39500), "timeout at 39.5 s");
			CHECK(ev.txn == id && na_endpoint_equal(&ev.result.server, &s1),
			      "timeout names the transaction and server");
			break;
		}
		if (sends >= 7 || d != MS(want[sends]))
			wrong_time++;
		if (ev.len != first_len || memcmp(ev.data, first, first_len))
			wrong_bytes++;
		sends++;
	}
	CHECK_EQ_INT(sends, 7, "7 sends in all");
	CHECK_EQ_INT(wrong_time, 0, "sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s");
	CHECK_EQ_INT(wrong_bytes, 0, "retransmissions are byte-identical");
	CHECK(stun_client_next_deadline(&c) == UINT64_MAX, "idle after the timeout");
}

static void test_params(void)
{
	struct stun_client_params p = { .rto = MS(100), .rc = 3, .rm = 4 };
	struct stun_client c;
	struct stun_client_event ev;
	struct na_endpoint s1 = ep("198.18.0.10:3478");
	uint64_t at[8];
	int n = 0;

	stun_client_init(&c, &p, fake_rand, NULL);
	stun_client_add_server(&c, &s1);
	stun_client_start(&c, NULL, MS(1000), &ev);
	for (;;) {
		uint64_t d = stun_client_next_deadline(&c);
		if (stun_client_on_timer(&c, d, &ev) != STUN_CLIENT_SEND) {
			at[n++] = d;
			break;
		}
		at[n++] = d;
	}
	CHECK(n == 3 && at[0] == MS(1100) && at[1] == MS(1300) && at[2] == MS(1700),
	      "RTO 100 ms, Rc 3, Rm 4: resends at +0.1, +0.3 s, timeout at +0.7 s");
}

static void test_failover(void)
{
	struct stun_client c;
	struct stun_client_event ev;
	struct stun_client_result r;
	struct na_endpoint s1 = ep("198.18.0.10:3478"), s2 = ep("198.18.0.11:3478");
	struct na_endpoint pub = ep("203.0.113.9:40001");
	uint8_t txid1[16], buf[256];
	uint64_t age;

	stun_client_init(&c, NULL, fake_rand, NULL);
	stun_client_add_server(&c, &s1);
	stun_client_add_server(&c, &s2);
	unsigned id = stun_client_start(&c, &(struct stun_client_request){ .user = 77 }, 0, &ev);
	memcpy(txid1, ev.data + 4, 16);
	while (stun_client_next_deadline(&c) < MS(39500))
		stun_client_on_timer(&c, stun_client_next_deadline(&c), &ev);
	CHECK_EQ_INT(stun_client_next_deadline(&c), MS(39500), "first server given up at 39.5 s");
	CHECK_EQ_INT(stun_client_on_timer(&c, MS(39500), &ev), STUN_CLIENT_SEND, "fails over with a send");
	CHECK(na_endpoint_equal(&ev.to, &s2) && ev.txn == id && ev.user == 77,
	      "to the second server, same transaction handle");
	CHECK(memcmp(ev.data + 4, txid1, 16) != 0, "with a new transaction id");
	CHECK_EQ_INT(stun_client_next_deadline(&c), MS(40000), "and a fresh RTO");

	size_t n = answer(&ev, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, NULL, false);
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &s2, MS(40100), &ev), STUN_CLIENT_SUCCESS,
		     "answer from the second server");
	CHECK(na_endpoint_equal(&ev.result.mapped, &pub) && na_endpoint_equal(&ev.result.server, &s2) &&
	      ev.result.rtt == MS(600) && ev.user == 77, "result: mapped address, server, RTT");

	CHECK(stun_client_cached(&c, MS(50100), &r, &age) && na_endpoint_equal(&r.server, &s2) &&
	      na_endpoint_equal(&r.mapped, &pub), "cache holds the mapping and its server");
	CHECK_EQ_INT(age, MS(10000), "cache age 10 s");
	stun_client_start(&c, NULL, MS(60000), &ev);
	CHECK(na_endpoint_equal(&ev.to, &s2), "next transaction starts at the server that answered");

	/* Both servers silent: one timeout after 2 x 39.5 s. */
	stun_client_init(&c, NULL, fake_rand, NULL);
	stun_client_add_server(&c, &s1);
	stun_client_add_server(&c, &s2);
	stun_client_start(&c, NULL, 0, &ev);
	int sends = 1;
	enum stun_client_event_type t;
	uint64_t d;
	while ((t = stun_client_on_timer(&c, d = stun_client_next_deadline(&c), &ev)) == STUN_CLIENT_SEND)
		sends++;
	CHECK(t == STUN_CLIENT_TIMEOUT && d == MS(79000) && sends == 14,
	      "two silent servers: 14 sends, timeout at 79 s");
	CHECK(!stun_client_cached(&c, d, NULL, NULL), "no cache after a timeout");
}

static void test_matching(void)
{
	struct stun_client c;
	struct stun_client_event ev, sent;
	struct na_endpoint s1 = ep("198.18.0.10:3478"), pub = ep("[2001:db8::7]:5555");
	uint8_t buf[256];
	size_t n;

	stun_client_init(&c, NULL, fake_rand, NULL);
	stun_client_add_server(&c, &s1);
	stun_client_start(&c, NULL, 0, &sent);

	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, NULL, false);
	buf[19] ^= 0xff;
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &s1, MS(10), &ev), STUN_CLIENT_NONE,
		     "wrong transaction id ignored");
	CHECK_EQ_STR(ev.why, "no transaction with this id", "reason: no transaction");
	CHECK_EQ_INT(stun_client_next_deadline(&c), MS(500), "transaction still pending");

	CHECK_EQ_INT(stun_client_input(&c, (const uint8_t *)"\x40hello", 6, &s1, MS(10), &ev),
		     STUN_CLIENT_NONE, "non-STUN ignored");
	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, NULL, true);
	buf[n - 1] ^= 1;
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &s1, MS(10), &ev), STUN_CLIENT_NONE,
		     "bad FINGERPRINT ignored");
	memcpy(buf, sent.data, sent.len);
	CHECK_EQ_INT(stun_client_input(&c, buf, sent.len, &s1, MS(10), &ev), STUN_CLIENT_NONE,
		     "a request with our id is not an answer");

	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, false, NULL, false);
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &s1, MS(20), &ev), STUN_CLIENT_SUCCESS,
		     "MAPPED-ADDRESS-only answer accepted");
	CHECK(na_endpoint_equal(&ev.result.mapped, &pub), "mapped address from MAPPED-ADDRESS");
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &s1, MS(30), &ev), STUN_CLIENT_NONE,
		     "a duplicate answer is ignored");

	stun_client_start(&c, NULL, MS(100), &sent);
	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_ERROR, NULL, false, NULL, false);
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &s1, MS(120), &ev), STUN_CLIENT_ERROR,
		     "error response ends the transaction");
	CHECK(ev.error_code == 420 && !strcmp(ev.error_reason, "Unknown Attribute"),
	      "error code and reason reported");

	stun_client_start(&c, NULL, MS(200), &sent);
	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_SUCCESS, NULL, false, NULL, false);
	enum stun_client_event_type t = stun_client_input(&c, buf, n, &s1, MS(220), &ev);
	CHECK(t == STUN_CLIENT_ERROR && ev.error_code == 0,
	      "success without a mapped address is a failure");

	/* Two transactions at once, answered out of order. */
	struct stun_client_event a, b2;
	unsigned ida = stun_client_start(&c, NULL, MS(300), &a);
	uint8_t abuf[64];
	memcpy(abuf, a.data, a.len);
	a.data = abuf;
	unsigned idb = stun_client_start(&c, &(struct stun_client_request){ .change = STUN_CHANGE_PORT },
					 MS(300), &b2);
	n = answer(&b2, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, NULL, false);
	t = stun_client_input(&c, buf, n, &s1, MS(310), &ev);
	CHECK(t == STUN_CLIENT_SUCCESS && ev.txn == idb, "second transaction matched by id");
	n = answer(&a, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, NULL, false);
	t = stun_client_input(&c, buf, n, &s1, MS(320), &ev);
	CHECK(t == STUN_CLIENT_SUCCESS && ev.txn == ida, "first transaction matched by id");

	unsigned idc = stun_client_start(&c, NULL, MS(400), &sent);
	stun_client_cancel(&c, idc);
	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, NULL, false);
	t = stun_client_input(&c, buf, n, &s1, MS(410), &ev);
	CHECK(t == STUN_CLIENT_NONE && stun_client_next_deadline(&c) == UINT64_MAX,
	      "cancelled transaction is gone");
}

static void test_options(void)
{
	struct stun_client c;
	struct stun_client_event ev, sent;
	struct stun_msg m;
	struct na_endpoint s1 = ep("198.18.0.10:3478"), alt = ep("198.18.0.11:3479");
	struct na_endpoint pub = ep("203.0.113.9:40001");
	uint8_t buf[1600];
	size_t n;

	stun_client_init(&c, NULL, fake_rand, NULL);
	stun_client_add_server(&c, &s1);
	char key[] = "secret-key";
	char user[] = "R:L";
	struct stun_client_request req = {
		.to = &alt, .change = STUN_CHANGE_IP | STUN_CHANGE_PORT, .response_port = 4242,
		.padding = 1000, .fingerprint = true, .username = user, .key = key, .key_len = 10,
	};
	unsigned id = stun_client_start(&c, &req, 0, &sent);
	memset(key, 'x', sizeof(key) - 1); /* the client keeps its own copies */
	memset(user, 'x', sizeof(user) - 1);
	CHECK(id && na_endpoint_equal(&sent.to, &alt), "explicit endpoint used");
	CHECK(stun_decode(&m, sent.data, sent.len, 0) == STUN_OK, "request with options decodes");
	CHECK_EQ_INT(m.change, STUN_CHANGE_IP | STUN_CHANGE_PORT, "CHANGE-REQUEST sent");
	CHECK_EQ_INT(m.response_port, 4242, "RESPONSE-PORT sent");
	CHECK_EQ_INT(m.padding_len, 1000, "PADDING sent");
	CHECK(m.username_len == 3 && !memcmp(m.username, "R:L", 3), "USERNAME sent");
	CHECK(stun_check_integrity(&m, "secret-key", 10) == STUN_OK, "MESSAGE-INTEGRITY sent");
	CHECK(stun_check_fingerprint(&m) == STUN_OK, "FINGERPRINT sent");

	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, NULL, false);
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &alt, MS(5), &ev), STUN_CLIENT_NONE,
		     "keyed transaction ignores an answer without integrity");
	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, "wrong", false);
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &alt, MS(5), &ev), STUN_CLIENT_NONE,
		     "keyed transaction ignores a wrong integrity");
	n = answer(&sent, buf, sizeof(buf), STUN_BINDING_SUCCESS, &pub, true, "secret-key", true);
	CHECK_EQ_INT(stun_client_input(&c, buf, n, &alt, MS(5), &ev), STUN_CLIENT_SUCCESS,
		     "keyed transaction accepts a valid integrity");
	CHECK(!stun_client_cached(&c, MS(5), NULL, NULL), "explicit endpoint results are not cached");

	/* An explicit endpoint does not fail over. */
	stun_client_add_server(&c, &alt);
	stun_client_start(&c, &(struct stun_client_request){ .to = &alt }, 0, &ev);
	int sends = 1;
	while (stun_client_on_timer(&c, stun_client_next_deadline(&c), &ev) == STUN_CLIENT_SEND)
		sends++;
	CHECK(ev.type == STUN_CLIENT_TIMEOUT && sends == 7, "explicit endpoint: 7 sends then timeout");

	/* Limits. */
	stun_client_init(&c, NULL, fake_rand, NULL);
	unsigned got = stun_client_start(&c, NULL, 0, &ev);
	CHECK(!got && ev.why, "no server: start fails");
	stun_client_add_server(&c, &s1);
	got = stun_client_start(&c, &(struct stun_client_request){ .padding = 1490 }, 0, &ev);
	CHECK(!got, "request larger than the buffer refused");
	for (int i = 0; i < STUN_CLIENT_MAX_TXNS; i++)
		stun_client_start(&c, NULL, 0, &ev);
	got = stun_client_start(&c, NULL, 0, &ev);
	CHECK(!got && !strcmp(ev.why, "too many transactions in progress"), "transaction table full");
	int due = 0;
	while (stun_client_on_timer(&c, MS(500), &ev) == STUN_CLIENT_SEND)
		due++;
	CHECK_EQ_INT(due, STUN_CLIENT_MAX_TXNS, "on_timer hands out one resend per call");
	stun_client_init(&c, NULL, no_rand, NULL);
	stun_client_add_server(&c, &s1);
	got = stun_client_start(&c, NULL, 0, &ev);
	CHECK(!got, "no randomness: start fails");

	/* The default random source. */
	stun_client_init(&c, NULL, NULL, NULL);
	stun_client_add_server(&c, &s1);
	got = stun_client_start(&c, NULL, 0, &ev);
	CHECK(got && ev.len == 20 && stun_looks_like(ev.data, ev.len), "gnutls_rnd transaction ids");
}

int main(void)
{
	test_schedule();
	test_params();
	test_failover();
	test_matching();
	test_options();
	return unit_done();
}
