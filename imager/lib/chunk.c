/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Chunk IDs (SHA-256) and chunk files (a fixed 64-byte little-endian header
 * followed by one zstd frame or the raw bytes). docs/FORMAT.md, "Chunk files".
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "imager/chunk.h"
#include "imager/crypt.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"

#define CHUNK_FILE_VERSION 1
static const uint8_t chunk_file_magic[8] = { 'I', 'M', 'G', 'C', 'H', 'U', 'N', 'K' };

enum chunk_compression {
	CHUNK_COMPRESSION_NONE = 0,
	CHUNK_COMPRESSION_ZSTD = 1,
	_CHUNK_COMPRESSION_MAX,
};

/* Per-chunk AEAD (docs/FORMAT.md, "Encryption"). */
enum chunk_cipher {
	CHUNK_CIPHER_NONE = 0,
	CHUNK_CIPHER_AES_256_GCM = 1,
};

/* All integers little-endian. Every byte is checked by chunk_decode(). */
struct chunk_file_header {
	uint8_t magic[8];          /* "IMGCHUNK" */
	uint32_t version;          /* CHUNK_FILE_VERSION; larger: -EPROTONOSUPPORT */
	uint32_t header_size;      /* sizeof(struct chunk_file_header) */
	uint32_t flags;            /* required-feature bits; none defined, must be 0 */
	uint8_t compression;       /* enum chunk_compression */
	uint8_t cipher;            /* enum chunk_cipher; reserved, 0 */
	uint16_t reserved0;        /* 0 */
	uint32_t uncompressed_size;/* 1..CHUNK_SIZE_BYTES */
	uint32_t payload_size;     /* bytes after the header, to the end of the file */
	uint8_t reserved1[32];     /* cipher 0: zero; else struct chunk_seal */
} __attribute__((packed));

/* reserved1 of an encrypted chunk file */
struct chunk_seal {
	uint8_t nonce[CRYPT_NONCE_BYTES];  /* random */
	uint8_t key_id[CRYPT_KEY_ID_BYTES];/* the store key that encrypted it */
	uint8_t reserved[12];              /* zero */
} __attribute__((packed));

_Static_assert(sizeof(struct chunk_seal) == 32, "chunk seal size");

_Static_assert(sizeof(struct chunk_file_header) == CHUNK_FILE_HEADER_BYTES, "chunk header size");
_Static_assert(offsetof(struct chunk_file_header, version) == 8, "chunk header layout");
_Static_assert(offsetof(struct chunk_file_header, header_size) == 12, "chunk header layout");
_Static_assert(offsetof(struct chunk_file_header, flags) == 16, "chunk header layout");
_Static_assert(offsetof(struct chunk_file_header, compression) == 20, "chunk header layout");
_Static_assert(offsetof(struct chunk_file_header, cipher) == 21, "chunk header layout");
_Static_assert(offsetof(struct chunk_file_header, uncompressed_size) == 24, "chunk header layout");
_Static_assert(offsetof(struct chunk_file_header, payload_size) == 28, "chunk header layout");
_Static_assert(offsetof(struct chunk_file_header, reserved1) == 32, "chunk header layout");

void chunk_id_compute(const void *data, size_t size, struct chunk_id *ret)
{
	unsigned len = 0;

	/* EVP_Digest() keeps no shared state: safe from several threads. It
	 * cannot fail for SHA-256 short of a broken libcrypto. */
	if (EVP_Digest(data, size, ret->bytes, &len, EVP_sha256(), NULL) != 1 ||
	    len != CHUNK_ID_BYTES)
		abort();
}

bool chunk_id_equal(const struct chunk_id *a, const struct chunk_id *b)
{
	return memcmp(a->bytes, b->bytes, CHUNK_ID_BYTES) == 0;
}

char *chunk_id_to_string(const struct chunk_id *id, char buf[static CHUNK_ID_STRING_MAX])
{
	hex_encode(id->bytes, CHUNK_ID_BYTES, buf);
	return buf;
}

