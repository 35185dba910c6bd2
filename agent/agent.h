/* The running agent: its sockets, QUIC endpoint, peers and data paths, all
 * driven by one event loop. Modules:
 *   agent.c  sockets on ListenPort (one per family), RFC 9443 demux, sending
 *   peer.c   peers from the config, their sessions, dialing and redialing
 *   reload.c a new configuration's peers applied to the running agent
 *   proxy.c  proxy mode: a UDP endpoint per peer for a local VPN
 *   tunpath.c tun mode: IP packets between the TUN device and peers
 *   rdvclient.c our session to the rendezvous: registration, relay uplink
 *   pathmgr.c direct paths: punching through the rendezvous, migration,
 *            failover to the relay, keepalives
 *   hostwatch.c the host's addresses (rtnetlink): new candidates
 *   portmap*.c  port mappings from the router (UPnP IGD, PCP, NAT-PMP)
 *   autonat.c the reachability of our addresses (AutoNAT dial-backs
 *            through the rendezvous), for us and other modules
 *   relay.c  relayed paths: peer sessions carried inside that session
 *   rendezvous.c the rendezvous service, when this agent is one;
 *            rdv_autonat.c its AutoNAT dial-backs */
#ifndef NATAGENT_AGENT_AGENT_H
#define NATAGENT_AGENT_AGENT_H

#include "agent/config.h"
#include "agent/discovery.h"
#include "agent/loop.h"
#include "agent/stunsvc.h"
#include "nat/autonat.h"
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
struct rdvclient;
struct rdv_server;
struct rdv_reg;
struct pathmgr;
struct fastpath;
struct hostwatch;
struct autonat;
struct autonat_dialer;
struct rdvmsg;
struct portmap;
struct ctl_out;

/* What a QUIC session is for. */
enum conn_role {
	CONN_PEER,      /* a peer-to-peer session (or a server one not up yet) */
	CONN_RDV_UP,    /* our session to the rendezvous */
	CONN_RDV_REG,   /* a peer registered at our rendezvous service */
};

/* One QUIC session and its timer; a peer has at most a current one and, for
 * a moment, a newer one that replaces it. */
struct conn {
	struct agent *a;
	struct peer *peer; /* NULL for a server session not yet up */
	struct quic_session *s;
	struct loop_timer timer;
	struct conn *next, *prev;
	struct conn *dirty_next; /* on agent.dirty_head while queued */
	uint64_t created;
	bool dirty;  /* has queued work: flush at the end of this turn */
	bool queued; /* on the dirty list */
	enum conn_role role;
	struct rdv_reg *reg; /* CONN_RDV_REG */
	/* Last packet received / sent on a direct (not relayed) path: the
	 * path manager's silence check reads them. */
	uint64_t rx_direct, tx_direct;
	/* CONN_PEER: a partial message on the peer's control stream (see
	 * peerctl.c; the largest is a DIALREQ). */
	uint8_t prx[192];
	uint8_t prx_len;
	bool prx_bad;
};

struct peer {
	struct agent *a;
	const struct config_peer *cfg;
	char name[12]; /* the key's first characters, for logs */
	struct conn *conn;
	struct loop_timer dial_timer;
	uint64_t backoff;
	uint64_t up_since;
	uint32_t idx;        /* names its relayed path; never reused (peer.c) */
	bool dialed_relay;   /* the last dial went through the rendezvous */
	bool try_relay;      /* next dial: through the rendezvous (if both ways exist) */
	char last_error[96]; /* why the last session ended */
	struct pathmgr *pm;  /* punching, failover (pathmgr.c) */
	struct peer_stats st;
	struct tbucket autonat_limit; /* its DIALREQs to us (peer_autonat.c) */
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
	bool stun_service; /* STUN here goes to the rendezvous's STUN service */
};

/* Packets of peer sessions carried through our rendezvous session. */
struct relay_stats {
	uint64_t tx, rx;
	uint64_t drop_down;     /* no registered rendezvous session */
	uint64_t drop_too_big;  /* larger than that session's datagrams */
	uint64_t drop_full;     /* its datagram queue full */
	uint64_t drop_unknown;  /* from a key that is none of our peers */
	uint64_t drop_queue;    /* more in one read than the inbound queue holds */
};

#define AGENT_MAX_SOCKS 8
#define AGENT_SOCK_RDV  2 /* the rendezvous service's Listen socket, if any */

