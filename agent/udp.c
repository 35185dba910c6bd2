#include "agent/udp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/ip.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h */
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define CMSG_SPACE_ALL (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int)) * 2 + \
			CMSG_SPACE(sizeof(uint16_t)))
/* A GSO send carries one UDP datagram of at most 64 KiB, cut by the kernel
 * (or the NIC) into segments; and at most 64 segments (UDP_MAX_SEGMENTS). */
#define GSO_MAX_BYTES 65000
#define GSO_MAX_SEGS  64

/* Cleared the first time the kernel refuses a GSO send. */
static bool gso_ok = true;

int udp_open(const struct na_endpoint *ep)
{
	int one = 1, family = ep->ip.family == AF_INET6 ? AF_INET6 : AF_INET;
	struct sockaddr_storage ss;
	socklen_t sl = na_endpoint_to_sockaddr(ep, &ss);
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (family == AF_INET) {
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
	} else {
		/* One socket per family keeps the v4 mapping and the v6 one apart. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

void udp_set_buffers(int fd, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}

int udp_local(int fd, struct na_endpoint *ep)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	return na_endpoint_from_sockaddr(ep, (struct sockaddr *)&ss) ? 0 : -EAFNOSUPPORT;
}

int udp_route_source(const struct na_endpoint *to, struct na_ip *src)
{
	struct sockaddr_storage ss;
	socklen_t sl = na_endpoint_to_sockaddr(to, &ss);
	struct na_endpoint local;
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	/* connect() on UDP only picks the route and source address. */
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0)
		err = -errno;
	else
		err = udp_local(fd, &local);
	close(fd);
	if (!err)
		*src = local.ip;
	return err;
}

static void parse_cmsgs(struct msghdr *mh, struct udp_msg *m)
{
	m->local.family = 0;
	m->tos = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			m->local.family = AF_INET;
			memcpy(m->local.v4, &pi.ipi_addr, 4);
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			m->local.family = AF_INET6;
			memcpy(m->local.v6, &pi.ipi6_addr, 16);
		} else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
			m->tos = *(uint8_t *)CMSG_DATA(c);
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
			int tc;
			memcpy(&tc, CMSG_DATA(c), sizeof(tc));
			m->tos = (uint8_t)tc;
		}
	}
}

#define UDP_BATCH 64

