/* Packets as a TUN device (IFF_TUN | IFF_NO_PI) hands them over: bare IPv4
 * or IPv6 packets. The classifier reads only what the header lengths allow
 * within the bytes given, and says why when a packet is not one; the agent
 * routes by the destination it returns (allowedips) and forwards `len`
 * bytes, never trailing padding. Checksums are not checked: the kernel
 * checks every packet written to it, and what it hands us is its own.
 *
 * When a packet is too big for the path to the peer, the agent answers its
 * sender as a router would: ICMP "fragmentation needed" (RFC 792, 1191) or
 * ICMPv6 "packet too big" (RFC 4443, 8201), written back into the TUN.
 * Rate limiting those answers is the caller's business. */
#ifndef NATAGENT_AGENT_TUNPKT_H
#define NATAGENT_AGENT_TUNPKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/addr.h"

#define TUNPKT_V6_MIN_MTU 1280 /* RFC 8200: every IPv6 link carries this */
#define TUNPKT_V4_MIN_MTU 68   /* RFC 791 */
/* Room that always suffices for tunpkt_too_big(): an ICMPv6 error never
 * exceeds the IPv6 minimum MTU; the ICMPv4 one is at most 20 + 8 + 60 + 8. */
#define TUNPKT_TOO_BIG_MAX TUNPKT_V6_MIN_MTU

struct tunpkt {
	uint8_t version;   /* 4 or 6; 0 when not even that could be read */
	uint8_t proto;     /* IPv4 protocol, or IPv6's after extension headers */
	struct na_ip src, dst;
	size_t len;        /* total length by the header (<= bytes given) */
	size_t hdr_len;    /* IPv4 header with options; 40 for IPv6 */
	size_t l4_off;     /* upper-layer header; 0 when not reachable (a
			    * later fragment, ESP, a truncated header chain) */
	bool df;           /* IPv4 Don't Fragment */
	bool fragment;     /* any fragment of a larger packet */
	bool later_fragment; /* a fragment other than the first */
	/* An ICMP or ICMPv6 error, or an ICMP packet too short or too
	 * fragmented to tell: answering one with an error could loop. */
	bool icmp_error;
	const char *reason; /* why the packet is invalid; NULL when valid */
};

/* Classifies pkt[0..n). True when it is a well-formed IP packet; false with
 * pi->reason set ("truncated IPv4 header", "IHL < 5", "total length exceeds
 * packet", "unknown IP version 5", ...). Fields known before the fault
 * stay filled in. */
bool tunpkt_parse(struct tunpkt *pi, const void *pkt, size_t n);

/* Writes into out the answer to a packet the path cannot carry with the
 * given MTU, from src: the TUN's own address of the packet's family, or the
 * packet's destination. For IPv4 Linux drops an answer from its own address
 * as a martian source unless net.ipv4.conf.<tun>.accept_local is 1; one
 * from the packet's destination needs no sysctl. IPv6 accepts either.
 * Returns its length; 0 when no answer is due: the packet fits, an IPv4
 * packet without DF, an ICMP error, an IPv4 later fragment, a sender that is
 * unspecified, loopback, multicast or broadcast, an IPv4 broadcast or
 * multicast destination, or an src that no packet may come from (such as
 * the multicast destination of an IPv6 packet). IPv6 answers report at least 1280: below that the
 * tunnel itself must cope. -EINVAL for a malformed packet or an src of the
 * other family, -ENOBUFS when cap is too small (TUNPKT_TOO_BIG_MAX never
 * is). */
int tunpkt_too_big(uint8_t *out, size_t cap, const void *pkt, size_t n, size_t mtu,
		   const struct na_ip *src);

#endif
