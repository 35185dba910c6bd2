#include "agent/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define LINE_MAX_LEN 4096

/* Single-valued keys, for the "given twice" check. Keys that accumulate
 * (Address, AllowedIPs, STUN) are not listed. */
enum key_id {
	K_PRIVATE_KEY, K_LISTEN_PORT, K_MODE, K_MTU, K_RENDEZVOUS, K_RENDEZVOUS_KEY,
	K_PORT_MAPPING, K_PM_LEASE, K_FORWARD_TO, K_AUTONAT, K_IDLE,
	K_PUBLIC_KEY, K_ENDPOINT, K_KEEPALIVE, K_LOCAL_ENDPOINT,
	K_LISTEN, K_ALTERNATE, K_MAX_PEERS, K_MSG_RATE, K_RELAY_RATE, K_RELAY_TOTAL, K_COUNT
};

static void emit(struct config_ctx *ctx, bool warning, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void emit(struct config_ctx *ctx, bool warning, const char *fmt, ...)
{
	char msg[LINE_MAX_LEN + 256];
	int n = 0;
	va_list ap;

	if (ctx->line)
		n = snprintf(msg, sizeof(msg), "%s:%u: %s", ctx->file, ctx->line,
			     warning ? "warning: " : "");
	else
		n = snprintf(msg, sizeof(msg), "%s: %s", ctx->file, warning ? "warning: " : "");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	if (!warning)
		ctx->errors++;
	if (ctx->on_error)
		ctx->on_error(ctx->arg, msg);
}

#define error(ctx, ...) emit(ctx, false, __VA_ARGS__)

void config_error_to_stderr(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "%s\n", msg);
}

bool config_name_from_path(char out[CONFIG_NAME_MAX], const char *path)
{
	const char *base = strrchr(path, '/');
	size_t len;

	base = base ? base + 1 : path;
	len = strlen(base);
	if (len > 5 && !strcmp(base + len - 5, ".conf"))
		len -= 5;
	if (len == 0 || len >= CONFIG_NAME_MAX)
		return false;
	/* The characters wg-quick accepts in an interface name. */
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)base[i]) && !strchr("_=+.-", base[i]))
			return false;
	memcpy(out, base, len);
	out[len] = 0;
	return true;
}

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mtu = CONFIG_DEFAULT_MTU;
	cfg->idle_timeout = CONFIG_DEFAULT_IDLE;
	cfg->rdv.max_peers = CONFIG_RDV_MAX_PEERS;
	cfg->rdv.message_rate = CONFIG_RDV_MESSAGE_RATE;
	cfg->rdv.relay_rate = CONFIG_RDV_RELAY_RATE;
	cfg->rdv.relay_rate_total = CONFIG_RDV_RELAY_TOTAL;
	/* Default order: UPnP first because home routers most often speak it,
	 * PCP before NAT-PMP because PCP supersedes it and also does IPv6. */
	cfg->portmap[0] = PORTMAP_UPNP;
	cfg->portmap[1] = PORTMAP_PCP;
	cfg->portmap[2] = PORTMAP_NATPMP;
	cfg->n_portmap = 3;
	cfg->portmap_lease = CONFIG_DEFAULT_PM_LEASE;
}

void config_free(struct config *cfg)
{
	free(cfg->peers);
	cfg->peers = NULL;
	cfg->n_peers = 0;
}

void config_read_init(struct config_ctx *ctx, struct config *cfg, const char *file,
		      config_error_fn on_error, void *arg)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->cfg = cfg;
	ctx->file = file;
	ctx->on_error = on_error;
	ctx->arg = arg;
}

/* ---- value parsers: each returns false after reporting what was wrong ---- */

static bool parse_key(struct config_ctx *ctx, const char *name, const char *v, uint8_t out[KEY_LEN])
{
	const char *why;

	if (key_from_base64(out, v, &why))
		return true;
	error(ctx, "%s: '%s' %s", name, v, why);
	return false;
}

static bool parse_uint_range(struct config_ctx *ctx, const char *name, const char *v,
			     unsigned long min, unsigned long max, unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (!isdigit((unsigned char)*v) || *end || errno || n < min || n > max) {
		error(ctx, "%s: '%s' is not a number from %lu to %lu", name, v, min, max);
		return false;
	}
	*out = (unsigned)n;
	return true;
}

