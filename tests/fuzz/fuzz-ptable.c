/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ptable_read() (libfdisk plus our own GPT header checks) on a hostile disk.
 * The input is small; the disk it describes may be large and sparse:
 *
 *   byte 0      bit 0: 4096-byte logical sectors (else 512)
 *   bytes 1-4   zero sectors between head and tail
 *   bytes 5-6   tail length: the payload's last bytes go at the disk's end
 *               (the backup GPT lives there)
 *   rest        payload: head at byte 0, then the tail
 *
 * A table that reads must also give its regions, survive ptable_dup(), and,
 * when libfdisk can render it onto the same disk size, read back the same.
 */
#include "fuzz.h"
#include "imager/ptable.h"

DEFINE_CLEANUP(struct ptable *, ptable_free)

static void same_table(const struct ptable *a, const struct ptable *b)
{
	FUZZ_CHECK(a->label == b->label);
	FUZZ_CHECK(a->n_entries == b->n_entries);
	for (size_t i = 0; i < a->n_entries; i++) {
		FUZZ_CHECK(a->entries[i].partno == b->entries[i].partno);
		FUZZ_CHECK(a->entries[i].start_bytes == b->entries[i].start_bytes);
		FUZZ_CHECK(a->entries[i].size_bytes == b->entries[i].size_bytes);
	}
}

static void check(const struct ptable *pt, int fd, uint32_t ss, uint64_t disk_bytes)
{
	_cleanup_(ptable_freep) struct ptable *copy = NULL, *back = NULL;
	_cleanup_free_ struct ptable_region *regions = NULL;
	_cleanup_close_ int rfd = -EBADF;
	size_t n = 0;
	int r;

	FUZZ_CHECK(pt->label >= 0 && pt->label < _PTABLE_LABEL_MAX);
	for (size_t i = 0; i < pt->n_entries; i++) {
		const struct ptable_entry *e = &pt->entries[i];

		FUZZ_CHECK(e->size_bytes > 0 && e->start_bytes <= disk_bytes &&
			   e->size_bytes <= disk_bytes - e->start_bytes);
		FUZZ_CHECK(i == 0 || e->start_bytes >= pt->entries[i - 1].start_bytes);
	}
	r = ptable_regions(fd, ss, &regions, &n);
	if (r == 0)
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(regions[i].size_bytes > 0 &&
				   regions[i].offset_bytes % ss == 0 && regions[i].size_bytes % ss == 0);

	if (ptable_dup(pt, &copy) < 0)
		return;
	same_table(pt, copy);

	if (ptable_render(copy, disk_bytes, ss, &rfd) < 0)
		return;
	FUZZ_CHECK(ptable_read(rfd, ss, &back) == 0);
	same_table(pt, back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	_cleanup_(ptable_freep) struct ptable *pt = NULL;
	_cleanup_close_ int fd = -EBADF;
	uint32_t ss = (fuzz_take(&in, 1) & 1) ? 4096 : 512;
	uint64_t gap = fuzz_take(&in, 4) * ss;
	size_t tail = (size_t) MIN(fuzz_take(&in, 2), (uint64_t) in.n);
	uint64_t disk_bytes = ALIGN_UP((uint64_t) in.n + gap, (uint64_t) ss);

	fd = fuzz_memfd(in.p, in.n - tail, in.p + in.n - tail, tail, disk_bytes);
	if (fd < 0)
		return 0;
	if (ptable_read(fd, ss, &pt) == 0)
		check(pt, fd, ss, disk_bytes);
	return 0;
}
