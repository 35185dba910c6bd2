/* A new configuration applied to the running agent (`natctl syncconf`,
 * SIGHUP), as `wg syncconf` does: the peers that differ change, the others
 * are not touched. See reload.c for what happens to each. */
#ifndef NATAGENT_AGENT_RELOAD_H
#define NATAGENT_AGENT_RELOAD_H

#include "agent/agent.h"

enum reload_line {
	RELOAD_CHANGE,  /* "peer <key> added": applied */
	RELOAD_REFUSED, /* "ListenPort changed: restart natagent to apply it" */
	RELOAD_ERROR,   /* something could not be done */
};

typedef void (*reload_report_fn)(void *arg, enum reload_line kind, const char *line);

/* Applies next (parsed and checked) to the agent running a->cfg, all of it
 * or nothing: when an [Interface] or [Rendezvous] key differs, or a step
 * that can fail does before anything changed, nothing is applied. Each line
 * goes to report (may be NULL) and to the log, prefixed by who asked
 * ("syncconf", "SIGHUP"). Returns the number of changes applied (0: none
 * differed), -EPERM when refused, or -errno when nothing could be applied.
 * A failure after the change began (a route the kernel refused) is
 * reported as RELOAD_ERROR and the rest still applied.
 *
 * The running config object stays where it is (its name, its interface
 * keys are the same); it takes next's peers, and next gets the old ones:
 * config_free(next) afterwards in every case. */
int reload_apply(struct agent *a, struct config *next, const char *who, reload_report_fn report,
		 void *arg);

#endif
