/* natctl bpf [IFACE] [--json] [--pin-root DIR]: what the BPF fast path did,
 * read from the maps natagent pinned under <root>/natagent/<IFACE>/ (see
 * agent/fastpath.h): the managed ports, the counters by reason (summed over
 * CPUs) and the NAT-mapping cache, laid out like `wg show`. Without IFACE,
 * every interface that has pins. Loads and attaches nothing; reading the
 * pins needs root (CAP_BPF). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/bpf.h"
#include "agent/fastpath.h"
#include "agent/natctl.h"
#include "agent/natctl_fmt.h"

#define MAX_IFACES 64

struct entry {
	struct natpath_cache_key k;
	struct natpath_cache_val v;
};

struct stat_row {
	struct natpath_stats_key k; /* first: rows sort by it */
	struct natpath_stat s;
};

struct view {
	uint64_t now; /* CLOCK_BOOTTIME ns, as the maps' times */
	struct stat_row *stats;
	unsigned n_stats, cap_stats;
	struct entry *cache;
	unsigned n_cache, cap_cache;
	struct { uint16_t port; unsigned role; } ports[NATPATH_PORTS_MAX];
	unsigned n_ports;
};

/* ---- collecting ---- */

static int grow(void **arr, unsigned *cap, unsigned n, size_t size)
{
	void *p;

	if (n < *cap)
		return 0;
	*cap = *cap ? *cap * 2 : 64;
	p = realloc(*arr, *cap * size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	return 0;
}

static int collect_stat(void *ctx, const struct natpath_stats_key *k, const struct natpath_stat *s)
{
	struct view *v = ctx;

	if (grow((void **)&v->stats, &v->cap_stats, v->n_stats, sizeof(*v->stats)))
		return -ENOMEM;
	v->stats[v->n_stats++] = (struct stat_row){ *k, *s };
	return 0;
}

static int collect_entry(void *ctx, const struct natpath_cache_key *k,
			 const struct natpath_cache_val *val)
{
	struct view *v = ctx;

	if (grow((void **)&v->cache, &v->cap_cache, v->n_cache, sizeof(*v->cache)))
		return -ENOMEM;
	v->cache[v->n_cache++] = (struct entry){ *k, *val };
	return 0;
}

static int collect_port(void *ctx, uint16_t port, enum natpath_role role)
{
	struct view *v = ctx;

	if (v->n_ports < NATPATH_PORTS_MAX) {
		v->ports[v->n_ports].port = port;
		v->ports[v->n_ports++].role = role;
	}
	return 0;
}

static int cmp_port(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int cmp_stat(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct natpath_stats_key));
}

static uint64_t last_seen(const struct entry *e)
{
	return e->v.last_rx_ns > e->v.last_tx_ns ? e->v.last_rx_ns : e->v.last_tx_ns;
}

/* Most recent first, as wg sorts peers by their latest handshake. */
static int cmp_entry(const void *a, const void *b)
{
	uint64_t x = last_seen(a), y = last_seen(b);

	if (x != y)
		return x < y ? 1 : -1;
	return memcmp(&((const struct entry *)a)->k, &((const struct entry *)b)->k,
		      sizeof(struct natpath_cache_key));
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct natpath_cache_key));
}

/* One row per endpoint (the walk may meet one twice: agent/bpf.h), most
 * recent first. */
static void sort_cache(struct view *v)
{
	unsigned n = 0;

	qsort(v->cache, v->n_cache, sizeof(*v->cache), cmp_key);
	for (unsigned i = 0; i < v->n_cache; i++)
		if (!n || cmp_key(&v->cache[n - 1].k, &v->cache[i].k))
			v->cache[n++] = v->cache[i];
	v->n_cache = n;
	qsort(v->cache, v->n_cache, sizeof(*v->cache), cmp_entry);
}

/* ---- formatting, after wg show ---- */

static const char *family_name(unsigned f)
{
	return f == NATPATH_AF_INET ? "ipv4" : f == NATPATH_AF_INET6 ? "ipv6" : "-";
}

