/* The difference between two configurations: see confdiff.h. */
#include "agent/confdiff.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_SHOWN 8 /* prefixes named in a line; the rest are counted */

bool confdiff_has_prefix(const struct na_prefix *list, unsigned n, const struct na_prefix *p)
{
	for (unsigned i = 0; i < n; i++)
		if (list[i].len == p->len && na_ip_equal(&list[i].ip, &p->ip))
			return true;
	return false;
}

/* ---- [Interface] and [Rendezvous] ---- */

static bool same_ep(bool has_a, const struct na_endpoint *a, bool has_b,
		    const struct na_endpoint *b)
{
	return has_a == has_b && (!has_a || na_endpoint_equal(a, b));
}

static bool same_eps(const struct na_endpoint *a, unsigned na, const struct na_endpoint *b,
		     unsigned nb)
{
	if (na != nb)
		return false;
	for (unsigned i = 0; i < na; i++)
		if (!na_endpoint_equal(&a[i], &b[i]))
			return false;
	return true;
}

static bool same_prefixes_in_order(const struct na_prefix *a, unsigned na,
				   const struct na_prefix *b, unsigned nb)
{
	if (na != nb)
		return false;
	for (unsigned i = 0; i < na; i++)
		if (a[i].len != b[i].len || !na_ip_equal(&a[i].ip, &b[i].ip))
			return false;
	return true;
}

static void refuse(struct confdiff *d, bool same, const char *what)
{
	if (!same && d->n_refused < CONFDIFF_MAX_REFUSED)
		d->refused[d->n_refused++] = what;
}

static void diff_interface(struct confdiff *d, const struct config *o, const struct config *n)
{
	refuse(d, o->has_private_key == n->has_private_key &&
		  !memcmp(o->private_key, n->private_key, KEY_LEN), "PrivateKey changed");
	refuse(d, o->listen_port == n->listen_port, "ListenPort changed");
	refuse(d, o->has_mode == n->has_mode && (!o->has_mode || o->mode == n->mode),
	       "Mode changed");
	refuse(d, same_prefixes_in_order(o->addresses, o->n_addresses, n->addresses,
					 n->n_addresses), "Address changed");
	refuse(d, o->mtu == n->mtu, "MTU changed");
	refuse(d, same_ep(o->has_rendezvous, &o->rendezvous, n->has_rendezvous, &n->rendezvous),
	       "Rendezvous changed");
	refuse(d, o->has_rendezvous_key == n->has_rendezvous_key &&
		  (!o->has_rendezvous_key || !memcmp(o->rendezvous_key, n->rendezvous_key, KEY_LEN)),
	       "RendezvousKey changed");
	refuse(d, same_eps(o->stun, o->n_stun, n->stun, n->n_stun), "STUN changed");
	refuse(d, o->n_portmap == n->n_portmap &&
		  !memcmp(o->portmap, n->portmap, o->n_portmap * sizeof(*o->portmap)),
	       "PortMapping changed");
	refuse(d, same_ep(o->has_forward_to, &o->forward_to, n->has_forward_to, &n->forward_to),
	       "ForwardTo changed");
	refuse(d, o->autonat_service == n->autonat_service, "AutoNATService changed");
	refuse(d, o->idle_timeout == n->idle_timeout, "IdleTimeout changed");
}

static void diff_rendezvous(struct confdiff *d, const struct config_rendezvous *o,
			    const struct config_rendezvous *n)
{
	if (o->present != n->present) {
		refuse(d, false, n->present ? "[Rendezvous] added" : "[Rendezvous] removed");
		return;
	}
	if (!o->present)
		return;
	refuse(d, same_ep(o->has_listen, &o->listen, n->has_listen, &n->listen),
	       "[Rendezvous] Listen changed");
	refuse(d, same_ep(o->has_alternate, &o->alternate, n->has_alternate, &n->alternate),
	       "[Rendezvous] AlternateListen changed");
	refuse(d, o->max_peers == n->max_peers, "[Rendezvous] MaxPeers changed");
	refuse(d, o->message_rate == n->message_rate, "[Rendezvous] MessageRate changed");
	refuse(d, o->relay_rate == n->relay_rate, "[Rendezvous] RelayRate changed");
	refuse(d, o->relay_rate_total == n->relay_rate_total, "[Rendezvous] RelayRateTotal changed");
}

