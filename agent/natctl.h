/* natctl subcommands, one file each (agent/natctl_*.c). Each takes the
 * subcommand's own argv (argv[0] is its name) and returns the exit status. */
#ifndef NATAGENT_AGENT_NATCTL_H
#define NATAGENT_AGENT_NATCTL_H

#include <stdbool.h>
#include <stddef.h>

int natctl_genkey(int argc, char **argv);
int natctl_pubkey(int argc, char **argv);
int natctl_netcheck(int argc, char **argv);
int natctl_bpf(int argc, char **argv);
int natctl_show(int argc, char **argv);
int natctl_up(int argc, char **argv);
int natctl_down(int argc, char **argv);
int natctl_showconf(int argc, char **argv);
int natctl_syncconf(int argc, char **argv);

/* Sends request ("show\n\n", "stop\n\n") to iface's natagent over its
 * control socket and gives back the whole reply (key=value lines and the
 * empty line), to free(). quiet: no message when it fails (for polling). */
int natctl_request(const char *iface, const char *request, bool quiet, char **out,
		   size_t *len);

#endif
