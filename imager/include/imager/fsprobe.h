/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What sits in a region of a disk (libblkid, with offsets: no partition
 * nodes needed), and what boot code sits in sector 0.
 */

#include <stdbool.h>
#include <stdint.h>

struct fsprobe {
	char *type;    /* blkid TYPE: "ext4", "vfat", "swap", "crypto_LUKS", "LVM2_member", ... or NULL */
	char *usage;   /* blkid USAGE: "filesystem", "raid", "crypto", "other" or NULL */
	char *uuid;
	char *label;
	char *version;
};

/* Probes [offset_bytes, offset_bytes + size_bytes) of @fd. Returns 1 if found, 0 if nothing, -errno. */
int fsprobe_region(int fd, uint64_t offset_bytes, uint64_t size_bytes, struct fsprobe *ret);
void fsprobe_done(struct fsprobe *p);

enum bootcode {
	BOOTCODE_NONE,     /* all zero */
	BOOTCODE_GRUB,     /* GRUB 2 boot.img */
	BOOTCODE_SYSLINUX, /* syslinux/isolinux mbr.bin, gptmbr.bin */
	BOOTCODE_WINDOWS,  /* Windows NT 6+ / Vista+ MBR */
	BOOTCODE_OTHER,
	_BOOTCODE_MAX,
	_BOOTCODE_INVALID = -22,
};
const char *bootcode_to_string(enum bootcode b); /* "none", "grub", "syslinux", "windows", "other" */
/* Classifies the 440 bytes of boot code at the start of sector 0. */
enum bootcode bootcode_classify(const uint8_t sector0[440]);
