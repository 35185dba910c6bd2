/* The BPF fast path in the daemon; see agent/fastpath.h for what it does
 * and the stop/restart rules.
 *
 * Which STUN ports XDP answers. XDP's Binding success response carries
 * XOR-MAPPED-ADDRESS (MAPPED-ADDRESS for RFC 3489 clients) and FINGERPRINT
 * when asked: all that a client of a single-address STUN service needs.
 * With AlternateListen the userspace service also answers with
 * OTHER-ADDRESS and RESPONSE-ORIGIN (RFC 5780; CHANGED-ADDRESS and
 * SOURCE-ADDRESS for RFC 3489), and that answer to the first plain request
 * is how behaviour-discovery clients (natctl netcheck, stun-client, the
 * agents' own discovery) learn the second address at all. XDP does not
 * write those attributes, and the `ports` map is keyed by port alone, so it
 * would answer on every address of the service. An RFC 5780 service
 * therefore keeps its ports in userspace, and says so in the log, until
 * bpf/natpath.bpf.c learns the two attributes; then set FASTPATH_XDP_RFC5780.
 * (Requests XDP cannot answer as the service would, CHANGE-REQUEST and
 * authenticated ones, it already passes to the socket.) */
#include "agent/fastpath.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_arp.h>
#include <linux/magic.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>

#include "agent/agent.h"
#include "agent/log.h"

#define FASTPATH_XDP_RFC5780 0

/* ---- uplinks ---- */

/* Interfaces chosen so far, with the first reason each was chosen for. */
struct uplinks {
	int ifindex[FASTPATH_MAX_LINKS];
	char why[FASTPATH_MAX_LINKS][128];
	unsigned n;
};

/* The interface's link type (ARPHRD_*), -1 if unknown. */
static int if_type(int ifindex, char name[IF_NAMESIZE])
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), type = -1;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	if (if_indextoname((unsigned)ifindex, ifr.ifr_name) && ioctl(fd, SIOCGIFHWADDR, &ifr) == 0)
		type = ifr.ifr_hwaddr.sa_family;
	snprintf(name, IF_NAMESIZE, "%s", ifr.ifr_name);
	close(fd);
	return type;
}

/* Records an uplink once. natpath parses Ethernet frames, so loopback and
 * layer-3 devices (a TUN, a WireGuard interface) are left out. */
static void uplinks_add(struct fastpath *fp, struct uplinks *u, int ifindex, const char *why)
{
	char name[IF_NAMESIZE];
	int type;

	for (unsigned i = 0; i < u->n; i++)
		if (u->ifindex[i] == ifindex)
			return;
	type = if_type(ifindex, name);
	if (type == ARPHRD_LOOPBACK)
		return;
	if (type != ARPHRD_ETHER) {
		log_info("%s: no BPF fast path on %s (%s): not an Ethernet interface", fp->name,
			 name, why);
		return;
	}
	if (u->n == FASTPATH_MAX_LINKS) {
		log_warn("%s: more than %d uplinks; no BPF fast path on the rest", fp->name,
			 FASTPATH_MAX_LINKS);
		return;
	}
	snprintf(u->why[u->n], sizeof(u->why[u->n]), "%s", why);
	u->ifindex[u->n++] = ifindex;
}

static bool ip_is_unspecified(const struct na_ip *ip)
{
	static const uint8_t zero[16];

	return !memcmp(ip->v6, zero, ip->family == AF_INET ? 4 : 16);
}

/* The interface holding a local address, 0 if none does. */
static int local_ifindex(const struct na_ip *ip)
{
	struct ifaddrs *ifa, *i;
	int ifindex = 0;

	if (getifaddrs(&ifa))
		return 0;
	for (i = ifa; i && !ifindex; i = i->ifa_next) {
		struct na_endpoint ep;

		if (!i->ifa_addr || i->ifa_addr->sa_family != ip->family ||
		    !na_endpoint_from_sockaddr(&ep, i->ifa_addr))
			continue;
		if (na_ip_equal(&ep.ip, ip))
			ifindex = (int)if_nametoindex(i->ifa_name);
	}
	freeifaddrs(ifa);
	return ifindex;
}

