/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Partition tables, read and rendered through libfdisk. Everything is in
 * bytes; sector numbers stay inside lib/ptable.c (C13).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ptable_label {
	PTABLE_NONE,
	PTABLE_DOS,
	PTABLE_GPT,
	_PTABLE_LABEL_MAX,
	_PTABLE_LABEL_INVALID = -22, /* -EINVAL */
};
const char *ptable_label_to_string(enum ptable_label l); /* "none", "dos", "gpt" */
enum ptable_label ptable_label_from_string(const char *s);

struct ptable_entry {
	unsigned partno;      /* 1-based, as the kernel numbers it */
	uint64_t start_bytes; /* from the start of the disk */
	uint64_t size_bytes;
	char *type;           /* GPT: upper-case type GUID; dos: "0x83" */
	char *type_name;      /* libfdisk's name for the type, NULL if unknown */
	char *uuid;           /* GPT: PARTUUID; dos: "<disk-id>-<nn>" as the kernel shows it */
	char *name;           /* GPT partition name, NULL if empty or dos */
	uint64_t attrs;       /* GPT attribute bits; dos: 0x80 if bootable */
	bool bootable;        /* dos boot flag or GPT legacy BIOS bootable (bit 2) */
};

struct ptable {
	enum ptable_label label;
	char *disk_id;               /* GPT disk GUID (upper-case) or dos "0x1234abcd" */
	uint32_t sector_bytes;       /* logical sector size the table was read with */
	uint64_t first_usable_bytes; /* GPT: first usable LBA in bytes; dos: 0 */
	uint64_t last_usable_bytes;  /* GPT: last usable byte (inclusive end offset + 1) */
	uint32_t gpt_n_entries_max;  /* GPT: size of the entry array (usually 128) */
	struct ptable_entry *entries;
	size_t n_entries;            /* sorted by start_bytes */

	/* health, GPT only */
	bool gpt_primary_damaged;    /* primary header or entries fail their CRC */
	bool gpt_backup_damaged;     /* backup header or entries fail their CRC, or absent */
	bool gpt_backup_misplaced;   /* backup header is valid but not in the disk's last LBA */
};

/*
 * Reads the partition table of the disk open on @fd (a block device or a
 * disk-image file) with logical sector size @sector_bytes. A disk without a
 * table yields label PTABLE_NONE and no entries. A damaged GPT whose other
 * copy is valid is read from that copy and the damage is reported in the
 * health fields. Returns 0 or -errno (-EBADMSG if no usable table can be read
 * although a label is present).
 */
int ptable_read(int fd, uint32_t sector_bytes, struct ptable **ret);

/*
 * Renders @pt for a disk of @disk_size_bytes with @sector_bytes into a sparse
 * memfd of that size, via libfdisk: same label, disk id, entries (start,
 * size, type, UUID, name, attributes); for GPT the backup header and entries
 * at the true end of the disk. Nothing else is written into the memfd, so its
 * data regions (SEEK_DATA/SEEK_HOLE) are exactly what must be copied to the
 * target. Sector 0 bytes 0-439 (boot code) are zero in the render.
 * Returns 0 and the memfd in *ret_fd, or -errno (-ENOSPC if an entry does not
 * fit the disk).
 */
int ptable_render(const struct ptable *pt, uint64_t disk_size_bytes, uint32_t sector_bytes,
		  int *ret_fd);

/* A byte range of the disk. */
struct ptable_region {
	uint64_t offset_bytes;
	uint64_t size_bytes;
};

/*
 * The exact byte ranges that the partition table on @fd occupies (MBR or
 * protective MBR, GPT headers and entry arrays, both copies, dos EBRs), in
 * increasing order, whole sectors. Use it on a ptable_render() memfd: its
 * SEEK_DATA regions are page-granular (tmpfs), so with 512-byte sectors they
 * can include zero sectors that belong to neighbouring partitions; copying
 * only these ranges never touches partition data. Returns 0 (n may be 0 for
 * PTABLE_NONE) or -errno.
 */
int ptable_regions(int fd, uint32_t sector_bytes, struct ptable_region **ret, size_t *ret_n);

/* Deep copy. */
int ptable_dup(const struct ptable *pt, struct ptable **ret);
struct ptable *ptable_free(struct ptable *pt);