/* "1 minute, 12 seconds ago", "now", "never". */
static const char *ago(const struct view *v, uint64_t t, char *buf, size_t len)
{
	char d[128];
	uint64_t left;

	if (!t)
		return "never";
	left = v->now > t ? (v->now - t) / 1000000000ull : 0;
	if (!left)
		return "now";
	snprintf(buf, len, "%s ago", natctl_duration(left, d, sizeof(d)));
	return buf;
}

static const char *flags_str(uint32_t f, char *buf, size_t len, bool json)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ NATPATH_F_PUNCHED, "punched" }, { NATPATH_F_CONFIRMED, "confirmed" },
		{ NATPATH_F_RELAY, "relay" },
	};
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < sizeof(names) / sizeof(*names) && n < len; i++)
		if (f & names[i].bit)
			n += (size_t)snprintf(buf + n, len - n, json ? "%s\"%s\"" : "%s%s",
					      n ? ", " : "", names[i].name);
	return n || json ? buf : "none";
}

static void remote_str(const struct natpath_cache_key *k, char *buf, size_t len)
{
	struct na_endpoint ep;

	bpf_path_cache_remote(k, &ep);
	na_endpoint_str(&ep, buf, len);
}

/* Who holds XDP on the interface, if it is in this network namespace. */
static void xdp_state(const char *ifname, char *buf, size_t len, bool json)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int ifindex = (int)if_nametoindex(ifname);
	char name[BPF_OBJ_NAME_LEN];
	const char *mode = "";
	__u32 id = 0;

	if (!ifindex) {
		snprintf(buf, len, json ? "null" : "(no interface %s in this network namespace)",
			 ifname);
		return;
	}
	if (bpf_xdp_query(ifindex, 0, &q) == 0) {
		if (q.drv_prog_id) {
			id = q.drv_prog_id;
			mode = "native";
		} else if (q.skb_prog_id) {
			id = q.skb_prog_id;
			mode = "generic";
		}
	}
	if (!id) {
		snprintf(buf, len, json ? "{\"attached\": false}" :
			 "not attached (natagent stopped for a restart, or not running)");
		return;
	}
	bpf_path_prog_name(id, name, sizeof(name));
	if (json)
		snprintf(buf, len, "{\"attached\": true, \"mode\": \"%s\", \"program\": \"%s\", "
			 "\"id\": %u}", mode, name, id);
	else
		snprintf(buf, len, "%s mode, program %s (id %u)%s", mode, name[0] ? name : "?", id,
			 strcmp(name, NATPATH_XDP_PROG_NAME) ? ": not natagent's" : "");
}

