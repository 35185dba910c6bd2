/* libFuzzer harness for the TUN packet classifier and the "too big"
 * answers: classification stays inside the input and is self-consistent;
 * every answer fits its buffer, carries correct checksums, quotes the start
 * of the packet, classifies as an ICMP error and is itself never answered. */
#include "agent/tunpkt.h"
#include "tests/unit/inetsum.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_answer(const uint8_t *out, int n, const uint8_t *pkt, const struct tunpkt *orig,
			 const struct na_ip *self)
{
	static uint8_t again[TUNPKT_TOO_BIG_MAX];
	struct tunpkt pi;
	size_t quoted;

	if (n < 0 || n > TUNPKT_TOO_BIG_MAX)
		abort();
	if (!tunpkt_parse(&pi, out, (size_t)n) || (size_t)n != pi.len || !pi.icmp_error ||
	    !na_ip_equal(&pi.src, self) || !na_ip_equal(&pi.dst, &orig->src))
		abort();
	if (pi.version == 4) {
		if (inet_sum16(out, 20, 0) != 0xffff || inet_sum16(out + 20, (size_t)n - 20, 0) != 0xffff)
			abort();
		quoted = (size_t)n - 28;
		if (quoted > orig->hdr_len + 8)
			abort();
	} else {
		uint8_t pseudo[40] = { 0 };
		memcpy(pseudo, out + 8, 32);
		pseudo[34] = (uint8_t)((n - 40) >> 8);
		pseudo[35] = (uint8_t)(n - 40);
		pseudo[39] = 58;
		if (inet_sum16(out + 40, (size_t)n - 40, inet_sum16(pseudo, 40, 0)) != 0xffff)
			abort();
		quoted = (size_t)n - 48;
	}
	if (memcmp(out + n - (int)quoted, pkt, quoted) != 0 || quoted > orig->len)
		abort();
	if (tunpkt_too_big(again, sizeof(again), out, (size_t)n, 0, self) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[TUNPKT_TOO_BIG_MAX];
	static const size_t mtus[] = { 0, 68, 576, 1280, 1400, 9000 };
	struct na_ip self4 = { .family = AF_INET, .v4 = { 10, 77, 0, 1 } };
	struct na_ip self6 = { .family = AF_INET6, .v6 = { 0xfd, 0, 0, 0x77, [15] = 1 } };
	struct tunpkt pi;
	const struct na_ip *self;

	if (!tunpkt_parse(&pi, data, size)) {
		if (!pi.reason)
			abort();
		for (size_t i = 0; i < sizeof(mtus) / sizeof(*mtus); i++)
			if (tunpkt_too_big(out, sizeof(out), data, size, mtus[i], &self4) != -EINVAL)
				abort();
		return 0;
	}
	if (pi.reason || (pi.version != 4 && pi.version != 6) || pi.len > size ||
	    pi.hdr_len > pi.len || pi.l4_off > pi.len || (pi.l4_off && pi.l4_off < pi.hdr_len) ||
	    pi.src.family != (pi.version == 4 ? AF_INET : AF_INET6) ||
	    (pi.later_fragment && !pi.fragment))
		abort();
	self = pi.version == 4 ? &self4 : &self6;
	for (size_t i = 0; i < sizeof(mtus) / sizeof(*mtus); i++) {
		int n = tunpkt_too_big(out, sizeof(out), data, size, mtus[i], self);
		if (n == 0)
			continue;
		check_answer(out, n, data, &pi, self);
		/* One byte short of room must be refused, not overrun. */
		if (tunpkt_too_big(out, (size_t)n - 1, data, size, mtus[i], self) != -ENOBUFS)
			abort();
	}
	return 0;
}
