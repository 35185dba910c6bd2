/* rtnetlink requests and the address watcher. Messages are built and walked
 * with libmnl; the answer loop is our own so that it can read the kernel's
 * extended ACK and skip anything that is not the answer to this request. */
#include "agent/netlink.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Dumps come in datagrams of up to 32 KiB (the kernel's dump size). */
#define NL_BUF_SIZE 32768
/* Datagrams per nl_watch_read(): a burst is spread over loop turns. */
#define NL_WATCH_BATCH 64

struct nl {
	struct mnl_socket *sock;
	unsigned portid;
	uint32_t seq;
	char errmsg[256];
	uint8_t buf[NL_BUF_SIZE];
};

struct nl_watch {
	struct mnl_socket *sock;
	unsigned portid;
	uint32_t seq;
	uint8_t buf[NL_BUF_SIZE];
};

static int ext_ack_attr(const struct nlattr *attr, void *data)
{
	if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
		*(const char **)data = mnl_attr_get_str(attr);
	return MNL_CB_OK;
}

/* The error an NLMSG_ERROR carries (0 for an ACK), keeping its message. */
static int parse_error(struct nl *nl, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
	const char *msg = NULL;
	size_t off;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*err))
		return -EBADMSG;
	if (err->error && (nlh->nlmsg_flags & NLM_F_ACK_TLVS)) {
		off = sizeof(*err);
		if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
			off += mnl_nlmsg_get_payload_len(&err->msg);
		if (off <= mnl_nlmsg_get_payload_len(nlh))
			mnl_attr_parse(nlh, (unsigned)off, ext_ack_attr, &msg);
	}
	if (nl && msg)
		snprintf(nl->errmsg, sizeof(nl->errmsg), "%s", msg);
	return err->error > 0 ? -err->error : err->error;
}

typedef void (*nl_reply_fn)(const struct nlmsghdr *nlh, void *data);

/* Sends the request and reads until its ACK; replies before it go to fn. */
static int nl_talk(struct nl *nl, struct nlmsghdr *nlh, nl_reply_fn fn, void *data)
{
	uint32_t seq = ++nl->seq;

	nl->errmsg[0] = 0;
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
		int len;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		len = (int)n;
		for (nlh = (struct nlmsghdr *)nl->buf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != nl->portid)
				continue; /* an answer to an earlier, abandoned request */
			if (nlh->nlmsg_type == NLMSG_ERROR)
				return parse_error(nl, nlh);
			if (fn)
				fn(nlh, data);
		}
	}
}

int nl_open(struct nl **out)
{
	struct nl *nl = calloc(1, sizeof(*nl));
	int one = 1, err;

	*out = NULL;
	if (!nl)
		return -ENOMEM;
	nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sock)
		goto err_errno;
	/* Best effort: without them errors just come without a message. */
	mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl->sock, NETLINK_CAP_ACK, &one, sizeof(one));
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0)
		goto err_close;
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)time(NULL);
	*out = nl;
	return 0;

err_close:
	err = -errno;
	mnl_socket_close(nl->sock);
	free(nl);
	return err;
err_errno:
	err = -errno;
	free(nl);
	return err;
}

void nl_close(struct nl *nl)
{
	if (!nl)
		return;
	mnl_socket_close(nl->sock);
	free(nl);
}

const char *nl_errmsg(const struct nl *nl)
{
	return nl->errmsg;
}

static struct nlmsghdr *msg_start(uint8_t *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	return nlh;
}

static size_t ip_bytes(const struct na_ip *ip)
{
	return ip->family == AF_INET ? 4 : 16;
}

static bool family_ok(const struct na_prefix *p)
{
	return (p->ip.family == AF_INET && p->len <= 32) ||
	       (p->ip.family == AF_INET6 && p->len <= 128);
}

/* Links. */

struct link_reply {
	struct nl_link *link;
	bool seen;
};

static int link_attr(const struct nlattr *attr, void *data)
{
	struct nl_link *l = data;

	switch (mnl_attr_get_type(attr)) {
	case IFLA_IFNAME:
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
			snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(attr));
		break;
	case IFLA_MTU:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0)
			l->mtu = mnl_attr_get_u32(attr);
		break;
	}
	return MNL_CB_OK;
}

static bool parse_link(const struct nlmsghdr *nlh, struct nl_link *l)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return false;
	memset(l, 0, sizeof(*l));
	l->ifindex = ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	mnl_attr_parse(nlh, sizeof(*ifi), link_attr, l);
	return true;
}

static void link_reply(const struct nlmsghdr *nlh, void *data)
{
	struct link_reply *r = data;

	if (nlh->nlmsg_type == RTM_NEWLINK && parse_link(nlh, r->link))
		r->seen = true;
}

