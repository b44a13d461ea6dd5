/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Partition tables through libfdisk. libfdisk silently falls back to the good
 * copy of a damaged GPT, so the GPT headers are also parsed here (bounds
 * checked, CRC32 verified) to report the health of both copies.
 *
 * libfdisk moves the file offset of the fd it is given (callers use pread())
 * and reads into unaligned buffers, so the fd must not be O_DIRECT.
 */

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <libfdisk/libfdisk.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imager/ptable.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"

DEFINE_CLEANUP(struct fdisk_context *, fdisk_unref_context)
DEFINE_CLEANUP(struct fdisk_table *, fdisk_unref_table)
DEFINE_CLEANUP(struct fdisk_partition *, fdisk_unref_partition)
DEFINE_CLEANUP(struct fdisk_parttype *, fdisk_unref_parttype)

#define SECTOR_BYTES_MIN 512u
#define SECTOR_BYTES_MAX 65536u

/* UEFI 2.10 §5.3: header is at least 92 bytes, entries at least 128 bytes */
#define GPT_SIGNATURE "EFI PART"
#define GPT_HEADER_BYTES_MIN 92u
#define GPT_ENTRY_BYTES_MIN 128u
/*
 * Far above any real table (128 x 128 bytes), low enough to allocate. A
 * header with a valid CRC that asks for more is refused before libfdisk sees
 * it: libfdisk 2.38 allocates and reads whatever the header says.
 */
#define GPT_ENTRY_ARRAY_BYTES_MAX (16u * 1024 * 1024)
#define GPT_ATTR_LEGACY_BIOS_BOOTABLE (UINT64_C(1) << 2)

#define DOS_ACTIVE_FLAG 0x80
#define DOS_PARTITIONS_PRIMARY 4 /* partno 1-4 live in the MBR, 5+ are logical */

static const char *const ptable_label_name[_PTABLE_LABEL_MAX] = {
	[PTABLE_NONE] = "none",
	[PTABLE_DOS] = "dos",
	[PTABLE_GPT] = "gpt",
};

const char *ptable_label_to_string(enum ptable_label l)
{
	if (l < 0 || l >= _PTABLE_LABEL_MAX)
		return NULL;
	return ptable_label_name[l];
}

enum ptable_label ptable_label_from_string(const char *s)
{
	if (!s)
		return _PTABLE_LABEL_INVALID;
	for (int i = 0; i < _PTABLE_LABEL_MAX; i++)
		if (strcmp(s, ptable_label_name[i]) == 0)
			return (enum ptable_label) i;
	return _PTABLE_LABEL_INVALID;
}

static bool sector_bytes_valid(uint32_t ss)
{
	return ss >= SECTOR_BYTES_MIN && ss <= SECTOR_BYTES_MAX && (ss & (ss - 1)) == 0;
}

/*
 * CRC-32 (IEEE 802.3, reflected, as GPT uses it). Bitwise: a header and a
 * 16 KiB entry array take microseconds, and there is no table to initialise
 * under concurrent callers.
 */
static uint32_t crc32_gpt(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t c = 0xFFFFFFFFu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
	}
	return ~c;
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static int fd_size_bytes(int fd, uint64_t *ret)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		uint64_t sz;
		if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
			return -errno;
		*ret = sz;
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return -ENOTBLK;
	*ret = (uint64_t) st.st_size;
	return 0;
}

struct gpt_header_info {
	uint64_t my_lba;
	uint64_t alternate_lba;
	uint64_t first_usable_lba;
	uint64_t last_usable_lba;
	uint32_t n_entries;
};

/*
 * Reads and verifies the GPT header in @lba and its entry array. Returns 1 if
 * valid, 0 if absent or damaged, -EFBIG if the header is intact but its
 * entry array is absurdly large, -errno on I/O errors.
 */
