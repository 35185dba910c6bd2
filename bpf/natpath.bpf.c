/* natpath: XDP ingress and tc egress for the UDP ports natagent manages.
 *
 * XDP (natpath_xdp), for each UDP packet to a port in `ports`:
 *   - plain STUN Binding requests (no USERNAME / MESSAGE-INTEGRITY, no
 *     comprehension-required attribute we cannot honour) are answered in
 *     place with XDP_TX: a Binding success response with XOR-MAPPED-ADDRESS
 *     (MAPPED-ADDRESS for RFC 3489 clients, which send no magic cookie),
 *     plus FINGERPRINT when the request had one;
 *   - keepalives (Binding indications with PATH-TOKEN) whose token is in
 *     `tokens` are absorbed (XDP_DROP); unknown tokens go to the socket;
 *   - everything else (punch checks, QUIC, WireGuard, ...) goes to the
 *     socket (XDP_PASS).
 * Every valid packet on a managed port updates `nat_cache`; a new remote
 * endpoint and every punch check put an event in `events`.
 *
 * tc egress (natpath_tc): UDP from a managed port updates the last-tx time
 * and tx counters in `nat_cache`. It never changes a verdict.
 *
 * Both hooks count every exit in `stats` under {family, class, action,
 * reason}: each return path sets its own reason (enum natpath_reason), and
 * only the program's entry function counts and returns.
 *
 * Verifier notes: every packet pointer is compared against data_end before
 * use, and re-derived from the context after bpf_xdp_adjust_tail (which
 * invalidates all of them). Offsets that depend on packet contents are
 * clamped to constants first, so the verifier can bound them. The two loops
 * over packet bytes (the UDP checksum, the STUN attribute walk) are global
 * functions, which the verifier checks once instead of once per path.
 *
 * Not checked: a request's own FINGERPRINT (the UDP checksum already vouches
 * for its bytes; a STUN server answers either way) and MESSAGE-INTEGRITY
 * (the agent checks punch checks; XDP only passes them on).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf/natpath.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define IP_MF     0x2000
#define IP_OFFSET 0x1fff

/* ---- maps (pinned by name under the loader's pin root) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NATPATH_CACHE_MAX);
	__type(key, struct natpath_cache_key);
	__type(value, struct natpath_cache_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NATPATH_MAPPINGS_MAX);
	__type(key, __u16);
	__type(value, struct natpath_mapping);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mappings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NATPATH_PORTS_MAX);
	__type(key, __u16);
	__type(value, __u32); /* enum natpath_role */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NATPATH_TOKENS_MAX);
	__type(key, __u64);
	__type(value, struct natpath_token);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tokens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NATPATH_STATS_MAX);
	__type(key, struct natpath_stats_key);
	__type(value, struct natpath_stat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NATPATH_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/* CRC-32 (IEEE, reflected, polynomial 0xEDB88320) for STUN FINGERPRINT. */
static const __u32 crc32_table[256] = {
	0x00000000, 0x77073096, 0xee0e612c, 0x990951ba, 0x076dc419, 0x706af48f,
	0xe963a535, 0x9e6495a3, 0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988,
	0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91, 0x1db71064, 0x6ab020f2,
	0xf3b97148, 0x84be41de, 0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
	0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec, 0x14015c4f, 0x63066cd9,
	0xfa0f3d63, 0x8d080df5, 0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172,
	0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b, 0x35b5a8fa, 0x42b2986c,
	0xdbbbc9d6, 0xacbcf940, 0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
	0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116, 0x21b4f4b5, 0x56b3c423,
	0xcfba9599, 0xb8bda50f, 0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924,
	0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d, 0x76dc4190, 0x01db7106,
	0x98d220bc, 0xefd5102a, 0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
	0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818, 0x7f6a0dbb, 0x086d3d2d,
	0x91646c97, 0xe6635c01, 0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e,
	0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457, 0x65b0d9c6, 0x12b7e950,
	0x8bbeb8ea, 0xfcb9887c, 0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
	0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2, 0x4adfa541, 0x3dd895d7,
	0xa4d1c46d, 0xd3d6f4fb, 0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0,
	0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9, 0x5005713c, 0x270241aa,
	0xbe0b1010, 0xc90c2086, 0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
	0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4, 0x59b33d17, 0x2eb40d81,
	0xb7bd5c3b, 0xc0ba6cad, 0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a,
	0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683, 0xe3630b12, 0x94643b84,
	0x0d6d6a3e, 0x7a6a5aa8, 0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
	0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe, 0xf762575d, 0x806567cb,
	0x196c3671, 0x6e6b06e7, 0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc,
	0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5, 0xd6d6a3e8, 0xa1d1937e,
	0x38d8c2c4, 0x4fdff252, 0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
	0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60, 0xdf60efc3, 0xa867df55,
	0x316e8eef, 0x4669be79, 0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236,
	0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f, 0xc5ba3bbe, 0xb2bd0b28,
	0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
	0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a, 0x9c0906a9, 0xeb0e363f,
	0x72076785, 0x05005713, 0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38,
	0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21, 0x86d3d2d4, 0xf1d4e242,
	0x68ddb3f8, 0x1fda836e, 0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
	0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c, 0x8f659eff, 0xf862ae69,
	0x616bffd3, 0x166ccf45, 0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2,
	0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db, 0xaed16a4a, 0xd9d65adc,
	0x40df0b66, 0x37d83bf0, 0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
	0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6, 0xbad03605, 0xcdd70693,
	0x54de5729, 0x23d967bf, 0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94,
	0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
};

/* ---- per-packet state ---- */

/* How far parsing got (xdp-tutorial's cursor). */
struct hdr_cursor {
	void *pos;
};

/* What a hook learnt about a packet, and what the entry function still has
 * to do on the way out: count it, cache it, raise events.
 * Code that dereferences a header picks it by testing ip4 / ip6, never by
 * family: the verifier forgets the value of a byte stored on the stack, but
 * it knows an unset pointer here is zero. */
struct pkt {
	void *data;
	void *data_end;
	struct iphdr *ip4;          /* family AF_INET */
	struct ipv6hdr *ip6;        /* family AF_INET6 */
	struct udphdr *udp;
	__u8 *msg;                  /* UDP payload */
	__u32 msg_len;              /* UDP payload length per the UDP header */
	__u32 tx_len;               /* XDP_TX: response payload length */
	__u32 role;                 /* enum natpath_role of the local port */
	struct natpath_cache_key key; /* remote endpoint + local port */
	__u8 hdr[16];               /* STUN: magic cookie + transaction id */
	__u8 family;
	__u8 class;
	__u8 reason;
	__u8 classic;               /* STUN without magic cookie (RFC 3489) */
	__u8 track;                 /* on exit: count in nat_cache */
	__u8 confirm;               /* on exit: set NATPATH_F_CONFIRMED */
	__u8 punch;                 /* on exit: raise NATPATH_EV_PUNCH_CHECK */
};

/* What the attribute walk found in a STUN message. */
struct stun_info {
	__u32 token_off;            /* PATH-TOKEN value offset in the message; 0 = none */
	__u16 type;
	__u8 auth;                  /* USERNAME / MESSAGE-INTEGRITY(-SHA256): a punch check */
	__u8 fingerprint;
	__u8 unknown;               /* a comprehension-required attribute we do not know */
	__u8 change;                /* CHANGE-REQUEST asking for another address or port */
};

/* Offsets read from the packet must stay below this before pointer
 * arithmetic, so the verifier can bound them. Well above any STUN message
 * XDP acts on (NATPATH_STUN_ACT_MAX); a power of two, see msg_at(). */
#define STUN_OFF_MAX 2048

/* Bound (and mask) for header offsets passed to the global functions,
 * which the verifier checks without knowing their callers. */
#define L4_OFF_MAX 0xff

/* Longest response: header, XOR-MAPPED-ADDRESS for IPv6, FINGERPRINT. */
#define RESP_MAX (NATPATH_STUN_HDR_LEN + 4 + 20 + 8)

union stun_resp {
	__u8 b[RESP_MAX];
	__u16 w[RESP_MAX / 2];
};

/* ---- counters and events ---- */

/* Per-CPU counters: the value is this CPU's copy, so plain adds suffice. */
static __always_inline void stats_add(__u8 family, __u8 class, __u8 action,
				      __u8 reason, __u64 bytes)
{
	struct natpath_stats_key k = {
		.family = family, .class = class, .action = action, .reason = reason,
	};
	struct natpath_stat *s = bpf_map_lookup_elem(&stats, &k);

	if (!s) {
		struct natpath_stat zero = {};

		/* NOEXIST: another CPU may have created the key meanwhile. */
		bpf_map_update_elem(&stats, &k, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &k);
		if (!s)
			return;
	}
	s->packets++;
	s->bytes += bytes;
}

static __always_inline void event_emit(struct pkt *p, __u8 type, __u64 now)
{
	struct natpath_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		/* The agent is behind; it re-reads nat_cache when it catches up. */
		stats_add(p->family, p->class, NATPATH_ACT_NONE, NATPATH_R_EVENT_LOST, 0);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = now;
	e->type = type;
	e->family = p->key.family;
	e->local_port = p->key.local_port;
	e->remote_port = p->key.remote_port;
	e->role = p->role;
	__builtin_memcpy(e->addr, p->key.addr, sizeof(e->addr));
	if (type == NATPATH_EV_PUNCH_CHECK)
		__builtin_memcpy(e->txid, p->hdr + 4, sizeof(e->txid));
	bpf_ringbuf_submit(e, 0);
}

/* ---- nat_cache ---- */

/* The entry for p->key, created zeroed when missing. */
static __always_inline struct natpath_cache_val *cache_entry(struct pkt *p)
{
	struct natpath_cache_val zero = {};
	struct natpath_cache_val *v = bpf_map_lookup_elem(&nat_cache, &p->key);

	if (v)
		return v;
	/* NOEXIST keeps the counts of an entry another CPU just created. */
	bpf_map_update_elem(&nat_cache, &p->key, &zero, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&nat_cache, &p->key);
	if (!v)
		stats_add(p->family, p->class, NATPATH_ACT_NONE, NATPATH_R_CACHE_ERR, 0);
	return v;
}

/* Ingress: one packet received from the remote, maybe one answered. The
 * first packet received from an endpoint raises NATPATH_EV_NEW_REMOTE (the
 * entry may exist already, created by egress). Counters are shared between
 * CPUs, hence the atomic adds; the flag update is a plain read-modify-write
 * because clang's default BPF CPU has no atomic OR, and only ever sets a bit. */
static __always_inline void cache_rx(struct pkt *p)
{
	__u64 now = bpf_ktime_get_boot_ns();
	struct natpath_cache_val *v = cache_entry(p);

	if (!v)
		return;
	if (!v->rx_packets)
		event_emit(p, NATPATH_EV_NEW_REMOTE, now);
	v->last_rx_ns = now;
	__sync_fetch_and_add(&v->rx_packets, 1);
	__sync_fetch_and_add(&v->rx_bytes, p->msg_len);
	if (p->tx_len) {
		v->last_tx_ns = now;
		__sync_fetch_and_add(&v->tx_packets, 1);
		__sync_fetch_and_add(&v->tx_bytes, p->tx_len);
	}
	if (p->confirm && !(v->flags & NATPATH_F_CONFIRMED))
		v->flags |= NATPATH_F_CONFIRMED;
}

/* Egress: packets sent to the remote (a GSO packet counts its segments). */
static __always_inline void cache_tx(struct pkt *p, __u32 packets, __u32 bytes)
{
	struct natpath_cache_val *v = cache_entry(p);

	if (!v)
		return;
	v->last_tx_ns = bpf_ktime_get_boot_ns();
	__sync_fetch_and_add(&v->tx_packets, packets);
	__sync_fetch_and_add(&v->tx_bytes, bytes);
}

/* ---- parsing (both hooks) ---- */

static __always_inline int parse_ethhdr(struct pkt *p, struct hdr_cursor *c, __u16 *proto)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > p->data_end)
		return NATPATH_R_ETH_SHORT;
	c->pos = eth + 1;
	*proto = eth->h_proto; /* network order */
	return NATPATH_R_NONE;
}

