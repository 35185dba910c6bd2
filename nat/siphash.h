/* SipHash-2-4: a keyed hash for tables whose keys an attacker may choose
 * (QUIC connection IDs, public keys at the rendezvous). Key the table with
 * random k0, k1 so collisions cannot be aimed. */
#ifndef NATAGENT_NAT_SIPHASH_H
#define NATAGENT_NAT_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t na_siphash(uint64_t k0, uint64_t k1, const uint8_t *p, size_t n);

#endif
