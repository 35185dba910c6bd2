/* natpath: the XDP + tc fast path and the NAT-mapping cache.
 *
 * This header is shared by bpf/natpath.bpf.c (compiled with -target bpf) and
 * the loader in agent/bpf.c, so it uses only <linux/types.h> fixed-width
 * types and lays every struct out with explicit padding: map keys are hashed
 * byte for byte, so no implicit padding may carry garbage.
 *
 * Conventions for every map key and value below:
 * - Addresses are 16 bytes. An IPv4 address sits in the first 4 bytes and the
 *   other 12 are zero (not v4-mapped), with `family` telling which. That is
 *   the layout of struct na_ip in nat/addr.h, so conversion is a memcpy.
 * - family is NATPATH_AF_INET (2) or NATPATH_AF_INET6 (10): Linux's AF_*.
 * - Ports are in host byte order (readable in `bpftool map dump`).
 * - Times are CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns): NAT
 *   mappings keep expiring while a laptop sleeps, so liveness must count
 *   suspended time too. Userspace compares with clock_gettime(CLOCK_BOOTTIME).
 */
#ifndef NATAGENT_BPF_NATPATH_H
#define NATAGENT_BPF_NATPATH_H

#include <linux/types.h>

#define NATPATH_AF_INET  2
#define NATPATH_AF_INET6 10

/* Map sizes. Changing one makes the pinned map of a previous version
 * unusable (libbpf refuses to reuse it), so the agent reports that. */
#define NATPATH_CACHE_MAX    65536
#define NATPATH_MAPPINGS_MAX 256
#define NATPATH_PORTS_MAX    64
#define NATPATH_TOKENS_MAX   4096
#define NATPATH_STATS_MAX    1024
#define NATPATH_EVENTS_BYTES (256 * 1024)

/* STUN (RFC 8489) numbers the fast path uses. */
#define NATPATH_STUN_MAGIC         0x2112A442
#define NATPATH_STUN_HDR_LEN       20
#define NATPATH_STUN_BINDING_REQ   0x0001
#define NATPATH_STUN_BINDING_IND   0x0011
#define NATPATH_STUN_BINDING_RESP  0x0101
#define NATPATH_STUN_ATTR_MAPPED   0x0001 /* RFC 3489 MAPPED-ADDRESS */
#define NATPATH_STUN_ATTR_CHANGE   0x0003 /* RFC 5780 CHANGE-REQUEST */
#define NATPATH_STUN_ATTR_USERNAME 0x0006
#define NATPATH_STUN_ATTR_MI       0x0008 /* MESSAGE-INTEGRITY */
#define NATPATH_STUN_ATTR_MI256    0x001C /* MESSAGE-INTEGRITY-SHA256 */
#define NATPATH_STUN_ATTR_XOR_MAPPED 0x0020
#define NATPATH_STUN_ATTR_PRIORITY 0x0024 /* ICE (RFC 8445) */
#define NATPATH_STUN_ATTR_USE_CAND 0x0025 /* ICE USE-CANDIDATE */
#define NATPATH_STUN_ATTR_FINGERPRINT 0x8028
#define NATPATH_STUN_FINGERPRINT_XOR  0x5354554e

/* PATH-TOKEN: natagent's keepalive attribute. Its type lies in the
 * comprehension-optional range (0x8000-0xFFFF), so any other STUN agent
 * ignores it. The value is 8 bytes, the token in network byte order; the
 * `tokens` map is keyed by the same token in host byte order. */
#define NATPATH_STUN_ATTR_PATH_TOKEN 0xC0A7
#define NATPATH_PATH_TOKEN_LEN       8

/* Largest STUN message (header + attributes) the XDP program answers or
 * absorbs; larger ones go to the socket. Bounds the checksum loop. */
#define NATPATH_STUN_ACT_MAX 512
/* Most attributes walked in one message (bounds the parsing loop). */
#define NATPATH_STUN_MAX_ATTRS 16
/* TTL / hop limit of the responses XDP sends. */
#define NATPATH_TX_TTL 64

/* Tags the loader uses to recognise its own attachments (stale ones from a
 * crashed run included): program names as the kernel keeps them (at most 15
 * characters) and the tc filter's handle and priority. */
#define NATPATH_XDP_PROG_NAME "natpath_xdp"
#define NATPATH_TC_PROG_NAME  "natpath_tc"
#define NATPATH_TC_HANDLE     0x4e41 /* "NA" */
#define NATPATH_TC_PRIORITY   0xc0a7

/* What a managed port is for (value of the `ports` map). The role travels
 * in events so the agent knows which of its sockets the news concerns. The
 * fast path treats the roles alike except that STUN service ports (see
 * natpath_role_serves_stun) also answer RFC 3489 clients. */
