/* natctl show [IFACE] [--json]: a running natagent's state, laid out as
 * `wg show` lays out WireGuard's. It asks over the control socket
 * (agent/ctl.h: "show\n\n", answered by key=value lines and an empty line)
 * and prints what it parsed.
 *
 * The reply is a list of sections, each opened by one of the header keys
 * interface=, peer= or rendezvous_service=; the keys after a header belong to
 * it until the next. Keys (all but the headers optional; unknown keys are
 * ignored, so a newer daemon works with an older natctl):
 *
 *   interface: public_key listen_port mode public_endpoint nat_type
 *     nat_mapping nat_filtering rendezvous rendezvous_state
 *     rendezvous_reflexive rendezvous_age_ms rendezvous_error
 *     port_mapping (one per protocol PortMapping names, repeated)
 *     reachability (one per watched address, repeated; its value is
 *       "EP STATE arrived=OK/N [checked_ms=MS] [refused=WORD asked_ms=MS]
 *       [via=SERVER] by=OWNER,...": STATE unknown|public|private, OK of the
 *       last N (<= 3) dial-backs arrived, WORD
 *       not-ours|private|rate-limited|unavailable, SERVER (who answered
 *       last) rendezvous|peer:NAME, OWNER
 *       rendezvous|discovery|host|portmap|other; agent/autonat.c)
 *     autonat_service (AutoNATService = true: where our dial-backs for
 *       peers leave from) autonat_service_requests autonat_service_dialed
 *       autonat_service_refused
 *   peer: allowed_ips path endpoint relay session_age_ms rtt_us tx_bytes
 *     rx_bytes tx_dgrams rx_dgrams drop_too_big drop_full drop_down
 *     drop_spoofed drop_bad last_error punch_attempts punch_state
 *     punch_age_ms punch_took_ms punch_checks_sent punch_event failovers
 *     keepalives_sent
 *     nat_ours nat_theirs pair (one per candidate pair, repeated) verdict
 *   rendezvous_service: registered_peers relayed_dgrams relayed_bytes
 *     dropped_unknown dropped_not_allowed dropped_rate dropped_bad
 *     autonat_from (the dial-backs' source, or "none") autonat_requests
 *     autonat_dialed autonat_refused_not_yours autonat_refused_private
 *     autonat_rate_limited autonat_unavailable (addresses, but requests)
 *
 * error= anywhere is the daemon saying the reply is not whole; natctl prints
 * what it got, names the error and exits 1.
 *
 * --json prints one object per reply with the keys above as fields (numbers
 * as numbers, allowed_ips as an array of strings, the pair lines as the
 * array "pairs", the port_mapping lines as "port_mappings", the
 * reachability lines as the array "reachability" of
 * objects {address, state, arrived, results, checked_ms, refused, asked_ms,
 * via, by}, absent keys left out),
 * peers in "peers" (the header as "public_key"), the rendezvous service in
 * "rendezvous_service" (its header as "listen"). `natctl show IFACE --json`
 * prints that object; `natctl show --json` prints an array of them, even of
 * one or none, so scripts always get the same type. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/ctl.h"
#include "agent/natctl_fmt.h"
#include "agent/natctl.h"

#define SHOW_TIMEOUT_S  10
/* More than the daemon ever sends, so a daemon's own "reply too large"
 * arrives rather than ours. */
#define SHOW_REPLY_MAX  (CTL_REPLY_MAX + (1u << 20))
#define SHOW_BUF_START  (64u << 10)
#define NATCTL_REACH_LEN 64 /* an endpoint's text, and then some */

struct kv {
	const char *key, *value;
};

enum sect_kind { SECT_INTERFACE, SECT_PEER, SECT_SERVICE };

/* A section is kvs[first .. first + n), its header first. */
struct section {
	enum sect_kind kind;
	size_t first, n;
};

struct reply {
	char *buf;
	size_t len;
	struct kv *kvs;
	size_t n_kvs;
	struct section *sects;
	size_t n_sects;
	const char *error; /* the daemon's error=, if any */
};

static const char *const headers[] = {
	[SECT_INTERFACE] = "interface", [SECT_PEER] = "peer", [SECT_SERVICE] = "rendezvous_service",
};

static void reply_free(struct reply *r)
{
	free(r->buf);
	free(r->kvs);
	free(r->sects);
}

/* ---- asking the daemon ---- */

/* What to try when a socket cannot be reached, after strerror. */
static const char *connect_hint(int err, const char *iface, char *buf, size_t len)
{
	if (err == ENOENT || err == ECONNREFUSED)
		snprintf(buf, len, " (is natagent running for %s?)", iface);
	else if (err == EACCES || err == EPERM)
		snprintf(buf, len, " (try again as root)");
	else
		buf[0] = '\0';
	return buf;
}

