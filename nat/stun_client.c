#include "nat/stun_client.h"

#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

void stun_client_params_default(struct stun_client_params *p)
{
	p->rto = 500 * STUN_NS_PER_MS;
	p->rc = 7;
	p->rm = 16;
}

static bool rand_gnutls(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	return gnutls_rnd(GNUTLS_RND_NONCE, buf, len) == 0;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

void stun_client_init(struct stun_client *c, const struct stun_client_params *params,
		      stun_rand_fn rand, void *rand_ctx)
{
	memset(c, 0, sizeof(*c));
	if (params)
		c->params = *params;
	else
		stun_client_params_default(&c->params);
	if (!c->params.rc)
		c->params.rc = 1;
	c->rand = rand ? rand : rand_gnutls;
	c->rand_ctx = rand_ctx;
}

bool stun_client_add_server(struct stun_client *c, const struct na_endpoint *server)
{
	if (c->n_servers >= STUN_CLIENT_MAX_SERVERS)
		return false;
	c->servers[c->n_servers++] = *server;
	return true;
}

static struct stun_client_txn *find_id(struct stun_client *c, unsigned id)
{
	for (size_t i = 0; id && i < STUN_CLIENT_MAX_TXNS; i++)
		if (c->txns[i].id == id)
			return &c->txns[i];
	return NULL;
}

static struct stun_client_txn *find_txid(struct stun_client *c, const uint8_t *txid)
{
	for (size_t i = 0; i < STUN_CLIENT_MAX_TXNS; i++)
		if (c->txns[i].id && !memcmp(c->txns[i].txid, txid, STUN_TXID_LEN))
			return &c->txns[i];
	return NULL;
}

static bool new_txid(struct stun_client *c, struct stun_client_txn *t)
{
	uint8_t r[12];

	if (!c->rand(c->rand_ctx, r, sizeof(r)))
		return false;
	stun_txid_set(t->txid, r);
	return true;
}

static size_t encode(struct stun_client *c, const struct stun_client_txn *t, const char **why)
{
	struct stun_builder b;

	stun_build_init(&b, c->out, sizeof(c->out), STUN_BINDING_REQUEST, t->txid);
	if (t->change)
		stun_build_u32(&b, STUN_ATTR_CHANGE_REQUEST, t->change);
	if (t->response_port)
		stun_build_response_port(&b, t->response_port);
	if (t->has_username)
		stun_build_string(&b, STUN_ATTR_USERNAME, t->username);
	if (t->padding)
		stun_build_padding(&b, t->padding);
	if (t->has_key)
		stun_build_integrity(&b, t->key, t->key_len);
	if (t->fingerprint)
		stun_build_fingerprint(&b);
	*why = b.why;
	return stun_build_finish(&b);
}

/* Sends (or resends) t's request and arms its next deadline: RTO after
 * each send but the last, Rm initial RTOs after the last. */
static const char *send_now(struct stun_client *c, struct stun_client_txn *t, uint64_t now,
			    struct stun_client_event *ev)
{
	const char *why = NULL;
	size_t len = encode(c, t, &why);

	if (!len)
		return why;
	t->sends++;
	t->last_send = now;
	if (t->sends < c->params.rc) {
		t->deadline = add_sat(now, t->rto);
		t->rto = mul_sat(t->rto, 2);
	} else {
		t->deadline = add_sat(now, mul_sat(c->params.rto, c->params.rm));
	}
	ev->type = STUN_CLIENT_SEND;
	ev->txn = t->id;
	ev->user = t->user;
	ev->data = c->out;
	ev->len = len;
	ev->to = t->to;
	return NULL;
}

static void event_clear(struct stun_client_event *ev)
{
	memset(ev, 0, sizeof(*ev));
}

unsigned stun_client_start(struct stun_client *c, const struct stun_client_request *req,
			   uint64_t now, struct stun_client_event *ev)
{
	static const struct stun_client_request none;
	struct stun_client_txn *t = NULL;
	const char *why;

	event_clear(ev);
	if (!req)
		req = &none;
	for (size_t i = 0; !t && i < STUN_CLIENT_MAX_TXNS; i++)
		if (!c->txns[i].id)
			t = &c->txns[i];
	if (!t)
		return ev->why = "too many transactions in progress", 0;
	if (!req->to && !c->n_servers)
		return ev->why = "no STUN server configured", 0;
	if (req->username && strlen(req->username) > STUN_CLIENT_MAX_USER)
		return ev->why = "username too long", 0;
	if (req->key_len > STUN_CLIENT_MAX_KEY)
		return ev->why = "key too long", 0;

	memset(t, 0, sizeof(*t));
	if (req->to) {
		t->to = *req->to;
		t->server = -1;
	} else {
		t->server = (int)(c->preferred % c->n_servers);
		t->to = c->servers[t->server];
	}
	t->change = req->change;
	t->response_port = req->response_port;
	t->padding = req->padding;
	t->fingerprint = req->fingerprint;
	t->user = req->user;
	if ((t->has_username = req->username != NULL))
		strcpy(t->username, req->username);
	if ((t->has_key = req->key != NULL) && req->key_len) {
		memcpy(t->key, req->key, req->key_len);
		t->key_len = req->key_len;
	}
	t->servers_tried = 1;
	t->rto = c->params.rto;
	if (!new_txid(c, t))
		return ev->why = "no random bytes for a transaction id", 0;
	if (++c->next_id == 0)
		c->next_id = 1;
	t->id = c->next_id;
	if ((why = send_now(c, t, now, ev))) {
		t->id = 0;
		event_clear(ev);
		ev->why = why;
		return 0;
	}
	return t->id;
}

static void finish(struct stun_client_txn *t)
{
	t->id = 0;
}

static enum stun_client_event_type none(struct stun_client_event *ev, const char *why)
{
	ev->type = STUN_CLIENT_NONE;
	ev->why = why;
	return STUN_CLIENT_NONE;
}

static enum stun_client_event_type fail(struct stun_client_txn *t, struct stun_client_event *ev,
					const char *why)
{
	finish(t);
	ev->type = STUN_CLIENT_ERROR;
	ev->why = why;
	return STUN_CLIENT_ERROR;
}

enum stun_client_event_type stun_client_input(struct stun_client *c, const uint8_t *buf,
					      size_t len, const struct na_endpoint *from,
					      uint64_t now, struct stun_client_event *ev)
{
	struct stun_client_txn *t;
	struct stun_msg m;

	event_clear(ev);
	if (stun_decode(&m, buf, len, 0))
		return none(ev, "malformed STUN message");
	enum stun_class cls = stun_class_of(m.type);
	if (stun_method(m.type) != STUN_METHOD_BINDING || (cls != STUN_SUCCESS && cls != STUN_ERROR_RESPONSE))
		return none(ev, "not a Binding response");
	if (!(t = find_txid(c, m.txid)))
		return none(ev, "no transaction with this id");
	/* A bad fingerprint or integrity means someone else's bytes: drop them
	 * and keep waiting for the real answer (RFC 8489 sections 7.3, 9.1.4). */
	if (stun_has(&m, STUN_ATTR_FINGERPRINT) && stun_check_fingerprint(&m))
		return none(ev, "bad FINGERPRINT");
	if (t->has_key && stun_check_integrity(&m, t->key, t->key_len))
		return none(ev, "response failed MESSAGE-INTEGRITY");

	struct stun_client_result *r = &ev->result;
	ev->txn = t->id;
	ev->user = t->user;
	r->server = t->to;
	r->from = *from;
	r->at = now;
	r->rtt = now >= t->last_send ? now - t->last_send : 0;
	r->sends = t->sends;

	if (m.n_unknown_required)
		return fail(t, ev, "unknown comprehension-required attribute in response");
	if (cls == STUN_ERROR_RESPONSE) {
		if (!stun_has(&m, STUN_ATTR_ERROR_CODE))
			return fail(t, ev, "error response without ERROR-CODE");
		ev->error_code = m.error_code;
		size_t n = m.error_reason_len < sizeof(ev->error_reason) - 1 ?
			   m.error_reason_len : sizeof(ev->error_reason) - 1;
		memcpy(ev->error_reason, m.error_reason, n);
		ev->error_reason[n] = 0;
		return fail(t, ev, "error response");
	}
	/* RFC 8489 section 14.1: accept MAPPED-ADDRESS from older servers. */
	if (stun_has(&m, STUN_ATTR_XOR_MAPPED_ADDRESS))
		r->mapped = m.xor_mapped;
	else if (stun_has(&m, STUN_ATTR_MAPPED_ADDRESS))
		r->mapped = m.mapped;
	else
		return fail(t, ev, "success response without a mapped address");
	r->has_other = stun_has(&m, STUN_ATTR_OTHER_ADDRESS);
	r->other = m.other;
	r->has_origin = stun_has(&m, STUN_ATTR_RESPONSE_ORIGIN);
	r->origin = m.response_origin;

	if (t->server >= 0) {
		c->cache = *r;
		c->have_cache = true;
		c->preferred = (unsigned)t->server;
	}
	finish(t);
	ev->type = STUN_CLIENT_SUCCESS;
	return STUN_CLIENT_SUCCESS;
}

uint64_t stun_client_next_deadline(const struct stun_client *c)
{
	uint64_t d = UINT64_MAX;

	for (size_t i = 0; i < STUN_CLIENT_MAX_TXNS; i++)
		if (c->txns[i].id && c->txns[i].deadline < d)
			d = c->txns[i].deadline;
	return d;
}

enum stun_client_event_type stun_client_on_timer(struct stun_client *c, uint64_t now,
						 struct stun_client_event *ev)
{
	struct stun_client_txn *t = NULL;

	event_clear(ev);
	for (size_t i = 0; i < STUN_CLIENT_MAX_TXNS; i++) {
		struct stun_client_txn *x = &c->txns[i];
		if (x->id && x->deadline <= now && (!t || x->deadline < t->deadline))
			t = x;
	}
	if (!t)
		return STUN_CLIENT_NONE;

	if (t->sends < c->params.rc && !send_now(c, t, now, ev))
		return STUN_CLIENT_SEND;

	/* Out of sends here: the next server, as a new transaction. */
	if (t->server >= 0 && t->servers_tried < c->n_servers && new_txid(c, t)) {
		t->server = (t->server + 1) % (int)c->n_servers;
		t->to = c->servers[t->server];
		t->servers_tried++;
		t->sends = 0;
		t->rto = c->params.rto;
		if (!send_now(c, t, now, ev))
			return STUN_CLIENT_SEND;
	}

	ev->type = STUN_CLIENT_TIMEOUT;
	ev->txn = t->id;
	ev->user = t->user;
	ev->result.server = t->to;
	ev->why = "no response";
	finish(t);
	return STUN_CLIENT_TIMEOUT;
}

void stun_client_cancel(struct stun_client *c, unsigned txn)
{
	struct stun_client_txn *t = find_id(c, txn);

	if (t)
		finish(t);
}

bool stun_client_cached(const struct stun_client *c, uint64_t now,
			struct stun_client_result *r, uint64_t *age)
{
	if (!c->have_cache)
		return false;
	if (r)
		*r = c->cache;
	if (age)
		*age = now >= c->cache.at ? now - c->cache.at : 0;
	return true;
}

void stun_client_forget(struct stun_client *c)
{
	c->have_cache = false;
}
