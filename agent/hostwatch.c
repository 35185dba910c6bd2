/* The host's own addresses, watched (rtnetlink): an address that comes or
 * goes is a candidate that comes or goes, so relayed peers punch again at
 * once with the new list instead of at their next retry, and reachability
 * is checked again (autonat.c).
 *
 * Timer: settle, SETTLE after the last change of a burst (DHCP, an
 * interface coming up, IPv6 autoconfiguration all add several at once). */
#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "agent/agent.h"
#include "agent/log.h"
#include "agent/netlink.h"
#include "agent/pathmgr.h"

#define SETTLE (300000000ull)

struct hostwatch {
	struct agent *a;
	struct nl_watch *w;
	int fd;
	struct loop_timer settle;
};

static void on_settle(void *arg, uint64_t now)
{
	struct hostwatch *h = arg;

	(void)now;
	log_info("%s: host addresses changed; %s", h->a->cfg->name,
		 h->a->n_peers ? "looking for direct paths again" : "checking reachability again");
	pathmgr_candidates_changed(h->a, true);
	autonat_hosts_changed(h->a);
}

static void on_addr(void *ctx, const struct nl_addr_event *ev)
{
	struct hostwatch *h = ctx;
	char name[IF_NAMESIZE] = "";

	/* Only what could be a candidate: global scope, usable, not ours. */
	if (ev->scope != RT_SCOPE_UNIVERSE || (ev->flags & IFA_F_TENTATIVE))
		return;
	if (if_indextoname((unsigned)ev->ifindex, name) && !strcmp(name, h->a->cfg->name))
		return;
	loop_timer_set(h->a->loop, &h->settle, loop_now() + SETTLE);
}

static const struct nl_watch_ops ops = { .addr = on_addr };

static void on_readable(void *arg, uint32_t events)
{
	struct hostwatch *h = arg;
	int n;

	(void)events;
	n = nl_watch_read(h->w, &ops, h);
	if (n == -ENOBUFS) {
		/* Notifications were lost: whatever changed, look again. */
		loop_timer_set(h->a->loop, &h->settle, loop_now() + SETTLE);
		nl_watch_dump(h->w);
	}
}

int hostwatch_open(struct agent *a)
{
	struct hostwatch *h;
	int err;

	if (!a->cfg->has_rendezvous)
		return 0; /* nobody to punch to, nobody to check reachability with */
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->a = a;
	loop_timer_init(&h->settle, on_settle, h);
	err = nl_watch_open(&h->w);
	if (!err) {
		h->fd = nl_watch_fd(h->w);
		err = loop_add_fd(a->loop, h->fd, EPOLLIN, on_readable, h);
		if (err)
			nl_watch_close(h->w);
	}
	if (err) {
		free(h);
		return err;
	}
	a->hostwatch = h;
	return 0;
}

void hostwatch_close(struct agent *a)
{
	struct hostwatch *h = a->hostwatch;

	if (!h)
		return;
	loop_timer_cancel(a->loop, &h->settle);
	loop_del_fd(a->loop, h->fd);
	nl_watch_close(h->w);
	free(h);
	a->hostwatch = NULL;
}
