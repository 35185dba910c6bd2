#include "quic/dgram.h"

#include <string.h>

size_t quic_dgram_varint_len(uint64_t v)
{
	if (v < (1ULL << 6))
		return 1;
	if (v < (1ULL << 14))
		return 2;
	if (v < (1ULL << 30))
		return 4;
	if (v <= QUIC_VARINT_MAX)
		return 8;
	return 0;
}

size_t quic_dgram_encode_hdr(uint8_t *out, size_t cap, uint64_t ctx)
{
	size_t n = quic_dgram_varint_len(ctx);

	if (n == 0 || n > cap)
		return 0;
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(ctx >> (8 * (n - 1 - i)));
	/* The top two bits give the length: 00 = 1, 01 = 2, 10 = 4, 11 = 8. */
	out[0] |= (uint8_t)(__builtin_ctz((unsigned)n) << 6);
	return n;
}

size_t quic_dgram_encode(uint8_t *out, size_t cap, uint64_t ctx,
			 const uint8_t *payload, size_t len)
{
	size_t h = quic_dgram_varint_len(ctx);

	if (h == 0 || h > cap || len > cap - h)
		return 0;
	quic_dgram_encode_hdr(out, cap, ctx);
	if (len)
		memcpy(out + h, payload, len);
	return h + len;
}

bool quic_dgram_decode(const uint8_t *p, size_t n, uint64_t *ctx,
		       const uint8_t **payload, size_t *len)
{
	size_t h;
	uint64_t v;

	if (n == 0)
		return false;
	h = (size_t)1 << (p[0] >> 6);
	if (h > n)
		return false;
	v = p[0] & 0x3f;
	for (size_t i = 1; i < h; i++)
		v = (v << 8) | p[i];
	*ctx = v;
	*payload = p + h;
	*len = n - h;
	return true;
}
