/* TUN packet classifier and "too big" answers: hand-made packets, one per
 * rejection reason, and answers compared byte for byte with ones computed
 * outside this code (Python's struct and ipaddress), their checksums then
 * verified again here by a sum of our own. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "agent/tunpkt.h"
#include "tests/unit/inetsum.h"
#include "tests/unit/unit.h"

/* 192.168.1.10:1234 -> 10.77.0.2:5678, UDP, DF, total length 1500. */
static const uint8_t v4_hdr[20] = {
	0x45, 0x00, 0x05, 0xdc, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x4c, 0xca,
	0xc0, 0xa8, 0x01, 0x0a, 0x0a, 0x4d, 0x00, 0x02,
};
static const uint8_t v4_udp[8] = { 0x04, 0xd2, 0x16, 0x2e, 0x05, 0xc8, 0x00, 0x00 };

/* Its ICMP answer from 10.77.0.1 for a path MTU of 1400. */
static const uint8_t v4_too_big[56] = {
	0x45, 0xc0, 0x00, 0x38, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0x6e, 0x05,
	0x0a, 0x4d, 0x00, 0x01, 0xc0, 0xa8, 0x01, 0x0a, 0x03, 0x04, 0xd6, 0xbb,
	0x00, 0x00, 0x05, 0x78, 0x45, 0x00, 0x05, 0xdc, 0x1c, 0x46, 0x40, 0x00,
	0x40, 0x11, 0x4c, 0xca, 0xc0, 0xa8, 0x01, 0x0a, 0x0a, 0x4d, 0x00, 0x02,
	0x04, 0xd2, 0x16, 0x2e, 0x05, 0xc8, 0x00, 0x00,
};

/* [fd00:1::10]:1234 -> [fd00:77::2]:5678, UDP, 1500 bytes in all. */
static const uint8_t v6_hdr[40] = {
	0x60, 0x00, 0x00, 0x00, 0x05, 0xb4, 0x11, 0x40,
	0xfd, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
	0xfd, 0x00, 0x00, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
};
static const uint8_t v6_udp[8] = { 0x04, 0xd2, 0x16, 0x2e, 0x05, 0xb4, 0x00, 0x00 };

/* The first 48 bytes of its ICMPv6 answer from fd00:77::1, MTU 1400; the
 * 1232 bytes after them quote the packet. */
static const uint8_t v6_too_big[48] = {
	0x60, 0x00, 0x00, 0x00, 0x04, 0xd8, 0x3a, 0x40, 0xfd, 0x00, 0x00, 0x77,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0xfd, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x10, 0x02, 0x00, 0x81, 0x9f, 0x00, 0x00, 0x05, 0x78,
};

static uint8_t pkt4[1600], pkt6[1600];

static void build(void)
{
	memcpy(pkt4, v4_hdr, 20);
	memcpy(pkt4 + 20, v4_udp, 8);
	for (size_t i = 0; i < 1472; i++)
		pkt4[28 + i] = (uint8_t)(i * 7 + 3);
	memcpy(pkt6, v6_hdr, 40);
	memcpy(pkt6 + 40, v6_udp, 8);
	for (size_t i = 0; i < 1452; i++)
		pkt6[48 + i] = (uint8_t)(i * 7 + 3);
}

static const char *ipstr(const struct na_ip *ip)
{
	static char buf[4][INET6_ADDRSTRLEN];
	static int i;

	i = (i + 1) % 4;
	return na_ip_str(ip, buf[i], sizeof(buf[i]));
}

