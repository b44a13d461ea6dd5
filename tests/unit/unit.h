/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A tiny TAP unit-test harness. Each tests/unit/test-*.c is one binary:
 *
 *	#include "unit.h"
 *	TEST(parse_size_units) { uint64_t v; ASSERT_OK(parse_size("4K", &v)); ASSERT_EQ_U64(v, 4096); }
 *
 * Assertions print both sides and abort only the current test.
 */

#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit_test {
	const char *name;
	void (*fn)(void);
};

#define UNIT_TESTS_MAX 512
static struct unit_test unit_tests[UNIT_TESTS_MAX];
static unsigned unit_n_tests;
static jmp_buf unit_jmp;
static bool unit_failed;

#define TEST(name)                                                                                 \
	static void test_##name(void);                                                             \
	__attribute__((constructor)) static void register_##name(void)                            \
	{                                                                                          \
		if (unit_n_tests < UNIT_TESTS_MAX)                                                 \
			unit_tests[unit_n_tests++] = (struct unit_test){ #name, test_##name };     \
	}                                                                                          \
	static void test_##name(void)

#define UNIT_FAIL(...)                                                                             \
	do {                                                                                       \
		printf("# %s:%d: ", __FILE__, __LINE__);                                           \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		unit_failed = true;                                                                \
		longjmp(unit_jmp, 1);                                                              \
	} while (0)

#define ASSERT_TRUE(e)                                                                             \
	do {                                                                                       \
		if (!(e))                                                                          \
			UNIT_FAIL("ASSERT_TRUE(%s) failed", #e);                                   \
	} while (0)

#define ASSERT_EQ_I64(a, b)                                                                        \
	do {                                                                                       \
		int64_t _a = (int64_t) (a), _b = (int64_t) (b);                                    \
		if (_a != _b)                                                                      \
			UNIT_FAIL("ASSERT_EQ(%s, %s) failed: %" PRId64 " != %" PRId64, #a, #b, _a, \
				  _b);                                                             \
	} while (0)

#define ASSERT_EQ_U64(a, b)                                                                        \
	do {                                                                                       \
		uint64_t _a = (uint64_t) (a), _b = (uint64_t) (b);                                 \
		if (_a != _b)                                                                      \
			UNIT_FAIL("ASSERT_EQ(%s, %s) failed: %" PRIu64 " != %" PRIu64, #a, #b, _a, \
				  _b);                                                             \
	} while (0)

/* r must be >= 0 (an action that succeeded) */
#define ASSERT_OK(r)                                                                               \
	do {                                                                                       \
		int64_t _r = (int64_t) (r);                                                        \
		if (_r < 0)                                                                        \
			UNIT_FAIL("ASSERT_OK(%s) failed: %" PRId64 " (%s)", #r, _r,                \
				  strerror((int) -_r));                                            \
	} while (0)

/* r must be exactly the negative errno e */
#define ASSERT_ERR(r, e)                                                                           \
	do {                                                                                       \
		int64_t _r = (int64_t) (r), _e = (int64_t) (e);                                    \
		if (_r != _e)                                                                      \
			UNIT_FAIL("ASSERT_ERR(%s, %s) failed: got %" PRId64 " (%s), want %" PRId64 \
				  " (%s)",                                                         \
				  #r, #e, _r, _r < 0 ? strerror((int) -_r) : "success", _e,        \
				  strerror((int) -_e));                                            \
	} while (0)

#define ASSERT_STREQ(a, b)                                                                         \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (!_a || !_b || strcmp(_a, _b) != 0)                                             \
			UNIT_FAIL("ASSERT_STREQ(%s, %s) failed: \"%s\" != \"%s\"", #a, #b,         \
				  _a ? _a : "(null)", _b ? _b : "(null)");                         \
	} while (0)

#define ASSERT_MEMEQ(a, b, n)                                                                      \
	do {                                                                                       \
		const uint8_t *_a = (const void *) (a), *_b = (const void *) (b);                  \
		size_t _n = (n);                                                                   \
		for (size_t _i = 0; _i < _n; _i++)                                                 \
			if (_a[_i] != _b[_i])                                                      \
				UNIT_FAIL("ASSERT_MEMEQ(%s, %s) failed at byte %zu: 0x%02x != "   \
					  "0x%02x",                                                \
					  #a, #b, _i, _a[_i], _b[_i]);                             \
	} while (0)

int main(void)
{
	volatile unsigned failed = 0;

	printf("1..%u\n", unit_n_tests);
	for (volatile unsigned i = 0; i < unit_n_tests; i++) {
		unit_failed = false;
		if (setjmp(unit_jmp) == 0)
			unit_tests[i].fn();
		printf("%sok %u - %s\n", unit_failed ? "not " : "", i + 1, unit_tests[i].name);
		failed += unit_failed;
		fflush(stdout);
	}
	return failed ? 1 : 0;
}
