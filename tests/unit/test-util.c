/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>

#include "unit.h"
#include "util/strutil.h"

TEST(parse_size_units)
{
	uint64_t v;

	ASSERT_OK(parse_size("4096", &v));
	ASSERT_EQ_U64(v, 4096);
	ASSERT_OK(parse_size("4K", &v));
	ASSERT_EQ_U64(v, 4096);
	ASSERT_OK(parse_size("16MiB", &v));
	ASSERT_EQ_U64(v, 16u << 20);
	ASSERT_OK(parse_size("2G", &v));
	ASSERT_EQ_U64(v, UINT64_C(2) << 30);
	ASSERT_ERR(parse_size("12X", &v), -EINVAL);
	ASSERT_ERR(parse_size("-1", &v), -EINVAL);
	ASSERT_ERR(parse_size("99999999999T", &v), -ERANGE);
}

TEST(hex_roundtrip)
{
	uint8_t in[4] = { 0x00, 0xab, 0x7f, 0xff }, out[4];
	char s[9];

	hex_encode(in, sizeof(in), s);
	ASSERT_STREQ(s, "00ab7fff");
	ASSERT_OK(hex_decode(s, out, sizeof(out)));
	ASSERT_MEMEQ(in, out, sizeof(in));
	ASSERT_ERR(hex_decode("00ab7fzz", out, sizeof(out)), -EINVAL);
	ASSERT_ERR(hex_decode("00ab", out, sizeof(out)), -EINVAL);
}

TEST(format_bytes_binary_units)
{
	char buf[FORMAT_BYTES_MAX];

	ASSERT_STREQ(format_bytes(buf, sizeof(buf), 512), "512 B");
	ASSERT_STREQ(format_bytes(buf, sizeof(buf), 1536), "1.5 KiB");
	ASSERT_STREQ(format_bytes(buf, sizeof(buf), UINT64_C(8) << 30), "8.0 GiB");
}

TEST(timestamps_roundtrip)
{
	char buf[32];
	int64_t t;

	ASSERT_STREQ(format_timestamp(buf, sizeof(buf), 1795808017), "2026-11-27T19:33:37Z");
	ASSERT_OK(parse_timestamp("2026-11-27T19:33:37Z", &t));
	ASSERT_EQ_I64(t, 1795808017);
	ASSERT_OK(parse_timestamp("@42", &t));
	ASSERT_EQ_I64(t, 42);
	ASSERT_ERR(parse_timestamp("yesterday", &t), -EINVAL);
}
