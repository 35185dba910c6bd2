/* The daemon's one event loop: epoll over file descriptors plus timers kept in
 * a small binary heap behind a single timerfd. Everything the agent does runs
 * from here; protocol cores return deadlines and the agent arms timers. */
#ifndef NATAGENT_AGENT_LOOP_H
#define NATAGENT_AGENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

typedef void (*loop_fd_fn)(void *arg, uint32_t events);
typedef void (*loop_timer_fn)(void *arg, uint64_t now);
typedef void (*loop_turn_fn)(void *arg);

/* A timer is embedded in its owner; it is either armed or not. */
struct loop_timer {
	uint64_t deadline; /* CLOCK_MONOTONIC ns */
	loop_timer_fn fn;
	void *arg;
	int slot; /* index in the heap, -1 when not armed */
};

uint64_t loop_now(void); /* CLOCK_MONOTONIC in ns */

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* events: EPOLLIN and/or EPOLLOUT. */
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg);
int loop_mod_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *arg);
void loop_del_fd(struct loop *l, int fd);

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *arg);
/* Arms (or moves) the timer to an absolute deadline; UINT64_MAX disarms. */
void loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t deadline);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t) { return t->slot >= 0; }

/* fn (NULL: none) runs after each turn's events and timers: work they
 * queued is done once per turn, whichever of them queued it. */
void loop_set_turn_end(struct loop *l, loop_turn_fn fn, void *arg);

/* Runs until loop_stop(); returns 0, or -errno if epoll itself failed. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
