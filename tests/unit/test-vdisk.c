/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Virtual disks without FUSE and without qemu-img: a qcow2 built here byte by
 * byte (so that every header field and table entry can be made to lie), the
 * format detection, and the tar import into a scratch store.
 */
#include <archive.h>
#include <archive_entry.h>
#include <endian.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "unit.h"
#include "imager/chunk.h"
#include "imager/store.h"
#include "imager/vdisk.h"
#include "util/cleanup.h"
#include "util/io.h"

#define CL 65536u /* cluster size of the synthetic qcow2 */
#define DISK_BYTES (UINT64_C(1) << 20)
#define ZOFF (4 * CL + 100) /* compressed data: deliberately not sector-aligned */

struct q {
	uint8_t *file;
	size_t n;
};

static void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static void pattern(uint8_t *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t) (i * 31 + seed + (i >> 9));
}

/*
 * A valid qcow2 v3: 64 KiB clusters, 1 MiB disk. Cluster 0: header;
 * 1: L1 (one entry); 2: L2; 3: data of guest cluster 0 (pattern 1);
 * guest cluster 1: zero flag; guest cluster 2: compressed (pattern 2) at ZOFF;
 * the rest unallocated.
 */
static struct q make_qcow2(void)
{
	struct q q = { .n = 5 * CL };
	uint8_t plain[CL], z[2 * CL];
	uLongf zn = sizeof(z);
	z_stream s = {};
	uint64_t sectors;

	q.file = calloc(1, q.n);
	memcpy(q.file, "QFI\xfb", 4);
	put32(q.file + 4, 3);             /* version */
	put32(q.file + 20, 16);           /* cluster_bits */
	put64(q.file + 24, DISK_BYTES);   /* size */
	put32(q.file + 36, 1);            /* l1_size */
	put64(q.file + 40, 1 * CL);       /* l1_table_offset */
	put32(q.file + 96, 4);            /* refcount_order */
	put32(q.file + 100, 104);         /* header_length */
	put64(q.file + 1 * CL, (UINT64_C(1) << 63) | (2 * CL));
	put64(q.file + 2 * CL + 0, (UINT64_C(1) << 63) | (3 * CL));
	put64(q.file + 2 * CL + 8, 1);    /* zero cluster */
	pattern(q.file + 3 * CL, CL, 1);

