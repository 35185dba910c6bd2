/* AutoNAT reachability (issue 8), sans-I/O: can the world reach an address
 * of ours without our sending there first? A server that has a second
 * address sends one small datagram to each address we ask about, from an
 * IP and port we never sent to; if it arrives, a stranger got in.
 *
 * Three parts, none of which owns a socket, reads a clock or logs:
 *
 * 1. The dial-back (autonat.c): a STUN Binding indication (RFC 8489) of a
 *    fixed AUTONAT_DIALBACK_LEN bytes with one comprehension-optional
 *    attribute, DIAL-BACK (0xC0A8):
 *        nonce u64 (the DIALREQ's), index u8 (the address's place in the
 *        DIALREQ), 3 zero bytes
 *    No FINGERPRINT, no PATH-TOKEN: the XDP program passes an indication
 *    without a path token to the socket, and the nonce is what proves it
 *    answers our request (it travelled only inside the QUIC session).
 *
 * 2. The server's policy (autonat.c): which addresses of a DIALREQ it
 *    dials. Refused, in this order: every address when it has no second
 *    address to dial from (UNAVAILABLE); a private or special-purpose
 *    address (PRIVATE: na_ip_is_private's list: 0/8, 10/8, 100.64/10,
 *    127/8, 169.254/16, 172.16/12, 192.168/16, 224/3 which holds multicast,
 *    240/4 and broadcast; ::, ::1, ::ffff:0:0/96, fc00::/7, fe80::/10,
 *    ff00::/8; 198.18.0.0/15 is public here, the lab's internet); an IP
 *    other than the one the server sees the requester at (NOT_YOURS: no
 *    reflection onto third parties); the requester's own IP when the
 *    second address is of the other family (UNAVAILABLE); then, for a
 *    request that would dial anything, the rate limits (RATE_LIMITED): per
 *    requester and in all, token buckets of AUTONAT_PEER_PER_MIN and
 *    AUTONAT_TOTAL_PER_MIN requests a minute (libp2p AutoNAT v2's
 *    defaults), each starting full.
 *    A request dials at most RDVMSG_MAX_DIAL addresses with one datagram
 *    each: AUTONAT_MAX_BYTES per request, whatever it asks.
 *
 * 3. The client (autonat_client.c): the addresses we watch (the reflexive
 *    address the rendezvous sees, discovery's, our host addresses, a port
 *    mapping's: each watcher is an owner bit), when to ask about which,
 *    and what the answers mean. Per address it keeps the last results
 *    (dial-back arrived or not) and a verdict, UNKNOWN until the last
 *    AUTONAT_AGREE results agree; it changes only when AUTONAT_AGREE
 *    results in a row say otherwise, so one stray result does not flap it.
 *    A refusal, a rate limit or an unavailable server is no result.
 *
 * Client timers (all in ns; the caller arms one timer at
 * autonat_client_deadline and calls autonat_client_tick then):
 *   due       a new address, or one asked to be rechecked: at once. After a
 *             result: AUTONAT_BURST_GAP while the verdict is not settled
 *             (the last AUTONAT_AGREE results do not all agree with it),
 *             for at most AUTONAT_BURST_MAX results, then AUTONAT_SLOW;
 *             once settled, AUTONAT_RECHECK. After a refusal: not ours
 *             and unavailable AUTONAT_RECHECK, rate limited
 *             AUTONAT_LIMITED_WAIT, private never (until a recheck).
 *   response  AUTONAT_RESP_TIMEOUT for the DIALRESP; without one the
 *             request is dropped with no result, retried AUTONAT_BURST_GAP
 *             later. One request is outstanding at a time; it carries
 *             every address due (at most RDVMSG_MAX_DIAL, earliest first).
 *   dial-back AUTONAT_WAIT after the DIALRESP said "dialed": an address
 *             whose dial-back has not come by then has one "did not
 *             arrive" result. A dial-back may also come before the
 *             DIALRESP (it is sent first); it counts once that says
 *             dialed. */
#ifndef NATAGENT_NAT_AUTONAT_H
#define NATAGENT_NAT_AUTONAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/addr.h"
#include "nat/ratelimit.h"
#include "nat/rdvmsg.h"

/* ---- the dial-back ---- */

#define AUTONAT_DIALBACK_ATTR	0xC0A8
#define AUTONAT_DIALBACK_LEN	36	/* header 20, attribute 4 + 12 */
#define AUTONAT_MAX_BYTES	(RDVMSG_MAX_DIAL * AUTONAT_DIALBACK_LEN)

