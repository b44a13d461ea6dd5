/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imager/capture.h"
#include "imager/extents.h"
#include "imager/flash.h"
#include "imager/grow.h"
#include "imager/ptable.h"
#include "imager/wipe.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/pmap.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct ptable *, ptable_free)

/* a hole smaller than this between two pieces of one chunk is written over (with zeros) */
#define COALESCE_GAP_BYTES (UINT64_C(64) << 10)
/* GPT: header sector plus the entry array (128 bytes each) */
#define GPT_ENTRY_BYTES 128u

static uint64_t gpt_area_bytes(const struct manifest_disk *md)
{
	uint64_t ss = md->logical_sector_bytes;
	uint64_t entries = md->gpt_n_entries_max ? md->gpt_n_entries_max : 128;

	return ss + ALIGN_UP(entries * GPT_ENTRY_BYTES, ss);
}

static bool is_gpt(const struct manifest_disk *md)
{
	return md->label && strcmp(md->label, "gpt") == 0;
}

static bool has_table(const struct manifest_disk *md)
{
	return md->label && strcmp(md->label, "none") != 0;
}

uint64_t flash_required_bytes(const struct manifest_disk *md)
{
	uint64_t end = 0;

	if (!has_table(md))
		return md->size_bytes;
	for (size_t i = 0; i < md->n_partitions; i++)
		end = MAX(end, md->partitions[i].start_bytes + md->partitions[i].size_bytes);
	if (md->n_extents > 0)
		end = MAX(end, md->extents[md->n_extents - 1].offset_bytes +
				       md->extents[md->n_extents - 1].size_bytes);
	if (is_gpt(md))
		end += gpt_area_bytes(md);
	return ALIGN_UP(end, (uint64_t) md->logical_sector_bytes);
}

/* Index of the partition that ends last (the one --grow extends), or -1. */
static ssize_t last_partition(const struct manifest_disk *md)
{
	ssize_t best = -1;

	for (size_t i = 0; i < md->n_partitions; i++) {
		const struct manifest_partition *p = &md->partitions[i];
		if (best < 0 || p->start_bytes + p->size_bytes >
					md->partitions[best].start_bytes +
						md->partitions[best].size_bytes)
			best = (ssize_t) i;
	}
	return best;
}

int flash_target_ptable(const struct manifest_disk *md, uint64_t target_size_bytes, bool grow,
			struct ptable **ret)
{
	_cleanup_(ptable_freep) struct ptable *pt = calloc(1, sizeof(*pt));
	uint64_t ss = md->logical_sector_bytes;

	if (!pt)
		return -ENOMEM;
	pt->label = ptable_label_from_string(md->label);
	if ((int) pt->label < 0)
		return -EBADMSG;
	pt->sector_bytes = md->logical_sector_bytes;
	pt->disk_id = md->disk_id ? strdup(md->disk_id) : NULL;
	pt->first_usable_bytes = md->first_usable_bytes;
	pt->gpt_n_entries_max = md->gpt_n_entries_max;
	pt->last_usable_bytes = is_gpt(md) ? target_size_bytes - gpt_area_bytes(md)
					   : target_size_bytes;
	pt->entries = calloc(MAX(md->n_partitions, (size_t) 1), sizeof(*pt->entries));
	if (!pt->entries)
		return -ENOMEM;
	for (size_t i = 0; i < md->n_partitions; i++) {
		const struct manifest_partition *p = &md->partitions[i];
		struct ptable_entry *e = &pt->entries[pt->n_entries++];

		e->partno = p->partno;
		e->start_bytes = p->start_bytes;
		e->size_bytes = p->size_bytes;
		e->type = p->type ? strdup(p->type) : NULL;
		e->uuid = p->uuid ? strdup(p->uuid) : NULL;
		e->name = p->name ? strdup(p->name) : NULL;
		e->attrs = p->attrs;
		e->bootable = p->bootable;
	}
	if (grow) {
		ssize_t l = last_partition(md);
		if (l >= 0) {
			struct ptable_entry *e = &pt->entries[l];
			uint64_t end = ALIGN_DOWN(pt->last_usable_bytes, ss);
			if (end > e->start_bytes + e->size_bytes)
				e->size_bytes = end - e->start_bytes;
		}
	}
	*ret = TAKE_PTR(pt);
	return 0;
}

