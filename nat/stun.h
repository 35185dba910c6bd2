/* STUN messages (RFC 8489, with RFC 5780 and RFC 3489 attributes): a strictly
 * bounded decoder, integrity and fingerprint checks, and a builder over the
 * caller's buffer. Nothing here allocates, sleeps or logs; decoded strings
 * point into the caller's bytes, which must outlive the decoded message. */
#ifndef NATAGENT_NAT_STUN_H
#define NATAGENT_NAT_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nat/addr.h"

#define STUN_MAGIC_COOKIE	0x2112A442u
#define STUN_FINGERPRINT_XOR	0x5354554eu
#define STUN_HEADER_LEN		20
/* Bytes 4..19 of the header. For RFC 8489 messages that is the magic cookie
 * followed by the 96-bit transaction id; RFC 3489 messages have no cookie and
 * a 128-bit id. Keeping all 16 bytes lets one comparison match either kind,
 * and lets a server echo a classic client's id unchanged. */
#define STUN_TXID_LEN		16

#define STUN_METHOD_BINDING	0x001

enum stun_class {
	STUN_REQUEST = 0,
	STUN_INDICATION = 1,
	STUN_SUCCESS = 2,
	STUN_ERROR_RESPONSE = 3,
};

#define STUN_BINDING_REQUEST	0x0001
#define STUN_BINDING_INDICATION	0x0011
#define STUN_BINDING_SUCCESS	0x0101
#define STUN_BINDING_ERROR	0x0111

enum stun_attr {
	STUN_ATTR_MAPPED_ADDRESS	= 0x0001,
	STUN_ATTR_CHANGE_REQUEST	= 0x0003, /* RFC 5780 */
	STUN_ATTR_SOURCE_ADDRESS	= 0x0004, /* RFC 3489 */
	STUN_ATTR_CHANGED_ADDRESS	= 0x0005, /* RFC 3489 */
	STUN_ATTR_USERNAME		= 0x0006,
	STUN_ATTR_MESSAGE_INTEGRITY	= 0x0008,
	STUN_ATTR_ERROR_CODE		= 0x0009,
	STUN_ATTR_UNKNOWN_ATTRIBUTES	= 0x000A,
	STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
	STUN_ATTR_XOR_MAPPED_ADDRESS	= 0x0020,
	STUN_ATTR_PRIORITY		= 0x0024, /* RFC 8445, for punch checks */
	STUN_ATTR_USE_CANDIDATE		= 0x0025,
	STUN_ATTR_PADDING		= 0x0026, /* RFC 5780 */
	STUN_ATTR_RESPONSE_PORT		= 0x0027, /* RFC 5780 */
	STUN_ATTR_SOFTWARE		= 0x8022,
	STUN_ATTR_FINGERPRINT		= 0x8028,
	STUN_ATTR_ICE_CONTROLLED	= 0x8029,
	STUN_ATTR_ICE_CONTROLLING	= 0x802A,
	STUN_ATTR_RESPONSE_ORIGIN	= 0x802B, /* RFC 5780 */
	STUN_ATTR_OTHER_ADDRESS		= 0x802C, /* RFC 5780 */
	/* natagent: a keepalive's 64-bit path token, which the XDP program
	 * checks and absorbs. Comprehension-optional, so any other STUN agent
	 * that sees it ignores it. */
	STUN_ATTR_PATH_TOKEN		= 0xC0A7,
	/* natagent: an AutoNAT dial-back's nonce and address index
	 * (nat/autonat.h). Comprehension-optional too. */
	STUN_ATTR_DIALBACK		= 0xC0A8,
};

/* CHANGE-REQUEST flags. */
#define STUN_CHANGE_IP		0x4u
#define STUN_CHANGE_PORT	0x2u

/* Limits from RFC 8489 section 14 (USERNAME: RFC 5389's "less than 513"
 * bytes, the looser of the two, so older senders still decode). */
#define STUN_MAX_USERNAME	512
#define STUN_MAX_REASON		763
#define STUN_MAX_SOFTWARE	763
#define STUN_MAX_UNKNOWN	16

enum stun_err {
	STUN_OK = 0,
	STUN_EMALFORMED,	/* not a well-formed STUN message; see reason */
	STUN_ENOSPACE,		/* builder: the caller's buffer is too small */
	STUN_EORDER,		/* builder: attribute after integrity/fingerprint */
	STUN_ETOOLONG,		/* builder: a value exceeds its attribute's limit */
	STUN_ENOINTEGRITY,	/* no MESSAGE-INTEGRITY(-SHA256) to check */
	STUN_EINTEGRITY,	/* integrity present but wrong */
	STUN_ENOFINGERPRINT,
	STUN_EFINGERPRINT,
};

const char *stun_strerror(enum stun_err err);

/* A decoded message. Only the first occurrence of each attribute counts
 * (RFC 8489 section 14); attributes after MESSAGE-INTEGRITY other than
 * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are skipped, as the RFC says. */
struct stun_msg {
	uint16_t type;
	bool has_cookie;		/* false: an RFC 3489 "classic" message */
	uint8_t txid[STUN_TXID_LEN];
	const uint8_t *raw;		/* the whole message, for integrity checks */
	size_t len;
	uint32_t present;		/* bits for stun_has() */

