/* Unit tests for AutoNAT (nat/autonat.c, nat/autonat_client.c): the
 * dial-back's bytes, the server's policy for every refusal and the allowed
 * case, its rate limits, and the client's rules and schedule. */
#include "nat/autonat.h"
#include "nat/stun.h"
#include "tests/unit/unit.h"

#include <arpa/inet.h>

#define S AUTONAT_SEC

static struct na_endpoint ep(const char *ip, uint16_t port)
{
	struct na_endpoint e = { .port = port };

	if (inet_pton(AF_INET, ip, e.ip.v4) == 1)
		e.ip.family = AF_INET;
	else if (inet_pton(AF_INET6, ip, e.ip.v6) == 1)
		e.ip.family = AF_INET6;
	return e;
}

static const uint8_t txid12[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

/* ---- the dial-back ---- */

static void test_dialback(void)
{
	static const uint8_t want[AUTONAT_DIALBACK_LEN] = {
		0x00, 0x11, 0x00, 0x10,			/* Binding indication, 16 bytes */
		0x21, 0x12, 0xa4, 0x42,			/* magic cookie */
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,	/* transaction id */
		0xc0, 0xa8, 0x00, 0x0c,			/* DIAL-BACK, 12 bytes */
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, /* nonce */
		0x05, 0x00, 0x00, 0x00,			/* index 5, reserved */
	};
	uint8_t buf[64];
	uint64_t nonce = 0;
	uint8_t idx = 0xff;
	struct stun_msg m;
	int bad = 0;

	CHECK_EQ_INT(autonat_dialback_build(buf, sizeof(buf), txid12, 0x0123456789abcdefull, 5),
		     AUTONAT_DIALBACK_LEN, "dial-back length");
	CHECK_EQ_MEM(buf, want, sizeof(want), "dial-back bytes");
	CHECK(autonat_dialback_parse(want, sizeof(want), &nonce, &idx) &&
	      nonce == 0x0123456789abcdefull && idx == 5, "dial-back parses to its nonce and index");
	CHECK(stun_decode(&m, want, sizeof(want), 0) == STUN_OK && m.type == STUN_BINDING_INDICATION &&
	      !stun_has(&m, STUN_ATTR_PATH_TOKEN) && m.n_unknown_required == 0,
	      "it is a valid STUN Binding indication, no PATH-TOKEN (XDP passes it)");
	CHECK(stun_looks_like(want, sizeof(want)), "the RFC 9443 demux sees STUN");
	CHECK_EQ_INT(autonat_dialback_build(buf, AUTONAT_DIALBACK_LEN - 1, txid12, 1, 0), 0,
		     "one byte short of room: nothing built");
	CHECK_EQ_INT(autonat_dialback_build(buf, sizeof(buf), txid12, 1, RDVMSG_MAX_DIAL), 0,
		     "index 8 is never built");
	CHECK(!autonat_dialback_parse(want, sizeof(want) - 1, &nonce, &idx), "a short one is refused");
	memcpy(buf, want, sizeof(want));
	buf[sizeof(want)] = 0;
	CHECK(!autonat_dialback_parse(buf, sizeof(want) + 1, &nonce, &idx), "a long one is refused");

	/* Every value of every byte: only the transaction id, the nonce and
	 * another index below 8 still parse. */
	for (size_t off = 0; off < sizeof(want); off++) {
		for (unsigned v = 0; v < 256; v++) {
			bool free_byte = (off >= 8 && off < 20) || (off >= 24 && off < 32) ||
					 (off == 32 && v < RDVMSG_MAX_DIAL);

			if (v == want[off])
				continue;
			memcpy(buf, want, sizeof(want));
			buf[off] = (uint8_t)v;
			if (autonat_dialback_parse(buf, sizeof(want), &nonce, &idx) != free_byte)
				bad++;
		}
	}
	CHECK_EQ_INT(bad, 0, "every mutation of a fixed byte refused, of a free one accepted");
	/* A keepalive is not a dial-back. */
	size_t n = stun_build_keepalive(buf, sizeof(buf), want + 4, 42, false);
	CHECK(n && !autonat_dialback_parse(buf, n, &nonce, &idx), "a keepalive is not a dial-back");
}

/* ---- the server ---- */

static uint8_t decide1(struct autonat_server *s, struct tbucket *peer, const char *observed,
		       struct na_endpoint target, uint64_t now)
{
	struct rdvmsg_dialreq req = { .nonce = 7, .count = 1 };
	struct rdvmsg_dialresp resp;
	struct na_endpoint o = ep(observed, 1);
	unsigned n;

	req.addr[0] = target;
	n = autonat_server_decide(s, peer, &o.ip, &req, now, &resp);
	if (resp.nonce != 7 || resp.count != 1 || n != (resp.status[0] == RDVMSG_DIAL_DIALED))
		return 0xee;
	return resp.status[0];
}

static void test_policy(void)
{
	static const char *const special[] = {
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1",
		"100.64.0.1", "100.127.255.254", "127.0.0.1", "127.1.2.3", "169.254.1.1",
		"224.0.0.1", "239.255.255.250", "255.255.255.255", "0.0.0.0", "0.1.2.3",
		"240.0.0.1", "fc00::1", "fdff::1", "::1", "::", "fe80::1", "ff02::1",
		"::ffff:10.0.0.1", "::ffff:198.18.4.1",
	};
	static const char *const allowed[] = {
		"198.18.4.1", "198.19.255.254", "198.18.0.10", "8.8.8.8", "100.63.255.255",
		"100.128.0.1", "172.15.255.255", "172.32.0.1", "192.169.0.1", "223.255.255.254",
		"11.0.0.1", "2001:db8::1", "2a00::1",
	};
	struct autonat_server s4, s6, none;
	struct tbucket peer;
	int bad = 0;

	autonat_server_init(&s4, AF_INET, 0);
	autonat_server_init(&s6, AF_INET6, 0);
	autonat_server_init(&none, 0, 0);
	for (size_t i = 0; i < sizeof(special) / sizeof(*special); i++) {
		struct na_endpoint t = ep(special[i], 4000);
		struct autonat_server *s = t.ip.family == AF_INET ? &s4 : &s6;

		autonat_peer_limit_init(&peer, 0);
		/* Even when it is the address the server sees. */
		if (decide1(s, &peer, special[i], t, 0) != RDVMSG_DIAL_PRIVATE) {
			printf("# %s not refused as private\n", special[i]);
			bad++;
		}
	}
	CHECK_EQ_INT(bad, 0, "every private and special-purpose target refused as private (24 kinds)");
	CHECK_EQ_INT(s4.st.dialed + s6.st.dialed, 0, "... and none dialed");
	bad = 0;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(*allowed); i++) {
		struct na_endpoint t = ep(allowed[i], 4000);
		struct autonat_server *s = t.ip.family == AF_INET ? &s4 : &s6;

		autonat_peer_limit_init(&peer, 0);
		if (decide1(s, &peer, allowed[i], t, 0) != RDVMSG_DIAL_DIALED) {
			printf("# %s not dialed\n", allowed[i]);
			bad++;
		}
	}
	CHECK_EQ_INT(bad, 0, "public targets at the requester's own IP are dialed, 198.18/15 too");

	autonat_peer_limit_init(&peer, 0);
	CHECK_EQ_INT(decide1(&s4, &peer, "198.18.4.1", ep("198.18.4.1", 9), 0), RDVMSG_DIAL_DIALED,
		     "any port of the requester's IP is dialed");
	CHECK_EQ_INT(decide1(&s4, &peer, "198.18.4.1", ep("198.18.4.2", 41001), 0),
		     RDVMSG_DIAL_NOT_YOURS, "another IP than the requester's: not yours");
	CHECK_EQ_INT(decide1(&s4, &peer, "198.18.4.1", ep("8.8.8.8", 53), 0), RDVMSG_DIAL_NOT_YOURS,
		     "no reflection onto a third party");
	CHECK_EQ_INT(decide1(&s4, &peer, "198.18.4.1", ep("10.4.0.2", 41001), 0),
		     RDVMSG_DIAL_PRIVATE, "a private target at another IP: private comes first");
	CHECK_EQ_INT(decide1(&s4, &peer, "2001:db8::1", ep("2001:db8::1", 41001), 0),
		     RDVMSG_DIAL_UNAVAILABLE,
		     "the requester's own IP, of another family than the dialer's: unavailable");
	CHECK_EQ_INT(decide1(&s4, &peer, "198.18.4.1", ep("2001:db8::1", 41001), 0),
		     RDVMSG_DIAL_NOT_YOURS, "an IPv6 address of a requester seen on IPv4: not yours");
	CHECK_EQ_INT(decide1(&none, &peer, "198.18.4.1", ep("198.18.4.1", 41001), 0),
		     RDVMSG_DIAL_UNAVAILABLE, "no second address: unavailable");
	CHECK_EQ_INT(decide1(&none, &peer, "198.18.4.1", ep("10.0.0.1", 41001), 0),
		     RDVMSG_DIAL_UNAVAILABLE, "... whatever the target");

	/* A mixed request; and the bound on what one request sends. */
	struct rdvmsg_dialreq req = { .nonce = 99, .count = RDVMSG_MAX_DIAL };
	struct rdvmsg_dialresp resp;
	struct na_endpoint o = ep("198.18.4.1", 1);
	struct autonat_server s;

	autonat_server_init(&s, AF_INET, 0);
	autonat_peer_limit_init(&peer, 0);
	for (int i = 0; i < RDVMSG_MAX_DIAL; i++)
		req.addr[i] = ep("198.18.4.1", (uint16_t)(41000 + i));
	req.addr[1] = ep("10.4.0.2", 41001);
	req.addr[2] = ep("198.18.9.9", 41001);
	unsigned n = autonat_server_decide(&s, &peer, &o.ip, &req, 0, &resp);
	CHECK(n == 6 && resp.count == 8 && resp.nonce == 99 &&
	      resp.status[0] == RDVMSG_DIAL_DIALED && resp.status[1] == RDVMSG_DIAL_PRIVATE &&
	      resp.status[2] == RDVMSG_DIAL_NOT_YOURS && resp.status[7] == RDVMSG_DIAL_DIALED,
	      "mixed request: each address its own status, in order");
	CHECK(s.st.requests == 1 && s.st.dialed == 6 && s.st.private_ == 1 && s.st.not_yours == 1,
	      "counters by reason");
	CHECK(n * AUTONAT_DIALBACK_LEN <= AUTONAT_MAX_BYTES && AUTONAT_MAX_BYTES <= 300,
	      "one request sends at most %u bytes", (unsigned)AUTONAT_MAX_BYTES);
}

