/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "wire.h"

void wire_out_done(struct wire_out *b)
{
	free(b->data);
	b->data = NULL;
	b->size = b->cap = 0;
}

uint8_t *wire_out_grow(struct wire_out *b, size_t n)
{
	if (b->error < 0)
		return NULL;
	if (b->max > 0 && n > b->max - MIN(b->size, b->max)) {
		b->error = -E2BIG;
		return NULL;
	}
	if (n > b->cap - b->size) {
		size_t cap = MAX(b->cap * 2, b->size + n);
		uint8_t *p;

		cap = MAX(cap, (size_t) 256);
		p = realloc(b->data, cap);
		if (!p) {
			b->error = -ENOMEM;
			return NULL;
		}
		b->data = p, b->cap = cap;
	}
	b->size += n;
	return b->data + b->size - n;
}

void wire_put_bytes(struct wire_out *b, const void *p, size_t n)
{
	uint8_t *q = wire_out_grow(b, n);

	if (q && n)
		memcpy(q, p, n);
}

void wire_put_varint(struct wire_out *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = v & 0x7f;
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	wire_put_bytes(b, tmp, n);
}

void wire_put_zigzag(struct wire_out *b, int64_t v)
{
	wire_put_varint(b, ((uint64_t) v << 1) ^ (uint64_t) (v >> 63));
}

void wire_put_str(struct wire_out *b, const char *s)
{
	/* length + 1, so that 0 stands for "none" (NULL) */
	if (!s) {
		wire_put_varint(b, 0);
		return;
	}
	wire_put_varint(b, (uint64_t) strlen(s) + 1);
	wire_put_bytes(b, s, strlen(s));
}

void wire_put_record(struct wire_out *b, const struct wire_out *rec)
{
	if (rec->error < 0) {
		if (b->error >= 0)
			b->error = rec->error;
		return;
	}
	wire_put_varint(b, rec->size);
	wire_put_bytes(b, rec->data, rec->size);
}

int wire_get_bytes(struct wire_in *r, size_t n, const uint8_t **ret)
{
	if (n > r->n)
		return -EBADMSG;
	*ret = r->p;
	r->p += n, r->n -= n;
	return 0;
}

int wire_get_varint(struct wire_in *r, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 10; i++) {
		uint8_t c;

		if (r->n == 0)
			return -EBADMSG;
		c = *r->p++;
		r->n--;
		if (i == 9 && c > 1)
			return -EBADMSG; /* more than 64 bits */
		v |= (uint64_t) (c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			if (c == 0 && i > 0)
				return -EBADMSG; /* overlong: one value, one encoding */
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

int wire_get_u32(struct wire_in *r, uint32_t *ret)
{
	uint64_t v;

	WIRE_TRY(wire_get_varint(r, &v));
	if (v > UINT32_MAX)
		return -EBADMSG;
	*ret = (uint32_t) v;
	return 0;
}

int wire_get_zigzag(struct wire_in *r, int64_t *ret)
{
	uint64_t zz;

	WIRE_TRY(wire_get_varint(r, &zz));
	*ret = (int64_t) ((zz >> 1) ^ (~(zz & 1) + 1));
	return 0;
}

int wire_get_str(struct wire_in *r, size_t max_len, char **ret)
{
	const uint8_t *p;
	uint64_t len;
	char *s;

	WIRE_TRY(wire_get_varint(r, &len));
	if (len == 0) {
		*ret = NULL;
		return 0;
	}
	len--;
	if (len > max_len)
		return -EBADMSG;
	WIRE_TRY(wire_get_bytes(r, (size_t) len, &p));
	if (memchr(p, 0, (size_t) len))
		return -EBADMSG;
	s = strndup((const char *) p, (size_t) len);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int wire_get_record(struct wire_in *r, struct wire_in *ret)
{
	const uint8_t *p;
	uint64_t len;

	WIRE_TRY(wire_get_varint(r, &len));
	if (len > r->n)
		return -EBADMSG;
	WIRE_TRY(wire_get_bytes(r, (size_t) len, &p));
	*ret = (struct wire_in){ p, (size_t) len };
	return 0;
}
