/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FAT reader on volumes made by mkfs.fat and filled by mtools; numbers
 * are checked against mdir/minfo/mshowfat, and hostile volumes must give
 * -EBADMSG/-EMEDIUMTYPE, never a crash or a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fixture.h"
#include "unit.h"
#include "imager/fatfs.h"
#include "util/cleanup.h"
#include "util/io.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define ESP_OFFSET (1 * MiB)
#define ESP_SIZE (40 * MiB)

/* disk.img: 48 MiB; a 40 MiB FAT32 ESP (1 sector per cluster) at 1 MiB */
static int make_esp(void)
{
	static bool done;

	if (done)
		return 0;
	if (fixture_sh("rm -f esp.img disk.img loader.efi\n"
		       "head -c 204800 /dev/urandom >loader.efi\n"
		       "mkfs.fat -F 32 -s 1 -n ESPLABEL -i 12345678 -C esp.img 40960\n"
		       "mmd -i esp.img ::/EFI ::/EFI/BOOT ::/EFI/debian ::/EFI/debian/Sub\n"
		       "mcopy -i esp.img loader.efi ::/EFI/BOOT/BOOTX64.EFI\n"
		       "mcopy -i esp.img loader.efi '::/EFI/BOOT/Long File Name Sibling.efi'\n"
		       "echo cfg | mcopy -i esp.img - ::/EFI/debian/Sub/grub.cfg\n"
		       "truncate -s 48M disk.img\n"
		       "dd if=esp.img of=disk.img bs=1M seek=1 conv=notrunc status=none") < 0)
		return -1;
	done = true;
	return 0;
}

static struct fatfs *open_at(const char *img, uint64_t off, uint64_t size, int *ret_fd)
{
	struct fatfs *fs = NULL;
	int fd = fixture_open(img, O_RDONLY);
	int r;

	if (fd < 0)
		return NULL;
	r = fatfs_open(fd, off, size, &fs);
	if (r < 0) {
		printf("# fatfs_open(%s): %s\n", img, strerror(-r));
		close(fd);
		return NULL;
	}
	*ret_fd = fd; /* the reader uses the caller's fd: keep it open */
	return fs;
}

static int open_err(const char *img, uint64_t off, uint64_t size)
{
	struct fatfs *fs = NULL;
	int fd = fixture_open(img, O_RDONLY), r;

	if (fd < 0)
		return -errno;
	r = fatfs_open(fd, off, size, &fs);
	if (r >= 0)
		fatfs_free(fs);
	close(fd);
	return r;
}

static uint64_t mdir_free_bytes(const char *img)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "mdir -i %s :: | sed -n 's/ bytes free//p' | tr -d ' '", img);
	return fixture_u64(cmd);
}

static uint64_t minfo(const char *img, const char *key)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "minfo -i %s :: | sed -n 's/^%s[:=] *//p' | head -1", img,
		 key);
	return fixture_u64(cmd);
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
		e->sorted = false;
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

TEST(fat32_info)
{
	struct fatfs_info i;
	struct fatfs *fs;
	int fd;

	ASSERT_OK(make_esp());
	fs = open_at("disk.img", ESP_OFFSET, ESP_SIZE, &fd);
	ASSERT_TRUE(fs);
	ASSERT_OK(fatfs_get_info(fs, &i));
	ASSERT_EQ_U64(i.fat_bits, 32);
	ASSERT_EQ_U64(i.cluster_bytes, 512);
	ASSERT_EQ_U64(i.size_bytes, ESP_SIZE);
	ASSERT_EQ_U64(i.free_bytes, mdir_free_bytes("esp.img"));
	ASSERT_EQ_U64(i.used_bytes, ESP_SIZE - i.free_bytes);
	ASSERT_TRUE(i.used_bytes > 2 * 204800);
	ASSERT_STREQ(i.label, "ESPLABEL");
	ASSERT_EQ_U64(i.volume_id, 0x12345678);
	fatfs_free(fs);
	close(fd);
}

