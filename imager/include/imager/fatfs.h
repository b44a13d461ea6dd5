/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A bounds-checked FAT12/16/32 reader: used clusters for capture, free space
 * and file lookup (EFI loaders) for `imager disks`. Written here because no
 * packaged library reads FAT from an offset in a file descriptor (mtools
 * refuses block devices, the kernel here cannot mount vfat).
 */

#include <stdbool.h>
#include <stdint.h>

struct fatfs;

struct fatfs_info {
	unsigned fat_bits;        /* 12, 16 or 32 */
	uint64_t cluster_bytes;
	uint64_t size_bytes;      /* total sectors * sector size */
	uint64_t free_bytes;      /* free clusters * cluster size */
	uint64_t used_bytes;      /* size_bytes - free_bytes */
	char label[12];
	uint32_t volume_id;
};

/* -EMEDIUMTYPE if no FAT boot sector, -EBADMSG if inconsistent, -errno otherwise. */
int fatfs_open(int fd, uint64_t offset_bytes, uint64_t size_bytes, struct fatfs **ret);
int fatfs_get_info(struct fatfs *fs, struct fatfs_info *ret);
/*
 * Calls @cb for each run of bytes that holds data: boot sector and reserved
 * sectors, the FATs, the FAT12/16 root directory, and every allocated
 * cluster; offsets relative to the file system's start, increasing, merged.
 */
int fatfs_for_each_used_extent(struct fatfs *fs,
			       int (*cb)(uint64_t offset_bytes, uint64_t size_bytes, void *userdata),
			       void *userdata);
/* Looks up "/EFI/BOOT/BOOTX64.EFI" (case-insensitive, long names). 1 found, 0 not, -errno. */
int fatfs_path_exists(struct fatfs *fs, const char *path);
struct fatfs *fatfs_free(struct fatfs *fs);
