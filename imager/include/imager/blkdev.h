/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Disks: block devices found through libblkid and sysfs, or disk-image files
 * given by path. Identity, geometry and in-use state; nothing here writes.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct blkdev {
	char *node;                     /* "/dev/sda", or the image file's path as given */
	char *sysname;                  /* "sda"; NULL for image files */
	bool is_file;                   /* a disk-image file, not a block device */
	dev_t devnum;                   /* 0 for image files */
	uint64_t size_bytes;
	uint32_t logical_sector_bytes;  /* BLKSSZGET; image files: 512, or 4096 if the GPT header is at 4096 */
	uint32_t physical_sector_bytes; /* BLKPBSZGET; image files: as logical */
	char *model, *vendor, *serial, *wwn; /* NULL when unknown */
	char *transport;                /* "sata", "sas", "nvme", "usb", "virtio", "mmc", "loop", "scsi", "file", NULL */
	char *backing_file;             /* loop devices: the file behind it */
	bool rotational, removable, read_only;
	char **by_id, **by_path;        /* /dev/disk/by-id/... names, NULL-terminated, may be empty */
	bool system_disk;               /* holds the running system's root file system */
};

/*
 * Looks at one disk given by path: a whole-disk block device or a disk-image
 * file. The path must be readable by the caller (it is opened once to check).
 * Errors: -ENOENT missing path; -EACCES cannot open; -EMEDIUMTYPE a regular
 * file that is not a disk image (size 0 or not a multiple of 512, or neither a
 * partition table / file-system signature (libblkid) nor a blank first and
 * last sector); -ENOTBLK a partition node, character device, directory or
 * other non-disk node; -ENODEV a block device of size 0 (unattached loop
 * device, drive without medium).
 */
int blkdev_new_from_path(const char *path, struct blkdev **ret);

/*
 * Like blkdev_new_from_path() but accepts any regular file (blank images, a
 * flash target to be created), and a file that does not exist yet if
 * @allow_missing (then size_bytes is 0).
 */
int blkdev_new_target(const char *path, bool allow_missing, struct blkdev **ret);

/*
 * Enumerates whole disks (libblkid + /sys/block), sorted by node, hiding
 * ram, zram and unattached loop devices. Returns the number of disks.
 */
int blkdev_enumerate(struct blkdev ***ret);
void blkdev_list_free(struct blkdev **l);

/*
 * Why a disk is in use: any partition (or the disk) mounted, active swap, or
 * held by dm/md/LVM (sysfs holders). Returns 1 and a human reason in
 * *ret_reason (e.g. "/dev/loop3p2 is mounted on /mnt"), 0 if free, -errno.
 * Mount points per partition come from blkdev_mountpoints().
 */
int blkdev_in_use(const struct blkdev *d, char **ret_reason);

/*
 * Mount points of the partition starting at @start_bytes of @d (0 = the whole
 * disk), NULL-terminated in *ret (possibly empty). Also reports whether it is
 * active swap or held by another device (dm/md/LVM).
 */
int blkdev_partition_usage(const struct blkdev *d, uint64_t start_bytes, char ***ret_mountpoints,
			   bool *ret_swap, char **ret_holder);

/*
 * The kernel's partition node ("/dev/loop0p2") for the partition of @d that
 * starts at @start_bytes. -ENOENT if the kernel has no partition there (image
 * files, loop devices without partx -a).
 */
int blkdev_partition_node(const struct blkdev *d, uint64_t start_bytes, char **ret);

/*
 * Opens @d: O_RDONLY or O_RDWR | O_EXCL for block devices (EBUSY when mounted
 * or held), O_CLOEXEC always. For image files @flags may add O_CREAT.
 */
int blkdev_open(const struct blkdev *d, int flags, int *ret_fd);

struct blkdev *blkdev_free(struct blkdev *d);
