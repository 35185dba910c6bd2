/* A STUN load generator for the benchmarks: keeps a window of Binding
 * requests outstanding against one server, in batches (sendmmsg/recvmmsg),
 * for a bounded time and a bounded count, and reports answers per second and
 * the requests never answered.
 *
 *   stunload SERVER:PORT [SECONDS [WINDOW [MAX_REQUESTS]]]
 *
 * Output, one line: "sent N answered N seconds S rate R lost L". */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/udp.h"
#include "nat/stun.h"

#define BATCH 64

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct na_endpoint server, any = { 0 };
	double seconds = argc > 2 ? atof(argv[2]) : 5;
	long window = argc > 3 ? atol(argv[3]) : 256;
	unsigned long long max = argc > 4 ? strtoull(argv[4], NULL, 10) : 50000000ull;
	unsigned long long sent = 0, answered = 0, written_off = 0;
	uint8_t req[BATCH][STUN_HEADER_LEN], rx[BATCH][256];
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	if (argc < 2 || !na_endpoint_parse(&server, argv[1], false) || seconds <= 0 || seconds > 120 ||
	    window < 1 || window > 65536) {
		fprintf(stderr, "usage: stunload SERVER:PORT [SECONDS<=120 [WINDOW [MAX]]]\n");
		return 1;
	}
	any.ip.family = server.ip.family;
	fd = udp_open(&any);
	if (fd < 0) {
		fprintf(stderr, "stunload: socket: %s\n", strerror(-fd));
		return 1;
	}
	udp_set_buffers(fd, 4 << 20);
	sl = na_endpoint_to_sockaddr(&server, &ss);
	double start = now_s(), end = start + seconds, last_rx = start;
	while (now_s() < end && sent < max) {
		/* Fill the window. */
		long long outstanding;
		while ((outstanding = (long long)sent - (long long)(answered + written_off)) < window &&
		       sent < max) {
			unsigned n = BATCH;
			if ((long long)n > window - outstanding)
				n = (unsigned)(window - outstanding);
			for (unsigned i = 0; i < n; i++) {
				uint8_t rnd[12] = { 0 };
				struct stun_builder b;
				uint8_t txid[STUN_TXID_LEN];
				unsigned long long k = sent + i;
				memcpy(rnd, &k, sizeof(k));
				stun_txid_set(txid, rnd);
				stun_build_init(&b, req[i], sizeof(req[i]), STUN_BINDING_REQUEST, txid);
				stun_build_finish(&b);
				iov[i] = (struct iovec){ req[i], STUN_HEADER_LEN };
				mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &ss, .msg_namelen = sl,
								      .msg_iov = &iov[i], .msg_iovlen = 1 } };
			}
			int s = sendmmsg(fd, mm, n, 0);
			if (s <= 0)
				break;
			sent += (unsigned)s;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0) {
			/* A window lost to drops would stall forever: after 200 ms
			 * of silence write the outstanding requests off (they
			 * count as lost) and open the window again. */
			if (now_s() - last_rx > 0.2) {
				written_off = sent - answered;
				last_rx = now_s();
			}
			continue;
		}
		for (int round = 0; round < 16; round++) {
			for (unsigned i = 0; i < BATCH; i++) {
				iov[i] = (struct iovec){ rx[i], sizeof(rx[i]) };
				mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
			}
			int r = recvmmsg(fd, mm, BATCH, MSG_DONTWAIT, NULL);
			if (r <= 0)
				break;
			answered += (unsigned)r;
			last_rx = now_s();
		}
	}
	double took = now_s() - start;
	/* Late answers still in flight count as answered, not lost. */
	for (double drain_end = now_s() + 0.3; now_s() < drain_end && answered < sent;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		for (unsigned i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ rx[i], sizeof(rx[i]) };
			mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		int r = recvmmsg(fd, mm, BATCH, MSG_DONTWAIT, NULL);
		if (r > 0)
			answered += (unsigned)r;
	}
	printf("sent %llu answered %llu seconds %.3f rate %.0f lost %llu\n", sent, answered, took,
	       (double)answered / took, sent - answered);
	close(fd);
	return 0;
}
