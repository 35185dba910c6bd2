/* Loader for bpf/natpath.bpf.c; see agent/bpf.h.
 *
 * bpf_path_open, in order, each step undone in reverse on failure:
 *   1. pins:   make sure pin_root is a bpffs (mount one if not), create
 *              natagent/<ifname> in it;
 *   2. load:   open the skeleton with that directory as pin_root_path, so
 *              libbpf reuses maps a previous run pinned there (the cache
 *              survives a restart) and pins new ones;
 *   3. xdp:    attach, replacing a stale program of ours (same name), in
 *              native mode where the driver has it, else generic;
 *   4. tc:     create the clsact qdisc (tolerating one that exists; only a
 *              qdisc we created is destroyed later), attach egress at our
 *              handle/priority, replacing a stale filter of ours;
 *   5. events: the ring buffer reader.
 * XDP and tc are attached through netlink, not bpf_link: they stay attached
 * when the agent crashes, so STUN keeps being answered and the cache keeps
 * filling until the agent restarts and takes them over. */
#include "agent/bpf.h"

#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/sockios.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "natpath.skel.h"

struct bpf_path {
	struct natpath *skel;
	struct ring_buffer *rb;
	char ifname[IF_NAMESIZE];
	int ifindex;                 /* 0 when not attaching */
	char root[PATH_MAX];         /* the bpffs */
	char pin_dir[PATH_MAX];      /* root/natagent/ifname */
	bool mounted_root;           /* we mounted the bpffs */
	bool pins_ready;             /* pin_dir exists */
	bool reused_pins;
	bool replaced_stale;
	__u32 xdp_flags;             /* XDP_FLAGS_DRV_MODE / SKB_MODE once attached */
	char xdp_note[160];          /* why not native, when AUTO chose generic */
	bool tc_hook_created;
	bool tc_attached;
	bpf_path_event_fn ev_fn;     /* set for the length of one consume call */
	void *ev_ctx;
};

/* ---- errors ---- */

static __thread char path_errbuf[512];
/* What libbpf complained about while we loaded, appended to our message:
 * its first warning (which map did not match), or the tail of the verifier
 * log (why a program was refused). Later warnings only repeat "failed". */
static char path_libbpf_last[256];

const char *bpf_path_errmsg(void)
{
	return path_errbuf;
}

static int path_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int path_err(int err, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path_errbuf, sizeof(path_errbuf), fmt, ap);
	va_end(ap);
	n = strlen(path_errbuf);
	snprintf(path_errbuf + n, sizeof(path_errbuf) - n, ": %s", strerror(-err));
	return err;
}

/* Keeps the tail of that warning on one line (verifier logs end with the
 * reason and the instruction count). */
static int path_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[4096];
	size_t n, i;

	if (level != LIBBPF_WARN)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (path_libbpf_last[0] && !strstr(buf, "PROG LOAD LOG"))
		return 0;
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (i = 0; i < n; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	snprintf(path_libbpf_last, sizeof(path_libbpf_last), "%s",
		 n >= sizeof(path_libbpf_last) ? buf + n - sizeof(path_libbpf_last) + 1 : buf);
	return 0;
}

/* ---- 1. pins ---- */