struct agent {
	struct config *cfg;
	struct loop *loop;
	struct agent_sock socks[AGENT_MAX_SOCKS]; /* [0] IPv4, [1] IPv6 on ListenPort */
	uint16_t port;
	struct quic_tls_cred *cred;
	struct quic_config qcfg;
	struct quic_demux *demux;
	struct conn *conns;
	struct conn *dirty_head; /* sessions with work queued this turn */
	/* Pointers, so that a peer stays where it is while others come and go
	 * (sessions and the path manager hold it); in idx order. */
	struct peer **peers;
	unsigned n_peers, cap_peers;
	uint32_t next_idx; /* the next peer's idx */
	struct stunsvc *stun; /* the rendezvous's STUN service, if any */
	/* Discovery on the IPv4 ListenPort socket: the mapping that socket
	 * has is the one every peer and the rendezvous see. */
	struct discovery disc;
	bool disc_running, have_report;
	struct nat_report report;
	struct tunpath *tun;  /* tun mode */
	struct rdvclient *rdv;     /* our rendezvous, if configured */
	struct rdv_server *rdvsrv; /* our rendezvous service, if we are one */
	struct relay_stats relay;
	struct fastpath *fp; /* the XDP fast path, when it runs (daemon.c) */
	struct hostwatch *hostwatch;
	struct portmap *portmap; /* agent/portmap.h; NULL with PortMapping = off */
	struct autonat *autonat; /* our reachability (autonat.c) */
	struct autonat_dialer *peer_dial; /* AutoNATService = true (peer_autonat.c) */
};

int agent_open(struct agent *a, struct config *cfg, struct loop *loop);
void agent_close(struct agent *a);

/* Runs a session's write loop, sends what it produced, re-arms its timer and
 * frees it if it has died. Call after anything that may produce packets. */
void agent_flush(struct conn *c);
/* Takes a new session's conn into the agent's list and timer. */
void agent_conn_adopt(struct agent *a, struct conn *c);
/* Marks a session as having work queued (packets, datagrams, a close). */
void conn_mark(struct conn *c);
/* Flushes every session marked dirty; the data paths call it once per batch. */
void agent_flush_dirty(struct agent *a);
/* The endpoint-wide keep-alive from the configuration again (a reload
 * changed a PersistentKeepalive): new sessions and the rendezvous session
 * use it; the peers' sessions take it at their next path change. */
void agent_keepalive_update(struct agent *a);
/* Moves every session we dialed to a new local port: a fresh socket, then
 * QUIC path validation and migration, as after a NAT rebinding. Returns the
 * number of sessions asked to move. */
int agent_rebind(struct agent *a);
/* The socket bound to that family and port, else the family's ListenPort
 * socket; -1 if there is none. */
int agent_fd(struct agent *a, uint8_t family, uint16_t port);
/* The path towards remote from this agent's socket of that family. */
bool agent_path(struct agent *a, const struct na_endpoint *remote, struct quic_path *path);
/* Routes one received QUIC packet, from a socket or out of the relay;
 * replies (version negotiation, stateless reset) go back the same way. */
void agent_input_quic(struct agent *a, const uint8_t *pkt, size_t len,
		      const struct quic_path *path, uint8_t ecn);
/* Learns the public address and the NAT's behaviour (again), unless that
 * is under way: at start, and when the NAT gave us a new mapping. */
void agent_discover(struct agent *a);
/* Opens the rendezvous service's Listen socket (QUIC and STUN on one port):
 * the agent reads it; STUN requests there go to the STUN service. */
int agent_open_rdv_socket(struct agent *a, const struct na_endpoint *listen);

/* peer.c */
int peers_open(struct agent *a);
void peers_close(struct agent *a);
struct peer *peer_by_key(struct agent *a, const uint8_t key[KEY_LEN]);
/* The peer with that idx, NULL once it is gone (idx are never reused). */
struct peer *peer_by_idx(struct agent *a, uint32_t idx);
/* A new peer for cp, with its path manager and a fresh idx, not yet among
 * the agent's peers (so it can still be freed with peer_free if a reload
 * fails before it starts). NULL when out of memory. */
struct peer *peer_new(struct agent *a, const struct config_peer *cp);
void peer_free(struct peer *p);
/* Room for n peers in all, so that peer_start cannot fail: 0 or -ENOMEM. */
int peers_reserve(struct agent *a, unsigned n);
/* Makes a peer_new one of the agent's peers, and dials it when it is our
 * turn (after peers_reserve). */
void peer_start(struct peer *p);
/* Closes the peer's sessions (CONNECTION_CLOSE with why, sent now), takes
 * it out of the agent, its tunnel table and its proxy socket, and frees
 * it. Nothing refers to it afterwards: its sessions' conns forget it, and
 * its idx names no path any more. */
void peer_remove(struct peer *p, const char *why);
/* A reload changed the peer's Endpoint or PersistentKeepalive (p->cfg is
 * the new one): dial the new Endpoint if idle; use the new keepalive. */
