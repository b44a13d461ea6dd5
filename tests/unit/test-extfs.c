/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * extfs on file systems made by mke2fs, placed at an offset of a disk image;
 * numbers are checked against dumpe2fs/debugfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "unit.h"
#include "imager/extfs.h"
#include "util/cleanup.h"
#include "util/io.h"

#define MiB (UINT64_C(1) << 20)
#define FS_OFFSET (1 * MiB)

/*
 * disk.img: 80 MiB with a 64 MiB ext4 (4 KiB blocks) at 1 MiB holding
 * big.bin (3 MiB of random data) and a small file.
 */
static int make_ext4(void)
{
	static bool done;

	if (done)
		return 0;
	if (fixture_sh("rm -rf root e4.img disk.img && mkdir -p root/dir\n"
		       "head -c 3145728 /dev/urandom >root/big.bin\n"
		       "echo hello >root/dir/small.txt\n"
		       "truncate -s 64M e4.img\n"
		       "mkfs.ext4 -q -b 4096 -U 01234567-89ab-cdef-0123-456789abcdef -L rootfs"
		       " -E root_owner=0:0 -d root e4.img\n"
		       "truncate -s 80M disk.img\n"
		       "dd if=e4.img of=disk.img bs=1M seek=1 conv=notrunc status=none") < 0)
		return -1;
	done = true;
	return 0;
}

/* "(block count - free blocks) * block size" as dumpe2fs reports it */
static uint64_t dumpe2fs_used_bytes(const char *img)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "dumpe2fs -h %s | awk -F: '/^Block count/{c=$2} /^Free blocks/{f=$2}"
		 " /^Block size/{b=$2} END{printf \"%%d\\n\", (c-f)*b}'",
		 img);
	return fixture_u64(cmd);
}

static struct extfs *open_fs(const char *img, uint64_t off, uint64_t size)
{
	struct extfs *x = NULL;
	int fd = fixture_open(img, O_RDONLY);
	int r;

	if (fd < 0)
		return NULL;
	r = extfs_open(fd, off, size, &x);
	close(fd); /* libext2fs opened its own descriptor */
	if (r < 0) {
		printf("# extfs_open(%s): %s\n", img, strerror(-r));
		return NULL;
	}
	return x;
}

struct extents {
	uint64_t off[4096], size[4096];
	size_t n;
	uint64_t total;
	bool sorted;
};

static int collect(uint64_t off, uint64_t size, void *userdata)
{
	struct extents *e = userdata;

	if (e->n > 0 && off <= e->off[e->n - 1] + e->size[e->n - 1])
		e->sorted = false; /* overlapping, unmerged or out of order */
	if (e->n >= ELEMENTSOF(e->off))
		return -E2BIG;
	e->off[e->n] = off;
	e->size[e->n] = size;
	e->n++;
	e->total += size;
	return 0;
}

static bool covered(const struct extents *e, uint64_t off, uint64_t size)
{
	for (size_t i = 0; i < e->n; i++)
		if (off >= e->off[i] && off + size <= e->off[i] + e->size[i])
			return true;
	return false;
}

static bool touches(const struct extents *e, uint64_t off, uint64_t size)
{
	for (size_t i = 0; i < e->n; i++)
		if (off < e->off[i] + e->size[i] && e->off[i] < off + size)
			return true;
	return false;
}

TEST(ext4_info)
{
	struct extfs_info i;
	struct extfs *x;
	uint64_t used, min_blocks;

	ASSERT_OK(make_ext4());
	x = open_fs("disk.img", FS_OFFSET, 64 * MiB);
	ASSERT_TRUE(x);
	ASSERT_OK(extfs_get_info(x, &i));
	ASSERT_STREQ(i.type, "ext4");
	ASSERT_EQ_U64(i.block_bytes, 4096);
	ASSERT_EQ_U64(i.size_bytes, 64 * MiB);
	used = dumpe2fs_used_bytes("e4.img");
	ASSERT_TRUE(used != UINT64_MAX);
	ASSERT_EQ_U64(i.used_bytes, used);
	ASSERT_EQ_U64(i.free_bytes, 64 * MiB - used);
	ASSERT_TRUE(i.used_bytes > 3 * MiB); /* big.bin is in there */
	ASSERT_TRUE(i.clean);
	ASSERT_STREQ(i.uuid, "01234567-89ab-cdef-0123-456789abcdef");
	ASSERT_STREQ(i.label, "rootfs");
	/* the same number resize2fs -P prints */
	min_blocks = fixture_u64("resize2fs -P e4.img | sed -n 's/.*filesystem: //p'");
	ASSERT_TRUE(min_blocks != UINT64_MAX);
	ASSERT_EQ_U64(i.min_size_bytes, min_blocks * 4096);
	ASSERT_TRUE(i.min_size_bytes <= i.size_bytes);
	extfs_free(x);
}

