#include "nat/stun_server.h"

#include <string.h>

/* Everything a response is built from, decided before any byte is written
 * so that it can be rebuilt smaller. */
struct answer {
	const struct stun_msg *req;
	size_t req_len, limit;
	bool alt;			/* an alternate usable for this family */
	struct na_endpoint src, from, other;
	const void *key;		/* set once the request authenticated */
	size_t key_len;
	const char *software;
};

/* Attributes shed, in this order, to stay within the limit. */
enum shed { KEEP_ALL, SHED_SOFTWARE, SHED_MAPPED, SHED_ORIGIN, SHED_OTHER, SHED_LEVELS };

static void seal(struct stun_builder *b, const struct answer *a)
{
	/* Answer with the integrity algorithms the request used. */
	if (a->key && stun_has(a->req, STUN_ATTR_MESSAGE_INTEGRITY))
		stun_build_integrity(b, a->key, a->key_len);
	if (a->key && stun_has(a->req, STUN_ATTR_MESSAGE_INTEGRITY_SHA256))
		stun_build_integrity_sha256(b, a->key, a->key_len);
	if (stun_has(a->req, STUN_ATTR_FINGERPRINT))
		stun_build_fingerprint(b);
}

static size_t build_success(const struct answer *a, enum shed level, size_t pad,
			    uint8_t *out, size_t cap)
{
	struct stun_builder b;

	stun_build_init(&b, out, cap, STUN_BINDING_SUCCESS, a->req->txid);
	if (a->req->has_cookie) {
		stun_build_addr(&b, STUN_ATTR_XOR_MAPPED_ADDRESS, &a->src);
		if (level < SHED_MAPPED)
			stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, &a->src);
		if (a->alt && level < SHED_ORIGIN)
			stun_build_addr(&b, STUN_ATTR_RESPONSE_ORIGIN, &a->from);
		if (a->alt && level < SHED_OTHER)
			stun_build_addr(&b, STUN_ATTR_OTHER_ADDRESS, &a->other);
		if (a->software && level < SHED_SOFTWARE)
			stun_build_string(&b, STUN_ATTR_SOFTWARE, a->software);
	} else {
		/* RFC 3489 clients reject unknown comprehension-required
		 * attributes, and stun-client parses SOFTWARE's old meaning
		 * strictly, so classic answers carry only the old three. */
		stun_build_addr(&b, STUN_ATTR_MAPPED_ADDRESS, &a->src);
		if (level < SHED_ORIGIN)
			stun_build_addr(&b, STUN_ATTR_SOURCE_ADDRESS, &a->from);
		if (a->alt && level < SHED_OTHER)
			stun_build_addr(&b, STUN_ATTR_CHANGED_ADDRESS, &a->other);
	}
	if (stun_has(a->req, STUN_ATTR_PADDING))
		stun_build_padding(&b, pad);
	seal(&b, a);
	return stun_build_finish(&b);
}

static size_t build_error(const struct answer *a, uint16_t code, const char *reason,
			  uint8_t *out, size_t cap)
{
	struct stun_builder b;

	stun_build_init(&b, out, cap, STUN_BINDING_ERROR, a->req->txid);
	stun_build_error(&b, code, reason);
	if (code == 420)
		stun_build_unknown(&b, a->req->unknown_required, a->req->n_unknown_required,
				   !a->req->has_cookie);
	seal(&b, a);
	return stun_build_finish(&b);
}

static enum stun_server_action drop(struct stun_server_reply *r, const char *why)
{
	r->len = 0;
	r->why = why;
	return STUN_SERVER_DROP;
}

/* Errors leave from where the request arrived, to where it came from. The
 * reason phrase is optional, so it goes before the answer does. */
static enum stun_server_action error(const struct answer *a, uint16_t code, const char *reason,
				     uint8_t *out, size_t cap, struct stun_server_reply *r)
{
	size_t n = build_error(a, code, reason, out, cap);

	if (!n || n > a->limit)
		n = build_error(a, code, "", out, cap);
	if (!n || n > a->limit)
		return drop(r, "error response would exceed the amplification limit");
	r->len = n;
	r->error_code = code;
	r->why = reason;
	return STUN_SERVER_SEND;
}

/* RFC 5780 section 6.1: Ca is the address the request did not arrive on,
 * Cp the port; OTHER-ADDRESS is Ca:Cp whatever the flags. */
