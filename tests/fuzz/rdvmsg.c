/* libFuzzer harness for the rendezvous message codec. The input is a stream
 * of frames: rdvmsg_frame delimits them, rdvmsg_decode decodes each, and
 * whatever decodes must re-encode to exactly the same bytes. The input is
 * also fed in two chunks split at a point given by its first byte, and the
 * result must be the same. The input is also read as a relayed DATAGRAM. Properties that must hold abort() when broken. */
#include "nat/rdvmsg.h"

#include <stdlib.h>
#include <string.h>

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Walks a stream buffer; returns how many frames decoded (or -2 on a bad
 * header) and the number of bytes consumed in *used. */
static int walk(const uint8_t *buf, size_t len, size_t *used)
{
	size_t off = 0;
	int n = 0;

	for (;;) {
		size_t need = 0;
		const char *why = NULL;
		ssize_t f = rdvmsg_frame(buf + off, len - off, &need, &why);
		if (f < 0) {
			check(why != NULL);
			*used = off;
			return -2;
		}
		if (f == 0) {
			check(need > len - off && need <= RDVMSG_MAX_FRAME);
			break;
		}
		check((size_t)f <= len - off && (size_t)f <= RDVMSG_MAX_FRAME);
		struct rdvmsg m;
		why = NULL;
		if (rdvmsg_decode(&m, buf + off, (size_t)f, &why)) {
			uint8_t re[RDVMSG_MAX_FRAME];
			size_t rl = rdvmsg_encode(&m, re, sizeof(re));
			check(rl == (size_t)f && memcmp(re, buf + off, rl) == 0);
			check(rdvmsg_encode(&m, re, rl - 1) == 0);
			n++;
		} else {
			check(why != NULL);
		}
		/* A truncated frame never decodes. */
		check(!rdvmsg_decode(&m, buf + off, (size_t)f - 1, NULL));
		off += (size_t)f;
	}
	*used = off;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t used;
	int n = walk(data, size, &used);
	const uint8_t *key, *pkt;
	size_t plen;

	/* The same bytes as a relayed DATAGRAM: parse, rebuild, compare. */
	if (rdvmsg_relay_parse(data, size, &key, &pkt, &plen)) {
		uint8_t hdr[RDVMSG_RELAY_HDR];
		rdvmsg_relay_hdr(hdr, key);
		check(plen > 0 && plen + RDVMSG_RELAY_HDR == size && pkt == data + RDVMSG_RELAY_HDR);
		check(memcmp(hdr, data, RDVMSG_RELAY_HDR) == 0);
	} else {
		check(size <= RDVMSG_RELAY_HDR || data[0] != RDVMSG_DGRAM_RELAY);
	}

	/* Feed again in two chunks, as a stream reader would. */
	if (size > 1) {
		static uint8_t acc[1 << 17];
		size_t cut = data[0] % size, have = 0, pos = 0, consumed = 0;
		int got = 0, bad = 0;
		if (size > sizeof(acc))
			return 0;
		for (int c = 0; c < 2 && !bad; c++) {
			size_t end = c == 0 ? cut : size;
			memcpy(acc + have, data + pos, end - pos);
			have += end - pos;
			pos = end;
			for (;;) {
				ssize_t f = rdvmsg_frame(acc, have, NULL, NULL);
				if (f < 0) {
					bad = 1;
					break;
				}
				if (f == 0)
					break;
				struct rdvmsg m;
				if (rdvmsg_decode(&m, acc, (size_t)f, NULL))
					got++;
				consumed += (size_t)f;
				memmove(acc, acc + f, have - (size_t)f);
				have -= (size_t)f;
			}
		}
		if (bad)
			check(n == -2 && consumed == used);
		else
			check(n == got && consumed == used);
	}
	return 0;
}
