/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Disks from sysfs (identity, geometry, transport), /proc/self/mountinfo,
 * /proc/swaps and sysfs holders (in-use state), and libblkid (is a regular
 * file a disk image? which whole disk holds a dev_t?). Nothing here writes to
 * a disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/fs.h>

#include <blkid.h>

#include "imager/blkdev.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

/* sysfs "size" and "start" are always in 512-byte units, whatever the device's sector size */
#define SYSFS_SECTOR_BYTES 512u
/* the smallest logical sector size there is; image files default to it */
#define MIN_SECTOR_BYTES 512u
/* 4Kn GPT images carry their header in LBA 1 = byte 4096 */
#define SECTOR_BYTES_4KN 4096u
/* a sysfs attribute is one short line; vpd pages are at most 255 + 4 bytes for page 0x80 */
#define SYSFS_ATTR_MAX 4096u
/* bounds for /proc files read whole */
#define PROC_FILE_MAX (16u * 1024 * 1024)
/* dm on md on dm ...: deeper stacks than this are not followed */
#define SLAVES_DEPTH_MAX 8

DEFINE_CLEANUP(DIR *, closedir)
DEFINE_CLEANUP(blkid_probe, blkid_free_probe)
DEFINE_CLEANUP(struct blkdev *, blkdev_free)

/* --- small helpers -------------------------------------------------------- */

static int strv_push(char ***l, size_t *n, char *s)
{
	char **t;

	if (!s)
		return -ENOMEM;
	t = realloc(*l, (*n + 2) * sizeof(char *));
	if (!t) {
		free(s);
		return -ENOMEM;
	}
	t[(*n)++] = s;
	t[*n] = NULL;
	*l = t;
	return 0;
}

static int strv_contains(char **l, const char *s)
{
	for (char **p = l; p && *p; p++)
		if (strcmp(*p, s) == 0)
			return 1;
	return 0;
}

