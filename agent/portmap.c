/* Port mapping: which protocol's mapping is kept, and what the rest of the
 * agent learns of it (see portmap.h for the whole picture and the timers). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/ctl.h"
#include "agent/log.h"
#include "agent/natctl_fmt.h"
#include "agent/pathmgr.h"
#include "agent/portmap.h"

#define RETRY_MIN (60ull * 1000000000ull)
#define RETRY_MAX (15ull * 60 * 1000000000ull)

const char *pmap_state_name(enum pmap_state s)
{
	switch (s) {
	case PMAP_IDLE: return "idle";
	case PMAP_TRYING: return "trying";
	case PMAP_MAPPED: return "mapped";
	case PMAP_FAILED: return "failed";
	}
	return "?";
}

static bool enabled(const struct config *cfg, enum portmap_proto p)
{
	for (unsigned i = 0; i < cfg->n_portmap; i++)
		if (cfg->portmap[i] == p)
			return true;
	return false;
}

static bool pmp_enabled(const struct config *cfg)
{
	return enabled(cfg, PORTMAP_PCP) || enabled(cfg, PORTMAP_NATPMP);
}

static void start_all(struct portmap *pm)
{
	const struct config *cfg = pm->a->cfg;

	for (unsigned p = 0; p < PORTMAP_COUNT; p++) {
		if (!enabled(cfg, p))
			continue;
		pm->e[p].state = PMAP_TRYING;
		pm->e[p].why[0] = 0;
	}
	if (enabled(cfg, PORTMAP_UPNP))
		pm_upnp_start(pm);
	if (pmp_enabled(cfg))
		pm_pmp_start(pm);
}

static void on_retry(void *arg, uint64_t now)
{
	struct portmap *pm = arg;

	(void)now;
	if (pm->active < 0)
		start_all(pm);
}

static void remap(struct portmap *pm, enum portmap_proto p)
{
	if (p == PORTMAP_UPNP)
		pm_upnp_remap(pm);
	else
		pm_pmp_remap(pm);
}

/* AutoNAT's verdict on the mapped address: a router that says it maps but
 * does not forward (some wipe mappings silently) is asked again. */
static void on_reach(void *arg, const struct na_endpoint *ep, enum autonat_reach now,
		     enum autonat_reach was)
{
	struct portmap *pm = arg;
	struct pmap_entry *e;
	char b[NA_ENDPOINT_STRLEN];

	(void)was;
	if (pm->active < 0)
		return;
	e = &pm->e[pm->active];
	if (!na_endpoint_equal(ep, &e->external))
		return;
	na_endpoint_str(ep, b, sizeof(b));
	if (now == AUTONAT_PUBLIC) {
		log_info("%s: port mapping: %s verified: reachable from outside", pm->a->cfg->name,
			 b);
		return;
	}
	if (now != AUTONAT_PRIVATE)
		return;
	log_warn("%s: port mapping: %s maps %s, but nothing from outside gets through; mapping "
		 "again", pm->a->cfg->name, config_portmap_name(e->proto), b);
	e->remaps++;
	e->remap_asked = true;
	/* AutoNAT looks again once the router has answered: asked now, its
	 * results would come before the mapping is back and settle on private. */
	e->recheck = true;
	remap(pm, e->proto);
}

static void watch(struct portmap *pm, const struct na_endpoint *old, const struct na_endpoint *ext)
{
	if (old && old->ip.family)
		autonat_unwatch(pm->a, old, AUTONAT_BY_PORTMAP);
	if (ext) {
		int err = autonat_watch(pm->a, ext, AUTONAT_BY_PORTMAP);
		if (err && err != -EOPNOTSUPP)
			log_debug("%s: port mapping: cannot have AutoNAT check it: %s",
				  pm->a->cfg->name, strerror(-err));
	}
}

static void free_pm(struct portmap *pm)
{
	if (pm->watched.ip.family)
		autonat_unwatch(pm->a, &pm->watched, AUTONAT_BY_PORTMAP);
	loop_timer_cancel(pm->a->loop, &pm->retry);
	pm_upnp_close(pm);
	pm_pmp_close(pm);
	free(pm);
}