	struct na_endpoint mapped, xor_mapped, source, changed;
	struct na_endpoint response_origin, other;
	const uint8_t *username, *software, *padding, *error_reason;
	size_t username_len, software_len, padding_len, error_reason_len;
	uint16_t error_code;		/* 300..699 */
	uint16_t unknown_list[STUN_MAX_UNKNOWN]; /* UNKNOWN-ATTRIBUTES contents */
	size_t unknown_list_len;
	uint32_t change;		/* CHANGE-REQUEST flags */
	uint16_t response_port;
	uint64_t path_token;
	uint32_t priority;
	uint64_t ice_tiebreaker;	/* ICE-CONTROLLED or ICE-CONTROLLING */

	/* Offsets of the integrity and fingerprint attribute headers, for the
	 * checks below; valid when present. */
	size_t mi_off, mi256_off, fp_off;
	uint16_t mi256_len;

	/* Comprehension-required attributes this decoder does not know: a
	 * server answers 420 listing them, a client fails the transaction. */
	uint16_t unknown_required[STUN_MAX_UNKNOWN];
	size_t n_unknown_required;

	char reason[72];		/* why decoding failed */
};

/* stun_decode() flags. */
#define STUN_DECODE_CLASSIC	0x1u	/* accept RFC 3489 messages (no cookie) */

/* Decodes one whole datagram: the header's length must account for exactly
 * len bytes. Never reads outside buf[0..len). */
enum stun_err stun_decode(struct stun_msg *m, const uint8_t *buf, size_t len, unsigned flags);

bool stun_has(const struct stun_msg *m, uint16_t attr_type);

static inline uint16_t stun_type(uint16_t method, enum stun_class cls)
{
	return (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) |
			  ((method & 0x0F80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7));
}

static inline uint16_t stun_method(uint16_t type)
{
	return (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
}

static inline enum stun_class stun_class_of(uint16_t type)
{
	return (enum stun_class)(((type >> 4) & 1) | ((type >> 7) & 2));
}

/* Cheap demultiplexing test (RFC 9443 first byte 0..3 and the cookie); does
 * not walk the attributes. */
bool stun_looks_like(const uint8_t *buf, size_t len);

/* Short-term credentials: the key is the password itself. Checks every
 * integrity attribute the decoder counted (MESSAGE-INTEGRITY unless it came
 * after MESSAGE-INTEGRITY-SHA256, and MESSAGE-INTEGRITY-SHA256); all of them
 * must match. STUN_ENOINTEGRITY when there is none. */
enum stun_err stun_check_integrity(const struct stun_msg *m, const void *key, size_t key_len);
enum stun_err stun_check_fingerprint(const struct stun_msg *m);

/* Builder. Every call checks bounds; the first failure sticks, later calls
 * do nothing, and stun_build_finish() returns 0 with b->err set. The header
 * length is kept current after each attribute, so integrity and fingerprint
 * can be computed at any point. */
struct stun_builder {
	uint8_t *buf;
	size_t cap, len;
	uint8_t pad_byte;	/* fills attribute padding; RFC 5769 uses 0x20 */
	uint8_t stage;		/* what may still be added; see stun_encode.c */
	enum stun_err err;
	const char *why;
};

bool stun_build_init(struct stun_builder *b, void *buf, size_t cap, uint16_t type,
		     const uint8_t txid[STUN_TXID_LEN]);
bool stun_build_attr(struct stun_builder *b, uint16_t type, const void *val, size_t len);
/* MAPPED-ADDRESS form, or XOR'd when type is XOR-MAPPED-ADDRESS. */
bool stun_build_addr(struct stun_builder *b, uint16_t type, const struct na_endpoint *ep);
bool stun_build_u32(struct stun_builder *b, uint16_t type, uint32_t v);
bool stun_build_u64(struct stun_builder *b, uint16_t type, uint64_t v);
bool stun_build_string(struct stun_builder *b, uint16_t type, const char *s);
bool stun_build_error(struct stun_builder *b, uint16_t code, const char *reason);
/* classic: RFC 3489 padded an odd list by repeating the last type. */
bool stun_build_unknown(struct stun_builder *b, const uint16_t *types, size_t n, bool classic);
bool stun_build_response_port(struct stun_builder *b, uint16_t port);
bool stun_build_padding(struct stun_builder *b, size_t len);
bool stun_build_integrity(struct stun_builder *b, const void *key, size_t key_len);
bool stun_build_integrity_sha256(struct stun_builder *b, const void *key, size_t key_len);
bool stun_build_fingerprint(struct stun_builder *b);
size_t stun_build_finish(struct stun_builder *b);

/* A keepalive: Binding indication with PATH-TOKEN (and FINGERPRINT if
 * asked). Returns its length, 0 if cap is too small (32 or 40 bytes). */
size_t stun_build_keepalive(void *buf, size_t cap, const uint8_t txid[STUN_TXID_LEN],
			    uint64_t token, bool fingerprint);

/* Fills txid with the cookie and 12 bytes from the caller's random bytes. */
void stun_txid_set(uint8_t txid[STUN_TXID_LEN], const uint8_t random12[12]);

#endif
