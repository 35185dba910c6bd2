/* TUN packet classification and "too big" answers. Every read is checked
 * against a length first: the bytes come from the kernel's TUN queue, but
 * the same code classifies what peers send before it reaches the kernel. */
#include "agent/tunpkt.h"

#include <errno.h>
#include <string.h>

enum {
	IPPROTO_ICMP_ = 1,
	IP6_HOPOPTS = 0, IP6_ROUTING = 43, IP6_FRAGMENT = 44, IP6_ESP = 50,
	IP6_AH = 51, IP6_ICMP = 58, IP6_NONE = 59, IP6_DSTOPTS = 60,
};

/* Real chains have two or three; the length bounds the walk anyway. */
#define IP6_MAX_EXT_HEADERS 16

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static const char *const unknown_version[16] = {
	"unknown IP version 0", "unknown IP version 1", "unknown IP version 2",
	"unknown IP version 3", NULL, "unknown IP version 5", NULL,
	"unknown IP version 7", "unknown IP version 8", "unknown IP version 9",
	"unknown IP version 10", "unknown IP version 11", "unknown IP version 12",
	"unknown IP version 13", "unknown IP version 14", "unknown IP version 15",
};

static bool fail(struct tunpkt *pi, const char *reason)
{
	pi->reason = reason;
	return false;
}

/* ICMP types that report errors (RFC 792/1122): 3 unreachable, 4 source
 * quench, 5 redirect, 11 time exceeded, 12 parameter problem. */
