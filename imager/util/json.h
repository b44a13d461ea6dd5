/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A streaming JSON writer for nested output (disks with partitions, image
 * manifests, progress lines). Flat tables use libsmartcols instead.
 * Numbers stay numbers; strings are escaped per RFC 8259. NULL strings are
 * written as null. Nesting depth is bounded by JSON_DEPTH_MAX.
 *
 *	struct json j;
 *	json_init(&j, stdout, true);
 *	json_object_begin(&j, NULL);
 *	json_string(&j, "node", "/dev/sda");
 *	json_u64(&j, "size", 512110190592);
 *	json_array_begin(&j, "partitions");
 *	...
 *	json_array_end(&j);
 *	json_object_end(&j);
 *	json_finish(&j);            (newline)
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_DEPTH_MAX 32

struct json {
	FILE *f;
	bool pretty;
	unsigned depth;
	bool first[JSON_DEPTH_MAX];
};

void json_init(struct json *j, FILE *f, bool pretty);
/* @key is NULL inside arrays and at the top level. */
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);
void json_string(struct json *j, const char *key, const char *value);
void json_u64(struct json *j, const char *key, uint64_t value);
void json_i64(struct json *j, const char *key, int64_t value);
void json_bool(struct json *j, const char *key, bool value);
void json_null(struct json *j, const char *key);
void json_double(struct json *j, const char *key, double value);
void json_finish(struct json *j);
