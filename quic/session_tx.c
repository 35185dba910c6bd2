/* Output: the write loop that packs control stream bytes and queued
 * DATAGRAMs into packets, and the calls that feed it. */
#include "quic/session.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "quic/session_int.h"

/* --- output --- */

static ssize_t quic_emit_close(struct quic_session *s, uint8_t *buf, size_t cap,
			       struct quic_tx *tx)
{
	if (!s->close_pending || s->close_len > cap)
		return QUIC_ERR_CLOSED;
	s->close_pending = false;
	memcpy(buf, s->close_pkt, s->close_len);
	*tx = s->close_tx;
	return (ssize_t)s->close_len;
}

/* The end of a burst: let ngtcp2 pace the next one (not during the
 * handshake, where it only adds delay). */
static ssize_t quic_burst_end(struct quic_session *s, uint64_t now)
{
	if (s->tx_since_pacing && ngtcp2_conn_get_handshake_completed(s->conn))
		ngtcp2_conn_update_pkt_tx_time(s->conn, now);
	s->tx_since_pacing = false;
	quic_check_path(s);
	return 0;
}

static ssize_t quic_packet_out(struct quic_session *s, ngtcp2_ssize n,
			       const ngtcp2_path_storage *ps,
			       const ngtcp2_pkt_info *pi, struct quic_tx *tx)
{
	quic_path_from_ngtcp2(&tx->path, &ps->path);
	tx->ecn = (uint8_t)pi->ecn;
	s->tx_since_pacing = true;
	return n;
}

static ssize_t quic_write_failed(struct quic_session *s, int liberr, uint8_t *buf,
				 size_t cap, struct quic_tx *tx, uint64_t now)
{
	quic_fail(s, liberr, now);
	return quic_emit_close(s, buf, cap, tx);
}

static void quic_stream_sent(struct quic_session *s, size_t n)
{
	s->tx_next_pos += n;
	s->st.stream_sent += n;
	if (s->tx_next_pos == s->tx_next->len) {
		s->tx_next = s->tx_next->next;
		s->tx_next_pos = 0;
	}
}

static void quic_dgram_pop(struct quic_session *s)
{
	s->dq_head = (s->dq_head + 1) % QUIC_DGRAM_QUEUE;
	s->dq_len--;
}

/* Whether the next datagram is the last of this burst: the queue empties,
 * or the congestion window fills. That packet carries a heartbeat byte
 * (see session_int.h), so the tail of every flight can be probed. */
static bool quic_burst_ends(struct quic_session *s)
{
	ngtcp2_conn_stat cs;

	if (s->dq_len <= 1)
		return true;
	ngtcp2_conn_get_conn_stat(s->conn, &cs);
	return cs.bytes_in_flight + 2 * QUIC_MAX_PKT >= cs.cwnd;
}

/* One packet: pending control stream bytes first, then queued datagrams,
 * coalesced with NGTCP2_WRITE_*_FLAG_MORE, then whatever ngtcp2 has
 * (ACKs, retransmissions, probes). Between a WRITE_MORE and the packet that
 * completes it only the three write calls may touch the connection. */
