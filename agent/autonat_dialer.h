/* The serving side of AutoNAT, as the loop sees it: nat/autonat's policy,
 * the socket the dial-backs leave from, and its counters. Two serve: the
 * rendezvous service (rdv_autonat.c, from AlternateListen's IP) and an
 * agent with AutoNATService = true for its peers (peer_autonat.c, from its
 * own address). The dial-backs leave from a port nobody is told of (the
 * kernel picks it): a NAT that holds a hole for an address the client
 * sent to would otherwise pass them, and the address would pass for
 * public. The socket is read only to be drained. */
#ifndef NATAGENT_AGENT_AUTONAT_DIALER_H
#define NATAGENT_AGENT_AUTONAT_DIALER_H

#include <stddef.h>
#include <stdint.h>

#include "agent/loop.h"
#include "nat/autonat.h"

struct autonat_dialer {
	struct loop *loop;
	struct autonat_server an;
	int fd;			/* -1: none; every address is then "unavailable" */
	struct na_endpoint from; /* where the dial-backs leave from */
	uint64_t send_failed, rx_dropped;
};

/* A dialer with no socket: it refuses everything as unavailable. */
void autonat_dialer_init(struct autonat_dialer *d, struct loop *loop);
/* Opens the socket on ip (port: the kernel's pick). 0 or -errno; on an
 * error the dialer stays without one. */
int autonat_dialer_open(struct autonat_dialer *d, const struct na_ip *ip);
void autonat_dialer_close(struct autonat_dialer *d);
/* Decides req from a requester seen at observed (spending its token in
 * limit), sends the dial-backs and fills resp. what (cap bytes) gets one
 * line for the log: each address and what was done with it. */
void autonat_dialer_answer(struct autonat_dialer *d, struct tbucket *limit,
			   const struct na_ip *observed, const struct rdvmsg_dialreq *req,
			   struct rdvmsg_dialresp *resp, char *what, size_t cap);

#endif
