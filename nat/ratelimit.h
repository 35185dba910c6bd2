/* Token buckets, sans I/O: the caller passes the time. A bucket holds up to
 * burst tokens and refills at rate tokens per second; take() spends n tokens
 * if it has them. Used by the rendezvous for messages (1 token each) and
 * relayed bytes (1 token per byte), per peer and in all.
 *
 * 24 bytes, no allocation: one per registered peer and resource keeps the
 * per-peer memory bounded. */
#ifndef NATAGENT_NAT_RATELIMIT_H
#define NATAGENT_NAT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct tbucket {
	uint64_t tokens; /* scaled by 2^10 for sub-token refill precision */
	uint64_t last;   /* ns of the last refill */
	uint32_t rate;   /* tokens per second; 0 = unlimited */
	uint32_t burst;  /* tokens */
};

/* Starts full: a newcomer may use its burst at once. */
void tbucket_init(struct tbucket *b, uint32_t rate, uint32_t burst, uint64_t now);
bool tbucket_take(struct tbucket *b, uint32_t n, uint64_t now);
/* Tokens available now (after refill), for status output. */
uint64_t tbucket_level(struct tbucket *b, uint64_t now);

#endif
