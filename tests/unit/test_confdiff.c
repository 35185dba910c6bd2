/* The difference between two configurations (agent/confdiff.c), as a reload
 * sees it: configs parsed from text with the real parser, the lines natctl
 * syncconf prints compared exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/confdiff.h"
#include "tests/unit/unit.h"

/* Deterministic keys: key n is 32 bytes of n (the private key: 0xee). */
static const char *key(unsigned n)
{
	static char b64[8][KEY_B64_LEN];
	static unsigned next;
	uint8_t k[KEY_LEN];
	char *out = b64[next++ % 8];

	memset(k, (int)n, sizeof(k));
	key_to_base64(out, k);
	return out;
}

static char *iface(const char *extra)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "[Interface]\nPrivateKey = %s\nListenPort = 40000\n"
		 "Address = 10.77.0.1/24\n%s", key(0xee), extra);
	return buf;
}

static void parse(struct config *cfg, const char *text)
{
	if (!config_load_text(cfg, "t.conf", text, strlen(text), config_error_to_stderr, NULL)) {
		printf("# config did not parse:\n%s\n", text);
		exit(1);
	}
}

/* The described lines, each after "+ " (a refused one after "! "). */
static void collect(void *arg, bool refused, const char *line)
{
	char *out = arg;

	snprintf(out + strlen(out), 8192 - strlen(out), "%s%s\n", refused ? "! " : "+ ", line);
}

static char out[8192];

/* Diffs two config texts, leaving the description in out. */
static void diff(struct confdiff *d, const char *old_text, const char *new_text)
{
	struct config o, n;

	parse(&o, old_text);
	parse(&n, new_text);
	out[0] = '\0';
	if (confdiff_compute(d, &o, &n) == 0)
		confdiff_describe(d, collect, out);
	/* The diff points into both configs; only the lines are kept. */
	config_free(&o);
	config_free(&n);
}

static char *two_peers(const char *b_extra)
{
	static char buf[2048];

	snprintf(buf, sizeof(buf), "%s[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.0.2/32\n%s"
		 "[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.0.3/32\n", iface(""), key(2), b_extra,
		 key(3));
	return buf;
}

static void test_same(void)
{
	struct confdiff d;
	char *a = strdup(two_peers(""));

	diff(&d, a, two_peers(""));
	CHECK(d.n_refused == 0 && !confdiff_peers_differ(&d) && d.n_peers == 2,
	      "the same file: nothing refused, no peer differs, both kept");
	CHECK_EQ_STR(out, "", "... and nothing to say");
	confdiff_free(&d);
	diff(&d, a, two_peers("AllowedIPs = 10.77.0.2/32\n"));
	CHECK(!confdiff_peers_differ(&d), "an AllowedIPs prefix given twice is the same set");
	confdiff_free(&d);
	free(a);
}

static void test_add_remove(void)
{
	struct confdiff d;
	char one[1024], want[512];

	snprintf(one, sizeof(one), "%s[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.0.2/32\n",
		 iface(""), key(2));
	diff(&d, one, two_peers(""));
	CHECK(d.n_added == 1 && d.n_removed == 0 && d.n_changed == 0, "one peer added");
	CHECK(d.n_peers == 2 && d.peers[0].old && d.peers[0].new && !d.peers[1].old &&
	      d.peers[1].new, "entries in the new file's order, the added one with no old");
	snprintf(want, sizeof(want), "+ peer %s added\n", key(3));
	CHECK_EQ_STR(out, want, "'peer <key> added'");
	confdiff_free(&d);
	diff(&d, two_peers(""), one);
	CHECK(d.n_removed == 1 && d.n_peers == 2 && !d.peers[1].new && d.peers[1].old,
	      "one peer removed, listed after the new file's peers");
	snprintf(want, sizeof(want), "+ peer %s removed\n", key(3));
	CHECK_EQ_STR(out, want, "'peer <key> removed'");
	confdiff_free(&d);
}

