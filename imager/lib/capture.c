/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "imager/capture.h"
#include "imager/extents.h"
#include "imager/extfs.h"
#include "imager/fatfs.h"
#include "imager/fsprobe.h"
#include "imager/ptable.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/pmap.h"

DEFINE_CLEANUP(struct ptable *, ptable_free)
DEFINE_CLEANUP(struct extfs *, extfs_free)
DEFINE_CLEANUP(struct fatfs *, fatfs_free)

struct add_ctx {
	struct extent_list *l;
	uint64_t base_bytes, limit_bytes;
};

static int add_relative(uint64_t offset_bytes, uint64_t size_bytes, void *userdata)
{
	struct add_ctx *c = userdata;

	if (offset_bytes >= c->limit_bytes)
		return 0;
	size_bytes = MIN(size_bytes, c->limit_bytes - offset_bytes);
	return extent_list_add(c->l, c->base_bytes + offset_bytes, size_bytes);
}

/* Adds the non-zero GAP_BLOCK_BYTES blocks of [start, end) (raw with zero skipping). */
static int add_nonzero(int fd, struct extent_list *l, uint64_t start_bytes, uint64_t end_bytes)
{
	_cleanup_free_ uint8_t *buf = NULL;
	const size_t buf_bytes = 1u << 20;

	if (end_bytes <= start_bytes)
		return 0;
	buf = malloc(buf_bytes);
	if (!buf)
		return -ENOMEM;
	for (uint64_t pos = start_bytes; pos < end_bytes;) {
		size_t n = (size_t) MIN((uint64_t) buf_bytes, end_bytes - pos);
		int r = pread_all(fd, buf, n, pos);
		if (r < 0)
			return r;
		for (size_t o = 0; o < n; o += GAP_BLOCK_BYTES) {
			size_t k = MIN((size_t) GAP_BLOCK_BYTES, n - o);
			if (!memeqzero(buf + o, k)) {
				r = extent_list_add(l, pos + o, k);
				if (r < 0)
					return r;
			}
		}
		pos += n;
	}
	return 0;
}

static bool is_dos_extended(const char *type)
{
	return type && (strcasecmp(type, "0x5") == 0 || strcasecmp(type, "0x05") == 0 ||
			strcasecmp(type, "0xf") == 0 || strcasecmp(type, "0x0f") == 0 ||
			strcasecmp(type, "0x85") == 0);
}

static bool is_ext(const char *fs_type)
{
	return strcmp(fs_type, "ext2") == 0 || strcmp(fs_type, "ext3") == 0 ||
	       strcmp(fs_type, "ext4") == 0;
}

static char *strdup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* Decides how to capture one region (a partition, or a whole unpartitioned disk). */
static int capture_region(int fd, uint64_t start_bytes, uint64_t size_bytes, const char *type,
			  unsigned partno, bool allow_dirty, struct extent_list *l,
			  struct manifest_partition *mp, char **ret_reason)
{
	_cleanup_(fsprobe_done) struct fsprobe probe = {};
	struct add_ctx ctx = { .l = l, .base_bytes = start_bytes, .limit_bytes = size_bytes };
	uint64_t before = extent_list_bytes(l);
	int r;

	if (type && strcasecmp(type, GPT_BIOS_BOOT_TYPE) == 0) {
		mp->method = CAPTURE_BIOS_BOOT;
		r = extent_list_add(l, start_bytes, size_bytes);
		goto done;
	}
	if (type && is_dos_extended(type)) {
		/* the EBRs are rendered from the table; logical partitions are captured on their own */
		mp->method = CAPTURE_NONE;
		return 0;
	}

	r = fsprobe_region(fd, start_bytes, size_bytes, &probe);
	if (r < 0)
		log_debug_errno(r, "Probing partition %u failed, capturing raw: %m", partno);
	if (r > 0 && probe.type) {
		mp->fs_type = strdup(probe.type);
		mp->fs_uuid = strdup_or_null(probe.uuid);
		mp->fs_label = strdup_or_null(probe.label);
		if (!mp->fs_type)
			return -ENOMEM;
	}