/* Option-less, unfragmented IPv4 carrying UDP. tot_len may be shorter than
 * the bytes that follow (Ethernet pads short frames), never longer.
 * l3_len: bytes from the IP header to the end of the packet. */
static __always_inline int parse_iphdr(struct pkt *p, struct hdr_cursor *c,
				       __u32 l3_len, __u32 *l4_len)
{
	struct iphdr *ip = c->pos;
	__u32 tot;

	if ((void *)(ip + 1) > p->data_end)
		return NATPATH_R_IP_SHORT;
	if (ip->version != 4)
		return NATPATH_R_IP_VERSION;
	if (ip->ihl < 5)
		return NATPATH_R_IP_IHL;
	/* Options would shift every offset; nothing natagent sends has any. */
	if (ip->ihl > 5)
		return NATPATH_R_IP_OPTIONS;
	/* Non-first fragments have no UDP header; the stack reassembles. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return NATPATH_R_IP_FRAGMENT;
	if (ip->protocol != IPPROTO_UDP)
		return NATPATH_R_NOT_UDP;
	tot = bpf_ntohs(ip->tot_len);
	if (tot < sizeof(*ip) + sizeof(struct udphdr) || tot > l3_len)
		return NATPATH_R_IP_LEN;
	p->ip4 = ip;
	c->pos = ip + 1;
	*l4_len = tot - sizeof(*ip);
	return NATPATH_R_NONE;
}

/* IPv6 with UDP as the first next header: extension headers would need a
 * walk, and natagent's traffic carries none. */
static __always_inline int parse_ip6hdr(struct pkt *p, struct hdr_cursor *c,
					__u32 l3_len, __u32 *l4_len)
{
	struct ipv6hdr *ip6 = c->pos;
	__u32 plen;

	if ((void *)(ip6 + 1) > p->data_end)
		return NATPATH_R_IP_SHORT;
	if (ip6->version != 6)
		return NATPATH_R_IP_VERSION;
	if (ip6->nexthdr != IPPROTO_UDP)
		return NATPATH_R_NOT_UDP;
	plen = bpf_ntohs(ip6->payload_len);
	if (plen < sizeof(struct udphdr) || plen > l3_len - sizeof(*ip6))
		return NATPATH_R_IP_LEN;
	p->ip6 = ip6;
	c->pos = ip6 + 1;
	*l4_len = plen;
	return NATPATH_R_NONE;
}

static __always_inline int parse_udphdr(struct pkt *p, struct hdr_cursor *c, __u32 l4_len)
{
	struct udphdr *udp = c->pos;

	if ((void *)(udp + 1) > p->data_end)
		return NATPATH_R_UDP_SHORT;
	if (bpf_ntohs(udp->len) != l4_len)
		return NATPATH_R_UDP_LEN;
	p->udp = udp;
	p->msg = (void *)(udp + 1);
	p->msg_len = l4_len - sizeof(*udp);
	return NATPATH_R_NONE;
}

/* Ethernet, IPv4 or IPv6, UDP. wire_len is the whole packet's length (for
 * tc it covers paged data that data_end does not). */
static __always_inline int parse_packet(struct pkt *p, __u32 wire_len)
{
	struct hdr_cursor c = { .pos = p->data };
	__u32 l4_len = 0;
	__u16 proto;
	int r;

	r = parse_ethhdr(p, &c, &proto);
	if (r)
		return r;
	if (proto == bpf_htons(ETH_P_IP)) {
		p->family = NATPATH_AF_INET;
		r = parse_iphdr(p, &c, wire_len - ETH_HLEN, &l4_len);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		p->family = NATPATH_AF_INET6;
		r = parse_ip6hdr(p, &c, wire_len - ETH_HLEN, &l4_len);
	} else {
		return NATPATH_R_NOT_IP;
	}
	if (r)
		return r;
	return parse_udphdr(p, &c, l4_len);
}

/* The nat_cache key: the remote is the source on ingress and the
 * destination on egress. */
static __always_inline void pkt_key(struct pkt *p, int ingress)
{
	struct natpath_cache_key *k = &p->key;

	k->family = p->family;
	if (p->ip4)
		__builtin_memcpy(k->addr, ingress ? &p->ip4->saddr : &p->ip4->daddr, 4);
	else if (p->ip6)
		__builtin_memcpy(k->addr, ingress ? &p->ip6->saddr : &p->ip6->daddr, 16);
	k->remote_port = bpf_ntohs(ingress ? p->udp->source : p->udp->dest);
	k->local_port = bpf_ntohs(ingress ? p->udp->dest : p->udp->source);
}

/* RFC 9443 demultiplexing by the first bytes. On a STUN service port
 * (rendezvous roles) an RFC 3489 Binding request, which has no cookie,
 * counts as STUN too when its length field matches exactly: classic
 * clients (Debian's stun-client) still exist. The agent's own port keeps
 * to RFC 9443, where a missing cookie means "not STUN". */
static __always_inline __u8 classify(struct pkt *p)
{
	__u8 *m = p->msg;
	__u32 cookie;

	if (p->msg_len < 8 || (void *)(m + 8) > p->data_end)
		return NATPATH_CLASS_OTHER;
	__builtin_memcpy(&cookie, m + 4, 4);
	if (m[0] <= 3 && cookie == bpf_htonl(NATPATH_STUN_MAGIC))
		return NATPATH_CLASS_STUN;
	if (m[0] >= 1 && m[0] <= 4 && !m[1] && !m[2] && !m[3])
		return NATPATH_CLASS_WIREGUARD;
	if (m[0] >= 64)
		return NATPATH_CLASS_QUIC;
	if (natpath_role_serves_stun(p->role) &&
	    m[0] == 0 && m[1] == NATPATH_STUN_BINDING_REQ &&
	    p->msg_len >= NATPATH_STUN_HDR_LEN &&
	    ((m[2] << 8) | m[3]) == p->msg_len - NATPATH_STUN_HDR_LEN) {
		p->classic = 1;
		return NATPATH_CLASS_STUN;
	}
	return NATPATH_CLASS_OTHER;
}

/* ---- checksums ---- */

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* Words are summed as they lie in memory: a ones'-complement sum does not
 * depend on byte order, so the complement of the fold can be stored back
 * into the packet as is. */
static __always_inline __u16 ip4_hdr_sum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	return csum_fold(sum);
}

