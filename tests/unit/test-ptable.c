/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ptable_read()/ptable_render() on disk images made by sfdisk (and, for 4Kn,
 * by a tiny independent GPT writer below, since sfdisk on a file always uses
 * 512-byte sectors).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "unit.h"
#include "imager/ptable.h"
#include "util/cleanup.h"
#include "util/io.h"

#define MiB (UINT64_C(1) << 20)

#define ESP_TYPE "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define LINUX_TYPE "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
#define SWAP_TYPE "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
#define DISK_GUID "01234567-89AB-CDEF-0123-456789ABCDEF"
#define UUID1 "11111111-2222-3333-4444-555555555555"
#define UUID2 "22222222-2222-3333-4444-555555555555"
#define UUID4 "44444444-2222-3333-4444-555555555555"

/* 64 MiB, 512-byte sectors, partitions 1, 2 and 4 (a gap in numbering). */
static const char gpt_script[] =
	"label: gpt\n"
	"label-id: " DISK_GUID "\n"
	"first-lba: 34\n"
	"gpt.img1 : start=2048, size=32768, type=" ESP_TYPE ", uuid=" UUID1
	", name=\"EFI System\", attrs=\"LegacyBIOSBootable\"\n"
	"gpt.img2 : start=34816, size=65536, type=" LINUX_TYPE ", uuid=" UUID2
	", name=\"root\", attrs=\"RequiredPartition GUID:60,63\"\n"
	"gpt.img4 : start=100352, size=20480, type=" SWAP_TYPE ", uuid=" UUID4 "\n";

static const char dos_script[] = "label: dos\n"
				 "label-id: 0x1234abcd\n"
				 "dos.img1 : start=2048, size=16384, type=c, bootable\n"
				 "dos.img2 : start=18432, size=20480, type=83\n"
				 "dos.img3 : start=38912, size=90112, type=5\n"
				 "dos.img5 : start=40960, size=20480, type=83\n"
				 "dos.img6 : start=63488, size=10240, type=82\n";

static int make_image(const char *name, const char *size, const char *script)
{
	FILE *f;
	char sname[256];

	snprintf(sname, sizeof(sname), "%s.sfdisk", name);
	f = fopen(fixture_path(sname), "we");
	if (!f)
		return -1;
	fputs(script, f);
	fclose(f);
	return fixture_sh("rm -f %s && truncate -s %s %s && sfdisk -q --no-reread %s <%s", name,
			  size, name, name, sname);
}

static struct ptable *read_table(const char *name, uint32_t ss)
{
	struct ptable *pt = NULL;
	int fd = fixture_open(name, O_RDONLY);
	int r;

	if (fd < 0)
		return NULL;
	r = ptable_read(fd, ss, &pt);
	close(fd);
	if (r < 0) {
		printf("# ptable_read(%s): %s\n", name, strerror(-r));
		return NULL;
	}
	return pt;
}

static void check_gpt_entries(const struct ptable *pt)
{
	ASSERT_EQ_U64(pt->n_entries, 3);
	ASSERT_EQ_U64(pt->entries[0].partno, 1);
	ASSERT_EQ_U64(pt->entries[0].start_bytes, 1 * MiB);
	ASSERT_EQ_U64(pt->entries[0].size_bytes, 16 * MiB);
	ASSERT_STREQ(pt->entries[0].type, ESP_TYPE);
	ASSERT_STREQ(pt->entries[0].type_name, "EFI System");
	ASSERT_STREQ(pt->entries[0].uuid, UUID1);
	ASSERT_STREQ(pt->entries[0].name, "EFI System");
	ASSERT_EQ_U64(pt->entries[0].attrs, 1u << 2);
	ASSERT_TRUE(pt->entries[0].bootable);

	ASSERT_EQ_U64(pt->entries[1].partno, 2);
	ASSERT_EQ_U64(pt->entries[1].start_bytes, 17 * MiB);
	ASSERT_EQ_U64(pt->entries[1].size_bytes, 32 * MiB);
	ASSERT_STREQ(pt->entries[1].type, LINUX_TYPE);
	ASSERT_STREQ(pt->entries[1].type_name, "Linux filesystem");
	ASSERT_STREQ(pt->entries[1].uuid, UUID2);
	ASSERT_STREQ(pt->entries[1].name, "root");
	ASSERT_EQ_U64(pt->entries[1].attrs, (UINT64_C(1) << 63) | (UINT64_C(1) << 60) | 1);
	ASSERT_TRUE(!pt->entries[1].bootable);

	ASSERT_EQ_U64(pt->entries[2].partno, 4);
	ASSERT_EQ_U64(pt->entries[2].start_bytes, 49 * MiB);
	ASSERT_EQ_U64(pt->entries[2].size_bytes, 10 * MiB);
	ASSERT_STREQ(pt->entries[2].type, SWAP_TYPE);
	ASSERT_STREQ(pt->entries[2].type_name, "Linux swap");
	ASSERT_STREQ(pt->entries[2].uuid, UUID4);
	ASSERT_TRUE(pt->entries[2].name == NULL);
	ASSERT_EQ_U64(pt->entries[2].attrs, 0);
}

