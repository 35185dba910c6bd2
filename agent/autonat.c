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
 * Timer: one, at autonat_client_deadline: the next request due (only while
 * registered), the DIALRESP's timeout, the end of the dial-back wait. */
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
};

static const char *const owner_names[] = {
	[AUTONAT_BY_RENDEZVOUS] = "rendezvous", [AUTONAT_BY_DISCOVERY] = "discovery",
	[AUTONAT_BY_HOST] = "host", [AUTONAT_BY_PORTMAP] = "portmap",
	[AUTONAT_BY_OTHER] = "other",
};

static uint32_t bit(enum autonat_owner who)
{
	return 1u << who;
}

/* Logs what the client decided and tells the subscribers of changes. */
static void take_events(struct autonat *an)
{
	const char *name = an->a->cfg->name;
	struct autonat_event ev;
	char ep[NA_ENDPOINT_STRLEN];

	while (autonat_client_event(&an->c, &ev)) {
		na_endpoint_str(&ev.ep, ep, sizeof(ep));
		switch (ev.kind) {
		case AUTONAT_EV_RESULT:
			log_debug("%s: reachability of %s: the dial-back %s (%u of the last %u "
				  "arrived; %s)", name, ep, ev.arrived ? "arrived" : "did not arrive",
				  ev.agree_ok, ev.agree_n, autonat_reach_name(ev.reach));
			break;
		case AUTONAT_EV_REFUSED:
			if (ev.status == RDVMSG_DIAL_UNAVAILABLE && !an->said_unavailable) {
				an->said_unavailable = true;
				log_info("%s: the rendezvous cannot check our reachability: it has "
					 "no second address (AlternateListen)", name);
			}
			log_debug("%s: reachability of %s: the rendezvous did not dial: %s", name,
				  ep, rdvmsg_dial_status_name(ev.status));
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

/* Sends a request if one is due and the rendezvous can take it; takes
 * the events; re-arms the timer. Call after anything that changes the
 * client. */
static void kick(struct autonat *an)
{
	struct agent *a = an->a;
	bool up = rdvclient_uplink(a) != NULL;
	uint64_t now = loop_now(), nonce;
	static struct rdvmsg m;

	memset(&m, 0, sizeof(m));
	m.type = RDVMSG_DIALREQ;
	if (up && gnutls_rnd(GNUTLS_RND_NONCE, &nonce, sizeof(nonce)) == 0 &&
	    autonat_client_request(&an->c, now, nonce, &a->cfg->rendezvous, &m.dialreq)) {
		log_debug("%s: reachability: asking the rendezvous to dial back %u address%s",
			  a->cfg->name, m.dialreq.count, m.dialreq.count == 1 ? "" : "es");
		if (!rdvclient_send(a, &m))
			autonat_client_abandon(&an->c, now);
	}
	take_events(an);
	loop_timer_set(a->loop, &an->timer, autonat_client_deadline(&an->c, up));
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

	if (!a->cfg->has_rendezvous)
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
	kick(an); /* what waited for a registration goes now */
}

void autonat_rdv_down(struct agent *a)
{
	struct autonat *an = a->autonat;

	if (!an)
		return;
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

void autonat_dialresp(struct agent *a, const struct rdvmsg_dialresp *m)
{
	struct autonat *an = a->autonat;

	if (!an)
		return;
	if (!autonat_client_response(&an->c, m, loop_now()))
		log_debug("%s: reachability: a DIALRESP that answers nothing we asked; ignored",
			  a->cfg->name);
	kick(an);
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
		 * by=OWNER,...": natctl_show.c parses it. One ctl_printf, so that
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
		len += snprintf(line + len, sizeof(line) - (size_t)len, " by=");
		for (unsigned w = 0, any = 0; w <= AUTONAT_BY_OTHER; w++)
			if (ad->owners & bit(w))
				len += snprintf(line + len, sizeof(line) - (size_t)len, "%s%s",
						any++ ? "," : "", owner_names[w]);
		ctl_printf(out, "reachability=%s\n", line);
	}
}