static char **strv_new_empty(void)
{
	return calloc(1, sizeof(char *));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Reads DIR/ATTR, strips surrounding whitespace. -ENOENT if missing, -ENODATA if empty. */
static int sysfs_read(const char *dir, const char *attr, char **ret)
{
	_cleanup_free_ char *path = NULL, *raw = NULL;
	char *s;
	int r;

	if (asprintf(&path, "%s/%s", dir, attr) < 0)
		return -ENOMEM;
	r = read_file_at(AT_FDCWD, path, SYSFS_ATTR_MAX, &raw, NULL);
	if (r < 0)
		return r;
	s = strdup_strip(raw);
	if (!s)
		return -ENOMEM;
	if (!*s) {
		free(s);
		return -ENODATA;
	}
	*ret = s;
	return 0;
}

static int sysfs_read_u64(const char *dir, const char *attr, uint64_t *ret)
{
	_cleanup_free_ char *s = NULL;
	int r = sysfs_read(dir, attr, &s);

	if (r < 0)
		return r;
	return safe_atou64(s, ret);
}

static bool sysfs_read_bool(const char *dir, const char *attr)
{
	uint64_t v;

	return sysfs_read_u64(dir, attr, &v) >= 0 && v != 0;
}

static bool sysfs_exists(const char *dir, const char *attr)
{
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s/%s", dir, attr) < 0)
		return false;
	return access(path, F_OK) == 0;
}

/* Makes a printable string: control characters become '?'. */
static void sanitize(char *s)
{
	for (; s && *s; s++)
		if ((unsigned char) *s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* "/sys/dev/block/MAJ:MIN" resolved, or -errno. */
static int sysfs_dir_of_devnum(dev_t devnum, char **ret)
{
	char link[64];
	char *p;

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(devnum), minor(devnum));
	p = realpath(link, NULL);
	if (!p)
		return -errno;
	*ret = p;
	return 0;
}

static int parse_devnum(const char *s, dev_t *ret)
{
	unsigned ma, mi;

	if (!s || sscanf(s, "%u:%u", &ma, &mi) != 2)
		return -EINVAL;
	*ret = makedev(ma, mi);
	return 0;
}

/* --- identity ------------------------------------------------------------- */

/* SCSI VPD page 0x80 (unit serial number): 4-byte header, byte 3 = length (SPC-4 7.8.15). */
static char *vpd_pg80_serial(const char *devdir)
{
	_cleanup_free_ char *path = NULL, *buf = NULL;
	size_t n, len;

	if (asprintf(&path, "%s/vpd_pg80", devdir) < 0)
		return NULL;
	if (read_file_at(AT_FDCWD, path, SYSFS_ATTR_MAX, &buf, &n) < 0 || n < 4)
		return NULL;
	if ((uint8_t) buf[1] != 0x80)
		return NULL;
	len = MIN((size_t) (uint8_t) buf[3], n - 4);
	buf[4 + len] = 0;
	char *s = strdup_strip(buf + 4);
	if (s && !*s) {
		free(s);
		return NULL;
	}
	return s;
}

/* The USB device above @devpath (the one with idVendor), or NULL. */
static char *usb_device_dir(const char *devpath)
{
	_cleanup_free_ char *p = strdup(devpath);
	char *slash;

	if (!p)
		return NULL;
	while ((slash = strrchr(p, '/')) && slash != p) {
		if (sysfs_exists(p, "idVendor") && sysfs_exists(p, "serial"))
			return TAKE_PTR(p);
		*slash = 0;
	}
	return NULL;
}

static bool path_has_component_prefix(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = path; (p = strchr(p, '/')); p++)
		if (strncmp(p + 1, prefix, n) == 0)
			return true;
	return false;
}

/*
 * Transport from where the disk sits in the sysfs device tree: the USB and
 * ATA layers show up as path components above the SCSI disk, virtio-blk as a
 * virtio bus device, NVMe and MMC by their class.
 */
static const char *transport_of(const char *sysname, const char *blockdir, const char *devdir)
{
	_cleanup_free_ char *subsys = NULL, *sub = NULL;

	if (startswith(sysname, "loop"))
		return "loop";
	if (path_has_component_prefix(blockdir, "usb"))
		return "usb";
	if (startswith(sysname, "nvme") || strstr(blockdir, "/nvme/"))
		return "nvme";
	if (startswith(sysname, "mmcblk") || strstr(blockdir, "/mmc_host/"))
		return "mmc";
	if (devdir && asprintf(&sub, "%s/subsystem", devdir) >= 0 && (subsys = realpath(sub, NULL))) {
		const char *b = strrchr(subsys, '/');
		if (b && strcmp(b, "/virtio") == 0)
			return "virtio";
	}
	if (path_has_component_prefix(blockdir, "ata"))
		return "sata";
	if (path_has_component_prefix(blockdir, "end_device-") || strstr(blockdir, "/sas_"))
		return "sas";
	if (devdir && sysfs_exists(devdir, "scsi_level"))
		return "scsi";
	return NULL;
}

static void fill_identity(struct blkdev *d, const char *blockdir)
{
	_cleanup_free_ char *devdir = NULL, *wwid = NULL;
	const char *t;

	if (asprintf(&devdir, "%s/device", blockdir) < 0)
		devdir = NULL;
	else if (access(devdir, F_OK) < 0) {
		free(devdir);
		devdir = NULL;
	}

	t = transport_of(d->sysname, blockdir, devdir);
	d->transport = t ? strdup(t) : NULL;

	if (devdir) {
		(void) sysfs_read(devdir, "model", &d->model);
		if (!d->model)
			(void) sysfs_read(devdir, "name", &d->model); /* MMC */
		/* virtio/PCI "vendor" is a numeric id, not a name: only SCSI has a vendor string */
		if (sysfs_exists(devdir, "scsi_level"))
			(void) sysfs_read(devdir, "vendor", &d->vendor);
	}

	/* serial: virtio-blk and some others on the block device; NVMe/MMC on the
	 * controller; SCSI (SATA, SAS) in VPD page 0x80; USB on the USB device */
	(void) sysfs_read(blockdir, "serial", &d->serial);
	if (!d->serial && devdir && streq_ptr(d->transport, "usb")) {
		_cleanup_free_ char *usb = usb_device_dir(devdir);
		if (usb)
			(void) sysfs_read(usb, "serial", &d->serial);
	}
	if (!d->serial && devdir)
		(void) sysfs_read(devdir, "serial", &d->serial);
	if (!d->serial && devdir)
		d->serial = vpd_pg80_serial(devdir);

	/* WWN: NVMe namespace wwid, SCSI device wwid; t10./nvme. vendor strings are not WWNs */
	if (sysfs_read(blockdir, "wwid", &wwid) < 0 && devdir)
		(void) sysfs_read(devdir, "wwid", &wwid);
	if (wwid && (startswith(wwid, "naa.") || startswith(wwid, "eui.") || startswith(wwid, "uuid.")))
		d->wwn = TAKE_PTR(wwid);

	sanitize(d->model);
	sanitize(d->vendor);
	sanitize(d->serial);
	sanitize(d->wwn);
}

/* Symlinks in /dev/disk/<kind> pointing at @node, as full paths, sorted. */
static int stable_names(const char *kind, const char *node, char ***ret)
{
	_cleanup_(closedirp) DIR *dir = NULL;
	_cleanup_strv_free_ char **l = strv_new_empty();
	_cleanup_free_ char *dirpath = NULL;
	size_t n = 0;
	struct dirent *de;
	int r;

	if (!l)
		return -ENOMEM;
	if (asprintf(&dirpath, "/dev/disk/%s", kind) < 0)
		return -ENOMEM;
	dir = opendir(dirpath);
	if (dir) {
		while ((de = readdir(dir))) {
			_cleanup_free_ char *p = NULL, *target = NULL;

			if (de->d_name[0] == '.')
				continue;
			if (asprintf(&p, "%s/%s", dirpath, de->d_name) < 0)
				return -ENOMEM;
			target = realpath(p, NULL);
			if (!target || strcmp(target, node) != 0)
				continue;
			r = strv_push(&l, &n, TAKE_PTR(p));
			if (r < 0)
				return r;
		}
		qsort(l, n, sizeof(char *), cmp_str);
	}
	*ret = TAKE_PTR(l);
	return 0;
}

/* --- the system disk -------------------------------------------------------- */

/* Decodes mountinfo/swaps octal escapes (\040) in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char) (((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
			p += 3;
		} else
			*w++ = *p;
	}
	*w = 0;
}

struct mount_entry {
	dev_t devnum;
	char *mountpoint;
	char *source;
};

struct mount_table {
	struct mount_entry *e;
	size_t n;
};

static void mount_table_done(struct mount_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].mountpoint);
		free(t->e[i].source);
	}
	free(t->e);
	*t = (struct mount_table){};
}

static int mount_table_load(struct mount_table *ret)
{
	_cleanup_free_ char *buf = NULL;
	struct mount_table t = {};
	char *line, *save = NULL;
	int r;

	r = read_file_at(AT_FDCWD, "/proc/self/mountinfo", PROC_FILE_MAX, &buf, NULL);
	if (r < 0)
		return r;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
		char *f[5], *save2 = NULL, *dash, *source = NULL;
		struct mount_entry *ne;
		dev_t devnum;
		int i;

		dash = strstr(line, " - ");
		if (dash) {
			char *save3 = NULL;
			*dash = 0;
			(void) strtok_r(dash + 3, " ", &save3);     /* fstype */
			source = strtok_r(NULL, " ", &save3);
		}
		for (i = 0; i < 5; i++) {
			f[i] = strtok_r(i == 0 ? line : NULL, " ", &save2);
			if (!f[i])
				break;
		}
		if (i < 5 || parse_devnum(f[2], &devnum) < 0)
			continue;
		ne = realloc(t.e, (t.n + 1) * sizeof(*t.e));
		if (!ne) {
			mount_table_done(&t);
			return -ENOMEM;
		}
		t.e = ne;
		unescape_octal(f[4]);
		if (source)
			unescape_octal(source);
		t.e[t.n] = (struct mount_entry){ devnum, strdup(f[4]), source ? strdup(source) : NULL };
		if (!t.e[t.n].mountpoint || (source && !t.e[t.n].source)) {
			t.n++;
			mount_table_done(&t);
			return -ENOMEM;
		}
		t.n++;
	}
	*ret = t;
	return 0;
}