static bool parse_endpoint(struct config_ctx *ctx, const char *name, const char *v,
			   struct na_endpoint *out)
{
	if (na_endpoint_parse(out, v, false))
		return true;
	error(ctx, "%s: '%s' is not an address:port (IPv6 in brackets, port 1-65535)", name, v);
	return false;
}

static bool parse_bool(struct config_ctx *ctx, const char *name, const char *v, bool *out)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
		*out = true;
		return true;
	}
	if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
		*out = false;
		return true;
	}
	error(ctx, "%s: '%s' is not true or false", name, v);
	return false;
}

/* Calls fn for each comma-separated item of v (whitespace already gone). */
static bool each_item(struct config_ctx *ctx, const char *name, const char *v,
		      bool (*fn)(struct config_ctx *, const char *, const char *, void *),
		      void *arg)
{
	char buf[LINE_MAX_LEN];
	char *save = NULL, *item;
	bool ok = true;

	snprintf(buf, sizeof(buf), "%s", v);
	if (!*buf || buf[strlen(buf) - 1] == ',' || *buf == ',' || strstr(buf, ",,")) {
		error(ctx, "%s: '%s' has an empty item in its list", name, v);
		return false;
	}
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save))
		ok = fn(ctx, name, item, arg) && ok;
	return ok;
}

static bool add_address(struct config_ctx *ctx, const char *name, const char *item, void *arg)
{
	struct config *cfg = ctx->cfg;
	struct na_prefix p;

	(void)arg;
	if (!na_ifaddr_parse(&p, item)) {
		error(ctx, "%s: '%s' is not an address with a prefix length", name, item);
		return false;
	}
	if (cfg->n_addresses >= CONFIG_MAX_ADDRS) {
		error(ctx, "%s: more than %d addresses", name, CONFIG_MAX_ADDRS);
		return false;
	}
	cfg->addresses[cfg->n_addresses++] = p;
	return true;
}

static bool add_stun(struct config_ctx *ctx, const char *name, const char *item, void *arg)
{
	struct config *cfg = ctx->cfg;
	struct na_endpoint ep;

	(void)arg;
	if (!parse_endpoint(ctx, name, item, &ep))
		return false;
	if (cfg->n_stun >= CONFIG_MAX_STUN) {
		error(ctx, "%s: more than %d servers", name, CONFIG_MAX_STUN);
		return false;
	}
	cfg->stun[cfg->n_stun++] = ep;
	return true;
}

static bool add_allowed_ip(struct config_ctx *ctx, const char *name, const char *item, void *arg)
{
	struct config_peer *peer = arg;
	struct na_prefix p;

	if (!na_prefix_parse(&p, item)) {
		if (na_ifaddr_parse(&p, item))
			error(ctx, "%s: '%s' has host bits set beyond its prefix length", name, item);
		else
			error(ctx, "%s: '%s' is not an IP prefix", name, item);
		return false;
	}
	if (peer->n_allowed_ips >= CONFIG_MAX_ALLOWED) {
		error(ctx, "%s: more than %d prefixes for one peer", name, CONFIG_MAX_ALLOWED);
		return false;
	}
	peer->allowed_ips[peer->n_allowed_ips++] = p;
	return true;
}

static bool add_portmap(struct config_ctx *ctx, const char *name, const char *item, void *arg)
{
	struct config *cfg = ctx->cfg;
	bool *off = arg;

	if (!strcasecmp(item, "off") || !strcasecmp(item, "none")) {
		*off = true;
		return true;
	}
	for (unsigned p = 0; p < PORTMAP_COUNT; p++) {
		if (strcasecmp(item, config_portmap_name(p)))
			continue;
		for (unsigned i = 0; i < cfg->n_portmap; i++) {
			if (cfg->portmap[i] == p) {
				error(ctx, "%s: '%s' is listed twice", name, item);
				return false;
			}
		}
		cfg->portmap[cfg->n_portmap++] = p;
		return true;
	}
	error(ctx, "%s: '%s' is not one of upnp, pcp, natpmp, off", name, item);
	return false;
}

static bool parse_portmap(struct config_ctx *ctx, const char *name, const char *v)
{
	struct config *cfg = ctx->cfg;
	bool off = false;

	cfg->n_portmap = 0;
	if (!each_item(ctx, name, v, add_portmap, &off))
		return false;
	if (off && cfg->n_portmap) {
		error(ctx, "%s: 'off' cannot be combined with protocols", name);
		return false;
	}
	return true;
}

