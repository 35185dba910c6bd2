/* The control socket: how `natctl show` asks a running natagent for its state,
 * modelled on WireGuard's UAPI text protocol (`wg show` over
 * /var/run/wireguard/<if>.sock).
 *
 * The daemon serves $NATAGENT_RUN_DIR/<ifname>.sock (default /run/natagent,
 * created 0700; the socket is 0600) from its loop. The protocol is text over
 * SOCK_STREAM:
 *
 *   request:  one line, then an empty line:  "show\n\n"
 *   reply:    "key=value\n" lines, then an empty line; the server then closes.
 *
 * A request registered with ctl_add_body_request takes a body: "key=value"
 * lines (never empty) between its request line and the empty line, e.g.
 * `natctl syncconf`'s
 *
 *   "syncconf\nfile=nt0.conf\nline=[Interface]\nline=\nline=PrivateKey = ...\n\n"
 *
 * (the configuration file, each of its lines as a line= line, so that its
 * own empty lines cannot end the request). Every other request is one line.
 *
 * The empty line (not EOF) ends a request, as in wg's UAPI, so a client needs
 * no half-close and a person can type the request into `socat - UNIX:...`.
 * A client that sends EOF before the empty line gets no reply. An unknown
 * request gets "error=unknown request \"<request>\"\n\n"; a second non-empty
 * line gets "error=request must be one line\n\n". A reply that would exceed
 * the cap ends with "error=reply too large\n\n" after the lines that fit.
 *
 * Limits, so that a stuck or hostile client cannot hold the daemon: at most
 * CTL_MAX_CLIENTS connections at once (more are closed at once), a request of
 * at most CTL_REQUEST_MAX bytes, CTL_BODY_MAX with a body (longer: closed;
 * the buffer grows past CTL_REQUEST_MAX only for a request line registered
 * as taking a body), and CTL_IDLE_NS both to
 * send the whole request and, while the reply is written, between two writes
 * that make progress (so a slow reader of a large reply is not cut off).
 *
 * The keys of the `show` reply are listed in agent/natctl_show.c, which
 * parses them. */
#ifndef NATAGENT_AGENT_CTL_H
#define NATAGENT_AGENT_CTL_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "agent/loop.h"

#define CTL_RUN_DIR_ENV     "NATAGENT_RUN_DIR"
#define CTL_RUN_DIR_DEFAULT "/run/natagent"
#define CTL_MAX_CLIENTS     16
#define CTL_REQUEST_MAX     4096
#define CTL_BODY_MAX        (4u << 20) /* a config of thousands of peers */
#define CTL_REPLY_MAX       (16u << 20)
#define CTL_IDLE_NS         (5 * 1000000000ull)
#define CTL_MAX_EXTRA       8

/* A reply being built; the show callback appends to it with ctl_printf. */
struct ctl_out;

/* Appends the daemon's state to out. Runs inside the loop, synchronously. */
typedef void (*ctl_show_fn)(void *arg, struct ctl_out *out);
/* The same for a request with a body: body holds its lines, each ended by
 * '\n' (a CRLF's '\r' removed), len bytes, NUL-terminated after them. */
typedef void (*ctl_body_fn)(void *arg, const char *body, size_t len, struct ctl_out *out);

struct ctl_client;

struct ctl_stats {
	uint64_t accepted;  /* connections taken in */
	uint64_t busy;      /* closed at once: CTL_MAX_CLIENTS were connected */
	uint64_t too_long;  /* closed: request over CTL_REQUEST_MAX */
	uint64_t timed_out; /* closed: idle past idle_ns */
	uint64_t replies;   /* replies written whole */
};

struct ctl {
	struct loop *loop;
	int fd; /* the listening socket, -1 when closed */
	ctl_show_fn show;
	void *arg;
	/* Requests besides "show": ctl_add_request. */
	struct {
		const char *name;
		ctl_show_fn fn;   /* one of fn and body is set */
		ctl_body_fn body;
		void *arg;
	} extra[CTL_MAX_EXTRA];
	unsigned n_extra;
	struct ctl_client *clients[CTL_MAX_CLIENTS];
	struct loop_timer accept_retry; /* accept paused: out of fds */
	size_t reply_cap;  /* CTL_REPLY_MAX; tests lower it */
	uint64_t idle_ns;  /* CTL_IDLE_NS; tests lower it */
	struct ctl_stats stats;
	dev_t dev;         /* the socket file bound, so that close unlinks */
	ino_t ino;         /* only ours, never a successor's */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char error[sizeof(((struct sockaddr_un *)0)->sun_path) + 128];
};

/* The run directory: $NATAGENT_RUN_DIR, else CTL_RUN_DIR_DEFAULT. */
const char *ctl_run_dir(void);

/* Writes "<run dir>/<ifname>.sock" to buf. Returns 0, -EINVAL if ifname is
 * not an interface name (1-15 of A-Z a-z 0-9 _ = + . -) or -ENAMETOOLONG if
 * the path does not fit a sockaddr_un. Shared by daemon and natctl. */
int ctl_socket_path(char *buf, size_t len, const char *ifname);

/* Serves ifname's socket from loop, answering `show` with show(arg, out).
 * Returns 0, or -errno with *why pointing at a message that names what failed
 * (it lives in c->error). On failure c is left closed; ctl_close is a no-op. */
int ctl_open(struct ctl *c, struct loop *loop, const char *ifname, ctl_show_fn show, void *arg,
	     const char **why);
/* Drops every client, closes the socket and unlinks it (if still ours). */
void ctl_close(struct ctl *c);

/* Answers request name (one line, e.g. "stop") with fn(arg, out), like
 * "show". -ENOSPC past CTL_MAX_EXTRA. */
int ctl_add_request(struct ctl *c, const char *name, ctl_show_fn fn, void *arg);
/* The same for a request that takes a body (see the top). */
int ctl_add_body_request(struct ctl *c, const char *name, ctl_body_fn fn, void *arg);

/* Appends text to the reply. Each call should append whole lines, each
 * "key=value\n", and no empty line (an empty line ends the reply). Once the
 * reply reaches its cap every further call is dropped and the reply ends
 * with "error=reply too large"; calls are never split mid-text. */
void ctl_printf(struct ctl_out *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends "key=value\n" with every control character of value (newlines
 * included) replaced by a space: for free text such as error messages, which
 * must not end the line or the reply early. */
void ctl_put(struct ctl_out *out, const char *key, const char *value);

#endif
