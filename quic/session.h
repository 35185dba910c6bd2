/* One QUIC v1 connection (ngtcp2 0.12), client or server, sans I/O: the
 * caller owns sockets and clocks, feeds received UDP payloads in, pulls UDP
 * payloads out, and arms one timer per session.
 *
 *   feed     quic_session_read(s, pkt, len, &path, ecn, now)   (or through
 *            quic_demux_input, which finds s by connection ID)
 *   collect  while ((n = quic_session_write(s, buf, cap, &tx, now)) > 0)
 *                send buf[0..n) from tx.path.local to tx.path.remote, TOS tx.ecn
 *   timer    at quic_session_expiry(s): quic_session_handle_expiry(s, now),
 *            then collect again
 *   after any of these, if quic_session_is_dead(s): log quic_session_reason(s)
 *            and quic_session_free(s)
 *
 * Run the collect loop after every read, handle_expiry, send_datagram,
 * stream_send, migrate and close. Time is CLOCK_MONOTONIC in nanoseconds.
 *
 * Timers (all inside ngtcp2, surfaced through quic_session_expiry):
 *   handshake timeout  cfg->handshake_timeout from creation (default 10 s)
 *   idle timeout       cfg->idle_timeout without a packet from the peer
 *                      (default 30 s; at least 3 PTO); the session dies
 *                      silently with reason "idle timeout"
 *   keep-alive         cfg->keepalive: a PING after that long idle (off by
 *                      default; set it below the NAT's UDP timeout)
 *   loss detection, ACK delay, pacing, PMTUD, path validation
 *   closing/draining   3 PTO after a CONNECTION_CLOSE sent or received, then
 *                      the session is dead
 *
 * Authentication: the session is "up" (ops->up, quic_session_is_up) only when
 * both keys are checked: for a client at handshake confirmation, not
 * completion, since a client completes before the server has seen its key;
 * for a server at completion. Datagrams and control-stream bytes flow only
 * when up.
 *
 * Control stream: one ordered, reliable byte stream each way. On the wire it
 * is a pair of unidirectional streams (client 2, server 3), so that either
 * side may speak first; bytes are copied in and held until acknowledged.
 *
 * Callbacks (ops) run inside read, handle_expiry and write. They may call
 * quic_session_send_datagram, quic_session_stream_send and quic_session_close
 * on any session (these only queue: run that session's collect loop
 * afterwards), but must not free a session or call read, write,
 * handle_expiry or migrate. */
#ifndef NATAGENT_QUIC_SESSION_H
#define NATAGENT_QUIC_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "quic/tlsid.h"

#define QUIC_MAX_PKT      1452  /* largest UDP payload we send; size buffers by it */
#define QUIC_CID_LEN      16    /* every local connection ID */
/* Datagrams held while congestion-limited. A tunnel carries bursts of inner
 * TCP, which reads a drop here as congestion: at 32 the lab's throughput
 * halved. Slots are allocated on first use. */
#define QUIC_DGRAM_QUEUE  256
#define QUIC_STREAM_MAXBUF (1u << 20) /* unacknowledged control bytes, max */

enum {
	QUIC_OK = 0,
	QUIC_ERR_NOMEM = -1,
	QUIC_ERR_INVAL = -2,         /* bad argument */
	QUIC_ERR_STATE = -3,         /* not now: not up yet, closing, or a server */
	QUIC_ERR_DGRAM_TOO_BIG = -4, /* larger than quic_session_dgram_max(): dropped */
	QUIC_ERR_DGRAM_FULL = -5,    /* datagram queue full (congestion): dropped */
	QUIC_ERR_NOBUF = -6,         /* control stream buffer full */
	QUIC_ERR_NO_CID = -7,        /* migration needs a spare connection ID: retry later */
	QUIC_ERR_CLOSED = -8,        /* the session is closing or closed: see the reason */
	QUIC_ERR_TLS = -9,           /* TLS setup failed */
};
const char *quic_strerror(int err);

/* Where a packet came in or goes out: our socket's address and the peer's.
 * AF_INET or AF_INET6; the port is in the sockaddr. */
struct quic_path {
	struct sockaddr_storage local;
	struct sockaddr_storage remote;
};

/* One outgoing UDP payload's metadata. */
struct quic_tx {
	struct quic_path path; /* send from path.local (pick that socket) to path.remote */
	uint8_t ecn;           /* ECN codepoint for IP_TOS / IPV6_TCLASS */
};

enum quic_state {
	QUIC_STATE_HANDSHAKE,
	QUIC_STATE_UP,
	QUIC_STATE_CLOSING,   /* we sent CONNECTION_CLOSE; waiting out 3 PTO */
	QUIC_STATE_DRAINING,  /* the peer closed or reset; waiting out 3 PTO */
	QUIC_STATE_DEAD,      /* free it */
};

enum quic_path_event {
	QUIC_PATH_VALIDATED,  /* path validation succeeded for path */
	QUIC_PATH_FAILED,     /* path validation failed for path */
	QUIC_PATH_MIGRATED,   /* packets now go out on path */
};

struct quic_session;

struct quic_session_ops {
	void (*up)(struct quic_session *s);
	void (*datagram)(struct quic_session *s, const uint8_t *data, size_t len);
	void (*stream)(struct quic_session *s, const uint8_t *data, size_t len);
	void (*path)(struct quic_session *s, enum quic_path_event ev,
		     const struct quic_path *path);
};

