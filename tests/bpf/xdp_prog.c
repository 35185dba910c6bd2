/* natpath's XDP and tc programs under BPF_PROG_TEST_RUN, no network needed.
 *
 * Table-driven like katran's fixtures: each case builds a packet in C
 * (Ethernet, IPv4/IPv6, UDP, STUN; checksums and CRC computed here, by code
 * independent of the BPF side), runs it once, and checks the verdict, the
 * reason counter in `stats`, the output bytes (the exact expected response
 * for XDP_TX, the untouched input otherwise) and what `nat_cache` holds for
 * the case's client afterwards. Every case uses its own client port, so
 * cache expectations do not depend on order.
 *
 * The object is loaded through the skeleton with pinning switched off and
 * nothing attached. Needs root (CAP_BPF). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/natpath.h"
#include "natpath.skel.h"
#include "tests/unit/unit.h"

#define SERVER_PORT 3478     /* managed */
#define OTHER_PORT  3479     /* not managed */
#define AGENT_PORT  51820    /* managed, role AGENT: strict RFC 9443 */
#define PKT_MAX     2048

static const uint8_t client_mac[6] = { 0x02, 0, 0, 0, 0, 0x07 };
static const uint8_t server_mac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t client4[4] = { 198, 51, 100, 7 };
static const uint8_t server4[4] = { 203, 0, 113, 1 };
static const uint8_t client6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };
static const uint8_t server6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static uint8_t txid[16] = { /* test_zero_checksum() varies bytes 10-11 */
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x11, 0x22, 0x33, 0x44, /* the last four only for RFC 3489 ids */
};

/* ---- packet building ---- */

struct flow {
	int family;                /* AF_INET / AF_INET6 */
	uint8_t smac[6], dmac[6];
	uint8_t src[16], dst[16];  /* IPv4 in the first 4 bytes */
	uint16_t sport, dport;
	uint8_t ttl;
	uint16_t ip_id;            /* IPv4 only */
	uint16_t frag;             /* IPv4 frag_off field, host order */
	uint16_t proto;            /* 0 = UDP */
};

static void put16(uint8_t *b, uint16_t v)
{
	b[0] = v >> 8;
	b[1] = v;
}

static void put32(uint8_t *b, uint32_t v)
{
	put16(b, v >> 16);
	put16(b + 2, v);
}

/* RFC 1071 over big-endian 16-bit words: the textbook way, deliberately
 * not the BPF side's memory-order sums. */
static uint32_t sum16(const uint8_t *b, size_t n, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		sum += (uint32_t)b[n - 1] << 8;
	return sum;
}

