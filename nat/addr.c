#include "nat/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t ip_len(const struct na_ip *ip)
{
	return ip->family == AF_INET ? 4 : 16;
}

bool na_ip_parse(struct na_ip *ip, const char *s)
{
	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, s, ip->v4) == 1) {
		ip->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, ip->v6) == 1) {
		ip->family = AF_INET6;
		return true;
	}
	return false;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && !*end && *out <= max;
}

bool na_endpoint_parse(struct na_endpoint *ep, const char *s, bool allow_port0)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *hs = s;
	size_t hlen;
	unsigned long port;

	memset(ep, 0, sizeof(*ep));
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return false;
		hs = s + 1;
		hlen = (size_t)(close - hs);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return false; /* bare IPv6 needs brackets */
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, hs, hlen);
	host[hlen] = 0;
	if (!na_ip_parse(&ep->ip, host))
		return false;
	if (*s == '[' && ep->ip.family != AF_INET6)
		return false;
	if (!parse_uint(colon + 1, 65535, &port) || (!port && !allow_port0))
		return false;
	ep->port = (uint16_t)port;
	return true;
}

static bool prefix_parse(struct na_prefix *p, const char *s, bool need_len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long len;

	memset(p, 0, sizeof(*p));
	if (alen == 0 || alen >= sizeof(buf))
		return false;
	memcpy(buf, s, alen);
	buf[alen] = 0;
	if (!na_ip_parse(&p->ip, buf))
		return false;
	unsigned max = p->ip.family == AF_INET ? 32 : 128;
	if (!slash) {
		if (need_len)
			return false;
		p->len = (uint8_t)max;
		return true;
	}
	if (!parse_uint(slash + 1, max, &len))
		return false;
	p->len = (uint8_t)len;
	return true;
}

/* True when no bit beyond the prefix length is set. */
static bool prefix_is_network(const struct na_prefix *p)
{
	for (size_t i = p->len / 8; i < ip_len(&p->ip); i++) {
		unsigned keep = i == p->len / 8u ? p->len % 8u : 0;
		uint8_t host = (uint8_t)(0xffu >> keep);
		if (p->ip.v6[i] & host)
			return false;
	}
	return true;
}

bool na_prefix_parse(struct na_prefix *p, const char *s)
{
	return prefix_parse(p, s, false) && prefix_is_network(p);
}

bool na_ifaddr_parse(struct na_prefix *p, const char *s)
{
	return prefix_parse(p, s, false);
}

const char *na_ip_str(const struct na_ip *ip, char *buf, size_t len)
{
	if (!ip->family || !inet_ntop(ip->family, ip->v6, buf, (socklen_t)len))
		snprintf(buf, len, "(none)");
	return buf;
}

const char *na_endpoint_str(const struct na_endpoint *ep, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	na_ip_str(&ep->ip, ip, sizeof(ip));
	if (ep->ip.family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", ip, ep->port);
	else
		snprintf(buf, len, "%s:%u", ip, ep->port);
	return buf;
}

const char *na_prefix_str(const struct na_prefix *p, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	snprintf(buf, len, "%s/%u", na_ip_str(&p->ip, ip, sizeof(ip)), p->len);
	return buf;
}

bool na_ip_equal(const struct na_ip *a, const struct na_ip *b)
{
	return a->family == b->family && memcmp(a->v6, b->v6, ip_len(a)) == 0;
}

bool na_endpoint_equal(const struct na_endpoint *a, const struct na_endpoint *b)
{
	return a->port == b->port && na_ip_equal(&a->ip, &b->ip);
}

bool na_prefix_contains(const struct na_prefix *p, const struct na_ip *ip)
{
	if (p->ip.family != ip->family)
		return false;
	unsigned full = p->len / 8, rest = p->len % 8;
	if (memcmp(p->ip.v6, ip->v6, full))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (p->ip.v6[full] & mask) == (ip->v6[full] & mask);
}

bool na_ip_is_private(const struct na_ip *ip)
{
	static const char *const v4[] = {
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
		"169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
		"224.0.0.0/3",
	};
	static const char *const v6[] = {
		"::/127", "::ffff:0:0/96", "fc00::/7", "fe80::/10", "ff00::/8",
	};
	const char *const *list = ip->family == AF_INET ? v4 : v6;
	size_t n = ip->family == AF_INET ? sizeof(v4) / sizeof(*v4) : sizeof(v6) / sizeof(*v6);
	struct na_prefix p;

	if (!ip->family)
		return true;
	for (size_t i = 0; i < n; i++)
		if (prefix_parse(&p, list[i], true) && na_prefix_contains(&p, ip))
			return true;
	return false;
}

socklen_t na_endpoint_to_sockaddr(const struct na_endpoint *ep, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ep->ip.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(ep->port);
		memcpy(&sin->sin_addr, ep->ip.v4, 4);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(ep->port);
	memcpy(&sin6->sin6_addr, ep->ip.v6, 16);
	return sizeof(*sin6);
}

bool na_endpoint_from_sockaddr(struct na_endpoint *ep, const struct sockaddr *sa)
{
	memset(ep, 0, sizeof(*ep));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		ep->ip.family = AF_INET;
		memcpy(ep->ip.v4, &sin->sin_addr, 4);
		ep->port = ntohs(sin->sin_port);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		/* A v4-mapped address from a dual-stack socket is an IPv4 peer. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			ep->ip.family = AF_INET;
			memcpy(ep->ip.v4, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			ep->ip.family = AF_INET6;
			memcpy(ep->ip.v6, &sin6->sin6_addr, 16);
		}
		ep->port = ntohs(sin6->sin6_port);
		return true;
	}
	return false;
}