/* One rtnetlink request and its answers, through cb. */
static int rt_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	unsigned portid;
	int n, err = 0, rounds = 0;

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto out;
	}
	/* The kernel answers at once; a bound on the wait all the same. */
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO,
		   &(struct timeval){ .tv_sec = 1 }, sizeof(struct timeval));
	portid = mnl_socket_get_portid(nl);
	nlh->nlmsg_seq = (unsigned)time(NULL);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		err = -errno;
		goto out;
	}
	/* A dump ends with NLMSG_DONE, a request with its ACK (NLM_F_ACK): both
	 * make mnl_cb_run() return MNL_CB_STOP. */
	do {
		n = (int)mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0) {
			err = -errno;
			break;
		}
		n = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, data);
	} while (n > MNL_CB_STOP && ++rounds < 4096);
	if (n < 0)
		err = -errno;
out:
	mnl_socket_close(nl);
	return err;
}

struct rt_answer {
	int oif;
	uint32_t metric;
	bool local;  /* RTN_LOCAL: the address is ours */
	bool found;
	bool dump;   /* collecting default routes: the lowest metric wins */
};

static int rt_attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (type <= RTA_MAX)
		tb[type] = a;
	return MNL_CB_OK;
}

static int rt_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[RTA_MAX + 1] = { 0 };
	struct rt_answer *r = data;
	uint32_t metric;
	int oif;

	mnl_attr_parse(nlh, sizeof(*rtm), rt_attr_cb, tb);
	if (r->dump && (rtm->rtm_dst_len != 0 || rtm->rtm_table != RT_TABLE_MAIN ||
			rtm->rtm_type != RTN_UNICAST))
		return MNL_CB_OK;
	if (tb[RTA_OIF]) {
		oif = (int)mnl_attr_get_u32(tb[RTA_OIF]);
	} else if (tb[RTA_MULTIPATH] &&
		   mnl_attr_get_payload_len(tb[RTA_MULTIPATH]) >= sizeof(struct rtnexthop)) {
		const struct rtnexthop *nh = mnl_attr_get_payload(tb[RTA_MULTIPATH]);
		oif = nh->rtnh_ifindex;
	} else {
		return MNL_CB_OK;
	}
	metric = tb[RTA_PRIORITY] ? mnl_attr_get_u32(tb[RTA_PRIORITY]) : 0;
	if (!r->found || metric < r->metric) {
		r->oif = oif;
		r->metric = metric;
		r->local = rtm->rtm_type == RTN_LOCAL;
		r->found = true;
	}
	return MNL_CB_OK;
}

/* The interface the route to dst leaves by (what `ip route get` says). */
static int route_ifindex(const struct na_ip *dst, bool *local)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rt_answer r = { 0 };
	struct rtmsg *rtm;
	int err;

	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = dst->family;
	rtm->rtm_dst_len = dst->family == AF_INET ? 32 : 128;
	mnl_attr_put(nlh, RTA_DST, dst->family == AF_INET ? 4 : 16, dst->v6);
	err = rt_talk(nlh, rt_cb, &r);
	if (err)
		return err;
	*local = r.local;
	return r.found ? r.oif : -ENETUNREACH;
}

/* The interface of the family's default route with the lowest metric. */
static int default_ifindex(int family)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rt_answer r = { .dump = true };
	struct rtmsg *rtm;
	int err;

	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = family;
	err = rt_talk(nlh, rt_cb, &r);
	if (err)
		return err;
	return r.found ? r.oif : -ENETUNREACH;
}

static void uplink_for_remote(struct fastpath *fp, struct uplinks *u,
			      const struct na_endpoint *ep, const char *what)
{
	char a[NA_ENDPOINT_STRLEN], why[128];
	bool local = false;
	int ifindex = route_ifindex(&ep->ip, &local);

	if (ifindex < 0) {
		log_warn("%s: no route to %s %s (%s): no BPF fast path for it", fp->name, what,
			 na_endpoint_str(ep, a, sizeof(a)), strerror(-ifindex));
		return;
	}
	if (local) /* ourselves: loopback, nothing for XDP */
		return;
	snprintf(why, sizeof(why), "route to %s %s", what, na_endpoint_str(ep, a, sizeof(a)));
	uplinks_add(fp, u, ifindex, why);
}

/* Listen addresses: the interface holding it; a wildcard listens on all,
 * so the default routes' interfaces. */