/* dir + "/" + name into buf; -ENAMETOOLONG rather than a truncated path. */
static int path_join(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int path_mkdir(const char *dir)
{
	return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

/* mkdir -p for the pin root, which may be a fresh path like /run/x/bpf. */
static int path_mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	char *s;
	int err;

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (s = tmp + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		err = path_mkdir(tmp);
		*s = '/';
		if (err)
			return err;
	}
	return path_mkdir(tmp);
}

/* `ip netns exec` gives a fresh /sys without bpffs; pins made anywhere
 * else than on a bpffs would fail (or vanish), so mount one. */
static int path_ensure_bpffs(struct bpf_path *p)
{
	struct statfs st;
	int err;

	if (statfs(p->root, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	err = path_mkdir_p(p->root);
	if (err)
		return path_err(err, "creating pin root %s", p->root);
	if (mount("bpf", p->root, "bpf", 0, "mode=0700"))
		return path_err(-errno, "mounting bpffs on %s", p->root);
	p->mounted_root = true;
	return 0;
}

static int path_pins_prepare(struct bpf_path *p)
{
	char dir[PATH_MAX];
	int err;

	err = path_ensure_bpffs(p);
	if (err)
		return err;
	err = path_join(dir, sizeof(dir), p->root, "natagent");
	if (!err)
		err = path_mkdir(dir);
	if (!err)
		err = path_mkdir(p->pin_dir);
	if (err)
		return path_err(err, "creating %s", p->pin_dir);
	p->pins_ready = true;
	return 0;
}

/* Unpins every map, then removes what pins_prepare made if it is empty:
 * other interfaces' agents may share natagent/ and the mount. */
static void path_pins_remove(struct bpf_path *p)
{
	char dir[PATH_MAX];
	struct bpf_map *m;

	if (p->skel)
		bpf_object__for_each_map(m, p->skel->obj)
			if (bpf_map__is_pinned(m))
				bpf_map__unpin(m, NULL);
	if (p->pins_ready) {
		rmdir(p->pin_dir);
		if (path_join(dir, sizeof(dir), p->root, "natagent") == 0)
			rmdir(dir);
	}
	if (p->mounted_root && umount2(p->root, UMOUNT_NOFOLLOW) == 0)
		p->mounted_root = false;
}

/* ---- 2. load ---- */

static int path_load(struct bpf_path *p)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = p->pin_dir);
	char probe[PATH_MAX];
	int err;

	p->reused_pins = path_join(probe, sizeof(probe), p->pin_dir, "nat_cache") == 0 &&
			 access(probe, F_OK) == 0;
	path_libbpf_last[0] = '\0';
	p->skel = natpath__open_opts(&oo);
	err = p->skel ? natpath__load(p->skel) : -errno;
	if (!err)
		return 0;
	if (p->reused_pins && err == -EINVAL)
		return path_err(err, "loading natpath: the maps pinned in %s do not fit this "
				"build (remove them to start afresh) (%s)", p->pin_dir, path_libbpf_last);
	return path_err(err, "loading natpath (%s)", path_libbpf_last);
}

/* ---- 3. XDP ---- */

void bpf_path_prog_name(__u32 id, char *name, size_t len)
{
	struct bpf_prog_info info;
	__u32 info_len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	name[0] = '\0';
	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len) == 0)
		snprintf(name, len, "%s", info.name);
	close(fd);
}

/* Leaves in *id the program attached in one mode if it is ours (a stale
 * one), 0 if there is none; -EBUSY if it belongs to someone else. */
static int path_xdp_check_owner(struct bpf_path *p, __u32 *id, const char *mode)
{
	char name[BPF_OBJ_NAME_LEN];

	if (!*id)
		return 0;
	bpf_path_prog_name(*id, name, sizeof(name));
	if (strcmp(name, NATPATH_XDP_PROG_NAME) == 0)
		return 0;
	return path_err(-EBUSY, "%s already runs XDP program '%s' (id %u, %s mode), not ours",
			p->ifname, name, *id, mode);
}

static int path_xdp_stale(struct bpf_path *p, __u32 *drv_id, __u32 *skb_id)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int err = bpf_xdp_query(p->ifindex, 0, &q);

	if (err)
		return path_err(err, "querying XDP on %s", p->ifname);
	if (q.hw_prog_id)
		return path_err(-EBUSY, "%s has an offloaded XDP program (id %u)",
				p->ifname, q.hw_prog_id);
	*drv_id = q.drv_prog_id;
	*skb_id = q.skb_prog_id;
	err = path_xdp_check_owner(p, drv_id, "native");
	if (!err)
		err = path_xdp_check_owner(p, skb_id, "generic");
	return err;
}

/* Attaches in one mode, atomically replacing old_id when set. */
static int path_xdp_attach_mode(struct bpf_path *p, __u32 mode, __u32 old_id)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = -1);
	__u32 flags = mode | XDP_FLAGS_UPDATE_IF_NOEXIST;
	int err;

	if (old_id) {
		ao.old_prog_fd = bpf_prog_get_fd_by_id(old_id);
		if (ao.old_prog_fd < 0)
			return -errno;
		flags = mode | XDP_FLAGS_REPLACE;
	}
	err = bpf_xdp_attach(p->ifindex, bpf_program__fd(p->skel->progs.natpath_xdp), flags, &ao);
	if (ao.old_prog_fd >= 0)
		close(ao.old_prog_fd);
	return err;
}

/* Removes a stale program of ours from one mode: the kernel runs native
 * and generic XDP never both at once. */
static int path_xdp_detach_id(struct bpf_path *p, __u32 mode, __u32 id)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao);
	int err;

	ao.old_prog_fd = bpf_prog_get_fd_by_id(id);
	if (ao.old_prog_fd < 0)
		return -errno;
	err = bpf_xdp_detach(p->ifindex, mode | XDP_FLAGS_REPLACE, &ao);
	close(ao.old_prog_fd);
	return err;
}

