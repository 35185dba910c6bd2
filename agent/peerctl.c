/* A peer session's control stream: the few rdvmsg frames peers exchange
 * directly (NATINFO; DIALREQ and DIALRESP when one offers AutoNAT). The
 * messages are small and rare, so they are read byte by byte into a
 * buffer of the largest one; a frame that cannot be read, or of a type
 * that has no business here, ends the reading for good: the stream has no
 * resynchronisation point, and the session's data does not depend on it. */
#include <string.h>

#include "agent/agent.h"
#include "agent/log.h"
#include "agent/pathmgr.h"

_Static_assert(sizeof(((struct conn *)0)->prx) >= RDVMSG_HEADER_LEN + 9 + RDVMSG_MAX_DIAL * 20,
	       "the peer's control stream buffer must hold a DIALREQ of IPv6 addresses");

bool peerctl_send(struct peer *p, const struct rdvmsg *m)
{
	uint8_t buf[sizeof(((struct conn *)0)->prx)];
	size_t n;

	if (!p || !p->conn || !quic_session_is_up(p->conn->s))
		return false;
	n = rdvmsg_encode(m, buf, sizeof(buf));
	if (!n || quic_session_stream_send(p->conn->s, buf, n) != 0)
		return false;
	conn_mark(p->conn);
	return true;
}

/* Acts on one whole frame; NULL, or why it cannot be taken. */
static const char *take(struct peer *p, const uint8_t *buf, size_t len)
{
	static struct rdvmsg m;
	const char *why = "malformed";

	if (!rdvmsg_decode(&m, buf, len, &why))
		return why;
	switch (m.type) {
	case RDVMSG_NATINFO:
		pathmgr_natinfo(p, &m.natinfo);
		return NULL;
	case RDVMSG_DIALREQ:
		peer_autonat_request(p, &m.dialreq);
		return NULL;
	case RDVMSG_DIALRESP:
		autonat_peer_dialresp(p, &m.dialresp);
		return NULL;
	}
	return "a rendezvous message on a peer session";
}

void peerctl_stream(struct conn *c, const uint8_t *data, size_t len)
{
	const char *why = NULL;
	ssize_t f;

	for (; len && !c->prx_bad; data++, len--) {
		c->prx[c->prx_len++] = *data;
		f = rdvmsg_frame(c->prx, c->prx_len, NULL, &why);
		if (f == 0 && c->prx_len < sizeof(c->prx))
			continue;
		if (f == 0)
			why = "a frame longer than any peer message";
		else if (f > 0 && !(why = take(c->peer, c->prx, (size_t)f))) {
			c->prx_len = 0;
			continue;
		}
		c->prx_bad = true;
		log_warn("%s: peer %s: unreadable control stream (%s); ignored from now on",
			 c->a->cfg->name, c->peer->name, why ? why : "bad frame");
		return;
	}
}