static int gpt_header_check(int fd, uint32_t ss, uint64_t disk_sectors, uint64_t lba,
			    struct gpt_header_info *ret)
{
	_cleanup_free_ uint8_t *hdr = NULL, *ents = NULL;
	uint32_t hsize, crc, esize, n;
	uint64_t ents_lba, ents_bytes, ents_sectors;
	int r;

	if (lba == 0 || lba >= disk_sectors)
		return 0;
	hdr = malloc(ss);
	if (!hdr)
		return -ENOMEM;
	r = pread_all(fd, hdr, ss, lba * ss);
	if (r < 0)
		return r;
	if (memcmp(hdr, GPT_SIGNATURE, 8) != 0)
		return 0;
	hsize = get_le32(hdr + 12);
	if (hsize < GPT_HEADER_BYTES_MIN || hsize > ss)
		return 0;
	crc = get_le32(hdr + 16);
	memset(hdr + 16, 0, 4);
	if (crc32_gpt(hdr, hsize) != crc)
		return 0;
	if (get_le64(hdr + 24) != lba)
		return 0;

	ents_lba = get_le64(hdr + 72);
	n = get_le32(hdr + 80);
	esize = get_le32(hdr + 84);
	ents_bytes = (uint64_t) n * esize;
	if (ents_bytes > GPT_ENTRY_ARRAY_BYTES_MAX)
		return -EFBIG;
	if (esize < GPT_ENTRY_BYTES_MIN || esize % 8 != 0 || n == 0)
		return 0;
	ents_sectors = DIV_ROUND_UP(ents_bytes, ss);
	if (ents_lba < 1 || ents_lba >= disk_sectors || ents_sectors > disk_sectors - ents_lba)
		return 0;
	ents = malloc(ents_bytes);
	if (!ents)
		return -ENOMEM;
	r = pread_all(fd, ents, ents_bytes, ents_lba * ss);
	if (r < 0)
		return r;
	if (crc32_gpt(ents, ents_bytes) != get_le32(hdr + 88))
		return 0;

	*ret = (struct gpt_header_info){
		.my_lba = lba,
		.alternate_lba = get_le64(hdr + 32),
		.first_usable_lba = get_le64(hdr + 40),
		.last_usable_lba = get_le64(hdr + 48),
		.n_entries = n,
	};
	return 1;
}

static void ptable_entry_done(struct ptable_entry *e)
{
	free(e->type);
	free(e->type_name);
	free(e->uuid);
	free(e->name);
}

struct ptable *ptable_free(struct ptable *pt)
{
	if (!pt)
		return NULL;
	for (size_t i = 0; i < pt->n_entries; i++)
		ptable_entry_done(&pt->entries[i]);
	free(pt->entries);
	free(pt->disk_id);
	free(pt);
	return NULL;
}
DEFINE_CLEANUP(struct ptable *, ptable_free)

static int strdup_or_null(const char *s, char **ret)
{
	if (!s || !*s) {
		*ret = NULL;
		return 0;
	}
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct ptable_entry *x = a, *y = b;

	if (x->start_bytes != y->start_bytes)
		return x->start_bytes < y->start_bytes ? -1 : 1;
	return x->partno < y->partno ? -1 : x->partno > y->partno;
}

static int sectors_to_bytes(uint64_t sectors, uint32_t ss, uint64_t *ret)
{
	if (sectors > UINT64_MAX / ss)
		return -EOVERFLOW;
	*ret = sectors * ss;
	return 0;
}

static int read_entry(struct fdisk_context *cxt, struct fdisk_partition *pa,
		      enum ptable_label label, uint32_t dos_id, uint32_t ss,
		      struct ptable_entry *ret)
{
	struct ptable_entry e = {};
	struct fdisk_parttype *t;
	char buf[64];
	int r;

