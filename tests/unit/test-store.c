/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "unit.h"
#include "imager/chunk.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "util/cleanup.h"

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (i % 8 == 0) ? (uint8_t) x : (uint8_t) (i / 8); /* compressible, unique per seed */
	}
}

/* number of directory entries (files) below @dir, recursively, matching @infix if set */
static unsigned count_files(const char *dir, const char *infix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char *p;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		p = join(dir, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			n += count_files(p, infix);
		else if (!infix || strstr(de->d_name, infix))
			n++;
		free(p);
	}
	closedir(d);
	return n;
}

static char *chunk_file(const char *store, const struct chunk_id *id)
{
	char hex[CHUNK_ID_STRING_MAX], *p;

	chunk_id_to_string(id, hex);
	if (asprintf(&p, "%s/chunks/%.4s/%s.chunk", store, hex, hex) < 0)
		abort();
	return p;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
}

TEST(store_open_create_and_config)
{
	char *dir = make_tmpdir(), *path = join(dir, "a/b/store"), *cfg = join(path, "config");
	struct store *s = NULL;
	char buf[512] = {};
	FILE *f;

	ASSERT_ERR(store_open(path, false, &s), -ENOENT);
	ASSERT_TRUE(s == NULL);
	ASSERT_OK(store_open(path, true, &s));
	ASSERT_STREQ(store_path(s), path);
	store_free(s);
	s = NULL;
	f = fopen(cfg, "re");
	ASSERT_TRUE(f);
	ASSERT_TRUE(fread(buf, 1, sizeof(buf) - 1, f) > 0);
	fclose(f);
	ASSERT_TRUE(strstr(buf, "\nformat=1\n"));
	ASSERT_TRUE(strstr(buf, "\nencryption=none\n"));
	ASSERT_TRUE(strstr(buf, "\ncreated="));
	/* reopen, with and without create */
	ASSERT_OK(store_open(path, false, &s));
	store_free(s);
	ASSERT_OK(store_open(path, true, &s));
	store_free(s);

	/* a newer store format, or an encryption we lack: refused */
	unlink(cfg);
	write_text(cfg, "format=2\n");
	ASSERT_ERR(store_open(path, false, &s), -EPROTONOSUPPORT);
	unlink(cfg);
	write_text(cfg, "format=1\nencryption=xchacha20-poly1305\n");
	ASSERT_ERR(store_open(path, false, &s), -EPROTONOSUPPORT);
	unlink(cfg);
	/* a known cipher without its key lines (test-crypt.c tests complete ones) */
	write_text(cfg, "format=1\nencryption=aes-256-gcm\n");
	ASSERT_ERR(store_open(path, false, &s), -EBADMSG);
	unlink(cfg);
	write_text(cfg, "garbage\n");
	ASSERT_ERR(store_open(path, false, &s), -EBADMSG);
	free(cfg);
	free(path);

	/* a non-empty directory that is not a store is never adopted */
	path = join(dir, "other");
	mkdir(path, 0755);
	cfg = join(path, "precious");
	write_text(cfg, "x");
	ASSERT_ERR(store_open(path, true, &s), -ENOTEMPTY);
	ASSERT_ERR(store_open(path, false, &s), -ENOENT);
	free(cfg);
	free(path);
	rm_rf(dir);
}

