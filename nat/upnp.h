/* UPnP IGD port mapping over Debian's libminiupnpc.
 *
 * Unlike the other cores in nat/, this one does I/O: SSDP discovery and the
 * SOAP calls are blocking HTTP inside miniupnpc, which is worth reusing (an
 * XML and HTTP client of our own would be most of the code and all of the
 * bugs). So the agent never calls these from its loop: agent/portmap_upnp.c
 * runs each call on a worker thread. Nothing here logs; every failure comes
 * back as a negative value and a reason written into the caller's buffer.
 *
 * What routers do that this copes with:
 *   - IGDv2 offers AddAnyPortMapping (the router picks a free external port);
 *     IGDv1 only AddPortMapping, so a conflict (718) is answered by trying
 *     other external ports;
 *   - some routers accept only permanent leases (725): the mapping is made
 *     with lease 0 and the caller must delete it on exit;
 *   - UPNP_GetValidIGD() says 2 ("not connected") for an IGD whose external
 *     address is in a reserved range (miniupnpd on 198.18.0.0/15, a lab, or
 *     a router behind a CGNAT): accepted here, since only a reachability
 *     probe can tell whether the mapping works. */
#ifndef NATAGENT_NAT_UPNP_H
#define NATAGENT_NAT_UPNP_H

#include <stdbool.h>
#include <stdint.h>

#include "nat/addr.h"

#define UPNP_WHY_LEN 128

struct upnp_igd {
	void *urls;  /* struct UPNPUrls, allocated by upnp_discover */
	void *data;  /* struct IGDdatas */
	char service_type[128];
	bool v2;          /* WANIPConnection:2: AddAnyPortMapping exists */
	bool connected;   /* GetValidIGD said 1; 2 means it thinks it is not */
	struct na_ip lan; /* our address towards the IGD: the mapping's client */
	char lan_str[64];
	char control_url[256];
};

/* Finds the LAN's IGD by SSDP, waiting at most timeout_ms for answers.
 * 0, or a negative errno-style value with why filled in. */
int upnp_discover(struct upnp_igd *g, int timeout_ms, char why[UPNP_WHY_LEN]);
void upnp_free(struct upnp_igd *g);

/* The IGD's external address. */
int upnp_external_ip(struct upnp_igd *g, struct na_ip *out, char why[UPNP_WHY_LEN]);

struct upnp_lease {
	uint16_t external_port;
	unsigned lease;  /* seconds granted; 0 = permanent (error 725 seen) */
};

/* Maps UDP internal_port on our LAN address. want_ext: the external port to
 * ask for first (0: the internal port). AddAnyPortMapping on IGDv2, else
 * AddPortMapping with up to a few other ports on conflict; a permanent
 * lease when the router accepts no other. Renewing is the same call with
 * want_ext set to the port we hold. Returns the UPnP error code (> 0) or a
 * negative value on failure. */
int upnp_add(struct upnp_igd *g, uint16_t internal_port, uint16_t want_ext, unsigned lease,
	     const char *description, struct upnp_lease *out, char why[UPNP_WHY_LEN]);

/* Whether the IGD still holds external_port for us (UDP, to our LAN address
 * and internal_port): 1 yes, 0 no (a router that restarted, or wiped it),
 * negative when it could not be asked. */
int upnp_check(struct upnp_igd *g, uint16_t external_port, uint16_t internal_port,
	       char why[UPNP_WHY_LEN]);

int upnp_delete(struct upnp_igd *g, uint16_t external_port, char why[UPNP_WHY_LEN]);

#endif
