/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Logging. lib/ logs at debug level only; the program that handles an error logs it once.
 * Under systemd (JOURNAL_STREAM set to our stderr) records go to the journal with structured
 * fields; otherwise to stderr. Never pass secrets to these functions. */

#include <errno.h>
#include <stdlib.h>
#include <syslog.h>

#include "macro.h"

void log_set_max_level(int level); /* LOG_ERR … LOG_DEBUG */
int log_get_max_level(void);
void log_set_program(const char *name);
/* Re-read TRUSTPC_LOG_LEVEL (debug|info|notice|warning|err) and JOURNAL_STREAM. */
void log_parse_environment(void);

/* Logs and returns -abs(error) (or 0 when error is 0). %m prints strerror(error). */
int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
	_printf_(6, 7);

#define log_full_errno(level, error, ...)                                                            \
	({                                                                                           \
		int _l = (level), _e = (error);                                                      \
		(log_get_max_level() >= _l) ? log_internal(_l, _e, __FILE__, __LINE__, __func__,       \
							  __VA_ARGS__)                               \
					    : -abs(_e);                                                \
	})

#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