TEST(label_strings)
{
	ASSERT_STREQ(ptable_label_to_string(PTABLE_NONE), "none");
	ASSERT_STREQ(ptable_label_to_string(PTABLE_DOS), "dos");
	ASSERT_STREQ(ptable_label_to_string(PTABLE_GPT), "gpt");
	ASSERT_TRUE(ptable_label_to_string(_PTABLE_LABEL_MAX) == NULL);
	ASSERT_EQ_I64(ptable_label_from_string("gpt"), PTABLE_GPT);
	ASSERT_EQ_I64(ptable_label_from_string("dos"), PTABLE_DOS);
	ASSERT_EQ_I64(ptable_label_from_string("none"), PTABLE_NONE);
	ASSERT_EQ_I64(ptable_label_from_string("mbr"), -EINVAL);
	ASSERT_EQ_I64(ptable_label_from_string(NULL), -EINVAL);
}

TEST(gpt_read)
{
	struct ptable *pt;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_EQ_I64(pt->label, PTABLE_GPT);
	ASSERT_STREQ(pt->disk_id, DISK_GUID);
	ASSERT_EQ_U64(pt->sector_bytes, 512);
	ASSERT_EQ_U64(pt->first_usable_bytes, 34 * 512);
	/* last usable LBA = 131072 - 1 (backup header) - 32 (entries) - 1 */
	ASSERT_EQ_U64(pt->last_usable_bytes, (131038 + 1) * UINT64_C(512));
	ASSERT_EQ_U64(pt->gpt_n_entries_max, 128);
	ASSERT_TRUE(!pt->gpt_primary_damaged && !pt->gpt_backup_damaged &&
		    !pt->gpt_backup_misplaced);
	check_gpt_entries(pt);
	ptable_free(pt);
}

TEST(gpt_dup)
{
	struct ptable *pt, *c;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_OK(ptable_dup(pt, &c));
	ptable_free(pt);
	ASSERT_EQ_I64(c->label, PTABLE_GPT);
	ASSERT_STREQ(c->disk_id, DISK_GUID);
	check_gpt_entries(c);
	ptable_free(c);
	ASSERT_TRUE(ptable_free(NULL) == NULL);
}

TEST(gpt_primary_header_damaged)
{
	struct ptable *pt;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	/* a byte of the disk GUID inside the primary header's CRC */
	ASSERT_OK(fixture_sh("printf 'XXXX' | dd of=gpt.img bs=1 seek=$((512 + 56)) conv=notrunc"));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_TRUE(pt->gpt_primary_damaged);
	ASSERT_TRUE(!pt->gpt_backup_damaged && !pt->gpt_backup_misplaced);
	ASSERT_STREQ(pt->disk_id, DISK_GUID); /* from the backup */
	check_gpt_entries(pt);
	ptable_free(pt);
}

TEST(gpt_primary_entries_damaged)
{
	struct ptable *pt;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	/* the name of entry 1 in the primary array (LBA 2) */
	ASSERT_OK(fixture_sh("printf 'ZZ' | dd of=gpt.img bs=1 seek=$((1024 + 56)) conv=notrunc"));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_TRUE(pt->gpt_primary_damaged && !pt->gpt_backup_damaged);
	check_gpt_entries(pt); /* "EFI System", not "ZZI System" */
	ptable_free(pt);
}

TEST(gpt_backup_damaged)
{
	struct ptable *pt;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	ASSERT_OK(fixture_sh("dd if=/dev/zero of=gpt.img bs=512 seek=131071 count=1 conv=notrunc"));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_TRUE(!pt->gpt_primary_damaged && pt->gpt_backup_damaged &&
		    !pt->gpt_backup_misplaced);
	check_gpt_entries(pt);
	ptable_free(pt);
}

TEST(gpt_both_damaged)
{
	struct ptable *pt = NULL;
	int fd;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	ASSERT_OK(fixture_sh("dd if=/dev/zero of=gpt.img bs=512 seek=131071 count=1 conv=notrunc\n"
			     "dd if=/dev/zero of=gpt.img bs=512 seek=1 count=1 conv=notrunc"));
	fd = fixture_open("gpt.img", O_RDONLY);
	ASSERT_TRUE(fd >= 0);
	/* the protective MBR says GPT, but no copy is usable */
	ASSERT_ERR(ptable_read(fd, 512, &pt), -EBADMSG);
	ASSERT_TRUE(pt == NULL);
	close(fd);
}