static void test_parse4(void)
{
	struct tunpkt pi;
	uint8_t p[64];

	CHECK(tunpkt_parse(&pi, pkt4, 1500), "IPv4 UDP packet is valid");
	CHECK(pi.reason == NULL, "no reason when valid");
	CHECK_EQ_INT(pi.version, 4, "version");
	CHECK_EQ_INT(pi.proto, 17, "protocol");
	CHECK_EQ_STR(ipstr(&pi.src), "192.168.1.10", "source");
	CHECK_EQ_STR(ipstr(&pi.dst), "10.77.0.2", "destination");
	CHECK_EQ_INT(pi.len, 1500, "total length");
	CHECK_EQ_INT(pi.hdr_len, 20, "header length");
	CHECK_EQ_INT(pi.l4_off, 20, "UDP right after the header");
	CHECK(pi.df && !pi.fragment && !pi.icmp_error, "DF, whole, not ICMP");
	CHECK(tunpkt_parse(&pi, pkt4, 1600) && pi.len == 1500, "trailing bytes are not counted");

	static const struct { size_t n; int off; uint8_t val; const char *reason; } bad[] = {
		{ 19, -1, 0, "truncated IPv4 header" },
		{ 1500, 0, 0x44, "IHL < 5" },
		{ 1500, 0, 0x40, "IHL < 5" },
		{ 40, 0, 0x4f, "truncated IPv4 options" },
		{ 1499, -1, 0, "total length exceeds packet" },
		{ 1500, 0, 0x55, "unknown IP version 5" },
		{ 1500, 0, 0x05, "unknown IP version 0" },
		{ 1500, 0, 0xf5, "unknown IP version 15" },
		{ 0, -1, 0, "empty packet" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		uint8_t save = 0;
		if (bad[i].off >= 0) {
			save = pkt4[bad[i].off];
			pkt4[bad[i].off] = bad[i].val;
		}
		CHECK(!tunpkt_parse(&pi, pkt4, bad[i].n), "invalid: %s", bad[i].reason);
		CHECK_EQ_STR(pi.reason, bad[i].reason, "reason given");
		if (bad[i].off >= 0)
			pkt4[bad[i].off] = save;
	}
	/* Total length 16: the header's 20 do not fit in it. */
	pkt4[2] = 0x00, pkt4[3] = 0x10;
	CHECK(!tunpkt_parse(&pi, pkt4, 1500) && !strcmp(pi.reason, "total length shorter than header"),
	      "total length 16 < IHL");
	memcpy(pkt4, v4_hdr, 20);

	/* ICMP: an echo request may be answered, a destination unreachable
	 * may not; nor may a header with no room for the ICMP type. */
	memcpy(p, v4_hdr, 20);
	p[2] = 0, p[3] = 28, p[9] = 1;
	memset(p + 20, 0, 8);
	p[20] = 8;
	CHECK(tunpkt_parse(&pi, p, 28) && pi.proto == 1 && !pi.icmp_error, "ICMP echo is no error");
	p[20] = 3;
	CHECK(tunpkt_parse(&pi, p, 28) && pi.icmp_error, "ICMP unreachable is an error");
	p[20] = 11;
	CHECK(tunpkt_parse(&pi, p, 28) && pi.icmp_error, "ICMP time exceeded is an error");
	p[3] = 20;
	CHECK(tunpkt_parse(&pi, p, 28) && pi.icmp_error, "ICMP without a type counts as one");
	/* Fragments: MF on the first, an offset on later ones. */
	memcpy(p, v4_hdr, 20);
	p[2] = 0, p[3] = 28;
	p[6] = 0x20, p[7] = 0x00;
	CHECK(tunpkt_parse(&pi, p, 28) && pi.fragment && !pi.later_fragment && pi.l4_off == 20,
	      "first fragment: MF, upper layer visible");
	p[6] = 0x00, p[7] = 0xb9;
	CHECK(tunpkt_parse(&pi, p, 28) && pi.fragment && pi.later_fragment && pi.l4_off == 0,
	      "later fragment: no upper layer");
	/* Options: IHL 6 puts UDP at 24. */
	memcpy(p, v4_hdr, 20);
	p[0] = 0x46, p[2] = 0, p[3] = 32;
	memset(p + 20, 1, 12);
	CHECK(tunpkt_parse(&pi, p, 32) && pi.hdr_len == 24 && pi.l4_off == 24, "IPv4 options");
}

static void test_parse6(void)
{
	struct tunpkt pi;
	uint8_t p[128];

	CHECK(tunpkt_parse(&pi, pkt6, 1500), "IPv6 UDP packet is valid");
	CHECK_EQ_INT(pi.version, 6, "v6 version");
	CHECK_EQ_INT(pi.proto, 17, "v6 next header");
	CHECK_EQ_STR(ipstr(&pi.src), "fd00:1::10", "v6 source");
	CHECK_EQ_STR(ipstr(&pi.dst), "fd00:77::2", "v6 destination");
	CHECK_EQ_INT(pi.len, 1500, "v6 total length");
	CHECK_EQ_INT(pi.l4_off, 40, "v6 UDP offset");
	CHECK(!tunpkt_parse(&pi, pkt6, 39) && !strcmp(pi.reason, "truncated IPv6 header"),
	      "truncated IPv6 header");
	CHECK(!tunpkt_parse(&pi, pkt6, 1499) && !strcmp(pi.reason, "payload length exceeds packet"),
	      "payload length exceeds packet");

	/* Hop-by-hop, destination options, fragment (first), ICMPv6 echo. */
	memset(p, 0, sizeof(p));
	memcpy(p, v6_hdr, 40);
	p[4] = 0, p[5] = 8 + 16 + 8 + 8;
	p[6] = 0;                  /* hop-by-hop */
	p[40] = 60, p[41] = 0;     /* -> dest options, 8 bytes */
	p[48] = 44, p[49] = 1;     /* -> fragment, 16 bytes */
	p[64] = 58;                /* -> ICMPv6; offset 0, M set */
	p[67] = 1;
	p[72] = 128;               /* echo request */
	CHECK(tunpkt_parse(&pi, p, 80), "extension header chain");
	CHECK(pi.proto == 58 && pi.l4_off == 72, "ICMPv6 found after three headers");
	CHECK(pi.fragment && !pi.later_fragment && !pi.icmp_error, "first fragment of an echo");
	p[72] = 1;
	CHECK(tunpkt_parse(&pi, p, 80) && pi.icmp_error, "ICMPv6 type 1 is an error");
	p[66] = 0x01;              /* offset 32 */
	CHECK(tunpkt_parse(&pi, p, 80) && pi.later_fragment && pi.l4_off == 0 && pi.proto == 58,
	      "later fragment: protocol known, upper layer not");
	CHECK(pi.icmp_error, "a later ICMPv6 fragment might be an error");
	p[66] = 0;
	p[49] = 9;                 /* dest options longer than the packet */
	CHECK(tunpkt_parse(&pi, p, 80) && pi.l4_off == 0 && pi.icmp_error,
	      "a chain running past the end: valid, upper layer unknown, treated as error");
}

static void check_too_big4(void)
{
	struct na_ip self, self6;
	uint8_t out[TUNPKT_TOO_BIG_MAX], p[64];
	struct tunpkt pi;
	int n;

	na_ip_parse(&self, "10.77.0.1");
	na_ip_parse(&self6, "fd00:77::1");
	n = tunpkt_too_big(out, sizeof(out), pkt4, 1500, 1400, &self);
	CHECK_EQ_INT(n, 56, "v4: answer is header + 8 + 28 quoted");
	CHECK(n == 56 && !memcmp(out, v4_too_big, 56), "v4: answer bytes exact");
	CHECK_EQ_INT(inet_sum16(out, 20, 0), 0xffff, "v4: IP header checksum verifies");
	CHECK_EQ_INT(inet_sum16(out + 20, 36, 0), 0xffff, "v4: ICMP checksum verifies");
	CHECK(tunpkt_parse(&pi, out, (size_t)n) && pi.icmp_error && pi.proto == 1,
	      "v4: the answer classifies as an ICMP error");
	CHECK_EQ_INT(tunpkt_too_big(p, sizeof(p), out, (size_t)n, 20, &self), 0,
		     "v4: an answer is never answered");

	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt4, 1500, 1500, &self), 0, "v4: fits: none");
	CHECK_EQ_INT(tunpkt_too_big(out, 55, pkt4, 1500, 1400, &self), -ENOBUFS, "v4: small buffer");
	struct na_ip dst;
	na_ip_parse(&dst, "10.77.0.2");
	n = tunpkt_too_big(out, sizeof(out), pkt4, 1500, 1400, &dst);
	CHECK(n == 56 && !memcmp(out + 12, dst.v4, 4) && inet_sum16(out, 20, 0) == 0xffff,
	      "v4: from the packet's destination instead");
	na_ip_parse(&dst, "224.0.0.1");
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt4, 1500, 1400, &dst), 0,
		     "v4: no answer from a multicast source");
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt4, 1500, 1400, &self6), -EINVAL,
		     "v4: source of the wrong family");
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt4, 1499, 1400, &self), -EINVAL,
		     "v4: malformed packet");
	n = tunpkt_too_big(out, sizeof(out), pkt4, 1500, 20, &self);
	CHECK(n == 56 && out[26] == 0 && out[27] == 68, "v4: MTU below 68 reported as 68");

	pkt4[6] = 0x00;
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt4, 1500, 1400, &self), 0, "v4: no DF: none");
	pkt4[6] = 0x40, pkt4[7] = 0x10;
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt4, 1500, 1400, &self), 0,
		     "v4: later fragment: none");
	pkt4[7] = 0x00;
	static const struct { int off; uint8_t val; const char *what; } quiet[] = {
		{ 12, 0, "from 0.0.0.0/8" }, { 12, 127, "from loopback" },
		{ 12, 224, "from multicast" }, { 12, 255, "from broadcast" },
		{ 16, 239, "to multicast" }, { 16, 255, "to broadcast" },
	};
	for (size_t i = 0; i < sizeof(quiet) / sizeof(*quiet); i++) {
		uint8_t save = pkt4[quiet[i].off];
		pkt4[quiet[i].off] = quiet[i].val;
		CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt4, 1500, 1400, &self), 0, quiet[i].what);
		pkt4[quiet[i].off] = save;
	}

	/* A short packet quotes all it has: 20 + 4 bytes, MTU 20. */
	memcpy(p, v4_hdr, 20);
	p[2] = 0, p[3] = 24;
	memset(p + 20, 0xee, 4);
	n = tunpkt_too_big(out, sizeof(out), p, 24, 20, &self);
	CHECK_EQ_INT(n, 52, "v4: short packet quoted whole");
	CHECK(n == 52 && !memcmp(out + 28, p, 24) && inet_sum16(out + 20, 32, 0) == 0xffff,
	      "v4: odd-sized quote, checksum verifies");
}