int flash_check(const struct manifest_disk *md, struct store *s, uint64_t target_size_bytes,
		uint32_t target_logical_sector_bytes, bool grow, char **ret_reason)
{
	uint64_t need = flash_required_bytes(md);

	if (target_logical_sector_bytes != md->logical_sector_bytes) {
		if (ret_reason)
			(void) asprintf(ret_reason,
					"its logical sector size is %u bytes, the image's is %u bytes "
					"(conversion is not supported)",
					target_logical_sector_bytes, md->logical_sector_bytes);
		return -EXDEV;
	}
	if (target_size_bytes < need) {
		if (ret_reason)
			(void) asprintf(ret_reason,
					"it is too small: %llu bytes, the image needs %llu bytes",
					(unsigned long long) target_size_bytes,
					(unsigned long long) need);
		return -ENOSPC;
	}
	for (size_t i = 0; i < md->n_chunks; i++) {
		int r = store_has_chunk(s, &md->chunks[i].id);
		if (r < 0)
			return r;
		if (r == 0) {
			char id[CHUNK_ID_STRING_MAX];
			if (ret_reason)
				(void) asprintf(ret_reason,
						"chunk %s (disk offset %llu) is missing from the store",
						chunk_id_to_string(&md->chunks[i].id, id),
						(unsigned long long) md->chunks[i].offset_bytes);
			return -ENODATA;
		}
	}
	return 0;
}

/* --- timing and progress ---------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

/* Finds the stored chunk at @offset (binary search); NULL if that position is all zero. */
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

/* --- writing -------------------------------------------------------------------------- */

struct fl_item {
	uint64_t offset_bytes;
	uint32_t size_bytes;
	size_t first_extent;
	const struct manifest_chunk *chunk; /* NULL: all zero */
	uint8_t *buf;
	uint64_t data_bytes;    /* the image's data in this chunk position */
	uint64_t written_bytes; /* write: data written (not counting the deferred boot area) */
	uint64_t zeroed_bytes;  /* write: zero data written */
	bool mismatch;          /* verify */
};

struct fl_ctx {
	int fd;             /* buffered */
	int direct_fd;      /* O_DIRECT, or -1 */
	bool block_device;
	uint32_t sector_bytes;
	const struct manifest_disk *md;
	struct store *store;
	const struct flash_options *o;
	struct flash_stats *stats;
	struct chunk_walk walk;
	uint64_t boot_area_end;   /* bytes below this are written after the data */
	uint8_t *boot_area;       /* copy of the data below boot_area_end */
	uint64_t done_bytes;
	double start, last_report;
	const char *phase;
	/* verify */
	char **ret_reason;
	uint64_t mismatch_offset;
	bool prefetch;            /* read chunk files ahead (the write pass) */
};

static bool aligned_for_direct(const struct fl_ctx *c, const void *buf, uint64_t off, uint64_t len)
{
	uint64_t a = MAX(c->sector_bytes, 512u);

	return c->direct_fd >= 0 && off % a == 0 && len % a == 0 && (uintptr_t) buf % 4096 == 0;
}

static int write_run(struct fl_ctx *c, const uint8_t *buf, uint64_t off, uint64_t len)
{
	if (aligned_for_direct(c, buf, off, len))
		return pwrite_all(c->direct_fd, buf, (size_t) len, off);
	return pwrite_all(c->fd, buf, (size_t) len, off);
}

static int zero_run(struct fl_ctx *c, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];

	if (c->o->fresh_file)
		return 0;
	if (c->block_device && off % 512 == 0 && len % 512 == 0) {
		uint64_t range[2] = { off, len };
		if (ioctl(c->fd, BLKZEROOUT, range) == 0)
			return 0;
	}
	while (len > 0) {
		size_t k = (size_t) MIN(len, (uint64_t) sizeof(zeros));
		int r = pwrite_all(c->fd, zeros, k, off);
		if (r < 0)
			return r;
		off += k, len -= k;
	}
	return 0;
}

