/* AllowedIPs: longest-prefix match by hand-picked cases, then a randomized
 * run (fixed seed) against a linear scan of the same prefixes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "agent/allowedips.h"
#include "tests/unit/unit.h"

static int peer_a, peer_b, peer_c, peer_d;
#define A (&peer_a)
#define B (&peer_b)
#define C (&peer_c)
#define D (&peer_d)

static struct na_prefix pfx(const char *s)
{
	struct na_prefix p;

	if (!na_ifaddr_parse(&p, s)) {
		printf("# bad prefix in test: %s\n", s);
		abort();
	}
	return p;
}

static struct na_ip ip(const char *s)
{
	struct na_ip a;

	if (!na_ip_parse(&a, s)) {
		printf("# bad address in test: %s\n", s);
		abort();
	}
	return a;
}

static int insert(struct allowedips *t, const char *s, void *peer)
{
	struct na_prefix p = pfx(s);

	return allowedips_insert(t, &p, peer);
}

static void *lookup(struct allowedips *t, const char *s)
{
	struct na_ip a = ip(s);

	return allowedips_lookup(t, &a);
}

/* Collects a walk as "p1 p2 ..." for comparison with a string. */
struct collect {
	char buf[512];
	size_t n;
	int stop_after;
};

static int collect_fn(void *ctx, const struct na_prefix *p, void *peer)
{
	struct collect *c = ctx;
	char s[NA_PREFIX_STRLEN];

	(void)peer;
	c->n += (size_t)snprintf(c->buf + c->n, sizeof(c->buf) - c->n, "%s%s", c->n ? " " : "",
				 na_prefix_str(p, s, sizeof(s)));
	return --c->stop_after == 0 ? 7 : 0;
}

static const char *walk_str(struct allowedips *t, void *peer)
{
	static struct collect c;

	c = (struct collect){ .stop_after = -1 };
	allowedips_walk(t, peer, collect_fn, &c);
	return c.buf;
}

static void test_invalid(void)
{
	struct allowedips t;
	struct na_prefix p = pfx("10.0.0.0/8");
	struct na_ip none = { 0 };

	allowedips_init(&t);
	CHECK(lookup(&t, "10.0.0.1") == NULL, "empty table finds nothing");
	CHECK_EQ_INT(allowedips_insert(&t, &p, NULL), -EINVAL, "a NULL peer is refused");
	p.len = 33;
	CHECK_EQ_INT(allowedips_insert(&t, &p, A), -EINVAL, "an IPv4 /33 is refused");
	p.ip.family = 0;
	p.len = 8;
	CHECK_EQ_INT(allowedips_insert(&t, &p, A), -EINVAL, "an unset family is refused");
	CHECK_EQ_INT(insert(&t, "0.0.0.0/0", A), 0, "v4 default");
	CHECK(allowedips_lookup(&t, &none) == NULL, "an unset address matches nothing");
	CHECK_EQ_INT(t.count, 1, "one prefix counted");
	allowedips_free(&t);
}

static void test_overlap(void)
{
	struct allowedips t;

	allowedips_init(&t);
	CHECK(insert(&t, "10.0.0.0/8", A) == 0 && insert(&t, "10.1.2.0/24", C) == 0 &&
	      insert(&t, "10.1.0.0/16", B) == 0 && insert(&t, "10.1.2.3/32", D) == 0 &&
	      insert(&t, "10.128.0.0/9", B) == 0,
	      "nested v4 prefixes, inserted out of order");
	CHECK(lookup(&t, "10.200.0.1") == B, "/9 beats /8");
	CHECK(lookup(&t, "10.2.0.1") == A, "/8 only");
	CHECK(lookup(&t, "10.1.9.9") == B, "/16 beats /8");
	CHECK(lookup(&t, "10.1.2.4") == C, "/24 beats /16");
	CHECK(lookup(&t, "10.1.2.3") == D, "host route beats /24");
	CHECK(lookup(&t, "11.0.0.1") == NULL, "outside every prefix");
	CHECK(lookup(&t, "9.255.255.255") == NULL, "just below the /8");
	CHECK_EQ_INT(t.count, 5, "five prefixes");
	CHECK_EQ_STR(walk_str(&t, NULL), "10.0.0.0/8 10.1.0.0/16 10.1.2.0/24 10.1.2.3/32 10.128.0.0/9",
		     "walk: address order, containing prefix first");
	CHECK_EQ_STR(walk_str(&t, B), "10.1.0.0/16 10.128.0.0/9", "walk of one peer");

	/* Two prefixes that part at their first bit force a fork at /0 that
	 * is not itself a route. */
	CHECK(insert(&t, "192.168.0.0/16", C) == 0, "a prefix in the other half");
	CHECK(lookup(&t, "172.16.0.1") == NULL, "the fork at /0 routes nothing");
	CHECK(lookup(&t, "192.168.3.3") == C, "the new branch");
	CHECK(lookup(&t, "10.1.2.3") == D, "the old branch intact");
	CHECK(allowedips_valid(&t), "trie invariants hold");
	allowedips_free(&t);
}

