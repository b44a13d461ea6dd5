/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Importing a disk from a tar (the Compute Engine image format: a gzip'ed
 * tar holding one member, disk.raw, usually GNU sparse). The archive is read
 * once, as a stream (libarchive), never unpacked: each non-zero aligned
 * chunk of disk.raw goes into the store as it passes, and a map of chunk
 * index -> chunk ID is kept in memory. The map is then a random-access disk
 * (struct vdisk) that reads the chunks back from the store, re-verifying
 * each, so the imported disk can be analysed like a physical one.
 *
 * These raw chunks are scaffolding: those the import wrote itself and that
 * no image ends up referencing are removed again (vdisk_chunks_drop_new()).
 */
#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imager/gc.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "imager/vdisk.h"
#include "util/cleanup.h"
#include "util/log.h"

DEFINE_CLEANUP(struct store_refs *, store_refs_free)

#define TAR_MEMBER_NAME "disk.raw"
#define TAR_READ_BLOCK_BYTES (UINT64_C(1) << 20)
/* decoded chunks kept for reads: sequential readers hit, random ones cost a decode */
#define TAR_CACHE_SLOTS 4u

struct map_entry {
	uint64_t index;          /* chunk index: offset / CHUNK_SIZE_BYTES */
	struct chunk_id id;
	uint32_t size_bytes;
	bool added;              /* newly written to the store by this import */
};

struct cache_slot {
	uint64_t index;          /* UINT64_MAX: empty */
	uint64_t used;
	uint8_t *buf;
};

struct chunk_map {
	struct vdisk v;
	struct store *store;     /* borrowed; outlives the vdisk */
	struct map_entry *entries; /* sorted by index */
	size_t n_entries, allocated;
	pthread_mutex_t lock;    /* protects the cache */
	struct cache_slot cache[TAR_CACHE_SLOTS];
	uint64_t clock;
};

