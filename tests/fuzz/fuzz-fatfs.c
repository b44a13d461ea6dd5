/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FAT reader on a hostile volume:
 *
 *   bytes 0-1   region size in 64 KiB units (0: the payload's size), at
 *               most 64 MiB: the rest of the region reads as zeros
 *   rest        payload: the volume's first bytes
 *
 * Every call must return cleanly; the used extents must be increasing,
 * merged and inside the region.
 */
#include "fuzz.h"
#include "imager/fatfs.h"

DEFINE_CLEANUP(struct fatfs *, fatfs_free)

#define REGION_UNIT_BYTES (UINT64_C(64) << 10)
#define REGION_BYTES_MAX (UINT64_C(64) << 20)

static const char *const paths[] = {
	"/EFI/BOOT/BOOTX64.EFI",
	"/efi/boot/grubx64.efi",
	"/boot/grub/grub.cfg",
	"/a/b/c/d/e/f/g/h",
	"/LONGFILENAME-with.several.dots.txt",
	"/\xc3\xa9t\xc3\xa9/\xf0\x9f\x92\xbe",
	"/",
	"//x//",
};

struct walk {
	uint64_t region_bytes, end;
	unsigned n;
};

static int extent_cb(uint64_t offset_bytes, uint64_t size_bytes, void *userdata)
{
	struct walk *w = userdata;

	FUZZ_CHECK(size_bytes > 0);
	FUZZ_CHECK(w->n == 0 || offset_bytes > w->end); /* increasing and merged */
	FUZZ_CHECK(offset_bytes <= w->region_bytes && size_bytes <= w->region_bytes - offset_bytes);
	w->end = offset_bytes + size_bytes;
	w->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	_cleanup_(fatfs_freep) struct fatfs *fs = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint64_t region = fuzz_take(&in, 2) * REGION_UNIT_BYTES;
	struct fatfs_info info;
	struct walk w = {};

	region = MIN(MAX(region, (uint64_t) in.n), REGION_BYTES_MAX);
	if (in.n > region)
		return 0;
	fd = fuzz_memfd(in.p, in.n, NULL, 0, region);
	if (fd < 0)
		return 0;
	if (fatfs_open(fd, 0, region, &fs) < 0)
		return 0;

	if (fatfs_get_info(fs, &info) == 0) {
		FUZZ_CHECK(info.fat_bits == 12 || info.fat_bits == 16 || info.fat_bits == 32);
		FUZZ_CHECK(info.size_bytes <= region);
		FUZZ_CHECK(info.free_bytes <= info.size_bytes);
		FUZZ_CHECK(memchr(info.label, 0, sizeof(info.label)));
	}
	w.region_bytes = region;
	(void) fatfs_for_each_used_extent(fs, extent_cb, &w);
	for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
		int r = fatfs_path_exists(fs, paths[i]);
		FUZZ_CHECK(r == 0 || r == 1 || r < 0);
	}
	return 0;
}