	if (!fdisk_partition_has_partno(pa) || !fdisk_partition_has_start(pa) ||
	    !fdisk_partition_has_size(pa))
		return -EBADMSG;
	if (fdisk_partition_get_partno(pa) >= UINT32_MAX - 1)
		return -EBADMSG;
	e.partno = (unsigned) fdisk_partition_get_partno(pa) + 1;
	r = sectors_to_bytes(fdisk_partition_get_start(pa), ss, &e.start_bytes);
	if (r < 0)
		return r;
	r = sectors_to_bytes(fdisk_partition_get_size(pa), ss, &e.size_bytes);
	if (r < 0)
		return r;

	t = fdisk_partition_get_type(pa);
	if (t) {
		if (label == PTABLE_GPT && fdisk_parttype_get_string(t))
			r = strdup_or_null(fdisk_parttype_get_string(t), &e.type);
		else {
			snprintf(buf, sizeof(buf), "0x%02x", fdisk_parttype_get_code(t));
			r = strdup_or_null(buf, &e.type);
		}
		if (r < 0)
			goto fail;
		if (!fdisk_parttype_is_unknown(t)) {
			r = strdup_or_null(fdisk_parttype_get_name(t), &e.type_name);
			if (r < 0)
				goto fail;
		}
	}

	if (label == PTABLE_GPT) {
		uint64_t attrs = 0;

		r = strdup_or_null(fdisk_partition_get_uuid(pa), &e.uuid);
		if (r < 0)
			goto fail;
		r = strdup_or_null(fdisk_partition_get_name(pa), &e.name);
		if (r < 0)
			goto fail;
		r = fdisk_gpt_get_partition_attrs(cxt, e.partno - 1, &attrs);
		if (r < 0)
			goto fail;
		e.attrs = attrs;
		e.bootable = attrs & GPT_ATTR_LEGACY_BIOS_BOOTABLE;
	} else {
		/* the kernel's PARTUUID for MBR disks: block/partitions/msdos.c */
		snprintf(buf, sizeof(buf), "%08" PRIx32 "-%02x", dos_id, e.partno);
		r = strdup_or_null(buf, &e.uuid);
		if (r < 0)
			goto fail;
		e.bootable = fdisk_partition_is_bootable(pa) > 0;
		e.attrs = e.bootable ? DOS_ACTIVE_FLAG : 0;
	}
	*ret = e;
	return 0;
fail:
	ptable_entry_done(&e);
	return r;
}

static int dos_has_protective_entry(struct fdisk_table *tb)
{
	struct fdisk_partition *pa;
	struct fdisk_iter *itr = fdisk_new_iter(FDISK_ITER_FORWARD);
	int found = 0;

	if (!itr)
		return -ENOMEM;
	while (fdisk_table_next_partition(tb, itr, &pa) == 0) {
		struct fdisk_parttype *t = fdisk_partition_get_type(pa);
		if (t && fdisk_parttype_get_code(t) == 0xEE)
			found = 1;
	}
	fdisk_free_iter(itr);
	return found;
}

static int gpt_health(int fd, uint32_t ss, uint64_t disk_sectors, struct ptable *pt,
		      struct gpt_header_info *ret_used)
{
	struct gpt_header_info primary, backup;
	uint64_t last = disk_sectors - 1;
	int p, b;

	p = gpt_header_check(fd, ss, disk_sectors, 1, &primary);
	if (p < 0)
		return p;
	if (p > 0) {
		b = gpt_header_check(fd, ss, disk_sectors, primary.alternate_lba, &backup);
		if (b < 0)
			return b;
		if (b > 0 && primary.alternate_lba != last)
			pt->gpt_backup_misplaced = true;
		if (b == 0) {
			/* the primary's pointer may be stale; a valid header in
			 * the last LBA still counts as a good backup */
			b = gpt_header_check(fd, ss, disk_sectors, last, &backup);
			if (b < 0)
				return b;
		}
		pt->gpt_backup_damaged = b == 0;
		*ret_used = primary;
		return 0;
	}