TEST(gpt_grown_disk)
{
	struct ptable *pt;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	ASSERT_OK(fixture_sh("truncate -s 100M gpt.img"));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_TRUE(!pt->gpt_primary_damaged && !pt->gpt_backup_damaged &&
		    pt->gpt_backup_misplaced);
	/* the usable area is what the (old) header says */
	ASSERT_EQ_U64(pt->last_usable_bytes, (131038 + 1) * UINT64_C(512));
	check_gpt_entries(pt);
	ptable_free(pt);
}

/* Copies the ranges ptable_regions() reports from @mfd into a new sparse file. */
static int copy_regions(int mfd, uint32_t ss, uint64_t disk_bytes, const char *name,
			struct ptable_region **ret, size_t *ret_n)
{
	struct ptable_region *v = NULL;
	size_t n = 0;
	int fd, r;

	r = ptable_regions(mfd, ss, &v, &n);
	if (r < 0)
		return r;
	fd = fixture_open(name, O_RDWR | O_CREAT | O_TRUNC);
	if (fd < 0 || ftruncate(fd, (off_t) disk_bytes) < 0)
		return -errno;
	for (size_t i = 0; i < n; i++) {
		uint8_t *buf = malloc(v[i].size_bytes);
		r = pread_all(mfd, buf, v[i].size_bytes, v[i].offset_bytes);
		if (r >= 0)
			r = pwrite_all(fd, buf, v[i].size_bytes, v[i].offset_bytes);
		free(buf);
		if (r < 0)
			return r;
	}
	close(fd);
	*ret = v;
	*ret_n = n;
	return 0;
}

TEST(gpt_render_roundtrip_larger_disk)
{
	struct ptable *pt, *back;
	struct ptable_region *v;
	uint8_t boot[440], zero[440] = {};
	uint64_t disk = 128 * MiB, data, hole;
	size_t n;
	int mfd;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_OK(ptable_render(pt, disk, 512, &mfd));
	ASSERT_EQ_U64((uint64_t) lseek(mfd, 0, SEEK_END), disk);
	ASSERT_OK(pread_all(mfd, boot, sizeof(boot), 0));
	ASSERT_MEMEQ(boot, zero, sizeof(boot));

	/* nothing is written between the primary entries and the backup */
	data = (uint64_t) lseek(mfd, 0, SEEK_DATA);
	hole = (uint64_t) lseek(mfd, 0, SEEK_HOLE);
	ASSERT_EQ_U64(data, 0);
	ASSERT_TRUE(hole <= 1 * MiB);
	ASSERT_TRUE((uint64_t) lseek(mfd, hole, SEEK_DATA) >= disk - 1 * MiB);

	ASSERT_OK(copy_regions(mfd, 512, disk, "render.img", &v, &n));
	/* PMBR, header, entries, backup entries, backup header: sector-exact */
	ASSERT_EQ_U64(n, 5);
	ASSERT_EQ_U64(v[0].offset_bytes, 0);
	ASSERT_EQ_U64(v[0].size_bytes, 512);
	ASSERT_EQ_U64(v[1].offset_bytes, 512);
	ASSERT_EQ_U64(v[2].offset_bytes, 1024);
	ASSERT_EQ_U64(v[2].size_bytes, 128 * 128);
	ASSERT_EQ_U64(v[3].offset_bytes, disk - 512 - 128 * 128);
	ASSERT_EQ_U64(v[4].offset_bytes, disk - 512);
	ASSERT_EQ_U64(v[4].size_bytes, 512);
	free(v);
	close(mfd);

	back = read_table("render.img", 512);
	ASSERT_TRUE(back);
	ASSERT_EQ_I64(back->label, PTABLE_GPT);
	ASSERT_STREQ(back->disk_id, DISK_GUID);
	ASSERT_EQ_U64(back->first_usable_bytes, 34 * 512);
	ASSERT_EQ_U64(back->last_usable_bytes, disk - 512 - 128 * 128);
	ASSERT_TRUE(!back->gpt_primary_damaged && !back->gpt_backup_damaged &&
		    !back->gpt_backup_misplaced);
	check_gpt_entries(back);
	ptable_free(back);
	ptable_free(pt);

	/* independent checkers agree */
	ASSERT_OK(fixture_sh("sgdisk -v render.img | grep -q '^No problems found'"));
	ASSERT_OK(fixture_sh("sfdisk --verify render.img | grep -q 'No errors detected'"));
}

