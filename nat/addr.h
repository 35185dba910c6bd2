/* Addresses, endpoints and prefixes: parsing and formatting shared by every
 * module. IPv4 and IPv6; an IPv4 address is held as itself, never mapped. */
#ifndef NATAGENT_NAT_ADDR_H
#define NATAGENT_NAT_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* One IP address. family is AF_INET or AF_INET6 (0 = unset). */
struct na_ip {
	uint8_t family;
	union {
		uint8_t v6[16];
		uint8_t v4[4];
	};
};

/* An address and a UDP port: what STUN maps and what NATs rewrite. */
struct na_endpoint {
	struct na_ip ip;
	uint16_t port; /* host byte order */
};

struct na_prefix {
	struct na_ip ip;
	uint8_t len;
};

/* Longest text forms, with NUL: "[v6]:65535" and "v6/128". */
#define NA_ENDPOINT_STRLEN (INET6_ADDRSTRLEN + 8)
#define NA_PREFIX_STRLEN   (INET6_ADDRSTRLEN + 4)

bool na_ip_parse(struct na_ip *ip, const char *s);
/* "1.2.3.4:5", "[::1]:5". Port 0 is refused unless allow_port0. */
bool na_endpoint_parse(struct na_endpoint *ep, const char *s, bool allow_port0);
/* "10.0.0.0/8", "fd00::/64"; a bare address means a host prefix. Host bits
 * beyond the length must be zero, as the kernel would otherwise reject it. */
bool na_prefix_parse(struct na_prefix *p, const char *s);
/* "10.0.0.1/24": an interface address, host bits allowed. */
bool na_ifaddr_parse(struct na_prefix *p, const char *s);

const char *na_ip_str(const struct na_ip *ip, char *buf, size_t len);
const char *na_endpoint_str(const struct na_endpoint *ep, char *buf, size_t len);
const char *na_prefix_str(const struct na_prefix *p, char *buf, size_t len);

bool na_ip_equal(const struct na_ip *a, const struct na_ip *b);
bool na_endpoint_equal(const struct na_endpoint *a, const struct na_endpoint *b);
bool na_prefix_contains(const struct na_prefix *p, const struct na_ip *ip);
/* Private, loopback, link-local, CGNAT, multicast or unspecified: never a
 * public candidate, never an AutoNAT dial-back target. */
bool na_ip_is_private(const struct na_ip *ip);

/* To and from the socket API. */
socklen_t na_endpoint_to_sockaddr(const struct na_endpoint *ep, struct sockaddr_storage *ss);
bool na_endpoint_from_sockaddr(struct na_endpoint *ep, const struct sockaddr *sa);

#endif