static unsigned dial_n(struct autonat_server *s, struct tbucket *peer, uint64_t now)
{
	struct rdvmsg_dialreq req = { .nonce = 1, .count = 2 };
	struct rdvmsg_dialresp resp;
	struct na_endpoint o = ep("198.18.4.1", 1);
	unsigned n;

	req.addr[0] = ep("198.18.4.1", 41001);
	req.addr[1] = ep("10.4.0.2", 41001);
	n = autonat_server_decide(s, peer, &o.ip, &req, now, &resp);
	if (n == 0 && (resp.status[0] != RDVMSG_DIAL_RATE_LIMITED ||
		       resp.status[1] != RDVMSG_DIAL_PRIVATE))
		return 99; /* rate limited must not hide the other refusals */
	return n;
}

static void test_rate_limits(void)
{
	struct autonat_server s;
	struct tbucket peers[6];
	unsigned got = 0;

	/* Per peer: 12 at once, then one per 5 s. */
	autonat_server_init(&s, AF_INET, 0);
	autonat_peer_limit_init(&peers[0], 0);
	for (int i = 0; i < 20; i++)
		got += dial_n(&s, &peers[0], (uint64_t)i * 1000);
	CHECK_EQ_INT(got, AUTONAT_PEER_PER_MIN, "per peer: 12 of 20 requests at once are dialed");
	CHECK_EQ_INT(s.st.rate_limited, 8, "... and 8 rate limited");
	CHECK_EQ_INT(dial_n(&s, &peers[0], 4 * S), 0, "4 s later: still limited");
	CHECK_EQ_INT(dial_n(&s, &peers[0], 5 * S + 1000), 1, "5 s later: one more (12 a minute)");
	CHECK_EQ_INT(dial_n(&s, &peers[0], 5 * S + 2000), 0, "... and only one");
	got = 0;
	for (int i = 0; i < 12 * 10; i++)
		got += dial_n(&s, &peers[0], 10 * S + (uint64_t)i * S / 2);
	CHECK(got >= 11 && got <= 13, "a request every 0.5 s for a minute: %u dialed (12 a minute)", got);

	/* Refused requests cost nothing. */
	autonat_server_init(&s, AF_INET, 0);
	autonat_peer_limit_init(&peers[0], 0);
	{
		struct rdvmsg_dialreq req = { .nonce = 1, .count = 1 };
		struct rdvmsg_dialresp resp;
		struct na_endpoint o = ep("198.18.4.1", 1);

		req.addr[0] = ep("10.0.0.1", 5);
		for (int i = 0; i < 100; i++)
			autonat_server_decide(&s, &peers[0], &o.ip, &req, 0, &resp);
	}
	CHECK_EQ_INT(dial_n(&s, &peers[0], 0), 1, "100 refused requests leave the peer's budget whole");

	/* Global: 60 in all, then one a second. */
	autonat_server_init(&s, AF_INET, 0);
	got = 0;
	for (int p = 0; p < 6; p++) {
		autonat_peer_limit_init(&peers[p], 0);
		for (int i = 0; i < 12; i++)
			got += dial_n(&s, &peers[p], 0);
	}
	CHECK_EQ_INT(got, AUTONAT_TOTAL_PER_MIN, "global: 6 peers x 12 at once, 60 dialed");
	CHECK_EQ_INT(s.st.rate_limited, 12, "... the sixth peer's 12 rate limited");
	CHECK_EQ_INT(dial_n(&s, &peers[5], S / 2), 0, "half a second later: none");
	CHECK_EQ_INT(dial_n(&s, &peers[5], S + 1), 1, "a second later: one (60 a minute)");
	/* The sixth peer was refused by the global limit only: its own
	 * budget was not spent by the refusals. */
	CHECK_EQ_INT(tbucket_level(&peers[5], S + 2) / 60, 11,
		     "a peer refused by the global limit kept its own tokens (11 left)");
	CHECK_EQ_INT(tbucket_level(&peers[4], S + 2) / 60, 0, "the fifth peer spent all 12");
}

