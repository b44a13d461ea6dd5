/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Flash: put a manifest_disk back onto a target (block device or file), and
 * verify a target against it.
 *
 * Order of writes, chosen so that an interrupted flash leaves a disk that
 * neither boots nor shows a valid partition table (before step 1, the caller
 * runs flash_check() and, for an encrypted store, flash_authenticate() on
 * every disk of the image, so a missing, damaged or altered chunk is refused
 * with nothing written):
 *   1. sector 0, the primary GPT area and the old backup GPT are zeroed; old
 *      file-system and RAID signatures the new layout will not overwrite are
 *      wiped;
 *   2. data extents are written at their offsets, each chunk verified against
 *      its ID just before (zero chunks are zeroed, or skipped on a fresh file);
 *   3. the partition table but sector 0: the backup GPT at the true end
 *      first, then the primary; then the post-MBR gap (everything before
 *      the first partition);
 *   4. sector 0 (table signature and boot code) last;
 *   5. fsync, the kernel re-reads the table, read-back verification, and
 *      --grow's resize2fs (after verification: it changes the data).
 */

#include <stdbool.h>
#include <stdint.h>

#include "imager/manifest.h"
#include "imager/progress.h"
#include "imager/store.h"

struct flash_options {
	bool grow;            /* extend the last partition (and its ext fs) to the end */
	bool verify;          /* read back every written extent with O_DIRECT */
	bool discard;         /* BLKDISCARD the whole target before writing */
	bool fresh_file;      /* the target is a file just truncated: zeros need no writing */
	unsigned disk_index;
	progress_fn progress;
	void *userdata;
};

struct flash_stats {
	uint64_t written_bytes;   /* data bytes written (extents) */
	uint64_t zeroed_bytes;    /* extent bytes zeroed (all-zero chunks) */
	uint64_t verified_bytes;
	double write_seconds, verify_seconds;
};

/* The smallest target that holds the image: partition and extent ends, plus the backup GPT. */
uint64_t flash_required_bytes(const struct manifest_disk *md);

/*
 * Every check that can refuse, with nothing written: sector size, size,
 * every chunk present. -EXDEV (sector size), -ENOSPC (too small), -ENODATA
 * (a chunk is missing), with a one-line *ret_reason.
 */
int flash_check(const struct manifest_disk *md, struct store *s, uint64_t target_size_bytes,
		uint32_t target_logical_sector_bytes, bool grow, char **ret_reason);

/*
 * In an encrypted store, reads every chunk of @md and checks its
 * authentication tag (store_authenticate_chunk()), in parallel, so that a
 * damaged or altered chunk is refused before anything reaches a target
 * (progress phase "authenticate"). The chunk files stay in the page cache
 * for the write that follows when memory allows. A no-op in an unencrypted
 * store: its chunks are hash-checked one by one just before each is written
 * (and the partition table comes last). -EBADMSG, -ENOENT or -EIO with a
 * one-line *ret_reason naming the chunk.
 */
int flash_authenticate(const struct manifest_disk *md, struct store *s,
		       const struct flash_options *o, char **ret_reason);

/* Writes @md onto the target open on @fd (O_RDWR, exclusive). See the order above. */
int flash_disk(int fd, uint64_t target_size_bytes, const struct manifest_disk *md,
	       struct store *s, const struct flash_options *o, struct flash_stats *stats,
	       char **ret_reason);

/*
 * Compares the target with @md without writing: partition table, boot code,
 * and every data extent read back (O_DIRECT where aligned) and hashed per
 * chunk. -EBADMSG with *ret_reason naming the first differing byte offset.
 */
int verify_disk(int fd, uint64_t target_size_bytes, const struct manifest_disk *md,
		struct store *s, const struct flash_options *o, struct flash_stats *stats,
		char **ret_reason);

/* The partition table @md would get on a target of @target_size_bytes (grown if @grow). */
struct ptable;
int flash_target_ptable(const struct manifest_disk *md, uint64_t target_size_bytes, bool grow,
			struct ptable **ret);