int udp_recv(int fd, struct udp_msg *msgs, unsigned n)
{
	struct mmsghdr mm[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	struct sockaddr_storage from[UDP_BATCH];
	union {
		char buf[CMSG_SPACE_ALL];
		struct cmsghdr align;
	} cbuf[UDP_BATCH];
	int got;

	if (n > UDP_BATCH)
		n = UDP_BATCH;
	memset(mm, 0, sizeof(*mm) * n);
	for (unsigned i = 0; i < n; i++) {
		iov[i].iov_base = msgs[i].buf;
		iov[i].iov_len = msgs[i].cap;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = &from[i];
		mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
		mm[i].msg_hdr.msg_control = cbuf[i].buf;
		mm[i].msg_hdr.msg_controllen = sizeof(cbuf[i].buf);
	}
	got = recvmmsg(fd, mm, n, MSG_DONTWAIT, NULL);
	if (got < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	for (int i = 0; i < got; i++) {
		struct udp_msg *m = &msgs[i];
		/* A truncated datagram is not the datagram that was sent. */
		if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
			m->len = 0;
		else
			m->len = mm[i].msg_len;
		na_endpoint_from_sockaddr(&m->from, (struct sockaddr *)&from[i]);
		parse_cmsgs(&mm[i].msg_hdr, m);
	}
	return got;
}

/* Control storage for one outgoing datagram: source address and TOS. */
union udp_cbuf {
	char buf[CMSG_SPACE_ALL];
	struct cmsghdr align;
};

/* Fills mh for the k datagrams o[0..k), all to one destination from one
 * source: one datagram, or with k > 1 a GSO run whose segments are o[0].len
 * long (the last may be shorter). Its storage (ss, iov[k], cbuf) is the
 * caller's. */
static void fill_msghdr(struct msghdr *mh, struct sockaddr_storage *ss, struct iovec *iov,
			union udp_cbuf *cbuf, const struct udp_out *o, unsigned k)
{
	size_t clen = 0;
	struct cmsghdr *c;

	for (unsigned i = 0; i < k; i++) {
		iov[i].iov_base = (void *)o[i].buf;
		iov[i].iov_len = o[i].len;
	}
	memset(mh, 0, sizeof(*mh));
	memset(cbuf, 0, sizeof(*cbuf));
	mh->msg_name = ss;
	mh->msg_namelen = na_endpoint_to_sockaddr(&o->to, ss);
	mh->msg_iov = iov;
	mh->msg_iovlen = k;
	mh->msg_control = cbuf->buf;
	mh->msg_controllen = sizeof(cbuf->buf);
	c = CMSG_FIRSTHDR(mh);
	if (o->src.family == AF_INET && o->to.ip.family == AF_INET) {
		struct in_pktinfo pi = { 0 };
		memcpy(&pi.ipi_spec_dst, o->src.v4, 4);
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		clen += CMSG_SPACE(sizeof(pi));
		c = CMSG_NXTHDR(mh, c);
	} else if (o->src.family == AF_INET6 && o->to.ip.family == AF_INET6) {
		struct in6_pktinfo pi = { 0 };
		memcpy(&pi.ipi6_addr, o->src.v6, 16);
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		clen += CMSG_SPACE(sizeof(pi));
		c = CMSG_NXTHDR(mh, c);
	}
	if (o->tos) {
		int v = o->tos;
		c->cmsg_level = o->to.ip.family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
		c->cmsg_type = o->to.ip.family == AF_INET ? IP_TOS : IPV6_TCLASS;
		c->cmsg_len = CMSG_LEN(sizeof(v));
		memcpy(CMSG_DATA(c), &v, sizeof(v));
		clen += CMSG_SPACE(sizeof(v));
		c = CMSG_NXTHDR(mh, c);
	}
	if (k > 1) {
		uint16_t seg = (uint16_t)o->len;
		c->cmsg_level = SOL_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(seg));
		memcpy(CMSG_DATA(c), &seg, sizeof(seg));
		clen += CMSG_SPACE(sizeof(seg));
	}
	mh->msg_controllen = clen;
	if (!clen)
		mh->msg_control = NULL;
}

int udp_send(int fd, const void *buf, size_t len, const struct na_endpoint *to,
	     const struct na_ip *src, uint8_t tos)
{
	struct udp_out o = { .buf = buf, .len = len, .to = *to, .tos = tos };
	struct sockaddr_storage ss;
	struct iovec iov;
	union udp_cbuf cbuf;
	struct msghdr mh;

	if (src)
		o.src = *src;
	fill_msghdr(&mh, &ss, &iov, &cbuf, &o, 1);
	return sendmsg(fd, &mh, 0) < 0 ? -errno : 0;
}

static bool same_flow(const struct udp_out *a, const struct udp_out *b)
{
	return a->tos == b->tos && na_endpoint_equal(&a->to, &b->to) &&
	       a->src.family == b->src.family &&
	       (!a->src.family || na_ip_equal(&a->src, &b->src));
}

/* How many of out[0..n) one message can carry: a GSO run of equal-size
 * datagrams to one destination (the last may be shorter), or one. */
static unsigned run_length(const struct udp_out *out, unsigned n)
{
	unsigned k = 1;
	size_t total = out[0].len;

	if (!gso_ok)
		return 1;
	while (k < n && k < GSO_MAX_SEGS && out[k - 1].len == out[0].len &&
	       out[k].len <= out[0].len && total + out[k].len <= GSO_MAX_BYTES &&
	       same_flow(&out[0], &out[k]))
		total += out[k++].len;
	return k;
}

int udp_send_batch(int fd, const struct udp_out *out, unsigned n)
{
	struct mmsghdr mm[UDP_BATCH];
	struct sockaddr_storage ss[UDP_BATCH];
	struct iovec iov[GSO_MAX_SEGS * 2];
	union udp_cbuf cbuf[UDP_BATCH];
	unsigned segs[UDP_BATCH];
	unsigned done = 0;

	while (done < n) {
		unsigned m = 0, used = 0;
		/* Fill messages until the batch or the iovec room runs out. */
		while (done + used < n && m < UDP_BATCH) {
			unsigned k = run_length(&out[done + used], n - done - used);
			if (used + k > sizeof(iov) / sizeof(*iov))
				break;
			fill_msghdr(&mm[m].msg_hdr, &ss[m], &iov[used], &cbuf[m], &out[done + used], k);
			mm[m].msg_len = 0;
			segs[m++] = k;
			used += k;
		}
		int r = sendmmsg(fd, mm, m, 0);
		if (r < 0 && gso_ok && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT) &&
		    segs[0] > 1) {
			gso_ok = false; /* this kernel or device cannot: one by one */
			continue;
		}
		if (r <= 0)
			break;
		for (int i = 0; i < r; i++)
			done += segs[i];
		if ((unsigned)r < m)
			break;
	}
	return (int)done;
}
