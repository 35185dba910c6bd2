/* The TUN device of tun mode, set up as wg-quick sets up a WireGuard
 * interface: named after the config file, the [Interface] addresses, an MTU,
 * up, and a route for each peer's AllowedIPs that no connected route
 * already covers.
 *
 * The device is not persistent: it lives as long as the fd. Everything
 * tun_configure() adds is recorded, and tun_close() removes exactly that
 * and the device, also after a half-finished configuration. Calls return 0
 * or -errno; tun_errmsg() then says what failed, for the caller to log. */
#ifndef NATAGENT_AGENT_TUN_H
#define NATAGENT_AGENT_TUN_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/addr.h"

#define TUN_DEFAULT_MTU 1280

struct nl;

struct tun {
	int fd; /* non-blocking; -1 when closed */
	int ifindex;
	char name[IF_NAMESIZE];
	unsigned mtu;
	struct nl *nl;
	/* Routes tun_configure() added, for tun_close() to remove. Addresses
	 * need no record: they go with the device. */
	struct na_prefix *routes;
	size_t n_routes, cap_routes;
	char errmsg[256];
};

struct tun_config {
	unsigned mtu; /* 0: TUN_DEFAULT_MTU */
	const struct na_prefix *addrs; /* interface addresses, host bits set */
	size_t n_addrs;
	const struct na_prefix *routes; /* every peer's AllowedIPs */
	size_t n_routes;
};

/* Creates the device. -EEXIST when an interface of that name exists: it
 * is not ours, and we leave it alone. -EINVAL for a name the kernel would
 * not take (empty, too long, '/', '%', whitespace). */
int tun_open(struct tun *t, const char *name);
/* MTU, addresses, up, routes, in that order; stops at the first failure,
 * leaving what was done recorded for tun_close(). */
int tun_configure(struct tun *t, const struct tun_config *cfg);
/* Makes the routes through the device those of cfg->routes (cfg->addrs
 * say which need none): removes the recorded ones no longer there, adds
 * the missing, counting both. Goes through all of them; returns 0 or the
 * first failure (tun_errmsg names it). For a reload: routes that stay are
 * not touched. */
int tun_set_routes(struct tun *t, const struct tun_config *cfg, unsigned *added,
		   unsigned *removed);
/* Removes the routes it added and the device; safe on a zeroed struct,
 * after a failed tun_open(), and twice. */
void tun_close(struct tun *t);
const char *tun_errmsg(const struct tun *t);

/* One packet slot; buffers are the caller's, reused, at least the MTU. */
struct tun_pkt {
	uint8_t *buf;
	size_t cap;
	size_t len;
};

/* Reads up to n packets without blocking; the count (0 when none were
 * waiting) or -errno. */
int tun_read(struct tun *t, struct tun_pkt *pkts, unsigned n);
/* Writes packets to the kernel, in order; the number written. Stops at the
 * first failure, which is returned as -errno when nothing was written. */
int tun_write(struct tun *t, const struct tun_pkt *pkts, unsigned n);

#endif