TEST(fat32_paths)
{
	static const char *const yes[] = {
		"/EFI/BOOT/BOOTX64.EFI",
		"/efi/boot/bootx64.efi",
		"EFI/BOOT/BOOTX64.EFI",
		"/EFI/BOOT/Long File Name Sibling.efi",
		"/efi/boot/LONG FILE NAME SIBLING.EFI",
		"/EFI/BOOT/LONGFI~1.EFI", /* the 8.3 alias mtools made */
		"/EFI/debian/Sub/grub.cfg",
		"/EFI/BOOT/",
		"/EFI//BOOT/../BOOT/./BOOTX64.EFI",
		"/",
	};
	static const char *const no[] = {
		"/EFI/BOOT/BOOTIA32.EFI",
		"/EFI/BOOT/Long File Name Sibling",
		"/EFI/BOOT/Long File Name Sibling.efi.bak",
		"/EFI/BOOT/BOOTX64.EFI/x",
		"/EFI/BOOTX64.EFI",
		"/EFI/BOOT/BOOTX64.EF",
		"/nothing",
	};
	struct fatfs *fs;
	int fd;

	ASSERT_OK(make_esp());
	fs = open_at("disk.img", ESP_OFFSET, ESP_SIZE, &fd);
	ASSERT_TRUE(fs);
	for (size_t k = 0; k < ELEMENTSOF(yes); k++)
		if (fatfs_path_exists(fs, yes[k]) != 1)
			UNIT_FAIL("'%s' not found", yes[k]);
	for (size_t k = 0; k < ELEMENTSOF(no); k++)
		if (fatfs_path_exists(fs, no[k]) != 0)
			UNIT_FAIL("'%s' found", no[k]);
	fatfs_free(fs);
	close(fd);
}

/* "::/X <5-200> <300-301>" -> byte ranges of the clusters */
static void check_chain_covered(const char *img, const char *file, const struct extents *e,
				uint64_t first_data_bytes, uint64_t cluster_bytes, uint64_t base)
{
	char cmd[512], out[4096], *p;
	unsigned n = 0;

	snprintf(cmd, sizeof(cmd), "mshowfat -i %s '::%s' | cut -d' ' -f2-", img, file);
	ASSERT_OK(fixture_sh_out(out, sizeof(out), "%s", cmd));
	for (p = out; (p = strchr(p, '<')); p++) {
		unsigned long long a, b;
		int k = sscanf(p, "<%llu-%llu>", &a, &b);

		if (k == 1)
			b = a;
		ASSERT_TRUE(k >= 1 && b >= a);
		for (unsigned long long c = a; c <= b; c++, n++)
			if (!covered(e, base + first_data_bytes + (c - 2) * cluster_bytes,
				     cluster_bytes))
				UNIT_FAIL("cluster %llu of %s not covered", c, file);
	}
	ASSERT_TRUE(n > 0);
}

TEST(fat32_used_extents)
{
	static struct extents e;
	struct fatfs_info i;
	struct fatfs *fs;
	uint64_t rsvd, nfats, fatlen, first_data;
	int fd;

	ASSERT_OK(make_esp());
	fs = open_at("disk.img", ESP_OFFSET, ESP_SIZE, &fd);
	ASSERT_TRUE(fs);
	ASSERT_OK(fatfs_get_info(fs, &i));
	e = (struct extents){ .sorted = true };
	ASSERT_OK(fatfs_for_each_used_extent(fs, collect, &e));
	ASSERT_TRUE(e.sorted);
	rsvd = minfo("esp.img", "reserved (boot) sectors");
	nfats = minfo("esp.img", "fats");
	fatlen = minfo("esp.img", "Big fatlen");
	ASSERT_TRUE(rsvd == 32 && nfats == 2 && fatlen > 0 && fatlen < 10000);
	first_data = (rsvd + nfats * fatlen) * 512;
	/* boot sector, reserved sectors and both FATs in one run from 0 */
	ASSERT_EQ_U64(e.off[0], 0);
	ASSERT_TRUE(e.size[0] >= first_data);
	/* one sector per cluster, no unusable tail: used == copied */
	ASSERT_EQ_U64(e.total, i.used_bytes);
	check_chain_covered("esp.img", "/EFI/BOOT/BOOTX64.EFI", &e, first_data, 512, 0);
	check_chain_covered("esp.img", "/EFI/BOOT/Long File Name Sibling.efi", &e, first_data,
			    512, 0);
	check_chain_covered("esp.img", "/EFI/debian/Sub/grub.cfg", &e, first_data, 512, 0);
	/* the last 20 MiB are free */
	ASSERT_TRUE(!touches(&e, ESP_SIZE - 20 * MiB, 20 * MiB));
	fatfs_free(fs);
	close(fd);
}

