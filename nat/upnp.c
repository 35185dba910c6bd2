/* UPnP IGD port mapping over libminiupnpc (see upnp.h for why this core
 * does I/O, and which router habits it copes with). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include "nat/upnp.h"

#define UPNP_ERR_CONFLICT        718
#define UPNP_ERR_PERMANENT_ONLY  725
#define UPNP_ERR_NO_SUCH_ENTRY   714
/* Other external ports tried after a conflict on IGDv1. */
#define UPNP_CONFLICT_TRIES      4

static const char *errname(int code)
{
	const char *s = strupnperror(code);
	return s ? s : "unknown error";
}

int upnp_discover(struct upnp_igd *g, int timeout_ms, char why[UPNP_WHY_LEN])
{
	struct UPNPDev *devs;
	struct UPNPUrls *urls;
	struct IGDdatas *data;
	int err = 0, r;

	memset(g, 0, sizeof(*g));
	devs = upnpDiscover(timeout_ms, NULL, NULL, UPNP_LOCAL_PORT_ANY, 0, 2, &err);
	if (!devs) {
		if (err == UPNPDISCOVER_SOCKET_ERROR)
			snprintf(why, UPNP_WHY_LEN, "SSDP discovery failed: its socket could not send (no route for multicast?)");
		else
			snprintf(why, UPNP_WHY_LEN, "no UPnP device answered SSDP discovery");
		return -ENOENT;
	}
	urls = calloc(1, sizeof(*urls));
	data = calloc(1, sizeof(*data));
	if (!urls || !data) {
		free(urls);
		free(data);
		freeUPNPDevlist(devs);
		snprintf(why, UPNP_WHY_LEN, "out of memory");
		return -ENOMEM;
	}
	r = UPNP_GetValidIGD(devs, urls, data, g->lan_str, sizeof(g->lan_str));
	freeUPNPDevlist(devs);
	if (r != 1 && r != 2) {
		if (r == 3)
			FreeUPNPUrls(urls);
		free(urls);
		free(data);
		snprintf(why, UPNP_WHY_LEN, "%s",
			 r == 3 ? "a UPnP device answered, but it is no Internet Gateway Device"
				: "no Internet Gateway Device found");
		return -ENOENT;
	}
	g->urls = urls;
	g->data = data;
	g->connected = r == 1;
	snprintf(g->service_type, sizeof(g->service_type), "%s", data->first.servicetype);
	snprintf(g->control_url, sizeof(g->control_url), "%s", urls->controlURL);
	g->v2 = strstr(g->service_type, "WANIPConnection:2") != NULL;
	if (!na_ip_parse(&g->lan, g->lan_str)) {
		snprintf(why, UPNP_WHY_LEN, "the IGD is reached from an unusable address '%s'",
			 g->lan_str);
		upnp_free(g);
		return -EINVAL;
	}
	return 0;
}

void upnp_free(struct upnp_igd *g)
{
	if (g->urls) {
		FreeUPNPUrls(g->urls);
		free(g->urls);
	}
	free(g->data);
	g->urls = g->data = NULL;
}

int upnp_external_ip(struct upnp_igd *g, struct na_ip *out, char why[UPNP_WHY_LEN])
{
	char ip[40] = "";
	int r = UPNP_GetExternalIPAddress(g->control_url, g->service_type, ip);

	if (r) {
		snprintf(why, UPNP_WHY_LEN, "GetExternalIPAddress failed: %s (%d)", errname(r), r);
		return r > 0 ? r : -EIO;
	}
	if (!na_ip_parse(out, ip)) {
		snprintf(why, UPNP_WHY_LEN, "the IGD gave an unusable external address '%s'", ip);
		return -EINVAL;
	}
	return 0;
}