static int show_connect(const char *path, const char *iface, bool quiet)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = SHOW_TIMEOUT_S };
	char hint[64];
	int fd, err;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "natctl: socket: %s\n", strerror(errno));
		return -1;
	}
	/* A wedged daemon must not hang natctl. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = errno;
		if (!quiet)
			fprintf(stderr, "natctl: cannot connect to %s: %s%s\n", path, strerror(err),
				connect_hint(err, iface, hint, sizeof(hint)));
		close(fd);
		return -1;
	}
	return fd;
}

/* Where the reply ends: just past its empty line, searching the bytes new
 * since from; 0 if not there yet. */
static size_t reply_end(const char *buf, size_t from, size_t len)
{
	for (size_t i = from; i < len; i++)
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] == '\n'))
			return i + 1;
	return 0;
}

static bool grow(struct reply *r, size_t *cap)
{
	size_t n = *cap ? *cap * 2 : SHOW_BUF_START;
	char *b;

	if (n > SHOW_REPLY_MAX)
		n = SHOW_REPLY_MAX;
	b = realloc(r->buf, n);
	if (!b)
		return false;
	r->buf = b;
	*cap = n;
	return true;
}

/* Reads up to the reply's empty line into r->buf. */
static int read_reply(int fd, const char *path, struct reply *r)
{
	size_t cap = 0, end = 0;

	while (!end) {
		ssize_t n;

		if (r->len == cap && cap == SHOW_REPLY_MAX) {
			fprintf(stderr, "natctl: %s: reply larger than %u MiB\n", path,
				SHOW_REPLY_MAX >> 20);
			return -1;
		}
		if (r->len == cap && !grow(r, &cap)) {
			fprintf(stderr, "natctl: %s: out of memory for the reply\n", path);
			return -1;
		}
		n = read(fd, r->buf + r->len, cap - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			fprintf(stderr, "natctl: %s: natagent did not answer within %d seconds\n",
				path, SHOW_TIMEOUT_S);
			return -1;
		}
		if (n < 0) {
			fprintf(stderr, "natctl: cannot read from %s: %s\n", path, strerror(errno));
			return -1;
		}
		if (n == 0) {
			fprintf(stderr, "natctl: %s: natagent closed the connection before the end "
				"of its reply\n", path);
			return -1;
		}
		end = reply_end(r->buf, r->len, r->len + (size_t)n);
		r->len += (size_t)n;
	}
	r->len = end;
	return 0;
}

static int ask(const char *path, const char *iface, const char *request, bool quiet,
	       struct reply *r)
{
	size_t n = strlen(request);
	int fd = show_connect(path, iface, quiet), err;