void peer_config_changed(struct peer *p);
/* Sends one tunnel datagram (context id + payload) to the peer; counts a
 * drop and returns false when it cannot. Does not flush. */
bool peer_send(struct peer *p, uint64_t ctx, const uint8_t *data, size_t len);
void conn_up(struct conn *c);
void conn_dead(struct conn *c);
/* The rendezvous says the peer with that key has just registered. */
void peer_present(struct agent *a, const uint8_t key[KEY_LEN]);
/* The rendezvous can carry sessions now: dial the peers that wait for it. */
void peers_relay_ready(struct agent *a);
/* How a peer is reached now, for status: "direct", "relay" or "none". */
const char *peer_path_kind(const struct peer *p);

/* rdvclient.c */
int rdvclient_open(struct agent *a);
void rdvclient_close(struct agent *a);
void rdvclient_up(struct conn *c);
void rdvclient_stream(struct conn *c, const uint8_t *data, size_t len);
void rdvclient_datagram(struct conn *c, const uint8_t *data, size_t len);
void rdvclient_dead(struct conn *c);
/* Sends one message on the rendezvous session; false if it is not up. */
bool rdvclient_send(struct agent *a, const struct rdvmsg *m);
/* Whether a peer session can be carried through the rendezvous now. */
bool rdvclient_can_relay(struct agent *a);
/* The registered rendezvous session, which carries relayed packets; NULL
 * while there is none. */
struct conn *rdvclient_uplink(struct agent *a);

/* The peers changed (reload.c): REGISTER the keys added, UNREGISTER those
 * removed, on a session that is up; one still in its handshake registers
 * the whole new list when it comes up. */
void rdvclient_peers_changed(struct agent *a, const uint8_t *const *added, unsigned n_added,
			     const uint8_t *const *removed, unsigned n_removed);

/* hostwatch.c: the host's addresses, watched; a change makes relayed peers
 * punch again with the new candidates and reachability be checked again. 0
 * (nothing opened) without a rendezvous. */
int hostwatch_open(struct agent *a);
void hostwatch_close(struct agent *a);

/* autonat.c: which of our addresses the world can reach, asked of the
 * rendezvous (its AutoNAT service dials each back from its second
 * address; nat/autonat.h has the rules). The agent watches the reflexive
 * address the rendezvous sees, discovery's mapped address and the host's
 * own addresses; other modules add theirs.
 *
 * For the port-mapping module, say:
 *   autonat_watch(a, &mapped_external, AUTONAT_BY_PORTMAP);
 *   autonat_on_change(a, on_reach, pm);   -- on_reach(pm, ep, now, was)
 *   ... autonat_reach(a, &mapped_external) == AUTONAT_PRIVATE: the router
 *       dropped the mapping: map again, then autonat_recheck(a, &ep);
 *   autonat_unwatch(a, &old_external, AUTONAT_BY_PORTMAP) when it changes.
 * An address is checked at once when it is first watched, then in a quick
 * burst until AUTONAT_AGREE results agree, then every AUTONAT_RECHECK; its
 * verdict (unknown, public, private) changes only on AUTONAT_AGREE agreeing
 * results, and every change is logged and reported to each callback, in
 * the loop, after the result that made it. Callbacks must not unwatch from
 * inside (they may watch and recheck). */
enum autonat_owner {
	AUTONAT_BY_RENDEZVOUS,	/* how the rendezvous sees us (agent-owned) */
	AUTONAT_BY_DISCOVERY,	/* discovery's mapped address (agent-owned) */
	AUTONAT_BY_HOST,	/* the host's own addresses (agent-owned) */
	AUTONAT_BY_PORTMAP,	/* a mapping the router gave us */
	AUTONAT_BY_OTHER,
};
typedef void (*autonat_change_fn)(void *arg, const struct na_endpoint *ep,
				  enum autonat_reach now, enum autonat_reach was);
/* 0 (nothing opened) without a rendezvous to ask. */
int autonat_open(struct agent *a);
void autonat_close(struct agent *a);
/* Starts checking ep for owner (another owner may watch it too: one
 * check serves both). 0; -EOPNOTSUPP when there is no rendezvous to ask
 * (its reachability stays unknown); -ENOSPC when AUTONAT_MAX_ADDRS are
 * watched; -EINVAL for no family or port 0. */
int autonat_watch(struct agent *a, const struct na_endpoint *ep, enum autonat_owner who);
/* Stops owner's interest; the address and its history go with the last. */
void autonat_unwatch(struct agent *a, const struct na_endpoint *ep, enum autonat_owner who);
/* The verdict now; AUTONAT_UNKNOWN for an address not watched. */
enum autonat_reach autonat_reach(struct agent *a, const struct na_endpoint *ep);
/* Called on every change of any watched address's verdict; up to 4.
 * -ENOSPC past that, -EOPNOTSUPP without a rendezvous. */
