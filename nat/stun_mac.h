/* The checksums STUN carries: CRC-32 for FINGERPRINT and the HMACs of
 * MESSAGE-INTEGRITY(-SHA256). Shared by the decoder and the builder; not
 * part of the public API. */
#ifndef NATAGENT_NAT_STUN_MAC_H
#define NATAGENT_NAT_STUN_MAC_H

#include <stddef.h>
#include <stdint.h>

uint32_t stun_crc32(const uint8_t *p, size_t n);

/* HMAC over msg[0..upto) as RFC 8489 section 14.5 defines it: the header's
 * length field replaced by hdr_len, the value it would have if the message
 * ended with the integrity attribute being computed. out must hold 20
 * (SHA-1) or 32 (SHA-256) bytes. */
void stun_hmac_sha1(const uint8_t *msg, size_t upto, uint16_t hdr_len,
		    const void *key, size_t key_len, uint8_t out[20]);
void stun_hmac_sha256(const uint8_t *msg, size_t upto, uint16_t hdr_len,
		      const void *key, size_t key_len, uint8_t out[32]);

#endif
