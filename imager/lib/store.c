/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The image store: a directory of content-addressed chunk files and image
 * manifests (docs/FORMAT.md, "Store layout"). Every file is written once to
 * an O_EXCL temporary, made durable, renamed without replacing, so a crash
 * leaves either the whole file or a "*.tmp.*" leftover that nothing ever
 * reads. Manifests and config are fsync()ed one by one; chunks in batches
 * (store_commit_chunks()). Every chunk is re-hashed on every read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imager/chunk.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

#define STORE_FORMAT_VERSION 1
#define STORE_CONFIG_BYTES_MAX (16u * 1024) /* with 16 key slots of ~250 bytes (crypt.c) */
#define STORE_CHUNKS_DIR "chunks"
#define STORE_IMAGES_DIR "images"
#define STORE_SNAPSHOTS_DIR "snapshots"
#define STORE_CONFIG "config"
#define MANIFEST_SUFFIX ".manifest"
#define CHUNK_SUFFIX ".chunk"
/* "chunks/" + 4 hex + "/" + 64 hex + ".chunk" + NUL */
#define CHUNK_RELPATH_MAX (sizeof(STORE_CHUNKS_DIR) + 5 + 2 * CHUNK_ID_BYTES + sizeof(CHUNK_SUFFIX))

/*
 * Chunks are published in batches (docs/FORMAT.md, "Publishing"): each is
 * written to its temporary without fsync(); once a batch is full, one
 * syncfs() makes all of them durable and only then are they renamed to
 * their names. A chunk name therefore always points at durable bytes (a
 * later dedup hit may trust it), and a manifest is published only after a
 * commit and a second syncfs() that makes the renames durable.
 */

struct pending_chunk {
	struct chunk_id id;
	char *tmp;         /* relative to dir_fd */
	uint64_t file_bytes;
};

struct store {
	char *path;
	int dir_fd;
	struct store_crypt *crypt; /* NULL: unencrypted (imager/lib/crypt.c) */
	pthread_mutex_t pending_lock; /* guards pending and committing */
	struct pending_chunk *pending; /* written, not yet durable nor named */
	size_t n_pending;
	struct pending_chunk *committing; /* the batch being synced and renamed */
	size_t n_committing;
	pthread_mutex_t commit_lock; /* one commit at a time; held across syncfs + renames */
	int commit_error;            /* sticky: after a failed commit nothing is published */
};

static void pending_free(struct pending_chunk *p, size_t n, int dir_fd)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i].tmp && p[i].tmp[0] && dir_fd >= 0)
			(void) unlinkat(dir_fd, p[i].tmp, 0);
		free(p[i].tmp);
	}
	free(p);
}

struct store *store_free(struct store *s)
{
	if (!s)
		return NULL;
	/* never committed (an operation that failed or gave up): nothing names them */
	pending_free(s->pending, s->n_pending, s->dir_fd);
	pthread_mutex_destroy(&s->pending_lock);
	pthread_mutex_destroy(&s->commit_lock);
	safe_close(s->dir_fd);
	store_crypt_free(s->crypt);
	free(s->path);
	free(s);
	return NULL;
}
DEFINE_CLEANUP(struct store *, store_free)

struct store_crypt *store_crypt_of(const struct store *s)
{
	return s->crypt;
}

const char *store_path(const struct store *s)
{
	return s->path;
}

int store_dir_fd(const struct store *s)
{
	return s ? s->dir_fd : -EBADF;
}

static void chunk_relpath(const struct chunk_id *id, char buf[static CHUNK_RELPATH_MAX])
{
	char hex[CHUNK_ID_STRING_MAX];

	chunk_id_to_string(id, hex);
	snprintf(buf, CHUNK_RELPATH_MAX, STORE_CHUNKS_DIR "/%.4s/%s" CHUNK_SUFFIX, hex, hex);
}

/*
 * The config file: "key=value" lines. Unknown keys are ignored; a larger
 * format, or an encryption this build lacks, is refused. *ret_encrypted:
 * the encryption lines are crypt.c's to read.
 */
