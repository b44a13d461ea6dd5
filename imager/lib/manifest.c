/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Image manifests: encoding, decoding, validation and the content digest.
 * The byte layout is specified in docs/FORMAT.md ("Manifest"); keep the two
 * in step. Decoding trusts nothing: every count and length is bounded by
 * both a constant and the bytes actually left before anything is allocated.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "imager/chunk.h"
#include "imager/manifest.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "util/strutil.h"
#include "util/wire.h"

static const uint8_t manifest_magic[8] = { 'I', 'M', 'G', 'M', 'A', 'N', 'I', 'F' };
#define MANIFEST_HEADER_BYTES 96
#define MANIFEST_HEADER_BYTES_MAX 4096
#define SECTION_HEADER_BYTES 16
#define DIGEST_DOMAIN "imager content digest v1" /* hashed with its NUL */

/* All integers little-endian. */
struct manifest_header {
	uint8_t magic[8];          /* "IMGMANIF" */
	uint16_t version_major;    /* larger than ours: -EPROTONOSUPPORT */
	uint16_t version_minor;    /* larger than ours: fine, newer fields are skipped */
	uint32_t header_size;      /* >= 96; a newer minor may append header fields */
	uint32_t flags;            /* required-feature bits; none defined in 1.0 */
	uint32_t n_sections;
	uint64_t body_size;        /* bytes after the header: header_size + body_size = file */
	uint8_t checksum[32];      /* SHA-256 of the whole file with these 32 bytes zeroed */
	uint8_t content_digest[32];/* manifest_compute_digest() */
} __attribute__((packed));

_Static_assert(sizeof(struct manifest_header) == MANIFEST_HEADER_BYTES, "manifest header size");
_Static_assert(offsetof(struct manifest_header, version_major) == 8, "manifest header layout");
_Static_assert(offsetof(struct manifest_header, header_size) == 12, "manifest header layout");
_Static_assert(offsetof(struct manifest_header, flags) == 16, "manifest header layout");
_Static_assert(offsetof(struct manifest_header, n_sections) == 20, "manifest header layout");
_Static_assert(offsetof(struct manifest_header, body_size) == 24, "manifest header layout");
_Static_assert(offsetof(struct manifest_header, checksum) == 32, "manifest header layout");
_Static_assert(offsetof(struct manifest_header, content_digest) == 64, "manifest header layout");

struct section_header {
	uint32_t type;   /* enum manifest_section_type */
	uint32_t flags;  /* MANIFEST_SECTION_FLAG_REQUIRED; other bits reserved, ignored */
	uint64_t length; /* payload bytes that follow */
} __attribute__((packed));
_Static_assert(sizeof(struct section_header) == SECTION_HEADER_BYTES, "section header size");

/* ---- capture methods and names ---- */

static const char *const capture_method_table[_CAPTURE_METHOD_MAX] = {
	[CAPTURE_NONE] = "none",
	[CAPTURE_EXT_USED] = "ext-used",
	[CAPTURE_FAT_USED] = "fat-used",
	[CAPTURE_SWAP_HEADER] = "swap-header",
	[CAPTURE_BIOS_BOOT] = "bios-boot",
	[CAPTURE_RAW] = "raw",
};

DEFINE_STRING_TABLE_TO_STRING(capture_method, enum capture_method, _CAPTURE_METHOD_MAX)
DEFINE_STRING_TABLE_FROM_STRING(capture_method, enum capture_method, _CAPTURE_METHOD_MAX,
				_CAPTURE_METHOD_INVALID, strcmp)

static const char *const manifest_kind_table[_MANIFEST_KIND_MAX] = {
	[MANIFEST_KIND_IMAGE] = "image",
	[MANIFEST_KIND_SNAPSHOT] = "snapshot",
};

DEFINE_STRING_TABLE_TO_STRING(manifest_kind, enum manifest_kind, _MANIFEST_KIND_MAX)
DEFINE_STRING_TABLE_FROM_STRING(manifest_kind, enum manifest_kind, _MANIFEST_KIND_MAX,
				_MANIFEST_KIND_INVALID, strcmp)

static const char *const manifest_source_type_table[_MANIFEST_SOURCE_TYPE_MAX] = {
	[MANIFEST_SOURCE_NONE] = "none",
	[MANIFEST_SOURCE_DISK] = "disk",
	[MANIFEST_SOURCE_IMAGE] = "image",
	[MANIFEST_SOURCE_SNAPSHOT] = "snapshot",
	[MANIFEST_SOURCE_FILE] = "file",
};

DEFINE_STRING_TABLE_TO_STRING(manifest_source_type, enum manifest_source_type,
			      _MANIFEST_SOURCE_TYPE_MAX)

void manifest_source_done(struct manifest_source *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->format);
	strv_free(s->nodes);
	*s = (struct manifest_source){ .type = MANIFEST_SOURCE_NONE };
}

