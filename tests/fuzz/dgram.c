/* libFuzzer harness for the tunnel datagram codec: decoding never reads
 * out of bounds, the payload lies inside the input, and re-encoding what
 * was decoded gives a datagram no longer than the input (minimal varint)
 * that decodes to the same thing. */
#include "quic/dgram.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[65536 + 8];
	const uint8_t *payload, *payload2;
	size_t len, len2, n;
	uint64_t ctx, ctx2;

	if (!quic_dgram_decode(data, size, &ctx, &payload, &len))
		return 0;
	if (payload < data || payload + len != data + size || ctx > QUIC_VARINT_MAX)
		abort();
	if (len > sizeof(out) - QUIC_VARINT_MAXLEN)
		return 0;
	n = quic_dgram_encode(out, sizeof(out), ctx, payload, len);
	if (n == 0 || n > size || n != quic_dgram_varint_len(ctx) + len)
		abort();
	if (!quic_dgram_decode(out, n, &ctx2, &payload2, &len2) || ctx2 != ctx ||
	    len2 != len || memcmp(payload2, payload, len) != 0)
		abort();
	return 0;
}