static void map_close(struct vdisk *v)
{
	struct chunk_map *m = (struct chunk_map *) v;

	free(m->entries);
	for (unsigned i = 0; i < TAR_CACHE_SLOTS; i++)
		free(m->cache[i].buf);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct map_entry *map_find(const struct chunk_map *m, uint64_t index)
{
	size_t lo = 0, hi = m->n_entries;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->entries[mid].index == index)
			return &m->entries[mid];
		if (m->entries[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Called locked: the decoded chunk @e, from the cache or the store. */
static int map_chunk(struct chunk_map *m, const struct map_entry *e, const uint8_t **ret)
{
	struct cache_slot *victim = &m->cache[0];
	int r;

	for (unsigned i = 0; i < TAR_CACHE_SLOTS; i++) {
		struct cache_slot *s = &m->cache[i];
		if (s->buf && s->index == e->index) {
			s->used = ++m->clock;
			*ret = s->buf;
			return 0;
		}
		if (!s->buf || s->used < victim->used)
			victim = s;
		if (!s->buf)
			break;
	}
	if (!victim->buf) {
		victim->buf = malloc(CHUNK_SIZE_BYTES);
		if (!victim->buf)
			return -ENOMEM;
	}
	victim->index = UINT64_MAX;
	r = store_get_chunk(m->store, &e->id, victim->buf, e->size_bytes);
	if (r < 0)
		return r;
	victim->index = e->index;
	victim->used = ++m->clock;
	*ret = victim->buf;
	return 0;
}

static int map_pread(struct vdisk *v, void *buf_, size_t n, uint64_t offset_bytes)
{
	struct chunk_map *m = (struct chunk_map *) v;
	uint8_t *buf = buf_;
	int r;

	while (n > 0) {
		uint64_t index = offset_bytes / CHUNK_SIZE_BYTES;
		uint64_t in = offset_bytes % CHUNK_SIZE_BYTES;
		size_t seg = (size_t) MIN((uint64_t) n, CHUNK_SIZE_BYTES - in);
		const struct map_entry *e = map_find(m, index);
		const uint8_t *data;

		if (!e)
			memset(buf, 0, seg);
		else {
			if (in + seg > e->size_bytes)
				return vdisk_set_error(v, -EBADMSG, "chunk %llu is shorter than the disk",
						       (unsigned long long) index);
			pthread_mutex_lock(&m->lock);
			r = map_chunk(m, e, &data);
			if (r >= 0)
				memcpy(buf, data + in, seg);
			pthread_mutex_unlock(&m->lock);
			if (r < 0) {
				char hex[CHUNK_ID_STRING_MAX];
				return vdisk_set_error(v, r, "cannot read chunk %s back from the store: %s",
						       chunk_id_to_string(&e->id, hex), strerror(-r));
			}
		}
		buf += seg, n -= seg, offset_bytes += seg;
	}
	return 0;
}

static int drop_added(struct chunk_map *m)
{
	_cleanup_(store_refs_freep) struct store_refs *refs = NULL;
	int r, removed = 0;
	bool any = false;

	for (size_t i = 0; i < m->n_entries && !any; i++)
		any = m->entries[i].added;
	if (!any)
		return 0;
	/* every image and snapshot: a chunk any of them names stays */
	r = store_refs_load(m->store, &refs, NULL);
	if (r < 0)
		return r; /* a manifest we cannot read might reference anything: remove nothing */
	for (size_t i = 0; i < m->n_entries; i++) {
		struct map_entry *e = &m->entries[i];

		if (!e->added || store_refs_count(refs, &e->id) > 0)
			continue;
		r = store_remove_chunk(m->store, &e->id);
		if (r < 0)
			return r;
		removed += r;
		e->added = false;
	}
	return removed;
}

int vdisk_chunks_drop_new(struct vdisk *v)
{
	struct chunk_map *m = (struct chunk_map *) v;
	int r;

	if (!v || v->format != VDISK_CHUNKS)
		return -EINVAL;
	r = drop_added(m);
	if (r < 0)
		return r;
	/* the chunks may be gone: this disk cannot be read any more */
	m->n_entries = 0;
	v->size_bytes = 0;
	return r;
}

int vdisk_chunks_new(struct store *s, struct vdisk **ret)
{
	struct chunk_map *m;

	if (!s || !ret)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	vdisk_init(&m->v, VDISK_CHUNKS, 0);
	pthread_mutex_init(&m->lock, NULL);
	m->v.pread = map_pread;
	m->v.close = map_close;
	m->store = s;
	*ret = &m->v;
	return 0;
}

/* --- the stream ---------------------------------------------------------------- */

struct stream {
	struct chunk_map *m;
	uint64_t size_bytes;
	uint64_t index;          /* chunk in buf, UINT64_MAX: none */
	uint8_t *buf;
	uint64_t end_bytes;      /* end of the last block seen */
	progress_fn progress;
	void *userdata;
	struct timespec start, last;
};

static double seconds_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double) (now.tv_sec - t->tv_sec) + (double) (now.tv_nsec - t->tv_nsec) / 1e9;
}

static void report(struct stream *st, bool force)
{
	struct progress p = { .phase = "import", .total_bytes = st->size_bytes };

	if (!st->progress || (!force && seconds_since(&st->last) < 0.5))
		return;
	clock_gettime(CLOCK_MONOTONIC, &st->last);
	p.done_bytes = MIN(st->end_bytes, st->size_bytes);
	p.elapsed_s = seconds_since(&st->start);
	st->progress(&p, st->userdata);
}

static int flush_chunk(struct stream *st)
{
	struct chunk_map *m = st->m;
	uint64_t offset;
	uint32_t size;
	struct chunk_id id;
	int r;

	if (st->index == UINT64_MAX)
		return 0;
	offset = st->index * CHUNK_SIZE_BYTES;
	size = (uint32_t) MIN((uint64_t) CHUNK_SIZE_BYTES, st->size_bytes - offset);
	if (!memeqzero(st->buf, size)) {
		store_chunk_id(m->store, st->buf, size, &id);
		r = store_put_chunk(m->store, &id, st->buf, size, NULL);
		if (r < 0)
			return r;
		if (m->n_entries == m->allocated) {
			size_t a = m->allocated ? 2 * m->allocated : 1024;
			struct map_entry *x = reallocarray(m->entries, a, sizeof(*x));
			if (!x)
				return -ENOMEM;
			m->entries = x, m->allocated = a;
		}
		m->entries[m->n_entries++] = (struct map_entry){
			.index = st->index, .id = id, .size_bytes = size, .added = r > 0,
		};
	}
	st->index = UINT64_MAX;
	report(st, false);
	return 0;
}

static int add_block(struct stream *st, const uint8_t *p, size_t n, uint64_t offset,
		     char **ret_reason)
{
	int r;

	if (offset < st->end_bytes || offset > st->size_bytes || n > st->size_bytes - offset)
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the data of disk.raw is out of order or past its size (%zu "
				    "bytes at byte %llu)",
				    n, (unsigned long long) offset);
	st->end_bytes = offset + n;
	while (n > 0) {
		uint64_t index = offset / CHUNK_SIZE_BYTES, in = offset % CHUNK_SIZE_BYTES;
		size_t take = (size_t) MIN((uint64_t) n, CHUNK_SIZE_BYTES - in);

		if (index != st->index) {
			r = flush_chunk(st);
			if (r < 0)
				return vdisk_reason(ret_reason, r, "cannot store a chunk: %s",
						    strerror(-r));
			memset(st->buf, 0, CHUNK_SIZE_BYTES);
			st->index = index;
		}
		memcpy(st->buf + in, p, take);
		p += take, n -= take, offset += take;
	}
	return 0;
}

static void archive_freep(struct archive **a)
{
	if (*a)
		(void) archive_read_free(*a);
}

static int stream_tar(struct archive *a, struct stream *st, char **ret_reason)
{
	struct archive_entry *entry;
	const char *name;
	int64_t size;
	int r;

	r = archive_read_next_header(a, &entry);
	if (r == ARCHIVE_EOF)
		return vdisk_reason(ret_reason, -EBADMSG, "the archive is empty; it must hold disk.raw");
	if (r < ARCHIVE_WARN)
		return vdisk_reason(ret_reason, -EBADMSG, "not a readable tar archive: %s",
				    archive_error_string(a) ?: "unknown error");
	name = archive_entry_pathname(entry);
	if (!name || strcmp(name, TAR_MEMBER_NAME) != 0) {
		_cleanup_free_ char *shown = strndup(name ?: "", 256);
		for (char *c = shown; c && *c; c++)
			if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f)
				*c = '?';
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the archive's member '%s' is not '" TAR_MEMBER_NAME
				    "' (an image archive holds exactly one member, " TAR_MEMBER_NAME ")",
				    shown ?: "");
	}
	if (archive_entry_filetype(entry) != AE_IFREG || archive_entry_hardlink(entry))
		return vdisk_reason(ret_reason, -EBADMSG, TAR_MEMBER_NAME " is not a regular file");
	if (!archive_entry_size_is_set(entry))
		return vdisk_reason(ret_reason, -EBADMSG, TAR_MEMBER_NAME " has no size");
	size = archive_entry_size(entry);
	if (size < 0)
		return vdisk_reason(ret_reason, -EBADMSG, TAR_MEMBER_NAME " has a negative size");
	r = vdisk_check_size((uint64_t) size, ret_reason);
	if (r < 0)
		return r;
	if (size % 512 != 0)
		return vdisk_reason(ret_reason, -EBADMSG,
				    TAR_MEMBER_NAME " is %lld bytes, not a whole number of 512-byte "
				    "sectors",
				    (long long) size);
	st->size_bytes = (uint64_t) size;

	for (;;) {
		const void *block;
		size_t n;
		la_int64_t offset;

		r = archive_read_data_block(a, &block, &n, &offset);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return vdisk_reason(ret_reason, -EBADMSG,
					    "the archive is truncated or damaged: %s",
					    archive_error_string(a) ?: "unknown error");
		if (offset < 0)
			return vdisk_reason(ret_reason, -EBADMSG, "a negative data offset");
		r = add_block(st, block, n, (uint64_t) offset, ret_reason);
		if (r < 0)
			return r;
	}
	r = flush_chunk(st);
	if (r < 0)
		return vdisk_reason(ret_reason, r, "cannot store a chunk: %s", strerror(-r));

	/* exactly one member, and the archive must end cleanly (no truncation) */
	r = archive_read_next_header(a, &entry);
	if (r == ARCHIVE_OK || r == ARCHIVE_WARN) {
		_cleanup_free_ char *shown = strndup(archive_entry_pathname(entry) ?: "", 256);
		for (char *c = shown; c && *c; c++)
			if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f)
				*c = '?';
		return vdisk_reason(ret_reason, -EBADMSG,
				    "the archive holds another member, '%s', after " TAR_MEMBER_NAME
				    "; it must hold exactly one",
				    shown ?: "");
	}
	if (r != ARCHIVE_EOF)
		return vdisk_reason(ret_reason, -EBADMSG, "the archive is truncated or damaged: %s",
				    archive_error_string(a) ?: "unknown error");
	report(st, true);
	return 0;
}

