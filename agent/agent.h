/* The running agent: its sockets, QUIC endpoint, peers and data paths, all
 * driven by one event loop. Modules:
 *   agent.c  sockets on ListenPort (one per family), RFC 9443 demux, sending
 *   peer.c   peers from the config, their sessions, dialing and redialing
 *   proxy.c  proxy mode: a UDP endpoint per peer for a local VPN
 *   tunpath.c tun mode: IP packets between the TUN device and peers */
#ifndef NATAGENT_AGENT_AGENT_H
#define NATAGENT_AGENT_AGENT_H

#include "agent/config.h"
#include "agent/discovery.h"
#include "agent/loop.h"
#include "agent/stunsvc.h"
#include "quic/demux.h"
#include "quic/session.h"

/* Counters a user reads in `natctl show`: what crossed, and every reason a
 * datagram was not delivered (no silent black holes). */
struct peer_stats {
	uint64_t tx_bytes, rx_bytes, tx_dgrams, rx_dgrams;
	uint64_t drop_too_big;  /* larger than the path's datagram size */
	uint64_t drop_full;     /* datagram queue full (congestion) */
	uint64_t drop_down;     /* no session up */
	uint64_t drop_spoofed;  /* source outside the peer's AllowedIPs */
	uint64_t drop_bad;      /* undecodable datagram or context */
};

struct agent;
struct peer;

/* One QUIC session and its timer; a peer has at most a current one and, for
 * a moment, a newer one that replaces it. */
struct conn {
	struct agent *a;
	struct peer *peer; /* NULL for a server session not yet up */
	struct quic_session *s;
	struct loop_timer timer;
	struct conn *next;
	uint64_t created;
	bool dirty; /* has queued work: flush at the end of this turn */
};

struct peer {
	struct agent *a;
	const struct config_peer *cfg;
	char name[12]; /* the key's first characters, for logs */
	struct conn *conn;
	struct loop_timer dial_timer;
	uint64_t backoff;
	uint64_t up_since;
	struct peer_stats st;
	/* proxy mode */
	int proxy_fd;
};

/* A UDP socket of the agent, as the loop hands it back: the ones on
 * ListenPort, and those opened when sessions move to a new port. */
struct agent_sock {
	struct agent *a;
	int fd; /* -1 if not open */
	uint8_t family;
	uint16_t port;
};

#define AGENT_MAX_SOCKS 8

struct agent {
	struct config *cfg;
	struct loop *loop;
	struct agent_sock socks[AGENT_MAX_SOCKS]; /* [0] IPv4, [1] IPv6 on ListenPort */
	uint16_t port;
	struct quic_tls_cred *cred;
	struct quic_config qcfg;
	struct quic_demux *demux;
	struct conn *conns;
	struct peer *peers;
	unsigned n_peers;
	struct stunsvc *stun; /* the rendezvous's STUN service, if any */
	/* Discovery on the IPv4 ListenPort socket: the mapping that socket
	 * has is the one every peer and the rendezvous see. */
	struct discovery disc;
	bool disc_running, have_report;
	struct nat_report report;
	struct tunpath *tun;  /* tun mode */
};

int agent_open(struct agent *a, struct config *cfg, struct loop *loop);
void agent_close(struct agent *a);

/* Runs a session's write loop, sends what it produced, re-arms its timer and
 * frees it if it has died. Call after anything that may produce packets. */
void agent_flush(struct conn *c);
/* Takes a new session's conn into the agent's list and timer. */
void agent_conn_adopt(struct agent *a, struct conn *c);
/* Flushes every session marked dirty; the data paths call it once per batch. */
void agent_flush_dirty(struct agent *a);
/* Moves every session we dialed to a new local port: a fresh socket, then
 * QUIC path validation and migration, as after a NAT rebinding. Returns the
 * number of sessions asked to move. */
int agent_rebind(struct agent *a);
/* The path towards remote from this agent's socket of that family. */
bool agent_path(struct agent *a, const struct na_endpoint *remote, struct quic_path *path);

/* peer.c */
int peers_open(struct agent *a);
void peers_close(struct agent *a);
struct peer *peer_by_key(struct agent *a, const uint8_t key[KEY_LEN]);
/* Sends one tunnel datagram (context id + payload) to the peer; counts a
 * drop and returns false when it cannot. Does not flush. */
bool peer_send(struct peer *p, uint64_t ctx, const uint8_t *data, size_t len);
void conn_up(struct conn *c);
void conn_dead(struct conn *c);

/* proxy.c */
int proxy_open(struct agent *a);
void proxy_close(struct agent *a);
void proxy_deliver(struct peer *p, const uint8_t *data, size_t len);

#endif
