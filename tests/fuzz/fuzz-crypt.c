/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The parsers of encrypted stores (docs/FORMAT.md, "Encryption") on hostile
 * input. The first byte picks one:
 *   0: a store config's encryption lines (crypt_config_parse): what parses
 *      must format back to lines that parse to the same thing, and
 *      unlocking it with a passphrase must not crash (slots of a high scrypt
 *      cost are skipped, to keep the fuzzer fast);
 *   1: a sealed manifest (crypt_manifest_open) under fixed keys: what opens
 *      must seal back to the same bytes (sealing is deterministic);
 *   2: an encrypted chunk file (chunk_decode_sealed) under the same keys.
 * The seeds (tests/fuzz/corpus/crypt) are valid inputs of each kind, made
 * once with the library: a config with a passphrase slot ("fuzz", N = 2^10)
 * and a key-file slot (32 bytes 0x07); corpus/manifest/tiny-gpt sealed under
 * fixed_keys() as image "web"; a compressible and a raw chunk sealed under
 * them, each followed by the 32-byte ID it was sealed for.
 */
#include "fuzz.h"
#include "imager/chunk.h"
#include "imager/crypt.h"

#define FUZZ_CHUNK_BYTES_MAX (UINT32_C(256) << 10)
#define FUZZ_SCRYPT_N_MAX 2048 /* N = 2^10 costs about 1 ms: fine; more is slow, not new */

static const char fuzz_name[] = "web";

static void fixed_keys(struct crypt_keys *k)
{
	uint8_t dk[CRYPT_KEY_BYTES], sid[CRYPT_STORE_ID_BYTES];

	memset(dk, 0x42, sizeof(dk));
	memset(sid, 0x17, sizeof(sid));
	if (crypt_keys_derive(dk, sid, k) < 0)
		abort();
}

static void config(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *text = NULL, *again = NULL, *third = NULL;
	_cleanup_free_ struct crypt_config *c = calloc(1, sizeof(*c)), *d = calloc(1, sizeof(*d));
	struct crypt_secret *pw = NULL;
	uint8_t dk[CRYPT_KEY_BYTES];
	size_t slot;

	if (!c || !d || size > 16384)
		return;
	text = malloc(size + 1);
	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = 0;
	if (crypt_config_parse(text, c) < 0)
		return;
	FUZZ_CHECK(c->n_slots >= 1 && c->n_slots <= CRYPT_SLOTS_MAX);
	FUZZ_CHECK(crypt_config_format(c, &again) == 0);
	FUZZ_CHECK(crypt_config_parse(again, d) == 0);
	FUZZ_CHECK(crypt_config_format(d, &third) == 0);
	FUZZ_CHECK(strcmp(again, third) == 0);
	for (size_t i = 0; i < c->n_slots; i++)
		if (c->slots[i].kind == CRYPT_SECRET_PASSPHRASE &&
		    c->slots[i].scrypt.n * c->slots[i].scrypt.r * c->slots[i].scrypt.p >
			    FUZZ_SCRYPT_N_MAX * 8)
			return;
	if (crypt_secret_new(CRYPT_SECRET_PASSPHRASE, "fuzz", 4, &pw) < 0)
		return;
	if (crypt_config_unlock(c, pw, dk, &slot) == 0)
		FUZZ_CHECK(slot < c->n_slots);
	crypt_secret_free(pw);
}

static void manifest(const uint8_t *data, size_t size)
{
	_cleanup_free_ void *plain = NULL, *again = NULL;
	struct crypt_keys k;
	size_t n, m;

	fixed_keys(&k);
	if (crypt_manifest_open(&k, MANIFEST_KIND_IMAGE, fuzz_name, data, size, &plain, &n) < 0)
		return;
	FUZZ_CHECK(n + CRYPT_SEALED_MANIFEST_OVERHEAD_BYTES == size);
	FUZZ_CHECK(crypt_manifest_seal(&k, MANIFEST_KIND_IMAGE, fuzz_name, plain, n, &again, &m) ==
		   0);
	FUZZ_CHECK(m == size && memcmp(again, data, size) == 0);
}

static void chunk(const uint8_t *data, size_t size)
{
	_cleanup_free_ uint8_t *file = NULL, *buf = NULL;
	struct crypt_keys k;
	struct chunk_id id = {};
	uint32_t usize = 1;

	fixed_keys(&k);
	if (size >= CHUNK_FILE_HEADER_BYTES) {
		memcpy(&usize, data + 24, sizeof(usize)); /* uncompressed_size */
		usize = le32toh(usize);
	}
	if (usize == 0 || usize > FUZZ_CHUNK_BYTES_MAX)
		usize = 1;
	/* the ID it was sealed under is bound into the AAD: the seeds use the ID of the data */
	if (size >= CHUNK_FILE_HEADER_BYTES + 32)
		memcpy(id.bytes, data + size - 32, 32), size -= 32;
	file = malloc(MAX(size, (size_t) 1));
	buf = malloc(usize);
	if (!file || !buf)
		return;
	memcpy(file, data, size);
	(void) chunk_decode_sealed(file, size, &k, &id, buf, usize);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		config(data + 1, size - 1);
		break;
	case 1:
		manifest(data + 1, size - 1);
		break;
	default:
		chunk(data + 1, size - 1);
		break;
	}
	return 0;
}