TEST(store_chunk_roundtrip_and_dedup)
{
	char *dir = make_tmpdir();
	size_t size = CHUNK_SIZE_BYTES;
	uint8_t *in = malloc(size), *out = malloc(size);
	struct store *s;
	struct chunk_id id;
	uint64_t stored = 0, stored2 = 0;
	struct stat st;
	char *file;

	ASSERT_OK(store_open(dir, true, &s));
	fill(in, size, 1);
	chunk_id_compute(in, size, &id);
	ASSERT_EQ_I64(store_has_chunk(s, &id), 0);
	ASSERT_ERR(store_get_chunk(s, &id, out, size), -ENOENT);
	ASSERT_EQ_I64(store_put_chunk(s, &id, in, size, &stored), 1);
	ASSERT_TRUE(stored > CHUNK_FILE_HEADER_BYTES && stored < size);
	ASSERT_EQ_I64(store_has_chunk(s, &id), 1);
	/* second put, while the first is pending: a no-op that writes nothing */
	ASSERT_EQ_I64(store_put_chunk(s, &id, in, size, &stored2), 0);
	ASSERT_EQ_U64(stored2, stored);
	/* pending: written to its temporary, not yet named */
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 1);
	ASSERT_OK(store_commit_chunks(s, true));
	ASSERT_EQ_U64(count_files(dir, ".chunk"), 1);
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 0);
	/* and once it is named */
	stored2 = 0;
	ASSERT_EQ_I64(store_put_chunk(s, &id, in, size, &stored2), 0);
	ASSERT_EQ_U64(stored2, stored);
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 0);
	file = chunk_file(dir, &id);
	ASSERT_OK(stat(file, &st));
	ASSERT_EQ_U64(st.st_size, stored);
	ASSERT_OK(store_chunk_stored_bytes(s, &id, &stored2));
	ASSERT_EQ_U64(stored2, stored);

	memset(out, 0, size);
	ASSERT_OK(store_get_chunk(s, &id, out, size));
	ASSERT_MEMEQ(in, out, size);
	/* asking for the wrong size is a mismatch, not a partial read */
	ASSERT_ERR(store_get_chunk(s, &id, out, size - 1), -EBADMSG);
	free(file);
	store_free(s);
	free(in);
	free(out);
	rm_rf(dir);
}

static void corrupt(const char *path, long at, int delta)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	if (fd < 0 || pread(fd, &b, 1, at) != 1)
		abort();
	b = (uint8_t) (b + delta);
	if (pwrite(fd, &b, 1, at) != 1)
		abort();
	close(fd);
}

TEST(store_get_detects_flips_and_truncation)
{
	char *dir = make_tmpdir();
	size_t size = 65536;
	uint8_t *in = malloc(size), *out = malloc(size);
	struct store *s;
	struct chunk_id id;
	struct stat st;
	char *file;

	ASSERT_OK(store_open(dir, true, &s));
	fill(in, size, 2);
	chunk_id_compute(in, size, &id);
	ASSERT_EQ_I64(store_put_chunk(s, &id, in, size, NULL), 1);
	ASSERT_OK(store_commit_chunks(s, false));
	file = chunk_file(dir, &id);
	ASSERT_OK(stat(file, &st));

	/* header field, first payload byte, middle, last byte */
	long at[] = { 0, 20, 24, 28, CHUNK_FILE_HEADER_BYTES, st.st_size / 2, st.st_size - 1 };
	for (size_t i = 0; i < ELEMENTSOF(at); i++) {
		corrupt(file, at[i], 1);
		if (store_get_chunk(s, &id, out, size) != -EBADMSG)
			UNIT_FAIL("flip at %ld not detected", at[i]);
		corrupt(file, at[i], -1);
		ASSERT_OK(store_get_chunk(s, &id, out, size));
	}
	ASSERT_MEMEQ(in, out, size);

	ASSERT_OK(truncate(file, st.st_size - 1));
	ASSERT_ERR(store_get_chunk(s, &id, out, size), -EBADMSG);
	ASSERT_OK(truncate(file, 10));
	ASSERT_ERR(store_get_chunk(s, &id, out, size), -EBADMSG);
	ASSERT_OK(truncate(file, 0));
	ASSERT_ERR(store_get_chunk(s, &id, out, size), -EBADMSG);
	/* an oversized file is refused before it is read */
	ASSERT_OK(truncate(file, (off_t) CHUNK_FILE_BYTES_MAX + 1));
	ASSERT_ERR(store_get_chunk(s, &id, out, size), -EBADMSG);
	free(file);
	store_free(s);
	free(in);
	free(out);
	rm_rf(dir);
}

