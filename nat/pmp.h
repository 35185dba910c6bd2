/* Port mapping by PCP (RFC 6887) and NAT-PMP (RFC 6886), sans-I/O: one
 * `struct pmp` is one UDP mapping of one internal port through one gateway.
 *
 * Requests go to the gateway's port 5351 from any local UDP port; the
 * caller feeds pmp_input() every datagram from gateway:5351, and every one
 * that arrives on the announcement port 5350 (224.0.0.1 or ff02::1; those
 * too come from gateway:5351). A datagram from anywhere else is
 * PMP_IN_NOT_OURS, and so is an answer for another mapping (another PCP
 * nonce, another NAT-PMP internal port): several structs may share a
 * socket, each tried in turn. Times are CLOCK_MONOTONIC nanoseconds; every
 * timer below comes from the `now` the caller passes.
 *
 * Protocol. PCP first when allowed: MAP, protocol 17, a random 96-bit nonce
 * kept for the life of the struct (renewals, re-maps and the delete reuse
 * it, so the gateway knows them for ours), our address in the request
 * (IPv4 as ::ffff:a.b.c.d) and as the suggested external address the
 * all-zeros ::ffff:0.0.0.0 for IPv4, our own address for an IPv6 pinhole.
 * NAT-PMP (IPv4 only): the external address request (opcode 0), then the
 * UDP map (opcode 1); a renewal is the map alone, a re-map both. Once a
 * mapping exists, every later request suggests the external port (and for
 * PCP the address) the gateway gave. A PCP success with our nonce is taken
 * whenever it comes, except while deleting: the gateway may tell us of a
 * change unasked (RFC 6887 11.4), and a late answer after FAILED still maps.
 * Falling back from PCP to NAT-PMP, when NAT-PMP is allowed:
 *   - an answer to PCP in NAT-PMP's form (version 0, opcode 129, result 1
 *     "unsupported version"; a PCP-format UNSUPP_VERSION carrying version 0
 *     is the same bytes) or an UNSUPP_VERSION naming a PCP version other
 *     than 2: NAT-PMP at once;
 *   - silence: when nothing valid has come from the gateway by half the
 *     start-up bound (4.5 s by default: PCP sent at 0 and ~3 s), NAT-PMP
 *     gets the other half (sent at +0, 0.25, 0.75, 1.75, 3.75 s).
 * Without NAT-PMP allowed, either of these ends in FAILED.
 *
 * Timers (RAND uniform in [-0.1, +0.1], 0 without a random source):
 *   PCP retransmit    RT1 = (1+RAND) x 3 s, RTn = (1+RAND) x min(2 RTn-1,
 *                     1024 s) (section 8.1.1), until an answer or the bound
 *   NAT-PMP retransmit 250 ms, doubling (section 3.1), at most 9 sends and
 *                     64 s after the ninth, or the bound
 *   start-up bound    `startup` (9 s) of silence since the sequence began:
 *                     FAILED ("no answer ..."), or LOST if a mapping had
 *                     existed (a re-map after a restart or pmp_remap());
 *                     an answer that moves on (address, error retry,
 *                     fallback) starts a new sequence
 *   error retry       a short-lived error (PCP NETWORK_FAILURE,
 *                     NO_RESOURCES, USER_EX_QUOTA, CANNOT_PROVIDE_EXTERNAL;
 *                     NAT-PMP 3 Network Failure, 4 Out of resources): send
 *                     again once the error's lifetime has passed (PCP: the
 *                     response's lifetime, clamped to 3 s .. 30 min; NAT-PMP,
 *                     which has none: 30 s), as a new sequence. Long-lived
 *                     errors (the rest, and codes the RFCs do not define)
 *                     are final: FAILED (LOST in a re-map), no retry
 *   renewal           RFC 6887 11.2.1, used for NAT-PMP too (RFC 6886 3.3
 *                     only asks for half way): try k (0, 1, ...) at granted +
 *                     L (1 - 2^-(k+1)) + u L 2^-(k+3), u uniform in [0, 1)
 *                     (0 without a random source): 1/2, 3/4, 7/8, ... of the
 *                     granted lifetime L. A try whose window opens less than
 *                     4 s after the previous try is skipped (so is one
 *                     before a short-lived error's lifetime has passed);
 *                     none opens at or past expiry. A long-lived error stops
 *                     the renewals; the mapping stays until it expires
 *   expiry            granted + L: LOST when no renewal was granted by then
 *   delete            3 sends, 0, 0.25, 0.75 s after pmp_delete(), faster
 *                     than PCP's 3 s because this runs on exit and the
 *                     mapping expires anyway; DELETED on the answer (an
 *                     error included), or at 1.75 s anyway
 *
 * Epoch. Every valid packet's epoch (seconds since the gateway's state
 * began) is checked against the previous one, with PCP's rule (RFC 6887
 * 8.5: going back more than 1 s, or client and server deltas apart by more
 * than 2 s + 1/16) for PCP packets and NAT-PMP's (RFC 6886 3.6: smaller
 * than the previous plus 7/8 of the time elapsed, minus 2 s) for NAT-PMP
 * ones. A failed check means the gateway lost its mappings: PMP_IN_RESTARTED,
 * whatever the packet said, and the mapping is requested again at once.
 * Announcements (PCP's unsolicited ANNOUNCE, NAT-PMP's opcode-128 address
 * announcement on port 5350) run the same check; one that is not a repeat
 * of the last series (same epoch start within 2 s + 1/16 of the time since,
 * same external address) also acts at once, with no random delay: a
 * mapping is renewed now, a failed or lost one is tried again from the
 * start, a request under way starts its sequence over. A restart while
 * deleting ends the delete: DELETED.
 *
 * Errors are values: pmp_reason() is a static string saying why the last
 * error, FAILED or LOST happened; pmp_dropped() why the last datagram was
 * PMP_IN_BAD. */
