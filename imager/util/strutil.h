/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Human size with binary units ("1.5 GiB"); @buf needs FORMAT_BYTES_MAX bytes. */
#define FORMAT_BYTES_MAX 16
char *format_bytes(char *buf, size_t buf_size, uint64_t bytes);

/* Lower-case hex of @size bytes into @out (2 * size + 1 bytes). */
void hex_encode(const void *data, size_t size, char *out);
/* Parses exactly 2 * @size hex digits. Returns 0 or -EINVAL. */
int hex_decode(const char *s, void *out, size_t size);

/* Parses "123", "4K", "16M", "2G", "1T" (binary units) into bytes. */
int parse_size(const char *s, uint64_t *ret);
int safe_atou64(const char *s, uint64_t *ret);

bool streq_ptr(const char *a, const char *b);
bool startswith(const char *s, const char *prefix);
/* Returns a copy without leading/trailing whitespace; NULL on OOM. */
char *strdup_strip(const char *s);

/* Formats an ISO 8601 UTC time "2026-11-27T19:33:37Z" into @buf (>= 21 bytes). */
char *format_timestamp(char *buf, size_t buf_size, int64_t unix_seconds);
/* Parses an ISO 8601 UTC time as printed above, or "@SECONDS". */
int parse_timestamp(const char *s, int64_t *ret);

/* Case-insensitive equality; two NULLs are equal. */
bool streq_ci(const char *a, const char *b);

/*
 * systemd's string tables: a static array NAME_table[] of strings indexed by
 * an enum whose count is MAX, and the lookups generated from it, so each
 * enum's names live in one place. The _from_string() lookup compares with
 * CMP (strcmp, or strcasecmp for names a user types) and returns INVALID
 * for NULL or an unknown string.
 */
#define DEFINE_STRING_TABLE_TO_STRING(name, type, max)                                  \
	const char *name##_to_string(type i)                                             \
	{                                                                                \
		if ((int) i < 0 || i >= (max))                                           \
			return NULL;                                                     \
		return name##_table[i];                                                  \
	}
#define DEFINE_STRING_TABLE_FROM_STRING(name, type, max, invalid, cmp)                  \
	type name##_from_string(const char *s)                                           \
	{                                                                                \
		if (!s)                                                                  \
			return (invalid);                                                \
		for (int i = 0; i < (max); i++)                                          \
			if (name##_table[i] && cmp(name##_table[i], s) == 0)             \
				return (type) i;                                         \
		return (invalid);                                                \
	}
