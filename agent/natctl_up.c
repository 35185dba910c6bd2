/* natctl up FILE / natctl down IFACE: start natagent with a configuration
 * and wait until its peers are connected, as `wg-quick up` does; stop it.
 *
 * up: checks the file with `natagent -n` (its errors, with file and line,
 * are the ones printed), refuses an interface that is already up, starts
 * natagent detached (its log in <run dir>/<iface>.log), then polls the
 * control socket every POLL, printing one progress line, until every peer
 * has a session (direct or relayed), natagent exits (its log's tail is
 * printed), or --timeout passes (natagent keeps trying; natctl says so).
 * The interface name is the file's name without ".conf", as natagent's.
 *
 * down: asks natagent to stop over the control socket (it answers with its
 * pid), then waits for that process to end: by then its TUN device, routes,
 * XDP programs and pins are gone too. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/ctl.h"
#include "agent/natctl.h"

#define POLL_MS      100
#define UP_TIMEOUT_S 30
#define DOWN_WAIT_S  15
#define LOG_TAIL     20

/* natagent next to natctl (the build tree), in ../sbin (an install), else
 * on $PATH. */
static void natagent_path(char *out, size_t len)
{
	char self[PATH_MAX - 32]; /* room for the names tried after it */
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *tries[] = { "natagent", "../sbin/natagent" };

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			for (size_t i = 0; i < sizeof(tries) / sizeof(*tries); i++) {
				snprintf(out, len, "%s/%s", self, tries[i]);
				if (access(out, X_OK) == 0)
					return;
			}
		}
	}
	snprintf(out, len, "natagent");
}

/* Runs `natagent -n -c file`; its messages go to our stderr. */
static int check_config(const char *natagent, const char *file)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp(natagent, "natagent", "-n", "-c", file, (char *)NULL);
		fprintf(stderr, "natctl: cannot run %s: %s\n", natagent, strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static pid_t start(const char *natagent, const char *file, const char *log)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	setsid();
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	execlp(natagent, "natagent", "-c", file, (char *)NULL);
	fprintf(stderr, "natctl: cannot run %s: %s\n", natagent, strerror(errno));
	_exit(127);
}

static void print_tail(const char *log)
{
	char *lines[LOG_TAIL] = { 0 }, buf[1024];
	unsigned n = 0;
	FILE *f = fopen(log, "r");

	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		free(lines[n % LOG_TAIL]);
		lines[n % LOG_TAIL] = strdup(buf);
		n++;
	}
	fclose(f);
	for (unsigned i = n > LOG_TAIL ? n - LOG_TAIL : 0; i < n; i++)
		fprintf(stderr, "  %s", lines[i % LOG_TAIL] ? lines[i % LOG_TAIL] : "\n");
	for (unsigned i = 0; i < LOG_TAIL; i++)
		free(lines[i]);
}

struct peers {
	unsigned total, direct, relayed;
};

