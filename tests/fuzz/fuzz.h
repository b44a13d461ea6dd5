/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Helpers shared by the libFuzzer targets in tests/fuzz/ (README.md there).
 * Each target is one fuzz-<parser>.c defining LLVMFuzzerTestOneInput(); it
 * must not leak, must free everything on every path, and reports a broken
 * invariant with FUZZ_CHECK(), which aborts so that libFuzzer records the
 * input as a crash.
 */

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util/cleanup.h"
#include "util/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__,      \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* The input as a stream of parameters followed by a payload. */
struct fuzz_input {
	const uint8_t *p;
	size_t n;
};

/* Takes @bytes (1..8) little-endian bytes from the front; missing bytes read as 0. */
static inline uint64_t fuzz_take(struct fuzz_input *in, size_t bytes)
{
	uint64_t v = 0;

	for (size_t i = 0; i < bytes; i++) {
		if (in->n == 0)
			break;
		v |= (uint64_t) in->p[0] << (8 * i);
		in->p++, in->n--;
	}
	return v;
}

/*
 * A memfd of @size_bytes (sparse: zeros where nothing is written) holding
 * @head at offset 0 and @tail ending at the last byte. Returns the fd or
 * -errno. @size_bytes must be at least @head_n + @tail_n.
 */
static inline int fuzz_memfd(const void *head, size_t head_n, const void *tail, size_t tail_n,
			     uint64_t size_bytes)
{
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (size_bytes < (uint64_t) head_n + tail_n)
		return -EINVAL;
	fd = memfd_create("fuzz-disk", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t) size_bytes) < 0)
		return -errno;
	if (head_n > 0) {
		r = pwrite_all(fd, head, head_n, 0);
		if (r < 0)
			return r;
	}
	if (tail_n > 0) {
		r = pwrite_all(fd, tail, tail_n, size_bytes - tail_n);
		if (r < 0)
			return r;
	}
	return TAKE_FD(fd);
}

/*
 * For files that carry the SHA-256 of themselves (with that field zeroed) at
 * @checksum_offset (manifests, deprecation records): @try_decode sees the
 * input as given, where the checksum must match as in a store, then, if it
 * holds at least @header_bytes, a copy with the checksum recomputed, so that
 * mutations reach the parser behind the checksum.
 */
static inline void fuzz_decode_resealed(const uint8_t *data, size_t size, size_t header_bytes,
					size_t checksum_offset,
					void (*try_decode)(const uint8_t *data, size_t size))
{
	_cleanup_free_ uint8_t *copy = NULL;
	unsigned len = 0;

	try_decode(data, size);
	if (size < header_bytes || size < checksum_offset + 32)
		return;
	copy = malloc(size);
	if (!copy)
		return;
	memcpy(copy, data, size);
	memset(copy + checksum_offset, 0, 32);
	if (EVP_Digest(copy, size, copy + checksum_offset, &len, EVP_sha256(), NULL) != 1)
		abort();
	try_decode(copy, size);
}
