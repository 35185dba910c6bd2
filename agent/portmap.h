/* Port mapping: asks the router to forward the agent's ListenPort, so that
 * a direct path needs no punching (the mapped address is a candidate that
 * every peer can reach first time).
 *
 * The protocols in PortMapping (UPnP IGD, PCP, NAT-PMP) are tried at once,
 * each with a short timeout; the first that maps is kept and the others
 * are stopped (or their mapping deleted, if they also got one). A working
 * mapping is renewed at half its lease, checked with the router where the
 * protocol allows it, and verified from outside by AutoNAT when a
 * rendezvous can dial back: a mapping the router silently dropped, or a
 * router that restarted, is noticed and mapped again. On exit it is deleted
 * (also a permanent one, from a router that grants no other).
 *
 * Modules: portmap.c (this manager), portmap_upnp.c (UPnP calls, which
 * block inside libminiupnpc, on a worker thread), portmap_pmp.c (PCP and
 * NAT-PMP through nat/pmp.c on a socket of the loop).
 *
 * Timers (all in the loop):
 *   retry       nothing mapped: try every protocol again, 60 s doubling
 *               to 15 min (a router that boots after us, UPnP switched on)
 *   upnp.timer  UPnP: renew (check the router still holds it, re-add) at
 *               half the lease; permanent leases are checked every 10 min
 *   pmp.timer   nat/pmp.c's deadline: retransmissions and renewals */
#ifndef NATAGENT_AGENT_PORTMAP_H
#define NATAGENT_AGENT_PORTMAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/config.h"
#include "agent/loop.h"
#include "nat/addr.h"
#include "nat/upnp.h"

struct agent;
struct ctl_out;

enum pmap_state {
	PMAP_IDLE,     /* not tried (disabled, or another protocol won) */
	PMAP_TRYING,
	PMAP_MAPPED,
	PMAP_FAILED,   /* why[] says why */
};

/* One protocol's attempt and, once it works, its mapping. */
struct pmap_entry {
	enum portmap_proto proto;
	enum pmap_state state;
	struct na_endpoint internal, external;
	unsigned lease;             /* seconds granted; 0 = permanent */
	uint64_t mapped_at, renewed_at, expires_at; /* loop clock; expires 0: never */
	unsigned remaps;            /* mapped again after a loss */
	bool remap_asked;           /* AutoNAT asked for it; counted already */
	bool recheck;               /* mapped again: have AutoNAT look again */
	char why[128];
};

struct pm_upnp {
	struct upnp_igd igd;
	bool have_igd;
	/* The job the worker thread runs; the loop touches it only while no
	 * thread runs (busy false), the thread only while busy. */
	enum { UPNP_JOB_MAP, UPNP_JOB_RENEW, UPNP_JOB_DELETE } op;
	uint16_t internal_port, want_ext;
	unsigned lease;
	char desc[32];
	int err;
	bool lost;  /* RENEW: the router no longer held our mapping */
	struct upnp_lease got;
	struct na_ip external_ip;
	char why[UPNP_WHY_LEN];
	pthread_t thread;
	bool busy;
	/* Stopped while a job ran: the loop does not wait for it (seconds of
	 * SSDP), on_done finishes it, deleting what it mapped if asked. */
	bool abandoned, abandoned_delete;
	bool start_after;           /* started while a DELETE job ran */
	struct na_endpoint deleting; /* the DELETE job's mapping, for the log */
	int efd;    /* eventfd: the thread's "done" */
	struct loop_timer timer;
};

struct portmap {
	struct agent *a;
	struct pmap_entry e[PORTMAP_COUNT]; /* by enum portmap_proto */
	int active;                       /* the proto in use, -1: none */
	struct na_endpoint watched;       /* the address AutoNAT checks for us */
	struct loop_timer retry;
	uint64_t backoff;
	struct pm_upnp upnp;
	struct pm_pmp *pmp;               /* portmap_pmp.c */
};

int portmap_open(struct agent *a);
/* Deletes what is mapped (bounded waits), then frees. */
void portmap_close(struct agent *a);
/* The mapped external address, for candidates; false if none. */
bool portmap_external(const struct agent *a, struct na_endpoint *out);
/* The `show` reply's port_mapping= lines (agent/ctl.h). */
void portmap_status(struct agent *a, struct ctl_out *out, uint64_t now);
const char *pmap_state_name(enum pmap_state s);

/* For the protocol modules: their attempt's outcome. */
/* lan: our address the mapping forwards to (its port is ListenPort). */
void portmap_mapped(struct portmap *pm, enum portmap_proto proto, const struct na_ip *lan,
		    const struct na_endpoint *ext, unsigned lease);
void portmap_failed(struct portmap *pm, enum portmap_proto proto, const char *why);
/* The mapping was lost (router restarted, renewals failed): mapping again. */
void portmap_lost(struct portmap *pm, enum portmap_proto proto, const char *why);

/* portmap_upnp.c */
int pm_upnp_init(struct portmap *pm);
void pm_upnp_start(struct portmap *pm);
/* Deletes the mapping on the worker thread: the loop goes on. */
void pm_upnp_stop(struct portmap *pm, bool delete_mapping);
void pm_upnp_remap(struct portmap *pm);
/* At exit: waits for a running job and deletes the mapping (blocking,
 * bounded by miniupnpc's timeouts). */
void pm_upnp_close(struct portmap *pm);

/* portmap_pmp.c: PCP and NAT-PMP, whichever of them PortMapping allows. */
int pm_pmp_init(struct portmap *pm);
void pm_pmp_start(struct portmap *pm);
void pm_pmp_stop(struct portmap *pm, bool delete_mapping);
void pm_pmp_remap(struct portmap *pm);
void pm_pmp_close(struct portmap *pm);

#endif