static const struct {
	unsigned bits;
	const char *mkfs;
	uint64_t kib;
} small_fats[] = {
	{ 16, "-F 16 -n LBL16 -i 0BADF00D", 32768 },
	{ 12, "-F 12 -n LBL12 -i 0BADF00D", 1440 },
};

TEST(fat16_fat12)
{
	for (size_t k = 0; k < ELEMENTSOF(small_fats); k++) {
		static struct extents e;
		struct fatfs_info i;
		struct fatfs *fs;
		uint64_t rsvd, nfats, fatlen, root, cl, first_data;
		int fd;

		ASSERT_OK(fixture_sh("rm -f small.img && mkfs.fat %s -C small.img %" PRIu64 "\n"
				     "mmd -i small.img ::/EFI ::/EFI/BOOT\n"
				     "head -c 30000 /dev/urandom >s.bin\n"
				     "mcopy -i small.img s.bin ::/EFI/BOOT/BOOTIA32.EFI\n"
				     "mcopy -i small.img s.bin '::/Some Long Name.txt'",
				     small_fats[k].mkfs, small_fats[k].kib));
		fs = open_at("small.img", 0, small_fats[k].kib * KiB, &fd);
		ASSERT_TRUE(fs);
		ASSERT_OK(fatfs_get_info(fs, &i));
		ASSERT_EQ_U64(i.fat_bits, small_fats[k].bits);
		ASSERT_EQ_U64(i.size_bytes, small_fats[k].kib * KiB);
		ASSERT_EQ_U64(i.free_bytes, mdir_free_bytes("small.img"));
		ASSERT_EQ_U64(i.volume_id, 0x0BADF00D);
		ASSERT_EQ_I64(fatfs_path_exists(fs, "/efi/boot/bootia32.efi"), 1);
		ASSERT_EQ_I64(fatfs_path_exists(fs, "/some long NAME.txt"), 1);
		ASSERT_EQ_I64(fatfs_path_exists(fs, "/some long NAME.tx"), 0);
		ASSERT_EQ_I64(fatfs_path_exists(fs, "/EFI/BOOT/BOOTX64.EFI"), 0);

		e = (struct extents){ .sorted = true };
		ASSERT_OK(fatfs_for_each_used_extent(fs, collect, &e));
		ASSERT_TRUE(e.sorted);
		rsvd = minfo("small.img", "reserved (boot) sectors");
		nfats = minfo("small.img", "fats");
		fatlen = minfo("small.img", "sectors per fat");
		root = minfo("small.img", "max available root directory slots");
		cl = minfo("small.img", "cluster size") * 512;
		ASSERT_TRUE(root > 0 && fatlen > 0 && cl >= 512);
		first_data = (rsvd + nfats * fatlen) * 512 + root * 32;
		ASSERT_EQ_U64(i.cluster_bytes, cl);
		/* the root directory region is part of the first run */
		ASSERT_EQ_U64(e.off[0], 0);
		ASSERT_TRUE(e.size[0] >= first_data);
		check_chain_covered("small.img", "/EFI/BOOT/BOOTIA32.EFI", &e, first_data, cl, 0);
		check_chain_covered("small.img", "/Some Long Name.txt", &e, first_data, cl, 0);
		ASSERT_TRUE(!touches(&e, i.size_bytes - 256 * KiB, 256 * KiB));
		fatfs_free(fs);
		close(fd);
	}
}