/* The block device behind "/": its dev_t, or a /dev source for anonymous-dev file systems (btrfs). */
static int root_devnum(dev_t *ret)
{
	_cleanup_(mount_table_done) struct mount_table t = {};
	const struct mount_entry *root = NULL;
	int r;

	r = mount_table_load(&t);
	if (r < 0)
		return r;
	for (size_t i = 0; i < t.n; i++)
		if (strcmp(t.e[i].mountpoint, "/") == 0)
			root = &t.e[i]; /* the last one is on top */
	if (!root)
		return -ENOENT;
	if (major(root->devnum) != 0) {
		*ret = root->devnum;
		return 0;
	}
	if (root->source && startswith(root->source, "/dev/")) {
		struct stat st;
		if (stat(root->source, &st) == 0 && S_ISBLK(st.st_mode)) {
			*ret = st.st_rdev;
			return 0;
		}
	}
	return -ENODEV; /* tmpfs, overlay, NFS...: no local disk holds / */
}

/* Adds the whole disks under the block device at sysfs dir @dir to @disks, following dm/md slaves. */
static int collect_whole_disks(const char *dir, unsigned depth, char ***disks, size_t *n)
{
	_cleanup_free_ char *slaves = NULL, *whole = NULL;
	_cleanup_(closedirp) DIR *sd = NULL;
	struct dirent *de;
	bool any = false;
	int r;

	if (depth > SLAVES_DEPTH_MAX)
		return 0;
	if (asprintf(&slaves, "%s/slaves", dir) < 0)
		return -ENOMEM;
	sd = opendir(slaves);
	while (sd && (de = readdir(sd))) {
		_cleanup_free_ char *link = NULL, *target = NULL;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&link, "%s/%s", slaves, de->d_name) < 0)
			return -ENOMEM;
		target = realpath(link, NULL);
		if (!target)
			continue;
		any = true;
		r = collect_whole_disks(target, depth + 1, disks, n);
		if (r < 0)
			return r;
	}
	if (any)
		return 0;

	/* a partition's parent directory is its disk */
	if (sysfs_exists(dir, "partition")) {
		char *slash;
		whole = strdup(dir);
		if (!whole)
			return -ENOMEM;
		slash = strrchr(whole, '/');
		if (slash)
			*slash = 0;
		dir = whole;
	}
	const char *name = strrchr(dir, '/');
	name = name ? name + 1 : dir;
	if (strv_contains(*disks, name))
		return 0;
	return strv_push(disks, n, strdup(name));
}

