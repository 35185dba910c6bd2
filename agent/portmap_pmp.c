/* PCP and NAT-PMP for the port-mapping manager: nat/pmp.c's requests on a
 * socket connected to the default gateway's port 5351, its announcements
 * on a second socket on port 5350 (the all-hosts group), its deadline on a
 * loop timer. PCP and NAT-PMP are one attempt: nat/pmp.c falls back from
 * the one to the other, so the outcome lands on whichever it spoke. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/keys.h"
#include "agent/log.h"
#include "agent/portmap.h"
#include "nat/pmp.h"

/* A mapping that could not be regained is asked for again after this. */
#define LOST_RETRY (30ull * 1000000000ull)
/* The delete on exit: nat/pmp.c gives up on it by itself within 1.75 s. */
#define DELETE_WAIT_MS 2000

struct pm_pmp {
	struct pmp core;
	bool started;
	int fd;           /* connected to gateway:5351 */
	int ann_fd;       /* port 5350, 224.0.0.1; -1 if it could not be had */
	struct na_ip gateway, client;
	struct loop_timer timer, lost_retry;
};

static enum portmap_proto proto_of(enum pmp_proto p)
{
	return p == PMP_PROTO_NATPMP ? PORTMAP_NATPMP : PORTMAP_PCP;
}

