/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A bounds-checked FAT12/16/32 reader, after Microsoft's "FAT: General
 * Overview of On-Disk Format" (fatgen103): BPB checks, FAT type by cluster
 * count, cluster chains with loop detection, long file names (VFAT).
 * Everything read from the disk is checked before it is used as a size,
 * an offset or a loop bound.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "imager/fatfs.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"

/* the BPB lives in the first 512 bytes whatever the sector size */
#define FAT_BOOT_SECTOR_BYTES 512
#define FAT_DIRENT_BYTES 32
#define FAT_ATTR_VOLUME_ID 0x08
#define FAT_ATTR_DIRECTORY 0x10
#define FAT_ATTR_LFN 0x0F /* read-only | hidden | system | volume id */
#define FAT_LFN_LAST 0x40
#define FAT_LFN_CHARS 13 /* UTF-16 units per LFN entry */
#define FAT_LFN_MAX 255  /* characters in a long name */
#define FAT_DIR_ENTRIES_MAX 65536 /* fatgen103: a directory holds at most 65536 entries */
#define FAT_CLUSTER_BYTES_MAX (2u * 1024 * 1024)
#define FAT_WINDOW_BYTES (64u * 1024) /* FAT entries are read through this cache */
#define FAT_PATH_DEPTH_MAX 64

/* fatgen103 "FAT Type Determination": the only correct way, by cluster count */
#define FAT12_CLUSTERS_MAX 4084
#define FAT16_CLUSTERS_MAX 65524
#define FAT32_CLUSTERS_MAX 0x0FFFFFF4u /* cluster numbers 2..0x0FFFFFF5 */

struct fatfs {
	int fd;
	uint64_t offset_bytes;
	uint64_t region_bytes;

	unsigned fat_bits;
	uint32_t sector_bytes;
	uint32_t cluster_sectors;
	uint32_t reserved_sectors;
	uint32_t n_fats;
	uint32_t root_entries;
	uint64_t total_sectors;
	uint64_t fat_sectors;
	uint64_t root_dir_sectors;
	uint64_t first_data_sector;
	uint32_t n_clusters; /* data clusters, numbered 2..n_clusters+1 */
	uint32_t root_cluster;
	uint32_t active_fat;
	uint64_t fat_bytes; /* bytes of one FAT that hold entries */

	char label[12];
	uint32_t volume_id;

	/* cache over the active FAT */
	uint8_t *window;
	uint64_t window_start; /* byte offset within the FAT */
	size_t window_len;
};

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
	       ((uint32_t) p[3] << 24);
}

struct fatfs *fatfs_free(struct fatfs *fs)
{
	if (!fs)
		return NULL;
	free(fs->window);
	free(fs);
	return NULL;
}
DEFINE_CLEANUP(struct fatfs *, fatfs_free)

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static uint32_t eoc_min(const struct fatfs *fs)
{
	return fs->fat_bits == 12 ? 0xFF8 : fs->fat_bits == 16 ? 0xFFF8 : 0x0FFFFFF8;
}

static uint32_t bad_cluster(const struct fatfs *fs)
{
	return fs->fat_bits == 12 ? 0xFF7 : fs->fat_bits == 16 ? 0xFFF7 : 0x0FFFFFF7;
}