TEST(ext4_used_extents)
{
	static struct extents e;
	struct extfs_info i;
	struct extfs *x;
	char range[128];
	uint64_t a, b;

	ASSERT_OK(make_ext4());
	x = open_fs("disk.img", FS_OFFSET, 64 * MiB);
	ASSERT_TRUE(x);
	ASSERT_OK(extfs_get_info(x, &i));
	e = (struct extents){ .sorted = true };
	ASSERT_OK(extfs_for_each_used_extent(x, collect, &e));
	ASSERT_TRUE(e.sorted);
	ASSERT_TRUE(e.n > 0);
	/* the superblock (in block 0 with 4 KiB blocks) is included */
	ASSERT_EQ_U64(e.off[0], 0);
	ASSERT_EQ_U64(e.total, i.used_bytes);
	ASSERT_TRUE(e.off[e.n - 1] + e.size[e.n - 1] <= 64 * MiB);

	/* every block of big.bin: debugfs lists them as "N N N ..." */
	ASSERT_OK(fixture_sh("debugfs -R 'blocks /big.bin' e4.img | tr ' ' '\\n' | "
			     "grep . >big.blocks\n"
			     "test $(wc -l <big.blocks) -eq 768"));
	{
		FILE *f = fopen(fixture_path("big.blocks"), "re");
		unsigned long long blk;
		unsigned n = 0;

		ASSERT_TRUE(f);
		while (fscanf(f, "%llu", &blk) == 1) {
			if (!covered(&e, blk * 4096, 4096))
				UNIT_FAIL("block %llu of big.bin not covered", blk);
			n++;
		}
		fclose(f);
		ASSERT_EQ_U64(n, 768);
	}
	/* a range that dumpe2fs calls free is never touched */
	ASSERT_OK(fixture_sh_out(range, sizeof(range),
				 "dumpe2fs e4.img | sed -n 's/^  Free blocks: //p' | "
				 "tr ',' '\\n' | grep -- - | tail -1"));
	ASSERT_EQ_I64(sscanf(range, "%" SCNu64 "-%" SCNu64, &a, &b), 2);
	ASSERT_TRUE(b > a);
	ASSERT_TRUE(!touches(&e, a * 4096, (b - a + 1) * 4096));
	extfs_free(x);
}

static int stop_cb(uint64_t off, uint64_t size, void *userdata)
{
	++*(int *) userdata;
	return -ECANCELED;
}

TEST(ext4_extent_cb_stops)
{
	struct extfs *x;
	int calls = 0;

	ASSERT_OK(make_ext4());
	x = open_fs("disk.img", FS_OFFSET, 64 * MiB);
	ASSERT_TRUE(x);
	ASSERT_ERR(extfs_for_each_used_extent(x, stop_cb, &calls), -ECANCELED);
	ASSERT_EQ_I64(calls, 1);
	extfs_free(x);
}