static void pick_source(const struct stun_server_config *cfg, const struct stun_msg *m,
			const struct na_endpoint *local, struct answer *a)
{
	const struct na_endpoint *p = &cfg->primary, *q = &cfg->alternate;

	a->from = *local;
	a->alt = cfg->has_alternate && p->ip.family == local->ip.family &&
		 q->ip.family == local->ip.family;
	if (!a->alt)
		return;
	a->other.ip = na_ip_equal(&local->ip, &q->ip) ? p->ip : q->ip;
	a->other.port = local->port == q->port ? p->port : q->port;
	if (m->change & STUN_CHANGE_IP)
		a->from.ip = a->other.ip;
	if (m->change & STUN_CHANGE_PORT)
		a->from.port = a->other.port;
}

/* RFC 8489 section 9.1.3: 400 without the credentials, 401 when they are
 * wrong. Returns the error code, 0 when the request authenticated. */
static uint16_t authenticate(const struct stun_server_config *cfg, const struct stun_msg *m,
			     struct answer *a)
{
	size_t klen = 0;
	const void *key;

	if (!cfg->key)
		return 0;
	if (!stun_has(m, STUN_ATTR_USERNAME) ||
	    (!stun_has(m, STUN_ATTR_MESSAGE_INTEGRITY) &&
	     !stun_has(m, STUN_ATTR_MESSAGE_INTEGRITY_SHA256)))
		return 400;
	if (!(key = cfg->key(cfg->key_ctx, m->username, m->username_len, &klen)))
		return 401;
	if (stun_check_integrity(m, key, klen))
		return 401;
	a->key = key;
	a->key_len = klen;
	return 0;
}

enum stun_server_action stun_server_answer(const struct stun_server_config *cfg,
					   const uint8_t *req, size_t len,
					   const struct na_endpoint *src,
					   const struct na_endpoint *local,
					   uint8_t *out, size_t cap, struct stun_server_reply *r)
{
	unsigned factor = cfg->amp_factor ? cfg->amp_factor : STUN_SERVER_AMP_FACTOR;
	struct answer a = { .src = *src, .software = cfg->software };
	struct stun_msg m;
	uint16_t code;

	memset(r, 0, sizeof(*r));
	r->from = *local;
	r->to = *src;
	/* RFC 8489 section 6.3: anything not a valid Binding request is
	 * dropped silently. */
	if (stun_decode(&m, req, len, STUN_DECODE_CLASSIC))
		return drop(r, "malformed STUN message");
	if (stun_method(m.type) != STUN_METHOD_BINDING)
		return drop(r, "not a Binding message");
	if (stun_class_of(m.type) != STUN_REQUEST)
		return drop(r, "not a request");
	if (stun_has(&m, STUN_ATTR_FINGERPRINT) && stun_check_fingerprint(&m))
		return drop(r, "bad FINGERPRINT");
	a.req = &m;
	a.req_len = len;
	a.limit = len * factor;

	if ((code = authenticate(cfg, &m, &a)))
		return error(&a, code, code == 400 ? "Bad Request" : "Unauthorized", out, cap, r);
	if (m.n_unknown_required)
		return error(&a, 420, "Unknown Attribute", out, cap, r);

	pick_source(cfg, &m, local, &a);
	if (stun_has(&m, STUN_ATTR_CHANGE_REQUEST) && !a.alt) {
		/* RFC 5780 section 6: 420 from a server with one address. A
		 * classic client counts any answer as success, so it gets
		 * silence when it asked for a change we cannot make. */
		if (!m.has_cookie) {
			if (m.change & (STUN_CHANGE_IP | STUN_CHANGE_PORT))
				return drop(r, "CHANGE-REQUEST without an alternate address");
		} else {
			m.unknown_required[0] = STUN_ATTR_CHANGE_REQUEST;
			m.n_unknown_required = 1;
			return error(&a, 420, "Unknown Attribute", out, cap, r);
		}
	}
	if (stun_has(&m, STUN_ATTR_RESPONSE_PORT) && stun_has(&m, STUN_ATTR_PADDING))
		return error(&a, 400, "RESPONSE-PORT with PADDING", out, cap, r);
	if (stun_has(&m, STUN_ATTR_RESPONSE_PORT) && !m.response_port)
		return error(&a, 400, "RESPONSE-PORT 0", out, cap, r);

	for (enum shed level = KEEP_ALL; level < SHED_LEVELS; level++) {
		size_t n = build_success(&a, level, 0, out, cap);
		if (n && stun_has(&m, STUN_ATTR_PADDING) && n < len)
			n = build_success(&a, level, (len - n) & ~(size_t)3, out, cap);
		if (n && n <= a.limit) {
			r->len = n;
			r->from = a.from;
			if (stun_has(&m, STUN_ATTR_RESPONSE_PORT))
				r->to.port = m.response_port;
			return STUN_SERVER_SEND;
		}
	}
	return drop(r, "response would exceed the amplification limit");
}