static bool parse_mode(struct config_ctx *ctx, const char *name, const char *v)
{
	static const enum config_mode modes[] = { MODE_TUN, MODE_PROXY, MODE_WIREGUARD };

	for (size_t i = 0; i < sizeof(modes) / sizeof(*modes); i++) {
		if (!strcasecmp(v, config_mode_name(modes[i]))) {
			ctx->cfg->mode = modes[i];
			ctx->cfg->has_mode = true;
			return true;
		}
	}
	error(ctx, "%s: '%s' is not one of tun, proxy, wireguard", name, v);
	return false;
}

static bool parse_keepalive(struct config_ctx *ctx, const char *name, const char *v,
			    struct config_peer *peer)
{
	if (!strcasecmp(v, "auto")) {
		/* Sent only where the measured NAT lifetime needs it. */
		peer->has_persistent_keepalive = false;
		return true;
	}
	if (!strcasecmp(v, "off")) {
		peer->persistent_keepalive = 0;
	} else if (!parse_uint_range(ctx, name, v, 0, 65535, &peer->persistent_keepalive)) {
		return false;
	}
	peer->has_persistent_keepalive = true;
	return true;
}

/* ---- sections and keys ---- */

struct key_def {
	const char *name;
	int section;
	int id; /* enum key_id, or -1 for keys that may repeat */
};

static const struct key_def keys[] = {
	{ "PrivateKey", SEC_INTERFACE, K_PRIVATE_KEY },
	{ "ListenPort", SEC_INTERFACE, K_LISTEN_PORT },
	{ "Mode", SEC_INTERFACE, K_MODE },
	{ "Address", SEC_INTERFACE, -1 },
	{ "MTU", SEC_INTERFACE, K_MTU },
	{ "Rendezvous", SEC_INTERFACE, K_RENDEZVOUS },
	{ "RendezvousKey", SEC_INTERFACE, K_RENDEZVOUS_KEY },
	{ "STUN", SEC_INTERFACE, -1 },
	{ "PortMapping", SEC_INTERFACE, K_PORT_MAPPING },
	{ "PortMappingLease", SEC_INTERFACE, K_PM_LEASE },
	{ "ForwardTo", SEC_INTERFACE, K_FORWARD_TO },
	{ "AutoNATService", SEC_INTERFACE, K_AUTONAT },
	{ "IdleTimeout", SEC_INTERFACE, K_IDLE },
	{ "PublicKey", SEC_PEER, K_PUBLIC_KEY },
	{ "AllowedIPs", SEC_PEER, -1 },
	{ "Endpoint", SEC_PEER, K_ENDPOINT },
	{ "PersistentKeepalive", SEC_PEER, K_KEEPALIVE },
	{ "LocalEndpoint", SEC_PEER, K_LOCAL_ENDPOINT },
	{ "Listen", SEC_RENDEZVOUS, K_LISTEN },
	{ "AlternateListen", SEC_RENDEZVOUS, K_ALTERNATE },
	{ "MaxPeers", SEC_RENDEZVOUS, K_MAX_PEERS },
	{ "MessageRate", SEC_RENDEZVOUS, K_MSG_RATE },
	{ "RelayRate", SEC_RENDEZVOUS, K_RELAY_RATE },
	{ "RelayRateTotal", SEC_RENDEZVOUS, K_RELAY_TOTAL },
};

static const char *section_name(int s)
{
	return s == SEC_INTERFACE ? "[Interface]" : s == SEC_PEER ? "[Peer]" : "[Rendezvous]";
}

/* The bit of a key in the "given" masks. */
static uint32_t key_bit(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		if (!strcmp(keys[i].name, name))
			return 1u << i;
	return 0;
}

static struct config_peer *current_peer(struct config_ctx *ctx)
{
	return &ctx->cfg->peers[ctx->cfg->n_peers - 1];
}

