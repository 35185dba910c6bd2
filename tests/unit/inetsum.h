/* The tests' own RFC 1071 sum, written independently of agent/tunpkt.c's:
 * byte by byte, folded at the end, not complemented, so that the sums of
 * pieces chain through s (every piece but the last of even length). A
 * region that includes its checksum field sums to 0xffff. Shared by the
 * unit tests and the fuzz harness that check the packets tunpkt builds. */
#ifndef NATAGENT_TESTS_INETSUM_H
#define NATAGENT_TESTS_INETSUM_H

#include <stddef.h>
#include <stdint.h>

static inline unsigned inet_sum16(const uint8_t *p, size_t n, unsigned s)
{
	for (size_t i = 0; i < n; i++)
		s += i & 1 ? p[i] : (unsigned)p[i] << 8;
	while (s > 0xffff)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

#endif
