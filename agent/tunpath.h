/* Tun mode's data path: IP packets between the TUN device and the peers. */
#ifndef NATAGENT_AGENT_TUNPATH_H
#define NATAGENT_AGENT_TUNPATH_H

#include <stddef.h>
#include <stdint.h>

struct agent;
struct peer;

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

#endif
