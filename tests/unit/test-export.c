/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "unit.h"
#include "imager/chunk.h"
#include "imager/export.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "util/cleanup.h"
#include "util/io.h"

#define MIB (UINT64_C(1) << 20)

/* A disk without a partition table: 16 MiB, extents in chunks 0 and 1, chunk 1 all zero. */
static struct manifest_extent ext_none[] = {
	{ 4096, 4096 },
	{ 5 * MIB, 100 },
};
static struct manifest_chunk chunks_none[] = {
	{ .offset_bytes = 0, .size_bytes = CHUNK_SIZE_BYTES },
};

static struct manifest_disk disk_none(void)
{
	return (struct manifest_disk){
		.size_bytes = 16 * MIB, .logical_sector_bytes = 512, .physical_sector_bytes = 512,
		.label = (char *) "none", .extents = ext_none, .n_extents = 2,
		.chunks = chunks_none, .n_chunks = 1, .used_bytes = 4196,
	};
}

struct recorded {
	struct export_piece p[64];
	size_t n;
	uint8_t *disk; /* if set: data pieces are copied here */
};

static int record(const struct export_piece *p, void *userdata)
{
	struct recorded *r = userdata;

	if (r->n < ELEMENTSOF(r->p))
		r->p[r->n++] = *p;
	if (r->disk && p->is_data) {
		if (!p->data)
			return -EINVAL;
		memcpy(r->disk + p->offset_bytes, p->data, p->size_bytes);
	}
	return 0;
}

static void assert_contiguous(const struct recorded *r, uint64_t size)
{
	uint64_t pos = 0;

	for (size_t i = 0; i < r->n; i++) {
		ASSERT_EQ_U64(r->p[i].offset_bytes, pos);
		ASSERT_TRUE(r->p[i].size_bytes > 0);
		ASSERT_TRUE(!r->p[i].is_data || r->p[i].size_bytes <= CHUNK_SIZE_BYTES);
		pos += r->p[i].size_bytes;
	}
	ASSERT_EQ_U64(pos, size);
}

TEST(export_format_strings)
{
	for (int f = 0; f < _EXPORT_FORMAT_MAX; f++)
		ASSERT_EQ_I64(export_format_from_string(export_format_to_string(f)), f);
	ASSERT_EQ_I64(export_format_from_string("vdi"), _EXPORT_FORMAT_INVALID);
	ASSERT_EQ_I64(export_format_from_string(NULL), _EXPORT_FORMAT_INVALID);
	ASSERT_STREQ(export_format_to_string(EXPORT_GCE_TAR), "gce-tar");
	ASSERT_TRUE(export_format_needs_seek(EXPORT_QCOW2));
	ASSERT_TRUE(!export_format_needs_seek(EXPORT_VMDK));
}

TEST(export_disk_size_rounds_per_format)
{
	struct manifest_disk md = disk_none();
	_cleanup_free_ char *reason = NULL;
	uint64_t s = 0;

	md.size_bytes = 256 * MIB;
	ASSERT_OK(export_disk_size(&md, EXPORT_RAW, &s, NULL));
	ASSERT_EQ_U64(s, 256 * MIB);
	ASSERT_OK(export_disk_size(&md, EXPORT_GCE_TAR, &s, NULL));
	ASSERT_EQ_U64(s, 1024 * MIB);
	ASSERT_OK(export_disk_size(&md, EXPORT_VHD, &s, NULL));
	ASSERT_EQ_U64(s, 256 * MIB);
	md.size_bytes = 1024 * MIB + 512;
	ASSERT_OK(export_disk_size(&md, EXPORT_GCE_TAR, &s, NULL));
	ASSERT_EQ_U64(s, 2048 * MIB);
	ASSERT_OK(export_disk_size(&md, EXPORT_VHD, &s, NULL));
	ASSERT_EQ_U64(s, 1025 * MIB);
	ASSERT_OK(export_disk_size(&md, EXPORT_QCOW2, &s, NULL));
	ASSERT_EQ_U64(s, 1024 * MIB + 512);
	md.size_bytes = 1000;
	ASSERT_ERR(export_disk_size(&md, EXPORT_RAW, &s, NULL), -EFBIG);
	md.size_bytes = 64 * MIB, md.logical_sector_bytes = 4096;
	ASSERT_OK(export_disk_size(&md, EXPORT_QCOW2, &s, NULL));
	ASSERT_ERR(export_disk_size(&md, EXPORT_VHD, &s, &reason), -EXDEV);
	ASSERT_TRUE(reason && strstr(reason, "512-byte sectors"));
	ASSERT_ERR(export_disk_size(&md, EXPORT_VMDK, &s, NULL), -EXDEV);
	ASSERT_ERR(export_disk_size(&md, EXPORT_GCE_TAR, &s, NULL), -EXDEV);
}