	pt->gpt_primary_damaged = true;
	b = gpt_header_check(fd, ss, disk_sectors, last, &backup);
	if (b < 0)
		return b;
	if (b == 0) {
		pt->gpt_backup_damaged = true;
		return -EBADMSG;
	}
	*ret_used = backup;
	return 0;
}

int ptable_read(int fd, uint32_t sector_bytes, struct ptable **ret)
{
	_cleanup_(fdisk_unref_contextp) struct fdisk_context *cxt = NULL;
	_cleanup_(fdisk_unref_tablep) struct fdisk_table *tb = NULL;
	_cleanup_(ptable_freep) struct ptable *pt = NULL;
	struct fdisk_iter *itr;
	struct fdisk_partition *pa;
	struct gpt_header_info hdr = {};
	uint64_t disk_bytes = 0, disk_sectors;
	uint32_t dos_id = 0;
	uint8_t mbr[512];
	bool has_pmbr = false;
	char fdname[64];
	char *id = NULL;
	int r, health = 0;
	size_t n;

	if (fd < 0 || !ret || !sector_bytes_valid(sector_bytes))
		return -EINVAL;
	r = fd_size_bytes(fd, &disk_bytes);
	if (r < 0)
		return r;
	disk_sectors = disk_bytes / sector_bytes;

	pt = calloc(1, sizeof(*pt));
	if (!pt)
		return -ENOMEM;
	pt->sector_bytes = sector_bytes;
	pt->label = PTABLE_NONE;
	if (disk_sectors < 2) {
		*ret = TAKE_PTR(pt);
		return 0;
	}

	/* a protective MBR: check both GPT copies before libfdisk reads them */
	r = pread_all(fd, mbr, sizeof(mbr), 0);
	if (r < 0)
		return r;
	if (mbr[510] == 0x55 && mbr[511] == 0xAA)
		for (int i = 0; i < 4; i++)
			if (mbr[446 + 16 * i + 4] == 0xEE)
				has_pmbr = true;
	if (has_pmbr) {
		health = gpt_health(fd, sector_bytes, disk_sectors, pt, &hdr);
		if (health == -EFBIG)
			return log_debug_errno(-EBADMSG, "GPT entry array too large, refusing.");
		if (health < 0 && health != -EBADMSG)
			return health;
	}

	cxt = fdisk_new_context();
	if (!cxt)
		return -ENOMEM;
	r = fdisk_save_user_sector_size(cxt, sector_bytes, sector_bytes);
	if (r < 0)
		return r;
	snprintf(fdname, sizeof(fdname), "/proc/self/fd/%d", fd);
	r = fdisk_assign_device_by_fd(cxt, fd, fdname, 1);
	if (r < 0)
		return log_debug_errno(r, "libfdisk cannot use fd %d: %m", fd);
	if (fdisk_get_sector_size(cxt) != sector_bytes)
		return -EIO;

	if (!fdisk_has_label(cxt)) {
		/* libfdisk finds nothing if both GPT copies are unusable, but
		 * the protective MBR still says a label is present */
		if (has_pmbr)
			return -EBADMSG;
		*ret = TAKE_PTR(pt);
		return 0;
	}

	if (fdisk_is_labeltype(cxt, FDISK_DISKLABEL_GPT))
		pt->label = PTABLE_GPT;
	else if (fdisk_is_labeltype(cxt, FDISK_DISKLABEL_DOS))
		pt->label = PTABLE_DOS;
	else
		return -EOPNOTSUPP; /* sun, sgi, bsd: not for this appliance */

	r = fdisk_get_disklabel_id(cxt, &id);
	if (r < 0)
		return r;
	pt->disk_id = id;
	if (!pt->disk_id)
		return -EBADMSG;

	r = fdisk_get_partitions(cxt, &tb);
	if (r < 0)
		return r == -ENOMEM ? r : -EBADMSG;

	if (pt->label == PTABLE_GPT) {
		if (!has_pmbr || health < 0)
			return -EBADMSG; /* libfdisk and we disagree */
		pt->gpt_n_entries_max = hdr.n_entries;
		r = sectors_to_bytes(hdr.first_usable_lba, sector_bytes, &pt->first_usable_bytes);
		if (r < 0)
			return r;
		if (hdr.last_usable_lba == UINT64_MAX)
			return -EBADMSG;
		r = sectors_to_bytes(hdr.last_usable_lba + 1, sector_bytes, &pt->last_usable_bytes);
		if (r < 0)
			return r;
	} else {
		char *end = NULL;
		unsigned long v;

		/* a protective MBR that libfdisk read as dos means the GPT
		 * behind it could not be read */
		r = dos_has_protective_entry(tb);
		if (r < 0)
			return r;
		if (r > 0)
			return -EBADMSG;
		/* a whole-disk file system (FAT superfloppy) has the 0x55AA
		 * signature too; libfdisk calls that an empty dos label */
		if (fdisk_table_get_nents(tb) == 0 && fdisk_get_collision(cxt)) {
			struct ptable *none = calloc(1, sizeof(*none));
			if (!none)
				return -ENOMEM;
			none->label = PTABLE_NONE;
			none->sector_bytes = sector_bytes;
			*ret = none;
			return 0;
		}
		errno = 0;
		v = strtoul(pt->disk_id, &end, 16);
		if (errno || !end || *end || v > UINT32_MAX)
			return -EBADMSG;
		dos_id = (uint32_t) v;
	}

	n = fdisk_table_get_nents(tb);
	if (n > 0) {
		pt->entries = calloc(n, sizeof(*pt->entries));
		if (!pt->entries)
			return -ENOMEM;
	}
	itr = fdisk_new_iter(FDISK_ITER_FORWARD);
	if (!itr)
		return -ENOMEM;
	while (pt->n_entries < n && fdisk_table_next_partition(tb, itr, &pa) == 0) {
		r = read_entry(cxt, pa, pt->label, dos_id, sector_bytes,
			       &pt->entries[pt->n_entries]);
		if (r < 0) {
			fdisk_free_iter(itr);
			return r;
		}
		pt->n_entries++;
	}
	fdisk_free_iter(itr);
	if (pt->n_entries > 1)
		qsort(pt->entries, pt->n_entries, sizeof(*pt->entries), entry_cmp);

	/* callers read and write what the entries describe: they must lie on
	 * the disk, and GPT entries must not overlap (dos logical partitions
	 * lie inside their extended container, so dos is checked for bounds only) */
	for (size_t i = 0; i < pt->n_entries; i++) {
		const struct ptable_entry *e = &pt->entries[i];

		if (e->size_bytes == 0 || e->start_bytes < sector_bytes ||
		    e->start_bytes > disk_bytes || e->size_bytes > disk_bytes - e->start_bytes)
			return log_debug_errno(-EBADMSG,
					       "Partition %u (%" PRIu64 "+%" PRIu64
					       ") is not on the disk of %" PRIu64 " bytes.",
					       e->partno, e->start_bytes, e->size_bytes,
					       disk_bytes);
		if (pt->label == PTABLE_GPT && i > 0 &&
		    e->start_bytes < pt->entries[i - 1].start_bytes + pt->entries[i - 1].size_bytes)
			return log_debug_errno(-EBADMSG, "Partitions %u and %u overlap.",
					       pt->entries[i - 1].partno, e->partno);
	}

	*ret = TAKE_PTR(pt);
	return 0;
}

