/* The rendezvous's AutoNAT service: it answers a registered peer's
 * DIALREQ by nat/autonat's policy and sends each dial-back from a socket of
 * its own on AlternateListen's IP.
 *
 * Why not from AlternateListen's own socket (A2:P2), or any of the STUN
 * service's: those are addresses clients are told of and send to from
 * their shared port (RFC 5780's mapping tests go to A2:P1 and A2:P2, a
 * STUN = line may name them), and a port-restricted NAT then holds a hole
 * from exactly there, so it would pass for public (the namespace test
 * finds such a hole from A2:P1; clients that run test III regardless leave
 * one from A2:P2). Nobody is told of this socket's port (the
 * kernel picks it), so only a NAT that lets strangers in passes its
 * dial-backs. (A NAT that filters by address alone still lets one in once
 * the client sent anything to A2; see README.)
 *
 * The socket and the policy are autonat_dialer.c's. */
#include <string.h>

#include "agent/log.h"
#include "agent/rendezvous.h"

int rdv_autonat_open(struct agent *a)
{
	const struct config_rendezvous *rc = &a->cfg->rdv;

	autonat_dialer_init(&a->rdvsrv->dial, a->loop);
	return rc->has_alternate ? autonat_dialer_open(&a->rdvsrv->dial, &rc->alternate.ip) : 0;
}

void rdv_autonat_close(struct agent *a)
{
	if (a->rdvsrv)
		autonat_dialer_close(&a->rdvsrv->dial);
}

void rdv_autonat_request(struct conn *c, struct tbucket *limit, const struct rdvmsg_dialreq *m)
{
	struct rdv_server *sv = c->a->rdvsrv;
	static struct rdvmsg r;
	struct na_endpoint observed;
	uint8_t buf[RDVMSG_HEADER_LEN + 9 + RDVMSG_MAX_DIAL];
	char obs[NA_ENDPOINT_STRLEN], what[RDVMSG_MAX_DIAL * 96];
	size_t n;

	na_endpoint_from_sockaddr(&observed,
				  (const struct sockaddr *)&quic_session_path(c->s)->remote);
	memset(&r, 0, sizeof(r));
	r.type = RDVMSG_DIALRESP;
	autonat_dialer_answer(&sv->dial, limit, &observed.ip, m, &r.dialresp, what, sizeof(what));
	n = rdvmsg_encode(&r, buf, sizeof(buf));
	if (n && quic_session_stream_send(c->s, buf, n) == 0)
		conn_mark(c);
	log_debug("%s: rendezvous: DIALREQ from a peer seen as %s: %s", c->a->cfg->name,
		  na_endpoint_str(&observed, obs, sizeof(obs)), what);
}
