/* A QUIC session's life: creation as client or server, input, timers,
 * closing and draining, and why it ended. */
#include "quic/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "quic/demux.h"
#include "quic/session_int.h"

const char *quic_strerror(int err)
{
	switch (err) {
	case QUIC_OK: return "success";
	case QUIC_ERR_NOMEM: return "out of memory";
	case QUIC_ERR_INVAL: return "invalid argument";
	case QUIC_ERR_STATE: return "not possible in this session state";
	case QUIC_ERR_DGRAM_TOO_BIG: return "datagram does not fit the path";
	case QUIC_ERR_DGRAM_FULL: return "datagram queue full";
	case QUIC_ERR_NOBUF: return "control stream buffer full";
	case QUIC_ERR_NO_CID: return "no spare connection ID";
	case QUIC_ERR_CLOSED: return "session closed";
	case QUIC_ERR_TLS: return "TLS setup failed";
	}
	return "unknown error";
}

/* --- creation --- */

/* NATAGENT_QUIC_LOG=1: ngtcp2's own trace on stderr, for a developer
 * chasing a path validation or a loss; far too much for a log. */
static void ngtcp2_trace(void *user, const char *fmt, ...)
{
	va_list ap;

	(void)user;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void quic_settings(ngtcp2_settings *st, ngtcp2_transport_params *tp,
			  struct quic_session *s, uint64_t now)
{
	const struct quic_config *cfg = s->cfg;
	const char *trace = getenv("NATAGENT_QUIC_LOG");

	ngtcp2_settings_default(st);
	if (trace && *trace == '1')
		st->log_printf = ngtcp2_trace;
	st->initial_ts = now;
	st->initial_rtt = QUIC_INITIAL_RTT;
	st->max_tx_udp_payload_size = QUIC_MAX_PKT;
	st->handshake_timeout = cfg->handshake_timeout ? cfg->handshake_timeout
						       : QUIC_DEFAULT_HANDSHAKE;
	st->rand_ctx.native_handle = s;

	ngtcp2_transport_params_default(tp);
	tp->initial_max_data = QUIC_STREAM_WINDOW;
	tp->initial_max_stream_data_uni = QUIC_STREAM_WINDOW;
	tp->initial_max_streams_uni = 2;   /* the peer's control and heartbeat streams */
	tp->initial_max_streams_bidi = 0;
	tp->max_idle_timeout = cfg->idle_timeout ? cfg->idle_timeout : QUIC_DEFAULT_IDLE;
	tp->active_connection_id_limit = QUIC_CID_LIMIT;
	tp->max_datagram_frame_size = QUIC_MAX_DGRAM_FRAME;
}

static struct quic_session *quic_session_alloc(const struct quic_config *cfg,
					       struct quic_demux *dmx, bool server,
					       const struct quic_path *path, int *err)
{
	struct quic_session *s;

	if (!cfg || !cfg->cred || !quic_path_ok(path)) {
		*err = QUIC_ERR_INVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		*err = QUIC_ERR_NOMEM;
		return NULL;
	}
	s->cfg = cfg;
	s->dmx = dmx;
	s->server = server;
	s->state = QUIC_STATE_HANDSHAKE;
	s->cur = *path;
	s->tx_sid = -1;
	s->hb_sid = -1;
	s->rx_sid = server ? 2 : 3;  /* the peer's first unidirectional stream */
	return s;
}

static struct quic_session *quic_session_started(struct quic_session *s, int rv, int *err)
{
	if (rv != 0) {
		quic_session_free(s);
		*err = rv == NGTCP2_ERR_NOMEM ? QUIC_ERR_NOMEM : QUIC_ERR_INVAL;
		return NULL;
	}
	ngtcp2_conn_set_tls_native_handle(s->conn, s->tls.gs);
	if (s->cfg->keepalive)
		ngtcp2_conn_set_keep_alive_timeout(s->conn, s->cfg->keepalive);
	*err = QUIC_OK;
	return s;
}

void quic_session_set_keepalive(struct quic_session *s, uint64_t keepalive)
{
	ngtcp2_conn_set_keep_alive_timeout(s->conn, keepalive);
}

struct quic_session *quic_session_client_new(const struct quic_config *cfg,
					     struct quic_demux *dmx,
					     const struct quic_path *path,
					     const uint8_t peer_key[QUIC_KEY_LEN],
					     void *user, uint64_t now, int *err)
{
	struct quic_session *s;
	ngtcp2_callbacks cb;
	ngtcp2_settings st;
	ngtcp2_transport_params tp;
	ngtcp2_path np;
	ngtcp2_cid dcid, scid;
	int rv;

	if (!peer_key) {
		*err = QUIC_ERR_INVAL;
		return NULL;
	}
	s = quic_session_alloc(cfg, dmx, false, path, err);
	if (!s)
		return NULL;
	s->user = user;
	if (quic_tls_session_init(&s->tls, cfg->cred, false, peer_key, NULL, NULL,
				  quic_get_conn, s) != 0) {
		quic_session_free(s);
		*err = QUIC_ERR_TLS;
		return NULL;
	}
	dcid.datalen = QUIC_CID_LEN;
	if (gnutls_rnd(GNUTLS_RND_NONCE, dcid.data, dcid.datalen) != 0 ||
	    quic_make_cid(s, &scid, QUIC_CID_LEN) != 0) {
		quic_session_free(s);
		*err = QUIC_ERR_NOMEM;
		return NULL;
	}
	quic_callbacks(&cb, false);
	quic_settings(&st, &tp, s, now);
	quic_path_to_ngtcp2(&np, path);
	s->creating = true;
	rv = ngtcp2_conn_client_new(&s->conn, &dcid, &scid, &np, NGTCP2_PROTO_VER_V1,
				    &cb, &st, &tp, NULL, s);
	s->creating = false;
	return quic_session_started(s, rv, err);
}

struct quic_session *quic_session_server_new(const struct quic_config *cfg,
					     struct quic_demux *dmx,
					     const uint8_t *pkt, size_t len,
					     const struct quic_path *path,
					     uint64_t now, int *err)
{
	struct quic_session *s;
	ngtcp2_callbacks cb;
	ngtcp2_settings st;
	ngtcp2_transport_params tp;
	ngtcp2_path np;
	ngtcp2_pkt_hd hd;
	ngtcp2_cid scid;
	int rv;

	if (ngtcp2_accept(&hd, pkt, len) != 0 || hd.version != NGTCP2_PROTO_VER_V1) {
		*err = QUIC_ERR_INVAL;
		return NULL;
	}
	s = quic_session_alloc(cfg, dmx, true, path, err);
	if (!s)
		return NULL;
	if (quic_tls_session_init(&s->tls, cfg->cred, true, NULL, cfg->accept_key,
				  cfg->accept_arg, quic_get_conn, s) != 0) {
		quic_session_free(s);
		*err = QUIC_ERR_TLS;
		return NULL;
	}
	if (quic_make_cid(s, &scid, QUIC_CID_LEN) != 0 ||
	    (dmx && quic_dmx_add_cid(s, hd.dcid.data, hd.dcid.datalen) != 0)) {
		/* The client's chosen DCID routes its Initials until it
		 * switches to ours. */
		quic_session_free(s);
		*err = QUIC_ERR_NOMEM;
		return NULL;
	}
	if (dmx) {
		quic_demux_server_count(dmx, +1);
		s->hs_bucket = quic_demux_handshake_begin(dmx, &path->remote);
		s->counted = true;
		s->hs_counted = true;
	}
	quic_callbacks(&cb, true);
	quic_settings(&st, &tp, s, now);
	tp.original_dcid = hd.dcid;
	tp.stateless_reset_token_present = 1;
	if (ngtcp2_crypto_generate_stateless_reset_token(tp.stateless_reset_token,
							 cfg->reset_secret,
							 sizeof(cfg->reset_secret),
							 &scid) != 0) {
		quic_session_free(s);
		*err = QUIC_ERR_NOMEM;
		return NULL;
	}
	quic_path_to_ngtcp2(&np, path);
	s->creating = true;
	rv = ngtcp2_conn_server_new(&s->conn, &hd.scid, &scid, &np, hd.version,
				    &cb, &st, &tp, NULL, s);
	s->creating = false;
	return quic_session_started(s, rv, err);
}

void quic_session_free(struct quic_session *s)
{
	if (!s)
		return;
	if (s->dmx) {
		quic_dmx_release(s);
		if (s->counted)
			quic_demux_server_count(s->dmx, -1);
		if (s->hs_counted)
			quic_demux_handshake_end(s->dmx, s->hs_bucket);
		s->dmx = NULL;
	}
	ngtcp2_conn_del(s->conn);
	quic_tls_session_deinit(&s->tls);
	quic_stream_drop_tx(s);
	free(s->rx_early);
	for (unsigned i = 0; i < QUIC_DGRAM_QUEUE; i++)
		free(s->dq[i].buf);
	free(s->close_pkt);
	free(s);
}

/* --- closing --- */

static void quic_set_reason(struct quic_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void quic_set_reason(struct quic_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->reason[0])
		return;  /* the first cause is the one worth logging */
	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
}

static void quic_kill(struct quic_session *s)
{
	s->state = QUIC_STATE_DEAD;
	s->close_pending = false;
}

/* Writes the CONNECTION_CLOSE packet now and keeps it for write (and for
 * answering the peer while closing). */
void quic_enter_closing(struct quic_session *s,
			const ngtcp2_connection_close_error *ce, uint64_t now)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi = { 0 };
	ngtcp2_ssize n;

	if (!s->close_pkt)
		s->close_pkt = malloc(QUIC_MAX_PKT);
	if (!s->close_pkt) {
		quic_kill(s);
		return;
	}
	ngtcp2_path_storage_zero(&ps);
	n = ngtcp2_conn_write_connection_close(s->conn, &ps.path, &pi, s->close_pkt,
					       QUIC_MAX_PKT, ce, now);
	if (n <= 0) {
		quic_kill(s);
		return;
	}
	s->close_len = (size_t)n;
	quic_path_from_ngtcp2(&s->close_tx.path, &ps.path);
	s->close_tx.ecn = (uint8_t)pi.ecn;
	s->close_pending = true;
	s->state = QUIC_STATE_CLOSING;
	s->deadline = now + 3 * ngtcp2_conn_get_pto(s->conn);
}