/* A JSON string: quotes, backslashes and controls escaped. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void print_text(const struct view *v, const char *ifname, const char *dir, bool first)
{
	char a[NA_ENDPOINT_STRLEN], t1[96], b1[32], b2[32], f[64], x[160];

	xdp_state(ifname, x, sizeof(x), false);
	printf("%sinterface: %s\n", first ? "" : "\n", ifname);
	printf("  pins: %s\n", dir);
	printf("  xdp: %s\n", x);
	printf("  managed ports:");
	for (unsigned i = 0; i < v->n_ports; i++)
		printf("%s %u (%s)", i ? "," : "", v->ports[i].port, bpf_path_role_name(v->ports[i].role));
	printf("%s\n", v->n_ports ? "" : " none");
	printf("  cached endpoints: %u\n", v->n_cache);
	if (v->n_stats) {
		printf("\n  %-6s %-9s %-7s %-20s %12s %12s\n", "family", "class", "action", "reason",
		       "packets", "bytes");
		for (unsigned i = 0; i < v->n_stats; i++) {
			const struct natpath_stats_key *k = &v->stats[i].k;

			printf("  %-6s %-9s %-7s %-20s %12llu %12s\n", family_name(k->family),
			       bpf_path_class_name(k->class), bpf_path_action_name(k->action),
			       bpf_path_reason_name(k->reason),
			       (unsigned long long)v->stats[i].s.packets,
			       natctl_bytes(v->stats[i].s.bytes, b1, sizeof(b1)));
		}
	}
	for (unsigned i = 0; i < v->n_cache; i++) {
		const struct entry *e = &v->cache[i];

		remote_str(&e->k, a, sizeof(a));
		printf("\nremote: %s\n", a);
		printf("  local port: %u\n", e->k.local_port);
		printf("  latest rx: %s\n", ago(v, e->v.last_rx_ns, t1, sizeof(t1)));
		printf("  latest tx: %s\n", ago(v, e->v.last_tx_ns, t1, sizeof(t1)));
		printf("  transfer: %llu packet%s, %s received; %llu packet%s, %s sent\n",
		       (unsigned long long)e->v.rx_packets, e->v.rx_packets == 1 ? "" : "s",
		       natctl_bytes(e->v.rx_bytes, b1, sizeof(b1)), (unsigned long long)e->v.tx_packets,
		       e->v.tx_packets == 1 ? "" : "s", natctl_bytes(e->v.tx_bytes, b2, sizeof(b2)));
		printf("  flags: %s\n", flags_str(e->v.flags, f, sizeof(f), false));
	}
}

static void json_age(const struct view *v, uint64_t t)
{
	if (!t)
		printf("null");
	else
		printf("%.3f", v->now > t ? (double)(v->now - t) / 1e9 : 0.0);
}

static void print_json(const struct view *v, const char *ifname, const char *dir, bool first)
{
	char a[NA_ENDPOINT_STRLEN], f[64], x[192];

	xdp_state(ifname, x, sizeof(x), true);
	printf("%s\n    {\"name\": ", first ? "" : ",");
	json_str(ifname);
	printf(", \"pin_dir\": ");
	json_str(dir);
	printf(", \"xdp\": %s,\n     \"ports\": [", x);
	for (unsigned i = 0; i < v->n_ports; i++)
		printf("%s{\"port\": %u, \"role\": \"%s\"}", i ? ", " : "", v->ports[i].port,
		       bpf_path_role_name(v->ports[i].role));
	printf("],\n     \"stats\": [");
	for (unsigned i = 0; i < v->n_stats; i++) {
		const struct natpath_stats_key *k = &v->stats[i].k;

		printf("%s\n       {\"family\": \"%s\", \"class\": \"%s\", \"action\": \"%s\", "
		       "\"reason\": \"%s\", \"packets\": %llu, \"bytes\": %llu}", i ? "," : "",
		       family_name(k->family), bpf_path_class_name(k->class),
		       bpf_path_action_name(k->action), bpf_path_reason_name(k->reason),
		       (unsigned long long)v->stats[i].s.packets,
		       (unsigned long long)v->stats[i].s.bytes);
	}
	printf("%s],\n     \"nat_cache\": [", v->n_stats ? "\n     " : "");
	for (unsigned i = 0; i < v->n_cache; i++) {
		const struct entry *e = &v->cache[i];

		remote_str(&e->k, a, sizeof(a));
		printf("%s\n       {\"remote\": \"%s\", \"local_port\": %u, \"last_rx_age_s\": ",
		       i ? "," : "", a, e->k.local_port);
		json_age(v, e->v.last_rx_ns);
		printf(", \"last_tx_age_s\": ");
		json_age(v, e->v.last_tx_ns);
		printf(", \"rx_packets\": %llu, \"rx_bytes\": %llu, \"tx_packets\": %llu, "
		       "\"tx_bytes\": %llu, \"flags\": [%s]}",
		       (unsigned long long)e->v.rx_packets, (unsigned long long)e->v.rx_bytes,
		       (unsigned long long)e->v.tx_packets, (unsigned long long)e->v.tx_bytes,
		       flags_str(e->v.flags, f, sizeof(f), true));
	}
	printf("%s]}", v->n_cache ? "\n     " : "");
}

/* ---- one interface ---- */