static void test_default_and_hosts(void)
{
	struct allowedips t;

	allowedips_init(&t);
	CHECK(insert(&t, "0.0.0.0/0", A) == 0, "v4 default");
	CHECK(lookup(&t, "0.0.0.0") == A && lookup(&t, "255.255.255.255") == A &&
	      lookup(&t, "198.18.7.7") == A,
	      "v4 default covers everything v4");
	CHECK(lookup(&t, "2001:db8::1") == NULL, "v4 default does not cover v6");
	CHECK(insert(&t, "::/0", B) == 0 && insert(&t, "2001:db8::7/128", C) == 0 &&
	      insert(&t, "198.18.7.7/32", D) == 0,
	      "v6 default and host routes");
	CHECK(lookup(&t, "::") == B && lookup(&t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == B,
	      "v6 default covers everything v6");
	CHECK(lookup(&t, "2001:db8::7") == C, "v6 /128");
	CHECK(lookup(&t, "2001:db8::6") == B && lookup(&t, "2001:db8::8") == B,
	      "v6 neighbours of the /128 fall to the default");
	CHECK(lookup(&t, "198.18.7.7") == D, "v4 /32");
	CHECK(lookup(&t, "198.18.7.6") == A, "v4 neighbour falls to the default");
	CHECK_EQ_STR(walk_str(&t, NULL), "0.0.0.0/0 198.18.7.7/32 ::/0 2001:db8::7/128",
		     "walk: v4 then v6");
	allowedips_free(&t);
}

static void test_isolation(void)
{
	struct allowedips t;

	allowedips_init(&t);
	insert(&t, "10.0.0.0/8", A);
	insert(&t, "::a00:0/104", B);
	CHECK(lookup(&t, "::a00:1") == B, "v6 prefix with v4-like bits");
	CHECK(lookup(&t, "10.0.0.1") == A, "v4 prefix unaffected by it");
	CHECK(lookup(&t, "::ffff:10.0.0.1") == NULL, "v4-mapped v6 is not v4");
	insert(&t, "::/1", C);
	CHECK(lookup(&t, "10.0.0.1") == A && lookup(&t, "1.2.3.4") == NULL,
	      "a short v6 prefix covers no v4 address");
	allowedips_free(&t);
}

static void test_replace_remove(void)
{
	struct allowedips t;
	struct na_prefix p;

	allowedips_init(&t);
	insert(&t, "10.0.0.0/8", A);
	insert(&t, "10.1.0.0/16", A);
	insert(&t, "10.1.1.0/24", B);
	insert(&t, "fd00::/64", A);
	insert(&t, "fd00::1/128", B);
	CHECK(insert(&t, "10.1.0.0/16", C) == 0, "re-inserting a prefix");
	CHECK(lookup(&t, "10.1.9.9") == C, "the prefix changed owner");
	CHECK_EQ_INT(t.count, 5, "and was not counted twice");
	CHECK_EQ_STR(walk_str(&t, A), "10.0.0.0/8 fd00::/64", "the old owner lost it");
	CHECK(insert(&t, "10.9.9.9/8", A) == 0, "host bits beyond the length");
	CHECK_EQ_INT(t.count, 5, "are ignored: the same /8");

	CHECK_EQ_INT(allowedips_remove_by_peer(&t, A), 2, "remove_by_peer counts what it removed");
	CHECK(lookup(&t, "10.2.0.1") == NULL, "the /8 is gone");
	CHECK(lookup(&t, "10.1.9.9") == C && lookup(&t, "10.1.1.1") == B,
	      "other peers' prefixes below it remain");
	CHECK(lookup(&t, "fd00::2") == NULL && lookup(&t, "fd00::1") == B,
	      "v6 /64 gone, its /128 of another peer remains");
	CHECK_EQ_STR(walk_str(&t, A), "", "nothing left for the peer");
	CHECK_EQ_INT(allowedips_remove_by_peer(&t, A), 0, "removing again removes nothing");
	CHECK_EQ_INT(t.count, 3, "three left");

	p = pfx("10.1.1.0/24");
	CHECK_EQ_INT(allowedips_remove(&t, &p, C), -ENOENT, "remove refuses another peer's prefix");
	CHECK_EQ_INT(allowedips_remove(&t, &p, B), 0, "remove of an exact prefix");
	CHECK(lookup(&t, "10.1.1.1") == C, "falls back to the /16");
	p = pfx("10.1.0.0/17");
	CHECK_EQ_INT(allowedips_remove(&t, &p, C), -ENOENT, "remove needs the exact length");
	CHECK_EQ_INT(allowedips_remove_by_peer(&t, B) + allowedips_remove_by_peer(&t, C), 2,
		     "the rest removed");
	CHECK(t.root4 == NULL && t.root6 == NULL, "an empty table keeps no nodes");
	CHECK(allowedips_valid(&t), "and is valid");
	CHECK(insert(&t, "10.1.0.0/16", D) == 0 && lookup(&t, "10.1.0.1") == D,
	      "the table is usable after emptying");
	allowedips_free(&t);
}

static void test_walk_stop(void)
{
	struct allowedips t;
	struct collect c = { .stop_after = 2 };

	allowedips_init(&t);
	insert(&t, "10.0.0.0/8", A);
	insert(&t, "10.1.0.0/16", A);
	insert(&t, "fd00::/8", A);
	CHECK_EQ_INT(allowedips_walk(&t, A, collect_fn, &c), 7, "walk returns the callback's stop value");
	CHECK_EQ_STR(c.buf, "10.0.0.0/8 10.1.0.0/16", "and stops there");
	allowedips_free(&t);
}

/* Randomized: prefixes drawn from a small address space so that they nest
 * and collide often; a linear scan gives the expected answers. */
#define REF_MAX 2500
#define NPEERS  6

struct ref {
	struct na_prefix p;
	int peer; /* -1: removed */
};

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 32);
}

