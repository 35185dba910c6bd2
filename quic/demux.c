#include "quic/demux.h"
#include "nat/siphash.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#define QUIC_DEMUX_MIN_CAP 64
/* Smallest packet we answer with a stateless reset: the reset is one byte
 * shorter (so two endpoints that both lost state cannot loop), and must
 * still look like a short header with our CID length, a packet number and
 * a header protection sample (RFC 9000 section 10.3). */
#define QUIC_RESET_MIN_TRIGGER (1 + QUIC_CID_LEN + 22)
#define QUIC_RESET_MAX_LEN     (1 + QUIC_CID_LEN + 26)
#define QUIC_RESET_MIN_LEN     21  /* smallest stateless reset a peer may send */

#define QUIC_TOMB ((struct quic_session *)(uintptr_t)1)

struct quic_demux_slot {
	struct quic_session *s;   /* NULL: empty; QUIC_TOMB: removed */
	uint8_t len;
	uint8_t key[NGTCP2_MAX_CIDLEN];
};

struct quic_tab {
	struct quic_demux_slot *slot;
	size_t cap, used, tombs;  /* cap is a power of two */
};

struct quic_demux {
	const struct quic_config *cfg;
	bool accepting;
	size_t max_server, n_server;
	size_t max_handshakes, n_handshakes; /* server sessions not up yet */
	/* Handshakes in progress per source address, hashed into buckets: one
	 * host flooding Initials cannot take every handshake slot. */
	uint16_t src_hs[QUIC_DEMUX_SRC_BUCKETS];
	uint64_t refused;
	struct quic_tab cids;     /* our connection IDs */
	struct quic_tab tokens;   /* the peers' stateless reset tokens */
	uint64_t k0, k1;          /* SipHash key */
};

/* --- classifier (RFC 9443 section 7) --- */

enum quic_demux_class quic_demux_classify(const uint8_t *p, size_t n)
{
	static const uint8_t cookie[4] = { 0x21, 0x12, 0xa4, 0x42 };
	uint8_t b;

	if (n == 0)
		return QUIC_CLASS_OTHER;
	b = p[0];
	if (b >= 64)
		return QUIC_CLASS_QUIC;
	if (b <= 3 && n >= 20 && memcmp(p + 4, cookie, 4) == 0)
		return QUIC_CLASS_STUN;
	/* WireGuard: message type, three reserved zero bytes, and the one
	 * length each type has (initiation 148, response 92, cookie reply 64,
	 * transport data 32 or more in steps of 16). */
	if (b >= 1 && b <= 4 && n >= 4 && !p[1] && !p[2] && !p[3] &&
	    ((b == 1 && n == 148) || (b == 2 && n == 92) || (b == 3 && n == 64) ||
	     (b == 4 && n >= 32 && n % 16 == 0)))
		return QUIC_CLASS_WIREGUARD;
	/* RFC 3489 STUN has no cookie: trust the header's length field. */
	if (b <= 3 && n >= 20) {
		size_t len = (size_t)p[2] << 8 | p[3];

		if (len + 20 == n && len % 4 == 0)
			return QUIC_CLASS_STUN;
	}
	return QUIC_CLASS_OTHER;
}

const char *quic_demux_class_name(enum quic_demux_class c)
{
	switch (c) {
	case QUIC_CLASS_STUN: return "stun";
	case QUIC_CLASS_QUIC: return "quic";
	case QUIC_CLASS_WIREGUARD: return "wireguard";
	default: return "other";
	}
}

/* --- the tables --- */

static size_t quic_tab_home(const struct quic_demux *d, const struct quic_tab *t,
			    const uint8_t *key, size_t len)
{
	return (size_t)na_siphash(d->k0, d->k1, key, len) & (t->cap - 1);
}

static struct quic_demux_slot *quic_tab_find(const struct quic_demux *d,
					     const struct quic_tab *t,
					     const uint8_t *key, size_t len)
{
	size_t i = quic_tab_home(d, t, key, len);

	for (size_t probes = 0; probes < t->cap; probes++, i = (i + 1) & (t->cap - 1)) {
		struct quic_demux_slot *e = &t->slot[i];

		if (!e->s)
			return NULL;
		if (e->s != QUIC_TOMB && e->len == len && memcmp(e->key, key, len) == 0)
			return e;
	}
	return NULL;
}