/* Tries one mode, first clearing a stale program from the other. */
static int path_xdp_try(struct bpf_path *p, __u32 mode, __u32 *drv_id, __u32 *skb_id)
{
	__u32 *same = mode == XDP_FLAGS_DRV_MODE ? drv_id : skb_id;
	__u32 *other = mode == XDP_FLAGS_DRV_MODE ? skb_id : drv_id;
	__u32 other_mode = mode == XDP_FLAGS_DRV_MODE ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	int err;

	if (*other) {
		err = path_xdp_detach_id(p, other_mode, *other);
		if (err)
			return err;
		*other = 0;
	}
	err = path_xdp_attach_mode(p, mode, *same);
	if (!err) {
		*same = 0;
		p->xdp_flags = mode;
	}
	return err;
}

/* The interface's driver name per ethtool, "" if it has none. */
static void path_driver(const struct bpf_path *p, char *name, size_t len)
{
	struct ethtool_drvinfo di = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	name[0] = '\0';
	if (fd < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", p->ifname);
	ifr.ifr_data = (void *)&di;
	if (ioctl(fd, SIOCETHTOOL, &ifr) == 0)
		snprintf(name, len, "%s", di.driver);
	close(fd);
}

/* AUTO's choice. A veth runs native XDP, but a native XDP_TX only reaches
 * the other end when that end runs an XDP program too (the driver wakes
 * the peer's NAPI only then; otherwise answers sit in its ring). The other
 * end lives in a namespace natagent does not own, so AUTO takes generic
 * mode there, whose XDP_TX goes through the normal transmit path. */
static bool path_auto_native(struct bpf_path *p)
{
	char driver[32];

	path_driver(p, driver, sizeof(driver));
	if (strcmp(driver, "veth"))
		return true;
	snprintf(p->xdp_note, sizeof(p->xdp_note),
		 "veth: native XDP_TX needs an XDP program on the peer");
	return false;
}

static int path_attach_xdp(struct bpf_path *p, enum bpf_path_xdp_mode want)
{
	__u32 drv_id, skb_id;
	int err, native_err = 0;

	err = path_xdp_stale(p, &drv_id, &skb_id);
	if (err)
		return err;
	p->replaced_stale = drv_id || skb_id;
	if (want == BPF_PATH_XDP_NATIVE || (want == BPF_PATH_XDP_AUTO && path_auto_native(p))) {
		err = native_err = path_xdp_try(p, XDP_FLAGS_DRV_MODE, &drv_id, &skb_id);
		/* Fall back only where the driver lacks native XDP or refuses
		 * this setup; someone attaching meanwhile is no reason to. */
		if (!err || want == BPF_PATH_XDP_NATIVE || err == -EBUSY || err == -EEXIST)
			goto out;
		snprintf(p->xdp_note, sizeof(p->xdp_note), "native mode: %s", strerror(-err));
	}
	err = path_xdp_try(p, XDP_FLAGS_SKB_MODE, &drv_id, &skb_id);
out:
	if (!err)
		return 0;
	if (native_err && err != native_err)
		return path_err(err, "attaching XDP to %s (native mode: %s; generic mode)",
				p->ifname, strerror(-native_err));
	return path_err(err, "attaching XDP to %s", p->ifname);
}

static void path_detach_xdp(struct bpf_path *p)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao,
		.old_prog_fd = bpf_program__fd(p->skel->progs.natpath_xdp));

	/* REPLACE with our fd: if someone replaced us meanwhile, theirs stays. */
	if (p->xdp_flags)
		bpf_xdp_detach(p->ifindex, p->xdp_flags | XDP_FLAGS_REPLACE, &ao);
	p->xdp_flags = 0;
}

/* ---- 4. tc ---- */

static void path_tc_hook(const struct bpf_path *p, struct bpf_tc_hook *hook)
{
	memset(hook, 0, sizeof(*hook));
	hook->sz = sizeof(*hook);
	hook->ifindex = p->ifindex;
	hook->attach_point = BPF_TC_EGRESS;
}

/* Whether our handle/priority holds a filter already: a stale one of ours
 * (1) is replaced, anyone else's is an error. */
static int path_tc_stale(struct bpf_path *p, struct bpf_tc_hook *hook)
{
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = NATPATH_TC_HANDLE, .priority = NATPATH_TC_PRIORITY);
	char name[BPF_OBJ_NAME_LEN];
	int err = bpf_tc_query(hook, &q);

	/* An empty clsact has no filter chain yet: the kernel says EINVAL. */
	if (err == -ENOENT || err == -EINVAL)
		return 0;
	if (err)
		return path_err(err, "querying tc egress on %s", p->ifname);
	bpf_path_prog_name(q.prog_id, name, sizeof(name));
	if (strcmp(name, NATPATH_TC_PROG_NAME) == 0)
		return 1;
	return path_err(-EBUSY, "%s has tc filter %#x prio %#x with program '%s', not ours",
			p->ifname, NATPATH_TC_HANDLE, NATPATH_TC_PRIORITY, name);
}

