/* The rendezvous service (agent/rendezvous.c), for status output and tests. */
#ifndef NATAGENT_AGENT_RENDEZVOUS_H
#define NATAGENT_AGENT_RENDEZVOUS_H

#include "agent/agent.h"
#include "agent/autonat_dialer.h"
#include "nat/autonat.h"
#include "nat/ratelimit.h"

/* Everything a user may ask about: what was relayed, and every reason
 * something was not. */
struct rdv_stats {
	uint64_t registered;          /* now */
	uint64_t registrations;       /* REGISTER frames accepted */
	uint64_t messages;            /* control frames received */
	uint64_t forwarded;           /* CONNECT / SYNC passed on */
	uint64_t relayed_dgrams, relayed_bytes;
	uint64_t dropped_unknown;     /* relay or message to a key not registered */
	uint64_t dropped_not_allowed; /* the two do not both list each other */
	uint64_t dropped_rate;        /* over a rate limit */
	uint64_t dropped_bad;         /* malformed frame or datagram */
	uint64_t dropped_full;        /* destination's queue full or datagram too big */
	uint64_t refused_keys;        /* keys past RDV_MAX_KEYS */
	uint64_t replaced;            /* a newer session of the same key took over */
};

struct rdv_server {
	struct agent *a;
	struct rdv_reg **buckets;
	size_t n_buckets;
	uint64_t k0, k1;
	struct tbucket msgs_total, relay_total;
	struct rdv_stats st;
	/* AutoNAT (rdv_autonat.c): no socket without AlternateListen. */
	struct autonat_dialer dial;
};

#endif