/* Shared by every session of an endpoint; must outlive them. */
struct quic_config {
	struct quic_tls_cred *cred;        /* our key: quic_tls_cred_new() */
	uint8_t reset_secret[32];          /* quic_tls_reset_secret(seed) */
	quic_accept_key_fn accept_key;     /* server: admit this client key? */
	void *accept_arg;
	const struct quic_session_ops *ops; /* any member may be NULL */
	uint64_t idle_timeout;             /* ns, 0 = 30 s */
	uint64_t keepalive;                /* ns, 0 = none */
	uint64_t handshake_timeout;        /* ns, 0 = 10 s */
};

struct quic_session_stats {
	uint64_t dgram_sent, dgram_recv;
	uint64_t dgram_dropped;     /* queued, then no longer fitting the path */
	uint64_t stream_sent, stream_recv;
	uint64_t smoothed_rtt;      /* ns */
	/* Probe timeouts in a row with nothing acknowledged (0 once an ACK
	 * comes): how long the peer has not answered what we sent. */
	size_t pto_count;
	uint64_t bytes_in_flight;
	size_t path_max_udp;        /* current path's max UDP payload */
};

struct quic_demux;

/* A client towards path.remote from path.local, expecting peer_key. dmx
 * (may be NULL) learns the session's connection IDs. NULL on failure with
 * *err set. */
struct quic_session *quic_session_client_new(const struct quic_config *cfg,
					     struct quic_demux *dmx,
					     const struct quic_path *path,
					     const uint8_t peer_key[QUIC_KEY_LEN],
					     void *user, uint64_t now, int *err);
/* A server for the client Initial in pkt (not read yet: pass the same packet
 * to quic_session_read next). quic_demux_input does both. */
struct quic_session *quic_session_server_new(const struct quic_config *cfg,
					     struct quic_demux *dmx,
					     const uint8_t *pkt, size_t len,
					     const struct quic_path *path,
					     uint64_t now, int *err);
/* Also removes the session's connection IDs from its demux. */
void quic_session_free(struct quic_session *s);

/* 0, or QUIC_ERR_CLOSED once the session is closing, draining or dead. */
int quic_session_read(struct quic_session *s, const uint8_t *pkt, size_t len,
		      const struct quic_path *path, uint8_t ecn, uint64_t now);
/* Writes the next UDP payload into buf (cap >= QUIC_MAX_PKT). Returns its
 * length, 0 when nothing is due now (see quic_session_expiry), or
 * QUIC_ERR_CLOSED when the session has ended and has nothing left to send. */
ssize_t quic_session_write(struct quic_session *s, uint8_t *buf, size_t cap,
			   struct quic_tx *tx, uint64_t now);
/* Absolute time of the next timer, UINT64_MAX for none. */
uint64_t quic_session_expiry(struct quic_session *s);
/* 0, or QUIC_ERR_CLOSED as for read. */
int quic_session_handle_expiry(struct quic_session *s, uint64_t now);

/* Queues one DATAGRAM frame made of the iovecs (copied). The caller counts
 * QUIC_ERR_DGRAM_TOO_BIG and QUIC_ERR_DGRAM_FULL as drops. */
int quic_session_send_datagram(struct quic_session *s, const struct iovec *iov,
			       size_t iovcnt);
/* Largest datagram (all iovecs together) that fits the current path now:
 * grows with PMTUD, falls back on a new path; 0 until up. */
size_t quic_session_dgram_max(struct quic_session *s);

/* Appends bytes to the control stream (copied; kept until acknowledged). */
int quic_session_stream_send(struct quic_session *s, const void *data, size_t len);

/* Client only, once up: validate path and move to it when validated:
 * ops->path reports VALIDATED and MIGRATED, or FAILED. The remote may
 * change, the local address too (keep the old socket open a few PTO).
 * ngtcp2 0.12 refuses a migration that keeps the local address; to move
 * only the remote (the server's NAT gave it a new port), the current
 * path's local address is first renamed to its family's unspecified
 * address with the same port: the caller sends from the socket of that
 * family and port either way, but packets still arriving on the old path
 * are ignored from then on, which suits leaving a path that stopped
 * working. QUIC_ERR_NO_CID until the server has issued spare IDs. */
int quic_session_migrate(struct quic_session *s, const struct quic_path *path,
			 uint64_t now);

/* A PING after `keepalive` ns without sending (0: none), from now on;
 * overrides cfg->keepalive for this session. */
void quic_session_set_keepalive(struct quic_session *s, uint64_t keepalive);

/* Sends CONNECTION_CLOSE with an application error code on the next write,
 * then closes. why (may be NULL) goes to the peer as the reason phrase. */
void quic_session_close(struct quic_session *s, uint64_t app_error, const char *why);

enum quic_state quic_session_state(const struct quic_session *s);
bool quic_session_is_up(const struct quic_session *s);
bool quic_session_is_dead(const struct quic_session *s);
bool quic_session_is_server(const struct quic_session *s);
/* The peer's authenticated public key once up (and after, for logging);
 * NULL if the session never came up. */
const uint8_t *quic_session_peer_key(const struct quic_session *s);
/* Why the session failed or closed ("" while fine), e.g. "peer presented key
 * X, expected Y", "peer closed: TLS alert 42 (bad certificate)", "peer
 * restarted (stateless reset)", "idle timeout". */
const char *quic_session_reason(const struct quic_session *s);
/* The path packets currently go out on. */
const struct quic_path *quic_session_path(const struct quic_session *s);
void quic_session_get_stats(struct quic_session *s, struct quic_session_stats *st);
void quic_session_set_user(struct quic_session *s, void *user);
void *quic_session_user(const struct quic_session *s);

/* sizeof the sockaddr in ss by its family; 0 for an unknown family. */
socklen_t quic_sockaddr_len(const struct sockaddr_storage *ss);

#endif