TEST(gpt_render_fixes_grown_disk)
{
	struct ptable *pt, *back;
	struct ptable_region *v;
	size_t n;
	int mfd;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	ASSERT_OK(fixture_sh("truncate -s 100M gpt.img"));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt && pt->gpt_backup_misplaced);
	ASSERT_OK(ptable_render(pt, 100 * MiB, 512, &mfd));
	ASSERT_OK(copy_regions(mfd, 512, 100 * MiB, "render.img", &v, &n));
	free(v);
	close(mfd);
	back = read_table("render.img", 512);
	ASSERT_TRUE(back);
	ASSERT_TRUE(!back->gpt_backup_misplaced && !back->gpt_backup_damaged);
	check_gpt_entries(back);
	ptable_free(back);
	ptable_free(pt);
}

TEST(gpt_utf8_name_roundtrip)
{
	struct ptable *pt, *back;
	struct ptable_region *v;
	size_t n;
	int mfd;

	ASSERT_OK(make_image("u.img", "16M",
			     "label: gpt\nstart=2048, size=4096, name=\"Syst\xc3\xa8me \xc3\xbc\"\n"));
	pt = read_table("u.img", 512);
	ASSERT_TRUE(pt && pt->n_entries == 1);
	ASSERT_STREQ(pt->entries[0].name, "Syst\xc3\xa8me \xc3\xbc");
	ASSERT_OK(ptable_render(pt, 16 * MiB, 512, &mfd));
	ASSERT_OK(copy_regions(mfd, 512, 16 * MiB, "ru.img", &v, &n));
	free(v);
	close(mfd);
	back = read_table("ru.img", 512);
	ASSERT_TRUE(back && back->n_entries == 1);
	ASSERT_STREQ(back->entries[0].name, pt->entries[0].name);
	ASSERT_STREQ(back->entries[0].uuid, pt->entries[0].uuid);
	ptable_free(back);
	ptable_free(pt);
}

TEST(gpt_render_too_small)
{
	struct ptable *pt;
	int mfd = -1;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	/* partition 4 ends at 59 MiB */
	ASSERT_ERR(ptable_render(pt, 59 * MiB, 512, &mfd), -ENOSPC);
	ASSERT_EQ_I64(mfd, -1);
	ASSERT_OK(ptable_render(pt, 60 * MiB, 512, &mfd));
	close(mfd);
	/* an entry not aligned to the target's sectors cannot be rendered */
	pt->entries[2].start_bytes += 512;
	ASSERT_ERR(ptable_render(pt, 64 * MiB, 4096, &mfd), -EINVAL);
	ptable_free(pt);
}

/* --- an independent GPT writer, for 4Kn images and crafted headers --- */

static uint32_t t_crc32(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t c = 0xFFFFFFFFu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
	}
	return ~c;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xFF;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (v >> (8 * i)) & 0xFF;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (v >> (8 * i)) & 0xFF;
}

/* GPT GUIDs: the first three fields little-endian, the rest as written */
static void put_guid(uint8_t *p, const char *s)
{
	static const int order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
	uint8_t b[16];
	int k = 0;

	for (const char *c = s; *c && k < 16; c++) {
		unsigned v;
		if (*c == '-')
			continue;
		sscanf(c, "%2x", &v);
		b[k++] = (uint8_t) v;
		c++;
	}
	for (int i = 0; i < 16; i++)
		p[i] = b[order[i]];
}

struct t_entry {
	const char *type, *uuid, *name;
	uint64_t start_lba, size_lba, attrs;
	unsigned partno;
};

