/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imager/manifest.h"
#include "output.h"

struct trust_policy;

#define FLASH_TARGETS_MAX 16

struct flash_request {
	const char *store_arg;         /* --store, or NULL for $IMAGER_STORE / the default */
	enum manifest_kind kind;       /* an image, or a snapshot (snapshots restore) */
	const char *name;
	char **targets;                /* block devices or image files, in the image's disk order */
	size_t n_targets;
	bool yes, grow, verify, dry_run, discard;
	uint64_t size_bytes;           /* size of file targets; 0: the image disk's */
	enum progress_mode progress;
	const char *report_path;       /* NULL: no report */
	const struct trust_policy *trust; /* NULL or empty: no signature check (trust.h) */
	const char *action;            /* for the report and the summary: "flash", "restore" */
};

/*
 * The flash run shared by `flash` and `snapshots restore`: loads the image
 * (applying the deprecation policy) or snapshot, holds the store's shared
 * lock so that gc cannot remove its chunks meanwhile, runs every check for
 * every target before the first write, then writes and verifies each disk.
 * Logs its errors; returns 0, an exit status, or -errno.
 */
int flash_run(const struct flash_request *req);