static void check_too_big6(void)
{
	struct na_ip self, self4;
	uint8_t out[TUNPKT_TOO_BIG_MAX + 16], pseudo[40] = { 0 };
	struct tunpkt pi;
	int n;

	na_ip_parse(&self, "fd00:77::1");
	na_ip_parse(&self4, "10.77.0.1");
	n = tunpkt_too_big(out, sizeof(out), pkt6, 1500, 1400, &self);
	CHECK_EQ_INT(n, 1280, "v6: answer fills 1280 bytes");
	CHECK(n == 1280 && !memcmp(out, v6_too_big, 48), "v6: header bytes exact");
	CHECK(n == 1280 && !memcmp(out + 48, pkt6, 1232), "v6: quotes the first 1232 bytes");
	memcpy(pseudo, out + 8, 32);
	pseudo[34] = (1280 - 40) >> 8, pseudo[35] = (1280 - 40) & 0xff, pseudo[39] = 58;
	CHECK_EQ_INT(inet_sum16(out + 40, 1240, inet_sum16(pseudo, 40, 0)), 0xffff, "v6: ICMPv6 checksum with pseudo-header");
	CHECK(tunpkt_parse(&pi, out, (size_t)n) && pi.icmp_error && pi.proto == 58,
	      "v6: the answer classifies as an ICMPv6 error");
	static uint8_t again[TUNPKT_TOO_BIG_MAX];
	CHECK_EQ_INT(tunpkt_too_big(again, sizeof(again), out, (size_t)n, 1000, &self), 0,
		     "v6: an answer is never answered");
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt6, 1500, 1400, &self4), -EINVAL,
		     "v6: source of the wrong family");
	CHECK_EQ_INT(tunpkt_too_big(out, 1279, pkt6, 1500, 1400, &self), -ENOBUFS, "v6: small buffer");

	/* MTU below the IPv6 minimum: 1280 reported; 1280 bytes go through. */
	n = tunpkt_too_big(out, sizeof(out), pkt6, 1500, 1000, &self);
	CHECK(n == 1280 && out[44] == 0 && out[45] == 0 && out[46] == 0x05 && out[47] == 0x00,
	      "v6: MTU 1000 reported as 1280");
	pkt6[4] = (1280 - 40) >> 8, pkt6[5] = (1280 - 40) & 0xff;
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt6, 1280, 1000, &self), 0,
		     "v6: a 1280-byte packet is never too big");
	/* Smaller than 1280 in all: quoted whole. */
	pkt6[4] = (1300 - 40) >> 8, pkt6[5] = (1300 - 40) & 0xff;
	n = tunpkt_too_big(out, sizeof(out), pkt6, 1300, 1280, &self);
	CHECK_EQ_INT(n, 1280, "v6: 1300-byte packet, answer capped at 1280");
	pkt6[4] = 0x05, pkt6[5] = 0xb4;

	static const struct { int off; uint8_t val; const char *what; } quiet[] = {
		{ 8, 0xff, "v6: from multicast" }, { 8, 0x00, "v6: from ::" },
	};
	for (size_t i = 0; i < sizeof(quiet) / sizeof(*quiet); i++) {
		uint8_t save[16];
		memcpy(save, pkt6 + 8, 16);
		memset(pkt6 + 8, 0, 16);
		pkt6[quiet[i].off] = quiet[i].val;
		CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt6, 1500, 1400, &self), 0, quiet[i].what);
		memcpy(pkt6 + 8, save, 16);
	}
	/* PTB may go about a multicast destination (RFC 4443 2.4 e.3). */
	pkt6[24] = 0xff;
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt6, 1500, 1400, &self), 1280,
		     "v6: to multicast: answered");
	struct na_ip mcast;
	na_ip_parse(&mcast, "ff02::1");
	CHECK_EQ_INT(tunpkt_too_big(out, sizeof(out), pkt6, 1500, 1400, &mcast), 0,
		     "v6: no answer from a multicast source");
	pkt6[24] = 0xfd;
}

int main(void)
{
	build();
	test_parse4();
	test_parse6();
	check_too_big4();
	check_too_big6();
	return unit_done();
}
