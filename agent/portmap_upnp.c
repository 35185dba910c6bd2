/* UPnP IGD for the port-mapping manager. libminiupnpc's calls block (SSDP
 * waits, SOAP over HTTP), so each job (map, renew, delete) runs on a thread
 * of its own while the loop goes on; the thread writes its result into
 * pm->upnp and wakes the loop through an eventfd. One job at a time: the
 * loop starts none while one runs, and reads the result only after joining
 * the thread. Only exit waits for a job. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/log.h"
#include "agent/portmap.h"

#define DISCOVER_MS       2000
/* A permanent mapping has no renewal to notice a router's loss. */
#define PERMANENT_CHECK   (600ull * 1000000000ull)
/* After a failed renewal: find the IGD again soon (it may have restarted
 * with new URLs), but not in a tight loop. */
#define RENEW_RETRY       (5ull * 1000000000ull)

static void *worker(void *arg)
{
	struct pm_upnp *u = arg;
	uint64_t one = 1;
	int r;

	u->err = 0;
	u->lost = false;
	u->why[0] = 0;
	if (u->op == UPNP_JOB_DELETE) {
		/* Started only with the IGD found. */
		u->err = upnp_delete(&u->igd, u->want_ext, u->why);
		goto done;
	}
	if (!u->have_igd) {
		u->err = upnp_discover(&u->igd, DISCOVER_MS, u->why);
		if (u->err)
			goto done;
		u->have_igd = true;
	}
	if (u->op == UPNP_JOB_RENEW) {
		r = upnp_check(&u->igd, u->want_ext, u->internal_port, u->why);
		/* Not asked (an error): the add below tells. */
		u->lost = r == 0;
	}
	u->err = upnp_external_ip(&u->igd, &u->external_ip, u->why);
	if (!u->err)
		u->err = upnp_add(&u->igd, u->internal_port, u->want_ext, u->lease, u->desc,
				  &u->got, u->why);
done:
	if (write(u->efd, &one, sizeof(one)) != sizeof(one)) {
		/* Cannot happen on an eventfd below its maximum; the loop would
		 * then never hear of this job, so say so. */
		log_err("portmap: cannot wake the loop: %s", strerror(errno));
	}
	return NULL;
}

static bool run(struct portmap *pm, int op, uint16_t want_ext)
{
	struct pm_upnp *u = &pm->upnp;
	int err;

	if (u->busy)
		return false;
	u->op = op;
	u->internal_port = pm->a->port;
	u->want_ext = want_ext;
	u->lease = pm->a->cfg->portmap_lease;
	snprintf(u->desc, sizeof(u->desc), "natagent %s", pm->a->cfg->name);
	err = pthread_create(&u->thread, NULL, worker, u);
	if (err) {
		if (op != UPNP_JOB_DELETE)
			portmap_failed(pm, PORTMAP_UPNP, "cannot start a thread for UPnP");
		return false;
	}
	u->busy = true;
	return true;
}

static void schedule(struct portmap *pm, uint64_t delay)
{
	loop_timer_set(pm->a->loop, &pm->upnp.timer, loop_now() + delay);
}

static void free_igd(struct pm_upnp *u)
{
	if (u->have_igd) {
		upnp_free(&u->igd);
		u->have_igd = false;
	}
}

/* Is EXT the very entry the protocol in use was granted? miniupnpd serves
 * UPnP and PCP from one table: deleting ours would delete that one's
 * forwarding too. */
static bool shared(const struct portmap *pm, const struct na_endpoint *ext)
{
	if (pm->active < 0 || pm->active == PORTMAP_UPNP ||
	    !na_endpoint_equal(ext, &pm->e[pm->active].external))
		return false;
	log_debug("%s: port mapping: upnp was granted the same entry as %s; kept",
		  pm->a->cfg->name, config_portmap_name((enum portmap_proto)pm->active));
	return true;
}

static void log_deleted(struct portmap *pm, const struct na_endpoint *ext, int err,
			const char *why)
{
	char s[NA_ENDPOINT_STRLEN];

	na_endpoint_str(ext, s, sizeof(s));
	if (err)
		log_warn("%s: port mapping: cannot delete the upnp mapping %s: %s",
			 pm->a->cfg->name, s, why);
	else
		log_info("%s: port mapping: deleted the upnp mapping %s", pm->a->cfg->name, s);
}

/* Delete EXT on the worker thread; without an IGD there is nothing to ask. */
static void delete_async(struct portmap *pm, const struct na_endpoint *ext)
{
	struct pm_upnp *u = &pm->upnp;

	if (u->have_igd && !shared(pm, ext)) {
		u->deleting = *ext;
		if (run(pm, UPNP_JOB_DELETE, ext->port))
			return;
		log_deleted(pm, ext, 1, "cannot start a thread for UPnP");
	}
	free_igd(u);
}