TEST(ext2_ext3_1k_blocks)
{
	static const char *const types[] = { "ext2", "ext3" };

	for (size_t t = 0; t < ELEMENTSOF(types); t++) {
		static struct extents e;
		struct extfs_info i;
		struct extfs *x;

		ASSERT_OK(fixture_sh("rm -f small.img && truncate -s 20M small.img\n"
				     "mkfs.%s -q -b 1024 -L old small.img",
				     types[t]));
		x = open_fs("small.img", 0, 20 * MiB);
		ASSERT_TRUE(x);
		ASSERT_OK(extfs_get_info(x, &i));
		ASSERT_STREQ(i.type, types[t]);
		ASSERT_EQ_U64(i.block_bytes, 1024);
		ASSERT_STREQ(i.label, "old");
		ASSERT_EQ_U64(i.used_bytes, dumpe2fs_used_bytes("small.img"));
		ASSERT_EQ_U64(i.min_size_bytes,
			      1024 * fixture_u64("resize2fs -P small.img |"
						 " sed -n 's/.*filesystem: //p'"));
		e = (struct extents){ .sorted = true };
		ASSERT_OK(extfs_for_each_used_extent(x, collect, &e));
		ASSERT_TRUE(e.sorted);
		/* block 0 (boot block, before s_first_data_block) and the
		 * superblock in block 1 form the first run */
		ASSERT_EQ_U64(e.off[0], 0);
		ASSERT_TRUE(e.size[0] >= 2048);
		ASSERT_EQ_U64(e.total, i.used_bytes);
		/* 20480 blocks: the last group's bitmap padding is not data */
		ASSERT_TRUE(e.off[e.n - 1] + e.size[e.n - 1] <= 20 * MiB);
		extfs_free(x);
	}
}

TEST(ext4_not_clean)
{
	struct extfs_info i;
	struct extfs *x;

	ASSERT_OK(fixture_sh("rm -f dirty.img && truncate -s 16M dirty.img\n"
			     "mkfs.ext4 -q dirty.img\n"
			     "debugfs -w -R 'ssv state 3' dirty.img")); /* valid + errors */
	x = open_fs("dirty.img", 0, 16 * MiB);
	ASSERT_TRUE(x);
	ASSERT_OK(extfs_get_info(x, &i));
	ASSERT_TRUE(!i.clean);
	extfs_free(x);

	ASSERT_OK(fixture_sh("debugfs -w -R 'ssv state 1' dirty.img\n"
			     "debugfs -w -R 'feature needs_recovery' dirty.img"));
	x = open_fs("dirty.img", 0, 16 * MiB);
	ASSERT_TRUE(x);
	ASSERT_OK(extfs_get_info(x, &i));
	ASSERT_TRUE(!i.clean);
	extfs_free(x);

	ASSERT_OK(fixture_sh("debugfs -w -R 'feature ^needs_recovery' dirty.img"));
	x = open_fs("dirty.img", 0, 16 * MiB);
	ASSERT_TRUE(x);
	ASSERT_OK(extfs_get_info(x, &i));
	ASSERT_TRUE(i.clean);
	extfs_free(x);
}

TEST(not_ext)
{
	struct extfs *x = NULL;
	int fd;

	ASSERT_OK(make_ext4());
	ASSERT_OK(fixture_sh("rm -f fat.img sw.img tiny.img && mkfs.fat -C fat.img 8192\n"
			     "truncate -s 8M sw.img && mkswap -q sw.img\n"
			     "truncate -s 1500 tiny.img"));
	fd = fixture_open("disk.img", O_RDONLY);
	ASSERT_TRUE(fd >= 0);
	ASSERT_ERR(extfs_open(fd, 66 * MiB, 14 * MiB, &x), -EMEDIUMTYPE); /* zeros */
	ASSERT_ERR(extfs_open(fd, 0, 1 * MiB, &x), -EMEDIUMTYPE);
	ASSERT_ERR(extfs_open(fd, FS_OFFSET, 1000, &x), -EMEDIUMTYPE);
	/* the file system is larger than the region it is said to be in */
	ASSERT_ERR(extfs_open(fd, FS_OFFSET, 32 * MiB, &x), -EBADMSG);
	ASSERT_ERR(extfs_open(fd, UINT64_MAX - 4096, 8192, &x), -EOVERFLOW);
	close(fd);
	ASSERT_TRUE(x == NULL);
	fd = fixture_open("fat.img", O_RDONLY);
	ASSERT_ERR(extfs_open(fd, 0, 8 * MiB, &x), -EMEDIUMTYPE);
	close(fd);
	fd = fixture_open("sw.img", O_RDONLY);
	ASSERT_ERR(extfs_open(fd, 0, 8 * MiB, &x), -EMEDIUMTYPE);
	close(fd);
	fd = fixture_open("tiny.img", O_RDONLY);
	ASSERT_ERR(extfs_open(fd, 0, 1 * MiB, &x), -EIO); /* superblock cut short */
	close(fd);
	ASSERT_TRUE(x == NULL);
}