/* ---- peers ---- */

static bool same_allowed(const struct config_peer *a, const struct config_peer *b)
{
	for (unsigned i = 0; i < a->n_allowed_ips; i++)
		if (!confdiff_has_prefix(b->allowed_ips, b->n_allowed_ips, &a->allowed_ips[i]))
			return false;
	for (unsigned i = 0; i < b->n_allowed_ips; i++)
		if (!confdiff_has_prefix(a->allowed_ips, a->n_allowed_ips, &b->allowed_ips[i]))
			return false;
	return true;
}

static uint32_t peer_changes(const struct config_peer *o, const struct config_peer *n)
{
	uint32_t c = 0;

	if (!same_allowed(o, n))
		c |= CONFDIFF_ALLOWED_IPS;
	if (!same_ep(o->has_endpoint, &o->endpoint, n->has_endpoint, &n->endpoint))
		c |= CONFDIFF_ENDPOINT;
	if (o->has_persistent_keepalive != n->has_persistent_keepalive ||
	    (o->has_persistent_keepalive && o->persistent_keepalive != n->persistent_keepalive))
		c |= CONFDIFF_KEEPALIVE;
	if (!same_ep(o->has_local_endpoint, &o->local_endpoint, n->has_local_endpoint,
		     &n->local_endpoint))
		c |= CONFDIFF_LOCAL_ENDPOINT;
	return c;
}

static int by_key(const void *a, const void *b, void *arg)
{
	const struct config_peer *peers = arg;

	return memcmp(peers[*(const unsigned *)a].public_key, peers[*(const unsigned *)b].public_key,
		      KEY_LEN);
}

/* The index in old of the peer with key, by binary search over order (old's
 * indices sorted by key); -1 if none. */