struct run_ctx {
	struct fl_ctx *c;
	struct fl_item *it;
	uint64_t run_start, run_end; /* pending coalesced run */
	int error;
};

static int flush_run(struct run_ctx *rc)
{
	struct fl_item *it = rc->it;
	uint64_t a = rc->run_start, b = rc->run_end;

	if (a >= b)
		return 0;
	rc->run_start = rc->run_end = 0;
	if (!it->chunk)
		return zero_run(rc->c, a, b - a);
	return write_run(rc->c, it->buf + (a - it->offset_bytes), a, b - a);
}

static int write_piece(uint64_t off, uint64_t len, void *userdata)
{
	struct run_ctx *rc = userdata;
	struct fl_ctx *c = rc->c;
	struct fl_item *it = rc->it;
	int r;

	/* the boot area is written last: keep a copy */
	if (off < c->boot_area_end) {
		uint64_t k = MIN(len, c->boot_area_end - off);
		if (it->chunk)
			memcpy(c->boot_area + off, it->buf + (off - it->offset_bytes), k);
		else
			memset(c->boot_area + off, 0, k);
		off += k, len -= k;
		if (len == 0)
			return 0;
	}
	if (it->chunk)
		it->written_bytes += len;
	else
		it->zeroed_bytes += len;
	if (rc->run_end > rc->run_start && off - rc->run_end < COALESCE_GAP_BYTES && it->chunk) {
		rc->run_end = off + len;
		return 0;
	}
	r = flush_run(rc);
	if (r < 0)
		return r;
	rc->run_start = off, rc->run_end = off + len;
	return 0;
}

/*
 * Writing runs in the workers: each decompresses and verifies its chunk,
 * then writes it (O_DIRECT) at its offsets, so n writes are in flight and
 * decompression overlaps I/O. Chunk positions never overlap, and the table
 * and the boot area are written only after every worker has finished
 * (flash_disk()), so the order of data writes does not matter. The consumer
 * only counts and reports.
 */
static int piece_bytes(uint64_t off, uint64_t len, void *userdata)
{
	*(uint64_t *) userdata += len;
	return 0;
}

static int fl_produce(void *userdata, uint64_t seq, void *item)
{
	struct fl_ctx *c = userdata;
	struct fl_item *it = item;
	int r = chunk_walk_next(&c->walk, &it->offset_bytes, &it->size_bytes, &it->first_extent);

	if (r <= 0)
		return r;
	it->chunk = chunk_at(c->md, it->offset_bytes);
	it->data_bytes = it->written_bytes = it->zeroed_bytes = 0;
	it->mismatch = false;
	(void) extents_for_each_in_range(c->md->extents, c->md->n_extents, it->first_extent,
					 it->offset_bytes, it->size_bytes, piece_bytes,
					 &it->data_bytes);
	/* the chunk files are read a few items ahead of the workers */
	if (it->chunk && c->prefetch)
		store_prefetch_chunk(c->store, &it->chunk->id);
	return 1;
}

static int fl_work(void *userdata, void *item)
{
	struct fl_ctx *c = userdata;
	struct fl_item *it = item;
	struct run_ctx rc = { .c = c, .it = it };
	int r;

	if (it->chunk) {
		if (it->chunk->size_bytes != it->size_bytes)
			return -EBADMSG;
		/* decompresses and re-verifies the ID: nothing unverified reaches the disk */
		r = store_get_chunk(c->store, &it->chunk->id, it->buf, it->size_bytes);
		if (r < 0)
			return r;
	}
	r = extents_for_each_in_range(c->md->extents, c->md->n_extents, it->first_extent,
				      it->offset_bytes, it->size_bytes, write_piece, &rc);
	if (r >= 0)
		r = flush_run(&rc);
	return r;
}

