/* The control socket (agent/ctl.c) served from a real loop with a fake show
 * callback on a temporary NATAGENT_RUN_DIR, and `natctl show`
 * (agent/natctl_show.c) against it. Clients run in forked children (natctl
 * blocks on its socket) with their stdout and stderr in files, while the
 * parent runs the loop until the child exits. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/ctl.h"
#include "agent/loop.h"
#include "agent/natctl.h"
#include "tests/unit/unit.h"

#define MS 1000000ull
#define MANY_PEERS 5000

/* Short, so that every socket path fits a sockaddr_un. */
static char tmp[32], run_dir[48], out_path[48], err_path[48];
static struct loop *loop;

/* ---- the fake daemon ---- */

enum fake_mode { FAKE_GOLDEN, FAKE_MINIMAL, FAKE_MANY, FAKE_HUGE };

struct fake {
	enum fake_mode mode;
	unsigned calls;
};

#define K_HOME "HomeHomeHomeHomeHomeHomeHomeHomeHomeHomeHo4="
#define K_ONE  "OneOneOneOneOneOneOneOneOneOneOneOneOneOne8="
#define K_TWO  "TwoTwoTwoTwoTwoTwoTwoTwoTwoTwoTwoTwoTwoTwo8="
#define K_TRI  "TriTriTriTriTriTriTriTriTriTriTriTriTriTri8="

static void fake_golden(struct ctl_out *o)
{
	ctl_printf(o, "interface=home\npublic_key=%s\nlisten_port=51820\nmode=tun\n", K_HOME);
	ctl_printf(o, "public_endpoint=198.18.1.2:4567\nnat_type=port-restricted cone\n");
	ctl_printf(o, "nat_mapping=endpoint-independent\n");
	ctl_printf(o, "nat_filtering=address-and-port-dependent\n");
	ctl_printf(o, "rendezvous=198.18.0.10:3478\nrendezvous_state=registered\n");
	ctl_printf(o, "rendezvous_reflexive=198.18.1.2:4567\nrendezvous_age_ms=12345\n");
	ctl_printf(o, "future_key=from a newer natagent\n");
	/* A relayed peer with drops. */
	ctl_printf(o, "peer=%s\nallowed_ips=10.77.0.2/32\npath=relay\n", K_ONE);
	ctl_printf(o, "relay=198.18.0.10:3478\nsession_age_ms=123456\nrtt_us=1210\n");
	ctl_printf(o, "tx_bytes=3565158\nrx_bytes=1258291\ntx_dgrams=2900\nrx_dgrams=1100\n");
	ctl_printf(o, "drop_too_big=3\ndrop_full=0\ndrop_down=1\ndrop_spoofed=0\ndrop_bad=0\n");
	/* A direct one, no drops. */
	ctl_printf(o, "peer=%s\nallowed_ips=10.77.0.3/32,10.78.0.0/16\npath=direct\n", K_TWO);
	ctl_printf(o, "endpoint=198.18.2.2:51820\nsession_age_ms=3723999\nrtt_us=250\n");
	ctl_printf(o, "tx_bytes=100\nrx_bytes=0\ntx_dgrams=1\nrx_dgrams=0\n");
	/* A dead one: a mangled number, and an error text that needs escaping
	 * in JSON and defanging on a terminal. */
	ctl_printf(o, "peer=%s\nallowed_ips=\npath=none\nrx_bytes=12x\n", K_TRI);
	ctl_printf(o, "last_error=idle \"timeout\" \\ \x1b[31m\n");
	ctl_printf(o, "rendezvous_service=198.18.0.10:3478\nregistered_peers=2\n");
	ctl_printf(o, "relayed_dgrams=1\nrelayed_bytes=2048\ndropped_unknown=1\n");
	ctl_printf(o, "dropped_not_allowed=0\ndropped_rate=4\ndropped_bad=0\n");
}

/* Optional keys absent; ctl_put keeps a newline inside a value off the
 * protocol. */
static void fake_minimal(struct ctl_out *o)
{
	ctl_printf(o, "interface=stale\nmode=none\nnat_type=symmetric\n");
	ctl_printf(o, "rendezvous=198.18.0.10:3478\nrendezvous_state=down\n");
	ctl_printf(o, "rendezvous_age_ms=5000\n");
	ctl_put(o, "rendezvous_error", "handshake\ntimeout");
}

