/* The tunnel datagram format carried in QUIC DATAGRAM frames (RFC 9221):
 *
 *   context id (QUIC varint, RFC 9000 section 16) | payload
 *
 * Context 0 is an IP packet (tun mode); context n > 0 is proxied UDP flow n
 * (proxy mode). This is the layout of RFC 9298's HTTP Datagram payload
 * without the quarter stream id, since a natagent session carries one tunnel.
 *
 * Decoding is strict about bounds (a truncated varint is an error) but
 * accepts non-minimal varints (0x40 0x07 is context 7), as RFC 9000 section
 * 16 allows any length that holds the value. Encoding is always minimal, so
 * a decode/encode round trip never grows a datagram. */
#ifndef NATAGENT_QUIC_DGRAM_H
#define NATAGENT_QUIC_DGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUIC_DGRAM_CTX_IP   0                     /* an IP packet */
#define QUIC_VARINT_MAX     ((1ULL << 62) - 1)
#define QUIC_VARINT_MAXLEN  8

/* Bytes the minimal encoding of v takes (1, 2, 4 or 8); 0 if v is above
 * QUIC_VARINT_MAX. */
size_t quic_dgram_varint_len(uint64_t v);

/* Writes the context id alone, for callers that send the payload from its
 * own buffer (an iovec). Returns the header length, or 0 if ctx is above
 * QUIC_VARINT_MAX or does not fit in cap. */
size_t quic_dgram_encode_hdr(uint8_t *out, size_t cap, uint64_t ctx);

/* Writes context id and payload into out. Returns the datagram length, or 0
 * if it does not fit in cap or ctx is above QUIC_VARINT_MAX. payload may be
 * NULL when len is 0. */
size_t quic_dgram_encode(uint8_t *out, size_t cap, uint64_t ctx,
			 const uint8_t *payload, size_t len);

/* Splits a received datagram. On success *payload points into p and
 * *len is what follows the context id (possibly 0). False if p is empty or
 * the varint is cut short. */
bool quic_dgram_decode(const uint8_t *p, size_t n, uint64_t *ctx,
		       const uint8_t **payload, size_t *len);

#endif
