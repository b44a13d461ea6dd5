/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Deprecation records and family resolution (docs/FORMAT.md, "Families and
 * deprecation", "Deprecation files"). The only mutable file in a store is
 * images/<name>.deprecation: replaced as a whole with rename(2), verified by
 * its checksum on every read.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imager/chunk.h"
#include "imager/lifecycle.h"
#include "imager/manifest.h"
#include "imager/store.h"
#include "util/cleanup.h"
#include "util/io.h"
#include "util/log.h"
#include "util/strutil.h"

DEFINE_CLEANUP(struct manifest *, manifest_free)

static const uint8_t deprecation_magic[8] = { 'I', 'M', 'G', 'D', 'E', 'P', 'R', 'C' };
#define DEPRECATION_VERSION_MAJOR 1
#define DEPRECATION_VERSION_MINOR 0
#define DEPRECATION_HEADER_BYTES 64
#define DEPRECATION_SUFFIX ".deprecation"
/* bits of the "scheduled" field: which transition times follow */
#define SCHEDULE_DEPRECATE UINT64_C(1)
#define SCHEDULE_OBSOLETE UINT64_C(2)
#define SCHEDULE_DELETE UINT64_C(4)

/* All integers little-endian. */
struct deprecation_header {
	uint8_t magic[8];       /* "IMGDEPRC" */
	uint16_t version_major; /* larger than ours: -EPROTONOSUPPORT */
	uint16_t version_minor; /* larger is fine: newer fields are appended to the record */
	uint32_t flags;         /* required-feature bits; none defined */
	uint32_t payload_size;  /* bytes after the header */
	uint8_t reserved[12];   /* zero */
	uint8_t checksum[32];   /* SHA-256 of the whole file with these 32 bytes zeroed */
} __attribute__((packed));
_Static_assert(sizeof(struct deprecation_header) == DEPRECATION_HEADER_BYTES,
	       "deprecation header size");

static const char *const state_table[_DEPRECATION_STATE_MAX] = {
	[DEPRECATION_ACTIVE] = "ACTIVE",
	[DEPRECATION_DEPRECATED] = "DEPRECATED",
	[DEPRECATION_OBSOLETE] = "OBSOLETE",
	[DEPRECATION_DELETED] = "DELETED",
};

const char *deprecation_state_to_string(enum deprecation_state s)
{
	if ((int) s < 0 || s >= _DEPRECATION_STATE_MAX)
		return NULL;
	return state_table[s];
}

enum deprecation_state deprecation_state_from_string(const char *s)
{
	if (!s)
		return _DEPRECATION_STATE_INVALID;
	for (int i = 0; i < _DEPRECATION_STATE_MAX; i++)
		if (strcasecmp(state_table[i], s) == 0)
			return (enum deprecation_state) i;
	return _DEPRECATION_STATE_INVALID;
}

void deprecation_done(struct deprecation *d)
{
	if (!d)
		return;
	free(d->replacement);
	d->replacement = NULL;
}

static bool time_due(int64_t when, int64_t now)
{
	return when != DEPRECATION_TIME_UNSET && when <= now;
}

enum deprecation_state deprecation_effective_state(const struct deprecation *d, int64_t now)
{
	enum deprecation_state s;

	if (!d || (int) d->state < 0 || d->state >= _DEPRECATION_STATE_MAX)
		return DEPRECATION_ACTIVE;
	s = d->state;
	if (time_due(d->deprecate_on, now) && s < DEPRECATION_DEPRECATED)
		s = DEPRECATION_DEPRECATED;
	if (time_due(d->obsolete_on, now) && s < DEPRECATION_OBSOLETE)
		s = DEPRECATION_OBSOLETE;
	if (time_due(d->delete_on, now) && s < DEPRECATION_DELETED)
		s = DEPRECATION_DELETED;
	return s;
}

static bool time_ok(int64_t t)
{
	return t == DEPRECATION_TIME_UNSET ||
	       (t > -DEPRECATION_TIME_LIMIT && t < DEPRECATION_TIME_LIMIT);
}

int deprecation_validate(const struct deprecation *d)
{
	int64_t last = DEPRECATION_TIME_UNSET, times[3];

	if (!d || (int) d->state < 0 || d->state >= _DEPRECATION_STATE_MAX)
		return -EINVAL;
	times[0] = d->deprecate_on, times[1] = d->obsolete_on, times[2] = d->delete_on;
	if (d->replacement && !manifest_name_is_valid(d->replacement))
		return -EINVAL;
	if (!time_ok(d->changed_unix))
		return -EINVAL;
	/* deprecation, then obsolescence, then deletion: a later state never comes first */
	for (size_t i = 0; i < ELEMENTSOF(times); i++) {
		if (!time_ok(times[i]))
			return -EINVAL;
		if (times[i] == DEPRECATION_TIME_UNSET)
			continue;
		if (last != DEPRECATION_TIME_UNSET && times[i] < last)
			return -EINVAL;
		last = times[i];
	}
	return 0;
}

/* ---- encoding: the varint, zigzag and str rules of the manifest (docs/FORMAT.md) ---- */

struct obuf {
	uint8_t data[DEPRECATION_FILE_BYTES_MAX];
	size_t size;
	bool overflow;
};

static void o_bytes(struct obuf *o, const void *p, size_t n)
{
	if (o->overflow || n > sizeof(o->data) - o->size) {
		o->overflow = true;
		return;
	}
	memcpy(o->data + o->size, p, n);
	o->size += n;
}

static void o_varint(struct obuf *o, uint64_t v)
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
	o_bytes(o, tmp, n);
}

