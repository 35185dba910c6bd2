/* xdp_prog_bench: what natpath's XDP program costs per packet, for
 * bench/xdp_stun.sh. Needs root (CAP_BPF, and CAP_SYS_ADMIN for stats).
 *
 *   xdp_prog_bench [SECONDS]
 *       BPF_PROG_TEST_RUN figures, one "name value" line each (ns/packet):
 *         answer_call_ns        a Binding request answered (XDP_TX), one
 *                               request per call (repeat = 1), the kernel's
 *                               own timing, averaged over many calls
 *         answer_new_call_ns    the same, a new client each call (nat_cache
 *                               insert into the LRU, NEW_REMOTE event)
 *         empty_call_ns         an empty XDP program, one per call
 *         empty_repeat_ns       the same in repeat mode
 *         answer_call_adj_ns    answer_call_ns less the per-call overhead
 *                               (empty_call_ns - empty_repeat_ns)
 *         answer_repeat_ns      repeat mode: a Binding request answered,
 *                               the same client each time (see below)
 *         restore_repeat_ns     repeat mode: the wrapper alone
 *         keepalive_repeat_ns   repeat mode: a keepalive absorbed (XDP_DROP)
 *         quic_repeat_ns        repeat mode: QUIC on a managed port, passed
 *         unmanaged_repeat_ns   repeat mode: UDP to another port, passed
 *       Repeat mode runs every repetition on the same buffer, and an answer
 *       rewrites it in place: repetitions 2..N would time the program
 *       passing its own response (dst port = the client's). So answers run
 *       behind a wrapper (raw instructions below) that first puts the
 *       request back (bpf_xdp_adjust_tail to its length, its bytes from a
 *       map) and then tail-calls natpath_xdp; answer_repeat_ns is the
 *       wrapper with the tail call less the wrapper alone (whose verdict is
 *       XDP_TX too). Keepalives, QUIC and other ports leave the packet as
 *       it was and run directly. SECONDS (default 4) bounds the whole run.
 *
 *   xdp_prog_bench stats PROG_ID SECONDS
 *       Turns on the kernel's BPF run-time statistics (BPF_ENABLE_STATS:
 *       every program on the host is timed while the returned fd is open,
 *       at a few ns per run; closing it restores the previous state), waits
 *       SECONDS, and prints "runs N ns_per_run X" for program PROG_ID: its
 *       real cost per packet under real traffic (the attached program in
 *       bench/xdp_stun.sh). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/natpath.h"
#include "natpath.skel.h"

#define SERVER_PORT 3478
#define TOKEN       0x0123456789abcdefULL
#define MAX_CALLS   300000
#define REPEAT      1000000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- packets ---- */

static void put16(uint8_t *b, uint16_t v)
{
	b[0] = v >> 8;
	b[1] = v;
}

static uint32_t sum16(const uint8_t *b, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		sum += (uint32_t)b[n - 1] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* Ethernet + IPv4 + UDP from client:sport to 198.18.0.30:dport; returns the
 * frame length. Checksums complete, as a NIC delivers them. */
static size_t build(uint8_t *f, uint32_t client, uint16_t sport, uint16_t dport,
		    const uint8_t *payload, size_t plen)
{
	uint8_t *ip = f + 14, *udp = ip + 20, pseudo[12];
	size_t ulen = 8 + plen;

	memset(f, 0, 14 + 20 + 8);
	memcpy(f, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x07", 12);
	put16(f + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, 20 + ulen);
	put16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 17;
	put16(ip + 12, client >> 16);
	put16(ip + 14, client);
	memcpy(ip + 16, "\xc6\x12\x00\x1e", 4);
	put16(ip + 10, fold(sum16(ip, 20, 0)));
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, ulen);
	memcpy(udp + 8, payload, plen);
	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 17;
	put16(pseudo + 10, ulen);
	uint16_t c = fold(sum16(udp, ulen, sum16(pseudo, 12, 0)));
	put16(udp + 6, c ? c : 0xffff);
	return 14 + 20 + ulen;
}

/* What bench/stunload sends: a bare Binding request with the cookie. */
static size_t stun_request(uint8_t *p, uint32_t seq)
{
	memset(p, 0, 20);
	put16(p, NATPATH_STUN_BINDING_REQ);
	put16(p + 4, NATPATH_STUN_MAGIC >> 16);
	put16(p + 6, NATPATH_STUN_MAGIC & 0xffff);
	memcpy(p + 8, &seq, sizeof(seq));
	return 20;
}

static size_t keepalive(uint8_t *p)
{
	stun_request(p, 7);
	put16(p, NATPATH_STUN_BINDING_IND);
	put16(p + 2, 12);
	put16(p + 20, NATPATH_STUN_ATTR_PATH_TOKEN);
	put16(p + 22, 8);
	for (int i = 0; i < 8; i++)
		p[24 + i] = (uint8_t)(TOKEN >> (56 - 8 * i));
	return 32;
}

/* ---- running ---- */

/* One BPF_PROG_TEST_RUN; returns the kernel's duration per repetition. */
static int run(int fd, const uint8_t *pkt, size_t len, unsigned repeat, __u32 *retval,
	       __u32 *ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = (__u32)len,
		.repeat = repeat);
	int err = bpf_prog_test_run_opts(fd, &o);

	*retval = o.retval;
	*ns = o.duration;
	return err;
}