	pattern(plain, CL, 2);
	ASSERT_TRUE(deflateInit2(&s, 6, Z_DEFLATED, -12, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	s.next_in = plain, s.avail_in = CL, s.next_out = z, s.avail_out = sizeof(z);
	ASSERT_TRUE(deflate(&s, Z_FINISH) == Z_STREAM_END);
	zn = s.total_out;
	deflateEnd(&s);
	ASSERT_TRUE(ZOFF + zn <= q.n);
	memcpy(q.file + ZOFF, z, zn);
	sectors = (zn + (ZOFF % 512) + 511) / 512;
	put64(q.file + 2 * CL + 16, (UINT64_C(1) << 62) | ((sectors - 1) << 54) | ZOFF);
	return q;
}

static char *write_tmp(const struct q *q)
{
	const char *base = getenv("TMPDIR");
	char *p;
	int fd;

	if (asprintf(&p, "%s/test-vdisk.XXXXXX", base && *base ? base : "/tmp") < 0)
		abort();
	fd = mkstemp(p);
	if (fd < 0 || pwrite_all(fd, q->file, q->n, 0) < 0)
		abort();
	close(fd);
	return p;
}

/* Opens @q as a qcow2; returns the error (0 if it opened) and the reason. */
static int try_open(const struct q *q, const char *backing, char **ret_reason)
{
	_cleanup_free_ char *path = write_tmp(q);
	struct vdisk *v = NULL;
	int r = vdisk_open(path, backing, &v, ret_reason);

	unlink(path);
	vdisk_free(v);
	return r;
}

/* Builds the good qcow2, lets @mutate break it, expects @err and @needle in the reason. */
#define EXPECT_REFUSED(err, needle, ...)                                                           \
	do {                                                                                       \
		struct q _q = make_qcow2();                                                        \
		_cleanup_free_ char *_why = NULL;                                                  \
		__VA_ARGS__;                                                                       \
		ASSERT_ERR(try_open(&_q, NULL, &_why), err);                                       \
		if (!_why || !strstr(_why, needle))                                                \
			UNIT_FAIL("reason '%s' lacks '%s'", _why ? _why : "(none)", needle);        \
		free(_q.file);                                                                     \
	} while (0)

TEST(qcow2_reads_data_zero_compressed_and_unallocated)
{
	struct q q = make_qcow2();
	_cleanup_free_ char *path = write_tmp(&q), *why = NULL;
	_cleanup_free_ uint8_t *buf = malloc(DISK_BYTES), *expect = calloc(1, DISK_BYTES);
	struct vdisk *v = NULL;

	ASSERT_OK(vdisk_open(path, NULL, &v, &why));
	ASSERT_EQ_U64(v->format, VDISK_QCOW2);
	ASSERT_EQ_U64(v->size_bytes, DISK_BYTES);
	pattern(expect, CL, 1);
	pattern(expect + 2 * CL, CL, 2);
	ASSERT_OK(vdisk_pread(v, buf, DISK_BYTES, 0));
	ASSERT_MEMEQ(buf, expect, DISK_BYTES);
	/* unaligned, across the data/zero/compressed clusters */
	ASSERT_OK(vdisk_pread(v, buf, 2 * CL + 7, CL - 3));
	ASSERT_MEMEQ(buf, expect + CL - 3, 2 * CL + 7);
	/* outside the disk */
	ASSERT_ERR(vdisk_pread(v, buf, 2, DISK_BYTES - 1), -EINVAL);
	ASSERT_TRUE(vdisk_error(v, NULL) == NULL);
	vdisk_free(v);
	unlink(path);
	free(q.file);
}

TEST(qcow2_v2_reads_the_same)
{
	struct q q = make_qcow2();
	_cleanup_free_ char *path = NULL, *why = NULL;
	uint8_t buf[CL], expect[CL];
	struct vdisk *v = NULL;

	put32(q.file + 4, 2);
	memset(q.file + 72, 0, 32); /* no v3 fields; the zero flag is ignored in v2 */
	put64(q.file + 2 * CL + 8, 0);
	path = write_tmp(&q);
	ASSERT_OK(vdisk_open(path, NULL, &v, &why));
	pattern(expect, CL, 2);
	ASSERT_OK(vdisk_pread(v, buf, CL, 2 * CL));
	ASSERT_MEMEQ(buf, expect, CL);
	vdisk_free(v);
	unlink(path);
	free(q.file);
}

/*
 * Extended L2 entries (qemu-img create -o extended_l2=on): qemu writes only
 * the subclusters it allocates, so the file may end inside its last data
 * cluster (found by tests/fuzz/make-corpus.py: qemu-io "write 0 4k" on a
 * fresh image, which qemu-img check calls clean).
 */
TEST(qcow2_extended_l2_last_cluster_cut_short)
{
	const uint64_t sub = CL / 32;
	struct q q = { .n = 3 * CL + 2 * sub };
	_cleanup_free_ char *path = NULL, *why = NULL, *why2 = NULL;
	_cleanup_free_ uint8_t *buf = malloc(CL), *expect = calloc(1, CL);
	struct vdisk *v = NULL;

	q.file = calloc(1, q.n);
	memcpy(q.file, "QFI\xfb", 4);
	put32(q.file + 4, 3);
	put32(q.file + 20, 16);
	put64(q.file + 24, DISK_BYTES);
	put32(q.file + 36, 1);
	put64(q.file + 40, 1 * CL);
	put64(q.file + 72, UINT64_C(1) << 4); /* incompatible: extended L2 */
	put32(q.file + 96, 4);
	put32(q.file + 100, 104);
	put64(q.file + 1 * CL, (UINT64_C(1) << 63) | (2 * CL));
	/* guest cluster 0: subclusters 0 and 1 allocated (all the file holds), 5 zero */
	put64(q.file + 2 * CL, (UINT64_C(1) << 63) | (3 * CL));
	put64(q.file + 2 * CL + 8, 0x3 | (UINT64_C(1) << (32 + 5)));
	pattern(q.file + 3 * CL, 2 * sub, 7);
	pattern(expect, 2 * sub, 7);

	path = write_tmp(&q);
	ASSERT_OK(vdisk_open(path, NULL, &v, &why));
	ASSERT_OK(vdisk_pread(v, buf, CL, 0));
	ASSERT_MEMEQ(buf, expect, CL);
	vdisk_free(v);
	unlink(path);

	/* subcluster 2 allocated too: it would lie past the end of the file */
	put64(q.file + 2 * CL + 8, 0x7);
	ASSERT_ERR(try_open(&q, NULL, &why2), -EBADMSG);
	ASSERT_TRUE(why2 && strstr(why2, "past the end of the file"));
	free(q.file);
}

TEST(qcow2_header_lies)
{
	EXPECT_REFUSED(-EBADMSG, "cluster size", put32(_q.file + 20, 30));
	EXPECT_REFUSED(-EBADMSG, "cluster size", put32(_q.file + 20, 8));
	EXPECT_REFUSED(-EOPNOTSUPP, "version 4", put32(_q.file + 4, 4));
	EXPECT_REFUSED(-EBADMSG, "absurd", put64(_q.file + 24, UINT64_C(1) << 60));
	EXPECT_REFUSED(-EFBIG, "larger than", put64(_q.file + 24, UINT64_C(1) << 50));
	EXPECT_REFUSED(-EBADMSG, "size is 0", put64(_q.file + 24, 0));
	EXPECT_REFUSED(-EBADMSG, "multiple of 512", put64(_q.file + 24, DISK_BYTES - 1));
	EXPECT_REFUSED(-EOPNOTSUPP, "encrypted", put32(_q.file + 32, 1));
	EXPECT_REFUSED(-EBADMSG, "too few", put64(_q.file + 24, UINT64_C(1) << 40));
	EXPECT_REFUSED(-EBADMSG, "too many", put32(_q.file + 36, UINT32_C(1) << 30));
	EXPECT_REFUSED(-EBADMSG, "past the end", put32(_q.file + 36, 100000));
	EXPECT_REFUSED(-EBADMSG, "not cluster-aligned", put64(_q.file + 40, CL + 8));
	EXPECT_REFUSED(-EBADMSG, "header length", put32(_q.file + 100, 8));
	EXPECT_REFUSED(-EBADMSG, "header length", put32(_q.file + 100, 2 * CL));
	EXPECT_REFUSED(-EBADMSG, "corrupt", put64(_q.file + 72, 2));
	EXPECT_REFUSED(-EOPNOTSUPP, "external data file", put64(_q.file + 72, 4));
	EXPECT_REFUSED(-EOPNOTSUPP, "unknown incompatible", put64(_q.file + 72, UINT64_C(1) << 20));
	EXPECT_REFUSED(-EBADMSG, "no compression type", put64(_q.file + 72, 8));
	EXPECT_REFUSED(-EBADMSG, "16 KiB", put64(_q.file + 72, 16); put32(_q.file + 20, 12));
	/* a header extension longer than the header cluster */
	EXPECT_REFUSED(-EBADMSG, "overruns", put32(_q.file + 104, 0x12345678);
		       put32(_q.file + 108, CL));
	EXPECT_REFUSED(-EOPNOTSUPP, "encrypted", put32(_q.file + 104, 0x0537be77);
		       put32(_q.file + 108, 8));
}

TEST(qcow2_backing_file)
{
	/* a name outside the header cluster, then a good one without --backing-file */
	EXPECT_REFUSED(-EBADMSG, "outside the header cluster", put64(_q.file + 8, CL - 4);
		       put32(_q.file + 16, 10));
	EXPECT_REFUSED(-EBADMSG, "outside the header cluster", put64(_q.file + 8, 512);
		       put32(_q.file + 16, 2000));
	EXPECT_REFUSED(-EOPNOTSUPP, "backing file 'base\x3fimg'", put64(_q.file + 8, 512);
		       put32(_q.file + 16, 8); memcpy(_q.file + 512, "base\nimg", 8));

	/* given explicitly: unallocated clusters read from the (raw) backing file */
	struct q q = make_qcow2(), base = { .n = DISK_BYTES };
	_cleanup_free_ char *why = NULL, *base_path = NULL, *path = NULL;
	uint8_t buf[CL], expect[CL];
	struct vdisk *v = NULL;

	base.file = malloc(base.n);
	pattern(base.file, base.n, 7);
	base_path = write_tmp(&base);
	put64(q.file + 8, 512);
	put32(q.file + 16, (uint32_t) strlen(base_path));
	memcpy(q.file + 512, base_path, strlen(base_path));
	path = write_tmp(&q);
	ASSERT_OK(vdisk_open(path, base_path, &v, &why));
	ASSERT_OK(vdisk_pread(v, buf, CL, 5 * CL));
	ASSERT_MEMEQ(buf, base.file + 5 * CL, CL);
	ASSERT_OK(vdisk_pread(v, buf, CL, 0)); /* allocated: from the overlay */
	pattern(expect, CL, 1);
	ASSERT_MEMEQ(buf, expect, CL);
	vdisk_free(v);
	unlink(path);
	unlink(base_path);
	free(q.file);
	free(base.file);
}

TEST(qcow2_table_entries_lie)
{
	EXPECT_REFUSED(-EBADMSG, "L1 entry 0 points to an L2 table at byte 1099511627776",
		       put64(_q.file + CL, UINT64_C(1) << 40));
	EXPECT_REFUSED(-EBADMSG, "L1 entry 0 has reserved bits", put64(_q.file + CL, 2 * CL + 1));
	EXPECT_REFUSED(-EBADMSG, "L2 entry 0 of the table at byte 131072 points to a cluster at "
				 "byte 327680, past the end",
		       put64(_q.file + 2 * CL, 5 * CL));
	EXPECT_REFUSED(-EBADMSG, "not cluster-aligned", put64(_q.file + 2 * CL, 3 * CL + 512));
	EXPECT_REFUSED(-EBADMSG, "reserved bits", put64(_q.file + 2 * CL, 3 * CL + 2));
	EXPECT_REFUSED(-EBADMSG, "compressed data at byte",
		       put64(_q.file + 2 * CL + 16, (UINT64_C(1) << 62) | (5 * CL + 1)));
	/* the last entry of the table, too */
	EXPECT_REFUSED(-EBADMSG, "L2 entry 8191", put64(_q.file + 3 * CL - 8, UINT64_C(1) << 35));
}

TEST(qcow2_damaged_compressed_data_fails_on_read)
{
	struct q q = make_qcow2();
	_cleanup_free_ char *path = NULL, *why = NULL;
	uint8_t buf[CL];
	struct vdisk *v = NULL;
	int err = 0;

	memset(q.file + ZOFF, 0xff, 64);
	path = write_tmp(&q);
	ASSERT_OK(vdisk_open(path, NULL, &v, &why));
	ASSERT_OK(vdisk_pread(v, buf, CL, 0)); /* other clusters still read */
	ASSERT_ERR(vdisk_pread(v, buf, CL, 2 * CL), -EBADMSG);
	ASSERT_TRUE(strstr(vdisk_error(v, &err), "cannot be decompressed") != NULL);
	ASSERT_EQ_I64(err, -EBADMSG);
	vdisk_free(v);
	unlink(path);
	free(q.file);
}

static enum vdisk_format detect(const void *head, size_t n, uint64_t size, int *ret_r)
{
	struct q q = { .n = size };
	_cleanup_free_ char *path = NULL, *why = NULL;
	enum vdisk_format f = _VDISK_FORMAT_INVALID;
	int fd;

	q.file = calloc(1, size);
	memcpy(q.file, head, n);
	path = write_tmp(&q);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	*ret_r = vdisk_detect(fd, size, &f, &why);
	close(fd);
	unlink(path);
	free(q.file);
	return f;
}

TEST(detect_by_magic)
{
	int r;

	ASSERT_EQ_I64(detect("QFI\xfb\0\0\0\3", 8, 4096, &r), VDISK_QCOW2);
	detect("QFI\xfb\0\0\0\1", 8, 4096, &r);
	ASSERT_ERR(r, -EOPNOTSUPP);
	ASSERT_EQ_I64(detect("KDMV", 4, 4096, &r), VDISK_VMDK);
	ASSERT_EQ_I64(detect("vhdxfile", 8, 4096, &r), VDISK_VHDX);
	ASSERT_EQ_I64(detect("conectix", 8, 4096, &r), VDISK_VHD);
	detect("# Disk DescriptorFile\n", 22, 4096, &r);
	ASSERT_ERR(r, -EOPNOTSUPP);
	ASSERT_EQ_I64(detect("\x33\xc0", 2, 4096, &r), VDISK_RAW);
	ASSERT_OK(r);
	ASSERT_EQ_I64(detect("", 0, 0, &r), VDISK_RAW);
	{
		/* fixed VHD: the footer is the last 512 bytes */
		struct q q = { .n = 8192 };
		_cleanup_free_ char *path = NULL;
		enum vdisk_format f;
		int fd;

		q.file = calloc(1, q.n);
		memcpy(q.file + q.n - 512, "conectix", 8);
		path = write_tmp(&q);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		ASSERT_OK(vdisk_detect(fd, q.n, &f, NULL));
		ASSERT_EQ_I64(f, VDISK_VHD);
		close(fd);
		unlink(path);
		free(q.file);
	}
}

/* --- tar ----------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* A gzip'ed GNU tar of @members (name, size, data at chunk 1 and at the end). */
static char *make_tar(const char *const *names, size_t n, uint64_t size)
{
	struct q q = { .n = 0 };
	_cleanup_free_ char *path = write_tmp(&q);
	struct archive *a = archive_write_new();
	uint8_t *data = calloc(1, size);

	pattern(data + CHUNK_SIZE_BYTES + 5, 1000, 3);
	pattern(data + size - 512, 512, 4);
	archive_write_set_format_gnutar(a);
	archive_write_add_filter_gzip(a);
	ASSERT_TRUE(archive_write_open_filename(a, path) == ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, names[i]);
		archive_entry_set_size(e, (la_int64_t) size);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		ASSERT_TRUE(archive_write_header(a, e) == ARCHIVE_OK);
		ASSERT_TRUE(archive_write_data(a, data, size) == (la_ssize_t) size);
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	free(data);
	return TAKE_PTR(path);
}

TEST(tar_import_reads_back_and_drops_its_chunks)
{
	static const char *const one[] = { "disk.raw" };
	static const char *const wrong[] = { "disk.img" };
	static const char *const two[] = { "disk.raw", "more" };
	const uint64_t size = 3 * CHUNK_SIZE_BYTES + 4096; /* last chunk partial */
	_cleanup_free_ char *tar = make_tar(one, 1, size), *why = NULL, *dir = NULL, *t2 = NULL,
			    *t3 = NULL;
	_cleanup_free_ uint8_t *buf = malloc(size), *expect = calloc(1, size);
	struct store *s = NULL;
	struct vdisk *v = NULL;

	if (asprintf(&dir, "%s/test-vdisk-store.XXXXXX", getenv("TMPDIR") ?: "/tmp") < 0 ||
	    !mkdtemp(dir))
		abort();
	ASSERT_OK(store_open(dir, true, &s));
	ASSERT_OK(vdisk_chunks_new(s, &v));
	ASSERT_OK(vdisk_chunks_stream_tar(v, tar, NULL, NULL, &why));
	ASSERT_EQ_U64(v->size_bytes, size);
	pattern(expect + CHUNK_SIZE_BYTES + 5, 1000, 3);
	pattern(expect + size - 512, 512, 4);
	ASSERT_OK(vdisk_pread(v, buf, size, 0));
	ASSERT_MEMEQ(buf, expect, size);
	ASSERT_OK(vdisk_pread(v, buf, 10, size - 10));
	ASSERT_MEMEQ(buf, expect + size - 10, 10);
	/* two non-zero chunks were stored; no image uses them: both go */
	ASSERT_EQ_I64(vdisk_chunks_drop_new(v), 2);
	vdisk_free(v);
	v = NULL;

	t2 = make_tar(wrong, 1, size);
	free(why), why = NULL;
	ASSERT_OK(vdisk_chunks_new(s, &v));
	ASSERT_ERR(vdisk_chunks_stream_tar(v, t2, NULL, NULL, &why), -EBADMSG);
	ASSERT_TRUE(why && strstr(why, "'disk.img' is not 'disk.raw'"));
	ASSERT_EQ_I64(vdisk_chunks_drop_new(v), 0); /* refused before any data */
	vdisk_free(v);
	t3 = make_tar(two, 2, size);
	free(why), why = NULL;
	ASSERT_OK(vdisk_chunks_new(s, &v));
	ASSERT_ERR(vdisk_chunks_stream_tar(v, t3, NULL, NULL, &why), -EBADMSG);
	ASSERT_TRUE(why && strstr(why, "another member, 'more'"));
	/* the failed stream had stored disk.raw's two chunks: they can be dropped */
	ASSERT_EQ_I64(vdisk_chunks_drop_new(v), 2);
	vdisk_free(v);
	{
		struct chunk_id id;

		memset(expect, 0, CHUNK_SIZE_BYTES);
		pattern(expect + 5, 1000, 3);
		store_chunk_id(s, expect, CHUNK_SIZE_BYTES, &id);
		ASSERT_EQ_I64(store_has_chunk(s, &id), 0);
	}
	store_free(s);
	unlink(tar);
	unlink(t2);
	unlink(t3);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
