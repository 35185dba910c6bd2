/* natctl syncconf IFACE FILE: applies FILE's peers to the running natagent
 * of IFACE without touching the peers that did not change, as `wg syncconf`
 * does; the same as SIGHUP with natagent's own file.
 *
 * natctl reads the file once and checks it with natagent's parser: a file
 * with errors is reported (file, line, what was expected) and never sent.
 * Then it sends those same bytes in the request (agent/syncconf.h), so the
 * file checked is the file applied, and prints what the daemon says it
 * changed, one line each ("peer <key> added"), or "no changes". Exits 1
 * when anything was refused or failed: a key that cannot change while
 * natagent runs (nothing is applied then), an error applying. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/config.h"
#include "agent/ctl.h"
#include "agent/natctl.h"

/* "syncconf\nfile=FILE\nline=...\n...\n\n" */
static char *build_request(const char *file, const char *text, size_t len, size_t *out_len)
{
	size_t lines = 1, cap, n = 0;
	char *req;

	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	cap = strlen(file) + len + lines * 6 + 32;
	req = malloc(cap);
	if (!req)
		return NULL;
	n += (size_t)snprintf(req, cap, "syncconf\nfile=%s\n", file);
	while (len) {
		const char *nl = memchr(text, '\n', len);
		size_t l = nl ? (size_t)(nl - text) : len;

		/* A CR before the '\n' goes as it is: the daemon takes it off,
		 * as the parser ignores it anyway. */
		memcpy(req + n, "line=", 5);
		memcpy(req + n + 5, text, l);
		n += 5 + l;
		req[n++] = '\n';
		text += nl ? l + 1 : l;
		len -= nl ? l + 1 : l;
	}
	req[n++] = '\n';
	req[n] = '\0';
	*out_len = n;
	return req;
}

/* Prints the reply; returns the exit status. */
static int print_reply(const char *iface, char *buf)
{
	bool applied = false, failed = false;
	unsigned changes = 0;
	char *line, *p;

	for (p = buf; (line = strsep(&p, "\n")) != NULL;) {
		if (!strncmp(line, "change=", 7)) {
			puts(line + 7);
			changes++;
		} else if (!strncmp(line, "refused=", 8) || !strncmp(line, "error=", 6)) {
			fprintf(stderr, "natctl syncconf: %s: %s\n", iface, strchr(line, '=') + 1);
			failed = true;
		} else if (!strcmp(line, "applied=1")) {
			applied = true;
		}
	}
	if (applied && !changes && !failed)
		printf("%s: no changes\n", iface);
	return applied && !failed ? 0 : 1;
}

int natctl_syncconf(int argc, char **argv)
{
	const char *iface, *file;
	char *text = NULL, *req, *reply;
	size_t len = 0, req_len, reply_len;
	struct config cfg;
	mode_t mode = 0;
	int err, rc;

	if (argc != 3) {
		fprintf(stderr, "Usage: natctl syncconf IFACE FILE\n");
		return 1;
	}
	iface = argv[1];
	file = argv[2];
	err = config_read_file(file, &text, &len, &mode);
	if (err) {
		fprintf(stderr, "%s: cannot read: %s\n", file, strerror(-err));
		return 1;
	}
	if (mode & 077)
		fprintf(stderr, "%s: warning: readable by group or others (mode %04o) but holds a "
			"private key; chmod 600 it\n", file, (unsigned)(mode & 07777));
	if (!config_load_text(&cfg, file, text, len, config_error_to_stderr, NULL)) {
		fprintf(stderr, "natctl syncconf: %s: not applied\n", file);
		free(text);
		return 1;
	}
	config_free(&cfg);
	req = build_request(file, text, len, &req_len);
	free(text);
	if (!req) {
		fprintf(stderr, "natctl syncconf: out of memory\n");
		return 1;
	}
	if (req_len > CTL_BODY_MAX) {
		fprintf(stderr, "natctl syncconf: %s: larger than natagent takes (%u MiB)\n", file,
			CTL_BODY_MAX >> 20);
		free(req);
		return 1;
	}
	err = natctl_request(iface, req, false, &reply, &reply_len);
	free(req);
	if (err < 0)
		return 1;
	reply[reply_len - 1] = '\0';
	rc = print_reply(iface, reply);
	free(reply);
	return rc;
}