int chunk_id_from_string(const char *s, struct chunk_id *ret)
{
	struct chunk_id id;

	if (!s)
		return -EINVAL;
	/* canonical form only: lower-case, so that a string names one file */
	for (const char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			return -EINVAL;
	if (hex_decode(s, id.bytes, CHUNK_ID_BYTES) < 0)
		return -EINVAL;
	*ret = id;
	return 0;
}

bool memeqzero(const void *data, size_t size)
{
	const uint8_t *p = data;
	size_t head = MIN(size, (size_t) 16);

	/* The first 16 bytes one by one; then every byte equals the one 16
	 * before it, which memcmp() checks at vector speed (no word-alignment
	 * games, no reads past the end). */
	for (size_t i = 0; i < head; i++)
		if (p[i])
			return false;
	if (size <= 16)
		return true;
	return memcmp(p, p + 16, size - 16) == 0;
}

static uint8_t zero_bytes[CHUNK_SIZE_BYTES]; /* bss: costs no memory until read, never written */
static struct chunk_id zero_chunk_id;
static pthread_once_t zero_chunk_once = PTHREAD_ONCE_INIT;

static void zero_chunk_init(void)
{
	chunk_id_compute(zero_bytes, sizeof(zero_bytes), &zero_chunk_id);
}

bool chunk_id_is_zero(const struct chunk_id *id, size_t size)
{
	struct chunk_id z;

	if (size == 0 || size > CHUNK_SIZE_BYTES)
		return false;
	if (size == CHUNK_SIZE_BYTES) {
		(void) pthread_once(&zero_chunk_once, zero_chunk_init);
		return chunk_id_equal(id, &zero_chunk_id);
	}
	/* only a disk's last chunk is shorter: rare enough to hash each time */
	chunk_id_compute(zero_bytes, size, &z);
	return chunk_id_equal(id, &z);
}

/* One zstd context of each kind per thread, freed when the thread exits. */
static pthread_key_t cctx_key, dctx_key;
static pthread_once_t zstd_keys_once = PTHREAD_ONCE_INIT;
static int zstd_keys_error;

static void cctx_destroy(void *p)
{
	ZSTD_freeCCtx(p);
}

static void dctx_destroy(void *p)
{
	ZSTD_freeDCtx(p);
}

static void zstd_keys_init(void)
{
	int r = pthread_key_create(&cctx_key, cctx_destroy);

	if (r == 0)
		r = pthread_key_create(&dctx_key, dctx_destroy);
	zstd_keys_error = r;
}

static ZSTD_CCtx *thread_cctx(void)
{
	ZSTD_CCtx *c;

	if (pthread_once(&zstd_keys_once, zstd_keys_init) != 0 || zstd_keys_error)
		return NULL;
	c = pthread_getspecific(cctx_key);
	if (c)
		return c;
	c = ZSTD_createCCtx();
	if (c && pthread_setspecific(cctx_key, c) != 0) {
		ZSTD_freeCCtx(c);
		return NULL;
	}
	return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
	ZSTD_DCtx *d;

	if (pthread_once(&zstd_keys_once, zstd_keys_init) != 0 || zstd_keys_error)
		return NULL;
	d = pthread_getspecific(dctx_key);
	if (d)
		return d;
	d = ZSTD_createDCtx();
	if (!d)
		return NULL;
	/* a 4 MiB chunk never needs a larger window; refuse frames that ask for one */
	if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 23)) ||
	    pthread_setspecific(dctx_key, d) != 0) {
		ZSTD_freeDCtx(d);
		return NULL;
	}
	return d;
}

/* The additional authenticated data of an encrypted chunk: its header, then its ID. */
static void chunk_aad(const struct chunk_file_header *h, const struct chunk_id *id,
		      uint8_t aad[static sizeof(*h) + CHUNK_ID_BYTES])
{
	memcpy(aad, h, sizeof(*h));
	memcpy(aad + sizeof(*h), id->bytes, CHUNK_ID_BYTES);
}

int chunk_encode(const void *data, size_t size, int level, void **ret, size_t *ret_size)
{
	return chunk_encode_sealed(data, size, level, NULL, NULL, ret, ret_size);
}

