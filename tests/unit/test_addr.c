#include "nat/addr.h"
#include "tests/unit/unit.h"

static void test_endpoints(void)
{
	static const struct { const char *in; bool ok; const char *out; } cases[] = {
		{ "198.18.0.10:3478", true, "198.18.0.10:3478" },
		{ "[2001:db8::1]:51820", true, "[2001:db8::1]:51820" },
		{ "[::ffff:1.2.3.4]:1", true, "[::ffff:1.2.3.4]:1" },
		{ "1.2.3.4:0", false, NULL },
		{ "1.2.3.4:65536", false, NULL },
		{ "1.2.3.4:", false, NULL },
		{ "1.2.3.4", false, NULL },
		{ "2001:db8::1:80", false, NULL },
		{ "[1.2.3.4]:80", false, NULL },
		{ "[2001:db8::1]80", false, NULL },
		{ "1.2.3.400:80", false, NULL },
		{ ":80", false, NULL },
		{ "1.2.3.4:+80", false, NULL },
	};
	char buf[NA_ENDPOINT_STRLEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct na_endpoint ep;
		bool ok = na_endpoint_parse(&ep, cases[i].in, false);
		CHECK(ok == cases[i].ok, "endpoint '%s' %s", cases[i].in, cases[i].ok ? "parses" : "is refused");
		if (ok && cases[i].out)
			CHECK_EQ_STR(na_endpoint_str(&ep, buf, sizeof(buf)), cases[i].out, "endpoint formats back");
	}
}

static void test_prefixes(void)
{
	struct na_prefix p;
	struct na_ip ip;

	CHECK(na_prefix_parse(&p, "10.0.0.0/8"), "10.0.0.0/8 parses");
	CHECK(!na_prefix_parse(&p, "10.0.0.1/8"), "host bits set are refused");
	CHECK(na_prefix_parse(&p, "10.0.0.1"), "bare address is a host prefix");
	CHECK_EQ_INT(p.len, 32, "bare v4 address is /32");
	CHECK(!na_prefix_parse(&p, "10.0.0.300/32"), "bad octet refused");
	CHECK(!na_prefix_parse(&p, "10.0.0.0/33"), "v4 length over 32 refused");
	CHECK(na_prefix_parse(&p, "fd00::/8"), "v6 prefix parses");
	CHECK(!na_prefix_parse(&p, "fd00::/129"), "v6 length over 128 refused");
	CHECK(na_prefix_parse(&p, "0.0.0.0/0"), "default route parses");
	CHECK(na_ifaddr_parse(&p, "10.77.0.1/24"), "interface address keeps host bits");
	na_prefix_parse(&p, "10.77.0.0/23");
	na_ip_parse(&ip, "10.77.1.200");
	CHECK(na_prefix_contains(&p, &ip), "10.77.1.200 in 10.77.0.0/23");
	na_ip_parse(&ip, "10.77.2.1");
	CHECK(!na_prefix_contains(&p, &ip), "10.77.2.1 not in 10.77.0.0/23");
	na_ip_parse(&ip, "::1");
	CHECK(!na_prefix_contains(&p, &ip), "v6 address never in a v4 prefix");
}

static void test_private(void)
{
	static const struct { const char *ip; bool private; } cases[] = {
		{ "10.1.2.3", true }, { "100.64.0.1", true }, { "100.128.0.1", false },
		{ "127.0.0.1", true }, { "169.254.1.1", true }, { "192.168.1.1", true },
		{ "172.31.0.1", true }, { "172.32.0.1", false }, { "224.0.0.1", true },
		{ "198.18.0.10", false }, { "8.8.8.8", false }, { "fe80::1", true },
		{ "fd12::1", true }, { "::1", true }, { "2001:db8::1", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct na_ip ip;
		na_ip_parse(&ip, cases[i].ip);
		CHECK(na_ip_is_private(&ip) == cases[i].private, "%s is %s", cases[i].ip,
		      cases[i].private ? "private" : "public");
	}
}

int main(void)
{
	test_endpoints();
	test_prefixes();
	test_private();
	return unit_done();
}
