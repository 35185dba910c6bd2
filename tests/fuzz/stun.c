/* libFuzzer harness for the STUN core. The first byte picks the mode (bit 0:
 * with an integrity key; bit 1: accept RFC 3489 messages; bit 2: server has
 * an alternate; bits 3-4: amplification factor; bit 5: recompute integrity
 * and fingerprint after mutation, so the fuzzer gets past them); the rest
 * is one datagram, fed to the decoder, the checks, a decode/encode round
 * trip, the server and a client whose pending transaction has the
 * datagram's id. Properties that must hold abort() when broken. */
#include "nat/stun.h"
#include "nat/stun_client.h"
#include "nat/stun_mac.h"
#include "nat/stun_server.h"

#include <stdlib.h>
#include <string.h>

static const char key[] = "fuzz-password";

static const uint8_t *fuzz_txid;

/* Hands the client the datagram's own transaction id. */
static bool txid_rand(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	memcpy(buf, fuzz_txid, len);
	return true;
}

static const void *lookup(void *ctx, const uint8_t *user, size_t len, size_t *key_len)
{
	(void)ctx;
	(void)user;
	if (len % 2)
		return NULL;
	*key_len = sizeof(key) - 1;
	return key;
}

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Re-encodes what was decoded and decodes it again: the two must agree. */
static void roundtrip(const struct stun_msg *m)
{
	static uint8_t buf[70000];
	struct stun_builder b;
	struct stun_msg r;

	stun_build_init(&b, buf, sizeof(buf), m->type, m->txid);
	if (stun_has(m, STUN_ATTR_XOR_MAPPED_ADDRESS))
		stun_build_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &m->xor_mapped);
	if (stun_has(m, STUN_ATTR_MAPPED_ADDRESS))
		stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, &m->mapped);
	if (stun_has(m, STUN_ATTR_OTHER_ADDRESS))
		stun_build_addr(&b, STUN_ATTR_OTHER_ADDRESS, &m->other);
	if (stun_has(m, STUN_ATTR_USERNAME))
		stun_build_attr(&b, STUN_ATTR_USERNAME, m->username, m->username_len);
	if (stun_has(m, STUN_ATTR_CHANGE_REQUEST))
		stun_build_u32(&b, STUN_ATTR_CHANGE_REQUEST, m->change);
	if (stun_has(m, STUN_ATTR_PATH_TOKEN))
		stun_build_u64(&b, STUN_ATTR_PATH_TOKEN, m->path_token);
	if (stun_has(m, STUN_ATTR_PADDING))
		stun_build_padding(&b, m->padding_len);
	if (stun_has(m, STUN_ATTR_UNKNOWN_ATTRIBUTES))
		stun_build_unknown(&b, m->unknown_list, m->unknown_list_len, false);
	stun_build_fingerprint(&b);
	size_t n = stun_build_finish(&b);
	if (!n) {
		check(m->len > 60000); /* only a near-64 KiB original can overflow */
		return;
	}
	check(stun_decode(&r, buf, n, STUN_DECODE_CLASSIC) == STUN_OK);
	check(stun_check_fingerprint(&r) == STUN_OK);
	check(r.type == m->type && !memcmp(r.txid, m->txid, STUN_TXID_LEN));
	check(!stun_has(m, STUN_ATTR_XOR_MAPPED_ADDRESS) ||
	      na_endpoint_equal(&r.xor_mapped, &m->xor_mapped));
	check(!stun_has(m, STUN_ATTR_MAPPED_ADDRESS) || na_endpoint_equal(&r.mapped, &m->mapped));
	check(r.username_len == m->username_len);
	check(r.change == m->change && r.path_token == m->path_token);
	check(r.padding_len == m->padding_len && r.unknown_list_len == m->unknown_list_len);
}

