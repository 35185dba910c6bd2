/* The agent's side of bpf/natpath.bpf.c: loads the XDP and tc programs
 * through the libbpf skeleton, pins their maps under
 * <pin_root>/natagent/<ifname>/ so a restarted agent finds its NAT-mapping
 * cache again, attaches them to one interface, and gives the agent typed
 * access to the maps and the event ring.
 *
 * Every call returns 0 (or a count) on success and a negative errno on
 * failure; bpf_path_errmsg() then says what failed, for the caller to log.
 * Nothing here logs or exits. */
#ifndef NATAGENT_AGENT_BPF_H
#define NATAGENT_AGENT_BPF_H

#include <stdbool.h>
#include <stdint.h>

#include "bpf/natpath.h"
#include "nat/addr.h"

#define BPF_PATH_PIN_ROOT "/sys/fs/bpf"

enum bpf_path_xdp_mode {
	/* Native where the driver supports it, else generic. On a veth,
	 * generic: native XDP_TX there needs an XDP program on the peer. */
	BPF_PATH_XDP_AUTO = 0,
	BPF_PATH_XDP_NATIVE,   /* driver mode only */
	BPF_PATH_XDP_GENERIC,  /* SKB mode only */
	BPF_PATH_XDP_NONE,     /* result only: not attached (no_attach) */
};

struct bpf_path_opts {
	/* A bpffs, or a directory to mount one on (created if missing):
	 * `ip netns exec` hides the host's /sys/fs/bpf, see DESIGN.md.
	 * NULL means BPF_PATH_PIN_ROOT. */
	const char *pin_root;
	enum bpf_path_xdp_mode xdp_mode;
	/* Load and pin, attach nothing: for BPF_PROG_TEST_RUN. The interface
	 * then only names the pin directory and need not exist. */
	bool no_attach;
};

struct bpf_path;

/* Loads, pins (reusing maps a previous run left pinned) and attaches.
 * An XDP program of ours already on the interface (a crashed run's) is
 * replaced; anyone else's is left alone and the call fails with -EBUSY.
 * On failure nothing of this call's making is left behind. */
int bpf_path_open(struct bpf_path **out, const char *ifname, const struct bpf_path_opts *opts);
/* Detaches everything it attached and frees p (NULL is fine). keep_pins
 * leaves the maps pinned for the next run: a restart, not a shutdown. */
void bpf_path_close(struct bpf_path *p, bool keep_pins);
/* What the last failing call in this thread failed at. */
const char *bpf_path_errmsg(void);

/* What bpf_path_open did. The note says why AUTO did not attach natively
 * ("" otherwise), for the log line that reports the mode. */
enum bpf_path_xdp_mode bpf_path_xdp_mode(const struct bpf_path *p);
const char *bpf_path_xdp_note(const struct bpf_path *p);
bool bpf_path_replaced_stale(const struct bpf_path *p);
bool bpf_path_reused_pins(const struct bpf_path *p);
const char *bpf_path_pin_dir(const struct bpf_path *p);
int bpf_path_xdp_fd(const struct bpf_path *p);
int bpf_path_tc_fd(const struct bpf_path *p);

/* Managed ports (host order), keepalive tokens (the PATH-TOKEN value read
 * as a big-endian number), public mappings learnt for a local port. */
int bpf_path_add_port(struct bpf_path *p, uint16_t port, enum natpath_role role);
int bpf_path_del_port(struct bpf_path *p, uint16_t port);
int bpf_path_add_token(struct bpf_path *p, uint64_t token);
int bpf_path_del_token(struct bpf_path *p, uint64_t token);
/* expires_ns: CLOCK_BOOTTIME, 0 for none. */
int bpf_path_set_mapping(struct bpf_path *p, uint16_t local_port, const struct na_endpoint *pub,
			 enum natpath_map_source src, uint64_t expires_ns);
int bpf_path_del_mapping(struct bpf_path *p, uint16_t local_port);

/* nat_cache. Iteration walks a live LRU map: entries may come and go
 * meanwhile, and one evicted under the cursor can restart the walk, so a
 * callback may see an entry twice. A non-zero return stops the walk and
 * becomes its result. */
void bpf_path_cache_key(struct natpath_cache_key *k, const struct na_endpoint *remote,
			uint16_t local_port);
void bpf_path_cache_remote(const struct natpath_cache_key *k, struct na_endpoint *remote);
typedef int (*bpf_path_cache_fn)(void *ctx, const struct natpath_cache_key *k,
				 const struct natpath_cache_val *v);
int bpf_path_cache_foreach(struct bpf_path *p, bpf_path_cache_fn fn, void *ctx);
int bpf_path_cache_get(struct bpf_path *p, const struct natpath_cache_key *k,
		       struct natpath_cache_val *v);
/* Read-modify-write: counts XDP adds between the read and the write are
 * lost, which flags are rare enough to accept. -ENOENT if absent. */
int bpf_path_cache_set_flags(struct bpf_path *p, const struct natpath_cache_key *k,
			     uint32_t set, uint32_t clear);

/* Counters summed over CPUs; -ENOENT for a key never counted. */
typedef int (*bpf_path_stats_fn)(void *ctx, const struct natpath_stats_key *k,
				 const struct natpath_stat *sum);
int bpf_path_stats_foreach(struct bpf_path *p, bpf_path_stats_fn fn, void *ctx);
int bpf_path_stats_get(struct bpf_path *p, const struct natpath_stats_key *k,
		       struct natpath_stat *sum);

/* Managed ports and their roles. */
typedef int (*bpf_path_port_fn)(void *ctx, uint16_t port, enum natpath_role role);
int bpf_path_ports_foreach(struct bpf_path *p, bpf_path_port_fn fn, void *ctx);

/* Read-only access to the maps a running (or restarting) agent pinned in
 * pin_dir, for natctl: nothing is loaded or attached. Open fails with
 * -EPROTO when a map's layout is not this build's. */
struct bpf_pins;
int bpf_pins_open(struct bpf_pins **out, const char *pin_dir);
void bpf_pins_close(struct bpf_pins *p);
int bpf_pins_cache_foreach(struct bpf_pins *p, bpf_path_cache_fn fn, void *ctx);
int bpf_pins_stats_foreach(struct bpf_pins *p, bpf_path_stats_fn fn, void *ctx);
int bpf_pins_ports_foreach(struct bpf_pins *p, bpf_path_port_fn fn, void *ctx);

/* Events: poll (epoll) the fd for readability, then consume; fn runs once
 * per event. Returns the number consumed, or fn's negative return. */
int bpf_path_events_fd(const struct bpf_path *p);
typedef int (*bpf_path_event_fn)(void *ctx, const struct natpath_event *ev);
int bpf_path_events_consume(struct bpf_path *p, bpf_path_event_fn fn, void *ctx);

/* Names for logs and natctl ("?" for an unknown value). */
const char *bpf_path_xdp_mode_name(enum bpf_path_xdp_mode mode);
const char *bpf_path_reason_name(unsigned reason);
const char *bpf_path_class_name(unsigned class);
const char *bpf_path_action_name(unsigned action);
const char *bpf_path_role_name(unsigned role);

/* The kernel's name for the BPF program with that id, "" if it is gone. */
void bpf_path_prog_name(__u32 id, char *name, size_t len);

#endif