static int store_config_check(int dir_fd, bool *ret_encrypted)
{
	_cleanup_free_ char *text = NULL;
	uint64_t format = 0;
	bool have_format = false, encrypted = false;
	char *line, *save = NULL;
	int r;

	r = read_file_at(dir_fd, STORE_CONFIG, STORE_CONFIG_BYTES_MAX, &text, NULL);
	if (r == -EFBIG)
		return -EBADMSG;
	if (r < 0)
		return r;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || line[0] == 0)
			continue;
		if (startswith(line, "format=")) {
			if (safe_atou64(line + strlen("format="), &format) < 0)
				return -EBADMSG;
			have_format = true;
		} else if (startswith(line, "encryption=")) {
			if (strcmp(line + strlen("encryption="), CRYPT_CIPHER_NAME) == 0)
				encrypted = true;
			else if (strcmp(line + strlen("encryption="), "none") != 0)
				return -EPROTONOSUPPORT;
		}
	}
	if (!have_format || format == 0)
		return -EBADMSG;
	if (format > STORE_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	*ret_encrypted = encrypted;
	return 0;
}

/* @crypt_lines: the encryption lines of an encrypted store, or NULL. 1 written, 0 lost a race. */
static int store_config_write(int dir_fd, const char *crypt_lines)
{
	_cleanup_free_ char *text = NULL;
	char ts[32];
	int64_t now = (int64_t) time(NULL);
	int r;

	format_timestamp(ts, sizeof(ts), now);
	if (asprintf(&text,
		     "# imager store, docs/FORMAT.md\n"
		     "format=%d\n"
		     "created=%" PRId64 "\n"
		     "created-iso=%s\n"
		     "%s",
		     STORE_FORMAT_VERSION, now, ts, crypt_lines ? crypt_lines : "encryption=none\n") < 0)
		return -ENOMEM;
	r = write_file_atomic_noreplace(dir_fd, STORE_CONFIG, text, strlen(text));
	/* a concurrent creator won: its config counts (and, if encrypted, its key) */
	return r == -EEXIST ? 0 : r < 0 ? r : 1;
}

static int dir_is_empty(int dir_fd)
{
	_cleanup_close_ int fd = -EBADF;
	struct dirent *de;
	DIR *d;
	int r = 1;

	fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d)
		return -errno;
	TAKE_FD(fd);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = 0;
		break;
	}
	closedir(d);
	return r;
}

int store_open(const char *path, bool create, struct store **ret)
{
	return store_open_with_secret(path, create, NULL, ret);
}

int store_open_with_secret(const char *path, bool create, const struct crypt_secret *secret,
			   struct store **ret)
{
	_cleanup_(store_freep) struct store *s = NULL;
	uint8_t data_key[CRYPT_KEY_BYTES];
	bool encrypted = false, created = false;
	int r;

	if (!path || !*path)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dir_fd = -EBADF;
	pthread_mutex_init(&s->pending_lock, NULL);
	pthread_mutex_init(&s->commit_lock, NULL);
	s->path = strdup(path);
	if (!s->path)
		return -ENOMEM;