/* The IPv4 default route's gateway, from the kernel's route table. */
static int default_gateway(struct na_ip *gw)
{
	char line[256];
	FILE *f = fopen("/proc/net/route", "r");
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char ifname[32];
		unsigned dst, via, flags, mask;

		if (sscanf(line, "%31s %x %x %x %*d %*d %*d %x", ifname, &dst, &via, &flags,
			   &mask) != 5)
			continue;
		/* RTF_UP | RTF_GATEWAY, destination and mask 0. */
		if (dst || mask || (flags & 0x3) != 0x3)
			continue;
		memset(gw, 0, sizeof(*gw));
		gw->family = AF_INET;
		memcpy(gw->v4, &via, 4); /* the file prints it in network order's bytes */
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

static void run(struct portmap *pm);

static void finish_state(struct portmap *pm)
{
	struct pm_pmp *q = pm->pmp;
	const char *why = pmp_reason(&q->core);
	enum portmap_proto p = proto_of(q->core.proto);

	switch (pmp_state(&q->core)) {
	case PMP_FAILED:
		/* One attempt for both: each protocol allowed failed with it. */
		for (unsigned i = 0; i < PORTMAP_COUNT; i++)
			if (i != PORTMAP_UPNP && pm->e[i].state == PMAP_TRYING)
				portmap_failed(pm, i, why ? why : "no answer from the gateway");
		break;
	case PMP_LOST:
		if (pm->e[p].state == PMAP_MAPPED)
			portmap_lost(pm, p, why ? why : "not regained");
		if (!loop_timer_armed(&q->lost_retry))
			loop_timer_set(pm->a->loop, &q->lost_retry, loop_now() + LOST_RETRY);
		break;
	default:
		break;
	}
}

static void send_due(struct pm_pmp *q, uint64_t now)
{
	uint8_t buf[PMP_MAX_MSG];
	size_t n;

	while ((n = pmp_next(&q->core, now, buf, sizeof(buf))) > 0)
		if (send(q->fd, buf, n, 0) < 0 && errno != ECONNREFUSED)
			log_debug("portmap: cannot send to the gateway: %s", strerror(errno));
}

static void run(struct portmap *pm)
{
	struct pm_pmp *q = pm->pmp;
	uint64_t now = loop_now(), next;

	if (!q->started)
		return; /* stopped meanwhile (another protocol won): nothing to send */
	send_due(q, now);
	finish_state(pm);
	next = pmp_deadline(&q->core);
	if (next == UINT64_MAX)
		loop_timer_cancel(pm->a->loop, &q->timer);
	else
		loop_timer_set(pm->a->loop, &q->timer, next);
}

static void on_timer(void *arg, uint64_t now)
{
	(void)now;
	run(arg);
}

static void on_lost_retry(void *arg, uint64_t now)
{
	struct portmap *pm = arg;

	pmp_remap(&pm->pmp->core, now);
	run(pm);
}

static void input(struct portmap *pm, const uint8_t *buf, size_t len,
		  const struct na_endpoint *from)
{
	struct pm_pmp *q = pm->pmp;
	enum pmp_input_result r = pmp_input(&q->core, buf, len, from, loop_now());
	const struct pmp_mapping *m;
	const char *name = pm->a->cfg->name;
	unsigned code;

	switch (r) {
	case PMP_IN_MAPPED:
	case PMP_IN_RENEWED:
		m = pmp_mapping(&q->core);
		if (m)
			portmap_mapped(pm, proto_of(m->proto), &q->client, &m->external,
				       m->lifetime);
		break;
	case PMP_IN_RESTARTED:
		if (pm->e[proto_of(q->core.proto)].state == PMAP_MAPPED)
			portmap_lost(pm, proto_of(q->core.proto),
				     "the gateway restarted (its epoch went back)");
		break;
	case PMP_IN_ANNOUNCE:
		log_debug("%s: port mapping: the gateway announced itself", name);
		break;
	case PMP_IN_FALLBACK:
		log_debug("%s: port mapping: the gateway speaks NAT-PMP, not PCP", name);
		break;
	case PMP_IN_ERROR:
		pmp_result(&q->core, &code, NULL);
		log_debug("%s: port mapping: %s error %s (%u)", name,
			  pmp_proto_name(q->core.proto),
			  pmp_result_name(q->core.proto, code), code);
		break;
	case PMP_IN_BAD:
		log_debug("%s: port mapping: dropped a packet from the gateway: %s", name,
			  pmp_dropped(&q->core) ? pmp_dropped(&q->core) : "?");
		break;
	default:
		break;
	}
	run(pm);
}

static void on_read(void *arg, uint32_t events)
{
	struct portmap *pm = arg;
	struct pm_pmp *q = pm->pmp;
	struct na_endpoint from = { .ip = q->gateway, .port = PMP_SERVER_PORT };
	uint8_t buf[1100];
	ssize_t n;

	(void)events;
	/* Connected: whatever arrives comes from gateway:5351. A packet may
	 * stop us (another protocol won): then the socket is gone. */
	while (q->started && (n = recv(q->fd, buf, sizeof(buf), 0)) >= 0)
		input(pm, buf, (size_t)n, &from);
}

static void on_announce(void *arg, uint32_t events)
{
	struct portmap *pm = arg;
	struct pm_pmp *q = pm->pmp;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct na_endpoint from;
	uint8_t buf[1100];
	ssize_t n;

	(void)events;
	while (q->started &&
	       (n = recvfrom(q->ann_fd, buf, sizeof(buf), 0, (struct sockaddr *)&ss, &sl)) >= 0) {
		if (na_endpoint_from_sockaddr(&from, (struct sockaddr *)&ss))
			input(pm, buf, (size_t)n, &from);
		sl = sizeof(ss);
	}
}

static int open_request_socket(struct pm_pmp *q)
{
	struct sockaddr_in gw = { .sin_family = AF_INET, .sin_port = htons(PMP_SERVER_PORT) };
	struct sockaddr_in me;
	socklen_t sl = sizeof(me);

	q->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (q->fd < 0)
		return -errno;
	memcpy(&gw.sin_addr, q->gateway.v4, 4);
	/* Connecting picks our address towards the gateway: PCP's client. */
	if (connect(q->fd, (struct sockaddr *)&gw, sizeof(gw)) < 0 ||
	    getsockname(q->fd, (struct sockaddr *)&me, &sl) < 0)
		return -errno;
	memset(&q->client, 0, sizeof(q->client));
	q->client.family = AF_INET;
	memcpy(q->client.v4, &me.sin_addr, 4);
	return 0;
}

/* Announcements are a help, not a need (renewals notice a restart too):
 * without the port (another client holds it), go on without. */
static int open_announce_socket(struct pm_pmp *q)
{
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons(PMP_ANNOUNCE_PORT) };
	struct ip_mreqn mr = { .imr_address.s_addr = 0 };
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(&mr.imr_address, q->client.v4, 4);
	inet_pton(AF_INET, "224.0.0.1", &mr.imr_multiaddr);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&any, sizeof(any)) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	q->ann_fd = fd;
	return 0;
}

int pm_pmp_init(struct portmap *pm)
{
	struct pm_pmp *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->fd = q->ann_fd = -1;
	loop_timer_init(&q->timer, on_timer, pm);
	loop_timer_init(&q->lost_retry, on_lost_retry, pm);
	pm->pmp = q;
	return 0;
}

static void fail_both(struct portmap *pm, const char *fmt, const char *detail)
{
	char why[128];

	snprintf(why, sizeof(why), fmt, detail);
	for (unsigned i = 0; i < PORTMAP_COUNT; i++)
		if (i != PORTMAP_UPNP && pm->e[i].state == PMAP_TRYING)
			portmap_failed(pm, i, why);
}

