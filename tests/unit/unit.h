/* A minimal TAP harness: one binary per module, each check prints
 * "ok N - name" or "not ok N - name"; tests/run.sh counts them. */
#ifndef NATAGENT_TESTS_UNIT_H
#define NATAGENT_TESTS_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_n, unit_failed;

/* cond is evaluated exactly once: it may have side effects. */
#define CHECK(cond, ...) do {						\
	int _unit_ok = !!(cond);					\
	unit_n++;							\
	if (_unit_ok) {							\
		printf("ok %d - ", unit_n);				\
	} else {							\
		unit_failed++;						\
		printf("not ok %d - ", unit_n);				\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	if (!_unit_ok)							\
		printf("#   failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
} while (0)

#define CHECK_EQ_INT(a, b, name) do {					\
	long long _a = (long long)(a), _b = (long long)(b);		\
	CHECK(_a == _b, "%s", name);					\
	if (_a != _b)							\
		printf("#   got %lld, want %lld\n", _a, _b);		\
} while (0)

#define CHECK_EQ_STR(a, b, name) do {					\
	const char *_a = (a), *_b = (b);				\
	int _ok = _a && _b && strcmp(_a, _b) == 0;			\
	CHECK(_ok, "%s", name);						\
	if (!_ok)							\
		printf("#   got '%s', want '%s'\n", _a ? _a : "(null)", _b ? _b : "(null)"); \
} while (0)

#define CHECK_EQ_MEM(a, b, len, name) CHECK(memcmp((a), (b), (len)) == 0, "%s", name)

static inline int unit_done(void)
{
	printf("1..%d\n", unit_n);
	return unit_failed ? 1 : 0;
}

#endif
