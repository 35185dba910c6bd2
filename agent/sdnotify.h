/* systemd's readiness and status protocol (sd_notify(3)), without
 * libsystemd: one datagram of "KEY=VALUE" lines to the AF_UNIX socket that
 * $NOTIFY_SOCKET names (a path, or an abstract name after '@'). */
#ifndef NATAGENT_AGENT_SDNOTIFY_H
#define NATAGENT_AGENT_SDNOTIFY_H

/* Sends state ("READY=1", "STATUS=...", "STOPPING=1", several joined by
 * newlines). 0 when sent, and also when $NOTIFY_SOCKET is unset (natagent
 * started by hand or by another supervisor); -errno when it could not be. */
int sdnotify(const char *state);

#endif