static uint16_t csum_finish(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

static void ip4_fix_csum(uint8_t *ip)
{
	put16(ip + 10, 0);
	put16(ip + 10, csum_finish(sum16(ip, 20, 0)));
}

static uint16_t udp_csum(const struct flow *f, const uint8_t *udp, size_t len)
{
	uint8_t pseudo[40] = { 0 };
	size_t alen = f->family == AF_INET ? 4 : 16;
	uint32_t sum;
	uint16_t c;

	memcpy(pseudo, f->src, alen);
	memcpy(pseudo + alen, f->dst, alen);
	pseudo[2 * alen + 1] = 17;
	put16(pseudo + 2 * alen + 2, len);
	sum = sum16(pseudo, 2 * alen + 4, 0);
	c = csum_finish(sum16(udp, len, sum));
	return c ? c : 0xffff;
}

/* Ethernet + IP + UDP + payload into out; returns the frame length. */
static size_t pkt_build(uint8_t *out, const struct flow *f, const uint8_t *payload, size_t plen)
{
	size_t l3 = 14, iplen = f->family == AF_INET ? 20 : 40, l4 = l3 + iplen;
	uint8_t *ip = out + l3, *udp = out + l4;

	memset(out, 0, l4 + 8);
	memcpy(out, f->dmac, 6);
	memcpy(out + 6, f->smac, 6);
	put16(out + 12, f->family == AF_INET ? ETH_P_IP : ETH_P_IPV6);
	if (f->family == AF_INET) {
		ip[0] = 0x45;
		put16(ip + 2, 20 + 8 + plen);
		put16(ip + 4, f->ip_id);
		put16(ip + 6, f->frag);
		ip[8] = f->ttl;
		ip[9] = f->proto ? f->proto : 17;
		memcpy(ip + 12, f->src, 4);
		memcpy(ip + 16, f->dst, 4);
		ip4_fix_csum(ip);
	} else {
		ip[0] = 0x60;
		put16(ip + 4, 8 + plen);
		ip[6] = f->proto ? f->proto : 17;
		ip[7] = f->ttl;
		memcpy(ip + 8, f->src, 16);
		memcpy(ip + 24, f->dst, 16);
	}
	put16(udp, f->sport);
	put16(udp + 2, f->dport);
	put16(udp + 4, 8 + plen);
	memcpy(udp + 8, payload, plen);
	put16(udp + 6, udp_csum(f, udp, 8 + plen));
	return l4 + 8 + plen;
}

static struct flow flow_to_server(int family, uint16_t client_port)
{
	struct flow f = {
		.family = family, .sport = client_port, .dport = SERVER_PORT,
		.ttl = 57, .ip_id = 0x1234, .frag = 0x4000, /* DF */
	};

	memcpy(f.smac, client_mac, 6);
	memcpy(f.dmac, server_mac, 6);
	memcpy(f.src, family == AF_INET ? client4 : client6, family == AF_INET ? 4 : 16);
	memcpy(f.dst, family == AF_INET ? server4 : server6, family == AF_INET ? 4 : 16);
	return f;
}

/* The flow an answer to f travels: everything swapped, TTL reset. */
static struct flow flow_reply(const struct flow *f)
{
	struct flow r = *f;

	memcpy(r.smac, f->dmac, 6);
	memcpy(r.dmac, f->smac, 6);
	memcpy(r.src, f->dst, 16);
	memcpy(r.dst, f->src, 16);
	r.sport = f->dport;
	r.dport = f->sport;
	r.ttl = NATPATH_TX_TTL;
	return r;
}

/* ---- STUN building ---- */

struct stun {
	uint8_t b[1024];
	size_t len;
};

/* Bitwise CRC-32 (IEEE, reflected), independent of the BPF side's table. */
static uint32_t crc32_bitwise(const uint8_t *b, size_t n)
{
	uint32_t crc = 0xffffffff;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		crc ^= b[i];
		for (k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0xedb88320 : crc >> 1;
	}
	return ~crc;
}

/* classic: an RFC 3489 message, whose 16-byte id has no magic cookie. */
static void stun_init(struct stun *m, uint16_t type, bool classic)
{
	memset(m, 0, sizeof(*m));
	put16(m->b, type);
	if (classic) {
		memcpy(m->b + 4, txid, 16);
	} else {
		put32(m->b + 4, NATPATH_STUN_MAGIC);
		memcpy(m->b + 8, txid, 12);
	}
	m->len = 20;
}

static void stun_add(struct stun *m, uint16_t type, const void *val, uint16_t len)
{
	put16(m->b + m->len, type);
	put16(m->b + m->len + 2, len);
	memcpy(m->b + m->len + 4, val, len);
	m->len += 4 + ((len + 3u) & ~3u);
	put16(m->b + 2, m->len - 20);
}

static void stun_add_fingerprint(struct stun *m)
{
	uint8_t v[4];

	/* The length field counts FINGERPRINT before the CRC is taken. */
	put16(m->b + 2, m->len + 8 - 20);
	put32(v, crc32_bitwise(m->b, m->len) ^ 0x5354554e);
	stun_add(m, NATPATH_STUN_ATTR_FINGERPRINT, v, 4);
}

/* The Binding success response natpath must send for a request from f. */
static void stun_expected_response(struct stun *m, const struct flow *f, bool fingerprint,
				   bool classic)
{
	size_t alen = f->family == AF_INET ? 4 : 16, i;
	uint8_t v[20] = { 0 }, mask[16];

	stun_init(m, NATPATH_STUN_BINDING_RESP, classic);
	v[1] = f->family == AF_INET ? 1 : 2;
	put16(v + 2, f->sport);
	memcpy(v + 4, f->src, alen);
	if (classic) {
		stun_add(m, NATPATH_STUN_ATTR_MAPPED, v, 4 + alen);
	} else {
		put32(mask, NATPATH_STUN_MAGIC);
		memcpy(mask + 4, txid, 12);
		put16(v + 2, f->sport ^ 0x2112);
		for (i = 0; i < alen; i++)
			v[4 + i] ^= mask[i];
		stun_add(m, NATPATH_STUN_ATTR_XOR_MAPPED, v, 4 + alen);
	}
	if (fingerprint)
		stun_add_fingerprint(m);
}

/* RFC 5769 2.1: a sample ICE connectivity check (USERNAME, PRIORITY,
 * ICE-CONTROLLED, MESSAGE-INTEGRITY, FINGERPRINT). */
static const uint8_t rfc5769_request[] = {
	0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01,
	0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10,
	0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c,
	0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
	0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
	0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76,
	0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
	0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
	0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* The expected-output builders above are the yardstick for the BPF side,
 * so they are first checked against the RFC's own bytes. */
static void test_builders(void)
{
	static const uint8_t xor_mapped[8] = { 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43 };
	size_t n = sizeof(rfc5769_request);
	uint32_t crc = crc32_bitwise(rfc5769_request, n - 8) ^ 0x5354554e;
	struct flow f = flow_to_server(AF_INET, 32853);
	uint8_t want_crc[4];
	struct stun m;

	put32(want_crc, crc);
	CHECK_EQ_MEM(want_crc, rfc5769_request + n - 4, 4, "test CRC-32 matches RFC 5769 2.1 FINGERPRINT");
	memcpy(f.src, (uint8_t[]){ 192, 0, 2, 1 }, 4);
	stun_expected_response(&m, &f, false, false);
	CHECK_EQ_MEM(m.b + 24, xor_mapped, 8, "test XOR-MAPPED-ADDRESS matches RFC 5769 2.2");
}

/* ---- the loaded object ---- */

static struct natpath *skel;
static struct ring_buffer *rb;
static struct natpath_event evs[16];
static int n_evs;

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (size == sizeof(struct natpath_event) && n_evs < 16)
		memcpy(&evs[n_evs++], data, size);
	return 0;
}

static int load(void)
{
	struct bpf_map *m;
	__u16 port = SERVER_PORT, agent_port = AGENT_PORT;
	__u32 role = NATPATH_ROLE_RENDEZVOUS, agent_role = NATPATH_ROLE_AGENT;
	int err;

	skel = natpath__open();
	if (!skel)
		return -errno;
	/* No pins: this test must not touch (or need) a bpffs. */
	bpf_object__for_each_map(m, skel->obj)
		bpf_map__set_pin_path(m, NULL);
	err = natpath__load(skel);
	if (err)
		return err;
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
	if (!rb)
		return -errno;
	err = bpf_map_update_elem(bpf_map__fd(skel->maps.ports), &port, &role, BPF_ANY);
	if (err)
		return err;
	return bpf_map_update_elem(bpf_map__fd(skel->maps.ports), &agent_port, &agent_role, BPF_ANY);
}

static void print_insns(const char *what, struct bpf_program *prog)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0)
		printf("# %s insns: %u (verifier processed %u)\n", what,
		       info.xlated_prog_len / 8, info.verified_insns);
}

