/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Store maintenance: the flock() protocol between writers and the garbage
 * collector, garbage collection, verification of everything in a store, and
 * per-image storage accounting (docs/FORMAT.md, "Locking and garbage
 * collection"). The store's file layout is the one docs/FORMAT.md specifies
 * (chunks/<4 hex>/<64 hex>.chunk, images/, snapshots/).
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imager/crypt.h"
#include "imager/gc.h"
#include "imager/lifecycle.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct manifest *, manifest_free)

#define LOCK_FILE "lock"
#define CHUNKS_DIR "chunks"
#define CHUNK_SUFFIX ".chunk"
#define TMP_INFIX ".tmp."
#define MANIFEST_SUFFIX ".manifest"
#define DEPRECATION_SUFFIX ".deprecation"
#define SIG_SUFFIX ".sig"
/*
 * The largest chunk file read: a raw 4 MiB chunk plus, in an encrypted store,
 * its AEAD tag. store_decode_chunk() then checks the exact size.
 */
#define CHUNK_FILE_READ_MAX (CHUNK_FILE_BYTES_MAX + CRYPT_TAG_BYTES)
/* chunk file header: uncompressed_size at byte 24 (docs/FORMAT.md, "Chunk files") */
#define CHUNK_HEADER_UNCOMPRESSED_OFFSET 24

int store_lock(struct store *s, enum store_lock_mode mode, bool wait, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	int op;

	if (!s || !ret_fd)
		return -EINVAL;
	fd = openat(store_dir_fd(s), LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
		    0644);
	if (fd < 0 && (errno == EROFS || errno == EACCES)) {
		/* a read-only store: an existing lock file can still be locked */
		int saved = errno;
		fd = openat(store_dir_fd(s), LOCK_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
		if (fd < 0)
			return -saved;
	}
	if (fd < 0)
		return -errno;
	op = (mode == STORE_LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
	while (flock(fd, op) < 0) {
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* ---- references ---- */

struct store_ref {
	struct chunk_id id;
	size_t n_manifests;
};

struct store_refs {
	struct store_ref *refs;
	size_t n;
	size_t n_images, n_snapshots;
};

struct store_refs *store_refs_free(struct store_refs *refs)
{
	if (!refs)
		return NULL;
	free(refs->refs);
	free(refs);
	return NULL;
}
DEFINE_CLEANUP(struct store_refs *, store_refs_free)

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, CHUNK_ID_BYTES);
}

/* The distinct chunk IDs of @m, sorted. */
static int manifest_ids(const struct manifest *m, struct chunk_id **ret, size_t *ret_n)
{
	struct chunk_id *ids;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < m->n_disks; i++)
		n += m->disks[i].n_chunks;
	ids = malloc(MAX(n, (size_t) 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_disks; i++)
		for (size_t j = 0; j < m->disks[i].n_chunks; j++)
			ids[k++] = m->disks[i].chunks[j].id;
	qsort(ids, n, sizeof(*ids), cmp_id);
	k = 0;
	for (size_t i = 0; i < n; i++)
		if (k == 0 || !chunk_id_equal(&ids[k - 1], &ids[i]))
			ids[k++] = ids[i];
	*ret = ids;
	*ret_n = k;
	return 0;
}

static char *describe_manifest(enum manifest_kind kind, const char *name)
{
	char *s = NULL;

	if (asprintf(&s, "%s '%s'", manifest_kind_to_string(kind), name) < 0)
		return NULL;
	return s;
}

int store_refs_load(struct store *s, struct store_refs **ret, char **ret_bad)
{
	_cleanup_(store_refs_freep) struct store_refs *refs = NULL;
	_cleanup_free_ struct chunk_id *all = NULL;
	size_t n_all = 0, cap = 0;
	int r;

	if (!s || !ret)
		return -EINVAL;
	refs = calloc(1, sizeof(*refs));
	if (!refs)
		return -ENOMEM;

	for (int kind = 0; kind < _MANIFEST_KIND_MAX; kind++) {
		_cleanup_strv_free_ char **names = NULL;

		r = store_list_manifests_of_kind(s, (enum manifest_kind) kind, &names);
		if (r < 0)
			return r;
		for (char **p = names; *p; p++) {
			_cleanup_(manifest_freep) struct manifest *m = NULL;
			_cleanup_free_ struct chunk_id *ids = NULL;
			size_t n;

			r = store_get_manifest_of_kind(s, (enum manifest_kind) kind, *p, &m);
			if (r == -ENOENT)
				continue; /* removed since the listing (only without the lock) */
			if (r < 0) {
				if (ret_bad)
					*ret_bad = describe_manifest((enum manifest_kind) kind, *p);
				return r;
			}
			if (kind == MANIFEST_KIND_SNAPSHOT)
				refs->n_snapshots++;
			else
				refs->n_images++;
			r = manifest_ids(m, &ids, &n);
			if (r < 0)
				return r;
			if (n > cap - n_all) {
				size_t ncap = MAX(cap * 2, n_all + n);
				struct chunk_id *q = realloc(all, MAX(ncap, (size_t) 1) * sizeof(*q));
				if (!q)
					return -ENOMEM;
				all = q, cap = ncap;
			}
			memcpy(all + n_all, ids, n * sizeof(*ids));
			n_all += n;
		}
	}

	if (n_all > 0) /* qsort(NULL, 0) is undefined behaviour */
		qsort(all, n_all, sizeof(*all), cmp_id);
	refs->refs = calloc(MAX(n_all, (size_t) 1), sizeof(*refs->refs));
	if (!refs->refs)
		return -ENOMEM;
	for (size_t i = 0; i < n_all; i++) {
		if (refs->n > 0 && chunk_id_equal(&refs->refs[refs->n - 1].id, &all[i])) {
			refs->refs[refs->n - 1].n_manifests++;
			continue;
		}
		refs->refs[refs->n++] = (struct store_ref){ all[i], 1 };
	}
	*ret = TAKE_PTR(refs);
	return 0;
}

size_t store_refs_count(const struct store_refs *refs, const struct chunk_id *id)
{
	const struct store_ref *hit;

	if (!refs || !id || refs->n == 0)
		return 0;
	/* struct store_ref starts with its ID, so cmp_id works on both */
	hit = bsearch(id, refs->refs, refs->n, sizeof(*refs->refs), cmp_id);
	return hit ? hit->n_manifests : 0;
}

size_t store_refs_n_chunks(const struct store_refs *refs)
{
	return refs ? refs->n : 0;
}

size_t store_refs_n_images(const struct store_refs *refs)
{
	return refs ? refs->n_images : 0;
}

size_t store_refs_n_snapshots(const struct store_refs *refs)
{
	return refs ? refs->n_snapshots : 0;
}

int store_image_storage(struct store *s, const struct manifest *m, const struct store_refs *refs,
			struct image_storage *ret)
{
	_cleanup_free_ struct chunk_id *ids = NULL;
	struct image_storage st = {};
	size_t n;
	int r;

	if (!s || !m || !ret)
		return -EINVAL;
	for (size_t i = 0; i < m->n_disks; i++)
		st.logical_bytes += m->disks[i].used_bytes;
	r = manifest_ids(m, &ids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		uint64_t bytes = 0;

		st.chunks++;
		r = store_chunk_stored_bytes(s, &ids[i], &bytes);
		if (r == -ENOENT) {
			st.missing_chunks++;
			continue;
		}
		if (r < 0)
			return r;
		st.stored_bytes += bytes;
		/* referenced by this manifest alone (or by none, if it is not in the store) */
		if (store_refs_count(refs, &ids[i]) <= 1) {
			st.unique_chunks++;
			st.unique_bytes += bytes;
		}
	}
	*ret = st;
	return 0;
}

/* ---- walking the chunk directories ---- */

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* "<64 hex>.chunk" inside fan-out directory @dir: the ID, or -EINVAL */
static int chunk_file_id(const char *dir, const char *file, struct chunk_id *ret)
{
	char hex[CHUNK_ID_STRING_MAX];

	if (strlen(file) != 2 * CHUNK_ID_BYTES + strlen(CHUNK_SUFFIX) ||
	    strcmp(file + 2 * CHUNK_ID_BYTES, CHUNK_SUFFIX) != 0 || !is_hex(file, 2 * CHUNK_ID_BYTES) ||
	    strncmp(file, dir, 4) != 0)
		return -EINVAL;
	memcpy(hex, file, 2 * CHUNK_ID_BYTES);
	hex[2 * CHUNK_ID_BYTES] = 0;
	return chunk_id_from_string(hex, ret) < 0 ? -EINVAL : 0;
}

enum entry_kind {
	ENTRY_CHUNK,
	ENTRY_TMP,
	ENTRY_OTHER,
};

/* Called for every entry of every chunks/<4 hex>/ directory; @dir_fd is that directory. */
typedef int (*chunk_walk_fn)(int dir_fd, const char *dir, const char *file, enum entry_kind kind,
			     const struct chunk_id *id, void *userdata);

static int open_dir_at(int at_fd, const char *path, DIR **ret)
{
	int fd = openat(at_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret = d;
	return 0;
}

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static int walk_chunks(struct store *s, chunk_walk_fn fn, void *userdata)
{
	__attribute__((cleanup(closedirp))) DIR *top = NULL;
	struct dirent *de;
	int r;

	r = open_dir_at(store_dir_fd(s), CHUNKS_DIR, &top);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (;;) {
		__attribute__((cleanup(closedirp))) DIR *sub = NULL;
		struct dirent *e;
		char dir[8];

		errno = 0;
		de = readdir(top);
		if (!de)
			return errno ? -errno : 0;
		if (strlen(de->d_name) != 4 || !is_hex(de->d_name, 4))
			continue; /* not a fan-out directory (or a temporary beside them) */
		memcpy(dir, de->d_name, 5);
		r = open_dir_at(dirfd(top), dir, &sub);
		if (r == -ENOTDIR || r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		for (;;) {
			struct chunk_id id;
			enum entry_kind kind;

			errno = 0;
			e = readdir(sub);
			if (!e) {
				if (errno)
					return -errno;
				break;
			}
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			if (chunk_file_id(dir, e->d_name, &id) >= 0)
				kind = ENTRY_CHUNK;
			else if (strstr(e->d_name, TMP_INFIX))
				kind = ENTRY_TMP;
			else
				kind = ENTRY_OTHER;
			r = fn(dirfd(sub), dir, e->d_name, kind, kind == ENTRY_CHUNK ? &id : NULL,
			       userdata);
			if (r < 0)
				return r;
		}
	}
}

/* ---- garbage collection ---- */

struct gc_ctx {
	const struct gc_options *o;
	const struct store_refs *refs;
	struct gc_stats *st;
};

static int remove_if_old_tmp(int dir_fd, const char *file, const struct gc_options *o,
			     struct gc_stats *st)
{
	struct stat sb;

	if (fstatat(dir_fd, file, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISREG(sb.st_mode))
		return 0;
	if ((int64_t) sb.st_mtime > o->now - o->tmp_age_seconds)
		return 0; /* young: perhaps a writer that does not take the lock */
	if (!o->dry_run && unlinkat(dir_fd, file, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	log_debug("gc: %s stale temporary '%s'", o->dry_run ? "would remove" : "removed", file);
	st->removed_tmp++;
	st->removed_tmp_bytes += (uint64_t) sb.st_size;
	return 0;
}

static int gc_chunk(int dir_fd, const char *dir, const char *file, enum entry_kind kind,
		    const struct chunk_id *id, void *userdata)
{
	struct gc_ctx *c = userdata;
	struct stat sb;

	if (kind == ENTRY_TMP)
		return remove_if_old_tmp(dir_fd, file, c->o, c->st);
	if (kind != ENTRY_CHUNK)
		return 0; /* not ours: never touched */
	if (fstatat(dir_fd, file, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (store_refs_count(c->refs, id) > 0) {
		c->st->kept_chunks++;
		c->st->kept_bytes += (uint64_t) sb.st_size;
		return 0;
	}
	if (!c->o->dry_run && unlinkat(dir_fd, file, 0) < 0 && errno != ENOENT)
		return -errno;
	c->st->removed_chunks++;
	c->st->removed_bytes += (uint64_t) sb.st_size;
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && strcmp(s + n - k, suffix) == 0;
}

/*
 * Temporaries in images/, snapshots/, chunks/ and the top directory; the
 * deprecation and signature files of manifests that are gone.
 */
static int gc_metadata_dir(struct store *s, const char *path, const struct gc_options *o,
			   struct gc_stats *st)
{
	__attribute__((cleanup(closedirp))) DIR *d = NULL;
	struct dirent *de;
	int r;

	r = open_dir_at(store_dir_fd(s), path, &d);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (;;) {
		const char *suffix;
		size_t len;

		errno = 0;
		de = readdir(d);
		if (!de)
			return errno ? -errno : 0;
		if (strstr(de->d_name, TMP_INFIX)) {
			r = remove_if_old_tmp(dirfd(d), de->d_name, o, st);
			if (r < 0)
				return r;
			continue;
		}
		len = strlen(de->d_name);
		if (strcmp(path, "images") == 0 && has_suffix(de->d_name, DEPRECATION_SUFFIX))
			suffix = DEPRECATION_SUFFIX;
		else if (strcmp(path, ".") != 0 && strcmp(path, CHUNKS_DIR) != 0 &&
			 has_suffix(de->d_name, SIG_SUFFIX))
			suffix = SIG_SUFFIX;
		else
			suffix = NULL;
		if (suffix) {
			_cleanup_free_ char *manifest = NULL;

			if (asprintf(&manifest, "%.*s" MANIFEST_SUFFIX, (int) (len - strlen(suffix)),
				     de->d_name) < 0)
				return -ENOMEM;
			if (faccessat(dirfd(d), manifest, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
				continue;
			if (errno != ENOENT)
				return -errno;
			/* its manifest was deleted: a new one of that name starts ACTIVE, unsigned */
			if (!o->dry_run && unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
				return -errno;
			st->removed_orphans++;
		}
	}
}

int store_gc(struct store *s, const struct gc_options *o, struct gc_stats *ret, char **ret_bad)
{
	_cleanup_(store_refs_freep) struct store_refs *refs = NULL;
	struct gc_stats st = {};
	struct gc_ctx c = { o, NULL, &st };
	int r;

	if (!s || !o || !ret)
		return -EINVAL;
	r = store_refs_load(s, &refs, ret_bad);
	if (r < 0)
		return r;
	c.refs = refs;
	st.images = refs->n_images;
	st.snapshots = refs->n_snapshots;
	r = walk_chunks(s, gc_chunk, &c);
	if (r < 0)
		return r;
	r = gc_metadata_dir(s, ".", o, &st);
	if (r < 0)
		return r;
	r = gc_metadata_dir(s, CHUNKS_DIR, o, &st);
	if (r < 0)
		return r;
	r = gc_metadata_dir(s, "images", o, &st);
	if (r < 0)
		return r;
	r = gc_metadata_dir(s, "snapshots", o, &st);
	if (r < 0)
		return r;
	*ret = st;
	return 0;
}

/* ---- verification ---- */

/* What the walk learnt about each chunk file, to check manifests against. */
struct seen_chunk {
	struct chunk_id id;
	uint32_t size_bytes; /* uncompressed; 0 if the file is damaged */
};

struct verify_ctx {
	store_problem_fn fn;
	void *userdata;
	struct verify_stats *st;
	struct seen_chunk *seen;
	size_t n_seen, cap_seen;
	uint8_t *buf; /* CHUNK_SIZE_BYTES */
	struct store *store; /* an encrypted store's chunks need its key */
};

static void problem(struct verify_ctx *c, const char *fmt, ...) _printf_(2, 3);
static void problem(struct verify_ctx *c, const char *fmt, ...)
{
	_cleanup_free_ char *line = NULL;
	va_list ap;
	int k;

	c->st->problems++;
	va_start(ap, fmt);
	k = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (k < 0)
		line = NULL;
	if (c->fn)
		c->fn(line ? line : "(out of memory formatting a problem)", c->userdata);
}

static int remember(struct verify_ctx *c, const struct chunk_id *id, uint32_t size_bytes)
{
	if (c->n_seen == c->cap_seen) {
		size_t ncap = MAX(c->cap_seen * 2, (size_t) 1024);
		struct seen_chunk *p = realloc(c->seen, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		c->seen = p, c->cap_seen = ncap;
	}
	c->seen[c->n_seen++] = (struct seen_chunk){ *id, size_bytes };
	return 0;
}

static int verify_chunk(int dir_fd, const char *dir, const char *file, enum entry_kind kind,
			const struct chunk_id *id, void *userdata)
{
	struct verify_ctx *c = userdata;
	_cleanup_free_ char *data = NULL;
	char hex[CHUNK_ID_STRING_MAX];
	uint32_t usize = 0;
	size_t size;
	int r;

	if (kind != ENTRY_CHUNK)
		return 0; /* temporaries and foreign files are not part of the store's content */
	chunk_id_to_string(id, hex);
	c->st->chunks++;
	r = read_file_at(dir_fd, file, CHUNK_FILE_READ_MAX, &data, &size);
	if (r == -ENOMEM)
		return r;
	if (r == -EFBIG) {
		problem(c, "chunk %s: damaged: larger than any chunk file", hex);
		return remember(c, id, 0);
	}
	if (r < 0) {
		problem(c, "chunk %s: unreadable: %s", hex, strerror(-r));
		return remember(c, id, 0);
	}
	c->st->chunk_bytes += size;
	if (size >= CHUNK_FILE_HEADER_BYTES) {
		memcpy(&usize, data + CHUNK_HEADER_UNCOMPRESSED_OFFSET, sizeof(usize));
		usize = le32toh(usize);
	}
	if (size < CHUNK_FILE_HEADER_BYTES || usize == 0 || usize > CHUNK_SIZE_BYTES) {
		problem(c, "chunk %s: damaged: bad header", hex);
		return remember(c, id, 0);
	}
	r = store_decode_chunk(c->store, id, data, size, c->buf, usize);
	if (r == -EPROTONOSUPPORT) {
		problem(c, "chunk %s: needs a newer imager (unknown version or feature)", hex);
		return remember(c, id, 0);
	}
	if (r == -ENOKEY || r == -ENOMEM)
		return r; /* a locked store: nothing can be verified */
	if (r < 0) {
		problem(c, "chunk %s: damaged: does not decode to its ID", hex);
		return remember(c, id, 0);
	}
	return remember(c, id, usize);
}

static int cmp_seen(const void *a, const void *b)
{
	return memcmp(a, b, CHUNK_ID_BYTES);
}

static int verify_manifests(struct store *s, struct verify_ctx *c, enum manifest_kind kind)
{
	_cleanup_strv_free_ char **names = NULL;
	const char *what = manifest_kind_to_string(kind);
	int r;

	r = store_list_manifests_of_kind(s, kind, &names);
	if (r < 0)
		return r;
	for (char **p = names; *p; p++) {
		_cleanup_(manifest_freep) struct manifest *m = NULL;

		r = store_get_manifest_of_kind(s, kind, *p, &m);
		if (r == -ENOMEM)
			return r;
		if (r == -ENOENT)
			continue;
		if (kind == MANIFEST_KIND_SNAPSHOT)
			c->st->snapshots++;
		else
			c->st->images++;
		if (r == -EBADMSG) {
			problem(c, "%s '%s': manifest damaged (checksum or structure)", what, *p);
			continue;
		}
		if (r == -EPROTONOSUPPORT) {
			problem(c, "%s '%s': manifest needs a newer imager", what, *p);
			continue;
		}
		if (r < 0) {
			problem(c, "%s '%s': manifest unreadable: %s", what, *p, strerror(-r));
			continue;
		}
		for (size_t i = 0; i < m->n_disks; i++)
			for (size_t j = 0; j < m->disks[i].n_chunks; j++) {
				const struct manifest_chunk *mc = &m->disks[i].chunks[j];
				const struct seen_chunk *hit;
				char hex[CHUNK_ID_STRING_MAX];

				hit = c->n_seen ? bsearch(&mc->id, c->seen, c->n_seen,
							  sizeof(*c->seen), cmp_seen)
						: NULL;
				if (hit && (hit->size_bytes == 0 || hit->size_bytes == mc->size_bytes))
					continue; /* present (a damaged one is reported already) */
				chunk_id_to_string(&mc->id, hex);
				if (!hit)
					problem(c, "%s '%s': disk %zu chunk %s at offset %llu is missing",
						what, *p, i, hex, (unsigned long long) mc->offset_bytes);
				else
					problem(c, "%s '%s': disk %zu chunk %s holds %u bytes, the "
						   "manifest expects %u",
						what, *p, i, hex, hit->size_bytes, mc->size_bytes);
			}
		if (kind == MANIFEST_KIND_IMAGE) {
			struct deprecation d = DEPRECATION_INIT;

			r = store_get_deprecation(s, *p, &d);
			if (r >= 0)
				deprecation_done(&d);
			else if (r == -ENOMEM)
				return r;
			else if (r != -ENOENT)
				problem(c, "image '%s': deprecation record damaged", *p);
		}
	}
	return 0;
}

int store_verify(struct store *s, store_problem_fn fn, void *userdata, struct verify_stats *ret)
{
	struct verify_stats st = {};
	struct verify_ctx c = { fn, userdata, &st };
	int r;

	if (!s || !ret)
		return -EINVAL;
	c.store = s;
	c.buf = malloc(CHUNK_SIZE_BYTES);
	if (!c.buf)
		return -ENOMEM;
	r = walk_chunks(s, verify_chunk, &c);
	if (r >= 0) {
		qsort(c.seen, c.n_seen, sizeof(*c.seen), cmp_seen);
		r = verify_manifests(s, &c, MANIFEST_KIND_IMAGE);
	}
	if (r >= 0)
		r = verify_manifests(s, &c, MANIFEST_KIND_SNAPSHOT);
	free(c.buf);
	free(c.seen);
	if (r < 0)
		return r;
	*ret = st;
	return 0;
}
