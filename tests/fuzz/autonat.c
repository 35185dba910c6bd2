/* libFuzzer harness for AutoNAT (nat/autonat.c, nat/autonat_client.c).
 *
 * The input is, first, one candidate dial-back: whatever parses must
 * rebuild to the same bytes. Then it is a program: each byte picks an
 * operation and the following bytes are its arguments, driving one client
 * and one server with a clock that only moves forward:
 *   watch / unwatch an address, advance the clock and tick, recheck,
 *   abandon; a request from the client through the codec into the
 *   server's policy, its DIALRESP back through the codec and the
 *   dial-backs it dialed back into the client (some from the server's own
 *   address); a raw frame from the input through the codec into the
 *   server (DIALREQ) or the client (DIALRESP); raw dial-back bytes.
 * Properties that must hold abort() when broken:
 *   - the server dials only the requester's own, non-private IP, at most
 *     RDVMSG_MAX_DIAL addresses a request, never more requests than the
 *     global bucket grants (60 at once, then 1 a second);
 *   - every message that decodes re-encodes to the same bytes;
 *   - a verdict changes only on AUTONAT_AGREE agreeing results, and an
 *     event's agreement says so. */
#include "nat/autonat.h"

#include <stdlib.h>
#include <string.h>

static void check(bool ok)
{
	if (!ok)
		abort();
}

struct input {
	const uint8_t *p;
	size_t len, off;
};

static uint8_t byte(struct input *in)
{
	return in->off < in->len ? in->p[in->off++] : 0;
}

static bool more(const struct input *in)
{
	return in->off < in->len;
}

/* Requesters see the server at this address; most addresses are near it. */
static const uint8_t observed4[4] = { 198, 18, 4, 1 };

static struct na_endpoint endpoint(struct input *in)
{
	uint8_t sel = byte(in);
	struct na_endpoint e = { .ip.family = AF_INET };

	switch (sel & 3) {
	case 0: memcpy(e.ip.v4, observed4, 4); break;		/* ours */
	case 1: memcpy(e.ip.v4, observed4, 4); e.ip.v4[3] = byte(in); break;
	case 2: for (int i = 0; i < 4; i++) e.ip.v4[i] = byte(in); break;
	default:
		e.ip.family = AF_INET6;
		for (int i = 0; i < 16; i++)
			e.ip.v6[i] = (uint8_t)(i < 2 ? byte(in) : 0);
		e.ip.v6[15] = byte(in);
		break;
	}
	e.port = (uint16_t)(byte(in) << 8 | byte(in));
	if (sel & 4)
		e.port &= 7; /* a few ports, so unwatch finds what watch added */
	return e;
}

static struct autonat_client cl;
static struct autonat_server sv;
static struct tbucket peer;
static uint64_t now, t0, dialing_requests;
static const struct na_endpoint srv_ep = { .ip = { .family = AF_INET, .v4 = { 198, 18, 0, 10 } },
					   .port = 3478 };
static const struct na_endpoint alt_ep = { .ip = { .family = AF_INET, .v4 = { 198, 18, 0, 11 } },
					   .port = 50000 };

static void check_events(void)
{
	struct autonat_event ev;

	while (autonat_client_event(&cl, &ev)) {
		check(ev.kind <= AUTONAT_EV_CHANGED && ev.reach <= AUTONAT_PRIVATE);
		check(ev.agree_n <= AUTONAT_AGREE && ev.agree_ok <= ev.agree_n);
		if (ev.kind == AUTONAT_EV_CHANGED) {
			check(ev.reach != ev.was && ev.agree_n == AUTONAT_AGREE);
			check(ev.reach == AUTONAT_PUBLIC ? ev.agree_ok == AUTONAT_AGREE
							 : ev.reach == AUTONAT_PRIVATE && ev.agree_ok == 0);
		}
		if (ev.kind == AUTONAT_EV_REFUSED)
			check(ev.status != RDVMSG_DIAL_DIALED && ev.status <= RDVMSG_DIAL_STATUS_MAX);
	}
	for (int i = 0; i < AUTONAT_MAX_ADDRS; i++) {
		const struct autonat_addr *a = &cl.addrs[i];

		check(a->reach <= AUTONAT_PRIVATE && a->n_hist <= 8);
		check(!a->owners || a->ep.port);
	}
	check(cl.req.count <= RDVMSG_MAX_DIAL);
}

/* The server's side of one DIALREQ, with its invariants; fills resp. */
static unsigned serve(const struct rdvmsg_dialreq *req, struct rdvmsg_dialresp *resp)
{
	struct na_ip obs = { .family = AF_INET };
	unsigned n, k = 0;

	memcpy(obs.v4, observed4, 4);
	n = autonat_server_decide(&sv, &peer, &obs, req, now, resp);
	check(n <= RDVMSG_MAX_DIAL && resp->count == req->count && resp->nonce == req->nonce);
	for (unsigned i = 0; i < resp->count; i++) {
		check(resp->status[i] <= RDVMSG_DIAL_STATUS_MAX);
		if (resp->status[i] == RDVMSG_DIAL_DIALED) {
			check(na_ip_equal(&req->addr[i].ip, &obs) && !na_ip_is_private(&req->addr[i].ip));
			k++;
		}
	}
	check(k == n);
	if (n)
		dialing_requests++;
	/* 60 at once, then one a second, whatever the clock did. */
	check(dialing_requests <= AUTONAT_TOTAL_PER_MIN + (now - t0) / AUTONAT_SEC + 1);
	return n;
}

