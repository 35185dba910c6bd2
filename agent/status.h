/* The `show` reply of the control socket (agent/status.c). */
#ifndef NATAGENT_AGENT_STATUS_H
#define NATAGENT_AGENT_STATUS_H

struct ctl_out;

/* A ctl_show_fn: arg is the struct agent. */
void agent_status(void *arg, struct ctl_out *out);

#endif
