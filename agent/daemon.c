#include "agent/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/ctl.h"
#include "agent/fastpath.h"
#include "agent/pathmgr.h"
#include "agent/log.h"
#include "agent/portmap.h"
#include "agent/loop.h"
#include "agent/reload.h"
#include "agent/rendezvous.h"
#include "agent/sdnotify.h"
#include "agent/status.h"
#include "agent/stunsvc.h"
#include "agent/syncconf.h"
#include "agent/tunpath.h"

struct daemon {
	struct config *cfg;
	struct loop *loop;
	int sigfd;
	struct stunsvc stun;
	bool stun_open;
	struct agent agent;
	bool agent_open, peers_open, proxy_open, tun_open, rdv_open;
	struct ctl ctl;
	bool ctl_open;
	struct fastpath fastpath;
	bool keep_pins; /* stopping for a restart: the BPF maps stay pinned */
	int exit_status;
	struct loop_timer status_timer; /* systemd's STATUS= line, when it changes */
	char status[128];
};

#define STATUS_EVERY (2000000000ull)

/* "2 peers: 1 direct, 1 relayed, 0 down" for `systemctl status`. */
static void status_line(struct daemon *d, char *buf, size_t len)
{
	unsigned direct = 0, relayed = 0, down = 0;

	for (unsigned i = 0; i < d->agent.n_peers; i++) {
		const char *k = peer_path_kind(d->agent.peers[i]);
		if (!strcmp(k, "direct"))
			direct++;
		else if (!strcmp(k, "relay"))
			relayed++;
		else
			down++;
	}
	snprintf(buf, len, "STATUS=%u peer%s: %u direct, %u relayed, %u down",
		 d->agent.n_peers, d->agent.n_peers == 1 ? "" : "s", direct, relayed, down);
}

/* `natctl down`: the reply goes out in this turn, the loop ends after it. */
static void on_ctl_stop(void *arg, struct ctl_out *out)
{
	struct daemon *d = arg;

	log_info("%s: stopping: asked over the control socket (natctl down)", d->cfg->name);
	ctl_printf(out, "stopping=1\npid=%d\n", (int)getpid());
	loop_stop(d->loop);
}

/* `natctl showconf`: the running configuration, one line= per line (the
 * reply protocol cannot carry its empty lines as they are). */
static void on_ctl_showconf(void *arg, struct ctl_out *out)
{
	struct daemon *d = arg;
	char *text = NULL, *line;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f) {
		ctl_printf(out, "error=out of memory\n");
		return;
	}
	config_print_with_key(d->cfg, f);
	fclose(f);
	for (char *p = text; (line = strsep(&p, "\n")) != NULL;) {
		if (!p && !*line)
			break; /* after the last newline */
		ctl_put(out, "line", line);
	}
	free(text);
}

/* After a reload: systemd's status line counts the peers there are now. */
static void reloaded(struct daemon *d)
{
	if (d->agent.n_peers && !loop_timer_armed(&d->status_timer))
		loop_timer_set(d->loop, &d->status_timer, loop_now());
}

/* `natctl syncconf`: the file came in the request (syncconf.c). */
static void on_ctl_syncconf(void *arg, const char *body, size_t len, struct ctl_out *out)
{
	struct daemon *d = arg;

	syncconf_request(&d->agent, body, len, out);
	reloaded(d);
}

static void log_config_error(void *arg, const char *msg)
{
	struct daemon *d = arg;

	if (strstr(msg, ": warning: "))
		log_warn("%s: SIGHUP: %s", d->cfg->name, msg);
	else
		log_err("%s: SIGHUP: %s", d->cfg->name, msg);
}

/* SIGHUP: the file natagent was started with, read again. A file with
 * errors changes nothing: they are logged and the agent runs on. */
