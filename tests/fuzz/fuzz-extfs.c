/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The ext2/3/4 adapter (libext2fs underneath) on a hostile file system:
 *
 *   bytes 0-1   region size in 64 KiB units (0: the payload's size), at
 *               most 64 MiB: the rest reads as zeros
 *   rest        payload: the file system's first bytes
 *
 * Extents must be increasing, merged and inside the region; the figures
 * of extfs_get_info() must be consistent.
 */
#include "fuzz.h"
#include "imager/extfs.h"

DEFINE_CLEANUP(struct extfs *, extfs_free)

#define REGION_UNIT_BYTES (UINT64_C(64) << 10)
#define REGION_BYTES_MAX (UINT64_C(64) << 20)

struct walk {
	uint64_t region_bytes, end;
	unsigned n;
};

static int extent_cb(uint64_t offset_bytes, uint64_t size_bytes, void *userdata)
{
	struct walk *w = userdata;

	FUZZ_CHECK(size_bytes > 0);
	FUZZ_CHECK(w->n == 0 || offset_bytes > w->end);
	FUZZ_CHECK(offset_bytes <= w->region_bytes && size_bytes <= w->region_bytes - offset_bytes);
	w->end = offset_bytes + size_bytes;
	w->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	_cleanup_(extfs_freep) struct extfs *fs = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint64_t region = fuzz_take(&in, 2) * REGION_UNIT_BYTES;
	struct extfs_info info;
	struct walk w = {};

	region = MIN(MAX(region, (uint64_t) in.n), REGION_BYTES_MAX);
	if (in.n > region)
		return 0;
	fd = fuzz_memfd(in.p, in.n, NULL, 0, region);
	if (fd < 0)
		return 0;
	if (extfs_open(fd, 0, region, &fs) < 0)
		return 0;

	if (extfs_get_info(fs, &info) == 0) {
		FUZZ_CHECK(info.size_bytes <= region);
		FUZZ_CHECK(info.used_bytes <= info.size_bytes);
		FUZZ_CHECK(info.free_bytes == info.size_bytes - info.used_bytes);
		FUZZ_CHECK(info.min_size_bytes <= info.size_bytes);
		FUZZ_CHECK(memchr(info.label, 0, sizeof(info.label)));
	}
	w.region_bytes = region;
	(void) extfs_for_each_used_extent(fs, extent_cb, &w);
	return 0;
}
