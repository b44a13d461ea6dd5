/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Logging. Library code (imager/lib) logs at debug level only; the CLI logs
 * errors once, where the decision is made. Messages go to stderr, data to
 * stdout.
 *
 * log_*_errno(r, fmt, ...) sets errno = -r so "%m" prints the error text and
 * returns r (always negative), so "return log_error_errno(r, ...);" works.
 */

#include <errno.h>
#include <stdbool.h>
#include "cleanup.h"

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	_LOG_LEVEL_MAX,
};

void log_set_max_level(enum log_level level);
enum log_level log_get_max_level(void);
/* The text of the last error-level message (for reports), or NULL. */
const char *log_last_error(void);
/* Reads $IMAGER_LOG_LEVEL (error|warning|notice|info|debug) if set. */
void log_parse_environment(void);

int log_internal(enum log_level level, int error, const char *file, int line, const char *fmt,
		 ...) _printf_(5, 6);

#define log_full_errno(level, error, ...) log_internal(level, error, __FILE__, __LINE__, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_LEVEL_ERROR, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_LEVEL_WARNING, e, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_LEVEL_DEBUG, e, __VA_ARGS__)
#define log_error(...) (void) log_full_errno(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning(...) (void) log_full_errno(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_notice(...) (void) log_full_errno(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_info(...) (void) log_full_errno(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) (void) log_full_errno(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_oom() log_error_errno(-ENOMEM, "Out of memory.")