static void report(struct fl_ctx *c, uint64_t total, bool force)
{
	double t = now_s();

	if (!c->o->progress || (!force && t - c->last_report < 0.5))
		return;
	c->last_report = t;
	c->o->progress(&(struct progress){ .phase = c->phase, .disk_index = c->o->disk_index,
					   .done_bytes = c->done_bytes, .total_bytes = total,
					   .elapsed_s = t - c->start },
		       c->o->userdata);
}

static int fl_consume(void *userdata, uint64_t seq, void *item)
{
	struct fl_ctx *c = userdata;
	struct fl_item *it = item;

	c->stats->written_bytes += it->written_bytes;
	c->stats->zeroed_bytes += it->zeroed_bytes;
	c->done_bytes += it->data_bytes;
	report(c, c->md->used_bytes, false);
	return 0;
}

static int alloc_items(struct fl_item **ret, unsigned n_slots)
{
	struct fl_item *items = calloc(n_slots, sizeof(*items));

	if (!items)
		return -ENOMEM;
	for (unsigned i = 0; i < n_slots; i++)
		if (posix_memalign((void **) &items[i].buf, 4096, CHUNK_SIZE_BYTES) != 0) {
			for (unsigned j = 0; j < i; j++)
				free(items[j].buf);
			free(items);
			return -ENOMEM;
		}
	*ret = items;
	return 0;
}

static void free_items(struct fl_item *items, unsigned n_slots)
{
	if (!items)
		return;
	for (unsigned i = 0; i < n_slots; i++)
		free(items[i].buf);
	free(items);
}

static uint64_t boot_area_end(const struct manifest_disk *md)
{
	uint64_t first = md->size_bytes;

	if (!has_table(md))
		return 0;
	for (size_t i = 0; i < md->n_partitions; i++)
		first = MIN(first, md->partitions[i].start_bytes);
	return first;
}

/*
 * Writes the table libfdisk rendered into the memfd, exactly the sectors it
 * occupies (ptable_regions(): GPT headers and entry arrays, EBRs), from the
 * end down so the backup GPT lands before the primary. Sector 0 is left for
 * write_sector0().
 */
static int write_ptable(int fd, const struct manifest_disk *md, int mfd)
{
	_cleanup_free_ struct ptable_region *regions = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	uint64_t ss = md->logical_sector_bytes;
	size_t n = 0;
	int r;

	r = ptable_regions(mfd, md->logical_sector_bytes, &regions, &n);
	if (r < 0)
		return r;
	buf = malloc(ss);
	if (!buf)
		return -ENOMEM;
	for (size_t i = n; i-- > 0;)
		for (uint64_t off = regions[i].offset_bytes + regions[i].size_bytes;
		     off > regions[i].offset_bytes;) {
			off -= ss;
			if (off == 0)
				continue;
			r = pread_all(mfd, buf, ss, off);
			if (r >= 0)
				r = pwrite_all(fd, buf, ss, off);
			if (r < 0)
				return r;
		}
	return fsync(fd) < 0 ? -errno : 0;
}

/* Sector 0 last: the table's signature and the boot code together. */
static int write_sector0(int fd, const struct manifest_disk *md, int mfd)
{
	_cleanup_free_ uint8_t *buf = calloc(1, md->logical_sector_bytes);
	int r;

	if (!buf)
		return -ENOMEM;
	r = pread_all(mfd, buf, md->logical_sector_bytes, 0);
	if (r < 0)
		return r;
	memcpy(buf, md->boot_code, MANIFEST_BOOT_CODE_BYTES);
	return pwrite_all(fd, buf, md->logical_sector_bytes, 0);
}

