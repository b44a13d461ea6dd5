/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imager disks [--json] [--long] [DEVICE]
 *
 * One data model (struct disk_report, filled from the library modules), two
 * renderers: text (a header per disk and a libsmartcols table of its
 * partitions) and JSON (field names documented in docs/cli-disks.md; they are
 * API). All file-system reading goes through the whole-disk fd with offsets:
 * no partition nodes are needed.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <libsmartcols/libsmartcols.h>

#include "cli.h"
#include "imager/blkdev.h"
#include "imager/extfs.h"
#include "imager/fatfs.h"
#include "imager/fsprobe.h"
#include "imager/ptable.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct libscols_table *, scols_unref_table)
DEFINE_CLEANUP(struct blkdev *, blkdev_free)
DEFINE_CLEANUP(struct ptable *, ptable_free)
DEFINE_CLEANUP(struct extfs *, extfs_free)
DEFINE_CLEANUP(struct fatfs *, fatfs_free)

/* UEFI 2.10 §5.3.3 and GRUB's BIOS boot partition (grub-install on GPT) */
#define GPT_TYPE_ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define GPT_TYPE_BIOS_BOOT "21686148-6449-6E6F-744E-656564454649"
#define DOS_TYPE_ESP 0xef
/* GRUB boot.img: 8-byte LBA of core.img's first sector (GRUB_BOOT_MACHINE_KERNEL_SECTOR) */
#define GRUB_BOOT_KERNEL_SECTOR_OFFSET 0x5c
/* sector 0 as far as the MBR goes (boot code, signature, table); bootcode_classify reads 440 */
#define SECTOR0_READ_BYTES 512

/* Where UEFI firmware and the usual distributions put loaders on an ESP. */
#define EFI_DEFAULT_LOADER "EFI/BOOT/BOOTX64.EFI"
static const char *const efi_loader_paths[] = {
	EFI_DEFAULT_LOADER,
	"EFI/BOOT/shimx64.efi",
	"EFI/BOOT/grubx64.efi",
	"EFI/BOOT/mmx64.efi",
	"EFI/BOOT/fbx64.efi",
	"EFI/debian/shimx64.efi",
	"EFI/debian/grubx64.efi",
	"EFI/ubuntu/shimx64.efi",
	"EFI/ubuntu/grubx64.efi",
	"EFI/fedora/shimx64.efi",
	"EFI/fedora/grubx64.efi",
	"EFI/centos/shimx64.efi",
	"EFI/centos/grubx64.efi",
	"EFI/redhat/shimx64.efi",
	"EFI/redhat/grubx64.efi",
	"EFI/rocky/shimx64.efi",
	"EFI/rocky/grubx64.efi",
	"EFI/almalinux/shimx64.efi",
	"EFI/almalinux/grubx64.efi",
	"EFI/opensuse/shim.efi",
	"EFI/opensuse/grubx64.efi",
	"EFI/sles/shim.efi",
	"EFI/sles/grubx64.efi",
	"EFI/grub/grubx64.efi",
	"EFI/systemd/systemd-bootx64.efi",
	"EFI/Microsoft/Boot/bootmgfw.efi",
};

static bool arg_json, arg_long;

/* What sits in a region (a partition, or the whole disk without a partition table). */
struct fs_report {
	struct fsprobe probe;        /* probe.type NULL: nothing recognised */
	bool have_space;             /* fs_used/fs_free valid (ext2/3/4, vfat) */
	uint64_t fs_used_bytes, fs_free_bytes;
	int fs_clean;                /* 1 clean, 0 dirty, -1 unknown (not ext) */
	char *node;                  /* kernel partition node, NULL if none */
	char **mountpoints;
	bool swap;
	char *holder;
	char *error;                 /* why the file system could not be read, or NULL */
};

struct part_report {
	const struct ptable_entry *e; /* owned by disk_report.pt */
	struct fs_report fs;
};

struct boot_report {
	enum bootcode mbr_code;
	unsigned bios_boot_partno;   /* 0: none */
	unsigned esp_partno;         /* 0: none */
	char **efi_loaders;
	const char *efi_default_loader; /* what BOOTX64.EFI is: "shim", "unknown", NULL if absent */
	bool bios, uefi;
};

struct disk_report {
	struct blkdev *dev;
	char *error;                 /* could not open or read the partition table */
	struct ptable *pt;           /* NULL if unreadable */
	struct fs_report whole;      /* the whole disk: usage, and its file system if no table */
	struct part_report *parts;
	size_t n_parts;
	char *in_use_reason;
	struct boot_report boot;
};

static const char *boot_mode(const struct boot_report *b)
{
	return b->bios && b->uefi ? "both" : b->bios ? "bios" : b->uefi ? "uefi" : "none";
}