#ifndef NATAGENT_NAT_PMP_H
#define NATAGENT_NAT_PMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/addr.h"

#define PMP_SERVER_PORT   5351
#define PMP_ANNOUNCE_PORT 5350
#define PMP_MAX_MSG       60   /* largest request: a PCP MAP without options */
#define PMP_NONCE_LEN     12

enum pmp_proto {
	PMP_PROTO_NONE,
	PMP_PROTO_PCP,
	PMP_PROTO_NATPMP,
};
const char *pmp_proto_name(enum pmp_proto p); /* "pcp", "natpmp", "none" */

/* pmp_params.protocols */
#define PMP_ALLOW_PCP    1u
#define PMP_ALLOW_NATPMP 2u

enum pmp_state {
	PMP_IDLE,       /* initialised, not started */
	PMP_REQUESTING, /* asking for a mapping: the first, or again after a
			   restart, an announcement or pmp_remap() */
	PMP_MAPPED,     /* pmp_mapping() holds it; renewals run */
	PMP_FAILED,     /* no mapping could be had: pmp_reason() */
	PMP_LOST,       /* there was one, and it expired or was not regained */
	PMP_DELETING,
	PMP_DELETED,
};
const char *pmp_state_name(enum pmp_state s);

/* "NOT_AUTHORIZED" for PCP, "Not Authorized/Refused" for NAT-PMP, ...;
 * "unknown" for codes neither RFC defines. */
const char *pmp_result_name(enum pmp_proto proto, unsigned code);

struct pmp_params {
	struct na_ip gateway;
	struct na_ip client;     /* our address towards the gateway, same family */
	uint16_t internal_port;
	uint16_t external_port;  /* suggested; 0: any */
	uint32_t lifetime;       /* requested, s; 0: 7200 */
	unsigned protocols;      /* PMP_ALLOW_*; 0: both (NAT-PMP only on IPv4) */
	uint64_t startup;        /* start-up bound, ns; 0: 9 s */
	/* Random bytes for the nonce and the jitter; the agent passes
	 * gnutls_rnd. NULL: a fixed nonce made from the internal port and no
	 * jitter, so that tests can predict every byte and time. */
	void (*rand)(void *ctx, uint8_t *out, size_t len);
	void *rand_ctx;
};

struct pmp_mapping {
	enum pmp_proto proto;
	struct na_endpoint external; /* what peers should send to */
	uint16_t internal_port;
	uint32_t lifetime;           /* granted, s */
	uint64_t granted;            /* when the grant (or its renewal) arrived */
	uint64_t expires;            /* granted + lifetime */
	uint64_t renew;              /* next renewal try; UINT64_MAX: none left */
};