/* Step 1: make the old table invalid and wipe old signatures the new data will not cover. */
static int wipe_target(int fd, uint64_t target_size_bytes, const struct manifest_disk *md,
		       const struct ptable *new_pt)
{
	_cleanup_(ptable_freep) struct ptable *old = NULL;
	_cleanup_free_ uint8_t *zeros = NULL;
	uint64_t ss = md->logical_sector_bytes;
	uint64_t head = MIN(target_size_bytes, MAX(gpt_area_bytes(md) + ss, UINT64_C(1) << 20));
	uint64_t tail = MIN(target_size_bytes, UINT64_C(1) << 20);
	int r;

	/* read the old layout before destroying it: its partitions may hold stale signatures */
	if (ptable_read(fd, md->logical_sector_bytes, &old) < 0)
		old = NULL;

	zeros = calloc(1, MAX(head, tail));
	if (!zeros)
		return -ENOMEM;
	/* sector 0 first: from here on the disk has no valid MBR and no protective MBR */
	r = pwrite_all(fd, zeros, ss, 0);
	if (r >= 0)
		r = pwrite_all(fd, zeros, head - ss, ss);
	if (r >= 0)
		r = pwrite_all(fd, zeros, tail, target_size_bytes - tail);
	if (r < 0)
		return r;
	if (fsync(fd) < 0)
		return -errno;

	for (size_t i = 0; old && i < old->n_entries; i++) {
		r = wipe_stale_signatures(fd, old->entries[i].start_bytes, old->entries[i].size_bytes,
					  md->extents, md->n_extents);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < new_pt->n_entries; i++) {
		r = wipe_stale_signatures(fd, new_pt->entries[i].start_bytes,
					  new_pt->entries[i].size_bytes, md->extents, md->n_extents);
		if (r < 0)
			return r;
	}
	/* a whole-disk file system or RAID member (no table) */
	r = wipe_stale_signatures(fd, 0, target_size_bytes, md->extents, md->n_extents);
	return r < 0 ? r : 0;
}

/* Runs @ops over every chunk position of the disk with the item buffers of one pass. */
static int walk_chunks(struct fl_ctx *c, const struct pmap_ops *ops)
{
	unsigned n_workers = io_workers(), n_slots = 2 * n_workers + 2;
	struct fl_item *items = NULL;
	int r;

	r = alloc_items(&items, n_slots);
	if (r < 0)
		return r;
	chunk_walk_init(&c->walk, c->md->extents, c->md->n_extents, c->md->size_bytes);
	c->start = c->last_report = now_s();
	r = pmap_run(ops, c, items, sizeof(*items), n_slots, n_workers);
	free_items(items, n_slots);
	if (r >= 0)
		report(c, c->md->used_bytes, true);
	return r;
}

