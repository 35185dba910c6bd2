/* See autonat_dialer.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "agent/autonat_dialer.h"
#include "agent/udp.h"

static void on_readable(void *arg, uint32_t events)
{
	struct autonat_dialer *d = arg;
	uint8_t buf[64];
	struct udp_msg m = { .buf = buf, .cap = sizeof(buf) };

	(void)events;
	for (int i = 0; i < 64 && udp_recv(d->fd, &m, 1) == 1; i++)
		d->rx_dropped++;
}

void autonat_dialer_init(struct autonat_dialer *d, struct loop *loop)
{
	memset(d, 0, sizeof(*d));
	d->loop = loop;
	d->fd = -1;
	autonat_server_init(&d->an, 0, loop_now());
}

int autonat_dialer_open(struct autonat_dialer *d, const struct na_ip *ip)
{
	struct na_endpoint ep = { .ip = *ip, .port = 0 };
	int fd, err;

	fd = udp_open(&ep);
	if (fd < 0)
		return fd;
	if (udp_local(fd, &d->from) < 0) {
		close(fd);
		return -EIO;
	}
	err = loop_add_fd(d->loop, fd, EPOLLIN, on_readable, d);
	if (err < 0) {
		close(fd);
		return err;
	}
	d->fd = fd;
	autonat_server_init(&d->an, ip->family, loop_now());
	return 0;
}

void autonat_dialer_close(struct autonat_dialer *d)
{
	if (d->fd < 0)
		return;
	loop_del_fd(d->loop, d->fd);
	close(d->fd);
	d->fd = -1;
}

void autonat_dialer_answer(struct autonat_dialer *d, struct tbucket *limit,
			   const struct na_ip *observed, const struct rdvmsg_dialreq *req,
			   struct rdvmsg_dialresp *resp, char *what, size_t cap)
{
	uint8_t db[AUTONAT_DIALBACK_LEN], txid[12];
	size_t used = 0;

	autonat_server_decide(&d->an, limit, observed, req, loop_now(), resp);
	if (cap)
		what[0] = '\0';
	/* The dial-backs go before the DIALRESP: they need not wait for the
	 * session's turn, and the client allows for their coming first. */
	for (unsigned i = 0; i < resp->count; i++) {
		char ep[NA_ENDPOINT_STRLEN];
		int n;

		if (resp->status[i] == RDVMSG_DIAL_DIALED &&
		    (gnutls_rnd(GNUTLS_RND_NONCE, txid, sizeof(txid)) != 0 ||
		     !autonat_dialback_build(db, sizeof(db), txid, req->nonce, (uint8_t)i) ||
		     udp_send(d->fd, db, sizeof(db), &req->addr[i], NULL, 0) < 0))
			d->send_failed++;
		if (used >= cap)
			continue;
		n = snprintf(what + used, cap - used, "%s%s %s", i ? ", " : "",
			     na_endpoint_str(&req->addr[i], ep, sizeof(ep)),
			     rdvmsg_dial_status_name(resp->status[i]));
		used += n > 0 ? (size_t)n : 0;
	}
	if (!resp->count && cap)
		snprintf(what, cap, "nothing asked");
}
