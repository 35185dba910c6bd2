/* Hole punching between two peers, sans-I/O: candidates, their pairs, and
 * the connectivity checks of ICE (RFC 8445) that open the NATs between them.
 *
 * One `struct punch` is one attempt with one peer. Both sides build it once
 * both CONNECT messages have crossed (each carries a side's candidates and
 * its secret), then start it at the moment the rendezvous exchange agreed on
 * (DCUtR: the initiator after half the measured RTT, the responder when
 * SYNC arrives), so that their checks cross at each NAT.
 *
 * Checks are STUN Binding requests, sent from a local host candidate (the
 * agent's shared socket, with that source address) to a remote candidate:
 *   USERNAME "<their ufrag>:<our ufrag>", ufrag = the attempt in 16 lowercase
 *            hex digits followed by 'i' (initiator) or 'r' (responder)
 *   PRIORITY the peer-reflexive priority we would have there (RFC 8445 7.1.1)
 *   ICE-CONTROLLING (initiator) / ICE-CONTROLLED, with the attempt as tiebreaker
 *   MESSAGE-INTEGRITY keyed by the receiver's secret, then FINGERPRINT
 * A success response carries XOR-MAPPED-ADDRESS (the request's source as
 * the receiver saw it: how a symmetric NAT's port for this peer is learnt),
 * MESSAGE-INTEGRITY keyed by the responder's secret, and FINGERPRINT.
 *
 * A valid request from an address that is none of the remote candidates
 * adds it as a peer-reflexive remote candidate; a valid request on a pair
 * not yet succeeded queues a triggered check on it, sent before the ordinary
 * ones. A pair succeeds when an authenticated response comes back from the
 * exact address its check went to; a response from another address or port
 * marks the pair WRONG_PORT and adds that address as a peer-reflexive
 * candidate. Both sides decide on their own which pair they use: the
 * highest-priority pair that succeeded (the QUIC client moves its session
 * there; the server follows by QUIC's own path validation).
 *
 * Schedule: ordinary checks go out one at a time, `pace` apart, in rounds
 * over the pairs by descending priority; round k starts no earlier than
 * round_gap * (2^k - 1) after the start (0, 1, 3, 7, ... x round_gap); a
 * pair gets at most max_tries checks, triggered ones included (a triggered
 * check also counts as the pair's check in the current round). A pair that
 * had all its checks goes NO_RESPONSE when its last one is 2 x round_gap
 * old with no answer; an answer that still comes later while running
 * counts. After the first success only better pairs are checked, and the
 * attempt waits `grace` for a better pair (a higher-priority one still
 * waiting or in progress), then selects: at once if there is none. It
 * fails at `timeout` after the start with no pair succeeded; pairs still
 * waiting or in progress then become NO_RESPONSE. Once succeeded or failed
 * the outcome stands: answers are still recognised but change nothing, and
 * no check is sent. Whatever its state, the punch keeps answering valid
 * requests until the caller frees it: the far side may still be checking.
 * Roles are fixed by `initiator`: ICE role conflicts are not resolved.
 *
 * The caller: punch_init(), punch_add_local()/punch_add_remote(),
 * punch_start() at the agreed moment, then sends what punch_next() yields
 * whenever now >= punch_deadline(), feeds every STUN message received on the
 * shared socket to punch_input() (PUNCH_IN_NOT_OURS: try the next punch or
 * another consumer), and reads punch_state(). */
#ifndef NATAGENT_NAT_PUNCH_H
#define NATAGENT_NAT_PUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/addr.h"
#include "nat/behavior.h"
#include "nat/stun.h"

#define PUNCH_MAX_CANDS   16  /* per side: what one CONNECT carries */
#define PUNCH_MAX_PAIRS   64
#define PUNCH_SECRET_LEN  16
#define PUNCH_UFRAG_LEN   17  /* 16 hex digits + 'i' | 'r' */
#define PUNCH_MAX_MSG     160 /* largest check or response we build */

/* Same numbering as the rendezvous CONNECT's candidate types. */
enum punch_cand_type {
	PUNCH_CAND_HOST   = 0,
	PUNCH_CAND_SRFLX  = 1,
	PUNCH_CAND_PRFLX  = 2,
	PUNCH_CAND_MAPPED = 3, /* a port the router mapped for us (UPnP, PCP, NAT-PMP) */
	PUNCH_CAND_STATIC = 4, /* the peer's configured Endpoint */
};

