/* Paths and events, and everything ngtcp2 calls back into. */
#include "quic/session.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "quic/demux.h"
#include "quic/session_int.h"

/* --- paths --- */

socklen_t quic_sockaddr_len(const struct sockaddr_storage *ss)
{
	switch (ss->ss_family) {
	case AF_INET: return sizeof(struct sockaddr_in);
	case AF_INET6: return sizeof(struct sockaddr_in6);
	}
	return 0;
}

void quic_path_to_ngtcp2(ngtcp2_path *np, const struct quic_path *p)
{
	np->local.addr = (ngtcp2_sockaddr *)&p->local;
	np->local.addrlen = quic_sockaddr_len(&p->local);
	np->remote.addr = (ngtcp2_sockaddr *)&p->remote;
	np->remote.addrlen = quic_sockaddr_len(&p->remote);
	np->user_data = NULL;
}

static void quic_addr_from_ngtcp2(struct sockaddr_storage *ss, const ngtcp2_addr *a)
{
	size_t n = a->addrlen < sizeof(*ss) ? a->addrlen : sizeof(*ss);

	memset(ss, 0, sizeof(*ss));
	if (a->addr && n)
		memcpy(ss, a->addr, n);
}

void quic_path_from_ngtcp2(struct quic_path *p, const ngtcp2_path *np)
{
	quic_addr_from_ngtcp2(&p->local, &np->local);
	quic_addr_from_ngtcp2(&p->remote, &np->remote);
}

bool quic_addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

bool quic_path_ok(const struct quic_path *p)
{
	return p && quic_sockaddr_len(&p->local) && quic_sockaddr_len(&p->remote) &&
	       p->local.ss_family == p->remote.ss_family;
}

/* --- events --- */

static void quic_emit_path(struct quic_session *s, enum quic_path_event ev,
			   const struct quic_path *p)
{
	if (s->cfg->ops && s->cfg->ops->path)
		s->cfg->ops->path(s, ev, p);
}

/* MIGRATED whenever ngtcp2's current path differs from the last one seen:
 * a client after validating a path it asked for, a server when the client's
 * packets come from somewhere new. */
void quic_check_path(struct quic_session *s)
{
	struct quic_path p;

	if (!s->conn || s->state >= QUIC_STATE_CLOSING)
		return;
	quic_path_from_ngtcp2(&p, ngtcp2_conn_get_path(s->conn));
	if (quic_addr_eq(&p.local, &s->cur.local) && quic_addr_eq(&p.remote, &s->cur.remote))
		return;
	s->cur = p;
	quic_emit_path(s, QUIC_PATH_MIGRATED, &p);
}

static void quic_stream_deliver(struct quic_session *s, const uint8_t *data, size_t len)
{
	s->st.stream_recv += len;
	if (s->cfg->ops && s->cfg->ops->stream)
		s->cfg->ops->stream(s, data, len);
	ngtcp2_conn_extend_max_stream_offset(s->conn, s->rx_sid, len);
	ngtcp2_conn_extend_max_offset(s->conn, len);
}

static void quic_set_up(struct quic_session *s)
{
	s->state = QUIC_STATE_UP;
	s->was_up = true;
	if (s->hs_counted && s->dmx) {
		quic_demux_handshake_end(s->dmx, s->hs_bucket);
		s->hs_counted = false;
	}
	if (s->cfg->ops && s->cfg->ops->up)
		s->cfg->ops->up(s);
	if (s->rx_early_len)
		quic_stream_deliver(s, s->rx_early, s->rx_early_len);
	free(s->rx_early);
	s->rx_early = NULL;
	s->rx_early_len = 0;
}

/* --- ngtcp2 callbacks --- */

ngtcp2_conn *quic_get_conn(ngtcp2_crypto_conn_ref *ref)
{
	struct quic_session *s = ref->user_data;

	return s->conn;
}

/* ngtcp2 0.12 draws one random byte while creating a connection to decide
 * whether to clear the QUIC fixed bit (RFC 9287 greasing, which it always
 * offers) on everything it sends. With the bit clear a short header's first
 * byte is 0-63 and a shared socket could no longer tell it from STUN or
 * WireGuard (RFC 9443 requires the bit), so during creation the answer is
 * zeros: the bit stays set. Nothing else draws random bytes there. */
static void quic_rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
	struct quic_session *s = ctx->native_handle;

	if (s && s->creating) {
		memset(dest, 0, len);
		return;
	}
	(void)gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

/* A fresh random local connection ID, registered in the demux. */
int quic_make_cid(struct quic_session *s, ngtcp2_cid *cid, size_t len)
{
	for (int tries = 0; tries < 4; tries++) {
		if (gnutls_rnd(GNUTLS_RND_NONCE, cid->data, len) != 0)
			return -1;
		cid->datalen = len;
		if (!s->dmx)
			return 0;
		switch (quic_dmx_add_cid(s, cid->data, len)) {
		case 0: return 0;
		case 1: continue;  /* taken: draw again */
		default: return -1;
		}
	}
	return -1;
}