static void apply_interface(struct config_ctx *ctx, int id, const char *name, const char *v)
{
	struct config *cfg = ctx->cfg;
	unsigned n;

	switch (id) {
	case K_PRIVATE_KEY:
		if (parse_key(ctx, name, v, cfg->private_key)) {
			cfg->has_private_key = true;
			key_public(cfg->public_key, cfg->private_key);
		}
		break;
	case K_LISTEN_PORT:
		if (parse_uint_range(ctx, name, v, 0, 65535, &n))
			cfg->listen_port = (uint16_t)n;
		break;
	case K_MODE:
		parse_mode(ctx, name, v);
		break;
	case K_MTU:
		/* 1280 is the IPv6 minimum; above 65535 - headers nothing fits. */
		parse_uint_range(ctx, name, v, 1280, 65000, &cfg->mtu);
		break;
	case K_RENDEZVOUS:
		cfg->has_rendezvous = parse_endpoint(ctx, name, v, &cfg->rendezvous);
		break;
	case K_RENDEZVOUS_KEY:
		cfg->has_rendezvous_key = parse_key(ctx, name, v, cfg->rendezvous_key);
		break;
	case K_PORT_MAPPING:
		parse_portmap(ctx, name, v);
		break;
	case K_PM_LEASE:
		/* Below 10 s renewals would be most of the traffic; a week is
		 * the longest lease PCP servers commonly grant. */
		parse_uint_range(ctx, name, v, 10, 604800, &cfg->portmap_lease);
		break;
	case K_FORWARD_TO:
		cfg->has_forward_to = parse_endpoint(ctx, name, v, &cfg->forward_to);
		break;
	case K_AUTONAT:
		parse_bool(ctx, name, v, &cfg->autonat_service);
		break;
	case K_IDLE:
		parse_uint_range(ctx, name, v, 5, 3600, &cfg->idle_timeout);
		break;
	}
}

static void apply_peer(struct config_ctx *ctx, int id, const char *name, const char *v)
{
	struct config_peer *peer = current_peer(ctx);

	switch (id) {
	case K_PUBLIC_KEY:
		peer->has_public_key = parse_key(ctx, name, v, peer->public_key);
		break;
	case K_ENDPOINT:
		peer->has_endpoint = parse_endpoint(ctx, name, v, &peer->endpoint);
		break;
	case K_KEEPALIVE:
		parse_keepalive(ctx, name, v, peer);
		break;
	case K_LOCAL_ENDPOINT:
		peer->has_local_endpoint = parse_endpoint(ctx, name, v, &peer->local_endpoint);
		break;
	}
}

static void apply_rendezvous(struct config_ctx *ctx, int id, const char *name, const char *v)
{
	struct config_rendezvous *r = &ctx->cfg->rdv;

	if (id == K_LISTEN)
		r->has_listen = parse_endpoint(ctx, name, v, &r->listen);
	else if (id == K_ALTERNATE)
		r->has_alternate = parse_endpoint(ctx, name, v, &r->alternate);
	else if (id == K_MAX_PEERS)
		parse_uint_range(ctx, name, v, 1, 10000000, &r->max_peers);
	else if (id == K_MSG_RATE)
		parse_uint_range(ctx, name, v, 0, 100000, &r->message_rate);
	else if (id == K_RELAY_RATE)
		parse_uint_range(ctx, name, v, 0, 30000, &r->relay_rate);
	else if (id == K_RELAY_TOTAL)
		parse_uint_range(ctx, name, v, 0, 30000, &r->relay_rate_total);
}

static void apply_list(struct config_ctx *ctx, const struct key_def *k, const char *v)
{
	if (!strcmp(k->name, "Address"))
		each_item(ctx, k->name, v, add_address, NULL);
	else if (!strcmp(k->name, "STUN"))
		each_item(ctx, k->name, v, add_stun, NULL);
	else if (!strcmp(k->name, "AllowedIPs"))
		each_item(ctx, k->name, v, add_allowed_ip, current_peer(ctx));
}

