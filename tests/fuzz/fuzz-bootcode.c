/* SPDX-License-Identifier: GPL-2.0-or-later */
/* bootcode_classify() on any 440 bytes (shorter inputs are zero-padded). */
#include "fuzz.h"
#include "imager/fsprobe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sector0[440] = {};
	enum bootcode b;

	memcpy(sector0, data, MIN(size, sizeof(sector0)));
	b = bootcode_classify(sector0);
	FUZZ_CHECK(b >= 0 && b < _BOOTCODE_MAX);
	FUZZ_CHECK(bootcode_to_string(b) != NULL);
	return 0;
}
