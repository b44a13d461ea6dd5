/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static enum log_level max_level = LOG_LEVEL_INFO;
static char last_error[512];

const char *log_last_error(void)
{
	return last_error[0] ? last_error : NULL;
}

static const char *const level_name[_LOG_LEVEL_MAX] = {
	[LOG_LEVEL_ERROR] = "error",     [LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_NOTICE] = "notice",   [LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void log_set_max_level(enum log_level level)
{
	max_level = level;
}

enum log_level log_get_max_level(void)
{
	return max_level;
}

void log_parse_environment(void)
{
	const char *e = getenv("IMAGER_LOG_LEVEL");

	if (!e)
		return;
	for (int i = 0; i < _LOG_LEVEL_MAX; i++)
		if (strcmp(e, level_name[i]) == 0)
			max_level = i;
}

int log_internal(enum log_level level, int error, const char *file, int line, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (error < 0)
		error = -error;
	if (level == LOG_LEVEL_ERROR) {
		errno = error;
		va_start(ap, fmt);
		vsnprintf(last_error, sizeof(last_error), fmt, ap);
		va_end(ap);
	}
	if (level > max_level) {
		errno = saved;
		return -error;
	}
	errno = error;		/* makes %m print the error we were handed */
	if (max_level >= LOG_LEVEL_DEBUG)
		fprintf(stderr, "%s:%d: ", file, line);
	if (level <= LOG_LEVEL_WARNING)
		fputs(level == LOG_LEVEL_ERROR ? "imager: " : "imager: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	errno = saved;
	return -error;
}
