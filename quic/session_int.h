/* Internal to quic/session*.c: the session struct and what its files share.
 *   session.c     creation, input, timers, closing, accessors
 *   session_cb.c  paths, events, and the ngtcp2 callbacks
 *   session_tx.c  the write loop, datagram queue, control stream, migration */
#ifndef NATAGENT_QUIC_SESSION_INT_H
#define NATAGENT_QUIC_SESSION_INT_H

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "quic/session.h"

#define QUIC_DEFAULT_IDLE      (30 * NGTCP2_SECONDS)
#define QUIC_DEFAULT_HANDSHAKE (10 * NGTCP2_SECONDS)
#define QUIC_INITIAL_RTT       (50 * NGTCP2_MILLISECONDS)
#define QUIC_CID_LIMIT         8      /* spare connection IDs for migration */
#define QUIC_MAX_DGRAM_FRAME   65535
#define QUIC_STREAM_WINDOW     (1u << 20)
/* ngtcp2 0.12 arms its probe timeout (PTO) only for packets with frames it
 * would retransmit, and DATAGRAM frames are not such frames. When a
 * blackout (a rendezvous restart under a relayed path, a NAT rebinding)
 * loses the datagram-only packets in flight (a policer dropping a burst's
 * tail is enough), nothing is left to probe with: the session stalls for
 * good. So the packet that ends each burst of datagrams (the queue empties
 * or the congestion window fills) also carries one byte on a separate
 * unidirectional stream: the tail of every flight holds a frame ngtcp2
 * probes for, and retransmits when lost. The receiver discards those
 * bytes. */
#define QUIC_HB_ROOM           16  /* its STREAM frame, at most */
/* A 1-RTT packet around a DATAGRAM frame: first byte, packet number (at
 * most 4), AEAD tag (16 for every TLS 1.3 suite we allow), frame type and a
 * 2-byte length; plus the destination connection ID. */
#define QUIC_DGRAM_OVERHEAD    (1 + 4 + 16 + 1 + 2)

/* The demux entries a session holds, so that freeing it removes them one by
 * one instead of scanning the demux's tables (a rendezvous with 100 000
 * sessions losing them all at once would go quadratic). Past the capacity
 * the session falls back to that scan. */
#define QUIC_DMX_TRACK 16
struct quic_dmx_cid {
	uint8_t len;
	uint8_t data[NGTCP2_MAX_CIDLEN];
};

/* Control stream bytes we sent and the peer has not acknowledged. */
struct quic_chunk {
	struct quic_chunk *next;
	uint64_t off;   /* stream offset of data[0] */
	size_t len;
	uint8_t data[];
};

struct quic_dgram_slot {
	size_t len;
	uint8_t *buf;   /* QUIC_MAX_PKT bytes, allocated on first use */
};

struct quic_session {
	ngtcp2_conn *conn;
	struct quic_tls_session tls;
	const struct quic_config *cfg;
	struct quic_demux *dmx;
	void *user;
	bool server;
	bool counted;           /* counts against the demux's server limit */
	bool hs_counted;        /* ... and its handshake limits, until up */
	int hs_bucket;          /* its source's, for quic_demux_handshake_end */
	bool creating;          /* inside ngtcp2_conn_*_new: see quic_rand_cb */
	bool reset_received;
	bool was_up;            /* both keys were checked: peer_key is good */
	bool tx_since_pacing;   /* packets out since ngtcp2_conn_update_pkt_tx_time */
	enum quic_state state;
	uint64_t deadline;      /* end of the closing or draining period */
	struct quic_path cur;   /* the current path, as last reported */

	/* Closing: the CONNECTION_CLOSE packet, sent again (at exponentially
	 * spaced arrivals) if the peer keeps sending. */
	bool close_requested;
	uint64_t close_code;
	char close_phrase[64];
	uint8_t *close_pkt;
	size_t close_len;
	struct quic_tx close_tx;
	bool close_pending;
	uint32_t closing_rx;

	/* Control stream: our unidirectional stream out, the peer's in. */
	int64_t tx_sid, rx_sid;       /* tx_sid -1: not open yet, -2: gone */
	/* Heartbeat stream (see above): -1 not open yet, -2 none. */
	int64_t hb_sid;
	bool hb_pending;        /* owed: the burst's last datagram filled its packet */
	struct quic_chunk *tx_head, *tx_tail, *tx_next;
	size_t tx_next_pos;           /* bytes of tx_next already handed out */
	uint64_t tx_end;              /* stream offset after the last byte queued */
	size_t tx_held;
	uint8_t *rx_early;            /* stream bytes that came before "up" */
	size_t rx_early_len;

	struct quic_dgram_slot dq[QUIC_DGRAM_QUEUE];
	unsigned dq_head, dq_len;

	struct quic_session_stats st;
	char reason[256];

	struct quic_dmx_cid dmx_cids[QUIC_DMX_TRACK];
	uint8_t dmx_tokens[QUIC_DMX_TRACK][NGTCP2_STATELESS_RESET_TOKENLEN];
	uint8_t n_dmx_cids, n_dmx_tokens;
	bool dmx_overflow;
};

/* session_cb.c */
void quic_path_to_ngtcp2(ngtcp2_path *np, const struct quic_path *p);
void quic_path_from_ngtcp2(struct quic_path *p, const ngtcp2_path *np);
/* Same family, address and port. */
bool quic_addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
bool quic_path_ok(const struct quic_path *p);
void quic_check_path(struct quic_session *s);
ngtcp2_conn *quic_get_conn(ngtcp2_crypto_conn_ref *ref);
int quic_make_cid(struct quic_session *s, ngtcp2_cid *cid, size_t len);
void quic_callbacks(ngtcp2_callbacks *cb, bool server);
void quic_stream_drop_tx(struct quic_session *s);

/* Demux entries, tracked (see QUIC_DMX_TRACK); add returns as quic_demux_add. */
int quic_dmx_add_cid(struct quic_session *s, const uint8_t *cid, size_t len);
void quic_dmx_remove_cid(struct quic_session *s, const uint8_t *cid, size_t len);
int quic_dmx_add_token(struct quic_session *s, const uint8_t *token);
void quic_dmx_remove_token(struct quic_session *s, const uint8_t *token);
void quic_dmx_release(struct quic_session *s);

/* session.c */
void quic_enter_closing(struct quic_session *s, const ngtcp2_connection_close_error *ce,
			uint64_t now);
int quic_fail(struct quic_session *s, int liberr, uint64_t now);

#endif
