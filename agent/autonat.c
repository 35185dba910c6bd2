/* The reachability of our addresses: nat/autonat's client, driven from the
 * loop and asking the rendezvous. See agent.h for the API other modules
 * use and nat/autonat.h for the rules.
 *
 * What we watch ourselves: the reflexive address in the rendezvous's last
 * REGISTERED (a new one replaces the old), discovery's mapped address, and
 * the host's own addresses at our port (pathmgr_host_addrs, again when
 * hostwatch sees them change). Requests go on the rendezvous session only
 * while it is registered; the dial-backs arrive on the shared socket,
 * where agent.c's STUN demux hands them to autonat_input.
 *
 * Who is asked: the rendezvous while it is registered, unless it said it
 * cannot dial (no AlternateListen; asked again after each registration);
 * else the first peer whose NATINFO offers the service (AutoNATService =
 * true) and whose session is on a direct path. A request's answer counts
 * only from the server it went to; a server's "unavailable" sends the
 * next request to another, and addresses that waited for a server are
 * asked about at once when one turns up.
 *
 * Timer: one, at autonat_client_deadline: the next request due (only while
 * there is a server to ask), the DIALRESP's timeout, the end of the
 * dial-back wait. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "agent/agent.h"
#include "agent/ctl.h"
#include "agent/log.h"
#include "agent/pathmgr.h"
#include "agent/rdvclient.h"

#define MAX_SUBS  4
#define MAX_HOSTS 8

struct autonat {
	struct agent *a;
	struct autonat_client c;
	struct loop_timer timer;
	struct na_endpoint srflx, mapped;	/* what we watch for the rendezvous, discovery */
	bool have_srflx, have_mapped;
	struct na_endpoint hosts[MAX_HOSTS];
	unsigned n_hosts;
	struct { autonat_change_fn fn; void *arg; } subs[MAX_SUBS];
	unsigned n_subs;
	bool said_unavailable;			/* logged once */
	bool rdv_unavailable;			/* the rendezvous cannot dial */
	bool had_server;			/* at the last kick */
	/* Servers, as VIA_RENDEZVOUS or a peer's idx + 1: the outstanding
	 * request's, and per address slot the last to answer about it. */
	uint32_t req_via;
	uint32_t via[AUTONAT_MAX_ADDRS];
};

#define VIA_RENDEZVOUS 0

static const char *const owner_names[] = {
	[AUTONAT_BY_RENDEZVOUS] = "rendezvous", [AUTONAT_BY_DISCOVERY] = "discovery",
	[AUTONAT_BY_HOST] = "host", [AUTONAT_BY_PORTMAP] = "portmap",
	[AUTONAT_BY_OTHER] = "other",
};

static uint32_t bit(enum autonat_owner who)
{
	return 1u << who;
}

/* Who to ask now (see the top); false if nobody can. */
static bool pick_server(struct autonat *an, struct na_endpoint *at, uint32_t *via)
{
	struct agent *a = an->a;

	if (rdvclient_uplink(a) && !an->rdv_unavailable) {
		*at = a->cfg->rendezvous;
		*via = VIA_RENDEZVOUS;
		return true;
	}
	for (unsigned i = 0; i < a->n_peers; i++)
		if (pathmgr_autonat_server(a->peers[i], at)) {
			*via = a->peers[i]->idx + 1;
			return true;
		}
	return false;
}

static const char *server_name(struct agent *a, uint32_t via, char *buf, size_t cap)
{
	struct peer *p = via == VIA_RENDEZVOUS ? NULL : peer_by_idx(a, via - 1);

	if (via == VIA_RENDEZVOUS)
		return "the rendezvous";
	snprintf(buf, cap, "peer %s", p ? p->name : "(gone)");
	return buf;
}

/* The server that last answered about ep. */
static uint32_t via_of(const struct autonat *an, const struct na_endpoint *ep)
{
	const struct autonat_addr *ad = autonat_client_find(&an->c, ep);

	return ad ? an->via[ad - an->c.addrs] : VIA_RENDEZVOUS;
}