static __always_inline __u64 csum_pseudo4(struct iphdr *ip, __be16 udp_len)
{
	return (__u64)ip->saddr + ip->daddr + bpf_htons(IPPROTO_UDP) + udp_len;
}

static __always_inline __u64 csum_pseudo6(struct ipv6hdr *ip6, __be16 udp_len)
{
	__u64 sum = bpf_htons(IPPROTO_UDP) + udp_len;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		sum += (__u64)ip6->saddr.in6_u.u6_addr32[i] + ip6->daddr.in6_u.u6_addr32[i];
	return sum;
}

/* The folded ones'-complement sum of len bytes at offset off of the
 * packet, plus seed. A global function: the verifier checks it once, on
 * its own, instead of once for every path that reaches it (the STUN
 * attribute walk leaves many, and a 260-round loop in each would exhaust
 * its budget). It changes no packet data, so callers keep their pointers.
 * Callers keep len within the loop bound (NATPATH_STUN_ACT_MAX + 8). */
__noinline int natpath_csum(struct xdp_md *ctx, __u32 off, __u32 len, __u32 seed)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 sum = seed;
	__u16 *w;
	int i;

	if (off > L4_OFF_MAX)
		return -1;
	barrier_var(off);
	w = data + (off & L4_OFF_MAX);
	for (i = 0; i < (NATPATH_STUN_ACT_MAX + 8) / 2; i++) {
		if (len < 2 || (void *)(w + 1) > data_end)
			break;
		sum += *w++;
		len -= 2;
	}
	if (len == 1 && (void *)w + 1 <= data_end)
		sum += *(__u8 *)w;
	return csum_fold(sum);
}