TEST(corrupt_group_descriptors)
{
	struct extfs *x = NULL;
	uint8_t junk[4096];
	int fd, r;

	ASSERT_OK(fixture_sh("rm -f gd.img && truncate -s 32M gd.img\n"
			     "mkfs.ext4 -q -b 4096 -O ^metadata_csum,^uninit_bg gd.img"));
	fd = fixture_open("gd.img", O_RDWR);
	ASSERT_TRUE(fd >= 0);
	/* block 1 holds the group descriptors: point every bitmap far away */
	memset(junk, 0xEE, sizeof(junk));
	ASSERT_OK(pwrite_all(fd, junk, sizeof(junk), 4096));
	r = extfs_open(fd, 0, 32 * MiB, &x);
	close(fd);
	ASSERT_ERR(r, -EBADMSG);
	ASSERT_TRUE(x == NULL);
}

/* Random byte mutations of the metadata of a real ext4: errors, no crash. */
TEST(fuzz_metadata)
{
	uint8_t orig[64 * 1024];
	int fd, ok = 0, bad = 0;

	ASSERT_OK(fixture_sh("rm -f fz.img && truncate -s 16M fz.img\n"
			     "mkfs.ext4 -q -b 1024 fz.img"));
	fd = fixture_open("fz.img", O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(pread_all(fd, orig, sizeof(orig), 0));
	srand(1234);
	for (int i = 0; i < 200; i++) {
		uint8_t mut[sizeof(orig)];
		struct extfs *x = NULL;
		int r;

		memcpy(mut, orig, sizeof(mut));
		for (int k = 0; k < 8; k++) {
			/* half the hits in the superblock and descriptors */
			size_t at = (k & 1) ? 1024 + (size_t) rand() % 2048
					    : (size_t) rand() % sizeof(mut);
			mut[at] = (uint8_t) rand();
		}
		ASSERT_OK(pwrite_all(fd, mut, sizeof(mut), 0));
		r = extfs_open(fd, 0, 16 * MiB, &x);
		if (r == 0) {
			struct extfs_info info;
			static struct extents e;

			e = (struct extents){ .sorted = true };
			r = extfs_get_info(x, &info);
			if (r == 0)
				r = extfs_for_each_used_extent(x, collect, &e);
			if (r == 0 && e.total > 16 * MiB)
				UNIT_FAIL("extents beyond the file system");
			extfs_free(x);
		}
		if (r == 0)
			ok++;
		else if (r == -EBADMSG || r == -EMEDIUMTYPE || r == -EOPNOTSUPP || r == -EIO ||
			 r == -E2BIG)
			bad++;
		else
			UNIT_FAIL("unexpected %d (%s)", r, strerror(-r));
	}
	close(fd);
	printf("# %d opened, %d rejected\n", ok, bad);
	ASSERT_TRUE(bad > 0);
}

static int count_cb(uint64_t off, uint64_t size, void *userdata)
{
	*(uint64_t *) userdata += size;
	return 0;
}

TEST(one_tib_walks_fast)
{
	struct extfs_info i;
	struct extfs *x;
	struct timespec t0, t1;
	uint64_t total = 0, min_blocks;
	double s;

	/* sparse: mke2fs writes about 16 MiB of metadata */
	ASSERT_OK(fixture_sh("rm -f huge.img && truncate -s 1T huge.img\n"
			     "mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 huge.img"));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	min_blocks = fixture_u64("resize2fs -P huge.img | sed -n 's/.*filesystem: //p'");
	x = open_fs("huge.img", 0, UINT64_C(1) << 40);
	ASSERT_TRUE(x);
	ASSERT_OK(extfs_get_info(x, &i));
	ASSERT_OK(extfs_for_each_used_extent(x, count_cb, &total));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	extfs_free(x);
	ASSERT_OK(fixture_sh("rm -f huge.img"));
	s = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# 1 TiB: open + info + walk in %.3f s, %" PRIu64 " bytes used\n", s, total);
	ASSERT_EQ_U64(i.size_bytes, UINT64_C(1) << 40);
	ASSERT_EQ_U64(total, i.used_bytes);
	ASSERT_EQ_U64(i.min_size_bytes, 4096 * min_blocks);
	ASSERT_TRUE(s < 10.0);
}