struct punch_cand {
	struct na_endpoint ep;
	uint8_t type;      /* enum punch_cand_type */
	uint32_t priority; /* punch_cand_priority() */
};

/* RFC 8445 5.1.2.1: (2^24) type preference + (2^8) local preference +
 * (256 - component 1). Type preferences: host 126, peer-reflexive 110,
 * port-mapped 105, server-reflexive 100, static 90. */
uint32_t punch_cand_priority(uint8_t type, uint16_t local_pref);
/* RFC 8445 6.1.2.3: 2^32 MIN(G,D) + 2 MAX(G,D) + (G > D ? 1 : 0), G the
 * controlling (initiator's) candidate's priority, D the controlled's. */
uint64_t punch_pair_priority(uint32_t g, uint32_t d);

enum punch_pair_state {
	PUNCH_PAIR_WAITING,     /* not checked yet */
	PUNCH_PAIR_IN_PROGRESS, /* checks sent, no answer yet */
	PUNCH_PAIR_SUCCEEDED,   /* answered from the address the check went to */
	PUNCH_PAIR_NO_RESPONSE, /* every check went unanswered */
	PUNCH_PAIR_WRONG_PORT,  /* answered, but from another address or port */
	PUNCH_PAIR_SUPERSEDED,  /* left unfinished: a better pair won */
};
const char *punch_pair_state_name(uint8_t state); /* "no response", ... */

struct punch_pair {
	uint8_t local, remote;   /* indices into the local and remote candidates */
	uint8_t state;           /* enum punch_pair_state */
	uint8_t sent;            /* checks sent on it */
	bool triggered;          /* a triggered check is queued */
	bool they_reached_us;    /* a valid request came in on it */
	uint64_t priority;
	uint64_t first_sent;     /* time of its first check; 0 if none */
	uint64_t last_sent;      /* time of its latest check */
	unsigned next_round;     /* first schedule round it may be checked in */
	uint64_t rtt;            /* of the first answered check, ns */
	struct na_endpoint mapped;  /* SUCCEEDED: XOR-MAPPED-ADDRESS, us as they see us */
	struct na_endpoint answered_from; /* WRONG_PORT: where the answer came from */
};

enum punch_state {
	PUNCH_IDLE,      /* built, not started: answers requests, sends nothing */
	PUNCH_RUNNING,
	PUNCH_SUCCEEDED, /* punch_selected() is the pair to use */
	PUNCH_FAILED,    /* timeout, nothing succeeded */
};
const char *punch_state_name(enum punch_state s);

struct punch_params {
	bool initiator;          /* sent the first CONNECT; controlling */
	uint64_t attempt;        /* the attempt id both CONNECTs carry */
	uint8_t local_secret[PUNCH_SECRET_LEN];  /* ours: checks to us use it */
	uint8_t remote_secret[PUNCH_SECRET_LEN]; /* theirs */
	uint64_t pace;           /* ns between two checks; 0: 20 ms */
	uint64_t round_gap;      /* ns; 0: 100 ms */
	unsigned max_tries;      /* per pair; 0: 6; at most 255 */
	uint64_t grace;          /* ns; 0: 50 ms */
	uint64_t timeout;        /* ns; 0: 5 s */
	/* 12 random bytes for each transaction id; the agent passes
	 * gnutls_rnd, tests a seeded generator. NULL: ids from a counter,
	 * enough since every answer is authenticated. */
	void (*rand)(void *ctx, uint8_t *out, size_t len);
	void *rand_ctx;
};

struct punch {
	struct punch_params prm;
	enum punch_state state;
	char local_ufrag[PUNCH_UFRAG_LEN + 1], remote_ufrag[PUNCH_UFRAG_LEN + 1];
	struct punch_cand local[PUNCH_MAX_CANDS], remote[PUNCH_MAX_CANDS];
	unsigned n_local, n_remote;
	struct punch_pair pairs[PUNCH_MAX_PAIRS];
	unsigned n_pairs;
	uint64_t started, succeeded_at, next_send;
	unsigned round;
	int selected;            /* index into pairs, -1 */
	/* Outstanding transactions: which pair each id belongs to. */
	struct {
		uint8_t txid[STUN_TXID_LEN];
		uint8_t pair;
		bool used;
		uint64_t sent_at; /* for the pair's rtt */
	} txn[PUNCH_MAX_PAIRS * 2];
	unsigned txn_next;
	uint64_t checks_sent, answers_sent; /* packets, for the benchmark */
};

