/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The wire encoding of manifests and deprecation records (docs/FORMAT.md,
 * "Encoding"): LEB128 varints with exactly one encoding per value, zigzag
 * for signed values, strings as varint(length + 1) + bytes (0 = none), and
 * records as varint(length) + fields, so that readers skip fields they do
 * not know. One writer and one bounded reader, shared by every format.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A growing output buffer. The first failure is kept in @error (-ENOMEM, or
 * -E2BIG past @max when @max is not 0) and every later put is a no-op, so a
 * writer checks once at the end.
 */
struct wire_out {
	uint8_t *data;
	size_t size, cap, max;
	int error;
};

void wire_out_done(struct wire_out *b);
/* Appends @n bytes and returns where they go (NULL after an error). */
uint8_t *wire_out_grow(struct wire_out *b, size_t n);
void wire_put_bytes(struct wire_out *b, const void *p, size_t n);
void wire_put_varint(struct wire_out *b, uint64_t v);
void wire_put_zigzag(struct wire_out *b, int64_t v);
void wire_put_str(struct wire_out *b, const char *s);
/* @rec as a record (its error, if any, becomes @b's). */
void wire_put_record(struct wire_out *b, const struct wire_out *rec);

/* A bounded input cursor: every get checks the bytes left; -EBADMSG past the end. */
struct wire_in {
	const uint8_t *p;
	size_t n;
};

int wire_get_bytes(struct wire_in *r, size_t n, const uint8_t **ret);
/* -EBADMSG also for more than 64 bits and for an overlong encoding. */
int wire_get_varint(struct wire_in *r, uint64_t *ret);
int wire_get_u32(struct wire_in *r, uint32_t *ret);
int wire_get_zigzag(struct wire_in *r, int64_t *ret);
/* A NUL-free string of at most @max_len bytes, or NULL for "none". */
int wire_get_str(struct wire_in *r, size_t max_len, char **ret);
int wire_get_record(struct wire_in *r, struct wire_in *ret);

/* Returns from the calling function on a negative result. */
#define WIRE_TRY(expr)                                                                             \
	do {                                                                                       \
		int _k = (expr);                                                                   \
		if (_k < 0)                                                                        \
			return _k;                                                                 \
	} while (0)