/* Reads FAT entry @n of the active FAT. */
static int fat_entry(struct fatfs *fs, uint32_t n, uint32_t *ret)
{
	uint64_t byte, start;
	size_t need = fs->fat_bits == 32 ? 4 : 2;
	const uint8_t *p;
	uint32_t v;
	int r;

	if (n > fs->n_clusters + 1)
		return -EBADMSG;
	byte = fs->fat_bits == 12 ? (uint64_t) n + n / 2 : (uint64_t) n * (fs->fat_bits / 8);
	if (byte + need > fs->fat_bytes)
		return -EBADMSG;
	if (!fs->window || byte < fs->window_start ||
	    byte + need > fs->window_start + fs->window_len) {
		if (!fs->window) {
			fs->window = malloc(FAT_WINDOW_BYTES);
			if (!fs->window)
				return -ENOMEM;
		}
		start = ALIGN_DOWN(byte, FAT_BOOT_SECTOR_BYTES);
		fs->window_len = (size_t) MIN((uint64_t) FAT_WINDOW_BYTES, fs->fat_bytes - start);
		fs->window_start = start;
		r = pread_all(fs->fd, fs->window, fs->window_len,
			      fs->offset_bytes +
				      ((uint64_t) fs->reserved_sectors +
				       (uint64_t) fs->active_fat * fs->fat_sectors) *
					      fs->sector_bytes +
				      start);
		if (r < 0) {
			fs->window_len = 0;
			return r;
		}
	}
	p = fs->window + (byte - fs->window_start);
	switch (fs->fat_bits) {
	case 12:
		v = le16(p);
		v = (n & 1) ? v >> 4 : v & 0xFFF;
		break;
	case 16:
		v = le16(p);
		break;
	default:
		v = le32(p) & 0x0FFFFFFF; /* the top 4 bits are reserved */
		break;
	}
	*ret = v;
	return 0;
}

static void copy_label(char out[12], const uint8_t *src)
{
	size_t n = 11;

	memcpy(out, src, 11);
	if ((uint8_t) out[0] == 0x05)
		out[0] = (char) 0xE5; /* 0x05 stands for a leading 0xE5 */
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == 0))
		n--;
	out[n] = 0;
	if (strcmp(out, "NO NAME") == 0)
		out[0] = 0;
}

static uint64_t cluster_offset(const struct fatfs *fs, uint32_t c)
{
	return (fs->first_data_sector + (uint64_t) (c - 2) * fs->cluster_sectors) *
	       fs->sector_bytes;
}

/*
 * Iterates over the raw 32-byte entries of a directory: the fixed FAT12/16
 * root if @cluster is 0, else a cluster chain. @cb returns > 0 to stop with
 * that value, < 0 for an error, 0 to continue.
 */
static int dir_iterate(struct fatfs *fs, uint32_t cluster,
		       int (*cb)(const uint8_t *ent, void *userdata), void *userdata)
{
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t cluster_bytes = (uint64_t) fs->cluster_sectors * fs->sector_bytes;
	uint64_t seen = 0, steps = 0;
	int r;

	if (cluster == 0 && fs->fat_bits != 32) {
		uint64_t bytes = (uint64_t) fs->root_entries * FAT_DIRENT_BYTES;

		buf = malloc(bytes);
		if (!buf)
			return -ENOMEM;
		r = pread_all(fs->fd, buf, bytes,
			      fs->offset_bytes + (fs->first_data_sector - fs->root_dir_sectors) *
							 fs->sector_bytes);
		if (r < 0)
			return r;
		for (uint64_t i = 0; i < fs->root_entries; i++) {
			const uint8_t *e = buf + i * FAT_DIRENT_BYTES;
			if (e[0] == 0)
				return 0;
			r = cb(e, userdata);
			if (r != 0)
				return r;
		}
		return 0;
	}
	if (cluster == 0)
		cluster = fs->root_cluster;

	buf = malloc(cluster_bytes);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		uint32_t next;

		if (cluster < 2 || cluster > fs->n_clusters + 1)
			return -EBADMSG;
		/* a chain longer than the volume has clusters is a loop */
		if (++steps > fs->n_clusters)
			return -EBADMSG;
		r = pread_all(fs->fd, buf, cluster_bytes,
			      fs->offset_bytes + cluster_offset(fs, cluster));
		if (r < 0)
			return r;
		for (uint64_t i = 0; i < cluster_bytes / FAT_DIRENT_BYTES; i++) {
			const uint8_t *e = buf + i * FAT_DIRENT_BYTES;
			if (e[0] == 0)
				return 0;
			if (++seen > FAT_DIR_ENTRIES_MAX)
				return -EBADMSG;
			r = cb(e, userdata);
			if (r != 0)
				return r;
		}
		r = fat_entry(fs, cluster, &next);
		if (r < 0)
			return r;
		if (next >= eoc_min(fs))
			return 0;
		cluster = next;
	}
}