/* Before XDP acts on a packet itself (answers or absorbs it), it checks
 * what the stack would have checked: the UDP checksum. */
static __always_inline int udp_csum_check(struct xdp_md *ctx, struct pkt *p)
{
	struct udphdr *udp = p->udp;
	__u32 off = ETH_HLEN;
	__u64 sum;

	if (!udp->check)
		/* "No checksum" is allowed for IPv4 only (RFC 768; RFC 8200 8.1). */
		return p->ip6 ? NATPATH_R_UDP_CSUM_ZERO6 : NATPATH_R_NONE;
	if (p->ip4) {
		sum = csum_pseudo4(p->ip4, udp->len);
		off += sizeof(struct iphdr);
	} else if (p->ip6) {
		sum = csum_pseudo6(p->ip6, udp->len);
		off += sizeof(struct ipv6hdr);
	} else {
		return NATPATH_R_UDP_CSUM;
	}
	sum = natpath_csum(ctx, off, p->msg_len + sizeof(*udp), csum_fold(sum));
	return sum == 0xffff ? NATPATH_R_NONE : NATPATH_R_UDP_CSUM;
}

static __always_inline __u32 crc32(const __u8 *b, __u32 len)
{
	__u32 crc = 0xffffffff;
	__u32 i;

	for (i = 0; i < RESP_MAX; i++) {
		if (i >= len)
			break;
		crc = crc32_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	}
	return ~crc;
}