/* Sysnames of the whole disks holding "/" (more than one for md/dm across disks). */
static int system_disks(char ***ret)
{
	_cleanup_strv_free_ char **l = strv_new_empty();
	_cleanup_free_ char *dir = NULL;
	size_t n = 0;
	dev_t devnum;
	int r;

	if (!l)
		return -ENOMEM;
	r = root_devnum(&devnum);
	if (r >= 0 && sysfs_dir_of_devnum(devnum, &dir) >= 0) {
		r = collect_whole_disks(dir, 0, &l, &n);
		if (r < 0)
			return r;
	} else if (r >= 0) {
		/* no sysfs: ask libblkid for the whole disk */
		char name[PATH_MAX];
		dev_t whole;
		if (blkid_devno_to_wholedisk(devnum, name, sizeof(name), &whole) == 0) {
			r = strv_push(&l, &n, strdup(name));
			if (r < 0)
				return r;
		}
	} else
		log_debug_errno(r, "No block device holds /: %m");
	*ret = TAKE_PTR(l);
	return 0;
}

/* --- construction ------------------------------------------------------------ */

struct blkdev *blkdev_free(struct blkdev *d)
{
	if (!d)
		return NULL;
	free(d->node);
	free(d->sysname);
	free(d->model);
	free(d->vendor);
	free(d->serial);
	free(d->wwn);
	free(d->transport);
	free(d->backing_file);
	strv_free(d->by_id);
	strv_free(d->by_path);
	free(d);
	return NULL;
}

void blkdev_list_free(struct blkdev **l)
{
	if (!l)
		return;
	for (struct blkdev **p = l; *p; p++)
		blkdev_free(*p);
	free(l);
}

/*
 * Builds a whole-disk blkdev from sysfs, without opening the device (so that
 * listing works for users who may not open disks). @sysdisks: the system disks.
 */
static int blkdev_from_sysfs(const char *blockdir, char **sysdisks, struct blkdev **ret)
{
	_cleanup_(blkdev_freep) struct blkdev *d = NULL;
	_cleanup_free_ char *devstr = NULL;
	const char *name;
	uint64_t v;
	int r;

	name = strrchr(blockdir, '/');
	name = name ? name + 1 : blockdir;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->sysname = strdup(name);
	if (asprintf(&d->node, "/dev/%s", name) < 0)
		d->node = NULL;
	if (!d->sysname || !d->node)
		return -ENOMEM;

	r = sysfs_read(blockdir, "dev", &devstr);
	if (r < 0)
		return r;
	r = parse_devnum(devstr, &d->devnum);
	if (r < 0)
		return r;

	if (sysfs_read_u64(blockdir, "size", &v) >= 0) {
		if (v > UINT64_MAX / SYSFS_SECTOR_BYTES)
			return -EOVERFLOW;
		d->size_bytes = v * SYSFS_SECTOR_BYTES;
	}
	d->logical_sector_bytes = MIN_SECTOR_BYTES;
	d->physical_sector_bytes = MIN_SECTOR_BYTES;
	if (sysfs_read_u64(blockdir, "queue/logical_block_size", &v) >= 0 && v > 0 && v <= UINT32_MAX)
		d->logical_sector_bytes = (uint32_t) v;
	if (sysfs_read_u64(blockdir, "queue/physical_block_size", &v) >= 0 && v > 0 &&
	    v <= UINT32_MAX)
		d->physical_sector_bytes = (uint32_t) v;

	d->rotational = sysfs_read_bool(blockdir, "queue/rotational");
	d->removable = sysfs_read_bool(blockdir, "removable");
	d->read_only = sysfs_read_bool(blockdir, "ro");

	if (startswith(name, "loop")) {
		r = sysfs_read(blockdir, "loop/backing_file", &d->backing_file);
		if (r < 0 && r != -ENOENT && r != -ENODATA)
			return r;
		/* the kernel says rotational=1 for loop devices; the file system decides, not us */
	}

	fill_identity(d, blockdir);

	r = stable_names("by-id", d->node, &d->by_id);
	if (r < 0)
		return r;
	r = stable_names("by-path", d->node, &d->by_path);
	if (r < 0)
		return r;

	d->system_disk = strv_contains(sysdisks, name);
	*ret = TAKE_PTR(d);
	return 0;
}