bool manifest_name_is_valid(const char *name)
{
	size_t n;

	/* GCE's resource name rule: [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 */
	if (!name)
		return false;
	n = strlen(name);
	if (n == 0 || n > 63)
		return false;
	if (name[0] < 'a' || name[0] > 'z')
		return false;
	if (name[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

/* ---- freeing ---- */

static void partition_done(struct manifest_partition *p)
{
	free(p->type);
	free(p->uuid);
	free(p->name);
	free(p->fs_type);
	free(p->fs_uuid);
	free(p->fs_label);
}

static void disk_done(struct manifest_disk *d)
{
	free(d->label);
	free(d->disk_id);
	if (d->partitions)
		for (size_t i = 0; i < d->n_partitions; i++)
			partition_done(&d->partitions[i]);
	free(d->partitions);
	free(d->extents);
	free(d->chunks);
	free(d->model);
	free(d->serial);
}

struct manifest *manifest_free(struct manifest *m)
{
	if (!m)
		return NULL;
	free(m->name);
	free(m->description);
	strv_free(m->labels);
	free(m->family);
	manifest_source_done(&m->source);
	free(m->tool_version);
	free(m->host_vendor);
	free(m->host_product);
	free(m->host_serial);
	if (m->disks)
		for (size_t i = 0; i < m->n_disks; i++)
			disk_done(&m->disks[i]);
	free(m->disks);
	free(m);
	return NULL;
}
DEFINE_CLEANUP(struct manifest *, manifest_free)

/* ---- content digest ---- */

struct digest {
	EVP_MD_CTX *ctx;
};

static void d_bytes(struct digest *d, const void *p, size_t n)
{
	if (EVP_DigestUpdate(d->ctx, p, n) != 1)
		abort(); /* cannot fail for SHA-256 once initialised */
}

static void d_u8(struct digest *d, uint8_t v)
{
	d_bytes(d, &v, 1);
}

static void d_u32(struct digest *d, uint32_t v)
{
	uint32_t le = htole32(v);
	d_bytes(d, &le, sizeof(le));
}

static void d_u64(struct digest *d, uint64_t v)
{
	uint64_t le = htole64(v);
	d_bytes(d, &le, sizeof(le));
}

static void d_str(struct digest *d, const char *s)
{
	if (!s) {
		d_u32(d, UINT32_MAX);
		return;
	}
	d_u32(d, (uint32_t) strlen(s));
	d_bytes(d, s, strlen(s));
}

void manifest_compute_digest(const struct manifest *m, uint8_t ret[32])
{
	struct digest d = { EVP_MD_CTX_new() };
	unsigned len = 0;

	/* A void function cannot report OOM; a wrong digest would be worse. */
	if (!d.ctx || EVP_DigestInit_ex(d.ctx, EVP_sha256(), NULL) != 1)
		abort();

	/* The canonical order of docs/FORMAT.md, "Content digest". */
	d_bytes(&d, DIGEST_DOMAIN, sizeof(DIGEST_DOMAIN));
	d_u32(&d, (uint32_t) m->n_disks);
	for (size_t i = 0; i < m->n_disks; i++) {
		const struct manifest_disk *k = &m->disks[i];

		d_u64(&d, k->size_bytes);
		d_u32(&d, k->logical_sector_bytes);
		d_u32(&d, k->physical_sector_bytes);
		d_str(&d, k->label);
		d_str(&d, k->disk_id);
		d_u64(&d, k->first_usable_bytes);
		d_u64(&d, k->last_usable_bytes);
		d_u32(&d, k->gpt_n_entries_max);
		d_bytes(&d, k->boot_code, sizeof(k->boot_code));
		d_u64(&d, k->boot_gap_bytes);

		d_u32(&d, (uint32_t) k->n_partitions);
		for (size_t j = 0; j < k->n_partitions; j++) {
			const struct manifest_partition *p = &k->partitions[j];

			d_u32(&d, p->partno);
			d_u64(&d, p->start_bytes);
			d_u64(&d, p->size_bytes);
			d_str(&d, p->type);
			d_str(&d, p->uuid);
			d_str(&d, p->name);
			d_u64(&d, p->attrs);
			d_u8(&d, p->bootable ? 1 : 0);
		}

		d_u64(&d, k->n_extents);
		for (size_t j = 0; j < k->n_extents; j++) {
			d_u64(&d, k->extents[j].offset_bytes);
			d_u64(&d, k->extents[j].size_bytes);
		}

		d_u64(&d, k->n_chunks);
		for (size_t j = 0; j < k->n_chunks; j++) {
			const struct manifest_chunk *c = &k->chunks[j];
			uint8_t rec[8 + 4 + CHUNK_ID_BYTES];
			uint64_t off = htole64(c->offset_bytes);
			uint32_t sz = htole32(c->size_bytes);

			memcpy(rec, &off, 8);
			memcpy(rec + 8, &sz, 4);
			memcpy(rec + 12, c->id.bytes, CHUNK_ID_BYTES);
			d_bytes(&d, rec, sizeof(rec));
		}
	}
	if (EVP_DigestFinal_ex(d.ctx, ret, &len) != 1 || len != 32)
		abort();
	EVP_MD_CTX_free(d.ctx);
}

/* ---- validation (shared by encode and decode) ---- */

#define INVALID(...)                                                                               \
	({                                                                                         \
		log_debug("Manifest invalid: " __VA_ARGS__);                                       \
		-EBADMSG;                                                                          \
	})

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static bool string_ok(const char *s)
{
	return !s || strlen(s) <= MANIFEST_STRING_MAX;
}

/* inside [0, limit): start + size <= limit without overflow */
static bool range_inside(uint64_t start, uint64_t size, uint64_t limit)
{
	return start <= limit && size <= limit - start;
}

static int validate_disk(const struct manifest_disk *d, size_t idx)
{
	uint64_t prev_end = 0, sum = 0;

	if (d->size_bytes == 0)
		return INVALID("disk %zu has size 0", idx);
	if (!is_pow2(d->logical_sector_bytes) || d->logical_sector_bytes > MANIFEST_SECTOR_BYTES_MAX ||
	    !is_pow2(d->physical_sector_bytes) || d->physical_sector_bytes > MANIFEST_SECTOR_BYTES_MAX ||
	    d->physical_sector_bytes < d->logical_sector_bytes)
		return INVALID("disk %zu sector sizes %u/%u", idx, d->logical_sector_bytes,
			       d->physical_sector_bytes);
	if (d->size_bytes % d->logical_sector_bytes != 0)
		return INVALID("disk %zu size not a multiple of its sector size", idx);
	if (!d->label || !string_ok(d->label) || !string_ok(d->disk_id) || !string_ok(d->model) ||
	    !string_ok(d->serial))
		return INVALID("disk %zu strings", idx);
	if (d->first_usable_bytes > d->size_bytes || d->last_usable_bytes > d->size_bytes ||
	    d->first_usable_bytes > d->last_usable_bytes)
		return INVALID("disk %zu usable range", idx);
	if (d->gpt_n_entries_max > MANIFEST_GPT_ENTRIES_MAX)
		return INVALID("disk %zu GPT entries", idx);
	if (d->boot_gap_bytes > MANIFEST_BOOT_GAP_BYTES_MAX || d->boot_gap_bytes > d->size_bytes)
		return INVALID("disk %zu boot gap", idx);

	if (d->n_partitions > MANIFEST_PARTITIONS_MAX || (d->n_partitions && !d->partitions))
		return INVALID("disk %zu partition count", idx);
	for (size_t i = 0; i < d->n_partitions; i++) {
		const struct manifest_partition *p = &d->partitions[i];

		if (p->size_bytes == 0 || !range_inside(p->start_bytes, p->size_bytes, d->size_bytes))
			return INVALID("disk %zu partition %zu outside the disk", idx, i);
		if ((int) p->method < 0 || p->method >= _CAPTURE_METHOD_MAX)
			return INVALID("disk %zu partition %zu method", idx, i);
		if (p->fs_used_bytes > p->size_bytes)
			return INVALID("disk %zu partition %zu used bytes", idx, i);
		if (!string_ok(p->type) || !string_ok(p->uuid) || !string_ok(p->name) ||
		    !string_ok(p->fs_type) || !string_ok(p->fs_uuid) || !string_ok(p->fs_label))
			return INVALID("disk %zu partition %zu strings", idx, i);
	}

	if (d->n_extents > MANIFEST_EXTENTS_MAX || (d->n_extents && !d->extents))
		return INVALID("disk %zu extent count", idx);
	if (d->n_chunks > MANIFEST_CHUNKS_MAX || (d->n_chunks && !d->chunks))
		return INVALID("disk %zu chunk count", idx);

	for (size_t i = 0; i < d->n_extents; i++) {
		const struct manifest_extent *e = &d->extents[i];

		if (e->size_bytes == 0 || !range_inside(e->offset_bytes, e->size_bytes, d->size_bytes))
			return INVALID("disk %zu extent %zu outside the disk", idx, i);
		/* sorted, and merged: adjacent extents would give a second encoding */
		if (i > 0 && e->offset_bytes <= prev_end)
			return INVALID("disk %zu extent %zu overlaps, touches or precedes the last", idx,
				       i);
		prev_end = e->offset_bytes + e->size_bytes;
		sum += e->size_bytes;
	}
	if (sum != d->used_bytes)
		return INVALID("disk %zu used bytes %llu != sum of extents %llu", idx,
			       (unsigned long long) d->used_bytes, (unsigned long long) sum);

	for (size_t i = 0; i < d->n_chunks; i++) {
		const struct manifest_chunk *c = &d->chunks[i];

		if (c->offset_bytes % CHUNK_SIZE_BYTES != 0 || c->offset_bytes >= d->size_bytes)
			return INVALID("disk %zu chunk %zu offset", idx, i);
		if (c->size_bytes != MIN((uint64_t) CHUNK_SIZE_BYTES, d->size_bytes - c->offset_bytes))
			return INVALID("disk %zu chunk %zu size", idx, i);
		if (i > 0 && c->offset_bytes <= d->chunks[i - 1].offset_bytes)
			return INVALID("disk %zu chunks not sorted", idx);
	}

	/*
	 * Every chunk holds part of an extent. Extents may touch chunk positions
	 * that are not listed: those were all zero and are written as zeros.
	 * So that one disk has one chunk list (and one content digest), an
	 * all-zero chunk must not be listed.
	 */
	for (size_t i = 0, k = 0; k < d->n_chunks; k++) {
		const struct manifest_chunk *c = &d->chunks[k];

		while (i < d->n_extents &&
		       d->extents[i].offset_bytes + d->extents[i].size_bytes <= c->offset_bytes)
			i++;
		if (i >= d->n_extents || d->extents[i].offset_bytes >= c->offset_bytes + c->size_bytes)
			return INVALID("disk %zu chunk %zu holds no extent", idx, k);
		if (chunk_id_is_zero(&c->id, c->size_bytes))
			return INVALID("disk %zu chunk %zu is all zero: it must not be listed", idx, k);
	}
	return 0;
}

static int validate_source(const struct manifest_source *src)
{
	size_t n = 0;

	if ((int) src->type < 0 || src->type >= _MANIFEST_SOURCE_TYPE_MAX)
		return INVALID("source type %d", (int) src->type);
	/* NONE is written as no section at all: nothing may be lost silently */
	if (src->type == MANIFEST_SOURCE_NONE &&
	    (src->name || src->format || src->has_digest || (src->nodes && src->nodes[0])))
		return INVALID("source of type none has fields");
	if (!string_ok(src->name) || !string_ok(src->format))
		return INVALID("source strings");
	/* a source image or snapshot is named like one */
	if ((src->type == MANIFEST_SOURCE_IMAGE || src->type == MANIFEST_SOURCE_SNAPSHOT) &&
	    !manifest_name_is_valid(src->name))
		return INVALID("source name");
	for (char **p = src->nodes; p && *p; p++)
		if (++n > MANIFEST_DISKS_MAX || !string_ok(*p))
			return INVALID("source nodes");
	return 0;
}

static int validate_structure(const struct manifest *m)
{
	size_t n_labels = 0;
	int r;

	if (!manifest_name_is_valid(m->name))
		return INVALID("name");
	if (!string_ok(m->description) || !string_ok(m->tool_version) ||
	    !string_ok(m->host_vendor) || !string_ok(m->host_product) ||
	    !string_ok(m->host_serial))
		return INVALID("strings");
	for (char **l = m->labels; l && *l; l++) {
		const char *eq = strchr(*l, '=');

		if (++n_labels > MANIFEST_LABELS_MAX)
			return INVALID("too many labels");
		if (!string_ok(*l) || !eq || eq == *l)
			return INVALID("label '%s' is not key=value", *l);
	}
	if (m->family && !manifest_name_is_valid(m->family))
		return INVALID("family");
	if ((int) m->kind < 0 || m->kind >= _MANIFEST_KIND_MAX)
		return INVALID("kind %d", (int) m->kind);
	r = validate_source(&m->source);
	if (r < 0)
		return r;
	if (m->n_disks == 0 || m->n_disks > MANIFEST_DISKS_MAX || !m->disks)
		return INVALID("disk count %zu", m->n_disks);
	for (size_t i = 0; i < m->n_disks; i++) {
		r = validate_disk(&m->disks[i], i);
		if (r < 0)
			return r;
	}
	return 0;
}

int manifest_validate(const struct manifest *m)
{
	uint8_t digest[32];
	int r;

	if (!m)
		return -EINVAL;
	r = validate_structure(m);
	if (r < 0)
		return r;
	manifest_compute_digest(m, digest);
	if (memcmp(digest, m->content_digest, sizeof(digest)) != 0)
		return INVALID("content digest does not match");
	return 0;
}

/* ---- encoding ---- */

static size_t section_begin(struct wire_out *b, uint32_t type, uint32_t flags)
{
	struct section_header h = { htole32(type), htole32(flags), 0 };
	size_t at = b->size;

	wire_put_bytes(b, &h, sizeof(h));
	return at;
}

static void section_end(struct wire_out *b, size_t at)
{
	uint64_t len;

	if (b->error < 0)
		return;
	len = htole64((uint64_t) (b->size - at - SECTION_HEADER_BYTES));
	memcpy(b->data + at + offsetof(struct section_header, length), &len, sizeof(len));
}

static void encode_image(struct wire_out *b, const struct manifest *m)
{
	_cleanup_(wire_out_done) struct wire_out rec = {};
	size_t n_labels = 0, at;

	for (char **l = m->labels; l && *l; l++)
		n_labels++;
	wire_put_str(&rec, m->name);
	wire_put_str(&rec, m->description);
	wire_put_zigzag(&rec, m->created_unix);
	wire_put_str(&rec, m->tool_version);
	wire_put_str(&rec, m->host_vendor);
	wire_put_str(&rec, m->host_product);
	wire_put_str(&rec, m->host_serial);
	wire_put_varint(&rec, n_labels);
	for (size_t i = 0; i < n_labels; i++)
		wire_put_str(&rec, m->labels[i]);
	wire_put_varint(&rec, (uint64_t) m->kind); /* since 1.1 */

	at = section_begin(b, MANIFEST_SECTION_IMAGE, MANIFEST_SECTION_FLAG_REQUIRED);
	wire_put_record(b, &rec);
	section_end(b, at);
}

/* Optional, so that v1.0 readers skip it: a family never changes what is flashed. */
static void encode_family(struct wire_out *b, const struct manifest *m)
{
	_cleanup_(wire_out_done) struct wire_out rec = {};
	size_t at;

	wire_put_str(&rec, m->family);
	at = section_begin(b, MANIFEST_SECTION_FAMILY, 0);
	wire_put_record(b, &rec);
	section_end(b, at);
}

/* Optional: where an image came from never changes what is flashed. */
static void encode_source(struct wire_out *b, const struct manifest_source *src)
{
	_cleanup_(wire_out_done) struct wire_out rec = {};
	size_t at, n_nodes = 0;

	for (char **p = src->nodes; p && *p; p++)
		n_nodes++;
	wire_put_varint(&rec, (uint64_t) src->type);
	wire_put_str(&rec, src->name);
	wire_put_str(&rec, src->format);
	wire_put_varint(&rec, src->has_digest ? 1 : 0);
	if (src->has_digest)
		wire_put_bytes(&rec, src->digest, sizeof(src->digest));
	wire_put_varint(&rec, n_nodes);
	for (size_t i = 0; i < n_nodes; i++)
		wire_put_str(&rec, src->nodes[i]);
	at = section_begin(b, MANIFEST_SECTION_SOURCE, 0);
	wire_put_record(b, &rec);
	section_end(b, at);
}

static void encode_disk(struct wire_out *b, const struct manifest_disk *d)
{
	_cleanup_(wire_out_done) struct wire_out rec = {};
	uint64_t prev_end = 0, next_idx = 0;
	size_t at;

	wire_put_varint(&rec, d->size_bytes);
	wire_put_varint(&rec, d->logical_sector_bytes);
	wire_put_varint(&rec, d->physical_sector_bytes);
	wire_put_str(&rec, d->label);
	wire_put_str(&rec, d->disk_id);
	wire_put_varint(&rec, d->first_usable_bytes);
	wire_put_varint(&rec, d->last_usable_bytes);
	wire_put_varint(&rec, d->gpt_n_entries_max);
	wire_put_bytes(&rec, d->boot_code, sizeof(d->boot_code));
	wire_put_varint(&rec, d->boot_gap_bytes);
	wire_put_varint(&rec, d->used_bytes);
	wire_put_str(&rec, d->model);
	wire_put_str(&rec, d->serial);

	at = section_begin(b, MANIFEST_SECTION_DISK, MANIFEST_SECTION_FLAG_REQUIRED);
	wire_put_record(b, &rec);

	wire_put_varint(b, d->n_partitions);
	for (size_t i = 0; i < d->n_partitions; i++) {
		_cleanup_(wire_out_done) struct wire_out prec = {};
		const struct manifest_partition *p = &d->partitions[i];

		wire_put_varint(&prec, p->partno);
		wire_put_varint(&prec, p->start_bytes);
		wire_put_varint(&prec, p->size_bytes);
		wire_put_str(&prec, p->type);
		wire_put_str(&prec, p->uuid);
		wire_put_str(&prec, p->name);
		wire_put_varint(&prec, p->attrs);
		wire_put_varint(&prec, p->bootable ? 1 : 0);
		wire_put_varint(&prec, (uint64_t) p->method);
		wire_put_str(&prec, p->fs_type);
		wire_put_str(&prec, p->fs_uuid);
		wire_put_str(&prec, p->fs_label);
		wire_put_varint(&prec, p->fs_used_bytes);
		wire_put_varint(&prec, p->fs_min_size_bytes);
		wire_put_record(b, &prec);
	}

	/* extents: (gap since the previous end, size), both varints */
	wire_put_varint(b, d->n_extents);
	for (size_t i = 0; i < d->n_extents; i++) {
		wire_put_varint(b, d->extents[i].offset_bytes - prev_end);
		wire_put_varint(b, d->extents[i].size_bytes);
		prev_end = d->extents[i].offset_bytes + d->extents[i].size_bytes;
	}

	/* chunks: (chunk indexes skipped since the previous one, ID); sizes are implied */
	wire_put_varint(b, d->n_chunks);
	for (size_t i = 0; i < d->n_chunks; i++) {
		uint64_t idx = d->chunks[i].offset_bytes / CHUNK_SIZE_BYTES;

		wire_put_varint(b, idx - next_idx);
		wire_put_bytes(b, d->chunks[i].id.bytes, CHUNK_ID_BYTES);
		next_idx = idx + 1;
	}
	section_end(b, at);
}

static void checksum_file(const uint8_t *file, size_t size, uint8_t ret[32])
{
	static const uint8_t zeros[32];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t off = offsetof(struct manifest_header, checksum);
	unsigned len = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, file, off) != 1 || EVP_DigestUpdate(ctx, zeros, 32) != 1 ||
	    EVP_DigestUpdate(ctx, file + off + 32, size - off - 32) != 1 ||
	    EVP_DigestFinal_ex(ctx, ret, &len) != 1 || len != 32)
		abort(); /* only a broken libcrypto or OOM gets here */
	EVP_MD_CTX_free(ctx);
}

int manifest_encode(const struct manifest *m, void **ret, size_t *ret_size)
{
	_cleanup_(wire_out_done) struct wire_out b = {};
	struct manifest_header h = {};
	int r;

	r = manifest_validate(m);
	if (r < 0)
		return r == -EBADMSG ? -EINVAL : r;

	/* ~34 bytes per chunk, a few per extent: reserve once */
	size_t estimate = MANIFEST_HEADER_BYTES + 4096;
	for (size_t i = 0; i < m->n_disks; i++)
		estimate += m->disks[i].n_chunks * (CHUNK_ID_BYTES + 3) +
			    m->disks[i].n_extents * 8 + m->disks[i].n_partitions * 256 + 1024;
	if (!wire_out_grow(&b, estimate))
		return -ENOMEM;
	b.size = 0;

	wire_put_bytes(&b, &h, sizeof(h));
	encode_image(&b, m);
	if (m->family)
		encode_family(&b, m);
	if (m->source.type != MANIFEST_SOURCE_NONE)
		encode_source(&b, &m->source);
	for (size_t i = 0; i < m->n_disks; i++)
		encode_disk(&b, &m->disks[i]);
	if (b.error < 0)
		return b.error;
	if (b.size > MANIFEST_BYTES_MAX)
		return -EFBIG;

	memcpy(h.magic, manifest_magic, sizeof(h.magic));
	h.version_major = htole16(MANIFEST_VERSION_MAJOR);
	h.version_minor = htole16(MANIFEST_VERSION_MINOR);
	h.header_size = htole32(MANIFEST_HEADER_BYTES);
	h.flags = 0;
	h.n_sections = htole32((uint32_t) (1 + !!m->family +
					   (m->source.type != MANIFEST_SOURCE_NONE) + m->n_disks));
	h.body_size = htole64((uint64_t) (b.size - MANIFEST_HEADER_BYTES));
	memcpy(h.content_digest, m->content_digest, 32);
	memcpy(b.data, &h, sizeof(h));
	checksum_file(b.data, b.size, h.checksum);
	memcpy(b.data + offsetof(struct manifest_header, checksum), h.checksum, 32);

	*ret_size = b.size;
	*ret = TAKE_PTR(b.data);
	return 0;
}

/* ---- decoding ---- */


static int decode_image(struct wire_in *sec, struct manifest *m)
{
	struct wire_in rec;
	uint64_t n_labels;

	WIRE_TRY(wire_get_record(sec, &rec));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &m->name));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &m->description));
	WIRE_TRY(wire_get_zigzag(&rec, &m->created_unix));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &m->tool_version));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &m->host_vendor));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &m->host_product));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &m->host_serial));
	WIRE_TRY(wire_get_varint(&rec, &n_labels));
	if (n_labels > MANIFEST_LABELS_MAX || n_labels > rec.n)
		return -EBADMSG;
	if (n_labels > 0) {
		m->labels = calloc((size_t) n_labels + 1, sizeof(char *));
		if (!m->labels)
			return -ENOMEM;
		for (size_t i = 0; i < n_labels; i++) {
			WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &m->labels[i]));
			if (!m->labels[i])
				return -EBADMSG;
		}
	}
	/* since 1.1; a 1.0 manifest is an image */
	if (rec.n > 0) {
		uint64_t kind;

		WIRE_TRY(wire_get_varint(&rec, &kind));
		if (kind >= _MANIFEST_KIND_MAX)
			return -EPROTONOSUPPORT; /* a kind from a newer version */
		m->kind = (enum manifest_kind) kind;
	}
	/* rec may hold fields of a newer minor version: skipped */
	return 0;
}

