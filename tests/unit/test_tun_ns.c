/* TUN device, rtnetlink client and address watcher against the real kernel.
 *
 * Needs root; it then moves itself into a network namespace of its own
 * (unshare(CLONE_NEWNET)), so everything it makes (the TUN, a veth, routes)
 * vanishes with the process, even when a check fails or it crashes. `ip` is
 * run as a second opinion: children inherit the namespace. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/netlink.h"
#include "tests/unit/inetsum.h"
#include "agent/tun.h"
#include "agent/tunpkt.h"
#include "tests/unit/unit.h"

#define TUN_NAME   "natt0"
#define VETH_NAME  "natveth0" /* a veth: not every kernel has the dummy driver */

static struct nl *nl;

static struct na_prefix pfx(const char *s)
{
	struct na_prefix p;

	if (!na_ifaddr_parse(&p, s))
		abort();
	return p;
}

static const char *ipstr(const struct na_ip *ip)
{
	static char buf[4][INET6_ADDRSTRLEN];
	static int i;

	i = (i + 1) % 4;
	return na_ip_str(ip, buf[i], sizeof(buf[i]));
}

/* Runs a shell command quietly; its exit status. */
static int sh(const char *cmd)
{
	char full[512];

	snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
	return system(full);
}

/* A command's output, for grepping. */
static const char *capture(const char *cmd)
{
	static char out[8192];
	size_t n = 0;
	FILE *f = popen(cmd, "r");

	out[0] = 0;
	if (!f)
		return out;
	while (n < sizeof(out) - 1) {
		size_t r = fread(out + n, 1, sizeof(out) - 1 - n, f);
		if (r == 0)
			break;
		n += r;
	}
	out[n] = 0;
	pclose(f);
	return out;
}

/* Lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
	int n = 0;
	size_t plen = strlen(prefix);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		n += strncmp(l, prefix, plen) == 0;
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Reads packets from the TUN until one matches (the kernel also sends its
 * own: MLD reports, router solicitations) or 2 s pass. */
typedef bool (*pkt_match)(const uint8_t *p, size_t n, const struct tunpkt *pi, const void *arg);

static size_t tun_wait(struct tun *t, uint8_t *buf, size_t cap, pkt_match match, const void *arg)
{
	uint64_t end = now_ms() + 2000;

	while (now_ms() < end) {
		struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
		struct tun_pkt pkt = { .buf = buf, .cap = cap };
		struct tunpkt pi;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		while (tun_read(t, &pkt, 1) == 1)
			if (tunpkt_parse(&pi, buf, pkt.len) && match(buf, pkt.len, &pi, arg))
				return pkt.len;
	}
	return 0;
}

static bool to_addr(const uint8_t *p, size_t n, const struct tunpkt *pi, const void *arg)
{
	(void)p;
	(void)n;
	return na_ip_equal(&pi->dst, arg);
}