static void job_done(struct portmap *pm)
{
	struct pm_upnp *u = &pm->upnp;
	struct pmap_entry *e = &pm->e[PORTMAP_UPNP];
	struct na_endpoint ext;
	bool renew = u->op == UPNP_JOB_RENEW;

	if (u->err) {
		if (u->have_igd && renew) {
			free_igd(u);
			portmap_lost(pm, PORTMAP_UPNP, u->why);
			schedule(pm, RENEW_RETRY);
			return;
		}
		free_igd(u);
		/* Still trying after a loss: keep at it; else this one failed. */
		if (e->remaps && e->state == PMAP_TRYING)
			schedule(pm, RENEW_RETRY);
		else
			portmap_failed(pm, PORTMAP_UPNP, u->why);
		return;
	}
	if (renew && u->lost)
		portmap_lost(pm, PORTMAP_UPNP, "the router no longer held it");
	ext = (struct na_endpoint){ .ip = u->external_ip, .port = u->got.external_port };
	if (!u->igd.connected && !e->mapped_at)
		log_debug("%s: port mapping: the IGD says it is not connected (its external "
			  "address may be reserved); mapped anyway, AutoNAT will tell",
			  pm->a->cfg->name);
	portmap_mapped(pm, PORTMAP_UPNP, &u->igd.lan, &ext, u->got.lease);
	if (pm->active == PORTMAP_UPNP)
		schedule(pm, u->got.lease ? (uint64_t)u->got.lease * 500000000ull : PERMANENT_CHECK);
}

/* A job that finished after pm_upnp_stop: what it mapped goes, if asked. */
static void abandoned_done(struct portmap *pm)
{
	struct pm_upnp *u = &pm->upnp;
	struct na_endpoint ext = { .ip = u->external_ip, .port = u->got.external_port };

	u->abandoned = false;
	if (!u->err && u->abandoned_delete)
		delete_async(pm, &ext);
	else
		free_igd(u);
}

static void on_done(void *arg, uint32_t events)
{
	struct portmap *pm = arg;
	struct pm_upnp *u = &pm->upnp;
	uint64_t n;

	(void)events;
	if (read(u->efd, &n, sizeof(n)) != sizeof(n) || !u->busy)
		return;
	pthread_join(u->thread, NULL);
	u->busy = false;
	if (u->op == UPNP_JOB_DELETE) {
		log_deleted(pm, &u->deleting, u->err, u->why);
		free_igd(u);
		if (u->start_after) {
			u->start_after = false;
			run(pm, UPNP_JOB_MAP, 0);
		}
	} else if (u->abandoned) {
		abandoned_done(pm);
	} else {
		job_done(pm);
	}
}

static void on_timer(void *arg, uint64_t now)
{
	struct portmap *pm = arg;
	struct pmap_entry *e = &pm->e[PORTMAP_UPNP];

	(void)now;
	if (e->state == PMAP_MAPPED)
		run(pm, UPNP_JOB_RENEW, e->external.port);
	else if (e->state == PMAP_TRYING)
		run(pm, UPNP_JOB_MAP, e->external.port);
}

int pm_upnp_init(struct portmap *pm)
{
	struct pm_upnp *u = &pm->upnp;

	loop_timer_init(&u->timer, on_timer, pm);
	u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->efd < 0)
		return -errno;
	return loop_add_fd(pm->a->loop, u->efd, EPOLLIN, on_done, pm);
}

void pm_upnp_start(struct portmap *pm)
{
	struct pm_upnp *u = &pm->upnp;

	if (u->busy) {
		/* A stopped map or renew still running serves as this start;
		 * a delete must finish first. */
		if (u->op == UPNP_JOB_DELETE)
			u->start_after = true;
		else
			u->abandoned = false;
		return;
	}
	run(pm, UPNP_JOB_MAP, 0);
}

void pm_upnp_remap(struct portmap *pm)
{
	struct pmap_entry *e = &pm->e[PORTMAP_UPNP];

	if (e->state == PMAP_MAPPED)
		run(pm, UPNP_JOB_RENEW, e->external.port);
}

void pm_upnp_stop(struct portmap *pm, bool delete_mapping)
{
	struct pm_upnp *u = &pm->upnp;
	struct pmap_entry *e = &pm->e[PORTMAP_UPNP];

	if (u->efd < 0)
		return;
	loop_timer_cancel(pm->a->loop, &u->timer);
	u->start_after = false;
	if (u->busy) {
		if (u->op != UPNP_JOB_DELETE) {
			u->abandoned = true;
			/* A renew's mapping is the one held: it goes too. */
			u->abandoned_delete = delete_mapping;
		}
	} else if (delete_mapping && e->state == PMAP_MAPPED) {
		delete_async(pm, &e->external);
	} else {
		free_igd(u);
	}
	e->state = PMAP_IDLE;
}

void pm_upnp_close(struct portmap *pm)
{
	struct pm_upnp *u = &pm->upnp;
	struct pmap_entry *e = &pm->e[PORTMAP_UPNP];
	struct na_endpoint ext = e->external;
	bool mapped = e->state == PMAP_MAPPED;
	char why[UPNP_WHY_LEN];

	if (u->efd < 0)
		return;
	loop_timer_cancel(pm->a->loop, &u->timer);
	if (u->busy) {
		/* Bounded by miniupnpc's own timeouts (SSDP wait, HTTP). */
		pthread_join(u->thread, NULL);
		u->busy = false;
		if (u->op == UPNP_JOB_DELETE) {
			log_deleted(pm, &u->deleting, u->err, u->why);
		} else if (!u->err && (!u->abandoned || u->abandoned_delete)) {
			/* It mapped as we stopped: that one must go too. */
			mapped = true;
			ext = (struct na_endpoint){ .ip = u->external_ip,
						    .port = u->got.external_port };
		}
	}
	if (mapped && u->have_igd && !shared(pm, &ext))
		log_deleted(pm, &ext, upnp_delete(&u->igd, ext.port, why), why);
	free_igd(u);
	e->state = PMAP_IDLE;
	loop_del_fd(pm->a->loop, u->efd);
	close(u->efd);
	u->efd = -1;
}
