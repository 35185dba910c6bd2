/* Reload: a new configuration's peers applied to the running agent.
 *
 * All or nothing. An [Interface] or [Rendezvous] key that differs (keys,
 * ports, the TUN's addresses, the rendezvous...) cannot change under a
 * running agent: each is named, and then nothing at all is applied, so the
 * agent runs exactly the file it ran before and a person fixes the file
 * (or restarts) knowing that. Peers are matched by PublicKey (confdiff.c):
 *
 *   removed  their sessions closed with CONNECTION_CLOSE ("peer removed"),
 *            their AllowedIPs and routes, proxy socket, path manager and
 *            timers gone, the struct freed (peer_remove); UNREGISTER at the
 *            rendezvous;
 *   added    a new struct peer with a fresh idx (never one a removed peer
 *            had: relay.c names paths by it), path manager, AllowedIPs,
 *            routes, proxy socket, then dialed when it is our turn; REGISTER
 *            at the rendezvous, so relaying and punching work for it;
 *   changed  (same key) updated in place, the session kept: AllowedIPs in
 *            the table and routes, the Endpoint for the next dial (at once
 *            if idle), PersistentKeepalive for token keepalives and the
 *            session's keep-alive, LocalEndpoint by moving to a new socket;
 *   kept     untouched: same struct, session, counters, path and timers;
 *            only their config pointer moves to the new file's copy.
 *
 * Two phases, so that what can fail fails before anything changed: prepare
 * (new peers, the next AllowedIPs table built aside, proxy sockets bound,
 * room in the peer array) and commit, which cannot fail but for routes the
 * kernel refuses (reported, the rest applied). A LocalEndpoint that a
 * removed or changed peer gives up is handed over as a socket, not bound
 * again: rotating a peer's key keeps its VPN's endpoint. The config object
 * stays in place (its interface part is the same by then): it takes the
 * new file's peers array, every peer re-pointed at its entry, and the old
 * array goes back to the caller to free. */
#include "agent/reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/allowedips.h"
#include "agent/confdiff.h"
#include "agent/log.h"
#include "agent/tunpath.h"

/* A LocalEndpoint socket that changes hands. */
struct sock_move {
	struct peer *from;       /* gives it up (removed, or moving elsewhere) */
	struct na_endpoint ep;   /* where it is bound */
	bool taken;              /* by one of the `wants` below */
	int fd;                  /* once detached from `from` */
};

struct sock_want {
	struct peer *to;
	const struct config_peer *cp;
	int fd;                  /* bound here, or the taken one's at commit */
	int from;                /* index in moves of the one taken, or -1 */
};

struct reload {
	struct agent *a;
	const char *who;
	reload_report_fn report;
	void *arg;
	struct confdiff d;
	struct peer **peers;     /* per d.peers entry: the running or the new one */
	struct allowedips aips;  /* the next table (tun mode) */
	struct sock_move *moves;
	struct sock_want *wants;
	unsigned n_moves, n_wants;
	unsigned errors;
	unsigned routes_added, routes_removed;
};

static void say(struct reload *r, enum reload_line kind, const char *line)
{
	const char *name = r->a->cfg->name;

	if (kind == RELOAD_CHANGE)
		log_info("%s: %s: %s", name, r->who, line);
	else if (kind == RELOAD_REFUSED)
		log_warn("%s: %s: %s", name, r->who, line);
	else
		log_err("%s: %s: %s", name, r->who, line);
	if (kind == RELOAD_ERROR)
		r->errors++;
	if (r->report)
		r->report(r->arg, kind, line);
}

/* Refused: only the keys that refused it; no peer line, none was applied. */
static void on_line(void *arg, bool refused, const char *line)
{
	struct reload *r = arg;

	if (refused || !r->d.n_refused)
		say(r, refused ? RELOAD_REFUSED : RELOAD_CHANGE, line);
}

static bool proxy_mode(const struct agent *a)
{
	return a->cfg->has_mode && a->cfg->mode == MODE_PROXY;
}

/* ---- prepare: everything that can fail ---- */

/* The running peers by their config entry: kept entries point into the
 * running config's array, so an index finds them without a search. */
static int match_running(struct reload *r)
{
	struct agent *a = r->a;
	struct peer **by_entry = calloc(a->cfg->n_peers + 1, sizeof(*by_entry));

	if (!by_entry)
		return -ENOMEM;
	for (unsigned i = 0; i < a->n_peers; i++)
		by_entry[a->peers[i]->cfg - a->cfg->peers] = a->peers[i];
	for (unsigned i = 0; i < r->d.n_peers; i++)
		if (r->d.peers[i].old)
			r->peers[i] = by_entry[r->d.peers[i].old - a->cfg->peers];
	free(by_entry);
	return 0;
}

static int new_peers(struct reload *r)
{
	for (unsigned i = 0; i < r->d.n_peers; i++) {
		if (r->d.peers[i].old)
			continue;
		r->peers[i] = peer_new(r->a, r->d.peers[i].new);
		if (!r->peers[i])
			return -ENOMEM;
	}
	return peers_reserve(r->a, r->a->n_peers + r->d.n_added);
}