TEST(export_checksums)
{
	uint8_t b[512] = {};

	ASSERT_EQ_U64(export_vhd_checksum(b), UINT32_C(0xffffffff));
	b[64] = b[65] = b[66] = b[67] = 0xff; /* the checksum field itself is left out */
	ASSERT_EQ_U64(export_vhd_checksum(b), UINT32_C(0xffffffff));
	b[0] = 1, b[511] = 2;
	ASSERT_EQ_U64(export_vhd_checksum(b), ~UINT32_C(3));
	memset(b, 0, sizeof(b));
	ASSERT_EQ_U64(export_tar_checksum(b), 8 * ' ');
	b[148] = 0xff; /* counted as a space */
	b[0] = 'd';
	ASSERT_EQ_U64(export_tar_checksum(b), 8 * ' ' + 'd');
}

TEST(export_walk_map_no_table)
{
	struct manifest_disk md = disk_none();
	struct recorded r = {};
	uint64_t data = 0;

	/* no store: a map-only walk reads nothing */
	ASSERT_OK(export_disk_walk(&md, NULL, md.size_bytes, false, record, &r, &data));
	assert_contiguous(&r, md.size_bytes);
	ASSERT_EQ_U64(r.n, 3);
	ASSERT_TRUE(!r.p[0].is_data && r.p[0].size_bytes == 4096);
	ASSERT_TRUE(r.p[1].is_data && r.p[1].offset_bytes == 4096 && r.p[1].size_bytes == 4096);
	ASSERT_TRUE(r.p[1].data == NULL);
	/* the extent at 5 MiB is in an unlisted (all-zero) chunk: zeros */
	ASSERT_TRUE(!r.p[2].is_data && r.p[2].size_bytes == 16 * MIB - 8192);
	ASSERT_EQ_U64(data, 4096);

	/* a larger export: the same pieces, and zeros to the new end */
	r.n = 0;
	ASSERT_OK(export_disk_walk(&md, NULL, 1024 * MIB, false, record, &r, NULL));
	assert_contiguous(&r, 1024 * MIB);
	ASSERT_ERR(export_disk_walk(&md, NULL, md.size_bytes - 512, false, record, &r, NULL),
		   -EINVAL);
}

static int fail_second(const struct export_piece *p, void *userdata)
{
	return ++*(int *) userdata == 2 ? -ENOTRECOVERABLE : 0;
}

TEST(export_walk_callback_error_stops)
{
	struct manifest_disk md = disk_none();
	int calls = 0;

	ASSERT_ERR(export_disk_walk(&md, NULL, md.size_bytes, false, fail_second, &calls, NULL),
		   -ENOTRECOVERABLE);
	ASSERT_EQ_U64(calls, 2);
}

/*
 * A dos disk with a real store: the loaded walk must give exactly the flash
 * result: MBR (boot code + table) in sector 0, the extents' bytes from their
 * chunks, zeros elsewhere, and a corrupted chunk must stop it.
 */
