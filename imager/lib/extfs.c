/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ext2/3/4 through libext2fs. The file system is opened through the unix I/O
 * manager on /proc/self/fd/N with "offset=N", so it works on a partition of
 * a whole-disk fd or a disk-image file without partition nodes. This is the
 * only file that sees errcode_t (STYLE C6): ext2_err() converts.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "imager/extfs.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"

#define EXT_SUPERBLOCK_OFFSET 1024 /* fixed, whatever the block size */
#define EXT_SUPERBLOCK_BYTES 1024
#define EXT_MAGIC_OFFSET 56

/* Feature bits that ext3 (Linux 2.6 jbd) understood; anything beyond makes it ext4.
 * Same rule as libblkid's ext3/ext4 split. */
#define EXT3_INCOMPAT_KNOWN                                                                        \
	(EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_RECOVER |                          \
	 EXT2_FEATURE_INCOMPAT_META_BG)
#define EXT3_RO_COMPAT_KNOWN                                                                       \
	(EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER | EXT2_FEATURE_RO_COMPAT_LARGE_FILE |                 \
	 0x0004 /* RO_COMPAT_BTREE_DIR */)

struct extfs {
	ext2_filsys fs;
	uint64_t size_bytes; /* the bound given to extfs_open() */
};

static int ext2_err(errcode_t e)
{
	if (e == 0)
		return 0;
	if (e > 0 && e < 4096)
		return (int) -e; /* unix_io passes raw errno through */
	switch (e) {
	case EXT2_ET_NO_MEMORY:
		return -ENOMEM;
	case EXT2_ET_BAD_MAGIC:
		return -EMEDIUMTYPE;
	case EXT2_ET_SHORT_READ:
	case EXT2_ET_LLSEEK_FAILED:
		return -EIO;
	case EXT2_ET_UNSUPP_FEATURE:
	case EXT2_ET_RO_UNSUPP_FEATURE:
		return -EOPNOTSUPP;
	default:
		/* everything else in the ext2 table describes bad metadata:
		 * "Corrupt group descriptor", "Superblock checksum does not
		 * match superblock", ... */
		return -EBADMSG;
	}
}

static inline void ext2fs_closep(ext2_filsys *fs)
{
	if (*fs)
		(void) ext2fs_close_free(fs);
}

struct extfs *extfs_free(struct extfs *x)
{
	if (!x)
		return NULL;
	ext2fs_closep(&x->fs);
	free(x);
	return NULL;
}
DEFINE_CLEANUP(struct extfs *, extfs_free)

int extfs_open(int fd, uint64_t offset_bytes, uint64_t size_bytes, struct extfs **ret)
{
	_cleanup_(extfs_freep) struct extfs *x = NULL;
	ext2_filsys fs = NULL;
	uint8_t sb[EXT_SUPERBLOCK_BYTES];
	char name[64], opts[64];
	uint64_t blocks, bs;
	errcode_t e;
	int r;

	if (fd < 0 || !ret)
		return -EINVAL;
	if (offset_bytes > INT64_MAX || size_bytes > INT64_MAX - offset_bytes)
		return -EOVERFLOW;
	if (size_bytes < EXT_SUPERBLOCK_OFFSET + EXT_SUPERBLOCK_BYTES)
		return -EMEDIUMTYPE;

	/* check the magic first: libext2fs would probe backup superblocks */
	r = pread_all(fd, sb, sizeof(sb), offset_bytes + EXT_SUPERBLOCK_OFFSET);
	if (r < 0)
		return r;
	if (sb[EXT_MAGIC_OFFSET] != (EXT2_SUPER_MAGIC & 0xFF) ||
	    sb[EXT_MAGIC_OFFSET + 1] != (EXT2_SUPER_MAGIC >> 8))
		return -EMEDIUMTYPE;

	snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
	snprintf(opts, sizeof(opts), "offset=%" PRIu64, offset_bytes);
	e = ext2fs_open2(name, opts, EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0, unix_io_manager,
			 &fs);
	if (e)
		return log_debug_errno(ext2_err(e), "ext2fs_open2() at %" PRIu64 " failed: %s",
				       offset_bytes, error_message(e));
	x = calloc(1, sizeof(*x));
	if (!x) {
		ext2fs_closep(&fs);
		return -ENOMEM;
	}
	x->fs = fs;
	x->size_bytes = size_bytes;

	bs = fs->blocksize;
	blocks = ext2fs_blocks_count(fs->super);
	if (blocks == 0 || blocks > size_bytes / bs)
		return log_debug_errno(-EBADMSG,
				       "ext file system of %" PRIu64 " blocks of %" PRIu64
				       " bytes does not fit in %" PRIu64 " bytes.",
				       blocks, bs, size_bytes);

	/* group descriptors must point inside the file system before we
	 * read bitmaps through them */
	e = ext2fs_check_desc(fs);
	if (e)
		return log_debug_errno(ext2_err(e), "ext group descriptors are bad: %s",
				       error_message(e));
	e = ext2fs_read_block_bitmap(fs);
	if (e)
		return log_debug_errno(ext2_err(e), "Cannot read ext block bitmaps: %s",
				       error_message(e));
	*ret = TAKE_PTR(x);
	return 0;
}