static uint64_t stat_get(int family, int class, int action, int reason)
{
	struct natpath_stats_key k = {
		.family = family, .class = class, .action = action, .reason = reason,
	};
	int ncpu = libbpf_num_possible_cpus();
	struct natpath_stat vals[ncpu > 0 ? ncpu : 1];
	uint64_t sum = 0;
	int i;

	if (ncpu <= 0 || bpf_map_lookup_elem(bpf_map__fd(skel->maps.stats), &k, vals))
		return 0;
	for (i = 0; i < ncpu; i++)
		sum += vals[i].packets;
	return sum;
}

static struct natpath_cache_key cache_key(const struct flow *f)
{
	struct natpath_cache_key k = { 0 };

	memcpy(k.addr, f->src, f->family == AF_INET ? 4 : 16);
	k.remote_port = f->sport;
	k.local_port = f->dport;
	k.family = f->family == AF_INET ? NATPATH_AF_INET : NATPATH_AF_INET6;
	return k;
}

static bool cache_get(const struct flow *f, struct natpath_cache_val *v)
{
	struct natpath_cache_key k = cache_key(f);

	return bpf_map_lookup_elem(bpf_map__fd(skel->maps.nat_cache), &k, v) == 0;
}

static int run(struct bpf_program *prog, const uint8_t *in, size_t len, uint8_t *out,
	       __u32 *out_len, __u32 *retval)
{
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = in, .data_size_in = len,
		.data_out = out, .data_size_out = PKT_MAX,
		.repeat = 1);
	int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &o);

	*out_len = o.data_size_out;
	*retval = o.retval;
	ring_buffer__consume(rb);
	return err;
}

/* ---- the cases ---- */

enum mutation {
	M_NONE,
	M_FINGERPRINT,     /* request carries SOFTWARE + FINGERPRINT */
	M_CLASSIC,         /* RFC 3489 request: no cookie, CHANGE-REQUEST 0 */
	M_IP_CSUM,
	M_IHL_SHORT,
	M_IHL_OPTIONS,
	M_FRAGMENT,
	M_TRUNCATED,       /* frame cut short of tot_len */
	M_TOT_LEN_LONG,
	M_TOT_LEN_SHORT,
	M_UDP_CSUM,
	M_UDP_CSUM_ZERO,
	M_MAGIC,
	M_STUN_LEN,
	M_INTEGRITY,
	M_RFC5769,         /* the RFC's sample ICE check */
	M_UNMANAGED,
	M_CHANGE_PORT,
	M_UNKNOWN_ATTR,
	M_FP_NOT_LAST,
	M_ATTR_OVERRUN,
	M_TOO_BIG,
	M_NOT_IP,
	M_NOT_UDP,
	M_QUIC,
	M_WIREGUARD,
	M_INDICATION,
	M_RESPONSE,
	M_KEEPALIVE_GOOD,
	M_KEEPALIVE_BAD,
	M_BCAST_MAC,       /* request to ff:ff:ff:ff:ff:ff */
	M_MCAST_SRC,       /* request from ff02::1 */
	M_LOOPBACK_SRC,    /* request from 127.0.0.1 */
};

