/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The signature parsers on hostile input: sign_file_decode() (a .sig file,
 * docs/FORMAT.md "Signature files") and the PEM key loaders. A .sig that
 * decodes must re-encode to something that decodes to the same records, and
 * verifying its records must not crash; a private key that loads must sign
 * a record that verifies.
 */
#include <fcntl.h>

#include "fuzz.h"
#include "imager/sign.h"

static bool record_equal(const struct sign_record *a, const struct sign_record *b)
{
	return a->algorithm == b->algorithm && a->signed_unix == b->signed_unix &&
	       memcmp(a->key_id, b->key_id, sizeof(a->key_id)) == 0 &&
	       memcmp(a->public_key, b->public_key, sizeof(a->public_key)) == 0 &&
	       memcmp(a->manifest_sha256, b->manifest_sha256, sizeof(a->manifest_sha256)) == 0 &&
	       memcmp(a->signature, b->signature, sizeof(a->signature)) == 0;
}

static void sig_file(const uint8_t *data, size_t size)
{
	_cleanup_free_ struct sign_record *recs = NULL, *again = NULL;
	_cleanup_free_ void *file = NULL;
	uint8_t sha[32] = {};
	size_t n = 0, n2 = 0, file_size = 0;

	if (sign_file_decode(data, size, &recs, &n) < 0)
		return;
	FUZZ_CHECK(n <= SIGN_RECORDS_MAX);
	for (size_t i = 0; i < n; i++) {
		enum sign_verdict v = sign_record_verify(&recs[i], "fuzz", sha);
		FUZZ_CHECK(sign_verdict_to_string(v) != NULL);
	}
	FUZZ_CHECK(sign_file_encode(recs, n, &file, &file_size) == 0);
	FUZZ_CHECK(sign_file_decode(file, file_size, &again, &n2) == 0);
	FUZZ_CHECK(n2 == n);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(record_equal(&recs[i], &again[i]));
}

static void key_file(const uint8_t *data, size_t size)
{
	_cleanup_close_ int fd = -EBADF;
	struct sign_key *k = NULL;
	struct sign_record rec;
	uint8_t sha[32] = {}, id[SIGN_KEY_ID_BYTES];
	char path[64];

	/* OpenSSL's PEM decoders are slow to set up; input without a PEM line only
	 * exercises "no PEM here", which the seeds already cover */
	if (!memmem(data, size, "-----BEGIN", 10))
		return;
	fd = fuzz_memfd(data, size, NULL, 0, size);
	if (fd < 0)
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (sign_key_load_public(AT_FDCWD, path, &k) == 0) {
		FUZZ_CHECK(!sign_key_has_private(k));
		sign_key_id(k, id);
		k = sign_key_free(k);
	}
	if (sign_key_load_private(AT_FDCWD, path, &k) == 0) {
		FUZZ_CHECK(sign_record_create(k, "fuzz", sha, 1, &rec) == 0);
		FUZZ_CHECK(sign_record_verify(&rec, "fuzz", sha) == SIGN_VERDICT_VALID);
		FUZZ_CHECK(sign_record_is_by(&rec, k));
		k = sign_key_free(k);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sig_file(data, size);
	key_file(data, size);
	return 0;
}