enum pmp_input_result {
	PMP_IN_NOT_OURS,  /* not from gateway:5351, or another mapping's */
	PMP_IN_BAD,       /* from the gateway but malformed or not matching what
			     we asked: dropped, pmp_dropped() says why */
	PMP_IN_STALE,     /* valid, but answers nothing outstanding: no effect */
	PMP_IN_ADDRESS,   /* NAT-PMP external address learnt; the map follows */
	PMP_IN_MAPPED,    /* a mapping is in place and new to the caller (first,
			     again after a re-map, or its external address or
			     port changed): publish pmp_mapping() */
	PMP_IN_RENEWED,   /* the same mapping, its lifetime extended */
	PMP_IN_ERROR,     /* an error result: pmp_result(), pmp_reason(); the
			     state says whether it is final */
	PMP_IN_FALLBACK,  /* the gateway speaks NAT-PMP, not PCP: switching now */
	PMP_IN_RESTARTED, /* the epoch says the gateway lost its state: mapping
			     again now */
	PMP_IN_ANNOUNCE,  /* a valid announcement; pmp_deadline() shows whether
			     it started a request */
	PMP_IN_DELETED,   /* the gateway confirmed the delete */
};
const char *pmp_input_result_name(enum pmp_input_result r);

struct pmp {
	struct pmp_params prm;
	enum pmp_state state;
	enum pmp_proto proto;       /* in use, or being tried */
	uint8_t nonce[PMP_NONCE_LEN];
	uint8_t req;                /* what the next request is (pmp.c) */
	bool outstanding;           /* sent, not answered yet */
	bool pcp_heard;             /* a valid PCP packet came: no silence fallback */
	bool heard;                 /* any valid packet came, this attempt */
	bool had_mapping, sent_any;
	bool err_since_grant;
	struct pmp_mapping map;     /* valid in MAPPED; kept after for hints */
	struct na_ip natpmp_ext;    /* NAT-PMP: the gateway's external address */
	/* The current sequence of requests. */
	uint64_t next_send;         /* UINT64_MAX: none */
	uint64_t rt;                /* the last retransmission interval */
	unsigned sends;
	uint64_t seq_start, give_up;
	uint64_t last_send;
	unsigned renew_try;         /* k in the renewal schedule */
	bool renew_stopped;         /* a long-lived error: no more renewals */
	/* Epoch: the last one seen and when. */
	bool have_epoch;
	uint32_t epoch;
	uint64_t epoch_at;
	/* The last announcement series acted on. */
	bool ann_seen;
	uint8_t ann_kind;
	int64_t ann_start;
	uint64_t ann_at;
	struct na_ip ann_ext;
	/* Diagnostics. */
	const char *reason, *dropped;
	enum pmp_proto result_proto;
	uint16_t result_code;
	uint32_t result_lifetime;
	unsigned restarts;
};

/* Checks and copies the parameters, and draws the nonce. IDLE; or false
 * and FAILED (with pmp_reason()) when they cannot work: no or mismatched
 * address families, internal port 0, no protocol left (NAT-PMP alone on
 * IPv6). A refused struct stays FAILED (pmp_delete() makes it DELETED). */
bool pmp_init(struct pmp *p, const struct pmp_params *prm);
void pmp_start(struct pmp *p, uint64_t now);

/* The request due now, if any: its length (send it to gateway:5351), or 0
 * with nothing due (see pmp_deadline()). Also runs the timers: fallback,
 * giving up, expiry, the end of a delete. cap >= PMP_MAX_MSG, or the
 * request is counted as sent but not written (0 returned). One request per
 * call: call again until it returns 0. */
size_t pmp_next(struct pmp *p, uint64_t now, uint8_t *buf, size_t cap);
/* When pmp_next() has work next; UINT64_MAX: never (idle or finished). */
uint64_t pmp_deadline(const struct pmp *p);

/* One datagram received from `from` (port 5351 at the gateway's address). */
enum pmp_input_result pmp_input(struct pmp *p, const uint8_t *buf, size_t len,
				const struct na_endpoint *from, uint64_t now);

/* The caller's reachability probe found the mapping dead: request it again
 * now (same nonce, same suggestion). From FAILED or LOST, starts over, PCP
 * first. No effect when idle, deleting or deleted. */
void pmp_remap(struct pmp *p, uint64_t now);
/* On exit: delete the mapping (lifetime 0 requests). DELETED at once when
 * nothing was ever sent. */
void pmp_delete(struct pmp *p, uint64_t now);

enum pmp_state pmp_state(const struct pmp *p);
/* The mapping when MAPPED, else NULL. */
const struct pmp_mapping *pmp_mapping(const struct pmp *p);
/* Why the last error, FAILED or LOST; NULL if none yet. */
const char *pmp_reason(const struct pmp *p);
/* Why the last PMP_IN_BAD; NULL if none yet. */
const char *pmp_dropped(const struct pmp *p);
/* The last error result: its protocol (NONE: none yet), code and, for PCP,
 * its lifetime in seconds. */
enum pmp_proto pmp_result(const struct pmp *p, unsigned *code, uint32_t *lifetime);

#endif
