/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "imager/extents.h"
#include "util/cleanup.h"

int extent_list_add(struct extent_list *l, uint64_t offset_bytes, uint64_t size_bytes)
{
	if (size_bytes == 0)
		return 0;
	if (offset_bytes > UINT64_MAX - size_bytes)
		return -EOVERFLOW;
	if (l->n > 0) {
		struct manifest_extent *last = &l->e[l->n - 1];
		if (offset_bytes >= last->offset_bytes &&
		    offset_bytes <= last->offset_bytes + last->size_bytes) {
			uint64_t end = MAX(last->offset_bytes + last->size_bytes,
					   offset_bytes + size_bytes);
			last->size_bytes = end - last->offset_bytes;
			return 0;
		}
	}
	if (l->n == l->allocated) {
		size_t a = l->allocated ? l->allocated * 2 : 256;
		struct manifest_extent *e = reallocarray(l->e, a, sizeof(*e));
		if (!e)
			return -ENOMEM;
		l->e = e, l->allocated = a;
	}
	l->e[l->n++] = (struct manifest_extent){ offset_bytes, size_bytes };
	return 0;
}

static int extent_cmp(const void *a, const void *b)
{
	const struct manifest_extent *x = a, *y = b;

	return x->offset_bytes < y->offset_bytes ? -1 : x->offset_bytes > y->offset_bytes;
}

void extent_list_normalize(struct extent_list *l)
{
	size_t out = 0;

	if (l->n == 0)
		return;
	qsort(l->e, l->n, sizeof(*l->e), extent_cmp);
	for (size_t i = 1; i < l->n; i++) {
		struct manifest_extent *last = &l->e[out];
		uint64_t last_end = last->offset_bytes + last->size_bytes;
		if (l->e[i].offset_bytes <= last_end) {
			uint64_t end = MAX(last_end, l->e[i].offset_bytes + l->e[i].size_bytes);
			last->size_bytes = end - last->offset_bytes;
		} else
			l->e[++out] = l->e[i];
	}
	l->n = out + 1;
}

uint64_t extent_list_bytes(const struct extent_list *l)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < l->n; i++)
		sum += l->e[i].size_bytes;
	return sum;
}

void extent_list_done(struct extent_list *l)
{
	free(l->e);
	*l = (struct extent_list){};
}

void chunk_walk_init(struct chunk_walk *w, const struct manifest_extent *e, size_t n,
		     uint64_t disk_size_bytes)
{
	*w = (struct chunk_walk){ .e = e, .n = n, .disk_size_bytes = disk_size_bytes };
}

int chunk_walk_next(struct chunk_walk *w, uint64_t *ret_offset, uint32_t *ret_size,
		    size_t *ret_first_extent)
{
	uint64_t pos;

	/* skip extents that end before the next position */
	while (w->i < w->n && w->e[w->i].offset_bytes + w->e[w->i].size_bytes <= w->next_offset)
		w->i++;
	if (w->i >= w->n || w->next_offset >= w->disk_size_bytes)
		return 0;
	pos = MAX(w->next_offset, ALIGN_DOWN(w->e[w->i].offset_bytes, (uint64_t) CHUNK_SIZE_BYTES));
	if (pos >= w->disk_size_bytes)
		return 0;
	*ret_offset = pos;
	*ret_size = (uint32_t) MIN((uint64_t) CHUNK_SIZE_BYTES, w->disk_size_bytes - pos);
	*ret_first_extent = w->i;
	w->next_offset = pos + CHUNK_SIZE_BYTES;
	return 1;
}

int extents_for_each_in_range(const struct manifest_extent *e, size_t n, size_t first,
			      uint64_t offset_bytes, uint64_t size_bytes,
			      int (*cb)(uint64_t offset_bytes, uint64_t size_bytes, void *userdata),
			      void *userdata)
{
	uint64_t end = offset_bytes + size_bytes;

	for (size_t i = first; i < n && e[i].offset_bytes < end; i++) {
		uint64_t a = MAX(e[i].offset_bytes, offset_bytes);
		uint64_t b = MIN(e[i].offset_bytes + e[i].size_bytes, end);
		int r;

		if (a >= b)
			continue;
		r = cb(a, b - a, userdata);
		if (r < 0)
			return r;
	}
	return 0;
}

struct zero_holes_ctx {
	uint8_t *buf;
	uint64_t base, pos;
};

static int zero_hole_before(uint64_t offset_bytes, uint64_t size_bytes, void *userdata)
{
	struct zero_holes_ctx *z = userdata;

	memset(z->buf + (z->pos - z->base), 0, offset_bytes - z->pos);
	z->pos = offset_bytes + size_bytes;
	return 0;
}

void extents_zero_holes(const struct manifest_extent *e, size_t n, size_t first,
			uint64_t offset_bytes, uint64_t size_bytes, uint8_t *buf)
{
	struct zero_holes_ctx z = { .buf = buf, .base = offset_bytes, .pos = offset_bytes };

	(void) extents_for_each_in_range(e, n, first, offset_bytes, size_bytes, zero_hole_before,
					 &z);
	memset(buf + (z.pos - offset_bytes), 0, offset_bytes + size_bytes - z.pos);
}