	if (fd < 0)
		return -1;
	if (send(fd, request, n, MSG_NOSIGNAL) != (ssize_t)n) {
		fprintf(stderr, "natctl: cannot send to %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	err = read_reply(fd, path, r);
	close(fd);
	return err;
}

static int fetch(const char *path, const char *iface, struct reply *r)
{
	return ask(path, iface, "show\n\n", false, r);
}

int natctl_request(const char *iface, const char *request, bool quiet, char **out, size_t *len)
{
	struct reply r = { 0 };
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (ctl_socket_path(path, sizeof(path), iface) < 0) {
		if (!quiet)
			fprintf(stderr, "natctl: '%s' is not an interface name\n", iface);
		return -1;
	}
	if (ask(path, iface, request, quiet, &r) < 0) {
		free(r.buf);
		return -1;
	}
	*out = r.buf;
	*len = r.len;
	return 0;
}

/* ---- parsing ---- */

static int header_kind(const char *key)
{
	for (int k = 0; k < (int)(sizeof(headers) / sizeof(*headers)); k++)
		if (!strcmp(key, headers[k]))
			return k;
	return -1;
}

/* Adds one line, cut at its '=', to the current section (or opens one).
 * Lines before the first header and lines without '=' carry nothing we
 * know, and are skipped like unknown keys. */
static void parse_line(struct reply *r, char *line)
{
	char *eq = strchr(line, '=');
	int kind;

	if (!eq)
		return;
	*eq = '\0';
	if (!strcmp(line, "error")) {
		r->error = eq + 1;
		return;
	}
	kind = header_kind(line);
	if (kind >= 0)
		r->sects[r->n_sects++] = (struct section){ .kind = kind, .first = r->n_kvs };
	else if (!r->n_sects)
		return;
	r->kvs[r->n_kvs++] = (struct kv){ line, eq + 1 };
	r->sects[r->n_sects - 1].n++;
}

/* Cuts r->buf (which ends with the empty line) into sections, in place. */
static int parse_reply(struct reply *r)
{
	size_t lines = 0;
	char *p = r->buf, *end = r->buf + r->len;

	for (size_t i = 0; i < r->len; i++)
		lines += r->buf[i] == '\n';
	r->kvs = calloc(lines + 1, sizeof(*r->kvs));
	r->sects = calloc(lines + 1, sizeof(*r->sects));
	if (!r->kvs || !r->sects) {
		fprintf(stderr, "natctl: out of memory\n");
		return -1;
	}
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		*nl = '\0';
		if (nl == p)
			break; /* the empty line */
		parse_line(r, p);
		p = nl + 1;
	}
	return 0;
}

static const char *get(const struct reply *r, const struct section *s, const char *key)
{
	for (size_t i = s->first; i < s->first + s->n; i++)
		if (!strcmp(r->kvs[i].key, key))
			return r->kvs[i].value;
	return NULL;
}

/* A number only if all of it is digits that fit: a mangled value is
 * treated as absent, not as 0. */
static bool parse_u64(const char *s, uint64_t *v)
{
	uint64_t n = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return true;
}

static bool get_u64(const struct reply *r, const struct section *s, const char *key, uint64_t *v)
{
	return parse_u64(get(r, s, key), v);
}

static uint64_t get_u64_or0(const struct reply *r, const struct section *s, const char *key)
{
	uint64_t v = 0;

	get_u64(r, s, key, &v);
	return v;
}

/* ---- text output ---- */

/* "12 seconds ago" from an age in ms; "just now" under a second. */
static const char *ago(uint64_t ms, char *buf, size_t len)
{
	char d[128];

	if (ms < 1000)
		snprintf(buf, len, "just now");
	else
		snprintf(buf, len, "%s ago", natctl_duration(ms / 1000, d, sizeof(d)));
	return buf;
}

/* Values come from the daemon and partly from the network (error texts):
 * keep control characters, escape sequences included, off the terminal. */
static void defang(struct reply *r)
{
	for (size_t i = 0; i < r->n_kvs; i++)
		for (char *c = (char *)r->kvs[i].value; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
}

/* A growing line of ", "-separated parts. */
struct parts {
	char buf[512];
	size_t n;
};

static void part(struct parts *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void part(struct parts *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->n >= sizeof(p->buf))
		return;
	if (p->n)
		p->n += (size_t)snprintf(p->buf + p->n, sizeof(p->buf) - p->n, ", ");
	if (p->n >= sizeof(p->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(p->buf + p->n, sizeof(p->buf) - p->n, fmt, ap);
	va_end(ap);
	if (n > 0)
		p->n += (size_t)n;
}

/* "198.18.1.2:4567 (port-restricted cone: mapping endpoint-independent,
 * filtering address-and-port-dependent)", with what is known of it. */
static void print_public(const struct reply *r, const struct section *s)
{
	const char *ep = get(r, s, "public_endpoint"), *type = get(r, s, "nat_type");
	const char *map = get(r, s, "nat_mapping"), *filt = get(r, s, "nat_filtering");
	struct parts beh = { .n = 0 };

	if (map)
		part(&beh, "mapping %s", map);
	if (filt)
		part(&beh, "filtering %s", filt);
	if (!ep && !type && !beh.n)
		return;
	printf("  public address: %s", ep ? ep : "unknown");
	if (type && beh.n)
		printf(" (%s: %s)", type, beh.buf);
	else if (type || beh.n)
		printf(" (%s)", type ? type : beh.buf);
	printf("\n");
}

/* "198.18.0.10:3478, registered 12 seconds ago, seen as 198.18.1.2:4567". */
static void print_rendezvous(const struct reply *r, const struct section *s)
{
	const char *addr = get(r, s, "rendezvous"), *state = get(r, s, "rendezvous_state");
	const char *refl = get(r, s, "rendezvous_reflexive"), *err = get(r, s, "rendezvous_error");
	struct parts p = { .n = 0 };
	bool registered = state && !strcmp(state, "registered");
	uint64_t age;
	bool aged = get_u64(r, s, "rendezvous_age_ms", &age);
	char t[160];

	if (!addr && !state)
		return;
	part(&p, "%s", addr ? addr : "unknown");
	/* The age is since registration, or else since the last attempt. */
	if (registered && aged)
		part(&p, "registered %s", ago(age, t, sizeof(t)));
	else if (state)
		part(&p, "%s", state);
	if (!registered && aged)
		part(&p, "last attempt %s", ago(age, t, sizeof(t)));
	if (refl)
		part(&p, "seen as %s", refl);
	if (err)
		part(&p, "last error: %s", err);
	printf("  rendezvous: %s\n", p.buf);
}

/* One reachability= value cut into its parts (see the top comment). */
struct reach {
	char address[NATCTL_REACH_LEN], state[16], refused[16], by[64], via[32];
	uint64_t ok, n, checked_ms, asked_ms;
	bool has_checked, has_asked, has_counts;
};

static void reach_parse(const char *v, struct reach *o)
{
	char buf[NATCTL_REACH_LEN * 4], *save = NULL, *t;
	int i = 0;

	memset(o, 0, sizeof(*o));
	snprintf(buf, sizeof(buf), "%s", v);
	for (t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save), i++) {
		char *eq = strchr(t, '=');

		if (i == 0)
			snprintf(o->address, sizeof(o->address), "%s", t);
		else if (i == 1 && !eq)
			snprintf(o->state, sizeof(o->state), "%s", t);
		else if (!eq)
			continue;
		else if (!strncmp(t, "arrived=", 8))
			o->has_counts = sscanf(eq + 1, "%" SCNu64 "/%" SCNu64, &o->ok, &o->n) == 2;
		else if (!strncmp(t, "checked_ms=", 11))
			o->has_checked = parse_u64(eq + 1, &o->checked_ms);
		else if (!strncmp(t, "asked_ms=", 9))
			o->has_asked = parse_u64(eq + 1, &o->asked_ms);
		else if (!strncmp(t, "refused=", 8))
			snprintf(o->refused, sizeof(o->refused), "%s", eq + 1);
		else if (!strncmp(t, "by=", 3))
			snprintf(o->by, sizeof(o->by), "%s", eq + 1);
		else if (!strncmp(t, "via=", 4))
			snprintf(o->via, sizeof(o->via), "%s", eq + 1);
	}
}

/* peer: a peer answered, not the rendezvous. */
static const char *refused_text(const char *w, bool peer)
{
	if (!strcmp(w, "not-ours"))
		return peer ? "the peer sees us at another IP" : "the rendezvous sees us at another IP";
	if (!strcmp(w, "private"))
		return "a private address, never dialed";
	if (!strcmp(w, "rate-limited"))
		return peer ? "rate limited at the peer" : "rate limited at the rendezvous";
	if (!strcmp(w, "unavailable"))
		return peer ? "the peer does not offer AutoNAT"
			    : "the rendezvous has no second address to dial from";
	return w;
}

/* "198.18.4.1:41001 public (3 of 3 dial-backs arrived), checked 12
 * seconds ago", or why it is not known. */
static void print_reach(const char *v)
{
	struct reach o;
	struct parts p = { .n = 0 };
	char t[160];

	reach_parse(v, &o);
	if (o.has_counts && o.n)
		part(&p, "%s %s (%llu of %llu dial-backs arrived)", o.address, o.state,
		     (unsigned long long)o.ok, (unsigned long long)o.n);
	else
		part(&p, "%s %s", o.address, o.state);
	if (o.has_checked)
		part(&p, "checked %s", ago(o.checked_ms, t, sizeof(t)));
	if (!strncmp(o.via, "peer:", 5))
		part(&p, "asked of peer %s", o.via + 5);
	if (o.refused[0])
		part(&p, "%s%s", o.has_checked ? "last asked: " : "",
		     refused_text(o.refused, !strncmp(o.via, "peer:", 5)));
	if (o.refused[0] && o.has_asked)
		part(&p, "asked %s", ago(o.asked_ms, t, sizeof(t)));
	if (!o.has_checked && !o.refused[0])
		part(&p, "not checked yet");
	printf("  reachability: %s\n", p.buf);
}

/* "autonat service: dial-backs from 0.0.0.0:41234, 3 requests, 5
 * addresses dialed, 1 refused": AutoNATService = true. */
static void print_autonat_service(const struct reply *r, const struct section *s)
{
	const char *from = get(r, s, "autonat_service");
	uint64_t req = get_u64_or0(r, s, "autonat_service_requests");
	uint64_t dialed = get_u64_or0(r, s, "autonat_service_dialed");
	uint64_t refused = get_u64_or0(r, s, "autonat_service_refused");

	if (!from)
		return;
	printf("  autonat service: dial-backs from %s, %llu request%s, %llu address%s dialed, "
	       "%llu refused\n", from, (unsigned long long)req, req == 1 ? "" : "s",
	       (unsigned long long)dialed, dialed == 1 ? "" : "es", (unsigned long long)refused);
}

static void print_interface(const struct reply *r, const struct section *s)
{
	const char *v;

	printf("interface: %s\n", r->kvs[s->first].value);
	if ((v = get(r, s, "public_key")))
		printf("  public key: %s\n", v);
	if ((v = get(r, s, "listen_port")))
		printf("  listening port: %s\n", v);
	if ((v = get(r, s, "mode")))
		printf("  mode: %s\n", v);
	print_public(r, s);
	print_rendezvous(r, s);
	for (size_t i = s->first; i < s->first + s->n; i++)
		if (!strcmp(r->kvs[i].key, "port_mapping"))
			printf("  port mapping: %s\n", r->kvs[i].value);
	for (size_t i = s->first; i < s->first + s->n; i++)
		if (!strcmp(r->kvs[i].key, "reachability"))
			print_reach(r->kvs[i].value);
	print_autonat_service(r, s);
}

/* "endpoint: E" when direct, "path: relay via R", "path: none". */
static void print_path(const struct reply *r, const struct section *s)
{
	const char *path = get(r, s, "path"), *ep = get(r, s, "endpoint");
	const char *relay = get(r, s, "relay");

	if (ep && (!path || !strcmp(path, "direct")))
		printf("  endpoint: %s\n", ep);
	else if (path && relay && !strcmp(path, "relay"))
		printf("  path: relay via %s\n", relay);
	else if (path)
		printf("  path: %s\n", path);
}

/* "10.77.0.2/32, 10.78.0.0/16" from "10.77.0.2/32,10.78.0.0/16", as wg
 * lists them; "(none)" when empty. */
static void print_allowed(const struct reply *r, const struct section *s)
{
	const char *v = get(r, s, "allowed_ips");
	bool any = false;

	if (!v)
		return;
	printf("  allowed ips: ");
	while (*v) {
		size_t n = strcspn(v, ","), skip = strspn(v, " ");

		if (n > skip) {
			printf("%s%.*s", any ? ", " : "", (int)(n - skip), v + skip);
			any = true;
		}
		v += n + (v[n] == ',');
	}
	printf("%s\n", any ? "" : "(none)");
}

struct counter {
	const char *key, *text;
};

/* "dropped: 3 too big, 1 no session": only the counters that are not 0;
 * no line when all are. */
static void print_drops(const struct reply *r, const struct section *s,
			const struct counter *c, size_t n)
{
	struct parts p = { .n = 0 };

	for (size_t i = 0; i < n; i++) {
		uint64_t v = get_u64_or0(r, s, c[i].key);
		if (v)
			part(&p, "%llu %s", (unsigned long long)v, c[i].text);
	}
	if (p.n)
		printf("  dropped: %s\n", p.buf);
}

static const struct counter peer_drops[] = {
	{ "drop_too_big", "too big" }, { "drop_full", "queue full" },
	{ "drop_down", "no session" }, { "drop_spoofed", "spoofed source" },
	{ "drop_bad", "invalid" },
};

static const struct counter service_drops[] = {
	{ "dropped_unknown", "unknown peer" }, { "dropped_not_allowed", "not allowed" },
	{ "dropped_rate", "rate limited" }, { "dropped_bad", "invalid" },
};

/* The last punch attempt: how it went, both NATs, every pair, the verdict
 * (why the peer is relayed, when it is). */
static void print_punch(const struct reply *r, const struct section *s)
{
	struct parts p = { .n = 0 };
	uint64_t n, ms;
	const char *v, *t;
	char a[64];

	if (!get_u64(r, s, "punch_attempts", &n))
		return;
	part(&p, "attempt %llu", (unsigned long long)n);
	if ((v = get(r, s, "punch_state")))
		part(&p, "%s", v);
	if (get_u64(r, s, "punch_took_ms", &ms))
		part(&p, "in %llu ms", (unsigned long long)ms);
	if (get_u64(r, s, "punch_age_ms", &ms))
		part(&p, "%s ago", natctl_duration(ms / 1000, a, sizeof(a)));
	if (get_u64(r, s, "punch_checks_sent", &n))
		part(&p, "%llu checks sent", (unsigned long long)n);
	if (get_u64(r, s, "failovers", &n))
		part(&p, "%llu failovers", (unsigned long long)n);
	if (get_u64(r, s, "keepalives_sent", &n))
		part(&p, "%llu keepalives sent", (unsigned long long)n);
	printf("  punch: %s\n", p.buf);
	if ((v = get(r, s, "punch_event")))
		printf("  last path event: %s\n", v);
	v = get(r, s, "nat_ours");
	t = get(r, s, "nat_theirs");
	if (v)
		printf("  nat: ours %s; theirs %s\n", v, t ? t : "unknown");
	for (size_t i = s->first; i < s->first + s->n; i++)
		if (!strcmp(r->kvs[i].key, "pair"))
			printf("  pair: %s\n", r->kvs[i].value);
	if ((v = get(r, s, "verdict")))
		printf("  verdict: %s\n", v);
}

static void print_peer(const struct reply *r, const struct section *s)
{
	struct parts p = { .n = 0 };
	uint64_t age, rtt, rx = get_u64_or0(r, s, "rx_bytes"), tx = get_u64_or0(r, s, "tx_bytes");
	const char *v;
	char a[160], b[32];

	printf("peer: %s\n", r->kvs[s->first].value);
	print_path(r, s);
	print_allowed(r, s);
	if (get_u64(r, s, "session_age_ms", &age))
		part(&p, "up %s", natctl_duration(age / 1000, a, sizeof(a)));
	if (get_u64(r, s, "rtt_us", &rtt))
		part(&p, "rtt %.2f ms", (double)rtt / 1000);
	if (p.n)
		printf("  session: %s\n", p.buf);
	/* Like wg: no transfer line for a peer that never carried a byte. */
	if (rx || tx)
		printf("  transfer: %s received, %s sent\n", natctl_bytes(rx, a, sizeof(a)),
		       natctl_bytes(tx, b, sizeof(b)));
	print_drops(r, s, peer_drops, sizeof(peer_drops) / sizeof(*peer_drops));
	if ((v = get(r, s, "last_error")))
		printf("  last error: %s\n", v);
	print_punch(r, s);
}

static const struct counter autonat_refusals[] = {
	{ "autonat_refused_not_yours", "not the requester's address" },
	{ "autonat_refused_private", "private" },
	{ "autonat_rate_limited", "rate limited" },
	{ "autonat_unavailable", "unavailable" },
};

/* "autonat: dial-backs from A:P, 12 requests, 20 addresses dialed" and,
 * when any, "autonat refused: 1 not the requester's address, ...". */
static void print_autonat(const struct reply *r, const struct section *s)
{
	const char *from = get(r, s, "autonat_from");
	struct parts p = { .n = 0 };
	uint64_t req = get_u64_or0(r, s, "autonat_requests"), dialed = get_u64_or0(r, s, "autonat_dialed");

	if (!from)
		return;
	if (!strcmp(from, "none"))
		part(&p, "unavailable (no AlternateListen to dial back from)");
	else
		part(&p, "dial-backs from %s", from);
	part(&p, "%llu request%s", (unsigned long long)req, req == 1 ? "" : "s");
	part(&p, "%llu address%s dialed", (unsigned long long)dialed, dialed == 1 ? "" : "es");
	printf("  autonat: %s\n", p.buf);
	p.n = 0;
	for (size_t i = 0; i < sizeof(autonat_refusals) / sizeof(*autonat_refusals); i++) {
		uint64_t v = get_u64_or0(r, s, autonat_refusals[i].key);
		if (v)
			part(&p, "%llu %s", (unsigned long long)v, autonat_refusals[i].text);
	}
	if (p.n)
		printf("  autonat refused: %s\n", p.buf);
}

static void print_service(const struct reply *r, const struct section *s)
{
	uint64_t n, dgrams = 0, octets = 0;
	bool relayed;
	char b[32];

	printf("rendezvous service: %s\n", r->kvs[s->first].value);
	if (get_u64(r, s, "registered_peers", &n))
		printf("  registered peers: %llu\n", (unsigned long long)n);
	relayed = get_u64(r, s, "relayed_dgrams", &dgrams);
	relayed = get_u64(r, s, "relayed_bytes", &octets) || relayed;
	if (relayed)
		printf("  relayed: %llu datagram%s, %s\n", (unsigned long long)dgrams,
		       dgrams == 1 ? "" : "s", natctl_bytes(octets, b, sizeof(b)));
	print_drops(r, s, service_drops, sizeof(service_drops) / sizeof(*service_drops));
	print_autonat(r, s);
}

static void print_text(struct reply *r)
{
	static void (*const printers[])(const struct reply *, const struct section *) = {
		[SECT_INTERFACE] = print_interface, [SECT_PEER] = print_peer,
		[SECT_SERVICE] = print_service,
	};

	defang(r);
	for (size_t i = 0; i < r->n_sects; i++) {
		if (i)
			printf("\n");
		printers[r->sects[i].kind](r, &r->sects[i]);
	}
}

/* ---- JSON output ---- */

enum jtype { J_STR, J_NUM, J_LIST, J_ALL /* every value of a repeated key */ };

struct jfield {
	const char *key;  /* in the reply */
	const char *name; /* in the JSON; NULL: the same */
	enum jtype type;
};

static const struct jfield iface_fields[] = {
	{ "interface", NULL, J_STR }, { "public_key", NULL, J_STR },
	{ "listen_port", NULL, J_NUM }, { "mode", NULL, J_STR },
	{ "public_endpoint", NULL, J_STR }, { "nat_type", NULL, J_STR },
	{ "nat_mapping", NULL, J_STR }, { "nat_filtering", NULL, J_STR },
	{ "rendezvous", NULL, J_STR }, { "rendezvous_state", NULL, J_STR },
	{ "rendezvous_reflexive", NULL, J_STR }, { "rendezvous_age_ms", NULL, J_NUM },
	{ "rendezvous_error", NULL, J_STR }, { "port_mapping", "port_mappings", J_ALL },
	{ "autonat_service", NULL, J_STR }, { "autonat_service_requests", NULL, J_NUM },
	{ "autonat_service_dialed", NULL, J_NUM }, { "autonat_service_refused", NULL, J_NUM },
};

static const struct jfield peer_fields[] = {
	{ "peer", "public_key", J_STR }, { "allowed_ips", NULL, J_LIST },
	{ "path", NULL, J_STR }, { "endpoint", NULL, J_STR }, { "relay", NULL, J_STR },
	{ "session_age_ms", NULL, J_NUM }, { "rtt_us", NULL, J_NUM },
	{ "tx_bytes", NULL, J_NUM }, { "rx_bytes", NULL, J_NUM },
	{ "tx_dgrams", NULL, J_NUM }, { "rx_dgrams", NULL, J_NUM },
	{ "drop_too_big", NULL, J_NUM }, { "drop_full", NULL, J_NUM },
	{ "drop_down", NULL, J_NUM }, { "drop_spoofed", NULL, J_NUM },
	{ "drop_bad", NULL, J_NUM }, { "last_error", NULL, J_STR },
	{ "punch_attempts", NULL, J_NUM }, { "punch_state", NULL, J_STR },
	{ "punch_age_ms", NULL, J_NUM }, { "punch_took_ms", NULL, J_NUM },
	{ "punch_checks_sent", NULL, J_NUM }, { "punch_event", NULL, J_STR },
	{ "failovers", NULL, J_NUM }, { "keepalives_sent", NULL, J_NUM },
	{ "nat_ours", NULL, J_STR },
	{ "nat_theirs", NULL, J_STR }, { "pair", "pairs", J_ALL },
	{ "verdict", NULL, J_STR },
};

static const struct jfield service_fields[] = {
	{ "rendezvous_service", "listen", J_STR }, { "registered_peers", NULL, J_NUM },
	{ "relayed_dgrams", NULL, J_NUM }, { "relayed_bytes", NULL, J_NUM },
	{ "dropped_unknown", NULL, J_NUM }, { "dropped_not_allowed", NULL, J_NUM },
	{ "dropped_rate", NULL, J_NUM }, { "dropped_bad", NULL, J_NUM },
	{ "autonat_from", NULL, J_STR }, { "autonat_requests", NULL, J_NUM },
	{ "autonat_dialed", NULL, J_NUM }, { "autonat_refused_not_yours", NULL, J_NUM },
	{ "autonat_refused_private", NULL, J_NUM }, { "autonat_rate_limited", NULL, J_NUM },
	{ "autonat_unavailable", NULL, J_NUM },
};

/* Length of the valid UTF-8 sequence at s, 0 if there is none: JSON must be
 * UTF-8, and the values are not promised to be. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* The second byte's range rules out overlongs, surrogates and > U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* A JSON string: quotes, backslashes and controls escaped, bytes that are
 * not UTF-8 replaced by U+FFFD. */
static void json_str(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	putchar('"');
	while (p < end) {
		size_t n = *p ? utf8_len(p) : 0;

		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			printf("\\n");
		else if (*p == '\t')
			printf("\\t");
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else if (!n || p + n > end)
			printf("\\ufffd");
		else
			fwrite(p, 1, n, stdout);
		p += n && p + n <= end ? n : 1;
	}
	putchar('"');
}

/* ["a", "b"] from "a,b". */
static void json_list(const char *v)
{
	bool any = false;

	putchar('[');
	while (*v) {
		size_t n = strcspn(v, ","), skip = strspn(v, " ");

		if (n > skip) {
			if (any)
				printf(", ");
			json_str(v + skip, n - skip);
			any = true;
		}
		v += n + (v[n] == ',');
	}
	putchar(']');
}

/* ["v1", "v2"] from every key=v line of the section. */
static void json_all(const struct reply *r, const struct section *s, const char *key)
{
	bool any = false;

	putchar('[');
	for (size_t i = s->first; i < s->first + s->n; i++) {
		if (strcmp(r->kvs[i].key, key))
			continue;
		if (any)
			printf(", ");
		json_str(r->kvs[i].value, strlen(r->kvs[i].value));
		any = true;
	}
	putchar(']');
}

/* Prints the fields present, each on its own line at indent, with a comma
 * before each but the first (*first tracks it across calls). */
static void json_fields(const struct reply *r, const struct section *s, const struct jfield *f,
			size_t n, int indent, bool *first)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = get(r, s, f[i].key);
		const char *name = f[i].name ? f[i].name : f[i].key;
		uint64_t num = 0;

		if (!v || (f[i].type == J_NUM && !parse_u64(v, &num)))
			continue;
		printf("%s\n%*s\"%s\": ", *first ? "" : ",", indent, "", name);
		*first = false;
		if (f[i].type == J_ALL)
			json_all(r, s, f[i].key);
		else if (f[i].type == J_NUM)
			printf("%llu", (unsigned long long)num);
		else if (f[i].type == J_LIST)
			json_list(v);
		else
			json_str(v, strlen(v));
	}
}

/* "reachability": [{...}, ...] from the interface's reachability= lines;
 * nothing when there are none. */
static void json_reach(const struct reply *r, const struct section *s, int in, bool *first)
{
	bool any = false;

	for (size_t i = s->first; i < s->first + s->n; i++) {
		struct reach o;

		if (strcmp(r->kvs[i].key, "reachability"))
			continue;
		reach_parse(r->kvs[i].value, &o);
		if (!any)
			printf("%s\n%*s\"reachability\": [", *first ? "" : ",", in, "");
		printf("%s\n%*s{\"address\": ", any ? "," : "", in + 2, "");
		json_str(o.address, strlen(o.address));
		printf(", \"state\": ");
		json_str(o.state, strlen(o.state));
		if (o.has_counts)
			printf(", \"arrived\": %llu, \"results\": %llu", (unsigned long long)o.ok,
			       (unsigned long long)o.n);
		if (o.has_checked)
			printf(", \"checked_ms\": %llu", (unsigned long long)o.checked_ms);
		if (o.refused[0]) {
			printf(", \"refused\": ");
			json_str(o.refused, strlen(o.refused));
		}
		if (o.has_asked)
			printf(", \"asked_ms\": %llu", (unsigned long long)o.asked_ms);
		if (o.via[0]) {
			printf(", \"via\": ");
			json_str(o.via, strlen(o.via));
		}
		printf(", \"by\": ");
		json_list(o.by);
		printf("}");
		any = true;
		*first = false;
	}
	if (any)
		printf("\n%*s]", in, "");
}

static const struct section *first_of(const struct reply *r, enum sect_kind kind)
{
	for (size_t i = 0; i < r->n_sects; i++)
		if (r->sects[i].kind == kind)
			return &r->sects[i];
	return NULL;
}

static void json_peers(const struct reply *r, int in)
{
	bool any = false;

	printf(",\n%*s\"peers\": [", in, "");
	for (size_t i = 0; i < r->n_sects; i++) {
		bool first = true;

		if (r->sects[i].kind != SECT_PEER)
			continue;
		printf("%s\n%*s{", any ? "," : "", in + 2, "");
		json_fields(r, &r->sects[i], peer_fields, sizeof(peer_fields) / sizeof(*peer_fields),
			    in + 4, &first);
		printf("\n%*s}", in + 2, "");
		any = true;
	}
	if (any)
		printf("\n%*s", in, "");
	printf("]");
}

/* One reply as one object at indent in (its own first line not indented). */
static void print_json(const struct reply *r, int in)
{
	const struct section *iface = first_of(r, SECT_INTERFACE);
	const struct section *svc = first_of(r, SECT_SERVICE);
	bool first = true;

	printf("{");
	if (iface) {
		json_fields(r, iface, iface_fields, sizeof(iface_fields) / sizeof(*iface_fields),
			    in + 2, &first);
		json_reach(r, iface, in + 2, &first);
	}
	if (first) /* "peers" always follows with a leading comma */
		printf("\n%*s\"interface\": null", in + 2, "");
	json_peers(r, in + 2);
	if (svc) {
		bool f = true;

		printf(",\n%*s\"rendezvous_service\": {", in + 2, "");
		json_fields(r, svc, service_fields, sizeof(service_fields) / sizeof(*service_fields),
			    in + 4, &f);
		printf("\n%*s}", in + 2, "");
	}
	if (r->error) {
		printf(",\n%*s\"error\": ", in + 2, "");
		json_str(r->error, strlen(r->error));
	}
	printf("\n%*s}", in, "");
}

/* ---- the subcommand ---- */

struct show_opts {
	bool json;
	bool array; /* --json for every interface: objects in one array */
	unsigned shown;
};

/* Asks one interface and prints it; returns 0 or -1 (reported). */
static int show_one(struct show_opts *o, const char *iface)
{
	struct reply r = { .buf = NULL };
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int err = ctl_socket_path(path, sizeof(path), iface);

	if (err == -EINVAL) {
		fprintf(stderr, "natctl: '%s' is not an interface name\n", iface);
		return -1;
	}
	if (err) {
		fprintf(stderr, "natctl: control socket path %s/%s.sock is too long\n", ctl_run_dir(),
			iface);
		return -1;
	}
	err = fetch(path, iface, &r);
	if (!err)
		err = parse_reply(&r);
	if (!err) {
		if (o->shown)
			printf(o->json ? ",\n  " : "\n");
		else if (o->array)
			printf("\n  ");
		if (o->json)
			print_json(&r, o->array ? 2 : 0);
		else
			print_text(&r);
		o->shown++;
		if (r.error) {
			fprintf(stderr, "natctl: natagent for %s answered: %s\n", iface, r.error);
			err = -1;
		}
	}
	reply_free(&r);
	return err;
}

/* Whether a run directory entry is a control socket's name. */
static int is_socket_name(const struct dirent *de)
{
	size_t len = strlen(de->d_name);

	return len > 5 && !strcmp(de->d_name + len - 5, ".sock");
}

/* Every <iface>.sock in the run directory, in name order. */
static int show_all(struct show_opts *o)
{
	const char *dir = ctl_run_dir();
	struct dirent **list;
	int n, status = 0;

	/* No directory is no natagent, as no sockets are. */
	n = scandir(dir, &list, is_socket_name, alphasort);
	if (n < 0 && errno != ENOENT) {
		int err = errno;

		fprintf(stderr, "natctl: cannot read %s: %s%s\n", dir, strerror(err),
			err == EACCES ? " (try again as root)" : "");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		list[i]->d_name[strlen(list[i]->d_name) - 5] = '\0';
		if (show_one(o, list[i]->d_name) < 0)
			status = 1;
		free(list[i]);
	}
	if (n > 0)
		free(list);
	if (n <= 0 && !o->json)
		fprintf(stderr, "natctl: no natagent is running (no sockets in %s)\n", dir);
	return status;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: natctl show [IFACE] [--json]\n"
		"  Shows a running natagent's interface, peers and rendezvous service,\n"
		"  asked over $%s/IFACE.sock (default %s);\n"
		"  without IFACE, every natagent running.\n"
		"  --json  machine-readable output\n", CTL_RUN_DIR_ENV, CTL_RUN_DIR_DEFAULT);
}

/* A full disk or a closed pipe must not pass for a successful show. */
static int flush_stdout(int status)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "natctl: cannot write the output: %s\n", strerror(errno));
		return 1;
	}
	return status;
}

int natctl_show(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct show_opts o = { .json = false };
	int c, status;

	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'j': o.json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (argc - optind > 1) {
		usage(stderr);
		return 1;
	}
	if (optind < argc) {
		status = show_one(&o, argv[optind]) < 0;
		if (o.shown && o.json)
			printf("\n");
		return flush_stdout(status);
	}
	o.array = o.json;
	if (o.array)
		printf("[");
	status = show_all(&o);
	if (o.array)
		printf("%s]\n", o.shown ? "\n" : "");
	return flush_stdout(status);
}