static ssize_t quic_write_live(struct quic_session *s, uint8_t *buf, size_t cap,
			       struct quic_tx *tx, uint64_t now)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi = { 0 };
	ngtcp2_ssize n, ndata;
	size_t dmax = quic_session_dgram_max(s);
	bool stream_blocked = false, dgram_blocked = false, hb_done = false;
	int accepted;

	ngtcp2_path_storage_zero(&ps);
	/* The peer takes our first unidirectional stream for the control
	 * stream: open it before the heartbeat's, even with nothing to say. */
	if (s->state == QUIC_STATE_UP && s->tx_sid == -1 && (s->tx_next || s->dq_len)) {
		int64_t sid;

		if (ngtcp2_conn_open_uni_stream(s->conn, &sid, NULL) == 0)
			s->tx_sid = sid;
	}
	if (s->state == QUIC_STATE_UP && s->hb_sid == -1 && s->tx_sid >= 0 && s->dq_len) {
		int64_t sid;

		/* A peer that allows one stream only (an older natagent) gets
		 * no heartbeat. */
		s->hb_sid = ngtcp2_conn_open_uni_stream(s->conn, &sid, NULL) == 0 ? sid : -2;
	}
	for (;;) {
		if (s->hb_sid >= 0 && !hb_done && !dgram_blocked &&
		    (s->hb_pending || (s->dq_len && quic_burst_ends(s) &&
				       s->dq[s->dq_head].len + QUIC_HB_ROOM <= dmax))) {
			/* Static: ngtcp2 reads it again when it retransmits. */
			static const uint8_t beat = 0;
			ngtcp2_vec v = { (uint8_t *)&beat, 1 };

			n = ngtcp2_conn_writev_stream(s->conn, &ps.path, &pi, buf, cap, &ndata,
						      NGTCP2_WRITE_STREAM_FLAG_MORE,
						      s->hb_sid, &v, 1, now);
			hb_done = true; /* written or not, once per packet */
			if (ndata > 0)
				s->hb_pending = false;
			if (n == NGTCP2_ERR_WRITE_MORE || n == 0)
				continue; /* 0: congestion; ACKs may still go below */
			if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
			    n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND)
				continue;
		} else if (s->tx_sid >= 0 && s->tx_next && !stream_blocked) {
			ngtcp2_vec v = { s->tx_next->data + s->tx_next_pos,
					 s->tx_next->len - s->tx_next_pos };

			n = ngtcp2_conn_writev_stream(s->conn, &ps.path, &pi, buf, cap, &ndata,
						      NGTCP2_WRITE_STREAM_FLAG_MORE,
						      s->tx_sid, &v, 1, now);
			if (ndata > 0)
				quic_stream_sent(s, (size_t)ndata);
			if (n == NGTCP2_ERR_WRITE_MORE)
				continue;
			if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
			    n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
				stream_blocked = true;
				continue;
			}
		} else if (s->dq_len && !dgram_blocked) {
			struct quic_dgram_slot *d = &s->dq[s->dq_head];
			ngtcp2_vec v = { d->buf, d->len };

			if (d->len > dmax) {
				/* Queued for a larger path (before a
				 * migration): no longer fits. */
				quic_dgram_pop(s);
				s->st.dgram_dropped++;
				continue;
			}
			if (!hb_done && s->hb_sid >= 0 && d->len + QUIC_HB_ROOM > dmax &&
			    quic_burst_ends(s)) {
				/* Too big to share a packet with the
				 * heartbeat: it follows in the next one. */
				s->hb_pending = true;
				hb_done = true;
			}
			accepted = 0;
			n = ngtcp2_conn_writev_datagram(s->conn, &ps.path, &pi, buf, cap,
							&accepted,
							NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0,
							&v, 1, now);
			if (accepted) {
				quic_dgram_pop(s);
				s->st.dgram_sent++;
			}
			if (n == NGTCP2_ERR_WRITE_MORE)
				continue;
			if (n == NGTCP2_ERR_INVALID_STATE || n == NGTCP2_ERR_INVALID_ARGUMENT) {
				quic_dgram_pop(s);  /* the peer will not take it */
				s->st.dgram_dropped++;
				continue;
			}
			if (n == 0 && !accepted) {
				/* Congestion-limited, or pacing: the
				 * datagram waits; still let ngtcp2 write
				 * what is not congestion-controlled. */
				dgram_blocked = true;
				continue;
			}
		} else {
			n = ngtcp2_conn_write_pkt(s->conn, &ps.path, &pi, buf, cap, now);
		}
		if (n < 0)
			return quic_write_failed(s, (int)n, buf, cap, tx, now);
		if (n == 0)
			return quic_burst_end(s, now);
		return quic_packet_out(s, n, &ps, &pi, tx);
	}
}

ssize_t quic_session_write(struct quic_session *s, uint8_t *buf, size_t cap,
			   struct quic_tx *tx, uint64_t now)
{
	if (s->state >= QUIC_STATE_CLOSING)
		return quic_emit_close(s, buf, cap, tx);
	if (s->close_requested) {
		ngtcp2_connection_close_error ce;

		ngtcp2_connection_close_error_default(&ce);
		ngtcp2_connection_close_error_set_application_error(
			&ce, s->close_code, (const uint8_t *)s->close_phrase,
			strlen(s->close_phrase));
		quic_enter_closing(s, &ce, now);
		return quic_emit_close(s, buf, cap, tx);
	}
	return quic_write_live(s, buf, cap, tx, now);
}

/* --- datagrams, control stream, migration --- */

size_t quic_session_dgram_max(struct quic_session *s)
{
	const ngtcp2_transport_params *rp;
	size_t udp, over, m;

	if (s->state != QUIC_STATE_UP)
		return 0;
	rp = ngtcp2_conn_get_remote_transport_params(s->conn);
	if (!rp || rp->max_datagram_frame_size <= 3)
		return 0;
	udp = ngtcp2_conn_get_path_max_tx_udp_payload_size(s->conn);
	over = QUIC_DGRAM_OVERHEAD + ngtcp2_conn_get_dcid(s->conn)->datalen;
	if (udp <= over)
		return 0;
	m = udp - over;
	if (m + 3 > rp->max_datagram_frame_size)
		m = (size_t)rp->max_datagram_frame_size - 3;
	return m;
}

