/* The control socket's "syncconf" request (`natctl syncconf IFACE FILE`):
 * a whole configuration file in the request's body, applied by reload.c.
 *
 *   request body (agent/ctl.h): in this order
 *     file=NAME    how messages name the file (optional, first)
 *     line=TEXT    one line of the file, every line in order (an empty one
 *                  as "line=", so that it cannot end the request)
 *   reply:
 *     error=TEXT   a config error ("nt0.conf:14: AllowedIPs: ...") or a
 *                  failure applying; one per line
 *     refused=TEXT a key that cannot change while natagent runs
 *     change=TEXT  one per change applied, as natctl prints it
 *     applied=0|1  last: whether the file is now the running configuration
 * A file that does not parse, or that changes a refused key, changes
 * nothing: applied=0. */
#ifndef NATAGENT_AGENT_SYNCCONF_H
#define NATAGENT_AGENT_SYNCCONF_H

#include <stddef.h>

struct agent;
struct ctl_out;

/* Parses the body, applies it to the agent, answers into out. */
void syncconf_request(struct agent *a, const char *body, size_t len, struct ctl_out *out);

#endif