static int path_attach_tc(struct bpf_path *p)
{
	LIBBPF_OPTS(bpf_tc_opts, ao, .handle = NATPATH_TC_HANDLE, .priority = NATPATH_TC_PRIORITY,
		.prog_fd = bpf_program__fd(p->skel->progs.natpath_tc));
	struct bpf_tc_hook hook;
	int err, stale;

	path_tc_hook(p, &hook);
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		return path_err(err, "creating clsact on %s", p->ifname);
	p->tc_hook_created = !err;
	stale = path_tc_stale(p, &hook);
	if (stale < 0)
		return stale;
	if (stale) {
		ao.flags = BPF_TC_F_REPLACE;
		p->replaced_stale = true;
	}
	err = bpf_tc_attach(&hook, &ao);
	if (err)
		return path_err(err, "attaching tc egress to %s", p->ifname);
	p->tc_attached = true;
	return 0;
}

static void path_detach_tc(struct bpf_path *p)
{
	LIBBPF_OPTS(bpf_tc_opts, d, .handle = NATPATH_TC_HANDLE, .priority = NATPATH_TC_PRIORITY);
	struct bpf_tc_hook hook;

	path_tc_hook(p, &hook);
	if (p->tc_attached)
		bpf_tc_detach(&hook, &d);
	p->tc_attached = false;
	if (p->tc_hook_created) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
	}
	p->tc_hook_created = false;
}

/* ---- 5. events ---- */

static int path_on_sample(void *ctx, void *data, size_t size)
{
	struct bpf_path *p = ctx;

	if (size < sizeof(struct natpath_event) || !p->ev_fn)
		return 0;
	return p->ev_fn(p->ev_ctx, data);
}

static int path_open_events(struct bpf_path *p)
{
	p->rb = ring_buffer__new(bpf_map__fd(p->skel->maps.events), path_on_sample, p, NULL);
	if (!p->rb)
		return path_err(-errno, "opening the events ring buffer");
	return 0;
}

/* ---- open / close ---- */

static int path_init(struct bpf_path *p, const char *ifname, const struct bpf_path_opts *opts)
{
	const char *root = opts->pin_root ? opts->pin_root : BPF_PATH_PIN_ROOT;

	if (!*ifname || strlen(ifname) >= IF_NAMESIZE || strchr(ifname, '/') ||
	    !strcmp(ifname, ".") || !strcmp(ifname, ".."))
		return path_err(-EINVAL, "bad interface name '%s'", ifname);
	if (root[0] != '/' || strlen(root) + strlen(ifname) + 32 >= PATH_MAX)
		return path_err(-EINVAL, "bad pin root '%s'", root);
	strcpy(p->ifname, ifname);
	strcpy(p->root, root);
	if (snprintf(p->pin_dir, sizeof(p->pin_dir), "%s/natagent/%s", root, ifname) >=
	    (int)sizeof(p->pin_dir))
		return path_err(-ENAMETOOLONG, "pin root '%s'", root);
	if (opts->no_attach)
		return 0;
	p->ifindex = if_nametoindex(ifname);
	if (!p->ifindex)
		return path_err(-errno, "interface %s", ifname);
	return 0;
}

/* Undoes whatever open got to. Pins a previous run left stay unless the
 * caller closes for good: they hold the cache a restart must find. */
static void path_teardown(struct bpf_path *p, bool keep_pins)
{
	if (p->skel && p->ifindex) {
		path_detach_tc(p);
		path_detach_xdp(p);
	}
	ring_buffer__free(p->rb);
	if (!keep_pins)
		path_pins_remove(p);
	natpath__destroy(p->skel);
	free(p);
}

static int path_open(struct bpf_path *p, const char *ifname, const struct bpf_path_opts *opts)
{
	int err;

	err = path_init(p, ifname, opts);
	if (!err)
		err = path_pins_prepare(p);
	if (!err)
		err = path_load(p);
	if (!err && !opts->no_attach)
		err = path_attach_xdp(p, opts->xdp_mode);
	if (!err && !opts->no_attach)
		err = path_attach_tc(p);
	if (!err)
		err = path_open_events(p);
	return err;
}

int bpf_path_open(struct bpf_path **out, const char *ifname, const struct bpf_path_opts *opts)
{
	static const struct bpf_path_opts defaults;
	libbpf_print_fn_t old_print;
	struct bpf_path *p;
	int err;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return path_err(-ENOMEM, "bpf_path");
	/* libbpf's warnings go into our error message, not to stderr. */
	old_print = libbpf_set_print(path_libbpf_print);
	err = path_open(p, ifname, opts ? opts : &defaults);
	libbpf_set_print(old_print);
	if (err) {
		path_teardown(p, p->reused_pins);
		return err;
	}
	*out = p;
	return 0;
}