enum natpath_role {
	NATPATH_ROLE_NONE = 0,       /* never stored: absent means unmanaged */
	NATPATH_ROLE_AGENT = 1,      /* the agent's shared socket (peers, punches) */
	NATPATH_ROLE_RENDEZVOUS = 2, /* a rendezvous Listen port: QUIC + STUN */
	NATPATH_ROLE_ALTERNATE = 3,  /* the rendezvous's AlternateListen (RFC 5780) */
	NATPATH_ROLE_WIREGUARD = 4,  /* wireguard-go's port in wireguard mode */
	NATPATH_ROLE_MAX
};

/* A public STUN service (the rendezvous's ports) meets RFC 3489 clients,
 * which send no magic cookie; the agent's multiplexed port must not guess. */
static inline int natpath_role_serves_stun(__u32 role)
{
	return role == NATPATH_ROLE_RENDEZVOUS || role == NATPATH_ROLE_ALTERNATE;
}

/* Payload class by its first bytes (RFC 9443 demultiplexing). */
enum natpath_class {
	NATPATH_CLASS_NONE = 0,      /* not classified: not IP/UDP or unmanaged */
	NATPATH_CLASS_STUN = 1,      /* first byte 0-3 + magic cookie, or RFC 3489 Binding request */
	NATPATH_CLASS_QUIC = 2,      /* first byte 64-255 */
	NATPATH_CLASS_WIREGUARD = 3, /* type 1-4, then three zero bytes */
	NATPATH_CLASS_OTHER = 4,     /* UDP on a managed port, none of the above */
	NATPATH_CLASS_MAX
};

/* The hook's verdict, as counted in `stats`. The XDP values are the kernel's
 * XDP_* numbers; tc gets its own so TC_ACT_OK (0) is not read as
 * XDP_ABORTED (0). NONE marks counters that are not an exit. */
enum natpath_action {
	NATPATH_ACT_ABORTED = 0,
	NATPATH_ACT_DROP = 1,
	NATPATH_ACT_PASS = 2,
	NATPATH_ACT_TX = 3,
	NATPATH_ACT_TC_OK = 0x10,
	NATPATH_ACT_NONE = 0xff,
};

/* Why a packet left the program: one code per exit path, so every verdict
 * in `stats` can be traced to one line of natpath.bpf.c. */
enum natpath_reason {
	NATPATH_R_NONE = 0,
	/* parsing, both hooks: all PASS / TC_OK */
	NATPATH_R_ETH_SHORT,         /* shorter than an Ethernet header */
	NATPATH_R_NOT_IP,            /* EtherType neither IPv4 nor IPv6 (VLANs too) */
	NATPATH_R_IP_SHORT,          /* truncated IP header */
	NATPATH_R_IP_VERSION,        /* version field disagrees with EtherType */
	NATPATH_R_IP_IHL,            /* IPv4 ihl < 5 */
	NATPATH_R_IP_OPTIONS,        /* IPv4 options: not ours to handle */
	NATPATH_R_IP_FRAGMENT,       /* IPv4 fragment */
	NATPATH_R_NOT_UDP,           /* other protocol, or an IPv6 extension header */
	NATPATH_R_IP_LEN,            /* tot_len / payload_len beyond the packet or too short */
	NATPATH_R_UDP_SHORT,         /* truncated UDP header */
	NATPATH_R_UDP_LEN,           /* UDP length disagrees with the IP length */
	NATPATH_R_PORT_UNMANAGED,    /* destination (tc: source) port not in `ports` */
	/* XDP, managed ports */
	NATPATH_R_IP_CSUM,           /* bad IPv4 header checksum: PASS, the stack drops it */
	NATPATH_R_QUIC,              /* QUIC: cached, PASS */
	NATPATH_R_WIREGUARD,         /* WireGuard: cached, PASS */
	NATPATH_R_OTHER,             /* unclassified payload: cached, PASS */
	NATPATH_R_STUN_LEN,          /* STUN length field disagrees with UDP: cached, PASS */
	NATPATH_R_STUN_ATTR,         /* attribute overruns, misplaced FINGERPRINT, too many */
	NATPATH_R_STUN_OTHER,        /* a STUN response or other method: cached, PASS */
	NATPATH_R_STUN_PUNCH_CHECK,  /* Binding request with USERNAME/integrity: event, PASS */
	NATPATH_R_STUN_UNKNOWN_ATTR, /* comprehension-required attribute we do not know */
	NATPATH_R_STUN_CHANGE_REQUEST, /* CHANGE-REQUEST asking for another address/port */
	NATPATH_R_STUN_TOO_BIG,      /* longer than NATPATH_STUN_ACT_MAX */
	NATPATH_R_STUN_NOT_UNICAST,  /* request to a group MAC or from a martian source */
	NATPATH_R_UDP_CSUM,          /* bad UDP checksum on a packet we would act on */
	NATPATH_R_UDP_CSUM_ZERO6,    /* IPv6 without UDP checksum (RFC 8200 forbids) */
	NATPATH_R_STUN_ANSWERED,     /* Binding request answered: TX */
	NATPATH_R_STUN_ANSWERED_3489, /* RFC 3489 (no magic cookie) request answered: TX */
	NATPATH_R_STUN_INDICATION,   /* Binding indication without PATH-TOKEN: cached, PASS */
	NATPATH_R_KEEPALIVE,         /* keepalive with a known token: cached, DROP */
	NATPATH_R_KEEPALIVE_BAD_TOKEN, /* keepalive with an unknown token: PASS */
	NATPATH_R_TX_ADJUST,         /* bpf_xdp_adjust_tail failed: ABORTED */
	NATPATH_R_TX_BOUNDS,         /* packet shorter than expected after adjust: ABORTED */
	/* tc egress */
	NATPATH_R_TC_PULL,           /* bpf_skb_pull_data failed */
	NATPATH_R_TC_TRACKED,        /* managed source port: nat_cache tx updated */
	/* not exits (action NATPATH_ACT_NONE) */
	NATPATH_R_EVENT_LOST,        /* `events` ring buffer full */
	NATPATH_R_CACHE_ERR,         /* nat_cache insert failed */
	NATPATH_R_MAX
};