int flash_disk(int fd, uint64_t target_size_bytes, const struct manifest_disk *md,
	       struct store *s, const struct flash_options *o, struct flash_stats *stats,
	       char **ret_reason)
{
	_cleanup_(ptable_freep) struct ptable *pt = NULL;
	_cleanup_close_ int direct_fd = -EBADF;
	_cleanup_free_ uint8_t *boot_area = NULL;
	_cleanup_close_ int mfd = -EBADF;
	struct stat st;
	struct fl_ctx c = {
		.fd = fd, .direct_fd = -1, .sector_bytes = md->logical_sector_bytes, .md = md,
		.store = s, .o = o, .stats = stats, .phase = "write", .prefetch = true,
	};
	static const struct pmap_ops ops = {
		.produce = fl_produce, .work = fl_work, .consume = fl_consume,
	};
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	c.block_device = S_ISBLK(st.st_mode);

	r = flash_target_ptable(md, target_size_bytes, o->grow, &pt);
	if (r < 0)
		return r;

	c.boot_area_end = boot_area_end(md);
	if (c.boot_area_end > MANIFEST_BOOT_GAP_BYTES_MAX + gpt_area_bytes(md) + (UINT64_C(1) << 20))
		c.boot_area_end = 0; /* a table whose first partition starts far in: nothing to defer */
	if (c.boot_area_end > 0) {
		boot_area = calloc(1, c.boot_area_end);
		if (!boot_area)
			return -ENOMEM;
		c.boot_area = boot_area;
	}

	if (o->discard && c.block_device) {
		uint64_t range[2] = { 0, target_size_bytes };
		if (ioctl(fd, BLKDISCARD, range) < 0)
			log_debug_errno(-errno, "BLKDISCARD failed, ignoring: %m");
	}

	if (has_table(md)) {
		r = wipe_target(fd, target_size_bytes, md, pt);
		if (r < 0)
			return r;
	}

	direct_fd = reopen_direct(fd, O_WRONLY);
	c.direct_fd = direct_fd;
	r = walk_chunks(&c, &ops);
	if (r < 0)
		return r;

	/* step 3: the partition table but sector 0 (backup GPT first), then the post-MBR gap */
	if (has_table(md)) {
		r = ptable_render(pt, target_size_bytes, md->logical_sector_bytes, &mfd);
		if (r >= 0)
			r = write_ptable(fd, md, mfd);
		if (r < 0) {
			if (ret_reason)
				(void) asprintf(ret_reason, "cannot write the partition table: %s",
						strerror(-r));
			return r;
		}
	}
	for (size_t i = 0; i < md->n_extents && md->extents[i].offset_bytes < c.boot_area_end; i++) {
		uint64_t a = md->extents[i].offset_bytes;
		uint64_t b = MIN(a + md->extents[i].size_bytes, c.boot_area_end);
		r = pwrite_all(fd, boot_area + a, b - a, a);
		if (r < 0)
			return r;
	}
	if (fsync(fd) < 0)
		return -errno;

	/* step 4: sector 0, last */
	if (has_table(md)) {
		r = write_sector0(fd, md, mfd);
		if (r < 0)
			return r;
	}
	if (fsync(fd) < 0)
		return -errno;
	stats->write_seconds += now_s() - c.start;

	if (c.block_device && ioctl(fd, BLKRRPART, 0) < 0)
		log_debug_errno(-errno, "BLKRRPART failed, ignoring: %m");

	if (o->verify) {
		r = verify_disk(fd, target_size_bytes, md, s, o, stats, ret_reason);
		if (r < 0)
			return r;
	}

	if (o->grow) {
		ssize_t l = last_partition(md);
		if (l >= 0 && md->partitions[l].method == CAPTURE_EXT_USED) {
			_cleanup_free_ char *out = NULL;
			const struct ptable_entry *e = NULL;
			for (size_t i = 0; i < pt->n_entries; i++)
				if (pt->entries[i].partno == md->partitions[l].partno)
					e = &pt->entries[i];
			if (!e)
				return -EBADMSG;
			r = grow_ext_region(fd, e->start_bytes, e->size_bytes, &out);
			if (r < 0) {
				if (ret_reason)
					(void) asprintf(ret_reason,
							"cannot grow the file system of partition %u: %s",
							e->partno, out ? out : strerror(-r));
				return r;
			}
		}
	}
	return 0;
}

/* --- authentication before writing ------------------------------------------------------ */

struct auth_item {
	size_t index; /* in md->chunks */
	int r;
};

struct auth_ctx {
	const struct manifest_disk *md;
	struct store *store;
	const struct flash_options *o;
	uint64_t done_bytes, total_bytes;
	double start, last_report;
	size_t bad;
};

static int auth_produce(void *userdata, uint64_t seq, void *item)
{
	struct auth_ctx *c = userdata;
	struct auth_item *it = item;

	if (seq >= c->md->n_chunks)
		return 0;
	it->index = (size_t) seq;
	it->r = 0;
	store_prefetch_chunk(c->store, &c->md->chunks[seq].id);
	return 1;
}

static int auth_work(void *userdata, void *item)
{
	struct auth_ctx *c = userdata;
	struct auth_item *it = item;
	const struct manifest_chunk *ch = &c->md->chunks[it->index];

	it->r = store_authenticate_chunk(c->store, &ch->id, ch->size_bytes);
	return 0;
}

