/* agent/bpf.c without a network: pin root handling (mounting a bpffs where
 * there is none), pins that survive a restart with keep_pins and vanish
 * without, map access through the API, events, and error messages.
 * Attaching is left to tests/netns/bpf_xdp_stun.sh.
 *
 * Runs in a private mount namespace of its own, so the bpffs the loader
 * mounts disappears with the process even if it crashes. Needs root. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/magic.h>
#include <bpf/bpf.h>

#include "agent/bpf.h"
#include "tests/unit/unit.h"

#define IFNAME "natpath0"
#define PORT   51820

static char root[64];

/* A UDP datagram from 192.0.2.9:port to 192.0.2.1:PORT with a QUIC-looking
 * payload; no UDP checksum (allowed on IPv4). */
static size_t build_quic(uint8_t *b, uint16_t port)
{
	uint32_t sum = 0;
	size_t i;

	memset(b, 0, 14 + 20 + 8 + 16);
	b[12] = 0x08;
	b[14] = 0x45;
	b[14 + 3] = 20 + 8 + 16;
	b[14 + 8] = 64;
	b[14 + 9] = 17;
	memcpy(b + 14 + 12, (uint8_t[]){ 192, 0, 2, 9, 192, 0, 2, 1 }, 8);
	for (i = 0; i < 20; i += 2)
		sum += b[14 + i] << 8 | b[14 + i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	b[14 + 10] = ~sum >> 8;
	b[14 + 11] = ~sum;
	b[34] = port >> 8;
	b[35] = port;
	b[36] = PORT >> 8;
	b[37] = PORT & 0xff;
	b[39] = 8 + 16;
	b[42] = 0x40 | 0x3;
	return 14 + 20 + 8 + 16;
}

static int run_xdp(struct bpf_path *p, uint16_t port)
{
	uint8_t pkt[128];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = build_quic(pkt, port),
		.repeat = 1);

	if (bpf_prog_test_run_opts(bpf_path_xdp_fd(p), &o))
		return -errno;
	return o.retval;
}

static bool is_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

static bool pinned(const char *map)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/natagent/" IFNAME "/%s", root, map);
	return access(path, F_OK) == 0;
}

static int count_cb(void *ctx, const struct natpath_cache_key *k, const struct natpath_cache_val *v)
{
	(void)k;
	(void)v;
	++*(int *)ctx;
	return 0;
}

static int event_cb(void *ctx, const struct natpath_event *ev)
{
	if (ev->type == NATPATH_EV_NEW_REMOTE && ev->local_port == PORT)
		++*(int *)ctx;
	return 0;
}

static struct natpath_cache_key client_key(uint16_t port)
{
	struct na_endpoint ep;
	struct natpath_cache_key k;

	na_endpoint_parse(&ep, "192.0.2.9:1", false);
	ep.port = port;
	bpf_path_cache_key(&k, &ep, PORT);
	return k;
}

/* First run: mounts a bpffs on a plain directory, pins, caches a client. */
static void test_first_run(void)
{
	struct bpf_path_opts o = { .pin_root = root, .no_attach = true };
	struct natpath_stats_key sk = { NATPATH_AF_INET, NATPATH_CLASS_QUIC, NATPATH_ACT_PASS,
					NATPATH_R_QUIC };
	struct natpath_cache_key k = client_key(40001);
	struct natpath_cache_val v;
	struct natpath_stat st;
	struct na_endpoint pub, back;
	struct bpf_path *p;
	int err, events = 0;

	err = bpf_path_open(&p, IFNAME, &o);
	CHECK(err == 0, "open with a fresh pin root (%s)", err ? bpf_path_errmsg() : "ok");
	if (err)
		return;
	CHECK(is_bpffs(root), "a bpffs was mounted on the pin root");
	CHECK(pinned("nat_cache") && pinned("ports") && pinned("tokens") && pinned("mappings") &&
	      pinned("stats") && pinned("events"), "all six maps pinned");
	CHECK(!bpf_path_reused_pins(p), "nothing to reuse the first time");
	CHECK(bpf_path_xdp_mode(p) == BPF_PATH_XDP_NONE, "no_attach attaches nothing");
	CHECK(bpf_path_add_port(p, PORT, NATPATH_ROLE_AGENT) == 0, "add port");
	CHECK(bpf_path_add_port(p, 1, 99) == -EINVAL, "bad role refused");
	CHECK(bpf_path_add_token(p, 42) == 0 && bpf_path_add_token(p, 42) == 0, "add token twice");
	na_endpoint_parse(&pub, "203.0.113.5:62000", false);
	CHECK(bpf_path_set_mapping(p, PORT, &pub, NATPATH_SRC_PCP, 123) == 0, "set mapping");
	CHECK_EQ_INT(run_xdp(p, 40001), XDP_PASS, "QUIC on the managed port passes");
	CHECK(bpf_path_cache_get(p, &k, &v) == 0 && v.rx_packets == 1 && v.rx_bytes == 16,
	      "nat_cache through the API");
	bpf_path_cache_remote(&k, &back);
	CHECK(back.ip.family == AF_INET && back.port == 40001 && !memcmp(back.ip.v4, "\xc0\0\2\x09", 4),
	      "cache key converts back to an endpoint");
	CHECK(bpf_path_cache_set_flags(p, &k, NATPATH_F_PUNCHED, 0) == 0 &&
	      bpf_path_cache_get(p, &k, &v) == 0 && v.flags == NATPATH_F_PUNCHED && v.rx_packets == 1,
	      "set a cache flag, counters kept");
	CHECK(bpf_path_stats_get(p, &sk, &st) == 0 && st.packets == 1 && st.bytes == 58,
	      "stats summed over CPUs");
	CHECK(bpf_path_events_fd(p) >= 0, "events fd");
	CHECK_EQ_INT(bpf_path_events_consume(p, event_cb, &events), 1, "one event consumed");
	CHECK_EQ_INT(events, 1, "NEW_REMOTE for the client");
	bpf_path_close(p, true);
	CHECK(pinned("nat_cache") && is_bpffs(root), "keep_pins leaves the pins");
}

