/* Discovery on real sockets: runs nat/behavior against one STUN server, then
 * asks every other configured server for the mapping it sees (in that order,
 * because talking to a second address before the filtering test would open
 * an address-dependent filter to it).
 *
 * Socket 0 belongs to the caller (the agent's main socket: its mapping is
 * the one that matters); the caller sends nothing on it but what discovery
 * asks, and forwards what arrives on it to discovery_input(). The probe
 * sockets are discovery's own, bound to socket 0's address on fresh ports. */
#ifndef NATAGENT_AGENT_DISCOVERY_H
#define NATAGENT_AGENT_DISCOVERY_H

#include "agent/loop.h"
#include "nat/behavior.h"

#define DISCOVERY_MAX_SERVERS 8

struct discovery_server {
	struct na_endpoint server;
	bool answered;
	struct na_endpoint mapped;
	uint64_t rtt_ns;
};

struct discovery;
typedef void (*discovery_done_fn)(void *arg, struct discovery *d);

struct discovery {
	struct loop *loop;
	struct loop_timer timer;
	struct nat_behavior b;
	int fds[NAT_BEH_MAX_SOCKS];
	unsigned n_socks;
	struct discovery_server servers[DISCOVERY_MAX_SERVERS];
	unsigned n_servers, next_server;
	struct stun_client probe;
	unsigned txn;
	uint64_t started, servers_ns;
	bool done;
	discovery_done_fn done_fn;
	void *arg;
};

/* servers[0] gets the behaviour tests. opts: server, local and n_socks are
 * filled in here; the rest (lifetime, gaps, timers) is the caller's. */
int discovery_start(struct discovery *d, struct loop *loop, int fd0,
		    const struct na_endpoint *servers, unsigned n_servers,
		    struct nat_behavior_opts *opts, discovery_done_fn done, void *arg);
/* A datagram that arrived on socket 0. False: not discovery's. */
bool discovery_input(struct discovery *d, const uint8_t *buf, size_t len,
		     const struct na_endpoint *from);
const struct nat_report *discovery_report(const struct discovery *d);
void discovery_stop(struct discovery *d);

#endif