struct xdp_case {
	const char *name;
	int family;
	enum mutation mut;
	int action;
	int class;
	int reason;
	bool cached;       /* nat_cache holds the client afterwards */
};

#define GOOD_TOKEN 0x0123456789abcdefULL
#define BAD_TOKEN  0xfedcba9876543210ULL

static const struct xdp_case cases[] = {
	{ "v4 binding request answered", AF_INET, M_NONE, XDP_TX, NATPATH_CLASS_STUN, NATPATH_R_STUN_ANSWERED, true },
	{ "v4 binding request with FINGERPRINT answered", AF_INET, M_FINGERPRINT, XDP_TX, NATPATH_CLASS_STUN, NATPATH_R_STUN_ANSWERED, true },
	{ "v6 binding request answered", AF_INET6, M_NONE, XDP_TX, NATPATH_CLASS_STUN, NATPATH_R_STUN_ANSWERED, true },
	{ "v6 binding request with FINGERPRINT answered", AF_INET6, M_FINGERPRINT, XDP_TX, NATPATH_CLASS_STUN, NATPATH_R_STUN_ANSWERED, true },
	{ "v4 RFC 3489 request answered with MAPPED-ADDRESS", AF_INET, M_CLASSIC, XDP_TX, NATPATH_CLASS_STUN, NATPATH_R_STUN_ANSWERED_3489, true },
	{ "bad IPv4 header checksum", AF_INET, M_IP_CSUM, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_IP_CSUM, false },
	{ "ihl below 5", AF_INET, M_IHL_SHORT, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_IP_IHL, false },
	{ "ihl with options", AF_INET, M_IHL_OPTIONS, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_IP_OPTIONS, false },
	{ "fragment", AF_INET, M_FRAGMENT, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_IP_FRAGMENT, false },
	{ "frame shorter than tot_len", AF_INET, M_TRUNCATED, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_IP_LEN, false },
	{ "v6 frame shorter than payload_len", AF_INET6, M_TRUNCATED, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_IP_LEN, false },
	{ "tot_len beyond the frame", AF_INET, M_TOT_LEN_LONG, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_IP_LEN, false },
	{ "tot_len short of the UDP length", AF_INET, M_TOT_LEN_SHORT, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_UDP_LEN, false },
	{ "wrong UDP checksum", AF_INET, M_UDP_CSUM, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_UDP_CSUM, false },
	{ "v6 wrong UDP checksum", AF_INET6, M_UDP_CSUM, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_UDP_CSUM, false },
	{ "v6 zero UDP checksum", AF_INET6, M_UDP_CSUM_ZERO, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_UDP_CSUM_ZERO6, false },
	{ "v4 zero UDP checksum answered", AF_INET, M_UDP_CSUM_ZERO, XDP_TX, NATPATH_CLASS_STUN, NATPATH_R_STUN_ANSWERED, true },
	{ "wrong magic cookie on the agent port", AF_INET, M_MAGIC, XDP_PASS, NATPATH_CLASS_OTHER, NATPATH_R_OTHER, true },
	{ "wrong STUN length", AF_INET, M_STUN_LEN, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_LEN, true },
	{ "request with MESSAGE-INTEGRITY (punch check)", AF_INET, M_INTEGRITY, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_PUNCH_CHECK, true },
	{ "RFC 5769 sample ICE check (punch check)", AF_INET6, M_RFC5769, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_PUNCH_CHECK, true },
	{ "unmanaged port", AF_INET, M_UNMANAGED, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_PORT_UNMANAGED, false },
	{ "CHANGE-REQUEST for another port", AF_INET, M_CHANGE_PORT, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_CHANGE_REQUEST, true },
	{ "unknown comprehension-required attribute", AF_INET, M_UNKNOWN_ATTR, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_UNKNOWN_ATTR, true },
	{ "FINGERPRINT not last", AF_INET, M_FP_NOT_LAST, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_ATTR, true },
	{ "attribute overruns the message", AF_INET, M_ATTR_OVERRUN, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_ATTR, true },
	{ "request too big to answer", AF_INET, M_TOO_BIG, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_TOO_BIG, true },
	{ "not IP", AF_INET, M_NOT_IP, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_NOT_IP, false },
	{ "not UDP", AF_INET6, M_NOT_UDP, XDP_PASS, NATPATH_CLASS_NONE, NATPATH_R_NOT_UDP, false },
	{ "QUIC passed and cached", AF_INET6, M_QUIC, XDP_PASS, NATPATH_CLASS_QUIC, NATPATH_R_QUIC, true },
	{ "WireGuard passed and cached", AF_INET, M_WIREGUARD, XDP_PASS, NATPATH_CLASS_WIREGUARD, NATPATH_R_WIREGUARD, true },
	{ "indication without token", AF_INET, M_INDICATION, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_INDICATION, true },
	{ "binding response passed", AF_INET, M_RESPONSE, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_OTHER, true },
	{ "keepalive with a good token absorbed", AF_INET, M_KEEPALIVE_GOOD, XDP_DROP, NATPATH_CLASS_STUN, NATPATH_R_KEEPALIVE, true },
	{ "v6 keepalive with a good token absorbed", AF_INET6, M_KEEPALIVE_GOOD, XDP_DROP, NATPATH_CLASS_STUN, NATPATH_R_KEEPALIVE, true },
	{ "keepalive with a bad token passed", AF_INET, M_KEEPALIVE_BAD, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_KEEPALIVE_BAD_TOKEN, false },
	{ "request to the broadcast MAC not answered", AF_INET, M_BCAST_MAC, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_NOT_UNICAST, true },
	{ "request from a multicast source not answered", AF_INET6, M_MCAST_SRC, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_NOT_UNICAST, true },
	{ "request from loopback not answered", AF_INET, M_LOOPBACK_SRC, XDP_PASS, NATPATH_CLASS_STUN, NATPATH_R_STUN_NOT_UNICAST, true },
};