static void quic_enter_draining(struct quic_session *s, uint64_t now)
{
	s->state = QUIC_STATE_DRAINING;
	s->deadline = now + 3 * ngtcp2_conn_get_pto(s->conn);
}

/* RFC 9000 section 20.1. */
static const char *quic_transport_error_name(uint64_t code)
{
	static const char *const names[] = {
		"no error", "internal error", "connection refused", "flow control error",
		"stream limit error", "stream state error", "final size error",
		"frame encoding error", "transport parameter error",
		"connection id limit error", "protocol violation", "invalid token",
		"application error", "crypto buffer exceeded", "key update error",
		"aead limit reached", "no viable path",
	};

	return code < sizeof(names) / sizeof(names[0]) ? names[code] : "unknown";
}

/* The peer's CONNECTION_CLOSE, in words. */
static void quic_reason_from_peer(struct quic_session *s)
{
	ngtcp2_connection_close_error ce;
	char phrase[80] = "";
	size_t n = 0;

	ngtcp2_conn_get_connection_close_error(s->conn, &ce);
	if (ce.reason && ce.reasonlen) {
		n = (size_t)snprintf(phrase, sizeof(phrase), ": \"");
		for (size_t i = 0; i < ce.reasonlen && n < sizeof(phrase) - 2; i++) {
			uint8_t c = ce.reason[i];
			phrase[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		phrase[n++] = '"';
		phrase[n] = 0;
	}
	if (ce.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION)
		quic_set_reason(s, "peer closed: application error %llu%s",
				(unsigned long long)ce.error_code, phrase);
	else if ((ce.error_code & ~0xffULL) == NGTCP2_CRYPTO_ERROR)
		quic_set_reason(s, "peer closed: TLS alert %u (%s)%s",
				(unsigned)(ce.error_code & 0xff),
				quic_tls_alert_name((uint8_t)ce.error_code), phrase);
	else if (ce.error_code == NGTCP2_NO_ERROR)
		quic_set_reason(s, "peer closed%s", phrase);
	else
		quic_set_reason(s, "peer closed: transport error 0x%llx (%s)%s",
				(unsigned long long)ce.error_code,
				quic_transport_error_name(ce.error_code), phrase);
}

/* Maps a fatal ngtcp2 error to a reason and the next state. */
int quic_fail(struct quic_session *s, int liberr, uint64_t now)
{
	ngtcp2_connection_close_error ce;
	uint8_t alert;

	ngtcp2_connection_close_error_default(&ce);
	switch (liberr) {
	case NGTCP2_ERR_DRAINING:
		if (s->reset_received)
			quic_set_reason(s, "peer restarted (stateless reset)");
		else
			quic_reason_from_peer(s);
		quic_enter_draining(s, now);
		break;
	case NGTCP2_ERR_CLOSING:
		quic_set_reason(s, "closing");
		quic_kill(s);
		break;
	case NGTCP2_ERR_IDLE_CLOSE:
		quic_set_reason(s, "idle timeout");
		quic_kill(s);
		break;
	case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
		quic_set_reason(s, "handshake timed out");
		quic_kill(s);
		break;
	case NGTCP2_ERR_DROP_CONN:
		quic_set_reason(s, "connection dropped");
		quic_kill(s);
		break;
	case NGTCP2_ERR_RECV_VERSION_NEGOTIATION:
		quic_set_reason(s, "peer does not speak QUIC v1");
		quic_kill(s);
		break;
	case NGTCP2_ERR_CRYPTO:
		alert = ngtcp2_conn_get_tls_alert(s->conn);
		if (s->tls.reason[0])
			quic_set_reason(s, "%s", s->tls.reason);
		else
			quic_set_reason(s, "TLS handshake failed: sent alert %u (%s)",
					alert, quic_tls_alert_name(alert));
		ngtcp2_connection_close_error_set_transport_error_tls_alert(&ce, alert, NULL, 0);
		quic_enter_closing(s, &ce, now);
		break;
	default:
		quic_set_reason(s, "QUIC error: %s", ngtcp2_strerror(liberr));
		ngtcp2_connection_close_error_set_transport_error_liberr(&ce, liberr, NULL, 0);
		quic_enter_closing(s, &ce, now);
		break;
	}
	return QUIC_ERR_CLOSED;
}

void quic_session_close(struct quic_session *s, uint64_t app_error, const char *why)
{
	if (s->state >= QUIC_STATE_CLOSING || s->close_requested)
		return;
	s->close_requested = true;
	s->close_code = app_error;
	snprintf(s->close_phrase, sizeof(s->close_phrase), "%s", why ? why : "");
	if (why && *why)
		quic_set_reason(s, "closed locally: %s", why);
	else
		quic_set_reason(s, "closed locally");
}

/* --- input --- */

int quic_session_read(struct quic_session *s, const uint8_t *pkt, size_t len,
		      const struct quic_path *path, uint8_t ecn, uint64_t now)
{
	ngtcp2_path np;
	ngtcp2_pkt_info pi = { .ecn = ecn & NGTCP2_ECN_MASK };
	int rv;

	switch (s->state) {
	case QUIC_STATE_CLOSING:
		s->closing_rx++;
		if ((s->closing_rx & (s->closing_rx - 1)) == 0)
			s->close_pending = true;
		return QUIC_ERR_CLOSED;
	case QUIC_STATE_DRAINING:
	case QUIC_STATE_DEAD:
		return QUIC_ERR_CLOSED;
	default:
		break;
	}
	if (!quic_path_ok(path))
		return QUIC_ERR_INVAL;
	quic_path_to_ngtcp2(&np, path);
	rv = ngtcp2_conn_read_pkt(s->conn, &np, &pi, pkt, len, now);
	if (rv != 0)
		return quic_fail(s, rv, now);
	quic_check_path(s);
	return 0;
}

uint64_t quic_session_expiry(struct quic_session *s)
{
	switch (s->state) {
	case QUIC_STATE_CLOSING:
	case QUIC_STATE_DRAINING:
		return s->deadline;
	case QUIC_STATE_DEAD:
		return 0;
	default:
		return s->close_requested ? 0 : ngtcp2_conn_get_expiry(s->conn);
	}
}

int quic_session_handle_expiry(struct quic_session *s, uint64_t now)
{
	int rv;

	switch (s->state) {
	case QUIC_STATE_CLOSING:
	case QUIC_STATE_DRAINING:
		if (now >= s->deadline)
			quic_kill(s);
		return QUIC_ERR_CLOSED;
	case QUIC_STATE_DEAD:
		return QUIC_ERR_CLOSED;
	default:
		break;
	}
	rv = ngtcp2_conn_handle_expiry(s->conn, now);
	if (rv != 0)
		return quic_fail(s, rv, now);
	quic_check_path(s);
	return 0;
}

/* --- accessors --- */

enum quic_state quic_session_state(const struct quic_session *s) { return s->state; }
bool quic_session_is_up(const struct quic_session *s) { return s->state == QUIC_STATE_UP; }
bool quic_session_is_dead(const struct quic_session *s) { return s->state == QUIC_STATE_DEAD; }
bool quic_session_is_server(const struct quic_session *s) { return s->server; }
const char *quic_session_reason(const struct quic_session *s) { return s->reason; }
const struct quic_path *quic_session_path(const struct quic_session *s) { return &s->cur; }
void quic_session_set_user(struct quic_session *s, void *user) { s->user = user; }
void *quic_session_user(const struct quic_session *s) { return s->user; }

const uint8_t *quic_session_peer_key(const struct quic_session *s)
{
	return s->was_up && s->tls.key_ok ? s->tls.peer_key : NULL;
}

void quic_session_get_stats(struct quic_session *s, struct quic_session_stats *st)
{
	ngtcp2_conn_stat cs;

	*st = s->st;
	ngtcp2_conn_get_conn_stat(s->conn, &cs);
	st->smoothed_rtt = cs.smoothed_rtt;
	st->pto_count = cs.pto_count;
	st->bytes_in_flight = cs.bytes_in_flight;
	st->path_max_udp = ngtcp2_conn_get_path_max_tx_udp_payload_size(s->conn);
}
