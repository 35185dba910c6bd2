/* The rendezvous session's messages (DESIGN.md "Wire formats", issues 6, 7
 * and 8): a codec for the frames exchanged over the QUIC control stream between
 * a peer and the rendezvous server. Sans-I/O: nothing here allocates,
 * sleeps or logs; failures come back with a static reason string.
 *
 * Framing, all integers in network order:
 *   header  = type u8, flags u8 (0), body length u16
 *   body    = fixed fields, then arrays with an explicit count before them
 *   address = family u8 (4 | 6), reserved u8 (0), port u16, 4 | 16 bytes
 *
 *   REGISTER   (peer -> server)  count u16 (<= 64), count x key[32]
 *   REGISTERED (server -> peer)  server-reflexive address (port != 0)
 *   CONNECT    (either way)      key[32], attempt u64, rtt_us u32,
 *                                secret[16], mapping u8, filtering u8,
 *                                token u64, answer u8 (0 | 1),
 *                                count u8 (<= 16), count x
 *                                {address (port != 0), type u8, priority u32}
 *   SYNC       (initiator -> responder) key[32], attempt u64, delay_us u32
 *   ERROR                        code u16, reason (<= 128 bytes, the rest of
 *                                the body, no NUL byte, not terminated)
 *   PING, PONG                   nonce u64
 *   PRESENT    (server -> peer)  key[32]: a peer that lists us, and that we
 *                                list, has just registered
 *   NATINFO    (peer -> peer, on the peer session's own control stream)
 *                                mapping u8, filtering u8: what discovery
 *                                found the sender's NAT does (0, unknown,
 *                                without discovery); services u8: bits of
 *                                what it offers the receiver (RDVMSG_SVC_*;
 *                                unknown bits are kept, not refused, so a
 *                                newer peer's offers do not break the stream)
 *   DIALREQ    (peer -> server, or to a peer that offers RDVMSG_SVC_AUTONAT)
 *                                nonce u64, count u8 (<= 8), count x address
 *                                (port != 0): AutoNAT, "dial me back there"
 *   DIALRESP   (server -> requester) nonce u64 (the request's), count u8 (<= 8),
 *                                count x status u8 (enum rdvmsg_dial_status,
 *                                one per address, in the request's order)
 *   UNREGISTER (peer -> server)  as REGISTER: keys the peer no longer lists
 *                                (its configuration lost those peers); the
 *                                server drops them from its accepted keys
 *
 * The decoder is strict: a body must have exactly the length its counts and
 * families give, reserved bytes and flags must be zero, so every frame that
 * decodes re-encodes to the same bytes. */
#ifndef NATAGENT_NAT_RDVMSG_H
#define NATAGENT_NAT_RDVMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nat/addr.h"

#define RDVMSG_HEADER_LEN	4
#define RDVMSG_KEY_LEN		32
#define RDVMSG_SECRET_LEN	16
#define RDVMSG_MAX_KEYS		64
#define RDVMSG_MAX_CANDIDATES	16
#define RDVMSG_MAX_REASON	128
#define RDVMSG_MAX_DIAL		8	/* addresses in one DIALREQ */
/* The largest values of enum nat_mapping and nat_filtering. */
#define RDVMSG_NAT_MAPPING_MAX	4
#define RDVMSG_NAT_FILTERING_MAX 3
/* Hard bound on a body: a peer can never make the other buffer more than
 * RDVMSG_HEADER_LEN + RDVMSG_MAX_BODY bytes for one frame. The largest valid
 * body (REGISTER with 64 keys) is 2050 bytes. */
#define RDVMSG_MAX_BODY		2560
#define RDVMSG_MAX_FRAME	(RDVMSG_HEADER_LEN + RDVMSG_MAX_BODY)

enum rdvmsg_type {
	RDVMSG_REGISTER		= 1,
	RDVMSG_REGISTERED	= 2,
	RDVMSG_CONNECT		= 3,
	RDVMSG_SYNC		= 4,
	RDVMSG_ERROR		= 5,
	RDVMSG_PING		= 6,
	RDVMSG_PONG		= 7,
	RDVMSG_PRESENT		= 8,
	RDVMSG_NATINFO		= 9,
	RDVMSG_DIALREQ		= 10,
	RDVMSG_DIALRESP		= 11,
	RDVMSG_UNREGISTER	= 12,
};

/* What the server did with one address of a DIALREQ (nat/autonat.h says
 * why it refuses). Only DIALED sends a dial-back; the others are no
 * evidence either way. */
enum rdvmsg_dial_status {
	RDVMSG_DIAL_DIALED	 = 0,	/* a dial-back went out to it */
	RDVMSG_DIAL_NOT_YOURS	 = 1,	/* its IP is not the one the server sees */
	RDVMSG_DIAL_PRIVATE	 = 2,	/* private or special-purpose address */
	RDVMSG_DIAL_RATE_LIMITED = 3,	/* over the per-peer or global limit */
	RDVMSG_DIAL_UNAVAILABLE	 = 4,	/* no second address to dial from */
};
#define RDVMSG_DIAL_STATUS_MAX	RDVMSG_DIAL_UNAVAILABLE

enum rdvmsg_cand_type {
	RDVMSG_CAND_HOST	= 0,
	RDVMSG_CAND_SRFLX	= 1,
	RDVMSG_CAND_PRFLX	= 2,
	RDVMSG_CAND_MAPPED	= 3,
	RDVMSG_CAND_STATIC	= 4,
};