static int write_gpt(const char *file, uint32_t ss, uint64_t disk_sectors,
		     const struct t_entry *ents, size_t n)
{
	const uint32_t n_entries = 128, esize = 128;
	uint64_t esects = (n_entries * esize + ss - 1) / ss;
	uint64_t first = 2 + esects, last = disk_sectors - 2 - esects;
	uint8_t *arr = calloc(n_entries, esize), *sec = calloc(1, ss);
	int fd = fixture_open(file, O_RDWR | O_CREAT | O_TRUNC);

	if (fd < 0 || !arr || !sec || ftruncate(fd, (off_t) (disk_sectors * ss)) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = arr + (ents[i].partno - 1) * esize;
		put_guid(e, ents[i].type);
		put_guid(e + 16, ents[i].uuid);
		put64(e + 32, ents[i].start_lba);
		put64(e + 40, ents[i].start_lba + ents[i].size_lba - 1);
		put64(e + 48, ents[i].attrs);
		for (size_t k = 0; ents[i].name && ents[i].name[k]; k++)
			put16(e + 56 + 2 * k, (uint8_t) ents[i].name[k]);
	}
	/* protective MBR */
	sec[446 + 4] = 0xEE;
	put32(sec + 446 + 8, 1);
	put32(sec + 446 + 12,
	      disk_sectors - 1 > 0xFFFFFFFF ? 0xFFFFFFFF : (uint32_t) (disk_sectors - 1));
	sec[510] = 0x55;
	sec[511] = 0xAA;
	if (pwrite_all(fd, sec, ss, 0) < 0)
		return -1;
	for (int copy = 0; copy < 2; copy++) {
		uint64_t my = copy ? disk_sectors - 1 : 1, alt = copy ? 1 : disk_sectors - 1;
		uint64_t elba = copy ? disk_sectors - 1 - esects : 2;

		memset(sec, 0, ss);
		memcpy(sec, "EFI PART", 8);
		put32(sec + 8, 0x00010000);
		put32(sec + 12, 92);
		put64(sec + 24, my);
		put64(sec + 32, alt);
		put64(sec + 40, first);
		put64(sec + 48, last);
		put_guid(sec + 56, DISK_GUID);
		put64(sec + 72, elba);
		put32(sec + 80, n_entries);
		put32(sec + 84, esize);
		put32(sec + 88, t_crc32(arr, n_entries * esize));
		put32(sec + 16, t_crc32(sec, 92));
		if (pwrite_all(fd, sec, ss, my * ss) < 0 ||
		    pwrite_all(fd, arr, n_entries * esize, elba * ss) < 0)
			return -1;
	}
	free(arr);
	free(sec);
	close(fd);
	return 0;
}

static const struct t_entry t4k[] = {
	{ ESP_TYPE, UUID1, "EFI System", 256, 4096, 1, 1 },
	{ LINUX_TYPE, UUID4, "root", 4352, 8192, 0, 3 },
};

TEST(gpt_4kn_read)
{
	struct ptable *pt;

	ASSERT_OK(write_gpt("g4k.img", 4096, 16384, t4k, 2));
	pt = read_table("g4k.img", 4096);
	ASSERT_TRUE(pt);
	ASSERT_EQ_I64(pt->label, PTABLE_GPT);
	ASSERT_EQ_U64(pt->sector_bytes, 4096);
	ASSERT_EQ_U64(pt->first_usable_bytes, 6 * 4096);
	ASSERT_EQ_U64(pt->last_usable_bytes, (16384 - 5) * UINT64_C(4096));
	ASSERT_TRUE(!pt->gpt_primary_damaged && !pt->gpt_backup_damaged &&
		    !pt->gpt_backup_misplaced);
	ASSERT_EQ_U64(pt->n_entries, 2);
	ASSERT_EQ_U64(pt->entries[0].partno, 1);
	ASSERT_EQ_U64(pt->entries[0].start_bytes, 1 * MiB);
	ASSERT_EQ_U64(pt->entries[0].size_bytes, 16 * MiB);
	ASSERT_STREQ(pt->entries[0].name, "EFI System");
	ASSERT_EQ_U64(pt->entries[0].attrs, 1);
	ASSERT_EQ_U64(pt->entries[1].partno, 3);
	ASSERT_EQ_U64(pt->entries[1].start_bytes, 17 * MiB);
	ASSERT_EQ_U64(pt->entries[1].size_bytes, 32 * MiB);
	ASSERT_STREQ(pt->entries[1].uuid, UUID4);
	ptable_free(pt);

	/* read with the wrong sector size: a GPT is announced but not found */
	{
		struct ptable *bad = NULL;
		int fd = fixture_open("g4k.img", O_RDONLY);
		ASSERT_ERR(ptable_read(fd, 512, &bad), -EBADMSG);
		close(fd);
	}
}