TEST(store_zero_chunk_not_stored)
{
	char *dir = make_tmpdir();
	uint8_t *zero = calloc(1, CHUNK_SIZE_BYTES), *out = malloc(CHUNK_SIZE_BYTES);
	struct store *s;
	struct chunk_id id;
	uint64_t n = 99;

	ASSERT_OK(store_open(dir, true, &s));
	chunk_id_compute(zero, CHUNK_SIZE_BYTES, &id);
	ASSERT_EQ_I64(store_put_chunk(s, &id, zero, CHUNK_SIZE_BYTES, NULL), 0);
	ASSERT_EQ_U64(count_files(dir, ".chunk"), 0);
	ASSERT_EQ_I64(store_has_chunk(s, &id), 1);
	memset(out, 0xee, CHUNK_SIZE_BYTES);
	ASSERT_OK(store_get_chunk(s, &id, out, CHUNK_SIZE_BYTES));
	ASSERT_TRUE(memeqzero(out, CHUNK_SIZE_BYTES));
	ASSERT_OK(store_chunk_stored_bytes(s, &id, &n));
	ASSERT_EQ_U64(n, 0);
	/* a zero ID with non-zero data is refused */
	zero[5] = 1;
	ASSERT_ERR(store_put_chunk(s, &id, zero, CHUNK_SIZE_BYTES, NULL), -EBADMSG);
	/* a short all-zero chunk (a disk's tail) is stored like any other */
	zero[5] = 0;
	chunk_id_compute(zero, 4096, &id);
	ASSERT_EQ_I64(store_put_chunk(s, &id, zero, 4096, NULL), 1);
	ASSERT_OK(store_get_chunk(s, &id, out, 4096));
	ASSERT_TRUE(memeqzero(out, 4096));
	store_free(s);
	free(zero);
	free(out);
	rm_rf(dir);
}

TEST(store_temp_files_are_not_chunks)
{
	char *dir = make_tmpdir(), *file, *tmp;
	size_t size = 4096;
	uint8_t *in = malloc(size), *out = malloc(size);
	struct store *s;
	struct chunk_id id;

	ASSERT_OK(store_open(dir, true, &s));
	fill(in, size, 3);
	chunk_id_compute(in, size, &id);
	/* what a process killed mid-write leaves behind */
	file = chunk_file(dir, &id);
	if (asprintf(&tmp, "%s.tmp.0123456789abcdef", file) < 0)
		abort();
	{
		char *sub = strndup(file, strlen(file) - strlen("/") - 2 * CHUNK_ID_BYTES - strlen(".chunk"));
		ASSERT_OK(mkdir(sub, 0755));
		free(sub);
	}
	write_text(tmp, "half a chunk");
	ASSERT_EQ_I64(store_has_chunk(s, &id), 0);
	ASSERT_EQ_I64(store_put_chunk(s, &id, in, size, NULL), 1);
	ASSERT_OK(store_get_chunk(s, &id, out, size));
	ASSERT_MEMEQ(in, out, size);
	free(tmp);
	free(file);
	store_free(s);
	free(in);
	free(out);
	rm_rf(dir);
}

#define N_SHARED 48
struct put_arg {
	struct store *s;
	uint8_t **data;
	struct chunk_id *ids;
	int written, failures;
	unsigned order;
};

static void *put_thread(void *p)
{
	struct put_arg *a = p;

	for (unsigned k = 0; k < N_SHARED; k++) {
		unsigned i = a->order ? N_SHARED - 1 - k : k;
		int r = store_put_chunk(a->s, &a->ids[i], a->data[i], 256 * 1024, NULL);

		if (r < 0)
			a->failures++;
		else
			a->written += r;
	}
	return NULL;
}

