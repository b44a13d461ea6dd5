/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <blkid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "imager/wipe.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"

DEFINE_CLEANUP(blkid_probe, blkid_free_probe)

bool extents_cover(const struct manifest_extent *e, size_t n, uint64_t offset_bytes,
		   uint64_t size_bytes)
{
	size_t lo = 0, hi = n;

	/* the last extent starting at or before offset */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (e[mid].offset_bytes <= offset_bytes)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	return offset_bytes + size_bytes <= e[lo - 1].offset_bytes + e[lo - 1].size_bytes;
}

int wipe_stale_signatures(int fd, uint64_t offset_bytes, uint64_t size_bytes,
			  const struct manifest_extent *keep, size_t n_keep)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = NULL;
	int wiped = 0;

	pr = blkid_new_probe();
	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, (blkid_loff_t) offset_bytes, (blkid_loff_t) size_bytes) < 0)
		return -EIO;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_TYPE |
						      BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 0);

	/* each blkid_do_probe() call returns the next signature (as wipefs walks them) */
	for (int i = 0; i < 64; i++) {
		const char *off_s = NULL, *type = NULL;
		size_t magic_len = 0;
		uint64_t magic_off;
		char *end;
		int r;

		r = blkid_do_probe(pr);
		if (r != 0)
			break;
		if (blkid_probe_lookup_value(pr, "SBMAGIC_OFFSET", &off_s, NULL) < 0 ||
		    blkid_probe_lookup_value(pr, "SBMAGIC", NULL, &magic_len) < 0)
			continue;
		(void) blkid_probe_lookup_value(pr, "TYPE", &type, NULL);
		errno = 0;
		magic_off = strtoull(off_s, &end, 10);
		if (errno || *end || magic_len == 0 || magic_len > 64 || magic_off >= size_bytes)
			continue;
		if (extents_cover(keep, n_keep, offset_bytes + magic_off, magic_len))
			continue;
		log_debug("Wiping stale %s signature at byte %llu", type ? type : "unknown",
			  (unsigned long long) (offset_bytes + magic_off));
		{
			uint8_t zero[64] = {};
			r = pwrite_all(fd, zero, magic_len, offset_bytes + magic_off);
			if (r < 0)
				return r;
		}
		wiped++;
	}
	return wiped;
}
