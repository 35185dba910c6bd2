/* UDP sockets for the agent: every socket is non-blocking, reports the local
 * address each datagram arrived on (so a host with several addresses answers
 * from the one it was asked on) and its TOS/ECN bits. Receive is batched with
 * recvmmsg; buffers belong to the caller and are reused, never allocated per
 * packet. */
#ifndef NATAGENT_AGENT_UDP_H
#define NATAGENT_AGENT_UDP_H

#include <stddef.h>
#include <stdint.h>

#include "nat/addr.h"

#define UDP_MAX_DATAGRAM 65536

struct udp_msg {
	uint8_t *buf; /* caller-owned */
	size_t cap;
	size_t len;
	struct na_endpoint from;
	struct na_ip local; /* the address it was sent to */
	uint8_t tos;
};

/* Binds to ep (port 0: the kernel picks). Returns the fd or -errno. Never
 * SO_REUSEADDR: UDP has no TIME_WAIT to wait out on a restart, and with it a
 * second agent could bind the same port and silently take its packets. */
int udp_open(const struct na_endpoint *ep);
/* Larger kernel buffers for sockets that take bursts from many senders;
 * beyond net.core.*mem_max only when privileged (SO_*BUFFORCE). */
void udp_set_buffers(int fd, int bytes);
/* The address and port the socket is bound to. */
int udp_local(int fd, struct na_endpoint *ep);
/* The source address the kernel would use toward `to` (no packet is sent). */
int udp_route_source(const struct na_endpoint *to, struct na_ip *src);
/* Receives up to n datagrams without blocking; returns the count (0 when
 * none were waiting) or -errno. */
int udp_recv(int fd, struct udp_msg *msgs, unsigned n);
/* Sends one datagram; src (may be NULL) picks the source address on a socket
 * bound to a wildcard. Returns 0 or -errno. */
int udp_send(int fd, const void *buf, size_t len, const struct na_endpoint *to,
	     const struct na_ip *src, uint8_t tos);

/* One datagram of a batch for udp_send_batch. */
struct udp_out {
	const void *buf;
	size_t len;
	struct na_endpoint to;
	struct na_ip src; /* family 0: the kernel's choice */
	uint8_t tos;
};

/* Sends n datagrams with as few system calls as sendmmsg allows. Returns how
 * many were sent (the rest: the socket buffer is full, or an error). */
int udp_send_batch(int fd, const struct udp_out *out, unsigned n);

#endif
