/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Export one disk of an image as raw, gce-tar, qcow2, vhd or vmdk. The disk
 * reader (export_disk_walk) turns the manifest into an ordered stream of
 * data and zero pieces; each writer below consumes that stream once (gce-tar
 * twice: the tar header holds the sparse map, so a first walk that reads no
 * chunk computes it). Chunks are read and verified on worker threads ahead of
 * the writer (pmap); vmdk and gce-tar also deflate on worker threads (zpool).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "imager/export.h"
#include "imager/extents.h"
#include "imager/flash.h"
#include "imager/ptable.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/pmap.h"

DEFINE_CLEANUP(struct ptable *, ptable_free)

static const char *const export_format_names[_EXPORT_FORMAT_MAX] = {
	[EXPORT_RAW] = "raw",   [EXPORT_GCE_TAR] = "gce-tar", [EXPORT_QCOW2] = "qcow2",
	[EXPORT_VHD] = "vhd",   [EXPORT_VMDK] = "vmdk",
};

const char *export_format_to_string(enum export_format f)
{
	return f >= 0 && f < _EXPORT_FORMAT_MAX ? export_format_names[f] : NULL;
}

enum export_format export_format_from_string(const char *s)
{
	for (int i = 0; s && i < _EXPORT_FORMAT_MAX; i++)
		if (strcmp(s, export_format_names[i]) == 0)
			return i;
	return _EXPORT_FORMAT_INVALID;
}

bool export_format_needs_seek(enum export_format f)
{
	return f == EXPORT_RAW || f == EXPORT_QCOW2 || f == EXPORT_VHD;
}

/* VHD, VMDK and Compute Engine disks address 512-byte sectors */
#define SECTOR_512 512u

int export_disk_size(const struct manifest_disk *md, enum export_format f, uint64_t *ret,
		     char **ret_reason)
{
	uint64_t size = md->size_bytes;

	if (f < 0 || f >= _EXPORT_FORMAT_MAX)
		return -EINVAL;
	if ((f == EXPORT_GCE_TAR || f == EXPORT_VHD || f == EXPORT_VMDK) &&
	    md->logical_sector_bytes != SECTOR_512) {
		if (ret_reason)
			(void) asprintf(ret_reason,
					"the image's disk has %u-byte sectors, and %s disks have "
					"512-byte sectors (its partition table would not be found)",
					md->logical_sector_bytes, export_format_to_string(f));
		return -EXDEV;
	}
	if (size == 0 || size > EXPORT_DISK_BYTES_MAX || size % SECTOR_512 != 0) {
		if (ret_reason)
			(void) asprintf(ret_reason, "a disk of %llu bytes cannot be exported",
					(unsigned long long) size);
		return -EFBIG;
	}
	if (f == EXPORT_GCE_TAR)
		size = ALIGN_UP(size, EXPORT_GCE_ALIGN_BYTES);
	else if (f == EXPORT_VHD)
		size = ALIGN_UP(size, EXPORT_VHD_ALIGN_BYTES);
	*ret = size;
	return 0;
}

/* --- byte order ----------------------------------------------------------------------- */

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t) (v >> 8), p[1] = (uint8_t) v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t) v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t) v;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t) v, p[1] = (uint8_t) (v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t) v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t) v;
}

/* --- the disk reader -------------------------------------------------------------------- */

/* A range of the rendered partition table, with its bytes. */
struct tbl_region {
	uint64_t offset_bytes, size_bytes;
	uint8_t *buf;
};

static void tbl_regions_free(struct tbl_region *t, size_t n)
{
	for (size_t i = 0; t && i < n; i++)
		free(t[i].buf);
	free(t);
}

/*
 * The table as flash writes it on a fresh file of @disk_size_bytes: exactly the
 * sectors libfdisk renders (overlapping or touching ranges merged), sector 0
 * carrying the image's boot code.
 */
static int tbl_load(const struct manifest_disk *md, uint64_t disk_size_bytes,
		    struct tbl_region **ret, size_t *ret_n)
{
	_cleanup_(ptable_freep) struct ptable *pt = NULL;
	_cleanup_free_ struct ptable_region *regions = NULL;
	_cleanup_close_ int mfd = -EBADF;
	struct tbl_region *t = NULL;
	size_t n_regions = 0, n = 0;
	uint64_t ss = md->logical_sector_bytes;
	int r;