static void begin_section(struct config_ctx *ctx, const char *name)
{
	struct config *cfg = ctx->cfg;

	memset(ctx->seen, 0, sizeof(ctx->seen));
	if (!strcasecmp(name, "[Interface]")) {
		if (ctx->seen_interface)
			error(ctx, "[Interface] given twice");
		ctx->seen_interface = true;
		ctx->interface_line = ctx->line;
		ctx->section = SEC_INTERFACE;
	} else if (!strcasecmp(name, "[Peer]")) {
		if (cfg->n_peers >= CONFIG_MAX_PEERS) {
			error(ctx, "more than %d peers", CONFIG_MAX_PEERS);
			ctx->section = SEC_INVALID;
			return;
		}
		struct config_peer *p = realloc(cfg->peers, (cfg->n_peers + 1) * sizeof(*p));
		if (!p) {
			error(ctx, "out of memory");
			ctx->section = SEC_INVALID;
			return;
		}
		cfg->peers = p;
		memset(&p[cfg->n_peers], 0, sizeof(*p));
		p[cfg->n_peers++].line = ctx->line;
		ctx->section = SEC_PEER;
	} else if (!strcasecmp(name, "[Rendezvous]")) {
		if (cfg->rdv.present)
			error(ctx, "[Rendezvous] given twice");
		cfg->rdv.present = true;
		cfg->rdv.line = ctx->line;
		ctx->section = SEC_RENDEZVOUS;
	} else {
		error(ctx, "'%s' is not a section; expected [Interface], [Peer] or [Rendezvous]", name);
		ctx->section = SEC_INVALID;
	}
}

static void key_value(struct config_ctx *ctx, const char *line)
{
	const char *eq = strchr(line, '=');
	char name[64];
	const struct key_def *k = NULL;

	if (!eq || eq == line) {
		error(ctx, "'%s' is not a Key = Value line", ctx->raw);
		return;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(eq - line), line);
	const char *v = eq + 1;

	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		if (!strcasecmp(name, keys[i].name))
			k = &keys[i];
	if (!k) {
		error(ctx, "unknown key '%s'", name);
		return;
	}
	if (ctx->section == SEC_INVALID)
		return; /* under a bad header, already reported */
	if (ctx->section == SEC_NONE) {
		error(ctx, "%s: outside any section; put it under %s", k->name, section_name(k->section));
		return;
	}
	if ((int)ctx->section != k->section) {
		error(ctx, "%s: not a key of %s (it belongs in %s)", k->name,
		      section_name(ctx->section), section_name(k->section));
		return;
	}
	if (!*v) {
		error(ctx, "%s: no value", k->name);
		return;
	}
	uint32_t bit = 1u << (k - keys);
	if (ctx->section == SEC_INTERFACE)
		ctx->interface_given |= bit;
	else if (ctx->section == SEC_PEER)
		current_peer(ctx)->given |= bit;
	if (k->id >= 0) {
		if (ctx->seen[k->id]) {
			error(ctx, "%s: given twice in this section (first on line %u)", k->name,
			      ctx->seen[k->id]);
			return;
		}
		ctx->seen[k->id] = ctx->line;
	}
	if (k->id < 0)
		apply_list(ctx, k, v);
	else if (k->section == SEC_INTERFACE)
		apply_interface(ctx, k->id, k->name, v);
	else if (k->section == SEC_PEER)
		apply_peer(ctx, k->id, k->name, v);
	else
		apply_rendezvous(ctx, k->id, k->name, v);
}

void config_read_line(struct config_ctx *ctx, const char *input)
{
	char line[LINE_MAX_LEN];
	size_t len = 0;

	ctx->line++;
	char raw[LINE_MAX_LEN];
	size_t rlen = strcspn(input, "#\n");
	while (rlen && isspace((unsigned char)input[rlen - 1]))
		rlen--;
	while (rlen && isspace((unsigned char)*input)) {
		input++;
		rlen--;
	}
	snprintf(raw, sizeof(raw), "%.*s", (int)rlen, input);
	ctx->raw = raw;
	/* Drop comments and every blank, as wg does: values never hold spaces. */
	for (const char *p = input; *p && *p != '#' && *p != '\n'; p++) {
		if (isspace((unsigned char)*p))
			continue;
		if (len + 1 >= sizeof(line)) {
			error(ctx, "line longer than %d characters", LINE_MAX_LEN - 1);
			return;
		}
		line[len++] = *p;
	}
	line[len] = 0;
	if (!len)
		return;
	if (line[0] == '[')
		begin_section(ctx, line);
	else
		key_value(ctx, line);
}

/* ---- cross-field checks ---- */

/* A key that was given but invalid has been reported already; checks that
 * it is missing or that others depend on it would only repeat that. */
static bool peer_missing(const struct config_peer *p, const char *key, bool has)
{
	return !has && !(p->given & key_bit(key));
}