/* ---- the client ---- */

static struct autonat_client cl;
static const struct na_endpoint *server_ep(void)
{
	static struct na_endpoint s;

	s = ep("198.18.0.10", 3478);
	return &s;
}

static unsigned drain(uint8_t kind, struct autonat_event *last)
{
	struct autonat_event ev;
	unsigned n = 0;

	while (autonat_client_event(&cl, &ev))
		if (ev.kind == kind) {
			n++;
			if (last)
				*last = ev;
		}
	return n;
}

/* One round for every due address: request, DIALRESP with status, and
 * the dial-back for each address when arrive says so. Returns the count
 * asked about. */
static unsigned round_trip(uint64_t *now, uint8_t status, bool arrive)
{
	struct rdvmsg_dialreq req;
	struct rdvmsg_dialresp resp = { 0 };
	static uint64_t nonce = 1000;
	struct na_endpoint from = ep("198.18.0.11", 50000);

	if (!autonat_client_request(&cl, *now, ++nonce, server_ep(), &req))
		return 0;
	resp.nonce = req.nonce;
	resp.count = req.count;
	for (unsigned i = 0; i < req.count; i++)
		resp.status[i] = status;
	*now += S / 100;
	if (!autonat_client_response(&cl, &resp, *now))
		return 0;
	if (status != RDVMSG_DIAL_DIALED)
		return req.count;
	if (arrive) {
		for (unsigned i = 0; i < req.count; i++)
			autonat_client_dialback(&cl, req.nonce, (uint8_t)i, &from, *now);
	} else {
		*now += AUTONAT_WAIT;
		autonat_client_tick(&cl, *now);
	}
	return req.count;
}

