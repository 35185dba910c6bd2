/* The control socket's server side; the protocol and its limits are described
 * in agent/ctl.h. Each client is read until its request is whole, answered
 * into a buffer, written without blocking as the socket drains, then closed:
 * one request per connection, as with wg's UAPI. */
#include "agent/ctl.h"

#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CTL_BACKLOG         32
#define CTL_ACCEPTS_PER_RUN 16                /* then let the loop serve others */
#define CTL_ACCEPT_PAUSE_NS (100 * 1000000ull) /* out of fds: retry after this */
#define CTL_OUT_INITIAL     4096
#define CTL_ECHO_MAX        64                /* bytes of an unknown request quoted back */

/* What a reply must always have room left for: a newline ending the caller's
 * last line, the longest error line, and the empty line ending the reply. */
#define CTL_ERR_TOO_LARGE "reply too large"
#define CTL_OUT_RESERVE   (1 + sizeof("error=" CTL_ERR_TOO_LARGE "\n") - 1 + 1)

struct ctl_out {
	char *buf;
	size_t len;        /* bytes of reply */
	size_t cap;        /* bytes allocated; always >= len + CTL_OUT_RESERVE */
	size_t limit;      /* the hard cap, trailer included */
	size_t sent;       /* bytes of reply written to the client */
	const char *error; /* set once a call did not fit: the rest is dropped */
};

struct ctl_client {
	struct ctl *ctl;
	int fd;
	unsigned slot; /* index in ctl->clients */
	bool replying; /* the request is whole: now only writing */
	struct loop_timer idle;
	struct ctl_out out;
	size_t in_len;
	size_t line_start; /* where the next line of the request begins */
	int body_req;      /* the extra[] entry whose body is being read, or -1 */
	size_t body_end;   /* the body so far ends here (see client_parse) */
	size_t in_cap;     /* CTL_REQUEST_MAX, up to CTL_BODY_MAX for a body */
	char *in;
};

/* ---- paths ---- */

const char *ctl_run_dir(void)
{
	const char *dir = getenv(CTL_RUN_DIR_ENV);

	return dir && *dir ? dir : CTL_RUN_DIR_DEFAULT;
}

/* The names config_name_from_path accepts: they also make safe file names,
 * with no '/' to leave the run directory. */
static bool valid_ifname(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= IF_NAMESIZE)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_=+.-", name[i]))
			return false;
	return true;
}