/* Whether sector 0 (and the last sector) of a regular file are all zero: a blank disk image. */
static int file_looks_blank(int fd, uint64_t size_bytes)
{
	uint8_t buf[MIN_SECTOR_BYTES];
	uint64_t offs[2] = { 0, size_bytes - sizeof(buf) };
	int r;

	for (size_t k = 0; k < ELEMENTSOF(offs); k++) {
		r = pread_all(fd, buf, sizeof(buf), offs[k]);
		if (r < 0)
			return r;
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i])
				return 0;
	}
	return 1;
}

/* libblkid: does the file carry a partition table or a file-system/raid/swap signature? */
static int file_has_signature(int fd)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();
	int r;

	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, 0, 0) < 0)
		return -EIO;
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_enable_superblocks(pr, 1);
	r = blkid_do_safeprobe(pr);
	if (r == -2)
		return 1; /* ambivalent: several signatures, still a disk */
	if (r < 0)
		return -EIO;
	return r == 0;
}

/* A GPT header signature at @offset_bytes (LBA 1 is at the sector size). */
static bool gpt_header_at(int fd, uint64_t offset_bytes)
{
	char sig[8];

	return pread_all(fd, sig, sizeof(sig), offset_bytes) >= 0 &&
	       memcmp(sig, "EFI PART", sizeof(sig)) == 0;
}

static int blkdev_from_file(const char *path, int fd, const struct stat *st, bool check_image,
			    struct blkdev **ret)
{
	_cleanup_(blkdev_freep) struct blkdev *d = NULL;
	uint64_t size_bytes = st ? (uint64_t) st->st_size : 0;
	int r;

	if (check_image) {
		if (size_bytes == 0 || size_bytes % MIN_SECTOR_BYTES != 0)
			return -EMEDIUMTYPE;
		r = file_has_signature(fd);
		if (r == 0)
			r = file_looks_blank(fd, size_bytes);
		if (r < 0)
			return r;
		if (r == 0)
			return -EMEDIUMTYPE;
	}

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->node = strdup(path);
	d->transport = strdup("file");
	d->by_id = strv_new_empty();
	d->by_path = strv_new_empty();
	if (!d->node || !d->transport || !d->by_id || !d->by_path)
		return -ENOMEM;
	d->is_file = true;
	d->size_bytes = size_bytes;
	d->logical_sector_bytes = d->physical_sector_bytes = MIN_SECTOR_BYTES;
	if (fd >= 0 && size_bytes >= 2 * SECTOR_BYTES_4KN && size_bytes % SECTOR_BYTES_4KN == 0 &&
	    !gpt_header_at(fd, MIN_SECTOR_BYTES) &&
	    (gpt_header_at(fd, SECTOR_BYTES_4KN) ||
	     /* primary damaged: the backup header sits in the last LBA */
	     (!gpt_header_at(fd, size_bytes - MIN_SECTOR_BYTES) &&
	      gpt_header_at(fd, size_bytes - SECTOR_BYTES_4KN))))
		d->logical_sector_bytes = d->physical_sector_bytes = SECTOR_BYTES_4KN;
	if (st && access(path, W_OK) < 0 && errno == EACCES)
		d->read_only = true;
	*ret = TAKE_PTR(d);
	return 0;
}

static int blkdev_from_block_node(const char *path, const struct stat *st, struct blkdev **ret)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_strv_free_ char **sysdisks = NULL;
	_cleanup_(blkdev_freep) struct blkdev *d = NULL;
	int r;

	r = sysfs_dir_of_devnum(st->st_rdev, &dir);
	if (r < 0)
		return r == -ENOENT ? -ENODEV : r;
	if (sysfs_exists(dir, "partition"))
		return -ENOTBLK;
	r = system_disks(&sysdisks);
	if (r < 0)
		return r;
	r = blkdev_from_sysfs(dir, sysdisks, &d);
	if (r < 0)
		return r;
	/* a name we did not make up ourselves (/dev/disk/by-id/..., a symlink) stays as given
	 * only if /dev/<sysname> is not this device */
	struct stat st2;
	if (stat(d->node, &st2) < 0 || !S_ISBLK(st2.st_mode) || st2.st_rdev != st->st_rdev) {
		free(d->node);
		d->node = strdup(path);
		if (!d->node)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(d);
	return 0;
}