/* Mean kernel-timed ns over calls of one repetition each; want is the
 * verdict every call must give. new_client varies the source per call. */
static double per_call(int fd, struct ring_buffer *rb, bool new_client, __u32 want,
		       double seconds)
{
	uint8_t pkt[256], msg[64];
	double end = now_s() + seconds, total = 0;
	unsigned long n = 0;
	__u32 ret, ns;

	while (n < MAX_CALLS && (n & 255 || now_s() < end)) {
		uint32_t client = new_client ? 0x0a000000u + (uint32_t)n : 0x0a000001u;
		size_t len = build(pkt, client, 40000, SERVER_PORT, msg, stun_request(msg, (uint32_t)n));

		if (run(fd, pkt, len, 1, &ret, &ns) || ret != want) {
			fprintf(stderr, "xdp_prog_bench: call %lu: %s, verdict %u (want %u)\n", n,
				strerror(errno), ret, want);
			exit(1);
		}
		total += ns;
		n++;
		if (rb && !(n & 1023))
			ring_buffer__consume(rb); /* as the agent would: keep the ring open */
	}
	return total / (double)n;
}

static double repeated(int fd, const uint8_t *pkt, size_t len, __u32 want)
{
	__u32 ret, ns;

	if (run(fd, pkt, len, REPEAT, &ret, &ns) || ret != want) {
		fprintf(stderr, "xdp_prog_bench: repeat run: %s, verdict %u (want %u)\n",
			strerror(errno), ret, want);
		exit(1);
	}
	return ns;
}

static int ignore_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	(void)data;
	(void)size;
	return 0;
}

/* The wrapper for answers in repeat mode: restores the request (length,
 * then bytes from orig_map) and tail-calls prog_array[0], or with
 * tail = false returns XDP_TX right after restoring. */
#define INSN(c, d, s_, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s_), \
						 .off = (o), .imm = (i) })
#define MOV64_REG(d, s_)   INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s_, 0, 0)
#define MOV64_IMM(d, i)    INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define SUB64_REG(d, s_)   INSN(BPF_ALU64 | BPF_SUB | BPF_X, d, s_, 0, 0)
#define ADD64_IMM(d, i)    INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define LDX(sz, d, s_, o)  INSN(BPF_LDX | (sz) | BPF_MEM, d, s_, o, 0)
#define STX(sz, d, s_, o)  INSN(BPF_STX | (sz) | BPF_MEM, d, s_, o, 0)
#define ST_W(d, o, i)      INSN(BPF_ST | BPF_W | BPF_MEM, d, 0, o, i)
#define CALL(f)            INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define JNE_IMM(d, i, o)   INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define JEQ_IMM(d, i, o)   INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define JGT_REG(d, s_, o)  INSN(BPF_JMP | BPF_JGT | BPF_X, d, s_, o, 0)
#define EXIT()             INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define LD_MAP(d, fd)      INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), \
			   INSN(0, 0, 0, 0, 0)

