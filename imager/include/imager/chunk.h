/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Chunks: fixed-size aligned regions of a disk's byte address space, named
 * by the SHA-256 of their uncompressed bytes and stored as zstd frames inside
 * a small self-describing chunk file (docs/FORMAT.md, "Chunk files").
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK_SIZE_BYTES (UINT32_C(4) << 20) /* docs/FORMAT.md explains the choice */
/* log2(CHUNK_SIZE_BYTES): the zstd window of a chunk */
#define CHUNK_WINDOW_LOG 22
/* zstd hash table of a chunk's compression (chunk.c says why) */
#define CHUNK_HASH_LOG 18
#define CHUNK_ID_BYTES 32

struct chunk_id {
	uint8_t bytes[CHUNK_ID_BYTES];
};

void chunk_id_compute(const void *data, size_t size, struct chunk_id *ret);
bool chunk_id_equal(const struct chunk_id *a, const struct chunk_id *b);
/* 64 lower-case hex digits + NUL */
#define CHUNK_ID_STRING_MAX (2 * CHUNK_ID_BYTES + 1)
char *chunk_id_to_string(const struct chunk_id *id, char buf[static CHUNK_ID_STRING_MAX]);
int chunk_id_from_string(const char *s, struct chunk_id *ret);
/* True if all @size bytes are zero (fast, word-wise). */
bool memeqzero(const void *data, size_t size);
/*
 * True if @id is the ID of @size zero bytes. Manifests never list all-zero
 * chunks, and the store never writes a file for one (docs/FORMAT.md).
 */
bool chunk_id_is_zero(const struct chunk_id *id, size_t size);

/* Chunk files: a 64-byte header plus the payload (docs/FORMAT.md, "Chunk files"). */
#define CHUNK_FILE_HEADER_BYTES 64
/* No valid chunk file is larger: header + payload of at most CHUNK_SIZE_BYTES (stored raw) */
#define CHUNK_FILE_BYTES_MAX (CHUNK_FILE_HEADER_BYTES + CHUNK_SIZE_BYTES)
#define CHUNK_LEVEL_DEFAULT 3

/*
 * Encodes @size bytes (1..CHUNK_SIZE_BYTES) into a chunk file image (header +
 * zstd frame, or the raw bytes if zstd does not make them smaller) in a newly
 * allocated, 4096-aligned buffer (for O_DIRECT writes; free() it). @level is the zstd level (CHUNK_LEVEL_DEFAULT; 0 means
 * the default). Uses one zstd context per thread, so concurrent calls from
 * several threads are cheap and safe.
 */
int chunk_encode(const void *data, size_t size, int level, void **ret, size_t *ret_size);
/*
 * Decodes a chunk file image into @buf of @buf_size bytes (which must equal
 * the recorded uncompressed size), and checks the SHA-256 against @expected.
 * -EBADMSG on any inconsistency (bad magic, size, frame, or hash);
 * -EPROTONOSUPPORT for a newer format version or a feature this reader lacks
 * (e.g. an encrypted chunk). @buf's contents are undefined on failure.
 */
int chunk_decode(const void *file, size_t file_size, const struct chunk_id *expected, void *buf,
		 size_t buf_size);

struct crypt_keys;
/*
 * The same in an encrypted store (docs/FORMAT.md, "Encryption"): the
 * payload (zstd frame or raw bytes) is encrypted with AES-256-GCM under
 * @keys->chunk_key and a random nonce; the header and @id (the chunk's keyed
 * ID) are authenticated with it, so a chunk file cannot be altered or put in
 * another chunk's place. chunk_decode_sealed() authenticates before it
 * decompresses (-EBADMSG: "authentication failed"), then checks the keyed ID
 * of the result against @expected, and refuses an unencrypted chunk file.
 * It decrypts in place: @file's contents are undefined afterwards. With
 * @keys NULL both are chunk_encode() and chunk_decode().
 */
int chunk_encode_sealed(const void *data, size_t size, int level, const struct crypt_keys *keys,
			const struct chunk_id *id, void **ret, size_t *ret_size);
int chunk_decode_sealed(void *file, size_t file_size, const struct crypt_keys *keys,
			const struct chunk_id *expected, void *buf, size_t buf_size);
/*
 * The authentication of chunk_decode_sealed() alone, for a chunk of @size
 * uncompressed bytes: every header check, then AES-256-GCM over the header,
 * @expected and the payload; no decompression, no ID. Cheap (AES-NI), so a
 * flash can check every chunk before it writes anything. Decrypts in place.
 * 0, -EBADMSG (damaged, altered, or another chunk's file), -EINVAL without
 * @keys (a plain chunk file has no authentication).
 */
int chunk_authenticate_sealed(void *file, size_t file_size, const struct crypt_keys *keys,
			      const struct chunk_id *expected, size_t size);