static int auth_consume(void *userdata, uint64_t seq, void *item)
{
	struct auth_ctx *c = userdata;
	struct auth_item *it = item;
	double t = now_s();

	if (it->r < 0) {
		c->bad = it->index;
		return it->r;
	}
	c->done_bytes += c->md->chunks[it->index].size_bytes;
	if (c->o->progress && (t - c->last_report >= 0.5 || c->done_bytes == c->total_bytes)) {
		c->last_report = t;
		c->o->progress(&(struct progress){ .phase = "authenticate",
						   .disk_index = c->o->disk_index,
						   .done_bytes = c->done_bytes,
						   .total_bytes = c->total_bytes,
						   .elapsed_s = t - c->start },
			       c->o->userdata);
	}
	return 0;
}

int flash_authenticate(const struct manifest_disk *md, struct store *s,
		       const struct flash_options *o, char **ret_reason)
{
	unsigned n_workers = io_workers(), n_slots = 4 * n_workers;
	_cleanup_free_ struct auth_item *items = NULL;
	struct auth_ctx c = { .md = md, .store = s, .o = o };
	static const struct pmap_ops ops = {
		.produce = auth_produce, .work = auth_work, .consume = auth_consume,
	};
	int r;

	if (!store_is_encrypted(s))
		return 0; /* no tags: each chunk's hash is checked just before it is written */
	items = calloc(n_slots, sizeof(*items));
	if (!items)
		return -ENOMEM;
	for (size_t i = 0; i < md->n_chunks; i++)
		c.total_bytes += md->chunks[i].size_bytes;
	c.start = c.last_report = now_s();
	r = pmap_run(&ops, &c, items, sizeof(*items), n_slots, n_workers);
	if (r < 0 && ret_reason) {
		char id[CHUNK_ID_STRING_MAX];
		const struct manifest_chunk *ch = &md->chunks[c.bad];
		(void) asprintf(ret_reason, "chunk %s (disk offset %llu) %s",
				chunk_id_to_string(&ch->id, id),
				(unsigned long long) ch->offset_bytes,
				r == -EBADMSG ? "failed authentication (damaged or altered)" :
				r == -ENOENT  ? "is missing from the store" :
						"cannot be read");
	}
	return r;
}

/* --- verification ------------------------------------------------------------------------ */

struct vread_ctx {
	struct fl_ctx *c;
	struct fl_item *it;
};

static int read_back_piece(uint64_t off, uint64_t len, void *userdata)
{
	struct vread_ctx *v = userdata;
	uint8_t *dst = v->it->buf + (off - v->it->offset_bytes);

	if (aligned_for_direct(v->c, dst, off, len))
		return pread_all(v->c->direct_fd, dst, (size_t) len, off);
	/* unaligned: drop the cached pages so the read comes from the device */
	(void) posix_fadvise(v->c->fd, (off_t) off, (off_t) len, POSIX_FADV_DONTNEED);
	return pread_all(v->c->fd, dst, (size_t) len, off);
}

/* Like writing, reading back runs in the workers: n reads in flight. */
static int vf_work(void *userdata, void *item)
{
	struct fl_ctx *c = userdata;
	struct fl_item *it = item;
	struct vread_ctx v = { .c = c, .it = it };
	struct chunk_id id;
	int r;

	if (it->data_bytes * 2 >= it->size_bytes) {
		/* mostly data: one large read, then zero the holes (as capture stored them) */
		r = read_back_piece(it->offset_bytes, it->size_bytes, &v);
		if (r >= 0)
			extents_zero_holes(c->md->extents, c->md->n_extents, it->first_extent,
					   it->offset_bytes, it->size_bytes, it->buf);
	} else {
		memset(it->buf, 0, it->size_bytes);
		r = extents_for_each_in_range(c->md->extents, c->md->n_extents, it->first_extent,
					      it->offset_bytes, it->size_bytes, read_back_piece,
					      &v);
	}
	if (r < 0)
		return r;
	if (!it->chunk) {
		it->mismatch = !memeqzero(it->buf, it->size_bytes);
		return 0;
	}
	store_chunk_id(c->store, it->buf, it->size_bytes, &id);
	it->mismatch = !chunk_id_equal(&id, &it->chunk->id);
	return 0;
}