static void uplink_for_listen(struct fastpath *fp, struct uplinks *u,
			      const struct na_endpoint *ep, const char *what)
{
	char a[NA_ENDPOINT_STRLEN], why[128];
	int ifindex;

	na_endpoint_str(ep, a, sizeof(a));
	if (ip_is_unspecified(&ep->ip)) {
		ifindex = default_ifindex(ep->ip.family);
		snprintf(why, sizeof(why), "default route, for %s %s", what, a);
	} else {
		ifindex = local_ifindex(&ep->ip);
		snprintf(why, sizeof(why), "holds %s %s", what, a);
	}
	if (ifindex <= 0) {
		log_warn("%s: no interface holds %s %s: no BPF fast path for it", fp->name, what, a);
		return;
	}
	uplinks_add(fp, u, ifindex, why);
}

static void uplinks_find(struct fastpath *fp, const struct config *cfg, const struct agent *agent,
			 struct uplinks *u)
{
	int ifindex;

	if (cfg->rdv.present && cfg->rdv.has_listen)
		uplink_for_listen(fp, u, &cfg->rdv.listen, "[Rendezvous] Listen");
	if (cfg->rdv.present && cfg->rdv.has_alternate)
		uplink_for_listen(fp, u, &cfg->rdv.alternate, "AlternateListen");
	if (cfg->has_rendezvous)
		uplink_for_remote(fp, u, &cfg->rendezvous, "Rendezvous");
	for (unsigned i = 0; i < cfg->n_stun; i++)
		uplink_for_remote(fp, u, &cfg->stun[i], "STUN");
	for (unsigned i = 0; i < cfg->n_peers; i++)
		if (cfg->peers[i].has_endpoint)
			uplink_for_remote(fp, u, &cfg->peers[i].endpoint, "peer Endpoint");
	if (u->n || !agent)
		return;
	/* An agent that names nobody to talk to is found by others: its
	 * packets come in where the default route goes out. */
	ifindex = default_ifindex(AF_INET);
	if (ifindex > 0)
		uplinks_add(fp, u, ifindex, "default route (IPv4)");
	ifindex = default_ifindex(AF_INET6);
	if (ifindex > 0)
		uplinks_add(fp, u, ifindex, "default route (IPv6)");
}

/* ---- managed ports ---- */

static bool port_withheld(const struct fastpath *fp, uint16_t port)
{
	for (unsigned i = 0; i < fp->n_withheld; i++)
		if (fp->withheld[i] == port)
			return true;
	return false;
}

/* Adds to the desired set; a STUN service role wins over the agent's. */
static void ports_want(struct fastpath *fp, uint16_t port, enum natpath_role role)
{
	unsigned i;

	if (!port || port_withheld(fp, port))
		return;
	for (i = 0; i < fp->n_ports; i++) {
		if (fp->ports[i].port != port)
			continue;
		if (natpath_role_serves_stun(role) && !natpath_role_serves_stun(fp->ports[i].role))
			fp->ports[i].role = role;
		return;
	}
	if (fp->n_ports < FASTPATH_MAX_PORTS)
		fp->ports[fp->n_ports++] = (struct fastpath_port){ port, role };
}

static void ports_withhold(struct fastpath *fp, uint16_t port)
{
	if (!port_withheld(fp, port) && fp->n_withheld < sizeof(fp->withheld) / sizeof(*fp->withheld))
		fp->withheld[fp->n_withheld++] = port;
}

static void ports_of_service(struct fastpath *fp, const struct config *cfg)
{
	const struct config_rendezvous *r = &cfg->rdv;

	if (!r->present || !r->has_listen)
		return;
	if (r->has_alternate && !FASTPATH_XDP_RFC5780) {
		ports_withhold(fp, r->listen.port);
		ports_withhold(fp, r->alternate.port);
		log_info("%s: STUN on ports %u and %u stays in userspace: XDP's answers lack "
			 "the OTHER-ADDRESS and RESPONSE-ORIGIN that AlternateListen's clients "
			 "need (RFC 5780)", fp->name, r->listen.port, r->alternate.port);
		return;
	}
	ports_want(fp, r->listen.port, NATPATH_ROLE_RENDEZVOUS);
	if (r->has_alternate)
		ports_want(fp, r->alternate.port, NATPATH_ROLE_ALTERNATE);
}

static void ports_of_agent(struct fastpath *fp, const struct agent *agent)
{
	if (!agent)
		return;
	for (unsigned i = 0; i < AGENT_MAX_SOCKS; i++)
		if (agent->socks[i].fd >= 0)
			ports_want(fp, agent->socks[i].port, NATPATH_ROLE_AGENT);
}