void bpf_path_close(struct bpf_path *p, bool keep_pins)
{
	if (p)
		path_teardown(p, keep_pins);
}

enum bpf_path_xdp_mode bpf_path_xdp_mode(const struct bpf_path *p)
{
	if (p->xdp_flags == XDP_FLAGS_DRV_MODE)
		return BPF_PATH_XDP_NATIVE;
	if (p->xdp_flags == XDP_FLAGS_SKB_MODE)
		return BPF_PATH_XDP_GENERIC;
	return BPF_PATH_XDP_NONE;
}

const char *bpf_path_xdp_note(const struct bpf_path *p)
{
	return p->xdp_note;
}

bool bpf_path_replaced_stale(const struct bpf_path *p)
{
	return p->replaced_stale;
}

bool bpf_path_reused_pins(const struct bpf_path *p)
{
	return p->reused_pins;
}

const char *bpf_path_pin_dir(const struct bpf_path *p)
{
	return p->pin_dir;
}

int bpf_path_xdp_fd(const struct bpf_path *p)
{
	return bpf_program__fd(p->skel->progs.natpath_xdp);
}

int bpf_path_tc_fd(const struct bpf_path *p)
{
	return bpf_program__fd(p->skel->progs.natpath_tc);
}

/* ---- ports, tokens, mappings ---- */

static int path_update(struct bpf_map *m, const void *k, const void *v, const char *what)
{
	if (bpf_map_update_elem(bpf_map__fd(m), k, v, BPF_ANY))
		return path_err(-errno, "updating %s", what);
	return 0;
}

static int path_delete(struct bpf_map *m, const void *k, const char *what)
{
	if (bpf_map_delete_elem(bpf_map__fd(m), k))
		return path_err(-errno, "deleting from %s", what);
	return 0;
}

int bpf_path_add_port(struct bpf_path *p, uint16_t port, enum natpath_role role)
{
	__u32 r = role;

	if (role <= NATPATH_ROLE_NONE || role >= NATPATH_ROLE_MAX)
		return path_err(-EINVAL, "port %u: role %d", port, role);
	return path_update(p->skel->maps.ports, &port, &r, "ports");
}

int bpf_path_del_port(struct bpf_path *p, uint16_t port)
{
	return path_delete(p->skel->maps.ports, &port, "ports");
}

int bpf_path_add_token(struct bpf_path *p, uint64_t token)
{
	struct natpath_token t = { 0 };
	__u64 k = token;

	/* NOEXIST keeps the hit count of a token installed twice. */
	if (bpf_map_update_elem(bpf_map__fd(p->skel->maps.tokens), &k, &t, BPF_NOEXIST) &&
	    errno != EEXIST)
		return path_err(-errno, "updating tokens");
	return 0;
}

int bpf_path_del_token(struct bpf_path *p, uint64_t token)
{
	__u64 k = token;

	return path_delete(p->skel->maps.tokens, &k, "tokens");
}

/* An address in the maps' layout: IPv4 in the first 4 bytes, like na_ip. */
static void path_addr_put(__u8 addr[16], __u8 *family, const struct na_ip *ip)
{
	memset(addr, 0, 16);
	*family = ip->family == AF_INET ? NATPATH_AF_INET : NATPATH_AF_INET6;
	memcpy(addr, ip->family == AF_INET ? ip->v4 : ip->v6, ip->family == AF_INET ? 4 : 16);
}

static void path_addr_get(const __u8 addr[16], __u8 family, struct na_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	ip->family = family == NATPATH_AF_INET ? AF_INET : AF_INET6;
	memcpy(ip->v6, addr, family == NATPATH_AF_INET ? 4 : 16);
}

int bpf_path_set_mapping(struct bpf_path *p, uint16_t local_port, const struct na_endpoint *pub,
			 enum natpath_map_source src, uint64_t expires_ns)
{
	struct natpath_mapping m;

	if (pub->ip.family != AF_INET && pub->ip.family != AF_INET6)
		return path_err(-EAFNOSUPPORT, "mapping for port %u", local_port);
	memset(&m, 0, sizeof(m));
	path_addr_put(m.addr, &m.family, &pub->ip);
	m.port = pub->port;
	m.source = src;
	m.expires_ns = expires_ns;
	return path_update(p->skel->maps.mappings, &local_port, &m, "mappings");
}

int bpf_path_del_mapping(struct bpf_path *p, uint16_t local_port)
{
	return path_delete(p->skel->maps.mappings, &local_port, "mappings");
}