static void random_ip(struct na_ip *a, int v6)
{
	memset(a, 0, sizeof(*a));
	if (!v6) {
		a->family = AF_INET;
		a->v4[0] = (uint8_t)(10 + (rnd() & 1) * 118); /* 10 or 128: both halves */
		a->v4[1] = (uint8_t)(rnd() & 3);
		a->v4[2] = (uint8_t)(rnd() & 0x0f);
		a->v4[3] = (uint8_t)rnd();
	} else {
		a->family = AF_INET6;
		a->v6[0] = (rnd() & 1) ? 0x20 : 0xfd;
		a->v6[1] = 0x01;
		a->v6[7] = (uint8_t)(rnd() & 3);
		a->v6[14] = (uint8_t)(rnd() & 0x0f);
		a->v6[15] = (uint8_t)rnd();
	}
}

static void mask_prefix(struct na_prefix *p)
{
	unsigned bytes = p->ip.family == AF_INET ? 4 : 16;

	for (unsigned i = 0; i < bytes; i++) {
		unsigned keep = p->len >= 8 * (i + 1) ? 8 : p->len > 8 * i ? p->len - 8 * i : 0;
		p->ip.v6[i] &= (uint8_t)(0xff00u >> keep);
	}
}

static void random_prefix(struct na_prefix *p)
{
	int v6 = (int)(rnd() & 1);
	unsigned bits = v6 ? 128 : 32;

	random_ip(&p->ip, v6);
	/* Mostly lengths where the space above varies, sometimes any. */
	p->len = (uint8_t)((rnd() & 3) ? bits - (rnd() % 13) : rnd() % (bits + 1));
	mask_prefix(p);
}

static bool prefix_equal(const struct na_prefix *a, const struct na_prefix *b)
{
	return a->len == b->len && na_ip_equal(&a->ip, &b->ip);
}