void punch_init(struct punch *p, const struct punch_params *prm);
/* Host candidates are the bases checks are sent from; server-reflexive,
 * mapped and static ones are advertised but never paired on our side (RFC
 * 8445 6.1.2.4: their base is a host candidate). Duplicates (same address)
 * are ignored and return true. Remote candidates pair with every local host
 * candidate of the same family. false when the candidate table is full or
 * the address is unusable (no family, port 0): the candidate is dropped;
 * also false when some of its pairs did not fit PUNCH_MAX_PAIRS: the
 * candidate and the pairs that fit are kept. */
bool punch_add_local(struct punch *p, const struct punch_cand *c);
bool punch_add_remote(struct punch *p, const struct punch_cand *c);
void punch_start(struct punch *p, uint64_t now);

/* The next packet to send now, if any: returns its length (0: nothing due
 * now; look at punch_deadline()), with the source (a local host candidate:
 * send with that source address) and destination. Also advances timeouts
 * and selection. cap >= PUNCH_MAX_MSG (smaller: nothing is ever sent).
 * One check per call: call again until it returns 0. */
size_t punch_next(struct punch *p, uint64_t now, uint8_t *buf, size_t cap,
		  struct na_endpoint *from, struct na_endpoint *to);
/* When punch_next has something to do next; UINT64_MAX for never (idle,
 * or finished). */
uint64_t punch_deadline(const struct punch *p);

enum punch_input_result {
	PUNCH_IN_NOT_OURS,  /* neither a check for this attempt nor an answer to one */
	PUNCH_IN_BAD,       /* ours by USERNAME or transaction, but failed integrity
			       or was malformed: dropped */
	PUNCH_IN_REQUEST,   /* a valid check: send *reply_len bytes of reply to from */
	PUNCH_IN_RESPONSE,  /* an answer to one of our checks, taken in */
};
/* m: a decoded STUN message received from `from` on the local address
 * `local` (the socket's port, the packet's destination address; NULL or
 * one matching no host candidate: the first host candidate of from's
 * family). A reply, when there is one, goes into reply (cap >=
 * PUNCH_MAX_MSG; reply NULL or cap too small: *reply_len = 0). A request
 * from an address that is none of the remote candidates adds it as
 * peer-reflexive with the request's PRIORITY while idle or running. Error
 * responses to our checks are PUNCH_IN_BAD and leave the pair as it is;
 * messages without the magic cookie, or not Binding requests or responses,
 * are PUNCH_IN_NOT_OURS. reply_len may be NULL. */
enum punch_input_result punch_input(struct punch *p, const struct stun_msg *m,
				    const struct na_endpoint *from,
				    const struct na_endpoint *local, uint64_t now,
				    uint8_t *reply, size_t cap, size_t *reply_len);

enum punch_state punch_state(const struct punch *p);
/* The pair in use when SUCCEEDED, else NULL. */
const struct punch_pair *punch_selected(const struct punch *p);

/* Port prediction for our own NAT when it maps per destination (ADM or
 * APDM): the address it will likely give us towards a new peer, from how
 * discovery saw it allocate. Sequential: the next PUNCH_PREDICT ports after
 * our server-reflexive one, by its step (each destination we sent to since,
 * the rendezvous among them, took one). Port-preserving: our local port at
 * the reflexive address. Each is a server-reflexive candidate ranked below
 * the real one. Returns how many were written to out (at most max); none
 * for a NAT that maps independently of the destination, or whose allocation
 * is random or unknown. */
#define PUNCH_PREDICT 4
unsigned punch_predict(const struct nat_report *r, const struct na_endpoint *srflx,
		       uint16_t local_port, struct punch_cand *out, unsigned max);

/* One line that tells a user why two NATs did or did not get a direct path,
 * from both sides' behaviour and the outcome, e.g. "both NATs are
 * address-and-port-dependent mapping; no direct path possible without port
 * prediction". Writes into buf, returns buf. */
const char *punch_verdict(enum nat_mapping our_map, enum nat_filtering our_filter,
			  enum nat_mapping their_map, enum nat_filtering their_filter,
			  bool direct, char *buf, size_t cap);
/* Whether RFC 4787 behaviour says checks can meet: false only when one side
 * maps per destination (APDM or ADM) and the other filters on the port
 * (APDF), or both map per destination. Unknown behaviours count as hopeful. */
bool punch_possible(enum nat_mapping our_map, enum nat_filtering our_filter,
		    enum nat_mapping their_map, enum nat_filtering their_filter);

#endif
