/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libblkid superblock probing of a byte range of a disk, and a classifier for
 * the MBR boot code in sector 0 by the messages each loader carries.
 */

#include <blkid/blkid.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "imager/fsprobe.h"
#include "util/cleanup.h"
#include "util/log.h"

DEFINE_CLEANUP(blkid_probe, blkid_free_probe)

#define BOOTCODE_BYTES 440 /* MBR: code ends where the disk signature starts (0x1B8) */

static int probe_value(blkid_probe pr, const char *name, char **ret)
{
	const char *v = NULL;
	size_t len = 0;

	if (blkid_probe_lookup_value(pr, name, &v, &len) < 0 || !v || !*v) {
		*ret = NULL;
		return 0;
	}
	*ret = strndup(v, len);
	return *ret ? 0 : -ENOMEM;
}

void fsprobe_done(struct fsprobe *p)
{
	if (!p)
		return;
	free(p->type);
	free(p->usage);
	free(p->uuid);
	free(p->label);
	free(p->version);
	*p = (struct fsprobe){};
}

int fsprobe_region(int fd, uint64_t offset_bytes, uint64_t size_bytes, struct fsprobe *ret)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = NULL;
	struct fsprobe p = {};
	int r;

	if (fd < 0 || !ret)
		return -EINVAL;
	if (offset_bytes > INT64_MAX || size_bytes > INT64_MAX - offset_bytes)
		return -EOVERFLOW;
	if (size_bytes == 0) {
		/* blkid would read 0 as "to the end of the device" */
		*ret = p;
		return 0;
	}

	pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	errno = 0;
	r = blkid_probe_set_device(pr, fd, (blkid_loff_t) offset_bytes, (blkid_loff_t) size_bytes);
	if (r < 0)
		return errno > 0 ? -errno : -EIO;
	(void) blkid_probe_enable_partitions(pr, 0);
	r = blkid_probe_enable_superblocks(pr, 1);
	if (r < 0)
		return -EIO;
	r = blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE |
							  BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL |
							  BLKID_SUBLKS_VERSION);
	if (r < 0)
		return -EIO;

	errno = 0;
	r = blkid_do_safeprobe(pr);
	if (r == 1) {
		*ret = p;
		return 0;
	}
	if (r == -2) {
		/* two conflicting signatures: nothing we can trust */
		log_debug("Ambivalent signatures at offset %" PRIu64 ", treating as unknown.",
			  offset_bytes);
		*ret = p;
		return 0;
	}
	if (r < 0)
		return errno > 0 ? -errno : -EIO;

	r = probe_value(pr, "TYPE", &p.type);
	if (r >= 0)
		r = probe_value(pr, "USAGE", &p.usage);
	if (r >= 0)
		r = probe_value(pr, "UUID", &p.uuid);
	if (r >= 0)
		r = probe_value(pr, "LABEL", &p.label);
	if (r >= 0)
		r = probe_value(pr, "VERSION", &p.version);
	if (r < 0) {
		fsprobe_done(&p);
		return r;
	}
	if (!p.type) {
		fsprobe_done(&p);
		*ret = p;
		return 0;
	}
	*ret = p;
	return 1;
}

static const char *const bootcode_name[_BOOTCODE_MAX] = {
	[BOOTCODE_NONE] = "none",	  [BOOTCODE_GRUB] = "grub",
	[BOOTCODE_SYSLINUX] = "syslinux", [BOOTCODE_WINDOWS] = "windows",
	[BOOTCODE_OTHER] = "other",
};

const char *bootcode_to_string(enum bootcode b)
{
	if (b < 0 || b >= _BOOTCODE_MAX)
		return NULL;
	return bootcode_name[b];
}

static bool has(const uint8_t *code, const char *s)
{
	return memmem(code, BOOTCODE_BYTES, s, strlen(s)) != NULL;
}

enum bootcode bootcode_classify(const uint8_t sector0[440])
{
	size_t i;

	for (i = 0; i < BOOTCODE_BYTES; i++)
		if (sector0[i] != 0)
			break;
	if (i == BOOTCODE_BYTES)
		return BOOTCODE_NONE;

	/* GRUB 2 boot.img (grub-core/boot/i386/pc/boot.S): "GRUB " then its
	 * error words, NUL-separated */
	if (has(sector0, "GRUB ") && (has(sector0, "Geom") || has(sector0, " Error")))
		return BOOTCODE_GRUB;

	/* Microsoft's MBR (NT 5 and 6+) carries all three of these; "Invalid
	 * partition table" appears in no syslinux MBR */
	if (has(sector0, "Invalid partition table") &&
	    has(sector0, "Error loading operating system") &&
	    has(sector0, "Missing operating system"))
		return BOOTCODE_WINDOWS;

	/* syslinux mbr.bin / altmbr.bin: "Operating system load error."
	 * (Microsoft says "Error loading ..."), gptmbr.bin: "Missing OS" and
	 * "Disk error", both: "Multiple active partitions" */
	if (has(sector0, "Operating system load error") ||
	    (has(sector0, "Missing OS") && has(sector0, "Disk error")) ||
	    (has(sector0, "Multiple active partitions") &&
	     !has(sector0, "Invalid partition table")))
		return BOOTCODE_SYSLINUX;

	return BOOTCODE_OTHER;
}