static void test_changes(void)
{
	struct confdiff d;
	char old[2048], new[2048], want[1024];
	const char *k2 = key(2);

	snprintf(old, sizeof(old), "%s[Peer]\nPublicKey = %s\nAllowedIPs = 10.77.0.2/32, 10.9.0.0/16\n",
		 iface(""), k2);
	snprintf(new, sizeof(new), "%s[Peer]\nPublicKey = %s\nAllowedIPs = 10.9.0.0/16,10.88.0.0/24\n"
		 "AllowedIPs = 10.89.0.0/24\nEndpoint = 198.18.0.2:40000\nPersistentKeepalive = 10\n",
		 iface(""), k2);
	diff(&d, old, new);
	CHECK(d.n_changed == 1 && d.peers[0].changed == (CONFDIFF_ALLOWED_IPS | CONFDIFF_ENDPOINT |
							  CONFDIFF_KEEPALIVE),
	      "AllowedIPs, Endpoint and PersistentKeepalive changed, LocalEndpoint not");
	snprintf(want, sizeof(want),
		 "+ peer %s: AllowedIPs changed (added 10.88.0.0/24, 10.89.0.0/24; removed 10.77.0.2/32)\n"
		 "+ peer %s: Endpoint changed (none -> 198.18.0.2:40000)\n"
		 "+ peer %s: PersistentKeepalive changed (auto -> 10)\n", k2, k2, k2);
	CHECK_EQ_STR(out, want, "one line per key that changed, naming old and new");
	confdiff_free(&d);
	snprintf(new, sizeof(new), "%s[Peer]\nPublicKey = %s\nAllowedIPs = 10.9.0.0/16, 10.77.0.2/32\n",
		 iface(""), k2);
	diff(&d, old, new);
	CHECK(!confdiff_peers_differ(&d), "AllowedIPs in another order: no change");
	confdiff_free(&d);
}

static void test_proxy(void)
{
	static const char base[] = "[Interface]\nPrivateKey = %s\nMode = proxy\n"
				   "ForwardTo = 127.0.0.1:51820\n[Peer]\nPublicKey = %s\n"
				   "LocalEndpoint = 127.0.0.1:%u\nPersistentKeepalive = %s\n";
	char old[1024], new[1024], want[512];
	struct confdiff d;

	snprintf(old, sizeof(old), base, key(0xee), key(5), 51901u, "off");
	snprintf(new, sizeof(new), base, key(0xee), key(5), 51902u, "25");
	diff(&d, old, new);
	snprintf(want, sizeof(want),
		 "+ peer %s: PersistentKeepalive changed (off -> 25)\n"
		 "+ peer %s: LocalEndpoint changed (127.0.0.1:51901 -> 127.0.0.1:51902)\n",
		 key(5), key(5));
	CHECK_EQ_STR(out, want, "proxy mode: LocalEndpoint and PersistentKeepalive changes");
	confdiff_free(&d);
}

