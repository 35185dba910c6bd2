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
 * The socket is read only to be drained: nobody should write to it. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "agent/log.h"
#include "agent/rendezvous.h"
#include "agent/udp.h"

static void on_readable(void *arg, uint32_t events)
{
	struct rdv_server *sv = arg;
	uint8_t buf[64];
	struct udp_msg m = { .buf = buf, .cap = sizeof(buf) };

	(void)events;
	for (int i = 0; i < 64 && udp_recv(sv->dial_fd, &m, 1) == 1; i++)
		sv->dial_rx_dropped++;
}

int rdv_autonat_open(struct agent *a)
{
	const struct config_rendezvous *rc = &a->cfg->rdv;
	struct rdv_server *sv = a->rdvsrv;
	struct na_endpoint ep = { .port = 0 };
	int fd, err;

	sv->dial_fd = -1;
	autonat_server_init(&sv->an, 0, loop_now());
	if (!rc->has_alternate)
		return 0;
	ep.ip = rc->alternate.ip;
	fd = udp_open(&ep);
	if (fd < 0)
		return fd;
	if (udp_local(fd, &sv->dial_from) < 0 ||
	    (err = loop_add_fd(a->loop, fd, EPOLLIN, on_readable, sv)) < 0) {
		close(fd);
		return -EIO;
	}
	sv->dial_fd = fd;
	autonat_server_init(&sv->an, ep.ip.family, loop_now());
	return 0;
}

void rdv_autonat_close(struct agent *a)
{
	struct rdv_server *sv = a->rdvsrv;

	if (!sv || sv->dial_fd < 0)
		return;
	loop_del_fd(a->loop, sv->dial_fd);
	close(sv->dial_fd);
	sv->dial_fd = -1;
}

void rdv_autonat_request(struct conn *c, struct tbucket *limit, const struct rdvmsg_dialreq *m)
{
	struct rdv_server *sv = c->a->rdvsrv;
	static struct rdvmsg r;
	struct na_endpoint observed;
	uint8_t buf[RDVMSG_HEADER_LEN + 9 + RDVMSG_MAX_DIAL], db[AUTONAT_DIALBACK_LEN];
	char obs[NA_ENDPOINT_STRLEN], what[RDVMSG_MAX_DIAL * 96] = "";
	size_t n, used = 0;

	na_endpoint_from_sockaddr(&observed,
				  (const struct sockaddr *)&quic_session_path(c->s)->remote);
	memset(&r, 0, sizeof(r));
	r.type = RDVMSG_DIALRESP;
	autonat_server_decide(&sv->an, limit, &observed.ip, m, loop_now(), &r.dialresp);
	/* The dial-backs first: they need not wait for the turn's end, and
	 * may arrive before the DIALRESP does (the client allows for it). */
	for (unsigned i = 0; i < r.dialresp.count; i++) {
		char ep[NA_ENDPOINT_STRLEN];
		uint8_t txid[12];

		if (r.dialresp.status[i] == RDVMSG_DIAL_DIALED) {
			if (gnutls_rnd(GNUTLS_RND_NONCE, txid, sizeof(txid)) != 0 ||
			    !autonat_dialback_build(db, sizeof(db), txid, m->nonce, (uint8_t)i) ||
			    udp_send(sv->dial_fd, db, sizeof(db), &m->addr[i], NULL, 0) < 0)
				sv->dial_send_failed++;
		}
		used += (size_t)snprintf(what + used, sizeof(what) - used, "%s%s %s",
					 i ? ", " : "", na_endpoint_str(&m->addr[i], ep, sizeof(ep)),
					 rdvmsg_dial_status_name(r.dialresp.status[i]));
	}
	n = rdvmsg_encode(&r, buf, sizeof(buf));
	if (n && quic_session_stream_send(c->s, buf, n) == 0)
		conn_mark(c);
	log_debug("%s: rendezvous: DIALREQ from a peer seen as %s: %s", c->a->cfg->name,
		  na_endpoint_str(&observed, obs, sizeof(obs)), m->count ? what : "nothing asked");
}