int ctl_socket_path(char *buf, size_t len, const char *ifname)
{
	struct sockaddr_un sun;
	int n;

	if (!valid_ifname(ifname))
		return -EINVAL;
	n = snprintf(buf, len, "%s/%s.sock", ctl_run_dir(), ifname);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* ---- the reply buffer ---- */

static int out_init(struct ctl_out *out, size_t limit)
{
	memset(out, 0, sizeof(*out));
	out->limit = limit < CTL_OUT_INITIAL ? CTL_OUT_INITIAL : limit;
	out->buf = malloc(CTL_OUT_INITIAL);
	if (!out->buf)
		return -ENOMEM;
	out->cap = CTL_OUT_INITIAL;
	return 0;
}

/* Makes room for n more bytes while keeping the reserve, growing by doubling
 * up to the limit. On failure sets out->error and appends nothing more. */
static bool out_room(struct ctl_out *out, size_t n)
{
	size_t need = out->len + n + CTL_OUT_RESERVE, cap = out->cap;
	char *buf;

	if (out->error)
		return false;
	if (need > out->limit) {
		out->error = CTL_ERR_TOO_LARGE;
		return false;
	}
	if (need <= cap)
		return true;
	while (cap < need)
		cap *= 2;
	if (cap > out->limit)
		cap = out->limit;
	buf = realloc(out->buf, cap);
	if (!buf) {
		out->error = "out of memory";
		return false;
	}
	out->buf = buf;
	out->cap = cap;
	return true;
}

void ctl_printf(struct ctl_out *out, const char *fmt, ...)
{
	size_t space = out->cap - out->len;
	va_list ap, again;
	int n;

	if (out->error)
		return;
	va_start(ap, fmt);
	va_copy(again, ap);
	/* Most calls fit in what is left: format once, in place. Only len
	 * commits the text, so a call that does not fit leaves no trace. */
	n = vsnprintf(out->buf + out->len, space, fmt, ap);
	if (n >= 0 && out_room(out, (size_t)n)) {
		if ((size_t)n >= space)
			vsnprintf(out->buf + out->len, out->cap - out->len, fmt, again);
		out->len += (size_t)n;
	}
	va_end(again);
	va_end(ap);
}

void ctl_put(struct ctl_out *out, const char *key, const char *value)
{
	size_t start = out->len + strlen(key) + 1;

	ctl_printf(out, "%s=%s\n", key, value);
	if (out->error || out->len <= start)
		return;
	for (size_t i = start; i < out->len - 1; i++)
		if ((unsigned char)out->buf[i] < 0x20 || out->buf[i] == 0x7f)
			out->buf[i] = ' ';
}

/* Ends the reply: a newline if the caller's last line lacked one, the error
 * if something was dropped, then the empty line. The reserve always fits. */
static void out_finish(struct ctl_out *out)
{
	if (out->len && out->buf[out->len - 1] != '\n')
		out->buf[out->len++] = '\n';
	if (out->error)
		out->len += (size_t)snprintf(out->buf + out->len, out->cap - out->len, "error=%s\n",
					     out->error);
	out->buf[out->len++] = '\n';
}

/* ---- clients ---- */

static void client_free(struct ctl_client *cl)
{
	struct ctl *c = cl->ctl;

	loop_timer_cancel(c->loop, &cl->idle);
	loop_del_fd(c->loop, cl->fd);
	close(cl->fd);
	c->clients[cl->slot] = NULL;
	free(cl->out.buf);
	free(cl->in);
	free(cl);
}

static void on_idle(void *arg, uint64_t now)
{
	struct ctl_client *cl = arg;

	(void)now;
	cl->ctl->stats.timed_out++;
	client_free(cl);
}

static void client_write(struct ctl_client *cl)
{
	struct ctl_out *out = &cl->out;
	bool progress = false;

	while (out->sent < out->len) {
		ssize_t n = send(cl->fd, out->buf + out->sent, out->len - out->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			out->sent += (size_t)n;
			progress = true;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			client_free(cl); /* the client went away: nothing to tell it */
			return;
		}
	}
	if (out->sent == out->len) {
		cl->ctl->stats.replies++;
		client_free(cl);
		return;
	}
	if (progress)
		loop_timer_set(cl->ctl->loop, &cl->idle, loop_now() + cl->ctl->idle_ns);
}

/* error=unknown request "<req>", the request cut to CTL_ECHO_MAX bytes and
 * its quotes, backslashes and controls escaped so the line stays one line. */
static void reply_unknown(struct ctl_out *out, const char *req)
{
	char echo[CTL_ECHO_MAX * 4 + 4];
	size_t n = 0, i;

	for (i = 0; req[i] && i < CTL_ECHO_MAX; i++) {
		unsigned char ch = (unsigned char)req[i];
		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
			n += (size_t)snprintf(echo + n, sizeof(echo) - n, "\\x%02x", ch);
		else
			echo[n++] = (char)ch;
	}
	if (req[i])
		n += (size_t)snprintf(echo + n, sizeof(echo) - n, "...");
	echo[n] = '\0';
	ctl_printf(out, "error=unknown request \"%s\"\n", echo);
}

static void on_client(void *arg, uint32_t events);

static int add_extra(struct ctl *c, const char *name, ctl_show_fn fn, ctl_body_fn body,
		     void *arg)
{
	if (c->n_extra >= CTL_MAX_EXTRA)
		return -ENOSPC;
	c->extra[c->n_extra].name = name;
	c->extra[c->n_extra].fn = fn;
	c->extra[c->n_extra].body = body;
	c->extra[c->n_extra].arg = arg;
	c->n_extra++;
	return 0;
}

int ctl_add_request(struct ctl *c, const char *name, ctl_show_fn fn, void *arg)
{
	return add_extra(c, name, fn, NULL, arg);
}

int ctl_add_body_request(struct ctl *c, const char *name, ctl_body_fn fn, void *arg)
{
	return add_extra(c, name, NULL, fn, arg);
}

/* The extra[] entry of a request that takes a body, or -1. */
static int body_request(const struct ctl *c, const char *req)
{
	for (unsigned i = 0; i < c->n_extra; i++)
		if (c->extra[i].body && !strcmp(req, c->extra[i].name))
			return (int)i;
	return -1;
}

/* Builds the whole reply, then writes what the socket takes now; the rest
 * goes out on EPOLLOUT. */
static void client_respond(struct ctl_client *cl, const char *req, bool one_line)
{
	struct ctl *c = cl->ctl;
	size_t body = strlen(cl->in) + 1;

	if (out_init(&cl->out, c->reply_cap) < 0) {
		client_free(cl);
		return;
	}
	if (!one_line) {
		ctl_printf(&cl->out, "error=request must be one line\n");
	} else if (cl->body_req >= 0) {
		if (cl->body_end < body)
			cl->body_end = body; /* no body lines at all */
		cl->in[cl->body_end] = '\0';
		c->extra[cl->body_req].body(c->extra[cl->body_req].arg, cl->in + body,
					    cl->body_end - body, &cl->out);
	} else if (!strcmp(req, "show")) {
		if (c->show)
			c->show(c->arg, &cl->out);
	} else {
		unsigned i;

		for (i = 0; i < c->n_extra && strcmp(req, c->extra[i].name); i++)
			;
		if (i < c->n_extra && c->extra[i].fn)
			c->extra[i].fn(c->extra[i].arg, &cl->out);
		else
			reply_unknown(&cl->out, req);
	}
	out_finish(&cl->out);
	cl->replying = true;
	/* The reply gets its own idle allowance, however long the request took. */
	loop_timer_set(c->loop, &cl->idle, loop_now() + c->idle_ns);
	if (loop_mod_fd(c->loop, cl->fd, EPOLLOUT, on_client, cl) < 0) {
		client_free(cl);
		return;
	}
	client_write(cl);
}

/* A request is whole at its empty line, or at once if its first line is
 * empty. The request line is cut in place as it completes (its '\n', or a
 * '\r' before it, becomes the NUL), so it is always cl->in. A body's lines
 * are moved down as they complete to follow it without their '\r's, each
 * ended by '\n', up to body_end; line_start (where the next line begins)
 * is never before body_end, so the move never overwrites unread bytes.
 * Returns true once the client was answered (and may be gone). */
static bool client_parse(struct ctl_client *cl)
{
	char *nl;

	while ((nl = memchr(cl->in + cl->line_start, '\n', cl->in_len - cl->line_start))) {
		char *line = cl->in + cl->line_start;
		size_t len = (size_t)(nl - line);

		if (len && line[len - 1] == '\r')
			len--;
		cl->line_start = (size_t)(nl - cl->in) + 1;
		if (line == cl->in && len) {
			line[len] = '\0'; /* the request line: wait for the empty one */
			cl->body_req = body_request(cl->ctl, cl->in);
			cl->body_end = len + 1;
			continue;
		}
		if (len && cl->body_req >= 0) {
			memmove(cl->in + cl->body_end, line, len);
			cl->body_end += len;
			cl->in[cl->body_end++] = '\n';
			continue;
		}
		line[len] = '\0';
		client_respond(cl, cl->in, line == cl->in || !len);
		return true;
	}
	return false;
}

/* The buffer is full: it grows past CTL_REQUEST_MAX only while reading the
 * body of a request that takes one. False when the request is too long. */
static bool client_grow(struct ctl_client *cl)
{
	size_t cap = cl->in_cap * 2;
	char *in;

	if (cl->body_req < 0 || cl->in_cap >= CTL_BODY_MAX)
		return false;
	if (cap > CTL_BODY_MAX)
		cap = CTL_BODY_MAX;
	in = realloc(cl->in, cap);
	if (!in)
		return false;
	cl->in = in;
	cl->in_cap = cap;
	return true;
}

static void client_read(struct ctl_client *cl)
{
	ssize_t n;

	/* One byte kept back: client_respond ends the body with a NUL. */
	n = recv(cl->fd, cl->in + cl->in_len, cl->in_cap - 1 - cl->in_len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(cl); /* EOF before the empty line: no request, no reply */
		return;
	}
	cl->in_len += (size_t)n;
	if (client_parse(cl))
		return;
	if (cl->in_len == cl->in_cap - 1 && !client_grow(cl)) {
		cl->ctl->stats.too_long++;
		client_free(cl);
	}
}

static void on_client(void *arg, uint32_t events)
{
	struct ctl_client *cl = arg;

	(void)events;
	if (cl->replying)
		client_write(cl);
	else
		client_read(cl);
}

static void client_add(struct ctl *c, int fd)
{
	struct ctl_client *cl = NULL;
	unsigned slot;

	for (slot = 0; slot < CTL_MAX_CLIENTS && c->clients[slot]; slot++)
		;
	if (slot == CTL_MAX_CLIENTS) {
		c->stats.busy++;
		close(fd);
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (cl)
		cl->in = malloc(CTL_REQUEST_MAX);
	if (!cl || !cl->in || loop_add_fd(c->loop, fd, EPOLLIN, on_client, cl) < 0) {
		if (cl)
			free(cl->in);
		free(cl);
		close(fd);
		return;
	}
	cl->in_cap = CTL_REQUEST_MAX;
	cl->body_req = -1;
	c->stats.accepted++;
	cl->ctl = c;
	cl->fd = fd;
	cl->slot = slot;
	c->clients[slot] = cl;
	loop_timer_init(&cl->idle, on_idle, cl);
	loop_timer_set(c->loop, &cl->idle, loop_now() + c->idle_ns);
}

/* ---- the listening socket ---- */

static void on_listen(void *arg, uint32_t events);

static void on_accept_retry(void *arg, uint64_t now)
{
	struct ctl *c = arg;

	(void)now;
	loop_mod_fd(c->loop, c->fd, EPOLLIN, on_listen, c);
}

/* Out of fds or memory the pending connection stays queued and the level-
 * triggered socket would wake the loop forever: stop listening a while. */
static void pause_accept(struct ctl *c)
{
	loop_mod_fd(c->loop, c->fd, 0, on_listen, c);
	loop_timer_set(c->loop, &c->accept_retry, loop_now() + CTL_ACCEPT_PAUSE_NS);
}

static void on_listen(void *arg, uint32_t events)
{
	struct ctl *c = arg;

	(void)events;
	for (int i = 0; i < CTL_ACCEPTS_PER_RUN; i++) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			client_add(c, fd);
		} else if (errno == EINTR || errno == ECONNABORTED) {
			continue;
		} else {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				pause_accept(c);
			return;
		}
	}
}