/* ---- STUN ---- */

static __always_inline void put16(__u8 *b, __u16 v)
{
	b[0] = v >> 8;
	b[1] = v;
}

static __always_inline __u16 get16(const __u8 *b)
{
	return (b[0] << 8) | b[1];
}

/* msg + off, with len bytes before data_end, for an offset that depends
 * on packet contents; NULL when out of range. The mask is a no-op after
 * the check, but clang cannot drop it past barrier_var(), and it is what
 * tells the verifier the offset's bound whichever register clang uses. */
static __always_inline __u8 *msg_at(__u8 *msg, void *data_end, __u32 off, __u32 len)
{
	__u8 *at;

	if (off >= STUN_OFF_MAX)
		return NULL;
	barrier_var(off);
	off &= STUN_OFF_MAX - 1;
	at = msg + off;
	if ((void *)(at + len) > data_end)
		return NULL;
	return at;
}

/* One attribute: voff is where its value starts in the message, last says
 * whether it ends the message. */
static __always_inline int stun_attr(__u8 *msg, void *data_end, struct stun_info *si,
				     __u16 type, __u16 alen, __u32 voff, int last)
{
	__u8 *v;

	switch (type) {
	case NATPATH_STUN_ATTR_USERNAME:
	case NATPATH_STUN_ATTR_MI:
	case NATPATH_STUN_ATTR_MI256:
		si->auth = 1;
		return NATPATH_R_NONE;
	case NATPATH_STUN_ATTR_PATH_TOKEN:
		if (alen != NATPATH_PATH_TOKEN_LEN)
			return NATPATH_R_STUN_ATTR;
		si->token_off = voff;
		return NATPATH_R_NONE;
	case NATPATH_STUN_ATTR_FINGERPRINT:
		/* Always the last attribute (RFC 8489 14.7). */
		if (alen != 4 || !last)
			return NATPATH_R_STUN_ATTR;
		si->fingerprint = 1;
		return NATPATH_R_NONE;
	case NATPATH_STUN_ATTR_CHANGE:
		v = msg_at(msg, data_end, voff, 4);
		if (alen != 4 || !v)
			return NATPATH_R_STUN_ATTR;
		/* RFC 3489 clients send it, flags clear, on every request: that
		 * one we can honour. Change-IP (4) or change-port (2) we cannot. */
		if (v[3] & 0x06)
			si->change = 1;
		return NATPATH_R_NONE;
	case NATPATH_STUN_ATTR_PRIORITY:
	case NATPATH_STUN_ATTR_USE_CAND:
		return NATPATH_R_NONE;
	}
	/* Comprehension-required (below 0x8000) and unknown: the socket must
	 * answer 420 (RFC 8489 7.3.1), or understands it. */
	if (type < 0x8000)
		si->unknown = 1;
	return NATPATH_R_NONE;
}

/* Walks the attributes of the STUN message at msg_off in the packet, from
 * its header to end (bytes into the message), filling si; returns a reason
 * when they are malformed. A global function, like natpath_csum(), and for
 * a second reason: what it learns comes back through memory, so the
 * verifier does not carry each attribute combination as a separate state
 * into the caller's paths. */
__noinline int natpath_stun_walk(struct xdp_md *ctx, __u32 msg_off, __u32 end,
				 struct stun_info *si)
{
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *msg = (void *)(long)ctx->data;
	__u32 off = NATPATH_STUN_HDR_LEN;
	__u32 alen, next;
	__u8 *a;
	int i, r;

	if (!si || msg_off > L4_OFF_MAX)
		return NATPATH_R_STUN_ATTR;
	barrier_var(msg_off);
	msg += msg_off & L4_OFF_MAX;
	for (i = 0; i < NATPATH_STUN_MAX_ATTRS; i++) {
		if (off >= end)
			return NATPATH_R_NONE;
		a = msg_at(msg, data_end, off, 4);
		if (!a)
			return NATPATH_R_STUN_ATTR;
		alen = get16(a + 2);
		next = off + 4 + ((alen + 3) & ~3u);
		if (next > end)
			return NATPATH_R_STUN_ATTR;
		r = stun_attr(msg, data_end, si, get16(a), alen, off + 4, next == end);
		if (r)
			return r;
		off = next;
	}
	return off >= end ? NATPATH_R_NONE : NATPATH_R_STUN_ATTR;
}