/* The table as the new file has it, in its order (a prefix given to two
 * peers goes to the later, as at start). */
static int build_table(struct reload *r)
{
	allowedips_init(&r->aips);
	if (!r->a->tun)
		return 0;
	for (unsigned i = 0; i < r->d.n_peers; i++) {
		int err;

		if (!r->d.peers[i].new)
			continue;
		err = tunpath_table_add(&r->aips, r->peers[i], r->d.peers[i].new);
		if (err < 0)
			return err;
	}
	return 0;
}

/* Which LocalEndpoint sockets change hands, which are new; binds those. */
static int plan_sockets(struct reload *r)
{
	char ep[NA_ENDPOINT_STRLEN], key[KEY_B64_LEN], line[256];

	if (!proxy_mode(r->a))
		return 0;
	r->moves = calloc(r->d.n_peers + 1, sizeof(*r->moves));
	r->wants = calloc(r->d.n_peers + 1, sizeof(*r->wants));
	if (!r->moves || !r->wants)
		return -ENOMEM;
	for (unsigned i = 0; i < r->d.n_peers; i++) {
		const struct confdiff_peer *e = &r->d.peers[i];
		bool moving = e->old && (!e->new || (e->changed & CONFDIFF_LOCAL_ENDPOINT));

		if (moving && r->peers[i]->proxy_fd >= 0)
			r->moves[r->n_moves++] = (struct sock_move){ .from = r->peers[i],
								     .ep = e->old->local_endpoint };
		if (e->new && (!e->old || (e->changed & CONFDIFF_LOCAL_ENDPOINT)))
			r->wants[r->n_wants++] = (struct sock_want){ .to = r->peers[i], .cp = e->new,
								     .fd = -1, .from = -1 };
	}
	for (unsigned i = 0; i < r->n_wants; i++) {
		struct sock_want *w = &r->wants[i];

		for (unsigned j = 0; j < r->n_moves && w->from < 0; j++) {
			if (!r->moves[j].taken && na_endpoint_equal(&r->moves[j].ep,
								    &w->cp->local_endpoint)) {
				r->moves[j].taken = true;
				w->from = (int)j;
			}
		}
		if (w->from >= 0)
			continue;
		w->fd = proxy_bind(&w->cp->local_endpoint);
		if (w->fd < 0) {
			int err = w->fd;

			key_to_base64(key, w->cp->public_key);
			snprintf(line, sizeof(line), "peer %s: cannot bind LocalEndpoint %s: %s", key,
				 na_endpoint_str(&w->cp->local_endpoint, ep, sizeof(ep)), strerror(-err));
			say(r, RELOAD_ERROR, line);
			return err;
		}
	}
	return 0;
}

/* Undoes prepare after a failure: nothing running was touched. */
static void unprepare(struct reload *r)
{
	for (unsigned i = 0; i < r->n_wants; i++)
		if (r->wants[i].fd >= 0)
			close(r->wants[i].fd);
	for (unsigned i = 0; i < r->d.n_peers; i++)
		if (!r->d.peers[i].old && r->peers[i])
			peer_free(r->peers[i]);
	allowedips_free(&r->aips);
}

/* ---- commit: nothing here fails but what the kernel refuses ---- */

static void hand_over_sockets(struct reload *r)
{
	/* Every socket that moves leaves its peer first, so a peer that
	 * both gives one up and takes another gets the right one. */
	for (unsigned j = 0; j < r->n_moves; j++) {
		r->moves[j].fd = proxy_detach(r->moves[j].from);
		if (!r->moves[j].taken)
			close(r->moves[j].fd);
	}
	for (unsigned i = 0; i < r->n_wants; i++) {
		struct sock_want *w = &r->wants[i];
		char ep[NA_ENDPOINT_STRLEN], key[KEY_B64_LEN], line[256];
		int err;

		if (w->from >= 0)
			w->fd = r->moves[w->from].fd;
		err = proxy_attach(w->to, w->fd);
		if (err < 0) {
			/* epoll out of memory: the socket cannot be read */
			close(w->fd);
			key_to_base64(key, w->cp->public_key);
			snprintf(line, sizeof(line), "peer %s: cannot read LocalEndpoint %s: %s", key,
				 na_endpoint_str(&w->cp->local_endpoint, ep, sizeof(ep)),
				 strerror(-err));
			say(r, RELOAD_ERROR, line);
		}
		w->fd = -1;
	}
}

