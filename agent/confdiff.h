/* What differs between the running configuration and a new one, for a
 * reload (agent/reload.c: `natctl syncconf`, SIGHUP). Pure: it compares two
 * parsed configurations and describes the difference; it changes nothing.
 *
 * [Interface] and [Rendezvous]: every key is compared by value (lists in
 * their order: the order of Address, STUN and PortMapping means something),
 * and each that differs is one the running agent cannot take live: it is
 * named in `refused`. The interface's name and file are not compared (the
 * new file may be another one).
 *
 * Peers are matched by PublicKey. The list has one entry per peer of either
 * configuration: the new one's peers in its order (added, or kept with what
 * changed, if anything), then the removed ones in the old one's order.
 * AllowedIPs compare as sets. */
#ifndef NATAGENT_AGENT_CONFDIFF_H
#define NATAGENT_AGENT_CONFDIFF_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/config.h"

#define CONFDIFF_MAX_REFUSED 24 /* more than there are such keys */

/* What changed of a kept peer. */
enum {
	CONFDIFF_ALLOWED_IPS    = 1u << 0,
	CONFDIFF_ENDPOINT       = 1u << 1,
	CONFDIFF_KEEPALIVE      = 1u << 2,
	CONFDIFF_LOCAL_ENDPOINT = 1u << 3,
};

struct confdiff_peer {
	const struct config_peer *old; /* NULL: added */
	const struct config_peer *new; /* NULL: removed */
	uint32_t changed;              /* CONFDIFF_*: kept peers only */
};

struct confdiff {
	/* "ListenPort changed", "[Rendezvous] added", ...: static strings. */
	const char *refused[CONFDIFF_MAX_REFUSED];
	unsigned n_refused;
	struct confdiff_peer *peers;
	unsigned n_peers;
	unsigned n_added, n_removed, n_changed;
};

/* Fills d (to confdiff_free): 0, or -ENOMEM. */
int confdiff_compute(struct confdiff *d, const struct config *old, const struct config *new);
void confdiff_free(struct confdiff *d);
/* Whether any peer was added, removed or changed. */
bool confdiff_peers_differ(const struct confdiff *d);

/* The difference as lines a person reads, one call each: every refused key
 * ("ListenPort changed: restart natagent to apply it", refused true), then
 * each peer removed, added, changed ("peer <key>: AllowedIPs changed (added
 * 10.88.0.0/24)"), in the list's order, one line per key that changed. */
typedef void (*confdiff_line_fn)(void *arg, bool refused, const char *line);
void confdiff_describe(const struct confdiff *d, confdiff_line_fn fn, void *arg);

/* Whether p is in the list (same address and length). */
bool confdiff_has_prefix(const struct na_prefix *list, unsigned n, const struct na_prefix *p);

#endif