static __always_inline int stun_parse(struct xdp_md *ctx, struct pkt *p, struct stun_info *si)
{
	__u8 *m = p->msg;
	__u32 mlen;

	if (p->msg_len < NATPATH_STUN_HDR_LEN || (void *)(m + NATPATH_STUN_HDR_LEN) > p->data_end)
		return NATPATH_R_STUN_LEN;
	/* The length field covers the attributes exactly, in 4-byte units. */
	mlen = get16(m + 2);
	if (mlen != p->msg_len - NATPATH_STUN_HDR_LEN || (mlen & 3))
		return NATPATH_R_STUN_LEN;
	si->type = get16(m);
	__builtin_memcpy(p->hdr, m + 4, sizeof(p->hdr));
	return natpath_stun_walk(ctx, (long)m - (long)p->data, NATPATH_STUN_HDR_LEN + mlen, si);
}

/* The address attribute of the response: XOR-MAPPED-ADDRESS, or
 * MAPPED-ADDRESS for an RFC 3489 client that would not understand it.
 * alen is 8 (IPv4) or 20 (IPv6). */
static __always_inline void stun_put_addr(struct pkt *p, union stun_resp *r, __u32 alen)
{
	__u8 *a = r->b + NATPATH_STUN_HDR_LEN;
	__u32 i;

	put16(a, p->classic ? NATPATH_STUN_ATTR_MAPPED : NATPATH_STUN_ATTR_XOR_MAPPED);
	put16(a + 2, alen);
	a[5] = alen == 8 ? 1 : 2;
	put16(a + 6, p->key.remote_port);
	__builtin_memcpy(a + 8, p->key.addr, alen - 4);
	if (p->classic)
		return;
	/* Port with the cookie's top half, address with cookie || transaction
	 * id (RFC 8489 14.2): both masks start at r->b + 4. */
	a[6] ^= r->b[4];
	a[7] ^= r->b[5];
	for (i = 0; i < alen - 4; i++)
		a[8 + i] ^= r->b[4 + i];
}

/* FINGERPRINT at off: CRC-32 of everything before it, xor 0x5354554e. */
static __always_inline void stun_put_fingerprint(union stun_resp *r, __u32 off)
{
	__u32 crc;

	put16(r->b + off, NATPATH_STUN_ATTR_FINGERPRINT);
	put16(r->b + off + 2, 4);
	crc = crc32(r->b, off) ^ NATPATH_STUN_FINGERPRINT_XOR;
	put16(r->b + off + 4, crc >> 16);
	put16(r->b + off + 6, crc);
}

/* The Binding success response to the request in p; returns its length. */
static __always_inline __u32 stun_build(struct pkt *p, struct stun_info *si, union stun_resp *r)
{
	__u32 alen = p->family == NATPATH_AF_INET ? 8 : 20;
	__u32 len = NATPATH_STUN_HDR_LEN + 4 + alen + (si->fingerprint ? 8 : 0);

	__builtin_memset(r, 0, sizeof(*r));
	put16(r->b, NATPATH_STUN_BINDING_RESP);
	put16(r->b + 2, len - NATPATH_STUN_HDR_LEN);
	/* Cookie and transaction id (all 16 bytes for RFC 3489) echo the request. */
	__builtin_memcpy(r->b + 4, p->hdr, sizeof(p->hdr));
	if (p->family == NATPATH_AF_INET) {
		stun_put_addr(p, r, 8);
		if (si->fingerprint)
			stun_put_fingerprint(r, NATPATH_STUN_HDR_LEN + 4 + 8);
	} else {
		stun_put_addr(p, r, 20);
		if (si->fingerprint)
			stun_put_fingerprint(r, NATPATH_STUN_HDR_LEN + 4 + 20);
	}
	return len;
}