static int quic_tab_resize(const struct quic_demux *d, struct quic_tab *t, size_t cap)
{
	struct quic_demux_slot *old = t->slot, *ns;
	size_t oldcap = t->cap;

	ns = calloc(cap, sizeof(*ns));
	if (!ns)
		return -1;
	t->slot = ns;
	t->cap = cap;
	t->used = t->tombs = 0;
	for (size_t i = 0; i < oldcap; i++) {
		struct quic_demux_slot *e = &old[i];
		size_t j;

		if (!e->s || e->s == QUIC_TOMB)
			continue;
		for (j = quic_tab_home(d, t, e->key, e->len); ns[j].s; j = (j + 1) & (cap - 1))
			;
		ns[j] = *e;
		t->used++;
	}
	free(old);
	return 0;
}

static int quic_tab_init(struct quic_tab *t)
{
	t->cap = QUIC_DEMUX_MIN_CAP;
	t->used = t->tombs = 0;
	t->slot = calloc(t->cap, sizeof(*t->slot));
	return t->slot ? 0 : -1;
}

/* 0 added, 1 already there, -1 out of memory or bad key. */
static int quic_tab_add(const struct quic_demux *d, struct quic_tab *t,
			const uint8_t *key, size_t len, struct quic_session *s)
{
	struct quic_demux_slot *e = NULL;
	size_t i;

	if (len == 0 || len > NGTCP2_MAX_CIDLEN || !s)
		return -1;
	if (quic_tab_find(d, t, key, len))
		return 1;
	/* Keep the load (tombstones included) under 3/4; double only when
	 * live entries need it, otherwise just sweep tombstones. */
	if ((t->used + t->tombs + 1) * 4 > t->cap * 3 &&
	    quic_tab_resize(d, t, (t->used + 1) * 2 > t->cap ? t->cap * 2 : t->cap) != 0)
		return -1;
	for (i = quic_tab_home(d, t, key, len);; i = (i + 1) & (t->cap - 1)) {
		e = &t->slot[i];
		if (!e->s || e->s == QUIC_TOMB)
			break;
	}
	if (e->s == QUIC_TOMB)
		t->tombs--;
	e->s = s;
	e->len = (uint8_t)len;
	memcpy(e->key, key, len);
	t->used++;
	return 0;
}

static void quic_tab_bury(struct quic_tab *t, struct quic_demux_slot *e)
{
	e->s = QUIC_TOMB;
	t->used--;
	t->tombs++;
}

static void quic_tab_remove(const struct quic_demux *d, struct quic_tab *t,
			    const uint8_t *key, size_t len, const struct quic_session *s)
{
	struct quic_demux_slot *e = quic_tab_find(d, t, key, len);

	if (e && e->s == s)
		quic_tab_bury(t, e);
}

static void quic_tab_forget(struct quic_tab *t, const struct quic_session *s)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i].s == s)
			quic_tab_bury(t, &t->slot[i]);
}

int quic_demux_add(struct quic_demux *d, const uint8_t *cid, size_t len,
		   struct quic_session *s)
{
	return quic_tab_add(d, &d->cids, cid, len, s);
}

void quic_demux_remove(struct quic_demux *d, const uint8_t *cid, size_t len,
		       const struct quic_session *s)
{
	quic_tab_remove(d, &d->cids, cid, len, s);
}

int quic_demux_add_token(struct quic_demux *d, const uint8_t token[16],
			 struct quic_session *s)
{
	return quic_tab_add(d, &d->tokens, token, 16, s) < 0 ? -1 : 0;
}

void quic_demux_remove_token(struct quic_demux *d, const uint8_t token[16],
			     const struct quic_session *s)
{
	quic_tab_remove(d, &d->tokens, token, 16, s);
}

void quic_demux_forget(struct quic_demux *d, const struct quic_session *s)
{
	quic_tab_forget(&d->cids, s);
	quic_tab_forget(&d->tokens, s);
}