/* Logs what the client decided and tells the subscribers of changes. */
static void take_events(struct autonat *an)
{
	const char *name = an->a->cfg->name;
	struct autonat_event ev;
	char ep[NA_ENDPOINT_STRLEN], who[32];
	uint32_t via;

	while (autonat_client_event(&an->c, &ev)) {
		na_endpoint_str(&ev.ep, ep, sizeof(ep));
		switch (ev.kind) {
		case AUTONAT_EV_RESULT:
			log_debug("%s: reachability of %s: the dial-back %s (%u of the last %u "
				  "arrived; %s)", name, ep, ev.arrived ? "arrived" : "did not arrive",
				  ev.agree_ok, ev.agree_n, autonat_reach_name(ev.reach));
			break;
		case AUTONAT_EV_REFUSED:
			via = via_of(an, &ev.ep);
			if (ev.status == RDVMSG_DIAL_UNAVAILABLE && via == VIA_RENDEZVOUS &&
			    !an->said_unavailable) {
				an->said_unavailable = true;
				log_info("%s: the rendezvous cannot check our reachability: it has "
					 "no second address (AlternateListen); peers with "
					 "AutoNATService = true are asked instead", name);
			} else if (ev.status == RDVMSG_DIAL_UNAVAILABLE && via != VIA_RENDEZVOUS) {
				log_info("%s: %s does not check reachability (no AutoNATService)",
					 name, server_name(an->a, via, who, sizeof(who)));
			}
			log_debug("%s: reachability of %s: %s did not dial: %s", name, ep,
				  server_name(an->a, via, who, sizeof(who)),
				  rdvmsg_dial_status_name(ev.status));
			break;
		case AUTONAT_EV_CHANGED:
			if (ev.reach == AUTONAT_PUBLIC)
				log_info("%s: %s is publicly reachable (%u of %u dial-backs arrived)",
					 name, ep, ev.agree_ok, ev.agree_n);
			else
				log_info("%s: %s is not reachable from outside (%u of %u dial-backs "
					 "arrived)", name, ep, ev.agree_ok, ev.agree_n);
			for (unsigned i = 0; i < an->n_subs; i++)
				an->subs[i].fn(an->subs[i].arg, &ev.ep, ev.reach, ev.was);
			break;
		}
	}
}

/* Sends a request if one is due and a server can take it; takes the
 * events; re-arms the timer. Call after anything that changes the client
 * or the servers. */
static void kick(struct autonat *an)
{
	struct agent *a = an->a;
	struct na_endpoint server;
	uint32_t via = VIA_RENDEZVOUS;
	bool have = pick_server(an, &server, &via), sent;
	uint64_t now = loop_now(), nonce;
	static struct rdvmsg m;
	char who[32];

	/* What was refused for want of a server, or waited for one, goes now. */
	if (!have) {
		an->had_server = false;
	} else if (!an->had_server && !an->c.req.active) {
		autonat_client_recheck(&an->c, NULL, now);
		an->had_server = true;
	}
	memset(&m, 0, sizeof(m));
	m.type = RDVMSG_DIALREQ;
	if (have && gnutls_rnd(GNUTLS_RND_NONCE, &nonce, sizeof(nonce)) == 0 &&
	    autonat_client_request(&an->c, now, nonce, &server, &m.dialreq)) {
		log_debug("%s: reachability: asking %s to dial back %u address%s", a->cfg->name,
			  server_name(a, via, who, sizeof(who)), m.dialreq.count,
			  m.dialreq.count == 1 ? "" : "es");
		an->req_via = via;
		sent = via == VIA_RENDEZVOUS ? rdvclient_send(a, &m)
					     : peerctl_send(peer_by_idx(a, via - 1), &m);
		if (!sent)
			autonat_client_abandon(&an->c, now);
	}
	take_events(an);
	loop_timer_set(a->loop, &an->timer, autonat_client_deadline(&an->c, have));
}

static void on_timer(void *arg, uint64_t now)
{
	struct autonat *an = arg;

	autonat_client_tick(&an->c, now);
	kick(an);
}

/* The agent's own watches: one address per owner, replaced when it moves. */
static void replace(struct autonat *an, struct na_endpoint *cur, bool *have,
		    const struct na_endpoint *ep, enum autonat_owner who)
{
	if (*have && na_endpoint_equal(cur, ep))
		return;
	if (*have)
		autonat_client_unwatch(&an->c, cur, bit(who));
	*have = autonat_client_watch(&an->c, ep, bit(who), loop_now()) >= 0;
	*cur = *ep;
}

int autonat_open(struct agent *a)
{
	struct autonat *an;

	/* Something to ask: the rendezvous, or peers that may offer it. */
	if (!a->cfg->has_rendezvous && !a->cfg->has_mode)
		return 0;
	an = calloc(1, sizeof(*an));
	if (!an)
		return -ENOMEM;
	an->a = a;
	autonat_client_init(&an->c);
	loop_timer_init(&an->timer, on_timer, an);
	a->autonat = an;
	autonat_hosts_changed(a);
	return 0;
}

void autonat_close(struct agent *a)
{
	struct autonat *an = a->autonat;

	if (!an)
		return;
	loop_timer_cancel(a->loop, &an->timer);
	free(an);
	a->autonat = NULL;
}