TEST(gpt_render_512_to_4kn)
{
	struct ptable *pt, *back;
	struct ptable_region *v;
	size_t n;
	int mfd;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	pt = read_table("gpt.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_OK(ptable_render(pt, 128 * MiB, 4096, &mfd));
	ASSERT_OK(copy_regions(mfd, 4096, 128 * MiB, "r4k.img", &v, &n));
	ASSERT_EQ_U64(n, 5);
	ASSERT_EQ_U64(v[0].size_bytes, 4096); /* whole sectors */
	ASSERT_EQ_U64(v[1].offset_bytes, 4096);
	ASSERT_EQ_U64(v[1].size_bytes, 4096);
	ASSERT_EQ_U64(v[2].offset_bytes, 2 * 4096);
	ASSERT_EQ_U64(v[4].offset_bytes, 128 * MiB - 4096);
	free(v);
	close(mfd);
	back = read_table("r4k.img", 4096);
	ASSERT_TRUE(back);
	ASSERT_EQ_U64(back->sector_bytes, 4096);
	/* 34 * 512 rounds up to LBA 5, but the entry array needs LBA 2-5 */
	ASSERT_EQ_U64(back->first_usable_bytes, 6 * 4096);
	ASSERT_TRUE(!back->gpt_primary_damaged && !back->gpt_backup_damaged &&
		    !back->gpt_backup_misplaced);
	check_gpt_entries(back);
	ptable_free(back);
	ptable_free(pt);
}

TEST(gpt_4kn_render_roundtrip)
{
	struct ptable *pt, *back;
	struct ptable_region *v;
	size_t n;
	int mfd;

	ASSERT_OK(write_gpt("g4k.img", 4096, 16384, t4k, 2));
	pt = read_table("g4k.img", 4096);
	ASSERT_TRUE(pt);
	ASSERT_OK(ptable_render(pt, 96 * MiB, 4096, &mfd));
	ASSERT_OK(copy_regions(mfd, 4096, 96 * MiB, "r4k.img", &v, &n));
	free(v);
	close(mfd);
	back = read_table("r4k.img", 4096);
	ASSERT_TRUE(back);
	ASSERT_EQ_U64(back->n_entries, 2);
	for (size_t i = 0; i < 2; i++) {
		ASSERT_EQ_U64(back->entries[i].partno, pt->entries[i].partno);
		ASSERT_EQ_U64(back->entries[i].start_bytes, pt->entries[i].start_bytes);
		ASSERT_EQ_U64(back->entries[i].size_bytes, pt->entries[i].size_bytes);
		ASSERT_STREQ(back->entries[i].type, pt->entries[i].type);
		ASSERT_STREQ(back->entries[i].uuid, pt->entries[i].uuid);
		ASSERT_STREQ(back->entries[i].name, pt->entries[i].name);
		ASSERT_EQ_U64(back->entries[i].attrs, pt->entries[i].attrs);
	}
	ASSERT_EQ_U64(back->last_usable_bytes, 96 * MiB - 5 * 4096);
	ptable_free(back);
	ptable_free(pt);
}

TEST(gpt_hostile_entry_count)
{
	static const uint32_t sizes[][2] = {
		{ 0xFFFFFFFF, 0x80000000 }, /* 2^63 bytes */
		{ 1u << 24, 128 },          /* 2 GiB: libfdisk would allocate and read it */
	};
	struct ptable *pt = NULL;
	uint8_t hdr[512];
	int fd;

	for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
		/* a primary header with a valid CRC but a huge entry array */
		ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
		fd = fixture_open("gpt.img", O_RDWR);
		ASSERT_TRUE(fd >= 0);
		ASSERT_OK(pread_all(fd, hdr, sizeof(hdr), 512));
		put32(hdr + 80, sizes[i][0]);
		put32(hdr + 84, sizes[i][1]);
		put32(hdr + 16, 0);
		put32(hdr + 16, t_crc32(hdr, 92));
		ASSERT_OK(pwrite_all(fd, hdr, sizeof(hdr), 512));
		ASSERT_ERR(ptable_read(fd, 512, &pt), -EBADMSG);
		ASSERT_TRUE(pt == NULL);
		close(fd);
	}

	/* the same in the backup only */
	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	fd = fixture_open("gpt.img", O_RDWR);
	ASSERT_OK(pread_all(fd, hdr, sizeof(hdr), 64 * MiB - 512));
	put32(hdr + 80, 1u << 24);
	put32(hdr + 16, 0);
	put32(hdr + 16, t_crc32(hdr, 92));
	ASSERT_OK(pwrite_all(fd, hdr, sizeof(hdr), 64 * MiB - 512));
	ASSERT_ERR(ptable_read(fd, 512, &pt), -EBADMSG);
	close(fd);
}

TEST(entries_off_the_disk)
{
	struct ptable *pt = NULL;
	int fd;

	/* the disk shrank under its GPT: the last partition ends past it */
	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	ASSERT_OK(fixture_sh("dd if=gpt.img of=cut.img bs=1M count=56 status=none"));
	fd = fixture_open("cut.img", O_RDONLY);
	ASSERT_TRUE(fd >= 0);
	ASSERT_ERR(ptable_read(fd, 512, &pt), -EBADMSG);
	close(fd);

	/* overlapping GPT entries, with valid CRCs */
	{
		static const struct t_entry ov[] = {
			{ LINUX_TYPE, UUID1, "a", 2048, 4096, 0, 1 },
			{ LINUX_TYPE, UUID2, "b", 4096, 4096, 0, 2 },
		};
		ASSERT_OK(write_gpt("ov.img", 512, 32768, ov, 2));
	}
	fd = fixture_open("ov.img", O_RDONLY);
	ASSERT_ERR(ptable_read(fd, 512, &pt), -EBADMSG);
	close(fd);
	ASSERT_TRUE(pt == NULL);
}