int chunk_encode_sealed(const void *data, size_t size, int level, const struct crypt_keys *keys,
			const struct chunk_id *id, void **ret, size_t *ret_size)
{
	_cleanup_free_ uint8_t *out = NULL;
	struct chunk_file_header h = {};
	size_t payload = 0, tag_bytes = keys ? CRYPT_TAG_BYTES : 0;
	ZSTD_CCtx *cctx;
	int r;

	if (!data || size == 0 || size > CHUNK_SIZE_BYTES || (keys && !id))
		return -EINVAL;
	if (level == 0)
		level = CHUNK_LEVEL_DEFAULT;
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		return -EINVAL;

	cctx = thread_cctx();
	if (!cctx)
		return -ENOMEM;
	/* aligned for O_DIRECT writers (write_file_tmp_at()) */
	if (posix_memalign((void **) &out, 4096, sizeof(h) + size + tag_bytes) != 0)
		return -ENOMEM;

	/* Room for size - 1 bytes only: zstd fails with "destination too
	 * small" exactly when compressing would not save anything. */
	if (size > 1) {
		size_t k;
		/* A window as large as a chunk, so every match inside the chunk
		 * is found, and a hash table of 2^18 entries instead of level 3's
		 * 2^17. With level 3's defaults, chunks compressed one by one
		 * came out 0.26 % larger than one zstd -3 stream of the same data
		 * (matches across chunk borders are lost); with these they come
		 * out smaller, for about 8 % more compression time (measured in
		 * bench/README.md). Readers accept windows up to 2^23
		 * (thread_dctx()); decompression speed is unchanged. */
		(void) ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
		k = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
		if (!ZSTD_isError(k))
			k = ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, CHUNK_WINDOW_LOG);
		if (!ZSTD_isError(k))
			k = ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, CHUNK_HASH_LOG);
		if (!ZSTD_isError(k))
			k = ZSTD_compress2(cctx, out + sizeof(h), size - 1, data, size);
		if (!ZSTD_isError(k))
			payload = k;
		else if (ZSTD_getErrorCode(k) != ZSTD_error_dstSize_tooSmall)
			log_debug("zstd compression failed, storing raw: %s", ZSTD_getErrorName(k));
	}
	if (payload > 0)
		h.compression = CHUNK_COMPRESSION_ZSTD;
	else {
		h.compression = CHUNK_COMPRESSION_NONE;
		memcpy(out + sizeof(h), data, size);
		payload = size;
	}

	memcpy(h.magic, chunk_file_magic, sizeof(h.magic));
	h.version = htole32(CHUNK_FILE_VERSION);
	h.header_size = htole32(sizeof(h));
	h.flags = htole32(0);
	h.cipher = keys ? CHUNK_CIPHER_AES_256_GCM : CHUNK_CIPHER_NONE;
	h.uncompressed_size = htole32((uint32_t) size);
	h.payload_size = htole32((uint32_t) (payload + tag_bytes));
	if (keys) {
		struct chunk_seal seal = {};
		uint8_t aad[sizeof(h) + CHUNK_ID_BYTES];

		/* compress, then encrypt: ciphertext does not compress */
		r = crypt_random(seal.nonce, sizeof(seal.nonce));
		if (r < 0)
			return r;
		memcpy(seal.key_id, keys->key_id, sizeof(seal.key_id));
		memcpy(h.reserved1, &seal, sizeof(seal));
		chunk_aad(&h, id, aad);
		r = crypt_aead_seal(keys->chunk_key, seal.nonce, aad, sizeof(aad), out + sizeof(h),
				    out + sizeof(h), payload, out + sizeof(h) + payload);
		if (r < 0)
			return r;
	}
	memcpy(out, &h, sizeof(h));

	*ret_size = sizeof(h) + payload + tag_bytes;
	*ret = TAKE_PTR(out);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int chunk_decode(const void *file, size_t file_size, const struct chunk_id *expected, void *buf,
		 size_t buf_size)
{
	/* without keys nothing is written to @file */
	return chunk_decode_sealed((void *) file, file_size, NULL, expected, buf, buf_size);
}