struct rdvmsg_register {
	uint16_t count;
	uint8_t keys[RDVMSG_MAX_KEYS][RDVMSG_KEY_LEN];
};

struct rdvmsg_registered {
	struct na_endpoint srflx;
};

struct rdvmsg_candidate {
	struct na_endpoint ep;
	uint8_t type;		/* enum rdvmsg_cand_type */
	uint32_t priority;
};

struct rdvmsg_connect {
	uint8_t key[RDVMSG_KEY_LEN];	/* target (to server) / source (from it) */
	uint64_t attempt;
	uint32_t rtt_us;
	uint8_t secret[RDVMSG_SECRET_LEN];
	/* The sender's NAT as its discovery saw it (enum nat_mapping and
	 * nat_filtering of nat/behavior.h), for the receiver's verdict. */
	uint8_t mapping, filtering;
	/* The path token the sender's XDP absorbs in keepalives to it. */
	uint64_t token;
	/* 1: this answers the attempt the receiver started; 0: it starts one. */
	uint8_t answer;
	uint8_t count;
	struct rdvmsg_candidate cand[RDVMSG_MAX_CANDIDATES];
};

struct rdvmsg_sync {
	uint8_t key[RDVMSG_KEY_LEN];
	uint64_t attempt;
	uint32_t delay_us;
};

struct rdvmsg_error {
	uint16_t code;
	uint8_t reason_len;
	char reason[RDVMSG_MAX_REASON + 1];	/* NUL-terminated when decoded */
};

struct rdvmsg_ping {
	uint64_t nonce;
};

struct rdvmsg_present {
	uint8_t key[RDVMSG_KEY_LEN];
};

/* NATINFO's services: the sender answers DIALREQs on the peer session
 * (AutoNATService = true). */
#define RDVMSG_SVC_AUTONAT	0x01

struct rdvmsg_natinfo {
	uint8_t mapping, filtering; /* as in CONNECT */
	uint8_t services;	/* RDVMSG_SVC_* bits */
};

struct rdvmsg_dialreq {
	uint64_t nonce;	/* the dial-backs carry it: the requester's random */
	uint8_t count;
	struct na_endpoint addr[RDVMSG_MAX_DIAL];
};

struct rdvmsg_dialresp {
	uint64_t nonce;
	uint8_t count;
	uint8_t status[RDVMSG_MAX_DIAL];	/* enum rdvmsg_dial_status */
};

struct rdvmsg {
	uint8_t type;	/* enum rdvmsg_type */
	union {
		struct rdvmsg_register reg;	/* REGISTER and UNREGISTER */
		struct rdvmsg_registered registered;
		struct rdvmsg_connect connect;
		struct rdvmsg_sync sync;
		struct rdvmsg_error error;
		struct rdvmsg_ping ping;	/* PING and PONG */
		struct rdvmsg_present present;
		struct rdvmsg_natinfo natinfo;
		struct rdvmsg_dialreq dialreq;
		struct rdvmsg_dialresp dialresp;
	};
};

/* Writes m as one frame into buf. Returns the frame's length, or 0 if it
 * does not fit in cap or m is invalid (unknown type, counts or reason over
 * their limits, family not AF_INET/AF_INET6, port 0 where refused, unknown
 * candidate type or dial status, NUL in the reason). */
size_t rdvmsg_encode(const struct rdvmsg *m, uint8_t *buf, size_t cap);

/* Convenience wrappers over rdvmsg_encode. */
size_t rdvmsg_encode_ping(uint8_t *buf, size_t cap, bool pong, uint64_t nonce);
size_t rdvmsg_encode_error(uint8_t *buf, size_t cap, uint16_t code, const char *reason);

/* Looks at the start of a stream buffer. Returns the length of the complete
 * frame there; 0 if more bytes are needed, with *need set to the total the
 * buffer must hold to go further (the header, then the whole frame); or -1
 * with *why set if the (partial) header can never be valid: unknown type,
 * flags set, or a body length over the limit or impossible for the type.
 * need and why may be NULL. */
ssize_t rdvmsg_frame(const uint8_t *buf, size_t len, size_t *need, const char **why);

/* Decodes exactly one frame of len bytes (as rdvmsg_frame delimited it).
 * Returns false with *why set (why may be NULL) on any violation. */
bool rdvmsg_decode(struct rdvmsg *m, const uint8_t *frame, size_t len, const char **why);

const char *rdvmsg_type_name(uint8_t type);
/* "dialed", "not the requester's address", ... */
const char *rdvmsg_dial_status_name(uint8_t status);

/* Relayed packets ride in the rendezvous session's QUIC DATAGRAM frames,
 * not in the stream (a lost one is the inner session's business):
 *   type u8 (RDVMSG_DGRAM_RELAY), key[32], the inner QUIC packet (>= 1 byte)
 * Towards the server the key names the destination peer; from the server it
 * names the source. */
#define RDVMSG_DGRAM_RELAY	0x01
#define RDVMSG_RELAY_HDR	(1 + RDVMSG_KEY_LEN)

void rdvmsg_relay_hdr(uint8_t out[RDVMSG_RELAY_HDR], const uint8_t key[RDVMSG_KEY_LEN]);
/* False if d is not a relay datagram with a non-empty packet. */
bool rdvmsg_relay_parse(const uint8_t *d, size_t n, const uint8_t **key,
			const uint8_t **pkt, size_t *pkt_len);

#endif