static int add_one(struct upnp_igd *g, bool any, uint16_t internal_port, uint16_t ext,
		   unsigned lease, const char *desc, uint16_t *got)
{
	char ext_s[8], in_s[8], lease_s[16], reserved[8] = "";
	int r;

	snprintf(ext_s, sizeof(ext_s), "%u", ext);
	snprintf(in_s, sizeof(in_s), "%u", internal_port);
	snprintf(lease_s, sizeof(lease_s), "%u", lease);
	if (any) {
		r = UPNP_AddAnyPortMapping(g->control_url, g->service_type, ext_s, in_s, g->lan_str,
					   desc, "UDP", NULL, lease_s, reserved);
		if (!r) {
			unsigned long v = strtoul(reserved, NULL, 10);
			*got = v > 0 && v < 65536 ? (uint16_t)v : ext;
		}
		return r;
	}
	r = UPNP_AddPortMapping(g->control_url, g->service_type, ext_s, in_s, g->lan_str, desc,
				"UDP", NULL, lease_s);
	if (!r)
		*got = ext;
	return r;
}

/* One external port, IGDv2's call first: a router that lists the service
 * but not the action answers 401/602, and the v1 call still works. */
static int add_port(struct upnp_igd *g, uint16_t internal_port, uint16_t ext, unsigned lease,
		    const char *desc, uint16_t *got)
{
	int r = -1;

	if (g->v2) {
		r = add_one(g, true, internal_port, ext, lease, desc, got);
		if (!r || r == UPNP_ERR_PERMANENT_ONLY)
			return r;
	}
	return add_one(g, false, internal_port, ext, lease, desc, got);
}

int upnp_add(struct upnp_igd *g, uint16_t internal_port, uint16_t want_ext, unsigned lease,
	     const char *description, struct upnp_lease *out, char why[UPNP_WHY_LEN])
{
	uint16_t ext = want_ext ? want_ext : internal_port, got = 0;
	int r = -1;

	for (unsigned i = 0; i <= UPNP_CONFLICT_TRIES; i++) {
		r = add_port(g, internal_port, ext, lease, description, &got);
		if (r == UPNP_ERR_PERMANENT_ONLY && lease) {
			/* The router's rule, not ours: a permanent mapping
			 * that the caller deletes on exit. */
			lease = 0;
			r = add_port(g, internal_port, ext, 0, description, &got);
		}
		if (r != UPNP_ERR_CONFLICT)
			break;
		/* Someone else holds it: the next ports up, skipping the
		 * reserved range below 1024 on wrap. */
		ext = ext >= 65535 ? 1024 : (uint16_t)(ext + 1);
	}
	if (r) {
		snprintf(why, UPNP_WHY_LEN, "AddPortMapping failed: %s (%d)", errname(r), r);
		return r > 0 ? r : -EIO;
	}
	out->external_port = got;
	out->lease = lease;
	return 0;
}

int upnp_check(struct upnp_igd *g, uint16_t external_port, uint16_t internal_port,
	       char why[UPNP_WHY_LEN])
{
	char ext_s[8], client[64] = "", in_s[8] = "", desc[80] = "", enabled[4] = "",
		lease[16] = "";
	int r;

	snprintf(ext_s, sizeof(ext_s), "%u", external_port);
	r = UPNP_GetSpecificPortMappingEntry(g->control_url, g->service_type, ext_s, "UDP", NULL,
					     client, in_s, desc, enabled, lease);
	if (r == UPNP_ERR_NO_SUCH_ENTRY)
		return 0;
	if (r) {
		snprintf(why, UPNP_WHY_LEN, "GetSpecificPortMappingEntry failed: %s (%d)", errname(r), r);
		return r > 0 ? -EPROTO : -EIO;
	}
	/* Held, but for someone else (the router gave our port away). */
	return strcmp(client, g->lan_str) == 0 && strtoul(in_s, NULL, 10) == internal_port;
}

int upnp_delete(struct upnp_igd *g, uint16_t external_port, char why[UPNP_WHY_LEN])
{
	char ext_s[8];
	int r;

	snprintf(ext_s, sizeof(ext_s), "%u", external_port);
	r = UPNP_DeletePortMapping(g->control_url, g->service_type, ext_s, "UDP", NULL);
	if (r && r != UPNP_ERR_NO_SUCH_ENTRY) {
		snprintf(why, UPNP_WHY_LEN, "DeletePortMapping failed: %s (%d)", errname(r), r);
		return r > 0 ? r : -EIO;
	}
	return 0;
}