/* The STUN message a case sends. */
static void case_stun(const struct xdp_case *c, struct stun *m)
{
	static const uint8_t software[] = "natagent test";
	uint8_t v[8] = { 0 }, big[600] = { 0 };
	uint64_t token = c->mut == M_KEEPALIVE_GOOD ? GOOD_TOKEN : BAD_TOKEN;

	switch (c->mut) {
	case M_RFC5769:
		memcpy(m->b, rfc5769_request, sizeof(rfc5769_request));
		m->len = sizeof(rfc5769_request);
		return;
	case M_CLASSIC:
		stun_init(m, NATPATH_STUN_BINDING_REQ, true);
		stun_add(m, NATPATH_STUN_ATTR_CHANGE, v, 4);
		return;
	case M_INDICATION:
		stun_init(m, NATPATH_STUN_BINDING_IND, false);
		return;
	case M_RESPONSE:
		stun_init(m, NATPATH_STUN_BINDING_RESP, false);
		return;
	case M_KEEPALIVE_GOOD:
	case M_KEEPALIVE_BAD:
		stun_init(m, NATPATH_STUN_BINDING_IND, false);
		put32(v, token >> 32);
		put32(v + 4, token);
		stun_add(m, NATPATH_STUN_ATTR_PATH_TOKEN, v, 8);
		stun_add_fingerprint(m);
		return;
	default:
		break;
	}
	stun_init(m, NATPATH_STUN_BINDING_REQ, false);
	switch (c->mut) {
	case M_FINGERPRINT:
		stun_add(m, 0x8022 /* SOFTWARE */, software, sizeof(software) - 1);
		stun_add_fingerprint(m);
		break;
	case M_INTEGRITY:
		stun_add(m, NATPATH_STUN_ATTR_USERNAME, "abcd:efgh", 9);
		stun_add(m, NATPATH_STUN_ATTR_MI, big, 20);
		stun_add_fingerprint(m);
		break;
	case M_CHANGE_PORT:
		v[3] = 0x02;
		stun_add(m, NATPATH_STUN_ATTR_CHANGE, v, 4);
		break;
	case M_UNKNOWN_ATTR:
		stun_add(m, 0x0002 /* RESPONSE-ADDRESS */, v, 8);
		break;
	case M_FP_NOT_LAST:
		stun_add_fingerprint(m);
		stun_add(m, 0x8022, software, 4);
		break;
	case M_ATTR_OVERRUN:
		stun_add(m, 0x8022, software, 8);
		put16(m->b + 22, 12); /* claims 4 bytes more than the message has */
		break;
	case M_TOO_BIG:
		stun_add(m, 0x8023 /* PADDING-like, optional */, big, sizeof(big));
		break;
	default:
		break;
	}
}

