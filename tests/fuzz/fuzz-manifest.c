/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * manifest_decode() on hostile bytes. Each input is tried twice: as given
 * (the self-checksum must match, as in a store), and with the checksum
 * recomputed, so that mutations reach the section parser and validation
 * instead of stopping at the SHA-256. A manifest that decodes must encode,
 * decode again, and encode to the same bytes (one manifest, one encoding).
 */
#include "fuzz.h"
#include "imager/manifest.h"

DEFINE_CLEANUP(struct manifest *, manifest_free)

/* docs/FORMAT.md, "Manifest": the header's SHA-256 sits at bytes 32-63 */
#define HEADER_BYTES 96
#define CHECKSUM_OFFSET 32

static void roundtrip(const struct manifest *m)
{
	_cleanup_free_ void *a = NULL, *b = NULL;
	_cleanup_(manifest_freep) struct manifest *again = NULL;
	size_t na = 0, nb = 0;

	FUZZ_CHECK(manifest_encode(m, &a, &na) == 0);
	FUZZ_CHECK(manifest_decode(a, na, &again) == 0);
	FUZZ_CHECK(manifest_encode(again, &b, &nb) == 0);
	FUZZ_CHECK(na == nb && memcmp(a, b, na) == 0);
}

static void try_decode(const uint8_t *data, size_t size)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;

	if (manifest_decode(data, size, &m) == 0)
		roundtrip(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decode_resealed(data, size, HEADER_BYTES, CHECKSUM_OFFSET, try_decode);
	return 0;
}