static void fake_peers(struct ctl_out *o, unsigned n)
{
	ctl_printf(o, "interface=home\nlisten_port=51820\nmode=tun\n");
	for (unsigned i = 0; i < n; i++)
		ctl_printf(o, "peer=peer%07u\nallowed_ips=10.%u.%u.0/24\npath=direct\n"
			   "endpoint=198.18.2.2:%u\ntx_bytes=%u\nrx_bytes=%u\n",
			   i, i >> 8 & 0xff, i & 0xff, 1024 + i % 60000, i * 7, i * 3);
}

static void fake_show(void *arg, struct ctl_out *out)
{
	struct fake *f = arg;

	f->calls++;
	switch (f->mode) {
	case FAKE_GOLDEN: fake_golden(out); break;
	case FAKE_MINIMAL: fake_minimal(out); break;
	case FAKE_MANY: fake_peers(out, MANY_PEERS); break;
	case FAKE_HUGE: fake_peers(out, 200000); break; /* ~20 MiB */
	}
}

/* ---- children ---- */

struct child {
	pid_t pid;
	int status;
	bool done;
	struct loop_timer poll, guard;
};

static void on_poll(void *arg, uint64_t now)
{
	struct child *ch = arg;

	if (waitpid(ch->pid, &ch->status, WNOHANG) == ch->pid) {
		ch->done = true;
		loop_stop(loop);
		return;
	}
	loop_timer_set(loop, &ch->poll, now + 2 * MS);
}

