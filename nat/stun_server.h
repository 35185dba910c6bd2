/* The answering half of the STUN service, sans-I/O: one request in, at most
 * one response out, with the local address and port it must leave from and
 * where it must go. Binding only (RFC 8489), with RFC 5780's behaviour
 * discovery (CHANGE-REQUEST, RESPONSE-PORT, PADDING, OTHER-ADDRESS,
 * RESPONSE-ORIGIN) and RFC 3489 classic clients (the stun-client package).
 *
 * Anti-amplification: a response is at most amp_factor times the size of
 * its request. Over that, optional attributes go first (SOFTWARE, then
 * MAPPED-ADDRESS, then RESPONSE-ORIGIN/SOURCE-ADDRESS, then
 * OTHER-ADDRESS/CHANGED-ADDRESS); if it still does not fit, no answer. A
 * request with PADDING gets PADDING back, sized so the response is as large
 * as the request. */
#ifndef NATAGENT_NAT_STUN_SERVER_H
#define NATAGENT_NAT_STUN_SERVER_H

#include "nat/stun.h"

/* A 20-byte RFC 8489 request must be able to learn its address and the
 * server's alternate (XOR-MAPPED-ADDRESS, OTHER-ADDRESS, RESPONSE-ORIGIN:
 * 56 bytes over IPv4), and stun-client's 28-byte classic request its three
 * addresses (56 bytes). 1 makes the rule "never larger than the request". */
#define STUN_SERVER_AMP_FACTOR	3

/* Short-term credentials: the key (password) for a USERNAME, or NULL if the
 * user is unknown. */
typedef const void *(*stun_server_key_fn)(void *ctx, const uint8_t *username, size_t len,
					  size_t *key_len);

struct stun_server_config {
	/* RFC 5780: primary A1:P1, alternate A2:P2 (same family). Without an
	 * alternate, responses leave from where the request arrived and
	 * CHANGE-REQUEST is refused. */
	bool has_alternate;
	struct na_endpoint primary, alternate;
	const char *software;		/* NULL: no SOFTWARE */
	unsigned amp_factor;		/* 0: STUN_SERVER_AMP_FACTOR */
	stun_server_key_fn key;		/* NULL: no authentication */
	void *key_ctx;
};

enum stun_server_action {
	STUN_SERVER_DROP = 0,
	STUN_SERVER_SEND,
};

struct stun_server_reply {
	size_t len;			/* response bytes written to out */
	struct na_endpoint from;	/* local address and port to send from */
	struct na_endpoint to;
	uint16_t error_code;		/* 0 for a success response */
	const char *why;		/* DROP, or an error response: why */
};

/* req arrived from src on local (the request's destination, one of the
 * four A/P combinations when an alternate is configured). */
enum stun_server_action stun_server_answer(const struct stun_server_config *cfg,
					   const uint8_t *req, size_t len,
					   const struct na_endpoint *src,
					   const struct na_endpoint *local,
					   uint8_t *out, size_t cap, struct stun_server_reply *r);

#endif
