#include "agent/keys.h"
#include "tests/unit/unit.h"

static void test_rfc8032_vector(void)
{
	/* RFC 8032 §7.1, TEST 1. */
	static const uint8_t secret[KEY_LEN] = {
		0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4,
		0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
		0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
	};
	static const uint8_t public[KEY_LEN] = {
		0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3,
		0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25,
		0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
	};
	uint8_t pub[KEY_LEN];

	key_public(pub, secret);
	CHECK_EQ_MEM(pub, public, KEY_LEN, "Ed25519 public key matches RFC 8032 test 1");
}

static void test_base64_roundtrip(void)
{
	uint8_t k[KEY_LEN], back[KEY_LEN];
	char b64[KEY_B64_LEN];
	const char *why = NULL;

	CHECK(key_generate(k) == 0, "generate a key");
	key_to_base64(b64, k);
	CHECK_EQ_INT(strlen(b64), 44, "base64 key is 44 characters");
	CHECK(key_from_base64(back, b64, &why), "decode own base64");
	CHECK_EQ_MEM(back, k, KEY_LEN, "round trip keeps the key");
}

static void test_base64_rejects(void)
{
	static const struct { const char *in, *why; } bad[] = {
		{ "", "is not a 32-byte key (44 base64 characters)" },
		{ "abc", "is not a 32-byte key (44 base64 characters)" },
		{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", "is not a 32-byte key (44 base64 characters)" },
		{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "is not a 32-byte key (44 base64 characters)" },
		{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*A=", "is not base64" },
		{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ", "is not base64" },
		{ "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=AAAAAAAA=", "is not base64" },
	};
	uint8_t k[KEY_LEN];

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *why = NULL;
		bool ok = key_from_base64(k, bad[i].in, &why);
		CHECK(!ok, "reject bad key #%zu '%s'", i, bad[i].in);
		CHECK_EQ_STR(why, bad[i].why, "reason for bad key");
	}
}

int main(void)
{
	test_rfc8032_vector();
	test_base64_roundtrip();
	test_base64_rejects();
	return unit_done();
}