int ptable_dup(const struct ptable *pt, struct ptable **ret)
{
	_cleanup_(ptable_freep) struct ptable *c = NULL;

	if (!pt || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = *pt;
	c->disk_id = NULL;
	c->entries = NULL;
	c->n_entries = 0;
	if (strdup_or_null(pt->disk_id, &c->disk_id) < 0)
		return -ENOMEM;
	if (pt->n_entries > 0) {
		c->entries = calloc(pt->n_entries, sizeof(*c->entries));
		if (!c->entries)
			return -ENOMEM;
	}
	for (size_t i = 0; i < pt->n_entries; i++) {
		const struct ptable_entry *s = &pt->entries[i];
		struct ptable_entry *d = &c->entries[i];

		*d = *s;
		d->type = d->type_name = d->uuid = d->name = NULL;
		c->n_entries++;
		if (strdup_or_null(s->type, &d->type) < 0 ||
		    strdup_or_null(s->type_name, &d->type_name) < 0 ||
		    strdup_or_null(s->uuid, &d->uuid) < 0 || strdup_or_null(s->name, &d->name) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

/*
 * libfdisk refuses dos partitions below its first LBA (the 1 MiB alignment by
 * default) and puts each logical partition's EBR first-LBA sectors before
 * it. Lower it to what the table uses, so old layouts (start 63) fit and
 * the EBRs land where the source had them.
 */
static int dos_first_lba(struct fdisk_context *cxt, const struct ptable *pt, uint32_t ss)
{
	uint64_t first = fdisk_get_first_lba(cxt), prev_end = 0;

	for (size_t i = 0; i < pt->n_entries; i++) {
		const struct ptable_entry *e = &pt->entries[i]; /* sorted by start */
		uint64_t start = e->start_bytes / ss;

		if (e->partno > DOS_PARTITIONS_PRIMARY && prev_end > 0 && start > prev_end)
			first = MIN(first, start - prev_end);
		else
			first = MIN(first, start);
		/* the extended container's start counts as the previous end */
		prev_end = e->partno > DOS_PARTITIONS_PRIMARY
				   ? (e->start_bytes + e->size_bytes) / ss
				   : start;
	}
	if (first < 1)
		first = 1;
	(void) fdisk_set_first_lba(cxt, first);
	return 0;
}

static int entry_partno_cmp(const void *a, const void *b)
{
	const struct ptable_entry *const *x = a, *const *y = b;

	return (*x)->partno < (*y)->partno ? -1 : (*x)->partno > (*y)->partno;
}

static int render_entry(struct fdisk_context *cxt, const struct ptable *pt,
			const struct ptable_entry *e, uint32_t ss)
{
	_cleanup_(fdisk_unref_partitionp) struct fdisk_partition *pa = NULL;
	_cleanup_(fdisk_unref_parttypep) struct fdisk_parttype *t = NULL;
	struct fdisk_label *lb = fdisk_get_label(cxt, NULL);
	uint64_t start = e->start_bytes / ss, size = e->size_bytes / ss;
	uint64_t first = fdisk_get_first_lba(cxt), last = fdisk_get_last_lba(cxt);
	int r;

	if (e->partno == 0 || e->start_bytes % ss != 0 || e->size_bytes % ss != 0 ||
	    e->size_bytes == 0 || !e->type)
		return -EINVAL;
	/* MBR entries hold 32-bit sector numbers */
	if (pt->label == PTABLE_DOS && UINT32_MAX - 1 < last)
		last = UINT32_MAX - 1;
	/* fdisk_get_first/last_lba() are the usable area of the new label */
	if (start < first || start > last || size - 1 > last - start)
		return log_debug_errno(-ENOSPC,
				       "Partition %u (%" PRIu64 "+%" PRIu64
				       " sectors) does not fit the usable area %" PRIu64 "-%" PRIu64
				       ".",
				       e->partno, start, size, first, last);

	pa = fdisk_new_partition();
	if (!pa)
		return -ENOMEM;
	t = fdisk_label_parse_parttype(lb, e->type);
	if (!t)
		return -EINVAL;
	r = fdisk_partition_set_partno(pa, e->partno - 1);
	if (r >= 0)
		r = fdisk_partition_set_start(pa, start);
	if (r >= 0)
		r = fdisk_partition_set_size(pa, size);
	if (r >= 0)
		r = fdisk_partition_size_explicit(pa, 1);
	if (r >= 0)
		r = fdisk_partition_set_type(pa, t);
	if (r >= 0 && pt->label == PTABLE_GPT && e->uuid)
		r = fdisk_partition_set_uuid(pa, e->uuid);
	if (r >= 0 && pt->label == PTABLE_GPT && e->name)
		r = fdisk_partition_set_name(pa, e->name);
	if (r < 0)
		return r;

	r = fdisk_add_partition(cxt, pa, NULL);
	if (r < 0)
		return log_debug_errno(r, "libfdisk refused partition %u: %m", e->partno);

	if (pt->label == PTABLE_GPT) {
		if (e->attrs != 0) {
			r = fdisk_gpt_set_partition_attrs(cxt, e->partno - 1, e->attrs);
			if (r < 0)
				return r;
		}
	} else if (e->bootable) {
		r = fdisk_toggle_partition_flag(cxt, e->partno - 1, DOS_FLAG_ACTIVE);
		if (r < 0)
			return r;
	}
	return 0;
}

int ptable_render(const struct ptable *pt, uint64_t disk_size_bytes, uint32_t sector_bytes,
		  int *ret_fd)
{
	_cleanup_(fdisk_unref_contextp) struct fdisk_context *cxt = NULL;
	_cleanup_free_ const struct ptable_entry **order = NULL;
	_cleanup_close_ int fd = -EBADF;
	unsigned next_logical = DOS_PARTITIONS_PRIMARY + 1;
	uint64_t disk_sectors;
	char fdname[64];
	int r;

	if (!pt || !ret_fd || !sector_bytes_valid(sector_bytes))
		return -EINVAL;
	if (pt->label < 0 || pt->label >= _PTABLE_LABEL_MAX)
		return -EINVAL;
	if (disk_size_bytes > INT64_MAX)
		return -EFBIG;
	disk_sectors = disk_size_bytes / sector_bytes;

	fd = memfd_create("imager-ptable", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t) disk_size_bytes) < 0)
		return -errno;
	if (pt->label == PTABLE_NONE) {
		*ret_fd = TAKE_FD(fd);
		return 0;
	}
	if (!pt->disk_id)
		return -EINVAL;
	if (disk_sectors < 64)
		return -ENOSPC;

	cxt = fdisk_new_context();
	if (!cxt)
		return -ENOMEM;
	r = fdisk_save_user_sector_size(cxt, sector_bytes, sector_bytes);
	if (r < 0)
		return r;
	snprintf(fdname, sizeof(fdname), "/proc/self/fd/%d", fd);
	r = fdisk_assign_device_by_fd(cxt, fd, fdname, 0);
	if (r < 0)
		return r;
	(void) fdisk_disable_dialogs(cxt, 1);
	if (fdisk_get_sector_size(cxt) != sector_bytes)
		return -EIO;

	if (pt->label == PTABLE_GPT && pt->first_usable_bytes > 0) {
		/* keep the source's first usable LBA (e.g. 34 from old tools) so
		 * entries that start early still fit; libfdisk raises it if the
		 * entry array needs more room */
		uint64_t lba = DIV_ROUND_UP(pt->first_usable_bytes, sector_bytes);
		if (lba < disk_sectors)
			(void) fdisk_set_first_lba(cxt, lba);
	}
	r = fdisk_create_disklabel(cxt, pt->label == PTABLE_GPT ? "gpt" : "dos");
	if (r < 0)
		return log_debug_errno(r, "libfdisk cannot create a %s label: %m",
				       ptable_label_to_string(pt->label));
	if (pt->label == PTABLE_DOS) {
		r = dos_first_lba(cxt, pt, sector_bytes);
		if (r < 0)
			return r;
	}
	r = fdisk_set_disklabel_id_from_string(cxt, pt->disk_id);
	if (r < 0)
		return log_debug_errno(r, "Invalid disk id '%s': %m", pt->disk_id);
	if (pt->label == PTABLE_GPT && pt->gpt_n_entries_max > 0 &&
	    pt->gpt_n_entries_max != fdisk_get_npartitions(cxt)) {
		r = fdisk_gpt_set_npartitions(cxt, pt->gpt_n_entries_max);
		if (r < 0)
			return r;
	}

	/*
	 * By partition number: dos logical partitions (5+) need their
	 * extended container first and are chained in number order.
	 */
	if (pt->n_entries > 0) {
		order = calloc(pt->n_entries, sizeof(*order));
		if (!order)
			return -ENOMEM;
	}
	for (size_t i = 0; i < pt->n_entries; i++)
		order[i] = &pt->entries[i];
	if (pt->n_entries > 1)
		qsort(order, pt->n_entries, sizeof(*order), entry_partno_cmp);
	for (size_t i = 0; i < pt->n_entries; i++) {
		if (i > 0 && order[i]->partno == order[i - 1]->partno)
			return -EINVAL;
		if (pt->label == PTABLE_DOS && order[i]->partno > DOS_PARTITIONS_PRIMARY) {
			/* logical partitions are chained, so numbered densely */
			if (order[i]->partno != next_logical)
				return -EINVAL;
			next_logical++;
		}
		r = render_entry(cxt, pt, order[i], sector_bytes);
		if (r < 0)
			return r;
	}

	r = fdisk_write_disklabel(cxt);
	if (r < 0)
		return log_debug_errno(r, "libfdisk cannot write the label: %m");
	r = fdisk_deassign_device(cxt, 1);
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int region_cmp(const void *a, const void *b)
{
	const struct ptable_region *x = a, *y = b;

	return x->offset_bytes < y->offset_bytes ? -1 : x->offset_bytes > y->offset_bytes;
}

int ptable_regions(int fd, uint32_t sector_bytes, struct ptable_region **ret, size_t *ret_n)
{
	_cleanup_(fdisk_unref_contextp) struct fdisk_context *cxt = NULL;
	_cleanup_free_ struct ptable_region *v = NULL;
	size_t n = 0, allocated = 0;
	char fdname[64];
	int r;

	if (fd < 0 || !ret || !ret_n || !sector_bytes_valid(sector_bytes))
		return -EINVAL;
	cxt = fdisk_new_context();
	if (!cxt)
		return -ENOMEM;
	r = fdisk_save_user_sector_size(cxt, sector_bytes, sector_bytes);
	if (r < 0)
		return r;
	snprintf(fdname, sizeof(fdname), "/proc/self/fd/%d", fd);
	r = fdisk_assign_device_by_fd(cxt, fd, fdname, 1);
	if (r < 0)
		return r;

	/* libfdisk >= 2.38 lists both GPT copies and every EBR */
	for (int i = 0; fdisk_has_label(cxt); i++) {
		const char *name = NULL;
		uint64_t offset = 0;
		size_t size = 0;

		if (fdisk_locate_disklabel(cxt, i, &name, &offset, &size) != 0)
			break;
		if (size == 0)
			continue;
		if (n == allocated) {
			size_t m = allocated ? allocated * 2 : 8;
			struct ptable_region *w;

			if (m > 65536)
				return -E2BIG;
			w = reallocarray(v, m, sizeof(*v));
			if (!w)
				return -ENOMEM;
			v = w;
			allocated = m;
		}
		/* libfdisk writes whole sectors; it reports the struct sizes */
		if (offset > UINT64_MAX - size - sector_bytes)
			return -EOVERFLOW;
		v[n++] = (struct ptable_region){
			ALIGN_DOWN(offset, (uint64_t) sector_bytes),
			ALIGN_UP(offset + size, (uint64_t) sector_bytes) -
				ALIGN_DOWN(offset, (uint64_t) sector_bytes),
		};
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), region_cmp);
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}