int portmap_open(struct agent *a)
{
	const struct config *cfg = a->cfg;
	struct portmap *pm;
	int err;

	if (!cfg->n_portmap || !cfg->has_mode)
		return 0;
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	pm->a = a;
	pm->active = -1;
	pm->upnp.efd = -1;
	for (unsigned p = 0; p < PORTMAP_COUNT; p++)
		pm->e[p].proto = p;
	loop_timer_init(&pm->retry, on_retry, pm);
	err = pm_upnp_init(pm);
	if (!err)
		err = pm_pmp_init(pm);
	if (err) {
		free_pm(pm);
		return err;
	}
	a->portmap = pm;
	err = autonat_on_change(a, on_reach, pm);
	if (err && err != -EOPNOTSUPP)
		log_debug("%s: port mapping: no AutoNAT verification: %s", a->cfg->name,
			  strerror(-err));
	start_all(pm);
	return 0;
}

void portmap_close(struct agent *a)
{
	struct portmap *pm = a->portmap;

	if (!pm)
		return;
	a->portmap = NULL;
	free_pm(pm);
}

bool portmap_external(const struct agent *a, struct na_endpoint *out)
{
	const struct portmap *pm = a->portmap;

	if (!pm || pm->active < 0)
		return false;
	*out = pm->e[pm->active].external;
	return true;
}

static void stop_proto(struct portmap *pm, enum portmap_proto p, bool delete_mapping)
{
	if (p == PORTMAP_UPNP)
		pm_upnp_stop(pm, delete_mapping);
	else
		pm_pmp_stop(pm, delete_mapping);
}

static const char *lease_str(unsigned lease, char *buf, size_t cap)
{
	if (!lease)
		return "permanent";
	return natctl_duration(lease, buf, cap);
}

void portmap_mapped(struct portmap *pm, enum portmap_proto proto, const struct na_ip *lan,
		    const struct na_endpoint *ext, unsigned lease)
{
	struct agent *a = pm->a;
	struct pmap_entry *e = &pm->e[proto];
	uint64_t now = loop_now();
	bool fresh = e->state != PMAP_MAPPED || !na_endpoint_equal(&e->external, ext);
	char in[NA_ENDPOINT_STRLEN], out[NA_ENDPOINT_STRLEN], l[64];

	if (pm->active >= 0 && pm->active != (int)proto) {
		/* Another protocol won the race: two mappings would only be
		 * two things to renew and delete. */
		log_debug("%s: port mapping: %s also mapped; %s is in use, deleting this one",
			  a->cfg->name, config_portmap_name(proto),
			  config_portmap_name((enum portmap_proto)pm->active));
		e->state = PMAP_MAPPED;
		e->external = *ext;
		/* One router's entry, granted to both (miniupnpd serves UPnP
		 * and PCP from one table): deleting it would delete ours. */
		stop_proto(pm, proto, !na_endpoint_equal(ext, &pm->e[pm->active].external));
		e->state = PMAP_IDLE;
		snprintf(e->why, sizeof(e->why), "%s was mapped first",
			 config_portmap_name((enum portmap_proto)pm->active));
		return;
	}
	bool recheck = e->recheck;

	e->remap_asked = false;
	e->recheck = false;
	e->internal.ip = *lan;
	e->internal.port = a->port;
	e->external = *ext;
	e->lease = lease;
	e->renewed_at = now;
	e->expires_at = lease ? now + (uint64_t)lease * 1000000000ull : 0;
	e->why[0] = 0;
	if (e->state != PMAP_MAPPED)
		e->mapped_at = now;
	e->state = PMAP_MAPPED;
	if (recheck)
		autonat_recheck(a, ext);
	if (!fresh) {
		log_debug("%s: port mapping: %s renewed %s for %s", a->cfg->name,
			  config_portmap_name(proto), na_endpoint_str(ext, out, sizeof(out)),
			  lease_str(lease, l, sizeof(l)));
		return;
	}
	pm->active = (int)proto;
	pm->backoff = 0;
	if (!na_endpoint_equal(&pm->watched, ext)) {
		watch(pm, &pm->watched, ext);
		pm->watched = *ext;
	}
	loop_timer_cancel(a->loop, &pm->retry);
	log_info("%s: port mapping: %s maps %s -> %s, lease %s", a->cfg->name,
		 config_portmap_name(proto), na_endpoint_str(ext, out, sizeof(out)),
		 na_endpoint_str(&e->internal, in, sizeof(in)), lease_str(lease, l, sizeof(l)));
	for (unsigned p = 0; p < PORTMAP_COUNT; p++) {
		if (p == proto || pm->e[p].state == PMAP_IDLE)
			continue;
		/* PCP and NAT-PMP are one attempt (the version fallback). */
		if (p != PORTMAP_UPNP && proto != PORTMAP_UPNP) {
			pm->e[p].state = PMAP_IDLE;
			continue;
		}
		stop_proto(pm, p, true);
		pm->e[p].state = PMAP_IDLE;
		snprintf(pm->e[p].why, sizeof(pm->e[p].why), "%s was mapped first",
			 config_portmap_name(proto));
	}
	/* A new candidate: relayed peers may now get a direct path. */
	pathmgr_candidates_changed(a, false);
}