int autonat_on_change(struct agent *a, autonat_change_fn fn, void *arg);
/* Check ep (NULL: every address) again at once, keeping its history: the
 * verdict still changes only on AUTONAT_AGREE agreeing results. */
void autonat_recheck(struct agent *a, const struct na_endpoint *ep);
/* Hooks of the agent's own modules. */
void autonat_registered(struct agent *a, const struct na_endpoint *srflx);
void autonat_rdv_down(struct agent *a);
void autonat_discovered(struct agent *a);
void autonat_hosts_changed(struct agent *a);
void autonat_dialresp(struct agent *a, const struct rdvmsg_dialresp *m);
/* A datagram on a shared socket: true if it was a dial-back (taken). */
bool autonat_input(struct agent *a, const uint8_t *buf, size_t len,
		   const struct na_endpoint *from);
/* `natctl show` lines: reachability= per address. */
void autonat_status(struct agent *a, struct ctl_out *out, uint64_t now);
/* Peers as AutoNAT servers: which may serve changed (a NATINFO, a session
 * going direct); a peer's DIALRESP; its session ended. The rendezvous is
 * asked first; a peer that offers the service (AutoNATService = true) on
 * a direct path when the rendezvous cannot dial (no AlternateListen) or
 * is not configured. */
void autonat_servers_changed(struct agent *a);
void autonat_peer_dialresp(struct peer *p, const struct rdvmsg_dialresp *m);
void autonat_peer_down(struct peer *p);

/* peer_autonat.c: AutoNATService = true, the serving side for our peers
 * (dial-backs from a port of our own). Without it every DIALREQ is
 * answered "unavailable". */
int peer_autonat_open(struct agent *a);
void peer_autonat_close(struct agent *a);
void peer_autonat_request(struct peer *p, const struct rdvmsg_dialreq *m);

/* peerctl.c: a peer session's control stream (NATINFO, DIALREQ, DIALRESP). */
void peerctl_stream(struct conn *c, const uint8_t *data, size_t len);
/* Queues m on p's stream; false if the session is not up or it is full. */
bool peerctl_send(struct peer *p, const struct rdvmsg *m);

/* relay.c: a relayed path is an ordinary QUIC path between two addresses
 * of the discard prefix 100::/64 (RFC 6666), never on a wire: ours, and
 * one per peer that names it. Packets the sessions send there are wrapped
 * into the rendezvous session's DATAGRAMs. */
void relay_path(const struct peer *p, struct quic_path *path);
bool relay_is_path(const struct sockaddr_storage *ss);
/* Sends one packet a session wrote for a relayed path. */
void relay_send(struct agent *a, const struct sockaddr_storage *to, const uint8_t *pkt,
		size_t len);
/* Takes a packet out of a relay datagram (inside the rendezvous session's
 * read) and feeds it to its session once that read is over. */
void relay_queue(struct agent *a, const uint8_t key[KEY_LEN], const uint8_t *pkt, size_t len);
void relay_drain(struct agent *a);

/* rendezvous.c */
int rdv_server_open(struct agent *a);
void rdv_server_close(struct agent *a);
bool rdv_server_accepts(struct agent *a, const uint8_t key[KEY_LEN]);
void rdv_server_up(struct conn *c);
void rdv_server_stream(struct conn *c, const uint8_t *data, size_t len);
void rdv_server_datagram(struct conn *c, const uint8_t *data, size_t len);
void rdv_server_dead(struct conn *c);
/* The registered peer's session moved to a new path (a new NAT mapping). */
void rdv_server_path(struct conn *c);
/* rdv_autonat.c: the service's AutoNAT side. rdv_autonat_open opens the
 * dial-back socket (on AlternateListen's IP, a port of its own; none
 * without AlternateListen: every address is then "unavailable"). */
int rdv_autonat_open(struct agent *a);
void rdv_autonat_close(struct agent *a);
void rdv_autonat_request(struct conn *c, struct tbucket *limit,
			 const struct rdvmsg_dialreq *m);

/* proxy.c */
int proxy_open(struct agent *a);
void proxy_close(struct agent *a);
void proxy_deliver(struct peer *p, const uint8_t *data, size_t len);
/* A LocalEndpoint socket, bound, not yet read: the fd or -errno. */
int proxy_bind(const struct na_endpoint *ep);
/* Gives a bound socket to the peer and reads it for the peer (p->proxy_fd
 * must be -1): 0 or -errno. */
int proxy_attach(struct peer *p, int fd);
/* Takes the socket back from the peer, still open (to move it to another
 * peer, or to close it): the fd, or -1 if it had none. */
int proxy_detach(struct peer *p);

#endif