/* ---- nat_cache ---- */

void bpf_path_cache_key(struct natpath_cache_key *k, const struct na_endpoint *remote,
			uint16_t local_port)
{
	memset(k, 0, sizeof(*k)); /* the hash covers the padding */
	path_addr_put(k->addr, &k->family, &remote->ip);
	k->remote_port = remote->port;
	k->local_port = local_port;
}

void bpf_path_cache_remote(const struct natpath_cache_key *k, struct na_endpoint *remote)
{
	path_addr_get(k->addr, k->family, &remote->ip);
	remote->port = k->remote_port;
}

int bpf_path_cache_get(struct bpf_path *p, const struct natpath_cache_key *k,
		       struct natpath_cache_val *v)
{
	if (bpf_map_lookup_elem(bpf_map__fd(p->skel->maps.nat_cache), k, v))
		return -errno;
	return 0;
}

/* The walks below take map fds, so that bpf_pins (natctl, reading what a
 * running agent pinned) shares them with the loaded bpf_path. */
static int maps_cache_foreach(int fd, bpf_path_cache_fn fn, void *ctx)
{
	struct natpath_cache_key k, next;
	struct natpath_cache_val v;
	const void *cur = NULL;
	int err;

	while (bpf_map_get_next_key(fd, cur, &next) == 0) {
		k = next;
		cur = &k;
		if (bpf_map_lookup_elem(fd, &k, &v))
			continue; /* evicted meanwhile */
		err = fn(ctx, &k, &v);
		if (err)
			return err;
	}
	return errno == ENOENT ? 0 : path_err(-errno, "walking nat_cache");
}

int bpf_path_cache_foreach(struct bpf_path *p, bpf_path_cache_fn fn, void *ctx)
{
	return maps_cache_foreach(bpf_map__fd(p->skel->maps.nat_cache), fn, ctx);
}

int bpf_path_cache_set_flags(struct bpf_path *p, const struct natpath_cache_key *k,
			     uint32_t set, uint32_t clear)
{
	int fd = bpf_map__fd(p->skel->maps.nat_cache);
	struct natpath_cache_val v;

	if (bpf_map_lookup_elem(fd, k, &v))
		return -errno;
	v.flags = (v.flags & ~clear) | set;
	if (bpf_map_update_elem(fd, k, &v, BPF_EXIST))
		return path_err(-errno, "updating nat_cache flags");
	return 0;
}

/* ---- stats ---- */

static int maps_stats_get(int fd, const struct natpath_stats_key *k, struct natpath_stat *sum)
{
	int ncpu = libbpf_num_possible_cpus(), i, err = 0;
	struct natpath_stat *vals;

	if (ncpu <= 0)
		return path_err(ncpu ? ncpu : -EINVAL, "counting CPUs");
	/* Per-CPU values come one per possible CPU, each rounded up to 8
	 * bytes, which struct natpath_stat already is. */
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return path_err(-ENOMEM, "stats");
	memset(sum, 0, sizeof(*sum));
	if (bpf_map_lookup_elem(fd, k, vals))
		err = -errno;
	for (i = 0; !err && i < ncpu; i++) {
		sum->packets += vals[i].packets;
		sum->bytes += vals[i].bytes;
	}
	free(vals);
	return err;
}

int bpf_path_stats_get(struct bpf_path *p, const struct natpath_stats_key *k,
		       struct natpath_stat *sum)
{
	return maps_stats_get(bpf_map__fd(p->skel->maps.stats), k, sum);
}

static int maps_stats_foreach(int fd, bpf_path_stats_fn fn, void *ctx)
{
	struct natpath_stats_key k, next;
	struct natpath_stat sum;
	const void *cur = NULL;
	int err;

	while (bpf_map_get_next_key(fd, cur, &next) == 0) {
		k = next;
		cur = &k;
		err = maps_stats_get(fd, &k, &sum);
		if (err == -ENOENT)
			continue;
		if (!err)
			err = fn(ctx, &k, &sum);
		if (err)
			return err;
	}
	return errno == ENOENT ? 0 : path_err(-errno, "walking stats");
}

int bpf_path_stats_foreach(struct bpf_path *p, bpf_path_stats_fn fn, void *ctx)
{
	return maps_stats_foreach(bpf_map__fd(p->skel->maps.stats), fn, ctx);
}

/* ---- ports ---- */