static int label_cb(const uint8_t *e, void *userdata)
{
	uint8_t attr = e[11];

	if (e[0] == 0xE5 || (attr & 0x3F) == FAT_ATTR_LFN)
		return 0;
	if ((attr & (FAT_ATTR_VOLUME_ID | FAT_ATTR_DIRECTORY)) == FAT_ATTR_VOLUME_ID) {
		copy_label(userdata, e);
		return 1;
	}
	return 0;
}

static int fat_parse(struct fatfs *fs, const uint8_t *b)
{
	uint32_t bps = le16(b + 11), spc = b[13], rsvd = le16(b + 14), nfats = b[16];
	uint32_t root_ent = le16(b + 17), tot16 = le16(b + 19), media = b[21];
	uint32_t fatsz16 = le16(b + 22), tot32 = le32(b + 32), fatsz32 = le32(b + 36);
	uint64_t fatsz, totsec, meta, data_sec, clusters, entries_bytes;
	bool says_fat = memcmp(b + 54, "FAT", 3) == 0 || memcmp(b + 82, "FAT32", 5) == 0;

	if (memcmp(b + 3, "NTFS    ", 8) == 0 || memcmp(b + 3, "EXFAT   ", 8) == 0)
		return -EMEDIUMTYPE;
	/* the shape of a BPB: a jump, then a sane sector size and media byte */
	if (!(b[0] == 0xE9 || (b[0] == 0xEB && b[2] == 0x90)) || !is_pow2(bps) || bps < 512 ||
	    bps > 4096 || (media != 0xF0 && media < 0xF8) || nfats == 0)
		return says_fat ? -EBADMSG : -EMEDIUMTYPE;

	if (!is_pow2(spc) || rsvd == 0 || nfats > 4)
		return -EBADMSG;
	fatsz = fatsz16 ? fatsz16 : fatsz32;
	totsec = tot16 ? tot16 : tot32;
	if (fatsz == 0 || totsec == 0)
		return -EBADMSG;
	fs->root_dir_sectors = DIV_ROUND_UP((uint64_t) root_ent * FAT_DIRENT_BYTES, bps);
	meta = rsvd + nfats * fatsz + fs->root_dir_sectors;
	if (meta >= totsec)
		return -EBADMSG;
	data_sec = totsec - meta;
	clusters = data_sec / spc;
	if (clusters == 0 || clusters > FAT32_CLUSTERS_MAX)
		return -EBADMSG;

	fs->fat_bits = clusters <= FAT12_CLUSTERS_MAX   ? 12
		       : clusters <= FAT16_CLUSTERS_MAX ? 16
							: 32;
	if (fs->fat_bits == 32) {
		uint16_t ext_flags = le16(b + 40);

		if (root_ent != 0 || fatsz16 != 0)
			return -EBADMSG;
		fs->root_cluster = le32(b + 44);
		if (fs->root_cluster < 2 || fs->root_cluster > clusters + 1)
			return -EBADMSG;
		/* bit 7: mirroring off, bits 0-3: the one active FAT */
		fs->active_fat = (ext_flags & 0x80) ? (ext_flags & 0x0F) : 0;
		if (fs->active_fat >= nfats)
			return -EBADMSG;
	} else if (root_ent == 0)
		return -EBADMSG;

	/* the FAT must have an entry for every cluster */
	entries_bytes = fs->fat_bits == 12 ? DIV_ROUND_UP((clusters + 2) * 3, 2)
					   : (clusters + 2) * (fs->fat_bits / 8);
	if (entries_bytes > fatsz * bps)
		return -EBADMSG;
	if (totsec > fs->region_bytes / bps)
		return log_debug_errno(-EBADMSG, "FAT of %" PRIu64 " sectors exceeds its region.",
				       totsec);
	if ((uint64_t) spc * bps > FAT_CLUSTER_BYTES_MAX)
		return -EBADMSG;

	fs->sector_bytes = bps;
	fs->cluster_sectors = spc;
	fs->reserved_sectors = rsvd;
	fs->n_fats = nfats;
	fs->root_entries = root_ent;
	fs->total_sectors = totsec;
	fs->fat_sectors = fatsz;
	fs->first_data_sector = meta;
	fs->n_clusters = (uint32_t) clusters;
	fs->fat_bytes = entries_bytes;

	/* extended boot signature 0x29 (0x28: id without label and type) */
	{
		const uint8_t *ext = b + (fs->fat_bits == 32 ? 64 : 36);
		if (ext[2] == 0x29 || ext[2] == 0x28)
			fs->volume_id = le32(ext + 3);
		if (ext[2] == 0x29)
			copy_label(fs->label, ext + 7);
	}
	return 0;
}

