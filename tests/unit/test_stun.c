/* STUN codec: RFC 5769 vectors, one rejection per length field, truncation
 * at every offset, round trips, integrity rules and RFC 3489 messages. */
#include "nat/stun.h"
#include "nat/stun_mac.h"
#include "tests/unit/unit.h"

#include <stdlib.h>

#include <nettle/md5.h>

/* RFC 5769 section 2.1: sample request, short-term password below. */
static const uint8_t req_5769[] = {
	0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42,
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x80, 0x22, 0x00, 0x10, 'S', 'T', 'U', 'N', ' ', 't', 'e', 's',
	't', ' ', 'c', 'l', 'i', 'e', 'n', 't',
	0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
	0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
	0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76,
	0x59, 0x20, 0x20, 0x20,
	0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56,
	0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2,
	0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* Section 2.2: IPv4 response, 192.0.2.1:32853. */
static const uint8_t resp4_5769[] = {
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42,
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
	0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
	0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
	0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
	0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* Section 2.3: IPv6 response, [2001:db8:1234:5678:11:2233:4455:6677]:32853. */
static const uint8_t resp6_5769[] = {
	0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42,
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
	0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47,
	0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79,
	0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
	0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1,
	0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
	0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

/* Section 2.4: request with long-term authentication (no FINGERPRINT). */
static const uint8_t req_ltc_5769[] = {
	0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42,
	0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e,
	0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83,
	0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00,
	0x00, 0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39,
	0x35, 0x34, 0x64, 0x36, 0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46,
	0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73, 0x41,
	0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e,
	0x6f, 0x72, 0x67, 0x00,
	0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e,
	0x02, 0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66,
};

static const char pw_5769[] = "VOkJxbRl1RmTxUk/WvJxBt";

static struct na_endpoint ep(const char *s)
{
	struct na_endpoint e;

	if (!na_endpoint_parse(&e, s, true))
		abort();
	return e;
}

/* Decodes from an exact-size heap copy, so ASan sees any read past the end. */
static enum stun_err decode_copy(struct stun_msg *m, const uint8_t *buf, size_t len,
				 unsigned flags, uint8_t **keep)
{
	uint8_t *copy = malloc(len ? len : 1);

	memcpy(copy, buf, len);
	enum stun_err e = stun_decode(m, copy, len, flags);
	if (keep)
		*keep = copy;
	else
		free(copy);
	return e;
}

static void test_rfc5769_request(void)
{
	struct stun_msg m;
	struct stun_builder b;
	uint8_t out[256];

	CHECK_EQ_INT(stun_decode(&m, req_5769, sizeof(req_5769), 0), STUN_OK, "5769 request decodes");
	CHECK_EQ_INT(m.type, STUN_BINDING_REQUEST, "5769 request: Binding request");
	CHECK(m.has_cookie, "5769 request: cookie");
	CHECK_EQ_MEM(m.txid + 4, req_5769 + 8, 12, "5769 request: transaction id");
	CHECK(m.username_len == 9 && !memcmp(m.username, "evtj:h6vY", 9), "5769 request: USERNAME");
	CHECK(m.software_len == 16 && !memcmp(m.software, "STUN test client", 16),
	      "5769 request: SOFTWARE");
	CHECK_EQ_INT(m.priority, 0x6e0001ff, "5769 request: PRIORITY");
	CHECK(m.ice_tiebreaker == 0x932ff9b151263b36ull, "5769 request: ICE-CONTROLLED");
	CHECK_EQ_INT(m.n_unknown_required, 0, "5769 request: nothing unknown");
	CHECK_EQ_INT(stun_check_integrity(&m, pw_5769, strlen(pw_5769)), STUN_OK,
		     "5769 request: MESSAGE-INTEGRITY verifies");
	CHECK_EQ_INT(stun_check_integrity(&m, "wrong", 5), STUN_EINTEGRITY,
		     "5769 request: wrong password fails");
	CHECK_EQ_INT(stun_check_fingerprint(&m), STUN_OK, "5769 request: FINGERPRINT verifies");

	stun_build_init(&b, out, sizeof(out), STUN_BINDING_REQUEST, req_5769 + 4);
	b.pad_byte = 0x20;
	stun_build_string(&b, STUN_ATTR_SOFTWARE, "STUN test client");
	stun_build_u32(&b, STUN_ATTR_PRIORITY, 0x6e0001ff);
	stun_build_u64(&b, STUN_ATTR_ICE_CONTROLLED, 0x932ff9b151263b36ull);
	stun_build_string(&b, STUN_ATTR_USERNAME, "evtj:h6vY");
	stun_build_integrity(&b, pw_5769, strlen(pw_5769));
	stun_build_fingerprint(&b);
	size_t n = stun_build_finish(&b);
	CHECK_EQ_INT(n, sizeof(req_5769), "5769 request: encoded length");
	CHECK_EQ_MEM(out, req_5769, sizeof(req_5769), "5769 request: encoded bytes");
}

static void test_rfc5769_response(const uint8_t *vec, size_t len, const char *addr,
				  const char *what)
{
	struct stun_msg m;
	struct stun_builder b;
	struct na_endpoint want = ep(addr);
	uint8_t out[256];
	char name[96];

	snprintf(name, sizeof(name), "5769 %s response decodes", what);
	CHECK_EQ_INT(stun_decode(&m, vec, len, 0), STUN_OK, name);
	snprintf(name, sizeof(name), "5769 %s response: success class", what);
	CHECK_EQ_INT(stun_class_of(m.type), STUN_SUCCESS, name);
	snprintf(name, sizeof(name), "5769 %s response: XOR-MAPPED-ADDRESS", what);
	CHECK(na_endpoint_equal(&m.xor_mapped, &want), "%s", name);
	snprintf(name, sizeof(name), "5769 %s response: SOFTWARE", what);
	CHECK(m.software_len == 11 && !memcmp(m.software, "test vector", 11), "%s", name);
	snprintf(name, sizeof(name), "5769 %s response: integrity", what);
	CHECK_EQ_INT(stun_check_integrity(&m, pw_5769, strlen(pw_5769)), STUN_OK, name);
	snprintf(name, sizeof(name), "5769 %s response: fingerprint", what);
	CHECK_EQ_INT(stun_check_fingerprint(&m), STUN_OK, name);

	stun_build_init(&b, out, sizeof(out), STUN_BINDING_SUCCESS, vec + 4);
	b.pad_byte = 0x20;
	stun_build_string(&b, STUN_ATTR_SOFTWARE, "test vector");
	stun_build_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &want);
	stun_build_integrity(&b, pw_5769, strlen(pw_5769));
	stun_build_fingerprint(&b);
	size_t n = stun_build_finish(&b);
	snprintf(name, sizeof(name), "5769 %s response: encoded bytes", what);
	CHECK(n == len && !memcmp(out, vec, len), "%s", name);
}

static void test_rfc5769_long_term(void)
{
	static const char user[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";
	static const char realm[] = "example.org", pass[] = "TheMatrIX";
	struct md5_ctx md5;
	uint8_t key[MD5_DIGEST_SIZE];
	struct stun_msg m;

	md5_init(&md5);
	md5_update(&md5, strlen(user), (const uint8_t *)user);
	md5_update(&md5, 1, (const uint8_t *)":");
	md5_update(&md5, strlen(realm), (const uint8_t *)realm);
	md5_update(&md5, 1, (const uint8_t *)":");
	md5_update(&md5, strlen(pass), (const uint8_t *)pass);
	md5_digest(&md5, sizeof(key), key);

	CHECK_EQ_INT(stun_decode(&m, req_ltc_5769, sizeof(req_ltc_5769), 0), STUN_OK,
		     "5769 long-term request decodes");
	CHECK(m.n_unknown_required == 2 && m.unknown_required[0] == 0x0015 &&
	      m.unknown_required[1] == 0x0014, "5769 long-term: NONCE and REALM unknown");
	CHECK_EQ_INT(stun_check_integrity(&m, key, sizeof(key)), STUN_OK,
		     "5769 long-term: integrity with MD5 key");
	CHECK_EQ_INT(stun_check_fingerprint(&m), STUN_ENOFINGERPRINT, "5769 long-term: no fingerprint");
}

/* Truncating a valid message anywhere must fail cleanly; so must any
 * header length other than the right one. */
static void test_truncation(const uint8_t *vec, size_t len, const char *what)
{
	struct stun_msg m;
	int bad = 0;
	uint8_t *copy = malloc(len);

	for (size_t l = 0; l < len; l++)
		if (decode_copy(&m, vec, l, STUN_DECODE_CLASSIC, NULL) != STUN_EMALFORMED)
			bad++;
	CHECK(bad == 0, "%s: every truncation rejected", what);

	bad = 0;
	for (unsigned hl = 0; hl <= 0xFFFF; hl++) {
		memcpy(copy, vec, len);
		copy[2] = (uint8_t)(hl >> 8);
		copy[3] = (uint8_t)hl;
		enum stun_err e = stun_decode(&m, copy, len, STUN_DECODE_CLASSIC);
		if ((hl == len - 20) != (e == STUN_OK))
			bad++;
	}
	CHECK(bad == 0, "%s: only the right header length accepted", what);
	free(copy);
}

/* Every value of every attribute length field of a valid message: no crash,
 * and any length that overruns the message is rejected. */
static void test_attr_lengths(const uint8_t *vec, size_t len, const char *what)
{
	uint8_t *copy = malloc(len);
	struct stun_msg m;
	int bad = 0, fields = 0;

	for (size_t off = 20; off + 4 <= len; fields++) {
		size_t real = (size_t)(vec[off + 2] << 8 | vec[off + 3]);
		for (unsigned al = 0; al <= 0xFFFF; al++) {
			memcpy(copy, vec, len);
			copy[off + 2] = (uint8_t)(al >> 8);
			copy[off + 3] = (uint8_t)al;
			enum stun_err e = stun_decode(&m, copy, len, 0);
			if (al > len - off - 4 && e == STUN_OK)
				bad++;
		}
		off += 4 + ((real + 3) & ~(size_t)3);
	}
	CHECK(bad == 0 && fields > 0, "%s: every length of %d attributes checked", what, fields);
	free(copy);
}

/* A message of header + one attribute, for single-field rejections. */
static size_t one_attr(uint8_t *buf, uint16_t type, const uint8_t *val, uint16_t n)
{
	size_t padded = ((size_t)n + 3) & ~(size_t)3;

	memset(buf, 0, 20 + 4 + padded);
	buf[1] = 0x01;
	buf[2] = (uint8_t)((4 + padded) >> 8);
	buf[3] = (uint8_t)(4 + padded);
	buf[4] = 0x21; buf[5] = 0x12; buf[6] = 0xa4; buf[7] = 0x42;
	buf[20] = (uint8_t)(type >> 8);
	buf[21] = (uint8_t)type;
	buf[22] = (uint8_t)(n >> 8);
	buf[23] = (uint8_t)n;
	if (n)
		memcpy(buf + 24, val, n);
	return 24 + padded;
}

static void expect_reject(uint16_t type, const uint8_t *val, uint16_t n, const char *reason)
{
	static uint8_t buf[20 + 4 + 1024];
	struct stun_msg m;
	size_t len = one_attr(buf, type, val, n);
	enum stun_err e = decode_copy(&m, buf, len, 0, NULL);

	CHECK(e == STUN_EMALFORMED && strstr(m.reason, reason), "rejects 0x%04x length %u: %s",
	      type, n, reason);
	if (e != STUN_EMALFORMED || !strstr(m.reason, reason))
		printf("#   reason: '%s'\n", m.reason);
}

static void expect_accept(uint16_t type, const uint8_t *val, uint16_t n, const char *what)
{
	static uint8_t buf[20 + 4 + 1024];
	struct stun_msg m;
	size_t len = one_attr(buf, type, val, n);
	enum stun_err e = decode_copy(&m, buf, len, 0, NULL);

	CHECK(e == STUN_OK, "accepts %s", what);
	if (e)
		printf("#   reason: '%s'\n", m.reason);
}

static void test_malformed(void)
{
	uint8_t buf[64], v[1024];
	struct stun_msg m;

	memset(v, 0, sizeof(v));
	/* Header. */
	size_t len = one_attr(buf, STUN_ATTR_SOFTWARE, (const uint8_t *)"abcd", 4);
	CHECK(stun_decode(&m, buf, 19, 0) && strstr(m.reason, "shorter than a STUN header"),
	      "rejects 19 bytes");
	buf[0] |= 0x80;
	CHECK(stun_decode(&m, buf, len, 0) && strstr(m.reason, "first two bits"),
	      "rejects top bits set");
	buf[0] &= 0x3f;
	buf[3] = 6;
	CHECK(stun_decode(&m, buf, len, 0) && strstr(m.reason, "length not a multiple of 4"),
	      "rejects header length 6");
	buf[3] = 12;
	CHECK(stun_decode(&m, buf, len, 0) && strstr(m.reason, "header length 12, datagram carries 8"),
	      "rejects header length beyond the datagram");
	buf[3] = 4;
	CHECK(stun_decode(&m, buf, len, 0) && strstr(m.reason, "header length 4, datagram carries 8"),
	      "rejects trailing bytes");
	buf[3] = 8;
	buf[4] = 0;
	CHECK(stun_decode(&m, buf, len, 0) && strstr(m.reason, "bad magic cookie"),
	      "rejects bad magic cookie");
	CHECK(stun_decode(&m, buf, len, STUN_DECODE_CLASSIC) == STUN_OK && !m.has_cookie,
	      "same bytes decode as a classic message when allowed");

	/* An attribute longer than what is left. */
	len = one_attr(buf, STUN_ATTR_XOR_MAPPED_ADDRESS, v, 8);
	buf[23] = 9;
	CHECK(stun_decode(&m, buf, len, 0) &&
	      !strcmp(m.reason, "attribute 0x0020 length 9 exceeds message"),
	      "rejects attribute length past the end");
	if (strcmp(m.reason, "attribute 0x0020 length 9 exceeds message"))
		printf("#   reason: '%s'\n", m.reason);

	/* Addresses: family and length, for each address attribute. */
	static const uint16_t addrs[] = {
		STUN_ATTR_MAPPED_ADDRESS, STUN_ATTR_XOR_MAPPED_ADDRESS, STUN_ATTR_SOURCE_ADDRESS,
		STUN_ATTR_CHANGED_ADDRESS, STUN_ATTR_RESPONSE_ORIGIN, STUN_ATTR_OTHER_ADDRESS,
	};
	for (size_t i = 0; i < sizeof(addrs) / sizeof(*addrs); i++) {
		v[1] = 1;
		expect_reject(addrs[i], v, 3, "too short");
		expect_reject(addrs[i], v, 7, "IPv4 needs 8");
		expect_reject(addrs[i], v, 12, "IPv4 needs 8");
		expect_reject(addrs[i], v, 20, "IPv4 needs 8");
		v[1] = 2;
		expect_reject(addrs[i], v, 8, "IPv6 needs 20");
		expect_reject(addrs[i], v, 19, "IPv6 needs 20");
		expect_reject(addrs[i], v, 24, "IPv6 needs 20");
		v[1] = 3;
		expect_reject(addrs[i], v, 8, "address family 0x03");
		v[1] = 0;
		expect_reject(addrs[i], v, 8, "address family 0x00");
	}
	v[1] = 0;

	/* ERROR-CODE. */
	expect_reject(STUN_ATTR_ERROR_CODE, v, 3, "ERROR-CODE length 3 too short");
	v[2] = 2; v[3] = 0;
	expect_reject(STUN_ATTR_ERROR_CODE, v, 4, "ERROR-CODE class 2");
	v[2] = 7;
	expect_reject(STUN_ATTR_ERROR_CODE, v, 4, "ERROR-CODE class 7");
	v[2] = 4; v[3] = 100;
	expect_reject(STUN_ATTR_ERROR_CODE, v, 4, "number 100");
	v[3] = 20;
	expect_reject(STUN_ATTR_ERROR_CODE, v, 4 + 764, "reason length 764 exceeds 763");
	expect_accept(STUN_ATTR_ERROR_CODE, v, 4 + 763, "ERROR-CODE with a 763-byte reason");
	memset(v, 0, 8);

	/* Strings. */
	expect_reject(STUN_ATTR_USERNAME, v, 513, "USERNAME length 513 exceeds 512");
	expect_accept(STUN_ATTR_USERNAME, v, 512, "a 512-byte USERNAME");
	expect_reject(STUN_ATTR_SOFTWARE, v, 764, "SOFTWARE length 764 exceeds 763");
	expect_reject(STUN_ATTR_UNKNOWN_ATTRIBUTES, v, 3, "UNKNOWN-ATTRIBUTES length 3 is odd");

	/* Fixed sizes. */
	expect_reject(STUN_ATTR_CHANGE_REQUEST, v, 3, "CHANGE-REQUEST length 3, want 4");
	expect_reject(STUN_ATTR_CHANGE_REQUEST, v, 8, "CHANGE-REQUEST length 8, want 4");
	expect_reject(STUN_ATTR_RESPONSE_PORT, v, 2, "RESPONSE-PORT length 2, want 4");
	expect_reject(STUN_ATTR_PATH_TOKEN, v, 4, "PATH-TOKEN length 4, want 8");
	expect_reject(STUN_ATTR_PATH_TOKEN, v, 12, "PATH-TOKEN length 12, want 8");
	expect_reject(STUN_ATTR_PRIORITY, v, 8, "PRIORITY length 8, want 4");
	expect_reject(STUN_ATTR_USE_CANDIDATE, v, 4, "USE-CANDIDATE length 4, want 0");
	expect_reject(STUN_ATTR_ICE_CONTROLLING, v, 4, "ICE-CONTROLLING length 4, want 8");
	expect_reject(STUN_ATTR_MESSAGE_INTEGRITY, v, 19, "MESSAGE-INTEGRITY length 19, want 20");
	expect_reject(STUN_ATTR_MESSAGE_INTEGRITY, v, 32, "MESSAGE-INTEGRITY length 32, want 20");
	expect_reject(STUN_ATTR_MESSAGE_INTEGRITY_SHA256, v, 12, "MESSAGE-INTEGRITY-SHA256 length 12");
	expect_reject(STUN_ATTR_MESSAGE_INTEGRITY_SHA256, v, 18, "MESSAGE-INTEGRITY-SHA256 length 18");
	expect_reject(STUN_ATTR_MESSAGE_INTEGRITY_SHA256, v, 36, "MESSAGE-INTEGRITY-SHA256 length 36");
	expect_reject(STUN_ATTR_FINGERPRINT, v, 3, "FINGERPRINT length 3, want 4");
	expect_reject(STUN_ATTR_FINGERPRINT, v, 8, "FINGERPRINT length 8, want 4");
	expect_accept(STUN_ATTR_PADDING, v, 0, "an empty PADDING");
	expect_accept(STUN_ATTR_PADDING, v, 1001, "a 1001-byte PADDING");
	expect_accept(0x7fff, v, 5, "an unknown comprehension-required attribute (recorded)");
}

static void test_order_rules(void)
{
	struct stun_builder b;
	struct stun_msg m;
	uint8_t buf[256];
	const uint8_t txid[16] = { 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

	/* Attributes after MESSAGE-INTEGRITY are ignored, and integrity still
	 * verifies because its length field ends at the MI attribute. */
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_REQUEST, txid);
	stun_build_string(&b, STUN_ATTR_USERNAME, "alice");
	stun_build_integrity(&b, "key", 3);
	b.stage = 0; /* test only: force attributes after MI */
	stun_build_string(&b, STUN_ATTR_SOFTWARE, "ignored");
	stun_build_u32(&b, 0x0077, 1);
	stun_build_fingerprint(&b);
	size_t n = stun_build_finish(&b);
	CHECK(n && stun_decode(&m, buf, n, 0) == STUN_OK, "message with attributes after MI decodes");
	CHECK(!stun_has(&m, STUN_ATTR_SOFTWARE) && m.n_unknown_required == 0,
	      "attributes after MI ignored, unknown ones too");
	CHECK_EQ_INT(stun_check_integrity(&m, "key", 3), STUN_OK, "MI verifies with trailing attributes");
	CHECK_EQ_INT(stun_check_fingerprint(&m), STUN_OK, "FINGERPRINT covers everything");

	/* Both integrity attributes; corrupting either fails the check. */
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_REQUEST, txid);
	stun_build_string(&b, STUN_ATTR_USERNAME, "alice");
	stun_build_integrity(&b, "key", 3);
	stun_build_integrity_sha256(&b, "key", 3);
	stun_build_fingerprint(&b);
	n = stun_build_finish(&b);
	CHECK(n && stun_decode(&m, buf, n, 0) == STUN_OK &&
	      stun_has(&m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256) &&
	      stun_check_integrity(&m, "key", 3) == STUN_OK, "MI and MI-SHA256 both verify");
	buf[m.mi256_off + 10] ^= 1;
	CHECK(stun_decode(&m, buf, n, 0) == STUN_OK &&
	      stun_check_integrity(&m, "key", 3) == STUN_EINTEGRITY, "corrupt MI-SHA256 detected");
	CHECK_EQ_INT(stun_check_fingerprint(&m), STUN_EFINGERPRINT, "and FINGERPRINT notices it");

	/* A MESSAGE-INTEGRITY-SHA256 truncated to 16 bytes. */
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_REQUEST, txid);
	stun_build_string(&b, STUN_ATTR_USERNAME, "bob");
	n = stun_build_finish(&b);
	uint8_t mac[32];
	stun_hmac_sha256(buf, n, (uint16_t)(n + 20 - 20), "pw", 2, mac);
	buf[n] = 0x00; buf[n + 1] = 0x1c; buf[n + 2] = 0; buf[n + 3] = 16;
	memcpy(buf + n + 4, mac, 16);
	n += 20;
	buf[3] = (uint8_t)(n - 20);
	CHECK(stun_decode(&m, buf, n, 0) == STUN_OK && m.mi256_len == 16 &&
	      stun_check_integrity(&m, "pw", 2) == STUN_OK, "truncated MI-SHA256 verifies");
	CHECK_EQ_INT(stun_check_integrity(&m, "px", 2), STUN_EINTEGRITY, "truncated MI-SHA256 wrong key");

	/* Nothing may follow FINGERPRINT. */
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_REQUEST, txid);
	stun_build_fingerprint(&b);
	b.stage = 0;
	stun_build_string(&b, STUN_ATTR_SOFTWARE, "x");
	n = stun_build_finish(&b);
	CHECK(stun_decode(&m, buf, n, 0) && strstr(m.reason, "after FINGERPRINT"),
	      "rejects an attribute after FINGERPRINT");

	/* No integrity at all. */
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_REQUEST, txid);
	n = stun_build_finish(&b);
	CHECK(stun_decode(&m, buf, n, 0) == STUN_OK &&
	      stun_check_integrity(&m, "k", 1) == STUN_ENOINTEGRITY, "no MI reported as such");

	/* Duplicates: the first wins; unknowns are listed once, optional ones
	 * not at all. */
	struct na_endpoint a = ep("192.0.2.1:1"), c = ep("192.0.2.2:2");
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_SUCCESS, txid);
	stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, &a);
	stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, &c);
	stun_build_u32(&b, 0x0042, 0);
	stun_build_u32(&b, 0x0042, 0);
	stun_build_u32(&b, 0x8042, 0);
	n = stun_build_finish(&b);
	CHECK(stun_decode(&m, buf, n, 0) == STUN_OK && na_endpoint_equal(&m.mapped, &a),
	      "first of duplicate attributes wins");
	CHECK(m.n_unknown_required == 1 && m.unknown_required[0] == 0x0042,
	      "unknown comprehension-required listed once, optional ignored");

	/* Builder refuses what the decoder would reject. */
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_REQUEST, txid);
	stun_build_fingerprint(&b);
	CHECK(!stun_build_integrity(&b, "k", 1) && b.err == STUN_EORDER && !stun_build_finish(&b),
	      "builder: no MI after FINGERPRINT");
	stun_build_init(&b, buf, 40, STUN_BINDING_REQUEST, txid);
	CHECK(!stun_build_padding(&b, 17) && b.err == STUN_ENOSPACE, "builder: buffer bound");
	CHECK(!stun_build_u32(&b, 1, 1) && b.err == STUN_ENOSPACE, "builder: errors stick");
	CHECK(!stun_build_init(&b, buf, 19, STUN_BINDING_REQUEST, txid), "builder: header bound");
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_ERROR, txid);
	CHECK(!stun_build_error(&b, 700, "x") && b.err == STUN_ETOOLONG, "builder: error code range");
	char big[600];
	memset(big, 'u', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_REQUEST, txid);
	CHECK(!stun_build_string(&b, STUN_ATTR_USERNAME, big) && b.err == STUN_ETOOLONG,
	      "builder: username too long");
}

