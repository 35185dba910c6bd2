/* The tunnel datagram codec: context id varint (RFC 9000 section 16) and
 * payload. Vectors at every varint length boundary. */
#include "quic/dgram.h"
#include "tests/unit/unit.h"

#include <stdint.h>

static const struct {
	uint64_t v;
	size_t len;
	uint8_t enc[8];
} vec[] = {
	{ 0, 1, { 0x00 } },
	{ 7, 1, { 0x07 } },
	{ 37, 1, { 0x25 } },                    /* RFC 9000 A.1 */
	{ 63, 1, { 0x3f } },
	{ 64, 2, { 0x40, 0x40 } },
	{ 15293, 2, { 0x7b, 0xbd } },           /* RFC 9000 A.1 */
	{ 16383, 2, { 0x7f, 0xff } },
	{ 16384, 4, { 0x80, 0x00, 0x40, 0x00 } },
	{ 494878333, 4, { 0x9d, 0x7f, 0x3e, 0x7d } },  /* RFC 9000 A.1 */
	{ (1ULL << 30) - 1, 4, { 0xbf, 0xff, 0xff, 0xff } },
	{ 1ULL << 30, 8, { 0xc0, 0, 0, 0, 0x40, 0, 0, 0 } },
	{ 151288809941952652ULL, 8, { 0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c } },
	{ QUIC_VARINT_MAX, 8, { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
};

static void test_vectors(void)
{
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		uint8_t buf[16], pl[3] = { 0xaa, 0xbb, 0xcc };
		const uint8_t *payload;
		size_t n, plen;
		uint64_t ctx;

		CHECK_EQ_INT(quic_dgram_varint_len(vec[i].v), vec[i].len, "varint length");
		n = quic_dgram_encode(buf, sizeof(buf), vec[i].v, pl, sizeof(pl));
		CHECK(n == vec[i].len + 3 && memcmp(buf, vec[i].enc, vec[i].len) == 0 &&
		      memcmp(buf + vec[i].len, pl, 3) == 0,
		      "encode %llu", (unsigned long long)vec[i].v);
		CHECK(quic_dgram_decode(buf, n, &ctx, &payload, &plen) && ctx == vec[i].v &&
		      plen == 3 && payload == buf + vec[i].len,
		      "decode %llu", (unsigned long long)vec[i].v);
		/* Every shorter prefix of the varint is truncated. */
		for (size_t cut = 0; cut < vec[i].len; cut++)
			CHECK(!quic_dgram_decode(buf, cut, &ctx, &payload, &plen),
			      "reject %zu of %zu varint bytes", cut, vec[i].len);
	}
}

static void test_bounds(void)
{
	uint8_t buf[8], pl[8] = { 0 };
	const uint8_t *payload;
	size_t plen;
	uint64_t ctx;

	CHECK_EQ_INT(quic_dgram_varint_len(QUIC_VARINT_MAX + 1), 0, "2^62 has no encoding");
	CHECK_EQ_INT(quic_dgram_encode(buf, sizeof(buf), QUIC_VARINT_MAX + 1, pl, 1), 0,
		     "encode refuses 2^62");
	CHECK_EQ_INT(quic_dgram_encode(buf, 4, 7, pl, 4), 0, "encode refuses 5 bytes into 4");
	CHECK_EQ_INT(quic_dgram_encode(buf, 5, 7, pl, 4), 5, "encode fits exactly");
	CHECK_EQ_INT(quic_dgram_encode(buf, 1, 64, NULL, 0), 0, "2-byte id into 1 byte");
	CHECK_EQ_INT(quic_dgram_encode_hdr(buf, 8, 16384), 4, "header alone");
	CHECK_EQ_INT(quic_dgram_encode_hdr(buf, 3, 16384), 0, "header alone, no room");
	CHECK_EQ_INT(quic_dgram_encode(buf, sizeof(buf), 0, NULL, 0), 1, "empty payload");
	CHECK(quic_dgram_decode(buf, 1, &ctx, &payload, &plen) && ctx == 0 && plen == 0,
	      "decode empty payload");
	CHECK(!quic_dgram_decode(buf, 0, &ctx, &payload, &plen), "reject empty datagram");
}

static void test_non_minimal(void)
{
	static const uint8_t two[] = { 0x40, 0x07, 0x99 };
	static const uint8_t eight[] = { 0xc0, 0, 0, 0, 0, 0, 0, 0 };
	const uint8_t *payload;
	size_t plen;
	uint64_t ctx;

	CHECK(quic_dgram_decode(two, sizeof(two), &ctx, &payload, &plen) && ctx == 7 &&
	      plen == 1 && payload[0] == 0x99, "non-minimal 2-byte 7 is accepted");
	CHECK(quic_dgram_decode(eight, sizeof(eight), &ctx, &payload, &plen) && ctx == 0 &&
	      plen == 0, "non-minimal 8-byte 0 is accepted");
}

int main(void)
{
	test_vectors();
	test_bounds();
	test_non_minimal();
	return unit_done();
}