static int blkdev_new_internal(const char *path, bool target, bool allow_missing,
			       struct blkdev **ret)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_(blkdev_freep) struct blkdev *d = NULL;
	struct stat st;
	int r;

	if (!path || !*path)
		return -EINVAL;
	if (stat(path, &st) < 0) {
		r = -errno;
		if (r == -ENOENT && target && allow_missing) {
			r = blkdev_from_file(path, -EBADF, NULL, false, &d);
			if (r < 0)
				return r;
			*ret = TAKE_PTR(d);
			return 0;
		}
		return r;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return -ENOTBLK;

	/* check that we may read it: the one question a later open must not surprise us with */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;

	if (S_ISREG(st.st_mode))
		r = blkdev_from_file(path, fd, &st, !target, &d);
	else {
		r = blkdev_from_block_node(path, &st, &d);
		if (r >= 0) {
			uint64_t bytes;
			int ss = 0, pss = 0;

			/* the open device is the authority; sysfs only fills in the rest */
			if (ioctl(fd, BLKGETSIZE64, &bytes) == 0)
				d->size_bytes = bytes;
			if (ioctl(fd, BLKSSZGET, &ss) == 0 && ss > 0)
				d->logical_sector_bytes = (uint32_t) ss;
			if (ioctl(fd, BLKPBSZGET, &pss) == 0 && pss > 0)
				d->physical_sector_bytes = (uint32_t) pss;
			if (d->size_bytes == 0)
				r = -ENODEV; /* unattached loop device, drive without medium */
		}
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(d);
	return 0;
}

int blkdev_new_from_path(const char *path, struct blkdev **ret)
{
	return blkdev_new_internal(path, false, false, ret);
}

int blkdev_new_target(const char *path, bool allow_missing, struct blkdev **ret)
{
	return blkdev_new_internal(path, true, allow_missing, ret);
}

static int cmp_blkdev(const void *a, const void *b)
{
	const struct blkdev *x = *(struct blkdev *const *) a, *y = *(struct blkdev *const *) b;

	return strverscmp(x->node, y->node);
}

/* Devices that are not disks one would image: RAM disks, stacked virtual devices, empty loops. */
static bool hidden_device(const char *name, const char *blockdir)
{
	uint64_t size;

	if (startswith(name, "ram") || startswith(name, "zram"))
		return true;
	if (sysfs_read_bool(blockdir, "hidden")) /* NVMe multipath paths */
		return true;
	/* dm, md, nbd...: virtual devices built on other disks (loop is shown, it is what tests use) */
	if (strstr(blockdir, "/devices/virtual/") && !startswith(name, "loop"))
		return true;
	if (startswith(name, "loop") && !sysfs_exists(blockdir, "loop/backing_file"))
		return true;
	if (sysfs_read_u64(blockdir, "size", &size) < 0 || size == 0)
		return true; /* unattached loop, card reader without a card */
	return false;
}

int blkdev_enumerate(struct blkdev ***ret)
{
	_cleanup_(closedirp) DIR *dir = NULL;
	_cleanup_strv_free_ char **sysdisks = NULL;
	struct blkdev **l = NULL;
	size_t n = 0;
	struct dirent *de;
	int r;

	r = system_disks(&sysdisks);
	if (r < 0)
		return r;
	dir = opendir("/sys/block");
	if (!dir)
		return -errno;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	while ((de = readdir(dir))) {
		_cleanup_free_ char *link = NULL, *blockdir = NULL;
		struct blkdev *d, **t;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&link, "/sys/block/%s", de->d_name) < 0) {
			r = -ENOMEM;
			goto fail;
		}
		blockdir = realpath(link, NULL);
		if (!blockdir || hidden_device(de->d_name, blockdir))
			continue;
		r = blkdev_from_sysfs(blockdir, sysdisks, &d);
		if (r < 0) {
			log_debug_errno(r, "Skipping '%s': %m", de->d_name);
			continue;
		}
		t = realloc(l, (n + 2) * sizeof(*l));
		if (!t) {
			blkdev_free(d);
			r = -ENOMEM;
			goto fail;
		}
		l = t;
		l[n++] = d;
		l[n] = NULL;
	}
	qsort(l, n, sizeof(*l), cmp_blkdev);
	if (n > INT_MAX)
		n = INT_MAX;
	*ret = l;
	return (int) n;