static int quic_new_cid_cb(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
			   size_t cidlen, void *user_data)
{
	struct quic_session *s = user_data;

	(void)conn;
	if (quic_make_cid(s, cid, cidlen) != 0 ||
	    ngtcp2_crypto_generate_stateless_reset_token(token, s->cfg->reset_secret,
							 sizeof(s->cfg->reset_secret), cid) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int quic_remove_cid_cb(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user_data)
{
	struct quic_session *s = user_data;

	(void)conn;
	if (s->dmx)
		quic_dmx_remove_cid(s, cid->data, cid->datalen);
	return 0;
}

/* For a server, completion is confirmation, and the client's key has been
 * checked by now. */
static int quic_handshake_completed_cb(ngtcp2_conn *conn, void *user_data)
{
	struct quic_session *s = user_data;

	(void)conn;
	if (!s->tls.key_ok)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (s->server)
		quic_set_up(s);
	return 0;
}

/* For a client, only confirmation (HANDSHAKE_DONE) says that the server has
 * accepted our key. */
static int quic_handshake_confirmed_cb(ngtcp2_conn *conn, void *user_data)
{
	struct quic_session *s = user_data;

	(void)conn;
	if (!s->tls.key_ok)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (!s->server && s->state == QUIC_STATE_HANDSHAKE)
		quic_set_up(s);
	return 0;
}

static int quic_recv_datagram_cb(ngtcp2_conn *conn, uint32_t flags,
				 const uint8_t *data, size_t len, void *user_data)
{
	struct quic_session *s = user_data;

	(void)conn;
	(void)flags;
	if (s->state != QUIC_STATE_UP) {
		s->st.dgram_dropped++;
		return 0;
	}
	s->st.dgram_recv++;
	if (s->cfg->ops && s->cfg->ops->datagram)
		s->cfg->ops->datagram(s, data, len);
	return 0;
}

static int quic_recv_stream_cb(ngtcp2_conn *conn, uint32_t flags, int64_t sid,
			       uint64_t offset, const uint8_t *data, size_t len,
			       void *user_data, void *stream_user_data)
{
	struct quic_session *s = user_data;
	uint8_t *p;

	(void)conn;
	(void)flags;
	(void)offset;
	(void)stream_user_data;
	if (sid != s->rx_sid && len) {
		/* The peer's heartbeat stream (session_int.h): read and
		 * forgotten, with the credit given back. */
		ngtcp2_conn_extend_max_stream_offset(s->conn, sid, len);
		ngtcp2_conn_extend_max_offset(s->conn, len);
		return 0;
	}
	if (len == 0)
		return 0;
	if (s->state == QUIC_STATE_UP) {
		quic_stream_deliver(s, data, len);
		return 0;
	}
	/* Early bytes are held, and flow control credit is only given back
	 * once they are delivered, so the peer cannot make this grow past the
	 * stream window. */
	p = realloc(s->rx_early, s->rx_early_len + len);
	if (!p)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	memcpy(p + s->rx_early_len, data, len);
	s->rx_early = p;
	s->rx_early_len += len;
	return 0;
}

static int quic_acked_stream_cb(ngtcp2_conn *conn, int64_t sid, uint64_t offset,
				uint64_t len, void *user_data, void *stream_user_data)
{
	struct quic_session *s = user_data;
	uint64_t end = offset + len;

	(void)conn;
	(void)stream_user_data;
	if (sid != s->tx_sid)
		return 0;
	while (s->tx_head && s->tx_head->off + s->tx_head->len <= end) {
		struct quic_chunk *c = s->tx_head;

		s->tx_head = c->next;
		s->tx_held -= c->len;
		free(c);
	}
	if (!s->tx_head)
		s->tx_tail = NULL;
	return 0;
}

void quic_stream_drop_tx(struct quic_session *s)
{
	while (s->tx_head) {
		struct quic_chunk *c = s->tx_head;

		s->tx_head = c->next;
		free(c);
	}
	s->tx_tail = s->tx_next = NULL;
	s->tx_held = 0;
}

/* Neither side ever ends its control stream: one ending means the peer is
 * broken or going away. */
static int quic_stream_close_cb(ngtcp2_conn *conn, uint32_t flags, int64_t sid,
				uint64_t app_error, void *user_data,
				void *stream_user_data)
{
	struct quic_session *s = user_data;

	(void)conn;
	(void)flags;
	(void)app_error;
	(void)stream_user_data;
	if (sid != s->tx_sid && sid != s->rx_sid)
		return 0;
	if (sid == s->tx_sid) {
		quic_stream_drop_tx(s);
		s->tx_sid = -2;
	}
	quic_session_close(s, 1, "control stream closed");
	return 0;
}

static int quic_path_validation_cb(ngtcp2_conn *conn, uint32_t flags,
				   const ngtcp2_path *path,
				   ngtcp2_path_validation_result res, void *user_data)
{
	struct quic_session *s = user_data;
	struct quic_path p;

	(void)conn;
	(void)flags;
	quic_path_from_ngtcp2(&p, path);
	quic_emit_path(s, res == NGTCP2_PATH_VALIDATION_RESULT_SUCCESS ?
			  QUIC_PATH_VALIDATED : QUIC_PATH_FAILED, &p);
	return 0;
}

/* The peer's connection IDs we send to, with their stateless reset tokens:
 * the demux needs the tokens to recognise a reset. */
static int quic_dcid_status_cb(ngtcp2_conn *conn, int type, uint64_t seq,
			       const ngtcp2_cid *cid, const uint8_t *token,
			       void *user_data)
{
	struct quic_session *s = user_data;

	(void)conn;
	(void)seq;
	(void)cid;
	if (!s->dmx || !token)
		return 0;
	if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_ACTIVATE) {
		if (quic_dmx_add_token(s, token) != 0)
			return NGTCP2_ERR_CALLBACK_FAILURE;
	} else {
		quic_dmx_remove_token(s, token);
	}
	return 0;
}

static int quic_recv_reset_cb(ngtcp2_conn *conn, const ngtcp2_pkt_stateless_reset *sr,
			      void *user_data)
{
	struct quic_session *s = user_data;

	(void)conn;
	(void)sr;
	s->reset_received = true;
	return 0;
}

void quic_callbacks(ngtcp2_callbacks *cb, bool server)
{
	memset(cb, 0, sizeof(*cb));
	if (server) {
		cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
	} else {
		cb->client_initial = ngtcp2_crypto_client_initial_cb;
		cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
	}
	cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
	cb->encrypt = ngtcp2_crypto_encrypt_cb;
	cb->decrypt = ngtcp2_crypto_decrypt_cb;
	cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
	cb->update_key = ngtcp2_crypto_update_key_cb;
	cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
	cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
	cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
	cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
	cb->rand = quic_rand_cb;
	cb->get_new_connection_id = quic_new_cid_cb;
	cb->remove_connection_id = quic_remove_cid_cb;
	cb->handshake_completed = quic_handshake_completed_cb;
	cb->handshake_confirmed = quic_handshake_confirmed_cb;
	cb->recv_datagram = quic_recv_datagram_cb;
	cb->recv_stream_data = quic_recv_stream_cb;
	cb->acked_stream_data_offset = quic_acked_stream_cb;
	cb->stream_close = quic_stream_close_cb;
	cb->path_validation = quic_path_validation_cb;
	cb->recv_stateless_reset = quic_recv_reset_cb;
	cb->dcid_status = quic_dcid_status_cb;
}

/* --- demux entries, tracked per session --- */

int quic_dmx_add_cid(struct quic_session *s, const uint8_t *cid, size_t len)
{
	int rc = quic_demux_add(s->dmx, cid, len, s);

	if (rc != 0)
		return rc;
	if (s->n_dmx_cids < QUIC_DMX_TRACK && len <= NGTCP2_MAX_CIDLEN) {
		struct quic_dmx_cid *e = &s->dmx_cids[s->n_dmx_cids++];
		e->len = (uint8_t)len;
		memcpy(e->data, cid, len);
	} else {
		s->dmx_overflow = true;
	}
	return 0;
}

void quic_dmx_remove_cid(struct quic_session *s, const uint8_t *cid, size_t len)
{
	quic_demux_remove(s->dmx, cid, len, s);
	for (unsigned i = 0; i < s->n_dmx_cids; i++) {
		if (s->dmx_cids[i].len == len && !memcmp(s->dmx_cids[i].data, cid, len)) {
			s->dmx_cids[i] = s->dmx_cids[--s->n_dmx_cids];
			return;
		}
	}
}

int quic_dmx_add_token(struct quic_session *s, const uint8_t *token)
{
	if (quic_demux_add_token(s->dmx, token, s) != 0)
		return -1;
	if (s->n_dmx_tokens < QUIC_DMX_TRACK)
		memcpy(s->dmx_tokens[s->n_dmx_tokens++], token, NGTCP2_STATELESS_RESET_TOKENLEN);
	else
		s->dmx_overflow = true;
	return 0;
}

void quic_dmx_remove_token(struct quic_session *s, const uint8_t *token)
{
	quic_demux_remove_token(s->dmx, token, s);
	for (unsigned i = 0; i < s->n_dmx_tokens; i++) {
		if (!memcmp(s->dmx_tokens[i], token, NGTCP2_STATELESS_RESET_TOKENLEN)) {
			memcpy(s->dmx_tokens[i], s->dmx_tokens[--s->n_dmx_tokens],
			       NGTCP2_STATELESS_RESET_TOKENLEN);
			return;
		}
	}
}

void quic_dmx_release(struct quic_session *s)
{
	while (s->n_dmx_cids) {
		struct quic_dmx_cid *e = &s->dmx_cids[--s->n_dmx_cids];
		quic_demux_remove(s->dmx, e->data, e->len, s);
	}
	while (s->n_dmx_tokens)
		quic_demux_remove_token(s->dmx, s->dmx_tokens[--s->n_dmx_tokens], s);
	if (s->dmx_overflow)
		quic_demux_forget(s->dmx, s);
}