static int decode_source(struct wire_in *sec, struct manifest *m)
{
	struct manifest_source *src = &m->source;
	struct wire_in rec;
	uint64_t type, has_digest, n_nodes;
	const uint8_t *p;

	if (src->type != MANIFEST_SOURCE_NONE)
		return -EBADMSG; /* at most one */
	WIRE_TRY(wire_get_record(sec, &rec));
	WIRE_TRY(wire_get_varint(&rec, &type));
	if (type == MANIFEST_SOURCE_NONE)
		return -EBADMSG;
	/* a source type from a newer version: the section is optional, keep what we know */
	if (type >= _MANIFEST_SOURCE_TYPE_MAX)
		return 0;
	src->type = (enum manifest_source_type) type;
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &src->name));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &src->format));
	WIRE_TRY(wire_get_varint(&rec, &has_digest));
	if (has_digest > 1)
		return -EBADMSG;
	src->has_digest = has_digest;
	if (has_digest) {
		WIRE_TRY(wire_get_bytes(&rec, sizeof(src->digest), &p));
		memcpy(src->digest, p, sizeof(src->digest));
	}
	WIRE_TRY(wire_get_varint(&rec, &n_nodes));
	if (n_nodes > MANIFEST_DISKS_MAX || n_nodes > rec.n)
		return -EBADMSG;
	if (n_nodes > 0) {
		src->nodes = calloc((size_t) n_nodes + 1, sizeof(char *));
		if (!src->nodes)
			return -ENOMEM;
		for (size_t i = 0; i < n_nodes; i++) {
			WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &src->nodes[i]));
			if (!src->nodes[i])
				return -EBADMSG;
		}
	}
	return 0;
}