static void server(const uint8_t *data, size_t size, uint8_t mode)
{
	static uint8_t out[70000];
	struct stun_server_config cfg = { .software = "natagent fuzz" };
	struct stun_server_reply r;
	struct na_endpoint src, local;
	struct stun_msg m;

	na_endpoint_parse(&src, "203.0.113.5:40000", false);
	na_endpoint_parse(&local, "198.18.0.10:3478", false);
	cfg.primary = local;
	if (mode & 4) {
		cfg.has_alternate = true;
		na_endpoint_parse(&cfg.alternate, "198.18.0.11:3479", false);
	}
	cfg.amp_factor = (mode >> 3) & 3;
	if (mode & 1)
		cfg.key = lookup;
	if (stun_server_answer(&cfg, data, size, &src, &local, out, sizeof(out), &r) != STUN_SERVER_SEND)
		return;
	unsigned factor = cfg.amp_factor ? cfg.amp_factor : STUN_SERVER_AMP_FACTOR;
	check(r.len >= STUN_HEADER_LEN && r.len <= factor * size);
	check(stun_decode(&m, out, r.len, STUN_DECODE_CLASSIC) == STUN_OK);
	check(!memcmp(m.txid, data + 4, STUN_TXID_LEN));
	check(stun_has(&m, STUN_ATTR_FINGERPRINT) == (stun_check_fingerprint(&m) == STUN_OK));
}

static void client(const uint8_t *data, size_t size, uint8_t mode)
{
	static struct stun_client c;
	struct stun_client_event ev;
	struct na_endpoint srv, from;

	if (size < STUN_HEADER_LEN)
		return;
	fuzz_txid = data + 8;
	na_endpoint_parse(&srv, "198.18.0.10:3478", false);
	na_endpoint_parse(&from, "198.18.0.11:3479", false);
	stun_client_init(&c, NULL, txid_rand, NULL);
	stun_client_add_server(&c, &srv);
	struct stun_client_request req = { .fingerprint = true };
	if (mode & 1) {
		req.key = key;
		req.key_len = sizeof(key) - 1;
	}
	unsigned id = stun_client_start(&c, &req, 0, &ev);
	check(id != 0);
	enum stun_client_event_type t = stun_client_input(&c, data, size, &from, 1000, &ev);
	check(t == STUN_CLIENT_NONE || ev.txn == id);
	if (t == STUN_CLIENT_SUCCESS)
		check(ev.result.mapped.ip.family == AF_INET || ev.result.mapped.ip.family == AF_INET6);
	if (t == STUN_CLIENT_NONE)
		check(stun_client_next_deadline(&c) == 500 * STUN_NS_PER_MS);
	else
		check(stun_client_next_deadline(&c) == UINT64_MAX);
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Makes MESSAGE-INTEGRITY(-SHA256) (keyed with `key`) and FINGERPRINT
 * correct again, in the order they are computed. */
static void fix_checksums(uint8_t *buf, size_t size)
{
	struct stun_msg m;
	uint8_t mac[32];

	if (stun_decode(&m, buf, size, STUN_DECODE_CLASSIC))
		return;
	if (stun_has(&m, STUN_ATTR_MESSAGE_INTEGRITY)) {
		stun_hmac_sha1(buf, m.mi_off, (uint16_t)(m.mi_off + 4), key, sizeof(key) - 1, mac);
		memcpy(buf + m.mi_off + 4, mac, 20);
	}
	if (stun_has(&m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256)) {
		stun_hmac_sha256(buf, m.mi256_off, (uint16_t)(m.mi256_off + m.mi256_len - 16),
				 key, sizeof(key) - 1, mac);
		memcpy(buf + m.mi256_off + 4, mac, m.mi256_len);
	}
	if (stun_has(&m, STUN_ATTR_FINGERPRINT))
		wr32(buf + m.fp_off + 4, stun_crc32(buf, m.fp_off) ^ STUN_FINGERPRINT_XOR);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stun_msg m;

	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;

	/* An exact-size copy: reading one byte past it is an ASan report. */
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	if (mode & 0x20)
		fix_checksums(buf, size);

	if (stun_decode(&m, buf, size, mode & 2 ? STUN_DECODE_CLASSIC : 0) == STUN_OK) {
		check(m.len == size);
		enum stun_err mi = stun_check_integrity(&m, key, sizeof(key) - 1);
		enum stun_err fp = stun_check_fingerprint(&m);
		if (mode & 0x20) {
			check(mi == STUN_OK || mi == STUN_ENOINTEGRITY);
			check(fp == STUN_OK || fp == STUN_ENOFINGERPRINT);
		}
		if (m.has_cookie && buf[0] < 4)
			check(stun_looks_like(buf, size));
		roundtrip(&m);
	}
	server(buf, size, mode);
	client(buf, size, mode);
	free(buf);
	return 0;
}