TEST(label_from_root_dir_wins)
{
	struct fatfs_info i;
	struct fatfs *fs;
	int fd;

	/* mlabel writes the root entry; then make the BPB copy differ */
	ASSERT_OK(fixture_sh("rm -f lb.img && mkfs.fat -F 16 -n BPBNAME -C lb.img 16384\n"
			     "mlabel -i lb.img ::ROOTNAME\n"
			     "printf 'OTHERNAME  ' | dd of=lb.img bs=1 seek=43 conv=notrunc"));
	fs = open_at("lb.img", 0, 16 * MiB, &fd);
	ASSERT_TRUE(fs);
	ASSERT_OK(fatfs_get_info(fs, &i));
	ASSERT_STREQ(i.label, "ROOTNAME");
	fatfs_free(fs);
	close(fd);

	/* no label anywhere */
	ASSERT_OK(fixture_sh("rm -f lb.img && mkfs.fat -F 16 -C lb.img 16384"));
	fs = open_at("lb.img", 0, 16 * MiB, &fd);
	ASSERT_TRUE(fs);
	ASSERT_OK(fatfs_get_info(fs, &i));
	ASSERT_STREQ(i.label, "");
	fatfs_free(fs);
	close(fd);
}

TEST(not_fat)
{
	ASSERT_OK(make_esp());
	ASSERT_OK(fixture_sh("rm -f rnd.img e.img nt.img\n"
			     "head -c 65536 /dev/urandom >rnd.img\n"
			     "truncate -s 8M e.img && mkfs.ext4 -q e.img\n"
			     /* an NTFS-looking boot sector: jump, OEM id, sane BPB */
			     "dd if=esp.img of=nt.img bs=512 count=1 status=none\n"
			     "printf 'NTFS    ' |"
			     " dd of=nt.img bs=1 seek=3 conv=notrunc status=none"));
	ASSERT_ERR(open_err("disk.img", 0, 1 * MiB), -EMEDIUMTYPE);        /* zeros */
	ASSERT_ERR(open_err("disk.img", 42 * MiB, 6 * MiB), -EMEDIUMTYPE); /* zeros */
	ASSERT_ERR(open_err("rnd.img", 0, 65536), -EMEDIUMTYPE);
	ASSERT_ERR(open_err("e.img", 0, 8 * MiB), -EMEDIUMTYPE);
	ASSERT_ERR(open_err("nt.img", 0, 512), -EMEDIUMTYPE);
	ASSERT_ERR(open_err("disk.img", ESP_OFFSET, 100), -EMEDIUMTYPE);
	/* the volume is bigger than its partition */
	ASSERT_ERR(open_err("disk.img", ESP_OFFSET, ESP_SIZE - 512), -EBADMSG);
	ASSERT_ERR(open_err("disk.img", UINT64_MAX - 100, 4096), -EOVERFLOW);
}

/* Copies esp.img to @name and pokes @n bytes of @bytes at @off. */
static int patched(const char *src, const char *name, uint64_t off, const void *bytes, size_t n)
{
	int fd, r;

	if (fixture_sh("cp %s %s", src, name) < 0)
		return -1;
	fd = fixture_open(name, O_RDWR);
	if (fd < 0)
		return -1;
	r = pwrite_all(fd, bytes, n, off);
	close(fd);
	return r;
}

