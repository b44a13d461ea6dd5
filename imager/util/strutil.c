/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "strutil.h"

char *format_bytes(char *buf, size_t buf_size, uint64_t bytes)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned i = 0;
	double v = (double) bytes;

	while (v >= 1024.0 && i < sizeof(unit) / sizeof(unit[0]) - 1)
		v /= 1024.0, i++;
	if (i == 0)
		snprintf(buf, buf_size, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, buf_size, "%.1f %s", v, unit[i]);
	return buf;
}

void hex_encode(const void *data, size_t size, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;

	for (size_t i = 0; i < size; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * size] = 0;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *s, void *out, size_t size)
{
	uint8_t *p = out;

	if (strlen(s) != 2 * size)
		return -EINVAL;
	for (size_t i = 0; i < size; i++) {
		int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (uint8_t) (hi << 4 | lo);
	}
	return 0;
}

int safe_atou64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char) *s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s || !isdigit((unsigned char) *s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -errno;
	switch (*end) {
	case 0: break;
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	case 'T': case 't': shift = 40; break;
	default: return -EINVAL;
	}
	if (*end && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t) v << shift;
	return 0;
}

bool streq_ptr(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

bool startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

char *strdup_strip(const char *s)
{
	size_t n;

	while (isspace((unsigned char) *s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char) s[n - 1]))
		n--;
	return strndup(s, n);
}

char *format_timestamp(char *buf, size_t buf_size, int64_t unix_seconds)
{
	time_t t = (time_t) unix_seconds;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, buf_size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, buf_size, "@%" PRId64, unix_seconds);
	return buf;
}

int parse_timestamp(const char *s, int64_t *ret)
{
	struct tm tm = {};
	const char *end;

	if (s[0] == '@') {
		char *e;
		long long v;
		errno = 0;
		v = strtoll(s + 1, &e, 10);
		if (errno || *e || e == s + 1)
			return -EINVAL;
		*ret = v;
		return 0;
	}
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
		if (!end)
			return -EINVAL;
	}
	if (*end == 'Z')
		end++;
	if (*end)
		return -EINVAL;
	*ret = (int64_t) timegm(&tm);
	return 0;
}

bool streq_ci(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcasecmp(a, b) == 0;
}
