/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The command-line side of the image lifecycle: the clock (with the
 * $IMAGER_NOW testing knob), the deprecation policy applied whenever an
 * image is used, family resolution, and taking the store lock with a word
 * to the user when it has to wait.
 */

#include <stdbool.h>
#include <stdint.h>

#include "imager/gc.h"
#include "imager/lifecycle.h"
#include "imager/manifest.h"
#include "imager/store.h"

/*
 * "Now" for creation times and deprecation schedules: $IMAGER_NOW if set
 * (Unix seconds, "@SECONDS" or ISO 8601 UTC such as 2026-12-01T00:00:00Z;
 * a testing knob, docs/CLI.md), else the clock. Logs a bad value.
 */
int cli_now(int64_t *ret);

enum image_use {
	IMAGE_USE_NEW,       /* flash, export, create --source-image: the policy applies */
	IMAGE_USE_EXISTING,  /* verify: checking disks made from it; warns, never refuses */
	IMAGE_USE_INSPECT,   /* describe, deprecate, delete: silent */
};

/*
 * Applies the deprecation policy to using image @name of @s:
 * DEPRECATED warns "image 'X' is deprecated; use 'Y' instead." and goes on;
 * OBSOLETE and DELETED refuse a new use (-ECANCELED, exit 4) with an error
 * naming the replacement. A damaged deprecation file refuses a new use too
 * (the image may be obsolete). Returns the effective state or -errno (logged).
 */
int cli_image_check_use(struct store *s, const char *name, enum image_use use);

/*
 * Resolves @family to the newest ACTIVE image of that family and says which
 * on stderr ("Using image 'X', the newest active image of family 'F'.").
 * -ENOENT (logged) if there is none.
 */
int cli_resolve_family(struct store *s, const char *family, char **ret_name);

/*
 * Takes the store lock (gc.h). If another process holds a conflicting lock:
 * with @wait, says so and waits; without, fails with -EBUSY and a message.
 * For a SHARED lock on a store that cannot hold a lock file (read-only),
 * goes on without one (*ret_fd = -EBADF).
 */
int cli_store_lock(struct store *s, enum store_lock_mode mode, bool wait, int *ret_fd);
