/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * chunk_decode() on hostile chunk files, with the buffer size the header
 * claims (bounded by CHUNK_SIZE_BYTES, as the store bounds it by the
 * manifest). If the bytes decode to something, decoding again against
 * their real ID must succeed and give the same bytes. The input is also
 * encoded as chunk data, which must decode back to itself.
 */
#include "fuzz.h"
#include "imager/chunk.h"

#define UNCOMPRESSED_SIZE_OFFSET 24 /* docs/FORMAT.md, "Chunk files" */
/*
 * Larger claimed sizes take the same paths (the size is only compared and
 * passed on) but cost a 4 MiB zeroing and hashing per input: keep the
 * fuzzer fast by treating them as a size mismatch.
 */
#define FUZZ_CHUNK_BYTES_MAX (UINT32_C(256) << 10)

static void decode(const uint8_t *data, size_t size)
{
	_cleanup_free_ uint8_t *buf = NULL, *again = NULL;
	struct chunk_id zero = {}, id;
	uint32_t usize;

	if (size < CHUNK_FILE_HEADER_BYTES)
		usize = 1;
	else {
		memcpy(&usize, data + UNCOMPRESSED_SIZE_OFFSET, sizeof(usize));
		usize = le32toh(usize);
	}
	if (usize == 0 || usize > MIN(CHUNK_SIZE_BYTES, FUZZ_CHUNK_BYTES_MAX))
		usize = 1; /* the store never asks for more than a chunk */
	buf = calloc(1, usize);
	again = calloc(1, usize);
	if (!buf || !again)
		return;

	/* a hash mismatch is the normal outcome here: any other path must not crash */
	(void) chunk_decode(data, size, &zero, buf, usize);
	chunk_id_compute(buf, usize, &id);
	if (chunk_decode(data, size, &id, again, usize) == 0)
		FUZZ_CHECK(memcmp(buf, again, usize) == 0);
}

static void encode(const uint8_t *data, size_t size)
{
	_cleanup_free_ void *file = NULL;
	_cleanup_free_ uint8_t *out = NULL;
	struct chunk_id id;
	size_t n = 0;

	if (size == 0 || size > CHUNK_SIZE_BYTES)
		return;
	FUZZ_CHECK(chunk_encode(data, size, 0, &file, &n) == 0);
	FUZZ_CHECK(n >= CHUNK_FILE_HEADER_BYTES && n <= CHUNK_FILE_BYTES_MAX);
	out = malloc(size);
	if (!out)
		return;
	chunk_id_compute(data, size, &id);
	FUZZ_CHECK(chunk_decode(file, n, &id, out, size) == 0);
	FUZZ_CHECK(memcmp(out, data, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode(data, size);
	encode(data, size);
	return 0;
}