static int fail(struct ctl *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct ctl *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
	return err;
}

/* Creates the run directory, private: sockets in it answer to anyone who can
 * reach them. An existing directory is left as the admin made it. */
static int make_run_dir(struct ctl *c)
{
	const char *dir = ctl_run_dir();

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail(c, -errno, "cannot create %s: %s", dir, strerror(errno));
	return 0;
}

/* Frees the path for bind: a socket file nobody answers on is what a crashed
 * natagent leaves and is removed; a live one means another natagent. */
static int claim_path(struct ctl *c, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, err;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : fail(c, -errno, "cannot stat %s: %s", sun->sun_path,
						  strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return fail(c, -EEXIST, "%s exists and is not a socket", sun->sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(c, -errno, "socket: %s", strerror(errno));
	/* Non-blocking: a live server with a full backlog answers EAGAIN
	 * rather than making us wait. */
	err = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) < 0 ? errno : 0;
	close(fd);
	if (!err || err == EAGAIN || err == EINPROGRESS)
		return fail(c, -EADDRINUSE, "another natagent serves %s", sun->sun_path);
	if (err == ENOENT)
		return 0;
	if (err != ECONNREFUSED)
		return fail(c, -err, "cannot check who serves %s: %s", sun->sun_path, strerror(err));
	if (unlink(sun->sun_path) < 0 && errno != ENOENT)
		return fail(c, -errno, "cannot remove stale socket %s: %s", sun->sun_path,
			    strerror(errno));
	return 0;
}

/* Binds with umask 0177 so the socket is 0600 from its first moment rather
 * than after a chmod. natagent has one thread, so the umask is ours here. */
static int bind_private(struct ctl *c, const struct sockaddr_un *sun)
{
	struct stat st;
	mode_t old = umask(0177);
	int r = bind(c->fd, (const struct sockaddr *)sun, sizeof(*sun));
	int err = errno;

	umask(old);
	if (r < 0)
		return fail(c, -err, "cannot bind %s: %s", sun->sun_path, strerror(err));
	if (stat(sun->sun_path, &st) == 0) {
		c->dev = st.st_dev;
		c->ino = st.st_ino;
	}
	return 0;
}

int ctl_open(struct ctl *c, struct loop *loop, const char *ifname, ctl_show_fn show, void *arg,
	     const char **why)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int err;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->loop = loop;
	c->show = show;
	c->arg = arg;
	c->reply_cap = CTL_REPLY_MAX;
	c->idle_ns = CTL_IDLE_NS;
	loop_timer_init(&c->accept_retry, on_accept_retry, c);
	*why = c->error;
	err = ctl_socket_path(sun.sun_path, sizeof(sun.sun_path), ifname);
	if (err == -EINVAL)
		return fail(c, err, "'%s' is not an interface name", ifname);
	if (err)
		return fail(c, err, "control socket path %s/%s.sock is too long", ctl_run_dir(),
			    ifname);
	err = make_run_dir(c);
	if (!err)
		err = claim_path(c, &sun);
	if (err)
		return err;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(c, -errno, "socket: %s", strerror(errno));
	err = bind_private(c, &sun);
	if (err)
		goto err_close;
	snprintf(c->path, sizeof(c->path), "%s", sun.sun_path);
	if (listen(c->fd, CTL_BACKLOG) < 0) {
		err = fail(c, -errno, "cannot listen on %s: %s", c->path, strerror(errno));
		goto err_unlink;
	}
	err = loop_add_fd(loop, c->fd, EPOLLIN, on_listen, c);
	if (err < 0) {
		fail(c, err, "cannot watch %s: %s", c->path, strerror(-err));
		goto err_unlink;
	}
	return 0;

err_unlink:
	unlink(c->path);
err_close:
	close(c->fd);
	c->fd = -1;
	return err;
}

void ctl_close(struct ctl *c)
{
	struct stat st;

	if (c->fd < 0)
		return;
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
		if (c->clients[i])
			client_free(c->clients[i]);
	loop_timer_cancel(c->loop, &c->accept_retry);
	loop_del_fd(c->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	/* A natagent started after us may have replaced a socket it thought
	 * stale; its socket is not ours to remove. */
	if (stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
}