static void reload_file(struct daemon *d)
{
	struct config next;

	if (!d->agent_open) {
		log_warn("%s: SIGHUP: nothing running to reload", d->cfg->name);
		return;
	}
	log_info("%s: SIGHUP: reading %s again", d->cfg->name, d->cfg->path);
	if (!config_load(&next, d->cfg->path, log_config_error, d)) {
		log_err("%s: SIGHUP: %s has errors; nothing applied, running as before", d->cfg->name,
			d->cfg->path);
		return;
	}
	reload_apply(&d->agent, &next, "SIGHUP", NULL, NULL);
	config_free(&next);
	reloaded(d);
}

static void on_status_timer(void *arg, uint64_t now)
{
	struct daemon *d = arg;
	char line[sizeof(d->status)];
	int err;

	status_line(d, line, sizeof(line));
	if (strcmp(line, d->status)) {
		err = sdnotify(line);
		if (err < 0)
			log_debug("%s: cannot tell systemd the status: %s", d->cfg->name, strerror(-err));
		memcpy(d->status, line, sizeof(line));
	}
	loop_timer_set(d->loop, &d->status_timer, now + STATUS_EVERY);
}

/* Signals arrive as readable data on a signalfd, so they are handled in the
 * loop like any other event, never inside an async handler. */
static void on_signal(void *arg, uint32_t events)
{
	struct daemon *d = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			log_info("%s: stopping on %s", d->cfg->name, strsignal((int)si.ssi_signo));
			loop_stop(d->loop);
			break;
		case SIGUSR1:
			if (d->agent_open) {
				log_info("%s: SIGUSR1: moved %d session(s) to a new local port",
					 d->cfg->name, agent_rebind(&d->agent));
				fastpath_agent_ports_changed(&d->fastpath, &d->agent);
			}
			break;
		case SIGUSR2:
			log_info("%s: stopping for a restart on %s: the BPF maps stay pinned",
				 d->cfg->name, strsignal((int)si.ssi_signo));
			d->keep_pins = true;
			loop_stop(d->loop);
			break;
		case SIGHUP:
			reload_file(d);
			break;
		}
	}
}

static int open_signals(struct daemon *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sigfd < 0)
		return -errno;
	return loop_add_fd(d->loop, d->sigfd, EPOLLIN, on_signal, d);
}

/* The rendezvous service: QUIC and STUN on Listen (one socket, read by
 * the agent), the RFC 5780 STUN service also on AlternateListen. */
static int start_rendezvous(struct daemon *d)
{
	const struct config_rendezvous *r = &d->cfg->rdv;
	char a[NA_ENDPOINT_STRLEN], b[NA_ENDPOINT_STRLEN];
	struct na_endpoint failed = r->listen;
	int err;

	err = agent_open_rdv_socket(&d->agent, &r->listen);
	if (!err)
		err = stunsvc_open(&d->stun, d->loop, &r->listen,
				   r->has_alternate ? &r->alternate : NULL,
				   d->agent.socks[AGENT_SOCK_RDV].fd, &failed);
	if (err < 0) {
		log_err("%s: cannot listen on %s: %s", d->cfg->name,
			na_endpoint_str(&failed, a, sizeof(a)), strerror(-err));
		return err;
	}
	d->stun_open = true;
	d->agent.stun = &d->stun;
	if (rdv_server_open(&d->agent) < 0) {
		log_err("%s: cannot start the rendezvous service: out of memory", d->cfg->name);
		return -ENOMEM;
	}
	d->rdv_open = true;
	if (r->has_alternate)
		log_info("%s: rendezvous service (QUIC and STUN) on %s, RFC 5780 alternate %s",
			 d->cfg->name, na_endpoint_str(&r->listen, a, sizeof(a)),
			 na_endpoint_str(&r->alternate, b, sizeof(b)));
	else
		log_info("%s: rendezvous service (QUIC and STUN) on %s", d->cfg->name,
			 na_endpoint_str(&r->listen, a, sizeof(a)));
	return 0;
}

/* The agent carries the tunnel (with a Mode) and the rendezvous service
 * (with [Rendezvous]); a host may be both. */
