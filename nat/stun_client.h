/* STUN client transactions (RFC 8489 section 6.2.1) as a state machine that
 * owns no socket and reads no clock: start() and on_timer() hand out
 * datagrams to send, input() takes datagrams received, next_deadline() says
 * when on_timer() is due. Time is CLOCK_MONOTONIC nanoseconds.
 *
 * Timers, per transaction: a retransmission RTO after each send (RTO starts
 * at params.rto and doubles), at most params.rc sends, then a final wait of
 * params.rm times the initial RTO. A transaction on the configured server
 * list that times out starts over at the next server with a new transaction
 * id; one sent to an explicit endpoint just times out. */
#ifndef NATAGENT_NAT_STUN_CLIENT_H
#define NATAGENT_NAT_STUN_CLIENT_H

#include "nat/stun.h"

#define STUN_CLIENT_MAX_SERVERS	4
#define STUN_CLIENT_MAX_TXNS	8
#define STUN_CLIENT_MAX_MSG	1500	/* largest request, PADDING included */
#define STUN_CLIENT_MAX_USER	128
#define STUN_CLIENT_MAX_KEY	128

#define STUN_NS_PER_MS		1000000ull

struct stun_client_params {
	uint64_t rto;		/* initial RTO, ns; default 500 ms */
	unsigned rc;		/* sends per server; default 7 */
	unsigned rm;		/* final wait, in initial RTOs; default 16 */
};

void stun_client_params_default(struct stun_client_params *p);

/* Fills buf with len random bytes; returns false if it cannot. */
typedef bool (*stun_rand_fn)(void *ctx, uint8_t *buf, size_t len);

/* Options of one request; NULL to stun_client_start() means none of them. */
struct stun_client_request {
	const struct na_endpoint *to;	/* NULL: the server list, with failover */
	uint32_t change;		/* STUN_CHANGE_IP | STUN_CHANGE_PORT */
	uint16_t response_port;		/* RFC 5780 RESPONSE-PORT; 0: none */
	uint16_t padding;		/* PADDING value length; 0: none */
	bool fingerprint;
	/* Short-term credentials (ICE-style checks): copied. With a key, a
	 * response counts only if its MESSAGE-INTEGRITY verifies. */
	const char *username;
	const void *key;
	size_t key_len;
	uint64_t user;			/* echoed in this transaction's events */
};

struct stun_client_result {
	struct na_endpoint mapped;	/* XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS */
	struct na_endpoint server;	/* where the request was sent */
	struct na_endpoint from;	/* where the response came from */
	struct na_endpoint other;	/* OTHER-ADDRESS, if has_other */
	struct na_endpoint origin;	/* RESPONSE-ORIGIN, if has_origin */
	bool has_other, has_origin;
	uint64_t at;			/* when the response arrived */
	uint64_t rtt;			/* since the last send of the request */
	unsigned sends;			/* to this server; RTT is ambiguous if > 1 */
};

enum stun_client_event_type {
	STUN_CLIENT_NONE = 0,	/* nothing to do, or not for this client */
	STUN_CLIENT_SEND,	/* send data[0..len) to `to` */
	STUN_CLIENT_SUCCESS,	/* result holds the answer; transaction over */
	STUN_CLIENT_ERROR,	/* error response (error_code) or unusable one
				 * (error_code 0); transaction over */
	STUN_CLIENT_TIMEOUT,	/* no answer from any server; transaction over */
};

struct stun_client_event {
	enum stun_client_event_type type;
	unsigned txn;			/* id from stun_client_start() */
	uint64_t user;
	/* SEND: valid until the next call into the client. */
	const uint8_t *data;
	size_t len;
	struct na_endpoint to;
	/* SUCCESS, ERROR */
	struct stun_client_result result;
	uint16_t error_code;
	char error_reason[96];		/* the server's phrase, truncated */
	const char *why;		/* ours: why NONE, ERROR or a failed start */
};

struct stun_client_txn {
	unsigned id;			/* 0: slot free */
	uint8_t txid[STUN_TXID_LEN];
	struct na_endpoint to;
	int server;			/* index in servers, -1: explicit endpoint */
	unsigned servers_tried;
	unsigned sends;
	uint64_t rto, last_send, deadline;
	/* The request's options, copied so the caller's may go away. */
	uint32_t change;
	uint16_t response_port, padding;
	bool fingerprint, has_username, has_key;
	uint64_t user;
	char username[STUN_CLIENT_MAX_USER + 1];
	uint8_t key[STUN_CLIENT_MAX_KEY];
	size_t key_len;
};

struct stun_client {
	struct stun_client_params params;
	stun_rand_fn rand;
	void *rand_ctx;
	struct na_endpoint servers[STUN_CLIENT_MAX_SERVERS];
	unsigned n_servers;
	unsigned preferred;		/* the server that answered last */
	unsigned next_id;
	struct stun_client_txn txns[STUN_CLIENT_MAX_TXNS];
	bool have_cache;
	struct stun_client_result cache;
	uint8_t out[STUN_CLIENT_MAX_MSG];
};

/* params NULL: defaults. rand NULL: gnutls_rnd(GNUTLS_RND_NONCE). */
void stun_client_init(struct stun_client *c, const struct stun_client_params *params,
		      stun_rand_fn rand, void *rand_ctx);
bool stun_client_add_server(struct stun_client *c, const struct na_endpoint *server);

/* Starts a Binding transaction; *ev is its first SEND. Returns the
 * transaction's id, or 0 with ev->why set. */
unsigned stun_client_start(struct stun_client *c, const struct stun_client_request *req,
			   uint64_t now, struct stun_client_event *ev);

/* A datagram that arrived from `from`. Returns SUCCESS or ERROR when it
 * answers one of our transactions, NONE (with ev->why) otherwise, so the
 * caller can hand it to another protocol. */
enum stun_client_event_type stun_client_input(struct stun_client *c, const uint8_t *buf,
					      size_t len, const struct na_endpoint *from,
					      uint64_t now, struct stun_client_event *ev);

/* Earliest time on_timer() has work; UINT64_MAX when idle. */
uint64_t stun_client_next_deadline(const struct stun_client *c);

/* Does one piece of due work (a retransmission, a failover or a timeout)
 * and describes it in *ev; call again until it returns NONE. */
enum stun_client_event_type stun_client_on_timer(struct stun_client *c, uint64_t now,
						 struct stun_client_event *ev);

void stun_client_cancel(struct stun_client *c, unsigned txn);

/* The last mapping learnt through the server list, and its age at now. */
bool stun_client_cached(const struct stun_client *c, uint64_t now,
			struct stun_client_result *r, uint64_t *age);
void stun_client_forget(struct stun_client *c);

#endif