TEST(dos_read_logical)
{
	struct ptable *pt;

	ASSERT_OK(make_image("dos.img", "64M", dos_script));
	pt = read_table("dos.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_EQ_I64(pt->label, PTABLE_DOS);
	ASSERT_STREQ(pt->disk_id, "0x1234abcd");
	ASSERT_EQ_U64(pt->first_usable_bytes, 0);
	ASSERT_EQ_U64(pt->n_entries, 5);
	ASSERT_EQ_U64(pt->entries[0].partno, 1);
	ASSERT_EQ_U64(pt->entries[0].start_bytes, 1 * MiB);
	ASSERT_EQ_U64(pt->entries[0].size_bytes, 8 * MiB);
	ASSERT_STREQ(pt->entries[0].type, "0x0c");
	ASSERT_STREQ(pt->entries[0].type_name, "W95 FAT32 (LBA)");
	ASSERT_STREQ(pt->entries[0].uuid, "1234abcd-01");
	ASSERT_TRUE(pt->entries[0].bootable);
	ASSERT_EQ_U64(pt->entries[0].attrs, 0x80);
	ASSERT_TRUE(pt->entries[0].name == NULL);
	ASSERT_STREQ(pt->entries[1].type, "0x83");
	ASSERT_TRUE(!pt->entries[1].bootable);
	ASSERT_EQ_U64(pt->entries[2].partno, 3);
	ASSERT_STREQ(pt->entries[2].type, "0x05");
	ASSERT_EQ_U64(pt->entries[2].size_bytes, 44 * MiB);
	ASSERT_EQ_U64(pt->entries[3].partno, 5);
	ASSERT_EQ_U64(pt->entries[3].start_bytes, 20 * MiB);
	ASSERT_STREQ(pt->entries[3].uuid, "1234abcd-05");
	ASSERT_EQ_U64(pt->entries[4].partno, 6);
	ASSERT_STREQ(pt->entries[4].type, "0x82");
	ASSERT_EQ_U64(pt->entries[4].size_bytes, 5 * MiB);
	ptable_free(pt);
}

TEST(dos_render_roundtrip)
{
	char a[256], b[256];
	struct ptable *pt;
	struct ptable_region *v;
	size_t n;
	int mfd;

	ASSERT_OK(make_image("dos.img", "64M", dos_script));
	pt = read_table("dos.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_OK(ptable_render(pt, 128 * MiB, 512, &mfd));
	ASSERT_OK(copy_regions(mfd, 512, 128 * MiB, "rdos.img", &v, &n));
	/* MBR and two EBRs, where sfdisk put them */
	ASSERT_EQ_U64(n, 3);
	ASSERT_EQ_U64(v[0].offset_bytes, 0);
	ASSERT_EQ_U64(v[1].offset_bytes, 38912 * 512);
	ASSERT_EQ_U64(v[2].offset_bytes, 61440 * 512);
	free(v);
	close(mfd);
	ptable_free(pt);
	/* the partition lines of the dumps are identical */
	ASSERT_OK(fixture_sh("sfdisk -d dos.img | grep '^dos.img' | sed 's/^dos.img/X/' >a.dump\n"
			     "sfdisk -d rdos.img | grep '^rdos.img' |"
			     " sed 's/^rdos.img/X/' >b.dump\n"
			     "cmp a.dump b.dump\n"
			     "sfdisk -d rdos.img | grep -q 'label-id: 0x1234abcd'\n"
			     "sfdisk --verify rdos.img | grep -q 'No errors detected'"));
	ASSERT_OK(fixture_sh_out(a, sizeof(a), "wc -l <a.dump"));
	ASSERT_OK(fixture_sh_out(b, sizeof(b), "grep -c bootable a.dump"));
	ASSERT_STREQ(a, "5");
	ASSERT_STREQ(b, "1");
	/* the EBRs are byte-identical too */
	ASSERT_OK(fixture_sh("cmp dos.img rdos.img -n $((64 * 1024 * 1024))"));
}

TEST(dos_render_old_layout)
{
	struct ptable *pt, *back;
	struct ptable_region *v;
	size_t n;
	int mfd;

	/* cylinder-aligned layout from old tools: starts at sector 63 */
	ASSERT_OK(make_image("d63.img", "64M",
			     "label: dos\nlabel-id: 0x0badcafe\n"
			     "d63.img1 : start=63, size=16002, type=83\n"
			     "d63.img2 : start=16065, size=16065, type=5\n"
			     "d63.img5 : start=16128, size=8000, type=83\n"
			     "d63.img6 : start=24192, size=7000, type=83\n"));
	pt = read_table("d63.img", 512);
	ASSERT_TRUE(pt);
	ASSERT_EQ_U64(pt->entries[0].start_bytes, 63 * 512);
	ASSERT_OK(ptable_render(pt, 64 * MiB, 512, &mfd));
	ASSERT_OK(copy_regions(mfd, 512, 64 * MiB, "r63.img", &v, &n));
	free(v);
	close(mfd);
	back = read_table("r63.img", 512);
	ASSERT_TRUE(back);
	ASSERT_EQ_U64(back->n_entries, 4);
	for (size_t i = 0; i < 4; i++) {
		ASSERT_EQ_U64(back->entries[i].partno, pt->entries[i].partno);
		ASSERT_EQ_U64(back->entries[i].start_bytes, pt->entries[i].start_bytes);
		ASSERT_EQ_U64(back->entries[i].size_bytes, pt->entries[i].size_bytes);
		ASSERT_STREQ(back->entries[i].type, pt->entries[i].type);
	}
	ptable_free(back);
	ptable_free(pt);
	ASSERT_OK(fixture_sh("sfdisk --verify r63.img | grep -q 'No errors detected'"));
}

TEST(dos_render_rejects_sparse_logicals)
{
	struct ptable *pt;
	int mfd = -1;

	ASSERT_OK(make_image("dos.img", "64M", dos_script));
	pt = read_table("dos.img", 512);
	ASSERT_TRUE(pt);
	pt->entries[4].partno = 7; /* 5, 7: logical partitions are chained densely */
	ASSERT_ERR(ptable_render(pt, 64 * MiB, 512, &mfd), -EINVAL);
	ASSERT_EQ_I64(mfd, -1);
	ptable_free(pt);
}

TEST(none_and_garbage)
{
	static const char *const images[] = { "blank.img", "fat.img", "rnd.img", "tiny.img",
					      "ext4.img" };
	ASSERT_OK(fixture_sh("rm -f blank.img fat.img rnd.img tiny.img ext4.img\n"
			     "truncate -s 10M blank.img\n"
			     "mkfs.fat -C fat.img 65536\n"
			     "head -c 1048576 /dev/urandom >rnd.img\n"
			     "truncate -s 100 tiny.img\n"
			     "truncate -s 16M ext4.img && mkfs.ext4 -q ext4.img"));
	for (size_t i = 0; i < ELEMENTSOF(images); i++) {
		struct ptable *pt = read_table(images[i], 512);
		if (!pt)
			UNIT_FAIL("%s unreadable", images[i]);
		ASSERT_EQ_I64(pt->label, PTABLE_NONE);
		ASSERT_EQ_U64(pt->n_entries, 0);
		ASSERT_TRUE(pt->disk_id == NULL);
		ptable_free(pt);
	}
}

TEST(render_none_and_bad_args)
{
	struct ptable none = { .label = PTABLE_NONE };
	int mfd = -1;

	ASSERT_OK(ptable_render(&none, 8 * MiB, 512, &mfd));
	ASSERT_EQ_I64(lseek(mfd, 0, SEEK_DATA), -1); /* nothing written */
	close(mfd);
	mfd = -1;
	ASSERT_ERR(ptable_render(&none, 8 * MiB, 1000, &mfd), -EINVAL);
	ASSERT_ERR(ptable_render(NULL, 8 * MiB, 512, &mfd), -EINVAL);
	ASSERT_EQ_I64(mfd, -1);
}

/* Mutates single bytes of a real GPT header and entry array: never a crash. */
TEST(gpt_fuzz_bytes)
{
	uint8_t orig[3 * 512];
	int fd;

	ASSERT_OK(make_image("gpt.img", "64M", gpt_script));
	fd = fixture_open("gpt.img", O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(pread_all(fd, orig, sizeof(orig), 0));
	srand(42);
	for (int i = 0; i < 300; i++) {
		uint8_t mut[sizeof(orig)];
		struct ptable *pt = NULL;
		int r;

		memcpy(mut, orig, sizeof(mut));
		for (int k = 0; k < 4; k++)
			mut[rand() % sizeof(mut)] = (uint8_t) rand();
		ASSERT_OK(pwrite_all(fd, mut, sizeof(mut), 0));
		r = ptable_read(fd, 512, &pt);
		ASSERT_TRUE(r == 0 || r == -EBADMSG || r == -EOPNOTSUPP);
		ptable_free(pt);
	}
	close(fd);
}
