/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <pthread.h>

#include "unit.h"
#include "imager/chunk.h"

/* deterministic filler: compressible (text-like) or not (xorshift) */
static void fill(uint8_t *p, size_t n, uint64_t seed, bool compressible)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = compressible ? (uint8_t) ("imager chunk "[i % 13] + (x % 64 == 0)) : (uint8_t) x;
	}
}

TEST(chunk_id_sha256_vector)
{
	struct chunk_id id, back;
	char s[CHUNK_ID_STRING_MAX];

	/* FIPS 180-2 test vector */
	chunk_id_compute("abc", 3, &id);
	ASSERT_STREQ(chunk_id_to_string(&id, s),
		     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ASSERT_OK(chunk_id_from_string(s, &back));
	ASSERT_TRUE(chunk_id_equal(&id, &back));
	ASSERT_ERR(chunk_id_from_string("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
					&back),
		   -EINVAL);
	ASSERT_ERR(chunk_id_from_string("ba78", &back), -EINVAL);
	ASSERT_ERR(chunk_id_from_string(
			   "zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &back),
		   -EINVAL);
	back.bytes[31] ^= 1;
	ASSERT_TRUE(!chunk_id_equal(&id, &back));
}

TEST(memeqzero_every_position)
{
	static uint8_t buf[300];

	for (size_t n = 0; n < sizeof(buf); n++) {
		ASSERT_TRUE(memeqzero(buf, n));
		for (size_t i = 0; i < n; i++) {
			buf[i] = 0x80;
			if (memeqzero(buf, n))
				UNIT_FAIL("memeqzero(%zu) missed byte %zu", n, i);
			buf[i] = 0;
		}
	}
	/* unaligned start */
	ASSERT_TRUE(memeqzero(buf + 3, 200));
	buf[202] = 1;
	ASSERT_TRUE(!memeqzero(buf + 3, 200));
	ASSERT_TRUE(memeqzero(buf + 3, 199));
}

TEST(memeqzero_full_chunk)
{
	uint8_t *buf = calloc(1, CHUNK_SIZE_BYTES);

	ASSERT_TRUE(buf);
	ASSERT_TRUE(memeqzero(buf, CHUNK_SIZE_BYTES));
	buf[CHUNK_SIZE_BYTES - 1] = 1;
	ASSERT_TRUE(!memeqzero(buf, CHUNK_SIZE_BYTES));
	buf[CHUNK_SIZE_BYTES - 1] = 0;
	buf[CHUNK_SIZE_BYTES / 2] = 1;
	ASSERT_TRUE(!memeqzero(buf, CHUNK_SIZE_BYTES));
	free(buf);
}

TEST(chunk_id_is_zero_sizes)
{
	uint8_t *buf = calloc(1, CHUNK_SIZE_BYTES);
	struct chunk_id id;

	ASSERT_TRUE(buf);
	chunk_id_compute(buf, CHUNK_SIZE_BYTES, &id);
	ASSERT_TRUE(chunk_id_is_zero(&id, CHUNK_SIZE_BYTES));
	ASSERT_TRUE(!chunk_id_is_zero(&id, 4096));
	chunk_id_compute(buf, 4096, &id);
	ASSERT_TRUE(chunk_id_is_zero(&id, 4096));
	ASSERT_TRUE(!chunk_id_is_zero(&id, CHUNK_SIZE_BYTES));
	buf[0] = 1;
	chunk_id_compute(buf, CHUNK_SIZE_BYTES, &id);
	ASSERT_TRUE(!chunk_id_is_zero(&id, CHUNK_SIZE_BYTES));
	free(buf);
}

static void roundtrip(size_t size, bool compressible, bool want_compressed)
{
	uint8_t *in = malloc(size), *out = malloc(size);
	struct chunk_id id;
	void *file = NULL;
	size_t file_size;

	ASSERT_TRUE(in && out);
	fill(in, size, size, compressible);
	chunk_id_compute(in, size, &id);
	ASSERT_OK(chunk_encode(in, size, 0, &file, &file_size));
	/* header: magic, version 1, header size 64, compression id at byte 20 */
	ASSERT_MEMEQ(file, "IMGCHUNK", 8);
	ASSERT_EQ_U64(((uint8_t *) file)[8], 1);
	ASSERT_EQ_U64(((uint8_t *) file)[12], 64);
	ASSERT_EQ_U64(((uint8_t *) file)[20], want_compressed ? 1 : 0);
	if (want_compressed)
		ASSERT_TRUE(file_size < size / 2);
	else
		ASSERT_EQ_U64(file_size, size + CHUNK_FILE_HEADER_BYTES);
	memset(out, 0xaa, size);
	ASSERT_OK(chunk_decode(file, file_size, &id, out, size));
	ASSERT_MEMEQ(in, out, size);
	free(file);
	free(in);
	free(out);
}

TEST(chunk_roundtrip_compressible)
{
	roundtrip(CHUNK_SIZE_BYTES, true, true);
	roundtrip(65536, true, true);
}

TEST(chunk_roundtrip_incompressible_stored_raw)
{
	roundtrip(CHUNK_SIZE_BYTES, false, false);
	roundtrip(1, false, false);
	roundtrip(4097, false, false);
}

TEST(chunk_encode_bounds)
{
	uint8_t b[1] = { 0 };
	void *file;
	size_t n;

	ASSERT_ERR(chunk_encode(b, 0, 0, &file, &n), -EINVAL);
	ASSERT_ERR(chunk_encode(b, (size_t) CHUNK_SIZE_BYTES + 1, 0, &file, &n), -EINVAL);
	ASSERT_ERR(chunk_encode(b, 1, 1000, &file, &n), -EINVAL);
}

static void encode_small(bool compressible, uint8_t **ret_in, struct chunk_id *id, void **file,
			 size_t *file_size, size_t size)
{
	uint8_t *in = malloc(size);

	ASSERT_TRUE(in);
	fill(in, size, 7, compressible);
	chunk_id_compute(in, size, id);
	ASSERT_OK(chunk_encode(in, size, 3, file, file_size));
	*ret_in = in;
}

TEST(chunk_decode_rejects_every_flip_and_truncation)
{
	for (int c = 0; c < 2; c++) {
		const size_t size = 8192;
		uint8_t *in, *out = malloc(size);
		struct chunk_id id;
		void *file;
		size_t n;

		encode_small(c, &in, &id, &file, &n, size);
		ASSERT_EQ_U64(((uint8_t *) file)[20], c ? 1 : 0);
		for (size_t i = 0; i < n; i++) {
			for (int bit = 0; bit < 8; bit += 3) {
				int r;

				((uint8_t *) file)[i] ^= (uint8_t) (1u << bit);
				memset(out, 0, size);
				r = chunk_decode(file, n, &id, out, size);
				((uint8_t *) file)[i] ^= (uint8_t) (1u << bit);
				/* a zstd frame has bits that do not change what it decodes
				 * to; accepting those is right, since the result is hashed */
				if (r == 0 && memcmp(in, out, size) == 0)
					continue;
				if (r != -EBADMSG && r != -EPROTONOSUPPORT)
					UNIT_FAIL("flip of byte %zu bit %d gave %d", i, bit, r);
			}
		}
		for (size_t len = 0; len < n; len++)
			if (chunk_decode(file, len, &id, out, size) != -EBADMSG)
				UNIT_FAIL("truncation to %zu accepted", len);
		ASSERT_OK(chunk_decode(file, n, &id, out, size));
		ASSERT_MEMEQ(in, out, size);
		/* wrong buffer size, wrong ID */
		ASSERT_ERR(chunk_decode(file, n, &id, out, size - 1), -EBADMSG);
		id.bytes[0] ^= 1;
		ASSERT_ERR(chunk_decode(file, n, &id, out, size), -EBADMSG);
		free(file);
		free(in);
		free(out);
	}
}

TEST(chunk_decode_trailing_bytes)
{
	const size_t size = 4096;
	uint8_t *in, *out = malloc(size), *big;
	struct chunk_id id;
	void *file;
	size_t n;

	encode_small(true, &in, &id, &file, &n, size);
	big = calloc(1, n + 1);
	memcpy(big, file, n);
	ASSERT_ERR(chunk_decode(big, n + 1, &id, out, size), -EBADMSG);
	/* even with the payload size patched to match */
	big[28] += 1;
	ASSERT_ERR(chunk_decode(big, n + 1, &id, out, size), -EBADMSG);
	free(big);
	free(file);
	free(in);
	free(out);
}

TEST(chunk_decode_newer_version_and_cipher)
{
	const size_t size = 4096;
	uint8_t *in, *out = malloc(size), *f;
	struct chunk_id id;
	void *file;
	size_t n;

	encode_small(true, &in, &id, &file, &n, size);
	f = file;
	f[8] = 2;
	ASSERT_ERR(chunk_decode(f, n, &id, out, size), -EPROTONOSUPPORT);
	f[8] = 1;
	f[21] = 1; /* a cipher this reader does not have */
	ASSERT_ERR(chunk_decode(f, n, &id, out, size), -EPROTONOSUPPORT);
	f[21] = 0;
	f[40] = 1; /* reserved byte */
	ASSERT_ERR(chunk_decode(f, n, &id, out, size), -EBADMSG);
	f[40] = 0;
	ASSERT_OK(chunk_decode(f, n, &id, out, size));
	free(file);
	free(in);
	free(out);
}

struct thread_arg {
	unsigned seed;
	int failures;
};

static void *encode_thread(void *p)
{
	struct thread_arg *a = p;
	size_t size = 1 << 20;
	uint8_t *in = malloc(size), *out = malloc(size);

	for (unsigned i = 0; i < 16; i++) {
		struct chunk_id id;
		void *file = NULL;
		size_t n;

		fill(in, size, a->seed * 100 + i, i % 2);
		chunk_id_compute(in, size, &id);
		if (chunk_encode(in, size, 0, &file, &n) < 0 ||
		    chunk_decode(file, n, &id, out, size) < 0 || memcmp(in, out, size) != 0)
			a->failures++;
		free(file);
	}
	free(in);
	free(out);
	return NULL;
}

TEST(chunk_encode_two_threads)
{
	pthread_t t[2];
	struct thread_arg a[2] = { { 1, 0 }, { 2, 0 } };

	for (int i = 0; i < 2; i++)
		ASSERT_EQ_I64(pthread_create(&t[i], NULL, encode_thread, &a[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ASSERT_EQ_I64(a[0].failures, 0);
	ASSERT_EQ_I64(a[1].failures, 0);
}
