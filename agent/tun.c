/* TUN device lifetime and configuration, over agent/netlink. */
#include "agent/tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "agent/netlink.h"

static int tun_fail(struct tun *t, int err, bool from_nl, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "what: strerror" into t->errmsg, and the kernel's own words after a
 * failed rtnetlink request; returns err. */
static int tun_fail(struct tun *t, int err, bool from_nl, const char *fmt, ...)
{
	const char *kmsg = from_nl && t->nl ? nl_errmsg(t->nl) : "";
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(t->errmsg))
		snprintf(t->errmsg + n, sizeof(t->errmsg) - (size_t)n, ": %s%s%s", strerror(-err),
			 *kmsg ? ": " : "", kmsg);
	return err;
}

const char *tun_errmsg(const struct tun *t)
{
	return t->errmsg;
}

/* The kernel's dev_valid_name() plus '%': TUNSETIFF would expand "%d"
 * into a name of its choosing, and we must know which device is ours. */
static bool name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= IF_NAMESIZE || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *c = name; *c; c++)
		if (*c == '/' || *c == ':' || *c == '%' || *c <= ' ' || *c == 0x7f)
			return false;
	return true;
}

int tun_open(struct tun *t, const char *name)
{
	struct ifreq ifr = { 0 };
	int err;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	if (!name_ok(name))
		return tun_fail(t, -EINVAL, false, "interface name '%s'", name);
	err = nl_open(&t->nl);
	if (err)
		return tun_fail(t, err, false, "opening rtnetlink");
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		err = tun_fail(t, -errno, false, "opening /dev/net/tun");
		goto err_nl;
	}
	/* TUN_EXCL: an existing interface of that name (a TUN someone made
	 * persistent included) is refused instead of attached to. */
	ifr.ifr_flags = (short)(IFF_TUN | IFF_NO_PI | IFF_TUN_EXCL);
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		if (err == -EBUSY)
			err = tun_fail(t, -EEXIST, false, "interface %s exists and is not ours", name);
		else
			err = tun_fail(t, err, false, "creating TUN device %s", name);
		goto err_fd;
	}
	memcpy(t->name, ifr.ifr_name, IF_NAMESIZE);
	t->name[IF_NAMESIZE - 1] = 0;
	err = nl_ifindex(t->nl, t->name);
	if (err < 0) {
		err = tun_fail(t, err, true, "finding %s", t->name);
		goto err_fd;
	}
	t->ifindex = err;
	t->mtu = 1500; /* the kernel's default for a new TUN */
	return 0;

err_fd:
	close(t->fd); /* not persistent: the device goes with it */
	t->fd = -1;
err_nl:
	nl_close(t->nl);
	t->nl = NULL;
	return err;
}

/* Would the kernel's own prefix route for one of the addresses already
 * send dst here? As wg-quick asks `ip route show dev X match dst`. A /32
 * or /128 address brings no such route of its own. */
static bool covered_by_address(const struct tun_config *cfg, const struct na_prefix *dst)
{
	for (size_t i = 0; i < cfg->n_addrs; i++) {
		const struct na_prefix *a = &cfg->addrs[i];
		unsigned bits = a->ip.family == AF_INET ? 32 : 128;

		if (a->ip.family == dst->ip.family && a->len < bits && a->len <= dst->len &&
		    na_prefix_contains(a, &dst->ip))
			return true;
	}
	return false;
}

static bool route_recorded(const struct tun *t, const struct na_prefix *dst)
{
	for (size_t i = 0; i < t->n_routes; i++)
		if (t->routes[i].len == dst->len && na_ip_equal(&t->routes[i].ip, &dst->ip))
			return true;
	return false;
}

/* Room for one more record, made before the route: a route added but not
 * recorded would outlive us. */