static int maps_ports_foreach(int fd, bpf_path_port_fn fn, void *ctx)
{
	__u16 k, next;
	const void *cur = NULL;
	__u32 role;
	int err;

	while (bpf_map_get_next_key(fd, cur, &next) == 0) {
		k = next;
		cur = &k;
		if (bpf_map_lookup_elem(fd, &k, &role))
			continue;
		err = fn(ctx, k, (enum natpath_role)role);
		if (err)
			return err;
	}
	return errno == ENOENT ? 0 : path_err(-errno, "walking ports");
}

int bpf_path_ports_foreach(struct bpf_path *p, bpf_path_port_fn fn, void *ctx)
{
	return maps_ports_foreach(bpf_map__fd(p->skel->maps.ports), fn, ctx);
}

/* ---- read-only access to pinned maps ---- */

struct bpf_pins {
	int cache_fd, stats_fd, ports_fd;
};

/* Opens one pinned map read-only and checks that its layout is this
 * build's: reading another version's values as ours would print garbage. */
static int pins_open_map(const char *dir, const char *name, __u32 type, __u32 key_size,
			 __u32 value_size)
{
	LIBBPF_OPTS(bpf_obj_get_opts, o, .file_flags = BPF_F_RDONLY);
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd, err;

	err = path_join(path, sizeof(path), dir, name);
	if (err)
		return path_err(err, "%s", dir);
	fd = bpf_obj_get_opts(path, &o);
	if (fd < 0)
		return path_err(-errno, "opening %s", path);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		err = path_err(-errno, "reading what %s is", path);
		close(fd);
		return err;
	}
	if (info.type != type || info.key_size != key_size || info.value_size != value_size) {
		close(fd);
		return path_err(-EPROTO, "%s was pinned by another version of natagent "
				"(type %u, key %u, value %u bytes; this one wants %u, %u, %u)",
				path, info.type, info.key_size, info.value_size, type, key_size,
				value_size);
	}
	return fd;
}

int bpf_pins_open(struct bpf_pins **out, const char *pin_dir)
{
	struct bpf_pins *p;
	int err = 0;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return path_err(-ENOMEM, "bpf_pins");
	p->cache_fd = pins_open_map(pin_dir, "nat_cache", BPF_MAP_TYPE_LRU_HASH,
				    sizeof(struct natpath_cache_key),
				    sizeof(struct natpath_cache_val));
	p->stats_fd = p->cache_fd < 0 ? -1 :
		pins_open_map(pin_dir, "stats", BPF_MAP_TYPE_PERCPU_HASH,
			      sizeof(struct natpath_stats_key), sizeof(struct natpath_stat));
	p->ports_fd = p->stats_fd < 0 ? -1 :
		pins_open_map(pin_dir, "ports", BPF_MAP_TYPE_HASH, sizeof(__u16), sizeof(__u32));
	if (p->cache_fd < 0)
		err = p->cache_fd;
	else if (p->stats_fd < 0)
		err = p->stats_fd;
	else if (p->ports_fd < 0)
		err = p->ports_fd;
	if (err) {
		bpf_pins_close(p);
		return err;
	}
	*out = p;
	return 0;
}

void bpf_pins_close(struct bpf_pins *p)
{
	if (!p)
		return;
	if (p->cache_fd >= 0)
		close(p->cache_fd);
	if (p->stats_fd >= 0)
		close(p->stats_fd);
	if (p->ports_fd >= 0)
		close(p->ports_fd);
	free(p);
}

int bpf_pins_cache_foreach(struct bpf_pins *p, bpf_path_cache_fn fn, void *ctx)
{
	return maps_cache_foreach(p->cache_fd, fn, ctx);
}

int bpf_pins_stats_foreach(struct bpf_pins *p, bpf_path_stats_fn fn, void *ctx)
{
	return maps_stats_foreach(p->stats_fd, fn, ctx);
}

int bpf_pins_ports_foreach(struct bpf_pins *p, bpf_path_port_fn fn, void *ctx)
{
	return maps_ports_foreach(p->ports_fd, fn, ctx);
}

/* ---- events ---- */

int bpf_path_events_fd(const struct bpf_path *p)
{
	return ring_buffer__epoll_fd(p->rb);
}

int bpf_path_events_consume(struct bpf_path *p, bpf_path_event_fn fn, void *ctx)
{
	int n;

	p->ev_fn = fn;
	p->ev_ctx = ctx;
	n = ring_buffer__consume(p->rb);
	p->ev_fn = NULL;
	p->ev_ctx = NULL;
	return n;
}

/* ---- names ---- */

static const char *path_name(const char *const *names, unsigned n, unsigned i)
{
	return i < n && names[i] ? names[i] : "?";
}