static void test_client_agree(void)
{
	struct na_endpoint a = ep("198.18.4.1", 41001);
	const struct autonat_addr *ad;
	struct autonat_event ev;
	uint64_t now = 100 * S;

	autonat_client_init(&cl);
	CHECK(autonat_client_watch(&cl, &a, 1, now) >= 0, "watch an address");
	CHECK_EQ_INT(autonat_client_deadline(&cl, true), now, "a new address is due at once");
	CHECK_EQ_INT(autonat_client_deadline(&cl, false), AUTONAT_NEVER,
		     "... but nothing to do while no request can go");
	ad = autonat_client_find(&cl, &a);
	CHECK(ad && ad->reach == AUTONAT_UNKNOWN, "it starts unknown");

	CHECK_EQ_INT(round_trip(&now, RDVMSG_DIAL_DIALED, true), 1, "check 1");
	CHECK(ad->reach == AUTONAT_UNKNOWN && drain(AUTONAT_EV_CHANGED, NULL) == 0,
	      "one arrived dial-back: still unknown");
	CHECK_EQ_INT(autonat_client_deadline(&cl, true), now + AUTONAT_BURST_GAP,
		     "not settled: next check a burst gap later");
	now += AUTONAT_BURST_GAP;
	round_trip(&now, RDVMSG_DIAL_DIALED, true);
	CHECK(ad->reach == AUTONAT_UNKNOWN, "two: still unknown");
	now += AUTONAT_BURST_GAP;
	round_trip(&now, RDVMSG_DIAL_DIALED, true);
	CHECK(ad->reach == AUTONAT_PUBLIC, "three agreeing: public");
	CHECK(drain(AUTONAT_EV_CHANGED, &ev) == 1 && ev.reach == AUTONAT_PUBLIC &&
	      ev.was == AUTONAT_UNKNOWN && ev.agree_ok == 3 && ev.agree_n == 3,
	      "one change event, 3 of 3");
	CHECK_EQ_INT(autonat_client_deadline(&cl, true), now + AUTONAT_RECHECK,
		     "settled: next check in a few minutes");

	/* One stray failure does not flap it; it brings a burst. */
	now += AUTONAT_RECHECK;
	round_trip(&now, RDVMSG_DIAL_DIALED, false);
	CHECK(ad->reach == AUTONAT_PUBLIC && drain(AUTONAT_EV_CHANGED, NULL) == 0,
	      "one dial-back that did not arrive: still public");
	CHECK_EQ_INT(autonat_client_deadline(&cl, true), now + AUTONAT_BURST_GAP,
		     "a disagreeing result: checked again soon");
	now += AUTONAT_BURST_GAP;
	round_trip(&now, RDVMSG_DIAL_DIALED, true);
	now += AUTONAT_BURST_GAP;
	round_trip(&now, RDVMSG_DIAL_DIALED, false);
	now += AUTONAT_BURST_GAP;
	round_trip(&now, RDVMSG_DIAL_DIALED, false);
	CHECK(ad->reach == AUTONAT_PUBLIC, "fail, ok, fail, fail: still public (not 3 in a row)");
	now += AUTONAT_BURST_GAP;
	round_trip(&now, RDVMSG_DIAL_DIALED, false);
	CHECK(ad->reach == AUTONAT_PRIVATE && drain(AUTONAT_EV_CHANGED, &ev) == 1 &&
	      ev.was == AUTONAT_PUBLIC && ev.agree_ok == 0 && ev.agree_n == 3,
	      "three failures in a row: private, one change event");

	/* The burst is bounded for an address whose results keep disagreeing. */
	autonat_client_init(&cl);
	autonat_client_watch(&cl, &a, 1, now);
	for (int i = 0; i < AUTONAT_BURST_MAX; i++) {
		round_trip(&now, RDVMSG_DIAL_DIALED, i % 2);
		now = autonat_client_deadline(&cl, true);
	}
	ad = autonat_client_find(&cl, &a);
	CHECK(ad->reach == AUTONAT_UNKNOWN && ad->due == ad->checked + AUTONAT_SLOW,
	      "alternating results: unknown, and after %d checks only one a minute",
	      AUTONAT_BURST_MAX);
}