static void test_roundtrip(void)
{
	static const char *const eps[] = { "203.0.113.7:40000", "[2001:db8::1:2]:3478" };
	static const uint16_t addrs[] = {
		STUN_ATTR_MAPPED_ADDRESS, STUN_ATTR_XOR_MAPPED_ADDRESS, STUN_ATTR_SOURCE_ADDRESS,
		STUN_ATTR_CHANGED_ADDRESS, STUN_ATTR_RESPONSE_ORIGIN, STUN_ATTR_OTHER_ADDRESS,
	};
	const uint8_t txid[16] = { 0x21, 0x12, 0xa4, 0x42, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0xff, 0xee };
	struct stun_builder b;
	struct stun_msg m;
	uint8_t buf[1600];
	size_t n;

	for (size_t k = 0; k < 2; k++) {
		struct na_endpoint want = ep(eps[k]);
		for (size_t i = 0; i < sizeof(addrs) / sizeof(*addrs); i++) {
			stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_SUCCESS, txid);
			stun_build_addr(&b, addrs[i], &want);
			n = stun_build_finish(&b);
			const struct na_endpoint *got =
				addrs[i] == STUN_ATTR_MAPPED_ADDRESS ? &m.mapped :
				addrs[i] == STUN_ATTR_XOR_MAPPED_ADDRESS ? &m.xor_mapped :
				addrs[i] == STUN_ATTR_SOURCE_ADDRESS ? &m.source :
				addrs[i] == STUN_ATTR_CHANGED_ADDRESS ? &m.changed :
				addrs[i] == STUN_ATTR_RESPONSE_ORIGIN ? &m.response_origin : &m.other;
			CHECK(n && stun_decode(&m, buf, n, 0) == STUN_OK && stun_has(&m, addrs[i]) &&
			      na_endpoint_equal(got, &want), "round trip 0x%04x %s", addrs[i], eps[k]);
		}
	}

	uint16_t unk[3] = { 0x0003, 0x0026, 0x7777 };
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_ERROR, txid);
	stun_build_error(&b, 420, "Unknown Attribute");
	stun_build_unknown(&b, unk, 3, false);
	stun_build_string(&b, STUN_ATTR_SOFTWARE, "natagent");
	stun_build_u32(&b, STUN_ATTR_CHANGE_REQUEST, STUN_CHANGE_IP | STUN_CHANGE_PORT);
	stun_build_response_port(&b, 5000);
	stun_build_padding(&b, 1001);
	stun_build_u64(&b, STUN_ATTR_PATH_TOKEN, 0x0123456789abcdefull);
	stun_build_u32(&b, STUN_ATTR_PRIORITY, 77);
	stun_build_attr(&b, STUN_ATTR_USE_CANDIDATE, NULL, 0);
	stun_build_u64(&b, STUN_ATTR_ICE_CONTROLLING, 42);
	stun_build_string(&b, STUN_ATTR_USERNAME, "a:b");
	stun_build_integrity_sha256(&b, "k", 1);
	stun_build_fingerprint(&b);
	n = stun_build_finish(&b);
	CHECK(n && stun_decode(&m, buf, n, 0) == STUN_OK, "round trip: every other attribute decodes");
	CHECK(m.error_code == 420 && m.error_reason_len == 17 &&
	      !memcmp(m.error_reason, "Unknown Attribute", 17), "round trip ERROR-CODE");
	CHECK(m.unknown_list_len == 3 && m.unknown_list[2] == 0x7777, "round trip UNKNOWN-ATTRIBUTES");
	CHECK(m.software_len == 8 && !memcmp(m.software, "natagent", 8), "round trip SOFTWARE");
	CHECK_EQ_INT(m.change, STUN_CHANGE_IP | STUN_CHANGE_PORT, "round trip CHANGE-REQUEST");
	CHECK_EQ_INT(m.response_port, 5000, "round trip RESPONSE-PORT");
	CHECK_EQ_INT(m.padding_len, 1001, "round trip PADDING");
	CHECK(m.path_token == 0x0123456789abcdefull, "round trip PATH-TOKEN");
	CHECK(m.priority == 77 && stun_has(&m, STUN_ATTR_USE_CANDIDATE) && m.ice_tiebreaker == 42,
	      "round trip ICE attributes");
	CHECK(m.username_len == 3 && !memcmp(m.username, "a:b", 3), "round trip USERNAME");
	CHECK(stun_check_integrity(&m, "k", 1) == STUN_OK && stun_check_fingerprint(&m) == STUN_OK,
	      "round trip MI-SHA256 and FINGERPRINT");

	/* RFC 3489 pads an odd UNKNOWN-ATTRIBUTES list with a repeat. */
	stun_build_init(&b, buf, sizeof(buf), STUN_BINDING_ERROR, txid);
	stun_build_unknown(&b, unk, 1, true);
	n = stun_build_finish(&b);
	CHECK(n == 28 && stun_decode(&m, buf, n, 0) == STUN_OK && m.unknown_list_len == 2 &&
	      m.unknown_list[1] == 0x0003, "classic UNKNOWN-ATTRIBUTES repeats the last type");

	n = stun_build_keepalive(buf, sizeof(buf), txid, 0xfeedfacecafebeefull, false);
	CHECK(n == 32 && stun_decode(&m, buf, n, 0) == STUN_OK && m.type == STUN_BINDING_INDICATION &&
	      m.path_token == 0xfeedfacecafebeefull, "keepalive indication with PATH-TOKEN");
	n = stun_build_keepalive(buf, sizeof(buf), txid, 1, true);
	CHECK(n == 40 && stun_decode(&m, buf, n, 0) == STUN_OK && stun_check_fingerprint(&m) == STUN_OK,
	      "keepalive with FINGERPRINT");
	CHECK(stun_looks_like(buf, n) && !stun_looks_like(buf, n - 4), "stun_looks_like");
	CHECK(stun_build_keepalive(buf, 31, txid, 1, false) == 0, "keepalive: buffer bound");
}