TEST(store_two_threads_same_chunks)
{
	char *dir = make_tmpdir();
	uint8_t *data[N_SHARED], *out = malloc(256 * 1024);
	struct chunk_id ids[N_SHARED];
	struct put_arg a[2];
	pthread_t t[2];
	struct store *s;

	ASSERT_OK(store_open(dir, true, &s));
	for (unsigned i = 0; i < N_SHARED; i++) {
		data[i] = malloc(256 * 1024);
		fill(data[i], 256 * 1024, 100 + i);
		chunk_id_compute(data[i], 256 * 1024, &ids[i]);
	}
	/* one thread forwards, one backwards, then both the same way again */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 2; i++) {
			a[i] = (struct put_arg){ s, data, ids, 0, 0, round == 0 ? (unsigned) i : 0 };
			ASSERT_EQ_I64(pthread_create(&t[i], NULL, put_thread, &a[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		ASSERT_EQ_I64(a[0].failures + a[1].failures, 0);
		/* each chunk written exactly once over both threads (and rounds) */
		ASSERT_EQ_I64(a[0].written + a[1].written, round == 0 ? N_SHARED : 0);
	}
	ASSERT_OK(store_commit_chunks(s, false));
	ASSERT_EQ_U64(count_files(dir, ".chunk"), N_SHARED);
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 0);
	for (unsigned i = 0; i < N_SHARED; i++) {
		ASSERT_OK(store_get_chunk(s, &ids[i], out, 256 * 1024));
		ASSERT_MEMEQ(data[i], out, 256 * 1024);
		free(data[i]);
	}
	store_free(s);
	free(out);
	rm_rf(dir);
}

/* a one-disk manifest with one extent and one chunk */
static struct manifest *small_manifest(const char *name)
{
	struct manifest *m = calloc(1, sizeof(*m));
	struct manifest_disk *d;

	m->name = strdup(name);
	m->tool_version = strdup("test");
	m->created_unix = 1700000000;
	m->n_disks = 1;
	m->disks = d = calloc(1, sizeof(*d));
	d->size_bytes = 64 << 20;
	d->logical_sector_bytes = d->physical_sector_bytes = 512;
	d->label = strdup("none");
	d->n_extents = 1;
	d->extents = calloc(1, sizeof(*d->extents));
	d->extents[0] = (struct manifest_extent){ 4096, 8192 };
	d->used_bytes = 8192;
	d->n_chunks = 1;
	d->chunks = calloc(1, sizeof(*d->chunks));
	d->chunks[0].offset_bytes = 0;
	d->chunks[0].size_bytes = CHUNK_SIZE_BYTES;
	chunk_id_compute(name, strlen(name), &d->chunks[0].id);
	manifest_compute_digest(m, m->content_digest);
	return m;
}

/*
 * Chunks are published in batches: pending ones are temporaries only (no
 * name another process could trust), a full batch commits by itself, a
 * manifest commits the rest first, and a handle freed without committing
 * leaves nothing behind.
 */
TEST(store_chunks_commit_in_batches)
{
	char *dir = make_tmpdir();
	size_t size = 8192;
	uint8_t *in = malloc(size), *out = malloc(size);
	struct chunk_id ids[STORE_BATCH_CHUNKS + 3];
	struct manifest *m = small_manifest("batch");
	struct store *s;

	ASSERT_OK(store_open(dir, true, &s));
	for (unsigned i = 0; i < STORE_BATCH_CHUNKS - 1; i++) {
		fill(in, size, 100 + i);
		chunk_id_compute(in, size, &ids[i]);
		ASSERT_EQ_I64(store_put_chunk(s, &ids[i], in, size, NULL), 1);
	}
	ASSERT_EQ_U64(count_files(dir, ".chunk.tmp."), STORE_BATCH_CHUNKS - 1);
	ASSERT_EQ_U64(count_files(dir, ".chunk"), STORE_BATCH_CHUNKS - 1); /* the temporaries */
	/* this handle sees a pending chunk */
	ASSERT_EQ_I64(store_has_chunk(s, &ids[5]), 1);
	/* the batch's last chunk commits it: every one named, no temporary left */
	fill(in, size, 100 + STORE_BATCH_CHUNKS - 1);
	chunk_id_compute(in, size, &ids[STORE_BATCH_CHUNKS - 1]);
	ASSERT_EQ_I64(store_put_chunk(s, &ids[STORE_BATCH_CHUNKS - 1], in, size, NULL), 1);
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 0);
	ASSERT_EQ_U64(count_files(dir, ".chunk"), STORE_BATCH_CHUNKS);

	/* two more pending, then a manifest: they are named before it is published */
	for (unsigned i = STORE_BATCH_CHUNKS; i < STORE_BATCH_CHUNKS + 2; i++) {
		fill(in, size, 100 + i);
		chunk_id_compute(in, size, &ids[i]);
		ASSERT_EQ_I64(store_put_chunk(s, &ids[i], in, size, NULL), 1);
	}
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 2);
	ASSERT_OK(store_put_manifest(s, m));
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 0);
	ASSERT_EQ_U64(count_files(dir, ".chunk"), STORE_BATCH_CHUNKS + 2);

	/* a pending chunk is readable through the handle (it commits on demand) */
	fill(in, size, 7);
	chunk_id_compute(in, size, &ids[STORE_BATCH_CHUNKS + 2]);
	ASSERT_EQ_I64(store_put_chunk(s, &ids[STORE_BATCH_CHUNKS + 2], in, size, NULL), 1);
	ASSERT_OK(store_get_chunk(s, &ids[STORE_BATCH_CHUNKS + 2], out, size));
	ASSERT_MEMEQ(in, out, size);

	/* freed with a pending chunk (a capture that failed): nothing is left of it */
	fill(in, size, 8);
	chunk_id_compute(in, size, &ids[0]);
	ASSERT_EQ_I64(store_put_chunk(s, &ids[0], in, size, NULL), 1);
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 1);
	store_free(s);
	ASSERT_EQ_U64(count_files(dir, ".tmp."), 0);
	ASSERT_EQ_U64(count_files(dir, ".chunk"), STORE_BATCH_CHUNKS + 3);
	ASSERT_OK(store_open(dir, false, &s));
	ASSERT_EQ_I64(store_has_chunk(s, &ids[0]), 0);
	store_free(s);
	manifest_free(m);
	free(in);
	free(out);
	rm_rf(dir);
}