struct stale_ports {
	const struct fastpath *fp;
	uint16_t port[NATPATH_PORTS_MAX];
	unsigned n;
};

static int stale_collect(void *ctx, uint16_t port, enum natpath_role role)
{
	struct stale_ports *s = ctx;

	(void)role;
	for (unsigned i = 0; i < s->fp->n_ports; i++)
		if (s->fp->ports[i].port == port)
			return 0;
	if (s->n < NATPATH_PORTS_MAX)
		s->port[s->n++] = port;
	return 0;
}

/* Makes one link's `ports` map hold exactly fp->ports: what a previous run
 * left in reused maps, or a socket since closed, goes. */
static int link_sync_ports(struct fastpath_link *l)
{
	struct stale_ports stale = { .fp = l->fp, .n = 0 };
	int err = 0;

	for (unsigned i = 0; !err && i < l->fp->n_ports; i++)
		err = bpf_path_add_port(l->path, l->fp->ports[i].port, l->fp->ports[i].role);
	if (!err)
		err = bpf_path_ports_foreach(l->path, stale_collect, &stale);
	for (unsigned i = 0; !err && i < stale.n; i++)
		err = bpf_path_del_port(l->path, stale.port[i]);
	return err;
}

static const char *ports_str(const struct fastpath *fp, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < fp->n_ports && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%u (%s)", i ? ", " : "", fp->ports[i].port,
				      bpf_path_role_name(fp->ports[i].role));
	return fp->n_ports ? buf : "none";
}

/* ---- events ---- */

static int on_event(void *ctx, const struct natpath_event *ev)
{
	struct fastpath_link *l = ctx;
	struct natpath_cache_key k = { 0 };
	char a[NA_ENDPOINT_STRLEN], txid[25];
	struct na_endpoint remote;

	memcpy(k.addr, ev->addr, sizeof(k.addr));
	k.family = ev->family;
	k.remote_port = ev->remote_port;
	bpf_path_cache_remote(&k, &remote);
	na_endpoint_str(&remote, a, sizeof(a));
	switch (ev->type) {
	case NATPATH_EV_NEW_REMOTE:
		log_debug("%s: %s: new remote endpoint %s on port %u (%s)", l->fp->name, l->ifname,
			  a, ev->local_port, bpf_path_role_name(ev->role));
		break;
	case NATPATH_EV_PUNCH_CHECK:
		for (int i = 0; i < 12; i++)
			snprintf(txid + 2 * i, 3, "%02x", ev->txid[i]);
		log_debug("%s: %s: punch check from %s on port %u (%s), transaction %s",
			  l->fp->name, l->ifname, a, ev->local_port, bpf_path_role_name(ev->role),
			  txid);
		break;
	default:
		log_debug("%s: %s: event %u from %s", l->fp->name, l->ifname, ev->type, a);
	}
	return 0;
}

static void on_events(void *arg, uint32_t events)
{
	struct fastpath_link *l = arg;
	int n;

	(void)events;
	n = bpf_path_events_consume(l->path, on_event, l);
	if (n < 0) {
		/* Not worth stopping for: the cache still fills. */
		log_warn("%s: %s: reading BPF events: %s; no more events from it", l->fp->name,
			 l->ifname, strerror(-n));
		loop_del_fd(l->fp->loop, l->events_fd);
		l->events_fd = -1;
	}
}

/* ---- start / stop ---- */

static const char *pin_root(void)
{
	const char *env = getenv(FASTPATH_PIN_ROOT_ENV);

	return env && *env ? env : BPF_PATH_PIN_ROOT;
}

static bool is_bpffs(const char *dir)
{
	struct statfs st;

	return statfs(dir, &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

/* Whether this process runs in a mount namespace its parent does not
 * share, as `ip netns exec` makes one: a bpffs mounted there goes away
 * with it. */
static bool private_mounts(void)
{
	char self[64] = "", parent[64] = "", path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)getppid());
	if (readlink("/proc/self/ns/mnt", self, sizeof(self) - 1) < 0 ||
	    readlink(path, parent, sizeof(parent) - 1) < 0)
		return false;
	return strcmp(self, parent) != 0;
}