	if (mp->fs_type && is_ext(mp->fs_type)) {
		_cleanup_(extfs_freep) struct extfs *fs = NULL;
		struct extfs_info info;

		r = extfs_open(fd, start_bytes, size_bytes, &fs);
		if (r < 0)
			goto fail_fs;
		r = extfs_get_info(fs, &info);
		if (r < 0)
			goto fail_fs;
		if (!info.clean && !allow_dirty) {
			if (ret_reason)
				(void) asprintf(ret_reason,
						"partition %u (%s%s%s%s) was not cleanly unmounted; "
						"run e2fsck on it, or pass --allow-dirty",
						partno, info.type, *info.label ? ", label '" : "",
						info.label, *info.label ? "'" : "");
			return -EUCLEAN;
		}
		mp->method = CAPTURE_EXT_USED;
		mp->fs_min_size_bytes = info.min_size_bytes;
		r = extfs_for_each_used_extent(fs, add_relative, &ctx);
		goto done;
	}
	if (mp->fs_type && strcmp(mp->fs_type, "vfat") == 0) {
		_cleanup_(fatfs_freep) struct fatfs *fs = NULL;

		r = fatfs_open(fd, start_bytes, size_bytes, &fs);
		if (r < 0)
			goto fail_fs;
		mp->method = CAPTURE_FAT_USED;
		r = fatfs_for_each_used_extent(fs, add_relative, &ctx);
		goto done;
	}
	if (mp->fs_type && strcmp(mp->fs_type, "swap") == 0) {
		mp->method = CAPTURE_SWAP_HEADER;
		r = extent_list_add(l, start_bytes, MIN((uint64_t) SWAP_HEADER_BYTES, size_bytes));
		goto done;
	}
	/* LUKS, LVM, NTFS, XFS, btrfs, unknown: raw; all-zero chunks are not stored */
	mp->method = CAPTURE_RAW;
	r = extent_list_add(l, start_bytes, size_bytes);
	goto done;

fail_fs:
	if (ret_reason)
		(void) asprintf(ret_reason, "partition %u: cannot read its %s file system: %s",
				partno, mp->fs_type, strerror(-r));
	return r;
done:
	if (r < 0)
		return r;
	mp->fs_used_bytes = extent_list_bytes(l) - before;
	return 0;
}

int capture_analyse_disk(int fd, uint64_t size_bytes, uint32_t logical_sector_bytes,
			 uint32_t physical_sector_bytes, bool allow_dirty,
			 struct manifest_disk *ret, char **ret_reason)
{
	_cleanup_(ptable_freep) struct ptable *pt = NULL;
	_cleanup_(extent_list_done) struct extent_list l = {};
	struct manifest_disk *md = ret;
	uint64_t first_part_bytes = size_bytes, gap_start_bytes, gap_end_bytes, prev_end_bytes;
	int r;

	md->size_bytes = size_bytes;
	md->logical_sector_bytes = logical_sector_bytes;
	md->physical_sector_bytes = physical_sector_bytes;

	r = ptable_read(fd, logical_sector_bytes, &pt);
	if (r < 0) {
		if (ret_reason)
			(void) asprintf(ret_reason, "cannot read its partition table: %s",
					strerror(-r));
		return r;
	}
	md->label = strdup(ptable_label_to_string(pt->label));
	if (!md->label)
		return -ENOMEM;

	if (pt->label == PTABLE_NONE) {
		/* a file system or anything else on the whole disk */
		struct manifest_partition whole = {};
		r = capture_region(fd, 0, size_bytes, NULL, 0, allow_dirty, &l, &whole, ret_reason);
		free(whole.fs_type), free(whole.fs_uuid), free(whole.fs_label);
		if (r < 0)
			return r;
		goto finish;
	}

	md->disk_id = strdup_or_null(pt->disk_id);
	md->first_usable_bytes = pt->first_usable_bytes;
	md->last_usable_bytes = pt->last_usable_bytes;
	md->gpt_n_entries_max = pt->gpt_n_entries_max;
	r = pread_all(fd, md->boot_code, sizeof(md->boot_code), 0);
	if (r < 0)
		return r;

	md->partitions = calloc(MAX(pt->n_entries, (size_t) 1), sizeof(*md->partitions));
	if (!md->partitions)
		return -ENOMEM;
	for (size_t i = 0; i < pt->n_entries; i++)
		first_part_bytes = MIN(first_part_bytes, pt->entries[i].start_bytes);

	/* the post-MBR gap: after sector 0 (dos) or after the GPT entries, up to the first partition */
	gap_start_bytes = pt->label == PTABLE_GPT ? pt->first_usable_bytes : logical_sector_bytes;
	gap_end_bytes = MIN(first_part_bytes, gap_start_bytes + MANIFEST_BOOT_GAP_BYTES_MAX);
	if (gap_end_bytes > gap_start_bytes) {
		md->boot_gap_bytes = gap_end_bytes - gap_start_bytes;
		r = add_nonzero(fd, &l, gap_start_bytes, gap_end_bytes);
		if (r < 0)
			return r;
	}

