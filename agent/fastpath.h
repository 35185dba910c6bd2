/* What natagent does with BPF: the XDP + tc fast path of bpf/natpath.bpf.c
 * (loaded through agent/bpf.c) on each uplink, the ports it manages there,
 * and the events it reports, in the daemon's loop.
 *
 * Start, once the sockets are open (the ports must be known):
 *   1. uplinks: the interface holding each [Rendezvous] Listen and
 *      AlternateListen address, and those the routes to the Rendezvous, the
 *      STUN servers and the peers' Endpoints leave by; the default route's
 *      when the config names none of these. Loopback is never one.
 *   2. on each: load, pin and attach (XDP native where the driver has it,
 *      else generic), then one log line naming the interface, why it was
 *      chosen, the XDP mode and why, the managed ports and the pins.
 *   3. managed ports: the agent's sockets (role agent) and the STUN
 *      service's Listen / AlternateListen ports (roles rendezvous /
 *      alternate), where XDP then answers plain Binding requests itself;
 *      see fastpath.c for when the service's ports stay in userspace.
 *   4. the events ring buffer in the loop; events are logged at debug level.
 * Without BPF (-B, no CAP_BPF, an old kernel, a load failure) one message
 * says so and natagent goes on: its userspace path answers STUN and takes
 * every packet, as it does on any port XDP leaves alone.
 *
 * Stop: XDP and tc are always detached. The maps (the NAT-mapping cache
 * among them) stay pinned only when the stop is for a restart
 * (keep_pins: the daemon's SIGUSR2), and the next run takes them over; a
 * plain stop (SIGTERM, SIGINT) unpins them, so a stopped natagent leaves
 * nothing behind, as `wg-quick down` does. A crash leaves programs attached
 * and maps pinned; the next start replaces the former and reuses the latter.
 *
 * Pins: <root>/natagent/<ifname>/, root /sys/fs/bpf or the environment's
 * NATAGENT_BPF_PIN_ROOT. Under `ip netns exec` the process gets a private
 * /sys: the bpffs natagent mounts there lives only as long as it does, so a
 * restart that should keep the cache needs a root on a bpffs mounted
 * outside (the start says so when it had to mount one). */
#ifndef NATAGENT_AGENT_FASTPATH_H
#define NATAGENT_AGENT_FASTPATH_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/bpf.h"
#include "agent/config.h"
#include "agent/loop.h"

struct agent;

#define FASTPATH_MAX_LINKS 8
#define FASTPATH_MAX_PORTS 16
#define FASTPATH_PIN_ROOT_ENV "NATAGENT_BPF_PIN_ROOT"

struct fastpath;

/* One uplink with the programs attached. */
struct fastpath_link {
	struct fastpath *fp;
	struct bpf_path *path;
	char ifname[IF_NAMESIZE];
	int ifindex;
	int events_fd; /* in the loop; -1 if not */
	bool pins_private; /* on a bpffs that goes with our mount namespace */
};

struct fastpath_port {
	uint16_t port;
	uint8_t role; /* enum natpath_role */
};

struct fastpath {
	struct loop *loop;
	const char *name; /* the config's, for logs */
	struct fastpath_link links[FASTPATH_MAX_LINKS];
	unsigned n_links;
	struct fastpath_port ports[FASTPATH_MAX_PORTS]; /* managed on every link */
	unsigned n_ports;
	/* Ports no agent socket may give to XDP: the STUN service's, when it
	 * keeps them in userspace (an agent port of the same number would
	 * let XDP answer there all the same). */
	uint16_t withheld[4];
	unsigned n_withheld;
};

/* Starts the fast path for cfg; agent (NULL if the tunnel is not open)
 * gives the agent's socket ports. Never fatal: returns the number of
 * interfaces attached (0 without BPF). fp must be zeroed before, so that
 * fastpath_stop() is safe whether or not this ran. */
int fastpath_start(struct fastpath *fp, struct loop *loop, const struct config *cfg,
		   const struct agent *agent, bool no_bpf);
/* The agent opened sockets on new ports (agent_rebind): manage them too,
 * and forget those whose socket closed. */
void fastpath_agent_ports_changed(struct fastpath *fp, const struct agent *agent);
/* Keepalive path tokens the XDP programs absorb, on every link. */
void fastpath_add_token(struct fastpath *fp, uint64_t token);
void fastpath_del_token(struct fastpath *fp, uint64_t token);
/* When XDP last saw a packet from remote to local_port, and tc one from
 * local_port to remote, on any link, in CLOCK_MONOTONIC ns (nat_cache keeps
 * CLOCK_BOOTTIME); 0 for never. False if nat_cache has no such entry. */
bool fastpath_last_seen(struct fastpath *fp, const struct na_endpoint *remote,
			uint16_t local_port, uint64_t *rx, uint64_t *tx);
/* Detaches everywhere; keep_pins leaves the maps for the next run. */
void fastpath_stop(struct fastpath *fp, bool keep_pins);

#endif