int quic_session_send_datagram(struct quic_session *s, const struct iovec *iov,
			       size_t iovcnt)
{
	struct quic_dgram_slot *d;
	size_t total = 0, max;

	if (s->state >= QUIC_STATE_CLOSING || s->close_requested)
		return QUIC_ERR_CLOSED;
	if (s->state != QUIC_STATE_UP)
		return QUIC_ERR_STATE;
	for (size_t i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	max = quic_session_dgram_max(s);
	if (max == 0)
		return QUIC_ERR_STATE;
	if (total > max)
		return QUIC_ERR_DGRAM_TOO_BIG;
	if (s->dq_len == QUIC_DGRAM_QUEUE)
		return QUIC_ERR_DGRAM_FULL;
	d = &s->dq[(s->dq_head + s->dq_len) % QUIC_DGRAM_QUEUE];
	if (!d->buf && !(d->buf = malloc(QUIC_MAX_PKT)))
		return QUIC_ERR_NOMEM;
	d->len = 0;
	for (size_t i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memcpy(d->buf + d->len, iov[i].iov_base, iov[i].iov_len);
		d->len += iov[i].iov_len;
	}
	s->dq_len++;
	return QUIC_OK;
}

int quic_session_stream_send(struct quic_session *s, const void *data, size_t len)
{
	struct quic_chunk *c;

	if (s->state >= QUIC_STATE_CLOSING || s->close_requested || s->tx_sid == -2)
		return QUIC_ERR_CLOSED;
	if (len == 0)
		return QUIC_OK;
	if (len > QUIC_STREAM_MAXBUF - s->tx_held)
		return QUIC_ERR_NOBUF;
	c = malloc(sizeof(*c) + len);
	if (!c)
		return QUIC_ERR_NOMEM;
	c->next = NULL;
	c->off = s->tx_end;
	c->len = len;
	memcpy(c->data, data, len);
	if (s->tx_tail)
		s->tx_tail->next = c;
	else
		s->tx_head = c;
	s->tx_tail = c;
	if (!s->tx_next) {
		s->tx_next = c;
		s->tx_next_pos = 0;
	}
	s->tx_end += len;
	s->tx_held += len;
	return QUIC_OK;
}

int quic_session_migrate(struct quic_session *s, const struct quic_path *path,
			 uint64_t now)
{
	struct quic_path cur;
	ngtcp2_path np;
	int rv;

	if (!quic_path_ok(path))
		return QUIC_ERR_INVAL;
	if (s->server || s->state != QUIC_STATE_UP)
		return QUIC_ERR_STATE;
	quic_path_to_ngtcp2(&np, path);
	quic_path_from_ngtcp2(&cur, ngtcp2_conn_get_path(s->conn));
	if (quic_addr_eq(&path->local, &cur.local)) {
		/* ngtcp2 0.12 migrates only to another local address: call the
		 * current one by its family's unspecified address (same socket,
		 * same port) first. See quic_session_migrate in session.h. */
		struct sockaddr_storage alias;
		ngtcp2_addr a;

		memset(&alias, 0, sizeof(alias));
		alias.ss_family = path->local.ss_family;
		if (alias.ss_family == AF_INET)
			((struct sockaddr_in *)&alias)->sin_port =
				((const struct sockaddr_in *)&path->local)->sin_port;
		else
			((struct sockaddr_in6 *)&alias)->sin6_port =
				((const struct sockaddr_in6 *)&path->local)->sin6_port;
		if (quic_addr_eq(&alias, &path->local))
			return QUIC_ERR_INVAL; /* already unspecified: nothing to rename to */
		ngtcp2_addr_init(&a, (struct sockaddr *)&alias, quic_sockaddr_len(&alias));
		ngtcp2_conn_set_local_addr(s->conn, &a);
	}
	rv = ngtcp2_conn_initiate_migration(s->conn, &np, now);
	switch (rv) {
	case 0: return QUIC_OK;
	case NGTCP2_ERR_CONN_ID_BLOCKED: return QUIC_ERR_NO_CID;
	case NGTCP2_ERR_INVALID_STATE: return QUIC_ERR_STATE;
	case NGTCP2_ERR_NOMEM: return QUIC_ERR_NOMEM;
	default: return QUIC_ERR_INVAL;  /* e.g. the same local address */
	}
}
