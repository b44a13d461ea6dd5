/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * deprecation_decode() (images/<name>.deprecation, lib/lifecycle.c) on
 * hostile bytes, as given and with the SHA-256 self-checksum recomputed (as
 * fuzz-manifest.c does). A record that decodes must encode, decode again and
 * encode to the same bytes, and give a valid state at any time.
 */
#include "fuzz.h"
#include "imager/lifecycle.h"

/* docs/FORMAT.md, "Deprecation files": a 64-byte header, the SHA-256 at bytes 32-63 */
#define HEADER_BYTES 64
#define CHECKSUM_OFFSET 32

static void roundtrip(const struct deprecation *d)
{
	_cleanup_free_ void *a = NULL, *b = NULL;
	struct deprecation again = DEPRECATION_INIT;
	size_t na = 0, nb = 0;
	static const int64_t times[] = { INT64_MIN, -DEPRECATION_TIME_LIMIT, 0, 1700000000,
					 DEPRECATION_TIME_LIMIT, INT64_MAX };

	FUZZ_CHECK(deprecation_encode(d, &a, &na) == 0);
	FUZZ_CHECK(deprecation_decode(a, na, &again) == 0);
	FUZZ_CHECK(deprecation_encode(&again, &b, &nb) == 0);
	FUZZ_CHECK(na == nb && memcmp(a, b, na) == 0);
	for (size_t i = 0; i < ELEMENTSOF(times); i++) {
		enum deprecation_state s = deprecation_effective_state(d, times[i]);
		FUZZ_CHECK(s >= d->state && s < _DEPRECATION_STATE_MAX);
	}
	deprecation_done(&again);
}

static void try_decode(const uint8_t *data, size_t size)
{
	struct deprecation d = DEPRECATION_INIT;

	if (deprecation_decode(data, size, &d) == 0) {
		roundtrip(&d);
		deprecation_done(&d);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decode_resealed(data, size, HEADER_BYTES, CHECKSUM_OFFSET, try_decode);
	return 0;
}