static void check_peer(struct config_ctx *ctx, unsigned i, bool mode_known)
{
	struct config *cfg = ctx->cfg;
	struct config_peer *p = &cfg->peers[i];

	ctx->line = p->line;
	if (!p->has_public_key) {
		if (peer_missing(p, "PublicKey", false))
			error(ctx, "[Peer]: PublicKey is missing");
		return;
	}
	if (cfg->has_private_key && !memcmp(p->public_key, cfg->public_key, KEY_LEN))
		error(ctx, "[Peer]: PublicKey is this interface's own key");
	for (unsigned j = 0; j < i; j++) {
		const struct config_peer *q = &cfg->peers[j];
		if (q->has_public_key && !memcmp(q->public_key, p->public_key, KEY_LEN))
			error(ctx, "[Peer]: PublicKey duplicates the peer on line %u", q->line);
		if (p->has_local_endpoint && q->has_local_endpoint &&
		    na_endpoint_equal(&q->local_endpoint, &p->local_endpoint))
			error(ctx, "[Peer]: LocalEndpoint is also used by the peer on line %u", q->line);
	}
	if (!mode_known)
		return;
	if (cfg->mode == MODE_PROXY && peer_missing(p, "LocalEndpoint", p->has_local_endpoint))
		error(ctx, "[Peer]: proxy mode needs LocalEndpoint (where the local VPN sends to this peer)");
	if (cfg->mode == MODE_TUN && peer_missing(p, "AllowedIPs", p->n_allowed_ips))
		error(ctx, "[Peer]: tun mode needs AllowedIPs (which addresses route to this peer)");
}

static void check_interface(struct config_ctx *ctx, bool mode_known)
{
	struct config *cfg = ctx->cfg;
	uint32_t given = ctx->interface_given;

	ctx->line = ctx->interface_line;
	if (!cfg->has_private_key && !(given & key_bit("PrivateKey")))
		error(ctx, "[Interface]: PrivateKey is missing (make one with: natctl genkey)");
	if (cfg->has_rendezvous != cfg->has_rendezvous_key &&
	    !(given & key_bit(cfg->has_rendezvous ? "RendezvousKey" : "Rendezvous")))
		error(ctx, "[Interface]: Rendezvous and RendezvousKey go together; %s is missing",
		      cfg->has_rendezvous ? "RendezvousKey" : "Rendezvous");
	if (!mode_known)
		return;
	if (cfg->mode == MODE_TUN && !cfg->n_addresses &&
	    !(given & key_bit("Address")))
		error(ctx, "[Interface]: tun mode needs Address (the tunnel's own address)");
	if (cfg->mode == MODE_PROXY && !cfg->has_forward_to && !(given & key_bit("ForwardTo")))
		error(ctx, "[Interface]: proxy mode needs ForwardTo (where the local VPN listens)");
}

static void check_rendezvous(struct config_ctx *ctx)
{
	const struct config_rendezvous *r = &ctx->cfg->rdv;

	if (!r->present)
		return;
	ctx->line = r->line;
	if (!r->has_listen)
		error(ctx, "[Rendezvous]: Listen is missing");
	else if (r->has_alternate && na_ip_equal(&r->alternate.ip, &r->listen.ip))
		error(ctx, "[Rendezvous]: AlternateListen must be a second IP address, "
			   "not the Listen address (RFC 5780 needs two)");
	else if (r->has_alternate && r->alternate.port == r->listen.port)
		error(ctx, "[Rendezvous]: AlternateListen must use a port other than Listen's");
}

bool config_read_finish(struct config_ctx *ctx)
{
	struct config *cfg = ctx->cfg;
	/* An invalid Mode leaves the mode unknown: checks that depend on it
	 * would guess. */
	bool mode_known = cfg->has_mode || !(ctx->interface_given & key_bit("Mode"));

	ctx->raw = NULL;
	ctx->line = 0;
	if (!ctx->seen_interface) {
		error(ctx, "no [Interface] section");
		return false;
	}
	/* A rendezvous-only host (no peers, no tunnel address) needs no mode;
	 * anyone else is a tun by default. */
	if (!cfg->has_mode && mode_known &&
	    !(cfg->rdv.present && !cfg->n_peers && !cfg->n_addresses))
		cfg->has_mode = true;
	mode_known = mode_known && cfg->has_mode;
	check_interface(ctx, mode_known);
	check_rendezvous(ctx);
	for (unsigned i = 0; i < cfg->n_peers; i++)
		check_peer(ctx, i, mode_known);
	return ctx->errors == 0;
}