static void test_refused(void)
{
	struct confdiff d;
	char old[2048], new[2048];

	snprintf(old, sizeof(old), "%s", iface("STUN = 198.18.0.10:3478\n"));
	snprintf(new, sizeof(new), "[Interface]\nPrivateKey = %s\nListenPort = 40001\n"
		 "Address = 10.77.0.1/24, 10.78.0.1/24\nMTU = 1400\nSTUN = 198.18.0.10:3478\n"
		 "[Rendezvous]\nListen = 198.18.0.10:3478\n[Peer]\nPublicKey = %s\n"
		 "AllowedIPs = 10.77.0.9/32\n", key(0xee), key(9));
	diff(&d, old, new);
	CHECK_EQ_STR(out, "! ListenPort changed: restart natagent to apply it\n"
			  "! Address changed: restart natagent to apply it\n"
			  "! MTU changed: restart natagent to apply it\n"
			  "! [Rendezvous] added: restart natagent to apply it\n"
			  "+ peer CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk= added\n",
		     "every [Interface] key that differs named, then the peers");
	CHECK_EQ_INT(d.n_refused, 4, "four refused");
	confdiff_free(&d);
	snprintf(new, sizeof(new), "[Interface]\nPrivateKey = %s\nListenPort = 40000\n"
		 "Address = 10.77.0.1/24\nSTUN = 198.18.0.11:3478\nPortMapping = off\n"
		 "IdleTimeout = 60\nRendezvous = 198.18.0.10:3478\nRendezvousKey = %s\n",
		 key(0x11), key(0x12));
	diff(&d, old, new);
	CHECK_EQ_STR(out, "! PrivateKey changed: restart natagent to apply it\n"
			  "! Rendezvous changed: restart natagent to apply it\n"
			  "! RendezvousKey changed: restart natagent to apply it\n"
			  "! STUN changed: restart natagent to apply it\n"
			  "! PortMapping changed: restart natagent to apply it\n"
			  "! IdleTimeout changed: restart natagent to apply it\n",
		     "keys, servers and timers too");
	confdiff_free(&d);
	snprintf(old, sizeof(old), "[Interface]\nPrivateKey = %s\n[Rendezvous]\nListen = 198.18.0.10:3478\n",
		 key(0xee));
	snprintf(new, sizeof(new), "[Interface]\nPrivateKey = %s\n[Rendezvous]\nListen = 198.18.0.10:3479\n"
		 "MaxPeers = 10\n", key(0xee));
	diff(&d, old, new);
	CHECK_EQ_STR(out, "! [Rendezvous] Listen changed: restart natagent to apply it\n"
			  "! [Rendezvous] MaxPeers changed: restart natagent to apply it\n",
		     "[Rendezvous] keys named with their section");
	confdiff_free(&d);
}

/* Thousands of peers, the new file in another order with one removed, one
 * added and one changed: each matched to its own. */
static void test_many(void)
{
	enum { N = 3000 };
	size_t cap = (size_t)N * 128 + 1024;
	char *old = malloc(cap), *new = malloc(cap);
	struct config o, n;
	struct confdiff d;
	size_t lo = 0, ln = 0;
	uint8_t k[KEY_LEN] = { 0 };
	char b64[KEY_B64_LEN];
	bool ok = true;

	lo += (size_t)snprintf(old, cap, "%s", iface(""));
	ln += (size_t)snprintf(new, cap, "%s", iface(""));
	for (unsigned i = 0; i < N; i++) {
		k[0] = (uint8_t)(i >> 8);
		k[1] = (uint8_t)i;
		key_to_base64(b64, k);
		lo += (size_t)snprintf(old + lo, cap - lo, "[Peer]\nPublicKey = %s\nAllowedIPs = 10.%u.%u.0/24\n",
				       b64, 100 + i / 256, i % 256);
		k[0] = (uint8_t)((N - 1 - i) >> 8);
		k[1] = (uint8_t)(N - 1 - i);
		k[2] = (N - 1 - i) == 7; /* peer 7 gives way to a new key */
		key_to_base64(b64, k);
		k[2] = 0;
		ln += (size_t)snprintf(new + ln, cap - ln, "[Peer]\nPublicKey = %s\nAllowedIPs = 10.%u.%u.0/24\n",
				       b64, 100 + (N - 1 - i) / 256,
				       (N - 1 - i) % 256 + ((N - 1 - i) == 9 ? 1 : 0));
	}
	parse(&o, old);
	parse(&n, new);
	CHECK_EQ_INT(confdiff_compute(&d, &o, &n), 0, "3000 peers each side: computed");
	CHECK(d.n_added == 1 && d.n_removed == 1 && d.n_changed == 1 && d.n_peers == N + 1,
	      "one added, one removed, one changed, the rest matched");
	for (unsigned i = 0; i < d.n_peers; i++)
		if (d.peers[i].old && d.peers[i].new &&
		    memcmp(d.peers[i].old->public_key, d.peers[i].new->public_key, KEY_LEN))
			ok = false;
	CHECK(ok, "every kept entry pairs the same key");
	confdiff_free(&d);
	config_free(&o);
	config_free(&n);
	free(old);
	free(new);
}

int main(void)
{
	test_same();
	test_add_remove();
	test_changes();
	test_proxy();
	test_refused();
	test_many();
	return unit_done();
}