/* Header-level mutations, applied to the built frame. */
static size_t case_mutate(const struct xdp_case *c, uint8_t *pkt, size_t len)
{
	uint8_t *ip = pkt + 14, *udp = pkt + 14 + (c->family == AF_INET ? 20 : 40);

	switch (c->mut) {
	case M_IP_CSUM:
		ip[10] ^= 0x01;
		break;
	case M_IHL_SHORT:
		ip[0] = 0x44;
		ip4_fix_csum(ip);
		break;
	case M_IHL_OPTIONS:
		ip[0] = 0x46;
		ip4_fix_csum(ip);
		break;
	case M_FRAGMENT:
		put16(ip + 6, 0x2000); /* MF */
		ip4_fix_csum(ip);
		break;
	case M_TRUNCATED:
		return len - 4;
	case M_TOT_LEN_LONG:
		put16(ip + 2, len - 14 + 4);
		ip4_fix_csum(ip);
		break;
	case M_TOT_LEN_SHORT:
		put16(ip + 2, len - 14 - 4);
		ip4_fix_csum(ip);
		break;
	case M_UDP_CSUM:
		udp[7] ^= 0x01;
		break;
	case M_UDP_CSUM_ZERO:
		put16(udp + 6, 0);
		break;
	case M_MAGIC:
	case M_STUN_LEN:
		/* Break the STUN header, then make the UDP checksum right again
		 * so only the STUN fault remains. */
		udp[8 + (c->mut == M_MAGIC ? 4 : 3)] ^= 0x04;
		put16(udp + 6, 0);
		break;
	case M_NOT_IP:
		put16(pkt + 12, ETH_P_ARP);
		break;
	case M_BCAST_MAC:
		memset(pkt, 0xff, 6);
		break;
	default:
		break;
	}
	return len;
}

