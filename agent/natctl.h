/* natctl subcommands, one file each (agent/natctl_*.c). Each takes the
 * subcommand's own argv (argv[0] is its name) and returns the exit status. */
#ifndef NATAGENT_AGENT_NATCTL_H
#define NATAGENT_AGENT_NATCTL_H

int natctl_genkey(int argc, char **argv);
int natctl_pubkey(int argc, char **argv);
int natctl_netcheck(int argc, char **argv);
int natctl_bpf(int argc, char **argv);
int natctl_show(int argc, char **argv);

#endif
