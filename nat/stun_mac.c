#include "nat/stun_mac.h"

#include <string.h>

#include <nettle/hmac.h>

/* Bitwise, reflected, polynomial 0xEDB88320: FINGERPRINT covers one short
 * message at a time, so a table would buy nothing worth its 1 KiB. */
uint32_t stun_crc32(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/* The header with its length field patched, then the rest unchanged. */
static void header_with_length(uint8_t hdr[20], const uint8_t *msg, uint16_t hdr_len)
{
	memcpy(hdr, msg, 20);
	hdr[2] = (uint8_t)(hdr_len >> 8);
	hdr[3] = (uint8_t)hdr_len;
}

void stun_hmac_sha1(const uint8_t *msg, size_t upto, uint16_t hdr_len,
		    const void *key, size_t key_len, uint8_t out[20])
{
	struct hmac_sha1_ctx ctx;
	uint8_t hdr[20];

	header_with_length(hdr, msg, hdr_len);
	hmac_sha1_set_key(&ctx, key_len, key);
	hmac_sha1_update(&ctx, sizeof(hdr), hdr);
	hmac_sha1_update(&ctx, upto - 20, msg + 20);
	hmac_sha1_digest(&ctx, SHA1_DIGEST_SIZE, out);
}

void stun_hmac_sha256(const uint8_t *msg, size_t upto, uint16_t hdr_len,
		      const void *key, size_t key_len, uint8_t out[32])
{
	struct hmac_sha256_ctx ctx;
	uint8_t hdr[20];

	header_with_length(hdr, msg, hdr_len);
	hmac_sha256_set_key(&ctx, key_len, key);
	hmac_sha256_update(&ctx, sizeof(hdr), hdr);
	hmac_sha256_update(&ctx, upto - 20, msg + 20);
	hmac_sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}
