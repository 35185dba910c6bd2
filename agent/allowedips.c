/* A path-compressed binary trie in the manner of WireGuard's allowedips.c.
 *
 * Each node holds a prefix (key masked to cidr bits) and, when it is one the
 * user inserted, its peer; nodes without a peer exist only where two
 * subtrees fork. The child taken below a node is the key's bit right after
 * the node's prefix. Keys are kept as two host-order 64-bit words with an
 * IPv4 address left-aligned in the first, so one count-leading-zeros of an
 * XOR gives the bits two keys share, for both families alike. */
#include "agent/allowedips.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct ai_key {
	uint64_t hi, lo;
};

struct allowedips_node {
	struct allowedips_node *child[2];
	void *peer;
	struct ai_key key;
	uint8_t cidr;
};

/* Deepest possible chain: one node per prefix length 0..128. */
#define AI_MAX_DEPTH 129

static uint64_t load_be64(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < 8; i++)
		v = v << 8 | (i < n ? p[i] : 0);
	return v;
}

/* The family's bit count and trie root, or 0 for an unknown family. */
static unsigned family_bits(uint8_t family)
{
	return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0;
}

static struct allowedips_node **root_of(struct allowedips *t, uint8_t family)
{
	return family == AF_INET ? &t->root4 : &t->root6;
}

static void key_from_ip(struct ai_key *k, const struct na_ip *ip)
{
	if (ip->family == AF_INET) {
		k->hi = load_be64(ip->v4, 4);
		k->lo = 0;
	} else {
		k->hi = load_be64(ip->v6, 8);
		k->lo = load_be64(ip->v6 + 8, 8);
	}
}

static void key_mask(struct ai_key *k, unsigned cidr)
{
	if (cidr == 0) {
		k->hi = k->lo = 0;
	} else if (cidr < 64) {
		k->hi &= ~0ULL << (64 - cidr);
		k->lo = 0;
	} else if (cidr < 128) {
		k->lo &= cidr == 64 ? 0 : ~0ULL << (128 - cidr);
	}
}

static unsigned common_bits(const struct ai_key *a, const struct ai_key *b)
{
	uint64_t x = a->hi ^ b->hi;

	if (x)
		return (unsigned)__builtin_clzll(x);
	x = a->lo ^ b->lo;
	return x ? 64 + (unsigned)__builtin_clzll(x) : 128;
}

static unsigned bit_at(const struct ai_key *k, unsigned i)
{
	return i < 64 ? (unsigned)(k->hi >> (63 - i)) & 1 : (unsigned)(k->lo >> (127 - i)) & 1;
}

static bool node_matches(const struct allowedips_node *n, const struct ai_key *k)
{
	return common_bits(&n->key, k) >= n->cidr;
}

static void node_prefix(const struct allowedips_node *n, uint8_t family, struct na_prefix *p)
{
	memset(p, 0, sizeof(*p));
	p->ip.family = family;
	for (unsigned i = 0; i < 8; i++) {
		p->ip.v6[i] = (uint8_t)(n->key.hi >> (56 - 8 * i));
		if (family == AF_INET6)
			p->ip.v6[8 + i] = (uint8_t)(n->key.lo >> (56 - 8 * i));
	}
	p->len = n->cidr;
}

/* A node that no longer carries a peer is only worth keeping where two
 * subtrees fork; otherwise its only child (or nothing) takes its place. */
static void compact(struct allowedips_node **slot)
{
	struct allowedips_node *n = *slot;

	if (!n || n->peer || (n->child[0] && n->child[1]))
		return;
	*slot = n->child[0] ? n->child[0] : n->child[1];
	free(n);
}

static void free_subtree(struct allowedips_node *n)
{
	if (!n)
		return;
	free_subtree(n->child[0]);
	free_subtree(n->child[1]);
	free(n);
}

void allowedips_init(struct allowedips *t)
{
	memset(t, 0, sizeof(*t));
}

void allowedips_free(struct allowedips *t)
{
	free_subtree(t->root4);
	free_subtree(t->root6);
	allowedips_init(t);
}

static struct allowedips_node *node_new(const struct ai_key *k, unsigned cidr, void *peer)
{
	struct allowedips_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->key = *k;
	key_mask(&n->key, cidr);
	n->cidr = (uint8_t)cidr;
	n->peer = peer;
	return n;
}

