/* natagent: the daemon. `natagent -n [-v] -c FILE` only checks the config
 * (and with -v prints it normalised), as bgpd -nv does. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/log.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: natagent [-n] [-v] [-d] [-B|--no-bpf] -c FILE\n"
		"  -c FILE   the configuration (its name, less .conf, names the interface)\n"
		"  -n        check the configuration and exit: 0 if good, 1 if not\n"
		"  -v        with -n, print the configuration parsed and normalised\n"
		"  -d        debug logging\n"
		"  -B, --no-bpf  no BPF: do in userspace what the XDP/tc programs would\n"
		"Signals: INT/TERM stop (removing TUN, routes, XDP and pins); HUP reads FILE\n"
		"again and applies its peers (as natctl syncconf); USR1 moves dialed\n"
		"sessions to a new local port; USR2 stops keeping the BPF maps pinned\n");
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool check_only = false, verbose = false;
	struct daemon_opts opts = { 0 };
	struct config cfg;
	int c;

	static const struct option long_opts[] = {
		{ "no-bpf", no_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};

	while ((c = getopt_long(argc, argv, "c:nvdhB", long_opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'n': check_only = true; break;
		case 'v': verbose = true; break;
		case 'd': log_set_level(LOG_DEBUG); break;
		case 'B': opts.no_bpf = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 1;
	}
	if (!config_load(&cfg, path, config_error_to_stderr, NULL))
		return 1;
	if (check_only) {
		if (verbose)
			config_print(&cfg, stdout);
		config_free(&cfg);
		return 0;
	}
	int status = daemon_run(&cfg, &opts);
	config_free(&cfg);
	return status;
}