fail:
	blkdev_list_free(l);
	return r;
}

/* --- usage -------------------------------------------------------------------- */

/* sysfs dir of the partition of @d starting at @start_bytes; -ENOENT if the kernel has none there. */
static int partition_sysfs_dir(const struct blkdev *d, uint64_t start_bytes, char **ret)
{
	_cleanup_(closedirp) DIR *dir = NULL;
	_cleanup_free_ char *blockdir = NULL;
	struct dirent *de;

	if (sysfs_dir_of_devnum(d->devnum, &blockdir) < 0)
		return -ENOENT;
	if (start_bytes == 0) {
		*ret = TAKE_PTR(blockdir);
		return 0;
	}
	dir = opendir(blockdir);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		_cleanup_free_ char *p = NULL;
		uint64_t start;

		if (!startswith(de->d_name, d->sysname))
			continue;
		if (asprintf(&p, "%s/%s", blockdir, de->d_name) < 0)
			return -ENOMEM;
		if (!sysfs_exists(p, "partition"))
			continue;
		if (sysfs_read_u64(p, "start", &start) < 0 || start > UINT64_MAX / SYSFS_SECTOR_BYTES)
			continue;
		if (start * SYSFS_SECTOR_BYTES == start_bytes) {
			*ret = TAKE_PTR(p);
			return 0;
		}
	}
	return -ENOENT;
}