TEST(store_manifests_publish_get_list)
{
	char *dir = make_tmpdir(), *p, *q;
	struct manifest *m = small_manifest("web-2"), *m2 = small_manifest("db"), *back;
	char **names;
	struct store *s;

	ASSERT_OK(store_open(dir, true, &s));
	ASSERT_OK(store_list_manifests(s, &names));
	ASSERT_TRUE(names && names[0] == NULL);
	strv_free(names);

	ASSERT_ERR(store_get_manifest(s, "web-2", &back), -ENOENT);
	ASSERT_OK(store_put_manifest(s, m));
	ASSERT_ERR(store_put_manifest(s, m), -EEXIST);
	ASSERT_OK(store_put_manifest(s, m2));
	ASSERT_OK(store_get_manifest(s, "web-2", &back));
	ASSERT_STREQ(back->name, "web-2");
	ASSERT_EQ_I64(back->created_unix, 1700000000);
	ASSERT_MEMEQ(back->content_digest, m->content_digest, 32);
	ASSERT_MEMEQ(back->disks[0].chunks[0].id.bytes, m->disks[0].chunks[0].id.bytes, 32);
	manifest_free(back);
	ASSERT_ERR(store_get_manifest(s, "Bad_Name", &back), -EINVAL);
	ASSERT_ERR(store_get_manifest(s, "../config", &back), -EINVAL);

	/* leftovers and junk in images/ are not images */
	p = join(dir, "images/zz.manifest.tmp.0011223344556677");
	write_text(p, "partial");
	free(p);
	p = join(dir, "images/README");
	write_text(p, "x");
	free(p);
	p = join(dir, "images/Upper.manifest");
	write_text(p, "x");
	free(p);
	ASSERT_OK(store_list_manifests(s, &names));
	ASSERT_STREQ(names[0], "db");
	ASSERT_STREQ(names[1], "web-2");
	ASSERT_TRUE(names[2] == NULL);
	strv_free(names);

	/* a manifest renamed on disk does not pass as another image */
	p = join(dir, "images/db.manifest");
	q = join(dir, "images/copy.manifest");
	ASSERT_OK(link(p, q));
	ASSERT_ERR(store_get_manifest(s, "copy", &back), -EBADMSG);
	/* a damaged one is reported as such */
	corrupt(p, 40, 1);
	ASSERT_ERR(store_get_manifest(s, "db", &back), -EBADMSG);
	free(p);
	free(q);

	/* snapshots: their own directory and listing; a name may be both */
	m2->kind = MANIFEST_KIND_SNAPSHOT;
	free(m2->name);
	m2->name = strdup("web-2");
	manifest_compute_digest(m2, m2->content_digest);
	ASSERT_OK(store_put_manifest(s, m2));
	ASSERT_ERR(store_put_manifest(s, m2), -EEXIST);
	p = join(dir, "snapshots/web-2.manifest");
	ASSERT_OK(access(p, F_OK));
	free(p);
	ASSERT_OK(store_list_manifests_of_kind(s, MANIFEST_KIND_SNAPSHOT, &names));
	ASSERT_STREQ(names[0], "web-2");
	ASSERT_TRUE(names[1] == NULL);
	strv_free(names);
	ASSERT_OK(store_get_manifest_of_kind(s, MANIFEST_KIND_SNAPSHOT, "web-2", &back));
	ASSERT_EQ_U64(back->kind, MANIFEST_KIND_SNAPSHOT);
	ASSERT_MEMEQ(back->content_digest, m2->content_digest, 32);
	manifest_free(back);
	ASSERT_OK(store_get_manifest(s, "web-2", &back)); /* the image of that name */
	ASSERT_EQ_U64(back->kind, MANIFEST_KIND_IMAGE);
	ASSERT_MEMEQ(back->content_digest, m->content_digest, 32);
	manifest_free(back);
	/* a snapshot moved into images/ is not an image */
	free(m2->name);
	m2->name = strdup("snap-only");
	ASSERT_OK(store_put_manifest(s, m2));
	p = join(dir, "snapshots/snap-only.manifest");
	q = join(dir, "images/snap-only.manifest");
	ASSERT_OK(rename(p, q));
	ASSERT_ERR(store_get_manifest(s, "snap-only", &back), -EBADMSG);
	ASSERT_ERR(store_get_manifest_of_kind(s, MANIFEST_KIND_SNAPSHOT, "snap-only", &back),
		   -ENOENT);
	free(p);
	free(q);

	/* removal: only the manifest of that kind */
	ASSERT_OK(store_remove_manifest(s, MANIFEST_KIND_SNAPSHOT, "web-2"));
	ASSERT_ERR(store_remove_manifest(s, MANIFEST_KIND_SNAPSHOT, "web-2"), -ENOENT);
	ASSERT_ERR(store_get_manifest_of_kind(s, MANIFEST_KIND_SNAPSHOT, "web-2", &back), -ENOENT);
	ASSERT_OK(store_get_manifest(s, "web-2", &back));
	manifest_free(back);
	ASSERT_ERR(store_remove_manifest(s, MANIFEST_KIND_IMAGE, "../config"), -EINVAL);

	/* an invalid name is refused before anything is written */
	free(m->name);
	m->name = strdup("-bad");
	ASSERT_ERR(store_put_manifest(s, m), -EINVAL);
	manifest_free(m);
	manifest_free(m2);
	store_free(s);
	rm_rf(dir);
}
