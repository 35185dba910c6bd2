/* nat/ratelimit (token buckets) and nat/siphash (reference vector). */
#include "nat/ratelimit.h"
#include "nat/siphash.h"
#include "tests/unit/unit.h"

#define MS 1000000ull
#define SEC 1000000000ull

static void test_bucket(void)
{
	struct tbucket b;
	uint64_t t = 5 * SEC;
	int ok = 0;

	tbucket_init(&b, 10, 5, t);
	for (int i = 0; i < 20; i++)
		ok += tbucket_take(&b, 1, t);
	CHECK_EQ_INT(ok, 5, "a full bucket gives its burst at once, then nothing");
	CHECK(!tbucket_take(&b, 1, t + 50 * MS), "half a token's time gives nothing");
	CHECK(tbucket_take(&b, 1, t + 100 * MS), "one token after 1/rate");
	CHECK(!tbucket_take(&b, 1, t + 100 * MS), "and only one");

	/* Many small steps must add up, not round down to zero each time. */
	ok = 0;
	for (uint64_t dt = 101 * MS; dt <= 1101 * MS; dt += MS)
		ok += tbucket_take(&b, 1, t + dt);
	CHECK(ok >= 9 && ok <= 11, "1 ms steps over 1 s at 10/s give ~10 tokens (%d)", ok);

	CHECK_EQ_INT(tbucket_level(&b, t + 100 * SEC), 5, "refill stops at the burst");
	CHECK_EQ_INT(tbucket_level(&b, t + 1000000 * SEC), 5, "a very long idle time does not overflow");
	CHECK(!tbucket_take(&b, 6, t + 1000000 * SEC), "more than the burst is never granted");
	CHECK(tbucket_take(&b, 5, t + 1000000 * SEC), "the whole burst is");
	CHECK(!tbucket_take(&b, 1, t), "time going backwards adds nothing");

	/* Byte buckets: 100 Mbit/s in bytes, a 1 MiB burst. */
	tbucket_init(&b, 12500000, 1 << 20, t);
	uint64_t sent = 0;
	for (uint64_t dt = 0; dt < SEC; dt += 100000) /* 10,000 steps of 0.1 ms */
		for (int k = 0; k < 4; k++)
			sent += tbucket_take(&b, 1400, t + dt) ? 1400 : 0;
	CHECK(sent >= 12500000 + (1 << 20) - 3 * 1400 && sent <= 12500000 + (1 << 20) + 1400,
	      "a byte bucket passes rate x 1 s + burst (%llu bytes)", (unsigned long long)sent);

	tbucket_init(&b, 0, 0, t);
	CHECK(tbucket_take(&b, 1000000, t), "rate 0 means unlimited");
}

static void test_siphash(void)
{
	uint8_t msg[15];
	uint64_t k0 = 0, k1 = 0;

	/* SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e. */
	for (int i = 0; i < 8; i++) {
		k0 |= (uint64_t)i << (8 * i);
		k1 |= (uint64_t)(i + 8) << (8 * i);
	}
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	CHECK(na_siphash(k0, k1, msg, 15) == 0xa129ca6149be45e5ull, "SipHash-2-4 reference vector");
	CHECK(na_siphash(k0 + 1, k1, msg, 15) != 0xa129ca6149be45e5ull, "the key matters");
}

int main(void)
{
	test_bucket();
	test_siphash();
	printf("1..%d\n", unit_n);
	return unit_failed ? 1 : 0;
}
