/* The syncconf request: see syncconf.h. */
#include "agent/syncconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/ctl.h"
#include "agent/log.h"
#include "agent/reload.h"

struct answer {
	struct agent *a;
	struct ctl_out *out;
};

/* A config error: to natctl, which prints it, and to the log. */
static void on_config_error(void *arg, const char *msg)
{
	struct answer *ans = arg;

	log_warn("%s: syncconf: %s", ans->a->cfg->name, msg);
	ctl_put(ans->out, "error", msg);
}

static void on_report(void *arg, enum reload_line kind, const char *line)
{
	struct answer *ans = arg;

	ctl_put(ans->out, kind == RELOAD_CHANGE ? "change" : kind == RELOAD_REFUSED ? "refused" :
		"error", line);
}

/* The file's text out of the body's line= lines; file= names it. NULL
 * (answered) when the body is not one. */
static char *file_text(struct ctl_out *out, const char *body, size_t len, char *file,
		       size_t file_len, size_t *text_len)
{
	char *text = malloc(len + 1), *t = text;
	const char *p = body, *end = body + len;

	if (!text) {
		ctl_printf(out, "error=out of memory\n");
		return NULL;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p);

		if (n >= 5 && !memcmp(p, "line=", 5)) {
			memcpy(t, p + 5, n - 5);
			t += n - 5;
			*t++ = '\n';
		} else if (n >= 5 && !memcmp(p, "file=", 5) && t == text) {
			snprintf(file, file_len, "%.*s", (int)(n - 5), p + 5);
		} else {
			ctl_printf(out, "error=syncconf: '%.*s' is not a file= or line= line\n",
				   (int)(n < 64 ? n : 64), p);
			free(text);
			return NULL;
		}
		p = nl + 1;
	}
	*text_len = (size_t)(t - text);
	return text;
}

void syncconf_request(struct agent *a, const char *body, size_t len, struct ctl_out *out)
{
	struct answer ans = { a, out };
	char file[256] = "(syncconf)";
	struct config next;
	size_t text_len = 0;
	char *text = file_text(out, body, len, file, sizeof(file), &text_len);
	int rc = -1;

	if (!text) {
		ctl_printf(out, "applied=0\n");
		return;
	}
	if (!config_load_text(&next, file, text, text_len, on_config_error, &ans)) {
		log_warn("%s: syncconf: %s has errors; nothing applied", a->cfg->name, file);
	} else {
		rc = reload_apply(a, &next, "syncconf", on_report, &ans);
		config_free(&next);
	}
	free(text);
	ctl_printf(out, "applied=%d\n", rc >= 0);
}