static __always_inline void eth_swap(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

static __always_inline void ip4_reply(struct iphdr *ip, __u32 udp_len)
{
	__be32 tmp = ip->saddr;

	ip->saddr = ip->daddr;
	ip->daddr = tmp;
	ip->ttl = NATPATH_TX_TTL;
	ip->tot_len = bpf_htons(sizeof(*ip) + udp_len);
	ip->check = 0;
	ip->check = ~ip4_hdr_sum(ip);
}

static __always_inline void ip6_reply(struct ipv6hdr *ip6, __u32 udp_len)
{
	struct in6_addr tmp = ip6->saddr;

	ip6->saddr = ip6->daddr;
	ip6->daddr = tmp;
	ip6->hop_limit = NATPATH_TX_TTL;
	ip6->payload_len = bpf_htons(udp_len);
}

static __always_inline int xdp_abort(struct pkt *p, __u8 reason)
{
	p->reason = reason;
	return XDP_ABORTED;
}

/* Writes the response r (len bytes) over the tail-adjusted packet. Every
 * pointer is derived again from ctx: bpf_xdp_adjust_tail invalidated the
 * old ones. From here on the packet is modified, so failures abort. */
static __always_inline int stun_rewrite(struct xdp_md *ctx, struct pkt *p,
					union stun_resp *r, __u32 len)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = (void *)(long)ctx->data;
	__u32 udp_len = sizeof(struct udphdr) + len;
	struct udphdr *udp;
	__u16 *d, port, check;
	__u64 sum;
	__u32 i;

	if ((void *)(eth + 1) > data_end)
		return xdp_abort(p, NATPATH_R_TX_BOUNDS);
	if (p->family == NATPATH_AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);

		udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > data_end)
			return xdp_abort(p, NATPATH_R_TX_BOUNDS);
		ip4_reply(ip, udp_len);
		sum = csum_pseudo4(ip, bpf_htons(udp_len));
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > data_end)
			return xdp_abort(p, NATPATH_R_TX_BOUNDS);
		ip6_reply(ip6, udp_len);
		sum = csum_pseudo6(ip6, bpf_htons(udp_len));
	}
	eth_swap(eth);
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	udp->len = bpf_htons(udp_len);
	udp->check = 0;
	d = (void *)(udp + 1);
	for (i = 0; i < RESP_MAX / 2; i++) {
		if (i * 2 >= len)
			break;
		if ((void *)(d + i + 1) > data_end)
			return xdp_abort(p, NATPATH_R_TX_BOUNDS);
		d[i] = r->w[i];
		sum += r->w[i];
	}
	sum += udp->source + udp->dest + udp->len;
	check = ~csum_fold(sum);
	/* A computed zero goes out as all ones: zero means "no checksum". */
	udp->check = check ? check : 0xffff;
	p->tx_len = len;
	p->reason = p->classic ? NATPATH_R_STUN_ANSWERED_3489 : NATPATH_R_STUN_ANSWERED;
	return XDP_TX;
}