TEST(export_walk_load_dos_equals_expected_bytes)
{
	static struct manifest_extent ext[] = {
		{ 512, 3000 },              /* post-MBR gap */
		{ 1 * MIB, 8192 },          /* partition 1 */
		{ 6 * MIB + 100, 50 },
	};
	struct manifest_partition part = {
		.partno = 1, .start_bytes = 1 * MIB, .size_bytes = 10 * MIB,
		.type = (char *) "0x83",
	};
	struct manifest_chunk ch[2] = {
		{ .offset_bytes = 0, .size_bytes = CHUNK_SIZE_BYTES },
		{ .offset_bytes = 4 * MIB, .size_bytes = CHUNK_SIZE_BYTES },
	};
	struct manifest_disk md = {
		.size_bytes = 16 * MIB, .logical_sector_bytes = 512, .physical_sector_bytes = 512,
		.label = (char *) "dos", .disk_id = (char *) "0x6e1d0a6e", .partitions = &part,
		.n_partitions = 1, .extents = ext, .n_extents = 3, .chunks = ch, .n_chunks = 2,
	};
	_cleanup_free_ uint8_t *want = calloc(1, 16 * MIB), *got = calloc(1, 16 * MIB);
	_cleanup_free_ uint8_t *c0 = calloc(1, CHUNK_SIZE_BYTES), *c1 = calloc(1, CHUNK_SIZE_BYTES);
	_cleanup_free_ char *dir = make_tmpdir();
	struct store *s = NULL;
	struct recorded r = { .disk = got };
	uint64_t data = 0;

	ASSERT_TRUE(want && got && c0 && c1);
	for (size_t i = 0; i < 3000; i++)
		c0[512 + i] = (uint8_t) (i * 7 + 1);
	for (size_t i = 0; i < 8192; i++)
		c0[MIB + i] = (uint8_t) (i * 13 + 5);
	for (size_t i = 0; i < 50; i++)
		c1[2 * MIB + 100 + i] = (uint8_t) (0xa0 + i);
	memset(md.boot_code, 0xeb, sizeof(md.boot_code));
	ASSERT_OK(store_open(dir, true, &s));
	/* named through the store, as capture names them (keyed IDs in an encrypted store) */
	store_chunk_id(s, c0, CHUNK_SIZE_BYTES, &ch[0].id);
	store_chunk_id(s, c1, CHUNK_SIZE_BYTES, &ch[1].id);
	ASSERT_TRUE(store_put_chunk(s, &ch[0].id, c0, CHUNK_SIZE_BYTES, NULL) >= 0);
	ASSERT_TRUE(store_put_chunk(s, &ch[1].id, c1, CHUNK_SIZE_BYTES, NULL) >= 0);

	memcpy(want, c0, CHUNK_SIZE_BYTES);
	memcpy(want + 4 * MIB, c1, CHUNK_SIZE_BYTES);
	ASSERT_OK(export_disk_walk(&md, s, md.size_bytes, true, record, &r, &data));
	assert_contiguous(&r, md.size_bytes);
	/* sector 0: boot code, then the table libfdisk wrote: the disk id, one entry, 55 AA */
	memcpy(want, md.boot_code, sizeof(md.boot_code));
	memcpy(want + 440, got + 440, 512 - 440);
	ASSERT_TRUE(got[510] == 0x55 && got[511] == 0xaa);
	ASSERT_TRUE(got[440] == 0x6e && got[441] == 0x0a && got[442] == 0x1d && got[443] == 0x6e);
	ASSERT_TRUE(got[446 + 4] == 0x83);
	ASSERT_MEMEQ(got, want, 16 * MIB);
	ASSERT_EQ_U64(data, 512 + 3000 + 8192 + 50);

	/* a flipped byte in a chunk file: the walk fails with -EBADMSG */
	{
		char id[CHUNK_ID_STRING_MAX], *path = NULL;
		struct stat st;
		int fd;

		chunk_id_to_string(&ch[1].id, id);
		ASSERT_TRUE(asprintf(&path, "%s/chunks/%.4s/%s.chunk", dir, id, id) > 0);
		fd = open(path, O_RDWR | O_CLOEXEC);
		free(path);
		ASSERT_TRUE(fd >= 0 && fstat(fd, &st) == 0);
		ASSERT_OK(pwrite_all(fd, "\xff\xff\xff\xff", 4, (uint64_t) st.st_size - 8));
		close(fd);
		r.n = 0;
		ASSERT_ERR(export_disk_walk(&md, s, md.size_bytes, true, record, &r, NULL),
			   -EBADMSG);
	}
	store_free(s);
	rm_tree(dir);
}

