/* One UDP socket, many QUIC connections: a table from local connection ID
 * (QUIC_CID_LEN bytes, random) to session, kept up to date by the sessions'
 * new/retired connection ID callbacks, plus the answers an endpoint gives
 * without a session: version negotiation, stateless reset, and a new server
 * session for a client Initial when accepting.
 *
 * A second table maps the stateless reset tokens our sessions hold for the
 * peers' connection IDs back to the session: a stateless reset carries no
 * usable connection ID, only the token in its last 16 bytes.
 *
 * Both are open addressing with linear probing, keyed by SipHash-2-4 under
 * a per-demux random key (client-chosen Initial DCIDs are
 * attacker-controlled). They allocate only when entries are added, never
 * per packet.
 *
 * Also here: the first-byte classifier (RFC 9443) the agent runs on every
 * datagram of a shared socket before handing QUIC ones to quic_demux_input. */
#ifndef NATAGENT_QUIC_DEMUX_H
#define NATAGENT_QUIC_DEMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quic/session.h"

enum quic_demux_class {
	QUIC_CLASS_OTHER,
	QUIC_CLASS_STUN,       /* first byte 0-3, magic cookie, or RFC 3489 shape */
	QUIC_CLASS_QUIC,       /* first byte 64-255 */
	QUIC_CLASS_WIREGUARD,  /* type 1-4, three zero bytes, a WireGuard length */
};

/* RFC 9443 demultiplexing of one UDP payload. Our sessions always set the
 * QUIC fixed bit (see quic_rand_cb), so a natagent QUIC packet is never OTHER. */
enum quic_demux_class quic_demux_classify(const uint8_t *p, size_t n);
const char *quic_demux_class_name(enum quic_demux_class c);

enum quic_demux_result {
	QUIC_DEMUX_DROP,      /* not ours, malformed, or refused: ignore it */
	QUIC_DEMUX_SESSION,   /* read by *sp: run its write loop, check is_dead */
	QUIC_DEMUX_ACCEPTED,  /* a new server session *sp read it: adopt it too */
	QUIC_DEMUX_REPLY,     /* send out[0..*outlen) back: path.local -> path.remote */
};

/* cfg supplies the server side (accept_key, ops, timeouts) and the
 * stateless reset secret; max_server caps concurrent server sessions. */
struct quic_demux *quic_demux_new(const struct quic_config *cfg, size_t max_server);
/* Free the sessions first (quic_session_free removes their entries). */
void quic_demux_free(struct quic_demux *d);
/* Whether unknown client Initials create server sessions (default: yes if
 * cfg->accept_key is set). */
void quic_demux_set_accepting(struct quic_demux *d, bool on);

/* Routes one received QUIC datagram. out (outcap >= QUIC_MAX_PKT) receives a
 * version negotiation or stateless reset packet for QUIC_DEMUX_REPLY. */
enum quic_demux_result quic_demux_input(struct quic_demux *d,
					const uint8_t *pkt, size_t len,
					const struct quic_path *path, uint8_t ecn,
					uint64_t now, struct quic_session **sp,
					uint8_t *out, size_t outcap, size_t *outlen);

struct quic_session *quic_demux_lookup(const struct quic_demux *d,
				       const uint8_t *cid, size_t len);
size_t quic_demux_count(const struct quic_demux *d); /* connection IDs held */

/* For session.c: keep the tables in step with a session's connection IDs
 * and with the stateless reset tokens of the peer's connection IDs it uses.
 * quic_demux_add returns 0, 1 if the ID is taken, -1 on failure. */
int quic_demux_add(struct quic_demux *d, const uint8_t *cid, size_t len,
		   struct quic_session *s);
void quic_demux_remove(struct quic_demux *d, const uint8_t *cid, size_t len,
		       const struct quic_session *s);
int quic_demux_add_token(struct quic_demux *d, const uint8_t token[16],
			 struct quic_session *s);
void quic_demux_remove_token(struct quic_demux *d, const uint8_t token[16],
			     const struct quic_session *s);
void quic_demux_forget(struct quic_demux *d, const struct quic_session *s);
void quic_demux_server_count(struct quic_demux *d, int delta);
/* Server sessions in their handshake, in all and per source address
 * (QUIC_DEMUX_MAX_HS_PER_SOURCE from one IPv4 address or IPv6 /64, so one
 * host flooding Initials cannot lock others out). begin returns the token
 * to give end. */
#define QUIC_DEMUX_SRC_BUCKETS         4096
#define QUIC_DEMUX_MAX_HS_PER_SOURCE   64
int quic_demux_handshake_begin(struct quic_demux *d, const struct sockaddr_storage *src);
void quic_demux_handshake_end(struct quic_demux *d, int bucket);
/* Caps on server sessions in all and on those still in their handshake
 * (each costs as much memory as an established one, and anyone can start
 * one): Initials over either cap are dropped and counted. */
void quic_demux_set_limits(struct quic_demux *d, size_t max_server, size_t max_handshakes);
uint64_t quic_demux_refused(const struct quic_demux *d);

#endif