	if (create) {
		r = mkdir_p_at(AT_FDCWD, path, 0755);
		if (r < 0)
			return r;
	}
	s->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0)
		return -errno;

	r = store_config_check(s->dir_fd, &encrypted);
	if (r == -ENOENT && create) {
		_cleanup_free_ char *crypt_lines = NULL;

		/* never turn an unrelated, non-empty directory into a store */
		r = dir_is_empty(s->dir_fd);
		if (r < 0)
			return r;
		if (r == 0)
			return -ENOTEMPTY;
		r = mkdir_p_at(s->dir_fd, STORE_CHUNKS_DIR, 0755);
		if (r < 0)
			return r;
		r = mkdir_p_at(s->dir_fd, STORE_IMAGES_DIR, 0755);
		if (r < 0)
			return r;
		r = mkdir_p_at(s->dir_fd, STORE_SNAPSHOTS_DIR, 0755);
		if (r < 0)
			return r;
		if (secret) {
			r = store_crypt_new_config(secret, &crypt_lines, data_key);
			if (r < 0)
				return r;
		}
		/* the config last: its presence means "a complete store" */
		r = store_config_write(s->dir_fd, crypt_lines);
		if (r < 0)
			goto out;
		created = r > 0;
		r = store_config_check(s->dir_fd, &encrypted);
	}
	if (r >= 0 && encrypted) {
		r = store_crypt_load(s->dir_fd, &s->crypt);
		/* its creator knows the key: no second run of the KDF */
		if (r >= 0 && created)
			r = store_crypt_unlock_with_key(s->crypt, data_key, 0);
		else if (r >= 0 && secret)
			r = store_crypt_unlock(s->crypt, secret);
	}
out:
	if (secret)
		explicit_bzero(data_key, sizeof(data_key)); /* never optimised away */
	if (r < 0) {
		log_debug_errno(r, "'%s' is not a usable store: %m", path);
		return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

/*
 * Reads a whole regular file of at most @max_bytes. -EBADMSG if larger (a
 * damaged or foreign file), -ENOENT if missing.
 */
static int read_bounded_at(int dir_fd, const char *path, size_t max_bytes, uint8_t **ret,
			   size_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	size_t n;
	uint8_t extra;
	int r;

	fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	if (st.st_size < 0 || (uint64_t) st.st_size > max_bytes)
		return -EBADMSG;
	buf = malloc(MAX((size_t) st.st_size, (size_t) 1));
	if (!buf)
		return -ENOMEM;
	r = pread_full(fd, buf, (size_t) st.st_size, 0, &n);
	if (r < 0)
		return r;
	if (n != (size_t) st.st_size)
		return -EBADMSG; /* shrank under us */
	r = pread_full(fd, &extra, 1, n, &n);
	if (r < 0)
		return r;
	if (n != 0)
		return -EBADMSG; /* grew under us: files in a store never change */
	*ret_size = (size_t) st.st_size;
	*ret = TAKE_PTR(buf);
	return 0;
}

/* The pending (or being committed) entry of @id, or NULL. Call with pending_lock held. */
static struct pending_chunk *pending_find(struct store *s, const struct chunk_id *id)
{
	for (size_t i = 0; i < s->n_pending; i++)
		if (chunk_id_equal(&s->pending[i].id, id))
			return &s->pending[i];
	for (size_t i = 0; i < s->n_committing; i++)
		if (chunk_id_equal(&s->committing[i].id, id))
			return &s->committing[i];
	return NULL;
}

static bool is_pending(struct store *s, const struct chunk_id *id)
{
	bool found;

	pthread_mutex_lock(&s->pending_lock);
	found = pending_find(s, id);
	pthread_mutex_unlock(&s->pending_lock);
	return found;
}

int store_commit_chunks(struct store *s, bool durable)
{
	struct pending_chunk *batch;
	size_t n;
	int r = 0;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->commit_lock);
	if (s->commit_error < 0) {
		pthread_mutex_unlock(&s->commit_lock);
		return s->commit_error;
	}
	pthread_mutex_lock(&s->pending_lock);
	batch = s->committing = TAKE_PTR(s->pending);
	n = s->n_committing = s->n_pending;
	s->n_pending = 0;
	pthread_mutex_unlock(&s->pending_lock);

	/* the temporaries' data and their new fan-out directories */
	if (n > 0 && syncfs(s->dir_fd) < 0)
		r = -errno;
	for (size_t i = 0; i < n && r >= 0; i++) {
		char path[CHUNK_RELPATH_MAX];

		chunk_relpath(&batch[i].id, path);
		if (renameat2(s->dir_fd, batch[i].tmp, s->dir_fd, path, RENAME_NOREPLACE) < 0) {
			if (errno != EEXIST) /* EEXIST: an identical writer won the race */
				r = log_debug_errno(-errno, "cannot publish chunk '%s': %m", path);
			continue;
		}
		batch[i].tmp[0] = 0; /* renamed: nothing to remove */
	}
	/* from here on the names exist (or the put failed) */
	pthread_mutex_lock(&s->pending_lock);
	s->committing = NULL;
	s->n_committing = 0;
	pthread_mutex_unlock(&s->pending_lock);
	/* the renames, this batch's and every earlier one's (also other processes') */
	if (r >= 0 && durable && syncfs(s->dir_fd) < 0)
		r = -errno;
	pending_free(batch, n, s->dir_fd); /* left-over temporaries only */
	if (r < 0)
		s->commit_error = r; /* chunks reported stored are lost: no manifest may name them */
	pthread_mutex_unlock(&s->commit_lock);
	return r;
}