static int count_one(void *ctx, const struct natpath_cache_key *k, const struct natpath_cache_val *v)
{
	(void)k;
	(void)v;
	++*(unsigned *)ctx;
	return 0;
}

/* Permission or kernel support: the same for every interface. */
static bool error_is_global(int err)
{
	return err == -EPERM || err == -EACCES || err == -ENOSYS || err == -EOPNOTSUPP;
}

static int link_open(struct fastpath *fp, struct fastpath_link *l, int ifindex, const char *why)
{
	struct bpf_path_opts o = { .pin_root = pin_root(), .xdp_mode = BPF_PATH_XDP_AUTO };
	bool had_bpffs = is_bpffs(o.pin_root);
	char ports[256], mode[200], reused[64];
	const char *note;
	unsigned cached = 0;
	int err;

	memset(l, 0, sizeof(*l));
	l->fp = fp;
	l->events_fd = -1;
	l->ifindex = ifindex;
	if (!if_indextoname((unsigned)ifindex, l->ifname))
		return -errno;
	err = bpf_path_open(&l->path, l->ifname, &o);
	if (err) {
		log_warn("%s: no BPF fast path on %s: %s%s; natagent goes on without it (STUN is "
			 "answered in userspace)", fp->name, l->ifname, bpf_path_errmsg(),
			 err == -EPERM || err == -EACCES ? " (it needs CAP_BPF and CAP_NET_ADMIN, "
			 "and CAP_SYS_ADMIN where it mounts a bpffs)" : "");
		return err;
	}
	err = link_sync_ports(l);
	if (!err) {
		l->events_fd = bpf_path_events_fd(l->path);
		err = loop_add_fd(fp->loop, l->events_fd, EPOLLIN, on_events, l);
		if (err)
			l->events_fd = -1;
	}
	if (err) {
		log_warn("%s: no BPF fast path on %s: %s; natagent goes on without it (STUN is "
			 "answered in userspace)", fp->name, l->ifname,
			 err == -EEXIST || err == -ENOMEM ? strerror(-err) : bpf_path_errmsg());
		bpf_path_close(l->path, bpf_path_reused_pins(l->path));
		l->path = NULL;
		return err;
	}
	note = bpf_path_xdp_note(l->path);
	snprintf(mode, sizeof(mode), "%s mode%s%s%s",
		 bpf_path_xdp_mode_name(bpf_path_xdp_mode(l->path)), *note ? " (" : "", note,
		 *note ? ")" : "");
	reused[0] = '\0';
	if (bpf_path_reused_pins(l->path)) {
		bpf_path_cache_foreach(l->path, count_one, &cached);
		snprintf(reused, sizeof(reused), ", reused with %u cached endpoint%s", cached,
			 cached == 1 ? "" : "s");
	}
	log_info("%s: BPF fast path on %s (%s): XDP in %s, ports %s; maps pinned in %s%s",
		 fp->name, l->ifname, why, mode, ports_str(fp, ports, sizeof(ports)),
		 bpf_path_pin_dir(l->path), reused);
	if (bpf_path_replaced_stale(l->path))
		log_info("%s: %s: replaced the programs a previous run left attached", fp->name,
			 l->ifname);
	l->pins_private = !had_bpffs && private_mounts();
	if (l->pins_private)
		log_info("%s: mounted a bpffs on %s in this process's own mount namespace: the "
			 "pins go away with natagent; set %s to a bpffs mounted outside to keep "
			 "the cache across restarts", fp->name, o.pin_root, FASTPATH_PIN_ROOT_ENV);
	return 0;
}

int fastpath_start(struct fastpath *fp, struct loop *loop, const struct config *cfg,
		   const struct agent *agent, bool no_bpf)
{
	struct uplinks u = { .n = 0 };

	memset(fp, 0, sizeof(*fp));
	fp->loop = loop;
	fp->name = cfg->name;
	if (no_bpf) {
		log_info("%s: BPF fast path off (-B): STUN and keepalives are handled in userspace",
			 cfg->name);
		return 0;
	}
	ports_of_service(fp, cfg);
	ports_of_agent(fp, agent);
	if (!fp->n_ports) {
		log_info("%s: no port for the BPF fast path to manage; not attaching", cfg->name);
		return 0;
	}
	uplinks_find(fp, cfg, agent, &u);
	if (!u.n) {
		log_warn("%s: no uplink interface found for the BPF fast path; STUN is answered "
			 "in userspace", cfg->name);
		return 0;
	}
	for (unsigned i = 0; i < u.n; i++) {
		int err = link_open(fp, &fp->links[fp->n_links], u.ifindex[i], u.why[i]);

		if (!err)
			fp->n_links++;
		else if (error_is_global(err))
			break; /* every other interface would say the same */
	}
	return (int)fp->n_links;
}