static int swap_has_devnum(dev_t devnum)
{
	_cleanup_free_ char *buf = NULL;
	char *line, *save = NULL;
	bool header = true;
	int r;

	r = read_file_at(AT_FDCWD, "/proc/swaps", PROC_FILE_MAX, &buf, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct stat st;
		char *sp;

		if (header) { /* "Filename Type Size Used Priority" */
			header = false;
			continue;
		}
		sp = strpbrk(line, " \t");
		if (sp)
			*sp = 0;
		unescape_octal(line);
		if (stat(line, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == devnum)
			return 1;
	}
	return 0;
}

/* First holder ("dm-0", "md127") of the block device at sysfs @dir, or NULL. */
static int first_holder(const char *dir, char **ret)
{
	_cleanup_free_ char *p = NULL;
	_cleanup_(closedirp) DIR *hd = NULL;
	_cleanup_strv_free_ char **l = strv_new_empty();
	size_t n = 0;
	struct dirent *de;
	int r;

	if (!l || asprintf(&p, "%s/holders", dir) < 0)
		return -ENOMEM;
	hd = opendir(p);
	while (hd && (de = readdir(hd))) {
		if (de->d_name[0] == '.')
			continue;
		r = strv_push(&l, &n, strdup(de->d_name));
		if (r < 0)
			return r;
	}
	if (n == 0) {
		*ret = NULL;
		return 0;
	}
	qsort(l, n, sizeof(char *), cmp_str);
	*ret = strdup(l[0]);
	return *ret ? 0 : -ENOMEM;
}

static int usage_of_dir(const char *dir, const struct mount_table *mt, char ***ret_mountpoints,
			bool *ret_swap, char **ret_holder)
{
	_cleanup_strv_free_ char **mps = strv_new_empty();
	_cleanup_free_ char *devstr = NULL, *holder = NULL;
	size_t n = 0;
	dev_t devnum;
	int r, swap;

	if (!mps)
		return -ENOMEM;
	r = sysfs_read(dir, "dev", &devstr);
	if (r < 0)
		return r;
	r = parse_devnum(devstr, &devnum);
	if (r < 0)
		return r;
	for (size_t i = 0; i < mt->n; i++) {
		if (mt->e[i].devnum != devnum || strv_contains(mps, mt->e[i].mountpoint))
			continue;
		r = strv_push(&mps, &n, strdup(mt->e[i].mountpoint));
		if (r < 0)
			return r;
	}
	swap = swap_has_devnum(devnum);
	if (swap < 0)
		return swap;
	r = first_holder(dir, &holder);
	if (r < 0)
		return r;
	*ret_mountpoints = TAKE_PTR(mps);
	*ret_swap = swap > 0;
	*ret_holder = TAKE_PTR(holder);
	return 0;
}

int blkdev_partition_node(const struct blkdev *d, uint64_t start_bytes, char **ret)
{
	_cleanup_free_ char *dir = NULL;
	const char *name;
	char *node;
	int r;

	if (d->is_file || start_bytes == 0)
		return -ENOENT;
	r = partition_sysfs_dir(d, start_bytes, &dir);
	if (r < 0)
		return r;
	name = strrchr(dir, '/');
	if (asprintf(&node, "/dev/%s", name ? name + 1 : dir) < 0)
		return -ENOMEM;
	*ret = node;
	return 0;
}

int blkdev_partition_usage(const struct blkdev *d, uint64_t start_bytes, char ***ret_mountpoints,
			   bool *ret_swap, char **ret_holder)
{
	_cleanup_(mount_table_done) struct mount_table mt = {};
	_cleanup_free_ char *dir = NULL;
	int r;

	if (d->is_file || partition_sysfs_dir(d, start_bytes, &dir) < 0) {
		/* an image file, or no kernel partition there: nothing can use it */
		char **empty = strv_new_empty();
		if (!empty)
			return -ENOMEM;
		*ret_mountpoints = empty;
		*ret_swap = false;
		*ret_holder = NULL;
		return 0;
	}
	r = mount_table_load(&mt);
	if (r < 0)
		return r;
	return usage_of_dir(dir, &mt, ret_mountpoints, ret_swap, ret_holder);
}

static int describe_usage(const char *dir, const char *name, const struct mount_table *mt,
			  char **ret_reason)
{
	_cleanup_strv_free_ char **mps = NULL;
	_cleanup_free_ char *holder = NULL;
	bool swap;
	int r;

	r = usage_of_dir(dir, mt, &mps, &swap, &holder);
	if (r < 0)
		return r;
	if (mps[0])
		r = asprintf(ret_reason, "/dev/%s is mounted on %s", name, mps[0]);
	else if (swap)
		r = asprintf(ret_reason, "/dev/%s is an active swap area", name);
	else if (holder)
		r = asprintf(ret_reason, "/dev/%s is held by %s", name, holder);
	else
		return 0;
	return r < 0 ? -ENOMEM : 1;
}

/* A loop device whose backing file is @path (same inode), or 0. */
static int file_attached_to_loop(const char *path, char **ret_reason)
{
	_cleanup_(closedirp) DIR *dir = opendir("/sys/block");
	struct dirent *de;
	struct stat st;

	if (!dir || stat(path, &st) < 0)
		return 0;
	while ((de = readdir(dir))) {
		_cleanup_free_ char *bd = NULL, *bf = NULL;
		struct stat st2;

		if (!startswith(de->d_name, "loop"))
			continue;
		if (asprintf(&bd, "/sys/block/%s", de->d_name) < 0)
			return -ENOMEM;
		if (sysfs_read(bd, "loop/backing_file", &bf) < 0)
			continue;
		if (stat(bf, &st2) == 0 && st2.st_dev == st.st_dev && st2.st_ino == st.st_ino)
			return asprintf(ret_reason, "'%s' is attached to /dev/%s", path,
					de->d_name) < 0 ? -ENOMEM : 1;
	}
	return 0;
}

int blkdev_in_use(const struct blkdev *d, char **ret_reason)
{
	_cleanup_(mount_table_done) struct mount_table mt = {};
	_cleanup_(closedirp) DIR *dir = NULL;
	_cleanup_free_ char *blockdir = NULL, *reason = NULL;
	struct dirent *de;
	int r;

	if (d->is_file) {
		r = file_attached_to_loop(d->node, &reason);
		if (r > 0)
			*ret_reason = TAKE_PTR(reason);
		return r;
	}
	r = sysfs_dir_of_devnum(d->devnum, &blockdir);
	if (r < 0)
		return r;
	r = mount_table_load(&mt);
	if (r < 0)
		return r;
	r = describe_usage(blockdir, d->sysname, &mt, &reason);
	if (r != 0)
		goto out;
	dir = opendir(blockdir);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		_cleanup_free_ char *p = NULL;

		if (!startswith(de->d_name, d->sysname))
			continue;
		if (asprintf(&p, "%s/%s", blockdir, de->d_name) < 0)
			return -ENOMEM;
		if (!sysfs_exists(p, "partition"))
			continue;
		r = describe_usage(p, de->d_name, &mt, &reason);
		if (r != 0)
			goto out;
	}
	return 0;
out:
	if (r > 0)
		*ret_reason = TAKE_PTR(reason);
	return r;
}

int blkdev_open(const struct blkdev *d, int flags, int *ret_fd)
{
	int fd;

	if (d->is_file)
		fd = open(d->node, flags | O_CLOEXEC | O_NOCTTY, 0644);
	else if ((flags & O_ACCMODE) != O_RDONLY)
		fd = open(d->node, O_RDWR | O_EXCL | O_CLOEXEC | O_NOCTTY);
	else
		fd = open(d->node, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}