static int link_get(struct nl *nl, int ifindex, const char *name, struct nl_link *out)
{
	struct link_reply r = { .link = out };
	struct nlmsghdr *nlh = msg_start(nl->buf, RTM_GETLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	uint32_t mask = RTEXT_FILTER_SKIP_STATS;
	int err;

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	if (name) {
		if (strlen(name) >= IF_NAMESIZE)
			return -ENODEV;
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	}
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, mask);
	err = nl_talk(nl, nlh, link_reply, &r);
	if (err)
		return err;
	return r.seen ? 0 : -ENODEV;
}

int nl_ifindex(struct nl *nl, const char *name)
{
	struct nl_link l;
	int err = link_get(nl, 0, name, &l);

	return err ? err : l.ifindex;
}

int nl_link_get(struct nl *nl, int ifindex, struct nl_link *out)
{
	return link_get(nl, ifindex, NULL, out);
}

static struct nlmsghdr *link_msg(struct nl *nl, uint16_t type, int ifindex, struct ifinfomsg **ifi)
{
	struct nlmsghdr *nlh = msg_start(nl->buf, type, 0);

	*ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(**ifi));
	(*ifi)->ifi_family = AF_UNSPEC;
	(*ifi)->ifi_index = ifindex;
	return nlh;
}

int nl_link_set_mtu(struct nl *nl, int ifindex, unsigned mtu)
{
	struct ifinfomsg *ifi;
	struct nlmsghdr *nlh = link_msg(nl, RTM_NEWLINK, ifindex, &ifi);

	mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_link_set_up(struct nl *nl, int ifindex, bool up)
{
	struct ifinfomsg *ifi;
	struct nlmsghdr *nlh = link_msg(nl, RTM_NEWLINK, ifindex, &ifi);

	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = up ? IFF_UP : 0;
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_link_del(struct nl *nl, int ifindex)
{
	struct ifinfomsg *ifi;
	struct nlmsghdr *nlh = link_msg(nl, RTM_DELLINK, ifindex, &ifi);

	return nl_talk(nl, nlh, NULL, NULL);
}

/* Addresses. */

static int addr_msg(struct nl *nl, uint16_t type, uint16_t flags, int ifindex,
		    const struct na_prefix *a)
{
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;

	if (!family_ok(a) || ifindex <= 0)
		return -EINVAL;
	nlh = msg_start(nl->buf, type, flags);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = a->ip.family;
	ifa->ifa_prefixlen = a->len;
	ifa->ifa_index = (unsigned)ifindex;
	/* Both, as `ip addr add` sends them: LOCAL is the address, ADDRESS
	 * would be the peer on a point-to-point link and is the same here. */
	mnl_attr_put(nlh, IFA_LOCAL, ip_bytes(&a->ip), a->ip.v6);
	mnl_attr_put(nlh, IFA_ADDRESS, ip_bytes(&a->ip), a->ip.v6);
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_addr_add(struct nl *nl, int ifindex, const struct na_prefix *addr)
{
	return addr_msg(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, addr);
}

int nl_addr_del(struct nl *nl, int ifindex, const struct na_prefix *addr)
{
	return addr_msg(nl, RTM_DELADDR, 0, ifindex, addr);
}

/* Routes. */

static int route_msg(struct nl *nl, uint16_t type, uint16_t flags, int ifindex,
		     const struct na_prefix *dst)
{
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;

	if (!family_ok(dst) || ifindex <= 0)
		return -EINVAL;
	nlh = msg_start(nl->buf, type, flags);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = dst->ip.family;
	rtm->rtm_dst_len = dst->len;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = NL_ROUTE_PROTO;
	rtm->rtm_type = RTN_UNICAST;
	/* Delete matches any scope, as `ip route del` does. */
	rtm->rtm_scope = type == RTM_NEWROUTE ? RT_SCOPE_LINK : RT_SCOPE_NOWHERE;
	if (dst->len)
		mnl_attr_put(nlh, RTA_DST, ip_bytes(&dst->ip), dst->ip.v6);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	return nl_talk(nl, nlh, NULL, NULL);
}

int nl_route_add(struct nl *nl, int ifindex, const struct na_prefix *dst)
{
	return route_msg(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, ifindex, dst);
}

int nl_route_del(struct nl *nl, int ifindex, const struct na_prefix *dst)
{
	return route_msg(nl, RTM_DELROUTE, 0, ifindex, dst);
}

/* The watcher. */

int nl_watch_open(struct nl_watch **out)
{
	struct nl_watch *w = calloc(1, sizeof(*w));
	int bufsize = 1 << 20, err;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!w->sock) {
		err = -errno;
		free(w);
		return err;
	}
	/* Room for a burst (an interface going away takes its addresses with
	 * it); FORCE works only with privilege, the plain one up to rmem_max. */
	if (setsockopt(mnl_socket_get_fd(w->sock), SOL_SOCKET, SO_RCVBUFFORCE, &bufsize,
		       sizeof(bufsize)) < 0)
		setsockopt(mnl_socket_get_fd(w->sock), SOL_SOCKET, SO_RCVBUF, &bufsize,
			   sizeof(bufsize));
	if (mnl_socket_bind(w->sock, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
			    MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		mnl_socket_close(w->sock);
		free(w);
		return err;
	}
	w->portid = mnl_socket_get_portid(w->sock);
	w->seq = (uint32_t)time(NULL);
	*out = w;
	return 0;
}

void nl_watch_close(struct nl_watch *w)
{
	if (!w)
		return;
	mnl_socket_close(w->sock);
	free(w);
}

int nl_watch_fd(const struct nl_watch *w)
{
	return mnl_socket_get_fd(w->sock);
}

int nl_watch_dump(struct nl_watch *w)
{
	uint8_t buf[64] __attribute__((aligned(4)));
	struct nlmsghdr *nlh = msg_start(buf, RTM_GETADDR, NLM_F_DUMP);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

	ifa->ifa_family = AF_UNSPEC;
	nlh->nlmsg_seq = ++w->seq;
	if (mnl_socket_sendto(w->sock, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	return 0;
}

struct addr_attrs {
	const struct nlattr *local, *address, *flags;
};

static int addr_attr(const struct nlattr *attr, void *data)
{
	struct addr_attrs *a = data;

	switch (mnl_attr_get_type(attr)) {
	case IFA_LOCAL:
		a->local = attr;
		break;
	case IFA_ADDRESS:
		a->address = attr;
		break;
	case IFA_FLAGS:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) == 0)
			a->flags = attr;
		break;
	}
	return MNL_CB_OK;
}

static bool parse_addr(const struct nlmsghdr *nlh, struct nl_addr_event *ev)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct addr_attrs a = { 0 };
	const struct nlattr *ip;
	size_t want;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifa))
		return false;
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return false;
	want = ifa->ifa_family == AF_INET ? 4 : 16;
	if (ifa->ifa_prefixlen > want * 8)
		return false;
	mnl_attr_parse(nlh, sizeof(*ifa), addr_attr, &a);
	/* LOCAL is ours where both exist (point-to-point: ADDRESS is the
	 * peer's). */
	ip = a.local ? a.local : a.address;
	if (!ip || mnl_attr_get_payload_len(ip) != want)
		return false;
	memset(ev, 0, sizeof(*ev));
	ev->added = nlh->nlmsg_type == RTM_NEWADDR;
	ev->ifindex = (int)ifa->ifa_index;
	ev->addr.ip.family = ifa->ifa_family;
	memcpy(ev->addr.ip.v6, mnl_attr_get_payload(ip), want);
	ev->addr.len = ifa->ifa_prefixlen;
	ev->flags = a.flags ? mnl_attr_get_u32(a.flags) : ifa->ifa_flags;
	ev->scope = ifa->ifa_scope;
	return true;
}