static void set_routes(struct reload *r, const struct config *next)
{
	struct na_prefix *routes;
	size_t n = 0;
	char line[320];

	if (!r->a->tun)
		return;
	tunpath_set_table(r->a, &r->aips);
	for (unsigned i = 0; i < next->n_peers; i++)
		n += next->peers[i].n_allowed_ips;
	routes = calloc(n + 1, sizeof(*routes));
	if (!routes) {
		say(r, RELOAD_ERROR, "out of memory for the routes; they are as they were");
		return;
	}
	n = 0;
	for (unsigned i = 0; i < next->n_peers; i++)
		for (unsigned j = 0; j < next->peers[i].n_allowed_ips; j++)
			routes[n++] = next->peers[i].allowed_ips[j];
	if (tunpath_set_routes(r->a, routes, n, &r->routes_added, &r->routes_removed) < 0) {
		snprintf(line, sizeof(line), "%s", tunpath_errmsg(r->a));
		say(r, RELOAD_ERROR, line);
	}
	free(routes);
}

/* REGISTER the keys added, UNREGISTER the removed (their config entries
 * live on in the old array until the caller frees it). */
static void tell_rendezvous(struct reload *r)
{
	const uint8_t **added = calloc(r->d.n_added + 1, sizeof(*added));
	const uint8_t **removed = calloc(r->d.n_removed + 1, sizeof(*removed));
	unsigned na = 0, nr = 0;

	if (!added || !removed) {
		say(r, RELOAD_ERROR, "out of memory: the rendezvous was not told of the new peers");
	} else {
		for (unsigned i = 0; i < r->d.n_peers; i++) {
			const struct confdiff_peer *e = &r->d.peers[i];

			if (!e->old)
				added[na++] = e->new->public_key;
			else if (!e->new)
				removed[nr++] = e->old->public_key;
		}
		rdvclient_peers_changed(r->a, added, na, removed, nr);
	}
	free(added);
	free(removed);
}

static void commit(struct reload *r, struct config *next)
{
	struct agent *a = r->a;
	struct config *cfg = a->cfg;
	struct config_peer *peers = cfg->peers;
	unsigned n_peers = cfg->n_peers;

	hand_over_sockets(r);
	for (unsigned i = 0; i < r->d.n_peers; i++)
		if (!r->d.peers[i].new)
			peer_remove(r->peers[i], "peer removed");
	for (unsigned i = 0; i < r->d.n_peers; i++) {
		if (r->d.peers[i].old && r->d.peers[i].new)
			r->peers[i]->cfg = r->d.peers[i].new;
		else if (r->d.peers[i].new)
			peer_start(r->peers[i]);
	}
	set_routes(r, next);
	/* The config object stays; its peers are the new file's now. */
	cfg->peers = next->peers;
	cfg->n_peers = next->n_peers;
	next->peers = peers;
	next->n_peers = n_peers;
	agent_keepalive_update(a);
	for (unsigned i = 0; i < r->d.n_peers; i++)
		if (r->d.peers[i].changed & (CONFDIFF_ENDPOINT | CONFDIFF_KEEPALIVE))
			peer_config_changed(r->peers[i]);
	tell_rendezvous(r);
	if (!a->hostwatch && a->n_peers) {
		int err = hostwatch_open(a);

		if (err < 0)
			log_warn("%s: cannot watch the host's addresses (%s)", cfg->name, strerror(-err));
	}
}

int reload_apply(struct agent *a, struct config *next, const char *who, reload_report_fn report,
		 void *arg)
{
	struct reload r = { .a = a, .who = who, .report = report, .arg = arg };
	int err, changes;

	allowedips_init(&r.aips);
	if (confdiff_compute(&r.d, a->cfg, next) < 0) {
		say(&r, RELOAD_ERROR, "out of memory; nothing applied");
		return -ENOMEM;
	}
	if (r.d.n_refused) {
		confdiff_describe(&r.d, on_line, &r);
		say(&r, RELOAD_REFUSED, "nothing applied");
		confdiff_free(&r.d);
		return -EPERM;
	}
	changes = (int)(r.d.n_added + r.d.n_removed + r.d.n_changed);
	if (!changes) {
		log_info("%s: %s: no changes", a->cfg->name, who);
		confdiff_free(&r.d);
		return 0;
	}
	r.peers = calloc(r.d.n_peers + 1, sizeof(*r.peers));
	err = r.peers ? 0 : -ENOMEM;
	if (!err)
		err = match_running(&r);
	if (!err)
		err = new_peers(&r);
	if (!err)
		err = build_table(&r);
	if (!err)
		err = plan_sockets(&r);
	if (err) {
		if (err == -ENOMEM)
			say(&r, RELOAD_ERROR, "out of memory");
		say(&r, RELOAD_ERROR, "nothing applied");
		unprepare(&r);
	} else {
		commit(&r, next);
		/* Described after the commit: these lines say what was done. */
		confdiff_describe(&r.d, on_line, &r);
		if (r.routes_added || r.routes_removed)
			log_info("%s: %s: routes: %u added, %u removed", a->cfg->name, who,
				 r.routes_added, r.routes_removed);
	}
	allowedips_free(&r.aips);
	free(r.moves);
	free(r.wants);
	free(r.peers);
	confdiff_free(&r.d);
	return err ? err : changes;
}