static int wrapper_prog(int orig_map, int prog_array, size_t len, bool tail)
{
	struct bpf_insn p[64];
	int n = 0, abort_at[4], n_abort = 0;

	p[n++] = MOV64_REG(BPF_REG_6, BPF_REG_1);
	p[n++] = CALL(BPF_FUNC_xdp_get_buff_len);
	p[n++] = MOV64_IMM(BPF_REG_2, (int)len);
	p[n++] = SUB64_REG(BPF_REG_2, BPF_REG_0);
	p[n++] = MOV64_REG(BPF_REG_1, BPF_REG_6);
	p[n++] = CALL(BPF_FUNC_xdp_adjust_tail);
	abort_at[n_abort++] = n;
	p[n++] = JNE_IMM(BPF_REG_0, 0, 0);
	p[n++] = ST_W(BPF_REG_10, -4, 0);
	p[n++] = MOV64_REG(BPF_REG_2, BPF_REG_10);
	p[n++] = ADD64_IMM(BPF_REG_2, -4);
	{
		struct bpf_insn ld[] = { LD_MAP(BPF_REG_1, orig_map) };
		p[n++] = ld[0];
		p[n++] = ld[1];
	}
	p[n++] = CALL(BPF_FUNC_map_lookup_elem);
	abort_at[n_abort++] = n;
	p[n++] = JEQ_IMM(BPF_REG_0, 0, 0);
	p[n++] = MOV64_REG(BPF_REG_7, BPF_REG_0);
	p[n++] = LDX(BPF_W, BPF_REG_2, BPF_REG_6, 0); /* data */
	p[n++] = LDX(BPF_W, BPF_REG_3, BPF_REG_6, 4); /* data_end */
	p[n++] = MOV64_REG(BPF_REG_4, BPF_REG_2);
	p[n++] = ADD64_IMM(BPF_REG_4, (int)len);
	abort_at[n_abort++] = n;
	p[n++] = JGT_REG(BPF_REG_4, BPF_REG_3, 0);
	/* len is 62: seven words, then 4 + 2 bytes. */
	for (int off = 0; off + 8 <= (int)len; off += 8) {
		p[n++] = LDX(BPF_DW, BPF_REG_5, BPF_REG_7, off);
		p[n++] = STX(BPF_DW, BPF_REG_2, BPF_REG_5, off);
	}
	p[n++] = LDX(BPF_W, BPF_REG_5, BPF_REG_7, 56);
	p[n++] = STX(BPF_W, BPF_REG_2, BPF_REG_5, 56);
	p[n++] = LDX(BPF_H, BPF_REG_5, BPF_REG_7, 60);
	p[n++] = STX(BPF_H, BPF_REG_2, BPF_REG_5, 60);
	if (tail) {
		struct bpf_insn ld[] = { LD_MAP(BPF_REG_2, prog_array) };

		p[n++] = MOV64_REG(BPF_REG_1, BPF_REG_6);
		p[n++] = ld[0];
		p[n++] = ld[1];
		p[n++] = MOV64_IMM(BPF_REG_3, 0);
		p[n++] = CALL(BPF_FUNC_tail_call);
		p[n++] = MOV64_IMM(BPF_REG_0, XDP_ABORTED);
	} else {
		p[n++] = MOV64_IMM(BPF_REG_0, XDP_TX);
	}
	p[n++] = EXIT();
	for (int i = 0; i < n_abort; i++)
		p[abort_at[i]].off = (short)(n - abort_at[i] - 1);
	p[n++] = MOV64_IMM(BPF_REG_0, XDP_ABORTED);
	p[n++] = EXIT();
	static char log[16384];
	LIBBPF_OPTS(bpf_prog_load_opts, o, .log_buf = log, .log_size = sizeof(log), .log_level = 1,
		.expected_attach_type = BPF_XDP); /* as libbpf loads SEC("xdp"): tail calls need it equal */
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, tail ? "answer_wrap" : "restore_only", "GPL", p,
			       (size_t)n, &o);

	if (fd < 0)
		fprintf(stderr, "xdp_prog_bench: the verifier says:\n%s\n", log);
	return fd;
}