/* Runs of set bits, [start, end) in blocks; cb() returns < 0 to stop. */
static int walk_used(ext2_filsys fs, int (*cb)(blk64_t start, blk64_t end, void *userdata),
		     void *userdata)
{
	blk64_t first = fs->super->s_first_data_block;
	blk64_t last = ext2fs_blocks_count(fs->super) - 1;
	blk64_t pos = first, s, z;
	errcode_t e;
	int r;

	if (last > ext2fs_get_block_bitmap_end2(fs->block_map))
		return -EBADMSG;
	while (pos <= last) {
		e = ext2fs_find_first_set_block_bitmap2(fs->block_map, pos, last, &s);
		if (e == ENOENT)
			break;
		if (e)
			return ext2_err(e);
		e = ext2fs_find_first_zero_block_bitmap2(fs->block_map, s, last, &z);
		if (e == ENOENT)
			z = last + 1;
		else if (e)
			return ext2_err(e);
		if (z <= s)
			return -EBADMSG; /* would not advance */
		r = cb(s, z, userdata);
		if (r < 0)
			return r;
		pos = z;
	}
	return 0;
}

static int count_cb(blk64_t start, blk64_t end, void *userdata)
{
	*(uint64_t *) userdata += end - start;
	return 0;
}

/* Blocks of per-group metadata: superblock and descriptor copies, bitmaps, inode table. */
static uint64_t group_overhead_blocks(ext2_filsys fs, dgrp_t g)
{
	blk_t used = 0;

	(void) ext2fs_super_and_bgd_loc2(fs, g, NULL, NULL, NULL, &used);
	return (uint64_t) used + 2 + fs->inode_blocks_per_group;
}

/*
 * Smallest size resize2fs -M could reach, estimated: enough block groups for
 * the used inodes (inode tables never shrink per group) and for the used
 * data blocks (everything in use except per-group metadata) next to each
 * group's own metadata; the last group is cut right after its data. Like
 * resize2fs, room for the rest of a flex group's metadata and 0.2% for
 * extent tree growth are added. resize2fs' calculate_minimum_resize_size()
 * is more conservative still (it often asks for more with flex_bg), so
 * treat this as an estimate, not a promise: `resize2fs -P` has the last word.
 */
static uint64_t min_size_blocks(ext2_filsys fs, uint64_t used_blocks)
{
	uint64_t bpg = fs->super->s_blocks_per_group, ipg = fs->super->s_inodes_per_group;
	uint64_t used_inodes, meta = 0, data, avail = 0, groups, total;
	dgrp_t n = fs->group_desc_count;

	if (bpg == 0 || ipg == 0 || n == 0)
		return ext2fs_blocks_count(fs->super);
	used_inodes = fs->super->s_inodes_count > fs->super->s_free_inodes_count
			      ? fs->super->s_inodes_count - fs->super->s_free_inodes_count
			      : 0;
	for (dgrp_t g = 0; g < n; g++)
		meta += group_overhead_blocks(fs, g);
	used_blocks -= MIN(used_blocks, (uint64_t) fs->super->s_first_data_block);
	data = used_blocks > meta ? used_blocks - meta : 0;

	groups = MAX(DIV_ROUND_UP(used_inodes, ipg), (uint64_t) 1);
	groups = MIN(groups, (uint64_t) n);
	for (uint64_t g = 0; g + 1 < groups; g++)
		avail += bpg - MIN(bpg, group_overhead_blocks(fs, (dgrp_t) g));
	for (;;) {
		uint64_t last_over = group_overhead_blocks(fs, (dgrp_t) (groups - 1));
		uint64_t last_cap = bpg - MIN(bpg, last_over);

		if (avail + last_cap >= data || groups >= n) {
			uint64_t rest = data > avail ? data - avail : 0;
			total = fs->super->s_first_data_block + (groups - 1) * bpg + last_over +
				MIN(rest, last_cap);
			break;
		}
		avail += last_cap;
		groups++;
	}
	/* like resize2fs: the flex group being cut keeps room for a whole
	 * flex group's bitmaps and inode tables, and extent trees may grow */
	if (ext2fs_has_feature_flex_bg(fs->super) && fs->super->s_log_groups_per_flex < 31) {
		uint64_t flex = UINT64_C(1) << fs->super->s_log_groups_per_flex;
		uint64_t extra = flex - (groups % flex);
		if (extra < flex)
			total += extra * (2 + (uint64_t) fs->inode_blocks_per_group);
	}
	if (ext2fs_has_feature_extents(fs->super) && total < ext2fs_blocks_count(fs->super))
		total += (ext2fs_blocks_count(fs->super) - total) / 500;
	return MIN(total, (uint64_t) ext2fs_blocks_count(fs->super));
}

