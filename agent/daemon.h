/* The natagent daemon: sets up every service a config asks for on one event
 * loop, runs until SIGINT or SIGTERM, and tears everything down. */
#ifndef NATAGENT_AGENT_DAEMON_H
#define NATAGENT_AGENT_DAEMON_H

#include <stdbool.h>

#include "agent/config.h"

struct daemon_opts {
	bool no_bpf;
};

/* Returns the process exit status. */
int daemon_run(struct config *cfg, const struct daemon_opts *opts);

#endif
