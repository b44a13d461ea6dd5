/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Capture: take a disk apart into a manifest_disk (layout, per-partition
 * method, data extents) and chunks in a store.
 */

#include <stdbool.h>
#include <stdint.h>

#include "imager/manifest.h"
#include "imager/progress.h"
#include "imager/store.h"

#define GPT_BIOS_BOOT_TYPE "21686148-6449-6E6F-744E-656564454649"
#define GPT_ESP_TYPE "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
/* swap keeps its signature, UUID and label in the first page (x86: 4 KiB) */
#define SWAP_HEADER_BYTES 4096u
/* granularity of zero skipping in gaps */
#define GAP_BLOCK_BYTES 4096u

struct capture_stats {
	uint64_t used_bytes;        /* bytes in data extents */
	uint64_t chunks;            /* non-empty chunks referenced */
	uint64_t zero_chunks;       /* chunk positions that were all zero (not stored) */
	uint64_t new_chunks;        /* chunks written to the store by this capture */
	uint64_t new_stored_bytes;  /* their size on disk */
	uint64_t stored_bytes;      /* size on disk of all chunks referenced */
	double seconds;
};

/*
 * Reads the partition table and every partition's contents of the disk open
 * on @fd and fills @ret (layout, partitions, boot code, extents; no chunks).
 * An ext file system that is not clean gives -EUCLEAN unless @allow_dirty.
 * On a refusal, *ret_reason (if non-NULL) names the partition and why.
 */
int capture_analyse_disk(int fd, uint64_t size_bytes, uint32_t logical_sector_bytes,
			 uint32_t physical_sector_bytes, bool allow_dirty,
			 struct manifest_disk *ret, char **ret_reason);

/*
 * Reads every chunk position that holds data, zeroing holes, and stores the
 * non-zero ones in @s using all CPUs; fills ret->chunks. Adds to @stats.
 */
int capture_store_disk(int fd, struct manifest_disk *md, struct store *s, unsigned disk_index,
		       progress_fn progress, void *userdata, struct capture_stats *stats);
