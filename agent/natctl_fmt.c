/* natctl's time and size formats: see natctl_fmt.h. */
#include "agent/natctl_fmt.h"

#include <stdio.h>

const char *natctl_duration(uint64_t secs, char *buf, size_t len)
{
	static const struct { const char *unit; uint64_t s; } units[] = {
		{ "year", 365 * 24 * 3600ull }, { "day", 24 * 3600 }, { "hour", 3600 },
		{ "minute", 60 }, { "second", 1 },
	};
	size_t n = 0;

	if (!secs) {
		snprintf(buf, len, "0 seconds");
		return buf;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(*units) && n < len; i++) {
		uint64_t q = secs / units[i].s;

		if (!q)
			continue;
		secs -= q * units[i].s;
		n += (size_t)snprintf(buf + n, len - n, "%s%llu %s%s", n ? ", " : "",
				      (unsigned long long)q, units[i].unit, q == 1 ? "" : "s");
	}
	return buf;
}

const char *natctl_bytes(uint64_t b, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double d = (double)b;
	int i = -1;

	if (b < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)b);
		return buf;
	}
	while (d >= 1024 && i < 3) {
		d /= 1024;
		i++;
	}
	snprintf(buf, len, "%.2f %s", d, units[i]);
	return buf;
}