static int start_agent(struct daemon *d)
{
	struct config *cfg = d->cfg;
	int err;

	if (cfg->has_mode && cfg->mode == MODE_WIREGUARD) {
		log_err("%s: Mode = wireguard is not part of this build yet; use tun or proxy",
			cfg->name);
		return -1;
	}
	err = agent_open(&d->agent, cfg, d->loop);
	if (err < 0)
		return err;
	d->agent_open = true;
	if (cfg->rdv.present && start_rendezvous(d) < 0)
		return -1;
	if (peers_open(&d->agent) < 0)
		return -1;
	d->peers_open = true;
	if (autonat_open(&d->agent) < 0)
		return -1;
	err = peer_autonat_open(&d->agent);
	if (err < 0) {
		log_err("%s: AutoNATService: cannot open the dial-back socket: %s", cfg->name,
			strerror(-err));
		return -1;
	}
	if (rdvclient_open(&d->agent) < 0)
		return -1;
	/* Without it peers still punch, with the addresses of each attempt's
	 * start; they just learn of a new one at their next retry. */
	err = hostwatch_open(&d->agent);
	if (err < 0)
		log_warn("%s: cannot watch the host's addresses (%s); a new address is noticed "
			 "only at the next punch attempt", cfg->name, strerror(-err));
	err = portmap_open(&d->agent);
	if (err < 0)
		log_warn("%s: no port mapping: %s", cfg->name, strerror(-err));
	if (!cfg->has_mode)
		return 0;
	if (cfg->mode == MODE_TUN) {
		d->tun_open = true;
		return tunpath_open(&d->agent);
	}
	d->proxy_open = true;
	return proxy_open(&d->agent);
}

static void log_rdv_stats(struct daemon *d)
{
	const struct rdv_stats *st = &d->agent.rdvsrv->st;
	const struct autonat_server_stats *an = &d->agent.rdvsrv->dial.an.st;

	log_info("%s: rendezvous: %llu registered, %llu registrations, %llu messages "
		 "(%llu forwarded), relayed %llu datagrams (%llu bytes); dropped: %llu to "
		 "unregistered keys, %llu not allowed, %llu over rate, %llu malformed, %llu "
		 "queue full; %llu handshakes refused, %llu keys over the per-peer limit, %llu "
		 "registrations replaced by a newer session", d->cfg->name,
		 (unsigned long long)st->registered, (unsigned long long)st->registrations,
		 (unsigned long long)st->messages, (unsigned long long)st->forwarded,
		 (unsigned long long)st->relayed_dgrams, (unsigned long long)st->relayed_bytes,
		 (unsigned long long)st->dropped_unknown, (unsigned long long)st->dropped_not_allowed,
		 (unsigned long long)st->dropped_rate, (unsigned long long)st->dropped_bad,
		 (unsigned long long)st->dropped_full,
		 (unsigned long long)quic_demux_refused(d->agent.demux),
		 (unsigned long long)st->refused_keys, (unsigned long long)st->replaced);
	log_info("%s: rendezvous AutoNAT: %llu requests, %llu addresses dialed; refused: %llu "
		 "not the requester's, %llu private, %llu rate limited, %llu unavailable",
		 d->cfg->name, (unsigned long long)an->requests, (unsigned long long)an->dialed,
		 (unsigned long long)an->not_yours, (unsigned long long)an->private_,
		 (unsigned long long)an->rate_limited, (unsigned long long)an->unavailable);
}