/* Dispatches one datagram; returns events delivered or a dump's -errno. */
static int watch_dispatch(struct nl_watch *w, int len, const struct nl_watch_ops *ops, void *ctx)
{
	const struct nlmsghdr *nlh;
	int events = 0;

	for (nlh = (const struct nlmsghdr *)w->buf; mnl_nlmsg_ok(nlh, len);
	     nlh = mnl_nlmsg_next(nlh, &len)) {
		switch (nlh->nlmsg_type) {
		case RTM_NEWADDR:
		case RTM_DELADDR: {
			struct nl_addr_event ev;
			if (parse_addr(nlh, &ev) && ops->addr) {
				ops->addr(ctx, &ev);
				events++;
			}
			break;
		}
		case RTM_NEWLINK:
		case RTM_DELLINK: {
			struct nl_link l;
			if (parse_link(nlh, &l) && ops->link) {
				struct nl_link_event ev = {
					.removed = nlh->nlmsg_type == RTM_DELLINK,
					.ifindex = l.ifindex, .flags = l.flags, .mtu = l.mtu,
				};
				memcpy(ev.name, l.name, sizeof(ev.name));
				ops->link(ctx, &ev);
				events++;
			}
			break;
		}
		case NLMSG_ERROR:
			/* Only a dump of ours can fail here. */
			if (nlh->nlmsg_pid == w->portid) {
				int err = parse_error(NULL, nlh);
				if (err)
					return err;
			}
			break;
		}
	}
	return events;
}

int nl_watch_read(struct nl_watch *w, const struct nl_watch_ops *ops, void *ctx)
{
	int events = 0;

	for (int i = 0; i < NL_WATCH_BATCH; i++) {
		ssize_t n = mnl_socket_recvfrom(w->sock, w->buf, sizeof(w->buf));
		int rc;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		rc = watch_dispatch(w, (int)n, ops, ctx);
		if (rc < 0)
			return rc;
		events += rc;
	}
	return events;
}
