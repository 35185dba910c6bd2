/* Tun mode's data path: IP packets between the TUN device and the peers. */
#ifndef NATAGENT_AGENT_TUNPATH_H
#define NATAGENT_AGENT_TUNPATH_H

#include <stddef.h>
#include <stdint.h>

#include "agent/allowedips.h"

struct agent;
struct peer;
struct config_peer;

struct tunpath_stats {
	uint64_t no_route;   /* destination in no peer's AllowedIPs */
	uint64_t invalid;    /* not an IP packet */
	uint64_t too_big_sent; /* ICMP "too big" answers written back */
};

/* Creates and configures the TUN device (named after the config), routes
 * every peer's AllowedIPs to it, and starts reading. */
int tunpath_open(struct agent *a);
void tunpath_close(struct agent *a);
/* A packet from peer p (datagram context 0). */
void tunpath_deliver(struct peer *p, const uint8_t *pkt, size_t len);
const struct tunpath_stats *tunpath_stats(const struct agent *a);

/* For a reload (reload.c), which builds the next table aside, so that a
 * failure leaves the running one as it was: */
/* Gives cp's AllowedIPs to p in t (the table being built): 0 or -errno. */
int tunpath_table_add(struct allowedips *t, struct peer *p, const struct config_peer *cp);
/* Puts aips in place of the running table, which is freed; aips is left
 * empty. */
void tunpath_set_table(struct agent *a, struct allowedips *aips);
/* Takes a peer that goes away out of the running table. */
void tunpath_peer_gone(struct peer *p);
/* Makes the device's routes those for routes (every peer's AllowedIPs):
 * adds the missing, removes the gone; routes no longer wanted go first.
 * Counts both; 0, or the first failure as -errno (tunpath_errmsg says
 * what), after trying every route. */
int tunpath_set_routes(struct agent *a, const struct na_prefix *routes, size_t n,
		       unsigned *added, unsigned *removed);
const char *tunpath_errmsg(const struct agent *a);

#endif