static int empty_prog(void)
{
	const struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_TX },
		{ .code = BPF_JMP | BPF_EXIT },
	};

	return bpf_prog_load(BPF_PROG_TYPE_XDP, "empty", "GPL", insns, 2, NULL);
}

/* stats[{ipv4, stun, tx, stun_answered}], summed over CPUs. */
static uint64_t answered_count(struct natpath *skel)
{
	struct natpath_stats_key k = { .family = NATPATH_AF_INET, .class = NATPATH_CLASS_STUN,
				       .action = NATPATH_ACT_TX, .reason = NATPATH_R_STUN_ANSWERED };
	int ncpu = libbpf_num_possible_cpus();
	struct natpath_stat v[ncpu > 0 ? ncpu : 1];
	uint64_t sum = 0;

	if (ncpu <= 0 || bpf_map_lookup_elem(bpf_map__fd(skel->maps.stats), &k, v))
		return 0;
	for (int i = 0; i < ncpu; i++)
		sum += v[i].packets;
	return sum;
}

static int bench(double seconds)
{
	struct natpath *skel = natpath__open();
	struct ring_buffer *rb = NULL;
	struct bpf_map *m;
	uint8_t pkt[256], msg[64];
	__u16 port = SERVER_PORT;
	__u32 role = NATPATH_ROLE_RENDEZVOUS;
	struct natpath_token tok = { 0 };
	__u64 token = TOKEN;
	int xdp, empty, err;
	size_t len;

	if (!skel)
		return -errno;
	/* Nothing pinned, nothing attached: a private copy of the maps. */
	bpf_object__for_each_map(m, skel->obj)
		bpf_map__set_pin_path(m, NULL);
	err = natpath__load(skel);
	if (!err)
		err = bpf_map_update_elem(bpf_map__fd(skel->maps.ports), &port, &role, BPF_ANY);
	if (!err)
		err = bpf_map_update_elem(bpf_map__fd(skel->maps.tokens), &token, &tok, BPF_ANY);
	if (err) {
		fprintf(stderr, "xdp_prog_bench: loading natpath: %s\n", strerror(-err));
		natpath__destroy(skel);
		return err;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), ignore_event, NULL, NULL);
	xdp = bpf_program__fd(skel->progs.natpath_xdp);
	empty = empty_prog();
	if (!rb || empty < 0) {
		fprintf(stderr, "xdp_prog_bench: setting up: %s\n", strerror(errno));
		exit(1);
	}

	double empty_call = per_call(empty, NULL, false, XDP_TX, seconds / 8);
	len = build(pkt, 0x0a000001u, 40000, SERVER_PORT, msg, stun_request(msg, 1));
	double empty_rep = repeated(empty, pkt, len, XDP_TX);

	/* Answers in repeat mode, behind the wrapper. */
	uint8_t orig[64] = { 0 };
	__u32 zero = 0;
	int orig_map = bpf_map_create(BPF_MAP_TYPE_ARRAY, "orig", 4, sizeof(orig), 1, NULL);
	int prog_array = bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, "natpath", 4, 4, 1, NULL);
	int wrap, restore;

	memcpy(orig, pkt, len);
	if (len != 62 || orig_map < 0 || prog_array < 0 ||
	    bpf_map_update_elem(orig_map, &zero, orig, BPF_ANY) ||
	    bpf_map_update_elem(prog_array, &zero, &xdp, BPF_ANY)) {
		fprintf(stderr, "xdp_prog_bench: wrapper maps: %s\n", strerror(errno));
		exit(1);
	}
	wrap = wrapper_prog(orig_map, prog_array, len, true);
	restore = wrapper_prog(orig_map, prog_array, len, false);
	if (wrap < 0 || restore < 0) {
		fprintf(stderr, "xdp_prog_bench: loading the wrapper: %s\n", strerror(errno));
		exit(1);
	}
	uint64_t answered = answered_count(skel);
	double answer_rep = repeated(wrap, pkt, len, XDP_TX);

	/* Every repetition must have been an answer, not a pass of the last
	 * one's response. */
	if (answered_count(skel) - answered != REPEAT) {
		fprintf(stderr, "xdp_prog_bench: the wrapper ran %llu answers, not %d\n",
			(unsigned long long)(answered_count(skel) - answered), REPEAT);
		exit(1);
	}
	double restore_rep = repeated(restore, pkt, len, XDP_TX);
	double answer_call = per_call(xdp, rb, false, XDP_TX, seconds / 4);
	double answer_new = per_call(xdp, rb, true, XDP_TX, seconds / 4);
	double overhead = empty_call > empty_rep ? empty_call - empty_rep : 0;

	len = build(pkt, 0x0a000002u, 40001, SERVER_PORT, msg, keepalive(msg));
	double keep = repeated(xdp, pkt, len, XDP_DROP);
	memset(msg, 0, sizeof(msg));
	msg[0] = 0xc3; /* QUIC long header */
	len = build(pkt, 0x0a000003u, 40002, SERVER_PORT, msg, 48);
	double quic = repeated(xdp, pkt, len, XDP_PASS);
	len = build(pkt, 0x0a000004u, 40003, 9999, msg, 48);
	double unmanaged = repeated(xdp, pkt, len, XDP_PASS);

	printf("answer_repeat_ns %.1f\nrestore_repeat_ns %.1f\nanswer_call_ns %.1f\n"
	       "answer_new_call_ns %.1f\nempty_call_ns %.1f\nempty_repeat_ns %.1f\n"
	       "answer_call_adj_ns %.1f\nanswer_new_call_adj_ns %.1f\n"
	       "keepalive_repeat_ns %.1f\nquic_repeat_ns %.1f\nunmanaged_repeat_ns %.1f\n",
	       answer_rep - restore_rep, restore_rep, answer_call, answer_new, empty_call,
	       empty_rep, answer_call - overhead, answer_new - overhead, keep, quic, unmanaged);
	close(wrap);
	close(restore);
	close(orig_map);
	close(prog_array);
	close(empty);
	ring_buffer__free(rb);
	natpath__destroy(skel);
	return 0;
}

