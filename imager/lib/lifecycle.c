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
#include "util/wire.h"

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

static const char *const deprecation_state_table[_DEPRECATION_STATE_MAX] = {
	[DEPRECATION_ACTIVE] = "ACTIVE",
	[DEPRECATION_DEPRECATED] = "DEPRECATED",
	[DEPRECATION_OBSOLETE] = "OBSOLETE",
	[DEPRECATION_DELETED] = "DELETED",
};
DEFINE_STRING_TABLE_TO_STRING(deprecation_state, enum deprecation_state, _DEPRECATION_STATE_MAX)
DEFINE_STRING_TABLE_FROM_STRING(deprecation_state, enum deprecation_state, _DEPRECATION_STATE_MAX,
				_DEPRECATION_STATE_INVALID, strcasecmp)

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

/* ---- encoding: the manifest's wire rules (util/wire.h, docs/FORMAT.md) ---- */

/* an image name is at most 63 bytes; the decoder bounds the field before it allocates */
#define REPLACEMENT_BYTES_MAX 255

int deprecation_encode(const struct deprecation *d, void **ret, size_t *ret_size)
{
	_cleanup_(wire_out_done) struct wire_out rec = { .max = DEPRECATION_FILE_BYTES_MAX },
						 file = { .max = DEPRECATION_FILE_BYTES_MAX };
	struct deprecation_header h = {};
	struct chunk_id sum;
	uint64_t scheduled = 0;
	uint8_t *head;

	if (!d || deprecation_validate(d) < 0)
		return -EINVAL;

	if (d->deprecate_on != DEPRECATION_TIME_UNSET)
		scheduled |= SCHEDULE_DEPRECATE;
	if (d->obsolete_on != DEPRECATION_TIME_UNSET)
		scheduled |= SCHEDULE_OBSOLETE;
	if (d->delete_on != DEPRECATION_TIME_UNSET)
		scheduled |= SCHEDULE_DELETE;
	wire_put_varint(&rec, (uint64_t) d->state);
	wire_put_str(&rec, d->replacement);
	wire_put_varint(&rec, scheduled);
	if (scheduled & SCHEDULE_DEPRECATE)
		wire_put_zigzag(&rec, d->deprecate_on);
	if (scheduled & SCHEDULE_OBSOLETE)
		wire_put_zigzag(&rec, d->obsolete_on);
	if (scheduled & SCHEDULE_DELETE)
		wire_put_zigzag(&rec, d->delete_on);
	wire_put_zigzag(&rec, d->changed_unix);

	/* payload: the record, as a DEPRECATION section of a manifest would carry it */
	head = wire_out_grow(&file, DEPRECATION_HEADER_BYTES);
	if (head)
		memset(head, 0, DEPRECATION_HEADER_BYTES);
	wire_put_record(&file, &rec);
	if (file.error < 0)
		return file.error == -E2BIG ? -EINVAL : file.error;

	memcpy(h.magic, deprecation_magic, sizeof(h.magic));
	h.version_major = htole16(DEPRECATION_VERSION_MAJOR);
	h.version_minor = htole16(DEPRECATION_VERSION_MINOR);
	h.payload_size = htole32((uint32_t) (file.size - DEPRECATION_HEADER_BYTES));
	memcpy(file.data, &h, sizeof(h)); /* checksum still zero */
	chunk_id_compute(file.data, file.size, &sum);
	memcpy(file.data + offsetof(struct deprecation_header, checksum), sum.bytes,
	       sizeof(sum.bytes));

	*ret_size = file.size;
	*ret = TAKE_PTR(file.data);
	return 0;
}

/* ---- decoding ---- */

static int decode_record(struct wire_in *rec, struct deprecation *d)
{
	uint64_t state, scheduled;

	WIRE_TRY(wire_get_varint(rec, &state));
	if (state >= _DEPRECATION_STATE_MAX)
		return -EPROTONOSUPPORT; /* a state of a newer version */
	d->state = (enum deprecation_state) state;
	WIRE_TRY(wire_get_str(rec, REPLACEMENT_BYTES_MAX, &d->replacement));
	WIRE_TRY(wire_get_varint(rec, &scheduled));
	if (scheduled & ~(SCHEDULE_DEPRECATE | SCHEDULE_OBSOLETE | SCHEDULE_DELETE))
		return -EPROTONOSUPPORT; /* a transition this version does not know */
	if (scheduled & SCHEDULE_DEPRECATE)
		WIRE_TRY(wire_get_zigzag(rec, &d->deprecate_on));
	if (scheduled & SCHEDULE_OBSOLETE)
		WIRE_TRY(wire_get_zigzag(rec, &d->obsolete_on));
	if (scheduled & SCHEDULE_DELETE)
		WIRE_TRY(wire_get_zigzag(rec, &d->delete_on));
	WIRE_TRY(wire_get_zigzag(rec, &d->changed_unix));
	/* a newer minor version's fields follow: skipped */
	return 0;
}

int deprecation_decode(const void *data, size_t size, struct deprecation *ret)
{
	struct deprecation d = DEPRECATION_INIT;
	struct deprecation_header h;
	struct chunk_id sum;
	struct wire_in body, rec;
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

	body = (struct wire_in){ (const uint8_t *) data + DEPRECATION_HEADER_BYTES,
			      size - DEPRECATION_HEADER_BYTES };
	r = wire_get_varint(&body, &len);
	if (r < 0)
		return r;
	if (len != body.n)
		return -EBADMSG; /* exactly one record */
	rec = (struct wire_in){ body.p, (size_t) len };
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