static void test_classic(void)
{
	/* What the stun-client package sends for its test II. */
	static const uint8_t classic[] = {
		0x00, 0x01, 0x00, 0x08,
		0x02, 0x9a, 0x41, 0x17, 0x65, 0xa3, 0x0c, 0x5e,
		0x7b, 0x11, 0x0d, 0x33, 0x48, 0x6f, 0x2c, 0x01,
		0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x06,
	};
	struct stun_msg m;

	CHECK_EQ_INT(stun_decode(&m, classic, sizeof(classic), 0), STUN_EMALFORMED,
		     "classic request refused without STUN_DECODE_CLASSIC");
	CHECK_EQ_INT(stun_decode(&m, classic, sizeof(classic), STUN_DECODE_CLASSIC), STUN_OK,
		     "classic request decodes");
	CHECK(!m.has_cookie && !memcmp(m.txid, classic + 4, 16), "classic: 128-bit transaction id");
	CHECK(m.change == (STUN_CHANGE_IP | STUN_CHANGE_PORT), "classic: CHANGE-REQUEST");
	CHECK(stun_method(m.type) == STUN_METHOD_BINDING && stun_class_of(m.type) == STUN_REQUEST,
	      "classic: Binding request");
	test_truncation(classic, sizeof(classic), "classic request");
}