const char *bpf_path_xdp_mode_name(enum bpf_path_xdp_mode mode)
{
	static const char *const names[] = {
		[BPF_PATH_XDP_AUTO] = "auto", [BPF_PATH_XDP_NATIVE] = "native",
		[BPF_PATH_XDP_GENERIC] = "generic", [BPF_PATH_XDP_NONE] = "none",
	};

	return path_name(names, sizeof(names) / sizeof(names[0]), mode);
}

const char *bpf_path_reason_name(unsigned reason)
{
	static const char *const names[NATPATH_R_MAX] = {
		[NATPATH_R_NONE] = "none",
		[NATPATH_R_ETH_SHORT] = "eth_short",
		[NATPATH_R_NOT_IP] = "not_ip",
		[NATPATH_R_IP_SHORT] = "ip_short",
		[NATPATH_R_IP_VERSION] = "ip_version",
		[NATPATH_R_IP_IHL] = "ip_ihl",
		[NATPATH_R_IP_OPTIONS] = "ip_options",
		[NATPATH_R_IP_FRAGMENT] = "ip_fragment",
		[NATPATH_R_NOT_UDP] = "not_udp",
		[NATPATH_R_IP_LEN] = "ip_len",
		[NATPATH_R_UDP_SHORT] = "udp_short",
		[NATPATH_R_UDP_LEN] = "udp_len",
		[NATPATH_R_PORT_UNMANAGED] = "port_unmanaged",
		[NATPATH_R_IP_CSUM] = "ip_csum",
		[NATPATH_R_QUIC] = "quic",
		[NATPATH_R_WIREGUARD] = "wireguard",
		[NATPATH_R_OTHER] = "other",
		[NATPATH_R_STUN_LEN] = "stun_len",
		[NATPATH_R_STUN_ATTR] = "stun_attr",
		[NATPATH_R_STUN_OTHER] = "stun_other",
		[NATPATH_R_STUN_PUNCH_CHECK] = "stun_punch_check",
		[NATPATH_R_STUN_UNKNOWN_ATTR] = "stun_unknown_attr",
		[NATPATH_R_STUN_CHANGE_REQUEST] = "stun_change_request",
		[NATPATH_R_STUN_TOO_BIG] = "stun_too_big",
		[NATPATH_R_STUN_NOT_UNICAST] = "stun_not_unicast",
		[NATPATH_R_UDP_CSUM] = "udp_csum",
		[NATPATH_R_UDP_CSUM_ZERO6] = "udp_csum_zero6",
		[NATPATH_R_STUN_ANSWERED] = "stun_answered",
		[NATPATH_R_STUN_ANSWERED_3489] = "stun_answered_3489",
		[NATPATH_R_STUN_INDICATION] = "stun_indication",
		[NATPATH_R_KEEPALIVE] = "keepalive",
		[NATPATH_R_KEEPALIVE_BAD_TOKEN] = "keepalive_bad_token",
		[NATPATH_R_TX_ADJUST] = "tx_adjust",
		[NATPATH_R_TX_BOUNDS] = "tx_bounds",
		[NATPATH_R_TC_PULL] = "tc_pull",
		[NATPATH_R_TC_TRACKED] = "tc_tracked",
		[NATPATH_R_EVENT_LOST] = "event_lost",
		[NATPATH_R_CACHE_ERR] = "cache_err",
	};

	return path_name(names, NATPATH_R_MAX, reason);
}

const char *bpf_path_role_name(unsigned role)
{
	static const char *const names[NATPATH_ROLE_MAX] = {
		[NATPATH_ROLE_NONE] = "none", [NATPATH_ROLE_AGENT] = "agent",
		[NATPATH_ROLE_RENDEZVOUS] = "rendezvous", [NATPATH_ROLE_ALTERNATE] = "alternate",
		[NATPATH_ROLE_WIREGUARD] = "wireguard",
	};

	return path_name(names, NATPATH_ROLE_MAX, role);
}

const char *bpf_path_class_name(unsigned class)
{
	static const char *const names[NATPATH_CLASS_MAX] = {
		[NATPATH_CLASS_NONE] = "none", [NATPATH_CLASS_STUN] = "stun",
		[NATPATH_CLASS_QUIC] = "quic", [NATPATH_CLASS_WIREGUARD] = "wireguard",
		[NATPATH_CLASS_OTHER] = "other",
	};

	return path_name(names, NATPATH_CLASS_MAX, class);
}

const char *bpf_path_action_name(unsigned action)
{
	switch (action) {
	case NATPATH_ACT_ABORTED: return "aborted";
	case NATPATH_ACT_DROP: return "drop";
	case NATPATH_ACT_PASS: return "pass";
	case NATPATH_ACT_TX: return "tx";
	case NATPATH_ACT_TC_OK: return "tc_ok";
	case NATPATH_ACT_NONE: return "none";
	}
	return "?";
}
