/* libFuzzer harness for the PCP / NAT-PMP client. The first byte is the
 * mode:
 *   bits 0-1  protocols allowed (0 and 3 both, 1 PCP, 2 NAT-PMP)
 *   bit 2     IPv6 (PCP only)
 *   bit 3     a random source (nonce and jitter), else deterministic
 *   bits 4-5  prelude: 0 just started, 1 mapped by PCP, 2 mapped by
 *             NAT-PMP, 3 run to the end of the start-up bound
 * then records [sel] [dt] [len: 2 bytes, big-endian] [len bytes]:
 *   sel bits 0-1  source: gateway:5351, gateway:5350, another host:5351, none
 *   sel bit 2     stamp our nonce and internal port where PCP and NAT-PMP
 *                 keep them, so that mutations get past the match checks
 *   sel bits 3-4  before the datagram: nothing, pmp_remap(), pmp_delete()
 *   sel bit 5     first move the clock to the deadline
 *   dt            then advance it by (dt & 15) << 2 (dt >> 4) ms: up to months,
 *                 so renewals and expiry are reached
 * After each record the client runs until its deadline is in the future;
 * at the end it is left alone and must finish. Properties that must hold
 * abort() when broken. */
#include "nat/pmp.h"

#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

static void check(bool ok)
{
	if (!ok)
		abort();
}

static struct na_ip ip(const char *s)
{
	struct na_ip a;

	check(na_ip_parse(&a, s));
	return a;
}

static void counter_rand(void *ctx, uint8_t *out, size_t len)
{
	uint32_t *n = ctx;

	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)((*n)++ * 151u);
}

static void check_invariants(const struct pmp *p)
{
	enum pmp_state s = pmp_state(p);
	const struct pmp_mapping *m = pmp_mapping(p);

	check(s <= PMP_DELETED);
	check((m != NULL) == (s == PMP_MAPPED));
	if (m) {
		check(m->proto == PMP_PROTO_PCP || m->proto == PMP_PROTO_NATPMP);
		check(m->external.port && m->lifetime && m->expires > m->granted);
		check(m->renew == UINT64_MAX || m->renew < m->expires);
		check(m->internal_port == p->prm.internal_port);
	}
	if (s == PMP_FAILED || s == PMP_LOST)
		check(pmp_reason(p) != NULL);
	if (s == PMP_MAPPED || s == PMP_REQUESTING || s == PMP_DELETING)
		check(p->proto == PMP_PROTO_PCP || p->proto == PMP_PROTO_NATPMP);
}

/* Everything due by now; each request must be one we mean to send. */
static void drain(struct pmp *p, uint64_t now)
{
	uint8_t b[PMP_MAX_MSG];
	size_t n;
	int sends = 0;

	while ((n = pmp_next(p, now, b, sizeof(b)))) {
		check(++sends <= 3);
		bool del = pmp_state(p) == PMP_DELETING;
		if (n == 60) {
			check(b[0] == 2 && b[1] == 1 && !memcmp(b + 24, p->nonce, PMP_NONCE_LEN));
			check(b[36] == 17 && (b[40] << 8 | b[41]) == p->prm.internal_port);
			check(del == !(b[4] | b[5] | b[6] | b[7]));
		} else if (n == 12) {
			check(b[0] == 0 && b[1] == 1 && (b[4] << 8 | b[5]) == p->prm.internal_port);
			check(del == !(b[8] | b[9] | b[10] | b[11]));
			check(!del || !(b[6] | b[7]));
		} else {
			check(n == 2 && b[0] == 0 && b[1] == 0 && !del);
		}
	}
	check(pmp_deadline(p) > now);
	check_invariants(p);
}

static void stamp(const struct pmp *p, uint8_t *m, size_t len)
{
	uint16_t port = p->prm.internal_port;

	if (len >= 2 && m[0] == 2 && len >= 42) {
		memcpy(m + 24, p->nonce, PMP_NONCE_LEN);
		m[40] = (uint8_t)(port >> 8);
		m[41] = (uint8_t)port;
	} else if (len >= 10 && m[0] == 0) {
		m[8] = (uint8_t)(port >> 8);
		m[9] = (uint8_t)port;
	}
}