static bool icmp4_type_is_error(uint8_t type)
{
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

static bool parse4(struct tunpkt *pi, const uint8_t *p, size_t n)
{
	size_t ihl, total;
	uint16_t frag;

	if (n < 20)
		return fail(pi, "truncated IPv4 header");
	ihl = (size_t)(p[0] & 0x0f) * 4;
	total = rd16(p + 2);
	pi->proto = p[9];
	pi->src.family = pi->dst.family = AF_INET;
	memcpy(pi->src.v4, p + 12, 4);
	memcpy(pi->dst.v4, p + 16, 4);
	if (ihl < 20)
		return fail(pi, "IHL < 5");
	if (ihl > n)
		return fail(pi, "truncated IPv4 options");
	if (total < ihl)
		return fail(pi, "total length shorter than header");
	if (total > n)
		return fail(pi, "total length exceeds packet");
	pi->hdr_len = ihl;
	pi->len = total;
	frag = rd16(p + 6);
	pi->df = frag & 0x4000;
	pi->later_fragment = (frag & 0x1fff) != 0;
	pi->fragment = pi->later_fragment || (frag & 0x2000);
	if (!pi->later_fragment)
		pi->l4_off = ihl;
	if (pi->proto == IPPROTO_ICMP_)
		pi->icmp_error = pi->later_fragment || total == ihl ||
				 icmp4_type_is_error(p[ihl]);
	return true;
}

/* Follows the extension headers up to the upper layer, as far as the
 * packet's own length allows. */
static void walk6(struct tunpkt *pi, const uint8_t *p)
{
	uint8_t next = p[6];
	size_t off = 40;

	for (int i = 0; i < IP6_MAX_EXT_HEADERS; i++) {
		size_t hlen;

		pi->proto = next;
		switch (next) {
		case IP6_HOPOPTS:
		case IP6_ROUTING:
		case IP6_DSTOPTS:
			if (off + 2 > pi->len)
				return;
			hlen = ((size_t)p[off + 1] + 1) * 8;
			break;
		case IP6_AH:
			if (off + 2 > pi->len)
				return;
			hlen = ((size_t)p[off + 1] + 2) * 4;
			break;
		case IP6_FRAGMENT:
			if (off + 8 > pi->len)
				return;
			hlen = 8;
			pi->fragment = true;
			if (rd16(p + off + 2) & 0xfff8) {
				pi->later_fragment = true;
				pi->proto = p[off];
				return;
			}
			break;
		case IP6_ESP:
		case IP6_NONE:
			return;
		default:
			pi->l4_off = off;
			return;
		}
		if (off + hlen > pi->len)
			return;
		next = p[off];
		off += hlen;
	}
}

static bool parse6(struct tunpkt *pi, const uint8_t *p, size_t n)
{
	size_t total;

	if (n < 40)
		return fail(pi, "truncated IPv6 header");
	pi->src.family = pi->dst.family = AF_INET6;
	memcpy(pi->src.v6, p + 8, 16);
	memcpy(pi->dst.v6, p + 24, 16);
	pi->proto = p[6];
	total = 40 + (size_t)rd16(p + 4);
	if (total > n)
		return fail(pi, "payload length exceeds packet");
	pi->hdr_len = 40;
	pi->len = total;
	walk6(pi, p);
	/* ICMPv6 types below 128 are errors (RFC 4443 2.1); an ICMPv6 packet
	 * whose type cannot be seen may be one. Anything whose chain ends
	 * early may be one too. */
	if (pi->proto == IP6_ICMP)
		pi->icmp_error = !pi->l4_off || pi->l4_off >= total || p[pi->l4_off] < 128;
	else if (!pi->l4_off && !pi->later_fragment && pi->proto != IP6_ESP && pi->proto != IP6_NONE)
		pi->icmp_error = true;
	return true;
}

bool tunpkt_parse(struct tunpkt *pi, const void *pkt, size_t n)
{
	const uint8_t *p = pkt;
	unsigned version;

	memset(pi, 0, sizeof(*pi));
	if (n < 1)
		return fail(pi, "empty packet");
	version = p[0] >> 4;
	if (version != 4 && version != 6)
		return fail(pi, unknown_version[version]);
	pi->version = (uint8_t)version;
	return version == 4 ? parse4(pi, p, n) : parse6(pi, p, n);
}

/* RFC 1071 sum over n bytes, folded to 16 bits but not complemented, so
 * sums of pieces can be added; every piece but the last must be even. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	while (n > 1) {
		sum += rd16(p);
		p += 2;
		n -= 2;
	}
	if (n)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static uint16_t csum_final(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Senders no error may go back to (RFC 1812 4.3.2.7, RFC 4443 2.4). */
static bool v4_unanswerable(const struct na_ip *src, const struct na_ip *dst)
{
	uint8_t s = src->v4[0], d = dst->v4[0];

	return s == 0 || s == 127 || s >= 224 || d >= 224;
}

static bool v6_unanswerable(const struct na_ip *src)
{
	static const uint8_t loopback[16] = { [15] = 1 };
	static const uint8_t unspecified[16];

	return src->v6[0] == 0xff || !memcmp(src->v6, loopback, 16) ||
	       !memcmp(src->v6, unspecified, 16);
}

static int too_big4(uint8_t *out, size_t cap, const uint8_t *p, const struct tunpkt *pi,
		    size_t mtu, const struct na_ip *src)
{
	size_t quote, len;

	/* src may be the packet's destination: a multicast one is no
	 * source, and then there is no answer either. */
	if (pi->len <= mtu || !pi->df || pi->later_fragment || pi->icmp_error ||
	    v4_unanswerable(&pi->src, &pi->dst) || v4_unanswerable(src, &pi->src))
		return 0;
	if (mtu < TUNPKT_V4_MIN_MTU)
		mtu = TUNPKT_V4_MIN_MTU;
	/* The header and the first 8 bytes, enough for the sender to find
	 * the socket (RFC 792). */
	quote = pi->hdr_len + (pi->len - pi->hdr_len < 8 ? pi->len - pi->hdr_len : 8);
	len = 20 + 8 + quote;
	if (cap < len)
		return -ENOBUFS;
	memset(out, 0, 28);
	out[0] = 0x45;
	out[1] = 0xc0; /* precedence "internetwork control", as Linux's own */
	wr16(out + 2, (uint16_t)len);
	wr16(out + 6, 0x4000); /* DF with ID 0: an atomic datagram, RFC 6864 */
	out[8] = 64;
	out[9] = IPPROTO_ICMP_;
	memcpy(out + 12, src->v4, 4);
	memcpy(out + 16, pi->src.v4, 4);
	wr16(out + 10, csum_final(csum_add(0, out, 20)));
	out[20] = 3; /* destination unreachable */
	out[21] = 4; /* fragmentation needed and DF set */
	wr16(out + 26, (uint16_t)(mtu > 0xffff ? 0xffff : mtu));
	memcpy(out + 28, p, quote);
	wr16(out + 22, csum_final(csum_add(0, out + 20, 8 + quote)));
	return (int)len;
}

static int too_big6(uint8_t *out, size_t cap, const uint8_t *p, const struct tunpkt *pi,
		    size_t mtu, const struct na_ip *src)
{
	uint8_t pseudo[40] = { 0 };
	size_t quote, len;
	uint32_t sum;

	if (mtu < TUNPKT_V6_MIN_MTU)
		mtu = TUNPKT_V6_MIN_MTU;
	if (pi->len <= mtu || pi->icmp_error || v6_unanswerable(&pi->src) || v6_unanswerable(src))
		return 0;
	/* As much of the packet as keeps the answer within 1280 bytes. */
	quote = pi->len < TUNPKT_V6_MIN_MTU - 48 ? pi->len : TUNPKT_V6_MIN_MTU - 48;
	len = 48 + quote;
	if (cap < len)
		return -ENOBUFS;
	memset(out, 0, 48);
	out[0] = 0x60;
	wr16(out + 4, (uint16_t)(8 + quote));
	out[6] = IP6_ICMP;
	out[7] = 64;
	memcpy(out + 8, src->v6, 16);
	memcpy(out + 24, pi->src.v6, 16);
	out[40] = 2; /* packet too big */
	out[44] = (uint8_t)(mtu >> 24);
	out[45] = (uint8_t)(mtu >> 16);
	out[46] = (uint8_t)(mtu >> 8);
	out[47] = (uint8_t)mtu;
	memcpy(out + 48, p, quote);
	/* RFC 8200 8.1 pseudo-header: addresses, upper-layer length, next
	 * header. */
	memcpy(pseudo, out + 8, 32);
	wr16(pseudo + 34, (uint16_t)(8 + quote));
	pseudo[39] = IP6_ICMP;
	sum = csum_add(0, pseudo, sizeof(pseudo));
	wr16(out + 42, csum_final(csum_add(sum, out + 40, 8 + quote)));
	return (int)len;
}

int tunpkt_too_big(uint8_t *out, size_t cap, const void *pkt, size_t n, size_t mtu,
		   const struct na_ip *src)
{
	struct tunpkt pi;

	if (!tunpkt_parse(&pi, pkt, n))
		return -EINVAL;
	if (src->family != pi.src.family)
		return -EINVAL;
	return pi.version == 4 ? too_big4(out, cap, pkt, &pi, mtu, src)
			       : too_big6(out, cap, pkt, &pi, mtu, src);
}