static int show(const char *root, const char *ifname, bool json, bool first)
{
	struct view v = { .n_ports = 0 };
	struct bpf_pins *p;
	struct timespec ts;
	char dir[PATH_MAX];
	int err;

	snprintf(dir, sizeof(dir), "%s/natagent/%s", root, ifname);
	err = bpf_pins_open(&p, dir);
	if (err) {
		fprintf(stderr, "natctl bpf: %s%s\n", bpf_path_errmsg(),
			err == -EPERM || err == -EACCES ? " (reading BPF maps needs root)" : "");
		return err;
	}
	clock_gettime(CLOCK_BOOTTIME, &ts);
	v.now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	err = bpf_pins_ports_foreach(p, collect_port, &v);
	if (!err)
		err = bpf_pins_stats_foreach(p, collect_stat, &v);
	if (!err)
		err = bpf_pins_cache_foreach(p, collect_entry, &v);
	bpf_pins_close(p);
	if (err) {
		fprintf(stderr, "natctl bpf: %s: %s\n", dir,
			err == -ENOMEM ? strerror(ENOMEM) : bpf_path_errmsg());
		goto out;
	}
	qsort(v.ports, v.n_ports, sizeof(*v.ports), cmp_port);
	qsort(v.stats, v.n_stats, sizeof(*v.stats), cmp_stat);
	sort_cache(&v);
	if (json)
		print_json(&v, ifname, dir, first);
	else
		print_text(&v, ifname, dir, first);
out:
	free(v.stats);
	free(v.cache);
	return err;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: natctl bpf [IFACE] [--json] [--pin-root DIR]\n"
		"  Shows natagent's BPF fast path on IFACE (default: every interface it pinned\n"
		"  maps for): managed ports, counters by reason, the NAT-mapping cache.\n"
		"  --pin-root DIR  the bpffs natagent pins under (default $%s, else %s)\n"
		"  --json          machine-readable output\n", FASTPATH_PIN_ROOT_ENV, BPF_PATH_PIN_ROOT);
}

int natctl_bpf(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pin-root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *root = getenv(FASTPATH_PIN_ROOT_ENV);
	char *names[MAX_IFACES];
	char base[PATH_MAX];
	unsigned n = 0;
	bool json = false;
	struct statfs st;
	int c, status = 0;

	if (!root || !*root)
		root = BPF_PATH_PIN_ROOT;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'r': root = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (argc - optind > 1) {
		usage(stderr);
		return 1;
	}
	snprintf(base, sizeof(base), "%s/natagent", root);
	if (optind < argc) {
		char dir[sizeof(base) + IF_NAMESIZE + 1];
		struct stat sb;

		snprintf(dir, sizeof(dir), "%s/%.*s", base, IF_NAMESIZE - 1, argv[optind]);
		if (strlen(argv[optind]) >= IF_NAMESIZE || strchr(argv[optind], '/') ||
		    stat(dir, &sb) || !S_ISDIR(sb.st_mode)) {
			fprintf(stderr, "natctl bpf: no natagent BPF maps for %s under %s: is natagent "
				"running with BPF on %s?\n", argv[optind], base, argv[optind]);
			return 1;
		}
		names[n++] = strdup(argv[optind]);
	} else {
		DIR *d = opendir(base);
		struct dirent *de;

		while (d && (de = readdir(d)) && n < MAX_IFACES)
			if (de->d_name[0] != '.' && de->d_type == DT_DIR)
				names[n++] = strdup(de->d_name);
		if (d)
			closedir(d);
		if (!n) {
			bool fs = statfs(root, &st) == 0 && st.f_type == BPF_FS_MAGIC;

			fprintf(stderr, "natctl bpf: no natagent BPF maps under %s: is natagent running "
				"with BPF?%s%s%s\n", base,
				fs ? "" : "\n  (", fs ? "" : root,
				fs ? "" : " is not a bpffs in this mount namespace; a natagent started "
				"with `ip netns exec` mounts its own, which only it sees: give both "
				FASTPATH_PIN_ROOT_ENV " on a bpffs mounted outside)");
			return 1;
		}
		qsort(names, n, sizeof(*names), cmp_str);
	}
	if (json)
		printf("{\"interfaces\": [");
	for (unsigned i = 0; i < n; i++) {
		if (!names[i] || show(root, names[i], json, i == 0))
			status = 1;
		free(names[i]);
	}
	if (json)
		printf("\n]}\n");
	return status;
}
