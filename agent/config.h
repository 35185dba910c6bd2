/* The WireGuard-style configuration: [Interface], [Peer] (many), [Rendezvous].
 *
 * A streaming parser in the manner of wireguard-tools' config.c: feed it one
 * line at a time, then finish, which runs the cross-field checks. Every error
 * names the file, the line and what was expected, and parsing goes on after
 * an error so that one run reports them all. */
#ifndef NATAGENT_AGENT_CONFIG_H
#define NATAGENT_AGENT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "agent/keys.h"
#include "nat/addr.h"

enum config_mode { MODE_TUN, MODE_PROXY, MODE_WIREGUARD };

enum portmap_proto { PORTMAP_UPNP, PORTMAP_PCP, PORTMAP_NATPMP, PORTMAP_COUNT };

#define CONFIG_MAX_STUN    8
#define CONFIG_MAX_ADDRS   8
#define CONFIG_MAX_PEERS   4096
#define CONFIG_MAX_ALLOWED 256
#define CONFIG_NAME_MAX    16 /* IFNAMSIZ */
#define CONFIG_FILE_MAX    (64u << 20) /* bytes read of a file, at most */

#define CONFIG_DEFAULT_MTU        1280
#define CONFIG_DEFAULT_KEEPALIVE  25  /* seconds, where a NAT needs one */
#define CONFIG_DEFAULT_IDLE       30  /* seconds of silence before a session is dead */
#define CONFIG_DEFAULT_PM_LEASE   7200 /* seconds: UPnP IGD's customary lease */
/* A rendezvous's defaults: room for a large fleet, and relaying that keeps
 * one busy pair from starving the others or the host's uplink. */
#define CONFIG_RDV_MAX_PEERS      100000
#define CONFIG_RDV_MESSAGE_RATE   20   /* per second per peer, burst twice that */
#define CONFIG_RDV_RELAY_RATE     100  /* Mbit/s per peer */
#define CONFIG_RDV_RELAY_TOTAL    1000 /* Mbit/s in all */

struct config_peer {
	uint8_t public_key[KEY_LEN];
	bool has_public_key;
	struct na_prefix allowed_ips[CONFIG_MAX_ALLOWED];
	unsigned n_allowed_ips;
	struct na_endpoint endpoint;
	bool has_endpoint;
	unsigned persistent_keepalive; /* seconds; 0 = off */
	bool has_persistent_keepalive; /* unset: decided from the NAT's lifetime */
	struct na_endpoint local_endpoint;
	bool has_local_endpoint;
	unsigned line; /* of its [Peer] header, for messages */
	uint32_t given; /* keys present, valid or not: no "missing" after "invalid" */
};

struct config_rendezvous {
	bool present;
	struct na_endpoint listen;
	bool has_listen;
	struct na_endpoint alternate;
	bool has_alternate;
	unsigned max_peers;        /* registered at once */
	unsigned message_rate;     /* control messages per second per peer; 0 = no limit */
	unsigned relay_rate;       /* Mbit/s relayed per peer; 0 = no limit */
	unsigned relay_rate_total; /* Mbit/s relayed in all; 0 = no limit */
	unsigned line;
};

struct config {
	char name[CONFIG_NAME_MAX]; /* from the file name, like wg-quick */
	char path[256];

	uint8_t private_key[KEY_LEN];
	uint8_t public_key[KEY_LEN];
	bool has_private_key;
	uint16_t listen_port; /* 0: chosen by the kernel */
	enum config_mode mode;
	bool has_mode;
	struct na_prefix addresses[CONFIG_MAX_ADDRS];
	unsigned n_addresses;
	unsigned mtu;
	struct na_endpoint rendezvous;
	bool has_rendezvous;
	uint8_t rendezvous_key[KEY_LEN];
	bool has_rendezvous_key;
	struct na_endpoint stun[CONFIG_MAX_STUN];
	unsigned n_stun;
	/* Port-mapping protocols in the order to prefer them; none = off. */
	enum portmap_proto portmap[PORTMAP_COUNT];
	unsigned n_portmap;
	unsigned portmap_lease; /* seconds asked for; renewed at half */
	struct na_endpoint forward_to;
	bool has_forward_to;
	bool autonat_service;
	unsigned idle_timeout; /* seconds */

	struct config_rendezvous rdv;

	struct config_peer *peers;
	unsigned n_peers;
};

typedef void (*config_error_fn)(void *arg, const char *msg);
/* A config_error_fn for command-line tools: one message a line on stderr. */
void config_error_to_stderr(void *arg, const char *msg);

struct config_ctx {
	struct config *cfg;
	const char *file; /* as named in messages */
	unsigned line;
	enum { SEC_NONE, SEC_INTERFACE, SEC_PEER, SEC_RENDEZVOUS, SEC_INVALID } section;
	unsigned errors;
	config_error_fn on_error;
	void *arg;
	/* Line of the first occurrence of each single-valued key, per section,
	 * so a repeat can say where the first one was. */
	unsigned seen[32];
	bool seen_interface;
	unsigned interface_line;
	uint32_t interface_given; /* as config_peer.given */
	const char *raw; /* the line as written, for quoting */
};

/* The name the file gives the interface: its base name without ".conf". */
bool config_name_from_path(char out[CONFIG_NAME_MAX], const char *path);

void config_init(struct config *cfg);
void config_free(struct config *cfg);

void config_read_init(struct config_ctx *ctx, struct config *cfg, const char *file,
		      config_error_fn on_error, void *arg);
void config_read_line(struct config_ctx *ctx, const char *line);
/* Cross-field checks; true when the whole file was good. */
bool config_read_finish(struct config_ctx *ctx);

/* Feeds text (a whole file) to config_read_line, line by line. */
void config_read_text(struct config_ctx *ctx, const char *text, size_t len);

/* Reads a whole file. Also warns (through on_error with a "warning: " prefix
 * that does not count as an error) when the private key is readable by
 * group or others. */
bool config_load(struct config *cfg, const char *path, config_error_fn on_error, void *arg);
/* Parses a file's text already read, as config_load parses the file (file
 * names it in messages); leaves name and path empty, and warns about no
 * mode: `natctl syncconf` checks the text it then sends, and natagent
 * parses what it received. */
bool config_load_text(struct config *cfg, const char *file, const char *text, size_t len,
		      config_error_fn on_error, void *arg);
/* A file's bytes (up to CONFIG_FILE_MAX) into *text (to free) and *len,
 * with its mode (may be NULL): 0, or -errno (-EFBIG: over the limit). */
int config_read_file(const char *path, char **text, size_t *len, mode_t *mode);

/* The normalised form, as `natagent -n -v` prints it: every key that is set
 * or defaulted, canonical spelling, the private key hidden. */
void config_print(const struct config *cfg, FILE *out);
/* The same with the private key, for `natctl showconf`: a file natagent
 * loads again as it is. */
void config_print_with_key(const struct config *cfg, FILE *out);

const char *config_mode_name(enum config_mode mode);
const char *config_portmap_name(enum portmap_proto p);
const struct config_peer *config_find_peer(const struct config *cfg,
					   const uint8_t key[KEY_LEN]);

#endif