void fastpath_agent_ports_changed(struct fastpath *fp, const struct agent *agent)
{
	struct fastpath_port keep[FASTPATH_MAX_PORTS];
	unsigned n = 0;
	char ports[256];

	if (!fp->n_links)
		return;
	/* The service's ports stay; the agent's are taken afresh. */
	for (unsigned i = 0; i < fp->n_ports; i++)
		if (fp->ports[i].role != NATPATH_ROLE_AGENT)
			keep[n++] = fp->ports[i];
	memcpy(fp->ports, keep, n * sizeof(*keep));
	fp->n_ports = n;
	ports_of_agent(fp, agent);
	for (unsigned i = 0; i < fp->n_links; i++) {
		int err = link_sync_ports(&fp->links[i]);

		if (err)
			log_warn("%s: %s: updating the BPF fast path's ports: %s", fp->name,
				 fp->links[i].ifname, bpf_path_errmsg());
	}
	log_debug("%s: BPF fast path ports now %s", fp->name, ports_str(fp, ports, sizeof(ports)));
}

void fastpath_add_token(struct fastpath *fp, uint64_t token)
{
	for (unsigned i = 0; i < fp->n_links; i++)
		if (bpf_path_add_token(fp->links[i].path, token) < 0)
			log_warn("%s: %s: cannot add a keepalive token: %s", fp->name,
				 fp->links[i].ifname, bpf_path_errmsg());
}

void fastpath_del_token(struct fastpath *fp, uint64_t token)
{
	for (unsigned i = 0; i < fp->n_links; i++)
		bpf_path_del_token(fp->links[i].path, token);
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t boot_to_mono(uint64_t t, uint64_t boot, uint64_t mono)
{
	return !t || boot - t > mono ? 0 : mono - (boot - t);
}

bool fastpath_last_seen(struct fastpath *fp, const struct na_endpoint *remote,
			uint16_t local_port, uint64_t *rx, uint64_t *tx)
{
	struct natpath_cache_key k;
	struct natpath_cache_val v;
	uint64_t last_rx = 0, last_tx = 0, boot, mono;
	bool found = false;

	bpf_path_cache_key(&k, remote, local_port);
	for (unsigned i = 0; i < fp->n_links; i++) {
		if (bpf_path_cache_get(fp->links[i].path, &k, &v) != 0)
			continue;
		found = true;
		if (v.last_rx_ns > last_rx)
			last_rx = v.last_rx_ns;
		if (v.last_tx_ns > last_tx)
			last_tx = v.last_tx_ns;
	}
	boot = clock_ns(CLOCK_BOOTTIME);
	mono = clock_ns(CLOCK_MONOTONIC);
	*rx = boot_to_mono(last_rx, boot, mono);
	*tx = boot_to_mono(last_tx, boot, mono);
	return found;
}

void fastpath_stop(struct fastpath *fp, bool keep_pins)
{
	for (unsigned i = 0; i < fp->n_links; i++) {
		struct fastpath_link *l = &fp->links[i];
		char dir[PATH_MAX];

		if (l->events_fd >= 0) {
			/* What arrived since the last wake-up, for the debug log. */
			bpf_path_events_consume(l->path, on_event, l);
			loop_del_fd(fp->loop, l->events_fd);
		}
		snprintf(dir, sizeof(dir), "%s", bpf_path_pin_dir(l->path));
		bpf_path_close(l->path, keep_pins);
		l->path = NULL;
		if (keep_pins && l->pins_private)
			log_info("%s: BPF fast path off %s; maps left pinned in %s, but that bpffs "
				 "goes away with this process's mount namespace", fp->name, l->ifname,
				 dir);
		else if (keep_pins)
			log_info("%s: BPF fast path off %s; maps stay pinned in %s for the next run",
				 fp->name, l->ifname, dir);
		else
			log_info("%s: BPF fast path off %s: detached and unpinned", fp->name, l->ifname);
	}
	fp->n_links = 0;
}