static void test_client_refusals(void)
{
	struct na_endpoint a = ep("198.18.4.1", 41001);
	const struct autonat_addr *ad;
	struct autonat_event ev;
	uint64_t now = 10 * S;
	static const struct { uint8_t status; uint64_t next; const char *name; } cases[] = {
		{ RDVMSG_DIAL_NOT_YOURS, AUTONAT_RECHECK, "not yours: asked again in minutes" },
		{ RDVMSG_DIAL_RATE_LIMITED, AUTONAT_LIMITED_WAIT, "rate limited: asked again later" },
		{ RDVMSG_DIAL_UNAVAILABLE, AUTONAT_RECHECK, "unavailable: asked again in minutes" },
		{ RDVMSG_DIAL_PRIVATE, AUTONAT_NEVER, "private: never asked again" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		autonat_client_init(&cl);
		autonat_client_watch(&cl, &a, 1, now);
		round_trip(&now, cases[i].status, true);
		ad = autonat_client_find(&cl, &a);
		CHECK(ad->n_hist == 0 && ad->reach == AUTONAT_UNKNOWN && ad->refused == cases[i].status,
		      "%s: no result", rdvmsg_dial_status_name(cases[i].status));
		CHECK(drain(AUTONAT_EV_REFUSED, &ev) == 1 && ev.status == cases[i].status,
		      "... one refusal event");
		CHECK_EQ_INT(ad->due, cases[i].next == AUTONAT_NEVER ? AUTONAT_NEVER : now + cases[i].next,
			     cases[i].name);
	}
	autonat_client_recheck(&cl, NULL, now);
	CHECK_EQ_INT(autonat_client_deadline(&cl, true), now, "a recheck makes even that due at once");
	/* A result after a refusal clears it. */
	round_trip(&now, RDVMSG_DIAL_DIALED, true);
	CHECK(ad->refused == AUTONAT_NO_REFUSAL && ad->n_hist == 1, "a result clears the refusal");
}

static void test_client_requests(void)
{
	struct rdvmsg_dialreq req;
	struct rdvmsg_dialresp resp = { 0 };
	struct na_endpoint a = ep("198.18.4.1", 41001), b = ep("198.18.4.1", 41002);
	struct na_endpoint srv2 = ep("198.18.0.11", 50000);
	const struct autonat_addr *ad;
	uint64_t now = 5 * S;

	autonat_client_init(&cl);
	CHECK(autonat_client_watch(&cl, &a, 1, now) == autonat_client_watch(&cl, &a, 2, now),
	      "a second owner shares the address");
	CHECK(!autonat_client_unwatch(&cl, &a, 1) && autonat_client_find(&cl, &a),
	      "one owner leaving keeps it");
	CHECK(autonat_client_unwatch(&cl, &a, 2) && !autonat_client_find(&cl, &a),
	      "the last owner leaving removes it");
	struct na_endpoint bad = a;
	bad.port = 0;
	CHECK(autonat_client_watch(&cl, &bad, 1, now) < 0, "port 0 is refused");
	for (int i = 0; i < AUTONAT_MAX_ADDRS; i++) {
		struct na_endpoint e = ep("198.18.4.1", (uint16_t)(2000 + i));
		autonat_client_watch(&cl, &e, 1, now + (uint64_t)(AUTONAT_MAX_ADDRS - i));
	}
	CHECK(autonat_client_watch(&cl, &a, 1, now) < 0, "a 17th address is refused");

	/* 16 due: one request carries 8, the earliest due first. */
	now += S;
	CHECK(autonat_client_request(&cl, now, 5, server_ep(), &req) && req.count == RDVMSG_MAX_DIAL &&
	      req.nonce == 5, "one request for 8 of 16 due addresses");
	CHECK(req.addr[0].port == 2000 + AUTONAT_MAX_ADDRS - 1 && req.addr[7].port == 2008,
	      "the earliest due first");
	CHECK(!autonat_client_request(&cl, now, 6, server_ep(), &req),
	      "no second request while one is out");
	CHECK_EQ_INT(autonat_client_deadline(&cl, true), now + AUTONAT_RESP_TIMEOUT,
		     "waiting for the DIALRESP");
	resp.nonce = 5;
	resp.count = 7;
	CHECK(!autonat_client_response(&cl, &resp, now), "a DIALRESP of the wrong count is ignored");
	resp.count = 8;
	resp.nonce = 4;
	CHECK(!autonat_client_response(&cl, &resp, now), "a DIALRESP of another nonce is ignored");
	now += AUTONAT_RESP_TIMEOUT;
	autonat_client_tick(&cl, now);
	CHECK(!cl.req.active && cl.results == 0, "no DIALRESP in time: the request goes, no result");
	CHECK_EQ_INT(autonat_client_deadline(&cl, true), 5 * S + AUTONAT_MAX_ADDRS - 7,
		     "the other 8 were due all along");
	CHECK(autonat_client_request(&cl, now, 6, server_ep(), &req) && req.addr[0].port == 2007,
	      "the next request takes them, the abandoned ones later");

	/* Dial-back before the DIALRESP; one from the server itself; a bad
	 * index; an unwatched address. */
	autonat_client_init(&cl);
	autonat_client_watch(&cl, &a, 1, now);
	autonat_client_watch(&cl, &b, 1, now);
	autonat_client_request(&cl, now, 77, server_ep(), &req);
	CHECK(autonat_client_dialback(&cl, 77, 0, &srv2, now), "a dial-back before the DIALRESP is ours");
	CHECK(!autonat_client_dialback(&cl, 78, 0, &srv2, now), "another nonce is not ours");
	CHECK(!autonat_client_dialback(&cl, 77, 2, &srv2, now), "an index past the request is not ours");
	CHECK(autonat_client_dialback(&cl, 77, 1, server_ep(), now),
	      "one from the server's own address is ours...");
	autonat_client_unwatch(&cl, &b, 1);
	struct na_endpoint c2 = ep("198.18.4.1", 41003);
	autonat_client_watch(&cl, &c2, 1, now); /* may take b's slot */
	resp = (struct rdvmsg_dialresp){ .nonce = 77, .count = 2 };
	now += S / 10;
	CHECK(autonat_client_response(&cl, &resp, now), "the DIALRESP");
	ad = autonat_client_find(&cl, &a);
	CHECK(ad->n_hist == 1 && (ad->hist & 1), "the early dial-back counts once DIALRESP says dialed");
	ad = autonat_client_find(&cl, &c2);
	CHECK(ad->n_hist == 0 && !ad->pending, "an address watched since is not answered for");
	CHECK(!cl.req.active, "nothing left to wait for: the request is done");

	/* ... and the server's own address proves nothing: */
	autonat_client_init(&cl);
	autonat_client_watch(&cl, &a, 1, now);
	autonat_client_request(&cl, now, 88, server_ep(), &req);
	resp = (struct rdvmsg_dialresp){ .nonce = 88, .count = 1 };
	autonat_client_response(&cl, &resp, now);
	autonat_client_dialback(&cl, 88, 0, server_ep(), now);
	CHECK_EQ_INT(autonat_client_deadline(&cl, true), now + AUTONAT_WAIT,
		     "after dialed: dial-backs awaited for a while");
	autonat_client_tick(&cl, now + AUTONAT_WAIT - 1);
	CHECK(cl.req.active, "not before the wait is over");
	autonat_client_abandon(&cl, now + 1);
	CHECK(cl.req.active, "the session going after the DIALRESP does not stop the wait");
	autonat_client_tick(&cl, now + AUTONAT_WAIT);
	ad = autonat_client_find(&cl, &a);
	CHECK(ad->n_hist == 1 && !(ad->hist & 1), "... so it did not arrive");

	/* Abandoned before the DIALRESP: no result, due a burst gap later. */
	now += 10 * S;
	autonat_client_recheck(&cl, &a, now);
	autonat_client_request(&cl, now, 99, server_ep(), &req);
	autonat_client_abandon(&cl, now);
	CHECK(!cl.req.active && ad->n_hist == 1 && ad->due == now + AUTONAT_BURST_GAP,
	      "abandoned before its DIALRESP: no result, asked again soon");

	/* A recheck while asked about: asked again as soon as the answer is in. */
	autonat_client_request(&cl, now + AUTONAT_BURST_GAP, 100, server_ep(), &req);
	autonat_client_recheck(&cl, NULL, now + AUTONAT_BURST_GAP);
	resp = (struct rdvmsg_dialresp){ .nonce = 100, .count = 1 };
	autonat_client_response(&cl, &resp, now + AUTONAT_BURST_GAP);
	autonat_client_dialback(&cl, 100, 0, &srv2, now + 2 * AUTONAT_BURST_GAP);
	CHECK_EQ_INT(ad->due, now + 2 * AUTONAT_BURST_GAP, "a recheck during a check: due right after it");

	/* Events beyond the ring are dropped, oldest first, and counted. */
	autonat_client_init(&cl);
	autonat_client_watch(&cl, &a, 1, now);
	for (int i = 0; i < AUTONAT_EVENTS + 5; i++) {
		autonat_client_recheck(&cl, NULL, now);
		round_trip(&now, RDVMSG_DIAL_NOT_YOURS, false);
	}
	CHECK(cl.ev_len == AUTONAT_EVENTS && cl.events_lost == 5, "event ring bounded, losses counted");
}

/* The whole exchange through the codec: the client's DIALREQ encoded,
 * decoded by the server, decided, its DIALRESP and dial-backs back. */
static void test_end_to_end(void)
{
	struct na_endpoint pub = ep("198.18.4.1", 41001), host = ep("10.4.0.2", 41001);
	struct na_endpoint other = ep("198.18.4.9", 41001), observed = ep("198.18.4.1", 41001);
	struct na_endpoint from = ep("198.18.0.11", 50000);
	struct autonat_server s;
	struct tbucket peer;
	uint64_t now = S, nonce = 0x1234;
	int rounds = 0;

	autonat_client_init(&cl);
	autonat_server_init(&s, AF_INET, now);
	autonat_peer_limit_init(&peer, now);
	autonat_client_watch(&cl, &pub, 1, now);
	autonat_client_watch(&cl, &host, 2, now);
	autonat_client_watch(&cl, &other, 2, now);
	while (rounds < 20 && autonat_client_find(&cl, &pub)->reach == AUTONAT_UNKNOWN) {
		static struct rdvmsg m, d;
		uint8_t buf[RDVMSG_MAX_FRAME];
		size_t n;
		unsigned dial;

		now = autonat_client_deadline(&cl, true);
		memset(&m, 0, sizeof(m));
		m.type = RDVMSG_DIALREQ;
		if (!autonat_client_request(&cl, now, ++nonce, server_ep(), &m.dialreq))
			break;
		n = rdvmsg_encode(&m, buf, sizeof(buf));
		if (!n || !rdvmsg_decode(&d, buf, n, NULL))
			break;
		memset(&m, 0, sizeof(m));
		m.type = RDVMSG_DIALRESP;
		dial = autonat_server_decide(&s, &peer, &observed.ip, &d.dialreq, now, &m.dialresp);
		for (unsigned i = 0, k = 0; i < d.dialreq.count; i++) {
			uint8_t db[AUTONAT_DIALBACK_LEN], idx;
			uint64_t nn;

			if (m.dialresp.status[i] != RDVMSG_DIAL_DIALED)
				continue;
			k++;
			autonat_dialback_build(db, sizeof(db), txid12, d.dialreq.nonce, (uint8_t)i);
			if (autonat_dialback_parse(db, sizeof(db), &nn, &idx))
				autonat_client_dialback(&cl, nn, idx, &from, now);
			if (k > dial)
				break;
		}
		n = rdvmsg_encode(&m, buf, sizeof(buf));
		if (!n || !rdvmsg_decode(&d, buf, n, NULL))
			break;
		autonat_client_response(&cl, &d.dialresp, now);
		rounds++;
	}
	CHECK(autonat_client_find(&cl, &pub)->reach == AUTONAT_PUBLIC && rounds == 3,
	      "through the codec and the server: the requester's own address public in 3 rounds");
	CHECK(autonat_client_find(&cl, &host)->refused == RDVMSG_DIAL_PRIVATE &&
	      autonat_client_find(&cl, &host)->due == AUTONAT_NEVER,
	      "its private host address refused as private, once");
	CHECK(autonat_client_find(&cl, &other)->refused == RDVMSG_DIAL_NOT_YOURS,
	      "an address at another IP refused as not its");
	CHECK(s.st.dialed == 3 && s.st.private_ == 1 && s.st.not_yours == 1,
	      "the server counted 3 dialed, 1 private, 1 not yours");
}

int main(void)
{
	test_dialback();
	test_policy();
	test_rate_limits();
	test_client_agree();
	test_client_refusals();
	test_client_requests();
	test_end_to_end();
	return unit_done();
}
