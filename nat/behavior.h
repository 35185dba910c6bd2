/* NAT behaviour discovery (RFC 5780) against a STUN server with two
 * addresses, sans-I/O. It drives STUN transactions over up to
 * NAT_BEH_MAX_SOCKS sockets the caller owns: socket 0 is the one whose
 * mapping matters (the agent's main socket); sockets 1.. are fresh probe
 * sockets, used to see how the NAT allocates ports for new mappings and, in
 * the lifetime test, as the "Y" socket of RFC 5780 section 4.6.
 *
 * Steps, in order (each one is timed):
 *   test I      to A1:P1: the mapping, and the server's OTHER-ADDRESS
 *   filtering   CHANGE-REQUEST ip+port, then port only (section 4.4); done
 *               before socket 0 ever sends to A2, or an address-dependent
 *               filter would let A2's answers through
 *   mapping     II to A2:P1, III to A2:P2 (section 4.3)
 *   hairpin     a request from socket 0 to its own mapped address (4.5)
 *   allocation  Test I from each probe socket; ports against local ports
 *   lifetime    optional: refresh X, stay idle for a gap, ask from Y with
 *               RESPONSE-PORT = X's mapped port; the answer reaches X only
 *               while X's mapping lives (section 4.6). Gaps grow; the first
 *               that fails ends the test.
 *
 * The caller: behavior_start(); then sends whatever behavior_next_send()
 * yields, feeds every datagram received on any of the sockets to
 * behavior_input(), and calls behavior_on_timer() at behavior_deadline(),
 * until behavior_done(). */
#ifndef NATAGENT_NAT_BEHAVIOR_H
#define NATAGENT_NAT_BEHAVIOR_H

#include "nat/stun_client.h"

#define NAT_BEH_MAX_SOCKS 4
#define NAT_BEH_MAX_GAPS  8

enum nat_mapping {
	NAT_MAPPING_UNKNOWN,
	NAT_MAPPING_NONE,	/* no NAT: the mapped address is our own */
	NAT_MAPPING_EIM,	/* endpoint-independent */
	NAT_MAPPING_ADM,	/* address-dependent */
	NAT_MAPPING_APDM,	/* address-and-port-dependent ("symmetric") */
};

enum nat_filtering {
	NAT_FILTERING_UNKNOWN,
	NAT_FILTERING_EIF,	/* endpoint-independent ("full cone") */
	NAT_FILTERING_ADF,	/* address-dependent ("restricted") */
	NAT_FILTERING_APDF,	/* address-and-port-dependent ("port restricted") */
};

enum nat_alloc {
	NAT_ALLOC_UNKNOWN,
	NAT_ALLOC_PRESERVING,	/* external port = local port */
	NAT_ALLOC_SEQUENTIAL,	/* each new mapping = last + delta */
	NAT_ALLOC_RANDOM,
};

enum nat_step {
	NAT_STEP_MAPPING, NAT_STEP_FILTERING, NAT_STEP_HAIRPIN, NAT_STEP_ALLOC,
	NAT_STEP_LIFETIME, NAT_STEP_COUNT,
};

/* What the punch planner and the keepalive scheduler read. */
struct nat_report {
	struct na_endpoint server, other;	/* A1:P1 and OTHER-ADDRESS A2:P2 */
	bool has_other;
	struct na_endpoint local, mapped;	/* socket 0's address and mapping */
	bool has_mapped;
	enum nat_mapping mapping;
	enum nat_filtering filtering;
	enum nat_alloc alloc;
	int alloc_delta;			/* SEQUENTIAL: the step */
	int hairpin;				/* 1 yes, 0 no, -1 unknown */
	/* Lifetime: the longest idle gap the mapping survived, and the
	 * shortest it did not (0: none failed, or not measured). */
	bool lifetime_measured;
	uint64_t lifetime_alive_ms, lifetime_dead_ms;
	uint64_t step_ns[NAT_STEP_COUNT];	/* time each step took */
	uint64_t rtt_ns;			/* Test I's round trip */
	const char *error;			/* set when discovery failed outright */
};

struct nat_behavior_opts {
	struct na_endpoint server;
	/* The local address each socket is bound to; n_socks >= 1. */
	struct na_endpoint local[NAT_BEH_MAX_SOCKS];
	unsigned n_socks;
	/* Test I uses these (default RFC 8489's); tests that may rightly go
	 * unanswered use probe (default: 3 sends over ~2 s). */
	struct stun_client_params params, probe;
	bool lifetime;
	uint64_t gaps_ms[NAT_BEH_MAX_GAPS]; /* default 15, 30, 60, 120, 180 s */
	unsigned n_gaps;
	stun_rand_fn rand;
	void *rand_ctx;
};

struct nat_behavior_send {
	unsigned sock;
	struct na_endpoint to;
	uint8_t data[128];
	size_t len;
};

struct nat_behavior {
	struct nat_behavior_opts opts;
	struct nat_report report;
	int state;
	unsigned txn, sock; /* the transaction under way and its socket */
	struct stun_client main, probe;
	uint64_t step_start, wait_until;
	unsigned gap, alloc_next, hairpin_sends;
	uint8_t hairpin_txid[STUN_TXID_LEN];
	struct na_endpoint map2, alloc_mapped[NAT_BEH_MAX_SOCKS];
	struct nat_behavior_send out[4];
	unsigned n_out, out_head;
};

void nat_behavior_opts_default(struct nat_behavior_opts *o);
void nat_behavior_start(struct nat_behavior *b, const struct nat_behavior_opts *opts, uint64_t now);
/* True while there is a datagram to send; *s is valid until the next call. */
bool nat_behavior_next_send(struct nat_behavior *b, const struct nat_behavior_send **s);
/* A datagram received on socket sock. False: not ours. */
bool nat_behavior_input(struct nat_behavior *b, unsigned sock, const uint8_t *buf, size_t len,
			const struct na_endpoint *from, uint64_t now);
uint64_t nat_behavior_deadline(const struct nat_behavior *b);
void nat_behavior_on_timer(struct nat_behavior *b, uint64_t now);
bool nat_behavior_done(const struct nat_behavior *b);
const struct nat_report *nat_behavior_report(const struct nat_behavior *b);

const char *nat_mapping_name(enum nat_mapping m);
const char *nat_filtering_name(enum nat_filtering f);
const char *nat_alloc_name(enum nat_alloc a);
/* The RFC 3489 name users know ("full cone", "symmetric", ...). */
const char *nat_report_classic_name(const struct nat_report *r);

#endif