static int udp_to(const char *ip, uint16_t port, bool connect_only)
{
	struct na_endpoint ep = { .port = port };
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	na_ip_parse(&ep.ip, ip);
	sl = na_endpoint_to_sockaddr(&ep, &ss);
	fd = socket(ep.ip.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		close(fd);
		return -1;
	}
	if (!connect_only && send(fd, "natagent", 8, 0) != 8) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ICMP echo request `from` -> `to`, as a peer would send it into the TUN. */
static size_t echo_request(uint8_t *p, const char *from, const char *to)
{
	struct na_ip s, d;

	na_ip_parse(&s, from);
	na_ip_parse(&d, to);
	if (s.family == AF_INET) {
		memset(p, 0, 36);
		p[0] = 0x45, p[3] = 36, p[8] = 64, p[9] = 1;
		memcpy(p + 12, s.v4, 4);
		memcpy(p + 16, d.v4, 4);
		put16(p + 10, ~inet_sum16(p, 20, 0) & 0xffff);
		p[20] = 8;                      /* echo request */
		put16(p + 24, 0x4e41);          /* id */
		put16(p + 26, 7);               /* seq */
		memcpy(p + 28, "natagent", 8);
		put16(p + 22, ~inet_sum16(p + 20, 16, 0) & 0xffff);
		return 36;
	}
	uint8_t pseudo[40] = { 0 };
	memset(p, 0, 56);
	p[0] = 0x60, p[5] = 16, p[6] = 58, p[7] = 64;
	memcpy(p + 8, s.v6, 16);
	memcpy(p + 24, d.v6, 16);
	p[40] = 128;
	put16(p + 44, 0x4e41);
	put16(p + 46, 7);
	memcpy(p + 48, "natagent", 8);
	memcpy(pseudo, p + 8, 32);
	pseudo[35] = 16, pseudo[39] = 58;
	put16(p + 42, ~inet_sum16(p + 40, 16, inet_sum16(pseudo, 40, 0)) & 0xffff);
	return 56;
}

static bool is_echo_reply(const uint8_t *p, size_t n, const struct tunpkt *pi, const void *arg)
{
	const struct na_ip *peer = arg;
	unsigned type = pi->version == 4 ? 0 : 129;

	return na_ip_equal(&pi->dst, peer) && pi->l4_off && pi->l4_off + 16 <= n &&
	       p[pi->l4_off] == type && !memcmp(p + pi->l4_off + 8, "natagent", 8);
}

/* Watcher events, collected. */
struct seen {
	int ifindex;
	struct na_prefix want;
	int added, removed, links, other;
};

static void on_addr(void *ctx, const struct nl_addr_event *ev)
{
	struct seen *s = ctx;

	if (ev->ifindex == s->ifindex && ev->addr.len == s->want.len &&
	    na_ip_equal(&ev->addr.ip, &s->want.ip))
		ev->added ? s->added++ : s->removed++;
	else
		s->other++;
}

static void on_link(void *ctx, const struct nl_link_event *ev)
{
	struct seen *s = ctx;

	s->links += ev->ifindex == s->ifindex;
}

static void watch_until(struct nl_watch *w, struct seen *s, int *counter)
{
	static const struct nl_watch_ops ops = { .addr = on_addr, .link = on_link };
	uint64_t end = now_ms() + 2000;

	while (!*counter && now_ms() < end) {
		struct pollfd pfd = { .fd = nl_watch_fd(w), .events = POLLIN };
		if (poll(&pfd, 1, 100) > 0)
			nl_watch_read(w, &ops, s);
	}
}

/* Every address the dump lists on one interface, as text. */
struct dump {
	int ifindex;
	char text[512];
	size_t n;
};

static void on_dump(void *ctx, const struct nl_addr_event *ev)
{
	struct dump *d = ctx;
	char s[NA_PREFIX_STRLEN];

	if (ev->ifindex == d->ifindex && ev->added && ev->addr.ip.v6[0] != 0xfe)
		d->n += (size_t)snprintf(d->text + d->n, sizeof(d->text) - d->n, "%s ",
					 na_prefix_str(&ev->addr, s, sizeof(s)));
}

static void test_open_errors(void)
{
	struct tun t, t2;

	CHECK_EQ_INT(tun_open(&t, "bad/name"), -EINVAL, "a name with '/' is refused");
	CHECK_EQ_INT(tun_open(&t, "nat%d"), -EINVAL, "a name with '%' is refused");
	CHECK_EQ_INT(tun_open(&t, "0123456789abcdef"), -EINVAL, "a 16-character name is refused");
	tun_close(&t);

	CHECK(sh("ip link add " VETH_NAME " type veth peer name natveth1 && ip link set natveth1 up") == 0, "a veth pair by `ip`");
	CHECK_EQ_INT(tun_open(&t, VETH_NAME), -EEXIST, "its name is refused: not ours");
	CHECK(strstr(tun_errmsg(&t), "exists and is not ours") != NULL, "and the message says so: %s",
	      tun_errmsg(&t));
	CHECK(nl_ifindex(nl, VETH_NAME) > 0, "the veth is left alone");
	tun_close(&t);

	CHECK_EQ_INT(tun_open(&t, TUN_NAME), 0, "TUN " TUN_NAME " created");
	CHECK_EQ_INT(tun_open(&t2, TUN_NAME), -EEXIST, "a second one of the same name is refused");
	tun_close(&t2);
	CHECK(nl_ifindex(nl, TUN_NAME) == t.ifindex, "and the first one is still there");
	tun_close(&t);
	CHECK_EQ_INT(nl_ifindex(nl, TUN_NAME), -ENODEV, "tun_close removes an unconfigured device");
	tun_close(&t);
	CHECK(1, "tun_close twice is harmless");
}

static void test_netlink_errors(void)
{
	struct na_prefix p = pfx("10.200.0.0/16");
	int veth = nl_ifindex(nl, VETH_NAME);

	CHECK_EQ_INT(nl_ifindex(nl, "nosuch0"), -ENODEV, "nl_ifindex: -ENODEV for an unknown name");
	CHECK_EQ_INT(nl_link_set_mtu(nl, 999999, 1400), -ENODEV, "set MTU on an unknown index: -ENODEV");
	CHECK_EQ_INT(nl_route_del(nl, veth, &p), -ESRCH, "deleting a missing route: -ESRCH");
	CHECK_EQ_INT(nl_link_set_mtu(nl, veth, 100000), -EINVAL, "an MTU beyond the device's: -EINVAL");
	CHECK(nl_errmsg(nl)[0] != 0, "with the kernel's message: %s", nl_errmsg(nl));
	CHECK_EQ_INT(nl_link_set_up(nl, veth, true), 0, "veth up");
	CHECK_EQ_INT(nl_route_add(nl, veth, &p), 0, "route add through the veth");
	CHECK_EQ_INT(nl_route_add(nl, veth, &p), -EEXIST, "the same again: -EEXIST");
	CHECK_EQ_INT(nl_route_del(nl, veth, &p), 0, "route del");
}

static void test_configured(struct tun *t)
{
	static const char *const addrs[] = { "10.77.0.1/24", "fd00:77::1/64" };
	static const char *const routes[] = {
		"10.77.0.0/24",   /* the connected route: not duplicated */
		"10.77.0.2/32",   /* inside it: not needed */
		"10.88.0.0/16",
		"fd00:77::/64",   /* connected, v6 */
		"fd00:77::2/128", /* inside it */
		"fd00:88::/64",
		"10.88.0.0/16",   /* twice in the list: once in the table */
	};
	struct na_prefix a[2], r[7];
	struct tun_config cfg = { .mtu = 1380, .addrs = a, .n_addrs = 2, .routes = r, .n_routes = 7 };
	struct nl_link link;
	const char *out;

	for (int i = 0; i < 2; i++)
		a[i] = pfx(addrs[i]);
	for (int i = 0; i < 7; i++)
		r[i] = pfx(routes[i]);
	CHECK_EQ_INT(tun_open(t, TUN_NAME), 0, "TUN created again");
	CHECK(t->fd >= 0 && t->ifindex > 0 && !strcmp(t->name, TUN_NAME), "fd, index and name");
	CHECK_EQ_INT(tun_configure(t, &cfg), 0, "configured");
	if (*tun_errmsg(t))
		printf("# %s\n", tun_errmsg(t));
	CHECK_EQ_INT(t->n_routes, 2, "two routes added, five skipped");

	CHECK_EQ_INT(nl_link_get(nl, t->ifindex, &link), 0, "link read back by rtnetlink");
	CHECK_EQ_STR(link.name, TUN_NAME, "name");
	CHECK_EQ_INT(link.mtu, 1380, "MTU");
	CHECK(link.flags & IFF_UP, "up");
	CHECK(link.flags & IFF_POINTOPOINT, "point-to-point, as a TUN is");

	out = capture("ip -o addr show dev " TUN_NAME);
	CHECK(strstr(out, "inet 10.77.0.1/24") != NULL, "`ip addr` shows the v4 address");
	CHECK(strstr(out, "inet6 fd00:77::1/64") != NULL, "`ip addr` shows the v6 address");
	CHECK(strstr(out, "tentative") == NULL, "the v6 address is usable (no DAD on a TUN)");

	out = capture("ip -4 route show dev " TUN_NAME);
	CHECK_EQ_INT(count_lines(out, "10.77.0.0/24 "), 1, "v4 connected route once");
	CHECK_EQ_INT(count_lines(out, "10.77.0.2 "), 0, "no host route inside it");
	CHECK_EQ_INT(count_lines(out, "10.88.0.0/16 proto static scope link"), 1, "v4 AllowedIPs route");
	out = capture("ip -6 route show dev " TUN_NAME);
	CHECK_EQ_INT(count_lines(out, "fd00:77::/64 "), 1, "v6 connected route once");
	CHECK_EQ_INT(count_lines(out, "fd00:77::2 "), 0, "no v6 host route inside it");
	CHECK_EQ_INT(count_lines(out, "fd00:88::/64 proto static"), 1, "v6 AllowedIPs route");
	out = capture("ip route get 10.88.1.2; ip route get fd00:88::9");
	CHECK_EQ_INT(count_lines(out, "10.88.1.2 dev " TUN_NAME " src 10.77.0.1"), 1, "v4 lookup goes to the TUN");
	CHECK_EQ_INT(count_lines(out, "fd00:88::9 from :: dev " TUN_NAME " proto static src fd00:77::1"), 1,
		     "v6 lookup goes to the TUN");
}

static void test_dump(struct nl_watch *w, struct tun *t)
{
	static const struct nl_watch_ops ops = { .addr = on_dump };
	struct dump d = { .ifindex = t->ifindex };
	uint64_t end = now_ms() + 2000;

	CHECK_EQ_INT(nl_watch_dump(w), 0, "address dump requested");
	while (now_ms() < end && !strstr(d.text, "fd00:77::1/64")) {
		struct pollfd pfd = { .fd = nl_watch_fd(w), .events = POLLIN };
		if (poll(&pfd, 1, 100) > 0)
			nl_watch_read(w, &ops, &d);
	}
	CHECK(strstr(d.text, "10.77.0.1/24 ") && strstr(d.text, "fd00:77::1/64 "),
	      "dump lists the TUN's addresses: %s", d.text);
}

static void test_packets_out(struct tun *t)
{
	uint8_t buf[2048];
	struct tunpkt pi;
	struct na_ip dst;
	size_t n;
	int fd;

	fd = udp_to("10.88.0.5", 9999, false);
	CHECK(fd >= 0, "UDP datagram sent toward 10.88.0.5");
	na_ip_parse(&dst, "10.88.0.5");
	n = tun_wait(t, buf, sizeof(buf), to_addr, &dst);
	CHECK_EQ_INT(n, 36, "it comes out of the TUN fd: 20 + 8 + 8 bytes");
	CHECK(tunpkt_parse(&pi, buf, n), "and classifies as valid");
	CHECK_EQ_STR(ipstr(&pi.src), "10.77.0.1", "from the TUN's address");
	CHECK_EQ_STR(ipstr(&pi.dst), "10.88.0.5", "to the routed address");
	CHECK(pi.proto == 17 && pi.len == 36 && !memcmp(buf + 28, "natagent", 8), "UDP, payload intact");
	if (fd >= 0)
		close(fd);

	fd = udp_to("fd00:88::5", 9999, false);
	CHECK(fd >= 0, "UDP datagram sent toward fd00:88::5");
	na_ip_parse(&dst, "fd00:88::5");
	n = tun_wait(t, buf, sizeof(buf), to_addr, &dst);
	CHECK_EQ_INT(n, 56, "it comes out of the TUN fd: 40 + 8 + 8 bytes");
	CHECK(tunpkt_parse(&pi, buf, n) && pi.version == 6 && pi.proto == 17, "valid IPv6 UDP");
	CHECK_EQ_STR(ipstr(&pi.src), "fd00:77::1", "from the TUN's v6 address");
	if (fd >= 0)
		close(fd);
}

static void test_echo(struct tun *t, const char *peer, const char *self)
{
	uint8_t req[64], buf[2048];
	struct tunpkt pi;
	struct na_ip p;
	size_t n;

	static uint8_t junk[40] = { 0x50 };
	struct tun_pkt batch[2] = { { .buf = req }, { .buf = junk, .len = sizeof(junk) } };

	batch[0].len = echo_request(req, peer, self);
	na_ip_parse(&p, peer);
	CHECK_EQ_INT(tun_write(t, &batch[1], 1), -EINVAL, "the kernel refuses IP version 5: -EINVAL");
	CHECK(tun_write(t, batch, 2) == 1, "echo request %s -> %s written; the batch stops at the junk",
	      peer, self);
	n = tun_wait(t, buf, sizeof(buf), is_echo_reply, &p);
	CHECK(n > 0, "the kernel's echo reply comes out of the TUN");
	if (!n)
		return;
	tunpkt_parse(&pi, buf, n);
	CHECK_EQ_STR(ipstr(&pi.src), self, "reply from the TUN's address");
	if (pi.version == 4)
		CHECK(inet_sum16(buf, 20, 0) == 0xffff && inet_sum16(buf + 20, n - 20, 0) == 0xffff,
		      "reply checksums verify");
}

/* A sender's path MTU learnt from our answer, sent from self_s: a
 * 1300-byte DF datagram leaves through the TUN (MTU 1380), we answer "too
 * big, 1200" (v6: 1280 for 1350 bytes), and the socket's IP_MTU drops to
 * it. */
static void test_too_big(struct tun *t, const char *dst_s, const char *self_s, size_t mtu)
{
	bool v6 = strchr(dst_s, ':') != NULL;
	size_t payload = v6 ? 1350 - 48 : 1300 - 28;
	uint8_t big[1400] = { 0 }, buf[2048], icmp[TUNPKT_TOO_BIG_MAX];
	struct na_ip dst, self;
	struct tun_pkt pkt = { .buf = icmp };
	int fd, val, n, pmtu = 0;
	socklen_t sl = sizeof(pmtu);
	size_t len;

	na_ip_parse(&dst, dst_s);
	na_ip_parse(&self, self_s);
	fd = udp_to(dst_s, 9998, true);
	val = v6 ? IPV6_PMTUDISC_DO : IP_PMTUDISC_DO;
	if (fd < 0 || setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU_DISCOVER : IP_MTU_DISCOVER,
				 &val, sizeof(val)) < 0) {
		CHECK(0, "socket toward %s", dst_s);
		return;
	}
	CHECK(send(fd, big, payload, 0) == (ssize_t)payload, "%zu-byte datagram to %s", payload, dst_s);
	len = tun_wait(t, buf, sizeof(buf), to_addr, &dst);
	CHECK_EQ_INT(len, payload + (v6 ? 48 : 28), "it leaves through the TUN whole");
	n = tunpkt_too_big(icmp, sizeof(icmp), buf, len, mtu, &self);
	CHECK(n > 0, "too-big answer built from %s", self_s);
	pkt.len = n > 0 ? (size_t)n : 0;
	CHECK_EQ_INT(tun_write(t, &pkt, 1), 1, "and written into the TUN");
	for (int i = 0; i < 20 && pmtu != (int)mtu; i++) {
		usleep(50000);
		sl = sizeof(pmtu);
		getsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU : IP_MTU, &pmtu, &sl);
	}
	CHECK_EQ_INT(pmtu, mtu, "the kernel learnt the path MTU from it");
	close(fd);
}