static int decode_family(struct wire_in *sec, struct manifest *m)
{
	struct wire_in rec;

	if (m->family)
		return -EBADMSG; /* at most one */
	WIRE_TRY(wire_get_record(sec, &rec));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &m->family));
	if (!m->family)
		return -EBADMSG;
	return 0;
}

static int decode_partition(struct wire_in *sec, struct manifest_partition *p)
{
	struct wire_in rec;
	uint64_t bootable, method;

	WIRE_TRY(wire_get_record(sec, &rec));
	WIRE_TRY(wire_get_u32(&rec, &p->partno));
	WIRE_TRY(wire_get_varint(&rec, &p->start_bytes));
	WIRE_TRY(wire_get_varint(&rec, &p->size_bytes));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &p->type));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &p->uuid));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &p->name));
	WIRE_TRY(wire_get_varint(&rec, &p->attrs));
	WIRE_TRY(wire_get_varint(&rec, &bootable));
	if (bootable > 1)
		return -EBADMSG;
	p->bootable = bootable;
	WIRE_TRY(wire_get_varint(&rec, &method));
	if (method >= _CAPTURE_METHOD_MAX)
		return -EPROTONOSUPPORT; /* a method from a newer version */
	p->method = (enum capture_method) method;
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &p->fs_type));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &p->fs_uuid));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &p->fs_label));
	WIRE_TRY(wire_get_varint(&rec, &p->fs_used_bytes));
	WIRE_TRY(wire_get_varint(&rec, &p->fs_min_size_bytes));
	return 0;
}

