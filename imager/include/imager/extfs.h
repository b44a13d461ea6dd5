/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * ext2/3/4 through libext2fs, opened on the whole disk at a byte offset (no
 * partition nodes). The only module that sees errcode_t (C6).
 */

#include <stdbool.h>
#include <stdint.h>

struct extfs;

struct extfs_info {
	char type[8];             /* "ext2", "ext3" or "ext4" */
	uint64_t block_bytes;
	uint64_t size_bytes;      /* blocks_count * block size */
	uint64_t free_bytes;      /* from the block bitmaps (not the superblock summary) */
	uint64_t used_bytes;      /* size_bytes - free_bytes */
	bool clean;               /* s_state has VALID set and no ERROR, no journal recovery needed */
	char uuid[37];
	char label[17];
	uint64_t min_size_bytes;  /* smallest size resize2fs -M could shrink it to (its estimate, as resize2fs -P) */
};

/*
 * Opens the file system at @offset_bytes of the disk open on @fd, read-only.
 * @size_bytes bounds it (the partition size). -EMEDIUMTYPE if there is no ext
 * file system, -EBADMSG if its metadata is corrupt, -errno otherwise.
 */
int extfs_open(int fd, uint64_t offset_bytes, uint64_t size_bytes, struct extfs **ret);
int extfs_get_info(struct extfs *fs, struct extfs_info *ret);

/*
 * Calls @cb for each maximal run of used blocks (per the block bitmaps, so
 * superblocks, group descriptors, bitmaps, inode tables and the journal are
 * included), in increasing order, with offsets relative to the file system's
 * start. A negative return from @cb stops the walk and is returned.
 */
int extfs_for_each_used_extent(struct extfs *fs,
			       int (*cb)(uint64_t offset_bytes, uint64_t size_bytes, void *userdata),
			       void *userdata);
struct extfs *extfs_free(struct extfs *fs);