void portmap_failed(struct portmap *pm, enum portmap_proto proto, const char *why)
{
	struct agent *a = pm->a;
	struct pmap_entry *e = &pm->e[proto];
	char all[512];
	size_t n = 0;

	e->state = PMAP_FAILED;
	snprintf(e->why, sizeof(e->why), "%s", why);
	if (pm->active == (int)proto)
		pm->active = -1;
	for (unsigned p = 0; p < PORTMAP_COUNT; p++)
		if (pm->e[p].state == PMAP_TRYING || pm->e[p].state == PMAP_MAPPED)
			return; /* the others may still work */
	all[0] = 0;
	for (unsigned p = 0; p < PORTMAP_COUNT && n < sizeof(all); p++) {
		if (pm->e[p].state != PMAP_FAILED)
			continue;
		n += (size_t)snprintf(all + n, sizeof(all) - n, "%s%s: %s", n ? "; " : "",
				      config_portmap_name(p), pm->e[p].why);
	}
	pm->backoff = pm->backoff ? pm->backoff * 2 : RETRY_MIN;
	if (pm->backoff > RETRY_MAX)
		pm->backoff = RETRY_MAX;
	log_info("%s: no port mapping (%s); trying again in %llu s", a->cfg->name, all,
		 (unsigned long long)(pm->backoff / 1000000000ull));
	loop_timer_set(a->loop, &pm->retry, loop_now() + pm->backoff);
}

void portmap_lost(struct portmap *pm, enum portmap_proto proto, const char *why)
{
	struct pmap_entry *e = &pm->e[proto];
	char ext[NA_ENDPOINT_STRLEN];

	log_warn("%s: port mapping: %s lost %s (%s); mapping again", pm->a->cfg->name,
		 config_portmap_name(proto), na_endpoint_str(&e->external, ext, sizeof(ext)), why);
	/* The renewal AutoNAT asked for confirms the loss: one remap, not two. */
	if (!e->remap_asked)
		e->remaps++;
	e->remap_asked = false;
	e->recheck = true;
	e->state = PMAP_TRYING;
	snprintf(e->why, sizeof(e->why), "%s", why);
}

static const char *verified(struct agent *a, const struct na_endpoint *ext)
{
	if (!a->autonat)
		return "not verified (no rendezvous to dial it back)";
	switch (autonat_reach(a, ext)) {
	case AUTONAT_PUBLIC: return "verified from outside";
	case AUTONAT_PRIVATE: return "not reachable from outside";
	default: return "not verified yet";
	}
}

void portmap_status(struct agent *a, struct ctl_out *out, uint64_t now)
{
	const struct portmap *pm = a->portmap;
	char in[NA_ENDPOINT_STRLEN], ext[NA_ENDPOINT_STRLEN], l[64], left[64], ago[64];

	if (!pm)
		return;
	for (unsigned p = 0; p < PORTMAP_COUNT; p++) {
		const struct pmap_entry *e = &pm->e[p];

		if (!enabled(a->cfg, p))
			continue;
		if (e->state != PMAP_MAPPED) {
			ctl_printf(out, "port_mapping=%s: %s%s%s\n", config_portmap_name(p),
				   pmap_state_name(e->state), e->why[0] ? ": " : "", e->why);
			continue;
		}
		ctl_printf(out, "port_mapping=%s %s -> %s, lease %s", config_portmap_name(p),
			   na_endpoint_str(&e->internal, in, sizeof(in)),
			   na_endpoint_str(&e->external, ext, sizeof(ext)),
			   lease_str(e->lease, l, sizeof(l)));
		if (e->expires_at)
			ctl_printf(out, " (%s left)",
				   natctl_duration(e->expires_at > now ?
						   (e->expires_at - now) / 1000000000ull : 0,
						   left, sizeof(left)));
		ctl_printf(out, ", renewed %s ago",
			   natctl_duration((now - e->renewed_at) / 1000000000ull, ago, sizeof(ago)));
		if (e->remaps)
			ctl_printf(out, ", mapped again %u time%s", e->remaps, e->remaps == 1 ? "" : "s");
		ctl_printf(out, ", %s\n", verified(a, &e->external));
	}
}
