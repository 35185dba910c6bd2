/* AllowedIPs: the table that maps an inner IP address to the peer whose
 * tunnel carries it, by longest-prefix match, as WireGuard's allowedips.c.
 *
 * A path-compressed binary trie per family: a lookup visits at most one node
 * per prefix bit and allocates nothing, so it can sit on the per-packet path.
 * Peers are opaque pointers the table never dereferences. Not thread-safe:
 * the agent's one event loop owns it. */
#ifndef NATAGENT_AGENT_ALLOWEDIPS_H
#define NATAGENT_AGENT_ALLOWEDIPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/addr.h"

struct allowedips_node;

struct allowedips {
	struct allowedips_node *root4, *root6;
	size_t count; /* prefixes with an owner */
};

void allowedips_init(struct allowedips *t);
void allowedips_free(struct allowedips *t);

/* Gives p to peer (non-NULL). The same prefix already in the table changes
 * owner, as `wg set` does. Host bits beyond the length are ignored. Returns
 * 0, -EINVAL (bad family, length or peer) or -ENOMEM. */
int allowedips_insert(struct allowedips *t, const struct na_prefix *p, void *peer);
/* Removes exactly p if peer owns it: 0, or -ENOENT. */
int allowedips_remove(struct allowedips *t, const struct na_prefix *p, void *peer);
/* Removes every prefix of peer; returns how many. O(table size): peers
 * come and go at configuration time, not per packet. */
size_t allowedips_remove_by_peer(struct allowedips *t, void *peer);

/* The owner of the longest prefix holding ip, or NULL. */
void *allowedips_lookup(const struct allowedips *t, const struct na_ip *ip);

/* Calls fn for each prefix of peer (every prefix when peer is NULL), IPv4
 * first, each family in address order with a prefix before the longer ones
 * inside it. A non-zero return from fn stops the walk and is returned. The
 * table must not change during the walk. */
typedef int (*allowedips_walk_fn)(void *ctx, const struct na_prefix *p, void *peer);
int allowedips_walk(const struct allowedips *t, void *peer, allowedips_walk_fn fn, void *ctx);

/* Checks the trie's invariants (for tests): every prefix lies inside its
 * parent's on the side its next bit says, no bits beyond a length, and no
 * node without a peer unless two subtrees fork there. */
bool allowedips_valid(const struct allowedips *t);

#endif
