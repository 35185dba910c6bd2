/* Ed25519 identities: a 32-byte private seed and its 32-byte public key,
 * written in base64 like WireGuard's keys. */
#ifndef NATAGENT_AGENT_KEYS_H
#define NATAGENT_AGENT_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_LEN     32
#define KEY_B64_LEN 45 /* 44 characters and NUL */

int key_generate(uint8_t priv[KEY_LEN]);
/* Unpredictable bytes for nonces, secrets and jitter, in the shape the
 * sans-I/O cores take a random source (nat/punch.h, nat/pmp.h). */
void random_nonce(void *ctx, uint8_t *out, size_t len);
void key_public(uint8_t pub[KEY_LEN], const uint8_t priv[KEY_LEN]);
void key_to_base64(char out[KEY_B64_LEN], const uint8_t key[KEY_LEN]);
/* Strict: exactly 44 characters of base64 with one '=' of padding. On failure
 * *why says what was wrong ("is not base64", "decodes to 31 bytes, not 32"). */
bool key_from_base64(uint8_t key[KEY_LEN], const char *b64, const char **why);

#endif