void quic_demux_server_count(struct quic_demux *d, int delta)
{
	if (delta < 0 && d->n_server == 0)
		return;
	d->n_server = (size_t)((long)d->n_server + delta);
}

static unsigned src_bucket(const struct quic_demux *d, const struct sockaddr_storage *ss)
{
	const uint8_t *ip;
	size_t n;

	if (ss->ss_family == AF_INET6) {
		/* A /64 is one host's (or one site's) to use as it likes. */
		ip = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
		n = 8;
	} else {
		ip = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		n = 4;
	}
	return (unsigned)(na_siphash(d->k0, d->k1, ip, n) & (QUIC_DEMUX_SRC_BUCKETS - 1));
}

int quic_demux_handshake_begin(struct quic_demux *d, const struct sockaddr_storage *src)
{
	unsigned b = src_bucket(d, src);

	d->n_handshakes++;
	d->src_hs[b]++;
	return (int)b;
}

void quic_demux_handshake_end(struct quic_demux *d, int bucket)
{
	if (d->n_handshakes)
		d->n_handshakes--;
	if (bucket >= 0 && bucket < QUIC_DEMUX_SRC_BUCKETS && d->src_hs[bucket])
		d->src_hs[bucket]--;
}

void quic_demux_set_limits(struct quic_demux *d, size_t max_server, size_t max_handshakes)
{
	d->max_server = max_server;
	d->max_handshakes = max_handshakes;
}

uint64_t quic_demux_refused(const struct quic_demux *d)
{
	return d->refused;
}

struct quic_session *quic_demux_lookup(const struct quic_demux *d,
				       const uint8_t *cid, size_t len)
{
	const struct quic_demux_slot *e = quic_tab_find(d, &d->cids, cid, len);

	return e ? e->s : NULL;
}

size_t quic_demux_count(const struct quic_demux *d)
{
	return d->cids.used;
}

struct quic_demux *quic_demux_new(const struct quic_config *cfg, size_t max_server)
{
	struct quic_demux *d = calloc(1, sizeof(*d));
	uint64_t k[2];

	if (!d)
		return NULL;
	if (gnutls_rnd(GNUTLS_RND_NONCE, k, sizeof(k)) != 0 ||
	    quic_tab_init(&d->cids) != 0 || quic_tab_init(&d->tokens) != 0) {
		quic_demux_free(d);
		return NULL;
	}
	d->k0 = k[0];
	d->k1 = k[1];
	d->cfg = cfg;
	d->accepting = cfg && cfg->accept_key;
	d->max_server = max_server;
	d->max_handshakes = max_server;
	return d;
}

void quic_demux_free(struct quic_demux *d)
{
	if (!d)
		return;
	free(d->cids.slot);
	free(d->tokens.slot);
	free(d);
}

void quic_demux_set_accepting(struct quic_demux *d, bool on)
{
	d->accepting = on;
}

/* --- input --- */

static enum quic_demux_result quic_demux_version_negotiation(
	const ngtcp2_version_cid *vc, size_t len, uint8_t *out, size_t outcap,
	size_t *outlen)
{
	static const uint32_t versions[] = { NGTCP2_PROTO_VER_V1 };
	uint8_t unused;
	ngtcp2_ssize n;

	/* Only a client's first flight (padded to 1200) earns an answer, so
	 * that the answer never exceeds what provoked it. */
	if (len < NGTCP2_MAX_UDP_PAYLOAD_SIZE ||
	    gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1) != 0)
		return QUIC_DEMUX_DROP;
	n = ngtcp2_pkt_write_version_negotiation(out, outcap, unused, vc->scid,
						 vc->scidlen, vc->dcid, vc->dcidlen,
						 versions, 1);
	if (n <= 0)
		return QUIC_DEMUX_DROP;
	*outlen = (size_t)n;
	return QUIC_DEMUX_REPLY;
}

/* A short header packet for a connection we do not know, perhaps from
 * before a restart: tell the peer, with the token we would have issued for
 * that connection ID, so it stops at once instead of timing out. */
