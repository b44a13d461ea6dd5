/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "imager/progress.h"

enum progress_mode {
	PROGRESS_AUTO,   /* a bar on a TTY, nothing otherwise */
	PROGRESS_TTY,
	PROGRESS_JSON,   /* one JSON object per line on stdout */
	PROGRESS_NONE,
	_PROGRESS_MODE_MAX,
	_PROGRESS_MODE_INVALID = -22,
};
enum progress_mode progress_mode_from_string(const char *s);

/* Renders progress reports; userdata is a pointer to an enum progress_mode. */
void cli_progress(const struct progress *p, void *userdata);
/* Ends a TTY progress line. */
void cli_progress_end(enum progress_mode mode);

/*
 * Asks on the terminal to type "yes" to overwrite @what. Returns 1 if
 * confirmed, 0 if not or if stdin is not a terminal.
 */
int cli_confirm(const char *what);

/* The store path from --store, $IMAGER_STORE, or the default. */
const char *cli_store_path(const char *arg);
#define IMAGER_STORE_DEFAULT "/var/lib/imager/store"
