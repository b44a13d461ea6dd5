/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Resolving images and targets for flash and verify, with every refusal check before a write. */

#include <stdbool.h>
#include <stdint.h>

#include "imager/blkdev.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "lifecycle.h"

/*
 * Opens the store and loads image or snapshot @name with clear errors. For
 * an image, applies the deprecation policy for @use (lifecycle.h): a
 * DEPRECATED image warns, an OBSOLETE or DELETED one refuses a new use
 * (-ECANCELED, exit 4).
 */
int cli_load_manifest(const char *store_arg, enum manifest_kind kind, const char *name,
		      enum image_use use, struct store **ret_store, struct manifest **ret);
/* cli_load_manifest() of an image for a new use (flash, export, create --source-image). */
int cli_load_image(const char *store_arg, const char *name, struct store **ret_store,
		   struct manifest **ret);

struct target {
	struct blkdev *dev;
	int fd;
	uint64_t size_bytes;
	uint32_t logical_sector_bytes;
	bool is_file;
	bool file_created;  /* a file that did not exist or was empty */
};

/*
 * Looks at a target without writing: must exist (block device) or be a
 * regular file (created later if missing); refuses the system disk and a
 * disk in use. For files, @file_size_bytes (0: the image disk's size, or
 * the file's own size if larger) and the image's sector size apply.
 * Without @for_write, only existence is checked.
 */
int cli_target_inspect(const char *path, const struct manifest_disk *md, uint64_t file_size_bytes,
		       bool for_write, struct target *ret);
/* Opens the target for writing (O_EXCL for block devices); files are truncated to size, sparse. */
int cli_target_open_write(struct target *t);
int cli_target_open_read(struct target *t);
void cli_target_done(struct target *t);
/* "/dev/sdb (Samsung SSD 870, serial S5XX, 500.1 GiB)" */
char *cli_target_describe(const struct target *t);