/* The frame for case number i, and the expected XDP_TX output in want. */
static size_t case_build(const struct xdp_case *c, int i, uint8_t *pkt, uint8_t *want,
			 size_t *want_len, struct flow *f)
{
	struct stun m, resp;
	struct flow r;
	uint8_t raw[16] = { 0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	size_t len;

	*f = flow_to_server(c->family, 40000 + i);
	if (c->mut == M_UNMANAGED)
		f->dport = OTHER_PORT;
	if (c->mut == M_MAGIC)
		f->dport = AGENT_PORT;
	if (c->mut == M_MCAST_SRC)
		memcpy(f->src, (uint8_t[16]){ 0xff, 0x02, [15] = 1 }, 16);
	if (c->mut == M_LOOPBACK_SRC)
		memcpy(f->src, (uint8_t[4]){ 127, 0, 0, 1 }, 4);
	if (c->mut == M_NOT_UDP)
		f->proto = 6;
	if (c->mut == M_QUIC) {
		raw[0] = 0xc3;
		return pkt_build(pkt, f, raw, sizeof(raw));
	}
	if (c->mut == M_WIREGUARD) {
		raw[0] = 4, raw[1] = raw[2] = raw[3] = 0;
		return pkt_build(pkt, f, raw, sizeof(raw));
	}
	case_stun(c, &m);
	len = case_mutate(c, pkt, pkt_build(pkt, f, m.b, m.len));
	if (c->mut == M_MAGIC || c->mut == M_STUN_LEN) {
		uint8_t *udp = pkt + 14 + (c->family == AF_INET ? 20 : 40);

		put16(udp + 6, udp_csum(f, udp, len - (udp - pkt)));
	}
	if (c->action == XDP_TX) {
		r = flow_reply(f);
		stun_expected_response(&resp, f, c->mut == M_FINGERPRINT, c->mut == M_CLASSIC);
		*want_len = pkt_build(want, &r, resp.b, resp.len);
	}
	return len;
}

static void case_check_cache(const struct xdp_case *c, const struct flow *f, size_t msg_len,
			     __u32 out_len)
{
	struct natpath_cache_val v;
	bool found = cache_get(f, &v);

	CHECK(found == c->cached, "%s: nat_cache %s", c->name, c->cached ? "holds the client" : "untouched");
	if (!found || !c->cached)
		return;
	CHECK(v.rx_packets == 1 && v.rx_bytes == msg_len && v.last_rx_ns > 0,
	      "%s: nat_cache rx 1 packet, %zu bytes", c->name, msg_len);
	if (c->action == XDP_TX)
		CHECK(v.tx_packets == 1 && v.tx_bytes == out_len - (f->family == AF_INET ? 42 : 62) &&
		      v.last_tx_ns == v.last_rx_ns, "%s: nat_cache tx counts the answer", c->name);
	else
		CHECK(v.tx_packets == 0 && v.last_tx_ns == 0, "%s: nat_cache no tx", c->name);
	CHECK(!!(v.flags & NATPATH_F_CONFIRMED) == (c->mut == M_KEEPALIVE_GOOD),
	      "%s: CONFIRMED flag %s", c->name, c->mut == M_KEEPALIVE_GOOD ? "set" : "clear");
}

static void case_check_events(const struct xdp_case *c, const struct flow *f)
{
	bool punch = c->reason == NATPATH_R_STUN_PUNCH_CHECK;
	int want = (c->cached ? 1 : 0) + (punch ? 1 : 0);
	struct natpath_cache_key k = cache_key(f);

	CHECK_EQ_INT(n_evs, want, "events raised");
	if (c->cached && n_evs >= 1)
		CHECK(evs[0].type == NATPATH_EV_NEW_REMOTE && !memcmp(evs[0].addr, k.addr, 16) &&
		      evs[0].remote_port == f->sport && evs[0].local_port == f->dport &&
		      evs[0].family == k.family && evs[0].role == (f->dport == AGENT_PORT ?
		      NATPATH_ROLE_AGENT : NATPATH_ROLE_RENDEZVOUS),
		      "%s: NEW_REMOTE event names the client", c->name);
	if (punch && n_evs == 2)
		CHECK(evs[1].type == NATPATH_EV_PUNCH_CHECK && !memcmp(evs[1].txid, txid, 12) &&
		      evs[1].remote_port == f->sport,
		      "%s: PUNCH_CHECK event carries the transaction id", c->name);
}

/* On a mismatch: the differing bytes, as TAP comments. */
static void dump_diff(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
	size_t i, n = got_len > want_len ? got_len : want_len;
	int shown = 0;

	printf("#   length %zu, want %zu\n", got_len, want_len);
	for (i = 0; i < n && shown < 16; i++) {
		int g = i < got_len ? got[i] : -1, w = i < want_len ? want[i] : -1;

		if (g != w) {
			printf("#   byte %zu: got %02x want %02x\n", i, g & 0xff, w & 0xff);
			shown++;
		}
	}
}

static void run_case(const struct xdp_case *c, int i)
{
	static uint8_t pkt[PKT_MAX], want[PKT_MAX], out[PKT_MAX];
	int fam = c->family == AF_INET ? NATPATH_AF_INET : NATPATH_AF_INET6;
	size_t len, want_len = 0;
	__u32 out_len, ret;
	uint64_t before;
	struct flow f;
	int err;

	if (c->mut == M_NOT_IP)
		fam = 0;
	len = case_build(c, i, pkt, want, &want_len, &f);
	before = stat_get(fam, c->class, c->action, c->reason);
	n_evs = 0;
	err = run(skel->progs.natpath_xdp, pkt, len, out, &out_len, &ret);
	CHECK(err == 0, "%s: test run", c->name);
	CHECK_EQ_INT(ret, c->action, c->name);
	CHECK_EQ_INT(stat_get(fam, c->class, c->action, c->reason) - before, 1, "reason counted once");
	if (c->action == XDP_TX) {
		CHECK(out_len == want_len && memcmp(out, want, want_len) == 0,
		      "%s: exact response bytes", c->name);
		if (out_len != want_len || memcmp(out, want, want_len))
			dump_diff(out, out_len, want, want_len);
	} else {
		CHECK(out_len == len && memcmp(out, pkt, len) == 0, "%s: packet untouched", c->name);
	}
	case_check_cache(c, &f, len - 14 - (c->family == AF_INET ? 20 : 40) - 8, out_len);
	case_check_events(c, &f);
}

/* Searches transaction ids (last word) and client ports for an answer
 * whose UDP checksum field must read 0xffff; leaves txid and f set. */
static bool zero_checksum_find(int family, struct flow *f, uint8_t *want, size_t *want_len)
{
	size_t ck = 14 + (family == AF_INET ? 20 : 40) + 6;
	uint32_t port, w;
	struct stun resp;
	struct flow r;

	for (port = 40000; port < 40064; port++) {
		for (w = 0; w <= 0xffff; w++) {
			txid[10] = w >> 8;
			txid[11] = w;
			*f = flow_to_server(family, port);
			r = flow_reply(f);
			stun_expected_response(&resp, f, false, false);
			*want_len = pkt_build(want, &r, resp.b, resp.len);
			if (want[ck] == 0xff && want[ck + 1] == 0xff)
				return true;
		}
	}
	return false;
}

/* An answer whose UDP checksum computes to zero must carry 0xffff: zero
 * means "no checksum" (and is invalid on IPv6). */
static void test_zero_checksum(int family)
{
	static uint8_t pkt[PKT_MAX], want[PKT_MAX], out[PKT_MAX];
	const char *name = family == AF_INET ? "v4" : "v6";
	uint8_t saved[2] = { txid[10], txid[11] };
	size_t len, want_len = 0;
	__u32 out_len, ret;
	struct stun req;
	struct flow f;

	if (!zero_checksum_find(family, &f, want, &want_len)) {
		printf("ok %d - %s zero checksum # SKIP none found\n", ++unit_n, name);
	} else {
		stun_init(&req, NATPATH_STUN_BINDING_REQ, false);
		len = pkt_build(pkt, &f, req.b, req.len);
		CHECK(run(skel->progs.natpath_xdp, pkt, len, out, &out_len, &ret) == 0 &&
		      ret == XDP_TX, "%s zero-checksum request answered", name);
		CHECK(out_len == want_len && memcmp(out, want, want_len) == 0,
		      "%s checksum computing to zero sent as 0xffff", name);
	}
	txid[10] = saved[0];
	txid[11] = saved[1];
}

/* ---- keepalive token bookkeeping ---- */

static void test_token_hits(void)
{
	__u64 key = GOOD_TOKEN;
	struct natpath_token t;

	CHECK(bpf_map_lookup_elem(bpf_map__fd(skel->maps.tokens), &key, &t) == 0 && t.hits == 2,
	      "good token counted its two keepalives");
}

/* ---- tc egress ---- */

static void test_tc_egress(void)
{
	static uint8_t pkt[PKT_MAX], out[PKT_MAX];
	uint8_t quic[32] = { 0x41 };
	struct flow to = flow_to_server(AF_INET, 50000), from = flow_reply(&to);
	struct natpath_cache_val v;
	__u32 out_len, ret;
	size_t len = pkt_build(pkt, &from, quic, sizeof(quic));
	uint64_t before = stat_get(NATPATH_AF_INET, NATPATH_CLASS_QUIC, NATPATH_ACT_TC_OK,
				   NATPATH_R_TC_TRACKED);

	CHECK(run(skel->progs.natpath_tc, pkt, len, out, &out_len, &ret) == 0, "tc: test run");
	CHECK_EQ_INT(ret, TC_ACT_OK, "tc: TC_ACT_OK");
	CHECK_EQ_INT(stat_get(NATPATH_AF_INET, NATPATH_CLASS_QUIC, NATPATH_ACT_TC_OK,
			      NATPATH_R_TC_TRACKED) - before, 1, "tc: counted as tracked");
	CHECK(cache_get(&to, &v) && v.tx_packets == 1 && v.tx_bytes == sizeof(quic) &&
	      v.last_tx_ns > 0 && v.rx_packets == 0, "tc: nat_cache last-tx and tx counters");
	CHECK(out_len == len && memcmp(out, pkt, len) == 0, "tc: packet untouched");

	/* The first packet back from that endpoint is news, though the entry
	 * existed: egress alone created it. */
	n_evs = 0;
	len = pkt_build(pkt, &to, quic, sizeof(quic));
	CHECK(run(skel->progs.natpath_xdp, pkt, len, out, &out_len, &ret) == 0 && ret == XDP_PASS,
	      "tc: reply passed");
	CHECK(n_evs == 1 && evs[0].type == NATPATH_EV_NEW_REMOTE,
	      "tc: first reply after egress raises NEW_REMOTE");
	CHECK(cache_get(&to, &v) && v.rx_packets == 1 && v.tx_packets == 1,
	      "tc: entry holds both directions");

	from.sport = OTHER_PORT;
	before = stat_get(NATPATH_AF_INET, NATPATH_CLASS_NONE, NATPATH_ACT_TC_OK,
			  NATPATH_R_PORT_UNMANAGED);
	len = pkt_build(pkt, &from, quic, sizeof(quic));
	CHECK(run(skel->progs.natpath_tc, pkt, len, out, &out_len, &ret) == 0 && ret == TC_ACT_OK,
	      "tc: unmanaged source port still TC_ACT_OK");
	CHECK_EQ_INT(stat_get(NATPATH_AF_INET, NATPATH_CLASS_NONE, NATPATH_ACT_TC_OK,
			      NATPATH_R_PORT_UNMANAGED) - before, 1, "tc: unmanaged counted");
}

int main(void)
{
	__u64 token = GOOD_TOKEN;
	struct natpath_token zero = { 0 };
	size_t i;
	int err;

	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	err = load();
	CHECK(err == 0, "load natpath through the skeleton (err %d)", err);
	if (err)
		return unit_done();
	print_insns("xdp", skel->progs.natpath_xdp);
	print_insns("tc", skel->progs.natpath_tc);
	test_builders();
	bpf_map_update_elem(bpf_map__fd(skel->maps.tokens), &token, &zero, BPF_ANY);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], i);
	test_token_hits();
	test_zero_checksum(AF_INET);
	test_zero_checksum(AF_INET6);
	test_tc_egress();

	ring_buffer__free(rb);
	natpath__destroy(skel);
	return unit_done();
}
