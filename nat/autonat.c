/* AutoNAT: the dial-back datagram and the server's policy. See autonat.h. */
#include "nat/autonat.h"

#include <string.h>

#include "nat/stun.h"

#define ATTR_LEN 12 /* nonce 8, index 1, reserved 3 */

_Static_assert(AUTONAT_DIALBACK_LEN == STUN_HEADER_LEN + 4 + ATTR_LEN, "dial-back layout");
_Static_assert(AUTONAT_DIALBACK_ATTR == STUN_ATTR_DIALBACK, "one number, two names");
_Static_assert(AUTONAT_DIALBACK_ATTR >= 0xC000, "comprehension-optional, outside IETF review");

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

size_t autonat_dialback_build(uint8_t *buf, size_t cap, const uint8_t txid12[12],
			      uint64_t nonce, uint8_t index)
{
	if (cap < AUTONAT_DIALBACK_LEN || index >= RDVMSG_MAX_DIAL)
		return 0;
	put16(buf, STUN_BINDING_INDICATION);
	put16(buf + 2, AUTONAT_DIALBACK_LEN - STUN_HEADER_LEN);
	buf[4] = (uint8_t)(STUN_MAGIC_COOKIE >> 24);
	buf[5] = (uint8_t)(STUN_MAGIC_COOKIE >> 16);
	buf[6] = (uint8_t)(STUN_MAGIC_COOKIE >> 8);
	buf[7] = (uint8_t)STUN_MAGIC_COOKIE;
	memcpy(buf + 8, txid12, 12);
	put16(buf + 20, AUTONAT_DIALBACK_ATTR);
	put16(buf + 22, ATTR_LEN);
	for (int i = 0; i < 8; i++)
		buf[24 + i] = (uint8_t)(nonce >> (56 - 8 * i));
	buf[32] = index;
	buf[33] = buf[34] = buf[35] = 0;
	return AUTONAT_DIALBACK_LEN;
}

bool autonat_dialback_parse(const uint8_t *buf, size_t len, uint64_t *nonce, uint8_t *index)
{
	uint64_t n = 0;

	if (len != AUTONAT_DIALBACK_LEN || get16(buf) != STUN_BINDING_INDICATION ||
	    get16(buf + 2) != AUTONAT_DIALBACK_LEN - STUN_HEADER_LEN ||
	    buf[4] != (uint8_t)(STUN_MAGIC_COOKIE >> 24) ||
	    buf[5] != (uint8_t)(STUN_MAGIC_COOKIE >> 16) ||
	    buf[6] != (uint8_t)(STUN_MAGIC_COOKIE >> 8) || buf[7] != (uint8_t)STUN_MAGIC_COOKIE ||
	    get16(buf + 20) != AUTONAT_DIALBACK_ATTR || get16(buf + 22) != ATTR_LEN ||
	    buf[33] || buf[34] || buf[35] || buf[32] >= RDVMSG_MAX_DIAL)
		return false;
	for (int i = 0; i < 8; i++)
		n = n << 8 | buf[24 + i];
	*nonce = n;
	*index = buf[32];
	return true;
}

/* ---- the server's policy ---- */

/* tbucket refills whole tokens per second, too coarse for 12 a minute: a
 * request costs COST tokens and a bucket refills its per-minute count each
 * second, so it grants exactly that many requests a minute. */
#define COST 60u

void autonat_server_init(struct autonat_server *s, uint8_t family, uint64_t now)
{
	memset(s, 0, sizeof(*s));
	s->family = family;
	tbucket_init(&s->total, AUTONAT_TOTAL_PER_MIN, AUTONAT_TOTAL_PER_MIN * COST, now);
}

void autonat_peer_limit_init(struct tbucket *peer, uint64_t now)
{
	tbucket_init(peer, AUTONAT_PEER_PER_MIN, AUTONAT_PEER_PER_MIN * COST, now);
}

/* Whether t may be dialed at all, before the rate limits. */
static uint8_t judge(const struct autonat_server *s, const struct na_ip *observed,
		     const struct na_endpoint *t)
{
	if (!s->family)
		return RDVMSG_DIAL_UNAVAILABLE;
	/* Before "not yours": a private target is refused as such even when
	 * its IP also differs, which is the more useful thing to say. */
	if (na_ip_is_private(&t->ip))
		return RDVMSG_DIAL_PRIVATE;
	if (!na_ip_equal(&t->ip, observed))
		return RDVMSG_DIAL_NOT_YOURS;
	/* Ours, but the second address is of the other family. */
	if (t->ip.family != s->family)
		return RDVMSG_DIAL_UNAVAILABLE;
	return RDVMSG_DIAL_DIALED;
}

unsigned autonat_server_decide(struct autonat_server *s, struct tbucket *peer,
			       const struct na_ip *observed, const struct rdvmsg_dialreq *req,
			       uint64_t now, struct rdvmsg_dialresp *resp)
{
	unsigned n = req->count > RDVMSG_MAX_DIAL ? RDVMSG_MAX_DIAL : req->count, dial = 0;
	bool allowed;

	memset(resp, 0, sizeof(*resp));
	resp->nonce = req->nonce;
	resp->count = (uint8_t)n;
	s->st.requests++;
	for (unsigned i = 0; i < n; i++) {
		resp->status[i] = judge(s, observed, &req->addr[i]);
		dial += resp->status[i] == RDVMSG_DIAL_DIALED;
	}
	/* Only a request that would send something pays; both buckets must
	 * have the token before either is spent. */
	allowed = dial && tbucket_level(peer, now) >= COST && tbucket_level(&s->total, now) >= COST;
	if (allowed) {
		tbucket_take(peer, COST, now);
		tbucket_take(&s->total, COST, now);
	}
	for (unsigned i = 0; i < n; i++) {
		switch (resp->status[i]) {
		case RDVMSG_DIAL_DIALED:
			if (allowed) {
				s->st.dialed++;
			} else {
				resp->status[i] = RDVMSG_DIAL_RATE_LIMITED;
				s->st.rate_limited++;
			}
			break;
		case RDVMSG_DIAL_PRIVATE:
			s->st.private_++;
			break;
		case RDVMSG_DIAL_NOT_YOURS:
			s->st.not_yours++;
			break;
		default:
			s->st.unavailable++;
			break;
		}
	}
	return allowed ? dial : 0;
}
