/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fsprobe_region() on file systems placed at offsets of one disk image, and
 * bootcode_classify() on the real GRUB and syslinux boot code.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fixture.h"
#include "unit.h"
#include "imager/fsprobe.h"
#include "util/cleanup.h"
#include "util/io.h"

#define MiB (UINT64_C(1) << 20)

/* disk.img: ext4 at 1 MiB (24 MiB), swap at 25 MiB (8 MiB), FAT32 at 33 MiB (40 MiB), 80 MiB */
static int make_disk(void)
{
	static bool done;

	if (done)
		return 0;
	if (fixture_sh("rm -f disk.img e.img s.img v.img f16.img\n"
		       "truncate -s 80M disk.img\n"
		       "truncate -s 24M e.img\n"
		       "mkfs.ext4 -q -U 01234567-89ab-cdef-0123-456789abcdef -L rootfs e.img\n"
		       "truncate -s 8M s.img\n"
		       "mkswap -q -U 5a5a5a5a-1111-2222-3333-444455556666 -L swaplbl s.img\n"
		       "mkfs.fat -F 32 -i 1234ABCD -n ESP -C v.img 40960\n"
		       "dd if=e.img of=disk.img bs=1M seek=1 conv=notrunc status=none\n"
		       "dd if=s.img of=disk.img bs=1M seek=25 conv=notrunc status=none\n"
		       "dd if=v.img of=disk.img bs=1M seek=33 conv=notrunc status=none") < 0)
		return -1;
	done = true;
	return 0;
}

static void probe(uint64_t off, uint64_t size, int want_r, struct fsprobe *p)
{
	int fd = fixture_open("disk.img", O_RDONLY);

	ASSERT_TRUE(fd >= 0);
	*p = (struct fsprobe){};
	ASSERT_EQ_I64(fsprobe_region(fd, off, size, p), want_r);
	close(fd);
}

TEST(probe_ext4_at_offset)
{
	struct fsprobe p;

	ASSERT_OK(make_disk());
	probe(1 * MiB, 24 * MiB, 1, &p);
	ASSERT_STREQ(p.type, "ext4");
	ASSERT_STREQ(p.usage, "filesystem");
	ASSERT_STREQ(p.uuid, "01234567-89ab-cdef-0123-456789abcdef");
	ASSERT_STREQ(p.label, "rootfs");
	ASSERT_STREQ(p.version, "1.0");
	fsprobe_done(&p);
	ASSERT_TRUE(p.type == NULL);
}

TEST(probe_swap_at_offset)
{
	struct fsprobe p;

	ASSERT_OK(make_disk());
	probe(25 * MiB, 8 * MiB, 1, &p);
	ASSERT_STREQ(p.type, "swap");
	ASSERT_STREQ(p.uuid, "5a5a5a5a-1111-2222-3333-444455556666");
	ASSERT_STREQ(p.label, "swaplbl");
	ASSERT_STREQ(p.version, "1");
	fsprobe_done(&p);
}

TEST(probe_vfat_at_offset)
{
	struct fsprobe p;

	ASSERT_OK(make_disk());
	probe(33 * MiB, 40 * MiB, 1, &p);
	ASSERT_STREQ(p.type, "vfat");
	ASSERT_STREQ(p.usage, "filesystem");
	ASSERT_STREQ(p.uuid, "1234-ABCD");
	ASSERT_STREQ(p.label, "ESP");
	ASSERT_STREQ(p.version, "FAT32");
	fsprobe_done(&p);
}

TEST(probe_nothing)
{
	struct fsprobe p;

	ASSERT_OK(make_disk());
	/* the free tail of the disk */
	probe(73 * MiB, 7 * MiB, 0, &p);
	ASSERT_TRUE(p.type == NULL && p.uuid == NULL && p.label == NULL);
	/* an empty region */
	probe(1 * MiB, 0, 0, &p);
	ASSERT_TRUE(p.type == NULL);
	/* the swap region does not leak into a probe that starts after it */
	probe(26 * MiB, 7 * MiB, 0, &p);
	ASSERT_TRUE(p.type == NULL);
	fsprobe_done(&p);
}

TEST(probe_bad_args)
{
	struct fsprobe p = {};

	ASSERT_ERR(fsprobe_region(-1, 0, 4096, &p), -EINVAL);
	ASSERT_ERR(fsprobe_region(0, UINT64_MAX - 10, 4096, &p), -EOVERFLOW);
	fsprobe_done(NULL);
}