static void test_watch(struct nl_watch *w)
{
	static const struct nl_watch_ops ops = { .addr = on_addr, .link = on_link };
	struct seen s = { .ifindex = nl_ifindex(nl, VETH_NAME) };

	/* Drain what configuring the TUN announced. */
	while (nl_watch_read(w, &ops, &s) > 0)
		;
	memset(&s, 0, sizeof(s));
	s.ifindex = nl_ifindex(nl, VETH_NAME);
	CHECK_EQ_INT(nl_watch_read(w, &ops, &s), 0, "watcher: nothing pending reads as 0");

	s.want = pfx("192.0.2.1/24");
	CHECK(sh("ip addr add 192.0.2.1/24 dev " VETH_NAME) == 0, "`ip addr add 192.0.2.1/24` on the veth");
	watch_until(w, &s, &s.added);
	CHECK_EQ_INT(s.added, 1, "watcher reports the v4 address added, with its index and length");
	CHECK(sh("ip addr del 192.0.2.1/24 dev " VETH_NAME) == 0, "`ip addr del`");
	watch_until(w, &s, &s.removed);
	CHECK_EQ_INT(s.removed, 1, "watcher reports it removed");

	s.want = pfx("2001:db8::1/64");
	s.added = s.removed = 0;
	CHECK(sh("ip addr add 2001:db8::1/64 dev " VETH_NAME) == 0, "`ip addr add 2001:db8::1/64`");
	watch_until(w, &s, &s.added);
	CHECK(s.added >= 1, "watcher reports the v6 address added");

	s.links = 0;
	CHECK(sh("ip link set " VETH_NAME " mtu 1400") == 0, "`ip link set mtu` on the veth");
	watch_until(w, &s, &s.links);
	CHECK(s.links >= 1, "watcher reports the link change");
}