/* Writes the dial-back for address index of request nonce; txid12 is the
 * transaction id's random part. Returns AUTONAT_DIALBACK_LEN, or 0 if cap
 * is smaller or index is not below RDVMSG_MAX_DIAL. */
size_t autonat_dialback_build(uint8_t *buf, size_t cap, const uint8_t txid12[12],
			      uint64_t nonce, uint8_t index);
/* True if buf is exactly a dial-back (length, type, cookie, the one
 * attribute, zero reserved bytes, index below RDVMSG_MAX_DIAL). */
bool autonat_dialback_parse(const uint8_t *buf, size_t len, uint64_t *nonce, uint8_t *index);

/* ---- the server's policy ---- */

#define AUTONAT_PEER_PER_MIN	12
#define AUTONAT_TOTAL_PER_MIN	60

struct autonat_server_stats {
	uint64_t requests;	/* DIALREQs decided */
	uint64_t dialed;	/* addresses dialed: dial-backs to send */
	uint64_t not_yours, private_, rate_limited, unavailable; /* addresses */
};

struct autonat_server {
	struct tbucket total;
	uint8_t family;		/* of the socket dial-backs leave from; 0: none */
	struct autonat_server_stats st;
};

/* family: that of the second address dial-backs go out from, 0 if the
 * server has none (every address then comes back UNAVAILABLE). */
void autonat_server_init(struct autonat_server *s, uint8_t family, uint64_t now);
/* One per requester, kept as long as its registration. */
void autonat_peer_limit_init(struct tbucket *peer, uint64_t now);
/* Decides every address of req from a requester seen at observed, spending
 * the requester's and the global token when anything is to be dialed.
 * Fills resp (nonce, count, a status per address) and returns how many
 * addresses are DIALED: the caller sends exactly those dial-backs. */
unsigned autonat_server_decide(struct autonat_server *s, struct tbucket *peer,
			       const struct na_ip *observed, const struct rdvmsg_dialreq *req,
			       uint64_t now, struct rdvmsg_dialresp *resp);

/* ---- the client ---- */

enum autonat_reach {
	AUTONAT_UNKNOWN = 0,
	AUTONAT_PUBLIC,		/* dial-backs get in: reachable by anyone */
	AUTONAT_PRIVATE,	/* they do not: behind a NAT or firewall */
};
const char *autonat_reach_name(enum autonat_reach r); /* "unknown", "public", "private" */

#define AUTONAT_MAX_ADDRS	16
#define AUTONAT_AGREE		3
#define AUTONAT_BURST_MAX	6
#define AUTONAT_SEC		1000000000ull
#define AUTONAT_BURST_GAP	(1 * AUTONAT_SEC)
#define AUTONAT_SLOW		(60 * AUTONAT_SEC)
#define AUTONAT_RECHECK		(180 * AUTONAT_SEC)
#define AUTONAT_LIMITED_WAIT	(30 * AUTONAT_SEC)
#define AUTONAT_RESP_TIMEOUT	(5 * AUTONAT_SEC)
#define AUTONAT_WAIT		(2 * AUTONAT_SEC)
#define AUTONAT_NEVER		UINT64_MAX

#define AUTONAT_NO_REFUSAL	0xff

struct autonat_addr {
	struct na_endpoint ep;
	uint32_t owners;	/* bits of whoever watches it; 0: slot free */
	uint8_t reach;		/* enum autonat_reach: the verdict */
	uint8_t hist;		/* results, newest in bit 0; 1: the dial-back arrived */
	uint8_t n_hist;		/* results held in hist, at most 8 */
	uint8_t unsettled;	/* results since the verdict last agreed */
	uint8_t refused;	/* the last DIALRESP status if not dialed, else
				   AUTONAT_NO_REFUSAL; cleared by a result */
	uint64_t due;		/* when to ask next; AUTONAT_NEVER */
	uint64_t checked;	/* time of the last result; 0: none yet */
	uint64_t answered;	/* time of the last DIALRESP about it; 0: none */
	/* In the outstanding request: asked about, DIALRESP said dialed, its
	 * dial-back came. again: a recheck came while it was asked about. */
	bool pending, dialed, arrived, again;
};