static void fs_report_done(struct fs_report *f)
{
	fsprobe_done(&f->probe);
	free(f->node);
	strv_free(f->mountpoints);
	free(f->holder);
	free(f->error);
	*f = (struct fs_report){};
}

static void disk_report_free(struct disk_report *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_parts; i++)
		fs_report_done(&d->parts[i].fs);
	free(d->parts);
	fs_report_done(&d->whole);
	free(d->in_use_reason);
	strv_free(d->boot.efi_loaders);
	ptable_free(d->pt);
	free(d->error);
	blkdev_free(d->dev);
	free(d);
}
DEFINE_CLEANUP(struct disk_report *, disk_report_free)

/* "mounted", "swap", "holder:dm-0" or NULL: the in_use vocabulary of docs/cli-disks.md */
static char *fs_in_use(const struct fs_report *f)
{
	char *s = NULL;

	if (f->mountpoints && f->mountpoints[0])
		return strdup("mounted");
	if (f->swap)
		return strdup("swap");
	if (f->holder && asprintf(&s, "holder:%s", f->holder) < 0)
		return NULL;
	return s;
}

static int strv_append(char ***l, const char *s)
{
	size_t n = 0;
	char **t, *c;

	while (*l && (*l)[n])
		n++;
	c = strdup(s);
	if (!c)
		return -ENOMEM;
	t = realloc(*l, (n + 2) * sizeof(char *));
	if (!t) {
		free(c);
		return -ENOMEM;
	}
	t[n] = c;
	t[n + 1] = NULL;
	*l = t;
	return 0;
}

static bool strv_has(char **l, const char *s)
{
	for (; l && *l; l++)
		if (strcmp(*l, s) == 0)
			return true;
	return false;
}

static char *errno_string(int r)
{
	char *s = NULL;

	return asprintf(&s, "%s", strerror(-r)) < 0 ? NULL : s;
}