void config_read_text(struct config_ctx *ctx, const char *text, size_t len)
{
	char line[LINE_MAX_LEN + 2];

	while (len) {
		const char *nl = memchr(text, '\n', len);
		size_t n = nl ? (size_t)(nl - text) + 1 : len;
		/* A longer line is cut where fgets would have cut it: what is
		 * kept is enough for config_read_line to say it is too long. */
		size_t keep = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

		memcpy(line, text, keep);
		line[keep] = '\0';
		config_read_line(ctx, line);
		text += n;
		len -= n;
	}
}

bool config_load_text(struct config *cfg, const char *file, const char *text, size_t len,
		      config_error_fn on_error, void *arg)
{
	struct config_ctx ctx;

	config_init(cfg);
	config_read_init(&ctx, cfg, file, on_error, arg);
	config_read_text(&ctx, text, len);
	if (!config_read_finish(&ctx)) {
		config_free(cfg);
		return false;
	}
	return true;
}

int config_read_file(const char *path, char **text, size_t *len, mode_t *mode)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	FILE *f = fopen(path, "r");
	int err = 0;

	if (!f)
		return -errno;
	if (mode)
		*mode = fstat(fileno(f), &st) == 0 ? st.st_mode : 0;
	for (;;) {
		if (n == cap) {
			char *b = cap < CONFIG_FILE_MAX ? realloc(buf, cap ? cap * 2 : 4096) : NULL;

			if (!b) {
				err = cap < CONFIG_FILE_MAX ? -ENOMEM : -EFBIG;
				break;
			}
			buf = b;
			cap = cap ? cap * 2 : 4096;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f))
				err = -EIO;
			break;
		}
	}
	fclose(f);
	if (err) {
		free(buf);
		return err;
	}
	*text = buf;
	*len = n;
	return 0;
}

bool config_load(struct config *cfg, const char *path, config_error_fn on_error, void *arg)
{
	struct config_ctx ctx;
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	int err;

	config_init(cfg);
	config_read_init(&ctx, cfg, path, on_error, arg);
	if (!config_name_from_path(cfg->name, path)) {
		error(&ctx, "the file name must be an interface name and '.conf' "
			    "(1-15 characters of A-Z a-z 0-9 _ = + . -)");
		return false;
	}
	snprintf(cfg->path, sizeof(cfg->path), "%s", path);
	err = config_read_file(path, &text, &len, &mode);
	if (err == -EIO || err == -EFBIG) {
		error(&ctx, "%s", err == -EIO ? "read error" : "larger than natagent reads");
		return false;
	}
	if (err) {
		error(&ctx, "cannot open: %s", strerror(-err));
		return false;
	}
	if (mode & 077)
		emit(&ctx, true, "readable by group or others (mode %04o) but holds a private key; chmod 600 it",
		     mode & 07777);
	config_read_text(&ctx, text, len);
	free(text);
	if (!config_read_finish(&ctx)) {
		config_free(cfg);
		return false;
	}
	return true;
}

/* ---- output ---- */

const char *config_mode_name(enum config_mode mode)
{
	switch (mode) {
	case MODE_TUN: return "tun";
	case MODE_PROXY: return "proxy";
	case MODE_WIREGUARD: return "wireguard";
	}
	return "?";
}

const char *config_portmap_name(enum portmap_proto p)
{
	switch (p) {
	case PORTMAP_UPNP: return "upnp";
	case PORTMAP_PCP: return "pcp";
	case PORTMAP_NATPMP: return "natpmp";
	case PORTMAP_COUNT: break;
	}
	return "?";
}

const struct config_peer *config_find_peer(const struct config *cfg, const uint8_t key[KEY_LEN])
{
	for (unsigned i = 0; i < cfg->n_peers; i++)
		if (!memcmp(cfg->peers[i].public_key, key, KEY_LEN))
			return &cfg->peers[i];
	return NULL;
}

static void print_endpoints(FILE *out, const char *name, const struct na_endpoint *eps, unsigned n)
{
	char buf[NA_ENDPOINT_STRLEN];

	if (!n)
		return;
	fprintf(out, "%s = ", name);
	for (unsigned i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? ", " : "", na_endpoint_str(&eps[i], buf, sizeof(buf)));
	fputc('\n', out);
}

