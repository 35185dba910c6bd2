#include "nat/stun.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nat/stun_mac.h"

/* Every attribute this decoder understands; the index is its bit in
 * stun_msg.present, the name is what reasons quote. */
static const struct {
	uint16_t type;
	const char *name;
} known[] = {
	{ STUN_ATTR_MAPPED_ADDRESS, "MAPPED-ADDRESS" },
	{ STUN_ATTR_XOR_MAPPED_ADDRESS, "XOR-MAPPED-ADDRESS" },
	{ STUN_ATTR_SOURCE_ADDRESS, "SOURCE-ADDRESS" },
	{ STUN_ATTR_CHANGED_ADDRESS, "CHANGED-ADDRESS" },
	{ STUN_ATTR_RESPONSE_ORIGIN, "RESPONSE-ORIGIN" },
	{ STUN_ATTR_OTHER_ADDRESS, "OTHER-ADDRESS" },
	{ STUN_ATTR_USERNAME, "USERNAME" },
	{ STUN_ATTR_SOFTWARE, "SOFTWARE" },
	{ STUN_ATTR_ERROR_CODE, "ERROR-CODE" },
	{ STUN_ATTR_UNKNOWN_ATTRIBUTES, "UNKNOWN-ATTRIBUTES" },
	{ STUN_ATTR_CHANGE_REQUEST, "CHANGE-REQUEST" },
	{ STUN_ATTR_RESPONSE_PORT, "RESPONSE-PORT" },
	{ STUN_ATTR_PADDING, "PADDING" },
	{ STUN_ATTR_PATH_TOKEN, "PATH-TOKEN" },
	{ STUN_ATTR_PRIORITY, "PRIORITY" },
	{ STUN_ATTR_USE_CANDIDATE, "USE-CANDIDATE" },
	{ STUN_ATTR_ICE_CONTROLLED, "ICE-CONTROLLED" },
	{ STUN_ATTR_ICE_CONTROLLING, "ICE-CONTROLLING" },
	{ STUN_ATTR_MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY" },
	{ STUN_ATTR_MESSAGE_INTEGRITY_SHA256, "MESSAGE-INTEGRITY-SHA256" },
	{ STUN_ATTR_FINGERPRINT, "FINGERPRINT" },
};

#define N_KNOWN (sizeof(known) / sizeof(*known))

static int known_index(uint16_t type)
{
	for (size_t i = 0; i < N_KNOWN; i++)
		if (known[i].type == type)
			return (int)i;
	return -1;
}

const char *stun_strerror(enum stun_err err)
{
	switch (err) {
	case STUN_OK: return "ok";
	case STUN_EMALFORMED: return "malformed STUN message";
	case STUN_ENOSPACE: return "buffer too small";
	case STUN_EORDER: return "attribute after integrity or fingerprint";
	case STUN_ETOOLONG: return "value too long for its attribute";
	case STUN_ENOINTEGRITY: return "no MESSAGE-INTEGRITY";
	case STUN_EINTEGRITY: return "MESSAGE-INTEGRITY mismatch";
	case STUN_ENOFINGERPRINT: return "no FINGERPRINT";
	case STUN_EFINGERPRINT: return "FINGERPRINT mismatch";
	}
	return "unknown error";
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

__attribute__((format(printf, 2, 3)))
static enum stun_err fail(struct stun_msg *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->reason, sizeof(m->reason), fmt, ap);
	va_end(ap);
	return STUN_EMALFORMED;
}

bool stun_looks_like(const uint8_t *buf, size_t len)
{
	return len >= STUN_HEADER_LEN && buf[0] < 4 && rd32(buf + 4) == STUN_MAGIC_COOKIE &&
	       (rd16(buf + 2) & 3) == 0 && (size_t)rd16(buf + 2) + STUN_HEADER_LEN == len;
}

bool stun_has(const struct stun_msg *m, uint16_t attr_type)
{
	int i = known_index(attr_type);

	return i >= 0 && (m->present & (1u << i));
}

/* MAPPED-ADDRESS and its relatives; the XOR form is keyed by the cookie and
 * the transaction id (RFC 8489 section 14.2). */
static enum stun_err dec_addr(struct stun_msg *m, const char *name, const uint8_t *v,
			      uint16_t n, bool xor, struct na_endpoint *ep)
{
	uint8_t key[16];

	if (n < 4)
		return fail(m, "%s length %u too short", name, n);
	if (v[1] != 1 && v[1] != 2)
		return fail(m, "%s address family 0x%02x", name, v[1]);
	if (v[1] == 1 && n != 8)
		return fail(m, "%s length %u, IPv4 needs 8", name, n);
	if (v[1] == 2 && n != 20)
		return fail(m, "%s length %u, IPv6 needs 20", name, n);

	memset(ep, 0, sizeof(*ep));
	key[0] = 0x21; key[1] = 0x12; key[2] = 0xA4; key[3] = 0x42;
	memcpy(key + 4, m->txid + 4, 12);
	ep->port = rd16(v + 2);
	if (v[1] == 1) {
		ep->ip.family = AF_INET;
		memcpy(ep->ip.v4, v + 4, 4);
	} else {
		ep->ip.family = AF_INET6;
		memcpy(ep->ip.v6, v + 4, 16);
	}
	if (xor) {
		ep->port ^= 0x2112;
		for (size_t i = 0; i < (v[1] == 1 ? 4u : 16u); i++)
			ep->ip.v6[i] ^= key[i];
	}
	return STUN_OK;
}

static enum stun_err need_len(struct stun_msg *m, const char *name, uint16_t n, uint16_t want)
{
	if (n != want)
		return fail(m, "%s length %u, want %u", name, n, want);
	return STUN_OK;
}

/* Checks one known attribute's value and, if store, records it. Duplicates
 * are still checked so that a malformed copy cannot hide behind a good one. */
static enum stun_err dec_known(struct stun_msg *m, int idx, const uint8_t *v, uint16_t n,
			       bool store)
{
	struct stun_msg scratch;
	struct stun_msg *d = store ? m : &scratch;
	const char *name = known[idx].name;
	enum stun_err e = STUN_OK;

	if (!store)
		memcpy(scratch.txid, m->txid, sizeof(m->txid));

	switch (known[idx].type) {
	case STUN_ATTR_MAPPED_ADDRESS:
		e = dec_addr(m, name, v, n, false, &d->mapped);
		break;
	case STUN_ATTR_XOR_MAPPED_ADDRESS:
		e = dec_addr(m, name, v, n, true, &d->xor_mapped);
		break;
	case STUN_ATTR_SOURCE_ADDRESS:
		e = dec_addr(m, name, v, n, false, &d->source);
		break;
	case STUN_ATTR_CHANGED_ADDRESS:
		e = dec_addr(m, name, v, n, false, &d->changed);
		break;
	case STUN_ATTR_RESPONSE_ORIGIN:
		e = dec_addr(m, name, v, n, false, &d->response_origin);
		break;
	case STUN_ATTR_OTHER_ADDRESS:
		e = dec_addr(m, name, v, n, false, &d->other);
		break;
	case STUN_ATTR_USERNAME:
		if (n > STUN_MAX_USERNAME)
			return fail(m, "USERNAME length %u exceeds %u", n, STUN_MAX_USERNAME);
		d->username = v;
		d->username_len = n;
		break;
	case STUN_ATTR_SOFTWARE:
		if (n > STUN_MAX_SOFTWARE)
			return fail(m, "SOFTWARE length %u exceeds %u", n, STUN_MAX_SOFTWARE);
		d->software = v;
		d->software_len = n;
		break;
	case STUN_ATTR_ERROR_CODE:
		if (n < 4)
			return fail(m, "ERROR-CODE length %u too short", n);
		if (n - 4 > STUN_MAX_REASON)
			return fail(m, "ERROR-CODE reason length %u exceeds %u", n - 4, STUN_MAX_REASON);
		if ((v[2] & 7) < 3 || (v[2] & 7) > 6 || v[3] > 99)
			return fail(m, "ERROR-CODE class %u number %u", v[2] & 7, v[3]);
		d->error_code = (uint16_t)((v[2] & 7) * 100 + v[3]);
		d->error_reason = v + 4;
		d->error_reason_len = n - 4u;
		break;
	case STUN_ATTR_UNKNOWN_ATTRIBUTES:
		if (n % 2)
			return fail(m, "UNKNOWN-ATTRIBUTES length %u is odd", n);
		d->unknown_list_len = 0;
		for (uint16_t i = 0; i < n / 2 && i < STUN_MAX_UNKNOWN; i++)
			d->unknown_list[d->unknown_list_len++] = rd16(v + 2 * i);
		break;
	case STUN_ATTR_CHANGE_REQUEST:
		if (!(e = need_len(m, name, n, 4)))
			d->change = rd32(v);
		break;
	case STUN_ATTR_RESPONSE_PORT:
		if (!(e = need_len(m, name, n, 4)))
			d->response_port = rd16(v);
		break;
	case STUN_ATTR_PADDING:
		d->padding = v;
		d->padding_len = n;
		break;
	case STUN_ATTR_PATH_TOKEN:
		if (!(e = need_len(m, name, n, 8)))
			d->path_token = rd64(v);
		break;
	case STUN_ATTR_PRIORITY:
		if (!(e = need_len(m, name, n, 4)))
			d->priority = rd32(v);
		break;
	case STUN_ATTR_USE_CANDIDATE:
		e = need_len(m, name, n, 0);
		break;
	case STUN_ATTR_ICE_CONTROLLED:
	case STUN_ATTR_ICE_CONTROLLING:
		if (!(e = need_len(m, name, n, 8)))
			d->ice_tiebreaker = rd64(v);
		break;
	}
	return e;
}

static void note_unknown(struct stun_msg *m, uint16_t type)
{
	if (type >= 0x8000)
		return; /* comprehension-optional: ignored, as RFC 8489 says */
	for (size_t i = 0; i < m->n_unknown_required; i++)
		if (m->unknown_required[i] == type)
			return;
	if (m->n_unknown_required < STUN_MAX_UNKNOWN)
		m->unknown_required[m->n_unknown_required++] = type;
}

/* What may follow what: RFC 8489 sections 14.5 to 14.7. */
enum stage { OPEN, AFTER_MI, AFTER_MI256, AFTER_FP };

static enum stun_err dec_attr(struct stun_msg *m, enum stage *st, size_t off,
			      uint16_t type, const uint8_t *v, uint16_t n)
{
	int idx = known_index(type);
	enum stun_err e;

	if (*st == AFTER_FP)
		return fail(m, "attribute 0x%04x after FINGERPRINT", type);

	if (type == STUN_ATTR_FINGERPRINT) {
		if ((e = need_len(m, "FINGERPRINT", n, 4)))
			return e;
		m->fp_off = off;
		m->present |= 1u << idx;
		*st = AFTER_FP;
		return STUN_OK;
	}
	if (type == STUN_ATTR_MESSAGE_INTEGRITY_SHA256) {
		if (n < 16 || n > 32 || n % 4)
			return fail(m, "MESSAGE-INTEGRITY-SHA256 length %u", n);
		if (*st == AFTER_MI256)
			return STUN_OK;
		m->mi256_off = off;
		m->mi256_len = n;
		m->present |= 1u << idx;
		*st = AFTER_MI256;
		return STUN_OK;
	}
	if (*st != OPEN)
		return STUN_OK; /* ignored after integrity */
	if (type == STUN_ATTR_MESSAGE_INTEGRITY) {
		if ((e = need_len(m, "MESSAGE-INTEGRITY", n, 20)))
			return e;
		m->mi_off = off;
		m->present |= 1u << idx;
		*st = AFTER_MI;
		return STUN_OK;
	}
	if (idx < 0) {
		note_unknown(m, type);
		return STUN_OK;
	}
	bool first = !(m->present & (1u << idx));
	if ((e = dec_known(m, idx, v, n, first)))
		return e;
	m->present |= 1u << idx;
	return STUN_OK;
}

enum stun_err stun_decode(struct stun_msg *m, const uint8_t *buf, size_t len, unsigned flags)
{
	enum stage st = OPEN;
	enum stun_err e;

	memset(m, 0, sizeof(*m));
	if (len < STUN_HEADER_LEN)
		return fail(m, "%zu bytes, shorter than a STUN header", len);
	if (buf[0] & 0xC0)
		return fail(m, "first two bits not zero");
	uint16_t hlen = rd16(buf + 2);
	if (hlen % 4)
		return fail(m, "length not a multiple of 4");
	if ((size_t)hlen + STUN_HEADER_LEN != len)
		return fail(m, "header length %u, datagram carries %zu", hlen,
			    len - STUN_HEADER_LEN);
	m->has_cookie = rd32(buf + 4) == STUN_MAGIC_COOKIE;
	if (!m->has_cookie && !(flags & STUN_DECODE_CLASSIC))
		return fail(m, "bad magic cookie");

	m->type = rd16(buf);
	memcpy(m->txid, buf + 4, STUN_TXID_LEN);
	m->raw = buf;
	m->len = len;

	/* len - off stays a multiple of 4, so a value that fits also fits
	 * with its padding. */
	for (size_t off = STUN_HEADER_LEN; off < len;) {
		uint16_t type = rd16(buf + off), n = rd16(buf + off + 2);
		if (n > len - off - 4)
			return fail(m, "attribute 0x%04x length %u exceeds message", type, n);
		if ((e = dec_attr(m, &st, off, type, buf + off + 4, n)))
			return e;
		off += 4 + (((size_t)n + 3) & ~(size_t)3);
	}
	return STUN_OK;
}

enum stun_err stun_check_integrity(const struct stun_msg *m, const void *key, size_t key_len)
{
	bool mi = stun_has(m, STUN_ATTR_MESSAGE_INTEGRITY);
	bool mi256 = stun_has(m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256);
	uint8_t mac[32];
	int diff = 0;

	if (!key)
		key = "";
	if (!mi && !mi256)
		return STUN_ENOINTEGRITY;
	if (mi) {
		stun_hmac_sha1(m->raw, m->mi_off, (uint16_t)(m->mi_off + 24 - STUN_HEADER_LEN),
			       key, key_len, mac);
		for (size_t i = 0; i < 20; i++)
			diff |= mac[i] ^ m->raw[m->mi_off + 4 + i];
	}
	if (mi256) {
		stun_hmac_sha256(m->raw, m->mi256_off,
				 (uint16_t)(m->mi256_off + 4 + m->mi256_len - STUN_HEADER_LEN),
				 key, key_len, mac);
		for (size_t i = 0; i < m->mi256_len; i++)
			diff |= mac[i] ^ m->raw[m->mi256_off + 4 + i];
	}
	return diff ? STUN_EINTEGRITY : STUN_OK;
}

enum stun_err stun_check_fingerprint(const struct stun_msg *m)
{
	if (!stun_has(m, STUN_ATTR_FINGERPRINT))
		return STUN_ENOFINGERPRINT;
	/* FINGERPRINT is last, so the header length already ends with it. */
	uint32_t crc = stun_crc32(m->raw, m->fp_off) ^ STUN_FINGERPRINT_XOR;
	return crc == rd32(m->raw + m->fp_off + 4) ? STUN_OK : STUN_EFINGERPRINT;
}

void stun_txid_set(uint8_t txid[STUN_TXID_LEN], const uint8_t random12[12])
{
	txid[0] = 0x21; txid[1] = 0x12; txid[2] = 0xA4; txid[3] = 0x42;
	memcpy(txid + 4, random12, 12);
}