/* Fills probe, space and clean state of [offset, offset + size) of @fd. */
static void probe_region(int fd, uint64_t offset_bytes, uint64_t size_bytes, struct fs_report *f)
{
	int r;

	f->fs_clean = -1;
	r = fsprobe_region(fd, offset_bytes, size_bytes, &f->probe);
	if (r < 0) {
		log_debug_errno(r, "Probing at %" PRIu64 " failed: %m", offset_bytes);
		f->error = errno_string(r);
		return;
	}
	if (r == 0 || !f->probe.type)
		return;

	if (strcmp(f->probe.type, "ext2") == 0 || strcmp(f->probe.type, "ext3") == 0 ||
	    strcmp(f->probe.type, "ext4") == 0) {
		_cleanup_(extfs_freep) struct extfs *fs = NULL;
		struct extfs_info info;

		r = extfs_open(fd, offset_bytes, size_bytes, &fs);
		if (r >= 0)
			r = extfs_get_info(fs, &info);
		if (r < 0) {
			f->error = errno_string(r);
			return;
		}
		f->have_space = true;
		f->fs_used_bytes = info.used_bytes;
		f->fs_free_bytes = info.free_bytes;
		f->fs_clean = info.clean;
	} else if (strcmp(f->probe.type, "vfat") == 0) {
		_cleanup_(fatfs_freep) struct fatfs *fs = NULL;
		struct fatfs_info info;

		r = fatfs_open(fd, offset_bytes, size_bytes, &fs);
		if (r >= 0)
			r = fatfs_get_info(fs, &info);
		if (r < 0) {
			f->error = errno_string(r);
			return;
		}
		f->have_space = true;
		f->fs_used_bytes = info.used_bytes;
		f->fs_free_bytes = info.free_bytes;
	}
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Whether the sector at @offset_bytes exists and holds anything but zeros. */
static bool sector_nonzero(int fd, uint64_t offset_bytes, uint32_t sector_bytes)
{
	_cleanup_free_ uint8_t *buf = malloc(sector_bytes);

	return buf && pread_all(fd, buf, sector_bytes, offset_bytes) >= 0 &&
	       !all_zero(buf, sector_bytes);
}

static bool type_is(const struct ptable_entry *e, enum ptable_label label, const char *gpt_guid,
		    unsigned dos_id)
{
	if (!e->type)
		return false;
	if (label == PTABLE_GPT)
		return gpt_guid && strcasecmp(e->type, gpt_guid) == 0;
	return dos_id && strtoul(e->type, NULL, 16) == dos_id;
}

/*
 * BIOS: GRUB's boot.img needs its core.img: in the BIOS-boot partition on GPT,
 * in the gap between the MBR and the first partition on dos. Other MBR code
 * (syslinux, Windows, unknown) chain-loads the active partition (dos) or the
 * one with the legacy-BIOS-bootable attribute (GPT, syslinux gptmbr.bin).
 * UEFI: an ESP with a FAT that holds the removable-media path BOOTX64.EFI.
 */
static void analyse_boot(struct disk_report *d, int fd, const uint8_t *sector0)
{
	struct boot_report *b = &d->boot;
	const struct ptable *pt = d->pt;
	uint32_t ss = d->dev->logical_sector_bytes;

	b->mbr_code = sector0 ? bootcode_classify(sector0) : BOOTCODE_NONE;
	if (!pt || pt->label == PTABLE_NONE)
		return;

	for (size_t i = 0; i < d->n_parts; i++) {
		const struct ptable_entry *e = d->parts[i].e;

		if (!b->bios_boot_partno && type_is(e, pt->label, GPT_TYPE_BIOS_BOOT, 0))
			b->bios_boot_partno = e->partno;
		if (!b->esp_partno && type_is(e, pt->label, GPT_TYPE_ESP, DOS_TYPE_ESP))
			b->esp_partno = e->partno;
	}

	switch (b->mbr_code) {
	case BOOTCODE_GRUB:
		if (pt->label == PTABLE_GPT) {
			for (size_t i = 0; i < d->n_parts; i++)
				if (d->parts[i].e->partno == b->bios_boot_partno)
					b->bios = d->parts[i].e->size_bytes >= ss &&
						  sector_nonzero(fd, d->parts[i].e->start_bytes, ss);
		} else {
			/* core.img sits in the post-MBR gap; boot.img says where */
			uint64_t first = d->dev->size_bytes, lba = 0, core;

			for (size_t i = 0; i < d->n_parts; i++)
				first = MIN(first, d->parts[i].e->start_bytes);
			memcpy(&lba, sector0 + GRUB_BOOT_KERNEL_SECTOR_OFFSET, sizeof(lba));
			lba = le64toh(lba);
			core = lba <= UINT64_MAX / ss ? lba * ss : UINT64_MAX;
			if (core < ss || core > first - ss)
				core = ss; /* conventional place: LBA 1 */
			b->bios = first >= 2 * (uint64_t) ss && sector_nonzero(fd, core, ss);
		}
		break;
	case BOOTCODE_SYSLINUX:
	case BOOTCODE_WINDOWS:
	case BOOTCODE_OTHER:
		for (size_t i = 0; i < d->n_parts; i++)
			if (d->parts[i].e->bootable)
				b->bios = true;
		break;
	default:
		break;
	}

	for (size_t i = 0; i < d->n_parts && b->esp_partno; i++) {
		const struct ptable_entry *e = d->parts[i].e;
		_cleanup_(fatfs_freep) struct fatfs *fs = NULL;

		if (e->partno != b->esp_partno)
			continue;
		if (fatfs_open(fd, e->start_bytes, e->size_bytes, &fs) < 0)
			break;
		for (size_t k = 0; k < ELEMENTSOF(efi_loader_paths); k++) {
			_cleanup_free_ char *p = NULL;

			if (asprintf(&p, "/%s", efi_loader_paths[k]) < 0)
				break;
			if (fatfs_path_exists(fs, p) <= 0)
				continue;
			if (strv_append(&b->efi_loaders, efi_loader_paths[k]) < 0)
				break;
			if (streq_ptr(efi_loader_paths[k], EFI_DEFAULT_LOADER))
				b->uefi = true;
		}
		/* shim boots grubx64.efi (or MokManager mmx64.efi) from its own folder: a
		 * BOOTX64.EFI beside them is shim; without reading the file, that is all we know */
		if (b->uefi)
			b->efi_default_loader =
				strv_has(b->efi_loaders, "EFI/BOOT/grubx64.efi") ||
						strv_has(b->efi_loaders, "EFI/BOOT/mmx64.efi") ?
					"shim" :
					"unknown";
	}
}

static void fill_usage(const struct blkdev *dev, uint64_t start_bytes, struct fs_report *f)
{
	int r;

	r = blkdev_partition_usage(dev, start_bytes, &f->mountpoints, &f->swap, &f->holder);
	if (r < 0)
		log_debug_errno(r, "Cannot tell whether '%s' is in use: %m", dev->node);
	if (start_bytes > 0 && blkdev_partition_node(dev, start_bytes, &f->node) < 0)
		f->node = NULL;
}

static int disk_report_new(struct blkdev *dev, struct disk_report **ret)
{
	_cleanup_(disk_report_freep) struct disk_report *d = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint8_t sector0[SECTOR0_READ_BYTES];
	bool have_sector0 = false;
	int r;

	d = calloc(1, sizeof(*d));
	if (!d) {
		blkdev_free(dev);
		return -ENOMEM;
	}
	d->dev = dev;
	d->whole.fs_clean = -1;

	fill_usage(dev, 0, &d->whole);
	r = blkdev_in_use(dev, &d->in_use_reason);
	if (r < 0)
		log_debug_errno(r, "Cannot tell whether '%s' is in use: %m", dev->node);

	r = blkdev_open(dev, O_RDONLY, &fd);
	if (r < 0) {
		d->error = errno_string(r);
		*ret = TAKE_PTR(d);
		return 0;
	}
	if (dev->size_bytes >= sizeof(sector0) && pread_all(fd, sector0, sizeof(sector0), 0) >= 0)
		have_sector0 = true;

	r = ptable_read(fd, dev->logical_sector_bytes, &d->pt);
	if (r < 0) {
		log_warning_errno(r, "Cannot read the partition table of '%s': %m", dev->node);
		d->error = errno_string(r);
	}

	if (d->pt && d->pt->n_entries > 0) {
		d->parts = calloc(d->pt->n_entries, sizeof(*d->parts));
		if (!d->parts)
			return -ENOMEM;
		d->n_parts = d->pt->n_entries;
		for (size_t i = 0; i < d->n_parts; i++) {
			const struct ptable_entry *e = &d->pt->entries[i];

			d->parts[i].e = e;
			probe_region(fd, e->start_bytes, e->size_bytes, &d->parts[i].fs);
			fill_usage(dev, e->start_bytes, &d->parts[i].fs);
		}
	} else if (d->pt && d->pt->label == PTABLE_NONE)
		probe_region(fd, 0, dev->size_bytes, &d->whole);

	analyse_boot(d, fd, have_sector0 ? sector0 : NULL);
	*ret = TAKE_PTR(d);
	return 0;
}

/* --- JSON ---------------------------------------------------------------- */

static void json_strv(struct json *j, const char *key, char **l)
{
	json_array_begin(j, key);
	for (char **p = l; p && *p; p++)
		json_string(j, NULL, *p);
	json_array_end(j);
}

static void json_u64_or_null(struct json *j, const char *key, bool have, uint64_t v)
{
	if (have)
		json_u64(j, key, v);
	else
		json_null(j, key);
}

/* The file-system fields shared by partitions and whole disks. */
static void json_fs(struct json *j, const struct fs_report *f)
{
	_cleanup_free_ char *in_use = fs_in_use(f);

	json_string(j, "fstype", f->probe.type);
	json_string(j, "label", f->probe.label);
	json_string(j, "uuid", f->probe.uuid);
	json_strv(j, "mountpoints", f->mountpoints);
	json_string(j, "in_use", in_use);
	json_u64_or_null(j, "fs_used", f->have_space, f->fs_used_bytes);
	json_u64_or_null(j, "fs_free", f->have_space, f->fs_free_bytes);
	if (f->fs_clean >= 0)
		json_bool(j, "fs_clean", f->fs_clean);
	else
		json_null(j, "fs_clean");
	json_string(j, "fs_error", f->error);
}

static void json_disk(struct json *j, const struct disk_report *d)
{
	const struct blkdev *b = d->dev;
	const struct ptable *pt = d->pt;
	bool has_label = pt && pt->label != PTABLE_NONE;

	json_object_begin(j, NULL);
	json_string(j, "node", b->node);
	json_strv(j, "by_id", b->by_id);
	json_strv(j, "by_path", b->by_path);
	json_u64(j, "size", b->size_bytes);
	json_u64(j, "logical_sector_size", b->logical_sector_bytes);
	json_u64(j, "physical_sector_size", b->physical_sector_bytes);
	json_string(j, "model", b->model);
	json_string(j, "vendor", b->vendor);
	json_string(j, "serial", b->serial);
	json_string(j, "wwn", b->wwn);
	json_string(j, "transport", b->transport);
	json_bool(j, "rotational", b->rotational);
	json_bool(j, "removable", b->removable);
	json_bool(j, "read_only", b->read_only);
	json_bool(j, "system_disk", b->system_disk);
	json_string(j, "backing_file", b->backing_file);
	json_string(j, "in_use_reason", d->in_use_reason);
	json_string(j, "error", d->error);

	json_string(j, "pttype", has_label ? ptable_label_to_string(pt->label) : NULL);
	json_string(j, "ptuuid", has_label ? pt->disk_id : NULL);
	if (pt && pt->label == PTABLE_GPT) {
		json_object_begin(j, "gpt");
		json_bool(j, "primary_ok", !pt->gpt_primary_damaged);
		json_bool(j, "backup_ok", !pt->gpt_backup_damaged);
		json_bool(j, "backup_misplaced", pt->gpt_backup_misplaced);
		json_object_end(j);
	} else
		json_null(j, "gpt");

	/* the whole disk as a block device: its own mounts, and a file system if unpartitioned */
	json_object_begin(j, "whole_disk");
	json_fs(j, &d->whole);
	json_object_end(j);

	json_object_begin(j, "boot");
	json_string(j, "mbr_code", bootcode_to_string(d->boot.mbr_code));
	json_u64_or_null(j, "bios_boot_partition", d->boot.bios_boot_partno,
			 d->boot.bios_boot_partno);
	json_u64_or_null(j, "esp", d->boot.esp_partno, d->boot.esp_partno);
	json_strv(j, "efi_loaders", d->boot.efi_loaders);
	json_string(j, "efi_default_loader", d->boot.efi_default_loader);
	json_bool(j, "bios", d->boot.bios);
	json_bool(j, "uefi", d->boot.uefi);
	json_string(j, "mode", boot_mode(&d->boot));
	json_object_end(j);

	json_array_begin(j, "partitions");
	for (size_t i = 0; i < d->n_parts; i++) {
		const struct ptable_entry *e = d->parts[i].e;

		json_object_begin(j, NULL);
		json_u64(j, "number", e->partno);
		json_string(j, "node", d->parts[i].fs.node);
		json_u64(j, "start", e->start_bytes);
		json_u64(j, "size", e->size_bytes);
		json_string(j, "type", e->type);
		json_string(j, "type_name", e->type_name);
		json_string(j, "name", e->name);
		json_string(j, "partuuid", e->uuid);
		json_u64(j, "attributes", e->attrs);
		json_bool(j, "bootable", e->bootable);
		json_fs(j, &d->parts[i].fs);
		json_object_end(j);
	}
	json_array_end(j);
	json_object_end(j);
}

static int print_json(struct disk_report **l, size_t n)
{
	struct json j;

	json_init(&j, stdout, true);
	json_object_begin(&j, NULL);
	json_array_begin(&j, "disks");
	for (size_t i = 0; i < n; i++)
		json_disk(&j, l[i]);
	json_array_end(&j);
	json_object_end(&j);
	json_finish(&j);
	return fflush(stdout) == 0 ? 0 : -errno;
}

/* --- text ------------------------------------------------------------------ */

static const char *dash(const char *s)
{
	return s && *s ? s : "-";
}

static char *join(char **l, const char *sep)
{
	size_t len = 1;
	char *s;

	for (char **p = l; p && *p; p++)
		len += strlen(*p) + strlen(sep);
	s = calloc(1, len);
	if (!s)
		return NULL;
	for (char **p = l; p && *p; p++) {
		if (p != l)
			strcat(s, sep);
		strcat(s, *p);
	}
	return s;
}

/* "/mnt, /srv", "swap", "held by dm-0" or "-" */
static char *usage_text(const struct fs_report *f)
{
	char *s = NULL;

	if (f->mountpoints && f->mountpoints[0])
		return join(f->mountpoints, ",");
	if (f->swap)
		return strdup("[SWAP]");
	if (f->holder && asprintf(&s, "held by %s", f->holder) >= 0)
		return s;
	return strdup("-");
}

/* "48.8 MiB (11%)" of the file system's size, or "-" */
static char *space_text(const struct fs_report *f)
{
	char used[FORMAT_BYTES_MAX], *s = NULL;
	uint64_t total = f->fs_used_bytes + f->fs_free_bytes;

	if (!f->have_space)
		return strdup("-");
	if (asprintf(&s, "%s (%u%%)", format_bytes(used, sizeof(used), f->fs_used_bytes),
		     total ? (unsigned) ((f->fs_used_bytes * 100 + total / 2) / total) : 0) < 0)
		return NULL;
	return s;
}

static int add_columns(struct libscols_table *tb, const char *const *names)
{
	for (; *names; names++) {
		int flags = 0;
		const char *n = *names;

		if (*n == '>') { /* right-aligned */
			flags = SCOLS_FL_RIGHT;
			n++;
		}
		if (!scols_table_new_column(tb, n, 0, flags))
			return -ENOMEM;
	}
	return 0;
}

static int set_cell(struct libscols_line *ln, size_t col, const char *s)
{
	return scols_line_set_data(ln, col, dash(s)) < 0 ? -ENOMEM : 0;
}

static int set_cell_take(struct libscols_line *ln, size_t col, char *s)
{
	if (!s)
		return -ENOMEM;
	return scols_line_refer_data(ln, col, s) < 0 ? (free(s), -ENOMEM) : 0;
}

static int set_cell_u64(struct libscols_line *ln, size_t col, uint64_t v)
{
	char *s = NULL;

	if (asprintf(&s, "%" PRIu64, v) < 0)
		return -ENOMEM;
	return set_cell_take(ln, col, s);
}

/* Prints @tb indented under the disk's header. */
static int print_indented(struct libscols_table *tb)
{
	_cleanup_free_ char *out = NULL;

	if (scols_print_table_to_string(tb, &out) < 0)
		return -ENOMEM;
	for (char *line = out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		printf("    %.*s\n", nl ? (int) (nl - line) : (int) strlen(line), line);
	}
	return 0;
}

static struct libscols_table *new_table(const char *const *columns)
{
	struct libscols_table *tb = scols_new_table();

	if (!tb)
		return NULL;
	scols_table_enable_ascii(tb, !streq_ptr(nl_langinfo(CODESET), "UTF-8"));
	if (add_columns(tb, columns) < 0)
		return scols_unref_table(tb), NULL;
	return tb;
}

/* What an operator needs at a glance: where, how big, what, how full, used by whom. */
static int print_partitions(const struct disk_report *d)
{
	static const char *const cols[] = { ">NR", ">START", ">SIZE", "TYPE", "FSTYPE", "LABEL",
					    ">USED", "MOUNTPOINTS", NULL };
	_cleanup_(scols_unref_tablep) struct libscols_table *tb = new_table(cols);
	char buf[FORMAT_BYTES_MAX];
	int r = 0;

	if (!tb)
		return -ENOMEM;
	for (size_t i = 0; i < d->n_parts; i++) {
		const struct ptable_entry *e = d->parts[i].e;
		const struct fs_report *f = &d->parts[i].fs;
		struct libscols_line *ln = scols_table_new_line(tb, NULL);

		if (!ln)
			return -ENOMEM;
		if ((r = set_cell_u64(ln, 0, e->partno)) < 0 ||
		    (r = set_cell(ln, 1, format_bytes(buf, sizeof(buf), e->start_bytes))) < 0 ||
		    (r = set_cell(ln, 2, format_bytes(buf, sizeof(buf), e->size_bytes))) < 0 ||
		    (r = set_cell(ln, 3, e->type_name ? e->type_name : e->type)) < 0 ||
		    (r = set_cell(ln, 4, f->probe.type)) < 0 || (r = set_cell(ln, 5, f->probe.label)) < 0 ||
		    (r = set_cell_take(ln, 6, space_text(f))) < 0 ||
		    (r = set_cell_take(ln, 7, usage_text(f))) < 0)
			return r;
	}
	return print_indented(tb);
}

/* --long: exact offsets and every identity, one more table. */
static int print_partition_ids(const struct disk_report *d)
{
	static const char *const cols[] = { ">NR", ">START-BYTES", ">SIZE-BYTES", "NAME",
					    "PARTUUID", "UUID", "FLAGS", "STATE", NULL };
	_cleanup_(scols_unref_tablep) struct libscols_table *tb = new_table(cols);
	int r = 0;

	if (!tb)
		return -ENOMEM;
	for (size_t i = 0; i < d->n_parts; i++) {
		const struct ptable_entry *e = d->parts[i].e;
		const struct fs_report *f = &d->parts[i].fs;
		struct libscols_line *ln = scols_table_new_line(tb, NULL);
		const char *flags = !e->bootable ? NULL :
				    d->pt->label == PTABLE_DOS ? "active" : "legacy_boot";

		if (!ln)
			return -ENOMEM;
		if ((r = set_cell_u64(ln, 0, e->partno)) < 0 ||
		    (r = set_cell_u64(ln, 1, e->start_bytes)) < 0 ||
		    (r = set_cell_u64(ln, 2, e->size_bytes)) < 0 || (r = set_cell(ln, 3, e->name)) < 0 ||
		    (r = set_cell(ln, 4, e->uuid)) < 0 || (r = set_cell(ln, 5, f->probe.uuid)) < 0 ||
		    (r = set_cell(ln, 6, flags)) < 0 ||
		    (r = set_cell(ln, 7, f->fs_clean < 0 ? NULL : f->fs_clean ? "clean" : "dirty")) < 0)
			return r;
	}
	printf("\n");
	return print_indented(tb);
}

static void print_disk_header(const struct disk_report *d)
{
	const struct blkdev *b = d->dev;
	char size[FORMAT_BYTES_MAX];
	const char *pt = !d->pt ? "unreadable" :
			 d->pt->label != PTABLE_NONE ? ptable_label_to_string(d->pt->label) :
						       "no partition table";

	printf("%s  %s  %s", b->node, format_bytes(size, sizeof(size), b->size_bytes),
	       dash(b->transport));
	if (b->model)
		printf("  \"%s\"", b->model);
	if (b->serial)
		printf("  serial %s", b->serial);
	printf("  %s  boot: %s", pt, boot_mode(&d->boot));
	if (b->system_disk)
		printf("  SYSTEM DISK");
	if (b->read_only)
		printf("  read-only");
	if (b->removable)
		printf("  removable");
	printf("\n");
}

static void print_kv(const char *key, const char *value)
{
	printf("    %-22s %s\n", key, dash(value));
}

static void print_disk_details(const struct disk_report *d)
{
	const struct blkdev *b = d->dev;
	const struct boot_report *bo = &d->boot;
	char buf[4096];

	if (arg_long && !b->is_file) {
		_cleanup_free_ char *ids = join(b->by_id, " "), *paths = join(b->by_path, " ");

		/* what this kind of disk does not have (loop: all of them) is left out */
		if (b->vendor)
			print_kv("vendor:", b->vendor);
		if (b->wwn)
			print_kv("wwn:", b->wwn);
		if (ids && *ids)
			print_kv("by-id:", ids);
		if (paths && *paths)
			print_kv("by-path:", paths);
		print_kv("rotational:", b->rotational ? "yes" : "no");
	}
	if (arg_long) {
		snprintf(buf, sizeof(buf), "%" PRIu64 " bytes, sectors %" PRIu32 " logical, %" PRIu32
			 " physical", b->size_bytes, b->logical_sector_bytes,
			 b->physical_sector_bytes);
		print_kv("size:", buf);
		if (d->pt && d->pt->label != PTABLE_NONE)
			print_kv("disk id:", d->pt->disk_id);
	}
	if (b->backing_file)
		print_kv("backing file:", b->backing_file);
	if (d->error)
		print_kv("error:", d->error);
	if (d->pt && d->pt->label == PTABLE_GPT &&
	    (arg_long || d->pt->gpt_primary_damaged || d->pt->gpt_backup_damaged ||
	     d->pt->gpt_backup_misplaced)) {
		snprintf(buf, sizeof(buf), "primary %s, backup %s%s",
			 d->pt->gpt_primary_damaged ? "DAMAGED" : "ok",
			 d->pt->gpt_backup_damaged ? "DAMAGED" : "ok",
			 d->pt->gpt_backup_misplaced ? " but not at the end of the disk" : "");
		print_kv("gpt:", buf);
	}
	if (arg_long) {
		_cleanup_free_ char *loaders = join(bo->efi_loaders, " ");

		snprintf(buf, sizeof(buf), "mbr code %s", bootcode_to_string(bo->mbr_code));
		if (bo->bios_boot_partno)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
				 ", BIOS-boot partition %u", bo->bios_boot_partno);
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ": %s",
			 bo->bios ? "bootable" : "not bootable");
		print_kv("bios:", buf);
		if (bo->esp_partno && streq_ptr(bo->efi_default_loader, "shim"))
			snprintf(buf, sizeof(buf), "ESP partition %u: bootable (shim)", bo->esp_partno);
		else if (bo->esp_partno)
			snprintf(buf, sizeof(buf), "ESP partition %u: %s", bo->esp_partno,
				 bo->uefi ? "bootable" : "no " EFI_DEFAULT_LOADER);
		else
			snprintf(buf, sizeof(buf), "no ESP");
		print_kv("uefi:", buf);
		if (loaders && *loaders)
			print_kv("efi loaders:", loaders);
	}
	if (d->whole.probe.type || (d->whole.mountpoints && d->whole.mountpoints[0]) ||
	    d->whole.swap || d->whole.holder) {
		/* no partition table but a file system, or the disk node itself in use */
		_cleanup_free_ char *use = usage_text(&d->whole), *space = space_text(&d->whole);
		const struct fs_report *w = &d->whole;
		size_t k;

		snprintf(buf, sizeof(buf), "%s", w->probe.type ? w->probe.type : "");
		if (w->probe.label) {
			k = strlen(buf);
			snprintf(buf + k, sizeof(buf) - k, " \"%s\"", w->probe.label);
		}
		if (w->have_space) {
			k = strlen(buf);
			snprintf(buf + k, sizeof(buf) - k, "%sused %s", k ? ", " : "", space);
		}
		if (strcmp(use, "-") != 0) {
			k = strlen(buf);
			snprintf(buf + k, sizeof(buf) - k, "%s%s%s", k ? ", " : "",
				 w->mountpoints && w->mountpoints[0] ? "mounted on " : "", use);
		}
		print_kv("whole disk:", buf);
	}
	if (d->in_use_reason)
		print_kv("in use:", d->in_use_reason);
}