void pm_pmp_start(struct portmap *pm)
{
	struct pm_pmp *q = pm->pmp;
	const struct config *cfg = pm->a->cfg;
	struct pmp_params prm = { .internal_port = pm->a->port, .lifetime = cfg->portmap_lease,
				  .rand = random_nonce };
	int err;

	if (q->started) {
		/* A retry after failure: the same nonce, PCP first again. */
		pmp_remap(&q->core, loop_now());
		run(pm);
		return;
	}
	err = default_gateway(&q->gateway);
	if (err == -ENOENT) {
		fail_both(pm, "%s", "no IPv4 default gateway to ask");
		return;
	}
	if (err) {
		fail_both(pm, "cannot read the route table (%s)", strerror(-err));
		return;
	}
	err = open_request_socket(q);
	if (!err)
		err = loop_add_fd(pm->a->loop, q->fd, EPOLLIN, on_read, pm);
	if (err) {
		fail_both(pm, "cannot open a socket to the gateway: %s", strerror(-err));
		return;
	}
	err = open_announce_socket(q);
	if (!err)
		err = loop_add_fd(pm->a->loop, q->ann_fd, EPOLLIN, on_announce, pm);
	if (err)
		log_debug("%s: port mapping: no gateway announcements on port %u (%s); renewals "
			  "will notice a restarted gateway", cfg->name, PMP_ANNOUNCE_PORT,
			  strerror(-err));
	prm.gateway = q->gateway;
	prm.client = q->client;
	for (unsigned i = 0; i < cfg->n_portmap; i++) {
		if (cfg->portmap[i] == PORTMAP_PCP)
			prm.protocols |= PMP_ALLOW_PCP;
		if (cfg->portmap[i] == PORTMAP_NATPMP)
			prm.protocols |= PMP_ALLOW_NATPMP;
	}
	if (!pmp_init(&q->core, &prm)) {
		fail_both(pm, "%s", pmp_reason(&q->core) ? pmp_reason(&q->core) : "bad parameters");
		return;
	}
	q->started = true;
	pmp_start(&q->core, loop_now());
	run(pm);
}

void pm_pmp_remap(struct portmap *pm)
{
	struct pm_pmp *q = pm->pmp;

	if (!q || !q->started)
		return;
	pmp_remap(&q->core, loop_now());
	run(pm);
}

/* Deleting blocks, bounded: it runs on exit, or when another protocol won
 * the race (rare), and waits for the gateway's answer so the mapping is
 * really gone before natagent is. */
static bool delete_now(struct portmap *pm)
{
	struct pm_pmp *q = pm->pmp;
	uint64_t now = loop_now(), end = now + DELETE_WAIT_MS * 1000000ull;
	struct na_endpoint from = { .ip = q->gateway, .port = PMP_SERVER_PORT };
	bool confirmed = false;

	pmp_delete(&q->core, now);
	while (pmp_state(&q->core) == PMP_DELETING && now < end) {
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		uint64_t next;
		uint8_t buf[1100];
		ssize_t n;

		send_due(q, now);
		next = pmp_deadline(&q->core);
		if (next > end)
			next = end;
		if (poll(&pfd, 1, next > now ? (int)((next - now) / 1000000 + 1) : 0) > 0)
			while ((n = recv(q->fd, buf, sizeof(buf), 0)) >= 0)
				confirmed |= pmp_input(&q->core, buf, (size_t)n, &from,
						       loop_now()) == PMP_IN_DELETED;
		now = loop_now();
	}
	return confirmed;
}

void pm_pmp_stop(struct portmap *pm, bool delete_mapping)
{
	struct pm_pmp *q = pm->pmp;
	enum portmap_proto p;
	char ext[NA_ENDPOINT_STRLEN];

	if (!q)
		return;
	loop_timer_cancel(pm->a->loop, &q->timer);
	loop_timer_cancel(pm->a->loop, &q->lost_retry);
	if (!q->started)
		return;
	p = proto_of(q->core.proto);
	if (delete_mapping && pmp_state(&q->core) == PMP_MAPPED) {
		na_endpoint_str(&pmp_mapping(&q->core)->external, ext, sizeof(ext));
		if (delete_now(pm))
			log_info("%s: port mapping: deleted the %s mapping %s", pm->a->cfg->name,
				 config_portmap_name(p), ext);
		else
			log_warn("%s: port mapping: the gateway did not confirm deleting the %s "
				 "mapping %s; it lapses with its lease",
				 pm->a->cfg->name, config_portmap_name(p), ext);
	}
	q->started = false;
	if (q->fd >= 0) {
		loop_del_fd(pm->a->loop, q->fd);
		close(q->fd);
		q->fd = -1;
	}
	if (q->ann_fd >= 0) {
		loop_del_fd(pm->a->loop, q->ann_fd);
		close(q->ann_fd);
		q->ann_fd = -1;
	}
}

void pm_pmp_close(struct portmap *pm)
{
	pm_pmp_stop(pm, true);
	free(pm->pmp);
	pm->pmp = NULL;
}
