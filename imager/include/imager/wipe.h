/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdint.h>

#include "imager/manifest.h"

/*
 * Wipes (zeroes the magic of) every file-system, RAID or crypto signature
 * libblkid finds in [offset, offset + size) of @fd whose magic bytes are not
 * covered by @keep (sorted extents that are about to be written anyway), so a
 * stale superblock cannot confuse the next boot. Returns the number wiped or
 * -errno.
 */
int wipe_stale_signatures(int fd, uint64_t offset_bytes, uint64_t size_bytes,
			  const struct manifest_extent *keep, size_t n_keep);

/* True if [offset, offset + size) lies entirely inside the sorted extents. */
bool extents_cover(const struct manifest_extent *e, size_t n, uint64_t offset_bytes,
		   uint64_t size_bytes);