/* Encodes, decodes, re-encodes: the bytes must agree. */
static void through_codec(const struct rdvmsg *m, struct rdvmsg *out)
{
	uint8_t a[RDVMSG_MAX_FRAME], b[RDVMSG_MAX_FRAME];
	size_t n = rdvmsg_encode(m, a, sizeof(a));

	check(n > 0);
	check(rdvmsg_decode(out, a, n, NULL));
	check(rdvmsg_encode(out, b, sizeof(b)) == n && !memcmp(a, b, n));
}

static void op_request(struct input *in)
{
	static struct rdvmsg m, d;
	uint64_t nonce = (uint64_t)byte(in) << 8 | byte(in);
	uint8_t how = byte(in);

	memset(&m, 0, sizeof(m));
	m.type = RDVMSG_DIALREQ;
	if (!autonat_client_request(&cl, now, nonce, &srv_ep, &m.dialreq))
		return;
	through_codec(&m, &d);
	memset(&m, 0, sizeof(m));
	m.type = RDVMSG_DIALRESP;
	serve(&d.dialreq, &m.dialresp);
	for (unsigned i = 0; i < m.dialresp.count; i++) {
		uint8_t db[AUTONAT_DIALBACK_LEN], txid[12] = { 0 }, idx;
		uint64_t nn;

		if (m.dialresp.status[i] != RDVMSG_DIAL_DIALED || ((how >> (i & 7)) & 1))
			continue; /* lost on the way */
		check(autonat_dialback_build(db, sizeof(db), txid, d.dialreq.nonce, (uint8_t)i));
		check(autonat_dialback_parse(db, sizeof(db), &nn, &idx) && nn == nonce && idx == i);
		check(autonat_client_dialback(&cl, nn, idx, how & 0x80 ? &srv_ep : &alt_ep, now));
	}
	through_codec(&m, &d);
	if (!(how & 0x40))
		check(autonat_client_response(&cl, &d.dialresp, now));
}

static void op_frame(struct input *in)
{
	static struct rdvmsg m, re;
	size_t n = byte(in), fl;
	ssize_t f;

	if (n > in->len - in->off)
		n = in->len - in->off;
	f = rdvmsg_frame(in->p + in->off, n, NULL, NULL);
	if (f > 0 && rdvmsg_decode(&m, in->p + in->off, (size_t)f, NULL)) {
		uint8_t b[RDVMSG_MAX_FRAME];

		fl = rdvmsg_encode(&m, b, sizeof(b));
		check(fl == (size_t)f && !memcmp(b, in->p + in->off, fl));
		if (m.type == RDVMSG_DIALREQ) {
			memset(&re, 0, sizeof(re));
			re.type = RDVMSG_DIALRESP;
			serve(&m.dialreq, &re.dialresp);
			through_codec(&re, &m);
		}
		if (m.type == RDVMSG_DIALRESP)
			autonat_client_response(&cl, &m.dialresp, now);
	}
	in->off += n;
}

static void op_raw_dialback(struct input *in)
{
	uint8_t db[AUTONAT_DIALBACK_LEN], idx;
	uint64_t nn;

	/* A valid frame with fuzzed nonce, index and some fuzzed bytes. */
	autonat_dialback_build(db, sizeof(db), (const uint8_t[12]){ 0 }, cl.req.nonce, 0);
	for (int k = byte(in) & 7; k > 0; k--)
		db[byte(in) % sizeof(db)] = byte(in);
	if (autonat_dialback_parse(db, sizeof(db), &nn, &idx))
		autonat_client_dialback(&cl, nn, idx, &alt_ep, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	uint64_t nonce;
	uint8_t idx;

	if (autonat_dialback_parse(data, size, &nonce, &idx)) {
		uint8_t re[AUTONAT_DIALBACK_LEN];

		check(autonat_dialback_build(re, sizeof(re), data + 8, nonce, idx) == size);
		check(!memcmp(re, data, size));
	}
	t0 = now = 1000 * AUTONAT_SEC;
	dialing_requests = 0;
	autonat_client_init(&cl);
	autonat_server_init(&sv, byte(&in) & 1 ? 0 : AF_INET, now);
	autonat_peer_limit_init(&peer, now);
	for (int steps = 0; more(&in) && steps < 4096; steps++) {
		struct na_endpoint e;
		uint8_t op = byte(&in);

		switch (op % 8) {
		case 0:
			e = endpoint(&in);
			autonat_client_watch(&cl, &e, 1u << (op >> 3 & 3), now);
			break;
		case 1:
			e = endpoint(&in);
			autonat_client_unwatch(&cl, &e, 1u << (op >> 3 & 3));
			break;
		case 2:
			now += (uint64_t)byte(&in) * (AUTONAT_SEC / 10) * (op & 0x80 ? 60 : 1);
			autonat_client_tick(&cl, now);
			break;
		case 3:
			op_request(&in);
			break;
		case 4:
			op_frame(&in);
			break;
		case 5:
			op_raw_dialback(&in);
			break;
		case 6:
			if (op & 0x80) {
				autonat_client_recheck(&cl, NULL, now);
			} else {
				e = endpoint(&in);
				autonat_client_recheck(&cl, &e, now);
			}
			break;
		default:
			autonat_client_abandon(&cl, now);
			break;
		}
		check_events();
		check(autonat_client_deadline(&cl, true) <= autonat_client_deadline(&cl, false));
	}
	return 0;
}
