/* natctl: natagent's command line, modelled on wg(8): one subcommand per
 * function, dispatched from the table below. */
#include <stdio.h>
#include <string.h>

#include "agent/natctl.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} subcommands[] = {
	{ "genkey", natctl_genkey, "Generates a new private key and writes it to stdout" },
	{ "pubkey", natctl_pubkey, "Reads a private key from stdin and writes a public key to stdout" },
	{ "show", natctl_show, "Shows a running natagent's interface, peers and rendezvous service" },
	{ "netcheck", natctl_netcheck, "Finds the public address and how the NAT behaves" },
	{ "bpf", natctl_bpf, "Shows the BPF fast path: counters by reason and the NAT-mapping cache" },
	{ "showconf", natctl_showconf, "Prints the running configuration of an interface" },
	{ "syncconf", natctl_syncconf, "Applies a config file's peers to a running interface" },
	{ "up", natctl_up, "Starts natagent with a config file and waits until its peers are up" },
	{ "down", natctl_down, "Stops the natagent of an interface" },
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: natctl <cmd> [<args>]\n\nAvailable subcommands:\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(*subcommands); i++)
		fprintf(out, "  %-8s %s\n", subcommands[i].name, subcommands[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(*subcommands); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "natctl: invalid subcommand '%s'\n", argv[1]);
	usage(stderr);
	return 1;
}