int autonat_watch(struct agent *a, const struct na_endpoint *ep, enum autonat_owner who)
{
	struct autonat *an = a->autonat;

	if (!an)
		return -EOPNOTSUPP;
	if (!ep->port || (ep->ip.family != AF_INET && ep->ip.family != AF_INET6) ||
	    who > AUTONAT_BY_OTHER)
		return -EINVAL;
	if (autonat_client_watch(&an->c, ep, bit(who), loop_now()) < 0)
		return -ENOSPC;
	kick(an);
	return 0;
}

void autonat_unwatch(struct agent *a, const struct na_endpoint *ep, enum autonat_owner who)
{
	struct autonat *an = a->autonat;

	if (!an || who > AUTONAT_BY_OTHER)
		return;
	autonat_client_unwatch(&an->c, ep, bit(who));
	kick(an);
}

enum autonat_reach autonat_reach(struct agent *a, const struct na_endpoint *ep)
{
	const struct autonat_addr *ad = a->autonat ? autonat_client_find(&a->autonat->c, ep) : NULL;

	return ad ? (enum autonat_reach)ad->reach : AUTONAT_UNKNOWN;
}

int autonat_on_change(struct agent *a, autonat_change_fn fn, void *arg)
{
	struct autonat *an = a->autonat;

	if (!an)
		return -EOPNOTSUPP;
	if (an->n_subs == MAX_SUBS)
		return -ENOSPC;
	an->subs[an->n_subs].fn = fn;
	an->subs[an->n_subs].arg = arg;
	an->n_subs++;
	return 0;
}

void autonat_recheck(struct agent *a, const struct na_endpoint *ep)
{
	if (!a->autonat)
		return;
	autonat_client_recheck(&a->autonat->c, ep, loop_now());
	kick(a->autonat);
}

/* ---- hooks ---- */

void autonat_registered(struct agent *a, const struct na_endpoint *srflx)
{
	struct autonat *an = a->autonat;

	if (!an)
		return;
	replace(an, &an->srflx, &an->have_srflx, srflx, AUTONAT_BY_RENDEZVOUS);
	an->rdv_unavailable = false; /* it may have restarted with AlternateListen */
	kick(an); /* what waited for a registration goes now */
}

void autonat_rdv_down(struct agent *a)
{
	struct autonat *an = a->autonat;

	if (!an)
		return;
	if (an->c.req.active && an->req_via == VIA_RENDEZVOUS)
		autonat_client_abandon(&an->c, loop_now());
	kick(an);
}

void autonat_discovered(struct agent *a)
{
	struct autonat *an = a->autonat;

	if (!an || !a->have_report || !a->report.has_mapped)
		return;
	replace(an, &an->mapped, &an->have_mapped, &a->report.mapped, AUTONAT_BY_DISCOVERY);
	kick(an);
}

void autonat_hosts_changed(struct agent *a)
{
	struct autonat *an = a->autonat;
	struct na_endpoint now[MAX_HOSTS];
	unsigned n, kept = 0;
	bool changed;

	if (!an)
		return;
	n = pathmgr_host_addrs(a, now, MAX_HOSTS);
	changed = n != an->n_hosts;
	for (unsigned i = 0; i < an->n_hosts; i++) {
		bool still = false;

		for (unsigned j = 0; j < n && !still; j++)
			still = na_endpoint_equal(&an->hosts[i], &now[j]);
		if (!still) {
			autonat_client_unwatch(&an->c, &an->hosts[i], bit(AUTONAT_BY_HOST));
			changed = true;
		}
	}
	for (unsigned j = 0; j < n; j++)
		if (autonat_client_watch(&an->c, &now[j], bit(AUTONAT_BY_HOST), loop_now()) >= 0)
			now[kept++] = now[j];
	memcpy(an->hosts, now, sizeof(now[0]) * kept);
	an->n_hosts = kept;
	/* An address came or went: the NAT in front may be another one now. */
	if (changed)
		autonat_client_recheck(&an->c, NULL, loop_now());
	kick(an);
}

/* A DIALRESP from via: counted if it answers the request we sent there. */
static void dialresp(struct autonat *an, uint32_t via, const struct rdvmsg_dialresp *m)
{
	struct agent *a = an->a;
	struct autonat_req req = an->c.req;
	bool unavailable = false;
	char who[32];

	if (!req.active || an->req_via != via || !autonat_client_response(&an->c, m, loop_now())) {
		log_debug("%s: reachability: a DIALRESP from %s that answers nothing we asked it; "
			  "ignored", a->cfg->name, server_name(a, via, who, sizeof(who)));
		return;
	}
	for (unsigned i = 0; i < req.count; i++) {
		an->via[req.slot[i]] = via;
		unavailable |= m->status[i] == RDVMSG_DIAL_UNAVAILABLE;
	}
	/* It cannot dial at all: ask someone else from now on. */
	if (unavailable && via == VIA_RENDEZVOUS)
		an->rdv_unavailable = true;
	else if (unavailable)
		pathmgr_autonat_refused(peer_by_idx(a, via - 1));
	if (unavailable)
		an->had_server = false;
}

