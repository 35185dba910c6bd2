/* libFuzzer harness for the punch engine. A punch with fixed candidates and
 * secrets is started, then fed a stream of records:
 *   [sel] [dt] [len: 2 bytes, big-endian] [len bytes: one STUN message]
 * sel picks the source (bits 0-2) and the local address (bits 3-4); bit 5
 * stamps the message with an outstanding transaction id (slot from dt) so
 * responses reach the pair logic. dt advances the clock by dt ms. The first
 * byte is the mode: bit 0 initiator; bit 1 recompute MESSAGE-INTEGRITY
 * (with the key the punch will check) and FINGERPRINT after mutation. After
 * each record punch_next runs until its deadline is in the future, and at
 * the end the attempt runs to its outcome. Properties that must hold
 * abort() when broken. */
#include "nat/punch.h"
#include "nat/stun_mac.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

static const uint8_t secret_i[PUNCH_SECRET_LEN] = "initiator secret";
static const uint8_t secret_r[PUNCH_SECRET_LEN] = "responder secret";

static void check(bool ok)
{
	if (!ok)
		abort();
}

static struct na_endpoint ep(const char *s)
{
	struct na_endpoint e;

	check(na_endpoint_parse(&e, s, false));
	return e;
}

static void counter_rand(void *ctx, uint8_t *out, size_t len)
{
	uint32_t *n = ctx;

	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)((*n)++ * 151u);
}

static void add(struct punch *p, bool local, const char *s, uint8_t type, uint16_t pref)
{
	struct punch_cand c = { .ep = ep(s), .type = type, .priority = punch_cand_priority(type, pref) };

	check(local ? punch_add_local(p, &c) : punch_add_remote(p, &c));
}

static void setup(struct punch *p, bool initiator, uint32_t *rand_ctx)
{
	struct punch_params prm = {
		.initiator = initiator,
		.attempt = 0x0123456789abcdefull,
		.rand = counter_rand,
		.rand_ctx = rand_ctx,
	};

	memcpy(prm.local_secret, initiator ? secret_i : secret_r, PUNCH_SECRET_LEN);
	memcpy(prm.remote_secret, initiator ? secret_r : secret_i, PUNCH_SECRET_LEN);
	punch_init(p, &prm);
	add(p, true, "10.0.0.2:5000", PUNCH_CAND_HOST, 65535);
	add(p, true, "[2001:db8::2]:5000", PUNCH_CAND_HOST, 65534);
	add(p, true, "198.51.100.1:40000", PUNCH_CAND_SRFLX, 65535);
	add(p, false, "10.1.0.2:6000", PUNCH_CAND_HOST, 65535);
	add(p, false, "203.0.113.1:50000", PUNCH_CAND_SRFLX, 65535);
	add(p, false, "[2001:db8:1::2]:6000", PUNCH_CAND_HOST, 65534);
}

static const char *const sources[8] = {
	"10.1.0.2:6000", "203.0.113.1:50000", "[2001:db8:1::2]:6000", "203.0.113.1:50001",
	"203.0.113.7:1", "[2001:db8:9::1]:443", "198.51.100.1:40000", NULL, /* no address */
};
static const char *const locals[4] = { "10.0.0.2:5000", "[2001:db8::2]:5000", "10.0.0.9:9", NULL };

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Requests to us are keyed with our secret, answers with theirs. */
static void fix_checksums(const struct punch *p, uint8_t *buf, size_t len)
{
	struct stun_msg m;
	uint8_t mac[20];

	if (stun_decode(&m, buf, len, 0))
		return;
	const uint8_t *key = stun_class_of(m.type) == STUN_REQUEST ? p->prm.local_secret
								   : p->prm.remote_secret;
	if (stun_has(&m, STUN_ATTR_MESSAGE_INTEGRITY)) {
		stun_hmac_sha1(buf, m.mi_off, (uint16_t)(m.mi_off + 4), key, PUNCH_SECRET_LEN, mac);
		memcpy(buf + m.mi_off + 4, mac, 20);
	}
	if (stun_has(&m, STUN_ATTR_FINGERPRINT))
		wr32(buf + m.fp_off + 4, stun_crc32(buf, m.fp_off) ^ STUN_FINGERPRINT_XOR);
}

static void check_invariants(const struct punch *p)
{
	check(p->n_local <= PUNCH_MAX_CANDS && p->n_remote <= PUNCH_MAX_CANDS);
	check(p->n_pairs <= PUNCH_MAX_PAIRS);
	for (unsigned i = 0; i < p->n_pairs; i++) {
		const struct punch_pair *pr = &p->pairs[i];
		check(pr->local < p->n_local && pr->remote < p->n_remote);
		check(pr->state <= PUNCH_PAIR_SUPERSEDED && pr->sent <= p->prm.max_tries);
		check(p->local[pr->local].type == PUNCH_CAND_HOST);
		check(p->local[pr->local].ep.ip.family == p->remote[pr->remote].ep.ip.family);
		if (p->state == PUNCH_SUCCEEDED || p->state == PUNCH_FAILED)
			check(pr->state != PUNCH_PAIR_WAITING && pr->state != PUNCH_PAIR_IN_PROGRESS);
	}
	const struct punch_pair *s = punch_selected(p);
	check((s != NULL) == (p->state == PUNCH_SUCCEEDED));
	check(!s || s->state == PUNCH_PAIR_SUCCEEDED);
}

