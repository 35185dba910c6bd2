#include <sys/epoll.h>
#include <unistd.h>

#include "agent/loop.h"
#include "tests/unit/unit.h"

struct rec {
	struct loop *l;
	int order[8];
	int n;
	int fds[2];
	struct loop_timer t[4];
	int stop_after;
	int turns, n_at_turn_end;
};


/* Each timer records its index; the last one stops the loop. */
static struct rec *g;

static void record(void *arg, uint64_t now)
{
	int idx = (int)(long)arg;
	(void)now;
	g->order[g->n++] = idx;
	if (g->n == g->stop_after)
		loop_stop(g->l);
}

static void turn_end(void *arg)
{
	struct rec *r = arg;

	r->turns++;
	r->n_at_turn_end = r->n;
}

static void on_read(void *arg, uint32_t events)
{
	char c;
	(void)events;
	if (read(g->fds[0], &c, 1) == 1)
		record(arg, 0);
	loop_del_fd(g->l, g->fds[0]);
}

int main(void)
{
	struct rec r = { 0 };
	uint64_t now = loop_now();

	g = &r;
	r.l = loop_new();
	CHECK(r.l != NULL, "loop created");
	for (int i = 0; i < 4; i++)
		loop_timer_init(&r.t[i], record, (void *)(long)i);
	/* Deadlines out of order; t[3] set then moved earlier; t[1] cancelled. */
	loop_timer_set(r.l, &r.t[0], now + 30000000);
	loop_timer_set(r.l, &r.t[1], now + 10000000);
	loop_timer_set(r.l, &r.t[2], now + 20000000);
	loop_timer_set(r.l, &r.t[3], now + 90000000);
	loop_timer_set(r.l, &r.t[3], now + 5000000);
	loop_timer_cancel(r.l, &r.t[1]);
	CHECK(!loop_timer_armed(&r.t[1]), "cancelled timer is disarmed");
	CHECK(pipe(r.fds) == 0, "pipe");
	CHECK(loop_add_fd(r.l, r.fds[0], EPOLLIN, on_read, (void *)7L) == 0, "fd added");
	CHECK(write(r.fds[1], "x", 1) == 1, "write");
	r.stop_after = 4;
	loop_set_turn_end(r.l, turn_end, &r);
	CHECK(loop_run(r.l) == 0, "loop ran");
	CHECK_EQ_INT(r.n, 4, "three timers and one fd fired");
	CHECK_EQ_INT(r.order[0], 7, "ready fd first");
	CHECK_EQ_INT(r.order[1], 3, "moved timer fires at its new, earliest deadline");
	CHECK_EQ_INT(r.order[2], 2, "then 20 ms");
	CHECK_EQ_INT(r.order[3], 0, "then 30 ms");
	CHECK(loop_now() - now >= 30000000, "no timer fired early");
	CHECK(r.turns >= 2 && r.turns <= 4, "the turn-end hook ran once per turn (%d turns)", r.turns);
	CHECK_EQ_INT(r.n_at_turn_end, 4, "and after the last turn's events");
	loop_free(r.l);
	close(r.fds[0]);
	close(r.fds[1]);
	return unit_done();
}