int fatfs_open(int fd, uint64_t offset_bytes, uint64_t size_bytes, struct fatfs **ret)
{
	_cleanup_(fatfs_freep) struct fatfs *fs = NULL;
	uint8_t b[FAT_BOOT_SECTOR_BYTES];
	char label[12] = "";
	int r;

	if (fd < 0 || !ret)
		return -EINVAL;
	if (offset_bytes > INT64_MAX || size_bytes > INT64_MAX - offset_bytes)
		return -EOVERFLOW;
	if (size_bytes < FAT_BOOT_SECTOR_BYTES)
		return -EMEDIUMTYPE;
	r = pread_all(fd, b, sizeof(b), offset_bytes);
	if (r == -EIO)
		return -EMEDIUMTYPE; /* shorter than a boot sector */
	if (r < 0)
		return r;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->fd = fd;
	fs->offset_bytes = offset_bytes;
	fs->region_bytes = size_bytes;
	r = fat_parse(fs, b);
	if (r < 0)
		return r;

	/* the label in the root directory wins over the BPB copy (as in
	 * Windows and libblkid) */
	r = dir_iterate(fs, 0, label_cb, label);
	if (r < 0)
		return r;
	if (r > 0)
		memcpy(fs->label, label, sizeof(label));
	*ret = TAKE_PTR(fs);
	return 0;
}

int fatfs_get_info(struct fatfs *fs, struct fatfs_info *ret)
{
	struct fatfs_info info = {};
	uint64_t free_clusters = 0;
	int r;

	if (!fs || !ret)
		return -EINVAL;
	for (uint32_t c = 2; c <= fs->n_clusters + 1; c++) {
		uint32_t v;
		r = fat_entry(fs, c, &v);
		if (r < 0)
			return r;
		free_clusters += v == 0;
	}
	info.fat_bits = fs->fat_bits;
	info.cluster_bytes = (uint64_t) fs->cluster_sectors * fs->sector_bytes;
	info.size_bytes = fs->total_sectors * fs->sector_bytes;
	info.free_bytes = free_clusters * info.cluster_bytes;
	info.used_bytes = info.size_bytes - info.free_bytes;
	memcpy(info.label, fs->label, sizeof(info.label));
	info.volume_id = fs->volume_id;
	*ret = info;
	return 0;
}

