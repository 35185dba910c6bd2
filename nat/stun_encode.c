#include "nat/stun.h"

#include <string.h>

#include "nat/stun_mac.h"

/* The same order the decoder enforces: ordinary attributes, then
 * MESSAGE-INTEGRITY, then MESSAGE-INTEGRITY-SHA256, then FINGERPRINT. */
enum { OPEN, AFTER_MI, AFTER_MI256, AFTER_FP };

/* The header's length field holds 16 bits and stays a multiple of 4. */
#define MAX_BODY 65532u

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)(v >> 16));
	wr16(p + 2, (uint16_t)v);
}

static bool failed(struct stun_builder *b, enum stun_err err, const char *why)
{
	if (!b->err) {
		b->err = err;
		b->why = why;
	}
	return false;
}

bool stun_build_init(struct stun_builder *b, void *buf, size_t cap, uint16_t type,
		     const uint8_t txid[STUN_TXID_LEN])
{
	memset(b, 0, sizeof(*b));
	b->buf = buf;
	b->cap = cap;
	if (type & 0xC000)
		return failed(b, STUN_ETOOLONG, "message type has its top two bits set");
	if (cap < STUN_HEADER_LEN)
		return failed(b, STUN_ENOSPACE, "no room for the header");
	wr16(b->buf, type);
	wr16(b->buf + 2, 0);
	memcpy(b->buf + 4, txid, STUN_TXID_LEN);
	b->len = STUN_HEADER_LEN;
	return true;
}

/* Reserves an attribute of value length n (padded), writes its header and
 * padding, updates the header length; returns where the value goes. */
static uint8_t *reserve(struct stun_builder *b, uint16_t type, size_t n)
{
	size_t padded = (n + 3) & ~(size_t)3;

	if (b->err)
		return NULL;
	if (n > 0xFFFF || b->len - STUN_HEADER_LEN + 4 + padded > MAX_BODY) {
		failed(b, STUN_ETOOLONG, "message would exceed 64 KiB");
		return NULL;
	}
	if (4 + padded > b->cap - b->len) {
		failed(b, STUN_ENOSPACE, "attribute does not fit the buffer");
		return NULL;
	}
	uint8_t *p = b->buf + b->len;
	wr16(p, type);
	wr16(p + 2, (uint16_t)n);
	memset(p + 4 + n, b->pad_byte, padded - n);
	b->len += 4 + padded;
	wr16(b->buf + 2, (uint16_t)(b->len - STUN_HEADER_LEN));
	return p + 4;
}

static uint8_t *reserve_open(struct stun_builder *b, uint16_t type, size_t n)
{
	if (b->stage != OPEN) {
		failed(b, STUN_EORDER, "attribute after integrity or fingerprint");
		return NULL;
	}
	return reserve(b, type, n);
}

bool stun_build_attr(struct stun_builder *b, uint16_t type, const void *val, size_t len)
{
	uint8_t *p = reserve_open(b, type, len);

	if (!p)
		return false;
	if (len)
		memcpy(p, val, len);
	return true;
}

bool stun_build_addr(struct stun_builder *b, uint16_t type, const struct na_endpoint *ep)
{
	bool v4 = ep->ip.family == AF_INET;
	size_t alen = v4 ? 4 : 16;
	uint8_t key[16];
	uint8_t *p;

	if (ep->ip.family != AF_INET && ep->ip.family != AF_INET6)
		return failed(b, STUN_ETOOLONG, "address without a family");
	if (!(p = reserve_open(b, type, 4 + alen)))
		return false;
	p[0] = 0;
	p[1] = v4 ? 1 : 2;
	wr16(p + 2, ep->port);
	memcpy(p + 4, ep->ip.v6, alen);
	if (type == STUN_ATTR_XOR_MAPPED_ADDRESS) {
		wr32(key, STUN_MAGIC_COOKIE);
		memcpy(key + 4, b->buf + 8, 12);
		wr16(p + 2, ep->port ^ 0x2112);
		for (size_t i = 0; i < alen; i++)
			p[4 + i] ^= key[i];
	}
	return true;
}

bool stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t v)
{
	uint8_t *p = reserve_open(b, type, 4);

	if (p)
		wr32(p, v);
	return p != NULL;
}

bool stun_build_u64(struct stun_builder *b, uint16_t type, uint64_t v)
{
	uint8_t *p = reserve_open(b, type, 8);

	if (p) {
		wr32(p, (uint32_t)(v >> 32));
		wr32(p + 4, (uint32_t)v);
	}
	return p != NULL;
}

