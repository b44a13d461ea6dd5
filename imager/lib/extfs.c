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

/*
 * Blocks of per-group metadata as resize2fs counts them: bitmaps, inode
 * table, and the superblock and descriptor copies (old-style descriptors
 * include the reserved GDT blocks).
 */
static uint64_t group_overhead_blocks(ext2_filsys fs, dgrp_t g, uint64_t old_desc_blocks)
{
	blk64_t super = 0, old_desc = 0, new_desc = 0;
	uint64_t o = (uint64_t) fs->inode_blocks_per_group + 2;

	(void) ext2fs_super_and_bgd_loc2(fs, g, &super, &old_desc, &new_desc, NULL);
	if (g == 0 || super)
		o++;
	if (old_desc)
		o += old_desc_blocks;
	else if (new_desc)
		o++;
	return o;
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/*
 * Smallest size `resize2fs -M` would shrink to, computed the way its
 * calculate_minimum_resize_size() does (e2fsprogs 1.47): enough groups for
 * the used inodes, then more until the data blocks fit next to each group's
 * metadata, with a flex group's worth of metadata as slack, the last group
 * cut after its data (at least 50 blocks), and a margin for extent tree
 * growth. The used-block count comes from the bitmaps rather than from the
 * group descriptors' summaries, so on a file system whose summaries are
 * stale the result differs from resize2fs -P, as it should.
 */
static uint64_t min_size_blocks(ext2_filsys fs, uint64_t free_blocks)
{
	struct ext2_super_block *sb = fs->super;
	uint64_t bpg = sb->s_blocks_per_group, ipg = sb->s_inodes_per_group;
	uint64_t blocks = ext2fs_blocks_count(sb), n = fs->group_desc_count;
	uint64_t flex = 1, used_inodes, old_desc_blocks, data_needed, capacity, last_start = 0;
	uint64_t groups, flex_groups, need, ovh = 0, g;
	bool has_flex = ext2fs_has_feature_flex_bg(sb) && sb->s_log_groups_per_flex < 31;

	if (bpg == 0 || ipg == 0 || n == 0)
		return blocks;
	if (has_flex)
		flex = UINT64_C(1) << sb->s_log_groups_per_flex;
	used_inodes = sub_sat(sb->s_inodes_count, sb->s_free_inodes_count);
	old_desc_blocks = ext2fs_has_feature_meta_bg(sb)
				  ? sb->s_first_meta_bg
				  : (uint64_t) fs->desc_blocks + sb->s_reserved_gdt_blocks;

	data_needed = sub_sat(blocks, free_blocks);
	for (g = 0; g < n; g++)
		data_needed = sub_sat(data_needed, group_overhead_blocks(fs, (dgrp_t) g,
									 old_desc_blocks));

	groups = MAX(DIV_ROUND_UP(used_inodes, ipg), (uint64_t) 1);
	if (groups > n)
		return blocks;
	flex_groups = has_flex ? MIN(groups + flex - (groups & (flex - 1)), n) : groups;
	capacity = groups * bpg;
	for (g = 0; g < flex_groups; g++) {
		uint64_t o = group_overhead_blocks(fs, (dgrp_t) g, old_desc_blocks);
		if (g + 1 < groups)
			last_start += sub_sat(bpg, o);
		capacity = sub_sat(capacity, o);
	}
	while (data_needed > capacity) {
		uint64_t extra = DIV_ROUND_UP(data_needed - capacity, bpg);

		capacity += extra * bpg;
		last_start += sub_sat(bpg, group_overhead_blocks(fs, (dgrp_t) (groups - 1),
								 old_desc_blocks));
		g = flex_groups;
		groups += extra;
		if (groups > n)
			return blocks;
		if (!has_flex)
			flex_groups = groups;
		else if (groups > flex_groups)
			flex_groups = MIN(groups + flex - (groups & (flex - 1)), n);
		for (; g < flex_groups; g++) {
			uint64_t o = group_overhead_blocks(fs, (dgrp_t) g, old_desc_blocks);
			if (g + 1 < groups)
				last_start += sub_sat(bpg, o);
			capacity = sub_sat(capacity, o);
		}
	}

	/* the last group carries the metadata of its flex group (all of the
	 * first one's if it is in the first flex group) */
	g = groups - 1;
	if (has_flex && (g & ~(flex - 1)) == 0)
		g = 0;
	for (; g < flex_groups; g++)
		ovh += group_overhead_blocks(fs, (dgrp_t) g, old_desc_blocks);
	ovh += MAX(sub_sat(data_needed, last_start), (uint64_t) 50);
	ovh += sb->s_first_data_block;
	if (EXT2FS_CLUSTER_RATIO(fs) > 1)
		ovh += 2 * (uint64_t) EXT2FS_CLUSTER_RATIO(fs);
	need = (groups - 1) * bpg + ovh;
	need = MAX(need, (uint64_t) ext2fs_inode_table_loc(fs, (dgrp_t) (groups - 1)) +
				 fs->inode_blocks_per_group);
	if (need >= blocks)
		return blocks;
	if (ext2fs_has_feature_extents(sb)) {
		/* worst case: every evacuated block in its own extent */
		uint64_t per_block = fs->blocksize / sizeof(struct ext3_extent) - 1;
		uint64_t worst = MAX(DIV_ROUND_UP(data_needed, per_block), used_inodes);
		need += MIN((blocks - need) / 500, worst);
	}
	return MIN(need, blocks);
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
	memcpy(info.label, sb->s_volume_name,
	       MIN(sizeof(sb->s_volume_name), sizeof(info.label) - 1));
	info.label[sizeof(info.label) - 1] = 0;
	info.min_size_bytes = min_size_blocks(x->fs, blocks - used) * info.block_bytes;
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
			       int (*cb)(uint64_t offset_bytes, uint64_t size_bytes,
					 void *userdata),
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
		r = extent_add(&w, 0,
			       (uint64_t) x->fs->super->s_first_data_block * x->fs->blocksize);
		if (r < 0)
			return r;
	}
	r = walk_used(x->fs, extent_cb, &w);
	if (r < 0)
		return r;
	return w.pending_end ? extent_flush(&w) : 0;
}