	prev_end_bytes = first_part_bytes;
	for (size_t i = 0; i < pt->n_entries; i++) {
		const struct ptable_entry *e = &pt->entries[i];
		struct manifest_partition *mp = &md->partitions[md->n_partitions++];

		mp->partno = e->partno;
		mp->start_bytes = e->start_bytes;
		mp->size_bytes = e->size_bytes;
		mp->type = strdup_or_null(e->type);
		mp->uuid = strdup_or_null(e->uuid);
		mp->name = strdup_or_null(e->name);
		mp->attrs = e->attrs;
		mp->bootable = e->bootable;
		if (e->start_bytes > size_bytes || e->size_bytes > size_bytes - e->start_bytes)
			return -EBADMSG;

		/* non-zero bytes between partitions are kept (but not inside the extended container) */
		if (!is_dos_extended(e->type) && e->start_bytes > prev_end_bytes) {
			r = add_nonzero(fd, &l, prev_end_bytes, e->start_bytes);
			if (r < 0)
				return r;
		}
		r = capture_region(fd, e->start_bytes, e->size_bytes, e->type, e->partno,
				   allow_dirty, &l, mp, ret_reason);
		if (r < 0)
			return r;
		if (!is_dos_extended(e->type))
			prev_end_bytes = MAX(prev_end_bytes, e->start_bytes + e->size_bytes);
	}

finish:
	extent_list_normalize(&l);
	md->used_bytes = extent_list_bytes(&l);
	md->extents = TAKE_PTR(l.e);
	md->n_extents = l.n;
	l = (struct extent_list){};
	return 0;
}

/* --- storing chunks ------------------------------------------------------------ */

/*
 * The producer only plans an item (which chunk position, which extents); a
 * worker reads it, hashes, compresses and stores it. With n workers, n reads
 * are in flight, and they bypass the page cache (O_DIRECT) when aligned: no
 * copy through the cache (17 % of the CPU of a capture when it was buffered,
 * bench/README.md), and a capture does not evict the machine's cache.
 */
struct cap_item {
	uint64_t offset_bytes;
	uint32_t size_bytes;
	size_t first_extent;
	uint64_t data_bytes;
	uint8_t *buf;
	bool zero;
	struct chunk_id id;
	int added;               /* 1 newly stored, 0 present already */
	uint64_t stored_bytes;
};

struct cap_ctx {
	int fd;                  /* buffered */
	int direct_fd;           /* O_DIRECT on the same source (reopen_direct()), or -errno */
	bool direct_ok;          /* cleared when the source refuses an O_DIRECT read */
	struct manifest_disk *md;
	struct store *store;
	struct chunk_walk walk;
	unsigned disk_index;
	progress_fn progress;
	void *userdata;
	struct capture_stats *stats;
	uint64_t done_bytes;
	struct timespec start;
	struct timespec last_report;
	size_t n_chunks, allocated;
	struct manifest_chunk *chunks;
};

#define DIRECT_ALIGN_BYTES 4096u /* what O_DIRECT needs of a 4Kn disk or a file on a 4K file system */

/* Reads from the source, O_DIRECT when possible; called by several workers at once. */
static int source_read(struct cap_ctx *c, uint8_t *buf, uint64_t size, uint64_t offset)
{
	if (c->direct_fd >= 0 && __atomic_load_n(&c->direct_ok, __ATOMIC_RELAXED) &&
	    (offset | size | (uintptr_t) buf) % DIRECT_ALIGN_BYTES == 0) {
		int r = pread_all(c->direct_fd, buf, (size_t) size, offset);
		if (r != -EINVAL)
			return r;
		/* a source that refuses O_DIRECT reads (some network files): buffered from now
		 * on; direct_fd stays open until the end, so it is closed exactly once */
		__atomic_store_n(&c->direct_ok, false, __ATOMIC_RELAXED);
	}
	return pread_all(c->fd, buf, (size_t) size, offset);
}

struct read_piece_ctx {
	struct cap_ctx *c;
	struct cap_item *it;
};

static int read_piece(uint64_t offset_bytes, uint64_t size_bytes, void *userdata)
{
	struct read_piece_ctx *rp = userdata;

	return source_read(rp->c, rp->it->buf + (offset_bytes - rp->it->offset_bytes), size_bytes,
			   offset_bytes);
}

static int count_piece(uint64_t offset_bytes, uint64_t size_bytes, void *userdata)
{
	*(uint64_t *) userdata += size_bytes;
	return 0;
}

static int cap_produce(void *userdata, uint64_t seq, void *item)
{
	struct cap_ctx *c = userdata;
	struct cap_item *it = item;
	int r;

	r = chunk_walk_next(&c->walk, &it->offset_bytes, &it->size_bytes, &it->first_extent);
	if (r <= 0)
		return r;
	it->data_bytes = 0;
	it->zero = false;
	it->added = 0;
	it->stored_bytes = 0;
	(void) extents_for_each_in_range(c->md->extents, c->md->n_extents, it->first_extent,
					 it->offset_bytes, it->size_bytes, count_piece,
					 &it->data_bytes);
	return 1;
}

