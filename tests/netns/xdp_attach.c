/* Test driver for tests/netns/bpf_xdp_stun.sh: attaches natpath to one
 * interface through agent/bpf.c, the way natagent will, and holds it until
 * told to stop. Not built by the Makefile (tests/bpf/ binaries are run as
 * tests); the script compiles it:
 *
 *   cc -std=gnu11 -O2 -g -Wall -Wextra -D_GNU_SOURCE -I. -Ibuild \
 *      -o xdp_attach tests/netns/xdp_attach.c build/libagent.a build/libnat.a -lbpf
 *
 * Usage:
 *   xdp_attach IFNAME PIN_ROOT|- PORT auto|native|generic [TOKEN]
 *       Manages PORT as a rendezvous (STUN service) port; TOKEN (hex) is a
 *       keepalive path token to accept. Prints "attached mode=M stale=0|1 reused=0|1 pins=DIR note=WHY", then one
 *       "event TYPE ADDR:PORT" line per event. SIGTERM: detach and unpin;
 *       SIGUSR1: detach, keep the pins (a restart). Prints the counters
 *       ("stat CLASS ACTION REASON PACKETS") and "closed" on the way out.
 *       PIN_ROOT "-" means the default (/sys/fs/bpf).
 *   xdp_attach peer-setup IFNAME
 *       Prepares the veth facing the XDP one, the way a real network would
 *       behave: UDP checksums computed in software (a veth otherwise hands
 *       its peer packets whose checksum holds only the pseudo-header part,
 *       CHECKSUM_PARTIAL, which XDP rightly refuses to answer; NICs deliver
 *       complete checksums), and an XDP program of its own (XDP_PASS),
 *       without which the veth driver never delivers the frames a native
 *       XDP_TX on its peer sends. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/bpf.h"

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

static int ethtool_set(const char *ifname, __u32 cmd, __u32 value)
{
	struct ethtool_value ev = { .cmd = cmd, .data = value };
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err = 0;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ev;
	if (ioctl(fd, SIOCETHTOOL, &ifr))
		err = -errno;
	close(fd);
	return err;
}

/* "return XDP_PASS", natively on ifname: it makes the veth driver wake
 * this end's NAPI when its peer sends an XDP_TX. Stays attached after we
 * exit; it goes with the namespace. */
static int xdp_pass_attach(const char *ifname)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int ifindex = if_nametoindex(ifname), fd, err;

	if (!ifindex)
		return -errno;
	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xdp_pass", "GPL", insns, 2, NULL);
	if (fd < 0)
		return fd;
	err = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, NULL);
	close(fd);
	return err;
}

/* See the usage above. */
static int peer_setup(const char *ifname)
{
	int err = ethtool_set(ifname, ETHTOOL_STXCSUM, 0);

	return err ? err : xdp_pass_attach(ifname);
}

static int print_event(void *ctx, const struct natpath_event *ev)
{
	char buf[NA_ENDPOINT_STRLEN];
	struct natpath_cache_key k = { 0 };
	struct na_endpoint ep;

	(void)ctx;
	memcpy(k.addr, ev->addr, sizeof(k.addr));
	k.family = ev->family;
	k.remote_port = ev->remote_port;
	bpf_path_cache_remote(&k, &ep);
	printf("event %s %s\n", ev->type == NATPATH_EV_NEW_REMOTE ? "new_remote" : "punch_check",
	       na_endpoint_str(&ep, buf, sizeof(buf)));
	return 0;
}

static int print_stat(void *ctx, const struct natpath_stats_key *k, const struct natpath_stat *s)
{
	(void)ctx;
	printf("stat %s %s %s %s %llu\n", k->family == NATPATH_AF_INET ? "ipv4" :
	       k->family == NATPATH_AF_INET6 ? "ipv6" : "-", bpf_path_class_name(k->class),
	       bpf_path_action_name(k->action), bpf_path_reason_name(k->reason),
	       (unsigned long long)s->packets);
	return 0;
}

static void serve(struct bpf_path *p)
{
	struct pollfd pfd = { .fd = bpf_path_events_fd(p), .events = POLLIN };

	while (!stop_sig) {
		if (poll(&pfd, 1, 200) > 0)
			bpf_path_events_consume(p, print_event, NULL);
		fflush(stdout);
	}
	bpf_path_events_consume(p, print_event, NULL);
	bpf_path_stats_foreach(p, print_stat, NULL);
}

static enum bpf_path_xdp_mode parse_mode(const char *s)
{
	if (!strcmp(s, "native"))
		return BPF_PATH_XDP_NATIVE;
	if (!strcmp(s, "generic"))
		return BPF_PATH_XDP_GENERIC;
	return BPF_PATH_XDP_AUTO;
}

static int attach(char **argv)
{
	struct bpf_path_opts o = {
		.pin_root = strcmp(argv[2], "-") ? argv[2] : NULL,
		.xdp_mode = parse_mode(argv[4]),
	};
	struct sigaction sa = { .sa_handler = on_signal };
	struct bpf_path *p;
	int err;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	err = bpf_path_open(&p, argv[1], &o);
	if (!err)
		err = bpf_path_add_port(p, atoi(argv[3]), NATPATH_ROLE_RENDEZVOUS);
	if (!err && argv[5])
		err = bpf_path_add_token(p, strtoull(argv[5], NULL, 16));
	if (err) {
		fprintf(stderr, "xdp_attach: %s\n", bpf_path_errmsg());
		if (p)
			bpf_path_close(p, bpf_path_reused_pins(p));
		return 1;
	}
	printf("attached mode=%s stale=%d reused=%d pins=%s note=%s\n",
	       bpf_path_xdp_mode_name(bpf_path_xdp_mode(p)), bpf_path_replaced_stale(p),
	       bpf_path_reused_pins(p), bpf_path_pin_dir(p), bpf_path_xdp_note(p));
	fflush(stdout);
	serve(p);
	bpf_path_close(p, stop_sig == SIGUSR1);
	printf("closed%s\n", stop_sig == SIGUSR1 ? " keep_pins" : "");
	return 0;
}

int main(int argc, char **argv)
{
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "peer-setup")) {
		err = peer_setup(argv[2]);
		if (err)
			fprintf(stderr, "xdp_attach: %s: %s\n", argv[2], strerror(-err));
		return !!err;
	}
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: xdp_attach IFNAME PIN_ROOT|- PORT auto|native|generic [TOKEN]\n"
				"       xdp_attach peer-setup IFNAME\n");
		return 2;
	}
	return attach(argv);
}