/* The gce-tar header of a disk with one data run: name, 'S', map, sizes, checksum. */
TEST(export_gce_tar_header_layout)
{
	struct manifest_disk md = disk_none();
	struct manifest m = { .name = (char *) "t", .created_unix = 1700000000, .disks = &md,
			      .n_disks = 1 };
	struct export_options o = { .format = EXPORT_GCE_TAR };
	struct export_stats st;
	_cleanup_free_ char *dir = make_tmpdir(), *reason = NULL;
	_cleanup_free_ uint8_t *c0 = calloc(1, CHUNK_SIZE_BYTES);
	struct store *s = NULL;
	int fd = memfd_create("tar", MFD_CLOEXEC);
	char cmd[512], field[16];
	uint8_t h[512];
	FILE *p;
	unsigned sum;

	ASSERT_TRUE(fd >= 0 && c0);
	memset(c0 + 4096, 0x5a, 4096);
	ASSERT_OK(store_open(dir, true, &s));
	store_chunk_id(s, c0, CHUNK_SIZE_BYTES, &chunks_none[0].id);
	ASSERT_TRUE(store_put_chunk(s, &chunks_none[0].id, c0, CHUNK_SIZE_BYTES, NULL) >= 0);
	ASSERT_OK(export_disk(fd, &m, 0, s, &o, &st, &reason));
	ASSERT_EQ_U64(st.disk_bytes, 1024 * MIB);
	ASSERT_EQ_U64(st.chunks_read, 1);

	/* gunzip with zlib's own reader (gzip's format check), first block */
	snprintf(cmd, sizeof(cmd), "gzip -dc < /proc/%d/fd/%d", getpid(), fd);
	p = popen(cmd, "r");
	ASSERT_TRUE(p && fread(h, 1, sizeof(h), p) == sizeof(h));
	pclose(p);
	ASSERT_STREQ((char *) h, "disk.raw");
	ASSERT_EQ_U64(h[156], 'S');
	ASSERT_MEMEQ(h + 257, "ustar  \0", 8);
	ASSERT_MEMEQ(h + 124, "00000010000\0", 12);              /* stored: 4096 */
	ASSERT_MEMEQ(h + 136, "14524770400\0", 12);              /* mtime 1700000000 */
	ASSERT_MEMEQ(h + 386, "00000010000\0" "00000010000\0", 24); /* run {4096, 4096} */
	ASSERT_MEMEQ(h + 410, "10000000000\0" "00000000000\0", 24); /* {1 GiB, 0}: the end */
	ASSERT_EQ_U64(h[434], 0);                                /* no third entry */
	ASSERT_EQ_U64(h[482], 0);                                /* not extended */
	ASSERT_MEMEQ(h + 483, "10000000000\0", 12);              /* realsize 1 GiB */
	memcpy(field, h + 148, 8);
	field[8] = 0;
	ASSERT_EQ_U64(field[6], 0);
	ASSERT_EQ_U64(field[7], ' ');
	ASSERT_TRUE(sscanf(field, "%6o", &sum) == 1);
	ASSERT_EQ_U64(sum, export_tar_checksum(h));
	close(fd);
	store_free(s);
	rm_tree(dir);
}