TEST(hostile_bpb)
{
	uint8_t zero = 0, three = 3, big[4] = { 0xFF, 0xFF, 0xFF, 0x7F };
	uint8_t root_clus[4] = { 0xF0, 0xFF, 0xFF, 0x0F };

	ASSERT_OK(make_esp());
	/* zero sectors per cluster */
	ASSERT_OK(patched("esp.img", "h.img", 13, &zero, 1));
	ASSERT_ERR(open_err("h.img", 0, ESP_SIZE), -EBADMSG);
	/* three sectors per cluster (not a power of two) */
	ASSERT_OK(patched("esp.img", "h.img", 13, &three, 1));
	ASSERT_ERR(open_err("h.img", 0, ESP_SIZE), -EBADMSG);
	/* zero reserved sectors */
	ASSERT_OK(patched("esp.img", "h.img", 14, (uint8_t[2]){ 0, 0 }, 2));
	ASSERT_ERR(open_err("h.img", 0, ESP_SIZE), -EBADMSG);
	/* zero FATs but "FAT32" in the type string */
	ASSERT_OK(patched("esp.img", "h.img", 16, &zero, 1));
	ASSERT_ERR(open_err("h.img", 0, ESP_SIZE), -EBADMSG);
	/* 2^31 sectors in a 40 MiB region */
	ASSERT_OK(patched("esp.img", "h.img", 32, big, 4));
	ASSERT_ERR(open_err("h.img", 0, ESP_SIZE), -EBADMSG);
	/* a FAT too small for the clusters */
	ASSERT_OK(patched("esp.img", "h.img", 36, (uint8_t[4]){ 1, 0, 0, 0 }, 4));
	ASSERT_ERR(open_err("h.img", 0, ESP_SIZE), -EBADMSG);
	/* root directory cluster out of range */
	ASSERT_OK(patched("esp.img", "h.img", 44, root_clus, 4));
	ASSERT_ERR(open_err("h.img", 0, ESP_SIZE), -EBADMSG);
	/* the region is larger than the file: reads fail, no crash */
	{
		struct fatfs *fs;
		struct fatfs_info i;
		int fd;

		/* the FAT is there, the data clusters are not */
		ASSERT_OK(fixture_sh("head -c $(((32 + 2 * %" PRIu64 " + 1) * 512))"
				     " esp.img >cut.img",
				     minfo("esp.img", "Big fatlen")));
		fs = open_at("cut.img", 0, ESP_SIZE, &fd);
		ASSERT_TRUE(fs);
		ASSERT_OK(fatfs_get_info(fs, &i));
		ASSERT_ERR(fatfs_path_exists(fs, "/EFI/BOOT/BOOTX64.EFI"), -EIO);
		fatfs_free(fs);
		close(fd);
		/* the FAT is cut short too */
		ASSERT_OK(fixture_sh("head -c 100000 esp.img >cut.img"));
		ASSERT_ERR(open_err("cut.img", 0, ESP_SIZE), -EIO);
	}
}

static void put_fat16(int fd, uint64_t fat_off, uint32_t cluster, uint32_t value)
{
	uint8_t b[2] = { value & 0xFF, (value >> 8) & 0xFF };

	ASSERT_OK(pwrite_all(fd, b, 2, fat_off + cluster * 2));
}