/* The one request outstanding. */
struct autonat_req {
	bool active, answered;
	uint64_t nonce;
	struct na_endpoint server;	/* where it went: a dial-back from there is no proof */
	uint64_t deadline;		/* of the DIALRESP, then of the dial-backs */
	uint8_t count;
	uint8_t slot[RDVMSG_MAX_DIAL];	/* into addrs */
	struct na_endpoint ep[RDVMSG_MAX_DIAL]; /* what each slot held when asked */
};

enum autonat_event_kind {
	AUTONAT_EV_RESULT,	/* one check's outcome (arrived) */
	AUTONAT_EV_REFUSED,	/* the server did not dial (status) */
	AUTONAT_EV_CHANGED,	/* the verdict changed from was to reach */
};

struct autonat_event {
	uint8_t kind;		/* enum autonat_event_kind */
	struct na_endpoint ep;
	bool arrived;		/* RESULT */
	uint8_t status;		/* REFUSED: enum rdvmsg_dial_status */
	uint8_t reach, was;	/* the verdict now and before (CHANGED; RESULT: now) */
	uint8_t agree_ok, agree_n; /* of the last (up to AUTONAT_AGREE) results: arrived, held */
};

#define AUTONAT_EVENTS 32

struct autonat_client {
	struct autonat_addr addrs[AUTONAT_MAX_ADDRS];
	struct autonat_req req;
	struct autonat_event ev[AUTONAT_EVENTS];
	unsigned ev_head, ev_len;
	uint64_t requests, results, refusals, events_lost;
};

void autonat_client_init(struct autonat_client *c);
/* Adds owner (a bit, 1u << n) to the watchers of ep. A new address is due
 * at once, with an unknown verdict. Returns its slot (>= 0); -1 when ep
 * has no family or port 0, or AUTONAT_MAX_ADDRS are watched already. */
int autonat_client_watch(struct autonat_client *c, const struct na_endpoint *ep, uint32_t owner,
			 uint64_t now);
/* Removes owner; the address and its history go when nobody watches it.
 * Returns true if it went. A request that asked about it ignores its
 * answer for it. */
bool autonat_client_unwatch(struct autonat_client *c, const struct na_endpoint *ep,
			    uint32_t owner);
const struct autonat_addr *autonat_client_find(const struct autonat_client *c,
					       const struct na_endpoint *ep);
/* Due at once (ep NULL: every address), history kept: an address changed
 * under us, so the verdicts may be stale. */
void autonat_client_recheck(struct autonat_client *c, const struct na_endpoint *ep, uint64_t now);

/* If no request is outstanding and an address is due: fills out with a
 * DIALREQ for every address due (at most RDVMSG_MAX_DIAL, earliest due
 * first) under the caller's random nonce, records it as sent to server,
 * and returns true. */
bool autonat_client_request(struct autonat_client *c, uint64_t now, uint64_t nonce,
			    const struct na_endpoint *server, struct rdvmsg_dialreq *out);
/* The DIALRESP to it. False (ignored) if it answers no outstanding request
 * or its count is not the request's. */
bool autonat_client_response(struct autonat_client *c, const struct rdvmsg_dialresp *m,
			     uint64_t now);
/* A dial-back (autonat_dialback_parse's) that came from `from`. True if it
 * belongs to the outstanding request (the caller need look no further);
 * one from the server's own address proves nothing and counts for nothing. */
bool autonat_client_dialback(struct autonat_client *c, uint64_t nonce, uint8_t index,
			     const struct na_endpoint *from, uint64_t now);
/* The path the request went on is gone before its DIALRESP came: drop it,
 * no result; its addresses are due again AUTONAT_BURST_GAP later. */
void autonat_client_abandon(struct autonat_client *c, uint64_t now);
/* Timeouts: a DIALRESP that did not come, dial-backs that did not arrive. */
void autonat_client_tick(struct autonat_client *c, uint64_t now);
/* When tick (or, if can_request, a new request) has work next;
 * AUTONAT_NEVER for nothing. */
uint64_t autonat_client_deadline(const struct autonat_client *c, bool can_request);
/* The oldest event not yet taken; false when there is none. Events beyond
 * AUTONAT_EVENTS not taken are dropped, oldest first (counted). */
bool autonat_client_event(struct autonat_client *c, struct autonat_event *ev);

/* Of the last (up to AUTONAT_AGREE) results of a: how many arrived, and
 * how many there are. */
void autonat_addr_agreement(const struct autonat_addr *a, unsigned *ok, unsigned *n);

#endif