static int ref_lookup(const struct ref *refs, size_t n, const struct na_ip *a)
{
	int best = -1, best_len = -1;

	for (size_t i = 0; i < n; i++)
		if (refs[i].peer >= 0 && refs[i].p.len > best_len && na_prefix_contains(&refs[i].p, a)) {
			best = refs[i].peer;
			best_len = refs[i].p.len;
		}
	return best;
}

static int count_fn(void *ctx, const struct na_prefix *p, void *peer)
{
	(void)p;
	(void)peer;
	++*(size_t *)ctx;
	return 0;
}

static void test_random(void)
{
	static struct ref refs[REF_MAX];
	static int peers[NPEERS];
	size_t n = 0, live = 0, mismatches = 0, lookups = 0, walk_bad = 0, invalid = 0;
	struct allowedips t;
	bool insert_ok = true;

	allowedips_init(&t);
	for (unsigned round = 0; round < 3000; round++) {
		uint32_t op = rnd() % 100;

		if (op < 60 && n < REF_MAX) {
			struct na_prefix p;
			int peer = (int)(rnd() % NPEERS);
			size_t i;

			random_prefix(&p);
			for (i = 0; i < n; i++)
				if (prefix_equal(&refs[i].p, &p))
					break;
			if (i == n)
				refs[n++] = (struct ref){ .p = p, .peer = -1 };
			live += refs[i].peer < 0;
			refs[i].peer = peer;
			insert_ok &= allowedips_insert(&t, &p, &peers[peer]) == 0;
		} else if (op < 61) {
			int peer = (int)(rnd() % NPEERS);
			size_t want = 0;

			for (size_t i = 0; i < n; i++)
				if (refs[i].peer == peer) {
					refs[i].peer = -1;
					want++;
				}
			live -= want;
			mismatches += allowedips_remove_by_peer(&t, &peers[peer]) != want;
		} else if (op < 70 && n) {
			size_t i = rnd() % n;
			int peer = (int)(rnd() % NPEERS);
			int want = refs[i].peer == peer ? 0 : -ENOENT;

			if (!want) {
				refs[i].peer = -1;
				live--;
			}
			mismatches += allowedips_remove(&t, &refs[i].p, &peers[peer]) != want;
		}
		for (unsigned j = 0; j < 8; j++) {
			struct na_ip a;
			int want;
			void *got;

			random_ip(&a, (int)(rnd() & 1));
			want = ref_lookup(refs, n, &a);
			got = allowedips_lookup(&t, &a);
			lookups++;
			if (got != (want < 0 ? NULL : &peers[want])) {
				char s[INET6_ADDRSTRLEN];
				if (mismatches++ < 5)
					printf("# round %u: lookup %s: want peer %d\n", round,
					       na_ip_str(&a, s, sizeof(s)), want);
			}
		}
		if (t.count != live)
			mismatches++;
		if (!allowedips_valid(&t))
			invalid++;
		if (round % 500 == 0) {
			for (int p = 0; p < NPEERS; p++) {
				size_t got = 0, want = 0;
				allowedips_walk(&t, &peers[p], count_fn, &got);
				for (size_t i = 0; i < n; i++)
					want += refs[i].peer == p;
				walk_bad += got != want;
			}
		}
	}
	CHECK(insert_ok, "random: every insert succeeded");
	CHECK_EQ_INT(mismatches, 0, "random: lookups, removals and counts match a linear scan");
	CHECK_EQ_INT(walk_bad, 0, "random: walks list each peer's prefixes");
	CHECK_EQ_INT(invalid, 0, "random: the trie stays compact and ordered");
	printf("# %zu lookups over %zu distinct prefixes, %zu live at the end\n", lookups, n, live);
	/* Each live prefix, looked up by its own network address. */
	size_t self_bad = 0;
	for (size_t i = 0; i < n; i++) {
		int want = ref_lookup(refs, n, &refs[i].p.ip);
		if (refs[i].peer >= 0 &&
		    allowedips_lookup(&t, &refs[i].p.ip) != (want < 0 ? NULL : &peers[want]))
			self_bad++;
	}
	CHECK_EQ_INT(self_bad, 0, "random: each prefix's own network address");
	allowedips_free(&t);
}

int main(void)
{
	test_invalid();
	test_overlap();
	test_default_and_hosts();
	test_isolation();
	test_replace_remove();
	test_walk_stop();
	test_random();
	return unit_done();
}
