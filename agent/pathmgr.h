/* The path manager (agent/pathmgr.c): per peer, which path the session
 * uses, the punch attempts that look for a direct one, failover to the
 * relay when a direct path goes silent, and what `natctl show` says about
 * all of it. */
#ifndef NATAGENT_AGENT_PATHMGR_H
#define NATAGENT_AGENT_PATHMGR_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/loop.h"
#include "nat/punch.h"
#include "nat/rdvmsg.h"
#include "quic/session.h"

struct agent;
struct peer;
struct conn;
struct ctl_out;
struct stun_msg;

enum pm_phase {
	PM_IDLE,         /* no attempt under way */
	PM_CONNECT_SENT, /* we initiated: waiting for their CONNECT */
	PM_WAIT_SYNC,    /* we answered a CONNECT: waiting for SYNC */
	PM_PUNCHING,     /* checks (about to be) on the wire */
};

struct pathmgr {
	struct peer *p;
	enum pm_phase phase;
	bool have_punch;        /* punch holds the current or the last attempt */
	struct punch punch;
	uint64_t attempt;
	unsigned attempts;      /* since the agent started */
	uint8_t secret[PUNCH_SECRET_LEN];
	uint64_t connect_sent;  /* initiator: to measure the rendezvous RTT */
	uint64_t rtt;           /* of that exchange, ns */
	uint64_t started;       /* the attempt's first CONNECT (either side's) */
	uint64_t fire_at;       /* when the checks start */
	uint64_t ended;         /* when it succeeded or failed */
	uint64_t took;          /* CONNECT to success, ns */
	uint8_t their_mapping, their_filtering;
	bool their_nat_known;
	uint8_t their_services;   /* NATINFO's RDVMSG_SVC_* */
	struct loop_timer timer;  /* CONNECT/SYNC timeout, punch pacing */
	struct loop_timer retry;  /* the next attempt */
	uint64_t backoff;
	struct loop_timer live;   /* watches a direct path's answers */
	uint64_t direct_since;    /* 0 while not direct */
	bool direct_dead;         /* the direct path in use stopped answering */
	uint64_t dead_at;         /* since when; a packet after it revives it */
	bool to_relay_pending;    /* client: moving to the relay, not there yet */
	unsigned failovers;
	char last_event[96];      /* the last thing that happened to the path */
	/* Keepalives on a direct path: STUN indications with a token the far
	 * side's XDP knows and absorbs (CONNECT carries each side's). */
	uint64_t our_token, their_token;
	uint64_t ka_last, ka_sent;
};

/* Allocated with the peer; freed by pathmgr_free. */
struct pathmgr *pathmgr_new(struct peer *p);
void pathmgr_free(struct pathmgr *pm);

/* A reload changed the peer's configuration (its PersistentKeepalive). */
void pathmgr_config_changed(struct peer *p);
/* The peer's session came up: over the relay, look for a direct path. */
void pathmgr_session_up(struct peer *p);
/* Our reflexive address changed (a NAT rebinding, a new NAT), or discovery
 * has just told us what our NAT does: relayed peers punch again now; with
 * restart, attempts under way start over (they advertise a stale address). */
void pathmgr_candidates_changed(struct agent *a, bool restart);
/* CONNECT and SYNC from the rendezvous (the key names the sender). */
void pathmgr_on_connect(struct agent *a, const struct rdvmsg_connect *m);
void pathmgr_on_sync(struct agent *a, const struct rdvmsg_sync *m);
/* A STUN message on a shared socket that is not discovery's: a punch check
 * or its answer. True when a punch took it (and sent any reply). */
bool pathmgr_input_stun(struct agent *a, const struct stun_msg *m,
			const struct na_endpoint *from, const struct na_endpoint *local);
/* A peer session's path event (validated, failed, migrated). */
void pathmgr_path_event(struct conn *c, enum quic_path_event ev, const struct quic_path *path);
/* Our NAT's behaviour is known (discovery is done): tell every peer with a
 * session (NATINFO on its control stream), for its verdict. */
void pathmgr_nat_known(struct agent *a);
/* The peer's NATINFO (peerctl.c read it off its control stream). */
void pathmgr_natinfo(struct peer *p, const struct rdvmsg_natinfo *m);
/* True if the peer offers AutoNAT and its session is on a direct path
 * (through the relay it would see the relay's address, not ours); at: the
 * peer's address on that path, where its answers come from. */
bool pathmgr_autonat_server(const struct peer *p, struct na_endpoint *at);
/* It answered "unavailable" after all: ask it no more until its next
 * NATINFO offers again. */
void pathmgr_autonat_refused(struct peer *p);

/* The XDP fast path is up: it absorbs keepalives with our peers' tokens. */
void pathmgr_fastpath_up(struct agent *a);
/* The host's own addresses that can be candidates (up, not loopback or
 * link-local, not our tunnel's, of a family we have a socket for), at our
 * port; at most max. */
unsigned pathmgr_host_addrs(struct agent *a, struct na_endpoint *out, unsigned max);
/* Status lines for `natctl show`. */
void pathmgr_status(const struct peer *p, struct ctl_out *out, uint64_t now);

#endif