/* `stats` key: per-CPU counters of packets and bytes (frame length at the
 * hook) per {family, class, action, reason}. family 0 = not IP. */
struct natpath_stats_key {
	__u8 family;
	__u8 class;  /* enum natpath_class */
	__u8 action; /* enum natpath_action */
	__u8 reason; /* enum natpath_reason */
};

struct natpath_stat {
	__u64 packets;
	__u64 bytes;
};

/* `nat_cache` key: one remote endpoint as seen on one local port. */
struct natpath_cache_key {
	__u8 addr[16];     /* remote address (see conventions above) */
	__u16 remote_port;
	__u16 local_port;
	__u8 family;
	__u8 pad[3];       /* zero */
};

/* nat_cache flags. CONFIRMED is also set by XDP when a keepalive with a
 * valid token arrives (the peer knows the path's secret); PUNCHED and
 * RELAY are only ever written by the agent. */
#define NATPATH_F_PUNCHED   (1u << 0) /* a punch succeeded on this pair */
#define NATPATH_F_CONFIRMED (1u << 1) /* the peer proved itself on this path */
#define NATPATH_F_RELAY     (1u << 2) /* the endpoint is a relay, not the peer */

/* Byte counts are UDP payload bytes in both directions. */
struct natpath_cache_val {
	__u64 last_rx_ns;
	__u64 last_tx_ns;
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
	__u32 flags;       /* NATPATH_F_* */
	__u32 pad;
};

/* Where a public mapping came from (`mappings` values). */
enum natpath_map_source {
	NATPATH_SRC_NONE = 0,
	NATPATH_SRC_STUN = 1,
	NATPATH_SRC_UPNP = 2,
	NATPATH_SRC_NATPMP = 3,
	NATPATH_SRC_PCP = 4,
};

/* `mappings`: local port (__u16, host order) -> the public side of it. */
struct natpath_mapping {
	__u8 addr[16];
	__u16 port;
	__u8 family;
	__u8 source;       /* enum natpath_map_source */
	__u32 pad;
	__u64 expires_ns;  /* CLOCK_BOOTTIME; 0 = no lease (learnt by STUN) */
};

/* `tokens`: path token (host order) -> how often XDP absorbed it. */
struct natpath_token {
	__u64 hits;
};

enum natpath_event_type {
	/* First packet received from this remote endpoint on this local port
	 * (the nat_cache entry is new, or had only seen egress so far). */
	NATPATH_EV_NEW_REMOTE = 1,
	/* A STUN Binding request with USERNAME / MESSAGE-INTEGRITY arrived:
	 * a punch check, passed on to the socket; txid identifies it. */
	NATPATH_EV_PUNCH_CHECK = 2,
};

struct natpath_event {
	__u64 ts_ns;       /* CLOCK_BOOTTIME */
	__u8 type;         /* enum natpath_event_type */
	__u8 family;
	__u16 local_port;
	__u16 remote_port;
	__u8 role;         /* enum natpath_role of local_port */
	__u8 pad0;
	__u8 addr[16];     /* remote address */
	__u8 txid[12];     /* PUNCH_CHECK: STUN transaction id; else zero */
	__u32 pad1;
};

_Static_assert(sizeof(struct natpath_stats_key) == 4, "stats key layout");
_Static_assert(sizeof(struct natpath_cache_key) == 24, "cache key layout");
_Static_assert(sizeof(struct natpath_cache_val) == 56, "cache value layout");
_Static_assert(sizeof(struct natpath_mapping) == 32, "mapping layout");
_Static_assert(sizeof(struct natpath_event) == 48, "event layout");

#endif