/* Fills it->buf with the chunk's data, holes zeroed. */
static int cap_read(struct cap_ctx *c, struct cap_item *it)
{
	const struct manifest_extent *e = c->md->extents;
	size_t n = c->md->n_extents;
	int r;

	if (it->data_bytes * 2 >= it->size_bytes) {
		/* mostly data: one large read, then zero the holes */
		r = source_read(c, it->buf, it->size_bytes, it->offset_bytes);
		if (r < 0)
			return r;
		extents_zero_holes(e, n, it->first_extent, it->offset_bytes, it->size_bytes,
				   it->buf);
		return 0;
	}
	memset(it->buf, 0, it->size_bytes);
	return extents_for_each_in_range(e, n, it->first_extent, it->offset_bytes, it->size_bytes,
					 read_piece, &(struct read_piece_ctx){ .c = c, .it = it });
}

static int cap_work(void *userdata, void *item)
{
	struct cap_ctx *c = userdata;
	struct cap_item *it = item;
	int r;

	r = cap_read(c, it);
	if (r < 0)
		return r;
	it->zero = memeqzero(it->buf, it->size_bytes);
	if (it->zero)
		return 0;
	store_chunk_id(c->store, it->buf, it->size_bytes, &it->id);
	r = store_put_chunk(c->store, &it->id, it->buf, it->size_bytes, &it->stored_bytes);
	if (r < 0)
		return r;
	it->added = r;
	return 0;
}

static double elapsed_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double) (now.tv_sec - t0->tv_sec) + (double) (now.tv_nsec - t0->tv_nsec) / 1e9;
}

static int cap_consume(void *userdata, uint64_t seq, void *item)
{
	struct cap_ctx *c = userdata;
	struct cap_item *it = item;

	c->done_bytes += it->data_bytes;
	if (it->zero)
		c->stats->zero_chunks++;
	else {
		if (c->n_chunks == c->allocated) {
			size_t a = c->allocated ? 2 * c->allocated : 1024;
			struct manifest_chunk *n = reallocarray(c->chunks, a, sizeof(*n));
			if (!n)
				return -ENOMEM;
			c->chunks = n, c->allocated = a;
		}
		c->chunks[c->n_chunks++] = (struct manifest_chunk){
			.offset_bytes = it->offset_bytes, .size_bytes = it->size_bytes, .id = it->id,
		};
		c->stats->chunks++;
		c->stats->stored_bytes += it->stored_bytes;
		if (it->added) {
			c->stats->new_chunks++;
			c->stats->new_stored_bytes += it->stored_bytes;
		}
	}
	if (c->progress) {
		double since = elapsed_since(&c->last_report);
		if (since >= 0.5 || c->done_bytes == c->md->used_bytes) {
			struct progress p = {
				.phase = "capture", .disk_index = c->disk_index,
				.done_bytes = c->done_bytes, .total_bytes = c->md->used_bytes,
				.stored_bytes = c->stats->new_stored_bytes,
				.elapsed_s = elapsed_since(&c->start),
			};
			c->progress(&p, c->userdata);
			clock_gettime(CLOCK_MONOTONIC, &c->last_report);
		}
	}
	return 0;
}

int capture_store_disk(int fd, struct manifest_disk *md, struct store *s, unsigned disk_index,
		       progress_fn progress, void *userdata, struct capture_stats *stats)
{
	unsigned n_workers = io_workers();
	unsigned n_slots = 2 * n_workers + 2;
	_cleanup_free_ struct cap_item *items = calloc(n_slots, sizeof(*items));
	struct cap_ctx c = {
		.fd = fd, .direct_fd = -1, .md = md, .store = s, .disk_index = disk_index, .progress = progress,
		.userdata = userdata, .stats = stats,
	};
	static const struct pmap_ops ops = {
		.produce = cap_produce, .work = cap_work, .consume = cap_consume,
	};
	int r = 0;

	if (!items)
		return -ENOMEM;
	for (unsigned i = 0; i < n_slots; i++)
		if (posix_memalign((void **) &items[i].buf, 4096, CHUNK_SIZE_BYTES) != 0) {
			r = -ENOMEM;
			goto out;
		}
	(void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	c.direct_fd = reopen_direct(fd, O_RDONLY);
	c.direct_ok = true;
	chunk_walk_init(&c.walk, md->extents, md->n_extents, md->size_bytes);
	clock_gettime(CLOCK_MONOTONIC, &c.start);
	c.last_report = c.start;

	r = pmap_run(&ops, &c, items, sizeof(*items), n_slots, n_workers);
	if (r < 0) {
		free(c.chunks);
		goto out;
	}
	md->chunks = c.chunks;
	md->n_chunks = c.n_chunks;
	stats->used_bytes += md->used_bytes;
	stats->seconds += elapsed_since(&c.start);
out:
	safe_close(c.direct_fd);
	for (unsigned i = 0; i < n_slots; i++)
		free(items[i].buf);
	return r;
}
