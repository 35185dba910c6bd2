#include "agent/keys.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nettle/base64.h>
#include <nettle/eddsa.h>
#include <stdlib.h>
#include <string.h>

int key_generate(uint8_t priv[KEY_LEN])
{
	return gnutls_rnd(GNUTLS_RND_KEY, priv, KEY_LEN) == 0 ? 0 : -1;
}

void random_nonce(void *ctx, uint8_t *out, size_t len)
{
	(void)ctx;
	/* Fails only if the library could not initialise its generator, and
	 * then nothing of ours works: no fallback to weaker bytes. */
	if (gnutls_rnd(GNUTLS_RND_NONCE, out, len) != 0)
		abort();
}

void key_public(uint8_t pub[KEY_LEN], const uint8_t priv[KEY_LEN])
{
	ed25519_sha512_public_key(pub, priv);
}

void key_to_base64(char out[KEY_B64_LEN], const uint8_t key[KEY_LEN])
{
	base64_encode_raw(out, KEY_LEN, key);
	out[KEY_B64_LEN - 1] = 0;
}

bool key_from_base64(uint8_t key[KEY_LEN], const char *b64, const char **why)
{
	struct base64_decode_ctx ctx;
	uint8_t buf[BASE64_DECODE_LENGTH(KEY_B64_LEN)];
	size_t len = strlen(b64), out = sizeof(buf);

	if (len != KEY_B64_LEN - 1) {
		*why = "is not a 32-byte key (44 base64 characters)";
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = b64[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '+' || c == '/' ||
			  (c == '=' && i >= len - 2);
		if (!ok) {
			*why = "is not base64";
			return false;
		}
	}
	base64_decode_init(&ctx);
	if (!base64_decode_update(&ctx, &out, buf, len, b64) ||
	    !base64_decode_final(&ctx)) {
		*why = "is not base64";
		return false;
	}
	if (out != KEY_LEN) {
		*why = "is not a 32-byte key (44 base64 characters)";
		return false;
	}
	memcpy(key, buf, KEY_LEN);
	return true;
}