static void on_guard(void *arg, uint64_t now)
{
	struct child *ch = arg;

	(void)now;
	kill(ch->pid, SIGKILL); /* a hung client: on_poll reaps it */
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return strdup("");
	do {
		if (cap - n < 65536) {
			cap = cap * 2 + 65536;
			buf = realloc(buf, cap + 1);
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static void redirect(int fd, const char *path)
{
	int f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	dup2(f, fd);
	close(f);
}

/* Runs fn(arg) in a child while the loop serves; its stdout and stderr land
 * in *out and *err (freed by the caller). Returns its exit status, -1 if it
 * did not exit normally within 20 s. */
static int run_child(int (*fn)(void *), void *arg, char **out, size_t *out_len, char **err)
{
	struct child ch = { .done = false };

	fflush(stdout); /* or the child would print our TAP lines again */
	ch.pid = fork();
	if (ch.pid == 0) {
		int rc;

		redirect(STDOUT_FILENO, out_path);
		redirect(STDERR_FILENO, err_path);
		rc = fn(arg);
		fflush(stdout);
		fflush(stderr);
		_exit(rc);
	}
	loop_timer_init(&ch.poll, on_poll, &ch);
	loop_timer_init(&ch.guard, on_guard, &ch);
	loop_timer_set(loop, &ch.poll, loop_now() + 2 * MS);
	loop_timer_set(loop, &ch.guard, loop_now() + 20000 * MS);
	while (!ch.done)
		loop_run(loop);
	loop_timer_cancel(loop, &ch.poll);
	loop_timer_cancel(loop, &ch.guard);
	*out = slurp(out_path, out_len);
	*err = slurp(err_path, NULL);
	return WIFEXITED(ch.status) ? WEXITSTATUS(ch.status) : -1;
}

struct args {
	int argc;
	char *argv[4];
};

static int call_natctl(void *arg)
{
	struct args *a = arg;

	return natctl_show(a->argc, a->argv);
}

/* natctl show with up to two arguments; returns its exit status. */
static int natctl(const char *a1, const char *a2, char **out, char **err)
{
	struct args a = { .argc = 1, .argv = { "show" } };

	if (a1)
		a.argv[a.argc++] = (char *)a1;
	if (a2)
		a.argv[a.argc++] = (char *)a2;
	return run_child(call_natctl, &a, out, NULL, err);
}

struct raw {
	const char *iface;
	const char *req;
	size_t len;
	bool shut;         /* half-close after the request */
	unsigned pause_ms; /* a slow reader: this long between reads */
};

static int connect_to(const char *iface)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s.sock", run_dir, iface);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends a request as is and copies whatever comes back to stdout. */
static int raw_client(void *arg)
{
	struct raw *r = arg;
	char buf[32768];
	ssize_t n;
	int fd = connect_to(r->iface);
	struct timespec pause = { .tv_nsec = (long)r->pause_ms * 1000000 };

	if (fd < 0)
		return 2;
	if (send(fd, r->req, r->len, MSG_NOSIGNAL) < 0)
		fprintf(stderr, "send: %s\n", strerror(errno));
	if (r->shut)
		shutdown(fd, SHUT_WR);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
		nanosleep(&pause, NULL);
	}
	if (n < 0)
		fprintf(stderr, "read: %s\n", strerror(errno));
	close(fd);
	return 0;
}

static char *raw(const char *iface, const char *req, size_t len, bool shut, size_t *got)
{
	struct raw r = { iface, req, len, shut, 0 };
	char *out, *err;

	run_child(raw_client, &r, &out, got, &err);
	free(err);
	return out;
}

/* Runs the loop for ms milliseconds. */
static void on_stop(void *arg, uint64_t now)
{
	(void)arg;
	(void)now;
	loop_stop(loop);
}

static void spin(unsigned ms)
{
	struct loop_timer t;

	loop_timer_init(&t, on_stop, NULL);
	loop_timer_set(loop, &t, loop_now() + ms * MS);
	loop_run(loop);
	loop_timer_cancel(loop, &t);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static bool ends_with(const char *s, size_t len, const char *tail)
{
	size_t n = strlen(tail);

	return len >= n && !memcmp(s + len - n, tail, n);
}

static unsigned n_clients(const struct ctl *c)
{
	unsigned n = 0;

	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
		n += c->clients[i] != NULL;
	return n;
}

/* ---- the expected output ---- */

#define GOLDEN_TEXT \
	"interface: home\n" \
	"  public key: " K_HOME "\n" \
	"  listening port: 51820\n" \
	"  mode: tun\n" \
	"  public address: 198.18.1.2:4567 (port-restricted cone: mapping endpoint-independent, " \
	"filtering address-and-port-dependent)\n" \
	"  rendezvous: 198.18.0.10:3478, registered 12 seconds ago, seen as 198.18.1.2:4567\n" \
	"\n" \
	"peer: " K_ONE "\n" \
	"  path: relay via 198.18.0.10:3478\n" \
	"  allowed ips: 10.77.0.2/32\n" \
	"  session: up 2 minutes, 3 seconds, rtt 1.21 ms\n" \
	"  transfer: 1.20 MiB received, 3.40 MiB sent\n" \
	"  dropped: 3 too big, 1 no session\n" \
	"\n" \
	"peer: " K_TWO "\n" \
	"  endpoint: 198.18.2.2:51820\n" \
	"  allowed ips: 10.77.0.3/32, 10.78.0.0/16\n" \
	"  session: up 1 hour, 2 minutes, 3 seconds, rtt 0.25 ms\n" \
	"  transfer: 0 B received, 100 B sent\n" \
	"\n" \
	"peer: " K_TRI "\n" \
	"  path: none\n" \
	"  allowed ips: (none)\n" \
	"  last error: idle \"timeout\" \\ ?[31m\n" \
	"\n" \
	"rendezvous service: 198.18.0.10:3478\n" \
	"  registered peers: 2\n" \
	"  relayed: 1 datagram, 2.00 KiB\n" \
	"  dropped: 1 unknown peer, 4 rate limited\n"

#define MINIMAL_TEXT \
	"interface: stale\n" \
	"  mode: none\n" \
	"  public address: unknown (symmetric)\n" \
	"  rendezvous: 198.18.0.10:3478, down, last attempt 5 seconds ago, " \
	"last error: handshake timeout\n"

/* The golden object, indented by I (a string of spaces) as in an array. */
#define GOLDEN_JSON(I) \
	"{\n" \
	I "  \"interface\": \"home\",\n" \
	I "  \"public_key\": \"" K_HOME "\",\n" \
	I "  \"listen_port\": 51820,\n" \
	I "  \"mode\": \"tun\",\n" \
	I "  \"public_endpoint\": \"198.18.1.2:4567\",\n" \
	I "  \"nat_type\": \"port-restricted cone\",\n" \
	I "  \"nat_mapping\": \"endpoint-independent\",\n" \
	I "  \"nat_filtering\": \"address-and-port-dependent\",\n" \
	I "  \"rendezvous\": \"198.18.0.10:3478\",\n" \
	I "  \"rendezvous_state\": \"registered\",\n" \
	I "  \"rendezvous_reflexive\": \"198.18.1.2:4567\",\n" \
	I "  \"rendezvous_age_ms\": 12345,\n" \
	I "  \"peers\": [\n" \
	I "    {\n" \
	I "      \"public_key\": \"" K_ONE "\",\n" \
	I "      \"allowed_ips\": [\"10.77.0.2/32\"],\n" \
	I "      \"path\": \"relay\",\n" \
	I "      \"relay\": \"198.18.0.10:3478\",\n" \
	I "      \"session_age_ms\": 123456,\n" \
	I "      \"rtt_us\": 1210,\n" \
	I "      \"tx_bytes\": 3565158,\n" \
	I "      \"rx_bytes\": 1258291,\n" \
	I "      \"tx_dgrams\": 2900,\n" \
	I "      \"rx_dgrams\": 1100,\n" \
	I "      \"drop_too_big\": 3,\n" \
	I "      \"drop_full\": 0,\n" \
	I "      \"drop_down\": 1,\n" \
	I "      \"drop_spoofed\": 0,\n" \
	I "      \"drop_bad\": 0\n" \
	I "    },\n" \
	I "    {\n" \
	I "      \"public_key\": \"" K_TWO "\",\n" \
	I "      \"allowed_ips\": [\"10.77.0.3/32\", \"10.78.0.0/16\"],\n" \
	I "      \"path\": \"direct\",\n" \
	I "      \"endpoint\": \"198.18.2.2:51820\",\n" \
	I "      \"session_age_ms\": 3723999,\n" \
	I "      \"rtt_us\": 250,\n" \
	I "      \"tx_bytes\": 100,\n" \
	I "      \"rx_bytes\": 0,\n" \
	I "      \"tx_dgrams\": 1,\n" \
	I "      \"rx_dgrams\": 0\n" \
	I "    },\n" \
	I "    {\n" \
	I "      \"public_key\": \"" K_TRI "\",\n" \
	I "      \"allowed_ips\": [],\n" \
	I "      \"path\": \"none\",\n" \
	I "      \"last_error\": \"idle \\\"timeout\\\" \\\\ \\u001b[31m\"\n" \
	I "    }\n" \
	I "  ],\n" \
	I "  \"rendezvous_service\": {\n" \
	I "    \"listen\": \"198.18.0.10:3478\",\n" \
	I "    \"registered_peers\": 2,\n" \
	I "    \"relayed_dgrams\": 1,\n" \
	I "    \"relayed_bytes\": 2048,\n" \
	I "    \"dropped_unknown\": 1,\n" \
	I "    \"dropped_not_allowed\": 0,\n" \
	I "    \"dropped_rate\": 4,\n" \
	I "    \"dropped_bad\": 0\n" \
	I "  }\n" \
	I "}"

#define MINIMAL_JSON(I) \
	"{\n" \
	I "  \"interface\": \"stale\",\n" \
	I "  \"mode\": \"none\",\n" \
	I "  \"nat_type\": \"symmetric\",\n" \
	I "  \"rendezvous\": \"198.18.0.10:3478\",\n" \
	I "  \"rendezvous_state\": \"down\",\n" \
	I "  \"rendezvous_age_ms\": 5000,\n" \
	I "  \"rendezvous_error\": \"handshake timeout\",\n" \
	I "  \"peers\": []\n" \
	I "}"

/* ---- the tests ---- */

static void test_open(struct ctl *c, struct fake *f)
{
	const char *why = "";
	struct stat st;
	char path[PATH_MAX];

	CHECK_EQ_INT(ctl_open(c, loop, "home", fake_show, f, &why), 0, "server opens");
	if (*why)
		printf("#   %s\n", why);
	snprintf(path, sizeof(path), "%s/home.sock", run_dir);
	CHECK_EQ_STR(c->path, path, "socket at $NATAGENT_RUN_DIR/<ifname>.sock");
	CHECK(stat(run_dir, &st) == 0 && (st.st_mode & 0777) == 0700, "run dir created 0700");
	CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
	      "socket is 0600");
}

static void test_golden(struct fake *f)
{
	char *out, *err;
	int rc;

	f->mode = FAKE_GOLDEN;
	rc = natctl("home", NULL, &out, &err);
	CHECK_EQ_INT(rc, 0, "natctl show home exits 0");
	CHECK_EQ_STR(out, GOLDEN_TEXT, "natctl show home: text as wg lays it out");
	CHECK_EQ_STR(err, "", "nothing on stderr");
	free(out);
	free(err);
	rc = natctl("home", "--json", &out, &err);
	CHECK_EQ_INT(rc, 0, "natctl show home --json exits 0");
	CHECK_EQ_STR(out, GOLDEN_JSON("") "\n", "natctl show home --json: one typed object");
	free(out);
	free(err);
	rc = natctl("--json", "home", &out, &err);
	CHECK_EQ_STR(out, GOLDEN_JSON("") "\n", "--json may come first");
	free(out);
	free(err);
}

static void answer_stop(void *arg, struct ctl_out *out)
{
	(void)arg;
	ctl_printf(out, "stopping=1\n");
}

/* A request with a body: answers its length, its line count and (when
 * short) the body itself, each line as an echo= line. */
static void answer_echo(void *arg, const char *body, size_t len, struct ctl_out *out)
{
	size_t lines = 0;

	(void)arg;
	for (size_t i = 0; i < len; i++)
		lines += body[i] == '\n';
	ctl_printf(out, "len=%zu\nlines=%zu\nnul=%d\n", len, lines, body[len] == '\0');
	if (len < 256)
		for (const char *p = body; *p; p = strchr(p, '\n') + 1)
			ctl_printf(out, "echo=%.*s\n", (int)(strchr(p, '\n') - p), p);
}

/* A body of n bytes in lines of line= and 70 x's: "echo\n...\n\n". */
static char *big_body(size_t n, size_t *len)
{
	char *req = malloc(n + 16), *p = req;

	p += sprintf(p, "echo\n");
	while ((size_t)(p - req) + 80 < n)
		p += sprintf(p, "line=%070d\n", 0);
	p += sprintf(p, "\n");
	*len = (size_t)(p - req);
	return req;
}

static void test_body(struct ctl *c)
{
	static const char req[] = "echo\nline=a\nline=\r\nline=b c\r\n\n";
	char *out, *big;
	size_t len, blen;
	uint64_t too_long = c->stats.too_long;

	CHECK_EQ_INT(ctl_add_body_request(c, "echo", answer_echo, NULL), 0,
		     "a request that takes a body");
	out = raw("home", req, sizeof(req) - 1, false, &len);
	CHECK_EQ_STR(out, "len=22\nlines=3\nnul=1\necho=line=a\necho=line=\necho=line=b c\n\n",
		     "its body: every line up to the empty one, CRs gone, NUL after");
	free(out);
	out = raw("home", "echo\n\n", 6, false, &len);
	CHECK_EQ_STR(out, "len=0\nlines=0\nnul=1\n\n", "an empty body");
	free(out);
	big = big_body(3u << 20, &blen);
	out = raw("home", big, blen, false, &len);
	CHECK(strstr(out, "lines=41391\n") != NULL, "a 3 MiB body arrives whole");
	free(out);
	free(big);
	big = big_body(CTL_BODY_MAX + 4096, &blen);
	out = raw("home", big, blen, false, &len);
	CHECK_EQ_INT(len, 0, "a body over CTL_BODY_MAX: closed without a reply");
	CHECK_EQ_INT(c->stats.too_long - too_long, 1, "counted as too long");
	free(out);
	free(big);
	out = raw("home", "show\nline=a\n\n", 14, false, &len);
	CHECK_EQ_STR(out, "error=request must be one line\n\n",
		     "a request without a body still takes one line");
	free(out);
}

static void test_protocol(struct ctl *c, struct fake *f)
{
	static const char show_crlf[] = "show\r\n\r\n";
	char *out, longreq[5000];
	size_t len;
	unsigned calls = f->calls;
	uint64_t too_long;

	out = raw("home", "frobnicate\n\n", 12, false, &len);
	CHECK_EQ_STR(out, "error=unknown request \"frobnicate\"\n\n", "unknown request answered");
	free(out);
	out = raw("home", "a\"b\\\x01\n\n", 7, false, &len);
	CHECK_EQ_STR(out, "error=unknown request \"a\\x22b\\x5c\\x01\"\n\n",
		     "unknown request quoted back escaped");
	free(out);
	out = raw("home", "\n", 1, false, &len);
	CHECK_EQ_STR(out, "error=unknown request \"\"\n\n", "empty request answered");
	free(out);
	out = raw("home", "show\nmore\n\n", 11, false, &len);
	CHECK_EQ_STR(out, "error=request must be one line\n\n", "two-line request refused");
	free(out);
	CHECK_EQ_INT(f->calls, calls, "no show callback for bad requests");
	CHECK_EQ_INT(ctl_add_request(c, "stop", answer_stop, NULL), 0, "a request besides show");
	out = raw("home", "stop\n\n", 6, false, &len);
	CHECK_EQ_STR(out, "stopping=1\n\n", "... is answered by its own callback");
	free(out);
	out = raw("home", "stopp\n\n", 7, false, &len);
	CHECK_EQ_STR(out, "error=unknown request \"stopp\"\n\n", "... and only its exact name");
	free(out);
	test_body(c);
	for (unsigned i = c->n_extra; i < CTL_MAX_EXTRA; i++)
		ctl_add_request(c, "x", answer_stop, NULL);
	CHECK_EQ_INT(ctl_add_request(c, "y", answer_stop, NULL), -ENOSPC, "the table is bounded");
	CHECK_EQ_INT(f->calls, calls, "show's callback not called for them");
	out = raw("home", "show\n", 5, true, &len);
	CHECK_EQ_INT(len, 0, "EOF before the empty line: no reply");
	free(out);
	f->mode = FAKE_GOLDEN;
	out = raw("home", show_crlf, sizeof(show_crlf) - 1, false, &len);
	CHECK(!strncmp(out, "interface=home\n", 15) && ends_with(out, len, "dropped_bad=0\n\n"),
	      "CRLF request answered, reply ends with an empty line");
	free(out);
	too_long = c->stats.too_long;
	memset(longreq, 'a', sizeof(longreq));
	out = raw("home", longreq, sizeof(longreq), false, &len);
	CHECK_EQ_INT(len, 0, "request over 4 KiB: closed without a reply");
	CHECK_EQ_INT(c->stats.too_long - too_long, 1, "counted as too long");
	free(out);
	CHECK_EQ_INT(n_clients(c), 0, "every client gone");
}

static void test_many(struct ctl *c, struct fake *f)
{
	struct raw slow = { "home", "show\n\n", 6, false, 20 };
	uint64_t timed_out = c->stats.timed_out;
	char *out, *err, last[64];
	size_t len;
	int rc;

	f->mode = FAKE_MANY;
	out = raw("home", "show\n\n", 6, false, &len);
	CHECK_EQ_INT(count(out, "\npeer="), MANY_PEERS, "5000 peers: every peer in the reply");
	CHECK(ends_with(out, len, "rx_bytes=14997\n\n") && !strstr(out, "error="),
	      "5000 peers: the reply is whole");
	free(out);
	rc = natctl("home", NULL, &out, &err);
	snprintf(last, sizeof(last), "peer: peer%07u\n", MANY_PEERS - 1);
	CHECK(rc == 0 && count(out, "\npeer: ") == MANY_PEERS && strstr(out, last),
	      "5000 peers: natctl shows them all");
	free(out);
	free(err);
	rc = natctl("home", "--json", &out, &err);
	CHECK(rc == 0 && count(out, "\"public_key\": \"peer") == MANY_PEERS,
	      "5000 peers: --json lists them all");
	free(out);
	free(err);

	/* Over the cap: the lines that fit, whole, then the error. */
	f->mode = FAKE_HUGE;
	out = raw("home", "show\n\n", 6, false, &len);
	CHECK(len <= CTL_REPLY_MAX && len > CTL_REPLY_MAX - 4096, "huge reply: cut near the cap");
	CHECK(ends_with(out, len, "\nerror=reply too large\n\n") &&
	      !strstr(out, "\npeer=peer0199999\n"),
	      "huge reply: ends with error=reply too large");
	free(out);
	c->reply_cap = 64 << 10;
	rc = natctl("home", NULL, &out, &err);
	CHECK(rc != 0 && strstr(err, "natctl: natagent for home answered: reply too large\n"),
	      "natctl reports a cut reply and fails");
	CHECK(count(out, "\npeer: ") > 100, "natctl still shows what arrived");
	free(out);
	free(err);

	/* A reader slower than the idle deadline as a whole, never between two
	 * reads: it gets the whole reply (2 MiB in 32 KiB reads, 20 ms apart,
	 * about 1.3 s, against a 300 ms deadline). */
	c->reply_cap = 2 << 20;
	c->idle_ns = 300 * MS;
	run_child(raw_client, &slow, &out, &len, &err);
	CHECK(len > (2 << 20) - 4096 && ends_with(out, len, "\nerror=reply too large\n\n"),
	      "slow reader gets the whole reply");
	CHECK_EQ_INT(c->stats.timed_out, timed_out, "progress keeps a slow reader alive");
	free(out);
	free(err);
	c->reply_cap = CTL_REPLY_MAX;
	c->idle_ns = CTL_IDLE_NS;
}

static void test_limits(struct ctl *c)
{
	int fds[CTL_MAX_CLIENTS + 1];
	uint64_t busy = c->stats.busy, timed_out = c->stats.timed_out;
	char ch;
	bool held = true;

	for (int i = 0; i <= CTL_MAX_CLIENTS; i++) {
		fds[i] = connect_to("home");
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
	}
	spin(50);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		held = held && read(fds[i], &ch, 1) < 0 && errno == EAGAIN;
	CHECK(held, "16 silent clients held");
	CHECK_EQ_INT(read(fds[CTL_MAX_CLIENTS], &ch, 1), 0, "the 17th closed at once");
	CHECK_EQ_INT(c->stats.busy - busy, 1, "counted as busy");
	for (int i = 0; i <= CTL_MAX_CLIENTS; i++)
		close(fds[i]);
	spin(50);
	CHECK_EQ_INT(n_clients(c), 0, "clients that hang up are freed");

	c->idle_ns = 100 * MS;
	fds[0] = connect_to("home");
	CHECK(send(fds[0], "sh", 2, 0) == 2, "half a request sent");
	spin(300);
	CHECK_EQ_INT(read(fds[0], &ch, 1), 0, "idle client closed at its deadline");
	CHECK_EQ_INT(c->stats.timed_out - timed_out, 1, "counted as timed out");
	close(fds[0]);
	c->idle_ns = CTL_IDLE_NS;
}

/* A socket file nobody listens on, as a crashed natagent leaves. */
static void make_stale(const char *iface)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s.sock", run_dir, iface);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		printf("# bind %s: %s\n", sun.sun_path, strerror(errno));
	close(fd);
}

/* Who may take a socket path: not a second server, not over a file. */
static void test_claim(struct ctl *stale, struct fake *f2)
{
	struct ctl c2;
	const char *why;
	char want[PATH_MAX + 64], path[PATH_MAX];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/home.sock", run_dir);
	CHECK_EQ_INT(ctl_open(&c2, loop, "home", fake_show, f2, &why), -EADDRINUSE,
		     "second server for home refused");
	snprintf(want, sizeof(want), "another natagent serves %s", path);
	CHECK_EQ_STR(why, want, "and says who holds it");
	ctl_close(&c2);
	CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode), "the first server's socket stays");

	make_stale("stale");
	CHECK_EQ_INT(ctl_open(stale, loop, "stale", fake_show, f2, &why), 0,
		     "stale socket replaced");

	snprintf(path, sizeof(path), "%s/file.sock", run_dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	close(fd);
	CHECK(ctl_open(&c2, loop, "file", fake_show, f2, &why) < 0 &&
	      strstr(why, "is not a socket"), "a file that is not a socket is refused");
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode), "and left alone");
	unlink(path);
	CHECK(ctl_open(&c2, loop, "../x", fake_show, f2, &why) == -EINVAL &&
	      strstr(why, "not an interface name"), "a name with '/' is refused");
}