TEST(cluster_chain_loop)
{
	char out[256];
	unsigned long long a = 0, b = 0;
	struct fatfs *fs;
	int fd, wfd;
	uint64_t fat_off;

	/* a FAT16 directory that fills exactly two clusters (2 KiB = 64 entries
	 * each): ".", ".." and 126 files, so no end marker stops the walk */
	ASSERT_OK(fixture_sh("rm -f loop.img && mkfs.fat -F 16 -s 4 -C loop.img 32768\n"
			     "mmd -i loop.img ::/LOOP\n"
			     "for i in $(seq 1 126); do\n"
			     "  echo $i | mcopy -i loop.img - ::/LOOP/F$i.TXT\n"
			     "done"));
	/* "::/LOOP <2> <66>" or "::/LOOP <2-3>": the first two clusters */
	ASSERT_OK(fixture_sh_out(out, sizeof(out), "mshowfat -i loop.img ::/LOOP"));
	{
		char *p = strchr(out, '<');
		int k;

		ASSERT_TRUE(p);
		k = sscanf(p, "<%llu-%llu>", &a, &b);
		if (k == 1) {
			p = strchr(p + 1, '<');
			ASSERT_TRUE(p);
			ASSERT_EQ_I64(sscanf(p, "<%llu", &b), 1);
		} else {
			ASSERT_EQ_I64(k, 2);
			b = a + 1;
		}
		ASSERT_TRUE(a >= 2 && b >= 2 && a != b);
	}
	fat_off = minfo("loop.img", "reserved (boot) sectors") * 512;

	fs = open_at("loop.img", 0, 32 * MiB, &fd);
	ASSERT_TRUE(fs);
	ASSERT_EQ_I64(fatfs_path_exists(fs, "/LOOP/F126.TXT"), 1);
	ASSERT_EQ_I64(fatfs_path_exists(fs, "/LOOP/F127.TXT"), 0);
	fatfs_free(fs);
	close(fd);

	/* second cluster points back at the first: the walk must stop */
	wfd = fixture_open("loop.img", O_RDWR);
	ASSERT_TRUE(wfd >= 0);
	put_fat16(wfd, fat_off, (uint32_t) b, (uint32_t) a);
	close(wfd);
	fs = open_at("loop.img", 0, 32 * MiB, &fd);
	ASSERT_TRUE(fs);
	ASSERT_EQ_I64(fatfs_path_exists(fs, "/LOOP/F126.TXT"), 1); /* found before the loop */
	ASSERT_ERR(fatfs_path_exists(fs, "/LOOP/NOPE.TXT"), -EBADMSG);
	fatfs_free(fs);
	close(fd);

	/* a chain that points past the last cluster */
	wfd = fixture_open("loop.img", O_RDWR);
	put_fat16(wfd, fat_off, (uint32_t) b, 0xFFF0);
	close(wfd);
	fs = open_at("loop.img", 0, 32 * MiB, &fd);
	ASSERT_TRUE(fs);
	ASSERT_ERR(fatfs_path_exists(fs, "/LOOP/NOPE.TXT"), -EBADMSG);
	fatfs_free(fs);
	close(fd);

	/* a directory entry whose start cluster is 1 */
	wfd = fixture_open("loop.img", O_RDWR);
	put_fat16(wfd, fat_off, (uint32_t) b, 0xFFFF);
	close(wfd);
	{
		/* find LOOP's entry in the root directory and point it at cluster 1 */
		uint64_t rsvd = minfo("loop.img", "reserved (boot) sectors");
		uint64_t fatlen = minfo("loop.img", "sectors per fat");
		uint64_t root = (rsvd + 2 * fatlen) * 512;
		uint8_t ent[32];

		wfd = fixture_open("loop.img", O_RDWR);
		for (int k = 0; k < 512; k++) {
			ASSERT_OK(pread_all(wfd, ent, 32, root + 32 * (uint64_t) k));
			if (memcmp(ent, "LOOP       ", 11) == 0) {
				ent[26] = 1;
				ent[27] = 0;
				ASSERT_OK(pwrite_all(wfd, ent, 32, root + 32 * (uint64_t) k));
				break;
			}
		}
		close(wfd);
	}
	fs = open_at("loop.img", 0, 32 * MiB, &fd);
	ASSERT_TRUE(fs);
	ASSERT_ERR(fatfs_path_exists(fs, "/LOOP/F1.TXT"), -EBADMSG);
	ASSERT_EQ_I64(fatfs_path_exists(fs, "/LOOP"), 1);
	fatfs_free(fs);
	close(fd);
}