static void stop_agent(struct daemon *d)
{
	if (d->agent_open) {
		hostwatch_close(&d->agent);
		portmap_close(&d->agent);
		autonat_close(&d->agent);
		peer_autonat_close(&d->agent);
	}
	if (d->proxy_open)
		proxy_close(&d->agent);
	if (d->tun_open)
		tunpath_close(&d->agent);
	if (d->agent_open && d->agent.rdv) {
		const struct relay_stats *rs = &d->agent.relay;
		log_info("%s: relayed through the rendezvous: sent %llu, received %llu packets; "
			 "dropped: %llu no registration, %llu too big, %llu queue full, %llu from "
			 "unknown keys, %llu over the inbound queue", d->cfg->name,
			 (unsigned long long)rs->tx, (unsigned long long)rs->rx,
			 (unsigned long long)rs->drop_down, (unsigned long long)rs->drop_too_big,
			 (unsigned long long)rs->drop_full, (unsigned long long)rs->drop_unknown,
			 (unsigned long long)rs->drop_queue);
		rdvclient_close(&d->agent);
	}
	if (d->rdv_open) {
		log_rdv_stats(d);
		rdv_server_close(&d->agent);
	}
	if (d->agent_open)
		agent_close(&d->agent);
	if (d->peers_open)
		peers_close(&d->agent);
}

int daemon_run(struct config *cfg, const struct daemon_opts *opts)
{
	struct daemon d = { .cfg = cfg, .sigfd = -1, .exit_status = 1 };
	int err;

	d.loop = loop_new();
	if (!d.loop) {
		log_err("%s: cannot create the event loop: %s", cfg->name, strerror(errno));
		return 1;
	}
	err = open_signals(&d);
	if (err < 0) {
		log_err("%s: cannot set up signal handling: %s", cfg->name, strerror(-err));
		goto out;
	}
	if ((cfg->has_mode || cfg->rdv.present) && start_agent(&d) < 0)
		goto out;
	fastpath_start(&d.fastpath, d.loop, cfg, d.agent_open ? &d.agent : NULL, opts->no_bpf);
	if (d.agent_open && d.fastpath.n_links) {
		d.agent.fp = &d.fastpath;
		pathmgr_fastpath_up(&d.agent);
	}
	if (d.agent_open) {
		const char *why = NULL;
		/* natctl show reads it; the tunnel runs without it. */
		if (ctl_open(&d.ctl, d.loop, cfg->name, agent_status, &d.agent, &why) < 0) {
			log_warn("%s: no control socket (natctl show will not work): %s",
				 cfg->name, why ? why : "?");
		} else {
			d.ctl_open = true;
			ctl_add_request(&d.ctl, "stop", on_ctl_stop, &d);
			ctl_add_request(&d.ctl, "showconf", on_ctl_showconf, &d);
			ctl_add_body_request(&d.ctl, "syncconf", on_ctl_syncconf, &d);
		}
	}
	log_info("%s: ready", cfg->name);
	/* Ready means natctl can talk to us: after the control socket. */
	err = sdnotify("READY=1");
	if (err < 0)
		log_warn("%s: cannot tell systemd we are ready ($NOTIFY_SOCKET): %s", cfg->name,
			 strerror(-err));
	loop_timer_init(&d.status_timer, on_status_timer, &d);
	if (d.agent_open && d.agent.n_peers)
		loop_timer_set(d.loop, &d.status_timer, loop_now());
	err = loop_run(d.loop);
	sdnotify("STOPPING=1");
	loop_timer_cancel(d.loop, &d.status_timer);
	if (err < 0)
		log_err("%s: event loop failed: %s", cfg->name, strerror(-err));
	d.exit_status = err < 0 ? 1 : 0;
out:
	if (d.ctl_open)
		ctl_close(&d.ctl);
	if (d.agent_open)
		d.agent.fp = NULL;
	fastpath_stop(&d.fastpath, d.keep_pins);
	stop_agent(&d);
	if (d.stun_open) {
		const struct stunsvc_stats *st = &d.stun.stats;
		log_info("%s: STUN service answered %llu of %llu requests (%llu errors, %llu dropped)",
			 cfg->name, (unsigned long long)st->answered,
			 (unsigned long long)st->received, (unsigned long long)st->errors_sent,
			 (unsigned long long)st->dropped);
		stunsvc_close(&d.stun);
	}
	if (d.sigfd >= 0)
		close(d.sigfd);
	loop_free(d.loop);
	return d.exit_status;
}
