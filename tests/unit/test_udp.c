/* Loopback only: two sockets exchange datagrams; checks the local address,
 * the sender, batching and TOS reporting. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include "agent/udp.h"
#include "tests/unit/unit.h"

static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 2000);
}

int main(void)
{
	struct na_endpoint any, a, b;
	uint8_t bufs[4][256];
	struct udp_msg msgs[4];
	struct na_ip src;
	int fa, fb, n;

	na_endpoint_parse(&any, "127.0.0.1:1", false);
	any.port = 0;
	fa = udp_open(&any);
	fb = udp_open(&any);
	CHECK(fa >= 0 && fb >= 0, "two loopback sockets");
	udp_local(fa, &a);
	udp_local(fb, &b);
	CHECK(a.port != 0 && a.port != b.port, "kernel picked distinct ports");
	CHECK_EQ_INT(udp_open(&a), -EADDRINUSE, "a second socket on a port in use is refused");
	na_ip_parse(&src, "127.0.0.1");
	static const char payload[] = "pinging";
	for (int i = 0; i < 3; i++)
		CHECK(udp_send(fa, payload, 4 + (size_t)i, &b, i == 0 ? &src : NULL, i == 2 ? 0x01 : 0) == 0,
		      "send #%d", i);
	for (int i = 0; i < 4; i++)
		msgs[i] = (struct udp_msg){ .buf = bufs[i], .cap = sizeof(bufs[i]) };
	CHECK(wait_readable(fb) == 1, "datagrams arrive");
	n = udp_recv(fb, msgs, 4);
	CHECK_EQ_INT(n, 3, "one batch holds all three");
	CHECK_EQ_INT(msgs[0].len, 4, "first length");
	CHECK_EQ_INT(msgs[2].len, 6, "third length");
	CHECK(na_endpoint_equal(&msgs[1].from, &a), "sender reported");
	CHECK(msgs[0].local.family == AF_INET && na_ip_equal(&msgs[0].local, &src),
	      "local address reported");
	CHECK_EQ_INT(msgs[2].tos & 3, 1, "ECN bits reported");
	CHECK_EQ_INT(udp_recv(fb, msgs, 4), 0, "nothing more: 0, not an error");

	/* A batch the sender may coalesce (GSO): five 1000-byte datagrams and
	 * a 300-byte one to b, then one to a, then one more to b. Each must
	 * arrive alone, whole, in order. */
	static uint8_t payload_big[8][1000];
	struct udp_out out[8];
	unsigned lens[8] = { 1000, 1000, 1000, 1000, 1000, 300, 1000, 1000 };
	for (unsigned i = 0; i < 8; i++) {
		memset(payload_big[i], 'a' + (int)i, sizeof(payload_big[i]));
		out[i] = (struct udp_out){ .buf = payload_big[i], .len = lens[i], .to = i == 6 ? a : b };
	}
	int fc = udp_open(&any);
	CHECK_EQ_INT(udp_send_batch(fc, out, 8), 8, "batch of 8 sent");
	uint8_t big[8][2048];
	struct udp_msg in[8];
	for (unsigned i = 0; i < 8; i++)
		in[i] = (struct udp_msg){ .buf = big[i], .cap = sizeof(big[i]) };
	int got = 0;
	for (int tries = 0; tries < 20 && got < 7; tries++) {
		if (wait_readable(fb) != 1)
			break;
		n = udp_recv(fb, in + got, (unsigned)(8 - got));
		if (n > 0)
			got += n;
	}
	CHECK_EQ_INT(got, 7, "seven datagrams reach b, each on its own");
	bool whole = got == 7;
	for (int i = 0; i < got && i < 7; i++) {
		unsigned want = i < 6 ? (unsigned)i : 7u;
		whole = whole && in[i].len == lens[want] && in[i].buf[0] == 'a' + want &&
			in[i].buf[in[i].len - 1] == 'a' + want;
	}
	CHECK(whole, "lengths, contents and order kept (short last segment too)");
	CHECK(wait_readable(fa) == 1 && udp_recv(fa, in, 1) == 1 && in[0].len == 1000 &&
	      in[0].buf[0] == 'a' + 6, "the datagram to a in between reaches a");
	close(fc);
	close(fa);
	close(fb);
	return unit_done();
}