static void test_types(void)
{
	CHECK_EQ_INT(stun_type(STUN_METHOD_BINDING, STUN_REQUEST), 0x0001, "type: request");
	CHECK_EQ_INT(stun_type(STUN_METHOD_BINDING, STUN_INDICATION), 0x0011, "type: indication");
	CHECK_EQ_INT(stun_type(STUN_METHOD_BINDING, STUN_SUCCESS), 0x0101, "type: success");
	CHECK_EQ_INT(stun_type(STUN_METHOD_BINDING, STUN_ERROR_RESPONSE), 0x0111, "type: error");
	CHECK_EQ_INT(stun_type(0xFFF, STUN_ERROR_RESPONSE), 0x3FFF, "type: all bits");
	CHECK_EQ_INT(stun_method(0x3FFF), 0xFFF, "method of 0x3FFF");
	CHECK_EQ_INT(stun_class_of(0x0111), STUN_ERROR_RESPONSE, "class of 0x0111");
	CHECK_EQ_INT(stun_crc32((const uint8_t *)"123456789", 9), 0xCBF43926, "CRC-32 check value");
	CHECK_EQ_STR(stun_strerror(STUN_EINTEGRITY), "MESSAGE-INTEGRITY mismatch", "stun_strerror");
	CHECK_EQ_STR(stun_strerror((enum stun_err)99), "unknown error", "stun_strerror out of range");
}

int main(void)
{
	test_types();
	test_rfc5769_request();
	test_rfc5769_response(resp4_5769, sizeof(resp4_5769), "192.0.2.1:32853", "IPv4");
	test_rfc5769_response(resp6_5769, sizeof(resp6_5769),
			      "[2001:db8:1234:5678:11:2233:4455:6677]:32853", "IPv6");
	test_rfc5769_long_term();
	test_truncation(req_5769, sizeof(req_5769), "5769 request");
	test_truncation(resp4_5769, sizeof(resp4_5769), "5769 IPv4 response");
	test_truncation(resp6_5769, sizeof(resp6_5769), "5769 IPv6 response");
	test_attr_lengths(req_5769, sizeof(req_5769), "5769 request");
	test_attr_lengths(resp6_5769, sizeof(resp6_5769), "5769 IPv6 response");
	test_malformed();
	test_order_rules();
	test_roundtrip();
	test_classic();
	return unit_done();
}