/* With @buf NULL: authenticate only (@keys needed), nothing is decompressed or hashed. */
static int decode(void *file, size_t file_size, const struct crypt_keys *keys,
		  const struct chunk_id *expected, void *buf, size_t buf_size)
{
	const uint8_t *payload;
	struct chunk_file_header h;
	struct chunk_id actual;
	uint32_t usize, psize;
	int r;

	if (!file || !expected || (!buf && !keys))
		return -EINVAL;
	if (file_size < sizeof(h))
		return -EBADMSG;
	memcpy(&h, file, sizeof(h));
	if (memcmp(h.magic, chunk_file_magic, sizeof(h.magic)) != 0)
		return -EBADMSG;
	if (le32toh(h.version) == 0)
		return -EBADMSG;
	if (le32toh(h.version) > CHUNK_FILE_VERSION)
		return -EPROTONOSUPPORT;
	if (le32toh(h.header_size) != sizeof(h))
		return -EBADMSG;
	if (le32toh(h.flags) != 0)
		return -EPROTONOSUPPORT; /* a feature this reader lacks */
	if (h.cipher != CHUNK_CIPHER_NONE && (h.cipher != CHUNK_CIPHER_AES_256_GCM || !keys))
		return -EPROTONOSUPPORT; /* encrypted: needs the store's key (or a newer cipher) */
	if (keys && h.cipher == CHUNK_CIPHER_NONE)
		return -EBADMSG; /* an encrypted store holds no plaintext chunk files */
	if (h.reserved0 != 0)
		return -EBADMSG;
	if (!keys && !all_zero(h.reserved1, sizeof(h.reserved1)))
		return -EBADMSG;
	usize = le32toh(h.uncompressed_size);
	psize = le32toh(h.payload_size);
	if (usize == 0 || usize > CHUNK_SIZE_BYTES || usize != buf_size)
		return -EBADMSG;
	if (psize != file_size - sizeof(h))
		return -EBADMSG; /* truncated, or trailing bytes */
	payload = (const uint8_t *) file + sizeof(h);

	if (keys) {
		struct chunk_seal seal;
		uint8_t aad[sizeof(h) + CHUNK_ID_BYTES];
		uint8_t *out;

		memcpy(&seal, h.reserved1, sizeof(seal));
		if (!all_zero(seal.reserved, sizeof(seal.reserved)))
			return -EBADMSG;
		if (memcmp(seal.key_id, keys->key_id, sizeof(seal.key_id)) != 0)
			return -EBADMSG; /* encrypted by another store's key */
		if (psize <= CRYPT_TAG_BYTES)
			return -EBADMSG;
		psize -= CRYPT_TAG_BYTES;
		chunk_aad(&h, expected, aad);
		/* raw bytes go straight to @buf; a zstd frame is decrypted in place */
		out = buf && h.compression == CHUNK_COMPRESSION_NONE && psize == usize ?
			      buf :
			      (uint8_t *) file + sizeof(h);
		r = crypt_aead_open(keys->chunk_key, seal.nonce, aad, sizeof(aad), payload, out,
				    psize, payload + psize);
		if (r < 0)
			return r; /* -EBADMSG: authentication failed, nothing is decompressed */
		if (!buf)
			return 0;
		if (out == buf) {
			if (h.compression != CHUNK_COMPRESSION_NONE)
				return -EBADMSG;
			goto check_id;
		}
	}

	switch (h.compression) {
	case CHUNK_COMPRESSION_NONE:
		if (psize != usize)
			return -EBADMSG;
		memcpy(buf, payload, usize);
		break;
	case CHUNK_COMPRESSION_ZSTD: {
		ZSTD_DCtx *dctx;
		unsigned long long content;
		size_t k;

		/* a writer only compresses when that saves bytes */
		if (psize == 0 || psize >= usize)
			return -EBADMSG;
		content = ZSTD_getFrameContentSize(payload, psize);
		if (content != usize)
			return -EBADMSG; /* also ZSTD_CONTENTSIZE_UNKNOWN/ERROR */
		k = ZSTD_findFrameCompressedSize(payload, psize);
		if (ZSTD_isError(k) || k != psize)
			return -EBADMSG; /* exactly one frame, nothing after it */
		dctx = thread_dctx();
		if (!dctx)
			return -ENOMEM;
		k = ZSTD_decompressDCtx(dctx, buf, buf_size, payload, psize);
		if (ZSTD_isError(k)) {
			if (ZSTD_getErrorCode(k) == ZSTD_error_memory_allocation)
				return -ENOMEM;
			(void) ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
			return -EBADMSG;
		}
		if (k != usize)
			return -EBADMSG;
		break;
	}
	default:
		return -EBADMSG;
	}

check_id:
	if (keys)
		crypt_chunk_id(keys, buf, usize, &actual);
	else
		chunk_id_compute(buf, usize, &actual);
	if (!chunk_id_equal(&actual, expected))
		return -EBADMSG;
	return 0;
}

int chunk_decode_sealed(void *file, size_t file_size, const struct crypt_keys *keys,
			const struct chunk_id *expected, void *buf, size_t buf_size)
{
	return buf ? decode(file, file_size, keys, expected, buf, buf_size) : -EINVAL;
}

int chunk_authenticate_sealed(void *file, size_t file_size, const struct crypt_keys *keys,
			      const struct chunk_id *expected, size_t size)
{
	return keys ? decode(file, file_size, keys, expected, NULL, size) : -EINVAL;
}