/* Second run: the pinned cache is still there; closing for good removes
 * pins, directories and the mount it made. */
static void test_restart(void)
{
	struct bpf_path_opts o = { .pin_root = root, .no_attach = true };
	struct natpath_cache_key k = client_key(40001);
	struct natpath_cache_val v;
	struct bpf_path *p;
	char dir[96];
	int err, n = 0;

	err = bpf_path_open(&p, IFNAME, &o);
	CHECK(err == 0, "reopen (%s)", err ? bpf_path_errmsg() : "ok");
	if (err)
		return;
	CHECK(bpf_path_reused_pins(p), "reopen reuses the pins");
	CHECK(bpf_path_cache_get(p, &k, &v) == 0 && v.rx_packets == 1 && v.flags == NATPATH_F_PUNCHED,
	      "the cache survived the restart");
	CHECK(bpf_path_cache_foreach(p, count_cb, &n) == 0 && n == 1, "foreach sees one entry");
	CHECK_EQ_INT(run_xdp(p, 40002), XDP_PASS, "managed port survived too");
	CHECK(bpf_path_cache_foreach(p, count_cb, &(int){ 0 }) == 0, "foreach again");
	CHECK(bpf_path_del_port(p, PORT) == 0 && bpf_path_del_port(p, PORT) == -ENOENT,
	      "delete port, then -ENOENT");
	bpf_path_close(p, false);
	snprintf(dir, sizeof(dir), "%s/natagent", root);
	CHECK(!pinned("nat_cache") && access(dir, F_OK) != 0, "close removes pins and directories");
	CHECK(is_bpffs(root), "close leaves a bpffs this run did not mount");
	umount2(root, 0);
}

/* Opened and closed for good in one run: nothing left, mount included. */
static void test_fresh_close(void)
{
	struct bpf_path_opts o = { .pin_root = root, .no_attach = true };
	struct bpf_path *p;
	int err = bpf_path_open(&p, IFNAME, &o);

	CHECK(err == 0, "open again on a plain directory (%s)", err ? bpf_path_errmsg() : "ok");
	if (err)
		return;
	bpf_path_close(p, false);
	CHECK(!is_bpffs(root), "close unmounts the bpffs it mounted");
}

/* A pin of the wrong shape under a map's name: refused, and left alone. */
static void test_mismatched_pin(void)
{
	struct bpf_path_opts o = { .pin_root = root, .no_attach = true };
	struct bpf_path *p;
	char path[128];
	int fd, err;

	if (mount("bpf", root, "bpf", 0, NULL)) {
		CHECK(0, "mount bpffs for the mismatch test: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/natagent", root);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/natagent/" IFNAME, root);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/natagent/" IFNAME "/nat_cache", root);
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "nat_cache", 4, 4, 8, NULL);
	CHECK(fd >= 0 && bpf_obj_pin(fd, path) == 0, "pin a foreign nat_cache");
	err = bpf_path_open(&p, IFNAME, &o);
	CHECK(err == -EINVAL && strstr(bpf_path_errmsg(), "do not fit"),
	      "mismatched pin refused: %s", bpf_path_errmsg());
	CHECK(access(path, F_OK) == 0, "the foreign pin is left alone");
	unlink(path);
	close(fd);
	snprintf(path, sizeof(path), "%s/natagent/" IFNAME, root);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/natagent", root);
	rmdir(path);
	umount2(root, 0);
}

static void test_errors(void)
{
	struct bpf_path_opts o = { .pin_root = root };
	struct bpf_path *p = (void *)1;

	CHECK(bpf_path_open(&p, "a/b", &o) == -EINVAL && p == NULL, "interface name with '/'");
	CHECK(strstr(bpf_path_errmsg(), "a/b") != NULL, "message names it: %s", bpf_path_errmsg());
	CHECK(bpf_path_open(&p, "nosuchif9", &o) == -ENODEV, "missing interface: %s",
	      bpf_path_errmsg());
	o.pin_root = "relative";
	CHECK(bpf_path_open(&p, IFNAME, &o) == -EINVAL, "relative pin root refused");
	bpf_path_close(NULL, false);
}

int main(void)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		printf("not ok 1 - private mount namespace: %s\n1..1\n", strerror(errno));
		return 1;
	}
	snprintf(root, sizeof(root), "/tmp/natpath-loader.XXXXXX");
	if (!mkdtemp(root)) {
		printf("not ok 1 - mkdtemp: %s\n1..1\n", strerror(errno));
		return 1;
	}
	test_first_run();
	test_restart();
	test_fresh_close();
	test_mismatched_pin();
	test_errors();
	umount2(root, MNT_DETACH);
	rmdir(root);
	return unit_done();
}
