#include "agent/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* What epoll_event.data points at: one per registered fd. */
struct loop_fd {
	int fd;
	loop_fd_fn fn;
	void *arg;
	struct loop_fd *next;
};

struct loop {
	int epfd;
	int timerfd;
	bool stop;
	loop_turn_fn turn_end;
	void *turn_arg;
	struct loop_timer **heap;
	size_t n_heap, cap_heap;
	uint64_t armed_for; /* deadline the timerfd is set to, 0 = none */
	struct loop_fd *fds;
	struct loop_fd *dead; /* removed this turn; freed when the turn ends */
};

uint64_t loop_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void free_list(struct loop_fd *f)
{
	while (f) {
		struct loop_fd *next = f->next;
		free(f);
		f = next;
	}
}

static struct loop_fd *find_fd(struct loop *l, int fd)
{
	for (struct loop_fd *f = l->fds; f; f = f->next)
		if (f->fd == fd)
			return f;
	return NULL;
}

/* ---- timer heap ---- */

static void heap_swap(struct loop *l, size_t a, size_t b)
{
	struct loop_timer *t = l->heap[a];

	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->slot = (int)a;
	l->heap[b]->slot = (int)b;
}

static void heap_up(struct loop *l, size_t i)
{
	while (i > 0 && l->heap[(i - 1) / 2]->deadline > l->heap[i]->deadline) {
		heap_swap(l, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;
		if (c < l->n_heap && l->heap[c]->deadline < l->heap[m]->deadline)
			m = c;
		if (c + 1 < l->n_heap && l->heap[c + 1]->deadline < l->heap[m]->deadline)
			m = c + 1;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = (size_t)t->slot;

	l->n_heap--;
	if (i != l->n_heap) {
		heap_swap(l, i, l->n_heap);
		heap_down(l, i);
		heap_up(l, i);
	}
	t->slot = -1;
}

/* Keeps the timerfd pointed at the earliest deadline. */
static void rearm(struct loop *l)
{
	uint64_t next = l->n_heap ? l->heap[0]->deadline : 0;
	struct itimerspec its;

	if (next == l->armed_for)
		return;
	memset(&its, 0, sizeof(its));
	/* next is never 0 for an armed timer (0 would disarm the timerfd);
	 * a deadline already past fires at once. */
	its.it_value.tv_sec = (time_t)(next / 1000000000ull);
	its.it_value.tv_nsec = (long)(next % 1000000000ull);
	timerfd_settime(l->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
	l->armed_for = next;
}

void loop_set_turn_end(struct loop *l, loop_turn_fn fn, void *arg)
{
	l->turn_end = fn;
	l->turn_arg = arg;
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *arg)
{
	t->deadline = 0;
	t->fn = fn;
	t->arg = arg;
	t->slot = -1;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (t->slot < 0)
		return;
	heap_remove(l, t);
	rearm(l);
}

void loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t deadline)
{
	if (deadline == UINT64_MAX) {
		loop_timer_cancel(l, t);
		return;
	}
	if (!deadline)
		deadline = 1;
	if (t->slot >= 0) {
		t->deadline = deadline;
		heap_down(l, (size_t)t->slot);
		heap_up(l, (size_t)t->slot);
	} else {
		if (l->n_heap == l->cap_heap) {
			size_t cap = l->cap_heap ? l->cap_heap * 2 : 64;
			struct loop_timer **h = realloc(l->heap, cap * sizeof(*h));
			if (!h)
				abort(); /* a lost timer would hang a session: fail loudly */
			l->heap = h;
			l->cap_heap = cap;
		}
		t->deadline = deadline;
		t->slot = (int)l->n_heap;
		l->heap[l->n_heap++] = t;
		heap_up(l, (size_t)t->slot);
	}
	rearm(l);
}

static void run_timers(struct loop *l)
{
	uint64_t expirations, now = loop_now();

	if (read(l->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	l->armed_for = 0;
	/* A timer re-armed for "now" by its own callback runs on the next turn,
	 * so one busy timer cannot starve the sockets. */
	while (l->n_heap && l->heap[0]->deadline <= now && !l->stop) {
		struct loop_timer *t = l->heap[0];
		heap_remove(l, t);
		t->fn(t->arg, now);
	}
	rearm(l);
}

/* ---- fds ---- */

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg)
{
	struct loop_fd *f = calloc(1, sizeof(*f));
	struct epoll_event ev = { .events = events };

	if (!f)
		return -ENOMEM;
	f->fd = fd;
	f->fn = fn;
	f->arg = arg;
	ev.data.ptr = f;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;
		free(f);
		return err;
	}
	f->next = l->fds;
	l->fds = f;
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg)
{
	struct loop_fd *f = find_fd(l, fd);
	struct epoll_event ev = { .events = events };

	if (!f)
		return -ENOENT;
	f->fn = fn;
	f->arg = arg;
	ev.data.ptr = f;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del_fd(struct loop *l, int fd)
{
	for (struct loop_fd **p = &l->fds; *p; p = &(*p)->next) {
		if ((*p)->fd != fd)
			continue;
		struct loop_fd *f = *p;
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
		*p = f->next;
		/* Events already fetched for this fd in this turn still point
		 * at it: keep it, marked dead, until the turn ends. */
		f->fn = NULL;
		f->next = l->dead;
		l->dead = f;
		return;
	}
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (l->epfd < 0 || l->timerfd < 0) {
		loop_free(l);
		return NULL;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->timerfd, &ev) < 0) {
		loop_free(l);
		return NULL;
	}
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	free_list(l->fds);
	free_list(l->dead);
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->timerfd >= 0)
		close(l->timerfd);
	free(l->heap);
	free(l);
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[64];

	l->stop = false;
	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, 64, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !l->stop; i++) {
			struct loop_fd *f = evs[i].data.ptr;
			if (!f)
				run_timers(l);
			else if (f->fn)
				f->fn(f->arg, evs[i].events);
		}
		if (l->turn_end)
			l->turn_end(l->turn_arg);
		free_list(l->dead);
		l->dead = NULL;
	}
	return 0;
}
