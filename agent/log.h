/* Logging for the daemon and tools. Protocol cores never log: they return
 * errors and the caller that knows the context logs them here. */
#ifndef NATAGENT_AGENT_LOG_H
#define NATAGENT_AGENT_LOG_H

enum log_level { LOG_ERR = 3, LOG_WARN = 4, LOG_INFO = 6, LOG_DEBUG = 7 };

/* Messages above this level are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);
/* Prefix each line with "<N>" as sd-daemon(3) describes, so journald keeps
 * the level; set when stderr is the journal (JOURNAL_STREAM). */
void log_set_journal(int on);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