static int decode_disk(struct wire_in *sec, struct manifest_disk *d)
{
	struct wire_in rec;
	const uint8_t *p;
	uint64_t n, prev_end = 0, next_idx = 0;

	WIRE_TRY(wire_get_record(sec, &rec));
	WIRE_TRY(wire_get_varint(&rec, &d->size_bytes));
	WIRE_TRY(wire_get_u32(&rec, &d->logical_sector_bytes));
	WIRE_TRY(wire_get_u32(&rec, &d->physical_sector_bytes));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &d->label));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &d->disk_id));
	WIRE_TRY(wire_get_varint(&rec, &d->first_usable_bytes));
	WIRE_TRY(wire_get_varint(&rec, &d->last_usable_bytes));
	WIRE_TRY(wire_get_u32(&rec, &d->gpt_n_entries_max));
	WIRE_TRY(wire_get_bytes(&rec, sizeof(d->boot_code), &p));
	memcpy(d->boot_code, p, sizeof(d->boot_code));
	WIRE_TRY(wire_get_varint(&rec, &d->boot_gap_bytes));
	WIRE_TRY(wire_get_varint(&rec, &d->used_bytes));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &d->model));
	WIRE_TRY(wire_get_str(&rec, MANIFEST_STRING_MAX, &d->serial));

	/* Every count is checked against its limit and against the bytes left
	 * (each item takes at least its minimum encoded size) before allocating. */
	WIRE_TRY(wire_get_varint(sec, &n));
	if (n > MANIFEST_PARTITIONS_MAX || n > sec->n)
		return -EBADMSG;
	if (n > 0) {
		d->partitions = calloc((size_t) n, sizeof(*d->partitions));
		if (!d->partitions)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			d->n_partitions = i + 1; /* so that manifest_free() frees what is there */
			WIRE_TRY(decode_partition(sec, &d->partitions[i]));
		}
	}

	WIRE_TRY(wire_get_varint(sec, &n));
	if (n > MANIFEST_EXTENTS_MAX || n > sec->n / 2)
		return -EBADMSG;
	if (n > 0) {
		d->extents = calloc((size_t) n, sizeof(*d->extents));
		if (!d->extents)
			return -ENOMEM;
		d->n_extents = (size_t) n;
		for (size_t i = 0; i < n; i++) {
			uint64_t gap, size;

			WIRE_TRY(wire_get_varint(sec, &gap));
			WIRE_TRY(wire_get_varint(sec, &size));
			if (gap > UINT64_MAX - prev_end || size > UINT64_MAX - prev_end - gap)
				return -EBADMSG;
			d->extents[i] = (struct manifest_extent){ prev_end + gap, size };
			prev_end += gap + size;
		}
	}

	WIRE_TRY(wire_get_varint(sec, &n));
	if (n > MANIFEST_CHUNKS_MAX || n > sec->n / (1 + CHUNK_ID_BYTES))
		return -EBADMSG;
	if (n > 0) {
		d->chunks = calloc((size_t) n, sizeof(*d->chunks));
		if (!d->chunks)
			return -ENOMEM;
		d->n_chunks = (size_t) n;
		for (size_t i = 0; i < n; i++) {
			struct manifest_chunk *c = &d->chunks[i];
			uint64_t skip, idx;

			WIRE_TRY(wire_get_varint(sec, &skip));
			if (skip > UINT64_MAX / CHUNK_SIZE_BYTES - next_idx)
				return -EBADMSG;
			idx = next_idx + skip;
			if (idx >= DIV_ROUND_UP(d->size_bytes, CHUNK_SIZE_BYTES))
				return -EBADMSG;
			WIRE_TRY(wire_get_bytes(sec, CHUNK_ID_BYTES, &p));
			c->offset_bytes = idx * CHUNK_SIZE_BYTES;
			c->size_bytes = (uint32_t) MIN((uint64_t) CHUNK_SIZE_BYTES,
						       d->size_bytes - c->offset_bytes);
			memcpy(c->id.bytes, p, CHUNK_ID_BYTES);
			next_idx = idx + 1;
		}
	}
	/* sec may hold data of a newer minor version: skipped */
	return 0;
}

