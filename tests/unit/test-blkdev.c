/* SPDX-License-Identifier: GPL-2.0-or-later */
/* blkdev on image files: what counts as a disk image, sector size of 4Kn images, errors. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "imager/blkdev.h"
#include "util/io.h"

static char dir[] = "/tmp/imager-test-blkdev.XXXXXX";
static bool have_dir;

static void remove_dir(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void) !system(cmd);
}

/* A path in this binary's scratch directory (made on first use, removed at exit). */
static const char *path_in_dir(const char *name)
{
	static char p[256];

	if (!have_dir) {
		if (!mkdtemp(dir))
			abort();
		have_dir = true;
		atexit(remove_dir);
	}
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

/* A sparse file of @size bytes with @data written at each of @n offsets. */
static const char *make_file(const char *name, uint64_t size, const void *data, size_t len,
			     const uint64_t *offsets, size_t n)
{
	const char *p = path_in_dir(name);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || ftruncate(fd, (off_t) size) < 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (pwrite_all(fd, data, len, offsets[i]) < 0)
			abort();
	close(fd);
	return p;
}

TEST(missing_path_is_enoent)
{
	struct blkdev *d = (struct blkdev *) 0x1;

	ASSERT_ERR(blkdev_new_from_path(path_in_dir("nothing"), &d), -ENOENT);
	ASSERT_TRUE(d == (struct blkdev *) 0x1); /* ret_ untouched on failure */
}

TEST(non_disks_are_refused)
{
	static const char text[] = "root:x:0:0:root:/root:/bin/bash\n";
	uint64_t zero = 0;
	struct blkdev *d;

	ASSERT_ERR(blkdev_new_from_path(make_file("text", sizeof(text) - 1, text,
						  sizeof(text) - 1, &zero, 1), &d),
		   -EMEDIUMTYPE);
	/* whole sectors of text: still not a disk */
	ASSERT_ERR(blkdev_new_from_path(make_file("text4k", 4096, text, sizeof(text) - 1, &zero, 1),
					&d),
		   -EMEDIUMTYPE);
	ASSERT_ERR(blkdev_new_from_path(make_file("empty", 0, NULL, 0, NULL, 0), &d), -EMEDIUMTYPE);
	ASSERT_ERR(blkdev_new_from_path("/dev/null", &d), -ENOTBLK);
	ASSERT_ERR(blkdev_new_from_path("/tmp", &d), -ENOTBLK);
}

TEST(blank_image_is_a_disk)
{
	struct blkdev *d = NULL;

	ASSERT_OK(blkdev_new_from_path(make_file("blank", 1 << 20, NULL, 0, NULL, 0), &d));
	ASSERT_TRUE(d->is_file);
	ASSERT_EQ_U64(d->size_bytes, 1 << 20);
	ASSERT_EQ_U64(d->logical_sector_bytes, 512);
	ASSERT_STREQ(d->transport, "file");
	ASSERT_TRUE(d->by_id && !d->by_id[0]);
	blkdev_free(d);
}

TEST(gpt_header_position_gives_sector_size)
{
	struct blkdev *d = NULL;
	uint64_t at512 = 512, at4k = 4096, end4k = (8u << 20) - 4096;

	ASSERT_OK(blkdev_new_from_path(make_file("gpt512", 8u << 20, "EFI PART", 8, &at512, 1), &d));
	ASSERT_EQ_U64(d->logical_sector_bytes, 512);
	d = blkdev_free(d);
	ASSERT_OK(blkdev_new_from_path(make_file("gpt4k", 8u << 20, "EFI PART", 8, &at4k, 1), &d));
	ASSERT_EQ_U64(d->logical_sector_bytes, 4096);
	ASSERT_EQ_U64(d->physical_sector_bytes, 4096);
	d = blkdev_free(d);
	/* primary header gone: the backup in the last 4 KiB LBA still tells */
	ASSERT_OK(blkdev_new_from_path(make_file("gpt4k-backup", 8u << 20, "EFI PART", 8, &end4k, 1),
				       &d));
	ASSERT_EQ_U64(d->logical_sector_bytes, 4096);
	blkdev_free(d);
}

TEST(image_files_have_no_usage)
{
	struct blkdev *d = NULL;
	char **mps = NULL, *holder = (char *) 0x1, *reason = NULL;
	bool swap = true;

	ASSERT_OK(blkdev_new_from_path(make_file("blank2", 1 << 20, NULL, 0, NULL, 0), &d));
	ASSERT_OK(blkdev_partition_usage(d, 0, &mps, &swap, &holder));
	ASSERT_TRUE(mps && !mps[0]);
	ASSERT_TRUE(!swap);
	ASSERT_TRUE(holder == NULL);
	ASSERT_ERR(blkdev_partition_node(d, 1 << 20, &holder), -ENOENT);
	ASSERT_EQ_I64(blkdev_in_use(d, &reason), 0);
	free(mps);
	blkdev_free(d);
}

TEST(target_may_be_missing)
{
	struct blkdev *d = NULL;

	unlink(path_in_dir("new.img"));
	ASSERT_ERR(blkdev_new_target(path_in_dir("new.img"), false, &d), -ENOENT);
	ASSERT_OK(blkdev_new_target(path_in_dir("new.img"), true, &d));
	ASSERT_TRUE(d->is_file);
	ASSERT_EQ_U64(d->size_bytes, 0);
	d = blkdev_free(d);
	/* any regular file is a target, disk image or not */
	ASSERT_OK(blkdev_new_target(make_file("text", 100, "x", 1, &(uint64_t){ 0 }, 1), false, &d));
	blkdev_free(d);
}