/* A chunk that is still pending is committed first, so lookups see it by name. */
static int commit_if_pending(struct store *s, const struct chunk_id *id)
{
	return is_pending(s, id) ? store_commit_chunks(s, false) : 0;
}

int store_has_chunk(struct store *s, const struct chunk_id *id)
{
	char path[CHUNK_RELPATH_MAX];

	if (!s || !id)
		return -EINVAL;
	if (chunk_id_is_zero(id, CHUNK_SIZE_BYTES))
		return 1;
	if (is_pending(s, id))
		return 1;
	chunk_relpath(id, path);
	if (faccessat(s->dir_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

int store_put_chunk(struct store *s, const struct chunk_id *id, const void *data, size_t size,
		    uint64_t *ret_stored_bytes)
{
	const struct crypt_keys *keys;
	_cleanup_free_ void *file = NULL;
	_cleanup_free_ char *tmp = NULL;
	char path[CHUNK_RELPATH_MAX];
	struct pending_chunk *p;
	struct stat st;
	size_t file_size, n;
	int r;

	if (!s || !id || !data || size == 0 || size > CHUNK_SIZE_BYTES)
		return -EINVAL;
	if (ret_stored_bytes)
		*ret_stored_bytes = 0;
	/* full-size all-zero chunks are implied, never written (docs/FORMAT.md) */
	if (size == CHUNK_SIZE_BYTES && chunk_id_is_zero(id, size)) {
		if (!memeqzero(data, size))
			return -EBADMSG; /* caller's ID does not match its data */
		return 0;
	}

	r = store_crypt_keys(s->crypt, &keys);
	if (r < 0)
		return r; /* locked */
	chunk_relpath(id, path);
	/* dedup hits: a published chunk, or one of this store's pending batch */
	if (fstatat(s->dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (ret_stored_bytes)
			*ret_stored_bytes = (uint64_t) st.st_size;
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	pthread_mutex_lock(&s->pending_lock);
	p = pending_find(s, id);
	if (p && ret_stored_bytes)
		*ret_stored_bytes = p->file_bytes;
	pthread_mutex_unlock(&s->pending_lock);
	if (p)
		return 0;

	r = chunk_encode_sealed(data, size, CHUNK_LEVEL_DEFAULT, keys, id, &file, &file_size);
	if (r < 0)
		return r;

	/* chunks/abcd/: created on first use (a racing creator is fine); the batch's syncfs() makes it durable */
	path[sizeof(STORE_CHUNKS_DIR) + 4] = 0;
	if (mkdirat(s->dir_fd, path, 0755) < 0 && errno != EEXIST)
		return -errno;
	path[sizeof(STORE_CHUNKS_DIR) + 4] = '/';

	/* O_DIRECT: chunk files are written once and not read back soon; copying
	 * them into the page cache was 12 % of a capture's CPU (bench/README.md) */
	r = write_file_tmp_at(s->dir_fd, path, file, file_size, WRITE_TMP_DIRECT, &tmp);
	if (r < 0)
		return r;

	pthread_mutex_lock(&s->pending_lock);
	/* another thread stored the same bytes meanwhile: one of us wrote them */
	p = pending_find(s, id);
	if (p || faccessat(s->dir_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		if (ret_stored_bytes)
			*ret_stored_bytes = p ? p->file_bytes : file_size;
		pthread_mutex_unlock(&s->pending_lock);
		(void) unlinkat(s->dir_fd, tmp, 0);
		return 0;
	}
	p = reallocarray(s->pending, s->n_pending + 1, sizeof(*p));
	if (p) {
		s->pending = p;
		s->pending[s->n_pending++] = (struct pending_chunk){
			.id = *id, .tmp = TAKE_PTR(tmp), .file_bytes = file_size,
		};
	}
	n = s->n_pending;
	pthread_mutex_unlock(&s->pending_lock);
	if (!p) {
		(void) unlinkat(s->dir_fd, tmp, 0);
		return -ENOMEM;
	}
	if (n >= STORE_BATCH_CHUNKS) {
		r = store_commit_chunks(s, false);
		if (r < 0)
			return r;
	}
	if (ret_stored_bytes)
		*ret_stored_bytes = file_size;
	return 1;
}

void store_prefetch_chunk(struct store *s, const struct chunk_id *id)
{
	char path[CHUNK_RELPATH_MAX];
	int fd;

	if (!s || !id || chunk_id_is_zero(id, CHUNK_SIZE_BYTES))
		return;
	chunk_relpath(id, path);
	fd = openat(s->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return; /* store_get_chunk() will say why */
	(void) posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
	close(fd);
}

/* The bytes of a chunk's file as stored (a pending chunk is committed first). */
static int read_chunk_file(struct store *s, const struct chunk_id *id, uint8_t **ret,
			   size_t *ret_size)
{
	char path[CHUNK_RELPATH_MAX];
	int r;

	r = commit_if_pending(s, id);
	if (r < 0)
		return r;
	chunk_relpath(id, path);
	/* + the AEAD tag of an encrypted store's chunk; the decoder checks the exact size */
	return read_bounded_at(s->dir_fd, path, CHUNK_FILE_BYTES_MAX + CRYPT_TAG_BYTES, ret,
			       ret_size);
}

int store_get_chunk(struct store *s, const struct chunk_id *id, void *buf, size_t size)
{
	_cleanup_free_ uint8_t *file = NULL;
	size_t file_size;
	int r;

	if (!s || !id || !buf || size == 0 || size > CHUNK_SIZE_BYTES)
		return -EINVAL;
	if (size == CHUNK_SIZE_BYTES && chunk_id_is_zero(id, size)) {
		memset(buf, 0, size);
		return 0;
	}
	r = read_chunk_file(s, id, &file, &file_size);
	if (r < 0)
		return r;
	return store_decode_chunk(s, id, file, file_size, buf, size);
}

int store_authenticate_chunk(struct store *s, const struct chunk_id *id, size_t size)
{
	_cleanup_free_ uint8_t *file = NULL;
	const struct crypt_keys *keys;
	size_t file_size;
	int r;

	if (!s || !id || size == 0 || size > CHUNK_SIZE_BYTES)
		return -EINVAL;
	if (!s->crypt)
		return -EOPNOTSUPP;
	if (size == CHUNK_SIZE_BYTES && chunk_id_is_zero(id, size))
		return 0;
	r = store_crypt_keys(s->crypt, &keys);
	if (r < 0)
		return r;
	r = read_chunk_file(s, id, &file, &file_size);
	if (r < 0)
		return r;
	return chunk_authenticate_sealed(file, file_size, keys, id, size);
}

int store_decode_chunk(struct store *s, const struct chunk_id *id, void *file, size_t file_size,
		       void *buf, size_t size)
{
	const struct crypt_keys *keys;
	int r;

	if (!s || !id || !file || !buf)
		return -EINVAL;
	r = store_crypt_keys(s->crypt, &keys);
	if (r < 0)
		return r;
	return chunk_decode_sealed(file, file_size, keys, id, buf, size);
}

int store_chunk_stored_bytes(struct store *s, const struct chunk_id *id, uint64_t *ret)
{
	char path[CHUNK_RELPATH_MAX];
	struct stat st;
	int r;

	if (!s || !id)
		return -EINVAL;
	if (chunk_id_is_zero(id, CHUNK_SIZE_BYTES)) {
		*ret = 0;
		return 0;
	}
	r = commit_if_pending(s, id);
	if (r < 0)
		return r;
	chunk_relpath(id, path);
	if (fstatat(s->dir_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*ret = (uint64_t) st.st_size;
	return 0;
}

int store_remove_chunk(struct store *s, const struct chunk_id *id)
{
	char path[CHUNK_RELPATH_MAX];
	int r;

	if (!s || !id)
		return -EINVAL;
	if (chunk_id_is_zero(id, CHUNK_SIZE_BYTES))
		return 0;
	r = commit_if_pending(s, id);
	if (r < 0)
		return r;
	chunk_relpath(id, path);
	if (unlinkat(s->dir_fd, path, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 1;
}

static const char *manifest_dir(enum manifest_kind kind)
{
	switch (kind) {
	case MANIFEST_KIND_IMAGE:
		return STORE_IMAGES_DIR;
	case MANIFEST_KIND_SNAPSHOT:
		return STORE_SNAPSHOTS_DIR;
	default:
		return NULL;
	}
}

static int manifest_relpath(enum manifest_kind kind, const char *name, char **ret)
{
	const char *dir = manifest_dir(kind);
	char *p;

	if (!dir || !manifest_name_is_valid(name))
		return -EINVAL;
	if (asprintf(&p, "%s/%s" MANIFEST_SUFFIX, dir, name) < 0)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int store_manifest_relpath(enum manifest_kind kind, const char *name, char **ret)
{
	return manifest_relpath(kind, name, ret);
}

int store_encode_manifest(struct store *s, const struct manifest *m, void **ret,
			  size_t *ret_size)
{
	_cleanup_free_ void *data = NULL;
	const struct crypt_keys *keys;
	size_t size;
	int r;

	if (!s || !m || !ret || !ret_size)
		return -EINVAL;
	r = store_crypt_keys(s->crypt, &keys);
	if (r < 0)
		return r;
	r = manifest_encode(m, &data, &size);
	if (r < 0)
		return r;
	if (keys) {
		_cleanup_free_ void *plain = TAKE_PTR(data);
		r = crypt_manifest_seal(keys, m->kind, m->name, plain, size, &data, &size);
		explicit_bzero(plain, size);
		if (r < 0)
			return r;
	}
	*ret_size = size;
	*ret = TAKE_PTR(data);
	return 0;
}

int store_decode_manifest(struct store *s, enum manifest_kind kind, const char *name,
			  const void *data, size_t size, struct manifest **ret)
{
	_cleanup_free_ void *plain = NULL;
	const struct crypt_keys *keys;
	struct manifest *m;
	size_t plain_size = 0;
	int r;

	if (!s || !name || !data || !ret)
		return -EINVAL;
	r = store_crypt_keys(s->crypt, &keys);
	if (r < 0)
		return r;
	if (keys) {
		/* never a plain manifest in an encrypted store: one could be planted */
		if (!crypt_manifest_is_sealed(data, size))
			return -EBADMSG;
		r = crypt_manifest_open(keys, kind, name, data, size, &plain, &plain_size);
		if (r < 0)
			return r;
		data = plain;
		size = plain_size;
	}
	r = manifest_decode(data, size, &m);
	if (plain)
		explicit_bzero(plain, plain_size);
	if (r < 0)
		return r;
	if (strcmp(m->name, name) != 0 || m->kind != kind) {
		/* a renamed or moved file: what is inside was checksummed, the path was not */
		manifest_free(m);
		return -EBADMSG;
	}
	*ret = m;
	return 0;
}

int store_put_manifest(struct store *s, const struct manifest *m)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ void *data = NULL;
	size_t size;
	int r;

	if (!s || !m)
		return -EINVAL;
	r = manifest_relpath(m->kind, m->name, &path);
	if (r < 0)
		return r;
	r = store_encode_manifest(s, m, &data, &size);
	if (r < 0)
		return r;
	r = mkdir_p_at(s->dir_fd, manifest_dir(m->kind), 0755); /* stores made before snapshots */
	if (r < 0)
		return r;
	/* every chunk it names durable and named first, also those of dedup hits */
	r = store_commit_chunks(s, true);
	if (r < 0)
		return r;
	return write_file_atomic_noreplace(s->dir_fd, path, data, size);
}

int store_get_manifest_of_kind(struct store *s, enum manifest_kind kind, const char *name,
			       struct manifest **ret)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;
	int r;

	if (!s || !name || !ret)
		return -EINVAL;
	r = manifest_relpath(kind, name, &path);
	if (r < 0)
		return r;
	r = read_bounded_at(s->dir_fd, path, MANIFEST_BYTES_MAX, &data, &size);
	if (r < 0)
		return r;
	return store_decode_manifest(s, kind, name, data, size, ret);
}

int store_remove_manifest(struct store *s, enum manifest_kind kind, const char *name)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (!s || !name)
		return -EINVAL;
	r = manifest_relpath(kind, name, &path);
	if (r < 0)
		return r;
	if (unlinkat(s->dir_fd, path, 0) < 0)
		return -errno;
	return fsync_parent_at(s->dir_fd, path);
}

int store_get_manifest(struct store *s, const char *name, struct manifest **ret)
{
	return store_get_manifest_of_kind(s, MANIFEST_KIND_IMAGE, name, ret);
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

int store_list_manifests(struct store *s, char ***ret)
{
	return store_list_manifests_of_kind(s, MANIFEST_KIND_IMAGE, ret);
}

int store_list_manifests_of_kind(struct store *s, enum manifest_kind kind, char ***ret)
{
	const char *dir = manifest_dir(kind);
	_cleanup_strv_free_ char **names = NULL;
	_cleanup_close_ int fd = -EBADF;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (!s || !dir || !ret)
		return -EINVAL;
	names = calloc(1, sizeof(char *));
	if (!names)
		return -ENOMEM;
	fd = openat(s->dir_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		*ret = TAKE_PTR(names);
		return 0;
	}
	d = fdopendir(fd);
	if (!d)
		return -errno;
	TAKE_FD(fd);

	for (;;) {
		size_t len;
		char *name;

		errno = 0;
		de = readdir(d);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		/* "<name>.manifest" only; temporaries are "<name>.manifest.tmp.<hex>" */
		len = strlen(de->d_name);
		if (len <= strlen(MANIFEST_SUFFIX) ||
		    strcmp(de->d_name + len - strlen(MANIFEST_SUFFIX), MANIFEST_SUFFIX) != 0)
			continue;
		name = strndup(de->d_name, len - strlen(MANIFEST_SUFFIX));
		if (!name) {
			r = -ENOMEM;
			break;
		}
		if (!manifest_name_is_valid(name)) {
			free(name);
			continue;
		}
		if (n + 2 > cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(names, ncap * sizeof(char *));
			if (!nn) {
				free(name);
				r = -ENOMEM;
				break;
			}
			names = nn, cap = ncap;
		}
		names[n++] = name;
		names[n] = NULL;
	}
	closedir(d);
	if (r < 0)
		return r;
	qsort(names, n, sizeof(char *), cmp_strp);
	*ret = TAKE_PTR(names);
	return 0;
}

void store_chunk_id(const struct store *s, const void *data, size_t size, struct chunk_id *ret)
{
	/* a locked store names nothing it could store: store_put_chunk() says -ENOKEY */
	if (s->crypt && s->crypt->unlocked)
		crypt_chunk_id(&s->crypt->keys, data, size, ret);
	else
		chunk_id_compute(data, size, ret);
}