static void feed(struct pmp *p, const struct na_endpoint *from, const uint8_t *m, size_t len,
		 uint64_t now)
{
	enum pmp_input_result r = pmp_input(p, m, len, from, now);

	check(r <= PMP_IN_DELETED);
	if (r == PMP_IN_BAD)
		check(pmp_dropped(p) != NULL);
	if (r == PMP_IN_MAPPED || r == PMP_IN_RENEWED)
		check(pmp_state(p) == PMP_MAPPED);
	if (r == PMP_IN_DELETED)
		check(pmp_state(p) == PMP_DELETED);
	if (r == PMP_IN_FALLBACK)
		check(p->proto == PMP_PROTO_NATPMP && pmp_state(p) == PMP_REQUESTING);
}

static void prelude(struct pmp *p, unsigned what, const struct na_endpoint *gw, uint64_t *now)
{
	static const uint8_t natpmp_addr[12] = { 0, 0x80, 0, 0, 0, 0, 0, 10, 203, 0, 113, 7 };
	uint8_t m[60] = { 2, 0x81, 0, 0, 0, 0, 0x1c, 0x20, 0, 0, 0, 10 };

	drain(p, *now);
	switch (what) {
	case 1:
		m[36] = 17;
		m[42] = 0x9c;
		m[43] = 0x41;
		m[54] = m[55] = 0xff;
		m[56] = 203;
		m[59] = 7;
		stamp(p, m, 60);
		feed(p, gw, m, 60, *now);
		break;
	case 2:
		if (p->proto != PMP_PROTO_NATPMP)
			break;
		feed(p, gw, natpmp_addr, 12, *now);
		drain(p, *now);
		uint8_t r[16] = { 0, 0x81, 0, 0, 0, 0, 0, 10, 0, 0, 0x9c, 0x41, 0, 0, 0x1c, 0x20 };
		stamp(p, r, 16);
		feed(p, gw, r, 16, *now);
		break;
	case 3:
		for (int i = 0; i < 100 && pmp_state(p) == PMP_REQUESTING; i++) {
			*now = pmp_deadline(p);
			drain(p, *now);
		}
		break;
	}
	drain(p, *now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pmp p;
	uint32_t rand_ctx = 1;
	uint64_t now = 1000000 * MS;
	struct na_endpoint gw = { .port = PMP_SERVER_PORT };
	static const unsigned protos[4] = { 0, PMP_ALLOW_PCP, PMP_ALLOW_NATPMP, 0 };

	if (size < 1)
		return 0;
	uint8_t mode = *data++;
	size--;
	bool v6 = mode & 4;
	struct pmp_params prm = {
		.internal_port = 51820,
		.external_port = 40000,
		.protocols = v6 ? PMP_ALLOW_PCP : protos[mode & 3],
		.rand = (mode & 8) ? counter_rand : NULL,
		.rand_ctx = &rand_ctx,
	};
	prm.gateway = ip(v6 ? "2001:db8::1" : "192.168.1.1");
	prm.client = ip(v6 ? "2001:db8::10" : "192.168.1.10");
	gw.ip = prm.gateway;
	struct na_endpoint ann = gw, other = gw;
	ann.port = PMP_ANNOUNCE_PORT;
	other.ip = ip(v6 ? "2001:db8::2" : "192.168.1.2");
	const struct na_endpoint *froms[4] = { &gw, &ann, &other, NULL };

	check(pmp_init(&p, &prm));
	pmp_start(&p, now);
	prelude(&p, (mode >> 4) & 3, &gw, &now);

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
		if ((sel & 0x20) && pmp_deadline(&p) != UINT64_MAX)
			now = pmp_deadline(&p);
		now += ((uint64_t)(dt & 15) << (2 * (dt >> 4))) * MS;
		drain(&p, now);
		if (((sel >> 3) & 3) == 1)
			pmp_remap(&p, now);
		else if (((sel >> 3) & 3) == 2)
			pmp_delete(&p, now);
		if (sel & 4)
			stamp(&p, msg, len);
		feed(&p, froms[sel & 3], msg, len, now);
		free(msg);
		check_invariants(&p);
		drain(&p, now);
	}

	/* Left alone, every mapping ends: it fails, is lost, or is deleted. */
	for (int i = 0; i < 10000 && pmp_deadline(&p) != UINT64_MAX; i++) {
		uint64_t d = pmp_deadline(&p);
		check(d > now);
		now = d;
		drain(&p, now);
	}
	enum pmp_state s = pmp_state(&p);
	check(pmp_deadline(&p) == UINT64_MAX);
	check(s == PMP_FAILED || s == PMP_LOST || s == PMP_DELETED);
	return 0;
}