static void format_uuid(const uint8_t u[16], char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
		 u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
		 u[14], u[15]);
}

int extfs_get_info(struct extfs *x, struct extfs_info *ret)
{
	struct extfs_info info = {};
	struct ext2_super_block *sb;
	uint64_t blocks, used = 0;
	int r;

	if (!x || !x->fs || !ret)
		return -EINVAL;
	sb = x->fs->super;
	blocks = ext2fs_blocks_count(sb);

	if ((sb->s_feature_incompat & ~(uint32_t) EXT3_INCOMPAT_KNOWN) ||
	    (sb->s_feature_ro_compat & ~(uint32_t) EXT3_RO_COMPAT_KNOWN))
		strcpy(info.type, "ext4");
	else if (sb->s_feature_compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL)
		strcpy(info.type, "ext3");
	else
		strcpy(info.type, "ext2");

	info.block_bytes = x->fs->blocksize;
	info.size_bytes = blocks * info.block_bytes;

	r = walk_used(x->fs, count_cb, &used);
	if (r < 0)
		return r;
	/* blocks before s_first_data_block (the 1 KiB boot block) are in no bitmap */
	used += sb->s_first_data_block;
	if (used > blocks)
		return -EBADMSG;
	info.used_bytes = used * info.block_bytes;
	info.free_bytes = info.size_bytes - info.used_bytes;

	info.clean = (sb->s_state & EXT2_VALID_FS) && !(sb->s_state & EXT2_ERROR_FS) &&
		     !(sb->s_feature_incompat & EXT3_FEATURE_INCOMPAT_RECOVER);
	format_uuid(sb->s_uuid, info.uuid);
	memcpy(info.label, sb->s_volume_name, MIN(sizeof(sb->s_volume_name), sizeof(info.label) - 1));
	info.label[sizeof(info.label) - 1] = 0;
	info.min_size_bytes = min_size_blocks(x->fs, used) * info.block_bytes;
	*ret = info;
	return 0;
}

struct extent_walk {
	ext2_filsys fs;
	uint64_t bound_bytes;
	int (*cb)(uint64_t offset_bytes, uint64_t size_bytes, void *userdata);
	void *userdata;
	uint64_t pending_start, pending_end; /* bytes, pending_end == 0: none */
};

static int extent_flush(struct extent_walk *w)
{
	uint64_t s = w->pending_start, e = MIN(w->pending_end, w->bound_bytes);

	w->pending_end = 0;
	if (e <= s)
		return 0;
	return w->cb(s, e - s, w->userdata);
}

static int extent_add(struct extent_walk *w, uint64_t start_bytes, uint64_t end_bytes)
{
	int r;

	if (w->pending_end != 0 && start_bytes == w->pending_end) {
		w->pending_end = end_bytes;
		return 0;
	}
	if (w->pending_end != 0) {
		r = extent_flush(w);
		if (r < 0)
			return r;
	}
	w->pending_start = start_bytes;
	w->pending_end = end_bytes;
	return 0;
}

static int extent_cb(blk64_t start, blk64_t end, void *userdata)
{
	struct extent_walk *w = userdata;
	uint64_t bs = w->fs->blocksize;

	return extent_add(w, start * bs, end * bs);
}

int extfs_for_each_used_extent(struct extfs *x,
			       int (*cb)(uint64_t offset_bytes, uint64_t size_bytes, void *userdata),
			       void *userdata)
{
	struct extent_walk w;
	uint64_t fs_bytes;
	int r;

	if (!x || !x->fs || !cb)
		return -EINVAL;
	fs_bytes = ext2fs_blocks_count(x->fs->super) * (uint64_t) x->fs->blocksize;
	w = (struct extent_walk){
		.fs = x->fs,
		.bound_bytes = MIN(fs_bytes, x->size_bytes),
		.cb = cb,
		.userdata = userdata,
	};
	/* 1 KiB blocks: block 0 (boot sector area) precedes the bitmaps */
	if (x->fs->super->s_first_data_block > 0) {
		r = extent_add(&w, 0, (uint64_t) x->fs->super->s_first_data_block * x->fs->blocksize);
		if (r < 0)
			return r;
	}
	r = walk_used(x->fs, extent_cb, &w);
	if (r < 0)
		return r;
	return w.pending_end ? extent_flush(&w) : 0;
}
