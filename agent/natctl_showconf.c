/* natctl showconf IFACE: the configuration a running natagent uses, private
 * key included, as a file natagent (or `natctl up`) takes again, like
 * `wg showconf`. The control socket is root's only (0600). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/natctl.h"

int natctl_showconf(int argc, char **argv)
{
	char *buf, *line, *p;
	size_t len;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "Usage: natctl showconf IFACE\n");
		return 1;
	}
	if (natctl_request(argv[1], "showconf\n\n", false, &buf, &len) < 0)
		return 1;
	buf[len - 1] = '\0';
	for (p = buf; (line = strsep(&p, "\n")) != NULL;) {
		if (!strncmp(line, "line=", 5)) {
			puts(line + 5);
		} else if (!strncmp(line, "error=", 6)) {
			fprintf(stderr, "natctl showconf: %s: %s\n", argv[1], line + 6);
			rc = 1;
		}
	}
	free(buf);
	return rc;
}