int fatfs_for_each_used_extent(struct fatfs *fs,
			       int (*cb)(uint64_t offset_bytes, uint64_t size_bytes,
					 void *userdata),
			       void *userdata)
{
	uint64_t cluster_bytes, run_start, run_end;
	int r;

	if (!fs || !cb)
		return -EINVAL;
	cluster_bytes = (uint64_t) fs->cluster_sectors * fs->sector_bytes;
	/* boot sector, reserved sectors, FATs and the FAT12/16 root directory */
	run_start = 0;
	run_end = fs->first_data_sector * fs->sector_bytes;

	for (uint32_t c = 2; c <= fs->n_clusters + 1; c++) {
		uint64_t off;
		uint32_t v;

		r = fat_entry(fs, c, &v);
		if (r < 0)
			return r;
		/* free and bad clusters hold nothing worth reading */
		if (v == 0 || v == bad_cluster(fs))
			continue;
		off = cluster_offset(fs, c);
		if (off == run_end) {
			run_end += cluster_bytes;
			continue;
		}
		if (run_end > run_start) {
			r = cb(run_start, run_end - run_start, userdata);
			if (r < 0)
				return r;
		}
		run_start = off;
		run_end = off + cluster_bytes;
	}
	if (run_end > run_start)
		return cb(run_start, run_end - run_start, userdata);
	return 0;
}

/* Long names are compared as UTF-16 units, folding ASCII case only. */
struct lookup {
	const char *want; /* one path component */
	size_t want_len;
	uint16_t lfn[FAT_LFN_MAX + FAT_LFN_CHARS];
	unsigned lfn_count; /* LFN entries expected in this sequence, 0 if none */
	unsigned lfn_next;  /* ordinal expected next */
	uint8_t lfn_sum;
	unsigned fat_bits;
	bool found;
	bool is_dir;
	uint32_t cluster;
};

static uint8_t short_name_sum(const uint8_t *name)
{
	uint8_t sum = 0;

	for (int i = 0; i < 11; i++)
		sum = (uint8_t) (((sum & 1) << 7) + (sum >> 1) + name[i]);
	return sum;
}