static void test_close(struct tun *t)
{
	const char *out;

	tun_close(t);
	CHECK_EQ_INT(nl_ifindex(nl, TUN_NAME), -ENODEV, "tun_close: the device is gone");
	out = capture("ip route show; ip -6 route show");
	CHECK(!strstr(out, "10.88.0.0/16") && !strstr(out, "fd00:88::/64") && !strstr(out, "10.77.0.0/24"),
	      "and every route through it");
}

/* A configuration that fails halfway: the route already exists through
 * the veth. What was done is undone, the veth's route stays. */
static void test_half_configured(void)
{
	struct na_prefix a[1] = { pfx("10.66.0.1/24") };
	struct na_prefix r[3] = { pfx("10.55.0.0/16"), pfx("fd00:55::/48"), pfx("10.99.0.0/16") };
	struct tun_config cfg = { .addrs = a, .n_addrs = 1, .routes = r, .n_routes = 3 };
	struct nl_link link;
	struct tun t;
	const char *out;

	CHECK(sh("ip route add 10.99.0.0/16 dev " VETH_NAME) == 0, "someone else's route 10.99.0.0/16");
	CHECK_EQ_INT(tun_open(&t, TUN_NAME), 0, "TUN created a third time");
	CHECK_EQ_INT(tun_configure(&t, &cfg), -EEXIST, "configure fails on the existing route");
	CHECK(strstr(tun_errmsg(&t), "adding route 10.99.0.0/16 dev " TUN_NAME ": File exists") != NULL,
	      "message: %s", tun_errmsg(&t));
	CHECK_EQ_INT(t.n_routes, 2, "the two routes before it were recorded");
	CHECK(nl_link_get(nl, t.ifindex, &link) == 0 && link.mtu == TUN_DEFAULT_MTU,
	      "default MTU %d", TUN_DEFAULT_MTU);
	tun_close(&t);
	out = capture("ip route show; ip -6 route show");
	CHECK(!strstr(out, "10.55.0.0/16") && !strstr(out, "fd00:55::/48"), "tun_close removed them");
	CHECK(strstr(out, "10.99.0.0/16 dev " VETH_NAME) != NULL, "and left the other route alone");
	CHECK_EQ_INT(nl_ifindex(nl, TUN_NAME), -ENODEV, "and the device");
}