static void o_zigzag(struct obuf *o, int64_t v)
{
	o_varint(o, ((uint64_t) v << 1) ^ (uint64_t) (v >> 63));
}

static void o_str(struct obuf *o, const char *s)
{
	if (!s) {
		o_varint(o, 0);
		return;
	}
	o_varint(o, (uint64_t) strlen(s) + 1);
	o_bytes(o, s, strlen(s));
}

int deprecation_encode(const struct deprecation *d, void **ret, size_t *ret_size)
{
	_cleanup_free_ struct obuf *rec = NULL, *file = NULL;
	struct deprecation_header h = {};
	struct chunk_id sum;
	uint64_t scheduled = 0;
	void *p;

	if (!d || deprecation_validate(d) < 0)
		return -EINVAL;
	rec = calloc(1, sizeof(*rec));
	file = calloc(1, sizeof(*file));
	if (!rec || !file)
		return -ENOMEM;

	if (d->deprecate_on != DEPRECATION_TIME_UNSET)
		scheduled |= SCHEDULE_DEPRECATE;
	if (d->obsolete_on != DEPRECATION_TIME_UNSET)
		scheduled |= SCHEDULE_OBSOLETE;
	if (d->delete_on != DEPRECATION_TIME_UNSET)
		scheduled |= SCHEDULE_DELETE;
	o_varint(rec, (uint64_t) d->state);
	o_str(rec, d->replacement);
	o_varint(rec, scheduled);
	if (scheduled & SCHEDULE_DEPRECATE)
		o_zigzag(rec, d->deprecate_on);
	if (scheduled & SCHEDULE_OBSOLETE)
		o_zigzag(rec, d->obsolete_on);
	if (scheduled & SCHEDULE_DELETE)
		o_zigzag(rec, d->delete_on);
	o_zigzag(rec, d->changed_unix);
	if (rec->overflow)
		return -EINVAL;

	/* payload: the record, as a DEPRECATION section of a manifest would carry it */
	file->size = DEPRECATION_HEADER_BYTES;
	o_varint(file, rec->size);
	o_bytes(file, rec->data, rec->size);
	if (file->overflow)
		return -EINVAL;

	memcpy(h.magic, deprecation_magic, sizeof(h.magic));
	h.version_major = htole16(DEPRECATION_VERSION_MAJOR);
	h.version_minor = htole16(DEPRECATION_VERSION_MINOR);
	h.payload_size = htole32((uint32_t) (file->size - DEPRECATION_HEADER_BYTES));
	memcpy(file->data, &h, sizeof(h)); /* checksum still zero */
	chunk_id_compute(file->data, file->size, &sum);
	memcpy(file->data + offsetof(struct deprecation_header, checksum), sum.bytes,
	       sizeof(sum.bytes));

	p = malloc(file->size);
	if (!p)
		return -ENOMEM;
	memcpy(p, file->data, file->size);
	*ret_size = file->size;
	*ret = p;
	return 0;
}

/* ---- decoding ---- */

struct ibuf {
	const uint8_t *p;
	size_t n;
};