static int load_bootcode(const char *path, uint8_t code[440])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	int r;

	if (fd < 0) {
		printf("# cannot open %s: %m\n", path);
		return -errno;
	}
	memset(code, 0, 440);
	r = read_full(fd, code, 440, &n);
	close(fd);
	return r < 0 ? r : (int) n;
}

TEST(bootcode_strings)
{
	ASSERT_STREQ(bootcode_to_string(BOOTCODE_NONE), "none");
	ASSERT_STREQ(bootcode_to_string(BOOTCODE_GRUB), "grub");
	ASSERT_STREQ(bootcode_to_string(BOOTCODE_SYSLINUX), "syslinux");
	ASSERT_STREQ(bootcode_to_string(BOOTCODE_WINDOWS), "windows");
	ASSERT_STREQ(bootcode_to_string(BOOTCODE_OTHER), "other");
	ASSERT_TRUE(bootcode_to_string(_BOOTCODE_MAX) == NULL);
}

TEST(bootcode_grub)
{
	uint8_t code[440];

	ASSERT_TRUE(load_bootcode("/usr/lib/grub/i386-pc/boot.img", code) == 440);
	ASSERT_EQ_I64(bootcode_classify(code), BOOTCODE_GRUB);
}

TEST(bootcode_grub_in_disk)
{
	uint8_t sector0[512];
	int fd;

	/* boot.img dd'ed into sector 0 of a GPT disk, as grub-install does */
	ASSERT_OK(fixture_sh("rm -f g.img && truncate -s 8M g.img\n"
			     "printf 'label: gpt\\n,1M,21686148-6449-6E6F-744E-656564454649\\n' |"
			     " sfdisk -q g.img\n"
			     "dd if=/usr/lib/grub/i386-pc/boot.img of=g.img bs=440 count=1"
			     " conv=notrunc status=none"));
	fd = fixture_open("g.img", O_RDONLY);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(pread_all(fd, sector0, sizeof(sector0), 0));
	close(fd);
	ASSERT_EQ_I64(bootcode_classify(sector0), BOOTCODE_GRUB);
}

TEST(bootcode_syslinux)
{
	static const char *const bins[] = { "/usr/lib/syslinux/mbr/mbr.bin",
					    "/usr/lib/syslinux/mbr/gptmbr.bin",
					    "/usr/lib/syslinux/mbr/altmbr.bin" };
	uint8_t code[440];

	for (size_t i = 0; i < ELEMENTSOF(bins); i++) {
		ASSERT_TRUE(load_bootcode(bins[i], code) >= 439);
		if (bootcode_classify(code) != BOOTCODE_SYSLINUX)
			UNIT_FAIL("%s classified as %s", bins[i],
				  bootcode_to_string(bootcode_classify(code)));
	}
}

/* The message layout of Microsoft's NT 6 MBR (not its code, which we do not ship). */
static void fake_windows(uint8_t code[440])
{
	static const char msgs[] = "Invalid partition table\0Error loading operating system\0"
				   "Missing operating system";

	memset(code, 0, 440);
	code[0] = 0x33; /* xor ax, ax */
	code[1] = 0xC0;
	memcpy(code + 0x163, msgs, sizeof(msgs));
}

TEST(bootcode_windows)
{
	uint8_t code[440];

	fake_windows(code);
	ASSERT_EQ_I64(bootcode_classify(code), BOOTCODE_WINDOWS);
}

TEST(bootcode_none_and_other)
{
	uint8_t code[440] = {};

	ASSERT_EQ_I64(bootcode_classify(code), BOOTCODE_NONE);
	code[439] = 1;
	ASSERT_EQ_I64(bootcode_classify(code), BOOTCODE_OTHER);
	srand(7);
	for (int i = 0; i < 440; i++)
		code[i] = (uint8_t) rand();
	ASSERT_EQ_I64(bootcode_classify(code), BOOTCODE_OTHER);
	/* a lone "Missing operating system" is not enough for either */
	memset(code, 0x90, sizeof(code));
	memcpy(code + 100, "Missing operating system", 24);
	ASSERT_EQ_I64(bootcode_classify(code), BOOTCODE_OTHER);
	/* strings cut off at byte 440 do not count */
	memset(code, 0x90, sizeof(code));
	memcpy(code + 440 - 4, "GRUB", 4);
	ASSERT_EQ_I64(bootcode_classify(code), BOOTCODE_OTHER);
}