bool stun_build_string(struct stun_builder *b, uint16_t type, const char *s)
{
	size_t n = strlen(s);

	if ((type == STUN_ATTR_USERNAME && n > STUN_MAX_USERNAME) ||
	    (type == STUN_ATTR_SOFTWARE && n > STUN_MAX_SOFTWARE))
		return failed(b, STUN_ETOOLONG, "string too long for its attribute");
	return stun_build_attr(b, type, s, n);
}

bool stun_build_error(struct stun_builder *b, uint16_t code, const char *reason)
{
	size_t n = reason ? strlen(reason) : 0;
	uint8_t *p;

	if (code < 300 || code > 699)
		return failed(b, STUN_ETOOLONG, "error code outside 300..699");
	if (n > STUN_MAX_REASON)
		return failed(b, STUN_ETOOLONG, "error reason too long");
	if (!(p = reserve_open(b, STUN_ATTR_ERROR_CODE, 4 + n)))
		return false;
	p[0] = p[1] = 0;
	p[2] = (uint8_t)(code / 100);
	p[3] = (uint8_t)(code % 100);
	if (n)
		memcpy(p + 4, reason, n);
	return true;
}

bool stun_build_unknown(struct stun_builder *b, const uint16_t *types, size_t n, bool classic)
{
	size_t slots = classic && n % 2 ? n + 1 : n;
	uint8_t *p;

	if (!(p = reserve_open(b, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * slots)))
		return false;
	for (size_t i = 0; i < slots; i++)
		wr16(p + 2 * i, types[i < n ? i : n - 1]);
	return true;
}

bool stun_build_response_port(struct stun_builder *b, uint16_t port)
{
	return stun_build_u32(b, STUN_ATTR_RESPONSE_PORT, (uint32_t)port << 16);
}

bool stun_build_padding(struct stun_builder *b, size_t len)
{
	uint8_t *p = reserve_open(b, STUN_ATTR_PADDING, len);

	if (p && len)
		memset(p, 0, len);
	return p != NULL;
}

bool stun_build_integrity(struct stun_builder *b, const void *key, size_t key_len)
{
	uint8_t *p;

	if (b->stage != OPEN)
		return failed(b, STUN_EORDER, "MESSAGE-INTEGRITY after integrity or fingerprint");
	if (!(p = reserve(b, STUN_ATTR_MESSAGE_INTEGRITY, 20)))
		return false;
	stun_hmac_sha1(b->buf, (size_t)(p - 4 - b->buf), (uint16_t)(b->len - STUN_HEADER_LEN),
		       key ? key : "", key_len, p);
	b->stage = AFTER_MI;
	return true;
}

bool stun_build_integrity_sha256(struct stun_builder *b, const void *key, size_t key_len)
{
	uint8_t *p;

	if (b->stage > AFTER_MI)
		return failed(b, STUN_EORDER, "MESSAGE-INTEGRITY-SHA256 after itself or fingerprint");
	if (!(p = reserve(b, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 32)))
		return false;
	stun_hmac_sha256(b->buf, (size_t)(p - 4 - b->buf), (uint16_t)(b->len - STUN_HEADER_LEN),
			 key ? key : "", key_len, p);
	b->stage = AFTER_MI256;
	return true;
}

bool stun_build_fingerprint(struct stun_builder *b)
{
	uint8_t *p;

	if (b->stage == AFTER_FP)
		return failed(b, STUN_EORDER, "second FINGERPRINT");
	if (!(p = reserve(b, STUN_ATTR_FINGERPRINT, 4)))
		return false;
	wr32(p, stun_crc32(b->buf, (size_t)(p - 4 - b->buf)) ^ STUN_FINGERPRINT_XOR);
	b->stage = AFTER_FP;
	return true;
}

size_t stun_build_finish(struct stun_builder *b)
{
	return b->err ? 0 : b->len;
}

size_t stun_build_keepalive(void *buf, size_t cap, const uint8_t txid[STUN_TXID_LEN],
			    uint64_t token, bool fingerprint)
{
	struct stun_builder b;

	stun_build_init(&b, buf, cap, STUN_BINDING_INDICATION, txid);
	stun_build_u64(&b, STUN_ATTR_PATH_TOKEN, token);
	if (fingerprint)
		stun_build_fingerprint(&b);
	return stun_build_finish(&b);
}
