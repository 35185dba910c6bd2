/* natctl netcheck: what the network looks like from here, like
 * `tailscale netcheck`: the public address each STUN server sees, and the
 * NAT's mapping, filtering, port allocation, hairpinning and (on request)
 * mapping lifetime, with how long each step took. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/discovery.h"
#include "agent/natctl.h"
#include "agent/udp.h"

struct netcheck {
	struct loop *loop;
	struct discovery d;
	int fd;
	bool json;
};

static void on_done(void *arg, struct discovery *d)
{
	struct netcheck *n = arg;

	(void)d;
	loop_stop(n->loop);
}

static void on_readable(void *arg, uint32_t events)
{
	struct netcheck *n = arg;
	uint8_t buf[1500];
	struct udp_msg m = { .buf = buf, .cap = sizeof(buf) };

	(void)events;
	for (int i = 0; i < 16 && udp_recv(n->fd, &m, 1) == 1; i++)
		discovery_input(&n->d, m.buf, m.len, &m.from);
}

static bool parse_gaps(struct nat_behavior_opts *o, const char *s)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	o->n_gaps = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *end;
		double sec = strtod(t, &end);
		if (*end || sec <= 0 || sec > 3600 || o->n_gaps == NAT_BEH_MAX_GAPS)
			return false;
		o->gaps_ms[o->n_gaps++] = (uint64_t)(sec * 1000);
	}
	return o->n_gaps > 0;
}

static const char *ms(uint64_t ns, char *buf, size_t len)
{
	if (ns >= 10000000000ull)
		snprintf(buf, len, "%.0f s", (double)ns / 1e9);
	else if (ns >= 1000000000ull)
		snprintf(buf, len, "%.1f s", (double)ns / 1e9);
	else
		snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
	return buf;
}

static const char *const step_names[NAT_STEP_COUNT] = {
	"mapping", "filtering", "hairpin", "allocation", "lifetime",
};

static void print_text(const struct netcheck *n)
{
	const struct nat_report *r = discovery_report(&n->d);
	char a[NA_ENDPOINT_STRLEN], b[NA_ENDPOINT_STRLEN], t[32];

	printf("local        %s\n", na_endpoint_str(&r->local, a, sizeof(a)));
	for (unsigned i = 0; i < n->d.n_servers; i++) {
		const struct discovery_server *s = &n->d.servers[i];
		if (s->answered)
			printf("server       %-24s public %-24s rtt %s\n",
			       na_endpoint_str(&s->server, a, sizeof(a)),
			       na_endpoint_str(&s->mapped, b, sizeof(b)), ms(s->rtt_ns, t, sizeof(t)));
		else
			printf("server       %-24s no answer\n", na_endpoint_str(&s->server, a, sizeof(a)));
	}
	if (r->error) {
		printf("error        %s\n", r->error);
		return;
	}
	if (!r->has_other)
		printf("note         %s has no second address (no RFC 5780): behaviour unknown\n",
		       na_endpoint_str(&r->server, a, sizeof(a)));
	printf("nat type     %s\n", nat_report_classic_name(r));
	printf("mapping      %s\n", nat_mapping_name(r->mapping));
	printf("filtering    %s\n", nat_filtering_name(r->filtering));
	if (r->alloc == NAT_ALLOC_SEQUENTIAL)
		printf("allocation   sequential, step %+d\n", r->alloc_delta);
	else
		printf("allocation   %s\n", nat_alloc_name(r->alloc));
	printf("hairpin      %s\n", r->hairpin < 0 ? "unknown" : r->hairpin ? "yes" : "no");
	if (!r->lifetime_measured)
		printf("lifetime     not measured (--lifetime)\n");
	else if (r->lifetime_dead_ms)
		printf("lifetime     survives %.0f s idle, gone after %.0f s\n",
		       (double)r->lifetime_alive_ms / 1000, (double)r->lifetime_dead_ms / 1000);
	else
		printf("lifetime     survives %.0f s idle (the longest gap tried)\n",
		       (double)r->lifetime_alive_ms / 1000);
	printf("took        ");
	for (int i = 0; i < NAT_STEP_COUNT; i++)
		if (r->step_ns[i])
			printf(" %s %s,", step_names[i], ms(r->step_ns[i], t, sizeof(t)));
	printf(" other servers %s\n", ms(n->d.servers_ns, t, sizeof(t)));
}

static void print_json(const struct netcheck *n)
{
	const struct nat_report *r = discovery_report(&n->d);
	char a[NA_ENDPOINT_STRLEN], b[NA_ENDPOINT_STRLEN];

	printf("{\n  \"local\": \"%s\",\n  \"servers\": [", na_endpoint_str(&r->local, a, sizeof(a)));
	for (unsigned i = 0; i < n->d.n_servers; i++) {
		const struct discovery_server *s = &n->d.servers[i];
		printf("%s\n    {\"server\": \"%s\", ", i ? "," : "", na_endpoint_str(&s->server, a, sizeof(a)));
		if (s->answered)
			printf("\"public\": \"%s\", \"rtt_ms\": %.3f}", na_endpoint_str(&s->mapped, b, sizeof(b)),
			       (double)s->rtt_ns / 1e6);
		else
			printf("\"public\": null}");
	}
	printf("\n  ],\n");
	if (r->error)
		printf("  \"error\": \"%s\",\n", r->error);
	printf("  \"rfc5780\": %s,\n", r->has_other ? "true" : "false");
	printf("  \"nat_type\": \"%s\",\n", nat_report_classic_name(r));
	printf("  \"mapping\": \"%s\",\n", nat_mapping_name(r->mapping));
	printf("  \"filtering\": \"%s\",\n", nat_filtering_name(r->filtering));
	printf("  \"allocation\": \"%s\",\n", nat_alloc_name(r->alloc));
	printf("  \"allocation_step\": %d,\n", r->alloc_delta);
	printf("  \"hairpin\": %s,\n", r->hairpin < 0 ? "null" : r->hairpin ? "true" : "false");
	if (r->lifetime_measured)
		printf("  \"lifetime\": {\"alive_s\": %.3f, \"dead_s\": %.3f},\n",
		       (double)r->lifetime_alive_ms / 1000, (double)r->lifetime_dead_ms / 1000);
	else
		printf("  \"lifetime\": null,\n");
	printf("  \"took_ms\": {");
	for (int i = 0; i < NAT_STEP_COUNT; i++)
		printf("\"%s\": %.3f, ", step_names[i], (double)r->step_ns[i] / 1e6);
	printf("\"other_servers\": %.3f}\n}\n", (double)n->d.servers_ns / 1e6);
}

static void usage(void)
{
	fprintf(stderr,
		"Usage: natctl netcheck [-c FILE | SERVER:PORT...] [--json] [--port N]\n"
		"                       [--lifetime] [--gaps S,S,...]\n"
		"  -c FILE     use the STUN servers of this config (else its Rendezvous)\n"
		"  --port N    local port to test from (default: any free port)\n"
		"  --lifetime  also measure how long an idle mapping lives (takes minutes;\n"
		"              idle gaps 15, 30, 60, 120, 180 s unless --gaps is given)\n"
		"  --json      machine-readable output\n");
}

int natctl_netcheck(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "lifetime", no_argument, NULL, 'l' },
		{ "gaps", required_argument, NULL, 'g' },
		{ "port", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct netcheck n = { .fd = -1 };
	struct na_endpoint servers[DISCOVERY_MAX_SERVERS], bind_ep;
	struct nat_behavior_opts o;
	const char *config = NULL;
	unsigned n_servers = 0;
	long port = 0;
	int c, err, status = 1;

	nat_behavior_opts_default(&o);
	o.n_socks = NAT_BEH_MAX_SOCKS;
	while ((c = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'j': n.json = true; break;
		case 'l': o.lifetime = true; break;
		case 'g':
			if (!parse_gaps(&o, optarg)) {
				fprintf(stderr, "natctl netcheck: --gaps: '%s' is not a list of seconds\n", optarg);
				return 1;
			}
			o.lifetime = true;
			break;
		case 'p':
			port = strtol(optarg, NULL, 10);
			if (port < 1 || port > 65535) {
				fprintf(stderr, "natctl netcheck: --port: '%s' is not a port\n", optarg);
				return 1;
			}
			break;
		default: usage(); return c == 'h' ? 0 : 1;
		}
	}
	for (int i = optind; i < argc && n_servers < DISCOVERY_MAX_SERVERS; i++) {
		if (!na_endpoint_parse(&servers[n_servers++], argv[i], false)) {
			fprintf(stderr, "natctl netcheck: '%s' is not an address:port\n", argv[i]);
			return 1;
		}
	}
	if (config) {
		struct config cfg;
		if (!config_load(&cfg, config, config_error_to_stderr, NULL))
			return 1;
		for (unsigned i = 0; i < cfg.n_stun && n_servers < DISCOVERY_MAX_SERVERS; i++)
			servers[n_servers++] = cfg.stun[i];
		if (!cfg.n_stun && cfg.has_rendezvous)
			servers[n_servers++] = cfg.rendezvous;
		config_free(&cfg);
	}
	if (!n_servers) {
		fprintf(stderr, "natctl netcheck: no STUN server: give SERVER:PORT, or -c FILE with STUN or Rendezvous\n");
		return 1;
	}
	bind_ep = (struct na_endpoint){ .port = (uint16_t)port };
	if ((err = udp_route_source(&servers[0], &bind_ep.ip)) < 0) {
		char a[NA_ENDPOINT_STRLEN];
		fprintf(stderr, "natctl netcheck: no route to %s: %s\n",
			na_endpoint_str(&servers[0], a, sizeof(a)), strerror(-err));
		return 1;
	}
	n.loop = loop_new();
	n.fd = udp_open(&bind_ep);
	if (!n.loop || n.fd < 0) {
		fprintf(stderr, "natctl netcheck: cannot open a UDP socket: %s\n", strerror(-n.fd));
		goto out;
	}
	loop_add_fd(n.loop, n.fd, EPOLLIN, on_readable, &n);
	if (o.lifetime) {
		uint64_t total = 0;
		for (unsigned i = 0; i < o.n_gaps; i++)
			total += o.gaps_ms[i];
		fprintf(stderr, "natctl netcheck: measuring the mapping lifetime: up to %.0f s\n",
			(double)total / 1000 + 10);
	}
	err = discovery_start(&n.d, n.loop, n.fd, servers, n_servers, &o, on_done, &n);
	if (err < 0) {
		fprintf(stderr, "natctl netcheck: cannot start: %s\n", strerror(-err));
		goto out;
	}
	loop_run(n.loop);
	if (n.json)
		print_json(&n);
	else
		print_text(&n);
	status = discovery_report(&n.d)->error ? 1 : 0;
	discovery_stop(&n.d);
out:
	if (n.fd >= 0)
		close(n.fd);
	loop_free(n.loop);
	return status;
}