static int find_old(const struct config *old, const unsigned *order, const uint8_t *key)
{
	unsigned lo = 0, hi = old->n_peers;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		int cmp = memcmp(old->peers[order[mid]].public_key, key, KEY_LEN);

		if (!cmp)
			return (int)order[mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int confdiff_compute(struct confdiff *d, const struct config *old, const struct config *new)
{
	unsigned *order = calloc(old->n_peers + 1, sizeof(*order));
	bool *kept = calloc(old->n_peers + 1, sizeof(*kept));

	memset(d, 0, sizeof(*d));
	d->peers = calloc(old->n_peers + new->n_peers + 1, sizeof(*d->peers));
	if (!order || !kept || !d->peers) {
		free(order);
		free(kept);
		confdiff_free(d);
		return -ENOMEM;
	}
	diff_interface(d, old, new);
	diff_rendezvous(d, &old->rdv, &new->rdv);
	/* Thousands of peers on each side: sort once, not n x m. */
	for (unsigned i = 0; i < old->n_peers; i++)
		order[i] = i;
	qsort_r(order, old->n_peers, sizeof(*order), by_key, old->peers);
	for (unsigned i = 0; i < new->n_peers; i++) {
		const struct config_peer *n = &new->peers[i];
		int j = find_old(old, order, n->public_key);
		struct confdiff_peer *e = &d->peers[d->n_peers++];

		e->new = n;
		if (j < 0) {
			d->n_added++;
			continue;
		}
		kept[j] = true;
		e->old = &old->peers[j];
		e->changed = peer_changes(e->old, n);
		d->n_changed += e->changed != 0;
	}
	for (unsigned j = 0; j < old->n_peers; j++) {
		if (kept[j])
			continue;
		d->peers[d->n_peers++].old = &old->peers[j];
		d->n_removed++;
	}
	free(order);
	free(kept);
	return 0;
}

void confdiff_free(struct confdiff *d)
{
	free(d->peers);
	d->peers = NULL;
	d->n_peers = 0;
}

bool confdiff_peers_differ(const struct confdiff *d)
{
	return d->n_added || d->n_removed || d->n_changed;
}

/* ---- the report ---- */

/* A line being built; long ones are cut, never overrun. */
struct line {
	char buf[1024];
	size_t n;
};

static void add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (l->n >= sizeof(l->buf) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->n, sizeof(l->buf) - l->n, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->n += (size_t)n < sizeof(l->buf) - l->n ? (size_t)n : sizeof(l->buf) - 1 - l->n;
}

/* "added 10.88.0.0/24, 10.89.0.0/24": the prefixes of a not in b. */
static void prefixes_not_in(struct line *l, const char *verb, const struct config_peer *a,
			    const struct config_peer *b, bool *any)
{
	unsigned shown = 0, more = 0;
	char s[NA_PREFIX_STRLEN];

	for (unsigned i = 0; i < a->n_allowed_ips; i++) {
		const struct na_prefix *p = &a->allowed_ips[i];

		if (confdiff_has_prefix(b->allowed_ips, b->n_allowed_ips, p) ||
		    confdiff_has_prefix(a->allowed_ips, i, p))
			continue;
		if (shown == LIST_SHOWN) {
			more++;
			continue;
		}
		add(l, "%s%s%s", shown ? ", " : *any ? "; " : "", shown ? "" : verb,
		    na_prefix_str(p, s, sizeof(s)));
		shown++;
	}
	if (more)
		add(l, " and %u more", more);
	*any = *any || shown;
}

static const char *ep_or_none(bool has, const struct na_endpoint *ep, char *buf, size_t len)
{
	return has ? na_endpoint_str(ep, buf, len) : "none";
}

static const char *keepalive_str(const struct config_peer *p, char *buf, size_t len)
{
	if (!p->has_persistent_keepalive)
		return "auto";
	if (!p->persistent_keepalive)
		return "off";
	snprintf(buf, len, "%u", p->persistent_keepalive);
	return buf;
}

static void describe_peer(const struct confdiff_peer *e, confdiff_line_fn fn, void *arg)
{
	const struct config_peer *o = e->old, *n = e->new;
	char key[KEY_B64_LEN], a[NA_ENDPOINT_STRLEN], b[NA_ENDPOINT_STRLEN];
	struct line l = { .n = 0 };
	bool any = false;

	key_to_base64(key, (n ? n : o)->public_key);
	if (!o || !n) {
		add(&l, "peer %s %s", key, o ? "removed" : "added");
		fn(arg, false, l.buf);
		return;
	}
	if (e->changed & CONFDIFF_ALLOWED_IPS) {
		add(&l, "peer %s: AllowedIPs changed (", key);
		prefixes_not_in(&l, "added ", n, o, &any);
		prefixes_not_in(&l, "removed ", o, n, &any);
		add(&l, ")");
		fn(arg, false, l.buf);
	}
	if (e->changed & CONFDIFF_ENDPOINT) {
		l.n = 0;
		add(&l, "peer %s: Endpoint changed (%s -> %s)", key,
		    ep_or_none(o->has_endpoint, &o->endpoint, a, sizeof(a)),
		    ep_or_none(n->has_endpoint, &n->endpoint, b, sizeof(b)));
		fn(arg, false, l.buf);
	}
	if (e->changed & CONFDIFF_KEEPALIVE) {
		l.n = 0;
		add(&l, "peer %s: PersistentKeepalive changed (%s -> %s)", key,
		    keepalive_str(o, a, sizeof(a)), keepalive_str(n, b, sizeof(b)));
		fn(arg, false, l.buf);
	}
	if (e->changed & CONFDIFF_LOCAL_ENDPOINT) {
		l.n = 0;
		add(&l, "peer %s: LocalEndpoint changed (%s -> %s)", key,
		    ep_or_none(o->has_local_endpoint, &o->local_endpoint, a, sizeof(a)),
		    ep_or_none(n->has_local_endpoint, &n->local_endpoint, b, sizeof(b)));
		fn(arg, false, l.buf);
	}
}

void confdiff_describe(const struct confdiff *d, confdiff_line_fn fn, void *arg)
{
	char line[128];

	for (unsigned i = 0; i < d->n_refused; i++) {
		snprintf(line, sizeof(line), "%s: restart natagent to apply it", d->refused[i]);
		fn(arg, true, line);
	}
	/* Removed first, as they are applied: a key that moved to another
	 * peer reads in the order it happened. */
	for (unsigned i = 0; i < d->n_peers; i++)
		if (!d->peers[i].new)
			describe_peer(&d->peers[i], fn, arg);
	for (unsigned i = 0; i < d->n_peers; i++)
		if (d->peers[i].new && (!d->peers[i].old || d->peers[i].changed))
			describe_peer(&d->peers[i], fn, arg);
}