static enum quic_demux_result quic_demux_reset(const struct quic_demux *d,
					       const ngtcp2_version_cid *vc,
					       size_t len, uint8_t *out,
					       size_t outcap, size_t *outlen)
{
	uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[QUIC_RESET_MAX_LEN];
	size_t total = len - 1 < QUIC_RESET_MAX_LEN ? len - 1 : QUIC_RESET_MAX_LEN;
	ngtcp2_cid cid;
	ngtcp2_ssize n;

	if (len < QUIC_RESET_MIN_TRIGGER || !d->cfg || vc->dcidlen != QUIC_CID_LEN ||
	    outcap < total)
		return QUIC_DEMUX_DROP;
	ngtcp2_cid_init(&cid, vc->dcid, vc->dcidlen);
	if (ngtcp2_crypto_generate_stateless_reset_token(token, d->cfg->reset_secret,
							 sizeof(d->cfg->reset_secret),
							 &cid) != 0 ||
	    gnutls_rnd(GNUTLS_RND_NONCE, rnd, total - sizeof(token)) != 0)
		return QUIC_DEMUX_DROP;
	n = ngtcp2_pkt_write_stateless_reset(out, total, token, rnd, total - sizeof(token));
	if (n <= 0)
		return QUIC_DEMUX_DROP;
	*outlen = (size_t)n;
	return QUIC_DEMUX_REPLY;
}

enum quic_demux_result quic_demux_input(struct quic_demux *d,
					const uint8_t *pkt, size_t len,
					const struct quic_path *path, uint8_t ecn,
					uint64_t now, struct quic_session **sp,
					uint8_t *out, size_t outcap, size_t *outlen)
{
	ngtcp2_version_cid vc;
	struct quic_session *s;
	int rv, err;

	*sp = NULL;
	*outlen = 0;
	if (len == 0)
		return QUIC_DEMUX_DROP;
	rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, QUIC_CID_LEN);
	if (rv == NGTCP2_ERR_VERSION_NEGOTIATION)
		return quic_demux_version_negotiation(&vc, len, out, outcap, outlen);
	if (rv != 0 || vc.dcidlen == 0)
		return QUIC_DEMUX_DROP;
	s = quic_demux_lookup(d, vc.dcid, vc.dcidlen);
	if (s) {
		quic_session_read(s, pkt, len, path, ecn, now);
		*sp = s;
		return QUIC_DEMUX_SESSION;
	}
	if (!(pkt[0] & 0x80)) {
		/* Perhaps a stateless reset from a peer that lost our
		 * connection: its DCID is random, its last 16 bytes a token
		 * we were given (RFC 9000 section 10.3.1). The session
		 * checks the token (and the path) itself. */
		const struct quic_demux_slot *e = len >= QUIC_RESET_MIN_LEN ?
			quic_tab_find(d, &d->tokens, pkt + len - 16, 16) : NULL;

		if (e) {
			quic_session_read(e->s, pkt, len, path, ecn, now);
			*sp = e->s;
			return QUIC_DEMUX_SESSION;
		}
		return quic_demux_reset(d, &vc, len, out, outcap, outlen);
	}
	if (vc.version == 0)
		return QUIC_DEMUX_DROP;  /* never answer version negotiation */
	if (vc.version != NGTCP2_PROTO_VER_V1)
		/* ngtcp2 also speaks drafts and v2-draft; we speak v1 only. */
		return quic_demux_version_negotiation(&vc, len, out, outcap, outlen);
	if (!d->accepting || !d->cfg)
		return QUIC_DEMUX_DROP;
	if (d->n_server >= d->max_server || d->n_handshakes >= d->max_handshakes ||
	    d->src_hs[src_bucket(d, &path->remote)] >= QUIC_DEMUX_MAX_HS_PER_SOURCE) {
		d->refused++;
		return QUIC_DEMUX_DROP;
	}
	s = quic_session_server_new(d->cfg, d, pkt, len, path, now, &err);
	if (!s)
		return QUIC_DEMUX_DROP;   /* not an acceptable client Initial */
	quic_session_read(s, pkt, len, path, ecn, now);
	if (quic_session_is_dead(s)) {
		quic_session_free(s);
		return QUIC_DEMUX_DROP;
	}
	*sp = s;
	return QUIC_DEMUX_ACCEPTED;
}
