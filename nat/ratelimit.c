/* Token buckets: see ratelimit.h. */
#include "nat/ratelimit.h"

#define SCALE_SHIFT 10

void tbucket_init(struct tbucket *b, uint32_t rate, uint32_t burst, uint64_t now)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens = (uint64_t)burst << SCALE_SHIFT;
	b->last = now;
}

static void refill(struct tbucket *b, uint64_t now)
{
	uint64_t cap = (uint64_t)b->burst << SCALE_SHIFT, dt, add;

	if (now <= b->last)
		return; /* a clock that stands still or a caller out of order */
	dt = now - b->last;
	/* A long idle bucket is simply full; the clamp also keeps the
	 * product below within 128 bits. */
	if (dt >= 1000000000ull * 64) {
		b->tokens = cap;
		b->last = now;
		return;
	}
	add = (uint64_t)((unsigned __int128)b->rate * dt * (1u << SCALE_SHIFT) / 1000000000u);
	if (!add)
		return; /* keep last: small steps must still add up */
	b->tokens = b->tokens + add > cap ? cap : b->tokens + add;
	b->last = now;
}

bool tbucket_take(struct tbucket *b, uint32_t n, uint64_t now)
{
	uint64_t need = (uint64_t)n << SCALE_SHIFT;

	if (!b->rate)
		return true;
	refill(b, now);
	if (b->tokens < need)
		return false;
	b->tokens -= need;
	return true;
}

uint64_t tbucket_level(struct tbucket *b, uint64_t now)
{
	if (!b->rate)
		return UINT64_MAX;
	refill(b, now);
	return b->tokens >> SCALE_SHIFT;
}