static void test_all(void)
{
	char *out, *err;
	int rc;

	rc = natctl(NULL, NULL, &out, &err);
	CHECK_EQ_INT(rc, 0, "natctl show (every interface) exits 0");
	CHECK_EQ_STR(out, GOLDEN_TEXT "\n" MINIMAL_TEXT, "every interface, blank line between");
	free(out);
	free(err);
	rc = natctl("--json", NULL, &out, &err);
	CHECK_EQ_STR(out, "[\n  " GOLDEN_JSON("  ") ",\n  " MINIMAL_JSON("  ") "\n]\n",
		     "--json for every interface: an array");
	free(out);
	free(err);
}

static void test_errors(void)
{
	char *out, *err, want[PATH_MAX + 128];
	int rc;

	rc = natctl("nosuch", NULL, &out, &err);
	snprintf(want, sizeof(want), "natctl: cannot connect to %s/nosuch.sock: No such file or "
		 "directory (is natagent running for nosuch?)\n", run_dir);
	CHECK(rc != 0, "no natagent: exit status not 0");
	CHECK_EQ_STR(err, want, "no natagent: the error names the socket and the cause");
	CHECK_EQ_STR(out, "", "no natagent: nothing on stdout");
	free(out);
	free(err);
	rc = natctl("a/b", NULL, &out, &err);
	CHECK(rc != 0 && !strcmp(err, "natctl: 'a/b' is not an interface name\n"),
	      "bad interface name refused");
	free(out);
	free(err);
	make_stale("dead");
	rc = natctl(NULL, NULL, &out, &err);
	CHECK(rc != 0 && strstr(err, "dead.sock: Connection refused (is natagent running for dead?)"),
	      "every interface: a dead socket is an error");
	CHECK(strstr(out, "interface: home\n") && strstr(out, "interface: stale\n"),
	      "and the live ones are still shown");
	free(out);
	free(err);
}