static int prog_stats(__u32 id, __u64 *runs, __u64 *ns)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id), err = 0;

	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		err = -errno;
	close(fd);
	*runs = info.run_cnt;
	*ns = info.run_time_ns;
	return err;
}

static int stats(__u32 id, double seconds)
{
	__u64 r0, t0, r1, t1;
	int fd = bpf_enable_stats(BPF_STATS_RUN_TIME), err;

	if (fd < 0) {
		fprintf(stderr, "xdp_prog_bench: enabling BPF stats: %s\n", strerror(errno));
		return 1;
	}
	err = prog_stats(id, &r0, &t0);
	if (!err) {
		usleep((useconds_t)(seconds * 1e6));
		err = prog_stats(id, &r1, &t1);
	}
	close(fd);
	if (err) {
		fprintf(stderr, "xdp_prog_bench: program %u: %s\n", id, strerror(-err));
		return 1;
	}
	printf("runs %llu ns_per_run %.1f\n", (unsigned long long)(r1 - r0),
	       r1 > r0 ? (double)(t1 - t0) / (double)(r1 - r0) : 0.0);
	return 0;
}

int main(int argc, char **argv)
{
	double seconds;

	if (argc == 4 && !strcmp(argv[1], "stats")) {
		seconds = atof(argv[3]);
		if (seconds <= 0 || seconds > 120) {
			fprintf(stderr, "xdp_prog_bench: stats: SECONDS in (0, 120]\n");
			return 1;
		}
		return stats((__u32)strtoul(argv[2], NULL, 10), seconds);
	}
	seconds = argc > 1 ? atof(argv[1]) : 4;
	if (argc > 2 || seconds <= 0 || seconds > 60) {
		fprintf(stderr, "usage: xdp_prog_bench [SECONDS<=60]\n"
				"       xdp_prog_bench stats PROG_ID SECONDS\n");
		return 1;
	}
	return bench(seconds) ? 1 : 0;
}