/* Random mutations of the boot sector, FATs and root directory of a FAT16. */
TEST(fuzz)
{
	uint8_t orig[64 * 1024];
	int fd, ok = 0, bad = 0;

	ASSERT_OK(fixture_sh("rm -f fz.img && mkfs.fat -F 16 -s 1 -n FUZZ -C fz.img 8192\n"
			     "mmd -i fz.img ::/EFI ::/EFI/BOOT\n"
			     "echo x | mcopy -i fz.img - '::/EFI/BOOT/A long name.efi'"));
	fd = fixture_open("fz.img", O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(pread_all(fd, orig, sizeof(orig), 0));
	srand(99);
	for (int it = 0; it < 400; it++) {
		static struct extents e;
		uint8_t mut[sizeof(orig)];
		struct fatfs *fs = NULL;
		struct fatfs_info i;
		int r;

		memcpy(mut, orig, sizeof(mut));
		for (int k = 0; k < 6; k++) {
			size_t at = (it & 1) ? (size_t) rand() % 64 : (size_t) rand() % sizeof(mut);
			mut[at] = (uint8_t) rand();
		}
		ASSERT_OK(pwrite_all(fd, mut, sizeof(mut), 0));
		r = fatfs_open(fd, 0, 8 * MiB, &fs);
		if (r == 0) {
			e = (struct extents){ .sorted = true };
			r = fatfs_get_info(fs, &i);
			if (r == 0)
				r = fatfs_for_each_used_extent(fs, collect, &e);
			if (r == 0 && (!e.sorted || e.total > 8 * MiB))
				UNIT_FAIL("bad extents");
			if (r == 0) {
				r = fatfs_path_exists(fs, "/EFI/BOOT/A long name.efi");
				r = r > 0 ? 0 : r;
			}
			fatfs_free(fs);
		}
		if (r == 0)
			ok++;
		else if (r == -EBADMSG || r == -EMEDIUMTYPE || r == -EIO || r == -E2BIG)
			bad++;
		else
			UNIT_FAIL("unexpected %d (%s)", r, strerror(-r));
	}
	close(fd);
	printf("# %d usable, %d rejected\n", ok, bad);
	ASSERT_TRUE(ok > 0 && bad > 0);
}

/* 4096-byte logical sectors (a FAT32 made for a 4Kn disk) */
TEST(fat32_4k_sectors)
{
	static struct extents e;
	struct fatfs_info i;
	struct fatfs *fs;
	uint64_t fatlen, rsvd, first_data;
	int fd;

	ASSERT_OK(fixture_sh("rm -f s4k.img && mkfs.fat -S 4096 -F 32 -s 1 -n FOURK"
			     " -C s4k.img 300000\n"
			     "mmd -i s4k.img ::/EFI ::/EFI/BOOT\n"
			     "head -c 50000 /dev/urandom | mcopy -i s4k.img - "
			     "'::/EFI/BOOT/Long name here.efi'"));
	fs = open_at("s4k.img", 0, 300000 * KiB, &fd);
	ASSERT_TRUE(fs);
	ASSERT_OK(fatfs_get_info(fs, &i));
	ASSERT_EQ_U64(i.fat_bits, 32);
	ASSERT_EQ_U64(i.cluster_bytes, 4096);
	/* mkfs.fat rounds the size down to its geometry */
	ASSERT_EQ_U64(i.size_bytes, minfo("s4k.img", "big size") * 4096);
	ASSERT_EQ_U64(i.free_bytes, mdir_free_bytes("s4k.img"));
	ASSERT_STREQ(i.label, "FOURK");
	ASSERT_EQ_I64(fatfs_path_exists(fs, "/efi/boot/LONG NAME HERE.EFI"), 1);
	e = (struct extents){ .sorted = true };
	ASSERT_OK(fatfs_for_each_used_extent(fs, collect, &e));
	ASSERT_TRUE(e.sorted);
	rsvd = minfo("s4k.img", "reserved (boot) sectors");
	fatlen = minfo("s4k.img", "Big fatlen");
	ASSERT_TRUE(rsvd > 0 && fatlen > 0);
	first_data = (rsvd + 2 * fatlen) * 4096;
	check_chain_covered("s4k.img", "/EFI/BOOT/Long name here.efi", &e, first_data, 4096, 0);
	ASSERT_EQ_U64(e.total, i.used_bytes);
	fatfs_free(fs);
	close(fd);
}
