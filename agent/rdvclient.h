/* Our session to the rendezvous (agent/rdvclient.c), for status output. */
#ifndef NATAGENT_AGENT_RDVCLIENT_H
#define NATAGENT_AGENT_RDVCLIENT_H

#include "agent/agent.h"
#include "nat/rdvmsg.h"

enum rdv_state {
	RDV_DOWN,        /* waiting to reconnect */
	RDV_CONNECTING,  /* handshake, or up and waiting for REGISTERED */
	RDV_REGISTERED,
};

struct rdvclient {
	struct agent *a;
	struct conn *conn;
	enum rdv_state state;
	struct loop_timer timer;   /* reconnect, or wait for room to relay */
	uint64_t backoff;
	uint64_t since;            /* of the current state */
	uint64_t waited;           /* for a datagram size that carries relaying */
	bool relay_ready;          /* peers were told they can dial through it */
	bool warned_small;
	struct na_endpoint srflx;  /* how the rendezvous sees us */
	bool have_srflx;
	char error[192];           /* why the last session failed */
	size_t rx_len;
	uint8_t rx[RDVMSG_MAX_FRAME];
};

const char *rdvclient_state_name(enum rdv_state s);

#endif
