/* The STUN service of a rendezvous (or of a standalone `[Rendezvous]` host):
 * the sockets and counters around nat/stun_server's answering logic.
 *
 * With only Listen it answers from where it was asked. With AlternateListen
 * (a second IP A2 and port P2) it binds all four of A1:P1, A1:P2, A2:P1 and
 * A2:P2, because RFC 5780's tests ask for answers from each combination and
 * may send to any of them. */
#ifndef NATAGENT_AGENT_STUNSVC_H
#define NATAGENT_AGENT_STUNSVC_H

#include <stdint.h>

#include "agent/loop.h"
#include "agent/udp.h"
#include "nat/stun_server.h"

#define STUNSVC_MAX_SOCKS 4

struct stunsvc_stats {
	uint64_t received, answered, errors_sent, dropped;
};

struct stunsvc;

/* What the loop hands back for each socket. */
struct stunsvc_sock {
	struct stunsvc *svc;
	unsigned idx;
};

struct stunsvc {
	struct loop *loop;
	struct stunsvc_sock socks[STUNSVC_MAX_SOCKS];
	struct stun_server_config cfg;
	int fds[STUNSVC_MAX_SOCKS];
	struct na_endpoint locals[STUNSVC_MAX_SOCKS];
	unsigned n_socks;
	struct stunsvc_stats stats;
	const char *last_drop; /* why the last request went unanswered */
	bool shared_first;     /* fds[0] belongs to its owner, who reads it */
};

/* alternate may be NULL. listen_fd >= 0 is the owner's socket on listen
 * (QUIC and STUN on one port): the service answers from it but neither
 * reads nor closes it; the owner hands it STUN through stunsvc_handle(s, 0,
 * ...). On failure returns -errno and names the address that could not be
 * bound in *failed. */
int stunsvc_open(struct stunsvc *s, struct loop *loop, const struct na_endpoint *listen,
		 const struct na_endpoint *alternate, int listen_fd, struct na_endpoint *failed);
void stunsvc_close(struct stunsvc *s);

/* For owners that demultiplex a shared socket themselves: answers one request
 * that arrived on the service's socket number idx. */
void stunsvc_handle(struct stunsvc *s, unsigned idx, const uint8_t *buf, size_t len,
		    const struct na_endpoint *from);

#endif