static int print_text(struct disk_report **l, size_t n)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			printf("\n");
		print_disk_header(l[i]);
		print_disk_details(l[i]);
		if (l[i]->n_parts > 0) {
			if (arg_long)
				printf("\n");
			r = print_partitions(l[i]);
			if (r >= 0 && arg_long)
				r = print_partition_ids(l[i]);
			if (r < 0)
				return log_error_errno(r, "Failed to format the partition table: %m");
		}
	}
	if (n == 0)
		printf("No disks found.\n");
	return fflush(stdout) == 0 ? 0 : -errno;
}

/* --- the verb ------------------------------------------------------------- */

static void help(void)
{
	printf("Usage: imager disks [OPTIONS] [DEVICE]\n\n"
	       "Lists local disks (or one DEVICE: a whole-disk block device or a disk-image\n"
	       "file), their partitions, file systems, usage, and whether they boot under BIOS\n"
	       "and/or UEFI. Reads only.\n\n"
	       "Options:\n"
	       "  -j, --json   machine-readable output (fields: docs/cli-disks.md)\n"
	       "  -l, --long   every detail (implied by DEVICE)\n"
	       "  -h, --help   this text\n\n"
	       "Exit codes: 0 ok, 2 usage, 5 no such DEVICE, 6 permission denied,\n"
	       "7 DEVICE is not a disk (a partition, character device or non-image file).\n");
}