static int reserve_route(struct tun *t)
{
	size_t cap = t->cap_routes ? 2 * t->cap_routes : 16;
	struct na_prefix *r;

	if (t->n_routes < t->cap_routes)
		return 0;
	r = realloc(t->routes, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	t->routes = r;
	t->cap_routes = cap;
	return 0;
}

static int add_route(struct tun *t, const struct na_prefix *dst)
{
	char s[NA_PREFIX_STRLEN];
	int err;

	na_prefix_str(dst, s, sizeof(s));
	err = reserve_route(t);
	if (err)
		return tun_fail(t, err, false, "recording route %s", s);
	err = nl_route_add(t->nl, t->ifindex, dst);
	if (err)
		return tun_fail(t, err, true, "adding route %s dev %s", s, t->name);
	t->routes[t->n_routes++] = *dst;
	return 0;
}

int tun_configure(struct tun *t, const struct tun_config *cfg)
{
	unsigned mtu = cfg->mtu ? cfg->mtu : TUN_DEFAULT_MTU;
	char s[NA_PREFIX_STRLEN];
	int err;

	if (t->ifindex <= 0)
		return tun_fail(t, -EBADF, false, "configuring a TUN device that is not open");
	err = nl_link_set_mtu(t->nl, t->ifindex, mtu);
	if (err)
		return tun_fail(t, err, true, "setting MTU %u on %s", mtu, t->name);
	t->mtu = mtu;
	for (size_t i = 0; i < cfg->n_addrs; i++) {
		err = nl_addr_add(t->nl, t->ifindex, &cfg->addrs[i]);
		if (err)
			return tun_fail(t, err, true, "adding address %s to %s",
					na_prefix_str(&cfg->addrs[i], s, sizeof(s)), t->name);
	}
	/* Up before routes: the kernel refuses a route through a device
	 * that is down. */
	err = nl_link_set_up(t->nl, t->ifindex, true);
	if (err)
		return tun_fail(t, err, true, "bringing %s up", t->name);
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const struct na_prefix *dst = &cfg->routes[i];

		if (covered_by_address(cfg, dst) || route_recorded(t, dst))
			continue;
		err = add_route(t, dst);
		if (err)
			return err;
	}
	return 0;
}

/* A route we hold that cfg still asks for. */
static bool route_wanted(const struct tun_config *cfg, const struct na_prefix *r)
{
	for (size_t i = 0; i < cfg->n_routes; i++)
		if (cfg->routes[i].len == r->len && na_ip_equal(&cfg->routes[i].ip, &r->ip))
			return !covered_by_address(cfg, &cfg->routes[i]);
	return false;
}

int tun_set_routes(struct tun *t, const struct tun_config *cfg, unsigned *added,
		   unsigned *removed)
{
	char first_msg[sizeof(t->errmsg)] = "";
	size_t kept = 0;
	int first = 0, err;

	*added = *removed = 0;
	if (t->ifindex <= 0)
		return tun_fail(t, -EBADF, false, "routing through a TUN device that is not open");
	/* The gone first: a prefix that moved to a wider or narrower one
	 * must not be routed twice meanwhile. A route someone else deleted
	 * is gone all the same; one the kernel keeps stays recorded, for
	 * tun_close to try again. */
	for (size_t i = 0; i < t->n_routes; i++) {
		char s[NA_PREFIX_STRLEN];

		if (route_wanted(cfg, &t->routes[i])) {
			t->routes[kept++] = t->routes[i];
			continue;
		}
		err = nl_route_del(t->nl, t->ifindex, &t->routes[i]);
		if (err && err != -ESRCH && err != -ENOENT) {
			if (!first) {
				first = tun_fail(t, err, true, "removing route %s dev %s",
						 na_prefix_str(&t->routes[i], s, sizeof(s)), t->name);
				memcpy(first_msg, t->errmsg, sizeof(first_msg));
			}
			t->routes[kept++] = t->routes[i];
			continue;
		}
		(*removed)++;
	}
	t->n_routes = kept;
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const struct na_prefix *dst = &cfg->routes[i];

		if (covered_by_address(cfg, dst) || route_recorded(t, dst))
			continue;
		err = add_route(t, dst);
		if (err) {
			if (!first) {
				first = err;
				memcpy(first_msg, t->errmsg, sizeof(first_msg));
			}
			continue;
		}
		(*added)++;
	}
	if (first)
		memcpy(t->errmsg, first_msg, sizeof(t->errmsg));
	return first;
}

void tun_close(struct tun *t)
{
	int ifindex = t->ifindex;

	if (ifindex > 0 && t->nl) {
		/* Newest first, the reverse of their making. A route that is
		 * already gone (someone deleted it) is no error here. */
		for (size_t i = t->n_routes; i-- > 0;)
			nl_route_del(t->nl, ifindex, &t->routes[i]);
	}
	if (t->fd >= 0)
		close(t->fd);
	/* Closing the last fd unregisters a non-persistent TUN at once; one
	 * someone made persistent meanwhile is deleted outright. */
	if (ifindex > 0 && t->nl && nl_ifindex(t->nl, t->name) == ifindex)
		nl_link_del(t->nl, ifindex);
	nl_close(t->nl);
	free(t->routes);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

int tun_read(struct tun *t, struct tun_pkt *pkts, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		ssize_t r;

		do
			r = read(t->fd, pkts[i].buf, pkts[i].cap);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			if (errno == EAGAIN)
				break;
			return i ? (int)i : -errno;
		}
		pkts[i].len = (size_t)r;
	}
	return (int)i;
}

int tun_write(struct tun *t, const struct tun_pkt *pkts, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		ssize_t w;

		do
			w = write(t->fd, pkts[i].buf, pkts[i].len);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			return i ? (int)i : -errno;
	}
	return (int)i;
}