static int vf_consume(void *userdata, uint64_t seq, void *item)
{
	struct fl_ctx *c = userdata;
	struct fl_item *it = item;

	c->done_bytes += it->data_bytes;
	c->stats->verified_bytes += it->data_bytes;
	report(c, c->md->used_bytes, false);
	if (!it->mismatch)
		return 0;

	/* find the first differing byte to name it */
	{
		_cleanup_free_ uint8_t *want = calloc(1, it->size_bytes);
		uint64_t where = it->offset_bytes;
		if (want && it->chunk &&
		    store_get_chunk(c->store, &it->chunk->id, want, it->size_bytes) < 0) {
			free(want);
			want = NULL;
		}
		if (want)
			for (uint32_t i = 0; i < it->size_bytes; i++)
				if (want[i] != it->buf[i]) {
					where = it->offset_bytes + i;
					break;
				}
		c->mismatch_offset = where;
	}
	return -EBADMSG;
}

static int compare_ptable(int fd, const struct manifest_disk *md, uint64_t target_size_bytes,
			  bool grow, char **ret_reason)
{
	_cleanup_(ptable_freep) struct ptable *want = NULL, *have = NULL;
	uint8_t boot[MANIFEST_BOOT_CODE_BYTES];
	int r;

	if (!has_table(md))
		return 0;
	r = pread_all(fd, boot, sizeof(boot), 0);
	if (r < 0)
		return r;
	if (memcmp(boot, md->boot_code, sizeof(boot)) != 0) {
		for (size_t i = 0; i < sizeof(boot); i++)
			if (boot[i] != md->boot_code[i]) {
				if (ret_reason)
					(void) asprintf(ret_reason,
							"boot code differs at byte offset %zu", i);
				break;
			}
		return -EBADMSG;
	}
	r = flash_target_ptable(md, target_size_bytes, grow, &want);
	if (r < 0)
		return r;
	r = ptable_read(fd, md->logical_sector_bytes, &have);
	if (r < 0 || have->label != want->label || have->n_entries != want->n_entries) {
		if (ret_reason)
			(void) asprintf(ret_reason, "the partition table differs from the image's");
		return -EBADMSG;
	}
	if (!streq_ci(have->disk_id, want->disk_id))
		goto differ;
	for (size_t i = 0; i < want->n_entries; i++) {
		const struct ptable_entry *a = &have->entries[i], *b = &want->entries[i];
		/* with --grow the last partition may have been extended: compare starts only */
		if (a->partno != b->partno || a->start_bytes != b->start_bytes ||
		    (a->size_bytes != b->size_bytes && !grow) || !streq_ci(a->type, b->type) ||
		    !streq_ci(a->uuid, b->uuid) || a->attrs != b->attrs)
			goto differ;
	}
	return 0;
differ:
	if (ret_reason)
		(void) asprintf(ret_reason, "the partition table differs from the image's");
	return -EBADMSG;
}

int verify_disk(int fd, uint64_t target_size_bytes, const struct manifest_disk *md,
		struct store *s, const struct flash_options *o, struct flash_stats *stats,
		char **ret_reason)
{
	_cleanup_close_ int direct_fd = -EBADF;
	struct fl_ctx c = {
		.fd = fd, .direct_fd = -1, .sector_bytes = md->logical_sector_bytes, .md = md,
		.store = s, .o = o, .stats = stats, .phase = "verify",
	};
	static const struct pmap_ops ops = {
		.produce = fl_produce, .work = vf_work, .consume = vf_consume,
	};
	int r;

	r = compare_ptable(fd, md, target_size_bytes, o->grow, ret_reason);
	if (r < 0)
		return r;
	direct_fd = reopen_direct(fd, O_RDONLY);
	c.direct_fd = direct_fd;
	r = walk_chunks(&c, &ops);
	if (r == -EBADMSG && ret_reason)
		(void) asprintf(ret_reason, "data differs from the image at byte offset %llu",
				(unsigned long long) c.mismatch_offset);
	if (r < 0)
		return r;
	stats->verify_seconds += now_s() - c.start;
	return 0;
}