	if (!md->label || strcmp(md->label, "none") == 0) {
		*ret = NULL, *ret_n = 0;
		return 0;
	}
	r = flash_target_ptable(md, disk_size_bytes, false, &pt);
	if (r < 0)
		return r;
	r = ptable_render(pt, disk_size_bytes, md->logical_sector_bytes, &mfd);
	if (r < 0)
		return r;
	r = ptable_regions(mfd, md->logical_sector_bytes, &regions, &n_regions);
	if (r < 0)
		return r;
	/* one more slot: sector 0 is added if libfdisk did not list it */
	t = calloc(n_regions + 1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if (n_regions == 0 || regions[0].offset_bytes > 0)
		t[n++] = (struct tbl_region){ 0, ss, NULL };
	for (size_t i = 0; i < n_regions; i++) {
		uint64_t a = regions[i].offset_bytes, b = a + regions[i].size_bytes;

		if (b > disk_size_bytes || a >= b) {
			tbl_regions_free(t, n);
			return -EBADMSG;
		}
		if (n > 0 && a <= t[n - 1].offset_bytes + t[n - 1].size_bytes) {
			uint64_t end = MAX(b, t[n - 1].offset_bytes + t[n - 1].size_bytes);
			t[n - 1].size_bytes = end - t[n - 1].offset_bytes;
		} else
			t[n++] = (struct tbl_region){ a, b - a, NULL };
	}
	for (size_t i = 0; i < n; i++) {
		/* bounded: ptable_regions() lists at most 65536 ranges of table structures */
		if (t[i].size_bytes > (UINT64_C(64) << 20)) {
			tbl_regions_free(t, n);
			return -EBADMSG;
		}
		t[i].buf = malloc(t[i].size_bytes);
		r = t[i].buf ? pread_all(mfd, t[i].buf, t[i].size_bytes, t[i].offset_bytes)
			     : -ENOMEM;
		if (r < 0) {
			tbl_regions_free(t, n);
			return r;
		}
	}
	/* sector 0: the table's signature and partition entries, and the image's boot code */
	memcpy(t[0].buf, md->boot_code, MIN((size_t) MANIFEST_BOOT_CODE_BYTES, (size_t) ss));
	*ret = t, *ret_n = n;
	return 0;
}

struct walk_item {
	uint64_t offset_bytes;
	uint32_t size_bytes;
	size_t first_extent;
	const struct manifest_chunk *chunk; /* NULL: this position is all zero */
	uint8_t *buf;
};

struct walk_ctx {
	const struct manifest_disk *md;
	struct store *store;
	uint64_t disk_size_bytes;
	bool load;
	export_piece_fn cb;
	void *userdata;
	struct chunk_walk cw;
	struct tbl_region *tbl;
	size_t n_tbl, ti;
	uint64_t pos;
	uint64_t zero_offset, zero_bytes; /* a run of zeros not yet handed on */
	uint64_t data_bytes;
};

static const struct manifest_chunk *chunk_at(const struct manifest_disk *md, uint64_t offset)
{
	size_t lo = 0, hi = md->n_chunks;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (md->chunks[mid].offset_bytes < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < md->n_chunks && md->chunks[lo].offset_bytes == offset ? &md->chunks[lo] : NULL;
}

static int walk_flush_zeros(struct walk_ctx *c)
{
	struct export_piece p = { c->zero_offset, c->zero_bytes, false, NULL };

	if (c->zero_bytes == 0)
		return 0;
	c->zero_bytes = 0;
	return c->cb(&p, c->userdata);
}

/* Hands a piece to the callback; runs of zeros are merged into one piece. */
static int walk_emit(struct walk_ctx *c, uint64_t offset, uint64_t size, bool is_data,
		     const uint8_t *data)
{
	struct export_piece p = { offset, size, is_data, c->load ? data : NULL };
	int r;

	if (size == 0)
		return 0;
	c->pos = offset + size;
	if (!is_data) {
		if (c->zero_bytes == 0)
			c->zero_offset = offset;
		c->zero_bytes += size;
		return 0;
	}
	r = walk_flush_zeros(c);
	if (r < 0)
		return r;
	c->data_bytes += size;
	return c->cb(&p, c->userdata);
}

/*
 * Emits everything from c->pos up to @end: table sectors first, then the
 * extents of @it (a chunk position that contains [c->pos, end)), zeros
 * between them.
 */
static int walk_until(struct walk_ctx *c, const struct walk_item *it, uint64_t end)
{
	const struct manifest_disk *md = c->md;
	size_t ei = it ? it->first_extent : 0;
	int r;

	while (c->pos < end) {
		uint64_t pos = c->pos, stop = end;

		while (c->ti < c->n_tbl &&
		       c->tbl[c->ti].offset_bytes + c->tbl[c->ti].size_bytes <= pos)
			c->ti++;
		if (c->ti < c->n_tbl) {
			const struct tbl_region *t = &c->tbl[c->ti];
			if (t->offset_bytes <= pos) {
				uint64_t b = MIN(t->offset_bytes + t->size_bytes, end);

				b = MIN(b, pos + CHUNK_SIZE_BYTES);
				r = walk_emit(c, pos, b - pos, true,
					      t->buf + (pos - t->offset_bytes));
				if (r < 0)
					return r;
				continue;
			}
			stop = MIN(stop, t->offset_bytes);
		}
		if (it && it->chunk) {
			while (ei < md->n_extents &&
			       md->extents[ei].offset_bytes + md->extents[ei].size_bytes <= pos)
				ei++;
			if (ei < md->n_extents && md->extents[ei].offset_bytes < stop) {
				const struct manifest_extent *e = &md->extents[ei];
				if (e->offset_bytes <= pos) {
					uint64_t b = MIN(e->offset_bytes + e->size_bytes, stop);
					r = walk_emit(c, pos, b - pos, true,
						      it->buf ? it->buf + (pos - it->offset_bytes)
							      : NULL);
					if (r < 0)
						return r;
					continue;
				}
				stop = e->offset_bytes;
			}
		}
		r = walk_emit(c, pos, stop - pos, false, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

static int walk_produce(void *userdata, uint64_t seq, void *item)
{
	struct walk_ctx *c = userdata;
	struct walk_item *it = item;
	int r = chunk_walk_next(&c->cw, &it->offset_bytes, &it->size_bytes, &it->first_extent);

	if (r <= 0)
		return r;
	it->chunk = chunk_at(c->md, it->offset_bytes);
	return 1;
}

static int walk_work(void *userdata, void *item)
{
	struct walk_ctx *c = userdata;
	struct walk_item *it = item;

	if (!c->load || !it->chunk)
		return 0;
	if (it->chunk->size_bytes != it->size_bytes)
		return -EBADMSG;
	/* decompresses and re-hashes: nothing unverified reaches the export */
	return store_get_chunk(c->store, &it->chunk->id, it->buf, it->size_bytes);
}

static int walk_consume(void *userdata, uint64_t seq, void *item)
{
	struct walk_ctx *c = userdata;
	const struct walk_item *it = item;
	int r;

	r = walk_until(c, NULL, it->offset_bytes);
	if (r >= 0)
		r = walk_until(c, it, it->offset_bytes + it->size_bytes);
	return r;
}

int export_disk_walk(const struct manifest_disk *md, struct store *s, uint64_t disk_size_bytes,
		     bool load_data, export_piece_fn cb, void *userdata, uint64_t *ret_data_bytes)
{
	struct walk_ctx c = {
		.md = md, .store = s, .disk_size_bytes = disk_size_bytes, .load = load_data,
		.cb = cb, .userdata = userdata,
	};
	static const struct pmap_ops ops = {
		.produce = walk_produce, .work = walk_work, .consume = walk_consume,
	};
	int r;

	if (disk_size_bytes < md->size_bytes || disk_size_bytes > EXPORT_DISK_BYTES_MAX)
		return -EINVAL;
	r = tbl_load(md, disk_size_bytes, &c.tbl, &c.n_tbl);
	if (r < 0)
		return r;
	chunk_walk_init(&c.cw, md->extents, md->n_extents, md->size_bytes);

	if (load_data) {
		unsigned n_workers = cpus_online(), n_slots = 2 * n_workers + 2;
		struct walk_item *items = calloc(n_slots, sizeof(*items));

		r = items ? 0 : -ENOMEM;
		for (unsigned i = 0; r >= 0 && i < n_slots; i++) {
			items[i].buf = malloc(CHUNK_SIZE_BYTES);
			if (!items[i].buf)
				r = -ENOMEM;
		}
		if (r >= 0)
			r = pmap_run(&ops, &c, items, sizeof(*items), n_slots, n_workers);
		for (unsigned i = 0; items && i < n_slots; i++)
			free(items[i].buf);
		free(items);
	} else {
		/* the map only: nothing to read, no threads */
		struct walk_item it = {};
		while ((r = walk_produce(&c, 0, &it)) > 0) {
			r = walk_consume(&c, 0, &it);
			if (r < 0)
				break;
		}
	}
	if (r >= 0)
		r = walk_until(&c, NULL, disk_size_bytes);
	if (r >= 0)
		r = walk_flush_zeros(&c);
	tbl_regions_free(c.tbl, c.n_tbl);
	if (r < 0)
		return r;
	if (ret_data_bytes)
		*ret_data_bytes = c.data_bytes;
	return 0;
}

/* --- the export driver: progress, stats, one writer per format -------------------------------- */

struct export_ctx {
	int fd;
	const struct manifest *m;
	const struct manifest_disk *md;
	struct store *store;
	const struct export_options *o;
	struct export_stats *stats;
	uint64_t disk_size_bytes;
	uint64_t total_bytes; /* data bytes the walk will yield, for progress */
	uint64_t done_bytes;
	double start, last_report;
	export_piece_fn writer;
	void *writer_data;
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

static void report(struct export_ctx *x, bool force)
{
	double t = now_s();

	if (!x->o->progress || (!force && t - x->last_report < 0.5))
		return;
	x->last_report = t;
	x->o->progress(&(struct progress){ .phase = "export", .disk_index = x->o->disk_index,
					   .done_bytes = MIN(x->done_bytes, x->total_bytes),
					   .total_bytes = x->total_bytes,
					   .elapsed_s = t - x->start },
		       x->o->userdata);
}

static int count_piece(const struct export_piece *p, void *userdata)
{
	return 0;
}

static int drive_piece(const struct export_piece *p, void *userdata)
{
	struct export_ctx *x = userdata;
	int r = x->writer(p, x->writer_data);

	if (r < 0)
		return r;
	if (p->is_data) {
		x->done_bytes += p->size_bytes;
		report(x, false);
	}
	return 0;
}

/* Runs the loading walk into @writer. */
static int export_run(struct export_ctx *x, export_piece_fn writer, void *writer_data)
{
	uint64_t data = 0;
	int r;

	x->writer = writer, x->writer_data = writer_data;
	r = export_disk_walk(x->md, x->store, x->disk_size_bytes, true, drive_piece, x, &data);
	if (r < 0)
		return r;
	x->stats->data_bytes = data;
	report(x, true);
	return 0;
}

/* --- raw and VHD: a sparse file; holes are never written ------------------------------------ */

/* aligned all-zero blocks of this size inside data stay holes; smaller zero runs are written */
#define SPARSE_BLOCK_BYTES 4096u

static int sparse_piece(const struct export_piece *p, void *userdata)
{
	int fd = *(int *) userdata;
	uint64_t a = p->offset_bytes, end = p->offset_bytes + p->size_bytes;

	if (!p->is_data)
		return 0;
	/* skip the all-zero aligned blocks inside data: they stay holes */
	while (a < end) {
		uint64_t b = MIN(ALIGN_DOWN(a, SPARSE_BLOCK_BYTES) + SPARSE_BLOCK_BYTES, end);
		const uint8_t *d = p->data + (a - p->offset_bytes);

		if (memeqzero(d, b - a)) {
			a = b;
			continue;
		}
		/* extend over the following non-zero blocks */
		while (b < end) {
			uint64_t c = MIN(b + SPARSE_BLOCK_BYTES, end);
			if (memeqzero(p->data + (b - p->offset_bytes), c - b))
				break;
			b = c;
		}
		int r = pwrite_all(fd, d, b - a, a);
		if (r < 0)
			return r;
		a = b;
	}
	return 0;
}

static int write_raw(struct export_ctx *x)
{
	int r;

	if (ftruncate(x->fd, (off_t) x->disk_size_bytes) < 0)
		return -errno;
	r = export_run(x, sparse_piece, &x->fd);
	if (r < 0)
		return r;
	x->stats->file_bytes = x->disk_size_bytes;
	return 0;
}

/*
 * VHD footer (Microsoft "Virtual Hard Disk Image Format Specification" 1.0),
 * 512 bytes, big-endian, at the end of a fixed VHD:
 *     0 cookie "conectix"          8 features 0x00000002 (reserved bit, always set)
 *    12 version 0x00010000         16 data offset 0xFFFFFFFFFFFFFFFF (fixed: none)
 *    24 timestamp, s since 2000-01-01 UTC
 *    28 creator application        32 creator version     36 creator host OS
 *    40 original size              48 current size
 *    56 geometry: cylinders u16, heads u8, sectors per track u8
 *    60 disk type 2 (fixed)        64 checksum            68 unique id (16 bytes)
 *    84 saved state 0              85..511 zero
 */
#define VHD_FOOTER_BYTES 512
#define VHD_EPOCH_UNIX INT64_C(946684800) /* 2000-01-01T00:00:00Z */
#define VHD_DISK_TYPE_FIXED 2u

uint32_t export_vhd_checksum(const uint8_t footer[512])
{
	uint32_t sum = 0;

	for (size_t i = 0; i < VHD_FOOTER_BYTES; i++)
		if (i < 64 || i >= 68)
			sum += footer[i];
	return ~sum;
}

/* CHS geometry as the VHD specification's appendix computes it (capped at 65535/16/255). */
static void vhd_geometry(uint64_t size_bytes, uint16_t *ret_c, uint8_t *ret_h, uint8_t *ret_s)
{
	uint64_t total = size_bytes / SECTOR_512, cth;
	uint32_t spt, heads;

	if (total > UINT64_C(65535) * 16 * 255)
		total = UINT64_C(65535) * 16 * 255;
	if (total >= UINT64_C(65535) * 16 * 63) {
		spt = 255, heads = 16;
		cth = total / spt;
	} else {
		spt = 17;
		cth = total / spt;
		heads = (uint32_t) ((cth + 1023) / 1024);
		if (heads < 4)
			heads = 4;
		if (cth >= heads * UINT64_C(1024) || heads > 16) {
			spt = 31, heads = 16;
			cth = total / spt;
		}
		if (cth >= heads * UINT64_C(1024)) {
			spt = 63, heads = 16;
			cth = total / spt;
		}
	}
	*ret_c = (uint16_t) MIN(cth / heads, (uint64_t) 65535);
	*ret_h = (uint8_t) heads;
	*ret_s = (uint8_t) spt;
}

static void vhd_footer(const struct export_ctx *x, uint8_t f[VHD_FOOTER_BYTES])
{
	int64_t ts = x->m->created_unix - VHD_EPOCH_UNIX;
	uint16_t c;
	uint8_t h, s;

	memset(f, 0, VHD_FOOTER_BYTES);
	memcpy(f, "conectix", 8);
	put_be32(f + 8, 0x00000002);
	put_be32(f + 12, 0x00010000);
	put_be64(f + 16, UINT64_MAX);
	put_be32(f + 24, (uint32_t) (ts < 0 ? 0 : ts > UINT32_MAX ? UINT32_MAX : ts));
	/*
	 * Creator "win ": readers (QEMU among them) size a VHD by its CHS geometry
	 * unless the creator is one known to use the current-size field, which
	 * rounds most sizes down. Hyper-V's "win " is what Azure itself writes.
	 */
	memcpy(f + 28, "win ", 4);
	put_be32(f + 32, 0x000a0000); /* creator version 10.0 */
	memcpy(f + 36, "Wi2k", 4);
	put_be64(f + 40, x->disk_size_bytes);
	put_be64(f + 48, x->disk_size_bytes);
	vhd_geometry(x->disk_size_bytes, &c, &h, &s);
	put_be16(f + 56, c);
	f[58] = h, f[59] = s;
	put_be32(f + 60, VHD_DISK_TYPE_FIXED);
	/* unique id: from the image's content digest and disk index, so exports reproduce */
	memcpy(f + 68, x->m->content_digest, 16);
	f[68 + 15] ^= (uint8_t) x->o->disk_index;
	f[68 + 6] = (uint8_t) ((f[68 + 6] & 0x0f) | 0x40); /* RFC 4122 version 4 layout */
	f[68 + 8] = (uint8_t) ((f[68 + 8] & 0x3f) | 0x80);
	put_be32(f + 64, export_vhd_checksum(f));
}

static int write_vhd(struct export_ctx *x)
{
	uint8_t footer[VHD_FOOTER_BYTES];
	int r;

	r = write_raw(x);
	if (r < 0)
		return r;
	vhd_footer(x, footer);
	r = pwrite_all(x->fd, footer, sizeof(footer), x->disk_size_bytes);
	if (r < 0)
		return r;
	x->stats->file_bytes = x->disk_size_bytes + VHD_FOOTER_BYTES;
	return 0;
}

/* --- qcow2 -------------------------------------------------------------------------------- */

/*
 * qcow2 version 3 (QEMU's docs/interop/qcow2.txt), written in one pass:
 *
 *   cluster 0        header (big-endian; written last), extension end marker
 *   clusters 1..     the non-zero data clusters in disk order, each L2 table
 *                    right after the last data cluster it maps
 *   then             the L1 table, the refcount table, the refcount blocks
 *
 * Every cluster in the file is used exactly once, so every refcount is 1 and
 * every L1/L2 entry carries QCOW_OFLAG_COPIED; the refcount blocks count
 * themselves (a fixed point computed before they are written).
 */
#define QCOW2_MAGIC UINT32_C(0x514649fb) /* "QFI\xfb" */
#define QCOW2_CLUSTER_BITS 16u
#define QCOW2_HEADER_V3_BYTES 104u
#define QCOW2_REFCOUNT_ORDER 4u /* 16-bit refcounts */
#define QCOW2_OFLAG_COPIED (UINT64_C(1) << 63)
#define QCOW2_L2_ENTRIES (EXPORT_QCOW2_CLUSTER_BYTES / 8)
#define QCOW2_REFCOUNTS_PER_BLOCK (EXPORT_QCOW2_CLUSTER_BYTES / 2)
#define QCOW2_RT_ENTRIES_PER_CLUSTER (EXPORT_QCOW2_CLUSTER_BYTES / 8)

_Static_assert(EXPORT_QCOW2_CLUSTER_BYTES == 1u << QCOW2_CLUSTER_BITS, "qcow2 cluster size");

struct qcow2 {
	int fd;
	uint8_t *cbuf;        /* the cluster being assembled */
	uint64_t cidx;        /* its index in the virtual disk */
	bool cdirty;          /* cbuf holds data for cidx (else it is all zero) */
	uint64_t next_host;   /* next free cluster in the file, in bytes */
	uint64_t *l1;         /* host-endian while building */
	uint64_t l1_size;
	uint64_t *l2;
	int64_t l2_index;     /* the L1 slot @l2 belongs to, -1: none */
	bool l2_used;
	uint8_t *obuf;        /* big-endian copy of a table on its way out */
};

static int qcow2_alloc_write(struct qcow2 *q, const void *data, uint64_t *ret_host)
{
	uint64_t host = q->next_host;
	int r = pwrite_all(q->fd, data, EXPORT_QCOW2_CLUSTER_BYTES, host);

	if (r < 0)
		return r;
	q->next_host += EXPORT_QCOW2_CLUSTER_BYTES;
	*ret_host = host;
	return 0;
}

static int qcow2_flush_l2(struct qcow2 *q)
{
	uint64_t host;
	int r;

	if (q->l2_index < 0 || !q->l2_used)
		return 0;
	for (size_t i = 0; i < QCOW2_L2_ENTRIES; i++)
		put_be64(q->obuf + 8 * i, q->l2[i]);
	r = qcow2_alloc_write(q, q->obuf, &host);
	if (r < 0)
		return r;
	q->l1[q->l2_index] = host | QCOW2_OFLAG_COPIED;
	q->l2_used = false;
	return 0;
}

static int qcow2_flush_cluster(struct qcow2 *q)
{
	uint64_t host, l2_index = q->cidx / QCOW2_L2_ENTRIES;
	int r;

	if (!q->cdirty)
		return 0;
	q->cdirty = false;
	if (memeqzero(q->cbuf, EXPORT_QCOW2_CLUSTER_BYTES))
		return 0; /* unallocated reads as zero: no backing file */
	if ((int64_t) l2_index != q->l2_index) {
		r = qcow2_flush_l2(q);
		if (r < 0)
			return r;
		q->l2_index = (int64_t) l2_index;
		memset(q->l2, 0, EXPORT_QCOW2_CLUSTER_BYTES);
	}
	r = qcow2_alloc_write(q, q->cbuf, &host);
	if (r < 0)
		return r;
	q->l2[q->cidx % QCOW2_L2_ENTRIES] = host | QCOW2_OFLAG_COPIED;
	q->l2_used = true;
	return 0;
}

/* Copies data pieces into clusters; zero pieces need nothing: a new cluster starts zeroed. */
static int qcow2_piece(const struct export_piece *p, void *userdata)
{
	struct qcow2 *q = userdata;
	uint64_t off = p->offset_bytes, end = p->offset_bytes + p->size_bytes;
	int r;

	if (!p->is_data)
		return 0;
	while (off < end) {
		uint64_t ci = off / EXPORT_QCOW2_CLUSTER_BYTES;
		uint64_t in = off % EXPORT_QCOW2_CLUSTER_BYTES;
		uint64_t k = MIN(end - off, EXPORT_QCOW2_CLUSTER_BYTES - in);

		if (ci != q->cidx) {
			r = qcow2_flush_cluster(q);
			if (r < 0)
				return r;
			q->cidx = ci;
		}
		if (!q->cdirty) {
			memset(q->cbuf, 0, EXPORT_QCOW2_CLUSTER_BYTES);
			q->cdirty = true;
		}
		memcpy(q->cbuf + in, p->data + (off - p->offset_bytes), k);
		off += k;
	}
	return 0;
}

static int qcow2_finish(struct qcow2 *q, uint64_t disk_size_bytes, uint64_t *ret_file_bytes)
{
	const uint64_t cl = EXPORT_QCOW2_CLUSTER_BYTES;
	uint64_t l1_offset, l1_clusters, used, n_blocks = 0, n_rt = 0, rt_offset, total;
	uint8_t *hdr = q->obuf;
	int r;

	r = qcow2_flush_cluster(q);
	if (r >= 0)
		r = qcow2_flush_l2(q);
	if (r < 0)
		return r;

	/* the L1 table, whole clusters */
	l1_offset = q->next_host;
	l1_clusters = DIV_ROUND_UP(MAX(q->l1_size, (uint64_t) 1) * 8, cl);
	for (uint64_t c = 0; c < l1_clusters; c++) {
		uint64_t host;
		memset(q->obuf, 0, cl);
		for (uint64_t i = 0; i < cl / 8 && c * (cl / 8) + i < q->l1_size; i++)
			put_be64(q->obuf + 8 * i, q->l1[c * (cl / 8) + i]);
		r = qcow2_alloc_write(q, q->obuf, &host);
		if (r < 0)
			return r;
	}

	/* refcounts: enough blocks for every cluster including the blocks and the table */
	used = q->next_host / cl;
	for (;;) {
		uint64_t b = DIV_ROUND_UP(used + n_blocks + n_rt,
					  (uint64_t) QCOW2_REFCOUNTS_PER_BLOCK);
		uint64_t t = DIV_ROUND_UP(b, (uint64_t) QCOW2_RT_ENTRIES_PER_CLUSTER);
		if (b == n_blocks && t == n_rt)
			break;
		n_blocks = b, n_rt = t;
	}
	total = used + n_blocks + n_rt;
	rt_offset = q->next_host;
	for (uint64_t c = 0; c < n_rt; c++) {
		uint64_t host;
		memset(q->obuf, 0, cl);
		for (uint64_t i = 0; i < QCOW2_RT_ENTRIES_PER_CLUSTER; i++) {
			uint64_t b = c * QCOW2_RT_ENTRIES_PER_CLUSTER + i;
			if (b >= n_blocks)
				break;
			put_be64(q->obuf + 8 * i, rt_offset + (n_rt + b) * cl);
		}
		r = qcow2_alloc_write(q, q->obuf, &host);
		if (r < 0)
			return r;
	}
	for (uint64_t b = 0; b < n_blocks; b++) {
		uint64_t host;
		memset(q->obuf, 0, cl);
		for (uint64_t i = 0; i < QCOW2_REFCOUNTS_PER_BLOCK; i++) {
			if (b * QCOW2_REFCOUNTS_PER_BLOCK + i >= total)
				break;
			put_be16(q->obuf + 2 * i, 1);
		}
		r = qcow2_alloc_write(q, q->obuf, &host);
		if (r < 0)
			return r;
	}
	if (q->next_host != total * cl)
		return -EIO; /* cannot happen: the fixed point above counted every cluster */

	/* the header, last: a reader never sees a header pointing at unwritten tables */
	memset(hdr, 0, cl);
	put_be32(hdr + 0, QCOW2_MAGIC);
	put_be32(hdr + 4, 3);                           /* version */
	put_be64(hdr + 8, 0);                           /* backing_file_offset */
	put_be32(hdr + 16, 0);                          /* backing_file_size */
	put_be32(hdr + 20, QCOW2_CLUSTER_BITS);
	put_be64(hdr + 24, disk_size_bytes);            /* size */
	put_be32(hdr + 32, 0);                          /* crypt_method */
	put_be32(hdr + 36, (uint32_t) q->l1_size);      /* l1_size */
	put_be64(hdr + 40, l1_offset);                  /* l1_table_offset */
	put_be64(hdr + 48, rt_offset);                  /* refcount_table_offset */
	put_be32(hdr + 56, (uint32_t) n_rt);            /* refcount_table_clusters */
	put_be32(hdr + 60, 0);                          /* nb_snapshots */
	put_be64(hdr + 64, 0);                          /* snapshots_offset */
	put_be64(hdr + 72, 0);                          /* incompatible_features */
	put_be64(hdr + 80, 0);                          /* compatible_features */
	put_be64(hdr + 88, 0);                          /* autoclear_features */
	put_be32(hdr + 96, QCOW2_REFCOUNT_ORDER);
	put_be32(hdr + 100, QCOW2_HEADER_V3_BYTES);     /* header_length */
	/* 104: header extension "end" (type 0, length 0): already zero */
	r = pwrite_all(q->fd, hdr, cl, 0);
	if (r < 0)
		return r;
	*ret_file_bytes = total * cl;
	return 0;
}

static int write_qcow2(struct export_ctx *x)
{
	struct qcow2 q = {
		.fd = x->fd, .cidx = UINT64_MAX, .next_host = EXPORT_QCOW2_CLUSTER_BYTES,
		.l2_index = -1,
	};
	uint64_t n_clusters =
		DIV_ROUND_UP(x->disk_size_bytes, (uint64_t) EXPORT_QCOW2_CLUSTER_BYTES);
	int r;

	q.l1_size = DIV_ROUND_UP(n_clusters, (uint64_t) QCOW2_L2_ENTRIES);
	if (q.l1_size > UINT32_MAX)
		return -EFBIG;
	q.l1 = calloc(MAX(q.l1_size, (uint64_t) 1), sizeof(uint64_t));
	q.l2 = malloc(EXPORT_QCOW2_CLUSTER_BYTES);
	q.cbuf = malloc(EXPORT_QCOW2_CLUSTER_BYTES);
	q.obuf = malloc(EXPORT_QCOW2_CLUSTER_BYTES);
	r = q.l1 && q.l2 && q.cbuf && q.obuf ? 0 : -ENOMEM;
	if (r >= 0)
		r = export_run(x, qcow2_piece, &q);
	if (r >= 0)
		r = qcow2_finish(&q, x->disk_size_bytes, &x->stats->file_bytes);
	free(q.l1);
	free(q.l2);
	free(q.cbuf);
	free(q.obuf);
	return r;
}

/* --- appending output (gce-tar, vmdk) ------------------------------------------------------ */

#define OUT_BUF_BYTES (UINT32_C(1) << 20)

struct out {
	int fd;
	uint8_t *buf;
	size_t n;
	uint64_t pos; /* bytes handed to out_write() so far */
};

static int out_flush(struct out *o)
{
	int r = o->n ? write_all(o->fd, o->buf, o->n) : 0;

	o->n = 0;
	return r;
}

static int out_write(struct out *o, const void *data, size_t size)
{
	const uint8_t *p = data;

	o->pos += size;
	while (size > 0) {
		size_t k = MIN(size, OUT_BUF_BYTES - o->n);
		if (p)
			memcpy(o->buf + o->n, p, k);
		else
			memset(o->buf + o->n, 0, k);
		o->n += k, size -= k;
		if (p)
			p += k;
		if (o->n == OUT_BUF_BYTES) {
			int r = out_flush(o);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* --- VMDK streamOptimized ------------------------------------------------------------------- */

/*
 * VMware "Virtual Disk Format 5.0", stream-optimized compressed sparse extent
 * (all integers little-endian, offsets and sizes in 512-byte sectors):
 *
 *   sector 0      SparseExtentHeader, gdOffset = GD_AT_END (the footer has it)
 *   1..20         embedded descriptor (createType="streamOptimized")
 *   128..         grains in disk order, each: u64 lba, u32 compressed size,
 *                 zlib (deflate) data of the whole 64 KiB grain, zero-padded to
 *                 a sector; all-zero grains are not written
 *                 after the grains of each 32 MiB span that has any: a grain
 *                 table marker (u64 sectors = 4, u32 0, u32 type 1, padding)
 *                 and the table (512 u32 grain sectors)
 *   then          grain directory marker (type 2) and the directory (u32 table
 *                 sectors; 0 = no table, all zero), footer marker (type 3) and
 *                 the footer (the header with the real gdOffset), and the end
 *                 of stream marker (one zero sector)
 */
#define VMDK_MAGIC UINT32_C(0x564d444b) /* "KDMV" */
#define VMDK_VERSION 3u
#define VMDK_FLAG_NL_DETECT (UINT32_C(1) << 0)
#define VMDK_FLAG_COMPRESSED (UINT32_C(1) << 16)
#define VMDK_FLAG_MARKERS (UINT32_C(1) << 17)
#define VMDK_COMPRESS_DEFLATE 1u
#define VMDK_GD_AT_END UINT64_MAX
#define VMDK_GRAIN_SECTORS (EXPORT_VMDK_GRAIN_BYTES / SECTOR_512)
#define VMDK_GTES_PER_GT 512u
#define VMDK_GT_SECTORS (VMDK_GTES_PER_GT * 4 / SECTOR_512)
#define VMDK_DESCRIPTOR_OFFSET 1u
#define VMDK_DESCRIPTOR_SECTORS 20u
#define VMDK_OVERHEAD_SECTORS 128u /* grains start one grain in, as VMware's own streams */
#define VMDK_MARKER_EOS 0u
#define VMDK_MARKER_GT 1u
#define VMDK_MARKER_GD 2u
#define VMDK_MARKER_FOOTER 3u
#define VMDK_GRAIN_MARKER_BYTES 12u

/* --- an ordered pool of compression jobs (vmdk grains, gzip blocks) ------------------------ */

/*
 * Deflate is the slow part of vmdk and gce-tar (tens of MB/s per core), and
 * its jobs are independent: each VMDK grain is its own zlib stream, and the
 * gzip member is built from raw deflate blocks that each end on a byte
 * boundary (Z_SYNC_FLUSH, the last with Z_FINISH), as pigz does. Workers
 * take jobs in order and finish them in any order; the calling thread writes
 * them strictly in order, so the output does not depend on the timing.
 */
enum zkind {
	ZKIND_VMDK_GRAIN, /* in: one grain; out: grain marker + zlib data, padded to a sector */
	ZKIND_GZIP_BLOCK, /* in: a block of the tar stream; out: raw deflate, crc32 of the input */
};

struct zjob {
	uint8_t *in, *out;
	size_t in_len, out_len;
	uint64_t tag;    /* ZKIND_VMDK_GRAIN: the grain's index */
	bool last;       /* ZKIND_GZIP_BLOCK: ends the deflate stream */
	uint32_t crc;
	bool done;
	int error;
};

typedef int (*zjob_write_fn)(struct zjob *j, void *userdata);

/* beyond this, memory (two 1 MiB buffers per job) grows faster than the writer can keep up */
#define ZPOOL_THREADS_MAX 16u

struct zpool {
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv;
	enum zkind kind;
	int level;
	struct zjob *jobs;
	unsigned n_jobs, n_threads;
	pthread_t *threads;
	size_t in_cap, out_cap;
	uint64_t submitted, taken, written;
	bool stop;
	zjob_write_fn write;
	void *userdata;
};

static int zjob_run(struct zpool *p, struct zjob *j, z_stream *zs)
{
	size_t n;

	if (deflateReset(zs) != Z_OK)
		return -EIO;
	zs->next_in = j->in;
	zs->avail_in = (uInt) j->in_len;
	if (p->kind == ZKIND_VMDK_GRAIN) {
		zs->next_out = j->out + VMDK_GRAIN_MARKER_BYTES;
		zs->avail_out = (uInt) (p->out_cap - VMDK_GRAIN_MARKER_BYTES);
		if (deflate(zs, Z_FINISH) != Z_STREAM_END)
			return -EIO; /* out_cap is deflateBound(): cannot happen */
		n = p->out_cap - VMDK_GRAIN_MARKER_BYTES - zs->avail_out;
		put_le64(j->out, j->tag * VMDK_GRAIN_SECTORS);
		put_le32(j->out + 8, (uint32_t) n);
		n += VMDK_GRAIN_MARKER_BYTES;
		j->out_len = ALIGN_UP(n, (size_t) SECTOR_512);
		memset(j->out + n, 0, j->out_len - n);
		return 0;
	}
	zs->next_out = j->out;
	zs->avail_out = (uInt) p->out_cap;
	if (deflate(zs, j->last ? Z_FINISH : Z_SYNC_FLUSH) == Z_STREAM_ERROR ||
	    zs->avail_in != 0 || zs->avail_out == 0)
		return -EIO; /* out_cap has room for all of it: cannot happen */
	j->out_len = p->out_cap - zs->avail_out;
	j->crc = (uint32_t) crc32(0, j->in, (uInt) j->in_len);
	return 0;
}

static void *zpool_worker(void *userdata)
{
	struct zpool *p = userdata;
	z_stream zs = {};
	int init;

	init = p->kind == ZKIND_VMDK_GRAIN
		       ? deflateInit(&zs, p->level)
		       : deflateInit2(&zs, p->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct zjob *j;
		int r;

		while (!p->stop && p->taken == p->submitted)
			pthread_cond_wait(&p->work_cv, &p->mu);
		if (p->stop)
			break;
		j = &p->jobs[p->taken++ % p->n_jobs];
		pthread_mutex_unlock(&p->mu);
		r = init == Z_OK ? zjob_run(p, j, &zs) : -ENOMEM;
		pthread_mutex_lock(&p->mu);
		j->error = r;
		j->done = true;
		pthread_cond_broadcast(&p->done_cv);
	}
	pthread_mutex_unlock(&p->mu);
	if (init == Z_OK)
		deflateEnd(&zs);
	return NULL;
}

static void zpool_stop(struct zpool *p)
{
	if (p->threads) {
		pthread_mutex_lock(&p->mu);
		p->stop = true;
		pthread_cond_broadcast(&p->work_cv);
		pthread_mutex_unlock(&p->mu);
		for (unsigned i = 0; i < p->n_threads; i++)
			pthread_join(p->threads[i], NULL);
		free(p->threads);
		p->threads = NULL;
	}
	for (unsigned i = 0; p->jobs && i < p->n_jobs; i++) {
		free(p->jobs[i].in);
		free(p->jobs[i].out);
	}
	free(p->jobs);
	p->jobs = NULL;
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->done_cv);
	pthread_mutex_destroy(&p->mu);
}

static int zpool_start(struct zpool *p, enum zkind kind, size_t in_cap, zjob_write_fn write,
		       void *userdata)
{
	z_stream zs = {};

	*p = (struct zpool){ .kind = kind, .level = Z_DEFAULT_COMPRESSION, .in_cap = in_cap,
			     .write = write, .userdata = userdata };
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	/* room for the whole output of a job, whatever the data */
	if (deflateInit(&zs, p->level) != Z_OK)
		return -ENOMEM;
	p->out_cap = ALIGN_UP(VMDK_GRAIN_MARKER_BYTES + deflateBound(&zs, (uLong) in_cap) + 64,
			      (size_t) SECTOR_512);
	deflateEnd(&zs);
	p->n_threads = MIN(cpus_online(), ZPOOL_THREADS_MAX);
	p->n_jobs = 2 * p->n_threads + 2; /* enough to keep every worker busy while one is written */
	p->jobs = calloc(p->n_jobs, sizeof(*p->jobs));
	p->threads = calloc(p->n_threads, sizeof(*p->threads));
	if (!p->jobs || !p->threads)
		goto oom;
	for (unsigned i = 0; i < p->n_jobs; i++) {
		p->jobs[i].in = malloc(in_cap);
		p->jobs[i].out = malloc(p->out_cap);
		if (!p->jobs[i].in || !p->jobs[i].out)
			goto oom;
	}
	for (unsigned i = 0; i < p->n_threads; i++)
		if (pthread_create(&p->threads[i], NULL, zpool_worker, p) != 0) {
			p->n_threads = i;
			zpool_stop(p);
			return -EAGAIN;
		}
	return 0;
oom:
	p->n_threads = 0;
	free(p->threads);
	p->threads = NULL;
	zpool_stop(p);
	return -ENOMEM;
}

/* Writes the oldest job once it is done. */
static int zpool_write_oldest(struct zpool *p)
{
	struct zjob *j = &p->jobs[p->written % p->n_jobs];
	int r;

	pthread_mutex_lock(&p->mu);
	while (!j->done)
		pthread_cond_wait(&p->done_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	r = j->error < 0 ? j->error : p->write(j, p->userdata);
	p->written++;
	return r;
}

/* A free job to fill (the caller sets in_len, tag, last), writing older ones to make room. */
static int zpool_next(struct zpool *p, struct zjob **ret)
{
	struct zjob *j;

	if (p->submitted - p->written == p->n_jobs) {
		int r = zpool_write_oldest(p);
		if (r < 0)
			return r;
	}
	j = &p->jobs[p->submitted % p->n_jobs];
	j->in_len = j->out_len = 0;
	j->tag = 0, j->last = false, j->done = false, j->error = 0;
	*ret = j;
	return 0;
}

static void zpool_submit(struct zpool *p)
{
	pthread_mutex_lock(&p->mu);
	p->submitted++;
	pthread_cond_signal(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
}

static int zpool_drain(struct zpool *p)
{
	while (p->written < p->submitted) {
		int r = zpool_write_oldest(p);
		if (r < 0)
			return r;
	}
	return 0;
}

struct vmdk {
	struct out out;
	uint64_t capacity_sectors;
	struct zpool pool;
	bool pool_ready;
	struct zjob *job;       /* the grain being assembled, NULL: none */
	uint64_t gidx;
	uint32_t gt[VMDK_GTES_PER_GT];
	int64_t gt_index;
	bool gt_used;
	uint32_t *gd;
	uint64_t n_gd;
};

static void vmdk_header(const struct vmdk *v, uint64_t gd_offset, uint8_t h[SECTOR_512])
{
	memset(h, 0, SECTOR_512);
	put_le32(h + 0, VMDK_MAGIC);
	put_le32(h + 4, VMDK_VERSION);
	put_le32(h + 8, VMDK_FLAG_NL_DETECT | VMDK_FLAG_COMPRESSED | VMDK_FLAG_MARKERS);
	put_le64(h + 12, v->capacity_sectors);
	put_le64(h + 20, VMDK_GRAIN_SECTORS);
	put_le64(h + 28, VMDK_DESCRIPTOR_OFFSET);
	put_le64(h + 36, VMDK_DESCRIPTOR_SECTORS);
	put_le32(h + 44, VMDK_GTES_PER_GT);
	put_le64(h + 48, 0); /* rgdOffset: no redundant directory in a stream */
	put_le64(h + 56, gd_offset);
	put_le64(h + 64, VMDK_OVERHEAD_SECTORS);
	h[72] = 0;           /* uncleanShutdown */
	h[73] = '\n', h[74] = ' ', h[75] = '\r', h[76] = '\n'; /* newline detection */
	put_le16(h + 77, VMDK_COMPRESS_DEFLATE);
}

static int vmdk_marker(struct vmdk *v, uint64_t val, uint32_t type)
{
	uint8_t m[SECTOR_512] = {};

	put_le64(m, val);
	put_le32(m + 8, 0);
	put_le32(m + 12, type);
	return out_write(&v->out, m, sizeof(m));
}

static int vmdk_sector_now(const struct vmdk *v, uint32_t *ret)
{
	uint64_t s = v->out.pos / SECTOR_512;

	/* grain and table offsets are 32-bit sector numbers: 2 TiB of stream */
	if (s > UINT32_MAX)
		return -EFBIG;
	*ret = (uint32_t) s;
	return 0;
}

static int vmdk_flush_gt(struct vmdk *v)
{
	uint8_t t[VMDK_GT_SECTORS * SECTOR_512];
	uint32_t sector;
	int r;

	if (v->gt_index < 0 || !v->gt_used)
		return 0;
	r = vmdk_marker(v, VMDK_GT_SECTORS, VMDK_MARKER_GT);
	if (r >= 0)
		r = vmdk_sector_now(v, &sector);
	if (r < 0)
		return r;
	for (size_t i = 0; i < VMDK_GTES_PER_GT; i++)
		put_le32(t + 4 * i, v->gt[i]);
	r = out_write(&v->out, t, sizeof(t));
	if (r < 0)
		return r;
	v->gd[v->gt_index] = sector;
	v->gt_used = false;
	return 0;
}

/* Hands the assembled grain to the pool unless it is all zero (then it stays unallocated). */
static int vmdk_submit_grain(struct vmdk *v)
{
	struct zjob *j = v->job;

	if (!j)
		return 0;
	v->job = NULL;
	if (memeqzero(j->in, EXPORT_VMDK_GRAIN_BYTES))
		return 0;
	j->in_len = EXPORT_VMDK_GRAIN_BYTES;
	j->tag = v->gidx;
	zpool_submit(&v->pool);
	return 0;
}

/* In grain order: the grain tables depend on where each grain lands in the file. */
static int vmdk_write_grain(struct zjob *j, void *userdata)
{
	struct vmdk *v = userdata;
	uint64_t gt_index = j->tag / VMDK_GTES_PER_GT;
	uint32_t sector;
	int r;

	if ((int64_t) gt_index != v->gt_index) {
		r = vmdk_flush_gt(v);
		if (r < 0)
			return r;
		v->gt_index = (int64_t) gt_index;
		memset(v->gt, 0, sizeof(v->gt));
	}
	r = vmdk_sector_now(v, &sector);
	if (r >= 0)
		r = out_write(&v->out, j->out, j->out_len);
	if (r < 0)
		return r;
	v->gt[j->tag % VMDK_GTES_PER_GT] = sector;
	v->gt_used = true;
	return 0;
}

static int vmdk_piece(const struct export_piece *p, void *userdata)
{
	struct vmdk *v = userdata;
	uint64_t off = p->offset_bytes, end = p->offset_bytes + p->size_bytes;
	int r;

	if (!p->is_data)
		return 0;
	while (off < end) {
		uint64_t gi = off / EXPORT_VMDK_GRAIN_BYTES, in = off % EXPORT_VMDK_GRAIN_BYTES;
		uint64_t k = MIN(end - off, EXPORT_VMDK_GRAIN_BYTES - in);

		if (v->job && gi != v->gidx) {
			r = vmdk_submit_grain(v);
			if (r < 0)
				return r;
		}
		if (!v->job) {
			r = zpool_next(&v->pool, &v->job);
			if (r < 0)
				return r;
			memset(v->job->in, 0, EXPORT_VMDK_GRAIN_BYTES);
			v->gidx = gi;
		}
		memcpy(v->job->in + in, p->data + (off - p->offset_bytes), k);
		off += k;
	}
	return 0;
}

static int vmdk_descriptor(const struct export_ctx *x, const struct vmdk *v, char **ret)
{
	const char *name = x->o->file_name ? x->o->file_name : "disk.vmdk";
	uint64_t cylinders = MIN(v->capacity_sectors / (16 * 63), (uint64_t) 16383);
	uint32_t cid = (uint32_t) x->m->content_digest[0] << 24 |
		       (uint32_t) x->m->content_digest[1] << 16 |
		       (uint32_t) x->m->content_digest[2] << 8 | x->m->content_digest[3];
	char *d = NULL;

	/* the descriptor's quoted strings cannot carry these */
	if (strpbrk(name, "\"\n\r"))
		return -EINVAL;
	if (asprintf(&d,
		     "# Disk DescriptorFile\n"
		     "version=1\n"
		     "CID=%08x\n"
		     "parentCID=ffffffff\n"
		     "createType=\"streamOptimized\"\n"
		     "\n"
		     "# Extent description\n"
		     "RW %llu SPARSE \"%s\"\n"
		     "\n"
		     "# The Disk Data Base\n"
		     "#DDB\n"
		     "\n"
		     "ddb.virtualHWVersion = \"4\"\n"
		     "ddb.geometry.cylinders = \"%llu\"\n"
		     "ddb.geometry.heads = \"16\"\n"
		     "ddb.geometry.sectors = \"63\"\n"
		     "ddb.adapterType = \"lsilogic\"\n"
		     "ddb.toolsVersion = \"0\"\n",
		     cid ? cid : 1u, (unsigned long long) v->capacity_sectors, name,
		     (unsigned long long) cylinders) < 0)
		return -ENOMEM;
	if (strlen(d) > VMDK_DESCRIPTOR_SECTORS * SECTOR_512) {
		free(d);
		return -ENAMETOOLONG;
	}
	*ret = d;
	return 0;
}

static int vmdk_finish(struct vmdk *v)
{
	uint64_t gd_bytes = ALIGN_UP(v->n_gd * 4, (uint64_t) SECTOR_512);
	_cleanup_free_ uint8_t *gd = NULL;
	uint8_t footer[SECTOR_512];
	uint32_t gd_sector;
	int r;

	r = vmdk_submit_grain(v);
	if (r >= 0)
		r = zpool_drain(&v->pool);
	if (r >= 0)
		r = vmdk_flush_gt(v);
	if (r >= 0)
		r = vmdk_marker(v, gd_bytes / SECTOR_512, VMDK_MARKER_GD);
	if (r >= 0)
		r = vmdk_sector_now(v, &gd_sector);
	if (r < 0)
		return r;
	gd = calloc(1, gd_bytes);
	if (!gd)
		return -ENOMEM;
	for (uint64_t i = 0; i < v->n_gd; i++)
		put_le32(gd + 4 * i, v->gd[i]);
	r = out_write(&v->out, gd, gd_bytes);
	if (r >= 0)
		r = vmdk_marker(v, 1, VMDK_MARKER_FOOTER);
	if (r < 0)
		return r;
	vmdk_header(v, gd_sector, footer);
	r = out_write(&v->out, footer, sizeof(footer));
	if (r >= 0)
		r = vmdk_marker(v, 0, VMDK_MARKER_EOS);
	if (r >= 0)
		r = out_flush(&v->out);
	return r;
}

static int write_vmdk(struct export_ctx *x)
{
	_cleanup_free_ char *desc = NULL;
	struct vmdk v = { .out.fd = x->fd, .gt_index = -1 };
	uint8_t header[SECTOR_512];
	int r;

	v.capacity_sectors = x->disk_size_bytes / SECTOR_512;
	v.n_gd = DIV_ROUND_UP(v.capacity_sectors,
			      (uint64_t) VMDK_GTES_PER_GT * VMDK_GRAIN_SECTORS);
	r = vmdk_descriptor(x, &v, &desc);
	if (r < 0)
		return r;
	v.out.buf = malloc(OUT_BUF_BYTES);
	v.gd = calloc(v.n_gd, sizeof(uint32_t));
	r = v.out.buf && v.gd ? 0 : -ENOMEM;
	if (r >= 0) {
		r = zpool_start(&v.pool, ZKIND_VMDK_GRAIN, EXPORT_VMDK_GRAIN_BYTES, vmdk_write_grain,
				&v);
		v.pool_ready = r >= 0;
	}
	if (r >= 0) {
		vmdk_header(&v, VMDK_GD_AT_END, header);
		r = out_write(&v.out, header, sizeof(header));
	}
	if (r >= 0)
		r = out_write(&v.out, desc, strlen(desc));
	if (r >= 0) /* zero padding up to the first grain */
		r = out_write(&v.out, NULL, VMDK_OVERHEAD_SECTORS * SECTOR_512 - v.out.pos);
	if (r >= 0)
		r = export_run(x, vmdk_piece, &v);
	if (r >= 0)
		r = vmdk_finish(&v);
	if (r >= 0)
		x->stats->file_bytes = v.out.pos;
	if (v.pool_ready)
		zpool_stop(&v.pool);
	free(v.out.buf);
	free(v.gd);
	return r;
}

/* --- gce-tar: tar.gz with one old-GNU sparse member "disk.raw" ------------------------------- */

/*
 * The member header, 512 bytes, as GNU tar --format=oldgnu --sparse writes
 * it (numbers are octal ASCII, NUL-terminated, zero-padded, or GNU base-256:
 * first byte 0x80, then big-endian binary, when octal does not fit):
 *
 *     0 name[100] "disk.raw"        100 mode[8] "0000644"
 *   108 uid[8] "0000000"            116 gid[8] "0000000"
 *   124 size[12]: bytes stored in the archive (sum of the map's sizes)
 *   136 mtime[12]: the image's creation time
 *   148 chksum[8]: 6 octal digits, NUL, space (export_tar_checksum())
 *   156 typeflag 'S' (GNU sparse)   157 linkname[100] empty
 *   257 magic "ustar " + version " \0" (old GNU)
 *   265 uname[32] "root"            297 gname[32] "root"
 *   329 devmajor[8], devminor[8] empty
 *   345 atime[12], ctime[12], offset[12], longnames[4], unused[1]: empty
 *   386 sparse[4]: {offset[12], numbytes[12]} of the first four data runs
 *   482 isextended: 1 if extension headers follow
 *   483 realsize[12]: the disk's size (a whole number of GiB)
 *   495 pad[17]
 *
 * Each extension header (512 bytes, no checksum): sparse[21] {offset[12],
 * numbytes[12]} at 0, isextended at 504, padding. The data runs are 512-byte
 * aligned, in order; a disk that ends in a hole gets a last entry {realsize, 0}
 * (GNU tar's own convention, which sets the extracted file's size). The data
 * of all runs follows, concatenated, padded to 512 bytes; then two zero
 * blocks, and zeros up to a 10240-byte record as GNU tar pads. The whole
 * stream is one gzip member (zlib, deflate).
 */
#define TAR_BLOCK 512u
#define TAR_RECORD (20u * TAR_BLOCK)
#define TAR_SPARSE_IN_HEADER 4u
#define TAR_SPARSE_IN_EXT 21u
#define TAR_MEMBER_NAME "disk.raw"

struct tar_run {
	uint64_t offset_bytes, size_bytes;
};

/* gzip blocks: large enough that starting each without the previous 32 KiB costs little */
#define GZIP_BLOCK_BYTES (UINT32_C(1) << 20)
#define GZIP_OS_UNIX 3u

struct tar {
	struct out out;
	struct zpool pool;
	bool pool_ready;
	struct zjob *job;     /* the block being filled */
	uint64_t tar_bytes;   /* uncompressed tar bytes handed to the pool */
	uint32_t crc;         /* crc32 of the tar bytes written so far */
	struct tar_run *map;
	size_t n_map, allocated;
	size_t mi;            /* pass 2: the run being filled */
	uint64_t stored_bytes;
};

uint32_t export_tar_checksum(const uint8_t header[512])
{
	uint32_t sum = 0;

	for (size_t i = 0; i < TAR_BLOCK; i++)
		sum += (i >= 148 && i < 156) ? (uint32_t) ' ' : header[i];
	return sum;
}

/* @len - 1 octal digits and a NUL, or GNU base-256 when the value does not fit */
static void tar_number(uint8_t *field, size_t len, uint64_t v)
{
	if (len - 1 < 22 && v < (UINT64_C(1) << (3 * (len - 1)))) {
		for (size_t i = len - 1; i-- > 0; v >>= 3)
			field[i] = (uint8_t) ('0' + (v & 7));
		field[len - 1] = 0;
	} else {
		memset(field, 0, len);
		field[0] = 0x80;
		for (size_t i = len - 1; i >= 1 && v; i--, v >>= 8)
			field[i] = (uint8_t) v;
	}
}

static int tar_map_piece(const struct export_piece *p, void *userdata)
{
	struct tar *t = userdata;
	uint64_t a = ALIGN_DOWN(p->offset_bytes, (uint64_t) TAR_BLOCK);
	uint64_t b = ALIGN_UP(p->offset_bytes + p->size_bytes, (uint64_t) TAR_BLOCK);

	if (!p->is_data)
		return 0;
	if (t->n_map > 0) {
		struct tar_run *last = &t->map[t->n_map - 1];
		uint64_t last_end = last->offset_bytes + last->size_bytes;

		if (a <= last_end) {
			last->size_bytes = MAX(b, last_end) - last->offset_bytes;
			return 0;
		}
	}
	if (t->n_map == t->allocated) {
		size_t n = t->allocated ? t->allocated * 2 : 256;
		struct tar_run *m;
		/* bounded by the manifest's extents and table regions */
		if (n > 2 * MANIFEST_EXTENTS_MAX + 65536)
			return -E2BIG;
		m = reallocarray(t->map, n, sizeof(*m));
		if (!m)
			return -ENOMEM;
		t->map = m, t->allocated = n;
	}
	t->map[t->n_map++] = (struct tar_run){ a, b - a };
	return 0;
}

static int tar_write_block(struct zjob *j, void *userdata)
{
	struct tar *t = userdata;

	t->crc = (uint32_t) crc32_combine(t->crc, j->crc, (z_off_t) j->in_len);
	return out_write(&t->out, j->out, j->out_len);
}

/* Appends @size bytes (zeros if @data is NULL) to the tar stream; @last ends the gzip member. */
static int tar_put(struct tar *t, const void *data, uint64_t size, bool last)
{
	const uint8_t *p = data;
	int r;

	t->tar_bytes += size;
	for (;;) {
		size_t k;

		if (!t->job) {
			r = zpool_next(&t->pool, &t->job);
			if (r < 0)
				return r;
		}
		k = (size_t) MIN(size, (uint64_t) (GZIP_BLOCK_BYTES - t->job->in_len));
		if (p)
			memcpy(t->job->in + t->job->in_len, p, k);
		else
			memset(t->job->in + t->job->in_len, 0, k);
		t->job->in_len += k, size -= k;
		if (p)
			p += k;
		if (size == 0 && last) {
			t->job->last = true;
			t->job = NULL;
			zpool_submit(&t->pool);
			return 0;
		}
		if (t->job->in_len == GZIP_BLOCK_BYTES) {
			t->job = NULL;
			zpool_submit(&t->pool);
		}
		if (size == 0)
			return 0;
	}
}

/* Pass 2: the bytes of each piece that fall inside a map run go to the archive. */
static int tar_data_piece(const struct export_piece *p, void *userdata)
{
	struct tar *t = userdata;
	uint64_t off = p->offset_bytes, end = p->offset_bytes + p->size_bytes;
	int r;

	while (off < end && t->mi < t->n_map) {
		const struct tar_run *run = &t->map[t->mi];
		uint64_t run_end = run->offset_bytes + run->size_bytes;
		uint64_t a, b;

		if (run_end <= off) {
			t->mi++;
			continue;
		}
		if (run->offset_bytes >= end)
			break;
		a = MAX(off, run->offset_bytes), b = MIN(end, run_end);
		/* every data piece lies inside a run: the map was built from them */
		if (p->is_data && a != off)
			return -EIO;
		r = tar_put(t, p->is_data ? p->data + (a - p->offset_bytes) : NULL, b - a, false);
		if (r < 0)
			return r;
		off = b;
	}
	if (p->is_data && off < end)
		return -EIO;
	return 0;
}

static int tar_headers(const struct export_ctx *x, struct tar *t, uint8_t **ret, size_t *ret_size)
{
	size_t n = t->n_map, n_ext = 0, size;
	int64_t mtime = x->m->created_unix;
	uint8_t *h;

	if (n > TAR_SPARSE_IN_HEADER)
		n_ext = DIV_ROUND_UP(n - TAR_SPARSE_IN_HEADER, (size_t) TAR_SPARSE_IN_EXT);
	size = (1 + n_ext) * TAR_BLOCK;
	h = calloc(1, size);
	if (!h)
		return -ENOMEM;
	memcpy(h, TAR_MEMBER_NAME, strlen(TAR_MEMBER_NAME));
	tar_number(h + 100, 8, 0644);
	tar_number(h + 108, 8, 0);
	tar_number(h + 116, 8, 0);
	tar_number(h + 124, 12, t->stored_bytes);
	tar_number(h + 136, 12, mtime > 0 ? (uint64_t) mtime : 0);
	h[156] = 'S';
	memcpy(h + 257, "ustar  ", 8); /* "ustar " + " \0": the old GNU magic and version */
	memcpy(h + 265, "root", 4);
	memcpy(h + 297, "root", 4);
	for (size_t i = 0; i < n && i < TAR_SPARSE_IN_HEADER; i++) {
		tar_number(h + 386 + 24 * i, 12, t->map[i].offset_bytes);
		tar_number(h + 386 + 24 * i + 12, 12, t->map[i].size_bytes);
	}
	h[482] = n_ext > 0;
	tar_number(h + 483, 12, x->disk_size_bytes);
	for (size_t e = 0; e < n_ext; e++) {
		uint8_t *b = h + (1 + e) * TAR_BLOCK;
		for (size_t i = 0; i < TAR_SPARSE_IN_EXT; i++) {
			size_t k = TAR_SPARSE_IN_HEADER + e * TAR_SPARSE_IN_EXT + i;
			if (k >= n)
				break;
			tar_number(b + 24 * i, 12, t->map[k].offset_bytes);
			tar_number(b + 24 * i + 12, 12, t->map[k].size_bytes);
		}
		b[504] = e + 1 < n_ext;
	}
	/* the checksum covers the main header only, chksum counted as spaces */
	snprintf((char *) h + 148, 7, "%06o", export_tar_checksum(h) & 0777777);
	h[154] = 0, h[155] = ' ';
	*ret = h, *ret_size = size;
	return 0;
}

static int write_gce_tar(struct export_ctx *x)
{
	_cleanup_free_ uint8_t *headers = NULL;
	struct tar t = { .out.fd = x->fd };
	size_t headers_bytes = 0;
	uint64_t end;
	int r;

	/* pass 1: the sparse map, from the manifest alone */
	r = export_disk_walk(x->md, x->store, x->disk_size_bytes, false, tar_map_piece, &t, NULL);
	if (r < 0)
		goto out;
	end = t.n_map ? t.map[t.n_map - 1].offset_bytes + t.map[t.n_map - 1].size_bytes : 0;
	for (size_t i = 0; i < t.n_map; i++)
		t.stored_bytes += t.map[i].size_bytes;
	if (end < x->disk_size_bytes) {
		/* ends in a hole: GNU tar's terminating entry gives the extracted file its size */
		r = tar_map_piece(&(struct export_piece){ x->disk_size_bytes, 0, true, NULL }, &t);
		if (r < 0)
			goto out;
		if (t.map[t.n_map - 1].offset_bytes != x->disk_size_bytes) {
			/* merged into the last run by alignment: cannot happen, sizes are GiB */
			r = -EIO;
			goto out;
		}
	}
	r = tar_headers(x, &t, &headers, &headers_bytes);
	if (r < 0)
		goto out;

	/*
	 * One gzip member (RFC 1952): a fixed header (no name, mtime 0), the raw
	 * deflate blocks from the pool, then the crc32 and size of the tar stream.
	 */
	t.out.buf = malloc(OUT_BUF_BYTES);
	if (!t.out.buf) {
		r = -ENOMEM;
		goto out;
	}
	r = zpool_start(&t.pool, ZKIND_GZIP_BLOCK, GZIP_BLOCK_BYTES, tar_write_block, &t);
	if (r < 0)
		goto out;
	t.pool_ready = true;
	{
		static const uint8_t gzip_header[10] = {
			0x1f, 0x8b, 8 /* deflate */, 0 /* flags */, 0, 0, 0, 0 /* mtime */,
			0 /* xfl */, GZIP_OS_UNIX,
		};
		r = out_write(&t.out, gzip_header, sizeof(gzip_header));
	}
	if (r >= 0)
		r = tar_put(&t, headers, headers_bytes, false);
	if (r < 0)
		goto out;

	/* pass 2: the data of every run, read and verified */
	r = export_run(x, tar_data_piece, &t);
	if (r < 0)
		goto out;
	if (t.tar_bytes != headers_bytes + t.stored_bytes) {
		r = -EIO;
		goto out;
	}
	/* pad the data to a block, two zero blocks, pad to a record */
	end = ALIGN_UP(t.tar_bytes, (uint64_t) TAR_BLOCK) + 2 * TAR_BLOCK;
	end = ALIGN_UP(end, (uint64_t) TAR_RECORD);
	r = tar_put(&t, NULL, end - t.tar_bytes, true);
	if (r >= 0)
		r = zpool_drain(&t.pool);
	if (r >= 0) {
		uint8_t trailer[8];
		put_le32(trailer, t.crc);
		put_le32(trailer + 4, (uint32_t) t.tar_bytes); /* ISIZE: the size modulo 2^32 */
		r = out_write(&t.out, trailer, sizeof(trailer));
	}
	if (r >= 0)
		r = out_flush(&t.out);
	if (r >= 0)
		x->stats->file_bytes = t.out.pos;
out:
	if (t.pool_ready)
		zpool_stop(&t.pool);
	free(t.map);
	free(t.out.buf);
	return r;
}

/* --- entry point --------------------------------------------------------------------------- */

int export_disk(int fd, const struct manifest *m, unsigned disk_index, struct store *s,
		const struct export_options *o, struct export_stats *stats, char **ret_reason)
{
	struct export_ctx x = { .fd = fd, .m = m, .store = s, .o = o, .stats = stats };
	uint64_t total = 0;
	int r;

	if (disk_index >= m->n_disks)
		return -EINVAL;
	x.md = &m->disks[disk_index];
	r = export_disk_size(x.md, o->format, &x.disk_size_bytes, ret_reason);
	if (r < 0)
		return r;
	*stats = (struct export_stats){ .disk_bytes = x.disk_size_bytes };
	/* the progress total: the data pieces of a map-only walk (cheap: no chunk read) */
	r = export_disk_walk(x.md, s, x.disk_size_bytes, false, count_piece, NULL, &total);
	if (r < 0)
		return r;
	x.total_bytes = total;
	x.start = x.last_report = now_s();
	switch (o->format) {
	case EXPORT_RAW:
		r = write_raw(&x);
		break;
	case EXPORT_VHD:
		r = write_vhd(&x);
		break;
	case EXPORT_QCOW2:
		r = write_qcow2(&x);
		break;
	case EXPORT_VMDK:
		r = write_vmdk(&x);
		break;
	case EXPORT_GCE_TAR:
		r = write_gce_tar(&x);
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		return r;
	/* the loading walk read (and verified) every listed chunk exactly once */
	stats->chunks_read = x.md->n_chunks;
	stats->seconds = now_s() - x.start;
	return 0;
}