static int parse_argv(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "long", no_argument, NULL, 'l' },
		{}
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hjl", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return 0;
		case 'j':
			arg_json = true;
			break;
		case 'l':
			arg_long = true;
			break;
		default:
			return usage_error("disks", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind > 1)
		return usage_error("disks", "at most one DEVICE");
	return 1;
}

static int open_one(const char *path, struct blkdev **ret)
{
	int r = blkdev_new_from_path(path, ret);

	switch (r) {
	case 0:
		return 0;
	case -ENOENT:
		return log_error_errno(r, "'%s' does not exist.", path);
	case -EACCES:
	case -EPERM:
		return log_error_errno(r, "Cannot open '%s': %m.", path);
	case -EMEDIUMTYPE:
		return log_error_errno(r, "'%s' is not a disk image (no partition table or file "
				       "system, or not a whole number of sectors).", path);
	case -ENOTBLK: {
		struct stat st;

		if (stat(path, &st) == 0 && S_ISBLK(st.st_mode))
			return log_error_errno(r, "'%s' is a partition, not a whole disk.", path);
		if (stat(path, &st) == 0 && S_ISCHR(st.st_mode))
			return log_error_errno(r, "'%s' is a character device, not a disk.", path);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return log_error_errno(r, "'%s' is a directory, not a disk.", path);
		return log_error_errno(r, "'%s' is not a disk.", path);
	}
	case -ENODEV:
		return log_error_errno(r, "'%s' has no medium (an unattached loop device or an "
				       "empty drive).", path);
	default:
		return log_error_errno(r, "Cannot look at '%s': %m", path);
	}
}

