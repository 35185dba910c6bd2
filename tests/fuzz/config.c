/* libFuzzer harness of the config parser, as wireguard-tools' fuzz/config.c:
 * the input is fed line by line to the streaming parser, then finished. A
 * file that parses is also diffed against itself, as a reload of an
 * unchanged file does: no difference may come out. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/confdiff.h"
#include "agent/config.h"

static void ignore(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static void no_line(void *arg, bool refused, const char *line)
{
	(void)arg;
	(void)refused;
	(void)line;
	abort(); /* a file differs from itself */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct config_ctx ctx;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	config_init(&cfg);
	config_read_init(&ctx, &cfg, "fuzz.conf", ignore, NULL);
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		config_read_line(&ctx, line);
	if (config_read_finish(&ctx)) {
		FILE *null = fopen("/dev/null", "w");
		if (null) {
			config_print(&cfg, null);
			fclose(null);
		}
		struct confdiff d;
		if (confdiff_compute(&d, &cfg, &cfg) == 0) {
			if (d.n_refused || confdiff_peers_differ(&d))
				abort();
			confdiff_describe(&d, no_line, NULL);
			confdiff_free(&d);
		}
	}
	config_free(&cfg);
	free(text);
	return 0;
}
