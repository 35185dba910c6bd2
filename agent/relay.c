/* Relayed paths: peer-to-peer QUIC sessions carried inside the rendezvous
 * session's DATAGRAM frames, end to end encrypted (the rendezvous sees the
 * inner packets' ciphertext only).
 *
 * To the inner session a relayed path is an ordinary path whose two
 * addresses lie in 100::/64, the discard-only prefix (RFC 6666) that no
 * socket ever uses: ours is 100::1, a peer's is 100::<idx + 2> (its idx is
 * never another's, see peer.c, so a removed peer's address names nobody
 * while its session's last packets drain). So moving
 * between the relay and a direct path is plain QUIC migration, and the
 * agent tells the two apart by the address alone. */
#include <arpa/inet.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/log.h"
#include "nat/rdvmsg.h"

#define RELAY_PORT   1
#define RELAY_QUEUE  64 /* inbound packets out of one read of the rendezvous session */

struct relay_in {
	uint32_t peer; /* idx */
	uint16_t len;
	uint8_t pkt[QUIC_MAX_PKT];
};

/* One agent per process and a single-threaded loop, as in agent.c. */
static struct relay_in inq[RELAY_QUEUE];
static unsigned inq_len;

static void relay_addr(struct sockaddr_storage *ss, uint32_t host)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(RELAY_PORT);
	s6->sin6_addr.s6_addr[0] = 0x01;
	host = htonl(host);
	memcpy(&s6->sin6_addr.s6_addr[12], &host, 4);
}

void relay_path(const struct peer *p, struct quic_path *path)
{
	relay_addr(&path->local, 1);
	relay_addr(&path->remote, p->idx + 2);
}

bool relay_is_path(const struct sockaddr_storage *ss)
{
	static const uint8_t prefix[8] = { 0x01 };
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

	return ss->ss_family == AF_INET6 && !memcmp(s6->sin6_addr.s6_addr, prefix, 8);
}

static struct peer *relay_peer(struct agent *a, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	uint32_t host;

	memcpy(&host, &s6->sin6_addr.s6_addr[12], 4);
	host = ntohl(host);
	if (host < 2)
		return NULL;
	return peer_by_idx(a, host - 2);
}

void relay_send(struct agent *a, const struct sockaddr_storage *to, const uint8_t *pkt,
		size_t len)
{
	struct peer *p = relay_peer(a, to);
	struct conn *up = rdvclient_uplink(a);
	uint8_t hdr[RDVMSG_RELAY_HDR];
	struct iovec iov[2];
	int rc;

	if (!p)
		return; /* a removed peer's (its closing session), or none we made */
	if (!up) {
		a->relay.drop_down++;
		return;
	}
	rdvmsg_relay_hdr(hdr, p->cfg->public_key);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ (void *)pkt, len };
	rc = quic_session_send_datagram(up->s, iov, 2);
	if (rc == QUIC_ERR_DGRAM_TOO_BIG) {
		/* The inner session's path MTU discovery probes past what
		 * the outer path carries; losing those is how it learns. */
		a->relay.drop_too_big++;
		return;
	}
	if (rc < 0) {
		a->relay.drop_full++;
		return;
	}
	a->relay.tx++;
	conn_mark(up);
}

void relay_queue(struct agent *a, const uint8_t key[KEY_LEN], const uint8_t *pkt, size_t len)
{
	struct peer *p = peer_by_key(a, key);
	struct relay_in *q;

	if (!p) {
		a->relay.drop_unknown++;
		return;
	}
	if (inq_len == RELAY_QUEUE || len > QUIC_MAX_PKT) {
		a->relay.drop_queue++;
		return;
	}
	q = &inq[inq_len++];
	q->peer = p->idx;
	q->len = (uint16_t)len;
	memcpy(q->pkt, pkt, len);
}

void relay_drain(struct agent *a)
{
	for (unsigned i = 0; i < inq_len; i++) {
		struct peer *p = peer_by_idx(a, inq[i].peer);
		struct quic_path path;

		if (!p)
			continue;
		relay_path(p, &path);
		a->relay.rx++;
		agent_input_quic(a, inq[i].pkt, inq[i].len, &path, 0);
	}
	inq_len = 0;
}