/* Everything due by `now`; what goes out must be a well-formed check. */
static void drain(struct punch *p, uint64_t now, uint64_t *last_send)
{
	uint8_t out[PUNCH_MAX_MSG];
	struct na_endpoint from, to;
	struct stun_msg m;
	size_t n;
	int sends = 0;

	while ((n = punch_next(p, now, out, sizeof(out), &from, &to))) {
		check(n <= PUNCH_MAX_MSG && ++sends <= PUNCH_MAX_PAIRS);
		check(stun_decode(&m, out, n, 0) == STUN_OK && m.type == STUN_BINDING_REQUEST);
		check(stun_check_integrity(&m, p->prm.remote_secret, PUNCH_SECRET_LEN) == STUN_OK);
		check(stun_check_fingerprint(&m) == STUN_OK);
		check(*last_send == UINT64_MAX || now >= *last_send + p->prm.pace);
		*last_send = now;
	}
	check(punch_deadline(p) > now);
	check_invariants(p);
}

static void feed(struct punch *p, uint8_t sel, uint8_t dt, uint8_t *msg, size_t len,
		 bool fix, uint64_t now)
{
	struct na_endpoint from = { 0 }, local;
	uint8_t reply[PUNCH_MAX_MSG];
	struct stun_msg m, r;
	size_t rlen = 1;
	unsigned slot = (dt * 7u) % (sizeof(p->txn) / sizeof(p->txn[0]));

	if (sources[sel & 7])
		from = ep(sources[sel & 7]);
	if (locals[(sel >> 3) & 3])
		local = ep(locals[(sel >> 3) & 3]);
	if ((sel & 0x20) && len >= STUN_HEADER_LEN && p->txn[slot].used)
		memcpy(msg + 4, p->txn[slot].txid, STUN_TXID_LEN);
	if (fix)
		fix_checksums(p, msg, len);
	if (stun_decode(&m, msg, len, STUN_DECODE_CLASSIC))
		return;
	enum punch_input_result res = punch_input(p, &m, &from, locals[(sel >> 3) & 3] ? &local : NULL,
						  now, reply, sizeof(reply), &rlen);
	check(res <= PUNCH_IN_RESPONSE);
	if (res != PUNCH_IN_REQUEST) {
		check(rlen == 0);
		return;
	}
	check(rlen > 0 && rlen <= PUNCH_MAX_MSG);
	check(stun_decode(&r, reply, rlen, 0) == STUN_OK && r.type == STUN_BINDING_SUCCESS);
	check(!memcmp(r.txid, m.txid, STUN_TXID_LEN) && na_endpoint_equal(&r.xor_mapped, &from));
	check(stun_check_integrity(&r, p->prm.local_secret, PUNCH_SECRET_LEN) == STUN_OK);
	check(stun_check_fingerprint(&r) == STUN_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct punch p;
	uint32_t rand_ctx = 1;
	uint64_t now = 1000 * MS, last_send = UINT64_MAX;

	if (size < 1)
		return 0;
	uint8_t mode = *data++;
	size--;
	setup(&p, mode & 1, &rand_ctx);
	punch_start(&p, now);
	drain(&p, now, &last_send);

	while (size >= 4) {
		uint8_t sel = data[0], dt = data[1];
		size_t len = (size_t)data[2] << 8 | data[3];
		data += 4;
		size -= 4;
		if (len > size)
			len = size;
		/* An exact-size copy: reading one byte past it is an ASan report. */
		uint8_t *msg = malloc(len ? len : 1);
		memcpy(msg, data, len);
		data += len;
		size -= len;
		now += dt * MS;
		drain(&p, now, &last_send);
		feed(&p, sel, dt, msg, len, mode & 2, now);
		free(msg);
		check_invariants(&p);
		drain(&p, now, &last_send);
	}

	/* Left alone, every attempt ends, and soon. */
	for (int i = 0; i < 10000 && punch_deadline(&p) != UINT64_MAX; i++) {
		uint64_t d = punch_deadline(&p);
		check(d > now);
		now = d;
		drain(&p, now, &last_send);
	}
	check(punch_deadline(&p) == UINT64_MAX);
	check(punch_state(&p) == PUNCH_SUCCEEDED || punch_state(&p) == PUNCH_FAILED);
	return 0;
}
