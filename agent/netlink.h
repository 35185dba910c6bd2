/* A small rtnetlink client on libmnl: the link, address and route changes
 * tun mode needs, and a watcher of address changes for host candidates.
 *
 * Requests are synchronous: each is sent with NLM_F_ACK and the call waits
 * for the kernel's answer, returning 0 or its -errno; nl_errmsg() then has
 * the kernel's own explanation (extended ACK) when it gave one. The watcher
 * is the opposite: a non-blocking socket for the agent's epoll loop. */
#ifndef NATAGENT_AGENT_NETLINK_H
#define NATAGENT_AGENT_NETLINK_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "nat/addr.h"

/* Routes we add carry this protocol, so they can be told from others. */
#define NL_ROUTE_PROTO 4 /* RTPROT_STATIC */

struct nl;

int nl_open(struct nl **out);
void nl_close(struct nl *nl);
/* The kernel's message for the last failed request; "" when it gave none. */
const char *nl_errmsg(const struct nl *nl);

struct nl_link {
	int ifindex;
	unsigned flags; /* IFF_* */
	unsigned mtu;
	char name[IF_NAMESIZE];
};

/* The index of the named interface, or -ENODEV. */
int nl_ifindex(struct nl *nl, const char *name);
int nl_link_get(struct nl *nl, int ifindex, struct nl_link *out);
int nl_link_set_mtu(struct nl *nl, int ifindex, unsigned mtu);
int nl_link_set_up(struct nl *nl, int ifindex, bool up);
int nl_link_del(struct nl *nl, int ifindex);

/* An interface address: host bits are the address, len its subnet. */
int nl_addr_add(struct nl *nl, int ifindex, const struct na_prefix *addr);
int nl_addr_del(struct nl *nl, int ifindex, const struct na_prefix *addr);

/* A route in the main table to dst through the interface, no gateway. Add
 * fails with -EEXIST for a route already there; delete touches only a
 * route with NL_ROUTE_PROTO. */
int nl_route_add(struct nl *nl, int ifindex, const struct na_prefix *dst);
int nl_route_del(struct nl *nl, int ifindex, const struct na_prefix *dst);

/* Watcher. */
struct nl_watch;

struct nl_addr_event {
	bool added;         /* RTM_NEWADDR (also sent when flags change) */
	int ifindex;
	struct na_prefix addr;
	uint32_t flags;     /* IFA_F_*: TENTATIVE, DEPRECATED, ... */
	uint8_t scope;      /* RT_SCOPE_* */
};

struct nl_link_event {
	bool removed;       /* RTM_DELLINK */
	int ifindex;
	unsigned flags;     /* IFF_*: UP, RUNNING, ... */
	unsigned mtu;
	char name[IF_NAMESIZE];
};

struct nl_watch_ops {
	void (*addr)(void *ctx, const struct nl_addr_event *ev); /* may be NULL */
	void (*link)(void *ctx, const struct nl_link_event *ev); /* may be NULL */
};

/* Subscribes to link, IPv4 and IPv6 address changes. */
int nl_watch_open(struct nl_watch **out);
void nl_watch_close(struct nl_watch *w);
int nl_watch_fd(const struct nl_watch *w);
/* Asks for every current address; they arrive through nl_watch_read() as
 * additions. For the start, and after nl_watch_read() said -ENOBUFS. */
int nl_watch_dump(struct nl_watch *w);
/* Reads what is pending, up to a bound, calling ops for each change; returns
 * the number of events (0 when none were waiting). -ENOBUFS: the kernel
 * dropped notifications, so the picture is stale: dump again. The fd may
 * still be readable after a return: the loop calls again. */
int nl_watch_read(struct nl_watch *w, const struct nl_watch_ops *ops, void *ctx);

#endif
