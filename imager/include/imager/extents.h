/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Extent lists (sorted runs of bytes that hold data) and the walk over the
 * aligned chunk positions they touch, shared by capture, flash and verify.
 */

#include <stddef.h>
#include <stdint.h>

#include "imager/manifest.h"

struct extent_list {
	struct manifest_extent *e;
	size_t n, allocated;
};

/* Appends [offset, offset + size); adjacent or overlapping appends in order are merged. */
int extent_list_add(struct extent_list *l, uint64_t offset_bytes, uint64_t size_bytes);
/* Sorts and merges; call after out-of-order adds. */
void extent_list_normalize(struct extent_list *l);
uint64_t extent_list_bytes(const struct extent_list *l);
void extent_list_done(struct extent_list *l);

/* Walks the chunk-aligned positions that intersect a sorted extent array. */
struct chunk_walk {
	const struct manifest_extent *e;
	size_t n;
	size_t i;               /* first extent that may intersect the next position */
	uint64_t disk_size_bytes;
	uint64_t next_offset;   /* next aligned position to consider */
};

void chunk_walk_init(struct chunk_walk *w, const struct manifest_extent *e, size_t n,
		     uint64_t disk_size_bytes);
/*
 * Yields the next chunk position touching an extent: its aligned offset and
 * size (short at the disk's end) and the index of the first extent that
 * intersects it. 1 = yielded, 0 = done.
 */
int chunk_walk_next(struct chunk_walk *w, uint64_t *ret_offset, uint32_t *ret_size,
		    size_t *ret_first_extent);

/*
 * Calls @cb for each piece of the extents (starting at index @first) that
 * lies in [offset, offset + size), with the piece's absolute offset and size.
 */
int extents_for_each_in_range(const struct manifest_extent *e, size_t n, size_t first,
			      uint64_t offset_bytes, uint64_t size_bytes,
			      int (*cb)(uint64_t offset_bytes, uint64_t size_bytes, void *userdata),
			      void *userdata);
/*
 * Zeroes the bytes of @buf, which holds [offset, offset + size), that no
 * extent covers: reading a mostly used chunk position whole and then zeroing
 * its holes takes one large request instead of one per piece.
 */
void extents_zero_holes(const struct manifest_extent *e, size_t n, size_t first,
			uint64_t offset_bytes, uint64_t size_bytes, uint8_t *buf);