/* Turns the plain Binding request in p into its response, in place. */
static __always_inline int stun_answer(struct xdp_md *ctx, struct pkt *p, struct stun_info *si)
{
	__u32 l4_off = ETH_HLEN + (p->family == NATPATH_AF_INET ?
				   sizeof(struct iphdr) : sizeof(struct ipv6hdr));
	union stun_resp r;
	__u32 len = stun_build(p, si, &r);
	int delta;

	/* Grow or shrink to exactly the response; this also drops any trailer
	 * beyond the IP length. */
	delta = (int)(l4_off + sizeof(struct udphdr) + len) - (int)(p->data_end - p->data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return xdp_abort(p, NATPATH_R_TX_ADJUST);
	return stun_rewrite(ctx, p, &r, len);
}

/* A keepalive: absorbed when its PATH-TOKEN is one the agent issued. */
static __always_inline int stun_keepalive(struct pkt *p, struct stun_info *si)
{
	__u8 *t = msg_at(p->msg, p->data_end, si->token_off, NATPATH_PATH_TOKEN_LEN);
	struct natpath_token *tv;
	__u64 token;

	if (!t) {
		/* Cannot happen: the walk checked it. */
		p->reason = NATPATH_R_STUN_ATTR;
		return XDP_PASS;
	}
	__builtin_memcpy(&token, t, sizeof(token));
	token = bpf_be64_to_cpu(token);
	tv = bpf_map_lookup_elem(&tokens, &token);
	if (!tv) {
		/* Maybe a token the agent has not installed yet: let it decide. */
		p->reason = NATPATH_R_KEEPALIVE_BAD_TOKEN;
		return XDP_PASS;
	}
	__sync_fetch_and_add(&tv->hits, 1);
	p->track = 1;
	p->confirm = 1;
	p->reason = NATPATH_R_KEEPALIVE;
	return XDP_DROP;
}

static __always_inline int xdp_pass(struct pkt *p, __u8 reason)
{
	p->reason = reason;
	return XDP_PASS;
}

/* PASS, and count the packet in nat_cache on the way out. */
static __always_inline int xdp_track_pass(struct pkt *p, __u8 reason)
{
	p->track = 1;
	return xdp_pass(p, reason);
}

/* Whether XDP may answer by swapping addresses: the request came to a
 * unicast MAC (not broadcast or multicast, where the answer's source would
 * be the group) from an address one can answer (not unspecified, loopback,
 * multicast or broadcast, which the stack would drop as martians). */
static __always_inline int stun_answerable(struct pkt *p)
{
	__u8 *eth = p->data;
	__u8 *a = p->key.addr;
	__u8 high = 0;
	int i;

	if ((void *)(eth + ETH_HLEN) > p->data_end || (eth[0] & 1))
		return 0;
	if (p->family == NATPATH_AF_INET)
		return a[0] != 0 && a[0] != 127 && a[0] < 224;
	if (a[0] == 0xff)
		return 0;
#pragma unroll
	for (i = 0; i < 15; i++)
		high |= a[i];
	return high || a[15] > 1; /* not :: or ::1 */
}

/* Which STUN messages XDP acts on itself: plain Binding requests and
 * keepalives. Returns NATPATH_R_NONE for those, else the reason to pass. */
static __always_inline int stun_triage(struct pkt *p, struct stun_info *si)
{
	if (si->type == NATPATH_STUN_BINDING_REQ) {
		if (si->auth) {
			p->punch = 1;
			return NATPATH_R_STUN_PUNCH_CHECK;
		}
		if (si->unknown)
			return NATPATH_R_STUN_UNKNOWN_ATTR;
		if (si->change)
			return NATPATH_R_STUN_CHANGE_REQUEST;
		if (!stun_answerable(p))
			return NATPATH_R_STUN_NOT_UNICAST;
		return NATPATH_R_NONE;
	}
	if (si->type == NATPATH_STUN_BINDING_IND && !p->classic)
		return si->token_off ? NATPATH_R_NONE : NATPATH_R_STUN_INDICATION;
	return NATPATH_R_STUN_OTHER;
}

static __always_inline int stun_handle(struct xdp_md *ctx, struct pkt *p)
{
	struct stun_info si = {};
	int r;

	r = stun_parse(ctx, p, &si);
	if (!r)
		r = stun_triage(p, &si);
	if (!r && p->msg_len > NATPATH_STUN_ACT_MAX)
		r = NATPATH_R_STUN_TOO_BIG;
	if (r)
		return xdp_track_pass(p, r);
	/* A corrupt packet is not cached: its addresses may be garbage. */
	r = udp_csum_check(ctx, p);
	if (r)
		return xdp_pass(p, r);
	if (si.type == NATPATH_STUN_BINDING_IND)
		return stun_keepalive(p, &si);
	p->track = 1;
	return stun_answer(ctx, p, &si);
}

/* ---- XDP ingress ---- */

static __always_inline int xdp_handle(struct xdp_md *ctx, struct pkt *p, __u32 frame_len)
{
	__u32 *role;
	__u16 port;
	int r;

	r = parse_packet(p, frame_len);
	if (r)
		return xdp_pass(p, r);
	port = bpf_ntohs(p->udp->dest);
	role = bpf_map_lookup_elem(&ports, &port);
	if (!role)
		return xdp_pass(p, NATPATH_R_PORT_UNMANAGED);
	p->role = *role;
	/* The stack checks it as well, but we cache this packet's addresses
	 * and may answer it before the stack sees it. */
	if (p->ip4 && ip4_hdr_sum(p->ip4) != 0xffff)
		return xdp_pass(p, NATPATH_R_IP_CSUM);
	pkt_key(p, 1);
	p->class = classify(p);
	switch (p->class) {
	case NATPATH_CLASS_STUN:
		return stun_handle(ctx, p);
	case NATPATH_CLASS_QUIC:
		return xdp_track_pass(p, NATPATH_R_QUIC);
	case NATPATH_CLASS_WIREGUARD:
		return xdp_track_pass(p, NATPATH_R_WIREGUARD);
	}
	return xdp_track_pass(p, NATPATH_R_OTHER);
}

/* The only place XDP returns: every verdict is counted here. Cache and
 * events come after the verdict so the answered packet's bytes are known;
 * they use only values saved before the packet was rewritten. */
SEC("xdp")
int natpath_xdp(struct xdp_md *ctx)
{
	struct pkt p = {};
	__u32 frame_len;
	int action;

	p.data = (void *)(long)ctx->data;
	p.data_end = (void *)(long)ctx->data_end;
	frame_len = p.data_end - p.data;
	action = xdp_handle(ctx, &p, frame_len);
	if (p.track)
		cache_rx(&p);
	if (p.punch)
		event_emit(&p, NATPATH_EV_PUNCH_CHECK, bpf_ktime_get_boot_ns());
	stats_add(p.family, p.class, action, p.reason, frame_len);
	return action;
}

/* ---- tc egress ---- */

/* Headers plus the 8 payload bytes classify() reads. */
#define TC_PULL_LEN (ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct udphdr) + 8)

static __always_inline void tc_handle(struct __sk_buff *skb, struct pkt *p)
{
	__u32 want = skb->len < TC_PULL_LEN ? skb->len : TC_PULL_LEN;
	__u32 hdrs;
	__u32 *role;
	__u16 port;
	int r;

	/* Locally built packets may keep headers in paged data. */
	if ((long)skb->data_end - (long)skb->data < want && bpf_skb_pull_data(skb, want)) {
		p->reason = NATPATH_R_TC_PULL;
		return;
	}
	p->data = (void *)(long)skb->data;
	p->data_end = (void *)(long)skb->data_end;
	r = parse_packet(p, skb->len);
	if (r) {
		p->reason = r;
		return;
	}
	port = bpf_ntohs(p->udp->source);
	role = bpf_map_lookup_elem(&ports, &port);
	if (!role) {
		p->reason = NATPATH_R_PORT_UNMANAGED;
		return;
	}
	p->role = *role;
	pkt_key(p, 0);
	p->class = classify(p);
	hdrs = ETH_HLEN + sizeof(struct udphdr) + (p->family == NATPATH_AF_INET ?
		sizeof(struct iphdr) : sizeof(struct ipv6hdr));
	/* A GSO packet is gso_segs datagrams; its payload bytes are the
	 * length less one set of headers. */
	cache_tx(p, skb->gso_segs ?: 1, skb->len - hdrs);
	p->reason = NATPATH_R_TC_TRACKED;
}

SEC("tc")
int natpath_tc(struct __sk_buff *skb)
{
	struct pkt p = {};

	tc_handle(skb, &p);
	stats_add(p.family, p.class, NATPATH_ACT_TC_OK, p.reason, skb->len);
	return TC_ACT_OK;
}