void autonat_dialresp(struct agent *a, const struct rdvmsg_dialresp *m)
{
	if (!a->autonat)
		return;
	dialresp(a->autonat, VIA_RENDEZVOUS, m);
	kick(a->autonat);
}

void autonat_peer_dialresp(struct peer *p, const struct rdvmsg_dialresp *m)
{
	if (!p->a->autonat)
		return;
	dialresp(p->a->autonat, p->idx + 1, m);
	kick(p->a->autonat);
}

void autonat_peer_down(struct peer *p)
{
	struct autonat *an = p->a->autonat;

	if (!an)
		return;
	if (an->c.req.active && an->req_via == p->idx + 1)
		autonat_client_abandon(&an->c, loop_now());
	kick(an);
}

void autonat_servers_changed(struct agent *a)
{
	if (a->autonat)
		kick(a->autonat);
}

bool autonat_input(struct agent *a, const uint8_t *buf, size_t len,
		   const struct na_endpoint *from)
{
	struct autonat *an = a->autonat;
	uint64_t nonce;
	uint8_t idx;

	if (!an || !autonat_dialback_parse(buf, len, &nonce, &idx))
		return false;
	if (!autonat_client_dialback(&an->c, nonce, idx, from, loop_now())) {
		char f[NA_ENDPOINT_STRLEN];

		log_debug("%s: reachability: a dial-back from %s for no request of ours; dropped",
			  a->cfg->name, na_endpoint_str(from, f, sizeof(f)));
		return true;
	}
	kick(an);
	return true;
}

/* ---- status ---- */

static const char *refusal_word(uint8_t status)
{
	switch (status) {
	case RDVMSG_DIAL_NOT_YOURS:	return "not-ours";
	case RDVMSG_DIAL_PRIVATE:	return "private";
	case RDVMSG_DIAL_RATE_LIMITED:	return "rate-limited";
	case RDVMSG_DIAL_UNAVAILABLE:	return "unavailable";
	}
	return "?";
}

void autonat_status(struct agent *a, struct ctl_out *out, uint64_t now)
{
	struct autonat *an = a->autonat;

	if (!an)
		return;
	for (int i = 0; i < AUTONAT_MAX_ADDRS; i++) {
		const struct autonat_addr *ad = &an->c.addrs[i];
		char ep[NA_ENDPOINT_STRLEN], line[256];
		unsigned ok, n;
		int len;

		if (!ad->owners)
			continue;
		autonat_addr_agreement(ad, &ok, &n);
		/* "EP STATE arrived=OK/N [checked_ms=MS] [refused=WORD asked_ms=MS]
		 * [via=SERVER] by=OWNER,...": natctl_show.c parses it. One ctl_printf, so that
		 * a full reply never cuts the line. */
		len = snprintf(line, sizeof(line), "%s %s arrived=%u/%u",
			       na_endpoint_str(&ad->ep, ep, sizeof(ep)),
			       autonat_reach_name((enum autonat_reach)ad->reach), ok, n);
		if (ad->checked)
			len += snprintf(line + len, sizeof(line) - (size_t)len, " checked_ms=%" PRIu64,
					(now - ad->checked) / 1000000);
		if (ad->refused != AUTONAT_NO_REFUSAL)
			len += snprintf(line + len, sizeof(line) - (size_t)len,
					" refused=%s asked_ms=%" PRIu64, refusal_word(ad->refused),
					(now - ad->answered) / 1000000);
		if (ad->checked || ad->refused != AUTONAT_NO_REFUSAL) {
			uint32_t via = an->via[i];
			const struct peer *p = via == VIA_RENDEZVOUS ? NULL : peer_by_idx(a, via - 1);

			len += snprintf(line + len, sizeof(line) - (size_t)len, " via=%s%s",
					via == VIA_RENDEZVOUS ? "rendezvous" : "peer:",
					via == VIA_RENDEZVOUS ? "" : p ? p->name : "gone");
		}
		len += snprintf(line + len, sizeof(line) - (size_t)len, " by=");
		for (unsigned w = 0, any = 0; w <= AUTONAT_BY_OTHER; w++)
			if (ad->owners & bit(w))
				len += snprintf(line + len, sizeof(line) - (size_t)len, "%s%s",
						any++ ? "," : "", owner_names[w]);
		ctl_printf(out, "reachability=%s\n", line);
	}
}