int allowedips_insert(struct allowedips *t, const struct na_prefix *p, void *peer)
{
	unsigned bits = family_bits(p->ip.family), cidr = p->len, common;
	struct allowedips_node **slot, *n, *down, *fork;
	struct ai_key k;

	if (!bits || cidr > bits || !peer)
		return -EINVAL;
	key_from_ip(&k, &p->ip);
	key_mask(&k, cidr);

	/* Descend through the nodes whose prefixes contain ours. */
	slot = root_of(t, p->ip.family);
	while ((n = *slot) && n->cidr <= cidr && node_matches(n, &k)) {
		if (n->cidr == cidr) {
			t->count += !n->peer;
			n->peer = peer;
			return 0;
		}
		slot = &n->child[bit_at(&k, n->cidr)];
	}

	n = node_new(&k, cidr, peer);
	if (!n)
		return -ENOMEM;
	down = *slot;
	if (!down) {
		*slot = n;
		t->count++;
		return 0;
	}
	common = common_bits(&down->key, &k);
	if (common >= cidr) {
		/* Ours contains down: it goes between. */
		n->child[bit_at(&down->key, cidr)] = down;
		*slot = n;
	} else {
		/* They part at bit `common`: a peerless fork holds both. */
		fork = node_new(&k, common, NULL);
		if (!fork) {
			free(n);
			return -ENOMEM;
		}
		fork->child[bit_at(&down->key, common)] = down;
		fork->child[bit_at(&k, common)] = n;
		*slot = fork;
	}
	t->count++;
	return 0;
}

int allowedips_remove(struct allowedips *t, const struct na_prefix *p, void *peer)
{
	unsigned bits = family_bits(p->ip.family), cidr = p->len, depth = 0;
	struct allowedips_node **path[AI_MAX_DEPTH], **slot, *n;
	struct ai_key k;

	if (!bits || cidr > bits)
		return -ENOENT;
	key_from_ip(&k, &p->ip);
	key_mask(&k, cidr);
	slot = root_of(t, p->ip.family);
	while ((n = *slot) && n->cidr <= cidr && node_matches(n, &k)) {
		path[depth++] = slot;
		if (n->cidr == cidr)
			break;
		slot = &n->child[bit_at(&k, n->cidr)];
	}
	if (!n || n->cidr != cidr || !node_matches(n, &k) || !n->peer || n->peer != peer)
		return -ENOENT;
	n->peer = NULL;
	t->count--;
	/* Only the node and its parent can have become redundant: the parent
	 * may have lost one of its two children. */
	compact(path[depth - 1]);
	if (depth >= 2)
		compact(path[depth - 2]);
	return 0;
}

static size_t prune(struct allowedips_node **slot, void *peer)
{
	struct allowedips_node *n = *slot;
	size_t removed;

	if (!n)
		return 0;
	removed = prune(&n->child[0], peer) + prune(&n->child[1], peer);
	if (n->peer == peer) {
		n->peer = NULL;
		removed++;
	}
	compact(slot);
	return removed;
}

size_t allowedips_remove_by_peer(struct allowedips *t, void *peer)
{
	size_t removed;

	if (!peer)
		return 0;
	removed = prune(&t->root4, peer) + prune(&t->root6, peer);
	t->count -= removed;
	return removed;
}

void *allowedips_lookup(const struct allowedips *t, const struct na_ip *ip)
{
	unsigned bits = family_bits(ip->family);
	const struct allowedips_node *n;
	void *found = NULL;
	struct ai_key k;

	if (!bits)
		return NULL;
	key_from_ip(&k, ip);
	n = ip->family == AF_INET ? t->root4 : t->root6;
	while (n && node_matches(n, &k)) {
		if (n->peer)
			found = n->peer;
		if (n->cidr == bits)
			break;
		n = n->child[bit_at(&k, n->cidr)];
	}
	return found;
}

static int walk_subtree(const struct allowedips_node *n, uint8_t family, void *peer,
			allowedips_walk_fn fn, void *ctx)
{
	struct na_prefix p;
	int rc;

	if (!n)
		return 0;
	if (n->peer && (!peer || n->peer == peer)) {
		node_prefix(n, family, &p);
		rc = fn(ctx, &p, n->peer);
		if (rc)
			return rc;
	}
	rc = walk_subtree(n->child[0], family, peer, fn, ctx);
	return rc ? rc : walk_subtree(n->child[1], family, peer, fn, ctx);
}

int allowedips_walk(const struct allowedips *t, void *peer, allowedips_walk_fn fn, void *ctx)
{
	int rc = walk_subtree(t->root4, AF_INET, peer, fn, ctx);

	return rc ? rc : walk_subtree(t->root6, AF_INET6, peer, fn, ctx);
}

static bool subtree_valid(const struct allowedips_node *n, const struct allowedips_node *parent,
			  unsigned side, unsigned bits, size_t *owned)
{
	struct ai_key masked;

	if (!n)
		return true;
	masked = n->key;
	key_mask(&masked, n->cidr);
	if (n->cidr > bits || masked.hi != n->key.hi || masked.lo != n->key.lo)
		return false;
	if (parent && (n->cidr <= parent->cidr || !node_matches(parent, &n->key) ||
		       bit_at(&n->key, parent->cidr) != side))
		return false;
	if (!n->peer && (!n->child[0] || !n->child[1]))
		return false;
	*owned += !!n->peer;
	return subtree_valid(n->child[0], n, 0, bits, owned) &&
	       subtree_valid(n->child[1], n, 1, bits, owned);
}

bool allowedips_valid(const struct allowedips *t)
{
	size_t owned = 0;

	return subtree_valid(t->root4, NULL, 0, 32, &owned) &&
	       subtree_valid(t->root6, NULL, 0, 128, &owned) && owned == t->count;
}
