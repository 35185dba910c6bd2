/* The agent's state as the control socket's `show` reply: key=value lines
 * in the order agent/ctl.h documents (interface, then each peer, then the
 * rendezvous service). Read-only: nothing here changes the agent. */
#include <inttypes.h>
#include <stdio.h>

#include "agent/agent.h"
#include "agent/autonat_dialer.h"
#include "agent/ctl.h"
#include "agent/pathmgr.h"
#include "agent/portmap.h"
#include "agent/rdvclient.h"
#include "agent/rendezvous.h"
#include "agent/status.h"

static void endpoint(struct ctl_out *out, const char *key, const struct na_endpoint *ep)
{
	char b[NA_ENDPOINT_STRLEN];

	ctl_printf(out, "%s=%s\n", key, na_endpoint_str(ep, b, sizeof(b)));
}

static void key(struct ctl_out *out, const char *name, const uint8_t k[KEY_LEN])
{
	char b[KEY_B64_LEN];

	key_to_base64(b, k);
	ctl_printf(out, "%s=%s\n", name, b);
}

static uint64_t age_ms(uint64_t since, uint64_t now)
{
	return since && now > since ? (now - since) / 1000000 : 0;
}

static void interface(struct agent *a, struct ctl_out *out, uint64_t now)
{
	const struct config *cfg = a->cfg;

	ctl_printf(out, "interface=%s\n", cfg->name);
	key(out, "public_key", cfg->public_key);
	ctl_printf(out, "listen_port=%u\n", a->port);
	ctl_printf(out, "mode=%s\n", cfg->has_mode ? config_mode_name(cfg->mode) : "none");
	if (a->have_report) {
		endpoint(out, "public_endpoint", &a->report.mapped);
		ctl_printf(out, "nat_type=%s\n", nat_report_classic_name(&a->report));
		ctl_printf(out, "nat_mapping=%s\n", nat_mapping_name(a->report.mapping));
		ctl_printf(out, "nat_filtering=%s\n", nat_filtering_name(a->report.filtering));
	}
	if (a->rdv) {
		const struct rdvclient *r = a->rdv;

		endpoint(out, "rendezvous", &cfg->rendezvous);
		ctl_printf(out, "rendezvous_state=%s\n", rdvclient_state_name(r->state));
		if (r->have_srflx)
			endpoint(out, "rendezvous_reflexive", &r->srflx);
		ctl_printf(out, "rendezvous_age_ms=%" PRIu64 "\n", age_ms(r->since, now));
		if (r->error[0])
			ctl_put(out, "rendezvous_error", r->error);
	}
	portmap_status(a, out, now);
	autonat_status(a, out, now);
	if (a->peer_dial && a->peer_dial->fd >= 0) {
		const struct autonat_server_stats *st = &a->peer_dial->an.st;

		endpoint(out, "autonat_service", &a->peer_dial->from);
		ctl_printf(out, "autonat_service_requests=%" PRIu64 "\nautonat_service_dialed=%" PRIu64
			   "\nautonat_service_refused=%" PRIu64 "\n", st->requests, st->dialed,
			   st->not_yours + st->private_ + st->rate_limited + st->unavailable);
	}
}

static void peer(struct peer *p, struct ctl_out *out, uint64_t now)
{
	const struct config_peer *cp = p->cfg;
	const char *kind = peer_path_kind(p);
	bool up = p->conn && quic_session_is_up(p->conn->s);
	const struct peer_stats *st = &p->st;
	char b[NA_PREFIX_STRLEN];

	key(out, "peer", cp->public_key);
	ctl_printf(out, "allowed_ips=");
	for (unsigned i = 0; i < cp->n_allowed_ips; i++)
		ctl_printf(out, "%s%s", i ? "," : "", na_prefix_str(&cp->allowed_ips[i], b, sizeof(b)));
	ctl_printf(out, "\npath=%s\n", kind);
	if (up) {
		const struct quic_path *path = quic_session_path(p->conn->s);
		struct quic_session_stats qs;
		struct na_endpoint remote;

		quic_session_get_stats(p->conn->s, &qs);
		if (relay_is_path(&path->remote)) {
			endpoint(out, "relay", &p->a->cfg->rendezvous);
		} else {
			na_endpoint_from_sockaddr(&remote, (const struct sockaddr *)&path->remote);
			endpoint(out, "endpoint", &remote);
		}
		ctl_printf(out, "session_age_ms=%" PRIu64 "\n", age_ms(p->up_since, now));
		ctl_printf(out, "rtt_us=%" PRIu64 "\n", qs.smoothed_rtt / 1000);
	}
	ctl_printf(out, "tx_bytes=%" PRIu64 "\nrx_bytes=%" PRIu64 "\n", st->tx_bytes, st->rx_bytes);
	ctl_printf(out, "tx_dgrams=%" PRIu64 "\nrx_dgrams=%" PRIu64 "\n", st->tx_dgrams,
		   st->rx_dgrams);
	ctl_printf(out, "drop_too_big=%" PRIu64 "\ndrop_full=%" PRIu64 "\ndrop_down=%" PRIu64
		   "\ndrop_spoofed=%" PRIu64 "\ndrop_bad=%" PRIu64 "\n", st->drop_too_big,
		   st->drop_full, st->drop_down, st->drop_spoofed, st->drop_bad);
	if (p->last_error[0])
		ctl_put(out, "last_error", p->last_error);
	pathmgr_status(p, out, now);
}

static void service(struct agent *a, struct ctl_out *out)
{
	const struct rdv_stats *st = &a->rdvsrv->st;
	const struct autonat_server_stats *an = &a->rdvsrv->dial.an.st;

	endpoint(out, "rendezvous_service", &a->cfg->rdv.listen);
	ctl_printf(out, "registered_peers=%" PRIu64 "\n", st->registered);
	ctl_printf(out, "relayed_dgrams=%" PRIu64 "\nrelayed_bytes=%" PRIu64 "\n",
		   st->relayed_dgrams, st->relayed_bytes);
	ctl_printf(out, "dropped_unknown=%" PRIu64 "\ndropped_not_allowed=%" PRIu64
		   "\ndropped_rate=%" PRIu64 "\ndropped_bad=%" PRIu64 "\n", st->dropped_unknown,
		   st->dropped_not_allowed, st->dropped_rate, st->dropped_bad);
	/* AutoNAT: counted per address asked about, requests apart. */
	if (a->rdvsrv->dial.fd >= 0)
		endpoint(out, "autonat_from", &a->rdvsrv->dial.from);
	else
		ctl_printf(out, "autonat_from=none\n");
	ctl_printf(out, "autonat_requests=%" PRIu64 "\nautonat_dialed=%" PRIu64
		   "\nautonat_refused_not_yours=%" PRIu64 "\nautonat_refused_private=%" PRIu64
		   "\nautonat_rate_limited=%" PRIu64 "\nautonat_unavailable=%" PRIu64 "\n",
		   an->requests, an->dialed, an->not_yours, an->private_, an->rate_limited,
		   an->unavailable);
}

void agent_status(void *arg, struct ctl_out *out)
{
	struct agent *a = arg;
	uint64_t now = loop_now();

	interface(a, out, now);
	for (unsigned i = 0; i < a->n_peers; i++)
		peer(a->peers[i], out, now);
	if (a->rdvsrv)
		service(a, out);
}