static void print_prefixes(FILE *out, const char *name, const struct na_prefix *p, unsigned n)
{
	char buf[NA_PREFIX_STRLEN];

	if (!n)
		return;
	fprintf(out, "%s = ", name);
	for (unsigned i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? ", " : "", na_prefix_str(&p[i], buf, sizeof(buf)));
	fputc('\n', out);
}

static void print_key(FILE *out, const char *name, const uint8_t key[KEY_LEN])
{
	char b64[KEY_B64_LEN];

	key_to_base64(b64, key);
	fprintf(out, "%s = %s\n", name, b64);
}

static void print_interface(const struct config *cfg, FILE *out, bool with_key)
{
	fprintf(out, "[Interface]\n# Name = %s\n", cfg->name);
	if (with_key)
		print_key(out, "PrivateKey", cfg->private_key);
	else
		fprintf(out, "PrivateKey = (hidden)\n");
	print_key(out, "# PublicKey", cfg->public_key);
	fprintf(out, "ListenPort = %u\n", cfg->listen_port);
	if (cfg->has_mode)
		fprintf(out, "Mode = %s\n", config_mode_name(cfg->mode));
	print_prefixes(out, "Address", cfg->addresses, cfg->n_addresses);
	if (cfg->has_mode && cfg->mode == MODE_TUN)
		fprintf(out, "MTU = %u\n", cfg->mtu);
	if (cfg->has_rendezvous) {
		print_endpoints(out, "Rendezvous", &cfg->rendezvous, 1);
		print_key(out, "RendezvousKey", cfg->rendezvous_key);
	}
	print_endpoints(out, "STUN", cfg->stun, cfg->n_stun);
	fprintf(out, "PortMapping = ");
	for (unsigned i = 0; i < cfg->n_portmap; i++)
		fprintf(out, "%s%s", i ? ", " : "", config_portmap_name(cfg->portmap[i]));
	fprintf(out, "%s\n", cfg->n_portmap ? "" : "off");
	if (cfg->n_portmap)
		fprintf(out, "PortMappingLease = %u\n", cfg->portmap_lease);
	if (cfg->has_forward_to)
		print_endpoints(out, "ForwardTo", &cfg->forward_to, 1);
	fprintf(out, "AutoNATService = %s\n", cfg->autonat_service ? "true" : "false");
	fprintf(out, "IdleTimeout = %u\n", cfg->idle_timeout);
}

static void print_peer(const struct config_peer *p, FILE *out)
{
	fprintf(out, "\n[Peer]\n");
	print_key(out, "PublicKey", p->public_key);
	print_prefixes(out, "AllowedIPs", p->allowed_ips, p->n_allowed_ips);
	if (p->has_endpoint)
		print_endpoints(out, "Endpoint", &p->endpoint, 1);
	if (!p->has_persistent_keepalive)
		fprintf(out, "PersistentKeepalive = auto\n");
	else if (!p->persistent_keepalive)
		fprintf(out, "PersistentKeepalive = off\n");
	else
		fprintf(out, "PersistentKeepalive = %u\n", p->persistent_keepalive);
	if (p->has_local_endpoint)
		print_endpoints(out, "LocalEndpoint", &p->local_endpoint, 1);
}

static void print_config(const struct config *cfg, FILE *out, bool with_key)
{
	print_interface(cfg, out, with_key);
	for (unsigned i = 0; i < cfg->n_peers; i++)
		print_peer(&cfg->peers[i], out);
	if (cfg->rdv.present) {
		fprintf(out, "\n[Rendezvous]\n");
		print_endpoints(out, "Listen", &cfg->rdv.listen, 1);
		if (cfg->rdv.has_alternate)
			print_endpoints(out, "AlternateListen", &cfg->rdv.alternate, 1);
		fprintf(out, "MaxPeers = %u\n", cfg->rdv.max_peers);
		fprintf(out, "MessageRate = %u\n", cfg->rdv.message_rate);
		fprintf(out, "RelayRate = %u\n", cfg->rdv.relay_rate);
		fprintf(out, "RelayRateTotal = %u\n", cfg->rdv.relay_rate_total);
	}
}

void config_print(const struct config *cfg, FILE *out)
{
	print_config(cfg, out, false);
}

void config_print_with_key(const struct config *cfg, FILE *out)
{
	print_config(cfg, out, true);
}