/* No natagent at all: not an error, as `wg show` with no interfaces. */
static void test_none(void)
{
	char *out, *err, p[80];
	int rc;

	snprintf(p, sizeof(p), "%s/dead.sock", run_dir);
	unlink(p);
	rc = natctl("--json", NULL, &out, &err);
	CHECK(rc == 0 && !strcmp(out, "[]\n"), "nothing running: --json prints []");
	free(out);
	free(err);
	rc = natctl(NULL, NULL, &out, &err);
	CHECK(rc == 0 && !strcmp(out, "") && strstr(err, "no natagent is running"),
	      "nothing running: said on stderr, exit 0");
	free(out);
	free(err);
}

static void cleanup(void)
{
	static const char *const names[] = { "dead.sock", "stale.sock", "home.sock" };
	char p[PATH_MAX + 32];

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		snprintf(p, sizeof(p), "%s/%s", run_dir, names[i]);
		unlink(p);
	}
	rmdir(run_dir);
	unlink(out_path);
	unlink(err_path);
	rmdir(tmp);
}

int main(void)
{
	struct ctl home, stale;
	struct fake f = { .mode = FAKE_GOLDEN }, f2 = { .mode = FAKE_MINIMAL };
	struct stat st;

	snprintf(tmp, sizeof(tmp), "/tmp/test_ctl.XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(run_dir, sizeof(run_dir), "%s/run", tmp);
	snprintf(out_path, sizeof(out_path), "%s/out", tmp);
	snprintf(err_path, sizeof(err_path), "%s/err", tmp);
	setenv(CTL_RUN_DIR_ENV, run_dir, 1);
	loop = loop_new();
	CHECK(loop != NULL, "loop created");

	test_open(&home, &f);
	test_golden(&f);
	test_protocol(&home, &f);
	test_many(&home, &f);
	test_limits(&home);
	test_claim(&stale, &f2);
	f.mode = FAKE_GOLDEN;
	test_all();
	test_errors();

	ctl_close(&stale);
	ctl_close(&home);
	CHECK(stat(home.path, &st) < 0 && errno == ENOENT, "close removes the socket");
	CHECK_EQ_INT(n_clients(&home), 0, "no client left behind");
	test_none();
	loop_free(loop);
	cleanup();
	return unit_done();
}