int manifest_decode(const void *data, size_t size, struct manifest **ret)
{
	_cleanup_(manifest_freep) struct manifest *m = NULL;
	const uint8_t *file = data;
	struct manifest_header h;
	uint8_t sum[32];
	size_t header_size, n_disk_sections = 0, n_sections, d = 0;
	struct wire_in body;
	bool have_image = false;

	if (!data)
		return -EINVAL;
	if (size < MANIFEST_HEADER_BYTES || size > MANIFEST_BYTES_MAX)
		return -EBADMSG;
	memcpy(&h, file, sizeof(h));
	if (memcmp(h.magic, manifest_magic, sizeof(h.magic)) != 0)
		return -EBADMSG;
	if (le16toh(h.version_major) == 0)
		return -EBADMSG;
	if (le16toh(h.version_major) > MANIFEST_VERSION_MAJOR)
		return -EPROTONOSUPPORT; /* before anything else: the rest may differ */
	header_size = le32toh(h.header_size);
	if (header_size < MANIFEST_HEADER_BYTES || header_size > MANIFEST_HEADER_BYTES_MAX ||
	    header_size > size)
		return -EBADMSG;
	if (le64toh(h.body_size) != size - header_size)
		return -EBADMSG;
	checksum_file(file, size, sum);
	if (memcmp(sum, h.checksum, sizeof(sum)) != 0)
		return -EBADMSG;
	if (le32toh(h.flags) != 0)
		return -EPROTONOSUPPORT;
	n_sections = le32toh(h.n_sections);
	if (n_sections == 0 || n_sections > MANIFEST_SECTIONS_MAX)
		return -EBADMSG;

	/* Pass 1: the section table. Lengths must tile the body exactly. */
	body = (struct wire_in){ file + header_size, size - header_size };
	for (size_t i = 0; i < n_sections; i++) {
		const uint8_t *p;
		struct section_header s;
		uint64_t len;

		WIRE_TRY(wire_get_bytes(&body, sizeof(s), &p));
		memcpy(&s, p, sizeof(s));
		len = le64toh(s.length);
		if (len > body.n)
			return -EBADMSG;
		WIRE_TRY(wire_get_bytes(&body, (size_t) len, &p));
		switch (le32toh(s.type)) {
		case MANIFEST_SECTION_IMAGE:
			if (i != 0)
				return -EBADMSG;
			break;
		case MANIFEST_SECTION_DISK:
			if (i == 0)
				return -EBADMSG;
			n_disk_sections++;
			break;
		default:
			if (i == 0)
				return -EBADMSG;
			if (le32toh(s.flags) & MANIFEST_SECTION_FLAG_REQUIRED)
				return -EPROTONOSUPPORT;
		}
	}
	if (body.n != 0)
		return -EBADMSG;
	if (n_disk_sections == 0 || n_disk_sections > MANIFEST_DISKS_MAX)
		return -EBADMSG;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->version_major = le16toh(h.version_major);
	m->version_minor = le16toh(h.version_minor);
	memcpy(m->content_digest, h.content_digest, 32);
	m->disks = calloc(n_disk_sections, sizeof(*m->disks));
	if (!m->disks)
		return -ENOMEM;

	/* Pass 2: the sections we know. */
	body = (struct wire_in){ file + header_size, size - header_size };
	for (size_t i = 0; i < n_sections; i++) {
		const uint8_t *p;
		struct section_header s;
		struct wire_in sec;

		WIRE_TRY(wire_get_bytes(&body, sizeof(s), &p));
		memcpy(&s, p, sizeof(s));
		WIRE_TRY(wire_get_bytes(&body, (size_t) le64toh(s.length), &p));
		sec = (struct wire_in){ p, (size_t) le64toh(s.length) };
		switch (le32toh(s.type)) {
		case MANIFEST_SECTION_IMAGE:
			WIRE_TRY(decode_image(&sec, m));
			have_image = true;
			break;
		case MANIFEST_SECTION_FAMILY:
			WIRE_TRY(decode_family(&sec, m));
			break;
		case MANIFEST_SECTION_SOURCE:
			WIRE_TRY(decode_source(&sec, m));
			break;
		case MANIFEST_SECTION_DISK:
			m->n_disks = d + 1;
			WIRE_TRY(decode_disk(&sec, &m->disks[d]));
			d++;
			break;
		default:
			break; /* optional section of a later version */
		}
	}
	if (!have_image)
		return -EBADMSG;

	/* Everything the encoder promises, and the content digest. */
	if (manifest_validate(m) < 0)
		return -EBADMSG;
	*ret = TAKE_PTR(m);
	return 0;
}
