/* AutoNATService = true: this agent checks its peers' reachability, as the
 * rendezvous does, over each peer's own session. For a fleet whose
 * rendezvous has no second address, or to ask a host one trusts more.
 *
 * The dial-backs leave from a port of our own that no peer is told of, on
 * our own address (a peer has no second one): a port-restricted NAT in
 * front of the requester holds holes only for the address and port it
 * sent to, so they get in only where anyone could. A NAT that filters by
 * address alone lets them in, as it does the rendezvous's from A2 once
 * the client sent there (README, "AutoNAT").
 *
 * The requester is known by its session's path: through the relay that
 * is not its address, and nat/autonat's policy then refuses every address
 * as not the requester's. Without the service every request is answered
 * "unavailable", so a peer that asks anyway learns to stop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/autonat_dialer.h"
#include "agent/log.h"

int peer_autonat_open(struct agent *a)
{
	struct na_ip any = { .family = AF_INET };
	int err;

	if (!a->cfg->autonat_service)
		return 0;
	a->peer_dial = calloc(1, sizeof(*a->peer_dial));
	if (!a->peer_dial)
		return -ENOMEM;
	autonat_dialer_init(a->peer_dial, a->loop);
	err = autonat_dialer_open(a->peer_dial, &any);
	if (err < 0)
		return err;
	return 0;
}

void peer_autonat_close(struct agent *a)
{
	if (!a->peer_dial)
		return;
	autonat_dialer_close(a->peer_dial);
	free(a->peer_dial);
	a->peer_dial = NULL;
}

void peer_autonat_request(struct peer *p, const struct rdvmsg_dialreq *m)
{
	struct agent *a = p->a;
	static struct rdvmsg r;
	static struct autonat_dialer none;
	struct na_endpoint observed;
	char obs[NA_ENDPOINT_STRLEN], what[RDVMSG_MAX_DIAL * 96];

	na_endpoint_from_sockaddr(&observed,
				  (const struct sockaddr *)&quic_session_path(p->conn->s)->remote);
	memset(&r, 0, sizeof(r));
	r.type = RDVMSG_DIALRESP;
	if (!a->peer_dial)
		autonat_dialer_init(&none, a->loop);
	autonat_dialer_answer(a->peer_dial ? a->peer_dial : &none, &p->autonat_limit, &observed.ip,
			      m, &r.dialresp, what, sizeof(what));
	if (!peerctl_send(p, &r))
		log_debug("%s: peer %s: cannot answer its DIALREQ: the session is full or down",
			  a->cfg->name, p->name);
	log_debug("%s: peer %s (seen as %s) asked to be dialed back: %s", a->cfg->name, p->name,
		  na_endpoint_str(&observed, obs, sizeof(obs)), what);
}