static int fold(int c)
{
	return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

/* UTF-8 of @s[0..n) to UTF-16 units; returns units or -1 on bad UTF-8. */
static int utf8_to_utf16(const char *s, size_t n, uint16_t *out, size_t max)
{
	size_t i = 0, k = 0;

	while (i < n) {
		uint32_t c = (uint8_t) s[i];
		size_t len = c < 0x80		? 1
			     : (c & 0xE0) == 0xC0 ? 2
			     : (c & 0xF0) == 0xE0 ? 3
			     : (c & 0xF8) == 0xF0 ? 4
						  : 0;

		if (len == 0 || i + len > n)
			return -1;
		if (len > 1) {
			c &= 0xFF >> (len + 1);
			for (size_t j = 1; j < len; j++) {
				if (((uint8_t) s[i + j] & 0xC0) != 0x80)
					return -1;
				c = (c << 6) | ((uint8_t) s[i + j] & 0x3F);
			}
		}
		i += len;
		if (c >= 0x10000) {
			if (k + 2 > max)
				return -1;
			c -= 0x10000;
			out[k++] = (uint16_t) (0xD800 | (c >> 10));
			out[k++] = (uint16_t) (0xDC00 | (c & 0x3FF));
		} else {
			if (k + 1 > max)
				return -1;
			out[k++] = (uint16_t) c;
		}
	}
	return (int) k;
}

static bool lfn_matches(const struct lookup *l)
{
	uint16_t want[FAT_LFN_MAX + 1];
	size_t have = 0, max = (size_t) l->lfn_count * FAT_LFN_CHARS;
	int n;

	while (have < max && l->lfn[have] != 0x0000 && l->lfn[have] != 0xFFFF)
		have++;
	n = utf8_to_utf16(l->want, l->want_len, want, ELEMENTSOF(want));
	if (n < 0 || (size_t) n != have)
		return false;
	for (size_t i = 0; i < have; i++) {
		uint16_t a = l->lfn[i], b = want[i];
		if (a < 0x80 && b < 0x80 ? fold(a) != fold(b) : a != b)
			return false;
	}
	return true;
}

static bool short_matches(const struct lookup *l, const uint8_t *e)
{
	char name[13];
	size_t n = 0, b = 8, x = 3;

	while (b > 0 && e[b - 1] == ' ')
		b--;
	while (x > 0 && e[8 + x - 1] == ' ')
		x--;
	memcpy(name, e, b);
	n = b;
	if (n > 0 && (uint8_t) name[0] == 0x05)
		name[0] = (char) 0xE5;
	if (x > 0) {
		name[n++] = '.';
		memcpy(name + n, e + 8, x);
		n += x;
	}
	if (n != l->want_len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (fold((uint8_t) name[i]) != fold((uint8_t) l->want[i]))
			return false;
	return true;
}

static int lookup_cb(const uint8_t *e, void *userdata)
{
	struct lookup *l = userdata;
	uint8_t attr = e[11];

	if (e[0] == 0xE5) {
		l->lfn_count = 0;
		return 0;
	}
	if ((attr & 0x3F) == FAT_ATTR_LFN) {
		unsigned ord = e[0] & 0x3F;
		uint16_t *dst;

		if (e[0] & FAT_LFN_LAST) {
			if (ord == 0 || ord * FAT_LFN_CHARS > ELEMENTSOF(l->lfn)) {
				l->lfn_count = 0;
				return 0;
			}
			l->lfn_count = ord;
			l->lfn_sum = e[13];
			memset(l->lfn, 0, sizeof(l->lfn));
		} else if (l->lfn_count == 0 || ord == 0 || ord != l->lfn_next ||
			   e[13] != l->lfn_sum) {
			/* orphaned or out of order: ignore; ordinal 0 after a complete
			 * sequence (lfn_next 0) would index lfn[-13] */
			l->lfn_count = 0;
			return 0;
		}
		l->lfn_next = ord - 1;
		dst = l->lfn + (ord - 1) * FAT_LFN_CHARS;
		for (int i = 0; i < 5; i++)
			dst[i] = le16(e + 1 + 2 * i);
		for (int i = 0; i < 6; i++)
			dst[5 + i] = le16(e + 14 + 2 * i);
		for (int i = 0; i < 2; i++)
			dst[11 + i] = le16(e + 28 + 2 * i);
		return 0;
	}
	if (attr & FAT_ATTR_VOLUME_ID) {
		l->lfn_count = 0;
		return 0;
	}

	bool match = false;
	if (l->lfn_count > 0 && l->lfn_next == 0 && l->lfn_sum == short_name_sum(e))
		match = lfn_matches(l);
	if (!match)
		match = short_matches(l, e);
	l->lfn_count = 0;
	if (!match)
		return 0;
	l->found = true;
	l->is_dir = attr & FAT_ATTR_DIRECTORY;
	l->cluster = le16(e + 26);
	if (l->fat_bits == 32)
		l->cluster |= (uint32_t) le16(e + 20) << 16; /* FAT12/16 keep EA data there */
	return 1;
}

int fatfs_path_exists(struct fatfs *fs, const char *path)
{
	uint32_t dir = 0; /* the root */
	unsigned depth = 0;
	const char *p;
	int r;

	if (!fs || !path)
		return -EINVAL;
	p = path;
	for (;;) {
		_cleanup_free_ struct lookup *l = NULL;
		size_t n;

		while (*p == '/')
			p++;
		if (!*p)
			return 1; /* "/" or a trailing slash after a directory */
		n = strcspn(p, "/");
		if (++depth > FAT_PATH_DEPTH_MAX)
			return -ELOOP;

		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		l->want = p;
		l->want_len = n;
		l->fat_bits = fs->fat_bits;
		r = dir_iterate(fs, dir, lookup_cb, l);
		if (r < 0)
			return r;
		if (!l->found)
			return 0;
		p += n;
		while (*p == '/')
			p++;
		if (!*p)
			return 1;
		if (!l->is_dir)
			return 0;
		/* ".." of a first-level directory points at cluster 0: the root */
		if (l->cluster != 0 && (l->cluster < 2 || l->cluster > fs->n_clusters + 1))
			return -EBADMSG;
		dir = l->cluster;
	}
}