/* Counts the peers and their paths in a show reply; false if it is none. */
static bool count_peers(const char *iface, struct peers *p)
{
	char *buf, *line, *save = NULL;
	size_t len;

	if (natctl_request(iface, "show\n\n", true, &buf, &len) < 0)
		return false;
	*p = (struct peers){ 0 };
	buf[len - 1] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "peer=", 5))
			p->total++;
		else if (!strcmp(line, "path=direct"))
			p->direct++;
		else if (!strcmp(line, "path=relay"))
			p->relayed++;
	}
	free(buf);
	return true;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int natctl_up(int argc, char **argv)
{
	static const struct option opts[] = { { "timeout", required_argument, NULL, 't' },
					      { NULL, 0, NULL, 0 } };
	char iface[CONFIG_NAME_MAX], natagent[PATH_MAX], log[PATH_MAX], line[160] = "", last[160] = "";
	long timeout = UP_TIMEOUT_S;
	bool tty = isatty(STDOUT_FILENO), answered = false;
	struct peers p = { 0 };
	const char *file;
	pid_t pid;
	int c, status;

	while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
		char *end;

		if (c != 't')
			goto usage;
		timeout = strtol(optarg, &end, 10);
		if (*end || timeout < 1 || timeout > 3600) {
			fprintf(stderr, "natctl up: --timeout takes 1..3600 seconds\n");
			return 1;
		}
	}
	if (optind != argc - 1)
		goto usage;
	file = argv[optind];
	if (!config_name_from_path(iface, file)) {
		fprintf(stderr, "natctl up: cannot name an interface after '%s'\n", file);
		return 1;
	}
	natagent_path(natagent, sizeof(natagent));
	if (check_config(natagent, file) < 0) {
		fprintf(stderr, "natctl up: %s: not started\n", file);
		return 1;
	}
	if (count_peers(iface, &p)) {
		fprintf(stderr, "natctl up: %s is already up (natctl show %s)\n", iface, iface);
		return 1;
	}
	if (mkdir(ctl_run_dir(), 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "natctl up: cannot create %s: %s\n", ctl_run_dir(), strerror(errno));
		return 1;
	}
	snprintf(log, sizeof(log), "%s/%s.log", ctl_run_dir(), iface);
	pid = start(natagent, file, log);
	if (pid < 0) {
		fprintf(stderr, "natctl up: cannot start natagent: %s\n", strerror(errno));
		return 1;
	}
	printf("%s: natagent started (pid %d, log %s)\n", iface, (int)pid, log);
	fflush(stdout);
	for (long waited = 0; waited < timeout * 1000; waited += POLL_MS) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			if (tty && last[0])
				printf("\n");
			fprintf(stderr, "natctl up: natagent exited (%s %d); the end of its log:\n",
				WIFEXITED(status) ? "status" : "signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			print_tail(log);
			return 1;
		}
		answered = count_peers(iface, &p);
		if (answered)
			snprintf(line, sizeof(line), "%s: peers connected %u/%u (%u direct, %u relayed)",
				 iface, p.direct + p.relayed, p.total, p.direct, p.relayed);
		else
			snprintf(line, sizeof(line), "%s: starting", iface);
		if (strcmp(line, last)) {
			printf(tty ? "\r%-70s" : "%s\n", line);
			fflush(stdout);
			memcpy(last, line, sizeof(line));
		}
		if (answered && p.direct + p.relayed == p.total) {
			printf("%s%s: up\n", tty ? "\n" : "", iface);
			return 0;
		}
		sleep_ms(POLL_MS);
	}
	printf("%s", tty ? "\n" : "");
	if (!answered) {
		fprintf(stderr, "natctl up: %s: natagent (pid %d) did not answer within %ld s; "
			"see %s\n", iface, (int)pid, timeout, log);
		return 1;
	}
	printf("%s: up, but %u of %u peers are not connected yet; natagent keeps trying "
	       "(natctl show %s)\n", iface, p.total - p.direct - p.relayed, p.total, iface);
	return 0;
usage:
	fprintf(stderr, "Usage: natctl up [--timeout SECONDS] FILE\n");
	return 1;
}

int natctl_down(int argc, char **argv)
{
	char iface[CONFIG_NAME_MAX], path[sizeof(((struct sockaddr_un *)0)->sun_path)], *buf, *pid_at;
	size_t len;
	long pid = 0;

	if (argc != 2) {
		fprintf(stderr, "Usage: natctl down IFACE | FILE\n");
		return 1;
	}
	if (!config_name_from_path(iface, argv[1]) ||
	    ctl_socket_path(path, sizeof(path), iface) < 0) {
		fprintf(stderr, "natctl down: '%s' names no interface\n", argv[1]);
		return 1;
	}
	if (natctl_request(iface, "stop\n\n", false, &buf, &len) < 0)
		return 1;
	buf[len - 1] = '\0';
	pid_at = strstr(buf, "\npid=");
	if (pid_at)
		pid = strtol(pid_at + 5, NULL, 10);
	if (!strstr(buf, "stopping=1") || pid <= 0) {
		fprintf(stderr, "natctl down: %s: natagent did not agree to stop: %s", iface, buf);
		free(buf);
		return 1;
	}
	free(buf);
	for (int i = 0; i < DOWN_WAIT_S * 1000 / POLL_MS; i++) {
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
			printf("%s: down\n", iface);
			return 0;
		}
		sleep_ms(POLL_MS);
	}
	fprintf(stderr, "natctl down: %s: natagent (pid %ld) was asked to stop and is still "
		"running after %d s\n", iface, pid, DOWN_WAIT_S);
	return 1;
}