static int i_varint(struct ibuf *b, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 10; i++) {
		uint8_t c;

		if (b->n == 0)
			return -EBADMSG;
		c = *b->p++;
		b->n--;
		if (i == 9 && c > 1)
			return -EBADMSG;
		v |= (uint64_t) (c & 0x7f) << (7 * i);
		if (!(c & 0x80)) {
			if (c == 0 && i > 0)
				return -EBADMSG; /* overlong */
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

static int i_zigzag(struct ibuf *b, int64_t *ret)
{
	uint64_t zz;
	int r = i_varint(b, &zz);

	if (r < 0)
		return r;
	*ret = (int64_t) ((zz >> 1) ^ (~(zz & 1) + 1));
	return 0;
}

static int i_str(struct ibuf *b, char **ret)
{
	uint64_t len;
	char *s;
	int r = i_varint(b, &len);

	if (r < 0)
		return r;
	if (len == 0) {
		*ret = NULL;
		return 0;
	}
	len--;
	if (len > b->n || len > 255)
		return -EBADMSG;
	if (memchr(b->p, 0, (size_t) len))
		return -EBADMSG;
	s = strndup((const char *) b->p, (size_t) len);
	if (!s)
		return -ENOMEM;
	b->p += len, b->n -= (size_t) len;
	*ret = s;
	return 0;
}

#define TRY(expr)                                                                                  \
	do {                                                                                       \
		int _k = (expr);                                                                   \
		if (_k < 0)                                                                        \
			return _k;                                                                 \
	} while (0)

static int decode_record(struct ibuf *rec, struct deprecation *d)
{
	uint64_t state, scheduled;

	TRY(i_varint(rec, &state));
	if (state >= _DEPRECATION_STATE_MAX)
		return -EPROTONOSUPPORT; /* a state of a newer version */
	d->state = (enum deprecation_state) state;
	TRY(i_str(rec, &d->replacement));
	TRY(i_varint(rec, &scheduled));
	if (scheduled & ~(SCHEDULE_DEPRECATE | SCHEDULE_OBSOLETE | SCHEDULE_DELETE))
		return -EPROTONOSUPPORT; /* a transition this version does not know */
	if (scheduled & SCHEDULE_DEPRECATE)
		TRY(i_zigzag(rec, &d->deprecate_on));
	if (scheduled & SCHEDULE_OBSOLETE)
		TRY(i_zigzag(rec, &d->obsolete_on));
	if (scheduled & SCHEDULE_DELETE)
		TRY(i_zigzag(rec, &d->delete_on));
	TRY(i_zigzag(rec, &d->changed_unix));
	/* a newer minor version's fields follow: skipped */
	return 0;
}

int deprecation_decode(const void *data, size_t size, struct deprecation *ret)
{
	struct deprecation d = DEPRECATION_INIT;
	struct deprecation_header h;
	struct chunk_id sum;
	struct ibuf body, rec;
	uint64_t len;
	int r;

	if (!data || !ret)
		return -EINVAL;
	if (size < DEPRECATION_HEADER_BYTES || size > DEPRECATION_FILE_BYTES_MAX)
		return -EBADMSG;
	memcpy(&h, data, sizeof(h));
	if (memcmp(h.magic, deprecation_magic, sizeof(h.magic)) != 0)
		return -EBADMSG;
	if (le16toh(h.version_major) == 0)
		return -EBADMSG;
	if (le16toh(h.version_major) > DEPRECATION_VERSION_MAJOR)
		return -EPROTONOSUPPORT;
	if (le32toh(h.payload_size) != size - DEPRECATION_HEADER_BYTES)
		return -EBADMSG;
	for (size_t i = 0; i < sizeof(h.reserved); i++)
		if (h.reserved[i])
			return -EBADMSG;
	{
		/* the whole file with the checksum field zeroed, as for manifests */
		uint8_t copy[DEPRECATION_FILE_BYTES_MAX];

		memcpy(copy, data, size);
		memset(copy + offsetof(struct deprecation_header, checksum), 0, sizeof(h.checksum));
		chunk_id_compute(copy, size, &sum);
		if (memcmp(sum.bytes, h.checksum, sizeof(h.checksum)) != 0)
			return -EBADMSG;
	}
	if (le32toh(h.flags) != 0)
		return -EPROTONOSUPPORT;

	body = (struct ibuf){ (const uint8_t *) data + DEPRECATION_HEADER_BYTES,
			      size - DEPRECATION_HEADER_BYTES };
	r = i_varint(&body, &len);
	if (r < 0)
		return r;
	if (len != body.n)
		return -EBADMSG; /* exactly one record */
	rec = (struct ibuf){ body.p, (size_t) len };
	r = decode_record(&rec, &d);
	if (r >= 0 && deprecation_validate(&d) < 0)
		r = -EBADMSG;
	if (r < 0) {
		deprecation_done(&d);
		return r;
	}
	*ret = d;
	return 0;
}

/* ---- files ---- */

static int deprecation_relpath(const char *name, char **ret)
{
	char *p;

	if (!manifest_name_is_valid(name))
		return -EINVAL;
	if (asprintf(&p, "images/%s" DEPRECATION_SUFFIX, name) < 0)
		return -ENOMEM;
	*ret = p;
	return 0;
}

int store_get_deprecation(struct store *s, const char *name, struct deprecation *ret)
{
	_cleanup_free_ char *path = NULL, *data = NULL;
	size_t size;
	int r;

	if (!s || !ret)
		return -EINVAL;
	r = deprecation_relpath(name, &path);
	if (r < 0)
		return r;
	r = read_file_at(store_dir_fd(s), path, DEPRECATION_FILE_BYTES_MAX, &data, &size);
	if (r == -EFBIG)
		return -EBADMSG;
	if (r < 0)
		return r;
	return deprecation_decode(data, size, ret);
}

int store_put_deprecation(struct store *s, const char *name, const struct deprecation *d)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ void *data = NULL;
	size_t size;
	int r;

	if (!s)
		return -EINVAL;
	r = deprecation_relpath(name, &path);
	if (r < 0)
		return r;
	if (!d) {
		if (unlinkat(store_dir_fd(s), path, 0) < 0)
			return errno == ENOENT ? 0 : -errno;
		return fsync_parent_at(store_dir_fd(s), path);
	}
	r = deprecation_encode(d, &data, &size);
	if (r < 0)
		return r;
	return write_file_atomic_replace(store_dir_fd(s), path, data, size);
}

/* ---- families ---- */

int family_pick(const struct family_candidate *c, size_t n)
{
	int best = -ENOENT;

	for (size_t i = 0; i < n; i++) {
		const struct family_candidate *b;

		if (c[i].state != DEPRECATION_ACTIVE)
			continue;
		if (best < 0) {
			best = (int) i;
			continue;
		}
		b = &c[best];
		if (c[i].created_unix > b->created_unix ||
		    (c[i].created_unix == b->created_unix && strcmp(c[i].name, b->name) > 0))
			best = (int) i;
	}
	return best;
}

int store_resolve_family(struct store *s, const char *family, int64_t now, char **ret_name,
			 size_t *ret_n_members)
{
	_cleanup_strv_free_ char **names = NULL;
	_cleanup_free_ struct family_candidate *c = NULL;
	size_t n = 0, total = 0;
	char *name;
	int r, best;

	if (!s || !manifest_name_is_valid(family))
		return -EINVAL;
	r = store_list_manifests(s, &names);
	if (r < 0)
		return r;
	for (char **p = names; *p; p++)
		total++;
	c = calloc(MAX(total, (size_t) 1), sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (char **p = names; *p; p++) {
		_cleanup_(manifest_freep) struct manifest *m = NULL;
		struct deprecation d = DEPRECATION_INIT;
		enum deprecation_state state = DEPRECATION_ACTIVE;

		r = store_get_manifest(s, *p, &m);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			log_debug_errno(r, "Skipping image '%s' while resolving family '%s': %m", *p,
					family);
			continue;
		}
		if (!streq_ptr(m->family, family))
			continue;
		r = store_get_deprecation(s, *p, &d);
		if (r >= 0) {
			state = deprecation_effective_state(&d, now);
			deprecation_done(&d);
		} else if (r != -ENOENT) {
			/* unreadable state: it may be obsolete, so never pick it */
			log_debug_errno(r, "Deprecation of '%s' unreadable, skipping: %m", *p);
			state = DEPRECATION_DELETED;
		}
		c[n++] = (struct family_candidate){ *p, m->created_unix, state };
	}
	if (ret_n_members)
		*ret_n_members = n;
	best = family_pick(c, n);
	if (best < 0)
		return best;
	name = strdup(c[best].name);
	if (!name)
		return -ENOMEM;
	*ret_name = name;
	return 0;
}
