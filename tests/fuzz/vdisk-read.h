/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Reads a hostile virtual disk at a spread of offsets: the start, the end,
 * and points in between (reading all of it could mean terabytes). Each
 * read must succeed or fail cleanly, and a read repeated must give the same
 * bytes (nothing uninitialised, no state corrupted between reads).
 */
#include "fuzz.h"
#include "imager/vdisk.h"

#define VDISK_READ_BYTES 4096u
#define VDISK_READ_POINTS 16u

static inline void vdisk_read_spread(struct vdisk *v)
{
	uint8_t a[VDISK_READ_BYTES], b[VDISK_READ_BYTES];
	uint64_t size = v->size_bytes;

	for (unsigned i = 0; i <= VDISK_READ_POINTS; i++) {
		uint64_t off = i == VDISK_READ_POINTS ? size - MIN(size, (uint64_t) VDISK_READ_BYTES)
						      : ALIGN_DOWN(size / VDISK_READ_POINTS * i, 512);
		size_t n = (size_t) MIN((uint64_t) VDISK_READ_BYTES, size - off);

		if (n == 0 || vdisk_pread(v, a, n, off) < 0)
			continue;
		if (vdisk_pread(v, b, n, off) == 0)
			FUZZ_CHECK(memcmp(a, b, n) == 0);
	}
}