int vdisk_chunks_stream_tar(struct vdisk *v, const char *path, progress_fn progress,
			    void *userdata, char **ret_reason)
{
	struct chunk_map *m = (struct chunk_map *) v;
	_cleanup_(archive_freep) struct archive *a = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	struct stream st = {
		.m = m, .index = UINT64_MAX, .progress = progress, .userdata = userdata,
	};
	int r;

	if (!v || v->format != VDISK_CHUNKS || !path || v->size_bytes != 0 || m->n_entries != 0)
		return -EINVAL;
	a = archive_read_new();
	buf = malloc(CHUNK_SIZE_BYTES);
	if (!a || !buf)
		return -ENOMEM;
	st.buf = buf;
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_filter_none(a) != ARCHIVE_OK ||
	    archive_read_support_format_gnutar(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK)
		return -EOPNOTSUPP;
	if (archive_read_open_filename(a, path, TAR_READ_BLOCK_BYTES) != ARCHIVE_OK) {
		r = archive_errno(a) > 0 ? -archive_errno(a) : -EBADMSG;
		if (r == -ENOENT || r == -EACCES || r == -EISDIR)
			return r;
		return vdisk_reason(ret_reason, -EBADMSG, "not a readable tar archive: %s",
				    archive_error_string(a) ?: "unknown error");
	}
	clock_gettime(CLOCK_MONOTONIC, &st.start);
	st.last = st.start;

	r = stream_tar(a, &st, ret_reason);
	if (r < 0)
		return r; /* the chunks stored so far stay listed for vdisk_chunks_drop_new() */
	m->v.size_bytes = st.size_bytes;
	log_debug("tar import: %llu bytes, %zu non-zero chunks", (unsigned long long) st.size_bytes,
		  m->n_entries);
	return 0;
}