int main(void)
{
	struct nl_watch *w = NULL;
	struct tun t;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("ok 1 - tun tests # SKIP needs root\n1..1\n");
		return 0;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		printf("ok 1 - tun tests # SKIP unshare(CLONE_NEWNET): %s\n1..1\n", strerror(errno));
		return 0;
	}
	if (access("/dev/net/tun", R_OK | W_OK) < 0) {
		printf("ok 1 - tun tests # SKIP no /dev/net/tun\n1..1\n");
		return 0;
	}
	CHECK_EQ_INT(nl_open(&nl), 0, "rtnetlink socket");
	if (!nl)
		return unit_done();
	CHECK_EQ_INT(nl_link_set_up(nl, nl_ifindex(nl, "lo"), true), 0, "lo up in the new namespace");
	CHECK_EQ_INT(nl_watch_open(&w), 0, "watcher subscribed");

	test_open_errors();
	test_netlink_errors();
	test_configured(&t);
	if (w)
		test_dump(w, &t);
	test_packets_out(&t);
	test_echo(&t, "10.88.0.5", "10.77.0.1");
	test_echo(&t, "fd00:88::5", "fd00:77::1");
	/* Linux drops a packet coming in with one of its own addresses as
	 * source (a martian) unless accept_local is on for the device; the
	 * original destination as source needs nothing. IPv6 takes either. */
	test_too_big(&t, "10.88.0.6", "10.88.0.6", 1200);
	CHECK(sh("sysctl -w net.ipv4.conf." TUN_NAME ".accept_local=1") == 0, "accept_local on the TUN");
	test_too_big(&t, "10.88.0.7", "10.77.0.1", 1200);
	test_too_big(&t, "fd00:88::6", "fd00:77::1", 1280);
	if (w)
		test_watch(w);
	test_close(&t);
	test_half_configured();

	nl_watch_close(w);
	nl_close(nl);
	return unit_done();
}