int verb_disks(int argc, char *argv[])
{
	struct blkdev **devs = NULL;
	struct disk_report **reports = NULL;
	size_t n = 0;
	int r;

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;
	(void) setlocale(LC_CTYPE, "");

	if (optind < argc) {
		struct blkdev *d;

		r = open_one(argv[optind], &d);
		if (r < 0)
			return r;
		devs = calloc(2, sizeof(*devs));
		if (!devs) {
			blkdev_free(d);
			return log_oom();
		}
		devs[0] = d;
		n = 1;
		arg_long = true;
	} else {
		r = blkdev_enumerate(&devs);
		if (r < 0)
			return log_error_errno(r, "Failed to enumerate disks: %m");
		n = (size_t) r;
	}

	reports = calloc(n + 1, sizeof(*reports));
	if (!reports) {
		r = log_oom();
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		r = disk_report_new(TAKE_PTR(devs[i]), &reports[i]); /* the report owns it now */
		if (r < 0) {
			log_error_errno(r, "Failed to look at disks: %m");
			goto out;
		}
	}
	r = arg_json ? print_json(reports, n) : print_text(reports, n);
	if (r < 0)
		log_error_errno(r, "Failed to write the output: %m");
out:
	for (size_t i = 0; reports && i < n; i++)
		disk_report_free(reports[i]);
	free(reports);
	for (size_t i = 0; devs && i < n; i++)
		blkdev_free(devs[i]);
	free(devs);
	return r < 0 ? r : IMAGER_EXIT_OK;
}
